//! `/v1/connectors-gateway/{ref}/http[/<path>][?query]`: any method, forwarded to the
//! connector's `server` with the rest of the path and the query byte for byte; bodies streamed
//! both ways; the upstream's status, headers (repeated ones kept) and body returned unchanged;
//! redirects returned, not followed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::headers::{inject, request_headers, strip_response};
use super::{GatewayError, caller, credential_choice, split_path};
use crate::api::AppState;
use crate::tools::Need;

pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    match relay(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The raw rest of the path after `/http`, with dot segments (also `%2e`) refused.
fn rest_of_path(tail: &str) -> Result<&str, GatewayError> {
    let rest = tail
        .strip_prefix("http")
        .ok_or(GatewayError::ConnectorNotFound)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(GatewayError::ConnectorNotFound);
    }
    for segment in rest.split('/') {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        if decoded == "." || decoded == ".." {
            return Err(GatewayError::InvalidPath);
        }
    }
    Ok(rest)
}

/// `server` without its trailing `/` + `/` + rest + (`?` + raw query).
fn upstream_url(server: &str, rest: &str, query: Option<&str>) -> Result<url::Url, GatewayError> {
    let mut s = format!(
        "{}/{}",
        server.trim_end_matches('/'),
        rest.trim_start_matches('/')
    );
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    url::Url::parse(&s).map_err(|_| GatewayError::InvalidPath)
}

async fn relay(state: &AppState, req: Request) -> Result<Response, GatewayError> {
    let (reference, tail) = split_path(&req)?;
    let rest = rest_of_path(tail)?.to_owned();
    let p = caller(req.headers(), state).await?;
    let (parts, body) = req.into_parts();
    let choice = credential_choice(parts.headers.get(super::CREDENTIALS_NAME))?;
    let mut resolved = state
        .tools
        .resolve_upstream(&p, &reference, choice, Need::Http)
        .await?;
    // With an OAuth credential, a small body is kept so the request can be replayed once with
    // a refreshed token after an upstream 401; other bodies stream through untouched.
    let small = match parts.headers.get(axum::http::header::CONTENT_LENGTH) {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
            .is_some_and(|n| n <= state.gateway.max_body_bytes),
        None => !parts
            .headers
            .contains_key(axum::http::header::TRANSFER_ENCODING),
    };
    let replayable = resolved.oauth_bearer.is_some() && small;
    let max_body = state.gateway.limits.max_relay_body_bytes;
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(GatewayError::PayloadTooLarge(max_body));
    }
    let mut kept: Option<axum::body::Bytes> = None;
    // A request without a body (no `Content-Length`, no `Transfer-Encoding`) goes without one,
    // not as an empty chunked body.
    let mut stream = (!hyper::body::Body::is_end_stream(&body)).then_some(body);
    if replayable {
        let limit = state.gateway.max_body_bytes;
        let body = stream.take().unwrap_or_default();
        kept = Some(
            axum::body::to_bytes(body, limit)
                .await
                .map_err(|_| GatewayError::PayloadTooLarge(limit))?,
        );
    }
    let headers_in = request_headers(&parts.headers, &[]);
    let started = std::time::Instant::now();
    let mut retried = false;
    let mut upstream = loop {
        let url = upstream_url(&resolved.connector.doc.server, &rest, parts.uri.query())?;
        let mut headers = headers_in.clone();
        inject(&mut headers, &resolved.target.headers);
        crate::telemetry::inject_context(&mut headers);
        let body = match (&kept, stream.take()) {
            (Some(bytes), _) => Body::from(bytes.clone()),
            (None, Some(body)) => Body::from_stream(crate::limits::body_capped(
                body.into_data_stream(),
                max_body,
            )),
            (None, None) => Body::empty(),
        };
        let sent = state
            .gateway
            .upstream
            .send(
                parts.method.clone(),
                super::upstream::uri_of(&url),
                headers,
                body,
                Some(state.gateway.idle_timeout),
            )
            .await;
        let upstream = sent.map_err(|e| {
            let e = if e.too_large() {
                GatewayError::PayloadTooLarge(max_body)
            } else {
                GatewayError::from(e)
            };
            state
                .tools
                .breakers()
                .record(&resolved.connector.id, !e.is_upstream_failure());
            e
        })?;
        if upstream.status == axum::http::StatusCode::UNAUTHORIZED && !retried {
            if let (Some(rejected), Some(_)) = (resolved.rejected_token().map(str::to_owned), &kept)
            {
                retried = true;
                resolved = state
                    .tools
                    .resolve_upstream_rejecting(&p, &reference, choice, Need::Http, Some(&rejected))
                    .await?;
                continue;
            }
        }
        break upstream;
    };
    state
        .tools
        .breakers()
        // An HTTP API's own 500 is an answer; a gateway-ish 502/503/504 means it is down.
        .record(
            &resolved.connector.id,
            !matches!(upstream.status.as_u16(), 502..=504),
        );
    crate::metrics::get().upstream(&resolved.connector.id, started.elapsed());
    tracing::debug!(connector = %resolved.connector.id, status = upstream.status.as_u16(), "http relay");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = upstream.status;
    let mut headers = std::mem::take(&mut upstream.headers);
    strip_response(&mut headers, &[]);
    *response.headers_mut() = headers;
    *response.body_mut() = Body::from_stream(upstream.bytes_stream());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(rest_of_path("http").unwrap(), "");
        assert_eq!(rest_of_path("http/").unwrap(), "/");
        assert_eq!(rest_of_path("http/items/search").unwrap(), "/items/search");
        for bad in [
            "http/../models",
            "http/items/%2e%2e/models",
            "http/./x",
            "http/%2E",
        ] {
            assert!(
                matches!(rest_of_path(bad), Err(GatewayError::InvalidPath)),
                "{bad}"
            );
        }
        assert!(matches!(
            rest_of_path("httpx"),
            Err(GatewayError::ConnectorNotFound)
        ));
        let u = upstream_url(
            "https://api.test/v1/",
            "/items/search",
            Some("q=hello%20world"),
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.test/v1/items/search?q=hello%20world"
        );
        assert_eq!(
            upstream_url("https://api.test", "", None).unwrap().as_str(),
            "https://api.test/"
        );
        assert_eq!(
            upstream_url("https://api.test/a", "/x%2Fy", None)
                .unwrap()
                .as_str(),
            "https://api.test/a/x%2Fy"
        );
    }
}
