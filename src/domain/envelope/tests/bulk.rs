//! Bulk: decoding.

use super::*;

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
