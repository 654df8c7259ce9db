//! Contract section 14: on a three-node RabbitMQ cluster with quorum
//! queues, any one node may be stopped under load. A real cluster on this
//! machine (`scripts/rabbitmq-cluster.sh`: nodes lw1..lw3 on 5701..5703,
//! beside the machine's own broker), three worker processes each connected
//! to a different node first, a few thousand mixed commands; then, each on
//! a fresh prefix and database: the node one worker is connected to is
//! stopped; the leader of the contact queue is stopped; a node is stopped
//! and started again. Each ends with the model checks of every fault test.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lifecycle_worker::config::Settings;
use secrecy::{ExposeSecret, SecretString};

use crate::faults::fresh_channel;
use crate::helpers::{allow_mass_changes, eventually, spawn_worker_with, TestEnv, WorkerProcess};
use crate::{check_outcome, event_queue, processed, publish_all, serial, set_up, workload};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq-cluster.sh");
/// The longest a node's stop or return may keep commands from being
/// applied (issue 26).
const MAX_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest time in which fewer commands were processed than were
/// published and none was newly processed, until `done` fires.
async fn longest_stall(
    pool: &sqlx::PgPool,
    published: &AtomicI64,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> std::time::Duration {
    let mut last = (-1i64, Instant::now());
    let mut longest = std::time::Duration::ZERO;
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM processed_commands WHERE outcome IS NOT NULL")
                .fetch_one(pool)
                .await
                .unwrap_or(last.0);
        if n != last.0 || n >= published.load(Ordering::SeqCst) {
            last = (n, Instant::now());
        }
        longest = longest.max(last.1.elapsed());
        tokio::select! {
            _ = &mut done => return longest,
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
        }
    }
}

/// How long the load may take to finish after a node stopped.
const PROCESSING: std::time::Duration = std::time::Duration::from_secs(120);

fn script(args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{SCRIPT}: {e}"));
    assert!(
        out.status.success(),
        "rabbitmq-cluster.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster, stopped and deleted when the test ends, even by failing.
struct Cluster;

impl Cluster {
    fn start() -> Cluster {
        // A cluster a failed run left behind is removed first.
        script(&["stop"]);
        let cluster = Cluster;
        script(&["start"]);
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .status();
    }
}

fn url(node: usize) -> SecretString {
    SecretString::from(format!("amqp://guest:guest@127.0.0.1:{}/%2f", 5700 + node))
}

/// Nodes 1..3, starting at `first`.
fn nodes_from(first: usize) -> Vec<SecretString> {
    (0..3).map(|i| url((first - 1 + i) % 3 + 1)).collect()
}

fn on_cluster(s: &mut Settings) {
    allow_mass_changes(s);
    s.amqp.urls = nodes_from(1);
}

/// Worker `i` (1..3) is connected to node `i` first; each logs at info
/// level to `logs.worker(i)`, read if the load does not finish.
fn workers(env: &TestEnv, logs: &WorkerLogs) -> Vec<WorkerProcess> {
    (1..=3)
        .map(|i| {
            let urls: Vec<String> = nodes_from(i)
                .iter()
                .map(|u| u.expose_secret().to_owned())
                .collect();
            let urls = urls.join(",");
            let log = std::fs::File::create(logs.worker(i)).expect("worker log file");
            spawn_worker_with(
                env,
                "127.0.0.1:0",
                &[
                    ("LIFECYCLE__AMQP__URLS", urls.as_str()),
                    ("RUST_LOG", "info"),
                ],
                log.into(),
            )
        })
        .collect()
}

/// A scenario's worker logs, in a directory removed when the scenario
/// passes and kept (and printed) when it fails.
struct WorkerLogs {
    dir: std::path::PathBuf,
}

impl WorkerLogs {
    fn new(env: &TestEnv) -> WorkerLogs {
        let dir =
            std::env::temp_dir().join(format!("lw-cluster-logs-{}", env.settings.amqp.prefix));
        std::fs::create_dir_all(&dir).expect("log directory");
        WorkerLogs { dir }
    }

    fn worker(&self, i: usize) -> std::path::PathBuf {
        self.dir.join(format!("worker{i}.log"))
    }

    /// The last lines of each worker's log.
    fn tails(&self, lines: usize) -> String {
        (1..=3)
            .map(|i| {
                let text = std::fs::read_to_string(self.worker(i)).unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n");
                format!("--- worker {i} ({}):\n{tail}", self.worker(i).display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the cluster and the workers say when the load did not finish: the
/// queues (from a node still running) and the end of each worker's log.
fn stalled(env: &TestEnv, logs: &WorkerLogs, running_node: usize, done: i64, total: i64) -> String {
    let queues = std::process::Command::new("bash")
        .arg(SCRIPT)
        .args([
            "ctl",
            &running_node.to_string(),
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
            "leader",
            "members",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let ours: Vec<&str> = queues
        .lines()
        .filter(|l| l.starts_with(env.settings.amqp.prefix.as_str()))
        .collect();
    format!(
        "{done} of {total} commands processed after {PROCESSING:?}\nqueues (lw{running_node}):\n{}\n{}",
        ours.join("\n"),
        logs.tails(40)
    )
}

/// The nodes holding a replica of `queue`, and its leader, as node numbers.
fn members_and_leader(queue: &str) -> (Vec<usize>, usize) {
    let out = script(&[
        "ctl",
        "1",
        "list_queues",
        "--quiet",
        "--no-table-headers",
        "name",
        "leader",
        "members",
    ]);
    let line = out
        .lines()
        .find(|l| l.split('\t').next() == Some(queue))
        .unwrap_or_else(|| panic!("no queue {queue} in {out}"));
    let node = |s: &str| -> usize {
        s.trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .trim_start_matches("lw")
            .chars()
            .next()
            .and_then(|c| c.to_digit(10))
            .unwrap_or_else(|| panic!("node name {s}")) as usize
    };
    let cols: Vec<&str> = line.split('\t').collect();
    let leader = node(cols[1]);
    let mut members: Vec<usize> = cols[2]
        .split(',')
        .filter(|m| m.contains('@'))
        .map(node)
        .collect();
    members.sort_unstable();
    (members, leader)
}

/// One scenario: the first half of the load published and a quarter of
/// it processed, then node `stop` (chosen once the queues exist) is
/// stopped while the second half is published and processed; with
/// `restart`, it is started again meanwhile.
async fn scenario(name: &str, seed: u64, restart: bool, stop: impl FnOnce(&TestEnv) -> usize) {
    let started = Instant::now();
    let env = TestEnv::prepare_with(on_cluster).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let (members, _) = members_and_leader(&env.names.contact_queue);
    assert_eq!(
        members,
        vec![1, 2, 3],
        "{name}: the contact queue is replicated on all three nodes"
    );
    let node = stop(&env);
    let w = workload(200, 60, 4_000, seed);
    let logs = WorkerLogs::new(&env);
    let mut running = workers(&env, &logs);
    set_up(&env, &w).await;
    // Half before the fault, a quarter while the node stops, a quarter
    // after it stopped (or returned): the watcher sees each phase.
    let (first, rest) = w.load.split_at(w.load.len() / 2);
    let (during, after) = rest.split_at(rest.len() / 2);
    publish_all(&env.settings, first).await;
    let quarter = (w.setup.len() + first.len() / 2) as i64;
    let env_ref = &env;
    eventually("a quarter of the load processed", || async move {
        (processed(env_ref).await >= quarter).then_some(())
    })
    .await;
    let at = processed(&env).await;
    let total = (w.setup.len() + w.load.len()) as i64;
    // Watches progress from here on: the longest time in which published
    // commands waited and none was applied is the stall the fault caused.
    let published = Arc::new(AtomicI64::new((w.setup.len() + first.len()) as i64));
    let (progress, watched) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let (pool, published) = (env.pool.clone(), published.clone());
        tokio::spawn(async move { longest_stall(&pool, &published, watched).await })
    };
    let stopping = tokio::task::spawn_blocking(move || {
        script(&["stop-node", &node.to_string()]);
        if restart {
            script(&["start-node", &node.to_string()]);
        }
    });
    // Published while the node goes away: the publisher fails over too.
    publish_all(&env.settings, during).await;
    published.fetch_add(during.len() as i64, Ordering::SeqCst);
    stopping.await.expect("the node stopped");
    // Published once the node is gone (or back).
    publish_all(&env.settings, after).await;
    published.fetch_add(after.len() as i64, Ordering::SeqCst);
    let draining = Instant::now();
    loop {
        let done = processed(&env).await;
        if done >= total {
            break;
        }
        if draining.elapsed() > PROCESSING {
            panic!(
                "{name}: {}",
                stalled(&env, &logs, node % 3 + 1, done, total)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let drained = draining.elapsed();
    let _ = progress.send(());
    let stall = watcher.await.expect("progress watcher");
    assert!(
        stall <= MAX_STALL,
        "{name}: no command applied for {:.1}s around the node's {} (at most {MAX_STALL:?})\n{}",
        stall.as_secs_f64(),
        if restart { "stop and return" } else { "stop" },
        logs.tails(40)
    );
    // The test's own connection may have been on the stopped node.
    let (_conn, ch) = fresh_channel(&env).await;
    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "cluster, {name}: node lw{node} stopped at {at} processed{}, {} commands, the rest processed {:.1}s after the last publish, longest stall {:.2}s, {events} events, {:.1}s",
        if restart { " and started again" } else { "" },
        w.setup.len() + w.load.len(),
        drained.as_secs_f64(),
        stall.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for w in &mut running {
        let _ = w.terminate().await;
    }
    logs.remove();
    env.finish().await;
    if !restart {
        script(&["start-node", &node.to_string()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_one_node_of_a_three_node_cluster_may_stop_under_load() {
    let _serial = serial().await;
    let started = Instant::now();
    let _cluster = Cluster::start();
    let booted = started.elapsed();
    // Worker 2 is connected to node 2 first.
    scenario("the node a worker is connected to", 31, false, |_| 2).await;
    scenario("the contact queue's leader", 37, false, |env| {
        members_and_leader(&env.names.contact_queue).1
    })
    .await;
    scenario("a node stopped and started again", 41, true, |_| 3).await;
    eprintln!(
        "cluster test: booted and joined in {:.1}s, all three scenarios in {:.1}s",
        booted.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
