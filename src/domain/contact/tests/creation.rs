//! contact.upsert: creation: decisions and outcomes.

use super::*;
use crate::domain::effect::Effects;

#[test]
fn creating_a_contact_applies_version_one_with_the_contract_defaults() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, standard_upsert());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactCreated]);
    let c = written(&d);
    assert_eq!(c.version, 1);
    assert!(c.active);
    assert_eq!(c.status, "A");
    assert_eq!(c.visibility, Visibility::Everyone);
    assert_eq!(c.approval, Approval::Approved);
    assert!(!c.email_suppressed);
    assert!(c.shown_on_employer);
    assert!(c.archive.is_none());
    assert!(c.former_employers.is_empty());
    assert_eq!(c.employer_id, Some(id("e-1")));
    assert_eq!(c.department.as_deref(), Some("Sales"));
    assert_eq!(c.created_at, Ts(NOW));
    assert_eq!(c.updated_at, Ts(NOW));
    for aspect in [PROFILE, ACTIVATION, STATUS, EMPLOYER, VISIBILITY, APPROVAL] {
        assert_eq!(c.aspects.get(aspect), Some(&ts(0)), "{aspect}");
    }
    assert_eq!(d.ensure_employers(), vec![id("e-1")]);
    assert_eq!(d.events[0].version, 1);
}

#[test]
fn created_event_carries_actor_issued_at_and_the_full_snapshot() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, standard_upsert());
    let data = &d.events[0].data;
    assert_eq!(data["actor"], "ats-sync");
    assert_eq!(data["issued_at"], "2026-11-22T08:00:00Z");
    let snap = data["contact"].as_object().unwrap();
    let mut keys: Vec<&str> = snap.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "id",
        "tenant",
        "version",
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "employer_id",
        "department",
        "active",
        "status",
        "visibility",
        "approval",
        "attributes",
        "email_suppressed",
        "shown_on_employer",
        "archived",
        "former_employers",
        "created_at",
        "updated_at",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(snap["id"], CID);
    assert_eq!(snap["tenant"], "acme");
    assert_eq!(snap["version"], 1);
    assert_eq!(snap["email"], EMAIL);
    assert_eq!(snap["visibility"], "everyone");
    assert_eq!(snap["approval"], "approved");
    assert_eq!(snap["archived"], false);
    assert_eq!(snap["created_at"], "2026-11-23T12:00:00Z");
}

#[test]
fn cloud_events_of_a_command_carry_its_id_and_the_entity_version() {
    let mut sim = Sim::new();
    let d = sim.ok(5, deactivate());
    let cmd = CommandId::parse("cmd-42", &Limits::default()).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    assert_eq!(d.events.len(), 2);
    for (seq, e) in d.events.into_iter().enumerate() {
        let ce = to_cloud_event(&tenant, &cmd, seq, e, NOW).cloud_event;
        assert_eq!(ce["entityversion"], 2);
        assert_eq!(ce["commandid"], "cmd-42");
        assert_eq!(ce["subject"], "contact/c-17");
    }
}

#[test]
fn creating_a_contact_with_only_a_name_is_allowed() {
    for op in [
        upsert(|u| u.first_name = Some("Ada".into())),
        upsert(|u| u.last_name = Some("Lovelace".into())),
        upsert(|u| u.email = Some(EMAIL.into())),
    ] {
        let mut sim = Sim::empty();
        let d = sim.ok(0, op);
        assert_eq!(d.outcome, Outcome::Applied);
        assert_eq!(written(&d).version, 1);
    }
}

#[test]
fn creating_a_contact_without_email_or_name_is_invalid_command() {
    let mut sim = Sim::empty();
    let op = upsert(|u| {
        u.phone = Some("+41 44 000 00 00".into());
        u.title = Some("CTO".into());
        u.employer_id = Some(id("e-1"));
    });
    assert_eq!(sim.refused(0, op), ErrorCode::InvalidCommand);
    assert_eq!(
        sim.refused(0, upsert(|_| {})),
        ErrorCode::InvalidCommand,
        "an empty upsert cannot create"
    );
}

#[test]
fn creating_a_contact_keeps_the_given_status_visibility_and_attributes() {
    let mut sim = Sim::empty();
    let d = sim.ok(
        0,
        upsert(|u| {
            u.email = Some(EMAIL.into());
            u.status = Some("B".into());
            u.visibility = Some(Visibility::Owner);
            u.attributes.insert("tier".into(), Some(json!("gold")));
            u.attributes.insert("gone".into(), None);
        }),
    );
    let c = written(&d);
    assert_eq!(c.status, "B");
    assert_eq!(c.visibility, Visibility::Owner);
    assert_eq!(c.attributes.get("tier"), Some(&json!("gold")));
    assert!(!c.attributes.contains_key("gone"));
    assert_eq!(c.aspects.get(&attribute_aspect("tier")), Some(&ts(0)));
    assert_eq!(types(&d), [ContactCreated]);
}

#[test]
fn creating_a_contact_with_an_unknown_status_is_invalid_status() {
    let mut sim = Sim::empty();
    let op = upsert(|u| {
        u.email = Some(EMAIL.into());
        u.status = Some("ZZ".into());
    });
    assert_eq!(sim.refused(0, op), ErrorCode::InvalidStatus);
}

#[test]
fn creating_a_contact_with_do_not_email_emits_suppressed_after_created() {
    let mut sim = Sim::empty();
    let d = sim.ok(
        0,
        upsert(|u| {
            u.email = Some(EMAIL.into());
            u.attributes
                .insert("do_not_email".into(), Some(Value::Bool(true)));
        }),
    );
    assert_eq!(types(&d), [ContactCreated, ContactEmailSuppressed]);
    let e = event(&d, ContactEmailSuppressed);
    assert_eq!(e.version, 1);
    assert_eq!(e.data["email"], EMAIL);
    assert_eq!(e.data["reasons"], json!(["do_not_email"]));
    assert!(written(&d).email_suppressed);
}

#[test]
fn creating_a_contact_with_a_suppressing_and_hiding_status_emits_suppressed() {
    let mut sim = Sim::empty();
    let d = sim.ok(
        0,
        upsert(|u| {
            u.email = Some(EMAIL.into());
            u.status = Some("D".into());
        }),
    );
    assert_eq!(types(&d), [ContactCreated, ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["status:D"])
    );
    let c = written(&d);
    assert!(c.email_suppressed);
    assert!(!c.shown_on_employer);
}

#[test]
fn creating_a_contact_without_email_is_never_suppressed() {
    let mut sim = Sim::empty();
    let d = sim.ok(
        0,
        upsert(|u| {
            u.first_name = Some("Ada".into());
            u.status = Some("D".into());
            u.attributes
                .insert("do_not_email".into(), Some(Value::Bool(true)));
        }),
    );
    assert_eq!(types(&d), [ContactCreated]);
    assert!(!written(&d).email_suppressed);
}

#[test]
fn creating_with_expected_version_zero_applies_and_any_other_is_a_version_conflict() {
    let mut sim = Sim::empty();
    assert_eq!(
        sim.run_expecting(0, standard_upsert(), Some(1))
            .unwrap_err()
            .code,
        ErrorCode::VersionConflict
    );
    let d = sim.run_expecting(0, standard_upsert(), Some(0)).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
}

#[test]
fn a_contact_can_be_created_whatever_its_issued_at() {
    let mut sim = Sim::empty();
    let d = sim.ok(-10_000, standard_upsert());
    assert_eq!(d.outcome, Outcome::Applied);
}
