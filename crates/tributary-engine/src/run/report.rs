//! What a run measured, and the run object built from it in the shape of the Flow Service run
//! (reference §7): `metrics` with duration / size / record / file / status summaries and the
//! `copyActivity` (fetch) and `promotionActivity` (write) activities. The API, `run --json` and
//! state all use this one object.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::schedule::Window;

/// Counters of one run. Times per stage are the busy time of that stage's thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    pub pages: u64,
    pub requests: u64,
    pub retries: u64,
    /// Records the source returned.
    pub records_read: u64,
    /// Records published to the dataset.
    pub records_written: u64,
    /// Records rejected (written to `_errors`).
    pub records_failed: u64,
    /// Records written with at least one warning (nullified column, stringified value).
    pub records_warned: u64,
    /// Of `records_warned`: records of this run with a value kept in `_rescued_data`.
    pub records_rescued: u64,
    /// Response bytes received (after decompression).
    pub bytes_in: u64,
    /// Parquet bytes published.
    pub bytes_out: u64,
    pub files_out: u64,
    /// Time requests waited for the rate limiter or a Retry-After pause.
    pub throttled: Duration,
    /// Time the decoder waited for the next page.
    pub fetch_wait: Duration,
    pub decode: Duration,
    pub map: Duration,
    pub encode: Duration,
    pub write: Duration,
    /// CPU time of the decode stage's thread (decode and map), where the platform says.
    pub decode_stage_cpu: Option<Duration>,
    /// CPU time of the encode stage's thread (encode and write), where the platform says.
    pub encode_stage_cpu: Option<Duration>,
    /// How many requests the fetch had in flight: the limit reached, its ceiling, why it
    /// stopped growing, and the requests issued past the last page.
    pub concurrency: Option<tributary_fetch::ConcurrencyStats>,
    /// Row error and warning counts per code (`MAPPER-3700-400`, ...).
    pub error_codes: BTreeMap<String, u64>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Scheduled,
    InProgress,
    Success,
    Failed,
    /// Stopped by a shutdown at a page boundary; resumes from its checkpoint.
    Cancelled,
}

impl RunStatus {
    /// The lower-case word the Flow Service uses in `statusSummary.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Scheduled => "scheduled",
            RunStatus::InProgress => "inProgress",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// Who the run belongs to and where it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct RunIdentity {
    pub run_id: String,
    pub flow_id: String,
    pub flow_name: String,
    pub source_connection_id: String,
    pub target_connection_id: String,
    pub dataset_id: String,
    pub batch_id: String,
    pub window: Option<Window>,
}

/// The outcome handed to the run object.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// `{code, message}` run errors, first the cause.
    pub errors: Vec<(String, String)>,
    /// Published files, relative to the data dir.
    pub files: Vec<String>,
    /// `maximumRequest` stopped the run with pages left (the window stays open).
    pub truncated: bool,
    /// The flow's `maximumRequest`, for the truncation warning.
    pub max_requests: u32,
}

/// The warning code of a run that `maximumRequest` cut short.
pub const TRUNCATED_CODE: &str = "CONNECTOR-1301-200";

/// Builds the Flow Service run object. A run cut short by `maximumRequest` is a success with
/// `"truncated": true` and a warning in `statusSummary.warnings`.
pub fn run_object(identity: &RunIdentity, metrics: &RunMetrics, outcome: &RunOutcome) -> Value {
    let started_ms = outcome.started_at.timestamp_millis();
    let completed_ms = outcome.completed_at.map(|t| t.timestamp_millis());
    let window_start_ms = identity
        .window
        .and_then(|w| w.start)
        .map(|t| t.timestamp_millis());
    let window_end_ms = identity.window.map(|w| w.end.timestamp_millis());
    let errors: Vec<Value> = outcome
        .errors
        .iter()
        .map(|(code, message)| json!({"code": code, "message": message}))
        .collect();
    let code_counts: Vec<Value> = metrics
        .error_codes
        .iter()
        .map(|(code, n)| json!({"code": code, "message": code_message(code), "recordCount": n}))
        .collect();
    let record_summary = json!({
        "inputRecordCount": metrics.records_read,
        "outputRecordCount": metrics.records_written,
        "createdRecordCount": metrics.records_written,
        "updatedRecordCount": 0,
        "skippedRecordCount": 0,
        "deletedRecordCount": 0,
        "failedRecordCount": metrics.records_failed,
        "warningRecordCount": metrics.records_warned,
    });
    let file_info: Vec<Value> = outcome
        .files
        .iter()
        .map(|path| json!({"path": path}))
        .collect();
    let warnings: Vec<Value> = if outcome.truncated {
        vec![json!({
            "code": TRUNCATED_CODE,
            "message": format!(
                "maximumRequest ({}) reached with pages left: what was fetched is published, and the window's next run continues from the saved position",
                outcome.max_requests
            ),
        })]
    } else {
        Vec::new()
    };
    let batch_ids = if outcome.status == RunStatus::Success {
        vec![identity.batch_id.clone()]
    } else {
        vec![]
    };
    json!({
        "id": identity.run_id,
        "flowId": identity.flow_id,
        "flowName": identity.flow_name,
        "flowSpec": {"id": tributary_spec::REST_STORAGE_TO_AEP_FLOW_SPEC_ID, "version": "1.0"},
        "providerRefId": format!("M-{}-incremental-0:{}", identity.flow_id, identity.run_id),
        "etag": format!("\"{}-{}\"", identity.run_id, completed_ms.unwrap_or(started_ms)),
        "params": {
            "windowStartTime": window_start_ms,
            "windowEndTime": window_end_ms,
            "startTime": started_ms,
        },
        "state": outcome.status.as_str(),
        "truncated": outcome.truncated,
        "metrics": {
            "durationSummary": {"startedAtUTC": started_ms, "completedAtUTC": completed_ms},
            "sizeSummary": {"inputBytes": metrics.bytes_in, "outputBytes": metrics.bytes_out},
            "recordSummary": record_summary,
            "fileSummary": {
                "inputFileCount": metrics.pages,
                "outputFileCount": metrics.files_out,
                "skippedFileCount": 0,
                "failedFileCount": 0,
                "manifest": {"fileInfo": file_info},
            },
            "statusSummary": {"status": outcome.status.as_str(), "errors": errors, "warnings": warnings,
                              "extensions": {"errors": code_counts, "truncated": outcome.truncated}},
            "customSummary": {
                "pages": metrics.pages,
                "rescuedRecordCount": metrics.records_rescued,
                "requests": metrics.requests,
                "retries": metrics.retries,
                "throttledMs": millis(metrics.throttled),
                "concurrency": metrics.concurrency.map(|c| json!({
                    "reached": c.reached,
                    "final": c.limit,
                    "ceiling": c.ceiling,
                    "maxInFlight": c.max_in_flight,
                    "stoppedBy": c.stop,
                    "requestsPastEnd": c.past_end_requests,
                })),
                "stageMs": {
                    "fetchWait": millis(metrics.fetch_wait),
                    "decode": millis(metrics.decode),
                    "map": millis(metrics.map),
                    "encode": millis(metrics.encode),
                    "write": millis(metrics.write),
                },
            },
        },
        "activities": [
            {
                "id": format!("{}-copy", identity.run_id),
                "name": "copyActivity",
                "updatedAtUTC": completed_ms.unwrap_or(started_ms),
                "durationSummary": {
                    "startedAtUTC": started_ms,
                    "completedAtUTC": completed_ms,
                    "extensions": {"windowStart": window_start_ms, "windowEnd": window_end_ms},
                },
                "sizeSummary": {"inputBytes": metrics.bytes_in},
                "recordSummary": {"inputRecordCount": metrics.records_read},
                "statusSummary": {"status": outcome.status.as_str(), "extensions": {"type": "one-time"}},
                "sourceInfo": [{"id": identity.source_connection_id, "type": "SourceConnection"}],
            },
            {
                "id": format!("{}-promotion", identity.run_id),
                "name": "promotionActivity",
                "updatedAtUTC": completed_ms.unwrap_or(started_ms),
                "durationSummary": {"startedAtUTC": started_ms, "completedAtUTC": completed_ms},
                "sizeSummary": {"outputBytes": metrics.bytes_out},
                "recordSummary": record_summary,
                "fileSummary": {"outputFileCount": metrics.files_out, "manifest": {"fileInfo": file_info}},
                "statusSummary": {"status": outcome.status.as_str(), "errors": errors, "extensions": {"errors": code_counts}},
                "targetInfo": [{
                    "id": identity.target_connection_id,
                    "type": "TargetConnection",
                    "dataSetId": identity.dataset_id,
                    "reference": {"type": "Batch", "ids": batch_ids},
                }],
            },
        ],
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn code_message(code: &str) -> &'static str {
    match code {
        "MAPPER-3700-400" => "mapper transform error",
        "INGEST-1555-400" => "required field missing or null",
        "INGEST-1401-400" => "corrupt or unparsable row",
        "INGEST-1212-400" => "partial success: some rows were rejected",
        "INGEST-1211-400" => "rows were rejected; error diagnostics are disabled",
        TRUNCATED_CODE => "maximumRequest reached; the window continues at its next run",
        "DECODE-WARN" => "value written as its JSON text",
        super::pipeline::RESCUED_CODE => "value did not fit its column: kept in _rescued_data",
        _ => "row error",
    }
}
