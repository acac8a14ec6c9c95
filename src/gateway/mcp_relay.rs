//! `/v1/connectors-gateway/{ref}/mcp`: POST, GET and DELETE relayed to the connector's MCP
//! upstream with the selected credential injected; JSON and SSE answers streamed back as they
//! arrive (no buffering, `X-Accel-Buffering: no`, SSE comment keep-alives while idle); the
//! upstream's `Mcp-Session-Id` replaced by a sealed one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::json;

use super::headers::{inject, strip_request, strip_response};
use super::legacy_bridge::{self, BRIDGE_PREFIX};
use super::session::{SealedSessionId, SessionClaims};
use super::{GatewayError, caller, credential_choice, split_path};
use crate::api::AppState;
use crate::credentials::Choice;
use crate::identity::Principal;
use crate::mcp::{Era, PoolKey};
use crate::mcp::{SESSION_HEADER, SESSION_HEADER_NAME};
use crate::tools::{Need, Resolved, ToolsError};

const X_ACCEL_BUFFERING: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-accel-buffering");

pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    match relay(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The answer to an unknown, foreign, tampered or forgotten session: a plain 404, as an MCP
/// server gives it, so clients re-initialize.
pub(super) fn session_not_found() -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": "Session not found"}});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn relay(state: &AppState, req: Request) -> Result<Response, GatewayError> {
    let (reference, tail) = split_path(&req)?;
    if tail != "mcp" {
        return Err(GatewayError::ConnectorNotFound);
    }
    if !state.gateway.origin_allowed(req.headers()) {
        return Err(GatewayError::Forbidden("Origin not allowed".into()));
    }
    if !state.gateway.host_allowed(&req) {
        return Err(GatewayError::Forbidden("Host not allowed".into()));
    }
    let p = caller(req.headers(), state).await?;
    let (mut parts, body) = req.into_parts();
    // Read (bounded) before anything can answer early: a response sent over an unread body
    // makes the server drop a keep-alive connection the client is about to reuse.
    let limit = state.gateway.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| GatewayError::PayloadTooLarge(limit))?;
    let vault = state.registry.vault();
    let named = parts.headers.get(super::CREDENTIALS_NAME).cloned();
    let claims = match parts.headers.get(SESSION_HEADER) {
        None => None,
        Some(v) => match v
            .to_str()
            .ok()
            .and_then(|t| state.gateway.opened_sessions.open(vault, t))
        {
            Some(c) => Some(c),
            None => return Ok(session_not_found()),
        },
    };
    let choice = match claims.as_deref() {
        Some(SessionClaims { k: Some(id), .. }) => Choice::Id(id),
        Some(_) => Choice::Default,
        None => credential_choice(named.as_ref())?,
    };
    let resolved = match state
        .tools
        .resolve_upstream(&p, &reference, choice, Need::Mcp)
        .await
    {
        Ok(r) => r,
        Err(ToolsError::CredentialsNotFound(_)) if claims.is_some() => {
            return Ok(session_not_found());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(c) = &claims {
        if !c.belongs_to(&p, &resolved.connector.id) {
            return Ok(session_not_found());
        }
    }

    let bridged_session = claims
        .as_ref()
        .and_then(|c| c.s.strip_prefix(BRIDGE_PREFIX))
        .map(str::to_owned);
    // Era detection failing (auth, outage) is not our answer to give: the relay attempt below
    // lets the upstream's own answer through.
    let legacy =
        bridged_session.is_some() || (claims.is_none() && is_legacy(state, &resolved).await);
    if legacy {
        let (mut response, new_bridge) = legacy_bridge::handle(
            &state.gateway,
            state.tools.pool(),
            &resolved.target,
            bridged_session.as_deref(),
            &parts.method,
            &bytes,
        )
        .await?;
        if let Some(id) = new_bridge {
            let sealed = seal_session(vault, &resolved, &p, format!("{BRIDGE_PREFIX}{id}"));
            if let Ok(v) = HeaderValue::from_str(&sealed) {
                response.headers_mut().insert(SESSION_HEADER_NAME, v);
            }
        }
        return Ok(response);
    }
    let is_get = parts.method == Method::GET;
    // A listening stream may stay quiet for as long as it likes; everything else answers
    // within the idle timeout.
    let idle = (!is_get).then_some(state.gateway.idle_timeout);
    let (body, rpc_method) = if parts.method == Method::POST {
        let depth = state.gateway.limits.max_json_depth;
        let scan = crate::limits::json_scan(&bytes, depth);
        if scan.too_deep {
            return Err(GatewayError::JsonTooDeep(depth));
        }
        let method = rpc_method(&scan, &bytes, &resolved.connector.id);
        (Some(bytes), Some(method))
    } else {
        (None, None)
    };
    // A listening stream holds a slot of the caller's until it ends.
    let permit = if is_get {
        let max = state.gateway.limits.max_streams_per_principal;
        Some(
            state
                .gateway
                .streams_open
                .acquire(&p.user_id, max)
                .ok_or(GatewayError::TooManyStreams(max))?,
        )
    } else {
        None
    };
    let started = std::time::Instant::now();
    let mut resolved = resolved;
    let mut retried = false;
    let presented_session = parts.headers.get(SESSION_HEADER).cloned();
    let mut caller_headers = std::mem::take(&mut parts.headers);
    strip_request(&mut caller_headers, &[SESSION_HEADER_NAME]);
    let mut upstream = loop {
        // Kept for the one replay an OAuth token refresh may need.
        let mut headers = if !retried && resolved.rejected_token().is_some() {
            caller_headers.clone()
        } else {
            std::mem::take(&mut caller_headers)
        };
        inject(&mut headers, &resolved.target.headers);
        crate::telemetry::inject_context(&mut headers);
        if let Some(c) = &claims {
            let sid = HeaderValue::from_str(&c.s)
                .map_err(|_| GatewayError::Internal("bad upstream session id".into()))?;
            headers.insert(SESSION_HEADER_NAME, sid);
        }
        let sent = state
            .gateway
            .upstream
            .send(
                parts.method.clone(),
                resolved.target.uri(),
                headers,
                body.clone().map_or_else(Body::empty, Body::from),
                idle,
            )
            .await;
        let upstream = match sent {
            Ok(u) => u,
            Err(e) => {
                let e = GatewayError::from(e);
                state
                    .tools
                    .breakers()
                    .record(&resolved.connector.id, !e.is_upstream_failure());
                if let Some(m) = rpc_method {
                    let outcome = if matches!(e, GatewayError::UpstreamTimeout) {
                        "timeout"
                    } else {
                        "upstream_error"
                    };
                    crate::metrics::get().mcp(
                        &resolved.connector.id,
                        m,
                        outcome,
                        started.elapsed(),
                    );
                }
                return Err(e);
            }
        };
        // An OAuth access token the upstream refused: refresh (once, whoever asks) and replay.
        if upstream.status == StatusCode::UNAUTHORIZED && !retried {
            if let Some(rejected) = resolved.rejected_token().map(str::to_owned) {
                retried = true;
                resolved = state
                    .tools
                    .resolve_upstream_rejecting(&p, &reference, choice, Need::Mcp, Some(&rejected))
                    .await?;
                continue;
            }
        }
        break upstream;
    };
    let status = upstream.status;
    state
        .tools
        .breakers()
        .record(&resolved.connector.id, !status.is_server_error());
    let metrics = crate::metrics::get();
    let outcome = if status.is_success() {
        "ok"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "auth_rejected"
    } else {
        "upstream_error"
    };
    metrics.exchange(
        &resolved.connector.id,
        rpc_method.map(|m| (m, outcome)),
        started.elapsed(),
    );
    if claims.is_some() && (status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST) {
        // The upstream forgot the session (404; server-everything says 400): never half-working.
        let text = upstream.text().await;
        if status == StatusCode::NOT_FOUND || text.to_ascii_lowercase().contains("session") {
            return Ok(session_not_found());
        }
        return Ok(passthrough_text(status, &text));
    }

    let mut out_headers = std::mem::take(&mut upstream.headers);
    let upstream_session = out_headers.get(SESSION_HEADER).cloned();
    strip_response(&mut out_headers, &[SESSION_HEADER_NAME]);
    if let Some(sid) = upstream_session.as_ref().and_then(|v| v.to_str().ok()) {
        // The session the caller presented, named again (servers may repeat it on every
        // answer): its sealed id is already the caller's, so it is given back, not re-sealed.
        let presented = claims
            .as_ref()
            .filter(|c| c.s == sid)
            .and(presented_session);
        let v = match presented {
            Some(v) => Some(v),
            None => HeaderValue::from_str(&seal_session(vault, &resolved, &p, sid.to_owned())).ok(),
        };
        if let Some(v) = v {
            out_headers.insert(SESSION_HEADER_NAME, v);
        }
    }
    let is_sse = out_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = if is_sse {
        out_headers.remove(header::CONTENT_LENGTH);
        out_headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
        out_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Peek (without re-encoding) for list_changed, so the REST tools cache follows.
        let (tools, connector_id) = (state.tools.clone(), resolved.connector.id.clone());
        let watched = upstream.bytes_stream().inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                if contains(bytes, b"notifications/tools/list_changed") {
                    tools.tools_changed(&connector_id);
                }
            }
        });
        let guard = (metrics.stream_opened("gateway"), permit);
        let capped =
            crate::limits::sse_capped(watched, state.gateway.limits.max_sse_line_bytes, usize::MAX);
        // A drain ends listening streams (GET) at an event boundary; a POST's answer ends by
        // itself after its response, so it runs to completion (bounded by the grace period).
        let draining = if is_get {
            state.gateway.draining.clone()
        } else {
            tokio::sync::watch::channel(false).1
        };
        Body::from_stream(
            with_keepalive(capped, state.gateway.keepalive, draining).map(move |chunk| {
                let _open = &guard;
                chunk
            }),
        )
    } else {
        Body::from_stream(upstream.bytes_stream())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    Ok(response)
}

/// Whether the connector's upstream speaks the legacy HTTP+SSE transport (detected once per
/// connector version). Boxed: detection makes a large future that every relayed call would
/// otherwise carry.
async fn is_legacy(state: &AppState, resolved: &Resolved) -> bool {
    let pool_key = PoolKey {
        connector_id: resolved.connector.id.clone(),
        connector_version: resolved.connector.modified_at.clone(),
        credential: resolved.credential.clone(),
    };
    Box::pin(state.tools.pool().era_of(&pool_key, &resolved.target))
        .await
        .ok()
        == Some(Era::Legacy)
}

fn seal_session(
    vault: &crate::vault::Vault,
    resolved: &Resolved,
    p: &Principal,
    upstream_session: String,
) -> String {
    SealedSessionId::seal(
        vault,
        &SessionClaims {
            c: resolved.connector.id.clone(),
            s: upstream_session,
            k: resolved.credential_id().map(str::to_owned),
            u: p.user_id.clone(),
            w: p.workspace_id.clone(),
            o: p.org_id.clone(),
            t: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        },
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

fn passthrough_text(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

/// The JSON-RPC method of a request, for the log and a bounded metrics label (a batch is
/// `batch`): a single request's is what the depth scan found, nothing re-read; a batch's
/// methods are read without building anything else.
fn rpc_method(scan: &crate::limits::JsonScan<'_>, bytes: &Bytes, connector: &str) -> &'static str {
    if !scan.array {
        tracing::debug!(connector, method = ?scan.method, "mcp relay");
        return scan.method.map_or("none", crate::metrics::mcp_method);
    }
    /// Only the method is read; everything else is skipped without being built.
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow, default)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    let methods: Vec<std::borrow::Cow<'_, str>> =
        match serde_json::from_slice::<Vec<Head<'_>>>(bytes) {
            Ok(items) => items.into_iter().filter_map(|h| h.method).collect(),
            Err(_) => return "none",
        };
    tracing::debug!(connector, ?methods, "mcp relay batch");
    if methods.is_empty() { "none" } else { "batch" }
}

/// Relays an SSE byte stream as is, adding a `: keep-alive` comment whenever nothing came
/// for `every` — only between events, never inside one — and ending it cleanly (at an event
/// boundary) once `draining` turns `true`.
pub fn with_keepalive<S, E>(
    inner: S,
    every: Duration,
    draining: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    struct St<S> {
        inner: S,
        at_boundary: bool,
        done: bool,
        draining: tokio::sync::watch::Receiver<bool>,
        watching: bool,
    }
    let start = St {
        inner,
        at_boundary: true,
        done: false,
        draining,
        watching: true,
    };
    futures_util::stream::unfold(start, move |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            if *st.draining.borrow() && st.at_boundary {
                return None;
            }
            let next = tokio::time::timeout(every, st.inner.next());
            tokio::select! {
                changed = st.draining.changed(), if st.watching => {
                    // The sender gone means no drain will come: stop watching.
                    if changed.is_err() {
                        st.watching = false;
                    }
                }
                r = next => match r {
                    Ok(Some(Ok(chunk))) => {
                        st.at_boundary = chunk.ends_with(b"\n\n") || chunk.ends_with(b"\r\n\r\n");
                        return Some((Ok(chunk), st));
                    }
                    Ok(Some(Err(e))) => {
                        st.done = true;
                        return Some((Err(std::io::Error::other(e)), st));
                    }
                    Ok(None) => return None,
                    Err(_) if st.at_boundary => {
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), st));
                    }
                    Err(_) => {}
                },
            }
        }
    })
}
