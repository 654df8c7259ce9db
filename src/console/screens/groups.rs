//! Dead letters by failure group: the groups, a group's rows, replaying a
//! group (whole, or a canary first).

use crate::store::dead_letters;
use crate::store::dead_letters::DeadLetterRow;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::dead_letters::{finish_replay, run_replay};
use super::{check_csrf, one_page, App, PageError, PageQuery, ShowTo, PAGE};
use crate::console::auth::Caller;
use crate::console::view::{csrf_field, page, when};
use crate::replay;
use crate::store::replays;

#[derive(Deserialize)]
pub struct GroupsQuery {
    tenant: Option<String>,
    /// The last group of the previous page, and its count.
    after: Option<String>,
    after_count: Option<i64>,
}

pub async fn groups(
    State(c): App,
    caller: Caller,
    Query(q): Query<GroupsQuery>,
) -> Result<Markup, PageError> {
    let tenant = q.tenant.filter(|t| !t.is_empty());
    let after = q.after_count.zip(q.after.as_deref());
    let groups = replays::groups_page(&c.pool, tenant.as_deref(), after, PAGE + 1)
        .await
        .show_to(&caller)?;
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
    Ok(page(
        "Dead letters",
        "/dead-letters",
        Some(&caller),
        content,
    ))
}

pub async fn group(
    State(c): App,
    caller: Caller,
    Path(group): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Markup, PageError> {
    let loaded = async {
        let g = replays::group(&c.pool, &group).await?;
        let rows =
            dead_letters::group_page(&c.pool, &group, q.after.unwrap_or(0), PAGE + 1).await?;
        Ok::<_, crate::store::StoreError>((g, rows))
    };
    let (g, rows) = loaded.await.show_to(&caller)?;
    let g = g.ok_or_else(|| {
        PageError::not_found(&caller, "No unresolved dead letters in this group.")
    })?;
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
    Ok(page(&title, "/dead-letters", Some(&caller), content))
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
) -> Result<Response, PageError> {
    check_csrf(&caller, &f.csrf)?;
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
            return Err(PageError::bad_form(
                &caller,
                "The canary needs a number of rows and a wait in seconds, both at least 1.",
                ("/dead-letters", "Back to the groups"),
            ))
        }
    };
    let action = if canary.is_some() {
        "canary replay"
    } else {
        "replay"
    };
    let filter =
        replay::replay_filter(vec![], false, None, None, Some(group.clone())).show_to(&caller)?;
    let result = run_replay(&c, &caller, &filter, canary).await;
    let target = format!("group {group}");
    let back = format!("/dead-letters/groups/{group}");
    Ok(finish_replay(
        &c,
        &caller,
        action,
        &target,
        result,
        (&back, "Back to the group"),
    )
    .await)
}
