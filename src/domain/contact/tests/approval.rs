//! contact.approve / contact.reject, frozen: decisions and outcomes.

use super::*;
use crate::domain::contact::command::ContactKind;

#[test]
fn rejecting_a_contact_applies_and_suppresses_its_email() {
    let mut sim = Sim::new();
    let d = sim.ok(5, reject());
    assert_applied(&d, 1, &[ContactRejected, ContactEmailSuppressed]);
    assert_eq!(event(&d, ContactRejected).data["reason"], "spam");
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["rejected"])
    );
    let c = written(&d);
    assert_eq!(c.approval, Approval::Rejected);
    assert_eq!(c.aspects.get(APPROVAL), Some(&ts(5)));
    assert_eq!(d.events[0].data["contact"]["approval"], "rejected");
}

#[test]
fn approving_a_rejected_contact_applies_and_unsuppresses_its_email() {
    let mut sim = Sim::new();
    sim.ok(5, reject());
    let d = sim.ok(10, approve());
    assert_applied(&d, 2, &[ContactApproved, ContactEmailUnsuppressed]);
    assert_eq!(event(&d, ContactApproved).data["reason"], "vetted");
    assert_eq!(written(&d).approval, Approval::Approved);
    // No longer frozen.
    assert_eq!(sim.ok(11, deactivate()).outcome, Outcome::Applied);
}

#[test]
fn approving_an_approved_contact_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, approve());
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(APPROVAL), Some(&ts(5)));
    assert_stale(&sim.ok(3, reject()));
}

#[test]
fn rejecting_a_rejected_contact_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(5, reject());
    assert_unchanged(&sim.ok(6, reject()), 2);
}

#[test]
fn approval_commands_with_an_older_issued_at_are_stale() {
    let mut sim = Sim::new();
    sim.ok(10, reject());
    assert_stale(&sim.ok(5, approve()));
    assert_eq!(sim.contact().approval, Approval::Rejected);
    sim.ok(20, approve());
    assert_stale(&sim.ok(15, reject()));
}

#[test]
fn approval_commands_are_refused_for_missing_or_conflicting_contacts() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, approve()), ErrorCode::NotFound);
    assert_eq!(sim.refused(5, reject()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, reject(), Some(5)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn a_rejected_contact_refuses_every_command_but_the_exempt_ones() {
    let frozen_ops = [
        upsert(|u| u.first_name = Some("Augusta".into())),
        deactivate(),
        reactivate(),
        change_status("B"),
        change_employer(Some("e-2"), None),
        set_visibility(Visibility::Owner),
        set_attrs(&[("tier", Some(json!("gold")))]),
    ];
    for op in frozen_ops {
        let mut sim = Sim::new();
        sim.ok(1, reject());
        let name = op.type_name();
        assert_eq!(sim.refused(5, op), ErrorCode::Frozen, "{name}");
    }
}

#[test]
fn a_rejected_contact_still_accepts_approve_reject_log_activity_archive_revive_and_delete() {
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_unchanged(&sim.ok(2, reject()), 2);
    let d = sim.ok(3, activity(ActivityKind::Note, None));
    assert_applied(&d, 2, &[ContactActivityLogged]);
    let d = sim.ok(4, archive());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(written(&d).approval, Approval::Rejected);
    let d = sim.ok(5, revive());
    assert_eq!(d.outcome, Outcome::Applied);
    assert!(written(&d).email_suppressed, "still rejected");
    let d = sim.ok(6, delete());
    assert_eq!(d.outcome, Outcome::Applied);

    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(sim.ok(2, approve()).outcome, Outcome::Applied);
}

#[test]
fn the_frozen_refusal_names_every_kind_a_rejected_contact_accepts() {
    let mut sim = Sim::new();
    sim.ok(1, ContactOp::Reject { reason: None });
    let message = match decide_contact(
        &sim.world.ctx(2),
        &id(CID),
        &sim.subject.record,
        &ContactOp::SetVisibility {
            visibility: Visibility::Advisors,
        },
        None,
        &[],
    ) {
        Err(r) => r.message,
        Ok(d) => panic!("not refused: {:?}", d.outcome),
    };
    for kind in ContactKind::ALL.iter().filter(|k| k.allowed_while_frozen()) {
        let short = kind.name().trim_start_matches("contact.");
        assert!(message.contains(short), "{short} missing from: {message}");
    }
    assert!(!message.contains("set_visibility"), "{message}");
}
