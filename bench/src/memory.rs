//! Resident memory: the gateway's base RSS after start, per idle keep-alive connection (each
//! made one `tools/call`, then idles), and per open SSE listening stream (scenario 6: `GET
//! /mcp` relayed to the upstream's idle stream). Each measure runs on a fresh gateway so
//! memory freed by an earlier phase cannot be reused and hide the cost.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyper::{Method, StatusCode};
use tokio::sync::Semaphore;

use crate::client::{self, Conn, Req};
use crate::procs;

/// At most this many connections are being opened at once.
const OPENING: usize = 64;

/// RSS (KiB) after a short settle.
pub async fn settled_rss(pid: u32) -> Result<u64> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    procs::rss_kib(pid)
}

/// Opens `n` connections that each send `req` once, check it, and stay open (idle).
pub async fn idle_keepalive(addr: std::net::SocketAddr, req: &Req, n: usize) -> Result<Vec<Conn>> {
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (gate, req) = (gate.clone(), req.clone());
        tasks.push(tokio::spawn(async move {
            let _p = gate.acquire().await?;
            let mut c = Conn::open(addr).await?;
            c.send(&req)
                .await?
                .expect(StatusCode::OK, "keep-alive request")?;
            Ok::<_, anyhow::Error>(c)
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        conns.push(t.await??);
    }
    Ok(conns)
}

/// An open SSE stream: the connection and the unread response body.
pub struct Stream {
    _conn: Conn,
    _body: hyper::body::Incoming,
}

/// Opens `n` listening streams (`GET` with `Accept: text/event-stream`) and keeps them open.
pub async fn open_streams(addr: std::net::SocketAddr, req: &Req, n: usize) -> Result<Vec<Stream>> {
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (gate, req) = (gate.clone(), req.clone());
        tasks.push(tokio::spawn(async move {
            let _p = gate.acquire().await?;
            let mut conn = Conn::open(addr).await?;
            let resp = conn.start(&req).await?;
            if resp.status() != StatusCode::OK {
                let status = resp.status();
                let body = http_body_util::BodyExt::collect(resp.into_body())
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                bail!("stream: HTTP {status}: {}", String::from_utf8_lossy(&body));
            }
            let sse = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !sse {
                bail!("stream: not text/event-stream");
            }
            Ok(Stream {
                _conn: conn,
                _body: resp.into_body(),
            })
        }));
    }
    let mut streams = Vec::with_capacity(n);
    for t in tasks {
        streams.push(t.await??);
    }
    Ok(streams)
}

/// The upstream's count of open listening streams.
pub async fn upstream_streams(upstream: std::net::SocketAddr) -> Result<u64> {
    upstream_stat(upstream, "open_streams").await
}

/// One figure of the fast upstream's `/stats` (`open_streams`, `connections`).
pub async fn upstream_stat(upstream: std::net::SocketAddr, name: &str) -> Result<u64> {
    let req = Req::new(Method::GET, "/stats").bearer(crate::upstream::TOKEN)?;
    let a = client::once(upstream, &req).await?;
    a.json()?
        .get(name)
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("no {name} in /stats"))
}

/// Waits (up to `within`) until the upstream's open stream count is `want`.
pub async fn wait_upstream_streams(
    upstream: std::net::SocketAddr,
    want: u64,
    within: Duration,
) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = upstream_streams(upstream).await?;
        if now == want || tokio::time::Instant::now() > deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resident memory added per idle connection or stream.
#[derive(Debug, Clone)]
pub struct PerItem {
    pub what: &'static str,
    pub requested: usize,
    pub opened: usize,
    pub before_kib: u64,
    pub after_kib: u64,
    /// Whether the upstream side was released after the clients left (streams only).
    pub released: Option<bool>,
}

impl PerItem {
    pub fn per_item_kib(&self) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 / self.opened.max(1) as f64
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "what": self.what, "requested": self.requested, "opened": self.opened,
            "rss_before_kib": self.before_kib, "rss_after_kib": self.after_kib,
            "per_item_kib": (self.per_item_kib() * 100.0).round() / 100.0,
            "upstream_released": self.released,
        })
    }
}

/// How many relayed streams fit under this process's open-files limit (each costs the
/// gateway two sockets: the caller's and the upstream's).
pub fn streams_that_fit(requested: usize) -> usize {
    match procs::open_files_limit() {
        Some(limit) => requested.min((limit as usize).saturating_sub(400) / 2),
        None => requested,
    }
}

/// Idle keep-alive connections on a fresh gateway, each after one `tools/call`.
pub async fn keepalive(
    s: &crate::rig::Settings,
    dir: &std::path::Path,
    up: std::net::SocketAddr,
) -> Result<PerItem> {
    use crate::gateway::{self, Gateway};
    let gw = crate::rig::gateway(s, dir, "mem-keepalive", false, up, None).await?;
    let path = Gateway::mcp_path(crate::rig::JSON);
    let sid = gateway::mcp_session(gw.api, &path, gateway::KEY).await?;
    let req = crate::scenarios::tools_call(&path, gateway::KEY, sid.as_deref())?;
    drop(idle_keepalive(gw.api, &req, OPENING).await?);
    let before = settled_rss(gw.pid()).await?;
    let conns = idle_keepalive(gw.api, &req, s.keepalive_conns).await?;
    let after = settled_rss(gw.pid()).await?;
    let opened = conns.len();
    drop(conns);
    gw.stop().await;
    Ok(PerItem {
        what: "idle keep-alive connection",
        requested: s.keepalive_conns,
        opened,
        before_kib: before,
        after_kib: after,
        released: None,
    })
}

/// Scenario 6: open SSE listening streams relayed by a fresh gateway.
pub async fn sse_streams(
    s: &crate::rig::Settings,
    dir: &std::path::Path,
    up: std::net::SocketAddr,
) -> Result<PerItem> {
    use crate::gateway::{self, Gateway};
    let n = streams_that_fit(s.streams);
    if n < s.streams {
        eprintln!(
            "bench: [6] the open-files limit ({:?}) allows {n} relayed streams, not {}",
            procs::open_files_limit(),
            s.streams
        );
    }
    let gw = crate::rig::gateway(s, dir, "mem-sse", false, up, None).await?;
    let path = Gateway::mcp_path(crate::rig::JSON);
    let sid = gateway::mcp_session(gw.api, &path, gateway::KEY).await?;
    let mut req = Req::new(Method::GET, &path)
        .bearer(gateway::KEY)?
        .header("accept", "text/event-stream")?
        .header("mcp-protocol-version", "2025-06-18")?;
    if let Some(sid) = &sid {
        req = req.header("mcp-session-id", sid)?;
    }
    let baseline = upstream_streams(up).await?;
    drop(open_streams(gw.api, &req, OPENING).await?);
    wait_upstream_streams(up, baseline, Duration::from_secs(10)).await?;
    let before = settled_rss(gw.pid()).await?;
    eprintln!("bench: [6] opening {n} SSE streams through the gateway");
    let streams = open_streams(gw.api, &req, n).await?;
    let at_upstream = upstream_streams(up).await?.saturating_sub(baseline);
    anyhow::ensure!(
        at_upstream as usize >= n,
        "only {at_upstream} of {n} streams reached the upstream"
    );
    let after = settled_rss(gw.pid()).await?;
    drop(streams);
    let left = wait_upstream_streams(up, baseline, Duration::from_secs(20)).await?;
    gw.stop().await;
    Ok(PerItem {
        what: "open SSE stream (GET /mcp relayed)",
        requested: s.streams,
        opened: n,
        before_kib: before,
        after_kib: after,
        released: Some(left == baseline),
    })
}
