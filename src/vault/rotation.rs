//! Key rotation: re-seals every stored secret under the primary key while gateways keep
//! serving (old key ids still open). Records are replaced with a compare-and-swap on their
//! old blob, so a concurrent write is never overwritten: it is picked up by the next pass.

use std::collections::BTreeMap;

use super::{RecordIdentity, Vault};
use crate::store::{Store, StoreError};

/// What a rotation did.
#[derive(Debug, Default, Clone)]
pub struct RotationReport {
    pub primary: String,
    /// Re-sealed records, by kind.
    pub resealed: BTreeMap<&'static str, usize>,
    pub already_current: usize,
    /// Records that could not be opened (never dropped): (kind id, reason).
    pub unreadable: Vec<(String, String)>,
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: usize = self.resealed.values().sum();
        write!(f, "re-sealed {total} record(s) under key {}", self.primary)?;
        for (kind, n) in &self.resealed {
            write!(f, "\n  {kind}: {n}")?;
        }
        write!(
            f,
            "\n  already under the primary key: {}",
            self.already_current
        )?;
        if self.unreadable.is_empty() {
            write!(f, "\n  unreadable: 0")
        } else {
            write!(
                f,
                "\n  UNREADABLE (left as they are): {}",
                self.unreadable.len()
            )?;
            for (r, why) in &self.unreadable {
                write!(f, "\n    {r}: {why}")?;
            }
            Ok(())
        }
    }
}

/// How many passes over the store before giving up on records that keep changing.
const PASSES: usize = 5;

pub async fn reseal_all(store: &dyn Store, vault: &Vault) -> Result<RotationReport, StoreError> {
    let mut report = RotationReport {
        primary: vault.primary_key_id(),
        ..RotationReport::default()
    };
    let mut first_pass = true;
    for pass in 0..PASSES {
        let records = store.sealed_records().await?;
        if first_pass {
            report.already_current = records.iter().filter(|r| vault.is_current(&r.blob)).count();
            first_pass = false;
        }
        let pending: Vec<_> = records
            .into_iter()
            .filter(|r| !vault.is_current(&r.blob))
            .collect();
        let last = pass + 1 == PASSES;
        report.unreadable.clear();
        if pending.is_empty() {
            break;
        }
        let mut changed = false;
        for record in pending {
            let Some(owner) = RecordIdentity::for_record(record.kind, &record.id) else {
                report.unreadable.push((
                    format!("{} {}", record.kind, record.id),
                    "unknown record kind".into(),
                ));
                continue;
            };
            match vault.open(&record.blob, &owner) {
                Ok(plain) => {
                    let fresh = vault.seal(&plain, &owner);
                    if store.reseal(&record, &fresh).await? {
                        *report.resealed.entry(record.kind).or_default() += 1;
                        changed = true;
                    }
                }
                Err(e) => report
                    .unreadable
                    .push((format!("{} {}", record.kind, record.id), e.to_string())),
            }
        }
        if !changed && !last {
            // Only unreadable records remain: another pass would not change anything.
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::crypto::{KEY_LEN, SealingKey};
    use super::*;

    #[test]
    fn report_lists_what_happened() {
        let mut r = RotationReport {
            primary: "k2".into(),
            ..Default::default()
        };
        r.resealed.insert("credential", 3);
        r.unreadable
            .push(("credential x".into(), "tampered".into()));
        let text = r.to_string();
        assert!(
            text.contains("re-sealed 3")
                && text.contains("UNREADABLE")
                && text.contains("credential x")
        );
        let v = Vault::new(vec![SealingKey::new(Some("k2"), &[1; KEY_LEN])]).unwrap();
        assert!(v.is_current(&v.seal(b"x", &RecordIdentity::credential_secrets("a"))));
    }
}
