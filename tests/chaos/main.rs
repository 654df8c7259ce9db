//! Fault tests: worker processes killed with SIGKILL, stopped with SIGTERM,
//! several at once, and the shared RabbitMQ and Postgres restarted under
//! load. They touch the shared services, so they run one at a time (a
//! process-wide lock) and restore the services even when they fail.
//!
//! Every test checks the same promise against a model of the contract:
//! commands carry unique `issued_at`s and are published in shuffled order,
//! so per aspect the command with the latest `issued_at` must win whatever
//! happened; every command has exactly one recorded outcome; and the events
//! cover every entity version with no gap, each version from one command.

#[allow(dead_code)]
#[path = "../it/helpers/mod.rs"]
mod helpers;

mod cluster;
mod faults;
mod model;
mod schedule;
mod services;
mod switchover;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use helpers::{eventually_within, TestEnv};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use lifecycle_worker::amqp;
use lifecycle_worker::config::Settings;
use serde_json::Value;
use tokio::sync::Mutex;

pub use model::{workload, Workload, ROLES};

/// Chaos tests share the broker and the database server: one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A durable queue bound to `{p}.events`: survives broker restarts, so no
/// event published in the test can be missed by it.
pub async fn event_queue(env: &TestEnv, ch: &Channel) -> String {
    let name = format!("{}.test-events", env.settings.amqp.prefix);
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .unwrap();
    ch.queue_bind(
        name.as_str().into(),
        env.names.events.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    name
}

/// Reads events from the durable queue until `expected` distinct ids arrived.
pub async fn collect_events(ch: &Channel, queue: &str, expected: usize) -> Vec<Value> {
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    let mut ids = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ids.len() < expected {
        let d = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} events arrived", ids.len()))
            .expect("consumer open")
            .expect("delivery");
        let v: Value = serde_json::from_slice(&d.data).unwrap();
        ids.insert(v["id"].as_str().unwrap().to_owned());
        events.push(v);
    }
    events
}

/// Publishes commands with confirms pipelined, retrying while the broker is away.
pub async fn publish_all(settings: &Settings, cmds: &[Value]) {
    let mut pending: Vec<&Value> = cmds.iter().collect();
    while !pending.is_empty() {
        match publish_once(settings, &pending).await {
            // A cluster may refuse (nack) what it cannot enqueue while a
            // queue elects its leader: those go again.
            Ok(refused) => {
                if !refused.is_empty() {
                    eprintln!(
                        "the broker refused {} commands; publishing them again",
                        refused.len()
                    );
                }
                pending = refused;
            }
            // The broker is restarting: publish everything again (the
            // inbox makes a command sent twice count once).
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Publishes `cmds` on a new connection and returns those the broker nacked.
async fn publish_once<'a>(
    settings: &Settings,
    cmds: &[&'a Value],
) -> Result<Vec<&'a Value>, lapin::Error> {
    let names = amqp::Names::new(&settings.amqp.prefix);
    let conn = amqp::connect(&settings.amqp, "chaos-publisher").await?;
    let ch = amqp::confirm_channel(&conn).await?;
    let mut confirms = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        let confirm = ch
            .basic_publish(
                names.commands.as_str().into(),
                helpers::routing_key_of(cmd).as_str().into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(cmd).unwrap(),
                amqp::json_properties(),
            )
            .await?;
        confirms.push((*cmd, confirm));
    }
    let mut refused = Vec::new();
    for (cmd, confirm) in confirms {
        if !confirm.await?.is_ack() {
            refused.push(cmd);
        }
    }
    let _ = conn.close(200, "published".into()).await;
    Ok(refused)
}

pub async fn processed(env: &TestEnv) -> i64 {
    loop {
        match sqlx::query_scalar(
            "SELECT count(*) FROM processed_commands WHERE outcome IS NOT NULL",
        )
        .fetch_one(&env.pool)
        .await
        {
            Ok(n) => return n,
            // Postgres is restarting.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Fault tests wait longer than the usual deadline: after a restart or a
/// cluster node's return, consumers reconnect with backoff and quorum
/// queues may elect leaders; a command that never gets processed still
/// fails the test.
pub async fn wait_processed(env: &TestEnv, n: i64) {
    let what = format!("{n} processed commands");
    eventually_within(Duration::from_secs(120), &what, || async {
        (processed(env).await >= n).then_some(())
    })
    .await;
}

/// Publishes the workload's setup and waits until it is applied: roles
/// first, since competing workers could otherwise take a user naming a role
/// before the role exists (`role_not_found`).
pub async fn set_up(env: &TestEnv, w: &Workload) {
    let (roles, rest) = w.setup.split_at(ROLES);
    publish_all(&env.settings, roles).await;
    wait_processed(env, ROLES as i64).await;
    publish_all(&env.settings, rest).await;
    wait_processed(env, w.setup.len() as i64).await;
}

/// The checks every fault test ends with. Returns the number of events.
pub async fn check_outcome(env: &TestEnv, w: &Workload, ch: &Channel, events_queue: &str) -> usize {
    let total = (w.setup.len() + w.load.len()) as i64;
    wait_processed(env, total).await;
    assert_eq!(
        processed(env).await,
        total,
        "every command has exactly one recorded outcome"
    );
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(dead, 0, "nothing dead-lettered");

    // Final state equals the model.
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT 'contact', state FROM contacts WHERE state IS NOT NULL \
         UNION ALL SELECT 'user', state FROM users WHERE state IS NOT NULL",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let mut versions: HashMap<String, u64> = HashMap::new();
    for (kind, state) in &rows {
        let id = state["id"].as_str().unwrap().to_owned();
        let want = &w.expected[&(kind.clone(), id.clone())];
        for (field, value) in want {
            assert_eq!(&state[field], value, "{kind} {id} {field}");
        }
        versions.insert(format!("{kind}/{id}"), state["version"].as_u64().unwrap());
    }
    assert_eq!(rows.len(), w.expected.len());

    // Events: every version of every entity, no gap, one command per version.
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let events = collect_events(ch, events_queue, outbox as usize).await;
    let mut seen = HashSet::new();
    let mut by_version: HashMap<(String, u64), HashSet<String>> = HashMap::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in &events {
        if !seen.insert(e["id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let subject = e["subject"].as_str().unwrap().to_owned();
        let v = e["entityversion"].as_u64().unwrap();
        let prev = last.insert(subject.clone(), v).unwrap_or(0);
        assert!(v >= prev, "{subject}: version {v} after {prev}");
        by_version
            .entry((subject, v))
            .or_default()
            .insert(e["commandid"].as_str().unwrap().to_owned());
    }
    for ((subject, v), commands) in &by_version {
        assert_eq!(commands.len(), 1, "{subject} v{v} from {commands:?}");
    }
    for (subject, version) in &versions {
        for v in 1..=*version {
            assert!(
                by_version.contains_key(&(subject.clone(), v)),
                "{subject} v{v} has no event"
            );
        }
    }
    assert_eq!(
        by_version
            .keys()
            .filter(|(s, _)| s.starts_with("role/"))
            .count(),
        ROLES
    );
    seen.len()
}
