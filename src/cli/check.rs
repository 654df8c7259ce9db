//! `check`: validates configuration and connectivity and says exactly what
//! is wrong, one line per dependency.

use secrecy::ExposeSecret;

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
    }
    Ok(ok)
}
