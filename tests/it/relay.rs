//! The outbox relay: events committed while no relay ran are published
//! afterwards, each id once after deduplication, in version order per
//! entity, even with two relays competing and rows re-sent after a crash.

use std::collections::{HashMap, HashSet};

use crate::helpers::{eventually, TestEnv};
use serde_json::{json, Value};

/// Deduplicates by id (as a consumer would) and checks per-entity order.
fn dedupe_in_order(events: &[Value]) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut last_version: HashMap<String, u64> = HashMap::new();
    let mut unique = Vec::new();
    for e in events {
        if !seen.insert(e["id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let subject = e["subject"].as_str().unwrap().to_owned();
        let v = e["entityversion"].as_u64().unwrap();
        let last = last_version.entry(subject.clone()).or_insert(0);
        assert!(v >= *last, "{subject}: version {v} after {last}");
        *last = v;
        unique.push(e.clone());
    }
    unique
}

async fn pending(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn events_committed_without_a_relay_are_published_later_exactly_once() {
    let mut env = TestEnv::prepare_with(|s| s.relay.enabled = false).await;
    env.start_worker();
    let mut expected_ids = Vec::new();
    for i in 0..5 {
        let id = format!("c-{i}");
        for (minute, kind, payload) in [
            (
                0,
                "contact.upsert",
                json!({"contact_id": id, "email": format!("{id}@example.com")}),
            ),
            (1, "contact.deactivate", json!({"contact_id": id})),
            (
                2,
                "contact.change_status",
                json!({"contact_id": id, "status": "B"}),
            ),
            (3, "contact.reactivate", json!({"contact_id": id})),
        ] {
            let reply = env.send(&env.command("acme", kind, minute, payload)).await;
            assert_eq!(reply["outcome"], "applied");
            expected_ids.extend(reply["events"].as_array().unwrap().iter().cloned());
        }
    }
    // Committed (replies came back) but unpublished: the "crash" window.
    assert_eq!(pending(&env).await as usize, expected_ids.len());
    assert!(env.events_so_far().is_empty());
    env.stop_worker().await;

    // Two workers with relays: only the one holding the lock publishes.
    env.settings.relay.enabled = true;
    env.start_worker();
    let (stop_second, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(lifecycle_worker::app::run(
        env.settings.clone(),
        async {
            let _ = stopped.await;
        },
        |_| {},
    ));
    let received = env.events_with_ids(&expected_ids).await;
    assert_eq!(received.len(), expected_ids.len());
    let all = env.wait_event_count(expected_ids.len()).await;
    let unique = dedupe_in_order(&all);
    assert_eq!(unique.len(), expected_ids.len());

    // A relay that dies after publishing but before marking re-sends rows:
    // consumers see duplicates, which dedupe to the same events in order.
    eventually("all rows marked published", || async {
        (pending(&env).await == 0).then_some(())
    })
    .await;
    sqlx::query("UPDATE outbox SET published_at = NULL WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 6)")
        .execute(&env.pool)
        .await
        .unwrap();
    let all = env.wait_event_count(expected_ids.len() + 6).await;
    let unique = dedupe_in_order(&all);
    assert_eq!(unique.len(), expected_ids.len());
    let versions: Vec<u64> = unique
        .iter()
        .filter(|e| e["subject"] == "contact/c-0")
        .map(|e| e["entityversion"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 2, 3, 4, 4]);

    let _ = stop_second.send(());
    second.await.unwrap().unwrap();
    env.finish().await;
}
