//! Unit tests of `admit`: size, header depth, clock skew, routing key and
//! producer grants.

use super::*;
use crate::domain::policy::ProducerGrant;
use serde_json::json;
use std::collections::BTreeMap;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);

fn body(issued_at: &str, kind: &str, payload: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "command_id": "c-1", "type": kind, "tenant": "acme",
        "issued_at": issued_at, "payload": payload,
    }))
    .unwrap()
}

/// A `contact.deactivate` of contact `c` issued at `issued_at`.
fn deactivate(issued_at: &str) -> Vec<u8> {
    body(issued_at, "contact.deactivate", json!({"contact_id": "c"}))
}

fn arrival<'a>(body: &'a [u8], routing_key: &'a str) -> Arrival<'a> {
    Arrival {
        body,
        body_len: body.len(),
        routing_key,
        user_id: None,
        replayed: false,
        original_user: None,
        headers_depth: 1,
    }
}

fn code(r: Result<Command, DecodeFailure>) -> Option<ErrorCode> {
    r.err().map(|f| f.rejection.code)
}

#[test]
fn headers_nested_past_the_limit_are_malformed_and_keep_the_ids() {
    let limits = Limits::default();
    let p = Producers::default();
    let b = deactivate("2026-11-22T08:00:00Z");
    let key = "acme.contact.deactivate";
    let at = |headers_depth| Arrival {
        headers_depth,
        ..arrival(&b, key)
    };
    for ok in [0, 1, MAX_HEADER_DEPTH] {
        assert!(admit(&at(ok), &limits, &p, NOW).is_ok(), "{ok}");
    }
    let refused = admit(&at(MAX_HEADER_DEPTH + 1), &limits, &p, NOW).unwrap_err();
    assert_eq!(refused.rejection.code, ErrorCode::Malformed);
    assert!(refused.rejection.message.contains("nested"));
    assert_eq!(refused.command_id.as_deref(), Some("c-1"));
    assert_eq!(refused.tenant.as_deref(), Some("acme"));
}

#[test]
fn a_routing_key_is_quoted_with_only_the_characters_keys_hold() {
    let b = deactivate("2026-11-22T08:00:00Z");
    let cmd = decode(&b, &Limits::default()).unwrap();
    let m = check_routing_key(&cmd, "acme.x`y\"z'\u{1b}[31m é")
        .unwrap_err()
        .message;
    assert_eq!(
        m,
        "routing key `acme.x?y?z???31m??` does not match the body: expected `acme.contact.deactivate`"
    );
}

#[test]
fn a_body_over_the_limit_is_malformed_without_being_decoded() {
    let limits = Limits::default();
    // Only a prefix was kept: decoding it would say "not JSON".
    let prefix = b"{\"command_id\"";
    let a = Arrival {
        body_len: limits.max_body_bytes + 1,
        ..arrival(prefix, "acme.contact.deactivate")
    };
    let f = admit(&a, &limits, &Producers::default(), NOW).unwrap_err();
    assert_eq!(f.rejection.code, ErrorCode::Malformed);
    assert!(f.rejection.message.contains("more than the limit"));
}

#[test]
fn issued_at_may_be_ahead_by_the_skew_and_no_more() {
    let limits = Limits::default();
    let p = Producers::default();
    let ok = deactivate("2026-11-22T09:00:00Z");
    assert!(admit(&arrival(&ok, "acme.contact.deactivate"), &limits, &p, NOW).is_ok());
    let ahead = deactivate("2026-11-22T09:00:01Z");
    let f = admit(
        &arrival(&ahead, "acme.contact.deactivate"),
        &limits,
        &p,
        NOW,
    )
    .unwrap_err();
    assert_eq!(f.rejection.code, ErrorCode::InvalidCommand);
    assert!(
        f.rejection.message.contains("1h"),
        "{}",
        f.rejection.message
    );
    assert_eq!(f.command_id.as_deref(), Some("c-1"));
    let far = deactivate("9999-01-01T00:00:00Z");
    assert_eq!(
        code(admit(
            &arrival(&far, "acme.contact.deactivate"),
            &limits,
            &p,
            NOW
        )),
        Some(ErrorCode::InvalidCommand)
    );
}

#[test]
fn the_routing_key_must_be_tenant_dot_type_of_the_body() {
    let limits = Limits::default();
    let p = Producers::default();
    let b = deactivate("2026-11-22T08:00:00Z");
    for wrong in [
        "globex.contact.deactivate",
        "acme.contact.delete",
        "acme.contact",
        "",
    ] {
        let f = admit(&arrival(&b, wrong), &limits, &p, NOW).unwrap_err();
        assert_eq!(f.rejection.code, ErrorCode::InvalidCommand, "{wrong}");
        assert!(f.rejection.message.contains("acme.contact.deactivate"));
    }
}

#[test]
fn replays_are_authorised_as_the_original_producer_and_bulks_by_their_operation() {
    let mut grants = BTreeMap::new();
    grants.insert(
        "narrow".to_string(),
        ProducerGrant {
            tenants: vec!["acme".into()],
            commands: vec!["contact.bulk".into(), "contact.deactivate".into()],
            replay: false,
        },
    );
    grants.insert(
        "operator".to_string(),
        ProducerGrant {
            replay: true,
            ..ProducerGrant::default()
        },
    );
    let p = Producers::new(grants);
    let limits = Limits::default();
    let b = deactivate("2026-11-22T08:00:00Z");
    let key = "acme.contact.deactivate";
    let as_user = |user, replayed, original| Arrival {
        user_id: Some(user),
        replayed,
        original_user: original,
        ..arrival(&b, key)
    };
    assert!(admit(&as_user("narrow", false, None), &limits, &p, NOW).is_ok());
    assert!(admit(&as_user("operator", true, Some("narrow")), &limits, &p, NOW).is_ok());
    // The operator's own (empty) grants, a replay of nobody, and a
    // producer posing as a replay of the operator: all forbidden.
    for a in [
        as_user("operator", false, Some("narrow")),
        as_user("operator", true, None),
    ] {
        assert_eq!(
            code(admit(&a, &limits, &p, NOW)),
            Some(ErrorCode::Forbidden)
        );
    }
    let bulk = |op: &str| {
        body(
            "2026-11-22T08:00:00Z",
            "contact.bulk",
            json!({"contact_ids": ["c"], "operation": {"type": op, "payload": {}}}),
        )
    };
    let allowed = bulk("contact.deactivate");
    let a = Arrival {
        user_id: Some("narrow"),
        ..arrival(&allowed, "acme.contact.bulk")
    };
    assert!(admit(&a, &limits, &p, NOW).is_ok());
    let inner_not_granted = bulk("contact.archive");
    let a = Arrival {
        user_id: Some("narrow"),
        ..arrival(&inner_not_granted, "acme.contact.bulk")
    };
    assert_eq!(
        code(admit(&a, &limits, &p, NOW)),
        Some(ErrorCode::Forbidden)
    );
}
