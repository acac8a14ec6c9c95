//! Upstream sessions pooled per (connector version, credential identity): a REST tool call
//! reuses an initialized session; idle sessions expire; a failing one is replaced. The era of
//! each connector is remembered so detection runs once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use serde_json::Value;

use super::jsonrpc::RpcError;
use super::session::{Era, Session};
use super::{ClientSettings, McpError, NotificationSink, Target};

/// Which pooled session a request uses. `connector_version` (its `modified_at`) makes an
/// updated connector (new URL, new headers) get a new session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub connector_id: String,
    pub connector_version: String,
    /// Which credential reaches the upstream (`connector` for the connector's own headers).
    pub credential: String,
}

type NotificationHook = Arc<dyn Fn(&PoolKey, &str) + Send + Sync>;

/// The pool.
#[derive(Clone)]
pub struct SessionPool {
    http: reqwest::Client,
    settings: Arc<ClientSettings>,
    sessions: Cache<PoolKey, Arc<Session>>,
    eras: Cache<(String, String), Era>,
    on_notification: NotificationHook,
    opened: Arc<AtomicU64>,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("sessions", &self.sessions.entry_count())
            .finish()
    }
}

/// Methods that may be retried on a fresh session after a transport failure.
fn idempotent(method: &str) -> bool {
    method.ends_with("/list")
        || matches!(
            method,
            "resources/read" | "prompts/get" | "ping" | "server/discover"
        )
}

impl SessionPool {
    pub fn new(
        http: reqwest::Client,
        settings: ClientSettings,
        idle: Duration,
        max_sessions: u64,
        on_notification: impl Fn(&PoolKey, &str) + Send + Sync + 'static,
    ) -> Self {
        let sessions = Cache::builder()
            .max_capacity(max_sessions)
            .time_to_idle(idle)
            .support_invalidation_closures()
            .async_eviction_listener(|_key, session: Arc<Session>, _cause| {
                Box::pin(async move { session.close().await })
            })
            .build();
        Self {
            http,
            settings: Arc::new(settings),
            sessions,
            eras: Cache::builder().max_capacity(max_sessions).build(),
            on_notification: Arc::new(on_notification),
            opened: Arc::default(),
        }
    }

    /// How many upstream sessions are pooled now.
    pub fn open_sessions(&self) -> u64 {
        self.sessions.entry_count()
    }

    /// How many upstream sessions this pool has opened so far.
    pub fn sessions_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The era detected for a connector version, if known.
    pub async fn era(&self, key: &PoolKey) -> Option<Era> {
        self.eras
            .get(&(key.connector_id.clone(), key.connector_version.clone()))
            .await
    }

    /// Sends a request on the pooled session for `key`, opening one when needed. A forgotten
    /// session is re-initialized once and the request retried; a broken one is replaced.
    pub async fn request(
        &self,
        key: &PoolKey,
        target: &Target,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, RpcError>, McpError> {
        let started = std::time::Instant::now();
        let result = self.request_inner(key, target, method, params).await;
        let outcome = match &result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "rpc_error",
            Err(McpError::Timeout) => "timeout",
            Err(McpError::AuthRejected(_)) => "auth_rejected",
            Err(_) => "upstream_error",
        };
        let took = started.elapsed();
        let m = crate::metrics::get();
        m.exchange(&key.connector_id, Some((method, outcome)), took);
        result
    }

    async fn request_inner(
        &self,
        key: &PoolKey,
        target: &Target,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, RpcError>, McpError> {
        let mut retried = false;
        loop {
            let session = self.session(key, target).await?;
            match session.request(method, params.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    if e.replaces_session() {
                        self.drop_session(key, &session).await;
                    }
                    let retry = matches!(e, McpError::SessionExpired)
                        || (e.replaces_session() && idempotent(method));
                    if retry && !retried {
                        retried = true;
                        tracing::debug!(connector = %key.connector_id, error = %e, "upstream session replaced; retrying");
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The era of the upstream behind `key`, detecting it (by opening a pooled session) when
    /// not known yet.
    pub async fn era_of(&self, key: &PoolKey, target: &Target) -> Result<Era, McpError> {
        if let Some(era) = self.era(key).await {
            return Ok(era);
        }
        Ok(self.session(key, target).await?.era())
    }

    /// Settings shared by every upstream exchange.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The HTTP client for upstream MCP traffic.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Drops every pooled session of a connector (deleted or changed).
    pub fn forget_connector(&self, connector_id: &str) {
        let id = connector_id.to_owned();
        let _ = self
            .sessions
            .invalidate_entries_if(move |k, _| k.connector_id == id);
    }

    async fn session(&self, key: &PoolKey, target: &Target) -> Result<Arc<Session>, McpError> {
        self.sessions
            .try_get_with(key.clone(), self.open(key, target))
            .await
            .map_err(|e: Arc<McpError>| (*e).clone())
    }

    async fn drop_session(&self, key: &PoolKey, failed: &Arc<Session>) {
        if let Some(current) = self.sessions.get(key).await {
            if Arc::ptr_eq(&current, failed) {
                self.sessions.invalidate(key).await;
            }
        }
    }

    async fn open(&self, key: &PoolKey, target: &Target) -> Result<Arc<Session>, McpError> {
        let era_key = (key.connector_id.clone(), key.connector_version.clone());
        let known = self.eras.get(&era_key).await;
        let sink = {
            let (hook, key) = (self.on_notification.clone(), key.clone());
            NotificationSink::new(move |method| hook(&key, method))
        };
        let open = |known| {
            Session::open(
                self.http.clone(),
                target.clone(),
                self.settings.clone(),
                sink.clone(),
                known,
            )
        };
        let session = match open(known).await {
            Ok(s) => s,
            // The upstream may have changed era since: detect again once.
            Err(McpError::Http { .. } | McpError::Protocol(_)) if known.is_some() => {
                self.eras.invalidate(&era_key).await;
                open(None).await?
            }
            Err(e) => return Err(e),
        };
        self.eras.insert(era_key, session.era()).await;
        self.opened.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(connector = %key.connector_id, era = ?session.era(), "upstream session opened");
        Ok(Arc::new(session))
    }
}
