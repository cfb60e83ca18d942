//! Backfill: ingests a range of history as consecutive half-open windows, several at once.
//!
//! [`plan`] looks up the windows of the flow that already cover part of `[from, to)`: a complete
//! one is skipped, one that is not complete (interrupted, or cut short by `maximumRequest`) runs
//! again with its own bounds — `run_flow` resumes or continues it — and only the time no window
//! covers is split into new windows of `step` (`schedule::split_range`). So a backfill that was
//! interrupted (Ctrl-C, kill -9) continues where it stopped when re-invoked, and two backfills of
//! one range with different steps never fetch a record twice: committed windows of a flow never
//! overlap (`crate::coverage`). [`run_backfill`] runs the planned windows, at most `parallel` at a
//! time, as tokio tasks sharing one [`Engine`] (and so one rate-limiter registry).
//!
//! Boundaries are exact: windows are `[start, end)` and the fetcher sends them as half-open
//! schedule parameters, so a record whose time equals a boundary lands in exactly one window.
//!
//! Backfill and schedule compose ([`compose_schedule`]): once every window of `[from, to)` holds
//! its data, a scheduled flow whose schedule has not run yet, or whose last window ended inside
//! the range, moves its schedule to `to`, so the daemon's next window starts there.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Semaphore;
use tributary_spec::FlowBundle;
use tributary_state::{CheckpointStatus, Db, FlowId};

use crate::coverage;
use crate::run::{
    Engine, Progress, RunError, RunReport, RunRequest, RunStatus, advance_schedule, run_flow,
    window_key,
};
use crate::schedule::{Window, split_range};

/// The flow a backfill runs and how many windows run at once (the range is in the plan).
#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub flow_id: FlowId,
    pub bundle: Arc<FlowBundle>,
    /// Windows running at the same time (at least 1).
    pub parallel: usize,
}

/// One window of a backfill and what state says about it before it runs.
#[derive(Debug, Clone)]
pub struct PlannedWindow {
    /// Position in the range, 0-based.
    pub index: usize,
    pub window: Window,
    pub state: WindowState,
    /// Live counters of the window's run; `cancel()` on it stops the window (or keeps it from
    /// starting).
    pub progress: Arc<Progress>,
}

/// A window's standing before the backfill runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Never run (or its earlier run failed before recording anything).
    New,
    /// An earlier run was interrupted: it resumes from its checkpoint.
    Interrupted,
    /// Already ingested: skipped.
    Complete,
}

/// How one window ended.
#[derive(Debug, Clone)]
pub enum WindowOutcome {
    /// Complete before this backfill started.
    Skipped,
    /// Cancelled before it started.
    NotStarted,
    /// The run ran; its report says how it ended (success, failed or cancelled).
    Ran(Box<RunReport>),
    /// The run could not start (state or dataset trouble, bad input).
    Error(String),
}

/// Something worth showing while a backfill runs.
#[derive(Debug, Clone)]
pub enum BackfillEvent {
    Started {
        index: usize,
        window: Window,
        resumed: bool,
    },
    Finished {
        index: usize,
        window: Window,
        outcome: WindowOutcome,
    },
}

/// Every window of a backfill, in range order, and how it ended.
#[derive(Debug, Clone)]
pub struct BackfillReport {
    pub windows: Vec<(Window, WindowOutcome)>,
}

impl WindowOutcome {
    /// Whether the window holds its data now (ingested before or by this backfill).
    pub fn is_done(&self) -> bool {
        match self {
            WindowOutcome::Skipped => true,
            // A run cut short by `maximumRequest` published part of its window: not done yet.
            WindowOutcome::Ran(report) => report.status == RunStatus::Success && !report.truncated,
            WindowOutcome::NotStarted | WindowOutcome::Error(_) => false,
        }
    }

    /// Whether the window failed (as opposed to being cancelled or skipped).
    pub fn is_failure(&self) -> bool {
        match self {
            WindowOutcome::Error(_) => true,
            WindowOutcome::Ran(report) => report.status == RunStatus::Failed,
            WindowOutcome::Skipped | WindowOutcome::NotStarted => false,
        }
    }
}

impl BackfillReport {
    pub fn n_skipped(&self) -> usize {
        self.windows
            .iter()
            .filter(|(_, o)| matches!(o, WindowOutcome::Skipped))
            .count()
    }

    pub fn n_succeeded(&self) -> usize {
        self.windows
            .iter()
            .filter(|(_, o)| o.is_done() && !matches!(o, WindowOutcome::Skipped))
            .count()
    }

    pub fn n_failed(&self) -> usize {
        self.windows.iter().filter(|(_, o)| o.is_failure()).count()
    }

    /// Windows that neither hold their data nor failed: cancelled or never started.
    pub fn n_unfinished(&self) -> usize {
        self.windows
            .iter()
            .filter(|(_, o)| !o.is_done() && !o.is_failure())
            .count()
    }

    pub fn records_written(&self) -> u64 {
        self.windows
            .iter()
            .map(|(_, o)| match o {
                WindowOutcome::Ran(r) if r.status == RunStatus::Success => {
                    r.metrics.records_written
                }
                _ => 0,
            })
            .sum()
    }
}

/// Plans the windows of `[from, to)`: see the module header. Fails on a range that is empty or
/// a step that is not positive.
pub fn plan(
    db: &Db,
    flow_id: &FlowId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) -> Result<Vec<PlannedWindow>, RunError> {
    if from >= to {
        return Err(RunError::BadInput(format!(
            "--from {} is not before --to {}",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    if step <= Duration::zero() {
        return Err(RunError::BadInput(format!(
            "--step: expected a positive duration, found {step}"
        )));
    }
    let range = Window {
        start: Some(from),
        end: to,
    };
    let mut windows: Vec<(Window, WindowState)> = Vec::new();
    for existing in db.windows_overlapping(&window_key(flow_id, Some(&range)))? {
        // The unwindowed run of a flow without a schedule covers all of time: nothing to plan.
        let Some(window) = coverage::window_of(&existing.window) else {
            return Err(RunError::BadInput(format!(
                "the flow has an unwindowed batch ({}) covering all of its source; a backfill of windows would ingest its records again",
                existing.batch_id
            )));
        };
        let state = match existing.status {
            CheckpointStatus::Complete => WindowState::Complete,
            CheckpointStatus::InProgress
            | CheckpointStatus::Committing
            | CheckpointStatus::Open => WindowState::Interrupted,
        };
        windows.push((window, state));
    }
    for gap in coverage::uncovered(db, flow_id, range)? {
        let Some(gap_start) = gap.start else {
            continue;
        };
        let split = split_range(gap_start, gap.end, step).map_err(RunError::BadInput)?;
        windows.extend(split.into_iter().map(|window| (window, WindowState::New)));
    }
    windows.sort_by_key(|(window, _)| (window.start, window.end));
    Ok(windows
        .into_iter()
        .enumerate()
        .map(|(index, (window, state))| PlannedWindow {
            index,
            window,
            state,
            progress: Arc::new(Progress::default()),
        })
        .collect())
}

/// Moves a scheduled flow's schedule to `to` after a backfill of `[from, to)` that left every
/// window of the range holding its data — when the schedule has not run yet or its last window
/// ended inside the range (so no time is skipped that the schedule would have covered). Returns
/// whether it moved.
pub fn compose_schedule(
    db: &Db,
    flow_id: &FlowId,
    bundle: &FlowBundle,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<bool, RunError> {
    if bundle.schedule.is_none() {
        return Ok(false);
    }
    let last_end = db
        .schedule_state(flow_id)?
        .and_then(|state| state.last_window_end_ms);
    let joins =
        last_end.is_none_or(|end| (from.timestamp_millis()..=to.timestamp_millis()).contains(&end));
    if !joins {
        return Ok(false);
    }
    advance_schedule(
        db,
        flow_id,
        &Window {
            start: Some(from),
            end: to,
        },
    )?;
    Ok(last_end.is_none_or(|end| end < to.timestamp_millis()))
}

/// Runs the planned windows, at most `parallel` at once, and reports each one through
/// `on_event` as it starts and ends. Windows start in range order. A failed window does not
/// stop the others.
pub async fn run_backfill(
    engine: &Engine,
    request: &BackfillRequest,
    planned: Vec<PlannedWindow>,
    on_event: Arc<dyn Fn(&BackfillEvent) + Send + Sync>,
) -> BackfillReport {
    let permits = Arc::new(Semaphore::new(request.parallel.max(1)));
    let mut tasks = Vec::with_capacity(planned.len());
    for planned_window in planned {
        let PlannedWindow {
            index,
            window,
            state,
            progress,
        } = planned_window;
        if state == WindowState::Complete {
            let outcome = WindowOutcome::Skipped;
            on_event(&BackfillEvent::Finished {
                index,
                window,
                outcome: outcome.clone(),
            });
            tasks.push(Task::Done(window, outcome));
            continue;
        }
        // Acquire here, in range order, so windows start oldest first.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            tasks.push(Task::Done(window, WindowOutcome::NotStarted));
            continue;
        };
        if progress.is_cancelled() {
            let outcome = WindowOutcome::NotStarted;
            on_event(&BackfillEvent::Finished {
                index,
                window,
                outcome: outcome.clone(),
            });
            tasks.push(Task::Done(window, outcome));
            continue;
        }
        let engine = engine.clone();
        let run_request = RunRequest {
            flow_id: request.flow_id.clone(),
            bundle: request.bundle.clone(),
            window: Some(window),
            progress,
        };
        let on_event = on_event.clone();
        on_event(&BackfillEvent::Started {
            index,
            window,
            resumed: state == WindowState::Interrupted,
        });
        let handle = tokio::spawn(async move {
            let outcome = match run_flow(&engine, run_request).await {
                Ok(report) => WindowOutcome::Ran(Box::new(report)),
                Err(err) => WindowOutcome::Error(err.to_string()),
            };
            drop(permit);
            on_event(&BackfillEvent::Finished {
                index,
                window,
                outcome: outcome.clone(),
            });
            outcome
        });
        tasks.push(Task::Running(window, handle));
    }
    let mut windows = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task {
            Task::Done(window, outcome) => windows.push((window, outcome)),
            Task::Running(window, handle) => {
                let outcome = handle.await.unwrap_or_else(|err| {
                    WindowOutcome::Error(format!("the window's task panicked: {err}"))
                });
                windows.push((window, outcome));
            }
        }
    }
    BackfillReport { windows }
}

enum Task {
    Done(Window, WindowOutcome),
    Running(Window, tokio::task::JoinHandle<WindowOutcome>),
}

#[cfg(test)]
mod tests;
