//! Retention: old processed-command records, old published outbox rows and
//! old dead letters are purged in batches; recent ones and unpublished
//! events stay.

use crate::helpers::TestEnv;
use lifecycle_worker::retention::{purge_once, Purged};

#[tokio::test]
async fn retention_purges_only_what_is_past_its_period() {
    let env = TestEnv::prepare_with(|_| {}).await;
    // 2,500 old inbox rows (more than one batch) and 10 recent ones.
    sqlx::query(
        "INSERT INTO processed_commands (tenant_id, command_id, command_type, outcome, reply, processed_at) \
         SELECT 'acme', 'old-' || i, 'contact.deactivate', 'applied', '{}', now() - interval '31 days' \
         FROM generate_series(1, 2500) i",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO processed_commands (tenant_id, command_id, command_type, outcome, reply, processed_at) \
         SELECT 'acme', 'new-' || i, 'contact.deactivate', 'applied', '{}', now() - interval '29 days' \
         FROM generate_series(1, 10) i",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    // Outbox: old published, recent published, old but never published.
    for (age, published, n) in [
        ("8 days", true, 1200),
        ("6 days", true, 5),
        ("9 days", false, 3),
    ] {
        let unpublished = if published {
            ""
        } else {
            ", listed AS (INSERT INTO outbox_unpublished (tenant_id, id) SELECT tenant_id, id FROM written)"
        };
        sqlx::query(&format!(
            "WITH written AS (INSERT INTO outbox (tenant_id, event_id, routing_key, event_type, entity_kind, entity_id, version, body, created_at) \
             SELECT 'acme', gen_random_uuid(), 'acme.contact.updated', 'ContactUpdated', 'contact', 'c-' || i, 1, '{{}}', now() - interval '{age}' \
             FROM generate_series(1, {n}) i RETURNING tenant_id, id){unpublished} SELECT count(*) FROM written"
        ))
        .execute(&env.pool)
        .await
        .unwrap();
    }
    // Dead letters: 1,100 past retention.dead_letters_days (30), 4 within it.
    for (age, n) in [("31 days", 1100), ("29 days", 4)] {
        sqlx::query(&format!(
            "INSERT INTO dead_letters (fingerprint, body, body_len, body_sha256, properties, exchange, \
             routing_key, code, message, first_failed_at, last_failed_at) \
             SELECT '{age}-' || i, '\\x00', 1, repeat('0', 64), '{{}}', 'x', 'k', 'malformed', 'm', \
             now() - interval '{age}', now() - interval '{age}' FROM generate_series(1, {n}) i"
        ))
        .execute(&env.pool)
        .await
        .unwrap();
    }
    // Guardrail counts: older than the longest window (7 days) go.
    sqlx::query(
        "INSERT INTO guardrail_changes (tenant_id, applied_at, changes) \
         SELECT 'acme', now() - make_interval(days => d), 1 FROM unnest(ARRAY[8, 9, 30, 1, 6]) d",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let purged = purge_once(&env.pool, &env.settings.retention)
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            processed_commands: 2500,
            outbox_rows: 1200,
            dead_letters: 1100,
            guardrail_changes: 3,
            console_audit: 0,
            deletes_finished: 0,
        }
    );
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM processed_commands), (SELECT count(*) FROM outbox), \
         (SELECT count(*) FROM dead_letters)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(left, (10, 8, 4), "recent rows and unpublished events stay");
    assert_eq!(
        purge_once(&env.pool, &env.settings.retention)
            .await
            .unwrap(),
        Purged::default()
    );
    env.finish().await;
}

/// Issue 25, item 2: the console's audit records are kept
/// `retention.console_audit_days` (365), then purged like the rest.
#[tokio::test]
async fn console_audit_records_are_purged_after_their_period() {
    let env = TestEnv::prepare_with(|_| {}).await;
    sqlx::query(
        "INSERT INTO console_audit (at, actor, action, target, result) \
         SELECT now() - make_interval(days => d), 'bearer', 'reveal', 'dead_letter ' || d, 'shown' \
         FROM unnest(ARRAY[366, 400, 364, 1]) d",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    purge_once(&env.pool, &env.settings.retention)
        .await
        .unwrap();
    let left: Vec<String> = sqlx::query_scalar("SELECT target FROM console_audit ORDER BY at")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, ["dead_letter 364", "dead_letter 1"]);
    env.finish().await;
}
