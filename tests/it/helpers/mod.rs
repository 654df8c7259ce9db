//! Test harness: each test gets its own database and topology prefix, a
//! worker running in-process, a reply queue and an events queue. Waiting is
//! always on a condition with a deadline, never a sleep.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use lifecycle_worker::amqp::{self, Names};
use lifecycle_worker::config::Settings;
use lifecycle_worker::store::journal::{self, DeadLetterRow};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub const DEADLINE: Duration = Duration::from_secs(20);
const ADMIN_DB: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A received message: its correlation id and its JSON body.
type Received = (Option<String>, Value);

/// Messages received on a test queue, with a watch to wait for more.
#[derive(Clone)]
struct Inbox {
    items: Arc<Mutex<Vec<Received>>>,
    changed: watch::Sender<u64>,
}

impl Inbox {
    fn new() -> Self {
        Inbox {
            items: Arc::default(),
            changed: watch::channel(0).0,
        }
    }

    /// Waits until `f` over the received messages returns `Some`.
    async fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&[Received]) -> Option<T>) -> T {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(t) = f(&self.items.lock().unwrap()) {
                return t;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let seen = self.items.lock().unwrap().len();
                panic!("timed out waiting for {what} ({seen} messages seen)");
            }
        }
    }
}

struct RunningWorker {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<()>>,
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

    /// A command envelope with a fresh command id, issued `minute` minutes after 08:00.
    pub fn command(&self, tenant: &str, kind: &str, minute: u32, payload: Value) -> Value {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        json!({
            "command_id": format!("cmd-{n}-{}", unique()),
            "type": kind,
            "tenant": tenant,
            "issued_at": issued_at(minute),
            "actor": "test",
            "payload": payload,
        })
    }

    /// Publishes raw bytes with `reply_to` and returns the reply.
    pub async fn send_raw(&self, routing_key: &str, body: &[u8], props: BasicProperties) -> Value {
        let correlation = unique();
        let props = props
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(correlation.as_str().into());
        self.publish_on(&self.ch, routing_key, body, props).await;
        self.reply(&correlation).await
    }

    /// Publishes a command (routing key from its tenant and type) and returns the reply.
    pub async fn send(&self, cmd: &Value) -> Value {
        let body = serde_json::to_vec(cmd).unwrap();
        self.send_raw(&routing_key_of(cmd), &body, amqp::json_properties())
            .await
    }

    /// Publishes with confirms; asserts the broker routed it.
    pub async fn publish_on(
        &self,
        ch: &Channel,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) {
        let confirm = ch
            .basic_publish(
                self.names.commands.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "broker refused the publish");
        assert!(
            confirm.take_message().is_none(),
            "unroutable: {routing_key}"
        );
    }

    /// Waits for the `n`-th reply with this correlation id (replays reuse it).
    pub async fn nth_reply(&self, correlation: &str, n: usize) -> Value {
        self.replies
            .wait_for(&format!("reply {n} to {correlation}"), |items| {
                items
                    .iter()
                    .filter(|(c, _)| c.as_deref() == Some(correlation))
                    .nth(n - 1)
                    .map(|(_, v)| v.clone())
            })
            .await
    }

    /// Publishes a command with `reply_to` and the given correlation id.
    pub async fn send_correlated(&self, cmd: &Value, correlation: &str) -> Value {
        let props = amqp::json_properties()
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(correlation.into());
        let body = serde_json::to_vec(cmd).unwrap();
        self.publish_on(&self.ch, &routing_key_of(cmd), &body, props)
            .await;
        self.reply(correlation).await
    }

    /// Runs the binary and returns (exit code, stdout, stderr).
    pub async fn cli_text(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cli(args).await;
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn reply_queue_name(&self) -> &str {
        &self.reply_queue
    }

    pub async fn reply(&self, correlation: &str) -> Value {
        self.replies
            .wait_for(&format!("reply {correlation}"), |items| {
                items
                    .iter()
                    .find(|(c, _)| c.as_deref() == Some(correlation))
                    .map(|(_, v)| v.clone())
            })
            .await
    }

    /// Waits until the events of `ids` (CloudEvent ids) have all been received.
    pub async fn events_with_ids(&self, ids: &[Value]) -> Vec<Value> {
        let wanted: Vec<String> = ids.iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        self.events
            .wait_for(&format!("events {wanted:?}"), |items| {
                let got: Vec<Value> = wanted
                    .iter()
                    .filter_map(|id| {
                        items
                            .iter()
                            .find(|(_, e)| e["id"].as_str() == Some(id.as_str()))
                            .map(|(_, e)| e.clone())
                    })
                    .collect();
                (got.len() == wanted.len()).then_some(got)
            })
            .await
    }

    /// The events announced in a reply, as received from `{p}.events`.
    pub async fn events_of(&self, reply: &Value) -> Vec<Value> {
        let ids = reply["events"].as_array().cloned().unwrap_or_default();
        self.events_with_ids(&ids).await
    }

    /// Waits until `n` events in total were received; returns all of them.
    pub async fn wait_event_count(&self, n: usize) -> Vec<Value> {
        self.events
            .wait_for(&format!("{n} events"), |items| {
                (items.len() >= n).then(|| items.iter().map(|(_, e)| e.clone()).collect())
            })
            .await
    }

    /// All events received so far.
    pub fn events_so_far(&self) -> Vec<Value> {
        self.events
            .items
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Publishes commands with confirms, without waiting for replies.
    pub async fn publish_all(&self, cmds: &[Value]) {
        let mut confirms = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let body = serde_json::to_vec(cmd).unwrap();
            confirms.push(
                self.ch
                    .basic_publish(
                        self.names.commands.as_str().into(),
                        routing_key_of(cmd).as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        amqp::json_properties(),
                    )
                    .await
                    .expect("publish"),
            );
        }
        for c in confirms {
            assert!(
                c.await.expect("confirm").is_ack(),
                "broker refused a publish"
            );
        }
    }

    /// The real binary as a running process (killed on drop).
    pub fn cli_child(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
            .args(args)
            .env(
                "LIFECYCLE__DATABASE__URL",
                self.settings.database.url.expose_secret(),
            )
            .env(
                "LIFECYCLE__AMQP__URL",
                self.settings.amqp.url.expose_secret(),
            )
            .env("LIFECYCLE__AMQP__PREFIX", &self.settings.amqp.prefix)
            .envs(guardrail_env(&self.settings))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("lifecycle-worker starts")
    }

    /// Runs the real binary against this test's database and broker.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with(args, &[]).await
    }

    /// [`TestEnv::cli`] with environment variables added or overridden.
    pub async fn cli_with(
        &self,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> std::process::Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
            .args(args)
            .env(
                "LIFECYCLE__DATABASE__URL",
                self.settings.database.url.expose_secret(),
            )
            .env(
                "LIFECYCLE__AMQP__URL",
                self.settings.amqp.url.expose_secret(),
            )
            .env("LIFECYCLE__AMQP__PREFIX", &self.settings.amqp.prefix)
            .env("RUST_LOG", "warn")
            .envs(guardrail_env(&self.settings))
            .envs(extra_env.iter().copied())
            .output()
            .await
            .expect("running lifecycle-worker")
    }

    /// `contact show` output, or `None` when it exits 1 (no such contact).
    pub async fn contact_show(&self, tenant: &str, id: &str) -> Option<Value> {
        self.show(&["contact", "show", "--tenant", tenant, id])
            .await
    }

    pub async fn contact_show_activity(&self, tenant: &str, id: &str) -> Value {
        self.show(&["contact", "show", "--tenant", tenant, id, "--activity"])
            .await
            .expect("contact exists")
    }

    pub async fn user_show(&self, tenant: &str, id: &str) -> Option<Value> {
        self.show(&["user", "show", "--tenant", tenant, id]).await
    }

    async fn show(&self, args: &[&str]) -> Option<Value> {
        let out = self.cli(args).await;
        match out.status.code() {
            Some(0) => Some(serde_json::from_slice(&out.stdout).expect("show prints JSON")),
            Some(1) => {
                assert!(!out.stderr.is_empty(), "exit 1 explains itself on stderr");
                None
            }
            other => panic!(
                "show failed with {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetterRow> {
        journal::list_dead_letters(&self.pool).await.unwrap()
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
    if let Ok(conn) = amqp::connect(&settings.amqp, "test-cleanup").await {
        if let Ok(ch) = conn.create_channel().await {
            let names = Names::new(&settings.amqp.prefix);
            // `test-events` is the chaos tests' durable event queue.
            let test_events = format!("{}.test-events", settings.amqp.prefix);
            for q in [
                &names.contact_queue,
                &names.user_queue,
                &names.dead_letters,
                &test_events,
            ] {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for x in [&names.commands, &names.events, &names.dead] {
                let _ = ch
                    .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
        }
        let _ = conn.close(200, "cleaned".into()).await;
    }
    if let Ok(admin) = PgPool::connect(ADMIN_DB).await {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
        ))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// Declares an exclusive queue (bound to `exchange` with `#` if given) and
/// collects what arrives into `inbox`. Returns the queue name.
async fn listen(conn: &Connection, exchange: Option<&str>, inbox: Inbox) -> String {
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
    let name = q.name().as_str().to_owned();
    if let Some(x) = exchange {
        ch.queue_bind(
            name.as_str().into(),
            x.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let mut consumer = ch
        .basic_consume(
            name.as_str().into(),
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
            let key = d
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str().to_owned());
            let v: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
            inbox.items.lock().unwrap().push((key, v));
            inbox.changed.send_modify(|n| *n += 1);
        }
    });
    name
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

/// The default tenant's guardrail settings as environment variables, so a
/// worker process runs with the test's policy.
fn guardrail_env(s: &Settings) -> Vec<(String, String)> {
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

/// A free local port for a worker's HTTP listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on a local port: status code and body, or `None` when
/// nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// A response as the tests read it: status, headers (names lower-cased)
/// and body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a local port (the body sent as a form when
/// given); panics when nothing answers.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> HttpResponse {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the server answers");
    http_request_on(stream, port, method, path, headers, form).await
}

/// [`http_request`] on a connection the caller opened (from another
/// local address, say).
pub async fn http_request_on(
    mut stream: tokio::net::TcpStream,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = form {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The status code of `GET path`, or `None` when nothing answers.
pub async fn http_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path).await.map(|(s, _)| s)
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

/// Polls a condition that has no notification of its own (a row written by
/// another process) until it yields a value, failing at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually`] with its own deadline, for what legitimately takes
/// longer (a cluster node rejoining).
pub async fn eventually_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

pub fn issued_at(minute: u32) -> String {
    format!("2026-11-22T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60)
}

pub fn routing_key_of(cmd: &Value) -> String {
    format!(
        "{}.{}",
        cmd["tenant"].as_str().unwrap_or("x"),
        cmd["type"].as_str().unwrap_or("x")
    )
}

/// Types of the given events, in order.
pub fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The backend of this test's database that is named as the relay's session
/// and holds the relay lock, if any.
pub async fn relay_lock_holder(pool: &PgPool) -> Option<i32> {
    try_relay_lock_holder(pool).await.expect("reading pg_locks")
}

/// [`relay_lock_holder`], or the error while the database is away (the
/// chaos soak restarts it).
pub async fn try_relay_lock_holder(pool: &PgPool) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
         WHERE a.datname = current_database() AND a.application_name = $1 \
           AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid = (($2::bigint >> 32) & 4294967295)::oid \
           AND l.objid = ($2::bigint & 4294967295)::oid",
    )
    .bind(lifecycle_worker::relay::APPLICATION_NAME)
    .bind(lifecycle_worker::relay::LOCK_KEY)
    .fetch_optional(pool)
    .await
}

/// Ends a backend of this test's database (never another test's): whether
/// it was there to end.
pub async fn terminate_backend(pool: &PgPool, pid: i32) -> bool {
    try_terminate_backend(pool, pid)
        .await
        .expect("pg_terminate_backend")
}

/// [`terminate_backend`], or the error while the database is away.
pub async fn try_terminate_backend(pool: &PgPool, pid: i32) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity \
         WHERE pid = $1 AND datname = current_database()",
    )
    .bind(pid)
    .fetch_one(pool)
    .await
}
