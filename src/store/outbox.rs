//! The outbox: events waiting for the relay, written with the batch's inbox
//! rows in one statement, and marked published once confirmed.

use super::inbox::InboxRow;
use super::StoreError;
use crate::domain::event::OutboxEvent;
use crate::domain::outcome::Reply;
use sqlx::PgConnection;

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
