//! Flow Service entities other than flows and runs: connection specs, flow specs, base, source
//! and target connections — create, get, list, put / patch, delete, search and actions.
//!
//! Every body is validated as `tributary spec validate` validates the same document
//! (`tributary_spec::validate_value`), then against what it refers to (a base connection's
//! params against the chosen authSpec, a source connection's against `sourceSpec.spec`), and
//! every problem comes back with its JSON pointer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tributary_spec::{DocumentKind, SpecError};
use tributary_state::{EntityKind, JsonPointer};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::flows;
use crate::http::{
    JsonBody, OptionalJsonBody, Query, Tenant, if_match, quoted_etag, required_if_match,
};
use crate::listing::ListQuery;
use crate::patch;
use crate::store::{self, Cached, SERVER_FIELDS, TARGET_SPEC_ID, Writer, audit_fields};

const SPEC_FIELDS: &[&str] = &[
    "name",
    "type",
    "description",
    "providerId",
    "version",
    "attributes",
    "permissionsInfo",
    "authSpec",
    "sourceSpec",
    "exploreSpec",
    "encryptionSpecs",
    "targetSpec",
    "entitlementInfo",
    "policy",
    "settings",
];
const FLOW_SPEC_FIELDS: &[&str] = &[
    "name",
    "description",
    "providerId",
    "version",
    "sourceConnectionSpecIds",
    "targetConnectionSpecIds",
    "transformationSpecs",
    "transformationSpec",
    "scheduleSpec",
    "optionSpec",
    "attributes",
    "permissionsInfo",
    "items",
    "runSpec",
    "uiAttributes",
];
const CONNECTION_FIELDS: &[&str] = &["name", "description", "auth", "connectionSpec", "state"];
const SOURCE_FIELDS: &[&str] = &[
    "name",
    "description",
    "baseConnectionId",
    "connectionSpec",
    "data",
    "params",
    "state",
    "providerRefId",
    "inheritedAttributes",
];
const TARGET_FIELDS: &[&str] = &[
    "name",
    "description",
    "connectionSpec",
    "data",
    "params",
    "state",
];

/// The collection name of a kind, as in paths and error bodies.
pub fn collection(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::ConnectionSpec => "connectionSpecs",
        EntityKind::FlowSpec => "flowSpecs",
        EntityKind::Connection => "connections",
        EntityKind::SourceConnection => "sourceConnections",
        EntityKind::TargetConnection => "targetConnections",
        EntityKind::MappingSet => "mappingSets",
        EntityKind::Flow => "flows",
    }
}

/// The body as an object without server fields; unknown top-level fields are refused.
pub fn body_object(
    kind: EntityKind,
    body: Value,
    allowed: &[&str],
) -> ApiResult<Map<String, Value>> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::field(
            1455,
            "",
            format!("expected a {} object", kind.as_str()),
        ));
    };
    let keeps_version = !store::version_is_etag(kind);
    for field in SERVER_FIELDS {
        if field == "version" && keeps_version {
            continue;
        }
        map.shift_remove(field);
    }
    for key in [
        "inheritedAttributes",
        "lastRunDetails",
        "lastOperation",
        "runs",
    ] {
        if !allowed.contains(&key) {
            map.shift_remove(key);
        }
    }
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::field(
                1455,
                &format!("/{}", key.replace('~', "~0").replace('/', "~1")),
                format!(
                    "unknown field {key:?}; expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(map)
}

/// Validates a document as `spec validate` does; 400 with every error.
pub fn validate(kind: DocumentKind, what: &str, doc: &Value) -> ApiResult<()> {
    let diagnostics = tributary_spec::validate_value("request body", kind, doc);
    if diagnostics.has_errors() {
        return Err(ApiError::invalid(1455, what, &diagnostics));
    }
    Ok(())
}

fn spec_error(err: SpecError, what: &str) -> ApiError {
    match err {
        SpecError::Invalid { diagnostics, .. } => {
            let is_auth_spec = diagnostics.iter().any(|diag| {
                diag.pointer == "/auth/specName" && diag.message.contains("could not be found")
            });
            ApiError::invalid(if is_auth_spec { 1415 } else { 1455 }, what, &diagnostics)
        }
        other => ApiError::bad_request(1455, format!("{what} is not valid: {other}")),
    }
}

/// `{id, etag}` (201 on create).
fn id_and_etag(
    status: StatusCode,
    id: &str,
    cached: &Cached,
    location: Option<String>,
) -> Response {
    let mut response = (
        status,
        Json(json!({"id": id, "etag": quoted_etag(&cached.etag)})),
    )
        .into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

fn full(status: StatusCode, cached: &Cached, location: Option<String>) -> Response {
    let mut response = (status, Json((*cached.view).clone())).into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

fn location(kind: EntityKind, id: &str) -> Option<String> {
    Some(format!(
        "/data/foundation/flowservice/{}/{id}",
        collection(kind)
    ))
}

pub fn items(cached: &Cached) -> Json<Value> {
    Json(json!({"items": [(*cached.view).clone()]}))
}

pub fn found(state: &ApiState, kind: EntityKind, tenant: &Tenant, id: &str) -> ApiResult<Cached> {
    state
        .store()
        .get(kind, tenant, id)
        .ok_or_else(|| ApiError::not_found(collection(kind), id))
}

/// `GET /{collection}`: filters, order, paging, count.
pub fn list(
    state: &ApiState,
    kind: EntityKind,
    tenant: &Tenant,
    query: &Query,
) -> ApiResult<Json<Value>> {
    let list = ListQuery::parse(query)?;
    let path = format!("/{}", collection(kind));
    Ok(Json(
        state
            .store()
            .read_list(kind, tenant, |docs| list.respond(docs, &path)),
    ))
}

fn ref_id(doc: &Map<String, Value>, field: &str) -> Option<String> {
    doc.get(field)
        .and_then(|reference| reference.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Refuses `${env:NAME}` in values sent over HTTP: it would read the server's environment.
fn refuse_env_references(value: &Value, pointer: &str) -> ApiResult<()> {
    match value {
        Value::String(text) if text.contains("${env:") => Err(ApiError::field(
            1455,
            pointer,
            "${env:NAME} references are only allowed in flow bundle files, not over the API",
        )),
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                refuse_env_references(item, &format!("{pointer}/{idx}"))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, item) in map {
                refuse_env_references(item, &format!("{pointer}/{key}"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

// ---- connection specs ----------------------------------------------------------------------

pub async fn list_connection_specs(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    list(&state, EntityKind::ConnectionSpec, &tenant, &query)
}

pub async fn get_connection_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(items(&found(
        &state,
        EntityKind::ConnectionSpec,
        &tenant,
        &id,
    )?))
}

pub async fn create_connection_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut doc = body_object(EntityKind::ConnectionSpec, body, SPEC_FIELDS)?;
    validate(
        DocumentKind::ConnectionSpec,
        "the connection spec",
        &Value::Object(doc.clone()),
    )?;
    audit_fields(&mut doc, Writer::Api, true);
    let id = uuid::Uuid::new_v4().to_string();
    let _guard = state.store().write_lock().await;
    let cached = state
        .store()
        .put(
            EntityKind::ConnectionSpec,
            &tenant,
            &id,
            Value::Object(doc),
            &[],
            None,
        )
        .await?;
    Ok(full(
        StatusCode::CREATED,
        &cached,
        location(EntityKind::ConnectionSpec, &id),
    ))
}

pub async fn put_connection_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    put_spec(
        &state,
        &tenant,
        EntityKind::ConnectionSpec,
        &id,
        &headers,
        &query,
        body,
    )
    .await
}

async fn put_spec(
    state: &ApiState,
    tenant: &Tenant,
    kind: EntityKind,
    id: &str,
    headers: &HeaderMap,
    query: &Query,
    body: Value,
) -> ApiResult<Response> {
    let (fields, doc_kind, what) = match kind {
        EntityKind::ConnectionSpec => (
            SPEC_FIELDS,
            DocumentKind::ConnectionSpec,
            "the connection spec",
        ),
        _ => (FLOW_SPEC_FIELDS, DocumentKind::FlowSpec, "the flow spec"),
    };
    let mut doc = body_object(kind, body, fields)?;
    validate(doc_kind, what, &Value::Object(doc.clone()))?;
    let _guard = state.store().write_lock().await;
    let current = found(state, kind, tenant, id)?;
    let expected = match if_match(headers, query) {
        Some(etag) if !current.is_builtin => Some(crate::http::bare_etag(&etag).to_owned()),
        Some(etag) if crate::http::bare_etag(&etag) != current.etag => {
            return Err(ApiError::flow(
                StatusCode::PRECONDITION_FAILED,
                1404,
                "Precondition failed",
                format!("the supplied version does not match the current version of {kind} {id}"),
            ));
        }
        _ => None,
    };
    if let Some(created_by) = current.view.get("createdBy") {
        doc.insert("createdBy".to_owned(), created_by.clone());
    }
    audit_fields(&mut doc, Writer::Api, false);
    flows::check_dependents(state, tenant, kind, id, &Value::Object(doc.clone()))?;
    let cached = state
        .store()
        .put(
            kind,
            tenant,
            id,
            Value::Object(doc),
            &[],
            expected.as_deref(),
        )
        .await?;
    flows::resync_dependents(state, tenant, kind, id);
    Ok(full(StatusCode::OK, &cached, None))
}

/// `GET /connectionSpecs/{id}/explore`: what can be explored through a connection of this spec.
pub async fn explore_connection_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cached = found(&state, EntityKind::ConnectionSpec, &tenant, &id)?;
    Ok(Json(Value::Array(crate::explore::spec_objects(
        &cached.view,
    ))))
}

/// `GET /connectionSpecs/{id}/configs`: the inputs a connection of this spec takes.
pub async fn configs_connection_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cached = found(&state, EntityKind::ConnectionSpec, &tenant, &id)?;
    Ok(Json(Value::Array(crate::explore::spec_configs(
        &cached.view,
        None,
    ))))
}

// ---- flow specs ----------------------------------------------------------------------------

pub async fn list_flow_specs(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    list(&state, EntityKind::FlowSpec, &tenant, &query)
}

pub async fn get_flow_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(items(&found(&state, EntityKind::FlowSpec, &tenant, &id)?))
}

pub async fn create_flow_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut doc = body_object(EntityKind::FlowSpec, body, FLOW_SPEC_FIELDS)?;
    validate(
        DocumentKind::FlowSpec,
        "the flow spec",
        &Value::Object(doc.clone()),
    )?;
    audit_fields(&mut doc, Writer::Api, true);
    let id = uuid::Uuid::new_v4().to_string();
    let _guard = state.store().write_lock().await;
    let cached = state
        .store()
        .put(
            EntityKind::FlowSpec,
            &tenant,
            &id,
            Value::Object(doc),
            &[],
            None,
        )
        .await?;
    Ok(full(
        StatusCode::CREATED,
        &cached,
        location(EntityKind::FlowSpec, &id),
    ))
}

pub async fn put_flow_spec(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    put_spec(
        &state,
        &tenant,
        EntityKind::FlowSpec,
        &id,
        &headers,
        &query,
        body,
    )
    .await
}

// ---- search --------------------------------------------------------------------------------

/// `POST /{collection}/search` with `{queryString, limit, orderby, count}`. `queryString` is
/// our filter syntax: `property` expressions joined by `&` (as repeated `property` parameters),
/// or an array of them.
fn search(
    state: &ApiState,
    kind: EntityKind,
    tenant: &Tenant,
    query: &Query,
    body: &Value,
) -> ApiResult<Json<Value>> {
    let Some(map) = body.as_object() else {
        return Err(ApiError::field(
            1455,
            "",
            "expected a search object {queryString, limit, orderby, count}",
        ));
    };
    for key in map.keys() {
        if ![
            "queryString",
            "limit",
            "orderby",
            "count",
            "groupByProperty",
            "projectionFields",
            "continuationToken",
        ]
        .contains(&key.as_str())
        {
            return Err(ApiError::field(
                1455,
                &format!("/{key}"),
                format!("unknown field {key:?}"),
            ));
        }
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    match map.get("queryString") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            for part in text.split('&').map(str::trim).filter(|p| !p.is_empty()) {
                pairs.push(("property".to_owned(), part.to_owned()));
            }
        }
        Some(Value::Array(parts)) => {
            for (idx, part) in parts.iter().enumerate() {
                let Some(text) = part.as_str() else {
                    return Err(ApiError::field(
                        1455,
                        &format!("/queryString/{idx}"),
                        "expected a filter string",
                    ));
                };
                pairs.push(("property".to_owned(), text.to_owned()));
            }
        }
        Some(_) => {
            return Err(ApiError::field(
                1455,
                "/queryString",
                "expected a string of filters joined by &",
            ));
        }
    }
    if let Some(limit) = map.get("limit") {
        match limit.as_u64() {
            Some(limit) if (1..=1000).contains(&limit) => {
                pairs.push(("limit".to_owned(), limit.to_string()))
            }
            _ => {
                return Err(ApiError::field(
                    1452,
                    "/limit",
                    "expected an integer from 1 to 1000",
                ));
            }
        }
    }
    match map.get("orderby") {
        None | Some(Value::Null) => {}
        Some(Value::String(order)) => pairs.push(("orderby".to_owned(), order.clone())),
        Some(_) => {
            return Err(ApiError::field(
                1432,
                "/orderby",
                "expected a field, +field or -field",
            ));
        }
    }
    match map.get("count") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => pairs.push(("count".to_owned(), "true".to_owned())),
        Some(_) => return Err(ApiError::field(1454, "/count", "expected true or false")),
    }
    if let Some(token) = query.get("continuationToken") {
        pairs.push(("continuationToken".to_owned(), token.to_owned()));
    }
    if let Some(fields) = map.get("projectionFields").and_then(Value::as_array) {
        let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() {
            pairs.push(("property".to_owned(), names.join(",")));
        }
    }
    let query = Query { pairs };
    if kind == EntityKind::Flow {
        return flows::list_flows_query(state, tenant, &query);
    }
    list(state, kind, tenant, &query)
}

pub async fn search_connections(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    search(&state, EntityKind::Connection, &tenant, &query, &body)
}

pub async fn search_flows(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    search(&state, EntityKind::Flow, &tenant, &query, &body)
}

pub async fn search_flow_specs(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    search(&state, EntityKind::FlowSpec, &tenant, &query, &body)
}

// ---- base connections ----------------------------------------------------------------------

pub async fn list_connections(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    list(&state, EntityKind::Connection, &tenant, &query)
}

pub async fn get_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(items(&found(&state, EntityKind::Connection, &tenant, &id)?))
}

/// Checks a base connection document against its spec; returns the secret pointers.
pub fn check_base_connection(
    state: &ApiState,
    tenant: &Tenant,
    doc: &Map<String, Value>,
) -> ApiResult<Vec<JsonPointer>> {
    let value = Value::Object(doc.clone());
    validate(DocumentKind::BaseConnection, "the base connection", &value)?;
    let Some(spec_id) = ref_id(doc, "connectionSpec") else {
        return Err(ApiError::field(
            1413,
            "/connectionSpec/id",
            "missing required field connectionSpec.id: the id of the connection spec",
        ));
    };
    let Some(spec_doc) = state
        .store()
        .clear(EntityKind::ConnectionSpec, tenant, &spec_id)?
    else {
        return Err(ApiError::field(
            1413,
            "/connectionSpec/id",
            format!("no connection spec with id {spec_id:?} in this org and sandbox"),
        ));
    };
    if let Some(params) = doc.get("auth").and_then(|auth| auth.get("params")) {
        refuse_env_references(params, "/auth/params")?;
    }
    let mut secret_fields: Vec<String> = tributary_spec::secrets::WELL_KNOWN_SECRET_FIELDS
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    match tributary_spec::connection_spec_from_value("connection spec", &spec_doc) {
        Ok(spec) => {
            let (base, auth_spec) =
                tributary_spec::base_connection_for_spec("request body", &value, &spec)
                    .map_err(|err| spec_error(err, "the base connection"))?;
            secret_fields.extend(base.secret_fields);
            secret_fields.extend(auth_spec.secret_fields);
        }
        // A generic REST template (shape b) is checked with its source connection, in the flow.
        Err(_) => {}
    }
    let mut pointers = Vec::new();
    if let Some(params) = doc
        .get("auth")
        .and_then(|auth| auth.get("params"))
        .and_then(Value::as_object)
    {
        for name in params.keys() {
            if secret_fields.iter().any(|field| field == name)
                || tributary_spec::secrets::looks_secret(name)
            {
                pointers.push(JsonPointer::parse(&format!(
                    "/auth/params/{}",
                    name.replace('~', "~0").replace('/', "~1")
                ))?);
            }
        }
    }
    Ok(pointers)
}

pub async fn create_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut doc = body_object(EntityKind::Connection, body, CONNECTION_FIELDS)?;
    doc.shift_remove("state");
    let secrets = check_base_connection(&state, &tenant, &doc)?;
    doc.insert("state".to_owned(), Value::String("enabled".to_owned()));
    audit_fields(&mut doc, Writer::Api, true);
    let id = uuid::Uuid::new_v4().to_string();
    let _guard = state.store().write_lock().await;
    let cached = state
        .store()
        .put(
            EntityKind::Connection,
            &tenant,
            &id,
            Value::Object(doc),
            &secrets,
            None,
        )
        .await?;
    Ok(id_and_etag(
        StatusCode::CREATED,
        &id,
        &cached,
        location(EntityKind::Connection, &id),
    ))
}

/// Applies a PATCH to a connection-like entity: If-Match, the ops on the stored document
/// (secrets in clear; a `"***"` sent back for a secret keeps the stored value), the same
/// checks as on create, the flows that use it still valid, then one conditional write.
async fn patch_entity(
    state: &ApiState,
    tenant: &Tenant,
    kind: EntityKind,
    id: &str,
    headers: &HeaderMap,
    query: &Query,
    body: &Value,
) -> ApiResult<Cached> {
    let expected = required_if_match(headers, query)?;
    let ops = patch::parse(body)?;
    for op in &ops {
        if op.path.starts_with("/connectionSpec") {
            return Err(ApiError::bad_request(
                1414,
                "the connection spec of a connection cannot be updated",
            ));
        }
        if op.path == "/state" || op.path.starts_with("/state/") {
            return Err(ApiError::field(
                1455,
                &op.path,
                "state is changed with the action endpoint (op=enable or op=disable)",
            ));
        }
        let fixed = [
            "/id",
            "/createdAt",
            "/updatedAt",
            "/createdBy",
            "/imsOrgId",
            "/sandboxName",
            "/sandboxId",
            "/etag",
            "/version",
            "/inheritedAttributes",
        ];
        if fixed
            .iter()
            .any(|f| op.path == *f || op.path.starts_with(&format!("{f}/")))
        {
            return Err(ApiError::field(
                1455,
                &op.path,
                "server fields cannot be patched",
            ));
        }
    }
    let _guard = state.store().write_lock().await;
    found(state, kind, tenant, id)?;
    let Some(current) = state.store().clear(kind, tenant, id)? else {
        return Err(ApiError::not_found(collection(kind), id));
    };
    let patched = patch::apply(&current, &ops)?;
    let patched = keep_redacted_secrets(&current, patched);
    let (allowed, kind_fields) = match kind {
        EntityKind::Connection => (CONNECTION_FIELDS, "connection"),
        EntityKind::SourceConnection => (SOURCE_FIELDS, "source connection"),
        _ => (TARGET_FIELDS, "target connection"),
    };
    let mut doc = body_object(
        kind,
        patched,
        &[
            allowed,
            &[
                "createdBy",
                "createdClient",
                "updatedBy",
                "updatedClient",
                "lastOperation",
            ],
        ]
        .concat(),
    )?;
    let secrets = match kind {
        EntityKind::Connection => check_base_connection(state, tenant, &doc)?,
        EntityKind::SourceConnection => check_source_connection(state, tenant, &mut doc)?,
        _ => {
            check_target_connection(&doc)?;
            Vec::new()
        }
    };
    let _ = kind_fields;
    audit_fields(&mut doc, Writer::Api, false);
    let doc = Value::Object(doc);
    flows::check_dependents(state, tenant, kind, id, &doc)?;
    let cached = state
        .store()
        .put(
            kind,
            tenant,
            id,
            doc,
            &secrets,
            Some(crate::http::bare_etag(&expected)),
        )
        .await?;
    flows::resync_dependents(state, tenant, kind, id);
    Ok(cached)
}

/// A PATCH that copies a redacted document back sends `"***"` for the secrets: keep those.
fn keep_redacted_secrets(current: &Value, mut patched: Value) -> Value {
    fn walk(current: &Value, patched: &mut Value) {
        match (current, patched) {
            (Value::Object(old), Value::Object(new)) => {
                for (key, value) in new.iter_mut() {
                    if let Some(old_value) = old.get(key) {
                        if value == tributary_state::REDACTED {
                            *value = old_value.clone();
                        } else {
                            walk(old_value, value);
                        }
                    }
                }
            }
            (Value::Array(old), Value::Array(new)) => {
                for (old_value, value) in old.iter().zip(new.iter_mut()) {
                    walk(old_value, value);
                }
            }
            _ => {}
        }
    }
    walk(current, &mut patched);
    patched
}

pub async fn patch_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let cached = patch_entity(
        &state,
        &tenant,
        EntityKind::Connection,
        &id,
        &headers,
        &query,
        &body,
    )
    .await?;
    Ok(id_and_etag(StatusCode::OK, &id, &cached, None))
}

async fn delete_entity(
    state: &ApiState,
    tenant: &Tenant,
    kind: EntityKind,
    id: &str,
) -> ApiResult<StatusCode> {
    let _guard = state.store().write_lock().await;
    found(state, kind, tenant, id)?;
    if let Some(flow_id) = flows::flow_using(state, tenant, kind, id) {
        return Err(ApiError::bad_request(
            1418,
            format!(
                "{} {id} is used by flow {flow_id} and cannot be deleted; delete the flow first",
                kind.as_str()
            ),
        )
        .with_report("id", Value::String(id.to_owned())));
    }
    state.store().delete(kind, tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_entity(&state, &tenant, EntityKind::Connection, &id).await
}

/// `POST /{collection}/{id}/action?op=…`: FINALIZE_UPDATE, FINALIZE and PUBLISH are recorded as
/// the entity's `lastOperation` (provider-side life cycle steps that change nothing we run).
async fn record_action(
    state: &ApiState,
    tenant: &Tenant,
    kind: EntityKind,
    id: &str,
    query: &Query,
    allowed: &[&str],
) -> ApiResult<Cached> {
    let op = normalized_op(query)?;
    if !allowed.contains(&op.as_str()) {
        return Err(ApiError::bad_request(
            1455,
            format!(
                "op {op:?} is not an action of {}; expected one of {}",
                collection(kind),
                allowed.join(", ")
            ),
        ));
    }
    let sub_op = query
        .get("subOp")
        .map(|s| s.to_ascii_uppercase().replace('-', "_"));
    if let Some(sub_op) = &sub_op
        && !["APPLY", "ROLLBACK", "PROGRESS"].contains(&sub_op.as_str())
    {
        return Err(ApiError::bad_request(
            1455,
            format!("subOp {sub_op:?}: expected APPLY, ROLLBACK or PROGRESS"),
        ));
    }
    let _guard = state.store().write_lock().await;
    let current = found(state, kind, tenant, id)?;
    let Some(Value::Object(mut doc)) = state.store().clear(kind, tenant, id)? else {
        return Err(ApiError::not_found(collection(kind), id));
    };
    let now = chrono::Utc::now().timestamp_millis();
    doc.insert("lastOperation".to_owned(), json!({
        "started": now, "updated": now, "operation": op.to_ascii_lowercase(),
        "subOp": sub_op, "percentCompleted": 100, "status": {"value": "COMPLETED", "errors": []},
    }));
    let secrets = match kind {
        EntityKind::Connection => check_base_connection(state, tenant, &doc)?,
        EntityKind::SourceConnection => source_secrets(&doc),
        _ => Vec::new(),
    };
    let expected = current.etag.clone();
    state
        .store()
        .put(
            kind,
            tenant,
            id,
            Value::Object(doc),
            &secrets,
            Some(&expected),
        )
        .await
}

/// `op` upper-cased, `-` as `_` (`re-trigger` → `RE_TRIGGER`).
pub fn normalized_op(query: &Query) -> ApiResult<String> {
    match query.get("op") {
        Some(op) if !op.trim().is_empty() => Ok(op.trim().to_ascii_uppercase().replace('-', "_")),
        _ => Err(ApiError::bad_request(
            1455,
            "missing required query parameter op",
        )),
    }
}

pub async fn connection_action(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Query,
    OptionalJsonBody(_body): OptionalJsonBody,
) -> ApiResult<Response> {
    let cached = record_action(
        &state,
        &tenant,
        EntityKind::Connection,
        &id,
        &query,
        &["FINALIZE_UPDATE", "FINALIZE", "PUBLISH"],
    )
    .await?;
    Ok(id_and_etag(StatusCode::OK, &id, &cached, None))
}

pub async fn connection_configs(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let connection = found(&state, EntityKind::Connection, &tenant, &id)?;
    let spec_id = connection
        .view
        .get("connectionSpec")
        .and_then(|s| s.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let spec = found(&state, EntityKind::ConnectionSpec, &tenant, &spec_id)?;
    Ok(Json(Value::Array(crate::explore::spec_configs(
        &spec.view,
        Some(&connection.view),
    ))))
}

// ---- source connections --------------------------------------------------------------------

fn source_secrets(doc: &Map<String, Value>) -> Vec<JsonPointer> {
    // Names are escaped above, so every pointer parses.
    let mut pointers = Vec::new();
    if let Some(params) = doc.get("params").and_then(Value::as_object) {
        for name in params.keys() {
            if tributary_spec::secrets::looks_secret(name) {
                if let Ok(pointer) = JsonPointer::parse(&format!(
                    "/params/{}",
                    name.replace('~', "~0").replace('/', "~1")
                )) {
                    pointers.push(pointer);
                }
            }
        }
    }
    pointers
}

/// Checks a source connection: its base connection, spec and params; fills
/// `inheritedAttributes`. Returns the secret pointers.
fn check_source_connection(
    state: &ApiState,
    tenant: &Tenant,
    doc: &mut Map<String, Value>,
) -> ApiResult<Vec<JsonPointer>> {
    let value = Value::Object(doc.clone());
    validate(
        DocumentKind::SourceConnection,
        "the source connection",
        &value,
    )?;
    let Some(base_id) = doc
        .get("baseConnectionId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(ApiError::field(
            1455,
            "/baseConnectionId",
            "missing required field baseConnectionId: the id of the base connection",
        ));
    };
    let Some(base) = state.store().get(EntityKind::Connection, tenant, &base_id) else {
        return Err(ApiError::field(
            1455,
            "/baseConnectionId",
            format!("no base connection with id {base_id:?} in this org and sandbox"),
        ));
    };
    let base_spec = base
        .view
        .get("connectionSpec")
        .cloned()
        .unwrap_or(Value::Null);
    let base_spec_id = base_spec
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match ref_id(doc, "connectionSpec") {
        Some(spec_id) if spec_id != base_spec_id => {
            return Err(ApiError::field(
                1413,
                "/connectionSpec/id",
                format!(
                    "the source connection's connection spec {spec_id:?} differs from its base connection's {base_spec_id:?}"
                ),
            ));
        }
        Some(_) => {}
        None => {
            doc.insert("connectionSpec".to_owned(), base_spec.clone());
        }
    }
    if let Some(params) = doc.get("params") {
        refuse_env_references(params, "/params")?;
    }
    if let Some(spec_doc) =
        state
            .store()
            .clear(EntityKind::ConnectionSpec, tenant, &base_spec_id)?
        && let Ok(spec) = tributary_spec::connection_spec_from_value("connection spec", &spec_doc)
    {
        tributary_spec::source_connection_for_spec(
            "request body",
            &Value::Object(doc.clone()),
            &spec,
        )
        .map_err(|err| spec_error(err, "the source connection"))?;
    }
    doc.insert(
        "inheritedAttributes".to_owned(),
        json!({"baseConnection": {"id": base_id, "connectionSpec": base_spec}}),
    );
    Ok(source_secrets(doc))
}

fn check_target_connection(doc: &Map<String, Value>) -> ApiResult<()> {
    let value = Value::Object(doc.clone());
    validate(
        DocumentKind::TargetConnection,
        "the target connection",
        &value,
    )?;
    match ref_id(doc, "connectionSpec") {
        Some(id) if id == TARGET_SPEC_ID => {}
        Some(id) => {
            return Err(ApiError::field(
                1413,
                "/connectionSpec/id",
                format!(
                    "unknown target connection spec {id:?}; expected {TARGET_SPEC_ID} (Data Lake)"
                ),
            ));
        }
        None => {
            return Err(ApiError::field(
                1413,
                "/connectionSpec/id",
                format!(
                    "missing required field connectionSpec.id: expected {TARGET_SPEC_ID} (Data Lake)"
                ),
            ));
        }
    }
    let dataset = doc
        .get("params")
        .and_then(|p| p.get("dataSetId"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_safe = !dataset.is_empty()
        && dataset.len() <= 200
        && !dataset.starts_with('.')
        && dataset
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !is_safe {
        return Err(ApiError::field(
            1455,
            "/params/dataSetId",
            "expected a dataset id of letters, digits, '-', '_' and '.', not starting with '.'",
        ));
    }
    Ok(())
}

pub async fn list_source_connections(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    list(&state, EntityKind::SourceConnection, &tenant, &query)
}

pub async fn get_source_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(items(&found(
        &state,
        EntityKind::SourceConnection,
        &tenant,
        &id,
    )?))
}

pub async fn create_source_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut doc = body_object(EntityKind::SourceConnection, body, SOURCE_FIELDS)?;
    doc.shift_remove("state");
    doc.shift_remove("inheritedAttributes");
    let _guard = state.store().write_lock().await;
    let secrets = check_source_connection(&state, &tenant, &mut doc)?;
    doc.insert("state".to_owned(), Value::String("enabled".to_owned()));
    audit_fields(&mut doc, Writer::Api, true);
    let id = uuid::Uuid::new_v4().to_string();
    let cached = state
        .store()
        .put(
            EntityKind::SourceConnection,
            &tenant,
            &id,
            Value::Object(doc),
            &secrets,
            None,
        )
        .await?;
    Ok(id_and_etag(
        StatusCode::CREATED,
        &id,
        &cached,
        location(EntityKind::SourceConnection, &id),
    ))
}

/// PATCH of a source or target connection answers `{id, etag}` (the docs) and `items` (the
/// OpenAPI document's list DTO) at once.
fn patched_both(id: &str, cached: &Cached) -> Response {
    Json(json!({"id": id, "etag": quoted_etag(&cached.etag), "items": [(*cached.view).clone()]}))
        .into_response()
}

pub async fn patch_source_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let cached = patch_entity(
        &state,
        &tenant,
        EntityKind::SourceConnection,
        &id,
        &headers,
        &query,
        &body,
    )
    .await?;
    Ok(patched_both(&id, &cached))
}

pub async fn delete_source_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_entity(&state, &tenant, EntityKind::SourceConnection, &id).await
}

pub async fn source_connection_action(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Query,
    OptionalJsonBody(_body): OptionalJsonBody,
) -> ApiResult<Response> {
    let cached = record_action(
        &state,
        &tenant,
        EntityKind::SourceConnection,
        &id,
        &query,
        &["PUBLISH"],
    )
    .await?;
    Ok(id_and_etag(StatusCode::OK, &id, &cached, None))
}

// ---- target connections --------------------------------------------------------------------

pub async fn list_target_connections(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    list(&state, EntityKind::TargetConnection, &tenant, &query)
}

pub async fn get_target_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(items(&found(
        &state,
        EntityKind::TargetConnection,
        &tenant,
        &id,
    )?))
}

pub async fn create_target_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut doc = body_object(EntityKind::TargetConnection, body, TARGET_FIELDS)?;
    doc.shift_remove("state");
    check_target_connection(&doc)?;
    doc.insert("state".to_owned(), Value::String("enabled".to_owned()));
    audit_fields(&mut doc, Writer::Api, true);
    let id = uuid::Uuid::new_v4().to_string();
    let _guard = state.store().write_lock().await;
    let cached = state
        .store()
        .put(
            EntityKind::TargetConnection,
            &tenant,
            &id,
            Value::Object(doc),
            &[],
            None,
        )
        .await?;
    Ok(id_and_etag(
        StatusCode::CREATED,
        &id,
        &cached,
        location(EntityKind::TargetConnection, &id),
    ))
}

pub async fn patch_target_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let cached = patch_entity(
        &state,
        &tenant,
        EntityKind::TargetConnection,
        &id,
        &headers,
        &query,
        &body,
    )
    .await?;
    Ok(patched_both(&id, &cached))
}

pub async fn delete_target_connection(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_entity(&state, &tenant, EntityKind::TargetConnection, &id).await
}

pub async fn target_connection_action(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Query,
    OptionalJsonBody(_body): OptionalJsonBody,
) -> ApiResult<Response> {
    let cached = record_action(
        &state,
        &tenant,
        EntityKind::TargetConnection,
        &id,
        &query,
        &["PUBLISH"],
    )
    .await?;
    Ok(id_and_etag(StatusCode::OK, &id, &cached, None))
}
