//! Where vault keys come from: the configured key list (`SWITCHBOARD_VAULT_KEY`), a key file,
//! or — on a first start with neither — a freshly generated key file.
//!
//! Key list syntax: comma-separated entries `[kid:]base64(32 bytes)`; the first is primary.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::crypto::{self, KEY_LEN, SealingKey};
use super::{Vault, VaultError};

/// Where the loaded keys came from (reported at start-up; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    File(std::path::PathBuf),
    Generated(std::path::PathBuf),
}

/// Loads the key ring from config, else from `key_file`, else generates `key_file`.
pub fn load_or_create(
    configured: Option<&SecretString>,
    key_file: &Path,
) -> Result<(Vault, KeySource), VaultError> {
    if let Some(list) = configured {
        return Ok((parse_key_list(list.expose_secret())?, KeySource::Configured));
    }
    match std::fs::read_to_string(key_file) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let vault = parse_key_list(text.trim())
                .map_err(|e| VaultError::Key(format!("key file {}: {e}", key_file.display())))?;
            Ok((vault, KeySource::File(key_file.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = crypto::generate_key();
            let encoded = Zeroizing::new(STANDARD.encode(key.as_ref()));
            write_private_file(key_file, encoded.as_bytes()).map_err(|e| {
                VaultError::Key(format!("cannot write key file {}: {e}", key_file.display()))
            })?;
            let vault =
                Vault::new(vec![SealingKey::new(None, &key)])?.following(key_file.to_owned());
            Ok((vault, KeySource::Generated(key_file.to_owned())))
        }
        Err(e) => Err(VaultError::Key(format!(
            "cannot read key file {}: {e}",
            key_file.display()
        ))),
    }
}

/// Parses `[kid:]base64key[,…]` (commas or newlines between entries).
pub fn parse_key_list(list: &str) -> Result<Vault, VaultError> {
    Vault::new(parse_keys(list)?)
}

pub(super) fn parse_keys(list: &str) -> Result<Vec<SealingKey>, VaultError> {
    let mut keys = Vec::new();
    for (i, entry) in list.split([',', '\n']).map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        let (kid, b64) = match entry.split_once(':') {
            Some((kid, b64)) => (Some(kid.trim()), b64.trim()),
            None => (None, entry),
        };
        if kid.is_some_and(|k| k.is_empty() || k.len() > 64) {
            return Err(VaultError::Key(format!(
                "entry {}: key id must be 1..=64 characters",
                i + 1
            )));
        }
        let raw =
            Zeroizing::new(STANDARD.decode(b64).map_err(|_| {
                VaultError::Key(format!("entry {}: key is not valid base64", i + 1))
            })?);
        let raw: &[u8; KEY_LEN] = raw.as_slice().try_into().map_err(|_| {
            VaultError::Key(format!(
                "entry {}: key must be {KEY_LEN} bytes (got {})",
                i + 1,
                raw.len()
            ))
        })?;
        keys.push(SealingKey::new(kid, raw));
    }
    Ok(keys)
}

/// Adds a freshly generated key as the new primary at the top of `key_file` (written to a
/// temporary file, then renamed over it, mode 0600). Returns the new key id.
pub fn prepend_new_key(key_file: &Path) -> Result<String, VaultError> {
    let current = Zeroizing::new(std::fs::read_to_string(key_file).map_err(|e| {
        VaultError::Key(format!("cannot read key file {}: {e}", key_file.display()))
    })?);
    let existing = parse_keys(&current)?;
    let key = crypto::generate_key();
    let fresh = SealingKey::new(None, &key);
    let id = fresh.id().to_owned();
    if existing.iter().any(|k| k.id() == id) {
        return Err(VaultError::Key(
            "generated a key id that already exists; try again".into(),
        ));
    }
    let contents = Zeroizing::new(format!(
        "{id}:{}\n{}\n",
        STANDARD.encode(key.as_ref()),
        current.trim()
    ));
    let tmp = key_file.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    write_private_file(&tmp, contents.trim_end().as_bytes())
        .and_then(|()| std::fs::rename(&tmp, key_file))
        .map_err(|e| {
            VaultError::Key(format!("cannot write key file {}: {e}", key_file.display()))
        })?;
    Ok(id)
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/vault.key");
        let (v1, s1) = load_or_create(None, &path).unwrap();
        assert_eq!(s1, KeySource::Generated(path.clone()));
        let (v2, s2) = load_or_create(None, &path).unwrap();
        assert_eq!(s2, KeySource::File(path.clone()));
        assert_eq!(v1.primary_key_id(), v2.primary_key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn key_list_errors_name_the_entry() {
        let good = STANDARD.encode([5u8; KEY_LEN]);
        let v = parse_key_list(&format!("new:{good}, {good}")).unwrap();
        assert_eq!(v.primary_key_id(), "new");
        let err = parse_key_list(&format!("{good},short:AAAA")).unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        assert!(parse_key_list("not base64!").is_err());
        assert!(parse_key_list("").is_err());
    }
}
