//! lifecycle-worker: applies employer-contact and employer-user lifecycle
//! commands from RabbitMQ to Postgres, exactly once in effect, and publishes
//! change events through a transactional outbox.
//!
//! Layout (dependencies point inward, towards `domain`):
//! - [`domain`]: pure decoding and decisions by entity (contact, user,
//!   directory), command and event types declared once: no I/O, unit-tested.
//! - [`store`]: Postgres: pool, migrations, entities, inbox, outbox, dead letters.
//! - [`intake`]: a delivery as kept: body (cut when oversize), sender, dead letter.
//! - [`apply`]: one command inside a transaction: claim, load, decide, write.
//! - [`worker`]: deliveries -> batch transaction -> replies -> acks.
//! - [`replies`]: replies to `reply_to` after the commit; refused ones retried, then counted.
//! - [`relay`]: outbox -> `{p}.events`, one publisher at a time.
//! - [`guard`]: releasing and discarding what the guardrail holds.
//! - [`replay`]: replaying and editing dead letters.
//! - [`console`]: the operators' web console.
//! - [`body`]: a message body for a human to read (CLI and console).
//! - [`retention`]: purges old inbox and published outbox rows.
//! - [`schemas`]: JSON Schemas of the published contract, from the Rust types.
//! - [`amqp`]: topology, connections, properties.
//! - [`app`]: the `run` process (tasks, HTTP, shutdown).
//! - [`cli`], [`config`], [`telemetry`], [`monitoring`]: the edges.
pub mod amqp;
pub mod app;
pub mod apply;
pub mod body;
pub mod cli;
pub mod config;
pub mod console;
pub mod domain;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod guard;
pub mod hash_key;
pub mod intake;
pub mod monitoring;
pub mod relay;
pub mod replay;
pub mod replies;
pub mod retention;
pub mod schedule;
pub mod schemas;
pub mod store;
pub mod telemetry;
pub mod worker;
