//! The soak's traffic: a paced publisher with confirms that survives the
//! broker going away, and consumers of the soak's durable reply and event
//! queues that reconnect the same way.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use lifecycle_worker::amqp;
use lifecycle_worker::config::Settings;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A command ready to publish.
pub struct Cmd {
    pub id: String,
    pub key: String,
    pub body: Vec<u8>,
}

impl Cmd {
    pub fn new(v: &Value) -> Cmd {
        Cmd {
            id: v["command_id"].as_str().expect("a command id").to_owned(),
            key: crate::helpers::routing_key_of(v),
            body: serde_json::to_vec(v).expect("JSON"),
        }
    }
}

/// One event as received, in arrival order (redeliveries included).
pub struct EventRec {
    pub id: String,
    pub subject: String,
    pub version: u64,
    pub kind: String,
    pub command: String,
}

/// What the soak's publisher and consumers saw.
#[derive(Default)]
pub struct Tally {
    /// Command ids the broker confirmed at least once.
    pub sent: HashSet<String>,
    /// Publishes made again: nacked, or in flight when the connection died.
    pub republished: u64,
    /// Correlation ids of replies received.
    pub replies: HashSet<String>,
    pub events: Vec<EventRec>,
    pub event_ids: HashSet<String>,
}

pub type Shared = Arc<Mutex<Tally>>;

/// A connection attempt while the broker restarts may hang in its handshake.
const CONNECT: Duration = Duration::from_secs(10);
/// No confirm for this long with publishes in flight: the connection is dead.
const STALLED: Duration = Duration::from_secs(30);
const MAX_IN_FLIGHT: usize = 2_000;
const RECONNECT: Duration = Duration::from_millis(200);

/// How long one call on a connection may take before the connection is
/// given up: a 30-minute soak once stopped publishing after a broker
/// restart, waiting on a connection that would never answer.
const CALL: Duration = Duration::from_secs(10);

/// `call`'s result, or `None` when it took longer than [`CALL`].
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(CALL, call).await.ok()
}

async fn connect(settings: &Settings, name: &str) -> Option<Connection> {
    match tokio::time::timeout(CONNECT, amqp::connect(&settings.amqp, name)).await {
        Ok(Ok(conn)) => Some(conn),
        _ => None,
    }
}

/// A durable quorum queue, bound to `exchange` with `#` when given: it
/// survives broker restarts, so nothing addressed to it is missed.
pub async fn durable_queue(ch: &Channel, name: &str, exchange: Option<&str>) -> lapin::Result<()> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await?;
    if let Some(x) = exchange {
        ch.queue_bind(
            name.into(),
            x.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

/// Publishes `cmds` to `exchange` with `reply_to` and correlation id =
/// command id, command `i` not before `i / rate` seconds (at once without a
/// rate), with confirms; what the broker nacks, and what was in flight when
/// the connection died, is published again (the inbox makes a command sent
/// twice count once). Returns when every command was confirmed.
pub async fn publish(
    settings: &Settings,
    exchange: &str,
    cmds: &[Cmd],
    rate: Option<f64>,
    reply_to: &str,
    tally: &Shared,
) {
    let started = Instant::now();
    let due = |i: usize| match rate {
        Some(r) => started + Duration::from_secs_f64(i as f64 / r),
        None => started,
    };
    let mut next = 0;
    let mut again: VecDeque<usize> = VecDeque::new();
    while next < cmds.len() || !again.is_empty() {
        let Some(conn) = connect(settings, "soak-publisher").await else {
            tokio::time::sleep(RECONNECT).await;
            continue;
        };
        let Some(Ok(ch)) = bounded(amqp::confirm_channel(&conn)).await else {
            bounded(conn.close(200, "no channel".into())).await;
            tokio::time::sleep(RECONNECT).await;
            continue;
        };
        let mut in_flight = FuturesUnordered::new();
        let mut flying: HashSet<usize> = HashSet::new();
        let mut progress = Instant::now();
        loop {
            let candidate = again
                .front()
                .copied()
                .or((next < cmds.len()).then_some(next));
            let at = candidate.map_or(started, |i| if again.is_empty() { due(i) } else { started });
            tokio::select! {
                Some((i, confirm)) = in_flight.next(), if !in_flight.is_empty() => {
                    progress = Instant::now();
                    flying.remove(&i);
                    match confirm {
                        Ok(c) if lapin::Confirmation::is_ack(&c) => {
                            tally.lock().unwrap().sent.insert(cmds[i].id.clone());
                        }
                        // Refused (a queue without a leader, a resource alarm): again.
                        Ok(_) => again.push_back(i),
                        Err(_) => {
                            again.push_back(i);
                            break;
                        }
                    }
                }
                _ = tokio::time::sleep_until(at),
                    if candidate.is_some() && flying.len() < MAX_IN_FLIGHT => {
                    let i = candidate.expect("a command to publish");
                    let props = amqp::json_properties()
                        .with_reply_to(reply_to.into())
                        .with_correlation_id(cmds[i].id.as_str().into());
                    let published = bounded(ch.basic_publish(
                        exchange.into(),
                        cmds[i].key.as_str().into(),
                        BasicPublishOptions::default(),
                        &cmds[i].body,
                        props,
                    ))
                    .await;
                    let Some(Ok(confirm)) = published else { break };
                    if again.front() == Some(&i) {
                        again.pop_front();
                        tally.lock().unwrap().republished += 1;
                    } else {
                        next += 1;
                    }
                    if flying.is_empty() {
                        // Nothing was awaited: the wait for a confirm starts now.
                        progress = Instant::now();
                    }
                    flying.insert(i);
                    in_flight.push(async move { (i, confirm.await) });
                }
                _ = tokio::time::sleep_until(progress + STALLED), if !in_flight.is_empty() => break,
                else => break,
            }
        }
        // Whatever is still unconfirmed goes again on a new connection.
        again.extend(flying.drain());
        drop(in_flight);
        bounded(conn.close(200, "published".into())).await;
        if next < cmds.len() || !again.is_empty() {
            tokio::time::sleep(RECONNECT).await;
        }
    }
}

/// Consumes `queue` until aborted, handing each delivery to `sink` before
/// acknowledging it, reconnecting whenever the broker goes away (what was
/// unacknowledged then comes again).
pub fn consume(
    settings: Settings,
    queue: String,
    mut sink: impl FnMut(&Delivery) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Some(conn) = connect(&settings, "soak-consumer").await {
                if let Some(Ok(ch)) = bounded(conn.create_channel()).await {
                    bounded(ch.basic_qos(1_000, BasicQosOptions::default())).await;
                    if let Some(Ok(mut consumer)) = bounded(ch.basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    ))
                    .await
                    {
                        // Bounded too: a consumer whose connection died
                        // without telling it would wait for ever, and what the
                        // queue holds would count as missing.
                        while let Some(Some(Ok(d))) = bounded(consumer.next()).await {
                            sink(&d);
                            let acked = bounded(d.acker.ack(BasicAckOptions::default())).await;
                            if !matches!(acked, Some(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                bounded(conn.close(200, "reconnecting".into())).await;
            }
            tokio::time::sleep(RECONNECT).await;
        }
    })
}

/// Records replies by correlation id.
pub fn reply_sink(tally: Shared) -> impl FnMut(&Delivery) + Send + 'static {
    move |d| {
        if let Some(c) = d.properties.correlation_id() {
            tally.lock().unwrap().replies.insert(c.as_str().to_owned());
        }
    }
}

/// Records events in arrival order.
pub fn event_sink(tally: Shared) -> impl FnMut(&Delivery) + Send + 'static {
    move |d| {
        let Ok(v) = serde_json::from_slice::<Value>(&d.data) else {
            return;
        };
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let e = EventRec {
            id: s("id"),
            subject: s("subject"),
            version: v["entityversion"].as_u64().unwrap_or(0),
            kind: s("type"),
            command: s("commandid"),
        };
        let mut t = tally.lock().unwrap();
        t.event_ids.insert(e.id.clone());
        t.events.push(e);
    }
}
