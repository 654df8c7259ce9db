//! The dead-letter store: every refused message, with its original bytes.

use super::StoreError;
use crate::domain::outcome::EntityKind;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::borrow::Cow;
use time::OffsetDateTime;

/// Everything the dead-letter store keeps about a failed message.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// At most `limits.dead_letter_body_bytes` of the body.
    pub body: Vec<u8>,
    /// The full body's length and lower-case hex SHA-256.
    pub body_len: i64,
    pub body_sha256: String,
    pub properties: Value,
    pub exchange: String,
    pub routing_key: String,
    /// The producer the message was authorised as (for a replay, the
    /// original producer): a replay of the row is authorised as it.
    pub user_id: Option<String>,
    pub tenant: Option<String>,
    pub command_id: Option<String>,
    pub command_type: Option<String>,
    /// The contact or user the message names, so that erasing it removes
    /// the row: (`contact` or `user`, id).
    pub subject: Option<(EntityKind, String)>,
    pub code: String,
    pub message: String,
    /// The delivery's trusted `x-replayed` header (0 for an original message).
    pub replay: i32,
}

impl DeadLetter {
    /// The same message (routing key and body) failing again maps to the same row.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.routing_key, &self.body_sha256)
    }
}

/// What makes the same message failing again update its row: routing key
/// and body.
pub fn fingerprint(routing_key: &str, body_sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(routing_key.as_bytes());
    h.update([0]);
    h.update(body_sha256.as_bytes());
    hex::encode(h.finalize())
}

/// Postgres text and jsonb refuse U+0000; a dead letter is stored whatever
/// it holds, so NUL becomes U+FFFD (as invalid UTF-8 already does).
pub(crate) fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

pub(crate) fn pg_json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(pg_text(s).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(pg_json).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (pg_text(k).into_owned(), pg_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Stores a dead letter, or counts one more failure on its existing row.
/// Nothing in the message can make this fail (see [`pg_text`]).
pub async fn store_dead_letter(conn: &mut PgConnection, d: &DeadLetter) -> Result<i64, StoreError> {
    let opt = |s: &Option<String>| s.as_deref().map(|s| pg_text(s).into_owned());
    let template = crate::domain::failure::template(&d.message);
    let group = crate::domain::failure::group_id(&d.code, d.command_type.as_deref(), &template);
    // Failing again ends a replay's claim; the replay's history row gets
    // the result.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dead_letters (fingerprint, body, body_len, body_sha256, properties, exchange, \
         routing_key, user_id, tenant_id, command_id, command_type, code, message, last_failure_replay, \
         entity_kind, entity_id, template, group_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         ON CONFLICT (fingerprint) DO UPDATE SET last_failed_at = now(), \
         failure_count = dead_letters.failure_count + 1, code = EXCLUDED.code, \
         message = EXCLUDED.message, properties = EXCLUDED.properties, \
         user_id = COALESCE(EXCLUDED.user_id, dead_letters.user_id), \
         tenant_id = COALESCE(EXCLUDED.tenant_id, dead_letters.tenant_id), \
         command_id = COALESCE(EXCLUDED.command_id, dead_letters.command_id), \
         command_type = COALESCE(EXCLUDED.command_type, dead_letters.command_type), \
         entity_kind = COALESCE(EXCLUDED.entity_kind, dead_letters.entity_kind), \
         entity_id = COALESCE(EXCLUDED.entity_id, dead_letters.entity_id), \
         template = EXCLUDED.template, group_id = EXCLUDED.group_id, \
         claimed_at = NULL, claim_published = false, resolved_at = NULL, \
         last_failure_replay = GREATEST(dead_letters.last_failure_replay, EXCLUDED.last_failure_replay) \
         RETURNING id",
    )
    .bind(d.fingerprint())
    .bind(&d.body)
    .bind(d.body_len)
    .bind(&d.body_sha256)
    .bind(pg_json(&d.properties))
    .bind(pg_text(&d.exchange))
    .bind(pg_text(&d.routing_key))
    .bind(opt(&d.user_id))
    .bind(opt(&d.tenant))
    .bind(opt(&d.command_id))
    .bind(opt(&d.command_type))
    .bind(pg_text(&d.code))
    .bind(pg_text(&d.message))
    .bind(d.replay)
    .bind(d.subject.as_ref().map(|(kind, _)| kind.as_str()))
    .bind(d.subject.as_ref().map(|(_, id)| pg_text(id).into_owned()))
    .bind(pg_text(&template))
    .bind(&group)
    .fetch_one(&mut *conn)
    .await?;
    if d.replay > 0 {
        sqlx::query(
            "UPDATE dead_letter_history SET result = $2 \
             WHERE dead_letter_id = $1 AND action = 'replay' AND result IS NULL",
        )
        .bind(id)
        .bind(pg_text(&format!("failed again: {}: {}", d.code, d.message)))
        .execute(conn)
        .await?;
    }
    Ok(id)
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
    /// The stored part of the body; `body_len` says how long it was.
    pub body: Vec<u8>,
    pub body_len: i64,
    pub body_sha256: String,
    /// The producer a replay is authorised as.
    pub user_id: Option<String>,
    /// The failure cause (`dlq groups`).
    pub group_id: Option<String>,
    /// When a replay of it was applied.
    pub resolved_at: Option<OffsetDateTime>,
}

impl DeadLetterRow {
    /// Only part of the body was kept: it cannot be replayed.
    pub fn truncated(&self) -> bool {
        self.body_len > self.body.len() as i64
    }
}

const DEAD_LETTER_COLUMNS: &str = "id, tenant_id, command_id, command_type, code, message, \
    failure_count, first_failed_at, last_failed_at, replayed_at, replay_count, \
    last_failure_replay >= replay_count AND resolved_at IS NULL AS pending, exchange, \
    routing_key, properties, body, body_len, body_sha256, user_id, group_id, resolved_at";

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
    /// Only rows not replayed since their last failure (nor resolved).
    pub pending_only: bool,
    /// One failure group.
    pub group: Option<String>,
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
         AND (NOT $6 OR (last_failure_replay >= replay_count AND resolved_at IS NULL)) \
         AND ($7::text IS NULL OR group_id = $7) \
         ORDER BY id"
    ))
    .bind(&f.ids)
    .bind(&f.tenant)
    .bind(&f.code)
    .bind(f.since)
    .bind(f.before)
    .bind(f.pending_only)
    .bind(&f.group)
    .fetch_all(pool)
    .await?)
}

/// A page of a failure group's unresolved rows, in id order after
/// `after_id` (the console's group page; keyset, so any page is as fast as
/// the first).
pub async fn group_page(
    pool: &PgPool,
    group: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<DeadLetterRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters \
         WHERE group_id = $1 AND resolved_at IS NULL AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(group)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn list_dead_letters(pool: &PgPool) -> Result<Vec<DeadLetterRow>, StoreError> {
    find_dead_letters(pool, &DeadLetterFilter::default()).await
}

pub async fn purge_dead_letters(pool: &PgPool, ids: &[i64]) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM dead_letters WHERE id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?
        .rows_affected())
}
