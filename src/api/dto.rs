//! Wire DTOs of the connector endpoints: request bodies parsed into validated registry commands
//! (contract §5.1, §5.4), with every problem reported as a FastAPI-style 422.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{ApiError, FieldError, Loc};
use super::fields::Fields;
use crate::registry::{
    AuthMethod, AuthMethodSecrets, AuthenticationType, ConnectorDocument, ConnectorName,
    ConnectorPatch, ConnectorSecrets, GlobalHeader, NewConnector, Patch, Protocol, Visibility,
};

/// Parses a create body (§5.1).
pub fn parse_create(body: &Map<String, Value>) -> Result<NewConnector, ApiError> {
    let mut errors = Vec::new();
    let mut f = Fields::new(body, vec!["body".into()], &mut errors);
    let protocol = parse_protocol(&mut f).unwrap_or(Protocol::Mcp);
    let name = f.req_str("name").and_then(|n| parse_name(&mut f, &n));
    let description = f.req_str("description");
    let server = f.req_str("server").and_then(|s| parse_server(&mut f, &s));
    let title = optional(f.opt_str("title"));
    let icon_url = optional(f.opt_str("icon_url"));
    let system_prompt = optional(f.opt_str("system_prompt"));
    let visibility = match f.opt_str("visibility") {
        Patch::Value(v) => match v.as_str() {
            "private" => Some(Visibility::Private),
            "shared_workspace" => Some(Visibility::SharedWorkspace),
            "shared_org" => Some(Visibility::SharedOrg),
            _ => {
                f.error(
                    "visibility",
                    "enum",
                    "Input should be 'shared_org', 'shared_workspace' or 'private'",
                    Some(&Value::String(v.clone())),
                );
                None
            }
        },
        _ => Some(Visibility::Private),
    };
    let headers = match f.opt_object("headers") {
        Patch::Value(m) => {
            check_header_map(&mut f, "headers", m.iter().map(|(k, v)| (k.as_str(), v)));
            m.clone()
        }
        _ => Map::new(),
    };
    let (global_public, global_secret) = match f.raw("global_headers") {
        None => (BTreeMap::new(), BTreeMap::new()),
        Some(Value::Object(m)) => parse_global_headers(&mut f, "global_headers", m),
        Some(other) => {
            f.error(
                "global_headers",
                "dict_type",
                "Input should be a valid dictionary",
                Some(other),
            );
            (BTreeMap::new(), BTreeMap::new())
        }
    };
    let oauth2_server_metadata = match f.opt_object("oauth2_server_metadata") {
        Patch::Value(m) => {
            check_server_metadata(&mut f, "oauth2_server_metadata", m);
            Some(Value::Object(m.clone()))
        }
        _ => None,
    };
    let oauth2_server_metadata_url = optional(f.opt_str("oauth2_server_metadata_url"));
    if oauth2_server_metadata.is_some() && oauth2_server_metadata_url.is_some() {
        f.error(
            "oauth2_server_metadata_url",
            "value_error",
            "oauth2_server_metadata and oauth2_server_metadata_url are mutually exclusive",
            None,
        );
    }
    let (mut methods, method_secrets) = match f.opt_array("auth_methods") {
        Patch::Value(items) => parse_auth_methods(&mut f, items, true),
        _ => (Vec::new(), Vec::new()),
    };
    // 2.x SDK: top-level `auth_data` fills OAuth methods that carry none.
    let mut method_secrets = method_secrets;
    if let Patch::Value(data) = f.opt_object("auth_data") {
        let mut sub = f.nested(data, &["auth_data".into()]);
        if let Some((client_id, scopes, secret)) = parse_auth_data(&mut sub) {
            for (m, s) in methods.iter_mut().zip(method_secrets.iter_mut()) {
                if m.method_type == "oauth2" && m.client_id.is_none() {
                    m.client_id = Some(client_id.clone());
                    m.client_scopes = scopes.clone();
                    s.client_secret = secret.clone();
                }
            }
        }
    }
    let (Some(name), Some(description), Some(server), Some(visibility), true) =
        (name, description, server, visibility, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    Ok(NewConnector {
        protocol,
        name,
        visibility,
        doc: ConnectorDocument {
            description,
            server,
            title,
            icon_url,
            system_prompt,
            auth_methods: methods,
            global_headers: global_public,
            header_names: headers.keys().cloned().collect(),
            oauth2_server_metadata,
            oauth2_server_metadata_url,
            private_tool_execution: false,
        },
        secrets: ConnectorSecrets {
            headers,
            global_headers: global_secret,
            auth_methods: method_secrets,
        },
    })
}

/// Parses an update body (§5.4): absent leaves a field, `null` clears a nullable one.
pub fn parse_update(body: &Map<String, Value>) -> Result<ConnectorPatch, ApiError> {
    let mut errors = Vec::new();
    let mut f = Fields::new(body, vec!["body".into()], &mut errors);
    let mut patch = ConnectorPatch {
        protocol: parse_protocol(&mut f),
        ..ConnectorPatch::default()
    };
    patch.name = f.non_null_str("name").and_then(|n| parse_name(&mut f, &n));
    patch.description = f.non_null_str("description");
    patch.server = f
        .non_null_str("server")
        .and_then(|s| parse_server(&mut f, &s));
    patch.title = f.opt_str("title");
    patch.icon_url = f.opt_str("icon_url");
    patch.system_prompt = f.opt_str("system_prompt");
    patch.auth_methods = match f.opt_array("auth_methods") {
        Patch::Value(items) => Some(parse_auth_methods(&mut f, items, false)),
        Patch::Null => Some((Vec::new(), Vec::new())),
        Patch::Absent => None,
    };
    for (key, why) in [
        (
            "visibility",
            "visibility cannot be changed by an update; use share/unshare",
        ),
        (
            "global_headers",
            "global_headers cannot be changed by an update",
        ),
        (
            "headers",
            "headers cannot be changed by an update; use credentials or global_headers at creation",
        ),
        (
            "oauth2_server_metadata_url",
            "oauth2_server_metadata_url cannot be changed by an update",
        ),
    ] {
        if let Some(v) = f.raw(key).filter(|v| !v.is_null()) {
            f.error(key, "value_error", why, Some(v));
        }
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn optional(p: Patch<String>) -> Option<String> {
    match p {
        Patch::Value(v) => Some(v),
        _ => None,
    }
}

fn parse_protocol(f: &mut Fields<'_>) -> Option<Protocol> {
    match f.raw("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if Protocol::parse(s).is_some() => Protocol::parse(s),
        Some(other) => {
            f.error(
                "protocol",
                "union_tag_invalid",
                "Input tag should be 'mcp' or 'http'",
                Some(other),
            );
            None
        }
    }
}

fn parse_name(f: &mut Fields<'_>, name: &str) -> Option<ConnectorName> {
    match ConnectorName::parse(name) {
        Ok(n) => Some(n),
        Err(msg) => {
            let kind = if name.chars().count() > ConnectorName::MAX_LEN {
                "string_too_long"
            } else {
                "string_pattern_mismatch"
            };
            f.error("name", kind, msg, Some(&Value::String(name.to_owned())));
            None
        }
    }
}

fn parse_server(f: &mut Fields<'_>, server: &str) -> Option<String> {
    match url::Url::parse(server) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Some(server.to_owned())
        }
        _ => {
            f.error(
                "server",
                "url_parsing",
                "server must be an absolute http:// or https:// URL",
                Some(&Value::String(server.to_owned())),
            );
            None
        }
    }
}

/// An HTTP header name (RFC 9110 token) and a value without control characters.
fn check_header_map<'v>(
    f: &mut Fields<'_>,
    key: &str,
    entries: impl Iterator<Item = (&'v str, &'v Value)>,
) {
    for (name, value) in entries {
        let mut loc = f.loc(key);
        loc.push(Loc::Key(name.to_owned()));
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            f.errors.push(FieldError::new(
                loc,
                "value_error",
                format!("`{name}` is not a valid HTTP header name"),
            ));
            continue;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                f.errors.push(FieldError::new(
                    loc,
                    "string_type",
                    "Header values must be strings",
                ));
                continue;
            }
        };
        if axum::http::HeaderValue::from_str(&text).is_err() {
            f.errors.push(FieldError::new(
                loc,
                "value_error",
                "Header values may not contain control characters (CR, LF, NUL)",
            ));
        }
    }
}

type GlobalHeaders = (BTreeMap<String, GlobalHeader>, BTreeMap<String, String>);

fn parse_global_headers(f: &mut Fields<'_>, key: &str, map: &Map<String, Value>) -> GlobalHeaders {
    let mut public = BTreeMap::new();
    let mut secret = BTreeMap::new();
    let mut values = Vec::new();
    for (name, spec) in map {
        let Value::Object(spec) = spec else {
            let mut loc = f.loc(key);
            loc.push(Loc::Key(name.clone()));
            f.errors.push(FieldError::new(
                loc,
                "model_type",
                "Input should be an object {value, is_secret}",
            ));
            continue;
        };
        let mut sub = f.nested(spec, &[key.into(), Loc::Key(name.clone())]);
        let value = sub.req_str("value");
        let is_secret = sub.opt_bool("is_secret").unwrap_or(true);
        if let Some(value) = value {
            values.push((name.clone(), Value::String(value.clone())));
            if is_secret {
                secret.insert(name.clone(), value);
                public.insert(
                    name.clone(),
                    GlobalHeader {
                        value: None,
                        is_secret,
                    },
                );
            } else {
                public.insert(
                    name.clone(),
                    GlobalHeader {
                        value: Some(value),
                        is_secret,
                    },
                );
            }
        }
    }
    check_header_map(f, key, values.iter().map(|(k, v)| (k.as_str(), v)));
    (public, secret)
}

fn check_server_metadata(f: &mut Fields<'_>, key: &str, m: &Map<String, Value>) {
    let mut sub = f.nested(m, &[key.into()]);
    sub.req_str("issuer");
    sub.req_str("token_endpoint");
}

fn parse_auth_data(f: &mut Fields<'_>) -> Option<(String, Option<Vec<String>>, Option<String>)> {
    let client_id = f.req_str("client_id");
    let secret = optional(f.opt_str("client_secret"));
    let scopes = f.opt_str_list("client_scopes");
    client_id.map(|id| (id, scopes, secret))
}

fn parse_auth_methods(
    f: &mut Fields<'_>,
    items: &[Value],
    strict: bool,
) -> (Vec<AuthMethod>, Vec<AuthMethodSecrets>) {
    let mut methods = Vec::new();
    let mut secrets = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            let mut loc = f.loc("auth_methods");
            loc.push(Loc::Index(i));
            f.errors.push(FieldError::new(
                loc,
                "model_type",
                "Input should be an object",
            ));
            continue;
        };
        let mut sub = f.nested(obj, &["auth_methods".into(), Loc::Index(i)]);
        if let Some((m, s)) = parse_auth_method(&mut sub, strict) {
            methods.push(m);
            secrets.push(s);
        }
    }
    (methods, secrets)
}

fn parse_auth_method(f: &mut Fields<'_>, strict: bool) -> Option<(AuthMethod, AuthMethodSecrets)> {
    let method_type = f.req_str("method_type")?;
    let Some(kind) = AuthenticationType::parse(&method_type) else {
        f.error(
            "method_type",
            "enum",
            format!("Input should be {}", AuthenticationType::expected()),
            Some(&Value::String(method_type)),
        );
        return None;
    };
    if strict
        && matches!(
            kind,
            AuthenticationType::GithubApp | AuthenticationType::SlackApp
        )
    {
        f.error(
            "method_type",
            "union_tag_invalid",
            "github_app and slack_app cannot be declared at creation",
            None,
        );
        return None;
    }
    let mut method = AuthMethod {
        method_type: kind.as_str().to_owned(),
        ..AuthMethod::default()
    };
    let mut secret = AuthMethodSecrets::default();
    method.grant_type = optional(f.opt_str("grant_type"));
    method.token_endpoint_auth_method = optional(f.opt_str("token_endpoint_auth_method"));
    if let Patch::Value(headers) = f.opt_array("headers") {
        method.headers = Some(parse_auth_headers(f, headers));
    }
    if let Patch::Value(m) = f.opt_object("oauth2_server_metadata") {
        check_server_metadata(f, "oauth2_server_metadata", m);
        method.oauth2_server_metadata = Some(Value::Object(m.clone()));
    }
    if let Patch::Value(m) = f.opt_object("auth_data") {
        let mut sub = f.nested(m, &["auth_data".into()]);
        if let Some((id, scopes, client_secret)) = parse_auth_data(&mut sub) {
            method.client_id = Some(id);
            method.client_scopes = scopes;
            secret.client_secret = client_secret;
        }
    }
    if let Some(Value::Object(m)) = f.raw("global_headers") {
        let (public, private) = parse_global_headers(f, "global_headers", m);
        method.global_headers = public;
        secret.global_headers = private;
    }
    if let Patch::Value(m) = f.opt_object("oauth2_metadata_secrets") {
        secret.oauth2_metadata_secrets = Some(Value::Object(m.clone()));
        if let Some(Value::String(id)) = m.get("client_id") {
            method.client_id.get_or_insert_with(|| id.clone());
        }
    }
    if kind == AuthenticationType::Oauth2 && strict {
        match method.grant_type.as_deref() {
            Some("authorization_code") => {
                if !f.has("auth_data") {
                    f.error("auth_data", "missing", "Field required", None);
                }
            }
            Some("client_credentials") => {
                if method.token_endpoint_auth_method.is_none() {
                    f.error(
                        "token_endpoint_auth_method",
                        "missing",
                        "Field required",
                        None,
                    );
                }
                if method.oauth2_server_metadata.is_none() {
                    f.error("oauth2_server_metadata", "missing", "Field required", None);
                }
            }
            Some(other) => f.error(
                "grant_type",
                "enum",
                "Input should be 'authorization_code' or 'client_credentials'",
                Some(&Value::String(other.to_owned())),
            ),
            None => f.error("grant_type", "missing", "Field required", None),
        }
    }
    Some((method, secret))
}

fn parse_auth_headers(f: &mut Fields<'_>, items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            let mut loc = f.loc("headers");
            loc.push(Loc::Index(i));
            f.errors.push(FieldError::new(
                loc,
                "model_type",
                "Input should be an object",
            ));
            continue;
        };
        let mut sub = f.nested(obj, &["headers".into(), Loc::Index(i)]);
        let name = sub.req_str("name");
        let is_required = sub.opt_bool("is_required").unwrap_or(true);
        let is_secret = sub.opt_bool("is_secret").unwrap_or(true);
        if let Some(name) = name {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                sub.error(
                    "name",
                    "value_error",
                    format!("`{name}` is not a valid HTTP header name"),
                    None,
                );
                continue;
            }
            out.push(serde_json::json!({"name": name, "is_required": is_required, "is_secret": is_secret}));
        }
    }
    out
}
