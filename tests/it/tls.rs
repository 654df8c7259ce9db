//! Contract section 14: `amqps://` (with `amqp.ca_file`) and Postgres
//! `sslmode=require|verify-ca|verify-full` work, the server's name is
//! verified, and a TLS URL never falls back to plain text. A CA and a
//! server certificate for `localhost` are generated here; a throwaway
//! RabbitMQ node serves AMQPS on 5719 and AMQP on 5709
//! (`scripts/rabbitmq-cluster.sh start-tls`), a throwaway Postgres serves
//! that certificate (`scripts/postgres-tls.sh`); the machine's own services
//! are not touched.

use std::path::{Path, PathBuf};

use lifecycle_worker::config::{AmqpSettings, Settings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{free_port, TestEnv};

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
    // sqlx 0.8.6 with rustls >= 0.23.24 checks the name under verify-ca
    // too (sqlx#3793, fixed after 0.8.6): stricter than libpq, never weaker.
    let e = postgres_error(&pg("127.0.0.1", &format!("sslmode=verify-ca&{root}")))
        .await
        .expect("verify-ca checks the name as well with this sqlx");
    assert!(e.contains("not valid for name"), "{e}");
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
