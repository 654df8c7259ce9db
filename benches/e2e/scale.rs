//! Issue 17's options of `make bench`: the database preloaded to a
//! production size, and when the flood's commands were all committed (as
//! against when their events were all received: the relay's share).

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

pub const CONTACTS: i64 = 1_000_000;
pub const INBOX: i64 = 10_000_000;
pub const OUTBOX: i64 = 5_000_000;

#[derive(Serialize)]
pub struct Preloaded {
    pub contacts: i64,
    pub inbox: i64,
    pub outbox: i64,
    pub seconds: f64,
}

/// Rows like the worker's own, made in Postgres (`generate_series`):
/// contacts copied from `c-0`'s state under new ids, processed commands
/// with a reply, published events with `c-0`'s latest event body. Spread
/// over the last 7 days (the default retention) so that they stay until
/// retention would purge them.
pub async fn preload(pool: &PgPool) -> Preloaded {
    let started = Instant::now();
    let run = |sql: &'static str, n: i64| async move {
        sqlx::query(sql).bind(n).execute(pool).await.unwrap();
    };
    run(
        "INSERT INTO contacts (tenant_id, contact_id, version, employer_id, state) \
         SELECT c.tenant_id, 'p-' || g, 1, c.employer_id, \
                jsonb_set(c.state, '{id}', to_jsonb('p-' || g)) \
         FROM contacts c, generate_series(1, $1) g \
         WHERE c.tenant_id = 'bench' AND c.contact_id = 'c-0'",
        CONTACTS,
    )
    .await;
    run(
        "INSERT INTO processed_commands (tenant_id, command_id, command_type, outcome, reply, processed_at) \
         SELECT 'bench', 'preload-' || g, 'contact.change_status', 'applied', \
                jsonb_build_object('command_id', 'preload-' || g, 'tenant', 'bench', 'outcome', 'applied', \
                  'duplicate', false, 'entity', jsonb_build_object('kind', 'contact', 'id', 'p-' || (g % 1000000), \
                  'version', 2), 'events', jsonb_build_array(gen_random_uuid()::text), 'error', null, 'items', null), \
                now() - (g % 604800) * interval '1 second' \
         FROM generate_series(1, $1) g",
        INBOX,
    )
    .await;
    run(
        "INSERT INTO outbox (tenant_id, event_id, routing_key, event_type, entity_kind, entity_id, \
           version, body, created_at) \
         SELECT 'bench', gen_random_uuid(), o.routing_key, o.event_type, o.entity_kind, 'p-' || (g % 1000000), \
                2, o.body, now() - (g % 604800) * interval '1 second' \
         FROM (SELECT * FROM outbox WHERE tenant_id = 'bench' ORDER BY id DESC LIMIT 1) o, \
              generate_series(1, $1) g",
        OUTBOX,
    )
    .await;
    sqlx::query("VACUUM ANALYZE").execute(pool).await.unwrap();
    // Written out now, not by the checkpointer during the timed runs.
    sqlx::query("CHECKPOINT").execute(pool).await.unwrap();
    Preloaded {
        contacts: CONTACTS,
        inbox: INBOX,
        outbox: OUTBOX,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The database's clock, to count what is processed from now on.
pub async fn db_now(pool: &PgPool) -> time::OffsetDateTime {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// How long from `started` until `n` commands processed at or after
/// `since` (taken before anything was published) are in the inbox. Until
/// the last command published (`last_id`) is there, a key lookup every
/// 20 ms; only then the count (of a range of the time index). Counting
/// all along took a core's tenth from the run it measures.
pub async fn committed_after(
    pool: PgPool,
    since: time::OffsetDateTime,
    started: Instant,
    n: i64,
    last_id: String,
) -> Duration {
    loop {
        let last_done: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM processed_commands \
             WHERE tenant_id = 'bench' AND command_id = $1)",
        )
        .bind(&last_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        if last_done {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM processed_commands WHERE processed_at >= $1",
            )
            .bind(since)
            .fetch_one(&pool)
            .await
            .unwrap();
            if done >= n {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Serialize)]
pub struct RetentionCost {
    pub inbox_rows: u64,
    pub outbox_rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Seconds of purging a day at 5,000 commands/s sustained (one inbox
    /// row and about one outbox row per command).
    pub seconds_per_day_at_5000: f64,
}

/// The retention job on the preloaded rows: everything older than six days
/// (a seventh of them) purged by `retention::purge_once`, timed.
pub async fn retention_cost(pool: &PgPool) -> RetentionCost {
    let settings = lifecycle_worker::config::RetentionSettings {
        processed_commands_days: 6,
        published_outbox_days: 6,
        ..Default::default()
    };
    let started = Instant::now();
    let purged = lifecycle_worker::retention::purge_once(pool, &settings)
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let rows = (purged.processed_commands + purged.outbox_rows) as f64;
    let rows_per_second = rows / seconds;
    RetentionCost {
        inbox_rows: purged.processed_commands,
        outbox_rows: purged.outbox_rows,
        seconds,
        rows_per_second,
        seconds_per_day_at_5000: 2.0 * 5_000.0 * 86_400.0 / rows_per_second,
    }
}

/// Events in the relay's drain run.
pub const DRAIN: i64 = 50_000;

#[derive(Serialize)]
pub struct RelayDrain {
    pub events: i64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// The relay alone: `DRAIN` unpublished events committed at once (copies of
/// the latest event, so the listener counts no new command), and the time
/// until the relay has had every one confirmed by the broker and marked it.
/// The events per second one relay publishes, whatever the commands do.
pub async fn relay_drain(pool: &PgPool) -> RelayDrain {
    sqlx::query(
        "WITH written AS ( \
           INSERT INTO outbox (tenant_id, event_id, routing_key, event_type, entity_kind, entity_id, \
             version, body) \
           SELECT o.tenant_id, gen_random_uuid(), o.routing_key, o.event_type, o.entity_kind, \
                  o.entity_id, o.version, o.body \
           FROM (SELECT * FROM outbox WHERE tenant_id = 'bench' ORDER BY id DESC LIMIT 1) o, \
                generate_series(1, $1) g \
           RETURNING tenant_id, id) \
         INSERT INTO outbox_unpublished (tenant_id, id) SELECT tenant_id, id FROM written",
    )
    .bind(DRAIN)
    .execute(pool)
    .await
    .unwrap();
    let started = Instant::now();
    let deadline = Duration::from_secs(600);
    loop {
        let drained: bool =
            sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM outbox_unpublished)")
                .fetch_one(pool)
                .await
                .unwrap();
        if drained {
            break;
        }
        assert!(started.elapsed() < deadline, "the relay drained the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    RelayDrain {
        events: DRAIN,
        seconds,
        events_per_second: DRAIN as f64 / seconds,
    }
}
