//! The console's page frame and shared pieces. Every value reaches the page
//! through maud's escaping; nothing here builds HTML from strings.

use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

use super::auth::Caller;

const STYLESHEET: &str = include_str!("assets/console.css");

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The main navigation: (path, label).
const NAV: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/dead-letters", "Dead letters"),
    ("/guard", "Guardrail"),
    ("/schedule", "Schedule"),
    ("/audit", "Audit"),
];

/// A whole page: navigation (marking `section`), who is logged in, content.
pub fn page(title: &str, section: &str, caller: Option<&Caller>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · lifecycle-worker" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    strong { "lifecycle-worker" }
                    @if let Some(caller) = caller {
                        nav aria-label="Main" {
                            ul {
                                @for (path, label) in NAV {
                                    li {
                                        @if path == section {
                                            a href=(path) aria-current="page" { (label) }
                                        } @else {
                                            a href=(path) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        span.who { (caller.actor) }
                        form method="post" action="/logout" {
                            (csrf_field(caller))
                            button.secondary type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

pub fn csrf_field(caller: &Caller) -> Markup {
    html! { input type="hidden" name="csrf" value=(caller.csrf()); }
}

/// The result of an action: what happened and where to go next.
pub fn outcome(
    caller: &Caller,
    section: &str,
    ok: bool,
    message: &str,
    back: (&str, &str),
) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let content = html! {
        div.notice.ok[ok].bad[!ok] role="status" id="outcome" { (message) }
        p { a href=(back.0) { (back.1) } }
    };
    let title = if ok { "Done" } else { "Not done" };
    (status, page(title, section, Some(caller), content)).into_response()
}

/// A timestamp to the second, UTC.
pub fn when(t: OffsetDateTime) -> String {
    crate::domain::event::format_time(t.replace_nanosecond(0).unwrap_or(t))
}

/// A count that may have been capped.
pub fn count(n: i64, cap: i64) -> String {
    if n > cap {
        format!("{cap}+")
    } else {
        n.to_string()
    }
}
