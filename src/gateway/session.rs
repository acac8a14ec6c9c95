//! Sealed MCP session ids: the `Mcp-Session-Id` a client sees is an AES-GCM-sealed token of
//! (connector, upstream session id, credential, principal, issue time). Any replica with the
//! same vault key can serve it; nothing is stored.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::identity::Principal;
use crate::vault::{RecordIdentity, Vault};

const PREFIX: &str = "sb1.";

/// What a sealed session id holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Connector id.
    pub c: String,
    /// The upstream's session id.
    pub s: String,
    /// The stored credential used (none: the connector's own headers).
    pub k: Option<String>,
    pub u: String,
    pub w: String,
    pub o: String,
    /// Issued at (Unix seconds).
    pub t: u64,
}

impl SessionClaims {
    /// Whether this session belongs to `p` on connector `connector_id`.
    pub fn belongs_to(&self, p: &Principal, connector_id: &str) -> bool {
        self.c == connector_id
            && self.u == p.user_id
            && self.w == p.workspace_id
            && self.o == p.org_id
    }
}

#[derive(Debug)]
pub struct SealedSessionId;

impl SealedSessionId {
    pub fn seal(vault: &Vault, claims: &SessionClaims) -> String {
        let blob = vault.seal_json(claims, &RecordIdentity::mcp_session());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(blob))
    }

    /// The claims of a token, or `None` for anything tampered, foreign or malformed.
    pub fn open(vault: &Vault, token: &str) -> Option<SessionClaims> {
        let blob = URL_SAFE_NO_PAD.decode(token.strip_prefix(PREFIX)?).ok()?;
        vault.open_json(&blob, &RecordIdentity::mcp_session()).ok()
    }
}

/// Sealed session ids already opened by this replica, so that the calls of a session do not
/// each pay the decryption: keyed by the whole token, holding what opening it gave, and only
/// for the key ring generation it was opened under (a reloaded ring opens it afresh). Only
/// tokens that opened are kept; a token that differs in one byte is a miss and is opened (and
/// refused) as before. Bounded in size, and idle entries expire.
#[derive(Clone)]
pub struct OpenedSessions(crate::cache::SyncCache<Box<str>, (u64, Arc<SessionClaims>)>);

impl std::fmt::Debug for OpenedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSessions")
            .field("entries", &self.0.entry_count())
            .finish()
    }
}

impl OpenedSessions {
    pub fn new(capacity: u64, idle: std::time::Duration) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build_with_hasher(crate::cache::FastHash::default()),
        )
    }

    /// [`SealedSessionId::open`], remembered.
    pub fn open(&self, vault: &Vault, token: &str) -> Option<Arc<SessionClaims>> {
        let generation = vault.generation();
        if let Some((opened_in, claims)) = self.0.get(token) {
            if opened_in == generation {
                return Some(claims);
            }
        }
        let claims = Arc::new(SealedSessionId::open(vault, token)?);
        self.0
            .insert(token.into(), (generation, Arc::clone(&claims)));
        Some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::crypto::{KEY_LEN, SealingKey};

    #[test]
    fn seals_opens_and_rejects() {
        let vault = Vault::new(vec![SealingKey::new(None, &[3; KEY_LEN])]).unwrap();
        let claims = SessionClaims {
            c: "conn".into(),
            s: "up-123".into(),
            k: None,
            u: "u".into(),
            w: "w".into(),
            o: "o".into(),
            t: 1,
        };
        let token = SealedSessionId::seal(&vault, &claims);
        assert!(
            token.bytes().all(|b| (0x21..0x7f).contains(&b)),
            "visible ASCII"
        );
        assert!(!token.contains("up-123"));
        assert_eq!(SealedSessionId::open(&vault, &token), Some(claims.clone()));
        let mut tampered = token.clone().into_bytes();
        let i = tampered.len() - 3;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            SealedSessionId::open(&vault, &String::from_utf8(tampered).unwrap()),
            None
        );
        assert_eq!(SealedSessionId::open(&vault, "up-123"), None);
        let other = Vault::new(vec![SealingKey::new(None, &[4; KEY_LEN])]).unwrap();
        assert_eq!(SealedSessionId::open(&other, &token), None);
        let p = Principal {
            user_id: "u".into(),
            workspace_id: "w".into(),
            org_id: "o".into(),
            is_admin: false,
        };
        assert!(claims.belongs_to(&p, "conn"));
        assert!(!claims.belongs_to(&p, "other"));
        let q = Principal {
            user_id: "v".into(),
            ..p
        };
        assert!(!claims.belongs_to(&q, "conn"));
    }

    #[test]
    fn opened_sessions_are_remembered_only_under_the_ring_they_opened_in() {
        use base64::engine::general_purpose::STANDARD;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.key");
        let (a, b) = (
            STANDARD.encode([1u8; KEY_LEN]),
            STANDARD.encode([2u8; KEY_LEN]),
        );
        std::fs::write(&path, format!("a:{a},b:{b}")).unwrap();
        let key = |id: &str, byte: u8| SealingKey::new(Some(id), &[byte; KEY_LEN]);
        let vault = Vault::new(vec![key("a", 1), key("b", 2)])
            .unwrap()
            .following(path.clone());
        let claims = SessionClaims {
            c: "conn".into(),
            s: "up-1".into(),
            k: Some("cred".into()),
            u: "u".into(),
            w: "w".into(),
            o: "o".into(),
            t: 1,
        };
        let token = SealedSessionId::seal(&vault, &claims);
        let opened = OpenedSessions::new(100, std::time::Duration::from_secs(60));
        assert_eq!(opened.open(&vault, &token).as_deref(), Some(&claims));
        assert_eq!(opened.open(&vault, &token).as_deref(), Some(&claims));
        // A token one byte away is opened (and refused), not taken from the remembered one.
        let mut tampered = token.clone().into_bytes();
        let i = tampered.len() - 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(opened.open(&vault, &tampered), None);
        // Key `a` leaves the file: once the ring follows, the remembered token is refused too.
        std::fs::write(&path, format!("b:{b}")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let before = vault.generation();
        let _ = vault.seal(b"x", &RecordIdentity::mcp_session());
        assert_ne!(vault.generation(), before, "the ring was reloaded");
        assert_eq!(SealedSessionId::open(&vault, &token), None);
        assert_eq!(opened.open(&vault, &token), None);
    }
}
