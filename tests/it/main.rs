//! The integration test binary: the real app on port 0 against real stores.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected values")]

mod breaker;
mod chaos;
mod cli;
mod connectors;
mod credentials;
mod declared;
mod gateway;
mod harness;
mod hostile;
mod limits;
mod outbound;
mod pg_restart;
mod rejections;
mod replicas;
mod restart;
mod rotation;
mod sharing;
mod shutdown;
mod store;
mod store_faults;
mod tools;
mod upstream;
mod upstream_faults;
