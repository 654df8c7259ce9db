//! What a contact command decided: outcome, record, events, effects.

use super::command::ContactOp;
use super::*;
use crate::domain::effect::{Effect, Effects};
use crate::domain::event::{EventDraft, EventType};
use crate::domain::outcome::Outcome;

/// The decision about one contact command.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactDecision {
    pub outcome: Outcome,
    /// The record to store; `None` when nothing is written (stale).
    pub write: Option<ContactRecord>,
    /// Events in publishing order: the contact's, then its users'.
    pub events: Vec<EventDraft>,
    /// What it does beyond the contact's record, in order, once the record
    /// is written.
    pub effects: Vec<Effect>,
}

impl Effects for ContactDecision {
    fn effects(&self) -> &[Effect] {
        &self.effects
    }
}

impl ContactDecision {
    pub(super) fn stale() -> Self {
        ContactDecision {
            outcome: Outcome::Stale,
            write: None,
            events: vec![],
            effects: vec![],
        }
    }

    /// Applied, leaving `contact` live (created or restored): its employer
    /// must exist.
    pub(super) fn live(contact: Contact, events: Vec<EventDraft>) -> Self {
        ContactDecision {
            outcome: Outcome::Applied,
            effects: Effect::ensure_employers(contact.employer_id.iter().cloned().collect())
                .into_iter()
                .collect(),
            write: Some(ContactRecord::Live(contact)),
            events,
        }
    }

    /// Counted by the guardrail: an applied destructive command, or an
    /// activity whose action code deactivated the contact.
    pub fn destructive(&self, op: &ContactOp) -> bool {
        let deactivated = self
            .events
            .iter()
            .any(|e| e.event_type == EventType::ContactDeactivated);
        op.kind()
            .destructive()
            .counts(self.outcome == Outcome::Applied, deactivated)
    }

    /// The activity the command logs, if any.
    pub fn activity(&self) -> Option<&Activity> {
        self.effects.iter().find_map(|e| match e {
            Effect::LogActivity(a) => Some(a),
            _ => None,
        })
    }

    /// The contact's version after the command, `None` if it does not exist.
    pub fn version_after(&self, before: &ContactRecord) -> Option<u64> {
        match self.write.as_ref().unwrap_or(before) {
            ContactRecord::Live(c) => Some(c.version),
            ContactRecord::Deleted { .. } | ContactRecord::Absent => None,
        }
    }
}
