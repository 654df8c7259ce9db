//! Contract section 11, soft delete: a deleted contact or user can be
//! restored, as it was, for `restore_days`; then a purge finishes the delete.

use crate::helpers::{types, TestEnv};
use lifecycle_worker::domain::policy::DeleteMode;
use lifecycle_worker::retention::purge_once;
use serde_json::json;

#[tokio::test]
async fn a_deleted_contact_or_user_is_restored_as_it_was() {
    let env = TestEnv::start().await;
    let e = &env;
    let send = |kind: &str, minute: u32, payload: serde_json::Value| {
        let cmd = e.command("acme", kind, minute, payload);
        async move { e.send(&cmd).await }
    };
    send(
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "r@example.com", "first_name": "Rae"}),
    )
    .await;
    send(
        "contact.log_activity",
        1,
        json!({"contact_id": "c-1", "kind": "note", "body": "met at the fair"}),
    )
    .await;
    let deleted = send("contact.delete", 2, json!({"contact_id": "c-1"})).await;
    assert_eq!(deleted["entity"]["version"], json!(null));
    assert!(
        env.contact_show("acme", "c-1").await.is_none(),
        "deleted for everyone"
    );
    assert_eq!(
        send("contact.deactivate", 3, json!({"contact_id": "c-1"})).await["error"]["code"],
        "not_found"
    );

    let restored = send("contact.restore", 4, json!({"contact_id": "c-1"})).await;
    assert_eq!(restored["outcome"], "applied", "{restored}");
    assert_eq!(restored["entity"]["version"], 4, "the delete's version + 1");
    let events = env.events_of(&restored).await;
    assert_eq!(
        types(&events),
        ["ContactRestored", "ContactEmailUnsuppressed"]
    );
    assert_eq!(events[0]["data"]["contact"]["first_name"], "Rae");
    let shown = env.contact_show_activity("acme", "c-1").await;
    assert_eq!(shown["version"], 4);
    assert_eq!(
        shown["activity"].as_array().unwrap().len(),
        1,
        "its activity too"
    );
    assert_eq!(
        send("contact.restore", 5, json!({"contact_id": "c-1"})).await["error"]["code"],
        "invalid_transition"
    );
    assert_eq!(
        send("contact.restore", 5, json!({"contact_id": "nobody"})).await["error"]["code"],
        "not_found"
    );

    send(
        "user.upsert",
        0,
        json!({"user_id": "u-1", "email": "r@example.com"}),
    )
    .await;
    send("user.delete", 2, json!({"user_id": "u-1"})).await;
    assert!(env.user_show("acme", "u-1").await.is_none());
    let back = send("user.restore", 4, json!({"user_id": "u-1"})).await;
    assert_eq!(back["outcome"], "applied");
    assert_eq!(types(&env.events_of(&back).await), ["UserRestored"]);
    assert_eq!(env.user_show("acme", "u-1").await.unwrap()["version"], 3);
    env.finish().await;
}

#[tokio::test]
async fn the_purge_finishes_deletes_after_the_window_and_an_upsert_starts_anew() {
    let env = TestEnv::start_with(|s| {
        s.tenants.entry("hard".into()).or_default().delete_mode = Some(DeleteMode::Hard);
    })
    .await;
    let e = &env;
    let send = |tenant: &str, kind: &str, minute: u32, payload: serde_json::Value| {
        let cmd = e.command(tenant, kind, minute, payload);
        async move { e.send(&cmd).await }
    };
    for id in ["c-1", "c-2"] {
        send(
            "acme",
            "contact.upsert",
            0,
            json!({"contact_id": id, "email": "p@example.com"}),
        )
        .await;
        send(
            "acme",
            "contact.log_activity",
            1,
            json!({"contact_id": id, "kind": "note", "body": "x"}),
        )
        .await;
        send("acme", "contact.delete", 2, json!({"contact_id": id})).await;
    }
    let activity = |id: &'static str| {
        let pool = env.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM contact_activity WHERE tenant_id = 'acme' AND contact_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(activity("c-1").await, 1, "kept while restorable");

    // c-1's window ends; c-2 stays restorable.
    sqlx::query(
        "UPDATE contacts SET purge_after = now() - interval '1 second' WHERE contact_id = 'c-1'",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let purged = purge_once(&env.pool, &env.settings.retention)
        .await
        .unwrap();
    assert_eq!(purged.deletes_finished, 1);
    assert_eq!(activity("c-1").await, 0);
    let kept: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT deleted_state FROM contacts WHERE contact_id = 'c-1'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(kept.is_none(), "nothing of it is left but the tombstone");
    let late = send("acme", "contact.restore", 3, json!({"contact_id": "c-1"})).await;
    assert_eq!(late["error"]["code"], "not_found");
    let late_stale = send(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-1"}),
    )
    .await;
    assert_eq!(late_stale["outcome"], "stale", "the tombstone still judges");

    // An upsert after the delete: version 1, the deleted copy purged at once.
    let anew = send(
        "acme",
        "contact.upsert",
        3,
        json!({"contact_id": "c-2", "email": "n@example.com"}),
    )
    .await;
    assert_eq!(anew["entity"]["version"], 1);
    assert_eq!(activity("c-2").await, 0);
    assert_eq!(
        send("acme", "contact.restore", 4, json!({"contact_id": "c-2"})).await["error"]["code"],
        "invalid_transition"
    );

    // delete_mode = "hard": gone at once, as in v1.
    send(
        "hard",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "h@example.com"}),
    )
    .await;
    send("hard", "contact.delete", 2, json!({"contact_id": "c-1"})).await;
    let r = send("hard", "contact.restore", 3, json!({"contact_id": "c-1"})).await;
    assert_eq!(r["error"]["code"], "not_found");
    env.finish().await;
}
