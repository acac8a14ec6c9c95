//! Gateway-authored errors: every one is an HTTP error status with the exact `Proxy-Status`
//! member of contract §7.6 and a `{"detail": …}` body. Mapped here, once.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::proxy_status;
use crate::credentials::CredentialsError;
use crate::mcp::McpError;
use crate::registry::RegistryError;
use crate::tools::ToolsError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("Connector not found")]
    ConnectorNotFound,
    #[error("The connector does not support MCP")]
    NotMcp,
    #[error("The connector does not support HTTP")]
    NotHttp,
    #[error("{0}")]
    CredentialsNotFound(String),
    #[error("{0}")]
    CredentialsRequired(String),
    #[error("Invalid path: dot segments are not allowed")]
    InvalidPath,
    #[error("Rate limit reached; retry in {0} s")]
    RateLimited(u64),
    #[error("{0}")]
    BadRequest(String),
    #[error("Request body too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("Too many open streams (limit {0} per caller)")]
    TooManyStreams(usize),
    #[error("JSON nested deeper than {0} levels")]
    JsonTooDeep(usize),
    #[error("Upstream MCP server unavailable")]
    UpstreamUnavailable(String),
    #[error("Upstream timed out")]
    UpstreamTimeout,
    #[error("{0}")]
    CredentialsRefreshFailed(String),
    #[error("The connector's upstream is failing; retry in {0} s")]
    CircuitOpen(u64),
    #[error("The gateway's store is unavailable; try again")]
    StoreUnavailable,
    #[error("{0}")]
    DestinationProhibited(String),
    /// Logged with its cause; the caller sees a generic message.
    #[error("Internal gateway error")]
    Internal(String),
}

impl GatewayError {
    /// Whether this error means the upstream itself failed (for the circuit breaker).
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamTimeout
        )
    }

    /// (status, RFC 9209 error, whether `status-code` is written, details)
    fn parts(&self) -> (StatusCode, &'static str, bool, Option<&'static str>) {
        match self {
            GatewayError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "http_request_denied",
                true,
                Some("unauthorized"),
            ),
            GatewayError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "http_request_denied",
                true,
                Some("forbidden"),
            ),
            GatewayError::ConnectorNotFound => (
                StatusCode::NOT_FOUND,
                "http_request_error",
                true,
                Some("connector_not_found"),
            ),
            GatewayError::NotMcp | GatewayError::NotHttp => (
                StatusCode::BAD_REQUEST,
                "http_request_error",
                true,
                Some("connector_protocol_mismatch"),
            ),
            GatewayError::CredentialsNotFound(_) => (
                StatusCode::NOT_FOUND,
                "http_request_error",
                true,
                Some("credentials_not_found"),
            ),
            GatewayError::CredentialsRequired(_) => (
                StatusCode::UNAUTHORIZED,
                "http_request_error",
                true,
                Some("credentials_required"),
            ),
            GatewayError::InvalidPath => (
                StatusCode::BAD_REQUEST,
                "http_request_error",
                true,
                Some("invalid_path"),
            ),
            GatewayError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "http_request_denied",
                true,
                Some("rate_limit_reached"),
            ),
            GatewayError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "http_request_error",
                true,
                Some("invalid_request"),
            ),
            GatewayError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "http_request_error",
                true,
                Some("request_too_large"),
            ),
            GatewayError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "http_request_error",
                true,
                Some("request_headers_too_large"),
            ),
            GatewayError::TooManyStreams(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "http_request_denied",
                true,
                Some("too_many_streams"),
            ),
            GatewayError::JsonTooDeep(_) => (
                StatusCode::BAD_REQUEST,
                "http_request_error",
                true,
                Some("json_too_deep"),
            ),
            GatewayError::UpstreamUnavailable(_) => (
                StatusCode::BAD_GATEWAY,
                "destination_unavailable",
                false,
                Some("upstream_unavailable"),
            ),
            GatewayError::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "connection_timeout",
                false,
                Some("upstream_timeout"),
            ),
            GatewayError::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "proxy_internal_error",
                false,
                Some("store_unavailable"),
            ),
            GatewayError::CircuitOpen(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "destination_unavailable",
                false,
                Some("circuit_open"),
            ),
            GatewayError::CredentialsRefreshFailed(_) => (
                StatusCode::UNAUTHORIZED,
                "http_request_error",
                true,
                Some("credentials_refresh_failed"),
            ),
            GatewayError::DestinationProhibited(_) => (
                StatusCode::BAD_GATEWAY,
                "destination_ip_prohibited",
                false,
                Some("destination_not_allowed"),
            ),
            GatewayError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "proxy_internal_error",
                false,
                None,
            ),
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, error, with_code, details) = self.parts();
        crate::metrics::get()
            .gateway_errors
            .with_label_values(&[error, details.unwrap_or("")])
            .inc();
        match &self {
            GatewayError::Internal(cause) => {
                tracing::error!(request = %crate::observe::current(), error = %cause, "gateway internal error")
            }
            GatewayError::UpstreamUnavailable(cause) => {
                tracing::warn!(request = %crate::observe::current(), %cause, "upstream unavailable")
            }
            _ => {}
        }
        let member = proxy_status::member(error, with_code.then_some(status.as_u16()), details);
        let mut response =
            (status, axum::Json(json!({ "detail": self.to_string() }))).into_response();
        if let Ok(v) = HeaderValue::from_str(&member) {
            response.headers_mut().insert("proxy-status", v);
        }
        if let GatewayError::RateLimited(secs) | GatewayError::CircuitOpen(secs) = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        response
    }
}

impl From<McpError> for GatewayError {
    fn from(e: McpError) -> Self {
        match e {
            McpError::Timeout => GatewayError::UpstreamTimeout,
            other => GatewayError::UpstreamUnavailable(other.to_string()),
        }
    }
}

impl From<crate::oauth::OAuthError> for GatewayError {
    fn from(e: crate::oauth::OAuthError) -> Self {
        use crate::oauth::OAuthError;
        let text = e.to_string();
        match e {
            OAuthError::Registry(r) => r.into(),
            OAuthError::RefreshFailed(_) => GatewayError::CredentialsRefreshFailed(text),
            OAuthError::Refused(_) => GatewayError::DestinationProhibited(text),
            OAuthError::BadRequest(m) => GatewayError::BadRequest(m),
            OAuthError::Credentials(_) | OAuthError::Store(_) => GatewayError::Internal(text),
            OAuthError::Discovery(_) | OAuthError::Unreachable(_) | OAuthError::Provider(_) => {
                GatewayError::CredentialsRefreshFailed(text)
            }
        }
    }
}

impl From<RegistryError> for GatewayError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound => GatewayError::ConnectorNotFound,
            RegistryError::Forbidden(m) => GatewayError::Forbidden(m),
            RegistryError::Store(s) if s.is_unavailable() => GatewayError::StoreUnavailable,
            other => GatewayError::Internal(other.to_string()),
        }
    }
}

impl From<ToolsError> for GatewayError {
    fn from(e: ToolsError) -> Self {
        let text = e.to_string();
        match e {
            ToolsError::Registry(r) => r.into(),
            ToolsError::NotMcp => GatewayError::NotMcp,
            ToolsError::NotHttp => GatewayError::NotHttp,
            ToolsError::RateLimited(secs) => GatewayError::RateLimited(secs),
            ToolsError::Deactivated(_) => GatewayError::Forbidden(text),
            ToolsError::CredentialsNotFound(_) => GatewayError::CredentialsNotFound(text),
            ToolsError::CredentialsRequired | ToolsError::CredentialsUnusable(_) => {
                GatewayError::CredentialsRequired(text)
            }
            ToolsError::Credentials(CredentialsError::Registry(r)) => r.into(),
            ToolsError::Credentials(CredentialsError::Store(s)) if s.is_unavailable() => {
                GatewayError::StoreUnavailable
            }
            ToolsError::Credentials(other) => GatewayError::Internal(other.to_string()),
            ToolsError::BadTarget(m) => GatewayError::Internal(m),
            ToolsError::Upstream(m) => m.into(),
            ToolsError::Rpc(rpc) => {
                GatewayError::Internal(format!("unexpected JSON-RPC error {}", rpc.code))
            }
            ToolsError::Refused(_) => GatewayError::DestinationProhibited(text),
            ToolsError::CircuitOpen(secs) => GatewayError::CircuitOpen(secs),
            ToolsError::OAuth(o) => o.into(),
        }
    }
}
