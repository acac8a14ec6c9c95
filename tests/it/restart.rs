//! Persistence across restarts, secrets sealed at rest, and start-up with the wrong key.

use base64::Engine;
use serde_json::json;
use switchboard::App;
use switchboard::app::BuildError;
use switchboard::store::{SqlStore, Store};
use switchboard::vault::{RecordIdentity, load_or_create};

use crate::harness::{Backend, Env, TestApp, connector_body};

async fn create_with_secret(app: &TestApp, name: &str, secret: &str) -> String {
    let mut body = connector_body(name, "http");
    body["global_headers"] = json!({"X-Api-Key": {"value": secret, "is_secret": true}});
    body["headers"] = json!({"X-Static": format!("{secret}-static")});
    app.create(app.admin_key(), body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn restart_keeps_everything(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let app = TestApp::start(env).await;
    let marker = format!("plaintext-marker-{}", uuid::Uuid::new_v4().simple());
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(create_with_secret(&app, &format!("keep{i}"), &marker).await);
    }
    let before = app.list_all(app.admin_key()).await;
    let env = app.stop().await;

    if let Some(path) = env.sqlite_path() {
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            if let Ok(bytes) = std::fs::read(&file) {
                let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
                assert!(!found, "plaintext secret found in {file}");
            }
        }
    }

    // the sealed secrets open again with the same key
    let (vault, _) = load_or_create(None, &env.config().vault.key_file).unwrap();
    let store = SqlStore::connect(&env.config().store).await.unwrap();
    for id in &ids {
        let row = store.get_connector(id).await.unwrap().unwrap();
        let blob = row.secrets.expect("sealed secrets stored");
        let plain = vault
            .open(&blob, &RecordIdentity::connector_secrets(id))
            .unwrap();
        let text = String::from_utf8(plain.to_vec()).unwrap();
        assert!(text.contains(&marker));
        // a blob moved to another record does not open
        let other = RecordIdentity::connector_secrets(
            &ids[(ids.iter().position(|x| x == id).unwrap() + 1) % ids.len()],
        );
        assert!(vault.open(&blob, &other).is_err());
    }
    store.close().await;

    let app = TestApp::start(env).await;
    assert_eq!(
        app.list_all(app.admin_key()).await,
        before,
        "a restart keeps every connector"
    );
    app.finish().await;
}

#[tokio::test]
async fn restart_keeps_connectors_and_sealed_secrets_sqlite() {
    restart_keeps_everything(Backend::Sqlite).await;
}

#[tokio::test]
async fn restart_keeps_connectors_and_sealed_secrets_postgres() {
    restart_keeps_everything(Backend::Postgres).await;
}

async fn wrong_key_is_reported(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let app = TestApp::start(env).await;
    let id = create_with_secret(&app, "locked", "s3cr3t-value").await;
    create_with_secret(&app, "locked2", "s3cr3t-value").await;
    let env = app.stop().await;

    let other_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let err = App::build(env.config_with(&[("SWITCHBOARD_VAULT_KEY", &other_key)]))
        .await
        .expect_err("must refuse to serve secrets it cannot open");
    match &err {
        BuildError::UnreadableSecrets(records) => {
            assert_eq!(records.len(), 2);
            assert!(records.iter().any(|(r, _)| r.contains(&id)));
        }
        other => panic!("unexpected error: {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&id) && message.contains("SWITCHBOARD_VAULT_KEY"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"));

    // with the right key it starts again
    let app = TestApp::start(env).await;
    assert_eq!(app.list_all(app.admin_key()).await.len(), 2);
    app.finish().await;
}

#[tokio::test]
async fn wrong_vault_key_reports_unreadable_records_sqlite() {
    wrong_key_is_reported(Backend::Sqlite).await;
}

#[tokio::test]
async fn wrong_vault_key_reports_unreadable_records_postgres() {
    wrong_key_is_reported(Backend::Postgres).await;
}

#[tokio::test]
async fn first_start_generates_a_bootstrap_key_once() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let config = env.config_with(&[("SWITCHBOARD_AUTH_BOOTSTRAP_KEY", "")]);
    let bound = App::build(config.clone()).await.unwrap();
    let key =
        secrecy::ExposeSecret::expose_secret(bound.bootstrap_key().expect("generated")).to_owned();
    assert!(key.starts_with("sbk_") && key.len() > 40);
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v1/connectors", bound.api_addr()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    bound.shutdown().await;
    let again = App::build(config).await.unwrap();
    assert!(
        again.bootstrap_key().is_none(),
        "printed only on the first start"
    );
    again.shutdown().await;
}

#[tokio::test]
async fn admin_listener_reports_health_and_readiness() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let resp = client
            .get(format!("{}{path}", app.admin_base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // the admin routes are not on the api listener
    let resp = client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    app.finish().await;
}
