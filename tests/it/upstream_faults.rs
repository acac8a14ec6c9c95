//! Upstream faults: killed in the middle of an SSE answer, invalid JSON, an SSE stream that ends
//! before the response. Each gives the caller a clear error promptly (a 502 on REST, a broken
//! stream on the relay — never a hang), and the gateway keeps serving.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode as AxStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, connector_body};

async fn faulty(axum::Json(msg): axum::Json<Value>) -> Response {
    let Some(id) = msg.get("id").cloned() else {
        return AxStatus::ACCEPTED.into_response();
    };
    let sse = |body: Body| {
        let mut r = Response::new(body);
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        r
    };
    match (msg["method"].as_str(), msg["params"]["name"].as_str()) {
        (Some("initialize"), _) => axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "faulty", "version": "1"}}}))
        .into_response(),
        (Some("tools/call"), Some("dies")) => {
            // One progress event, then the connection breaks mid-answer.
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": 1, "progress": 1}});
            let first = Bytes::from(format!("event: message\ndata: {progress}\n\n"));
            let chunks = futures_util::stream::unfold(0u8, move |n| {
                let first = first.clone();
                async move {
                    match n {
                        0 => Some((Ok::<_, std::io::Error>(first), 1)),
                        1 => {
                            // Let the first event reach the wire, then die.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Some((Err(std::io::Error::other("killed")), 2))
                        }
                        _ => None,
                    }
                }
            });
            sse(Body::from_stream(chunks))
        }
        (Some("tools/call"), Some("garbage")) => (
            [("content-type", "application/json")],
            "{\"jsonrpc\": \"2.0\", \"id\": 1, \"resu",
        )
            .into_response(),
        (Some("tools/call"), Some("truncated")) => sse(Body::from(
            "event: message\ndata: {\"jsonrpc\": \"2.0\", \"method\": \"x\"}\n\n",
        )),
        (Some("tools/call"), _) => axum::Json(json!({"jsonrpc": "2.0", "id": id,
            "result": {"content": [{"type": "text", "text": "fine"}]}}))
        .into_response(),
        _ => (AxStatus::BAD_REQUEST, "unsupported").into_response(),
    }
}

#[tokio::test]
async fn upstream_faults_are_clear_errors_and_the_gateway_stays_healthy() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().route("/mcp", post(faulty))).await;
    });
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("faulty", "mcp");
    body["server"] = json!(format!("http://{addr}/mcp"));
    app.create(&key, body).await;

    for tool in ["dies", "garbage", "truncated"] {
        let started = Instant::now();
        let (status, r) = app
            .post(
                &format!("/v1/connectors/faulty/tools/{tool}/call"),
                &key,
                &json!({"arguments": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{tool}: {r}");
        assert!(r["detail"].is_string(), "{tool}: {r}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{tool} took {:?}",
            started.elapsed()
        );
    }

    // Through the relay: the client gets the first event, then a broken stream (not a hang).
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/faulty/mcp", app.base);
    let mut resp = client
        .post(&url)
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "dies", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut seen = String::new();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => seen.push_str(&String::from_utf8_lossy(&c)),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("the broken stream ends promptly");
    assert!(seen.contains("notifications/progress"), "{seen}");
    assert!(
        outcome.is_err(),
        "a broken upstream must not look like a complete answer"
    );

    // The gateway keeps serving.
    let (status, r) = app
        .post(
            "/v1/connectors/faulty/tools/fine/call",
            &key,
            &json!({"arguments": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let ready = client
        .get(format!("{}/readyz", app.admin_base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    app.finish().await;
}
