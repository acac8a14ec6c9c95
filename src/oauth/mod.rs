//! OAuth 2 for upstream connectors: the authorization-code flow with PKCE (`auth_url` →
//! provider → callback → a user-scope credential holding sealed tokens), discovery, dynamic
//! client registration, the client-credentials grant, and refresh — ahead of expiry and after an
//! upstream 401, one refresh per credential at a time in a process (a mutex) and across
//! replicas (a lease row in the shared store), the losers using the winner's token.

mod discovery;
mod http;
mod state;
mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub use discovery::{Discovered, auth_param};
pub use http::HttpJson;
pub use state::StateClaims;
pub use token::{ClientAuth, TokenError};

use crate::config::OAuthConfig;
use crate::credentials::{
    CredentialName, CredentialSecrets, Credentials, CredentialsError, OAuthTokens,
    SelectedCredential,
};
use crate::identity::Principal;
use crate::registry::{AuthMethod, Connector, Registry, RegistryError};
use crate::store::{OAuthClientRow, Store, StoreError};
use crate::vault::{RecordIdentity, Vault};

/// The callback path on the API listener (not part of the SDK surface).
pub const CALLBACK_PATH: &str = "/oauth/callback";
/// How long a refresh lease is held at most (a crashed holder frees it after this).
const LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request cannot start an interactive authorization (400).
    #[error("{0}")]
    BadRequest(String),
    /// Discovery failed (the upstream or its authorization server).
    #[error("OAuth discovery failed: {0}")]
    Discovery(String),
    /// The outbound policy refused a URL.
    #[error("refused by the outbound policy: {0}")]
    Refused(String),
    /// The connector's server or its authorization server cannot be reached.
    #[error("unreachable during OAuth: {0}")]
    Unreachable(String),
    #[error("authorization server error: {0}")]
    Provider(String),
    /// The credential's tokens could not be refreshed (`credentials_refresh_failed`).
    #[error("OAuth token refresh failed: {0}")]
    RefreshFailed(String),
}

#[derive(Clone)]
pub struct OAuth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("redirect_uri", &self.inner.redirect_uri)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: HttpJson,
    vault: Arc<Vault>,
    store: Arc<dyn Store>,
    registry: Registry,
    credentials: Credentials,
    config: OAuthConfig,
    redirect_uri: String,
    /// Discovery results per connector version (`None`: the upstream asks for no OAuth).
    discovered: moka::future::Cache<String, Option<Arc<Discovered>>>,
    /// One refresh per credential at a time in this process.
    locks: moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
    /// Client-credentials tokens per credential version: (token, expiry unix seconds).
    client_tokens: moka::future::Cache<String, (SecretString, Option<i64>)>,
    /// This process, as a lease holder.
    holder: String,
    /// How long a request waits for another replica's refresh.
    wait: Duration,
}

/// The query of `GET /v1/connectors/{ref}/auth_url` (§5.6).
#[derive(Debug, Default)]
pub struct AuthUrlRequest {
    pub app_return_url: Option<String>,
    pub method_type: Option<String>,
    pub credentials_name: Option<String>,
    pub credentials_title: Option<String>,
    pub github_installation_link: bool,
}

/// The query of the callback.
#[derive(Debug, Default)]
pub struct CallbackRequest {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

/// How the callback ends.
#[derive(Debug)]
pub enum CallbackOutcome {
    /// Redirect the browser back to the application.
    Redirect(String),
    /// Show a small page: (HTTP status, title, message).
    Page(u16, &'static str, String),
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// CredentialsStatus (§4.4) JSON.
fn status_json(ok: bool, http_code: Option<u16>, reason: Option<&str>) -> String {
    json!({
        "status_type": if ok { "valid" } else { "error" },
        "last_checked_at": crate::registry::now_timestamp(),
        "error_http_code": http_code,
        "error_message": reason,
    })
    .to_string()
}

/// A short, non-reversible fingerprint of a token, so a pooled upstream session follows the
/// token it was opened with.
pub fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl OAuth {
    #[allow(
        clippy::too_many_arguments,
        reason = "wiring of the application's services"
    )]
    pub fn new(
        http: HttpJson,
        vault: Arc<Vault>,
        store: Arc<dyn Store>,
        registry: Registry,
        credentials: Credentials,
        config: OAuthConfig,
        api_base: &str,
        wait: Duration,
    ) -> Self {
        let base = config.public_url.as_ref().map_or_else(
            || api_base.trim_end_matches('/').to_owned(),
            |u| u.as_str().trim_end_matches('/').to_owned(),
        );
        Self {
            inner: Arc::new(Inner {
                http,
                vault,
                store,
                registry,
                credentials,
                redirect_uri: format!("{base}{CALLBACK_PATH}"),
                config,
                discovered: moka::future::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(Duration::from_secs(600))
                    .build(),
                locks: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(Duration::from_secs(600))
                    .build(),
                client_tokens: moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(24 * 3600))
                    .build(),
                holder: uuid::Uuid::new_v4().to_string(),
                wait,
            }),
        }
    }

    /// The redirect URI registered with providers.
    pub fn redirect_uri(&self) -> &str {
        &self.inner.redirect_uri
    }

    /// Forgets what was discovered about a connector (it changed or was deleted).
    pub fn forget_connector(&self, connector_id: &str) {
        let prefix = format!("{connector_id}@");
        let _ = self
            .inner
            .discovered
            .invalidate_entries_if(move |k, _| k.starts_with(&prefix));
    }

    async fn discovered(
        &self,
        c: &Connector,
        method: Option<&AuthMethod>,
    ) -> Result<Option<Arc<Discovered>>, OAuthError> {
        let key = format!(
            "{}@{}#{}",
            c.id,
            c.modified_at,
            method.map_or(String::new(), |m| m.method_type.clone())
        );
        let http = self.inner.http.clone();
        self.inner
            .discovered
            .try_get_with(key, async move {
                discovery::discover(&http, c, method)
                    .await
                    .map(|d| d.map(Arc::new))
            })
            .await
            .map_err(|e: Arc<OAuthError>| match &*e {
                OAuthError::Refused(m) => OAuthError::Refused(m.clone()),
                OAuthError::Unreachable(m) => OAuthError::Unreachable(m.clone()),
                other => OAuthError::Discovery(other.to_string()),
            })
    }

    /// PublicAuthenticationMethod list (§5.7): the declared methods, OAuth ones completed with
    /// discovered metadata when they carry none; for a connector declaring no method, an
    /// `oauth2` method when its upstream asks for OAuth.
    pub async fn authentication_methods(&self, c: &Connector) -> Vec<Value> {
        let connector_md = c.doc.oauth2_server_metadata.as_ref();
        if c.doc.auth_methods.is_empty() {
            return match self.discovered(c, None).await {
                Ok(Some(d)) => vec![crate::api::view::public_auth_method(
                    &AuthMethod {
                        method_type: "oauth2".into(),
                        grant_type: Some("authorization_code".into()),
                        ..AuthMethod::default()
                    },
                    Some(&Value::Object(d.metadata.clone())),
                )],
                _ => Vec::new(),
            };
        }
        let mut out = Vec::new();
        for m in &c.doc.auth_methods {
            let interactive =
                m.method_type == "oauth2" && m.grant_type.as_deref() != Some("client_credentials");
            let mut v = crate::api::view::public_auth_method(m, connector_md);
            if interactive && v["oauth2_server_metadata"].is_null() {
                let found = tokio::time::timeout(self.inner.wait, self.discovered(c, Some(m)));
                if let Ok(Ok(Some(d))) = found.await {
                    v["oauth2_server_metadata"] = Value::Object(d.metadata.clone());
                }
            }
            out.push(v);
        }
        out
    }

    /// The interactive method of a connector for `auth_url`.
    fn interactive_method<'c>(
        c: &'c Connector,
        requested: Option<&str>,
    ) -> Result<Option<&'c AuthMethod>, OAuthError> {
        if let Some(t) = requested {
            if t != "oauth2" {
                return Err(OAuthError::BadRequest(format!(
                    "Interactive authorization with method_type '{t}' is not supported by this gateway"
                )));
            }
        }
        if c.doc.auth_methods.is_empty() {
            return Ok(None);
        }
        c.doc
            .auth_methods
            .iter()
            .find(|m| {
                m.method_type == "oauth2" && m.grant_type.as_deref() != Some("client_credentials")
            })
            .map(Some)
            .ok_or_else(|| {
                OAuthError::BadRequest(
                    "The connector has no interactive authentication method (oauth2 with the \
                     authorization_code grant)"
                        .into(),
                )
            })
    }

    /// `GET /v1/connectors/{ref}/auth_url`: (URL to open, seconds it stays valid).
    pub async fn auth_url(
        &self,
        p: &Principal,
        reference: &str,
        q: AuthUrlRequest,
    ) -> Result<(String, u64), OAuthError> {
        let c = self.inner.registry.resolve(p, reference).await?;
        let name = CredentialName::parse(q.credentials_name.as_deref().unwrap_or("default"))
            .map_err(|m| OAuthError::BadRequest(format!("credentials_name: {m}")))?;
        let method = Self::interactive_method(&c, q.method_type.as_deref())?;
        if q.github_installation_link {
            return Err(OAuthError::BadRequest(
                "The connector is not configured for a GitHub App installation".into(),
            ));
        }
        let d = self.discovered(&c, method).await?.ok_or_else(|| {
            OAuthError::BadRequest(
                "The connector's server does not ask for OAuth (no 401 and no protected \
                 resource metadata)"
                    .into(),
            )
        })?;
        let authorize = d.authorization_endpoint.clone().ok_or_else(|| {
            OAuthError::Discovery("the authorization server has no authorization_endpoint".into())
        })?;
        let mut url = self
            .inner
            .http
            .policy()
            .parse_url(&authorize)
            .map_err(OAuthError::Refused)?;
        let client = self.client_for(&c, method, &d).await?;
        let ttl = self.inner.config.state_ttl.as_secs();
        let claims = StateClaims {
            nonce: state::random_token(16),
            exp: now_secs() + i64::try_from(ttl).unwrap_or(600),
            user: p.user_id.clone(),
            workspace: p.workspace_id.clone(),
            org: p.org_id.clone(),
            admin: p.is_admin,
            connector: c.id.clone(),
            name: name.as_str().to_owned(),
            title: q.credentials_title.filter(|t| !t.is_empty()),
            return_url: q.app_return_url.filter(|u| !u.is_empty()),
            verifier: state::random_token(32),
            issuer: d.issuer.clone(),
            token_endpoint: d.token_endpoint.clone(),
            client_id: client.client_id.clone(),
            resource: d.resource.clone(),
            redirect_uri: self.inner.redirect_uri.clone(),
        };
        {
            let mut qp = url.query_pairs_mut();
            qp.append_pair("response_type", "code")
                .append_pair("client_id", &client.client_id)
                .append_pair("redirect_uri", &self.inner.redirect_uri)
                .append_pair("state", &claims.seal(&self.inner.vault))
                .append_pair("code_challenge", &state::code_challenge(&claims.verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(r) = &d.resource {
                qp.append_pair("resource", r);
            }
            if let Some(s) = &d.scope {
                qp.append_pair("scope", s);
            }
        }
        Ok((url.into(), ttl))
    }

    /// The OAuth client for a connector's method: its configured `client_id` (and sealed
    /// secret), or a dynamically registered one (RFC 7591), stored per (issuer, redirect URI)
    /// and reused.
    async fn client_for(
        &self,
        c: &Connector,
        method: Option<&AuthMethod>,
        d: &Discovered,
    ) -> Result<ClientAuth, OAuthError> {
        let prefer = |has_secret: bool| -> String {
            if has_secret {
                d.secret_auth_method()
                    .unwrap_or("client_secret_basic")
                    .into()
            } else {
                "none".into()
            }
        };
        if let Some((idx, m)) = method.and_then(|m| {
            c.doc
                .auth_methods
                .iter()
                .position(|x| std::ptr::eq(x, m))
                .map(|i| (i, m))
        }) {
            if let Some(client_id) = m.client_id.as_ref().filter(|s| !s.is_empty()) {
                let secrets = c.open_secrets(&self.inner.vault)?;
                let secret = secrets
                    .auth_methods
                    .get(idx)
                    .and_then(|s| s.client_secret.clone())
                    .filter(|s| !s.is_empty());
                let method = m
                    .token_endpoint_auth_method
                    .clone()
                    .unwrap_or_else(|| prefer(secret.is_some()));
                return Ok(ClientAuth {
                    client_id: client_id.clone(),
                    client_secret: secret.map(SecretString::from),
                    method,
                });
            }
        }
        self.registered_client(d).await
    }

    async fn registered_client(&self, d: &Discovered) -> Result<ClientAuth, OAuthError> {
        let store = &self.inner.store;
        let redirect = &self.inner.redirect_uri;
        for _ in 0..3 {
            if let Some(row) = store.oauth_client(&d.issuer, redirect).await? {
                return self.open_client(&row);
            }
            let endpoint = d.registration_endpoint.as_deref().ok_or_else(|| {
                OAuthError::BadRequest(
                    "The connector has no OAuth client_id and its authorization server offers no \
                     dynamic client registration"
                        .into(),
                )
            })?;
            let wanted = d.secret_auth_method().unwrap_or("none");
            let body = json!({
                "client_name": "Switchboard",
                "redirect_uris": [redirect],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": wanted,
                "application_type": "web",
            });
            tracing::info!(issuer = %d.issuer, "registering an OAuth client (RFC 7591)");
            let (status, answer) = self.inner.http.post_json(endpoint, &body).await?;
            let client_id = answer.get("client_id").and_then(Value::as_str);
            let (true, Some(client_id)) = (status.is_success(), client_id) else {
                let err = answer
                    .get("error_description")
                    .or_else(|| answer.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("no client_id in the answer");
                return Err(OAuthError::Provider(format!(
                    "dynamic client registration failed ({status}): {err}"
                )));
            };
            let id = uuid::Uuid::now_v7().to_string();
            let secret = answer.get("client_secret").and_then(Value::as_str);
            let auth_method = answer
                .get("token_endpoint_auth_method")
                .and_then(Value::as_str)
                .unwrap_or(if secret.is_some() {
                    "client_secret_basic"
                } else {
                    "none"
                })
                .to_owned();
            let row = OAuthClientRow {
                secrets: secret.map(|s| {
                    self.inner
                        .vault
                        .seal(s.as_bytes(), &RecordIdentity::oauth_client_secrets(&id))
                }),
                id,
                issuer: d.issuer.clone(),
                redirect_uri: redirect.clone(),
                client_id: client_id.to_owned(),
                auth_method,
                created_at: crate::registry::now_timestamp(),
            };
            if store.insert_oauth_client(&row).await? {
                return self.open_client(&row);
            }
            // Another replica registered at the same time: use its registration.
        }
        Err(OAuthError::Provider(
            "client registration kept conflicting".into(),
        ))
    }

    fn open_client(&self, row: &OAuthClientRow) -> Result<ClientAuth, OAuthError> {
        let client_secret = match &row.secrets {
            None => None,
            Some(blob) => {
                let bytes = self
                    .inner
                    .vault
                    .open(blob, &RecordIdentity::oauth_client_secrets(&row.id))
                    .map_err(|e| OAuthError::Provider(format!("stored client secret: {e}")))?;
                Some(SecretString::from(
                    String::from_utf8_lossy(&bytes).into_owned(),
                ))
            }
        };
        Ok(ClientAuth {
            client_id: row.client_id.clone(),
            client_secret,
            method: row.auth_method.clone(),
        })
    }

    /// The client a state was issued for, found again at the callback.
    async fn client_of_state(&self, claims: &StateClaims) -> Result<ClientAuth, OAuthError> {
        let p = claims.principal();
        let c = self.inner.registry.resolve(&p, &claims.connector).await?;
        let method = Self::interactive_method(&c, None)?;
        if let Some(d) = self.discovered(&c, method).await? {
            let client = self.client_for(&c, method, &d).await?;
            if client.client_id == claims.client_id {
                return Ok(client);
            }
        }
        if let Some(row) = self
            .inner
            .store
            .oauth_client(&claims.issuer, &claims.redirect_uri)
            .await?
        {
            if row.client_id == claims.client_id {
                return self.open_client(&row);
            }
        }
        Err(OAuthError::Provider(
            "the OAuth client this authorization was started with is gone; start again".into(),
        ))
    }

    /// Whether the callback may redirect to `url` (a configured prefix, on a boundary).
    fn return_allowed(&self, url: &str) -> bool {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return false;
        }
        self.inner.config.return_urls.iter().any(|prefix| {
            url == prefix
                || (url.starts_with(prefix.as_str())
                    && (prefix.ends_with('/')
                        || matches!(url.as_bytes().get(prefix.len()), Some(b'/' | b'?' | b'#'))))
        })
    }

    /// The provider's redirect back: checks the state (sealed, unexpired, unused), exchanges
    /// the code and stores the tokens as the user's credential. Nothing changes on any error.
    pub async fn callback(&self, q: CallbackRequest) -> CallbackOutcome {
        let fail =
            |status: u16, msg: String| CallbackOutcome::Page(status, "Authorization failed", msg);
        let Some(claims) = q
            .state
            .as_deref()
            .and_then(|s| StateClaims::open(&self.inner.vault, s))
        else {
            return fail(400, "The authorization state is missing or invalid.".into());
        };
        let now = now_secs();
        if claims.exp < now {
            return fail(
                400,
                "This authorization link has expired; start again.".into(),
            );
        }
        match self
            .inner
            .store
            .consume_oauth_state(&claims.nonce, claims.exp, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return fail(
                    400,
                    "This authorization was already completed or used.".into(),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "oauth callback: store unavailable");
                return fail(
                    503,
                    "The gateway cannot complete the authorization right now.".into(),
                );
            }
        }
        if let Some(err) = &q.error {
            let desc = q.error_description.as_deref().unwrap_or("");
            tracing::info!(connector = %claims.connector, error = %err, "oauth authorization not granted");
            return fail(
                400,
                format!(
                    "The provider did not grant access: {err}{}{desc}",
                    if desc.is_empty() { "" } else { ": " }
                ),
            );
        }
        if let Some(iss) = &q.iss {
            if iss.trim_end_matches('/') != claims.issuer.trim_end_matches('/') {
                return fail(
                    400,
                    "The answer came from another authorization server.".into(),
                );
            }
        }
        let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
            return fail(400, "The provider sent no authorization code.".into());
        };
        match self.complete(&claims, code).await {
            Ok(()) => {
                tracing::info!(connector = %claims.connector, credential = %claims.name, "oauth credential stored");
                match &claims.return_url {
                    Some(u) if self.return_allowed(u) => CallbackOutcome::Redirect(u.clone()),
                    _ => CallbackOutcome::Page(
                        200,
                        "Connected",
                        format!(
                            "The connection is ready (credentials '{}'). You can close this window.",
                            claims.name
                        ),
                    ),
                }
            }
            Err(e) => {
                tracing::warn!(connector = %claims.connector, error = %e, "oauth code exchange failed");
                fail(
                    502,
                    format!("The authorization could not be completed: {e}"),
                )
            }
        }
    }

    async fn complete(&self, claims: &StateClaims, code: &str) -> Result<(), OAuthError> {
        let client = self.client_of_state(claims).await?;
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", claims.redirect_uri.as_str()),
            ("code_verifier", claims.verifier.as_str()),
        ];
        if let Some(r) = &claims.resource {
            params.push(("resource", r));
        }
        let answer = match token::request(
            &self.inner.http,
            &claims.token_endpoint,
            &client,
            &params,
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                if let TokenError::Rejected { error, .. } = &e {
                    if error == "invalid_client" {
                        self.forget_registration(&claims.issuer, &claims.client_id)
                            .await;
                    }
                }
                return Err(OAuthError::Provider(format!("token exchange: {e}")));
            }
        };
        let tokens = tokens_from(
            answer,
            claims.issuer.clone(),
            claims.token_endpoint.clone(),
            claims.resource.clone(),
            &client,
            None,
        );
        let name = CredentialName::parse(&claims.name).map_err(OAuthError::BadRequest)?;
        let secrets = CredentialSecrets {
            tokens: Some(tokens),
            ..CredentialSecrets::default()
        };
        let saved = self
            .inner
            .credentials
            .save_authorized(
                &claims.principal(),
                &claims.connector,
                name,
                claims.title.clone(),
                secrets,
            )
            .await?;
        let set = crate::store::CredentialSetKey {
            connector_id: saved.connector_id.clone(),
            scope: saved.scope.as_str().to_owned(),
            owner_id: saved.owner_id.clone(),
        };
        self.inner
            .credentials
            .replace_secrets(&set, &saved.id, None, Some(status_json(true, None, None)))
            .await?;
        Ok(())
    }

    /// Drops a dynamically registered client the provider no longer knows, so the next
    /// authorization registers a new one.
    async fn forget_registration(&self, issuer: &str, client_id: &str) {
        if let Ok(Some(row)) = self
            .inner
            .store
            .oauth_client(issuer, &self.inner.redirect_uri)
            .await
        {
            if row.client_id == client_id {
                tracing::warn!(
                    issuer,
                    "provider answered invalid_client: dropping the registration"
                );
                let _ = self.inner.store.delete_oauth_client(&row.id).await;
            }
        }
    }

    /// The access token for an `oauth2` credential: its stored token while fresh, otherwise
    /// (or when `rejected` is that token) a refreshed one; for client-credentials material, a
    /// token from the client-credentials grant.
    pub async fn bearer(
        &self,
        c: &Connector,
        sel: &SelectedCredential,
        rejected: Option<&str>,
    ) -> Result<SecretString, OAuthError> {
        if let Some(t) = &sel.secrets.tokens {
            if self.fresh(t, rejected) {
                return Ok(t.access_token.clone());
            }
            return self.refresh(sel, rejected).await;
        }
        if sel.secrets.oauth.is_some() {
            return self.client_credentials(c, sel, rejected).await;
        }
        Err(OAuthError::RefreshFailed(
            "this OAuth2 credential holds no token; authorize it through auth_url".into(),
        ))
    }

    fn fresh(&self, t: &OAuthTokens, rejected: Option<&str>) -> bool {
        let skew = i64::try_from(self.inner.config.refresh_skew.as_secs()).unwrap_or(0);
        rejected.is_none_or(|r| r != t.access_token.expose_secret())
            && t.expires_at.is_none_or(|e| e > now_secs() + skew)
    }

    async fn refresh(
        &self,
        sel: &SelectedCredential,
        rejected: Option<&str>,
    ) -> Result<SecretString, OAuthError> {
        let lock = self
            .inner
            .locks
            .get_with(sel.id.clone(), || Arc::new(tokio::sync::Mutex::new(())));
        let _one_at_a_time = lock.lock().await;
        let lease = format!("oauth-refresh:{}", sel.id);
        let deadline = Instant::now() + self.inner.wait;
        loop {
            let current = self.current_tokens(sel).await?;
            if let Some(t) = &current.secrets.tokens {
                if self.fresh(t, rejected) {
                    return Ok(t.access_token.clone());
                }
            }
            let now = now_ms();
            let until = now + i64::try_from(LEASE.as_millis()).unwrap_or(30_000);
            if self
                .inner
                .store
                .try_lease(&lease, &self.inner.holder, now, until)
                .await?
            {
                let result = self.refresh_holding_lease(sel, rejected).await;
                if let Err(e) = self
                    .inner
                    .store
                    .release_lease(&lease, &self.inner.holder)
                    .await
                {
                    tracing::warn!(error = %e, "could not release an OAuth refresh lease (it expires by itself)");
                }
                return result;
            }
            if Instant::now() > deadline {
                return Err(OAuthError::RefreshFailed(
                    "timed out waiting for a concurrent refresh".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn current_tokens(
        &self,
        sel: &SelectedCredential,
    ) -> Result<SelectedCredential, OAuthError> {
        self.inner
            .credentials
            .reread(&sel.set, &sel.id)
            .await?
            .ok_or_else(|| OAuthError::RefreshFailed("the credential was deleted".into()))
    }

    async fn refresh_holding_lease(
        &self,
        sel: &SelectedCredential,
        rejected: Option<&str>,
    ) -> Result<SecretString, OAuthError> {
        // Read again under the lease: the previous holder may have just finished.
        let current = self.current_tokens(sel).await?;
        let Some(t) = &current.secrets.tokens else {
            return Err(OAuthError::RefreshFailed(
                "the credential holds no token".into(),
            ));
        };
        if self.fresh(t, rejected) {
            return Ok(t.access_token.clone());
        }
        let Some(refresh_token) = &t.refresh_token else {
            return Err(OAuthError::RefreshFailed(
                "the access token expired and there is no refresh token: you need to reconnect"
                    .into(),
            ));
        };
        let client = ClientAuth {
            client_id: t.client_id.clone(),
            client_secret: t.client_secret.clone(),
            method: t.client_auth_method.clone(),
        };
        let mut params = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        if let Some(r) = &t.resource {
            params.push(("resource", r));
        }
        tracing::info!(credential = %sel.id, "refreshing an OAuth access token");
        match token::request(&self.inner.http, &t.token_endpoint, &client, &params).await {
            Ok(answer) => {
                let new = tokens_from(
                    answer,
                    t.issuer.clone(),
                    t.token_endpoint.clone(),
                    t.resource.clone(),
                    &client,
                    Some(refresh_token),
                );
                crate::metrics::get()
                    .oauth_refresh
                    .with_label_values(&["success"])
                    .inc();
                let access = new.access_token.clone();
                let secrets = with_tokens(&current.secrets, new);
                self.inner
                    .credentials
                    .replace_secrets(
                        &sel.set,
                        &sel.id,
                        Some(&secrets),
                        Some(status_json(true, None, None)),
                    )
                    .await?;
                Ok(access)
            }
            Err(e) => {
                tracing::warn!(credential = %sel.id, error = %e, "OAuth refresh failed");
                crate::metrics::get()
                    .oauth_refresh
                    .with_label_values(&["failure"])
                    .inc();
                // A refresh token the provider refused for good is dropped (no retry storm);
                // the credential then asks for a new authorization.
                let secrets = e.is_permanent().then(|| {
                    with_tokens(
                        &current.secrets,
                        OAuthTokens {
                            refresh_token: None,
                            ..t.clone()
                        },
                    )
                });
                let status = status_json(false, e.http_status(), Some("oauth refresh error"));
                if let Err(w) = self
                    .inner
                    .credentials
                    .replace_secrets(&sel.set, &sel.id, secrets.as_ref(), Some(status))
                    .await
                {
                    tracing::warn!(error = %w, "could not record the refresh failure");
                }
                Err(OAuthError::RefreshFailed(e.to_string()))
            }
        }
    }

    /// Client-credentials grant (§5.1): the token endpoint and authentication method come from
    /// the connector's `client_credentials` method, the client from the credential.
    async fn client_credentials(
        &self,
        c: &Connector,
        sel: &SelectedCredential,
        rejected: Option<&str>,
    ) -> Result<SecretString, OAuthError> {
        let key = format!("{}@{}", sel.id, sel.version);
        if let Some((token, exp)) = self.inner.client_tokens.get(&key).await {
            let skew = i64::try_from(self.inner.config.refresh_skew.as_secs()).unwrap_or(0);
            if rejected.is_none_or(|r| r != token.expose_secret())
                && exp.is_none_or(|e| e > now_secs() + skew)
            {
                return Ok(token);
            }
        }
        let Some(material) = &sel.secrets.oauth else {
            return Err(OAuthError::RefreshFailed("no client material".into()));
        };
        let method = c.doc.auth_methods.iter().find(|m| {
            m.method_type == "oauth2" && m.grant_type.as_deref() == Some("client_credentials")
        });
        let d = self
            .discovered(c, method)
            .await
            .map_err(|e| OAuthError::RefreshFailed(e.to_string()))?
            .ok_or_else(|| {
                OAuthError::RefreshFailed(
                    "no authorization server is known for this connector".into(),
                )
            })?;
        let client = ClientAuth {
            client_id: material.client_id.clone(),
            client_secret: material.client_secret.clone(),
            method: method
                .and_then(|m| m.token_endpoint_auth_method.clone())
                .unwrap_or_else(|| "client_secret_basic".into()),
        };
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(s) = &d.scope {
            params.push(("scope", s));
        }
        if let Some(r) = &d.resource {
            params.push(("resource", r));
        }
        let answer = token::request(&self.inner.http, &d.token_endpoint, &client, &params)
            .await
            .map_err(|e| OAuthError::RefreshFailed(format!("client credentials grant: {e}")))?;
        let exp = answer.expires_in.map(|s| now_secs() + s);
        self.inner
            .client_tokens
            .insert(key, (answer.access_token.clone(), exp))
            .await;
        Ok(answer.access_token)
    }
}

/// The credential's material with new tokens (its extra headers kept).
fn with_tokens(current: &CredentialSecrets, tokens: OAuthTokens) -> CredentialSecrets {
    CredentialSecrets {
        tokens: Some(tokens),
        headers: current.headers.clone(),
        ..CredentialSecrets::default()
    }
}

/// Tokens to store from a token answer; a refresh answer without a new refresh token keeps
/// the old one (no rotation).
fn tokens_from(
    answer: token::TokenAnswer,
    issuer: String,
    token_endpoint: String,
    resource: Option<String>,
    client: &ClientAuth,
    previous_refresh: Option<&SecretString>,
) -> OAuthTokens {
    OAuthTokens {
        expires_at: answer.expires_in.map(|s| now_secs() + s),
        refresh_token: answer.refresh_token.or_else(|| previous_refresh.cloned()),
        access_token: answer.access_token,
        scope: answer.scope,
        issuer,
        token_endpoint,
        resource,
        client_id: client.client_id.clone(),
        client_secret: client.client_secret.clone(),
        client_auth_method: client.method.clone(),
    }
}
