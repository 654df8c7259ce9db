//! The worker under test: in-process (started and stopped with the test's
//! environment) or as a real process of the built binary.

use std::process::Stdio;
use std::time::{Duration, Instant};

use lifecycle_worker::config::Settings;
use secrecy::ExposeSecret;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{TestEnv, DEADLINE};

pub(super) struct RunningWorker {
    stop: oneshot::Sender<()>,
    pub(super) handle: JoinHandle<anyhow::Result<()>>,
}

impl TestEnv {
    pub fn start_worker(&mut self) {
        assert!(self.worker.is_none(), "worker already running");
        let (stop, stopped) = oneshot::channel::<()>();
        let settings = self.settings.clone();
        let handle = tokio::spawn(async move {
            lifecycle_worker::app::run(
                settings,
                async {
                    let _ = stopped.await;
                },
                |_| {},
            )
            .await
        });
        self.worker = Some(RunningWorker { stop, handle });
    }

    /// Graceful stop of the in-process worker.
    pub async fn stop_worker(&mut self) {
        if let Some(w) = self.worker.take() {
            let _ = w.stop.send(());
            tokio::time::timeout(DEADLINE, w.handle)
                .await
                .expect("worker stops within the deadline")
                .expect("worker task")
                .expect("worker exits cleanly");
        }
    }
}

/// The default tenant's guardrail settings as environment variables, so a
/// worker process runs with the test's policy.
pub(super) fn guardrail_env(s: &Settings) -> Vec<(String, String)> {
    let Some(g) = s.tenants.get("default").and_then(|t| t.guardrail.as_ref()) else {
        return vec![];
    };
    let key = |k: &str| format!("LIFECYCLE__TENANTS__DEFAULT__GUARDRAIL__{k}");
    let mut vars = Vec::new();
    if let Some(e) = g.enabled {
        vars.push((key("ENABLED"), e.to_string()));
    }
    if let Some(m) = g.max_changes {
        vars.push((key("MAX_CHANGES"), m.to_string()));
    }
    if let Some(w) = g.window {
        vars.push((key("WINDOW"), humantime::format_duration(w).to_string()));
    }
    vars
}

/// A cluster's nodes (`amqp.urls`) as the environment variable.
fn nodes_env(s: &Settings) -> Vec<(String, String)> {
    if s.amqp.urls.is_empty() {
        return vec![];
    }
    let urls: Vec<&str> = s.amqp.urls.iter().map(|u| u.expose_secret()).collect();
    vec![("LIFECYCLE__AMQP__URLS".into(), urls.join(","))]
}

/// A worker as a real process, killed on drop.
pub struct WorkerProcess {
    pub child: Child,
}

pub fn spawn_worker(env: &TestEnv) -> WorkerProcess {
    spawn_worker_on(env, "127.0.0.1:0")
}

pub fn spawn_worker_on(env: &TestEnv, listen: &str) -> WorkerProcess {
    spawn_worker_with(env, listen, &[], Stdio::null())
}

/// A worker process with extra environment and its stderr sent to `stderr`.
pub fn spawn_worker_with(
    env: &TestEnv,
    listen: &str,
    extra_env: &[(&str, &str)],
    stderr: Stdio,
) -> WorkerProcess {
    spawn_worker_process(&env.settings, &[], listen, extra_env, stderr)
}

/// [`spawn_worker_with`] started by `wrapper`, a command that runs the rest
/// of its arguments (`prlimit --nofile=1024:1024 --`, say).
pub fn spawn_worker_under(
    env: &TestEnv,
    wrapper: &[&str],
    listen: &str,
    extra_env: &[(&str, &str)],
    stderr: Stdio,
) -> WorkerProcess {
    spawn_worker_process(&env.settings, wrapper, listen, extra_env, stderr)
}

/// [`spawn_worker_under`] for `settings` without a [`TestEnv`] (the chaos
/// soak's replicas, `benches/soak.rs`).
pub fn spawn_worker_process(
    s: &Settings,
    wrapper: &[&str],
    listen: &str,
    extra_env: &[(&str, &str)],
    stderr: Stdio,
) -> WorkerProcess {
    let worker = env!("CARGO_BIN_EXE_lifecycle-worker");
    let (program, before) = wrapper
        .split_first()
        .map_or((worker, &[][..]), |(p, rest)| (*p, rest));
    let child = Command::new(program)
        .args(before)
        .args(if wrapper.is_empty() {
            None
        } else {
            Some(worker)
        })
        .arg("run")
        .env("LIFECYCLE__DATABASE__URL", s.database.url.expose_secret())
        .env("LIFECYCLE__AMQP__URL", s.amqp.url.expose_secret())
        .env("LIFECYCLE__AMQP__PREFIX", &s.amqp.prefix)
        .env("LIFECYCLE__HTTP__LISTEN", listen)
        .env("LIFECYCLE__WORKER__DRAIN_TIMEOUT_SECS", "20")
        .env("LIFECYCLE__RELAY__POLL_INTERVAL_MS", "100")
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").map(|_| "info").unwrap_or("error"),
        )
        .envs(guardrail_env(s))
        .envs(nodes_env(s))
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("worker process starts");
    WorkerProcess { child }
}

impl WorkerProcess {
    pub async fn kill9(&mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    /// SIGTERM, then the exit status and how long the drain took.
    pub async fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().expect("running") as i32;
        let started = Instant::now();
        let rc = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(rc.success());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("worker exits after SIGTERM")
            .expect("wait");
        (status, started.elapsed())
    }
}
