//! What a decided command does beyond its own entity's record, as values:
//! the unit of work executes each with one exhaustive match
//! (`apply/effects.rs`), so a new kind of effect does not compile until it
//! is executed; the readers here and in `contact/decision.rs` only look for
//! the kinds they name.

use super::contact::Activity;
use super::ids::EntityId;
use super::outcome::EntityKind;
use super::user::User;

/// One thing a decision asks of the store besides writing its record.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// The contact's activity trail goes (a hard delete, an erasure, a new
    /// contact under a deleted one's id), activity of this batch included.
    EraseActivity,
    /// Linked users whose site access the command changed (archive, revive).
    SaveLinkedUsers(Vec<User>),
    /// An entry for the contact's activity trail.
    LogActivity(Activity),
    /// Employers the command references: created without a name if missing.
    EnsureEmployers(Vec<EntityId>),
    /// The entity was erased: what else is kept of it is scrubbed; its
    /// address, if it had one, goes on the tenant's blocklist and the
    /// tenant's other contacts with it are suppressed.
    Forget {
        kind: EntityKind,
        email: Option<String>,
    },
    /// The person opted in again: the address leaves the blocklist and the
    /// tenant's other contacts with it are re-evaluated.
    Consent { email: String },
}

impl Effect {
    /// Making sure `ids` exist, if there are any.
    pub fn ensure_employers(ids: Vec<EntityId>) -> Option<Effect> {
        (!ids.is_empty()).then_some(Effect::EnsureEmployers(ids))
    }
}

/// Reading a decision's effects (tests and callers that inspect one).
pub trait Effects {
    fn effects(&self) -> &[Effect];

    /// The employers the command makes sure exist.
    fn ensure_employers(&self) -> Vec<EntityId> {
        self.effects()
            .iter()
            .flat_map(|e| match e {
                Effect::EnsureEmployers(ids) => ids.as_slice(),
                // Reading, not executing: other effects have no employers.
                _ => &[],
            })
            .cloned()
            .collect()
    }

    /// The linked users the command changed.
    fn linked_users(&self) -> Vec<&User> {
        self.effects()
            .iter()
            .flat_map(|e| match e {
                Effect::SaveLinkedUsers(users) => users.as_slice(),
                _ => &[],
            })
            .collect()
    }

    fn erases_activity(&self) -> bool {
        self.effects().contains(&Effect::EraseActivity)
    }
}
