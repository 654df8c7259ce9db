//! contact.archive / contact.revive: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;

#[test]
fn archiving_with_the_defaults_deactivates_hides_and_suppresses_in_one_version() {
    let mut sim = Sim::new();
    let d = sim.ok(5, archive());
    assert_applied(
        &d,
        1,
        &[
            ContactArchived,
            ContactDeactivated,
            ContactVisibilityChanged,
            ContactAttributesChanged,
            ContactEmailSuppressed,
        ],
    );
    assert_eq!(event(&d, ContactArchived).data["reason"], "retired");
    assert_eq!(event(&d, ContactDeactivated).data["reason"], "retired");
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["do_not_email", "inactive"])
    );
    let c = written(&d);
    assert!(!c.active);
    assert_eq!(c.visibility, Visibility::Advisors);
    assert_eq!(c.attributes.get("do_not_email"), Some(&json!(true)));
    assert_eq!(c.employer_id, Some(id("e-1")), "no employer given: stays");
    let memo = c.archive.as_ref().expect("archived");
    assert_eq!(memo.archived_at, ts(5));
    assert_eq!(memo.visibility, Visibility::Everyone);
    assert_eq!(memo.do_not_email, None);
    assert_eq!(memo.employer, None);
    assert!(memo.revoked_users.is_empty());
    assert_eq!(d.events[0].data["contact"]["archived"], true);
    assert!(d.linked_users().is_empty());
}

#[test]
fn archiving_advances_every_aspect_it_touches() {
    let mut sim = Sim::new();
    sim.ok(5, archive_with(|a| a.employer_id = Some(id("inactive"))));
    let c = sim.contact();
    for aspect in [
        ACTIVATION.to_owned(),
        VISIBILITY.to_owned(),
        EMPLOYER.to_owned(),
        attribute_aspect("do_not_email"),
    ] {
        assert_eq!(c.aspects.get(&aspect), Some(&ts(5)), "{aspect}");
    }
    assert_stale(&sim.ok(4, set_visibility(Visibility::Everyone)));
    assert_stale(&sim.ok(4, set_attrs(&[("do_not_email", Some(json!(false)))])));
    assert_stale(&sim.ok(4, change_employer(Some("e-1"), None)));
    assert_stale(&sim.ok(4, reactivate()));
    // An aspect it does not touch still takes older commands.
    assert_eq!(sim.ok(4, change_status("B")).outcome, Outcome::Applied);
}

#[test]
fn archiving_is_judged_by_the_activation_aspect_alone() {
    let mut sim = Sim::new();
    sim.ok(10, set_visibility(Visibility::Owner));
    let d = sim.ok(5, archive());
    assert_eq!(d.outcome, Outcome::Applied);
    let c = written(&d);
    assert_eq!(c.visibility, Visibility::Advisors);
    assert_eq!(c.aspects.get(VISIBILITY), Some(&ts(10)), "never moved back");
}

#[test]
fn archiving_to_another_employer_moves_the_contact_and_remembers_where_it_was() {
    let mut sim = Sim::new();
    let d = sim.ok(5, archive_with(|a| a.employer_id = Some(id("inactive"))));
    assert_applied(
        &d,
        1,
        &[
            ContactArchived,
            ContactDeactivated,
            ContactVisibilityChanged,
            ContactAttributesChanged,
            ContactEmployerChanged,
            ContactEmailSuppressed,
        ],
    );
    assert_eq!(
        event(&d, ContactEmployerChanged).data["to"],
        json!({"employer_id": "inactive", "department": null})
    );
    let c = written(&d);
    assert_eq!(c.employer_id, Some(id("inactive")));
    assert_eq!(c.department, None);
    assert_eq!(
        c.former_employers,
        vec![FormerEmployer {
            employer_id: id("e-1"),
            department: Some("Sales".into()),
            from: ts(0),
            until: ts(5),
        }]
    );
    let memo = c.archive.as_ref().unwrap().employer.as_ref().unwrap();
    assert_eq!(memo.employer_id, Some(id("e-1")));
    assert_eq!(memo.department.as_deref(), Some("Sales"));
    assert_eq!(d.ensure_employers(), vec![id("inactive")]);
}

#[test]
fn archiving_to_the_current_employer_moves_nothing() {
    let mut sim = Sim::new();
    let d = sim.ok(5, archive_with(|a| a.employer_id = Some(id("e-1"))));
    assert!(!types(&d).contains(&ContactEmployerChanged));
    let c = written(&d);
    assert_eq!(c.archive.as_ref().unwrap().employer, None);
    assert_eq!(c.department.as_deref(), Some("Sales"));
}

#[test]
fn archiving_without_suppress_email_leaves_do_not_email_alone() {
    let mut sim = Sim::new();
    let d = sim.ok(
        5,
        archive_with(|a| {
            a.suppress_email = false;
            a.visibility = Visibility::Owner;
        }),
    );
    assert_applied(
        &d,
        1,
        &[
            ContactArchived,
            ContactDeactivated,
            ContactVisibilityChanged,
            ContactEmailSuppressed,
        ],
    );
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["inactive"])
    );
    let c = written(&d);
    assert!(!c.attributes.contains_key("do_not_email"));
    assert_eq!(c.visibility, Visibility::Owner);
    assert!(!c.aspects.contains_key(&attribute_aspect("do_not_email")));
}

#[test]
fn archiving_an_inactive_hidden_suppressed_contact_emits_only_archived() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    sim.ok(2, set_visibility(Visibility::Advisors));
    sim.ok(3, set_attrs(&[("do_not_email", Some(json!(true)))]));
    let d = sim.ok(5, archive());
    assert_applied(&d, 4, &[ContactArchived]);
    assert_eq!(
        written(&d).archive.as_ref().unwrap().do_not_email,
        Some(json!(true))
    );
}

#[test]
fn archiving_with_revoke_user_access_revokes_every_linked_user_with_access() {
    let mut sim = Sim::new();
    sim.link_user("u-1", true);
    sim.link_user("u-2", false);
    sim.link_user("u-3", true);
    let d = sim.ok(5, archive_with(|a| a.revoke_user_access = true));
    assert_applied(
        &d,
        1,
        &[
            ContactArchived,
            ContactDeactivated,
            ContactVisibilityChanged,
            ContactAttributesChanged,
            ContactEmailSuppressed,
            UserAccessRevoked,
            UserAccessRevoked,
        ],
    );
    let user_events: Vec<&EventDraft> = d
        .events
        .iter()
        .filter(|e| e.entity_kind == EntityKind::User)
        .collect();
    let ids: Vec<&str> = user_events.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(ids, ["u-1", "u-3"]);
    for e in user_events {
        assert_eq!(e.version, 4, "the user's own next version");
        assert_eq!(e.data["reason"], "retired");
        assert_eq!(e.data["user"]["site_access"], false);
        assert_eq!(e.data["user"]["version"], 4);
    }
    assert_eq!(d.linked_users().len(), 2);
    for u in d.linked_users() {
        assert!(!u.site_access);
        assert_eq!(u.version, 4);
        assert_eq!(u.updated_at, Ts(NOW));
        assert_eq!(u.aspects.get("access"), Some(&ts(5)));
    }
    assert_eq!(
        written(&d).archive.as_ref().unwrap().revoked_users,
        vec![id("u-1"), id("u-3")]
    );
    assert!(!sim.user("u-1").site_access);
    assert_eq!(sim.user("u-2").version, 3, "already without access");
}

#[test]
fn archiving_without_revoke_user_access_leaves_users_alone() {
    let mut sim = Sim::new();
    sim.link_user("u-1", true);
    let d = sim.ok(5, archive());
    assert!(d.linked_users().is_empty());
    assert!(d
        .events
        .iter()
        .all(|e| e.entity_kind == EntityKind::Contact));
    assert!(sim.user("u-1").site_access);
}

#[test]
fn archiving_an_archived_contact_is_unchanged() {
    let mut sim = Sim::new();
    sim.link_user("u-1", true);
    sim.ok(5, archive());
    let d = sim.ok(10, archive_with(|a| a.revoke_user_access = true));
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(10)));
    assert!(sim.user("u-1").site_access);
    assert_eq!(sim.contact().archive.as_ref().unwrap().archived_at, ts(5));
}

#[test]
fn archiving_with_an_older_issued_at_than_the_activation_aspect_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, reactivate());
    assert_stale(&sim.ok(5, archive()));
    assert!(sim.contact().archive.is_none());
}

#[test]
fn archive_and_revive_are_refused_for_missing_or_conflicting_contacts() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, archive()), ErrorCode::NotFound);
    assert_eq!(sim.refused(5, revive()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, archive(), Some(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    sim.ok(5, archive());
    let err = sim.run_expecting(6, revive(), Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn reviving_a_contact_that_is_not_archived_is_an_invalid_transition() {
    let mut sim = Sim::new();
    assert_eq!(sim.refused(5, revive()), ErrorCode::InvalidTransition);
    sim.ok(6, archive());
    sim.ok(7, revive());
    assert_eq!(
        sim.refused(8, revive()),
        ErrorCode::InvalidTransition,
        "already revived"
    );
}

#[test]
fn reviving_with_an_older_issued_at_than_the_archive_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, archive());
    assert_stale(&sim.ok(5, revive()));
    assert!(sim.contact().archive.is_some());
}

#[test]
fn an_archive_revive_round_trip_restores_the_contact_and_its_users() {
    let mut sim = Sim::new();
    sim.link_user("u-1", true);
    sim.link_user("u-2", true);
    let before = sim.contact().clone();
    sim.ok(
        5,
        archive_with(|a| {
            a.employer_id = Some(id("inactive"));
            a.revoke_user_access = true;
        }),
    );
    let d = sim.ok(10, revive());
    assert_applied(
        &d,
        2,
        &[
            ContactRevived,
            ContactReactivated,
            ContactVisibilityChanged,
            ContactAttributesChanged,
            ContactEmployerChanged,
            ContactEmailUnsuppressed,
            UserAccessRestored,
            UserAccessRestored,
        ],
    );
    let c = written(&d);
    assert!(c.active);
    assert!(c.archive.is_none());
    assert_eq!(c.visibility, before.visibility);
    assert_eq!(c.employer_id, before.employer_id);
    assert_eq!(c.department, before.department);
    assert!(
        !c.attributes.contains_key("do_not_email"),
        "absent again as before the archive"
    );
    assert_eq!(c.attributes, before.attributes);
    assert!(!c.email_suppressed);
    assert_eq!(
        c.former_employers,
        vec![
            FormerEmployer {
                employer_id: id("e-1"),
                department: Some("Sales".into()),
                from: ts(0),
                until: ts(5),
            },
            FormerEmployer {
                employer_id: id("inactive"),
                department: None,
                from: ts(5),
                until: ts(10),
            },
        ]
    );
    assert_eq!(
        event(&d, ContactEmployerChanged).data["to"],
        json!({"employer_id": "e-1", "department": "Sales"})
    );
    assert_eq!(d.events[0].data["contact"]["archived"], false);
    for uid in ["u-1", "u-2"] {
        let u = sim.user(uid);
        assert!(u.site_access, "{uid}");
        assert_eq!(u.version, 5, "revoked then restored");
    }
    let restored: Vec<_> = d
        .events
        .iter()
        .filter(|e| e.event_type == UserAccessRestored)
        .map(|e| (e.entity_id.as_str(), e.version))
        .collect();
    assert_eq!(restored, [("u-1", 5), ("u-2", 5)]);
}

#[test]
fn reviving_advances_every_aspect_it_touches() {
    let mut sim = Sim::new();
    sim.ok(5, archive_with(|a| a.employer_id = Some(id("inactive"))));
    sim.ok(10, revive());
    let c = sim.contact();
    for aspect in [
        ACTIVATION.to_owned(),
        VISIBILITY.to_owned(),
        EMPLOYER.to_owned(),
        attribute_aspect("do_not_email"),
    ] {
        assert_eq!(c.aspects.get(&aspect), Some(&ts(10)), "{aspect}");
    }
    assert_stale(&sim.ok(7, set_visibility(Visibility::Owner)));
}

#[test]
fn reviving_restores_a_do_not_email_that_was_false_before_the_archive() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("do_not_email", Some(json!(false)))]));
    sim.ok(5, archive());
    let d = sim.ok(10, revive());
    assert_eq!(
        written(&d).attributes.get("do_not_email"),
        Some(&json!(false))
    );
    assert!(!written(&d).email_suppressed);
}

#[test]
fn reviving_keeps_a_do_not_email_that_was_true_before_the_archive() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("do_not_email", Some(json!(true)))]));
    sim.ok(5, archive());
    let d = sim.ok(10, revive());
    assert_applied(
        &d,
        3,
        &[ContactRevived, ContactReactivated, ContactVisibilityChanged],
    );
    assert_eq!(
        written(&d).attributes.get("do_not_email"),
        Some(&json!(true))
    );
    assert!(written(&d).email_suppressed);
}

#[test]
fn reviving_with_restore_email_false_keeps_do_not_email_as_it_is() {
    let mut sim = Sim::new();
    sim.ok(5, archive());
    let d = sim.ok(10, revive_with(|r| r.restore_email = false));
    assert_applied(
        &d,
        2,
        &[ContactRevived, ContactReactivated, ContactVisibilityChanged],
    );
    let c = written(&d);
    assert_eq!(c.attributes.get("do_not_email"), Some(&json!(true)));
    assert!(c.email_suppressed, "do_not_email still suppresses");
    assert_eq!(
        c.aspects.get(&attribute_aspect("do_not_email")),
        Some(&ts(5))
    );
}

#[test]
fn reviving_with_overrides_uses_the_given_employer_and_visibility() {
    let mut sim = Sim::new();
    sim.ok(5, archive_with(|a| a.employer_id = Some(id("inactive"))));
    let d = sim.ok(
        10,
        revive_with(|r| {
            r.employer_id = Some(id("e-9"));
            r.visibility = Some(Visibility::Owner);
        }),
    );
    let c = written(&d);
    assert_eq!(c.employer_id, Some(id("e-9")));
    assert_eq!(c.department, None);
    assert_eq!(c.visibility, Visibility::Owner);
    assert_eq!(d.ensure_employers(), vec![id("e-9")]);
    assert_eq!(
        event(&d, ContactVisibilityChanged).data["to"],
        json!("owner")
    );
}

#[test]
fn reviving_with_an_employer_override_moves_even_when_the_archive_did_not() {
    let mut sim = Sim::new();
    sim.ok(5, archive());
    let d = sim.ok(10, revive_with(|r| r.employer_id = Some(id("e-2"))));
    assert!(types(&d).contains(&ContactEmployerChanged));
    assert_eq!(written(&d).employer_id, Some(id("e-2")));
}

#[test]
fn reviving_after_an_archive_that_did_not_move_keeps_the_current_employer() {
    let mut sim = Sim::new();
    sim.ok(5, archive());
    let d = sim.ok(10, revive());
    assert!(!types(&d).contains(&ContactEmployerChanged));
    assert_eq!(written(&d).employer_id, Some(id("e-1")));
    assert_eq!(written(&d).department.as_deref(), Some("Sales"));
}

#[test]
fn reviving_restores_only_the_users_that_archive_revoked() {
    let mut sim = Sim::new();
    sim.link_user("u-1", true);
    sim.link_user("u-2", false);
    sim.ok(5, archive_with(|a| a.revoke_user_access = true));
    let d = sim.ok(10, revive());
    let restored: Vec<&str> = d.linked_users().iter().map(|u| u.id.as_str()).collect();
    assert_eq!(restored, ["u-1"]);
    assert!(sim.user("u-1").site_access);
    assert!(
        !sim.user("u-2").site_access,
        "was revoked before the archive"
    );
}

#[test]
fn reviving_skips_a_revoked_user_whose_access_was_already_restored() {
    let mut sim = Sim::new();
    sim.link_user("u-1", true);
    sim.ok(5, archive_with(|a| a.revoke_user_access = true));
    sim.users[0].site_access = true;
    let d = sim.ok(10, revive());
    assert!(d.linked_users().is_empty());
    assert!(d
        .events
        .iter()
        .all(|e| e.entity_kind == EntityKind::Contact));
}

#[test]
fn a_second_archive_remembers_the_state_after_the_first_revive() {
    let mut sim = Sim::new();
    sim.ok(5, archive());
    sim.ok(10, revive_with(|r| r.visibility = Some(Visibility::Owner)));
    let d = sim.ok(15, archive());
    let memo = written(&d).archive.as_ref().unwrap();
    assert_eq!(memo.archived_at, ts(15));
    assert_eq!(memo.visibility, Visibility::Owner);
    sim.ok(20, revive());
    assert_eq!(sim.contact().visibility, Visibility::Owner);
}
