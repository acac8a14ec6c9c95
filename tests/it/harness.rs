//! Test harness: spawns the real app (`App::build`) on port 0 against a real store — a SQLite
//! file in a temp dir, or a fresh schema on the PostgreSQL server named by
//! `SWITCHBOARD_TEST_POSTGRES_URL` — and offers typed request helpers.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard::config::{Config, StoreBackend};
use switchboard::{App, Bound};

pub const PG_ENV: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's state lives; dropping it removes the temp dir (the PG schema is dropped by
/// [`Env::cleanup`]).
#[derive(Debug)]
pub struct Env {
    pub dir: Arc<tempfile::TempDir>,
    pub store_url: String,
    pub pg_schema: Option<String>,
    pub admin_key: String,
}

impl Env {
    /// A fresh environment, or `None` for PostgreSQL when the server is not configured.
    pub fn new(backend: Backend) -> Option<Self> {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let (store_url, pg_schema) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/switchboard.db", dir.path().display()),
                None,
            ),
            Backend::Postgres => {
                let Ok(url) = std::env::var(PG_ENV) else {
                    eprintln!("skipping PostgreSQL variant: {PG_ENV} is not set");
                    return None;
                };
                let schema = format!("sbt_{}", uuid::Uuid::new_v4().simple());
                (url, Some(schema))
            }
        };
        Some(Self {
            dir,
            store_url,
            pg_schema,
            admin_key: format!("sbk_test_admin_{}", uuid::Uuid::new_v4().simple()),
        })
    }

    pub fn env_pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("SWITCHBOARD_API_LISTEN".into(), "127.0.0.1:0".into()),
            ("SWITCHBOARD_ADMIN_LISTEN".into(), "127.0.0.1:0".into()),
            ("SWITCHBOARD_STORE_URL".into(), self.store_url.clone()),
            (
                "SWITCHBOARD_VAULT_KEY_FILE".into(),
                self.dir.path().join("vault.key").display().to_string(),
            ),
            (
                "SWITCHBOARD_AUTH_BOOTSTRAP_KEY".into(),
                self.admin_key.clone(),
            ),
            ("SWITCHBOARD_SHUTDOWN_GRACE_SECONDS".into(), "5".into()),
            ("SWITCHBOARD_LIMITS_MAX_BODY_BYTES".into(), "65536".into()),
            // Upstream fixtures run on loopback over plain HTTP.
            (
                "SWITCHBOARD_OUTBOUND_ALLOW".into(),
                "127.0.0.0/8,::1".into(),
            ),
            ("SWITCHBOARD_OUTBOUND_ALLOW_HTTP".into(), "true".into()),
        ];
        if let Some(s) = &self.pg_schema {
            v.push(("SWITCHBOARD_STORE_POSTGRES_SCHEMA".into(), s.clone()));
        }
        v
    }

    pub fn config(&self) -> Config {
        self.config_with(&[])
    }

    pub fn config_with(&self, extra: &[(&str, &str)]) -> Config {
        let mut pairs = self.env_pairs();
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_sources(None, &pairs).expect("test config")
    }

    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match self.config().store.backend {
            StoreBackend::Sqlite { path } => Some(path),
            StoreBackend::Postgres { .. } => None,
        }
    }

    /// Drops the PostgreSQL schema of this test (also done on drop, even after a panic).
    pub async fn cleanup(&self) {
        if let Some(schema) = &self.pg_schema {
            drop_schema(&self.store_url, schema).await;
        }
    }
}

async fn drop_schema(url: &str, schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(url).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let Some(schema) = self.pg_schema.take() else {
            return;
        };
        let url = self.store_url.clone();
        // A separate thread with its own runtime: drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_schema(&url, &schema));
            }
        })
        .join();
    }
}

/// A running app and a client for it.
#[derive(Debug)]
pub struct TestApp {
    pub env: Env,
    pub bound: Bound,
    pub base: String,
    pub admin_base: String,
    client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        let env = Env::new(backend)?;
        Some(Self::start(env).await)
    }

    pub async fn start(env: Env) -> Self {
        Self::start_with(env, &[]).await
    }

    /// Starts with extra config overrides (environment-style pairs).
    pub async fn start_with(env: Env, extra: &[(&str, &str)]) -> Self {
        let bound = App::build(env.config_with(extra))
            .await
            .expect("app builds");
        Self {
            base: format!("http://{}", bound.api_addr()),
            admin_base: format!("http://{}", bound.admin_addr()),
            bound,
            env,
            client: reqwest::Client::new(),
        }
    }

    /// Starts with a config file's text (and extra environment-style pairs).
    pub async fn start_with_file(env: Env, toml: &str, extra: &[(&str, &str)]) -> Self {
        let mut pairs = env.env_pairs();
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = switchboard::Config::from_sources(Some(("test.toml", toml)), &pairs)
            .expect("test config");
        let bound = App::build(config).await.expect("app builds");
        Self {
            base: format!("http://{}", bound.api_addr()),
            admin_base: format!("http://{}", bound.admin_addr()),
            bound,
            env,
            client: reqwest::Client::new(),
        }
    }

    /// Shuts the app down and returns its environment (to restart on the same store).
    pub async fn stop(self) -> Env {
        self.bound.shutdown().await;
        self.env
    }

    /// Stops the app and removes its PostgreSQL schema.
    pub async fn finish(self) {
        let env = self.stop().await;
        env.cleanup().await;
    }

    pub fn admin_key(&self) -> &str {
        &self.env.admin_key
    }

    /// A new API key for another principal, made through the same code path as the CLI.
    pub async fn key_for(&self, user: &str, workspace: &str, org: &str, admin: bool) -> String {
        switchboard::cli::create_key(&self.env.config(), user, workspace, org, admin)
            .await
            .expect("create key")
    }

    /// Sends a request with `key` (if any) and an optional raw body; returns status and JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.expect("body");
        assert!(
            ctype.starts_with("application/json"),
            "{status} answer must be application/json, got `{ctype}`: {text}"
        );
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"));
        (status, json)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(key), Some(&body.to_string()))
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(key), Some(&body.to_string()))
            .await
    }

    /// Creates a connector as `key`, asserting 201.
    pub async fn create(&self, key: &str, body: Value) -> Value {
        let (status, json) = self.post("/v1/connectors", key, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json
    }

    /// Creates a connector `name` (`mcp` or `http`) reaching `server`.
    pub async fn create_at(&self, key: &str, name: &str, protocol: &str, server: &str) {
        let mut body = connector_body(name, protocol);
        body["server"] = Value::from(server);
        self.create(key, body).await;
    }

    /// Creates a connector `name` reaching `server`, and a user credential `mine` holding
    /// `token` for the caller of `key`.
    pub async fn connector_with_token(
        &self,
        key: &str,
        name: &str,
        protocol: &str,
        server: &str,
        token: &str,
    ) {
        self.create_at(key, name, protocol, server).await;
        let (status, cred) = self
            .post(
                &format!("/v1/connectors/{name}/user/credentials"),
                key,
                &serde_json::json!({"name": "mine", "credentials": {"bearer_token": token}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{cred}");
    }

    /// Every connector visible to `key`, following cursors (small pages).
    pub async fn list_all(&self, key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/connectors?page_size=7&cursor={c}"),
                None => "/v1/connectors?page_size=7".to_owned(),
            };
            let (status, page) = self.get(&path, key).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            out.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["pagination"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }
}

/// A minimal valid create body.
pub fn connector_body(name: &str, protocol: &str) -> Value {
    serde_json::json!({
        "name": name,
        "description": format!("{name} description"),
        "server": format!("https://{name}.example.test/mcp"),
        "protocol": protocol,
    })
}

/// Runs an async test body against SQLite and (when configured) PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($app: &$crate::harness::TestApp) $body

            #[tokio::test]
            async fn sqlite() {
                let app = $crate::harness::TestApp::spawn($crate::harness::Backend::Sqlite).await.unwrap();
                run(&app).await;
                app.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(app) = $crate::harness::TestApp::spawn($crate::harness::Backend::Postgres).await else {
                    return;
                };
                run(&app).await;
                app.finish().await;
            }
        }
    };
}

/// The real `switchboard` binary, started on `env` (JSON logs drained in the background).
pub struct Process {
    pub child: tokio::process::Child,
    pub base: String,
    pub admin_base: String,
    pub log: tokio::task::JoinHandle<Vec<String>>,
}

impl Process {
    pub async fn spawn(env: &Env, extra: &[(&str, &str)]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .envs(env.env_pairs())
            .envs(extra.iter().copied())
            .env("SWITCHBOARD_LOG_FORMAT", "json")
            .current_dir(env.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (base, admin_base) = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("the gateway starts")
                .expect("readable log")
                .expect("a log line before exit");
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "switchboard listening" {
                let addr =
                    |k: &str| format!("http://{}", v["fields"][k].as_str().unwrap_or_default());
                break (addr("api"), addr("admin"));
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        let log = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Ok(Some(l)) = lines.next_line().await {
                out.push(l);
            }
            out
        });
        Self {
            child,
            base,
            admin_base,
            log,
        }
    }

    /// Resident memory (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("/proc status")
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}
