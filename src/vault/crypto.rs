//! The only place that touches cipher primitives: AES-256-GCM sealing with a random
//! 96-bit nonce, a key id in every blob and the owning record's identity as associated data.
//!
//! Blob layout (version 1):
//! `0x01 | kid_len: u8 | kid bytes | nonce (12) | ciphertext ‖ tag (16)`.
//! The header (version, key id) is authenticated too: it is prefixed to the associated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of a raw AES-256 key.
pub const KEY_LEN: usize = 32;

/// Why a blob could not be opened. Deliberately coarse: no oracle for an attacker.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed blob is malformed")]
    Malformed,
    #[error("sealed with key id `{0}`, which is not loaded")]
    UnknownKey(String),
    #[error("sealed blob failed authentication (wrong key, tampered, or moved to another record)")]
    Unauthentic,
}

/// One AES-256-GCM key and its id.
pub struct SealingKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    /// Builds a key from raw bytes; the id is derived from the key unless given.
    pub fn new(id: Option<&str>, raw: &[u8; KEY_LEN]) -> Self {
        let id = match id {
            Some(id) => id.to_owned(),
            None => derive_key_id(raw),
        };
        Self {
            id,
            cipher: Aes256Gcm::new(raw.into()),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext`, binding it to `aad` (the owning record's identity).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let header = header(&self.id);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let full_aad = [header.as_slice(), aad].concat();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &full_aad,
                },
            )
            .unwrap_or_default(); // AES-GCM encryption only fails for inputs > 64 GiB
        let mut out = Vec::with_capacity(header.len() + NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a blob produced by [`SealingKey::seal`] with the same `aad`.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parsed = parse(blob)?;
        if parsed.key_id != self.id {
            return Err(CryptoError::UnknownKey(parsed.key_id.to_owned()));
        }
        let full_aad = [parsed.header, aad].concat();
        self.cipher
            .decrypt(
                Nonce::from_slice(parsed.nonce),
                Payload {
                    msg: parsed.ciphertext,
                    aad: &full_aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Unauthentic)
    }
}

/// The parts of a sealed blob.
struct Parsed<'a> {
    header: &'a [u8],
    key_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn header(key_id: &str) -> Vec<u8> {
    let kid = key_id.as_bytes();
    let mut h = Vec::with_capacity(2 + kid.len());
    h.push(VERSION);
    h.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
    h.extend_from_slice(&kid[..kid.len().min(u8::MAX as usize)]);
    h
}

fn parse(blob: &[u8]) -> Result<Parsed<'_>, CryptoError> {
    let (&version, rest) = blob.split_first().ok_or(CryptoError::Malformed)?;
    let (&kid_len, rest) = rest.split_first().ok_or(CryptoError::Malformed)?;
    if version != VERSION || rest.len() < kid_len as usize + NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let (kid, rest) = rest.split_at(kid_len as usize);
    let key_id = std::str::from_utf8(kid).map_err(|_| CryptoError::Malformed)?;
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    Ok(Parsed {
        header: &blob[..2 + kid_len as usize],
        key_id,
        nonce,
        ciphertext,
    })
}

/// The key id a blob names, without opening it.
pub fn blob_key_id(blob: &[u8]) -> Result<&str, CryptoError> {
    parse(blob).map(|p| p.key_id)
}

/// A stable, non-secret id for a key: a prefix of a domain-separated SHA-256.
pub fn derive_key_id(raw: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"switchboard-vault-key-id\0")
        .chain_update(raw)
        .finalize();
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("k{hex}")
}

/// A fresh random key.
pub fn generate_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    key
}

/// SHA-256 of `data`, hex-encoded. Used to store API keys, which are high-entropy, hashed.
pub fn sha256_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // ring's (assembly, SHA extensions where the CPU has them, else vector code): hashed on
    // every authenticated request.
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut hex = [0u8; 64];
    for (pair, &b) in hex.chunks_exact_mut(2).zip(digest.as_ref()) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
    // Hex digits: always UTF-8.
    String::from_utf8(hex.to_vec()).unwrap_or_default()
}

/// Random bytes for tokens (API keys).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_sha256() {
        // FIPS 180-2's examples; stored API key hashes depend on it.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(sha256_hex(&[b'a'; 1000]), {
            let d = Sha256::digest([b'a'; 1000]);
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
    }

    fn key(b: u8) -> SealingKey {
        SealingKey::new(None, &[b; KEY_LEN])
    }

    #[test]
    fn round_trip_with_same_aad() {
        let k = key(1);
        let blob = k.seal(b"secret", b"connector:1");
        assert_eq!(k.open(&blob, b"connector:1").unwrap().as_slice(), b"secret");
        assert_eq!(blob_key_id(&blob).unwrap(), k.id());
    }

    #[test]
    fn nonce_is_random() {
        let k = key(1);
        assert_ne!(k.seal(b"x", b"a"), k.seal(b"x", b"a"));
    }

    #[test]
    fn other_record_or_key_or_tamper_fails() {
        let k = key(1);
        let blob = k.seal(b"secret", b"connector:1");
        assert_eq!(k.open(&blob, b"connector:2"), Err(CryptoError::Unauthentic));
        let other = SealingKey::new(Some(k.id()), &[2; KEY_LEN]);
        assert_eq!(
            other.open(&blob, b"connector:1"),
            Err(CryptoError::Unauthentic)
        );
        assert!(matches!(
            key(3).open(&blob, b"connector:1"),
            Err(CryptoError::UnknownKey(_))
        ));
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            k.open(&tampered, b"connector:1"),
            Err(CryptoError::Unauthentic)
        );
        assert_eq!(
            k.open(&blob[..10], b"connector:1"),
            Err(CryptoError::Malformed)
        );
        assert_eq!(k.open(&[], b""), Err(CryptoError::Malformed));
    }

    #[test]
    fn key_id_is_stable_and_not_the_key() {
        let id = derive_key_id(&[7; KEY_LEN]);
        assert_eq!(id, derive_key_id(&[7; KEY_LEN]));
        assert_ne!(id, derive_key_id(&[8; KEY_LEN]));
        assert_eq!(id.len(), 9);
    }
}
