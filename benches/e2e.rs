//! End-to-end benchmark (`make bench`): the real worker binary against the
//! local Postgres and RabbitMQ, from a fresh database and prefix.
//!
//! 1. upsert `--contacts` contacts (no email, so each command has one event);
//! 2. flood: publish `--commands` commands as fast as the broker confirms,
//!    cycling deactivate, change_status B, reactivate, change_status C, and
//!    time from the first publish to the last matching event on `{p}.events`;
//! 3. paced: the same at `--rate` commands/s, for latency under moderate load,
//!    split into its stages by the worker's metrics; then the relay alone
//!    drains 50,000 events committed at once (`e2e/scale.rs`);
//! 4. erasure: a contact with 10,000 activity rows and 1,000 dead letters
//!    is erased while other commands flow at `--rate` (see `e2e/erasure.rs`);
//! 5. scheduling: 1,000 commands due at one instant, how late they apply,
//!    and the cost of waiting with 1,000,000 scheduled (`e2e/schedule.rs`);
//! 6. `dlq groups` over 100,000 dead letters, and the console's pages
//!    over them (`e2e/dead_letters.rs`);
//! 7. baseline: a broker-only echo (consume -> publish event with confirm ->
//!    ack, no database) under the same flood, the message path's own limit.
//!
//! Prints a table and one JSON line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use lifecycle_worker::amqp::{self, Names};
use lifecycle_worker::config::Settings;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio::sync::watch;

#[path = "e2e/dead_letters.rs"]
mod dead_letters;
#[path = "e2e/erasure.rs"]
mod erasure;
#[path = "e2e/scale.rs"]
mod scale;
#[path = "e2e/schedule.rs"]
mod schedule;

struct Args {
    contacts: usize,
    commands: usize,
    rate: u64,
    paced_commands: usize,
    /// On the three-node cluster of `scripts/rabbitmq-cluster.sh`: the
    /// benchmark (which declares the queues, so they are led there) on
    /// node 1, the worker on node 2.
    cluster: bool,
    /// Worker processes on the same queues (issue 17: does throughput
    /// hold with replicas, and where does the one relay limit it?).
    replicas: usize,
    /// Preload 1,000,000 contacts, 10,000,000 inbox rows and 5,000,000
    /// published outbox rows before the runs (flat cost as data grows).
    preload: bool,
    /// Flood, paced and echo only: no erasure, scheduling or dead-letter phase.
    quick: bool,
    /// Another broker than the local one (`--amqp-url URL`), for example a
    /// node started with other Erlang VM flags.
    amqp_url: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        contacts: 2_000,
        commands: 20_000,
        rate: 2_000,
        paced_commands: 10_000,
        cluster: false,
        replicas: 1,
        preload: false,
        quick: false,
        amqp_url: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let flag = match argv[i].as_str() {
            "--cluster" => Some(&mut a.cluster),
            "--preload" => Some(&mut a.preload),
            "--quick" => Some(&mut a.quick),
            _ => None,
        };
        if let Some(flag) = flag {
            *flag = true;
            i += 1;
            continue;
        }
        if argv[i] == "--amqp-url" {
            a.amqp_url = argv.get(i + 1).cloned();
            i += 2;
            continue;
        }
        let value = argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (argv[i].as_str(), value) {
            ("--contacts", Some(v)) => a.contacts = v as usize,
            ("--commands", Some(v)) => a.commands = v as usize,
            ("--rate", Some(v)) => a.rate = v,
            ("--paced-commands", Some(v)) => a.paced_commands = v as usize,
            ("--replicas", Some(v)) => a.replicas = (v as usize).max(1),
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

/// Receive times of events by command id, with a watch to wait on.
#[derive(Clone)]
struct Arrivals {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    count: watch::Sender<usize>,
    /// Wall-clock time of each command's first event other than
    /// `CommandScheduled`: when a scheduled command was applied.
    applied: Arc<Mutex<HashMap<String, time::OffsetDateTime>>>,
}

impl Arrivals {
    fn new() -> Self {
        Arrivals {
            seen: Arc::default(),
            count: watch::channel(0).0,
            applied: Arc::default(),
        }
    }

    async fn wait_for(&self, n: usize, deadline: Duration) -> bool {
        let mut rx = self.count.subscribe();
        let reached = tokio::time::timeout(deadline, rx.wait_for(|c| *c >= n)).await;
        reached.is_ok()
    }
}

async fn listen_events(conn: &Connection, exchange: &str, arrivals: Arrivals) {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.queue_bind(
        q.name().clone(),
        exchange.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    tokio::spawn(async move {
        let _keep = ch;
        while let Some(Ok(d)) = consumer.next().await {
            let now = Instant::now();
            let v: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
            if let (Some(c), false) = (v["commandid"].as_str(), v["type"] == "CommandScheduled") {
                let wall = time::OffsetDateTime::now_utc();
                arrivals
                    .applied
                    .lock()
                    .unwrap()
                    .entry(c.to_owned())
                    .or_insert(wall);
            }
            if let Some(c) = v["commandid"].as_str() {
                let mut seen = arrivals.seen.lock().unwrap();
                if seen.insert(c.to_owned(), now).is_none() {
                    let n = seen.len();
                    drop(seen);
                    arrivals.count.send_replace(n);
                }
            }
        }
    });
}

fn command(n: usize, kind: &str, contact: usize, extra: Value) -> Value {
    let mut payload = json!({"contact_id": format!("c-{contact}")});
    if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
        p.extend(e);
    }
    let ms = n as i64;
    let at = time::macros::datetime!(2026-11-22 08:00 UTC) + time::Duration::milliseconds(ms);
    json!({"command_id": format!("b-{n}"), "type": kind, "tenant": "bench",
           "issued_at": lifecycle_worker::domain::event::format_time(at), "payload": payload})
}

/// Commands `from..to` of the cycle deactivate, status B, reactivate, status C.
fn cycle(from: usize, to: usize, contacts: usize) -> Vec<Value> {
    (from..to)
        .map(|n| {
            // The phase follows the absolute index, so a later run continues
            // the cycle where the previous one stopped: every command applies.
            let contact = n % contacts;
            match (n / contacts) % 4 {
                0 => command(n, "contact.deactivate", contact, json!({})),
                1 => command(n, "contact.change_status", contact, json!({"status": "B"})),
                2 => command(n, "contact.reactivate", contact, json!({})),
                _ => command(n, "contact.change_status", contact, json!({"status": "C"})),
            }
        })
        .collect()
}

/// Publishes with pipelined confirms; `rate` paces to that many per second.
/// Returns the publish instant of each command id.
async fn publish(
    ch: &Channel,
    exchange: &str,
    cmds: &[Value],
    rate: Option<u64>,
) -> HashMap<String, Instant> {
    let mut sent = HashMap::with_capacity(cmds.len());
    let started = Instant::now();
    for (i, cmd) in cmds.iter().enumerate() {
        if let Some(r) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / r as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let key = format!(
            "{}.{}",
            cmd["tenant"].as_str().unwrap(),
            cmd["type"].as_str().unwrap()
        );
        sent.insert(
            cmd["command_id"].as_str().unwrap().to_owned(),
            Instant::now(),
        );
        ch.basic_publish(
            exchange.into(),
            key.as_str().into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(cmd).unwrap(),
            amqp::json_properties(),
        )
        .await
        .unwrap();
        if i % 1000 == 999 {
            ch.wait_for_confirms().await.unwrap();
        }
    }
    ch.wait_for_confirms().await.unwrap();
    sent
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Figures {
    commands: usize,
    seconds: f64,
    commands_per_sec: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    commits_per_command: Option<f64>,
    worker_peak_rss_mb: Option<f64>,
    worker_cpu_seconds: Option<f64>,
    /// CPU per command by process, from the first publish to the last event.
    cpu_ms_per_command: Option<CpuSplit>,
}

fn figures(sent: &HashMap<String, Instant>, arrivals: &Arrivals) -> Figures {
    let seen = arrivals.seen.lock().unwrap();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(id, t)| {
            seen.get(id)
                .map(|r| r.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let first = sent.values().min().copied().unwrap();
    let last = sent
        .keys()
        .filter_map(|id| seen.get(id))
        .max()
        .copied()
        .unwrap_or(first);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let seconds = last.duration_since(first).as_secs_f64();
    Figures {
        commands: lat.len(),
        seconds,
        commands_per_sec: lat.len() as f64 / seconds,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        ..Figures::default()
    }
}

/// Peak RSS (the largest of the workers') and CPU seconds (all of them).
fn proc_stats(pids: &[u32]) -> (Option<f64>, Option<f64>) {
    let rss = pids
        .iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb = line.split_whitespace().nth(1)?.parse::<f64>().ok()?;
            Some(kb / 1024.0)
        })
        .reduce(f64::max);
    let cpu = pids
        .iter()
        .filter_map(|pid| proc_cpu(*pid).map(|c| c.own))
        .reduce(|a, b| a + b);
    (rss, cpu)
}

/// A process's name and CPU seconds from `/proc/PID/stat`.
struct ProcCpu {
    comm: String,
    /// User and system time of the process itself.
    own: f64,
    /// Of its children that ended and were waited for.
    reaped_children: f64,
}

fn proc_cpu(pid: u32) -> Option<ProcCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, after) = stat.rsplit_once(')')?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Some(ProcCpu {
        comm: head.split_once('(').map_or("", |(_, c)| c).to_owned(),
        own: (ticks(11) + ticks(12)) / 100.0,
        reaped_children: (ticks(13) + ticks(14)) / 100.0,
    })
}

/// CPU seconds used so far by the machine's Postgres processes, its RabbitMQ
/// node(s), the given worker processes and this benchmark.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct CpuSplit {
    postgres: f64,
    rabbitmq: f64,
    worker: f64,
    bench: f64,
}

impl CpuSplit {
    fn now(workers: &[u32]) -> Self {
        let me = std::process::id();
        let mut split = CpuSplit::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return split;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(cpu) = proc_cpu(pid) else {
                continue;
            };
            if cpu.comm == "postgres" {
                // With the backends that ended, which their parent reaped.
                split.postgres += cpu.own + cpu.reaped_children;
            } else if cpu.comm == "beam.smp" {
                split.rabbitmq += cpu.own;
            } else if workers.contains(&pid) {
                split.worker += cpu.own;
            } else if pid == me {
                split.bench += cpu.own;
            }
        }
        split
    }

    /// Milliseconds of CPU per command between `self` and `later`.
    fn per_command(&self, later: &CpuSplit, commands: usize) -> CpuSplit {
        let ms = |a: f64, b: f64| (b - a) * 1000.0 / commands.max(1) as f64;
        CpuSplit {
            postgres: ms(self.postgres, later.postgres),
            rabbitmq: ms(self.rabbitmq, later.rabbitmq),
            worker: ms(self.worker, later.worker),
            bench: ms(self.bench, later.bench),
        }
    }
}

async fn commits(pool: &PgPool, db: &str) -> i64 {
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(db)
        .fetch_one(pool)
        .await
        .unwrap()
}

const CLUSTER_NODES: [&str; 3] = [
    "amqp://guest:guest@127.0.0.1:5701/%2f",
    "amqp://guest:guest@127.0.0.1:5702/%2f",
    "amqp://guest:guest@127.0.0.1:5703/%2f",
];

/// A port nobody listens on now, for a worker's metrics.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sum (seconds) and count of each latency stage the worker's `/metrics`
/// shows, keyed by stage; `relay_publish` is the relay's first publish to
/// last confirm per batch.
async fn stage_totals(port: u16) -> HashMap<String, (f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut text = String::new();
    if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        let _ = s
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        let _ = s.read_to_string(&mut text).await;
    }
    let mut totals: HashMap<String, (f64, f64)> = HashMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (metric, stage) = match name.split_once("{stage=\"") {
            Some((m, rest)) => (m, rest.trim_end_matches("\"}").to_owned()),
            None => (name, "relay_publish".to_owned()),
        };
        let slot = match metric {
            "lifecycle_stage_duration_seconds_sum"
            | "lifecycle_relay_publish_duration_seconds_sum" => 0,
            "lifecycle_stage_duration_seconds_count"
            | "lifecycle_relay_publish_duration_seconds_count" => 1,
            _ => continue,
        };
        let entry = totals.entry(stage).or_default();
        if slot == 0 {
            entry.0 = value;
        } else {
            entry.1 = value;
        }
    }
    totals
}

/// Mean milliseconds per observation of each stage between two scrapes.
fn stage_means(
    before: &HashMap<String, (f64, f64)>,
    after: &HashMap<String, (f64, f64)>,
) -> Vec<(String, f64, f64)> {
    let order = [
        "batch_wait",
        "transaction",
        "settle",
        "relay_wait",
        "relay_read",
        "relay_publish",
    ];
    order
        .iter()
        .filter_map(|stage| {
            let (sum1, n1) = after.get(*stage)?;
            let (sum0, n0) = before.get(*stage).copied().unwrap_or_default();
            let n = n1 - n0;
            (n > 0.0).then(|| (stage.to_string(), (sum1 - sum0) * 1000.0 / n, n))
        })
        .collect()
}

fn spawn_worker(settings: &Settings, cluster: bool, metrics_port: Option<u16>) -> Child {
    let mut worker = Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"));
    if cluster {
        let nodes = [CLUSTER_NODES[1], CLUSTER_NODES[2], CLUSTER_NODES[0]];
        worker.env("LIFECYCLE__AMQP__URLS", nodes.join(","));
    } else if !settings.amqp.urls.is_empty() {
        let urls: Vec<&str> = settings
            .amqp
            .urls
            .iter()
            .map(|u| u.expose_secret())
            .collect();
        worker.env("LIFECYCLE__AMQP__URLS", urls.join(","));
    }
    worker
        .arg("run")
        .env(
            "LIFECYCLE__DATABASE__URL",
            settings.database.url.expose_secret(),
        )
        .env("LIFECYCLE__AMQP__PREFIX", &settings.amqp.prefix)
        .env(
            "LIFECYCLE__HTTP__LISTEN",
            format!("127.0.0.1:{}", metrics_port.unwrap_or(0)),
        )
        // The flood deactivates thousands of contacts on purpose: the
        // guardrail stays on (its cost is measured) with room for all of them.
        .env(
            "LIFECYCLE__TENANTS__DEFAULT__GUARDRAIL__MAX_CHANGES",
            "1000000000",
        )
        .env(
            "RUST_LOG",
            std::env::var("BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("worker starts")
}

/// The broker-only echo: consume, publish an event with confirm, ack.
async fn echo(conn: &Connection, queue: &str, events: &str) {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(256, BasicQosOptions::default()).await.unwrap();
    let out = amqp::confirm_channel(conn).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let events = events.to_owned();
    tokio::spawn(async move {
        let _keep = ch;
        loop {
            let Some(Ok(first)) = consumer.next().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < 256 {
                match futures::FutureExt::now_or_never(consumer.next()) {
                    Some(Some(Ok(d))) => batch.push(d),
                    _ => break,
                }
            }
            for d in &batch {
                let v: Value = serde_json::from_slice(&d.data).unwrap();
                let event = json!({"commandid": v["command_id"], "type": "Echo"});
                out.basic_publish(
                    events.as_str().into(),
                    "bench.echo".into(),
                    BasicPublishOptions::default(),
                    &serde_json::to_vec(&event).unwrap(),
                    amqp::json_properties(),
                )
                .await
                .unwrap();
            }
            out.wait_for_confirms().await.unwrap();
            batch
                .last()
                .unwrap()
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await
                .unwrap();
        }
    });
}

fn print_row(name: &str, f: &Figures) {
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "{name:<22} {:>8} {:>8.2} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>10} {:>9} {:>8}",
        f.commands,
        f.seconds,
        f.commands_per_sec,
        f.p50_ms,
        f.p95_ms,
        f.p99_ms,
        opt(f.commits_per_command),
        opt(f.worker_peak_rss_mb),
        opt(f.worker_cpu_seconds),
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let db = format!("lw_bench_{id}");
    let mut settings = Settings::default();
    settings.database.url = SecretString::from(format!("postgres://postgres@127.0.0.1:5432/{db}"));
    settings.amqp.prefix = format!("bench{id}");
    if a.cluster {
        settings.amqp.urls = CLUSTER_NODES
            .iter()
            .map(|n| SecretString::from(n.to_string()))
            .collect();
    } else if let Some(url) = &a.amqp_url {
        settings.amqp.urls = vec![SecretString::from(url.clone())];
    }
    let names = Names::new(&settings.amqp.prefix);
    let pool = lifecycle_worker::store::prepare(&settings)
        .await
        .expect("database");
    let conn = amqp::connect(&settings.amqp, "bench")
        .await
        .expect("broker");
    let ch = amqp::confirm_channel(&conn).await.unwrap();
    amqp::declare_topology(&ch, &names, 10).await.unwrap();
    let arrivals = Arrivals::new();
    listen_events(&conn, &names.events, arrivals.clone()).await;

    // The first worker's metrics say what the latency is made of.
    let metrics_port = free_port();
    let mut workers: Vec<Child> = (0..a.replicas)
        .map(|i| spawn_worker(&settings, a.cluster, (i == 0).then_some(metrics_port)))
        .collect();
    let pids: Vec<u32> = workers.iter().map(|w| w.id().unwrap()).collect();

    let creates: Vec<Value> = (0..a.contacts)
        .map(|c| {
            json!({"command_id": format!("create-{c}"), "type": "contact.upsert", "tenant": "bench",
                   "issued_at": "2026-11-22T07:00:00Z", "payload": {"contact_id": format!("c-{c}"), "first_name": "Bench"}})
        })
        .collect();
    publish(&ch, &names.commands, &creates, None).await;
    assert!(
        arrivals
            .wait_for(a.contacts, Duration::from_secs(120))
            .await,
        "contacts created"
    );

    let preloaded = if a.preload {
        Some(scale::preload(&pool).await)
    } else {
        None
    };
    let deadline = Duration::from_secs(1800);
    let before = commits(&pool, &db).await;
    let flood_cmds = cycle(0, a.commands, a.contacts);
    let since = scale::db_now(&pool).await;
    let committed = tokio::spawn(scale::committed_after(
        pool.clone(),
        since,
        Instant::now(),
        a.commands as i64,
        flood_cmds.last().expect("a flood has commands")["command_id"]
            .as_str()
            .expect("a command id")
            .to_owned(),
    ));
    let cpu_before = CpuSplit::now(&pids);
    let sent = publish(&ch, &names.commands, &flood_cmds, None).await;
    assert!(
        arrivals.wait_for(a.contacts + a.commands, deadline).await,
        "flood events arrived"
    );
    let mut flood = figures(&sent, &arrivals);
    flood.cpu_ms_per_command = Some(cpu_before.per_command(&CpuSplit::now(&pids), a.commands));
    let committed_secs = committed.await.unwrap().as_secs_f64();
    flood.commits_per_command =
        Some((commits(&pool, &db).await - before) as f64 / a.commands as f64);
    (flood.worker_peak_rss_mb, flood.worker_cpu_seconds) = proc_stats(&pids);

    let paced_cmds = cycle(a.commands, a.commands + a.paced_commands, a.contacts);
    let cpu_before = CpuSplit::now(&pids);
    let stages_before = stage_totals(metrics_port).await;
    let sent = publish(&ch, &names.commands, &paced_cmds, Some(a.rate)).await;
    assert!(
        arrivals
            .wait_for(a.contacts + a.commands + a.paced_commands, deadline)
            .await,
        "paced events arrived"
    );
    let mut paced = figures(&sent, &arrivals);
    paced.cpu_ms_per_command =
        Some(cpu_before.per_command(&CpuSplit::now(&pids), a.paced_commands));
    let paced_stages = stage_means(&stages_before, &stage_totals(metrics_port).await);
    let drain = scale::relay_drain(&pool).await;
    (paced.worker_peak_rss_mb, paced.worker_cpu_seconds) = proc_stats(&pids);
    let phases = if a.quick {
        None
    } else {
        let erased = erasure::run(
            &conn,
            &names.commands,
            &arrivals,
            &pool,
            a.contacts,
            a.rate,
            a.commands + a.paced_commands,
        )
        .await;
        let scheduling = schedule::run(&conn, &names.commands, &arrivals, &pool).await;
        let dl = dead_letters::run(&pool, &settings).await;
        Some((erased, scheduling, dl))
    };
    let retention = if a.preload {
        Some(scale::retention_cost(&pool).await)
    } else {
        None
    };
    for pid in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    for w in &mut workers {
        let _ = w.wait().await;
    }

    // Broker-only baseline on its own queue and exchange.
    let echo_queue = format!("{}.echo", settings.amqp.prefix);
    let mut qargs = FieldTable::default();
    qargs.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        echo_queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        qargs,
    )
    .await
    .unwrap();
    let echo_exchange = format!("{}.echo-commands", settings.amqp.prefix);
    ch.exchange_declare(
        echo_exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        echo_queue.as_str().into(),
        echo_exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    echo(&conn, &echo_queue, &names.events).await;
    let base_cmds: Vec<Value> = cycle(
        a.commands * 2 + a.paced_commands,
        a.commands * 3 + a.paced_commands,
        a.contacts,
    );
    let total_before = *arrivals.count.borrow();
    let cpu_before = CpuSplit::now(&[]);
    let sent = publish(&ch, &echo_exchange, &base_cmds, None).await;
    assert!(
        arrivals.wait_for(total_before + a.commands, deadline).await,
        "echo events arrived"
    );
    let mut baseline = figures(&sent, &arrivals);
    baseline.cpu_ms_per_command = Some(cpu_before.per_command(&CpuSplit::now(&[]), a.commands));
    let base_paced_cmds = cycle(
        a.commands * 3 + a.paced_commands,
        a.commands * 3 + a.paced_commands * 2,
        a.contacts,
    );
    let total_before = *arrivals.count.borrow();
    let cpu_before = CpuSplit::now(&[]);
    let sent = publish(&ch, &echo_exchange, &base_paced_cmds, Some(a.rate)).await;
    assert!(
        arrivals
            .wait_for(total_before + a.paced_commands, deadline)
            .await,
        "paced echo events arrived"
    );
    let mut baseline_paced = figures(&sent, &arrivals);
    baseline_paced.cpu_ms_per_command =
        Some(cpu_before.per_command(&CpuSplit::now(&[]), a.paced_commands));

    println!();
    if a.cluster {
        println!("on the three-node cluster: the worker connected to lw2, the queues led by lw1 (declared there)");
    }
    println!(
        "{:<22} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8} {:>10} {:>9} {:>8}",
        "run",
        "commands",
        "seconds",
        "cmds/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "commits/c",
        "rss MB",
        "cpu s"
    );
    print_row("flood (worker)", &flood);
    print_row(&format!("paced {}/s (worker)", a.rate), &paced);
    print_row("broker-only echo", &baseline);
    print_row(&format!("echo paced {}/s", a.rate), &baseline_paced);
    let ratio = flood.commands_per_sec / baseline.commands_per_sec;
    println!("worker flood / broker-only echo = {ratio:.2}");
    for (name, f) in [
        ("flood", &flood),
        ("paced", &paced),
        ("echo", &baseline),
        ("echo paced", &baseline_paced),
    ] {
        if let Some(c) = f.cpu_ms_per_command {
            println!(
                "CPU per command, {name:<10}: Postgres {:.3} ms, RabbitMQ {:.3} ms, worker {:.3} ms, \
                 load generator{} {:.3} ms",
                c.postgres,
                c.rabbitmq,
                c.worker,
                if name.starts_with("echo") { " and echo" } else { "" },
                c.bench
            );
        }
    }
    println!(
        "{} worker process(es); the flood's commands were all committed after {committed_secs:.2} s \
         ({:.0} commands/s applied), its events all received after {:.2} s: {}",
        a.replicas,
        a.commands as f64 / committed_secs,
        flood.seconds,
        if flood.seconds > committed_secs * 1.1 {
            "the relay (one publisher) trails the commands"
        } else {
            "the relay keeps pace"
        }
    );
    println!(
        "paced latency by stage (worker 1's metrics; mean ms per observation, observations): {}",
        paced_stages
            .iter()
            .map(|(stage, ms, n)| format!("{stage} {ms:.2} ({n:.0})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "relay alone: {} events committed at once were published with confirms and marked in {:.2} s: \
         {:.0} events/s",
        drain.events, drain.seconds, drain.events_per_second
    );
    if let Some(p) = &preloaded {
        println!(
            "preloaded before the runs: {} contacts, {} inbox rows, {} published outbox rows in {:.0} s",
            p.contacts, p.inbox, p.outbox, p.seconds
        );
    }
    if let Some(r) = &retention {
        println!(
            "retention on the preload: {} inbox and {} outbox rows purged in {:.1} s ({:.0} rows/s): \
             at 5,000 commands/s sustained, {:.0} s of purging a day",
            r.inbox_rows, r.outbox_rows, r.seconds, r.rows_per_second, r.seconds_per_day_at_5000
        );
    }
    if let Some((erased, scheduling, dl)) = &phases {
        println!(
            "erasure of a contact with {} activity rows, {} dead letters, {} outbox rows: {:.0} ms \
             (publish to ContactErased); {} other commands meanwhile at {}/s: p50 {:.1} ms, p99 {:.1} ms, \
             max {:.1} ms; left after (activity, dead letters, outbox data): {:?}",
            erased.activity_rows,
            erased.dead_letters,
            erased.outbox_rows,
            erased.erase_ms,
            erased.others,
            a.rate,
            erased.others_p50_ms,
            erased.others_p99_ms,
            erased.others_max_ms,
            erased.left_after
        );
        println!(
            "{} commands due at the same second: applied (event received) {:.0} ms after effective_at at p50, \
             {:.0} ms at p99, {:.0} ms at most; {} scheduled and none due: a wake-up costs \
             min(effective_at) {:.3} ms + the claim {:.3} ms, {:.0} wake-ups per process per minute",
            schedule::DUE,
            scheduling.late_p50_ms,
            scheduling.late_p99_ms,
            scheduling.late_max_ms,
            schedule::WAITING,
            scheduling.next_due_ms,
            scheduling.claim_ms,
            scheduling.idle_wakeups_per_minute
        );
        println!(
            "dlq groups over {} dead letters: {} groups in {:.0} ms",
            dead_letters::ROWS,
            dl.groups,
            dl.groups_ms
        );
        for p in &dl.console {
            println!(
                "console {:<40} p50 {:>6.1} ms  max {:>6.1} ms",
                p.page, p.p50_ms, p.max_ms
            );
        }
    }
    println!(
        "{}",
        json!({"bench": "e2e", "cluster": a.cluster, "replicas": a.replicas,
               "committed_secs": committed_secs, "preloaded": preloaded, "retention": retention,
               "flood": flood, "paced": paced, "paced_rate": a.rate, "paced_stages": paced_stages, "relay_drain": drain,
               "baseline": baseline, "baseline_paced": baseline_paced, "ratio_to_baseline": ratio,
               "erasure": phases.as_ref().map(|p| &p.0), "scheduling": phases.as_ref().map(|p| &p.1),
               "dead_letters": phases.as_ref().map(|p| json!({"rows": dead_letters::ROWS, "figures": &p.2}))})
    );

    for q in [
        &names.contact_queue,
        &names.user_queue,
        &names.dead_letters,
        &echo_queue,
    ] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for x in [&names.commands, &names.events, &names.dead, &echo_exchange] {
        let _ = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "bench done".into()).await;
    pool.close().await;
    let admin = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
        .execute(&admin)
        .await;
}
