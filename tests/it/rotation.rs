//! `vault rotate` while the gateway serves: no call fails, nothing stays under the old key,
//! and a record that cannot be opened is reported, never dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::json;
use switchboard::store::{SqlStore, Store};
use switchboard::vault::load_or_create;

use crate::harness::{Backend, TestApp, connector_body};
use crate::upstream::{Mode, Upstream};

async fn guarded(app: &TestApp, upstream: &Upstream) {
    let key = app.admin_key();
    let mut body = connector_body("guarded", "mcp");
    body["server"] = json!(upstream.url);
    body["auth_methods"] = json!([{"method_type": "bearer"}]);
    body["global_headers"] = json!({"X-Api-Key": {"value": "connector-secret", "is_secret": true}});
    app.create(key, body).await;
    let (status, r) = app
        .post(
            "/v1/connectors/guarded/user/credentials",
            key,
            &json!({"name": "one", "credentials": {"bearer_token": "token-one"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
}

#[tokio::test]
async fn rotation_under_load_loses_no_call_and_leaves_nothing_under_the_old_key() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    guarded(&app, &upstream).await;
    let config = app.env.config();
    let old_primary = load_or_create(None, &config.vault.key_file)
        .unwrap()
        .0
        .primary_key_id();

    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}/v1/connectors/guarded/tools/whoami/call", app.base);
    let caller = {
        let (stop, url, key) = (stop.clone(), url.clone(), app.admin_key().to_owned());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut results = Vec::new();
            // bounded: stops when told, or after 5,000 calls
            while !stop.load(Ordering::SeqCst) && results.len() < 5_000 {
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"arguments": {}}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let body: serde_json::Value = resp.json().await.unwrap();
                results.push((
                    status,
                    body["content"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
            results
        })
    };
    let report = switchboard::cli::rotate(&config, true).await.unwrap();
    // keep calling a little after the rotation, so the gateway meets the new key
    for _ in 0..20 {
        let resp = reqwest::Client::new()
            .post(&url)
            .bearer_auth(app.admin_key())
            .json(&json!({"arguments": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    stop.store(true, Ordering::SeqCst);
    let results = caller.await.unwrap();
    assert!(!results.is_empty());
    for (status, text) in &results {
        assert_eq!(*status, StatusCode::OK, "{text}");
        assert_eq!(text, "Bearer token-one");
    }

    assert!(report.unreadable.is_empty(), "{report}");
    assert_eq!(report.resealed.values().sum::<usize>(), 2, "{report}");
    let (vault, _) = load_or_create(None, &config.vault.key_file).unwrap();
    assert_ne!(vault.primary_key_id(), old_primary);
    assert_eq!(vault.key_ids().len(), 2, "the old key stays loadable");
    let store = SqlStore::connect(&config.store).await.unwrap();
    let records = store.sealed_records().await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records.iter().all(|r| vault.is_current(&r.blob)),
        "no record remains under the old key"
    );

    // the running gateway now seals new secrets under the new key too
    let (status, _) = app
        .post(
            "/v1/connectors/guarded/user/credentials",
            app.admin_key(),
            &json!({"name": "two", "credentials": {"bearer_token": "token-two"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let records = store.sealed_records().await.unwrap();
    assert!(records.iter().all(|r| vault.is_current(&r.blob)));
    store.close().await;

    // and a restart with the rotated key file serves everything
    let env = app.stop().await;
    let app = TestApp::start(env).await;
    let (status, r) = app
        .post(
            "/v1/connectors/guarded/tools/whoami/call?credentials_name=two",
            app.admin_key(),
            &json!({"arguments": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    app.finish().await;
}

#[tokio::test]
async fn rotation_reports_records_it_cannot_open_and_leaves_them() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    guarded(&app, &upstream).await;
    let config = app.env.config();
    let store = SqlStore::connect(&config.store).await.unwrap();
    let cred = store
        .sealed_records()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.kind == "credential")
        .unwrap();
    let mut bad = cred.blob.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x80;
    assert!(store.reseal(&cred, &bad).await.unwrap());

    let report = switchboard::cli::rotate(&config, true).await.unwrap();
    assert_eq!(report.unreadable.len(), 1, "{report}");
    assert!(report.unreadable[0].0.contains(&cred.id));
    assert_eq!(report.resealed.get("connector"), Some(&1));
    let after = store
        .sealed_records()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == cred.id)
        .unwrap();
    assert_eq!(after.blob, bad, "left as it was, not dropped");
    store.close().await;
    app.finish().await;
}
