//! Contract section 9: whatever a message holds, it ends in the dead-letter
//! store without holding up others; oversize bodies are cut and the memory
//! of unacknowledged deliveries stays bounded; the clock, the routing key
//! and filter bulks are checked; the worker's tables live in its own schema.

use crate::helpers::{eventually, issued_at, spawn_worker, TestEnv};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lifecycle_worker::amqp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn with_header(name: &str, value: AMQPValue) -> lapin::BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(name.into(), value);
    amqp::json_properties().with_headers(headers)
}

#[tokio::test]
async fn every_refused_message_is_stored_whatever_it_holds() {
    let env = TestEnv::start().await;
    let upsert = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "c@example.com"}),
    );
    assert_eq!(env.send(&upsert).await["outcome"], "applied");
    let deactivate = |cmd: &TestEnv, f: &dyn Fn(&mut Value)| {
        let mut v = cmd.command(
            "acme",
            "contact.deactivate",
            1,
            json!({"contact_id": "c-404"}),
        );
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let key = "acme.contact.deactivate";
    let plain = amqp::json_properties;
    let cases: Vec<(&str, Vec<u8>, lapin::BasicProperties, &str)> = vec![
        (
            "NUL in tenant",
            deactivate(&env, &|v| v["tenant"] = json!("ac\u{0}me")),
            plain(),
            "invalid_command",
        ),
        (
            "NUL in type",
            deactivate(&env, &|v| v["type"] = json!("contact.deac\u{0}tivate")),
            plain(),
            "invalid_command",
        ),
        (
            "NUL in command_id",
            deactivate(&env, &|v| v["command_id"] = json!("id\u{0}1")),
            plain(),
            "invalid_command",
        ),
        (
            "NUL in a field name",
            deactivate(&env, &|v| v["payload"]["rea\u{0}son"] = json!("x")),
            plain(),
            "invalid_command",
        ),
        (
            "NUL in an activity body",
            serde_json::to_vec(&env.command(
                "acme",
                "contact.log_activity",
                1,
                json!({"contact_id": "c-1", "kind": "note", "body": "a\u{0}b"}),
            ))
            .unwrap(),
            plain(),
            "invalid_command",
        ),
        (
            "NUL in a header value",
            deactivate(&env, &|_| {}),
            with_header("x-note", AMQPValue::LongString(LongString::from("a\0b"))),
            "not_found",
        ),
        (
            "NUL in a header name",
            deactivate(&env, &|_| {}),
            with_header("x-no\0te", AMQPValue::Boolean(true)),
            "not_found",
        ),
        (
            "invalid UTF-8 in a header",
            deactivate(&env, &|_| {}),
            with_header(
                "x-note",
                AMQPValue::LongString(LongString::from(vec![0xff, 0xfe, 0x00, 0x41])),
            ),
            "not_found",
        ),
    ];
    for (i, (name, body, props, code)) in cases.iter().enumerate() {
        let reply = env.send_raw(key, body, props.clone()).await;
        assert_eq!(reply["error"]["code"], *code, "{name}: {reply}");
        // Valid commands keep flowing between the bad ones.
        let valid = env.command(
            "acme",
            "contact.set_attributes",
            2 + i as u32,
            json!({"contact_id": "c-1", "attributes": {"n": i}}),
        );
        assert_eq!(env.send(&valid).await["outcome"], "applied", "after {name}");
    }
    let dead = env.dead_letters().await;
    for (name, body, _, code) in &cases {
        let row = dead
            .iter()
            .find(|d| d.body_sha256 == sha(body))
            .unwrap_or_else(|| panic!("{name}: no dead letter"));
        assert_eq!(row.code, *code, "{name}");
        assert_eq!(&row.body, body, "{name}: the original bytes are kept");
    }
    let tenant_row = dead
        .iter()
        .find(|d| d.body_sha256 == sha(&cases[0].1))
        .unwrap();
    assert_eq!(tenant_row.tenant_id.as_deref(), Some("ac\u{FFFD}me"));

    // The broker-level path: messages parked on {p}.dead are drained even
    // when their properties cannot be stored as they are.
    let mut poison_bodies = Vec::new();
    for (i, props) in [
        with_header("x-no\0te", AMQPValue::LongString(LongString::from("\0"))),
        with_header(
            "x-note",
            AMQPValue::LongString(LongString::from(vec![0xc3, 0x28])),
        ),
        plain(),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!("poison {i}").into_bytes();
        let confirm = env
            .ch
            .basic_publish(
                env.names.dead.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
        poison_bodies.push(body);
    }
    let pool = env.pool.clone();
    eventually("every parked message drained", || {
        let pool = pool.clone();
        let shas: Vec<String> = poison_bodies.iter().map(|b| sha(b)).collect();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM dead_letters WHERE code = 'poison' AND body_sha256 = ANY($1)",
            )
            .bind(&shas)
            .fetch_one(&pool)
            .await
            .ok()?;
            (n == 3).then_some(())
        }
    })
    .await;
    env.finish().await;
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb / 1024.0
}

#[tokio::test]
async fn oversize_bodies_are_cut_and_unacked_memory_stays_bounded() {
    let env = TestEnv::prepare_with(|_| {}).await;
    const N: usize = 200;
    const SIZE: usize = 2 * 1024 * 1024;
    // The whole backlog waits in the queue before the worker starts, so
    // the broker may push as much of it as the prefetch allows at once.
    let pad = "x".repeat(SIZE);
    let mut first = Vec::new();
    for i in 0..N {
        let body = format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes();
        if i == 0 {
            first = body.clone();
        }
        env.publish_on(
            &env.ch,
            "acme.contact.upsert",
            &body,
            amqp::json_properties(),
        )
        .await;
    }
    drop(pad);
    let mut worker = spawn_worker(&env);
    let pid = worker.child.id().expect("worker runs");
    let pool = env.pool.clone();
    eventually("every oversize message dead-lettered", || {
        let pool = pool.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE code = 'malformed'")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (n == N as i64).then_some(())
        }
    })
    .await;
    let peak = peak_rss_mb(pid);
    eprintln!("worker peak RSS with {N} x 2 MiB bodies: {peak:.1} MB");
    assert!(peak < 200.0, "peak RSS {peak:.1} MB");

    let row = env
        .dead_letters()
        .await
        .into_iter()
        .find(|d| d.body_sha256 == sha(&first))
        .expect("the first body's row");
    assert_eq!(row.body_len, first.len() as i64);
    assert_eq!(
        row.body,
        first[..env.settings.limits.dead_letter_body_bytes]
    );
    assert!(
        row.message.contains("more than the limit"),
        "{}",
        row.message
    );

    let (code, _, stderr) = env.cli_text(&["dlq", "replay", &row.id.to_string()]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot be replayed"), "{stderr}");
    let (code, out, _) = env.cli_text(&["dlq", "list", "--json"]).await;
    assert_eq!(code, 0);
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let entry = listed.iter().find(|r| r["id"] == row.id).unwrap();
    assert_eq!(entry["body_len"], first.len());
    assert_eq!(entry["body_sha256"], sha(&first));
    let (_, shown, _) = env.cli_text(&["dlq", "show", &row.id.to_string()]).await;
    assert!(shown.contains(&sha(&first)) && shown.contains("too large to keep whole"));
    worker.kill9().await;
    env.finish().await;
}

#[tokio::test]
async fn clock_skew_routing_key_and_filter_size_are_checked() {
    let env = TestEnv::start_with(|s| s.limits.max_bulk_ids = 3).await;
    let mut ahead = env.command("acme", "contact.deactivate", 0, json!({"contact_id": "c"}));
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    ahead["issued_at"] = json!(tomorrow
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap());
    let r = env.send(&ahead).await;
    assert_eq!(r["error"]["code"], "invalid_command", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("ahead"));

    let cmd = env.command("acme", "contact.deactivate", 0, json!({"contact_id": "c"}));
    let r = env
        .send_raw(
            "globex.contact.deactivate",
            &serde_json::to_vec(&cmd).unwrap(),
            amqp::json_properties(),
        )
        .await;
    assert_eq!(r["error"]["code"], "invalid_command");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("globex.contact.deactivate")
            && message.contains("acme.contact.deactivate"),
        "{message}"
    );

    for i in 0..4 {
        let c = env.command(
            "acme",
            "contact.upsert",
            0,
            json!({"contact_id": format!("c-{i}"), "email": "e@example.com", "employer_id": "emp"}),
        );
        assert_eq!(env.send(&c).await["outcome"], "applied");
    }
    let bulk = env.command(
        "acme",
        "contact.bulk",
        1,
        json!({"filter": {"employer_id": "emp"}, "operation": {"type": "contact.deactivate", "payload": {}}}),
    );
    let r = env.send(&bulk).await;
    assert_eq!(r["error"]["code"], "invalid_command", "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_bulk_ids"));
    let c = env.contact_show("acme", "c-0").await.unwrap();
    assert_eq!(c["active"], true);
    let _ = issued_at(0);
    env.finish().await;
}

#[tokio::test]
async fn control_characters_are_escaped_in_dlq_list_and_show() {
    let env = TestEnv::start().await;
    let mut cmd = env.command("acme", "contact.deactivate", 0, json!({"contact_id": "c"}));
    cmd["command_id"] = json!("\u{1b}[2J\u{1b}[31mred\u{9b}");
    let r = env.send(&cmd).await;
    assert_eq!(r["error"]["code"], "invalid_command");
    let id = env.dead_letters().await[0].id.to_string();
    for args in [
        vec!["dlq", "list"],
        vec!["dlq", "list", "--json"],
        vec!["dlq", "show", id.as_str()],
    ] {
        let (code, out, _) = env.cli_text(&args).await;
        assert_eq!(code, 0, "{args:?}");
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?} printed a raw control character"
        );
        assert!(out.contains("\\u001b"), "{args:?}: {out}");
    }
    let (_, out, _) = env.cli_text(&["dlq", "list", "--json"]).await;
    let parsed: Vec<Value> = serde_json::from_str(&out).expect("still valid JSON");
    assert_eq!(parsed[0]["command_id"], "\u{1b}[2J\u{1b}[31mred\u{9b}");
    env.finish().await;
}

#[tokio::test]
async fn the_tables_live_in_the_workers_schema_and_v1_tables_move_there() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let in_schema = |schema: &'static str| {
        let pool = env.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = $1 ORDER BY 1",
            )
            .bind(schema)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let ours = in_schema("lifecycle").await;
    assert!(ours.contains(&"outbox".to_owned()) && ours.contains(&"_sqlx_migrations".to_owned()));
    assert!(in_schema("public").await.is_empty(), "nothing in public");

    // Constraints hold what the data relies on.
    let insert_event = |event: &str| {
        format!(
            "INSERT INTO outbox (tenant_id, event_id, routing_key, event_type, entity_kind, entity_id, version, body) \
             VALUES ('acme', '{event}', 'k', 'ContactUpdated', 'contact', 'c', 1, '{{}}')"
        )
    };
    let same = "6f0c6f9e-3b0a-4c1e-9a53-1d2f5e0b7a11";
    sqlx::query(&insert_event(same))
        .execute(&env.pool)
        .await
        .unwrap();
    assert!(sqlx::query(&insert_event(same))
        .execute(&env.pool)
        .await
        .is_err());
    assert!(sqlx::query(
        "INSERT INTO processed_commands (tenant_id, command_id, command_type, outcome, reply) \
         VALUES ('acme', 'x', 'contact.deactivate', 'exploded', '{}')"
    )
    .execute(&env.pool)
    .await
    .is_err());

    // A v1 installation (tables in public) is moved on the next start, data included.
    for table in [
        "_sqlx_migrations",
        "contacts",
        "contact_activity",
        "users",
        "employers",
        "roles",
        "processed_commands",
        "outbox",
        "dead_letters",
    ] {
        sqlx::query(&format!("ALTER TABLE lifecycle.{table} SET SCHEMA public"))
            .execute(&env.pool)
            .await
            .unwrap();
    }
    // What v1 did not have goes: later migrations run again on the move.
    sqlx::query("DELETE FROM public._sqlx_migrations WHERE version >= 3")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("DROP SCHEMA lifecycle CASCADE")
        .execute(&env.pool)
        .await
        .unwrap();
    let pool = lifecycle_worker::store::prepare(&env.settings)
        .await
        .unwrap();
    let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_id = $1::uuid")
        .bind(same)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(moved, 1);
    pool.close().await;
    assert!(in_schema("public").await.is_empty(), "public emptied");
    env.finish().await;
}
