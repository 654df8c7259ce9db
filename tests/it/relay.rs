//! The outbox relay: events committed while no relay ran are published
//! afterwards, each id once after deduplication, in version order per
//! entity, even with two relays competing and rows re-sent after a crash.
//! The relay's lock lives on a named session with keepalives and timeouts,
//! and marking rows published needs that lock.

use lifecycle_worker::store::outbox;
use lifecycle_worker::store::outbox::Marked;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::helpers::{eventually, relay_lock_holder, TestEnv, DEADLINE};
use lifecycle_worker::relay::{self, RelayError, SessionTimeouts};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

/// Deduplicates by id (as a consumer would) and checks per-entity order.
fn dedupe_in_order(events: &[Value]) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut last_version: HashMap<String, u64> = HashMap::new();
    let mut unique = Vec::new();
    for e in events {
        if !seen.insert(e["id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let subject = e["subject"].as_str().unwrap().to_owned();
        let v = e["entityversion"].as_u64().unwrap();
        let last = last_version.entry(subject.clone()).or_insert(0);
        assert!(v >= *last, "{subject}: version {v} after {last}");
        *last = v;
        unique.push(e.clone());
    }
    unique
}

async fn pending(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox_unpublished")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn events_committed_without_a_relay_are_published_later_exactly_once() {
    let mut env = TestEnv::prepare_with(|s| s.relay.enabled = false).await;
    env.start_worker();
    let mut expected_ids = Vec::new();
    for i in 0..5 {
        let id = format!("c-{i}");
        for (minute, kind, payload) in [
            (
                0,
                "contact.upsert",
                json!({"contact_id": id, "email": format!("{id}@example.com")}),
            ),
            (1, "contact.deactivate", json!({"contact_id": id})),
            (
                2,
                "contact.change_status",
                json!({"contact_id": id, "status": "B"}),
            ),
            (3, "contact.reactivate", json!({"contact_id": id})),
        ] {
            let reply = env.send(&env.command("acme", kind, minute, payload)).await;
            assert_eq!(reply["outcome"], "applied");
            expected_ids.extend(reply["events"].as_array().unwrap().iter().cloned());
        }
    }
    // Committed (replies came back) but unpublished: the "crash" window.
    assert_eq!(pending(&env).await as usize, expected_ids.len());
    assert!(env.events_so_far().is_empty());
    env.stop_worker().await;

    // Two workers with relays: only the one holding the lock publishes.
    env.settings.relay.enabled = true;
    env.start_worker();
    let (stop_second, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(lifecycle_worker::app::run(
        env.settings.clone(),
        async {
            let _ = stopped.await;
        },
        |_| {},
    ));
    let received = env.events_with_ids(&expected_ids).await;
    assert_eq!(received.len(), expected_ids.len());
    let all = env.wait_event_count(expected_ids.len()).await;
    let unique = dedupe_in_order(&all);
    assert_eq!(unique.len(), expected_ids.len());

    // A relay that dies after publishing but before marking re-sends rows:
    // consumers see duplicates, which dedupe to the same events in order.
    eventually("all rows marked published", || async {
        (pending(&env).await == 0).then_some(())
    })
    .await;
    sqlx::query("INSERT INTO outbox_unpublished (tenant_id, id) SELECT tenant_id, id FROM outbox ORDER BY id LIMIT 6")
        .execute(&env.pool)
        .await
        .unwrap();
    let all = env.wait_event_count(expected_ids.len() + 6).await;
    let unique = dedupe_in_order(&all);
    assert_eq!(unique.len(), expected_ids.len());
    let versions: Vec<u64> = unique
        .iter()
        .filter(|e| e["subject"] == "contact/c-0")
        .map(|e| e["entityversion"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 2, 3, 4, 4]);

    let _ = stop_second.send(());
    second.await.unwrap().unwrap();
    env.finish().await;
}

/// Commits a contact's events with no relay running; returns their outbox ids.
async fn unpublished_rows(env: &TestEnv) -> Vec<i64> {
    let reply = env
        .send(&env.command(
            "acme",
            "contact.upsert",
            0,
            json!({"contact_id": "c-1", "email": "c-1@example.com"}),
        ))
        .await;
    assert_eq!(reply["outcome"], "applied");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox_unpublished ORDER BY id")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert!(!ids.is_empty());
    ids
}

/// `n` more unpublished copies of the first outbox row, in one statement.
async fn add_backlog(env: &TestEnv, n: usize) {
    sqlx::query(
        "WITH written AS ( \
           INSERT INTO outbox (tenant_id, event_id, routing_key, event_type, entity_kind, \
             entity_id, version, body) \
           SELECT tenant_id, gen_random_uuid(), routing_key, event_type, entity_kind, \
             entity_id, version, body \
           FROM (SELECT * FROM outbox ORDER BY id LIMIT 1) o, generate_series(1, $1) \
           RETURNING tenant_id, id) \
         INSERT INTO outbox_unpublished (tenant_id, id) SELECT tenant_id, id FROM written",
    )
    .bind(n as i64)
    .execute(&env.pool)
    .await
    .unwrap();
}

/// A relay session that holds the relay's lock.
async fn locked_relay_session(env: &TestEnv) -> PgConnection {
    let poll = Duration::from_millis(env.settings.relay.poll_interval_ms);
    let mut session = relay::connect(&env.pool).await.unwrap();
    assert!(relay::try_lock(&mut session, poll).await.unwrap());
    session
}

async fn plain_session(env: &TestEnv) -> PgConnection {
    // The pool's options: the worker's schema, without the relay's name.
    sqlx::ConnectOptions::connect(env.pool.connect_options().as_ref())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_running_relay_holds_its_lock_on_a_session_named_for_it() {
    let env = TestEnv::start().await;
    eventually("a relay session holding the lock", || {
        relay_lock_holder(&env.pool)
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn the_relay_session_that_takes_the_lock_has_keepalives_and_timeouts() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let poll = Duration::from_millis(env.settings.relay.poll_interval_ms);
    let mut conn = relay::connect(&env.pool).await.unwrap();
    assert!(relay::try_lock(&mut conn, poll).await.unwrap());

    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(relay_lock_holder(&env.pool).await, Some(pid));
    // pg_settings shows this session's values, in each parameter's base unit.
    for (name, value) in SessionTimeouts::for_poll_interval(poll).settings() {
        let setting: String = sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(setting, value, "{name}");
    }

    // A second relay waits, and does not touch its session's settings.
    let mut other = relay::connect(&env.pool).await.unwrap();
    assert!(!relay::try_lock(&mut other, poll).await.unwrap());
    let idle: String = sqlx::query_scalar("SHOW idle_session_timeout")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(idle, "0");
    other.close().await.unwrap();
    conn.close().await.unwrap();
    env.finish().await;
}

#[tokio::test]
async fn marking_published_needs_the_relay_lock_on_this_session() {
    let env = TestEnv::start_with(|s| s.relay.enabled = false).await;
    let ids = unpublished_rows(&env).await;
    let poll = Duration::from_millis(env.settings.relay.poll_interval_ms);
    let mut holder = relay::connect(&env.pool).await.unwrap();
    assert!(relay::try_lock(&mut holder, poll).await.unwrap());
    let mut stranger = plain_session(&env).await;

    let marked = outbox::mark_published(&mut stranger, &ids, relay::LOCK_KEY)
        .await
        .unwrap();
    assert_eq!(marked, Marked::NotLockHolder);
    assert_eq!(pending(&env).await as usize, ids.len());

    // Once released, the former holder cannot mark either.
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(relay::LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let marked = outbox::mark_published(&mut holder, &ids, relay::LOCK_KEY)
        .await
        .unwrap();
    assert_eq!(marked, Marked::NotLockHolder);
    assert_eq!(pending(&env).await as usize, ids.len());

    assert!(relay::try_lock(&mut holder, poll).await.unwrap());
    let marked = outbox::mark_published(&mut holder, &ids, relay::LOCK_KEY)
        .await
        .unwrap();
    assert_eq!(marked, Marked::Done);
    assert_eq!(pending(&env).await, 0);

    stranger.close().await.unwrap();
    holder.close().await.unwrap();
    env.finish().await;
}

/// Until a statement of this test's database that starts with `statement`
/// waits for a lock another transaction holds.
async fn waits_for_a_lock(env: &TestEnv, statement: &str) {
    let pattern = format!("{statement}%");
    eventually(statement, || async {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND ltrim(query) LIKE $1)",
        )
        .bind(&pattern)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        waiting.then_some(())
    })
    .await;
}

/// Outbox rows of `c-1` and, of them, those whose stored event has `data`.
async fn contact_rows_with_data(env: &TestEnv) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE body::jsonb ? 'data') FROM outbox \
         WHERE tenant_id = 'acme' AND entity_id = 'c-1'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// An erasure's scrub and the relay's mark meet on the same rows: in either
/// order nothing of the entity's events stays behind. Flagged first, the
/// relay's mark waits and strips the events' data; marked first, the scrub
/// waits and deletes the then published rows.
#[tokio::test]
async fn an_erasure_and_the_relays_mark_meeting_leave_no_event_data() {
    use lifecycle_worker::domain::ids::EntityId;
    use lifecycle_worker::domain::outcome::EntityKind;
    use lifecycle_worker::store::erasure;

    let env = TestEnv::start_with(|s| s.relay.enabled = false).await;
    let ids = unpublished_rows(&env).await;
    let mut relay_session = locked_relay_session(&env).await;

    // The erasure flags the rows first and has not committed yet.
    let mut eraser = plain_session(&env).await;
    let mut erasing = eraser.begin().await.unwrap();
    let contact = EntityId::trusted("c-1");
    let scrubbed = erasure::scrub(&mut erasing, "acme", EntityKind::Contact, &contact)
        .await
        .unwrap();
    assert_eq!(
        scrubbed.outbox as usize,
        ids.len(),
        "unpublished rows flagged"
    );
    let marking = tokio::spawn({
        let ids = ids.clone();
        async move {
            let marked = outbox::mark_published(&mut relay_session, &ids, relay::LOCK_KEY)
                .await
                .unwrap();
            (marked, relay_session)
        }
    });
    waits_for_a_lock(&env, "WITH lock AS").await;
    erasing.commit().await.unwrap();
    let (marked, mut relay_session) = marking.await.unwrap();
    assert_eq!(marked, Marked::Done);
    assert_eq!(pending(&env).await, 0);
    assert_eq!(
        contact_rows_with_data(&env).await,
        (ids.len() as i64, 0),
        "published, then stripped of their data"
    );

    // The relay marks first and has not committed yet: the scrub waits for
    // it and deletes the rows, published by then.
    let reply = env
        .send(&env.command(
            "acme",
            "contact.deactivate",
            1,
            json!({"contact_id": "c-1"}),
        ))
        .await;
    assert_eq!(reply["outcome"], "applied");
    let first = ids.len();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox_unpublished ORDER BY id")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert!(!ids.is_empty());
    let mut marking = relay_session.begin().await.unwrap();
    let marked = outbox::mark_published(&mut marking, &ids, relay::LOCK_KEY)
        .await
        .unwrap();
    assert_eq!(marked, Marked::Done);
    let scrubbing = tokio::spawn(async move {
        let scrubbed = erasure::scrub(&mut eraser, "acme", EntityKind::Contact, &contact)
            .await
            .unwrap();
        (scrubbed, eraser)
    });
    waits_for_a_lock(&env, "UPDATE outbox_unpublished").await;
    marking.commit().await.unwrap();
    let (scrubbed, eraser) = scrubbing.await.unwrap();
    assert_eq!(
        scrubbed.outbox as usize,
        first + ids.len(),
        "every row of the contact deleted, published before or now"
    );
    assert_eq!(contact_rows_with_data(&env).await, (0, 0));

    eraser.close().await.unwrap();
    relay_session.close().await.unwrap();
    env.finish().await;
}

/// With a backlog of 50,000 events the work list's statistics do not know
/// of yet, the relay's read and mark (on the relay's session) still find
/// the rows they need by index: no scan of the backlog, no sort of it.
#[tokio::test]
async fn the_relay_reads_and_marks_by_index_whatever_the_backlog() {
    let env = TestEnv::start_with(|s| s.relay.enabled = false).await;
    unpublished_rows(&env).await;
    sqlx::query("ANALYZE outbox_unpublished")
        .execute(&env.pool)
        .await
        .unwrap();
    add_backlog(&env, 50_000).await;
    // The outbox is large and known to be; the work list is thought near empty.
    sqlx::query("ANALYZE outbox")
        .execute(&env.pool)
        .await
        .unwrap();
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM outbox_unpublished ORDER BY id LIMIT 500")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let mut session = relay::connect(&env.pool).await.unwrap();
    let read: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {}", outbox::PENDING_EVENTS_SQL))
        .bind(500i64)
        .bind(&ids[..10])
        .fetch_all(&mut session)
        .await
        .unwrap();
    let read = read.join("\n");
    assert!(
        read.contains("Index Scan using outbox_unpublished_in_order"),
        "{read}"
    );
    assert!(read.contains("Index Scan using outbox_pkey"), "{read}");
    assert!(
        !read.contains("Seq Scan") && !read.contains("Sort"),
        "{read}"
    );
    let mark: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {}", outbox::MARK_PUBLISHED_SQL))
        .bind(&ids)
        .bind(relay::LOCK_KEY)
        .fetch_all(&mut session)
        .await
        .unwrap();
    let mark = mark.join("\n");
    assert!(mark.contains("outbox_unpublished_in_order"), "{mark}");
    assert!(!mark.contains("Seq Scan"), "{mark}");
    session.close().await.unwrap();
    env.finish().await;
}

/// Publishing leaves dead entries in the work list's index that every read
/// would step over until autovacuum comes: the relay vacuums the list
/// itself every `relay.vacuum_every_events` events.
#[tokio::test]
async fn the_relay_vacuums_its_work_list_as_it_goes() {
    let env = TestEnv::start_with(|s| {
        s.relay.enabled = false;
        s.relay.vacuum_every_events = 1_000;
    })
    .await;
    unpublished_rows(&env).await;
    sqlx::query("ALTER TABLE outbox_unpublished SET (autovacuum_enabled = false)")
        .execute(&env.pool)
        .await
        .unwrap();
    add_backlog(&env, env.settings.relay.vacuum_every_events).await;
    let mut session = locked_relay_session(&env).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let relaying = tokio::spawn({
        let settings = env.settings.clone();
        let shutdown = shutdown.clone();
        async move {
            let wake = tokio::sync::Notify::new();
            relay::publish_while_locked(&mut session, &settings, &wake, &shutdown).await
        }
    });
    eventually("the work list drained and vacuumed", || async {
        let (left, vacuums): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox_unpublished), vacuum_count \
             FROM pg_stat_user_tables WHERE relname = 'outbox_unpublished'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap();
        (left == 0 && vacuums >= 1).then_some(())
    })
    .await;
    shutdown.cancel();
    relaying.await.unwrap().unwrap();
    env.finish().await;
}

#[tokio::test]
async fn a_relay_that_lost_its_lock_stops_and_marks_nothing() {
    let env = TestEnv::start_with(|s| s.relay.enabled = false).await;
    let ids = unpublished_rows(&env).await;
    let poll = Duration::from_millis(env.settings.relay.poll_interval_ms);
    // Another session took the lock: this relay's session does not hold it.
    let mut new_holder = relay::connect(&env.pool).await.unwrap();
    assert!(relay::try_lock(&mut new_holder, poll).await.unwrap());
    let mut stale = relay::connect(&env.pool).await.unwrap();

    let wake = tokio::sync::Notify::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ended = tokio::time::timeout(
        DEADLINE,
        relay::publish_while_locked(&mut stale, &env.settings, &wake, &shutdown),
    )
    .await
    .expect("the stale relay stops by itself");
    assert!(matches!(ended, Err(RelayError::LockLost)), "{ended:?}");
    assert_eq!(pending(&env).await as usize, ids.len());

    stale.close().await.unwrap();
    new_holder.close().await.unwrap();
    env.finish().await;
}
