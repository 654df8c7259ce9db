//! Scheduled commands, and cancelling one.

use axum::extract::{Query, State};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::{check_csrf, record, App, PageError, ShowTo};
use crate::console::auth::Caller;
use crate::console::view::{self, csrf_field, page, when};
use crate::guard;
use crate::store::schedule;

/// Scheduled commands listed.
const SCHEDULE_ROWS: i64 = 200;

#[derive(Deserialize)]
pub struct TenantQuery {
    tenant: Option<String>,
}

pub async fn schedule(
    State(c): App,
    caller: Caller,
    Query(q): Query<TenantQuery>,
) -> Result<Markup, PageError> {
    let tenant = q.tenant.filter(|t| !t.is_empty());
    let rows = schedule::list(&c.pool, tenant.as_deref(), Some(SCHEDULE_ROWS))
        .await
        .show_to(&caller)?;
    let content = html! {
        form.actions method="get" action="/schedule" {
            label { "Tenant" input name="tenant" value=[tenant.as_deref()]; }
            button.secondary type="submit" { "Filter" }
        }
        p.muted { "The next " (SCHEDULE_ROWS) " commands by due time." }
        table id="scheduled" {
            thead { tr { th { "Due" } th { "Tenant" } th { "Type" } th { "Command" } th { "Entity" } th { "Producer" } th { "" } } }
            tbody { @for s in &rows { tr {
                td { (when(s.effective_at)) }
                td { (s.tenant_id) }
                td { (s.command_type) }
                td.text { (s.command_id) }
                td { (s.entity_kind) " " (s.entity_id) }
                td { (s.user_id.as_deref().unwrap_or("-")) }
                td { form method="post" action="/schedule/cancel" {
                    (csrf_field(&caller))
                    input type="hidden" name="tenant" value=(s.tenant_id);
                    input type="hidden" name="command_id" value=(s.command_id);
                    button.danger type="submit" { "Cancel" }
                } }
            } } }
        }
        @if rows.is_empty() { p { "Nothing is scheduled." } }
    };
    Ok(page(
        "Scheduled commands",
        "/schedule",
        Some(&caller),
        content,
    ))
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
    tenant: String,
    command_id: String,
}

pub async fn cancel(
    State(c): App,
    caller: Caller,
    Form(f): Form<CancelForm>,
) -> Result<Response, PageError> {
    check_csrf(&caller, &f.csrf)?;
    let result = guard::cancel_scheduled(
        &c.settings,
        &c.pool,
        &f.tenant,
        &f.command_id,
        &caller.actor,
    )
    .await;
    let (ok, message) = match result {
        Ok(()) => (
            true,
            format!("Scheduled command {} cancelled.", f.command_id),
        ),
        Err(e) => (false, e.to_string()),
    };
    let target = format!("{} scheduled {}", f.tenant, f.command_id);
    record(&c, &caller, "cancel", &target, &message).await;
    Ok(view::outcome(
        &caller,
        "/schedule",
        ok,
        &message,
        ("/schedule", "Back to the schedule"),
    ))
}
