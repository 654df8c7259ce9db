//! The console's audit records (contract section 14): every reveal of a
//! dead letter's body and every action, with its result.

use super::StoreError;
use sqlx::PgPool;
use time::OffsetDateTime;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub at: OffsetDateTime,
    /// `console:<name given at login>`, or `bearer`.
    pub actor: String,
    /// A short, non-secret name of the session.
    pub session: Option<String>,
    pub remote: Option<String>,
    pub action: String,
    /// What it was done to: ids (`dead_letter 17`, `group …`, `acme hold 3`).
    pub target: Option<String>,
    pub result: String,
}

/// What to record; `id` and `at` are the database's.
pub struct Record<'a> {
    pub actor: &'a str,
    pub session: Option<&'a str>,
    pub remote: Option<&'a str>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub result: &'a str,
}

pub async fn record(pool: &PgPool, r: &Record<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO console_audit (actor, session, remote, action, target, result) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(r.actor)
    .bind(r.session)
    .bind(r.remote)
    .bind(r.action)
    .bind(r.target)
    .bind(r.result)
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest records, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<Entry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, session, remote, action, target, result \
         FROM console_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
