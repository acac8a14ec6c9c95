//! The authorization state: everything the callback needs, sealed by the vault (so it cannot
//! be read or forged in the browser), carried as the OAuth `state` parameter, single-use
//! through its nonce. Also PKCE (RFC 7636, S256).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::identity::Principal;
use crate::vault::{RecordIdentity, Vault};

/// The sealed content of a `state` parameter.
#[derive(Debug, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct StateClaims {
    /// Single-use nonce.
    pub nonce: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    pub user: String,
    pub workspace: String,
    pub org: String,
    pub admin: bool,
    pub connector: String,
    pub name: String,
    pub title: Option<String>,
    pub return_url: Option<String>,
    /// PKCE code verifier.
    pub verifier: String,
    pub issuer: String,
    pub token_endpoint: String,
    pub client_id: String,
    pub resource: Option<String>,
    pub redirect_uri: String,
}

impl StateClaims {
    pub fn principal(&self) -> Principal {
        Principal {
            user_id: self.user.clone(),
            workspace_id: self.workspace.clone(),
            org_id: self.org.clone(),
            is_admin: self.admin,
        }
    }

    pub fn seal(&self, vault: &Vault) -> String {
        URL_SAFE_NO_PAD.encode(vault.seal_json(self, &RecordIdentity::oauth_state()))
    }

    /// `None` when the text is not a state this gateway sealed (tampered, foreign, garbage).
    pub fn open(vault: &Vault, text: &str) -> Option<Self> {
        if text.len() > 8 * 1024 {
            return None;
        }
        let blob = URL_SAFE_NO_PAD.decode(text).ok()?;
        vault.open_json(&blob, &RecordIdentity::oauth_state()).ok()
    }
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The S256 code challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = random_token(32);
        assert_eq!(v.len(), 43);
        assert_ne!(v, random_token(32));
    }
}
