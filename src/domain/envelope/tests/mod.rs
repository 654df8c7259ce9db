//! Unit tests of `decode`: the envelope of contract section 2 and the
//! payload of every command type of section 3.

mod activity;
mod attributes;
mod bulk;
mod contents;
mod failure;
mod fields;
mod malformed;
mod strings;
mod types;

use super::{decode, Command, CommandBody, DecodeFailure};
use crate::domain::contact::bulk::BulkTarget;
use crate::domain::contact::command::ContactOp;
use crate::domain::contact::{ActivityKind, Visibility};
use crate::domain::directory::DirectoryCommand;
use crate::domain::ids::{EntityId, Limits};
use crate::domain::outcome::ErrorCode;
use crate::domain::registry::CommandType;
use crate::domain::user::command::UserOp;
use serde_json::{json, Value};
use time::macros::datetime;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Every command type's name.
fn all_types() -> Vec<&'static str> {
    CommandType::all().map(CommandType::name).collect()
}

/// A valid envelope around `payload`.
fn envelope(command_type: &str, payload: Value) -> Value {
    json!({
        "command_id": "8f0c6f9e-3b0a-4c1e-9a53-1d2f5e0b7a11",
        "type": command_type,
        "tenant": "acme",
        "issued_at": "2026-11-22T08:00:00Z",
        "actor": "ats-sync",
        "payload": payload,
    })
}

/// A valid payload of every command type.
fn valid_payload(command_type: &str) -> Value {
    match command_type {
        "contact.upsert" => json!({
            "contact_id": "c-17",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": "+44 20 0000 0000",
            "title": "CTO",
            "employer_id": "e-1",
            "department": "Sales",
            "status": "A",
            "visibility": "advisors",
            "attributes": {"tier": "gold", "score": 3.5, "vip": true, "old": null,
                           "do_not_email": false}
        }),
        "contact.deactivate" | "contact.reactivate" | "contact.approve" | "contact.reject" => {
            json!({"contact_id": "c-17", "reason": "left the company"})
        }
        "contact.change_status" => json!({"contact_id": "c-17", "status": "B"}),
        "contact.change_employer" => {
            json!({"contact_id": "c-17", "employer_id": "e-2", "department": "R&D"})
        }
        "contact.set_visibility" => json!({"contact_id": "c-17", "visibility": "owner"}),
        "contact.set_attributes" => {
            json!({"contact_id": "c-17", "attributes": {"tier": "gold", "gone": null}})
        }
        "contact.archive" => json!({
            "contact_id": "c-17", "reason": "retired", "employer_id": "inactive",
            "suppress_email": false, "visibility": "owner", "revoke_user_access": true
        }),
        "contact.revive" => json!({
            "contact_id": "c-17", "employer_id": "e-1", "visibility": "everyone",
            "restore_email": false
        }),
        "contact.log_activity" => json!({
            "contact_id": "c-17", "kind": "message", "body": "left us",
            "action_code": "deact-1", "occurred_at": "2026-11-21T10:00:00+01:00"
        }),
        "contact.delete" | "contact.restore" | "contact.erase" | "contact.confirm_consent" => {
            json!({"contact_id": "c-17"})
        }
        "contact.bulk" => json!({
            "contact_ids": ["c-1", "c-2"],
            "operation": {"type": "contact.deactivate", "payload": {"reason": "closed"}},
            "atomic": true
        }),
        "employer.upsert" => {
            json!({"employer_id": "e-1", "name": "Initech", "departments": ["Sales", "R&D"]})
        }
        "role.upsert" => {
            json!({"role_id": "r-denied", "name": "Denied Access Role", "permissions": []})
        }
        "user.upsert" => json!({
            "user_id": "u-1", "email": "grace@example.com", "name": "Grace",
            "employer_id": "e-1", "contact_id": "c-17", "role_id": "r-1"
        }),
        "user.revoke_access" | "user.restore_access" => {
            json!({"user_id": "u-1", "reason": "left"})
        }
        "user.change_role" => json!({"user_id": "u-1", "role_id": "r-admin"}),
        "user.delete" | "user.restore" | "user.erase" => json!({"user_id": "u-1"}),
        "command.cancel" => json!({"command_id": "8f0c6f9e-0000-4c1e-9a53-1d2f5e0b7a11"}),
        other => panic!("no example for {other}"),
    }
}

fn valid(command_type: &str) -> Value {
    envelope(command_type, valid_payload(command_type))
}

fn decode_with(v: &Value, limits: &Limits) -> Result<Command, DecodeFailure> {
    decode(&serde_json::to_vec(v).unwrap(), limits)
}

fn accepted(v: &Value) -> Command {
    decode_with(v, &Limits::default())
        .unwrap_or_else(|f| panic!("refused: {:?} for {v}", f.rejection))
}

fn failure(v: &Value) -> DecodeFailure {
    match decode_with(v, &Limits::default()) {
        Ok(c) => panic!("accepted: {c:?} from {v}"),
        Err(f) => f,
    }
}

fn code(v: &Value) -> ErrorCode {
    failure(v).rejection.code
}

fn bytes_code(body: &[u8]) -> ErrorCode {
    decode(body, &Limits::default()).unwrap_err().rejection.code
}

/// A valid `type` envelope with `f` applied to its payload.
fn with_payload(command_type: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut v = valid(command_type);
    f(v["payload"].as_object_mut().unwrap());
    v
}

fn contact_op(c: &Command) -> &ContactOp {
    match &c.body {
        CommandBody::Contact { op, .. } => op,
        other => panic!("not a contact command: {other:?}"),
    }
}

fn id(s: &str) -> EntityId {
    EntityId::trusted(s)
}

#[test]
fn the_subject_of_a_message_is_read_whether_or_not_it_decodes() {
    use crate::domain::envelope::subject_of;
    use crate::domain::outcome::EntityKind;
    let contact =
        br#"{"type":"contact.upsert","payload":{"contact_id":"c-1","email":"not an email"}}"#;
    assert_eq!(
        subject_of(contact),
        Some((EntityKind::Contact, "c-1".to_owned()))
    );
    let user = br#"{"type":"user.erase","bogus":1,"payload":{"user_id":"u-1"}}"#;
    assert_eq!(subject_of(user), Some((EntityKind::User, "u-1".to_owned())));
    for none in [
        &br#"{"type":"contact.bulk","payload":{"contact_ids":["c-1"]}}"#[..],
        br#"{"type":"employer.upsert","payload":{"employer_id":"e-1"}}"#,
        br#"{"type":"contact.upsert","payload":{"contact_id":7}}"#,
        br#"{"type":"contact.upsert"}"#,
        br#"not json"#,
        br#"[1,2]"#,
    ] {
        assert_eq!(subject_of(none), None, "{}", String::from_utf8_lossy(none));
    }
}
