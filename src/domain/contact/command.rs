//! Contact commands (contract section 3): their declarations, decoded
//! forms, wire shapes and decoding.

use super::{ActivityKind, Visibility, DO_NOT_EMAIL};
use crate::domain::ids::{check_short, EntityId, Limits};
use crate::domain::kinds::command_kinds;
use crate::domain::outcome::Rejection;
use crate::domain::payload::{
    self, check_email, opt_id, opt_short, parse_time, payload_as, printable, Empty, Reason,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use time::OffsetDateTime;

command_kinds! {
    /// The `contact.*` commands of one contact.
    pub enum ContactKind {
        Upsert = "contact.upsert", id "contact_id", aspect "profile, and those of the fields given",
            bulk false, frozen false, destructive Never, blocklist Shared, wire wire::ContactUpsert;
        Deactivate = "contact.deactivate", id "contact_id", aspect "activation",
            bulk true, frozen false, destructive WhenApplied, blocklist Shared, wire Reason;
        Reactivate = "contact.reactivate", id "contact_id", aspect "activation",
            bulk true, frozen false, destructive Never, blocklist Shared, wire Reason;
        ChangeStatus = "contact.change_status", id "contact_id", aspect "status",
            bulk true, frozen false, destructive Never, blocklist Shared, wire wire::ChangeStatus;
        ChangeEmployer = "contact.change_employer", id "contact_id", aspect "employer",
            bulk true, frozen false, destructive Never, blocklist Shared, wire wire::ChangeEmployer;
        SetVisibility = "contact.set_visibility", id "contact_id", aspect "visibility",
            bulk true, frozen false, destructive Never, blocklist Shared, wire wire::SetVisibility;
        SetAttributes = "contact.set_attributes", id "contact_id", aspect "attribute:NAME, one per attribute",
            bulk true, frozen false, destructive Never, blocklist Shared, wire wire::SetAttributes;
        Approve = "contact.approve", id "contact_id", aspect "approval",
            bulk true, frozen true, destructive Never, blocklist Shared, wire Reason;
        Reject = "contact.reject", id "contact_id", aspect "approval",
            bulk true, frozen true, destructive WhenApplied, blocklist Shared, wire Reason;
        Archive = "contact.archive", id "contact_id", aspect "activation (advancing those it touches)",
            bulk true, frozen true, destructive WhenApplied, blocklist Shared, wire wire::Archive;
        Revive = "contact.revive", id "contact_id", aspect "activation (advancing those it touches)",
            bulk true, frozen true, destructive Never, blocklist Shared, wire wire::Revive;
        LogActivity = "contact.log_activity", id "contact_id", aspect "none (append-only; activation for action codes)",
            bulk true, frozen true, destructive WhenItDeactivates, blocklist Shared, wire wire::LogActivity;
        Restore = "contact.restore", id "contact_id", aspect "all",
            bulk true, frozen true, destructive Never, blocklist Shared, wire Empty;
        Delete = "contact.delete", id "contact_id", aspect "all (never stale)",
            bulk false, frozen true, destructive WhenApplied, blocklist Shared, wire Empty;
        Erase = "contact.erase", id "contact_id", aspect "all (never stale)",
            bulk false, frozen true, destructive WhenApplied, blocklist Exclusive, wire Empty;
        ConfirmConsent = "contact.confirm_consent", id "contact_id", aspect "none (the blocklist is not ordered by time)",
            bulk false, frozen true, destructive Never, blocklist Exclusive, wire Empty;
    }
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
    /// Brings a soft-deleted contact back, within its restore window.
    Restore,
    Delete,
    /// Forgets the contact for good: its data, activity and dead letters;
    /// its address goes on the tenant's blocklist.
    Erase,
    /// The person opted in again: their address leaves the blocklist.
    ConfirmConsent,
}

impl ContactOp {
    pub fn kind(&self) -> ContactKind {
        match self {
            ContactOp::Upsert(_) => ContactKind::Upsert,
            ContactOp::Deactivate { .. } => ContactKind::Deactivate,
            ContactOp::Reactivate { .. } => ContactKind::Reactivate,
            ContactOp::ChangeStatus { .. } => ContactKind::ChangeStatus,
            ContactOp::ChangeEmployer { .. } => ContactKind::ChangeEmployer,
            ContactOp::SetVisibility { .. } => ContactKind::SetVisibility,
            ContactOp::SetAttributes { .. } => ContactKind::SetAttributes,
            ContactOp::Approve { .. } => ContactKind::Approve,
            ContactOp::Reject { .. } => ContactKind::Reject,
            ContactOp::Archive(_) => ContactKind::Archive,
            ContactOp::Revive(_) => ContactKind::Revive,
            ContactOp::LogActivity(_) => ContactKind::LogActivity,
            ContactOp::Restore => ContactKind::Restore,
            ContactOp::Delete => ContactKind::Delete,
            ContactOp::Erase => ContactKind::Erase,
            ContactOp::ConfirmConsent => ContactKind::ConfirmConsent,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// The contact-creating upsert's fields: it may create the contact
    /// (the batch locks a placeholder row first) and the address it gives
    /// is looked up on the blocklist before deciding.
    pub fn upsert(&self) -> Option<&ContactUpsert> {
        match self {
            ContactOp::Upsert(u) => Some(u),
            ContactOp::Deactivate { .. }
            | ContactOp::Reactivate { .. }
            | ContactOp::ChangeStatus { .. }
            | ContactOp::ChangeEmployer { .. }
            | ContactOp::SetVisibility { .. }
            | ContactOp::SetAttributes { .. }
            | ContactOp::Approve { .. }
            | ContactOp::Reject { .. }
            | ContactOp::Archive(_)
            | ContactOp::Revive(_)
            | ContactOp::LogActivity(_)
            | ContactOp::Restore
            | ContactOp::Delete
            | ContactOp::Erase
            | ContactOp::ConfirmConsent => None,
        }
    }

    /// Whether deciding it needs the users linked to the contact (archive
    /// and revive change their site access).
    pub fn needs_linked_users(&self) -> bool {
        match self {
            ContactOp::Archive(_) | ContactOp::Revive(_) => true,
            ContactOp::Upsert(_)
            | ContactOp::Deactivate { .. }
            | ContactOp::Reactivate { .. }
            | ContactOp::ChangeStatus { .. }
            | ContactOp::ChangeEmployer { .. }
            | ContactOp::SetVisibility { .. }
            | ContactOp::SetAttributes { .. }
            | ContactOp::Approve { .. }
            | ContactOp::Reject { .. }
            | ContactOp::LogActivity(_)
            | ContactOp::Restore
            | ContactOp::Delete
            | ContactOp::Erase
            | ContactOp::ConfirmConsent => false,
        }
    }
}

/// Decodes the payload of a contact command (its `contact_id` already taken).
pub fn decode(
    kind: ContactKind,
    payload: Map<String, Value>,
    limits: &Limits,
) -> Result<ContactOp, Rejection> {
    let reason = |payload| payload::reason(payload, limits);
    Ok(match kind {
        ContactKind::Upsert => upsert(payload_as(payload)?, limits)?,
        ContactKind::Deactivate => ContactOp::Deactivate {
            reason: reason(payload)?,
        },
        ContactKind::Reactivate => ContactOp::Reactivate {
            reason: reason(payload)?,
        },
        ContactKind::Approve => ContactOp::Approve {
            reason: reason(payload)?,
        },
        ContactKind::Reject => ContactOp::Reject {
            reason: reason(payload)?,
        },
        ContactKind::ChangeStatus => {
            let p: wire::ChangeStatus = payload_as(payload)?;
            check_short("payload.status", &p.status, limits.max_name_chars)?;
            ContactOp::ChangeStatus { status: p.status }
        }
        ContactKind::ChangeEmployer => change_employer(payload_as(payload)?, limits)?,
        ContactKind::SetVisibility => {
            let p: wire::SetVisibility = payload_as(payload)?;
            ContactOp::SetVisibility {
                visibility: p.visibility,
            }
        }
        ContactKind::SetAttributes => {
            let p: wire::SetAttributes = payload_as(payload)?;
            let attributes = check_attributes(p.attributes, limits)?;
            if attributes.is_empty() {
                return Err(Rejection::invalid(
                    "payload.attributes must name at least one attribute",
                ));
            }
            ContactOp::SetAttributes { attributes }
        }
        ContactKind::Archive => archive(payload_as(payload)?, limits)?,
        ContactKind::Revive => {
            let p: wire::Revive = payload_as(payload)?;
            ContactOp::Revive(Revive {
                employer_id: opt_id("payload.employer_id", p.employer_id, limits)?,
                visibility: p.visibility,
                restore_email: p.restore_email.unwrap_or(true),
            })
        }
        ContactKind::LogActivity => log_activity(payload_as(payload)?, limits)?,
        ContactKind::Restore => {
            payload::empty(payload)?;
            ContactOp::Restore
        }
        ContactKind::Delete => {
            payload::empty(payload)?;
            ContactOp::Delete
        }
        ContactKind::Erase => {
            payload::empty(payload)?;
            ContactOp::Erase
        }
        ContactKind::ConfirmConsent => {
            payload::empty(payload)?;
            ContactOp::ConfirmConsent
        }
    })
}

fn upsert(p: wire::ContactUpsert, limits: &Limits) -> Result<ContactOp, Rejection> {
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
    Ok(ContactOp::Upsert(Box::new(ContactUpsert {
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
    })))
}

fn change_employer(p: wire::ChangeEmployer, limits: &Limits) -> Result<ContactOp, Rejection> {
    let employer_id = match p.employer_id {
        None => {
            return Err(Rejection::invalid(
                "missing field `payload.employer_id` (null removes the employer)",
            ))
        }
        Some(id) => opt_id("payload.employer_id", id, limits)?,
    };
    opt_short("payload.department", &p.department, limits)?;
    Ok(ContactOp::ChangeEmployer {
        employer_id,
        department: p.department,
    })
}

fn archive(p: wire::Archive, limits: &Limits) -> Result<ContactOp, Rejection> {
    opt_short("payload.reason", &p.reason, limits)?;
    Ok(ContactOp::Archive(Archive {
        reason: p.reason,
        employer_id: opt_id("payload.employer_id", p.employer_id, limits)?,
        suppress_email: p.suppress_email.unwrap_or(true),
        visibility: p.visibility.unwrap_or(Visibility::Advisors),
        revoke_user_access: p.revoke_user_access.unwrap_or(false),
    }))
}

fn log_activity(p: wire::LogActivity, limits: &Limits) -> Result<ContactOp, Rejection> {
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
    Ok(ContactOp::LogActivity(LogActivity {
        kind: p.kind,
        body: p.body,
        action_code: p.action_code,
        occurred_at,
    }))
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
        if name == DO_NOT_EMAIL && !matches!(value, None | Some(Value::Bool(_))) {
            return Err(Rejection::invalid(
                "attribute `do_not_email` is reserved and must be a bool or null",
            ));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// Wire shapes of the contact payloads, minus `contact_id` (split off first).
pub mod wire {
    use crate::domain::contact::{ActivityKind, Visibility};
    use crate::domain::payload::double_option;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::{Map, Value};

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
}
