//! Applies a batch of deliveries in one transaction, set-based.
//!
//! The batch's entities are locked and loaded with one query per table, the
//! domain decides each command in arrival order against an in-memory copy,
//! and the changes, outbox rows and inbox rows are written back with one
//! statement per table before the commit. A rejection changes nothing but
//! its dead letter, because decisions are only kept when they succeed; an
//! atomic bulk keeps an undo log to roll its contacts back. Rare paths
//! (employer and role upserts, bulk filters, archive's linked users, delete)
//! first flush what is pending, then use ordinary queries.
//!
//! The parts: [`batch`] (the batch's state, the command dispatch, the
//! inbox and outbox buffers), [`cache`] (entities and their pending
//! writes), [`effects`] (what a decision does beyond its record), one file
//! per entity ([`contact`], [`user`], [`directory`]), the guardrail's
//! state ([`guardrail`]) and a held command ([`hold`]), the blocklist's
//! state ([`blocklist`]) and what erasure and consent change ([`erasure`]),
//! and [`scheduling`].

mod batch;
mod blocklist;
mod cache;
mod contact;
mod directory;
mod effects;
mod erasure;
mod guardrail;
mod hold;
mod scheduling;
mod user;

use crate::store::{dead_letters, inbox};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::domain::envelope::Command;
use crate::domain::ids::{EntityId, Limits};
use crate::domain::outcome::{EntityKind, EntityRef, Outcome, Rejection, Reply};
use crate::domain::policy::{Policies, Producers};
use crate::hash_key::HashKey;
use crate::intake::{Inbound, Prepared};
use crate::store::{replays, StoreError};
use batch::Batch;

/// The configuration a batch is judged by.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub policies: &'a Policies,
    pub producers: &'a Producers,
    pub limits: &'a Limits,
    /// Off for commands an operator releases: they were held once, and
    /// what a release applies does not count toward the window.
    pub guardrail: bool,
    /// The key of the erased-address blocklist.
    pub hash_key: &'a HashKey,
    /// Whether a command whose `effective_at` lies ahead is scheduled:
    /// off when a due command (or a released one) is applied.
    pub schedule: bool,
}

impl<'a> Rules<'a> {
    /// The rules for a command as it arrives: guardrail on, scheduling on.
    pub fn new(
        policies: &'a Policies,
        producers: &'a Producers,
        limits: &'a Limits,
        hash_key: &'a HashKey,
    ) -> Self {
        Rules {
            policies,
            producers,
            limits,
            guardrail: true,
            hash_key,
            schedule: true,
        }
    }

    /// For a command that is due: it was scheduled once already.
    pub fn due(self) -> Self {
        Rules {
            schedule: false,
            ..self
        }
    }

    /// For a command an operator releases from the guardrail.
    pub fn released(self) -> Self {
        Rules {
            guardrail: false,
            schedule: false,
            ..self
        }
    }
}

/// What to do with a delivery once its batch committed. The same for
/// every door: the door that took the command in delivers the reply.
#[derive(Debug)]
// One per delivery, consumed at once: boxing the reply is not worth it.
#[allow(clippy::large_enum_variant)]
pub enum Disposition {
    /// Applied, unchanged, stale, duplicate or dead-lettered: done with it.
    Ack { reply: Reply },
    /// Deciding it panicked: give it back; the delivery limit parks it.
    Requeue,
}

/// What a committed batch produced.
#[derive(Debug)]
pub struct BatchOutcome {
    pub dispositions: Vec<Disposition>,
    pub events: usize,
    /// Commands the batch scheduled: the scheduler may need to wake sooner.
    pub scheduled: usize,
}

/// An entity in the batch: (tenant, id).
type Key = (String, EntityId);

/// Why a command stopped short of a reply to record.
#[derive(Debug)]
enum Stop {
    /// Held by the guardrail; `trips` when this command tripped it.
    Held {
        trips: bool,
    },
    Rejected(Rejection),
    Panicked(String),
    /// The store failed: the whole batch fails.
    Store(StoreError),
}

impl From<Rejection> for Stop {
    fn from(r: Rejection) -> Self {
        Stop::Rejected(r)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

/// Runs a pure decision, turning a panic into [`Stop::Panicked`].
fn decide<T>(f: impl FnOnce() -> Result<T, Rejection>) -> Result<T, Stop> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Stop::Rejected),
        Err(panic) => Err(Stop::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned()),
        )),
    }
}

/// What applying one command gave, before its events become outbox rows.
struct Applied {
    outcome: Outcome,
    entity: Option<EntityRef>,
    /// A bulk's per-contact outcomes.
    items: Option<Vec<crate::domain::outcome::BulkItem>>,
}

fn entity(kind: EntityKind, id: &EntityId, version: Option<u64>) -> EntityRef {
    EntityRef {
        kind,
        id: id.to_string(),
        version,
    }
}

/// Applies a batch. With `check_duplicates` false, the inbox lookup is
/// skipped and a duplicate surfaces as [`StoreError::ConcurrentDuplicate`]
/// when the batch records its commands; the caller then retries with the
/// check (first deliveries are rarely duplicates, so this saves a query).
pub async fn apply_batch(
    conn: &mut PgConnection,
    batch: &[(Inbound, Prepared)],
    rules: &Rules<'_>,
    now: OffsetDateTime,
    check_duplicates: bool,
) -> Result<BatchOutcome, StoreError> {
    let commands: Vec<&Command> = batch
        .iter()
        .filter_map(|(_, p)| match p {
            Prepared::Command(c) => Some(c.as_ref()),
            Prepared::Refused(_) => None,
        })
        .collect();
    let mut work = Batch::new(conn, rules.guardrail, rules.hash_key);
    let processed = if check_duplicates {
        let keys: Vec<(String, String)> = commands
            .iter()
            .map(|c| (c.tenant.to_string(), c.command_id.to_string()))
            .collect();
        inbox::processed_replies(work.conn, &keys).await?
    } else {
        HashMap::new()
    };
    work.prefetch(&commands).await?;

    let mut dispositions = Vec::with_capacity(batch.len());
    for (msg, prepared) in batch {
        let disposition = match prepared {
            Prepared::Refused(failure) => work.dead_letter(msg, failure, rules).await?,
            Prepared::Command(cmd) => match work.first_reply(&processed, cmd) {
                Some(first) => Disposition::Ack {
                    reply: Reply {
                        duplicate: true,
                        ..first.clone()
                    },
                },
                None => work.apply_one(msg, cmd, rules, now).await?,
            },
        };
        // A replay that got an outcome other than a rejection resolves its
        // dead letter (a rejection updated the row already).
        if let Disposition::Ack { reply } = &disposition {
            let replay = msg.replayed && rules.producers.trusts_replay_from(msg.user_id(), true);
            if replay && reply.outcome != Outcome::Rejected {
                let fingerprint = dead_letters::fingerprint(&msg.routing_key, &msg.body_sha256());
                let outcome = if reply.duplicate {
                    format!("{} (duplicate)", reply.outcome.as_str())
                } else {
                    reply.outcome.as_str().to_owned()
                };
                replays::resolve(work.conn, &fingerprint, &outcome).await?;
            }
        }
        dispositions.push(disposition);
    }
    let (events, scheduled) = (work.outbox.len(), work.scheduled);
    work.finish().await?;
    Ok(BatchOutcome {
        dispositions,
        events,
        scheduled,
    })
}
