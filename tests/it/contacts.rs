//! Contact flows from the two help articles, end to end over AMQP.

use crate::helpers::{eventually, types, TestEnv};
use lifecycle_worker::domain::policy::TenantPolicyOverride;
use serde_json::{json, Value};

async fn applied(env: &TestEnv, cmd: Value) -> Value {
    let reply = env.send(&cmd).await;
    assert_eq!(reply["outcome"], "applied", "{cmd} -> {reply}");
    reply
}

async fn new_contact(env: &TestEnv, tenant: &str, id: &str, employer: &str) {
    applied(
        env,
        env.command(
            tenant,
            "contact.upsert",
            0,
            json!({"contact_id": id, "first_name": "Dana", "last_name": "Reyes",
                   "email": format!("{id}@example.com"), "employer_id": employer,
                   "department": "HR"}),
        ),
    )
    .await;
}

/// An employer user linked to a contact (archive may revoke their access).
async fn linked_user(env: &TestEnv, user: &str, email: &str, contact: &str) {
    applied(
        env,
        env.command(
            "acme",
            "user.upsert",
            0,
            json!({"user_id": user, "email": email, "contact_id": contact}),
        ),
    )
    .await;
}

#[tokio::test]
async fn twelve_twenty_archive_and_revive_flow() {
    let env = TestEnv::start().await;
    applied(
        &env,
        env.command(
            "acme",
            "employer.upsert",
            0,
            json!({"employer_id": "inactive", "name": "Inactive"}),
        ),
    )
    .await;
    new_contact(&env, "acme", "c-1", "e-acme").await;
    linked_user(&env, "u-1", "c-1@example.com", "c-1").await;

    let archive = env.command(
        "acme",
        "contact.archive",
        10,
        json!({"contact_id": "c-1", "reason": "left the company", "employer_id": "inactive", "revoke_user_access": true}),
    );
    let reply = applied(&env, archive.clone()).await;
    assert_eq!(
        reply["entity"],
        json!({"kind": "contact", "id": "c-1", "version": 2})
    );
    let events = env.events_of(&reply).await;
    assert_eq!(
        types(&events),
        [
            "ContactArchived",
            "ContactDeactivated",
            "ContactVisibilityChanged",
            "ContactAttributesChanged",
            "ContactEmployerChanged",
            "ContactEmailSuppressed",
            "UserAccessRevoked"
        ]
    );
    for e in &events {
        assert_eq!(e["commandid"], archive["command_id"]);
        assert_eq!(e["entityversion"], 2, "contact v2 and user v2: {e}");
    }
    assert_eq!(events[0]["data"]["reason"], "left the company");
    assert_eq!(
        events[5]["data"]["reasons"],
        json!(["do_not_email", "inactive"])
    );
    assert_eq!(events[5]["data"]["email"], "c-1@example.com");
    assert_eq!(events[6]["subject"], "user/u-1");

    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["archived"], true);
    assert_eq!(c["active"], false);
    assert_eq!(c["visibility"], "advisors");
    assert_eq!(c["employer_id"], "inactive");
    assert_eq!(c["department"], Value::Null);
    assert_eq!(c["attributes"]["do_not_email"], true);
    assert_eq!(c["email_suppressed"], true);
    assert_eq!(c["former_employers"][0]["employer_id"], "e-acme");
    assert_eq!(c["former_employers"][0]["department"], "HR");
    assert_eq!(c["former_employers"][0]["until"], "2026-11-22T08:10:00Z");
    assert_eq!(
        env.user_show("acme", "u-1").await.unwrap()["site_access"],
        false
    );

    let again = env
        .send(&env.command("acme", "contact.archive", 11, json!({"contact_id": "c-1"})))
        .await;
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(again["entity"]["version"], 2);

    let revive = applied(
        &env,
        env.command("acme", "contact.revive", 20, json!({"contact_id": "c-1"})),
    )
    .await;
    let events = env.events_of(&revive).await;
    let t = types(&events);
    for expected in [
        "ContactRevived",
        "ContactReactivated",
        "ContactVisibilityChanged",
        "ContactAttributesChanged",
        "ContactEmployerChanged",
        "ContactEmailUnsuppressed",
        "UserAccessRestored",
    ] {
        assert!(t.contains(&expected), "{expected} missing from {t:?}");
    }
    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["archived"], false);
    assert_eq!(c["active"], true);
    assert_eq!(c["visibility"], "everyone");
    assert_eq!(c["employer_id"], "e-acme");
    assert_eq!(c["department"], "HR");
    assert_eq!(c["attributes"], json!({}));
    assert_eq!(c["email_suppressed"], false);
    assert_eq!(c["version"], 3);
    let former: Vec<&str> = c["former_employers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["employer_id"].as_str().unwrap())
        .collect();
    assert_eq!(former, ["e-acme", "inactive"]);
    assert_eq!(
        env.user_show("acme", "u-1").await.unwrap()["site_access"],
        true
    );

    let twice = env
        .send(&env.command("acme", "contact.revive", 21, json!({"contact_id": "c-1"})))
        .await;
    assert_eq!(twice["outcome"], "rejected");
    assert_eq!(twice["error"]["code"], "invalid_transition");
    env.finish().await;
}

#[tokio::test]
async fn revive_overrides_and_keeps_do_not_email_when_asked() {
    let env = TestEnv::start().await;
    new_contact(&env, "acme", "c-2", "e-old").await;
    applied(
        &env,
        env.command(
            "acme",
            "contact.archive",
            5,
            json!({"contact_id": "c-2", "employer_id": "inactive"}),
        ),
    )
    .await;
    applied(
        &env,
        env.command("acme", "contact.revive", 6, json!({"contact_id": "c-2", "employer_id": "e-new", "visibility": "owner", "restore_email": false})),
    )
    .await;
    let c = env.contact_show("acme", "c-2").await.unwrap();
    assert_eq!(c["employer_id"], "e-new");
    assert_eq!(c["visibility"], "owner");
    assert_eq!(c["attributes"]["do_not_email"], true);
    assert_eq!(c["email_suppressed"], true);
    env.finish().await;
}

#[tokio::test]
async fn tempworks_action_codes_deactivate_and_reactivate() {
    let env = TestEnv::start().await;
    new_contact(&env, "acme", "c-1", "cust-1").await;
    let deact = applied(
        &env,
        env.command("acme", "contact.log_activity", 5, json!({"contact_id": "c-1", "kind": "message", "action_code": "DEACT-LEFT", "body": "Left for another company"})),
    )
    .await;
    let events = env.events_of(&deact).await;
    assert_eq!(
        types(&events),
        [
            "ContactActivityLogged",
            "ContactDeactivated",
            "ContactEmailSuppressed"
        ]
    );
    assert_eq!(events[0]["data"]["employer_id"], "cust-1");
    assert_eq!(events[0]["data"]["action_code"], "DEACT-LEFT");
    assert!(
        events[0]["data"].get("body").is_none(),
        "activity bodies stay out of events"
    );
    assert_eq!(
        env.contact_show("acme", "c-1").await.unwrap()["active"],
        false
    );

    // A note never changes activation, whatever its code.
    let note = applied(
        &env,
        env.command(
            "acme",
            "contact.log_activity",
            6,
            json!({"contact_id": "c-1", "kind": "note", "action_code": "react", "body": "called"}),
        ),
    )
    .await;
    assert_eq!(
        types(&env.events_of(&note).await),
        ["ContactActivityLogged"]
    );
    assert_eq!(
        env.contact_show("acme", "c-1").await.unwrap()["active"],
        false
    );

    let react = applied(
        &env,
        env.command(
            "acme",
            "contact.log_activity",
            7,
            json!({"contact_id": "c-1", "kind": "message", "action_code": "react", "body": "back"}),
        ),
    )
    .await;
    assert_eq!(
        types(&env.events_of(&react).await),
        [
            "ContactActivityLogged",
            "ContactReactivated",
            "ContactEmailUnsuppressed"
        ]
    );
    let c = env.contact_show_activity("acme", "c-1").await;
    assert_eq!(c["active"], true);
    let trail = c["activity"].as_array().unwrap();
    assert_eq!(trail.len(), 3);
    assert_eq!(trail[0]["body"], "Left for another company");
    assert_eq!(trail[0]["employer_id"], "cust-1");
    assert_eq!(trail[2]["action_code"], "react");
    env.finish().await;
}

#[tokio::test]
async fn tempworks_status_codes_drive_suppression_and_employer_listing() {
    let env = TestEnv::start_with(|s| {
        s.tenants.insert(
            "temp".into(),
            TenantPolicyOverride {
                statuses: Some(vec!["A".into(), "N".into(), "DNS".into()]),
                suppressing_statuses: Some(vec!["N".into(), "DNS".into()]),
                hiding_statuses: Some(vec!["N".into()]),
                ..Default::default()
            },
        );
    })
    .await;
    new_contact(&env, "temp", "c-1", "cust-1").await;
    let r = applied(
        &env,
        env.command(
            "temp",
            "contact.change_status",
            5,
            json!({"contact_id": "c-1", "status": "N"}),
        ),
    )
    .await;
    let events = env.events_of(&r).await;
    assert_eq!(
        types(&events),
        ["ContactStatusChanged", "ContactEmailSuppressed"]
    );
    assert_eq!(events[0]["data"]["from"], "A");
    assert_eq!(events[0]["data"]["to"], "N");
    assert_eq!(events[1]["data"]["reasons"], json!(["status:N"]));
    let c = env.contact_show("temp", "c-1").await.unwrap();
    assert_eq!(c["shown_on_employer"], false);
    assert_eq!(c["email_suppressed"], true);

    let same = env
        .send(&env.command(
            "temp",
            "contact.change_status",
            6,
            json!({"contact_id": "c-1", "status": "N"}),
        ))
        .await;
    assert_eq!(same["outcome"], "unchanged");

    // "B" is a default code but not one of this tenant's.
    let bad = env
        .send(&env.command(
            "temp",
            "contact.change_status",
            7,
            json!({"contact_id": "c-1", "status": "B"}),
        ))
        .await;
    assert_eq!(bad["outcome"], "rejected");
    assert_eq!(bad["error"]["code"], "invalid_status");

    let dns = applied(
        &env,
        env.command(
            "temp",
            "contact.change_status",
            8,
            json!({"contact_id": "c-1", "status": "DNS"}),
        ),
    )
    .await;
    assert_eq!(
        types(&env.events_of(&dns).await),
        ["ContactStatusChanged"],
        "still suppressed: no flip"
    );
    let c = env.contact_show("temp", "c-1").await.unwrap();
    assert_eq!(c["shown_on_employer"], true);
    assert_eq!(c["email_suppressed"], true);

    let back = applied(
        &env,
        env.command(
            "temp",
            "contact.change_status",
            9,
            json!({"contact_id": "c-1", "status": "A"}),
        ),
    )
    .await;
    assert_eq!(
        types(&env.events_of(&back).await),
        ["ContactStatusChanged", "ContactEmailUnsuppressed"]
    );
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].code, "invalid_status");
    env.finish().await;
}

#[tokio::test]
async fn employer_change_keeps_former_employers_and_attributes_activity() {
    let env = TestEnv::start().await;
    new_contact(&env, "acme", "c-1", "cust-1").await;
    applied(
        &env,
        env.command(
            "acme",
            "contact.log_activity",
            1,
            json!({"contact_id": "c-1", "kind": "meeting", "body": "intro"}),
        ),
    )
    .await;
    let moved = applied(
        &env,
        env.command(
            "acme",
            "contact.change_employer",
            2,
            json!({"contact_id": "c-1", "employer_id": "cust-2", "department": "Sales"}),
        ),
    )
    .await;
    let events = env.events_of(&moved).await;
    assert_eq!(types(&events), ["ContactEmployerChanged"]);
    assert_eq!(
        events[0]["data"]["from"],
        json!({"employer_id": "cust-1", "department": "HR"})
    );
    assert_eq!(
        events[0]["data"]["to"],
        json!({"employer_id": "cust-2", "department": "Sales"})
    );
    applied(
        &env,
        env.command(
            "acme",
            "contact.log_activity",
            3,
            json!({"contact_id": "c-1", "kind": "task", "body": "follow up"}),
        ),
    )
    .await;

    let c = env.contact_show_activity("acme", "c-1").await;
    assert_eq!(c["employer_id"], "cust-2");
    assert_eq!(
        c["former_employers"],
        json!([{"employer_id": "cust-1", "department": "HR", "from": "2026-11-22T08:00:00Z", "until": "2026-11-22T08:02:00Z"}])
    );
    let by: Vec<&str> = c["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["employer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        by,
        ["cust-1", "cust-2"],
        "activity stays with the employer of its moment"
    );

    let none = applied(
        &env,
        env.command(
            "acme",
            "contact.change_employer",
            4,
            json!({"contact_id": "c-1", "employer_id": null}),
        ),
    )
    .await;
    assert_eq!(none["entity"]["version"], 5);
    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["employer_id"], Value::Null);
    assert_eq!(c["former_employers"].as_array().unwrap().len(), 2);
    env.finish().await;
}

#[tokio::test]
async fn rejected_contact_is_frozen_until_approved() {
    let env = TestEnv::start().await;
    new_contact(&env, "acme", "c-1", "cust-1").await;
    let r = applied(
        &env,
        env.command(
            "acme",
            "contact.reject",
            1,
            json!({"contact_id": "c-1", "reason": "spam"}),
        ),
    )
    .await;
    assert_eq!(
        types(&env.events_of(&r).await),
        ["ContactRejected", "ContactEmailSuppressed"]
    );

    for (kind, payload) in [
        (
            "contact.change_status",
            json!({"contact_id": "c-1", "status": "B"}),
        ),
        (
            "contact.set_visibility",
            json!({"contact_id": "c-1", "visibility": "owner"}),
        ),
        (
            "contact.upsert",
            json!({"contact_id": "c-1", "title": "CTO"}),
        ),
        ("contact.deactivate", json!({"contact_id": "c-1"})),
    ] {
        let reply = env.send(&env.command("acme", kind, 2, payload)).await;
        assert_eq!(reply["error"]["code"], "frozen", "{kind}");
    }
    applied(
        &env,
        env.command(
            "acme",
            "contact.log_activity",
            3,
            json!({"contact_id": "c-1", "kind": "note", "body": "still rejected"}),
        ),
    )
    .await;
    let ok = applied(
        &env,
        env.command("acme", "contact.approve", 4, json!({"contact_id": "c-1"})),
    )
    .await;
    assert_eq!(
        types(&env.events_of(&ok).await),
        ["ContactApproved", "ContactEmailUnsuppressed"]
    );
    applied(
        &env,
        env.command(
            "acme",
            "contact.change_status",
            5,
            json!({"contact_id": "c-1", "status": "B"}),
        ),
    )
    .await;
    assert_eq!(env.dead_letters().await.len(), 4);
    env.finish().await;
}

#[tokio::test]
async fn delete_honours_tenant_policy_and_leaves_a_tombstone() {
    // v1's delete, now `delete_mode = "hard"`; the soft default is in restore.rs.
    let env = TestEnv::start_with(|s| {
        s.tenants.insert(
            "keep".into(),
            TenantPolicyOverride {
                allow_contact_delete: Some(false),
                ..Default::default()
            },
        );
        s.tenants.insert(
            "acme".into(),
            TenantPolicyOverride {
                delete_mode: Some(lifecycle_worker::domain::policy::DeleteMode::Hard),
                ..Default::default()
            },
        );
    })
    .await;
    new_contact(&env, "keep", "c-1", "cust").await;
    let refused = env
        .send(&env.command("keep", "contact.delete", 5, json!({"contact_id": "c-1"})))
        .await;
    assert_eq!(refused["error"]["code"], "delete_forbidden");
    assert!(env.contact_show("keep", "c-1").await.is_some());

    new_contact(&env, "acme", "c-1", "cust").await;
    applied(
        &env,
        env.command(
            "acme",
            "contact.log_activity",
            1,
            json!({"contact_id": "c-1", "kind": "note", "body": "x"}),
        ),
    )
    .await;
    let del = applied(
        &env,
        env.command("acme", "contact.delete", 10, json!({"contact_id": "c-1"})),
    )
    .await;
    let events = env.events_of(&del).await;
    assert_eq!(types(&events), ["ContactEmailSuppressed", "ContactDeleted"]);
    assert_eq!(events[0]["data"]["reasons"], json!(["deleted"]));
    assert_eq!(events[1]["data"]["contact_id"], "c-1");
    assert_eq!(events[1]["data"]["email"], "c-1@example.com");
    assert!(
        events[1]["data"].get("contact").is_none(),
        "no snapshot in delete events"
    );
    assert!(env.contact_show("acme", "c-1").await.is_none());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM contact_activity")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "activity erased");

    let older = env
        .send(&env.command(
            "acme",
            "contact.deactivate",
            9,
            json!({"contact_id": "c-1"}),
        ))
        .await;
    assert_eq!(older["outcome"], "stale");
    let later = env
        .send(&env.command(
            "acme",
            "contact.deactivate",
            11,
            json!({"contact_id": "c-1"}),
        ))
        .await;
    assert_eq!(later["error"]["code"], "not_found");
    let old_upsert = env
        .send(&env.command(
            "acme",
            "contact.upsert",
            9,
            json!({"contact_id": "c-1", "email": "x@example.com"}),
        ))
        .await;
    assert_eq!(old_upsert["outcome"], "stale");
    let reborn = applied(
        &env,
        env.command(
            "acme",
            "contact.upsert",
            12,
            json!({"contact_id": "c-1", "email": "new@example.com"}),
        ),
    )
    .await;
    assert_eq!(reborn["entity"]["version"], 1);
    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["email"], "new@example.com");
    assert_eq!(c["first_name"], Value::Null);
    env.finish().await;
}

#[tokio::test]
async fn bulk_applies_per_contact_or_atomically() {
    let env = TestEnv::start().await;
    new_contact(&env, "acme", "c-1", "closing").await;
    new_contact(&env, "acme", "c-2", "closing").await;
    new_contact(&env, "acme", "c-3", "other").await;

    let bulk = env.command(
        "acme",
        "contact.bulk",
        5,
        json!({"contact_ids": ["c-1", "c-2", "missing"], "operation": {"type": "contact.deactivate", "payload": {"reason": "employer closed"}}}),
    );
    let reply = applied(&env, bulk.clone()).await;
    assert_eq!(reply["entity"], Value::Null);
    let items = reply["items"].as_array().unwrap();
    assert_eq!(
        items[0],
        json!({"contact_id": "c-1", "outcome": "applied", "version": 2, "error": null})
    );
    assert_eq!(items[1]["outcome"], "applied");
    assert_eq!(items[2]["outcome"], "rejected");
    assert_eq!(items[2]["error"]["code"], "not_found");
    let events = env.events_of(&reply).await;
    assert_eq!(events.len(), 4, "deactivated + suppressed for two contacts");
    assert!(events.iter().all(|e| e["commandid"] == bulk["command_id"]));

    // Atomic: one refusal rolls back every contact.
    let atomic = env
        .send(&env.command(
            "acme",
            "contact.bulk",
            6,
            json!({"contact_ids": ["c-1", "missing"], "atomic": true, "operation": {"type": "contact.reactivate", "payload": {}}}),
        ))
        .await;
    assert_eq!(atomic["outcome"], "rejected");
    assert_eq!(atomic["error"]["code"], "not_found");
    assert_eq!(
        env.contact_show("acme", "c-1").await.unwrap()["active"],
        false
    );

    let by_employer = applied(
        &env,
        env.command("acme", "contact.bulk", 7, json!({"filter": {"employer_id": "closing"}, "atomic": true, "operation": {"type": "contact.set_visibility", "payload": {"visibility": "advisors"}}})),
    )
    .await;
    let ids: Vec<&str> = by_employer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["contact_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-1", "c-2"]);
    assert_eq!(
        env.contact_show("acme", "c-3").await.unwrap()["visibility"],
        "everyone"
    );

    let unknown = env
        .send(&env.command("acme", "contact.bulk", 8, json!({"filter": {"employer_id": "nope"}, "operation": {"type": "contact.deactivate", "payload": {}}})))
        .await;
    assert_eq!(unknown["error"]["code"], "employer_not_found");
    // Archive reads and revokes linked users mid-bulk; a refused atomic bulk
    // still leaves no trace of them.
    linked_user(&env, "u-3", "u3@example.com", "c-3").await;
    let archive_all = env
        .send(&env.command(
            "acme",
            "contact.bulk",
            9,
            // c-2's archive reads linked users, which writes c-3's archive first.
            json!({"contact_ids": ["c-3", "c-2", "missing"], "atomic": true, "operation": {"type": "contact.archive", "payload": {"revoke_user_access": true}}}),
        ))
        .await;
    assert_eq!(archive_all["error"]["code"], "not_found");
    assert_eq!(
        env.contact_show("acme", "c-3").await.unwrap()["archived"],
        false
    );
    assert_eq!(
        env.user_show("acme", "u-3").await.unwrap()["site_access"],
        true
    );
    let archive_some = applied(
        &env,
        env.command("acme", "contact.bulk", 10, json!({"contact_ids": ["c-3", "missing"], "operation": {"type": "contact.archive", "payload": {"revoke_user_access": true}}})),
    )
    .await;
    assert_eq!(archive_some["items"][0]["outcome"], "applied");
    assert_eq!(
        env.user_show("acme", "u-3").await.unwrap()["site_access"],
        false
    );
    let not_allowed = env
        .send(&env.command(
            "acme",
            "contact.bulk",
            8,
            json!({"contact_ids": ["c-1"], "operation": {"type": "contact.delete", "payload": {}}}),
        ))
        .await;
    assert_eq!(not_allowed["error"]["code"], "invalid_command");
    env.finish().await;
}

/// Issue 17: no index names `state`, so a command that leaves a contact's
/// address and employer (or a user's link) as they were writes no index
/// entry: Postgres counts every such update as HOT (heap-only).
#[tokio::test]
async fn changes_that_keep_address_and_links_write_no_index_entries() {
    let env = TestEnv::start().await;
    new_contact(&env, "acme", "c-1", "e-acme").await;
    linked_user(&env, "u-1", "c-1@example.com", "c-1").await;
    for (minute, status) in [(1, "I"), (2, "A"), (3, "N"), (4, "A")] {
        applied(
            &env,
            env.command(
                "acme",
                "contact.change_status",
                minute,
                json!({"contact_id": "c-1", "status": status}),
            ),
        )
        .await;
    }
    for (minute, kind) in [(5, "user.revoke_access"), (6, "user.restore_access")] {
        applied(
            &env,
            env.command("acme", kind, minute, json!({"user_id": "u-1"})),
        )
        .await;
    }

    // The worker's sessions report their counts within a second or so.
    let counts = |table: &'static str| {
        let pool = env.pool.clone();
        async move {
            let (updates, hot): (i64, i64) = sqlx::query_as(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
                 WHERE schemaname = 'lifecycle' AND relname = $1",
            )
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
            (updates >= if table == "contacts" { 5 } else { 3 }).then_some((updates, hot))
        }
    };
    // Creating fills in the row inserted as a lock placeholder: that update
    // sets the address and links, so it is the one that is not HOT.
    let (updates, hot) = eventually("contact updates counted", || counts("contacts")).await;
    assert_eq!((updates, hot), (5, 4), "contact updates (all, HOT)");
    let (updates, hot) = eventually("user updates counted", || counts("users")).await;
    assert_eq!((updates, hot), (3, 2), "user updates (all, HOT)");
    env.finish().await;
}
