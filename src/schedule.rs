//! The scheduler (contract section 12): applies scheduled commands when
//! they are due, exactly once, in every worker process.
//!
//! Exactly once: a due command is claimed with `FOR UPDATE SKIP LOCKED`
//! and deleted from the schedule in the transaction that applies it, so a
//! process killed mid-way leaves it claimed by nobody and another (or the
//! restarted one) applies it; two processes never claim the same row.
//!
//! No busy polling: a scheduler sleeps until the earliest pending
//! `effective_at` (one indexed `min()`), woken early when its own process
//! schedules a command, and looks again at least every [`MAX_SLEEP`] for
//! commands other processes scheduled: a command is applied within
//! milliseconds of its time by a live process that scheduled it or was
//! already waiting for an earlier one, and within [`MAX_SLEEP`] otherwise
//! (the contract's 30 s when the process that would have applied it died).
//! The worker's clock decides what is due.

use crate::store::dead_letters;
use std::sync::Arc;

use backon::BackoffBuilder;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::apply::{apply_batch, Disposition, Rules};
use crate::intake::Inbound;
use crate::store::schedule::{self, Scheduled};
use crate::store::StoreError;
use crate::worker::{retry_schedule, Processor};

/// The longest a scheduler sleeps without looking at the schedule.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Due commands applied per transaction.
const BATCH: i64 = 100;
/// Pause while every due command is claimed by other processes.
const CLAIMED_ELSEWHERE: Duration = Duration::from_millis(200);

pub async fn run(processor: Arc<Processor>, token: CancellationToken) {
    let mut backoff = retry_schedule().build();
    loop {
        let wait = match step(&processor).await {
            Ok(wait) => {
                backoff = retry_schedule().build();
                wait
            }
            Err(e) if e.is_transient() => {
                crate::monitoring::transient_retry("scheduler");
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "scheduler: transient failure");
                delay
            }
            Err(e) => {
                error!(error = %e, "scheduler: applying due commands failed; trying one at a time");
                match apply_one_by_one(&processor).await {
                    Ok(()) => Duration::ZERO,
                    Err(e) => {
                        error!(error = %e, "scheduler: failed again");
                        MAX_SLEEP
                    }
                }
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = processor.schedule_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Applies what is due now; returns how long to sleep.
async fn step(p: &Processor) -> Result<Duration, StoreError> {
    let now = OffsetDateTime::now_utc();
    let applied = apply_due(p, now, BATCH).await?;
    if applied == BATCH as usize {
        return Ok(Duration::ZERO);
    }
    let next = schedule::next_due(&p.pool).await?;
    let now = OffsetDateTime::now_utc();
    Ok(match next {
        None => MAX_SLEEP,
        // Due, but claimed by another process (or it just became due).
        Some(at) if at <= now => {
            if applied > 0 {
                Duration::ZERO
            } else {
                CLAIMED_ELSEWHERE
            }
        }
        Some(at) => Duration::try_from(at - now)
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP),
    })
}

/// Claims, applies and commits up to `limit` due commands in one
/// transaction; returns how many.
async fn apply_due(p: &Processor, now: OffsetDateTime, limit: i64) -> Result<usize, StoreError> {
    let mut tx = p.pool.begin().await?;
    let due = schedule::claim_due(&mut tx, now, limit).await?;
    if due.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let batch: Vec<_> = due
        .iter()
        .map(|d| {
            let msg = inbound(p, d);
            let prepared = p.prepare(&msg, now);
            (msg, prepared)
        })
        .collect();
    let rules = Rules::new(&p.policies, &p.producers, &p.limits, &p.hash_key).due();
    let outcome = apply_batch(&mut tx, &batch, &rules, now, true).await?;
    // Deciding one panicked: it is out of the schedule, so it goes to the
    // dead letters, replayable once fixed.
    for ((msg, _), d) in batch.iter().zip(&outcome.dispositions) {
        if let Disposition::Requeue = d {
            let dead = crate::worker::poison_dead_letter(msg, &p.producers, &p.limits);
            dead_letters::store_dead_letter(&mut tx, &dead).await?;
        }
    }
    tx.commit().await?;
    if outcome.events > 0 {
        p.relay_wake.notify_one();
    }
    info!(count = due.len(), "scheduled commands applied");
    Ok(due.len())
}

/// After a batch failed for good: one command per transaction, so that one
/// command the store cannot apply is dead-lettered and the rest go on.
async fn apply_one_by_one(p: &Processor) -> Result<(), StoreError> {
    loop {
        let now = OffsetDateTime::now_utc();
        match apply_due(p, now, 1).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                error!(error = %e, "scheduler: a due command cannot be applied; dead-lettering it");
                let mut tx = p.pool.begin().await?;
                for d in schedule::claim_due(&mut tx, now, 1).await? {
                    let msg = inbound(p, &d);
                    let dead = crate::worker::poison_dead_letter(&msg, &p.producers, &p.limits);
                    dead_letters::store_dead_letter(&mut tx, &dead).await?;
                }
                tx.commit().await?;
            }
        }
    }
}

/// A scheduled command as the delivery it was.
fn inbound(p: &Processor, s: &Scheduled) -> Inbound {
    Inbound::from_stored(
        &s.body,
        &s.properties,
        &s.exchange,
        &s.routing_key,
        &p.limits,
    )
}
