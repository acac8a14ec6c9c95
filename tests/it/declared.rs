//! Connectors declared in the config file: created at the first start, updated (same id) at the
//! next, `${VAR}` taken from the environment and sent upstream, clear errors otherwise.

use reqwest::StatusCode;
use switchboard::{App, Config};

use crate::harness::{Backend, Env, TestApp};
use crate::upstream::{Mode, Upstream};

fn file(url: &str, description: &str) -> String {
    format!(
        r#"
[[connectors]]
name = "declared-mcp"
protocol = "mcp"
description = "{description}"
server = "{url}"
visibility = "private"
[connectors.headers]
Authorization = "Bearer ${{SB_DECLARED_TOKEN}}"
"#
    )
}

#[tokio::test]
async fn declared_connectors_are_upserted_at_start() {
    let upstream = Upstream::spawn(Mode::Sessions).await;
    let env = Env::new(Backend::Sqlite).unwrap();
    let token = [("SB_DECLARED_TOKEN", "declared-token-31f0")];
    let app = TestApp::start_with_file(env, &file(&upstream.url, "first"), &token).await;
    let key = app.admin_key().to_owned();
    let (status, c) = app.get("/v1/connectors/declared-mcp", &key).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["description"], "first");
    let id = c["id"].as_str().unwrap().to_owned();
    let (status, tools) = app.get("/v1/connectors/declared-mcp/tools", &key).await;
    assert_eq!(status, StatusCode::OK, "{tools}");
    assert!(
        upstream
            .recorder
            .authorization
            .lock()
            .await
            .iter()
            .any(|a| a == "Bearer declared-token-31f0"),
        "the interpolated header reached the upstream"
    );
    // The header value is secret: never echoed.
    assert!(!c.to_string().contains("declared-token-31f0"));

    // Next start, changed description and a rotated token: the same connector, updated.
    let env = app.stop().await;
    let rotated = [("SB_DECLARED_TOKEN", "declared-token-rotated")];
    let app = TestApp::start_with_file(env, &file(&upstream.url, "second"), &rotated).await;
    let (status, c) = app.get("/v1/connectors/declared-mcp", &key).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["description"], "second");
    assert_eq!(c["id"], id.as_str());
    assert_eq!(app.list_all(&key).await.len(), 1);
    let (status, _) = app.get("/v1/connectors/declared-mcp/tools", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        upstream
            .recorder
            .authorization
            .lock()
            .await
            .iter()
            .any(|a| a == "Bearer declared-token-rotated"),
        "the rotated header reached the upstream"
    );
    let modified = c["modified_at"].clone();

    // An unchanged declaration writes nothing.
    let env = app.stop().await;
    let app = TestApp::start_with_file(env, &file(&upstream.url, "second"), &rotated).await;
    let (_, c) = app.get("/v1/connectors/declared-mcp", &key).await;
    assert_eq!(c["modified_at"], modified);
    app.finish().await;
}

#[tokio::test]
async fn declared_connector_errors_name_the_connector_and_never_the_value() {
    let env = Env::new(Backend::Sqlite).unwrap();
    // An unset variable: a config error naming the entry and the variable.
    let err = Config::from_sources(
        Some(("test.toml", &file("http://127.0.0.1:9/mcp", "d"))),
        &env.env_pairs(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("connectors[0]"), "{err}");
    assert!(err.contains("SB_DECLARED_TOKEN"), "{err}");

    // An invalid connector: the start fails naming it and the field.
    let text = r#"
[[connectors]]
name = "bad name"
protocol = "mcp"
description = "d"
server = "http://127.0.0.1:9/mcp"
"#;
    let config = Config::from_sources(Some(("test.toml", text)), &env.env_pairs()).unwrap();
    let err = App::build(config).await.unwrap_err().to_string();
    assert!(err.contains("declared connector `bad name`"), "{err}");
    assert!(err.contains("name"), "{err}");
}
