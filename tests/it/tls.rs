//! Contract section 14: `amqps://` (with `amqp.ca_file`) and Postgres
//! `sslmode=require|verify-ca|verify-full` work, the server's name is
//! verified, and a TLS URL never falls back to plain text. A CA and a
//! server certificate for `localhost` are generated here; a throwaway
//! RabbitMQ node serves AMQPS on 5719 and AMQP on 5709
//! (`scripts/rabbitmq-cluster.sh start-tls`), a throwaway Postgres serves
//! that certificate (`scripts/postgres-tls.sh`); the machine's own services
//! are not touched.
//!
//! Issue 25: a configured CA is the only one trusted, `verify-ca` checks
//! the chain and `verify-full` the name too, and `check` warns about an
//! unverified connection to another machine. Those tests put a front with
//! a certificate of their choosing before the machine's own services.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use futures_rustls::{rustls, TlsAcceptor};
use lifecycle_worker::config::{AmqpSettings, Settings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{cleanup, free_port, test_settings, TestEnv};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
const RABBIT_DIR: &str = "/tmp/lw-rabbit-tls";
const PG_DIR: &str = "/tmp/lw-pg-tls";

fn script(name: &str, args: &[&str]) {
    let out = std::process::Command::new("bash")
        .arg(format!("{SCRIPTS}/{name}"))
        .args(args)
        .env("LW_CLUSTER_DIR", RABBIT_DIR)
        .env("LW_PG_TLS_DIR", PG_DIR)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `localhost` signed by it, and a second CA
/// that signed nothing, as PEM files.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert, Issuer::new(params, key))
    };
    let (ca_cert, issuer) = ca("lifecycle-worker test CA");
    let (other_cert, _) = ca("some other CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

/// The throwaway servers, stopped and deleted when the test ends.
struct Servers {
    certs: PathBuf,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (name, arg) in [
            ("rabbitmq-cluster.sh", "stop-tls"),
            ("postgres-tls.sh", "stop"),
        ] {
            let _ = std::process::Command::new("bash")
                .arg(format!("{SCRIPTS}/{name}"))
                .arg(arg)
                .env("LW_CLUSTER_DIR", RABBIT_DIR)
                .env("LW_PG_TLS_DIR", PG_DIR)
                .status();
        }
        let _ = std::fs::remove_dir_all(RABBIT_DIR);
        let _ = std::fs::remove_dir_all(&self.certs);
    }
}

/// Connecting to Postgres with `url`: the error's text, or `None`.
async fn postgres_error(url: &str) -> Option<String> {
    let mut s = Settings::default();
    s.database.url = SecretString::from(url.to_owned());
    lifecycle_worker::store::connect_once(&s)
        .await
        .err()
        .map(|e| format!("{e:#}"))
}

/// Connecting to RabbitMQ at `url`, trusting `ca` too: the error, or `None`.
async fn amqp_error(url: &str, ca: Option<&Path>) -> Option<String> {
    let settings = AmqpSettings {
        url: SecretString::from(url.to_owned()),
        ca_file: ca.map(Path::to_path_buf),
        ..AmqpSettings::default()
    };
    match lifecycle_worker::amqp::connect(&settings, "tls-test").await {
        Ok(conn) => {
            let _ = conn.close(200, "done".into()).await;
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_over_verified_tls_and_never_plain_text() {
    // Servers a failed run left behind are removed first.
    script("rabbitmq-cluster.sh", &["stop-tls"]);
    script("postgres-tls.sh", &["stop"]);
    let certs = std::env::temp_dir().join(format!("lw-tls-certs-{}", std::process::id()));
    let servers = Servers {
        certs: certs.clone(),
    };
    certificates(&certs);
    let ca = certs.join("ca.pem");
    let other_ca = certs.join("other-ca.pem");
    let certs_arg = certs.to_str().unwrap();
    let pg_port = free_port();
    let pg = |host: &str, query: &str| {
        format!("postgres://postgres:s3cret-pw@{host}:{pg_port}/postgres?{query}")
    };

    // Postgres without TLS: a TLS URL fails clearly, without the password.
    script(
        "postgres-tls.sh",
        &["start", certs_arg, &pg_port.to_string(), "off"],
    );
    let e = postgres_error(&pg("localhost", "sslmode=require"))
        .await
        .expect("refused");
    assert!(e.contains("does not support TLS"), "{e}");
    assert!(!e.contains("s3cret-pw"), "{e}");
    assert!(postgres_error(&pg("localhost", "sslmode=disable"))
        .await
        .is_none());

    // With TLS: the CA and the name are checked as the mode says.
    script(
        "postgres-tls.sh",
        &["start", certs_arg, &pg_port.to_string(), "on"],
    );
    let root = format!("sslrootcert={}", ca.display());
    assert_eq!(
        postgres_error(&pg("localhost", "sslmode=require")).await,
        None
    );
    assert_eq!(
        postgres_error(&pg("localhost", &format!("sslmode=verify-full&{root}"))).await,
        None
    );
    let e = postgres_error(&pg("127.0.0.1", &format!("sslmode=verify-full&{root}")))
        .await
        .expect("the name 127.0.0.1 is not in the certificate");
    assert!(!e.contains("s3cret-pw"), "{e}");
    assert_eq!(
        postgres_error(&pg("localhost", &format!("sslmode=verify-ca&{root}"))).await,
        None
    );
    // verify-ca checks the chain, not the name, as libpq (vendor/sqlx-core).
    assert_eq!(
        postgres_error(&pg("127.0.0.1", &format!("sslmode=verify-ca&{root}"))).await,
        None
    );
    let wrong_root = format!("sslrootcert={}", other_ca.display());
    let e = postgres_error(&pg("localhost", &format!("sslmode=verify-ca&{wrong_root}")))
        .await
        .expect("a certificate from another CA is refused");
    assert!(!e.contains("s3cret-pw"), "{e}");

    // RabbitMQ: AMQPS on 5719, plain AMQP on 5709.
    script("rabbitmq-cluster.sh", &["start-tls", certs_arg]);
    let amqps = |host: &str, port: u16| format!("amqps://guest:guest@{host}:{port}/%2f");
    assert_eq!(amqp_error(&amqps("localhost", 5719), Some(&ca)).await, None);
    for (what, url, ca_file, says) in [
        (
            "a name not in the certificate",
            amqps("127.0.0.1", 5719),
            Some(ca.as_path()),
            "does not name the URL's host",
        ),
        (
            "no CA for it",
            amqps("localhost", 5719),
            None,
            "set amqp.ca_file",
        ),
        (
            "a CA that did not sign it",
            amqps("localhost", 5719),
            Some(other_ca.as_path()),
            "set amqp.ca_file",
        ),
        (
            "a plain port",
            amqps("localhost", 5709),
            Some(ca.as_path()),
            "is it a plain AMQP port?",
        ),
    ] {
        let e = amqp_error(&url, ca_file)
            .await
            .unwrap_or_else(|| panic!("{what}: connected"));
        assert!(e.contains(says), "{what}: {e}");
        assert!(!e.contains("guest:guest"), "{what}: {e}");
        eprintln!("amqps with {what}: {e}");
    }

    // The worker end to end over both: a command applied, its event out,
    // and every connection the servers see is TLS.
    let mut env = TestEnv::prepare_with(|s| {
        let db = s.database.url.clone();
        let db = secrecy::ExposeSecret::expose_secret(&db)
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        s.database.url = SecretString::from(
            pg("localhost", &format!("sslmode=verify-full&{root}"))
                .replace("/postgres?", &format!("/{db}?")),
        );
        s.amqp.url = SecretString::from(amqps("localhost", 5719));
        s.amqp.ca_file = Some(ca.clone());
    })
    .await;
    env.start_worker();
    let cmd = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "first_name": "Tia"}),
    );
    let reply = env.send(&cmd).await;
    assert_eq!(reply["outcome"], "applied", "{reply}");
    assert_eq!(env.events_of(&reply).await.len(), 1);
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = current_database() AND NOT s.ssl",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(plain, 0, "no plain-text Postgres session");
    let out = std::process::Command::new("bash")
        .arg(format!("{SCRIPTS}/rabbitmq-cluster.sh"))
        .args([
            "ctl",
            "9",
            "list_connections",
            "--quiet",
            "--no-table-headers",
            "ssl",
        ])
        .env("LW_CLUSTER_DIR", RABBIT_DIR)
        .output()
        .unwrap();
    let ssl = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !ssl.trim().is_empty() && ssl.lines().all(|l| l.trim() == "true"),
        "every broker connection is TLS: {ssl:?}"
    );
    env.finish().await;
    drop(servers);
}

// Issue 25: trust exactly what the configuration names. These tests need no
// throwaway servers: a TLS front (below) presents a certificate the test
// chooses and passes the bytes to the machine's own Postgres or RabbitMQ.

/// A CA of the tests.
struct TestCa(CertifiedIssuer<'static, KeyPair>);

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        TestCa(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A server certificate for `name` signed by this CA, with its key.
    fn server(&self, name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.0).unwrap();
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        (cert.der().clone(), key.into())
    }
}

/// Which local service a front passes the bytes to, and how TLS starts:
/// a Postgres client asks with an SSLRequest first, AMQPS starts with TLS.
#[derive(Clone, Copy)]
enum Service {
    Postgres,
    Rabbitmq,
}

/// A server on a free local port in front of the machine's Postgres (5432)
/// or RabbitMQ (5672): with a certificate it terminates TLS, presenting
/// that certificate; without, it passes plain TCP. Stops when dropped.
struct Front {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS front presenting `cert`, listening on 127.0.0.1.
async fn tls_front(
    service: Service,
    cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> Front {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.0], cert.1)
        .unwrap();
    front(
        service,
        "127.0.0.1",
        Some(TlsAcceptor::from(Arc::new(config))),
    )
    .await
}

async fn front(service: Service, listen: &str, tls: Option<TlsAcceptor>) -> Front {
    let listener = tokio::net::TcpListener::bind((listen, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(pass_on(service, client, tls.clone()));
        }
    });
    Front { port, task }
}

/// One client connection of a front: a failed handshake just ends it (the
/// client tells why).
async fn pass_on(
    service: Service,
    mut client: tokio::net::TcpStream,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
    let port = match service {
        Service::Postgres => 5432,
        Service::Rabbitmq => 5672,
    };
    let mut backend = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let Some(tls) = tls else {
        tokio::io::copy_bidirectional(&mut client, &mut backend).await?;
        return Ok(());
    };
    if let Service::Postgres = service {
        // SSLRequest: length 8, code 80877103; 'S': TLS follows.
        let mut request = [0u8; 8];
        client.read_exact(&mut request).await?;
        if request != [0, 0, 0, 8, 4, 210, 22, 47] {
            return Err(std::io::Error::other("not an SSLRequest"));
        }
        client.write_all(b"S").await?;
    }
    let mut client = tls.accept(client.compat()).await?.compat();
    tokio::io::copy_bidirectional(&mut client, &mut backend).await?;
    Ok(())
}

/// `lifecycle-worker check` as its own process, with `vars` and with the
/// system's roots read from `system_roots` (rustls-native-certs reads
/// `SSL_CERT_DIR` instead of /etc/ssl/certs): its exit code and output.
async fn check(vars: &[(&str, String)], system_roots: &Path) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
        .arg("check")
        .env_remove("SSL_CERT_FILE")
        .env("SSL_CERT_DIR", system_roots)
        .env("RUST_LOG", "warn")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("running lifecycle-worker check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// `check`'s line about `dependency` (`postgres` or `rabbitmq`).
fn line<'a>(out: &'a str, dependency: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{dependency}: ")) && !l.contains("WARNING"))
        .unwrap_or_else(|| panic!("no {dependency} line in {out}"))
}

/// A directory of its own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("lw-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The topology `check` declares under a test's prefix, deleted when the
/// test ends, failed or not.
struct Declared(Option<(Settings, String)>);

impl Drop for Declared {
    fn drop(&mut self) {
        let (settings, db_name) = self.0.take().unwrap();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(cleanup(settings, db_name))
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_ca_is_the_only_one_trusted() {
    let dir = TempDir::new("trust");
    let configured = TestCa::new("the configured CA");
    let system = TestCa::new("a CA of the system's roots");
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, configured.pem()).unwrap();
    let roots = dir.0.join("system-roots");
    std::fs::create_dir_all(&roots).unwrap();
    std::fs::write(roots.join("system-ca.pem"), system.pem()).unwrap();

    let pg_system = tls_front(Service::Postgres, system.server("localhost")).await;
    let mq_system = tls_front(Service::Rabbitmq, system.server("localhost")).await;
    let pg_configured = tls_front(Service::Postgres, configured.server("localhost")).await;
    let mq_configured = tls_front(Service::Rabbitmq, configured.server("localhost")).await;
    let (settings, db_name) = test_settings();
    let prefix = settings.amqp.prefix.clone();
    let _declared = Declared(Some((settings, db_name)));
    let vars = |pg: &Front, mq: &Front, with_ca: bool| {
        let root = match with_ca {
            true => format!("&sslrootcert={}", ca.display()),
            false => String::new(),
        };
        let mut vars = vec![
            (
                "LIFECYCLE__DATABASE__URL",
                format!(
                    "postgres://postgres@localhost:{}/postgres?sslmode=verify-full{root}",
                    pg.port
                ),
            ),
            (
                "LIFECYCLE__AMQP__URL",
                format!("amqps://guest:guest@localhost:{}/%2f", mq.port),
            ),
            ("LIFECYCLE__AMQP__PREFIX", prefix.clone()),
        ];
        if with_ca {
            vars.push(("LIFECYCLE__AMQP__CA_FILE", ca.display().to_string()));
        }
        vars
    };

    // Nothing configured: the system's roots are trusted (they hold the
    // other CA here), for both.
    let (code, out) = check(&vars(&pg_system, &mq_system, false), &roots).await;
    assert_eq!(code, 0, "{out}");
    assert!(!line(&out, "postgres").contains("FAILED"), "{out}");
    assert!(line(&out, "rabbitmq").starts_with("rabbitmq: ok"), "{out}");

    // A CA configured: it alone is trusted. The system's CA no longer is...
    let (code, out) = check(&vars(&pg_system, &mq_system, true), &roots).await;
    assert_eq!(code, 1, "{out}");
    let pg = line(&out, "postgres");
    assert!(
        pg.starts_with("postgres: FAILED") && pg.contains("UnknownIssuer"),
        "{out}"
    );
    let mq = line(&out, "rabbitmq");
    assert!(
        mq.starts_with("rabbitmq: FAILED") && mq.contains("set amqp.ca_file"),
        "{out}"
    );
    assert!(!out.contains("guest:guest"), "{out}");

    // ...and the configured one is.
    let (code, out) = check(&vars(&pg_configured, &mq_configured, true), &roots).await;
    assert_eq!(code, 0, "{out}");
    assert!(!line(&out, "postgres").contains("FAILED"), "{out}");
    assert!(line(&out, "rabbitmq").starts_with("rabbitmq: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_checks_the_chain_and_verify_full_the_name_too() {
    let dir = TempDir::new("verify");
    let configured = TestCa::new("the configured CA");
    let unknown = TestCa::new("an unknown CA");
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, configured.pem()).unwrap();
    // The configured CA signed it, for a name that is not the URL's host.
    let other_name = tls_front(Service::Postgres, configured.server("db.elsewhere.test")).await;
    let unknown_ca = tls_front(Service::Postgres, unknown.server("localhost")).await;
    let url = |front: &Front, mode: &str| {
        format!(
            "postgres://postgres:s3cret-pw@localhost:{}/postgres?sslmode={mode}&sslrootcert={}",
            front.port,
            ca.display()
        )
    };

    assert_eq!(postgres_error(&url(&other_name, "verify-ca")).await, None);
    let e = postgres_error(&url(&other_name, "verify-full"))
        .await
        .expect("verify-full checks the name");
    assert!(e.contains("not valid for name"), "{e}");
    for mode in ["verify-ca", "verify-full"] {
        let e = postgres_error(&url(&unknown_ca, mode))
            .await
            .unwrap_or_else(|| panic!("{mode} accepted an unknown CA"));
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
        assert!(!e.contains("s3cret-pw"), "{e}");
    }
}

/// An address of this machine that is not loopback: where the default
/// route leaves from (a UDP "connect" sends nothing).
fn this_machines_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.200:9")
        .and_then(|()| socket.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .expect("this test needs a network interface besides loopback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_about_unverified_connections_to_other_hosts() {
    let dir = TempDir::new("warn");
    let host = this_machines_address();
    // Plain TCP on an address other machines could reach, to the machine's services.
    let pg = front(Service::Postgres, "0.0.0.0", None).await;
    let mq = front(Service::Rabbitmq, "0.0.0.0", None).await;
    let (settings, db_name) = test_settings();
    let prefix = settings.amqp.prefix.clone();
    let _declared = Declared(Some((settings, db_name)));
    let vars = |host: &str| {
        vec![
            (
                "LIFECYCLE__DATABASE__URL",
                format!("postgres://postgres:s3cret-pw@{host}:{}/postgres", pg.port),
            ),
            (
                "LIFECYCLE__AMQP__URL",
                format!("amqp://guest:guest@{host}:{}/%2f", mq.port),
            ),
            ("LIFECYCLE__AMQP__PREFIX", prefix.clone()),
        ]
    };

    let (code, out) = check(&vars(&host.to_string()), &dir.0).await;
    assert_eq!(code, 0, "a warning leaves the exit status alone: {out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("WARNING")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings[0].starts_with("postgres: WARNING") && warnings[0].contains("sslmode=prefer"),
        "{out}"
    );
    assert!(
        warnings[1].starts_with("rabbitmq: WARNING") && warnings[1].contains("amqps://"),
        "{out}"
    );
    assert!(
        !out.contains("s3cret-pw") && !out.contains("guest:guest"),
        "{out}"
    );

    // The same services on loopback: local development, no warning.
    let (code, out) = check(&vars("127.0.0.1"), &dir.0).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("WARNING"), "{out}");
}
