//! The dead-letter phase of `make bench` (issue 14): `dlq groups` over
//! 100,000 rows of ten causes, by the stored group key.

use std::time::Instant;

use sqlx::PgPool;

pub const ROWS: i64 = 100_000;

pub async fn run(pool: &PgPool) -> (usize, f64) {
    sqlx::query(
        "INSERT INTO dead_letters (fingerprint, body, body_len, body_sha256, properties, exchange, \
         routing_key, tenant_id, command_id, command_type, code, message, template, group_id) \
         SELECT 'bench-' || g, '\\x7b7d', 2, repeat('0', 64), '{}', 'x', 'bench.contact.deactivate', \
           'bench', 'dl-' || g, 'contact.deactivate', 'not_found', 'contact `c-' || g || '` does not exist', \
           'contact <value> does not exist (cause ' || (g % 10) || ')', 'bench' || (g % 10) \
         FROM generate_series(1, $1) g",
    )
    .bind(ROWS)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE dead_letters")
        .execute(pool)
        .await
        .unwrap();
    let runs = 5;
    let started = Instant::now();
    let mut groups = 0;
    for _ in 0..runs {
        groups = lifecycle_worker::store::replays::groups(pool, None)
            .await
            .unwrap()
            .len();
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    sqlx::query("DELETE FROM dead_letters WHERE fingerprint LIKE 'bench-%'")
        .execute(pool)
        .await
        .unwrap();
    (groups, ms)
}
