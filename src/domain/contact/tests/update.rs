//! contact.upsert: update: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;

#[test]
fn updating_profile_fields_bumps_the_version_once_and_lists_the_changed_fields() {
    let mut sim = Sim::new();
    let d = sim.ok(
        5,
        upsert(|u| {
            u.first_name = Some("Augusta".into());
            u.email = Some(EMAIL.into());
            u.phone = Some("+44 20 0000 0000".into());
        }),
    );
    assert_applied(&d, 1, &[ContactUpdated]);
    let e = event(&d, ContactUpdated);
    assert_eq!(e.data["changed"], json!(["first_name", "phone"]));
    assert_eq!(e.data["contact"]["first_name"], "Augusta");
    let c = written(&d);
    assert_eq!(
        c.last_name.as_deref(),
        Some("Lovelace"),
        "omitted fields kept"
    );
    assert_eq!(c.aspects.get(PROFILE), Some(&ts(5)));
    assert_eq!(c.updated_at, Ts(NOW));
}

#[test]
fn upserting_the_same_profile_is_unchanged_but_advances_the_profile_aspect() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.first_name = Some("Ada".into())));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(PROFILE), Some(&ts(5)));
    let older = sim.ok(3, upsert(|u| u.first_name = Some("Augusta".into())));
    assert_stale(&older);
    assert_eq!(sim.contact().first_name.as_deref(), Some("Ada"));
}

#[test]
fn an_empty_upsert_of_an_existing_contact_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|_| {}));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(PROFILE), Some(&ts(5)));
}

#[test]
fn an_upsert_touching_every_aspect_emits_one_version_and_its_events_in_order() {
    let mut sim = Sim::new();
    let d = sim.ok(
        5,
        upsert(|u| {
            u.title = Some("CTO".into());
            u.employer_id = Some(id("e-2"));
            u.status = Some("B".into());
            u.visibility = Some(Visibility::Advisors);
            u.attributes.insert("tier".into(), Some(json!(3)));
        }),
    );
    assert_applied(
        &d,
        1,
        &[
            ContactUpdated,
            ContactEmployerChanged,
            ContactStatusChanged,
            ContactVisibilityChanged,
            ContactAttributesChanged,
        ],
    );
    let c = written(&d);
    for aspect in [
        PROFILE.to_owned(),
        EMPLOYER.to_owned(),
        STATUS.to_owned(),
        VISIBILITY.to_owned(),
        attribute_aspect("tier"),
    ] {
        assert_eq!(c.aspects.get(&aspect), Some(&ts(5)), "{aspect}");
    }
    assert_eq!(c.aspects.get(ACTIVATION), Some(&ts(0)), "untouched aspect");
    assert_eq!(d.ensure_employers(), vec![id("e-2")]);
}

#[test]
fn an_upsert_applies_its_fresh_aspects_and_skips_its_stale_ones() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.first_name = Some("Augusta".into())));
    sim.ok(10, set_attrs(&[("tier", Some(json!("gold")))]));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.first_name = Some("Stale".into());
            u.status = Some("B".into());
            u.attributes.insert("tier".into(), Some(json!("silver")));
            u.attributes.insert("region".into(), Some(json!("EU")));
        }),
    );
    assert_applied(&d, 3, &[ContactStatusChanged, ContactAttributesChanged]);
    let c = written(&d);
    assert_eq!(
        c.first_name.as_deref(),
        Some("Augusta"),
        "stale profile skipped"
    );
    assert_eq!(c.status, "B");
    assert_eq!(
        c.attributes["tier"],
        json!("gold"),
        "stale attribute skipped"
    );
    assert_eq!(c.attributes["region"], json!("EU"));
    assert_eq!(
        event(&d, ContactAttributesChanged).data["changed"],
        json!({"region": {"from": null, "to": "EU"}})
    );
    assert_eq!(c.aspects.get(PROFILE), Some(&ts(10)), "never moved back");
    assert_eq!(c.aspects.get(&attribute_aspect("tier")), Some(&ts(10)));
    assert_eq!(c.aspects.get(STATUS), Some(&ts(5)));
}

#[test]
fn an_upsert_is_stale_only_when_every_aspect_it_touches_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.first_name = Some("Augusta".into())));
    sim.ok(10, change_status("B"));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.first_name = Some("Stale".into());
            u.status = Some("C".into());
        }),
    );
    assert_stale(&d);
}

#[test]
fn an_upsert_with_a_stale_profile_and_an_already_set_status_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.first_name = Some("Augusta".into())));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.first_name = Some("Stale".into());
            u.status = Some("A".into());
        }),
    );
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(STATUS), Some(&ts(5)));
}

#[test]
fn an_upsert_with_an_unknown_status_is_invalid_status() {
    let mut sim = Sim::new();
    let op = upsert(|u| {
        u.first_name = Some("Augusta".into());
        u.status = Some("ZZ".into());
    });
    assert_eq!(sim.refused(5, op), ErrorCode::InvalidStatus);
}

#[test]
fn an_upsert_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let op = || upsert(|u| u.first_name = Some("Augusta".into()));
    let err = sim.run_expecting(5, op(), Some(7)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let d = sim.run_expecting(5, op(), Some(1)).unwrap();
    assert_applied(&d, 1, &[ContactUpdated]);
}

#[test]
fn an_upsert_of_a_rejected_contact_is_frozen() {
    let mut sim = Sim::new();
    sim.ok(5, reject());
    let op = upsert(|u| u.first_name = Some("Augusta".into()));
    assert_eq!(sim.refused(10, op), ErrorCode::Frozen);
}

#[test]
fn an_upsert_beyond_the_attribute_limit_is_invalid_command() {
    let mut sim = Sim::new_in(World::with_limits(|l| l.max_attributes = 2));
    sim.ok(
        1,
        set_attrs(&[("a", Some(json!(1))), ("b", Some(json!(2)))]),
    );
    let op = upsert(|u| {
        u.attributes.insert("c".into(), Some(json!(3)));
    });
    assert_eq!(sim.refused(5, op), ErrorCode::InvalidCommand);
}

#[test]
fn an_upsert_with_only_a_department_keeps_the_employer() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.department = Some("Research".into())));
    assert_applied(&d, 1, &[ContactEmployerChanged]);
    let c = written(&d);
    assert_eq!(c.employer_id, Some(id("e-1")));
    assert_eq!(c.department.as_deref(), Some("Research"));
    assert!(
        c.former_employers.is_empty(),
        "same employer: no former one"
    );
    assert_eq!(c.aspects.get(PROFILE), Some(&ts(0)), "profile not touched");
}

#[test]
fn an_upsert_naming_the_current_employer_without_department_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.employer_id = Some(id("e-1"))));
    assert_unchanged(&d, 1);
    assert_eq!(sim.contact().department.as_deref(), Some("Sales"));
}

#[test]
fn an_upsert_moving_to_a_new_employer_without_department_clears_the_department() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.employer_id = Some(id("e-2"))));
    assert_applied(&d, 1, &[ContactEmployerChanged]);
    let c = written(&d);
    assert_eq!(c.employer_id, Some(id("e-2")));
    assert_eq!(c.department, None);
    assert_eq!(c.former_employers.len(), 1);
}

#[test]
fn adding_an_email_to_an_inactive_contact_emits_suppressed() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(1, deactivate());
    assert_applied(&d, 1, &[ContactDeactivated]);
    let d = sim.ok(2, upsert(|u| u.email = Some(EMAIL.into())));
    assert_applied(&d, 2, &[ContactUpdated, ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["inactive"])
    );
}

#[test]
fn changing_the_email_of_a_suppressed_contact_emits_no_suppression_event() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    let d = sim.ok(2, upsert(|u| u.email = Some("lovelace@example.com".into())));
    assert_applied(&d, 2, &[ContactUpdated]);
    assert!(written(&d).email_suppressed);
}
