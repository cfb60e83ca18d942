//! Validation of base, source and target connections, alone and against a connection spec
//! (auth params against the matched authSpec's schema, source params against `sourceSpec.spec`).

use serde_json::{Map, Value};

use crate::model::{
    AuthSpec, BaseConnection, ConnectionSpec, SourceConnection, TargetConnection, TargetFormat,
};
use crate::raw::{Ctx, Node, Obj, describe_redacted};
use crate::schema_check;
use crate::secrets;

/// A base connection read from JSON, with the pointers needed to check it against a spec.
pub(crate) struct BaseRead {
    pub(crate) base: BaseConnection,
    pub(crate) spec_name_ptr: String,
    pub(crate) params_ptr: String,
}

/// A source connection and the pointer of its params.
pub(crate) struct SourceRead {
    pub(crate) source: SourceConnection,
    pub(crate) params_ptr: String,
}

pub(crate) fn read_base_connection(ctx: &mut Ctx, node: &Node<'_>) -> Option<BaseRead> {
    let obj = ctx.object(node, "a base connection")?;
    let name = obj.opt_string(ctx, &["name"], "the connection name");
    let auth = obj
        .require(ctx, &["auth"], "the credentials {specName, params}")
        .and_then(|auth| ctx.object(&auth, "auth"))?;
    let spec_name = auth.req_string(
        ctx,
        &["specName"],
        "the name or type of the authSpec to use",
    );
    let params = read_params(ctx, &auth, true)?;
    let base = BaseConnection {
        name,
        auth_spec_name: spec_name?,
        secret_fields: secrets::WELL_KNOWN_SECRET_FIELDS
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
        params,
    };
    Some(BaseRead {
        base,
        spec_name_ptr: auth.ptr_of("specName"),
        params_ptr: auth.ptr_of("params"),
    })
}

pub(crate) fn read_source_connection(ctx: &mut Ctx, node: &Node<'_>) -> Option<SourceRead> {
    let obj = ctx.object(node, "a source connection")?;
    let name = obj.opt_string(ctx, &["name"], "the connection name");
    let params = read_params(ctx, &obj, false)?;
    Some(SourceRead {
        source: SourceConnection { name, params },
        params_ptr: obj.ptr_of("params"),
    })
}

pub(crate) fn read_target_connection(ctx: &mut Ctx, node: &Node<'_>) -> Option<TargetConnection> {
    let obj = ctx.object(node, "a target connection")?;
    let n_errors_before = ctx.n_errors();
    let name = obj.opt_string(ctx, &["name"], "the connection name");
    let dataset_id = obj
        .require(ctx, &["params"], "the target params {dataSetId}")
        .and_then(|params| ctx.object(&params, "the target params"))
        .and_then(|params| params.req_string(ctx, &["dataSetId"], "the dataset id"));
    let mut schema = None;
    let mut schema_id = None;
    let mut format = Some(TargetFormat::default());
    let data = obj
        .get(ctx, &["data"])
        .and_then(|data| ctx.object(&data, "data"));
    if let Some(data) = &data {
        if let Some(format_node) = data.get(ctx, &["format"]) {
            format = read_target_format(ctx, &format_node);
        }
        if let Some(schema_obj) = data
            .get(ctx, &["schema"])
            .and_then(|node| ctx.object(&node, "data.schema"))
        {
            if let Some(json_schema) = schema_obj.get(ctx, &["jsonSchema"])
                && ctx
                    .object(&json_schema, "the inline JSON schema of the dataset")
                    .is_some()
            {
                schema = Some(json_schema.value.clone());
            }
            schema_id = schema_obj.opt_string(ctx, &["id"], "the schema id");
        }
    }
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    Some(TargetConnection {
        name,
        dataset_id: dataset_id?,
        schema,
        schema_id,
        format: format?,
    })
}

/// `data.format`: Adobe's values (reference §9: `parquet_xdm` in tutorials, `json` in the SSS
/// template, `delimited`, `json`, `parquet`, `tabular` in the OpenAPI file), case-insensitive,
/// and our `delta`.
fn read_target_format(ctx: &mut Ctx, node: &Node<'_>) -> Option<TargetFormat> {
    let text = ctx.string(node, "the data format")?;
    match text.trim().to_ascii_lowercase().as_str() {
        "parquet_xdm" | "parquet" | "json" | "delimited" | "tabular" => Some(TargetFormat::Parquet),
        "delta" => Some(TargetFormat::Delta),
        _ => {
            ctx.err(
                &node.ptr,
                format!(
                    "unknown data format {text:?}; expected one of parquet_xdm, parquet, json, delimited, tabular (Parquet batches) or delta (a Delta Lake table)"
                ),
            );
            None
        }
    }
}

/// `params`: an object; absent means `{}` for a source connection and is an error for auth.
fn read_params(ctx: &mut Ctx, obj: &Obj<'_>, required: bool) -> Option<Map<String, Value>> {
    let node = if required {
        obj.require(ctx, &["params"], "the auth params (an object)")?
    } else {
        match obj.get(ctx, &["params"]) {
            Some(node) => node,
            None => return Some(Map::new()),
        }
    };
    match node.value {
        Value::Object(map) => Some(map.clone()),
        other => {
            // Never echo the value: misplaced credentials are still credentials.
            ctx.err(
                &node.ptr,
                format!(
                    "expected params (an object), found {}",
                    describe_redacted(other)
                ),
            );
            None
        }
    }
}

/// Matches `auth.specName` and checks the params against that authSpec's schema. Returns the
/// matched authSpec; secret field names are copied into the base connection.
pub(crate) fn check_base_against_spec(
    ctx: &mut Ctx,
    read: &mut BaseRead,
    spec: &ConnectionSpec,
) -> Option<AuthSpec> {
    let Some(auth_spec) = spec.auth_spec(&read.base.auth_spec_name) else {
        let available: Vec<String> = spec
            .auth_specs
            .iter()
            .map(|auth_spec| format!("{:?} (type {})", auth_spec.name, auth_spec.type_name))
            .collect();
        ctx.err(
            &read.spec_name_ptr,
            format!(
                "auth spec {:?} could not be found for connection spec {:?}; expected one of {}",
                read.base.auth_spec_name,
                spec.name,
                available.join(", ")
            ),
        );
        return None;
    };
    read.base.secret_fields = auth_spec.secret_fields.clone();
    let params = Value::Object(read.base.params.clone());
    // Auth params may be secrets: messages never show their string values.
    schema_check::check(
        ctx,
        &auth_spec.params_schema,
        &params,
        &read.params_ptr,
        true,
    );
    warn_undeclared(
        ctx,
        &auth_spec.params_schema,
        &read.base.params,
        &read.params_ptr,
        "the authSpec",
    );
    Some(auth_spec.clone())
}

/// Checks source params against `sourceSpec.spec`.
pub(crate) fn check_source_against_spec(ctx: &mut Ctx, read: &SourceRead, spec: &ConnectionSpec) {
    let Some(schema) = &spec.source.params_schema else {
        return;
    };
    check_source_params(ctx, read, schema, "sourceSpec.spec");
}

/// Checks source params against a params schema called `schema_name` in messages.
pub(crate) fn check_source_params(
    ctx: &mut Ctx,
    read: &SourceRead,
    schema: &Value,
    schema_name: &str,
) {
    let params = Value::Object(read.source.params.clone());
    schema_check::check(ctx, schema, &params, &read.params_ptr, false);
    warn_undeclared(
        ctx,
        schema,
        &read.source.params,
        &read.params_ptr,
        schema_name,
    );
}

/// A value the customer supplies should be declared in the corresponding schema (reference
/// §2.6). Only a warning: an extra param is harmless unless the schema forbids it, which the
/// schema check reports itself.
fn warn_undeclared(
    ctx: &mut Ctx,
    schema: &Value,
    params: &Map<String, Value>,
    params_ptr: &str,
    schema_name: &str,
) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        return;
    }
    for name in params.keys() {
        if !properties.contains_key(name) {
            ctx.warn(
                &crate::diag::child_pointer(params_ptr, name),
                format!("param {name} is not declared in {schema_name}'s properties"),
            );
        }
    }
}
