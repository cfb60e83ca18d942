//! Operator metrics of runs and the scheduler, emitted through the `metrics` facade (the daemon
//! installs a Prometheus recorder; without one every call here is a no-op).
//!
//! Names follow Prometheus conventions: `tributary_…_total` counters, base units (`_seconds`,
//! `_bytes`), and labels of low cardinality only — `flow` (the bundle name) and `flow_id`, a run
//! `status`. Never a URL, a window or a record value.
//!
//! Invariants: a flow's counters exist at 0 from the moment the flow is registered
//! ([`register_flow`]), so the first increment after process start is seen by `rate()`; the
//! per-flow health gauges (consecutive failures, last success) are read from state, not counted
//! in memory, so a restart does not reset them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tributary_state::{Db, FlowId, RunStatus as StoredStatus, StateError};

use crate::run::{RunMetrics, RunStatus};

pub const RUNS_STARTED: &str = "tributary_runs_started_total";
pub const RUNS_FINISHED: &str = "tributary_runs_finished_total";
pub const RUNS_IN_FLIGHT: &str = "tributary_runs_in_flight";
pub const RUNS_QUEUED: &str = "tributary_runs_queued";
pub const RECORDS_READ: &str = "tributary_records_read_total";
pub const RECORDS_WRITTEN: &str = "tributary_records_written_total";
pub const RECORDS_REJECTED: &str = "tributary_records_rejected_total";
pub const BYTES_IN: &str = "tributary_bytes_in_total";
pub const BYTES_OUT: &str = "tributary_bytes_out_total";
pub const SOURCE_RETRIES: &str = "tributary_source_retries_total";
pub const SOURCE_THROTTLED_SECONDS: &str = "tributary_source_throttled_seconds_total";
pub const SCHEDULER_LAG_SECONDS: &str = "tributary_scheduler_lag_seconds";
pub const SCHEDULE_INTERVAL_SECONDS: &str = "tributary_flow_schedule_interval_seconds";
pub const LAST_SUCCESS_SECONDS: &str = "tributary_flow_last_success_timestamp_seconds";
pub const CONSECUTIVE_FAILURES: &str = "tributary_flow_consecutive_failures";
pub const NODE_LEASES_HELD: &str = "tributary_node_leases_held";
pub const NODES_LIVE: &str = "tributary_cluster_nodes_live";

/// The run statuses a finished run is counted under.
pub const FINISHED_STATUSES: [RunStatus; 3] =
    [RunStatus::Success, RunStatus::Failed, RunStatus::Cancelled];

/// Runs of a flow looked at to count its consecutive failures (the run history is smaller).
const HEALTH_SCAN_RUNS: usize = 1_000;

/// Describes every engine metric (help texts and units) and creates the label-less gauges at 0.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(RUNS_STARTED, "Runs started");
    describe_counter!(RUNS_FINISHED, "Runs finished, by status");
    describe_gauge!(RUNS_IN_FLIGHT, "Runs executing now");
    describe_gauge!(
        RUNS_QUEUED,
        "Scheduled runs waiting for a run permit (limits.max_concurrent_runs)"
    );
    describe_counter!(RECORDS_READ, "Records the sources returned");
    describe_counter!(RECORDS_WRITTEN, "Records published to datasets");
    describe_counter!(RECORDS_REJECTED, "Records rejected by mapping or schema");
    describe_counter!(
        BYTES_IN,
        Unit::Bytes,
        "Response bytes received from sources"
    );
    describe_counter!(BYTES_OUT, Unit::Bytes, "Parquet bytes published");
    describe_counter!(
        SOURCE_RETRIES,
        "Source requests sent again (errors, 429/503 waits, token refreshes)"
    );
    describe_counter!(
        SOURCE_THROTTLED_SECONDS,
        Unit::Seconds,
        "Time requests waited for a rate limiter or a Retry-After pause"
    );
    describe_gauge!(
        SCHEDULER_LAG_SECONDS,
        Unit::Seconds,
        "How late a flow is: now minus the slot its next window was due at (0 when not due)"
    );
    describe_gauge!(
        SCHEDULE_INTERVAL_SECONDS,
        Unit::Seconds,
        "A periodic flow's schedule interval"
    );
    describe_gauge!(
        LAST_SUCCESS_SECONDS,
        Unit::Seconds,
        "When the flow's last successful run finished (Unix time)"
    );
    describe_gauge!(
        CONSECUTIVE_FAILURES,
        "Failed runs of the flow since its last successful one"
    );
    describe_gauge!(
        NODE_LEASES_HELD,
        "Flow leases this node of a shared state holds, by node"
    );
    describe_gauge!(
        NODES_LIVE,
        "Nodes of the shared state whose heartbeat is within their lease TTL"
    );
    metrics::gauge!(RUNS_IN_FLIGHT).set(0.0);
    metrics::gauge!(RUNS_QUEUED).set(0.0);
}

/// The leases a node holds, after each renewal (a node of a shared state only).
pub fn node_leases(node: &str, held: usize) {
    metrics::gauge!(NODE_LEASES_HELD, "node" => node.to_owned()).set(held as f64);
}

/// The live nodes of the shared state, as this node last read them.
pub fn nodes_live(node: &str, live: usize) {
    metrics::gauge!(NODES_LIVE, "node" => node.to_owned()).set(live as f64);
}

/// Creates a flow's counters at 0 (an existing counter keeps its value).
pub fn register_flow(flow_name: &str, flow_id: &FlowId) {
    let labels = flow_labels(flow_name, flow_id);
    for name in [
        RUNS_STARTED,
        RECORDS_READ,
        RECORDS_WRITTEN,
        RECORDS_REJECTED,
        BYTES_IN,
        BYTES_OUT,
        SOURCE_RETRIES,
        SOURCE_THROTTLED_SECONDS,
    ] {
        metrics::counter!(name, &labels).increment(0);
    }
    for status in FINISHED_STATUSES {
        metrics::counter!(RUNS_FINISHED, &status_labels(flow_name, flow_id, status)).increment(0);
    }
}

/// Counts a run that started; the returned guard keeps it in `tributary_runs_in_flight`.
pub fn run_started(flow_name: &str, flow_id: &FlowId) -> InFlight {
    metrics::counter!(RUNS_STARTED, &flow_labels(flow_name, flow_id)).increment(1);
    metrics::gauge!(RUNS_IN_FLIGHT).increment(1.0);
    InFlight(())
}

/// Counts what a finished run did.
pub fn run_finished(flow_name: &str, flow_id: &FlowId, status: RunStatus, metrics: &RunMetrics) {
    let labels = flow_labels(flow_name, flow_id);
    metrics::counter!(RUNS_FINISHED, &status_labels(flow_name, flow_id, status)).increment(1);
    metrics::counter!(RECORDS_READ, &labels).increment(metrics.records_read);
    metrics::counter!(RECORDS_WRITTEN, &labels).increment(metrics.records_written);
    metrics::counter!(RECORDS_REJECTED, &labels).increment(metrics.records_failed);
    metrics::counter!(BYTES_IN, &labels).increment(metrics.bytes_in);
    metrics::counter!(BYTES_OUT, &labels).increment(metrics.bytes_out);
    metrics::counter!(SOURCE_RETRIES, &labels).increment(metrics.retries);
    add_seconds(SOURCE_THROTTLED_SECONDS, &labels, metrics.throttled);
}

/// Sets the health gauges of a flow.
pub fn set_flow_health(flow_name: &str, flow_id: &FlowId, health: &FlowHealth) {
    let labels = flow_labels(flow_name, flow_id);
    metrics::gauge!(CONSECUTIVE_FAILURES, &labels).set(health.consecutive_failures as f64);
    if let Some(ms) = health.last_success_ms {
        metrics::gauge!(LAST_SUCCESS_SECONDS, &labels).set(ms as f64 / 1000.0);
    }
}

/// Sets how late a flow is and its schedule interval.
pub fn set_flow_lag(flow_name: &str, flow_id: &FlowId, lag: Duration, interval: Option<Duration>) {
    let labels = flow_labels(flow_name, flow_id);
    metrics::gauge!(SCHEDULER_LAG_SECONDS, &labels).set(lag.as_secs_f64());
    if let Some(interval) = interval {
        metrics::gauge!(SCHEDULE_INTERVAL_SECONDS, &labels).set(interval.as_secs_f64());
    }
}

/// A scheduled run waiting for its permit; counted in `tributary_runs_queued` while alive.
pub fn queued() -> Queued {
    metrics::gauge!(RUNS_QUEUED).increment(1.0);
    Queued(())
}

/// Keeps a run in `tributary_runs_in_flight` until dropped.
#[derive(Debug)]
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(RUNS_IN_FLIGHT).decrement(1.0);
    }
}

/// Keeps a run in `tributary_runs_queued` until dropped.
#[derive(Debug)]
pub struct Queued(());

impl Drop for Queued {
    fn drop(&mut self) {
        metrics::gauge!(RUNS_QUEUED).decrement(1.0);
    }
}

/// A flow's health as its recorded runs show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowHealth {
    /// Failed runs since the last successful one (cancelled and unfinished runs are skipped).
    pub consecutive_failures: u64,
    /// When the last successful run finished, epoch ms.
    pub last_success_ms: Option<i64>,
}

/// Reads a flow's health from its newest runs in state.
pub fn flow_health(db: &Db, flow_id: &FlowId) -> Result<FlowHealth, StateError> {
    let mut health = FlowHealth::default();
    // Most flows' newest run succeeded: read one run, and more only when it did not.
    let newest = db.runs_for_flow(flow_id, 1)?;
    let runs = match newest.first() {
        None => return Ok(health),
        Some(run) if run.status == StoredStatus::Success => newest,
        Some(_) => db.runs_for_flow(flow_id, HEALTH_SCAN_RUNS)?,
    };
    for run in runs {
        match run.status {
            StoredStatus::Success => {
                health.last_success_ms = Some(run.completed_at_ms.unwrap_or(run.started_at_ms));
                break;
            }
            StoredStatus::Failed => health.consecutive_failures += 1,
            StoredStatus::Cancelled | StoredStatus::Scheduled | StoredStatus::InProgress => {}
        }
    }
    Ok(health)
}

/// How late a flow is at `now`: `now` minus the slot its next window is due at, 0 when that
/// slot is still ahead (or the flow has no future slot).
pub fn lag_at(next_due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    match next_due {
        Some(due) if due < now => (now - due).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// Where a scheduled flow stands against its schedule at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleView {
    pub enabled: bool,
    /// The slot the next window is due at (past when the flow is late or running).
    pub next_due: Option<DateTime<Utc>>,
    /// `now - next_due` when that is past and the flow is enabled, else zero.
    pub lag: Duration,
    /// The schedule's interval near the next slot (None for `once`).
    pub interval: Option<Duration>,
}

/// A registered flow's [`ScheduleView`] from its schedule state (None: it never ran).
pub fn schedule_view(
    flow: &crate::daemon::DaemonFlow,
    state: Option<&tributary_state::FlowScheduleState>,
    now: DateTime<Utc>,
) -> ScheduleView {
    let enabled = state.is_none_or(|state| state.enabled);
    let Some(schedule) = &flow.bundle.schedule else {
        return ScheduleView {
            enabled,
            next_due: None,
            lag: Duration::ZERO,
            interval: None,
        };
    };
    let last_end = state
        .and_then(|state| state.last_window_end_ms)
        .and_then(DateTime::from_timestamp_millis);
    let next_due = crate::schedule::next_due(schedule, &flow.slots, last_end);
    ScheduleView {
        enabled,
        next_due,
        lag: if enabled {
            lag_at(next_due, now)
        } else {
            Duration::ZERO
        },
        interval: flow.slots.interval_near(next_due.unwrap_or(now)),
    }
}

fn add_seconds(name: &'static str, labels: &[(&'static str, String); 2], time: Duration) {
    // `metrics` counters are integers and the unit is the second: whole seconds are counted
    // and the milliseconds below a second are carried to the series' next addition.
    let millis = u64::try_from(time.as_millis()).unwrap_or(u64::MAX);
    carry::add_millis(name, labels, millis);
}

fn flow_labels(flow_name: &str, flow_id: &FlowId) -> [(&'static str, String); 2] {
    [
        ("flow", flow_name.to_owned()),
        ("flow_id", flow_id.as_str().to_owned()),
    ]
}

fn status_labels(
    flow_name: &str,
    flow_id: &FlowId,
    status: RunStatus,
) -> [(&'static str, String); 3] {
    [
        ("flow", flow_name.to_owned()),
        ("flow_id", flow_id.as_str().to_owned()),
        ("status", status.as_str().to_owned()),
    ]
}

mod carry {
    //! Milliseconds below a whole second per series, so a counter in seconds loses no time.

    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    static REMAINDERS: OnceLock<Mutex<HashMap<(String, String), u64>>> = OnceLock::new();

    pub(super) fn add_millis(name: &'static str, labels: &[(&'static str, String); 2], ms: u64) {
        let key = (labels[0].1.clone(), labels[1].1.clone());
        let mut remainders = REMAINDERS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let total = remainders.entry(key).or_default();
        *total = total.saturating_add(ms);
        let whole = *total / 1000;
        *total %= 1000;
        metrics::counter!(name, labels).increment(whole);
    }
}
