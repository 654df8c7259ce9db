//! Envelope fields: decoding.

use super::*;

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
