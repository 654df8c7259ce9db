//! user.change_role: decisions and outcomes.

use super::*;

#[test]
fn changing_the_role_applies_with_from_and_to() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_role("r-admin"));
    assert_applied(&d, 1, &[UserRoleChanged]);
    assert_eq!(d.events[0].data["from"], "r-basic");
    assert_eq!(d.events[0].data["to"], "r-admin");
    let u = written(&d);
    assert_eq!(u.role_id, Some(id("r-admin")));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn giving_a_first_role_reports_from_null() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.email = Some(EMAIL.into())));
    let d = sim.ok(5, change_role("r-admin"));
    assert_eq!(d.events[0].data["from"], Value::Null);
}

#[test]
fn changing_to_the_current_role_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_role("r-basic"));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn changing_the_role_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, change_role("r-admin"));
    assert_stale(&sim.ok(5, change_role("r-other")));
    assert_eq!(sim.user().role_id, Some(id("r-admin")));
}

#[test]
fn changing_to_a_missing_role_is_role_not_found() {
    let mut sim = Sim::new();
    sim.missing_roles.push("r-ghost");
    assert_eq!(
        sim.refused(5, change_role("r-ghost")),
        ErrorCode::RoleNotFound
    );
}

#[test]
fn changing_the_role_is_refused_for_missing_or_conflicting_users() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, change_role("r-admin")), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, change_role("r-admin"), Some(2))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}
