//! The connector record: its public document (stored in clear) and its secrets (sealed by the
//! vault, bound to the connector id), and conversion to and from store rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroize;

use super::RegistryError;
use super::types::{ConnectorName, ConsumerType, Protocol, Visibility};
use crate::store::ConnectorRow;
use crate::vault::{RecordIdentity, Vault};

/// A connector-wide header (`global_headers`). Secret values live in [`ConnectorSecrets`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalHeader {
    /// The value in clear, only when not secret.
    pub value: Option<String>,
    pub is_secret: bool,
}

/// One declared authentication method, without its secrets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuthMethod {
    pub method_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_server_metadata: Option<Value>,
    /// OAuth client id (public, but never echoed in PublicAuthenticationMethod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub global_headers: BTreeMap<String, GlobalHeader>,
}

/// The secret parts of one auth method (same index as in [`ConnectorDocument::auth_methods`]).
/// `Debug` shows no value; values are zeroized on drop.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuthMethodSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_metadata_secrets: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub global_headers: BTreeMap<String, String>,
}

/// The public part of a connector, stored as JSON in clear.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectorDocument {
    pub description: String,
    pub server: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub auth_methods: Vec<AuthMethod>,
    #[serde(default)]
    pub global_headers: BTreeMap<String, GlobalHeader>,
    /// Names of the connector `headers` (their values are secret).
    #[serde(default)]
    pub header_names: Vec<String>,
    #[serde(default)]
    pub oauth2_server_metadata: Option<Value>,
    #[serde(default)]
    pub oauth2_server_metadata_url: Option<String>,
    #[serde(default)]
    pub private_tool_execution: bool,
}

/// The secret part of a connector, sealed as one blob. `Debug` shows header names only;
/// values are zeroized on drop.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectorSecrets {
    /// Connector `headers` (values may be any JSON; sent upstream as given).
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// Values of the secret `global_headers`.
    #[serde(default)]
    pub global_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub auth_methods: Vec<AuthMethodSecrets>,
}

fn zeroize_json(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(zeroize_json),
        Value::Object(m) => m.values_mut().for_each(zeroize_json),
        _ => {}
    }
}

impl Drop for AuthMethodSecrets {
    fn drop(&mut self) {
        self.client_secret.zeroize();
        if let Some(v) = &mut self.oauth2_metadata_secrets {
            zeroize_json(v);
        }
        self.global_headers.values_mut().for_each(Zeroize::zeroize);
    }
}

impl Drop for ConnectorSecrets {
    fn drop(&mut self) {
        self.headers.values_mut().for_each(zeroize_json);
        self.global_headers.values_mut().for_each(Zeroize::zeroize);
    }
}

impl std::fmt::Debug for AuthMethodSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMethodSecrets")
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field(
                "global_header_names",
                &self.global_headers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConnectorSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSecrets")
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "global_header_names",
                &self.global_headers.keys().collect::<Vec<_>>(),
            )
            .field("auth_methods", &self.auth_methods)
            .finish()
    }
}

impl ConnectorSecrets {
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
            && self.global_headers.is_empty()
            && self
                .auth_methods
                .iter()
                .all(|a| *a == AuthMethodSecrets::default())
    }
}

/// A connector as the domain sees it.
#[derive(Debug, Clone)]
pub struct Connector {
    pub id: String,
    pub name: ConnectorName,
    pub workspace_id: String,
    pub org_id: String,
    pub creator_id: String,
    pub visibility: Visibility,
    pub protocol: Protocol,
    pub supports_mcp: bool,
    pub doc: ConnectorDocument,
    /// The sealed [`ConnectorSecrets`], if any.
    pub sealed_secrets: Option<Vec<u8>>,
    pub created_at: String,
    pub modified_at: String,
}

impl Connector {
    pub fn owner_type(&self) -> ConsumerType {
        self.visibility.owner_type()
    }

    /// The id of the owner named by `owner_type`.
    pub fn owner_id(&self) -> &str {
        match self.visibility {
            Visibility::Private => &self.creator_id,
            Visibility::SharedWorkspace => &self.workspace_id,
            Visibility::SharedOrg => &self.org_id,
        }
    }

    /// Whether using the connector needs a stored credential: it declares an authentication
    /// method other than `none`, or `none` with a required header.
    pub fn requires_credentials(&self) -> bool {
        self.doc.auth_methods.iter().any(|m| {
            m.method_type != "none"
                || m.headers.as_ref().is_some_and(|hs| {
                    hs.iter()
                        .any(|h| h.get("is_required") != Some(&serde_json::Value::Bool(false)))
                })
        })
    }

    pub fn secret_identity(&self) -> RecordIdentity {
        RecordIdentity::connector_secrets(&self.id)
    }

    /// Opens the sealed secrets (empty when none were stored).
    pub fn open_secrets(&self, vault: &Vault) -> Result<ConnectorSecrets, RegistryError> {
        match &self.sealed_secrets {
            None => Ok(ConnectorSecrets::default()),
            Some(blob) => vault
                .open_json(blob, &self.secret_identity())
                .map_err(RegistryError::Vault),
        }
    }

    /// Seals `secrets` for this connector (nothing is stored when they are empty).
    pub fn seal_secrets(&mut self, vault: &Vault, secrets: &ConnectorSecrets) {
        self.sealed_secrets =
            (!secrets.is_empty()).then(|| vault.seal_json(secrets, &self.secret_identity()));
    }

    pub fn to_row(&self) -> ConnectorRow {
        ConnectorRow {
            id: self.id.clone(),
            name: self.name.as_str().to_owned(),
            workspace_id: self.workspace_id.clone(),
            org_id: self.org_id.clone(),
            creator_id: self.creator_id.clone(),
            owner_type: self.owner_type().as_str().to_owned(),
            owner_id: self.owner_id().to_owned(),
            visibility: self.visibility.as_str().to_owned(),
            protocol: self.protocol.as_str().to_owned(),
            supports_mcp: self.supports_mcp,
            document: serde_json::to_string(&self.doc).unwrap_or_default(),
            secrets: self.sealed_secrets.clone(),
            created_at: self.created_at.clone(),
            modified_at: self.modified_at.clone(),
        }
    }

    pub fn from_row(row: ConnectorRow) -> Result<Self, RegistryError> {
        let corrupt = |what: &str| RegistryError::Corrupt(format!("connector {}: {what}", row.id));
        Ok(Self {
            name: ConnectorName::parse(&row.name).map_err(|_| corrupt("bad name"))?,
            visibility: Visibility::parse(&row.visibility)
                .ok_or_else(|| corrupt("bad visibility"))?,
            protocol: Protocol::parse(&row.protocol).ok_or_else(|| corrupt("bad protocol"))?,
            doc: serde_json::from_str(&row.document).map_err(|_| corrupt("bad document"))?,
            supports_mcp: row.supports_mcp,
            workspace_id: row.workspace_id,
            org_id: row.org_id,
            creator_id: row.creator_id,
            sealed_secrets: row.secrets,
            created_at: row.created_at,
            modified_at: row.modified_at,
            id: row.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret_values() {
        let mut s = ConnectorSecrets::default();
        s.headers
            .insert("X-Key".into(), Value::String("hunter2".into()));
        s.global_headers.insert("X-G".into(), "hunter3".into());
        let mut m = AuthMethodSecrets::default();
        m.client_secret = Some("hunter4".into());
        s.auth_methods.push(m);
        let text = format!("{s:?}");
        assert!(text.contains("X-Key") && text.contains("X-G"));
        assert!(!text.contains("hunter"), "{text}");
    }
}
