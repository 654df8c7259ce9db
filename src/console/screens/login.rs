//! Logging in and out.

use axum::extract::State;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;

use super::{check_csrf, record, App, CsrfForm, PageError};
use crate::console::auth::Caller;
use crate::console::client::Client;
use crate::console::server::Connection;
use crate::console::view::page;

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    token: String,
}

pub async fn login_form() -> Markup {
    login_page(None)
}

pub(super) fn login_page(error: Option<&str>) -> Markup {
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
) -> Result<Response, PageError> {
    // A failure is counted for the audit by `auth`, not written per request.
    let id = c.auth.login(from, &f.name, &f.token)?;
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
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

pub async fn logout(
    State(c): App,
    caller: Caller,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&caller, &f.csrf)?;
    if let Some(id) = c.cookie.read(&headers) {
        c.auth.logout(&id);
    }
    let expired = c.cookie.expired(came_over_tls(&headers));
    Ok(([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response())
}

/// Whether a TLS-terminating proxy says the browser used https.
fn came_over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https")
}
