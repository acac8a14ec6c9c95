//! The raw configuration as written in `config/switchboard.toml`: plain serde types with a
//! default for every field. Empty strings mean "not set". Validation happens in `super`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub api: RawListener,
    pub admin: RawListener,
    pub store: RawStore,
    pub vault: RawVault,
    pub auth: RawAuth,
    pub log: RawLog,
    pub limits: RawLimits,
    pub shutdown: RawShutdown,
    pub upstream: RawUpstream,
    pub tools_cache: RawToolsCache,
    pub gateway: RawGateway,
    pub rate_limits: RawRateLimits,
    pub outbound: RawOutbound,
    pub oauth: RawOAuth,
    pub metrics: RawMetrics,
    pub telemetry: RawTelemetry,
    /// Connectors declared in the file (`[[connectors]]`), upserted at start.
    pub connectors: Vec<toml::Table>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            api: RawListener {
                listen: "127.0.0.1:8080".into(),
            },
            admin: RawListener {
                listen: "127.0.0.1:9090".into(),
            },
            store: RawStore::default(),
            vault: RawVault::default(),
            auth: RawAuth::default(),
            log: RawLog::default(),
            limits: RawLimits::default(),
            shutdown: RawShutdown::default(),
            upstream: RawUpstream::default(),
            tools_cache: RawToolsCache::default(),
            gateway: RawGateway::default(),
            rate_limits: RawRateLimits::default(),
            outbound: RawOutbound::default(),
            oauth: RawOAuth::default(),
            metrics: RawMetrics::default(),
            telemetry: RawTelemetry::default(),
            connectors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawListener {
    pub listen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub url: String,
    /// PostgreSQL only: schema to use (created if missing). Empty = the server's default.
    pub postgres_schema: String,
    pub max_connections: i64,
    /// How long a request waits for a store connection before answering 503.
    pub acquire_timeout_ms: i64,
    /// SQLite only: how long a write waits for the database lock before answering 503.
    pub busy_timeout_ms: i64,
    /// How long data-plane reads (API keys, connectors, credentials) are served from memory
    /// without asking the store; changes made through any replica invalidate them at once.
    pub cache_ttl_seconds: i64,
    /// While the store is unreachable, what was read from it this recently keeps serving.
    pub cache_stale_seconds: i64,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: "sqlite://data/switchboard.db".into(),
            postgres_schema: String::new(),
            max_connections: 8,
            acquire_timeout_ms: 3_000,
            busy_timeout_ms: 5_000,
            cache_ttl_seconds: 10,
            cache_stale_seconds: 900,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawVault {
    /// Key list `[kid:]base64key[,…]`, first is primary. Prefer the env var.
    pub key: String,
    /// Read when `key` is empty; generated on a first start when missing.
    pub key_file: String,
    /// Refuse to start when a stored secret cannot be opened with the loaded keys.
    pub verify_on_start: bool,
}

impl Default for RawVault {
    fn default() -> Self {
        Self {
            key: String::new(),
            key_file: "data/vault.key".into(),
            verify_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAuth {
    /// API key for the bootstrap admin; generated and printed once when empty and the
    /// store has no key yet.
    pub bootstrap_key: String,
    pub bootstrap_user: String,
    pub bootstrap_workspace: String,
    pub bootstrap_org: String,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            bootstrap_key: String::new(),
            bootstrap_user: "admin".into(),
            bootstrap_workspace: "default".into(),
            bootstrap_org: "default".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    /// `pretty` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `switchboard=debug,info`.
    pub level: String,
    /// One line per request (plane, route, connector, method, status, duration, request id).
    pub access: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "pretty".into(),
            level: "info".into(),
            access: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: i64,
    pub max_page_size: i64,
    /// Request bodies relayed by `/http` (streamed, so larger than JSON bodies).
    pub max_relay_body_bytes: i64,
    /// Request header count and total size (name + value bytes).
    pub max_headers: i64,
    pub max_header_bytes: i64,
    /// Nesting of arrays/objects in JSON request bodies.
    pub max_json_depth: i64,
    /// Upstream answers read into memory (JSON bodies, SSE events) and upstream SSE lines.
    pub max_upstream_response_bytes: i64,
    pub max_sse_line_bytes: i64,
    /// Listening SSE streams (`GET /mcp`) open at once per principal.
    pub max_streams_per_principal: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_page_size: 1000,
            max_relay_body_bytes: 16 * 1024 * 1024,
            max_headers: 64,
            max_header_bytes: 32 * 1024,
            max_json_depth: 64,
            max_upstream_response_bytes: 16 * 1024 * 1024,
            max_sse_line_bytes: 1024 * 1024,
            max_streams_per_principal: 32,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawShutdown {
    pub grace_seconds: i64,
    /// After SIGTERM, `/readyz` answers 503 this long before the listener closes.
    pub drain_delay_ms: i64,
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self {
            grace_seconds: 30,
            drain_delay_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawUpstream {
    pub connect_timeout_ms: i64,
    /// Upper bound for one upstream request (including reading its whole answer).
    pub call_timeout_ms: i64,
    /// Pooled upstream sessions unused this long are closed.
    pub session_idle_seconds: i64,
    pub max_sessions: i64,
    /// Consecutive upstream failures (unreachable, timeout, 5xx) that open a connector's
    /// circuit breaker (0: no breaker), and how long it stays open before one probe.
    pub breaker_failures: i64,
    pub breaker_open_seconds: i64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            call_timeout_ms: 120_000,
            session_idle_seconds: 300,
            breaker_failures: 5,
            breaker_open_seconds: 30,
            max_sessions: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawToolsCache {
    /// Freshness of a cached `tools/list` when the upstream gives no `ttlMs`.
    pub ttl_seconds: i64,
    /// How long the last good list may be served while the upstream is down.
    pub max_stale_seconds: i64,
    pub max_entries: i64,
}

impl Default for RawToolsCache {
    fn default() -> Self {
        Self {
            ttl_seconds: 300,
            max_stale_seconds: 3_600,
            max_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawGateway {
    /// An SSE comment is sent on a relayed stream idle this long.
    pub keepalive_seconds: i64,
    /// Browser origins allowed to call `/mcp` (a request with any other `Origin` is refused,
    /// against DNS rebinding). Requests without `Origin` (SDKs, servers) are not affected.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted on `/mcp` (e.g. `gateway.example.com`, `127.0.0.1:8080`);
    /// empty accepts any. A sidecar on loopback should list its own address.
    pub allowed_hosts: Vec<String>,
}

impl Default for RawGateway {
    fn default() -> Self {
        Self {
            keepalive_seconds: 15,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Requests per second (0: no limit) and bursts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRateLimits {
    pub per_principal_per_second: i64,
    pub principal_burst: i64,
    pub per_connector_per_second: i64,
    pub connector_burst: i64,
}

/// The outbound policy (SSRF guard) for every URL the gateway fetches.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOutbound {
    /// Networks (`10.0.0.0/8`, `127.0.0.1`, `::1`) and host names exempt from the refusal of
    /// loopback, private, link-local and other non-public addresses.
    pub allow: Vec<String>,
    /// Whether plain `http://` URLs are allowed (besides `https://`).
    pub allow_http: bool,
}

/// OAuth 2 for upstream connectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOAuth {
    /// The gateway's public base URL as browsers reach it (the callback is
    /// `<public_url>/oauth/callback`). Empty: the API listener's address.
    pub public_url: String,
    /// `app_return_url` prefixes the callback may redirect to; any other return URL gets a
    /// success page instead of a redirect.
    pub return_urls: Vec<String>,
    /// Access tokens are refreshed this many seconds before they expire.
    pub refresh_skew_seconds: i64,
    /// How long an authorization URL (its state) stays valid.
    pub state_ttl_seconds: i64,
}

impl Default for RawOAuth {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            return_urls: Vec::new(),
            refresh_skew_seconds: 60,
            state_ttl_seconds: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMetrics {
    /// Distinct connectors labelled by id in metrics; further ones are folded into `other`.
    pub max_connector_labels: i64,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            max_connector_labels: 100,
        }
    }
}

/// OpenTelemetry export (needs the `otel` cargo feature).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTelemetry {
    /// OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`. Empty: no export.
    pub otlp_endpoint: String,
    pub service_name: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "switchboard".into(),
        }
    }
}
