//! Unit tests of `decode`: the envelope of contract section 2 and the
//! payload of every command type of section 3.

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
        "contact.delete" => json!({"contact_id": "c-17"}),
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
        "user.delete" => json!({"user_id": "u-1"}),
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

// ---------------------------------------------------------------------------
// Every command type
// ---------------------------------------------------------------------------

#[test]
fn a_valid_example_of_every_command_type_is_accepted() {
    assert_eq!(all_types().len(), 21);
    for t in all_types() {
        let c = accepted(&valid(t));
        assert_eq!(c.type_name(), t);
        assert_eq!(c.tenant.as_str(), "acme");
        assert_eq!(
            c.command_id.as_str(),
            "8f0c6f9e-3b0a-4c1e-9a53-1d2f5e0b7a11"
        );
        assert_eq!(c.issued_at, datetime!(2026-11-22 08:00 UTC));
        assert_eq!(c.actor.as_deref(), Some("ats-sync"));
        assert_eq!(c.expected_version, None);
    }
}

#[test]
fn every_command_type_but_bulk_accepts_an_expected_version() {
    for t in all_types().iter().filter(|t| **t != "contact.bulk") {
        let mut v = valid(t);
        v["expected_version"] = json!(7);
        assert_eq!(accepted(&v).expected_version, Some(7), "{t}");
        v["expected_version"] = json!(0);
        assert_eq!(accepted(&v).expected_version, Some(0), "{t}");
    }
}

#[test]
fn every_payload_must_name_its_entity() {
    for t in all_types().iter().filter(|t| **t != "contact.bulk") {
        let key = match t.split('.').next().unwrap() {
            "contact" => "contact_id",
            "employer" => "employer_id",
            "role" => "role_id",
            _ => "user_id",
        };
        let v = with_payload(t, |p| {
            p.remove(key);
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} without {key}");
        let v = with_payload(t, |p| {
            p.insert(key.into(), json!(17));
        });
        assert_eq!(
            code(&v),
            ErrorCode::InvalidCommand,
            "{t} with a numeric {key}"
        );
    }
}

#[test]
fn an_unknown_payload_field_is_refused_for_every_command_type() {
    for t in all_types() {
        let v = with_payload(t, |p| {
            p.insert("colour".into(), json!("red"));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t}");
    }
}

#[test]
fn the_minimal_payload_of_every_command_type_is_accepted() {
    let minimal = [
        ("contact.upsert", json!({"contact_id": "c"})),
        ("contact.deactivate", json!({"contact_id": "c"})),
        ("contact.reactivate", json!({"contact_id": "c"})),
        (
            "contact.change_status",
            json!({"contact_id": "c", "status": "A"}),
        ),
        (
            "contact.change_employer",
            json!({"contact_id": "c", "employer_id": null}),
        ),
        (
            "contact.set_visibility",
            json!({"contact_id": "c", "visibility": "everyone"}),
        ),
        (
            "contact.set_attributes",
            json!({"contact_id": "c", "attributes": {"a": 1}}),
        ),
        ("contact.approve", json!({"contact_id": "c"})),
        ("contact.reject", json!({"contact_id": "c"})),
        ("contact.archive", json!({"contact_id": "c"})),
        ("contact.revive", json!({"contact_id": "c"})),
        (
            "contact.log_activity",
            json!({"contact_id": "c", "kind": "note", "body": ""}),
        ),
        ("contact.delete", json!({"contact_id": "c"})),
        (
            "contact.bulk",
            json!({"filter": {"employer_id": "e"}, "operation": {"type": "contact.approve"}}),
        ),
        ("employer.upsert", json!({"employer_id": "e", "name": "E"})),
        (
            "role.upsert",
            json!({"role_id": "r", "name": "R", "permissions": []}),
        ),
        ("user.upsert", json!({"user_id": "u"})),
        ("user.revoke_access", json!({"user_id": "u"})),
        ("user.restore_access", json!({"user_id": "u"})),
        ("user.change_role", json!({"user_id": "u", "role_id": "r"})),
        ("user.delete", json!({"user_id": "u"})),
    ];
    assert_eq!(minimal.len(), all_types().len());
    for (t, payload) in minimal {
        let c = accepted(&envelope(t, payload));
        assert_eq!(c.type_name(), t);
    }
}

#[test]
fn required_payload_fields_are_required() {
    let cases = [
        ("contact.change_status", "status"),
        ("contact.set_visibility", "visibility"),
        ("contact.set_attributes", "attributes"),
        ("contact.log_activity", "kind"),
        ("contact.log_activity", "body"),
        ("contact.bulk", "operation"),
        ("employer.upsert", "name"),
        ("role.upsert", "name"),
        ("role.upsert", "permissions"),
        ("user.change_role", "role_id"),
    ];
    for (t, field) in cases {
        let v = with_payload(t, |p| {
            p.remove(field);
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} without {field}");
    }
}

// ---------------------------------------------------------------------------
// Decoded contents
// ---------------------------------------------------------------------------

#[test]
fn an_upsert_decodes_every_field() {
    let c = accepted(&valid("contact.upsert"));
    let CommandBody::Contact { contact_id, op } = &c.body else {
        panic!("{c:?}")
    };
    assert_eq!(contact_id, &id("c-17"));
    let ContactOp::Upsert(u) = op else {
        panic!("{op:?}")
    };
    assert_eq!(u.first_name.as_deref(), Some("Ada"));
    assert_eq!(u.email.as_deref(), Some("ada@example.com"));
    assert_eq!(u.employer_id, Some(id("e-1")));
    assert_eq!(u.visibility, Some(Visibility::Advisors));
    assert_eq!(u.attributes["tier"], Some(json!("gold")));
    assert_eq!(u.attributes["score"], Some(json!(3.5)));
    assert_eq!(u.attributes["vip"], Some(json!(true)));
    assert_eq!(u.attributes["old"], None, "null removes");
    assert_eq!(u.attributes["do_not_email"], Some(json!(false)));
}

#[test]
fn strings_are_kept_as_sent() {
    let v = with_payload("contact.upsert", |p| {
        p.insert("first_name".into(), json!("  Ada "));
    });
    let c = accepted(&v);
    let ContactOp::Upsert(u) = contact_op(&c) else {
        panic!()
    };
    assert_eq!(u.first_name.as_deref(), Some("  Ada "));
}

#[test]
fn archive_defaults_follow_the_contract() {
    let c = accepted(&envelope("contact.archive", json!({"contact_id": "c-17"})));
    let ContactOp::Archive(a) = contact_op(&c) else {
        panic!()
    };
    assert!(a.suppress_email);
    assert_eq!(a.visibility, Visibility::Advisors);
    assert!(!a.revoke_user_access);
    assert_eq!(a.employer_id, None);
    assert_eq!(a.reason, None);

    let c = accepted(&valid("contact.archive"));
    let ContactOp::Archive(a) = contact_op(&c) else {
        panic!()
    };
    assert!(!a.suppress_email);
    assert_eq!(a.visibility, Visibility::Owner);
    assert!(a.revoke_user_access);
    assert_eq!(a.employer_id, Some(id("inactive")));
}

#[test]
fn revive_defaults_follow_the_contract() {
    let c = accepted(&envelope("contact.revive", json!({"contact_id": "c-17"})));
    let ContactOp::Revive(r) = contact_op(&c) else {
        panic!()
    };
    assert!(r.restore_email);
    assert_eq!(r.employer_id, None);
    assert_eq!(r.visibility, None);
}

#[test]
fn log_activity_decodes_kind_code_and_occurred_at() {
    let c = accepted(&valid("contact.log_activity"));
    let ContactOp::LogActivity(a) = contact_op(&c) else {
        panic!()
    };
    assert_eq!(a.kind, ActivityKind::Message);
    assert_eq!(a.action_code.as_deref(), Some("deact-1"));
    assert_eq!(a.occurred_at, Some(datetime!(2026-11-21 09:00 UTC)));
    for kind in ["note", "meeting", "task", "message"] {
        let v = with_payload("contact.log_activity", |p| {
            p.insert("kind".into(), json!(kind));
        });
        accepted(&v);
    }
    let v = with_payload("contact.log_activity", |p| {
        p.insert("kind".into(), json!("call"));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = with_payload("contact.log_activity", |p| {
        p.insert("occurred_at".into(), json!("yesterday"));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn change_employer_accepts_null_but_needs_the_key() {
    let c = accepted(&envelope(
        "contact.change_employer",
        json!({"contact_id": "c-17", "employer_id": null}),
    ));
    assert_eq!(
        contact_op(&c),
        &ContactOp::ChangeEmployer {
            employer_id: None,
            department: None
        }
    );
    let c = accepted(&valid("contact.change_employer"));
    assert_eq!(
        contact_op(&c),
        &ContactOp::ChangeEmployer {
            employer_id: Some(id("e-2")),
            department: Some("R&D".into())
        }
    );
    let v = envelope(
        "contact.change_employer",
        json!({"contact_id": "c-17", "department": "R&D"}),
    );
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = envelope("contact.change_employer", json!({"contact_id": "c-17"}));
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn a_bulk_decodes_its_target_operation_and_atomic_flag() {
    let c = accepted(&valid("contact.bulk"));
    let CommandBody::Bulk(b) = &c.body else {
        panic!()
    };
    assert_eq!(b.target, BulkTarget::Ids(vec![id("c-1"), id("c-2")]));
    assert_eq!(
        b.op,
        ContactOp::Deactivate {
            reason: Some("closed".into())
        }
    );
    assert!(b.atomic);

    let c = accepted(&envelope(
        "contact.bulk",
        json!({"filter": {"employer_id": "e-1"}, "operation": {"type": "contact.approve"}}),
    ));
    let CommandBody::Bulk(b) = &c.body else {
        panic!()
    };
    assert_eq!(b.target, BulkTarget::Employer(id("e-1")));
    assert!(!b.atomic, "atomic defaults to false");
}

#[test]
fn a_bulk_names_each_contact_once() {
    let v = with_payload("contact.bulk", |p| {
        p.insert("contact_ids".into(), json!(["c-1", "c-2", "c-1"]));
    });
    let CommandBody::Bulk(b) = accepted(&v).body else {
        panic!()
    };
    assert_eq!(b.target, BulkTarget::Ids(vec![id("c-1"), id("c-2")]));
}

#[test]
fn a_bulk_accepts_every_contact_command_but_bulk_upsert_and_delete() {
    for t in all_types() {
        let mut op_payload = valid_payload(t);
        op_payload.as_object_mut().unwrap().remove("contact_id");
        let v = envelope(
            "contact.bulk",
            json!({"contact_ids": ["c-1"], "operation": {"type": t, "payload": op_payload}}),
        );
        let allowed = t.starts_with("contact.")
            && !matches!(t, "contact.bulk" | "contact.upsert" | "contact.delete");
        if allowed {
            let CommandBody::Bulk(b) = accepted(&v).body else {
                panic!()
            };
            assert_eq!(b.op.type_name(), t);
        } else {
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} in a bulk");
        }
    }
}

#[test]
fn a_bulk_operation_payload_is_validated_like_the_command() {
    let v = envelope(
        "contact.bulk",
        json!({"contact_ids": ["c-1"],
               "operation": {"type": "contact.set_visibility", "payload": {"visibility": "nobody"}}}),
    );
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = envelope(
        "contact.bulk",
        json!({"contact_ids": ["c-1"],
               "operation": {"type": "contact.deactivate", "payload": {"contact_id": "c-1"}}}),
    );
    assert_eq!(
        code(&v),
        ErrorCode::InvalidCommand,
        "the bulk names the contacts"
    );
    let v = envelope(
        "contact.bulk",
        json!({"contact_ids": ["c-1"], "operation": {"type": "contact.nope"}}),
    );
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn user_upsert_and_change_role_decode() {
    let c = accepted(&valid("user.upsert"));
    let CommandBody::User { user_id, op } = &c.body else {
        panic!()
    };
    assert_eq!(user_id, &id("u-1"));
    let UserOp::Upsert(u) = op else { panic!() };
    assert_eq!(u.email.as_deref(), Some("grace@example.com"));
    assert_eq!(u.role_id, Some(id("r-1")));
    assert_eq!(u.contact_id, Some(id("c-17")));
    let c = accepted(&valid("user.change_role"));
    let CommandBody::User { op, .. } = &c.body else {
        panic!()
    };
    assert_eq!(
        op,
        &UserOp::ChangeRole {
            role_id: id("r-admin")
        }
    );
}

#[test]
fn employer_and_role_upserts_decode() {
    let CommandBody::Directory(DirectoryCommand::EmployerUpsert(e)) =
        accepted(&valid("employer.upsert")).body
    else {
        panic!()
    };
    assert_eq!(e.employer_id, id("e-1"));
    assert_eq!(e.name, "Initech");
    assert_eq!(e.departments, Some(vec!["Sales".into(), "R&D".into()]));
    let CommandBody::Directory(DirectoryCommand::RoleUpsert(r)) =
        accepted(&valid("role.upsert")).body
    else {
        panic!()
    };
    assert_eq!(r.role_id, id("r-denied"));
    assert!(r.permissions.is_empty());
}

// ---------------------------------------------------------------------------
// Malformed bodies
// ---------------------------------------------------------------------------

#[test]
fn an_empty_body_is_malformed() {
    assert_eq!(bytes_code(b""), ErrorCode::Malformed);
}

#[test]
fn a_body_that_is_not_json_is_malformed() {
    for body in [&b"hello"[..], b"{", b"{\"command_id\": }", b"{} {}", b"   "] {
        assert_eq!(bytes_code(body), ErrorCode::Malformed, "{body:?}");
    }
}

#[test]
fn a_body_that_is_not_utf8_is_malformed() {
    assert_eq!(
        bytes_code(b"{\"command_id\": \"\xff\"}"),
        ErrorCode::Malformed
    );
    assert_eq!(bytes_code(b"\xfe\xff"), ErrorCode::Malformed);
}

#[test]
fn a_json_value_that_is_not_an_object_is_malformed() {
    for body in [
        "[]",
        "[{\"command_id\": \"x\"}]",
        "\"contact.upsert\"",
        "42",
        "-1.5",
        "true",
        "null",
    ] {
        assert_eq!(bytes_code(body.as_bytes()), ErrorCode::Malformed, "{body}");
    }
}

#[test]
fn a_body_over_the_size_limit_is_malformed() {
    let limits = Limits::default();
    let mut v = valid("contact.log_activity");
    let envelope_len = serde_json::to_vec(&v).unwrap().len();
    v["actor"] = json!("x".repeat(limits.max_body_bytes - envelope_len + 1 + 8));
    let body = serde_json::to_vec(&v).unwrap();
    assert!(body.len() > limits.max_body_bytes);
    let f = decode(&body, &limits).unwrap_err();
    assert_eq!(f.rejection.code, ErrorCode::Malformed);
    assert_eq!(f.command_id, None, "not even read");

    let small = Limits {
        max_body_bytes: 64,
        ..Limits::default()
    };
    let body = serde_json::to_vec(&valid("contact.delete")).unwrap();
    assert!(decode(&body, &Limits::default()).is_ok());
    assert_eq!(
        decode(&body, &small).unwrap_err().rejection.code,
        ErrorCode::Malformed
    );
    let exact = Limits {
        max_body_bytes: body.len(),
        ..Limits::default()
    };
    assert!(decode(&body, &exact).is_ok(), "the limit itself is allowed");
}

#[test]
fn a_body_nested_too_deep_is_malformed() {
    let deep = format!("{{\"payload\": {}1{}}}", "[".repeat(100), "]".repeat(100));
    assert_eq!(bytes_code(deep.as_bytes()), ErrorCode::Malformed);
}

#[test]
fn a_duplicate_key_is_an_invalid_command() {
    let body = br#"{"command_id":"a","command_id":"b","type":"contact.delete","tenant":"acme","issued_at":"2026-11-22T08:00:00Z","payload":{"contact_id":"c"}}"#;
    assert_eq!(bytes_code(body), ErrorCode::InvalidCommand);
}

// ---------------------------------------------------------------------------
// Envelope fields
// ---------------------------------------------------------------------------

#[test]
fn each_required_envelope_field_is_required() {
    for field in ["command_id", "type", "tenant", "issued_at", "payload"] {
        let mut v = valid("contact.deactivate");
        v.as_object_mut().unwrap().remove(field);
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "without {field}");
    }
}

#[test]
fn optional_envelope_fields_may_be_omitted_or_null() {
    let mut v = valid("contact.deactivate");
    v.as_object_mut().unwrap().remove("actor");
    assert_eq!(accepted(&v).actor, None);
    v["actor"] = Value::Null;
    v["expected_version"] = Value::Null;
    let c = accepted(&v);
    assert_eq!(c.actor, None);
    assert_eq!(c.expected_version, None);
}

#[test]
fn envelope_fields_of_the_wrong_type_are_invalid() {
    let cases = [
        ("command_id", json!(42)),
        ("command_id", Value::Null),
        ("type", json!(["contact.deactivate"])),
        ("tenant", json!({"id": "acme"})),
        ("tenant", json!(7)),
        ("issued_at", json!(1_795_334_400)),
        ("actor", json!(true)),
        ("actor", json!("")),
        ("expected_version", json!("7")),
        ("expected_version", json!(true)),
        ("payload", json!([])),
        ("payload", json!("{}")),
        ("payload", Value::Null),
    ];
    for (field, value) in cases {
        let mut v = valid("contact.deactivate");
        v[field] = value.clone();
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{field} = {value}");
    }
}

#[test]
fn an_unknown_top_level_field_is_invalid() {
    let mut v = valid("contact.deactivate");
    v["priority"] = json!("high");
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let mut v = valid("contact.deactivate");
    v["Payload"] = json!({});
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn an_unknown_type_is_invalid() {
    for t in [
        "contact.explode",
        "user.promote",
        "employer.delete",
        "foo",
        "",
        "Contact.upsert",
    ] {
        let v = envelope(
            t,
            json!({"contact_id": "c", "user_id": "u", "employer_id": "e"}),
        );
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t:?}");
    }
}

#[test]
fn a_bad_tenant_is_invalid() {
    for tenant in [
        "Acme".to_owned(),
        "ACME".to_owned(),
        "default".to_owned(),
        "a".repeat(64),
        "".to_owned(),
        "-acme".to_owned(),
        "_acme".to_owned(),
        "ac.me".to_owned(),
        "ac me".to_owned(),
        "acmé".to_owned(),
    ] {
        let mut v = valid("contact.deactivate");
        v["tenant"] = json!(tenant);
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{tenant:?}");
    }
}

#[test]
fn good_tenants_are_accepted() {
    for tenant in [
        "a".to_owned(),
        "0".to_owned(),
        "acme-2_b".to_owned(),
        "a".repeat(63),
    ] {
        let mut v = valid("contact.deactivate");
        v["tenant"] = json!(tenant);
        assert_eq!(accepted(&v).tenant.as_str(), tenant);
    }
}

#[test]
fn issued_at_needs_an_rfc3339_timestamp_with_offset() {
    for bad in [
        "2026-11-22T08:00:00",
        "2026-11-22",
        "2026-11-22 08:00:00",
        "22/11/2026 08:00",
        "now",
        "",
    ] {
        let mut v = valid("contact.deactivate");
        v["issued_at"] = json!(bad);
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad:?}");
    }
    let mut v = valid("contact.deactivate");
    v["issued_at"] = json!("2026-11-22T10:00:00.250+02:00");
    assert_eq!(
        accepted(&v).issued_at,
        datetime!(2026-11-22 08:00:00.250 UTC)
    );
}

#[test]
fn expected_version_must_be_a_non_negative_integer() {
    for bad in [json!(-1), json!(1.5), json!(1e3), json!(-0.5)] {
        let mut v = valid("contact.deactivate");
        v["expected_version"] = bad.clone();
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad}");
    }
    let mut v = valid("contact.deactivate");
    v["expected_version"] = json!(u64::MAX);
    assert_eq!(accepted(&v).expected_version, Some(u64::MAX));
}

#[test]
fn expected_version_is_not_allowed_on_a_bulk() {
    let mut v = valid("contact.bulk");
    v["expected_version"] = json!(3);
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let mut v = valid("contact.bulk");
    v["expected_version"] = Value::Null;
    accepted(&v);
}

// ---------------------------------------------------------------------------
// Ids and strings
// ---------------------------------------------------------------------------

#[test]
fn a_command_id_must_be_printable_ascii() {
    for bad in ["", "tab\there", "nl\n", "é", "bell\u{7}"] {
        let mut v = valid("contact.deactivate");
        v["command_id"] = json!(bad);
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad:?}");
    }
    let mut v = valid("contact.deactivate");
    v["command_id"] = json!("with space ~!");
    accepted(&v);
}

#[test]
fn ids_with_control_characters_are_invalid() {
    let cases = [
        ("contact.deactivate", "contact_id"),
        ("contact.change_employer", "employer_id"),
        ("employer.upsert", "employer_id"),
        ("role.upsert", "role_id"),
        ("user.delete", "user_id"),
        ("user.change_role", "role_id"),
        ("user.upsert", "contact_id"),
        ("contact.archive", "employer_id"),
    ];
    for (t, field) in cases {
        for bad in ["c\u{7}17", "c\n17", "c\u{0}", "\u{7f}"] {
            let v = with_payload(t, |p| {
                p.insert(field.into(), json!(bad));
            });
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {field} {bad:?}");
        }
    }
    let v = with_payload("contact.bulk", |p| {
        p.insert("contact_ids".into(), json!(["c-1", "c\t2"]));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn ids_longer_than_128_characters_are_invalid() {
    for (t, field) in [
        ("contact.deactivate", "contact_id"),
        ("user.delete", "user_id"),
        ("employer.upsert", "employer_id"),
        ("role.upsert", "role_id"),
    ] {
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("x".repeat(129)));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t}");
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("é".repeat(128)));
        });
        accepted(&v);
    }
    let mut v = valid("contact.deactivate");
    v["command_id"] = json!("x".repeat(129));
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    v["command_id"] = json!("x".repeat(128));
    accepted(&v);
}

#[test]
fn an_actor_is_1_to_128_characters() {
    let mut v = valid("contact.deactivate");
    v["actor"] = json!("a".repeat(129));
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    v["actor"] = json!("a".repeat(128));
    assert_eq!(accepted(&v).actor.map(|a| a.len()), Some(128));
}

#[test]
fn names_longer_than_the_name_limit_are_invalid() {
    let limits = Limits::default();
    for (t, field) in [
        ("contact.upsert", "first_name"),
        ("contact.deactivate", "reason"),
        ("employer.upsert", "name"),
        ("role.upsert", "name"),
        ("user.upsert", "name"),
    ] {
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("n".repeat(limits.max_name_chars + 1)));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {field}");
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("n".repeat(limits.max_name_chars)));
        });
        accepted(&v);
    }
}

#[test]
fn an_empty_id_is_invalid() {
    let v = with_payload("contact.deactivate", |p| {
        p.insert("contact_id".into(), json!(""));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn names_and_codes_with_control_characters_are_invalid() {
    let cases = [
        ("contact.upsert", "first_name"),
        ("contact.upsert", "status"),
        ("contact.change_status", "status"),
        ("contact.deactivate", "reason"),
        ("contact.log_activity", "action_code"),
        ("employer.upsert", "name"),
        ("role.upsert", "name"),
        ("user.upsert", "name"),
    ];
    for (t, field) in cases {
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("bad\u{1b}[31m"));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {field}");
    }
    let mut v = valid("contact.deactivate");
    v["actor"] = json!("ats\nsync");
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn a_malformed_email_is_invalid() {
    for t in ["contact.upsert", "user.upsert"] {
        for bad in ["ada", "@example.com", "ada@", "ada @example.com"] {
            let v = with_payload(t, |p| {
                p.insert("email".into(), json!(bad));
            });
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {bad:?}");
        }
    }
}

#[test]
fn a_visibility_outside_the_three_values_is_invalid() {
    for bad in [json!("staff"), json!("Everyone"), json!(1), Value::Null] {
        let v = with_payload("contact.set_visibility", |p| {
            p.insert("visibility".into(), bad.clone());
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad}");
    }
}

// ---------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------

#[test]
fn attribute_values_that_are_objects_or_arrays_are_invalid() {
    for t in ["contact.set_attributes", "contact.upsert"] {
        for bad in [json!({"a": 1}), json!([1, 2]), json!([])] {
            let v = with_payload(t, |p| {
                p.insert("attributes".into(), json!({"tier": bad}));
            });
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {bad}");
        }
    }
}

#[test]
fn do_not_email_must_be_a_bool_or_null() {
    for bad in [json!("yes"), json!(1), json!(0), json!("true")] {
        let v = with_payload("contact.set_attributes", |p| {
            p.insert("attributes".into(), json!({"do_not_email": bad}));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad}");
    }
    for good in [json!(true), json!(false), Value::Null] {
        let v = with_payload("contact.set_attributes", |p| {
            p.insert("attributes".into(), json!({"do_not_email": good}));
        });
        accepted(&v);
    }
}

#[test]
fn set_attributes_needs_at_least_one_attribute_and_an_object() {
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), json!({}));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), Value::Null);
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn more_attributes_than_the_limit_are_invalid() {
    let limits = Limits::default();
    let many: serde_json::Map<String, Value> = (0..=limits.max_attributes)
        .map(|i| (format!("a{i}"), json!(i)))
        .collect();
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), Value::Object(many.clone()));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let mut fewer = many;
    fewer.remove("a0");
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), Value::Object(fewer));
    });
    accepted(&v);
}

#[test]
fn attribute_names_and_strings_with_control_characters_are_invalid() {
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), json!({"ti\ner": "x"}));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), json!({"tier": "go\u{0}ld"}));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

// ---------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------

#[test]
fn a_bulk_with_both_contact_ids_and_filter_is_invalid() {
    let v = with_payload("contact.bulk", |p| {
        p.insert("filter".into(), json!({"employer_id": "e-1"}));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn a_bulk_with_neither_contact_ids_nor_filter_is_invalid() {
    let v = with_payload("contact.bulk", |p| {
        p.remove("contact_ids");
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn a_bulk_must_name_between_one_and_the_limit_of_contacts() {
    let v = with_payload("contact.bulk", |p| {
        p.insert("contact_ids".into(), json!([]));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);

    let limits = Limits::default();
    let ids = |n: usize| json!((0..n).map(|i| format!("c-{i}")).collect::<Vec<_>>());
    let v = with_payload("contact.bulk", |p| {
        p.insert("contact_ids".into(), ids(limits.max_bulk_ids + 1));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = with_payload("contact.bulk", |p| {
        p.insert("contact_ids".into(), ids(limits.max_bulk_ids));
    });
    let CommandBody::Bulk(b) = accepted(&v).body else {
        panic!()
    };
    assert!(matches!(b.target, BulkTarget::Ids(ids) if ids.len() == 10_000));

    let small = Limits {
        max_bulk_ids: 2,
        ..Limits::default()
    };
    let v = with_payload("contact.bulk", |p| {
        p.insert("contact_ids".into(), ids(3));
    });
    assert_eq!(
        decode_with(&v, &small).unwrap_err().rejection.code,
        ErrorCode::InvalidCommand
    );
}

#[test]
fn a_bulk_of_bulk_upsert_or_delete_is_invalid() {
    for t in [
        "contact.bulk",
        "contact.upsert",
        "contact.delete",
        "user.delete",
    ] {
        let v = with_payload("contact.bulk", |p| {
            p.insert("operation".into(), json!({"type": t, "payload": {}}));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t}");
    }
}

#[test]
fn a_bulk_filter_needs_exactly_an_employer_id() {
    for filter in [
        json!({}),
        json!({"employer_id": 1}),
        json!({"employer_id": "e", "x": 1}),
    ] {
        let v = envelope(
            "contact.bulk",
            json!({"filter": filter, "operation": {"type": "contact.approve"}}),
        );
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{filter}");
    }
}

// ---------------------------------------------------------------------------
// Activity body
// ---------------------------------------------------------------------------

#[test]
fn an_activity_body_over_the_limit_is_invalid() {
    let limits = Limits::default();
    let v = with_payload("contact.log_activity", |p| {
        p.insert(
            "body".into(),
            json!("x".repeat(limits.max_activity_body_bytes + 1)),
        );
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = with_payload("contact.log_activity", |p| {
        p.insert(
            "body".into(),
            json!("x".repeat(limits.max_activity_body_bytes)),
        );
    });
    accepted(&v);
    // The limit is in bytes: 8193 two-byte characters are over 16 KiB.
    let v = with_payload("contact.log_activity", |p| {
        p.insert(
            "body".into(),
            json!("é".repeat(limits.max_activity_body_bytes / 2 + 1)),
        );
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn an_activity_body_may_hold_newlines_but_not_nul() {
    let v = with_payload("contact.log_activity", |p| {
        p.insert("body".into(), json!("line 1\nline 2\ttab"));
    });
    accepted(&v);
    let v = with_payload("contact.log_activity", |p| {
        p.insert("body".into(), json!("nul\u{0}"));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

// ---------------------------------------------------------------------------
// What a failure keeps for the dead-letter store
// ---------------------------------------------------------------------------

#[test]
fn a_refused_command_keeps_its_readable_id_tenant_and_type() {
    let v = with_payload("contact.deactivate", |p| {
        p.insert("colour".into(), json!("red"));
    });
    let f = failure(&v);
    assert_eq!(f.rejection.code, ErrorCode::InvalidCommand);
    assert_eq!(
        f.command_id.as_deref(),
        Some("8f0c6f9e-3b0a-4c1e-9a53-1d2f5e0b7a11")
    );
    assert_eq!(f.tenant.as_deref(), Some("acme"));
    assert_eq!(f.command_type.as_deref(), Some("contact.deactivate"));
}

#[test]
fn a_refused_command_keeps_even_the_invalid_values_it_could_read() {
    let mut v = valid("contact.deactivate");
    v["tenant"] = json!("Acme");
    let f = failure(&v);
    assert_eq!(f.rejection.code, ErrorCode::InvalidCommand);
    assert_eq!(f.tenant.as_deref(), Some("Acme"));
    assert_eq!(f.command_type.as_deref(), Some("contact.deactivate"));

    let f = failure(&envelope("contact.explode", json!({"contact_id": "c-17"})));
    assert_eq!(f.rejection.code, ErrorCode::InvalidCommand);
    assert_eq!(f.command_type.as_deref(), Some("contact.explode"));
    assert_eq!(f.tenant.as_deref(), Some("acme"));
}

#[test]
fn a_refused_command_leaves_unreadable_fields_empty() {
    let mut v = valid("contact.deactivate");
    v["command_id"] = json!(42);
    v.as_object_mut().unwrap().remove("tenant");
    let f = failure(&v);
    assert_eq!(f.command_id, None);
    assert_eq!(f.tenant, None);
    assert_eq!(f.command_type.as_deref(), Some("contact.deactivate"));

    let f = decode(b"not json", &Limits::default()).unwrap_err();
    assert_eq!((f.command_id, f.tenant, f.command_type), (None, None, None));
}

#[test]
fn a_rejection_message_does_not_quote_personal_data() {
    let v = with_payload("contact.upsert", |p| {
        p.insert("email".into(), json!("secret person@example.com"));
    });
    let f = failure(&v);
    assert_eq!(f.rejection.code, ErrorCode::InvalidCommand);
    assert!(
        !f.rejection.message.contains("secret"),
        "{}",
        f.rejection.message
    );
}

#[test]
fn a_nul_anywhere_is_refused_and_the_readable_ids_are_kept() {
    let in_body = with_payload("contact.log_activity", |p| {
        p.insert("body".into(), json!("before\u{0}after"));
    });
    let f = failure(&in_body);
    assert_eq!(f.rejection.code, ErrorCode::InvalidCommand);
    assert!(f.rejection.message.contains("NUL"));
    assert_eq!(f.tenant.as_deref(), Some("acme"));
    let mut in_key = valid("contact.deactivate");
    in_key["payload"]["rea\u{0}son"] = json!("x");
    assert_eq!(code(&in_key), ErrorCode::InvalidCommand);
    let mut in_tenant = valid("contact.deactivate");
    in_tenant["tenant"] = json!("ac\u{0}me");
    let f = failure(&in_tenant);
    assert_eq!(f.rejection.code, ErrorCode::InvalidCommand);
    assert_eq!(f.tenant.as_deref(), Some("ac\u{0}me"));
}
