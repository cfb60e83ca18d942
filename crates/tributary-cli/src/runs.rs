//! `tributary runs`: recent runs, newest first — status, start, duration, records read,
//! written and rejected, throttled time — as an 80-column table, or the run objects as JSON
//! with `--json` (a stable shape: the run object as the API returns it).
//!
//! When a running daemon holds the state directory, the runs come from its API (address and
//! credentials from the config); otherwise from the state directory itself.
//!
//! `--flow` takes a flow id as stored, or a bundle name (whose flow id is derived from it with
//! `bundle_flow_id`), so `tributary runs --flow mailchimp-members` works without knowing ids.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::DateTime;
use serde_json::Value;
use tributary_engine::run::bundle_flow_id;
use tributary_state::{Db, FlowId, RunRecord, StateError};

use crate::cli::{CommonArgs, RunsArgs};
use crate::context::load_config;
use crate::flows::{fit, human_secs};

pub fn run(common: &CommonArgs, args: &RunsArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    // Reading runs needs no recovery and no HTTP client: open the state store only.
    let options = crate::context::state_options(&config)?;
    let location = crate::context::state_location(&config)?;
    let docs: Vec<Value> = match Db::open_at(&location, options) {
        Ok(db) => {
            let runs = match &args.flow {
                None => db.recent_runs(args.limit)?,
                Some(flow) => runs_of_flow(&db, flow, args.limit)?,
            };
            runs.into_iter().map(|run| run_doc(&run)).collect()
        }
        Err(StateError::InUse { .. }) => runs_from_daemon(&config, args)?,
        Err(err) => {
            return Err(err).with_context(|| format!("opening {location}"));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if docs.is_empty() {
        println!(
            "no runs recorded in {}",
            crate::context::state_location(&config)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:<16} {:<9} {:<11} {:>6} {:>7} {:>5} {:>7}",
        "RUN", "FLOW", "STATUS", "STARTED", "TIME", "WRITTEN", "REJ", "THROTL"
    );
    for doc in &docs {
        println!("{}", format_row(doc));
    }
    Ok(ExitCode::SUCCESS)
}

/// The runs the daemon's API lists (`/ui/api/runs`): the same run objects.
fn runs_from_daemon(
    config: &tributary_engine::DaemonConfig,
    args: &RunsArgs,
) -> anyhow::Result<Vec<Value>> {
    let api = crate::api_client::connect(config)?;
    let mut path = format!("/ui/api/runs?limit={}", args.limit.clamp(1, 500));
    if let Some(flow) = &args.flow {
        path.push_str(&format!("&flow={}", encode(flow)));
    }
    let body = crate::run::runtime()?.block_on(api.get_ok(&path))?;
    Ok(body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Percent-encodes a query value (flow names are plain, but may hold anything).
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The run object of a stored run, as the API lists it.
fn run_doc(run: &RunRecord) -> Value {
    run.run_doc.clone()
}

/// The runs of the flow named by `flow`: its id when runs are stored under it, else the id of
/// the bundle with that name.
fn runs_of_flow(db: &Db, flow: &str, limit: usize) -> anyhow::Result<Vec<RunRecord>> {
    let by_id = db.runs_for_flow(&FlowId::new(flow), limit)?;
    if !by_id.is_empty() {
        return Ok(by_id);
    }
    Ok(db.runs_for_flow(&bundle_flow_id(flow), limit)?)
}

/// One run in 80 columns: a prefix of its id, flow, status, start, duration, records written
/// and rejected, and time throttled by rate limits.
fn format_row(doc: &Value) -> String {
    let text = |pointer: &str| doc.pointer(pointer).and_then(Value::as_str).unwrap_or("-");
    let count = |pointer: &str| doc.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let started = doc
        .pointer("/metrics/durationSummary/startedAtUTC")
        .and_then(Value::as_i64);
    let completed = doc
        .pointer("/metrics/durationSummary/completedAtUTC")
        .and_then(Value::as_i64);
    let took = match (started, completed) {
        (Some(start), Some(end)) => human_secs(u64::try_from((end - start) / 1000).unwrap_or(0)),
        _ => "-".to_owned(),
    };
    let started = started
        .and_then(DateTime::from_timestamp_millis)
        .map_or("-".to_owned(), |t| t.format("%m-%d %H:%M").to_string());
    format!(
        "{:<12} {:<16} {:<9} {:<11} {:>6} {:>7} {:>5} {:>7}",
        fit(text("/id"), 12),
        fit(text("/flowName"), 16),
        fit(text("/state"), 9),
        started,
        took,
        count("/metrics/recordSummary/outputRecordCount"),
        count("/metrics/recordSummary/failedRecordCount"),
        human_secs(count("/metrics/customSummary/throttledMs") / 1000),
    )
}
