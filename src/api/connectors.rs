//! Connector endpoints 1–5 and 17–22 of the contract: thin handlers that extract, call the
//! registry and convert.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::dto;
use super::error::{ApiError, FieldError};
use super::extract::{Caller, JsonObject, PathParams as Path, Query};
use super::view::{self, CallerData, UserData};
use crate::identity::Principal;
use crate::registry::{Connector, ConsumerScope, Cursor, Visibility};

type ApiResult<T> = Result<T, ApiError>;

async fn render(
    state: &AppState,
    p: &Principal,
    c: &Connector,
    user_data: bool,
) -> ApiResult<Value> {
    let blocked_by = state.registry.blocked_by(p, c).await?;
    let user_data = if user_data {
        let mine = state.credentials.mine(p, c).await?;
        Some(UserData {
            is_authenticated: !c.requires_credentials() || !mine.is_empty(),
            credentials: mine.iter().map(super::credentials::public_view).collect(),
        })
    } else {
        None
    };
    let tools = state.tools.cached(c).await;
    Ok(view::connector(
        c,
        &CallerData {
            blocked_by,
            user_data,
            tools,
        },
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<impl IntoResponse> {
    let new = dto::parse_create(&body)?;
    let c = state.registry.create(&p, new).await?;
    tracing::info!(connector = %c.id, name = %c.name, "connector created");
    Ok((
        StatusCode::CREATED,
        Json(render(&state, &p, &c, false).await?),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    q: Query,
) -> ApiResult<Json<Value>> {
    let max = state.config.max_page_size;
    let page_size = q.int("page_size")?.unwrap_or(100).clamp(1, i64::from(max));
    let page_size = u32::try_from(page_size).unwrap_or(max);
    let supports_mcp = q.bool("supports_mcp")?;
    let after = match q.string("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| {
            ApiError::Validation(vec![
                FieldError::new(
                    vec!["query".into(), "cursor".into()],
                    "value_error",
                    "Invalid cursor",
                )
                .with_input(&Value::String(raw.to_owned())),
            ])
        })?),
    };
    let page = state
        .registry
        .list(&p, supports_mcp, after, page_size)
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for c in &page.items {
        items.push(render(&state, &p, c, false).await?);
    }
    Ok(Json(json!({
        "items": items,
        "pagination": { "page_size": page_size, "next_cursor": page.next.map(|c| c.encode()) },
    })))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(reference): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    let user_data = q.bool("fetch_user_data")?.unwrap_or(false);
    let c = state.registry.resolve(&p, &reference).await?;
    Ok(Json(render(&state, &p, &c, user_data).await?))
}

pub async fn update(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(reference): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let patch = dto::parse_update(&body)?;
    let c = state.registry.update(&p, &reference, patch).await?;
    tracing::info!(connector = %c.id, "connector updated");
    Ok(Json(render(&state, &p, &c, false).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = state.registry.delete(&p, &reference).await?;
    state.tools.forget_connector(&c.id);
    tracing::info!(connector = %c.id, "connector deleted");
    Ok(Json(view::message(format!(
        "Connector '{}' deleted",
        c.name
    ))))
}

pub async fn share_workspace(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = state
        .registry
        .share(&p, &reference, Visibility::SharedWorkspace)
        .await?;
    Ok(Json(view::message(format!(
        "Connector '{}' shared with the workspace",
        c.name
    ))))
}

pub async fn unshare_workspace(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = state
        .registry
        .unshare(&p, &reference, Visibility::SharedWorkspace)
        .await?;
    Ok(Json(view::message(format!(
        "Connector '{}' is private again",
        c.name
    ))))
}

pub async fn share_org(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = state
        .registry
        .share(&p, &reference, Visibility::SharedOrg)
        .await?;
    Ok(Json(view::message(format!(
        "Connector '{}' shared with the organization",
        c.name
    ))))
}

pub async fn unshare_org(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = state
        .registry
        .unshare(&p, &reference, Visibility::SharedOrg)
        .await?;
    Ok(Json(view::message(format!(
        "Connector '{}' is private again",
        c.name
    ))))
}

fn parse_scope(raw: &str) -> ApiResult<ConsumerScope> {
    ConsumerScope::parse(raw).ok_or_else(|| {
        ApiError::Validation(vec![
            FieldError::new(
                vec!["path".into(), "consumer_scope".into()],
                "enum",
                format!("Input should be {}", ConsumerScope::expected()),
            )
            .with_input(&Value::String(raw.to_owned())),
        ])
    })
}

pub async fn activate(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((reference, scope)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let scope = parse_scope(&scope)?;
    let c = state
        .registry
        .set_active(&p, &reference, scope, true)
        .await?;
    Ok(Json(view::message(format!(
        "Connector '{}' activated for {}",
        c.name, scope
    ))))
}

pub async fn deactivate(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((reference, scope)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let scope = parse_scope(&scope)?;
    let c = state
        .registry
        .set_active(&p, &reference, scope, false)
        .await?;
    Ok(Json(view::message(format!(
        "Connector '{}' deactivated for {}",
        c.name, scope
    ))))
}
