//! `tools` and `tools/{name}/call` against real upstreams of every era (rmcp in-process, and a
//! legacy HTTP+SSE fixture), the session pool and the tools cache.

use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Env, TestApp, connector_body};
use crate::upstream::{Mode, Upstream, legacy_rich_tool};

async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await.unwrap()
}

async fn mcp_connector(app: &TestApp, name: &str, url: &str) -> String {
    let mut body = connector_body(name, "mcp");
    body["server"] = json!(url);
    app.create(app.admin_key(), body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tools(app: &TestApp, reference: &str, query: &str) -> (StatusCode, Value) {
    app.get(
        &format!(
            "/v1/connectors/{reference}/tools?page_size=100&refresh=false&pretty=false{query}"
        ),
        app.admin_key(),
    )
    .await
}

async fn call(app: &TestApp, reference: &str, tool: &str, args: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/v1/connectors/{reference}/tools/{tool}/call"),
        app.admin_key(),
        &json!({"arguments": args}),
    )
    .await
}

fn names(list: &Value) -> Vec<&str> {
    let mut n: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    n.sort_unstable();
    n
}

/// What every rmcp mode must do through the REST endpoints.
async fn rmcp_round_trip(mode: Mode) {
    let upstream = Upstream::spawn(mode).await;
    let app = app().await;
    mcp_connector(&app, "up", &upstream.url).await;

    let (status, list) = tools(&app, "up", "").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        names(&list),
        ["add", "bump", "echo", "fail", "ns/echo", "sleep", "whoami"]
    );
    let add = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add")
        .unwrap();
    assert!(add["inputSchema"]["properties"]["a"].is_object());
    assert!(
        add["outputSchema"].is_object(),
        "outputSchema preserved: {add}"
    );
    let echo = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    assert_eq!(echo["annotations"]["readOnlyHint"], true);

    let (status, pretty) = tools(&app, "up", "&pretty=true").await;
    assert_eq!(status, StatusCode::OK);
    for t in pretty.as_array().unwrap() {
        let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        assert!(
            keys.iter().all(
                |k| ["name", "description", "annotations", "inputSchema"].contains(&k.as_str())
            ),
            "{t}"
        );
        assert!(t["inputSchema"].get("$schema").is_none());
    }

    let (status, r) = call(&app, "up", "echo", json!({"text": "hello"})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["content"][0], json!({"type": "text", "text": "hello"}));
    assert_eq!(r["metadata"]["mcp_meta"]["isError"], false);

    let (status, r) = call(&app, "up", "add", json!({"a": 2, "b": 3})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        r["metadata"]["mcp_meta"]["structuredContent"],
        json!({"sum": 5})
    );

    let (status, r) = call(&app, "up", "fail", json!({})).await;
    assert_eq!(status, StatusCode::OK, "a tool error is a 200: {r}");
    assert_eq!(r["metadata"]["mcp_meta"]["isError"], true);
    assert_eq!(r["content"][0]["text"], "the tool failed");

    let (status, r) = call(&app, "up", "ns/echo", json!({"text": "x"})).await;
    assert_eq!(status, StatusCode::OK, "tool names with '/' route: {r}");
    assert_eq!(r["content"][0]["text"], "ns:x");

    let (status, r) = call(&app, "up", "no_such_tool", json!({})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "upstream JSON-RPC error: {r}"
    );
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .starts_with("Upstream MCP error -326"),
        "{r}"
    );

    // rmcp reports bad arguments as a tool error
    let (status, r) = call(&app, "up", "echo", json!({"wrong": 1})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["metadata"]["mcp_meta"]["isError"], true);

    // no body at all = no arguments
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/connectors/up/tools/fail/call", app.base))
        .bearer_auth(app.admin_key())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn stateless_2026_upstream() {
    rmcp_round_trip(Mode::Stateless2026).await;
}

#[tokio::test]
async fn streamable_upstream_with_sessions_and_sse_replies() {
    rmcp_round_trip(Mode::Sessions).await;
}

#[tokio::test]
async fn streamable_upstream_without_sessions_json_replies() {
    rmcp_round_trip(Mode::JsonNoSessions).await;
}

#[tokio::test]
async fn eras_are_detected_once_and_sessions_reused() {
    for (mode, discovers, initializes) in [
        (Mode::Stateless2026, 1, 0),
        (Mode::Sessions, 1, 1),
        (Mode::JsonNoSessions, 1, 1),
    ] {
        let upstream = Upstream::spawn(mode).await;
        let app = app().await;
        mcp_connector(&app, "pooled", &upstream.url).await;
        for i in 0..5 {
            let (status, r) = call(&app, "pooled", "echo", json!({"text": format!("n{i}")})).await;
            assert_eq!(status, StatusCode::OK, "{mode:?}: {r}");
        }
        let rec = &upstream.recorder;
        assert_eq!(rec.count("server/discover").await, discovers, "{mode:?}");
        assert_eq!(
            rec.count("initialize").await,
            initializes,
            "{mode:?}: one initialize for 5 calls"
        );
        assert_eq!(rec.count("tools/call").await, 5);
        app.finish().await;
    }
}

#[tokio::test]
async fn legacy_sse_upstream_pages_and_preserves_every_field() {
    let upstream = Upstream::spawn(Mode::LegacySse).await;
    let app = app().await;
    mcp_connector(&app, "old", &upstream.url).await;
    let (status, list) = tools(&app, "old", "").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list,
        json!([legacy_rich_tool(), {"name": "second", "inputSchema": {"type": "object"}}])
    );
    assert_eq!(
        upstream.recorder.count("tools/list").await,
        2,
        "both pages fetched"
    );
    let (status, r) = call(&app, "old", "rich", json!({"text": "hi"})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["content"][0]["text"], "legacy:hi");
    app.finish().await;
}

#[tokio::test]
async fn concurrent_cold_misses_make_one_upstream_call_and_refresh_refetches() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = app().await;
    mcp_connector(&app, "hot", &upstream.url).await;
    let url = format!("{}/v1/connectors/hot/tools", app.base);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (url, key) = (url.clone(), app.admin_key().to_owned());
        set.spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        upstream.recorder.count("tools/list").await,
        1,
        "50 concurrent misses, one upstream call"
    );
    tools(&app, "hot", "").await;
    assert_eq!(upstream.recorder.count("tools/list").await, 1, "warm cache");
    let (status, _) = tools(&app, "hot", "&refresh=true").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        upstream.recorder.count("tools/list").await,
        2,
        "refresh bypasses and refills"
    );
    tools(&app, "hot", "").await;
    assert_eq!(upstream.recorder.count("tools/list").await, 2);
    app.finish().await;
}

#[tokio::test]
async fn list_changed_makes_the_next_call_refetch() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = app().await;
    mcp_connector(&app, "changing", &upstream.url).await;
    tools(&app, "changing", "").await;
    assert_eq!(upstream.recorder.count("tools/list").await, 1);
    let (status, _) = call(&app, "changing", "bump", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    // The notification travels on the session's GET stream; wait (bounded) for its effect.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        tools(&app, "changing", "").await;
        if upstream.recorder.count("tools/list").await >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "list_changed never invalidated the cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn notification_before_the_response_on_the_sse_stream_is_seen() {
    let upstream = Upstream::spawn(Mode::RawSse).await;
    let app = app().await;
    mcp_connector(&app, "inline", &upstream.url).await;
    let (status, list) = tools(&app, "inline", "").await;
    assert_eq!(status, StatusCode::OK, "priming event skipped: {list}");
    assert_eq!(names(&list), ["echo"]);
    let (status, r) = call(&app, "inline", "echo", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["content"][0]["text"], "after the notification");
    let (status, r) = call(&app, "inline", "rpc400", json!({})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a JSON-RPC error in a 4xx answer is the upstream's answer: {r}"
    );
    assert_eq!(r["detail"], "Upstream MCP error -32602: bad args");
    tools(&app, "inline", "").await;
    assert_eq!(
        upstream.recorder.count("tools/list").await,
        2,
        "invalidated before the response arrived"
    );
    app.finish().await;
}

#[tokio::test]
async fn upstream_down_serves_the_last_good_list() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = app().await;
    mcp_connector(&app, "flaky", &upstream.url).await;
    let (_, good) = tools(&app, "flaky", "").await;
    upstream.recorder.down.store(true, Ordering::SeqCst);
    let (status, stale) = tools(&app, "flaky", "&refresh=true").await;
    assert_eq!(status, StatusCode::OK, "{stale}");
    assert_eq!(
        stale, good,
        "last good list served while the upstream is down"
    );
    // a tool call has no fallback: the failure is reported
    let (status, r) = call(&app, "flaky", "echo", json!({"text": "x"})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{r}");
    upstream.recorder.down.store(false, Ordering::SeqCst);
    let (status, _) = call(&app, "flaky", "echo", json!({"text": "x"})).await;
    assert_eq!(status, StatusCode::OK, "recovers when the upstream is back");
    app.finish().await;
}

#[tokio::test]
async fn forgotten_session_is_reinitialized_transparently() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = app().await;
    mcp_connector(&app, "forgetful", &upstream.url).await;
    assert_eq!(
        call(&app, "forgetful", "echo", json!({"text": "a"}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(upstream.recorder.count("initialize").await, 1);
    upstream.forget_sessions().await;
    let (status, r) = call(&app, "forgetful", "echo", json!({"text": "b"})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["content"][0]["text"], "b");
    assert_eq!(
        upstream.recorder.count("initialize").await,
        2,
        "re-initialized once"
    );
    app.finish().await;
}

#[tokio::test]
async fn dead_slow_and_rejecting_upstreams_are_distinct_errors() {
    // a port with nothing listening
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_UPSTREAM_CALL_TIMEOUT_MS", "1500")]).await;
    mcp_connector(&app, "dead", &format!("http://{closed}/mcp")).await;
    let (status, r) = tools(&app, "dead", "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["detail"], "Upstream MCP server unavailable");
    assert_eq!(
        call(&app, "dead", "echo", json!({})).await.0,
        StatusCode::BAD_GATEWAY
    );

    mcp_connector(&app, "slow", &upstream.url).await;
    let (status, r) = call(&app, "slow", "sleep", json!({"ms": 5000})).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{r}");
    assert_eq!(r["detail"], "Upstream MCP server timed out");

    *upstream.recorder.require_api_key.lock().await = Some("right-key".into());
    mcp_connector(&app, "locked", &upstream.url).await;
    let (status, r) = tools(&app, "locked", "").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an auth failure is an error, never an empty list: {r}"
    );
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("rejected the credentials")
    );

    // the connector's secret global header reaches the upstream (and nothing of the caller's)
    let mut body = connector_body("keyed", "mcp");
    body["server"] = json!(upstream.url);
    body["global_headers"] = json!({"X-Api-Key": {"value": "right-key", "is_secret": true}});
    app.create(app.admin_key(), body).await;
    let (status, r) = call(&app, "keyed", "whoami", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        r["content"][0]["text"], "<none>",
        "the caller's API key never goes upstream"
    );
    let seen = upstream.recorder.authorization.lock().await.clone();
    assert!(seen.iter().all(|a| !a.contains(app.admin_key())));
    app.finish().await;
}

#[tokio::test]
async fn tools_endpoints_refuse_what_they_cannot_serve() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = app().await;
    let mut http = connector_body("plainhttp", "http");
    http["server"] = json!(upstream.url);
    app.create(app.admin_key(), http).await;
    let (status, r) = tools(&app, "plainhttp", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(r["detail"], "The connector does not support MCP");

    mcp_connector(&app, "mine", &upstream.url).await;
    let (status, r) = tools(&app, "mine", "&credentials_name=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{r}");
    assert_eq!(tools(&app, "missing", "").await.0, StatusCode::NOT_FOUND);

    app.send(
        reqwest::Method::POST,
        "/v1/connectors/mine/user/deactivate",
        Some(app.admin_key()),
        None,
    )
    .await;
    let (status, r) = tools(&app, "mine", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{r}");
    let (status, _) = call(&app, "mine", "echo", json!({"text": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.send(
        reqwest::Method::POST,
        "/v1/connectors/mine/user/activate",
        Some(app.admin_key()),
        None,
    )
    .await;

    let (status, r) = app
        .post(
            "/v1/connectors/mine/tools/echo/call",
            app.admin_key(),
            &json!({"arguments": [1]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let (status, _) = app
        .post(
            "/v1/connectors/mine/tools/echo/run",
            app.admin_key(),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        upstream.recorder.count("tools/call").await,
        0,
        "nothing reached the upstream"
    );
    app.finish().await;
}

#[tokio::test]
async fn idle_sessions_expire_and_are_reopened() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_UPSTREAM_SESSION_IDLE_SECONDS", "1")]).await;
    mcp_connector(&app, "idle", &upstream.url).await;
    assert_eq!(
        call(&app, "idle", "echo", json!({"text": "a"})).await.0,
        StatusCode::OK
    );
    assert_eq!(upstream.recorder.count("initialize").await, 1);
    // Wait out the idle time (bounded), then a call needs a new session.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(
            call(&app, "idle", "echo", json!({"text": "b"})).await.0,
            StatusCode::OK
        );
        if upstream.recorder.count("initialize").await >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle session was never replaced"
        );
    }
    app.finish().await;
}
