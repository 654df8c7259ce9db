//! The erasure phase of `make bench` (issue 12's cost criterion): a
//! contact with 10,000 activity rows and 1,000 dead letters (and the
//! 10,000 published events of that activity) is erased while other
//! commands flow at a steady rate; prints how long the erasure took and
//! what the other commands' latency was meanwhile.

use std::time::{Duration, Instant};

use lapin::Connection;
use lifecycle_worker::amqp;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::{cycle, figures, publish, Arrivals};

pub const ACTIVITY: usize = 10_000;
pub const DEAD_LETTERS: usize = 1_000;

#[derive(Debug, serde::Serialize)]
pub struct Erasure {
    pub activity_rows: i64,
    pub dead_letters: i64,
    pub outbox_rows: i64,
    /// Publish of `contact.erase` to its `ContactErased` event.
    pub erase_ms: f64,
    /// Other commands in the same seconds.
    pub others: usize,
    pub others_p50_ms: f64,
    pub others_p99_ms: f64,
    pub others_max_ms: f64,
    pub left_after: (i64, i64, i64),
}

fn bench_command(id: String, kind: &str, payload: Value) -> Value {
    json!({"command_id": id, "type": kind, "tenant": "bench",
           "issued_at": "2026-11-22T12:00:00Z", "payload": payload})
}

async fn counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM contact_activity WHERE tenant_id = 'bench' AND contact_id = 'c-0'), \
                (SELECT count(*) FROM dead_letters WHERE tenant_id = 'bench' AND entity_id = 'c-0'), \
                (SELECT count(*) FROM outbox WHERE tenant_id = 'bench' AND entity_id = 'c-0' AND body::jsonb ? 'data')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn run(
    conn: &Connection,
    exchange: &str,
    arrivals: &Arrivals,
    pool: &PgPool,
    contacts: usize,
    rate: u64,
    first_index: usize,
) -> Erasure {
    let ch = amqp::confirm_channel(conn).await.unwrap();
    let deadline = Duration::from_secs(300);
    let mut setup = vec![bench_command(
        "erase-prep".into(),
        "contact.upsert",
        json!({"contact_id": "c-0", "email": "erase-me@example.com", "first_name": "Erase"}),
    )];
    setup.extend((0..ACTIVITY).map(|i| {
        bench_command(
            format!("act-{i}"),
            "contact.log_activity",
            json!({"contact_id": "c-0", "kind": "note", "body": format!("activity {i}: met at the fair")}),
        )
    }));
    let before = *arrivals.count.borrow();
    publish(&ch, exchange, &setup, None).await;
    assert!(
        arrivals.wait_for(before + setup.len(), deadline).await,
        "activity logged"
    );
    let bad: Vec<Value> = (0..DEAD_LETTERS)
        .map(|i| {
            bench_command(
                format!("bad-{i}"),
                "contact.upsert",
                json!({"contact_id": "c-0", "status": "NOPE"}),
            )
        })
        .collect();
    publish(&ch, exchange, &bad, None).await;
    let waited = Instant::now();
    let seeded = loop {
        let c = counts(pool).await;
        if c.1 >= DEAD_LETTERS as i64 || waited.elapsed() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Three seconds of other contacts' commands; the erasure goes in after one.
    let seconds = 3;
    let others: Vec<Value> = cycle(
        first_index,
        first_index + (rate as usize) * seconds * 2,
        contacts,
    )
    .into_iter()
    .filter(|c| c["payload"]["contact_id"] != "c-0")
    .take(rate as usize * seconds)
    .collect();
    let others_ch = amqp::confirm_channel(conn).await.unwrap();
    let exchange_owned = exchange.to_owned();
    let before = *arrivals.count.borrow();
    let others_task = {
        let others = others.clone();
        tokio::spawn(async move { publish(&others_ch, &exchange_owned, &others, Some(rate)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let erase = bench_command(
        "erase-c0".into(),
        "contact.erase",
        json!({"contact_id": "c-0"}),
    );
    let erase_sent = publish(&ch, exchange, &[erase], None).await;
    let sent = others_task.await.unwrap();
    assert!(
        arrivals.wait_for(before + others.len() + 1, deadline).await,
        "erasure and other commands' events arrived"
    );
    let erase_ms = {
        let seen = arrivals.seen.lock().unwrap();
        seen["erase-c0"]
            .duration_since(erase_sent["erase-c0"])
            .as_secs_f64()
            * 1000.0
    };
    let f = figures(&sent, arrivals);
    let others_max_ms = {
        let seen = arrivals.seen.lock().unwrap();
        sent.iter()
            .filter_map(|(id, t)| {
                seen.get(id)
                    .map(|r| r.duration_since(*t).as_secs_f64() * 1000.0)
            })
            .fold(0.0, f64::max)
    };
    Erasure {
        activity_rows: seeded.0,
        dead_letters: seeded.1,
        outbox_rows: seeded.2,
        erase_ms,
        others: f.commands,
        others_p50_ms: f.p50_ms,
        others_p99_ms: f.p99_ms,
        others_max_ms,
        left_after: counts(pool).await,
    }
}
