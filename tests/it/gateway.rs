//! The data plane: `/http` and `/mcp` relays, `Proxy-Status` on gateway-authored errors,
//! sealed session ids across replicas.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use switchboard::App;

use crate::harness::{Backend, TestApp, connector_body};
use crate::upstream::{Mode, Upstream};

/// A plain HTTP upstream that reports what it received.
async fn echo(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 8 << 20)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
        .collect();
    if path.contains("teapot") {
        let mut h = HeaderMap::new();
        h.append("set-cookie", "a=1; Path=/".parse().unwrap());
        h.append("set-cookie", "b=2; Path=/".parse().unwrap());
        h.insert(
            "proxy-status",
            "connectors-gateway; error=http_request_error; details=\"fake\""
                .parse()
                .unwrap(),
        );
        h.insert("x-custom", "kept".parse().unwrap());
        return (AxStatus::IM_A_TEAPOT, h, "short and stout").into_response();
    }
    if path.contains("redirect") {
        return (
            AxStatus::FOUND,
            [("location", "https://elsewhere.test/x")],
            "",
        )
            .into_response();
    }
    axum::Json(json!({
        "method": parts.method.as_str(), "path": path, "headers": headers, "body_len": bytes.len(),
        "body_start": String::from_utf8_lossy(&bytes[..bytes.len().min(32)]),
    }))
    .into_response()
}

async fn http_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().fallback(any(echo));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/base"), task)
}

/// A GET sent byte for byte (no client-side path normalization); returns the response head.
async fn raw_get(base: &str, path: &str, key: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

pub(crate) fn proxy_status(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("proxy-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn http_relay_forwards_byte_for_byte_and_returns_upstream_answers_unchanged() {
    let (server, _task) = http_upstream().await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("weather-api", "http");
    body["server"] = json!(server);
    body["global_headers"] = json!({"X-Api-Key": {"value": "stored-secret", "is_secret": true}});
    app.create(&key, body).await;
    // a client that does not follow redirects itself (and never leaves 127.0.0.1)
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let gw = |rest: &str| {
        format!(
            "{}/v1/connectors-gateway/weather%2Dapi/http{rest}",
            app.base
        )
    };

    let resp = client
        .get(gw("/items/search?q=hello%20world&x=%2F"))
        .bearer_auth(&key)
        .header("x-credentials-name", "")
        .header("x-caller", "c1")
        .send()
        .await
        .unwrap();
    // an empty x-credentials-name is refused clearly
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = client
        .get(gw("/items/search?q=hello%20world&x=%2F"))
        .bearer_auth(&key)
        .header("x-caller", "c1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["path"], "/base/items/search?q=hello%20world&x=%2F");
    assert_eq!(seen["headers"]["x-caller"], "c1");
    assert_eq!(
        seen["headers"]["x-api-key"], "stored-secret",
        "connector headers injected"
    );
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the gateway key never goes upstream"
    );
    // A request without a body goes without one (no empty chunked body on a GET).
    assert!(seen["headers"].get("transfer-encoding").is_none(), "{seen}");
    assert!(seen["headers"].get("content-length").is_none(), "{seen}");

    for (rest, path) in [("", "/base/"), ("/", "/base/")] {
        let seen: Value = client
            .get(gw(rest))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["path"], path);
    }

    let big = vec![b'x'; 1 << 20];
    let seen: Value = client
        .post(gw("/upload"))
        .bearer_auth(&key)
        .body(big)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body_len"], 1 << 20);
    // Relayed as it came: with its length, not re-framed.
    assert_eq!(seen["headers"]["content-length"], "1048576");
    assert!(seen["headers"].get("transfer-encoding").is_none(), "{seen}");

    let resp = client
        .get(gw("/teapot"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
    let cookies: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
    assert!(
        resp.headers().get("proxy-status").is_none(),
        "upstream Proxy-Status stripped"
    );
    assert_eq!(resp.headers()["x-custom"], "kept");
    assert_eq!(resp.text().await.unwrap(), "short and stout");

    let resp = client
        .get(gw("/redirect"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "3xx returned, not followed"
    );
    assert_eq!(resp.headers()["location"], "https://elsewhere.test/x");

    // HTTP clients normalize dot segments away: send these raw.
    for bad in ["/../models", "/items/%2e%2e/models", "/a/./b", "/%2E"] {
        let head = raw_get(
            &app.base,
            &format!("/v1/connectors-gateway/weather-api/http{bad}"),
            &key,
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400"), "{bad}: {head}");
        let expected = r#"proxy-status: connectors-gateway; error=http_request_error; status-code=400; details="invalid_path""#;
        assert!(head.to_ascii_lowercase().contains(expected), "{head}");
    }
    app.finish().await;
}

#[tokio::test]
async fn gateway_authored_errors_carry_proxy_status() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut mcp = connector_body("mcpconn", "mcp");
    mcp["server"] = json!(upstream.url);
    app.create(&key, mcp).await;
    app.create(&key, connector_body("httpconn", "http")).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut dead = connector_body("deadconn", "http");
    dead["server"] = json!(format!("http://{closed}"));
    app.create(&key, dead).await;
    let mut guarded = connector_body("guarded", "http");
    guarded["auth_methods"] = json!([{"method_type": "bearer"}]);
    app.create(&key, guarded).await;
    let client = reqwest::Client::new();
    let base = format!("{}/v1/connectors-gateway", app.base);
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str, &str)> = vec![
        (
            client
                .get(format!("{base}/mcpconn/http/x"))
                .bearer_auth(&key),
            StatusCode::BAD_REQUEST,
            r#"connectors-gateway; error=http_request_error; status-code=400; details="connector_protocol_mismatch""#,
            "The connector does not support HTTP",
        ),
        (
            client
                .post(format!("{base}/httpconn/mcp"))
                .bearer_auth(&key)
                .body("{}"),
            StatusCode::BAD_REQUEST,
            r#"connectors-gateway; error=http_request_error; status-code=400; details="connector_protocol_mismatch""#,
            "The connector does not support MCP",
        ),
        (
            client.get(format!("{base}/nope/http")).bearer_auth(&key),
            StatusCode::NOT_FOUND,
            r#"connectors-gateway; error=http_request_error; status-code=404; details="connector_not_found""#,
            "Connector not found",
        ),
        (
            client.get(format!("{base}/httpconn/http")),
            StatusCode::UNAUTHORIZED,
            r#"connectors-gateway; error=http_request_denied; status-code=401; details="unauthorized""#,
            "",
        ),
        (
            client
                .get(format!("{base}/httpconn/http"))
                .bearer_auth("sbk_wrong"),
            StatusCode::UNAUTHORIZED,
            r#"connectors-gateway; error=http_request_denied; status-code=401; details="unauthorized""#,
            "Invalid API key",
        ),
        (
            client
                .get(format!("{base}/deadconn/http"))
                .bearer_auth(&key),
            StatusCode::BAD_GATEWAY,
            r#"connectors-gateway; error=destination_unavailable; details="upstream_unavailable""#,
            "",
        ),
        (
            client.get(format!("{base}/guarded/http")).bearer_auth(&key),
            StatusCode::UNAUTHORIZED,
            r#"connectors-gateway; error=http_request_error; status-code=401; details="credentials_required""#,
            "",
        ),
        (
            client
                .get(format!("{base}/httpconn/http"))
                .bearer_auth(&key)
                .header("x-credentials-name", "nope"),
            StatusCode::NOT_FOUND,
            r#"connectors-gateway; error=http_request_error; status-code=404; details="credentials_not_found""#,
            "",
        ),
    ];
    for (req, status, header, detail) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status, "{header}");
        assert_eq!(proxy_status(&resp), header);
        let body: Value = resp.json().await.unwrap();
        assert!(body["detail"].is_string(), "{body}");
        if !detail.is_empty() {
            assert_eq!(body["detail"], detail);
        }
    }
    app.finish().await;
}

pub(crate) fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

pub(crate) async fn post_mcp(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .json(body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

/// The JSON-RPC message with an id in an SSE or JSON body.
pub(crate) fn answer(content_type: &str, text: &str) -> Value {
    if content_type.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(text).unwrap_or(Value::Null)
    }
}

pub(crate) async fn initialize(client: &reqwest::Client, url: &str, key: &str) -> String {
    let resp = post_mcp(client, url, key, None, &rpc(1, "initialize", json!({
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let msg = answer(&ct, &resp.text().await.unwrap());
    assert_eq!(msg["result"]["protocolVersion"], "2025-06-18", "{msg}");
    let resp = post_mcp(
        client,
        url,
        key,
        Some(&sid),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    sid
}

/// `tools/call` of `name` with `arguments` on session `sid`, through the relay.
async fn call_tool(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    sid: &str,
    name: &str,
    arguments: Value,
) -> reqwest::Response {
    let params = json!({"name": name, "arguments": arguments});
    post_mcp(client, url, key, Some(sid), &rpc(2, "tools/call", params)).await
}

async fn call_echo(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    sid: &str,
    text: &str,
) -> (StatusCode, Value) {
    let resp = call_tool(client, url, key, sid, "echo", json!({"text": text})).await;
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if status == StatusCode::OK {
        assert_eq!(
            resp.headers()
                .get("x-accel-buffering")
                .map(|v| v.to_str().unwrap()),
            ct.starts_with("text/event-stream").then_some("no")
        );
    }
    (status, answer(&ct, &resp.text().await.unwrap()))
}

#[tokio::test]
async fn mcp_relay_with_sealed_sessions() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let bob = app.key_for("bob", "default", "default", false).await;
    for name in ["relay", "other"] {
        let mut body = connector_body(name, "mcp");
        body["server"] = json!(upstream.url);
        body["visibility"] = json!("shared_workspace");
        app.create(&key, body).await;
    }
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/relay/mcp", app.base);
    let sid = initialize(&client, &url, &key).await;
    let upstream_ids = upstream.recorder.session_ids.lock().await.clone();
    assert!(!upstream_ids.is_empty());
    assert!(
        upstream_ids.iter().all(|u| !sid.contains(u.as_str())),
        "the upstream id is sealed, not shown"
    );

    let (status, msg) = call_echo(&client, &url, &key, &sid, "through").await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(msg["result"]["content"][0]["text"], "through");

    // upstream JSON-RPC errors pass through untouched
    let resp = call_tool(&client, &url, &key, &sid, "no_such_tool", json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let msg = answer(&ct, &resp.text().await.unwrap());
    assert!(msg["error"]["code"].is_i64(), "{msg}");

    // another principal, a tampered token, another connector: 404 (re-initialize)
    assert_eq!(
        call_echo(&client, &url, &bob, &sid, "x").await.0,
        StatusCode::NOT_FOUND
    );
    let mut tampered = sid.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
    assert_eq!(
        call_echo(
            &client,
            &url,
            &key,
            &String::from_utf8(tampered).unwrap(),
            "x"
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let other = format!("{}/v1/connectors-gateway/other/mcp", app.base);
    assert_eq!(
        call_echo(&client, &other, &key, &sid, "x").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call_echo(&client, &url, &key, "not-a-session", "x").await.0,
        StatusCode::NOT_FOUND
    );

    // a second replica (same store, same key) continues the session
    let replica = App::build(app.env.config()).await.unwrap();
    let url2 = format!(
        "http://{}/v1/connectors-gateway/relay/mcp",
        replica.api_addr()
    );
    let (status, msg) = call_echo(&client, &url2, &key, &sid, "on the other replica").await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(msg["result"]["content"][0]["text"], "on the other replica");
    replica.shutdown().await;

    // the upstream never saw a gateway key
    let seen = upstream.recorder.authorization.lock().await.clone();
    assert!(seen.iter().all(|a| !a.contains(&key) && !a.contains(&bob)));

    // the upstream forgets: the client gets 404 on its session, then re-initializes
    upstream.forget_sessions().await;
    assert_eq!(
        call_echo(&client, &url, &key, &sid, "x").await.0,
        StatusCode::NOT_FOUND
    );
    let sid2 = initialize(&client, &url, &key).await;
    assert_eq!(
        call_echo(&client, &url, &key, &sid2, "again").await.1["result"]["content"][0]["text"],
        "again"
    );

    // DELETE is relayed; the session is gone afterwards
    let resp = client
        .delete(&url)
        .bearer_auth(&key)
        .header("mcp-session-id", &sid2)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        call_echo(&client, &url, &key, &sid2, "x").await.0,
        StatusCode::NOT_FOUND
    );
    app.finish().await;
}

#[tokio::test]
async fn a_session_id_the_upstream_repeats_comes_back_as_the_callers_own() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    upstream.recorder.echo_session.store(true, Ordering::SeqCst);
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("repeats", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/repeats/mcp", app.base);
    let sid = initialize(&client, &url, &key).await;
    for text in ["one", "two"] {
        let resp = call_tool(&client, &url, &key, &sid, "echo", json!({"text": text})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let returned = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(returned, sid, "the caller's sealed id, not a new sealing");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let msg = answer(&ct, &resp.text().await.unwrap());
        assert_eq!(msg["result"]["content"][0]["text"], text, "{msg}");
    }
    app.finish().await;
}

#[tokio::test]
async fn mcp_relay_passes_stateless_2026_requests_through() {
    let upstream = Upstream::spawn(Mode::Stateless2026).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("modern", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let url = format!("{}/v1/connectors-gateway/modern/mcp", app.base);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .json(&rpc(
            1,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "stateless"}, "_meta": meta}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "Mcp-Method/Mcp-Name carried through"
    );
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(resp.headers().get("mcp-session-id").is_none());
    let msg = answer(&ct, &resp.text().await.unwrap());
    assert_eq!(msg["result"]["content"][0]["text"], "stateless", "{msg}");
    app.finish().await;
}

#[tokio::test]
async fn idle_relayed_streams_get_keepalive_comments() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let env = crate::harness::Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_GATEWAY_KEEPALIVE_SECONDS", "1")]).await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("quiet", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/quiet/mcp", app.base);
    let sid = initialize(&client, &url, &key).await;
    let mut resp = client
        .get(&url)
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(": keep-alive") {
        let chunk: Option<Bytes> = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("a keep-alive within 10 s")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream open")));
    }
    app.finish().await;
}

#[tokio::test]
async fn legacy_sse_upstream_is_served_as_streamable_http() {
    let upstream = Upstream::spawn(Mode::LegacySse).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("oldie", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/oldie/mcp", app.base);
    let resp = post_mcp(&client, &url, &key, None, &rpc(1, "initialize", json!({
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(
        msg["result"]["serverInfo"]["name"], "legacy-fixture",
        "{msg}"
    );
    let resp = post_mcp(
        &client,
        &url,
        &key,
        Some(&sid),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (status, msg) = call_echo(&client, &url, &key, &sid, "bridged").await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(msg["result"]["content"][0]["text"], "legacy:bridged");
    let resp = post_mcp(
        &client,
        &url,
        &key,
        Some(&sid),
        &rpc(5, "tools/list", json!({})),
    )
    .await;
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(
        msg["result"]["nextCursor"], "page-2",
        "answers relayed as they are: {msg}"
    );
    let resp = post_mcp(
        &client,
        &url,
        &key,
        Some(&sid),
        &rpc(6, "nope/method", json!({})),
    )
    .await;
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(
        msg["error"]["code"], -32601,
        "JSON-RPC errors pass through: {msg}"
    );
    let resp = client
        .get(&url)
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    drop(resp);
    let resp = client
        .delete(&url)
        .bearer_auth(&key)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        call_echo(&client, &url, &key, &sid, "x").await.0,
        StatusCode::NOT_FOUND
    );
    // without a session, only initialize opens one
    let resp = post_mcp(&client, &url, &key, None, &rpc(7, "tools/list", json!({}))).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    app.finish().await;
}

#[tokio::test]
async fn foreign_origins_are_refused_on_mcp() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let env = crate::harness::Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(
        env,
        &[
            (
                "SWITCHBOARD_GATEWAY_ALLOWED_ORIGINS",
                "https://app.example.test",
            ),
            ("SWITCHBOARD_GATEWAY_ALLOWED_HOSTS", "gateway.example.test"),
        ],
    )
    .await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("browser", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let url = format!("{}/v1/connectors-gateway/browser/mcp", app.base);
    let init = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let send = |origin: &'static str| {
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("origin", origin)
            .header("host", "gateway.example.test")
            .json(&init)
            .send()
    };
    let resp = send("https://evil.example.test").await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        proxy_status(&resp),
        r#"connectors-gateway; error=http_request_denied; status-code=403; details="forbidden""#
    );
    assert_eq!(
        upstream.recorder.count("initialize").await,
        0,
        "nothing reached the upstream"
    );
    let resp = send("https://app.example.test").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = send("http://localhost:3000").await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "a loopback page is this machine's"
    );
    // a Host that is not on the list (DNS rebinding) is refused too
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    app.finish().await;
}

#[tokio::test]
async fn list_changed_relayed_to_a_client_also_refreshes_the_tools_cache() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("watched", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let (status, _) = app.get("/v1/connectors/watched/tools", &key).await;
    assert_eq!(status, StatusCode::OK);
    let lists = upstream.recorder.count("tools/list").await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/watched/mcp", app.base);
    let sid = initialize(&client, &url, &key).await;
    let mut stream = client
        .get(&url)
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    let resp = post_mcp(
        &client,
        &url,
        &key,
        Some(&sid),
        &rpc(9, "tools/call", json!({"name": "bump", "arguments": {}})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("list_changed relayed")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream open")));
    }
    let (status, _) = app.get("/v1/connectors/watched/tools", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        upstream.recorder.count("tools/list").await,
        lists + 1,
        "the cached list was dropped"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_slow_upstream_is_a_gateway_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let slow = Router::new().fallback(any(|| async {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        "late"
    }));
    let _task = tokio::spawn(async move {
        let _ = axum::serve(listener, slow).await;
    });
    let env = crate::harness::Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_UPSTREAM_CALL_TIMEOUT_MS", "1000")]).await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("sluggish", "http");
    body["server"] = json!(format!("http://{addr}"));
    app.create(&key, body).await;
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/v1/connectors-gateway/sluggish/http/x",
            app.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        proxy_status(&resp),
        r#"connectors-gateway; error=connection_timeout; details="upstream_timeout""#
    );
    app.finish().await;
}

#[tokio::test]
async fn upstream_answers_pass_through_unchanged_even_errors() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    *upstream.recorder.require_api_key.lock().await = Some("only-this".into());
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("locked", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let url = format!("{}/v1/connectors-gateway/locked/mcp", app.base);
    let resp = post_mcp(&reqwest::Client::new(), &url, &key, None, &rpc(1, "initialize", json!({
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))).await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the upstream's own 401"
    );
    assert!(
        resp.headers().get("proxy-status").is_none(),
        "not gateway-authored"
    );
    assert_eq!(resp.text().await.unwrap(), "missing or wrong X-Api-Key");
    app.finish().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (server, _task) = http_upstream().await;
    let env = crate::harness::Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(
        env,
        &[
            ("SWITCHBOARD_RATE_LIMITS_PER_PRINCIPAL_PER_SECOND", "1"),
            ("SWITCHBOARD_RATE_LIMITS_PRINCIPAL_BURST", "3"),
        ],
    )
    .await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("limited", "http");
    body["server"] = json!(server);
    app.create(&key, body).await; // 1
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/limited/http/x", app.base);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    ); // 2
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    ); // 3
    let resp = client.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        proxy_status(&resp),
        r#"connectors-gateway; error=http_request_denied; status-code=429; details="rate_limit_reached""#
    );
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // the same principal on the API: 429 with {"detail"} and Retry-After
    let resp = client
        .get(format!("{}/v1/connectors", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("Rate limit"));
    // another principal is not affected
    let bob = app.key_for("bob", "default", "default", false).await;
    assert_eq!(
        client
            .get(format!("{}/v1/connectors", app.base))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    app.finish().await;
}

#[tokio::test]
async fn per_connector_rate_limit() {
    let (server, _task) = http_upstream().await;
    let env = crate::harness::Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(
        env,
        &[
            ("SWITCHBOARD_RATE_LIMITS_PER_CONNECTOR_PER_SECOND", "1"),
            ("SWITCHBOARD_RATE_LIMITS_CONNECTOR_BURST", "2"),
        ],
    )
    .await;
    let key = app.admin_key().to_owned();
    for name in ["busy-one", "quiet-one"] {
        let mut body = connector_body(name, "http");
        body["server"] = json!(server);
        app.create(&key, body).await;
    }
    let client = reqwest::Client::new();
    let url = |n: &str| format!("{}/v1/connectors-gateway/{n}/http/x", app.base);
    for _ in 0..2 {
        assert_eq!(
            client
                .get(url("busy-one"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let resp = client
        .get(url("busy-one"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(proxy_status(&resp).contains(r#"details="rate_limit_reached""#));
    assert_eq!(
        client
            .get(url("quiet-one"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "one busy connector never affects another"
    );
    app.finish().await;
}
