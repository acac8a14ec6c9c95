//! Connector endpoints 1–5 over real HTTP, on SQLite and PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::harness::connector_body;

const REQUIRED: &[&str] = &[
    "id",
    "name",
    "description",
    "created_at",
    "modified_at",
    "owner_type",
    "visibility",
    "private_tool_execution",
    "supports_mcp",
    "protocol",
];

fn assert_connector_shape(c: &Value) {
    for key in REQUIRED {
        assert!(
            c.get(key).is_some_and(|v| !v.is_null()),
            "missing `{key}` in {c}"
        );
    }
    for key in ["created_at", "modified_at"] {
        let ts = c[key].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
            "{key} is not ISO 8601: {ts}"
        );
    }
    assert!(c["supported_auth_methods"].is_array());
    assert!(c["blocked_by"].is_array());
}

both_backends!(create_returns_201_and_every_required_field, |app| {
    let key = app.admin_key();
    let mcp = app.create(key, connector_body("github", "mcp")).await;
    assert_connector_shape(&mcp);
    assert_eq!(mcp["protocol"], "mcp");
    assert_eq!(mcp["supports_mcp"], true);
    assert_eq!(mcp["visibility"], "private");
    assert_eq!(mcp["owner_type"], "user");
    assert_eq!(mcp["owner_id"], "admin");
    assert_eq!(mcp["server"], "https://github.example.test/mcp");
    assert!(uuid::Uuid::parse_str(mcp["id"].as_str().unwrap()).is_ok());

    let http = app.create(key, connector_body("weather", "http")).await;
    assert_connector_shape(&http);
    assert_eq!(http["supports_mcp"], false);
    assert!(http.as_object().unwrap().contains_key("openapi_spec"));

    // protocol defaults to mcp
    let mut body = connector_body("defaulted", "mcp");
    body.as_object_mut().unwrap().remove("protocol");
    assert_eq!(app.create(key, body).await["protocol"], "mcp");
});

both_backends!(create_keeps_auth_methods_without_secrets, |app| {
    let body = json!({
        "name": "oauthy", "description": "d", "server": "https://s.test", "protocol": "http",
        "global_headers": {"X-Secret": {"value": "hunter2-global", "is_secret": true},
                           "X-Plain": {"value": "visible", "is_secret": false}},
        "headers": {"X-Static-Key": "hunter2-static"},
        "auth_methods": [
            {"method_type": "bearer", "headers": [{"name": "X-Extra"}]},
            {"method_type": "oauth2", "grant_type": "authorization_code",
             "auth_data": {"client_id": "cid", "client_secret": "hunter2-client"}},
            {"method_type": "oauth2", "grant_type": "client_credentials",
             "token_endpoint_auth_method": "client_secret_post",
             "oauth2_server_metadata": {"issuer": "https://as.test", "token_endpoint": "https://as.test/token"}}
        ]
    });
    let c = app.create(app.admin_key(), body).await;
    let text = c.to_string();
    for secret in ["hunter2-global", "hunter2-static", "hunter2-client"] {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }
    assert_eq!(
        c["global_headers"]["X-Secret"],
        json!({"value": "********", "is_secret": true})
    );
    assert_eq!(
        c["global_headers"]["X-Plain"],
        json!({"value": "visible", "is_secret": false})
    );
    let methods = c["supported_auth_methods"].as_array().unwrap();
    assert_eq!(methods.len(), 3);
    assert_eq!(methods[0]["method_type"], "bearer");
    assert_eq!(
        methods[0]["headers"][0],
        json!({"name": "X-Extra", "is_required": true, "is_secret": true})
    );
    assert_eq!(methods[1]["grant_type"], "authorization_code");
    assert_eq!(methods[2]["oauth2_server_metadata"]["x_source"], "provided");
    for m in methods {
        assert_eq!(m["has_default_credentials"], false);
        assert!(m.get("auth_data").is_none());
    }
    let (_, got) = app
        .get(
            &format!("/v1/connectors/{}", c["id"].as_str().unwrap()),
            app.admin_key(),
        )
        .await;
    assert!(!got.to_string().contains("hunter2"));
});

both_backends!(list_paginates_with_cursors_and_filters, |app| {
    let key = app.admin_key();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create(key, connector_body(&format!("m{i}"), "mcp"))
                .await["id"]
                .clone(),
        );
        ids.push(
            app.create(key, connector_body(&format!("h{i}"), "http"))
                .await["id"]
                .clone(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/connectors?page_size=3&cursor={c}"),
            None => "/v1/connectors?page_size=3".into(),
        };
        let (status, page) = app.get(&path, key).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["pagination"]["page_size"], 3);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|c| c["id"].clone()));
        pages += 1;
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        seen, ids,
        "keyset order is creation order, no duplicates, nothing missing"
    );

    for (flag, want) in [("true", true), ("false", false)] {
        let (_, page) = app
            .get(
                &format!("/v1/connectors?page_size=100&supports_mcp={flag}"),
                key,
            )
            .await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 5);
        assert!(items.iter().all(|c| c["supports_mcp"] == want));
    }
    // page_size is clamped, not rejected
    let (status, page) = app.get("/v1/connectors?page_size=0", key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["pagination"]["page_size"], 1);

    for (path, loc) in [
        ("/v1/connectors?cursor=garbage!", "cursor"),
        ("/v1/connectors?page_size=many", "page_size"),
        ("/v1/connectors?supports_mcp=maybe", "supports_mcp"),
    ] {
        let (status, body) = app.get(path, key).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", loc]), "{body}");
    }
});

both_backends!(get_by_id_or_name_and_unknown_is_404, |app| {
    let key = app.admin_key();
    let c = app.create(key, connector_body("lookup", "mcp")).await;
    let id = c["id"].as_str().unwrap();
    for r in [id, "lookup"] {
        let (status, got) = app
            .get(&format!("/v1/connectors/{r}?fetch_user_data=false"), key)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["id"], c["id"]);
        assert!(got.get("connection_credentials").is_none());
    }
    let (_, with_user) = app
        .get("/v1/connectors/lookup?fetch_user_data=true", key)
        .await;
    assert_eq!(with_user["connection_credentials"], json!([]));
    assert_eq!(with_user["is_authenticated"], true);

    // a name that looks like a UUID resolves by name when no id matches
    let uuid_name = "0199aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee";
    let named = app.create(key, connector_body(uuid_name, "mcp")).await;
    let (_, got) = app.get(&format!("/v1/connectors/{uuid_name}"), key).await;
    assert_eq!(got["id"], named["id"]);

    for missing in ["nope", "01234567-89ab-7def-8123-456789abcdef", "a%2Fb"] {
        let (status, body) = app.get(&format!("/v1/connectors/{missing}"), key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["detail"].is_string());
    }
});

both_backends!(update_follows_patch_semantics, |app| {
    let key = app.admin_key();
    let mut body = connector_body("patchme", "mcp");
    body["title"] = json!("Title");
    body["system_prompt"] = json!("be nice");
    let c = app.create(key, body).await;
    let id = c["id"].as_str().unwrap();
    let path = format!("/v1/connectors/{id}");

    let (status, up) = app
        .patch(
            &path,
            key,
            &json!({"protocol": "mcp", "description": "new", "server": "https://new.test/mcp"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{up}");
    assert_eq!(up["description"], "new");
    assert_eq!(up["server"], "https://new.test/mcp");
    assert_eq!(up["title"], "Title", "absent leaves unchanged");
    assert_ne!(up["modified_at"], c["modified_at"]);
    assert_eq!(up["created_at"], c["created_at"]);

    let (_, up) = app
        .patch(&path, key, &json!({"title": null, "system_prompt": null}))
        .await;
    assert_eq!(up["title"], Value::Null);
    assert_eq!(up["system_prompt"], Value::Null);

    let (_, up) = app
        .patch("/v1/connectors/patchme", key, &json!({"name": "renamed"}))
        .await;
    assert_eq!(up["name"], "renamed");
    let (_, got) = app.get(&path, key).await;
    assert_eq!(got["name"], "renamed");
    assert_eq!(got["description"], "new");

    let (_, up) = app
        .patch(
            &path,
            key,
            &json!({"auth_methods": [{"method_type": "bearer"}]}),
        )
        .await;
    assert_eq!(up["supported_auth_methods"][0]["method_type"], "bearer");

    app.create(key, connector_body("taken", "mcp")).await;
    let cases = [
        (json!({"name": null}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"description": null}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "bad name"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"protocol": "http"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"protocol": "turbine"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"visibility": "shared_org"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"server": "ftp://x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"name": "taken"}), StatusCode::CONFLICT),
    ];
    let before = app.get(&path, key).await.1;
    for (patch, want) in cases {
        let (status, err) = app.patch(&path, key, &patch).await;
        assert_eq!(status, want, "{patch} → {err}");
        if want == StatusCode::UNPROCESSABLE_ENTITY {
            assert!(err["detail"].is_array(), "{err}");
        }
    }
    assert_eq!(
        app.get(&path, key).await.1,
        before,
        "rejected updates change nothing"
    );
    let (status, _) = app
        .patch("/v1/connectors/unknown", key, &json!({"title": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

both_backends!(delete_answers_message_and_removes, |app| {
    let key = app.admin_key();
    let c = app.create(key, connector_body("doomed", "http")).await;
    let path = format!("/v1/connectors/{}", c["id"].as_str().unwrap());
    let (status, msg) = app.send(Method::DELETE, &path, Some(key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(msg["message"].is_string());
    assert_eq!(app.get(&path, key).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.send(Method::DELETE, &path, Some(key), None).await.0,
        StatusCode::NOT_FOUND
    );
    // the name is free again
    app.create(key, connector_body("doomed", "http")).await;
});

both_backends!(concurrent_updates_all_land_without_errors, |app| {
    let key = app.admin_key().to_owned();
    let c = app.create(&key, connector_body("busy", "mcp")).await;
    let url = format!("{}/v1/connectors/{}", app.base, c["id"].as_str().unwrap());
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (url, key) = (url.clone(), key.clone());
        writers.spawn(async move {
            let resp = reqwest::Client::new()
                .patch(url)
                .bearer_auth(key)
                .json(&json!({"description": format!("writer {i}")}))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        });
    }
    let mut stamps = Vec::new();
    while let Some(done) = writers.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        stamps.push(body["modified_at"].as_str().unwrap().to_owned());
    }
    stamps.sort();
    stamps.dedup();
    assert_eq!(
        stamps.len(),
        8,
        "every write got its own modified_at (no lost update)"
    );
    let (_, last) = app.get(&url.replacen(&app.base, "", 1), &key).await;
    assert_eq!(
        last["modified_at"].as_str().unwrap(),
        stamps.last().unwrap()
    );
});
