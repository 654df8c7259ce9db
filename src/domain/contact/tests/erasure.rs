//! contact.erase, contact.confirm_consent and the `previously_erased`
//! suppression of erased addresses (contract section 11).

use super::*;
use crate::domain::blocklist::email_sha256;
use crate::domain::contact::decide::reevaluate;
use crate::domain::effect::{Effect, Effects};
use crate::domain::outcome::EntityKind;

fn erase() -> ContactOp {
    ContactOp::Erase
}

fn consent() -> ContactOp {
    ContactOp::ConfirmConsent
}

/// A world whose blocklist holds `email`.
fn erased(email: &str) -> World {
    let mut w = World::new();
    w.blocklist.add(email);
    w
}

fn tombstone(d: &ContactDecision) -> (u64, Option<&crate::domain::record::Kept<Contact>>) {
    match &d.write {
        Some(ContactRecord::Deleted { version, kept, .. }) => (*version, kept.as_ref()),
        other => panic!("no tombstone written: {other:?}"),
    }
}

#[test]
fn erasing_a_live_contact_suppresses_its_address_then_forgets_it() {
    let mut sim = Sim::new();
    let d = sim.ok(5, erase());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactEmailSuppressed, ContactErased]);
    assert_eq!(tombstone(&d), (2, None), "nothing kept, one version up");
    assert!(d.erases_activity());
    assert!(d.events.iter().all(|e| e.version == 2));
    let suppressed = &event(&d, ContactEmailSuppressed).data;
    assert_eq!(suppressed["reasons"], json!(["erased"]));
    assert!(suppressed.get("contact").is_none(), "no snapshot");
    let erased = &event(&d, ContactErased).data;
    assert_eq!(erased["contact_id"], CID);
    assert_eq!(erased["email_sha256"], email_sha256(EMAIL));
    assert!(
        !serde_json::to_string(erased).unwrap().contains(EMAIL),
        "never the address"
    );
}

#[test]
fn an_address_already_suppressed_is_not_suppressed_again() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    let d = sim.ok(5, erase());
    assert_eq!(types(&d), [ContactErased]);
}

#[test]
fn a_contact_without_an_address_is_erased_with_a_null_hash() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(5, erase());
    assert_eq!(types(&d), [ContactErased]);
    assert_eq!(event(&d, ContactErased).data["email_sha256"], Value::Null);
}

#[test]
fn a_soft_deleted_contact_can_be_erased_and_is_then_gone_for_good() {
    let mut sim = Sim::new();
    sim.ok(5, delete());
    let d = sim.ok(6, erase());
    // Its delete already suppressed the address.
    assert_eq!(types(&d), [ContactErased]);
    assert_eq!(tombstone(&d), (3, None));
    assert!(d.erases_activity());
    assert_eq!(sim.refused(7, ContactOp::Restore), ErrorCode::NotFound);
    assert_eq!(sim.refused(8, erase()), ErrorCode::NotFound);
}

#[test]
fn erasure_is_refused_for_what_does_not_exist_or_holds_nothing() {
    assert_eq!(Sim::empty().refused(1, erase()), ErrorCode::NotFound);
    let mut hard = Sim::new_in(World::with_policy(|p| p.delete_mode = DeleteMode::Hard));
    hard.ok(5, delete());
    assert_eq!(hard.refused(6, erase()), ErrorCode::NotFound);
}

#[test]
fn erasure_is_never_stale_and_is_accepted_while_frozen() {
    let mut sim = Sim::new();
    sim.ok(10, reject());
    let d = sim.ok(3, erase());
    assert_eq!(d.outcome, Outcome::Applied, "issued before the last change");
    let mut deleted = Sim::new();
    deleted.ok(10, delete());
    assert_eq!(deleted.ok(3, erase()).outcome, Outcome::Applied);
}

#[test]
fn erasure_checks_the_expected_version() {
    let mut sim = Sim::new();
    let e = sim.run_expecting(5, erase(), Some(7)).unwrap_err();
    assert_eq!(e.code, ErrorCode::VersionConflict);
    assert_eq!(
        sim.run_expecting(5, erase(), Some(1)).unwrap().outcome,
        Outcome::Applied
    );
}

#[test]
fn a_contact_created_with_an_erased_address_is_suppressed_as_previously_erased() {
    let mut sim = Sim::empty_in(erased(" ADA@Example.com"));
    let d = sim.ok(0, standard_upsert());
    assert_eq!(types(&d), [ContactCreated, ContactEmailSuppressed]);
    assert!(written(&d).email_suppressed);
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["previously_erased"])
    );
}

#[test]
fn a_contact_given_an_erased_address_is_suppressed_and_loses_it_with_the_address() {
    let mut sim = Sim::new_in(erased("new@example.com"));
    let d = sim.ok(1, upsert(|u| u.email = Some("New@Example.com".into())));
    assert_applied(&d, 1, &[ContactUpdated, ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["previously_erased"])
    );
    // Clearing do_not_email does not bring the address back...
    let d = sim.ok(2, set_attrs(&[("do_not_email", Some(json!(false)))]));
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert!(written(&d).email_suppressed);
    // ...another address does.
    let d = sim.ok(3, upsert(|u| u.email = Some("other@example.com".into())));
    assert_applied(&d, 3, &[ContactUpdated, ContactEmailUnsuppressed]);
}

#[test]
fn previously_erased_joins_the_other_reasons() {
    let mut sim = Sim::new_in(erased(EMAIL));
    sim.ok(1, deactivate());
    assert_eq!(
        sim.contact()
            .suppression_reasons(&sim.world.policy, &sim.world.blocklist),
        ["previously_erased", "inactive"]
    );
}

#[test]
fn a_restored_contact_whose_address_was_erased_meanwhile_stays_suppressed() {
    let mut sim = Sim::new();
    sim.ok(5, delete());
    sim.world.blocklist.add(EMAIL);
    let d = sim.ok(6, ContactOp::Restore);
    assert_eq!(types(&d), [ContactRestored]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn consent_takes_the_address_off_the_blocklist() {
    let mut sim = Sim::empty_in(erased(EMAIL));
    sim.ok(0, standard_upsert());
    let d = sim.ok(1, consent());
    assert_applied(&d, 1, &[ContactEmailUnsuppressed]);
    assert!(!written(&d).email_suppressed);
    assert_eq!(event(&d, ContactEmailUnsuppressed).data["email"], EMAIL);
}

#[test]
fn consent_of_a_contact_suppressed_for_another_reason_changes_nothing_visible() {
    let mut sim = Sim::empty_in(erased(EMAIL));
    sim.ok(0, standard_upsert());
    sim.ok(1, deactivate());
    let d = sim.ok(2, consent());
    assert_eq!(d.outcome, Outcome::Applied, "the address leaves the list");
    assert!(d.events.is_empty());
    assert!(d.write.is_none(), "no version bump");
}

#[test]
fn consent_is_unchanged_when_the_address_is_not_blocked() {
    let mut sim = Sim::new();
    let d = sim.ok(1, consent());
    assert_eq!(d.outcome, Outcome::Unchanged);
    assert!(d.events.is_empty());
    let mut nameless = Sim::empty_in(erased(EMAIL));
    nameless.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    assert_eq!(nameless.ok(1, consent()).outcome, Outcome::Unchanged);
    assert_eq!(Sim::empty().refused(1, consent()), ErrorCode::NotFound);
}

#[test]
fn reevaluation_follows_the_blocklist_both_ways() {
    let mut sim = Sim::new();
    let contact = sim.contact().clone();
    let ctx = sim.world.ctx(1);
    assert_eq!(reevaluate(&ctx, &contact), None, "nothing changed for it");
    sim.world.blocklist.add(EMAIL);
    let ctx = sim.world.ctx(1);
    let d = reevaluate(&ctx, &contact).expect("now suppressed");
    assert_applied(&d, 1, &[ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["previously_erased"])
    );
    let suppressed = written(&d).clone();
    sim.world.blocklist.remove(EMAIL);
    let ctx = sim.world.ctx(1);
    let d = reevaluate(&ctx, &suppressed).expect("no longer suppressed");
    assert_eq!(types(&d), [ContactEmailUnsuppressed]);
    assert_eq!(written(&d).version, 3);
}

#[test]
fn an_erasure_asks_the_store_to_forget_the_contact_and_its_address() {
    let mut sim = Sim::new();
    let d = sim.ok(5, erase());
    assert_eq!(
        d.effects,
        [
            Effect::EraseActivity,
            Effect::Forget {
                kind: EntityKind::Contact,
                email: Some(EMAIL.to_owned()),
            },
        ]
    );
}

#[test]
fn a_consent_asks_the_store_to_take_the_address_off_the_blocklist_only_when_it_is_on_it() {
    let mut sim = Sim::empty_in(erased(EMAIL));
    sim.ok(0, standard_upsert());
    let d = sim.ok(1, consent());
    assert_eq!(
        d.effects.last(),
        Some(&Effect::Consent {
            email: EMAIL.to_owned()
        })
    );
    let d = Sim::new().ok(1, consent());
    assert!(d.effects.is_empty(), "{:?}", d.effects);
}
