//! Every Prometheus metric of the gateway, defined here and nowhere else, served on the admin
//! listener at `/metrics` (text exposition format).
//!
//! Labels are bounded by construction: planes, route templates (never raw paths), HTTP methods
//! and statuses, JSON-RPC methods from a fixed list (others are `other`), connector ids up to
//! `metrics.max_connector_labels` distinct ones (later ones are `other`), and fixed outcome
//! words. A user, a session, a token or a tool name is never a label.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets (seconds): sub-millisecond gateway work up to long tool calls.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// JSON-RPC methods that may appear as a label value.
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "batch",
    "none",
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub mcp_requests: IntCounterVec,
    pub mcp_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub gateway_errors: IntCounterVec,
    pub tools_cache: IntCounterVec,
    pub oauth_refresh: IntCounterVec,
    pub open_streams: IntGaugeVec,
    pub upstream_sessions: IntGauge,
    pub vault_operations: IntCounterVec,
    /// Reads answered from memory because the store was unreachable.
    pub store_fallback_reads: IntCounter,
    connectors: ConnectorLabels,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("valid histogram definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let open_streams = IntGaugeVec::new(
            Opts::new(
                "switchboard_open_streams",
                "SSE streams currently relayed to clients",
            ),
            &["plane"],
        )
        .expect("valid gauge definition");
        r.register(Box::new(open_streams.clone()))
            .expect("metric registered once");
        let upstream_sessions = IntGauge::new(
            "switchboard_upstream_sessions",
            "Pooled upstream MCP sessions",
        )
        .expect("valid gauge definition");
        r.register(Box::new(upstream_sessions.clone()))
            .expect("metric registered once");
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = r.register(Box::new(pc)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        Self {
            http_requests: counter(
                &r,
                "switchboard_http_requests_total",
                "HTTP requests served, by plane, route template, method and status",
                &["plane", "route", "method", "status"],
            ),
            http_duration: histogram(
                &r,
                "switchboard_http_request_duration_seconds",
                "Time to the response head of HTTP requests served",
                &["plane", "route"],
            ),
            mcp_requests: counter(
                &r,
                "switchboard_mcp_requests_total",
                "MCP requests sent upstream (REST tools and the /mcp relay), by outcome",
                &["connector", "method", "outcome"],
            ),
            mcp_duration: histogram(
                &r,
                "switchboard_mcp_request_duration_seconds",
                "Duration of MCP requests sent upstream",
                &["connector", "method"],
            ),
            upstream_duration: histogram(
                &r,
                "switchboard_upstream_request_duration_seconds",
                "Time to the upstream's response head, per connector",
                &["connector"],
            ),
            gateway_errors: counter(
                &r,
                "switchboard_gateway_errors_total",
                "Gateway-authored errors by their Proxy-Status error and details",
                &["error", "details"],
            ),
            tools_cache: counter(
                &r,
                "switchboard_tools_cache_requests_total",
                "tools/list cache lookups: hit, miss (fetched upstream) or stale (served while the upstream fails)",
                &["result"],
            ),
            oauth_refresh: counter(
                &r,
                "switchboard_oauth_refresh_total",
                "OAuth token refreshes performed by this process, by result",
                &["result"],
            ),
            vault_operations: counter(
                &r,
                "switchboard_vault_operations_total",
                "Vault seal and open operations, by result",
                &["op", "result"],
            ),
            store_fallback_reads: {
                let c = IntCounter::new(
                    "switchboard_store_fallback_reads_total",
                    "Store reads answered from memory because the store was unreachable",
                )
                .expect("valid counter definition");
                r.register(Box::new(c.clone()))
                    .expect("metric registered once");
                c
            },
            open_streams,
            upstream_sessions,
            connectors: ConnectorLabels::default(),
            registry: r,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// One store read answered from memory during a store outage.
    pub fn store_fallback(&self) {
        self.store_fallback_reads.inc();
    }

    /// The label value for a connector: its id while fewer than the cap are labelled, else
    /// `other`.
    pub fn connector(&self, id: &str) -> String {
        self.connectors.label(id)
    }

    /// Records one upstream MCP request.
    pub fn mcp(&self, connector_id: &str, method: &str, outcome: &str, took: Duration) {
        let c = self.connector(connector_id);
        let m = mcp_method(method);
        self.mcp_requests
            .with_label_values(&[c.as_str(), m, outcome])
            .inc();
        self.mcp_duration
            .with_label_values(&[c.as_str(), m])
            .observe(took.as_secs_f64());
    }

    pub fn upstream(&self, connector_id: &str, took: Duration) {
        self.upstream_duration
            .with_label_values(&[self.connector(connector_id).as_str()])
            .observe(took.as_secs_f64());
    }

    /// A gauge increment for an open stream, undone when the guard drops.
    pub fn stream_opened(&'static self, plane: &'static str) -> StreamGuard {
        self.open_streams.with_label_values(&[plane]).inc();
        StreamGuard {
            metrics: self,
            plane,
        }
    }
}

/// Decrements `switchboard_open_streams` when the relayed stream ends (or is dropped).
#[derive(Debug)]
pub struct StreamGuard {
    metrics: &'static Metrics,
    plane: &'static str,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.metrics
            .open_streams
            .with_label_values(&[self.plane])
            .dec();
    }
}

/// A JSON-RPC method as a bounded label value.
pub fn mcp_method(method: &str) -> &'static str {
    MCP_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(if method.starts_with("notifications/") {
            "notifications/other"
        } else {
            "other"
        })
}

/// Connector ids seen, up to a cap.
struct ConnectorLabels {
    cap: std::sync::atomic::AtomicUsize,
    #[allow(
        clippy::disallowed_types,
        reason = "held for a set lookup only, never across an await"
    )]
    seen: std::sync::Mutex<HashSet<String>>,
}

impl Default for ConnectorLabels {
    fn default() -> Self {
        Self {
            cap: std::sync::atomic::AtomicUsize::new(100),
            seen: Default::default(),
        }
    }
}

impl ConnectorLabels {
    fn label(&self, id: &str) -> String {
        let cap = self.cap.load(std::sync::atomic::Ordering::Relaxed);
        let Ok(mut seen) = self.seen.lock() else {
            return "other".into();
        };
        if seen.contains(id) {
            return id.to_owned();
        }
        if seen.len() < cap {
            seen.insert(id.to_owned());
            return id.to_owned();
        }
        "other".into()
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Sets how many distinct connectors get their own label (the rest are `other`).
pub fn set_connector_label_cap(cap: usize) {
    get()
        .connectors
        .cap
        .store(cap, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(mcp_method("tools/call"), "tools/call");
        assert_eq!(mcp_method("x/y"), "other");
        assert_eq!(mcp_method("notifications/message"), "notifications/other");
    }

    #[test]
    fn connectors_beyond_the_cap_are_other() {
        let l = ConnectorLabels::default();
        l.cap.store(2, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(l.label("a"), "a");
        assert_eq!(l.label("b"), "b");
        assert_eq!(l.label("c"), "other");
        assert_eq!(l.label("a"), "a");
    }
}
