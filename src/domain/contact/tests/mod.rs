//! Unit tests of `decide_contact`, `summarize_bulk` and
//! `check_op_against_policy`: every contact command against every outcome
//! that applies to it (contract sections 3-5).

mod activation;
mod activity;
mod approval;
mod archive;
mod attributes;
mod bulk;
mod creation;
mod delete;
mod employer;
mod erasure;
mod restore;
mod status;
mod update;
mod visibility;

use super::bulk::summarize_bulk;
use super::command::{Archive, ContactOp, ContactUpsert, LogActivity, Revive};
use super::decide::{check_op_against_policy, decide_contact, ContactDecision};
use super::{
    attribute_aspect, ActivityKind, Approval, Contact, ContactRecord, FormerEmployer, Visibility,
    ACTIVATION, APPROVAL, EMPLOYER, PROFILE, STATUS, VISIBILITY,
};
use crate::domain::effect::Effects;
use crate::domain::event::{to_cloud_event, EventDraft, EventType};
use crate::domain::ids::{CommandId, Limits, TenantId};
use crate::domain::outcome::{BulkItem, EntityKind, ErrorCode, Outcome, Rejection, ReplyError};
use crate::domain::policy::{DeleteMode, TenantPolicy};
use crate::domain::test_support::{
    self, assert_applied_version, at, id, ts, types, Subject, World, NOW,
};
use crate::domain::ts::Ts;
use crate::domain::user::User;
use crate::domain::Ctx;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use EventType::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const CID: &str = "c-17";
const EMAIL: &str = "ada@example.com";

/// One contact and its linked users; a decision's writes are kept.
struct ContactHistory {
    record: ContactRecord,
    users: Vec<User>,
}

impl Subject for ContactHistory {
    type Op = ContactOp;
    type Decision = ContactDecision;
    type Kept = ContactRecord;

    fn op_name(op: &ContactOp) -> &'static str {
        op.type_name()
    }

    fn decide(
        &self,
        ctx: &Ctx<'_>,
        op: &ContactOp,
        expected_version: Option<u64>,
    ) -> Result<ContactDecision, Rejection> {
        decide_contact(
            ctx,
            &id(CID),
            &self.record,
            op,
            expected_version,
            &self.users,
        )
    }

    fn keep(&mut self, d: &ContactDecision) {
        if let Some(w) = &d.write {
            self.record = w.clone();
        }
        for u in d.linked_users() {
            let slot = self.users.iter_mut().find(|x| x.id == u.id).unwrap();
            *slot = u.clone();
        }
    }

    fn kept(&self) -> ContactRecord {
        self.record.clone()
    }
}

type Sim = test_support::Sim<ContactHistory>;

impl Sim {
    /// No contact yet.
    fn empty() -> Sim {
        Sim::empty_in(World::new())
    }

    fn empty_in(world: World) -> Sim {
        Sim {
            world,
            subject: ContactHistory {
                record: ContactRecord::Absent,
                users: vec![],
            },
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
}

impl ContactHistory {
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
    let after = written(d).version;
    assert_applied_version(d, version_before, after, EntityKind::Contact, CID, expected);
}

/// Unchanged: recorded, no bump, no event.
fn assert_unchanged(d: &ContactDecision, version_before: u64) {
    assert_eq!(d.outcome, Outcome::Unchanged);
    assert!(d.events.is_empty(), "no events: {:?}", types(d));
    assert_eq!(written(d).version, version_before);
    assert!(d.linked_users().is_empty());
    assert!(d.activity().is_none());
}

/// Stale: nothing written, no event, no user changed.
fn assert_stale(d: &ContactDecision) {
    test_support::assert_stale(d);
    assert!(d.linked_users().is_empty());
}
