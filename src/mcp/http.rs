//! One JSON-RPC POST to an upstream and its answer: `202` (accepted), a JSON body, or an SSE
//! stream read event by event until the response with our id arrives (empty priming events
//! skipped, server notifications reported on the way).

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

use super::jsonrpc::{Message, RpcError};
use super::{McpError, NotificationSink};

/// Both, or servers answer 406.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The answer to a POST.
#[derive(Debug)]
pub struct PostAnswer {
    pub headers: HeaderMap,
    /// The response to our request, when one was expected.
    pub response: Option<Result<Value, RpcError>>,
}

/// Sends `body` (a request with id `expect`, or a notification when `None`).
pub async fn post(
    http: &reqwest::Client,
    url: &url::Url,
    mut headers: HeaderMap,
    body: &Value,
    expect: Option<&Value>,
    sink: &NotificationSink,
    timeout: Duration,
) -> Result<PostAnswer, McpError> {
    headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_BOTH));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    crate::telemetry::inject_context(&mut headers);
    let had_session = headers.contains_key(super::SESSION_HEADER);
    let exchange = async {
        let resp = http
            .post(url.clone())
            .headers(headers)
            .body(serde_json::to_vec(body).unwrap_or_default())
            .send()
            .await
            .map_err(McpError::from_reqwest)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            let text = crate::limits::error_text(resp).await;
            let err = McpError::from_status(status, &text, had_session);
            // 2026-07-28 servers carry JSON-RPC errors in 4xx answers: that is an answer.
            if let (McpError::Http { .. }, Some(id)) = (&err, expect) {
                if let Ok(Some(outcome @ Err(_))) = find_response(text.as_bytes(), id, sink) {
                    return Ok(PostAnswer {
                        headers,
                        response: Some(outcome),
                    });
                }
            }
            return Err(err);
        }
        let Some(id) = expect else {
            return Ok(PostAnswer {
                headers,
                response: None,
            });
        };
        if status == StatusCode::ACCEPTED {
            return Err(McpError::Protocol(
                "202 Accepted for a request that needs a response".into(),
            ));
        }
        let ctype = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let response = if ctype.starts_with("text/event-stream") {
            read_sse_until(resp, id, sink).await?
        } else {
            let bytes = crate::limits::read_body(resp)
                .await
                .map_err(McpError::from_reqwest)?
                .map_err(|e| McpError::Protocol(e.0))?;
            find_response(&bytes, id, sink)?.ok_or_else(|| {
                McpError::Protocol("JSON answer does not hold our response".into())
            })?
        };
        Ok(PostAnswer {
            headers,
            response: Some(response),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| McpError::Timeout)?
}

/// Looks for the response with `id` among the messages in `bytes`; reports notifications.
pub fn find_response(
    bytes: &[u8],
    id: &Value,
    sink: &NotificationSink,
) -> Result<Option<Result<Value, RpcError>>, McpError> {
    let messages = Message::parse_all(bytes).map_err(McpError::Protocol)?;
    let mut found = None;
    for m in messages {
        match m {
            Message::Response { id: rid, outcome } if &rid == id => found = Some(outcome),
            Message::Notification { method, .. } => sink.notify(&method),
            _ => {}
        }
    }
    Ok(found)
}

async fn read_sse_until(
    resp: reqwest::Response,
    id: &Value,
    sink: &NotificationSink,
) -> Result<Result<Value, RpcError>, McpError> {
    let mut events = capped_events(resp);
    while let Some(event) = events.next().await {
        let event = event.map_err(sse_error)?;
        if event.data.trim().is_empty() {
            continue; // priming event
        }
        if let Some(outcome) = find_response(event.data.as_bytes(), id, sink)? {
            return Ok(outcome);
        }
    }
    Err(McpError::Protocol(
        "the SSE stream ended before the response".into(),
    ))
}

/// An upstream SSE body as events, lines and events capped by the limits.
pub fn capped_events(
    resp: reqwest::Response,
) -> eventsource_stream::EventStream<
    impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send,
> {
    crate::limits::sse_capped(
        resp.bytes_stream(),
        crate::limits::max_sse_line(),
        crate::limits::max_upstream_response(),
    )
    .eventsource()
}

/// A broken upstream SSE stream: a limit exceeded is a protocol error, anything else a broken
/// connection.
pub fn sse_error(e: eventsource_stream::EventStreamError<std::io::Error>) -> McpError {
    if let eventsource_stream::EventStreamError::Transport(io) = &e {
        if let Some(t) = io
            .get_ref()
            .and_then(|r| r.downcast_ref::<crate::limits::TooLarge>())
        {
            return McpError::Protocol(t.0.clone());
        }
    }
    McpError::Unreachable(format!("SSE stream broke: {e}"))
}
