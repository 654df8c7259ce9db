//! The dead-letter store and its CLI: list, show, replay, purge; poison
//! messages parked by the broker after a panic.

use crate::helpers::TestEnv;
use lifecycle_worker::amqp;
use serde_json::{json, Value};

async fn dead_letter_id(env: &TestEnv, command_id: &Value) -> i64 {
    env.dead_letters()
        .await
        .into_iter()
        .find(|d| d.command_id.as_deref() == command_id.as_str())
        .expect("dead letter stored")
        .id
}

#[tokio::test]
async fn rejected_command_fixed_upstream_is_applied_on_replay() {
    let env = TestEnv::start().await;
    let cmd = env.command(
        "acme",
        "contact.deactivate",
        5,
        json!({"contact_id": "late", "reason": "left"}),
    );
    let corr = cmd["command_id"].as_str().unwrap().to_owned();
    let first = env.send_correlated(&cmd, &corr).await;
    assert_eq!(first["error"]["code"], "not_found");
    let id = dead_letter_id(&env, &cmd["command_id"]).await;

    // The employer feed arrives late: the contact exists now.
    let create = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "late", "email": "late@example.com"}),
    );
    assert_eq!(env.send(&create).await["outcome"], "applied");

    let (code, out, err) = env.cli_text(&["dlq", "replay", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 dead letter(s) replayed"), "{out}");
    let second = env.nth_reply(&corr, 2).await;
    assert_eq!(second["outcome"], "applied");
    assert_eq!(second["duplicate"], false);
    assert_eq!(
        env.contact_show("acme", "late").await.unwrap()["active"],
        false
    );
    let row = env
        .dead_letters()
        .await
        .into_iter()
        .find(|d| d.id == id)
        .unwrap();
    assert!(row.replayed_at.is_some());
    assert!(!row.pending);
    assert_eq!(row.replay_count, 1);
    assert_eq!(
        row.properties["headers"],
        Value::Null,
        "the stored original has no x-replayed"
    );
    env.finish().await;
}

#[tokio::test]
async fn replaying_an_applied_command_is_a_duplicate() {
    let env = TestEnv::start().await;
    let cmd = env.command(
        "acme",
        "contact.set_visibility",
        5,
        json!({"contact_id": "c-1", "visibility": "owner"}),
    );
    let corr = cmd["command_id"].as_str().unwrap().to_owned();
    assert_eq!(
        env.send_correlated(&cmd, &corr).await["error"]["code"],
        "not_found"
    );
    let id = dead_letter_id(&env, &cmd["command_id"]).await;
    env.send(&env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "c@example.com"}),
    ))
    .await;
    // The producer re-sent the same command itself, and it applied.
    let resent = env.send(&cmd).await;
    assert_eq!(resent["outcome"], "applied");

    let (code, _, err) = env.cli_text(&["dlq", "replay", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let replayed = env.nth_reply(&corr, 2).await;
    assert_eq!(replayed["duplicate"], true);
    assert_eq!(replayed["outcome"], "applied");
    assert_eq!(env.contact_show("acme", "c-1").await.unwrap()["version"], 2);
    env.finish().await;
}

/// Dead letters in two tenants with two codes; returns (tenant, code, id).
async fn mixed_dead_letters(env: &TestEnv) -> Vec<(String, String, i64)> {
    for (tenant, minute) in [("acme", 1), ("globex", 2)] {
        env.send(&env.command(
            tenant,
            "contact.deactivate",
            minute,
            json!({"contact_id": "ghost"}),
        ))
        .await;
        env.send(&env.command(
            tenant,
            "contact.change_status",
            minute,
            json!({"contact_id": "ghost", "status": "nope"}),
        ))
        .await;
    }
    env.send_raw(
        "acme.contact.upsert",
        b"\xff\xfe not utf-8",
        amqp::json_properties(),
    )
    .await;
    env.dead_letters()
        .await
        .into_iter()
        .map(|d| (d.tenant_id.unwrap_or_default(), d.code, d.id))
        .collect()
}

#[tokio::test]
async fn replay_selects_by_code_and_tenant_and_dry_run_changes_nothing() {
    let env = TestEnv::start().await;
    let rows = mixed_dead_letters(&env).await;
    assert_eq!(rows.len(), 5);

    let (code, out, _) = env.cli_text(&["dlq", "replay", "--all", "--dry-run"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("5 dead letter(s) would be replayed"), "{out}");
    assert!(env
        .dead_letters()
        .await
        .iter()
        .all(|d| d.replayed_at.is_none()));

    let (code, out, _) = env
        .cli_text(&["dlq", "replay", "--code", "invalid_status"])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("2 dead letter(s) replayed"), "{out}");
    let (code, out, _) = env.cli_text(&["dlq", "replay", "--tenant", "globex"]).await;
    assert_eq!(code, 0);
    // globex's invalid_status row was replayed already (and failed again,
    // which makes it pending once more), so both globex rows are picked.
    let replayed: Vec<(String, String)> = env
        .dead_letters()
        .await
        .into_iter()
        .filter(|d| d.replay_count > 0)
        .map(|d| (d.tenant_id.unwrap_or_default(), d.code))
        .collect();
    assert!(replayed.contains(&("acme".into(), "invalid_status".into())));
    assert!(replayed.contains(&("globex".into(), "invalid_status".into())));
    assert!(replayed.contains(&("globex".into(), "not_found".into())));
    assert!(
        !replayed
            .iter()
            .any(|(t, c)| t == "acme" && c == "not_found"),
        "{out}"
    );
    env.finish().await;
}

#[tokio::test]
async fn failing_again_after_replay_updates_the_same_row() {
    let env = TestEnv::start().await;
    let cmd = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "ghost"}),
    );
    let corr = cmd["command_id"].as_str().unwrap().to_owned();
    env.send_correlated(&cmd, &corr).await;
    let id = dead_letter_id(&env, &cmd["command_id"]).await;
    env.cli_text(&["dlq", "replay", &id.to_string()]).await;
    assert_eq!(env.nth_reply(&corr, 2).await["error"]["code"], "not_found");
    let rows = env.dead_letters().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].failure_count, 2);
    assert_eq!(rows[0].replay_count, 1);
    assert!(rows[0].pending, "pending again after failing again");
    assert!(rows[0].replayed_at.is_some());
    assert_eq!(rows[0].properties["headers"]["x-replayed"], 1);
    env.finish().await;
}

#[tokio::test]
async fn list_show_and_purge() {
    let env = TestEnv::start().await;
    let rows = mixed_dead_letters(&env).await;

    let (code, out, _) = env.cli_text(&["dlq", "list", "--json"]).await;
    assert_eq!(code, 0);
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 5);
    for key in [
        "id",
        "tenant",
        "command_id",
        "type",
        "code",
        "message",
        "count",
        "first_failed_at",
        "last_failed_at",
        "replayed_at",
        "routing_key",
    ] {
        assert!(listed[0].get(key).is_some(), "{key} missing");
    }
    let (_, table, _) = env
        .cli_text(&[
            "dlq",
            "list",
            "--tenant",
            "acme",
            "--code",
            "not_found",
            "--since",
            "1h",
        ])
        .await;
    assert!(table.contains("1 dead letter(s)"), "{table}");
    assert!(table.contains("contact.deactivate"), "{table}");

    let malformed = rows.iter().find(|(_, c, _)| c == "malformed").unwrap().2;
    let (code, shown, _) = env.cli_text(&["dlq", "show", &malformed.to_string()]).await;
    assert_eq!(code, 0);
    assert!(shown.contains("(not UTF-8; hex)"), "{shown}");
    assert!(shown.contains("ff fe 20 6e"), "{shown}");
    let json_row = rows
        .iter()
        .find(|(t, c, _)| t == "acme" && c == "not_found")
        .unwrap()
        .2;
    let (_, shown, _) = env.cli_text(&["dlq", "show", &json_row.to_string()]).await;
    assert!(
        shown.contains("\"contact_id\": \"ghost\""),
        "pretty JSON body: {shown}"
    );
    let (code, _, err) = env.cli_text(&["dlq", "show", "999999"]).await;
    assert_eq!(code, 1, "{err}");

    // Without --yes and without a terminal, purge refuses and deletes nothing.
    let (code, _, err) = env
        .cli_text(&["dlq", "purge", "--code", "invalid_status"])
        .await;
    assert_ne!(code, 0);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(env.dead_letters().await.len(), 5);
    let (code, out, _) = env
        .cli_text(&["dlq", "purge", "--code", "invalid_status", "--yes"])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("2 dead letter(s) purged"), "{out}");
    let (_, out, _) = env
        .cli_text(&["dlq", "purge", "--older-than", "1h", "--yes"])
        .await;
    assert!(out.contains("nothing to purge"), "{out}");
    let (_, out, _) = env
        .cli_text(&["dlq", "purge", &malformed.to_string(), "--yes"])
        .await;
    assert!(out.contains("1 dead letter(s) purged"), "{out}");
    assert_eq!(env.dead_letters().await.len(), 2);
    env.finish().await;
}

// Needs the `failpoints` feature (`make test` builds with it).
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_panicking_command_ends_as_poison_and_the_worker_keeps_going() {
    let env = TestEnv::start_with(|s| s.amqp.delivery_limit = 2).await;
    let prefix = format!("boom-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    lifecycle_worker::failpoints::panic_on_apply(&prefix);
    let mut cmd = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "p-1", "email": "p@example.com"}),
    );
    cmd["command_id"] = json!(format!("{prefix}-1"));
    let body = serde_json::to_vec(&cmd).unwrap();
    env.publish_on(
        &env.ch,
        "acme.contact.upsert",
        &body,
        amqp::json_properties(),
    )
    .await;

    let next = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "ok-1", "email": "ok@example.com"}),
    );
    assert_eq!(env.send(&next).await["outcome"], "applied");

    let poison = crate::helpers::eventually("a poison dead letter", || async {
        env.dead_letters()
            .await
            .into_iter()
            .find(|d| d.code == "poison")
    })
    .await;
    assert_eq!(poison.command_id.as_deref(), cmd["command_id"].as_str());
    assert_eq!(poison.tenant_id.as_deref(), Some("acme"));
    assert_eq!(poison.routing_key, "acme.contact.upsert");
    assert_eq!(poison.body, body);
    assert!(env.contact_show("acme", "p-1").await.is_none());
    env.finish().await;
}
