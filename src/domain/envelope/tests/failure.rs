//! What a failure keeps for the dead-letter store: decoding.

use super::*;

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
