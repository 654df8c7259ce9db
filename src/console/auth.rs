//! Who may use the console: the bearer token `http.console_token`, or a
//! session opened by logging in with it (an HttpOnly, SameSite=Strict
//! cookie). Logins are rate-limited per client address; sessions expire.
//!
//! Anyone who reaches the port can fail, so failing costs the console a
//! bounded amount of memory and no database write: the rate limit keeps at
//! most [`MAX_TRACKED`] windows and expires them oldest first (no walk over
//! every entry), and the failures for the audit are counted in memory and
//! written as counts every few seconds ([`Auth::record_failures`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::client::Client;
use super::server::Connection;
use super::Console;
use crate::store::audit::{self, FailedLogins};
use crate::store::StoreError;
use sqlx::PgPool;

/// The session cookie's name on loopback; elsewhere with `__Host-` before it.
const COOKIE_NAME: &str = "lw_console";
/// A session unused this long is closed.
const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session lasts at most this long, however busy.
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Failed logins from one address within [`FAILURE_WINDOW`] before further
/// attempts are refused until the window has passed.
pub const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Clients whose failures the rate limit remembers at once; past it the
/// oldest window is forgotten (that client may try again early, no one
/// else is affected).
const MAX_TRACKED: usize = 10_000;
/// (Minute, client, result) counts waiting for the audit; past it, new
/// clients are counted together.
const MAX_UNRECORDED: usize = 10_000;
/// What the audit calls clients counted together.
const OTHER_CLIENTS: &str = "other addresses";

#[derive(Clone)]
struct Session {
    person: String,
    csrf: String,
    short: String,
    opened: Instant,
    last_seen: Instant,
}

pub struct Auth {
    token_digest: [u8; 32],
    sessions: Mutex<HashMap<String, Session>>,
    limiter: Mutex<Limiter>,
    unrecorded: Mutex<Unrecorded>,
}

/// Failures per client in a fixed window from its first failure.
#[derive(Default)]
struct Limiter {
    /// Failures in the client's current window.
    windows: HashMap<IpAddr, usize>,
    /// Every window's start and client, oldest first (one entry per window):
    /// expiry and eviction pop from the front.
    starts: VecDeque<(Instant, IpAddr)>,
}

impl Limiter {
    fn expire(&mut self, now: Instant) {
        while let Some(&(since, client)) = self.starts.front() {
            if now.duration_since(since) < FAILURE_WINDOW {
                break;
            }
            self.starts.pop_front();
            self.windows.remove(&client);
        }
    }

    fn limited(&mut self, client: IpAddr, now: Instant) -> bool {
        self.expire(now);
        self.windows
            .get(&client)
            .is_some_and(|n| *n >= MAX_FAILURES)
    }

    fn fail(&mut self, client: IpAddr, now: Instant) {
        self.expire(now);
        if let Some(n) = self.windows.get_mut(&client) {
            *n = n.saturating_add(1);
            return;
        }
        if self.windows.len() >= MAX_TRACKED {
            if let Some((_, oldest)) = self.starts.pop_front() {
                self.windows.remove(&oldest);
            }
        }
        self.windows.insert(client, 1);
        self.starts.push_back((now, client));
    }
}

/// The key the rate limit counts under: the address, or for IPv6 its /64
/// (one host usually holds a whole /64 and could step through it).
fn limit_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into()),
        v4 => v4,
    }
}

/// Failed attempts not yet written to the audit.
#[derive(Default)]
struct Unrecorded(HashMap<UnrecordedKey, u32>);

/// (minute, client or `None` for clients counted together, result).
type UnrecordedKey = (OffsetDateTime, Option<IpAddr>, &'static str);

impl Unrecorded {
    fn add(&mut self, mut key: UnrecordedKey, n: u32) {
        if self.0.len() >= MAX_UNRECORDED && !self.0.contains_key(&key) {
            key.1 = None;
        }
        let count = self.0.entry(key).or_default();
        *count = count.saturating_add(n);
    }
}

/// What the audit says of a failure.
const WRONG_TOKEN: &str = "wrong token";
const REFUSED: &str = "refused: rate limited";

fn this_minute() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now)
}

/// Why a login did not open a session.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Too many failures from this address lately.
    RateLimited,
    WrongToken,
    /// The name is empty, too long or not printable.
    BadName,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source");
    hex::encode(&buf)
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub fn new(token: &SecretString) -> Auth {
        Auth {
            token_digest: digest(token.expose_secret()),
            sessions: Mutex::default(),
            limiter: Mutex::default(),
            unrecorded: Mutex::default(),
        }
    }

    /// Digests are compared, so neither the token's length nor its
    /// content shows in the time taken.
    fn token_matches(&self, given: &str) -> bool {
        same(&digest(given), &self.token_digest)
    }

    /// Counts a wrong token from `from`, for the limit and the audit.
    fn fail(&self, from: IpAddr) {
        let now = Instant::now();
        self.limiter
            .lock()
            .expect("limiter lock")
            .fail(limit_key(from), now);
        self.unrecord(from, WRONG_TOKEN);
    }

    /// Whether `from` failed too often lately; a refusal is counted for
    /// the audit.
    fn refused(&self, from: IpAddr) -> bool {
        let now = Instant::now();
        let limited = self
            .limiter
            .lock()
            .expect("limiter lock")
            .limited(limit_key(from), now);
        if limited {
            self.unrecord(from, REFUSED);
        }
        limited
    }

    fn unrecord(&self, from: IpAddr, result: &'static str) {
        self.unrecorded
            .lock()
            .expect("unrecorded lock")
            .add((this_minute(), Some(from), result), 1);
    }

    /// Writes the failures counted so far to the audit, as counts; what
    /// cannot be written is kept for the next call.
    pub async fn record_failures(&self, pool: &PgPool) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.unrecorded.lock().expect("unrecorded lock"));
        if taken.0.is_empty() {
            return Ok(());
        }
        let counts: Vec<FailedLogins> = taken
            .0
            .iter()
            .map(|(&(minute, client, result), &count)| FailedLogins {
                minute,
                remote: client.map_or_else(|| OTHER_CLIENTS.to_owned(), |c| c.to_string()),
                result,
                count,
            })
            .collect();
        let written = audit::count_failed_logins(pool, &counts).await;
        if written.is_err() {
            let mut unrecorded = self.unrecorded.lock().expect("unrecorded lock");
            for (key, n) in taken.0 {
                unrecorded.add(key, n);
            }
        }
        written
    }

    /// Opens a session for `person`; returns its cookie value.
    pub fn login(&self, from: IpAddr, person: &str, token: &str) -> Result<String, LoginError> {
        if self.refused(from) {
            return Err(LoginError::RateLimited);
        }
        if !self.token_matches(token) {
            self.fail(from);
            return Err(LoginError::WrongToken);
        }
        let person = person.trim();
        if person.is_empty() || person.chars().count() > 64 || person.chars().any(char::is_control)
        {
            return Err(LoginError::BadName);
        }
        let id = random_hex(32);
        let now = Instant::now();
        let session = Session {
            person: person.to_owned(),
            csrf: random_hex(32),
            short: random_hex(4),
            opened: now,
            last_seen: now,
        };
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, s| live(s, now));
        sessions.insert(id.clone(), session);
        Ok(id)
    }

    pub fn logout(&self, id: &str) {
        self.sessions.lock().expect("sessions lock").remove(id);
    }

    fn session(&self, id: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let now = Instant::now();
        let s = sessions.get_mut(id)?;
        if !live(s, now) {
            sessions.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.opened) < LIFETIME
}

/// An authenticated request's caller.
#[derive(Clone)]
pub struct Caller {
    /// For the records: `console:<name>` or `bearer`.
    pub actor: String,
    /// The session's short, non-secret name, and its synchronizer token.
    pub session: Option<(String, String)>,
    pub remote: IpAddr,
}

impl Caller {
    /// The synchronizer token forms carry (empty for bearer callers, whose
    /// header a cross-site page cannot send).
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |(_, csrf)| csrf)
    }

    /// A state-changing request from a session must carry its token:
    /// whether it does (a bearer caller has none to carry).
    pub fn csrf_matches(&self, given: &str) -> bool {
        match &self.session {
            Some((_, csrf)) => same(csrf.as_bytes(), given.as_bytes()),
            None => true,
        }
    }
}

/// Without the session's token: it is a secret of the session.
impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("actor", &self.actor)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// The client's address ([`super::client`]).
pub fn remote(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<Client>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0)
}

/// The session cookie, by where the console listens. Off loopback it is
/// `__Host-` prefixed and always `Secure`: a browser then only accepts it
/// over https, for this host alone (no `Domain`, `Path=/`), so neither a
/// plain-HTTP hop nor a sibling subdomain can set or read it. On loopback
/// over plain HTTP (a local or SSH-tunnelled console) a Secure cookie
/// would not be kept, so it is `Secure` only when a TLS-terminating proxy
/// says the browser used https.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCookie {
    exposed: bool,
}

impl SessionCookie {
    pub fn for_listen(listen: SocketAddr) -> SessionCookie {
        SessionCookie {
            exposed: !listen.ip().to_canonical().is_loopback(),
        }
    }

    fn name(&self) -> &'static str {
        if self.exposed {
            "__Host-lw_console"
        } else {
            COOKIE_NAME
        }
    }

    fn attributes(&self, value: &str, max_age: u64, tls: bool) -> String {
        let secure = if self.exposed || tls { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
            self.name()
        )
    }

    /// `Set-Cookie` for a new session; `tls`: the browser came over https.
    pub fn set(&self, id: &str, tls: bool) -> String {
        self.attributes(id, LIFETIME.as_secs(), tls)
    }

    /// `Set-Cookie` that clears it.
    pub fn expired(&self, tls: bool) -> String {
        self.attributes("", 0, tls)
    }

    /// The session id a request carries under the name in use.
    pub fn read(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.name();
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    }
}

/// The request's connection carried an operator's request: it is kept
/// when the console makes room for new ones ([`super::server`]).
fn operator_connection(parts: &Parts) {
    if let Some(c) = parts.extensions.get::<Connection>() {
        c.carried_an_operator();
    }
}

impl FromRequestParts<Arc<Console>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let remote = remote(parts);
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let given = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if console.auth.refused(remote) {
                return Err(too_many());
            }
            if !console.auth.token_matches(given) {
                console.auth.fail(remote);
                return Err((StatusCode::UNAUTHORIZED, "wrong token").into_response());
            }
            operator_connection(parts);
            return Ok(Caller {
                actor: "bearer".into(),
                session: None,
                remote,
            });
        }
        let session = console
            .cookie
            .read(&parts.headers)
            .and_then(|id| console.auth.session(&id));
        if session.is_some() {
            operator_connection(parts);
        }
        match session {
            Some(s) => Ok(Caller {
                actor: format!("console:{}", s.person),
                session: Some((s.short, s.csrf)),
                remote,
            }),
            None if parts.method == Method::GET => Err(Redirect::to("/login").into_response()),
            None => Err((StatusCode::UNAUTHORIZED, "log in first").into_response()),
        }
    }
}

pub fn too_many() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, "60")],
        "too many failed logins from this address; try again in a minute",
    )
        .into_response()
}

/// Whether a request came from another site or origin, as far as the
/// browser says: `Sec-Fetch-Site`, else `Origin` against `Host`.
pub fn cross_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    // A browser that sends Sec-Fetch-Site says exactly this; its Origin
    // can be `null` for a same-origin form under some referrer policies.
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (text(ORIGIN.as_str()), text(HOST.as_str())) {
        (Some(origin), Some(host)) => {
            origin != format!("http://{host}") && origin != format!("https://{host}")
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&SecretString::from("t".repeat(32)))
    }

    #[test]
    fn a_login_needs_the_token_and_a_name() {
        let a = auth();
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(a.login(ip, "ana", "wrong"), Err(LoginError::WrongToken));
        assert_eq!(a.login(ip, " ", &"t".repeat(32)), Err(LoginError::BadName));
        assert_eq!(
            a.login(ip, "a\u{1b}b", &"t".repeat(32)),
            Err(LoginError::BadName)
        );
        let id = a.login(ip, "ana", &"t".repeat(32)).unwrap();
        let s = a.session(&id).unwrap();
        assert_eq!(s.person, "ana");
        assert_ne!(s.csrf, id);
        a.logout(&id);
        assert!(a.session(&id).is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let a = auth();
        let (ip, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..MAX_FAILURES {
            assert_eq!(a.login(ip, "x", "wrong"), Err(LoginError::WrongToken));
        }
        // Even the right token is refused while limited.
        assert_eq!(
            a.login(ip, "x", &"t".repeat(32)),
            Err(LoginError::RateLimited)
        );
        assert!(a.login(other, "x", &"t".repeat(32)).is_ok());
    }

    #[test]
    fn a_window_ends_a_minute_after_its_first_failure() {
        let mut l = Limiter::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            l.fail(ip, t0 + Duration::from_secs(i as u64));
        }
        assert!(l.limited(ip, t0 + FAILURE_WINDOW - Duration::from_millis(1)));
        assert!(!l.limited(ip, t0 + FAILURE_WINDOW));
        assert!(l.windows.is_empty() && l.starts.is_empty(), "expired");
    }

    #[test]
    fn the_limiter_keeps_a_bounded_number_of_windows_oldest_out_first() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let client = |i: usize| IpAddr::from((i as u32 + 1).to_be_bytes());
        let first = client(0);
        for _ in 0..MAX_FAILURES {
            l.fail(first, t0);
        }
        for i in 1..=MAX_TRACKED {
            l.fail(client(i), t0 + Duration::from_millis(1));
        }
        assert_eq!(l.windows.len(), MAX_TRACKED);
        assert_eq!(l.starts.len(), MAX_TRACKED);
        assert!(!l.limited(first, t0), "the oldest window made room");
        assert!(l.windows.contains_key(&client(MAX_TRACKED)));
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_bit_prefix() {
        let a = auth();
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        for i in 0..MAX_FAILURES as u16 {
            assert_eq!(a.login(host(i), "x", "wrong"), Err(LoginError::WrongToken));
        }
        assert_eq!(
            a.login(host(999), "x", &"t".repeat(32)),
            Err(LoginError::RateLimited)
        );
        let elsewhere = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(a.login(elsewhere, "x", &"t".repeat(32)).is_ok());
    }

    #[test]
    fn failures_wait_for_the_audit_as_bounded_counts() {
        let a = auth();
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..500 {
            let _ = a.login(ip, "x", "wrong");
        }
        let counts = a.unrecorded.lock().unwrap();
        let by_result = |r| {
            counts
                .0
                .iter()
                .filter(|((_, c, result), _)| *c == Some(ip) && *result == r)
                .map(|(_, n)| *n)
                .sum::<u32>()
        };
        assert_eq!(by_result(WRONG_TOKEN), MAX_FAILURES as u32);
        assert_eq!(by_result(REFUSED), 500 - MAX_FAILURES as u32);
        drop(counts);
        let mut u = Unrecorded::default();
        let minute = this_minute();
        for i in 0..MAX_UNRECORDED as u32 + 10 {
            u.add(
                (minute, Some(IpAddr::from(i.to_be_bytes())), WRONG_TOKEN),
                1,
            );
        }
        assert_eq!(u.0.len(), MAX_UNRECORDED + 1, "the rest counted together");
        assert_eq!(u.0[&(minute, None, WRONG_TOKEN)], 10);
    }

    #[test]
    fn cross_origin_requests_are_recognised() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(!cross_origin(&h(&[("host", "127.0.0.1:9465")])));
        assert!(!cross_origin(&h(&[
            ("host", "a:1"),
            ("origin", "http://a:1")
        ])));
        assert!(cross_origin(&h(&[
            ("host", "a:1"),
            ("origin", "http://a:2")
        ])));
        assert!(cross_origin(&h(&[("host", "a:1"), ("origin", "null")])));
        assert!(cross_origin(&h(&[
            ("host", "a:1"),
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!cross_origin(&h(&[
            ("host", "a:1"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let local = SessionCookie::for_listen("127.0.0.1:9465".parse().unwrap());
        let mut m = HeaderMap::new();
        m.insert(COOKIE, "a=1; lw_console=abc; b=2".parse().unwrap());
        assert_eq!(local.read(&m).as_deref(), Some("abc"));
        m.insert(COOKIE, "lw_console_x=1".parse().unwrap());
        assert_eq!(local.read(&m), None);
        // Each reads the name it sets, and only that one.
        let exposed = SessionCookie::for_listen("0.0.0.0:9465".parse().unwrap());
        m.insert(
            COOKIE,
            "lw_console=abc; __Host-lw_console=def".parse().unwrap(),
        );
        assert_eq!(exposed.read(&m).as_deref(), Some("def"));
        assert_eq!(local.read(&m).as_deref(), Some("abc"));
        m.insert(COOKIE, "lw_console=abc".parse().unwrap());
        assert_eq!(exposed.read(&m), None);
    }

    #[test]
    fn off_loopback_the_session_cookie_is_host_prefixed_and_secure() {
        for listen in [
            "0.0.0.0:9465",
            "10.1.2.3:9465",
            "[::]:9465",
            "[2001:db8::1]:443",
        ] {
            let c = SessionCookie::for_listen(listen.parse().unwrap());
            for tls in [false, true] {
                let set = c.set("abc", tls);
                assert_eq!(
                    set,
                    "__Host-lw_console=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure",
                    "{listen}"
                );
                // `__Host-` also needs Secure and Path=/ (and no Domain) to
                // be cleared.
                assert_eq!(
                    c.expired(tls),
                    "__Host-lw_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
                );
            }
        }
        for listen in ["127.0.0.1:9465", "127.0.0.2:1", "[::1]:9465"] {
            let c = SessionCookie::for_listen(listen.parse().unwrap());
            // As before: Secure only when a TLS-terminating proxy says so.
            assert_eq!(
                c.set("abc", false),
                "lw_console=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200",
                "{listen}"
            );
            assert_eq!(
                c.set("abc", true),
                "lw_console=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure"
            );
            assert_eq!(
                c.expired(false),
                "lw_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            );
        }
    }
}
