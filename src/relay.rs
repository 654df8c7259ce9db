//! The outbox relay: publishes committed events to `{p}.events` as CloudEvents
//! with publisher confirms, and marks them published only after the confirm.
//!
//! Exactly one relay publishes at a time across all worker processes: it
//! holds a session-level advisory lock on a dedicated connection, and reads
//! and marks rows on that same connection, so losing the connection (and so
//! the lock) also stops it. Rows are published in `id` order, which follows
//! each entity's versions.

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
    let result = async {
        loop {
            let rows = journal::pending_events(conn, settings.relay.batch_size).await?;
            if rows.is_empty() {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
                continue;
            }
            let round = std::time::Instant::now();
            let published = publish_batch(&ch, &names.events, &rows).await;
            let publish_ms = round.elapsed().as_secs_f64() * 1000.0;
            let (ids, failure) = match published {
                Ok(ids) => (ids, None),
                Err((ids, e)) => (ids, Some(e)),
            };
            if !ids.is_empty() {
                journal::mark_published(conn, &ids).await?;
                crate::monitoring::relay_batch(ids.len(), round.elapsed());
                debug!(
                    count = ids.len(),
                    publish_ms,
                    round_ms = round.elapsed().as_secs_f64() * 1000.0,
                    "events published"
                );
            }
            if let Some(e) = failure {
                return Err(e);
            }
            // A shutdown lets the current batch finish, then stops.
            if shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }
    .await;
    let _ = ch.close(200, "relay stopping".into()).await;
    let _ = amqp_conn.close(200, "relay stopping".into()).await;
    result
}

/// Publishes rows in order, all in flight at once, then collects confirms in
/// order. Returns the ids confirmed before the first failure.
async fn publish_batch(
    ch: &Channel,
    exchange: &str,
    rows: &[PendingEvent],
) -> Result<Vec<i64>, (Vec<i64>, RelayError)> {
    let mut confirms = Vec::with_capacity(rows.len());
    for row in rows {
        let props = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            // Persistent: events survive a broker restart in durable queues.
            .with_delivery_mode(2)
            .with_message_id(row.event_id.to_string().into())
            .with_type(row.event_type.as_str().into());
        let body = serde_json::to_vec(&row.body).expect("event JSON serialises");
        let publish = ch
            .basic_publish(
                exchange.into(),
                row.routing_key.as_str().into(),
                // Not mandatory: an event nobody subscribed to is not an error.
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await;
        match publish {
            Ok(c) => confirms.push((row.id, row.event_id, c)),
            Err(e) => {
                // Rows confirmed before the failure still count as published.
                let ids = match confirms_until_failure(confirms).await {
                    Ok(ids) | Err((ids, _)) => ids,
                };
                return Err((ids, RelayError::Amqp(e)));
            }
        }
    }
    confirms_until_failure(confirms).await
}

type InFlight = Vec<(i64, uuid::Uuid, lapin::PublisherConfirm)>;

async fn confirms_until_failure(confirms: InFlight) -> Result<Vec<i64>, (Vec<i64>, RelayError)> {
    let mut ids = Vec::with_capacity(confirms.len());
    for (id, event_id, confirm) in confirms {
        match confirm.await {
            Ok(c) if c.is_ack() => ids.push(id),
            Ok(_) => return Err((ids, RelayError::Nacked(event_id))),
            Err(e) => return Err((ids, RelayError::Amqp(e))),
        }
    }
    Ok(ids)
}
