//! The dead-letter phase of `make bench` (issues 14 and 15): `dlq groups`
//! over 100,000 rows of ten causes, by the stored group key, and the
//! console's pages over the same rows.

use std::sync::Arc;
use std::time::Instant;

use lifecycle_worker::config::Settings;
use secrecy::SecretString;
use serde::Serialize;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ROWS: i64 = 100_000;
/// Requests per console page.
const REQUESTS: usize = 20;
const TOKEN: &str = "bench-console-token-0123456789abcdef";

#[derive(Serialize)]
pub struct PageTime {
    pub page: String,
    pub p50_ms: f64,
    pub max_ms: f64,
}

#[derive(Serialize)]
pub struct Figures {
    pub groups: usize,
    pub groups_ms: f64,
    pub console: Vec<PageTime>,
}

pub async fn run(pool: &PgPool, settings: &Settings) -> Figures {
    sqlx::query(
        "INSERT INTO dead_letters (fingerprint, body, body_len, body_sha256, properties, exchange, \
         routing_key, tenant_id, command_id, command_type, code, message, template, group_id) \
         SELECT 'bench-' || g, body, octet_length(body), repeat('0', 64), '{}', 'x', \
           'bench.contact.deactivate', 'bench', 'dl-' || g, 'contact.deactivate', 'not_found', \
           'contact `c-' || g || '` does not exist', \
           'contact <value> does not exist (cause ' || (g % 10) || ')', 'bench' || (g % 10) \
         FROM (SELECT g, convert_to('{\"tenant\":\"bench\",\"type\":\"contact.deactivate\",' \
                 || '\"payload\":{\"contact_id\":\"c-' || g || '\"}}', 'UTF8') AS body \
               FROM generate_series(1, $1) g) rows",
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
        groups = lifecycle_worker::store::replays::groups_page(pool, None, None, 1_000)
            .await
            .unwrap()
            .len();
    }
    let groups_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    let console = console_pages(pool, settings).await;
    sqlx::query("DELETE FROM dead_letters WHERE fingerprint LIKE 'bench-%'")
        .execute(pool)
        .await
        .unwrap();
    Figures {
        groups,
        groups_ms,
        console,
    }
}

/// Each page [`REQUESTS`] times through the console's router, from request
/// to the last byte of the response.
async fn console_pages(pool: &PgPool, settings: &Settings) -> Vec<PageTime> {
    let mut settings = settings.clone();
    settings.http.console_token = Some(SecretString::from(TOKEN));
    settings.http.console_listen = Some("127.0.0.1:0".into());
    let console = lifecycle_worker::console::Console::new(
        settings,
        pool.clone(),
        Arc::new(lifecycle_worker::monitoring::Health::default()),
    )
    .expect("console");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let token = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(lifecycle_worker::console::serve(
        listener,
        Arc::new(console),
        token.clone(),
    ));
    let first: i64 =
        sqlx::query_scalar("SELECT min(id) FROM dead_letters WHERE group_id = 'bench3'")
            .fetch_one(pool)
            .await
            .unwrap();
    let deep: i64 = sqlx::query_scalar(
        "SELECT id FROM dead_letters WHERE group_id = 'bench3' ORDER BY id DESC OFFSET 60 LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let pages = [
        "/".to_owned(),
        "/dead-letters".to_owned(),
        "/dead-letters/groups/bench3".to_owned(),
        format!("/dead-letters/groups/bench3?after={deep}"),
        format!("/dead-letters/{first}"),
        "/guard".to_owned(),
        "/schedule".to_owned(),
        "/audit".to_owned(),
    ];
    let mut out = Vec::new();
    for page in pages {
        let mut times = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let status = get(port, &page).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "console page {page}");
        }
        times.sort_by(f64::total_cmp);
        out.push(PageTime {
            page,
            p50_ms: times[times.len() / 2],
            max_ms: times[times.len() - 1],
        });
    }
    token.cancel();
    let _ = server.await;
    out
}

async fn get(port: u16, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
