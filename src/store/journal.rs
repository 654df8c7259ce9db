//! The inbox (processed commands), the outbox (events to publish) and the
//! dead-letter store.

use super::StoreError;
use crate::domain::event::OutboxEvent;
use crate::domain::outcome::{EntityKind, Reply};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::borrow::Cow;
use std::collections::HashMap;
use time::OffsetDateTime;

/// First replies of the given (tenant, command id) pairs that were already
/// processed: their redeliveries are duplicates.
pub async fn processed_replies(
    conn: &mut PgConnection,
    keys: &[(String, String)],
) -> Result<HashMap<(String, String), Reply>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (tenants, ids): (Vec<&str>, Vec<&str>) =
        keys.iter().map(|(t, c)| (t.as_str(), c.as_str())).unzip();
    let rows: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT p.tenant_id, p.command_id, p.reply FROM processed_commands p \
         JOIN UNNEST($1::text[], $2::text[]) AS u(t, c) ON p.tenant_id = u.t AND p.command_id = u.c",
    )
    .bind(tenants)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(t, c, reply)| {
            let reply = serde_json::from_value(reply).map_err(|source| StoreError::Corrupt {
                what: "reply",
                source,
            })?;
            Ok(((t, c), reply))
        })
        .collect()
}

/// A processed command as the inbox records it.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub tenant: String,
    pub command_id: String,
    pub command_type: &'static str,
    pub reply: Reply,
}

/// Writes a batch's events to the outbox (in order) and records its
/// processed commands (tenant, id, type, reply) in the inbox, in one
/// statement. If another transaction recorded one of the commands meanwhile
/// (the same command delivered twice at once, or a redelivery when the
/// duplicate check was skipped), the batch must be retried with the check:
/// [`StoreError::ConcurrentDuplicate`].
pub async fn write_outbox_and_inbox(
    conn: &mut PgConnection,
    events: &[OutboxEvent],
    processed: &[InboxRow],
) -> Result<(), StoreError> {
    if events.is_empty() && processed.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let (mut e_tenants, mut e_ids, mut e_keys, mut e_types) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut e_kinds, mut e_entities, mut e_versions, mut e_bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    // Events to strip once published: erased in the batch that wrote them.
    let mut e_scrub = Vec::new();
    for e in events {
        e_tenants.push(e.tenant.as_str());
        e_ids.push(e.id);
        e_keys.push(e.routing_key.as_str());
        e_types.push(e.event_type.type_name());
        e_kinds.push(e.entity_kind.as_str());
        e_entities.push(e.entity_id.as_str());
        e_versions.push(e.version as i64);
        // Text, stored as `json` as is (see migration 0010).
        e_bodies.push(e.cloud_event.to_string());
        if e.scrub {
            e_scrub.push(e.id);
        }
    }
    let p_tenants: Vec<&str> = processed.iter().map(|r| r.tenant.as_str()).collect();
    let p_ids: Vec<&str> = processed.iter().map(|r| r.command_id.as_str()).collect();
    let p_kinds: Vec<&str> = processed.iter().map(|r| r.command_type).collect();
    let p_outcomes: Vec<&str> = processed.iter().map(|r| r.reply.outcome.as_str()).collect();
    // Serialised straight into the statement, without a `Value` in between.
    let p_replies: Vec<sqlx::types::Json<&Reply>> = processed
        .iter()
        .map(|r| sqlx::types::Json(&r.reply))
        .collect();
    // WITH ORDINALITY keeps the outbox ids (bigserial) in the events' order.
    let inserted = sqlx::query(
        "WITH events AS ( \
           INSERT INTO outbox (tenant_id, event_id, routing_key, event_type, entity_kind, entity_id, version, body) \
           SELECT t, i, k, ty, ki, ei, v, b FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::bigint[], $8::text[]::json[]) \
           WITH ORDINALITY AS u(t, i, k, ty, ki, ei, v, b, n) ORDER BY n \
           RETURNING tenant_id, id, event_id), \
         unpublished AS ( \
           INSERT INTO outbox_unpublished (tenant_id, id, scrub) \
           SELECT tenant_id, id, event_id = ANY($14::uuid[]) FROM events) \
         INSERT INTO processed_commands (tenant_id, command_id, command_type, outcome, reply) \
         SELECT * FROM UNNEST($9::text[], $10::text[], $11::text[], $12::text[], $13::jsonb[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(e_tenants)
    .bind(e_ids)
    .bind(e_keys)
    .bind(e_types)
    .bind(e_kinds)
    .bind(e_entities)
    .bind(e_versions)
    .bind(e_bodies)
    .bind(p_tenants)
    .bind(p_ids)
    .bind(p_kinds)
    .bind(p_outcomes)
    .bind(p_replies)
    .bind(e_scrub)
    .execute(conn)
    .await?
    .rows_affected();
    if inserted as usize != processed.len() {
        return Err(StoreError::ConcurrentDuplicate);
    }
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
    /// The CloudEvent as the worker wrote it (stored as `json`): published
    /// as is, without parsing and serialising it again.
    pub body: String,
}

/// The relay's read: `$1` rows, leaving out the ids `$2`. The limit is
/// taken on the work list first: joined before it, the planner misjudges
/// how many rows the join keeps and sorts all of them. Public so that a
/// test can check its plan with a large backlog.
pub const PENDING_EVENTS_SQL: &str = "\
    SELECT o.tenant_id, o.id, o.event_id, o.routing_key, o.event_type, o.body::text AS body \
    FROM (SELECT tenant_id, id FROM outbox_unpublished WHERE NOT (id = ANY($2)) \
          ORDER BY id LIMIT $1) u \
    JOIN outbox o ON o.tenant_id = u.tenant_id AND o.id = u.id ORDER BY u.id";

/// Unpublished rows in id order, leaving out `exclude` (rows in flight).
pub async fn pending_events(
    conn: &mut PgConnection,
    limit: i64,
    exclude: &[i64],
) -> Result<Vec<PendingEvent>, StoreError> {
    Ok(sqlx::query_as(PENDING_EVENTS_SQL)
        .bind(limit)
        .bind(exclude)
        .fetch_all(conn)
        .await?)
}

/// What [`mark_published`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marked {
    /// This session holds the lock: the rows are marked published.
    Done,
    /// This session does not hold the lock (any more): nothing was marked.
    NotLockHolder,
}

/// The relay's mark of the ids `$1` under the advisory lock `$2`. A bigint
/// advisory key shows in pg_locks as classid (high half), objid (low half)
/// and objsubid 1. A data-modifying CTE always runs, and sees the same
/// answer as the SELECT. Public so that a test can check its plan.
pub const MARK_PUBLISHED_SQL: &str = "\
    WITH lock AS ( \
      SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
        AND pid = pg_backend_pid() AND objsubid = 1 \
        AND classid = (($2::bigint >> 32) & 4294967295)::oid \
        AND objid = ($2::bigint & 4294967295)::oid) AS held), \
    published AS ( \
      DELETE FROM outbox_unpublished \
      WHERE id = ANY($1) AND (SELECT held FROM lock) \
      RETURNING tenant_id, id, scrub), \
    stripped AS ( \
      UPDATE outbox o SET body = (o.body::jsonb - 'data')::json FROM published p \
      WHERE p.scrub AND o.tenant_id = p.tenant_id AND o.id = p.id) \
    SELECT held FROM lock";

/// Marks confirmed rows published by deleting their `outbox_unpublished`
/// entries (and strips the `data` of rows whose entity was erased
/// meanwhile), fenced by the relay's lock: the DELETE applies only while
/// this backend holds the session-level advisory lock `lock_key`, so a
/// relay that lost its lock (or whose statements a transaction pooler sends
/// to another backend) marks nothing and learns that it must stop.
pub async fn mark_published(
    conn: &mut PgConnection,
    ids: &[i64],
    lock_key: i64,
) -> Result<Marked, StoreError> {
    let held: bool = sqlx::query_scalar(MARK_PUBLISHED_SQL)
        .bind(ids)
        .bind(lock_key)
        .fetch_one(conn)
        .await?;
    Ok(if held {
        Marked::Done
    } else {
        Marked::NotLockHolder
    })
}

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
