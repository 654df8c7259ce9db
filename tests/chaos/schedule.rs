//! Scheduled commands under faults (contract section 12): 1,000 commands
//! due within the same few seconds apply exactly once, in per-entity
//! version order, whether a worker is killed mid-way or Postgres restarts
//! at the due time.

use std::collections::HashMap;
use std::time::Instant;

use crate::faults::fresh_channel;
use crate::helpers::{allow_mass_changes, eventually, spawn_worker, TestEnv};
use crate::services::{postgres, RestoreServices};
use crate::{collect_events, event_queue, processed, publish_all, serial, wait_processed};
use lifecycle_worker::domain::event::format_time;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

const CONTACTS: usize = 250;
/// Per contact, in issued_at order: status B, deactivate, status C, reactivate.
const STEPS: usize = 4;

struct Scheduled {
    setup: Vec<Value>,
    commands: Vec<Value>,
}

/// Contacts, then their commands due from `due` on over about four
/// seconds, each step a second after the one before.
fn scheduled(due: OffsetDateTime) -> Scheduled {
    let base = time::macros::datetime!(2026-11-22 08:00 UTC);
    let setup = (0..CONTACTS)
        .map(|j| {
            json!({"command_id": format!("setup-{j}"), "type": "contact.upsert", "tenant": "acme",
                   "issued_at": format_time(base), "payload": {"contact_id": format!("c-{j}"), "first_name": "S"}})
        })
        .collect();
    let mut commands = Vec::new();
    for j in 0..CONTACTS {
        for k in 0..STEPS {
            let (kind, payload) = match k {
                0 => (
                    "contact.change_status",
                    json!({"contact_id": format!("c-{j}"), "status": "B"}),
                ),
                1 => (
                    "contact.deactivate",
                    json!({"contact_id": format!("c-{j}")}),
                ),
                2 => (
                    "contact.change_status",
                    json!({"contact_id": format!("c-{j}"), "status": "C"}),
                ),
                _ => (
                    "contact.reactivate",
                    json!({"contact_id": format!("c-{j}")}),
                ),
            };
            let issued = base + Duration::minutes(1 + k as i64) + Duration::milliseconds(j as i64);
            let at =
                due + Duration::seconds(k as i64) + Duration::milliseconds((j % 10) as i64 * 100);
            commands.push(json!({"command_id": format!("s-{j}-{k}"), "type": kind, "tenant": "acme",
                "issued_at": format_time(issued), "effective_at": format_time(at), "payload": payload}));
        }
    }
    Scheduled { setup, commands }
}

/// Due commands that have their final outcome.
async fn ran(env: &TestEnv) -> i64 {
    loop {
        match sqlx::query_scalar(
            "SELECT count(*) FROM processed_commands WHERE command_id LIKE 's-%' AND outcome <> 'scheduled'",
        )
        .fetch_one(&env.pool)
        .await
        {
            Ok(n) => return n,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// Each command applied once, one event set each, per-entity versions in
/// order with no gap, and the state the last command of each aspect says.
async fn check_exactly_once(
    env: &TestEnv,
    s: &Scheduled,
    ch: &lapin::Channel,
    queue: &str,
) -> usize {
    eventually("every due command ran", || async {
        (ran(env).await == s.commands.len() as i64).then_some(())
    })
    .await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_commands")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "nothing left scheduled");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, count(*) FROM processed_commands WHERE command_id LIKE 's-%' GROUP BY 1",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    for (outcome, _) in &outcomes {
        assert!(
            ["applied", "stale", "unchanged"].contains(&outcome.as_str()),
            "{outcomes:?}"
        );
    }
    // The outbox in id order: per contact, versions rise by one, each from
    // one command; no command's events twice.
    let rows: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT entity_id, version, body->>'commandid', event_type FROM outbox \
         WHERE entity_kind = 'contact' AND event_type <> 'CommandScheduled' ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let mut last: HashMap<String, (i64, String)> = HashMap::new();
    let mut event_sets: HashMap<(String, String), usize> = HashMap::new();
    for (contact, version, command, event_type) in &rows {
        *event_sets
            .entry((command.clone(), event_type.clone()))
            .or_default() += 1;
        if let Some((v, c)) = last.get(contact) {
            if v == version {
                assert_eq!(c, command, "{contact} v{version} from two commands");
            } else {
                assert_eq!(*version, v + 1, "{contact}: v{version} after v{v}");
            }
        }
        last.insert(contact.clone(), (*version, command.clone()));
    }
    for (key, n) in &event_sets {
        assert_eq!(*n, 1, "{key:?} published {n} times");
    }
    let states: Vec<Value> =
        sqlx::query_scalar("SELECT state FROM contacts WHERE state IS NOT NULL")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(states.len(), CONTACTS);
    for state in &states {
        assert_eq!(state["status"], "C", "{state}");
        assert_eq!(state["active"], true, "{state}");
    }
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    collect_events(ch, queue, outbox as usize).await.len()
}

async fn schedule_all(env: &TestEnv, s: &Scheduled) {
    publish_all(&env.settings, &s.setup).await;
    wait_processed(env, CONTACTS as i64).await;
    publish_all(&env.settings, &s.commands).await;
    wait_processed(env, (CONTACTS + s.commands.len()) as i64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_commands_apply_once_across_three_workers_when_one_is_killed() {
    let _serial = serial().await;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let s = scheduled(OffsetDateTime::now_utc() + Duration::seconds(8));
    let mut workers: Vec<_> = (0..3).map(|_| spawn_worker(&env)).collect();
    schedule_all(&env, &s).await;
    assert_eq!(ran(&env).await, 0, "nothing ran before its time");
    eventually("a third of the due commands ran", || async {
        (ran(&env).await >= s.commands.len() as i64 / 3).then_some(())
    })
    .await;
    let at = ran(&env).await;
    workers[0].kill9().await;
    let events = check_exactly_once(&env, &s, &ch, &queue).await;
    eprintln!(
        "scheduled kill test: {} commands due within 4 s over 3 workers, kill -9 at {at} run, {events} events, {:.1}s",
        s.commands.len(),
        started.elapsed().as_secs_f64()
    );
    for w in workers.iter_mut().skip(1) {
        let _ = w.terminate().await;
    }
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_at_the_due_time_loses_nothing_and_repeats_nothing() {
    let _serial = serial().await;
    let _restore = RestoreServices;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let due = OffsetDateTime::now_utc() + Duration::seconds(8);
    let s = scheduled(due);
    let workers: Vec<_> = (0..2).map(|_| spawn_worker(&env)).collect();
    schedule_all(&env, &s).await;
    let before = processed(&env).await;
    // Down from a second before the first command is due to after it.
    let wait = (due - OffsetDateTime::now_utc() - Duration::seconds(1)).max(Duration::ZERO);
    tokio::time::sleep(std::time::Duration::try_from(wait).unwrap()).await;
    postgres("stop");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    postgres("start");
    let events = check_exactly_once(&env, &s, &ch, &queue).await;
    eprintln!(
        "scheduled postgres restart test: {} commands, Postgres down across their due time ({before} processed before), {events} events, {:.1}s",
        s.commands.len(),
        started.elapsed().as_secs_f64()
    );
    drop(workers);
    env.finish().await;
}
