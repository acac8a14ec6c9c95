//! Upstream faults: killed in the middle of an SSE answer, invalid JSON, an SSE stream that ends
//! before the response. Each gives the caller a clear error promptly (a 502 on REST, a broken
//! stream on the relay — never a hang), and the gateway keeps serving.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode as AxStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Env, Process, TestApp, connector_body};

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
        (Some("tools/call"), Some("ten_mib_line")) => {
            let big = "x".repeat(10 * 1024 * 1024);
            sse(Body::from(format!("event: message\ndata: {big}\n\n")))
        }
        (Some("tools/call"), Some("huge_json")) => {
            let big = "x".repeat(17 * 1024 * 1024);
            axum::Json(json!({"jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": big}]}}))
            .into_response()
        }
        (Some("tools/call"), Some("hangs")) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            AxStatus::NO_CONTENT.into_response()
        }
        (Some("tools/call"), Some("stalls")) => {
            // One progress event, then nothing more: the connection stays open.
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": 1, "progress": 1}});
            let first = Bytes::from(format!("event: message\ndata: {progress}\n\n"));
            let chunks = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) })
                .chain(futures_util::stream::pending());
            sse(Body::from_stream(chunks))
        }
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

async fn faulty_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().route("/mcp", post(faulty))).await;
    });
    format!("http://{addr}/mcp")
}

/// The real binary fed garbage over and over (a 10 MiB SSE line, 17 MiB of JSON, invalid JSON,
/// truncated and broken streams, an upstream that never answers): every call is a clear error
/// within the call timeout, and resident memory comes back to where it was.
#[tokio::test]
async fn memory_returns_to_baseline_after_upstream_garbage() {
    let upstream = faulty_upstream().await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let gw = Process::spawn(
        &env,
        &[
            ("SWITCHBOARD_UPSTREAM_CALL_TIMEOUT_MS", "2500"),
            // Every call here fails on purpose: no circuit breaker in the way.
            ("SWITCHBOARD_UPSTREAM_BREAKER_FAILURES", "0"),
            // As deployed (deploy/, docs/operations.md "Memory"): glibc serves large buffers
            // from mmap and gives them back when freed. Without it, glibc's adaptive threshold
            // keeps freed multi-MiB answer buffers in its arenas (measured: +6.7 MiB over 20
            // rounds, creeping; with it: +1.1 MiB, flat).
            ("MALLOC_MMAP_THRESHOLD_", "131072"),
        ],
    )
    .await;
    let key = env.admin_key.clone();
    let client = reqwest::Client::new();
    let mut body = connector_body("faulty", "mcp");
    body["server"] = json!(upstream);
    let r = client
        .post(format!("{}/v1/connectors", gw.base))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let call = |tool: &'static str| {
        let (client, url, key) = (
            client.clone(),
            format!("{}/v1/connectors/faulty/tools/{tool}/call", gw.base),
            key.clone(),
        );
        async move {
            let started = Instant::now();
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"arguments": {}}))
                .send()
                .await
                .unwrap();
            (r.status(), started.elapsed())
        }
    };
    for _ in 0..50 {
        assert_eq!(call("fine").await.0, StatusCode::OK);
    }
    let baseline = gw.rss_kib();
    let mut peak = baseline;
    let mut rounds = Vec::new();
    for round in 0..8 {
        // The hanging call runs alongside the others (it ends at the call timeout).
        let hanging = tokio::spawn(call("hangs"));
        for tool in ["ten_mib_line", "huge_json", "garbage", "truncated", "dies"] {
            let (status, took) = call(tool).await;
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{tool} (round {round})");
            assert!(took < Duration::from_secs(5), "{tool} took {took:?}");
        }
        rounds.push(gw.rss_kib());
        peak = peak.max(*rounds.last().unwrap());
        let (status, took) = hanging.await.unwrap();
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "hangs (round {round})");
        assert!(took < Duration::from_secs(5), "hangs took {took:?}");
    }
    for _ in 0..50 {
        assert_eq!(call("fine").await.0, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = gw.rss_kib();
    eprintln!(
        "resident memory: baseline {baseline} KiB, after each round {rounds:?} KiB, after {after} KiB"
    );
    // No growth from round to round (nothing kept per bad answer)…
    assert!(
        rounds[rounds.len() - 1] <= rounds[0] + 2 * 1024,
        "memory grew round after round: {rounds:?} KiB"
    );
    let ready = client
        .get(format!("{}/readyz", gw.admin_base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // …and what a bad answer took is given back (within the allocator's slack).
    assert!(
        after <= baseline + 8 * 1024,
        "memory did not come back: baseline {baseline} KiB, after {after} KiB (peak {peak} KiB)"
    );
    drop(gw);
    env.cleanup().await;
}

/// The `/mcp` relay's own errors: an upstream that never answers is a 504 within the call
/// timeout, one that stops in the middle of its answer breaks the caller's stream after the
/// same timeout, and a dead one is a 502 — each with the gateway's `Proxy-Status`.
#[tokio::test]
async fn relay_timeouts_and_dead_upstreams_are_named() {
    let upstream = faulty_upstream().await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(
        env,
        &[
            ("SWITCHBOARD_UPSTREAM_CALL_TIMEOUT_MS", "1000"),
            ("SWITCHBOARD_UPSTREAM_BREAKER_FAILURES", "0"),
        ],
    )
    .await;
    let key = app.admin_key().to_owned();
    app.create_at(&key, "faulty", "mcp", &upstream).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    app.create_at(&key, "dead", "mcp", &format!("http://{dead}/mcp"))
        .await;
    let client = reqwest::Client::new();
    let call = |connector: &str, tool: &str| {
        client
            .post(format!(
                "{}/v1/connectors-gateway/{connector}/mcp",
                app.base
            ))
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": tool, "arguments": {}}}))
            .send()
    };
    let proxy_status = |r: &reqwest::Response| {
        r.headers()
            .get("proxy-status")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };

    let started = Instant::now();
    let r = call("faulty", "hangs").await.unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        proxy_status(&r),
        r#"connectors-gateway; error=connection_timeout; details="upstream_timeout""#
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let r = call("faulty", "stalls").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut seen = String::new();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => seen.push_str(&String::from_utf8_lossy(&c)),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    })
    .await
    .expect("a stalled answer ends within the idle timeout");
    assert!(seen.contains("notifications/progress"), "{seen}");
    assert!(outcome.is_err(), "a stalled answer must not look complete");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    let r = call("dead", "anything").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        proxy_status(&r),
        r#"connectors-gateway; error=destination_unavailable; details="upstream_unavailable""#
    );
    app.finish().await;
}
