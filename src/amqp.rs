//! RabbitMQ: topology names and declaration (contract section 1),
//! connections, and the properties the worker reads and writes.

use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};

use crate::config::AmqpSettings;

/// Header `dlq replay` adds: how often the message was replayed.
pub const REPLAYED_HEADER: &str = "x-replayed";

/// The `x-replayed` header of a delivery's properties (as JSON); 0 for an
/// original message.
pub fn replay_number(properties: &Value) -> i32 {
    properties["headers"][REPLAYED_HEADER]
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0)
}

/// Every exchange and queue name, derived from the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub commands: String,
    pub contact_queue: String,
    pub user_queue: String,
    pub events: String,
    pub dead: String,
    pub dead_letters: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            commands: format!("{prefix}.commands"),
            contact_queue: format!("{prefix}.contact.commands"),
            user_queue: format!("{prefix}.user.commands"),
            events: format!("{prefix}.events"),
            dead: format!("{prefix}.dead"),
            dead_letters: format!("{prefix}.dead-letters"),
        }
    }

    /// Command queues with their binding keys.
    pub fn command_queues(&self) -> [(&str, [&'static str; 2]); 2] {
        [
            (&self.contact_queue, ["*.contact.#", "*.employer.#"]),
            (&self.user_queue, ["*.user.#", "*.role.#"]),
        ]
    }
}

pub async fn connect(settings: &AmqpSettings, name: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("lifecycle-worker {name}")));
    Connection::connect(settings.url.expose_secret(), props).await
}

/// A channel in confirm mode: every publish is acknowledged by the broker.
pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        // Survives broker restarts, like the queues bound to it.
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn quorum_args(names: &Names, delivery_limit: u32, dead_lettered: bool) -> FieldTable {
    let mut args = FieldTable::default();
    // Replicated, durable, with a delivery counter (needed for the limit).
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    if dead_lettered {
        // A message that keeps failing is parked on {p}.dead, never looped forever.
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(i32::try_from(delivery_limit).unwrap_or(i32::MAX)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(names.dead.as_str().into()),
        );
        // The broker keeps a dead letter until {p}.dead-letters confirms it.
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        // Required by at-least-once: refuse publishes rather than drop messages.
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    args
}

/// Declares the whole topology; idempotent.
pub async fn declare_topology(
    ch: &Channel,
    names: &Names,
    delivery_limit: u32,
) -> lapin::Result<()> {
    ch.exchange_declare(
        names.commands.as_str().into(),
        ExchangeKind::Topic,
        durable_exchange(),
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        names.events.as_str().into(),
        ExchangeKind::Topic,
        durable_exchange(),
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        names.dead.as_str().into(),
        ExchangeKind::Fanout,
        durable_exchange(),
        FieldTable::default(),
    )
    .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for (queue, keys) in names.command_queues() {
        ch.queue_declare(
            queue.into(),
            durable,
            quorum_args(names, delivery_limit, true),
        )
        .await?;
        for key in keys {
            ch.queue_bind(
                queue.into(),
                names.commands.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
    }
    ch.queue_declare(
        names.dead_letters.as_str().into(),
        durable,
        quorum_args(names, delivery_limit, false),
    )
    .await?;
    ch.queue_bind(
        names.dead_letters.as_str().into(),
        names.dead.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

pub fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // Persistent: survives a broker restart.
        .with_delivery_mode(2)
}

fn amqp_value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(i) => json!(i),
        AMQPValue::ShortShortUInt(i) => json!(i),
        AMQPValue::ShortInt(i) => json!(i),
        AMQPValue::ShortUInt(i) => json!(i),
        AMQPValue::LongInt(i) => json!(i),
        AMQPValue::LongUInt(i) => json!(i),
        AMQPValue::LongLongInt(i) => json!(i),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => field_table_to_json(t),
        AMQPValue::FieldArray(a) => {
            Value::Array(a.as_slice().iter().map(amqp_value_to_json).collect())
        }
        AMQPValue::ByteArray(b) => json!(b.as_slice()),
        AMQPValue::DecimalValue(d) => json!(format!("{d:?}")),
        AMQPValue::Void => Value::Null,
    }
}

pub fn field_table_to_json(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), amqp_value_to_json(v)))
            .collect(),
    )
}

/// The AMQP properties of a delivery as JSON, for the dead-letter store
/// (and for replay, which republishes them).
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_owned(), v);
        }
    };
    put(
        "content_type",
        json!(p.content_type().as_ref().map(|s| s.as_str())),
    );
    put(
        "content_encoding",
        json!(p.content_encoding().as_ref().map(|s| s.as_str())),
    );
    put("delivery_mode", json!(p.delivery_mode()));
    put("priority", json!(p.priority()));
    put(
        "correlation_id",
        json!(p.correlation_id().as_ref().map(|s| s.as_str())),
    );
    put("reply_to", json!(p.reply_to().as_ref().map(|s| s.as_str())));
    put(
        "expiration",
        json!(p.expiration().as_ref().map(|s| s.as_str())),
    );
    put(
        "message_id",
        json!(p.message_id().as_ref().map(|s| s.as_str())),
    );
    put("timestamp", json!(p.timestamp()));
    put("type", json!(p.kind().as_ref().map(|s| s.as_str())));
    put("user_id", json!(p.user_id().as_ref().map(|s| s.as_str())));
    put("app_id", json!(p.app_id().as_ref().map(|s| s.as_str())));
    put(
        "headers",
        p.headers()
            .as_ref()
            .map(field_table_to_json)
            .unwrap_or(Value::Null),
    );
    Value::Object(m)
}
