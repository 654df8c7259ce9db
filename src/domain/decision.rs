//! The decision about one user, role or employer command: outcome, the
//! state to store and the events.

use super::event::EventDraft;
use super::ids::EntityId;
use super::outcome::Outcome;

/// The decision about one user, role or employer command.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<T> {
    pub outcome: Outcome,
    /// The state to store; `None` when nothing is written (stale).
    pub write: Option<T>,
    pub events: Vec<EventDraft>,
    /// Employers the command references; created without a name if missing.
    pub ensure_employers: Vec<EntityId>,
}

impl<T> Decision<T> {
    pub fn stale() -> Self {
        Decision {
            outcome: Outcome::Stale,
            write: None,
            events: vec![],
            ensure_employers: vec![],
        }
    }
}
