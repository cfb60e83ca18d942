//! Flows: create, get, list, patch, delete, enable / disable. The one path from entities to a
//! runnable flow is `assemble`.
//!
//! A flow's entities (flow, flow spec, source, base and target connections, connection spec,
//! mapping set) are assembled into the JSON of a flow bundle and loaded with
//! `tributary_spec::load_bundle`, exactly as a bundle file is, so a flow is valid over HTTP when
//! and only when the same flow as a file is. Before that, the flow is checked against its flow
//! spec as Adobe checks it (its source connection's spec must be in `sourceConnectionSpecIds`,
//! its target's in `targetConnectionSpecIds`, its transformations among the spec's).
//!
//! The scheduler sees every change at once: a created or patched flow is upserted into the
//! [`FlowRegistry`](crate::FlowRegistry), a deleted one removed, and enable / disable flip the
//! `enabled` of the flow's schedule state, which the scheduler reads at every wake. A change to
//! an entity a flow uses (a connection's credentials, a spec) is refused when it would make the
//! flow invalid, and re-assembles the flow otherwise.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tributary_engine::daemon::DaemonFlow;
use tributary_spec::{DocumentKind, FlowBundle};
use tributary_state::{EntityKind, FlowId, FlowScheduleState};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::flowservice::{body_object, collection, found, normalized_op, validate};
use crate::http::{
    JsonBody, OptionalJsonBody, Query, Tenant, bare_etag, if_match, quoted_etag, required_if_match,
};
use crate::listing::ListQuery;
use crate::patch;
use crate::store::{Cached, FLOW_SPEC_ID, Writer, audit_fields};

mod assemble;

use assemble::{FLOW_FIELDS, client_fields, id_list, str_at};
pub use assemble::{Override, assemble};

fn daemon_flow(flow_id: &str, bundle: FlowBundle) -> ApiResult<Option<DaemonFlow>> {
    DaemonFlow::try_new(FlowId::new(flow_id), Arc::new(bundle))
        .map_err(|err| ApiError::field(1455, "/scheduleParams", err.to_string()))
}

/// Which flow of the tenant uses an entity (for refusing a delete).
pub fn flow_using(state: &ApiState, tenant: &Tenant, kind: EntityKind, id: &str) -> Option<String> {
    dependents(state, tenant, kind, id).into_iter().next()
}

/// Ids of the tenant's flows that use an entity.
fn dependents(state: &ApiState, tenant: &Tenant, kind: EntityKind, id: &str) -> Vec<String> {
    let flows = state.store().list(EntityKind::Flow, tenant);
    let mut ids = Vec::new();
    for flow in &flows {
        let uses = match kind {
            EntityKind::SourceConnection => {
                id_list(flow, "sourceConnectionIds").iter().any(|s| s == id)
            }
            EntityKind::TargetConnection => {
                id_list(flow, "targetConnectionIds").iter().any(|t| t == id)
            }
            EntityKind::Connection => flow
                .pointer("/inheritedAttributes/sourceConnections")
                .and_then(Value::as_array)
                .is_some_and(|sources| {
                    sources
                        .iter()
                        .any(|s| str_at(s, "/baseConnection/id") == Some(id))
                }),
            EntityKind::ConnectionSpec => flow
                .pointer("/inheritedAttributes/sourceConnections")
                .and_then(Value::as_array)
                .is_some_and(|sources| {
                    sources
                        .iter()
                        .any(|s| str_at(s, "/connectionSpec/id") == Some(id))
                }),
            EntityKind::FlowSpec => str_at(flow, "/flowSpec/id") == Some(id),
            EntityKind::MappingSet => flow
                .get("transformations")
                .and_then(Value::as_array)
                .is_some_and(|ts| {
                    ts.iter()
                        .any(|t| str_at(t, "/params/mappingId") == Some(id))
                }),
            EntityKind::Flow => false,
        };
        if uses && let Some(flow_id) = flow.get("id").and_then(Value::as_str) {
            ids.push(flow_id.to_owned());
        }
    }
    ids
}

/// Refuses a change of an entity that would make a flow using it invalid.
pub fn check_dependents(
    state: &ApiState,
    tenant: &Tenant,
    kind: EntityKind,
    id: &str,
    new_doc: &Value,
) -> ApiResult<()> {
    let overrides = [Override {
        kind,
        id,
        doc: new_doc,
    }];
    for flow_id in dependents(state, tenant, kind, id) {
        let Some(flow) = state.store().clear(EntityKind::Flow, tenant, &flow_id)? else {
            continue;
        };
        if let Err(err) = assemble(state, tenant, &client_fields(&flow), &overrides) {
            return Err(ApiError::bad_request(
                1455,
                format!(
                    "the change would make flow {flow_id} invalid: {}",
                    err.message
                ),
            )
            .with_report("flowId", Value::String(flow_id)));
        }
    }
    Ok(())
}

/// Re-assembles the flows that use a changed entity and hands them to the scheduler.
pub fn resync_dependents(state: &ApiState, tenant: &Tenant, kind: EntityKind, id: &str) {
    for flow_id in dependents(state, tenant, kind, id) {
        if let Err(err) = resync(state, tenant, &flow_id) {
            tracing::warn!(flow_id = %flow_id, error = %err.message, "flow could not be re-assembled after a change of an entity it uses");
        }
    }
}

fn resync(state: &ApiState, tenant: &Tenant, flow_id: &str) -> ApiResult<()> {
    let Some(flow) = state.store().clear(EntityKind::Flow, tenant, flow_id)? else {
        return Ok(());
    };
    let assembled = assemble(state, tenant, &client_fields(&flow), &[])?;
    match daemon_flow(flow_id, assembled.bundle)? {
        Some(daemon_flow) => {
            state.registry().upsert(daemon_flow);
        }
        None => {
            state.registry().remove(&FlowId::new(flow_id));
        }
    }
    Ok(())
}

/// The flow with `lastRunDetails` of its newest run.
fn with_last_run(state: &ApiState, mut view: Value) -> Value {
    let Some(id) = view.get("id").and_then(Value::as_str).map(str::to_owned) else {
        return view;
    };
    if let Ok(runs) = state.engine().db.runs_for_flow(&FlowId::new(id), 1)
        && let Some(run) = runs.first()
        && let Value::Object(map) = &mut view
    {
        map.insert("lastRunDetails".to_owned(), json!({
            "id": run.id.as_str(),
            "state": run.run_doc.pointer("/metrics/statusSummary/status").cloned().unwrap_or(Value::Null),
            "startedAtUTC": run.started_at_ms,
            "completedAtUTC": run.completed_at_ms,
        }));
    }
    view
}

pub fn list_flows_query(
    state: &ApiState,
    tenant: &Tenant,
    query: &Query,
) -> ApiResult<Json<Value>> {
    let list = ListQuery::parse(query)?;
    let needs_runs = list.mentions("lastRunDetails");
    let mut response = if needs_runs {
        // The filter or order reads lastRunDetails: every flow is decorated first.
        let docs = state.store().list(EntityKind::Flow, tenant);
        let decorated: Vec<Value> = docs
            .iter()
            .map(|doc| with_last_run(state, (**doc).clone()))
            .collect();
        list.respond(decorated.iter(), "/flows")
    } else {
        state.store().read_list(EntityKind::Flow, tenant, |docs| {
            list.respond(docs, "/flows")
        })
    };
    if !needs_runs && let Some(items) = response.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            *item = with_last_run(state, std::mem::take(item));
        }
    }
    Ok(Json(response))
}

pub async fn list_flows(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    list_flows_query(&state, &tenant, &query)
}

pub async fn get_flow(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cached = found(&state, EntityKind::Flow, &tenant, &id)?;
    Ok(Json(
        json!({"items": [with_last_run(&state, (*cached.view).clone())]}),
    ))
}

fn id_and_etag(status: StatusCode, id: &str, cached: &Cached) -> Response {
    let mut response = (
        status,
        Json(json!({"id": id, "etag": quoted_etag(&cached.etag)})),
    )
        .into_response();
    if status == StatusCode::CREATED
        && let Ok(location) =
            http::HeaderValue::from_str(&format!("/data/foundation/flowservice/flows/{id}"))
    {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

/// The stored flow: what the client sent plus the server's fields.
fn stored_flow(
    client: &Value,
    inherited: Value,
    state_word: &str,
    operation: &str,
    flow_id: &str,
    previous: Option<&Value>,
) -> Value {
    let mut doc: Map<String, Value> = client.as_object().cloned().unwrap_or_default();
    if let Some(previous) = previous {
        for field in ["createdBy", "createdClient"] {
            if let Some(value) = previous.get(field) {
                doc.insert(field.to_owned(), value.clone());
            }
        }
    }
    let now = chrono::Utc::now().timestamp_millis();
    doc.insert("state".to_owned(), Value::String(state_word.to_owned()));
    doc.insert("inheritedAttributes".to_owned(), inherited);
    doc.insert(
        "runs".to_owned(),
        Value::String(format!("/runs?property=flowId=={flow_id}")),
    );
    doc.insert(
        "lastOperation".to_owned(),
        json!({
            "started": now, "updated": now, "operation": operation, "percentCompleted": 100,
            "status": {"value": "COMPLETED", "errors": []},
        }),
    );
    audit_fields(&mut doc, Writer::Api, previous.is_none());
    Value::Object(doc)
}

/// Records whether the scheduler runs a flow, durably, on a blocking thread.
async fn set_enabled(state: &ApiState, flow_id: &str, enabled: bool) -> ApiResult<()> {
    let db = state.engine().db.clone();
    let flow_id = FlowId::new(flow_id);
    tokio::task::spawn_blocking(move || {
        let mut schedule = db.schedule_state(&flow_id)?.unwrap_or(FlowScheduleState {
            last_window_end_ms: None,
            next_due_ms: None,
            enabled,
        });
        schedule.enabled = enabled;
        db.put_schedule_state(&flow_id, &schedule)?;
        db.flush()
    })
    .await
    .map_err(|err| ApiError::internal("recording a flow's state", err))??;
    Ok(())
}

pub async fn create_flow(
    State(state): State<ApiState>,
    tenant: Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if body.get("state").is_some() {
        return Err(ApiError::field(
            1410,
            "/state",
            "state is not allowed in a create-flow request: a new flow is enabled",
        ));
    }
    let doc = body_object(EntityKind::Flow, body, FLOW_FIELDS)?;
    let client = Value::Object(doc);
    validate(DocumentKind::Flow, "the flow", &client)?;
    let _guard = state.store().write_lock().await;
    let assembled = assemble(&state, &tenant, &client, &[])?;
    let id = uuid::Uuid::new_v4().to_string();
    let daemon_flow = daemon_flow(&id, assembled.bundle)?;
    let stored = stored_flow(&client, assembled.inherited, "enabled", "create", &id, None);
    let cached = state
        .store()
        .put(EntityKind::Flow, &tenant, &id, stored, &[], None)
        .await?;
    set_enabled(&state, &id, true).await?;
    if let Some(daemon_flow) = daemon_flow {
        state.registry().upsert(daemon_flow);
    }
    tracing::info!(flow_id = %id, org = %tenant.org, sandbox = %tenant.sandbox, "flow created");
    Ok(id_and_etag(StatusCode::CREATED, &id, &cached))
}

pub async fn patch_flow(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = required_if_match(&headers, &query)?;
    let ops = patch::parse(&body)?;
    for op in &ops {
        let top = op.path.split('/').nth(1).unwrap_or_default();
        if top == "state" {
            return Err(ApiError::field(
                1455,
                &op.path,
                "state is changed with POST /flows/{id}/action?op=enable or op=disable",
            ));
        }
        if !FLOW_FIELDS.contains(&top) {
            return Err(ApiError::field(
                1455,
                &op.path,
                format!(
                    "{top:?} cannot be patched; expected one of {}",
                    FLOW_FIELDS.join(", ")
                ),
            ));
        }
    }
    let _guard = state.store().write_lock().await;
    let current_view = found(&state, EntityKind::Flow, &tenant, &id)?;
    let Some(current) = state.store().clear(EntityKind::Flow, &tenant, &id)? else {
        return Err(ApiError::not_found("flows", &id));
    };
    let client = client_fields(&current);
    let patched = patch::apply(&client, &ops)?;
    let old_start = tributary_spec::flow_schedule_from_value(
        "flow",
        client.get("scheduleParams").unwrap_or(&Value::Null),
    )
    .ok()
    .map(|s| s.start_time);
    let new_start = tributary_spec::flow_schedule_from_value(
        "flow",
        patched.get("scheduleParams").unwrap_or(&Value::Null),
    )
    .ok()
    .map(|s| s.start_time);
    if let Some(old_start) = old_start
        && old_start <= chrono::Utc::now()
        && new_start.is_some_and(|new_start| new_start != old_start)
    {
        return Err(ApiError::field(
            1455,
            "/scheduleParams/startTime",
            "startTime cannot be changed once it has passed",
        ));
    }
    let patched = Value::Object(body_object(EntityKind::Flow, patched, FLOW_FIELDS)?);
    validate(DocumentKind::Flow, "the patched flow", &patched)?;
    let assembled = assemble(&state, &tenant, &patched, &[])?;
    let daemon_flow = daemon_flow(&id, assembled.bundle)?;
    let state_word = current
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("enabled")
        .to_owned();
    let stored = stored_flow(
        &patched,
        assembled.inherited,
        &state_word,
        "update",
        &id,
        Some(&current),
    );
    let cached = state
        .store()
        .put(
            EntityKind::Flow,
            &tenant,
            &id,
            stored,
            &[],
            Some(bare_etag(&expected)),
        )
        .await?;
    let _ = current_view;
    match daemon_flow {
        Some(daemon_flow) => {
            state.registry().upsert(daemon_flow);
        }
        None => {
            state.registry().remove(&FlowId::new(id.clone()));
        }
    }
    tracing::info!(flow_id = %id, "flow updated");
    Ok(id_and_etag(StatusCode::OK, &id, &cached))
}

pub async fn delete_flow(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let _guard = state.store().write_lock().await;
    found(&state, EntityKind::Flow, &tenant, &id)?;
    state.store().delete(EntityKind::Flow, &tenant, &id).await?;
    let flow_id = FlowId::new(id.clone());
    state.registry().remove(&flow_id);
    let db = state.engine().db.clone();
    let forgotten = flow_id.clone();
    tokio::task::spawn_blocking(move || {
        db.delete_schedule_state(&forgotten)?;
        db.flush()
    })
    .await
    .map_err(|err| ApiError::internal("forgetting a flow's schedule", err))??;
    tracing::info!(flow_id = %id, "flow deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn flow_action(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    OptionalJsonBody(_body): OptionalJsonBody,
) -> ApiResult<Response> {
    let op = normalized_op(&query)?;
    let allowed = [
        "ENABLE",
        "DISABLE",
        "FINALIZE_UPDATE",
        "FINALIZE",
        "PUBLISH",
    ];
    if !allowed.contains(&op.as_str()) {
        return Err(ApiError::bad_request(
            1455,
            format!(
                "op {op:?} is not a flow action; expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    if let Some(sub_op) = query.get("subOp").map(|s| s.to_ascii_uppercase())
        && !["APPLY", "ROLLBACK", "PROGRESS"].contains(&sub_op.as_str())
    {
        return Err(ApiError::bad_request(
            1455,
            format!("subOp {sub_op:?}: expected APPLY, ROLLBACK or PROGRESS"),
        ));
    }
    let _guard = state.store().write_lock().await;
    let cached = found(&state, EntityKind::Flow, &tenant, &id)?;
    let expected = if_match(&headers, &query)
        .map(|etag| bare_etag(&etag).to_owned())
        .unwrap_or(cached.etag.clone());
    let Some(Value::Object(mut doc)) = state.store().clear(EntityKind::Flow, &tenant, &id)? else {
        return Err(ApiError::not_found("flows", &id));
    };
    let now = chrono::Utc::now().timestamp_millis();
    let operation = op.to_ascii_lowercase();
    if op == "ENABLE" || op == "DISABLE" {
        doc.insert(
            "state".to_owned(),
            Value::String(
                if op == "ENABLE" {
                    "enabled"
                } else {
                    "disabled"
                }
                .to_owned(),
            ),
        );
    }
    doc.insert(
        "lastOperation".to_owned(),
        json!({
            "started": now, "updated": now, "operation": operation, "percentCompleted": 100,
            "status": {"value": "COMPLETED", "errors": []},
        }),
    );
    audit_fields(&mut doc, Writer::Api, false);
    let cached = state
        .store()
        .put(
            EntityKind::Flow,
            &tenant,
            &id,
            Value::Object(doc),
            &[],
            Some(&expected),
        )
        .await?;
    if op == "ENABLE" || op == "DISABLE" {
        set_enabled(&state, &id, op == "ENABLE").await?;
        // Wakes the scheduler so it re-reads the flow's state now, not at its next slot.
        if let Ok(assembled) = assemble(
            &state,
            &tenant,
            &client_fields(
                &state
                    .store()
                    .clear(EntityKind::Flow, &tenant, &id)?
                    .unwrap_or(Value::Null),
            ),
            &[],
        ) && let Ok(Some(daemon_flow)) = daemon_flow(&id, assembled.bundle)
        {
            state.registry().upsert(daemon_flow);
        }
        tracing::info!(flow_id = %id, op = %operation, "flow state changed");
    }
    Ok(id_and_etag(StatusCode::OK, &id, &cached))
}

/// The bundle of a stored flow (for runs): its entities assembled as on create.
pub fn bundle_of(state: &ApiState, tenant: &Tenant, flow_id: &str) -> ApiResult<FlowBundle> {
    let Some(flow) = state.store().clear(EntityKind::Flow, tenant, flow_id)? else {
        return Err(ApiError::not_found(collection(EntityKind::Flow), flow_id));
    };
    Ok(assemble(state, tenant, &client_fields(&flow), &[])?.bundle)
}

/// Every flow in state that has a schedule, assembled from its entities: what the scheduler
/// starts with. Flows that no longer assemble are logged and left out.
pub fn scheduled_flows(state: &ApiState) -> Vec<DaemonFlow> {
    let mut flows = Vec::new();
    for (tenant, flow_id) in state.store().all_ids(EntityKind::Flow) {
        match bundle_of(state, &tenant, &flow_id).and_then(|bundle| daemon_flow(&flow_id, bundle)) {
            Ok(Some(flow)) => flows.push(flow),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(flow_id = %flow_id, error = %err.message, "flow in state cannot be scheduled; skipped")
            }
        }
    }
    flows
}

/// Takes a flow whose bundle file left `flows_dir` out of the API's entities (its connections
/// stay: other flows may use them) and out of the scheduler. Its state (runs, windows) stays.
pub fn remove_imported_flow(
    state: &ApiState,
    tenant: &Tenant,
    flow_id: &FlowId,
) -> anyhow::Result<()> {
    if state.flow_exists(tenant, flow_id) {
        state
            .store()
            .delete_unflushed(EntityKind::Flow, tenant, flow_id.as_str())?;
        state.store().flush()?;
    }
    state.registry().remove(flow_id);
    Ok(())
}

/// Stores a flow bundle of `flows_dir` as API entities of `tenant` with ids derived from its
/// flow id (`{flow}-base`, `{flow}-source`, `{flow}-target`, `{flow}-mapping`, the spec's own id
/// or `{flow}-spec`), and appends its connection spec to the tenant's RestStorageToAEP. The
/// bundle's text is `bundle_json`; its `{"path"}` references are read through `resolve`.
pub fn import_bundle(
    state: &ApiState,
    tenant: &Tenant,
    flow_id: &FlowId,
    bundle: &FlowBundle,
    bundle_json: &Value,
    resolve: &dyn Fn(&str) -> Option<Value>,
) -> anyhow::Result<()> {
    let store = state.store();
    let flow = flow_id.as_str();
    let resolved = |node: Option<&Value>| -> Option<Value> {
        let node = node?;
        match node.get("path").and_then(Value::as_str) {
            Some(path) if node.as_object().is_some_and(|m| m.len() == 1) => resolve(path),
            _ => Some(node.clone()),
        }
    };
    let spec_id = bundle
        .connection_spec
        .id
        .clone()
        .unwrap_or_else(|| format!("{flow}-spec"));
    let spec_ref = json!({"id": spec_id, "version": bundle.connection_spec.version});
    let mut spec_doc = bundle
        .connection_spec
        .raw
        .as_object()
        .cloned()
        .unwrap_or_default();
    spec_doc.shift_remove("id");
    audit_fields(&mut spec_doc, Writer::Bundle, true);
    store.put_unflushed(
        EntityKind::ConnectionSpec,
        tenant,
        &spec_id,
        Value::Object(spec_doc),
        &[],
        None,
    )?;

    // Append the spec to the tenant's RestStorageToAEP (as a provider would with PUT).
    let flow_spec = store
        .clear(EntityKind::FlowSpec, tenant, FLOW_SPEC_ID)?
        .unwrap_or_else(crate::store::rest_storage_to_aep);
    let mut flow_spec = flow_spec.as_object().cloned().unwrap_or_default();
    let ids = flow_spec
        .entry("sourceConnectionSpecIds")
        .or_insert_with(|| json!([]));
    if let Value::Array(ids) = ids
        && !ids.iter().any(|id| id.as_str() == Some(&spec_id))
    {
        ids.push(Value::String(spec_id.clone()));
        flow_spec.shift_remove("id");
        store.put_unflushed(
            EntityKind::FlowSpec,
            tenant,
            FLOW_SPEC_ID,
            Value::Object(flow_spec),
            &[],
            None,
        )?;
    }

    let base_json = bundle_json
        .get("baseConnection")
        .cloned()
        .unwrap_or(Value::Null);
    let base_id = format!("{flow}-base");
    let mut base_doc = Map::new();
    if let Some(name) = bundle.base.name.clone() {
        base_doc.insert("name".to_owned(), Value::String(name));
    }
    base_doc.insert(
        "auth".to_owned(),
        base_json.get("auth").cloned().unwrap_or(Value::Null),
    );
    base_doc.insert("connectionSpec".to_owned(), spec_ref.clone());
    base_doc.insert("state".to_owned(), json!("enabled"));
    audit_fields(&mut base_doc, Writer::Bundle, true);
    let secret_pointers: Vec<tributary_state::JsonPointer> = bundle
        .base
        .params
        .keys()
        .filter(|name| {
            bundle.base.secret_fields.contains(name) || tributary_spec::secrets::looks_secret(name)
        })
        .filter_map(|name| {
            tributary_state::JsonPointer::parse(&format!(
                "/auth/params/{}",
                name.replace('~', "~0").replace('/', "~1")
            ))
            .ok()
        })
        .collect();
    store.put_unflushed(
        EntityKind::Connection,
        tenant,
        &base_id,
        Value::Object(base_doc),
        &secret_pointers,
        None,
    )?;

    let source_id = format!("{flow}-source");
    let mut source_doc = Map::new();
    if let Some(name) = bundle.source.name.clone() {
        source_doc.insert("name".to_owned(), Value::String(name));
    }
    source_doc.insert(
        "baseConnectionId".to_owned(),
        Value::String(base_id.clone()),
    );
    source_doc.insert("connectionSpec".to_owned(), spec_ref.clone());
    source_doc.insert("data".to_owned(), json!({"format": "json"}));
    source_doc.insert(
        "params".to_owned(),
        Value::Object(bundle.source.params.clone()),
    );
    source_doc.insert("state".to_owned(), json!("enabled"));
    source_doc.insert(
        "inheritedAttributes".to_owned(),
        json!({"baseConnection": {"id": base_id, "connectionSpec": spec_ref}}),
    );
    audit_fields(&mut source_doc, Writer::Bundle, true);
    store.put_unflushed(
        EntityKind::SourceConnection,
        tenant,
        &source_id,
        Value::Object(source_doc),
        &[],
        None,
    )?;

    let target_id = format!("{flow}-target");
    let mut target_doc = Map::new();
    if let Some(name) = bundle.target.name.clone() {
        target_doc.insert("name".to_owned(), Value::String(name));
    }
    target_doc.insert(
        "connectionSpec".to_owned(),
        json!({"id": crate::store::TARGET_SPEC_ID, "version": "1.0"}),
    );
    let mut data = bundle_json
        .pointer("/targetConnection/data")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(schema) = &bundle.target.schema
        && let Value::Object(data) = &mut data
    {
        let schema_node = data.entry("schema").or_insert_with(|| json!({}));
        if let Value::Object(schema_node) = schema_node {
            schema_node.insert("jsonSchema".to_owned(), schema.clone());
        }
    }
    target_doc.insert("data".to_owned(), data);
    target_doc.insert(
        "params".to_owned(),
        json!({"dataSetId": bundle.target.dataset_id}),
    );
    target_doc.insert("state".to_owned(), json!("enabled"));
    audit_fields(&mut target_doc, Writer::Bundle, true);
    store.put_unflushed(
        EntityKind::TargetConnection,
        tenant,
        &target_id,
        Value::Object(target_doc),
        &[],
        None,
    )?;

    let mut transformations = Vec::new();
    if bundle.mapping.is_some()
        && let Some(mapping) = resolved(bundle_json.get("mappingSet"))
    {
        let mapping_id = format!("{flow}-mapping");
        let mut mapping_doc = mapping.as_object().cloned().unwrap_or_default();
        mapping_doc.insert("version".to_owned(), json!(0));
        mapping_doc.shift_remove("id");
        crate::dataprep::assign_mapping_ids(&mut mapping_doc);
        audit_fields(&mut mapping_doc, Writer::Bundle, true);
        store.put_unflushed(
            EntityKind::MappingSet,
            tenant,
            &mapping_id,
            Value::Object(mapping_doc),
            &[],
            None,
        )?;
        transformations.push(
            json!({"name": "Mapping", "params": {"mappingId": mapping_id, "mappingVersion": 0}}),
        );
    }

    let flow_json = bundle_json
        .get("flow")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut client = Map::new();
    client.insert("name".to_owned(), Value::String(bundle.name.clone()));
    if let Some(description) = bundle_json.get("description") {
        client.insert("description".to_owned(), description.clone());
    }
    client.insert(
        "flowSpec".to_owned(),
        json!({"id": FLOW_SPEC_ID, "version": "1.0"}),
    );
    client.insert("sourceConnectionIds".to_owned(), json!([source_id]));
    client.insert("targetConnectionIds".to_owned(), json!([target_id]));
    client.insert("transformations".to_owned(), Value::Array(transformations));
    for field in ["scheduleParams", "options"] {
        if let Some(value) = flow_json.get(field) {
            client.insert(field.to_owned(), value.clone());
        }
    }
    let client = Value::Object(client);
    let inherited = json!({
        "sourceConnections": [{"id": source_id, "connectionSpec": spec_ref, "baseConnection": {"id": base_id, "connectionSpec": spec_ref}}],
        "targetConnections": [{"id": target_id, "connectionSpec": {"id": crate::store::TARGET_SPEC_ID, "version": "1.0"}}],
        "properties": {"isSourceFlow": true},
    });
    let previous = store.clear(EntityKind::Flow, tenant, flow)?;
    let state_word = match state.engine().db.schedule_state(flow_id)? {
        Some(schedule) if !schedule.enabled => "disabled",
        _ => "enabled",
    };
    let mut stored = stored_flow(
        &client,
        inherited,
        state_word,
        if previous.is_some() {
            "update"
        } else {
            "create"
        },
        flow,
        previous.as_ref(),
    );
    if let Value::Object(map) = &mut stored {
        audit_fields(map, Writer::Bundle, previous.is_none());
    }
    store.put_unflushed(EntityKind::Flow, tenant, flow, stored, &[], None)?;
    // The bundle's documents become durable together, the flow (written last) with them.
    store.flush()?;
    Ok(())
}
