//! Exactly-once in effect: duplicates, staleness per aspect, version
//! conflicts, tenant isolation, and bad input dead-lettered without harm.

use crate::helpers::TestEnv;
use lifecycle_worker::amqp;
use serde_json::{json, Value};

async fn contact(env: &TestEnv, tenant: &str, id: &str) {
    let r = env
        .send(&env.command(tenant, "contact.upsert", 0, json!({"contact_id": id, "email": format!("{id}@{tenant}.example"), "first_name": "Kim"})))
        .await;
    assert_eq!(r["outcome"], "applied", "{r}");
}

#[tokio::test]
async fn duplicate_command_repeats_the_first_reply_without_effect() {
    let env = TestEnv::start().await;
    contact(&env, "acme", "c-1").await;
    let cmd = env.command(
        "acme",
        "contact.deactivate",
        5,
        json!({"contact_id": "c-1"}),
    );
    let first = env.send(&cmd).await;
    assert_eq!(first["outcome"], "applied");
    assert_eq!(first["duplicate"], false);
    let second = env.send(&cmd).await;
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["outcome"], "applied");
    assert_eq!(second["events"], first["events"]);
    assert_eq!(second["entity"], first["entity"]);
    assert_eq!(env.contact_show("acme", "c-1").await.unwrap()["version"], 2);
    let outbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE body->>'commandid' = $1")
            .bind(cmd["command_id"].as_str())
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(outbox, 2, "deactivated + suppressed, written once");
    env.finish().await;
}

#[tokio::test]
async fn stale_commands_lose_per_aspect() {
    let env = TestEnv::start().await;
    contact(&env, "acme", "c-1").await;
    let vis = env
        .send(&env.command(
            "acme",
            "contact.set_visibility",
            10,
            json!({"contact_id": "c-1", "visibility": "owner"}),
        ))
        .await;
    assert_eq!(vis["outcome"], "applied");
    let older = env
        .send(&env.command(
            "acme",
            "contact.set_visibility",
            5,
            json!({"contact_id": "c-1", "visibility": "advisors"}),
        ))
        .await;
    assert_eq!(older["outcome"], "stale");
    assert_eq!(older["entity"]["version"], 2);

    // Another aspect is unaffected by the visibility clock.
    let status = env
        .send(&env.command(
            "acme",
            "contact.change_status",
            6,
            json!({"contact_id": "c-1", "status": "B"}),
        ))
        .await;
    assert_eq!(status["outcome"], "applied");

    // An unchanged command advances its aspect, so an older one arriving later loses.
    assert_eq!(
        env.send(&env.command(
            "acme",
            "contact.deactivate",
            10,
            json!({"contact_id": "c-1"})
        ))
        .await["outcome"],
        "applied"
    );
    assert_eq!(
        env.send(&env.command(
            "acme",
            "contact.deactivate",
            12,
            json!({"contact_id": "c-1"})
        ))
        .await["outcome"],
        "unchanged"
    );
    assert_eq!(
        env.send(&env.command(
            "acme",
            "contact.reactivate",
            11,
            json!({"contact_id": "c-1"})
        ))
        .await["outcome"],
        "stale"
    );

    // Equal timestamps apply in arrival order.
    assert_eq!(
        env.send(&env.command(
            "acme",
            "contact.reactivate",
            12,
            json!({"contact_id": "c-1"})
        ))
        .await["outcome"],
        "applied"
    );

    // An upsert is judged per aspect: fresh profile applies, stale status is skipped.
    let mixed = env
        .send(&env.command(
            "acme",
            "contact.upsert",
            5,
            json!({"contact_id": "c-1", "title": "CFO", "status": "C"}),
        ))
        .await;
    assert_eq!(mixed["outcome"], "applied");
    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["title"], "CFO");
    assert_eq!(c["status"], "B");
    assert_eq!(c["visibility"], "owner");
    let all_stale = env
        .send(&env.command(
            "acme",
            "contact.upsert",
            1,
            json!({"contact_id": "c-1", "status": "C", "visibility": "everyone"}),
        ))
        .await;
    assert_eq!(all_stale["outcome"], "stale");

    // Attributes are one aspect per name.
    assert_eq!(
        env.send(&env.command(
            "acme",
            "contact.set_attributes",
            20,
            json!({"contact_id": "c-1", "attributes": {"tier": "gold"}})
        ))
        .await["outcome"],
        "applied"
    );
    let attrs = env
        .send(&env.command(
            "acme",
            "contact.set_attributes",
            15,
            json!({"contact_id": "c-1", "attributes": {"tier": "silver", "region": "north"}}),
        ))
        .await;
    assert_eq!(attrs["outcome"], "applied");
    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["attributes"], json!({"tier": "gold", "region": "north"}));
    env.finish().await;
}

#[tokio::test]
async fn expected_version_mismatch_is_a_version_conflict() {
    let env = TestEnv::start().await;
    contact(&env, "acme", "c-1").await;
    let mut cmd = env.command(
        "acme",
        "contact.set_visibility",
        3,
        json!({"contact_id": "c-1", "visibility": "owner"}),
    );
    cmd["expected_version"] = json!(7);
    let r = env.send(&cmd).await;
    assert_eq!(r["outcome"], "rejected");
    assert_eq!(r["error"]["code"], "version_conflict");
    let mut ok = env.command(
        "acme",
        "contact.set_visibility",
        3,
        json!({"contact_id": "c-1", "visibility": "owner"}),
    );
    ok["expected_version"] = json!(1);
    assert_eq!(env.send(&ok).await["outcome"], "applied");
    // Rejected commands are not recorded: the same id, fixed, is evaluated afresh.
    let mut fixed = cmd.clone();
    fixed["expected_version"] = json!(2);
    let r = env.send(&fixed).await;
    assert_eq!(r["outcome"], "unchanged");
    assert_eq!(r["duplicate"], false);
    env.finish().await;
}

#[tokio::test]
async fn tenants_never_touch_each_other() {
    let env = TestEnv::start().await;
    contact(&env, "acme", "c-1").await;
    contact(&env, "globex", "c-1").await;
    let cmd = env.command(
        "acme",
        "contact.deactivate",
        5,
        json!({"contact_id": "c-1"}),
    );
    assert_eq!(env.send(&cmd).await["outcome"], "applied");
    // The same command id in another tenant is another command.
    let mut other = cmd.clone();
    other["tenant"] = json!("globex");
    other["type"] = json!("contact.set_visibility");
    other["payload"] = json!({"contact_id": "c-1", "visibility": "owner"});
    let r = env.send(&other).await;
    assert_eq!(r["duplicate"], false);
    assert_eq!(r["outcome"], "applied");
    let a = env.contact_show("acme", "c-1").await.unwrap();
    let g = env.contact_show("globex", "c-1").await.unwrap();
    assert_eq!(
        (a["active"].clone(), a["visibility"].clone()),
        (json!(false), json!("everyone"))
    );
    assert_eq!(
        (g["active"].clone(), g["visibility"].clone()),
        (json!(true), json!("owner"))
    );
    let missing = env
        .send(&env.command(
            "initech",
            "contact.deactivate",
            5,
            json!({"contact_id": "c-1"}),
        ))
        .await;
    assert_eq!(missing["error"]["code"], "not_found");
    env.finish().await;
}

#[tokio::test]
async fn bad_input_is_dead_lettered_and_the_next_command_applies() {
    let env = TestEnv::start().await;
    let props = amqp::json_properties;
    let not_json = env
        .send_raw("acme.contact.upsert", b"{not json", props())
        .await;
    assert_eq!(not_json["outcome"], "rejected");
    assert_eq!(not_json["error"]["code"], "malformed");
    assert_eq!(not_json["command_id"], Value::Null);

    let mut unknown = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    unknown["colour"] = json!("blue");
    let r = env.send(&unknown).await;
    assert_eq!(r["error"]["code"], "invalid_command");
    assert_eq!(r["command_id"], unknown["command_id"]);

    let valid = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    assert_eq!(env.send(&valid).await["outcome"], "applied");

    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].code, "malformed");
    assert_eq!(dead[0].body, b"{not json");
    assert_eq!(dead[0].routing_key, "acme.contact.upsert");
    assert_eq!(dead[1].code, "invalid_command");
    assert_eq!(dead[1].tenant_id.as_deref(), Some("acme"));
    assert_eq!(
        dead[1].command_id.as_deref(),
        unknown["command_id"].as_str()
    );
    assert!(dead[1].message.contains("colour"), "{}", dead[1].message);

    // The same bad message again updates its row instead of adding one.
    env.send_raw("acme.contact.upsert", b"{not json", props())
        .await;
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].failure_count, 2);
    env.finish().await;
}
