//! Integration tests against the real Postgres and RabbitMQ. Each test has
//! its own database and topology prefix, so they run in parallel.

mod bad_input;
mod console;
mod console_limits;
mod contacts;
mod dead_letters;
mod deep_headers;
mod deploy;
mod dlq_scale;
mod erasure;
mod guardrail;
mod hardening;
// Shared with the chaos test binary, which uses the process helpers this one does not.
#[allow(dead_code)]
mod helpers;
mod ops;
mod raw_amqp;
mod relay;
mod replies;
mod restore;
mod retention;
mod schedule;
mod schema_validators;
mod schemas;
mod security;
mod semantics;
mod tls;
mod users;
