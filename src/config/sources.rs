//! Merges the config layers — built-in defaults, the TOML file, `SWITCHBOARD_*` environment
//! variables — into one [`RawConfig`], naming the exact path of anything wrong.
//!
//! Every leaf `section.field` is overridable by `SWITCHBOARD_SECTION_FIELD` (upper case).

use toml::Value;
use toml::map::Map;

use super::ConfigError;
use super::raw::RawConfig;

/// Env vars with this prefix belong to the test suite, not to the gateway.
const TEST_PREFIX: &str = "SWITCHBOARD_TEST_";
const PREFIX: &str = "SWITCHBOARD_";
/// Env vars read by the CLI, not config fields.
const CLI_VARS: &[&str] = &["SWITCHBOARD_CONFIG"];

/// The merged raw config, and warnings about environment variables that set nothing.
pub fn merge(
    file_text: Option<(&str, &str)>,
    env: &[(String, String)],
) -> Result<(RawConfig, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let defaults = Value::try_from(RawConfig::default())
        .map_err(|e| ConfigError::new("(defaults)", e.to_string()))?;
    let mut merged = defaults.clone();
    if let Some((origin, text)) = file_text {
        let file: Value = toml::from_str(text)
            .map_err(|e| ConfigError::new(origin, format!("invalid TOML: {}", e.message())))?;
        overlay(&mut merged, &file, &defaults, "")?;
    }
    let leaves = leaf_paths(&defaults);
    for (name, value) in env {
        if !name.starts_with(PREFIX)
            || name.starts_with(TEST_PREFIX)
            || CLI_VARS.contains(&name.as_str())
        {
            continue;
        }
        let Some((path, default)) = leaves.iter().find(|(p, _)| env_name(p) == *name) else {
            // The environment is shared with other tools: warn about a likely typo, don't fail.
            warnings.push(format!(
                "environment variable `{name}` is not a Switchboard setting and is ignored"
            ));
            continue;
        };
        let parsed = parse_like(default, value).map_err(|msg| ConfigError::new(name, msg))?;
        set_path(&mut merged, path, parsed);
    }
    let raw = merged
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new("(config)", e.message().to_owned()))?;
    Ok((raw, warnings))
}

/// Environment variable name for a dotted path.
pub fn env_name(path: &str) -> String {
    format!("{PREFIX}{}", path.replace('.', "_").to_uppercase())
}

fn overlay(
    into: &mut Value,
    from: &Value,
    schema: &Value,
    prefix: &str,
) -> Result<(), ConfigError> {
    let (Value::Table(into), Value::Table(from), Value::Table(schema)) = (into, from, schema)
    else {
        return Ok(());
    };
    for (key, value) in from {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let Some(expected) = schema.get(key) else {
            return Err(ConfigError::new(&path, "unknown field"));
        };
        if std::mem::discriminant(expected) != std::mem::discriminant(value) {
            return Err(ConfigError::new(
                &path,
                format!(
                    "expected {}, found {}",
                    expected.type_str(),
                    value.type_str()
                ),
            ));
        }
        if value.is_table() {
            let slot = into
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Map::new()));
            overlay(slot, value, expected, &path)?;
        } else {
            into.insert(key.clone(), value.clone());
        }
    }
    Ok(())
}

fn leaf_paths(v: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Table(t) => {
                for (k, child) in t {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(child, &p, out);
                }
            }
            leaf => out.push((prefix.to_owned(), leaf.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

fn parse_like(default: &Value, text: &str) -> Result<Value, String> {
    match default {
        Value::String(_) => Ok(Value::String(text.to_owned())),
        Value::Integer(_) => text
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got `{text}`")),
        Value::Boolean(_) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got `{text}`")),
        },
        Value::Array(_) => Ok(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
        other => Err(format!(
            "cannot be set from the environment ({})",
            other.type_str()
        )),
    }
}

fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Value::Table(t) = cur else { return };
        if parts.peek().is_none() {
            t.insert(part.to_owned(), value);
            return;
        }
        cur = t
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Map::new()));
    }
}
