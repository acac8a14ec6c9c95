//! The API listener: control-plane routes (`/v1/connectors…`), with the caller authenticated
//! by the [`extract::Caller`] extractor and every error rendered by [`error::ApiError`].

mod connectors;
mod credentials;
pub mod declared;
mod dto;
pub mod error;
pub mod extract;
mod fields;
mod oauth;
mod tools;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};

use crate::config::Config;
use crate::credentials::Credentials;
use crate::identity::ApiKeys;
use crate::registry::Registry;
use crate::tools::ToolsService;
use error::ApiError;

/// What every handler can reach: cloned for every request (one reference count), read
/// through `Deref`.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
#[derive(Debug)]
pub struct Services {
    pub config: Arc<Config>,
    pub registry: Registry,
    pub keys: ApiKeys,
    pub tools: ToolsService,
    pub credentials: Credentials,
    pub gateway: crate::gateway::Gateway,
    pub limits: std::sync::Arc<crate::ratelimit::RateLimits>,
    pub oauth: crate::oauth::OAuth,
}

/// The API router.
///
/// Middleware order (outermost first): routing → observation (request id, metrics, access
/// line, span: [`crate::observe`]) → handler. Authentication is
/// an extractor, not a layer, so unknown routes answer 404 without looking at credentials.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/connectors",
            post(connectors::create).get(connectors::list),
        )
        .route(
            "/connectors/{ref}",
            get(connectors::get)
                .patch(connectors::update)
                .delete(connectors::delete),
        )
        .route(
            "/connectors/{ref}/share",
            put(connectors::share_workspace).delete(connectors::unshare_workspace),
        )
        .route(
            "/connectors/{ref}/organization/share",
            put(connectors::share_org).delete(connectors::unshare_org),
        )
        .route(
            "/connectors/{ref}/{scope}/activate",
            post(connectors::activate),
        )
        .route(
            "/connectors/{ref}/{scope}/deactivate",
            post(connectors::deactivate),
        )
        .route(
            "/connectors/{ref}/{scope}/credentials",
            get(credentials::list)
                .post(credentials::create)
                .patch(credentials::upsert)
                .delete(credentials::delete_all),
        )
        .route(
            "/connectors/{ref}/{scope}/credentials/{name}",
            axum::routing::delete(credentials::delete_one),
        )
        .route("/connectors/{ref}/auth_url", get(oauth::auth_url))
        .route(
            "/connectors/{ref}/authentication_methods",
            get(oauth::authentication_methods),
        )
        .route("/connectors/{ref}/tools", get(tools::list))
        .route("/connectors/{ref}/tools/{*rest}", post(tools::call));
    Router::new()
        .nest("/v1", v1)
        .route(crate::oauth::CALLBACK_PATH, get(oauth::callback))
        .merge(crate::gateway::router())
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(crate::observe::ObserveLayer(crate::observe::Observe {
            access: state.config.log.access,
            max_headers: state.config.limits.max_headers,
            max_header_bytes: state.config.limits.max_header_bytes,
            export_spans: cfg!(feature = "otel") && state.config.telemetry.otlp_endpoint.is_some(),
        }))
        .with_state(state)
}
