//! user.erase (contract section 11).

use super::*;
use crate::domain::blocklist::email_sha256;

fn tombstone(d: &Decision<UserRecord>) -> (u64, bool) {
    match &d.write {
        Some(UserRecord::Deleted { version, kept, .. }) => (*version, kept.is_some()),
        other => panic!("no tombstone written: {other:?}"),
    }
}

#[test]
fn erasing_a_user_leaves_a_tombstone_and_the_hash_of_the_address() {
    let mut sim = Sim::new();
    let d = sim.ok(5, UserOp::Erase);
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [UserErased]);
    assert_eq!(tombstone(&d), (2, false));
    let data = &d.events[0].data;
    assert_eq!(d.events[0].version, 2);
    assert_eq!(data["user_id"], UID);
    assert_eq!(data["email_sha256"], email_sha256(EMAIL));
    assert!(!serde_json::to_string(data).unwrap().contains(EMAIL));
}

#[test]
fn a_soft_deleted_user_can_be_erased_and_not_restored_after() {
    let mut sim = Sim::new();
    sim.ok(5, UserOp::Delete);
    let d = sim.ok(3, UserOp::Erase);
    assert_eq!(tombstone(&d), (3, false), "never stale");
    assert_eq!(sim.refused(6, restore()), ErrorCode::NotFound);
    assert_eq!(sim.refused(7, UserOp::Erase), ErrorCode::NotFound);
}

#[test]
fn erasing_what_holds_nothing_is_not_found() {
    assert_eq!(Sim::empty().refused(1, UserOp::Erase), ErrorCode::NotFound);
    let mut hard = Sim::new_in(World::with_policy(|p| p.delete_mode = DeleteMode::Hard));
    hard.ok(5, UserOp::Delete);
    assert_eq!(hard.refused(6, UserOp::Erase), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let e = sim.run_expecting(5, UserOp::Erase, Some(4)).unwrap_err();
    assert_eq!(e.code, ErrorCode::VersionConflict);
}
