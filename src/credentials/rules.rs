//! The `is_default` rules of a credential set (contract §5.10), as pure functions: a default
//! exists per authentication method as soon as any credential of that method does.

use super::model::Credential;

/// A rejected change (422 or 404/409 at the API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("The first '{0}' credential must be the default: omit is_default or set it to true")]
    FirstMustBeDefault(String),
    #[error("Credentials '{0}' are the default: promote another credential first")]
    CannotDemoteDefault(String),
    #[error("Credentials '{0}' already exist")]
    Duplicate(String),
    #[error("Credentials '{0}' not found")]
    NotFound(String),
}

/// What to write: rows to insert or update, and ids to delete.
#[derive(Debug, Default)]
pub struct SetChange {
    pub upserts: Vec<Credential>,
    pub deletes: Vec<String>,
}

impl SetChange {
    fn put(&mut self, c: Credential) {
        self.upserts.retain(|u| u.id != c.id);
        self.upserts.push(c);
    }
}

/// Demotes every default of `method` in `set` except `keep`.
fn demote_others(set: &[Credential], method: &str, keep: &str, now: &str, change: &mut SetChange) {
    for c in set
        .iter()
        .filter(|c| c.authentication_type == method && c.is_default && c.id != keep)
    {
        let mut d = c.clone();
        d.is_default = false;
        d.modified_at = now.to_owned();
        change.put(d);
    }
}

/// Promotes the oldest credential of `method` other than `except`, if any.
fn promote_oldest(
    set: &[Credential],
    method: &str,
    except: &str,
    now: &str,
    change: &mut SetChange,
) {
    if let Some(c) = set
        .iter()
        .find(|c| c.authentication_type == method && c.id != except)
    {
        let mut p = c.clone();
        p.is_default = true;
        p.modified_at = now.to_owned();
        change.put(p);
    }
}

/// Adds `new` (its `is_default` is decided here from `requested`).
pub fn create(
    set: &[Credential],
    mut new: Credential,
    requested: Option<bool>,
    now: &str,
) -> Result<SetChange, RuleError> {
    if set.iter().any(|c| c.name == new.name) {
        return Err(RuleError::Duplicate(new.name));
    }
    let first = !set
        .iter()
        .any(|c| c.authentication_type == new.authentication_type);
    let mut change = SetChange::default();
    new.is_default = match (first, requested) {
        (true, Some(false)) => return Err(RuleError::FirstMustBeDefault(new.authentication_type)),
        (true, _) => true,
        (false, Some(true)) => {
            demote_others(set, &new.authentication_type, &new.id, now, &mut change);
            true
        }
        (false, _) => false,
    };
    change.put(new);
    Ok(change)
}

/// Replaces `existing` by `updated` (same id; title, secrets, method may differ).
pub fn update(
    set: &[Credential],
    existing: &Credential,
    mut updated: Credential,
    requested: Option<bool>,
    now: &str,
) -> Result<SetChange, RuleError> {
    if requested == Some(false) && existing.is_default {
        return Err(RuleError::CannotDemoteDefault(existing.name.clone()));
    }
    let mut change = SetChange::default();
    let method_changed = existing.authentication_type != updated.authentication_type;
    if method_changed {
        if existing.is_default {
            promote_oldest(
                set,
                &existing.authentication_type,
                &existing.id,
                now,
                &mut change,
            );
        }
        let alone = !set
            .iter()
            .any(|c| c.authentication_type == updated.authentication_type && c.id != existing.id);
        updated.is_default = alone || requested == Some(true);
    } else {
        updated.is_default = existing.is_default || requested == Some(true);
    }
    if updated.is_default {
        demote_others(
            set,
            &updated.authentication_type,
            &updated.id,
            now,
            &mut change,
        );
    }
    updated.modified_at = now.to_owned();
    change.put(updated);
    Ok(change)
}

/// Removes the credential named `name`; its method's oldest other credential becomes default.
pub fn delete(set: &[Credential], name: &str, now: &str) -> Result<SetChange, RuleError> {
    let gone = set
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| RuleError::NotFound(name.to_owned()))?;
    let mut change = SetChange::default();
    if gone.is_default {
        promote_oldest(set, &gone.authentication_type, &gone.id, now, &mut change);
    }
    change.deletes.push(gone.id.clone());
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ConsumerType;

    fn cred(name: &str, method: &str, default: bool) -> Credential {
        Credential {
            id: format!("id-{name}"),
            connector_id: "c".into(),
            scope: ConsumerType::User,
            owner_id: "u".into(),
            name: name.into(),
            title: None,
            authentication_type: method.into(),
            is_default: default,
            creator_id: "u".into(),
            sealed: vec![],
            created_at: format!("t-{name}"),
            modified_at: format!("t-{name}"),
            status: None,
        }
    }

    fn apply(set: &[Credential], change: SetChange) -> Vec<Credential> {
        let mut out: Vec<Credential> = set
            .iter()
            .filter(|c| {
                !change.deletes.contains(&c.id) && !change.upserts.iter().any(|u| u.id == c.id)
            })
            .cloned()
            .collect();
        out.extend(change.upserts);
        out
    }

    fn defaults(set: &[Credential]) -> Vec<&str> {
        let mut d: Vec<&str> = set
            .iter()
            .filter(|c| c.is_default)
            .map(|c| c.name.as_str())
            .collect();
        d.sort_unstable();
        d
    }

    #[test]
    fn first_of_a_method_is_default_and_cannot_be_refused() {
        let set = apply(
            &[],
            create(&[], cred("a", "bearer", false), None, "n").unwrap(),
        );
        assert_eq!(defaults(&set), ["a"]);
        assert_eq!(
            create(&[], cred("a", "bearer", false), Some(false), "n").unwrap_err(),
            RuleError::FirstMustBeDefault("bearer".into())
        );
        // another method has its own default
        let set = apply(
            &set,
            create(&set, cred("h", "none", false), None, "n").unwrap(),
        );
        assert_eq!(defaults(&set), ["a", "h"]);
    }

    #[test]
    fn promotion_demotes_the_previous_default() {
        let set = vec![cred("a", "bearer", true)];
        let set2 = apply(
            &set,
            create(&set, cred("b", "bearer", false), None, "n").unwrap(),
        );
        assert_eq!(defaults(&set2), ["a"]);
        let set3 = apply(
            &set2,
            create(&set2, cred("c", "bearer", false), Some(true), "n").unwrap(),
        );
        assert_eq!(defaults(&set3), ["c"]);
        assert_eq!(
            create(&set3, cred("c", "bearer", false), None, "n").unwrap_err(),
            RuleError::Duplicate("c".into())
        );
    }

    #[test]
    fn update_rules() {
        let set = vec![cred("a", "bearer", true), cred("b", "bearer", false)];
        assert_eq!(
            update(&set, &set[0], set[0].clone(), Some(false), "n").unwrap_err(),
            RuleError::CannotDemoteDefault("a".into())
        );
        let s = apply(
            &set,
            update(&set, &set[1], set[1].clone(), Some(true), "n").unwrap(),
        );
        assert_eq!(defaults(&s), ["b"]);
        let s = apply(
            &set,
            update(&set, &set[1], set[1].clone(), Some(false), "n").unwrap(),
        );
        assert_eq!(defaults(&s), ["a"], "false on a non-default is fine");
        let s = apply(
            &set,
            update(&set, &set[0], set[0].clone(), None, "n").unwrap(),
        );
        assert_eq!(defaults(&s), ["a"], "absent leaves it");
        // the default changes method: its old method gets a new default, its new one has it
        let mut moved = set[0].clone();
        moved.authentication_type = "none".into();
        let s = apply(&set, update(&set, &set[0], moved, None, "n").unwrap());
        assert_eq!(defaults(&s), ["a", "b"]);
    }

    #[test]
    fn deleting_the_default_promotes_the_oldest_other() {
        let set = vec![
            cred("a", "bearer", true),
            cred("b", "bearer", false),
            cred("c", "bearer", false),
        ];
        let s = apply(&set, delete(&set, "a", "n").unwrap());
        assert_eq!(defaults(&s), ["b"]);
        assert_eq!(s.len(), 2);
        assert_eq!(
            delete(&set, "zz", "n").unwrap_err(),
            RuleError::NotFound("zz".into())
        );
    }
}
