//! Request extractors that fail with [`ApiError`]: the caller's principal, a JSON object body
//! (size-limited, with FastAPI-style errors), and query parameters.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use super::AppState;
use super::error::{ApiError, FieldError, Loc};
use crate::identity::Principal;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(&parts.headers, state).await {
            Ok(p) => Ok(Caller(p)),
            Err(AuthFailure::Denied(why)) => Err(ApiError::Unauthorized(why)),
            Err(AuthFailure::Limited(secs)) => Err(ApiError::RateLimited(secs)),
            Err(AuthFailure::Store(e)) => Err(e.into()),
        }
    }
}

/// Why a caller is not authenticated.
#[derive(Debug)]
pub enum AuthFailure {
    Denied(&'static str),
    /// Over the principal's rate limit: retry after this many seconds.
    Limited(u64),
    Store(crate::store::StoreError),
}

/// The principal behind `Authorization: Bearer <API key>`.
pub async fn authenticate(
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Result<Principal, AuthFailure> {
    let header = headers.get(AUTHORIZATION).ok_or(AuthFailure::Denied(
        "Missing Authorization header (expected `Bearer <API key>`)",
    ))?;
    let value = header
        .to_str()
        .map_err(|_| AuthFailure::Denied("Malformed Authorization header"))?;
    let key = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(AuthFailure::Denied(
            "Authorization header must be `Bearer <API key>`",
        ))?;
    match state.keys.authenticate(key).await {
        Ok(Some(p)) => match state.limits.check_principal(&p.user_id) {
            Ok(()) => Ok(p),
            Err(l) => Err(AuthFailure::Limited(l.retry_after_secs)),
        },
        Ok(None) => Err(AuthFailure::Denied("Invalid API key")),
        Err(e) => Err(AuthFailure::Store(e)),
    }
}

/// A request body that must be a JSON object.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        match OptionalJsonObject::from_request(req, state).await? {
            OptionalJsonObject(Some(map)) => Ok(JsonObject(map)),
            OptionalJsonObject(None) => Err(ApiError::field(
                vec!["body".into()],
                "missing",
                "Field required",
            )),
        }
    }
}

/// A request body that, when present, must be a JSON object.
#[derive(Debug)]
pub struct OptionalJsonObject(pub Option<Map<String, Value>>);

impl FromRequest<AppState> for OptionalJsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(limit))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonObject(None));
        }
        if let Err(msg) = no_duplicate_keys(&bytes) {
            return Err(ApiError::Validation(vec![FieldError::new(
                vec!["body".into()],
                "json_invalid",
                format!("JSON decode error: {msg}"),
            )]));
        }
        let depth = state.config.limits.max_json_depth;
        if crate::limits::json_depth_exceeds(&bytes, depth) {
            return Err(ApiError::Validation(vec![FieldError::new(
                vec!["body".into()],
                "json_invalid",
                format!("JSON nested deeper than {depth} levels"),
            )]));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Validation(vec![FieldError::new(
                vec!["body".into(), Loc::Index(e.column())],
                "json_invalid",
                format!("JSON decode error: {e}"),
            )])
        })?;
        match value {
            Value::Object(map) => Ok(OptionalJsonObject(Some(map))),
            other => Err(ApiError::Validation(vec![
                FieldError::new(
                    vec!["body".into()],
                    "model_attributes_type",
                    "Input should be a valid dictionary or object to extract fields from",
                )
                .with_input(&other),
            ])),
        }
    }
}

/// Query parameters, last value wins; unknown parameters are ignored.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        Ok(Query(
            url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl Query {
    pub fn string(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true/false/1/0/yes/no/on/off`, as FastAPI accepts).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        let Some(raw) = self.0.get(key) else {
            return Ok(None);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(ApiError::Validation(vec![
                FieldError::new(
                    vec!["query".into(), key.into()],
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                )
                .with_input(&Value::String(raw.clone())),
            ])),
        }
    }

    /// An integer parameter.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.0.get(key) else {
            return Ok(None);
        };
        raw.trim().parse().map(Some).map_err(|_| {
            ApiError::Validation(vec![
                FieldError::new(
                    vec!["query".into(), key.into()],
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                )
                .with_input(&Value::String(raw.clone())),
            ])
        })
    }
}

/// Path parameters, percent-decoded; a segment that does not decode is a 422 in our format.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParams(v)),
            Err(rejection) => Err(ApiError::field(
                vec!["path".into()],
                "value_error",
                rejection.body_text(),
            )),
        }
    }
}

/// Refuses JSON whose objects repeat a key (`{"a": 1, "a": 2}`): which one counts is
/// ambiguous, so neither is taken. Syntax errors are left to the real parse.
fn no_duplicate_keys(bytes: &[u8]) -> Result<(), String> {
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Check;

    impl<'de> DeserializeSeed<'de> for Check {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Check)
        }
    }

    impl<'de> Visitor<'de> for Check {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Check)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    let shown: String = key.chars().take(64).collect();
                    return Err(de::Error::custom(format!("duplicate key `{shown}`")));
                }
                map.next_value_seed(Check)?;
            }
            Ok(())
        }
    }

    let mut d = serde_json::Deserializer::from_slice(bytes);
    match Check.deserialize(&mut d) {
        Err(e) if e.is_data() => Err(e.to_string()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        use super::no_duplicate_keys as check;
        assert!(check(br#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#).is_ok());
        assert!(
            check(br#"{"a": 1, "a": 2}"#)
                .unwrap_err()
                .contains("duplicate key `a`")
        );
        assert!(check(br#"{"x": [{"k": 1, "k": 1}]}"#).is_err());
        assert!(check(br#"{"a": "\u0061", "\u0061": 1}"#).is_err());
        // syntax errors are for the real parse to report
        assert!(check(b"{not json").is_ok());
    }
}
