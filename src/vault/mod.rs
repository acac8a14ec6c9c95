//! The vault: envelope encryption of every secret at rest. A key ring of AES-256-GCM keys
//! (the primary seals, every loaded key opens its own blobs), bound to the owning record's
//! identity. Cipher primitives live in [`crypto`] only.

pub mod crypto;
mod keys;

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use crypto::CryptoError;
pub use keys::{KeySource, load_or_create};

/// Errors of the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("sealed payload is not valid JSON: {0}")]
    Payload(serde_json::Error),
    #[error("vault key: {0}")]
    Key(String),
}

/// Identity of the record that owns a sealed blob; used as associated data so a blob copied
/// to another row (or another column) does not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordIdentity(String);

impl RecordIdentity {
    /// The secrets of connector `id`.
    pub fn connector_secrets(id: &str) -> Self {
        Self(format!("switchboard/connector/{id}/secrets"))
    }

    /// The secrets of credential `id`.
    pub fn credential_secrets(id: &str) -> Self {
        Self(format!("switchboard/credential/{id}/secrets"))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Display for RecordIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key ring: seals with the primary key, opens with whichever key a blob names.
pub struct Vault {
    primary: String,
    keys: HashMap<String, crypto::SealingKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Vault")
            .field("primary", &self.primary)
            .field("key_ids", &ids)
            .finish()
    }
}

impl Vault {
    /// Builds a ring whose first key is the primary. Fails on an empty list or duplicate ids.
    pub fn new(keys: Vec<crypto::SealingKey>) -> Result<Self, VaultError> {
        let primary = keys
            .first()
            .map(|k| k.id().to_owned())
            .ok_or_else(|| VaultError::Key("no key given".into()))?;
        let mut map = HashMap::new();
        for key in keys {
            let id = key.id().to_owned();
            if map.insert(id.clone(), key).is_some() {
                return Err(VaultError::Key(format!("key id `{id}` given twice")));
            }
        }
        Ok(Self { primary, keys: map })
    }

    /// The id of the key that seals new blobs.
    pub fn primary_key_id(&self) -> &str {
        &self.primary
    }

    pub fn seal(&self, plaintext: &[u8], owner: &RecordIdentity) -> Vec<u8> {
        self.keys[&self.primary].seal(plaintext, owner.as_bytes())
    }

    pub fn open(
        &self,
        blob: &[u8],
        owner: &RecordIdentity,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let kid = crypto::blob_key_id(blob)?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_owned()))?;
        Ok(key.open(blob, owner.as_bytes())?)
    }

    pub fn seal_json<T: Serialize>(&self, value: &T, owner: &RecordIdentity) -> Vec<u8> {
        let plain = Zeroizing::new(serde_json::to_vec(value).unwrap_or_default());
        self.seal(&plain, owner)
    }

    pub fn open_json<T: DeserializeOwned>(
        &self,
        blob: &[u8],
        owner: &RecordIdentity,
    ) -> Result<T, VaultError> {
        let plain = self.open(blob, owner)?;
        serde_json::from_slice(&plain).map_err(VaultError::Payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto::{KEY_LEN, SealingKey};

    #[test]
    fn opens_blobs_of_every_loaded_key_and_seals_with_primary() {
        let old = Vault::new(vec![SealingKey::new(Some("old"), &[1; KEY_LEN])]).unwrap();
        let owner = RecordIdentity::connector_secrets("c1");
        let blob = old.seal_json(&serde_json::json!({"a": 1}), &owner);
        let ring = Vault::new(vec![
            SealingKey::new(Some("new"), &[2; KEY_LEN]),
            SealingKey::new(Some("old"), &[1; KEY_LEN]),
        ])
        .unwrap();
        let v: serde_json::Value = ring.open_json(&blob, &owner).unwrap();
        assert_eq!(v["a"], 1);
        let fresh = ring.seal(b"x", &owner);
        assert_eq!(crypto::blob_key_id(&fresh).unwrap(), "new");
        assert!(old.open(&fresh, &owner).is_err());
        let moved = RecordIdentity::connector_secrets("c2");
        assert!(ring.open(&blob, &moved).is_err());
    }

    #[test]
    fn rejects_empty_and_duplicate_rings() {
        assert!(Vault::new(vec![]).is_err());
        let dup = vec![
            SealingKey::new(Some("a"), &[1; KEY_LEN]),
            SealingKey::new(Some("a"), &[2; KEY_LEN]),
        ];
        assert!(Vault::new(dup).is_err());
    }
}
