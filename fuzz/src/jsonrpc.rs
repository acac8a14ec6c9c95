//! `jsonrpc`: the whole input is a request/response body.
//!
//! Checks: `Message::parse_all` and `Message::classify` never panic; when `parse_all`
//! succeeds it returns one message per batch element (or one for a single message), each equal
//! to what `classify` makes of that element, and each shaped per JSON-RPC 2.0: a request has a
//! non-null id, every message carried `"jsonrpc": "2.0"`.
//!
//! `limits::json_scan` (the relay's one-pass depth check and method peek) never panics; on
//! valid JSON its depth verdict agrees with the text's nesting and its array flag with the
//! parsed value, a method it finds is the object's `method` string, and it finds it whenever
//! the text has exactly one `"method"` and no escapes.

use serde_json::Value;
use switchboard::mcp::jsonrpc::Message;

/// The deepest nesting of arrays and objects in the text. Not the parsed value's: with a
/// repeated member the value keeps the last one, which may be shallower than an earlier one
/// the text (and so a parser) still has to go through.
fn depth(data: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in data {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn check_scan(data: &[u8], value: &Value) {
    const LIMIT: usize = 6;
    let scan = switchboard::limits::json_scan(data, LIMIT);
    assert_eq!(scan.too_deep, depth(data) > LIMIT, "depth verdict");
    if scan.too_deep {
        return;
    }
    assert_eq!(scan.array, value.is_array());
    // With one `"method"` in the text (a repeated member, or one whose value is not a string,
    // may leave the scan with an earlier string than the parse's last value).
    if data.windows(8).filter(|w| w == b"\"method\"").count() != 1 {
        return;
    }
    if let Some(m) = scan.method {
        assert_eq!(value.get("method").and_then(Value::as_str), Some(m));
    }
    if !data.contains(&b'\\') {
        if let Some(m) = value.get("method").and_then(Value::as_str) {
            assert_eq!(scan.method, Some(m), "the method was missed");
        }
    }
}

pub fn check(data: &[u8]) {
    let parsed = Message::parse_all(data);
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        let _ = switchboard::limits::json_scan(data, 64);
        assert!(
            parsed.is_err(),
            "parse_all accepted bytes that are not JSON"
        );
        return;
    };
    check_scan(data, &value);
    let items: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let classified: Vec<Option<Message>> = items.iter().map(|v| Message::classify(v)).collect();
    match parsed {
        Ok(messages) => {
            assert_eq!(messages.len(), items.len(), "one message per element");
            for ((m, c), v) in messages.iter().zip(&classified).zip(&items) {
                assert_eq!(Some(m), c.as_ref(), "parse_all and classify disagree");
                assert_eq!(v["jsonrpc"], "2.0");
                match m {
                    Message::Request { id, method, .. } => {
                        assert!(!id.is_null(), "a request with a null id");
                        assert_eq!(v["method"].as_str(), Some(method.as_str()));
                    }
                    Message::Notification { method, .. } => {
                        assert_eq!(v["method"].as_str(), Some(method.as_str()));
                    }
                    Message::Response { id, .. } => {
                        assert_eq!(&v["id"], id);
                        assert!(v.get("method").and_then(Value::as_str).is_none());
                    }
                }
            }
        }
        Err(_) => assert!(
            classified.iter().any(Option::is_none),
            "parse_all failed though every element classifies"
        ),
    }
}
