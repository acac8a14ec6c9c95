//! Visibility, ownership, sharing and activation (§5.11–§5.12).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::harness::connector_body;

both_backends!(visibility_follows_sharing, |app| {
    let admin = app.admin_key().to_owned();
    let bob = app.key_for("bob", "default", "default", false).await;
    let carol = app.key_for("carol", "other", "default", false).await;
    let dave = app.key_for("dave", "default", "elsewhere", false).await;

    let c = app.create(&bob, connector_body("bobs", "mcp")).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/connectors/{id}");
    // private: only bob
    assert_eq!(app.get(&path, &bob).await.0, StatusCode::OK);
    assert_eq!(app.get(&path, &admin).await.0, StatusCode::NOT_FOUND);
    assert!(
        app.list_all(&admin)
            .await
            .iter()
            .all(|x| x["id"] != c["id"])
    );

    // others cannot share it
    let (status, _) = app
        .send(Method::PUT, &format!("{path}/share"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // workspace share
    let (status, msg) = app
        .send(Method::PUT, &format!("{path}/share"), Some(&bob), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert!(msg["message"].is_string());
    let (_, got) = app.get(&path, &admin).await;
    assert_eq!(got["visibility"], "shared_workspace");
    assert_eq!(got["owner_type"], "workspace");
    assert_eq!(got["owner_id"], "default");
    assert_eq!(
        app.get("/v1/connectors/bobs", &dave).await.0,
        StatusCode::OK,
        "same workspace"
    );
    assert_eq!(
        app.get(&path, &carol).await.0,
        StatusCode::NOT_FOUND,
        "other workspace"
    );
    assert!(app.list_all(&dave).await.iter().any(|x| x["id"] == c["id"]));

    // a member who is neither creator nor admin may not modify it; the workspace admin may
    let (status, _) = app.patch(&path, &dave, &json!({"title": "mine"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.send(Method::DELETE, &path, Some(&dave), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .patch(&path, &admin, &json!({"title": "by admin"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .send(Method::DELETE, &format!("{path}/share"), Some(&dave), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // unshare: private again
    let (status, _) = app
        .send(Method::DELETE, &format!("{path}/share"), Some(&bob), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(&path, &dave).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&path, &bob).await.1["visibility"], "private");

    // org share needs admin rights
    let (status, _) = app
        .send(
            Method::PUT,
            &format!("{path}/organization/share"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&path, &bob).await.1["visibility"], "private");

    let org = app.create(&admin, connector_body("orgwide", "http")).await;
    let opath = format!("/v1/connectors/{}", org["id"].as_str().unwrap());
    let (status, _) = app
        .send(
            Method::PUT,
            &format!("{opath}/organization/share"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = app.get(&opath, &carol).await;
    assert_eq!(got["visibility"], "shared_org");
    assert_eq!(got["owner_type"], "org");
    assert_eq!(
        app.get(&opath, &dave).await.0,
        StatusCode::NOT_FOUND,
        "other org"
    );
    // DELETE /share on an org-shared connector is a conflict, not a silent change
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("{opath}/share"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("{opath}/organization/share"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(&opath, &carol).await.0, StatusCode::NOT_FOUND);

    // creating org-shared needs admin; workspace-shared does not
    let mut body = connector_body("orgbybob", "mcp");
    body["visibility"] = json!("shared_org");
    assert_eq!(
        app.post("/v1/connectors", &bob, &body).await.0,
        StatusCode::FORBIDDEN
    );
    body["visibility"] = json!("shared_workspace");
    assert_eq!(
        app.create(&bob, body).await["visibility"],
        "shared_workspace"
    );
});

both_backends!(names_are_unique_per_workspace, |app| {
    let admin = app.admin_key().to_owned();
    let carol = app.key_for("carol", "other", "default", false).await;
    app.create(&admin, connector_body("same", "mcp")).await;
    app.create(&carol, connector_body("same", "mcp")).await;
    let bob = app.key_for("bob", "default", "default", false).await;
    let (status, err) = app
        .post("/v1/connectors", &bob, &connector_body("same", "mcp"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("same"));
});

both_backends!(activation_is_per_consumer_level, |app| {
    let admin = app.admin_key().to_owned();
    let bob = app.key_for("bob", "default", "default", false).await;
    let c = app.create(&admin, connector_body("toggle", "mcp")).await;
    let path = format!("/v1/connectors/{}", c["id"].as_str().unwrap());
    app.send(Method::PUT, &format!("{path}/share"), Some(&admin), None)
        .await;

    let (status, msg) = app
        .send(
            Method::POST,
            &format!("{path}/user/deactivate"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(app.get(&path, &bob).await.1["blocked_by"], json!(["user"]));
    assert_eq!(
        app.get(&path, &admin).await.1["blocked_by"],
        json!([]),
        "only bob's level"
    );
    // idempotent
    app.send(
        Method::POST,
        &format!("{path}/user/deactivate"),
        Some(&bob),
        None,
    )
    .await;

    let (status, _) = app
        .send(
            Method::POST,
            &format!("{path}/workspace/deactivate"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "workspace level needs admin");
    let (status, _) = app
        .send(
            Method::POST,
            &format!("{path}/workspace/deactivate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .send(
            Method::POST,
            &format!("{path}/organization/deactivate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.get(&path, &bob).await.1["blocked_by"],
        json!(["user", "workspace", "org"])
    );
    assert_eq!(
        app.get(&path, &admin).await.1["blocked_by"],
        json!(["workspace", "org"])
    );

    app.send(
        Method::POST,
        &format!("{path}/user/activate"),
        Some(&bob),
        None,
    )
    .await;
    app.send(
        Method::POST,
        &format!("{path}/workspace/activate"),
        Some(&admin),
        None,
    )
    .await;
    app.send(
        Method::POST,
        &format!("{path}/organization/activate"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(app.get(&path, &bob).await.1["blocked_by"], json!([]));

    let (status, err) = app
        .send(
            Method::POST,
            &format!("{path}/org/activate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["detail"][0]["loc"], json!(["path", "consumer_scope"]));
    let (status, _) = app
        .send(
            Method::POST,
            "/v1/connectors/missing/user/activate",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});
