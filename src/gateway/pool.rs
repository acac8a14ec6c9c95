//! The relays' upstream connections, kept open and reused per origin (scheme and authority).
//! Decisions 019 and 020.
//!
//! - HTTP/1.1 is spoken here, inline in the calling task: the request is written straight to
//!   the connection (head and a whole body in one write), the answer's head read and parsed
//!   (`httparse`, [`super::listen::read_head`]) and its body decoded as it is read
//!   ([`super::listen::ListenBody`]). No connection task, no channel between the two: per call
//!   that saved the hand-offs hyper's client makes (the request to its connection task, the
//!   answer and every body chunk back). One request at a time per connection. Idle
//!   connections are kept most recently used first (at most [`MAX_IDLE`] per origin); one
//!   whose answer was not read to its end, broke, or said `Connection: close` is closed; one
//!   the upstream closed while idle is dropped when met (a read with no waker tells).
//! - HTTP/2 (where TLS's ALPN picks it) is hyper's (`hyper::client::conn::http2`): one
//!   connection per origin, shared by every request.
//! - A request is sent again on another connection when a reused one failed it without an
//!   answer and the whole request is at hand: the write failed (the upstream had closed the
//!   connection), or, for `GET`, `HEAD`, `OPTIONS` and `TRACE`, the upstream closed it
//!   before a byte of answer.
//! - Idle connections are closed after [`IDLE`] to [`IDLE`] + [`SWEEP`] unused.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderMap, Method, Request, Uri, header};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::{Mutex, MutexGuard};

use super::listen::{self, BoxError, Conn, Connector, Head, Length, ListenBody};
use crate::cache::FastHash;

/// How long an unused connection is kept (at least).
pub const IDLE: Duration = Duration::from_secs(90);
/// How often idle connections are looked over.
const SWEEP: Duration = Duration::from_secs(30);
/// The most idle HTTP/1.1 connections kept per origin.
const MAX_IDLE: usize = 256;
/// A request body at most this large, known in advance, goes in the same write as the head
/// (and such a request can be sent again on another connection).
const WHOLE: u64 = 64 * 1024;
/// A body chunk at most this large is copied beside its framing into one write; a larger one
/// is written as it is.
const COPY: usize = 16 * 1024;

/// A pool of upstream connections (cheap to clone: one pool).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

struct Inner {
    connector: Connector,
    origins: Mutex<HashMap<Origin, Idle, FastHash>>,
    /// Counts sweeps; an idle connection records it when it goes back.
    epoch: AtomicU32,
    sweeping: AtomicBool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    authority: Authority,
}

/// An HTTP/1.1 connection (boxed: a TLS one is large, and it moves between the idle list and
/// answers).
type H1 = Box<Conn>;

#[derive(Default)]
struct Idle {
    /// Most recently used last, with the sweep count when it went back.
    h1: Vec<(H1, u32)>,
    h2: Option<http2::SendRequest<Body>>,
}

enum Sender {
    H1(H1),
    H2(http2::SendRequest<Body>),
}

/// Why an exchange failed.
#[derive(Debug)]
pub struct Error {
    stage: &'static str,
    source: BoxError,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.stage)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

fn error(stage: &'static str) -> impl FnOnce(BoxError) -> Error {
    move |source| Error { stage, source }
}

/// How an HTTP/1.1 exchange failed.
enum Failed {
    /// The caller's body failed (or did not match its `Content-Length`): nothing to retry.
    Body(BoxError),
    /// Writing the request failed (the connection is broken).
    Writing(io::Error),
    /// Reading the answer's head failed.
    Reading(io::Error),
}

impl Pool {
    pub fn new(connector: Connector) -> Self {
        Self {
            inner: Arc::new(Inner {
                connector,
                origins: Mutex::new(HashMap::default()),
                epoch: AtomicU32::new(0),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `request` (absolute URI) on an idle connection to its origin, or a new one, and
    /// returns the answer's head; its body hands the connection back when read to its end.
    pub async fn send(&self, mut request: Request<Body>) -> Result<(Head, PooledBody), Error> {
        let origin = Origin::of(request.uri()).map_err(error("upstream URL"))?;
        loop {
            let (sender, reused) = self.sender(&origin, request.uri()).await?;
            match sender {
                Sender::H1(conn) => return self.send_h1(origin, conn, reused, request).await,
                Sender::H2(mut sender) => match sender.try_send_request(request).await {
                    Ok(answer) => {
                        let (head, body) = answer.into_parts();
                        let head = Head {
                            status: head.status,
                            headers: head.headers,
                        };
                        return Ok((head, PooledBody(Kind::H2(body))));
                    }
                    Err(mut refused) => match refused.take_message() {
                        // Not sent: the upstream closed the connection while it was idle.
                        Some(unsent) if reused => request = unsent,
                        _ => return Err(error("exchange")(refused.into_error().into())),
                    },
                },
            }
        }
    }

    /// An idle connection to `origin` (`true`), or a new one.
    async fn sender(&self, origin: &Origin, uri: &Uri) -> Result<(Sender, bool), Error> {
        Ok(match self.checkout(origin).await {
            Some(s) => (s, true),
            // Boxed: the rare path's state would make every call's future larger.
            None => (Box::pin(self.connect(origin, uri)).await?, false),
        })
    }

    /// One HTTP/1.1 exchange on `conn` (and, if it fails as [`Pool`] says, on others).
    async fn send_h1(
        &self,
        origin: Origin,
        mut conn: H1,
        mut reused: bool,
        request: Request<Body>,
    ) -> Result<(Head, PooledBody), Error> {
        let (parts, mut body) = request.into_parts();
        let length = request_length(&parts.method, &parts.headers, &body)?;
        let mut wire = Vec::with_capacity(512);
        listen::write_head(&mut wire, &parts.method, &parts.uri, &parts.headers, length);
        // A small body known in advance goes into the head's write: one write for the lot,
        // and the whole request at hand to be sent again.
        let whole = match length {
            Length::None => true,
            Length::Known(n) if n <= WHOLE => {
                append_whole(&mut wire, &mut body, n).await?;
                true
            }
            _ => false,
        };
        let to_head = parts.method == Method::HEAD;
        loop {
            let failed = match exchange(&mut conn, &wire, whole, &mut body, length, to_head).await {
                Ok(answer) => {
                    let back = answer.reusable.then(|| Back {
                        pool: Arc::downgrade(&self.inner),
                        origin,
                    });
                    let body = ListenBody::new(conn, answer.rest, answer.framing);
                    return Ok((answer.head, PooledBody::h1(body, back)));
                }
                Err(failed) => failed,
            };
            let again = reused
                && whole
                && match &failed {
                    Failed::Body(_) => false,
                    Failed::Writing(_) => true,
                    Failed::Reading(e) => idempotent(&parts.method) && no_answer(e),
                };
            if !again {
                return Err(error("exchange")(match failed {
                    Failed::Body(e) => e,
                    Failed::Writing(e) | Failed::Reading(e) => e.into(),
                }));
            }
            (conn, reused) = match self.sender(&origin, &parts.uri).await? {
                (Sender::H1(conn), reused) => (conn, reused),
                (Sender::H2(_), _) => {
                    return Err(error("exchange")(
                        "the upstream switched to HTTP/2 between two requests".into(),
                    ));
                }
            };
        }
    }

    /// An idle connection to `origin` ready for a request, if there is one.
    async fn checkout(&self, origin: &Origin) -> Option<Sender> {
        let mut origins = self.inner.lock().await;
        let idle = origins.get_mut(origin)?;
        if let Some(h2) = &idle.h2 {
            if h2.is_ready() {
                return Some(Sender::H2(h2.clone()));
            }
            idle.h2 = None;
        }
        while let Some((mut conn, _)) = idle.h1.pop() {
            if still_open(&mut conn) {
                return Some(Sender::H1(conn));
            }
        }
        None
    }

    /// Connects to `origin` (`uri`'s); for HTTP/2, starts the connection's task.
    async fn connect(&self, origin: &Origin, uri: &Uri) -> Result<Sender, Error> {
        use tower::Service;
        let mut connector = self.inner.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(error("connect error"))?;
        let io = connector
            .call(uri.clone())
            .await
            .map_err(error("connect error"))?;
        let metrics = crate::metrics::get();
        if !io.connected().is_negotiated_h2() {
            metrics.upstream_connection_opened("http1");
            return Ok(Sender::H1(Box::new(hyper_util::rt::TokioIo::new(io))));
        }
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| error("HTTP handshake")(e.into()))?;
        metrics.upstream_connection_opened("http2");
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        let mut origins = self.inner.lock().await;
        origins.entry(origin.clone()).or_default().h2 = Some(sender.clone());
        drop(origins);
        sweep_from_now_on(&self.inner);
        Ok(Sender::H2(sender))
    }

    /// How many connections are idle (HTTP/1.1) or open (HTTP/2), for tests.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        let origins = self.inner.origins.try_lock().unwrap();
        origins
            .values()
            .map(|i| i.h1.len() + usize::from(i.h2.is_some()))
            .sum()
    }
}

/// How the request's body goes on the wire: the caller's `Content-Length` if it gave one (the
/// body must then be that long), else the body's own length if known, else chunked. A method
/// that carries no body in practice sends an empty one without any framing header.
fn request_length(method: &Method, headers: &HeaderMap, body: &Body) -> Result<Length, Error> {
    use hyper::body::Body as _;
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| error("exchange")("request Content-Length invalid".into()))?,
        ),
    };
    Ok(match declared.or_else(|| body.size_hint().exact()) {
        Some(0)
            if matches!(
                *method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::TRACE
            ) && declared.is_none() =>
        {
            Length::None
        }
        Some(n) => Length::Known(n),
        None => Length::Chunked,
    })
}

/// Appends all of `body` (`n` bytes, at most [`WHOLE`]) to `wire`.
async fn append_whole(wire: &mut Vec<u8>, body: &mut Body, n: u64) -> Result<(), Error> {
    let start = wire.len();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| error("exchange")(e.into()))?;
        if let Ok(data) = frame.into_data() {
            if (wire.len() - start + data.len()) as u64 > n {
                return Err(error("exchange")(LONGER.into()));
            }
            wire.extend_from_slice(&data);
        }
    }
    if ((wire.len() - start) as u64) < n {
        return Err(error("exchange")(SHORTER.into()));
    }
    Ok(())
}

const LONGER: &str = "request body longer than its Content-Length";
const SHORTER: &str = "request body shorter than its Content-Length";

/// Writes the request (`wire`, and unless `whole` the rest of `body`, framed as `length`
/// says), then reads the answer's head.
async fn exchange(
    conn: &mut H1,
    wire: &[u8],
    whole: bool,
    body: &mut Body,
    length: Length,
    to_head: bool,
) -> Result<listen::Answered, Failed> {
    let written = match conn.write_all(wire).await {
        Ok(()) if !whole => write_body(conn, body, length).await,
        Ok(()) => conn.flush().await.map_err(Failed::Writing),
        Err(e) => Err(Failed::Writing(e)),
    };
    match written {
        Ok(()) => listen::read_head(conn, to_head)
            .await
            .map_err(Failed::Reading),
        // An upstream may answer before it has read the whole request (a 413, say) and
        // close: its answer, if it is there, says more than the write's error.
        Err(Failed::Writing(e)) => match listen::read_head(conn, to_head).await {
            Ok(mut answer) => {
                answer.reusable = false;
                Ok(answer)
            }
            Err(_) => Err(Failed::Writing(e)),
        },
        Err(other) => Err(other),
    }
}

/// Writes `body` as `length` says: raw, checked against a `Content-Length`, or chunked.
async fn write_body(conn: &mut H1, body: &mut Body, length: Length) -> Result<(), Failed> {
    use std::io::Write as _;
    let chunked = length == Length::Chunked;
    let mut left = match length {
        Length::Known(n) => n,
        _ => u64::MAX,
    };
    let mut out = Vec::new();
    conn.flush().await.map_err(Failed::Writing)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failed::Body(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if !chunked {
            left = left
                .checked_sub(data.len() as u64)
                .ok_or_else(|| Failed::Body(LONGER.into()))?;
        }
        out.clear();
        if chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        let write = async {
            if data.len() <= COPY {
                out.extend_from_slice(&data);
            } else {
                conn.write_all(&out).await?;
                out.clear();
                conn.write_all(&data).await?;
            }
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
            conn.write_all(&out).await?;
            conn.flush().await
        };
        write.await.map_err(Failed::Writing)?;
    }
    if chunked {
        let end = async {
            conn.write_all(b"0\r\n\r\n").await?;
            conn.flush().await
        };
        end.await.map_err(Failed::Writing)?;
    } else if left != 0 && length != Length::None {
        return Err(Failed::Body(SHORTER.into()));
    }
    Ok(())
}

/// The methods a request may be sent again for after it was written (RFC 9110 §9.2.2 and the
/// common practice of clients: not `PUT` or `DELETE`, whose effects a proxy cannot see).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether `e` says the upstream closed the connection without a byte of answer.
fn no_answer(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof && e.to_string() == listen::NO_ANSWER
}

/// Whether an idle connection is still open: a read that finds nothing to read (and waits
/// for nothing: no waker). The upstream closing it, or sending anything unasked, makes it
/// useless.
fn still_open(conn: &mut H1) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    let mut into = ReadBuf::uninit(&mut byte);
    Pin::new(&mut **conn)
        .poll_read(&mut cx, &mut into)
        .is_pending()
}

impl Inner {
    /// The idle connections, locked (held for a few operations on the map, never across an
    /// `.await`: the lock is free at once but for another worker thread's moment).
    async fn lock(&self) -> MutexGuard<'_, HashMap<Origin, Idle, FastHash>> {
        match self.origins.try_lock() {
            Ok(guard) => guard,
            Err(_) => self.origins.lock().await,
        }
    }

    /// One sweep: what went back [`IDLE`] ago or earlier, or was closed, goes.
    async fn sweep(&self) {
        let now = self.epoch.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let sweeps = (IDLE.as_secs() / SWEEP.as_secs()) as u32;
        let mut origins = self.lock().await;
        origins.retain(|_, idle| {
            idle.h1
                .retain_mut(|(c, at)| now.wrapping_sub(*at) <= sweeps && still_open(c));
            if idle.h2.as_ref().is_some_and(|s| s.is_closed()) {
                idle.h2 = None;
            }
            !idle.h1.is_empty() || idle.h2.is_some()
        });
    }

    /// An HTTP/1.1 connection whose answer was read to its end, back to the idle ones (by a
    /// task of its own if another thread holds the lock this moment).
    fn give_back(self: Arc<Self>, origin: Origin, conn: H1) {
        let at = self.epoch.load(Ordering::Relaxed);
        let put = move |origins: &mut HashMap<Origin, Idle, FastHash>| {
            let idle = origins.entry(origin).or_default();
            if idle.h1.len() >= MAX_IDLE {
                // The least recently used goes.
                idle.h1.remove(0);
            }
            idle.h1.push((conn, at));
        };
        if let Ok(mut origins) = self.origins.try_lock() {
            put(&mut origins);
            return;
        }
        tokio::spawn(async move { put(&mut *self.origins.lock().await) });
    }
}

/// Starts the task that closes connections left idle too long (once per pool).
fn sweep_from_now_on(inner: &Arc<Inner>) {
    if inner.sweeping.load(Ordering::Relaxed) || inner.sweeping.swap(true, Ordering::Relaxed) {
        return;
    }
    let pool = Arc::downgrade(inner);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(inner) = pool.upgrade() else { return };
            inner.sweep().await;
        }
    });
}

impl Origin {
    fn of(uri: &Uri) -> Result<Self, BoxError> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(format!("not an http(s) URL: {uri}").into()),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("no host in {uri}"))?;
        Ok(Self { https, authority })
    }
}

/// Where a connection goes back to.
struct Back {
    pool: Weak<Inner>,
    origin: Origin,
}

/// An answer's body as it arrives; read to its end, it hands its HTTP/1.1 connection back to
/// the pool (if the answer's head allowed it).
pub struct PooledBody(Kind);

enum Kind {
    /// Boxed: the connection is large, and moves back to the pool from here.
    H1(Box<H1Body>),
    H2(Incoming),
}

struct H1Body {
    body: ListenBody<H1>,
    back: Option<Back>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl PooledBody {
    fn h1(body: ListenBody<H1>, back: Option<Back>) -> Self {
        let mut this = H1Body { body, back };
        // An empty body has ended already.
        this.back_if_done();
        Self(Kind::H1(Box::new(this)))
    }
}

impl H1Body {
    /// Hands the connection back once the body has ended.
    fn back_if_done(&mut self) {
        if self.back.is_none() || !self.body.is_done() {
            return;
        }
        let back = self.back.take();
        if let (Some(back), Some(conn)) = (back, self.body.take_idle()) {
            if let Some(pool) = back.pool.upgrade() {
                sweep_from_now_on(&pool);
                pool.give_back(back.origin, conn);
            }
        }
    }
}

impl Stream for PooledBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.0 {
            Kind::H1(h1) => {
                let item = ready!(Pin::new(&mut h1.body).poll_next(cx));
                // A broken body has dropped its connection; an ended one goes back.
                h1.back_if_done();
                Poll::Ready(item)
            }
            Kind::H2(body) => loop {
                match ready!(hyper::body::Body::poll_frame(Pin::new(&mut *body), cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pool() -> Pool {
        let policy = crate::net::NetPolicy::permissive();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .unwrap()
            .https_or_http()
            .enable_http1()
            .wrap_connector(policy.http_connector(Duration::from_secs(5)));
        Pool::new(connector)
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    /// A server on loopback answering `answers` requests per connection (bodies naming the
    /// connection's number, with a `Content-Length` or `chunked`), then closing; returns its
    /// address and a count of the connections it accepted.
    async fn server_framed(
        answers: usize,
        chunked: bool,
    ) -> (std::net::SocketAddr, Arc<AtomicU32>) {
        serve_each(move |mut sock, n| async move {
                    let mut buf = Vec::new();
                    for _ in 0..answers {
                        // One request head (no bodies here).
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 1024];
                            let got = sock.read(&mut chunk).await.unwrap_or(0);
                            if got == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..got]);
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end);
                        let body = format!("conn {n} {}", head.lines().next().unwrap());
                        let answer = if chunked {
                            format!(
                                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                                body.len()
                            )
                        } else {
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        };
                        sock.write_all(answer.as_bytes()).await.unwrap();
                    }
        })
        .await
    }

    /// A loopback server running `handle` on each connection it accepts (with the connection's
    /// number, from 0); returns its address and a count of the connections accepted.
    async fn serve_each<F, Fut>(handle: F) -> (std::net::SocketAddr, Arc<AtomicU32>)
    where
        F: Fn(tokio::net::TcpStream, u32) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU32::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(sock, n));
            }
        });
        (addr, accepted)
    }

    async fn server(answers: usize) -> (std::net::SocketAddr, Arc<AtomicU32>) {
        server_framed(answers, false).await
    }

    async fn text(answer: (Head, PooledBody)) -> String {
        let mut all = Vec::new();
        let mut body = answer.1;
        while let Some(chunk) = body.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(all).unwrap()
    }

    /// Five requests in turn, each answer read to its end, over one connection.
    async fn reused_over_one_connection(chunked: bool) -> Pool {
        let (addr, accepted) = server_framed(100, chunked).await;
        let pool = pool();
        for i in 0..5 {
            let answer = pool
                .send(get(&format!("http://{addr}/x?i={i}")))
                .await
                .unwrap();
            assert_eq!(text(answer).await, format!("conn 0 GET /x?i={i} HTTP/1.1"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        pool
    }

    #[tokio::test]
    async fn a_connection_read_to_its_end_is_reused() {
        let pool = reused_over_one_connection(false).await;
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_chunked_answer_read_to_its_end_gives_its_connection_back_too() {
        reused_over_one_connection(true).await;
    }

    #[tokio::test]
    async fn an_unread_answer_closes_its_connection() {
        let (addr, accepted) = server(100).await;
        let pool = pool();
        let unread = pool.send(get(&format!("http://{addr}/a"))).await.unwrap();
        drop(unread);
        let answer = pool.send(get(&format!("http://{addr}/b"))).await.unwrap();
        assert_eq!(text(answer).await, "conn 1 GET /b HTTP/1.1");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_get_connections_of_their_own() {
        let (addr, accepted) = server(100).await;
        let pool = pool();
        let first = pool.send(get(&format!("http://{addr}/1"))).await.unwrap();
        let second = pool.send(get(&format!("http://{addr}/2"))).await.unwrap();
        assert_eq!(text(second).await, "conn 1 GET /2 HTTP/1.1");
        assert_eq!(text(first).await, "conn 0 GET /1 HTTP/1.1");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_used_again() {
        // One answer per connection, then the server closes it.
        let (addr, accepted) = server(1).await;
        let pool = pool();
        for i in 0..3 {
            let answer = pool.send(get(&format!("http://{addr}/{i}"))).await.unwrap();
            assert_eq!(text(answer).await, format!("conn {i} GET /{i} HTTP/1.1"));
            // Let the connection's task see the close.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_just_closed_is_not_a_failed_get() {
        // One answer per connection, then the server closes it; asked again at once, before
        // the close may have been seen: found closed, or sent again on a new connection.
        let (addr, _) = server(1).await;
        let pool = pool();
        for i in 0..20 {
            let answer = pool.send(get(&format!("http://{addr}/{i}"))).await.unwrap();
            let text = text(answer).await;
            assert!(text.ends_with(&format!("GET /{i} HTTP/1.1")), "{text}");
        }
    }

    /// A server on loopback that answers the first request on each connection and closes the
    /// connection when the next one arrives, unanswered (an upstream whose keep-alive timeout
    /// fired as the request was on its way).
    async fn server_closing_on_the_second() -> (std::net::SocketAddr, Arc<AtomicU32>) {
        serve_each(|mut sock, n| async move {
            let mut chunk = [0u8; 4096];
            let _ = sock.read(&mut chunk).await;
            let body = format!("conn {n}");
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(answer.as_bytes()).await.unwrap();
            let _ = sock.read(&mut chunk).await;
        })
        .await
    }

    #[tokio::test]
    async fn a_reused_connection_closed_unanswered_is_retried_only_when_safe() {
        let (addr, accepted) = server_closing_on_the_second().await;
        let pool = pool();
        let url = format!("http://{addr}/");
        assert_eq!(text(pool.send(get(&url)).await.unwrap()).await, "conn 0");
        // GET: sent again on a new connection.
        assert_eq!(text(pool.send(get(&url)).await.unwrap()).await, "conn 1");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // POST: the upstream may have acted on it; the caller hears of the failure.
        let post = request(Method::POST, &url, Body::from("{}"));
        let err = pool.send(post).await.unwrap_err();
        let chain = crate::net::cause_chain(&err);
        assert!(chain.contains(listen::NO_ANSWER), "{chain}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// A real HTTP/1.1 server (hyper's) that answers with what it received: the method, the
    /// request's framing headers and its body; `connection: close` when asked for.
    async fn echo_server() -> (std::net::SocketAddr, Arc<AtomicU32>) {
        use hyper::service::service_fn;
        serve_each(|sock, _| async move {
            let service = service_fn(|request: Request<Incoming>| async move {
                let (parts, body) = request.into_parts();
                let framing = |name| {
                    parts
                        .headers
                        .get(name)
                        .map_or("-".to_owned(), |v: &axum::http::HeaderValue| {
                            v.to_str().unwrap().to_owned()
                        })
                };
                let line = format!(
                    "{} {} cl={} te={} host={} body=",
                    parts.method,
                    parts.uri,
                    framing(header::CONTENT_LENGTH),
                    framing(header::TRANSFER_ENCODING),
                    framing(header::HOST),
                );
                let body = body.collect().await?.to_bytes();
                let mut answer = axum::http::Response::new(http_body_util::Full::new(Bytes::from(
                    [line.as_bytes(), &body].concat(),
                )));
                if parts.headers.contains_key("x-close") {
                    answer
                        .headers_mut()
                        .insert(header::CONNECTION, "close".parse().unwrap());
                }
                Ok::<_, hyper::Error>(answer)
            });
            let io = hyper_util::rt::TokioIo::new(sock);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        })
        .await
    }

    fn request(method: Method, uri: &str, body: Body) -> Request<Body> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri.parse().unwrap();
        request
    }

    #[tokio::test]
    async fn request_bodies_go_whole_sized_or_chunked_and_the_connection_stays() {
        use http_body_util::BodyExt as _;
        let (addr, accepted) = echo_server().await;
        let pool = pool();
        let url = format!("http://{addr}/rpc?x=1");
        let host = format!("host={addr}");

        let small = request(Method::POST, &url, Body::from(r#"{"jsonrpc":"2.0"}"#));
        let text1 = text(pool.send(small).await.unwrap()).await;
        assert_eq!(
            text1,
            format!(r#"POST /rpc?x=1 cl=17 te=- {host} body={{"jsonrpc":"2.0"}}"#)
        );

        // A body of unknown length, in pieces, one of them larger than what is copied.
        let big = vec![b'x'; COPY + 5];
        let pieces = vec![
            Ok::<_, io::Error>(Bytes::from_static(b"ab")),
            Ok(Bytes::new()),
            Ok(Bytes::from(big.clone())),
            Ok(Bytes::from_static(b"cd")),
        ];
        let streamed = request(
            Method::PUT,
            &url,
            Body::from_stream(futures_util::stream::iter(pieces)),
        );
        let text2 = text(pool.send(streamed).await.unwrap()).await;
        let expected = format!(
            "PUT /rpc?x=1 cl=- te=chunked {host} body=ab{}cd",
            String::from_utf8(big).unwrap()
        );
        assert_eq!(text2, expected);

        // The caller's Content-Length, with a body that arrives in pieces.
        let mut declared = request(
            Method::POST,
            &url,
            Body::new(Body::from("hello").map_frame(|f| f)),
        );
        declared
            .headers_mut()
            .insert(header::CONTENT_LENGTH, "5".parse().unwrap());
        let text3 = text(pool.send(declared).await.unwrap()).await;
        assert_eq!(text3, format!("POST /rpc?x=1 cl=5 te=- {host} body=hello"));

        // No body: no framing header.
        let bare = request(Method::DELETE, &url, Body::empty());
        let text4 = text(pool.send(bare).await.unwrap()).await;
        assert_eq!(text4, format!("DELETE /rpc?x=1 cl=- te=- {host} body="));

        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_body_that_does_not_match_its_content_length_is_refused() {
        let (addr, _) = echo_server().await;
        let pool = pool();
        let url = format!("http://{addr}/");
        for (declared, body) in [("3", "four"), ("9", "four")] {
            let mut wrong = request(Method::POST, &url, Body::from(body));
            wrong
                .headers_mut()
                .insert(header::CONTENT_LENGTH, declared.parse().unwrap());
            let err = pool.send(wrong).await.unwrap_err();
            let chain = crate::net::cause_chain(&err);
            assert!(chain.contains("Content-Length"), "{chain}");
        }
        // Streamed (too long to go whole), longer than declared.
        let pieces = vec![Ok::<_, io::Error>(Bytes::from(vec![b'y'; 70_000]))];
        let mut wrong = request(
            Method::POST,
            &url,
            Body::from_stream(futures_util::stream::iter(pieces)),
        );
        wrong
            .headers_mut()
            .insert(header::CONTENT_LENGTH, "69000".parse().unwrap());
        let err = pool.send(wrong).await.unwrap_err();
        assert!(crate::net::cause_chain(&err).contains(LONGER));
    }

    #[tokio::test]
    async fn connection_close_and_head_answers() {
        let (addr, accepted) = echo_server().await;
        let pool = pool();
        let url = format!("http://{addr}/h");
        // An answer to HEAD has no body, whatever its Content-Length says.
        let (head, body) = pool
            .send(request(Method::HEAD, &url, Body::empty()))
            .await
            .unwrap();
        assert!(head.headers.contains_key(header::CONTENT_LENGTH));
        assert_eq!(text((head, body)).await, "");
        assert_eq!(pool.idle_count(), 1);
        // `Connection: close`: read to its end, still not kept.
        let mut closing = request(Method::GET, &url, Body::empty());
        closing
            .headers_mut()
            .insert("x-close", "1".parse().unwrap());
        let said = text(pool.send(closing).await.unwrap()).await;
        assert!(said.starts_with("GET /h"), "{said}");
        assert_eq!(pool.idle_count(), 0);
        let said = text(pool.send(get(&url)).await.unwrap()).await;
        assert!(said.starts_with("GET /h"), "{said}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_sweep_closes_what_stayed_idle() {
        let (addr, _) = server(100).await;
        let pool = pool();
        let answer = pool.send(get(&format!("http://{addr}/"))).await.unwrap();
        text(answer).await;
        assert_eq!(pool.idle_count(), 1);
        let sweeps = IDLE.as_secs() / SWEEP.as_secs();
        for _ in 0..sweeps {
            pool.inner.sweep().await;
        }
        assert_eq!(pool.idle_count(), 1, "kept for IDLE");
        pool.inner.sweep().await;
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_url_without_a_host_is_an_error() {
        let err = pool().send(get("/relative")).await.unwrap_err();
        assert_eq!(err.to_string(), "upstream URL");
        assert!(crate::net::cause_chain(&err).contains("not an http(s) URL"));
    }
}
