//! The gateway under test: started from its release binary with a fixed, fully specified
//! configuration (environment only, in a scratch directory, one Tokio worker), and set up
//! through its own API: connectors for the upstreams, each with a user credential, so that
//! auth, connector lookup, credential injection and sealed sessions are all on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::client::{self, Req};
use crate::procs::{self, Proc};
use crate::upstream;

/// The bootstrap admin key (any string of ≥ 16 characters is accepted).
pub const KEY: &str = "sbk_bench_0123456789abcdefghijklmnopqrstuvwxyz";
/// A fixed vault key: sealing costs do not depend on it, and callgrind runs stay identical.
const VAULT_KEY: &str = "bench:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// How to run the gateway.
#[derive(Debug, Clone)]
pub struct Options {
    pub access_log: bool,
    /// Pin to this CPU (`taskset`).
    pub cpu: Option<usize>,
    /// Run under `valgrind --tool=callgrind`, writing this file.
    pub callgrind_out: Option<PathBuf>,
    /// Further valgrind options (e.g. `--demangle=no`).
    pub valgrind_args: Vec<String>,
    /// Further environment (the callgrind gate's determinism settings).
    pub extra_env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Gateway {
    pub proc: Proc,
    pub api: SocketAddr,
}

impl Gateway {
    /// Starts `bin` with its state in `dir` and waits until `/readyz` answers 200.
    pub async fn start(bin: &Path, dir: &Path, label: &str, opts: &Options) -> Result<Self> {
        let api: SocketAddr = format!("127.0.0.1:{}", procs::free_port()?).parse()?;
        let admin: SocketAddr = format!("127.0.0.1:{}", procs::free_port()?).parse()?;
        let state = dir.join(format!("gateway-{label}"));
        // A fresh store every start: the same setup steps, the same instructions.
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state)?;
        let log = dir.join(format!("gateway-{label}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = match &opts.callgrind_out {
            Some(file) => {
                let mut c = tokio::process::Command::new("valgrind");
                c.arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", file.display()))
                    .args(&opts.valgrind_args);
                if let Ok(extra) = std::env::var("SWITCHBOARD_BENCH_VALGRIND_ARGS") {
                    c.args(extra.split_whitespace());
                }
                c.arg(bin);
                c
            }
            None => procs::pinned(bin, opts.cpu),
        };
        cmd.current_dir(&state)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &state)
            .env("TOKIO_WORKER_THREADS", "1")
            .env("SWITCHBOARD_API_LISTEN", api.to_string())
            .env("SWITCHBOARD_ADMIN_LISTEN", admin.to_string())
            .env(
                "SWITCHBOARD_STORE_URL",
                format!("sqlite://{}/sb.db", state.display()),
            )
            .env("SWITCHBOARD_VAULT_KEY", VAULT_KEY)
            .env("SWITCHBOARD_AUTH_BOOTSTRAP_KEY", KEY)
            .env("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8,::1")
            .env("SWITCHBOARD_OUTBOUND_ALLOW_HTTP", "true")
            .env("SWITCHBOARD_LOG_ACCESS", opts.access_log.to_string())
            .env("SWITCHBOARD_LOG_LEVEL", "info")
            .env("SWITCHBOARD_LIMITS_MAX_STREAMS_PER_PRINCIPAL", "100000")
            .env("SWITCHBOARD_SHUTDOWN_GRACE_SECONDS", "5")
            .stdout(Stdio::from(out.try_clone()?))
            .envs(opts.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stderr(Stdio::from(out));
        let mut proc = Proc::spawn(&format!("gateway ({label})"), cmd)?;
        let within = if opts.callgrind_out.is_some() {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(30)
        };
        if let Err(e) = wait_ready(admin, &mut proc, within).await {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            bail!(
                "{e:#}\n--- {} (last lines, newest first) ---\n{tail}",
                log.display()
            );
        }
        Ok(Self { proc, api })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Creates a connector named `name` for `server`, with a user credential carrying the
    /// upstream's bearer token.
    pub async fn add_connector(&self, name: &str, protocol: &str, server: &str) -> Result<()> {
        let body =
            json!({"protocol": protocol, "name": name, "description": "bench", "server": server});
        let req = Req::new(Method::POST, "/v1/connectors")
            .bearer(KEY)?
            .json(&body)?;
        client::once(self.api, &req)
            .await?
            .expect(StatusCode::CREATED, &format!("creating connector {name}"))?;
        let cred = json!({"name": "bench", "credentials": {"bearer_token": upstream::TOKEN}});
        let req = Req::new(
            Method::POST,
            format!("/v1/connectors/{name}/user/credentials"),
        )
        .bearer(KEY)?
        .json(&cred)?;
        let a = client::once(self.api, &req).await?;
        if !a.status.is_success() {
            bail!(
                "adding the credential of {name}: HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        Ok(())
    }

    /// The gateway relay path of connector `name`.
    pub fn mcp_path(name: &str) -> String {
        format!("/v1/connectors-gateway/{name}/mcp")
    }

    /// SIGTERM and wait (gracefully drained).
    pub async fn stop(self) -> bool {
        self.proc.stop(Duration::from_secs(60)).await
    }
}

async fn wait_ready(admin: SocketAddr, proc: &mut Proc, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    procs::wait_for_port(admin, proc, within).await?;
    let req = Req::new(Method::GET, "/readyz");
    loop {
        if let Ok(a) = client::once(admin, &req).await {
            if a.status == StatusCode::OK {
                return Ok(());
            }
        }
        if !proc.alive() {
            bail!("{} exited during start-up", proc.name);
        }
        if Instant::now() > deadline {
            bail!("{} not ready after {within:?}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens an MCP session at `path` on `addr` (`initialize`, then `notifications/initialized`)
/// and returns its `Mcp-Session-Id` (the gateway's sealed one, or the upstream's own).
pub async fn mcp_session(addr: SocketAddr, path: &str, bearer: &str) -> Result<Option<String>> {
    let mut conn = client::Conn::open(addr).await?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "switchboard-bench", "version": "1"}}});
    let req = Req::new(Method::POST, path)
        .bearer(bearer)?
        .mcp(None)?
        .json(&init)?;
    let a = conn
        .send(&req)
        .await?
        .expect(StatusCode::OK, &format!("initialize at {addr}{path}"))?;
    let msg = client::rpc_answer(&a)?;
    if msg.pointer("/result/protocolVersion").is_none() {
        bail!("initialize at {addr}{path} answered {msg}");
    }
    let sid = a.header("mcp-session-id").map(str::to_owned);
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let req = Req::new(Method::POST, path)
        .bearer(bearer)?
        .mcp(sid.as_deref())?
        .json(&note)?;
    conn.send(&req)
        .await?
        .expect(StatusCode::ACCEPTED, "notifications/initialized")?;
    Ok(sid)
}
