//! The overview: health, and what waits for an operator.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use maud::{html, Markup};

use super::{App, PageError, ShowTo};
use crate::console::auth::Caller;
use crate::console::view::{count, page};

/// Counts on the overview stop here: an exact count of millions of rows
/// would cost more than the page is worth.
const COUNT_CAP: i64 = 10_000;

pub async fn overview(State(c): App, caller: Caller) -> Result<Markup, PageError> {
    let counts = async {
        let capped = |table: &str, cond: &str| {
            format!("SELECT count(*) FROM (SELECT 1 FROM {table} {cond} LIMIT {COUNT_CAP} + 1) t")
        };
        let dead: i64 = sqlx::query_scalar(&capped("dead_letters", "WHERE resolved_at IS NULL"))
            .fetch_one(&c.pool)
            .await?;
        let held: i64 = sqlx::query_scalar(&capped("held_commands", ""))
            .fetch_one(&c.pool)
            .await?;
        let scheduled: i64 = sqlx::query_scalar(&capped("scheduled_commands", ""))
            .fetch_one(&c.pool)
            .await?;
        Ok::<_, sqlx::Error>((dead, held, scheduled))
    };
    let (dead, held, scheduled) = counts.await.show_to(&caller)?;
    let h = &c.health;
    let checks = [
        ("Database", h.database_reachable.load(Ordering::Relaxed)),
        ("Broker", h.broker_connected.load(Ordering::Relaxed)),
        ("Consumers", h.consumers_running.load(Ordering::Relaxed)),
    ];
    let ready = checks.iter().all(|(_, ok)| *ok);
    let lag = Duration::from_millis(h.outbox_oldest_ms.load(Ordering::Relaxed));
    let content = html! {
        h2 { "Health" }
        div.panel id="health" {
            div.card { div.muted { "Readiness" }
                div.value.ok[ready].bad[!ready] { @if ready { "ready" } @else { "not ready" } }
                @for (name, ok) in checks { div { (name) ": " span.ok[ok].bad[!ok] { @if ok { "up" } @else { "down" } } } } }
            div.card { div.muted { "Outbox backlog" }
                div.value { (h.outbox_pending.load(Ordering::Relaxed)) } div.muted { "events not yet published" } }
            div.card { div.muted { "Relay lag" }
                div.value { (format!("{:.1} s", lag.as_secs_f64())) } div.muted { "age of the oldest unpublished event" } }
        }
        h2 { "Waiting for an operator" }
        div.panel {
            div.card { div.muted { "Dead letters" } div.value { (count(dead, COUNT_CAP)) }
                a href="/dead-letters" { "Failure groups" } }
            div.card { div.muted { "Held by the guardrail" } div.value { (count(held, COUNT_CAP)) }
                a href="/guard" { "Guardrail" } }
            div.card { div.muted { "Scheduled" } div.value { (count(scheduled, COUNT_CAP)) }
                a href="/schedule" { "Schedule" } }
        }
    };
    Ok(page("Overview", "/", Some(&caller), content))
}
