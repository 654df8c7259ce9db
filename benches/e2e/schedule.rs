//! The scheduling phase of `make bench` (issue 13's timing criteria):
//! 1,000 commands due at the same second, how long after their
//! `effective_at` their events arrive; then the cost of waiting with
//! 1,000,000 commands scheduled and none due: the only queries a scheduler
//! makes then, timed on that table.

use std::time::{Duration, Instant};

use lapin::Connection;
use lifecycle_worker::amqp;
use lifecycle_worker::domain::event::format_time;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{publish, Arrivals};

pub const DUE: usize = 1_000;
pub const WAITING: i64 = 1_000_000;

#[derive(Debug, serde::Serialize)]
pub struct Scheduling {
    /// Event arrival minus `effective_at`, over the due commands.
    pub late_p50_ms: f64,
    pub late_p99_ms: f64,
    pub late_max_ms: f64,
    /// With `WAITING` scheduled and none due: the two queries of a wake-up.
    pub next_due_ms: f64,
    pub claim_ms: f64,
    /// Wake-ups per process per minute when nothing is due.
    pub idle_wakeups_per_minute: f64,
}

async fn mean_ms(pool: &PgPool, sql: &str, runs: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..runs {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
}

pub async fn run(
    conn: &Connection,
    exchange: &str,
    arrivals: &Arrivals,
    pool: &PgPool,
) -> Scheduling {
    let ch = amqp::confirm_channel(conn).await.unwrap();
    // Due three seconds from now, all at the same instant.
    let due = (OffsetDateTime::now_utc() + time::Duration::seconds(3))
        .replace_nanosecond(0)
        .unwrap();
    let cmds: Vec<_> = (0..DUE)
        .map(|i| {
            json!({"command_id": format!("due-{i}"), "type": "contact.change_status", "tenant": "bench",
                   "issued_at": "2026-11-22T13:00:00Z", "effective_at": format_time(due),
                   "payload": {"contact_id": format!("c-{}", i + 1), "status": "D"}})
        })
        .collect();
    let before = *arrivals.count.borrow();
    publish(&ch, exchange, &cmds, None).await;
    // Each command's first event is its CommandScheduled; wait for those,
    // then for the applied ones, by command id.
    assert!(
        arrivals
            .wait_for(before + DUE, Duration::from_secs(60))
            .await,
        "scheduled"
    );
    let applied_after = |id: &str| {
        let seen = arrivals.applied.lock().unwrap();
        seen.get(id).copied()
    };
    let ids: Vec<String> = (0..DUE).map(|i| format!("due-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.iter().any(|id| applied_after(id).is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut late: Vec<f64> = ids
        .iter()
        .filter_map(|id| applied_after(id))
        .map(|wall| (wall - due).as_seconds_f64() * 1000.0)
        .collect();
    assert_eq!(late.len(), DUE, "every due command applied");
    late.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| late[((late.len() as f64 * p) as usize).min(late.len() - 1)];

    sqlx::query(
        "INSERT INTO scheduled_commands (tenant_id, command_id, command_type, entity_kind, entity_id, \
         effective_at, body, properties, exchange, routing_key) \
         SELECT 'idle', 'w-' || g, 'contact.deactivate', 'contact', 'c-' || g, \
           now() + interval '100 days' + g * interval '1 second', '\\x7b7d', '{}', 'x', 'idle.contact.deactivate' \
         FROM generate_series(1, $1) g",
    )
    .bind(WAITING)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE scheduled_commands")
        .execute(pool)
        .await
        .unwrap();
    let next_due_ms = mean_ms(
        pool,
        "SELECT min(effective_at) FROM scheduled_commands",
        200,
    )
    .await;
    // The claim, rolled back: what a wake-up with nothing due costs.
    let claim_ms = mean_ms(
        pool,
        "SELECT tenant_id, command_id FROM scheduled_commands WHERE effective_at <= now() \
         ORDER BY effective_at, scheduled_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        200,
    )
    .await;
    sqlx::query("DELETE FROM scheduled_commands WHERE tenant_id = 'idle'")
        .execute(pool)
        .await
        .unwrap();
    Scheduling {
        late_p50_ms: pct(0.5),
        late_p99_ms: pct(0.99),
        late_max_ms: late[late.len() - 1],
        next_due_ms,
        claim_ms,
        idle_wakeups_per_minute: 60.0 / lifecycle_worker::schedule::MAX_SLEEP.as_secs_f64(),
    }
}
