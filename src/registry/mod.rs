//! Connectors as a domain: validated types, id-or-name resolution, visibility, ownership,
//! sharing and per-consumer activation. Plain types, testable without HTTP.

mod access;
mod connector;
mod cursor;
mod service;
pub mod types;

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

pub use access::{can_manage, is_visible};
pub use connector::{
    AuthMethod, AuthMethodSecrets, Connector, ConnectorDocument, ConnectorSecrets, GlobalHeader,
};
pub use cursor::Cursor;
pub use service::{ConnectorPage, ConnectorPatch, NewConnector, Patch, Registry};
pub use types::{
    AuthenticationType, ConnectorName, ConsumerScope, ConsumerType, Protocol, Visibility,
};

use crate::store::StoreError;
use crate::vault::VaultError;

/// Errors of connector operations. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("connector not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// Input that is well-formed but not acceptable: (field, message).
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("vault: {0}")]
    Vault(VaultError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Now, as the fixed-width ISO 8601 UTC text every record uses (sorts lexically).
pub fn now_timestamp() -> String {
    OffsetDateTime::now_utc()
        .format(TIMESTAMP)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".into())
}
