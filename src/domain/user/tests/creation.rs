//! user.upsert: creation: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;

#[test]
fn creating_a_user_applies_version_one_with_site_access() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, standard_upsert());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [UserCreated]);
    let u = written(&d);
    assert_eq!(u.version, 1);
    assert!(u.site_access);
    assert_eq!(u.email, EMAIL);
    assert_eq!(u.name.as_deref(), Some("Grace"));
    assert_eq!(u.employer_id, Some(id("e-1")));
    assert_eq!(u.contact_id, Some(id("c-17")));
    assert_eq!(u.role_id, Some(id("r-basic")));
    assert_eq!(u.created_at, Ts(NOW));
    for aspect in [PROFILE, ROLE, ACCESS] {
        assert_eq!(u.aspects.get(aspect), Some(&ts(0)), "{aspect}");
    }
    assert_eq!(d.ensure_employers(), vec![id("e-1")]);
    let e = &d.events[0];
    assert_eq!(e.version, 1);
    assert_eq!(e.entity_kind, EntityKind::User);
    assert_eq!(e.data["issued_at"], "2026-11-22T08:00:00Z");
}

#[test]
fn the_user_snapshot_has_the_contract_fields() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, standard_upsert());
    let snap = d.events[0].data["user"].as_object().unwrap();
    let mut keys: Vec<&str> = snap.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "id",
        "tenant",
        "version",
        "email",
        "name",
        "employer_id",
        "contact_id",
        "role_id",
        "site_access",
        "created_at",
        "updated_at",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(snap["id"], UID);
    assert_eq!(snap["tenant"], "acme");
    assert_eq!(snap["site_access"], true);
}

#[test]
fn creating_a_user_with_only_an_email_is_allowed() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, upsert(|u| u.email = Some(EMAIL.into())));
    let u = written(&d);
    assert_eq!(u.version, 1);
    assert_eq!(u.name, None);
    assert_eq!(u.role_id, None);
    assert!(d.ensure_employers().is_empty());
}

#[test]
fn creating_a_user_without_an_email_is_invalid_command() {
    let mut sim = Sim::empty();
    let op = upsert(|u| {
        u.name = Some("Grace".into());
        u.employer_id = Some(id("e-1"));
    });
    assert_eq!(sim.refused(0, op), ErrorCode::InvalidCommand);
}

#[test]
fn creating_a_user_with_a_missing_role_is_role_not_found() {
    let mut sim = Sim::empty();
    sim.missing_roles.push("r-basic");
    assert_eq!(sim.refused(0, standard_upsert()), ErrorCode::RoleNotFound);
}

#[test]
fn creating_a_user_with_expected_version_zero_applies_and_any_other_conflicts() {
    let mut sim = Sim::empty();
    let err = sim
        .run_expecting(0, standard_upsert(), Some(1))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let d = sim.run_expecting(0, standard_upsert(), Some(0)).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
}
