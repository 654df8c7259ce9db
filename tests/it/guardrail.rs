//! Contract section 10: the mass-change guardrail holds destructive
//! changes past a tenant's allowance, exactly across replicas, while the
//! rest keeps flowing; operators release (each once, in order, judged by
//! its own issued_at) or discard what it holds.

use crate::helpers::{eventually, free_port, http_get, spawn_worker_with, TestEnv};
use lifecycle_worker::config::Settings;
use lifecycle_worker::domain::policy::GuardrailOverride;
use serde_json::{json, Value};
use std::process::Stdio;

fn max_changes(n: u64) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.tenants.entry("default".into()).or_default().guardrail = Some(GuardrailOverride {
            max_changes: Some(n),
            ..Default::default()
        });
    }
}

async fn upsert(env: &TestEnv, tenant: &str, id: &str) {
    let c = env.command(
        tenant,
        "contact.upsert",
        0,
        json!({"contact_id": id, "email": format!("{id}@example.com")}),
    );
    assert_eq!(env.send(&c).await["outcome"], "applied");
}

fn deactivate(env: &TestEnv, id: &str, minute: u32) -> Value {
    env.command(
        "acme",
        "contact.deactivate",
        minute,
        json!({"contact_id": id}),
    )
}

/// `guard ...` as JSON.
async fn guard_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["guard"];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, out, err) = env.cli_text(&all).await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[tokio::test]
async fn a_tripped_tenant_holds_destructive_changes_while_the_rest_flows() {
    let env = TestEnv::start_with(max_changes(3)).await;
    for i in 0..6 {
        upsert(&env, "acme", &format!("c-{i}")).await;
    }
    upsert(&env, "globex", "c-0").await;
    for i in 0..3 {
        let r = env.send(&deactivate(&env, &format!("c-{i}"), 1)).await;
        assert_eq!(r["outcome"], "applied");
    }
    let tripping = deactivate(&env, "c-3", 1);
    let r = env.send(&tripping).await;
    assert_eq!(r["outcome"], "held", "{r}");
    let hold_id = r["hold_id"].as_i64().expect("a hold id");
    let tripped = env.events_of(&r).await;
    assert_eq!(crate::helpers::types(&tripped), ["GuardrailTripped"]);
    assert_eq!(tripped[0]["subject"], "tenant/acme");
    assert_eq!(tripped[0]["data"]["max_changes"], 3);
    assert_eq!(tripped[0]["data"]["count"], 3);
    assert_eq!(tripped[0]["data"]["window"], "1h");
    assert_eq!(tripped[0]["data"]["command_id"], tripping["command_id"]);

    // Held whole, whatever its headers hold.
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-note".into(),
        lapin::types::AMQPValue::LongString("a\0b".into()),
    );
    let later_cmd = deactivate(&env, "c-4", 1);
    let later = env
        .send_raw(
            &crate::helpers::routing_key_of(&later_cmd),
            &serde_json::to_vec(&later_cmd).unwrap(),
            lifecycle_worker::amqp::json_properties().with_headers(headers),
        )
        .await;
    assert_eq!(later["outcome"], "held");
    assert!(later["events"].as_array().unwrap().is_empty(), "trips once");
    let again = env.send(&tripping).await;
    assert_eq!(
        (&again["outcome"], &again["duplicate"]),
        (&json!("held"), &json!(true))
    );
    assert_eq!(again["hold_id"], hold_id);

    // What would not apply is not counted, and the rest keeps applying.
    assert_eq!(
        env.send(&deactivate(&env, "c-0", 2)).await["outcome"],
        "unchanged"
    );
    let rename = env.command(
        "acme",
        "contact.upsert",
        2,
        json!({"contact_id": "c-5", "first_name": "Ada"}),
    );
    assert_eq!(env.send(&rename).await["outcome"], "applied");
    let back = env.command(
        "acme",
        "contact.reactivate",
        2,
        json!({"contact_id": "c-0"}),
    );
    assert_eq!(env.send(&back).await["outcome"], "applied");
    let other = env.command(
        "globex",
        "contact.deactivate",
        2,
        json!({"contact_id": "c-0"}),
    );
    assert_eq!(
        env.send(&other).await["outcome"],
        "applied",
        "tenants are apart"
    );
    let bulk = env.command(
        "acme",
        "contact.bulk",
        3,
        json!({"contact_ids": ["c-5", "c-1"], "operation": {"type": "contact.archive", "payload": {}}}),
    );
    assert_eq!(
        env.send(&bulk).await["outcome"],
        "held",
        "a bulk is held whole"
    );

    let c3 = env.contact_show("acme", "c-3").await.unwrap();
    assert_eq!(
        (c3["active"].clone(), c3["version"].clone()),
        (json!(true), json!(1))
    );
    let status = guard_json(&env, &["status", "--tenant", "acme"]).await;
    assert_eq!(status[0]["tripped"], true);
    assert_eq!(status[0]["count"], 3);
    assert_eq!(status[0]["max_changes"], 3);
    let held = guard_json(&env, &["list", "--tenant", "acme"]).await;
    let held = held.as_array().unwrap();
    assert_eq!(held.len(), 3);
    assert_eq!(held[0]["hold_id"], hold_id);
    assert_eq!(held[0]["entity"], json!({"kind": "contact", "id": "c-3"}));
    assert_eq!(held[2]["type"], "contact.bulk");
    assert_eq!(held[2]["entity"], Value::Null);
    assert_eq!(held[2]["contact_ids"], json!(["c-5", "c-1"]));
    env.finish().await;
}

#[tokio::test]
async fn release_applies_each_held_command_once_in_order_judged_by_its_own_issued_at() {
    let env = TestEnv::start_with(max_changes(2)).await;
    for i in 1..=4 {
        upsert(&env, "acme", &format!("c-{i}")).await;
    }
    for i in 1..=2 {
        assert_eq!(
            env.send(&deactivate(&env, &format!("c-{i}"), 10)).await["outcome"],
            "applied"
        );
    }
    let rescinded = deactivate(&env, "c-3", 10);
    assert_eq!(env.send(&rescinded).await["outcome"], "held");
    let kept = deactivate(&env, "c-4", 10);
    assert_eq!(env.send(&kept).await["outcome"], "held");
    // Issued after the held deactivation: it wins on release.
    let rehire = env.command(
        "acme",
        "contact.reactivate",
        20,
        json!({"contact_id": "c-3"}),
    );
    assert_eq!(env.send(&rehire).await["outcome"], "unchanged");

    let (code, out, err) = env
        .cli_text(&["guard", "release", "--tenant", "acme", "--all", "--dry-run"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("(contact.deactivate") && out.contains("contact c-3) would get stale"),
        "{out}"
    );
    assert!(out.contains("contact c-4) would get applied"), "{out}");
    assert!(
        out.contains("1 address(es) would become suppressed"),
        "{out}"
    );
    assert_eq!(
        guard_json(&env, &["list"]).await.as_array().unwrap().len(),
        2,
        "a dry run changes nothing"
    );

    // Two releases at once: each held command applies once.
    let release = ["guard", "release", "--tenant", "acme", "--all"];
    let (a, b) = tokio::join!(env.cli_text(&release), env.cli_text(&release));
    assert_eq!((a.0, b.0), (0, 0), "{} {}", a.2, b.2);
    assert!(guard_json(&env, &["list"])
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let released: Vec<Value> = eventually("both GuardrailReleased events", || async {
        let got: Vec<Value> = env
            .events_so_far()
            .into_iter()
            .filter(|e| e["type"] == "GuardrailReleased")
            .collect();
        (got.len() == 2).then_some(got)
    })
    .await;
    let total: i64 = released
        .iter()
        .map(|e| e["data"]["released"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2);
    let c3 = env.contact_show("acme", "c-3").await.unwrap();
    let c4 = env.contact_show("acme", "c-4").await.unwrap();
    assert_eq!(
        (c3["active"].clone(), c4["active"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(c4["version"], 2, "applied once");
    // The final outcome replaces `held`; the window starts again.
    let dup = env.send(&kept).await;
    assert_eq!(
        (&dup["outcome"], &dup["duplicate"]),
        (&json!("applied"), &json!(true))
    );
    assert_eq!(env.send(&rescinded).await["outcome"], "stale");
    let status = guard_json(&env, &["status", "--tenant", "acme"]).await;
    assert_eq!(
        (status[0]["tripped"].clone(), status[0]["count"].clone()),
        (json!(false), json!(0))
    );
    env.finish().await;
}

#[tokio::test]
async fn discarded_commands_are_dead_letters_that_can_be_replayed() {
    let env = TestEnv::start_with(max_changes(1)).await;
    upsert(&env, "acme", "c-1").await;
    upsert(&env, "acme", "c-2").await;
    assert_eq!(
        env.send(&deactivate(&env, "c-1", 1)).await["outcome"],
        "applied"
    );
    let held = deactivate(&env, "c-2", 1);
    assert_eq!(env.send(&held).await["outcome"], "held");
    let (code, out, err) = env
        .cli_text(&["guard", "discard", "--tenant", "acme", "--all"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 held command(s) discarded"), "{out}");
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].code, "discarded");
    assert_eq!(dead[0].command_id.as_deref(), held["command_id"].as_str());
    // Untripped and counted afresh: a deliberate replay applies.
    let (code, _, err) = env
        .cli_text(&["dlq", "replay", &dead[0].id.to_string()])
        .await;
    assert_eq!(code, 0, "{err}");
    let c2 = eventually("the replayed deactivation applied", || async {
        env.contact_show("acme", "c-2")
            .await
            .filter(|c| c["active"] == false)
    })
    .await;
    assert_eq!(c2["version"], 2);
    env.finish().await;
}

/// Outcomes recorded for the tenant's commands of `type`.
async fn outcomes(env: &TestEnv, kind: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT outcome, count(*) FROM processed_commands WHERE command_type = $1 \
         GROUP BY outcome ORDER BY outcome",
    )
    .bind(kind)
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_count_is_exact_across_three_replicas() {
    for run in 0..3 {
        let env = TestEnv::prepare_with(max_changes(100)).await;
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut workers = vec![spawn_worker_with(&env, &listen, &[], Stdio::null())];
        workers.extend((0..2).map(|_| spawn_worker_with(&env, "127.0.0.1:0", &[], Stdio::null())));
        for i in 0..150 {
            upsert(&env, "acme", &format!("c-{i}")).await;
        }
        let commands: Vec<Value> = (0..150)
            .map(|i| deactivate(&env, &format!("c-{i}"), 1))
            .collect();
        env.publish_all(&commands).await;
        let counted = eventually("all 150 deactivations decided", || async {
            let o = outcomes(&env, "contact.deactivate").await;
            (o.iter().map(|(_, n)| n).sum::<i64>() == 150).then_some(o)
        })
        .await;
        assert_eq!(
            counted,
            [("applied".to_owned(), 100), ("held".to_owned(), 50)],
            "run {run}"
        );
        // The probe refreshes the gauge once a second.
        eventually("the held gauge at 50", || async {
            let (_, metrics) = http_get(port, "/metrics").await?;
            metrics
                .lines()
                .any(|l| l == "lifecycle_guardrail_held{tenant=\"acme\"} 50")
                .then_some(())
        })
        .await;
        drop(workers);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_release_killed_midway_and_run_again_applies_each_once() {
    let env = TestEnv::start_with(max_changes(1)).await;
    const HELD: usize = 400;
    let ids: Vec<String> = (0..=HELD).map(|i| format!("c-{i}")).collect();
    let upserts: Vec<Value> = ids
        .iter()
        .map(|id| {
            env.command(
                "acme",
                "contact.upsert",
                0,
                json!({"contact_id": id, "email": "x@example.com"}),
            )
        })
        .collect();
    env.publish_all(&upserts).await;
    let deactivations: Vec<Value> = ids.iter().map(|id| deactivate(&env, id, 1)).collect();
    env.publish_all(&deactivations).await;
    eventually("all held", || async {
        let o = outcomes(&env, "contact.deactivate").await;
        (o.iter().find(|(k, _)| k == "held").map(|(_, n)| *n) == Some(HELD as i64)).then_some(())
    })
    .await;
    let mut release = env.cli_child(&["guard", "release", "--tenant", "acme", "--all"]);
    let left_when_killed = eventually("part of the release done", || async {
        let left = lifecycle_worker::store::guardrail::list(&env.pool, Some("acme"))
            .await
            .ok()?
            .len();
        (left < HELD).then_some(left)
    })
    .await;
    release.kill().await.unwrap();
    assert!(
        left_when_killed > 0,
        "killed before the end ({left_when_killed} left)"
    );
    let (code, _, err) = env
        .cli_text(&["guard", "release", "--tenant", "acme", "--all"])
        .await;
    assert_eq!(code, 0, "{err}");
    let o = outcomes(&env, "contact.deactivate").await;
    assert_eq!(o, [("applied".to_owned(), HELD as i64 + 1)]);
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM contacts WHERE tenant_id = 'acme'")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert!(
        versions.iter().all(|v| *v == 2),
        "each deactivated exactly once"
    );
    env.finish().await;
}

#[tokio::test]
async fn held_commands_survive_a_restart_and_are_authorised_as_their_producer_on_release() {
    use lifecycle_worker::domain::policy::ProducerGrant;
    let grant = |tenants: &[&str]| ProducerGrant {
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        commands: vec!["contact.*".into()],
        replay: false,
    };
    let mut env = TestEnv::start_with(|s| {
        max_changes(0)(s);
        s.producers.insert("guest".into(), grant(&["acme"]));
    })
    .await;
    let as_guest = |cmd: &Value| {
        let body = serde_json::to_vec(cmd).unwrap();
        let key = crate::helpers::routing_key_of(cmd);
        let env = &env;
        async move {
            let props = lifecycle_worker::amqp::json_properties().with_user_id("guest".into());
            env.send_raw(&key, &body, props).await
        }
    };
    let create = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    assert_eq!(as_guest(&create).await["outcome"], "applied");
    let held = as_guest(&deactivate(&env, "c-1", 1)).await;
    assert_eq!(held["outcome"], "held");
    env.stop_worker().await;
    env.start_worker();
    let held = guard_json(&env, &["list", "--tenant", "acme"]).await;
    assert_eq!(
        held.as_array().unwrap().len(),
        1,
        "held commands survive a restart"
    );
    assert_eq!(held[0]["user_id"], "guest");

    // Released with the producer's grants as they are now: no longer acme.
    let config = std::env::temp_dir().join(format!("lw-guard-{}.toml", env.db_name));
    std::fs::write(
        &config,
        "[producers.guest]\ntenants = [\"globex\"]\ncommands = [\"contact.*\"]\n",
    )
    .unwrap();
    let path = config.to_str().unwrap();
    let out = env
        .cli_with(
            &[
                "--config", path, "guard", "release", "--tenant", "acme", "--all",
            ],
            &[],
        )
        .await;
    std::fs::remove_file(&config).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("got rejected"), "{text}");
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].code.as_str(), dead[0].user_id.as_deref()),
        ("forbidden", Some("guest"))
    );
    assert_eq!(
        env.contact_show("acme", "c-1").await.unwrap()["active"],
        true
    );
    env.finish().await;
}
