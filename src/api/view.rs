//! Response shapes of the connector endpoints (contract §4.1, §4.3, §4.12). Secrets never
//! appear: secret global header values are replaced by a mask, connector `headers` and OAuth
//! client secrets are not emitted at all.

use serde_json::{Map, Value, json};

use crate::registry::{AuthMethod, Connector, ConsumerType, GlobalHeader, Protocol};

/// What replaces a secret value in every response.
pub const SECRET_MASK: &str = "********";

/// Per-caller data added to a connector view.
#[derive(Debug, Default)]
pub struct CallerData {
    pub blocked_by: Vec<ConsumerType>,
    /// `Some` when the caller asked for `fetch_user_data=true`.
    pub user_data: Option<UserData>,
    /// The connector's tools when a list is cached (no upstream call is made to render).
    pub tools: Option<std::sync::Arc<crate::cache::ToolsList>>,
}

#[derive(Debug)]
pub struct UserData {
    pub is_authenticated: bool,
    /// The caller's credentials (public views).
    pub credentials: Vec<Value>,
}

pub fn connector(c: &Connector, caller: &CallerData) -> Value {
    let mut v = json!({
        "id": c.id,
        "name": c.name.as_str(),
        "description": c.doc.description,
        "created_at": c.created_at,
        "modified_at": c.modified_at,
        "owner_type": c.owner_type().as_str(),
        "owner_id": c.owner_id(),
        "creator_id": c.creator_id,
        "visibility": c.visibility.as_str(),
        "private_tool_execution": c.doc.private_tool_execution,
        "supports_mcp": c.supports_mcp,
        "protocol": c.protocol.as_str(),
        "title": c.doc.title,
        "server": c.doc.server,
        "icon_url": c.doc.icon_url,
        "server_card": null,
        "locale": null,
        "system_prompt": c.doc.system_prompt,
        "supported_auth_methods": c.doc.auth_methods.iter()
            .map(|m| public_auth_method(m, c.doc.oauth2_server_metadata.as_ref()))
            .collect::<Vec<_>>(),
        "global_headers": global_headers(&c.doc.global_headers),
        "blocked_by": caller.blocked_by.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "mistral": false,
        "tools": caller.tools.as_ref().map(|list| connector_tools(c, &list.tools)),
    });
    if c.protocol == Protocol::Http {
        v["openapi_spec"] = Value::Null;
    }
    if let Some(user) = &caller.user_data {
        v["connection_credentials"] = Value::Array(user.credentials.clone());
        v["is_authenticated"] = json!(user.is_authenticated);
    }
    v
}

/// MCP tool objects → ConnectorTool records (§4.8, snake_case).
fn connector_tools(c: &Connector, tools: &[Value]) -> Vec<Value> {
    tools
        .iter()
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?;
            Some(json!({
                "id": format!("{}:{name}", c.id),
                "name": name,
                "description": t.get("description").and_then(Value::as_str).unwrap_or_default(),
                "execution_config": null,
                "visibility": c.visibility.as_str(),
                "created_at": c.created_at,
                "modified_at": c.modified_at,
                "jsonschema": t.get("inputSchema"),
                "active": true,
            }))
        })
        .collect()
}

/// PublicAuthenticationMethod (§4.3).
pub fn public_auth_method(m: &AuthMethod, connector_metadata: Option<&Value>) -> Value {
    let metadata = m
        .oauth2_server_metadata
        .as_ref()
        .or(if m.method_type == "oauth2" {
            connector_metadata
        } else {
            None
        })
        .map(|md| {
            let mut md = md.clone();
            if let Value::Object(o) = &mut md {
                o.entry("x_source").or_insert_with(|| json!("provided"));
            }
            md
        });
    json!({
        "method_type": m.method_type,
        "headers": m.headers,
        "global_headers": global_headers(&m.global_headers),
        "has_default_credentials": false,
        "grant_type": m.grant_type,
        "token_endpoint_auth_method": m.token_endpoint_auth_method,
        "oauth2_server_metadata": metadata,
    })
}

fn global_headers(h: &std::collections::BTreeMap<String, GlobalHeader>) -> Value {
    let mut out = Map::new();
    for (name, gh) in h {
        let value = if gh.is_secret {
            SECRET_MASK.to_owned()
        } else {
            gh.value.clone().unwrap_or_default()
        };
        out.insert(
            name.clone(),
            json!({ "value": value, "is_secret": gh.is_secret }),
        );
    }
    Value::Object(out)
}

pub fn message(text: impl Into<String>) -> Value {
    json!({ "message": text.into() })
}
