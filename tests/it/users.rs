//! Employer users and roles: revoke, restore, role change, delete.

use crate::helpers::{types, TestEnv};
use serde_json::json;

#[tokio::test]
async fn user_access_role_and_delete_flow() {
    let env = TestEnv::start().await;
    let missing_role = env
        .send(&env.command(
            "acme",
            "user.upsert",
            0,
            json!({"user_id": "u-1", "email": "u1@example.com", "role_id": "r-basic"}),
        ))
        .await;
    assert_eq!(missing_role["error"]["code"], "role_not_found");

    let role = env
        .send(&env.command(
            "acme",
            "role.upsert",
            0,
            json!({"role_id": "r-basic", "name": "Employer", "permissions": ["jobs.post"]}),
        ))
        .await;
    assert_eq!(role["outcome"], "applied");
    assert_eq!(types(&env.events_of(&role).await), ["RoleUpserted"]);
    let denied = env
        .send(&env.command(
            "acme",
            "role.upsert",
            0,
            json!({"role_id": "r-denied", "name": "Denied Access Role", "permissions": []}),
        ))
        .await;
    assert_eq!(
        denied["entity"],
        json!({"kind": "role", "id": "r-denied", "version": 1})
    );

    let created = env
        .send(&env.command("acme", "user.upsert", 1, json!({"user_id": "u-1", "email": "u1@example.com", "name": "Uma", "role_id": "r-basic", "employer_id": "e-1"})))
        .await;
    assert_eq!(created["outcome"], "applied");
    let ev = env.events_of(&created).await;
    assert_eq!(types(&ev), ["UserCreated"]);
    assert_eq!(ev[0]["data"]["user"]["site_access"], true);
    assert_eq!(
        ev[0]["routing_key"],
        serde_json::Value::Null,
        "routing key is an AMQP property, not data"
    );

    let revoke = env
        .send(&env.command(
            "acme",
            "user.revoke_access",
            2,
            json!({"user_id": "u-1", "reason": "left"}),
        ))
        .await;
    let ev = env.events_of(&revoke).await;
    assert_eq!(types(&ev), ["UserAccessRevoked"]);
    assert_eq!(ev[0]["data"]["reason"], "left");
    assert_eq!(ev[0]["entityversion"], 2);
    let again = env
        .send(&env.command("acme", "user.revoke_access", 3, json!({"user_id": "u-1"})))
        .await;
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(
        env.user_show("acme", "u-1").await.unwrap()["site_access"],
        false
    );

    let restore = env
        .send(&env.command("acme", "user.restore_access", 4, json!({"user_id": "u-1"})))
        .await;
    assert_eq!(
        types(&env.events_of(&restore).await),
        ["UserAccessRestored"]
    );

    let change = env
        .send(&env.command(
            "acme",
            "user.change_role",
            5,
            json!({"user_id": "u-1", "role_id": "r-denied"}),
        ))
        .await;
    let ev = env.events_of(&change).await;
    assert_eq!(types(&ev), ["UserRoleChanged"]);
    assert_eq!(ev[0]["data"]["from"], "r-basic");
    assert_eq!(ev[0]["data"]["to"], "r-denied");
    let bad = env
        .send(&env.command(
            "acme",
            "user.change_role",
            6,
            json!({"user_id": "u-1", "role_id": "r-ghost"}),
        ))
        .await;
    assert_eq!(bad["error"]["code"], "role_not_found");

    let user = env.user_show("acme", "u-1").await.unwrap();
    assert_eq!(user["role_id"], "r-denied");
    assert_eq!(user["employer_id"], "e-1");
    assert_eq!(user["version"], 4);

    let del = env
        .send(&env.command("acme", "user.delete", 7, json!({"user_id": "u-1"})))
        .await;
    let ev = env.events_of(&del).await;
    assert_eq!(types(&ev), ["UserDeleted"]);
    assert_eq!(ev[0]["data"]["user_id"], "u-1");
    assert_eq!(ev[0]["data"]["email"], "u1@example.com");
    assert!(env.user_show("acme", "u-1").await.is_none());
    let later = env
        .send(&env.command("acme", "user.restore_access", 8, json!({"user_id": "u-1"})))
        .await;
    assert_eq!(later["error"]["code"], "not_found");
    let older = env
        .send(&env.command("acme", "user.restore_access", 6, json!({"user_id": "u-1"})))
        .await;
    assert_eq!(older["outcome"], "stale");
    env.finish().await;
}
