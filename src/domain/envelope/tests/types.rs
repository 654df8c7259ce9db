//! Every command type: decoding.

use super::*;

#[test]
fn a_valid_example_of_every_command_type_is_accepted() {
    assert_eq!(all_types().len(), 27);
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
fn every_command_type_but_bulk_and_cancel_accepts_an_expected_version() {
    for t in all_types()
        .iter()
        .filter(|t| !["contact.bulk", "command.cancel"].contains(t))
    {
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
            "command" => "command_id",
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
        ("contact.restore", json!({"contact_id": "c"})),
        ("contact.erase", json!({"contact_id": "c"})),
        ("contact.confirm_consent", json!({"contact_id": "c"})),
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
        ("user.restore", json!({"user_id": "u"})),
        ("user.erase", json!({"user_id": "u"})),
        ("command.cancel", json!({"command_id": "c"})),
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

#[test]
fn effective_at_is_a_timestamp_or_a_date_on_the_commands_that_may_wait() {
    use crate::domain::effective::EffectiveAt;
    let mut v = valid("contact.deactivate");
    v["effective_at"] = json!("2026-12-31");
    assert_eq!(
        accepted(&v).effective_at,
        Some(EffectiveAt::Day(time::macros::date!(2026 - 12 - 31)))
    );
    v["effective_at"] = json!("2026-12-31T17:00:00-05:00");
    assert_eq!(
        accepted(&v).effective_at,
        Some(EffectiveAt::At(datetime!(2026-12-31 22:00 UTC)))
    );
    v["effective_at"] = json!(null);
    assert_eq!(accepted(&v).effective_at, None);
    for bad in [json!("next friday"), json!(20261231), json!("2026-02-30")] {
        v["effective_at"] = bad.clone();
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad}");
    }
    for t in all_types() {
        let mut v = valid(t);
        v["effective_at"] = json!("2026-12-31");
        let refused =
            t.ends_with(".upsert") || ["contact.log_activity", "command.cancel"].contains(&t);
        if refused {
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t}");
        } else {
            assert!(accepted(&v).effective_at.is_some(), "{t}");
        }
    }
}
