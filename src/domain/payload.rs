//! Helpers every entity's payload decoding shares: typed fields from a JSON
//! object, with `invalid_command` refusals that say which field is wrong.

use super::ids::{check_short, EntityId, Limits};
use super::outcome::Rejection;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Payloads with no field but the entity id.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Payloads with an optional `reason`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: Option<String>,
}

pub fn required_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, Rejection> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Rejection::invalid(format!("{key} must be a string"))),
        None => Err(Rejection::invalid(format!("missing field `{key}`"))),
    }
}

/// Field names quoted back in messages: never more than 64 chars, no controls.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub fn parse_time(field: &str, s: &str) -> Result<OffsetDateTime, Rejection> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        Rejection::invalid(format!(
            "{field} must be an RFC 3339 timestamp with offset, like 2026-11-22T08:00:00Z"
        ))
    })
}

/// Splits the entity id out of a payload, leaving the other fields.
pub fn take_id(
    payload: &mut Map<String, Value>,
    field: &str,
    limits: &Limits,
) -> Result<EntityId, Rejection> {
    match payload.remove(field) {
        Some(Value::String(s)) => EntityId::parse(field, &s, limits),
        Some(_) => Err(Rejection::invalid(format!(
            "payload.{field} must be a string"
        ))),
        None => Err(Rejection::invalid(format!(
            "missing field `payload.{field}`"
        ))),
    }
}

pub fn payload_as<T: DeserializeOwned>(payload: Map<String, Value>) -> Result<T, Rejection> {
    serde_json::from_value(Value::Object(payload))
        .map_err(|e| Rejection::invalid(format!("payload: {e}")))
}

pub fn opt_short(field: &str, v: &Option<String>, limits: &Limits) -> Result<(), Rejection> {
    match v {
        Some(s) => check_short(field, s, limits.max_name_chars),
        None => Ok(()),
    }
}

pub fn opt_id(
    field: &str,
    v: Option<String>,
    limits: &Limits,
) -> Result<Option<EntityId>, Rejection> {
    v.map(|s| EntityId::parse(field, &s, limits)).transpose()
}

pub fn check_email(email: &str, limits: &Limits) -> Result<(), Rejection> {
    check_short("payload.email", email, limits.max_name_chars)?;
    let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !email.chars().any(char::is_whitespace)
    });
    if !well_formed {
        return Err(Rejection::invalid(
            "payload.email must look like local@domain",
        ));
    }
    Ok(())
}

/// Distinguishes a missing field (`None`) from an explicit null (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `reason` of a [`Reason`] payload, checked.
pub fn reason(payload: Map<String, Value>, limits: &Limits) -> Result<Option<String>, Rejection> {
    let p: Reason = payload_as(payload)?;
    opt_short("payload.reason", &p.reason, limits)?;
    Ok(p.reason)
}

/// Refuses any field in an [`Empty`] payload.
pub fn empty(payload: Map<String, Value>) -> Result<(), Rejection> {
    let _: Empty = payload_as(payload)?;
    Ok(())
}

/// The payload of `command.cancel` (contract section 12).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelWire {
    /// The scheduled command to cancel.
    pub command_id: String,
}
