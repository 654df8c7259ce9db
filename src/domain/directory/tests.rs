//! Unit tests of `decide_role` and `decide_employer` (contract sections 3-5).

use super::{decide_employer, decide_role, Employer, EmployerUpsert, Role, RoleUpsert};
use crate::domain::event::EventType::{EmployerUpserted, RoleUpserted};
use crate::domain::outcome::{EntityKind, ErrorCode, Outcome};
use crate::domain::test_support::{assert_stale, id, ts, types, World};
use serde_json::json;

// ---------------------------------------------------------------------------
// role.upsert
// ---------------------------------------------------------------------------

fn role_cmd(name: &str, permissions: &[&str]) -> RoleUpsert {
    RoleUpsert {
        role_id: id("r-denied"),
        name: name.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn role(version: u64, name: &str, permissions: &[&str], minute: i64) -> Role {
    Role {
        id: id("r-denied"),
        version,
        name: name.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        profile_at: ts(minute),
    }
}

#[test]
fn upserting_a_new_role_applies_version_one() {
    let w = World::acting_as("hr-sync");
    let d = decide_role(&w.ctx(0), None, &role_cmd("Denied Access Role", &[]), None).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    let r = d.write.as_ref().unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(r.name, "Denied Access Role");
    assert!(r.permissions.is_empty());
    assert_eq!(r.profile_at, ts(0));
    assert_eq!(types(&d), [RoleUpserted]);
    let e = &d.events[0];
    assert_eq!(e.version, 1);
    assert_eq!(e.entity_kind, EntityKind::Role);
    assert_eq!(e.entity_id, "r-denied");
    assert_eq!(e.data["role_id"], "r-denied");
    assert_eq!(e.data["name"], "Denied Access Role");
    assert_eq!(e.data["permissions"], json!([]));
}

#[test]
fn changing_a_role_applies_with_one_version_bump() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &["jobs.read"], 0);
    let cmd = role_cmd("Staff", &["jobs.read", "jobs.write"]);
    let d = decide_role(&w.ctx(5), Some(&current), &cmd, None).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(d.write.as_ref().unwrap().version, 4);
    assert_eq!(d.events[0].version, 4);
    assert_eq!(
        d.events[0].data["permissions"],
        json!(["jobs.read", "jobs.write"])
    );
}

#[test]
fn upserting_a_role_as_it_is_is_unchanged_but_advances_its_timestamp() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &["jobs.read"], 0);
    let d = decide_role(
        &w.ctx(5),
        Some(&current),
        &role_cmd("Staff", &["jobs.read"]),
        None,
    )
    .unwrap();
    assert_eq!(d.outcome, Outcome::Unchanged);
    assert!(d.events.is_empty());
    let r = d.write.unwrap();
    assert_eq!(r.version, 3);
    assert_eq!(r.profile_at, ts(5));
    let older = decide_role(&w.ctx(4), Some(&r), &role_cmd("Other", &[]), None).unwrap();
    assert_stale(&older);
}

#[test]
fn upserting_a_role_with_an_older_issued_at_is_stale() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &["jobs.read"], 10);
    let d = decide_role(&w.ctx(5), Some(&current), &role_cmd("Other", &[]), None).unwrap();
    assert_stale(&d);
    let equal = decide_role(&w.ctx(10), Some(&current), &role_cmd("Other", &[]), None).unwrap();
    assert_eq!(equal.outcome, Outcome::Applied, "equal timestamps apply");
}

#[test]
fn upserting_a_role_with_the_wrong_expected_version_is_a_version_conflict() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &[], 0);
    let cmd = role_cmd("Other", &[]);
    let err = decide_role(&w.ctx(5), Some(&current), &cmd, Some(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert!(decide_role(&w.ctx(5), Some(&current), &cmd, Some(3)).is_ok());
    let err = decide_role(&w.ctx(5), None, &cmd, Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert!(decide_role(&w.ctx(5), None, &cmd, Some(0)).is_ok());
}

// ---------------------------------------------------------------------------
// employer.upsert
// ---------------------------------------------------------------------------

fn employer_cmd(name: &str, departments: Option<&[&str]>) -> EmployerUpsert {
    EmployerUpsert {
        employer_id: id("e-1"),
        name: name.into(),
        departments: departments.map(|d| d.iter().map(|x| (*x).to_owned()).collect()),
    }
}

fn employer(version: u64, name: Option<&str>, departments: &[&str], at: Option<i64>) -> Employer {
    Employer {
        id: id("e-1"),
        version,
        name: name.map(str::to_owned),
        departments: departments.iter().map(|d| (*d).to_owned()).collect(),
        profile_at: at.map(ts),
    }
}

#[test]
fn upserting_a_new_employer_applies_version_one() {
    let w = World::acting_as("hr-sync");
    let d = decide_employer(&w.ctx(0), None, &employer_cmd("Initech", None), None).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    let e = d.write.as_ref().unwrap();
    assert_eq!(e.version, 1);
    assert_eq!(e.name.as_deref(), Some("Initech"));
    assert!(e.departments.is_empty());
    assert_eq!(e.profile_at, Some(ts(0)));
    assert_eq!(types(&d), [EmployerUpserted]);
    let ev = &d.events[0];
    assert_eq!(ev.version, 1);
    assert_eq!(ev.entity_kind, EntityKind::Employer);
    assert_eq!(ev.data["employer_id"], "e-1");
    assert_eq!(ev.data["name"], "Initech");
    assert_eq!(ev.data["departments"], json!([]));
}

#[test]
fn upserting_an_implicit_employer_names_it_at_version_one() {
    let w = World::acting_as("hr-sync");
    let implicit = employer(0, None, &[], None);
    let d = decide_employer(
        &w.ctx(-500),
        Some(&implicit),
        &employer_cmd("Initech", Some(&["Sales"])),
        None,
    )
    .unwrap();
    assert_eq!(
        d.outcome,
        Outcome::Applied,
        "an implicit employer is never stale"
    );
    let e = d.write.unwrap();
    assert_eq!(e.version, 1);
    assert_eq!(e.name.as_deref(), Some("Initech"));
    assert_eq!(e.departments, ["Sales"]);
    assert_eq!(d.events[0].version, 1);
}

#[test]
fn renaming_an_employer_keeps_its_departments_when_none_are_given() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &["Sales", "R&D"], Some(0));
    let d = decide_employer(
        &w.ctx(5),
        Some(&current),
        &employer_cmd("Initrode", None),
        None,
    )
    .unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    let e = d.write.unwrap();
    assert_eq!(e.version, 3);
    assert_eq!(e.departments, ["Sales", "R&D"]);
    assert_eq!(d.events[0].data["departments"], json!(["Sales", "R&D"]));
}

#[test]
fn changing_only_the_departments_of_an_employer_applies() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &["Sales"], Some(0));
    let d = decide_employer(
        &w.ctx(5),
        Some(&current),
        &employer_cmd("Initech", Some(&[])),
        None,
    )
    .unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    assert!(d.write.unwrap().departments.is_empty());
}

#[test]
fn upserting_an_employer_as_it_is_is_unchanged_but_advances_its_timestamp() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &["Sales"], Some(0));
    for cmd in [
        employer_cmd("Initech", None),
        employer_cmd("Initech", Some(&["Sales"])),
    ] {
        let d = decide_employer(&w.ctx(5), Some(&current), &cmd, None).unwrap();
        assert_eq!(d.outcome, Outcome::Unchanged);
        assert!(d.events.is_empty());
        let e = d.write.unwrap();
        assert_eq!(e.version, 2);
        assert_eq!(e.profile_at, Some(ts(5)));
    }
}

#[test]
fn upserting_an_employer_with_an_older_issued_at_is_stale() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &[], Some(10));
    let d = decide_employer(
        &w.ctx(5),
        Some(&current),
        &employer_cmd("Initrode", None),
        None,
    )
    .unwrap();
    assert_stale(&d);
}

#[test]
fn upserting_an_employer_with_the_wrong_expected_version_is_a_version_conflict() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &[], Some(0));
    let cmd = employer_cmd("Initrode", None);
    let err = decide_employer(&w.ctx(5), Some(&current), &cmd, Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert!(decide_employer(&w.ctx(5), Some(&current), &cmd, Some(2)).is_ok());
    let err = decide_employer(&w.ctx(5), None, &cmd, Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let implicit = employer(0, None, &[], None);
    assert!(decide_employer(&w.ctx(5), Some(&implicit), &cmd, Some(0)).is_ok());
}
