//! The upstream a connector points at: its `server` URL and the headers injected on every
//! request — connector `global_headers` (public and secret), connector `headers`, then the
//! selected credential (`bearer_token` → `Authorization: Bearer`, its `headers` as given).
//! Nothing of the caller's request is ever among them.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use secrecy::ExposeSecret;

use crate::credentials::CredentialSecrets;
use crate::mcp::Target;
use crate::registry::{Connector, ConnectorSecrets};

pub fn upstream_target(
    c: &Connector,
    secrets: &ConnectorSecrets,
    credential: Option<&CredentialSecrets>,
) -> Result<Target, String> {
    let url = url::Url::parse(&c.doc.server).map_err(|e| format!("server URL: {e}"))?;
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: &str| -> Result<(), String> {
        let n =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name `{name}`"))?;
        let mut v =
            HeaderValue::from_str(value).map_err(|_| format!("value of header `{name}`"))?;
        v.set_sensitive(true);
        headers.insert(n, v);
        Ok(())
    };
    for (name, gh) in &c.doc.global_headers {
        let value = if gh.is_secret {
            secrets.global_headers.get(name).map(String::as_str)
        } else {
            gh.value.as_deref()
        };
        if let Some(v) = value {
            put(name, v)?;
        }
    }
    for (name, value) in &secrets.headers {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        put(name, &text)?;
    }
    if let Some(cred) = credential {
        if let Some(token) = &cred.bearer_token {
            put(
                "authorization",
                &format!("Bearer {}", token.expose_secret()),
            )?;
        }
        for (name, value) in &cred.headers {
            put(name, value.expose_secret())?;
        }
    }
    Ok(Target::new(url, headers))
}
