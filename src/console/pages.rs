//! The console's pages and actions. Reading is GET; every change is a POST
//! with the session's token, recorded in `console_audit`, and done by the
//! same code as the CLI (`replay`, `guard`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{self, Caller, LoginError};
use super::client::Client;
use super::server::Connection;
use super::view::{self, count, csrf_field, page, when};
use super::{mask, Console};
use crate::guard::{self, Selection};
use crate::replay::{self, ReplayError};
use crate::store::audit::{self, Record};
use crate::store::journal::{self, DeadLetterRow};
use crate::store::{guardrail, replays, schedule};

/// Rows per page of every list: groups, a group's dead letters, held
/// commands, a release preview.
const PAGE: i64 = 50;
/// Counts on the overview stop here: an exact count of millions of rows
/// would cost more than the page is worth.
const COUNT_CAP: i64 = 10_000;
/// Scheduled commands listed.
const SCHEDULE_ROWS: i64 = 200;

type App = State<Arc<Console>>;

/// Lists are read a row past the page: `rows` cut to the page, and whether
/// there is a next one.
fn one_page<T>(mut rows: Vec<T>) -> (Vec<T>, bool) {
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    (rows, more)
}

/// Writes an audit record of what `caller` did.
async fn try_record(
    c: &Console,
    caller: &Caller,
    action: &str,
    target: &str,
    result: &str,
) -> Result<(), crate::store::StoreError> {
    let r = Record {
        actor: &caller.actor,
        session: caller.session.as_ref().map(|(short, _)| short.as_str()),
        remote: Some(&caller.remote.to_string()),
        action,
        target: Some(target),
        result,
    };
    audit::record(&c.pool, &r).await
}

/// Records an action already done: a failure to record is logged, the
/// action stands.
async fn record(c: &Console, caller: &Caller, action: &str, target: &str, result: &str) {
    if let Err(e) = try_record(c, caller, action, target, result).await {
        tracing::error!(error = %e, action, "console: the audit record could not be written");
    }
}

// ---------------------------------------------------------------- login

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    token: String,
}

pub async fn login_form() -> Markup {
    login_page(None)
}

fn login_page(error: Option<&str>) -> Markup {
    page(
        "Log in",
        "",
        None,
        html! {
            div.login {
                @if let Some(e) = error { div.notice.bad role="alert" id="login-error" { (e) } }
                form method="post" action="/login" {
                    label { "Your name (for the audit records)"
                        input name="name" autocomplete="username" required maxlength="64" autofocus; }
                    label { "Console token"
                        input name="token" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

pub async fn login(
    State(c): App,
    Extension(Client(from)): Extension<Client>,
    connection: Option<Extension<Connection>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    match c.auth.login(from, &f.name, &f.token) {
        Ok(id) => {
            if let Some(Extension(connection)) = connection {
                connection.carried_an_operator();
            }
            let operator = Caller {
                actor: format!("console:{}", f.name.trim()),
                session: None,
                remote: from,
            };
            record(&c, &operator, "login", "console", "ok").await;
            let cookie = c.cookie.set(&id, came_over_tls(&headers));
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        // Counted for the audit by `auth`, not written per request.
        Err(LoginError::RateLimited) => auth::too_many(),
        Err(LoginError::WrongToken) => {
            (StatusCode::UNAUTHORIZED, login_page(Some("Wrong token."))).into_response()
        }
        Err(LoginError::BadName) => (
            StatusCode::BAD_REQUEST,
            login_page(Some("Give your name: up to 64 printable characters.")),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(c): App,
    caller: Caller,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = caller.csrf_refusal(&f.csrf) {
        return r;
    }
    if let Some(id) = c.cookie.read(&headers) {
        c.auth.logout(&id);
    }
    let expired = c.cookie.expired(came_over_tls(&headers));
    ([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response()
}

/// Whether a TLS-terminating proxy says the browser used https.
fn came_over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https")
}

// ---------------------------------------------------------------- overview

pub async fn overview(State(c): App, caller: Caller) -> Response {
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
    let (dead, held, scheduled) = match counts.await {
        Ok(n) => n,
        Err(e) => return view::failure(Some(&caller), &e),
    };
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
    page("Overview", "/", Some(&caller), content).into_response()
}

// ---------------------------------------------------------------- dead letters

#[derive(Deserialize)]
pub struct TenantQuery {
    tenant: Option<String>,
}

#[derive(Deserialize)]
pub struct GroupsQuery {
    tenant: Option<String>,
    /// The last group of the previous page, and its count.
    after: Option<String>,
    after_count: Option<i64>,
}

pub async fn groups(State(c): App, caller: Caller, Query(q): Query<GroupsQuery>) -> Response {
    let tenant = q.tenant.filter(|t| !t.is_empty());
    let after = q.after_count.zip(q.after.as_deref());
    let groups = match replays::groups_page(&c.pool, tenant.as_deref(), after, PAGE + 1).await {
        Ok(g) => g,
        Err(e) => return view::failure(Some(&caller), &e),
    };
    let (groups, more) = one_page(groups);
    // Links keep the tenant filter.
    let link = |after: Option<(i64, &str)>| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(t) = &tenant {
            query.append_pair("tenant", t);
        }
        if let Some((count, group)) = after {
            query
                .append_pair("after_count", &count.to_string())
                .append_pair("after", group);
        }
        format!("/dead-letters?{}", query.finish())
    };
    let first = after.map(|_| link(None));
    let next = more
        .then(|| groups.last())
        .flatten()
        .map(|g| link(Some((g.count, &g.group))));
    let content = html! {
        form.actions method="get" action="/dead-letters" {
            label { "Tenant" input name="tenant" value=[tenant.as_deref()]; }
            button.secondary type="submit" { "Filter" }
        }
        p.muted { "Dead letters not yet replayed successfully, by failure cause. Messages show their template: quoted values are replaced." }
        table id="groups" {
            thead { tr { th { "Group" } th.num { "Rows" } th { "Code" } th { "Type" } th { "Cause" } th { "Tenants" } th { "Last failed" } } }
            tbody {
                @for g in &groups {
                    tr {
                        td { a href={"/dead-letters/groups/" (g.group)} { (g.group) } }
                        td.num { (g.count) }
                        td { (g.code) }
                        td { (g.command_type.as_deref().unwrap_or("-")) }
                        td.text { (g.template) }
                        td { (g.tenants.join(", ")) }
                        td { (when(g.last_failed_at)) }
                    }
                }
            }
        }
        @if groups.is_empty() { p { "No dead letters waiting." } }
        nav aria-label="Pages" {
            @if let Some(first) = &first { a href=(first) { "First page" } " " }
            @if let Some(next) = &next { a href=(next) rel="next" { "Next page" } }
        }
    };
    page("Dead letters", "/dead-letters", Some(&caller), content).into_response()
}

#[derive(Deserialize)]
pub struct PageQuery {
    after: Option<i64>,
}

pub async fn group(
    State(c): App,
    caller: Caller,
    Path(group): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let loaded = async {
        let g = replays::group(&c.pool, &group).await?;
        let rows = journal::group_page(&c.pool, &group, q.after.unwrap_or(0), PAGE + 1).await?;
        Ok::<_, crate::store::StoreError>((g, rows))
    };
    let (g, rows) = match loaded.await {
        Ok((Some(g), rows)) => (g, rows),
        Ok((None, _)) => {
            return view::not_found(&caller, "No unresolved dead letters in this group.")
        }
        Err(e) => return view::failure(Some(&caller), &e),
    };
    let (rows, more) = one_page(rows);
    let next = more.then(|| rows.last().map(|r| r.id)).flatten();
    let content = html! {
        dl.meta {
            dt { "Code" } dd { (g.code) }
            dt { "Type" } dd { (g.command_type.as_deref().unwrap_or("-")) }
            dt { "Cause" } dd { (g.template) }
            dt { "Rows" } dd id="group-count" { (g.count) }
            dt { "Tenants" } dd { (g.tenants.join(", ")) }
            dt { "Failed" } dd { (when(g.first_failed_at)) " to " (when(g.last_failed_at)) }
        }
        div.actions {
            form method="post" action={"/dead-letters/groups/" (g.group) "/replay"} {
                (csrf_field(&caller))
                button type="submit" id="replay-group" { "Replay all pending" }
            }
            form method="post" action={"/dead-letters/groups/" (g.group) "/replay"} {
                (csrf_field(&caller))
                label { "Canary rows" input name="canary" type="number" min="1" value="1" size="4"; }
                label { "Wait (s)" input name="canary_timeout" type="number" min="1" value="60" size="4"; }
                button type="submit" id="canary-replay" { "Canary replay" }
            }
        }
        (dead_letter_table(&rows))
        nav aria-label="Pages" {
            @if q.after.is_some() { a href={"/dead-letters/groups/" (g.group)} { "First page" } " " }
            @if let Some(id) = next { a href={"/dead-letters/groups/" (g.group) "?after=" (id)} rel="next" { "Next page" } }
        }
    };
    let title = format!("Failure group {}", g.group);
    page(&title, "/dead-letters", Some(&caller), content).into_response()
}

fn dead_letter_table(rows: &[DeadLetterRow]) -> Markup {
    html! {
        table id="dead-letters" {
            thead { tr { th.num { "Id" } th { "Tenant" } th { "Type" } th { "Command" } th.num { "Failures" } th { "Last failed" } th { "Replayed" } } }
            tbody {
                @for r in rows {
                    tr {
                        td.num { a href={"/dead-letters/" (r.id)} { (r.id) } }
                        td { (r.tenant_id.as_deref().unwrap_or("-")) }
                        td { (r.command_type.as_deref().unwrap_or("-")) }
                        td.text { (r.command_id.as_deref().unwrap_or("-")) }
                        td.num { (r.failure_count) }
                        td { (when(r.last_failed_at)) }
                        td { @match (r.replayed_at.is_some(), r.pending) {
                            (false, _) => "no",
                            (true, false) => "yes",
                            (true, true) => "failed again",
                        } }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    canary: Option<String>,
    canary_timeout: Option<String>,
}

pub async fn replay_group(
    State(c): App,
    caller: Caller,
    Path(group): Path<String>,
    Form(f): Form<ReplayForm>,
) -> Response {
    if let Some(r) = caller.csrf_refusal(&f.csrf) {
        return r;
    }
    let number = |s: &Option<String>| {
        s.as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse::<u64>)
    };
    let canary = match (number(&f.canary), number(&f.canary_timeout)) {
        (None, _) => None,
        (Some(Ok(n)), None) if n > 0 => Some((n as usize, Duration::from_secs(60))),
        (Some(Ok(n)), Some(Ok(t))) if n > 0 && t > 0 => Some((n as usize, Duration::from_secs(t))),
        _ => {
            return view::outcome(
                &caller,
                "/dead-letters",
                false,
                "The canary needs a number of rows and a wait in seconds, both at least 1.",
                ("/dead-letters", "Back to the groups"),
            )
        }
    };
    let action = if canary.is_some() {
        "canary replay"
    } else {
        "replay"
    };
    let filter = match replay::replay_filter(vec![], false, None, None, Some(group.clone())) {
        Ok(f) => f,
        Err(e) => return view::failure(Some(&caller), &e),
    };
    let result = run_replay(&c, &caller, &filter, canary).await;
    let target = format!("group {group}");
    let back = format!("/dead-letters/groups/{group}");
    finish_replay(
        &c,
        &caller,
        action,
        &target,
        result,
        (&back, "Back to the group"),
    )
    .await
}

async fn run_replay(
    c: &Console,
    caller: &Caller,
    filter: &journal::DeadLetterFilter,
    canary: Option<(usize, Duration)>,
) -> Result<replay::Report, ReplayError> {
    let selected = replay::select(&c.pool, filter).await?;
    let who = replay::operator(&c.settings, caller.actor.clone())?;
    replay::replay(&c.settings, &c.pool, selected, &who, canary, &mut |_| {}).await
}

async fn finish_replay(
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

pub async fn dead_letter(State(c): App, caller: Caller, Path(id): Path<i64>) -> Response {
    detail(&c, &caller, id, false).await
}

pub async fn reveal(
    State(c): App,
    caller: Caller,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = caller.csrf_refusal(&f.csrf) {
        return r;
    }
    detail(&c, &caller, id, true).await
}

/// A dead letter: masked, or revealed (recorded first: no record, no reveal).
async fn detail(c: &Console, caller: &Caller, id: i64, revealed: bool) -> Response {
    let row = match replay::find(&c.pool, id).await {
        Ok(r) => r,
        Err(ReplayError::NotFound(m)) => return view::not_found(caller, &m),
        Err(e) => return view::failure(Some(caller), &e),
    };
    if revealed {
        let target = format!("dead_letter {id}");
        if let Err(e) = try_record(c, caller, "reveal", &target, "shown").await {
            return view::failure(Some(caller), &e);
        }
    }
    let history = match replays::history(&c.pool, id).await {
        Ok(h) => h,
        Err(e) => return view::failure(Some(caller), &e),
    };
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
    page(&title, "/dead-letters", Some(caller), content).into_response()
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
) -> Response {
    if let Some(r) = caller.csrf_refusal(&f.csrf) {
        return r;
    }
    let result = match replay::replay_filter(vec![id], false, None, None, None) {
        Ok(filter) => run_replay(&c, &caller, &filter, None).await,
        Err(e) => Err(e),
    };
    let back = format!("/dead-letters/{id}");
    let target = format!("dead_letter {id}");
    finish_replay(
        &c,
        &caller,
        "replay",
        &target,
        result,
        (&back, "Back to the dead letter"),
    )
    .await
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
) -> Response {
    if let Some(r) = caller.csrf_refusal(&f.csrf) {
        return r;
    }
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
    finish_replay(
        &c,
        &caller,
        "edit",
        &target,
        result,
        (&back, "Back to the dead letter"),
    )
    .await
}

// ---------------------------------------------------------------- guardrail

/// Tenants shown on the guardrail page (tripped ones first).
const GUARD_TENANTS: i64 = 200;

pub async fn guard(State(c): App, caller: Caller, Query(q): Query<PageQuery>) -> Response {
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
    let (status, waiting, held) = match loaded.await {
        Ok(x) => x,
        Err(e) => return view::failure(Some(&caller), &e),
    };
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
    page("Guardrail", "/guard", Some(&caller), content).into_response()
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
) -> Response {
    let Some(sel) = selection(&q.holds) else {
        return view::not_found(&caller, "Name the holds: ids separated by commas, or all.");
    };
    // One page, in one transaction that is rolled back: what the first
    // held commands would do, not a long transaction over all of them.
    let loaded = async {
        let results = guard::preview(&c.settings, &c.pool, &tenant, &sel, Some(PAGE)).await?;
        let total = guardrail::count_selected(&c.pool, &tenant, sel.ids()).await?;
        Ok::<_, guard::GuardError>((results, total))
    };
    let (results, total) = match loaded.await {
        Ok(r) => r,
        Err(e) => return view::failure(Some(&caller), &e),
    };
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
    page(&title, "/guard", Some(&caller), content).into_response()
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
) -> Response {
    guard_action(&c, &caller, &tenant, &f, true).await
}

pub async fn discard(
    State(c): App,
    caller: Caller,
    Path(tenant): Path<String>,
    Form(f): Form<HoldsForm>,
) -> Response {
    guard_action(&c, &caller, &tenant, &f, false).await
}

async fn guard_action(
    c: &Console,
    caller: &Caller,
    tenant: &str,
    f: &HoldsForm,
    release: bool,
) -> Response {
    if let Some(r) = caller.csrf_refusal(&f.csrf) {
        return r;
    }
    let back = ("/guard", "Back to the guardrail");
    let Some(sel) = selection(&f.holds) else {
        return view::outcome(
            caller,
            "/guard",
            false,
            "Name the holds: ids separated by commas, or all.",
            back,
        );
    };
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
    view::outcome(caller, "/guard", ok, &message, back)
}

// ---------------------------------------------------------------- schedule

pub async fn schedule(State(c): App, caller: Caller, Query(q): Query<TenantQuery>) -> Response {
    let tenant = q.tenant.filter(|t| !t.is_empty());
    let rows = match schedule::list(&c.pool, tenant.as_deref(), Some(SCHEDULE_ROWS)).await {
        Ok(r) => r,
        Err(e) => return view::failure(Some(&caller), &e),
    };
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
    page("Scheduled commands", "/schedule", Some(&caller), content).into_response()
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
    tenant: String,
    command_id: String,
}

pub async fn cancel(State(c): App, caller: Caller, Form(f): Form<CancelForm>) -> Response {
    if let Some(r) = caller.csrf_refusal(&f.csrf) {
        return r;
    }
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
    view::outcome(
        &caller,
        "/schedule",
        ok,
        &message,
        ("/schedule", "Back to the schedule"),
    )
}

// ---------------------------------------------------------------- audit

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
