//! contact.delete and the tombstone: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;

#[test]
fn deleting_a_contact_suppresses_its_email_then_deletes_it() {
    let mut sim = Sim::new_in(World::with_policy(|p| p.delete_mode = DeleteMode::Hard));
    let d = sim.ok(5, delete());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactEmailSuppressed, ContactDeleted]);
    for e in &d.events {
        assert_eq!(e.version, 2);
        assert_eq!(e.entity_kind, EntityKind::Contact);
        assert!(!e.data.contains_key("contact"), "no snapshot on delete");
    }
    let s = event(&d, ContactEmailSuppressed);
    assert_eq!(s.data["email"], EMAIL);
    assert_eq!(s.data["reasons"], json!(["deleted"]));
    let del = event(&d, ContactDeleted);
    assert_eq!(del.data["contact_id"], CID);
    assert_eq!(del.data["email"], EMAIL);
    assert_eq!(del.data["actor"], "ats-sync");
    assert_eq!(
        d.write,
        Some(ContactRecord::Deleted {
            at: ts(5),
            version: 2,
            kept: None,
        })
    );
    assert!(d.erases_activity());
    assert_eq!(d.version_after(&ContactRecord::Absent), None);
}

#[test]
fn deleting_a_suppressed_contact_emits_only_deleted() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    let d = sim.ok(5, delete());
    assert_eq!(types(&d), [ContactDeleted]);
    assert_eq!(d.events[0].version, 3);
}

#[test]
fn deleting_a_contact_without_email_emits_only_deleted() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(5, delete());
    assert_eq!(types(&d), [ContactDeleted]);
    assert_eq!(event(&d, ContactDeleted).data["email"], Value::Null);
}

#[test]
fn deleting_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(100, deactivate());
    sim.ok(100, upsert(|u| u.first_name = Some("Augusta".into())));
    let d = sim.ok(1, delete());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactDeleted]);
}

#[test]
fn deleting_when_the_tenant_forbids_it_is_delete_forbidden() {
    let mut sim = Sim::new_in(World::with_policy(|p| p.allow_contact_delete = false));
    assert_eq!(sim.refused(5, delete()), ErrorCode::DeleteForbidden);
    assert_eq!(sim.version(), 1);
}

#[test]
fn deleting_a_missing_or_deleted_contact_is_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, delete()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    sim.ok(5, delete());
    assert_eq!(sim.refused(10, delete()), ErrorCode::NotFound);
    assert_eq!(sim.refused(3, delete()), ErrorCode::NotFound);
}

#[test]
fn deleting_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, delete(), Some(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert_eq!(
        sim.run_expecting(5, delete(), Some(1)).unwrap().outcome,
        Outcome::Applied
    );
}

#[test]
fn commands_issued_before_the_delete_are_stale() {
    let before_delete = [
        standard_upsert(),
        deactivate(),
        reactivate(),
        change_status("B"),
        change_employer(Some("e-2"), None),
        set_visibility(Visibility::Owner),
        set_attrs(&[("tier", Some(json!("gold")))]),
        approve(),
        reject(),
        archive(),
        revive(),
        activity(ActivityKind::Note, None),
    ];
    for op in before_delete {
        let mut sim = Sim::new();
        sim.ok(10, delete());
        let name = op.type_name();
        let d = sim.run(5, op).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_stale(&d);
        assert!(
            matches!(sim.record, ContactRecord::Deleted { .. }),
            "{name}"
        );
    }
}

#[test]
fn commands_issued_after_the_delete_are_not_found() {
    let after_delete = [
        deactivate(),
        reactivate(),
        change_status("B"),
        change_employer(Some("e-2"), None),
        set_visibility(Visibility::Owner),
        set_attrs(&[("tier", Some(json!("gold")))]),
        approve(),
        reject(),
        archive(),
        revive(),
        activity(ActivityKind::Note, None),
    ];
    for op in after_delete {
        let mut sim = Sim::new();
        sim.ok(10, delete());
        let name = op.type_name();
        assert_eq!(sim.refused(15, op), ErrorCode::NotFound, "{name}");
    }
}

#[test]
fn an_upsert_after_the_delete_creates_a_new_contact_at_version_one() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("gold")))]));
    sim.ok(2, change_employer(Some("e-2"), None));
    sim.ok(10, delete());
    let d = sim.ok(15, upsert(|u| u.email = Some("new@example.com".into())));
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactCreated]);
    let c = written(&d);
    assert_eq!(c.version, 1);
    assert_eq!(d.events[0].version, 1);
    assert_eq!(
        c.first_name, None,
        "nothing of the deleted contact survives"
    );
    assert!(c.attributes.is_empty());
    assert!(c.former_employers.is_empty());
    assert_eq!(c.employer_id, None);
    assert_eq!(c.aspects.get(PROFILE), Some(&ts(15)));
}

#[test]
fn an_upsert_with_the_same_issued_at_as_the_delete_creates_a_new_contact() {
    let mut sim = Sim::new();
    sim.ok(10, delete());
    let d = sim.ok(10, standard_upsert());
    assert_eq!(written(&d).version, 1);
}

#[test]
fn an_upsert_after_the_delete_still_needs_an_email_or_a_name() {
    let mut sim = Sim::new();
    sim.ok(10, delete());
    assert_eq!(
        sim.refused(15, upsert(|u| u.title = Some("CTO".into()))),
        ErrorCode::InvalidCommand
    );
}
