//! In-memory caches (moka): the `tools/list` cache. Upstream sessions are pooled in
//! `mcp::SessionPool`.

mod tools;

pub use tools::{CacheOutcome, ToolsCache, ToolsKey, ToolsList};
