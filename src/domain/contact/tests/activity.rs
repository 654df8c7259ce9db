//! contact.log_activity: decisions and outcomes.

use super::*;

#[test]
fn logging_an_activity_applies_and_attributes_it_to_the_current_employer() {
    let mut sim = Sim::new();
    let d = sim.ok(5, activity(ActivityKind::Meeting, Some("M-1")));
    assert_applied(&d, 1, &[ContactActivityLogged]);
    let e = event(&d, ContactActivityLogged);
    assert_eq!(e.data["kind"], "meeting");
    assert_eq!(e.data["action_code"], "M-1");
    assert_eq!(e.data["employer_id"], "e-1");
    let a = d.activity().expect("an activity to store");
    assert_eq!(a.kind, ActivityKind::Meeting);
    assert_eq!(a.body, "called about the fair");
    assert_eq!(a.employer_id, Some(id("e-1")));
    assert_eq!(a.occurred_at, ts(5), "defaults to issued_at");
    assert!(written(&d).active);
}

#[test]
fn logging_an_activity_keeps_the_given_occurred_at() {
    let mut sim = Sim::new();
    let op = ContactOp::LogActivity(LogActivity {
        kind: ActivityKind::Task,
        body: "follow up".into(),
        action_code: None,
        occurred_at: Some(at(-60)),
    });
    let d = sim.ok(5, op);
    assert_eq!(d.activity().unwrap().occurred_at, ts(-60));
}

#[test]
fn activity_logged_after_an_employer_change_belongs_to_the_new_employer() {
    let mut sim = Sim::new();
    sim.ok(5, change_employer(Some("e-2"), None));
    let d = sim.ok(6, activity(ActivityKind::Note, None));
    assert_eq!(d.activity().unwrap().employer_id, Some(id("e-2")));
    assert_eq!(event(&d, ContactActivityLogged).data["employer_id"], "e-2");
}

#[test]
fn logging_an_activity_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(100, upsert(|u| u.first_name = Some("Augusta".into())));
    sim.ok(100, deactivate());
    let d = sim.ok(1, activity(ActivityKind::Note, None));
    assert_applied(&d, 3, &[ContactActivityLogged]);
}

#[test]
fn a_message_with_the_deactivation_prefix_also_deactivates() {
    let mut sim = Sim::new();
    let d = sim.ok(5, activity(ActivityKind::Message, Some("deact-left")));
    assert_applied(
        &d,
        1,
        &[
            ContactActivityLogged,
            ContactDeactivated,
            ContactEmailSuppressed,
        ],
    );
    assert_eq!(event(&d, ContactDeactivated).data["reason"], "deact-left");
    assert!(!written(&d).active);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(5)));
}

#[test]
fn action_code_prefixes_are_case_insensitive() {
    let mut sim = Sim::new();
    let d = sim.ok(5, activity(ActivityKind::Message, Some("DEACT_42")));
    assert!(types(&d).contains(&ContactDeactivated));
    let d = sim.ok(6, activity(ActivityKind::Message, Some("ReAcTivated")));
    assert_applied(
        &d,
        2,
        &[
            ContactActivityLogged,
            ContactReactivated,
            ContactEmailUnsuppressed,
        ],
    );
    assert!(written(&d).active);
}

#[test]
fn only_message_activities_change_the_activation() {
    for kind in [
        ActivityKind::Note,
        ActivityKind::Meeting,
        ActivityKind::Task,
    ] {
        let mut sim = Sim::new();
        let d = sim.ok(5, activity(kind, Some("deact-1")));
        assert_applied(&d, 1, &[ContactActivityLogged]);
        assert!(written(&d).active, "{kind:?}");
        assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(0)));
    }
}

#[test]
fn a_message_without_a_matching_prefix_only_logs() {
    let mut sim = Sim::new();
    for code in [None, Some("call"), Some("xdeact"), Some("dea")] {
        let v = sim.version();
        let d = sim.ok(5, activity(ActivityKind::Message, code));
        assert_applied(&d, v, &[ContactActivityLogged]);
    }
    assert!(sim.contact().active);
}

#[test]
fn a_deactivating_message_with_a_stale_activation_still_logs_the_activity() {
    let mut sim = Sim::new();
    sim.ok(10, reactivate());
    let d = sim.ok(5, activity(ActivityKind::Message, Some("deact")));
    assert_applied(&d, 1, &[ContactActivityLogged]);
    assert!(written(&d).active);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(10)));
}

#[test]
fn a_deactivating_message_for_an_inactive_contact_only_logs_and_advances_activation() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    let d = sim.ok(10, activity(ActivityKind::Message, Some("deact")));
    assert_applied(&d, 2, &[ContactActivityLogged]);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(10)));
    assert_stale(&sim.ok(7, reactivate()));
}

#[test]
fn tenant_prefixes_replace_the_default_ones() {
    let mut sim = Sim::new_in(World::with_policy(|p| {
        p.deactivate_prefix = "Off".into();
        p.reactivate_prefix = "on".into();
    }));
    let d = sim.ok(5, activity(ActivityKind::Message, Some("deact")));
    assert_applied(&d, 1, &[ContactActivityLogged]);
    let d = sim.ok(6, activity(ActivityKind::Message, Some("OFF-board")));
    assert!(types(&d).contains(&ContactDeactivated));
    let d = sim.ok(7, activity(ActivityKind::Message, Some("onboard")));
    assert!(types(&d).contains(&ContactReactivated));
}

#[test]
fn logging_an_activity_is_refused_for_missing_or_conflicting_contacts() {
    let mut sim = Sim::empty();
    assert_eq!(
        sim.refused(5, activity(ActivityKind::Note, None)),
        ErrorCode::NotFound
    );
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, activity(ActivityKind::Note, None), Some(4))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}
