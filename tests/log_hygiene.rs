//! No secret in any log line at any level: a full create / use / rotate / delete cycle with
//! every log target of the gateway's stack captured at `trace`.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected values")]

#[path = "it/harness.rs"]
#[allow(dead_code, reason = "shared with the main integration binary")]
mod harness;
#[path = "it/upstream.rs"]
#[allow(dead_code, reason = "shared with the main integration binary")]
mod upstream;

use std::io::Write;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use harness::{Backend, TestApp, connector_body};
use upstream::{Mode, Upstream};

/// Sends every formatted log line to a channel.
#[derive(Clone)]
struct Capture(mpsc::UnboundedSender<Vec<u8>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_any_log_line() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let capture = Capture(tx);
    // The upstream fixture (rmcp) is not the gateway: its own logs are out of scope.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,rmcp=off"))
        .with_writer(move || capture.clone())
        .with_ansi(false)
        .init();

    let secrets = [
        "bearer-secret-7f3a",
        "header-secret-91bc",
        "global-secret-44de",
        "static-secret-0c2e",
        "client-secret-5e6f",
    ];
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("hygiene", "mcp");
    body["server"] = json!(upstream.url);
    body["auth_methods"] = json!([{"method_type": "bearer"},
        {"method_type": "oauth2", "grant_type": "authorization_code",
         "auth_data": {"client_id": "cid", "client_secret": "client-secret-5e6f"}}]);
    body["global_headers"] =
        json!({"X-Global": {"value": "global-secret-44de", "is_secret": true}});
    body["headers"] = json!({"X-Static": "static-secret-0c2e"});
    app.create(&key, body).await;
    let (status, _) = app
        .post("/v1/connectors/hygiene/user/credentials", &key, &json!({"name": "c",
            "credentials": {"bearer_token": "bearer-secret-7f3a", "headers": {"X-Team": "header-secret-91bc"}}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, r) = app
        .get("/v1/connectors/hygiene/tools?refresh=true", &key)
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, r) = app
        .post(
            "/v1/connectors/hygiene/tools/whoami/call",
            &key,
            &json!({"arguments": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        r["content"][0]["text"], "Bearer bearer-secret-7f3a",
        "the secret did travel upstream"
    );
    let report = switchboard::cli::rotate(&app.env.config(), true)
        .await
        .unwrap();
    assert!(report.unreadable.is_empty());
    app.send(
        Method::DELETE,
        "/v1/connectors/hygiene/user/credentials/c",
        Some(&key),
        None,
    )
    .await;
    app.send(Method::DELETE, "/v1/connectors/hygiene", Some(&key), None)
        .await;
    app.finish().await;

    let mut log = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        log.extend(chunk);
    }
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("TRACE") && log.contains("connector created"),
        "the capture works"
    );
    assert!(
        log.lines().count() > 100,
        "trace level captured: {} lines",
        log.lines().count()
    );
    for secret in secrets.iter().copied().chain([key.as_str()]) {
        let hit = log.lines().find(|l| l.contains(secret));
        assert!(
            hit.is_none(),
            "secret `{secret}` logged: {}",
            hit.unwrap_or_default()
        );
    }
}
