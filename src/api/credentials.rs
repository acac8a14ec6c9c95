//! Credential endpoints 10–16 of the contract (§5.10).

use axum::Json;
use axum::extract::State;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, FieldError, Loc};
use super::extract::{Caller, JsonObject, PathParams, Query};
use super::fields::Fields;
use crate::credentials::{
    Credential, CredentialFilter, CredentialInput, CredentialName, CredentialScope,
    CredentialSecrets, CredentialsError, OAuthClient, RuleError,
};
use crate::registry::{AuthenticationType, ConsumerScope, Patch};

type ApiResult<T> = Result<T, ApiError>;

impl From<CredentialsError> for ApiError {
    fn from(e: CredentialsError) -> Self {
        let text = e.to_string();
        match e {
            CredentialsError::Registry(r) => r.into(),
            CredentialsError::Forbidden(m) => ApiError::Forbidden(m),
            CredentialsError::Rule(RuleError::Duplicate(_)) | CredentialsError::Busy => {
                ApiError::Conflict(text)
            }
            CredentialsError::Rule(RuleError::NotFound(_)) => ApiError::NotFound(text),
            CredentialsError::Rule(_) => ApiError::field(
                vec!["body".into(), "is_default".into()],
                "value_error",
                text,
            ),
            CredentialsError::Invalid(field, msg) => {
                ApiError::field(vec!["body".into(), field.into()], "value_error", msg)
            }
            CredentialsError::Store(s) => s.into(),
            CredentialsError::Vault(_) => ApiError::SecretUnreadable(text),
        }
    }
}

fn scope(raw: &str) -> ApiResult<CredentialScope> {
    ConsumerScope::parse(raw)
        .map(ConsumerScope::consumer_type)
        .ok_or_else(|| {
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

/// AuthenticationConfiguration (§4.4): the public view of a credential.
pub fn public_view(c: &Credential) -> Value {
    json!({
        "name": c.name,
        "authentication_type": c.authentication_type,
        "scope": c.scope.as_str(),
        "title": c.title,
        "status": c.status.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        "is_default": c.is_default,
        "creator_id": c.creator_id,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams((reference, raw_scope)): PathParams<(String, String)>,
    q: Query,
) -> ApiResult<Json<Value>> {
    let scope = scope(&raw_scope)?;
    let auth_type = match q.string("auth_type").filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(
            AuthenticationType::parse(t)
                .ok_or_else(|| {
                    ApiError::Validation(vec![
                        FieldError::new(
                            vec!["query".into(), "auth_type".into()],
                            "enum",
                            format!("Input should be {}", AuthenticationType::expected()),
                        )
                        .with_input(&Value::String(t.to_owned())),
                    ])
                })?
                .as_str()
                .to_owned(),
        ),
    };
    let filter = CredentialFilter {
        auth_type,
        defaults_only: q.bool("fetch_default")?.unwrap_or(false),
    };
    let creds = state
        .credentials
        .list(&p, &reference, scope, &filter)
        .await?;
    Ok(Json(
        json!({ "credentials": creds.iter().map(public_view).collect::<Vec<_>>() }),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams((reference, raw_scope)): PathParams<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    write(&state, &p, &reference, &raw_scope, &body, false).await
}

pub async fn upsert(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams((reference, raw_scope)): PathParams<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    write(&state, &p, &reference, &raw_scope, &body, true).await
}

/// POST (create) and PATCH (create or update) share everything but the service call.
async fn write(
    state: &AppState,
    p: &crate::identity::Principal,
    reference: &str,
    raw_scope: &str,
    body: &Map<String, Value>,
    upsert: bool,
) -> ApiResult<Json<Value>> {
    let scope = scope(raw_scope)?;
    let input = parse_input(body)?;
    let c = if upsert {
        state.credentials.upsert(p, reference, scope, input).await?
    } else {
        state.credentials.create(p, reference, scope, input).await?
    };
    state.tools.credentials_changed(&c.connector_id);
    let done = if upsert { "saved" } else { "created" };
    tracing::info!(connector = %c.connector_id, credential = %c.name, scope = %c.scope, "credentials {done}");
    Ok(Json(
        json!({ "message": format!("Credentials '{}' {done}", c.name) }),
    ))
}

pub async fn delete_one(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams((reference, raw_scope, name)): PathParams<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let scope = scope(&raw_scope)?;
    state
        .credentials
        .delete(&p, &reference, scope, &name)
        .await?;
    let c = state.registry.resolve(&p, &reference).await?;
    state.tools.credentials_changed(&c.id);
    Ok(Json(
        json!({ "message": format!("Credentials '{name}' deleted") }),
    ))
}

/// `DELETE …/user/credentials`: every user credential of the caller. Other scopes have no
/// collection delete.
pub async fn delete_all(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams((reference, raw_scope)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    if scope(&raw_scope)? != CredentialScope::User {
        return Err(ApiError::MethodNotAllowed);
    }
    let n = state.credentials.delete_all_user(&p, &reference).await?;
    let c = state.registry.resolve(&p, &reference).await?;
    state.tools.credentials_changed(&c.id);
    Ok(Json(
        json!({ "message": format!("Deleted {n} user credentials") }),
    ))
}

/// CredentialsCreateOrUpdate.
fn parse_input(body: &Map<String, Value>) -> ApiResult<CredentialInput> {
    let mut errors = Vec::new();
    let mut f = Fields::new(body, vec!["body".into()], &mut errors);
    let name = f
        .req_str("name")
        .and_then(|n| match CredentialName::parse(&n) {
            Ok(n) => Some(n),
            Err(msg) => {
                f.error(
                    "name",
                    "string_pattern_mismatch",
                    msg,
                    Some(&Value::String(n)),
                );
                None
            }
        });
    let title = match f.opt_str("title") {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(t) => Some(Some(t)),
    };
    let is_default = f.opt_bool("is_default");
    let secrets = match f.opt_object("credentials") {
        Patch::Value(m) => {
            let mut sub = f.nested(m, &["credentials".into()]);
            Some(parse_secrets(&mut sub))
        }
        _ => None,
    };
    match (name, errors.is_empty()) {
        (Some(name), true) => Ok(CredentialInput {
            name,
            title,
            is_default,
            secrets,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

fn parse_secrets(f: &mut Fields<'_>) -> CredentialSecrets {
    let mut s = CredentialSecrets::default();
    if let Patch::Value(token) = f.opt_str("bearer_token") {
        if token.is_empty()
            || axum::http::HeaderValue::from_str(&format!("Bearer {token}")).is_err()
        {
            f.error(
                "bearer_token",
                "value_error",
                "bearer_token must be non-empty, without control characters",
                None,
            );
        } else {
            s.bearer_token = Some(SecretString::from(token));
        }
    }
    if let Patch::Value(headers) = f.opt_object("headers") {
        for (name, value) in headers {
            let mut loc = f.loc("headers");
            loc.push(Loc::Key(name.clone()));
            let Value::String(v) = value else {
                f.errors.push(FieldError::new(
                    loc,
                    "string_type",
                    "Header values must be strings",
                ));
                continue;
            };
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                f.errors.push(FieldError::new(
                    loc,
                    "value_error",
                    format!("`{name}` is not a valid HTTP header name"),
                ));
            } else if axum::http::HeaderValue::from_str(v).is_err() {
                f.errors.push(FieldError::new(
                    loc,
                    "value_error",
                    "Header values may not contain control characters (CR, LF, NUL)",
                ));
            } else {
                s.headers
                    .push((name.clone(), SecretString::from(v.as_str())));
            }
        }
    }
    if let Patch::Value(oauth) = f.opt_object("oauth") {
        let mut o = f.nested(oauth, &["oauth".into()]);
        let client_id = o.req_str("client_id");
        let grant_type = match o.opt_str("grant_type") {
            Patch::Value(g) if g != "client_credentials" => {
                o.error(
                    "grant_type",
                    "literal_error",
                    "Input should be 'client_credentials'",
                    Some(&Value::String(g)),
                );
                None
            }
            _ => Some("client_credentials".to_owned()),
        };
        let secret = |o: &mut Fields<'_>, k: &str| match o.opt_str(k) {
            Patch::Value(v) => Some(v),
            _ => None,
        };
        let client_secret = secret(&mut o, "client_secret").map(SecretString::from);
        let client_certificate = secret(&mut o, "client_certificate");
        let client_private_key = secret(&mut o, "client_private_key").map(SecretString::from);
        if let (Some(client_id), Some(grant_type)) = (client_id, grant_type) {
            s.oauth = Some(OAuthClient {
                client_id,
                grant_type,
                client_secret,
                client_certificate,
                client_private_key,
            });
        }
    }
    s
}
