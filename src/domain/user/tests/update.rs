//! user.upsert: update, per aspect: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;

#[test]
fn updating_profile_fields_applies_with_the_changed_field_names() {
    let mut sim = Sim::new();
    let d = sim.ok(
        5,
        upsert(|u| {
            u.email = Some("hopper@example.com".into());
            u.name = Some("Grace".into());
            u.employer_id = Some(id("e-2"));
        }),
    );
    assert_applied(&d, 1, &[UserUpdated]);
    assert_eq!(d.events[0].data["changed"], json!(["email", "employer_id"]));
    let u = written(&d);
    assert_eq!(u.email, "hopper@example.com");
    assert_eq!(u.employer_id, Some(id("e-2")));
    assert_eq!(u.contact_id, Some(id("c-17")), "omitted fields kept");
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(5)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(0)), "role not touched");
    assert_eq!(d.ensure_employers(), vec![id("e-2")]);
}

#[test]
fn changing_the_linked_contact_is_a_profile_update() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.contact_id = Some(id("c-18"))));
    assert_applied(&d, 1, &[UserUpdated]);
    assert_eq!(d.events[0].data["changed"], json!(["contact_id"]));
}

#[test]
fn an_upsert_changing_profile_and_role_bumps_once_with_both_events() {
    let mut sim = Sim::new();
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Grace Hopper".into());
            u.role_id = Some(id("r-admin"));
        }),
    );
    assert_applied(&d, 1, &[UserUpdated, UserRoleChanged]);
    let rc = &d.events[1];
    assert_eq!(rc.data["from"], "r-basic");
    assert_eq!(rc.data["to"], "r-admin");
    let u = written(&d);
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(5)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn an_upsert_naming_only_a_role_touches_only_the_role_aspect() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.role_id = Some(id("r-admin"))));
    assert_applied(&d, 1, &[UserRoleChanged]);
    let u = written(&d);
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(0)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn upserting_the_same_values_is_unchanged_but_advances_the_aspects() {
    let mut sim = Sim::new();
    let d = sim.ok(5, standard_upsert());
    assert_unchanged(&d, 1);
    let u = written(&d);
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(5)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
    assert_stale(&sim.ok(3, upsert(|u| u.name = Some("Older".into()))));
    assert_stale(&sim.ok(3, change_role("r-admin")));
}

#[test]
fn an_empty_upsert_of_an_existing_user_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|_| {}));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(PROFILE), Some(&ts(5)));
}

#[test]
fn an_upsert_applies_a_fresh_role_and_skips_a_stale_profile() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.name = Some("Grace Hopper".into())));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Stale".into());
            u.role_id = Some(id("r-admin"));
        }),
    );
    assert_applied(&d, 2, &[UserRoleChanged]);
    let u = written(&d);
    assert_eq!(u.name.as_deref(), Some("Grace Hopper"));
    assert_eq!(u.role_id, Some(id("r-admin")));
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(10)));
}

#[test]
fn an_upsert_applies_a_fresh_profile_and_skips_a_stale_role() {
    let mut sim = Sim::new();
    sim.ok(10, change_role("r-admin"));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Grace Hopper".into());
            u.role_id = Some(id("r-basic"));
        }),
    );
    assert_applied(&d, 2, &[UserUpdated]);
    let u = written(&d);
    assert_eq!(u.role_id, Some(id("r-admin")));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(10)));
}

#[test]
fn an_upsert_is_stale_only_when_all_its_aspects_are_stale() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.name = Some("Grace Hopper".into())));
    sim.ok(10, change_role("r-admin"));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Stale".into());
            u.role_id = Some(id("r-basic"));
        }),
    );
    assert_stale(&d);
}

#[test]
fn an_upsert_with_a_stale_profile_and_the_current_role_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.name = Some("Grace Hopper".into())));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Stale".into());
            u.role_id = Some(id("r-basic"));
        }),
    );
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn updating_a_user_with_a_missing_role_is_role_not_found() {
    let mut sim = Sim::new();
    sim.missing_roles.push("r-ghost");
    let op = upsert(|u| {
        u.name = Some("Grace Hopper".into());
        u.role_id = Some(id("r-ghost"));
    });
    assert_eq!(sim.refused(5, op), ErrorCode::RoleNotFound);
}

#[test]
fn updating_a_user_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let op = || upsert(|u| u.name = Some("Grace Hopper".into()));
    let err = sim.run_expecting(5, op(), Some(0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let d = sim.run_expecting(5, op(), Some(1)).unwrap();
    assert_applied(&d, 1, &[UserUpdated]);
}
