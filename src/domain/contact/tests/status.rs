//! contact.change_status, shown_on_employer: decisions and outcomes.

use super::*;

#[test]
fn changing_the_status_applies_with_from_and_to() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_status("B"));
    assert_applied(&d, 1, &[ContactStatusChanged]);
    let e = event(&d, ContactStatusChanged);
    assert_eq!(e.data["from"], "A");
    assert_eq!(e.data["to"], "B");
    assert_eq!(written(&d).status, "B");
    assert_eq!(written(&d).aspects.get(STATUS), Some(&ts(5)));
}

#[test]
fn changing_to_a_suppressing_status_suppresses_and_hides_the_contact() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_status("N"));
    assert_applied(&d, 1, &[ContactStatusChanged, ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["status:N"])
    );
    let c = written(&d);
    assert!(c.email_suppressed);
    assert!(!c.shown_on_employer);
    assert_eq!(d.events[0].data["contact"]["shown_on_employer"], false);
}

#[test]
fn changing_back_to_a_plain_status_unsuppresses_and_shows_the_contact() {
    let mut sim = Sim::new();
    sim.ok(5, change_status("D"));
    let d = sim.ok(10, change_status("A"));
    assert_applied(&d, 2, &[ContactStatusChanged, ContactEmailUnsuppressed]);
    assert!(written(&d).shown_on_employer);
    assert!(!written(&d).email_suppressed);
}

#[test]
fn moving_between_two_suppressing_statuses_emits_no_suppression_event() {
    let mut sim = Sim::new();
    sim.ok(5, change_status("D"));
    let d = sim.ok(10, change_status("I"));
    assert_applied(&d, 2, &[ContactStatusChanged]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn suppression_reasons_list_every_cause() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_eq!(
        sim.contact()
            .suppression_reasons(&sim.world.policy, &sim.world.blocklist),
        ["do_not_email"]
    );
    sim.ok(2, change_status("D"));
    sim.ok(3, deactivate());
    sim.ok(4, reject());
    assert_eq!(
        sim.contact()
            .suppression_reasons(&sim.world.policy, &sim.world.blocklist),
        ["do_not_email", "inactive", "rejected", "status:D"]
    );
}

#[test]
fn hiding_statuses_decide_shown_on_employer_independently_of_suppression() {
    let world = World::with_policy(|p| {
        p.hiding_statuses = vec!["H".into()];
        p.suppressing_statuses = vec!["D".into()];
    });
    let mut sim = Sim::new_in(world);
    let d = sim.ok(5, change_status("H"));
    assert_applied(&d, 1, &[ContactStatusChanged]);
    assert!(!written(&d).shown_on_employer);
    assert!(!written(&d).email_suppressed);
    let d = sim.ok(10, change_status("D"));
    assert_applied(&d, 2, &[ContactStatusChanged, ContactEmailSuppressed]);
    assert!(written(&d).shown_on_employer);
}

#[test]
fn changing_to_the_current_status_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_status("A"));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(STATUS), Some(&ts(5)));
    assert_stale(&sim.ok(3, change_status("B")));
}

#[test]
fn changing_the_status_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, change_status("B"));
    assert_stale(&sim.ok(5, change_status("C")));
    assert_eq!(sim.contact().status, "B");
}

#[test]
fn changing_to_a_status_outside_the_tenant_codes_is_invalid_status() {
    let mut sim = Sim::new();
    assert_eq!(sim.refused(5, change_status("Z")), ErrorCode::InvalidStatus);
    assert_eq!(sim.refused(5, change_status("a")), ErrorCode::InvalidStatus);
}

#[test]
fn every_default_status_code_is_accepted() {
    for code in "A B C D H I L N P S1 T W".split(' ') {
        let mut sim = Sim::new();
        sim.ok(5, change_status(code));
        assert_eq!(sim.contact().status, code);
    }
}

#[test]
fn a_tenant_with_its_own_status_codes_accepts_only_those() {
    let mut sim = Sim::new_in(World::with_policy(|p| {
        p.statuses = vec!["A".into(), "X1".into()];
    }));
    assert_eq!(written(&sim.ok(5, change_status("X1"))).status, "X1");
    assert_eq!(sim.refused(6, change_status("B")), ErrorCode::InvalidStatus);
}

#[test]
fn an_invalid_status_is_refused_even_for_a_missing_or_frozen_contact() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, change_status("Z")), ErrorCode::InvalidStatus);
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(sim.refused(5, change_status("Z")), ErrorCode::InvalidStatus);
}

#[test]
fn changing_the_status_of_a_missing_contact_is_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, change_status("B")), ErrorCode::NotFound);
}

#[test]
fn changing_the_status_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, change_status("B"), Some(3))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn changing_the_status_of_a_rejected_contact_is_frozen() {
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(sim.refused(5, change_status("B")), ErrorCode::Frozen);
}
