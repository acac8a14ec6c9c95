//! Legacy HTTP+SSE (2024-11-05): a GET stream whose first `endpoint` event names the URL to
//! POST to; every response arrives later on the stream and is matched by id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::{Mutex, broadcast, oneshot};

use super::jsonrpc::{Message, RpcError};
use super::{ClientSettings, McpError, NotificationSink, Target};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, RpcError>>>>>;

/// The open GET stream and where to POST.
pub struct Channel {
    post_url: url::Url,
    pending: Pending,
    alive: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Channel {
    pub async fn connect(
        http: &reqwest::Client,
        target: &Target,
        settings: &ClientSettings,
        sink: NotificationSink,
        forward: Option<broadcast::Sender<String>>,
    ) -> Result<Self, McpError> {
        let mut headers = target.headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let resp = tokio::time::timeout(
            settings.call_timeout,
            http.get(target.url.clone()).headers(headers).send(),
        )
        .await
        .map_err(|_| McpError::Timeout)?
        .map_err(McpError::from_reqwest)?;
        let status = resp.status();
        if !status.is_success() {
            let body = crate::limits::error_text(resp).await;
            return Err(McpError::from_status(status, &body, false));
        }
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(McpError::Protocol(
                "not an MCP endpoint: neither Streamable HTTP nor an SSE stream".into(),
            ));
        }
        let mut events = super::http::capped_events(resp);
        let endpoint = tokio::time::timeout(settings.call_timeout, async {
            while let Some(ev) = events.next().await {
                let ev = ev.map_err(super::http::sse_error)?;
                if ev.event == "endpoint" {
                    return Ok(ev.data);
                }
            }
            Err(McpError::Protocol(
                "SSE stream ended before the endpoint event".into(),
            ))
        })
        .await
        .map_err(|_| McpError::Timeout)??;
        let post_url = target
            .url
            .join(endpoint.trim())
            .map_err(|_| McpError::Protocol("invalid endpoint event".into()))?;
        if post_url.origin() != target.url.origin() {
            return Err(McpError::Protocol(
                "the endpoint event points to another origin".into(),
            ));
        }
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let reader = {
            let (pending, alive) = (pending.clone(), alive.clone());
            tokio::spawn(async move {
                while let Some(Ok(ev)) = events.next().await {
                    if ev.data.trim().is_empty() || !(ev.event.is_empty() || ev.event == "message")
                    {
                        continue;
                    }
                    let Ok(messages) = Message::parse_all(ev.data.as_bytes()) else {
                        continue;
                    };
                    let for_client = messages
                        .iter()
                        .any(|m| !matches!(m, Message::Response { .. }));
                    if let (true, Some(tx)) = (for_client, &forward) {
                        let _ = tx.send(ev.data.clone());
                    }
                    for m in messages {
                        match m {
                            Message::Response { id, outcome } => {
                                if let Some(tx) = pending.lock().await.remove(&id.to_string()) {
                                    let _ = tx.send(outcome);
                                }
                            }
                            Message::Notification { method, .. } => sink.notify(&method),
                            Message::Request { .. } => {}
                        }
                    }
                }
                alive.store(false, Ordering::SeqCst);
                pending.lock().await.clear(); // waiting callers see the stream is gone
            })
        };
        Ok(Self {
            post_url,
            pending,
            alive,
            reader,
        })
    }

    /// POSTs a request and waits for its response on the stream.
    pub async fn request(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
        id: &Value,
        body: &Value,
        timeout: Duration,
    ) -> Result<Result<Value, RpcError>, McpError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(McpError::Unreachable(
                "the upstream SSE stream closed".into(),
            ));
        }
        let (tx, rx) = oneshot::channel();
        let key = id.to_string();
        self.pending.lock().await.insert(key.clone(), tx);
        let outcome = tokio::time::timeout(timeout, async {
            self.post(http, headers, body).await?;
            rx.await
                .map_err(|_| McpError::Unreachable("the upstream SSE stream closed".into()))
        })
        .await;
        self.pending.lock().await.remove(&key);
        outcome.map_err(|_| McpError::Timeout)?
    }

    /// POSTs a notification.
    pub async fn notify(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
        body: &Value,
        timeout: Duration,
    ) -> Result<(), McpError> {
        tokio::time::timeout(timeout, self.post(http, headers, body))
            .await
            .map_err(|_| McpError::Timeout)?
    }

    async fn post(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<(), McpError> {
        let mut h = headers.clone();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let resp = http
            .post(self.post_url.clone())
            .headers(h)
            .body(serde_json::to_vec(body).unwrap_or_default())
            .send()
            .await
            .map_err(McpError::from_reqwest)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = crate::limits::error_text(resp).await;
        // The endpoint URL carries the legacy session: a 404 there means it is gone.
        Err(McpError::from_status(status, &text, true))
    }
}
