//! `GET /connections/{id}/test` (the connection's `authorizationTestUrl`, called with its
//! credentials) and `GET /connections/{id}/explore` (the first page of the source and the
//! schema of its records, in the documented REST shape; the object list for `objectType=root`).
//! Both go through the fetcher (`tributary-fetch`), as runs do.

use std::time::Duration;

use arrow_schema_lite::json_type;
use axum::Json;
use axum::extract::{Path, State};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tributary_spec::{DocumentKind, SpecRef};
use tributary_state::EntityKind;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::flowservice::found;
use crate::http::{Query, Tenant};

/// How long test and explore wait for the source.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);

/// `FLOW-1600-400`: the source refused the request or could not be reached (our code; the
/// catalogue has none for it).
fn source_error(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(1600, format!("{what}: {err}"))
}

/// The base connection and its spec, secrets in clear.
fn connection_and_spec(state: &ApiState, tenant: &Tenant, id: &str) -> ApiResult<(Value, Value)> {
    found(state, EntityKind::Connection, tenant, id)?;
    let Some(connection) = state.store().clear(EntityKind::Connection, tenant, id)? else {
        return Err(ApiError::not_found("connections", id));
    };
    let spec_id = connection
        .pointer("/connectionSpec/id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(spec) = state
        .store()
        .clear(EntityKind::ConnectionSpec, tenant, &spec_id)?
    else {
        return Err(ApiError::bad_request(
            1413,
            format!("the connection's spec {spec_id:?} does not exist"),
        ));
    };
    let mut spec = spec;
    if let Value::Object(map) = &mut spec {
        map.insert("id".to_owned(), Value::String(spec_id));
    }
    Ok((connection, spec))
}

pub async fn test_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (connection, spec_doc) = connection_and_spec(&state, &tenant, &id)?;
    let spec = tributary_spec::connection_spec_from_value("connection spec", &spec_doc).map_err(
        |err| {
            ApiError::bad_request(
                1455,
                format!("the connection's spec cannot be used to test: {err}"),
            )
        },
    )?;
    let (base, auth_spec) =
        tributary_spec::base_connection_for_spec("connection", &connection, &spec).map_err(
            |err| {
                ApiError::bad_request(
                    1455,
                    format!("the connection is not valid for its spec: {err}"),
                )
            },
        )?;
    let env = |name: &str| std::env::var(name).ok();
    let params = base
        .resolved_params(&env)
        .map_err(|err| ApiError::bad_request(1455, err.to_string()))?;
    let auth = tributary_fetch::Auth::try_new(&auth_spec, &params, &base.secret_fields, None)
        .map_err(|err| ApiError::bad_request(1455, err.to_string()))?;
    let host = params
        .get("host")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let client = state.engine().fetch.client.clone();
    let checked = tributary_fetch::test_connection(&client, &auth, host.as_deref(), SOURCE_TIMEOUT)
        .await
        .map_err(|err| source_error("the connection test failed", err))?;
    Ok(Json(match checked {
        tributary_fetch::ConnectionCheck::Passed { status } => {
            json!({"result": true, "status": status})
        }
        tributary_fetch::ConnectionCheck::NoTestUrl => json!({
            "result": true,
            "message": "the connection has no authorizationTestUrl: its credentials are checked by the first request of explore or of a run",
        }),
    }))
}

fn decode_source_params(text: &str) -> ApiResult<Map<String, Value>> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim_end_matches('='))
        })
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
        })
        .map_err(|_| {
            ApiError::bad_request(1451, "sourceParams: expected base64 of a JSON object")
        })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request(
            1451,
            "sourceParams: expected base64 of a JSON object",
        )),
    }
}

pub async fn explore_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Query,
) -> ApiResult<Json<Value>> {
    let object_type = query
        .get_ci("objectType")
        .unwrap_or("root")
        .to_ascii_lowercase();
    if let Some(file_type) = query.get_ci("fileType")
        && !file_type.eq_ignore_ascii_case("json")
    {
        return Err(ApiError::bad_request(
            1451,
            format!("fileType {file_type:?}: only json is supported for REST sources"),
        ));
    }
    let preview = match query.get("preview").map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                1451,
                format!("preview: expected true or false, found {other:?}"),
            ));
        }
    };
    let (connection, spec) = connection_and_spec(&state, &tenant, &id)?;
    match object_type.as_str() {
        "root" => return Ok(Json(Value::Array(spec_objects(&spec)))),
        "rest" => {}
        other => {
            return Err(ApiError::bad_request(
                1451,
                format!("objectType {other:?}: expected root or rest"),
            ));
        }
    }
    let source_params = match query.get("sourceParams") {
        Some(text) if !text.trim().is_empty() => decode_source_params(text)?,
        _ => Map::new(),
    };
    let bundle_json = json!({
        "name": "explore",
        "connectionSpec": spec,
        "baseConnection": {"auth": connection.get("auth").cloned().unwrap_or(Value::Null)},
        "sourceConnection": {"params": source_params},
        "targetConnection": {"params": {"dataSetId": "explore"}},
    });
    let bundle = tributary_spec::load_bundle(
        "explore",
        &bundle_json.to_string(),
        |kind: DocumentKind, reference: &SpecRef| {
            Err(format!("{kind} {reference:?} cannot be referenced here"))
        },
    )
    .map_err(|err| match err {
        tributary_spec::SpecError::Invalid { diagnostics, .. } => {
            ApiError::invalid(1455, "the connection with these sourceParams", &diagnostics)
        }
        other => ApiError::bad_request(1455, other.to_string()),
    })?;
    let env = |name: &str| std::env::var(name).ok();
    let plan = tributary_fetch::FetchPlan::from_bundle(&bundle, None, &env, None)
        .map_err(|err| source_error("explore", err))?
        .with_raw_bodies();
    let mut run = tributary_fetch::fetch_pages(&state.engine().fetch, plan);
    let first = tokio::time::timeout(SOURCE_TIMEOUT, run.pages.recv()).await;
    run.task.abort();
    let page = match first {
        Err(_) => return Err(source_error("explore", "the source did not answer in time")),
        Ok(None) => {
            return Err(ApiError::internal(
                "explore",
                "the fetcher stopped before its first page",
            ));
        }
        Ok(Some(Err(err))) => return Err(source_error("fetching the first page", err)),
        Ok(Some(Ok(tributary_fetch::FetchEvent::End(_)))) => {
            return Err(source_error("explore", "the source returned no page"));
        }
        Ok(Some(Ok(tributary_fetch::FetchEvent::Page(page)))) => page,
    };
    let body: Value = serde_json::from_slice(page.body.as_deref().unwrap_or_default())
        .map_err(|err| source_error("the first page is not JSON", err))?;
    let schema = tributary_transform::decode::infer_schema(&page.records, 1000)
        .map_err(|err| source_error("inferring the record schema", err))?;
    let mut properties = Map::new();
    let mut columns = Vec::new();
    for field in schema.fields() {
        let kind = json_type(field.data_type());
        properties.insert(field.name().clone(), json!({"type": kind}));
        columns.push(json!({"name": field.name(), "type": kind}));
    }
    let mut response = json!({
        "format": "hierarchical",
        "schema": {"type": "object", "properties": properties, "columns": columns},
    });
    if preview {
        response["data"] = json!([body]);
    }
    Ok(Json(response))
}

/// What a connection of this spec can explore (the root listing).
pub fn spec_objects(spec: &Value) -> Vec<Value> {
    let name = spec.get("name").and_then(Value::as_str).unwrap_or("rest");
    let has_source = spec.get("sourceSpec").is_some();
    if !has_source {
        return Vec::new();
    }
    vec![
        json!({"type": "rest", "name": name, "path": "json", "canPreview": true, "canFetchSchema": true}),
    ]
}

/// The inputs of a connection of this spec: one item per authSpec and one for `sourceSpec.spec`;
/// with a connection, the authSpec it uses is marked `selected`.
pub fn spec_configs(spec: &Value, connection: Option<&Value>) -> Vec<Value> {
    let chosen = connection
        .and_then(|c| c.pointer("/auth/specName"))
        .and_then(Value::as_str);
    let mut items = Vec::new();
    if let Some(auth_specs) = spec.get("authSpec").and_then(Value::as_array) {
        for (idx, auth_spec) in auth_specs.iter().enumerate() {
            let name = auth_spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let type_name = auth_spec
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let selected = chosen
                .is_some_and(|c| c.eq_ignore_ascii_case(name) || c.eq_ignore_ascii_case(type_name));
            items.push(json!({
                "type": "authSpec", "name": name, "path": format!("/authSpec/{idx}"),
                "canPreview": false, "canFetchSchema": true, "selected": selected,
                "spec": auth_spec.get("spec").cloned().unwrap_or(Value::Null),
            }));
        }
    }
    if let Some(source_schema) = spec.pointer("/sourceSpec/spec") {
        items.push(json!({
            "type": "sourceSpec", "name": "sourceSpec.spec", "path": "/sourceSpec/spec",
            "canPreview": false, "canFetchSchema": true, "spec": source_schema,
        }));
    }
    items
}

mod arrow_schema_lite {
    /// The JSON-schema type name of an Arrow type, for explore's schema.
    pub fn json_type(data_type: &arrow_schema::DataType) -> &'static str {
        use arrow_schema::DataType;
        match data_type {
            DataType::Boolean => "boolean",
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => "integer",
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => "number",
            DataType::Struct(_) | DataType::Map(..) => "object",
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "array",
            DataType::Null => "null",
            _ => "string",
        }
    }
}
