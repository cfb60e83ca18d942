//! Runs: list (by flow), get, ad hoc create (`POST /runs` for a window), provider-side update
//! (`PUT /runs/{id}`) and re-trigger.
//!
//! The run object is the engine's (`run_object`: metrics, activities with `targetInfo` and
//! the batch id); the API adds the tenant and server fields and the ids of the flow's own
//! source and target connections. A run belongs to its flow's org and sandbox. Ad hoc runs are
//! recorded as `scheduled` before they start, so `GET /runs/{id}` answers at once; they run
//! through `run_flow` like scheduled ones, at most `max_concurrent_runs` at a time.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tributary_engine::run::{
    Progress, RunIdentity, RunMetrics, RunOutcome, RunRequest, RunStatus, run_flow_as, run_object,
};
use tributary_spec::ScheduleWindow;
use tributary_state::{EntityKind, FlowId, RunId, RunRecord};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::flows::bundle_of;
use crate::flowservice::normalized_op;
use crate::http::{
    JsonBody, OptionalJsonBody, Query, Tenant, bare_etag, if_match, required_if_match,
};
use crate::listing::ListQuery;
use crate::store::sandbox_id;

/// A run as the API shows it.
fn decorate(state: &ApiState, tenant: &Tenant, record: &RunRecord) -> Value {
    let mut doc = record.run_doc.clone();
    let flow = state
        .store()
        .get(EntityKind::Flow, tenant, record.flow_id.as_str());
    if let Value::Object(map) = &mut doc {
        map.insert("createdAt".to_owned(), json!(record.started_at_ms));
        map.insert(
            "updatedAt".to_owned(),
            json!(record.completed_at_ms.unwrap_or(record.started_at_ms)),
        );
        map.insert("createdBy".to_owned(), json!("tributary-scheduler@AdobeID"));
        map.insert("createdClient".to_owned(), json!("tributary"));
        map.insert("sandboxId".to_owned(), json!(sandbox_id(tenant)));
        map.insert("sandboxName".to_owned(), json!(tenant.sandbox));
        map.insert("imsOrgId".to_owned(), json!(tenant.org));
    }
    if let Some(flow) = flow {
        let first = |field: &str| flow.view.get(field).and_then(|ids| ids.get(0)).cloned();
        if let Some(activities) = doc.get_mut("activities").and_then(Value::as_array_mut) {
            for activity in activities {
                if let (Some(source), Some(info)) = (
                    first("sourceConnectionIds"),
                    activity.pointer_mut("/sourceInfo/0/id"),
                ) {
                    *info = source;
                }
                if let (Some(target), Some(info)) = (
                    first("targetConnectionIds"),
                    activity.pointer_mut("/targetInfo/0/id"),
                ) {
                    *info = target;
                }
            }
        }
    }
    doc
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal("reading runs", err))
}

pub async fn list_runs(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    let list = ListQuery::parse(&query)?;
    let flow_ids: Vec<String> = match list.equality_values("flowId") {
        Some(ids) => ids
            .into_iter()
            .filter(|id| state.store().owner(EntityKind::Flow, id).as_ref() == Some(&tenant))
            .collect(),
        None => state
            .store()
            .list(EntityKind::Flow, &tenant)
            .iter()
            .filter_map(|f| f.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect(),
    };
    let db = state.engine().db.clone();
    let records = blocking(
        move || -> Result<Vec<RunRecord>, tributary_state::StateError> {
            let mut records = Vec::new();
            for flow_id in flow_ids {
                records.extend(db.runs_for_flow(&FlowId::new(flow_id), usize::MAX)?);
            }
            Ok(records)
        },
    )
    .await??;
    let mut records = records;
    records.sort_by(|a, b| {
        b.started_at_ms
            .cmp(&a.started_at_ms)
            .then_with(|| b.id.cmp(&a.id))
    });
    let docs: Vec<Value> = records
        .iter()
        .map(|record| decorate(&state, &tenant, record))
        .collect();
    Ok(Json(list.respond(docs.iter(), "/runs")))
}

fn owned_run(state: &ApiState, tenant: &Tenant, id: &str) -> ApiResult<RunRecord> {
    let record = state.engine().db.run(&RunId::new(id))?;
    match record {
        Some(record)
            if state
                .store()
                .owner(EntityKind::Flow, record.flow_id.as_str())
                .as_ref()
                == Some(tenant) =>
        {
            Ok(record)
        }
        _ => Err(ApiError::not_found("runs", id)),
    }
}

pub async fn get_run(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = owned_run(&state, &tenant, &id)?;
    Ok(Json(json!({"items": [decorate(&state, &tenant, &record)]})))
}

/// Epoch seconds or milliseconds (values below 10^11 are seconds), as a number or a string.
fn epoch(value: &Value, pointer: &str) -> ApiResult<DateTime<Utc>> {
    let number = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    let time = number.filter(|n| n.is_finite() && *n >= 0.0).and_then(|n| {
        let ms = if n < 1e11 { n * 1000.0 } else { n };
        DateTime::from_timestamp_millis(ms as i64)
    });
    time.ok_or_else(|| {
        ApiError::field(
            1455,
            pointer,
            "expected epoch seconds or milliseconds (a number or a numeric string)",
        )
    })
}

/// Starts a run of a flow's window in the background; returns the run as first recorded.
async fn start_run(
    state: &ApiState,
    tenant: &Tenant,
    flow_id: &str,
    window: Option<ScheduleWindow>,
) -> ApiResult<Value> {
    let bundle = Arc::new(bundle_of(state, tenant, flow_id)?);
    // One run per window: a request for a window that a run (scheduled or ad hoc) is working on
    // is refused before anything is recorded; the claim goes with the run and is released when
    // it ends.
    let claim = state
        .engine()
        .running
        .claim(&FlowId::new(flow_id), window.as_ref())
        .map_err(|busy| ApiError::flow(StatusCode::CONFLICT, 1409, "Conflict", busy.to_string()))?;
    let run_id = RunId::new(uuid::Uuid::new_v4().simple().to_string());
    let now = Utc::now();
    let identity = RunIdentity {
        run_id: run_id.to_string(),
        flow_id: flow_id.to_owned(),
        flow_name: bundle.name.clone(),
        source_connection_id: format!("{flow_id}-source"),
        target_connection_id: format!("{flow_id}-target"),
        dataset_id: bundle.target.dataset_id.clone(),
        batch_id: String::new(),
        window,
    };
    let outcome = RunOutcome {
        status: RunStatus::Scheduled,
        started_at: now,
        completed_at: None,
        errors: Vec::new(),
        files: Vec::new(),
        truncated: false,
        max_requests: 0,
    };
    let mut run_doc = run_object(&identity, &RunMetrics::default(), &outcome);
    if let Some(activities) = run_doc.get_mut("activities") {
        // A scheduled run has done nothing yet (reference §6).
        *activities = json!([]);
    }
    let record = RunRecord {
        id: run_id.clone(),
        flow_id: FlowId::new(flow_id),
        status: tributary_state::RunStatus::Scheduled,
        window: window.map(|w| tributary_state::Window {
            start_ms: w.start.map_or(0, |t| t.timestamp_millis()),
            end_ms: w.end.timestamp_millis(),
        }),
        batch_id: None,
        started_at_ms: now.timestamp_millis(),
        completed_at_ms: None,
        run_doc,
    };
    let db = state.engine().db.clone();
    let stored = record.clone();
    // Durable before it is answered, as every write of the API.
    blocking(move || {
        db.put_run(&stored)?;
        db.flush()
    })
    .await??;
    let engine = state.engine().clone();
    let permits = state.inner.adhoc_permits.clone();
    let request = RunRequest {
        flow_id: FlowId::new(flow_id),
        bundle,
        window,
        progress: Arc::new(Progress::default()),
    };
    let failed_record = record.clone();
    tokio::spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return;
        };
        if let Err(err) = run_flow_as(&engine, request, run_id.clone(), claim).await {
            tracing::warn!(run_id = %run_id, error = %err, "ad hoc run could not start");
            let mut failed = failed_record;
            failed.status = tributary_state::RunStatus::Failed;
            failed.completed_at_ms = Some(Utc::now().timestamp_millis());
            if let Some(summary) = failed.run_doc.pointer_mut("/metrics/statusSummary") {
                *summary = json!({"status": "failed", "errors": [{"code": "CONNECTOR-2001-500", "message": err.to_string()}]});
            }
            if let Some(state_word) = failed.run_doc.get_mut("state") {
                *state_word = json!("failed");
            }
            let db = engine.db.clone();
            let _ = tokio::task::spawn_blocking(move || db.put_run(&failed)).await;
        }
    });
    tracing::info!(flow_id = %flow_id, run_id = %record.id, "ad hoc run started");
    Ok(decorate(state, tenant, &record))
}

pub async fn create_run(
    State(state): State<ApiState>,
    tenant: Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let Some(map) = body.as_object() else {
        return Err(ApiError::field(
            1455,
            "",
            "expected {flowId, params: {windowStartTime, windowEndTime}}",
        ));
    };
    for key in map.keys() {
        if !["flowId", "params", "name", "description"].contains(&key.as_str()) {
            return Err(ApiError::field(
                1455,
                &format!("/{key}"),
                format!("unknown field {key:?}; expected flowId and params"),
            ));
        }
    }
    let Some(flow_id) = map.get("flowId").and_then(Value::as_str) else {
        return Err(ApiError::field(
            1430,
            "/flowId",
            "missing required field flowId",
        ));
    };
    if state
        .store()
        .get(EntityKind::Flow, &tenant, flow_id)
        .is_none()
    {
        return Err(ApiError::bad_request(
            1430,
            format!("flow {flow_id:?} not found in this org and sandbox"),
        ));
    }
    let params = map.get("params").cloned().unwrap_or_else(|| json!({}));
    let Some(params) = params.as_object() else {
        return Err(ApiError::field(
            1455,
            "/params",
            "expected an object {windowStartTime, windowEndTime}",
        ));
    };
    for key in params.keys() {
        if ![
            "windowStartTime",
            "windowEndTime",
            "startTime",
            "deltaColumn",
        ]
        .contains(&key.as_str())
        {
            return Err(ApiError::field(
                1455,
                &format!("/params/{key}"),
                format!("unknown field {key:?}"),
            ));
        }
    }
    let start = params
        .get("windowStartTime")
        .filter(|v| !v.is_null())
        .map(|v| epoch(v, "/params/windowStartTime"))
        .transpose()?;
    let end = params
        .get("windowEndTime")
        .filter(|v| !v.is_null())
        .map(|v| epoch(v, "/params/windowEndTime"))
        .transpose()?;
    let window = match (start, end) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ApiError::field(
                1455,
                "/params/windowEndTime",
                "windowEndTime is required with windowStartTime",
            ));
        }
        (start, Some(end)) => {
            if start.is_some_and(|start| start >= end) {
                return Err(ApiError::field(
                    1455,
                    "/params/windowStartTime",
                    "windowStartTime must be before windowEndTime",
                ));
            }
            Some(ScheduleWindow { start, end })
        }
    };
    let run = start_run(&state, &tenant, flow_id, window).await?;
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

pub async fn put_run(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = required_if_match(&headers, &query)?;
    let Some(update) = body.as_object() else {
        return Err(ApiError::field(
            1455,
            "",
            "expected a run update {metrics, activities, providerRefId}",
        ));
    };
    for key in update.keys() {
        if ![
            "metrics",
            "activities",
            "activites",
            "providerRefId",
            "params",
            "etag",
            "eTag",
            "id",
            "flowId",
        ]
        .contains(&key.as_str())
        {
            return Err(ApiError::field(
                1455,
                &format!("/{key}"),
                format!("unknown field {key:?}; expected metrics, activities or providerRefId"),
            ));
        }
    }
    let mut record = owned_run(&state, &tenant, &id)?;
    let current_etag = record
        .run_doc
        .get("etag")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if bare_etag(&expected) != bare_etag(&current_etag) {
        return Err(ApiError::flow(
            StatusCode::PRECONDITION_FAILED,
            1404,
            "Precondition failed",
            format!("the supplied version does not match the current version of run {id}"),
        ));
    }
    if !record.status.is_finished() {
        return Err(ApiError::bad_request(
            1416,
            format!("run {id} is still running; it can be updated once it has finished"),
        ));
    }
    for (key, value) in update {
        let key = if key == "activites" {
            "activities"
        } else {
            key.as_str()
        };
        if ["metrics", "activities", "providerRefId"].contains(&key)
            && let Value::Object(doc) = &mut record.run_doc
        {
            doc.insert(key.to_owned(), value.clone());
        }
    }
    let now = Utc::now().timestamp_millis();
    if let Value::Object(doc) = &mut record.run_doc {
        doc.insert("etag".to_owned(), json!(format!("\"{}-{now}\"", record.id)));
    }
    let db = state.engine().db.clone();
    let stored = record.clone();
    // Durable before it is answered, as every write of the API.
    blocking(move || {
        db.put_run(&stored)?;
        db.flush()
    })
    .await??;
    let doc = decorate(&state, &tenant, &record);
    let mut response = Json(doc).into_response();
    if let Ok(location) =
        http::HeaderValue::from_str(&format!("/data/foundation/flowservice/runs/{id}"))
    {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    Ok(response)
}

pub async fn run_action(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
    OptionalJsonBody(_body): OptionalJsonBody,
) -> ApiResult<Response> {
    let op = normalized_op(&query)?;
    if op != "RE_TRIGGER" {
        return Err(ApiError::bad_request(
            1455,
            format!("op {op:?} is not a run action; expected re-trigger"),
        ));
    }
    let record = owned_run(&state, &tenant, &id)?;
    if let Some(etag) = if_match(&headers, &query) {
        let current = record
            .run_doc
            .get("etag")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if bare_etag(&etag) != bare_etag(current) {
            return Err(ApiError::flow(
                StatusCode::PRECONDITION_FAILED,
                1404,
                "Precondition failed",
                format!("the supplied version does not match the current version of run {id}"),
            ));
        }
    }
    if !record.status.is_finished() {
        return Err(ApiError::bad_request(
            1416,
            format!("run {id} has not finished; re-trigger it once it has"),
        ));
    }
    let window = record.window.and_then(|w| {
        Some(ScheduleWindow {
            // An open start (all history) is recorded as the epoch.
            start: if w.start_ms == 0 {
                None
            } else {
                DateTime::from_timestamp_millis(w.start_ms)
            },
            end: DateTime::from_timestamp_millis(w.end_ms)?,
        })
    });
    let run = start_run(&state, &tenant, record.flow_id.as_str(), window).await?;
    Ok(Json(run).into_response())
}
