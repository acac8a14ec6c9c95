//! Hostile input against every endpoint: malformed JSON, wrong types, huge strings, unicode edge
//! cases, path traversal in `{ref}` and tool names, CR/LF header injection in credentials,
//! duplicate keys. Each is a clear 4xx in the endpoint's error format, and the store (every
//! connector and every credential of every scope) is exactly as before.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::harness::{TestApp, connector_body};

/// One raw HTTP/1.1 exchange (the request-target byte for byte, no client-side normalisation);
/// returns (status, headers text, body).
async fn raw(
    app: &TestApp,
    method: &str,
    target: &str,
    extra_headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, String, Vec<u8>) {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n",
        app.admin_key()
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    stream.write_all(&bytes).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = out[(split + 4).min(out.len())..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// Everything the store holds that these requests could touch.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    let key = app.admin_key();
    let mut all = vec![Value::Array(app.list_all(key).await)];
    for scope in ["user", "workspace", "organization"] {
        let (_, v) = app
            .get(&format!("/v1/connectors/target/{scope}/credentials"), key)
            .await;
        all.push(v);
    }
    all
}

/// What a case expects.
enum Want {
    /// An API error: this status, `{"detail": …}` (a list for 422).
    Api(u16),
    /// A gateway-authored error: this status with a `connectors-gateway` Proxy-Status.
    Gateway(u16),
    /// Any 4xx (e.g. the upstream's own refusal relayed as is).
    Any4xx,
}

both_backends!(hostile_input_is_refused_and_changes_nothing, |app| {
    let key = app.admin_key().to_owned();
    let mut body = connector_body("target", "mcp");
    body["server"] = json!("http://127.0.0.1:9/mcp");
    body["description"] = json!("unicode: \u{202e}rtl \u{200b}zw \u{1f600} \u{fffd}");
    let created = app.create(&key, body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["description"], "unicode: \u{202e}rtl \u{200b}zw \u{1f600} \u{fffd}",
        "unicode round-trips byte for byte"
    );
    let (status, _) = app
        .post(
            "/v1/connectors/target/user/credentials",
            &key,
            &json!({"name": "kept", "credentials": {"bearer_token": "tok"}}),
        )
        .await;
    assert_eq!(status, 200);
    let before = snapshot(app).await;

    let huge = "x".repeat(200_000);
    let bad_utf8: &[u8] = b"{\"name\": \"\xff\xfe\"}";
    let cases: Vec<(&str, String, Option<Vec<u8>>, Want)> = vec![
        // connectors
        ("GET", "/v1/connectors?page_size=abc".into(), None, Want::Api(422)),
        ("GET", "/v1/connectors?supports_mcp=maybe".into(), None, Want::Api(422)),
        ("GET", "/v1/connectors?cursor=%00%01garbage".into(), None, Want::Api(422)),
        ("GET", "/v1/connectors/..%2F..%2Fetc%2Fpasswd".into(), None, Want::Api(404)),
        ("GET", "/v1/connectors/%00".into(), None, Want::Api(404)),
        ("GET", format!("/v1/connectors/{}", "a".repeat(10_000)), None, Want::Api(404)),
        ("GET", "/v1/connectors/caf%C3%A9".into(), None, Want::Api(404)),
        ("PATCH", format!("/v1/connectors/{id}"), Some(b"{not json".to_vec()), Want::Api(422)),
        ("PATCH", format!("/v1/connectors/{id}"), Some(br#"{"description": 5}"#.to_vec()), Want::Api(422)),
        ("PATCH", format!("/v1/connectors/{id}"), Some(br#"{"description": "a", "description": "b"}"#.to_vec()), Want::Api(422)),
        ("PATCH", format!("/v1/connectors/{id}"), Some(format!(r#"{{"description": "{huge}"}}"#).into_bytes()), Want::Api(413)),
        ("PATCH", format!("/v1/connectors/{id}"), Some(bad_utf8.to_vec()), Want::Api(422)),
        ("PATCH", format!("/v1/connectors/{id}"), Some(br#"{"headers": {"X-A": "v\r\nInjected: 1"}}"#.to_vec()), Want::Api(422)),
        ("PATCH", format!("/v1/connectors/{id}"), Some(br#"{"name": "caf\u00e9"}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors".into(), Some(br#"{"name": "dup", "name": "dup2", "description": "d", "server": "https://s"}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors".into(), Some(br#"{"name": "\u0000nul", "description": "d", "server": "https://s"}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors".into(), Some(br#"{"name": "zw\u200b", "description": "d", "server": "https://s"}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors".into(), Some(br#"{"name": "n", "description": "d", "server": "javascript:alert(1)"}"#.to_vec()), Want::Api(422)),
        ("DELETE", "/v1/connectors/..%2Ftarget".into(), None, Want::Api(404)),
        ("DELETE", "/v1/connectors/target%2F..".into(), None, Want::Api(404)),
        // sharing and activation
        ("PUT", "/v1/connectors/..%2Ftarget/share".into(), None, Want::Api(404)),
        ("POST", "/v1/connectors/target/galaxy/activate".into(), None, Want::Api(422)),
        ("POST", "/v1/connectors/target/org/deactivate".into(), None, Want::Api(422)),
        // credentials
        ("POST", "/v1/connectors/target/galaxy/credentials".into(), Some(br#"{"name": "c", "credentials": {"bearer_token": "t"}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/user/credentials".into(), Some(br#"{"name": "c", "credentials": {"headers": {"X-A": "v\r\nX-Injected: 1"}}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/user/credentials".into(), Some(br#"{"name": "c", "credentials": {"headers": {"Bad Header\r\n": "v"}}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/user/credentials".into(), Some(br#"{"name": "c", "credentials": {"bearer_token": "t\nX-Injected: 1"}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/user/credentials".into(), Some(br#"{"name": "c", "credentials": {"bearer_token": 5}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/user/credentials".into(), Some(br#"{"name": "c\u00e9", "credentials": {"bearer_token": "t"}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/user/credentials".into(), Some(br#"{"name": "c", "name": "d", "credentials": {"bearer_token": "t"}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/user/credentials".into(), Some(br#"{"name": "kept", "credentials": {"bearer_token": "t"}}"#.to_vec()), Want::Api(409)),
        ("PATCH", "/v1/connectors/target/user/credentials".into(), Some(b"[]".to_vec()), Want::Api(422)),
        ("DELETE", "/v1/connectors/target/user/credentials/..%2Fkept".into(), None, Want::Api(404)),
        ("GET", "/v1/connectors/target/user/credentials?auth_type=%00".into(), None, Want::Api(422)),
        // OAuth
        ("GET", "/v1/connectors/target/auth_url?credentials_name=%E2%80%AE".into(), None, Want::Api(422)),
        ("GET", "/v1/connectors/target/auth_url?method_type=..%2F".into(), None, Want::Api(422)),
        ("GET", "/v1/connectors/..%2Ftarget/authentication_methods".into(), None, Want::Api(404)),
        ("GET", "/oauth/callback?state=..%2F..&code=x".into(), None, Want::Any4xx),
        // tools
        ("GET", "/v1/connectors/target/tools?pretty=maybe".into(), None, Want::Api(422)),
        ("POST", "/v1/connectors/target/tools/echo/call".into(), Some(br#"{"arguments": [1, 2]}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/tools/echo/call".into(), Some(b"{\"arguments\":".to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/tools/echo/call".into(), Some(br#"{"arguments": {}, "arguments": {"a": 1}}"#.to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/tools/../../../etc/passwd/call".into(), Some(b"{}".to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/tools/a//b/call".into(), Some(b"{}".to_vec()), Want::Api(422)),
        ("POST", "/v1/connectors/target/tools/echo/run".into(), Some(b"{}".to_vec()), Want::Api(404)),
        // the data plane
        ("POST", "/v1/connectors-gateway/..%2Ftarget/mcp".into(), Some(b"{}".to_vec()), Want::Gateway(404)),
        ("GET", "/v1/connectors-gateway/target/http/../../../v1/connectors".into(), None, Want::Gateway(400)),
        ("GET", "/v1/connectors-gateway/target/http/%2e%2e/%2e%2e/x".into(), None, Want::Gateway(400)),
        ("POST", "/v1/connectors-gateway/target/mcp".into(), Some(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_vec()), Want::Gateway(400)),
        ("POST", "/v1/connectors-gateway/target/mcp".into(), Some(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{huge}"}}"#).into_bytes()), Want::Gateway(413)),
    ];
    let mut failures = Vec::new();
    for (method, target, body, want) in &cases {
        let (status, head, resp) = raw(app, method, target, &[], body.as_deref()).await;
        let shown: String = target.chars().take(90).collect();
        let text: String = String::from_utf8_lossy(&resp).chars().take(300).collect();
        let problem = match want {
            Want::Api(code) => {
                let shape_ok = serde_json::from_slice::<Value>(&resp).is_ok_and(|v| {
                    if *code == 422 {
                        v["detail"].is_array()
                    } else {
                        v["detail"].is_string()
                    }
                });
                (status != *code || !shape_ok).then(|| format!("want {code} with detail"))
            }
            Want::Gateway(code) => {
                let ps = head
                    .to_ascii_lowercase()
                    .contains("proxy-status: connectors-gateway; error=");
                (status != *code || !ps).then(|| format!("want {code} with Proxy-Status"))
            }
            Want::Any4xx => (!(400..500).contains(&status)).then(|| "want a 4xx".to_owned()),
        };
        if let Some(p) = problem {
            let sent: String = body
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).chars().take(80).collect())
                .unwrap_or_default();
            failures.push(format!(
                "{method} {shown} {sent}: {p}, got {status}: {text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(snapshot(app).await, before, "the store changed");
});
