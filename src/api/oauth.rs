//! `GET /v1/connectors/{ref}/auth_url` (§5.6), `GET /v1/connectors/{ref}/authentication_methods`
//! (§5.7), and the OAuth callback `GET /oauth/callback` (not part of the SDK surface: the
//! provider redirects the user's browser there; the sealed state authenticates it).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, FieldError};
use super::extract::{Caller, PathParams, Query};
use crate::credentials::CredentialName;
use crate::oauth::{AuthUrlRequest, CallbackOutcome, CallbackRequest};
use crate::registry::AuthenticationType;

type ApiResult<T> = Result<T, ApiError>;

fn invalid_query(key: &str, kind: &'static str, msg: String, input: &str) -> ApiError {
    ApiError::Validation(vec![
        FieldError::new(vec!["query".into(), key.into()], kind, msg).with_input(&json!(input)),
    ])
}

pub async fn auth_url(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams(reference): PathParams<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    let non_empty = |k: &str| q.string(k).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(m) = q.string("method_type") {
        if AuthenticationType::parse(m).is_none() {
            return Err(invalid_query(
                "method_type",
                "enum",
                format!("Input should be {}", AuthenticationType::expected()),
                m,
            ));
        }
    }
    if let Some(n) = non_empty("credentials_name") {
        if let Err(msg) = CredentialName::parse(&n) {
            return Err(invalid_query("credentials_name", "value_error", msg, &n));
        }
    }
    let request = AuthUrlRequest {
        app_return_url: non_empty("app_return_url"),
        method_type: non_empty("method_type"),
        credentials_name: non_empty("credentials_name"),
        credentials_title: non_empty("credentials_title"),
        github_installation_link: q.bool("github_installation_link")?.unwrap_or(false),
    };
    let (url, ttl) = state.oauth.auth_url(&p, &reference, request).await?;
    Ok(Json(json!({ "auth_url": url, "ttl": ttl })))
}

pub async fn authentication_methods(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams(reference): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let c = state.registry.resolve(&p, &reference).await?;
    Ok(Json(Value::Array(
        state.oauth.authentication_methods(&c).await,
    )))
}

pub async fn callback(State(state): State<AppState>, q: Query) -> Response {
    let take = |k: &str| q.string(k).map(str::to_owned);
    let outcome = state
        .oauth
        .callback(CallbackRequest {
            state: take("state"),
            code: take("code"),
            error: take("error"),
            error_description: take("error_description"),
            iss: take("iss"),
        })
        .await;
    match outcome {
        CallbackOutcome::Redirect(url) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            no_store(r)
        }
        CallbackOutcome::Page(status, title, message) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let body = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
                 <body><h1>{t}</h1><p>{m}</p></body></html>",
                t = escape(title),
                m = escape(&message)
            );
            let mut r = (status, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            no_store(r)
        }
    }
}

fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    r
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_escape_html() {
        assert_eq!(
            super::escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
