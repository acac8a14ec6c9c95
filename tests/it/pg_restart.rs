//! The local PostgreSQL server itself stopped and started (`pg_ctlcluster`) under a running
//! gateway with traffic: while it is down `/readyz` answers 503, data-plane requests whose key,
//! connector and credential were read recently keep working (REST tool calls, `/mcp` sessions,
//! the cached tools list), everything else answers a clear 503 — never a 500 or a dropped
//! connection — and when it is back everything recovers without restarting the gateway.
//!
//! It stops the machine's database, so it must run alone: it is `#[ignore]`d and `.ci/run`
//! runs it after the rest of the suite (`cargo test --test it -- --ignored pg_restart`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::gateway::{answer, initialize, post_mcp, rpc};
use crate::harness::{Backend, Env, TestApp, connector_body};
use crate::upstream::{Mode, Upstream};

fn cluster(action: &str) -> std::process::ExitStatus {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster (/etc/postgresql)")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a cluster version");
    std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .expect("pg_ctlcluster runs")
}

/// Starts the cluster again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        if !pg_ready() {
            let _ = cluster("start");
        }
    }
}

fn pg_ready() -> bool {
    std::process::Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
        .status()
        .is_ok_and(|s| s.success())
}

/// What one kind of request got, per phase.
type Tally = BTreeMap<(String, &'static str, String), u64>;

#[tokio::test]
#[ignore = "stops the local PostgreSQL server: run alone (.ci/run does)"]
async fn postgres_stopped_and_started_under_load() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::start_with(env, &[("SWITCHBOARD_STORE_ACQUIRE_TIMEOUT_MS", "500")]).await;
    let key = app.admin_key().to_owned();
    app.connector_with_token(&key, "tools", "mcp", &upstream.url, "tok-pg")
        .await;
    let client = reqwest::Client::new();
    let mcp_url = format!("{}/v1/connectors-gateway/tools/mcp", app.base);
    let session = initialize(&client, &mcp_url, &key).await;

    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(tokio::sync::Mutex::new(Tally::new()));
    let mut workers = tokio::task::JoinSet::new();
    for kind in [
        "rest_call",
        "mcp_call",
        "tools_list",
        "api_list",
        "uncached",
    ] {
        let (client, base, key, session) = (
            client.clone(),
            app.base.clone(),
            key.clone(),
            session.clone(),
        );
        let (phase, stop, tally) = (phase.clone(), stop.clone(), tally.clone());
        workers.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let outcome = match kind {
                    "rest_call" => {
                        let r = client
                            .post(format!("{base}/v1/connectors/tools/tools/echo/call"))
                            .bearer_auth(&key)
                            .json(&json!({"arguments": {"text": format!("r{n}")}}))
                            .send()
                            .await;
                        match r {
                            Ok(r) => {
                                let s = r.status();
                                let v: Value = r.json().await.unwrap_or_default();
                                if s == StatusCode::OK && v["content"][0]["text"] != format!("r{n}")
                                {
                                    format!("wrong body {v}")
                                } else {
                                    s.as_u16().to_string()
                                }
                            }
                            Err(e) => format!("transport error {e}"),
                        }
                    }
                    "mcp_call" => {
                        let url = format!("{base}/v1/connectors-gateway/tools/mcp");
                        let body = rpc(
                            2,
                            "tools/call",
                            json!({"name": "echo", "arguments": {"text": format!("m{n}")}}),
                        );
                        let r = post_mcp(&client, &url, &key, Some(&session), &body).await;
                        let s = r.status();
                        let ct = r
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let msg = answer(&ct, &r.text().await.unwrap_or_default());
                        if s == StatusCode::OK
                            && msg["result"]["content"][0]["text"] != format!("m{n}")
                        {
                            format!("wrong body {msg}")
                        } else {
                            s.as_u16().to_string()
                        }
                    }
                    "tools_list" => status_of(
                        client
                            .get(format!("{base}/v1/connectors/tools/tools"))
                            .bearer_auth(&key)
                            .send()
                            .await,
                    ),
                    "api_list" => status_of(
                        client
                            .get(format!("{base}/v1/connectors"))
                            .bearer_auth(&key)
                            .send()
                            .await,
                    ),
                    _ => {
                        // A connector never resolved before: nothing cached to fall back on.
                        let r = client
                            .post(format!("{base}/v1/connectors-gateway/missing-{n}/mcp"))
                            .bearer_auth(&key)
                            .header("accept", "application/json, text/event-stream")
                            .json(&rpc(1, "tools/list", json!({})))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                                let ps = r
                                    .headers()
                                    .get("proxy-status")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                if ps.contains("store_unavailable") {
                                    "503".to_owned()
                                } else {
                                    format!("503 without store_unavailable: {ps}")
                                }
                            }
                            other => status_of(other),
                        }
                    }
                };
                let p = match phase.load(Ordering::SeqCst) {
                    0 => "before",
                    1 => "down",
                    _ => "after",
                };
                *tally
                    .lock()
                    .await
                    .entry((kind.to_owned(), p, outcome))
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    // Warm every kind up, then stop the server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restart = Restart;
    phase.store(1, Ordering::SeqCst);
    let stopped_at = Instant::now();
    assert!(cluster("stop").success(), "pg_ctlcluster stop failed");
    eprintln!("PostgreSQL stopped in {:?}", stopped_at.elapsed());
    let ready = || async {
        client
            .get(format!("{}/readyz", app.admin_base))
            .send()
            .await
            .unwrap()
            .status()
    };
    let mut not_ready = false;
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(5) {
        if ready().await == StatusCode::SERVICE_UNAVAILABLE {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Down for a while under traffic.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started_at = Instant::now();
    assert!(cluster("start").success(), "pg_ctlcluster start failed");
    drop(restart);
    eprintln!("PostgreSQL started in {:?}", started_at.elapsed());
    // Recovery without a gateway restart: ready again, and a control-plane write works.
    let mut recovered = None;
    while started_at.elapsed() < Duration::from_secs(30) {
        if ready().await == StatusCode::OK
            && app.get("/v1/connectors", &key).await.0 == StatusCode::OK
        {
            recovered = Some(started_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    phase.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    while workers.join_next().await.is_some() {}

    let tally = tally.lock().await.clone();
    eprintln!("outcomes (kind, phase, outcome): count");
    for ((kind, p, outcome), n) in &tally {
        eprintln!("  {kind:10} {p:6} {outcome}: {n}");
    }
    assert!(not_ready, "/readyz stayed 200 while PostgreSQL was down");
    let recovered = recovered.expect("the gateway did not recover after PostgreSQL came back");
    eprintln!("recovered {recovered:?} after pg_ctlcluster start returned");
    let count = |kind: &str, p: &str, outcome: &str| {
        tally
            .get(&(kind.to_owned(), leak(p), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    // Never anything but the expected answer or a clear 503.
    let bad: Vec<_> = tally
        .iter()
        .filter(|((k, _, o), _)| {
            let expected = if k == "uncached" { "404" } else { "200" };
            o != expected && o != "503"
        })
        .collect();
    assert!(bad.is_empty(), "unexpected outcomes: {bad:?}");
    // Cached data-plane requests never failed, not even while the database was down.
    for kind in ["rest_call", "mcp_call", "tools_list"] {
        for p in ["before", "down", "after"] {
            assert_eq!(count(kind, p, "503"), 0, "{kind} failed ({p})");
            assert!(count(kind, p, "200") > 0, "no {kind} completed ({p})");
        }
    }
    // Uncached requests: 503 while down, fine before and after.
    assert!(count("api_list", "down", "503") > 0);
    assert!(count("uncached", "down", "503") > 0);
    assert!(count("api_list", "before", "200") > 0);
    assert!(count("uncached", "before", "404") > 0);
    for kind in ["api_list", "uncached"] {
        assert_eq!(count(kind, "before", "503"), 0, "{kind} before");
        assert_eq!(count(kind, "after", "503"), 0, "{kind} after the recovery");
    }
    // A write after the recovery, and everything still there.
    app.create(&key, connector_body("after-restart", "http"))
        .await;
    let names: Vec<String> = app
        .list_all(&key)
        .await
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["tools", "after-restart"]);
    app.finish().await;
}

/// The tally's phase names are `&'static str`: map a borrowed one back.
fn leak(p: &str) -> &'static str {
    match p {
        "before" => "before",
        "down" => "down",
        _ => "after",
    }
}

fn status_of(r: Result<reqwest::Response, reqwest::Error>) -> String {
    match r {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) => format!("transport error {e}"),
    }
}
