//! The guardrail's tables: per-tenant state and window counts, and held
//! commands.

use super::StoreError;
use crate::domain::guardrail::Allowance;
use crate::domain::policy::Guardrail;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

/// Locks the tenant's guardrail row (created on first use) and reads its
/// allowance: held until the transaction ends, so concurrent batches of
/// one tenant count one after the other.
pub async fn lock_allowance(
    conn: &mut PgConnection,
    tenant: &str,
    policy: &Guardrail,
) -> Result<Allowance, StoreError> {
    // Created on first use and locked in one statement (DO UPDATE locks the
    // row); counted in a second one: under READ COMMITTED a statement's
    // snapshot is taken when it starts, so a count in the locking statement
    // would miss what the previous lock holder committed while this one
    // waited.
    sqlx::query(
        "INSERT INTO guardrail_tenants (tenant_id) VALUES ($1) \
         ON CONFLICT (tenant_id) DO UPDATE SET tripped = guardrail_tenants.tripped",
    )
    .bind(tenant)
    .execute(&mut *conn)
    .await?;
    let (tripped, count): (bool, i64) = sqlx::query_as(
        "SELECT t.tripped, COALESCE((SELECT sum(changes) FROM guardrail_changes c \
           WHERE c.tenant_id = t.tenant_id AND c.applied_at > GREATEST(t.counted_since, \
           now() - make_interval(secs => $2))), 0)::bigint \
         FROM guardrail_tenants t WHERE t.tenant_id = $1",
    )
    .bind(tenant)
    .bind(policy.window.as_secs_f64())
    .fetch_one(conn)
    .await?;
    Ok(Allowance {
        policy: policy.clone(),
        tripped,
        count: count.max(0) as u64,
    })
}

/// Records a batch's destructive changes for the tenant's window.
pub async fn record_changes(
    conn: &mut PgConnection,
    tenant: &str,
    changes: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO guardrail_changes (tenant_id, applied_at, changes) \
         VALUES ($1, date_trunc('second', now()), $2) \
         ON CONFLICT (tenant_id, applied_at) DO UPDATE \
         SET changes = guardrail_changes.changes + EXCLUDED.changes",
    )
    .bind(tenant)
    .bind(i64::try_from(changes).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets or clears `tripped`; clearing restarts the window count. Returns
/// the version for the guardrail event this change publishes.
pub async fn set_tripped(
    conn: &mut PgConnection,
    tenant: &str,
    tripped: bool,
) -> Result<u64, StoreError> {
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO guardrail_tenants (tenant_id, tripped, version) VALUES ($1, $2, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET tripped = $2, version = guardrail_tenants.version + 1, \
         counted_since = CASE WHEN $2 THEN guardrail_tenants.counted_since ELSE now() END \
         RETURNING version",
    )
    .bind(tenant)
    .bind(tripped)
    .fetch_one(conn)
    .await?;
    Ok(version as u64)
}

/// Bumps the tenant's guardrail version for an event that changes nothing else.
pub async fn next_version(conn: &mut PgConnection, tenant: &str) -> Result<u64, StoreError> {
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO guardrail_tenants (tenant_id, version) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = guardrail_tenants.version + 1 \
         RETURNING version",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    Ok(version as u64)
}

/// A command held by the guardrail, whole.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Held {
    pub tenant_id: String,
    pub hold_id: i64,
    pub command_id: String,
    pub command_type: String,
    pub entity_kind: Option<String>,
    pub entity_id: Option<String>,
    pub contact_ids: Option<Value>,
    pub user_id: Option<String>,
    pub body: Vec<u8>,
    pub properties: Value,
    pub exchange: String,
    pub routing_key: String,
    pub held_at: OffsetDateTime,
}

const HELD_COLUMNS: &str = "tenant_id, hold_id, command_id, command_type, entity_kind, entity_id, \
    contact_ids, user_id, body, properties, exchange, routing_key, held_at";

/// Stores a held command; returns its hold id.
pub async fn hold(conn: &mut PgConnection, h: &Held) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO held_commands (tenant_id, command_id, command_type, entity_kind, entity_id, \
         contact_ids, user_id, body, properties, exchange, routing_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING hold_id",
    )
    .bind(&h.tenant_id)
    .bind(&h.command_id)
    .bind(&h.command_type)
    .bind(&h.entity_kind)
    .bind(&h.entity_id)
    .bind(&h.contact_ids)
    .bind(&h.user_id)
    .bind(&h.body)
    // Whatever headers a held command carried, it can be stored.
    .bind(super::dead_letters::pg_json(&h.properties))
    .bind(&h.exchange)
    .bind(&h.routing_key)
    .fetch_one(conn)
    .await?)
}

/// A held command as a list shows it: no body.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HeldSummary {
    pub tenant_id: String,
    pub hold_id: i64,
    pub command_id: String,
    pub command_type: String,
    pub entity_kind: Option<String>,
    pub entity_id: Option<String>,
    pub held_at: OffsetDateTime,
}

/// Up to `limit` held commands after hold `after`, in the order held, of
/// one tenant or all (keyset: any page is as fast as the first).
pub async fn held_page(
    pool: &PgPool,
    tenant: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<HeldSummary>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, hold_id, command_id, command_type, entity_kind, entity_id, held_at \
         FROM held_commands WHERE ($1::text IS NULL OR tenant_id = $1) AND hold_id > $2 \
         ORDER BY hold_id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Up to `limit` (all with `None`) of a tenant's held commands, whole,
/// after hold `after` in the order held; only `ids` when given.
pub async fn selected(
    pool: &PgPool,
    tenant: &str,
    ids: Option<&[i64]>,
    after: i64,
    limit: Option<i64>,
) -> Result<Vec<Held>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {HELD_COLUMNS} FROM held_commands WHERE tenant_id = $1 AND hold_id > $2 \
         AND ($3::bigint[] IS NULL OR hold_id = ANY($3)) ORDER BY hold_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(after)
    .bind(ids)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How many of a tenant's held commands there are (only `ids` when given).
pub async fn count_selected(
    pool: &PgPool,
    tenant: &str,
    ids: Option<&[i64]>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM held_commands WHERE tenant_id = $1 \
         AND ($2::bigint[] IS NULL OR hold_id = ANY($2))",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_one(pool)
    .await?)
}

/// Held commands of each of `tenants`.
pub async fn held_counts(
    pool: &PgPool,
    tenants: &[&str],
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, count(*) FROM held_commands WHERE tenant_id = ANY($1) GROUP BY tenant_id",
    )
    .bind(tenants)
    .fetch_all(pool)
    .await?)
}

/// Held commands in the order they were held, of one tenant or all.
pub async fn list(pool: &PgPool, tenant: Option<&str>) -> Result<Vec<Held>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {HELD_COLUMNS} FROM held_commands WHERE ($1::text IS NULL OR tenant_id = $1) \
         ORDER BY hold_id"
    ))
    .bind(tenant)
    .fetch_all(pool)
    .await?)
}

/// Locks one held command for its release or discard; `None` when another
/// operator took it first.
pub async fn take(
    conn: &mut PgConnection,
    tenant: &str,
    hold_id: i64,
) -> Result<Option<Held>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "DELETE FROM held_commands WHERE tenant_id = $1 AND hold_id = $2 RETURNING {HELD_COLUMNS}"
    ))
    .bind(tenant)
    .bind(hold_id)
    .fetch_optional(conn)
    .await?)
}

/// Held commands per tenant, for the gauge.
pub async fn held_per_tenant(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, count(*) FROM held_commands GROUP BY tenant_id ORDER BY tenant_id",
    )
    .fetch_all(pool)
    .await?)
}

/// Per tenant with a guardrail row, tripped ones first, at most `limit`
/// (all with `None`): tripped, and the changes in its window.
pub async fn status(
    pool: &PgPool,
    window_of: impl Fn(&str) -> Guardrail,
    limit: Option<i64>,
) -> Result<Vec<(String, bool, u64)>, StoreError> {
    let tenants: Vec<(String, bool)> = sqlx::query_as(
        "SELECT tenant_id, tripped FROM guardrail_tenants ORDER BY tripped DESC, tenant_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(tenants.len());
    for (tenant, tripped) in tenants {
        let policy = window_of(&tenant);
        let count: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(c.changes), 0)::bigint FROM guardrail_changes c \
             JOIN guardrail_tenants t USING (tenant_id) WHERE c.tenant_id = $1 \
             AND c.applied_at > GREATEST(t.counted_since, now() - make_interval(secs => $2))",
        )
        .bind(&tenant)
        .bind(policy.window.as_secs_f64())
        .fetch_one(pool)
        .await?;
        out.push((tenant, tripped, count.max(0) as u64));
    }
    Ok(out)
}
