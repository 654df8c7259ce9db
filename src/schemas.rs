//! JSON Schemas (draft 2020-12) of the published contract: every command,
//! the reply and every event. Payloads, the reply and the event data come
//! from the Rust types the worker uses (schemars), so they cannot drift;
//! `deploy/schemas/` holds the generated files (`lifecycle-worker schemas
//! --out deploy/schemas`) and a test checks they are current.
//!
//! Every document then goes through [`Portable`], so that the validators
//! consumers use accept it as is: Ajv 8 in its default strict mode refuses
//! formats it does not know (schemars' `uint64`, `int32`, `double`...) and
//! type unions other than "one type or null".

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, Transform};
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::domain::event::EventType;
use crate::domain::outcome::{EntityKind, Reply};
use crate::domain::registry::CommandType;

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Every schema by its path under `deploy/schemas/`.
pub fn all() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for t in CommandType::all() {
        out.insert(format!("commands/{}.json", t.name()), command(t));
    }
    let mut reply = SchemaGenerator::default()
        .into_root_schema_for::<Reply>()
        .to_value();
    reply["$id"] = json!("reply.json");
    out.insert("reply.json".to_owned(), reply);
    for &t in EventType::ALL {
        out.insert(format!("events/{}.json", t.type_name()), event(t));
    }
    for schema in out.values_mut() {
        let schema: &mut Schema = schema.try_into().expect("every document is an object");
        Portable.transform(schema);
    }
    out
}

/// Rewrites what strict validators refuse into standard keywords that say
/// the same: schemars' integer and number formats become `minimum` and
/// `maximum` (or nothing, for `double`, `float` and the unbounded ones), and
/// a `type` union that is more than one type or null becomes an `anyOf` of
/// single types, each with the keywords that apply to it. Other non-standard
/// formats are left for the validator tests to catch: dropping one would
/// silently loosen the contract.
#[derive(Clone, Copy, Debug)]
struct Portable;

impl Transform for Portable {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(obj) = schema.as_object_mut() {
            numeric_format_to_bounds(obj);
            split_type_union(obj);
        }
        transform_subschemas(self, schema);
    }
}

fn numeric_format_to_bounds(obj: &mut Map<String, Value>) {
    let numeric = match obj.get("type") {
        Some(Value::String(t)) => t == "integer" || t == "number",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer" || t == "number"),
        _ => false,
    };
    let Some(format) = obj
        .get("format")
        .and_then(Value::as_str)
        .filter(|_| numeric)
    else {
        return;
    };
    let bounds: (Option<Value>, Option<Value>) = match format {
        "int8" => (Some(i8::MIN.into()), Some(i8::MAX.into())),
        "int16" => (Some(i16::MIN.into()), Some(i16::MAX.into())),
        "int32" => (Some(i32::MIN.into()), Some(i32::MAX.into())),
        "int64" => (Some(i64::MIN.into()), Some(i64::MAX.into())),
        "uint8" => (Some(0.into()), Some(u8::MAX.into())),
        "uint16" => (Some(0.into()), Some(u16::MAX.into())),
        "uint32" => (Some(0.into()), Some(u32::MAX.into())),
        "uint64" => (Some(0.into()), Some(u64::MAX.into())),
        // 128-bit (and platform-sized) bounds do not fit serde_json's numbers: the sign is kept.
        "uint128" | "uint" => (Some(0.into()), None),
        "int128" | "int" | "float" | "double" => (None, None),
        _ => return,
    };
    obj.remove("format");
    // A bound already there (from `#[schemars(range)]`) is at least as tight.
    for (key, bound) in [("minimum", bounds.0), ("maximum", bounds.1)] {
        if let Some(bound) = bound {
            obj.entry(key).or_insert(bound);
        }
    }
}

/// Keywords that apply only to instances of one type (JSON Schema 2020-12
/// validation vocabulary and the applicators), by that type.
fn keywords_of(t: &str) -> &'static [&'static str] {
    match t {
        "integer" | "number" => &[
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
        ],
        "string" => &[
            "minLength",
            "maxLength",
            "pattern",
            "format",
            "contentEncoding",
            "contentMediaType",
            "contentSchema",
        ],
        "array" => &[
            "items",
            "prefixItems",
            "contains",
            "minContains",
            "maxContains",
            "minItems",
            "maxItems",
            "uniqueItems",
            "unevaluatedItems",
        ],
        "object" => &[
            "properties",
            "patternProperties",
            "additionalProperties",
            "required",
            "propertyNames",
            "minProperties",
            "maxProperties",
            "dependentRequired",
            "dependentSchemas",
            "unevaluatedProperties",
        ],
        _ => &[],
    }
}

fn split_type_union(obj: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = obj.get("type") else {
        return;
    };
    let types: Vec<String> = types
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    // Ajv's strictTypes accepts a single type or a type with null.
    let non_null = types.iter().filter(|t| *t != "null").count();
    if non_null <= 1 {
        return;
    }
    obj.remove("type");
    let mut taken = Map::new();
    for t in &types {
        for key in keywords_of(t) {
            if let Some(v) = obj.remove(*key) {
                taken.insert((*key).to_owned(), v);
            }
        }
    }
    let branches: Vec<Value> = types
        .iter()
        .map(|t| {
            let mut branch = Map::from_iter([("type".to_owned(), json!(t))]);
            for key in keywords_of(t) {
                if let Some(v) = taken.get(*key) {
                    branch.insert((*key).to_owned(), v.clone());
                }
            }
            Value::Object(branch)
        })
        .collect();
    if obj.contains_key("anyOf") {
        // Both must hold: the union joins the existing anyOf in an allOf.
        let all_of = obj.entry("allOf").or_insert_with(|| json!([]));
        if let Some(all_of) = all_of.as_array_mut() {
            all_of.push(json!({"anyOf": branches}));
        }
    } else {
        obj.insert("anyOf".into(), Value::Array(branches));
    }
}

fn with_defs(mut doc: Value, mut gen: SchemaGenerator) -> Value {
    let defs: Map<String, Value> = gen.take_definitions(true);
    if !defs.is_empty() {
        doc["$defs"] = Value::Object(defs);
    }
    doc
}

/// A command envelope (contract section 2) with its type's payload.
fn command(t: CommandType) -> Value {
    let kind = t.name();
    let mut gen = SchemaGenerator::default();
    let payload = t.payload_schema(&mut gen);
    let mut properties = json!({
        "command_id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$",
                       "description": "Idempotency key, unique per tenant."},
        "type": {"const": kind},
        "tenant": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$", "not": {"const": "default"}},
        "issued_at": {"type": "string", "format": "date-time",
                      "description": "RFC 3339 with offset: when the upstream decided it."},
        "actor": {"type": ["string", "null"], "minLength": 1, "maxLength": 128},
        "payload": payload,
    });
    if !matches!(t, CommandType::Bulk | CommandType::Cancel) {
        properties["expected_version"] = json!({"type": ["integer", "null"], "minimum": 0});
    }
    if t.may_be_scheduled() {
        properties["effective_at"] = json!({
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                {"type": "null"}
            ],
            "description": "When it takes effect: an instant, or a day (its first instant in the tenant's time_zone)."
        });
    }
    with_defs(
        json!({
            "$schema": DIALECT,
            "$id": format!("commands/{kind}.json"),
            "title": format!("{kind} command"),
            "type": "object",
            "additionalProperties": false,
            "required": ["command_id", "type", "tenant", "issued_at", "payload"],
            "properties": properties,
        }),
        gen,
    )
}

/// A CloudEvent 1.0 in structured mode (contract section 5).
fn event(t: EventType) -> Value {
    // What the worker serialises, so a field is required unless it is
    // skipped when empty: every `Option` field of an event is written, as null.
    let mut gen = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let data = t.data_schema(&mut gen).to_value();
    // A scheduling event's subject is the command's entity, or its tenant.
    let subject = match t.entity_kind() {
        EntityKind::Command => "^(contact|user|tenant)/".to_owned(),
        kind => format!("^{}/", kind.as_str()),
    };
    with_defs(
        json!({
            "$schema": DIALECT,
            "$id": format!("events/{}.json", t.type_name()),
            "title": format!("{} (CloudEvents 1.0, routing key {{tenant}}.{})", t.type_name(), t.routing_name()),
            "type": "object",
            "additionalProperties": false,
            "required": ["specversion", "id", "source", "type", "subject", "time",
                         "datacontenttype", "tenant", "commandid", "entityversion", "data"],
            "properties": {
                "specversion": {"const": "1.0"},
                "id": {"type": "string", "format": "uuid", "description": "Stable: consumers dedupe on it."},
                "source": {"type": "string", "pattern": "^/lifecycle/"},
                "type": {"const": t.type_name()},
                "subject": {"type": "string", "pattern": subject},
                "time": {"type": "string", "format": "date-time"},
                "datacontenttype": {"const": "application/json"},
                "tenant": {"type": "string"},
                "commandid": {"type": "string"},
                "entityversion": {"type": "integer", "minimum": 0},
                "data": data,
            },
        }),
        gen,
    )
}

/// The AsyncAPI 3.0 document of the contract; its messages refer to the
/// schema files beside it.
// One document, written top to bottom as AsyncAPI orders it: long, not branchy.
pub fn asyncapi() -> Value {
    let exchange = |name: &str, kind: &str| json!({"amqp": {"is": "routingKey", "exchange": {"name": name, "type": kind, "durable": true, "autoDelete": false, "vhost": "/"}, "bindingVersion": "0.3.0"}});
    let queue = |name: &str| json!({"amqp": {"is": "queue", "queue": {"name": name, "durable": true, "exclusive": false, "autoDelete": false, "vhost": "/"}, "bindingVersion": "0.3.0"}});
    let prefix =
        json!({"prefix": {"default": "lifecycle", "description": "LIFECYCLE__AMQP__PREFIX"}});
    let mut messages = Map::new();
    let mut command_refs = Map::new();
    let mut command_ops = Vec::new();
    for kind in CommandType::all().map(CommandType::name) {
        let id = kind.replace('.', "_");
        messages.insert(id.clone(), json!({
            "name": kind,
            "title": format!("{kind} command"),
            "summary": format!("Routing key {{tenant}}.{kind}. The reply goes to reply_to with correlation_id."),
            "contentType": "application/json",
            "correlationId": {"location": "$message.header#/correlation_id"},
            "payload": {"$ref": format!("./commands/{kind}.json")},
        }));
        command_refs.insert(
            id.clone(),
            json!({"$ref": format!("#/components/messages/{id}")}),
        );
        command_ops.push(json!({"$ref": format!("#/channels/commands/messages/{id}")}));
    }
    messages.insert(
        "reply".into(),
        json!({
            "name": "reply", "title": "Outcome of a command", "contentType": "application/json",
            "correlationId": {"location": "$message.header#/correlation_id"},
            "payload": {"$ref": "./reply.json"},
        }),
    );
    let mut event_refs = Map::new();
    let mut event_ops = Vec::new();
    for &t in EventType::ALL {
        let name = t.type_name();
        messages.insert(name.into(), json!({
            "name": name,
            "title": name,
            "summary": format!("Routing key {{tenant}}.{}; AMQP message_id = event id, type = {name}.", t.routing_name()),
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": format!("./events/{name}.json")},
        }));
        event_refs.insert(
            name.into(),
            json!({"$ref": format!("#/components/messages/{name}")}),
        );
        event_ops.push(json!({"$ref": format!("#/channels/events/messages/{name}")}));
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "lifecycle-worker",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Lifecycle commands for employer contacts and users, their replies and change events. Generated by `lifecycle-worker schemas`; see docs/contract.md.",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}},
        "channels": {
            "commands": {"address": "{prefix}.commands", "parameters": prefix, "messages": command_refs,
                         "description": "Topic exchange; routing key {tenant}.{type}.",
                         "bindings": exchange("{prefix}.commands", "topic")},
            "contactCommands": {"address": "{prefix}.contact.commands", "parameters": prefix,
                                "description": "Quorum queue bound *.contact.#, *.employer.# and *.command.cancel.",
                                "bindings": queue("{prefix}.contact.commands")},
            "userCommands": {"address": "{prefix}.user.commands", "parameters": prefix,
                             "description": "Quorum queue bound *.user.# and *.role.#.",
                             "bindings": queue("{prefix}.user.commands")},
            "replies": {"address": null, "messages": {"reply": {"$ref": "#/components/messages/reply"}},
                        "description": "The queue named by the command's reply_to, through the default exchange."},
            "events": {"address": "{prefix}.events", "parameters": prefix, "messages": event_refs,
                       "description": "Topic exchange; routing key {tenant}.{event routing name}.",
                       "bindings": exchange("{prefix}.events", "topic")},
            "deadLetters": {"address": "{prefix}.dead-letters", "parameters": prefix,
                            "description": "Broker-level dead letters (delivery limit exceeded), drained by the worker.",
                            "bindings": queue("{prefix}.dead-letters")},
        },
        "operations": {
            "receiveCommands": {"action": "receive", "channel": {"$ref": "#/channels/commands"}, "messages": command_ops},
            "sendReply": {"action": "send", "channel": {"$ref": "#/channels/replies"},
                          "messages": [{"$ref": "#/channels/replies/messages/reply"}]},
            "publishEvents": {"action": "send", "channel": {"$ref": "#/channels/events"}, "messages": event_ops},
        },
        "components": {"messages": messages},
    })
}

/// Writes every schema and `asyncapi.yaml` under `dir`.
pub fn write_all(dir: &std::path::Path) -> std::io::Result<usize> {
    let schemas = all();
    for (path, schema) in &schemas {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let text = serde_json::to_string_pretty(schema).expect("schemas serialise");
        std::fs::write(file, text + "\n")?;
    }
    // JSON is YAML: the document is written in its JSON form.
    let text = serde_json::to_string_pretty(&asyncapi()).expect("asyncapi serialises");
    std::fs::write(
        dir.join("asyncapi.yaml"),
        format!("# Generated by `lifecycle-worker schemas --out deploy/schemas`.\n{text}\n"),
    )?;
    Ok(schemas.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_schemas_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/schemas");
        for (path, schema) in all() {
            let text = std::fs::read_to_string(dir.join(&path)).unwrap_or_else(|_| {
                panic!("{path} missing: run `lifecycle-worker schemas --out deploy/schemas`")
            });
            let shipped: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                shipped, schema,
                "{path} is stale: run `lifecycle-worker schemas --out deploy/schemas`"
            );
        }
    }

    fn portable(schema: Value) -> Value {
        let mut schema = Schema::try_from(schema).unwrap();
        Portable.transform(&mut schema);
        schema.to_value()
    }

    #[test]
    fn integer_formats_become_bounds() {
        assert_eq!(
            portable(json!({"type": ["integer", "null"], "format": "uint64", "minimum": 0})),
            json!({"type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX})
        );
        assert_eq!(
            portable(json!({"items": {"type": "integer", "format": "int32"}})),
            json!({"items": {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}})
        );
        assert_eq!(
            portable(json!({"type": "integer", "format": "uint32", "minimum": 1})),
            json!({"type": "integer", "minimum": 1, "maximum": u32::MAX})
        );
        assert_eq!(
            portable(json!({"type": "number", "format": "double"})),
            json!({"type": "number"})
        );
        // Standard formats stay.
        let uuid = json!({"type": "string", "format": "uuid"});
        assert_eq!(portable(uuid.clone()), uuid);
    }

    #[test]
    fn type_unions_become_any_of_with_their_keywords() {
        assert_eq!(
            portable(
                json!({"description": "d", "type": ["string", "integer", "null"],
                            "minLength": 1, "minimum": 0})
            ),
            json!({"description": "d", "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "integer", "minimum": 0},
                {"type": "null"},
            ]})
        );
        // One type or null is what strict Ajv accepts, and stays.
        let nullable = json!({"type": ["string", "null"], "maxLength": 3});
        assert_eq!(portable(nullable.clone()), nullable);
        assert_eq!(
            portable(
                json!({"type": ["string", "number"], "anyOf": [{"const": 1}, {"const": "a"}]})
            ),
            json!({"anyOf": [{"const": 1}, {"const": "a"}],
                   "allOf": [{"anyOf": [{"type": "string"}, {"type": "number"}]}]})
        );
    }

    #[test]
    fn there_is_a_schema_per_command_and_event_type() {
        let all = all();
        assert_eq!(
            all.len(),
            CommandType::all().count() + EventType::ALL.len() + 1
        );
        let upsert = &all["commands/contact.upsert.json"];
        let payload = &upsert["properties"]["payload"];
        assert_eq!(payload["additionalProperties"], false);
        assert!(payload["required"]
            .as_array()
            .unwrap()
            .contains(&json!("contact_id")));
        assert!(payload["properties"]["email"].is_object());
    }
}
