//! `GET /v1/connectors/{ref}/tools` and `POST /v1/connectors/{ref}/tools/{tool_name}/call`
//! (contract §5.8, §5.9).

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, FieldError};
use super::extract::{Caller, OptionalJsonObject, PathParams, Query};

type ApiResult<T> = Result<T, ApiError>;

pub async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams(reference): PathParams<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    let refresh = q.bool("refresh")?.unwrap_or(false);
    let pretty = q.bool("pretty")?.unwrap_or(false);
    let credentials = q.string("credentials_name").filter(|s| !s.is_empty());
    let (list, outcome) = state
        .tools
        .list(&p, &reference, credentials, refresh)
        .await?;
    tracing::debug!(?outcome, tools = list.tools.len(), "tools listed");
    let tools: Vec<Value> = if pretty {
        list.tools.iter().map(trim_tool).collect()
    } else {
        list.tools.clone()
    };
    Ok(Json(Value::Array(tools)))
}

/// `POST …/tools/{*rest}` where `rest` is `<tool name, may hold '/'>/call`.
pub async fn call(
    State(state): State<AppState>,
    Caller(p): Caller,
    PathParams((reference, rest)): PathParams<(String, String)>,
    q: Query,
    OptionalJsonObject(body): OptionalJsonObject,
) -> ApiResult<Json<Value>> {
    let tool = rest
        .strip_suffix("/call")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::NotFound("Not Found".into()))?;
    if tool
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(ApiError::Validation(vec![
            FieldError::new(
                vec!["path".into(), "tool_name".into()],
                "value_error",
                "Tool names may not contain empty, `.` or `..` segments",
            )
            .with_input(&Value::String(tool.to_owned())),
        ]));
    }
    let arguments = match body.as_ref().and_then(|b| b.get("arguments")) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(a)) => Value::Object(a.clone()),
        Some(other) => {
            return Err(ApiError::Validation(vec![
                FieldError::new(
                    vec!["body".into(), "arguments".into()],
                    "dict_type",
                    "Input should be a valid dictionary",
                )
                .with_input(other),
            ]));
        }
    };
    let credentials = q.string("credentials_name").filter(|s| !s.is_empty());
    let result = state
        .tools
        .call(&p, &reference, tool, arguments, credentials)
        .await?;
    Ok(Json(call_response(result)))
}

/// MCP `CallToolResult` → ConnectorToolCallResponse (§5.9).
pub fn call_response(result: Value) -> Value {
    let content = result.get("content").cloned().unwrap_or_else(|| json!([]));
    let mut mcp_meta = Map::new();
    mcp_meta.insert(
        "isError".into(),
        json!(
            result
                .get("isError")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
    );
    if let Some(sc) = result.get("structuredContent") {
        mcp_meta.insert("structuredContent".into(), sc.clone());
    }
    if let Some(meta) = result.get("_meta") {
        mcp_meta.insert("_meta".into(), meta.clone());
    }
    json!({ "content": content, "metadata": { "mcp_meta": mcp_meta } })
}

/// `pretty=true`: only `name`, `description`, `annotations` and a compacted `inputSchema`.
pub fn trim_tool(tool: &Value) -> Value {
    let mut out = Map::new();
    for key in ["name", "description", "annotations"] {
        if let Some(v) = tool.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    out.insert(
        "inputSchema".into(),
        tool.get("inputSchema")
            .map_or_else(|| json!({"type": "object"}), compact_schema),
    );
    Value::Object(out)
}

/// Keeps what a model needs from a JSON schema: types, properties, required, enums,
/// descriptions, items — recursively; drops `$schema`, titles, defs and the like.
fn compact_schema(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "type" | "required" | "enum" | "description" | "const" | "format" => {
                out.insert(k.clone(), v.clone());
            }
            "items" => {
                out.insert(k.clone(), compact_schema(v));
            }
            "properties" => {
                if let Value::Object(props) = v {
                    let compacted: Map<String, Value> = props
                        .iter()
                        .map(|(name, s)| (name.clone(), compact_schema(s)))
                        .collect();
                    out.insert(k.clone(), Value::Object(compacted));
                }
            }
            "anyOf" | "oneOf" | "allOf" => {
                if let Value::Array(alts) = v {
                    out.insert(
                        k.clone(),
                        Value::Array(alts.iter().map(compact_schema).collect()),
                    );
                }
            }
            _ => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_result_maps_to_contract() {
        let r = call_response(json!({
            "content": [{"type": "text", "text": "hi"}],
            "isError": true,
            "structuredContent": {"a": 1},
            "_meta": {"m": 2}
        }));
        assert_eq!(r["content"][0]["text"], "hi");
        assert_eq!(
            r["metadata"]["mcp_meta"],
            json!({"isError": true, "structuredContent": {"a": 1}, "_meta": {"m": 2}})
        );
        let plain = call_response(json!({"content": []}));
        assert_eq!(plain["metadata"]["mcp_meta"], json!({"isError": false}));
    }

    #[test]
    fn pretty_trims_and_compacts() {
        let t = trim_tool(&json!({
            "name": "n", "title": "T", "description": "d", "annotations": {"readOnlyHint": true},
            "_meta": {"x": 1}, "outputSchema": {},
            "inputSchema": {"$schema": "s", "type": "object", "title": "X",
                "properties": {"a": {"type": "string", "title": "A", "description": "aa"}},
                "required": ["a"]}
        }));
        assert_eq!(
            t,
            json!({
                "name": "n", "description": "d", "annotations": {"readOnlyHint": true},
                "inputSchema": {"type": "object", "properties": {"a": {"type": "string", "description": "aa"}}, "required": ["a"]}
            })
        );
    }
}
