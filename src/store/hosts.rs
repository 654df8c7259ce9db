//! A database URL naming several hosts, in libpq's form
//! (`postgres://user@h1:5432,h2:5433/lifecycle?target_session_attrs=read-write`),
//! as libpq, JDBC and pgx take it: the hosts are tried in order and, with
//! `target_session_attrs=read-write` (or `primary`), only a server that is
//! not in recovery is used. The pool follows the writable server when a
//! standby is promoted ([`follow_primary`]), without a restart.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// One URL per host, in the configured order, and whether only a writable
/// server will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hosts {
    urls: Vec<String>,
    pub read_write: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostsError {
    /// Never quotes the URL: it holds the password.
    #[error("must be a postgres://[user[:password]@]host[:port][,host[:port]...]/... URL")]
    Form,
    #[error("target_session_attrs must be `any`, `read-write` or `primary`")]
    SessionAttrs,
}

impl Hosts {
    pub fn parse(url: &str) -> Result<Hosts, HostsError> {
        let (scheme, rest) = url.split_once("://").ok_or(HostsError::Form)?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut read_write = false;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("target_session_attrs", v)) => {
                    read_write = match v {
                        "any" => false,
                        "read-write" | "primary" => true,
                        _ => return Err(HostsError::SessionAttrs),
                    }
                }
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let urls: Vec<String> = hostlist
            .split(',')
            .map(|host| {
                if host.is_empty() {
                    return Err(HostsError::Form);
                }
                let single = format!("{scheme}://{userinfo}{host}{path}{query}");
                match url::Url::parse(&single) {
                    Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(single),
                    _ => Err(HostsError::Form),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Hosts { urls, read_write })
    }

    /// The single-host URLs, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Whether anything beyond connecting to the one host is needed.
    pub fn needs_probing(&self) -> bool {
        self.urls.len() > 1 || self.read_write
    }
}

/// Whether the server behind `conn` takes writes (is not in recovery).
pub async fn writable(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(conn)
        .await?;
    Ok(!in_recovery)
}

/// How long one host may take to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The first host, in order, that answers (and, when `read_write`, takes
/// writes): its index. `None` when none does.
pub async fn find(options: &[PgConnectOptions], read_write: bool) -> Option<usize> {
    for (i, o) in options.iter().enumerate() {
        let probe = async {
            let mut conn = o.connect().await?;
            let ok = !read_write || writable(&mut conn).await?;
            let _ = conn.close().await;
            Ok::<bool, sqlx::Error>(ok)
        };
        if let Ok(Ok(true)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            return Some(i);
        }
    }
    None
}

/// How often the pool's server is checked.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// Keeps the pool on a server that fits `read_write`: checks the current
/// one every [`FOLLOW_INTERVAL`] on a connection of its own and, when it
/// is gone or in recovery, finds the next (a promoted standby) and points
/// the pool's new connections there. Connections to the old server fail
/// and are dropped by the pool; what they were doing is retried.
pub async fn follow_primary(
    pool: PgPool,
    options: Vec<PgConnectOptions>,
    read_write: bool,
    mut current: usize,
    token: CancellationToken,
) {
    let mut watch: Option<PgConnection> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
        let healthy = async {
            if watch.is_none() {
                watch = Some(options[current].connect().await?);
            }
            let conn = watch.as_mut().expect("just connected");
            Ok::<bool, sqlx::Error>(!read_write || writable(conn).await?)
        };
        if let Ok(Ok(true)) = tokio::time::timeout(PROBE_TIMEOUT, healthy).await {
            continue;
        }
        watch = None;
        if let Some(found) = find(&options, read_write).await {
            if found != current {
                tracing::warn!(
                    from = current,
                    to = found,
                    "the database server moved: new connections go to the host at this position of database.url"
                );
                pool.set_connect_options(options[found].clone());
                current = found;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_multi_host_urls_become_one_url_per_host() {
        let h = Hosts::parse(
            "postgres://app:pw@h1:5432,h2:5433,[::1]:5434/lifecycle?sslmode=verify-full&target_session_attrs=read-write&sslrootcert=/ca.pem",
        )
        .unwrap();
        assert!(h.read_write);
        assert_eq!(
            h.urls(),
            [
                "postgres://app:pw@h1:5432/lifecycle?sslmode=verify-full&sslrootcert=/ca.pem",
                "postgres://app:pw@h2:5433/lifecycle?sslmode=verify-full&sslrootcert=/ca.pem",
                "postgres://app:pw@[::1]:5434/lifecycle?sslmode=verify-full&sslrootcert=/ca.pem",
            ]
        );
        let one = Hosts::parse("postgres://postgres@127.0.0.1:5432/lifecycle").unwrap();
        assert_eq!(one.urls(), ["postgres://postgres@127.0.0.1:5432/lifecycle"]);
        assert!(!one.read_write && !one.needs_probing());
        let any = Hosts::parse("postgresql://h1,h2?target_session_attrs=any").unwrap();
        assert_eq!(any.urls(), ["postgresql://h1", "postgresql://h2"]);
        assert!(!any.read_write && any.needs_probing());
    }

    #[test]
    fn malformed_urls_and_unsupported_attrs_are_refused() {
        for bad in [
            "postgres:x@h/db",
            "postgres://h1,,h2/db",
            "postgres://@/db",
            "h1:5432",
        ] {
            assert_eq!(Hosts::parse(bad), Err(HostsError::Form), "{bad}");
        }
        assert_eq!(
            Hosts::parse("postgres://h/db?target_session_attrs=standby"),
            Err(HostsError::SessionAttrs)
        );
    }
}
