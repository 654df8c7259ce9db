//! Validated identifiers and short strings ("parse, don't validate").

use super::outcome::Rejection;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Size limits applied while decoding. Each is configurable (`[limits]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted AMQP body, in bytes.
    pub max_body_bytes: usize,
    /// Most contacts one `contact.bulk` may name.
    pub max_bulk_ids: usize,
    /// Longest id (`command_id`, `contact_id`, ...), in characters.
    pub max_id_chars: usize,
    /// Longest name-like string (names, email, status, reason, ...), in characters.
    pub max_name_chars: usize,
    /// Longest activity body, in bytes.
    pub max_activity_body_bytes: usize,
    /// Most custom attributes one contact may carry.
    pub max_attributes: usize,
    /// Deepest JSON nesting accepted in a command body.
    pub max_json_depth: usize,
    /// Most bytes of a body the dead-letter store keeps (with its length and
    /// SHA-256), so an oversize message cannot fill the disk.
    pub dead_letter_body_bytes: usize,
    /// How far ahead of the worker's clock `issued_at` may be: a command
    /// dated far ahead would win every later comparison.
    #[serde(with = "human_duration")]
    pub max_clock_skew: Duration,
    /// How far ahead an `effective_at` may lie (contract section 12).
    #[serde(with = "human_duration")]
    pub max_schedule_ahead: Duration,
}

/// `"1h"`, `"90s"`, ... in configuration files.
pub(crate) mod human_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// [`human_duration`] for an optional key.
pub(crate) mod human_duration_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::human_duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            max_bulk_ids: 10_000,
            max_id_chars: 128,
            max_name_chars: 256,
            max_activity_body_bytes: 16 * 1024,
            max_attributes: 100,
            max_json_depth: 32,
            dead_letter_body_bytes: 64 * 1024,
            max_clock_skew: Duration::from_secs(3600),
            max_schedule_ahead: Duration::from_secs(400 * 86_400),
        }
    }
}

/// A tenant key: `^[a-z0-9][a-z0-9_-]{0,62}$`, never `default`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<TenantId, Rejection> {
        let bytes = s.as_bytes();
        let shape_ok = !bytes.is_empty()
            && bytes.len() <= 63
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        if !shape_ok {
            return Err(Rejection::invalid(
                "tenant must match ^[a-z0-9][a-z0-9_-]{0,62}$",
            ));
        }
        if s == "default" {
            return Err(Rejection::invalid(
                "tenant \"default\" is reserved for the policy defaults",
            ));
        }
        Ok(TenantId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An upstream system's id (contact, employer, user, role): 1..=max chars,
/// no control characters.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct EntityId(String);

impl EntityId {
    pub fn parse(field: &str, s: &str, limits: &Limits) -> Result<EntityId, Rejection> {
        check_short(field, s, limits.max_id_chars)?;
        Ok(EntityId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// For ids read back from our own database, which were validated on the way in.
    pub fn trusted(s: impl Into<String>) -> EntityId {
        EntityId(s.into())
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The idempotency key: 1..=max printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CommandId(String);

impl CommandId {
    pub fn parse(s: &str, limits: &Limits) -> Result<CommandId, Rejection> {
        if s.is_empty() || s.len() > limits.max_id_chars {
            return Err(Rejection::invalid(format!(
                "command_id must be 1-{} characters",
                limits.max_id_chars
            )));
        }
        if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Rejection::invalid(
                "command_id must be printable ASCII characters",
            ));
        }
        Ok(CommandId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a short string (id, name, code): non-empty, at most `max` chars,
/// no control characters.
pub fn check_short(field: &str, s: &str, max: usize) -> Result<(), Rejection> {
    if s.is_empty() {
        return Err(Rejection::invalid(format!("{field} must not be empty")));
    }
    if s.chars().count() > max {
        return Err(Rejection::invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(Rejection::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_shape_is_enforced() {
        for ok in ["acme", "a", "0-x_y", &"a".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "_a",
            "a.b",
            "a b",
            "default",
            &"a".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entity_ids_refuse_control_characters_and_length() {
        let l = Limits::default();
        assert!(EntityId::parse("contact_id", "c-17", &l).is_ok());
        assert!(EntityId::parse("contact_id", "é-ü", &l).is_ok());
        assert!(EntityId::parse("contact_id", "", &l).is_err());
        assert!(EntityId::parse("contact_id", "a\u{7}b", &l).is_err());
        assert!(EntityId::parse("contact_id", &"x".repeat(129), &l).is_err());
        assert!(EntityId::parse("contact_id", &"x".repeat(128), &l).is_ok());
    }

    #[test]
    fn command_ids_are_printable_ascii() {
        let l = Limits::default();
        assert!(CommandId::parse("8f0c-1", &l).is_ok());
        assert!(CommandId::parse("with space", &l).is_ok());
        assert!(CommandId::parse("tab\there", &l).is_err());
        assert!(CommandId::parse("é", &l).is_err());
        assert!(CommandId::parse("", &l).is_err());
    }
}
