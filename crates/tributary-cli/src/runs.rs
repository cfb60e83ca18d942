//! `tributary runs`: recent runs recorded in state, newest first — status, window, record
//! counts and batch — as a table, or the run objects as JSON with `--json`.
//!
//! `--flow` takes a flow id as stored, or a bundle name (whose flow id is derived from it with
//! `bundle_flow_id`), so `tributary runs --flow mailchimp-members` works without knowing ids.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::DateTime;
use serde_json::Value;
use tributary_engine::run::bundle_flow_id;
use tributary_state::{Db, FlowId, RunRecord, RunStatus};

use crate::cli::{CommonArgs, RunsArgs};
use crate::context::load_config;

pub fn run(common: &CommonArgs, args: &RunsArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    // Reading runs needs no recovery and no HTTP client: open the state store only.
    let secret_key = match config.state.secret_key.trim() {
        "" => None,
        key => Some(
            tributary_state::SecretKey::from_base64(key)
                .map_err(|err| crate::BadInput(format!("config state.secret_key: {err}")))?,
        ),
    };
    let options = tributary_state::StateOptions {
        secret_key,
        ..Default::default()
    };
    let db = Db::open(&config.state_dir, options)
        .with_context(|| format!("opening state in {}", config.state_dir.display()))?;
    let runs = match &args.flow {
        None => db.recent_runs(args.limit)?,
        Some(flow) => runs_of_flow(&db, flow, args.limit)?,
    };
    if args.json {
        let docs: Vec<&Value> = runs.iter().map(|run| &run.run_doc).collect();
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs recorded in {}", config.state_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32}  {:<20}  {:<11}  {:<20}  {:<20}  {:>10}  {:>10}  {:>8}  BATCH",
        "RUN", "FLOW", "STATUS", "WINDOW START", "WINDOW END", "READ", "WRITTEN", "FAILED"
    );
    for run in &runs {
        println!("{}", format_row(run));
    }
    Ok(ExitCode::SUCCESS)
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

fn format_row(run: &RunRecord) -> String {
    let flow_name = run
        .run_doc
        .get("flowName")
        .and_then(Value::as_str)
        .unwrap_or(run.flow_id.as_str());
    let (window_start, window_end) = match run.window {
        // An open start is recorded as the epoch: show it as "all history".
        Some(window) if window.start_ms == 0 => {
            ("(all history)".to_owned(), format_ms(window.end_ms))
        }
        Some(window) => (format_ms(window.start_ms), format_ms(window.end_ms)),
        None => ("-".to_owned(), "-".to_owned()),
    };
    let summary = run.run_doc.pointer("/metrics/recordSummary");
    let count = |field: &str| {
        summary
            .and_then(|s| s.get(field))
            .and_then(Value::as_u64)
            .map_or("-".to_owned(), |n| n.to_string())
    };
    format!(
        "{:<32}  {:<20}  {:<11}  {:<20}  {:<20}  {:>10}  {:>10}  {:>8}  {}",
        run.id.as_str(),
        truncate(flow_name, 20),
        status_name(run.status),
        window_start,
        window_end,
        count("inputRecordCount"),
        count("outputRecordCount"),
        count("failedRecordCount"),
        run.batch_id.as_ref().map_or("-", |b| b.as_str()),
    )
}

fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Scheduled => "scheduled",
        RunStatus::InProgress => "inProgress",
        RunStatus::Success => "success",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
    }
}

fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}
