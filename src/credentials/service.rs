//! Credential operations on behalf of a principal, and credential selection for a request.

use std::sync::Arc;

use super::model::{
    Credential, CredentialInput, CredentialScope, CredentialSecrets, SelectedCredential,
};
use super::rules::{self, RuleError, SetChange};
use crate::identity::Principal;
use crate::registry::{Connector, ConsumerType, Registry, RegistryError, now_timestamp};
use crate::store::{CredentialSetKey, Store, StoreError};
use crate::vault::{Vault, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// Input that the rules cannot accept (field, message).
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored credential cannot be opened: {0}")]
    Vault(#[from] VaultError),
    #[error("credential set changed concurrently; try again")]
    Busy,
}

/// Which credential a request asks for.
#[derive(Debug, Clone, Copy)]
pub enum Choice<'a> {
    Named(&'a str),
    Default,
    /// A specific credential (a session continues with the credential it started with).
    Id(&'a str),
}

/// Listing filters.
#[derive(Debug, Default, Clone)]
pub struct CredentialFilter {
    pub auth_type: Option<String>,
    pub defaults_only: bool,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    registry: Registry,
}

fn owner_of(p: &Principal, scope: CredentialScope) -> &str {
    match scope {
        ConsumerType::User => &p.user_id,
        ConsumerType::Workspace => &p.workspace_id,
        ConsumerType::Org => &p.org_id,
    }
}

fn set_key(c: &Connector, p: &Principal, scope: CredentialScope) -> CredentialSetKey {
    CredentialSetKey {
        connector_id: c.id.clone(),
        scope: scope.as_str().to_owned(),
        owner_id: owner_of(p, scope).to_owned(),
    }
}

fn rows_to_creds(rows: Vec<crate::store::CredentialRow>) -> Vec<Credential> {
    rows.into_iter().filter_map(Credential::from_row).collect()
}

impl Credentials {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>, registry: Registry) -> Self {
        Self {
            store,
            vault,
            registry,
        }
    }

    pub async fn list(
        &self,
        p: &Principal,
        reference: &str,
        scope: CredentialScope,
        filter: &CredentialFilter,
    ) -> Result<Vec<Credential>, CredentialsError> {
        let c = self.registry.resolve(p, reference).await?;
        let set = self.store.credential_set(&set_key(&c, p, scope)).await?;
        Ok(rows_to_creds(set.rows)
            .into_iter()
            .filter(|cr| {
                filter
                    .auth_type
                    .as_ref()
                    .is_none_or(|t| &cr.authentication_type == t)
            })
            .filter(|cr| !filter.defaults_only || cr.is_default)
            .collect())
    }

    /// The caller's credentials for a connector in every scope (user, workspace, organization).
    pub async fn mine(
        &self,
        p: &Principal,
        c: &Connector,
    ) -> Result<Vec<Credential>, CredentialsError> {
        let owners: Vec<(String, String)> = ConsumerType::ALL
            .iter()
            .map(|t| (t.as_str().to_owned(), owner_of(p, *t).to_owned()))
            .collect();
        Ok(rows_to_creds(
            self.store.credentials_of(&c.id, &owners).await?,
        ))
    }

    pub async fn create(
        &self,
        p: &Principal,
        reference: &str,
        scope: CredentialScope,
        input: CredentialInput,
    ) -> Result<Credential, CredentialsError> {
        self.write(p, reference, scope, input, false).await
    }

    /// Creates or updates (PATCH).
    pub async fn upsert(
        &self,
        p: &Principal,
        reference: &str,
        scope: CredentialScope,
        input: CredentialInput,
    ) -> Result<Credential, CredentialsError> {
        self.write(p, reference, scope, input, true).await
    }

    pub async fn delete(
        &self,
        p: &Principal,
        reference: &str,
        scope: CredentialScope,
        name: &str,
    ) -> Result<(), CredentialsError> {
        let c = self.writable(p, reference, scope).await?;
        let key = set_key(&c, p, scope);
        self.apply(&key, |set| {
            rules::delete(set, name, &now_timestamp()).map_err(Into::into)
        })
        .await
        .map(|_| ())
    }

    /// Deletes every user-scope credential of the caller; returns how many.
    pub async fn delete_all_user(
        &self,
        p: &Principal,
        reference: &str,
    ) -> Result<usize, CredentialsError> {
        let c = self.registry.resolve(p, reference).await?;
        let key = set_key(&c, p, ConsumerType::User);
        let mut count = 0;
        self.apply(&key, |set| {
            count = set.len();
            Ok(SetChange {
                upserts: vec![],
                deletes: set.iter().map(|c| c.id.clone()).collect(),
            })
        })
        .await?;
        Ok(count)
    }

    /// The credential a request uses: the named one (user, then workspace, then organization
    /// scope), the default one in that order, or (for a continuing session) the one with an id,
    /// if the caller may still use it. `Ok(None)` when there is none.
    pub async fn select(
        &self,
        p: &Principal,
        c: &Connector,
        choice: Choice<'_>,
    ) -> Result<Option<SelectedCredential>, CredentialsError> {
        let name = match choice {
            Choice::Named(n) => Some(n),
            Choice::Default => None,
            Choice::Id(id) => {
                let mine = self.mine(p, c).await?;
                return mine
                    .iter()
                    .find(|cr| cr.id == id)
                    .map(|cr| self.opened(cr))
                    .transpose();
            }
        };
        let mine = self.mine(p, c).await?;
        let method_rank = |m: &str| {
            c.doc
                .auth_methods
                .iter()
                .position(|a| a.method_type == m)
                .unwrap_or(usize::MAX)
        };
        let chosen = ConsumerType::ALL.iter().find_map(|scope| {
            let mut in_scope: Vec<&Credential> =
                mine.iter().filter(|cr| cr.scope == *scope).collect();
            match name {
                Some(n) => in_scope.into_iter().find(|cr| cr.name == n),
                None => {
                    in_scope.retain(|cr| cr.is_default);
                    in_scope.sort_by_key(|cr| method_rank(&cr.authentication_type));
                    in_scope.into_iter().next()
                }
            }
        });
        chosen.map(|cr| self.opened(cr)).transpose()
    }

    fn opened(&self, cr: &Credential) -> Result<SelectedCredential, CredentialsError> {
        Ok(SelectedCredential {
            id: cr.id.clone(),
            set: CredentialSetKey {
                connector_id: cr.connector_id.clone(),
                scope: cr.scope.as_str().to_owned(),
                owner_id: cr.owner_id.clone(),
            },
            version: cr.modified_at.clone(),
            authentication_type: cr.authentication_type.clone(),
            secrets: CredentialSecrets::open(&self.vault, &cr.id, &cr.sealed)?,
        })
    }

    /// Re-reads one credential of a set (e.g. after another process refreshed its tokens).
    pub async fn reread(
        &self,
        set: &CredentialSetKey,
        id: &str,
    ) -> Result<Option<SelectedCredential>, CredentialsError> {
        let rows = self.store.credential_set(set).await?.rows;
        rows_to_creds(rows)
            .iter()
            .find(|cr| cr.id == id)
            .map(|cr| self.opened(cr))
            .transpose()
    }

    /// Replaces a credential's secrets (refreshed tokens) and status, keeping everything else
    /// (its `modified_at` too: it is the same credential). `Ok(false)` if it no longer exists.
    pub async fn replace_secrets(
        &self,
        set: &CredentialSetKey,
        id: &str,
        secrets: Option<&CredentialSecrets>,
        status: Option<String>,
    ) -> Result<bool, CredentialsError> {
        let mut found = false;
        self.apply(set, |creds| {
            let Some(existing) = creds.iter().find(|cr| cr.id == id) else {
                found = false;
                return Ok(SetChange::default());
            };
            found = true;
            let mut updated = existing.clone();
            if let Some(secrets) = secrets {
                updated.sealed = secrets.seal(&self.vault, id);
            }
            updated.status.clone_from(&status);
            Ok(SetChange {
                upserts: vec![updated],
                deletes: vec![],
            })
        })
        .await?;
        Ok(found)
    }

    /// Stores the tokens of a completed authorization as the caller's user-scope credential
    /// `name` (created, or replaced when it exists: a re-authorization).
    pub async fn save_authorized(
        &self,
        p: &Principal,
        connector_id: &str,
        name: super::CredentialName,
        title: Option<String>,
        secrets: CredentialSecrets,
    ) -> Result<Credential, CredentialsError> {
        let input = CredentialInput {
            name,
            title: title.map(Some),
            is_default: None,
            secrets: Some(secrets),
        };
        self.write(p, connector_id, ConsumerType::User, input, true)
            .await
    }

    async fn writable(
        &self,
        p: &Principal,
        reference: &str,
        scope: CredentialScope,
    ) -> Result<Connector, CredentialsError> {
        let c = self.registry.resolve(p, reference).await?;
        if scope != ConsumerType::User && !p.is_admin {
            let level = if scope == ConsumerType::Org {
                "organization"
            } else {
                "workspace"
            };
            return Err(CredentialsError::Forbidden(format!(
                "Managing {level} credentials requires admin rights in that {level}"
            )));
        }
        Ok(c)
    }

    async fn write(
        &self,
        p: &Principal,
        reference: &str,
        scope: CredentialScope,
        input: CredentialInput,
        upsert: bool,
    ) -> Result<Credential, CredentialsError> {
        let c = self.writable(p, reference, scope).await?;
        let key = set_key(&c, p, scope);
        let name = input.name.as_str().to_owned();
        let change = self
            .apply(&key, |set| {
                let now = now_timestamp();
                match set.iter().find(|cr| cr.name == name) {
                    Some(existing) if upsert => {
                        let mut updated = existing.clone();
                        if let Some(title) = &input.title {
                            updated.title.clone_from(title);
                        }
                        if let Some(secrets) = &input.secrets {
                            updated.authentication_type = auth_type(&c, secrets)?;
                            updated.sealed = secrets.seal(&self.vault, &updated.id);
                            updated.status = None;
                        }
                        Ok(rules::update(
                            set,
                            existing,
                            updated,
                            input.is_default,
                            &now,
                        )?)
                    }
                    Some(_) => Err(RuleError::Duplicate(name.clone()).into()),
                    None => {
                        let id = uuid::Uuid::now_v7().to_string();
                        let empty = CredentialSecrets::default();
                        let secrets = input.secrets.as_ref().unwrap_or(&empty);
                        let new = Credential {
                            authentication_type: auth_type(&c, secrets)?,
                            sealed: secrets.seal(&self.vault, &id),
                            id,
                            connector_id: c.id.clone(),
                            scope,
                            owner_id: key.owner_id.clone(),
                            name: name.clone(),
                            title: input.title.clone().flatten(),
                            is_default: false,
                            creator_id: p.user_id.clone(),
                            created_at: now.clone(),
                            modified_at: now.clone(),
                            status: None,
                        };
                        Ok(rules::create(set, new, input.is_default, &now)?)
                    }
                }
            })
            .await?;
        change
            .upserts
            .into_iter()
            .find(|cr| cr.name == name)
            .ok_or(CredentialsError::Busy)
    }

    /// Reads the set, computes a change, writes it if nobody else wrote meanwhile; retries.
    async fn apply<F>(
        &self,
        key: &CredentialSetKey,
        mut compute: F,
    ) -> Result<SetChange, CredentialsError>
    where
        F: FnMut(&[Credential]) -> Result<SetChange, CredentialsError>,
    {
        for attempt in 0..crate::store::WRITE_ATTEMPTS {
            let set = self.store.credential_set(key).await?;
            let creds = rows_to_creds(set.rows);
            let change = compute(&creds)?;
            let rows: Vec<_> = change.upserts.iter().map(Credential::to_row).collect();
            match self
                .store
                .write_credential_set(key, set.version, &rows, &change.deletes)
                .await
            {
                Ok(()) => return Ok(change),
                Err(StoreError::Stale) => crate::store::contention_backoff(attempt).await,
                Err(StoreError::Conflict(_)) => {
                    return Err(CredentialsError::Busy);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CredentialsError::Busy)
    }
}

/// The authentication type of new material; empty material is a `none` credential only when
/// the connector declares the `none` method.
fn auth_type(c: &Connector, secrets: &CredentialSecrets) -> Result<String, CredentialsError> {
    match secrets.authentication_type() {
        Ok(t) => Ok(t.as_str().to_owned()),
        Err(msg) => {
            let empty = secrets.bearer_token.is_none()
                && secrets.oauth.is_none()
                && secrets.headers.is_empty();
            if empty && c.doc.auth_methods.iter().any(|m| m.method_type == "none") {
                Ok("none".into())
            } else {
                Err(CredentialsError::Invalid("credentials", msg.to_owned()))
            }
        }
    }
}
