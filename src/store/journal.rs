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
    /// The delivery's `x-replayed` header (0 for an original message).
    pub replay: i32,
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
         command_id, command_type, code, message, last_failure_replay) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (fingerprint) DO UPDATE SET last_failed_at = now(), \
         failure_count = dead_letters.failure_count + 1, code = EXCLUDED.code, \
         message = EXCLUDED.message, properties = EXCLUDED.properties, \
         tenant_id = COALESCE(EXCLUDED.tenant_id, dead_letters.tenant_id), \
         command_id = COALESCE(EXCLUDED.command_id, dead_letters.command_id), \
         command_type = COALESCE(EXCLUDED.command_type, dead_letters.command_type), \
         last_failure_replay = GREATEST(dead_letters.last_failure_replay, EXCLUDED.last_failure_replay) \
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
    .bind(d.replay)
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
    pub replay_count: i32,
    /// Not replayed since it last failed: needs attention.
    pub pending: bool,
    pub exchange: String,
    pub routing_key: String,
    pub properties: Value,
    pub body: Vec<u8>,
}

const DEAD_LETTER_COLUMNS: &str = "id, tenant_id, command_id, command_type, code, message, \
    failure_count, first_failed_at, last_failed_at, replayed_at, replay_count, \
    last_failure_replay >= replay_count AS pending, exchange, \
    routing_key, properties, body";

/// Which dead letters an operator means. Empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct DeadLetterFilter {
    pub ids: Vec<i64>,
    pub tenant: Option<String>,
    pub code: Option<String>,
    /// Last failed at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Last failed before this time.
    pub before: Option<OffsetDateTime>,
    /// Only rows not replayed since their last failure.
    pub pending_only: bool,
}

pub async fn find_dead_letters(
    pool: &PgPool,
    f: &DeadLetterFilter,
) -> Result<Vec<DeadLetterRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters \
         WHERE (cardinality($1::bigint[]) = 0 OR id = ANY($1)) \
         AND ($2::text IS NULL OR tenant_id = $2) \
         AND ($3::text IS NULL OR code = $3) \
         AND ($4::timestamptz IS NULL OR last_failed_at >= $4) \
         AND ($5::timestamptz IS NULL OR last_failed_at < $5) \
         AND (NOT $6 OR last_failure_replay >= replay_count) \
         ORDER BY id"
    ))
    .bind(&f.ids)
    .bind(&f.tenant)
    .bind(&f.code)
    .bind(f.since)
    .bind(f.before)
    .bind(f.pending_only)
    .fetch_all(pool)
    .await?)
}

pub async fn list_dead_letters(pool: &PgPool) -> Result<Vec<DeadLetterRow>, StoreError> {
    find_dead_letters(pool, &DeadLetterFilter::default()).await
}

/// Records a replay; returns the new replay count.
pub async fn mark_replayed(pool: &PgPool, id: i64) -> Result<i32, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE dead_letters SET replayed_at = now(), replay_count = replay_count + 1 \
         WHERE id = $1 RETURNING replay_count",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}

pub async fn purge_dead_letters(pool: &PgPool, ids: &[i64]) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM dead_letters WHERE id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?
        .rows_affected())
}
