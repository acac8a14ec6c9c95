//! The relays' upstream connections, kept open and reused per origin (scheme and authority).
//! hyper speaks the protocol (`hyper::client::conn`, HTTP/1.1, or HTTP/2 where TLS negotiates
//! it); this module only keeps the connections. It replaced hyper-util's pooled client, whose
//! pool cost a call ~7k instructions (two SipHash passes over its key, a checkout future racing
//! a connect, a task spawned per answer to wait for the connection to become idle): here a
//! checkout is a lock, a hash and a pop, and an HTTP/1.1 connection goes back when its answer's
//! body ends. Decision 019.
//!
//! - HTTP/1.1: one request at a time per connection. Idle connections are kept most recently
//!   used first (at most [`MAX_IDLE`] per origin); a connection whose answer was not read to
//!   its end is closed (hyper cannot reuse it), and one the upstream closed is dropped when
//!   met.
//! - HTTP/2: one connection per origin, shared by every request.
//! - A request that a reused connection refused before sending any of it (the upstream had
//!   closed it meanwhile) is sent again on another connection.
//! - Idle connections are closed after [`IDLE`] to [`IDLE`] + [`SWEEP`] unused.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{Mutex, MutexGuard};

use super::listen::{BoxError, Connector};
use crate::cache::FastHash;

/// How long an unused connection is kept (at least).
pub const IDLE: Duration = Duration::from_secs(90);
/// How often idle connections are looked over.
const SWEEP: Duration = Duration::from_secs(30);
/// The most idle HTTP/1.1 connections kept per origin.
const MAX_IDLE: usize = 256;

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

#[derive(Default)]
struct Idle {
    /// Most recently used last, with the sweep count when it went back.
    h1: Vec<(http1::SendRequest<Body>, u32)>,
    h2: Option<http2::SendRequest<Body>>,
}

enum Sender {
    H1(http1::SendRequest<Body>),
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
    pub async fn send(&self, mut request: Request<Body>) -> Result<Response<PooledBody>, Error> {
        let uri = request.uri().clone();
        let origin = Origin::of(&uri).map_err(error("upstream URL"))?;
        loop {
            let (sender, reused) = match self.checkout(&origin).await {
                Some(s) => (s, true),
                // Boxed: the rare path's state would make every call's future larger.
                None => (Box::pin(self.connect(&origin, &uri)).await?, false),
            };
            let refused = match sender {
                Sender::H1(mut sender) => {
                    prepare_h1(&mut request);
                    match sender.try_send_request(request).await {
                        Ok(answer) => {
                            let back = Back {
                                pool: Arc::downgrade(&self.inner),
                                origin,
                                sender,
                            };
                            return Ok(answer.map(|body| PooledBody::new(body, Some(back))));
                        }
                        Err(e) => e,
                    }
                }
                Sender::H2(mut sender) => match sender.try_send_request(request).await {
                    Ok(answer) => return Ok(answer.map(|body| PooledBody::new(body, None))),
                    Err(e) => e,
                },
            };
            let mut refused = refused;
            match refused.take_message() {
                // Not sent: the upstream closed the connection while it was idle.
                Some(unsent) if reused => {
                    request = unsent;
                    *request.uri_mut() = uri.clone();
                }
                _ => return Err(error("exchange")(refused.into_error().into())),
            }
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
        let mut i = idle.h1.len();
        while i > 0 {
            i -= 1;
            let sender = &idle.h1[i].0;
            if sender.is_closed() {
                idle.h1.remove(i);
            } else if sender.is_ready() {
                return Some(Sender::H1(idle.h1.remove(i).0));
            }
            // Else its last answer is still being wound up: left for the next request.
        }
        None
    }

    /// Connects to `origin` (`uri`'s) and starts the connection's task.
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
        let handshake = error("HTTP handshake");
        if io.connected().is_negotiated_h2() {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| handshake(e.into()))?;
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
        } else {
            let (sender, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(|e| handshake(e.into()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            Ok(Sender::H1(sender))
        }
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
                .retain(|(s, at)| !s.is_closed() && now.wrapping_sub(*at) <= sweeps);
            if idle.h2.as_ref().is_some_and(|s| s.is_closed()) {
                idle.h2 = None;
            }
            !idle.h1.is_empty() || idle.h2.is_some()
        });
    }

    /// An HTTP/1.1 connection whose answer was read to its end, back to the idle ones (by a
    /// task of its own if another thread holds the lock this moment).
    fn give_back(self: Arc<Self>, origin: Origin, sender: http1::SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let at = self.epoch.load(Ordering::Relaxed);
        let put = move |origins: &mut HashMap<Origin, Idle, FastHash>| {
            let idle = origins.entry(origin).or_default();
            if idle.h1.len() >= MAX_IDLE {
                // The least recently used goes.
                idle.h1.remove(0);
            }
            idle.h1.push((sender, at));
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

/// An HTTP/1.1 request as it goes on the wire: `Host` (unless the caller set one; the default
/// port left out) and the target in origin form.
fn prepare_h1(request: &mut Request<Body>) {
    let uri = request.uri();
    if !request.headers().contains_key(header::HOST) {
        let host = uri.host().unwrap_or_default();
        let value = match super::listen::named_port(uri) {
            Some(port) => HeaderValue::try_from(format!("{host}:{port}")),
            None => HeaderValue::from_str(host),
        };
        if let Ok(value) = value {
            request.headers_mut().insert(header::HOST, value);
        }
    }
    let target = match request.uri().path_and_query() {
        Some(p) if p.as_str() != "/" => Uri::from(p.clone()),
        _ => Uri::default(),
    };
    *request.uri_mut() = target;
}

/// Where a connection goes back to.
struct Back {
    pool: Weak<Inner>,
    origin: Origin,
    sender: http1::SendRequest<Body>,
}

/// An answer's body; read to its end, it hands its HTTP/1.1 connection back to the pool.
pub struct PooledBody {
    body: Incoming,
    back: Option<Back>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl PooledBody {
    fn new(body: Incoming, back: Option<Back>) -> Self {
        let mut this = Self { body, back };
        this.back_if_done(false);
        this
    }

    /// Hands the connection back if the body has ended: `ended` (it said so), or known to
    /// (all of a `Content-Length` body read; a chunked body's end is only known from `ended`).
    fn back_if_done(&mut self, ended: bool) {
        if ended || hyper::body::Body::is_end_stream(&self.body) {
            if let Some(back) = self.back.take() {
                if let Some(pool) = back.pool.upgrade() {
                    sweep_from_now_on(&pool);
                    pool.give_back(back.origin, back.sender);
                }
            }
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            None => self.back_if_done(true),
            Some(Ok(_)) => self.back_if_done(false),
            // A broken answer: its connection is not reused.
            Some(Err(_)) => self.back = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU32::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
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
                });
            }
        });
        (addr, accepted)
    }

    async fn server(answers: usize) -> (std::net::SocketAddr, Arc<AtomicU32>) {
        server_framed(answers, false).await
    }

    async fn text(answer: Response<PooledBody>) -> String {
        let bytes = answer.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
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
    async fn host_names_a_port_that_is_not_the_default() {
        let mut request = get("http://example.test:8080/p?q=1");
        prepare_h1(&mut request);
        assert_eq!(request.headers()[header::HOST], "example.test:8080");
        assert_eq!(request.uri(), "/p?q=1");
        let mut request = get("https://example.test:443");
        prepare_h1(&mut request);
        assert_eq!(request.headers()[header::HOST], "example.test");
        assert_eq!(request.uri(), "/");
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
