//! The command envelope (contract section 2): strict decoding of a body
//! into a [`Command`], dispatching the payload to its entity's decoder.
//! Decoding never panics: anything it cannot accept is a `malformed` or
//! `invalid_command` [`Rejection`].

use super::contact::bulk::{self, BulkCommand};
use super::contact::command::{self as contact_command, ContactOp};
use super::directory::{self, DirectoryCommand};
use super::effective::EffectiveAt;
use super::ids::{check_short, CommandId, EntityId, Limits, TenantId};
use super::json::{parse_strict, JsonError};
use super::outcome::{EntityKind, ErrorCode, Outcome, Rejection, Reply};
use super::payload::{parse_time, payload_as, printable, required_str, take_id, CancelWire};
use super::registry::CommandType;
use super::user::command::{self as user_command, UserOp};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// A decoded, valid command.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub command_id: CommandId,
    pub tenant: TenantId,
    pub issued_at: OffsetDateTime,
    pub actor: Option<String>,
    pub expected_version: Option<u64>,
    /// When it takes effect (contract section 12); `None`: at once.
    pub effective_at: Option<EffectiveAt>,
    pub body: CommandBody,
}

impl Command {
    pub fn type_name(&self) -> &'static str {
        self.body.command_type().name()
    }

    pub fn command_type(&self) -> CommandType {
        self.body.command_type()
    }

    /// This command refused: its ids are kept for the dead-letter store.
    pub fn refused(&self, rejection: Rejection) -> DecodeFailure {
        DecodeFailure {
            rejection,
            command_id: Some(self.command_id.to_string()),
            tenant: Some(self.tenant.to_string()),
            command_type: Some(self.type_name().to_owned()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CommandBody {
    Contact {
        contact_id: EntityId,
        op: ContactOp,
    },
    Bulk(BulkCommand),
    Directory(DirectoryCommand),
    User {
        user_id: EntityId,
        op: UserOp,
    },
    /// `command.cancel`: a scheduled command of the same tenant.
    Cancel {
        command_id: CommandId,
    },
}

impl CommandBody {
    pub fn command_type(&self) -> CommandType {
        match self {
            CommandBody::Contact { op, .. } => CommandType::Contact(op.kind()),
            CommandBody::Bulk(_) => CommandType::Bulk,
            CommandBody::Directory(d) => CommandType::Directory(d.kind()),
            CommandBody::User { op, .. } => CommandType::User(op.kind()),
            CommandBody::Cancel { .. } => CommandType::Cancel,
        }
    }
}

/// A refused message, with whatever could still be read of it for the
/// dead-letter store.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeFailure {
    pub rejection: Rejection,
    pub command_id: Option<String>,
    pub tenant: Option<String>,
    pub command_type: Option<String>,
}

impl DecodeFailure {
    /// The reply to a refused command.
    pub fn reply(&self) -> Reply {
        Reply {
            command_id: self.command_id.clone(),
            tenant: self.tenant.clone(),
            outcome: Outcome::Rejected,
            duplicate: false,
            entity: None,
            events: vec![],
            error: Some(self.rejection.clone().into()),
            items: None,
            hold_id: None,
            scheduled_for: None,
        }
    }
}

/// Decodes an AMQP body into a [`Command`].
pub fn decode(body: &[u8], limits: &Limits) -> Result<Command, DecodeFailure> {
    let malformed = |message: String| DecodeFailure {
        rejection: Rejection::new(ErrorCode::Malformed, message),
        command_id: None,
        tenant: None,
        command_type: None,
    };
    if body.len() > limits.max_body_bytes {
        return Err(malformed(format!(
            "body is {} bytes, more than the limit of {} bytes",
            body.len(),
            limits.max_body_bytes
        )));
    }
    if body.is_empty() {
        return Err(malformed("body is empty".into()));
    }
    let value = match parse_strict(body, limits.max_json_depth) {
        Ok(v) => v,
        // Valid JSON syntax, but ambiguous: which of the two values was meant?
        Err(e @ JsonError::DuplicateKey(_)) => {
            return Err(DecodeFailure {
                rejection: Rejection::invalid(e.to_string()),
                command_id: None,
                tenant: None,
                command_type: None,
            })
        }
        Err(e @ (JsonError::NotUtf8(_) | JsonError::TooDeep(_) | JsonError::Syntax(_))) => {
            return Err(malformed(e.to_string()))
        }
    };
    let Value::Object(map) = value else {
        return Err(malformed(format!(
            "body must be a JSON object, not {}",
            json_kind(&value)
        )));
    };
    let readable = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let (command_id, tenant, command_type) =
        (readable("command_id"), readable("tenant"), readable("type"));
    // Postgres text cannot hold U+0000, and no field has a use for it.
    let checked = if holds_nul(&map) {
        Err(Rejection::invalid(
            "the body holds a U+0000 (NUL) character in a key or string",
        ))
    } else {
        decode_envelope(&map, limits)
    };
    checked.map_err(|rejection| DecodeFailure {
        rejection,
        command_id,
        tenant,
        command_type,
    })
}

/// The contact or user a message names, read leniently from its body
/// whether or not it decodes, so that an erasure finds its dead letters:
/// `type` `contact.*` or `user.*` with a string `payload.contact_id` or
/// `payload.user_id`.
pub fn subject_of(body: &[u8]) -> Option<(EntityKind, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let type_name = value.get("type")?.as_str()?;
    let (kind, field) = match type_name.split_once('.')?.0 {
        "contact" => (EntityKind::Contact, "contact_id"),
        "user" => (EntityKind::User, "user_id"),
        _ => return None,
    };
    let id = value.get("payload")?.get(field)?.as_str()?;
    Some((kind, id.to_owned()))
}

fn holds_nul(map: &Map<String, Value>) -> bool {
    fn value(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(value),
            Value::Object(m) => holds_nul(m),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    map.iter().any(|(k, v)| k.contains('\0') || value(v))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const ENVELOPE_FIELDS: [&str; 8] = [
    "command_id",
    "type",
    "tenant",
    "issued_at",
    "actor",
    "expected_version",
    "effective_at",
    "payload",
];

fn decode_envelope(map: &Map<String, Value>, limits: &Limits) -> Result<Command, Rejection> {
    if let Some(unknown) = map.keys().find(|k| !ENVELOPE_FIELDS.contains(&k.as_str())) {
        return Err(Rejection::invalid(format!(
            "unknown field `{}` in the envelope",
            printable(unknown)
        )));
    }
    let command_id = CommandId::parse(required_str(map, "command_id")?, limits)?;
    let type_name = required_str(map, "type")?;
    let tenant = TenantId::parse(required_str(map, "tenant")?)?;
    let issued_at = parse_time("issued_at", required_str(map, "issued_at")?)?;
    let actor = match map.get("actor") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            check_short("actor", s, limits.max_id_chars)?;
            Some(s.clone())
        }
        Some(_) => return Err(Rejection::invalid("actor must be a string")),
    };
    let expected_version = match map.get("expected_version") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
            Rejection::invalid("expected_version must be a non-negative integer")
        })?),
        Some(_) => {
            return Err(Rejection::invalid(
                "expected_version must be a non-negative integer",
            ))
        }
    };
    let payload = match map.get("payload") {
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(Rejection::invalid("payload must be a JSON object")),
        None => return Err(Rejection::invalid("missing field `payload`")),
    };
    let body = decode_body(type_name, payload, limits)?;
    if expected_version.is_some()
        && matches!(body, CommandBody::Bulk(_) | CommandBody::Cancel { .. })
    {
        return Err(Rejection::invalid(format!(
            "expected_version is not allowed on {}",
            body.command_type().name()
        )));
    }
    let effective_at = match map.get("effective_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if body.command_type().may_be_scheduled() => {
            Some(EffectiveAt::parse(s)?)
        }
        Some(Value::String(_)) => {
            return Err(Rejection::invalid(format!(
                "effective_at is not allowed on {}",
                body.command_type().name()
            )))
        }
        Some(_) => return Err(Rejection::invalid("effective_at must be a string")),
    };
    Ok(Command {
        command_id,
        tenant,
        issued_at,
        actor,
        expected_version,
        effective_at,
        body,
    })
}

fn decode_body(
    type_name: &str,
    mut payload: Map<String, Value>,
    limits: &Limits,
) -> Result<CommandBody, Rejection> {
    let Some(t) = CommandType::parse(type_name) else {
        return Err(Rejection::invalid(format!(
            "unknown command type `{}`",
            printable(type_name)
        )));
    };
    Ok(match t {
        CommandType::Contact(kind) => CommandBody::Contact {
            contact_id: take_id(&mut payload, kind.id_field(), limits)?,
            op: contact_command::decode(kind, payload, limits)?,
        },
        CommandType::Bulk => CommandBody::Bulk(bulk::decode(payload, limits)?),
        CommandType::Directory(kind) => {
            CommandBody::Directory(directory::decode(kind, payload, limits)?)
        }
        CommandType::User(kind) => CommandBody::User {
            user_id: take_id(&mut payload, kind.id_field(), limits)?,
            op: user_command::decode(kind, payload, limits)?,
        },
        CommandType::Cancel => {
            let p: CancelWire = payload_as(payload)?;
            CommandBody::Cancel {
                command_id: CommandId::parse(&p.command_id, limits)
                    .map_err(|r| Rejection::invalid(format!("payload.{}", r.message)))?,
            }
        }
    })
}

#[cfg(test)]
mod tests;
