//! The upstream MCP client: JSON-RPC over Streamable HTTP (2025-03-26 … 2025-11-25, with
//! sessions), stateless 2026-07-28 servers (`server/discover`, `_meta`, `Mcp-Method`/`Mcp-Name`)
//! and legacy HTTP+SSE (2024-11-05). Eras are detected once per connector and remembered;
//! sessions are pooled per (connector, credential identity).

pub mod http;
pub mod jsonrpc;
pub mod legacy;
mod pool;
mod session;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

pub use jsonrpc::RpcError;
pub use legacy::Channel as LegacyChannel;
pub use pool::{PoolKey, SessionPool};
pub use session::{Era, Session};

pub const SESSION_HEADER: &str = "mcp-session-id";
/// [`SESSION_HEADER`] as a header name (inserting by `&str` copies the name every time).
pub const SESSION_HEADER_NAME: reqwest::header::HeaderName =
    reqwest::header::HeaderName::from_static(SESSION_HEADER);
pub const VERSION_HEADER: &str = "mcp-protocol-version";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";
/// The newest session-based revision we offer in `initialize`.
pub const LATEST_SESSION_VERSION: &str = "2025-11-25";
/// The stateless revision.
pub const STATELESS_VERSION: &str = "2026-07-28";

/// Why an upstream exchange failed (as opposed to a JSON-RPC error, which is an answer).
#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("upstream timed out")]
    Timeout,
    /// The upstream forgot our session (404, or server-everything's 400).
    #[error("upstream session expired")]
    SessionExpired,
    #[error("upstream rejected the credentials (HTTP {0})")]
    AuthRejected(u16),
    #[error("upstream answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// A JSON-RPC error where a result was needed (e.g. while listing tools).
    #[error("upstream JSON-RPC error {}: {}", .0.code, .0.message)]
    Rpc(RpcError),
}

impl McpError {
    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            McpError::Timeout
        } else if let Some(refused) = crate::net::refused_in(&e) {
            McpError::Unreachable(refused)
        } else {
            // Do not echo URLs with credentials in them: reqwest errors carry the URL.
            McpError::Unreachable(crate::net::cause_chain(&e.without_url()))
        }
    }

    fn from_status(status: StatusCode, body: &str, had_session: bool) -> Self {
        let code = status.as_u16();
        let session_gone = had_session
            && (status == StatusCode::NOT_FOUND
                || (status == StatusCode::BAD_REQUEST
                    && body.to_ascii_lowercase().contains("session")));
        if session_gone {
            return McpError::SessionExpired;
        }
        if matches!(code, 401 | 403) {
            return McpError::AuthRejected(code);
        }
        let body: String = body.chars().take(300).collect();
        McpError::Http { status: code, body }
    }

    /// Whether a fresh session might succeed where this one failed.
    pub fn replaces_session(&self) -> bool {
        matches!(
            self,
            McpError::SessionExpired | McpError::Unreachable(_) | McpError::Protocol(_)
        )
    }
}

/// Receives the methods of server notifications seen on any upstream stream
/// (e.g. `notifications/tools/list_changed`).
#[derive(Clone, Default)]
pub struct NotificationSink(Option<Arc<NotifyFn>>);

type NotifyFn = dyn Fn(&str) + Send + Sync;

impl std::fmt::Debug for NotificationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotificationSink")
    }
}

impl NotificationSink {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    pub fn notify(&self, method: &str) {
        if let Some(f) = &self.0 {
            f(method);
        }
    }
}

/// Where and how to reach an upstream: its URL and the headers to inject.
#[derive(Clone)]
pub struct Target {
    pub url: url::Url,
    pub headers: reqwest::header::HeaderMap,
    /// `url` as a request target, parsed once (the relay sends to it on every call).
    uri: Option<axum::http::Uri>,
}

impl Target {
    pub fn new(url: url::Url, headers: reqwest::header::HeaderMap) -> Self {
        let uri = url.as_str().parse().ok();
        Self { url, headers, uri }
    }

    /// The URL as a request target (an error names why it is none).
    pub fn uri(&self) -> Result<axum::http::Uri, String> {
        match &self.uri {
            Some(u) => Ok(u.clone()),
            None => crate::gateway::upstream::uri_of(&self.url),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are credentials: only their names are shown.
        let names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("Target")
            .field("url", &self.url.as_str())
            .field("header_names", &names)
            .finish()
    }
}

/// Client-wide settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    pub client_name: String,
    pub client_version: String,
}

/// Builds the shared HTTP client for upstream MCP traffic: the outbound policy's resolver, no
/// redirects followed, no proxies from the environment, connect timeout applied.
pub fn http_client(
    settings: &ClientSettings,
    policy: &crate::net::NetPolicy,
) -> Result<reqwest::Client, String> {
    policy
        .client_builder()
        .connect_timeout(settings.connect_timeout)
        .build()
        .map_err(|e| e.to_string())
}
