//! Data Prep: mapping sets (list, create, get a version, put a new version, validate, preview,
//! mappings) and the expression language (validate, functions, operators), backed by the
//! mapping engine of `tributary-transform`.
//!
//! A mapping set is stored as its current version plus the older ones (`_versions`), so a flow
//! that pins `mappingVersion` keeps running the version it names. Data Prep answers differ from
//! Flow Service: creates answer 200 with `{id, version, createdDate, …}`, get-by-id answers the
//! bare object, lists are `{data, _page, _links}` paged by `start` / `limit`, dates are epoch ms.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};
use tributary_spec::{DocumentKind, MappingSourceType};
use tributary_state::EntityKind;
use tributary_transform::expr::{EvalState, FieldPath, Value as ExprValue};
use tributary_transform::functions::Function;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::flowservice::{body_object, found, validate};
use crate::http::{JsonBody, Query, Tenant};
use crate::listing::ListQuery;
use crate::store::{Writer, audit_fields};

const MAPPING_SET_FIELDS: &[&str] = &[
    "name",
    "description",
    "version",
    "xdmSchema",
    "xdmVersion",
    "mappings",
    "outputSchema",
    "inputSchema",
    "status",
    "strictMapping",
    "allowNullValues",
    "supportVersion",
    "tags",
    "createdDate",
    "modifiedDate",
    "modifiedBy",
    "schemaRef",
    "expandSchema",
];

/// The version `version` of a stored mapping set, as stored.
pub fn version_of(doc: &Value, version: u64) -> Option<Value> {
    let current = doc.get("version").and_then(Value::as_u64).unwrap_or(0);
    if current == version {
        let mut current_doc = doc.clone();
        if let Value::Object(map) = &mut current_doc {
            map.shift_remove("_versions");
        }
        return Some(current_doc);
    }
    doc.get("_versions")?
        .as_array()?
        .iter()
        .find(|old| old.get("version").and_then(Value::as_u64) == Some(version))
        .cloned()
}

/// The fields of a mapping set a flow bundle takes.
pub fn for_bundle(version_doc: &Value) -> Value {
    let mut map = Map::new();
    if let Some(doc) = version_doc.as_object() {
        for field in [
            "mappings",
            "outputSchema",
            "inputSchema",
            "xdmSchema",
            "xdmVersion",
            "strictMapping",
            "allowNullValues",
        ] {
            if let Some(value) = doc.get(field) {
                map.insert(field.to_owned(), value.clone());
            }
        }
    }
    Value::Object(map)
}

/// Gives every mapping an `id` (kept when it has one).
pub fn assign_mapping_ids(doc: &mut Map<String, Value>) {
    if let Some(Value::Array(mappings)) = doc.get_mut("mappings") {
        for mapping in mappings {
            if let Value::Object(mapping) = mapping
                && !mapping.get("id").is_some_and(Value::is_string)
            {
                mapping.insert(
                    "id".to_owned(),
                    Value::String(uuid::Uuid::new_v4().simple().to_string()),
                );
            }
        }
    }
}

/// Validates a mapping set as `spec validate` does, then every source with the mapping engine
/// (paths and expressions parse). Returns one `(status, errors)` per mapping.
fn check_mapping_set(doc: &Value) -> ApiResult<Vec<Vec<Value>>> {
    validate(DocumentKind::MappingSet, "the mapping set", doc)?;
    let mapping_set =
        tributary_spec::mapping_set_from_value("mapping set", doc).map_err(|err| {
            ApiError::bad_request(1455, format!("the mapping set is not valid: {err}"))
        })?;
    let mut per_mapping = Vec::new();
    for mapping in &mapping_set.mappings {
        let mut errors = Vec::new();
        let (problem, source_type) = match mapping.source_type {
            MappingSourceType::Attribute => (
                FieldPath::parse(&mapping.source)
                    .err()
                    .map(|e| (e.message, e.span.start)),
                "ATTRIBUTE",
            ),
            MappingSourceType::Expression => (
                tributary_transform::expr::parse(&mapping.source)
                    .err()
                    .map(|e| (e.message, e.span.start)),
                "EXPRESSION",
            ),
            MappingSourceType::Static => (None, "STATIC"),
        };
        if let Some((message, position)) = problem {
            errors.push(json!({
                "destination": mapping.destination, "source": mapping.source, "sourceType": source_type,
                "columnName": mapping.destination, "exception": format!("at position {}: {message}", position + 1),
            }));
        }
        per_mapping.push(errors);
    }
    Ok(per_mapping)
}

fn refuse_problems(per_mapping: &[Vec<Value>]) -> ApiResult<()> {
    let mut errors = Vec::new();
    let mut messages = Vec::new();
    for (idx, problems) in per_mapping.iter().enumerate() {
        for problem in problems {
            let message = problem
                .get("exception")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            messages.push(format!("/mappings/{idx}/source: {message}"));
            errors.push(json!({"path": format!("/mappings/{idx}/source"), "message": message}));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(
        1455,
        format!("the mapping set is not valid: {}", messages.join("; ")),
    )
    .with_report("errors", Value::Array(errors)))
}

fn simple(view: &Value) -> Value {
    json!({
        "id": view.get("id"), "version": view.get("version").cloned().unwrap_or(json!(0)),
        "createdDate": view.get("createdDate"), "modifiedDate": view.get("modifiedDate"),
        "createdBy": view.get("createdBy"), "modifiedBy": view.get("updatedBy"),
    })
}

pub async fn create_mapping_set(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut doc = body_object(EntityKind::MappingSet, body, MAPPING_SET_FIELDS)?;
    for field in ["createdDate", "modifiedDate", "modifiedBy", "expandSchema"] {
        doc.shift_remove(field);
    }
    let per_mapping = check_mapping_set(&Value::Object(doc.clone()))?;
    refuse_problems(&per_mapping)?;
    if query
        .get("validate")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        // `?validate=true` (a client habit): validated, nothing stored.
        return Ok(Json(
            json!({"validationResponse": validation_items(&per_mapping)}),
        ));
    }
    doc.insert("version".to_owned(), json!(0));
    assign_mapping_ids(&mut doc);
    audit_fields(&mut doc, Writer::Api, true);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let _guard = state.store().write_lock().await;
    let cached = state
        .store()
        .put(
            EntityKind::MappingSet,
            &tenant,
            &id,
            Value::Object(doc),
            &[],
            None,
        )
        .await?;
    Ok(Json(simple(&cached.view)))
}

fn validation_items(per_mapping: &[Vec<Value>]) -> Vec<Value> {
    per_mapping
        .iter()
        .map(|errors| {
            if errors.is_empty() {
                json!({"status": "SUCCESS", "errors": null})
            } else {
                json!({"status": "FAILED", "errors": errors})
            }
        })
        .collect()
}

pub async fn validate_mapping_set(JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let doc = body_object(EntityKind::MappingSet, body, MAPPING_SET_FIELDS)?;
    let per_mapping = check_mapping_set(&Value::Object(doc))?;
    Ok(Json(
        json!({"validationResponse": validation_items(&per_mapping)}),
    ))
}

pub async fn preview_mapping_set(JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let Some(map) = body.as_object() else {
        return Err(ApiError::field(
            1455,
            "",
            "expected {data: [records], mappingSet: {...}}",
        ));
    };
    for key in map.keys() {
        if !["data", "mappingSet"].contains(&key.as_str()) {
            return Err(ApiError::field(
                1455,
                &format!("/{key}"),
                format!("unknown field {key:?}; expected data and mappingSet"),
            ));
        }
    }
    let records: Vec<Value> = match map.get("data") {
        Some(Value::Array(records)) => records.clone(),
        Some(record @ Value::Object(_)) => vec![record.clone()],
        _ => {
            return Err(ApiError::field(
                1455,
                "/data",
                "expected an array of records",
            ));
        }
    };
    let Some(mapping_doc) = map.get("mappingSet") else {
        return Err(ApiError::field(
            1455,
            "/mappingSet",
            "missing required field mappingSet",
        ));
    };
    let mapping_doc = Value::Object(body_object(
        EntityKind::MappingSet,
        mapping_doc.clone(),
        MAPPING_SET_FIELDS,
    )?);
    let diagnostics =
        tributary_spec::validate_value("request body", DocumentKind::MappingSet, &mapping_doc);
    if diagnostics.has_errors() {
        return Err(ApiError::invalid(1455, "the mapping set", &diagnostics));
    }
    let mapping_set = tributary_spec::mapping_set_from_value("mapping set", &mapping_doc)
        .map_err(|err| ApiError::bad_request(1455, err.to_string()))?;
    let rows = tokio::task::spawn_blocking(move || {
        tributary_transform::mapping::preview(&mapping_set, &records)
    })
    .await
    .map_err(|err| ApiError::internal("previewing a mapping set", err))?
    .map_err(|err| ApiError::bad_request(1455, format!("the preview cannot run: {err}")))?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let errors = if row.errors.is_empty() {
                Value::Null
            } else {
                Value::Array(row.errors.iter().map(|e| json!({"destination": e.destination, "source": e.source, "exception": e.exception})).collect())
            };
            json!({"data": row.data, "errors": errors})
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

pub async fn list_mapping_sets(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    let parse_number = |key: &str, default: usize, max: usize| -> ApiResult<usize> {
        match query.get(key) {
            None => Ok(default),
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(ApiError::bad_request(
                    1452,
                    format!("{key}: expected an integer from 0 to {max}, found {text:?}"),
                )),
            },
        }
    };
    let limit = parse_number("limit", 10, 1000)?.max(1);
    let start = parse_number("start", 0, usize::MAX)?;
    let filters = Query {
        pairs: query
            .pairs
            .iter()
            .filter(|(k, _)| k == "property")
            .cloned()
            .collect(),
    };
    let list = ListQuery::parse(&filters)?;
    let name = query.get("name").map(str::to_ascii_lowercase);
    let docs = state.store().list(EntityKind::MappingSet, &tenant);
    let mut matching: Vec<&Value> = docs
        .iter()
        .map(|doc| &**doc)
        .filter(|doc| list.matches(doc))
        .filter(|doc| match &name {
            None => true,
            Some(name) => doc
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.to_ascii_lowercase().contains(name)),
        })
        .collect();
    let order = query
        .get("orderBy")
        .unwrap_or("-lastUpdateDate")
        .trim()
        .to_owned();
    let (descending, field) = match order.strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, order.trim_start_matches('+')),
    };
    let field = match field {
        "createdDate" => "createdDate",
        "updatedDate" | "lastUpdateDate" | "modifiedDate" => "modifiedDate",
        other => {
            return Err(ApiError::bad_request(
                1432,
                format!("orderBy {other:?}: expected createdDate or updatedDate, with + or -"),
            ));
        }
    };
    matching.sort_by_key(|doc| doc.get(field).and_then(Value::as_i64).unwrap_or(0));
    if descending {
        matching.reverse();
    }
    let total = matching.len();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(limit)
        .map(|doc| (*doc).clone())
        .collect();
    let mut links = Map::new();
    if start + page.len() < total {
        links.insert("next".to_owned(), json!({"href": format!("/mappingSets?start={}&limit={limit}", start + page.len()), "templated": false}));
    }
    Ok(Json(
        json!({"data": page, "_page": {"count": total, "limit": limit, "start": start}, "_links": links}),
    ))
}

fn version_view(state: &ApiState, tenant: &Tenant, id: &str, query: &Query) -> ApiResult<Value> {
    let cached = found(state, EntityKind::MappingSet, tenant, id)?;
    let Some(version) = query.get("version") else {
        return Ok((*cached.view).clone());
    };
    let Ok(version) = version.trim().parse::<u64>() else {
        return Err(ApiError::bad_request(
            1412,
            format!("version: expected a mapping set version number, found {version:?}"),
        ));
    };
    if cached.view.get("version").and_then(Value::as_u64) == Some(version) {
        return Ok((*cached.view).clone());
    }
    let Some(stored) = state.store().clear(EntityKind::MappingSet, tenant, id)? else {
        return Err(ApiError::not_found("mappingSets", id));
    };
    let Some(old) = version_of(&stored, version) else {
        return Err(ApiError::bad_request(
            1412,
            format!("mapping set {id} has no version {version}"),
        ));
    };
    let mut view = Map::new();
    view.insert("id".to_owned(), json!(id));
    if let Value::Object(old) = old {
        for (key, value) in old {
            if key == "_savedAt" {
                view.insert("modifiedDate".to_owned(), value);
            } else {
                view.insert(key, value);
            }
        }
    }
    view.insert(
        "createdDate".to_owned(),
        cached
            .view
            .get("createdDate")
            .cloned()
            .unwrap_or(Value::Null),
    );
    Ok(Value::Object(view))
}

pub async fn get_mapping_set(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Query,
) -> ApiResult<Json<Value>> {
    Ok(Json(version_view(&state, &tenant, &id, &query)?))
}

pub async fn put_mapping_set(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut doc = body_object(EntityKind::MappingSet, body, MAPPING_SET_FIELDS)?;
    for field in [
        "createdDate",
        "modifiedDate",
        "modifiedBy",
        "expandSchema",
        "version",
    ] {
        doc.shift_remove(field);
    }
    let per_mapping = check_mapping_set(&Value::Object(doc.clone()))?;
    refuse_problems(&per_mapping)?;
    let _guard = state.store().write_lock().await;
    let cached = found(&state, EntityKind::MappingSet, &tenant, &id)?;
    let Some(Value::Object(mut stored)) =
        state.store().clear(EntityKind::MappingSet, &tenant, &id)?
    else {
        return Err(ApiError::not_found("mappingSets", &id));
    };
    let mut versions = match stored.shift_remove("_versions") {
        Some(Value::Array(versions)) => versions,
        _ => Vec::new(),
    };
    let current_version = stored.get("version").and_then(Value::as_u64).unwrap_or(0);
    stored.insert(
        "_savedAt".to_owned(),
        cached
            .view
            .get("modifiedDate")
            .cloned()
            .unwrap_or(Value::Null),
    );
    versions.push(Value::Object(stored.clone()));
    doc.insert("version".to_owned(), json!(current_version + 1));
    if let Some(created_by) = stored.get("createdBy") {
        doc.insert("createdBy".to_owned(), created_by.clone());
    }
    assign_mapping_ids(&mut doc);
    audit_fields(&mut doc, Writer::Api, false);
    doc.insert("_versions".to_owned(), Value::Array(versions));
    let cached = state
        .store()
        .put(
            EntityKind::MappingSet,
            &tenant,
            &id,
            Value::Object(doc),
            &[],
            Some(&cached.etag),
        )
        .await?;
    Ok(Json((*cached.view).clone()))
}

pub async fn list_mappings(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cached = found(&state, EntityKind::MappingSet, &tenant, &id)?;
    Ok(Json(
        cached
            .view
            .get("mappings")
            .cloned()
            .unwrap_or_else(|| json!([])),
    ))
}

pub async fn get_mapping(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path((id, mapping_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let cached = found(&state, EntityKind::MappingSet, &tenant, &id)?;
    cached
        .view
        .get("mappings")
        .and_then(Value::as_array)
        .and_then(|mappings| {
            mappings
                .iter()
                .find(|m| m.get("id").and_then(Value::as_str) == Some(mapping_id.as_str()))
        })
        .map(|mapping| Json(mapping.clone()))
        .ok_or_else(|| ApiError::not_found("mappings", &mapping_id))
}

/// `POST /languages/el/validate`: `true` when the expression parses (and, with `sampleData`,
/// evaluates against it); a syntax or evaluation error is a 400 naming the position.
pub async fn validate_expression(JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let Some(map) = body.as_object() else {
        return Err(ApiError::field(
            1455,
            "",
            "expected {expression, sampleData?}",
        ));
    };
    for key in map.keys() {
        if !["expression", "mappingSetId", "sampleData", "sampleDataType"].contains(&key.as_str()) {
            return Err(ApiError::field(
                1455,
                &format!("/{key}"),
                format!("unknown field {key:?}"),
            ));
        }
    }
    let Some(expression) = map.get("expression").and_then(Value::as_str) else {
        return Err(ApiError::field(
            1455,
            "/expression",
            "missing required field expression: expected a string",
        ));
    };
    let parsed = tributary_transform::expr::parse(expression).map_err(|err| {
        ApiError::field(
            1455,
            "/expression",
            format!(
                "at position {}: {}",
                err.span.column(expression),
                err.message
            ),
        )
    })?;
    let sample = match map.get("sampleData") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => Some(serde_json::from_str::<Value>(text).map_err(|err| {
            ApiError::field(
                1455,
                "/sampleData",
                format!("expected a JSON object: {err}"),
            )
        })?),
        Some(other) => Some(other.clone()),
    };
    if let Some(sample) = sample {
        if !sample.is_object() {
            return Err(ApiError::field(
                1455,
                "/sampleData",
                "expected a JSON object (a record)",
            ));
        }
        let row = ExprValue::from_json(&sample);
        let mut eval_state = EvalState::new(chrono::Utc::now());
        tributary_transform::expr::eval(&parsed, &row, &mut eval_state).map_err(|err| {
            ApiError::field(
                1455,
                "/expression",
                format!(
                    "evaluating against sampleData at position {}: {}",
                    err.span.column(expression),
                    err.message
                ),
            )
        })?;
    }
    Ok(Json(Value::Bool(true)))
}

/// `GET /languages/el/functions`: the function library of the mapping engine.
pub async fn list_functions() -> Json<Value> {
    let functions: Vec<Value> = Function::all()
        .map(|function| {
            let (min, max) = function.arity();
            json!({
                "name": function.name(),
                "minArguments": min,
                "maxArguments": max,
                "returnType": format!("{:?}", function.return_kind()).to_ascii_lowercase(),
            })
        })
        .collect();
    Json(Value::Array(functions))
}

/// The operators of the expression language, loosest first (as its parser has them).
pub const OPERATORS: &[(&str, &[&str], &str, &str)] = &[
    (
        "?:",
        &[],
        "conditional",
        "c ? a : b, or a ?: b (a when truthy, else b)",
    ),
    ("||", &["or"], "logical", "logical or, short-circuit"),
    ("&&", &["and"], "logical", "logical and, short-circuit"),
    ("==", &["eq"], "equality", "equal"),
    ("!=", &["ne"], "equality", "not equal"),
    ("=~", &[], "equality", "matches a regular expression"),
    ("!~", &[], "equality", "does not match a regular expression"),
    ("<", &["lt"], "relational", "less than"),
    (">", &["gt"], "relational", "greater than"),
    ("<=", &["le"], "relational", "less than or equal"),
    (">=", &["ge"], "relational", "greater than or equal"),
    (
        "+",
        &[],
        "additive",
        "addition, or concatenation when either side is text",
    ),
    ("-", &[], "additive", "subtraction"),
    ("*", &[], "multiplicative", "multiplication"),
    (
        "/",
        &["div"],
        "multiplicative",
        "division (integer division of integers truncates)",
    ),
    ("%", &["mod"], "multiplicative", "remainder"),
    ("!", &["not"], "unary", "logical not"),
];

pub async fn list_operators() -> Json<Value> {
    let operators: Vec<Value> = OPERATORS
        .iter()
        .map(|(symbol, aliases, group, description)| json!({"operator": symbol, "aliases": aliases, "group": group, "description": description}))
        .collect();
    Json(Value::Array(operators))
}
