//! The store contract, run against SQLite and PostgreSQL through the `Store` trait.

use switchboard::store::{
    ApiKeyRow, ConnectorPageQuery, ConnectorRow, Consumer, SqlStore, Store, StoreError, Viewer,
};

use crate::harness::{Backend, Env};

fn row(id: &str, name: &str, ws: &str, visibility: &str, created_at: &str) -> ConnectorRow {
    ConnectorRow {
        id: id.into(),
        name: name.into(),
        workspace_id: ws.into(),
        org_id: "org".into(),
        creator_id: "u1".into(),
        owner_type: "user".into(),
        owner_id: "u1".into(),
        visibility: visibility.into(),
        protocol: "mcp".into(),
        supports_mcp: true,
        document: "{}".into(),
        secrets: Some(vec![0, 1, 2, 255]),
        created_at: created_at.into(),
        modified_at: created_at.into(),
    }
}

fn viewer(user: &str, ws: &str) -> Viewer {
    Viewer {
        user_id: user.into(),
        workspace_id: ws.into(),
        org_id: "org".into(),
    }
}

async fn store_for(backend: Backend) -> Option<(Env, SqlStore)> {
    let env = Env::new(backend)?;
    let store = SqlStore::connect(&env.config().store)
        .await
        .expect("connect + migrate");
    Some((env, store))
}

async fn suite(store: &SqlStore) {
    store.ping().await.unwrap();
    let a = row("a", "alpha", "w1", "private", "2026-01-01T00:00:00.000001Z");
    let b = row(
        "b",
        "beta",
        "w1",
        "shared_workspace",
        "2026-01-01T00:00:00.000002Z",
    );
    let c = row(
        "c",
        "gamma",
        "w2",
        "shared_org",
        "2026-01-01T00:00:00.000002Z",
    );
    for r in [&a, &b, &c] {
        store.insert_connector(r).await.unwrap();
    }
    assert_eq!(store.get_connector("a").await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.get_connector("zzz").await.unwrap(), None);

    // unique (workspace, name); same name elsewhere is fine
    let dup = row("d", "alpha", "w1", "private", "2026-01-01T00:00:00.000003Z");
    assert!(matches!(
        store.insert_connector(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    let other_ws = row("e", "alpha", "w3", "private", "2026-01-01T00:00:00.000004Z");
    store.insert_connector(&other_ws).await.unwrap();
    assert_eq!(store.connectors_named("alpha").await.unwrap().len(), 2);

    // visibility filter + keyset order (created_at, id)
    let page = |after: Option<(String, String)>, limit| ConnectorPageQuery {
        viewer: viewer("u1", "w1"),
        supports_mcp: None,
        after,
        limit,
    };
    let all: Vec<String> = store
        .list_connectors(&page(None, 10))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        all,
        ["a", "b", "c", "e"],
        "u1 sees its private ones, w1's shared and org-shared"
    );
    let first = store.list_connectors(&page(None, 2)).await.unwrap();
    let last = first.last().unwrap();
    let rest: Vec<String> = store
        .list_connectors(&page(Some((last.created_at.clone(), last.id.clone())), 10))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(rest, ["c", "e"]);
    let stranger = ConnectorPageQuery {
        viewer: viewer("u2", "w2"),
        supports_mcp: None,
        after: None,
        limit: 10,
    };
    let seen: Vec<String> = store
        .list_connectors(&stranger)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(seen, ["c"]);
    let no_mcp = ConnectorPageQuery {
        supports_mcp: Some(false),
        ..page(None, 10)
    };
    assert!(store.list_connectors(&no_mcp).await.unwrap().is_empty());

    // optimistic update
    let mut a2 = a.clone();
    a2.name = "alpha2".into();
    a2.secrets = None;
    a2.modified_at = "2026-02-01T00:00:00.000000Z".into();
    store.update_connector(&a2, &a.modified_at).await.unwrap();
    assert_eq!(store.get_connector("a").await.unwrap(), Some(a2.clone()));
    assert!(matches!(
        store.update_connector(&a2, &a.modified_at).await,
        Err(StoreError::Stale)
    ));
    let mut clash = a2.clone();
    clash.name = "beta".into();
    assert!(matches!(
        store.update_connector(&clash, &a2.modified_at).await,
        Err(StoreError::Conflict(_))
    ));

    // blocks
    let me = Consumer {
        consumer_type: "user".into(),
        consumer_id: "u1".into(),
    };
    let ws = Consumer {
        consumer_type: "workspace".into(),
        consumer_id: "w1".into(),
    };
    store.set_blocked("b", &me, true).await.unwrap();
    store.set_blocked("b", &me, true).await.unwrap();
    store.set_blocked("b", &ws, true).await.unwrap();
    assert_eq!(
        store
            .blocked_by("b", std::slice::from_ref(&me))
            .await
            .unwrap(),
        vec![me.clone()]
    );
    assert_eq!(
        store
            .blocked_by("b", &[me.clone(), ws.clone()])
            .await
            .unwrap()
            .len(),
        2
    );
    store.set_blocked("b", &me, false).await.unwrap();
    assert_eq!(
        store
            .blocked_by("b", &[me.clone(), ws.clone()])
            .await
            .unwrap(),
        vec![ws.clone()]
    );

    // sealed records: only rows with secrets
    let sealed: Vec<String> = store
        .sealed_records()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(sealed.contains(&"b".to_owned()) && !sealed.contains(&"a".to_owned()));

    // delete cascades blocks
    assert!(store.delete_connector("b").await.unwrap());
    assert!(!store.delete_connector("b").await.unwrap());
    assert!(store.blocked_by("b", &[ws]).await.unwrap().is_empty());

    // API keys
    assert_eq!(store.count_api_keys().await.unwrap(), 0);
    let key = ApiKeyRow {
        key_hash: "h1".into(),
        key_prefix: "sbk_abcd".into(),
        user_id: "u1".into(),
        workspace_id: "w1".into(),
        org_id: "org".into(),
        is_admin: true,
        created_at: "2026-01-01T00:00:00.000000Z".into(),
    };
    store.insert_api_key(&key).await.unwrap();
    assert!(matches!(
        store.insert_api_key(&key).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_api_key("h1").await.unwrap().as_deref(),
        Some(&key)
    );
    assert_eq!(store.find_api_key("h2").await.unwrap(), None);
    assert_eq!(store.count_api_keys().await.unwrap(), 1);
}

#[tokio::test]
async fn store_contract_sqlite() {
    let (env, store) = store_for(Backend::Sqlite).await.unwrap();
    suite(&store).await;
    store.close().await;
    // WAL mode is on for the file
    let reopened = SqlStore::connect(&env.config().store).await.unwrap();
    drop(reopened);
}

#[tokio::test]
async fn store_contract_postgres() {
    let Some((env, store)) = store_for(Backend::Postgres).await else {
        return;
    };
    suite(&store).await;
    store.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn sqlite_uses_wal() {
    let (env, store) = store_for(Backend::Sqlite).await.unwrap();
    store.close().await;
    let path = env.sqlite_path().unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
}

#[tokio::test]
async fn migrations_are_idempotent_across_restarts() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some((env, store)) = store_for(backend).await else {
            continue;
        };
        store
            .insert_connector(&row(
                "x",
                "x",
                "w",
                "private",
                "2026-01-01T00:00:00.000000Z",
            ))
            .await
            .unwrap();
        store.close().await;
        let again = SqlStore::connect(&env.config().store).await.unwrap();
        assert!(again.get_connector("x").await.unwrap().is_some());
        again.close().await;
        env.cleanup().await;
    }
}
