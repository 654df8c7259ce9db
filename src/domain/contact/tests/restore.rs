//! contact.restore and the soft delete's restore window: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;
use crate::domain::record::Kept;

#[test]
fn a_soft_delete_keeps_the_contact_and_its_activity_for_the_window() {
    let mut sim = Sim::new();
    let before = sim.contact().clone();
    let d = sim.ok(5, delete());
    assert_eq!(types(&d), [ContactEmailSuppressed, ContactDeleted]);
    assert_eq!(
        d.write,
        Some(ContactRecord::Deleted {
            at: ts(5),
            version: 2,
            kept: Some(Kept {
                state: Box::new(before),
                purge_after: Ts(NOW + time::Duration::days(30)),
            }),
        })
    );
    assert!(!d.erases_activity(), "activity stays until the purge");
    // Deleted for every other command, as in v1.
    assert_eq!(sim.refused(6, deactivate()), ErrorCode::NotFound);
    assert_stale(&sim.ok(4, deactivate()));
}

#[test]
fn restoring_brings_the_contact_back_one_version_after_its_delete() {
    let mut sim = Sim::new();
    sim.ok(1, change_status("B"));
    let before = sim.contact().clone();
    sim.ok(5, delete());
    let d = sim.ok(6, ContactOp::Restore);
    assert_applied(&d, 3, &[ContactRestored, ContactEmailUnsuppressed]);
    let restored = written(&d);
    assert_eq!(restored.version, 4);
    assert_eq!(restored.updated_at, Ts(NOW));
    let as_before = Contact {
        version: restored.version,
        updated_at: restored.updated_at,
        ..before
    };
    assert_eq!(*restored, as_before);
    assert_eq!(event(&d, ContactRestored).data["contact"]["status"], "B");
    assert_eq!(event(&d, ContactEmailUnsuppressed).data["email"], EMAIL);
    assert!(!d.erases_activity());
}

#[test]
fn a_contact_suppressed_before_its_delete_comes_back_suppressed() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    sim.ok(5, delete());
    let d = sim.ok(6, ContactOp::Restore);
    assert_eq!(types(&d), [ContactRestored]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn restore_is_refused_for_a_live_contact_and_outside_the_window() {
    let mut sim = Sim::new();
    assert_eq!(
        sim.refused(1, ContactOp::Restore),
        ErrorCode::InvalidTransition
    );
    assert_eq!(
        Sim::empty().refused(1, ContactOp::Restore),
        ErrorCode::NotFound
    );
    let mut closed = Sim::new_in(World::with_policy(|p| p.restore_days = 0));
    closed.ok(5, delete());
    assert_eq!(closed.refused(6, ContactOp::Restore), ErrorCode::NotFound);
    let mut hard = Sim::new_in(World::with_policy(|p| p.delete_mode = DeleteMode::Hard));
    hard.ok(5, delete());
    assert_eq!(hard.refused(6, ContactOp::Restore), ErrorCode::NotFound);
}

#[test]
fn a_restore_issued_before_the_delete_is_stale() {
    let mut sim = Sim::new();
    sim.ok(5, delete());
    assert_stale(&sim.ok(4, ContactOp::Restore));
}

#[test]
fn an_upsert_after_a_soft_delete_creates_anew_and_purges_the_deleted_copy() {
    let mut sim = Sim::new();
    sim.ok(5, delete());
    let d = sim.ok(6, standard_upsert());
    assert_eq!(written(&d).version, 1);
    assert!(
        d.erases_activity(),
        "the deleted copy's activity goes at once"
    );
    assert_eq!(
        sim.refused(7, ContactOp::Restore),
        ErrorCode::InvalidTransition
    );
}
