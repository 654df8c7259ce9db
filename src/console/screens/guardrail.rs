//! The guardrail: tenants' allowance, held commands, previewing, releasing
//! and discarding them.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::{check_csrf, one_page, record, App, PageError, PageQuery, ShowTo, PAGE};
use crate::console::auth::Caller;
use crate::console::view::{self, csrf_field, page, when};
use crate::console::Console;
use crate::guard::{self, Selection};
use crate::store::guardrail;

/// Tenants shown on the guardrail page (tripped ones first).
const GUARD_TENANTS: i64 = 200;

/// What a request naming no holds, or not naming them right, is told.
const NAME_THE_HOLDS: &str = "Name the holds: ids separated by commas, or all.";

pub async fn guard(
    State(c): App,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Markup, PageError> {
    let policies = c.settings.policies();
    let loaded = async {
        let status = guardrail::status(
            &c.pool,
            |t| policies.for_tenant(t).guardrail.clone(),
            Some(GUARD_TENANTS),
        )
        .await?;
        let tenants: Vec<&str> = status.iter().map(|(t, _, _)| t.as_str()).collect();
        let waiting: HashMap<String, i64> = guardrail::held_counts(&c.pool, &tenants)
            .await?
            .into_iter()
            .collect();
        let held = guardrail::held_page(&c.pool, None, q.after.unwrap_or(0), PAGE + 1).await?;
        Ok::<_, crate::store::StoreError>((status, waiting, held))
    };
    let (status, waiting, held) = loaded.await.show_to(&caller)?;
    let (held, more) = one_page(held);
    let next = more.then(|| held.last().map(|h| h.hold_id)).flatten();
    let content = html! {
        table id="guard-status" {
            thead { tr { th { "Tenant" } th { "Tripped" } th.num { "Changes in window" } th.num { "Allowed" } th { "Window" } th { "Held" } } }
            tbody { @for (tenant, tripped, n) in &status {
                @let g = &policies.for_tenant(tenant).guardrail;
                @let waiting = waiting.get(tenant).copied().unwrap_or(0);
                tr {
                    td { (tenant) }
                    td.bad[*tripped] { @if *tripped { "tripped" } @else { "no" } }
                    td.num { (n) }
                    td.num { (g.max_changes) }
                    td { (humantime::format_duration(g.window).to_string()) }
                    td { (waiting)
                        @if waiting > 0 {
                            " " a href={"/guard/" (tenant) "/preview?holds=all"} { "Preview release of all" }
                        } }
                }
            } }
        }
        @if status.len() as i64 == GUARD_TENANTS { p.muted { "The first " (GUARD_TENANTS) " tenants, tripped ones first." } }
        h2 { "Held commands" }
        @if held.is_empty() { p { "Nothing is held." } }
        @else {
            table id="held" {
                thead { tr { th.num { "Hold" } th { "Tenant" } th { "Type" } th { "Command" } th { "Entity" } th { "Held at" } th { "" } } }
                tbody { @for h in &held { tr {
                    td.num { (h.hold_id) }
                    td { (h.tenant_id) }
                    td { (h.command_type) }
                    td.text { (h.command_id) }
                    td { @match (&h.entity_kind, &h.entity_id) { (Some(k), Some(id)) => { (k) " " (id) }, _ => "bulk" } }
                    td { (when(h.held_at)) }
                    td { div.actions {
                        a href={"/guard/" (h.tenant_id) "/preview?holds=" (h.hold_id)} { "Preview release" }
                        form method="post" action={"/guard/" (h.tenant_id) "/discard"} {
                            (csrf_field(&caller))
                            input type="hidden" name="holds" value=(h.hold_id);
                            button.danger type="submit" { "Discard" }
                        }
                    } }
                } } }
            }
        }
        nav aria-label="Pages" {
            @if q.after.is_some() { a href="/guard" { "First page" } " " }
            @if let Some(id) = next { a href={"/guard?after=" (id)} rel="next" { "Next page" } }
        }
    };
    Ok(page("Guardrail", "/guard", Some(&caller), content))
}

#[derive(Deserialize)]
pub struct HoldsQuery {
    holds: String,
}

fn selection(holds: &str) -> Option<Selection> {
    if holds == "all" {
        return Some(Selection::All);
    }
    let ids: Result<Vec<i64>, _> = holds.split(',').map(|s| s.trim().parse()).collect();
    ids.ok().filter(|ids| !ids.is_empty()).map(Selection::Ids)
}

/// What a release would do now (a dry run, rolled back), and the button
/// that does it.
pub async fn preview(
    State(c): App,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(q): Query<HoldsQuery>,
) -> Result<Markup, PageError> {
    let sel = selection(&q.holds).ok_or_else(|| PageError::not_found(&caller, NAME_THE_HOLDS))?;
    // One page, in one transaction that is rolled back: what the first
    // held commands would do, not a long transaction over all of them.
    let loaded = async {
        let results = guard::preview(&c.settings, &c.pool, &tenant, &sel, Some(PAGE)).await?;
        let total = guardrail::count_selected(&c.pool, &tenant, sel.ids()).await?;
        Ok::<_, guard::GuardError>((results, total))
    };
    let (results, total) = loaded.await.show_to(&caller)?;
    let suppressed: u64 = results.iter().map(|r| r.suppressed).sum();
    let content = html! {
        @if total > results.len() as i64 {
            p id="preview-scope" { "If released now (nothing has changed yet), the first " (results.len())
                " of " (total) " held commands, in the order held; the release applies all of them:" }
        } @else {
            p { "If released now (nothing has changed yet):" }
        }
        table id="preview" {
            thead { tr { th.num { "Hold" } th { "Type" } th { "Command" } th { "Entity" } th { "Outcome" } th.num { "Addresses suppressed" } } }
            tbody { @for r in &results { tr {
                td.num { (r.hold_id) }
                td { (r.command_type) }
                td.text { (r.command_id) }
                td { @if let Some(e) = &r.entity { (e.kind.as_str()) " " (e.id) } @else { "bulk" } }
                td { (r.outcome.as_str()) }
                td.num { (r.suppressed) }
            } } }
        }
        p { (results.len()) " held command(s); " (suppressed) " address(es) would become suppressed." }
        div.actions {
            form method="post" action={"/guard/" (tenant) "/release"} {
                (csrf_field(&caller))
                input type="hidden" name="holds" value=(q.holds);
                button type="submit" id="release" { "Release" }
            }
            form method="post" action={"/guard/" (tenant) "/discard"} {
                (csrf_field(&caller))
                input type="hidden" name="holds" value=(q.holds);
                button.danger type="submit" id="discard" { "Discard" }
            }
            a href="/guard" { "Cancel" }
        }
    };
    let title = format!("Release preview for {tenant}");
    Ok(page(&title, "/guard", Some(&caller), content))
}

#[derive(Deserialize)]
pub struct HoldsForm {
    #[serde(default)]
    csrf: String,
    holds: String,
}

pub async fn release(
    State(c): App,
    caller: Caller,
    Path(tenant): Path<String>,
    Form(f): Form<HoldsForm>,
) -> Result<Response, PageError> {
    guard_action(&c, &caller, &tenant, &f, true).await
}

pub async fn discard(
    State(c): App,
    caller: Caller,
    Path(tenant): Path<String>,
    Form(f): Form<HoldsForm>,
) -> Result<Response, PageError> {
    guard_action(&c, &caller, &tenant, &f, false).await
}

async fn guard_action(
    c: &Console,
    caller: &Caller,
    tenant: &str,
    f: &HoldsForm,
    release: bool,
) -> Result<Response, PageError> {
    check_csrf(caller, &f.csrf)?;
    let back = ("/guard", "Back to the guardrail");
    let sel =
        selection(&f.holds).ok_or_else(|| PageError::bad_form(caller, NAME_THE_HOLDS, back))?;
    let (action, result) = if release {
        let r = guard::release(&c.settings, &c.pool, tenant, sel, &caller.actor).await;
        (
            "release",
            r.map(|done| {
                let suppressed: u64 = done.iter().map(|r| r.suppressed).sum();
                format!(
                    "{} held command(s) released; {suppressed} address(es) became suppressed.",
                    done.len()
                )
            }),
        )
    } else {
        let r = guard::discard(&c.settings, &c.pool, tenant, sel, &caller.actor).await;
        (
            "discard",
            r.map(|n| format!("{n} held command(s) discarded into the dead-letter store.")),
        )
    };
    let (ok, message) = match result {
        Ok(m) => (true, m),
        Err(e) => (false, e.to_string()),
    };
    record(
        c,
        caller,
        action,
        &format!("{tenant} holds {}", f.holds),
        &message,
    )
    .await;
    Ok(view::outcome(caller, "/guard", ok, &message, back))
}
