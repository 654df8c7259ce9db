//! Issue 25, item 1: a command whose AMQP headers nest tables or arrays
//! thousands of levels deep (a few kilobytes, well inside the broker's
//! frame size) once overflowed the stack of the worker's AMQP thread and
//! aborted the process; unacknowledged, it then went to the next replica,
//! which died the same way. Now every replica keeps running, the message
//! ends as a `malformed` dead letter, and the queue keeps moving.

use serde_json::json;

use crate::helpers::{eventually, routing_key_of, spawn_worker, TestEnv};
use crate::raw_amqp::{Nesting, RawPublisher};

#[tokio::test]
async fn deeply_nested_headers_leave_every_replica_running() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let mut replicas = [spawn_worker(&env), spawn_worker(&env)];
    let up = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "c@example.com"}),
    );
    assert_eq!(env.send(&up).await["outcome"], "applied");

    let mut publisher = RawPublisher::connect().await;
    let cases = [
        (Nesting::Tables, 2_000),
        (Nesting::Tables, 14_000),
        (Nesting::Arrays, 14_000),
        (Nesting::TablesInArrays, 14_000),
    ];
    for (i, (shape, levels)) in cases.into_iter().enumerate() {
        let cmd = env.command(
            "acme",
            "contact.deactivate",
            1,
            json!({"contact_id": "c-1"}),
        );
        let correlation = format!("deep-{i}");
        publisher
            .publish(
                &env.names.commands,
                &routing_key_of(&cmd),
                env.reply_queue_name(),
                &correlation,
                "x-deep",
                &shape.value(levels),
                &serde_json::to_vec(&cmd).unwrap(),
            )
            .await;
        let reply = env.reply(&correlation).await;
        assert_eq!(reply["outcome"], "rejected", "{shape:?} {levels}: {reply}");
        assert_eq!(reply["error"]["code"], "malformed", "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains("nested"), "{message}");
    }

    // The queue keeps moving: the next command is applied.
    let next = env.command(
        "acme",
        "contact.deactivate",
        2,
        json!({"contact_id": "c-1"}),
    );
    assert_eq!(env.send(&next).await["outcome"], "applied");
    for (i, r) in replicas.iter_mut().enumerate() {
        assert!(
            r.child.try_wait().unwrap().is_none(),
            "replica {i} is still running"
        );
    }

    // Each is a dead letter that `dlq show` prints, the deep part cut.
    let rows = eventually("four dead letters", || async {
        let rows = env.dead_letters().await;
        (rows.len() == cases.len()).then_some(rows)
    })
    .await;
    for row in &rows {
        assert_eq!(row.code, "malformed");
        let stored = row.properties["headers"]["x-deep"].to_string();
        assert!(stored.len() < 2_000, "kept only the first levels: {stored}");
        let (code, out, err) = env.cli_text(&["dlq", "show", &row.id.to_string()]).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("x-deep"), "{out}");
    }
    env.finish().await;
}
