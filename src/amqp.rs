//! RabbitMQ: topology names and declaration (contract section 1),
//! connections, and the properties the worker reads and writes.

use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use std::path::{Path, PathBuf};

use lapin::tcp::{AMQPUriTcpExt, RustlsConnector, RustlsConnectorConfig};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use crate::config::AmqpSettings;
use crate::domain::admission::MAX_HEADER_DEPTH;

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

    /// Command queues with their binding keys; `command.cancel` goes with
    /// the contacts (contract section 12).
    pub fn command_queues(&self) -> [(&str, &'static [&'static str]); 2] {
        [
            (
                &self.contact_queue,
                &["*.contact.#", "*.employer.#", "*.command.cancel"],
            ),
            (&self.user_queue, &["*.user.#", "*.role.#"]),
        ]
    }
}

/// Connects to the first broker node that answers, in the configured
/// order (`amqp.urls`, or `amqp.url`): every connect and reconnect fails
/// over past nodes that are down. The error is the last node's.
pub async fn connect(settings: &AmqpSettings, name: &str) -> lapin::Result<Connection> {
    let nodes = settings.nodes();
    let mut last = None;
    let tls = tls_config(settings)?;
    for (i, url) in nodes.iter().enumerate() {
        match connect_to(url, name, &tls).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                if i + 1 < nodes.len() {
                    tracing::warn!(node = i, error = %e, "broker node unreachable; trying the next");
                }
                last = Some(e);
            }
        }
    }
    Err(last.expect("at least one broker node is configured"))
}

/// Why the TLS settings of `amqps://` nodes could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("amqp.ca_file {}: {source}", path.display())]
    ReadCaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("amqp.ca_file {}: {source}", path.display())]
    ParseCaFile {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("amqp.ca_file {}: holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("loading the system's root certificates: {0}")]
    SystemRoots(std::io::Error),
    #[error("setting up TLS: {0}")]
    Client(std::io::Error),
    #[error("an amqps:// node, but no TLS settings were made for it")]
    NotPrepared,
}

impl From<TlsSetupError> for lapin::Error {
    fn from(e: TlsSetupError) -> Self {
        std::io::Error::other(e).into()
    }
}

/// How `amqps://` nodes are verified: by `amqp.ca_file`'s certificates
/// alone when it is set, by the system's roots otherwise; the server's
/// name always against the URL's host. `None` when no node is `amqps://`
/// (no roots to load). An `amqp://` URL never uses TLS, an `amqps://` URL
/// never falls back to plain text.
#[derive(Clone, Debug)]
pub struct BrokerTls(Option<RustlsConnector>);

/// Whether a broker URL is `amqps://`.
pub fn is_amqps(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "amqps")
}

/// The TLS settings of the configured nodes, made once for all of them.
pub fn tls_config(settings: &AmqpSettings) -> Result<BrokerTls, TlsSetupError> {
    if !settings.nodes().iter().any(|u| is_amqps(u.expose_secret())) {
        return Ok(BrokerTls(None));
    }
    let config = match &settings.ca_file {
        // The CA file alone: beside the system's roots, any CA those hold
        // could vouch for the broker (lapin's own TLS adds it to them).
        Some(path) => {
            RustlsConnectorConfig::default().with_parsable_certificates(ca_certificates(path)?)
        }
        None => {
            RustlsConnectorConfig::new_with_native_certs().map_err(TlsSetupError::SystemRoots)?
        }
    };
    let connector = config
        .connector_with_no_client_auth()
        .map_err(TlsSetupError::Client)?;
    Ok(BrokerTls(Some(connector)))
}

/// The certificates of a PEM file.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|source| TlsSetupError::ReadCaFile {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::ParseCaFile {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// How long one node may take to accept a TCP connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Connects to one broker node.
pub async fn connect_to(
    url: &SecretString,
    name: &str,
    tls: &BrokerTls,
) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("lifecycle-worker {name}")));
    let uri: AMQPUri = url.expose_secret().parse().map_err(std::io::Error::other)?;
    let secure = uri.scheme == AMQPScheme::AMQPS;
    let tls = tls.0.clone();
    // lapin's transport, but TLS with our connector: TCP to the node, then
    // for amqps:// the handshake verifying its name.
    let transport = async move |uri: AMQPUri, runtime| {
        let plain = AMQPUri {
            scheme: AMQPScheme::AMQP,
            ..uri.clone()
        };
        // A node whose host is down answers nothing: without a bound the
        // kernel's SYN retries hold this node for about two minutes before
        // the next one is tried.
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, plain.connect_async(&runtime))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no TCP connection within {}s", CONNECT_TIMEOUT.as_secs()),
                )
            })??;
        match (&uri.scheme, &tls) {
            (AMQPScheme::AMQP, _) => Ok(tcp),
            (AMQPScheme::AMQPS, Some(tls)) => Ok(tcp.into_rustls(tls, &uri.authority.host).await?),
            (AMQPScheme::AMQPS, None) => Err(TlsSetupError::NotPrepared.into()),
        }
    };
    Connection::connector(uri, lapin::runtime::default_runtime()?, transport, props)
        .await
        .map_err(|e| match secure {
            true => explain_tls(e),
            false => e,
        })
}

/// A failed TLS connection says what it means for the operator: rustls's
/// own words are exact but terse. Never quotes the URL.
fn explain_tls(e: lapin::Error) -> lapin::Error {
    let text = e.to_string();
    let hint = if text.contains("InvalidContentType") || text.contains("corrupt message") {
        "the port did not answer in TLS: is it a plain AMQP port?"
    } else if text.contains("UnknownIssuer") {
        "the broker's certificate is not signed by a trusted CA: set amqp.ca_file to the CA that signed it"
    } else if text.contains("not valid for name") {
        "the broker's certificate does not name the URL's host: connect by a name it carries"
    } else {
        return e;
    };
    std::io::Error::other(format!("TLS connection failed ({text}): {hint}")).into()
}

/// A channel in confirm mode: every publish is acknowledged by the broker.
pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// The topology of contract section 1 as data: what [`declare_topology`]
/// declares and what [`definitions`] exports, from one source.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// (name, kind: "topic" | "fanout")
    pub exchanges: Vec<(String, &'static str)>,
    /// (name, arguments)
    pub queues: Vec<(String, Vec<(&'static str, Value)>)>,
    /// (exchange, queue, routing key)
    pub bindings: Vec<(String, String, &'static str)>,
}

pub fn topology(names: &Names, delivery_limit: u32) -> Topology {
    // Replicated and durable, with a delivery counter (needed for the limit).
    let quorum = || vec![("x-queue-type", json!("quorum"))];
    let dead_lettered = || {
        let mut args = quorum();
        args.extend([
            // A message that keeps failing is parked on {p}.dead, never looped forever.
            ("x-delivery-limit", json!(delivery_limit)),
            ("x-dead-letter-exchange", json!(names.dead)),
            // The broker keeps a dead letter until {p}.dead-letters confirms it.
            ("x-dead-letter-strategy", json!("at-least-once")),
            // Required by at-least-once: refuse publishes rather than drop messages.
            ("x-overflow", json!("reject-publish")),
        ]);
        args
    };
    let mut bindings = Vec::new();
    for (queue, keys) in names.command_queues() {
        for &key in keys {
            bindings.push((names.commands.clone(), queue.to_owned(), key));
        }
    }
    bindings.push((names.dead.clone(), names.dead_letters.clone(), ""));
    Topology {
        exchanges: vec![
            (names.commands.clone(), "topic"),
            (names.events.clone(), "topic"),
            (names.dead.clone(), "fanout"),
        ],
        queues: vec![
            (names.contact_queue.clone(), dead_lettered()),
            (names.user_queue.clone(), dead_lettered()),
            (names.dead_letters.clone(), quorum()),
        ],
        bindings,
    }
}

/// The topology as a RabbitMQ definitions document (`deploy/` ships the one
/// for the default prefix).
pub fn definitions(names: &Names, delivery_limit: u32) -> Value {
    let t = topology(names, delivery_limit);
    json!({
        "exchanges": t.exchanges.iter().map(|(name, kind)| json!({
            "name": name, "vhost": "/", "type": kind, "durable": true,
            "auto_delete": false, "internal": false, "arguments": {},
        })).collect::<Vec<_>>(),
        "queues": t.queues.iter().map(|(name, args)| json!({
            "name": name, "vhost": "/", "durable": true, "auto_delete": false,
            "arguments": args.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "bindings": t.bindings.iter().map(|(source, queue, key)| json!({
            "source": source, "vhost": "/", "destination": queue,
            "destination_type": "queue", "routing_key": key, "arguments": {},
        })).collect::<Vec<_>>(),
    })
}

fn field_table(args: &[(&'static str, Value)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in args {
        let value = match v {
            Value::Number(n) => AMQPValue::LongInt(
                n.as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .unwrap_or(i32::MAX),
            ),
            other => AMQPValue::LongString(other.as_str().unwrap_or_default().into()),
        };
        t.insert((*k).into(), value);
    }
    t
}

/// Declares the whole topology; idempotent.
pub async fn declare_topology(
    ch: &Channel,
    names: &Names,
    delivery_limit: u32,
) -> lapin::Result<()> {
    let t = topology(names, delivery_limit);
    for (name, kind) in &t.exchanges {
        let kind = match *kind {
            "fanout" => ExchangeKind::Fanout,
            _ => ExchangeKind::Topic,
        };
        ch.exchange_declare(
            name.as_str().into(),
            kind,
            // Durable: survives broker restarts, like the queues bound to it.
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    }
    for (name, args) in &t.queues {
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            field_table(args),
        )
        .await?;
    }
    for (exchange, queue, key) in &t.bindings {
        ch.queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            (*key).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

pub fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // Persistent: survives a broker restart.
        .with_delivery_mode(2)
}

/// Levels of tables and arrays in a table, itself included. Bounded by the
/// AMQP parser's own limit, so the walk is too.
pub fn table_depth(t: &FieldTable) -> usize {
    1 + t.inner().values().map(value_depth).max().unwrap_or(0)
}

fn value_depth(v: &AMQPValue) -> usize {
    match v {
        AMQPValue::FieldTable(t) => table_depth(t),
        AMQPValue::FieldArray(a) => 1 + a.as_slice().iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What the dead-letter store keeps in place of a table or array nested
/// past [`MAX_HEADER_DEPTH`] (the message was refused for it).
pub const CUT_HEADER: &str = "(nested too deeply: not kept)";

/// `v`, found at nesting level `level`, as JSON; tables and arrays past
/// [`MAX_HEADER_DEPTH`] become [`CUT_HEADER`].
fn amqp_value_to_json(v: &AMQPValue, level: usize) -> Value {
    match v {
        AMQPValue::FieldTable(_) | AMQPValue::FieldArray(_) if level >= MAX_HEADER_DEPTH => {
            json!(CUT_HEADER)
        }
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
        AMQPValue::FieldTable(t) => table_to_json(t, level + 1),
        AMQPValue::FieldArray(a) => Value::Array(
            a.as_slice()
                .iter()
                .map(|v| amqp_value_to_json(v, level + 1))
                .collect(),
        ),
        AMQPValue::ByteArray(b) => json!(b.as_slice()),
        AMQPValue::DecimalValue(d) => json!(format!("{d:?}")),
        AMQPValue::Void => Value::Null,
    }
}

/// A headers table as JSON, nesting cut at [`MAX_HEADER_DEPTH`].
pub fn field_table_to_json(t: &FieldTable) -> Value {
    table_to_json(t, 1)
}

fn table_to_json(t: &FieldTable, level: usize) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), amqp_value_to_json(v, level)))
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

pub fn json_to_amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(json_to_amqp).collect::<Vec<_>>(),
        )),
        Value::Object(m) => {
            let mut t = FieldTable::default();
            for (k, v) in m {
                t.insert(k.as_str().into(), json_to_amqp(v));
            }
            AMQPValue::FieldTable(t)
        }
    }
}

/// Properties stored as JSON by [`properties_to_json`], rebuilt: what a
/// replay or a released held command is sent or judged with.
pub fn properties_from_json(stored: &Value) -> BasicProperties {
    let s = |k: &str| stored.get(k).and_then(Value::as_str);
    let mut p = BasicProperties::default();
    if let Some(v) = s("content_type") {
        p = p.with_content_type(v.into());
    }
    if let Some(v) = s("content_encoding") {
        p = p.with_content_encoding(v.into());
    }
    if let Some(v) = stored.get("delivery_mode").and_then(Value::as_u64) {
        p = p.with_delivery_mode(u8::try_from(v).unwrap_or(2));
    }
    if let Some(v) = stored.get("priority").and_then(Value::as_u64) {
        p = p.with_priority(u8::try_from(v).unwrap_or(0));
    }
    if let Some(v) = s("correlation_id") {
        p = p.with_correlation_id(v.into());
    }
    if let Some(v) = s("reply_to") {
        p = p.with_reply_to(v.into());
    }
    if let Some(v) = s("message_id") {
        p = p.with_message_id(v.into());
    }
    if let Some(v) = stored.get("timestamp").and_then(Value::as_u64) {
        p = p.with_timestamp(v);
    }
    if let Some(v) = s("type") {
        p = p.with_type(v.into());
    }
    if let Some(v) = s("app_id") {
        p = p.with_app_id(v.into());
    }
    if let Some(v) = s("user_id") {
        p = p.with_user_id(v.into());
    }
    if let Some(AMQPValue::FieldTable(h)) = stored.get("headers").map(json_to_amqp) {
        p = p.with_headers(h);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A headers table whose entry "a" nests `levels` tables.
    fn nested(levels: usize) -> FieldTable {
        let mut t = FieldTable::default();
        for _ in 0..levels {
            let mut outer = FieldTable::default();
            outer.insert("a".into(), AMQPValue::FieldTable(t));
            t = outer;
        }
        t
    }

    #[test]
    fn header_depth_counts_tables_and_arrays_and_storage_cuts_past_the_limit() {
        assert_eq!(table_depth(&FieldTable::default()), 1);
        assert_eq!(table_depth(&nested(3)), 4);
        let mut t = FieldTable::default();
        t.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(nested(1))].into()),
        );
        assert_eq!(table_depth(&t), 4);

        let kept = field_table_to_json(&nested(MAX_HEADER_DEPTH - 1));
        assert!(!kept.to_string().contains(CUT_HEADER));
        let cut = field_table_to_json(&nested(MAX_HEADER_DEPTH));
        let mut v = &cut;
        for _ in 1..MAX_HEADER_DEPTH {
            v = &v["a"];
        }
        assert_eq!(v["a"], CUT_HEADER, "{cut}");
    }

    #[test]
    fn shipped_definitions_equal_what_the_worker_declares() {
        let shipped: Value =
            serde_json::from_str(include_str!("../deploy/rabbitmq-definitions.json")).unwrap();
        assert_eq!(shipped, definitions(&Names::new("lifecycle"), 10));
    }

    #[test]
    fn command_queues_are_quorum_with_a_delivery_limit_and_dead_lettering() {
        let t = topology(&Names::new("p"), 7);
        let (name, args) = &t.queues[0];
        assert_eq!(name, "p.contact.commands");
        let args: Map<String, Value> = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        assert_eq!(args["x-queue-type"], "quorum");
        assert_eq!(args["x-delivery-limit"], 7);
        assert_eq!(args["x-dead-letter-exchange"], "p.dead");
        assert_eq!(args["x-dead-letter-strategy"], "at-least-once");
        assert_eq!(args["x-overflow"], "reject-publish");
        assert!(t
            .bindings
            .contains(&("p.commands".into(), "p.user.commands".into(), "*.role.#")));
    }
}
