//! The per-connector circuit breaker: consecutive failures open it (fast 503
//! `destination_unavailable` / `circuit_open` with Retry-After), other connectors are not
//! affected, and after the open period one probe closes it again when the upstream is back.

use std::time::Duration;

use axum::Router;
use axum::routing::any;
use reqwest::StatusCode;
use serde_json::json;

use crate::gateway::proxy_status;
use crate::harness::{Backend, Env, TestApp, connector_body};

async fn echo_on(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    let router = Router::new().fallback(any(|| async { "up" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    })
}

#[tokio::test]
async fn a_failing_connector_trips_its_breaker_and_recovers() {
    // A port with nobody listening (for now).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let healthy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let healthy_addr = healthy.local_addr().unwrap();
    let _healthy = echo_on(healthy).await;

    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(
        env,
        &[
            ("SWITCHBOARD_UPSTREAM_BREAKER_FAILURES", "3"),
            ("SWITCHBOARD_UPSTREAM_BREAKER_OPEN_SECONDS", "1"),
        ],
    )
    .await;
    let key = app.admin_key().to_owned();
    for (name, server) in [
        ("flaky", format!("http://127.0.0.1:{port}")),
        ("steady", format!("http://{healthy_addr}")),
    ] {
        let mut body = connector_body(name, "http");
        body["server"] = json!(server);
        app.create(&key, body).await;
    }
    let client = reqwest::Client::new();
    let get = |name: &str| {
        client
            .get(format!("{}/v1/connectors-gateway/{name}/http/x", app.base))
            .bearer_auth(&key)
            .send()
    };
    for _ in 0..3 {
        let r = get("flaky").await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert!(proxy_status(&r).contains("error=destination_unavailable"));
    }
    let r = get("flaky").await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        proxy_status(&r),
        r#"connectors-gateway; error=destination_unavailable; details="circuit_open""#
    );
    assert!(r.headers().get("retry-after").is_some());
    // Another connector is not affected.
    assert_eq!(get("steady").await.unwrap().status(), StatusCode::OK);

    // The upstream comes back; after the open period one probe closes the circuit.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let _back = echo_on(listener).await;
    assert_eq!(
        get("flaky").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "still open"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get("flaky").await.unwrap().status(),
        StatusCode::OK,
        "the probe"
    );
    assert_eq!(
        get("flaky").await.unwrap().status(),
        StatusCode::OK,
        "closed"
    );
    app.finish().await;
}
