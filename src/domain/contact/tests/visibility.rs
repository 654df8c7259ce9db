//! contact.set_visibility: decisions and outcomes.

use super::*;

#[test]
fn setting_the_visibility_applies_with_from_and_to() {
    let mut sim = Sim::new();
    let d = sim.ok(5, set_visibility(Visibility::Advisors));
    assert_applied(&d, 1, &[ContactVisibilityChanged]);
    let e = event(&d, ContactVisibilityChanged);
    assert_eq!(e.data["from"], "everyone");
    assert_eq!(e.data["to"], "advisors");
    assert_eq!(written(&d).visibility, Visibility::Advisors);
}

#[test]
fn setting_the_current_visibility_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, set_visibility(Visibility::Everyone));
    assert_unchanged(&d, 1);
    assert_stale(&sim.ok(4, set_visibility(Visibility::Owner)));
}

#[test]
fn setting_the_visibility_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, set_visibility(Visibility::Owner));
    assert_stale(&sim.ok(5, set_visibility(Visibility::Advisors)));
    assert_eq!(sim.contact().visibility, Visibility::Owner);
}

#[test]
fn visibility_commands_are_refused_for_missing_conflicting_or_frozen_contacts() {
    let mut sim = Sim::empty();
    assert_eq!(
        sim.refused(5, set_visibility(Visibility::Owner)),
        ErrorCode::NotFound
    );
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, set_visibility(Visibility::Owner), Some(2))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    sim.ok(6, reject());
    assert_eq!(
        sim.refused(7, set_visibility(Visibility::Owner)),
        ErrorCode::Frozen
    );
}
