//! `run`: the worker process. Consumers, relay and HTTP as tasks under one
//! cancellation token; shutdown is a parameter.

use crate::hash_key::HashKey;
use crate::monitoring::Health;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use backon::BackoffBuilder;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::amqp::{self, Names};
use crate::config::Settings;
use crate::store;
use crate::worker::{consume_queue, retry_schedule, Flow, Processor};

/// How often the database is probed for `/readyz` and the outbox gauges.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the worker until `shutdown` resolves, then drains within the
/// configured timeout. `on_listening` receives the bound HTTP address
/// (useful with port 0).
// The process's whole task tree, in start order, in one place: longer
// than most functions, kept together so the order can be read at once.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let metrics = crate::monitoring::install();
    let pool = store::prepare(&settings).await?;
    let hash_key = HashKey::load(&pool, settings.privacy.hash_key.as_ref()).await?;
    let token = CancellationToken::new();
    let health = Arc::new(Health::default());
    let relay_wake = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind(settings.http_listen()?).await?;
    let addr = listener.local_addr()?;
    info!(%addr, prefix = %settings.amqp.prefix, "lifecycle-worker starting");
    on_listening(addr);

    // Bound before anything runs, so a console that cannot start stops the
    // process at once, saying why.
    let console = match settings.console_listen() {
        Some(at) => {
            let console =
                crate::console::Console::new(settings.clone(), pool.clone(), health.clone())?;
            Some((tokio::net::TcpListener::bind(at).await?, Arc::new(console)))
        }
        None => None,
    };

    let mut tasks = JoinSet::new();
    tasks.spawn(probe_database(pool.clone(), health.clone(), token.clone()));
    {
        let (settings, pool, token) = (settings.clone(), pool.clone(), token.clone());
        tasks.spawn(async move { crate::store::follow_primary(&settings, pool, token).await });
    }
    tasks.spawn(serve_http(listener, health.clone(), metrics, token.clone()));
    if let Some((listener, console)) = console {
        tasks.spawn(crate::console::serve(listener, console, token.clone()));
    }
    // A relay that cannot work at all (no session-scoped connection) stops
    // the process: a worker that applies commands but never publishes their
    // events would look healthy while the outbox grows.
    let (relay_failed, relay_failure) = tokio::sync::oneshot::channel();
    if settings.relay.enabled {
        let relay = crate::relay::run(
            pool.clone(),
            settings.clone(),
            relay_wake.clone(),
            token.clone(),
        );
        tasks.spawn(async move {
            if let Err(e) = relay.await {
                let _ = relay_failed.send(e);
            }
        });
    }
    tasks.spawn(crate::retention::run(
        pool.clone(),
        settings.retention.clone(),
        token.clone(),
    ));
    let processor = Arc::new(Processor {
        pool: pool.clone(),
        policies: settings.policies(),
        producers: settings.producers(),
        limits: settings.limits.clone(),
        hash_key,
        relay_wake,
        schedule_wake: Arc::new(Notify::new()),
    });
    tasks.spawn(crate::schedule::run(processor.clone(), token.clone()));
    tasks.spawn(supervise_consumers(
        processor,
        settings.clone(),
        health,
        token.clone(),
    ));

    // A relay that ended without failing (or is off) never resolves this.
    let relay_fatal = async {
        match relay_failure.await {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    };
    let fatal = tokio::select! {
        _ = shutdown => None,
        e = relay_fatal => Some(e),
    };
    info!("shutting down: no new deliveries, draining in-flight work");
    token.cancel();
    let drained = tokio::time::timeout(settings.drain_timeout(), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("drain timeout reached; abandoning unfinished work (it will be redelivered)");
        tasks.abort_all();
    }
    pool.close().await;
    info!("stopped");
    match fatal {
        Some(e) => Err(anyhow::Error::new(e).context("the outbox relay cannot run")),
        None => Ok(()),
    }
}

/// Keeps a broker connection with both consumers alive, reconnecting with
/// backoff (and re-declaring topology) after any connection or channel failure.
async fn supervise_consumers(
    processor: Arc<Processor>,
    settings: Settings,
    health: Arc<Health>,
    token: CancellationToken,
) {
    let names = Names::new(&settings.amqp.prefix);
    let mut backoff = retry_schedule().build();
    while !token.is_cancelled() {
        let result = consume_once(&processor, &settings, &names, &health, &token).await;
        health.broker_connected.store(false, Ordering::Relaxed);
        // A session that got its consumers running was a success: the
        // next failure starts from the shortest delay again, not from
        // where earlier outages left the backoff (up to 5 s).
        if health.consumers_running.swap(false, Ordering::Relaxed) {
            backoff = retry_schedule().build();
        }
        crate::monitoring::broker_connected(false);
        match result {
            Ok(()) => break,
            Err(e) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                crate::monitoring::broker_reconnect();
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "broker session ended, reconnecting");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn consume_once(
    processor: &Arc<Processor>,
    settings: &Settings,
    names: &Names,
    health: &Health,
    token: &CancellationToken,
) -> Result<(), crate::worker::ConsumeError> {
    let conn = amqp::connect(&settings.amqp, "consumer").await?;
    let ch = conn.create_channel().await?;
    amqp::declare_topology(&ch, names, settings.amqp.delivery_limit).await?;
    let _ = ch.close(200, "topology declared".into()).await;
    health.broker_connected.store(true, Ordering::Relaxed);
    crate::monitoring::broker_connected(true);
    // A failing queue loop ends the session for both, so they reconnect together.
    let session = token.child_token();
    let conn = Arc::new(conn);
    let mut loops = JoinSet::new();
    for (queue, _) in names.command_queues() {
        let (p, c, q, s) = (
            processor.clone(),
            conn.clone(),
            queue.to_owned(),
            session.clone(),
        );
        let flow = Flow {
            prefetch: settings.amqp.prefetch,
            batch_size: settings.worker.batch_size,
            max_unacked_bytes: settings.worker.max_unacked_bytes,
        };
        loops.spawn(async move { consume_queue(p, &c, &q, flow, s).await });
    }
    {
        let (p, c, q, s) = (
            processor.clone(),
            conn.clone(),
            names.dead_letters.clone(),
            session.clone(),
        );
        loops.spawn(async move { crate::worker::drain_dead_letters(p, &c, &q, s).await });
    }
    health.consumers_running.store(true, Ordering::Relaxed);
    let mut result = Ok(());
    while let Some(joined) = loops.join_next().await {
        let r = match joined {
            Ok(r) => r,
            Err(e) => Err(crate::worker::ConsumeError::Panicked(e.to_string())),
        };
        if let Err(e) = r {
            error!(error = %e, "consumer failed");
            session.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    let _ = conn.close(200, "shutting down".into()).await;
    result
}

type HttpState = (Arc<Health>, &'static PrometheusHandle);

async fn serve_http(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    metrics: &'static PrometheusHandle,
    token: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state((health, metrics));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await;
    if let Err(e) = served {
        error!(error = %e, "HTTP server failed");
    }
}

/// Every [`PROBE_INTERVAL`]: one query that both proves the database
/// reachable and reads the outbox backlog for the gauges.
async fn probe_database(pool: PgPool, health: Arc<Health>, token: CancellationToken) {
    let mut held_tenants = std::collections::BTreeSet::new();
    loop {
        let backlog: Result<(i64, Option<f64>), sqlx::Error> = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query_as(
                "SELECT count(*), EXTRACT(EPOCH FROM now() - ( \
                   SELECT o.created_at FROM outbox_unpublished u \
                   JOIN outbox o ON o.tenant_id = u.tenant_id AND o.id = u.id \
                   ORDER BY u.id LIMIT 1))::float8 \
                 FROM outbox_unpublished",
            )
            .fetch_one(&pool),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        health
            .database_reachable
            .store(backlog.is_ok(), Ordering::Relaxed);
        if let Ok((pending, age)) = backlog {
            health.outbox_pending.store(pending, Ordering::Relaxed);
            let age_ms = (age.unwrap_or(0.0).max(0.0) * 1000.0) as u64;
            health.outbox_oldest_ms.store(age_ms, Ordering::Relaxed);
            crate::monitoring::scrape_gauges(
                pending,
                age.unwrap_or(0.0),
                pool.size(),
                pool.num_idle(),
            );
        }
        if let Ok(held) = crate::store::guardrail::held_per_tenant(&pool).await {
            // A tenant whose holds were all released reads 0, not its last count.
            let now: std::collections::BTreeSet<String> =
                held.iter().map(|(t, _)| t.clone()).collect();
            for gone in held_tenants.difference(&now) {
                crate::monitoring::guardrail_held(gone, 0);
            }
            for (tenant, n) in &held {
                crate::monitoring::guardrail_held(tenant, *n);
            }
            held_tenants = now;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

async fn readyz(State((health, _)): State<HttpState>) -> impl IntoResponse {
    let db = health.database_reachable.load(Ordering::Relaxed);
    let broker = health.broker_connected.load(Ordering::Relaxed);
    let consumers = health.consumers_running.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "database": db, "broker": broker, "consumers": consumers,
    });
    if db && broker && consumers {
        (StatusCode::OK, Json(body))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

/// Prometheus text, from what the worker already keeps.
async fn render_metrics(State((_, metrics)): State<HttpState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics.render(),
    )
}
