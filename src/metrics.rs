//! Every Prometheus metric of the gateway, defined here and nowhere else, served on the admin
//! listener at `/metrics` (text exposition format).
//!
//! Labels are bounded by construction: planes, route templates (never raw paths), HTTP methods
//! and statuses, JSON-RPC methods from a fixed list (others are `other`), connector ids up to
//! `metrics.max_connector_labels` distinct ones (later ones are `other`), and fixed outcome
//! words. A user, a session, a token or a tool name is never a label.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// Connections the relays' pool opened to upstreams, by protocol.
    pub upstream_connections: IntCounterVec,
    connectors: ConnectorLabels,
    http_made: Made<IntCounter, 4>,
    http_duration_made: Made<Histogram, 2>,
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
            upstream_connections: counter(
                &r,
                "switchboard_upstream_connections_opened_total",
                "Connections the relays opened to upstreams for their pool (HTTP/1.1 or HTTP/2; a listening stream's own connection not counted)",
                &["protocol"],
            ),
            open_streams,
            upstream_sessions,
            connectors: ConnectorLabels::default(),
            http_made: Made::default(),
            http_duration_made: Made::default(),
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

    /// One connection opened by the relays' pool (`http1`, `http2`).
    pub fn upstream_connection_opened(&self, protocol: &'static str) {
        self.upstream_connections
            .with_label_values(&[protocol])
            .inc();
    }

    /// Records one HTTP request (both listeners).
    pub fn http(
        &self,
        plane: &'static str,
        route: &'static str,
        method: &'static str,
        status: &'static str,
        took: Duration,
    ) {
        self.http_made
            .get([plane, route, method, status], |l| {
                self.http_requests.with_label_values(l)
            })
            .inc();
        self.http_duration_made
            .get([plane, route], |l| self.http_duration.with_label_values(l))
            .observe(took.as_secs_f64());
    }

    /// Records one upstream MCP request.
    pub fn mcp(&self, connector_id: &str, method: &str, outcome: &'static str, took: Duration) {
        self.mcp_of(
            &self.connectors.of(connector_id, self),
            method,
            outcome,
            took,
        );
    }

    /// Records one answered upstream exchange, and the MCP request it was when it was one
    /// (`(method, outcome)`): the connector looked up once for both.
    pub fn exchange(&self, connector_id: &str, mcp: Option<(&str, &'static str)>, took: Duration) {
        let c = self.connectors.of(connector_id, self);
        c.upstream.observe(took.as_secs_f64());
        if let Some((method, outcome)) = mcp {
            self.mcp_of(&c, method, outcome, took);
        }
    }

    fn mcp_of(&self, c: &ConnectorMetrics, method: &str, outcome: &'static str, took: Duration) {
        let m = mcp_method(method);
        c.calls
            .get([m, outcome], |l| {
                self.mcp_requests.with_label_values(&[&c.label, l[0], l[1]])
            })
            .inc();
        c.durations
            .get([m], |l| {
                self.mcp_duration.with_label_values(&[&c.label, l[0]])
            })
            .observe(took.as_secs_f64());
    }

    pub fn upstream(&self, connector_id: &str, took: Duration) {
        self.connectors
            .of(connector_id, self)
            .upstream
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

/// Children of a metric vector by label values that are all `&'static str`, kept once made:
/// `with_label_values` hashes every value and takes a lock on each call, and a relayed call
/// records five. Keyed by where the values are (two equal strings at two addresses make two
/// entries for the same child), so the map is as bounded as the label values.
struct Made<M, const N: usize>(arc_swap::ArcSwap<HashMap<LabelsAt<N>, M, FastHash>>);

/// Where each label value is (address, length).
type LabelsAt<const N: usize> = [(usize, usize); N];

type FastHash = crate::cache::FastHash;

impl<M, const N: usize> Default for Made<M, N> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<M: Clone, const N: usize> Made<M, N> {
    fn get(&self, labels: [&'static str; N], make: impl FnOnce(&[&str]) -> M) -> M {
        let key = labels.map(|l| (l.as_ptr() as usize, l.len()));
        if let Some(m) = self.0.load().get(&key) {
            return m.clone();
        }
        let made = make(&labels);
        self.0.rcu(|old| {
            let mut new = HashMap::clone(old);
            new.insert(key, made.clone());
            new
        });
        made
    }
}

/// A connector's label and metric children.
struct ConnectorMetrics {
    /// Its id, or `other` beyond the cap.
    label: String,
    upstream: Histogram,
    /// `switchboard_mcp_requests_total` by (method, outcome).
    calls: Made<IntCounter, 2>,
    /// `switchboard_mcp_request_duration_seconds` by method.
    durations: Made<Histogram, 1>,
}

impl ConnectorMetrics {
    fn new(label: &str, m: &Metrics) -> Arc<Self> {
        Arc::new(Self {
            upstream: m.upstream_duration.with_label_values(&[label]),
            label: label.to_owned(),
            calls: Made::default(),
            durations: Made::default(),
        })
    }
}

/// Connector ids seen, up to a cap (later ones share `other`).
struct ConnectorLabels {
    cap: std::sync::atomic::AtomicUsize,
    seen: arc_swap::ArcSwap<HashMap<String, Arc<ConnectorMetrics>, FastHash>>,
    other: std::sync::OnceLock<Arc<ConnectorMetrics>>,
}

impl Default for ConnectorLabels {
    fn default() -> Self {
        Self {
            cap: std::sync::atomic::AtomicUsize::new(100),
            seen: Default::default(),
            other: Default::default(),
        }
    }
}

impl ConnectorLabels {
    fn of(&self, id: &str, m: &Metrics) -> Arc<ConnectorMetrics> {
        if let Some(c) = self.seen.load().get(id) {
            return Arc::clone(c);
        }
        let cap = self.cap.load(std::sync::atomic::Ordering::Relaxed);
        let mut labelled = None;
        self.seen.rcu(|old| {
            labelled = old.get(id).cloned();
            if labelled.is_some() || old.len() >= cap {
                return Arc::clone(old);
            }
            let mut new = HashMap::clone(old);
            let c = labelled.insert(ConnectorMetrics::new(id, m));
            new.insert(id.to_owned(), Arc::clone(c));
            Arc::new(new)
        });
        labelled.unwrap_or_else(|| {
            Arc::clone(self.other.get_or_init(|| ConnectorMetrics::new("other", m)))
        })
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
        let label = |id: &str| l.of(id, get()).label.clone();
        assert_eq!(label("a"), "a");
        assert_eq!(label("b"), "b");
        assert_eq!(label("c"), "other");
        assert_eq!(label("a"), "a");
        assert!(Arc::ptr_eq(&l.of("c", get()), &l.of("d", get())));
    }
}
