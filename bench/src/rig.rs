//! Everything a run starts, on loopback: the fast upstream (and the rmcp one) beside the
//! load generator, the gateway (access log off, and a second one with it on) and nginx
//! pinned to the other core; connectors with user credentials; MCP sessions opened both
//! directly and through the gateway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::gateway::{self, Gateway, Options};
use crate::nginx::Nginx;
use crate::procs::{self, Proc};
use crate::upstream;

/// Where things run and how long each measure takes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub smoke: bool,
    pub reps: usize,
    pub secs: Duration,
    pub warmup: Duration,
    /// Unmeasured lead-in of every later repetition (connections opening).
    pub ramp: Duration,
    pub conns: usize,
    pub streams: usize,
    pub keepalive_conns: usize,
    pub nginx: bool,
    pub rmcp: bool,
    pub gateway_bin: PathBuf,
    pub out: PathBuf,
    /// Scenario ids to run (empty: all).
    pub only: Vec<String>,
    /// The gateway's (and nginx's) core, and the core of everything else.
    pub gateway_cpu: Option<usize>,
    pub side_cpu: Option<usize>,
}

impl Settings {
    pub fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }
}

/// A started upstream process and its address.
#[derive(Debug)]
pub struct Upstream {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Upstream {
    /// Starts `bench <subcommand> --listen 127.0.0.1:0` and reads the address it printed.
    pub async fn start(subcommand: &str, cpu: Option<usize>) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut cmd = procs::pinned(&exe, cpu);
        cmd.arg(subcommand)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn(subcommand, cmd)?;
        let addr = procs::read_line_with(&mut proc, "listening ", Duration::from_secs(20))
            .await?
            .parse()
            .context("upstream address")?;
        Ok(Self { proc, addr })
    }
}

/// MCP session ids in use.
#[derive(Debug, Clone)]
pub struct Sessions {
    pub direct_json: Option<String>,
    pub direct_sse: Option<String>,
    pub gateway_json: Option<String>,
    pub gateway_sse: Option<String>,
    pub logged_json: Option<String>,
    pub rmcp_direct: Option<String>,
    pub rmcp_gateway: Option<String>,
}

#[derive(Debug)]
pub struct Rig {
    pub upstream: Upstream,
    pub rmcp: Option<Upstream>,
    pub gateway: Gateway,
    /// The same gateway with `log.access = true`.
    pub logged: Gateway,
    pub nginx: Option<Nginx>,
    pub base_rss_kib: u64,
    /// Of it, anonymous memory (heap, stacks): the rest is file-backed (the binary's code
    /// pages and libraries', shared and reclaimable).
    pub base_anon_kib: u64,
    pub sessions: Sessions,
}

/// Connector names.
pub const JSON: &str = "fast_json";
pub const SSE: &str = "fast_sse";
pub const HTTP: &str = "fast_http";
pub const RMCP: &str = "rmcp";

/// Creates the bench connectors on `gw`.
pub async fn add_connectors(gw: &Gateway, up: SocketAddr, rmcp: Option<SocketAddr>) -> Result<()> {
    gw.add_connector(JSON, "mcp", &format!("http://{up}/mcp"))
        .await?;
    gw.add_connector(SSE, "mcp", &format!("http://{up}/mcp-sse"))
        .await?;
    gw.add_connector(HTTP, "http", &format!("http://{up}"))
        .await?;
    if let Some(r) = rmcp {
        gw.add_connector(RMCP, "mcp", &format!("http://{r}/mcp"))
            .await?;
    }
    Ok(())
}

/// Starts a gateway with the connectors in place.
pub async fn gateway(
    s: &Settings,
    dir: &Path,
    label: &str,
    access_log: bool,
    up: SocketAddr,
    rmcp: Option<SocketAddr>,
) -> Result<Gateway> {
    let opts = Options {
        access_log,
        cpu: s.gateway_cpu,
        callgrind_out: None,
        valgrind_args: Vec::new(),
        extra_env: Vec::new(),
    };
    let gw = Gateway::start(&s.gateway_bin, dir, label, &opts).await?;
    add_connectors(&gw, up, rmcp).await?;
    Ok(gw)
}

impl Rig {
    pub async fn start(s: &Settings, dir: &Path) -> Result<Self> {
        eprintln!("bench: starting the upstream(s), gateways and nginx");
        let upstream = Upstream::start("upstream", s.side_cpu).await?;
        let up = upstream.addr;
        let rmcp = match s.rmcp {
            true => Some(Upstream::start("rmcp-upstream", s.side_cpu).await?),
            false => None,
        };
        let rmcp_addr = rmcp.as_ref().map(|r| r.addr);
        let opts = Options {
            access_log: false,
            cpu: s.gateway_cpu,
            callgrind_out: None,
            valgrind_args: Vec::new(),
            extra_env: Vec::new(),
        };
        let gw = Gateway::start(&s.gateway_bin, dir, "main", &opts).await?;
        let base_rss_kib = crate::memory::settled_rss(gw.pid()).await?;
        let base_anon_kib = crate::procs::status_kib(gw.pid(), "RssAnon")?;
        add_connectors(&gw, up, rmcp_addr).await?;
        let logged = gateway(s, dir, "access-log", true, up, rmcp_addr).await?;
        let nginx = match s.nginx {
            true => Some(Nginx::start(dir, up, s.gateway_cpu).await?),
            false => None,
        };
        let token = upstream::TOKEN;
        let json_path = Gateway::mcp_path(JSON);
        let sse_path = Gateway::mcp_path(SSE);
        let sessions = Sessions {
            direct_json: gateway::mcp_session(up, "/mcp", token).await?,
            direct_sse: gateway::mcp_session(up, "/mcp-sse", token).await?,
            gateway_json: gateway::mcp_session(gw.api, &json_path, gateway::KEY).await?,
            gateway_sse: gateway::mcp_session(gw.api, &sse_path, gateway::KEY).await?,
            logged_json: gateway::mcp_session(logged.api, &json_path, gateway::KEY).await?,
            rmcp_direct: match rmcp_addr {
                Some(r) => gateway::mcp_session(r, "/mcp", token).await?,
                None => None,
            },
            rmcp_gateway: match rmcp_addr {
                Some(_) => {
                    let path = Gateway::mcp_path(RMCP);
                    gateway::mcp_session(gw.api, &path, gateway::KEY).await?
                }
                None => None,
            },
        };
        anyhow::ensure!(
            sessions.gateway_json.is_some() && sessions.direct_json.is_some(),
            "the upstream issued no session id"
        );
        Ok(Self {
            upstream,
            rmcp,
            gateway: gw,
            logged,
            nginx,
            base_rss_kib,
            base_anon_kib,
            sessions,
        })
    }

    /// Stops everything (the gateways gracefully) and reports what would not stop.
    pub async fn stop(self) {
        let _ = self.gateway.stop().await;
        let _ = self.logged.stop().await;
        if let Some(n) = self.nginx {
            let _ = n.proc.stop(Duration::from_secs(5)).await;
        }
        let _ = self.upstream.proc.stop(Duration::from_secs(5)).await;
        if let Some(r) = self.rmcp {
            let _ = r.proc.stop(Duration::from_secs(5)).await;
        }
    }
}
