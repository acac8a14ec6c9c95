//! The properties the fuzz targets check, one module per target. Each `check` takes the raw
//! fuzz input, decodes it the way its module documents, and panics (a libFuzzer crash) when
//! a property does not hold. The binaries in `fuzz_targets/` only call these, so a crash input
//! can be replayed from a plain test too (`cargo test` in this folder).

pub mod config;
pub mod input;
pub mod jsonrpc;
pub mod listen;
pub mod oauth_state;
pub mod proxy_status;
pub mod sealed_session;
pub mod sse_relay;

use std::sync::OnceLock;

use switchboard::vault::Vault;
use switchboard::vault::crypto::{KEY_LEN, SealingKey};

/// The vault every sealing target uses: one fixed key, so runs are comparable.
pub fn vault() -> &'static Vault {
    static V: OnceLock<Vault> = OnceLock::new();
    V.get_or_init(|| {
        Vault::new(vec![SealingKey::new(None, &[0x5b; KEY_LEN])]).expect("one key is a valid ring")
    })
}

/// A second vault with another key: nothing sealed by [`vault`] may open with it.
pub fn foreign_vault() -> &'static Vault {
    static V: OnceLock<Vault> = OnceLock::new();
    V.get_or_init(|| {
        Vault::new(vec![SealingKey::new(None, &[0xa4; KEY_LEN])]).expect("one key is a valid ring")
    })
}

/// The characters of unpadded URL-safe base64, for mutations that keep a token decodable.
pub const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Applies one mutation, chosen by `kind`, `pos` and `byte`, to an ASCII token.
pub fn mutate(token: &str, kind: u8, pos: u16, byte: u8) -> String {
    let mut t = token.as_bytes().to_vec();
    let len = t.len();
    let at = if len == 0 { 0 } else { usize::from(pos) % len };
    let c = B64_URL[usize::from(byte) % 64];
    match kind % 6 {
        0 if len > 0 => t[at] = c,
        1 => t.truncate(usize::from(pos) % (len + 1)),
        2 => t.insert(usize::from(pos) % (len + 1), c),
        3 if len > 0 => {
            t.remove(at);
        }
        4 if len > 1 => t.swap(at, (at + 1) % len),
        5 => t.push(byte),
        _ => {}
    }
    String::from_utf8_lossy(&t).into_owned()
}
