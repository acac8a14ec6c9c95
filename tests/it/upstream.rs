//! Real MCP upstreams for the tests: the official Rust SDK (`rmcp`) serving Streamable HTTP in
//! each mode (2026-07-28 stateless, sessions with SSE replies, sessionless JSON replies), and a
//! small hand-written legacy HTTP+SSE (2024-11-05) server (rmcp no longer ships one). A
//! recording layer counts requests by JSON-RPC method and can take the upstream down.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, request::Parts};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

/// Which upstream to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// rmcp with every version: clients discover 2026-07-28 and go stateless.
    Stateless2026,
    /// rmcp limited to ≤ 2025-11-25, with sessions and SSE replies.
    Sessions,
    /// rmcp limited to ≤ 2025-11-25, no sessions, JSON replies.
    JsonNoSessions,
    /// Hand-written 2024-11-05 HTTP+SSE server.
    LegacySse,
    /// Hand-written Streamable HTTP server whose SSE answers start with an empty priming
    /// event and carry a `tools/list_changed` notification before the response.
    RawSse,
}

/// What the upstream saw, and switches to misbehave.
#[derive(Debug, Default)]
pub struct Recorder {
    counts: Mutex<HashMap<String, u64>>,
    pub authorization: Mutex<Vec<String>>,
    pub api_keys: Mutex<Vec<String>>,
    /// Answer every request with 503.
    pub down: AtomicBool,
    /// Require this `X-Api-Key` (401 otherwise).
    pub require_api_key: Mutex<Option<String>>,
    pub session_ids: Mutex<Vec<String>>,
    /// Repeat the request's `Mcp-Session-Id` on every answer (as some servers do).
    pub echo_session: AtomicBool,
}

impl Recorder {
    pub async fn count(&self, method: &str) -> u64 {
        self.counts.lock().await.get(method).copied().unwrap_or(0)
    }
}

pub struct Upstream {
    pub url: String,
    pub recorder: Arc<Recorder>,
    sessions: Option<Arc<LocalSessionManager>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn spawn(mode: Mode) -> Self {
        let recorder = Arc::new(Recorder::default());
        let (router, sessions, path) = match mode {
            Mode::LegacySse => (legacy_router(), None, "/sse"),
            Mode::RawSse => (Router::new().route("/raw", post(raw_message)), None, "/raw"),
            _ => {
                let manager = Arc::new(LocalSessionManager::default());
                let legacy_only = mode != Mode::Stateless2026;
                let config = StreamableHttpServerConfig::default()
                    .with_json_response(mode == Mode::JsonNoSessions)
                    .with_legacy_session_mode(mode == Mode::Sessions);
                let service = StreamableHttpService::new(
                    move || Ok(Tools::new(legacy_only)),
                    manager.clone(),
                    config,
                );
                (
                    Router::new().nest_service("/mcp", service),
                    Some(manager),
                    "/mcp",
                )
            }
        };
        let router = router.layer(middleware::from_fn_with_state(recorder.clone(), record));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url: format!("http://{addr}{path}"),
            recorder,
            sessions,
            task,
        }
    }

    /// Makes the upstream forget every session (as after a restart): later requests get 404.
    pub async fn forget_sessions(&self) {
        let manager = self.sessions.as_ref().expect("a session-based upstream");
        let ids: Vec<_> = manager.sessions.read().await.keys().cloned().collect();
        assert!(!ids.is_empty(), "no session to forget");
        for id in ids {
            manager.close_session(&id).await.unwrap();
        }
    }
}

/// Counts JSON-RPC methods, records auth headers, and applies the misbehaviour switches.
async fn record(State(rec): State<Arc<Recorder>>, req: Request, next: Next) -> Response {
    if rec.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(a) = header("authorization") {
        rec.authorization.lock().await.push(a);
    }
    let api_key = header("x-api-key");
    if let Some(k) = &api_key {
        rec.api_keys.lock().await.push(k.clone());
    }
    if let Some(required) = rec.require_api_key.lock().await.clone() {
        if api_key.as_deref() != Some(required.as_str()) {
            return (StatusCode::UNAUTHORIZED, "missing or wrong X-Api-Key").into_response();
        }
    }
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        if let Some(m) = v.get("method").and_then(Value::as_str) {
            *rec.counts.lock().await.entry(m.to_owned()).or_default() += 1;
        }
    }
    let presented = parts.headers.get("mcp-session-id").cloned();
    let mut response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if let Some(sid) = presented.filter(|_| rec.echo_session.load(Ordering::SeqCst)) {
        response.headers_mut().insert("mcp-session-id", sid);
    }
    if let Some(sid) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        rec.session_ids.lock().await.push(sid.to_owned());
    }
    response
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// Text to echo back.
    text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct Sum {
    sum: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SleepArgs {
    ms: u64,
}

#[derive(Clone)]
struct Tools {
    legacy_only: bool,
}

impl Tools {
    fn new(legacy_only: bool) -> Self {
        Self { legacy_only }
    }
}

#[tool_router]
impl Tools {
    #[tool(
        description = "Echo the text back",
        annotations(title = "Echo", read_only_hint = true)
    )]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(args.text)])
    }

    #[tool(name = "ns/echo", description = "Echo, with a slash in the name")]
    async fn ns_echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(format!("ns:{}", args.text))])
    }

    #[tool(description = "Add two integers (structured output)")]
    async fn add(&self, Parameters(args): Parameters<AddArgs>) -> Json<Sum> {
        Json(Sum {
            sum: args.a + args.b,
        })
    }

    #[tool(description = "Always fails at the tool level")]
    async fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("the tool failed")])
    }

    #[tool(description = "Sleeps, then answers")]
    async fn sleep(&self, Parameters(args): Parameters<SleepArgs>) -> CallToolResult {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        CallToolResult::success(vec![ContentBlock::text("slept")])
    }

    #[tool(description = "Tells the client that the tools changed")]
    async fn bump(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let peer = ctx.peer.clone();
        tokio::spawn(async move {
            let _ = peer.notify_tool_list_changed().await;
        });
        CallToolResult::success(vec![ContentBlock::text("bumped")])
    }

    #[tool(description = "Reports the Authorization header it received")]
    async fn whoami(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let auth = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<none>")
            .to_owned();
        Ok(CallToolResult::success(vec![ContentBlock::text(auth)]))
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("switchboard-test-upstream", "1.0.0"))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.legacy_only {
            Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
        } else {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }
}

// ---- legacy HTTP+SSE (2024-11-05) ----

#[derive(Clone, Default)]
struct LegacyState {
    streams: Arc<Mutex<HashMap<String, mpsc::Sender<String>>>>,
    next: Arc<AtomicU64>,
}

fn legacy_router() -> Router {
    Router::new()
        .route("/sse", get(legacy_stream))
        .route("/messages", post(legacy_message))
        .with_state(LegacyState::default())
}

async fn legacy_stream(
    State(st): State<LegacyState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = st.next.fetch_add(1, Ordering::SeqCst).to_string();
    let (tx, rx) = mpsc::channel::<String>(64);
    st.streams.lock().await.insert(id.clone(), tx);
    // The endpoint event, then every queued message as a `message` event.
    let first = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={id}"));
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(ev) = first {
            return Some((Ok(ev), (None, rx)));
        }
        let msg = rx.recv().await?;
        Some((Ok(Event::default().event("message").data(msg)), (None, rx)))
    });
    Sse::new(stream)
}

async fn legacy_message(
    State(st): State<LegacyState>,
    Query(q): Query<HashMap<String, String>>,
    axum::Json(msg): axum::Json<Value>,
) -> StatusCode {
    let Some(sid) = q.get("sessionId") else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(tx) = st.streams.lock().await.get(sid).cloned() else {
        return StatusCode::NOT_FOUND;
    };
    let (Some(id), Some(method)) = (msg.get("id"), msg.get("method").and_then(Value::as_str))
    else {
        return StatusCode::ACCEPTED; // a notification
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => json!({
            "protocolVersion": "2024-11-05",
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "legacy-fixture", "version": "1.0.0"}
        }),
        "tools/list" => match params.get("cursor").and_then(Value::as_str) {
            None => json!({"tools": [legacy_rich_tool()], "nextCursor": "page-2"}),
            Some(_) => json!({"tools": [{"name": "second", "inputSchema": {"type": "object"}}]}),
        },
        "tools/call" => json!({
            "content": [{"type": "text", "text": format!("legacy:{}", params["arguments"]["text"].as_str().unwrap_or(""))}],
            "isError": false
        }),
        _ => {
            let err = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}});
            let _ = tx.send(err.to_string()).await;
            return StatusCode::ACCEPTED;
        }
    };
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let _ = tx.send(answer.to_string()).await;
    StatusCode::ACCEPTED
}

/// A tool with every optional field, to check they all pass through unchanged.
pub fn legacy_rich_tool() -> Value {
    json!({
        "name": "rich",
        "title": "Rich tool",
        "description": "Has every field",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "outputSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        "annotations": {"readOnlyHint": true, "openWorldHint": false},
        "execution": {"taskSupport": "optional"},
        "icons": [{"src": "https://example.test/i.png", "mimeType": "image/png", "sizes": ["48x48"]}],
        "_meta": {"ui": {"resourceUri": "ui://rich/view", "visibility": ["model", "app"]}, "custom": {"k": 1}}
    })
}

// ---- hand-written Streamable HTTP with SSE answers ----

async fn raw_message(axum::Json(msg): axum::Json<Value>) -> Response {
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match method.as_str() {
        "initialize" => {
            let body = json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {"listChanged": true}},
                "serverInfo": {"name": "raw-fixture", "version": "1.0.0"}}});
            return (
                [
                    ("content-type", "application/json"),
                    ("mcp-session-id", "raw-session"),
                ],
                body.to_string(),
            )
                .into_response();
        }
        "tools/list" => json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
        "tools/call" if msg["params"]["name"] == "rpc400" => {
            // as 2026-07-28 servers do: the JSON-RPC error in a 4xx answer
            let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "bad args"}});
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        "tools/call" => json!({"content": [{"type": "text", "text": "after the notification"}]}),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "Bad Request: Session ID is required",
            )
                .into_response();
        }
    };
    let notification = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
    let response = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let body = format!(
        "id: 0\nretry: 1000\ndata: \n\nevent: message\ndata: {notification}\n\nevent: message\ndata: {response}\n\n"
    );
    ([("content-type", "text/event-stream")], body).into_response()
}
