//! `App::build(Config) -> Bound`, used by `main` and by every test: loads the vault keys,
//! opens the store (running migrations), checks every sealed secret opens, bootstraps the
//! admin key, binds the api and admin listeners, and drains gracefully on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, Readiness};
use crate::api::{self, AppState};
use crate::cache::ToolsCache;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::identity::{ApiKeys, Principal};
use crate::mcp::{self, ClientSettings, SessionPool};
use crate::registry::{Registry, RegistryError};
use crate::store::{SqlStore, Store, StoreError};
use crate::tools::ToolsService;
use crate::vault::{self, KeySource, VaultError};

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{}", unreadable_message(.0))]
    UnreadableSecrets(Vec<(String, String)>),
    #[error("checking stored secrets: {0}")]
    Registry(#[from] RegistryError),
    #[error("cannot build the upstream HTTP client: {0}")]
    HttpClient(String),
    #[error("{0}")]
    Declared(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn unreadable_message(records: &[(String, String)]) -> String {
    let list: Vec<String> = records
        .iter()
        .map(|(r, why)| format!("{r} ({why})"))
        .collect();
    format!(
        "{} stored secret(s) cannot be opened with the loaded vault keys — is SWITCHBOARD_VAULT_KEY \
         (or the key file) the one they were sealed with? Refusing to serve them. Records: {}",
        records.len(),
        list.join("; ")
    )
}

/// Builds the application.
#[derive(Debug)]
pub struct App;

impl App {
    pub async fn build(config: Config) -> Result<Bound, BuildError> {
        let config = Arc::new(config);
        crate::metrics::set_connector_label_cap(config.max_connector_labels);
        crate::limits::set_upstream(
            config.limits.max_upstream_response_bytes,
            config.limits.max_sse_line_bytes,
        );
        for warning in &config.warnings {
            tracing::warn!("config: {warning}");
        }
        let (vault, source) =
            vault::load_or_create(config.vault.key.as_ref(), &config.vault.key_file)?;
        match &source {
            KeySource::Generated(path) => tracing::warn!(
                key_file = %path.display(),
                "NO VAULT KEY CONFIGURED: generated a new one into the key file. This is for \
                 development only — production must supply its own key via SWITCHBOARD_VAULT_KEY \
                 and keep it safe; losing it loses every stored secret"
            ),
            KeySource::File(path) => {
                tracing::info!(key_file = %path.display(), key_id = vault.primary_key_id(), "vault key loaded from file")
            }
            KeySource::Configured => tracing::info!(
                key_id = vault.primary_key_id(),
                "vault key loaded from configuration"
            ),
        }
        let vault = Arc::new(vault);

        let sql = SqlStore::connect(&config.store).await?;
        tracing::info!(backend = ?sql.backend(), "store ready, migrations applied");
        let cached = crate::store::CachedStore::new(
            Arc::new(sql.clone()),
            config.store.cache_ttl,
            config.store.cache_stale,
        );
        let cache_state = cached.state();
        let store: Arc<dyn Store> = Arc::new(cached);

        let registry = Registry::new(store.clone(), vault.clone());
        if config.vault.verify_on_start {
            let unreadable = registry.unreadable_secrets().await?;
            if !unreadable.is_empty() {
                sql.close().await;
                return Err(BuildError::UnreadableSecrets(unreadable));
            }
        }

        let keys = ApiKeys::new(store.clone());
        let admin = Principal {
            user_id: config.auth.bootstrap_user.clone(),
            workspace_id: config.auth.bootstrap_workspace.clone(),
            org_id: config.auth.bootstrap_org.clone(),
            is_admin: true,
        };
        let bootstrap_key = keys
            .bootstrap(config.auth.bootstrap_key.as_ref(), &admin)
            .await?;
        if !config.connectors.0.is_empty() {
            let n = api::declared::apply(&registry, &admin, &config.connectors.0)
                .await
                .map_err(BuildError::Declared)?;
            tracing::info!(count = n, "declared connectors applied");
        }

        let api_listener = bind("api", config.api_listen).await?;
        let admin_listener = bind("admin", config.admin_listen).await?;
        let api_addr = local_addr("api", config.api_listen, &api_listener)?;
        let admin_addr = local_addr("admin", config.admin_listen, &admin_listener)?;

        let readiness = Readiness::new(store.clone());
        let (stop_tx, _) = watch::channel(false);
        // Draining: the API listener stops accepting and relayed streams end; the admin
        // listener keeps answering (`/readyz` 503) until the drain is over.
        let (drain_tx, drain_rx) = watch::channel(false);
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let credentials = Credentials::new(store.clone(), vault.clone(), registry.clone());
        let (pp, pb, cp, cb) = config.rate_limits;
        let limits = Arc::new(crate::ratelimit::RateLimits::new(pp, pb, cp, cb));
        let policy = crate::net::NetPolicy::new(&config.outbound.allow, config.outbound.allow_http)
            .map_err(BuildError::HttpClient)?;
        let oauth = crate::oauth::OAuth::new(
            crate::oauth::HttpJson::new(
                policy.clone(),
                config.upstream.connect_timeout,
                config
                    .upstream
                    .call_timeout
                    .min(std::time::Duration::from_secs(30)),
            )
            .map_err(BuildError::HttpClient)?,
            vault.clone(),
            store.clone(),
            registry.clone(),
            credentials.clone(),
            config.oauth.clone(),
            &format!("http://{api_addr}"),
            config
                .upstream
                .call_timeout
                .min(std::time::Duration::from_secs(30)),
        );
        let events = crate::events::Events::new(
            store.clone(),
            crate::events::channel_for(match &config.store.backend {
                crate::config::StoreBackend::Postgres { schema, .. } => schema.as_deref(),
                crate::config::StoreBackend::Sqlite { .. } => None,
            }),
        );
        cache_state.publish_on(events.channel().to_owned(), events.store_changed_payload());
        let tools = tools_service(
            &config,
            registry.clone(),
            credentials.clone(),
            &policy,
            events.clone(),
        )?
        .with_limits(limits.clone())
        .with_policy(policy.clone())
        .with_breakers(crate::breaker::Breakers::new(
            config.upstream.breaker_failures,
            config.upstream.breaker_open,
        ))
        .with_oauth(oauth.clone())
        .with_resolution_cache(cache_state.clone());
        let gateway = crate::gateway::Gateway::new(
            config.upstream.connect_timeout,
            config.upstream.call_timeout,
            config.gateway_keepalive,
            config.max_body_bytes,
            config.upstream.session_idle,
            config.upstream.max_sessions,
            &policy,
        )
        .map_err(BuildError::HttpClient)?
        .with_draining(drain_rx.clone())
        .with_limits(config.limits.clone())
        .with_allow_lists(config.allowed_origins.clone(), config.allowed_hosts.clone());
        let sessions: admin::SessionCount = {
            let tools = tools.clone();
            Arc::new(move || tools.pool().open_sessions())
        };
        let state = AppState::new(crate::api::Services {
            limits,
            gateway,
            config: config.clone(),
            registry,
            keys,
            tools,
            credentials,
            oauth,
        });
        if let crate::config::StoreBackend::Postgres { url, .. } = &config.store.backend {
            // Detached: it ends when the drain starts.
            drop(events.listen(
                url.clone(),
                state.tools.cache().clone(),
                cache_state,
                drain_rx.clone(),
            ));
        }
        let api_task = serve(api_listener, api::router(state), drain_rx);
        let admin_task = serve(
            admin_listener,
            admin::router(readiness.clone(), sessions),
            admin_stop_rx,
        );
        tracing::info!(api = %api_addr, admin = %admin_addr, "switchboard listening");
        Ok(Bound {
            api_addr,
            admin_addr,
            bootstrap_key,
            stop: stop_tx,
            drain: drain_tx,
            admin_stop: admin_stop_tx,
            api_task,
            admin_task,
            readiness,
            store: sql,
            config,
        })
    }
}

fn tools_service(
    config: &Config,
    registry: Registry,
    credentials: Credentials,
    policy: &crate::net::NetPolicy,
    events: crate::events::Events,
) -> Result<ToolsService, BuildError> {
    let settings = ClientSettings {
        connect_timeout: config.upstream.connect_timeout,
        call_timeout: config.upstream.call_timeout,
        client_name: "switchboard".into(),
        client_version: env!("CARGO_PKG_VERSION").into(),
    };
    let http = mcp::http_client(&settings, policy).map_err(BuildError::HttpClient)?;
    let cache = ToolsCache::new(
        config.tools_cache.ttl,
        config.tools_cache.max_stale,
        config.tools_cache.max_entries,
    );
    let on_notification = {
        let (cache, events) = (cache.clone(), events.clone());
        move |key: &mcp::PoolKey, method: &str| {
            if method == "notifications/tools/list_changed" {
                tracing::debug!(connector = %key.connector_id, "upstream tools changed");
                cache.tools_changed(&key.connector_id);
                events.tools_changed(&key.connector_id);
            }
        }
    };
    let pool = SessionPool::new(
        http,
        settings,
        config.upstream.session_idle,
        config.upstream.max_sessions,
        on_notification,
    );
    Ok(ToolsService::new(registry, credentials, pool, cache).with_events(events))
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, BuildError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BuildError::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    addr: SocketAddr,
    l: &TcpListener,
) -> Result<SocketAddr, BuildError> {
    l.local_addr()
        .map_err(|source| BuildError::Bind { what, addr, source })
}

/// Serves HTTP/1.1 on `listener` until `stop` turns `true`, then stops accepting and waits for
/// the open connections to finish what they are answering (decision 015: hyper's HTTP/1
/// connections directly, not `axum::serve`, whose HTTP/1-or-2 detection doubles each
/// connection's read buffer).
fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    tokio::spawn(async move {
        let builder = hyper::server::conn::http1::Builder::new();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                },
                _ = stopped(&mut stop) => break,
            };
            // Small JSON-RPC answers and SSE events are written as separate small segments:
            // without TCP_NODELAY, Nagle's algorithm holds each behind the peer's delayed ACK
            // (~40 ms).
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY could not be set");
            }
            let connection = builder
                .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()));
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
    })
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A failed `accept`: a connection that went away before it was taken is nothing; anything
/// else (out of file descriptors, say) is logged and waited out for a moment rather than
/// retried in a hot loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// A running application: its bound addresses and its shutdown.
#[derive(Debug)]
pub struct Bound {
    api_addr: SocketAddr,
    admin_addr: SocketAddr,
    bootstrap_key: Option<SecretString>,
    stop: watch::Sender<bool>,
    drain: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    api_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    readiness: Readiness,
    store: SqlStore,
    config: Arc<Config>,
}

/// Triggers a graceful shutdown from elsewhere (a signal handler, a test).
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Bound {
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bootstrap admin key, when this start generated one (print it once).
    pub fn bootstrap_key(&self) -> Option<&SecretString> {
        self.bootstrap_key.as_ref()
    }

    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.stop.clone())
    }

    /// Serves until a shutdown is triggered, then drains: readiness goes 503, listeners stop
    /// accepting, in-flight requests get `shutdown.grace_seconds` to finish.
    pub async fn run_until_stopped(self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
        self.drain().await;
    }

    /// Triggers shutdown and drains (tests, restarts).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.drain().await;
    }

    /// Readiness turns 503 first, and requests keep being served for `shutdown.drain_delay_ms`
    /// (load balancers see the 503 and stop sending); then the API listener stops accepting,
    /// idle connections close, listening SSE streams end at an event boundary and in-flight
    /// requests get `shutdown.grace_seconds`; then the admin listener stops.
    async fn drain(self) {
        self.readiness.start_draining();
        tracing::info!(delay = ?self.config.drain_delay, grace = ?self.config.shutdown_grace, "draining");
        tokio::time::sleep(self.config.drain_delay).await;
        let _ = self.drain.send(true);
        let mut api = self.api_task;
        if tokio::time::timeout(self.config.shutdown_grace, &mut api)
            .await
            .is_err()
        {
            tracing::warn!("grace period over; closing remaining connections");
            api.abort();
        }
        let _ = self.admin_stop.send(true);
        let mut admin = self.admin_task;
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut admin)
            .await
            .is_err()
        {
            admin.abort();
        }
        // Closing waits for connections to come back; never longer than a moment.
        if tokio::time::timeout(std::time::Duration::from_secs(3), self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("store connections did not close in time");
        }
        tracing::info!("stopped");
    }
}
