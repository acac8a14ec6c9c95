//! Connector operations on behalf of a principal: create, list, resolve, update, delete,
//! share, unshare, activate, deactivate.

use std::sync::Arc;

use super::access::{can_manage, is_visible};
use super::connector::{
    AuthMethod, AuthMethodSecrets, Connector, ConnectorDocument, ConnectorSecrets,
};
use super::cursor::Cursor;
use super::types::{ConnectorName, ConsumerScope, ConsumerType, Protocol, Visibility};
use super::{RegistryError, now_timestamp};
use crate::identity::Principal;
use crate::store::{ConnectorPageQuery, Consumer, Store, StoreError};
use crate::vault::Vault;

/// A field of an update: absent (leave), `null` (clear) or a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    fn apply(self, slot: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *slot = None,
            Patch::Value(v) => *slot = Some(v),
        }
    }
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct NewConnector {
    pub protocol: Protocol,
    pub name: ConnectorName,
    pub visibility: Visibility,
    pub doc: ConnectorDocument,
    pub secrets: ConnectorSecrets,
}

/// A validated update request; see the contract §5.4.
#[derive(Debug, Clone, Default)]
pub struct ConnectorPatch {
    /// Must match the stored protocol when given (the protocol cannot change).
    pub protocol: Option<Protocol>,
    pub name: Option<ConnectorName>,
    pub description: Option<String>,
    pub server: Option<String>,
    pub title: Patch<String>,
    pub icon_url: Patch<String>,
    pub system_prompt: Patch<String>,
    /// Replaces the whole list (and its secrets) when present.
    pub auth_methods: Option<(Vec<AuthMethod>, Vec<AuthMethodSecrets>)>,
}

/// One page of a listing.
#[derive(Debug)]
pub struct ConnectorPage {
    pub items: Vec<Connector>,
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>) -> Self {
        Self { store, vault }
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub async fn create(
        &self,
        p: &Principal,
        new: NewConnector,
    ) -> Result<Connector, RegistryError> {
        if new.visibility == Visibility::SharedOrg && !p.is_admin {
            return Err(RegistryError::Forbidden(
                "Creating an organization-shared connector requires organization admin rights"
                    .into(),
            ));
        }
        let now = now_timestamp();
        let mut connector = Connector {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name,
            workspace_id: p.workspace_id.clone(),
            org_id: p.org_id.clone(),
            creator_id: p.user_id.clone(),
            visibility: new.visibility,
            supports_mcp: new.protocol == Protocol::Mcp,
            protocol: new.protocol,
            doc: new.doc,
            sealed_secrets: None,
            created_at: now.clone(),
            modified_at: now,
        };
        connector.seal_secrets(&self.vault, &new.secrets);
        self.store
            .insert_connector(&connector.to_row())
            .await
            .map_err(|e| name_conflict(e, &connector.name))?;
        Ok(connector)
    }

    pub async fn list(
        &self,
        p: &Principal,
        supports_mcp: Option<bool>,
        after: Option<Cursor>,
        page_size: u32,
    ) -> Result<ConnectorPage, RegistryError> {
        let rows = self
            .store
            .list_connectors(&ConnectorPageQuery {
                viewer: p.viewer(),
                supports_mcp,
                after: after.map(|c| (c.created_at, c.id)),
                limit: page_size.saturating_add(1),
            })
            .await?;
        let mut items = rows
            .into_iter()
            .map(Connector::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > page_size as usize {
            items.truncate(page_size as usize);
            items.last().map(|c| Cursor {
                created_at: c.created_at.clone(),
                id: c.id.clone(),
            })
        } else {
            None
        };
        Ok(ConnectorPage { items, next })
    }

    /// Resolves an id or a name among the connectors visible to `p` (contract §1.5): an id
    /// first, then a name, preferring the caller's own workspace.
    pub async fn resolve(
        &self,
        p: &Principal,
        reference: &str,
    ) -> Result<Connector, RegistryError> {
        if uuid::Uuid::parse_str(reference).is_ok() {
            if let Some(row) = self.store.get_connector(reference).await? {
                let c = Connector::from_row(row)?;
                if is_visible(&c, p) {
                    return Ok(c);
                }
            }
        }
        if ConnectorName::parse(reference).is_err() {
            return Err(RegistryError::NotFound);
        }
        let mut visible: Vec<Connector> = self
            .store
            .connectors_named(reference)
            .await?
            .into_iter()
            .map(Connector::from_row)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|c| is_visible(c, p))
            .collect();
        visible.sort_by_key(|c| c.workspace_id != p.workspace_id);
        visible.into_iter().next().ok_or(RegistryError::NotFound)
    }

    pub async fn update(
        &self,
        p: &Principal,
        reference: &str,
        patch: ConnectorPatch,
    ) -> Result<Connector, RegistryError> {
        self.modify(p, reference, Gate::Manage, |c, vault| {
            let patch = patch.clone();
            if let Some(proto) = patch.protocol.filter(|p| *p != c.protocol) {
                return Err(RegistryError::Invalid(
                    "protocol",
                    format!(
                        "the protocol of a connector cannot change (it is {}, not {proto})",
                        c.protocol
                    ),
                ));
            }
            if let Some(name) = patch.name {
                c.name = name;
            }
            if let Some(d) = patch.description {
                c.doc.description = d;
            }
            if let Some(s) = patch.server {
                c.doc.server = s;
            }
            patch.title.apply(&mut c.doc.title);
            patch.icon_url.apply(&mut c.doc.icon_url);
            patch.system_prompt.apply(&mut c.doc.system_prompt);
            if let Some((methods, method_secrets)) = patch.auth_methods {
                let mut secrets = c.open_secrets(vault)?;
                c.doc.auth_methods = methods;
                secrets.auth_methods = method_secrets;
                c.seal_secrets(vault, &secrets);
            }
            Ok(())
        })
        .await
    }

    /// Makes an existing connector match a full declaration (the config file's `[[connectors]]`):
    /// its document and secrets are replaced, its id, owner and visibility kept. Nothing is
    /// written when it already matches. `Ok(false)` then.
    pub async fn reconcile(
        &self,
        p: &Principal,
        reference: &str,
        declared: NewConnector,
    ) -> Result<bool, RegistryError> {
        let current = self.resolve(p, reference).await?;
        if current.protocol != declared.protocol {
            return Err(RegistryError::Invalid(
                "protocol",
                format!(
                    "the protocol of a connector cannot change (it is {}, not {})",
                    current.protocol, declared.protocol
                ),
            ));
        }
        let same = current.name == declared.name
            && current.doc == declared.doc
            && current.open_secrets(&self.vault)? == declared.secrets;
        if same {
            return Ok(false);
        }
        self.modify(p, reference, Gate::Manage, |c, vault| {
            c.name = declared.name.clone();
            c.doc = declared.doc.clone();
            c.seal_secrets(vault, &declared.secrets);
            Ok(())
        })
        .await?;
        Ok(true)
    }

    pub async fn delete(&self, p: &Principal, reference: &str) -> Result<Connector, RegistryError> {
        let c = self.resolve(p, reference).await?;
        if !can_manage(&c, p) {
            return Err(forbidden_manage());
        }
        if !self.store.delete_connector(&c.id).await? {
            return Err(RegistryError::NotFound);
        }
        Ok(c)
    }

    /// Share with the workspace (`to = SharedWorkspace`) or the organization (`SharedOrg`).
    pub async fn share(
        &self,
        p: &Principal,
        reference: &str,
        to: Visibility,
    ) -> Result<Connector, RegistryError> {
        let gate = match to {
            Visibility::SharedOrg => Gate::CreatorAdmin,
            _ => Gate::Creator,
        };
        self.modify(p, reference, gate, |c, _| {
            c.visibility = to;
            Ok(())
        })
        .await
    }

    /// Revert a share of level `from` to private. A connector shared at the other level is a
    /// conflict; an already private one is left as it is.
    pub async fn unshare(
        &self,
        p: &Principal,
        reference: &str,
        from: Visibility,
    ) -> Result<Connector, RegistryError> {
        let gate = match from {
            Visibility::SharedOrg => Gate::CreatorAdmin,
            _ => Gate::Creator,
        };
        let c = self
            .modify(p, reference, gate, |c, _| {
                if c.visibility != from && c.visibility != Visibility::Private {
                    return Err(RegistryError::Conflict(format!(
                        "The connector is {}, not {}; unshare it from that level instead",
                        c.visibility, from
                    )));
                }
                c.visibility = Visibility::Private;
                Ok(())
            })
            .await?;
        // §5.11: the level's connections and other members' connections go; the creator's stay.
        let removed = self
            .store
            .prune_credentials(&c.id, from.owner_type().as_str(), &c.creator_id)
            .await?;
        if removed > 0 {
            tracing::info!(connector = %c.id, removed, "unshare removed credentials of other consumers");
        }
        Ok(c)
    }

    /// Activates (`active = true`) or deactivates the connector for the caller at `scope`.
    pub async fn set_active(
        &self,
        p: &Principal,
        reference: &str,
        scope: ConsumerScope,
        active: bool,
    ) -> Result<Connector, RegistryError> {
        let c = self.resolve(p, reference).await?;
        if scope != ConsumerScope::User && !p.is_admin {
            return Err(RegistryError::Forbidden(format!(
                "Changing activation for the {} requires admin rights there",
                scope.as_str()
            )));
        }
        let consumer = consumer_of(p, scope.consumer_type());
        self.store.set_blocked(&c.id, &consumer, !active).await?;
        Ok(c)
    }

    /// Which of the caller's levels deactivated `c`.
    pub async fn blocked_by(
        &self,
        p: &Principal,
        c: &Connector,
    ) -> Result<Vec<ConsumerType>, RegistryError> {
        let mine: Vec<Consumer> = ConsumerType::ALL
            .iter()
            .map(|t| consumer_of(p, *t))
            .collect();
        let blocked = self.store.blocked_by(&c.id, &mine).await?;
        Ok(ConsumerType::ALL
            .iter()
            .copied()
            .filter(|t| blocked.iter().any(|b| b.consumer_type == t.as_str()))
            .collect())
    }

    /// Opens every sealed record; returns the ones that cannot be opened, with the reason.
    pub async fn unreadable_secrets(&self) -> Result<Vec<(String, String)>, RegistryError> {
        let mut bad = Vec::new();
        for rec in self.store.sealed_records().await? {
            let Some(owner) = crate::vault::RecordIdentity::for_record(rec.kind, &rec.id) else {
                bad.push((
                    format!("{} {}", rec.kind, rec.id),
                    "unknown record kind".into(),
                ));
                continue;
            };
            if let Err(e) = self.vault.open(&rec.blob, &owner) {
                bad.push((format!("{} {}", rec.kind, rec.id), e.to_string()));
            }
        }
        Ok(bad)
    }

    /// Read-modify-write with optimistic concurrency, retried when another writer wins.
    async fn modify<F>(
        &self,
        p: &Principal,
        reference: &str,
        gate: Gate,
        change: F,
    ) -> Result<Connector, RegistryError>
    where
        F: Fn(&mut Connector, &Vault) -> Result<(), RegistryError>,
    {
        for attempt in 0..crate::store::WRITE_ATTEMPTS {
            let original = self.resolve(p, reference).await?;
            gate.check(&original, p)?;
            let mut c = original.clone();
            change(&mut c, &self.vault)?;
            c.modified_at = next_timestamp(&original.modified_at);
            match self
                .store
                .update_connector(&c.to_row(), &original.modified_at)
                .await
            {
                Ok(()) => return Ok(c),
                Err(StoreError::Stale) => crate::store::contention_backoff(attempt).await,
                Err(e) => return Err(name_conflict(e, &c.name)),
            }
        }
        Err(RegistryError::Conflict(
            "The connector is being modified concurrently; try again".into(),
        ))
    }
}

/// Who may perform a modification.
#[derive(Debug, Clone, Copy)]
enum Gate {
    /// Creator, or an admin of the level it is shared with.
    Manage,
    Creator,
    /// Creator with admin rights.
    CreatorAdmin,
}

impl Gate {
    fn check(self, c: &Connector, p: &Principal) -> Result<(), RegistryError> {
        let ok = match self {
            Gate::Manage => can_manage(c, p),
            Gate::Creator => c.creator_id == p.user_id,
            Gate::CreatorAdmin => c.creator_id == p.user_id && p.is_admin,
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Gate::Manage => forbidden_manage(),
            Gate::Creator => {
                RegistryError::Forbidden("Only the connector's creator may do this".into())
            }
            Gate::CreatorAdmin => RegistryError::Forbidden(
                "Only the connector's creator, with organization admin rights, may do this".into(),
            ),
        })
    }
}

fn forbidden_manage() -> RegistryError {
    RegistryError::Forbidden(
        "You may not modify this connector: only its creator or an admin of the level it is shared with may".into(),
    )
}

fn consumer_of(p: &Principal, t: ConsumerType) -> Consumer {
    let id = match t {
        ConsumerType::User => &p.user_id,
        ConsumerType::Workspace => &p.workspace_id,
        ConsumerType::Org => &p.org_id,
    };
    Consumer {
        consumer_type: t.as_str().to_owned(),
        consumer_id: id.clone(),
    }
}

fn name_conflict(e: StoreError, name: &ConnectorName) -> RegistryError {
    match e {
        StoreError::Conflict(_) => RegistryError::Conflict(format!(
            "A connector named '{name}' already exists in this workspace"
        )),
        other => RegistryError::Store(other),
    }
}

/// A timestamp strictly after `previous`, so optimistic updates always change `modified_at`.
fn next_timestamp(previous: &str) -> String {
    let now = now_timestamp();
    if now.as_str() > previous {
        return now;
    }
    // Clock went backwards or two writes in one microsecond: keep the order strictly increasing.
    let parsed =
        time::OffsetDateTime::parse(previous, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let bumped = parsed + time::Duration::microseconds(1);
    bumped.format(super::TIMESTAMP).unwrap_or(now)
}
