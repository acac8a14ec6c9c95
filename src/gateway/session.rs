//! Sealed MCP session ids: the `Mcp-Session-Id` a client sees is an AES-GCM-sealed token of
//! (connector, upstream session id, credential, principal, issue time). Any replica with the
//! same vault key can serve it; nothing is stored.

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
}
