//! Retention: processed-command records and published outbox rows are
//! purged after their configured periods, in small batches so that no
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
}

/// One full purge: deletes batch after batch until nothing is left to purge.
pub async fn purge_once(pool: &PgPool, settings: &RetentionSettings) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    loop {
        let n = sqlx::query(
            "DELETE FROM processed_commands WHERE (tenant_id, command_id) IN ( \
             SELECT tenant_id, command_id FROM processed_commands \
             WHERE processed_at < now() - make_interval(days => $1) LIMIT $2)",
        )
        .bind(settings.processed_commands_days as i32)
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged.processed_commands += n;
        if n < BATCH as u64 {
            break;
        }
    }
    loop {
        let n = sqlx::query(
            "DELETE FROM outbox WHERE (tenant_id, id) IN ( \
             SELECT tenant_id, id FROM outbox WHERE published_at IS NOT NULL \
             AND published_at < now() - make_interval(days => $1) LIMIT $2)",
        )
        .bind(settings.published_outbox_days as i32)
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged.outbox_rows += n;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok(purged)
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
                "retention purge"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "retention purge failed; will try again"),
        }
    }
}
