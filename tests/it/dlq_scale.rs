//! Contract section 13: dead letters grouped by cause, a group replayed
//! with a cutoff and a canary, concurrent and interrupted replays that
//! publish a row once, edits, and every row's history.

use crate::helpers::{eventually, TestEnv};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{json, Value};

const PER_CAUSE: usize = 1_000;

/// Three causes, `n` rows each, all in tenant acme: contacts that do not
/// exist, an unknown status, users that do not exist.
fn three_causes(env: &TestEnv, n: usize) -> Vec<Value> {
    let mut cmds = Vec::with_capacity(3 * n);
    for i in 0..n {
        cmds.push(env.command(
            "acme",
            "contact.deactivate",
            1,
            json!({"contact_id": format!("late-{i}")}),
        ));
        cmds.push(env.command(
            "acme",
            "contact.change_status",
            1,
            json!({"contact_id": format!("c-{i}"), "status": format!("ZZ{i}")}),
        ));
        cmds.push(env.command(
            "acme",
            "user.revoke_access",
            1,
            json!({"user_id": format!("u-{i}")}),
        ));
    }
    cmds
}

async fn dead_count(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

async fn groups(env: &TestEnv) -> Vec<Value> {
    let (code, out, err) = env.cli_text(&["dlq", "groups", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn group_of<'a>(groups: &'a [Value], kind: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| g["type"] == kind)
        .unwrap_or_else(|| panic!("no group for {kind}: {groups:?}"))
}

async fn history_of(env: &TestEnv, id: i64) -> Vec<Value> {
    let (code, out, err) = env
        .cli_text(&["dlq", "show", &id.to_string(), "--json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    shown["history"].as_array().unwrap().clone()
}

async fn queued(env: &TestEnv, queue: &str) -> u32 {
    env.ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

#[tokio::test]
async fn failures_group_by_cause_and_a_group_replay_takes_only_what_failed_before_it() {
    let env = TestEnv::start().await;
    env.publish_all(&three_causes(&env, PER_CAUSE)).await;
    eventually("3,000 dead letters", || async {
        (dead_count(&env).await == 3 * PER_CAUSE as i64).then_some(())
    })
    .await;
    let all = groups(&env).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let missing = group_of(&all, "contact.deactivate");
    assert_eq!(missing["count"], PER_CAUSE);
    assert_eq!(missing["code"], "not_found");
    assert_eq!(missing["template"], "contact <value> does not exist");
    assert_eq!(missing["tenants"], json!(["acme"]));
    assert_eq!(
        group_of(&all, "contact.change_status")["code"],
        "invalid_status"
    );
    assert_eq!(group_of(&all, "user.revoke_access")["count"], PER_CAUSE);
    let group = missing["group"].as_str().unwrap().to_owned();
    assert_eq!(
        groups(&env)
            .await
            .iter()
            .filter(|g| g["group"] == group.as_str())
            .count(),
        1,
        "stable id"
    );

    // The contacts arrive late; one row of the group fails "during" the
    // replay (after it started) and must not be swept in.
    let creates: Vec<Value> = (0..PER_CAUSE)
        .map(|i| {
            env.command(
                "acme",
                "contact.upsert",
                0,
                json!({"contact_id": format!("late-{i}"), "first_name": "L"}),
            )
        })
        .collect();
    env.publish_all(&creates).await;
    eventually("the contacts exist", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE state IS NOT NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        (n == PER_CAUSE as i64).then_some(())
    })
    .await;
    let during: i64 = sqlx::query_scalar(
        "UPDATE dead_letters SET last_failed_at = now() + interval '1 hour' \
         WHERE id = (SELECT min(id) FROM dead_letters WHERE group_id = $1) RETURNING id",
    )
    .bind(&group)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let (code, out, err) = env
        .cli_text(&["dlq", "replay", "--group", &group, "--canary", "10"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("canary: 10 dead letter(s) replayed and applied"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{} dead letter(s) replayed", PER_CAUSE - 1)),
        "{out}"
    );
    eventually("the group resolved", || async {
        let left = groups(&env).await;
        left.iter()
            .find(|g| g["group"] == group.as_str())
            .filter(|g| g["count"] == 1)
            .map(|_| ())
    })
    .await;
    let untouched: i32 = sqlx::query_scalar("SELECT replay_count FROM dead_letters WHERE id = $1")
        .bind(during)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(untouched, 0, "a failure after the cutoff is not swept in");
    let replayed: i64 =
        sqlx::query_scalar("SELECT min(id) FROM dead_letters WHERE group_id = $1 AND id <> $2")
            .bind(&group)
            .bind(during)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    let history = history_of(&env, replayed).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["action"], "replay");
    assert_eq!(history[0]["amqp_user"], "guest");
    assert!(history[0]["os_user"].is_string());
    assert_eq!(history[0]["result"], "applied");
    // Named by id, a resolved row is replayed again: a duplicate.
    let (code, out, err) = env
        .cli_text(&["dlq", "replay", &replayed.to_string()])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let again = eventually("the second replay's outcome", || async {
        let h = history_of(&env, replayed).await;
        (h.len() == 2 && h[1]["result"].is_string()).then_some(h)
    })
    .await;
    assert_eq!(again[1]["result"], "applied (duplicate)");

    // A canary of a group that still fails stops the replay.
    let status = group_of(&all, "contact.change_status")["group"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, err) = env
        .cli_text(&["dlq", "replay", "--group", &status, "--canary", "5"])
        .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("canary: dead letter") && err.contains("failed again: invalid_status"),
        "{err}"
    );
    let tried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE group_id = $1 AND replay_count > 0",
    )
    .bind(&status)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(tried, 5, "only the canary was published");
    env.finish().await;
}

#[tokio::test]
async fn replays_at_once_or_interrupted_publish_each_row_once() {
    let mut env = TestEnv::start().await;
    let cmds: Vec<Value> = (0..300)
        .map(|i| {
            env.command(
                "acme",
                "user.revoke_access",
                1,
                json!({"user_id": format!("u-{i}")}),
            )
        })
        .collect();
    env.publish_all(&cmds).await;
    eventually("300 dead letters", || async {
        (dead_count(&env).await == 300).then_some(())
    })
    .await;
    let group = groups(&env).await[0]["group"].as_str().unwrap().to_owned();
    // No worker: the replays wait in the queue, their outcomes unknown.
    env.stop_worker().await;
    let replay = ["dlq", "replay", "--group", group.as_str()];
    let (a, b) = tokio::join!(env.cli_text(&replay), env.cli_text(&replay));
    let published: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE claim_published")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(published, 300, "{a:?} {b:?}");
    assert_eq!(
        queued(&env, &env.names.user_queue).await,
        300,
        "each row published once"
    );
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letter_history")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(entries, 300);
    // Whichever ran second (or both, interleaved) says what it skipped.
    assert!(a.0 == 1 || b.0 == 1, "{a:?} {b:?}");
    assert!(format!("{}{}", a.2, b.2).contains("still in flight"));
    // Now the group has nothing pending, and a row named by id is in flight.
    let (code, out, _) = env.cli_text(&replay).await;
    assert_eq!((code, out.trim()), (0, "nothing to replay"));
    let one = env.dead_letters().await[0].id.to_string();
    let (code, out, err) = env.cli_text(&["dlq", "replay", &one]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!("skipped {one}: a replay of it is still in flight")),
        "{out}"
    );
    assert_eq!(queued(&env, &env.names.user_queue).await, 300);

    // A replay killed mid-way, then run again: nothing confirmed goes twice.
    let more: Vec<Value> = (0..300)
        .map(|i| {
            env.command(
                "acme",
                "contact.deactivate",
                1,
                json!({"contact_id": format!("gone-{i}")}),
            )
        })
        .collect();
    env.start_worker();
    env.publish_all(&more).await;
    eventually("300 more dead letters", || async {
        (dead_count(&env).await == 600).then_some(())
    })
    .await;
    env.stop_worker().await;
    let gone = group_of(&groups(&env).await, "contact.deactivate")["group"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = ["dlq", "replay", "--group", gone.as_str()];
    let mut first = env.cli_child(&replay);
    eventually("part of the group published", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dead_letters WHERE group_id = $1 AND claim_published",
        )
        .bind(&gone)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        (n >= 50).then_some(())
    })
    .await;
    first.kill().await.unwrap();
    let (code, out, err) = env.cli_text(&replay).await;
    assert!(code == 0 || code == 1, "{out}{err}");
    let confirmed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE group_id = $1 AND claim_published",
    )
    .bind(&gone)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    let queued_now = queued(&env, &env.names.contact_queue).await as i64;
    // At most the row in flight when the process died was sent but not recorded.
    assert!(
        queued_now == confirmed || queued_now == confirmed + 1,
        "{queued_now} queued, {confirmed} confirmed"
    );
    assert!(
        confirmed >= 299,
        "the rerun published the rest: {confirmed}"
    );
    env.start_worker();
    env.finish().await;
}

#[tokio::test]
async fn an_edit_must_decode_keeps_the_command_id_and_is_in_the_history() {
    let env = TestEnv::start().await;
    env.send(&env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "first_name": "E"}),
    ))
    .await;
    let bad = env.command(
        "acme",
        "contact.change_status",
        1,
        json!({"contact_id": "c-1", "status": "ZZ"}),
    );
    assert_eq!(env.send(&bad).await["error"]["code"], "invalid_status");
    let id = env.dead_letters().await[0].id;
    let dir = std::env::temp_dir().join(format!("dlq-edit-test-{id}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    };
    let not_json = write("not.json", "{\"oops\"");
    let (code, _, err) = env
        .cli_text(&["dlq", "edit", &id.to_string(), "--file", &not_json])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("not JSON") && err.contains("nothing published"),
        "{err}"
    );
    let mut wrong = bad.clone();
    wrong["payload"]["colour"] = json!("red");
    let undecodable = write("wrong.json", &wrong.to_string());
    let (code, _, err) = env
        .cli_text(&["dlq", "edit", &id.to_string(), "--file", &undecodable])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("invalid_command"), "{err}");
    assert!(
        history_of(&env, id).await.is_empty(),
        "a refused edit changes nothing"
    );

    let mut fixed = bad.clone();
    fixed["payload"]["status"] = json!("B");
    fixed["command_id"] = json!("someone-changed-it");
    let fixed_path = write("fixed.json", &fixed.to_string());
    let (code, out, err) = env
        .cli_text(&["dlq", "edit", &id.to_string(), "--file", &fixed_path])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let shown = eventually("the edited replay applied", || async {
        env.contact_show("acme", "c-1")
            .await
            .filter(|c| c["status"] == "B")
    })
    .await;
    assert_eq!(shown["version"], 2);
    let processed: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM processed_commands WHERE command_id = $1")
            .bind(bad["command_id"].as_str().unwrap())
            .fetch_optional(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        processed.as_deref(),
        Some("applied"),
        "the command_id was kept"
    );
    let history = eventually("the replay's outcome", || async {
        let h = history_of(&env, id).await;
        (h.len() == 2 && h[1]["result"].is_string()).then_some(h)
    })
    .await;
    assert_eq!(history[0]["action"], "edit");
    assert_eq!(history[0]["old_body"]["payload"]["status"], "ZZ");
    assert_eq!(history[0]["new_body"]["payload"]["status"], "B");
    assert_eq!(history[1]["action"], "replay");
    assert_eq!(history[1]["result"], "applied");

    // --new-id: a new command.
    let again = env.command(
        "acme",
        "contact.change_status",
        3,
        json!({"contact_id": "c-1", "status": "YY"}),
    );
    env.send(&again).await;
    let second = env
        .dead_letters()
        .await
        .into_iter()
        .find(|d| d.command_id.as_deref() == again["command_id"].as_str())
        .unwrap()
        .id;
    let mut c = again.clone();
    c["payload"]["status"] = json!("C");
    let c_path = write("c.json", &c.to_string());
    let (code, _, err) = env
        .cli_text(&[
            "dlq",
            "edit",
            &second.to_string(),
            "--file",
            &c_path,
            "--new-id",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let history = history_of(&env, second).await;
    assert_ne!(history[0]["new_body"]["command_id"], again["command_id"]);

    // History follows its row: erasing the contact removes both.
    env.send(&env.command("acme", "contact.erase", 4, json!({"contact_id": "c-1"})))
        .await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letter_history")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let _ = std::fs::remove_dir_all(&dir);
    env.finish().await;
}

#[tokio::test]
async fn an_edit_is_authorised_as_the_original_producer() {
    use lifecycle_worker::domain::policy::ProducerGrant;
    let grant = ProducerGrant {
        tenants: vec!["acme".into()],
        commands: vec!["*".into()],
        replay: true,
    };
    let env = TestEnv::start_with(|s| {
        s.producers.insert("guest".into(), grant.clone());
    })
    .await;
    let as_guest = || lifecycle_worker::amqp::json_properties().with_user_id("guest".into());
    let send = |cmd: Value| {
        let env = &env;
        async move {
            let body = serde_json::to_vec(&cmd).unwrap();
            env.send_raw(&crate::helpers::routing_key_of(&cmd), &body, as_guest())
                .await
        }
    };
    send(env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "first_name": "A"}),
    ))
    .await;
    let bad = env.command(
        "acme",
        "contact.change_status",
        1,
        json!({"contact_id": "c-1", "status": "ZZ"}),
    );
    assert_eq!(send(bad.clone()).await["error"]["code"], "invalid_status");
    let id = env.dead_letters().await[0].id.to_string();
    // The CLI with the same grants (guest may replay).
    let dir = std::env::temp_dir().join(format!("dlq-auth-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[producers.guest]\ntenants = [\"acme\"]\ncommands = [\"*\"]\nreplay = true\n",
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let edit = |file: &str| {
        let env = &env;
        let (config, file, id) = (config.clone(), file.to_owned(), id.clone());
        async move {
            let out = env
                .cli_with(
                    &["--config", &config, "dlq", "edit", &id, "--file", &file],
                    &[],
                )
                .await;
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let mut elsewhere = bad.clone();
    elsewhere["tenant"] = json!("globex");
    elsewhere["payload"]["status"] = json!("B");
    let path = dir.join("globex.json");
    std::fs::write(&path, elsewhere.to_string()).unwrap();
    let (code, err) = edit(&path.to_string_lossy()).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("forbidden"),
        "the producer may not send for globex: {err}"
    );
    let mut fixed = bad.clone();
    fixed["payload"]["status"] = json!("B");
    let path = dir.join("fixed.json");
    std::fs::write(&path, fixed.to_string()).unwrap();
    let (code, err) = edit(&path.to_string_lossy()).await;
    assert_eq!(code, Some(0), "{err}");
    eventually("the edit applied, as guest", || async {
        env.contact_show("acme", "c-1")
            .await
            .filter(|c| c["status"] == "B")
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    env.finish().await;
}
