//! Integration tests against the real Postgres and RabbitMQ. Each test has
//! its own database and topology prefix, so they run in parallel.

mod bad_input;
mod contacts;
mod dead_letters;
mod ops;
mod helpers;
mod relay;
mod retention;
mod security;
mod semantics;
mod users;
