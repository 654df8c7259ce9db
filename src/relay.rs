//! The outbox relay: publishes committed events to `{p}.events` as CloudEvents
//! with publisher confirms, and marks them published only after the confirm.
//!
//! Exactly one relay publishes at a time across all worker processes: it
//! holds a session-level advisory lock on a dedicated connection, and reads
//! and marks rows on that same connection, so losing the connection (and so
//! the lock) also stops it. Rows are published in `id` order, which follows
//! each entity's versions.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::amqp;
use crate::config::Settings;
use crate::store::journal::{self, PendingEvent};
use crate::store::StoreError;
use crate::worker::retry_schedule;

/// Advisory lock key of the relay ("lcrelay" in ASCII).
const RELAY_LOCK_KEY: i64 = 0x006c_6372_656c_6179;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker refused event {0}")]
    Nacked(uuid::Uuid),
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        RelayError::Store(e.into())
    }
}

/// Runs the relay until shutdown, reconnecting with backoff after any failure.
pub async fn run(pool: PgPool, settings: Settings, wake: Arc<Notify>, shutdown: CancellationToken) {
    let poll = Duration::from_millis(settings.relay.poll_interval_ms);
    let mut backoff = retry_schedule().build();
    while !shutdown.is_cancelled() {
        match hold_lock_and_publish(&pool, &settings, &wake, &shutdown, poll).await {
            Ok(()) => backoff = retry_schedule().build(),
            Err(e) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                crate::monitoring::transient_retry("relay");
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "relay failed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One tenure: take the lock (or wait a poll interval), then publish until
/// shutdown or failure. `Ok` means "try again".
async fn hold_lock_and_publish(
    pool: &PgPool,
    settings: &Settings,
    wake: &Notify,
    shutdown: &CancellationToken,
    poll: Duration,
) -> Result<(), RelayError> {
    // Detached: the lock lives as long as this session, never in the pool.
    let mut conn = pool.acquire().await.map_err(StoreError::from)?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RELAY_LOCK_KEY)
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        let _ = conn.close().await;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        return Ok(());
    }
    info!("relay holds the outbox lock");
    let result = publish_while_locked(&mut conn, settings, wake, shutdown, poll).await;
    // Closing the session releases the advisory lock.
    let _ = conn.close().await;
    result
}

async fn publish_while_locked(
    conn: &mut PgConnection,
    settings: &Settings,
    wake: &Notify,
    shutdown: &CancellationToken,
    poll: Duration,
) -> Result<(), RelayError> {
    let amqp_conn = amqp::connect(&settings.amqp, "relay").await?;
    let ch = amqp::confirm_channel(&amqp_conn).await?;
    let names = amqp::Names::new(&settings.amqp.prefix);
    // Up to two batches in flight: the next one is read and published while
    // the broker confirms the previous one, so confirm latency does not add
    // to every event's delay. Rows in flight are excluded from the next read.
    let mut in_flight: VecDeque<InFlightBatch> = VecDeque::new();
    let result = async {
        loop {
            let exclude: Vec<i64> = in_flight
                .iter()
                .flat_map(|b| b.ids.iter().copied())
                .collect();
            let rows = journal::pending_events(conn, settings.relay.batch_size, &exclude).await?;
            if rows.is_empty() {
                if let Some(oldest) = in_flight.pop_front() {
                    settle(conn, oldest).await?;
                    continue;
                }
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
                continue;
            }
            in_flight.push_back(publish_batch(&ch, &names.events, &rows).await?);
            while in_flight.len() > 1 {
                let oldest = in_flight.pop_front().expect("two in flight");
                settle(conn, oldest).await?;
            }
            // A shutdown lets the batches in flight finish, then stops.
            if shutdown.is_cancelled() {
                while let Some(oldest) = in_flight.pop_front() {
                    settle(conn, oldest).await?;
                }
                return Ok(());
            }
        }
    }
    .await;
    let _ = ch.close(200, "relay stopping".into()).await;
    let _ = amqp_conn.close(200, "relay stopping".into()).await;
    result
}

/// A published batch waiting for its confirms.
struct InFlightBatch {
    ids: Vec<i64>,
    confirms: Vec<(i64, uuid::Uuid, lapin::PublisherConfirm)>,
    started: std::time::Instant,
}

/// Publishes rows in order without waiting for their confirms.
async fn publish_batch(
    ch: &Channel,
    exchange: &str,
    rows: &[PendingEvent],
) -> Result<InFlightBatch, RelayError> {
    let started = std::time::Instant::now();
    let mut confirms = Vec::with_capacity(rows.len());
    for row in rows {
        let props = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            // Persistent: events survive a broker restart in durable queues.
            .with_delivery_mode(2)
            .with_message_id(row.event_id.to_string().into())
            .with_type(row.event_type.as_str().into());
        let body = serde_json::to_vec(&row.body).expect("event JSON serialises");
        let confirm = ch
            .basic_publish(
                exchange.into(),
                row.routing_key.as_str().into(),
                // Not mandatory: an event nobody subscribed to is not an error.
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
        confirms.push((row.id, row.event_id, confirm));
    }
    Ok(InFlightBatch {
        ids: rows.iter().map(|r| r.id).collect(),
        confirms,
        started,
    })
}

/// Waits for a batch's confirms in order and marks the confirmed rows
/// published; rows after a refused one stay pending and are sent again.
async fn settle(conn: &mut PgConnection, batch: InFlightBatch) -> Result<(), RelayError> {
    let mut ids = Vec::with_capacity(batch.confirms.len());
    let mut failure = None;
    for (id, event_id, confirm) in batch.confirms {
        match confirm.await {
            Ok(c) if c.is_ack() => ids.push(id),
            Ok(_) => {
                failure = Some(RelayError::Nacked(event_id));
                break;
            }
            Err(e) => {
                failure = Some(RelayError::Amqp(e));
                break;
            }
        }
    }
    if !ids.is_empty() {
        journal::mark_published(conn, &ids).await?;
        crate::monitoring::relay_batch(ids.len(), batch.started.elapsed());
        debug!(
            count = ids.len(),
            ms = batch.started.elapsed().as_secs_f64() * 1000.0,
            "events published"
        );
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
