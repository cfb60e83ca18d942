//! The operator's view: the dashboard page at `/` (one static HTML page with plain JS, compiled
//! in, no CDN) and the compact, paged JSON it reads — also what `tributary flows` and
//! `tributary runs` read from a running daemon.
//!
//! - `GET /ui/api/flows?offset=&limit=`: flows of the tenant, by name, with state, schedule,
//!   next run, lag, last run (status, duration, records, error) and consecutive failures.
//! - `GET /ui/api/runs?flow=&limit=`: the newest runs (run objects) of the tenant or of one flow.
//! - `GET /ui/api/runs/{id}/rejected?limit=`: the first rejected rows a run kept.
//! - A run's detail is the Flow Service's `GET /runs/{id}`.
//!
//! Invariants: every answer is bounded (at most [`MAX_LIMIT`] flows or runs), and its cost does
//! not grow with the runs in state: per flow one schedule-state read and the newest run (more
//! runs only while they are failures, to count them). The page itself needs no credentials; its
//! data calls go through the gateway checks like every other operation.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};
use tributary_engine::telemetry;
use tributary_state::{EntityKind, FlowId, FlowScheduleState, RunRecord};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::http::{Query, Tenant};

/// The page, compiled into the binary.
const INDEX_HTML: &str = include_str!("../static/index.html");

/// Flows or runs per answer when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 50;
/// The most flows or runs one answer holds.
pub const MAX_LIMIT: usize = 500;

/// Runs scanned, at most, to find a tenant's newest runs among every flow's.
const RUN_SCAN_FACTOR: usize = 20;

/// `GET /`: the dashboard page.
pub(crate) async fn index() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /ui/api/flows`.
pub(crate) async fn list_flows(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    let offset = number(&query, "offset", 0, usize::MAX)?;
    let limit = number(&query, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    // Sorted by name as references under the view's lock; only the page is copied out.
    let (total, page) = state.store().read_list(EntityKind::Flow, &tenant, |docs| {
        let mut flows: Vec<(&str, &str, &Value)> = docs
            .filter_map(|view| {
                let id = view.get("id")?.as_str()?;
                let name = view.get("name").and_then(Value::as_str).unwrap_or(id);
                Some((name, id, view))
            })
            .collect();
        flows.sort_by(|a, b| a.0.cmp(b.0).then_with(|| a.1.cmp(b.1)));
        let page: Vec<(String, String, Value)> = flows
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(name, id, view)| ((*name).to_owned(), (*id).to_owned(), (*view).clone()))
            .collect();
        (flows.len(), page)
    });
    let worker_state = state.clone();
    let items = tokio::task::spawn_blocking(move || -> ApiResult<Vec<Value>> {
        let mut items = Vec::with_capacity(page.len());
        for (name, id, view) in &page {
            items.push(flow_summary(&worker_state, name, id, view)?);
        }
        Ok(items)
    })
    .await
    .map_err(|err| ApiError::internal("summarizing flows", err))??;
    Ok(Json(json!({
        "total": total,
        "offset": offset,
        "limit": limit,
        "items": items,
    })))
}

/// `GET /ui/api/runs`.
pub(crate) async fn list_runs(
    State(state): State<ApiState>,
    tenant: Tenant,
    query: Query,
) -> ApiResult<Json<Value>> {
    let limit = number(&query, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let flow = query.get("flow").map(str::to_owned);
    let flow_id = match &flow {
        Some(flow) => Some(find_flow(&state, &tenant, flow)?),
        None => None,
    };
    let worker_state = state.clone();
    let worker_tenant = tenant.clone();
    let records = tokio::task::spawn_blocking(move || -> ApiResult<Vec<RunRecord>> {
        let db = worker_state.db();
        match flow_id {
            Some(flow_id) => Ok(db.runs_for_flow(&flow_id, limit)?),
            None => {
                // The newest runs of every flow; those of other tenants are skipped, within a
                // bounded scan.
                let mut owned: HashMap<String, bool> = HashMap::new();
                let mut mine = Vec::new();
                for record in db.recent_runs(limit.saturating_mul(RUN_SCAN_FACTOR))? {
                    let is_mine = *owned
                        .entry(record.flow_id.as_str().to_owned())
                        .or_insert_with(|| {
                            worker_state
                                .store()
                                .owner(EntityKind::Flow, record.flow_id.as_str())
                                .as_ref()
                                == Some(&worker_tenant)
                        });
                    if is_mine {
                        mine.push(record);
                        if mine.len() >= limit {
                            break;
                        }
                    }
                }
                Ok(mine)
            }
        }
    })
    .await
    .map_err(|err| ApiError::internal("reading runs", err))??;
    let items: Vec<&Value> = records.iter().map(|record| &record.run_doc).collect();
    Ok(Json(json!({"limit": limit, "items": items})))
}

/// Rejected rows shown per run, at most.
const MAX_REJECTED_SAMPLE: usize = 50;
/// Bytes of one rejected row shown, at most.
const MAX_REJECTED_ROW_BYTES: usize = 8 * 1024;

/// `GET /ui/api/runs/{RUN_ID}/rejected?limit=`: the first rejected rows a run kept (its batch's
/// `_errors` parts, JSON lines of record and reasons).
pub(crate) async fn rejected_rows(
    State(state): State<ApiState>,
    tenant: Tenant,
    axum::extract::Path(run_id): axum::extract::Path<String>,
    query: Query,
) -> ApiResult<Json<Value>> {
    let limit = number(&query, "limit", 10, MAX_REJECTED_SAMPLE)?;
    let worker_state = state.clone();
    let rows = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let Some(record) = worker_state
            .db()
            .run(&tributary_state::RunId::new(run_id.clone()))?
        else {
            return Err(ApiError::not_found("runs", &run_id));
        };
        let owner = worker_state
            .store()
            .owner(EntityKind::Flow, record.flow_id.as_str());
        if owner.as_ref() != Some(&tenant) {
            return Err(ApiError::not_found("runs", &run_id));
        }
        let dataset = record
            .run_doc
            .pointer("/activities/1/targetInfo/0/dataSetId")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(batch) = record.batch_id.as_ref().map(|b| b.as_str().to_owned()) else {
            return Ok(json!({"items": [], "path": null}));
        };
        let is_plain = |text: &str| {
            !text.is_empty()
                && text != "."
                && text != ".."
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !is_plain(dataset) || !is_plain(&batch) {
            return Ok(json!({"items": [], "path": null}));
        }
        let relative = format!("datasets/{dataset}/_errors/batch={batch}");
        let dir = worker_state
            .engine()
            .layout
            .datasets_dir()
            .join(dataset)
            .join("_errors")
            .join(format!("batch={batch}"));
        let mut parts: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
                .collect(),
            Err(_) => Vec::new(),
        };
        parts.sort();
        let mut items = Vec::new();
        'parts: for part in parts {
            let Ok(file) = std::fs::File::open(&part) else {
                continue;
            };
            for line in std::io::BufRead::lines(std::io::BufReader::new(file)) {
                let Ok(line) = line else { break };
                if items.len() >= limit {
                    break 'parts;
                }
                let row = if line.len() > MAX_REJECTED_ROW_BYTES {
                    json!({"truncated": line.chars().take(MAX_REJECTED_ROW_BYTES).collect::<String>()})
                } else {
                    serde_json::from_str(&line).unwrap_or(Value::String(line))
                };
                items.push(row);
            }
        }
        Ok(json!({"items": items, "path": relative}))
    })
    .await
    .map_err(|err| ApiError::internal("reading rejected rows", err))??;
    Ok(Json(rows))
}

/// The flow of `tenant` named by id or by name.
fn find_flow(state: &ApiState, tenant: &Tenant, flow: &str) -> ApiResult<FlowId> {
    if state.store().get(EntityKind::Flow, tenant, flow).is_some() {
        return Ok(FlowId::new(flow));
    }
    for view in state.store().list(EntityKind::Flow, tenant) {
        if view.get("name").and_then(Value::as_str) == Some(flow)
            && let Some(id) = view.get("id").and_then(Value::as_str)
        {
            return Ok(FlowId::new(id));
        }
    }
    Err(ApiError::not_found("flows", flow))
}

/// One flow's line of the dashboard and of `tributary flows`.
fn flow_summary(state: &ApiState, name: &str, id: &str, view: &Value) -> ApiResult<Value> {
    let flow_id = FlowId::new(id);
    let db = state.db();
    let schedule_state: Option<FlowScheduleState> = db.schedule_state(&flow_id)?;
    let registered = state.registry().get(&flow_id);
    let now = Utc::now();
    let view_state = view
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("enabled");
    let enabled = view_state != "disabled" && schedule_state.as_ref().is_none_or(|s| s.enabled);
    let (next_due, lag) = match &registered {
        Some(flow) => {
            let schedule_view = telemetry::schedule_view(flow, schedule_state.as_ref(), now);
            (schedule_view.next_due, schedule_view.lag)
        }
        None => (None, std::time::Duration::ZERO),
    };
    let newest = db.runs_for_flow(&flow_id, 1)?;
    let health = match newest.first() {
        Some(run) if run.status == tributary_state::RunStatus::Success => telemetry::FlowHealth {
            consecutive_failures: 0,
            last_success_ms: Some(run.completed_at_ms.unwrap_or(run.started_at_ms)),
        },
        Some(_) => telemetry::flow_health(db, &flow_id)?,
        None => telemetry::FlowHealth::default(),
    };
    Ok(json!({
        "id": id,
        "name": name,
        "state": if enabled { "enabled" } else { "disabled" },
        "schedule": schedule_text(view.get("scheduleParams")),
        "nextRunAt": if enabled { next_due.map(|t| t.timestamp_millis()) } else { None },
        "lagSeconds": lag.as_secs(),
        "consecutiveFailures": health.consecutive_failures,
        "lastSuccessAt": health.last_success_ms,
        "lastRun": newest.first().map(run_summary),
    }))
}

/// A run in a few fields: status, times, records, throttled time and the first error.
pub fn run_summary(run: &RunRecord) -> Value {
    let doc = &run.run_doc;
    let count = |pointer: &str| doc.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let error = doc
        .pointer("/metrics/statusSummary/errors/0/message")
        .and_then(Value::as_str);
    json!({
        "id": run.id.as_str(),
        "status": doc.get("state").and_then(Value::as_str).unwrap_or("unknown"),
        "startedAt": run.started_at_ms,
        "completedAt": run.completed_at_ms,
        "durationMs": run.completed_at_ms.map(|end| (end - run.started_at_ms).max(0)),
        "recordsRead": count("/metrics/recordSummary/inputRecordCount"),
        "recordsWritten": count("/metrics/recordSummary/outputRecordCount"),
        "recordsRejected": count("/metrics/recordSummary/failedRecordCount"),
        "throttledMs": count("/metrics/customSummary/throttledMs"),
        "error": error,
    })
}

/// `every 1 hour`, `cron 0 */5 * * * *`, `once`, or null without a schedule.
fn schedule_text(schedule: Option<&Value>) -> Value {
    let Some(schedule) = schedule.filter(|s| s.is_object()) else {
        return Value::Null;
    };
    if let Some(cron) = schedule.get("cron").and_then(Value::as_str) {
        return json!(format!("cron {cron}"));
    }
    let frequency = schedule
        .get("frequency")
        .and_then(Value::as_str)
        .unwrap_or("once");
    if frequency.eq_ignore_ascii_case("once") {
        return json!("once");
    }
    let interval = schedule
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    json!(format!(
        "every {interval} {}",
        frequency.to_ascii_lowercase()
    ))
}

fn number(query: &Query, key: &str, default: usize, max: usize) -> ApiResult<usize> {
    match query.get(key) {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n <= max && (key == "offset" || n >= 1) => Ok(n),
            _ => Err(ApiError::bad_request(
                1455,
                format!(
                    "query parameter {key}: expected an integer from 1 to {max}, found {text:?}"
                ),
            )),
        },
    }
}
