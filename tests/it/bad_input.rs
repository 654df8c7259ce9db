//! A catalogue of bad messages: each is refused with the right code, replied
//! to, stored as a dead letter with its original bytes, and the worker goes
//! on to apply the next valid command.

use crate::helpers::{issued_at, TestEnv};
use lifecycle_worker::amqp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn envelope(kind: &str, payload: Value) -> Value {
    json!({
        "command_id": format!("bad-{}", uuid::Uuid::new_v4().simple()),
        "type": kind,
        "tenant": "acme",
        "issued_at": issued_at(1),
        "payload": payload,
    })
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// (name, body, expected code)
fn catalogue() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let ok = || envelope("contact.deactivate", json!({"contact_id": "c-1"}));
    let many_ids: Vec<String> = (0..10_001).map(|i| format!("c{i}")).collect();
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let dup = format!(
        r#"{{"command_id":"dup-1","type":"contact.deactivate","tenant":"acme","tenant":"globex","issued_at":"{}","payload":{{"contact_id":"c-1"}}}}"#,
        issued_at(1)
    );
    vec![
        ("not JSON", b"hello, worker".to_vec(), "malformed"),
        (
            "invalid UTF-8",
            b"{\"command_id\":\"\xff\xfe\"}".to_vec(),
            "malformed",
        ),
        ("empty body", vec![], "malformed"),
        ("JSON array", b"[1,2,3]".to_vec(), "malformed"),
        (
            "JSON string",
            b"\"contact.deactivate\"".to_vec(),
            "malformed",
        ),
        ("JSON number", b"42".to_vec(), "malformed"),
        ("JSON null", b"null".to_vec(), "malformed"),
        (
            "truncated JSON",
            b"{\"command_id\":\"x\",".to_vec(),
            "malformed",
        ),
        (
            "missing command_id",
            bytes(&without(ok(), "command_id")),
            "invalid_command",
        ),
        (
            "missing type",
            bytes(&without(ok(), "type")),
            "invalid_command",
        ),
        (
            "missing tenant",
            bytes(&without(ok(), "tenant")),
            "invalid_command",
        ),
        (
            "missing issued_at",
            bytes(&without(ok(), "issued_at")),
            "invalid_command",
        ),
        (
            "missing payload",
            bytes(&without(ok(), "payload")),
            "invalid_command",
        ),
        (
            "missing contact_id",
            bytes(&envelope("contact.deactivate", json!({}))),
            "invalid_command",
        ),
        (
            "command_id is a number",
            bytes(&with(ok(), "command_id", json!(17))),
            "invalid_command",
        ),
        (
            "payload is a string",
            bytes(&with(ok(), "payload", json!("c-1"))),
            "invalid_command",
        ),
        (
            "visibility of the wrong kind",
            bytes(&envelope(
                "contact.set_visibility",
                json!({"contact_id": "c-1", "visibility": "public"}),
            )),
            "invalid_command",
        ),
        (
            "unknown top-level field",
            bytes(&with(ok(), "priority", json!("high"))),
            "invalid_command",
        ),
        (
            "unknown payload field",
            bytes(&envelope(
                "contact.deactivate",
                json!({"contact_id": "c-1", "when": "now"}),
            )),
            "invalid_command",
        ),
        (
            "unknown type",
            bytes(&envelope("contact.explode", json!({"contact_id": "c-1"}))),
            "invalid_command",
        ),
        (
            "uppercase tenant",
            bytes(&with(ok(), "tenant", json!("Acme"))),
            "invalid_command",
        ),
        (
            "reserved tenant",
            bytes(&with(ok(), "tenant", json!("default"))),
            "invalid_command",
        ),
        (
            "timestamp without offset",
            bytes(&with(ok(), "issued_at", json!("2026-11-22T08:00:00"))),
            "invalid_command",
        ),
        (
            "negative expected_version",
            bytes(&with(ok(), "expected_version", json!(-1))),
            "invalid_command",
        ),
        (
            "fractional expected_version",
            bytes(&with(ok(), "expected_version", json!(1.5))),
            "invalid_command",
        ),
        (
            "oversize body",
            bytes(&envelope(
                "contact.log_activity",
                json!({"contact_id": "c-1", "kind": "note", "body": "x".repeat(300 * 1024)}),
            )),
            "malformed",
        ),
        (
            "oversize activity body",
            bytes(&envelope(
                "contact.log_activity",
                json!({"contact_id": "c-1", "kind": "note", "body": "x".repeat(17 * 1024)}),
            )),
            "invalid_command",
        ),
        (
            "oversize bulk",
            bytes(&envelope(
                "contact.bulk",
                json!({"contact_ids": many_ids, "operation": {"type": "contact.deactivate", "payload": {}}}),
            )),
            "invalid_command",
        ),
        (
            "expected_version on bulk",
            bytes(&with(
                envelope(
                    "contact.bulk",
                    json!({"contact_ids": ["c-1"], "operation": {"type": "contact.deactivate", "payload": {}}}),
                ),
                "expected_version",
                json!(1),
            )),
            "invalid_command",
        ),
        (
            "control character in an id",
            bytes(&envelope(
                "contact.deactivate",
                json!({"contact_id": "c\u{1}1"}),
            )),
            "invalid_command",
        ),
        (
            "id longer than 128",
            bytes(&envelope(
                "contact.deactivate",
                json!({"contact_id": "c".repeat(129)}),
            )),
            "invalid_command",
        ),
        (
            "name longer than 256",
            bytes(&envelope(
                "contact.upsert",
                json!({"contact_id": "c-1", "first_name": "n".repeat(257)}),
            )),
            "invalid_command",
        ),
        (
            "attribute that is an object",
            bytes(&envelope(
                "contact.set_attributes",
                json!({"contact_id": "c-1", "attributes": {"x": {"y": 1}}}),
            )),
            "invalid_command",
        ),
        (
            "too many attributes",
            bytes(&envelope(
                "contact.set_attributes",
                json!({"contact_id": "c-1", "attributes": (0..101).map(|i| (format!("a{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
            )),
            "invalid_command",
        ),
        ("duplicate keys", dup.into_bytes(), "invalid_command"),
        (
            "deep nesting",
            bytes(&envelope(
                "contact.set_attributes",
                json!({"contact_id": "c-1", "attributes": {"x": deep}}),
            )),
            "malformed",
        ),
    ]
}

#[tokio::test]
async fn every_bad_message_is_dead_lettered_with_its_code_and_the_next_command_applies() {
    let env = TestEnv::start().await;
    let cases = catalogue();
    assert!(cases.len() >= 25);
    for (name, body, code) in &cases {
        let reply = env
            .send_raw("acme.contact.deactivate", body, amqp::json_properties())
            .await;
        assert_eq!(reply["outcome"], "rejected", "{name}: {reply}");
        assert_eq!(reply["error"]["code"], *code, "{name}: {reply}");
        assert!(
            !reply["error"]["message"].as_str().unwrap().is_empty(),
            "{name}"
        );
    }
    let dead = env.dead_letters().await;
    let kept = env.settings.limits.dead_letter_body_bytes;
    for (name, body, code) in &cases {
        let sha = hex::encode(Sha256::digest(body));
        let row = dead
            .iter()
            .find(|d| d.body_sha256 == sha)
            .unwrap_or_else(|| panic!("{name}: no dead letter"));
        // The body is kept whole up to the limit, else its first bytes.
        assert_eq!(row.body, body[..body.len().min(kept)], "{name}");
        assert_eq!(row.body_len, body.len() as i64, "{name}");
        assert_eq!(row.code, *code, "{name}: {}", row.message);
        assert_eq!(row.routing_key, "acme.contact.deactivate", "{name}");
        assert_eq!(row.failure_count, 1, "{name}");
    }
    assert_eq!(dead.len(), cases.len(), "one row per distinct message");

    let valid = env.command(
        "acme",
        "contact.upsert",
        2,
        json!({"contact_id": "c-1", "email": "c@example.com"}),
    );
    assert_eq!(env.send(&valid).await["outcome"], "applied");
    env.finish().await;
}
