//! Credential types. Secret material lives in `secrecy` types in memory (redacted in `Debug`,
//! zeroized on drop) and is sealed by the vault at rest, bound to the credential id.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::registry::{AuthenticationType, ConnectorName, ConsumerType};
use crate::store::CredentialRow;
use crate::vault::{RecordIdentity, Vault, VaultError};

/// A credential name: the connector-name rules (1–64 of `[A-Za-z0-9_-]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialName(String);

impl CredentialName {
    pub fn parse(s: &str) -> Result<Self, String> {
        ConnectorName::parse(s).map(|n| Self(n.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CredentialName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose credential: a user's, a workspace's or an organization's (`user|workspace|org`).
pub type CredentialScope = ConsumerType;

/// OAuth client material (client-credentials grant).
pub struct OAuthClient {
    pub client_id: String,
    pub grant_type: String,
    pub client_secret: Option<SecretString>,
    pub client_certificate: Option<String>,
    pub client_private_key: Option<SecretString>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("grant_type", &self.grant_type)
            .finish_non_exhaustive()
    }
}

/// The secret material of a credential.
#[derive(Default)]
pub struct CredentialSecrets {
    pub bearer_token: Option<SecretString>,
    pub headers: Vec<(String, SecretString)>,
    pub oauth: Option<OAuthClient>,
    /// Tokens obtained by the authorization-code flow (`auth_url` → callback).
    pub tokens: Option<OAuthTokens>,
}

/// OAuth tokens and what refreshing them needs (the client and the token endpoint).
#[derive(Clone)]
pub struct OAuthTokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds; `None`: the provider gave no lifetime.
    pub expires_at: Option<i64>,
    pub scope: Option<String>,
    pub issuer: String,
    pub token_endpoint: String,
    /// RFC 8707 resource the tokens are for (sent again on refresh).
    pub resource: Option<String>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub client_auth_method: String,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("expires_at", &self.expires_at)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CredentialSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CredentialSecrets")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("header_names", &names)
            .field("oauth", &self.oauth)
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// What is sealed: plain strings, zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
struct SealedForm {
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    headers: Vec<SealedHeader>,
    #[serde(default)]
    oauth: Option<SealedOAuth>,
    #[serde(default)]
    tokens: Option<SealedTokens>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SealedTokens {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<i64>,
    scope: Option<String>,
    issuer: String,
    token_endpoint: String,
    resource: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    client_auth_method: String,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SealedHeader {
    name: String,
    value: String,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SealedOAuth {
    client_id: String,
    grant_type: String,
    client_secret: Option<String>,
    client_certificate: Option<String>,
    client_private_key: Option<String>,
}

fn expose(s: &Option<SecretString>) -> Option<String> {
    s.as_ref().map(|v| v.expose_secret().to_owned())
}

impl CredentialSecrets {
    pub fn seal(&self, vault: &Vault, credential_id: &str) -> Vec<u8> {
        let form = SealedForm {
            bearer_token: expose(&self.bearer_token),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| SealedHeader {
                    name: n.clone(),
                    value: v.expose_secret().to_owned(),
                })
                .collect(),
            oauth: self.oauth.as_ref().map(|o| SealedOAuth {
                client_id: o.client_id.clone(),
                grant_type: o.grant_type.clone(),
                client_secret: expose(&o.client_secret),
                client_certificate: o.client_certificate.clone(),
                client_private_key: expose(&o.client_private_key),
            }),
            tokens: self.tokens.as_ref().map(|t| SealedTokens {
                access_token: t.access_token.expose_secret().to_owned(),
                refresh_token: expose(&t.refresh_token),
                expires_at: t.expires_at,
                scope: t.scope.clone(),
                issuer: t.issuer.clone(),
                token_endpoint: t.token_endpoint.clone(),
                resource: t.resource.clone(),
                client_id: t.client_id.clone(),
                client_secret: expose(&t.client_secret),
                client_auth_method: t.client_auth_method.clone(),
            }),
        };
        vault.seal_json(&form, &RecordIdentity::credential_secrets(credential_id))
    }

    pub fn open(vault: &Vault, credential_id: &str, blob: &[u8]) -> Result<Self, VaultError> {
        let form: SealedForm =
            vault.open_json(blob, &RecordIdentity::credential_secrets(credential_id))?;
        let secret = |s: &Option<String>| s.as_deref().map(SecretString::from);
        Ok(Self {
            bearer_token: secret(&form.bearer_token),
            headers: form
                .headers
                .iter()
                .map(|h| (h.name.clone(), SecretString::from(h.value.as_str())))
                .collect(),
            oauth: form.oauth.as_ref().map(|o| OAuthClient {
                client_id: o.client_id.clone(),
                grant_type: o.grant_type.clone(),
                client_secret: secret(&o.client_secret),
                client_certificate: o.client_certificate.clone(),
                client_private_key: secret(&o.client_private_key),
            }),
            tokens: form.tokens.as_ref().map(|t| OAuthTokens {
                access_token: SecretString::from(t.access_token.as_str()),
                refresh_token: secret(&t.refresh_token),
                expires_at: t.expires_at,
                scope: t.scope.clone(),
                issuer: t.issuer.clone(),
                token_endpoint: t.token_endpoint.clone(),
                resource: t.resource.clone(),
                client_id: t.client_id.clone(),
                client_secret: secret(&t.client_secret),
                client_auth_method: t.client_auth_method.clone(),
            }),
        })
    }

    /// The authentication type this material implies (§5.10 Proposal).
    pub fn authentication_type(&self) -> Result<AuthenticationType, &'static str> {
        if self.tokens.is_some() {
            return Ok(AuthenticationType::Oauth2);
        }
        match (&self.bearer_token, &self.oauth, self.headers.is_empty()) {
            (Some(_), Some(_), _) => Err("give either bearer_token or oauth, not both"),
            (Some(_), None, _) => Ok(AuthenticationType::Bearer),
            (None, Some(_), _) => Ok(AuthenticationType::Oauth2),
            (None, None, false) => Ok(AuthenticationType::None),
            (None, None, true) => Err("credentials must contain bearer_token, headers or oauth"),
        }
    }
}

/// A validated create/upsert request body.
#[derive(Debug)]
pub struct CredentialInput {
    pub name: CredentialName,
    /// `None`: absent; `Some(None)`: explicit null (clears on update).
    pub title: Option<Option<String>>,
    pub is_default: Option<bool>,
    pub secrets: Option<CredentialSecrets>,
}

/// A stored credential (public part, plus its sealed secrets).
#[derive(Debug, Clone)]
pub struct Credential {
    pub id: String,
    pub connector_id: String,
    pub scope: CredentialScope,
    pub owner_id: String,
    pub name: String,
    pub title: Option<String>,
    pub authentication_type: String,
    pub is_default: bool,
    pub creator_id: String,
    pub sealed: Vec<u8>,
    pub created_at: String,
    pub modified_at: String,
    /// CredentialsStatus JSON (§4.4), when known.
    pub status: Option<String>,
}

impl Credential {
    pub fn from_row(r: CredentialRow) -> Option<Self> {
        Some(Self {
            scope: ConsumerType::parse(&r.scope)?,
            id: r.id,
            connector_id: r.connector_id,
            owner_id: r.owner_id,
            name: r.name,
            title: r.title,
            authentication_type: r.authentication_type,
            is_default: r.is_default,
            creator_id: r.creator_id,
            sealed: r.secrets,
            created_at: r.created_at,
            modified_at: r.modified_at,
            status: r.status,
        })
    }

    pub fn to_row(&self) -> CredentialRow {
        CredentialRow {
            id: self.id.clone(),
            connector_id: self.connector_id.clone(),
            scope: self.scope.as_str().to_owned(),
            owner_id: self.owner_id.clone(),
            name: self.name.clone(),
            title: self.title.clone(),
            authentication_type: self.authentication_type.clone(),
            is_default: self.is_default,
            creator_id: self.creator_id.clone(),
            secrets: self.sealed.clone(),
            created_at: self.created_at.clone(),
            modified_at: self.modified_at.clone(),
            status: self.status.clone(),
        }
    }
}

/// The credential a request uses, opened.
#[derive(Debug)]
pub struct SelectedCredential {
    pub id: String,
    /// The set the credential belongs to (for writing refreshed tokens back).
    pub set: crate::store::CredentialSetKey,
    pub version: String,
    pub authentication_type: String,
    pub secrets: CredentialSecrets,
}
