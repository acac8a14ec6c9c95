//! A read-through cache in front of the store for the reads every data-plane request makes
//! (the caller's API key, the connector, its deactivations, the caller's credentials), so a
//! request normally costs no database round trip, and so requests whose data was read recently
//! keep working while the database is unreachable.
//!
//! Freshness: an entry is served without asking the store while it is younger than
//! `store.cache_ttl_seconds` and no change happened since it was read. Every write through
//! this replica bumps a generation (invalidating every connector and credential entry at once)
//! and, on PostgreSQL, tells the other replicas (`NOTIFY`, awaited before the write returns),
//! whose listener bumps theirs. A PostgreSQL replica whose listener is not connected serves
//! nothing from memory as fresh (it could miss changes) and bumps its generation when the
//! listener is back. API keys never change once issued: they expire by age only, and unknown
//! keys are never cached.
//!
//! Fallback: when the store answers "unavailable" (see [`StoreError::is_unavailable`]), an entry
//! read at the current generation within `store.cache_stale_seconds` is served instead, so a
//! database restart does not interrupt traffic on known connectors. Entries made obsolete by a
//! change are never served, not even then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    ApiKeyRow, BackendKind, ConnectorPageQuery, ConnectorRow, Consumer, CredentialRow,
    CredentialSet, CredentialSetKey, OAuthClientRow, SealedRecord, Store, StoreError,
};

const MAX_ENTRIES: u64 = 50_000;

struct Entry<V> {
    generation: u64,
    at: Instant,
    value: V,
}

type Map<V> = crate::cache::SyncCache<String, Arc<Entry<V>>>;

/// The cache's clock and switches, shared with the invalidation listener.
pub struct CacheState {
    generation: AtomicU64,
    /// PostgreSQL: whether the invalidation listener is connected (SQLite: always).
    in_sync: AtomicBool,
    ttl: Duration,
    stale: Duration,
    /// Where a write tells the other replicas: (channel, payload).
    publish: std::sync::OnceLock<(String, String)>,
}

impl std::fmt::Debug for CacheState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheState")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("in_sync", &self.in_sync.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CacheState {
    /// Something changed (here or on another replica): every connector and credential entry
    /// becomes obsolete.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The invalidation listener connected (`true`) or lost its connection (`false`). On
    /// reconnection everything read before is obsolete: changes may have been missed.
    pub fn set_in_sync(&self, in_sync: bool) {
        if in_sync {
            self.changed();
        }
        self.in_sync.store(in_sync, Ordering::SeqCst);
    }

    /// Writes through this replica are announced on `channel` with `payload` from now on.
    pub fn publish_on(&self, channel: String, payload: String) {
        let _ = self.publish.set((channel, payload));
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// A stamp to keep with something derived from store reads (take it *before* reading).
    pub fn stamp(&self) -> (u64, Instant) {
        (self.generation(), Instant::now())
    }

    /// Whether something stamped `stamp` may still be used without asking the store.
    pub fn still_fresh(&self, stamp: (u64, Instant)) -> bool {
        self.in_sync.load(Ordering::SeqCst)
            && stamp.0 == self.generation()
            && stamp.1.elapsed() < self.ttl
    }
}

/// How an entry ages: with the change generation (connectors, credentials) or by time only
/// (API keys).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follows {
    Changes,
    Age,
}

/// The store with its data-plane reads cached; every other call goes straight through.
#[derive(Clone)]
pub struct CachedStore {
    inner: Arc<dyn Store>,
    state: Arc<CacheState>,
    api_keys: Map<Option<Arc<ApiKeyRow>>>,
    connectors: Map<Option<ConnectorRow>>,
    named: Map<Vec<ConnectorRow>>,
    blocked: Map<Vec<Consumer>>,
    credentials: Map<Vec<CredentialRow>>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    /// `ttl`: served from memory this long; `stale`: served this long while the store is down.
    pub fn new(inner: Arc<dyn Store>, ttl: Duration, stale: Duration) -> Self {
        let keep = ttl.max(stale).max(Duration::from_secs(1));
        let in_sync = inner.backend() != BackendKind::Postgres;
        Self {
            inner,
            state: Arc::new(CacheState {
                generation: AtomicU64::new(0),
                in_sync: AtomicBool::new(in_sync),
                ttl,
                stale,
                publish: std::sync::OnceLock::new(),
            }),
            api_keys: map(keep),
            connectors: map(keep),
            named: map(keep),
            blocked: map(keep),
            credentials: map(keep),
        }
    }

    pub fn state(&self) -> Arc<CacheState> {
        self.state.clone()
    }

    /// Serves `key` from `map` when fresh; otherwise loads it (caching what `keep` accepts)
    /// and falls back to a still-valid entry when the store is unavailable.
    async fn read<V, F>(
        &self,
        map: &Map<V>,
        key: &str,
        follows: Follows,
        keep: impl Fn(&V) -> bool,
        load: impl FnOnce() -> F,
    ) -> Result<V, StoreError>
    where
        V: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<V, StoreError>>,
    {
        let s = &self.state;
        // Read before loading: a change landing during the load leaves the entry obsolete.
        let generation = s.generation();
        let current = |e: &Entry<V>| follows == Follows::Age || e.generation == generation;
        let cached = map.get(key);
        if let Some(e) = &cached {
            let in_sync = follows == Follows::Age || s.in_sync.load(Ordering::SeqCst);
            if in_sync && current(e) && e.at.elapsed() < s.ttl {
                return Ok(e.value.clone());
            }
        }
        // Made only on a miss: the store's futures are boxed (an allocation each).
        match load().await {
            Ok(value) => {
                if keep(&value) && !(s.ttl.is_zero() && s.stale.is_zero()) {
                    let entry = Entry {
                        generation,
                        at: Instant::now(),
                        value: value.clone(),
                    };
                    map.insert(key.to_owned(), Arc::new(entry));
                }
                Ok(value)
            }
            Err(e) if e.is_unavailable() => match cached {
                Some(entry) if current(&entry) && entry.at.elapsed() < s.stale => {
                    crate::metrics::get().store_fallback();
                    Ok(entry.value.clone())
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Runs a write, then obsoletes everything here and tells the other replicas before
    /// returning (whatever the outcome: a failed commit may still have landed).
    async fn write<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let r = op.await;
        self.wrote().await;
        r
    }

    async fn wrote(&self) {
        self.state.changed();
        if let Some((channel, payload)) = self.state.publish.get() {
            if let Err(e) = self.inner.notify(channel, payload).await {
                tracing::warn!(error = %e, "could not tell the other replicas about a change; they catch up within store.cache_ttl_seconds");
            }
        }
    }
}

fn map<V: Send + Sync + 'static>(keep: Duration) -> Map<V> {
    moka::sync::Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_live(keep)
        .build_with_hasher(crate::cache::FastHash::default())
}

fn consumers_key(connector_id: &str, consumers: &[Consumer]) -> String {
    let mut key = connector_id.to_owned();
    for c in consumers {
        key.push('\u{1f}');
        key.push_str(&c.consumer_type);
        key.push('\u{1e}');
        key.push_str(&c.consumer_id);
    }
    key
}

fn owners_key(connector_id: &str, owners: &[(String, String)]) -> String {
    let mut key = connector_id.to_owned();
    for (scope, owner) in owners {
        key.push('\u{1f}');
        key.push_str(scope);
        key.push('\u{1e}');
        key.push_str(owner);
    }
    key
}

#[async_trait]
impl Store for CachedStore {
    fn backend(&self) -> BackendKind {
        self.inner.backend()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn insert_connector(&self, row: &ConnectorRow) -> Result<(), StoreError> {
        self.write(self.inner.insert_connector(row)).await
    }

    async fn update_connector(
        &self,
        row: &ConnectorRow,
        expected_modified_at: &str,
    ) -> Result<(), StoreError> {
        self.write(self.inner.update_connector(row, expected_modified_at))
            .await
    }

    async fn delete_connector(&self, id: &str) -> Result<bool, StoreError> {
        self.write(self.inner.delete_connector(id)).await
    }

    async fn get_connector(&self, id: &str) -> Result<Option<ConnectorRow>, StoreError> {
        self.read(
            &self.connectors,
            id,
            Follows::Changes,
            Option::is_some,
            || self.inner.get_connector(id),
        )
        .await
    }

    async fn connectors_named(&self, name: &str) -> Result<Vec<ConnectorRow>, StoreError> {
        self.read(
            &self.named,
            name,
            Follows::Changes,
            |v: &Vec<ConnectorRow>| !v.is_empty(),
            || self.inner.connectors_named(name),
        )
        .await
    }

    async fn list_connectors(
        &self,
        query: &ConnectorPageQuery,
    ) -> Result<Vec<ConnectorRow>, StoreError> {
        self.inner.list_connectors(query).await
    }

    async fn set_blocked(
        &self,
        connector_id: &str,
        consumer: &Consumer,
        blocked: bool,
    ) -> Result<(), StoreError> {
        self.write(self.inner.set_blocked(connector_id, consumer, blocked))
            .await
    }

    async fn blocked_by(
        &self,
        connector_id: &str,
        consumers: &[Consumer],
    ) -> Result<Vec<Consumer>, StoreError> {
        self.read(
            &self.blocked,
            &consumers_key(connector_id, consumers),
            Follows::Changes,
            |_| true,
            || self.inner.blocked_by(connector_id, consumers),
        )
        .await
    }

    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        self.inner.insert_api_key(row).await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<Arc<ApiKeyRow>>, StoreError> {
        self.read(
            &self.api_keys,
            key_hash,
            Follows::Age,
            Option::is_some,
            || self.inner.find_api_key(key_hash),
        )
        .await
    }

    async fn count_api_keys(&self) -> Result<i64, StoreError> {
        self.inner.count_api_keys().await
    }

    async fn sealed_records(&self) -> Result<Vec<SealedRecord>, StoreError> {
        self.inner.sealed_records().await
    }

    async fn reseal(&self, record: &SealedRecord, new_blob: &[u8]) -> Result<bool, StoreError> {
        self.write(self.inner.reseal(record, new_blob)).await
    }

    async fn credential_set(&self, key: &CredentialSetKey) -> Result<CredentialSet, StoreError> {
        self.inner.credential_set(key).await
    }

    async fn write_credential_set(
        &self,
        key: &CredentialSetKey,
        expected_version: i64,
        upserts: &[CredentialRow],
        delete_ids: &[String],
    ) -> Result<(), StoreError> {
        self.write(
            self.inner
                .write_credential_set(key, expected_version, upserts, delete_ids),
        )
        .await
    }

    async fn credentials_of(
        &self,
        connector_id: &str,
        owners: &[(String, String)],
    ) -> Result<Vec<CredentialRow>, StoreError> {
        self.read(
            &self.credentials,
            &owners_key(connector_id, owners),
            Follows::Changes,
            |_| true,
            || self.inner.credentials_of(connector_id, owners),
        )
        .await
    }

    async fn prune_credentials(
        &self,
        connector_id: &str,
        scope: &str,
        keep_user: &str,
    ) -> Result<u64, StoreError> {
        self.write(self.inner.prune_credentials(connector_id, scope, keep_user))
            .await
    }

    async fn oauth_client(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> Result<Option<OAuthClientRow>, StoreError> {
        self.inner.oauth_client(issuer, redirect_uri).await
    }

    async fn insert_oauth_client(&self, row: &OAuthClientRow) -> Result<bool, StoreError> {
        self.inner.insert_oauth_client(row).await
    }

    async fn delete_oauth_client(&self, id: &str) -> Result<(), StoreError> {
        self.inner.delete_oauth_client(id).await
    }

    async fn consume_oauth_state(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner.consume_oauth_state(nonce, expires_at, now).await
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.inner.try_lease(name, holder, now_ms, until_ms).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, holder).await
    }

    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.inner.notify(channel, payload).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::config::{StoreBackend, StoreConfig};
    use crate::store::SqlStore;

    async fn sqlite(dir: &tempfile::TempDir) -> SqlStore {
        SqlStore::connect(&StoreConfig {
            backend: StoreBackend::Sqlite {
                path: dir.path().join("cache.db"),
            },
            max_connections: 2,
            acquire_timeout: Duration::from_millis(500),
            busy_timeout: Duration::from_millis(500),
            cache_ttl: Duration::ZERO,
            cache_stale: Duration::ZERO,
        })
        .await
        .unwrap()
    }

    fn row(id: &str, description: &str) -> ConnectorRow {
        ConnectorRow {
            id: id.into(),
            name: format!("n{id}"),
            workspace_id: "w".into(),
            org_id: "o".into(),
            creator_id: "u".into(),
            owner_type: "user".into(),
            owner_id: "u".into(),
            visibility: "private".into(),
            protocol: "http".into(),
            supports_mcp: false,
            document: format!(r#"{{"description":"{description}"}}"#),
            secrets: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            modified_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn serves_from_memory_until_a_write_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let sql = sqlite(&dir).await;
        let cached = CachedStore::new(
            Arc::new(sql.clone()),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        cached.insert_connector(&row("a", "one")).await.unwrap();
        let read = |s: &CachedStore| {
            let s = s.clone();
            async move { s.get_connector("a").await.unwrap().unwrap().document }
        };
        assert!(read(&cached).await.contains("one"));
        // Changed behind its back: still the remembered row.
        let mut changed = row("a", "two");
        changed.modified_at = "2026-01-02T00:00:00Z".into();
        sql.update_connector(&changed, "2026-01-01T00:00:00Z")
            .await
            .unwrap();
        assert!(read(&cached).await.contains("one"));
        // Any write through the cache obsoletes it.
        cached.insert_connector(&row("b", "other")).await.unwrap();
        assert!(read(&cached).await.contains("two"));
        // Unknown rows are never remembered.
        assert!(cached.get_connector("c").await.unwrap().is_none());
        sql.insert_connector(&row("c", "late")).await.unwrap();
        assert!(cached.get_connector("c").await.unwrap().is_some());
        sql.close().await;
    }

    #[tokio::test]
    async fn falls_back_to_unchanged_entries_while_the_store_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let sql = sqlite(&dir).await;
        // No freshness at all: every read asks the store, memory only covers outages.
        let cached = CachedStore::new(
            Arc::new(sql.clone()),
            Duration::ZERO,
            Duration::from_secs(60),
        );
        cached.insert_connector(&row("a", "one")).await.unwrap();
        cached.insert_connector(&row("b", "two")).await.unwrap();
        assert!(cached.get_connector("a").await.unwrap().is_some());
        let owners = [("user".to_owned(), "u".to_owned())];
        assert!(
            cached
                .credentials_of("a", &owners)
                .await
                .unwrap()
                .is_empty()
        );
        sql.close().await;
        // Read before the outage: served.
        assert!(cached.get_connector("a").await.unwrap().is_some());
        assert!(
            cached
                .credentials_of("a", &owners)
                .await
                .unwrap()
                .is_empty()
        );
        // Never read: the store's error.
        let err = cached.get_connector("b").await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        // Obsoleted by a change: not served, not even now.
        cached.state().changed();
        assert!(
            cached
                .get_connector("a")
                .await
                .unwrap_err()
                .is_unavailable()
        );
    }

    #[tokio::test]
    async fn a_replica_out_of_sync_asks_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let sql = sqlite(&dir).await;
        let cached = CachedStore::new(
            Arc::new(sql.clone()),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        cached.insert_connector(&row("a", "one")).await.unwrap();
        assert!(
            cached
                .get_connector("a")
                .await
                .unwrap()
                .unwrap()
                .document
                .contains("one")
        );
        cached.state().set_in_sync(false);
        let mut changed = row("a", "two");
        changed.modified_at = "2026-01-02T00:00:00Z".into();
        sql.update_connector(&changed, "2026-01-01T00:00:00Z")
            .await
            .unwrap();
        assert!(
            cached
                .get_connector("a")
                .await
                .unwrap()
                .unwrap()
                .document
                .contains("two")
        );
        sql.close().await;
    }
}
