//! The per-test topology (named by the test's prefix): publishing commands
//! to it, and deleting it when the test ends.

use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Channel};
use lifecycle_worker::amqp::{self, Names};
use lifecycle_worker::config::Settings;
use serde_json::Value;

use super::{routing_key_of, unique, TestEnv};

impl TestEnv {
    /// Publishes raw bytes with `reply_to` and returns the reply.
    pub async fn send_raw(&self, routing_key: &str, body: &[u8], props: BasicProperties) -> Value {
        let correlation = unique();
        let props = props
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(correlation.as_str().into());
        self.publish_on(&self.ch, routing_key, body, props).await;
        self.reply(&correlation).await
    }

    /// Publishes a command (routing key from its tenant and type) and returns the reply.
    pub async fn send(&self, cmd: &Value) -> Value {
        let body = serde_json::to_vec(cmd).unwrap();
        self.send_raw(&routing_key_of(cmd), &body, amqp::json_properties())
            .await
    }

    /// Publishes with confirms; asserts the broker routed it.
    pub async fn publish_on(
        &self,
        ch: &Channel,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) {
        let confirm = ch
            .basic_publish(
                self.names.commands.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "broker refused the publish");
        assert!(
            confirm.take_message().is_none(),
            "unroutable: {routing_key}"
        );
    }

    /// Publishes a command with `reply_to` and the given correlation id.
    pub async fn send_correlated(&self, cmd: &Value, correlation: &str) -> Value {
        let props = amqp::json_properties()
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(correlation.into());
        let body = serde_json::to_vec(cmd).unwrap();
        self.publish_on(&self.ch, &routing_key_of(cmd), &body, props)
            .await;
        self.reply(correlation).await
    }

    /// Publishes commands with confirms, without waiting for replies.
    pub async fn publish_all(&self, cmds: &[Value]) {
        let mut confirms = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let body = serde_json::to_vec(cmd).unwrap();
            confirms.push(
                self.ch
                    .basic_publish(
                        self.names.commands.as_str().into(),
                        routing_key_of(cmd).as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        amqp::json_properties(),
                    )
                    .await
                    .expect("publish"),
            );
        }
        for c in confirms {
            assert!(
                c.await.expect("confirm").is_ack(),
                "broker refused a publish"
            );
        }
    }
}

/// Deletes a test's queues and exchanges; errors are ignored, since this
/// runs when a test ends, failed or not.
pub(super) async fn delete_topology(settings: &Settings) {
    if let Ok(conn) = amqp::connect(&settings.amqp, "test-cleanup").await {
        if let Ok(ch) = conn.create_channel().await {
            let names = Names::new(&settings.amqp.prefix);
            // `test-events` is the chaos tests' durable event queue.
            let test_events = format!("{}.test-events", settings.amqp.prefix);
            for q in [
                &names.contact_queue,
                &names.user_queue,
                &names.dead_letters,
                &test_events,
            ] {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for x in [&names.commands, &names.events, &names.dead] {
                let _ = ch
                    .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
        }
        let _ = conn.close(200, "cleaned".into()).await;
    }
}
