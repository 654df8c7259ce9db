//! user.restore and the soft delete's restore window: decisions and outcomes.

use super::*;

#[test]
fn restoring_brings_the_user_back_one_version_after_its_delete() {
    let mut sim = Sim::new();
    sim.ok(1, revoke());
    let before = sim.user().clone();
    sim.ok(5, UserOp::Delete);
    assert_eq!(sim.refused(6, revoke()), ErrorCode::NotFound);
    let d = sim.ok(6, UserOp::Restore);
    assert_applied(&d, 3, &[UserRestored]);
    let restored = written(&d);
    assert_eq!(restored.version, 4);
    assert!(!restored.site_access, "as it was");
    assert_eq!(d.events[0].data["user"]["email"], before.email.as_str());
}

#[test]
fn restore_is_refused_for_a_live_user_and_outside_the_window() {
    let mut sim = Sim::new();
    assert_eq!(
        sim.refused(1, UserOp::Restore),
        ErrorCode::InvalidTransition
    );
    assert_eq!(
        Sim::empty().refused(1, UserOp::Restore),
        ErrorCode::NotFound
    );
    let mut hard = Sim::new_in(World::with_policy(|p| p.delete_mode = DeleteMode::Hard));
    hard.ok(5, UserOp::Delete);
    assert_eq!(hard.refused(6, UserOp::Restore), ErrorCode::NotFound);
    let mut closed = Sim::new_in(World::with_policy(|p| p.restore_days = 0));
    closed.ok(5, UserOp::Delete);
    assert_eq!(closed.refused(6, UserOp::Restore), ErrorCode::NotFound);
}
