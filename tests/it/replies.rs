//! Issue 26, item 2: a reply the broker does not take (its queue is full
//! with `reject-publish`, or `reply_to` names no queue) is retried or
//! counted, and the command stays applied and acknowledged: the queue
//! keeps moving and nothing is redelivered.

use std::process::Stdio;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lifecycle_worker::amqp;
use serde_json::json;

use crate::helpers::{eventually, free_port, http_get, routing_key_of, spawn_worker_with, TestEnv};

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.split_whitespace().next() == Some(series))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

#[tokio::test]
async fn a_reply_the_broker_refuses_is_retried_then_counted_and_the_command_stays_acked() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let port = free_port();
    let _worker = spawn_worker_with(&env, &format!("127.0.0.1:{port}"), &[], Stdio::null());

    // A reply queue that takes one message and refuses the next.
    let full = format!("{}.full-replies", env.settings.amqp.prefix);
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    env.ch
        .queue_declare(full.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();

    let up = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "c@example.com"}),
    );
    assert_eq!(env.send(&up).await["outcome"], "applied");
    let replying_to = |queue: &str, cmd: &serde_json::Value| {
        let props = amqp::json_properties()
            .with_reply_to(queue.into())
            .with_correlation_id(cmd["command_id"].as_str().unwrap().into());
        (routing_key_of(cmd), serde_json::to_vec(cmd).unwrap(), props)
    };
    let fills = env.command(
        "acme",
        "contact.set_visibility",
        1,
        json!({"contact_id": "c-1", "visibility": "advisors"}),
    );
    let refused = env.command(
        "acme",
        "contact.deactivate",
        2,
        json!({"contact_id": "c-1"}),
    );
    let nowhere = env.command(
        "acme",
        "contact.reactivate",
        3,
        json!({"contact_id": "c-1"}),
    );
    for (queue, cmd) in [(&full, &fills), (&full, &refused)] {
        let (key, body, props) = replying_to(queue, cmd);
        env.publish_on(&env.ch, &key, &body, props).await;
    }
    let (key, body, props) = replying_to("no-such-reply-queue", &nowhere);
    env.publish_on(&env.ch, &key, &body, props).await;

    let metrics = eventually("both undelivered replies counted", || async {
        let (_, body) = http_get(port, "/metrics").await?;
        let refused = sample(
            &body,
            "lifecycle_replies_undelivered_total{reason=\"refused\"}",
        )?;
        let unroutable = sample(
            &body,
            "lifecycle_replies_undelivered_total{reason=\"unroutable\"}",
        )?;
        (refused == 1.0 && unroutable == 1.0).then_some(body)
    })
    .await;
    assert_eq!(
        sample(
            &metrics,
            "lifecycle_commands_total{type=\"contact.deactivate\",outcome=\"applied\"}"
        ),
        Some(1.0),
        "the command whose reply was refused was applied once"
    );

    // The queue moves on, and nothing waits to be redelivered.
    let next = env.command(
        "acme",
        "contact.upsert",
        4,
        json!({"contact_id": "c-1", "first_name": "Ana"}),
    );
    assert_eq!(env.send(&next).await["outcome"], "applied");
    let waiting = env
        .ch
        .queue_declare(
            env.names.contact_queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(waiting.message_count(), 0);
    let contact = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(
        contact["active"], true,
        "reactivated after deactivation: {contact}"
    );
    env.ch
        .queue_delete(full.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    env.finish().await;
}
