//! Tools of MCP connectors, for the REST endpoints: the upstream target of a connector (its
//! URL and injected headers), `tools/list` through the cache (every page), and `tools/call`
//! through the session pool.

mod upstream;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::cache::{CacheOutcome, ToolsCache, ToolsKey, ToolsList};
use crate::credentials::{Choice, Credentials, CredentialsError};
use crate::identity::Principal;
use crate::mcp::{McpError, PoolKey, RpcError, SessionPool, Target};
use crate::registry::{Connector, ConsumerType, Registry, RegistryError};

pub use upstream::upstream_target;

/// Why a tools operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("The connector does not support MCP")]
    NotMcp,
    #[error("The connector does not support HTTP")]
    NotHttp,
    #[error("Rate limit of this connector reached; retry in {0} s")]
    RateLimited(u64),
    #[error("The connector is deactivated for your {}", .0.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))]
    Deactivated(Vec<ConsumerType>),
    #[error("Credentials '{0}' not found for this connector")]
    CredentialsNotFound(String),
    #[error(
        "This connector requires credentials and none are configured for you (credentials_required)"
    )]
    CredentialsRequired,
    #[error("{0}")]
    CredentialsUnusable(&'static str),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("The connector's upstream configuration is invalid: {0}")]
    BadTarget(String),
    #[error(transparent)]
    Upstream(#[from] McpError),
    /// The upstream answered with a JSON-RPC error.
    #[error("Upstream MCP error {}: {}", .0.code, .0.message)]
    Rpc(RpcError),
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
    /// The connector's circuit breaker is open (seconds until the next probe).
    #[error("The connector's upstream is failing; retry in {0} s")]
    CircuitOpen(u64),
    /// The outbound policy refused the connector's server.
    #[error("The connector's server is not an allowed destination: {0}")]
    Refused(String),
}

/// How many `tools/list` pages are followed at most (a loop guard).
const MAX_PAGES: usize = 100;
/// The credential identity used while a connector is reached with its own headers only.
const CONNECTOR_CREDENTIAL: &str = "connector";

#[derive(Debug, Clone)]
pub struct ToolsService {
    limits: Arc<crate::ratelimit::RateLimits>,
    registry: Registry,
    credentials: Credentials,
    pool: SessionPool,
    cache: ToolsCache,
    oauth: Option<crate::oauth::OAuth>,
    policy: crate::net::NetPolicy,
    breakers: crate::breaker::Breakers,
    events: Option<crate::events::Events>,
    /// Resolutions (connector, credential, injected target) reused while the store reads they
    /// came from are fresh; OAuth credentials are never kept (their tokens move).
    resolved: Option<ResolvedCache>,
}

#[derive(Clone)]
struct ResolvedCache {
    freshness: Arc<crate::store::CacheState>,
    entries: crate::cache::SyncCache<String, Arc<StampedResolution>>,
}

/// A resolution and the freshness stamp of the store reads it came from.
type StampedResolution = ((u64, std::time::Instant), Arc<Resolved>);

impl std::fmt::Debug for ResolvedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedCache").finish_non_exhaustive()
    }
}

/// What a use of a connector needs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Mcp,
    Http,
}

/// A connector ready to be reached: the upstream target with credentials injected, and which
/// credential it carries (`<id>@<version>`, or `connector` for the connector's own headers).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub connector: Connector,
    pub target: Target,
    pub credential: String,
    /// The access token injected, when it came from an OAuth credential (an upstream 401
    /// then means: refresh and try once more).
    pub oauth_bearer: Option<SecretString>,
}

impl Resolved {
    /// The OAuth access token that was injected, if any.
    pub fn rejected_token(&self) -> Option<&str> {
        self.oauth_bearer.as_ref().map(ExposeSecret::expose_secret)
    }
}

impl Resolved {
    /// The id of the stored credential used, if any.
    pub fn credential_id(&self) -> Option<&str> {
        self.credential.split_once('@').map(|(id, _)| id)
    }
}

/// The pool key, the cache key and the target of one use of a connector.
struct Use {
    pool_key: PoolKey,
    target: Target,
    oauth_bearer: Option<SecretString>,
}

impl ToolsService {
    pub fn new(
        registry: Registry,
        credentials: Credentials,
        pool: SessionPool,
        cache: ToolsCache,
    ) -> Self {
        Self {
            limits: Arc::new(crate::ratelimit::RateLimits::new(0, 0, 0, 0)),
            registry,
            credentials,
            pool,
            cache,
            oauth: None,
            policy: crate::net::NetPolicy::permissive(),
            breakers: crate::breaker::Breakers::off(),
            events: None,
            resolved: None,
        }
    }

    /// Tells other replicas about `list_changed` seen here.
    pub fn with_events(mut self, events: crate::events::Events) -> Self {
        self.events = Some(events);
        self
    }

    /// The tools cache (the cross-replica listener invalidates it).
    pub fn cache(&self) -> &ToolsCache {
        &self.cache
    }

    /// Opens a connector's circuit after consecutive upstream failures.
    pub fn with_breakers(mut self, breakers: crate::breaker::Breakers) -> Self {
        self.breakers = breakers;
        self
    }

    /// The circuit breakers (the relays record their outcomes here).
    pub fn breakers(&self) -> &crate::breaker::Breakers {
        &self.breakers
    }

    /// Refuses upstream URLs this outbound policy refuses.
    pub fn with_policy(mut self, policy: crate::net::NetPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses this OAuth service for `oauth2` credentials.
    /// Reuses resolutions while `freshness` says the store reads behind them are fresh.
    pub fn with_resolution_cache(mut self, freshness: Arc<crate::store::CacheState>) -> Self {
        self.resolved = Some(ResolvedCache {
            freshness,
            entries: moka::sync::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build_with_hasher(crate::cache::FastHash::default()),
        });
        self
    }

    pub fn with_oauth(mut self, oauth: crate::oauth::OAuth) -> Self {
        self.oauth = Some(oauth);
        self
    }

    /// Applies these rate limits to connector uses.
    pub fn with_limits(mut self, limits: Arc<crate::ratelimit::RateLimits>) -> Self {
        self.limits = limits;
        self
    }

    /// A credential of the connector was created, changed or deleted.
    pub fn credentials_changed(&self, connector_id: &str) {
        self.cache.tools_changed(connector_id);
    }

    /// The upstream said its tools changed (seen by the relay): here and on every replica.
    pub fn tools_changed(&self, connector_id: &str) {
        self.cache.tools_changed(connector_id);
        if let Some(e) = &self.events {
            e.tools_changed(connector_id);
        }
    }

    pub fn pool(&self) -> &SessionPool {
        &self.pool
    }

    /// Every tool of the connector (all pages), from the cache when fresh.
    pub async fn list(
        &self,
        p: &Principal,
        reference: &str,
        credentials_name: Option<&str>,
        refresh: bool,
    ) -> Result<(Arc<ToolsList>, CacheOutcome), ToolsError> {
        let (_, u) = self.prepare(p, reference, credentials_name, None).await?;
        match self.list_with(&u, refresh).await {
            Err(ToolsError::Upstream(McpError::AuthRejected(401))) if u.oauth_bearer.is_some() => {
                let rejected = u
                    .oauth_bearer
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned());
                let (_, u) = self
                    .prepare(p, reference, credentials_name, rejected.as_deref())
                    .await?;
                self.list_with(&u, refresh).await
            }
            other => other,
        }
    }

    async fn list_with(
        &self,
        u: &Use,
        refresh: bool,
    ) -> Result<(Arc<ToolsList>, CacheOutcome), ToolsError> {
        let key = ToolsKey {
            connector_id: u.pool_key.connector_id.clone(),
            connector_version: u.pool_key.connector_version.clone(),
            credential: u.pool_key.credential.clone(),
        };
        // Made (and boxed: it is tens of KiB) only on a miss, so a hit moves none of it.
        let fetch = || Box::pin(self.fetch_all(u));
        let (list, outcome) = self.cache.get(&key, refresh, fetch).await.map_err(|e| {
            self.breakers
                .record(&key.connector_id, !upstream_failing(&e));
            match e {
                McpError::Rpc(rpc) => ToolsError::Rpc(rpc),
                other => ToolsError::Upstream(other),
            }
        })?;
        match outcome {
            CacheOutcome::Miss => self.breakers.record(&key.connector_id, true),
            CacheOutcome::Stale => self.breakers.record(&key.connector_id, false),
            CacheOutcome::Hit => {}
        }
        let result = match outcome {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Stale => "stale",
        };
        crate::metrics::get()
            .tools_cache
            .with_label_values(&[result])
            .inc();
        if outcome == CacheOutcome::Stale {
            tracing::warn!(connector = %key.connector_id, "upstream down: serving the last good tools list");
        }
        Ok((list, outcome))
    }

    /// Calls a tool; a tool-level failure is an `Ok` result with `isError: true`.
    pub async fn call(
        &self,
        p: &Principal,
        reference: &str,
        tool: &str,
        arguments: Value,
        credentials_name: Option<&str>,
    ) -> Result<Value, ToolsError> {
        let (_, u) = self.prepare(p, reference, credentials_name, None).await?;
        let params = json!({"name": tool, "arguments": arguments});
        let first = self
            .pool
            .request(&u.pool_key, &u.target, "tools/call", params.clone())
            .await;
        self.record_call(&u.pool_key.connector_id, &first);
        let answer = match first {
            Err(McpError::AuthRejected(401)) if u.oauth_bearer.is_some() => {
                let rejected = u
                    .oauth_bearer
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned());
                let (_, u) = self
                    .prepare(p, reference, credentials_name, rejected.as_deref())
                    .await?;
                let again = self
                    .pool
                    .request(&u.pool_key, &u.target, "tools/call", params)
                    .await;
                self.record_call(&u.pool_key.connector_id, &again);
                again?
            }
            other => other?,
        };
        answer.map_err(ToolsError::Rpc)
    }

    /// Records a REST call's outcome with the breaker.
    fn record_call<T>(&self, connector_id: &str, r: &Result<T, McpError>) {
        let ok = match r {
            Ok(_) => true,
            Err(e) => !upstream_failing(e),
        };
        self.breakers.record(connector_id, ok);
    }

    /// The connector's tools if a list reached with its own headers is cached (never fetches).
    pub async fn cached(&self, c: &Connector) -> Option<Arc<ToolsList>> {
        if !c.supports_mcp {
            return None;
        }
        self.cache
            .peek(&ToolsKey {
                connector_id: c.id.clone(),
                connector_version: c.modified_at.clone(),
                credential: CONNECTOR_CREDENTIAL.to_owned(),
            })
            .await
    }

    /// Forgets everything cached about a connector (deleted).
    pub fn forget_connector(&self, connector_id: &str) {
        self.cache.forget_connector(connector_id);
        self.pool.forget_connector(connector_id);
    }

    async fn prepare(
        &self,
        p: &Principal,
        reference: &str,
        credentials_name: Option<&str>,
        rejected: Option<&str>,
    ) -> Result<(Connector, Use), ToolsError> {
        let choice = credentials_name.map_or(Choice::Default, Choice::Named);
        let r = self
            .resolve_upstream_rejecting(p, reference, choice, Need::Mcp, rejected)
            .await?;
        let r = Arc::try_unwrap(r).unwrap_or_else(|shared| Resolved::clone(&shared));
        let pool_key = PoolKey {
            connector_id: r.connector.id.clone(),
            connector_version: r.connector.modified_at.clone(),
            credential: r.credential.clone(),
        };
        Ok((
            r.connector,
            Use {
                pool_key,
                target: r.target,
                oauth_bearer: r.oauth_bearer,
            },
        ))
    }

    /// Resolves a connector for a use (`need`), selects the credential and builds the upstream
    /// target with everything injected.
    pub async fn resolve_upstream(
        &self,
        p: &Principal,
        reference: &str,
        choice: Choice<'_>,
        need: Need,
    ) -> Result<Arc<Resolved>, ToolsError> {
        self.resolve_upstream_rejecting(p, reference, choice, need, None)
            .await
    }

    /// [`Self::resolve_upstream`] after the upstream refused the OAuth access token
    /// `rejected`: a refreshed token is injected (one refresh, whoever asks).
    pub async fn resolve_upstream_rejecting(
        &self,
        p: &Principal,
        reference: &str,
        choice: Choice<'_>,
        need: Need,
        rejected: Option<&str>,
    ) -> Result<Arc<Resolved>, ToolsError> {
        let cached = self.resolved.as_ref().filter(|_| rejected.is_none());
        let key = cached.map(|_| resolution_key(p, reference, choice, need));
        if let (Some(cache), Some(key)) = (cached, &key) {
            if let Some(hit) = cache.entries.get(key) {
                if cache.freshness.still_fresh(hit.0) {
                    // Per-request checks still run on a reused resolution.
                    if let Err(l) = self.limits.check_connector(&hit.1.connector.id) {
                        return Err(ToolsError::RateLimited(l.retry_after_secs));
                    }
                    self.breakers
                        .allow(&hit.1.connector.id)
                        .map_err(ToolsError::CircuitOpen)?;
                    return Ok(Arc::clone(&hit.1));
                }
            }
        }
        let stamp = cached.map(|c| c.freshness.stamp());
        // Boxed: the store reads behind a miss make a large future, and every hit would
        // otherwise carry (and move) its size.
        let resolved =
            Arc::new(Box::pin(self.resolve_fresh(p, reference, choice, need, rejected)).await?);
        if let (Some(cache), Some(key), Some(stamp)) = (cached, key, stamp) {
            if resolved.oauth_bearer.is_none() {
                cache
                    .entries
                    .insert(key, Arc::new((stamp, Arc::clone(&resolved))));
            }
        }
        Ok(resolved)
    }

    async fn resolve_fresh(
        &self,
        p: &Principal,
        reference: &str,
        choice: Choice<'_>,
        need: Need,
        rejected: Option<&str>,
    ) -> Result<Resolved, ToolsError> {
        let c = self.registry.resolve(p, reference).await?;
        match need {
            Need::Mcp if !c.supports_mcp => return Err(ToolsError::NotMcp),
            Need::Http if c.protocol != crate::registry::Protocol::Http => {
                return Err(ToolsError::NotHttp);
            }
            _ => {}
        }
        let blocked = self.registry.blocked_by(p, &c).await?;
        if !blocked.is_empty() {
            return Err(ToolsError::Deactivated(blocked));
        }
        if let Err(l) = self.limits.check_connector(&c.id) {
            return Err(ToolsError::RateLimited(l.retry_after_secs));
        }
        self.breakers
            .allow(&c.id)
            .map_err(ToolsError::CircuitOpen)?;
        let selected = self.credentials.select(p, &c, choice).await?;
        let mut oauth_bearer = None;
        let (credential, credential_secrets) = match (selected, choice) {
            (None, Choice::Named(name)) => {
                return Err(ToolsError::CredentialsNotFound(name.to_owned()));
            }
            (None, Choice::Id(_)) => {
                return Err(ToolsError::CredentialsNotFound(
                    "of this session".to_owned(),
                ));
            }
            (None, Choice::Default) if c.requires_credentials() => {
                return Err(ToolsError::CredentialsRequired);
            }
            (None, Choice::Default) => (CONNECTOR_CREDENTIAL.to_owned(), None),
            (Some(sel), _) if sel.authentication_type == "oauth2" => {
                let oauth = self.oauth.as_ref().ok_or(ToolsError::CredentialsUnusable(
                    "OAuth2 credentials cannot be used: OAuth is not configured",
                ))?;
                let token = oauth.bearer(&c, &sel, rejected).await?;
                let key = format!(
                    "{}@{}#{}",
                    sel.id,
                    sel.version,
                    crate::oauth::fingerprint(token.expose_secret())
                );
                let mut secrets = sel.secrets;
                secrets.tokens = None;
                secrets.oauth = None;
                secrets.bearer_token = Some(token.clone());
                oauth_bearer = Some(token);
                (key, Some(secrets))
            }
            (Some(sel), _) => (format!("{}@{}", sel.id, sel.version), Some(sel.secrets)),
        };
        let secrets = c.open_secrets(self.registry.vault())?;
        let target = upstream_target(&c, &secrets, credential_secrets.as_ref())
            .map_err(ToolsError::BadTarget)?;
        self.policy
            .check_url(&target.url)
            .map_err(|e| ToolsError::Refused(e.to_string()))?;
        Ok(Resolved {
            connector: c,
            target,
            credential,
            oauth_bearer,
        })
    }

    /// `tools/list`, following `nextCursor` to the end.
    async fn fetch_all(&self, u: &Use) -> Result<ToolsList, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut ttl_ms: Option<u64> = None;
        let mut public = true;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = match self
                .pool
                .request(&u.pool_key, &u.target, "tools/list", params)
                .await?
            {
                Ok(page) => page,
                Err(rpc) => return Err(McpError::Rpc(rpc)),
            };
            if let Some(items) = page.get("tools").and_then(Value::as_array) {
                tools.extend(items.iter().cloned());
            } else {
                return Err(McpError::Protocol(
                    "tools/list result has no `tools` array".into(),
                ));
            }
            if let Some(ms) = page.get("ttlMs").and_then(Value::as_u64) {
                ttl_ms = Some(ttl_ms.map_or(ms, |t| t.min(ms)));
            }
            public &= page.get("cacheScope").and_then(Value::as_str) == Some("public");
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => {
                    return Ok(ToolsList {
                        tools,
                        ttl: self.cache.ttl_for(ttl_ms),
                        public,
                        fetched_at: std::time::Instant::now(),
                    });
                }
            }
        }
        Err(McpError::Protocol(format!(
            "tools/list did not end after {MAX_PAGES} pages"
        )))
    }
}

/// Whether an upstream error means the upstream itself is failing (for the circuit breaker):
/// unreachable, timed out, a 5xx, or garbage — not an auth refusal or a JSON-RPC error.
fn upstream_failing(e: &McpError) -> bool {
    match e {
        McpError::Unreachable(_) | McpError::Timeout | McpError::Protocol(_) => true,
        McpError::Http { status, .. } => *status >= 500,
        McpError::SessionExpired | McpError::AuthRejected(_) | McpError::Rpc(_) => false,
    }
}

/// What a resolution depends on besides the store: the caller, the reference, the choice of
/// credential and the use.
fn resolution_key(p: &Principal, reference: &str, choice: Choice<'_>, need: Need) -> String {
    let (kind, value) = match choice {
        Choice::Default => ("d", ""),
        Choice::Named(n) => ("n", n),
        Choice::Id(id) => ("i", id),
    };
    let need = match need {
        Need::Mcp => "m",
        Need::Http => "h",
    };
    // Built by hand: this runs on every relayed request, and `format!` costs ten times more.
    let parts = [
        p.user_id.as_str(),
        &p.workspace_id,
        &p.org_id,
        if p.is_admin { "1" } else { "0" },
        reference,
        need,
        kind,
    ];
    let mut key =
        String::with_capacity(parts.iter().map(|s| s.len() + 1).sum::<usize>() + value.len());
    for part in parts {
        key.push_str(part);
        key.push('\u{1f}');
    }
    key.push_str(value);
    key
}
