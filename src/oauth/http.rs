//! The HTTP side of OAuth: small JSON and form requests, every URL checked by the outbound
//! policy, answers capped in size.

use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::OAuthError;
use crate::net::NetPolicy;

/// The largest metadata or token answer read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// What a GET for a JSON document found.
#[derive(Debug)]
pub enum Fetched {
    Json(Value),
    /// Not there (any non-200 answer, or not JSON).
    Missing,
}

#[derive(Debug, Clone)]
pub struct HttpJson {
    client: reqwest::Client,
    policy: NetPolicy,
    timeout: Duration,
}

impl HttpJson {
    pub fn new(policy: NetPolicy, connect: Duration, timeout: Duration) -> Result<Self, String> {
        let client = policy
            .client_builder()
            .connect_timeout(connect)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            policy,
            timeout,
        })
    }

    pub fn policy(&self) -> &NetPolicy {
        &self.policy
    }

    fn url(&self, text: &str) -> Result<url::Url, OAuthError> {
        self.policy.parse_url(text).map_err(OAuthError::Refused)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, OAuthError> {
        req.timeout(self.timeout).send().await.map_err(|e| {
            // The host (never the path or query) and the deepest cause say what failed.
            let host = e
                .url()
                .and_then(|u| u.host_str())
                .unwrap_or("the server")
                .to_owned();
            if let Some(r) = crate::net::refused_in(&e) {
                OAuthError::Refused(r)
            } else if e.is_timeout() {
                OAuthError::Unreachable(format!("{host} timed out"))
            } else {
                let mut cause: &dyn std::error::Error = &e;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                OAuthError::Unreachable(format!("{host}: {cause}"))
            }
        })
    }

    /// GETs a JSON document.
    pub async fn get_json(&self, url: &str) -> Result<Fetched, OAuthError> {
        let url = self.url(url)?;
        let resp = self
            .send(self.client.get(url).header("accept", "application/json"))
            .await?;
        if resp.status() != StatusCode::OK {
            return Ok(Fetched::Missing);
        }
        let bytes = read_capped(resp).await?;
        Ok(serde_json::from_slice(&bytes).map_or(Fetched::Missing, Fetched::Json))
    }

    /// Asks an MCP endpoint without credentials (an `initialize`) and returns its
    /// `WWW-Authenticate` challenge when it answers 401 (`Some("")` for a 401 without one).
    pub async fn probe(&self, url: &url::Url) -> Result<Option<String>, OAuthError> {
        self.policy
            .check_url(url)
            .map_err(|e| OAuthError::Refused(e.to_string()))?;
        let body = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}}
        });
        let resp = self
            .send(
                self.client
                    .post(url.clone())
                    .header("accept", "application/json, text/event-stream")
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        Ok(Some(
            resp.headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.trim_start().to_ascii_lowercase().starts_with("bearer"))
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    /// POSTs a form (a token request), with HTTP Basic client authentication when given.
    pub async fn post_form(
        &self,
        url: &str,
        params: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<(StatusCode, Value), OAuthError> {
        let url = self.url(url)?;
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let mut req = self
            .client
            .post(url)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(id),
                enc(secret)
            ));
            req = req.header("authorization", format!("Basic {token}"));
        }
        let resp = self.send(req).await?;
        let status = resp.status();
        let bytes = read_capped(resp).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// POSTs JSON (dynamic client registration).
    pub async fn post_json(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value), OAuthError> {
        let url = self.url(url)?;
        let resp = self
            .send(
                self.client
                    .post(url)
                    .header("accept", "application/json")
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await?;
        let status = resp.status();
        let bytes = read_capped(resp).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

async fn read_capped(resp: reqwest::Response) -> Result<Vec<u8>, OAuthError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| OAuthError::Unreachable(e.without_url().to_string()))?;
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(OAuthError::Provider(format!(
                "answer larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
