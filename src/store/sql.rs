//! The SQL store over sqlx's runtime-selected driver. Queries are written once with `$n`
//! placeholders and rewritten to SQLite's `?n` on SQLite; types are kept to TEXT, BIGINT and
//! BLOB/BYTEA so both backends decode the same.

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use super::{
    ApiKeyRow, BackendKind, ConnectorPageQuery, ConnectorRow, Consumer, CredentialRow,
    CredentialSet, CredentialSetKey, OAuthClientRow, SealedRecord, Store, StoreError,
};
use crate::config::{StoreBackend, StoreConfig};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const CONNECTOR_COLUMNS: &str = "id, name, workspace_id, org_id, creator_id, owner_type, owner_id, \
     visibility, protocol, supports_mcp, document, secrets, created_at, modified_at";

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    kind: BackendKind,
}

impl SqlStore {
    /// Connects (creating the SQLite file and its folder if needed) and runs migrations.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout);
        let (store, schema) = match &config.backend {
            StoreBackend::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Database(sqlx::Error::Configuration(
                            format!("cannot create {}: {e}", dir.display()).into(),
                        ))
                    })?;
                }
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let busy = format!("PRAGMA busy_timeout = {}", config.busy_timeout.as_millis());
                let pool = options
                    .after_connect(move |conn, _| {
                        let busy = busy.clone();
                        Box::pin(async move {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                busy.as_str(),
                                "PRAGMA foreign_keys = ON",
                            ] {
                                conn.execute(pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                (
                    Self {
                        pool,
                        kind: BackendKind::Sqlite,
                    },
                    None,
                )
            }
            StoreBackend::Postgres { url, schema } => {
                let set_path = schema
                    .as_ref()
                    .map(|s| format!("SET search_path TO \"{s}\""));
                let pool = options
                    .after_connect(move |conn, _| {
                        let set_path = set_path.clone();
                        Box::pin(async move {
                            if let Some(sql) = set_path {
                                conn.execute(sql.as_str()).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                (
                    Self {
                        pool,
                        kind: BackendKind::Postgres,
                    },
                    schema.clone(),
                )
            }
        };
        if let Some(schema) = schema {
            store
                .pool
                .execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str())
                .await?;
        }
        match store.kind {
            BackendKind::Sqlite => SQLITE_MIGRATIONS.run(&store.pool).await?,
            BackendKind::Postgres => POSTGRES_MIGRATIONS.run(&store.pool).await?,
        }
        Ok(store)
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Rewrites `$n` placeholders for the backend.
    fn sql(&self, text: &str) -> String {
        match self.kind {
            BackendKind::Postgres => text.to_owned(),
            BackendKind::Sqlite => text.replace('$', "?"),
        }
    }
}

fn conflict_or(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(what.to_owned());
        }
    }
    StoreError::Database(e)
}

fn connector_from(row: &AnyRow) -> Result<ConnectorRow, sqlx::Error> {
    Ok(ConnectorRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        workspace_id: row.try_get("workspace_id")?,
        org_id: row.try_get("org_id")?,
        creator_id: row.try_get("creator_id")?,
        owner_type: row.try_get("owner_type")?,
        owner_id: row.try_get("owner_id")?,
        visibility: row.try_get("visibility")?,
        protocol: row.try_get("protocol")?,
        supports_mcp: row.try_get::<i64, _>("supports_mcp")? != 0,
        document: row.try_get("document")?,
        secrets: row.try_get("secrets")?,
        created_at: row.try_get("created_at")?,
        modified_at: row.try_get("modified_at")?,
    })
}

const CREDENTIAL_COLUMNS: &str = "id, connector_id, scope, owner_id, name, title, \
     authentication_type, is_default, creator_id, secrets, created_at, modified_at, status";

fn credential_from(row: &AnyRow) -> Result<CredentialRow, sqlx::Error> {
    Ok(CredentialRow {
        id: row.try_get("id")?,
        connector_id: row.try_get("connector_id")?,
        scope: row.try_get("scope")?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        title: row.try_get("title")?,
        authentication_type: row.try_get("authentication_type")?,
        is_default: row.try_get::<i64, _>("is_default")? != 0,
        creator_id: row.try_get("creator_id")?,
        secrets: row.try_get("secrets")?,
        created_at: row.try_get("created_at")?,
        modified_at: row.try_get("modified_at")?,
        status: row.try_get("status")?,
    })
}

fn api_key_from(row: &AnyRow) -> Result<ApiKeyRow, sqlx::Error> {
    Ok(ApiKeyRow {
        key_hash: row.try_get("key_hash")?,
        key_prefix: row.try_get("key_prefix")?,
        user_id: row.try_get("user_id")?,
        workspace_id: row.try_get("workspace_id")?,
        org_id: row.try_get("org_id")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> BackendKind {
        self.kind
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_connector(&self, r: &ConnectorRow) -> Result<(), StoreError> {
        let sql = self.sql(&format!(
            "INSERT INTO connectors ({CONNECTOR_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ));
        sqlx::query(&sql)
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.workspace_id)
            .bind(&r.org_id)
            .bind(&r.creator_id)
            .bind(&r.owner_type)
            .bind(&r.owner_id)
            .bind(&r.visibility)
            .bind(&r.protocol)
            .bind(i64::from(r.supports_mcp))
            .bind(&r.document)
            .bind(r.secrets.clone())
            .bind(&r.created_at)
            .bind(&r.modified_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, "connector name already exists in this workspace"))?;
        Ok(())
    }

    async fn update_connector(
        &self,
        r: &ConnectorRow,
        expected_modified_at: &str,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "UPDATE connectors SET name = $2, workspace_id = $3, org_id = $4, creator_id = $5, \
             owner_type = $6, owner_id = $7, visibility = $8, protocol = $9, supports_mcp = $10, \
             document = $11, secrets = $12, modified_at = $13 \
             WHERE id = $1 AND modified_at = $14",
        );
        let done = sqlx::query(&sql)
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.workspace_id)
            .bind(&r.org_id)
            .bind(&r.creator_id)
            .bind(&r.owner_type)
            .bind(&r.owner_id)
            .bind(&r.visibility)
            .bind(&r.protocol)
            .bind(i64::from(r.supports_mcp))
            .bind(&r.document)
            .bind(r.secrets.clone())
            .bind(&r.modified_at)
            .bind(expected_modified_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, "connector name already exists in this workspace"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Stale);
        }
        Ok(())
    }

    async fn delete_connector(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["connector_blocks", "credentials", "credential_sets"] {
            sqlx::query(&self.sql(&format!("DELETE FROM {table} WHERE connector_id = $1")))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query(&self.sql("DELETE FROM connectors WHERE id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_connector(&self, id: &str) -> Result<Option<ConnectorRow>, StoreError> {
        let sql = self.sql(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE id = $1"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(connector_from).transpose()?)
    }

    async fn connectors_named(&self, name: &str) -> Result<Vec<ConnectorRow>, StoreError> {
        let sql = self.sql(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE name = $1 ORDER BY created_at, id"
        ));
        let rows = sqlx::query(&sql).bind(name).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(connector_from).collect::<Result<_, _>>()?)
    }

    async fn list_connectors(
        &self,
        q: &ConnectorPageQuery,
    ) -> Result<Vec<ConnectorRow>, StoreError> {
        let (after_created, after_id) = q.after.clone().unwrap_or_default();
        let sql = self.sql(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors \
             WHERE ((visibility = 'private' AND creator_id = $1) \
                 OR (visibility = 'shared_workspace' AND workspace_id = $2) \
                 OR (visibility = 'shared_org' AND org_id = $3)) \
               AND ($4 = 0 OR supports_mcp = $5) \
               AND ($6 = 0 OR created_at > $7 OR (created_at = $7 AND id > $8)) \
             ORDER BY created_at, id LIMIT $9"
        ));
        let rows = sqlx::query(&sql)
            .bind(&q.viewer.user_id)
            .bind(&q.viewer.workspace_id)
            .bind(&q.viewer.org_id)
            .bind(i64::from(q.supports_mcp.is_some()))
            .bind(i64::from(q.supports_mcp.unwrap_or(false)))
            .bind(i64::from(q.after.is_some()))
            .bind(after_created)
            .bind(after_id)
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(connector_from).collect::<Result<_, _>>()?)
    }

    async fn set_blocked(
        &self,
        connector_id: &str,
        consumer: &Consumer,
        blocked: bool,
    ) -> Result<(), StoreError> {
        let query = if blocked {
            self.sql(
                "INSERT INTO connector_blocks (connector_id, consumer_type, consumer_id, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connector_id, consumer_type, consumer_id) DO NOTHING",
            )
        } else {
            self.sql(
                "DELETE FROM connector_blocks \
                 WHERE connector_id = $1 AND consumer_type = $2 AND consumer_id = $3",
            )
        };
        let mut q = sqlx::query(&query)
            .bind(connector_id)
            .bind(&consumer.consumer_type)
            .bind(&consumer.consumer_id);
        if blocked {
            q = q.bind(crate::registry::now_timestamp());
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn blocked_by(
        &self,
        connector_id: &str,
        consumers: &[Consumer],
    ) -> Result<Vec<Consumer>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT consumer_type, consumer_id FROM connector_blocks WHERE connector_id = $1",
        ))
        .bind(connector_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let c = Consumer {
                consumer_type: row.try_get("consumer_type")?,
                consumer_id: row.try_get("consumer_id")?,
            };
            if consumers.contains(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn insert_api_key(&self, r: &ApiKeyRow) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO api_keys (key_hash, key_prefix, user_id, workspace_id, org_id, is_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        );
        sqlx::query(&sql)
            .bind(&r.key_hash)
            .bind(&r.key_prefix)
            .bind(&r.user_id)
            .bind(&r.workspace_id)
            .bind(&r.org_id)
            .bind(i64::from(r.is_admin))
            .bind(&r.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, "API key already exists"))?;
        Ok(())
    }

    async fn find_api_key(
        &self,
        key_hash: &str,
    ) -> Result<Option<std::sync::Arc<ApiKeyRow>>, StoreError> {
        let sql = self.sql(
            "SELECT key_hash, key_prefix, user_id, workspace_id, org_id, is_admin, created_at \
             FROM api_keys WHERE key_hash = $1",
        );
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .as_ref()
            .map(api_key_from)
            .transpose()?
            .map(std::sync::Arc::new))
    }

    async fn count_api_keys(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn sealed_records(&self) -> Result<Vec<SealedRecord>, StoreError> {
        let mut out = Vec::new();
        for (kind, sql) in [
            (
                "connector",
                "SELECT id, secrets FROM connectors WHERE secrets IS NOT NULL",
            ),
            ("credential", "SELECT id, secrets FROM credentials"),
            (
                "oauth_client",
                "SELECT id, secrets FROM oauth_clients WHERE secrets IS NOT NULL",
            ),
        ] {
            for r in sqlx::query(sql).fetch_all(&self.pool).await? {
                out.push(SealedRecord {
                    kind,
                    id: r.try_get("id")?,
                    blob: r.try_get("secrets")?,
                });
            }
        }
        Ok(out)
    }

    async fn reseal(&self, record: &SealedRecord, new_blob: &[u8]) -> Result<bool, StoreError> {
        let table = match record.kind {
            "connector" => "connectors",
            "credential" => "credentials",
            "oauth_client" => "oauth_clients",
            other => {
                return Err(StoreError::Conflict(format!(
                    "unknown sealed record kind {other}"
                )));
            }
        };
        let sql = self.sql(&format!(
            "UPDATE {table} SET secrets = $1 WHERE id = $2 AND secrets = $3"
        ));
        let done = sqlx::query(&sql)
            .bind(new_blob.to_vec())
            .bind(&record.id)
            .bind(record.blob.clone())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn credential_set(&self, key: &CredentialSetKey) -> Result<CredentialSet, StoreError> {
        let version = sqlx::query(&self.sql(
            "SELECT version FROM credential_sets WHERE connector_id = $1 AND scope = $2 AND owner_id = $3",
        ))
        .bind(&key.connector_id)
        .bind(&key.scope)
        .bind(&key.owner_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get::<i64, _>("version"))
        .transpose()?
        .unwrap_or(0);
        let sql = self.sql(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials \
             WHERE connector_id = $1 AND scope = $2 AND owner_id = $3 ORDER BY created_at, id"
        ));
        let rows = sqlx::query(&sql)
            .bind(&key.connector_id)
            .bind(&key.scope)
            .bind(&key.owner_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(CredentialSet {
            version,
            rows: rows.iter().map(credential_from).collect::<Result<_, _>>()?,
        })
    }

    async fn write_credential_set(
        &self,
        key: &CredentialSetKey,
        expected_version: i64,
        upserts: &[CredentialRow],
        delete_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let bumped = if expected_version == 0 {
            sqlx::query(&self.sql(
                "INSERT INTO credential_sets (connector_id, scope, owner_id, version) \
                 VALUES ($1, $2, $3, 1) ON CONFLICT (connector_id, scope, owner_id) DO NOTHING",
            ))
            .bind(&key.connector_id)
            .bind(&key.scope)
            .bind(&key.owner_id)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(&self.sql(
                "UPDATE credential_sets SET version = version + 1 \
                 WHERE connector_id = $1 AND scope = $2 AND owner_id = $3 AND version = $4",
            ))
            .bind(&key.connector_id)
            .bind(&key.scope)
            .bind(&key.owner_id)
            .bind(expected_version)
            .execute(&mut *tx)
            .await?
        };
        if bumped.rows_affected() == 0 {
            return Err(StoreError::Stale);
        }
        for id in delete_ids {
            sqlx::query(&self.sql("DELETE FROM credentials WHERE id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let upsert = self.sql(&format!(
            "INSERT INTO credentials ({CREDENTIAL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET name = $5, title = $6, authentication_type = $7, \
             is_default = $8, secrets = $10, modified_at = $12, status = $13"
        ));
        for r in upserts {
            sqlx::query(&upsert)
                .bind(&r.id)
                .bind(&r.connector_id)
                .bind(&r.scope)
                .bind(&r.owner_id)
                .bind(&r.name)
                .bind(r.title.clone())
                .bind(&r.authentication_type)
                .bind(i64::from(r.is_default))
                .bind(&r.creator_id)
                .bind(r.secrets.clone())
                .bind(&r.created_at)
                .bind(&r.modified_at)
                .bind(r.status.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "a credential with this name already exists"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn credentials_of(
        &self,
        connector_id: &str,
        owners: &[(String, String)],
    ) -> Result<Vec<CredentialRow>, StoreError> {
        let sql = self.sql(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE connector_id = $1 ORDER BY created_at, id"
        ));
        let rows = sqlx::query(&sql)
            .bind(connector_id)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let c = credential_from(r)?;
            if owners
                .iter()
                .any(|(s, o)| *s == c.scope && *o == c.owner_id)
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn prune_credentials(
        &self,
        connector_id: &str,
        scope: &str,
        keep_user: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for table in ["credentials", "credential_sets"] {
            let done = sqlx::query(&self.sql(&format!(
                "DELETE FROM {table} WHERE connector_id = $1 \
                 AND (scope = $2 OR (scope = 'user' AND owner_id <> $3))"
            )))
            .bind(connector_id)
            .bind(scope)
            .bind(keep_user)
            .execute(&mut *tx)
            .await?;
            if table == "credentials" {
                removed = done.rows_affected();
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn oauth_client(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> Result<Option<OAuthClientRow>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT id, issuer, redirect_uri, client_id, auth_method, secrets, created_at \
             FROM oauth_clients WHERE issuer = $1 AND redirect_uri = $2",
        ))
        .bind(issuer)
        .bind(redirect_uri)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(OAuthClientRow {
                id: r.try_get("id")?,
                issuer: r.try_get("issuer")?,
                redirect_uri: r.try_get("redirect_uri")?,
                client_id: r.try_get("client_id")?,
                auth_method: r.try_get("auth_method")?,
                secrets: r.try_get("secrets")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
        .map_err(StoreError::Database)
    }

    async fn insert_oauth_client(&self, r: &OAuthClientRow) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql(
            "INSERT INTO oauth_clients (id, issuer, redirect_uri, client_id, auth_method, secrets, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (issuer, redirect_uri) DO NOTHING",
        ))
        .bind(&r.id)
        .bind(&r.issuer)
        .bind(&r.redirect_uri)
        .bind(&r.client_id)
        .bind(&r.auth_method)
        .bind(r.secrets.clone())
        .bind(&r.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_oauth_client(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(&self.sql("DELETE FROM oauth_clients WHERE id = $1"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn consume_oauth_state(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query(&self.sql("DELETE FROM oauth_states WHERE expires_at < $1"))
            .bind(now)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(&self.sql(
            "INSERT INTO oauth_states (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
        ))
        .bind(nonce)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3 \
             WHERE leases.expires_at < $4",
        ))
        .bind(name)
        .bind(holder)
        .bind(until_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(&self.sql("DELETE FROM leases WHERE name = $1 AND holder = $2"))
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.kind != BackendKind::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
