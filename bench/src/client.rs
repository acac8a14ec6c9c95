//! One HTTP/1.1 keep-alive connection (hyper 1, TCP_NODELAY) and the request the load
//! generator repeats on it; also one-shot requests for setting things up.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A request to send again and again (cheap to clone: header values and body are shared).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Req {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Result<Self> {
        let v = HeaderValue::from_str(value).with_context(|| format!("header {name}"))?;
        self.headers.push((HeaderName::from_static(name), v));
        Ok(self)
    }

    pub fn bearer(self, token: &str) -> Result<Self> {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(mut self, body: &serde_json::Value) -> Result<Self> {
        self.body = Bytes::from(serde_json::to_vec(body)?);
        self.header("content-type", "application/json")
    }

    /// The MCP Streamable HTTP request headers (both `Accept` types, the protocol version).
    pub fn mcp(self, session: Option<&str>) -> Result<Self> {
        let r = self
            .header("accept", "application/json, text/event-stream")?
            .header("mcp-protocol-version", "2025-06-18")?;
        match session {
            Some(s) => r.header("mcp-session-id", s),
            None => Ok(r),
        }
    }

    fn build(&self, host: &HeaderValue) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .body(Full::new(self.body.clone()))?;
        let h = req.headers_mut();
        h.insert(hyper::header::HOST, host.clone());
        for (n, v) in &self.headers {
            h.append(n.clone(), v.clone());
        }
        Ok(req)
    }
}

/// An open keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("host", &self.host).finish()
    }
}

/// A complete answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {} body is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Fails unless the status is `want`, showing the body.
    pub fn expect(self, want: StatusCode, what: &str) -> Result<Self> {
        if self.status != want {
            bail!(
                "{what}: HTTP {} (wanted {want}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(self)
    }
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Sends `req` and returns the response head with its body unread.
    pub async fn start(&mut self, req: &Req) -> Result<Response<hyper::body::Incoming>> {
        self.sender.ready().await.context("connection closed")?;
        let r = self.sender.send_request(req.build(&self.host)?).await?;
        Ok(r)
    }

    /// Sends `req` and reads the whole answer.
    pub async fn send(&mut self, req: &Req) -> Result<Answer> {
        let resp = self.start(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// One request on a fresh connection.
pub async fn once(addr: SocketAddr, req: &Req) -> Result<Answer> {
    Conn::open(addr).await?.send(req).await
}

/// The JSON-RPC message carrying an `id` in a JSON or SSE body.
pub fn rpc_answer(a: &Answer) -> Result<serde_json::Value> {
    let is_sse = a
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !is_sse {
        return a.json();
    }
    let text = String::from_utf8_lossy(&a.body);
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
        .find(|m| m.get("id").is_some())
        .with_context(|| format!("no JSON-RPC response in the SSE body: {text}"))
}
