//! Issue 25, item 2: the console cannot be exhausted from the network.
//! Connections that send nothing, send a request head slowly, stall a body
//! or sit idle between requests are closed; at most
//! `http.console_max_connections` are open, and at the cap the oldest
//! connection that has not carried an operator's request makes room, so an
//! operator gets in while others hold connections open, and the worker,
//! whose file descriptors the console shares, keeps applying commands.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{eventually, free_port, http_request, spawn_worker_under, TestEnv, DEADLINE};

const TOKEN: &str = "console-token-for-tests-0123456789";

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the console accepts")
}

/// Waits until the console answers on `port`.
async fn console_up(port: u16) {
    eventually("the console listens", || async move {
        TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;
}

/// Sends `head`, then one more byte every `every`, never finishing, until
/// the server closes the connection.
async fn dribble(
    mut w: impl AsyncWrite + Unpin,
    head: &[u8],
    every: Duration,
) -> std::io::Result<()> {
    w.write_all(head).await?;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        w.write_all(b"a").await?;
    }
}

/// Reads until the server closes the connection (end of stream or reset)
/// and returns what it sent; fails if it is still open at the deadline.
async fn closed_by_server(stream: &mut (impl AsyncRead + Unpin), what: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what}: still open after {DEADLINE:?}");
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends `GET path` on a kept-alive connection and reads one response:
/// its status, or `None` if the connection was closed instead.
async fn keep_alive_get(stream: &mut TcpStream, path: &str, bearer: bool) -> Option<u16> {
    let auth = if bearer {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("a response within the deadline")
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("a length"));
    while got.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    head.split(' ').nth(1)?.parse().ok()
}

/// This test process may hold at least `n` files: its soft limit is
/// raised towards its hard limit if needed (the attack below opens more
/// connections than a default soft limit of 1,024 allows).
fn allow_open_files(n: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("an open-files limit");
    let mut fields = line.split_whitespace().skip(3);
    let soft: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let hard: u64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    if soft >= n {
        return;
    }
    assert!(
        hard >= n,
        "this test needs {n} open files; the hard limit is {hard}"
    );
    let raised = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={n}:{hard}"),
        ])
        .status()
        .expect("prlimit runs");
    assert!(raised.success(), "prlimit raised the open-files limit");
}

/// The reviewer's reproduction: a worker process with 1,024 file
/// descriptors, 1,100 connections held open to its console (half of them
/// having sent a header line they never finish) and a client sending a
/// request head a byte a second. The operator still gets the overview,
/// and the worker still applies a command.
#[tokio::test]
async fn an_operator_gets_in_while_held_connections_exceed_the_file_limit() {
    allow_open_files(4_096);
    let env = TestEnv::prepare_with(|_| {}).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _worker = spawn_worker_under(
        &env,
        &["prlimit", "--nofile=1024:1024", "--"],
        "127.0.0.1:0",
        &[
            ("LIFECYCLE__HTTP__CONSOLE_LISTEN", &listen),
            ("LIFECYCLE__HTTP__CONSOLE_TOKEN", TOKEN),
        ],
        Stdio::null(),
    );
    console_up(port).await;
    let up = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "first_name": "Ana"}),
    );
    assert_eq!(env.send(&up).await["outcome"], "applied");

    let mut held = Vec::with_capacity(1_100);
    for i in 0..1_100 {
        let mut c = connect(port).await;
        if i % 2 == 1 {
            // Ignored once the server has closed it.
            let _ = c.write_all(b"GET / HTTP/1.1\r\n").await;
        }
        held.push(c);
    }
    // A request head that never ends, a byte a second.
    let slowloris = tokio::spawn(dribble(
        connect(port).await,
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(1),
    ));

    let bearer = format!("Bearer {TOKEN}");
    let bearer = bearer.as_str();
    eventually("the operator's overview", || async move {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            http_request(port, "GET", "/", &[("Authorization", bearer)], None),
        )
        .await
        .ok()?;
        (r.status == 200).then_some(())
    })
    .await;
    let deactivate = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-1"}),
    );
    assert_eq!(env.send(&deactivate).await["outcome"], "applied");
    slowloris.abort();
    drop(held);
    env.finish().await;
}

/// A connection that sends nothing, one that sends its head a byte at a
/// time, one idle after a response, and one whose body stalls: each is
/// closed after the timeouts (1 s here).
#[tokio::test]
async fn silent_slow_idle_and_stalled_connections_are_closed() {
    let port = free_port();
    let env = TestEnv::start_with(|s| {
        s.http.console_listen = Some(format!("127.0.0.1:{port}"));
        s.http.console_token = Some(TOKEN.into());
        s.http.console_header_timeout_secs = 1;
        s.http.console_idle_timeout_secs = 1;
    })
    .await;
    console_up(port).await;

    let mut silent = connect(port).await;
    // A byte every 100 ms: never idle, but the head never ends.
    let (mut slow, slow_writes) = connect(port).await.into_split();
    let dribbling = tokio::spawn(dribble(
        slow_writes,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ",
        Duration::from_millis(100),
    ));
    let mut idle = connect(port).await;
    assert_eq!(keep_alive_get(&mut idle, "/login", false).await, Some(200));
    let mut stalled = connect(port).await;
    stalled
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nname=x&tok",
        )
        .await
        .unwrap();

    closed_by_server(&mut silent, "a connection that sends nothing").await;
    closed_by_server(&mut idle, "an idle kept-alive connection").await;
    closed_by_server(&mut stalled, "a stalled body").await;
    closed_by_server(&mut slow, "a head sent a byte at a time").await;
    dribbling.abort();
    env.finish().await;
}

/// With room for four connections: a fifth makes room by closing the
/// oldest that has not carried an operator's request; an operator's
/// kept-alive connection is never the one closed; and when every
/// connection is an operator's, a new one is told to come back (503).
#[tokio::test]
async fn at_the_cap_strangers_make_room_and_operators_stay() {
    let port = free_port();
    let env = TestEnv::start_with(|s| {
        s.http.console_listen = Some(format!("127.0.0.1:{port}"));
        s.http.console_token = Some(TOKEN.into());
        s.http.console_max_connections = 4;
        s.http.console_header_timeout_secs = 60;
        s.http.console_idle_timeout_secs = 60;
    })
    .await;
    console_up(port).await;

    let mut strangers = Vec::new();
    for _ in 0..4 {
        strangers.push(connect(port).await);
    }
    let mut operator = connect(port).await;
    assert_eq!(keep_alive_get(&mut operator, "/", true).await, Some(200));
    closed_by_server(&mut strangers[0], "the oldest stranger").await;
    for _ in 0..10 {
        strangers.push(connect(port).await);
    }
    for s in &mut strangers[1..11] {
        closed_by_server(s, "an older stranger").await;
    }
    assert_eq!(
        keep_alive_get(&mut operator, "/guard", true).await,
        Some(200),
        "the operator's connection stayed"
    );
    // Three more operators: every connection is an operator's.
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut o = connect(port).await;
        assert_eq!(keep_alive_get(&mut o, "/", true).await, Some(200));
        others.push(o);
    }
    let mut late = connect(port).await;
    let refused = closed_by_server(&mut late, "a connection past the cap").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    for o in std::iter::once(&mut operator).chain(&mut others) {
        assert_eq!(keep_alive_get(o, "/", true).await, Some(200));
    }
    env.finish().await;
}

/// A handler that waits longer than the idle timeout (here on a row lock;
/// a canary's wait in practice) is not idleness: its response arrives.
#[tokio::test]
async fn a_handler_busy_for_longer_than_the_idle_timeout_still_answers() {
    let port = free_port();
    let env = TestEnv::start_with(|s| {
        s.http.console_listen = Some(format!("127.0.0.1:{port}"));
        s.http.console_token = Some(TOKEN.into());
        s.http.console_idle_timeout_secs = 1;
    })
    .await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dead_letters (fingerprint, body, body_len, body_sha256, properties, exchange, \
         routing_key, tenant_id, code, message) \
         VALUES ('fp', '\\x7b7d', 2, repeat('0', 64), '{}', 'x', 'acme.contact.upsert', 'acme', \
         'invalid_command', 'm') RETURNING id",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    console_up(port).await;
    // The replay's claim waits for this lock.
    let mut lock = env.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM dead_letters WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *lock)
        .await
        .unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let replay = tokio::spawn(async move {
        let path = format!("/dead-letters/{id}/replay");
        http_request(port, "POST", &path, &[("Authorization", &bearer)], Some("")).await
    });
    let pool = &env.pool;
    eventually("the claim waiting on the lock for 3 s", || async move {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND now() - query_start > interval '3 seconds')",
        )
        .fetch_one(pool)
        .await
        .unwrap()
        .then_some(())
    })
    .await;
    lock.rollback().await.unwrap();
    let r = tokio::time::timeout(DEADLINE, replay)
        .await
        .expect("the replay answers")
        .expect("a whole response, the connection not closed under it");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 dead letter(s) replayed"), "{}", r.body);
    env.finish().await;
}
