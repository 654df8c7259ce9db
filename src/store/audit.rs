//! The console's audit records (contract section 14): every reveal of a
//! dead letter's body and every action, with its result; failed logins as
//! counts per client address and minute.

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
    /// How many times: more than 1 only for failed logins.
    pub count: i32,
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
        "SELECT id, at, actor, session, remote, action, target, result, count \
         FROM console_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Failed attempts of one client in one minute, not yet recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedLogins {
    /// The minute they fell in.
    pub minute: OffsetDateTime,
    /// The client's address, or a stand-in for addresses not told apart.
    pub remote: String,
    /// `wrong token`, or `refused: rate limited`.
    pub result: &'static str,
    pub count: u32,
}

/// The action of failed-login records.
pub const FAILED_LOGIN: &str = "failed login";

/// Adds counts to their rows (one per client, minute and result), making
/// the rows that do not exist yet; several replicas add to the same rows.
pub async fn count_failed_logins(pool: &PgPool, counts: &[FailedLogins]) -> Result<(), StoreError> {
    let minutes: Vec<OffsetDateTime> = counts.iter().map(|c| c.minute).collect();
    let remotes: Vec<&str> = counts.iter().map(|c| c.remote.as_str()).collect();
    let results: Vec<&str> = counts.iter().map(|c| c.result).collect();
    let numbers: Vec<i32> = counts
        .iter()
        .map(|c| i32::try_from(c.count).unwrap_or(i32::MAX))
        .collect();
    sqlx::query(
        "INSERT INTO console_audit (at, actor, remote, action, target, result, count) \
         SELECT at, 'anonymous', remote, $5, 'console', result, n \
         FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::int[]) AS u(at, remote, result, n) \
         ON CONFLICT (remote, at, result) WHERE action = 'failed login' \
         DO UPDATE SET count = LEAST(console_audit.count::bigint + EXCLUDED.count, 2147483647)::int",
    )
    .bind(minutes)
    .bind(remotes)
    .bind(results)
    .bind(numbers)
    .bind(FAILED_LOGIN)
    .execute(pool)
    .await?;
    Ok(())
}
