//! Cross-replica cache invalidation over PostgreSQL `LISTEN/NOTIFY`: a `tools/list_changed` seen
//! by one replica drops the matching tools lists on every replica, and a connector, credential
//! or activation change written by one replica (`store_changed`, sent by
//! [`crate::store::CachedStore`] before the write returns) obsoletes the others' cached store
//! reads. A replica that loses its listening connection serves nothing from memory as fresh
//! until it has reconnected, then drops its fresh lists and cached reads (it may have missed
//! events). SQLite runs one replica: events stay local.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache::ToolsCache;
use crate::store::{CacheState, Store};

#[derive(Debug, Serialize, Deserialize)]
struct Event {
    /// `tools_changed`
    kind: String,
    connector: String,
    /// The replica that sent it (it already acted on it).
    origin: String,
}

/// Publishes events; cheap to clone.
#[derive(Clone)]
pub struct Events {
    store: Arc<dyn Store>,
    channel: String,
    replica: String,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("channel", &self.channel)
            .field("replica", &self.replica)
            .finish()
    }
}

/// The channel of a store (one per PostgreSQL schema, so deployments sharing a database never
/// hear each other).
pub fn channel_for(schema: Option<&str>) -> String {
    let suffix: String = schema
        .unwrap_or("public")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("switchboard_{suffix}")
}

impl Events {
    pub fn new(store: Arc<dyn Store>, channel: String) -> Self {
        Self {
            store,
            channel,
            replica: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The channel events travel on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The event a store write sends (see [`crate::store::CachedStore`]).
    pub fn store_changed_payload(&self) -> String {
        serde_json::to_string(&Event {
            kind: "store_changed".into(),
            connector: String::new(),
            origin: self.replica.clone(),
        })
        .unwrap_or_default()
    }

    /// Tells the other replicas that a connector's tools changed (fire and forget).
    pub fn tools_changed(&self, connector_id: &str) {
        let event = Event {
            kind: "tools_changed".into(),
            connector: connector_id.to_owned(),
            origin: self.replica.clone(),
        };
        let Ok(payload) = serde_json::to_string(&event) else {
            return;
        };
        let (store, channel) = (self.store.clone(), self.channel.clone());
        tokio::spawn(async move {
            if let Err(e) = store.notify(&channel, &payload).await {
                tracing::warn!(error = %e, "could not publish a cache invalidation");
            }
        });
    }

    /// Listens on PostgreSQL for the other replicas' events until `stop` turns true.
    pub fn listen(
        &self,
        url: String,
        cache: ToolsCache,
        reads: Arc<CacheState>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let (channel, me) = (self.channel.clone(), self.replica.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                if *stop.borrow() {
                    return;
                }
                let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cache events: cannot connect; retrying");
                        tokio::select! {
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                };
                if let Err(e) = listener.listen(&channel).await {
                    tracing::warn!(error = %e, "cache events: LISTEN failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // Events may have been missed while disconnected.
                reads.set_in_sync(true);
                if !first {
                    cache.forget_fresh();
                    tracing::info!(
                        "cache events: reconnected; fresh tools lists and cached reads dropped"
                    );
                }
                first = false;
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        n = listener.try_recv() => match n {
                            Ok(Some(n)) => {
                                let Ok(ev) = serde_json::from_str::<Event>(n.payload()) else {
                                    continue;
                                };
                                if ev.origin == me {
                                    continue;
                                }
                                match ev.kind.as_str() {
                                    "tools_changed" => {
                                        tracing::debug!(connector = %ev.connector, "tools changed on another replica");
                                        cache.tools_changed(&ev.connector);
                                    }
                                    "store_changed" => reads.changed(),
                                    _ => {}
                                }
                            }
                            // The connection dropped: we may miss events until reconnected.
                            Ok(None) => {
                                reads.set_in_sync(false);
                                cache.forget_fresh();
                                tracing::warn!("cache events: connection lost; fresh tools lists dropped, reconnecting");
                                break;
                            }
                            Err(e) => {
                                reads.set_in_sync(false);
                                tracing::warn!(error = %e, "cache events: listener failed; reconnecting");
                                break;
                            }
                        },
                    }
                }
            }
        })
    }
}
