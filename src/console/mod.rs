//! The operations console (contract section 14): dead letters, held
//! changes and schedules in a browser, for operators who would rather look
//! than type. Served by `run` on `http.console_listen`, never on the
//! metrics port; server-rendered HTML with no script at all; the style
//! sheet is in the binary, so the page needs no network beyond this port.
//!
//! Safe by construction:
//! - every request needs the bearer token or the session a login opened
//!   ([`auth`]); logins are rate-limited per address;
//! - state-changing requests are POSTs carrying the session's synchronizer
//!   token, and any request the browser marks as coming from another
//!   origin is refused before it reaches a handler;
//! - every response forbids script, framing and foreign resources (CSP);
//! - all text goes through the templates' escaping (maud);
//! - dead-letter bodies are masked until "reveal" ([`mask`]);
//! - reveals and actions are recorded (`console_audit`), and the actions
//!   call the CLI's code (replay, guard, schedule cancel) with its rules
//!   and its records.

mod auth;
pub mod client;
mod mask;
mod screens;
mod server;
mod view;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Settings;
use crate::monitoring::Health;
use screens::{audit, dead_letters, groups, guardrail, login, overview, schedule};

pub use auth::MAX_FAILURES;

/// What every page and action shares.
pub struct Console {
    settings: Settings,
    pool: PgPool,
    health: Arc<Health>,
    auth: auth::Auth,
    cookie: auth::SessionCookie,
    proxies: client::TrustedProxies,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("http.console_listen is set but http.console_token is not: the console never runs without a token")]
    NoToken,
    #[error("http.console_listen must be host:port, like 127.0.0.1:9465")]
    Listen,
    #[error("http.console_trusted_proxies: {0}")]
    TrustedProxies(#[from] client::CidrError),
}

impl Console {
    pub fn new(
        settings: Settings,
        pool: PgPool,
        health: Arc<Health>,
    ) -> Result<Console, ConsoleError> {
        let token = settings
            .http
            .console_token
            .as_ref()
            .ok_or(ConsoleError::NoToken)?;
        let listen = settings.console_listen().ok_or(ConsoleError::Listen)?;
        Ok(Console {
            auth: auth::Auth::new(token),
            cookie: auth::SessionCookie::for_listen(listen),
            proxies: client::TrustedProxies::parse(&settings.http.console_trusted_proxies)?,
            settings,
            pool,
            health,
        })
    }
}

/// The policy every response carries: nothing but this origin's style
/// sheet and forms; no script, no frames, no plugins.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/login", get(login::login_form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/", get(overview::overview))
        .route("/dead-letters", get(groups::groups))
        .route("/dead-letters/groups/{group}", get(groups::group))
        .route(
            "/dead-letters/groups/{group}/replay",
            post(groups::replay_group),
        )
        .route("/dead-letters/{id}", get(dead_letters::dead_letter))
        .route("/dead-letters/{id}/reveal", post(dead_letters::reveal))
        .route("/dead-letters/{id}/replay", post(dead_letters::replay_one))
        .route("/dead-letters/{id}/edit", post(dead_letters::edit))
        .route("/guard", get(guardrail::guard))
        .route("/guard/{tenant}/preview", get(guardrail::preview))
        .route("/guard/{tenant}/release", post(guardrail::release))
        .route("/guard/{tenant}/discard", post(guardrail::discard))
        .route("/schedule", get(schedule::schedule))
        .route("/schedule/cancel", post(schedule::cancel))
        .route("/audit", get(audit::audit))
        .route("/assets/console.css", get(view::stylesheet))
        .layer(middleware::from_fn(same_origin_changes))
        .layer(middleware::map_response(secure_headers))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            client_address,
        ))
        .with_state(console)
}

/// Works out who the request comes from, once, for the rate limit and the
/// audit records.
async fn client_address(
    State(console): State<Arc<Console>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let client = console.proxies.client(peer, request.headers());
    request.extensions_mut().insert(client::Client(client));
    next.run(request).await
}

/// A state-changing request the browser says came from another origin is
/// refused whatever it carries.
async fn same_origin_changes(request: Request, next: Next) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes && auth::cross_origin(request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            "refused: a cross-origin request may not change anything",
        )
            .into_response();
    }
    next.run(request).await
}

async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Serves the console until `token` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Arc<Console>,
    token: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "operations console listening");
    }
    let recording = tokio::spawn(record_failures(console.clone(), token.clone()));
    let limits = server::Limits::new(&console.settings.http);
    server::serve(listener, router(console), limits, token).await;
    let _ = recording.await;
}

/// How often failed logins counted in memory are added to the audit.
const RECORD_FAILURES_EVERY: Duration = Duration::from_secs(5);

/// Adds the failed logins counted in memory to the audit every few
/// seconds, and once more at shutdown.
async fn record_failures(console: Arc<Console>, shutdown: CancellationToken) {
    loop {
        let last = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(RECORD_FAILURES_EVERY) => false,
        };
        if let Err(e) = console.auth.record_failures(&console.pool).await {
            warn!(error = %e, "console: failed logins could not be added to the audit; kept for the next try");
        }
        if last {
            return;
        }
    }
}
