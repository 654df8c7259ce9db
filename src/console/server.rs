//! The console's listener. Anyone who can reach the port can open
//! connections, and each is a file descriptor of the process, shared with
//! its AMQP and database connections; so the console serves HTTP/1.1 with
//! hyper directly, within bounds:
//! - a header timeout: a client has `http.console_header_timeout_secs` to
//!   send a request's head, counted from when its connection opened or its
//!   previous response was sent. hyper starts that timer whenever it waits
//!   for a head, so a connection that never sends a byte and an idle
//!   kept-alive one are closed by it too, not only a slow head;
//! - an idle timeout: a connection that moves no byte either way for
//!   `http.console_idle_timeout_secs` while a request's body is read or its
//!   response written is closed (a handler's own waiting, a canary's, is
//!   not idleness);
//! - a cap: at most `http.console_max_connections` connections, a semaphore
//!   permit each. At the cap a new connection closes the oldest one that
//!   has not carried an operator's (authenticated) request, so connections
//!   held open by others cannot keep an operator out; when every one is an
//!   operator's, the new one is answered 503.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::{counter, gauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::config::HttpSettings;

/// Largest request body read: forms, an edited dead-letter body among them.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Largest request head (hyper's read buffer; its default is about 400 KB
/// a connection).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// After an accept error other than the peer's (out of file descriptors),
/// the pause before the next accept, so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);
/// How long room made by closing a connection may take to become free.
const ROOM_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn new(http: &HttpSettings) -> Limits {
        Limits {
            max_connections: http.console_max_connections,
            header_timeout: Duration::from_secs(http.console_header_timeout_secs),
            idle_timeout: Duration::from_secs(http.console_idle_timeout_secs),
        }
    }
}

/// What the cap knows of an open connection.
struct Conn {
    shed: CancellationToken,
    operator: AtomicBool,
}

/// The connection a request came on, in every request's extensions: the
/// authentication marks it an operator's, which keeps it from being closed
/// to make room.
#[derive(Clone)]
pub struct Connection(Arc<Conn>);

impl Connection {
    pub fn carried_an_operator(&self) {
        self.0.operator.store(true, Ordering::Relaxed);
    }
}

/// The open connections, in the order they were accepted.
#[derive(Default)]
struct Open {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Open {
    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            shed: CancellationToken::new(),
            operator: AtomicBool::new(false),
        });
        self.conns
            .lock()
            .expect("connections lock")
            .insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().expect("connections lock").remove(&id);
    }

    /// Closes the oldest connection that has not carried an operator's
    /// request; `false` when every one has. Walks at most the cap's worth
    /// of entries, and only at the cap.
    fn shed_oldest_stranger(&self) -> bool {
        let mut conns = self.conns.lock().expect("connections lock");
        let oldest = conns
            .iter()
            .find(|(_, c)| !c.operator.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| conns.remove(&id)) {
            Some(c) => {
                c.shed.cancel();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from [`Open`] when its task ends, however it ends.
struct Registered {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.remove(self.id);
        gauge!("lifecycle_console_connections").decrement(1.0);
    }
}

/// When a connection last moved a byte, and how many of its requests a
/// handler is working on.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A handler at work on a request of the connection; its end counts as
/// activity, so the response it produced is not taken for idleness.
struct Handling(Arc<Activity>);

impl Handling {
    fn start(activity: Arc<Activity>) -> Handling {
        activity.handling.fetch_add(1, Ordering::Relaxed);
        Handling(activity)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Resolves once the connection has moved no byte for `limit` while no
/// handler was working on one of its requests.
async fn idle(activity: &Activity, limit: Duration) {
    loop {
        let quiet = activity.quiet_for();
        let handling = activity.handling.load(Ordering::Relaxed) > 0;
        if !handling && quiet >= limit {
            return;
        }
        let wait = if handling { limit } else { limit - quiet };
        tokio::time::sleep(wait).await;
    }
}

/// The socket, noting every byte read or written.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets the requests
/// in hand finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Open::default());
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_the_peers(&e) => continue,
                Err(e) => {
                    warn!(error = %e, "console: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        let Some(permit) = room(&permits, &open).await else {
            refuse(&stream);
            continue;
        };
        let (id, conn) = open.add();
        gauge!("lifecycle_console_connections").increment(1.0);
        let registered = Registered {
            open: open.clone(),
            id,
        };
        tracker.spawn(connection(
            stream,
            peer,
            router.clone(),
            limits,
            conn,
            (registered, permit),
            shutdown.clone(),
        ));
    }
    // No new connections while the ones in hand finish.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// Errors of one incoming connection, not of the listener.
fn is_the_peers(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A permit for a new connection: a free one, or one made free by closing
/// the oldest connection that has not carried an operator's request.
/// `None` when every connection is an operator's.
async fn room(permits: &Arc<Semaphore>, open: &Open) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return Some(permit);
    }
    if !open.shed_oldest_stranger() {
        return None;
    }
    counter!("lifecycle_console_connections_closed_total", "reason" => "shed").increment(1);
    debug!("console: at its connection cap; the oldest connection without an operator's request was closed");
    // The closed connection's task ends at once; bounded all the same, so
    // a stuck one cannot stop the accept loop.
    tokio::time::timeout(ROOM_WAIT, permits.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Tells a connection past the cap to come back, without waiting on it.
fn refuse(stream: &TcpStream) {
    counter!("lifecycle_console_connections_closed_total", "reason" => "refused").increment(1);
    warn!("console: every connection is an operator's and the cap is reached; a new one was refused (raise http.console_max_connections?)");
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Length: 42\r\nConnection: close\r\n\r\n\
        the console is busy; try again in a moment";
    // Whatever the socket's buffer takes; the connection closes either way.
    let _ = stream.try_write(BUSY);
}

/// One connection, until it ends, is closed to make room, goes idle, or
/// the console shuts down (then the request in hand is finished first).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    conn: Arc<Conn>,
    _held: (Registered, OwnedSemaphorePermit),
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let service = {
        let (connection, activity) = (Connection(conn.clone()), activity.clone());
        hyper::service::service_fn(move |request| {
            handle(
                request,
                peer,
                router.clone(),
                connection.clone(),
                activity.clone(),
            )
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(served);
    let mut draining = false;
    loop {
        tokio::select! {
            done = served.as_mut() => {
                if let Err(e) = done {
                    if e.is_timeout() {
                        counter!("lifecycle_console_connections_closed_total", "reason" => "timeout")
                            .increment(1);
                    }
                    debug!(error = %e, "console: connection ended");
                }
                return;
            }
            () = conn.shed.cancelled() => return,
            () = idle(&activity, limits.idle_timeout) => {
                counter!("lifecycle_console_connections_closed_total", "reason" => "timeout")
                    .increment(1);
                debug!("console: idle connection closed");
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                served.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// A request: its body read whole first (so a stalled body is idleness,
/// not a handler's time), then the router.
async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    router: Router,
    connection: Connection,
    activity: Arc<Activity>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Ok(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        ));
    }
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                "the request body could not be read whole",
            ))
        }
    };
    parts.extensions.insert(ConnectInfo(peer));
    parts.extensions.insert(connection);
    let _handling = Handling::start(activity);
    let response = router
        .oneshot(Request::from_parts(parts, Body::from(body)))
        .await;
    Ok(response.unwrap_or_else(|never| match never {}))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_made_by_the_oldest_connection_without_an_operator() {
        let open = Open::default();
        let conns: Vec<_> = (0..4).map(|_| open.add().1).collect();
        Connection(conns[0].clone()).carried_an_operator();
        assert!(open.shed_oldest_stranger());
        assert!(!conns[0].shed.is_cancelled(), "an operator's stays");
        assert!(conns[1].shed.is_cancelled(), "the oldest stranger goes");
        assert!(open.shed_oldest_stranger() && open.shed_oldest_stranger());
        assert!(conns[2].shed.is_cancelled() && conns[3].shed.is_cancelled());
        assert!(!open.shed_oldest_stranger(), "only an operator's is left");
    }
}
