//! Token endpoint requests (RFC 6749 §4.1.3, §6, §4.4) with client authentication
//! `client_secret_basic`, `client_secret_post` or `none` (public client).

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::OAuthError;
use super::http::HttpJson;

/// An OAuth client as the token endpoint knows it.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub method: String,
}

/// A successful token answer.
#[derive(Debug)]
pub struct TokenAnswer {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
}

/// A failed token request.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The provider answered with an OAuth error (`invalid_grant`, `invalid_client`, …).
    #[error("{error}{}", .description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Rejected {
        status: u16,
        error: String,
        description: Option<String>,
    },
    #[error(transparent)]
    Transport(#[from] OAuthError),
}

impl TokenError {
    /// Errors that will not go away by retrying with the same grant or client.
    pub fn is_permanent(&self) -> bool {
        matches!(self, TokenError::Rejected { error, .. }
            if matches!(error.as_str(), "invalid_grant" | "invalid_client" | "unauthorized_client"))
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            TokenError::Rejected { status, .. } => Some(*status),
            TokenError::Transport(_) => None,
        }
    }
}

pub async fn request(
    http: &HttpJson,
    endpoint: &str,
    client: &ClientAuth,
    params: &[(&str, &str)],
) -> Result<TokenAnswer, TokenError> {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    let secret = client.client_secret.as_ref().map(|s| s.expose_secret());
    let basic = match (client.method.as_str(), secret) {
        ("client_secret_basic", Some(s)) => Some((client.client_id.as_str(), s)),
        ("client_secret_post", Some(s)) => {
            all.push(("client_id", &client.client_id));
            all.push(("client_secret", s));
            None
        }
        _ => {
            all.push(("client_id", &client.client_id));
            None
        }
    };
    let (status, body) = http.post_form(endpoint, &all, basic).await?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    if !status.is_success() {
        return Err(TokenError::Rejected {
            status: status.as_u16(),
            error: text("error").unwrap_or_else(|| format!("http_{}", status.as_u16())),
            description: text("error_description"),
        });
    }
    let access_token = text("access_token").ok_or_else(|| TokenError::Rejected {
        status: status.as_u16(),
        error: "invalid_response".into(),
        description: Some("token answer has no access_token".into()),
    })?;
    Ok(TokenAnswer {
        access_token: SecretString::from(access_token),
        refresh_token: text("refresh_token").map(SecretString::from),
        expires_in: body.get("expires_in").and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        }),
        scope: text("scope"),
    })
}
