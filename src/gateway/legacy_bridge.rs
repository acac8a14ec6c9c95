//! Serving a legacy HTTP+SSE (2024-11-05) upstream to clients as Streamable HTTP: the gateway
//! holds the upstream's GET stream (one per client session, on this replica), POSTs each
//! client message to the upstream's endpoint, answers requests with the response that comes
//! back on the stream, and offers everything else the upstream sends on the client's GET.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moka::future::Cache;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::mcp::jsonrpc::Message;
use crate::mcp::{LegacyChannel, McpError, NotificationSink, SessionPool, Target};

/// Prefix of the upstream-session part of a sealed id that names a bridge.
pub const BRIDGE_PREFIX: &str = "legacy:";

pub struct Bridge {
    channel: LegacyChannel,
    events: broadcast::Sender<String>,
    target: Target,
}

/// The open bridges of this replica.
#[derive(Clone)]
pub struct Bridges {
    open: Cache<String, Arc<Bridge>>,
}

impl std::fmt::Debug for Bridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridges")
            .field("open", &self.open.entry_count())
            .finish()
    }
}

impl Bridges {
    pub fn new(idle: Duration, max: u64) -> Self {
        Self {
            open: Cache::builder()
                .time_to_idle(idle)
                .max_capacity(max)
                .build(),
        }
    }

    async fn open(
        &self,
        pool: &SessionPool,
        target: &Target,
    ) -> Result<(String, Arc<Bridge>), McpError> {
        let (events, _) = broadcast::channel(256);
        let channel = LegacyChannel::connect(
            pool.http(),
            target,
            pool.settings(),
            NotificationSink::default(),
            Some(events.clone()),
        )
        .await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let bridge = Arc::new(Bridge {
            channel,
            events,
            target: target.clone(),
        });
        self.open.insert(id.clone(), bridge.clone()).await;
        Ok((id, bridge))
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn rpc_answer(id: &Value, outcome: Result<Value, crate::mcp::RpcError>) -> Value {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    }
}

/// Handles one client request for a legacy upstream. `bridge_id` comes from a valid sealed
/// session id; a new bridge is opened by `initialize`. Returns the response and, for a new
/// bridge, its id (to seal into the client's session id).
pub async fn handle(
    gateway: &super::Gateway,
    pool: &SessionPool,
    target: &Target,
    bridge_id: Option<&str>,
    method: &Method,
    body: &Bytes,
) -> Result<(Response, Option<String>), McpError> {
    let bridges = &gateway.bridges;
    let existing = match bridge_id {
        Some(id) => match bridges.open.get(id).await {
            Some(b) => Some(b),
            None => return Ok((super::mcp_relay::session_not_found(), None)),
        },
        None => None,
    };
    let timeout = pool.settings().call_timeout;
    match (method, existing) {
        (&Method::DELETE, Some(_)) => {
            if let Some(id) = bridge_id {
                bridges.open.invalidate(id).await;
            }
            Ok((StatusCode::OK.into_response(), None))
        }
        (&Method::GET, Some(bridge)) => {
            let rx = bridge.events.subscribe();
            let events = futures_util::stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(data) => {
                            let framed: String =
                                data.lines().map(|l| format!("data: {l}\n")).collect();
                            return Some((
                                Ok::<_, std::io::Error>(Bytes::from(format!(
                                    "event: message\n{framed}\n"
                                ))),
                                rx,
                            ));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            let mut response = Response::new(Body::from_stream(super::mcp_relay::with_keepalive(
                Box::pin(events),
                gateway.keepalive,
                gateway.draining.clone(),
            )));
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            Ok((response, None))
        }
        (&Method::POST, bridge) => {
            let Ok(value) = serde_json::from_slice::<Value>(body) else {
                let err = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}});
                return Ok((json_response(StatusCode::BAD_REQUEST, &err), None));
            };
            let message = Message::classify(&value);
            let (bridge, new_id) = match (bridge, &message) {
                (Some(b), _) => (b, None),
                (None, Some(Message::Request { method, .. })) if method == "initialize" => {
                    let (id, b) = bridges.open(pool, target).await?;
                    (b, Some(id))
                }
                (None, _) => {
                    let err = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Bad Request: Session ID is required"}});
                    return Ok((json_response(StatusCode::BAD_REQUEST, &err), None));
                }
            };
            match message {
                Some(Message::Request { id, .. }) => {
                    let outcome = bridge
                        .channel
                        .request(pool.http(), &bridge.target.headers, &id, &value, timeout)
                        .await?;
                    Ok((
                        json_response(StatusCode::OK, &rpc_answer(&id, outcome)),
                        new_id,
                    ))
                }
                Some(_) => {
                    bridge
                        .channel
                        .notify(pool.http(), &bridge.target.headers, &value, timeout)
                        .await?;
                    Ok((StatusCode::ACCEPTED.into_response(), new_id))
                }
                None => {
                    let err = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Invalid Request"}});
                    Ok((json_response(StatusCode::BAD_REQUEST, &err), new_id))
                }
            }
        }
        (_, None) => Ok((super::mcp_relay::session_not_found(), None)),
        _ => Ok((StatusCode::METHOD_NOT_ALLOWED.into_response(), None)),
    }
}
