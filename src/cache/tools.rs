//! The `tools/list` cache, keyed by (connector version, credential identity) so one user's
//! list is never served to another — unless the upstream marked it `cacheScope: "public"`.
//! Entries live for the upstream's `ttlMs` (or the configured default); concurrent misses
//! share one upstream fetch; the last good list is kept to serve, marked stale, while the
//! upstream is down (up to a maximum staleness).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use serde_json::Value;

use crate::mcp::McpError;

/// Which list: a connector at a version, as seen with one credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolsKey {
    pub connector_id: String,
    pub connector_version: String,
    pub credential: String,
}

impl ToolsKey {
    fn public(&self) -> (String, String) {
        (self.connector_id.clone(), self.connector_version.clone())
    }
}

/// A fetched list.
#[derive(Debug, Clone)]
pub struct ToolsList {
    pub tools: Vec<Value>,
    /// How long it may be served as fresh.
    pub ttl: Duration,
    /// `cacheScope: "public"`: shareable across credentials.
    pub public: bool,
    pub fetched_at: Instant,
}

/// How a lookup was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// The upstream failed; the last good list was served.
    Stale,
}

struct ListExpiry;

impl Expiry<ToolsKey, Arc<ToolsList>> for ListExpiry {
    fn expire_after_create(
        &self,
        _: &ToolsKey,
        v: &Arc<ToolsList>,
        _: Instant,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

struct PublicExpiry;

impl Expiry<(String, String), Arc<ToolsList>> for PublicExpiry {
    fn expire_after_create(
        &self,
        _: &(String, String),
        v: &Arc<ToolsList>,
        _: Instant,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

#[derive(Clone)]
pub struct ToolsCache {
    fresh: Cache<ToolsKey, Arc<ToolsList>>,
    public: Cache<(String, String), Arc<ToolsList>>,
    last_good: Cache<ToolsKey, Arc<ToolsList>>,
    default_ttl: Duration,
}

impl std::fmt::Debug for ToolsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsCache")
            .field("entries", &self.fresh.entry_count())
            .finish()
    }
}

impl ToolsCache {
    pub fn new(default_ttl: Duration, max_stale: Duration, max_entries: u64) -> Self {
        Self {
            fresh: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(ListExpiry)
                .support_invalidation_closures()
                .build(),
            public: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PublicExpiry)
                .support_invalidation_closures()
                .build(),
            last_good: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(max_stale)
                .support_invalidation_closures()
                .build(),
            default_ttl,
        }
    }

    /// The TTL of a fetched list: the upstream's `ttlMs` when given, else the default.
    pub fn ttl_for(&self, ttl_ms: Option<u64>) -> Duration {
        ttl_ms.map_or(self.default_ttl, Duration::from_millis)
    }

    /// Serves `key`, fetching with `fetch` on a miss (or always, with `refresh`). Concurrent
    /// misses for the same key share one fetch.
    pub async fn get<F>(
        &self,
        key: &ToolsKey,
        refresh: bool,
        fetch: impl FnOnce() -> F,
    ) -> Result<(Arc<ToolsList>, CacheOutcome), McpError>
    where
        F: Future<Output = Result<ToolsList, McpError>>,
    {
        if refresh {
            self.fresh.invalidate(key).await;
            self.public.invalidate(&key.public()).await;
        } else {
            if let Some(list) = self.public.get(&key.public()).await {
                return Ok((list, CacheOutcome::Hit));
            }
            if let Some(list) = self.fresh.get(key).await {
                return Ok((list, CacheOutcome::Hit));
            }
        }
        let fetched = self
            .fresh
            .try_get_with(key.clone(), async { fetch().await.map(Arc::new) })
            .await;
        match fetched {
            Ok(list) => {
                self.last_good.insert(key.clone(), list.clone()).await;
                if list.public {
                    self.public.insert(key.public(), list.clone()).await;
                }
                Ok((list, CacheOutcome::Miss))
            }
            Err(e) => {
                let e = (*e).clone();
                let upstream_down = matches!(
                    e,
                    McpError::Unreachable(_) | McpError::Timeout | McpError::Protocol(_)
                ) || matches!(e, McpError::Http { status, .. } if status >= 500);
                match self.last_good.get(key).await {
                    Some(list) if upstream_down => Ok((list, CacheOutcome::Stale)),
                    _ => Err(e),
                }
            }
        }
    }

    /// A fresh list, without fetching.
    pub async fn peek(&self, key: &ToolsKey) -> Option<Arc<ToolsList>> {
        match self.public.get(&key.public()).await {
            Some(list) => Some(list),
            None => self.fresh.get(key).await,
        }
    }

    /// The connector's tools changed upstream (`list_changed`): drop its fresh lists for every
    /// credential, keep the fallback copies.
    pub fn tools_changed(&self, connector_id: &str) {
        let id = connector_id.to_owned();
        let _ = self
            .fresh
            .invalidate_entries_if(move |k, _| k.connector_id == id);
        let id = connector_id.to_owned();
        let _ = self.public.invalidate_entries_if(move |k, _| k.0 == id);
    }

    /// Drops every fresh list (events may have been missed); fallback copies stay.
    pub fn forget_fresh(&self) {
        self.fresh.invalidate_all();
        self.public.invalidate_all();
    }

    /// The connector is gone (or its credential set changed): drop everything about it.
    pub fn forget_connector(&self, connector_id: &str) {
        self.tools_changed(connector_id);
        let id = connector_id.to_owned();
        let _ = self
            .last_good
            .invalidate_entries_if(move |k, _| k.connector_id == id);
    }
}
