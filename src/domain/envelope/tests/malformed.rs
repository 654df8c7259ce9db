//! Malformed bodies: decoding.

use super::*;

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
