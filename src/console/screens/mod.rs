//! The console's screens, one module each, with their queries and markup
//! side by side. Reading is GET; every change is a POST with the session's
//! token, recorded in `console_audit`, and done by the same code as the CLI
//! (`replay`, `guard`).

pub mod audit;
pub mod dead_letters;
mod error;
pub mod groups;
pub mod guardrail;
pub mod login;
pub mod overview;
pub mod schedule;

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;

use super::auth::Caller;
use super::Console;
use crate::store::audit::{self as audit_store, Record};
use error::{PageError, ShowTo};

/// Rows per page of every list: groups, a group's dead letters, held
/// commands, a release preview.
const PAGE: i64 = 50;

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
    audit_store::record(&c.pool, &r).await
}

/// Records an action already done: a failure to record is logged, the
/// action stands.
async fn record(c: &Console, caller: &Caller, action: &str, target: &str, result: &str) {
    if let Err(e) = try_record(c, caller, action, target, result).await {
        tracing::error!(error = %e, action, "console: the audit record could not be written");
    }
}

/// A change from a session must carry the session's token.
fn check_csrf(caller: &Caller, given: &str) -> Result<(), PageError> {
    if caller.csrf_matches(given) {
        Ok(())
    } else {
        Err(PageError::Forbidden)
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub struct PageQuery {
    after: Option<i64>,
}
