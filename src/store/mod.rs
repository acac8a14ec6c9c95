//! Persistence behind one trait. Two real backends share one implementation over sqlx's
//! runtime-selected driver: SQLite (embedded default, WAL) and PostgreSQL (several replicas).
//! The store speaks plain rows; `registry` turns them into domain types.

mod cached;
mod sql;

use async_trait::async_trait;

pub use cached::{CacheState, CachedStore};
pub use sql::SqlStore;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (e.g. a connector name taken in the workspace).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An optimistic update lost the race: the row changed since it was read.
    #[error("the record changed concurrently")]
    Stale,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A connector as stored. `document` is the public JSON part; `secrets` is a vault blob.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRow {
    pub id: String,
    pub name: String,
    pub workspace_id: String,
    pub org_id: String,
    pub creator_id: String,
    pub owner_type: String,
    pub owner_id: String,
    pub visibility: String,
    pub protocol: String,
    pub supports_mcp: bool,
    pub document: String,
    pub secrets: Option<Vec<u8>>,
    pub created_at: String,
    pub modified_at: String,
}

/// Who is looking: connectors are filtered to those visible to this viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: String,
    pub workspace_id: String,
    pub org_id: String,
}

/// A keyset page request over connectors visible to `viewer`, ordered by (created_at, id).
#[derive(Debug, Clone)]
pub struct ConnectorPageQuery {
    pub viewer: Viewer,
    pub supports_mcp: Option<bool>,
    /// Return rows strictly after this (created_at, id).
    pub after: Option<(String, String)>,
    pub limit: u32,
}

/// A consumer that deactivated a connector (`user`, `workspace` or `org`, and its id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Consumer {
    pub consumer_type: String,
    pub consumer_id: String,
}

/// A caller API key, stored hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub key_hash: String,
    /// The first characters of the key, to recognise it in listings; never enough to use it.
    pub key_prefix: String,
    pub user_id: String,
    pub workspace_id: String,
    pub org_id: String,
    pub is_admin: bool,
    pub created_at: String,
}

/// A stored credential; `secrets` is a vault blob.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRow {
    pub id: String,
    pub connector_id: String,
    /// `user`, `workspace` or `org`.
    pub scope: String,
    /// The user, workspace or organization id the credential belongs to.
    pub owner_id: String,
    pub name: String,
    pub title: Option<String>,
    pub authentication_type: String,
    pub is_default: bool,
    pub creator_id: String,
    pub secrets: Vec<u8>,
    pub created_at: String,
    pub modified_at: String,
    /// The credential's CredentialsStatus (§4.4) as JSON, when known.
    pub status: Option<String>,
}

/// A dynamically registered OAuth client (RFC 7591), per (issuer, redirect URI); `secrets` is
/// a vault blob holding the client secret, when the provider issued one.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthClientRow {
    pub id: String,
    pub issuer: String,
    pub redirect_uri: String,
    pub client_id: String,
    pub auth_method: String,
    pub secrets: Option<Vec<u8>>,
    pub created_at: String,
}

/// The credentials of one consumer for one connector: the unit of consistent writes
/// (defaults are a property of the set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialSetKey {
    pub connector_id: String,
    pub scope: String,
    pub owner_id: String,
}

/// A set and its version (0: never written).
#[derive(Debug, Clone, Default)]
pub struct CredentialSet {
    pub version: i64,
    pub rows: Vec<CredentialRow>,
}

/// A sealed blob and the record that owns it, for start-up verification and key rotation.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    pub kind: &'static str,
    pub id: String,
    pub blob: Vec<u8>,
}

impl StoreError {
    /// The database cannot be reached right now (as opposed to a bad query or a conflict).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| unavailable_code(&c))
            }
            _ => false,
        }
    }
}

/// Database error codes meaning "not now" rather than "wrong": SQLite's BUSY and LOCKED (with
/// their extended codes: the database lock was not granted within the busy timeout), and
/// PostgreSQL's connection exceptions (class 08), shutdown or start-up in progress (57P01–03)
/// and too many connections (53300).
fn unavailable_code(code: &str) -> bool {
    if let Ok(n) = code.parse::<u32>() {
        return matches!(n & 0xff, 5 | 6);
    }
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// How many times an optimistic write is attempted before reporting a conflict.
pub const WRITE_ATTEMPTS: usize = 16;

/// Waits a little, with jitter, after losing an optimistic-write race (`attempt` from 0), so
/// concurrent writers spread out instead of colliding again.
pub async fn contention_backoff(attempt: usize) {
    use rand::Rng;
    let cap_ms = (1u64 << attempt.min(6)).min(50);
    let ms = rand::thread_rng().gen_range(0..=cap_ms);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Which backend a store runs on (for logs and readiness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> BackendKind;
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn insert_connector(&self, row: &ConnectorRow) -> Result<(), StoreError>;
    /// Replaces the row with `row.id` if its `modified_at` still equals `expected_modified_at`.
    async fn update_connector(
        &self,
        row: &ConnectorRow,
        expected_modified_at: &str,
    ) -> Result<(), StoreError>;
    /// Deletes the connector and everything hanging off it. `false` if it did not exist.
    async fn delete_connector(&self, id: &str) -> Result<bool, StoreError>;
    async fn get_connector(&self, id: &str) -> Result<Option<ConnectorRow>, StoreError>;
    /// All connectors with this name, in any workspace (the caller filters by visibility).
    async fn connectors_named(&self, name: &str) -> Result<Vec<ConnectorRow>, StoreError>;
    async fn list_connectors(
        &self,
        query: &ConnectorPageQuery,
    ) -> Result<Vec<ConnectorRow>, StoreError>;

    async fn set_blocked(
        &self,
        connector_id: &str,
        consumer: &Consumer,
        blocked: bool,
    ) -> Result<(), StoreError>;
    /// Of `consumers`, those that deactivated `connector_id`.
    async fn blocked_by(
        &self,
        connector_id: &str,
        consumers: &[Consumer],
    ) -> Result<Vec<Consumer>, StoreError>;

    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError>;
    /// Shared: the cached store hands out the row it keeps, every request, without copying it.
    async fn find_api_key(
        &self,
        key_hash: &str,
    ) -> Result<Option<std::sync::Arc<ApiKeyRow>>, StoreError>;
    async fn count_api_keys(&self) -> Result<i64, StoreError>;

    /// Every sealed blob in the store.
    async fn sealed_records(&self) -> Result<Vec<SealedRecord>, StoreError>;
    /// Replaces a sealed blob if it is still `old` (key rotation). `false` if it changed.
    async fn reseal(&self, record: &SealedRecord, new_blob: &[u8]) -> Result<bool, StoreError>;

    async fn credential_set(&self, key: &CredentialSetKey) -> Result<CredentialSet, StoreError>;
    /// Applies upserts and deletions (by id) to a set if its version is still
    /// `expected_version`, in one transaction; `Stale` otherwise.
    async fn write_credential_set(
        &self,
        key: &CredentialSetKey,
        expected_version: i64,
        upserts: &[CredentialRow],
        delete_ids: &[String],
    ) -> Result<(), StoreError>;
    /// The credentials of a connector held by any of `owners` (scope, owner id).
    async fn credentials_of(
        &self,
        connector_id: &str,
        owners: &[(String, String)],
    ) -> Result<Vec<CredentialRow>, StoreError>;
    /// On unshare: drops the credentials of scope `scope` and the user credentials of everyone
    /// but `keep_user`. Returns how many were removed.
    async fn prune_credentials(
        &self,
        connector_id: &str,
        scope: &str,
        keep_user: &str,
    ) -> Result<u64, StoreError>;

    async fn oauth_client(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> Result<Option<OAuthClientRow>, StoreError>;
    /// Inserts a registration unless one exists for (issuer, redirect URI): `false` then.
    async fn insert_oauth_client(&self, row: &OAuthClientRow) -> Result<bool, StoreError>;
    async fn delete_oauth_client(&self, id: &str) -> Result<(), StoreError>;
    /// Marks an authorization state used; `false` if it already was (a replay). Forgets
    /// states that expired before `now` (unix seconds).
    async fn consume_oauth_state(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Takes the lease `name` until `until_ms` if it is free or expired (unix milliseconds).
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError>;
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Broadcasts an event to the other replicas (PostgreSQL `NOTIFY`; a no-op on SQLite,
    /// which has one replica).
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError>;
}
