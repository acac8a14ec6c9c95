//! SIGTERM on the real binary while a relayed SSE stream is open and a slow tool call is in
//! flight: `/readyz` turns 503 first, the call completes, the stream ends cleanly, and the
//! process exits 0 within the grace period.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Env, Process, connector_body};
use crate::upstream::{Mode, Upstream};

const GRACE_SECONDS: u64 = 10;

#[tokio::test]
async fn sigterm_finishes_calls_ends_streams_and_exits_zero() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let grace = GRACE_SECONDS.to_string();
    let Process {
        mut child,
        base: api,
        admin_base: admin,
        log,
    } = Process::spawn(
        &env,
        &[
            ("SWITCHBOARD_SHUTDOWN_GRACE_SECONDS", grace.as_str()),
            ("SWITCHBOARD_GATEWAY_KEEPALIVE_SECONDS", "60"),
        ],
    )
    .await;
    let key = env.admin_key.clone();
    let client = reqwest::Client::new();
    let mut body = connector_body("draining", "mcp");
    body["server"] = json!(upstream.url);
    let resp = client
        .post(format!("{api}/v1/connectors"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // An open SSE stream through the gateway.
    let url = format!("{api}/v1/connectors-gateway/draining/mcp");
    let sid = crate::gateway::initialize(&client, &url, &key).await;
    let mut stream = client
        .get(&url)
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let reader = tokio::spawn(async move {
        let mut bytes = 0usize;
        loop {
            match stream.chunk().await {
                Ok(Some(c)) => bytes += c.len(),
                Ok(None) => return Ok(bytes),
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    // A slow tool call in flight.
    let call = {
        let (client, key) = (client.clone(), key.clone());
        let url = format!("{api}/v1/connectors/draining/tools/sleep/call");
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"arguments": {"ms": 1500}}))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = child.id().unwrap().to_string();
    let sent = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    // Readiness turns 503 while the drain runs (the admin listener still answers).
    let mut ready_503 = false;
    while sent.elapsed() < Duration::from_secs(2) {
        if let Ok(r) = client.get(format!("{admin}/readyz")).send().await {
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                ready_503 = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready_503, "/readyz did not turn 503 after SIGTERM");
    // New connections are refused once draining. Readiness turns 503 first and the listener
    // closes right after (a scheduling turn later), so poll with fresh connections: a pooled
    // keep-alive connection is not a new one.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut refused = false;
    while sent.elapsed() < Duration::from_secs(3) {
        if fresh
            .get(format!("{api}/v1/connectors"))
            .bearer_auth(&key)
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the API listener still accepts 3 s after SIGTERM");

    let (status, result) = call.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["content"][0]["text"], "slept", "{result}");
    let ended = tokio::time::timeout(Duration::from_secs(GRACE_SECONDS), reader)
        .await
        .expect("the stream ends within the grace period")
        .unwrap();
    assert!(ended.is_ok(), "the stream ended with an error: {ended:?}");
    let status = tokio::time::timeout(Duration::from_secs(GRACE_SECONDS + 5), child.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        sent.elapsed() < Duration::from_secs(GRACE_SECONDS),
        "exit took {:?}",
        sent.elapsed()
    );
    let log = log.await.unwrap();
    assert!(
        !log.iter().any(|l| l.contains("grace period over")),
        "the drain needed the whole grace period"
    );
    // The slow call's access line, answered during the drain, is in the log: lines queued at
    // exit are written out. Its duration is in whole microseconds, and no key is in any line.
    let access: Vec<Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["target"] == "switchboard::access"
                && v["fields"]["route"] == "/v1/connectors/:ref/tools/*rest"
        })
        .collect();
    assert_eq!(access.len(), 1, "{log:#?}");
    let line = &access[0]["fields"];
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["connector"], "draining", "{line}");
    assert_eq!(line["method"], "POST", "{line}");
    let ms = line["duration_ms"].as_f64().expect("a number");
    assert!(ms >= 1_500.0, "{line}");
    let digits = line["duration_ms"].to_string();
    let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(decimals <= 3, "duration in whole microseconds: {digits}");
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(
        !log.iter().any(|l| l.contains(key.as_str())),
        "a key in the log"
    );
}

/// A relayed POST answered with SSE when the drain starts: its answer runs to the end (a
/// drain only ends listening streams), so the client gets its JSON-RPC response.
#[tokio::test]
async fn a_post_answer_streamed_when_the_drain_starts_completes() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = crate::harness::TestApp::spawn(Backend::Sqlite)
        .await
        .unwrap();
    let key = app.admin_key().to_owned();
    let mut body = connector_body("draining", "mcp");
    body["server"] = json!(upstream.url);
    app.create(&key, body).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/connectors-gateway/draining/mcp", app.base);
    let sid = crate::gateway::initialize(&client, &url, &key).await;
    let call = {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        tokio::spawn(async move {
            let call = crate::gateway::rpc(
                9,
                "tools/call",
                json!({"name": "sleep", "arguments": {"ms": 1000}}),
            );
            let r = crate::gateway::post_mcp(&client, &url, &key, Some(&sid), &call).await;
            let status = r.status();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (
                status,
                crate::gateway::answer(&ct, &r.text().await.unwrap()),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
    let (status, msg) = call.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(msg["id"], 9, "{msg}");
    assert_eq!(msg["result"]["content"][0]["text"], "slept", "{msg}");
}
