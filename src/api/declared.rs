//! Connectors declared in the config file (`[[connectors]]`), upserted at start as the bootstrap
//! admin with the same validation as `POST /v1/connectors` (create) and `PATCH` (update): a
//! sidecar needs no API call to be useful.

use serde_json::{Map, Value};

use super::dto;
use super::error::{ApiError, Loc};
use crate::identity::Principal;
use crate::registry::{Registry, RegistryError};

/// Creates each declared connector that does not exist yet (by name, as `admin` sees it) and
/// updates the others. Errors name the connector and the field, never a value.
pub async fn apply(
    registry: &Registry,
    admin: &Principal,
    declared: &[Map<String, Value>],
) -> Result<usize, String> {
    for body in declared {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let fail = |e: ApiError| format!("declared connector `{name}`: {}", describe(&e));
        match registry.resolve(admin, &name).await {
            Ok(existing) => {
                let declared = dto::parse_create(body).map_err(fail)?;
                if declared.visibility != existing.visibility {
                    tracing::warn!(
                        connector = %existing.id,
                        name = %name,
                        "declared visibility differs from the stored one; use share/unshare to change it"
                    );
                }
                let changed = registry
                    .reconcile(admin, &existing.id, declared)
                    .await
                    .map_err(|e| fail(e.into()))?;
                if changed {
                    tracing::info!(connector = %existing.id, name = %name, "declared connector updated");
                }
            }
            Err(RegistryError::NotFound) => {
                let new = dto::parse_create(body).map_err(fail)?;
                let c = registry
                    .create(admin, new)
                    .await
                    .map_err(|e| fail(e.into()))?;
                tracing::info!(connector = %c.id, name = %name, "declared connector created");
            }
            Err(e) => return Err(fail(e.into())),
        }
    }
    Ok(declared.len())
}

fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|f| {
                let loc: Vec<String> = f
                    .loc
                    .iter()
                    .map(|l| match l {
                        Loc::Key(k) => k.clone(),
                        Loc::Index(i) => i.to_string(),
                    })
                    .collect();
                format!("{}: {}", loc.join("."), f.msg)
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
