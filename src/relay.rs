//! The outbox relay: publishes committed events to `{p}.events` as CloudEvents
//! with publisher confirms, and marks them published only after the confirm.
//!
//! Exactly one relay publishes at a time across all worker processes: it
//! holds a session-level advisory lock on its own connection (named
//! [`APPLICATION_NAME`] in `pg_stat_activity`), and reads and marks rows on
//! that same session. What keeps that true when hosts and networks fail:
//! - the session's keepalives and timeouts ([`SessionTimeouts`]) make
//!   Postgres end a dead or hung relay's session, and so release its lock,
//!   within about a minute;
//! - marking is fenced: it applies only while the session still holds the
//!   lock, and a relay that finds it lost the lock stops publishing and goes
//!   back to trying to take it;
//! - after taking the lock the relay checks that it has a real server
//!   session ([`SessionProbe`]): behind PgBouncer in transaction mode the
//!   lock would belong to whichever server connection ran that statement,
//!   so the relay refuses to publish there.
//!
//! Rows are published in `id` order, which follows each entity's versions.

use crate::store::outbox;
use crate::store::outbox::Marked;
use crate::store::outbox::PendingEvent;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::amqp;
use crate::config::Settings;
use crate::store::StoreError;
use crate::worker::retry_schedule;

/// Advisory lock key of the relay ("lcrelay" in ASCII).
pub const LOCK_KEY: i64 = 0x006c_6372_656c_6179;

/// `application_name` of the relay's session, so operators can tell it
/// from the pool's connections in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "lifecycle-worker relay";

/// Longest wait for a new database connection.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker refused event {0}")]
    Nacked(uuid::Uuid),
    #[error("the relay's session no longer holds the outbox lock")]
    LockLost,
    #[error("the database did not answer within {0:?} while {1}")]
    Unresponsive(Duration, &'static str),
    #[error(
        "the relay needs a session-scoped database connection (directly to Postgres, \
         or PgBouncer in session mode, not transaction mode): the outbox lock was \
         taken on backend {}, the next statement ran on backend {}, and the lock \
         is held by {:?}",
        .0.locked_by, .0.answered_by, .0.holders
    )]
    NotSessionScoped(SessionProbe),
}

impl RelayError {
    /// Whether trying again can help. Exhaustive, so a new variant must be
    /// decided on.
    fn is_retryable(&self) -> bool {
        match self {
            RelayError::Store(_)
            | RelayError::Amqp(_)
            | RelayError::Nacked(_)
            | RelayError::LockLost
            | RelayError::Unresponsive(..) => true,
            // The connection setup is wrong; retrying would strand more locks
            // on pooled server connections.
            RelayError::NotSessionScoped(_) => false,
        }
    }
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        RelayError::Store(e.into())
    }
}

/// Timeouts of the relay's session. Postgres enforces them on its side, so
/// they hold when the relay's host is gone or hung: the session ends and
/// the lock with it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionTimeouts {
    /// Idle time before the server starts probing the relay's TCP peer.
    pub keepalive_idle: Duration,
    /// Time between unanswered probes.
    pub keepalive_interval: Duration,
    /// Unanswered probes that end the connection.
    pub keepalive_count: u32,
    /// Data unacknowledged this long ends the connection: keepalives only
    /// probe a connection with nothing in flight.
    pub tcp_user_timeout: Duration,
    /// The relay's statements take milliseconds; a stuck one ends the tenure.
    pub statement: Duration,
    /// Marking waits this long at most for row locks (a stale relay marking
    /// the same rows).
    pub lock: Duration,
    /// The relay runs no explicit transaction; should one stay open, it must
    /// not keep row locks.
    pub idle_in_transaction: Duration,
    /// A hung relay process whose kernel still answers keepalives (and a
    /// dead one behind PgBouncer, whose server connection stays up): the
    /// holder queries at least every poll interval, so a session idle far
    /// longer is stuck. A broker confirm slower than this also ends the
    /// session; its rows are then sent again.
    pub idle_session: Duration,
}

impl SessionTimeouts {
    pub fn for_poll_interval(poll: Duration) -> Self {
        SessionTimeouts {
            keepalive_idle: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(5),
            keepalive_count: 4,
            tcp_user_timeout: Duration::from_secs(30),
            statement: Duration::from_secs(15),
            lock: Duration::from_secs(5),
            idle_in_transaction: Duration::from_secs(15),
            // Postgres takes at most i32::MAX milliseconds.
            idle_session: Duration::from_secs(60)
                .max(poll.saturating_mul(4))
                .min(Duration::from_millis(i32::MAX as u64)),
        }
    }

    /// The longest Postgres keeps the session of a relay that is unreachable.
    pub fn dead_peer_limit(&self) -> Duration {
        (self.keepalive_idle + self.keepalive_interval * self.keepalive_count)
            .max(self.tcp_user_timeout)
    }

    /// The relay's own deadline on one statement: a little over the server's
    /// statement timeout, since a partitioned server never answers and the
    /// kernel takes many minutes to give up on the connection.
    pub fn client_deadline(&self) -> Duration {
        self.statement + Duration::from_secs(5)
    }

    /// (parameter, value in the parameter's base unit) as `set_config` takes them.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        vec![
            (
                "tcp_keepalives_idle",
                self.keepalive_idle.as_secs().to_string(),
            ),
            (
                "tcp_keepalives_interval",
                self.keepalive_interval.as_secs().to_string(),
            ),
            ("tcp_keepalives_count", self.keepalive_count.to_string()),
            ("tcp_user_timeout", ms(self.tcp_user_timeout)),
            ("statement_timeout", ms(self.statement)),
            ("lock_timeout", ms(self.lock)),
            (
                "idle_in_transaction_session_timeout",
                ms(self.idle_in_transaction),
            ),
            ("idle_session_timeout", ms(self.idle_session)),
        ]
    }
}

/// What Postgres said about the relay's session right after it took the lock.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionProbe {
    /// The backend that ran `pg_try_advisory_lock`.
    pub locked_by: i32,
    /// The backend that answered the next statement.
    pub answered_by: i32,
    /// Backends `pg_locks` shows holding the relay's lock in this database.
    pub holders: Vec<i32>,
}

impl SessionProbe {
    /// The lock is only ours for as long as our session if one backend ran
    /// both statements and holds it.
    pub fn check(self) -> Result<(), RelayError> {
        if self.answered_by == self.locked_by && self.holders.contains(&self.locked_by) {
            Ok(())
        } else {
            Err(RelayError::NotSessionScoped(self))
        }
    }
}

/// Runs the relay until shutdown, reconnecting with backoff after any
/// failure; stops for good if the connection is not session-scoped.
pub async fn run(
    pool: PgPool,
    settings: Settings,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    let mut backoff = retry_schedule().build();
    while !shutdown.is_cancelled() {
        match one_session(&pool, &settings, &wake, &shutdown).await {
            Ok(()) => backoff = retry_schedule().build(),
            Err(e) if !e.is_retryable() => {
                error!(error = %e, "relay stopped: no events will be published by this process");
                return Err(e);
            }
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
    Ok(())
}

/// One database session: try for the lock every poll interval, then
/// publish while holding it until shutdown or failure. Closing the session
/// releases the lock.
async fn one_session(
    pool: &PgPool,
    settings: &Settings,
    wake: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), RelayError> {
    let poll = Duration::from_millis(settings.relay.poll_interval_ms);
    let mut conn = connect(pool).await?;
    let result = async {
        while !try_lock(&mut conn, poll).await? {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(poll) => {}
            }
        }
        info!("relay holds the outbox lock");
        publish_while_locked(&mut conn, settings, wake, shutdown).await
    }
    .await;
    // Bounded: a dead server may never answer the goodbye.
    let _ = tokio::time::timeout(CONNECT_DEADLINE, conn.close()).await;
    result
}

/// A new session for the relay (never one of the pool's), named
/// [`APPLICATION_NAME`].
pub async fn connect(pool: &PgPool) -> Result<PgConnection, RelayError> {
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .application_name(APPLICATION_NAME)
        // Its statements read and delete a few rows of the work list by
        // index. The work list is usually near empty, and its statistics
        // say so for up to a minute after a backlog builds up: planned with
        // those, a read would scan and sort the whole backlog every time.
        .options([("enable_seqscan", "off"), ("enable_sort", "off")]);
    within(CONNECT_DEADLINE, "connecting", options.connect()).await
}

/// Tries to take the relay's lock on `conn`. Once taken, checks the session
/// is session-scoped (else releases what it can and fails) and sets the
/// session's [`SessionTimeouts`]. `Ok(false)`: another session holds it.
pub async fn try_lock(conn: &mut PgConnection, poll: Duration) -> Result<bool, RelayError> {
    let timeouts = SessionTimeouts::for_poll_interval(poll);
    let deadline = timeouts.client_deadline();
    let (locked_by, locked): (i32, bool) = within(
        deadline,
        "taking the outbox lock",
        sqlx::query_as("SELECT pg_backend_pid(), pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut *conn),
    )
    .await?;
    if !locked {
        return Ok(false);
    }
    let (answered_by, holders): (i32, Vec<i32>) = within(
        deadline,
        "checking the outbox lock",
        sqlx::query_as(
            "SELECT pg_backend_pid(), ARRAY(SELECT pid FROM pg_locks \
               WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND classid = (($1::bigint >> 32) & 4294967295)::oid \
               AND objid = ($1::bigint & 4294967295)::oid)",
        )
        .bind(LOCK_KEY)
        .fetch_one(&mut *conn),
    )
    .await?;
    let probe = SessionProbe {
        locked_by,
        answered_by,
        holders,
    };
    if let Err(e) = probe.check() {
        // Best effort: a pooler may send this to yet another server connection.
        let _ = within(
            deadline,
            "releasing the outbox lock",
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *conn),
        )
        .await;
        return Err(e);
    }
    // Only now: on a pooled connection these would leak to other clients.
    let (names, values): (Vec<&str>, Vec<String>) = timeouts.settings().into_iter().unzip();
    within(
        deadline,
        "setting the session's timeouts",
        sqlx::query(
            "SELECT set_config(n, v, false) FROM UNNEST($1::text[], $2::text[]) AS s(n, v)",
        )
        .bind(names)
        .bind(values)
        .execute(&mut *conn),
    )
    .await?;
    Ok(true)
}

/// Awaits a database call for at most `limit`.
async fn within<T, E>(
    limit: Duration,
    what: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, RelayError>
where
    RelayError: From<E>,
{
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(RelayError::Unresponsive(limit, what)),
    }
}

/// Publishes on `conn`, which holds the lock, until shutdown or failure.
/// Returns [`RelayError::LockLost`] as soon as marking finds the lock gone.
pub async fn publish_while_locked(
    conn: &mut PgConnection,
    settings: &Settings,
    wake: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), RelayError> {
    let poll = Duration::from_millis(settings.relay.poll_interval_ms);
    let deadline = SessionTimeouts::for_poll_interval(poll).client_deadline();
    let amqp_conn = amqp::connect(&settings.amqp, "relay").await?;
    let ch = amqp::confirm_channel(&amqp_conn).await?;
    let names = amqp::Names::new(&settings.amqp.prefix);
    // Up to two batches in flight: the next one is read and published while
    // the broker confirms the previous one, so confirm latency does not add
    // to every event's delay. Rows in flight are excluded from the next read.
    let mut in_flight: VecDeque<InFlightBatch> = VecDeque::new();
    let mut marked_since_vacuum = 0;
    let result = async {
        loop {
            if marked_since_vacuum >= settings.relay.vacuum_every_events {
                vacuum_work_list(conn, deadline).await;
                marked_since_vacuum = 0;
            }
            let exclude: Vec<i64> = in_flight
                .iter()
                .flat_map(|b| b.ids.iter().copied())
                .collect();
            crate::monitoring::relay_reading();
            let reading = std::time::Instant::now();
            let rows = within(
                deadline,
                "reading pending events",
                outbox::pending_events(conn, settings.relay.batch_size, &exclude),
            )
            .await?;
            crate::monitoring::stage(crate::monitoring::Stage::RelayRead, reading.elapsed());
            if rows.is_empty() {
                if let Some(oldest) = in_flight.pop_front() {
                    marked_since_vacuum += settle(conn, oldest, deadline).await?;
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
                marked_since_vacuum += settle(conn, oldest, deadline).await?;
            }
            // A shutdown lets the batches in flight finish, then stops.
            if shutdown.is_cancelled() {
                while let Some(oldest) = in_flight.pop_front() {
                    settle(conn, oldest, deadline).await?;
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

/// Vacuums the work list, unless (auto)vacuum is already at it; the relay
/// does it every `relay.vacuum_every_events` events it marks. Each mark
/// leaves dead entries at the low end of the index every read starts from,
/// and autovacuum comes at most once a minute: at 5,000 events/s that is
/// 300,000 entries to step over, a read of about 30 ms instead of 2. A
/// vacuum of this small table takes milliseconds. A failure only costs
/// reads their speed, so it is logged, not returned.
async fn vacuum_work_list(conn: &mut PgConnection, deadline: Duration) {
    let vacuumed = within(
        deadline,
        "vacuuming the work list",
        sqlx::query("VACUUM (SKIP_LOCKED) outbox_unpublished").execute(&mut *conn),
    )
    .await;
    if let Err(e) = vacuumed {
        warn!(error = %e, "could not vacuum outbox_unpublished");
    }
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
        let confirm = ch
            .basic_publish(
                exchange.into(),
                row.routing_key.as_str().into(),
                // Not mandatory: an event nobody subscribed to is not an error.
                BasicPublishOptions::default(),
                row.body.as_bytes(),
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
/// Returns how many rows it marked.
async fn settle(
    conn: &mut PgConnection,
    batch: InFlightBatch,
    deadline: Duration,
) -> Result<usize, RelayError> {
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
        let marked = within(
            deadline,
            "marking events published",
            outbox::mark_published(conn, &ids, LOCK_KEY),
        )
        .await?;
        if marked == Marked::NotLockHolder {
            // Another relay may publish now: stop, and try for the lock again.
            return Err(RelayError::LockLost);
        }
        crate::monitoring::relay_batch(ids.len(), batch.started.elapsed());
        debug!(
            count = ids.len(),
            ms = batch.started.elapsed().as_secs_f64() * 1000.0,
            "events published"
        );
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(ids.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_drops_an_unreachable_relays_session_within_a_minute() {
        let t = SessionTimeouts::for_poll_interval(Duration::from_millis(500));
        assert!(t.dead_peer_limit() <= Duration::from_secs(60));
        // A hung relay process: its kernel answers keepalives, the idle timeout ends it.
        assert!(t.idle_session <= Duration::from_secs(60));
        // A partitioned relay gives up on its statement no later than
        // Postgres gives up on its session, then reconnects.
        assert!(t.client_deadline() <= t.dead_peer_limit());
        assert!(t.statement < t.client_deadline());
    }

    #[test]
    fn the_idle_timeout_outlasts_the_poll_interval_so_a_healthy_relay_keeps_its_session() {
        for poll_ms in [100, 500, 5_000, 30_000, 120_000, 100_000_000] {
            let poll = Duration::from_millis(poll_ms);
            let t = SessionTimeouts::for_poll_interval(poll);
            assert!(t.idle_session > poll, "poll {poll:?}: {t:?}");
            let (_, ms) = t
                .settings()
                .into_iter()
                .find(|(name, _)| *name == "idle_session_timeout")
                .unwrap();
            let ms: i64 = ms.parse().unwrap();
            assert!(ms <= i32::MAX as i64, "Postgres accepts {ms}");
        }
    }

    #[test]
    fn settings_are_in_each_parameters_base_unit() {
        let t = SessionTimeouts::for_poll_interval(Duration::from_millis(500));
        let settings: std::collections::HashMap<_, _> = t.settings().into_iter().collect();
        assert_eq!(settings["tcp_keepalives_idle"], "10");
        assert_eq!(settings["tcp_keepalives_interval"], "5");
        assert_eq!(settings["tcp_keepalives_count"], "4");
        assert_eq!(settings["tcp_user_timeout"], "30000");
        assert_eq!(settings["statement_timeout"], "15000");
        assert_eq!(settings["lock_timeout"], "5000");
        assert_eq!(settings["idle_in_transaction_session_timeout"], "15000");
        assert_eq!(settings["idle_session_timeout"], "60000");
    }

    #[test]
    fn a_lock_held_by_the_backend_that_answers_is_session_scoped() {
        let probe = SessionProbe {
            locked_by: 41,
            answered_by: 41,
            holders: vec![41],
        };
        assert!(probe.check().is_ok());
    }

    #[test]
    fn a_statement_answered_by_another_backend_means_transaction_pooling() {
        let probe = SessionProbe {
            locked_by: 41,
            answered_by: 42,
            holders: vec![41],
        };
        let e = probe.check().unwrap_err();
        assert!(!e.is_retryable());
        let message = e.to_string();
        assert!(
            message.contains("session-scoped") && message.contains("PgBouncer in session mode"),
            "{message}"
        );
    }

    #[test]
    fn a_lock_that_pg_locks_does_not_show_on_this_backend_is_not_ours() {
        let probe = SessionProbe {
            locked_by: 41,
            answered_by: 41,
            holders: vec![40],
        };
        assert!(matches!(
            probe.check(),
            Err(RelayError::NotSessionScoped(_))
        ));
    }
}
