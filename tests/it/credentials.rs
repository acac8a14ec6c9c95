//! Credentials (§5.10): endpoints and default rules, isolation between principals, selection
//! and injection upstream (seen by a real rmcp upstream), pruning on unshare, tampering.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::store::{SqlStore, Store};

use crate::both_backends;
use crate::harness::{Backend, Env, TestApp, connector_body};
use crate::upstream::{Mode, Upstream};

async fn list_creds(app: &TestApp, key: &str, base: &str) -> Value {
    app.get(&format!("{base}?fetch_default=false"), key).await.1
}

fn names_and_defaults(list: &Value) -> Vec<(String, String, bool)> {
    list["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["authentication_type"].as_str().unwrap().to_owned(),
                c["is_default"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn s(v: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    v.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect()
}

both_backends!(endpoints_follow_the_default_rules, |app| {
    let key = app.admin_key();
    app.create(key, connector_body("vault", "mcp")).await;
    for scope in ["user", "workspace", "organization"] {
        let base = format!("/v1/connectors/vault/{scope}/credentials");

        let (status, msg) = app.post(&base, key, &json!({"name": "a", "title": "A", "credentials": {"bearer_token": "tok-a-secret"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{msg}");
        assert!(msg["message"].is_string());
        let (status, _) = app
            .post(
                &base,
                key,
                &json!({"name": "b", "credentials": {"bearer_token": "tok-b-secret"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .post(
                &base,
                key,
                &json!({"name": "h", "credentials": {"headers": {"X-Team": "hdr-secret"}}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let listed = list_creds(app, key, &base).await;
        assert_eq!(
            names_and_defaults(&listed),
            s(&[
                ("a", "bearer", true),
                ("b", "bearer", false),
                ("h", "none", true)
            ])
        );
        let want_scope = if scope == "organization" {
            "org"
        } else {
            scope
        };
        assert!(
            listed["credentials"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["scope"] == want_scope && c["creator_id"] == "admin")
        );
        assert_eq!(listed["credentials"][0]["title"], "A");
        assert!(
            !listed.to_string().contains("secret"),
            "no secret in listings: {listed}"
        );

        // rejected changes change nothing
        let before = list_creds(app, key, &base).await;
        for (method, body, want) in [
            (
                Method::POST,
                json!({"name": "a", "credentials": {"bearer_token": "x"}}),
                StatusCode::CONFLICT,
            ),
            (
                Method::POST,
                json!({"name": "o", "is_default": false, "credentials": {"oauth": {"client_id": "c", "grant_type": "client_credentials"}}}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::PATCH,
                json!({"name": "a", "is_default": false}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::POST,
                json!({"name": "bad name"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::POST,
                json!({"name": "e", "credentials": {}}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::POST,
                json!({"name": "both", "credentials": {"bearer_token": "x", "oauth": {"client_id": "c"}}}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Method::POST,
                json!({"name": "crlf", "credentials": {"headers": {"X-A": "a\r\nB: c"}}}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let (status, err) = app
                .send(method, &base, Some(key), Some(&body.to_string()))
                .await;
            assert_eq!(status, want, "{body} → {err}");
            if want == StatusCode::UNPROCESSABLE_ENTITY {
                assert!(err["detail"].is_array(), "{err}");
            }
        }
        assert_eq!(list_creds(app, key, &base).await, before);

        // promote, retitle, filter
        let (status, _) = app
            .patch(&base, key, &json!({"name": "b", "is_default": true}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, _) = app
            .patch(&base, key, &json!({"name": "a", "title": null}))
            .await;
        let listed = list_creds(app, key, &base).await;
        assert_eq!(
            names_and_defaults(&listed),
            s(&[
                ("a", "bearer", false),
                ("b", "bearer", true),
                ("h", "none", true)
            ])
        );
        assert_eq!(listed["credentials"][0]["title"], Value::Null);
        let (_, defaults) = app.get(&format!("{base}?fetch_default=true"), key).await;
        assert_eq!(
            names_and_defaults(&defaults),
            s(&[("b", "bearer", true), ("h", "none", true)])
        );
        let (_, bearer) = app
            .get(&format!("{base}?auth_type=bearer&fetch_default=false"), key)
            .await;
        assert_eq!(bearer["credentials"].as_array().unwrap().len(), 2);
        assert_eq!(
            app.get(&format!("{base}?auth_type=magic"), key).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        // PATCH of an unknown name creates it
        let (status, _) = app
            .patch(
                &base,
                key,
                &json!({"name": "c", "credentials": {"bearer_token": "tok-c"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        // deleting the default promotes the oldest other
        let (status, _) = app
            .send(Method::DELETE, &format!("{base}/b"), Some(key), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            names_and_defaults(&list_creds(app, key, &base).await),
            s(&[
                ("a", "bearer", true),
                ("h", "none", true),
                ("c", "bearer", false)
            ])
        );
        assert_eq!(
            app.send(Method::DELETE, &format!("{base}/b"), Some(key), None)
                .await
                .0,
            StatusCode::NOT_FOUND
        );
    }
    // delete all of the caller's user credentials; other scopes have no collection delete
    let (status, _) = app
        .send(
            Method::DELETE,
            "/v1/connectors/vault/user/credentials",
            Some(key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        app.get("/v1/connectors/vault/user/credentials", key)
            .await
            .1["credentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = app
        .send(
            Method::DELETE,
            "/v1/connectors/vault/workspace/credentials",
            Some(key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        app.get("/v1/connectors/vault/workspace/credentials", key)
            .await
            .1["credentials"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        app.get("/v1/connectors/vault/org/credentials", key).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/v1/connectors/nope/user/credentials", key).await.0,
        StatusCode::NOT_FOUND
    );

    // writes to workspace/organization scopes need admin rights
    let bob = app.key_for("bob", "default", "default", false).await;
    app.send(Method::PUT, "/v1/connectors/vault/share", Some(key), None)
        .await;
    let (status, _) = app
        .post(
            "/v1/connectors/vault/workspace/credentials",
            &bob,
            &json!({"name": "w", "credentials": {"bearer_token": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/v1/connectors/vault/user/credentials",
            &bob,
            &json!({"name": "mine", "credentials": {"bearer_token": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/connectors/vault/workspace/credentials", &bob)
            .await
            .1["credentials"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "members see workspace credentials"
    );
});

async fn whoami(app: &TestApp, key: &str, query: &str) -> (StatusCode, String) {
    let (status, r) = app
        .post(
            &format!("/v1/connectors/guarded/tools/whoami/call{query}"),
            key,
            &json!({"arguments": {}}),
        )
        .await;
    let text = r["content"][0]["text"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| r.to_string());
    (status, text)
}

async fn put_cred(
    app: &TestApp,
    key: &str,
    scope: &str,
    name: &str,
    token: &str,
    default: Option<bool>,
) {
    let mut body = json!({"name": name, "credentials": {"bearer_token": token}});
    if let Some(d) = default {
        body["is_default"] = json!(d);
    }
    let (status, r) = app
        .post(
            &format!("/v1/connectors/guarded/{scope}/credentials"),
            key,
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
}

#[tokio::test]
async fn selection_injection_and_isolation() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let admin = app.admin_key().to_owned();
    let alice = app.key_for("alice", "default", "default", false).await;
    let bob = app.key_for("bob", "default", "default", false).await;
    let carol = app.key_for("carol", "other", "default", false).await;
    let mut body = connector_body("guarded", "mcp");
    body["server"] = json!(upstream.url);
    body["auth_methods"] = json!([{"method_type": "bearer"}]);
    app.create(&admin, body).await;
    app.send(
        Method::PUT,
        "/v1/connectors/guarded/organization/share",
        Some(&admin),
        None,
    )
    .await;

    // none at all where the connector requires auth
    let (status, text) = whoami(&app, &alice, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("credentials_required"), "{text}");
    let (status, r) = app.get("/v1/connectors/guarded/tools", &alice).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{r}");

    put_cred(&app, &alice, "user", "a", "token-alice-a", None).await;
    assert_eq!(
        whoami(&app, &alice, "").await,
        (StatusCode::OK, "Bearer token-alice-a".into())
    );
    // bob sees and uses nothing of alice's
    assert_eq!(whoami(&app, &bob, "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        whoami(&app, &bob, "?credentials_name=a").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.get("/v1/connectors/guarded/user/credentials", &bob)
            .await
            .1["credentials"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // a workspace credential serves every member; the user's own wins
    put_cred(&app, &admin, "workspace", "w", "token-workspace", None).await;
    assert_eq!(
        whoami(&app, &bob, "").await,
        (StatusCode::OK, "Bearer token-workspace".into())
    );
    assert_eq!(whoami(&app, &alice, "").await.1, "Bearer token-alice-a");
    assert_eq!(
        whoami(&app, &alice, "?credentials_name=w").await.1,
        "Bearer token-workspace"
    );
    assert_eq!(
        whoami(&app, &carol, "").await.0,
        StatusCode::UNAUTHORIZED,
        "another workspace"
    );
    // an organization credential serves every workspace in it
    put_cred(&app, &admin, "organization", "o", "token-org", None).await;
    assert_eq!(whoami(&app, &carol, "").await.1, "Bearer token-org");

    // switching the default switches what the upstream receives
    put_cred(&app, &alice, "user", "b", "token-alice-b", Some(true)).await;
    assert_eq!(whoami(&app, &alice, "").await.1, "Bearer token-alice-b");
    assert_eq!(
        whoami(&app, &alice, "?credentials_name=a").await.1,
        "Bearer token-alice-a"
    );
    app.patch(
        "/v1/connectors/guarded/user/credentials",
        &alice,
        &json!({"name": "a", "is_default": true}),
    )
    .await;
    assert_eq!(whoami(&app, &alice, "").await.1, "Bearer token-alice-a");
    assert_eq!(
        whoami(&app, &alice, "?credentials_name=nope").await.0,
        StatusCode::NOT_FOUND
    );

    // the caller's gateway key never reached the upstream
    let seen = upstream.recorder.authorization.lock().await.clone();
    for k in [&admin, &alice, &bob, &carol] {
        assert!(
            seen.iter().all(|a| !a.contains(k.as_str())),
            "gateway key leaked upstream"
        );
    }

    // two principals with different credentials never share a cached list
    let before = upstream.recorder.count("tools/list").await;
    assert_eq!(
        app.get("/v1/connectors/guarded/tools", &alice).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/connectors/guarded/tools", &bob).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/connectors/guarded/tools", &alice).await.0,
        StatusCode::OK
    );
    assert_eq!(
        upstream.recorder.count("tools/list").await,
        before + 2,
        "one list per credential, reused"
    );

    // fetch_user_data shows the caller's credentials, every scope, public view only
    let (_, c) = app
        .get("/v1/connectors/guarded?fetch_user_data=true", &alice)
        .await;
    assert_eq!(c["is_authenticated"], true);
    let mine: Vec<&str> = c["connection_credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(mine.len(), 4, "{mine:?}");
    assert!(!c.to_string().contains("token-"));
    let (_, c) = app
        .get("/v1/connectors/guarded?fetch_user_data=true", &carol)
        .await;
    assert_eq!(c["connection_credentials"].as_array().unwrap().len(), 1);

    // a level that deactivated the connector cannot use it
    app.send(
        Method::POST,
        "/v1/connectors/guarded/workspace/deactivate",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(whoami(&app, &bob, "").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        whoami(&app, &carol, "").await.0,
        StatusCode::OK,
        "other workspace unaffected"
    );
    app.finish().await;
}

#[tokio::test]
async fn unshare_removes_other_consumers_credentials() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let admin = app.admin_key().to_owned();
    let bob = app.key_for("bob", "default", "default", false).await;
    app.create(&admin, connector_body("guarded", "mcp")).await;
    app.send(
        Method::PUT,
        "/v1/connectors/guarded/share",
        Some(&admin),
        None,
    )
    .await;
    put_cred(&app, &admin, "user", "mine", "t1", None).await;
    put_cred(&app, &bob, "user", "bobs", "t2", None).await;
    put_cred(&app, &admin, "workspace", "team", "t3", None).await;
    let (status, _) = app
        .send(
            Method::DELETE,
            "/v1/connectors/guarded/share",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.send(
        Method::PUT,
        "/v1/connectors/guarded/share",
        Some(&admin),
        None,
    )
    .await;
    let count = |v: Value| v["credentials"].as_array().unwrap().len();
    assert_eq!(
        count(
            app.get("/v1/connectors/guarded/user/credentials", &admin)
                .await
                .1
        ),
        1,
        "the creator's stay"
    );
    assert_eq!(
        count(
            app.get("/v1/connectors/guarded/user/credentials", &bob)
                .await
                .1
        ),
        0
    );
    assert_eq!(
        count(
            app.get("/v1/connectors/guarded/workspace/credentials", &admin)
                .await
                .1
        ),
        0
    );
    app.finish().await;
}

#[tokio::test]
async fn tampered_credentials_fail_closed() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    // The rows are tampered with behind the gateway's back: no cached reads.
    let env = Env::new(Backend::Sqlite).unwrap();
    let app = TestApp::start_with(env, &[("SWITCHBOARD_STORE_CACHE_TTL_SECONDS", "0")]).await;
    let key = app.admin_key().to_owned();
    let mut body = connector_body("guarded", "mcp");
    body["server"] = json!(upstream.url);
    body["auth_methods"] = json!([{"method_type": "bearer"}]);
    app.create(&key, body).await;
    put_cred(&app, &key, "user", "one", "token-one", None).await;
    put_cred(&app, &key, "user", "two", "token-two", None).await;
    assert_eq!(whoami(&app, &key, "").await.1, "Bearer token-one");

    let store = SqlStore::connect(&app.env.config().store).await.unwrap();
    let creds: Vec<_> = store
        .sealed_records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "credential")
        .collect();
    let (one, two) = (creds[0].clone(), creds[1].clone());
    let tampered_cases: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped byte", {
            let mut b = one.blob.clone();
            let last = b.len() - 1;
            b[last] ^= 0x01;
            b
        }),
        ("a blob moved from another row", two.blob.clone()),
        ("an unknown key id", {
            let mut b = one.blob.clone();
            b[2] = b'z'; // first byte of the key id
            b
        }),
    ];
    let mut current = one.clone();
    for (what, blob) in tampered_cases {
        assert!(store.reseal(&current, &blob).await.unwrap());
        current.blob = blob;
        let (status, text) = whoami(&app, &key, "?credentials_name=one").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{what}: {text}");
        assert!(text.contains("cannot be opened"), "{what}: {text}");
        assert!(!text.contains("token-"), "{what}");
    }
    // the other credential, and the gateway, still work
    assert_eq!(
        whoami(&app, &key, "?credentials_name=two").await.1,
        "Bearer token-two"
    );
    store.reseal(&current, &one.blob).await.unwrap();
    assert_eq!(
        whoami(&app, &key, "?credentials_name=one").await.1,
        "Bearer token-one"
    );
    store.close().await;
    app.finish().await;
}
