//! Limits beyond the body size: header count and bytes (431), JSON nesting, the `/http` relay
//! body (413), listening streams per principal (429), and upstream answers too large to read
//! (a clear 502) — each in the plane's error format, each changing nothing.

use axum::Router;
use axum::http::StatusCode as AxStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::gateway::proxy_status;
use crate::harness::{Backend, Env, TestApp, connector_body};

/// An MCP upstream whose `tools/call` answers are too large for the default limits:
/// `huge_json` (17 MiB of JSON, over the 16 MiB answer limit) or `long_line` (an SSE event
/// with a 2 MiB line, over the 1 MiB line limit).
async fn oversized_upstream() -> (String, tokio::task::JoinHandle<()>) {
    async fn handle(axum::Json(msg): axum::Json<Value>) -> Response {
        let Some(id) = msg.get("id").cloned() else {
            return AxStatus::ACCEPTED.into_response();
        };
        let size = if msg["params"]["name"] == "huge_json" {
            17
        } else {
            2
        };
        let big = "x".repeat(size * 1024 * 1024);
        match (msg["method"].as_str(), msg["params"]["name"].as_str()) {
            (Some("initialize"), _) => axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": "oversized", "version": "1"}}}))
            .into_response(),
            (Some("tools/call"), Some("huge_json")) => {
                axum::Json(json!({"jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": big}]}}))
                .into_response()
            }
            (Some("tools/call"), Some("long_line")) => {
                let response = json!({"jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": big}]}});
                (
                    [("content-type", "text/event-stream")],
                    format!("event: message\ndata: {response}\n\n"),
                )
                    .into_response()
            }
            (Some("tools/call"), _) => axum::Json(json!({"jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": "small"}]}}))
            .into_response(),
            _ => (AxStatus::BAD_REQUEST, "unsupported").into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/mcp", post(handle));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/mcp"), task)
}

#[tokio::test]
async fn header_count_and_size_are_limited() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let client = reqwest::Client::new();
    let many =
        |rb: reqwest::RequestBuilder| (0..70).fold(rb, |rb, i| rb.header(format!("x-h{i}"), "v"));
    let resp = many(
        client
            .get(format!("{}/v1/connectors", app.base))
            .bearer_auth(&key),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Too many request headers")
    );
    let resp = client
        .post(format!("{}/v1/connectors-gateway/x/mcp", app.base))
        .bearer_auth(&key)
        .header("x-big", "a".repeat(40 * 1024))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        proxy_status(&resp),
        r#"connectors-gateway; error=http_request_error; status-code=431; details="request_headers_too_large""#
    );
    app.finish().await;
}

#[tokio::test]
async fn deeply_nested_json_is_refused_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let deep = format!(
        r#"{{"name":"deep","description":"d","server":"http://127.0.0.1:9/","headers":{{"x":{}{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/v1/connectors", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(deep.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 64")
    );
    assert!(app.list_all(&key).await.is_empty());
    let mut body = connector_body("x", "mcp");
    body["server"] = json!("http://127.0.0.1:9/mcp");
    app.create(&key, body).await;
    let resp = client
        .post(format!("{}/v1/connectors-gateway/x/mcp", app.base))
        .bearer_auth(&key)
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        proxy_status(&resp),
        r#"connectors-gateway; error=http_request_error; status-code=400; details="json_too_deep""#
    );
    app.finish().await;
}

#[tokio::test]
async fn relay_bodies_over_the_limit_are_413() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().fallback(any(|body: axum::body::Bytes| async move {
        format!("got {}", body.len())
    }));
    let _task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let env = Env::new(Backend::Sqlite).unwrap();
    let app =
        TestApp::start_with(env, &[("SWITCHBOARD_LIMITS_MAX_RELAY_BODY_BYTES", "4096")]).await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("relay", "http");
    body["server"] = json!(format!("http://{addr}"));
    app.create(&key, body).await;
    let url = format!("{}/v1/connectors-gateway/relay/http/up", app.base);
    let client = reqwest::Client::new();
    let ok = client
        .post(&url)
        .bearer_auth(&key)
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "got 4096");
    // Declared too large: refused before anything goes upstream.
    let resp = client
        .post(&url)
        .bearer_auth(&key)
        .body(vec![b'a'; 4097])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        proxy_status(&resp),
        r#"connectors-gateway; error=http_request_error; status-code=413; details="request_too_large""#
    );
    // Streamed without a length: cut off when it passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'b'; 1024])).collect();
    let resp = client
        .post(&url)
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    app.finish().await;
}

#[tokio::test]
async fn listening_streams_per_principal_are_limited() {
    let upstream = crate::upstream::Upstream::spawn(crate::upstream::Mode::Sessions).await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(
        env,
        &[("SWITCHBOARD_LIMITS_MAX_STREAMS_PER_PRINCIPAL", "2")],
    )
    .await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("streams", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/streams/mcp", app.base);
    let sid = crate::gateway::initialize(&client, &url, &key).await;
    let listen = || {
        client
            .get(&url)
            .bearer_auth(&key)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
    };
    let first = listen().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = listen().await.unwrap();
    let third = listen().await.unwrap();
    let statuses = [second.status(), third.status()];
    // The upstream may refuse a second GET on one session (409); the gateway refuses the third.
    assert_eq!(
        third.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    assert_eq!(
        proxy_status(&third),
        r#"connectors-gateway; error=http_request_denied; status-code=429; details="too_many_streams""#
    );
    // Another principal has its own budget.
    let bob = app.key_for("bob", "default", "default", false).await;
    let resp = client
        .get(&url)
        .bearer_auth(&bob)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    drop((first, second));
    // Slots are freed when streams end.
    let mut freed = false;
    for _ in 0..50 {
        let again = listen().await.unwrap();
        if again.status() != StatusCode::TOO_MANY_REQUESTS {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(freed, "closed streams never gave their slots back");
    app.finish().await;
}

#[tokio::test]
async fn oversized_upstream_answers_are_a_clear_502() {
    let (url, _task) = oversized_upstream().await;
    // The default limits (process-wide): 16 MiB answers, 1 MiB SSE lines.
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("oversized", "mcp");
    body["server"] = json!(url);
    app.create(&key, body).await;
    for tool in ["huge_json", "long_line"] {
        let (status, r) = app
            .post(
                &format!("/v1/connectors/oversized/tools/{tool}/call"),
                &key,
                &json!({"arguments": {}}),
            )
            .await;
        let short: String = r.to_string().chars().take(200).collect();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{tool}: {short}");
        assert!(
            r["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("invalid answer"),
            "{tool}: {short}"
        );
    }
    // The gateway stays healthy: a small answer right after.
    let (status, r) = app
        .post(
            "/v1/connectors/oversized/tools/small/call",
            &key,
            &json!({"arguments": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    app.finish().await;
}
