//! The console's audit: reveals, logins and actions.

use axum::extract::State;
use maud::{html, Markup};

use super::{App, PageError, ShowTo};
use crate::console::auth::Caller;
use crate::console::view::{page, when};
use crate::store::audit;

pub async fn audit(State(c): App, caller: Caller) -> Result<Markup, PageError> {
    let entries = audit::recent(&c.pool, 200).await.show_to(&caller)?;
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
    Ok(page("Audit", "/audit", Some(&caller), content))
}
