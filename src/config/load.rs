//! Loading settings without ever showing a secret: the environment's
//! secret keys are taken verbatim, and no error quotes a line of the file,
//! a configured secret or a URL's password.

use std::path::Path;

use super::{ConfigError, Settings};

/// Environment variables of the settings: `LIFECYCLE__SECTION__KEY`.
const ENV_PREFIX: &str = "LIFECYCLE__";

/// Keys whose values are secrets (credentials in URLs, tokens, keys).
const SECRET_KEYS: [&str; 5] = [
    "database.url",
    "amqp.url",
    "amqp.urls",
    "http.console_token",
    "privacy.hash_key",
];

/// The values a secret key's setting holds (`amqp.urls` is a list).
fn secret_values(key: &str, value: &str) -> Vec<String> {
    match key {
        "amqp.urls" => value.split(',').map(str::to_owned).collect(),
        _ => vec![value.to_owned()],
    }
}

/// The secret values a file sets, where it parses; a file that does not
/// parse is never quoted ([`describe`]).
fn file_secrets(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return vec![];
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return vec![];
    };
    let mut found = vec![];
    for key in SECRET_KEYS {
        let (section, name) = key.split_once('.').expect("section.key");
        match table.get(section).and_then(|t| t.get(name)) {
            Some(toml::Value::String(v)) => found.push(v.clone()),
            Some(toml::Value::Array(a)) => {
                found.extend(a.iter().filter_map(|v| v.as_str().map(str::to_owned)))
            }
            _ => {}
        }
    }
    found
}

/// A loading error in words that quote no line of the file: a TOML syntax
/// error keeps its position and what is wrong, not the source excerpt
/// that `toml` prints with it (the line may hold a password).
fn describe(e: config::ConfigError) -> String {
    if let config::ConfigError::FileParse { uri, cause } = &e {
        if let Some(t) = cause.downcast_ref::<toml::de::Error>() {
            let at = match (t.span(), uri) {
                (Some(span), Some(path)) => std::fs::read_to_string(path)
                    .ok()
                    .map(|text| {
                        let before = &text[..span.start.min(text.len())];
                        let line = before.matches('\n').count() + 1;
                        let column =
                            before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                        format!(" at line {line}, column {column}")
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let file = uri.as_deref().unwrap_or("the configuration file");
            return format!("{file}: TOML syntax error{at}: {}", t.message().trim());
        }
        let file = uri.as_deref().unwrap_or("the configuration file");
        return format!("{file} could not be parsed");
    }
    e.to_string()
}

/// `text` with every known secret value, and the password of any URL in
/// it, replaced.
fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "[redacted]");
    }
    // `scheme://user:password@`: whatever the value came from.
    let mut cleaned = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        cleaned.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '`')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                let userinfo = &tail[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                cleaned.push_str(user);
                if userinfo.contains(':') {
                    cleaned.push_str(":[redacted]");
                }
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    cleaned.push_str(rest);
    cleaned
}

impl Settings {
    /// Layers defaults, the optional file and the environment, then checks
    /// cross-field rules.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, std::env::vars_os())
    }

    /// [`Settings::load`] with the environment given. Secret keys
    /// ([`SECRET_KEYS`]) are taken as strings verbatim (never parsed as a
    /// number, which would drop a digit-only token's leading zeros), and no
    /// error message quotes a configured secret or a line of the file.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<Settings, ConfigError> {
        let mut plain = config::Map::new();
        let mut secrets: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in env {
            let Some(name) = name.to_str() else { continue };
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_lowercase().replace("__", ".");
            let Ok(value) = value.into_string() else {
                return Err(ConfigError::Load(format!(
                    "environment variable {name} is not valid UTF-8"
                )));
            };
            match SECRET_KEYS.iter().find(|k| **k == key) {
                Some(k) => secrets.push((k, value)),
                None => {
                    plain.insert(name.to_owned(), value);
                }
            }
        }
        let known: Vec<String> = secrets
            .iter()
            .flat_map(|(k, v)| secret_values(k, v))
            .chain(file.map(file_secrets).unwrap_or_default())
            .collect();
        let clean = |e: config::ConfigError| ConfigError::Load(redact(&describe(e), &known));

        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("LIFECYCLE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(plain))
                .list_separator(",")
                .with_list_parse_key("http.console_trusted_proxies"),
        );
        for (key, value) in secrets {
            builder = if key == "amqp.urls" {
                builder.set_override(key, secret_values(key, &value))
            } else {
                builder.set_override(key, value)
            }
            .map_err(clean)?;
        }
        let settings: Settings = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(clean)?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lw-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_file_that_does_not_parse_is_reported_without_its_lines() {
        let path = temp_file(
            "syntax",
            "[database]\nurl = \"postgres://postgres:S3cret-pw@db.internal:5432/lifecycle\n",
        );
        let e = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("S3cret"), "{e}");
        assert!(!e.contains("db.internal"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("TOML syntax error"), "{e}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_value_of_the_wrong_type_is_reported_without_the_secrets_configured() {
        let path = temp_file(
            "types",
            "[database]\nurl = \"postgres://app:F1le-pw@db/lifecycle\"\nmax_connections = \"postgres://x:Other-pw@h\"\n",
        );
        let e = Settings::load_from(
            Some(&path),
            env(&[("LIFECYCLE__AMQP__URL", "amqps://app:Env-pw@mq:5671/%2f")]),
        )
        .unwrap_err()
        .to_string();
        for secret in ["F1le-pw", "Other-pw", "Env-pw"] {
            assert!(!e.contains(secret), "{e}");
        }
        assert!(e.contains("max_connections"), "{e}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn secrets_from_the_environment_are_strings_verbatim() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "LIFECYCLE__HTTP__CONSOLE_TOKEN",
                    "00123456789012345678901234",
                ),
                (
                    "LIFECYCLE__PRIVACY__HASH_KEY",
                    "0000000000000000000000000000000012",
                ),
                (
                    "LIFECYCLE__AMQP__URLS",
                    "amqp://a:1@h1:5672/%2f,amqp://a:1@h2:5672/%2f",
                ),
                ("LIFECYCLE__DATABASE__MAX_CONNECTIONS", "7"),
                ("OTHER__DATABASE__URL", "ignored"),
            ]),
        )
        .unwrap();
        let token = s
            .http
            .console_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        assert_eq!(token, "00123456789012345678901234");
        let key = s
            .privacy
            .hash_key
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        assert_eq!(key, "0000000000000000000000000000000012");
        assert_eq!(s.amqp.urls.len(), 2);
        assert_eq!(s.database.max_connections, 7);
    }

    #[test]
    fn redaction_hides_known_secrets_and_url_passwords() {
        let text = "bad `amqp://u:pw1@h:5672/x` and postgres://p:pw2@db/l near token-xyz";
        let r = redact(text, &["token-xyz".to_owned()]);
        assert_eq!(
            r,
            "bad `amqp://u:[redacted]@h:5672/x` and postgres://p:[redacted]@db/l near [redacted]"
        );
        assert_eq!(redact("http://h/x", &[]), "http://h/x");
    }
}
