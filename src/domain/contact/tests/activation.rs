//! contact.deactivate / contact.reactivate: decisions and outcomes.

use super::*;

#[test]
fn deactivating_an_active_contact_applies_and_suppresses_its_email() {
    let mut sim = Sim::new();
    let d = sim.ok(5, deactivate());
    assert_applied(&d, 1, &[ContactDeactivated, ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactDeactivated).data["reason"],
        "left the company"
    );
    let s = event(&d, ContactEmailSuppressed);
    assert_eq!(s.data["email"], EMAIL);
    assert_eq!(s.data["reasons"], json!(["inactive"]));
    let c = written(&d);
    assert!(!c.active);
    assert!(c.email_suppressed);
    assert_eq!(c.aspects.get(ACTIVATION), Some(&ts(5)));
    assert_eq!(d.events[0].data["contact"]["active"], false);
}

#[test]
fn deactivating_an_inactive_contact_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    let d = sim.ok(10, deactivate());
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(10)));
}

#[test]
fn an_unchanged_deactivate_makes_an_older_reactivate_stale() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    sim.ok(10, deactivate());
    let d = sim.ok(7, reactivate());
    assert_stale(&d);
    assert!(!sim.contact().active);
}

#[test]
fn deactivating_with_an_older_issued_at_than_the_activation_aspect_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    sim.ok(20, reactivate());
    let d = sim.ok(15, deactivate());
    assert_stale(&d);
    assert!(sim.contact().active);
}

#[test]
fn commands_with_equal_timestamps_apply_in_arrival_order() {
    let mut sim = Sim::new();
    let d = sim.ok(0, deactivate());
    assert_applied(&d, 1, &[ContactDeactivated, ContactEmailSuppressed]);
    let d = sim.ok(0, reactivate());
    assert_applied(&d, 2, &[ContactReactivated, ContactEmailUnsuppressed]);
}

#[test]
fn reactivating_an_inactive_contact_applies_and_unsuppresses_its_email() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    let d = sim.ok(10, reactivate());
    assert_applied(&d, 2, &[ContactReactivated, ContactEmailUnsuppressed]);
    assert_eq!(event(&d, ContactReactivated).data["reason"], "came back");
    assert_eq!(event(&d, ContactEmailUnsuppressed).data["email"], EMAIL);
    assert!(written(&d).active);
    assert!(!written(&d).email_suppressed);
}

#[test]
fn reactivating_an_active_contact_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, reactivate());
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(5)));
}

#[test]
fn reactivating_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    assert_stale(&sim.ok(5, reactivate()));
    assert!(!sim.contact().active);
}

#[test]
fn reactivating_a_still_suppressed_contact_emits_no_unsuppressed() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("do_not_email", Some(json!(true)))]));
    sim.ok(2, deactivate());
    let d = sim.ok(3, reactivate());
    assert_applied(&d, 3, &[ContactReactivated]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn deactivating_a_contact_without_email_emits_no_suppression_event() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(5, deactivate());
    assert_applied(&d, 1, &[ContactDeactivated]);
    assert!(!written(&d).email_suppressed);
}

#[test]
fn activation_commands_on_a_missing_contact_are_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, deactivate()), ErrorCode::NotFound);
    assert_eq!(sim.refused(5, reactivate()), ErrorCode::NotFound);
}

#[test]
fn deactivating_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, deactivate(), Some(0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let err = sim.run_expecting(5, deactivate(), Some(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let d = sim.run_expecting(5, deactivate(), Some(1)).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
}

#[test]
fn a_version_conflict_wins_over_staleness() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    let err = sim.run_expecting(5, reactivate(), Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn activation_commands_on_a_rejected_contact_are_frozen() {
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(sim.refused(5, deactivate()), ErrorCode::Frozen);
    assert_eq!(sim.refused(5, reactivate()), ErrorCode::Frozen);
}

#[test]
fn a_stale_command_on_one_aspect_does_not_block_another_aspect() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    assert_stale(&sim.ok(5, reactivate()));
    let d = sim.ok(5, change_status("B"));
    assert_applied(&d, 2, &[ContactStatusChanged]);
    let d = sim.ok(5, set_visibility(Visibility::Owner));
    assert_applied(&d, 3, &[ContactVisibilityChanged]);
    let d = sim.ok(5, change_employer(Some("e-2"), None));
    assert_applied(&d, 4, &[ContactEmployerChanged]);
    let d = sim.ok(5, set_attrs(&[("tier", Some(json!("gold")))]));
    assert_applied(&d, 5, &[ContactAttributesChanged]);
    let d = sim.ok(5, upsert(|u| u.title = Some("CTO".into())));
    assert_applied(&d, 6, &[ContactUpdated]);
}
