//! Unit tests of `decide_contact`, `summarize_bulk` and
//! `check_op_against_policy`: every contact command against every outcome
//! that applies to it (contract sections 3-5).

use super::bulk::summarize_bulk;
use super::command::{Archive, ContactOp, ContactUpsert, LogActivity, Revive};
use super::decide::{check_op_against_policy, decide_contact, ContactDecision};
use super::{
    attribute_aspect, ActivityKind, Approval, Contact, ContactRecord, FormerEmployer, Visibility,
    ACTIVATION, APPROVAL, EMPLOYER, PROFILE, STATUS, VISIBILITY,
};
use crate::domain::event::{to_cloud_event, EventDraft, EventType};
use crate::domain::ids::{CommandId, Limits, TenantId};
use crate::domain::outcome::{BulkItem, EntityKind, ErrorCode, Outcome, Rejection, ReplyError};
use crate::domain::policy::TenantPolicy;
use crate::domain::test_support::{at, id, ts, World, NOW};
use crate::domain::ts::Ts;
use crate::domain::user::User;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use EventType::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const CID: &str = "c-17";
const EMAIL: &str = "ada@example.com";

/// One contact's history: each decision's writes are kept, as the store would.
struct Sim {
    world: World,
    record: ContactRecord,
    users: Vec<User>,
}

impl Sim {
    /// No contact yet.
    fn empty() -> Sim {
        Sim::empty_in(World::new())
    }

    fn empty_in(world: World) -> Sim {
        Sim {
            world,
            record: ContactRecord::Absent,
            users: vec![],
        }
    }

    /// The standard contact, created at minute 0: Ada Lovelace, with an
    /// email, at employer `e-1`, department `Sales`.
    fn new() -> Sim {
        Sim::new_in(World::new())
    }

    fn new_in(world: World) -> Sim {
        let mut sim = Sim::empty_in(world);
        let d = sim.ok(0, standard_upsert());
        assert_eq!(d.outcome, Outcome::Applied);
        sim
    }

    fn run(&mut self, minute: i64, op: ContactOp) -> Result<ContactDecision, Rejection> {
        self.run_expecting(minute, op, None)
    }

    fn run_expecting(
        &mut self,
        minute: i64,
        op: ContactOp,
        expected_version: Option<u64>,
    ) -> Result<ContactDecision, Rejection> {
        let ctx = self.world.ctx(minute);
        let d = decide_contact(
            &ctx,
            &id(CID),
            &self.record,
            &op,
            expected_version,
            &self.users,
        );
        if let Ok(d) = &d {
            if let Some(w) = &d.write {
                self.record = w.clone();
            }
            for u in &d.users {
                let slot = self.users.iter_mut().find(|x| x.id == u.id).unwrap();
                *slot = u.clone();
            }
        }
        d
    }

    /// Runs a command that must be accepted.
    fn ok(&mut self, minute: i64, op: ContactOp) -> ContactDecision {
        let name = op.type_name();
        self.run(minute, op)
            .unwrap_or_else(|r| panic!("{name} at minute {minute} was refused: {r}"))
    }

    /// Runs a command that must be refused; returns its code. Nothing is written.
    fn refused(&mut self, minute: i64, op: ContactOp) -> ErrorCode {
        let before = self.record.clone();
        let name = op.type_name();
        let code = match self.run(minute, op) {
            Ok(d) => panic!("{name} at minute {minute} was not refused: {:?}", d.outcome),
            Err(r) => r.code,
        };
        assert_eq!(self.record, before, "a refused command writes nothing");
        code
    }

    fn contact(&self) -> &Contact {
        match &self.record {
            ContactRecord::Live(c) => c,
            other => panic!("no live contact: {other:?}"),
        }
    }

    fn version(&self) -> u64 {
        self.contact().version
    }

    fn link_user(&mut self, uid: &str, site_access: bool) {
        self.users.push(user(uid, site_access));
    }

    fn user(&self, uid: &str) -> &User {
        self.users.iter().find(|u| u.id.as_str() == uid).unwrap()
    }
}

fn user(uid: &str, site_access: bool) -> User {
    User {
        id: id(uid),
        version: 3,
        email: format!("{uid}@example.com"),
        name: None,
        employer_id: Some(id("e-1")),
        contact_id: Some(id(CID)),
        role_id: None,
        site_access,
        aspects: BTreeMap::new(),
        created_at: ts(0),
        updated_at: ts(0),
    }
}

fn upsert(f: impl FnOnce(&mut ContactUpsert)) -> ContactOp {
    let mut u = ContactUpsert::default();
    f(&mut u);
    ContactOp::Upsert(Box::new(u))
}

fn standard_upsert() -> ContactOp {
    upsert(|u| {
        u.first_name = Some("Ada".into());
        u.last_name = Some("Lovelace".into());
        u.email = Some(EMAIL.into());
        u.employer_id = Some(id("e-1"));
        u.department = Some("Sales".into());
    })
}

fn deactivate() -> ContactOp {
    ContactOp::Deactivate {
        reason: Some("left the company".into()),
    }
}

fn reactivate() -> ContactOp {
    ContactOp::Reactivate {
        reason: Some("came back".into()),
    }
}

fn change_status(status: &str) -> ContactOp {
    ContactOp::ChangeStatus {
        status: status.into(),
    }
}

fn change_employer(employer: Option<&str>, department: Option<&str>) -> ContactOp {
    ContactOp::ChangeEmployer {
        employer_id: employer.map(id),
        department: department.map(str::to_owned),
    }
}

fn set_visibility(visibility: Visibility) -> ContactOp {
    ContactOp::SetVisibility { visibility }
}

fn set_attrs(pairs: &[(&str, Option<Value>)]) -> ContactOp {
    ContactOp::SetAttributes {
        attributes: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

fn approve() -> ContactOp {
    ContactOp::Approve {
        reason: Some("vetted".into()),
    }
}

fn reject() -> ContactOp {
    ContactOp::Reject {
        reason: Some("spam".into()),
    }
}

/// `contact.archive` with the contract's defaults, then `f`.
fn archive_with(f: impl FnOnce(&mut Archive)) -> ContactOp {
    let mut a = Archive {
        reason: Some("retired".into()),
        employer_id: None,
        suppress_email: true,
        visibility: Visibility::Advisors,
        revoke_user_access: false,
    };
    f(&mut a);
    ContactOp::Archive(a)
}

fn archive() -> ContactOp {
    archive_with(|_| {})
}

/// `contact.revive` with the contract's defaults, then `f`.
fn revive_with(f: impl FnOnce(&mut Revive)) -> ContactOp {
    let mut r = Revive {
        employer_id: None,
        visibility: None,
        restore_email: true,
    };
    f(&mut r);
    ContactOp::Revive(r)
}

fn revive() -> ContactOp {
    revive_with(|_| {})
}

fn activity(kind: ActivityKind, action_code: Option<&str>) -> ContactOp {
    ContactOp::LogActivity(LogActivity {
        kind,
        body: "called about the fair".into(),
        action_code: action_code.map(str::to_owned),
        occurred_at: None,
    })
}

fn delete() -> ContactOp {
    ContactOp::Delete
}

fn types(d: &ContactDecision) -> Vec<EventType> {
    d.events.iter().map(|e| e.event_type).collect()
}

fn event(d: &ContactDecision, t: EventType) -> &EventDraft {
    d.events
        .iter()
        .find(|e| e.event_type == t)
        .unwrap_or_else(|| panic!("no {t:?} in {:?}", types(d)))
}

fn written(d: &ContactDecision) -> &Contact {
    match &d.write {
        Some(ContactRecord::Live(c)) => c,
        other => panic!("no live contact written: {other:?}"),
    }
}

/// Applied: one version bump, every contact event carries the new version.
fn assert_applied(d: &ContactDecision, version_before: u64, expected: &[EventType]) {
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(d), expected);
    let after = written(d).version;
    assert_eq!(after, version_before + 1, "exactly one version bump");
    for e in d
        .events
        .iter()
        .filter(|e| e.entity_kind == EntityKind::Contact)
    {
        assert_eq!(
            e.version, after,
            "{:?} carries the new version",
            e.event_type
        );
        assert_eq!(e.entity_id, CID);
    }
}

/// Unchanged: recorded, no bump, no event.
fn assert_unchanged(d: &ContactDecision, version_before: u64) {
    assert_eq!(d.outcome, Outcome::Unchanged);
    assert!(d.events.is_empty(), "no events: {:?}", types(d));
    assert_eq!(written(d).version, version_before);
    assert!(d.users.is_empty());
    assert!(d.activity.is_none());
}

/// Stale: nothing written, no event.
fn assert_stale(d: &ContactDecision) {
    assert_eq!(d.outcome, Outcome::Stale);
    assert!(d.write.is_none());
    assert!(d.events.is_empty());
    assert!(d.users.is_empty());
}

// ---------------------------------------------------------------------------
// contact.upsert: creation
// ---------------------------------------------------------------------------

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
    assert_eq!(d.ensure_employers, vec![id("e-1")]);
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

// ---------------------------------------------------------------------------
// contact.upsert: update
// ---------------------------------------------------------------------------

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
    assert_eq!(d.ensure_employers, vec![id("e-2")]);
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

// ---------------------------------------------------------------------------
// contact.deactivate / contact.reactivate
// ---------------------------------------------------------------------------

#[test]
fn deactivating_an_active_contact_applies_and_suppresses_its_email() {
    let mut sim = Sim::new();
    let d = sim.ok(5, deactivate());
    assert_applied(&d, 1, &[ContactDeactivated, ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactDeactivated).data["reason"],
        "left the company"
    );
    let s = event(&d, ContactEmailSuppressed);
    assert_eq!(s.data["email"], EMAIL);
    assert_eq!(s.data["reasons"], json!(["inactive"]));
    let c = written(&d);
    assert!(!c.active);
    assert!(c.email_suppressed);
    assert_eq!(c.aspects.get(ACTIVATION), Some(&ts(5)));
    assert_eq!(d.events[0].data["contact"]["active"], false);
}

#[test]
fn deactivating_an_inactive_contact_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    let d = sim.ok(10, deactivate());
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(10)));
}

#[test]
fn an_unchanged_deactivate_makes_an_older_reactivate_stale() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    sim.ok(10, deactivate());
    let d = sim.ok(7, reactivate());
    assert_stale(&d);
    assert!(!sim.contact().active);
}

#[test]
fn deactivating_with_an_older_issued_at_than_the_activation_aspect_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    sim.ok(20, reactivate());
    let d = sim.ok(15, deactivate());
    assert_stale(&d);
    assert!(sim.contact().active);
}

#[test]
fn commands_with_equal_timestamps_apply_in_arrival_order() {
    let mut sim = Sim::new();
    let d = sim.ok(0, deactivate());
    assert_applied(&d, 1, &[ContactDeactivated, ContactEmailSuppressed]);
    let d = sim.ok(0, reactivate());
    assert_applied(&d, 2, &[ContactReactivated, ContactEmailUnsuppressed]);
}

#[test]
fn reactivating_an_inactive_contact_applies_and_unsuppresses_its_email() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    let d = sim.ok(10, reactivate());
    assert_applied(&d, 2, &[ContactReactivated, ContactEmailUnsuppressed]);
    assert_eq!(event(&d, ContactReactivated).data["reason"], "came back");
    assert_eq!(event(&d, ContactEmailUnsuppressed).data["email"], EMAIL);
    assert!(written(&d).active);
    assert!(!written(&d).email_suppressed);
}

#[test]
fn reactivating_an_active_contact_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, reactivate());
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(5)));
}

#[test]
fn reactivating_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    assert_stale(&sim.ok(5, reactivate()));
    assert!(!sim.contact().active);
}

#[test]
fn reactivating_a_still_suppressed_contact_emits_no_unsuppressed() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("do_not_email", Some(json!(true)))]));
    sim.ok(2, deactivate());
    let d = sim.ok(3, reactivate());
    assert_applied(&d, 3, &[ContactReactivated]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn deactivating_a_contact_without_email_emits_no_suppression_event() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(5, deactivate());
    assert_applied(&d, 1, &[ContactDeactivated]);
    assert!(!written(&d).email_suppressed);
}

#[test]
fn activation_commands_on_a_missing_contact_are_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, deactivate()), ErrorCode::NotFound);
    assert_eq!(sim.refused(5, reactivate()), ErrorCode::NotFound);
}

#[test]
fn deactivating_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, deactivate(), Some(0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let err = sim.run_expecting(5, deactivate(), Some(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let d = sim.run_expecting(5, deactivate(), Some(1)).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
}

#[test]
fn a_version_conflict_wins_over_staleness() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    let err = sim.run_expecting(5, reactivate(), Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn activation_commands_on_a_rejected_contact_are_frozen() {
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(sim.refused(5, deactivate()), ErrorCode::Frozen);
    assert_eq!(sim.refused(5, reactivate()), ErrorCode::Frozen);
}

#[test]
fn a_stale_command_on_one_aspect_does_not_block_another_aspect() {
    let mut sim = Sim::new();
    sim.ok(10, deactivate());
    assert_stale(&sim.ok(5, reactivate()));
    let d = sim.ok(5, change_status("B"));
    assert_applied(&d, 2, &[ContactStatusChanged]);
    let d = sim.ok(5, set_visibility(Visibility::Owner));
    assert_applied(&d, 3, &[ContactVisibilityChanged]);
    let d = sim.ok(5, change_employer(Some("e-2"), None));
    assert_applied(&d, 4, &[ContactEmployerChanged]);
    let d = sim.ok(5, set_attrs(&[("tier", Some(json!("gold")))]));
    assert_applied(&d, 5, &[ContactAttributesChanged]);
    let d = sim.ok(5, upsert(|u| u.title = Some("CTO".into())));
    assert_applied(&d, 6, &[ContactUpdated]);
}

// ---------------------------------------------------------------------------
// contact.change_status, shown_on_employer
// ---------------------------------------------------------------------------

#[test]
fn changing_the_status_applies_with_from_and_to() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_status("B"));
    assert_applied(&d, 1, &[ContactStatusChanged]);
    let e = event(&d, ContactStatusChanged);
    assert_eq!(e.data["from"], "A");
    assert_eq!(e.data["to"], "B");
    assert_eq!(written(&d).status, "B");
    assert_eq!(written(&d).aspects.get(STATUS), Some(&ts(5)));
}

#[test]
fn changing_to_a_suppressing_status_suppresses_and_hides_the_contact() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_status("N"));
    assert_applied(&d, 1, &[ContactStatusChanged, ContactEmailSuppressed]);
    assert_eq!(
        event(&d, ContactEmailSuppressed).data["reasons"],
        json!(["status:N"])
    );
    let c = written(&d);
    assert!(c.email_suppressed);
    assert!(!c.shown_on_employer);
    assert_eq!(d.events[0].data["contact"]["shown_on_employer"], false);
}

#[test]
fn changing_back_to_a_plain_status_unsuppresses_and_shows_the_contact() {
    let mut sim = Sim::new();
    sim.ok(5, change_status("D"));
    let d = sim.ok(10, change_status("A"));
    assert_applied(&d, 2, &[ContactStatusChanged, ContactEmailUnsuppressed]);
    assert!(written(&d).shown_on_employer);
    assert!(!written(&d).email_suppressed);
}

#[test]
fn moving_between_two_suppressing_statuses_emits_no_suppression_event() {
    let mut sim = Sim::new();
    sim.ok(5, change_status("D"));
    let d = sim.ok(10, change_status("I"));
    assert_applied(&d, 2, &[ContactStatusChanged]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn suppression_reasons_list_every_cause() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_eq!(
        sim.contact().suppression_reasons(&sim.world.policy),
        ["do_not_email"]
    );
    sim.ok(2, change_status("D"));
    sim.ok(3, deactivate());
    sim.ok(4, reject());
    assert_eq!(
        sim.contact().suppression_reasons(&sim.world.policy),
        ["do_not_email", "inactive", "rejected", "status:D"]
    );
}

#[test]
fn hiding_statuses_decide_shown_on_employer_independently_of_suppression() {
    let world = World::with_policy(|p| {
        p.hiding_statuses = vec!["H".into()];
        p.suppressing_statuses = vec!["D".into()];
    });
    let mut sim = Sim::new_in(world);
    let d = sim.ok(5, change_status("H"));
    assert_applied(&d, 1, &[ContactStatusChanged]);
    assert!(!written(&d).shown_on_employer);
    assert!(!written(&d).email_suppressed);
    let d = sim.ok(10, change_status("D"));
    assert_applied(&d, 2, &[ContactStatusChanged, ContactEmailSuppressed]);
    assert!(written(&d).shown_on_employer);
}

#[test]
fn changing_to_the_current_status_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_status("A"));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(STATUS), Some(&ts(5)));
    assert_stale(&sim.ok(3, change_status("B")));
}

#[test]
fn changing_the_status_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, change_status("B"));
    assert_stale(&sim.ok(5, change_status("C")));
    assert_eq!(sim.contact().status, "B");
}

#[test]
fn changing_to_a_status_outside_the_tenant_codes_is_invalid_status() {
    let mut sim = Sim::new();
    assert_eq!(sim.refused(5, change_status("Z")), ErrorCode::InvalidStatus);
    assert_eq!(sim.refused(5, change_status("a")), ErrorCode::InvalidStatus);
}

#[test]
fn every_default_status_code_is_accepted() {
    for code in "A B C D H I L N P S1 T W".split(' ') {
        let mut sim = Sim::new();
        sim.ok(5, change_status(code));
        assert_eq!(sim.contact().status, code);
    }
}

#[test]
fn a_tenant_with_its_own_status_codes_accepts_only_those() {
    let mut sim = Sim::new_in(World::with_policy(|p| {
        p.statuses = vec!["A".into(), "X1".into()];
    }));
    assert_eq!(written(&sim.ok(5, change_status("X1"))).status, "X1");
    assert_eq!(sim.refused(6, change_status("B")), ErrorCode::InvalidStatus);
}

#[test]
fn an_invalid_status_is_refused_even_for_a_missing_or_frozen_contact() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, change_status("Z")), ErrorCode::InvalidStatus);
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(sim.refused(5, change_status("Z")), ErrorCode::InvalidStatus);
}

#[test]
fn changing_the_status_of_a_missing_contact_is_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, change_status("B")), ErrorCode::NotFound);
}

#[test]
fn changing_the_status_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, change_status("B"), Some(3))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn changing_the_status_of_a_rejected_contact_is_frozen() {
    let mut sim = Sim::new();
    sim.ok(1, reject());
    assert_eq!(sim.refused(5, change_status("B")), ErrorCode::Frozen);
}

// ---------------------------------------------------------------------------
// contact.change_employer
// ---------------------------------------------------------------------------

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
    assert_eq!(d.ensure_employers, vec![id("e-2")]);
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
    assert!(d.ensure_employers.is_empty());
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
    assert!(d.ensure_employers.is_empty());
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

// ---------------------------------------------------------------------------
// contact.set_visibility
// ---------------------------------------------------------------------------

#[test]
fn setting_the_visibility_applies_with_from_and_to() {
    let mut sim = Sim::new();
    let d = sim.ok(5, set_visibility(Visibility::Advisors));
    assert_applied(&d, 1, &[ContactVisibilityChanged]);
    let e = event(&d, ContactVisibilityChanged);
    assert_eq!(e.data["from"], "everyone");
    assert_eq!(e.data["to"], "advisors");
    assert_eq!(written(&d).visibility, Visibility::Advisors);
}

#[test]
fn setting_the_current_visibility_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, set_visibility(Visibility::Everyone));
    assert_unchanged(&d, 1);
    assert_stale(&sim.ok(4, set_visibility(Visibility::Owner)));
}

#[test]
fn setting_the_visibility_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, set_visibility(Visibility::Owner));
    assert_stale(&sim.ok(5, set_visibility(Visibility::Advisors)));
    assert_eq!(sim.contact().visibility, Visibility::Owner);
}

#[test]
fn visibility_commands_are_refused_for_missing_conflicting_or_frozen_contacts() {
    let mut sim = Sim::empty();
    assert_eq!(
        sim.refused(5, set_visibility(Visibility::Owner)),
        ErrorCode::NotFound
    );
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, set_visibility(Visibility::Owner), Some(2))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    sim.ok(6, reject());
    assert_eq!(
        sim.refused(7, set_visibility(Visibility::Owner)),
        ErrorCode::Frozen
    );
}

// ---------------------------------------------------------------------------
// contact.set_attributes
// ---------------------------------------------------------------------------

#[test]
fn setting_attributes_applies_with_each_change_from_and_to() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("silver")))]));
    let d = sim.ok(
        5,
        set_attrs(&[
            ("tier", Some(json!("gold"))),
            ("score", Some(json!(4.5))),
            ("vip", Some(json!(true))),
        ]),
    );
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(
        event(&d, ContactAttributesChanged).data["changed"],
        json!({
            "tier": {"from": "silver", "to": "gold"},
            "score": {"from": null, "to": 4.5},
            "vip": {"from": null, "to": true},
        })
    );
    let c = written(&d);
    assert_eq!(c.attributes.len(), 3);
    for name in ["tier", "score", "vip"] {
        assert_eq!(c.aspects.get(&attribute_aspect(name)), Some(&ts(5)));
    }
}

#[test]
fn setting_an_attribute_to_null_removes_it() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("gold")))]));
    let d = sim.ok(5, set_attrs(&[("tier", None)]));
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(
        event(&d, ContactAttributesChanged).data["changed"],
        json!({"tier": {"from": "gold", "to": null}})
    );
    assert!(!written(&d).attributes.contains_key("tier"));
}

#[test]
fn setting_attributes_to_their_current_values_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("gold")))]));
    let d = sim.ok(5, set_attrs(&[("tier", Some(json!("gold"))), ("x", None)]));
    assert_unchanged(&d, 2);
    let c = written(&d);
    assert_eq!(c.aspects.get(&attribute_aspect("tier")), Some(&ts(5)));
    assert_eq!(c.aspects.get(&attribute_aspect("x")), Some(&ts(5)));
    assert_stale(&sim.ok(4, set_attrs(&[("x", Some(json!(1)))])));
}

#[test]
fn attributes_are_one_aspect_per_name() {
    let mut sim = Sim::new();
    sim.ok(10, set_attrs(&[("tier", Some(json!("gold")))]));
    let d = sim.ok(
        5,
        set_attrs(&[
            ("tier", Some(json!("bronze"))),
            ("region", Some(json!("EU"))),
        ]),
    );
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(
        event(&d, ContactAttributesChanged).data["changed"],
        json!({"region": {"from": null, "to": "EU"}})
    );
    let c = written(&d);
    assert_eq!(c.attributes["tier"], json!("gold"));
    assert_eq!(c.aspects.get(&attribute_aspect("tier")), Some(&ts(10)));
    assert_eq!(c.aspects.get(&attribute_aspect("region")), Some(&ts(5)));
}

#[test]
fn setting_attributes_whose_names_are_all_stale_is_stale() {
    let mut sim = Sim::new();
    sim.ok(
        10,
        set_attrs(&[("a", Some(json!(1))), ("b", Some(json!(2)))]),
    );
    assert_stale(&sim.ok(5, set_attrs(&[("a", Some(json!(9))), ("b", None)])));
}

#[test]
fn setting_do_not_email_suppresses_and_clearing_it_unsuppresses() {
    let mut sim = Sim::new();
    let d = sim.ok(5, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_applied(&d, 1, &[ContactAttributesChanged, ContactEmailSuppressed]);
    let s = event(&d, ContactEmailSuppressed);
    assert_eq!(s.data["reasons"], json!(["do_not_email"]));
    assert_eq!(s.data["email"], EMAIL);
    assert_eq!(s.version, 2);

    let d = sim.ok(6, set_attrs(&[("do_not_email", Some(json!(false)))]));
    assert_applied(&d, 2, &[ContactAttributesChanged, ContactEmailUnsuppressed]);
    assert_eq!(event(&d, ContactEmailUnsuppressed).data["email"], EMAIL);

    sim.ok(7, set_attrs(&[("do_not_email", Some(json!(true)))]));
    let d = sim.ok(8, set_attrs(&[("do_not_email", None)]));
    assert_applied(&d, 4, &[ContactAttributesChanged, ContactEmailUnsuppressed]);
}

#[test]
fn setting_do_not_email_on_an_already_suppressed_contact_emits_no_flip() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    let d = sim.ok(5, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    let d = sim.ok(6, set_attrs(&[("do_not_email", Some(json!(false)))]));
    assert_applied(&d, 3, &[ContactAttributesChanged]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn do_not_email_without_an_email_suppresses_nothing() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(5, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_applied(&d, 1, &[ContactAttributesChanged]);
    assert!(!written(&d).email_suppressed);
    assert!(written(&d)
        .suppression_reasons(&sim.world.policy)
        .is_empty());
}

#[test]
fn setting_attributes_beyond_the_limit_is_invalid_command() {
    let mut sim = Sim::new_in(World::with_limits(|l| l.max_attributes = 2));
    sim.ok(
        1,
        set_attrs(&[("a", Some(json!(1))), ("b", Some(json!(2)))]),
    );
    assert_eq!(
        sim.refused(5, set_attrs(&[("c", Some(json!(3)))])),
        ErrorCode::InvalidCommand
    );
    // Replacing one attribute by another stays within the limit.
    let d = sim.ok(5, set_attrs(&[("a", None), ("c", Some(json!(3)))]));
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(written(&d).attributes.len(), 2);
}

#[test]
fn attribute_commands_are_refused_for_missing_conflicting_or_frozen_contacts() {
    let op = || set_attrs(&[("tier", Some(json!("gold")))]);
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, op()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, op(), Some(0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    sim.ok(6, reject());
    assert_eq!(sim.refused(7, op()), ErrorCode::Frozen);
}

// ---------------------------------------------------------------------------
// contact.approve / contact.reject, frozen
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// contact.archive / contact.revive
// ---------------------------------------------------------------------------

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
    assert!(d.users.is_empty());
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
    assert_eq!(d.ensure_employers, vec![id("inactive")]);
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
    assert_eq!(d.users.len(), 2);
    for u in &d.users {
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
    assert!(d.users.is_empty());
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
    assert_eq!(d.ensure_employers, vec![id("e-9")]);
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
    let restored: Vec<&str> = d.users.iter().map(|u| u.id.as_str()).collect();
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
    assert!(d.users.is_empty());
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

// ---------------------------------------------------------------------------
// contact.log_activity
// ---------------------------------------------------------------------------

#[test]
fn logging_an_activity_applies_and_attributes_it_to_the_current_employer() {
    let mut sim = Sim::new();
    let d = sim.ok(5, activity(ActivityKind::Meeting, Some("M-1")));
    assert_applied(&d, 1, &[ContactActivityLogged]);
    let e = event(&d, ContactActivityLogged);
    assert_eq!(e.data["kind"], "meeting");
    assert_eq!(e.data["action_code"], "M-1");
    assert_eq!(e.data["employer_id"], "e-1");
    let a = d.activity.as_ref().expect("an activity to store");
    assert_eq!(a.kind, ActivityKind::Meeting);
    assert_eq!(a.body, "called about the fair");
    assert_eq!(a.employer_id, Some(id("e-1")));
    assert_eq!(a.occurred_at, ts(5), "defaults to issued_at");
    assert!(written(&d).active);
}

#[test]
fn logging_an_activity_keeps_the_given_occurred_at() {
    let mut sim = Sim::new();
    let op = ContactOp::LogActivity(LogActivity {
        kind: ActivityKind::Task,
        body: "follow up".into(),
        action_code: None,
        occurred_at: Some(at(-60)),
    });
    let d = sim.ok(5, op);
    assert_eq!(d.activity.unwrap().occurred_at, ts(-60));
}

#[test]
fn activity_logged_after_an_employer_change_belongs_to_the_new_employer() {
    let mut sim = Sim::new();
    sim.ok(5, change_employer(Some("e-2"), None));
    let d = sim.ok(6, activity(ActivityKind::Note, None));
    assert_eq!(d.activity.as_ref().unwrap().employer_id, Some(id("e-2")));
    assert_eq!(event(&d, ContactActivityLogged).data["employer_id"], "e-2");
}

#[test]
fn logging_an_activity_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(100, upsert(|u| u.first_name = Some("Augusta".into())));
    sim.ok(100, deactivate());
    let d = sim.ok(1, activity(ActivityKind::Note, None));
    assert_applied(&d, 3, &[ContactActivityLogged]);
}

#[test]
fn a_message_with_the_deactivation_prefix_also_deactivates() {
    let mut sim = Sim::new();
    let d = sim.ok(5, activity(ActivityKind::Message, Some("deact-left")));
    assert_applied(
        &d,
        1,
        &[
            ContactActivityLogged,
            ContactDeactivated,
            ContactEmailSuppressed,
        ],
    );
    assert_eq!(event(&d, ContactDeactivated).data["reason"], "deact-left");
    assert!(!written(&d).active);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(5)));
}

#[test]
fn action_code_prefixes_are_case_insensitive() {
    let mut sim = Sim::new();
    let d = sim.ok(5, activity(ActivityKind::Message, Some("DEACT_42")));
    assert!(types(&d).contains(&ContactDeactivated));
    let d = sim.ok(6, activity(ActivityKind::Message, Some("ReAcTivated")));
    assert_applied(
        &d,
        2,
        &[
            ContactActivityLogged,
            ContactReactivated,
            ContactEmailUnsuppressed,
        ],
    );
    assert!(written(&d).active);
}

#[test]
fn only_message_activities_change_the_activation() {
    for kind in [
        ActivityKind::Note,
        ActivityKind::Meeting,
        ActivityKind::Task,
    ] {
        let mut sim = Sim::new();
        let d = sim.ok(5, activity(kind, Some("deact-1")));
        assert_applied(&d, 1, &[ContactActivityLogged]);
        assert!(written(&d).active, "{kind:?}");
        assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(0)));
    }
}

#[test]
fn a_message_without_a_matching_prefix_only_logs() {
    let mut sim = Sim::new();
    for code in [None, Some("call"), Some("xdeact"), Some("dea")] {
        let v = sim.version();
        let d = sim.ok(5, activity(ActivityKind::Message, code));
        assert_applied(&d, v, &[ContactActivityLogged]);
    }
    assert!(sim.contact().active);
}

#[test]
fn a_deactivating_message_with_a_stale_activation_still_logs_the_activity() {
    let mut sim = Sim::new();
    sim.ok(10, reactivate());
    let d = sim.ok(5, activity(ActivityKind::Message, Some("deact")));
    assert_applied(&d, 1, &[ContactActivityLogged]);
    assert!(written(&d).active);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(10)));
}

#[test]
fn a_deactivating_message_for_an_inactive_contact_only_logs_and_advances_activation() {
    let mut sim = Sim::new();
    sim.ok(5, deactivate());
    let d = sim.ok(10, activity(ActivityKind::Message, Some("deact")));
    assert_applied(&d, 2, &[ContactActivityLogged]);
    assert_eq!(written(&d).aspects.get(ACTIVATION), Some(&ts(10)));
    assert_stale(&sim.ok(7, reactivate()));
}

#[test]
fn tenant_prefixes_replace_the_default_ones() {
    let mut sim = Sim::new_in(World::with_policy(|p| {
        p.deactivate_prefix = "Off".into();
        p.reactivate_prefix = "on".into();
    }));
    let d = sim.ok(5, activity(ActivityKind::Message, Some("deact")));
    assert_applied(&d, 1, &[ContactActivityLogged]);
    let d = sim.ok(6, activity(ActivityKind::Message, Some("OFF-board")));
    assert!(types(&d).contains(&ContactDeactivated));
    let d = sim.ok(7, activity(ActivityKind::Message, Some("onboard")));
    assert!(types(&d).contains(&ContactReactivated));
}

#[test]
fn logging_an_activity_is_refused_for_missing_or_conflicting_contacts() {
    let mut sim = Sim::empty();
    assert_eq!(
        sim.refused(5, activity(ActivityKind::Note, None)),
        ErrorCode::NotFound
    );
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, activity(ActivityKind::Note, None), Some(4))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

// ---------------------------------------------------------------------------
// contact.delete and the tombstone
// ---------------------------------------------------------------------------

#[test]
fn deleting_a_contact_suppresses_its_email_then_deletes_it() {
    let mut sim = Sim::new();
    let d = sim.ok(5, delete());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactEmailSuppressed, ContactDeleted]);
    for e in &d.events {
        assert_eq!(e.version, 2);
        assert_eq!(e.entity_kind, EntityKind::Contact);
        assert!(!e.data.contains_key("contact"), "no snapshot on delete");
    }
    let s = event(&d, ContactEmailSuppressed);
    assert_eq!(s.data["email"], EMAIL);
    assert_eq!(s.data["reasons"], json!(["deleted"]));
    let del = event(&d, ContactDeleted);
    assert_eq!(del.data["contact_id"], CID);
    assert_eq!(del.data["email"], EMAIL);
    assert_eq!(del.data["actor"], "ats-sync");
    assert_eq!(
        d.write,
        Some(ContactRecord::Deleted {
            at: ts(5),
            version: 2
        })
    );
    assert!(d.erase_activity);
    assert_eq!(d.version_after(&ContactRecord::Absent), None);
}

#[test]
fn deleting_a_suppressed_contact_emits_only_deleted() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    let d = sim.ok(5, delete());
    assert_eq!(types(&d), [ContactDeleted]);
    assert_eq!(d.events[0].version, 3);
}

#[test]
fn deleting_a_contact_without_email_emits_only_deleted() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(5, delete());
    assert_eq!(types(&d), [ContactDeleted]);
    assert_eq!(event(&d, ContactDeleted).data["email"], Value::Null);
}

#[test]
fn deleting_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(100, deactivate());
    sim.ok(100, upsert(|u| u.first_name = Some("Augusta".into())));
    let d = sim.ok(1, delete());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactDeleted]);
}

#[test]
fn deleting_when_the_tenant_forbids_it_is_delete_forbidden() {
    let mut sim = Sim::new_in(World::with_policy(|p| p.allow_contact_delete = false));
    assert_eq!(sim.refused(5, delete()), ErrorCode::DeleteForbidden);
    assert_eq!(sim.version(), 1);
}

#[test]
fn deleting_a_missing_or_deleted_contact_is_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, delete()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    sim.ok(5, delete());
    assert_eq!(sim.refused(10, delete()), ErrorCode::NotFound);
    assert_eq!(sim.refused(3, delete()), ErrorCode::NotFound);
}

#[test]
fn deleting_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, delete(), Some(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert_eq!(
        sim.run_expecting(5, delete(), Some(1)).unwrap().outcome,
        Outcome::Applied
    );
}

#[test]
fn commands_issued_before_the_delete_are_stale() {
    let before_delete = [
        standard_upsert(),
        deactivate(),
        reactivate(),
        change_status("B"),
        change_employer(Some("e-2"), None),
        set_visibility(Visibility::Owner),
        set_attrs(&[("tier", Some(json!("gold")))]),
        approve(),
        reject(),
        archive(),
        revive(),
        activity(ActivityKind::Note, None),
    ];
    for op in before_delete {
        let mut sim = Sim::new();
        sim.ok(10, delete());
        let name = op.type_name();
        let d = sim.run(5, op).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_stale(&d);
        assert!(
            matches!(sim.record, ContactRecord::Deleted { .. }),
            "{name}"
        );
    }
}

#[test]
fn commands_issued_after_the_delete_are_not_found() {
    let after_delete = [
        deactivate(),
        reactivate(),
        change_status("B"),
        change_employer(Some("e-2"), None),
        set_visibility(Visibility::Owner),
        set_attrs(&[("tier", Some(json!("gold")))]),
        approve(),
        reject(),
        archive(),
        revive(),
        activity(ActivityKind::Note, None),
    ];
    for op in after_delete {
        let mut sim = Sim::new();
        sim.ok(10, delete());
        let name = op.type_name();
        assert_eq!(sim.refused(15, op), ErrorCode::NotFound, "{name}");
    }
}

#[test]
fn an_upsert_after_the_delete_creates_a_new_contact_at_version_one() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("gold")))]));
    sim.ok(2, change_employer(Some("e-2"), None));
    sim.ok(10, delete());
    let d = sim.ok(15, upsert(|u| u.email = Some("new@example.com".into())));
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [ContactCreated]);
    let c = written(&d);
    assert_eq!(c.version, 1);
    assert_eq!(d.events[0].version, 1);
    assert_eq!(
        c.first_name, None,
        "nothing of the deleted contact survives"
    );
    assert!(c.attributes.is_empty());
    assert!(c.former_employers.is_empty());
    assert_eq!(c.employer_id, None);
    assert_eq!(c.aspects.get(PROFILE), Some(&ts(15)));
}

#[test]
fn an_upsert_with_the_same_issued_at_as_the_delete_creates_a_new_contact() {
    let mut sim = Sim::new();
    sim.ok(10, delete());
    let d = sim.ok(10, standard_upsert());
    assert_eq!(written(&d).version, 1);
}

#[test]
fn an_upsert_after_the_delete_still_needs_an_email_or_a_name() {
    let mut sim = Sim::new();
    sim.ok(10, delete());
    assert_eq!(
        sim.refused(15, upsert(|u| u.title = Some("CTO".into()))),
        ErrorCode::InvalidCommand
    );
}

// ---------------------------------------------------------------------------
// contact.bulk: summarize_bulk and check_op_against_policy
// ---------------------------------------------------------------------------

fn item(contact_id: &str, outcome: Outcome) -> BulkItem {
    BulkItem {
        contact_id: contact_id.into(),
        outcome,
        version: Some(1),
        error: None,
    }
}

fn refused_item(contact_id: &str, code: ErrorCode) -> BulkItem {
    BulkItem {
        contact_id: contact_id.into(),
        outcome: Outcome::Rejected,
        version: None,
        error: Some(ReplyError {
            code,
            message: format!("{code} for {contact_id}"),
        }),
    }
}

#[test]
fn a_bulk_with_any_applied_item_is_applied() {
    use Outcome::*;
    let cases = [
        vec![item("a", Applied)],
        vec![item("a", Stale), item("b", Applied)],
        vec![item("a", Unchanged), item("b", Applied), item("c", Stale)],
        vec![refused_item("a", ErrorCode::NotFound), item("b", Applied)],
        vec![
            item("a", Applied),
            refused_item("b", ErrorCode::Frozen),
            item("c", Unchanged),
        ],
    ];
    for items in cases {
        assert_eq!(summarize_bulk(&items), Ok(Applied), "{items:?}");
    }
}

#[test]
fn a_bulk_without_applied_items_but_an_unchanged_one_is_unchanged() {
    use Outcome::*;
    let cases = [
        vec![item("a", Unchanged)],
        vec![item("a", Stale), item("b", Unchanged)],
        vec![refused_item("a", ErrorCode::Frozen), item("b", Unchanged)],
        vec![
            item("a", Stale),
            refused_item("b", ErrorCode::NotFound),
            item("c", Unchanged),
        ],
    ];
    for items in cases {
        assert_eq!(summarize_bulk(&items), Ok(Unchanged), "{items:?}");
    }
}

#[test]
fn a_bulk_with_only_stale_and_refused_items_is_stale() {
    use Outcome::*;
    let cases = [
        vec![item("a", Stale)],
        vec![item("a", Stale), item("b", Stale)],
        vec![refused_item("a", ErrorCode::NotFound), item("b", Stale)],
    ];
    for items in cases {
        assert_eq!(summarize_bulk(&items), Ok(Stale), "{items:?}");
    }
}

#[test]
fn a_bulk_whose_every_item_was_refused_is_rejected_with_the_first_code() {
    let items = [
        refused_item("c-1", ErrorCode::NotFound),
        refused_item("c-2", ErrorCode::Frozen),
        refused_item("c-3", ErrorCode::InvalidTransition),
    ];
    let err = summarize_bulk(&items).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("c-1"), "{}", err.message);
    assert!(err.message.contains("all 3"), "{}", err.message);

    let items = [refused_item("c-9", ErrorCode::Frozen)];
    assert_eq!(summarize_bulk(&items).unwrap_err().code, ErrorCode::Frozen);
}

#[test]
fn an_empty_bulk_is_unchanged() {
    assert_eq!(summarize_bulk(&[]), Ok(Outcome::Unchanged));
}

#[test]
fn bulk_items_decided_one_by_one_summarize_to_the_contract_outcomes() {
    // A deactivate applied to three contacts in different states.
    let world = World::new();
    let ctx = world.ctx(5);
    let op = deactivate();
    let active = Sim::new();
    let mut inactive = Sim::new();
    inactive.ok(1, deactivate());
    let mut newer = Sim::new();
    newer.ok(10, reactivate());
    let mut items = vec![];
    for (cid, sim) in [("a", &active), ("b", &inactive), ("c", &newer)] {
        let d = decide_contact(&ctx, &id(cid), &sim.record, &op, None, &[]).unwrap();
        items.push(item(cid, d.outcome));
    }
    let outcomes: Vec<Outcome> = items.iter().map(|i| i.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Applied, Outcome::Unchanged, Outcome::Stale]
    );
    assert_eq!(summarize_bulk(&items), Ok(Outcome::Applied));
    assert_eq!(summarize_bulk(&items[1..]), Ok(Outcome::Unchanged));
    assert_eq!(summarize_bulk(&items[2..]), Ok(Outcome::Stale));
    let missing = decide_contact(&ctx, &id("d"), &ContactRecord::Absent, &op, None, &[]);
    assert_eq!(missing.unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn the_policy_check_refuses_unknown_statuses_only() {
    let policy = TenantPolicy::default();
    assert_eq!(
        check_op_against_policy(&policy, &change_status("ZZ"))
            .unwrap_err()
            .code,
        ErrorCode::InvalidStatus
    );
    assert_eq!(
        check_op_against_policy(&policy, &upsert(|u| u.status = Some("ZZ".into())))
            .unwrap_err()
            .code,
        ErrorCode::InvalidStatus
    );
    let fine = [
        change_status("S1"),
        upsert(|u| u.status = Some("B".into())),
        upsert(|u| u.first_name = Some("Ada".into())),
        deactivate(),
        reactivate(),
        change_employer(None, None),
        set_visibility(Visibility::Owner),
        set_attrs(&[("tier", None)]),
        approve(),
        reject(),
        archive(),
        revive(),
        activity(ActivityKind::Message, Some("deact")),
        delete(),
    ];
    for op in fine {
        assert_eq!(
            check_op_against_policy(&policy, &op),
            Ok(()),
            "{}",
            op.type_name()
        );
    }
    let strict = TenantPolicy {
        statuses: vec!["X".into()],
        ..TenantPolicy::default()
    };
    assert!(check_op_against_policy(&strict, &change_status("X")).is_ok());
    assert!(check_op_against_policy(&strict, &change_status("A")).is_err());
}

#[test]
fn the_policy_check_does_not_depend_on_delete_permission() {
    let policy = TenantPolicy {
        allow_contact_delete: false,
        ..TenantPolicy::default()
    };
    assert_eq!(check_op_against_policy(&policy, &delete()), Ok(()));
}
