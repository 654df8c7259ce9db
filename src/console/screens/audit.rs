//! The console's audit: reveals, logins and actions.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::App;
use crate::console::auth::Caller;
use crate::console::view::{self, page, when};
use crate::store::audit;

pub async fn audit(State(c): App, caller: Caller) -> Response {
    let entries = match audit::recent(&c.pool, 200).await {
        Ok(e) => e,
        Err(e) => return view::failure(Some(&caller), &e),
    };
    let content = html! {
        p.muted { "The latest 200 reveals, logins and actions through the console; failed logins are counted per address and minute." }
        table id="audit" {
            thead { tr { th { "When" } th { "Who" } th { "From" } th { "Action" } th { "Target" } th { "Result" } th.num { "Times" } } }
            tbody { @for e in &entries { tr {
                td { (when(e.at)) }
                td { (e.actor) @if let Some(s) = &e.session { " (" (s) ")" } }
                td { (e.remote.as_deref().unwrap_or("-")) }
                td { (e.action) }
                td.text { (e.target.as_deref().unwrap_or("-")) }
                td.text { (e.result) }
                td.num { (e.count) }
            } } }
        }
    };
    page("Audit", "/audit", Some(&caller), content).into_response()
}
