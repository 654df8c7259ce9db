//! One dead letter: masked, revealed, replayed, edited; and how a replay
//! from any screen is run and reported.

use crate::store::dead_letters;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::{check_csrf, record, try_record, App, CsrfForm, PageError, ShowTo};
use crate::console::auth::Caller;
use crate::console::view::{self, csrf_field, page, when};
use crate::console::{mask, Console};
use crate::replay::{self, ReplayError};
use crate::store::replays;

pub(super) async fn run_replay(
    c: &Console,
    caller: &Caller,
    filter: &dead_letters::DeadLetterFilter,
    canary: Option<(usize, Duration)>,
) -> Result<replay::Report, ReplayError> {
    let selected = replay::select(&c.pool, filter).await?;
    let who = replay::operator(&c.settings, caller.actor.clone())?;
    replay::replay(&c.settings, &c.pool, selected, &who, canary, &mut |_| {}).await
}

pub(super) async fn finish_replay(
    c: &Console,
    caller: &Caller,
    action: &str,
    target: &str,
    result: Result<replay::Report, ReplayError>,
    back: (&str, &str),
) -> Response {
    let (ok, message) = match result {
        Ok(report) => {
            let mut m = String::new();
            if let Some(n) = report.canary {
                m.push_str(&format!(
                    "Canary: {n} dead letter(s) replayed and applied. "
                ));
            }
            m.push_str(&format!("{} dead letter(s) replayed.", report.replayed));
            match report.shortfall() {
                Some(why) => (false, format!("{m} {why}")),
                None => (true, m),
            }
        }
        Err(e) => (false, e.to_string()),
    };
    record(c, caller, action, target, &message).await;
    view::outcome(caller, "/dead-letters", ok, &message, back)
}

pub async fn dead_letter(
    State(c): App,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Markup, PageError> {
    detail(&c, &caller, id, false).await
}

pub async fn reveal(
    State(c): App,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Markup, PageError> {
    check_csrf(&caller, &f.csrf)?;
    detail(&c, &caller, id, true).await
}

/// A dead letter: masked, or revealed (recorded first: no record, no reveal).
async fn detail(
    c: &Console,
    caller: &Caller,
    id: i64,
    revealed: bool,
) -> Result<Markup, PageError> {
    let row = replay::find(&c.pool, id).await.map_err(|e| match e {
        ReplayError::NotFound(what) => PageError::not_found(caller, what),
        e => PageError::failed(caller, e),
    })?;
    if revealed {
        let target = format!("dead_letter {id}");
        try_record(c, caller, "reveal", &target, "shown")
            .await
            .show_to(caller)?;
    }
    let history = replays::history(&c.pool, id).await.show_to(caller)?;
    let (body, properties, message) = if revealed {
        (
            crate::body::render(&row.body),
            serde_json::to_string_pretty(&row.properties).unwrap_or_default(),
            row.message.clone(),
        )
    } else {
        (
            mask::masked_body(&row.body),
            serde_json::to_string_pretty(&mask::masked_properties(&row.properties))
                .unwrap_or_default(),
            mask::masked_text(&row.message),
        )
    };
    let content = html! {
        dl.meta {
            dt { "Tenant" } dd { (row.tenant_id.as_deref().unwrap_or("-")) }
            dt { "Type" } dd { (row.command_type.as_deref().unwrap_or("-")) }
            dt { "Command id" } dd { (row.command_id.as_deref().unwrap_or("-")) }
            dt { "Code" } dd { (row.code) }
            dt { @if revealed { "Message" } @else { "Cause" } } dd id="message" { (message) }
            dt { "Group" } dd { @if let Some(g) = &row.group_id { a href={"/dead-letters/groups/" (g)} { (g) } } @else { "-" } }
            dt { "Failures" } dd { (row.failure_count) ", first " (when(row.first_failed_at)) ", last " (when(row.last_failed_at)) }
            dt { "Replays" } dd { (row.replay_count) @if let Some(at) = row.resolved_at { ", resolved " (when(at)) } }
            dt { "Routing key" } dd { (row.routing_key) }
            dt { "Producer" } dd { (row.user_id.as_deref().unwrap_or("-")) }
            dt { "Body" } dd { (row.body_len) " bytes" @if row.truncated() { " (only the first " (row.body.len()) " kept)" } }
        }
        div.actions {
            @if !revealed {
                form method="post" action={"/dead-letters/" (id) "/reveal"} {
                    (csrf_field(caller))
                    button.secondary type="submit" id="reveal" { "Reveal personal data" }
                }
            }
            form method="post" action={"/dead-letters/" (id) "/replay"} {
                (csrf_field(caller))
                button type="submit" id="replay" { "Replay" }
            }
        }
        h2 { "Body" @if !revealed { " (personal data masked)" } }
        pre id="body" { (body) }
        h2 { "Properties" }
        pre id="properties" { (properties) }
        @if revealed && !row.truncated() {
            h2 { "Edit and replay" }
            form method="post" action={"/dead-letters/" (id) "/edit"} {
                (csrf_field(caller))
                label { "Corrected body (JSON); it must pass admission as the original producer"
                    textarea name="body" id="edit-body" spellcheck="false" { (pretty_json(&row.body)) } }
                div.actions {
                    label { span { input type="checkbox" name="new_id" value="1"; " new command id" } }
                    button type="submit" id="save-edit" { "Save and replay" }
                }
            }
        }
        @if !history.is_empty() {
            h2 { "History" }
            table id="history" {
                thead { tr { th { "When" } th { "Action" } th { "By" } th { "Result" } } }
                tbody { @for h in &history { tr {
                    td { (when(h.at)) }
                    td { (h.action) @if let Some(n) = h.replay { " #" (n) } }
                    td { (h.os_user.as_deref().unwrap_or("-")) " (" (h.amqp_user.as_deref().unwrap_or("-")) ")" }
                    td.text { @match (&h.result, revealed) {
                        (None, _) => "(no outcome yet)",
                        (Some(r), true) => (r),
                        // A result quotes the failure's message.
                        (Some(r), false) => (mask::masked_text(r)),
                    } }
                } } }
            }
        }
    };
    let title = format!("Dead letter {id}");
    Ok(page(&title, "/dead-letters", Some(caller), content))
}

fn pretty_json(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

pub async fn replay_one(
    State(c): App,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&caller, &f.csrf)?;
    let result = match replay::replay_filter(vec![id], false, None, None, None) {
        Ok(filter) => run_replay(&c, &caller, &filter, None).await,
        Err(e) => Err(e),
    };
    let back = format!("/dead-letters/{id}");
    let target = format!("dead_letter {id}");
    Ok(finish_replay(
        &c,
        &caller,
        "replay",
        &target,
        result,
        (&back, "Back to the dead letter"),
    )
    .await)
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    csrf: String,
    body: String,
    new_id: Option<String>,
}

pub async fn edit(
    State(c): App,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<EditForm>,
) -> Result<Response, PageError> {
    check_csrf(&caller, &f.csrf)?;
    let result = async {
        let row = replay::find(&c.pool, id).await?;
        let who = replay::operator(&c.settings, caller.actor.clone())?;
        replay::edit(
            &c.settings,
            &c.pool,
            &row,
            f.body.as_bytes(),
            f.new_id.is_some(),
            &who,
        )
        .await
    }
    .await;
    let back = format!("/dead-letters/{id}");
    let target = format!("dead_letter {id}");
    Ok(finish_replay(
        &c,
        &caller,
        "edit",
        &target,
        result,
        (&back, "Back to the dead letter"),
    )
    .await)
}
