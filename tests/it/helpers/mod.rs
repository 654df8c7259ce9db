//! Test harness: each test gets its own database and topology prefix, a
//! worker running in-process, a reply queue and an events queue. Waiting is
//! always on a condition with a deadline, never a sleep.
//!
//! This file makes the environment and removes it; the rest is split by
//! what it sets up: the database (`database.rs`), the topology and
//! publishing (`broker.rs`), what the test's queues receive (`inbox.rs`),
//! command bodies (`commands.rs`), the worker in-process or as a process
//! (`worker.rs`), the CLI (`cli.rs`), plain HTTP (`http.rs`) and waiting
//! (`wait.rs`). Tests use it all from here.

mod broker;
mod cli;
mod commands;
mod database;
mod http;
mod inbox;
mod wait;
mod worker;

// One list for the three binaries that include these helpers (it, chaos,
// the soak), each of which uses a part of it.
#[allow(unused_imports)]
pub use self::{
    commands::{issued_at, routing_key_of},
    database::{
        relay_lock_holder, terminate_backend, try_relay_lock_holder, try_terminate_backend,
    },
    http::{free_port, http_get, http_request, http_request_on, http_status, HttpResponse},
    inbox::types,
    wait::{eventually, eventually_within, DEADLINE},
    worker::{
        spawn_worker, spawn_worker_on, spawn_worker_process, spawn_worker_under, spawn_worker_with,
        WorkerProcess,
    },
};

use std::sync::atomic::AtomicU64;

use lapin::{Channel, Connection};
use lifecycle_worker::amqp::{self, Names};
use lifecycle_worker::config::Settings;
use secrecy::SecretString;
use sqlx::PgPool;

use inbox::{listen, Inbox};
use worker::RunningWorker;

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

pub struct TestEnv {
    pub settings: Settings,
    pub names: Names,
    pub db_name: String,
    pub pool: PgPool,
    conn: Connection,
    pub ch: Channel,
    reply_queue: String,
    replies: Inbox,
    events: Inbox,
    worker: Option<RunningWorker>,
    cleaned: bool,
    seq: AtomicU64,
}

/// Settings for a fresh database and prefix.
pub fn test_settings() -> (Settings, String) {
    let id = unique();
    let db_name = format!("lw_test_{id}");
    let mut s = Settings::default();
    s.database.url = SecretString::from(format!("postgres://postgres@127.0.0.1:5432/{db_name}"));
    s.database.max_connections = 4;
    s.amqp.prefix = format!("t{id}");
    s.http.listen = "127.0.0.1:0".into();
    s.worker.drain_timeout_secs = 10;
    (s, db_name)
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(|_| {}).await
    }

    /// Starts a worker with settings adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestEnv {
        let env = Self::prepare_with(adjust).await;
        let mut env = env;
        env.start_worker();
        env
    }

    /// Database, topology and test queues, but no worker yet.
    pub async fn prepare_with(adjust: impl FnOnce(&mut Settings)) -> TestEnv {
        if std::env::var("TEST_LOG").is_ok() {
            lifecycle_worker::telemetry::init(Default::default());
        }
        let (mut settings, db_name) = test_settings();
        adjust(&mut settings);
        let pool = lifecycle_worker::store::prepare(&settings)
            .await
            .expect("database prepared");
        let names = Names::new(&settings.amqp.prefix);
        let conn = amqp::connect(&settings.amqp, "test").await.expect("broker");
        let ch = amqp::confirm_channel(&conn).await.expect("channel");
        amqp::declare_topology(&ch, &names, settings.amqp.delivery_limit)
            .await
            .expect("topology");

        let replies = Inbox::new();
        let reply_queue = listen(&conn, None, replies.clone()).await;
        let events = Inbox::new();
        listen(&conn, Some(&names.events), events.clone()).await;
        TestEnv {
            settings,
            names,
            db_name,
            pool,
            conn,
            ch,
            reply_queue,
            replies,
            events,
            worker: None,
            cleaned: false,
            seq: AtomicU64::new(0),
        }
    }

    /// Stops the worker and removes the database and the topology.
    pub async fn finish(mut self) {
        self.stop_worker().await;
        self.cleanup_now().await;
    }

    async fn cleanup_now(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        self.pool.close().await;
        let _ = self.conn.close(200, "test done".into()).await;
        cleanup(self.settings.clone(), self.db_name.clone()).await;
    }
}

impl Drop for TestEnv {
    /// A failed test still leaves nothing behind: clean up on a separate
    /// runtime, since Drop cannot await.
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        if let Some(w) = self.worker.take() {
            w.handle.abort();
        }
        let (settings, db) = (self.settings.clone(), self.db_name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(cleanup(settings, db))
        })
        .join();
    }
}

/// Deletes a test's database and broker objects.
pub async fn cleanup(settings: Settings, db_name: String) {
    broker::delete_topology(&settings).await;
    database::drop_database(&db_name).await;
}

/// For tests that deactivate or delete thousands of entities on purpose:
/// the guardrail stays on, with room for all of them.
pub fn allow_mass_changes(s: &mut Settings) {
    s.tenants.entry("default".into()).or_default().guardrail =
        Some(lifecycle_worker::domain::policy::GuardrailOverride {
            max_changes: Some(1_000_000_000),
            ..Default::default()
        });
}
