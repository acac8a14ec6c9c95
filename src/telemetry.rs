//! Tracing setup: pretty or JSON lines on stdout, filtered by `log.level` (or `RUST_LOG`); with
//! the `otel` cargo feature and `telemetry.otlp_endpoint`, spans are also exported over OTLP/HTTP
//! and the W3C trace context is taken from requests and passed to upstreams.

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat, TelemetryConfig};

mod access;
mod lines;

pub use access::AccessLine;

/// Where access lines are written by hand (`access`), when the log writer is ours and
/// uncoloured; otherwise they go through tracing.
static ACCESS: std::sync::OnceLock<access::Sink> = std::sync::OnceLock::new();

/// Logs one answered request (target `switchboard::access`, level info).
pub fn access(line: &AccessLine<'_>) {
    if !tracing::enabled!(target: "switchboard::access", tracing::Level::INFO) {
        return;
    }
    match ACCESS.get() {
        Some(sink) => sink.write(line, std::time::SystemTime::now()),
        None => tracing::info!(
            target: "switchboard::access",
            plane = line.plane,
            route = line.route,
            connector = %line.connector,
            method = line.method,
            status = line.status,
            duration_ms = line.micros as f64 / 1000.0,
            request_id = line.request_id,
            "request"
        ),
    }
}

/// Flushes log lines and exported spans when dropped (keep it until the process ends).
#[must_use]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    /// The log writer's thread: dropping this writes out what is still queued.
    _lines: Option<lines::Flush>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.provider.take() {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Lines are formatted where they happen and written by a thread of their own, in batches
    // (`lines`). Without that thread (it could not start), straight to stdout.
    let ansi =
        log.format == LogFormat::Pretty && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut sink = None;
    let (writer, lines) =
        match lines::start(std::io::stdout(), lines::BATCH_WINDOW, lines::FLUSH_WAIT) {
            Ok((w, flush)) => {
                if !ansi {
                    sink = Some(access::Sink {
                        lines: w.clone(),
                        json: log.format == LogFormat::Json,
                    });
                }
                (BoxMakeWriter::new(w), Some(flush))
            }
            Err(e) => {
                eprintln!("switchboard: log writer thread not started ({e}); writing directly");
                (BoxMakeWriter::new(std::io::stdout), None)
            }
        };
    let fmt = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(false)
            .with_writer(writer)
            .boxed(),
        // Colours only on a terminal: collected logs (files, journald, container runtimes)
        // would carry the escape codes, and styling every span's fields costs per request.
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    };
    #[cfg(feature = "otel")]
    {
        let (otel, provider) = otel::layer(telemetry);
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .with(otel)
            .try_init();
        if let (Ok(()), Some(sink)) = (installed, sink) {
            let _ = ACCESS.set(sink);
        }
        TelemetryGuard {
            provider,
            _lines: lines,
        }
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = telemetry;
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init();
        if let (Ok(()), Some(sink)) = (installed, sink) {
            let _ = ACCESS.set(sink);
        }
        TelemetryGuard { _lines: lines }
    }
}

/// Makes `span` a child of the caller's W3C trace context (`traceparent`), when exporting.
pub fn adopt_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    #[cfg(feature = "otel")]
    otel::adopt_parent(span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// Writes the current span's W3C trace context into an upstream request's headers (replacing
/// the caller's), when exporting. Without export, the caller's `traceparent` passes unchanged.
pub fn inject_context(headers: &mut reqwest::header::HeaderMap) {
    #[cfg(feature = "otel")]
    otel::inject(headers);
    #[cfg(not(feature = "otel"))]
    let _ = headers;
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::config::TelemetryConfig;

    /// The OpenTelemetry layer (for whatever subscriber it is stacked on) and its provider.
    #[allow(
        clippy::type_complexity,
        reason = "the layer type is generic over the subscriber"
    )]
    pub fn layer<S>(
        t: &TelemetryConfig,
    ) -> (
        Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>>,
        Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    )
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let Some(endpoint) = &t.otlp_endpoint else {
            return (None, None);
        };
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
            .with_endpoint(endpoint.clone())
            .build()
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("switchboard: OTLP exporter not started: {e}");
                return (None, None);
            }
        };
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(t.service_name.clone())
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let tracer = provider.tracer("switchboard");
        (
            Some(tracing_opentelemetry::layer().with_tracer(tracer)),
            Some(provider),
        )
    }

    pub fn adopt_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
        let parent =
            TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
        let _ = span.set_parent(parent);
    }

    pub fn inject(headers: &mut reqwest::header::HeaderMap) {
        let cx = tracing::Span::current().context();
        TraceContextPropagator::new()
            .inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
    }
}
