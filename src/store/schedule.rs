//! Scheduled commands (contract section 12): stored whole when they
//! arrive, claimed when due by one process (`FOR UPDATE SKIP LOCKED`),
//! and deleted in the transaction that applies or cancels them.

use super::StoreError;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Scheduled {
    pub tenant_id: String,
    pub command_id: String,
    pub command_type: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub user_id: Option<String>,
    pub effective_at: OffsetDateTime,
    pub body: Vec<u8>,
    pub properties: Value,
    pub exchange: String,
    pub routing_key: String,
}

const COLUMNS: &str = "tenant_id, command_id, command_type, entity_kind, entity_id, user_id, \
    effective_at, body, properties, exchange, routing_key";

/// Stores a command until it is due. A row already there is a duplicate
/// that the batch did not look up: [`StoreError::ConcurrentDuplicate`]
/// makes the batch run again, checking the inbox first.
pub async fn schedule(conn: &mut PgConnection, s: &Scheduled) -> Result<(), StoreError> {
    let inserted = sqlx::query(&format!(
        "INSERT INTO scheduled_commands ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(&s.tenant_id)
    .bind(&s.command_id)
    .bind(&s.command_type)
    .bind(&s.entity_kind)
    .bind(&s.entity_id)
    .bind(&s.user_id)
    .bind(s.effective_at)
    .bind(&s.body)
    .bind(super::dead_letters::pg_json(&s.properties))
    .bind(&s.exchange)
    .bind(&s.routing_key)
    .execute(conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::ConcurrentDuplicate);
    }
    Ok(())
}

/// Claims up to `limit` commands due at `now` (the worker's clock) that no
/// other transaction holds, oldest first, and takes them out of the
/// schedule and their `scheduled` outcome out of the inbox: the caller
/// applies them in the same transaction, or nothing happened.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Scheduled>, StoreError> {
    let due: Vec<Scheduled> = sqlx::query_as(&format!(
        "DELETE FROM scheduled_commands WHERE (tenant_id, command_id) IN ( \
           SELECT tenant_id, command_id FROM scheduled_commands WHERE effective_at <= $1 \
           ORDER BY effective_at, scheduled_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut due = due;
    due.sort_by(|a, b| (a.effective_at, &a.command_id).cmp(&(b.effective_at, &b.command_id)));
    let (tenants, ids): (Vec<&str>, Vec<&str>) = due
        .iter()
        .map(|s| (s.tenant_id.as_str(), s.command_id.as_str()))
        .unzip();
    sqlx::query(
        "DELETE FROM processed_commands p USING unnest($1::text[], $2::text[]) AS u(t, c) \
         WHERE p.tenant_id = u.t AND p.command_id = u.c AND p.outcome = 'scheduled'",
    )
    .bind(tenants)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(due)
}

/// The earliest pending `effective_at`, for the schedulers' sleep.
pub async fn next_due(pool: &PgPool) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT min(effective_at) FROM scheduled_commands")
            .fetch_one(pool)
            .await?,
    )
}

/// Takes a pending command out of the schedule for `command.cancel`
/// (waiting for a scheduler that is applying it: then it is gone).
pub async fn take(
    conn: &mut PgConnection,
    tenant: &str,
    command_id: &str,
) -> Result<Option<Scheduled>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "DELETE FROM scheduled_commands WHERE tenant_id = $1 AND command_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(command_id)
    .fetch_optional(conn)
    .await?)
}

/// A command's recorded outcome, if it was processed (or scheduled).
pub async fn recorded_outcome(
    conn: &mut PgConnection,
    tenant: &str,
    command_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT outcome FROM processed_commands WHERE tenant_id = $1 AND command_id = $2",
    )
    .bind(tenant)
    .bind(command_id)
    .fetch_optional(conn)
    .await?)
}

/// Records `cancelled` as a scheduled command's outcome: its duplicates say so.
pub async fn mark_cancelled(
    conn: &mut PgConnection,
    tenant: &str,
    command_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE processed_commands SET outcome = 'cancelled', \
         reply = jsonb_set(reply, '{outcome}', '\"cancelled\"') - 'scheduled_for' \
         WHERE tenant_id = $1 AND command_id = $2",
    )
    .bind(tenant)
    .bind(command_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Pending commands of one entity, by due time (for `contact show`).
pub async fn of_entity(
    conn: &mut PgConnection,
    tenant: &str,
    kind: &str,
    id: &str,
) -> Result<Vec<Scheduled>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scheduled_commands \
         WHERE tenant_id = $1 AND entity_kind = $2 AND entity_id = $3 ORDER BY effective_at, command_id"
    ))
    .bind(tenant)
    .bind(kind)
    .bind(id)
    .fetch_all(conn)
    .await?)
}

/// Every pending command, or a tenant's, by due time (`schedule list`).
/// Pending commands by due time, the first `limit` of them (all without).
pub async fn list(
    pool: &PgPool,
    tenant: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<Scheduled>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scheduled_commands WHERE $1::text IS NULL OR tenant_id = $1 \
         ORDER BY effective_at, tenant_id, command_id LIMIT $2"
    ))
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Drops an erased entity's pending commands, recording them `cancelled`;
/// returns how many.
pub async fn forget_entity(
    conn: &mut PgConnection,
    tenant: &str,
    kind: &str,
    id: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "WITH gone AS (DELETE FROM scheduled_commands \
           WHERE tenant_id = $1 AND entity_kind = $2 AND entity_id = $3 RETURNING command_id) \
         UPDATE processed_commands SET outcome = 'cancelled', \
           reply = jsonb_set(reply, '{outcome}', '\"cancelled\"') - 'scheduled_for' \
         WHERE tenant_id = $1 AND command_id IN (SELECT command_id FROM gone)",
    )
    .bind(tenant)
    .bind(kind)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected())
}
