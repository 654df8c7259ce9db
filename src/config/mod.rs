//! Settings: built-in defaults, then an optional TOML file, then
//! `LIFECYCLE__SECTION__KEY` environment variables (contract section 7).

mod load;

use crate::domain::ids::Limits;
use crate::domain::policy::{Policies, ProducerGrant, Producers, TenantPolicyOverride};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Already cleared of every configured secret ([`Settings::load`]).
    #[error("reading configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub worker: WorkerSettings,
    pub relay: RelaySettings,
    pub retention: RetentionSettings,
    pub privacy: PrivacySettings,
    pub limits: Limits,
    /// `[tenants.default]` and per-tenant policy overrides.
    pub tenants: BTreeMap<String, TenantPolicyOverride>,
    /// Producer authorisation by AMQP `user_id`; empty means off.
    pub producers: BTreeMap<String, ProducerGrant>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// May carry a password: only from the file or the environment, never logged.
    pub url: SecretString,
    pub max_connections: u32,
    /// The Postgres schema holding every table of the worker (and the
    /// migration bookkeeping); never `public`.
    pub schema: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/lifecycle"),
            max_connections: 8,
            schema: "lifecycle".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// May carry a password: only from the file or the environment, never logged.
    pub url: SecretString,
    /// The nodes of a cluster, tried in order on every connect and
    /// reconnect; when set, `url` is not used. `LIFECYCLE__AMQP__URLS` is
    /// comma-separated.
    pub urls: Vec<SecretString>,
    /// Every exchange and queue name starts with it.
    pub prefix: String,
    /// Unacknowledged deliveries per command queue. Twice the batch size
    /// keeps the next batch arriving while one is applied.
    pub prefetch: u16,
    /// Quorum queue `x-delivery-limit`: redeliveries before a message is parked.
    pub delivery_limit: u32,
    /// PEM file of the CA(s) that sign the brokers' certificates, for
    /// `amqps://` URLs to a private CA: when set, the only CAs trusted
    /// (the system's roots are not).
    pub ca_file: Option<std::path::PathBuf>,
}

impl AmqpSettings {
    /// The broker nodes to try, in order: `urls`, or `url` alone.
    pub fn nodes(&self) -> Vec<&SecretString> {
        if self.urls.is_empty() {
            vec![&self.url]
        } else {
            self.urls.iter().collect()
        }
    }
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            urls: Vec::new(),
            prefix: "lifecycle".into(),
            prefetch: 512,
            delivery_limit: 10,
            ca_file: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// `/healthz`, `/readyz`, `/metrics`; port 0 picks a free port.
    pub listen: String,
    /// The operations console (contract section 14); off unless set, and
    /// never on `listen`.
    pub console_listen: Option<String>,
    /// The console's bearer token and login secret; required with
    /// `console_listen`.
    pub console_token: Option<SecretString>,
    /// Reverse proxies (IPs or CIDR blocks) whose `X-Forwarded-For` the
    /// console believes: the client is the right-most address in it that
    /// is not one of them. `LIFECYCLE__HTTP__CONSOLE_TRUSTED_PROXIES` is
    /// comma-separated.
    pub console_trusted_proxies: Vec<String>,
    /// Most connections the console holds open at once (each a file
    /// descriptor of the process); at the cap the oldest connection that
    /// has not carried an operator's request is closed to make room.
    pub console_max_connections: usize,
    /// Seconds a client has to send a request's head, counted from when
    /// its connection opened or its previous response was sent.
    pub console_header_timeout_secs: u64,
    /// Seconds a connection may go without a byte either way while a
    /// request's body is read or its response written.
    pub console_idle_timeout_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:9464".into(),
            console_listen: None,
            console_token: None,
            console_trusted_proxies: Vec::new(),
            console_max_connections: 256,
            console_header_timeout_secs: 10,
            console_idle_timeout_secs: 60,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Most deliveries handled in one database transaction.
    pub batch_size: usize,
    /// How long shutdown waits for in-flight commands, in seconds.
    pub drain_timeout_secs: u64,
    /// Most bytes of unacknowledged deliveries a consumer keeps: the
    /// prefetch is lowered to `max_unacked_bytes / limits.max_body_bytes`
    /// when that is smaller (bodies over `max_body_bytes` are cut on arrival).
    pub max_unacked_bytes: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            batch_size: 256,
            drain_timeout_secs: 30,
            max_unacked_bytes: 128 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    /// Off only for tests and for replicas that must never publish.
    pub enabled: bool,
    /// Most outbox rows published per round.
    pub batch_size: i64,
    /// Fallback poll for commits made by other processes, in milliseconds.
    pub poll_interval_ms: u64,
    /// Events published between two vacuums of the relay's work list.
    pub vacuum_every_events: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            enabled: true,
            batch_size: 500,
            poll_interval_ms: 500,
            vacuum_every_events: 50_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days a processed command is kept (its duplicate protection).
    pub processed_commands_days: u32,
    /// Days a published outbox row is kept.
    pub published_outbox_days: u32,
    /// Days a dead letter is kept after its last failure.
    pub dead_letters_days: u32,
    /// Days a console audit record (logins, reveals, actions) is kept.
    pub console_audit_days: u32,
    /// Seconds between purges.
    pub interval_secs: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            processed_commands_days: 30,
            published_outbox_days: 7,
            dead_letters_days: 30,
            console_audit_days: 365,
            interval_secs: 3600,
        }
    }
}

/// `[privacy]`: the key of the erased-address blocklist (contract section 11).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// HMAC-SHA-256 key, at least 32 characters; generated once and kept in
    /// the database when not configured. It cannot be changed later: see
    /// docs/deletion.md ("The key").
    pub hash_key: Option<SecretString>,
}

/// The shortest `privacy.hash_key` accepted.
pub const MIN_HASH_KEY_CHARS: usize = 32;
fn invalid(key: &'static str, message: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        message: message.to_owned(),
    })
}

/// A console token is a random secret; a short one could be guessed.
pub const MIN_CONSOLE_TOKEN_CHARS: usize = 24;
/// Each console connection is a file descriptor; no process has more.
const MAX_CONSOLE_CONNECTIONS: usize = 65_536;

impl Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        let prefix_ok = !self.amqp.prefix.is_empty()
            && self.amqp.prefix.len() <= 100
            && self
                .amqp
                .prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !prefix_ok {
            return invalid(
                "amqp.prefix",
                "must be 1-100 lowercase letters, digits, '.', '_' or '-'",
            );
        }
        self.validate_schema()?;
        let longest = Duration::from_secs(
            u64::from(crate::domain::policy::MAX_GUARDRAIL_WINDOW_DAYS) * 86_400,
        );
        let windows_ok = self
            .tenants
            .values()
            .filter_map(|t| t.guardrail.as_ref().and_then(|g| g.window))
            .all(|w| !w.is_zero() && w <= longest);
        if !windows_ok {
            return invalid(
                "tenants.*.guardrail.window",
                "must be more than 0 and at most 7 days",
            );
        }
        let zones_ok = self
            .tenants
            .values()
            .filter_map(|t| t.time_zone.as_deref())
            .all(crate::domain::effective::known_time_zone);
        if !zones_ok {
            return invalid(
                "tenants.*.time_zone",
                "must be an IANA time zone name, like Europe/Berlin",
            );
        }
        if self.amqp.prefetch == 0 {
            return invalid("amqp.prefetch", "must be at least 1");
        }
        if self.worker.max_unacked_bytes < self.limits.max_body_bytes {
            return invalid(
                "worker.max_unacked_bytes",
                "must be at least limits.max_body_bytes",
            );
        }
        if self.limits.dead_letter_body_bytes > self.limits.max_body_bytes {
            return invalid(
                "limits.dead_letter_body_bytes",
                "must be at most limits.max_body_bytes",
            );
        }
        let key_ok = self
            .privacy
            .hash_key
            .as_ref()
            .is_none_or(|k| k.expose_secret().chars().count() >= MIN_HASH_KEY_CHARS);
        if !key_ok {
            return invalid(
                "privacy.hash_key",
                "must be at least 32 characters (or left out, to have one generated)",
            );
        }
        if self.worker.batch_size == 0 {
            return invalid("worker.batch_size", "must be at least 1");
        }
        if self.relay.vacuum_every_events == 0 {
            return invalid("relay.vacuum_every_events", "must be at least 1");
        }
        // 0 would purge a record at the next run: no audit at all.
        if self.retention.console_audit_days == 0 {
            return invalid("retention.console_audit_days", "must be at least 1");
        }
        if self.http_listen().is_err() {
            return invalid("http.listen", "must be host:port, like 127.0.0.1:9464");
        }
        self.validate_console()?;
        self.validate_ca_file()?;
        self.validate_urls()
    }

    /// A configured CA file must hold at least one PEM certificate: a typo
    /// is found at start, not at the first reconnect.
    fn validate_ca_file(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.amqp.ca_file else {
            return Ok(());
        };
        match std::fs::read_to_string(path) {
            Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => Ok(()),
            Ok(_) => invalid("amqp.ca_file", "holds no PEM certificate"),
            Err(e) => Err(ConfigError::Invalid {
                key: "amqp.ca_file",
                message: format!("cannot be read ({}): {e}", path.display()),
            }),
        }
    }

    /// The console runs only with a token, on its own port.
    fn validate_console(&self) -> Result<(), ConfigError> {
        let Some(listen) = &self.http.console_listen else {
            return Ok(());
        };
        let Ok(addr) = listen.parse::<SocketAddr>() else {
            return invalid(
                "http.console_listen",
                "must be host:port, like 127.0.0.1:9465",
            );
        };
        let token_len = self
            .http
            .console_token
            .as_ref()
            .map_or(0, |t| t.expose_secret().chars().count());
        if token_len == 0 {
            return invalid(
                "http.console_token",
                "is required when http.console_listen is set: the console never runs without a token",
            );
        }
        if token_len < MIN_CONSOLE_TOKEN_CHARS {
            return invalid(
                "http.console_token",
                "must be at least 24 characters (a random secret, not a password)",
            );
        }
        if !(1..=MAX_CONSOLE_CONNECTIONS).contains(&self.http.console_max_connections) {
            return invalid(
                "http.console_max_connections",
                "must be 1 to 65536, and well below the process's open-files limit",
            );
        }
        if self.http.console_header_timeout_secs == 0 {
            return invalid("http.console_header_timeout_secs", "must be at least 1");
        }
        if self.http.console_idle_timeout_secs == 0 {
            return invalid("http.console_idle_timeout_secs", "must be at least 1");
        }
        if let Err(e) =
            crate::console::client::TrustedProxies::parse(&self.http.console_trusted_proxies)
        {
            return Err(ConfigError::Invalid {
                key: "http.console_trusted_proxies",
                message: e.to_string(),
            });
        }
        if self
            .http_listen()
            .is_ok_and(|m| m == addr && addr.port() != 0)
        {
            return invalid(
                "http.console_listen",
                "must differ from http.listen: the console is never served on the metrics port",
            );
        }
        Ok(())
    }

    /// `database.schema` is interpolated into SQL: an identifier, never public.
    fn validate_schema(&self) -> Result<(), ConfigError> {
        let schema = &self.database.schema;
        let schema_ok = schema.len() <= 63
            && schema
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.starts_with("pg_")
            && schema != "public";
        if !schema_ok {
            return Err(ConfigError::Invalid {
                key: "database.schema",
                message:
                    "must be a lowercase identifier (letters, digits, '_'), not public or pg_*"
                        .to_owned(),
            });
        }
        Ok(())
    }

    /// Database and broker URLs: the right scheme and a host.
    fn validate_urls(&self) -> Result<(), ConfigError> {
        // libpq's multi-host form: each host's URL is checked as one.
        let database_urls: Vec<SecretString> =
            crate::store::hosts::Hosts::parse(self.database.url.expose_secret())
                .map_err(|e| ConfigError::Invalid {
                    key: "database.url",
                    message: e.to_string(),
                })?
                .urls()
                .iter()
                .map(|u| SecretString::from(u.as_str()))
                .collect();
        let database = database_urls
            .iter()
            .map(|u| ("database.url", u, &["postgres", "postgresql"][..]));
        let amqp_key = if self.amqp.urls.is_empty() {
            "amqp.url"
        } else {
            "amqp.urls"
        };
        let nodes = self
            .amqp
            .nodes()
            .into_iter()
            .map(|u| (amqp_key, u, &["amqp", "amqps"][..]));
        for (key, url, schemes) in database.chain(nodes) {
            // `amqp:user:pw@host` parses as a URL with no host: refused
            // here, before any connection could quote it in an error. The
            // message never includes the URL.
            match url::Url::parse(url.expose_secret()) {
                Ok(u)
                    if schemes.contains(&u.scheme())
                        && u.has_host()
                        && !u.cannot_be_a_base()
                        && u.host_str().is_some_and(|h| !h.is_empty()) => {}
                _ => {
                    return Err(ConfigError::Invalid {
                        key,
                        message: format!(
                            "must be a {}://[user[:password]@]host[:port]/... URL",
                            schemes.join("|")
                        ),
                    })
                }
            }
        }
        Ok(())
    }

    pub fn console_listen(&self) -> Option<SocketAddr> {
        self.http
            .console_listen
            .as_deref()
            .and_then(|l| l.parse().ok())
    }

    pub fn http_listen(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.http.listen.parse()
    }

    pub fn policies(&self) -> Policies {
        Policies::from_blocks(&self.tenants)
    }

    pub fn producers(&self) -> Producers {
        Producers::new(self.producers.clone())
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.worker.drain_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_against_the_local_services() {
        let s = Settings::default();
        assert_eq!(
            s.database.url.expose_secret(),
            "postgres://postgres@127.0.0.1:5432/lifecycle"
        );
        assert_eq!(s.amqp.prefix, "lifecycle");
        assert!(s.validate().is_ok());
    }

    #[test]
    fn batch_sizes_and_the_relays_vacuum_interval_are_at_least_one() {
        let mut s = Settings::default();
        s.relay.vacuum_every_events = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("relay.vacuum_every_events"), "{e}");
        let mut s = Settings::default();
        s.worker.batch_size = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("worker.batch_size"), "{e}");
        let mut s = Settings::default();
        s.retention.console_audit_days = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("retention.console_audit_days"), "{e}");
    }

    #[test]
    fn the_console_needs_a_long_token_and_its_own_port() {
        let mut s = Settings::default();
        s.http.console_listen = Some("127.0.0.1:9465".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("http.console_token") && e.contains("required"),
            "{e}"
        );
        s.http.console_token = Some(SecretString::from("short"));
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("at least 24"), "{e}");
        assert!(!e.contains("short"), "the token is never quoted: {e}");
        s.http.console_token = Some(SecretString::from("x".repeat(32)));
        assert!(s.validate().is_ok());
        s.http.console_listen = Some(s.http.listen.clone());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("metrics port"), "{e}");
        s.http.console_listen = Some("127.0.0.1:9465".into());
        s.http.console_trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        assert!(s.validate().is_ok());
        s.http.console_trusted_proxies.push("10.0.0.0/40".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("http.console_trusted_proxies"), "{e}");
        s.http.console_trusted_proxies.clear();
        type Zero = fn(&mut Settings);
        let zeroed: [(&str, Zero); 3] = [
            ("http.console_max_connections", |t| {
                t.http.console_max_connections = 0
            }),
            ("http.console_header_timeout_secs", |t| {
                t.http.console_header_timeout_secs = 0
            }),
            ("http.console_idle_timeout_secs", |t| {
                t.http.console_idle_timeout_secs = 0
            }),
        ];
        for (key, zero) in zeroed {
            let mut t = s.clone();
            zero(&mut t);
            let e = t.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
        s.http.console_listen = Some("nowhere".into());
        assert!(s.validate().is_err());
        assert!(!format!("{s:?}").contains(&"x".repeat(32)));
    }

    #[test]
    fn debug_output_hides_urls() {
        let s = Settings::default();
        assert!(!format!("{s:?}").contains("guest:guest"));
    }

    #[test]
    fn file_shape_of_the_contract_is_accepted() {
        let dir = std::env::temp_dir().join(format!("lw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            r#"
[tenants.default]
allow_contact_delete = true
suppressing_statuses = ["D", "I", "N"]

[tenants.acme]
allow_contact_delete = false

[producers.ats-sync]
tenants = ["acme", "globex"]
commands = ["contact.*", "employer.*"]
"#,
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert!(!s.policies().for_tenant("acme").allow_contact_delete);
        assert!(s.policies().for_tenant("globex").allow_contact_delete);
        assert!(s
            .producers()
            .authorise(Some("ats-sync"), "acme", "contact.archive")
            .is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_url_without_a_host_is_refused_without_quoting_it() {
        for (key, url) in [
            ("amqp.url", "amqp:guest:s3cret-pw@127.0.0.1:5672/%2f"),
            ("amqp.url", "amqp:///%2f"),
            (
                "database.url",
                "postgres:postgres:s3cret-pw@127.0.0.1/lifecycle",
            ),
        ] {
            let mut s = Settings::default();
            if key == "amqp.url" {
                s.amqp.url = SecretString::from(url);
            } else {
                s.database.url = SecretString::from(url);
            }
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
            assert!(!e.contains("guest"), "{e}");
        }
    }

    #[test]
    fn the_schema_is_an_identifier_and_never_public() {
        for bad in ["public", "", "Lifecycle", "pg_x", "a-b", "a;drop", "1abc"] {
            let mut s = Settings::default();
            s.database.schema = bad.into();
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("database.schema"), "{bad}: {e}");
        }
        let mut s = Settings::default();
        s.database.schema = "lifecycle_2".into();
        assert!(s.validate().is_ok());
    }
}
