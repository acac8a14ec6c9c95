//! Where a connector's authorization server is and what it supports: provided metadata, a
//! provided metadata URL, or discovery from the upstream — its 401 `WWW-Authenticate`
//! `resource_metadata` (RFC 9728), the path-aware then root protected-resource document, then
//! RFC 8414 authorization-server metadata with OpenID Connect discovery as the fallback.
//! Every URL fetched goes through the outbound policy.

use serde_json::{Map, Value, json};

use super::OAuthError;
use super::http::{Fetched, HttpJson};
use crate::registry::{AuthMethod, Connector};

/// An authorization server, as learned.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// ExtendedOAuthServerMetadata (§4.5), `x_source` and `x_resource_url` set.
    pub metadata: Map<String, Value>,
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    pub token_auth_methods: Vec<String>,
    /// The RFC 8707 resource the tokens are for.
    pub resource: Option<String>,
    /// The scope to request, when the resource or the connector names one.
    pub scope: Option<String>,
}

impl Discovered {
    fn from_metadata(
        mut md: Map<String, Value>,
        source: &str,
        resource: Option<String>,
        scope: Option<String>,
    ) -> Result<Self, OAuthError> {
        let text =
            |md: &Map<String, Value>, k: &str| md.get(k).and_then(Value::as_str).map(str::to_owned);
        let issuer = text(&md, "issuer").ok_or_else(|| {
            OAuthError::Discovery("authorization server metadata has no `issuer`".into())
        })?;
        let token_endpoint = text(&md, "token_endpoint").ok_or_else(|| {
            OAuthError::Discovery("authorization server metadata has no `token_endpoint`".into())
        })?;
        let authorization_endpoint = text(&md, "authorization_endpoint");
        let registration_endpoint = text(&md, "registration_endpoint");
        let token_auth_methods = md
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        md.entry("x_source").or_insert_with(|| json!(source));
        if let Some(r) = &resource {
            md.entry("x_resource_url").or_insert_with(|| json!(r));
        }
        let scope = scope.or_else(|| text(&md, "x_scope"));
        if let Some(s) = &scope {
            md.entry("x_scope").or_insert_with(|| json!(s));
        }
        Ok(Self {
            metadata: md,
            issuer,
            authorization_endpoint,
            token_endpoint,
            registration_endpoint,
            token_auth_methods,
            resource,
            scope,
        })
    }
}

impl Discovered {
    /// The client-secret authentication to use at the token endpoint: `client_secret_basic`
    /// unless the server lists only `client_secret_post`; `None` when it supports neither.
    pub fn secret_auth_method(&self) -> Option<&'static str> {
        let supports = |m: &str| self.token_auth_methods.iter().any(|s| s == m);
        if self.token_auth_methods.is_empty() || supports("client_secret_basic") {
            Some("client_secret_basic")
        } else if supports("client_secret_post") {
            Some("client_secret_post")
        } else {
            None
        }
    }
}

/// The value of one `WWW-Authenticate` auth-param (`key=token` or `key="quoted"`).
pub fn auth_param(header: &str, key: &str) -> Option<String> {
    let mut rest = header.trim();
    // Skip the scheme (`Bearer`), if the header starts with one.
    if let Some((first, tail)) = rest.split_once(char::is_whitespace) {
        if !first.contains('=') {
            rest = tail;
        }
    }
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        if let Some((_, esc)) = chars.next() {
                            out.push(esc);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if name.eq_ignore_ascii_case(key) {
            return Some(value);
        }
        rest = next;
    }
    None
}

/// The authorization server of a connector's OAuth method. `Ok(None)`: the upstream does not
/// ask for OAuth (it answered without a 401 and publishes no protected-resource metadata).
pub async fn discover(
    http: &HttpJson,
    c: &Connector,
    method: Option<&AuthMethod>,
) -> Result<Option<Discovered>, OAuthError> {
    let scope_of = |m: Option<&AuthMethod>| {
        m.and_then(|m| m.client_scopes.as_ref())
            .filter(|s| !s.is_empty())
            .map(|s| s.join(" "))
    };
    let provided = method
        .and_then(|m| m.oauth2_server_metadata.as_ref())
        .or(c.doc.oauth2_server_metadata.as_ref());
    if let Some(Value::Object(md)) = provided {
        let resource = md
            .get("x_resource_url")
            .and_then(Value::as_str)
            .map_or_else(|| c.doc.server.clone(), str::to_owned);
        return Discovered::from_metadata(md.clone(), "provided", Some(resource), scope_of(method))
            .map(Some);
    }
    if let Some(url) = &c.doc.oauth2_server_metadata_url {
        let md = match http.get_json(url).await? {
            Fetched::Json(Value::Object(md)) => md,
            _ => {
                return Err(OAuthError::Discovery(format!(
                    "oauth2_server_metadata_url {url} gave no metadata document"
                )));
            }
        };
        return Discovered::from_metadata(
            md,
            "provided",
            Some(c.doc.server.clone()),
            scope_of(method),
        )
        .map(Some);
    }
    autodiscover(http, &c.doc.server, scope_of(method)).await
}

async fn autodiscover(
    http: &HttpJson,
    server: &str,
    configured_scope: Option<String>,
) -> Result<Option<Discovered>, OAuthError> {
    let server_url = url::Url::parse(server)
        .map_err(|e| OAuthError::Discovery(format!("connector server URL: {e}")))?;
    let challenge = http.probe(&server_url).await?;
    let mut candidates = Vec::new();
    if let Some(rm) = challenge
        .as_deref()
        .and_then(|h| auth_param(h, "resource_metadata"))
    {
        candidates.push(rm);
    }
    let origin = server_url.origin().ascii_serialization();
    let path = server_url.path().trim_end_matches('/');
    if !path.is_empty() {
        candidates.push(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ));
    }
    candidates.push(format!("{origin}/.well-known/oauth-protected-resource"));

    let mut prm: Option<Map<String, Value>> = None;
    for url in &candidates {
        if let Fetched::Json(Value::Object(doc)) = http.get_json(url).await? {
            if doc.get("authorization_servers").is_some() || doc.get("resource").is_some() {
                prm = Some(doc);
                break;
            }
        }
    }
    let header_scope = challenge.as_deref().and_then(|h| auth_param(h, "scope"));
    let (issuer, resource, prm_scope) = match &prm {
        Some(doc) => {
            let resource = doc
                .get("resource")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(r) = &resource {
                let same_origin =
                    url::Url::parse(r).is_ok_and(|u| u.origin().ascii_serialization() == origin);
                if !same_origin {
                    return Err(OAuthError::Discovery(format!(
                        "protected resource metadata names another resource ({r})"
                    )));
                }
            }
            let issuer = doc
                .get("authorization_servers")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find_map(Value::as_str))
                .map(str::to_owned)
                .ok_or_else(|| {
                    OAuthError::Discovery(
                        "protected resource metadata lists no authorization server".into(),
                    )
                })?;
            let scopes = doc
                .get("scopes_supported")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|s| !s.is_empty());
            (issuer, resource.or_else(|| Some(server.to_owned())), scopes)
        }
        // A bare 401 and no document: the 2025-03-26 convention (server origin is the issuer).
        None if challenge.is_some() => (origin.clone(), Some(server.to_owned()), None),
        None => return Ok(None),
    };
    let md = authorization_server_metadata(http, &issuer).await?;
    Discovered::from_metadata(
        md,
        "autodiscovery",
        resource,
        configured_scope.or(header_scope).or(prm_scope),
    )
    .map(Some)
}

/// RFC 8414 metadata of `issuer` (path-aware), with OpenID Connect discovery as the fallback;
/// the document's `issuer` must be the one asked for.
async fn authorization_server_metadata(
    http: &HttpJson,
    issuer: &str,
) -> Result<Map<String, Value>, OAuthError> {
    let url = url::Url::parse(issuer)
        .map_err(|e| OAuthError::Discovery(format!("authorization server URL: {e}")))?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    let candidates = if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    };
    let want = issuer.trim_end_matches('/');
    for candidate in &candidates {
        if let Fetched::Json(Value::Object(md)) = http.get_json(candidate).await? {
            let got = md.get("issuer").and_then(Value::as_str).unwrap_or_default();
            if got.trim_end_matches('/') != want {
                return Err(OAuthError::Discovery(format!(
                    "metadata at {candidate} names issuer `{got}`, expected `{issuer}`"
                )));
            }
            return Ok(md);
        }
    }
    Err(OAuthError::Discovery(format!(
        "no authorization server metadata found for {issuer}"
    )))
}

#[cfg(test)]
mod tests {
    use super::auth_param;

    #[test]
    fn www_authenticate_params() {
        let h = r#"Bearer error="invalid_token", resource_metadata="http://a/.well-known/oauth-protected-resource/mcp", scope="mcp read""#;
        assert_eq!(
            auth_param(h, "resource_metadata").as_deref(),
            Some("http://a/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(auth_param(h, "scope").as_deref(), Some("mcp read"));
        assert_eq!(auth_param(h, "error").as_deref(), Some("invalid_token"));
        assert_eq!(auth_param("Bearer", "resource_metadata"), None);
        assert_eq!(
            auth_param(r#"Bearer realm=x, a="q\"t""#, "a").as_deref(),
            Some("q\"t")
        );
        assert_eq!(auth_param("Bearer realm=x", "realm").as_deref(), Some("x"));
    }
}
