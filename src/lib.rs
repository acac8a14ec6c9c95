//! Switchboard: an MCP gateway and reverse proxy for remote connector servers.
//!
//! See `docs/ARCHITECTURE.md` for the planes and the request flow.

pub mod admin;
pub mod api;
pub mod app;
pub mod breaker;
pub mod cache;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod events;
pub mod gateway;
pub mod identity;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod observe;
pub mod ratelimit;
pub mod registry;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod vault;

pub use app::{App, Bound};
pub use config::Config;
