//! The command line: `serve` (default), `check-config`, `keys create`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::config::{Config, StoreBackend};
use crate::identity::{ApiKeys, Principal, validate_identity_part};
use crate::store::SqlStore;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "MCP gateway and reverse proxy for connector servers"
)]
pub struct Cli {
    /// Config file (default: config/switchboard.toml when it exists).
    #[arg(long, short, env = "SWITCHBOARD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Validate the configuration and print a summary (no secrets), then exit.
    CheckConfig,
    /// Manage caller API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the vault keys.
    #[command(subcommand)]
    Vault(VaultCommand),
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Add a new primary key to the key file and re-seal every stored secret under it, while
    /// gateways keep serving. With keys from SWITCHBOARD_VAULT_KEY, put the new key first in
    /// that list on every replica, then run this to re-seal under it.
    Rotate {
        /// Only re-seal under the current primary key; do not generate a new one.
        #[arg(long)]
        no_new_key: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a principal; prints the key once on stdout.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        org: String,
        /// Admin of its workspace and organization.
        #[arg(long)]
        admin: bool,
    },
}

/// `check-config`: the summary printed on success.
pub fn describe(config: &Config) -> String {
    let store = match &config.store.backend {
        StoreBackend::Sqlite { path } => format!("sqlite {}", path.display()),
        StoreBackend::Postgres { schema, .. } => format!(
            "postgres (schema {})",
            schema.as_deref().unwrap_or("default")
        ),
    };
    let key = if config.vault.key.is_some() {
        "configured".to_owned()
    } else {
        format!("key file {}", config.vault.key_file.display())
    };
    let warnings: String = config
        .warnings
        .iter()
        .map(|w| format!("\n  warning: {w}"))
        .collect();
    format!(
        "config OK{warnings}\n  api listener:   {}\n  admin listener: {}\n  store:          {store}\n  vault key:      {key}\n  log:            {:?} {}",
        config.api_listen, config.admin_listen, config.log.format, config.log.level
    )
}

/// `keys create`.
pub async fn create_key(
    config: &Config,
    user: &str,
    workspace: &str,
    org: &str,
    admin: bool,
) -> anyhow::Result<String> {
    let principal = Principal {
        user_id: validate_identity_part(user).map_err(|m| anyhow::anyhow!("--user: {m}"))?,
        workspace_id: validate_identity_part(workspace)
            .map_err(|m| anyhow::anyhow!("--workspace: {m}"))?,
        org_id: validate_identity_part(org).map_err(|m| anyhow::anyhow!("--org: {m}"))?,
        is_admin: admin,
    };
    let store = SqlStore::connect(&config.store)
        .await
        .context("opening the store")?;
    let keys = ApiKeys::new(std::sync::Arc::new(store.clone()));
    let key = keys.create(&principal).await.context("storing the key")?;
    store.close().await;
    Ok(key.expose_secret().to_owned())
}

/// `vault rotate`: the report, and whether every record is now under the primary key.
pub async fn rotate(
    config: &Config,
    new_key: bool,
) -> anyhow::Result<crate::vault::RotationReport> {
    use crate::vault::{KeySource, load_or_create, prepend_new_key, reseal_all};
    let (_, source) = load_or_create(config.vault.key.as_ref(), &config.vault.key_file)
        .context("loading the vault keys")?;
    match (&source, new_key) {
        (KeySource::File(path) | KeySource::Generated(path), true) => {
            let id = prepend_new_key(path).context("adding a key to the key file")?;
            eprintln!(
                "added key {id} to {} as the new primary key",
                path.display()
            );
        }
        (KeySource::Configured, true) => eprintln!(
            "the vault keys come from the configuration: re-sealing under its first key \
             (to add a key, put it first in SWITCHBOARD_VAULT_KEY on every replica)"
        ),
        (_, false) => {}
    }
    let (vault, _) = load_or_create(config.vault.key.as_ref(), &config.vault.key_file)
        .context("reloading the vault keys")?;
    let store = SqlStore::connect(&config.store)
        .await
        .context("opening the store")?;
    let report = reseal_all(&store, &vault).await.context("re-sealing")?;
    store.close().await;
    Ok(report)
}
