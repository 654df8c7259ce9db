//! Chaos soak (`make soak`, issue 26 item 4): the worker binary as
//! `--replicas` processes (2) on a fresh database and prefix, a paced load
//! of mixed contact and user commands (the fault tests' model,
//! `tests/chaos/model.rs`, so the final state is known) for `--minutes`,
//! and faults on a seeded schedule printed at the start: a replica killed
//! with SIGKILL and started again, RabbitMQ's application stopped and
//! started (with `--cluster`, a node of `scripts/rabbitmq-cluster.sh`),
//! Postgres stopped and started, the relay's session terminated.
//!
//! At the end it waits until every command is processed or dead-lettered
//! and every outbox row arrived as an event on a durable queue, then counts
//! from the replies, the events and the database what was lost, applied
//! twice, missing, duplicated or out of order, and prints a summary and one
//! JSON line. It exits 1 unless every figure that must be 0 is.
//!
//! It stops the machine's shared services: run it when nothing else uses
//! them (a lock held around it would pass, by inheritance, to the Postgres
//! it starts again).

#[path = "soak/faults.rs"]
mod faults;
#[allow(dead_code)]
#[path = "../tests/it/helpers/mod.rs"]
mod helpers;
#[path = "soak/load.rs"]
mod load;
#[path = "../tests/chaos/model.rs"]
mod model;
#[allow(dead_code)]
#[path = "../tests/chaos/services.rs"]
mod services;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use lifecycle_worker::amqp::{self, Names};
use lifecycle_worker::config::Settings;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::time::Instant;

use faults::{peak_rss_mb, Replicas};
use load::{Cmd, Shared, Tally};

struct Args {
    minutes: f64,
    seed: u64,
    /// Load commands per second.
    rate: f64,
    contacts: usize,
    users: usize,
    replicas: usize,
    /// Mean seconds between faults.
    fault_gap: f64,
    cluster: bool,
}

fn args() -> Args {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut a = Args {
        minutes: 30.0,
        seed: clock % 1_000_000_000,
        rate: 100.0,
        contacts: 2_000,
        users: 500,
        replicas: 2,
        fault_gap: 20.0,
        cluster: false,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        if argv[i] == "--cluster" {
            a.cluster = true;
            i += 1;
            continue;
        }
        let value = argv.get(i + 1).and_then(|v| v.parse::<f64>().ok());
        match (argv[i].as_str(), value) {
            ("--minutes", Some(v)) => a.minutes = v,
            ("--seed", Some(v)) => a.seed = v as u64,
            ("--rate", Some(v)) => a.rate = v.max(1.0),
            ("--contacts", Some(v)) => a.contacts = (v as usize).max(1),
            ("--users", Some(v)) => a.users = (v as usize).max(1),
            ("--replicas", Some(v)) => a.replicas = (v as usize).max(1),
            ("--fault-gap", Some(v)) => a.fault_gap = v.max(1.0),
            // cargo bench passes --bench; anything else is ignored.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// How long the commands may take to be processed, and the events to
/// arrive, once the load and the faults are over.
const SETTLE: Duration = Duration::from_secs(300);
/// When the replicas' peak RSS is first read, after their start.
const RSS_START: Duration = Duration::from_secs(30);
/// Commands are shuffled within windows of this many (10 s at 100/s).
const WINDOW: usize = 1_000;

/// The model shuffles the whole load, which over a long run would make
/// most commands stale: here they go in `issued_at` order (their index in
/// the id) shuffled within windows, so most apply and arrival order still
/// differs from issue order. The model's final state does not depend on
/// the order.
fn issued_nearly_in_order(mut cmds: Vec<Cmd>, seed: u64) -> Vec<Cmd> {
    let index = |c: &Cmd| -> u64 {
        let digits = c.id.rsplit('-').next().unwrap_or_default();
        digits.parse().expect("model ids end in their index")
    };
    cmds.sort_by_key(index);
    let mut rng = model::Lcg(seed.rotate_left(17));
    for window in cmds.chunks_mut(WINDOW) {
        for i in (1..window.len()).rev() {
            window.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    cmds
}

/// Removes the soak's database and broker objects when it ends, even by
/// panicking; first restores the services, which a panic may have left
/// stopped mid-fault.
struct Cleanup {
    settings: Settings,
    db: String,
    replies: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        services::ensure_services();
        let (settings, db, replies) =
            (self.settings.clone(), self.db.clone(), self.replies.clone());
        // Drop cannot await: a runtime of its own on another thread.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    if let Ok(conn) = amqp::connect(&settings.amqp, "soak-cleanup").await {
                        if let Ok(ch) = conn.create_channel().await {
                            let _ = ch
                                .queue_delete(
                                    replies.as_str().into(),
                                    QueueDeleteOptions::default(),
                                )
                                .await;
                        }
                        let _ = conn.close(200, "cleaned".into()).await;
                    }
                    // The topology, the `{p}.test-events` queue and the database.
                    helpers::cleanup(settings, db).await;
                })
        })
        .join();
    }
}

struct Soak {
    settings: Settings,
    names: Names,
    pool: PgPool,
    replies: String,
    events: String,
    _cleanup: Cleanup,
}

impl Soak {
    async fn prepare(a: &Args) -> Soak {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let db = format!("lw_soak_{id}");
        let mut settings = Settings::default();
        settings.database.url =
            SecretString::from(format!("postgres://postgres@127.0.0.1:5432/{db}"));
        settings.amqp.prefix = format!("soak{id}");
        // The load deactivates and revokes thousands of times on purpose:
        // the guardrail stays on, with room for all of it.
        helpers::allow_mass_changes(&mut settings);
        if a.cluster {
            settings.amqp.urls = faults::cluster_nodes()
                .into_iter()
                .map(SecretString::from)
                .collect();
        }
        let names = Names::new(&settings.amqp.prefix);
        let replies = format!("{}.soak-replies", settings.amqp.prefix);
        // Named as the fault tests' queue, so `helpers::cleanup` removes it.
        let events = format!("{}.test-events", settings.amqp.prefix);
        let cleanup = Cleanup {
            settings: settings.clone(),
            db,
            replies: replies.clone(),
        };
        let pool = lifecycle_worker::store::prepare(&settings)
            .await
            .expect("database prepared");
        let conn = amqp::connect(&settings.amqp, "soak").await.expect("broker");
        let ch = conn.create_channel().await.expect("channel");
        amqp::declare_topology(&ch, &names, settings.amqp.delivery_limit)
            .await
            .expect("topology");
        load::durable_queue(&ch, &replies, None)
            .await
            .expect("reply queue");
        load::durable_queue(&ch, &events, Some(&names.events))
            .await
            .expect("event queue");
        let _ = conn.close(200, "declared".into()).await;
        Soak {
            settings,
            names,
            pool,
            replies,
            events,
            _cleanup: cleanup,
        }
    }

    /// A count, asked again while Postgres restarts.
    async fn count(&self, sql: &str) -> i64 {
        loop {
            match sqlx::query_scalar(sql).fetch_one(&self.pool).await {
                Ok(n) => return n,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Commands with a recorded outcome or a dead letter.
    async fn settled(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM (SELECT command_id FROM processed_commands \
             WHERE outcome IS NOT NULL UNION SELECT command_id FROM dead_letters \
             WHERE command_id IS NOT NULL) s",
        )
        .await
    }

    async fn publish(&self, cmds: &[Cmd], rate: Option<f64>, tally: &Shared) {
        load::publish(
            &self.settings,
            &self.names.commands,
            cmds,
            rate,
            &self.replies,
            tally,
        )
        .await;
    }
}

/// Polls `done` every half second until it holds or `limit` passed.
async fn wait_until<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn main() {
    let a = args();
    let passed = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(soak(a));
    // After every guard has run: the database and queues are gone, the
    // services up.
    if !passed {
        std::process::exit(1);
    }
}

async fn soak(a: Args) -> bool {
    let seconds = a.minutes * 60.0;
    let commands = (seconds * a.rate).round() as usize;
    let model::Workload {
        setup,
        load: work,
        expected,
    } = model::workload(a.contacts, a.users, commands, a.seed);
    let setup: Vec<Cmd> = setup.iter().map(Cmd::new).collect();
    let work = issued_nearly_in_order(work.iter().map(Cmd::new).collect(), a.seed);
    let plan = faults::schedule(a.seed, seconds, a.fault_gap, a.replicas);
    println!(
        "chaos soak: seed {}, {} min of {} commands/s ({commands} commands after {} of setup) over {} contacts and {} users, {} replicas, {}",
        a.seed,
        a.minutes,
        a.rate,
        setup.len(),
        a.contacts,
        a.users,
        a.replicas,
        if a.cluster {
            "on the three-node cluster (a node stopped and started for a broker fault)"
        } else {
            "on the local broker"
        }
    );
    println!(
        "fault schedule, {} faults (seconds after the load starts; mean gap {} s; the same again with --seed {}):",
        plan.len(),
        a.fault_gap,
        a.seed
    );
    for (at, fault) in &plan {
        println!("  {at:8.1}  {}", fault.describe(a.cluster));
    }

    let soak = Soak::prepare(&a).await;
    let tally: Shared = Shared::default();
    let replies = load::consume(
        soak.settings.clone(),
        soak.replies.clone(),
        load::reply_sink(tally.clone()),
    );
    let events = load::consume(
        soak.settings.clone(),
        soak.events.clone(),
        load::event_sink(tally.clone()),
    );
    let logs = std::env::temp_dir().join(format!("lw-soak-{}", soak.settings.amqp.prefix));
    let mut replicas = Replicas::start(&soak.settings, a.replicas, logs.clone());
    let spawned = Instant::now();
    println!("replica logs (warnings and errors): {}", logs.display());

    // Roles first: a user naming a role could otherwise come before it.
    let (roles, rest) = setup.split_at(model::ROLES);
    let s = &soak;
    for (part, total) in [(roles, roles.len()), (rest, setup.len())] {
        soak.publish(part, None, &tally).await;
        let total = total as i64;
        let applied = wait_until(SETTLE, || async move { s.settled().await >= total }).await;
        assert!(applied, "the setup was not processed in {SETTLE:?}");
    }
    tokio::time::sleep_until(spawned + RSS_START).await;
    let rss_start: Vec<Option<f64>> = (0..a.replicas)
        .map(|slot| replicas.pid(slot).and_then(peak_rss_mb))
        .collect();

    println!("setup applied; load and faults start");
    let started = Instant::now();
    let ((), (faults_done, skipped)) = tokio::join!(
        soak.publish(&work, Some(a.rate), &tally),
        faults::run_schedule(&plan, started, &mut replicas, &soak.pool, a.cluster),
    );
    let loaded = started.elapsed();
    let sent = tally.lock().unwrap().sent.len() as i64;
    println!(
        "load and faults over after {:.0} s; waiting for {sent} commands to be processed",
        loaded.as_secs_f64()
    );
    let settled = wait_until(SETTLE, || async move { s.settled().await >= sent }).await;
    let outbox = soak.count("SELECT count(*) FROM outbox").await as usize;
    let t = &tally;
    let received = wait_until(SETTLE, || async move {
        t.lock().unwrap().event_ids.len() >= outbox
    })
    .await;
    if !settled || !received {
        println!(
            "after {SETTLE:?}: {}{}",
            if settled {
                ""
            } else {
                "not every command processed; "
            },
            if received {
                ""
            } else {
                "not every outbox row arrived as an event"
            }
        );
        // Where the missing ones are: not yet published, or in the queue.
        let unpublished = soak.count("SELECT count(*) FROM outbox_unpublished").await;
        let queued = std::process::Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "name", "messages", "consumers"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let queued: Vec<&str> = queued
            .lines()
            .filter(|l| l.contains(&soak.events))
            .collect();
        println!(
            "outbox rows unpublished {unpublished}; {} received; the event queue (name, messages, consumers): {queued:?}",
            tally.lock().unwrap().event_ids.len()
        );
    }
    let rss_end: Vec<Option<f64>> = (0..a.replicas)
        .map(|slot| replicas.pid(slot).and_then(peak_rss_mb))
        .collect();
    drop(replicas);
    replies.abort();
    events.abort();

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let mut f = measure(&soak, &tally, &expected).await;
    let rss: serde_json::Map<String, Value> = rss_start
        .iter()
        .zip(&rss_end)
        .enumerate()
        .map(|(slot, (s, e))| {
            let mb = |v: &Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
            (
                format!("replica-{slot}"),
                json!({"start": mb(s), "end": mb(e)}),
            )
        })
        .collect();
    let faults_total: u64 = faults_done.values().sum();
    let extra = json!({
        "faults": faults_done,
        "faults_skipped": skipped,
        "rss_mb": rss,
        "seed": a.seed,
        "minutes": a.minutes,
        "rate": a.rate,
        "replicas": a.replicas,
        "cluster": a.cluster,
        "load_seconds": (loaded.as_secs_f64() * 10.0).round() / 10.0,
    });
    if let (Value::Object(f), Value::Object(x)) = (&mut f, extra) {
        f.extend(x);
    }
    let n = |k: &str| f[k].as_u64().unwrap_or(u64::MAX);
    println!(
        "{} commands sent ({} published again), {} replies, {} with an outcome {}, {} dead-lettered",
        n("commands_sent"),
        n("commands_republished"),
        n("replies"),
        n("applied"),
        f["outcomes"],
        n("dead_lettered")
    );
    println!(
        "lost {}, applied twice {}, final states unlike the model {}; {} events ({} redelivered): \
         missing {}, duplicated {}, versions from two commands {}, order violations {}",
        n("lost"),
        n("applied_twice"),
        n("state_mismatches"),
        n("events"),
        n("event_redeliveries"),
        n("events_missing"),
        n("events_duplicated"),
        n("version_conflicts"),
        n("order_violations")
    );
    println!(
        "{faults_total} faults {} ({skipped} skipped); peak RSS MB per replica (start, end): {}",
        f["faults"], f["rss_mb"]
    );
    // What must be 0 whatever the faults (a dead letter is reported, not failed).
    let failed: Vec<&str> = [
        "lost",
        "applied_twice",
        "events_missing",
        "order_violations",
        "events_duplicated",
        "version_conflicts",
        "state_mismatches",
    ]
    .into_iter()
    .filter(|k| n(k) != 0)
    .collect();
    if failed.is_empty() {
        println!("PASS");
        let _ = std::fs::remove_dir_all(&logs);
    } else {
        println!(
            "FAIL: {} not 0; replica logs kept in {}",
            failed.join(", "),
            logs.display()
        );
    }
    println!("{f}");
    failed.is_empty()
}

/// The figures, from the tally, the inbox, the dead letters, the entity
/// tables and the model.
async fn measure(
    soak: &Soak,
    t: &Tally,
    expected: &BTreeMap<(String, String), BTreeMap<String, Value>>,
) -> Value {
    let pool = &soak.pool;
    let processed: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT command_id FROM processed_commands WHERE outcome IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("inbox")
    .into_iter()
    .collect();
    let outcomes: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT outcome, count(*) FROM processed_commands WHERE outcome IS NOT NULL GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("outcomes")
    .into_iter()
    .collect();
    let dead: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT command_id FROM dead_letters WHERE command_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("dead letters")
    .into_iter()
    .collect();
    let lost = t
        .sent
        .iter()
        .filter(|id| !processed.contains(*id) && !dead.contains(*id))
        .count();
    let replies = t.sent.iter().filter(|id| t.replies.contains(*id)).count();

    // Events, in arrival order; a second receipt of an id is a redelivery.
    let mut seen = HashSet::new();
    let mut redeliveries = 0;
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut order_violations = 0;
    let mut ids_by_event: HashMap<(&str, u64, &str), HashSet<&str>> = HashMap::new();
    let mut commands_by_version: HashMap<(&str, u64), HashSet<&str>> = HashMap::new();
    let mut versions_by_command: HashMap<(&str, &str), HashSet<u64>> = HashMap::new();
    for e in &t.events {
        if !seen.insert(e.id.as_str()) {
            redeliveries += 1;
            continue;
        }
        let before = last.insert(e.subject.as_str(), e.version).unwrap_or(0);
        if e.version < before {
            order_violations += 1;
        }
        ids_by_event
            .entry((e.subject.as_str(), e.version, e.kind.as_str()))
            .or_default()
            .insert(e.id.as_str());
        commands_by_version
            .entry((e.subject.as_str(), e.version))
            .or_default()
            .insert(e.command.as_str());
        versions_by_command
            .entry((e.command.as_str(), e.subject.as_str()))
            .or_default()
            .insert(e.version);
    }
    let events_duplicated: usize = ids_by_event.values().map(|ids| ids.len() - 1).sum();
    let version_conflicts = commands_by_version.values().filter(|c| c.len() > 1).count();
    let applied_twice = versions_by_command
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|((c, _), _)| *c)
        .collect::<HashSet<_>>()
        .len();

    // Every version of every entity has an event.
    let versions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'contact/' || contact_id, version FROM contacts WHERE state IS NOT NULL \
         UNION ALL SELECT 'user/' || user_id, version FROM users WHERE state IS NOT NULL \
         UNION ALL SELECT 'role/' || role_id, version FROM roles",
    )
    .fetch_all(pool)
    .await
    .expect("entity versions");
    let events_missing: usize = versions
        .iter()
        .map(|(subject, v)| {
            (1..=*v as u64)
                .filter(|v| !commands_by_version.contains_key(&(subject.as_str(), *v)))
                .count()
        })
        .sum();

    // Final states against the model: the latest issued_at per aspect wins.
    let states: Vec<(String, Value)> = sqlx::query_as(
        "SELECT 'contact', state FROM contacts WHERE state IS NOT NULL \
         UNION ALL SELECT 'user', state FROM users WHERE state IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("entity states");
    let found: HashMap<(String, String), &Value> = states
        .iter()
        .map(|(kind, s)| ((kind.clone(), s["id"].as_str().unwrap_or("").to_owned()), s))
        .collect();
    let state_mismatches = expected
        .iter()
        .filter(|(key, fields)| match found.get(*key) {
            Some(state) => fields.iter().any(|(k, v)| &state[k] != v),
            None => true,
        })
        .count();

    json!({
        "commands_sent": t.sent.len(),
        "commands_republished": t.republished,
        "replies": replies,
        "applied": processed.len(),
        "outcomes": outcomes,
        "dead_lettered": dead.len(),
        "lost": lost,
        "applied_twice": applied_twice,
        "state_mismatches": state_mismatches,
        "events": seen.len(),
        "event_redeliveries": redeliveries,
        "events_missing": events_missing,
        "events_duplicated": events_duplicated,
        "version_conflicts": version_conflicts,
        "order_violations": order_violations,
    })
}
