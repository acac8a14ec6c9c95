//! PostgreSQL going away under a running gateway (a TCP proxy in front of the real server is
//! cut, then restored): `/readyz` turns 503; data-plane requests whose API key, connector and
//! credential were read recently keep working from memory; others answer a clear 503
//! (`store_unavailable` with `Proxy-Status` on the data plane, `{"detail"}` on the API) instead
//! of a 500; everything recovers by itself when the database is back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::harness::{Backend, Env, PG_ENV, TestApp, connector_body};

/// Forwards `127.0.0.1:<port>` to PostgreSQL until dropped (then every connection is cut).
struct Proxy {
    tasks: JoinSet<()>,
}

async fn proxy(listener: TcpListener, target: String) -> Proxy {
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            conns.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Proxy { tasks }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

#[tokio::test]
async fn store_outage_is_a_clear_503_and_recovers() {
    let Some(mut env) = Env::new(Backend::Postgres) else {
        return;
    };
    let real = std::env::var(PG_ENV).unwrap();
    let url = url::Url::parse(&real).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut via = url.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(port)).unwrap();
    env.store_url = via.to_string();
    let cut = proxy(listener, target.clone()).await;

    let app = TestApp::start_with(env, &[("SWITCHBOARD_STORE_ACQUIRE_TIMEOUT_MS", "500")]).await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("stored", "http");
    body["server"] = json!("http://127.0.0.1:9");
    app.create(&key, body).await;
    // A live HTTP connector used with a user credential before the outage.
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_url = format!("http://{}", echo.local_addr().unwrap());
    tokio::spawn(async move {
        let router = axum::Router::new().fallback(axum::routing::any(
            |headers: axum::http::HeaderMap| async move {
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned()
            },
        ));
        let _ = axum::serve(echo, router).await;
    });
    app.connector_with_token(&key, "live", "http", &echo_url, "tok-live")
        .await;
    let unused_key = app.key_for("someone", "default", "default", false).await;
    let client = reqwest::Client::new();
    let live = || {
        client
            .get(format!("{}/v1/connectors-gateway/live/http/x", app.base))
            .bearer_auth(&key)
            .send()
    };
    let r = live().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "Bearer tok-live");
    let ready = || client.get(format!("{}/readyz", app.admin_base)).send();
    assert_eq!(ready().await.unwrap().status(), StatusCode::OK);

    // The database goes away.
    drop(cut);
    let started = Instant::now();
    let mut not_ready = false;
    while started.elapsed() < Duration::from_secs(5) {
        if ready().await.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(not_ready, "/readyz stayed 200 without a store");
    // What was just used keeps working from memory, many times over.
    for _ in 0..20 {
        let r = live().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "a cached connector failed during the outage"
        );
        assert_eq!(r.text().await.unwrap(), "Bearer tok-live");
    }
    // A key never seen before cannot be checked, a connector never used cannot be resolved:
    // a clear 503, not a 401 or a 500.
    for (connector, caller) in [("live", &unused_key), ("stored", &key)] {
        let r = client
            .get(format!(
                "{}/v1/connectors-gateway/{connector}/http/x",
                app.base
            ))
            .bearer_auth(caller)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{connector}");
        assert_eq!(
            r.headers()["proxy-status"],
            r#"connectors-gateway; error=proxy_internal_error; details="store_unavailable""#
        );
    }
    let (status, body) = app.get("/v1/connectors", &key).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["detail"].is_string());

    // It comes back on the same address: no restart needed.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let _back = proxy(listener, target).await;
    let started = Instant::now();
    let mut recovered = false;
    while started.elapsed() < Duration::from_secs(10) {
        if ready().await.unwrap().status() == StatusCode::OK
            && app.get("/v1/connectors/stored", &key).await.0 == StatusCode::OK
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the gateway did not recover when the store came back"
    );
    eprintln!("recovered in {:?}", started.elapsed());
    let mut env = app.stop().await;
    // Drop the schema through the real server (not the proxy, which runs on this runtime).
    env.store_url = real;
    env.cleanup().await;
}

/// SQLite's database lock held by another writer: a write waits for it (`store.busy_timeout_ms`)
/// and succeeds when it is released in time; when it is not, the answer is a clear 503 (never a
/// 500) and nothing changed. Reads are never blocked (WAL).
#[tokio::test]
async fn sqlite_busy_waits_then_answers_503_never_500() {
    use sqlx::Connection;
    let env = Env::new(Backend::Sqlite).unwrap();
    let path = env.sqlite_path().unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_STORE_BUSY_TIMEOUT_MS", "1000")]).await;
    let key = app.admin_key().to_owned();
    app.create(&key, connector_body("before", "http")).await;

    let mut other =
        sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
    // Held shorter than the busy timeout: the write waits and succeeds.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut other).await.unwrap();
        other
    });
    let (status, body) = app
        .post("/v1/connectors", &key, &connector_body("waited", "http"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut other = release.await.unwrap();

    // Held longer: 503 with a detail, nothing written, reads keep working meanwhile.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let (status, body) = app
        .post("/v1/connectors", &key, &connector_body("refused", "http"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["detail"].is_string(), "{body}");
    let (status, body) = app
        .post(
            "/v1/connectors/before/user/credentials",
            &key,
            &json!({"name": "c", "credentials": {"bearer_token": "t"}}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, _) = app.get("/v1/connectors/before", &key).await;
    assert_eq!(status, StatusCode::OK);
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    let names: Vec<String> = app
        .list_all(&key)
        .await
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["before", "waited"]);
    let (_, creds) = app
        .get("/v1/connectors/before/user/credentials", &key)
        .await;
    assert_eq!(creds["credentials"], json!([]), "{creds}");
    app.finish().await;
}
