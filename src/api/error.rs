//! The one place API errors become HTTP responses: `{"detail": "<text>"}` with the status of
//! the error, or the FastAPI-style `{"detail": [{loc, msg, type, input?}]}` for 422.
//! Internal causes are logged here and never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::registry::RegistryError;

/// One element of a FastAPI validation error `loc`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Loc {
    Key(String),
    Index(usize),
}

impl From<&str> for Loc {
    fn from(s: &str) -> Self {
        Loc::Key(s.to_owned())
    }
}

impl From<usize> for Loc {
    fn from(i: usize) -> Self {
        Loc::Index(i)
    }
}

/// One FastAPI-style validation error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub loc: Vec<Loc>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

impl FieldError {
    pub fn new(loc: Vec<Loc>, kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind,
            input: None,
        }
    }

    pub fn with_input(mut self, input: &Value) -> Self {
        // Large inputs are not echoed whole.
        let echoed = match input {
            Value::String(s) if s.len() > 256 => Value::String(format!("{}…", truncate(s, 256))),
            Value::Object(_) | Value::Array(_) => return self,
            v => v.clone(),
        };
        self.input = Some(echoed);
        self
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("The connector's upstream is failing; retry in {0} s")]
    CircuitOpen(u64),
    #[error("Rate limit reached; retry in {0} s")]
    RateLimited(u64),
    #[error("{0}")]
    BadRequest(String),
    /// The upstream refused the credentials the gateway used (not the caller's API key).
    #[error("{0}")]
    UpstreamAuth(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    /// A sealed secret did not open: fail closed, say so, log the cause.
    #[error(
        "A stored secret for this request cannot be opened (wrong vault key or tampered record); an operator must restore the key or re-create the credential"
    )]
    SecretUnreadable(String),
    /// Logged with its cause; the caller sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn field(loc: Vec<Loc>, kind: &'static str, msg: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(loc, kind, msg)])
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::CircuitOpen(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UpstreamAuth(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) | ApiError::SecretUnreadable(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound => ApiError::NotFound("Connector not found".into()),
            RegistryError::Forbidden(m) => ApiError::Forbidden(m),
            RegistryError::Conflict(m) => ApiError::Conflict(m),
            RegistryError::Invalid(field, msg) => {
                ApiError::field(vec!["body".into(), field.into()], "value_error", msg)
            }
            RegistryError::Vault(v) => ApiError::SecretUnreadable(v.to_string()),
            RegistryError::Store(s) if s.is_unavailable() => {
                ApiError::Unavailable("The store is unavailable; try again")
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::tools::ToolsError> for ApiError {
    fn from(e: crate::tools::ToolsError) -> Self {
        use crate::mcp::McpError;
        use crate::tools::ToolsError;
        let text = e.to_string();
        match e {
            ToolsError::Registry(r) => r.into(),
            ToolsError::NotMcp | ToolsError::NotHttp => ApiError::BadRequest(text),
            ToolsError::RateLimited(secs) => ApiError::RateLimited(secs),
            ToolsError::Deactivated(_) => ApiError::Forbidden(text),
            ToolsError::CredentialsNotFound(_) => ApiError::NotFound(text),
            ToolsError::CredentialsRequired => ApiError::UpstreamAuth(text),
            ToolsError::CredentialsUnusable(_) => ApiError::BadRequest(text),
            ToolsError::Credentials(c) => c.into(),
            ToolsError::BadTarget(_) => ApiError::BadGateway(text),
            ToolsError::Rpc(rpc) | ToolsError::Upstream(McpError::Rpc(rpc)) => {
                let detail = format!("Upstream MCP error {}: {}", rpc.code, rpc.message);
                if (-32602..=-32600).contains(&rpc.code) {
                    ApiError::BadRequest(detail)
                } else {
                    ApiError::BadGateway(detail)
                }
            }
            ToolsError::Upstream(McpError::Timeout) => {
                ApiError::GatewayTimeout("Upstream MCP server timed out".into())
            }
            ToolsError::Upstream(McpError::AuthRejected(code)) => ApiError::UpstreamAuth(format!(
                "The upstream MCP server rejected the credentials (HTTP {code}); connect or refresh the connector's credentials"
            )),
            ToolsError::Upstream(McpError::Unreachable(cause)) => {
                tracing::warn!(request = %crate::observe::current(), %cause, "upstream MCP server unreachable");
                ApiError::BadGateway("Upstream MCP server unavailable".into())
            }
            ToolsError::Upstream(McpError::Http { status, .. }) => {
                ApiError::BadGateway(format!("Upstream MCP server answered HTTP {status}"))
            }
            ToolsError::Upstream(e @ (McpError::Protocol(_) | McpError::SessionExpired)) => {
                tracing::warn!(request = %crate::observe::current(), error = %e, "upstream MCP server misbehaved");
                ApiError::BadGateway("Upstream MCP server sent an invalid answer".into())
            }
            ToolsError::Refused(_) => ApiError::BadGateway(text),
            ToolsError::CircuitOpen(secs) => ApiError::CircuitOpen(secs),
            ToolsError::OAuth(o) => o.into(),
        }
    }
}

impl From<crate::oauth::OAuthError> for ApiError {
    fn from(e: crate::oauth::OAuthError) -> Self {
        use crate::oauth::OAuthError;
        let text = e.to_string();
        match e {
            OAuthError::Registry(r) => r.into(),
            OAuthError::Credentials(c) => c.into(),
            OAuthError::Store(s) => s.into(),
            OAuthError::BadRequest(m) => ApiError::BadRequest(m),
            OAuthError::RefreshFailed(_) => ApiError::UpstreamAuth(text),
            OAuthError::Discovery(_)
            | OAuthError::Refused(_)
            | OAuthError::Unreachable(_)
            | OAuthError::Provider(_) => ApiError::BadGateway(text),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        RegistryError::Store(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Validation(errors) => json!({ "detail": errors }),
            ApiError::SecretUnreadable(cause) => {
                tracing::error!(request = %crate::observe::current(), error = %cause, "sealed secret cannot be opened");
                json!({ "detail": self.to_string() })
            }
            ApiError::Internal(cause) => {
                tracing::error!(request = %crate::observe::current(), error = %cause, "internal error");
                json!({ "detail": "Internal server error" })
            }
            other => json!({ "detail": other.to_string() }),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited(secs) | ApiError::CircuitOpen(secs) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
