//! Per-request observability on both listeners: a request id (the caller's `x-request-id` when
//! it is a sane token, else a new UUID; returned on the response and forwarded upstream by the
//! relays), the HTTP metrics, one access-log line per request (plane, route, connector,
//! method, status, duration) — never the query string, never a header value — and the request
//! span when something consumes it.
//!
//! The span (`request`, with the method and the path) is made only when spans are exported
//! (OpenTelemetry) or the log level shows debug lines: at the default level nothing reads it,
//! and making, entering and leaving it cost a twentieth of a relayed call. Without it, the
//! warnings and errors a request causes still name it: they carry [`current`] (request id,
//! method, route) from a task-local set here.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Per-listener settings: access lines (`log.access`), the header limits, and whether spans
/// are exported (then every request gets its span).
#[derive(Debug, Clone, Copy)]
pub struct Observe {
    pub access: bool,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub export_spans: bool,
}

impl Observe {
    /// The admin listener: no access lines, no limits beyond hyper's own.
    pub fn admin() -> Self {
        Self {
            access: false,
            max_headers: usize::MAX,
            max_header_bytes: usize::MAX,
            export_spans: false,
        }
    }
}

/// What the log lines a request causes say about it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    id: HeaderValue,
    method: &'static str,
    route: &'static str,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The request being served, for a log line: `POST /v1/connectors-gateway/:ref/mcp
/// id=<request id>`, or `-` outside a request.
pub fn current() -> Current {
    Current(CONTEXT.try_with(Clone::clone).ok())
}

/// See [`current`].
#[derive(Debug)]
pub struct Current(Option<RequestContext>);

impl std::fmt::Display for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(c) => write!(
                f,
                "{} {} id={}",
                c.method,
                c.route,
                c.id.to_str().unwrap_or_default()
            ),
            None => f.write_str("-"),
        }
    }
}

/// Too many request headers, or too many header bytes: 431 in the plane's error format.
fn headers_too_large(plane: &str, what: String) -> Response {
    use axum::response::IntoResponse;
    if plane == "gateway" {
        crate::gateway::GatewayError::HeadersTooLarge(what).into_response()
    } else {
        crate::api::error::ApiError::HeadersTooLarge(what).into_response()
    }
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// The plane a route belongs to.
pub fn plane_of(path: &str) -> &'static str {
    if path.starts_with("/v1/connectors-gateway") {
        "gateway"
    } else if path.starts_with("/healthz")
        || path.starts_with("/readyz")
        || path.starts_with("/metrics")
    {
        "admin"
    } else {
        "api"
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `{ref}` segment of a connector path, for the access line (as sent, not decoded).
fn connector_ref(path: &str) -> &str {
    let rest = path
        .strip_prefix("/v1/connectors-gateway/")
        .or_else(|| path.strip_prefix("/v1/connectors/"));
    rest.and_then(|r| r.split('/').next()).unwrap_or("")
}

/// The observation layer on both routers (`Router::layer`): a hand-written service rather than
/// `axum::middleware::from_fn`, whose per-request clone of the inner service and boxed future
/// cost three allocations a request.
#[derive(Debug, Clone, Copy)]
pub struct ObserveLayer(pub Observe);

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;
    fn layer(&self, inner: S) -> ObserveService<S> {
        ObserveService {
            inner,
            settings: self.0,
        }
    }
}

/// See [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct ObserveService<S> {
    inner: S,
    settings: Observe,
}

/// What the answer needs of its request once it comes.
#[derive(Debug)]
struct Pending {
    started: Instant,
    settings: Observe,
    request_id: HeaderValue,
    route: &'static str,
    method: &'static str,
    /// The `{ref}` of the path, for the access line (empty without one).
    path_connector: String,
}

type Served<F> =
    tracing::instrument::Instrumented<tokio::task::futures::TaskLocalFuture<RequestContext, F>>;

pin_project_lite::pin_project! {
    /// The inner service's answer (or ours: headers too large), then the metrics, the access
    /// line and the request id header.
    pub struct ObserveFuture<F> {
        #[pin]
        served: Option<Served<F>>,
        ours: Option<Response>,
        pending: Option<Pending>,
    }
}

impl<S> tower::Service<Request> for ObserveService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let settings = self.settings;
        let started = Instant::now();
        let too_large = too_large(req.headers(), &settings);
        let request_id = match req.headers().get(&REQUEST_ID) {
            Some(v) if valid_request_id(v) => v.clone(),
            _ => {
                let v = new_request_id();
                req.headers_mut().insert(REQUEST_ID, v.clone());
                v
            }
        };
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", |m| route_label(m.as_str()));
        let method = method_label(req.method());
        let path_connector = if settings.access {
            connector_ref(req.uri().path()).to_owned()
        } else {
            String::new()
        };
        let pending = Some(Pending {
            started,
            settings,
            request_id: request_id.clone(),
            route,
            method,
            path_connector,
        });
        if let Some(what) = too_large {
            return ObserveFuture {
                served: None,
                ours: Some(headers_too_large(plane_of(route), what)),
                pending,
            };
        }
        let span = if settings.export_spans || tracing::enabled!(tracing::Level::DEBUG) {
            // The path only: query strings may carry secrets (an OAuth `code`, an upstream's
            // own parameters on /http).
            let span = tracing::info_span!("request", method, path = %req.uri().path());
            crate::telemetry::adopt_parent(&span, req.headers());
            span
        } else {
            tracing::Span::none()
        };
        let context = RequestContext {
            id: request_id,
            method,
            route,
        };
        let served = {
            let _entered = span.enter();
            CONTEXT.scope(context, self.inner.call(req))
        };
        ObserveFuture {
            served: Some(served.instrument(span)),
            ours: None,
            pending,
        }
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for ObserveFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.served.as_pin_mut() {
            Some(served) => match served.poll(cx) {
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            None => this.ours.take().unwrap_or_default(),
        };
        Poll::Ready(Ok(match this.pending.take() {
            Some(p) => answered(p, response),
            None => response,
        }))
    }
}

/// Too many request headers, or too many header bytes: why, in words.
fn too_large(headers: &axum::http::HeaderMap, settings: &Observe) -> Option<String> {
    if headers.len() > settings.max_headers {
        return Some(format!(
            "Too many request headers (limit {})",
            settings.max_headers
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    (header_bytes > settings.max_header_bytes).then(|| {
        format!(
            "Request headers too large (limit {} bytes)",
            settings.max_header_bytes
        )
    })
}

/// The metrics, the access line (or a warning for a failure without one) and the request id
/// header of an answer.
fn answered(p: Pending, mut response: Response) -> Response {
    let took = p.started.elapsed();
    let (route, method) = (p.route, p.method);
    let plane = plane_of(route);
    let status = response.status().as_u16();
    crate::metrics::get().http(plane, route, method, status_label(status), took);
    let request_id = p.request_id.to_str().unwrap_or_default();
    if status >= 500 && !p.settings.access && plane != "admin" {
        // The access line says it when there is one.
        tracing::warn!(target: "switchboard::access", plane, route, method, status, request_id, "request failed");
    }
    if p.settings.access && plane != "admin" {
        crate::telemetry::access(&crate::telemetry::AccessLine {
            plane,
            route,
            connector: &p.path_connector,
            method,
            status,
            // Whole microseconds: `1.401`, not `1.4007379999999998`.
            micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            request_id,
        });
    }
    response.headers_mut().insert(REQUEST_ID, p.request_id);
    response
}

/// A new request id: a random (version 4) UUID from the thread's generator (no system call per
/// request), formatted without an intermediate `String`.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("invalid"))
}

/// [`label_of`] for a route template, computed once per template: the templates are the
/// router's, a fixed handful, so the labels are kept for the life of the process.
fn route_label(template: &str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::Arc;
    type Labels = HashMap<String, &'static str, crate::cache::FastHash>;
    static LABELS: std::sync::OnceLock<arc_swap::ArcSwap<Labels>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(Default::default);
    if let Some(l) = labels.load().get(template) {
        return l;
    }
    // A new template (once each): copy, add, swap. A label leaked twice by a race is a few
    // bytes, once.
    let label: &'static str = Box::leak(label_of(template).into_boxed_str());
    labels.rcu(|old| {
        let mut new = HashMap::clone(old);
        new.insert(template.to_owned(), label);
        Arc::new(new)
    });
    label
}

/// A route template as a label: `{ref}` → `:ref`, `{*rest}` → `*rest` (braces inside label
/// values trip some text-format parsers).
fn label_of(template: &str) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if name.starts_with('*') => name.to_owned(),
                Some(name) => format!(":{name}"),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn status_label(status: u16) -> &'static str {
    const ALL: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (303, "303"),
        (304, "304"),
        (307, "307"),
        (308, "308"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (406, "406"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    ALL.iter().find(|(s, _)| *s == status).map_or(
        match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        |(_, l)| l,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn log_lines_name_the_request_they_come_from() {
        assert_eq!(current().to_string(), "-");
        let context = RequestContext {
            id: HeaderValue::from_static("req-1"),
            method: "POST",
            route: "/v1/connectors-gateway/:ref/mcp",
        };
        let inside = CONTEXT
            .scope(context, async {
                tokio::task::yield_now().await;
                current().to_string()
            })
            .await;
        assert_eq!(inside, "POST /v1/connectors-gateway/:ref/mcp id=req-1");
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123")));
        assert!(!valid_request_id(&HeaderValue::from_static("a b")));
        assert!(!valid_request_id(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }

    #[test]
    fn labels() {
        assert_eq!(plane_of("/v1/connectors-gateway/{ref}/mcp"), "gateway");
        assert_eq!(plane_of("/v1/connectors/{ref}"), "api");
        assert_eq!(plane_of("/metrics"), "admin");
        assert_eq!(connector_ref("/v1/connectors/github/tools"), "github");
        assert_eq!(connector_ref("/v1/connectors-gateway/a%2Fb/mcp"), "a%2Fb");
        assert_eq!(connector_ref("/v1/connectors"), "");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(404), "404");
        assert_eq!(
            route_label("/v1/connectors/{ref}/tools/{*rest}"),
            "/v1/connectors/:ref/tools/*rest"
        );
        assert_eq!(route_label("/v1/connectors/{ref}"), "/v1/connectors/:ref");
        assert_eq!(route_label("/v1/connectors/{ref}"), "/v1/connectors/:ref");
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }
}
