//! The inbox (processed commands), the outbox (events to publish) and the
//! dead-letter store.

use super::StoreError;
use crate::domain::event::OutboxEvent;
use crate::domain::outcome::Reply;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

/// Claims a command id for this transaction. `false` means it was already
/// processed (a concurrent claim waits for the other transaction first).
pub async fn claim_command(
    conn: &mut PgConnection,
    tenant: &str,
    command_id: &str,
    command_type: &str,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO processed_commands (tenant_id, command_id, command_type) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(command_id)
    .bind(command_type)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Records the outcome of a claimed command; its reply is what duplicates repeat.
pub async fn complete_command(
    conn: &mut PgConnection,
    tenant: &str,
    command_id: &str,
    reply: &Reply,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE processed_commands SET outcome = $3, reply = $4 \
         WHERE tenant_id = $1 AND command_id = $2",
    )
    .bind(tenant)
    .bind(command_id)
    .bind(reply.outcome.as_str())
    .bind(serde_json::to_value(reply).expect("reply serialises"))
    .execute(conn)
    .await?;
    Ok(())
}

/// The first reply of a processed command.
pub async fn first_reply(
    conn: &mut PgConnection,
    tenant: &str,
    command_id: &str,
) -> Result<Option<Reply>, StoreError> {
    let reply: Option<Option<Value>> = sqlx::query_scalar(
        "SELECT reply FROM processed_commands WHERE tenant_id = $1 AND command_id = $2",
    )
    .bind(tenant)
    .bind(command_id)
    .fetch_optional(conn)
    .await?;
    reply
        .flatten()
        .map(|r| {
            serde_json::from_value(r).map_err(|source| StoreError::Corrupt {
                what: "reply",
                source,
            })
        })
        .transpose()
}

/// Writes events to the outbox in one statement, in the given order.
pub async fn append_outbox(
    conn: &mut PgConnection,
    events: &[OutboxEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tenants = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut entity_ids = Vec::with_capacity(events.len());
    let mut versions = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for e in events {
        tenants.push(e.tenant.clone());
        ids.push(e.id);
        keys.push(e.routing_key.clone());
        types.push(e.event_type.type_name().to_owned());
        kinds.push(e.entity_kind.as_str().to_owned());
        entity_ids.push(e.entity_id.clone());
        versions.push(e.version as i64);
        bodies.push(e.cloud_event.clone());
    }
    // WITH ORDINALITY keeps the ids (bigserial) in the events' order.
    sqlx::query(
        "INSERT INTO outbox (tenant_id, event_id, routing_key, event_type, entity_kind, entity_id, version, body) \
         SELECT t, i, k, ty, ki, ei, v, b FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::jsonb[]) \
         WITH ORDINALITY AS u(t, i, k, ty, ki, ei, v, b, n) ORDER BY n",
    )
    .bind(tenants)
    .bind(ids)
    .bind(keys)
    .bind(types)
    .bind(kinds)
    .bind(entity_ids)
    .bind(versions)
    .bind(bodies)
    .execute(conn)
    .await?;
    Ok(())
}

/// An outbox row waiting for the relay.
#[derive(Debug, sqlx::FromRow)]
pub struct PendingEvent {
    pub tenant_id: String,
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub routing_key: String,
    pub event_type: String,
    pub body: Value,
}

pub async fn pending_events(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<PendingEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, id, event_id, routing_key, event_type, body FROM outbox \
         WHERE published_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub async fn mark_published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Everything the dead-letter store keeps about a failed message.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub properties: Value,
    pub exchange: String,
    pub routing_key: String,
    pub tenant: Option<String>,
    pub command_id: Option<String>,
    pub command_type: Option<String>,
    pub code: String,
    pub message: String,
}

impl DeadLetter {
    /// The same message (routing key and body) failing again maps to the same row.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.routing_key.as_bytes());
        h.update([0]);
        h.update(&self.body);
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }
}

/// Stores a dead letter, or counts one more failure on its existing row.
pub async fn store_dead_letter(conn: &mut PgConnection, d: &DeadLetter) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO dead_letters (fingerprint, body, properties, exchange, routing_key, tenant_id, \
         command_id, command_type, code, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (fingerprint) DO UPDATE SET last_failed_at = now(), \
         failure_count = dead_letters.failure_count + 1, code = EXCLUDED.code, \
         message = EXCLUDED.message, properties = EXCLUDED.properties \
         RETURNING id",
    )
    .bind(d.fingerprint())
    .bind(&d.body)
    .bind(&d.properties)
    .bind(&d.exchange)
    .bind(&d.routing_key)
    .bind(&d.tenant)
    .bind(&d.command_id)
    .bind(&d.command_type)
    .bind(&d.code)
    .bind(&d.message)
    .fetch_one(conn)
    .await?)
}

/// A row of the dead-letter store as the CLI and tests see it.
#[derive(Debug, sqlx::FromRow)]
pub struct DeadLetterRow {
    pub id: i64,
    pub tenant_id: Option<String>,
    pub command_id: Option<String>,
    pub command_type: Option<String>,
    pub code: String,
    pub message: String,
    pub failure_count: i32,
    pub first_failed_at: OffsetDateTime,
    pub last_failed_at: OffsetDateTime,
    pub replayed_at: Option<OffsetDateTime>,
    pub routing_key: String,
    pub body: Vec<u8>,
}

pub async fn list_dead_letters(pool: &PgPool) -> Result<Vec<DeadLetterRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, command_id, command_type, code, message, failure_count, \
         first_failed_at, last_failed_at, replayed_at, routing_key, body \
         FROM dead_letters ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}
