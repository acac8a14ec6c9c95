//! The relay's upstream client: connections kept per origin by [`super::pool`], over the
//! outbound policy's resolver and rustls (HTTP/1.1, and HTTP/2 where TLS negotiates it), with
//! the gateway's timeouts. Decision 014 says why the data plane does not go through `reqwest`: per request,
//! reqwest re-parses the URL twice (its redirect policy and its response URL), a fifth of what
//! a relayed call cost.
//!
//! Listening streams (`GET` without an idle timeout) go over a connection of their own through
//! [`super::listen`], which holds far less memory per open stream.
//!
//! Timeouts: connecting (TCP) is bounded by `connect_timeout`; with an idle timeout, the
//! answer's head must arrive within it (connecting and TLS included) and then every body chunk
//! within it of the previous one. Without (listening streams), only connecting is bounded.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use futures_util::{Stream, StreamExt};

use super::GatewayError;
use super::listen::{self, ListenBody, ListenClient};
use super::pool::{self, Pool, PooledBody};
use crate::net::NetPolicy;

/// A pooled upstream client for the relays.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    pool: Pool,
    listen: ListenClient,
}

/// An upstream's answer: its head, and its body still to be read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: AnswerBody,
    idle: Option<Duration>,
}

/// Where an answer's body comes from.
#[derive(Debug)]
enum AnswerBody {
    Pooled(PooledBody),
    /// Boxed: a TLS connection is large.
    Own(Box<ListenBody<listen::Conn>>),
}

impl UpstreamClient {
    pub fn new(policy: &NetPolicy, connect_timeout: Duration) -> Result<Self, String> {
        // The provider named, not the process default: another dependency compiling a second
        // provider into the binary must not make this ambiguous.
        let builder = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
                .map_err(|e| format!("TLS set-up: {e}"))
                .map(|b| b.https_or_http().enable_http1())
        };
        let https = builder()?
            .enable_http2()
            .wrap_connector(policy.http_connector(connect_timeout));
        // HTTP/1.1 only: that is all the listening streams' client speaks.
        let listen =
            ListenClient::new(builder()?.wrap_connector(policy.http_connector(connect_timeout)));
        Ok(Self {
            pool: Pool::new(https),
            listen,
        })
    }

    /// Sends a request to `uri` ([`uri_of`], [`crate::mcp::Target::uri`]). `idle`: see the
    /// module's documentation. A caller without `Accept` sends `*/*` (as the previous client
    /// did).
    pub async fn send(
        &self,
        method: Method,
        uri: Result<Uri, String>,
        mut headers: HeaderMap,
        body: Body,
        idle: Option<Duration>,
    ) -> Result<Answer, Failure> {
        let uri = uri.map_err(Failure::Url)?;
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        if idle.is_none() && method == Method::GET {
            let (head, body) = self
                .listen
                .get(&uri, &headers)
                .await
                .map_err(Failure::Listen)?;
            return Ok(Answer {
                status: head.status,
                headers: head.headers,
                body: AnswerBody::Own(Box::new(body)),
                idle,
            });
        }
        let mut request = axum::http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let sent = self.pool.send(request);
        let answer = match idle {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(r) => r,
                Err(_) => return Err(Failure::Timeout),
            },
            None => sent.await,
        }
        .map_err(Failure::Exchange)?;
        let (head, body) = answer;
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body: AnswerBody::Pooled(body),
            idle,
        })
    }
}

/// A URL as a request target (an error names why it is none).
pub fn uri_of(url: &url::Url) -> Result<Uri, String> {
    url.as_str()
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| e.to_string())
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// No answer within the idle timeout.
    Timeout,
    /// The target URL is not a valid request target.
    Url(String),
    /// Connecting, sending or receiving the head failed.
    Exchange(pool::Error),
    /// The same, for a listening stream.
    Listen(listen::BoxError),
}

impl Failure {
    /// Whether a limit of ours (a request body cap) ended the exchange.
    pub fn too_large(&self) -> bool {
        matches!(self, Failure::Exchange(e) if crate::limits::too_large_in(e))
    }
}

/// What a failed exchange means for the caller: refused by the outbound policy, timed out
/// (connecting included), or unavailable.
impl From<Failure> for GatewayError {
    fn from(f: Failure) -> Self {
        let e = match f {
            Failure::Timeout => return GatewayError::UpstreamTimeout,
            Failure::Url(e) => return GatewayError::Internal(format!("upstream URL: {e}")),
            Failure::Exchange(e) => Box::new(e) as listen::BoxError,
            Failure::Listen(e) => e,
        };
        let e: &(dyn std::error::Error + 'static) = &*e;
        if let Some(refused) = crate::net::refused_in(e) {
            return GatewayError::DestinationProhibited(refused);
        }
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            {
                return GatewayError::UpstreamTimeout;
            }
            cur = err.source();
        }
        GatewayError::UpstreamUnavailable(crate::net::cause_chain(e))
    }
}

impl Answer {
    /// The body as it arrives; with an idle timeout, a gap longer than it ends the stream with
    /// a `TimedOut` error.
    pub fn bytes_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static {
        let body = match self.body {
            AnswerBody::Own(body) => return body.right_stream(),
            AnswerBody::Pooled(body) => body,
        };
        let frames = body;
        let pooled = match self.idle {
            None => frames.left_stream(),
            Some(limit) => futures_util::stream::unfold(Some(frames), move |frames| async move {
                let mut frames = frames?;
                match tokio::time::timeout(limit, frames.next()).await {
                    Ok(Some(item)) => Some((item, Some(frames))),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "upstream idle timeout",
                        )),
                        None,
                    )),
                }
            })
            .boxed()
            .right_stream(),
        };
        pooled.left_stream()
    }

    /// The body as text for an error message (capped at the upstream answer limit;
    /// too large or unreadable → empty).
    pub async fn text(self) -> String {
        let declared = self
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        crate::limits::lossy_text(crate::limits::read_capped(declared, self.bytes_stream()).await)
    }
}
