//! Two replicas on one PostgreSQL: a `tools/list_changed` seen by replica A drops replica B's
//! cached tools list (LISTEN/NOTIFY), and a connector updated through A is used with its new
//! server URL by B on its very next call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode as AxStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Env, TestApp, connector_body};

/// An MCP upstream counting `tools/list`; its `tools/call` answer (SSE) carries a
/// `notifications/tools/list_changed` before the response.
async fn upstream(lists: Arc<AtomicUsize>) -> String {
    let handler = move |axum::Json(msg): axum::Json<Value>| {
        let lists = lists.clone();
        async move {
            let Some(id) = msg.get("id").cloned() else {
                return AxStatus::ACCEPTED.into_response();
            };
            let result = match msg["method"].as_str() {
                Some("initialize") => json!({"protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {"listChanged": true}},
                    "serverInfo": {"name": "changing", "version": "1"}}),
                Some("tools/list") => {
                    let n = lists.fetch_add(1, Ordering::SeqCst);
                    json!({"tools": [{"name": format!("tool{n}"), "inputSchema": {"type": "object"}}]})
                }
                Some("tools/call") => json!({"content": [{"type": "text", "text": "changed"}]}),
                _ => return (AxStatus::BAD_REQUEST, "unsupported").into_response(),
            };
            let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
            let response = json!({"jsonrpc": "2.0", "id": id, "result": result});
            let body: Response = (
                [("content-type", "text/event-stream")],
                format!("event: message\ndata: {changed}\n\nevent: message\ndata: {response}\n\n"),
            )
                .into_response();
            body
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().route("/mcp", post(handler))).await;
    });
    format!("http://{addr}/mcp")
}

fn tool_names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_changed_and_updates_reach_every_replica() {
    let Some(env_a) = Env::new(Backend::Postgres) else {
        return;
    };
    // Replica B: the same store, schema and vault key.
    let env_b = Env {
        dir: env_a.dir.clone(),
        store_url: env_a.store_url.clone(),
        pg_schema: env_a.pg_schema.clone(),
        admin_key: env_a.admin_key.clone(),
    };
    let a = TestApp::start(env_a).await;
    let b = TestApp::start(env_b).await;
    let key = a.admin_key().to_owned();
    let lists = Arc::new(AtomicUsize::new(0));
    let url = upstream(lists.clone()).await;
    let mut body = connector_body("changing", "mcp");
    body["server"] = json!(url);
    a.create(&key, body).await;

    // B caches the list.
    let (status, first) = b.get("/v1/connectors/changing/tools", &key).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, again) = b.get("/v1/connectors/changing/tools", &key).await;
    assert_eq!(
        tool_names(&again),
        tool_names(&first),
        "served from B's cache"
    );
    let fetched = lists.load(Ordering::SeqCst);

    // A sees list_changed (on a tool call's stream); B's next listing is fresh within
    // milliseconds (the time is printed). The bound is 5 s, not 1: under a full parallel test
    // run on two cores 1 s was once not enough; without the event B would serve its cached
    // list until the cache's TTL, minutes away.
    let (status, r) = a
        .post(
            "/v1/connectors/changing/tools/x/call",
            &key,
            &json!({"arguments": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let started = Instant::now();
    let mut fresh = false;
    while started.elapsed() < Duration::from_secs(5) {
        let (_, now) = b.get("/v1/connectors/changing/tools", &key).await;
        if tool_names(&now) != tool_names(&first) {
            fresh = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        fresh,
        "B kept serving the old list after A saw list_changed"
    );
    eprintln!("list_changed reached replica B in {:?}", started.elapsed());
    assert!(lists.load(Ordering::SeqCst) > fetched);

    // A connector updated through A: B uses the new server on its next call.
    let other_lists = Arc::new(AtomicUsize::new(100));
    let other = upstream(other_lists.clone()).await;
    let (status, c) = a
        .send(
            reqwest::Method::PATCH,
            "/v1/connectors/changing",
            Some(&key),
            Some(&json!({"server": other}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    // B drops its cached connector when the NOTIFY reaches it (milliseconds after the PATCH
    // answers, through B's own listening connection): a call racing it may still see the old
    // server. Without NOTIFY, B would keep the old one for `store.cache_ttl_seconds` (10 s).
    let patched = std::time::Instant::now();
    let mut names = Vec::new();
    while patched.elapsed() < Duration::from_secs(5) {
        let (_, listed) = b.get("/v1/connectors/changing/tools", &key).await;
        names = tool_names(&listed);
        if names == ["tool100"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        names,
        ["tool100"],
        "B still used the old server after 5 s (the store cache's TTL is 10 s)"
    );
    eprintln!(
        "replica B used the new server URL {:?} after the PATCH answered",
        patched.elapsed()
    );

    b.stop().await;
    a.finish().await;
}
