//! `authSpec[]` (reference §1.3): Basic, OAuth2 refresh code and API-key entries, and where
//! each API key is sent.

use serde_json::Value;

use super::check_schema_shape;
use crate::model::{ApiKeyPlacement, AuthKind, AuthSpec};
use crate::raw::{Ctx, Node, Obj, describe};
use crate::secrets;

/// Auth types we know.
pub const AUTH_TYPES: [&str; 3] = ["BasicAuthentication", "OAuth2RefreshCode", "KeyBased"];

pub(super) fn read_auth_specs(ctx: &mut Ctx, node: &Node<'_>) -> Option<Vec<AuthSpec>> {
    let entries = ctx.array(node, "authSpec")?;
    if entries.is_empty() {
        ctx.err(
            &node.ptr,
            "expected at least one auth spec in authSpec, found an empty array",
        );
        return None;
    }
    let mut auth_specs = Vec::with_capacity(entries.len());
    let mut ok = true;
    for entry in &entries {
        match read_auth_spec(ctx, entry) {
            Some(auth_spec) => {
                if auth_specs
                    .iter()
                    .any(|seen: &AuthSpec| seen.name.eq_ignore_ascii_case(&auth_spec.name))
                {
                    ctx.err(
                        &format!("{}/name", entry.ptr),
                        format!("duplicate auth spec name {:?}", auth_spec.name),
                    );
                    ok = false;
                }
                auth_specs.push(auth_spec);
            }
            None => ok = false,
        }
    }
    ok.then_some(auth_specs)
}

fn read_auth_spec(ctx: &mut Ctx, node: &Node<'_>) -> Option<AuthSpec> {
    let obj = ctx.object(node, "an auth spec")?;
    let name = obj.req_string(ctx, &["name"], "the auth spec name");
    let type_name = obj.req_string(ctx, &["type"], "the auth type");
    let schema = obj.require(
        ctx,
        &["spec"],
        "the JSON schema of the auth params (an object)",
    );
    let schema = schema.and_then(|schema| {
        let schema_obj = ctx.object(&schema, "the JSON schema of the auth params")?;
        check_schema_shape(ctx, &schema_obj);
        Some(schema)
    });
    let kind = type_name.as_deref().and_then(|type_name| {
        let normalised = type_name.to_ascii_lowercase().replace(['_', '-', ' '], "");
        match normalised.as_str() {
            "basicauthentication" | "basic" => Some(AuthKind::Basic),
            "oauth2refreshcode" | "oauth2" => Some(AuthKind::OAuth2RefreshCode),
            "keybased" | "apikey" | "apikeyauthentication" => {
                Some(AuthKind::KeyBased { keys: Vec::new() })
            }
            _ => {
                ctx.err(
                    &obj.ptr_of("type"),
                    format!(
                        "unknown auth type {type_name:?}; expected one of {}",
                        AUTH_TYPES.join(", ")
                    ),
                );
                None
            }
        }
    });
    let (name, type_name, kind, schema) = (name?, type_name?, kind?, schema?);
    let kind = match kind {
        AuthKind::KeyBased { .. } => AuthKind::KeyBased {
            keys: api_keys(ctx, &obj, &schema)?,
        },
        other => other,
    };
    let mut auth_spec = AuthSpec {
        name,
        type_name,
        kind,
        params_schema: schema.value.clone(),
        secret_fields: Vec::new(),
    };
    auth_spec.secret_fields = secrets::secret_fields(&auth_spec);
    Some(auth_spec)
}

/// The key properties of a KeyBased spec: those with `restAttributes.headerParamName` and those
/// named `authKeyN`; the header defaults to the property name.
fn api_keys(ctx: &mut Ctx, auth: &Obj<'_>, schema: &Node<'_>) -> Option<Vec<ApiKeyPlacement>> {
    let properties = schema.value.get("properties").and_then(Value::as_object);
    let spec_level = auth.map.get("restAttributes").and_then(Value::as_object);
    let mut keys = Vec::new();
    for (property, definition) in properties.into_iter().flatten() {
        let header = definition
            .get("restAttributes")
            .and_then(|attributes| attributes.get("headerParamName"))
            .or_else(|| {
                spec_level
                    .and_then(|attrs| attrs.get(property))
                    .and_then(|attrs| attrs.get("headerParamName"))
            });
        let is_key_name = property
            .strip_prefix("authKey")
            .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()));
        match header {
            Some(Value::String(header_name)) if !header_name.trim().is_empty() => {
                keys.push(ApiKeyPlacement {
                    property: property.clone(),
                    header_name: header_name.clone(),
                });
            }
            Some(other) => {
                let ptr = format!(
                    "{}/properties/{}/restAttributes/headerParamName",
                    schema.ptr, property
                );
                ctx.err(
                    &ptr,
                    format!(
                        "expected the header name of key {property} (a non-empty string), found {}",
                        describe(other)
                    ),
                );
                return None;
            }
            None if is_key_name => {
                keys.push(ApiKeyPlacement {
                    property: property.clone(),
                    header_name: property.clone(),
                });
            }
            None => {}
        }
    }
    if keys.is_empty() {
        ctx.err(
            &format!("{}/properties", schema.ptr),
            "expected at least one API key property (authKey1, ... or a property with restAttributes.headerParamName) for auth type KeyBased, found none",
        );
        return None;
    }
    Some(keys)
}
