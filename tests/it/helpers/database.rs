//! The per-test database: dropping it, and what tests read or end in it
//! (dead letters, the relay's session).

use lifecycle_worker::store::dead_letters;
use lifecycle_worker::store::dead_letters::DeadLetterRow;
use sqlx::PgPool;

use super::TestEnv;

const ADMIN_DB: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl TestEnv {
    pub async fn dead_letters(&self) -> Vec<DeadLetterRow> {
        dead_letters::list_dead_letters(&self.pool).await.unwrap()
    }
}

/// Drops a test's database, sessions and all; errors are ignored, since
/// this runs when a test ends, failed or not.
pub(super) async fn drop_database(db_name: &str) {
    if let Ok(admin) = PgPool::connect(ADMIN_DB).await {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
        ))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// The backend of this test's database that is named as the relay's session
/// and holds the relay lock, if any.
pub async fn relay_lock_holder(pool: &PgPool) -> Option<i32> {
    try_relay_lock_holder(pool).await.expect("reading pg_locks")
}

/// [`relay_lock_holder`], or the error while the database is away (the
/// chaos soak restarts it).
pub async fn try_relay_lock_holder(pool: &PgPool) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
         WHERE a.datname = current_database() AND a.application_name = $1 \
           AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid = (($2::bigint >> 32) & 4294967295)::oid \
           AND l.objid = ($2::bigint & 4294967295)::oid",
    )
    .bind(lifecycle_worker::relay::APPLICATION_NAME)
    .bind(lifecycle_worker::relay::LOCK_KEY)
    .fetch_optional(pool)
    .await
}

/// Ends a backend of this test's database (never another test's): whether
/// it was there to end.
pub async fn terminate_backend(pool: &PgPool, pid: i32) -> bool {
    try_terminate_backend(pool, pid)
        .await
        .expect("pg_terminate_backend")
}

/// [`terminate_backend`], or the error while the database is away.
pub async fn try_terminate_backend(pool: &PgPool, pid: i32) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity \
         WHERE pid = $1 AND datname = current_database()",
    )
    .bind(pid)
    .fetch_one(pool)
    .await
}
