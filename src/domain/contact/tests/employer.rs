//! contact.change_employer: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;

#[test]
fn changing_the_employer_keeps_the_old_one_as_former_employer() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_employer(Some("e-2"), Some("Research")));
    assert_applied(&d, 1, &[ContactEmployerChanged]);
    let e = event(&d, ContactEmployerChanged);
    assert_eq!(
        e.data["from"],
        json!({"employer_id": "e-1", "department": "Sales"})
    );
    assert_eq!(
        e.data["to"],
        json!({"employer_id": "e-2", "department": "Research"})
    );
    let c = written(&d);
    assert_eq!(c.employer_id, Some(id("e-2")));
    assert_eq!(c.department.as_deref(), Some("Research"));
    assert_eq!(
        c.former_employers,
        vec![FormerEmployer {
            employer_id: id("e-1"),
            department: Some("Sales".into()),
            from: ts(0),
            until: ts(5),
        }]
    );
    assert_eq!(c.employer_since, ts(5));
    assert_eq!(d.ensure_employers(), vec![id("e-2")]);
    assert_eq!(
        e.data["contact"]["former_employers"],
        json!([{"employer_id": "e-1", "department": "Sales",
                "from": "2026-11-22T08:00:00Z", "until": "2026-11-22T08:05:00Z"}])
    );
}

#[test]
fn a_second_move_dates_the_former_employer_from_the_first_move() {
    let mut sim = Sim::new();
    sim.ok(5, change_employer(Some("e-2"), None));
    let d = sim.ok(9, change_employer(Some("e-3"), None));
    let f = &written(&d).former_employers;
    assert_eq!(f.len(), 2);
    assert_eq!(
        f[1],
        FormerEmployer {
            employer_id: id("e-2"),
            department: None,
            from: ts(5),
            until: ts(9),
        }
    );
}

#[test]
fn changing_the_employer_to_null_leaves_the_contact_without_employer() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_employer(None, None));
    assert_applied(&d, 1, &[ContactEmployerChanged]);
    let e = event(&d, ContactEmployerChanged);
    assert_eq!(
        e.data["to"],
        json!({"employer_id": null, "department": null})
    );
    let c = written(&d);
    assert_eq!(c.employer_id, None);
    assert_eq!(c.department, None);
    assert_eq!(c.former_employers.len(), 1);
    assert!(d.ensure_employers().is_empty());
}

#[test]
fn moving_a_contact_without_employer_adds_no_former_employer() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.email = Some(EMAIL.into())));
    let d = sim.ok(5, change_employer(Some("e-2"), None));
    assert_applied(&d, 1, &[ContactEmployerChanged]);
    assert!(written(&d).former_employers.is_empty());
    assert_eq!(
        event(&d, ContactEmployerChanged).data["from"],
        json!({"employer_id": null, "department": null})
    );
}

#[test]
fn changing_only_the_department_adds_no_former_employer() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_employer(Some("e-1"), Some("Research")));
    assert_applied(&d, 1, &[ContactEmployerChanged]);
    assert!(written(&d).former_employers.is_empty());
    assert_eq!(written(&d).employer_since, ts(0));
    assert!(d.ensure_employers().is_empty());
}

#[test]
fn changing_to_the_current_employer_and_department_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_employer(Some("e-1"), Some("Sales")));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(EMPLOYER), Some(&ts(5)));
    assert_stale(&sim.ok(4, change_employer(Some("e-9"), None)));
}

#[test]
fn changing_the_employer_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, change_employer(Some("e-2"), None));
    assert_stale(&sim.ok(5, change_employer(Some("e-3"), None)));
    assert_eq!(sim.contact().employer_id, Some(id("e-2")));
}

#[test]
fn changing_the_employer_of_a_missing_contact_is_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(
        sim.refused(5, change_employer(Some("e-2"), None)),
        ErrorCode::NotFound
    );
}

#[test]
fn changing_the_employer_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, change_employer(None, None), Some(9))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn changing_the_employer_of_a_rejected_contact_is_frozen() {
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(
        sim.refused(5, change_employer(Some("e-2"), None)),
        ErrorCode::Frozen
    );
}
