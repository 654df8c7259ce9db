//! What operators see: `/metrics` after known traffic, health endpoints, and
//! logs that never carry personal data at info level. Each test runs the
//! worker as its own process, so its counters and logs are its own.

use std::process::Stdio;

use crate::helpers::{eventually, free_port, http_get, spawn_worker_with, TestEnv};
use lifecycle_worker::amqp;
use serde_json::{json, Value};

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let series = l.split_whitespace().next().unwrap_or("");
            (series == name || series.starts_with(&format!("{name}{{")))
                && labels.iter().all(|lab| series.contains(lab))
        })
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let port = free_port();
    let mut worker = spawn_worker_with(&env, &format!("127.0.0.1:{port}"), &[], Stdio::null());
    eventually("ready", || async {
        (http_get(port, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    assert_eq!(http_get(port, "/healthz").await.unwrap().0, 200);

    for i in 0..3 {
        let c = env.command(
            "acme",
            "contact.upsert",
            0,
            json!({"contact_id": format!("c-{i}"), "email": "m@example.com"}),
        );
        assert_eq!(env.send(&c).await["outcome"], "applied");
    }
    let dup = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-0"}),
    );
    env.send(&dup).await;
    assert_eq!(env.send(&dup).await["duplicate"], true);
    env.send(&env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "nobody"}),
    ))
    .await;
    env.send_raw("acme.contact.upsert", b"not json", amqp::json_properties())
        .await;

    let (status, body) = http_get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let m = |name: &str, labels: &[&str]| sample(&body, name, labels);
    assert_eq!(
        m(
            "lifecycle_commands_total",
            &["type=\"contact.upsert\"", "outcome=\"applied\""]
        ),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        m(
            "lifecycle_commands_total",
            &["type=\"contact.deactivate\"", "outcome=\"applied\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            "lifecycle_commands_total",
            &["type=\"contact.deactivate\"", "outcome=\"duplicate\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            "lifecycle_commands_total",
            &["type=\"contact.deactivate\"", "outcome=\"rejected\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            "lifecycle_commands_total",
            &["type=\"unknown\"", "outcome=\"rejected\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        m("lifecycle_dead_letters_total", &["code=\"not_found\""]),
        Some(1.0)
    );
    assert_eq!(
        m("lifecycle_dead_letters_total", &["code=\"malformed\""]),
        Some(1.0)
    );
    assert_eq!(
        m("lifecycle_command_duration_seconds_count", &[]),
        Some(7.0)
    );
    assert_eq!(m("lifecycle_broker_connected", &[]), Some(1.0));
    assert!(m("lifecycle_db_pool_connections", &["state=\"in_use\""]).is_some());
    assert!(m(
        "lifecycle_transient_retries_total",
        &["component=\"worker\""]
    )
    .is_some());
    // Events of the 4 applied commands (one created, deactivated + suppressed).
    let published = eventually("events published", || async {
        let (_, body) = http_get(port, "/metrics").await?;
        let n = sample(&body, "lifecycle_events_published_total", &[])?;
        (n >= 5.0).then_some(body)
    })
    .await;
    assert_eq!(
        sample(&published, "lifecycle_events_published_total", &[]),
        Some(5.0)
    );
    assert_eq!(
        sample(&published, "lifecycle_outbox_pending", &[]),
        Some(0.0)
    );
    let (status, _) = worker.terminate().await;
    assert!(status.success());
    env.finish().await;
}

#[tokio::test]
async fn logs_at_info_never_carry_personal_data() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let log_path = std::env::temp_dir().join(format!("lw-log-{}.jsonl", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let mut worker = spawn_worker_with(
        &env,
        &format!("127.0.0.1:{port}"),
        &[("LIFECYCLE__LOG__FORMAT", "json"), ("RUST_LOG", "info")],
        Stdio::from(log),
    );
    let secrets = [
        "Philippa",
        "Quigglesworth",
        "philippa.q@private.example",
        "+44 7700 900123",
        "Confidential: leaving for a competitor",
        "Head of Hiring",
    ];
    let cmds = [
        env.command("acme", "contact.upsert", 0, json!({"contact_id": "c-1", "first_name": secrets[0], "last_name": secrets[1], "email": secrets[2], "phone": secrets[3], "title": secrets[5]})),
        env.command("acme", "contact.log_activity", 1, json!({"contact_id": "c-1", "kind": "message", "action_code": "deact", "body": secrets[4]})),
        env.command("acme", "user.upsert", 1, json!({"user_id": "u-1", "email": secrets[2], "name": secrets[0]})),
        env.command("acme", "contact.delete", 2, json!({"contact_id": "c-1"})),
        // Refused ones are logged too.
        env.command("acme", "contact.upsert", 3, json!({"contact_id": "c-2", "email": secrets[2], "colour": secrets[1]})),
        env.command("acme", "contact.log_activity", 3, json!({"contact_id": "ghost", "kind": "note", "body": secrets[4]})),
    ];
    for c in &cmds {
        env.send(c).await;
    }
    let (status, _) = worker.terminate().await;
    assert!(status.success());
    let text = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_file(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "command rejected and dead-lettered"),
        "the refusals were logged: {text}"
    );
    assert!(lines
        .iter()
        .all(|l| l["level"] != "DEBUG" && l["level"] != "TRACE"));
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{secret:?} appeared in the logs:\n{text}"
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn the_broker_holds_exactly_the_declared_definitions() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let expected = amqp::definitions(&env.names, env.settings.amqp.delivery_limit);
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_queues",
            "name",
            "durable",
            "arguments",
            "--formatter",
            "json",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let prefix = format!("{}.", env.settings.amqp.prefix);
    let mut actual: Vec<Value> = listed
        .into_iter()
        .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .map(|q| {
            let args = match &q["arguments"] {
                // rabbitmqctl prints arguments as [[key, type, value], ...].
                Value::Array(entries) => entries
                    .iter()
                    .map(|e| {
                        let e = e.as_array().unwrap();
                        (e[0].as_str().unwrap().to_owned(), e[e.len() - 1].clone())
                    })
                    .collect(),
                Value::Object(m) => m.clone(),
                _ => serde_json::Map::new(),
            };
            json!({"name": q["name"], "durable": q["durable"], "arguments": args})
        })
        .collect();
    actual.sort_by_key(|q| q["name"].as_str().unwrap().to_owned());
    let mut wanted: Vec<Value> = expected["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| json!({"name": q["name"], "durable": q["durable"], "arguments": q["arguments"]}))
        .collect();
    wanted.sort_by_key(|q| q["name"].as_str().unwrap().to_owned());
    assert_eq!(actual, wanted);
    env.finish().await;
}

#[tokio::test]
async fn check_says_what_is_wrong() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let (code, out, err) = env.cli_text(&["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("postgres: ok"), "{out}");
    assert!(out.contains("rabbitmq: ok"), "{out}");

    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
        .arg("check")
        .env(
            "LIFECYCLE__DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/nowhere",
        )
        .env("LIFECYCLE__AMQP__URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .env("LIFECYCLE__AMQP__PREFIX", &env.settings.amqp.prefix)
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{out}");
    assert!(
        out.contains("postgres: FAILED at postgres://127.0.0.1:1/nowhere"),
        "{out}"
    );
    assert!(
        out.contains("rabbitmq: FAILED at amqp://127.0.0.1:1/"),
        "{out}"
    );
    assert!(out.to_lowercase().contains("refused"), "{out}");
    assert!(
        !out.contains("guest:guest"),
        "credentials are never printed: {out}"
    );

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
        .arg("check")
        .env("LIFECYCLE__AMQP__URL", "http://example")
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("amqp.url"));

    // No host: refused before any connection, the password nowhere.
    let hostless = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
        .arg("check")
        .env(
            "LIFECYCLE__AMQP__URL",
            "amqp:guest:hunter2@127.0.0.1:5672/%2f",
        )
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&hostless.stdout),
        String::from_utf8_lossy(&hostless.stderr)
    );
    assert_eq!(hostless.status.code(), Some(2), "{said}");
    assert!(
        said.contains("amqp.url") && !said.contains("hunter2"),
        "{said}"
    );
    env.finish().await;
}

/// Transactions committed in this test's database so far. A backend
/// reports its counts when it goes idle or exits, so read this after the
/// worker has stopped for an exact figure.
async fn committed(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(&env.db_name)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn scraping_health_and_metrics_never_touches_the_database() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let port = free_port();
    let mut worker = spawn_worker_with(
        &env,
        &format!("127.0.0.1:{port}"),
        &[("LIFECYCLE__DATABASE__MAX_CONNECTIONS", "2")],
        Stdio::null(),
    );
    eventually("ready", || async {
        (http_get(port, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    let before = committed(&env).await;
    const SCRAPES: usize = 500;
    let storm = futures::future::join_all((0..SCRAPES).map(|i| async move {
        let path = if i % 2 == 0 { "/readyz" } else { "/metrics" };
        let (a, b) = tokio::join!(http_get(port, path), http_get(port, "/metrics"));
        (a.map(|r| r.0), b.map(|r| r.0))
    }));
    let commands = async {
        let mut outcomes = Vec::new();
        for i in 0..50 {
            let c = env.command(
                "acme",
                "contact.upsert",
                0,
                json!({"contact_id": format!("c-{i}"), "email": "m@example.com"}),
            );
            outcomes.push(env.send(&c).await["outcome"].clone());
        }
        outcomes
    };
    let (answers, outcomes) = tokio::join!(storm, commands);
    assert!(
        answers
            .iter()
            .all(|(a, b)| *a == Some(200) && *b == Some(200)),
        "every scrape answered 200"
    );
    assert!(outcomes.iter().all(|o| o == "applied"), "{outcomes:?}");
    let (status, _) = worker.terminate().await;
    assert!(status.success());
    let spent = committed(&env).await - before;
    // Before: at least one transaction per scrape. Now: the 50 commands,
    // the relay's rounds and one probe a second.
    assert!(
        spent < (2 * SCRAPES) as i64,
        "{spent} transactions for {} scrapes and 50 commands",
        2 * SCRAPES
    );
    eprintln!(
        "{spent} transactions for {} scrapes and 50 commands",
        2 * SCRAPES
    );
    env.finish().await;
}

#[tokio::test]
async fn a_broker_node_that_is_down_is_passed_over_and_check_names_each_node() {
    let down = free_port();
    let dead = format!("amqp://guest:guest@127.0.0.1:{down}/%2f");
    let live = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let env = TestEnv::start_with(|s| {
        s.amqp.urls = vec![
            secrecy::SecretString::from(dead.clone()),
            secrecy::SecretString::from(live),
        ];
    })
    .await;
    let cmd = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "first_name": "N"}),
    );
    assert_eq!(
        env.send(&cmd).await["outcome"],
        "applied",
        "the worker failed over"
    );
    let urls = format!("{dead},{live}");
    let out = env
        .cli_with(&["check"], &[("LIFECYCLE__AMQP__URLS", urls.as_str())])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("rabbitmq: FAILED at amqp://127.0.0.1:{down}/%2f")),
        "{stdout}"
    );
    assert!(
        stdout.contains("rabbitmq: ok (amqp://127.0.0.1:5672/%2f; topology declared)"),
        "{stdout}"
    );
    assert!(!stdout.contains("guest:guest"), "no secret: {stdout}");
    env.finish().await;
}
