//! The fast upstream: a minimal hyper server, so that the gateway (not the upstream) is what
//! the benchmark measures.
//!
//! - `POST /mcp` (JSON replies, session ids), `POST /mcp-sse` (SSE replies, session ids),
//!   `POST /mcp-stateless` (JSON replies, no session): `server/discover` → method not found
//!   (so the gateway settles on sessions), `initialize`, `notifications/*` → 202,
//!   `tools/list`, `tools/call` (echoes `arguments.text`), `ping`. `POST /mcp-paced`: as
//!   `/mcp`, answering after a fixed 2 ms (the callgrind gate).
//! - `GET /mcp*`: an SSE listening stream that stays idle (scenario 6).
//! - `POST /echo`: the request body back (the `/http` relay, scenario 5).
//! - `GET /stats`: open listening streams, and connections accepted since start.
//!
//! Every request must carry `Authorization: Bearer <token>` (the credential the gateway
//! injects), and every MCP request after `initialize` on a session path an `Mcp-Session-Id`
//! it issued: a gateway that dropped either would fail the smoke run.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The bearer token every request must carry.
pub const TOKEN: &str = "bench-upstream-token";
const BEARER: &[u8] = b"Bearer bench-upstream-token";
const SESSION_PREFIX: &str = "bench-session-";
/// `/mcp-paced` answers after this long, so that a gateway under callgrind always waits for
/// the answer the same way (an answer already there when it looks, or not yet, takes
/// different paths through the runtime).
const PACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Response bodies: a known-length buffer, one chunk of unknown length (SSE, chunked), or a
/// stream that never sends anything.
pub enum Out {
    Full(Option<Bytes>),
    Chunked(Option<Bytes>),
    /// Held for its `Drop` (the open-stream count).
    Idle {
        _open: StreamGuard,
    },
}

/// Counts an open listening stream for as long as it lives.
pub struct StreamGuard(Arc<State>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Body for Out {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Out::Full(b) | Out::Chunked(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            // Never woken: the connection closing drops it.
            Out::Idle { .. } => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Out::Full(None) | Out::Chunked(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Out::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Out::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[derive(Default)]
struct State {
    next_session: AtomicU64,
    open_streams: AtomicU64,
    connections: AtomicU64,
}

/// Serves until the process ends (or stdin closes: the parent is gone).
pub async fn serve(listen: &str) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    crate::exit_when_stdin_closes();
    serve_on(listener).await
}

/// Serves connections accepted by `listener`.
pub async fn serve_on(listener: tokio::net::TcpListener) -> Result<()> {
    let state = Arc::new(State::default());
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        state.connections.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, ctype: &str, body: Out) -> Response<Out> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if !ctype.is_empty() {
        if let Ok(v) = ctype.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
    }
    r
}

fn text(status: StatusCode, msg: &'static str) -> Response<Out> {
    reply(
        status,
        "text/plain",
        Out::Full(Some(Bytes::from_static(msg.as_bytes()))),
    )
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == BEARER);
    if !authorized {
        return Ok(text(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ));
    }
    let path = req.uri().path().to_owned();
    let mode = match path.as_str() {
        "/mcp" => Some((false, true)),
        "/mcp-sse" => Some((true, true)),
        "/mcp-stateless" => Some((false, false)),
        "/mcp-paced" => Some((false, true)),
        _ => None,
    };
    if path == "/mcp-paced" && req.method() == Method::POST {
        tokio::time::sleep(PACE).await;
    }
    Ok(match (req.method().clone(), mode) {
        (Method::POST, Some((sse, sessions))) => mcp_post(&state, req, sse, sessions).await,
        (Method::GET, Some(_)) => {
            state.open_streams.fetch_add(1, Ordering::Relaxed);
            reply(
                StatusCode::OK,
                "text/event-stream",
                Out::Idle {
                    _open: StreamGuard(state.clone()),
                },
            )
        }
        (Method::DELETE, Some(_)) => reply(StatusCode::OK, "", Out::Full(None)),
        (Method::POST, None) if path == "/echo" => match req.into_body().collect().await {
            Ok(b) => reply(
                StatusCode::OK,
                "application/octet-stream",
                Out::Full(Some(b.to_bytes())),
            ),
            Err(_) => text(StatusCode::BAD_REQUEST, "body broke"),
        },
        (Method::GET, None) if path == "/stats" => {
            let body = json!({
                "open_streams": state.open_streams.load(Ordering::Relaxed),
                "connections": state.connections.load(Ordering::Relaxed),
            });
            reply(
                StatusCode::OK,
                "application/json",
                Out::Full(Some(body.to_string().into())),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    })
}

async fn mcp_post(
    state: &State,
    req: Request<Incoming>,
    sse: bool,
    sessions: bool,
) -> Response<Out> {
    let session_ok = req
        .headers()
        .get("mcp-session-id")
        .is_some_and(|v| v.as_bytes().starts_with(SESSION_PREFIX.as_bytes()));
    let Ok(body) = req.into_body().collect().await else {
        return text(StatusCode::BAD_REQUEST, "body broke");
    };
    let Ok(msg) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return text(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_init = method == "initialize" || method == "server/discover";
    if sessions && !is_init && !session_ok {
        return text(StatusCode::BAD_REQUEST, "missing session id");
    }
    let Some(id) = msg.get("id").cloned() else {
        return reply(StatusCode::ACCEPTED, "", Out::Full(None));
    };
    let params = msg.get("params").unwrap_or(&Value::Null);
    let outcome = match method {
        "initialize" => Ok(json!({
            "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "bench-upstream", "version": "1.0.0"}
        })),
        "tools/list" => Ok(json!({"tools": [{
            "name": "echo",
            "description": "Echo the text back",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
        }]})),
        "tools/call" => Ok(json!({
            "content": [{"type": "text", "text": params.pointer("/arguments/text").cloned().unwrap_or(Value::Null)}],
            "isError": false
        })),
        "ping" => Ok(json!({})),
        _ => Err(json!({"code": -32601, "message": "Method not found"})),
    };
    let answer = match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    };
    let mut resp = if sse {
        let framed = format!("event: message\ndata: {answer}\n\n");
        reply(
            StatusCode::OK,
            "text/event-stream",
            Out::Chunked(Some(framed.into())),
        )
    } else {
        reply(
            StatusCode::OK,
            "application/json",
            Out::Full(Some(answer.to_string().into())),
        )
    };
    if sessions && method == "initialize" {
        let n = state.next_session.fetch_add(1, Ordering::Relaxed);
        if let Ok(v) = format!("{SESSION_PREFIX}{n:010}").parse() {
            resp.headers_mut().insert("mcp-session-id", v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, Conn, Req};
    use crate::scenarios;

    #[tokio::test]
    async fn speaks_mcp_with_sessions_and_echoes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_on(listener));

        for path in ["/mcp", "/mcp-sse"] {
            let sid = crate::gateway::mcp_session(addr, path, TOKEN)
                .await
                .unwrap();
            let sid = sid.expect("a session id");
            assert!(sid.starts_with(SESSION_PREFIX));
            let req = scenarios::tools_call(path, TOKEN, Some(&sid)).unwrap();
            let answer = Conn::open(addr).await.unwrap().send(&req).await.unwrap();
            assert_eq!(answer.status, StatusCode::OK);
            let deep = scenarios::tools_call_check().deep.unwrap();
            deep(&answer).unwrap();
            let sse = answer
                .header("content-type")
                .unwrap()
                .starts_with("text/event-stream");
            assert_eq!(sse, path == "/mcp-sse");
            // Without the session id: refused.
            let req = scenarios::tools_call(path, TOKEN, None).unwrap();
            let answer = client::once(addr, &req).await.unwrap();
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        }

        let mut echo = Req::new(Method::POST, "/echo").bearer(TOKEN).unwrap();
        echo.body = Bytes::from_static(b"0123456789");
        let answer = client::once(addr, &echo).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"0123456789");

        let anonymous = Req::new(Method::POST, "/echo");
        let answer = client::once(addr, &anonymous).await.unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        server.abort();
    }
}
