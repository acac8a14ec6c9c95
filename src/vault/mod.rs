//! The vault: envelope encryption of every secret at rest. A key ring of AES-256-GCM keys
//! (the primary seals, every loaded key opens its own blobs), bound to the owning record's
//! identity. Cipher primitives live in [`crypto`] only.

pub mod crypto;
mod keys;
mod rotation;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use crypto::CryptoError;
pub use keys::{KeySource, load_or_create, prepend_new_key};
pub use rotation::{RotationReport, reseal_all};

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

    /// The owner of a sealed record as the store names it (`connector`, `credential`).
    pub fn for_record(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "connector" => Some(Self::connector_secrets(id)),
            "credential" => Some(Self::credential_secrets(id)),
            "oauth_client" => Some(Self::oauth_client_secrets(id)),
            _ => None,
        }
    }

    /// Sealed MCP session ids (not stored; bound to their purpose).
    pub fn mcp_session() -> Self {
        Self("switchboard/mcp-session".into())
    }

    /// The secrets of credential `id`.
    pub fn credential_secrets(id: &str) -> Self {
        Self(format!("switchboard/credential/{id}/secrets"))
    }

    /// The secret of a dynamically registered OAuth client.
    pub fn oauth_client_secrets(id: &str) -> Self {
        Self(format!("switchboard/oauth-client/{id}/secrets"))
    }

    /// An OAuth authorization state (sent through the user's browser and back).
    pub fn oauth_state() -> Self {
        Self("switchboard/oauth-state".into())
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

/// The keys: the primary seals, every key opens its own blobs.
struct Ring {
    primary: String,
    keys: HashMap<String, crypto::SealingKey>,
}

/// How often, at most, a vault loaded from a key file looks at the file again.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// How eagerly [`Vault::maybe_reload`] looks at the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// At most every [`RELOAD_CHECK`], re-read when its modification time changed.
    Periodic,
    /// Now, re-read when its modification time changed.
    Now,
    /// Re-read now.
    Force,
}

/// A key ring: seals with the primary key, opens with whichever key a blob names. A ring
/// loaded from a key file follows the file: when `switchboard vault rotate` adds a key, a
/// running gateway picks it up on its next seal (the file's modification time is checked then),
/// or at once when it meets a blob under a key id it does not know.
pub struct Vault {
    ring: ArcSwap<Ring>,
    /// Bumped whenever the ring is replaced (what was opened under the old one is re-checked).
    generation: AtomicU64,
    key_file: Option<PathBuf>,
    /// Millis since `started` of the last look at the key file.
    last_check: AtomicU64,
    file_mtime: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring.load();
        let mut ids: Vec<&String> = ring.keys.keys().collect();
        ids.sort();
        f.debug_struct("Vault")
            .field("primary", &ring.primary)
            .field("key_ids", &ids)
            .finish()
    }
}

fn mtime_of(path: &std::path::Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Vault {
    /// Builds a ring whose first key is the primary. Fails on an empty list or duplicate ids.
    pub fn new(keys: Vec<crypto::SealingKey>) -> Result<Self, VaultError> {
        Ok(Self {
            ring: ArcSwap::from_pointee(Self::ring(keys)?),
            generation: AtomicU64::new(0),
            key_file: None,
            last_check: AtomicU64::new(0),
            file_mtime: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Makes the ring follow `key_file` (see the type's documentation).
    pub fn following(mut self, key_file: PathBuf) -> Self {
        self.file_mtime
            .store(mtime_of(&key_file), Ordering::Relaxed);
        self.key_file = Some(key_file);
        self
    }

    fn ring(keys: Vec<crypto::SealingKey>) -> Result<Ring, VaultError> {
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
        Ok(Ring { primary, keys: map })
    }

    /// The id of the key that seals new blobs.
    pub fn primary_key_id(&self) -> String {
        self.maybe_reload(Check::Periodic);
        self.ring.load().primary.clone()
    }

    /// Changes whenever the key ring is replaced (reloaded from its file): a value opened under
    /// an earlier generation must be opened again before it is trusted.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Every loaded key id.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.ring.load().keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Re-reads the key file when it changed ([`Check`] says how eagerly to look). A file that
    /// no longer parses leaves the ring as it is.
    fn maybe_reload(&self, check: Check) {
        let Some(path) = &self.key_file else { return };
        let force = check == Check::Force;
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_check.load(Ordering::Relaxed);
        let interval = u64::try_from(RELOAD_CHECK.as_millis()).unwrap_or(u64::MAX);
        if check == Check::Periodic && now.saturating_sub(last) < interval {
            return;
        }
        self.last_check.store(now, Ordering::Relaxed);
        let mtime = mtime_of(path);
        if !force && mtime == self.file_mtime.load(Ordering::Relaxed) {
            return;
        }
        match std::fs::read_to_string(path).map(Zeroizing::new) {
            Ok(text) => match keys::parse_keys(&text) {
                Ok(keys) => match Self::ring(keys) {
                    Ok(ring) => {
                        self.file_mtime.store(mtime, Ordering::Relaxed);
                        if ring.primary != self.ring.load().primary
                            || ring.keys.len() != self.ring.load().keys.len()
                        {
                            tracing::info!(primary = %ring.primary, keys = ring.keys.len(), "vault key file changed: key ring reloaded");
                        }
                        self.ring.store(Arc::new(ring));
                        self.generation.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "vault key file changed but is invalid; keeping the loaded keys")
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "vault key file changed but is invalid; keeping the loaded keys")
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "vault key file unreadable; keeping the loaded keys")
            }
        }
    }

    pub fn seal(&self, plaintext: &[u8], owner: &RecordIdentity) -> Vec<u8> {
        // Seals are rare (writes) and must use the newest primary key: look at the file now.
        self.maybe_reload(Check::Now);
        let ring = self.ring.load();
        let blob = ring.keys[&ring.primary].seal(plaintext, owner.as_bytes());
        crate::metrics::get()
            .vault_operations
            .with_label_values(&["seal", "ok"])
            .inc();
        blob
    }

    pub fn open(
        &self,
        blob: &[u8],
        owner: &RecordIdentity,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let opened = self.open_inner(blob, owner);
        crate::metrics::get()
            .vault_operations
            .with_label_values(&["open", if opened.is_ok() { "ok" } else { "error" }])
            .inc();
        opened
    }

    fn open_inner(
        &self,
        blob: &[u8],
        owner: &RecordIdentity,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let kid = crypto::blob_key_id(blob)?;
        if !self.ring.load().keys.contains_key(kid) {
            self.maybe_reload(Check::Force);
        }
        let ring = self.ring.load();
        let key = ring
            .keys
            .get(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_owned()))?;
        Ok(key.open(blob, owner.as_bytes())?)
    }

    /// Whether a blob is sealed under the primary key.
    pub fn is_current(&self, blob: &[u8]) -> bool {
        crypto::blob_key_id(blob).is_ok_and(|k| k == self.ring.load().primary)
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
