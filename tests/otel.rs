//! With `--features otel` and `telemetry.otlp_endpoint`: request spans reach an OTLP/HTTP
//! collector under the caller's trace, and the upstream receives a `traceparent` of the same
//! trace with the gateway's span as parent.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected values")]

#[path = "it/harness.rs"]
#[allow(dead_code, reason = "shared with the main integration binary")]
mod harness;
#[path = "it/upstream.rs"]
#[allow(dead_code, reason = "shared with the main integration binary")]
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{any, post};
use serde_json::json;
use tokio::sync::Mutex;

use harness::{Backend, Env, TestApp, connector_body};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_trace_context_goes_upstream() {
    let exported: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = exported.clone();
    let collector = serve(Router::new().route(
        "/v1/traces",
        post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().await.push(body);
                "{}"
            }
        }),
    ))
    .await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let upstream = serve(Router::new().fallback(any(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            if let Some(tp) = headers.get("traceparent") {
                record.lock().await.push(tp.to_str().unwrap().to_owned());
            }
            "ok"
        }
    })))
    .await;

    let env = Env::new(Backend::Sqlite).unwrap();
    let endpoint = format!("{collector}/v1/traces");
    let extra = [("SWITCHBOARD_TELEMETRY_OTLP_ENDPOINT", endpoint.as_str())];
    let config = env.config_with(&extra);
    let guard = switchboard::telemetry::init(&config.log, &config.telemetry);
    let app = TestApp::start_with(env, &extra).await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("traced", "http");
    body["server"] = json!(upstream);
    app.create(&key, body).await;

    let resp = reqwest::Client::new()
        .get(format!("{}/v1/connectors-gateway/traced/http/x", app.base))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let upstream_tp = seen
        .lock()
        .await
        .first()
        .cloned()
        .expect("a traceparent upstream");
    let parts: Vec<&str> = upstream_tp.split('-').collect();
    assert_eq!(parts[1], TRACE_ID, "{upstream_tp}");
    assert_ne!(
        parts[2], CALLER_SPAN,
        "the gateway's own span is the parent: {upstream_tp}"
    );

    // Flush (blocking: the exporter runs on its own thread) and look for the trace.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
    let mut found = false;
    for _ in 0..50 {
        if exported
            .lock()
            .await
            .iter()
            .any(|b| b.contains(TRACE_ID) && b.contains(parts[2]))
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found,
        "the request span was not exported under the caller's trace"
    );
    app.finish().await;
}
