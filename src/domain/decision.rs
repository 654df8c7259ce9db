//! The decision about one user, role or employer command: outcome, the
//! state to store and the events.

use super::effect::{Effect, Effects};
use super::event::EventDraft;
use super::outcome::Outcome;

/// The decision about one user, role or employer command.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<T> {
    pub outcome: Outcome,
    /// The state to store; `None` when nothing is written (stale).
    pub write: Option<T>,
    pub events: Vec<EventDraft>,
    /// What it does beyond its record, in order.
    pub effects: Vec<Effect>,
}

impl<T> Decision<T> {
    pub fn stale() -> Self {
        Decision {
            outcome: Outcome::Stale,
            write: None,
            events: vec![],
            effects: vec![],
        }
    }
}

impl<T> Effects for Decision<T> {
    fn effects(&self) -> &[Effect] {
        &self.effects
    }
}
