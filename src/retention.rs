//! Retention: processed-command records, published outbox rows, dead
//! letters and the console's audit records are purged after their
//! configured periods, in small batches so that no
//! long-running delete competes with command processing for locks or I/O.
//!
//! Purging a processed command ends its duplicate protection: a redelivery
//! older than the retention period is evaluated afresh, where per-aspect
//! staleness still keeps it from undoing newer changes.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::RetentionSettings;
use crate::store::StoreError;

/// Rows deleted per statement.
const BATCH: i64 = 1_000;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub processed_commands: u64,
    pub outbox_rows: u64,
    pub dead_letters: u64,
    pub guardrail_changes: u64,
    pub console_audit: u64,
    /// Soft-deleted contacts and users whose restore window ended.
    pub deletes_finished: u64,
}

/// One full purge: deletes batch after batch until nothing is left to purge.
pub async fn purge_once(pool: &PgPool, settings: &RetentionSettings) -> Result<Purged, StoreError> {
    Ok(Purged {
        processed_commands: purge_batches(
            pool,
            "DELETE FROM processed_commands WHERE (tenant_id, command_id) IN ( \
             SELECT tenant_id, command_id FROM processed_commands \
             WHERE processed_at < now() - make_interval(days => $1) \
             AND outcome <> 'scheduled' LIMIT $2)",
            settings.processed_commands_days,
        )
        .await?,
        // Oldest first, through the time index: left to itself the planner
        // may walk the primary key past millions of recent rows per batch.
        outbox_rows: purge_batches(
            pool,
            "DELETE FROM outbox WHERE (tenant_id, id) IN ( \
             SELECT tenant_id, id FROM outbox o WHERE created_at < now() - make_interval(days => $1) \
             AND NOT EXISTS (SELECT 1 FROM outbox_unpublished u \
               WHERE u.tenant_id = o.tenant_id AND u.id = o.id) \
             ORDER BY created_at LIMIT $2)",
            settings.published_outbox_days,
        )
        .await?,
        dead_letters: purge_batches(
            pool,
            "DELETE FROM dead_letters WHERE id IN ( \
             SELECT id FROM dead_letters \
             WHERE last_failed_at < now() - make_interval(days => $1) LIMIT $2)",
            settings.dead_letters_days,
        )
        .await?,
        // No guardrail window is longer (config refuses more).
        guardrail_changes: purge_batches(
            pool,
            "DELETE FROM guardrail_changes WHERE (tenant_id, applied_at) IN ( \
             SELECT tenant_id, applied_at FROM guardrail_changes \
             WHERE applied_at < now() - make_interval(days => $1) LIMIT $2)",
            crate::domain::policy::MAX_GUARDRAIL_WINDOW_DAYS,
        )
        .await?,
        // Oldest first, through the time index.
        console_audit: purge_batches(
            pool,
            "DELETE FROM console_audit WHERE id IN ( \
             SELECT id FROM console_audit WHERE at < now() - make_interval(days => $1) \
             ORDER BY at LIMIT $2)",
            settings.console_audit_days,
        )
        .await?,
        deletes_finished: finish_deletes(pool).await?,
    })
}

/// Finishes soft deletes past their restore window: the kept state (and a
/// contact's activity) goes for good, the tombstone stays. Rows another
/// replica is purging are skipped, so replicas never purge the same row.
async fn finish_deletes(pool: &PgPool) -> Result<u64, StoreError> {
    let contacts = purge_batches(
        pool,
        "WITH due AS (SELECT tenant_id, contact_id FROM contacts \
           WHERE purge_after < now() - make_interval(days => $1) LIMIT $2 FOR UPDATE SKIP LOCKED), \
         gone AS (DELETE FROM contact_activity a USING due \
           WHERE a.tenant_id = due.tenant_id AND a.contact_id = due.contact_id) \
         UPDATE contacts c SET deleted_state = NULL, purge_after = NULL FROM due \
         WHERE c.tenant_id = due.tenant_id AND c.contact_id = due.contact_id",
        0,
    )
    .await?;
    let users = purge_batches(
        pool,
        "WITH due AS (SELECT tenant_id, user_id FROM users \
           WHERE purge_after < now() - make_interval(days => $1) LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE users u SET deleted_state = NULL, purge_after = NULL FROM due \
         WHERE u.tenant_id = due.tenant_id AND u.user_id = due.user_id",
        0,
    )
    .await?;
    Ok(contacts + users)
}

/// Runs a `DELETE ... LIMIT $2` taking `days` as `$1` until it deletes
/// less than a batch.
async fn purge_batches(pool: &PgPool, delete: &str, days: u32) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = sqlx::query(delete)
            .bind(i32::try_from(days).unwrap_or(i32::MAX))
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Runs [`purge_once`] every `interval` until shutdown.
pub async fn run(pool: PgPool, settings: RetentionSettings, shutdown: CancellationToken) {
    let interval = Duration::from_secs(settings.interval_secs.max(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match purge_once(&pool, &settings).await {
            Ok(p) if p != Purged::default() => info!(
                processed_commands = p.processed_commands,
                outbox_rows = p.outbox_rows,
                dead_letters = p.dead_letters,
                guardrail_changes = p.guardrail_changes,
                console_audit = p.console_audit,
                deletes_finished = p.deletes_finished,
                "retention purge"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "retention purge failed; will try again"),
        }
    }
}
