//! `/metrics` after a known sequence of requests: exact counter deltas and histogram counts, a
//! real Prometheus text-format parser accepts the output, and no label value carries a user id,
//! an API key, a token or a session id. A binary of its own: metrics are process-wide.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected values")]

#[path = "it/harness.rs"]
#[allow(dead_code, reason = "shared with the main integration binary")]
mod harness;
#[path = "it/upstream.rs"]
#[allow(dead_code, reason = "shared with the main integration binary")]
mod upstream;

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use harness::{Backend, TestApp, connector_body};
use upstream::{Mode, Upstream};

/// Every sample as `name{k="v",...}` (labels sorted) → value; histogram buckets keep `le`.
fn scrape(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let key = format!(
            "{}{{{}}}",
            s.metric,
            labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                // The +Inf bucket is the count.
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(key, value);
    }
    out
}

async fn metrics_text(app: &TestApp) -> String {
    let resp = reqwest::get(format!("{}/metrics", app.admin_base))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    resp.text().await.unwrap()
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_and_histograms_follow_a_known_sequence() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let user = "metrics-user-5d1e";
    let key = app.key_for(user, "ws-metrics", "org-metrics", true).await;
    let token = "upstream-token-8b2c";
    let mut body = connector_body("metered", "mcp");
    body["server"] = json!(upstream.url);
    body["headers"] = json!({"Authorization": format!("Bearer {token}")});
    let created = app.create(&key, body).await;
    let id = created["id"].as_str().unwrap().to_owned();

    let before = scrape(&metrics_text(&app).await);

    // 1 list, 1 unknown connector, tools twice (miss then hit), 1 REST call.
    assert_eq!(app.get("/v1/connectors", &key).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/v1/connectors/nope", &key).await.0,
        StatusCode::NOT_FOUND
    );
    for _ in 0..2 {
        assert_eq!(
            app.get("/v1/connectors/metered/tools", &key).await.0,
            StatusCode::OK
        );
    }
    let (status, r) = app
        .post(
            "/v1/connectors/metered/tools/echo/call",
            &key,
            &json!({"arguments": {"text": "hi"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    // The data plane: initialize through the relay, then an unknown connector (a gateway error).
    let client = reqwest::Client::new();
    let init = client
        .post(format!("{}/v1/connectors-gateway/metered/mcp", app.base))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("x-request-id", "req-abc-123")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    assert_eq!(init.headers()["x-request-id"], "req-abc-123");
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = init.bytes().await.unwrap();
    // A second relayed request: over the connection the first one opened.
    let ping = client
        .post(format!("{}/v1/connectors-gateway/metered/mcp", app.base))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    let _ = ping.bytes().await.unwrap();
    let missing = client
        .post(format!("{}/v1/connectors-gateway/nope/mcp", app.base))
        .bearer_auth(&key)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // A generated request id when none (or an unusable one) was sent.
    let generated = missing.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "{generated}");

    let text = metrics_text(&app).await;
    let after = scrape(&text);
    let d = |k: &str| delta(&before, &after, k);
    let http = |plane: &str, route: &str, method: &str, status: &str| {
        format!(
            "switchboard_http_requests_total{{method=\"{method}\",plane=\"{plane}\",route=\"{route}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(d(&http("api", "/v1/connectors", "GET", "200")), 1.0);
    assert_eq!(d(&http("api", "/v1/connectors/:ref", "GET", "404")), 1.0);
    assert_eq!(
        d(&http("api", "/v1/connectors/:ref/tools", "GET", "200")),
        2.0
    );
    assert_eq!(
        d(&http(
            "api",
            "/v1/connectors/:ref/tools/*rest",
            "POST",
            "200"
        )),
        1.0
    );
    assert_eq!(
        d(&http(
            "gateway",
            "/v1/connectors-gateway/:ref/mcp",
            "POST",
            "200"
        )),
        2.0
    );
    assert_eq!(
        d("switchboard_upstream_connections_opened_total{protocol=\"http1\"}"),
        1.0,
        "the relays' second request reuses the first one's connection"
    );
    assert_eq!(
        d(&http(
            "gateway",
            "/v1/connectors-gateway/:ref/mcp",
            "POST",
            "404"
        )),
        1.0
    );
    assert_eq!(
        d(
            "switchboard_http_request_duration_seconds{plane=\"api\",route=\"/v1/connectors/:ref/tools\"}"
        ),
        2.0
    );
    assert_eq!(
        d("switchboard_tools_cache_requests_total{result=\"miss\"}"),
        1.0
    );
    assert_eq!(
        d("switchboard_tools_cache_requests_total{result=\"hit\"}"),
        1.0
    );
    let mcp = |method: &str, outcome: &str| {
        format!(
            "switchboard_mcp_requests_total{{connector=\"{id}\",method=\"{method}\",outcome=\"{outcome}\"}}"
        )
    };
    assert_eq!(d(&mcp("tools/list", "ok")), 1.0);
    assert_eq!(d(&mcp("tools/call", "ok")), 1.0);
    assert_eq!(d(&mcp("initialize", "ok")), 1.0);
    assert_eq!(
        d(&format!(
            "switchboard_mcp_request_duration_seconds{{connector=\"{id}\",method=\"tools/call\"}}"
        )),
        1.0
    );
    assert_eq!(
        d(
            "switchboard_gateway_errors_total{details=\"connector_not_found\",error=\"http_request_error\"}"
        ),
        1.0
    );
    assert!(after.contains_key("switchboard_upstream_sessions{}"));
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("process_resident_memory_bytes")),
        "process metrics"
    );

    // No label value carries a user id, a key, a token or a session id.
    for forbidden in [user, key.as_str(), token, session.as_str(), "req-abc-123"] {
        assert!(
            !text.contains(forbidden),
            "`{forbidden}` appears in /metrics"
        );
    }
    app.finish().await;
}
