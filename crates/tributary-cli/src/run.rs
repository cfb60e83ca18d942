//! `tributary run BUNDLE`: one run of one flow, now, in the foreground.
//!
//! The window: `--window-start/--window-end` when given (refused with exit 2 when it overlaps
//! another window of the flow in state other than its own bounds); a flow without a schedule (or
//! `once`) runs unwindowed; a scheduled flow first finishes a window that is not complete
//! (interrupted, or cut short by `maximumRequest`) with its own bounds, and otherwise runs what
//! is due from state as one window (from where its last window ended — or, the first time, from
//! the beginning with `backfill` — up to the latest slot that has passed), less any time that
//! windows in state cover already (a backfill).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use tributary_engine::coverage;
use tributary_engine::run::{Progress, RunReport, RunRequest, RunStatus, bundle_flow_id, run_flow};
use tributary_engine::schedule::{self, Due, Slots, Window};
use tributary_spec::Frequency;

use crate::cli::{CommonArgs, RunArgs};
use crate::context::{load_bundle, load_config, open_engine};
use crate::{BadInput, RunFailed};

pub fn run(common: &CommonArgs, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let bundle = load_bundle(&args.bundle)?;
    let engine = open_engine(&config)?;
    let flow_id = bundle_flow_id(&bundle.name);

    let window = match (args.window_start, args.window_end) {
        (Some(start), Some(end)) if start >= end => {
            return Err(BadInput(format!(
                "--window-start {start} is not before --window-end {end}"
            ))
            .into());
        }
        (start, Some(end)) => Some(Window { start, end }),
        (Some(start), None) => Some(Window {
            start: Some(start),
            end: Utc::now(),
        }),
        (None, None) => match &bundle.schedule {
            None => None,
            Some(flow_schedule)
                if flow_schedule.frequency == Frequency::Once && flow_schedule.cron.is_none() =>
            {
                None
            }
            Some(flow_schedule) => match coverage::unfinished(&engine.db, &flow_id)?.first() {
                Some(unfinished) => *unfinished,
                None => match due_window(&engine, &flow_id, flow_schedule)? {
                    Some(window) => Some(window),
                    None => {
                        println!(
                            "flow {}: no window is due; use --window-end to run one now",
                            bundle.name
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                },
            },
        },
    };

    let runtime = runtime()?;
    let progress = Arc::new(Progress::default());
    let request = RunRequest {
        flow_id: flow_id.clone(),
        bundle: bundle.clone(),
        window,
        progress: progress.clone(),
    };
    let report = runtime.block_on(async {
        let ticker = spawn_progress(progress.clone(), &bundle.name);
        let interrupt = {
            let progress = progress.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::warn!("interrupted: stopping at the next page boundary (the window resumes on the next run)");
                    progress.cancel();
                }
            })
        };
        let report = run_flow(&engine, request).await;
        interrupt.abort();
        ticker.finish();
        report
    });
    let report = report.map_err(|err| {
        if err.is_bad_input() {
            anyhow::Error::new(BadInput(err.to_string()))
        } else {
            anyhow::Error::new(err)
        }
    })?;
    // A run cut short by `maximumRequest` leaves its window open: the schedule stays.
    if report.status == RunStatus::Success && !report.truncated {
        if let Some(window) = window {
            tributary_engine::run::advance_schedule(&engine.db, &flow_id, &window)
                .context("recording the window in the flow's schedule state")?;
        }
    }
    print_report(args.json, &report)?;
    match report.status {
        RunStatus::Success => Ok(ExitCode::SUCCESS),
        RunStatus::Cancelled => Err(RunFailed(
            "the run was interrupted; run the same command again to resume it".to_owned(),
        )
        .into()),
        _ => Err(RunFailed(format!(
            "the run failed: {}",
            report.error.as_deref().unwrap_or("unknown cause")
        ))
        .into()),
    }
}

/// The window a scheduled flow has due now, less the time windows in state cover already: the
/// first uncovered piece. A due window that is covered entirely moves the schedule past it and
/// the next one is looked at. `None`: nothing is due.
fn due_window(
    engine: &tributary_engine::run::Engine,
    flow_id: &tributary_state::FlowId,
    flow_schedule: &tributary_spec::FlowSchedule,
) -> anyhow::Result<Option<Window>> {
    let slots = Slots::try_new(flow_schedule).map_err(|err| BadInput(err.to_string()))?;
    loop {
        let state = engine.db.schedule_state(flow_id)?;
        let last_end = state
            .and_then(|s| s.last_window_end_ms)
            .and_then(chrono::DateTime::from_timestamp_millis);
        let due = match schedule::due(flow_schedule, &slots, last_end, Utc::now(), 1) {
            Due::Windows(windows) => windows.into_iter().next(),
            Due::Once | Due::Idle { .. } => None,
        };
        let Some(due) = due else {
            return Ok(None);
        };
        match coverage::uncovered(&engine.db, flow_id, due)?.first() {
            Some(piece) => return Ok(Some(*piece)),
            None => {
                tributary_engine::run::advance_schedule(&engine.db, flow_id, &due)
                    .context("moving the schedule past a window earlier runs cover")?;
            }
        }
    }
}

/// The runtime of one-shot commands: async IO on two workers; CPU work runs on blocking threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print_report(json: bool, report: &RunReport) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&report.run_object)?);
        return Ok(());
    }
    let m = &report.metrics;
    println!("run {} {}", report.run_id, report.status.as_str());
    println!("  batch      {}", report.batch_id);
    if report.status == RunStatus::Success {
        println!("  dataset    {}", report.batch_dir.display());
    }
    println!(
        "  records    {} read, {} written, {} rejected, {} with warnings",
        m.records_read, m.records_written, m.records_failed, m.records_warned
    );
    if m.records_rescued > 0 {
        println!(
            "  rescued    {} records had values that did not fit their column: kept in _rescued_data",
            m.records_rescued
        );
    }
    println!(
        "  pages      {} ({} requests, {} retries, {:.1}s throttled)",
        m.pages,
        m.requests,
        m.retries,
        m.throttled.as_secs_f64()
    );
    println!(
        "  bytes      {:.1} MB in, {:.1} MB out in {} files",
        m.bytes_in as f64 / 1e6,
        m.bytes_out as f64 / 1e6,
        m.files_out
    );
    if report.resumed {
        println!("  resumed    from the checkpoint of an interrupted run");
    }
    if report.truncated {
        println!(
            "  truncated  maximumRequest reached with pages left: the window stays open and its next run continues where this one stopped"
        );
    }
    if report.diagnostics_dropped {
        println!(
            "  rejected   rows were not kept: error diagnostics are off (flow options errorDiagnosticsEnabled)"
        );
    }
    if let Some(error) = &report.error {
        println!("  error      {error}");
    }
    Ok(())
}

/// Shows progress: a bar on a terminal, a log line every few seconds otherwise.
pub struct Ticker {
    task: tokio::task::JoinHandle<()>,
    bar: Option<indicatif::ProgressBar>,
}

impl Ticker {
    pub fn finish(self) {
        self.task.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

pub fn spawn_progress(progress: Arc<Progress>, label: &str) -> Ticker {
    let started = Instant::now();
    let is_tty = std::io::stderr().is_terminal();
    let bar = is_tty.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_owned());
        bar
    });
    let shown = bar.clone();
    let label = label.to_owned();
    let task = tokio::spawn(async move {
        let period = if is_tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let mut interval = tokio::time::interval(period);
        interval.tick().await;
        loop {
            interval.tick().await;
            let pages = progress.pages.load(Ordering::Relaxed);
            let records = progress.records.load(Ordering::Relaxed);
            let bytes = progress.bytes.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let mut line = format!(
                "{pages} pages, {records} records, {:.1} MB, {:.0} records/s",
                bytes as f64 / 1e6,
                records as f64 / secs
            );
            let concurrency = progress.fetch_stats().map(|stats| stats.concurrency);
            if let Some(concurrency) = &concurrency {
                line.push_str(&format!(", {}", concurrency_text(concurrency)));
            }
            match (&shown, concurrency) {
                (Some(bar), _) => {
                    bar.set_message(line);
                    bar.tick();
                }
                (None, Some(concurrency)) => tracing::info!(
                    flow = %label,
                    pages,
                    records,
                    bytes,
                    in_flight = concurrency.in_flight,
                    concurrency = concurrency.limit,
                    concurrency_reached = concurrency.reached,
                    stopped_by = growth_stop_name(concurrency.stop),
                    "progress"
                ),
                (None, None) => tracing::info!(flow = %label, pages, records, bytes, "progress"),
            }
        }
    });
    Ticker { task, bar }
}

/// `3 in flight (limit 8, reached 16 of 16, stopped by latency)` for the progress line.
pub fn concurrency_text(concurrency: &tributary_fetch::ConcurrencyStats) -> String {
    format!(
        "{} in flight (limit {}, reached {} of {}, {})",
        concurrency.in_flight,
        concurrency.limit,
        concurrency.reached,
        concurrency.ceiling,
        match concurrency.stop {
            tributary_fetch::GrowthStop::Growing => "growing".to_owned(),
            stop => format!("stopped by {}", growth_stop_name(stop)),
        }
    )
}

/// The run object's name of a [`tributary_fetch::GrowthStop`].
pub fn growth_stop_name(stop: tributary_fetch::GrowthStop) -> &'static str {
    use tributary_fetch::GrowthStop;
    match stop {
        GrowthStop::Growing => "growing",
        GrowthStop::Ceiling => "ceiling",
        GrowthStop::Latency => "latency",
        GrowthStop::Throttled => "throttled",
        GrowthStop::Timeouts => "timeouts",
        GrowthStop::RateLimit => "rateLimit",
        GrowthStop::EndOfData => "endOfData",
        GrowthStop::Sequential => "sequential",
    }
}
