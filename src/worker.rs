//! Deliveries -> decode -> one transaction per batch -> replies -> acks.
//!
//! A batch of deliveries from one queue is applied in one transaction (see
//! [`crate::apply`]), in arrival order. Transient database errors
//! roll the whole batch back and retry it with backoff; nothing is acked
//! before the commit, so a crash at any point leaves the deliveries to be
//! redelivered and absorbed by the inbox.

use crate::store::dead_letters;
use crate::store::dead_letters::DeadLetter;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Acker;
use lapin::{BasicProperties, Channel, Connection};
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::amqp;
use crate::apply::{apply_batch, BatchOutcome, Disposition, Rules};
use crate::domain::admission::admit;
use crate::domain::ids::Limits;
use crate::domain::outcome::Rejection;
use crate::domain::policy::{Policies, Producers};
use crate::domain::registry::CommandType;
use crate::hash_key::HashKey;
use crate::intake::{Inbound, Prepared};
use crate::monitoring::{self, Stage};
use crate::replies;
use crate::store::StoreError;

/// Everything needed to turn deliveries into committed effects.
pub struct Processor {
    pub pool: PgPool,
    pub policies: Policies,
    pub producers: Producers,
    pub limits: Limits,
    pub hash_key: HashKey,
    /// Woken after each commit that wrote events.
    pub relay_wake: Arc<Notify>,
    /// Woken after each commit that scheduled a command.
    pub schedule_wake: Arc<Notify>,
}

impl Processor {
    pub fn prepare(&self, msg: &Inbound, now: OffsetDateTime) -> Prepared {
        crate::intake::prepare(msg, &self.limits, &self.producers, now)
    }

    /// Applies a batch, retrying transient failures until it commits.
    /// A batch that fails for another reason is split and its messages
    /// applied one by one, so one bad message cannot hold up the others; a
    /// single message failing so is requeued (the delivery limit parks it).
    /// Returns `None` when shutdown interrupted the retries (nothing committed).
    pub async fn handle_batch(
        &self,
        batch: Vec<Inbound>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Disposition>> {
        let taken = std::time::Instant::now();
        for msg in &batch {
            monitoring::stage(Stage::BatchWait, taken.duration_since(msg.received));
        }
        let now = OffsetDateTime::now_utc();
        let prepared: Vec<(Inbound, Prepared)> = batch
            .into_iter()
            .map(|m| {
                let p = self.prepare(&m, now);
                (m, p)
            })
            .collect();
        match self.commit_with_retries(&prepared, shutdown).await? {
            Ok(d) => Some(d),
            Err(e) if prepared.len() == 1 => {
                error!(error = %e, "message failed unexpectedly; requeueing");
                Some(vec![Disposition::Requeue])
            }
            Err(e) => {
                warn!(error = %e, size = prepared.len(), "batch failed; applying its messages one by one");
                let mut all = Vec::with_capacity(prepared.len());
                for one in prepared.chunks(1) {
                    match self.commit_with_retries(one, shutdown).await? {
                        Ok(d) => all.extend(d),
                        Err(e) => {
                            error!(error = %e, "message failed unexpectedly; requeueing");
                            all.push(Disposition::Requeue);
                        }
                    }
                }
                Some(all)
            }
        }
    }

    /// Commits a batch, retrying transient errors with backoff. `Some(Err)`
    /// is a permanent failure; `None` is shutdown.
    async fn commit_with_retries(
        &self,
        batch: &[(Inbound, Prepared)],
        shutdown: &CancellationToken,
    ) -> Option<Result<Vec<Disposition>, StoreError>> {
        let mut backoff = retry_schedule().build();
        let mut check_duplicates = batch.iter().any(|(m, _)| m.maybe_duplicate);
        loop {
            match self.try_batch(batch, check_duplicates).await {
                Ok(outcome) => {
                    if outcome.events > 0 {
                        monitoring::events_committed();
                        self.relay_wake.notify_one();
                    }
                    if outcome.scheduled > 0 {
                        self.schedule_wake.notify_one();
                    }
                    record_metrics(batch, &outcome.dispositions);
                    return Some(Ok(outcome.dispositions));
                }
                // A duplicate the skipped check did not see: again, checking.
                Err(StoreError::ConcurrentDuplicate) if !check_duplicates => {
                    check_duplicates = true;
                }
                Err(e) if e.is_transient() => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                    crate::monitoring::transient_retry("worker");
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "transient failure, retrying the batch");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    async fn try_batch(
        &self,
        batch: &[(Inbound, Prepared)],
        check_duplicates: bool,
    ) -> Result<BatchOutcome, StoreError> {
        let started = std::time::Instant::now();
        let mut tx = self.pool.begin().await?;
        let now = OffsetDateTime::now_utc();
        let rules = Rules::new(
            &self.policies,
            &self.producers,
            &self.limits,
            &self.hash_key,
        );
        let outcome = apply_batch(&mut tx, batch, &rules, now, check_duplicates).await?;
        tx.commit().await?;
        monitoring::stage(Stage::Transaction, started.elapsed());
        tracing::debug!(
            size = batch.len(),
            events = outcome.events,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "batch committed"
        );
        Ok(outcome)
    }
}

/// Counts a committed batch's commands by type and outcome, and its dead letters.
fn record_metrics(batch: &[(Inbound, Prepared)], dispositions: &[Disposition]) {
    for ((msg, prepared), disposition) in batch.iter().zip(dispositions) {
        let Disposition::Ack { reply } = disposition else {
            continue;
        };
        let kind = match prepared {
            Prepared::Command(c) => c.type_name(),
            Prepared::Refused(f) => f
                .command_type
                .as_deref()
                .and_then(CommandType::parse)
                .map_or("unknown", CommandType::name),
        };
        let outcome = if reply.duplicate {
            "duplicate"
        } else {
            reply.outcome.as_str()
        };
        crate::monitoring::command(kind, outcome, msg.received.elapsed());
        if let Some(e) = &reply.error {
            crate::monitoring::dead_letter(e.code.as_str());
        }
    }
}

/// Exponential backoff with jitter, capped at 5 s, never giving up: a
/// dependency that is down is waited for, not turned into an outcome.
pub fn retry_schedule() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker ended the consumer of {0}")]
    ConsumerEnded(String),
    #[error("consumer task panicked: {0}")]
    Panicked(String),
}

/// How a command consumer takes deliveries.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    /// Unacknowledged deliveries per consumer, at most.
    pub prefetch: u16,
    /// Deliveries per transaction, at most.
    pub batch_size: usize,
    /// Bytes of unacknowledged deliveries a consumer keeps, at most.
    pub max_unacked_bytes: usize,
}

impl Flow {
    /// The prefetch actually asked for: the broker sends at most this many
    /// unacknowledged deliveries, and each is kept with at most
    /// `max_body_bytes` (an oversize body is cut on arrival), so together
    /// they stay within `max_unacked_bytes`.
    pub fn effective_prefetch(&self, limits: &Limits) -> u16 {
        let by_bytes = self.max_unacked_bytes / limits.max_body_bytes.max(1);
        u16::try_from(by_bytes)
            .unwrap_or(u16::MAX)
            .clamp(1, self.prefetch.max(1))
    }
}

/// What the puller hands the batcher.
type Pulled = Result<(Inbound, Acker), ConsumeError>;

/// Consumes one command queue until shutdown or a channel error.
///
/// A puller task takes deliveries off the channel as soon as they arrive
/// and cuts oversize bodies there, so the memory held by unacknowledged
/// deliveries is bounded by the prefetch times `max_body_bytes`, whatever
/// size the broker lets through and however long a batch takes to commit.
pub async fn consume_queue(
    processor: Arc<Processor>,
    conn: &Connection,
    queue: &str,
    flow: Flow,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let prefetch = flow.effective_prefetch(&processor.limits);
    let (ch, consumer) = consumer_on(conn, queue, prefetch).await?;
    let replies = amqp::confirm_channel(conn).await?;
    info!(queue, prefetch, "consuming");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop_pulling = shutdown.child_token();
    let puller = tokio::spawn(pull(
        consumer,
        queue.to_owned(),
        processor.limits.clone(),
        tx,
        stop_pulling.clone(),
    ));
    let result = consume_batches(&processor, &mut rx, &replies, flow.batch_size, &shutdown).await;
    stop_pulling.cancel();
    let _ = puller.await;
    let _ = ch.close(200, "shutting down".into()).await;
    let _ = replies.close(200, "shutting down".into()).await;
    result
}

/// Moves deliveries from the channel to the batcher, cutting oversize
/// bodies on the way; ends at `stop` or after handing on an error.
async fn pull(
    mut consumer: lapin::Consumer,
    queue: String,
    limits: Limits,
    tx: tokio::sync::mpsc::UnboundedSender<Pulled>,
    stop: CancellationToken,
) {
    loop {
        let pulled = match next_delivery(&mut consumer, &queue, &stop).await {
            Ok(Some(d)) => Ok(Inbound::from_delivery(d, &limits)),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let failed = pulled.is_err();
        if tx.send(pulled).is_err() || failed {
            return;
        }
    }
}

/// Takes batches from the puller until shutdown or a channel error.
async fn consume_batches(
    processor: &Processor,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Pulled>,
    replies: &Channel,
    batch_size: usize,
    shutdown: &CancellationToken,
) -> Result<(), ConsumeError> {
    loop {
        // Shutdown wins over buffered deliveries: those go back to the
        // queue when the channel closes.
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            first = rx.recv() => first,
        };
        let Some(first) = first else {
            return Ok(());
        };
        let mut batch = vec![first?];
        let mut pending_error = None;
        while batch.len() < batch_size {
            match rx.try_recv() {
                Ok(Ok(pulled)) => batch.push(pulled),
                Ok(Err(e)) => {
                    pending_error = Some(e);
                    break;
                }
                Err(_) => break,
            }
        }
        let (inbound, ackers): (Vec<Inbound>, Vec<Acker>) = batch.into_iter().unzip();
        let props: Vec<BasicProperties> = inbound.iter().map(|m| m.properties.clone()).collect();
        let Some(dispositions) = processor.handle_batch(inbound, shutdown).await else {
            // Shutdown while the database was away: nothing committed, the
            // deliveries go back to the queue when the channel closes.
            return Ok(());
        };
        let settling = std::time::Instant::now();
        settle(replies, &props, ackers, dispositions).await?;
        monitoring::stage(Stage::Settle, settling.elapsed());
        if let Some(e) = pending_error {
            return Err(e);
        }
    }
}

/// Replies, then acks (or requeues) a committed batch.
async fn settle(
    replies: &Channel,
    props: &[BasicProperties],
    ackers: Vec<Acker>,
    dispositions: Vec<Disposition>,
) -> Result<(), ConsumeError> {
    // Replies go out all at once; one the broker does not take is retried
    // or counted, never a reason to leave the command unacknowledged.
    let outgoing: Vec<replies::Outgoing<'_>> = props
        .iter()
        .zip(&dispositions)
        .filter_map(|(p, d)| match d {
            Disposition::Ack { reply } => Some((p, reply)),
            Disposition::Requeue => None,
        })
        .collect();
    replies::deliver(replies, &outgoing).await?;
    let all_done = dispositions
        .iter()
        .all(|d| matches!(d, Disposition::Ack { .. }));
    match ackers.last() {
        // One frame acks the whole batch: every earlier delivery on this
        // channel belongs to it or was settled before.
        Some(last) if all_done => {
            last.ack(BasicAckOptions { multiple: true }).await?;
        }
        _ => {
            for (acker, disposition) in ackers.into_iter().zip(dispositions) {
                match disposition {
                    Disposition::Ack { .. } => acker.ack(BasicAckOptions::default()).await?,
                    Disposition::Requeue => {
                        acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            })
                            .await?
                    }
                };
            }
        }
    }
    Ok(())
}

/// A channel with the given prefetch and a manual-ack consumer on `queue`:
/// a delivery is acked only once what it caused is committed.
async fn consumer_on(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
) -> Result<(Channel, lapin::Consumer), ConsumeError> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
}

/// The next delivery, or `None` at shutdown. Shutdown wins over buffered
/// deliveries: those go back to the queue when the channel closes.
async fn next_delivery(
    consumer: &mut lapin::Consumer,
    queue: &str,
    shutdown: &CancellationToken,
) -> Result<Option<Delivery>, ConsumeError> {
    let next = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(None),
        d = consumer.next() => d,
    };
    match next {
        Some(d) => Ok(Some(d?)),
        None => Err(ConsumeError::ConsumerEnded(queue.to_owned())),
    }
}

/// Drains `{p}.dead-letters` (messages the broker parked after the delivery
/// limit) into the dead-letter store with code `poison`, acking each only
/// after it is stored. Transient failures are retried; a permanent one
/// stores the message without its properties rather than retrying forever.
pub async fn drain_dead_letters(
    processor: Arc<Processor>,
    conn: &Connection,
    queue: &str,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let (ch, mut consumer) = consumer_on(conn, queue, 16).await?;
    while let Some(delivery) = next_delivery(&mut consumer, queue, &shutdown).await? {
        let (msg, acker) = Inbound::from_delivery(delivery, &processor.limits);
        let mut dead = poison_dead_letter(&msg, &processor.producers, &processor.limits);
        let mut backoff = retry_schedule().build();
        loop {
            let stored = async {
                let mut conn = processor.pool.acquire().await?;
                dead_letters::store_dead_letter(&mut conn, &dead).await
            }
            .await;
            match stored {
                Ok(id) => {
                    crate::monitoring::dead_letter("poison");
                    warn!(
                        dead_letter = id,
                        tenant = dead.tenant.as_deref(),
                        command_id = dead.command_id.as_deref(),
                        "message exceeded the delivery limit; stored as poison"
                    );
                    break;
                }
                Err(e) if e.is_transient() => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                    crate::monitoring::transient_retry("dead_letter_drain");
                    warn!(error = %e, "storing a poison message failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) if !dead.properties.is_null() => {
                    error!(error = %e, "storing a poison message failed permanently; storing it without its properties");
                    dead.properties = Value::Null;
                    dead.message
                        .push_str(" (its properties could not be stored)");
                }
                Err(e) => {
                    // Not even the bare message could be stored: a bug, not
                    // a content problem. Acking keeps the queue moving.
                    error!(error = %e, "a poison message could not be stored; dropping it");
                    break;
                }
            }
        }
        acker.ack(BasicAckOptions::default()).await?;
    }
    let _ = ch.close(200, "shutting down".into()).await;
    Ok(())
}

/// A broker-level dead letter as a store row: original exchange and routing
/// key from the `x-death` header, ids where the body is readable.
pub fn poison_dead_letter(msg: &Inbound, producers: &Producers, limits: &Limits) -> DeadLetter {
    let death = death_of(&msg.properties);
    let count = death["count"].as_i64().unwrap_or(0);
    let message = format!(
        "the broker dead-lettered this message after repeated failed deliveries ({} x-death count {count}); see the worker's error log",
        death["reason"].as_str().unwrap_or("delivery_limit")
    );
    // Whatever ids the body yields; the code is the broker's verdict.
    let read = match admit(&msg.arrival(), limits, producers, OffsetDateTime::now_utc()) {
        Ok(c) => c.refused(Rejection::invalid(message.clone())),
        Err(f) => f,
    };
    let mut dead = msg.dead_letter(&read, producers, limits);
    dead.code = "poison".to_owned();
    dead.message = message;
    if let Some(exchange) = death["exchange"].as_str() {
        dead.exchange = exchange.to_owned();
    }
    if let Some(key) = death["routing-keys"][0].as_str() {
        dead.routing_key = key.to_owned();
    }
    dead
}

fn death_of(properties: &BasicProperties) -> Value {
    amqp::properties_to_json(properties)["headers"]["x-death"][0].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefetch_keeps_unacked_bytes_within_the_budget() {
        let limits = Limits::default(); // 256 KiB bodies
        let flow = |prefetch, max_unacked_bytes| Flow {
            prefetch,
            batch_size: 256,
            max_unacked_bytes,
        };
        assert_eq!(flow(512, 128 << 20).effective_prefetch(&limits), 512);
        assert_eq!(flow(512, 32 << 20).effective_prefetch(&limits), 128);
        assert_eq!(flow(64, 128 << 20).effective_prefetch(&limits), 64);
        assert_eq!(flow(512, 1).effective_prefetch(&limits), 1);
    }
}
