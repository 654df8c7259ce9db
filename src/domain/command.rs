//! Strict decoding of the command envelope (contract section 2) and of every
//! payload (section 3). Decoding never panics: anything it cannot accept is a
//! `malformed` or `invalid_command` [`Rejection`].

use super::ids::{check_short, CommandId, EntityId, Limits, TenantId};
use super::json::{parse_strict, JsonError};
use super::outcome::{ErrorCode, Rejection};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A decoded, valid command.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub command_id: CommandId,
    pub tenant: TenantId,
    pub issued_at: OffsetDateTime,
    pub actor: Option<String>,
    pub expected_version: Option<u64>,
    pub body: CommandBody,
}

impl Command {
    pub fn type_name(&self) -> &'static str {
        self.body.type_name()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CommandBody {
    Contact { contact_id: EntityId, op: ContactOp },
    Bulk(BulkCommand),
    EmployerUpsert(EmployerUpsert),
    RoleUpsert(RoleUpsert),
    User { user_id: EntityId, op: UserOp },
}

impl CommandBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            CommandBody::Contact { op, .. } => op.type_name(),
            CommandBody::Bulk(_) => "contact.bulk",
            CommandBody::EmployerUpsert(_) => "employer.upsert",
            CommandBody::RoleUpsert(_) => "role.upsert",
            CommandBody::User { op, .. } => op.type_name(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Everyone,
    Advisors,
    Owner,
}

/// A custom attribute value: string, number or bool (never null, object or array).
pub type AttrValue = Value;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContactUpsert {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub employer_id: Option<EntityId>,
    pub department: Option<String>,
    pub status: Option<String>,
    pub visibility: Option<Visibility>,
    /// name -> value, or `None` to remove the attribute.
    pub attributes: BTreeMap<String, Option<AttrValue>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Note,
    Meeting,
    Task,
    Message,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogActivity {
    pub kind: ActivityKind,
    pub body: String,
    pub action_code: Option<String>,
    pub occurred_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Archive {
    pub reason: Option<String>,
    pub employer_id: Option<EntityId>,
    pub suppress_email: bool,
    pub visibility: Visibility,
    pub revoke_user_access: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Revive {
    pub employer_id: Option<EntityId>,
    pub visibility: Option<Visibility>,
    pub restore_email: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContactOp {
    Upsert(Box<ContactUpsert>),
    Deactivate {
        reason: Option<String>,
    },
    Reactivate {
        reason: Option<String>,
    },
    ChangeStatus {
        status: String,
    },
    ChangeEmployer {
        employer_id: Option<EntityId>,
        department: Option<String>,
    },
    SetVisibility {
        visibility: Visibility,
    },
    SetAttributes {
        attributes: BTreeMap<String, Option<AttrValue>>,
    },
    Approve {
        reason: Option<String>,
    },
    Reject {
        reason: Option<String>,
    },
    Archive(Archive),
    Revive(Revive),
    LogActivity(LogActivity),
    Delete,
}

impl ContactOp {
    pub fn type_name(&self) -> &'static str {
        match self {
            ContactOp::Upsert(_) => "contact.upsert",
            ContactOp::Deactivate { .. } => "contact.deactivate",
            ContactOp::Reactivate { .. } => "contact.reactivate",
            ContactOp::ChangeStatus { .. } => "contact.change_status",
            ContactOp::ChangeEmployer { .. } => "contact.change_employer",
            ContactOp::SetVisibility { .. } => "contact.set_visibility",
            ContactOp::SetAttributes { .. } => "contact.set_attributes",
            ContactOp::Approve { .. } => "contact.approve",
            ContactOp::Reject { .. } => "contact.reject",
            ContactOp::Archive(_) => "contact.archive",
            ContactOp::Revive(_) => "contact.revive",
            ContactOp::LogActivity(_) => "contact.log_activity",
            ContactOp::Delete => "contact.delete",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum BulkTarget {
    Ids(Vec<EntityId>),
    Employer(EntityId),
}

#[derive(Clone, Debug, PartialEq)]
pub struct BulkCommand {
    pub target: BulkTarget,
    pub op: ContactOp,
    pub atomic: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmployerUpsert {
    pub employer_id: EntityId,
    pub name: String,
    pub departments: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RoleUpsert {
    pub role_id: EntityId,
    pub name: String,
    pub permissions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct UserUpsert {
    pub email: Option<String>,
    pub name: Option<String>,
    pub employer_id: Option<EntityId>,
    pub contact_id: Option<EntityId>,
    pub role_id: Option<EntityId>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UserOp {
    Upsert(UserUpsert),
    RevokeAccess { reason: Option<String> },
    RestoreAccess { reason: Option<String> },
    ChangeRole { role_id: EntityId },
    Delete,
}

impl UserOp {
    pub fn type_name(&self) -> &'static str {
        match self {
            UserOp::Upsert(_) => "user.upsert",
            UserOp::RevokeAccess { .. } => "user.revoke_access",
            UserOp::RestoreAccess { .. } => "user.restore_access",
            UserOp::ChangeRole { .. } => "user.change_role",
            UserOp::Delete => "user.delete",
        }
    }
}

/// Every command type of contract section 3.
pub const COMMAND_TYPES: [&str; 21] = [
    "contact.upsert",
    "contact.deactivate",
    "contact.reactivate",
    "contact.change_status",
    "contact.change_employer",
    "contact.set_visibility",
    "contact.set_attributes",
    "contact.approve",
    "contact.reject",
    "contact.archive",
    "contact.revive",
    "contact.log_activity",
    "contact.delete",
    "contact.bulk",
    "employer.upsert",
    "role.upsert",
    "user.upsert",
    "user.revoke_access",
    "user.restore_access",
    "user.change_role",
    "user.delete",
];

/// A refused message, with whatever could still be read of it for the
/// dead-letter store.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeFailure {
    pub rejection: Rejection,
    pub command_id: Option<String>,
    pub tenant: Option<String>,
    pub command_type: Option<String>,
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

const ENVELOPE_FIELDS: [&str; 7] = [
    "command_id",
    "type",
    "tenant",
    "issued_at",
    "actor",
    "expected_version",
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
    if expected_version.is_some() && matches!(body, CommandBody::Bulk(_)) {
        return Err(Rejection::invalid(
            "expected_version is not allowed on contact.bulk",
        ));
    }
    Ok(Command {
        command_id,
        tenant,
        issued_at,
        actor,
        expected_version,
        body,
    })
}

fn required_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, Rejection> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Rejection::invalid(format!("{key} must be a string"))),
        None => Err(Rejection::invalid(format!("missing field `{key}`"))),
    }
}

/// Field names quoted back in messages: never more than 64 chars, no controls.
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn parse_time(field: &str, s: &str) -> Result<OffsetDateTime, Rejection> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        Rejection::invalid(format!(
            "{field} must be an RFC 3339 timestamp with offset, like 2026-11-22T08:00:00Z"
        ))
    })
}

/// Splits the entity id out of a payload, leaving the other fields.
fn take_id(
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

fn payload_as<T: DeserializeOwned>(payload: Map<String, Value>) -> Result<T, Rejection> {
    serde_json::from_value(Value::Object(payload))
        .map_err(|e| Rejection::invalid(format!("payload: {e}")))
}

fn decode_body(
    type_name: &str,
    mut payload: Map<String, Value>,
    limits: &Limits,
) -> Result<CommandBody, Rejection> {
    let body = match type_name {
        "contact.bulk" => CommandBody::Bulk(decode_bulk(payload, limits)?),
        "employer.upsert" => {
            let employer_id = take_id(&mut payload, "employer_id", limits)?;
            let p: wire::EmployerUpsert = payload_as(payload)?;
            check_short("payload.name", &p.name, limits.max_name_chars)?;
            if let Some(deps) = &p.departments {
                for d in deps {
                    check_short("payload.departments[]", d, limits.max_name_chars)?;
                }
            }
            CommandBody::EmployerUpsert(EmployerUpsert {
                employer_id,
                name: p.name,
                departments: p.departments,
            })
        }
        "role.upsert" => {
            let role_id = take_id(&mut payload, "role_id", limits)?;
            let p: wire::RoleUpsert = payload_as(payload)?;
            check_short("payload.name", &p.name, limits.max_name_chars)?;
            for perm in &p.permissions {
                check_short("payload.permissions[]", perm, limits.max_name_chars)?;
            }
            CommandBody::RoleUpsert(RoleUpsert {
                role_id,
                name: p.name,
                permissions: p.permissions,
            })
        }
        t if t.starts_with("user.") => {
            let user_id = take_id(&mut payload, "user_id", limits)?;
            CommandBody::User {
                user_id,
                op: decode_user_op(t, payload, limits)?,
            }
        }
        t if t.starts_with("contact.") => {
            if !COMMAND_TYPES.contains(&t) {
                return Err(unknown_type(t));
            }
            let contact_id = take_id(&mut payload, "contact_id", limits)?;
            CommandBody::Contact {
                contact_id,
                op: decode_contact_op(t, payload, limits)?,
            }
        }
        t => return Err(unknown_type(t)),
    };
    Ok(body)
}

fn unknown_type(t: &str) -> Rejection {
    Rejection::invalid(format!("unknown command type `{}`", printable(t)))
}

fn decode_user_op(
    t: &str,
    payload: Map<String, Value>,
    limits: &Limits,
) -> Result<UserOp, Rejection> {
    Ok(match t {
        "user.upsert" => {
            let p: wire::UserUpsert = payload_as(payload)?;
            if let Some(e) = &p.email {
                check_email(e, limits)?;
            }
            opt_short("payload.name", &p.name, limits)?;
            UserOp::Upsert(UserUpsert {
                email: p.email,
                name: p.name,
                employer_id: opt_id("payload.employer_id", p.employer_id, limits)?,
                contact_id: opt_id("payload.contact_id", p.contact_id, limits)?,
                role_id: opt_id("payload.role_id", p.role_id, limits)?,
            })
        }
        "user.revoke_access" => {
            let p: wire::Reason = payload_as(payload)?;
            opt_short("payload.reason", &p.reason, limits)?;
            UserOp::RevokeAccess { reason: p.reason }
        }
        "user.restore_access" => {
            let p: wire::Reason = payload_as(payload)?;
            opt_short("payload.reason", &p.reason, limits)?;
            UserOp::RestoreAccess { reason: p.reason }
        }
        "user.change_role" => {
            let p: wire::ChangeRole = payload_as(payload)?;
            UserOp::ChangeRole {
                role_id: EntityId::parse("payload.role_id", &p.role_id, limits)?,
            }
        }
        "user.delete" => {
            let _: wire::Empty = payload_as(payload)?;
            UserOp::Delete
        }
        other => return Err(unknown_type(other)),
    })
}

fn decode_contact_op(
    t: &str,
    payload: Map<String, Value>,
    limits: &Limits,
) -> Result<ContactOp, Rejection> {
    let reason = |payload: Map<String, Value>| -> Result<Option<String>, Rejection> {
        let p: wire::Reason = payload_as(payload)?;
        opt_short("payload.reason", &p.reason, limits)?;
        Ok(p.reason)
    };
    Ok(match t {
        "contact.upsert" => {
            let p: wire::ContactUpsert = payload_as(payload)?;
            for (field, v) in [
                ("payload.first_name", &p.first_name),
                ("payload.last_name", &p.last_name),
                ("payload.phone", &p.phone),
                ("payload.title", &p.title),
                ("payload.department", &p.department),
            ] {
                opt_short(field, v, limits)?;
            }
            if let Some(e) = &p.email {
                check_email(e, limits)?;
            }
            if let Some(s) = &p.status {
                check_short("payload.status", s, limits.max_name_chars)?;
            }
            let attributes = match p.attributes {
                Some(a) => check_attributes(a, limits)?,
                None => BTreeMap::new(),
            };
            ContactOp::Upsert(Box::new(ContactUpsert {
                first_name: p.first_name,
                last_name: p.last_name,
                email: p.email,
                phone: p.phone,
                title: p.title,
                employer_id: opt_id("payload.employer_id", p.employer_id, limits)?,
                department: p.department,
                status: p.status,
                visibility: p.visibility,
                attributes,
            }))
        }
        "contact.deactivate" => ContactOp::Deactivate {
            reason: reason(payload)?,
        },
        "contact.reactivate" => ContactOp::Reactivate {
            reason: reason(payload)?,
        },
        "contact.approve" => ContactOp::Approve {
            reason: reason(payload)?,
        },
        "contact.reject" => ContactOp::Reject {
            reason: reason(payload)?,
        },
        "contact.change_status" => {
            let p: wire::ChangeStatus = payload_as(payload)?;
            check_short("payload.status", &p.status, limits.max_name_chars)?;
            ContactOp::ChangeStatus { status: p.status }
        }
        "contact.change_employer" => {
            let p: wire::ChangeEmployer = payload_as(payload)?;
            let employer_id = match p.employer_id {
                None => {
                    return Err(Rejection::invalid(
                        "missing field `payload.employer_id` (null removes the employer)",
                    ))
                }
                Some(id) => opt_id("payload.employer_id", id, limits)?,
            };
            opt_short("payload.department", &p.department, limits)?;
            ContactOp::ChangeEmployer {
                employer_id,
                department: p.department,
            }
        }
        "contact.set_visibility" => {
            let p: wire::SetVisibility = payload_as(payload)?;
            ContactOp::SetVisibility {
                visibility: p.visibility,
            }
        }
        "contact.set_attributes" => {
            let p: wire::SetAttributes = payload_as(payload)?;
            let attributes = check_attributes(p.attributes, limits)?;
            if attributes.is_empty() {
                return Err(Rejection::invalid(
                    "payload.attributes must name at least one attribute",
                ));
            }
            ContactOp::SetAttributes { attributes }
        }
        "contact.archive" => {
            let p: wire::Archive = payload_as(payload)?;
            opt_short("payload.reason", &p.reason, limits)?;
            ContactOp::Archive(Archive {
                reason: p.reason,
                employer_id: opt_id("payload.employer_id", p.employer_id, limits)?,
                suppress_email: p.suppress_email.unwrap_or(true),
                visibility: p.visibility.unwrap_or(Visibility::Advisors),
                revoke_user_access: p.revoke_user_access.unwrap_or(false),
            })
        }
        "contact.revive" => {
            let p: wire::Revive = payload_as(payload)?;
            ContactOp::Revive(Revive {
                employer_id: opt_id("payload.employer_id", p.employer_id, limits)?,
                visibility: p.visibility,
                restore_email: p.restore_email.unwrap_or(true),
            })
        }
        "contact.log_activity" => {
            let p: wire::LogActivity = payload_as(payload)?;
            if p.body.len() > limits.max_activity_body_bytes {
                return Err(Rejection::invalid(format!(
                    "payload.body must be at most {} bytes",
                    limits.max_activity_body_bytes
                )));
            }
            if p.body.contains('\0') {
                return Err(Rejection::invalid("payload.body must not contain NUL"));
            }
            opt_short("payload.action_code", &p.action_code, limits)?;
            let occurred_at = match &p.occurred_at {
                Some(s) => Some(parse_time("payload.occurred_at", s)?),
                None => None,
            };
            ContactOp::LogActivity(LogActivity {
                kind: p.kind,
                body: p.body,
                action_code: p.action_code,
                occurred_at,
            })
        }
        "contact.delete" => {
            let _: wire::Empty = payload_as(payload)?;
            ContactOp::Delete
        }
        other => return Err(unknown_type(other)),
    })
}

/// Command types a bulk operation may carry: any contact command but
/// bulk, upsert and delete.
fn bulk_operation_allowed(t: &str) -> bool {
    t.starts_with("contact.")
        && !matches!(t, "contact.bulk" | "contact.upsert" | "contact.delete")
        && COMMAND_TYPES.contains(&t)
}

fn decode_bulk(payload: Map<String, Value>, limits: &Limits) -> Result<BulkCommand, Rejection> {
    let p: wire::Bulk = payload_as(payload)?;
    let target = match (p.contact_ids, p.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > limits.max_bulk_ids {
                return Err(Rejection::invalid(format!(
                    "payload.contact_ids must list 1-{} ids, not {}",
                    limits.max_bulk_ids,
                    ids.len()
                )));
            }
            let mut seen = HashSet::with_capacity(ids.len());
            let mut parsed = Vec::with_capacity(ids.len());
            for id in ids {
                let id = EntityId::parse("payload.contact_ids[]", &id, limits)?;
                // A contact named twice is processed once: its first mention counts.
                if seen.insert(id.clone()) {
                    parsed.push(id);
                }
            }
            BulkTarget::Ids(parsed)
        }
        (None, Some(filter)) => BulkTarget::Employer(EntityId::parse(
            "payload.filter.employer_id",
            &filter.employer_id,
            limits,
        )?),
        _ => {
            return Err(Rejection::invalid(
                "payload must have exactly one of `contact_ids` and `filter`",
            ))
        }
    };
    if !bulk_operation_allowed(&p.operation.kind) {
        return Err(Rejection::invalid(format!(
            "payload.operation.type `{}` is not allowed in a bulk (any contact command but bulk, upsert and delete)",
            printable(&p.operation.kind)
        )));
    }
    let op = decode_contact_op(&p.operation.kind, p.operation.payload, limits)
        .map_err(|r| Rejection::new(r.code, format!("payload.operation: {}", r.message)))?;
    Ok(BulkCommand {
        target,
        op,
        atomic: p.atomic.unwrap_or(false),
    })
}

fn opt_short(field: &str, v: &Option<String>, limits: &Limits) -> Result<(), Rejection> {
    match v {
        Some(s) => check_short(field, s, limits.max_name_chars),
        None => Ok(()),
    }
}

fn opt_id(field: &str, v: Option<String>, limits: &Limits) -> Result<Option<EntityId>, Rejection> {
    v.map(|s| EntityId::parse(field, &s, limits)).transpose()
}

fn check_email(email: &str, limits: &Limits) -> Result<(), Rejection> {
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

fn check_attributes(
    attributes: Map<String, Value>,
    limits: &Limits,
) -> Result<BTreeMap<String, Option<AttrValue>>, Rejection> {
    if attributes.len() > limits.max_attributes {
        return Err(Rejection::invalid(format!(
            "payload.attributes must have at most {} entries",
            limits.max_attributes
        )));
    }
    let mut out = BTreeMap::new();
    for (name, value) in attributes {
        check_short("attribute name", &name, limits.max_id_chars)?;
        let value = match value {
            Value::Null => None,
            Value::String(s) => {
                if s.chars().any(char::is_control) || s.chars().count() > limits.max_name_chars {
                    return Err(Rejection::invalid(format!(
                        "attribute `{}` must be a string of at most {} characters without control characters",
                        printable(&name),
                        limits.max_name_chars
                    )));
                }
                Some(Value::String(s))
            }
            v @ (Value::Bool(_) | Value::Number(_)) => Some(v),
            Value::Array(_) | Value::Object(_) => {
                return Err(Rejection::invalid(format!(
                    "attribute `{}` must be a string, number, bool or null",
                    printable(&name)
                )))
            }
        };
        if name == super::contact::DO_NOT_EMAIL && !matches!(value, None | Some(Value::Bool(_))) {
            return Err(Rejection::invalid(
                "attribute `do_not_email` is reserved and must be a bool or null",
            ));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// Distinguishes a missing field (`None`) from an explicit null (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The JSON Schema of a command type's payload, generated from the wire
/// types the decoder uses (plus the entity id the decoder splits off), so
/// the published schema and the decoder cannot drift apart.
pub fn payload_schema(kind: &str, gen: &mut schemars::SchemaGenerator) -> Option<Value> {
    use wire::*;
    // The wire struct's own schema, inlined; what it refers to stays in `gen`.
    fn inline<T: schemars::JsonSchema>(gen: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let reference = gen.subschema_for::<T>();
        let name = T::schema_name();
        gen.definitions_mut()
            .remove(name.as_ref())
            .and_then(|v| schemars::Schema::try_from(v).ok())
            .unwrap_or(reference)
    }
    let (schema, id) = match kind {
        "contact.upsert" => (inline::<ContactUpsert>(gen), Some("contact_id")),
        "contact.deactivate" | "contact.reactivate" | "contact.approve" | "contact.reject" => {
            (inline::<Reason>(gen), Some("contact_id"))
        }
        "contact.change_status" => (inline::<ChangeStatus>(gen), Some("contact_id")),
        "contact.change_employer" => (inline::<ChangeEmployer>(gen), Some("contact_id")),
        "contact.set_visibility" => (inline::<SetVisibility>(gen), Some("contact_id")),
        "contact.set_attributes" => (inline::<SetAttributes>(gen), Some("contact_id")),
        "contact.archive" => (inline::<Archive>(gen), Some("contact_id")),
        "contact.revive" => (inline::<Revive>(gen), Some("contact_id")),
        "contact.log_activity" => (inline::<LogActivity>(gen), Some("contact_id")),
        "contact.delete" => (inline::<Empty>(gen), Some("contact_id")),
        "contact.bulk" => (inline::<Bulk>(gen), None),
        "employer.upsert" => (inline::<EmployerUpsert>(gen), Some("employer_id")),
        "role.upsert" => (inline::<RoleUpsert>(gen), Some("role_id")),
        "user.upsert" => (inline::<UserUpsert>(gen), Some("user_id")),
        "user.revoke_access" | "user.restore_access" => (inline::<Reason>(gen), Some("user_id")),
        "user.change_role" => (inline::<ChangeRole>(gen), Some("user_id")),
        "user.delete" => (inline::<Empty>(gen), Some("user_id")),
        _ => return None,
    };
    let mut schema = schema.to_value();
    let obj = schema.as_object_mut()?;
    let mut required: Vec<Value> = obj
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(id) = id {
        obj.entry("properties")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()?
            .insert(
                id.to_owned(),
                serde_json::json!({"type": "string", "minLength": 1, "maxLength": 128}),
            );
        required.push(Value::from(id));
    }
    // The key must be present; null removes the employer.
    if kind == "contact.change_employer" {
        required.push(Value::from("employer_id"));
    }
    obj.insert("required".into(), Value::Array(required));
    Some(schema)
}

/// Wire shapes of the payloads, minus the entity id (split off first).
mod wire {
    use super::{double_option, ActivityKind, Visibility};
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::{Map, Value};

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Empty {}

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Reason {
        pub reason: Option<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ContactUpsert {
        pub first_name: Option<String>,
        pub last_name: Option<String>,
        pub email: Option<String>,
        pub phone: Option<String>,
        pub title: Option<String>,
        pub employer_id: Option<String>,
        pub department: Option<String>,
        pub status: Option<String>,
        pub visibility: Option<Visibility>,
        pub attributes: Option<Map<String, Value>>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ChangeStatus {
        pub status: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ChangeEmployer {
        #[serde(default, deserialize_with = "double_option")]
        #[schemars(with = "Option<String>")]
        pub employer_id: Option<Option<String>>,
        pub department: Option<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SetVisibility {
        pub visibility: Visibility,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SetAttributes {
        pub attributes: Map<String, Value>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Archive {
        pub reason: Option<String>,
        pub employer_id: Option<String>,
        pub suppress_email: Option<bool>,
        pub visibility: Option<Visibility>,
        pub revoke_user_access: Option<bool>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Revive {
        pub employer_id: Option<String>,
        pub visibility: Option<Visibility>,
        pub restore_email: Option<bool>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct LogActivity {
        pub kind: ActivityKind,
        pub body: String,
        pub action_code: Option<String>,
        pub occurred_at: Option<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BulkFilter {
        pub employer_id: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BulkOperation {
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(default)]
        pub payload: Map<String, Value>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Bulk {
        pub contact_ids: Option<Vec<String>>,
        pub filter: Option<BulkFilter>,
        pub operation: BulkOperation,
        pub atomic: Option<bool>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EmployerUpsert {
        pub name: String,
        pub departments: Option<Vec<String>>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RoleUpsert {
        pub name: String,
        pub permissions: Vec<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UserUpsert {
        pub email: Option<String>,
        pub name: Option<String>,
        pub employer_id: Option<String>,
        pub contact_id: Option<String>,
        pub role_id: Option<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ChangeRole {
        pub role_id: String,
    }
}
