//! `tributary flows [--json]` lists every flow (bundle-defined and API-defined) with state,
//! schedule, next run, last run status and lag; `tributary flows enable|disable F` switches one
//! (F: a flow id or name). Through the running daemon's API when one holds the state, else an
//! in-process API over the state directory (`api_client`).
//!
//! The table fits an 80-column terminal. `--json` prints the API's flow summaries
//! (`/ui/api/flows` items: id, name, state, schedule, nextRunAt, lagSeconds,
//! consecutiveFailures, lastSuccessAt, lastRun) as one array: a stable shape.

use std::process::ExitCode;

use chrono::DateTime;
use serde_json::Value;

use crate::api_client::{Api, connect, error_text};
use crate::cli::{CommonArgs, FlowsAction, FlowsArgs};
use crate::context::load_config;

/// Flows asked for per request while listing them all.
const PAGE: usize = 500;

pub fn run(common: &CommonArgs, args: &FlowsArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let api = connect(&config)?;
    let runtime = crate::run::runtime()?;
    runtime.block_on(async {
        match &args.action {
            None => list(&api, args.json).await,
            Some(FlowsAction::Enable { flow }) => switch(&api, flow, true).await,
            Some(FlowsAction::Disable { flow }) => switch(&api, flow, false).await,
        }
    })
}

async fn all_flows(api: &Api) -> anyhow::Result<Vec<Value>> {
    let mut flows = Vec::new();
    loop {
        let page = api
            .get_ok(&format!(
                "/ui/api/flows?offset={}&limit={PAGE}",
                flows.len()
            ))
            .await?;
        let items = page
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
        let got = items.len();
        flows.extend(items);
        if got == 0 || flows.len() >= total {
            return Ok(flows);
        }
    }
}

async fn list(api: &Api, json: bool) -> anyhow::Result<ExitCode> {
    let flows = all_flows(api).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&flows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if flows.is_empty() {
        println!("no flows");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", header());
    for flow in &flows {
        println!("{}", format_row(flow));
    }
    Ok(ExitCode::SUCCESS)
}

async fn switch(api: &Api, flow: &str, enable: bool) -> anyhow::Result<ExitCode> {
    let flows = all_flows(api).await?;
    let matches: Vec<&Value> = flows
        .iter()
        .filter(|f| {
            f.get("id").and_then(Value::as_str) == Some(flow)
                || f.get("name").and_then(Value::as_str) == Some(flow)
        })
        .collect();
    let target = match matches.as_slice() {
        [one] => *one,
        [] => {
            return Err(crate::BadInput(format!(
                "no flow with id or name {flow:?} (tributary flows lists them)"
            ))
            .into());
        }
        _ => {
            return Err(crate::BadInput(format!(
                "{} flows are named {flow:?}: give the flow id (tributary flows --json shows ids)",
                matches.len()
            ))
            .into());
        }
    };
    let id = target.get("id").and_then(Value::as_str).unwrap_or(flow);
    let name = target.get("name").and_then(Value::as_str).unwrap_or(id);
    let op = if enable { "enable" } else { "disable" };
    let (status, body) = api
        .call(
            "POST",
            &format!("/data/foundation/flowservice/flows/{id}/action?op={op}"),
        )
        .await?;
    if status != 200 {
        anyhow::bail!(
            "{op} flow {name} ({id}): the API answered {status}: {}",
            error_text(&body)
        );
    }
    let via = if api.is_daemon() {
        "through the running daemon"
    } else {
        "in the state directory"
    };
    println!("flow {name} ({id}) {op}d {via}");
    Ok(ExitCode::SUCCESS)
}

fn header() -> String {
    format!(
        "{:<22} {:<8} {:<12} {:<11} {:<9} {:>7} {:>5}",
        "FLOW", "STATE", "SCHEDULE", "NEXT RUN", "LAST", "LAG", "FAILS"
    )
}

/// One flow in 80 columns.
fn format_row(flow: &Value) -> String {
    let text = |key: &str| flow.get(key).and_then(Value::as_str).unwrap_or("-");
    let next = flow
        .get("nextRunAt")
        .and_then(Value::as_i64)
        .and_then(DateTime::from_timestamp_millis)
        .map_or("-".to_owned(), |t| t.format("%m-%d %H:%M").to_string());
    let last = flow
        .pointer("/lastRun/status")
        .and_then(Value::as_str)
        .unwrap_or("never");
    let lag = flow.get("lagSeconds").and_then(Value::as_u64).unwrap_or(0);
    let fails = flow
        .get("consecutiveFailures")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    format!(
        "{:<22} {:<8} {:<12} {:<11} {:<9} {:>7} {:>5}",
        fit(text("name"), 22),
        fit(text("state"), 8),
        fit(text("schedule"), 12),
        next,
        fit(last, 9),
        human_secs(lag),
        fails
    )
}

/// `42s`, `3m12s`, `5h07m`, `12d03h`: at most 7 characters.
pub fn human_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!(
            "{}d{:02}h",
            (secs / 86_400).min(9999),
            (secs % 86_400) / 3600
        ),
    }
}

/// `text` cut to `width` characters (the last one an ellipsis when cut).
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}
