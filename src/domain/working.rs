//! The working copy every entity's decision uses: the state before the
//! command, the state after it, and the per-aspect staleness rule of
//! contract section 3 (last writer wins per aspect).

use super::outcome::Outcome;
use super::ts::Ts;
use super::{is_fresh, Ctx};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What the working copy needs of an entity.
pub trait Versioned: Clone {
    /// `issued_at` of the last command applied per aspect.
    fn aspects(&self) -> &BTreeMap<String, Ts>;
    fn aspects_mut(&mut self) -> &mut BTreeMap<String, Ts>;
    /// One version up, updated now.
    fn bump(&mut self, now: OffsetDateTime);
    fn version(&self) -> u64;
}

/// Implements [`Versioned`] for an entity with `aspects`, `version` and
/// `updated_at` fields (contacts and users alike).
macro_rules! versioned {
    ($entity:ty) => {
        impl $crate::domain::working::Versioned for $entity {
            fn aspects(&self) -> &std::collections::BTreeMap<String, $crate::domain::ts::Ts> {
                &self.aspects
            }
            fn aspects_mut(
                &mut self,
            ) -> &mut std::collections::BTreeMap<String, $crate::domain::ts::Ts> {
                &mut self.aspects
            }
            fn bump(&mut self, now: time::OffsetDateTime) {
                self.version += 1;
                self.updated_at = $crate::domain::ts::Ts(now);
            }
            fn version(&self) -> u64 {
                self.version
            }
        }
    };
}
pub(crate) use versioned;

/// An entity being changed by one command.
pub struct Working<'a, T> {
    pub ctx: &'a Ctx<'a>,
    pub before: &'a T,
    pub next: T,
    fresh_any: bool,
    changed: bool,
}

impl<'a, T: Versioned> Working<'a, T> {
    pub fn new(ctx: &'a Ctx<'a>, before: &'a T) -> Self {
        Working {
            ctx,
            before,
            next: before.clone(),
            fresh_any: false,
            changed: false,
        }
    }

    /// Judges one aspect against the state before the command; a fresh one
    /// has its timestamp advanced, even if nothing changes.
    pub fn fresh(&mut self, aspect: &str) -> bool {
        if is_fresh(self.before.aspects(), aspect, self.ctx.issued_at) {
            self.fresh_any = true;
            self.advance(aspect);
            true
        } else {
            false
        }
    }

    /// Moves an aspect's timestamp forward to this command's, never back.
    pub fn advance(&mut self, aspect: &str) {
        let at = Ts(self.ctx.issued_at);
        let slot = self
            .next
            .aspects_mut()
            .entry(aspect.to_owned())
            .or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    /// Something visible changed: the command is applied.
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Applied when something changed, unchanged when some aspect was
    /// fresh, else stale.
    pub fn outcome(&self) -> Outcome {
        if self.changed {
            Outcome::Applied
        } else if self.fresh_any {
            Outcome::Unchanged
        } else {
            Outcome::Stale
        }
    }
}
