//! `tributary backfill BUNDLE --from T --to T [--step D] [--parallel N]`: historical windows,
//! resumable. Re-invoking with the same range and step skips the windows that completed and
//! resumes the interrupted ones (see the engine's `backfill` module).
//!
//! Output: one line per window as it starts and ends (plus a bar per running window on a
//! terminal), then a summary. Exit 0 when every window holds its data, 1 when any window
//! failed or was interrupted.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tributary_engine::backfill::{
    self, BackfillEvent, BackfillRequest, WindowOutcome, WindowState,
};
use tributary_engine::run::{RunStatus, bundle_flow_id};
use tributary_engine::schedule::Window;

use crate::cli::{BackfillArgs, CommonArgs};
use crate::context::{load_bundle, load_config, open_engine};
use crate::{BadInput, RunFailed};

pub fn run(common: &CommonArgs, args: &BackfillArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let bundle = load_bundle(&args.bundle)?;
    let step = chrono::Duration::from_std(args.step)
        .map_err(|_| BadInput(format!("--step {:?} is too long", args.step)))?;
    let engine = open_engine(&config)?;
    let flow_id = bundle_flow_id(&bundle.name);
    let planned =
        backfill::plan(&engine.db, &flow_id, args.from, args.to, step).map_err(|err| {
            if err.is_bad_input() {
                anyhow::Error::new(BadInput(err.to_string()))
            } else {
                err.into()
            }
        })?;
    let n_windows = planned.len();
    let n_complete = planned
        .iter()
        .filter(|p| p.state == WindowState::Complete)
        .count();
    let n_interrupted = planned
        .iter()
        .filter(|p| p.state == WindowState::Interrupted)
        .count();
    eprintln!(
        "backfill {}: {n_windows} windows of {} from {} to {}; {n_complete} already complete, {n_interrupted} to resume",
        bundle.name,
        humantime::format_duration(args.step),
        args.from.to_rfc3339(),
        args.to.to_rfc3339()
    );
    let request = BackfillRequest {
        flow_id,
        bundle: bundle.clone(),
        parallel: args.parallel.get() as usize,
    };
    let progresses: Vec<_> = planned.iter().map(|p| p.progress.clone()).collect();
    let display = Arc::new(Display::new(n_windows, &planned));

    let runtime = crate::run::runtime()?;
    let report = runtime.block_on(async {
        let interrupt = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: stopping running windows at the next page boundary (re-invoke to resume)");
                for progress in &progresses {
                    progress.cancel();
                }
            }
        });
        let on_event = {
            let display = display.clone();
            Arc::new(move |event: &BackfillEvent| display.show(event))
        };
        let report = backfill::run_backfill(&engine, &request, planned, on_event).await;
        interrupt.abort();
        report
    });
    display.finish();

    if args.json {
        let runs: Vec<&serde_json::Value> = report
            .windows
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                WindowOutcome::Ran(run) => Some(&run.run_object),
                _ => None,
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).context("printing the runs")?
        );
    }
    eprintln!(
        "backfill {}: {} windows: {} ingested now ({} records), {} skipped (complete before), {} failed, {} unfinished",
        bundle.name,
        n_windows,
        report.n_succeeded(),
        report.records_written(),
        report.n_skipped(),
        report.n_failed(),
        report.n_unfinished()
    );
    if report.n_failed() > 0 {
        return Err(RunFailed(format!(
            "{} of {n_windows} windows failed; re-invoke to retry them",
            report.n_failed()
        ))
        .into());
    }
    if report.n_unfinished() > 0 {
        return Err(RunFailed(format!(
            "{} of {n_windows} windows are unfinished (interrupted, or cut short by maximumRequest); re-invoke the same command to go on",
            report.n_unfinished()
        ))
        .into());
    }
    // The range holds its data: a scheduled flow's schedule continues after it.
    if backfill::compose_schedule(&engine.db, &request.flow_id, &bundle, args.from, args.to)? {
        eprintln!(
            "backfill {}: the flow's schedule now continues from {}",
            bundle.name,
            args.to.to_rfc3339()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Per-window lines, and on a terminal a bar per running window under an overall bar.
struct Display {
    n_windows: usize,
    bars: Option<Bars>,
}

struct Bars {
    multi: indicatif::MultiProgress,
    overall: indicatif::ProgressBar,
    running: Mutex<Vec<(usize, indicatif::ProgressBar)>>,
    progresses: Vec<Arc<tributary_engine::run::Progress>>,
}

impl Display {
    fn new(n_windows: usize, planned: &[backfill::PlannedWindow]) -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = indicatif::MultiProgress::new();
            let overall = multi.add(indicatif::ProgressBar::new(n_windows as u64));
            overall.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} windows {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Bars {
                multi,
                overall,
                running: Mutex::new(Vec::new()),
                progresses: planned.iter().map(|p| p.progress.clone()).collect(),
            }
        });
        Self { n_windows, bars }
    }

    fn show(&self, event: &BackfillEvent) {
        let line = match event {
            BackfillEvent::Started {
                index,
                window,
                resumed,
            } => {
                let verb = if *resumed { "resuming" } else { "starting" };
                format!(
                    "window {}/{} {} {verb}",
                    index + 1,
                    self.n_windows,
                    describe(window)
                )
            }
            BackfillEvent::Finished {
                index,
                window,
                outcome,
            } => {
                let how = match outcome {
                    WindowOutcome::Skipped => "skipped (complete)".to_owned(),
                    WindowOutcome::NotStarted => "not started (interrupted)".to_owned(),
                    WindowOutcome::Error(message) => format!("failed: {message}"),
                    WindowOutcome::Ran(report) => match report.status {
                        RunStatus::Success => format!(
                            "done: {} records written, batch {}",
                            report.metrics.records_written, report.batch_id
                        ),
                        RunStatus::Cancelled => "interrupted at a page boundary".to_owned(),
                        _ => format!(
                            "failed: {}",
                            report.error.as_deref().unwrap_or("unknown cause")
                        ),
                    },
                };
                format!(
                    "window {}/{} {} {how}",
                    index + 1,
                    self.n_windows,
                    describe(window)
                )
            }
        };
        let Some(bars) = &self.bars else {
            eprintln!("{line}");
            return;
        };
        let _ = bars.multi.println(&line);
        let mut running = bars
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            BackfillEvent::Started { index, window, .. } => {
                let bar = bars.multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_prefix(describe(window));
                bar.set_style(
                    indicatif::ProgressStyle::with_template("  {spinner} {prefix} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                let progress = bars.progresses.get(*index).cloned();
                let ticking = bar.clone();
                // The bar's message follows the window's live counters.
                std::thread::spawn(move || {
                    while !ticking.is_finished() {
                        if let Some(progress) = &progress {
                            let records =
                                progress.records.load(std::sync::atomic::Ordering::Relaxed);
                            let pages = progress.pages.load(std::sync::atomic::Ordering::Relaxed);
                            ticking.set_message(format!("{pages} pages, {records} records"));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                });
                running.push((*index, bar));
            }
            BackfillEvent::Finished { index, .. } => {
                if let Some(pos) = running.iter().position(|(i, _)| i == index) {
                    let (_, bar) = running.remove(pos);
                    bar.finish_and_clear();
                    bars.multi.remove(&bar);
                }
                bars.overall.inc(1);
            }
        }
    }

    fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.overall.finish_and_clear();
        }
    }
}

fn describe(window: &Window) -> String {
    let start = window.start.map_or("(all history)".to_owned(), |t| {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    });
    format!("[{start}, {})", window.end.format("%Y-%m-%dT%H:%M:%SZ"))
}
