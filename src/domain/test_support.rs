//! Shared helpers of the domain's unit tests: a fixed clock and a tenant
//! "acme" with its policy and limits, which a [`Ctx`] borrows.

use super::ids::{EntityId, Limits, TenantId};
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
        }
    }
}
