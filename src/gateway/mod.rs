//! The data plane: `/v1/connectors-gateway/{ref}/mcp` (streaming MCP relay) and
//! `/v1/connectors-gateway/{ref}/http[/…]` (HTTP relay). Upstream answers pass through
//! unchanged; every error the gateway itself authors carries `Proxy-Status` (§7.6).

mod error;
mod headers;
mod http_relay;
mod legacy_bridge;
pub mod listen;
pub mod mcp_relay;
mod pool;
pub mod proxy_status;
pub mod session;
pub mod upstream;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::any;
use percent_encoding::percent_decode_str;

pub use error::GatewayError;
pub use session::{SealedSessionId, SessionClaims};

use crate::api::AppState;
use crate::api::extract::{AuthFailure, authenticate};
use crate::credentials::Choice;
use crate::identity::Principal;

/// Data-plane settings and clients.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// For both relays (decision 014): pooled, connect timeout, no redirects; the idle
    /// timeout below applies to everything but listening streams.
    pub upstream: upstream::UpstreamClient,
    pub idle_timeout: Duration,
    pub keepalive: Duration,
    pub max_body_bytes: usize,
    /// `Origin`s allowed on `/mcp`.
    pub allowed_origins: Vec<String>,
    /// `Host`s accepted on `/mcp` (empty: any).
    pub allowed_hosts: Vec<String>,
    /// Legacy HTTP+SSE upstreams served as Streamable HTTP (per replica).
    pub bridges: legacy_bridge::Bridges,
    /// Turns `true` when the process drains: relayed SSE streams end at the next event
    /// boundary.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// Listening streams open per principal, and the limits of this plane.
    pub streams_open: StreamCounts,
    pub limits: crate::config::Limits,
    /// Sealed session ids this replica has opened (saves decrypting one per relayed call).
    pub opened_sessions: session::OpenedSessions,
}

/// Open listening streams per principal (user id).
#[derive(Clone)]
pub struct StreamCounts(
    std::sync::Arc<moka::sync::Cache<String, std::sync::Arc<std::sync::atomic::AtomicUsize>>>,
);

impl std::fmt::Debug for StreamCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCounts").finish_non_exhaustive()
    }
}

/// One open stream of a principal; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamPermit(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl StreamCounts {
    fn new() -> Self {
        Self(std::sync::Arc::new(
            moka::sync::Cache::builder().max_capacity(1_000_000).build(),
        ))
    }

    /// A slot for one more stream of `principal`, unless `max` are open.
    pub fn acquire(&self, principal: &str, max: usize) -> Option<StreamPermit> {
        use std::sync::atomic::Ordering;
        let count = self.0.get_with(principal.to_owned(), Default::default);
        let mut current = count.load(Ordering::SeqCst);
        loop {
            if current >= max {
                return None;
            }
            match count.compare_exchange(current, current + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(StreamPermit(count)),
                Err(now) => current = now,
            }
        }
    }
}

impl Gateway {
    pub fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        keepalive: Duration,
        max_body_bytes: usize,
        session_idle: Duration,
        max_sessions: u64,
        policy: &crate::net::NetPolicy,
    ) -> Result<Self, String> {
        Ok(Self {
            upstream: upstream::UpstreamClient::new(policy, connect_timeout)?,
            idle_timeout,
            keepalive,
            max_body_bytes,
            bridges: legacy_bridge::Bridges::new(session_idle, max_sessions),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            draining: tokio::sync::watch::channel(false).1,
            streams_open: StreamCounts::new(),
            limits: crate::config::Limits::default(),
            opened_sessions: session::OpenedSessions::new(max_sessions, session_idle),
        })
    }

    /// Applies these limits (relay body, JSON depth, streams per principal).
    pub fn with_limits(mut self, limits: crate::config::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Ends relayed SSE streams when this turns `true`.
    pub fn with_draining(mut self, draining: tokio::sync::watch::Receiver<bool>) -> Self {
        self.draining = draining;
        self
    }

    /// Sets the `Origin` and `Host` allow-lists of `/mcp`.
    pub fn with_allow_lists(mut self, origins: Vec<String>, hosts: Vec<String>) -> Self {
        self.allowed_origins = origins;
        self.allowed_hosts = hosts;
        self
    }

    /// With an allow-list, the `Host` (or HTTP/2 authority) must be on it.
    fn host_allowed(&self, req: &Request) -> bool {
        if self.allowed_hosts.is_empty() {
            return true;
        }
        let host = req
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
        host.is_some_and(|h| self.allowed_hosts.contains(&h.to_ascii_lowercase()))
    }

    /// A request without `Origin` passes; with one, it must be on the allow-list or be a
    /// loopback origin (`localhost`, `127.0.0.1`, `[::1]`: a page served by this machine).
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        match headers.get(axum::http::header::ORIGIN) {
            None => true,
            Some(v) => v.to_str().is_ok_and(|o| {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                self.allowed_origins.contains(&o) || is_loopback_origin(&o)
            }),
        }
    }
}

fn is_loopback_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && matches!(
                u.host(),
                Some(url::Host::Domain("localhost"))
                    | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                    | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
            )
    })
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/connectors-gateway/{ref}/mcp", any(mcp_relay::handle))
        .route("/v1/connectors-gateway/{ref}/http", any(http_relay::handle))
        .route(
            "/v1/connectors-gateway/{ref}/http/",
            any(http_relay::handle),
        )
        .route(
            "/v1/connectors-gateway/{ref}/http/{*rest}",
            any(http_relay::handle),
        )
}

/// The authenticated caller of a data-plane request.
async fn caller(headers: &HeaderMap, state: &AppState) -> Result<Principal, GatewayError> {
    match authenticate(headers, state).await {
        Ok(p) => Ok(p),
        Err(AuthFailure::Denied(why)) => Err(GatewayError::Unauthorized(why)),
        Err(AuthFailure::Limited(secs)) => Err(GatewayError::RateLimited(secs)),
        Err(AuthFailure::Store(e)) if e.is_unavailable() => Err(GatewayError::StoreUnavailable),
        Err(AuthFailure::Store(e)) => Err(GatewayError::Internal(e.to_string())),
    }
}

/// The header naming the caller's credential.
const CREDENTIALS_NAME: &str = "x-credentials-name";

/// `x-credentials-name` (`named`), or the default credential.
fn credential_choice(named: Option<&HeaderValue>) -> Result<Choice<'_>, GatewayError> {
    match named {
        None => Ok(Choice::Default),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|s| !s.is_empty())
            .map(Choice::Named)
            .ok_or_else(|| GatewayError::BadRequest("Invalid x-credentials-name header".into())),
    }
}

/// Splits the raw path `/v1/connectors-gateway/<ref>/<tail>` into the percent-decoded
/// reference and the raw tail (`mcp`, `http`, `http/…`). `%2F` in the reference does not split it.
fn split_path(req: &Request) -> Result<(String, &str), GatewayError> {
    let path = req.uri().path();
    let rest = path
        .strip_prefix("/v1/connectors-gateway/")
        .ok_or(GatewayError::ConnectorNotFound)?;
    let (raw_ref, tail) = rest
        .split_once('/')
        .ok_or(GatewayError::ConnectorNotFound)?;
    let reference = percent_decode_str(raw_ref)
        .decode_utf8()
        .map_err(|_| GatewayError::ConnectorNotFound)?
        .into_owned();
    Ok((reference, tail))
}
