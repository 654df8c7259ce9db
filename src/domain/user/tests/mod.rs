//! Unit tests of `decide_user` (contract sections 3-5).

mod access;
mod creation;
mod delete;
mod erasure;
mod restore;
mod role_change;
mod update;

use super::command::{UserOp, UserUpsert};
use super::decide::decide_user;
use super::{User, UserRecord, ACCESS, PROFILE, ROLE};
use crate::domain::decision::Decision;
use crate::domain::event::EventType;
use crate::domain::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use crate::domain::policy::DeleteMode;
use crate::domain::test_support::{
    self, assert_applied_version, assert_stale, id, ts, types, Subject, World, NOW,
};
use crate::domain::ts::Ts;
use crate::domain::Ctx;
use serde_json::{json, Value};

use EventType::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const UID: &str = "u-1";
const EMAIL: &str = "grace@example.com";

/// One user; roles named by commands exist unless listed in `missing_roles`.
struct UserHistory {
    record: UserRecord,
    missing_roles: Vec<&'static str>,
}

impl Subject for UserHistory {
    type Op = UserOp;
    type Decision = Decision<UserRecord>;
    type Kept = UserRecord;

    fn op_name(op: &UserOp) -> &'static str {
        op.type_name()
    }

    fn decide(
        &self,
        ctx: &Ctx<'_>,
        op: &UserOp,
        expected_version: Option<u64>,
    ) -> Result<Decision<UserRecord>, Rejection> {
        let role_exists = op
            .role_named()
            .is_none_or(|r| !self.missing_roles.contains(&r.as_str()));
        decide_user(
            ctx,
            &id(UID),
            &self.record,
            op,
            expected_version,
            role_exists,
        )
    }

    fn keep(&mut self, d: &Decision<UserRecord>) {
        if let Some(w) = &d.write {
            self.record = w.clone();
        }
    }

    fn kept(&self) -> UserRecord {
        self.record.clone()
    }
}

type Sim = test_support::Sim<UserHistory>;

impl Sim {
    fn empty() -> Sim {
        let mut world = World::new();
        world.actor = "hr-sync";
        Sim::empty_in(world)
    }

    fn empty_in(world: World) -> Sim {
        Sim {
            world,
            subject: UserHistory {
                record: UserRecord::Absent,
                missing_roles: vec![],
            },
        }
    }

    /// The standard user, created at minute 0: Grace, employer `e-1`,
    /// contact `c-17`, role `r-basic`.
    fn new() -> Sim {
        let mut sim = Sim::empty();
        assert_eq!(sim.ok(0, standard_upsert()).outcome, Outcome::Applied);
        sim
    }

    fn new_in(mut world: World) -> Sim {
        world.actor = "hr-sync";
        let mut sim = Sim::empty_in(world);
        assert_eq!(sim.ok(0, standard_upsert()).outcome, Outcome::Applied);
        sim
    }
}

impl UserHistory {
    fn user(&self) -> &User {
        match &self.record {
            UserRecord::Live(u) => u,
            other => panic!("no live user: {other:?}"),
        }
    }
}

fn upsert(f: impl FnOnce(&mut UserUpsert)) -> UserOp {
    let mut u = UserUpsert::default();
    f(&mut u);
    UserOp::Upsert(u)
}

fn standard_upsert() -> UserOp {
    upsert(|u| {
        u.email = Some(EMAIL.into());
        u.name = Some("Grace".into());
        u.employer_id = Some(id("e-1"));
        u.contact_id = Some(id("c-17"));
        u.role_id = Some(id("r-basic"));
    })
}

fn revoke() -> UserOp {
    UserOp::RevokeAccess {
        reason: Some("left".into()),
    }
}

fn restore() -> UserOp {
    UserOp::RestoreAccess {
        reason: Some("back".into()),
    }
}

fn change_role(role: &str) -> UserOp {
    UserOp::ChangeRole { role_id: id(role) }
}

fn written(d: &Decision<UserRecord>) -> &User {
    match &d.write {
        Some(UserRecord::Live(u)) => u,
        other => panic!("no live user written: {other:?}"),
    }
}

fn assert_applied(d: &Decision<UserRecord>, version_before: u64, expected: &[EventType]) {
    let after = written(d).version;
    assert_applied_version(d, version_before, after, EntityKind::User, UID, expected);
    for e in &d.events {
        assert_eq!(e.data["user"]["version"], after);
        assert_eq!(e.data["actor"], "hr-sync");
    }
    assert_eq!(written(d).updated_at, Ts(NOW));
}

fn assert_unchanged(d: &Decision<UserRecord>, version_before: u64) {
    assert_eq!(d.outcome, Outcome::Unchanged);
    assert!(d.events.is_empty());
    assert_eq!(written(d).version, version_before);
}
