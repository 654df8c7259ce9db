//! user.revoke_access / user.restore_access: decisions and outcomes.

use super::*;

#[test]
fn revoking_access_applies() {
    let mut sim = Sim::new();
    let d = sim.ok(5, revoke());
    assert_applied(&d, 1, &[UserAccessRevoked]);
    assert_eq!(d.events[0].data["reason"], "left");
    assert_eq!(d.events[0].data["user"]["site_access"], false);
    let u = written(&d);
    assert!(!u.site_access);
    assert_eq!(u.aspects.get(ACCESS), Some(&ts(5)));
}

#[test]
fn revoking_access_of_a_revoked_user_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(5, revoke());
    let d = sim.ok(10, revoke());
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(ACCESS), Some(&ts(10)));
    assert_stale(&sim.ok(7, restore()));
    assert!(!sim.user().site_access);
}

#[test]
fn revoking_access_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, restore());
    assert_stale(&sim.ok(5, revoke()));
    assert!(sim.user().site_access);
}

#[test]
fn restoring_access_applies() {
    let mut sim = Sim::new();
    sim.ok(5, revoke());
    let d = sim.ok(10, restore());
    assert_applied(&d, 2, &[UserAccessRestored]);
    assert_eq!(d.events[0].data["reason"], "back");
    assert!(written(&d).site_access);
}

#[test]
fn restoring_access_of_a_user_with_access_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, restore());
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(ACCESS), Some(&ts(5)));
}

#[test]
fn restoring_access_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, revoke());
    assert_stale(&sim.ok(5, restore()));
    assert!(!sim.user().site_access);
}

#[test]
fn access_commands_with_equal_timestamps_apply_in_arrival_order() {
    let mut sim = Sim::new();
    assert_applied(&sim.ok(5, revoke()), 1, &[UserAccessRevoked]);
    assert_applied(&sim.ok(5, restore()), 2, &[UserAccessRestored]);
}

#[test]
fn a_stale_access_command_does_not_block_the_profile_or_role() {
    let mut sim = Sim::new();
    sim.ok(10, revoke());
    assert_stale(&sim.ok(5, restore()));
    assert_applied(
        &sim.ok(5, upsert(|u| u.name = Some("Grace Hopper".into()))),
        2,
        &[UserUpdated],
    );
    assert_applied(&sim.ok(5, change_role("r-admin")), 3, &[UserRoleChanged]);
}

#[test]
fn access_commands_are_refused_for_missing_or_conflicting_users() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, revoke()), ErrorCode::NotFound);
    assert_eq!(sim.refused(5, restore()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, revoke(), Some(3)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}
