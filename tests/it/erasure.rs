//! Contract section 11, erasure: after `contact.erase` / `user.erase` no
//! table holds the person's data (a `pg_dump` shows none of it), and their
//! address stays suppressed, per tenant, whatever path brings it back,
//! until `contact.confirm_consent`.

use crate::helpers::{eventually, types, TestEnv};
use lifecycle_worker::config::Settings;
use lifecycle_worker::domain::blocklist::email_sha256;
use lifecycle_worker::domain::event::format_time;
use lifecycle_worker::domain::policy::GuardrailOverride;
use lifecycle_worker::hash_key::{HashKey, KeyError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use time::OffsetDateTime;

fn trip_after(n: u64) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.tenants.entry("default".into()).or_default().guardrail = Some(GuardrailOverride {
            max_changes: Some(n),
            ..Default::default()
        });
    }
}

/// The whole database as `pg_dump` writes it.
async fn pg_dump(env: &TestEnv) -> String {
    let out = tokio::process::Command::new("pg_dump")
        .arg(env.settings.database.url.expose_secret())
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("a text dump")
}

/// Neither the value nor its bytes in hex (bytea columns) in the dump, in any case.
fn assert_absent(dump: &str, values: &[&str]) {
    let dump = dump.to_lowercase();
    for v in values {
        let v = v.to_lowercase();
        assert!(!dump.contains(&v), "the dump still holds {v:?}");
        assert!(
            !dump.contains(&hex::encode(&v)),
            "the dump still holds {v:?} as bytes"
        );
    }
}

async fn held_ids(env: &TestEnv) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT command_id, hold_id FROM held_commands ORDER BY hold_id")
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn after_an_erasure_no_table_holds_the_persons_data() {
    // The second destructive change trips the guardrail, so that the
    // contact has held commands when it is erased.
    let mut env = TestEnv::start_with(trip_after(1)).await;
    let email = "Zq-Erase-7781@Example.test";
    let secrets = [
        email,
        "Quorvath",
        "Blenkinsop",
        "+1-555-0199-7781",
        "Chief Quixotic Officer",
        "attrval-Xyzzy-7781",
        "activity-body-Plugh-7781",
        "held-reason-Frobozz-7781",
        "zq-user-erase-5531@example.test",
        "Wendelina Crumbsworth",
    ];
    let upsert = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-erase-1", "email": email, "first_name": "Quorvath",
               "last_name": "Blenkinsop", "phone": "+1-555-0199-7781",
               "title": "Chief Quixotic Officer", "attributes": {"nickname": "attrval-Xyzzy-7781"}}),
    );
    let created = env.send(&upsert).await;
    assert_eq!(created["outcome"], "applied");
    env.events_of(&created).await;
    for minute in 1..3 {
        let log = env.command(
            "acme",
            "contact.log_activity",
            minute,
            json!({"contact_id": "c-erase-1", "kind": "note", "body": "activity-body-Plugh-7781"}),
        );
        assert_eq!(env.send(&log).await["outcome"], "applied");
    }
    // Dead letters holding the data: an unknown status, an unknown field.
    let mut bad = upsert.clone();
    bad["command_id"] = json!("bad-status");
    bad["payload"]["status"] = json!("NOPE");
    assert_eq!(env.send(&bad).await["error"]["code"], "invalid_status");
    let mut unknown = upsert.clone();
    unknown["command_id"] = json!("bad-field");
    unknown["payload"]["shoe_size"] = json!(44);
    assert_eq!(env.send(&unknown).await["error"]["code"], "invalid_command");
    // A user with their own data and dead letter.
    let user = env.command(
        "acme",
        "user.upsert",
        0,
        json!({"user_id": "u-erase-1", "email": "zq-user-erase-5531@example.test",
               "name": "Wendelina Crumbsworth"}),
    );
    assert_eq!(env.send(&user).await["outcome"], "applied");
    let mut no_role = user.clone();
    no_role["command_id"] = json!("bad-role");
    no_role["payload"]["role_id"] = json!("r-missing");
    assert_eq!(env.send(&no_role).await["error"]["code"], "role_not_found");

    // The guardrail trips: two deactivations of the contact are held.
    let other = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-other", "first_name": "Other"}),
    );
    env.send(&other).await;
    let first = env.command(
        "acme",
        "contact.deactivate",
        3,
        json!({"contact_id": "c-other"}),
    );
    assert_eq!(env.send(&first).await["outcome"], "applied");
    for minute in [4, 5] {
        let held = env.command(
            "acme",
            "contact.deactivate",
            minute,
            json!({"contact_id": "c-erase-1", "reason": "held-reason-Frobozz-7781"}),
        );
        assert_eq!(env.send(&held).await["outcome"], "held");
    }
    let erase = env.command(
        "acme",
        "contact.erase",
        6,
        json!({"contact_id": "c-erase-1"}),
    );
    assert_eq!(
        env.send(&erase).await["outcome"],
        "held",
        "erasure counts too"
    );
    let erase_user = env.command("acme", "user.erase", 6, json!({"user_id": "u-erase-1"}));
    assert_eq!(env.send(&erase_user).await["outcome"], "held");

    // Without a relay, the first held deactivation is released: its events
    // are committed but unpublished when the erasure is.
    env.stop_worker().await;
    let holds = held_ids(&env).await;
    assert_eq!(holds.len(), 4);
    for (_, hold) in [&holds[0], &holds[2], &holds[3]] {
        let (code, _, err) = env
            .cli_text(&["guard", "release", "--tenant", "acme", &hold.to_string()])
            .await;
        assert_eq!(code, 0, "{err}");
    }
    assert!(
        held_ids(&env).await.is_empty(),
        "the erasure took the other hold"
    );
    let unpublished: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_unpublished u JOIN outbox o USING (tenant_id, id) \
         WHERE o.entity_id = 'c-erase-1'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(unpublished >= 3, "deactivation and erasure events wait");

    // The relay publishes what was committed before the erasure, whole,
    // then scrubs it.
    env.start_worker();
    let published = |event_type: &'static str, subject: &'static str| {
        let env = &env;
        eventually(event_type, move || async move {
            env.events_so_far()
                .into_iter()
                .find(|e| e["type"] == event_type && e["subject"] == subject)
        })
    };
    let erased = published("ContactErased", "contact/c-erase-1").await;
    assert_eq!(erased["data"]["email_sha256"], email_sha256(email));
    let deactivated = published("ContactDeactivated", "contact/c-erase-1").await;
    assert_eq!(deactivated["data"]["contact"]["last_name"], "Blenkinsop");
    published("UserErased", "user/u-erase-1").await;
    eventually("every event published", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_unpublished")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;

    let dump = pg_dump(&env).await;
    assert!(
        dump.contains("c-erase-1"),
        "ids are kept: the dump has the data"
    );
    assert!(dump.contains("CREATE TABLE lifecycle.erased_emails"));
    assert_absent(&dump, &secrets);
    assert!(env.contact_show("acme", "c-erase-1").await.is_none());
    assert!(env.user_show("acme", "u-erase-1").await.is_none());
    let restore = env.command(
        "acme",
        "contact.restore",
        7,
        json!({"contact_id": "c-erase-1"}),
    );
    assert_eq!(env.send(&restore).await["error"]["code"], "not_found");
    let again = env.command(
        "acme",
        "contact.erase",
        8,
        json!({"contact_id": "c-erase-1"}),
    );
    assert_eq!(env.send(&again).await["error"]["code"], "not_found");
    env.finish().await;
}

/// `contact show` of a contact that must exist.
async fn shown(env: &TestEnv, tenant: &str, id: &str) -> Value {
    env.contact_show(tenant, id)
        .await
        .unwrap_or_else(|| panic!("{tenant}/{id} exists"))
}

fn suppression_reasons(events: &[Value]) -> Value {
    events
        .iter()
        .find(|e| e["type"] == "ContactEmailSuppressed")
        .map(|e| e["data"]["reasons"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_erased_address_stays_suppressed_on_every_path_until_consent() {
    let env = TestEnv::start_with(trip_after(2)).await;
    let e = &env;
    let send = |tenant: &str, kind: &str, minute: u32, payload: Value| {
        let cmd = e.command(tenant, kind, minute, payload);
        async move { e.send(&cmd).await }
    };
    let address = "Erased.Person@Example.com";
    // A duplicate of the person exists before the erasure.
    send(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-dup", "email": address}),
    )
    .await;
    send(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": address}),
    )
    .await;
    // A command refused now (the contact is rejected), replayed later.
    send(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-frozen", "email": "f@example.com"}),
    )
    .await;
    send(
        "acme",
        "contact.reject",
        1,
        json!({"contact_id": "c-frozen"}),
    )
    .await;
    let refused = e.command(
        "acme",
        "contact.upsert",
        2,
        json!({"contact_id": "c-frozen", "email": "ERASED.person@example.com"}),
    );
    assert_eq!(e.send(&refused).await["error"]["code"], "frozen");

    let erased = send("acme", "contact.erase", 3, json!({"contact_id": "c-1"})).await;
    assert_eq!(erased["outcome"], "applied");
    let events = env.events_of(&erased).await;
    assert_eq!(
        types(&events),
        [
            "ContactEmailSuppressed",
            "ContactErased",
            "ContactEmailSuppressed"
        ],
        "the duplicate is suppressed with it"
    );
    assert_eq!(events[0]["data"]["reasons"], json!(["erased"]));
    assert_eq!(events[2]["subject"], "contact/c-dup");
    assert_eq!(events[2]["data"]["reasons"], json!(["previously_erased"]));
    assert_eq!(shown(&env, "acme", "c-dup").await["email_suppressed"], true);

    // Upsert: a new contact with the address, in another case.
    let created = send(
        "acme",
        "contact.upsert",
        4,
        json!({"contact_id": "c-2", "email": "erased.PERSON@example.com"}),
    )
    .await;
    assert_eq!(
        suppression_reasons(&env.events_of(&created).await),
        json!(["previously_erased"])
    );
    // An existing contact given the address.
    send(
        "acme",
        "contact.upsert",
        4,
        json!({"contact_id": "c-3", "email": "c3@example.com"}),
    )
    .await;
    let given = send(
        "acme",
        "contact.upsert",
        5,
        json!({"contact_id": "c-3", "email": address}),
    )
    .await;
    assert_eq!(
        types(&env.events_of(&given).await),
        ["ContactUpdated", "ContactEmailSuppressed"]
    );
    // Attribute change and bulk: clearing do_not_email does not bring it back.
    send(
        "acme",
        "contact.set_attributes",
        6,
        json!({"contact_id": "c-2", "attributes": {"do_not_email": false}}),
    )
    .await;
    let bulk = send(
        "acme",
        "contact.bulk",
        7,
        json!({"contact_ids": ["c-2", "c-3", "c-dup"],
               "operation": {"type": "contact.set_attributes", "payload": {"attributes": {"do_not_email": false}}}}),
    )
    .await;
    assert_eq!(bulk["outcome"], "applied", "{bulk}");
    for id in ["c-2", "c-3", "c-dup"] {
        assert_eq!(
            shown(&env, "acme", id).await["email_suppressed"],
            true,
            "{id}"
        );
    }
    // A replayed dead letter.
    send(
        "acme",
        "contact.approve",
        8,
        json!({"contact_id": "c-frozen"}),
    )
    .await;
    let dead = env
        .dead_letters()
        .await
        .into_iter()
        .find(|d| d.command_id.as_deref() == refused["command_id"].as_str())
        .expect("the refused upsert is a dead letter");
    let (code, _, err) = env.cli_text(&["dlq", "replay", &dead.id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    let replayed = eventually("the replayed upsert", || async {
        env.contact_show("acme", "c-frozen")
            .await
            .filter(|c| c["version"] == 4)
    })
    .await;
    assert_eq!(replayed["email_suppressed"], true);
    // A released hold: the reactivation applies, the address stays suppressed.
    for id in ["c-3", "c-dup", "c-2"] {
        send("acme", "contact.deactivate", 9, json!({"contact_id": id})).await;
    }
    let (code, _, err) = env
        .cli_text(&["guard", "release", "--tenant", "acme", "--all"])
        .await;
    assert_eq!(code, 0, "{err}");
    send(
        "acme",
        "contact.reactivate",
        10,
        json!({"contact_id": "c-2"}),
    )
    .await;
    assert_eq!(shown(&env, "acme", "c-2").await["active"], true);
    assert_eq!(shown(&env, "acme", "c-2").await["email_suppressed"], true);
    // A scheduled command, applied when due.
    let mut scheduled = e.command(
        "acme",
        "contact.set_attributes",
        11,
        json!({"contact_id": "c-2", "attributes": {"do_not_email": false, "tier": "gold"}}),
    );
    // Far enough ahead to arrive before it is due, even on a busy machine.
    let due = OffsetDateTime::now_utc() + time::Duration::seconds(3);
    scheduled["effective_at"] = json!(format_time(due));
    assert_eq!(e.send(&scheduled).await["outcome"], "scheduled");
    let applied = eventually("the scheduled change applied", || async {
        env.contact_show("acme", "c-2")
            .await
            .filter(|c| c["attributes"]["tier"] == "gold")
    })
    .await;
    assert_eq!(applied["email_suppressed"], true);

    // Tenant isolation.
    let elsewhere = send(
        "globex",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": address}),
    )
    .await;
    assert_eq!(types(&env.events_of(&elsewhere).await), ["ContactCreated"]);
    assert_eq!(
        shown(&env, "globex", "c-1").await["email_suppressed"],
        false
    );

    // Consent of one contact frees the address for all of them.
    let consent = send(
        "acme",
        "contact.confirm_consent",
        11,
        json!({"contact_id": "c-dup"}),
    )
    .await;
    assert_eq!(consent["outcome"], "applied");
    let events = env.events_of(&consent).await;
    let subjects: Vec<&str> = events
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(types(&events)
        .iter()
        .all(|t| *t == "ContactEmailUnsuppressed"));
    // c-3 and c-dup were deactivated (and stay suppressed as inactive).
    assert_eq!(subjects, ["contact/c-2", "contact/c-frozen"]);
    assert_eq!(shown(&env, "acme", "c-2").await["email_suppressed"], false);
    assert_eq!(shown(&env, "acme", "c-dup").await["email_suppressed"], true);
    let later = send(
        "acme",
        "contact.upsert",
        12,
        json!({"contact_id": "c-9", "email": address}),
    )
    .await;
    assert_eq!(types(&env.events_of(&later).await), ["ContactCreated"]);
    let twice = send(
        "acme",
        "contact.confirm_consent",
        13,
        json!({"contact_id": "c-2"}),
    )
    .await;
    assert_eq!(twice["outcome"], "unchanged");

    // Bad input.
    let nobody = send("acme", "contact.erase", 14, json!({"contact_id": "nobody"})).await;
    assert_eq!(nobody["error"]["code"], "not_found");
    let no_user = send("acme", "user.erase", 14, json!({"user_id": "nobody"})).await;
    assert_eq!(no_user["error"]["code"], "not_found");
    let live = send("acme", "contact.restore", 14, json!({"contact_id": "c-2"})).await;
    assert_eq!(live["error"]["code"], "invalid_transition");
    env.finish().await;
}

#[tokio::test]
async fn a_user_erasure_blocks_the_address_for_contacts_and_lookup_shows_it() {
    let env = TestEnv::start().await;
    let user = env.command(
        "acme",
        "user.upsert",
        0,
        json!({"user_id": "u-1", "email": "U@Example.com"}),
    );
    env.send(&user).await;
    let contact = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-0", "email": "u@example.COM"}),
    );
    env.send(&contact).await;
    let delete = env.command("acme", "contact.delete", 1, json!({"contact_id": "c-0"}));
    env.send(&delete).await;
    let lookup = [
        "privacy",
        "lookup",
        "--tenant",
        "acme",
        "--email",
        "u@example.com",
        "--json",
    ];
    let (code, out, err) = env.cli_text(&lookup).await;
    assert_eq!(code, 0, "{err}");
    let found: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        found["holders"],
        json!([{"kind": "contact", "id": "c-0", "deleted": true},
               {"kind": "user", "id": "u-1", "deleted": false}])
    );
    assert_eq!(found["erased"], false);
    let erase = env.command("acme", "user.erase", 1, json!({"user_id": "u-1"}));
    assert_eq!(env.send(&erase).await["outcome"], "applied");
    let (_, out, _) = env.cli_text(&lookup).await;
    let found: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found["erased"], true);
    assert_eq!(
        found["holders"].as_array().unwrap().len(),
        1,
        "the contact is left to erase"
    );
    let contact = env.command(
        "acme",
        "contact.upsert",
        2,
        json!({"contact_id": "c-1", "email": "u@example.com"}),
    );
    let created = env.send(&contact).await;
    assert_eq!(
        suppression_reasons(&env.events_of(&created).await),
        json!(["previously_erased"])
    );
    env.finish().await;
}

#[tokio::test]
async fn the_blocklist_key_is_generated_once_and_never_silently_replaced() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let generated = HashKey::load(&env.pool, None).await.unwrap();
    let again = HashKey::load(&env.pool, None).await.unwrap();
    assert_eq!(
        generated.email_hmac("acme", "a@example.com"),
        again.email_hmac("acme", "a@example.com"),
        "the key the worker generated is kept"
    );
    let other = SecretString::from("a configured key of thirty-two or more characters");
    assert!(matches!(
        HashKey::load(&env.pool, Some(&other)).await,
        Err(KeyError::Mismatch)
    ));
    // A database whose key was configured needs it configured.
    sqlx::query("DELETE FROM privacy_key")
        .execute(&env.pool)
        .await
        .unwrap();
    let configured = HashKey::load(&env.pool, Some(&other)).await.unwrap();
    assert_ne!(
        configured.email_hmac("acme", "a@example.com"),
        generated.email_hmac("acme", "a@example.com")
    );
    assert!(matches!(
        HashKey::load(&env.pool, None).await,
        Err(KeyError::Missing)
    ));
    env.finish().await;
}

#[tokio::test]
async fn every_scrub_can_use_an_index() {
    let env = TestEnv::start().await;
    let mut conn = env.pool.acquire().await.unwrap();
    // Forbidding sequential scans leaves one only where no index serves.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    for statement in [
        "DELETE FROM dead_letters WHERE tenant_id = 'a' AND entity_kind = 'contact' AND entity_id = 'c'",
        "DELETE FROM held_commands WHERE tenant_id = 'a' AND entity_kind = 'contact' AND entity_id = 'c'",
        "UPDATE outbox_unpublished u SET scrub = true FROM outbox o WHERE o.tenant_id = 'a' AND o.entity_kind = 'contact' \
         AND o.entity_id = 'c' AND u.tenant_id = o.tenant_id AND u.id = o.id AND NOT u.scrub",
        "DELETE FROM outbox o WHERE tenant_id = 'a' AND entity_kind = 'contact' AND entity_id = 'c' \
         AND NOT EXISTS (SELECT 1 FROM outbox_unpublished u WHERE u.tenant_id = o.tenant_id AND u.id = o.id)",
        "DELETE FROM contact_activity WHERE tenant_id = 'a' AND contact_id = 'c'",
        "SELECT contact_id FROM contacts WHERE tenant_id = 'a' AND state IS NOT NULL AND lower(state->>'email') = lower('x')",
        "SELECT 1 FROM erased_emails WHERE tenant_id = 'a' AND email_hmac = '\\x00'",
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {statement}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "{statement}\n{plan}");
    }
    drop(conn);
    env.finish().await;
}
