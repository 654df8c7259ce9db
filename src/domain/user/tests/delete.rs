//! user.delete and the tombstone: decisions and outcomes.

use super::*;

#[test]
fn deleting_a_user_applies_with_ids_and_email_but_no_snapshot() {
    let mut sim = Sim::new_in(World::with_policy(|p| p.delete_mode = DeleteMode::Hard));
    let d = sim.ok(5, UserOp::Delete);
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [UserDeleted]);
    let e = &d.events[0];
    assert_eq!(e.version, 2);
    assert_eq!(e.entity_kind, EntityKind::User);
    assert_eq!(e.data["user_id"], UID);
    assert_eq!(e.data["email"], EMAIL);
    assert_eq!(e.data["actor"], "hr-sync");
    assert!(!e.data.contains_key("user"));
    assert_eq!(
        d.write,
        Some(UserRecord::Deleted {
            at: ts(5),
            version: 2,
            kept: None,
        })
    );
}

#[test]
fn deleting_a_user_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(100, revoke());
    sim.ok(100, upsert(|u| u.name = Some("Grace Hopper".into())));
    let d = sim.ok(1, UserOp::Delete);
    assert_eq!(d.outcome, Outcome::Applied);
}

#[test]
fn deleting_a_missing_user_is_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, UserOp::Delete), ErrorCode::NotFound);
}

#[test]
fn deleting_a_deleted_user_again_later_is_not_found() {
    let mut sim = Sim::new();
    sim.ok(10, UserOp::Delete);
    assert_eq!(sim.refused(15, UserOp::Delete), ErrorCode::NotFound);
}

/// Contract section 3: "`delete` is never stale". A second delete is refused
/// as for contacts (`contact.delete` of a tombstone is `not_found` whatever
/// its `issued_at`).
#[test]
fn deleting_a_deleted_user_with_an_older_issued_at_is_not_found_since_delete_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(10, UserOp::Delete);
    assert_eq!(sim.refused(5, UserOp::Delete), ErrorCode::NotFound);
}

#[test]
fn deleting_a_user_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, UserOp::Delete, Some(7)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn user_commands_issued_before_the_delete_are_stale() {
    for op in [
        standard_upsert(),
        revoke(),
        restore(),
        change_role("r-admin"),
    ] {
        let mut sim = Sim::new();
        sim.ok(10, UserOp::Delete);
        let name = op.type_name();
        let d = sim.run(5, op).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_stale(&d);
        assert!(matches!(sim.record, UserRecord::Deleted { .. }), "{name}");
    }
}

#[test]
fn user_commands_issued_after_the_delete_are_not_found() {
    for op in [revoke(), restore(), change_role("r-admin")] {
        let mut sim = Sim::new();
        sim.ok(10, UserOp::Delete);
        let name = op.type_name();
        assert_eq!(sim.refused(15, op), ErrorCode::NotFound, "{name}");
    }
}

#[test]
fn an_upsert_after_the_delete_creates_a_new_user_at_version_one() {
    let mut sim = Sim::new();
    sim.ok(3, revoke());
    sim.ok(10, UserOp::Delete);
    let d = sim.ok(15, upsert(|u| u.email = Some("new@example.com".into())));
    assert_eq!(types(&d), [UserCreated]);
    let u = written(&d);
    assert_eq!(u.version, 1);
    assert!(u.site_access);
    assert_eq!(u.name, None, "nothing of the deleted user survives");
    assert_eq!(u.role_id, None);
    assert_eq!(d.events[0].version, 1);
}

#[test]
fn an_upsert_after_the_delete_still_needs_an_email() {
    let mut sim = Sim::new();
    sim.ok(10, UserOp::Delete);
    assert_eq!(
        sim.refused(15, upsert(|u| u.name = Some("Grace".into()))),
        ErrorCode::InvalidCommand
    );
}
