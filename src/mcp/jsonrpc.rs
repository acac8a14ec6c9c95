//! JSON-RPC 2.0 messages as MCP uses them: classification of a raw message without
//! re-encoding it, and the error object.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A JSON-RPC error object, passed through unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// What a JSON-RPC message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: Value,
        outcome: Result<Value, RpcError>,
    },
}

impl Message {
    /// Classifies one JSON value; `None` when it is not a JSON-RPC 2.0 message.
    pub fn classify(v: &Value) -> Option<Self> {
        let obj = v.as_object()?;
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return None;
        }
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        match (obj.get("method").and_then(Value::as_str), obj.get("id")) {
            (Some(m), Some(id)) if !id.is_null() => Some(Message::Request {
                id: id.clone(),
                method: m.to_owned(),
                params,
            }),
            (Some(m), _) => Some(Message::Notification {
                method: m.to_owned(),
                params,
            }),
            (None, Some(id)) => {
                let outcome = if let Some(err) = obj.get("error") {
                    Err(serde_json::from_value(err.clone()).ok()?)
                } else {
                    Ok(obj.get("result").cloned().unwrap_or(Value::Null))
                };
                Some(Message::Response {
                    id: id.clone(),
                    outcome,
                })
            }
            (None, None) => None,
        }
    }

    /// Parses bytes that hold one message (or, in 2025-03-26, a batch: every element).
    pub fn parse_all(bytes: &[u8]) -> Result<Vec<Self>, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
        let items = match v {
            Value::Array(items) => items,
            one => vec![one],
        };
        items
            .iter()
            .map(|i| Message::classify(i).ok_or_else(|| "not a JSON-RPC 2.0 message".to_owned()))
            .collect()
    }
}

pub fn request(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

pub fn notification(method: &str, params: Option<Value>) -> Value {
    match params {
        Some(p) => json!({"jsonrpc": "2.0", "method": method, "params": p}),
        None => json!({"jsonrpc": "2.0", "method": method}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_kind() {
        let r = Message::classify(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).unwrap();
        assert!(matches!(r, Message::Request { ref method, .. } if method == "tools/list"));
        let n = Message::classify(
            &json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}),
        );
        assert!(matches!(n, Some(Message::Notification { .. })));
        let ok = Message::classify(&json!({"jsonrpc":"2.0","id":"a","result":{"x":1}})).unwrap();
        assert_eq!(
            ok,
            Message::Response {
                id: json!("a"),
                outcome: Ok(json!({"x":1}))
            }
        );
        let err = Message::classify(
            &json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"Invalid params"}}),
        )
        .unwrap();
        assert!(matches!(
            err,
            Message::Response {
                outcome: Err(RpcError { code: -32602, .. }),
                ..
            }
        ));
        assert_eq!(Message::classify(&json!({"id":1,"result":{}})), None);
        assert_eq!(Message::classify(&json!("x")), None);
        assert_eq!(
            Message::parse_all(b"[{\"jsonrpc\":\"2.0\",\"method\":\"a\"}]")
                .unwrap()
                .len(),
            1
        );
        assert!(Message::parse_all(b"{").is_err());
    }
}
