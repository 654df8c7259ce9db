//! The soak's faults: a seeded schedule, the replicas they hit, and how
//! each kind is done.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use lifecycle_worker::config::Settings;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::helpers::{
    spawn_worker_process, try_relay_lock_holder, try_terminate_backend, WorkerProcess,
};
use crate::model::Lcg;
use crate::services::{ensure_services, postgres, run};

const CLUSTER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq-cluster.sh");
/// How long a stopped service stays down before it is started again.
const OUTAGE: Duration = Duration::from_secs(2);
/// How long a relay session is looked for (after a kill the other replica
/// takes the lock at its next poll).
const RELAY_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// SIGKILL replica `n`, then start it again.
    KillReplica(usize),
    /// `rabbitmqctl stop_app` / `start_app`; on the cluster, stop and
    /// start node `n` (1..=3).
    RestartBroker(usize),
    /// `pg_ctlcluster stop` / `start`.
    RestartPostgres,
    /// `pg_terminate_backend` of the session holding the relay lock.
    EndRelaySession,
}

impl Fault {
    pub fn kind(self, cluster: bool) -> &'static str {
        match self {
            Fault::KillReplica(_) => "replica_sigkill",
            Fault::RestartBroker(_) if cluster => "rabbitmq_node_restart",
            Fault::RestartBroker(_) => "rabbitmq_restart",
            Fault::RestartPostgres => "postgres_restart",
            Fault::EndRelaySession => "relay_session_terminated",
        }
    }

    pub fn describe(self, cluster: bool) -> String {
        match self {
            Fault::KillReplica(n) => format!("{} replica-{n}", self.kind(cluster)),
            Fault::RestartBroker(n) if cluster => format!("{} lw{n}", self.kind(cluster)),
            _ => self.kind(cluster).to_owned(),
        }
    }
}

/// Faults over `seconds`: gaps drawn from an exponential distribution with
/// mean `mean_gap`, each kind equally likely.
pub fn schedule(seed: u64, seconds: f64, mean_gap: f64, replicas: usize) -> Vec<(f64, Fault)> {
    // Another stream than the workload's, from the same seed.
    let mut rng = Lcg(seed ^ 0x5eed_fa17_5eed_fa17);
    let mut unit = || rng.below(1_000_000) as f64 / 1_000_000.0;
    let mut at = 0.0;
    let mut faults = Vec::new();
    loop {
        at += -mean_gap * (1.0 - unit()).ln();
        if at >= seconds {
            return faults;
        }
        let fault = match (unit() * 4.0) as u32 {
            0 => Fault::KillReplica((unit() * replicas as f64) as usize),
            1 => Fault::RestartBroker(1 + (unit() * 3.0) as usize),
            2 => Fault::RestartPostgres,
            _ => Fault::EndRelaySession,
        };
        faults.push((at, fault));
    }
}

/// The worker processes, one per slot; a killed one is replaced in its slot.
pub struct Replicas {
    pub procs: Vec<WorkerProcess>,
    settings: Settings,
    pub logs: PathBuf,
}

impl Replicas {
    pub fn start(settings: &Settings, n: usize, logs: PathBuf) -> Replicas {
        std::fs::create_dir_all(&logs).expect("log directory");
        let mut r = Replicas {
            procs: Vec::new(),
            settings: settings.clone(),
            logs,
        };
        r.procs = (0..n).map(|slot| r.spawn(slot)).collect();
        r
    }

    fn spawn(&self, slot: usize) -> WorkerProcess {
        // One log per slot, appended to across restarts.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("replica-{slot}.log")))
            .expect("replica log");
        // On the cluster, each replica connects to another node first
        // (node 1, where the soak declared the queues, leads them).
        let nodes = &self.settings.amqp.urls;
        let urls = (0..nodes.len())
            .map(|i| nodes[(slot + 1 + i) % nodes.len()].expose_secret())
            .collect::<Vec<_>>()
            .join(",");
        let mut env = vec![("RUST_LOG", "warn")];
        if !urls.is_empty() {
            env.push(("LIFECYCLE__AMQP__URLS", urls.as_str()));
        }
        spawn_worker_process(&self.settings, &[], "127.0.0.1:0", &env, Stdio::from(log))
    }

    pub fn pid(&self, slot: usize) -> Option<u32> {
        self.procs[slot].child.id()
    }

    async fn kill_and_restart(&mut self, slot: usize) {
        self.procs[slot].kill9().await;
        self.procs[slot] = self.spawn(slot);
    }
}

/// Peak resident memory of a process (`VmHWM`), in MB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb = line.split_whitespace().nth(1)?.parse::<f64>().ok()?;
    Some(kb / 1024.0)
}

/// Runs the schedule from `started`, each fault not before its time and
/// after the one before it has finished; returns the count per kind and
/// the faults that could not be done (no relay session found).
pub async fn run_schedule(
    schedule: &[(f64, Fault)],
    started: Instant,
    replicas: &mut Replicas,
    pool: &PgPool,
    cluster: bool,
) -> (BTreeMap<&'static str, u64>, u64) {
    let mut done: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut skipped = 0;
    for (n, (at, fault)) in schedule.iter().enumerate() {
        tokio::time::sleep_until(started + Duration::from_secs_f64(*at)).await;
        let began = started.elapsed().as_secs_f64();
        let ok = match *fault {
            Fault::KillReplica(slot) => {
                replicas.kill_and_restart(slot).await;
                true
            }
            Fault::RestartBroker(node) => {
                blocking(move || restart_broker(cluster.then_some(node))).await;
                true
            }
            Fault::RestartPostgres => {
                blocking(|| {
                    postgres("stop");
                    std::thread::sleep(OUTAGE);
                    postgres("start");
                    ensure_services();
                })
                .await;
                true
            }
            Fault::EndRelaySession => end_relay_session(pool).await,
        };
        let took = started.elapsed().as_secs_f64() - began;
        if ok {
            *done.entry(fault.kind(cluster)).or_default() += 1;
        } else {
            skipped += 1;
        }
        println!(
            "fault {}/{} at {began:.1}s: {}{} ({took:.1}s)",
            n + 1,
            schedule.len(),
            fault.describe(cluster),
            if ok {
                ""
            } else {
                " skipped: no session held the relay lock"
            },
        );
    }
    (done, skipped)
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f).await.expect("fault done");
}

/// The single broker's application stopped and started, or a cluster node.
fn restart_broker(node: Option<usize>) {
    match node {
        Some(n) => {
            let n = n.to_string();
            run("bash", &[CLUSTER_SCRIPT, "stop-node", &n]);
            std::thread::sleep(OUTAGE);
            run("bash", &[CLUSTER_SCRIPT, "start-node", &n]);
        }
        None => {
            run("rabbitmqctl", &["-q", "stop_app"]);
            std::thread::sleep(OUTAGE);
            run("rabbitmqctl", &["-q", "start_app"]);
            ensure_services();
        }
    }
}

/// Terminates the relay's session; false when none held the lock in time.
async fn end_relay_session(pool: &PgPool) -> bool {
    let deadline = Instant::now() + RELAY_WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(pid)) = try_relay_lock_holder(pool).await {
            if let Ok(true) = try_terminate_backend(pool, pid).await {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The cluster's nodes as URLs (`scripts/rabbitmq-cluster.sh`).
pub fn cluster_nodes() -> Vec<String> {
    (1..=3)
        .map(|n| format!("amqp://guest:guest@127.0.0.1:{}/%2f", 5700 + n))
        .collect()
}
