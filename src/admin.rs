//! The admin listener: `/healthz` (the process is alive) and `/readyz` (store reachable,
//! migrations done, vault key loaded, not draining).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::store::Store;

/// Readiness inputs shared with the app.
#[derive(Debug, Clone)]
pub struct Readiness {
    store: Arc<dyn Store>,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on `/readyz` answers 503 so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// Reads the number of pooled upstream sessions at scrape time.
pub type SessionCount = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn router(readiness: Readiness, sessions: SessionCount) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(move || {
                let sessions = sessions.clone();
                async move { metrics(&*sessions) }
            }),
        )
        .layer(crate::observe::ObserveLayer(
            crate::observe::Observe::admin(),
        ))
        .with_state(readiness)
}

fn metrics(sessions: &(dyn Fn() -> u64 + Send + Sync)) -> axum::response::Response {
    use axum::response::IntoResponse;
    let m = crate::metrics::get();
    m.upstream_sessions
        .set(i64::try_from(sessions()).unwrap_or(i64::MAX));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

async fn ready(State(r): State<Readiness>) -> (StatusCode, Json<Value>) {
    if r.draining.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    match r.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store_unreachable"})),
            )
        }
    }
}
