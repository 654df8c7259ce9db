//! Decoded contents: decoding.

use super::*;

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
fn a_bulk_accepts_every_contact_command_but_bulk_upsert_delete_and_the_privacy_ones() {
    for t in all_types() {
        let mut op_payload = valid_payload(t);
        op_payload.as_object_mut().unwrap().remove("contact_id");
        let v = envelope(
            "contact.bulk",
            json!({"contact_ids": ["c-1"], "operation": {"type": t, "payload": op_payload}}),
        );
        let allowed = t.starts_with("contact.")
            && !matches!(
                t,
                "contact.bulk"
                    | "contact.upsert"
                    | "contact.delete"
                    | "contact.erase"
                    | "contact.confirm_consent"
            );
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
