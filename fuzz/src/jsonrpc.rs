//! `jsonrpc`: the whole input is a request/response body.
//!
//! Checks: `Message::parse_all` and `Message::classify` never panic; when `parse_all`
//! succeeds it returns one message per batch element (or one for a single message), each equal
//! to what `classify` makes of that element, and each shaped per JSON-RPC 2.0: a request has a
//! non-null id, every message carried `"jsonrpc": "2.0"`.

use serde_json::Value;
use switchboard::mcp::jsonrpc::Message;

pub fn check(data: &[u8]) {
    let parsed = Message::parse_all(data);
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        assert!(
            parsed.is_err(),
            "parse_all accepted bytes that are not JSON"
        );
        return;
    };
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
