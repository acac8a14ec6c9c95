//! One logical connection to an upstream MCP server, in whichever era it speaks: the
//! handshake (or discovery), and requests with the era's headers and `_meta`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::jsonrpc::{self, RpcError};
use super::legacy;
use super::{
    ClientSettings, LATEST_SESSION_VERSION, METHOD_HEADER, McpError, NAME_HEADER, NotificationSink,
    SESSION_HEADER, STATELESS_VERSION, Target, VERSION_HEADER, http,
};

/// The protocol era an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// 2024-11-05 HTTP+SSE.
    Legacy,
    /// 2025-03-26 … 2025-11-25 Streamable HTTP with `initialize`.
    Streamable,
    /// 2026-07-28 stateless.
    Stateless,
}

enum Kind {
    Streamable {
        session_id: Option<HeaderValue>,
        version: HeaderValue,
    },
    Stateless,
    Legacy(legacy::Channel),
}

/// An open upstream session (for stateless servers: a remembered endpoint).
pub struct Session {
    http: reqwest::Client,
    target: Target,
    settings: Arc<ClientSettings>,
    sink: NotificationSink,
    next_id: AtomicI64,
    kind: Kind,
    /// The GET stream on which a session-based server sends notifications.
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .field("era", &self.era())
            .finish()
    }
}

impl Session {
    /// Opens a session; `known` skips detection when the era was learnt before.
    pub async fn open(
        http: reqwest::Client,
        target: Target,
        settings: Arc<ClientSettings>,
        sink: NotificationSink,
        known: Option<Era>,
    ) -> Result<Self, McpError> {
        let mut s = Self {
            http,
            target,
            settings,
            sink,
            next_id: AtomicI64::new(1),
            kind: Kind::Stateless,
            listener: None,
        };
        match known {
            Some(Era::Stateless) => {}
            Some(Era::Streamable) => s.initialize_streamable().await?,
            Some(Era::Legacy) => s.initialize_legacy().await?,
            None => s.detect().await?,
        }
        Ok(s)
    }

    pub fn era(&self) -> Era {
        match self.kind {
            Kind::Streamable { .. } => Era::Streamable,
            Kind::Stateless => Era::Stateless,
            Kind::Legacy(_) => Era::Legacy,
        }
    }

    /// Sends a request and waits for its response (a JSON-RPC error is an `Ok(Err(_))`).
    pub async fn request(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, RpcError>, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (body, headers) = match &self.kind {
            Kind::Stateless => {
                let params = stamp_meta(params, &self.settings);
                let headers = stateless_headers(&self.target.headers, method, &params);
                (jsonrpc::request(id, method, params), headers)
            }
            Kind::Streamable {
                session_id,
                version,
            } => {
                let mut h = self.target.headers.clone();
                h.insert(VERSION_HEADER, version.clone());
                if let Some(sid) = session_id {
                    h.insert(SESSION_HEADER, sid.clone());
                }
                (jsonrpc::request(id, method, params), h)
            }
            Kind::Legacy(channel) => {
                let body = jsonrpc::request(id, method, params);
                return channel
                    .request(
                        &self.http,
                        &self.target.headers,
                        &json!(id),
                        &body,
                        self.settings.call_timeout,
                    )
                    .await;
            }
        };
        let answer = http::post(
            &self.http,
            &self.target.url,
            headers,
            &body,
            Some(&json!(id)),
            &self.sink,
            self.settings.call_timeout,
        )
        .await?;
        answer
            .response
            .ok_or_else(|| McpError::Protocol("no response".into()))
    }

    /// Ends the upstream session where the era has one (best effort).
    pub async fn close(&self) {
        if let Kind::Streamable {
            session_id: Some(sid),
            version,
        } = &self.kind
        {
            let mut h = self.target.headers.clone();
            h.insert(SESSION_HEADER, sid.clone());
            h.insert(VERSION_HEADER, version.clone());
            let _ = tokio::time::timeout(
                self.settings.connect_timeout,
                self.http.delete(self.target.url.clone()).headers(h).send(),
            )
            .await;
        }
    }

    /// 2026-07-28 first (`server/discover`), then `initialize`, then legacy HTTP+SSE.
    async fn detect(&mut self) -> Result<(), McpError> {
        match self.discover().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e @ (McpError::Unreachable(_) | McpError::Timeout | McpError::AuthRejected(_))) => {
                return Err(e);
            }
            Err(_) => {}
        }
        match self.initialize_streamable().await {
            Ok(()) => Ok(()),
            Err(McpError::Http {
                status: 400 | 404 | 405 | 406 | 415,
                ..
            }) => self.initialize_legacy().await,
            Err(e) => Err(e),
        }
    }

    /// Whether the upstream is a 2026-07-28 server.
    async fn discover(&self) -> Result<bool, McpError> {
        let id = json!(0);
        let params = stamp_meta(json!({}), &self.settings);
        let headers = stateless_headers(&self.target.headers, "server/discover", &params);
        let body =
            json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": params});
        let answer = http::post(
            &self.http,
            &self.target.url,
            headers,
            &body,
            Some(&id),
            &self.sink,
            self.settings.call_timeout,
        )
        .await?;
        Ok(match answer.response {
            Some(Ok(result)) => result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|x| x == STATELESS_VERSION)),
            _ => false,
        })
    }

    fn initialize_params(&self) -> Value {
        json!({
            "protocolVersion": LATEST_SESSION_VERSION,
            "capabilities": {},
            "clientInfo": {"name": self.settings.client_name, "version": self.settings.client_version},
        })
    }

    async fn initialize_streamable(&mut self) -> Result<(), McpError> {
        let body = jsonrpc::request(0, "initialize", self.initialize_params());
        let answer = http::post(
            &self.http,
            &self.target.url,
            self.target.headers.clone(),
            &body,
            Some(&json!(0)),
            &self.sink,
            self.settings.call_timeout,
        )
        .await?;
        let result = match answer.response {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                return Err(McpError::Protocol(format!(
                    "initialize failed: {} ({})",
                    e.message, e.code
                )));
            }
            None => return Err(McpError::Protocol("no initialize result".into())),
        };
        let version = negotiated_version(&result)?;
        let session_id = answer.headers.get(SESSION_HEADER).cloned();
        let mut h = self.target.headers.clone();
        h.insert(VERSION_HEADER, version.clone());
        if let Some(sid) = &session_id {
            h.insert(SESSION_HEADER, sid.clone());
        }
        http::post(
            &self.http,
            &self.target.url,
            h.clone(),
            &jsonrpc::notification("notifications/initialized", None),
            None,
            &self.sink,
            self.settings.call_timeout,
        )
        .await?;
        if session_id.is_some() {
            self.listener = Some(tokio::spawn(listen(
                self.http.clone(),
                self.target.url.clone(),
                h,
                self.sink.clone(),
            )));
        }
        self.kind = Kind::Streamable {
            session_id,
            version,
        };
        Ok(())
    }

    async fn initialize_legacy(&mut self) -> Result<(), McpError> {
        let channel = legacy::Channel::connect(
            &self.http,
            &self.target,
            &self.settings,
            self.sink.clone(),
            None,
        )
        .await?;
        let body = jsonrpc::request(0, "initialize", self.initialize_params());
        let timeout = self.settings.call_timeout;
        match channel
            .request(&self.http, &self.target.headers, &json!(0), &body, timeout)
            .await?
        {
            Ok(result) => {
                negotiated_version(&result)?;
            }
            Err(e) => {
                return Err(McpError::Protocol(format!(
                    "initialize failed: {} ({})",
                    e.message, e.code
                )));
            }
        }
        channel
            .notify(
                &self.http,
                &self.target.headers,
                &jsonrpc::notification("notifications/initialized", None),
                timeout,
            )
            .await?;
        self.kind = Kind::Legacy(channel);
        Ok(())
    }
}

/// Reads the session's GET stream for server notifications until it ends (405: none offered).
async fn listen(
    http: reqwest::Client,
    url: url::Url,
    mut headers: HeaderMap,
    sink: NotificationSink,
) {
    use futures_util::StreamExt;
    headers.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    let Ok(resp) = http.get(url).headers(headers).send().await else {
        return;
    };
    if !resp.status().is_success() {
        return;
    }
    let mut events = super::http::capped_events(resp);
    while let Some(Ok(ev)) = events.next().await {
        if ev.data.trim().is_empty() {
            continue;
        }
        if let Ok(messages) = jsonrpc::Message::parse_all(ev.data.as_bytes()) {
            for m in messages {
                if let jsonrpc::Message::Notification { method, .. } = m {
                    sink.notify(&method);
                }
            }
        }
    }
}

fn negotiated_version(result: &Value) -> Result<HeaderValue, McpError> {
    result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .and_then(|v| HeaderValue::from_str(v).ok())
        .ok_or_else(|| McpError::Protocol("initialize result without protocolVersion".into()))
}

/// Adds the 2026-07-28 per-request `_meta` (version, capabilities, client info).
fn stamp_meta(params: Value, settings: &ClientSettings) -> Value {
    let mut params = match params {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert(
            "io.modelcontextprotocol/protocolVersion".into(),
            json!(STATELESS_VERSION),
        );
        meta.entry("io.modelcontextprotocol/clientCapabilities")
            .or_insert_with(|| json!({}));
        meta.entry("io.modelcontextprotocol/clientInfo")
            .or_insert_with(
                || json!({"name": settings.client_name, "version": settings.client_version}),
            );
    }
    Value::Object(params)
}

/// The headers a 2026-07-28 POST carries: version, `Mcp-Method`, and `Mcp-Name` where the
/// method has one.
fn stateless_headers(base: &HeaderMap, method: &str, params: &Value) -> HeaderMap {
    let mut h = base.clone();
    h.insert(VERSION_HEADER, HeaderValue::from_static(STATELESS_VERSION));
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert(METHOD_HEADER, v);
    }
    let name_key = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(name) = name_key.and_then(|k| params.get(k)).and_then(Value::as_str) {
        if let Ok(v) = HeaderValue::from_str(&encode_header_value(name)) {
            h.insert(HeaderName::from_static(NAME_HEADER), v);
        }
    }
    h
}

/// Plain visible ASCII as is; anything else (or a value that looks encoded) as
/// `=?base64?…?=` of its UTF-8.
pub fn encode_header_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && (!value.starts_with("=?base64?") || !value.ends_with("?="));
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_encode_per_2026_rules() {
        assert_eq!(encode_header_value("echo"), "echo");
        assert_eq!(encode_header_value("a/b c"), "a/b c");
        assert_eq!(encode_header_value("é"), "=?base64?w6k=?=");
        assert_eq!(encode_header_value(" lead"), "=?base64?IGxlYWQ=?=");
        assert!(encode_header_value("=?base64?x?=").starts_with("=?base64?PT9"));
    }

    #[test]
    fn meta_is_stamped_without_losing_params() {
        let s = ClientSettings {
            connect_timeout: std::time::Duration::from_secs(1),
            call_timeout: std::time::Duration::from_secs(1),
            client_name: "t".into(),
            client_version: "1".into(),
        };
        let p = stamp_meta(json!({"name": "x", "_meta": {"progressToken": 3}}), &s);
        assert_eq!(p["name"], "x");
        assert_eq!(p["_meta"]["progressToken"], 3);
        assert_eq!(
            p["_meta"]["io.modelcontextprotocol/protocolVersion"],
            STATELESS_VERSION
        );
        let h = stateless_headers(&HeaderMap::new(), "tools/call", &p);
        assert_eq!(h[METHOD_HEADER], "tools/call");
        assert_eq!(h[NAME_HEADER], "x");
    }
}
