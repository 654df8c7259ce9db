//! `check`: validates configuration and connectivity and says exactly what
//! is wrong, one line per dependency.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::amqp::{self, Names};
use crate::config::Settings;
use crate::store;

/// Where a URL points, without its credentials.
fn location(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map_or("default".to_owned(), |p| p.to_string()),
            u.path()
        ),
        Err(_) => "an unparsable URL".to_owned(),
    }
}

/// A connection to another machine that is not verified TLS: anyone on
/// the path could read it, or pose as the server. `check` warns about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unverified {
    /// Postgres with this `sslmode`: `disable`, `allow` and `prefer` may
    /// be plain text, `require` accepts any certificate.
    Postgres(&'static str),
    /// RabbitMQ over `amqp://`: plain text.
    Amqp,
}

impl fmt::Display for Unverified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unverified::Postgres(mode) => write!(
                f,
                "sslmode={mode} does not verify the server: use sslmode=verify-full with sslrootcert"
            ),
            Unverified::Amqp => f.write_str(
                "amqp:// is plain text: use amqps:// (with amqp.ca_file for a private CA)",
            ),
        }
    }
}

/// This machine, by name or address: local development, where plain text
/// never leaves the host. Names are not resolved: `db` stays another machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether the database URL reaches another machine without verified TLS
/// (`verify-ca` or `verify-full`). Decided on the options the connection
/// uses (so `PGSSLMODE` counts); a Unix socket is this machine.
pub fn unverified_database(url: &str) -> Option<Unverified> {
    let hosts = crate::store::hosts::Hosts::parse(url).ok()?;
    hosts.urls().iter().find_map(|u| unverified_host(u))
}

/// [`unverified_database`] for one host.
fn unverified_host(url: &str) -> Option<Unverified> {
    let options = PgConnectOptions::from_str(url).ok()?;
    if options.get_socket().is_some() || is_loopback(options.get_host()) {
        return None;
    }
    let mode = match options.get_ssl_mode() {
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => return None,
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
    };
    Some(Unverified::Postgres(mode))
}

/// Whether a broker URL reaches another machine in plain text (`amqps://`
/// always verifies the broker's certificate and name).
pub fn unverified_broker(url: &str) -> Option<Unverified> {
    let on_this_machine = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(is_loopback))
        .unwrap_or(false);
    (!amqp::is_amqps(url) && !on_this_machine).then_some(Unverified::Amqp)
}

/// Runs the checks; `Ok(false)` when any failed (each failure is printed).
pub async fn run(settings: &Settings) -> anyhow::Result<bool> {
    println!("configuration: ok (prefix `{}`)", settings.amqp.prefix);
    let mut ok = true;

    let db_url = settings.database.url.expose_secret();
    match store::connect_once(settings).await {
        Ok(mut conn) => {
            let migrated: Result<i64, _> =
                sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&mut conn)
                    .await;
            match migrated {
                Ok(n) => println!("postgres: ok ({}; {n} migration(s) applied)", location(db_url)),
                Err(_) => println!(
                    "postgres: reachable at {}, but not migrated yet (`lifecycle-worker migrate` or `run` does it)",
                    location(db_url)
                ),
            }
            let _ = sqlx::Connection::close(conn).await;
        }
        Err(e) => {
            ok = false;
            println!("postgres: FAILED at {}: {e}", location(db_url));
        }
    }
    // A warning, not a failure: the exit status stays what the checks say.
    if let Some(why) = unverified_database(db_url) {
        println!(
            "postgres: WARNING: {} is another machine, and {why}",
            location(db_url)
        );
    }

    // Every node, so that a cluster member that is down is seen now.
    let nodes = settings.amqp.nodes();
    let tls = match amqp::tls_config(&settings.amqp) {
        Ok(tls) => tls,
        Err(e) => {
            println!("rabbitmq: FAILED: {e}");
            return Ok(false);
        }
    };
    let mut declared_once = false;
    for url in nodes {
        let at = location(url.expose_secret());
        match amqp::connect_to(url, "check", &tls).await {
            Ok(conn) if declared_once => {
                println!("rabbitmq: ok ({at})");
                let _ = conn.close(200, "check done".into()).await;
            }
            Ok(conn) => {
                let names = Names::new(&settings.amqp.prefix);
                let declared = async {
                    let ch = conn.create_channel().await?;
                    amqp::declare_topology(&ch, &names, settings.amqp.delivery_limit).await
                }
                .await;
                match declared {
                    Ok(()) => {
                        declared_once = true;
                        println!("rabbitmq: ok ({at}; topology declared)");
                    }
                    Err(e) => {
                        ok = false;
                        println!(
                            "rabbitmq: connected to {at}, but declaring the topology failed (missing configure permission?): {e}"
                        );
                    }
                }
                let _ = conn.close(200, "check done".into()).await;
            }
            Err(e) => {
                ok = false;
                println!("rabbitmq: FAILED at {at}: {e}");
            }
        }
        if let Some(why) = unverified_broker(url.expose_secret()) {
            println!("rabbitmq: WARNING: {at} is another machine, and {why}");
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_this_machine_by_name_or_address_never_by_resolving() {
        for host in [
            "localhost",
            "LOCALHOST",
            "db.localhost",
            "127.0.0.1",
            "127.8.9.10",
            "[::1]",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "db",
            "10.0.0.5",
            "192.0.2.2",
            "::2",
            "localhost.example.com",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn postgres_elsewhere_must_verify_the_server() {
        let url = |host: &str, query: &str| format!("postgres://u:pw@{host}:5432/lifecycle{query}");
        // Another machine: only verify-ca and verify-full pass.
        for (query, mode) in [
            ("", "prefer"),
            ("?sslmode=prefer", "prefer"),
            ("?sslmode=disable", "disable"),
            ("?sslmode=allow", "allow"),
            ("?sslmode=require&sslrootcert=/ca.pem", "require"),
        ] {
            assert_eq!(
                unverified_database(&url("db.internal", query)),
                Some(Unverified::Postgres(mode)),
                "{query}"
            );
        }
        for query in [
            "?sslmode=verify-full&sslrootcert=/ca.pem",
            "?sslmode=verify-ca",
        ] {
            assert_eq!(
                unverified_database(&url("10.0.0.5", query)),
                None,
                "{query}"
            );
        }
        // This machine: anything goes, also through a Unix socket.
        assert_eq!(unverified_database(&url("127.0.0.1", "")), None);
        assert_eq!(
            unverified_database(&url("localhost", "?sslmode=disable")),
            None
        );
        assert_eq!(
            unverified_database("postgres:///lifecycle?host=/var/run/postgresql"),
            None
        );
        let warning = unverified_database(&url("db", "")).unwrap().to_string();
        assert!(
            warning.contains("sslmode=prefer") && warning.contains("verify-full"),
            "{warning}"
        );
        assert!(!warning.contains("pw"), "{warning}");
    }

    #[test]
    fn a_broker_elsewhere_must_be_amqps() {
        assert_eq!(
            unverified_broker("amqp://u:pw@rabbit-1:5672/%2f"),
            Some(Unverified::Amqp)
        );
        assert_eq!(
            unverified_broker("amqp://u:pw@10.1.2.3:5672/%2f"),
            Some(Unverified::Amqp)
        );
        assert_eq!(unverified_broker("amqps://u:pw@rabbit-1:5671/%2f"), None);
        assert_eq!(
            unverified_broker("amqp://guest:guest@127.0.0.1:5672/%2f"),
            None
        );
        assert_eq!(unverified_broker("amqp://guest:guest@localhost/%2f"), None);
        assert_eq!(unverified_broker("amqp://guest:guest@[::1]:5672/%2f"), None);
        let warning = Unverified::Amqp.to_string();
        assert!(warning.contains("amqps://"), "{warning}");
    }
}
