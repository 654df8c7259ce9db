//! The pure domain: decoding commands and deciding, from the current state and
//! a command, the outcome, the new state and the events. No I/O here: the
//! store and the AMQP adapters call into this module.

pub mod admission;
pub mod contact;
pub mod directory;
pub mod envelope;
pub mod event;
pub mod guardrail;
pub mod ids;
pub mod json;
pub mod kinds;
pub mod outcome;
pub mod payload;
pub mod policy;
#[cfg(test)]
mod proptests;
pub mod record;
pub mod registry;
pub mod ts;
pub mod user;
pub mod working;

use ids::{Limits, TenantId};
use policy::TenantPolicy;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use ts::Ts;

/// What a decision needs besides the entity and the command.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub tenant: &'a TenantId,
    pub policy: &'a TenantPolicy,
    pub limits: &'a Limits,
    /// The command's `issued_at`: the staleness clock.
    pub issued_at: OffsetDateTime,
    pub actor: Option<&'a str>,
    /// Wall-clock time of processing, for `updated_at` and event times.
    pub now: OffsetDateTime,
}

/// Last writer wins per aspect: a command is fresh unless an aspect already
/// saw a strictly later `issued_at` (equal timestamps apply in arrival order).
pub fn is_fresh(aspects: &BTreeMap<String, Ts>, aspect: &str, issued_at: OffsetDateTime) -> bool {
    aspects
        .get(aspect)
        .is_none_or(|last| issued_at >= last.get())
}
#[cfg(test)]
mod test_support;
