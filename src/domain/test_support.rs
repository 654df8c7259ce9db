//! The harness every domain unit test shares: a fixed clock, a tenant
//! "acme" with its policy and limits (which a [`Ctx`] borrows), and
//! [`Sim`], which runs one entity's commands in order, keeping each write
//! as the store would.

use super::blocklist::Blocklist;
use super::contact::decide::ContactDecision;
use super::contact::ContactRecord;
use super::decision::Decision;
use super::event::{EventDraft, EventType};
use super::ids::{EntityId, Limits, TenantId};
use super::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use super::policy::TenantPolicy;
use super::ts::Ts;
use super::Ctx;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Minute 0 of every scenario; commands are issued `at(minute)`.
pub const T0: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);
/// Wall-clock time of processing, the same for every command.
pub const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

pub fn at(minute: i64) -> OffsetDateTime {
    T0 + Duration::minutes(minute)
}

pub fn ts(minute: i64) -> Ts {
    Ts(at(minute))
}

pub fn id(s: &str) -> EntityId {
    EntityId::trusted(s)
}

/// Tenant "acme" with a policy, limits and the actor of its commands.
pub struct World {
    pub tenant: TenantId,
    pub policy: TenantPolicy,
    pub limits: Limits,
    pub actor: &'static str,
    pub blocklist: Blocklist,
}

impl World {
    pub fn new() -> World {
        World::acting_as("ats-sync")
    }

    pub fn acting_as(actor: &'static str) -> World {
        World {
            tenant: TenantId::parse("acme").unwrap(),
            policy: TenantPolicy::default(),
            limits: Limits::default(),
            actor,
            blocklist: Blocklist::default(),
        }
    }

    pub fn with_policy(f: impl FnOnce(&mut TenantPolicy)) -> World {
        let mut w = World::new();
        f(&mut w.policy);
        w
    }

    pub fn with_limits(f: impl FnOnce(&mut Limits)) -> World {
        let mut w = World::new();
        f(&mut w.limits);
        w
    }

    pub fn ctx(&self, minute: i64) -> Ctx<'_> {
        Ctx {
            tenant: &self.tenant,
            policy: &self.policy,
            limits: &self.limits,
            issued_at: at(minute),
            actor: Some(self.actor),
            now: NOW,
            blocklist: &self.blocklist,
        }
    }
}

/// What the harness reads of any decision.
pub trait Verdict {
    type Written: std::fmt::Debug;
    fn outcome(&self) -> Outcome;
    /// The state to store; `None` when nothing is written.
    fn written_state(&self) -> Option<&Self::Written>;
    fn event_drafts(&self) -> &[EventDraft];
}

impl Verdict for ContactDecision {
    type Written = ContactRecord;
    fn outcome(&self) -> Outcome {
        self.outcome
    }
    fn written_state(&self) -> Option<&ContactRecord> {
        self.write.as_ref()
    }
    fn event_drafts(&self) -> &[EventDraft] {
        &self.events
    }
}

impl<T: std::fmt::Debug> Verdict for Decision<T> {
    type Written = T;
    fn outcome(&self) -> Outcome {
        self.outcome
    }
    fn written_state(&self) -> Option<&T> {
        self.write.as_ref()
    }
    fn event_drafts(&self) -> &[EventDraft] {
        &self.events
    }
}

/// One entity's history under test: how its commands are decided, and
/// what of a decision the store would keep.
pub trait Subject {
    type Op;
    type Decision: Verdict;
    /// What a refused command must leave as it was.
    type Kept: Clone + PartialEq + std::fmt::Debug;
    fn op_name(op: &Self::Op) -> &'static str;
    fn decide(
        &self,
        ctx: &Ctx<'_>,
        op: &Self::Op,
        expected_version: Option<u64>,
    ) -> Result<Self::Decision, Rejection>;
    fn keep(&mut self, decision: &Self::Decision);
    fn kept(&self) -> Self::Kept;
}

/// Runs commands against a [`Subject`] in a [`World`], keeping each write
/// as the store would. Derefs to the subject, so tests reach its state.
pub struct Sim<S> {
    pub world: World,
    pub subject: S,
}

impl<S: Subject> Sim<S> {
    pub fn run_expecting(
        &mut self,
        minute: i64,
        op: S::Op,
        expected_version: Option<u64>,
    ) -> Result<S::Decision, Rejection> {
        let ctx = self.world.ctx(minute);
        let d = self.subject.decide(&ctx, &op, expected_version);
        if let Ok(d) = &d {
            self.subject.keep(d);
        }
        d
    }

    pub fn run(&mut self, minute: i64, op: S::Op) -> Result<S::Decision, Rejection> {
        self.run_expecting(minute, op, None)
    }

    /// Runs a command that must be accepted.
    pub fn ok(&mut self, minute: i64, op: S::Op) -> S::Decision {
        let name = S::op_name(&op);
        self.run(minute, op)
            .unwrap_or_else(|r| panic!("{name} at minute {minute} was refused: {r}"))
    }

    /// Runs a command that must be refused; returns its code. Nothing is kept.
    pub fn refused(&mut self, minute: i64, op: S::Op) -> ErrorCode {
        let before = self.subject.kept();
        let name = S::op_name(&op);
        let code = match self.run(minute, op) {
            Ok(d) => panic!(
                "{name} at minute {minute} was not refused: {:?}",
                d.outcome()
            ),
            Err(r) => r.code,
        };
        assert_eq!(
            self.subject.kept(),
            before,
            "a refused command writes nothing"
        );
        code
    }
}

impl<S> std::ops::Deref for Sim<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.subject
    }
}

impl<S> std::ops::DerefMut for Sim<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.subject
    }
}

pub fn types(d: &impl Verdict) -> Vec<EventType> {
    d.event_drafts().iter().map(|e| e.event_type).collect()
}

/// Stale: nothing written, no event.
pub fn assert_stale<V: Verdict>(d: &V) {
    assert_eq!(d.outcome(), Outcome::Stale);
    assert!(d.written_state().is_none(), "{:?}", d.written_state());
    assert!(d.event_drafts().is_empty());
}

/// Applied: exactly one version bump, and every event of the entity
/// (`kind`, `entity_id`) carries the new version.
pub fn assert_applied_version(
    d: &impl Verdict,
    version_before: u64,
    version_after: u64,
    kind: EntityKind,
    entity_id: &str,
    expected: &[EventType],
) {
    assert_eq!(d.outcome(), Outcome::Applied);
    assert_eq!(types(d), expected);
    assert_eq!(
        version_after,
        version_before + 1,
        "exactly one version bump"
    );
    for e in d.event_drafts().iter().filter(|e| e.entity_kind == kind) {
        assert_eq!(
            e.version, version_after,
            "{:?} carries the new version",
            e.event_type
        );
        assert_eq!(e.entity_id, entity_id);
    }
}
