//! Every bad input gets a clear error in the contract's format and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::harness::{TestApp, connector_body};

async fn snapshot(app: &TestApp) -> Vec<Value> {
    app.list_all(app.admin_key()).await
}

both_backends!(rejected_creates_change_nothing, |app| {
    let key = app.admin_key();
    app.create(key, connector_body("existing", "mcp")).await;
    let before = snapshot(app).await;
    let too_long = "a".repeat(65);
    let mut missing_description = connector_body("nodesc", "mcp");
    missing_description
        .as_object_mut()
        .unwrap()
        .remove("description");
    let cases: Vec<(String, StatusCode, Option<Value>)> = vec![
        (connector_body("existing", "mcp").to_string(), StatusCode::CONFLICT, None),
        (connector_body("bad name!", "mcp").to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "name"]))),
        (connector_body(&too_long, "mcp").to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "name"]))),
        (connector_body("", "mcp").to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "name"]))),
        (missing_description.to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "description"]))),
        (connector_body("x", "turbine").to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "protocol"]))),
        (json!({"name": 5, "description": "d", "server": "https://s"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "name"]))),
        (json!({"name": "v", "description": "d", "server": "https://s", "visibility": "shared_global"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "visibility"]))),
        (json!({"name": "s", "description": "d", "server": "not a url"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "server"]))),
        (json!({"name": "h", "description": "d", "server": "https://s", "headers": {"X-A": "a\r\nInjected: 1"}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "headers", "X-A"]))),
        (json!({"name": "g", "description": "d", "server": "https://s", "global_headers": {"Bad Name": {"value": "v"}}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "global_headers", "Bad Name"]))),
        (json!({"name": "o", "description": "d", "server": "https://s", "oauth2_server_metadata": {"issuer": "i", "token_endpoint": "t"}, "oauth2_server_metadata_url": "https://x"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "oauth2_server_metadata_url"]))),
        (json!({"name": "a", "description": "d", "server": "https://s", "auth_methods": [{"method_type": "oauth2", "grant_type": "authorization_code"}]}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "auth_methods", 0, "auth_data"]))),
        (json!({"name": "a", "description": "d", "server": "https://s", "auth_methods": [{"method_type": "password"}]}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body", "auth_methods", 0, "method_type"]))),
        ("{not json".into(), StatusCode::UNPROCESSABLE_ENTITY, None),
        ("[1,2]".into(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body"]))),
        ("".into(), StatusCode::UNPROCESSABLE_ENTITY, Some(json!(["body"]))),
        (format!("{{\"name\":\"big\",\"description\":\"{}\",\"server\":\"https://s\"}}", "x".repeat(70_000)), StatusCode::PAYLOAD_TOO_LARGE, None),
    ];
    for (body, want, loc) in cases {
        let (status, err) = app
            .send(Method::POST, "/v1/connectors", Some(key), Some(&body))
            .await;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(status, want, "{shown} → {err}");
        if want == StatusCode::UNPROCESSABLE_ENTITY {
            let detail = err["detail"]
                .as_array()
                .unwrap_or_else(|| panic!("422 detail must be a list: {err}"));
            for d in detail {
                assert!(
                    d["loc"].is_array() && d["msg"].is_string() && d["type"].is_string(),
                    "{d}"
                );
            }
            if let Some(loc) = loc {
                assert!(
                    detail.iter().any(|d| d["loc"] == loc),
                    "{shown}: no error at {loc}: {err}"
                );
            }
        } else {
            assert!(err["detail"].is_string(), "{err}");
        }
    }
    assert_eq!(snapshot(app).await, before);
});

both_backends!(callers_need_a_valid_key, |app| {
    app.create(app.admin_key(), connector_body("guarded", "mcp"))
        .await;
    let before = snapshot(app).await;
    for key in [None, Some("wrong"), Some("sbk_nottherightkeyatall")] {
        for (method, path, body) in [
            (Method::GET, "/v1/connectors", None),
            (Method::GET, "/v1/connectors/guarded", None),
            (
                Method::POST,
                "/v1/connectors",
                Some(connector_body("sneaky", "mcp").to_string()),
            ),
            (Method::DELETE, "/v1/connectors/guarded", None),
        ] {
            let (status, err) = app.send(method, path, key, body.as_deref()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            assert!(err["detail"].is_string());
        }
    }
    assert_eq!(snapshot(app).await, before);
});

both_backends!(unknown_routes_and_methods_answer_json, |app| {
    let (status, body) = app.get("/v1/nothing-here", app.admin_key()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].is_string());
    let (status, _) = app
        .send(Method::PUT, "/v1/connectors", Some(app.admin_key()), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = app.get("/v1/connectors/%FF%FE", app.admin_key()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["path"]));
});
