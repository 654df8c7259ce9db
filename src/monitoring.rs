//! Prometheus metrics: one process-wide recorder, rendered by `/metrics`.
//! Names and labels are part of the operator documentation
//! (docs/operations.md); counters are registered at start so they show up
//! as 0 before anything happened.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process (tests run several workers in one).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("static buckets are valid")
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        "lifecycle_commands_total",
        "Commands handled, by type and outcome."
    );
    describe_histogram!(
        "lifecycle_command_duration_seconds",
        "From delivery to commit, per command."
    );
    describe_counter!(
        "lifecycle_dead_letters_total",
        "Dead letters stored, by code."
    );
    describe_gauge!("lifecycle_outbox_pending", "Outbox rows not yet published.");
    describe_gauge!(
        "lifecycle_outbox_oldest_age_seconds",
        "Age of the oldest unpublished outbox row."
    );
    describe_histogram!(
        "lifecycle_stage_duration_seconds",
        "What a command's latency is made of, by stage: batch_wait (per command, \
         delivery to its transaction's start), transaction and settle (per batch: \
         begin to commit; replies, their confirms and the ack), relay_wait (a commit \
         with events to the relay's next read), relay_read (the read)."
    );
    describe_histogram!(
        "lifecycle_relay_publish_duration_seconds",
        "Per relay batch, from first publish to last confirm."
    );
    describe_counter!(
        "lifecycle_replies_undelivered_total",
        "Replies given up after the commit, by reason: refused (nacked every time) or \
         unroutable (no reply_to queue)."
    );
    describe_counter!(
        "lifecycle_events_published_total",
        "Events confirmed by the broker."
    );
    describe_gauge!(
        "lifecycle_broker_connected",
        "1 while the consumers' broker connection is up."
    );
    describe_counter!(
        "lifecycle_broker_reconnects_total",
        "Broker sessions re-established."
    );
    describe_gauge!(
        "lifecycle_db_pool_connections",
        "Database pool connections, by state."
    );
    describe_counter!(
        "lifecycle_transient_retries_total",
        "Retries after transient failures, by component."
    );
    describe_gauge!(
        "lifecycle_guardrail_held",
        "Commands held by the mass-change guardrail, by tenant."
    );
    describe_gauge!(
        "lifecycle_console_connections",
        "Connections open to the operations console."
    );
    describe_counter!(
        "lifecycle_console_connections_closed_total",
        "Console connections closed by the console, by reason: timeout (header or idle), \
         shed (to make room at the cap), refused (at the cap, every connection an operator's)."
    );
    for component in ["worker", "relay", "dead_letter_drain"] {
        counter!("lifecycle_transient_retries_total", "component" => component).absolute(0);
    }
    counter!("lifecycle_broker_reconnects_total").absolute(0);
    for reason in ["timeout", "shed", "refused"] {
        counter!("lifecycle_console_connections_closed_total", "reason" => reason).absolute(0);
    }
    counter!("lifecycle_events_published_total").absolute(0);
    for reason in ["refused", "unroutable"] {
        counter!("lifecycle_replies_undelivered_total", "reason" => reason).absolute(0);
    }
}

pub fn reply_undelivered(reason: &'static str) {
    counter!("lifecycle_replies_undelivered_total", "reason" => reason).increment(1);
}

pub fn command(kind: &'static str, outcome: &'static str, took: Duration) {
    counter!("lifecycle_commands_total", "type" => kind, "outcome" => outcome).increment(1);
    histogram!("lifecycle_command_duration_seconds").record(took.as_secs_f64());
}

/// One stage of the path a command takes; see `describe`.
#[derive(Clone, Copy, Debug)]
pub enum Stage {
    BatchWait,
    Transaction,
    Settle,
    RelayWait,
    RelayRead,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::BatchWait => "batch_wait",
            Stage::Transaction => "transaction",
            Stage::Settle => "settle",
            Stage::RelayWait => "relay_wait",
            Stage::RelayRead => "relay_read",
        }
    }
}

pub fn stage(stage: Stage, took: Duration) {
    histogram!("lifecycle_stage_duration_seconds", "stage" => stage.as_str())
        .record(took.as_secs_f64());
}

/// The first commit with events the relay has not read since, in
/// microseconds after [`clock_start`] plus one (0: none).
static UNREAD_SINCE: AtomicU64 = AtomicU64::new(0);

fn clock_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn clock_micros() -> u64 {
    u64::try_from(clock_start().elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
}

/// A transaction with events committed: the relay's wait starts, unless an
/// earlier commit's wait is still running.
pub fn events_committed() {
    let _ = UNREAD_SINCE.compare_exchange(0, clock_micros(), Ordering::Relaxed, Ordering::Relaxed);
}

/// The relay reads the outbox: records how long the oldest commit it had
/// not read waited for it.
pub fn relay_reading() {
    let since = UNREAD_SINCE.swap(0, Ordering::Relaxed);
    if since != 0 {
        let waited = clock_micros().saturating_sub(since);
        stage(Stage::RelayWait, Duration::from_micros(waited));
    }
}

pub fn dead_letter(code: &str) {
    counter!("lifecycle_dead_letters_total", "code" => code.to_owned()).increment(1);
}

pub fn relay_batch(events: usize, took: Duration) {
    histogram!("lifecycle_relay_publish_duration_seconds").record(took.as_secs_f64());
    counter!("lifecycle_events_published_total").increment(events as u64);
}

pub fn broker_connected(up: bool) {
    gauge!("lifecycle_broker_connected").set(if up { 1.0 } else { 0.0 });
}

pub fn broker_reconnect() {
    counter!("lifecycle_broker_reconnects_total").increment(1);
}

pub fn transient_retry(component: &'static str) {
    counter!("lifecycle_transient_retries_total", "component" => component).increment(1);
}

pub fn guardrail_held(tenant: &str, held: i64) {
    gauge!("lifecycle_guardrail_held", "tenant" => tenant.to_owned()).set(held as f64);
}

/// Gauges read at scrape time.
pub fn scrape_gauges(outbox_pending: i64, oldest_age: f64, pool_size: u32, pool_idle: usize) {
    gauge!("lifecycle_outbox_pending").set(outbox_pending as f64);
    gauge!("lifecycle_outbox_oldest_age_seconds").set(oldest_age);
    let idle = pool_idle as f64;
    gauge!("lifecycle_db_pool_connections", "state" => "idle").set(idle);
    gauge!("lifecycle_db_pool_connections", "state" => "in_use").set(f64::from(pool_size) - idle);
}

/// What `/readyz` reports, kept up to date by the tasks themselves and by
/// `app::probe_database`: no HTTP request touches the database.
#[derive(Default)]
pub struct Health {
    pub database_reachable: AtomicBool,
    pub broker_connected: AtomicBool,
    pub consumers_running: AtomicBool,
    /// Outbox rows not yet published, as last probed.
    pub outbox_pending: AtomicI64,
    /// Age of the oldest of them in milliseconds (the relay's lag).
    pub outbox_oldest_ms: AtomicU64,
}
