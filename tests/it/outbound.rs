//! The outbound policy (SSRF guard) end to end: connectors whose `server` points at loopback,
//! link-local (cloud metadata) or private addresses — as IP literals in any spelling, or as a
//! name resolving there at connect time — are refused with the allow-list empty, and reached
//! when the allow-list admits them.

use axum::Router;
use axum::routing::any;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Env, TestApp, connector_body};

async fn upstream() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new().fallback(any(|| async { "upstream reached" }));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (port, task)
}

fn servers(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("loopback", format!("http://127.0.0.1:{port}/base")),
        ("hex-short", format!("http://0x7f.1:{port}/base")),
        ("decimal", format!("http://2130706433:{port}/base")),
        (
            "mapped-v6",
            format!("http://[::ffff:127.0.0.1]:{port}/base"),
        ),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data".to_owned(),
        ),
        ("private", "http://10.0.0.1/base".to_owned()),
        // A name: nothing to check until it resolves, and it resolves to loopback at connect time.
        ("by-name", format!("http://localhost:{port}/base")),
    ]
}

async fn relay(app: &TestApp, name: &str) -> (StatusCode, String, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/connectors-gateway/{name}/http/x", app.base))
        .bearer_auth(app.admin_key())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ps = resp
        .headers()
        .get("proxy-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, ps, body)
}

const PROHIBITED: &str =
    r#"connectors-gateway; error=destination_ip_prohibited; details="destination_not_allowed""#;

#[tokio::test]
async fn private_destinations_are_refused_with_an_empty_allow_list() {
    let (port, _task) = upstream().await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_OUTBOUND_ALLOW", "")]).await;
    let key = app.admin_key().to_owned();
    for (name, server) in servers(port) {
        let mut body = connector_body(name, "http");
        body["server"] = json!(server);
        app.create(&key, body).await;
        let (status, ps, body) = relay(&app, name).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{name}: {body}");
        assert_eq!(ps, PROHIBITED, "{name}");
        assert!(
            body["detail"].as_str().unwrap().contains("allowed"),
            "{name}: {body}"
        );
    }
    // The /mcp relay is guarded the same way, a name resolving to loopback included.
    for (name, server) in [
        ("mcp-by-ip", format!("http://127.0.0.1:{port}/mcp")),
        ("mcp-by-name", format!("http://localhost:{port}/mcp")),
    ] {
        app.create_at(&key, name, "mcp", &server).await;
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/connectors-gateway/{name}/mcp", app.base))
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY, "{name}");
        assert_eq!(resp.headers()["proxy-status"], PROHIBITED, "{name}");
    }
    // The REST tools path of an MCP connector is guarded the same way.
    let mut body = connector_body("mcp-loopback", "mcp");
    body["server"] = json!(format!("http://127.0.0.1:{port}/mcp"));
    app.create(&key, body).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/connectors/mcp-loopback/tools", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not an allowed destination"),
        "{body}"
    );
}

#[tokio::test]
async fn allowed_networks_are_reached() {
    let (port, _task) = upstream().await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8,::1")]).await;
    let key = app.admin_key().to_owned();
    for (name, server) in servers(port) {
        let mut body = connector_body(name, "http");
        body["server"] = json!(server);
        app.create(&key, body).await;
        let (status, ps, body) = relay(&app, name).await;
        match name {
            // still outside the allow-list
            "metadata" | "private" => {
                assert_eq!(status, StatusCode::BAD_GATEWAY, "{name}");
                assert_eq!(ps, PROHIBITED, "{name}");
            }
            // allowed; whether this host routes IPv4-mapped IPv6 is not ours to assert
            "mapped-v6" => assert_ne!(ps, PROHIBITED, "{name}: {body}"),
            _ => assert_eq!(status, StatusCode::OK, "{name}: {ps} {body}"),
        }
    }
}

#[tokio::test]
async fn plain_http_is_refused_unless_allowed() {
    let (port, _task) = upstream().await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_OUTBOUND_ALLOW_HTTP", "false")]).await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("plain", "http");
    body["server"] = json!(format!("http://127.0.0.1:{port}/base"));
    app.create(&key, body).await;
    let (status, ps, body) = relay(&app, "plain").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(ps, PROHIBITED);
    assert!(
        body["detail"].as_str().unwrap().contains("scheme `http`"),
        "{body}"
    );
}
