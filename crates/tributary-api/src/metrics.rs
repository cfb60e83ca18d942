//! `/metrics`: the process's operator metrics in the Prometheus text format, and the API's own
//! request metrics (`tributary_api_requests_total` by route template, method and status,
//! `tributary_api_request_duration_seconds`).
//!
//! The recorder is process-wide ([`install_recorder`], once; later calls return the same
//! handle). Counters come from the engine (`tributary_engine::telemetry`), the fetcher
//! (`tributary_source_*`) and this crate; scheduler lag is computed at each scrape from the
//! registry and the schedule states, so a stuck scheduler still shows its lag growing.
//!
//! Invariants: `/metrics` needs no org headers (Prometheus's scrape convention); when a metrics
//! token is configured it needs `Authorization: Bearer <token>` and compares it in constant
//! time. Labels are low-cardinality: route templates, never a path with ids or a query string.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tributary_engine::telemetry;

use crate::ApiState;
use crate::error::ApiError;

pub const API_REQUESTS: &str = "tributary_api_requests_total";
pub const API_REQUEST_SECONDS: &str = "tributary_api_request_duration_seconds";
pub const SOURCE_REQUESTS: &str = "tributary_source_requests_total";
pub const SOURCE_REQUEST_SECONDS: &str = "tributary_source_request_duration_seconds";
pub const SOURCE_RATE_LIMITED: &str = "tributary_source_rate_limited_total";

/// Latency buckets of both request histograms, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The configured `/metrics` token; its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct MetricsToken(pub(crate) String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(***)")
    }
}

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process's Prometheus recorder (the first call) and describes every metric.
/// Fails when another recorder was installed first.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let installed = HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_duration_seconds".to_owned()),
                &LATENCY_BUCKETS,
            )
            .map_err(|err| format!("configuring the metrics buckets: {err}"))?;
        let handle = builder
            .install_recorder()
            .map_err(|err| format!("installing the metrics recorder: {err}"))?;
        describe();
        Ok(handle)
    });
    installed
        .clone()
        .map_err(|message| anyhow::anyhow!("{message}"))
}

/// Drains histogram samples into their buckets every few seconds, so memory stays bounded
/// between scrapes. Runs until the process ends.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    telemetry::describe();
    describe_counter!(
        API_REQUESTS,
        "HTTP API requests, by route template, method and status"
    );
    describe_histogram!(
        API_REQUEST_SECONDS,
        Unit::Seconds,
        "HTTP API request latency, by route template and method"
    );
    describe_counter!(
        SOURCE_REQUESTS,
        "Requests to sources, by origin and status class (error: no answer)"
    );
    describe_histogram!(
        SOURCE_REQUEST_SECONDS,
        Unit::Seconds,
        "Time from sending a source request to its answer's headers, by origin"
    );
    describe_counter!(
        SOURCE_RATE_LIMITED,
        "429 Too Many Requests answers from sources, by origin"
    );
}

/// Sets every registered flow's health gauges from state (at start; runs keep them current).
pub fn load_flow_health(state: &ApiState) -> anyhow::Result<()> {
    for flow in state.registry().snapshot() {
        let health = telemetry::flow_health(state.db(), &flow.flow_id)?;
        telemetry::set_flow_health(&flow.bundle.name, &flow.flow_id, &health);
    }
    Ok(())
}

/// Counts one API request (called by the access-log middleware).
pub(crate) fn observe_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let route = route.to_owned();
    let method = method.to_owned();
    metrics::counter!(API_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(API_REQUEST_SECONDS, "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(MetricsToken(expected)) = &state.inner.metrics_bearer_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if !crate::http::constant_time_eq(expected, given) {
            let mut response = ApiError::gateway(
                StatusCode::UNAUTHORIZED,
                "401013",
                "a valid metrics bearer token is required",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return response;
        }
    }
    let Some(Ok(handle)) = HANDLE.get() else {
        return ApiError::internal(
            "rendering metrics",
            "no metrics recorder is installed in this process",
        )
        .into_response();
    };
    let db = state.db().clone();
    let flows = state.registry().snapshot();
    let refreshed = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let states: std::collections::HashMap<_, _> = db.schedule_states()?.into_iter().collect();
        let now = chrono::Utc::now();
        for flow in &flows {
            let view = telemetry::schedule_view(flow, states.get(&flow.flow_id), now);
            telemetry::set_flow_lag(&flow.bundle.name, &flow.flow_id, view.lag, view.interval);
        }
        Ok(())
    })
    .await;
    match refreshed {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return ApiError::internal("reading schedule states", err).into_response(),
        Err(err) => return ApiError::internal("reading schedule states", err).into_response(),
    }
    handle.run_upkeep();
    let body = handle.render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
