//! Activity body: decoding.

use super::*;

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
