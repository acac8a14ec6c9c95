//! Inbound caller identity: `Authorization: Bearer <key>` → [`Principal`]. API keys are
//! high-entropy random strings stored only as SHA-256 hashes.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::store::{ApiKeyRow, Store, StoreError, Viewer};
use crate::vault::crypto::{random_bytes, sha256_hex};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub workspace_id: String,
    pub org_id: String,
    /// Admin of its workspace and organization.
    pub is_admin: bool,
}

impl Principal {
    pub fn viewer(&self) -> Viewer {
        Viewer {
            user_id: self.user_id.clone(),
            workspace_id: self.workspace_id.clone(),
            org_id: self.org_id.clone(),
        }
    }
}

/// Validates a user, workspace or organization id: 1–128 of `[A-Za-z0-9_.@:-]`.
pub fn validate_identity_part(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.@:-".contains(c))
    {
        return Err("may contain only ASCII letters, digits and `_ . @ : -`".into());
    }
    Ok(s.to_owned())
}

/// The prefix every generated key starts with (helps secret scanners).
pub const KEY_PREFIX: &str = "sbk_";

/// Issues and checks API keys.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    store: Arc<dyn Store>,
}

impl ApiKeys {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The principal a presented key belongs to, if any.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>, StoreError> {
        if presented.is_empty() || presented.len() > 512 {
            return Ok(None);
        }
        let row = self
            .store
            .find_api_key(&sha256_hex(presented.as_bytes()))
            .await?;
        Ok(row.map(|r| Principal {
            user_id: r.user_id.clone(),
            workspace_id: r.workspace_id.clone(),
            org_id: r.org_id.clone(),
            is_admin: r.is_admin,
        }))
    }

    /// Creates a new random key for `principal`; the only time the key exists in clear.
    pub async fn create(&self, principal: &Principal) -> Result<SecretString, StoreError> {
        let key = format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        );
        self.register(&key, principal).await?;
        Ok(SecretString::from(key))
    }

    /// Stores the hash of a given key (the configured bootstrap key) unless already present.
    pub async fn register(&self, key: &str, principal: &Principal) -> Result<(), StoreError> {
        let key_hash = sha256_hex(key.as_bytes());
        if self.store.find_api_key(&key_hash).await?.is_some() {
            return Ok(());
        }
        self.store
            .insert_api_key(&ApiKeyRow {
                key_hash,
                key_prefix: key.chars().take(8).collect(),
                user_id: principal.user_id.clone(),
                workspace_id: principal.workspace_id.clone(),
                org_id: principal.org_id.clone(),
                is_admin: principal.is_admin,
                created_at: crate::registry::now_timestamp(),
            })
            .await
    }

    /// On a store with no key: registers the configured bootstrap key, or generates one and
    /// returns it (to be printed once). With a configured key, makes sure it is registered.
    pub async fn bootstrap(
        &self,
        configured: Option<&SecretString>,
        admin: &Principal,
    ) -> Result<Option<SecretString>, StoreError> {
        if let Some(key) = configured {
            self.register(key.expose_secret(), admin).await?;
            return Ok(None);
        }
        if self.store.count_api_keys().await? > 0 {
            return Ok(None);
        }
        self.create(admin).await.map(Some)
    }
}
