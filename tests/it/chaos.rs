//! Chaos on three replicas (issue 9, first acceptance item): three real `switchboard`
//! processes on one PostgreSQL schema (same vault key, same bootstrap key, each its own API and
//! admin port) behind a round-robin client, 10,000 mixed requests — tools lists, tool calls
//! (echo and credential injection), MCP sessions through `/v1/connectors-gateway/{ref}/mcp`
//! whose `initialize`, `notifications/initialized`, `tools/list` and `tools/call` each go to a
//! different replica, and control-plane writes (connectors, credentials) — while replica 1 is
//! SIGTERMed at 30 % (it must drain and exit 0) and restarted on the same ports, and replica 2
//! is SIGKILLed at 60 % and restarted half a second after its death. Afterwards every connector
//! and credential created (at setup and under load) is listed through every replica, and a
//! summary is printed.
//!
//! The MCP client speaks 2025-06-18 and does not resume streams: a relayed POST answered with
//! SSE must carry its JSON-RPC response (in that version a server SHOULD NOT close the stream
//! before the response), also when the replica starts draining meanwhile.
//!
//! The client behaves like a load balancer in front of the replicas:
//! - active health checks: `GET /readyz` on each admin port every 100 ms; only replicas whose
//!   last check answered 200 get traffic (a draining replica answers 503);
//! - passive health: a refused connection (nothing was sent) marks the replica down until its
//!   next good health check and the request moves to the next replica — never a failure;
//! - a request that got no response at all (the connection was closed or reset before any
//!   response byte) is retried on another replica only when its method is idempotent (GET), as
//!   nginx does by default (`proxy_next_upstream error timeout`; since 1.9.13 a POST that was
//!   sent is never passed to the next server): a POST may have run (a tool call, a write), so a
//!   balancer cannot replay it and its client sees the failure;
//! - connections to the replicas are pooled (HTTP/1.1 keep-alive), as balancers do. A replica
//!   that closes a pooled connection while a request is being sent on it therefore fails that
//!   request: a draining replica must keep serving until the balancer has seen its `/readyz`
//!   503 (one health-check period) before it stops accepting and closes idle connections.
//!
//! Failures: any 5xx, any wrong body, any transport error — except transport errors of requests
//! dispatched to the SIGKILLed replica before its death was observed (the process reaped) that
//! ended after the signal: those were in flight on the killed process and are counted as
//! excused. Failures are counted by kind and replica, the first ten with details and the tail
//! of the replicas' logs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Mutex;

use crate::harness::{Backend, Env};
use crate::upstream::{Mode, Upstream};

const REPLICAS: usize = 3;
/// HTTP requests sent through the balancer (health checks not counted).
const TOTAL: usize = 10_000;
const CONCURRENCY: usize = 24;
const HEALTH_EVERY: Duration = Duration::from_millis(100);
const GRACE_SECONDS: u64 = 10;
/// Progress (requests issued) at which replica 1 is SIGTERMed, and replica 2 SIGKILLed.
const TERM_AT: usize = TOTAL * 3 / 10;
const KILL_AT: usize = TOTAL * 6 / 10;
const USERS: [&str; 4] = ["admin", "alice", "bob", "carol"];
/// MCP connectors used under load: (name, upstream index, requires a bearer credential).
const CONNECTORS: [(&str, usize, bool); 4] = [
    ("chaos-sessions", 0, true),
    ("chaos-relay", 0, false),
    ("chaos-json", 1, false),
    ("chaos-stateless", 2, false),
];
const PROTOCOL: &str = "2025-06-18";

// ---- replicas ----

/// One gateway process slot: fixed ports, the current child, readiness as the balancer sees it.
struct Replica {
    index: usize,
    api: SocketAddr,
    admin: SocketAddr,
    ready: AtomicBool,
    /// Incremented at every (re)start.
    generation: AtomicUsize,
    child: Mutex<Option<tokio::process::Child>>,
    /// The last lines the current and previous processes wrote (stdout and stderr).
    log: Arc<Mutex<VecDeque<String>>>,
    served: AtomicUsize,
}

impl Replica {
    fn base(&self) -> String {
        format!("http://{}", self.api)
    }

    /// The last `n` lines the replica's processes wrote.
    async fn tail(&self, n: usize) -> String {
        let log = self.log.lock().await;
        let skip = log.len().saturating_sub(n);
        log.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn start(&self, env: &[(String, String)]) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .envs(env.iter().cloned())
            .env("SWITCHBOARD_API_LISTEN", self.api.to_string())
            .env("SWITCHBOARD_ADMIN_LISTEN", self.admin.to_string())
            .env("NO_COLOR", "1")
            // Lifecycle lines and warnings, not one line per created connector.
            .env("RUST_LOG", "info,switchboard::api=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let tag = format!("r{} g{generation}", self.index);
        keep_tail(
            child.stdout.take().unwrap(),
            format!("{tag} out"),
            &self.log,
        );
        keep_tail(
            child.stderr.take().unwrap(),
            format!("{tag} err"),
            &self.log,
        );
        *self.child.lock().await = Some(child);
    }

    /// Waits until `/readyz` answers 200 (the health checker then routes to it).
    async fn wait_ready(&self, client: &reqwest::Client) {
        let started = Instant::now();
        loop {
            if let Ok(r) = client
                .get(format!("http://{}/readyz", self.admin))
                .send()
                .await
            {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            if let Some(child) = self.child.lock().await.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "replica {} exited ({status}) before it was ready:\n{}",
                        self.index,
                        self.tail(200).await
                    );
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "replica {} not ready after 60 s:\n{}",
                self.index,
                self.tail(200).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `kill -<signal>`; returns when the signal was sent.
    async fn signal(&self, signal: &str) {
        let guard = self.child.lock().await;
        let pid = guard.as_ref().unwrap().id().unwrap().to_string();
        let status = tokio::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    async fn wait_exit(&self, within: Duration) -> std::process::ExitStatus {
        let mut guard = self.child.lock().await;
        let child = guard.as_mut().unwrap();
        let Ok(status) = tokio::time::timeout(within, child.wait()).await else {
            panic!(
                "replica {} did not exit within {within:?}:\n{}",
                self.index,
                self.tail(200).await
            );
        };
        let status = status.unwrap();
        *guard = None;
        status
    }
}

/// Keeps the last lines of a child's output (the pipe is always drained).
fn keep_tail(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    tag: String,
    log: &Arc<Mutex<VecDeque<String>>>,
) {
    let log = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().await;
            if log.len() == 200 {
                log.pop_front();
            }
            log.push_back(format!("[{tag}] {line}"));
        }
    });
}

/// A free port outside the ephemeral range (so no outgoing connection takes it while a
/// replica is down between its stop and its restart).
fn free_port(taken: &mut BTreeSet<u16>) -> SocketAddr {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if taken.contains(&port) {
            continue;
        }
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if std::net::TcpListener::bind(addr).is_ok() {
            taken.insert(port);
            return addr;
        }
    }
}

// ---- the balancer ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ToolsList,
    ToolCall,
    Whoami,
    McpInitialize,
    McpInitialized,
    McpToolsList,
    McpToolsCall,
    CreateConnector,
    CreateCredential,
}

/// A request that did not get a correct answer.
#[derive(Debug)]
struct Failure {
    kind: Kind,
    replica: usize,
    generation: usize,
    dispatched: Instant,
    ended: Instant,
    /// No (complete) response: the connection failed.
    transport: bool,
    detail: String,
}

/// What the balancer observed about the SIGKILL.
#[derive(Debug, Clone, Copy)]
struct Kill {
    replica: usize,
    generation: usize,
    signalled: Instant,
    reaped: Instant,
}

struct Answer {
    replica: usize,
    generation: usize,
    dispatched: Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// One request for the balancer.
struct Req<'a> {
    kind: Kind,
    method: Method,
    path: &'a str,
    key: &'a str,
    body: Option<Value>,
    headers: &'a [(&'a str, &'a str)],
}

impl<'a> Req<'a> {
    fn get(kind: Kind, path: &'a str, key: &'a str) -> Self {
        Self {
            kind,
            method: Method::GET,
            path,
            key,
            body: None,
            headers: &[],
        }
    }

    fn post(kind: Kind, path: &'a str, key: &'a str, body: Value) -> Self {
        Self {
            kind,
            method: Method::POST,
            path,
            key,
            body: Some(body),
            headers: &[],
        }
    }

    fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Self { headers, ..self }
    }
}

struct Lb {
    replicas: Vec<Arc<Replica>>,
    client: reqwest::Client,
    rr: AtomicUsize,
    issued: AtomicUsize,
    ops: AtomicUsize,
    failures: Mutex<Vec<Failure>>,
    per_kind: Mutex<BTreeMap<Kind, usize>>,
    refused_moves: AtomicUsize,
    /// GETs replayed on another replica after getting no response: (replica, error).
    idempotent_retries: Mutex<Vec<(usize, String)>>,
    same_replica_steps: AtomicUsize,
    started: Instant,
}

/// An error and its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl Lb {
    /// The next ready replica in round-robin order, other than `avoid` when another is ready.
    async fn pick(&self, avoid: Option<usize>) -> usize {
        let started = Instant::now();
        loop {
            let ready: Vec<usize> = (0..REPLICAS)
                .filter(|&i| self.replicas[i].ready.load(Ordering::SeqCst))
                .collect();
            if !ready.is_empty() {
                let others: Vec<usize> = ready
                    .iter()
                    .copied()
                    .filter(|&i| Some(i) != avoid)
                    .collect();
                let n = self.rr.fetch_add(1, Ordering::Relaxed);
                if others.is_empty() {
                    self.same_replica_steps.fetch_add(1, Ordering::Relaxed);
                    return ready[n % ready.len()];
                }
                return others[n % others.len()];
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no replica ready for 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn fail(&self, f: Failure) {
        self.failures.lock().await.push(f);
    }

    /// Sends one request through the balancer (to another replica than `avoid` when one is
    /// ready); `None` when it failed (recorded).
    async fn send(&self, req: &Req<'_>, avoid: Option<usize>) -> Option<Answer> {
        let Req {
            kind,
            ref method,
            path,
            key,
            ref body,
            headers,
        } = *req;
        self.issued.fetch_add(1, Ordering::SeqCst);
        *self.per_kind.lock().await.entry(kind).or_default() += 1;
        let mut avoid = avoid;
        let mut retries = 0;
        loop {
            let r = self.pick(avoid).await;
            let replica = &self.replicas[r];
            let generation = replica.generation.load(Ordering::SeqCst);
            let mut request = self
                .client
                .request(method.clone(), format!("{}{path}", replica.base()))
                .bearer_auth(key);
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            let dispatched = Instant::now();
            let failure = |transport: bool, detail: String| Failure {
                kind,
                replica: r,
                generation,
                dispatched,
                ended: Instant::now(),
                transport,
                detail,
            };
            match request.send().await {
                Err(e) if e.is_connect() => {
                    // Nothing was sent: the replica is down. Take it out until its health
                    // check passes again, and try the next one.
                    replica.ready.store(false, Ordering::SeqCst);
                    self.refused_moves.fetch_add(1, Ordering::Relaxed);
                    avoid = Some(r);
                }
                Err(e) if method == Method::GET && retries < 2 && !e.is_timeout() => {
                    // No response at all on an idempotent request: retried elsewhere.
                    self.idempotent_retries
                        .lock()
                        .await
                        .push((r, format!("{path}: {}", chain(&e))));
                    retries += 1;
                    avoid = Some(r);
                }
                Err(e) => {
                    self.fail(failure(true, format!("{method} {path}: {}", chain(&e))))
                        .await;
                    return None;
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    return match resp.text().await {
                        Ok(body) => {
                            replica.served.fetch_add(1, Ordering::Relaxed);
                            if status.is_server_error() {
                                self.fail(failure(
                                    false,
                                    format!("{method} {path}: {status} {headers:?} {body}"),
                                ))
                                .await;
                                return None;
                            }
                            Some(Answer {
                                replica: r,
                                generation,
                                dispatched,
                                status,
                                headers,
                                body,
                            })
                        }
                        Err(e) => {
                            self.fail(failure(
                                true,
                                format!("{method} {path}: {status}, body cut: {}", chain(&e)),
                            ))
                            .await;
                            None
                        }
                    };
                }
            }
        }
    }

    /// Records a wrong answer.
    async fn wrong(&self, kind: Kind, a: &Answer, what: &str) {
        self.fail(Failure {
            kind,
            replica: a.replica,
            generation: a.generation,
            dispatched: a.dispatched,
            ended: Instant::now(),
            transport: false,
            detail: format!("{what}: {} {:?} {}", a.status, a.headers, a.body),
        })
        .await;
    }
}

// ---- the workload ----

struct Ctx {
    lb: Arc<Lb>,
    /// The API key of each user in `USERS`.
    keys: Vec<String>,
    /// Connectors created under load: (user index, name, id).
    connectors: Mutex<Vec<(usize, String, String)>>,
    /// Credentials created under load on `chaos-sessions`: (user index, name).
    credentials: Mutex<Vec<(usize, String)>>,
}

/// The JSON-RPC message with an id in an SSE or JSON body.
fn rpc_answer(a: &Answer) -> Value {
    let ct = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.starts_with("text/event-stream") {
        a.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&a.body).unwrap_or(Value::Null)
    }
}

fn json_body(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or(Value::Null)
}

fn has_echo(tools: &Value) -> bool {
    tools
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "echo"))
}

async fn one_op(ctx: &Ctx, n: usize) {
    let lb = &ctx.lb;
    let u = n % USERS.len();
    let key = ctx.keys[u].as_str();
    let (connector, _, _) = CONNECTORS[(n / USERS.len()) % CONNECTORS.len()];
    match n % 20 {
        0..6 => {
            let path = format!("/v1/connectors/{connector}/tools");
            let Some(a) = lb.send(&Req::get(Kind::ToolsList, &path, key), None).await else {
                return;
            };
            if a.status != StatusCode::OK || !has_echo(&json_body(&a)) {
                lb.wrong(Kind::ToolsList, &a, "tools list without echo")
                    .await;
            }
        }
        6..12 => {
            let text = format!("call-{n}");
            let path = format!("/v1/connectors/{connector}/tools/echo/call");
            let body = json!({"arguments": {"text": text}});
            let Some(a) = lb
                .send(&Req::post(Kind::ToolCall, &path, key, body), None)
                .await
            else {
                return;
            };
            if a.status != StatusCode::OK || json_body(&a)["content"][0]["text"] != text {
                lb.wrong(Kind::ToolCall, &a, &format!("echo of `{text}`"))
                    .await;
            }
        }
        12..15 => {
            // The user's own credential is injected upstream, whichever replica serves.
            let path = "/v1/connectors/chaos-sessions/tools/whoami/call";
            let body = json!({"arguments": {}});
            let Some(a) = lb
                .send(&Req::post(Kind::Whoami, path, key, body), None)
                .await
            else {
                return;
            };
            let want = format!("Bearer tok-{}", USERS[u]);
            if a.status != StatusCode::OK || json_body(&a)["content"][0]["text"] != want {
                lb.wrong(Kind::Whoami, &a, &format!("whoami: `{want}`"))
                    .await;
            }
        }
        15..18 => {
            let connector = if n % 2 == 0 {
                "chaos-sessions"
            } else {
                "chaos-relay"
            };
            mcp_session(ctx, n, key, connector).await;
        }
        18 => {
            let name = format!("chaos-w-{n}");
            let body = crate::harness::connector_body(&name, "mcp");
            let req = Req::post(Kind::CreateConnector, "/v1/connectors", key, body);
            let Some(a) = lb.send(&req, None).await else {
                return;
            };
            let created = json_body(&a);
            match created["id"].as_str() {
                Some(id) if a.status == StatusCode::CREATED && created["name"] == name => {
                    ctx.connectors.lock().await.push((u, name, id.to_owned()));
                }
                _ => {
                    lb.wrong(Kind::CreateConnector, &a, &format!("create {name}"))
                        .await
                }
            }
        }
        _ => {
            let name = format!("w{n}");
            let path = "/v1/connectors/chaos-sessions/user/credentials";
            let body =
                json!({"name": name, "credentials": {"bearer_token": format!("tok-{name}")}});
            let Some(a) = lb
                .send(&Req::post(Kind::CreateCredential, path, key, body), None)
                .await
            else {
                return;
            };
            if a.status == StatusCode::OK {
                ctx.credentials.lock().await.push((u, name));
            } else {
                lb.wrong(Kind::CreateCredential, &a, &format!("credential {name}"))
                    .await;
            }
        }
    }
}

/// One MCP session whose four steps each go to a different replica than the step before.
async fn mcp_session(ctx: &Ctx, n: usize, key: &str, connector: &str) {
    let lb = &ctx.lb;
    let path = format!("/v1/connectors-gateway/{connector}/mcp");
    let accept = ("accept", "application/json, text/event-stream");
    let version = ("mcp-protocol-version", PROTOCOL);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "chaos", "version": "1"}}});
    let first = [accept, version];
    let req = Req::post(Kind::McpInitialize, &path, key, init).headers(&first);
    let Some(a) = lb.send(&req, None).await else {
        return;
    };
    let sid = a
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(sid) = sid.filter(|_| {
        a.status == StatusCode::OK && rpc_answer(&a)["result"]["protocolVersion"] == PROTOCOL
    }) else {
        lb.wrong(Kind::McpInitialize, &a, "initialize").await;
        return;
    };
    let headers = [accept, version, ("mcp-session-id", sid.as_str())];

    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let req = Req::post(Kind::McpInitialized, &path, key, note).headers(&headers);
    let Some(a) = lb.send(&req, Some(a.replica)).await else {
        return;
    };
    if a.status != StatusCode::ACCEPTED {
        lb.wrong(Kind::McpInitialized, &a, "notifications/initialized")
            .await;
        return;
    }

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let req = Req::post(Kind::McpToolsList, &path, key, list).headers(&headers);
    let Some(a) = lb.send(&req, Some(a.replica)).await else {
        return;
    };
    if a.status != StatusCode::OK || !has_echo(&rpc_answer(&a)["result"]["tools"]) {
        lb.wrong(Kind::McpToolsList, &a, "session tools/list").await;
        return;
    }

    let text = format!("session-{n}");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}}});
    let req = Req::post(Kind::McpToolsCall, &path, key, call).headers(&headers);
    let Some(a) = lb.send(&req, Some(a.replica)).await else {
        return;
    };
    if a.status != StatusCode::OK || rpc_answer(&a)["result"]["content"][0]["text"] != text {
        lb.wrong(Kind::McpToolsCall, &a, &format!("session echo of `{text}`"))
            .await;
    }
}

async fn worker(ctx: Arc<Ctx>) {
    while ctx.lb.issued.load(Ordering::SeqCst) < TOTAL {
        let n = ctx.lb.ops.fetch_add(1, Ordering::SeqCst);
        one_op(&ctx, n).await;
    }
}

/// Polls `/readyz` of every replica every 100 ms, as a balancer's health check does.
fn health_checks(lb: &Arc<Lb>, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    lb.replicas
        .iter()
        .map(|r| {
            let (r, client, stop) = (r.clone(), client.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let ok = client
                        .get(format!("http://{}/readyz", r.admin))
                        .send()
                        .await
                        .is_ok_and(|resp| resp.status() == StatusCode::OK);
                    r.ready.store(ok, Ordering::SeqCst);
                    tokio::time::sleep(HEALTH_EVERY).await;
                }
            })
        })
        .collect()
}

/// Every connector visible to `key` through one replica (following cursors).
async fn list_connectors(client: &reqwest::Client, base: &str, key: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/connectors?page_size=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let resp = client.get(&url).bearer_auth(key).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        let page: Value = resp.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            out.insert(item["id"].as_str().unwrap().to_owned());
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

async fn list_credentials(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    connector: &str,
) -> BTreeSet<String> {
    let url = format!("{base}/v1/connectors/{connector}/user/credentials?fetch_default=false");
    let resp = client.get(&url).bearer_auth(key).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    let v: Value = resp.json().await.unwrap();
    v["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_sigterm_and_sigkill_under_load() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let upstreams = [
        Upstream::spawn(Mode::Sessions).await,
        Upstream::spawn(Mode::JsonNoSessions).await,
        Upstream::spawn(Mode::Stateless2026).await,
    ];
    let vault_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let mut pairs = env.env_pairs();
    pairs.extend([
        ("SWITCHBOARD_VAULT_KEY".to_owned(), vault_key),
        (
            "SWITCHBOARD_SHUTDOWN_GRACE_SECONDS".to_owned(),
            GRACE_SECONDS.to_string(),
        ),
        ("SWITCHBOARD_LOG_ACCESS".to_owned(), "false".to_owned()),
        // Three health-check periods of the client below between /readyz 503 and closing.
        (
            "SWITCHBOARD_SHUTDOWN_DRAIN_DELAY_MS".to_owned(),
            "300".to_owned(),
        ),
    ]);
    let config = switchboard::Config::from_sources(None, &pairs).unwrap();
    let mut taken = BTreeSet::new();
    let replicas: Vec<Arc<Replica>> = (0..REPLICAS)
        .map(|index| {
            Arc::new(Replica {
                index,
                api: free_port(&mut taken),
                admin: free_port(&mut taken),
                ready: AtomicBool::new(false),
                generation: AtomicUsize::new(0),
                child: Mutex::new(None),
                log: Arc::new(Mutex::new(VecDeque::new())),
                served: AtomicUsize::new(0),
            })
        })
        .collect();
    let direct = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // The first replica migrates the schema and registers the bootstrap key; then the others.
    replicas[0].start(&pairs).await;
    replicas[0].wait_ready(&direct).await;
    for r in &replicas[1..] {
        r.start(&pairs).await;
    }
    for r in &replicas[1..] {
        r.wait_ready(&direct).await;
    }

    // Setup through the API (replica 0): users, shared connectors, a credential per user.
    let mut keys = vec![env.admin_key.clone()];
    for user in &USERS[1..] {
        keys.push(
            switchboard::cli::create_key(&config, user, "default", "default", false)
                .await
                .unwrap(),
        );
    }
    let base0 = replicas[0].base();
    let mut setup_connectors = Vec::new();
    for (name, upstream, auth) in CONNECTORS {
        let mut body = crate::harness::connector_body(name, "mcp");
        body["server"] = json!(upstreams[upstream].url);
        body["visibility"] = json!("shared_workspace");
        if auth {
            body["auth_methods"] = json!([{"method_type": "bearer"}]);
        }
        let resp = direct
            .post(format!("{base0}/v1/connectors"))
            .bearer_auth(&env.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let created: Value = resp.json().await.unwrap();
        setup_connectors.push(created["id"].as_str().unwrap().to_owned());
    }
    for (u, user) in USERS.iter().enumerate() {
        let resp = direct
            .post(format!(
                "{base0}/v1/connectors/chaos-sessions/user/credentials"
            ))
            .bearer_auth(&keys[u])
            .json(&json!({"name": "main", "credentials": {"bearer_token": format!("tok-{user}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            resp.text().await.unwrap()
        );
    }

    // The balancer, its health checks and the load.
    let lb = Arc::new(Lb {
        replicas: replicas.clone(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        rr: AtomicUsize::new(0),
        issued: AtomicUsize::new(0),
        ops: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
        per_kind: Mutex::new(BTreeMap::new()),
        refused_moves: AtomicUsize::new(0),
        idempotent_retries: Mutex::new(Vec::new()),
        same_replica_steps: AtomicUsize::new(0),
        started: Instant::now(),
    });
    let stop_checks = Arc::new(AtomicBool::new(false));
    let checks = health_checks(&lb, &stop_checks);
    for r in &replicas {
        while !r.ready.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let ctx = Arc::new(Ctx {
        lb: lb.clone(),
        keys: keys.clone(),
        connectors: Mutex::new(Vec::new()),
        credentials: Mutex::new(Vec::new()),
    });
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| tokio::spawn(worker(ctx.clone())))
        .collect();

    // Faults.
    let wait_progress = |at: usize| {
        let lb = lb.clone();
        async move {
            while lb.issued.load(Ordering::SeqCst) < at {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_progress(TERM_AT).await;
    let term_sent = Instant::now();
    replicas[1].signal("TERM").await;
    let status = replicas[1]
        .wait_exit(Duration::from_secs(GRACE_SECONDS + 5))
        .await;
    let drained_in = term_sent.elapsed();
    assert!(
        status.success(),
        "the SIGTERMed replica exited with {status}:\n{}",
        replicas[1].tail(200).await
    );
    replicas[1].start(&pairs).await;
    replicas[1].wait_ready(&direct).await;
    let term_back = term_sent.elapsed();

    wait_progress(KILL_AT).await;
    let kill_at = lb.issued.load(Ordering::SeqCst);
    assert!(
        kill_at < TOTAL,
        "the load ended before the SIGKILL (replica 1 took {term_back:?} to come back)"
    );
    let generation = replicas[2].generation.load(Ordering::SeqCst);
    let signalled = Instant::now();
    replicas[2].signal("KILL").await;
    replicas[2].wait_exit(Duration::from_secs(10)).await;
    let kill = Kill {
        replica: 2,
        generation,
        signalled,
        reaped: Instant::now(),
    };
    // Down for a moment under load, then back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    replicas[2].start(&pairs).await;
    replicas[2].wait_ready(&direct).await;
    let kill_back = signalled.elapsed();

    for w in workers {
        w.await.unwrap();
    }
    let duration = lb.started.elapsed();
    stop_checks.store(true, Ordering::SeqCst);
    for c in checks {
        c.await.unwrap();
    }

    // Classify failures.
    let failures = std::mem::take(&mut *lb.failures.lock().await);
    let (excused, failures): (Vec<_>, Vec<_>) = failures.into_iter().partition(|f| {
        f.transport
            && f.replica == kill.replica
            && f.generation == kill.generation
            && f.dispatched < kill.reaped
            && f.ended >= kill.signalled
    });

    // Everything created is there, through every replica.
    let created = ctx.connectors.lock().await.clone();
    let creds = ctx.credentials.lock().await.clone();
    let mut missing = Vec::new();
    for r in &replicas {
        r.wait_ready(&direct).await;
        let base = r.base();
        for (u, key) in keys.iter().enumerate() {
            let listed = list_connectors(&direct, &base, key).await;
            for id in &setup_connectors {
                if !listed.contains(id) {
                    missing.push(format!(
                        "replica {}: connector {id} for {}",
                        r.index, USERS[u]
                    ));
                }
            }
            for (_, name, id) in created.iter().filter(|(cu, _, _)| *cu == u) {
                if !listed.contains(id) {
                    missing.push(format!("replica {}: connector {name} ({id})", r.index));
                }
            }
            let listed = list_credentials(&direct, &base, key, "chaos-sessions").await;
            for name in std::iter::once("main").chain(
                creds
                    .iter()
                    .filter(|(cu, _)| *cu == u)
                    .map(|(_, n)| n.as_str()),
            ) {
                if !listed.contains(name) {
                    missing.push(format!(
                        "replica {}: credential {name} of {}",
                        r.index, USERS[u]
                    ));
                }
            }
        }
    }

    let per_kind = lb.per_kind.lock().await.clone();
    let per_replica: Vec<usize> = replicas
        .iter()
        .map(|r| r.served.load(Ordering::SeqCst))
        .collect();
    eprintln!(
        "chaos: {} requests in {duration:?} ({:.0}/s), concurrency {CONCURRENCY}\n\
         \x20 per kind: {per_kind:?}\n\
         \x20 answered per replica: {per_replica:?}\n\
         \x20 SIGTERM replica 1 at {TERM_AT}: drained and exited 0 in {drained_in:?}, ready again after {term_back:?}\n\
         \x20 SIGKILL replica 2 at {kill_at}: reaped {:?} after the signal, ready again after {kill_back:?}\n\
         \x20 excused (in flight on the killed replica): {}\n\
         \x20 moved after a refused connection: {}, idempotent retries: {}, session steps on the same replica: {}\n\
         \x20 created under load: {} connectors, {} credentials; failures: {}, missing: {}",
        lb.issued.load(Ordering::SeqCst),
        lb.issued.load(Ordering::SeqCst) as f64 / duration.as_secs_f64(),
        kill.reaped - kill.signalled,
        excused.len(),
        lb.refused_moves.load(Ordering::SeqCst),
        lb.idempotent_retries.lock().await.len(),
        lb.same_replica_steps.load(Ordering::SeqCst),
        created.len(),
        creds.len(),
        failures.len(),
        missing.len(),
    );
    for (r, e) in lb.idempotent_retries.lock().await.iter() {
        eprintln!("  retried GET (no response from replica {r}): {e}");
    }
    for f in &excused {
        eprintln!(
            "  excused: {:?} dispatched {:?} before the reap: {}",
            f.kind,
            kill.reaped - f.dispatched,
            f.detail
        );
    }

    let report = |f: &Failure| {
        let at = f.dispatched - lb.started;
        let rel = |t: Instant, what: &str| {
            if f.dispatched >= t {
                format!("{:?} after {what}", f.dispatched - t)
            } else {
                format!("{:?} before {what}", t - f.dispatched)
            }
        };
        format!(
            "{:?} on replica {} (generation {}), dispatched at {at:?} ({}, {}), took {:?}: {}",
            f.kind,
            f.replica,
            f.generation,
            rel(term_sent, "SIGTERM"),
            rel(kill.signalled, "SIGKILL"),
            f.ended - f.dispatched,
            f.detail
        )
    };
    let listed: Vec<String> = failures.iter().take(10).map(report).collect();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for f in &failures {
        *by_kind
            .entry(format!("{:?} on replica {}", f.kind, f.replica))
            .or_default() += 1;
    }
    let mut logs = String::new();
    if !failures.is_empty() || !missing.is_empty() {
        for r in &replicas {
            logs.push_str(&format!(
                "--- replica {} log tail ---\n{}\n",
                r.index,
                r.tail(40).await
            ));
        }
    }

    for r in &replicas {
        if r.child.lock().await.is_some() {
            r.signal("TERM").await;
            r.wait_exit(Duration::from_secs(GRACE_SECONDS + 5)).await;
        }
    }
    env.cleanup().await;

    assert!(
        failures.is_empty(),
        "{} failed requests ({by_kind:?}); the first ones:\n{}\n{logs}",
        failures.len(),
        listed.join("\n")
    );
    assert!(
        missing.is_empty(),
        "missing after the run:\n{}",
        missing.join("\n")
    );
    assert!(
        lb.issued.load(Ordering::SeqCst) >= TOTAL,
        "only {} requests",
        lb.issued.load(Ordering::SeqCst)
    );
}
