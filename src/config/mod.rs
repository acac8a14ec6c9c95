//! Configuration: raw serde layers (defaults → TOML file → `SWITCHBOARD_*` env) validated once
//! into [`Config`]. Every error names the field (`store.url`) or variable it comes from.

mod raw;
mod sources;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

pub use raw::RawConfig;
pub use sources::env_name;

/// A configuration error, naming where it comes from.
#[derive(Debug, thiserror::Error)]
#[error("config `{path}`: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// The validated configuration used by every other module.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub store: StoreConfig,
    pub vault: VaultConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub max_body_bytes: usize,
    pub max_page_size: u32,
    pub limits: Limits,
    pub shutdown_grace: Duration,
    /// After SIGTERM, readiness answers 503 this long while requests are still served.
    pub drain_delay: Duration,
    pub upstream: UpstreamConfig,
    pub tools_cache: ToolsCacheConfig,
    /// Idle time after which a relayed SSE stream gets a keep-alive comment.
    pub gateway_keepalive: Duration,
    /// Origins allowed on `/mcp` (exact `scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// `Host`s accepted on `/mcp` (empty: any).
    pub allowed_hosts: Vec<String>,
    /// (per principal per second, burst, per connector per second, burst); 0 = off.
    pub rate_limits: (u32, u32, u32, u32),
    pub outbound: OutboundConfig,
    pub oauth: OAuthConfig,
    /// Distinct connectors labelled in metrics (the rest are `other`).
    pub max_connector_labels: usize,
    /// Connectors declared in the config file, upserted at start by the bootstrap admin.
    pub connectors: DeclaredConnectors,
    pub telemetry: TelemetryConfig,
    /// Non-fatal findings (e.g. an unknown `SWITCHBOARD_*` variable), reported at start-up.
    pub warnings: Vec<String>,
}

/// OpenTelemetry export settings.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

/// Limits beyond the JSON body size (every one configurable; safe defaults).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_relay_body_bytes: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_json_depth: usize,
    pub max_upstream_response_bytes: usize,
    pub max_sse_line_bytes: usize,
    pub max_streams_per_principal: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
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

/// The outbound policy (SSRF guard).
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub allow: Vec<String>,
    pub allow_http: bool,
}

#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The gateway's public base URL (no trailing `/`); `None`: the API listener's address.
    pub public_url: Option<url::Url>,
    pub return_urls: Vec<String>,
    pub refresh_skew: Duration,
    pub state_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    pub session_idle: Duration,
    pub max_sessions: u64,
    /// Consecutive failures that open a connector's breaker (0: off).
    pub breaker_failures: u32,
    pub breaker_open: Duration,
}

#[derive(Debug, Clone)]
pub struct ToolsCacheConfig {
    pub ttl: Duration,
    pub max_stale: Duration,
    pub max_entries: u64,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub max_connections: u32,
    /// How long a request waits for a store connection.
    pub acquire_timeout: Duration,
    /// SQLite: how long a write waits for the database lock.
    pub busy_timeout: Duration,
    /// Data-plane reads served from memory (0: every read asks the store).
    pub cache_ttl: Duration,
    /// Served from memory while the store is unreachable (0: never).
    pub cache_stale: Duration,
}

/// Which database holds the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite { path: PathBuf },
    Postgres { url: String, schema: Option<String> },
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub key: Option<SecretString>,
    pub key_file: PathBuf,
    pub verify_on_start: bool,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub bootstrap_key: Option<SecretString>,
    pub bootstrap_user: String,
    pub bootstrap_workspace: String,
    pub bootstrap_org: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    /// One access line per request.
    pub access: bool,
}

/// Connectors declared in the config file (`[[connectors]]`): create bodies (§5.1) with every
/// `${VAR}` replaced from the environment. `Debug` shows names only (values may be secrets).
#[derive(Clone, Default)]
pub struct DeclaredConnectors(pub Vec<serde_json::Map<String, serde_json::Value>>);

impl std::fmt::Debug for DeclaredConnectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|c| c.get("name").cloned()))
            .finish()
    }
}

impl DeclaredConnectors {
    fn interpolate(raw: &[toml::Table], env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut out = Vec::new();
        for (i, table) in raw.iter().enumerate() {
            let path = format!("connectors[{i}]");
            let json =
                serde_json::to_value(table).map_err(|e| ConfigError::new(&path, e.to_string()))?;
            let json = substitute(json, env).map_err(|m| ConfigError::new(&path, m))?;
            let serde_json::Value::Object(map) = json else {
                return Err(ConfigError::new(&path, "expected a table"));
            };
            if !map.get("name").is_some_and(serde_json::Value::is_string) {
                return Err(ConfigError::new(&path, "`name` is required"));
            }
            out.push(map);
        }
        Ok(Self(out))
    }
}

/// Replaces `${VAR}` in every string with the variable's value; an unset variable is an error.
fn substitute(v: serde_json::Value, env: &[(String, String)]) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| "unclosed `${` in a value".to_owned())?;
                let name = &after[..end];
                let value = env
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
                out.push_str(value);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| substitute(i, env))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| substitute(v, env).map(|v| (k, v)))
                .collect::<Result<_, _>>()?,
        ),
        other => other,
    })
}

/// The default config file, relative to the working directory.
pub const DEFAULT_FILE: &str = "config/switchboard.toml";

impl Config {
    /// Loads `file` (if `None`, the default file when it exists) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (path, required) = match file {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
            Err(e) => {
                return Err(ConfigError::new(
                    &path.display().to_string(),
                    format!("cannot read: {e}"),
                ));
            }
        };
        let origin = path.display().to_string();
        Self::from_sources(text.as_deref().map(|t| (origin.as_str(), t)), &env)
    }

    /// Builds a config from TOML text (with its origin, for errors) and env pairs.
    pub fn from_sources(
        file: Option<(&str, &str)>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let (raw, warnings) = sources::merge(file, env)?;
        let declared = DeclaredConnectors::interpolate(&raw.connectors, env)?;
        let mut config = Self::validate(raw)?;
        config.warnings = warnings;
        config.connectors = declared;
        if config.telemetry.otlp_endpoint.is_some() && !cfg!(feature = "otel") {
            config.warnings.push(
                "telemetry.otlp_endpoint is set but this build has no `otel` feature: no spans are exported"
                    .into(),
            );
        }
        Ok(config)
    }

    pub fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            warnings: Vec::new(),
            connectors: DeclaredConnectors::default(),
            telemetry: TelemetryConfig {
                otlp_endpoint: non_empty(&raw.telemetry.otlp_endpoint),
                service_name: non_empty(&raw.telemetry.service_name)
                    .unwrap_or_else(|| "switchboard".into()),
            },
            api_listen: socket_addr("api.listen", &raw.api.listen)?,
            admin_listen: socket_addr("admin.listen", &raw.admin.listen)?,
            store: StoreConfig {
                backend: store_backend(&raw.store.url, &raw.store.postgres_schema)?,
                max_connections: ranged(
                    "store.max_connections",
                    raw.store.max_connections,
                    1,
                    1000,
                )?,
                acquire_timeout: Duration::from_millis(ranged(
                    "store.acquire_timeout_ms",
                    raw.store.acquire_timeout_ms,
                    100,
                    600_000,
                )?),
                busy_timeout: Duration::from_millis(ranged(
                    "store.busy_timeout_ms",
                    raw.store.busy_timeout_ms,
                    0,
                    600_000,
                )?),
                cache_ttl: Duration::from_secs(ranged(
                    "store.cache_ttl_seconds",
                    raw.store.cache_ttl_seconds,
                    0,
                    3_600,
                )?),
                cache_stale: Duration::from_secs(ranged(
                    "store.cache_stale_seconds",
                    raw.store.cache_stale_seconds,
                    0,
                    86_400,
                )?),
            },
            vault: VaultConfig {
                key: non_empty(&raw.vault.key).map(SecretString::from),
                key_file: non_empty_path("vault.key_file", &raw.vault.key_file)?,
                verify_on_start: raw.vault.verify_on_start,
            },
            auth: AuthConfig {
                bootstrap_key: match non_empty(&raw.auth.bootstrap_key) {
                    Some(k) if k.len() < 16 => {
                        return Err(ConfigError::new(
                            "auth.bootstrap_key",
                            "must be at least 16 characters",
                        ));
                    }
                    k => k.map(SecretString::from),
                },
                bootstrap_user: identity_part("auth.bootstrap_user", &raw.auth.bootstrap_user)?,
                bootstrap_workspace: identity_part(
                    "auth.bootstrap_workspace",
                    &raw.auth.bootstrap_workspace,
                )?,
                bootstrap_org: identity_part("auth.bootstrap_org", &raw.auth.bootstrap_org)?,
            },
            log: LogConfig {
                format: match raw.log.format.as_str() {
                    "pretty" => LogFormat::Pretty,
                    "json" => LogFormat::Json,
                    other => {
                        return Err(ConfigError::new(
                            "log.format",
                            format!("must be `pretty` or `json`, got `{other}`"),
                        ));
                    }
                },
                level: match raw.log.level.trim() {
                    "" => return Err(ConfigError::new("log.level", "must not be empty")),
                    l => l.to_owned(),
                },
                access: raw.log.access,
            },
            max_connector_labels: ranged(
                "metrics.max_connector_labels",
                raw.metrics.max_connector_labels,
                0,
                100_000,
            )?,
            max_body_bytes: ranged(
                "limits.max_body_bytes",
                raw.limits.max_body_bytes,
                1024,
                1 << 30,
            )?,
            max_page_size: ranged("limits.max_page_size", raw.limits.max_page_size, 1, 100_000)?,
            limits: Limits {
                max_relay_body_bytes: ranged(
                    "limits.max_relay_body_bytes",
                    raw.limits.max_relay_body_bytes,
                    1024,
                    1 << 34,
                )?,
                max_headers: ranged("limits.max_headers", raw.limits.max_headers, 8, 100)?,
                max_header_bytes: ranged(
                    "limits.max_header_bytes",
                    raw.limits.max_header_bytes,
                    1024,
                    256 * 1024,
                )?,
                max_json_depth: ranged("limits.max_json_depth", raw.limits.max_json_depth, 2, 128)?,
                max_upstream_response_bytes: ranged(
                    "limits.max_upstream_response_bytes",
                    raw.limits.max_upstream_response_bytes,
                    1024,
                    1 << 32,
                )?,
                max_sse_line_bytes: ranged(
                    "limits.max_sse_line_bytes",
                    raw.limits.max_sse_line_bytes,
                    256,
                    1 << 30,
                )?,
                max_streams_per_principal: ranged(
                    "limits.max_streams_per_principal",
                    raw.limits.max_streams_per_principal,
                    1,
                    100_000,
                )?,
            },
            shutdown_grace: Duration::from_secs(ranged(
                "shutdown.grace_seconds",
                raw.shutdown.grace_seconds,
                0,
                3600,
            )?),
            drain_delay: Duration::from_millis(ranged(
                "shutdown.drain_delay_ms",
                raw.shutdown.drain_delay_ms,
                0,
                300_000,
            )?),
            upstream: UpstreamConfig {
                connect_timeout: Duration::from_millis(ranged(
                    "upstream.connect_timeout_ms",
                    raw.upstream.connect_timeout_ms,
                    1,
                    600_000,
                )?),
                call_timeout: Duration::from_millis(ranged(
                    "upstream.call_timeout_ms",
                    raw.upstream.call_timeout_ms,
                    1,
                    3_600_000,
                )?),
                session_idle: Duration::from_secs(ranged(
                    "upstream.session_idle_seconds",
                    raw.upstream.session_idle_seconds,
                    1,
                    86_400,
                )?),
                max_sessions: ranged(
                    "upstream.max_sessions",
                    raw.upstream.max_sessions,
                    1,
                    10_000_000,
                )?,
                breaker_failures: ranged(
                    "upstream.breaker_failures",
                    raw.upstream.breaker_failures,
                    0,
                    1_000_000,
                )?,
                breaker_open: Duration::from_secs(ranged(
                    "upstream.breaker_open_seconds",
                    raw.upstream.breaker_open_seconds,
                    1,
                    86_400,
                )?),
            },
            gateway_keepalive: Duration::from_secs(ranged(
                "gateway.keepalive_seconds",
                raw.gateway.keepalive_seconds,
                1,
                3600,
            )?),
            allowed_origins: raw
                .gateway
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
            allowed_hosts: raw
                .gateway
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            rate_limits: (
                ranged(
                    "rate_limits.per_principal_per_second",
                    raw.rate_limits.per_principal_per_second,
                    0,
                    1_000_000,
                )?,
                ranged(
                    "rate_limits.principal_burst",
                    raw.rate_limits.principal_burst,
                    0,
                    1_000_000,
                )?,
                ranged(
                    "rate_limits.per_connector_per_second",
                    raw.rate_limits.per_connector_per_second,
                    0,
                    1_000_000,
                )?,
                ranged(
                    "rate_limits.connector_burst",
                    raw.rate_limits.connector_burst,
                    0,
                    1_000_000,
                )?,
            ),
            tools_cache: ToolsCacheConfig {
                ttl: Duration::from_secs(ranged(
                    "tools_cache.ttl_seconds",
                    raw.tools_cache.ttl_seconds,
                    0,
                    86_400,
                )?),
                max_stale: Duration::from_secs(ranged(
                    "tools_cache.max_stale_seconds",
                    raw.tools_cache.max_stale_seconds,
                    0,
                    7 * 86_400,
                )?),
                max_entries: ranged(
                    "tools_cache.max_entries",
                    raw.tools_cache.max_entries,
                    1,
                    10_000_000,
                )?,
            },
            outbound: OutboundConfig {
                allow: {
                    let allow: Vec<String> = raw
                        .outbound
                        .allow
                        .iter()
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect();
                    crate::net::NetPolicy::new(&allow, raw.outbound.allow_http)
                        .map_err(|e| ConfigError::new("outbound.allow", e))?;
                    allow
                },
                allow_http: raw.outbound.allow_http,
            },
            oauth: OAuthConfig {
                public_url: match non_empty(&raw.oauth.public_url) {
                    None => None,
                    Some(u) => Some(
                        url::Url::parse(u.trim_end_matches('/'))
                            .ok()
                            .filter(|u| matches!(u.scheme(), "http" | "https"))
                            .ok_or_else(|| {
                                ConfigError::new("oauth.public_url", "expected an http(s) URL")
                            })?,
                    ),
                },
                return_urls: raw
                    .oauth
                    .return_urls
                    .iter()
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect(),
                refresh_skew: Duration::from_secs(ranged(
                    "oauth.refresh_skew_seconds",
                    raw.oauth.refresh_skew_seconds,
                    0,
                    86_400,
                )?),
                state_ttl: Duration::from_secs(ranged(
                    "oauth.state_ttl_seconds",
                    raw.oauth.state_ttl_seconds,
                    1,
                    86_400,
                )?),
            },
        })
    }
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn non_empty_path(path: &str, value: &str) -> Result<PathBuf, ConfigError> {
    non_empty(value)
        .map(PathBuf::from)
        .ok_or_else(|| ConfigError::new(path, "must not be empty"))
}

fn socket_addr(path: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::new(
            path,
            format!("expected IP:PORT such as 127.0.0.1:8080, got `{value}`"),
        )
    })
}

fn ranged<T: TryFrom<i64>>(path: &str, value: i64, min: i64, max: i64) -> Result<T, ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(ConfigError::new(
            path,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    T::try_from(value).map_err(|_| ConfigError::new(path, "out of range"))
}

fn identity_part(path: &str, value: &str) -> Result<String, ConfigError> {
    crate::identity::validate_identity_part(value).map_err(|m| ConfigError::new(path, m))
}

fn store_backend(url: &str, schema: &str) -> Result<StoreBackend, ConfigError> {
    let url = url.trim();
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(ConfigError::new(
                "store.url",
                "a SQLite store needs a file path, e.g. sqlite://data/switchboard.db",
            ));
        }
        if !schema.trim().is_empty() {
            return Err(ConfigError::new(
                "store.postgres_schema",
                "only valid with a postgres:// store.url",
            ));
        }
        return Ok(StoreBackend::Sqlite {
            path: PathBuf::from(path),
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let schema = non_empty(schema);
        if let Some(s) = &schema {
            let ok = s.len() <= 63
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(ConfigError::new(
                    "store.postgres_schema",
                    "must be an identifier: letters, digits and `_`, not starting with a digit, ≤63 characters",
                ));
            }
        }
        return Ok(StoreBackend::Postgres {
            url: url.to_owned(),
            schema,
        });
    }
    Err(ConfigError::new(
        "store.url",
        "must start with sqlite:// or postgres://",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_shipped_file_is_valid_and_uses_sqlite() {
        let text = include_str!("../../config/switchboard.toml");
        let c = Config::from_sources(Some(("switchboard.toml", text)), &[]).unwrap();
        assert!(matches!(c.store.backend, StoreBackend::Sqlite { .. }));
        assert_eq!(c.api_listen.port(), 8080);
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        let c = Config::from_sources(
            Some(("f", "[api]\nlisten = \"127.0.0.1:1\"\n")),
            &env(&[
                ("SWITCHBOARD_API_LISTEN", "127.0.0.1:2"),
                ("SWITCHBOARD_VAULT_KEY_FILE", "/tmp/k"),
                ("SWITCHBOARD_LIMITS_MAX_PAGE_SIZE", "50"),
                ("SWITCHBOARD_VAULT_VERIFY_ON_START", "false"),
                ("SWITCHBOARD_TEST_POSTGRES_URL", "ignored"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.api_listen.port(), 2);
        assert_eq!(c.vault.key_file, PathBuf::from("/tmp/k"));
        assert_eq!(c.max_page_size, 50);
        let c2 = Config::from_sources(
            None,
            &env(&[("SWITCHBOARD_GATEWAY_ALLOWED_HOSTS", "a.test, B.test")]),
        )
        .unwrap();
        assert_eq!(c2.allowed_hosts, ["a.test", "b.test"]);
        assert!(!c.vault.verify_on_start);
    }

    #[test]
    fn errors_name_the_field() {
        type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (Some("[api]\nlisen = \"x\"\n"), &[], "api.lisen"),
            (Some("[api]\nlisten = 5\n"), &[], "api.listen"),
            (Some("[api]\nlisten = \"nope\"\n"), &[], "api.listen"),
            (None, &[("SWITCHBOARD_STORE_URL", "mysql://x")], "store.url"),
            (
                None,
                &[("SWITCHBOARD_LIMITS_MAX_BODY_BYTES", "big")],
                "SWITCHBOARD_LIMITS_MAX_BODY_BYTES",
            ),
            (None, &[("SWITCHBOARD_LOG_FORMAT", "xml")], "log.format"),
            (
                None,
                &[("SWITCHBOARD_AUTH_BOOTSTRAP_KEY", "short")],
                "auth.bootstrap_key",
            ),
            (Some("not toml ["), &[], "f"),
        ];
        for (file, vars, path) in cases {
            let err = Config::from_sources(file.map(|t| ("f", t)), &env(vars)).unwrap_err();
            assert_eq!(err.path, *path, "{err}");
        }
    }

    #[test]
    fn unknown_env_vars_are_warnings() {
        let c = Config::from_sources(None, &env(&[("SWITCHBOARD_NOPE", "1")])).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("SWITCHBOARD_NOPE"));
    }

    #[test]
    fn env_names_follow_paths() {
        assert_eq!(env_name("vault.key_file"), "SWITCHBOARD_VAULT_KEY_FILE");
    }
}
