//! In-memory caches (moka): the `tools/list` cache. Upstream sessions are pooled in
//! `mcp::SessionPool`.

mod tools;

pub use tools::{CacheOutcome, ToolsCache, ToolsKey, ToolsList};

/// The hasher of the caches a relayed call looks up (API keys, resolutions, opened session
/// ids, breakers): foldhash, seeded at random per process (keys come from callers). moka's
/// default, SipHash, cost about a thousand instructions per lookup of a sealed session id.
pub type FastHash = foldhash::quality::RandomState;

/// A [`moka::sync::Cache`] hashing with [`FastHash`].
pub type SyncCache<K, V> = moka::sync::Cache<K, V, FastHash>;
