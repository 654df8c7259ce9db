//! What the test's own queues receive: replies (by correlation id) and
//! events, collected as they arrive and waited on with a deadline.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use serde_json::Value;
use tokio::sync::watch;

use super::{TestEnv, DEADLINE};

/// A received message: its correlation id and its JSON body.
type Received = (Option<String>, Value);

/// Messages received on a test queue, with a watch to wait for more.
#[derive(Clone)]
pub(super) struct Inbox {
    items: Arc<Mutex<Vec<Received>>>,
    changed: watch::Sender<u64>,
}

impl Inbox {
    pub(super) fn new() -> Self {
        Inbox {
            items: Arc::default(),
            changed: watch::channel(0).0,
        }
    }

    /// Waits until `f` over the received messages returns `Some`.
    async fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&[Received]) -> Option<T>) -> T {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(t) = f(&self.items.lock().unwrap()) {
                return t;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let seen = self.items.lock().unwrap().len();
                panic!("timed out waiting for {what} ({seen} messages seen)");
            }
        }
    }
}

impl TestEnv {
    /// Waits for the `n`-th reply with this correlation id (replays reuse it).
    pub async fn nth_reply(&self, correlation: &str, n: usize) -> Value {
        self.replies
            .wait_for(&format!("reply {n} to {correlation}"), |items| {
                items
                    .iter()
                    .filter(|(c, _)| c.as_deref() == Some(correlation))
                    .nth(n - 1)
                    .map(|(_, v)| v.clone())
            })
            .await
    }

    pub fn reply_queue_name(&self) -> &str {
        &self.reply_queue
    }

    pub async fn reply(&self, correlation: &str) -> Value {
        self.replies
            .wait_for(&format!("reply {correlation}"), |items| {
                items
                    .iter()
                    .find(|(c, _)| c.as_deref() == Some(correlation))
                    .map(|(_, v)| v.clone())
            })
            .await
    }

    /// Waits until the events of `ids` (CloudEvent ids) have all been received.
    pub async fn events_with_ids(&self, ids: &[Value]) -> Vec<Value> {
        let wanted: Vec<String> = ids.iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        self.events
            .wait_for(&format!("events {wanted:?}"), |items| {
                let got: Vec<Value> = wanted
                    .iter()
                    .filter_map(|id| {
                        items
                            .iter()
                            .find(|(_, e)| e["id"].as_str() == Some(id.as_str()))
                            .map(|(_, e)| e.clone())
                    })
                    .collect();
                (got.len() == wanted.len()).then_some(got)
            })
            .await
    }

    /// The events announced in a reply, as received from `{p}.events`.
    pub async fn events_of(&self, reply: &Value) -> Vec<Value> {
        let ids = reply["events"].as_array().cloned().unwrap_or_default();
        self.events_with_ids(&ids).await
    }

    /// Waits until `n` events in total were received; returns all of them.
    pub async fn wait_event_count(&self, n: usize) -> Vec<Value> {
        self.events
            .wait_for(&format!("{n} events"), |items| {
                (items.len() >= n).then(|| items.iter().map(|(_, e)| e.clone()).collect())
            })
            .await
    }

    /// All events received so far.
    pub fn events_so_far(&self) -> Vec<Value> {
        self.events
            .items
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }
}

/// Types of the given events, in order.
pub fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// Declares an exclusive queue (bound to `exchange` with `#` if given) and
/// collects what arrives into `inbox`. Returns the queue name.
pub(super) async fn listen(conn: &Connection, exchange: Option<&str>, inbox: Inbox) -> String {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let name = q.name().as_str().to_owned();
    if let Some(x) = exchange {
        ch.queue_bind(
            name.as_str().into(),
            x.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let mut consumer = ch
        .basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    tokio::spawn(async move {
        let _keep = ch;
        while let Some(Ok(d)) = consumer.next().await {
            let key = d
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str().to_owned());
            let v: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
            inbox.items.lock().unwrap().push((key, v));
            inbox.changed.send_modify(|n| *n += 1);
        }
    });
    name
}
