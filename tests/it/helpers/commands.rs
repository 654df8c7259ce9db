//! Command bodies: envelopes with fresh ids and known `issued_at`s, and the
//! routing key each is published with.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::{unique, TestEnv};

impl TestEnv {
    /// A command envelope with a fresh command id, issued `minute` minutes after 08:00.
    pub fn command(&self, tenant: &str, kind: &str, minute: u32, payload: Value) -> Value {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        json!({
            "command_id": format!("cmd-{n}-{}", unique()),
            "type": kind,
            "tenant": tenant,
            "issued_at": issued_at(minute),
            "actor": "test",
            "payload": payload,
        })
    }
}

pub fn issued_at(minute: u32) -> String {
    format!("2026-11-22T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60)
}

pub fn routing_key_of(cmd: &Value) -> String {
    format!(
        "{}.{}",
        cmd["tenant"].as_str().unwrap_or("x"),
        cmd["type"].as_str().unwrap_or("x")
    )
}
