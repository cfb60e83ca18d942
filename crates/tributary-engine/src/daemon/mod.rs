//! The daemon's scheduler loop: starts runs of registered flows when their schedules make
//! windows due, under a global cap, and stops gracefully.
//!
//! The loop ([`run_scheduler`]) wakes at the earliest next slot of any flow (or when a flow's
//! runs end, or at shutdown) and never polls: an idle daemon sleeps in one timer. At each wake
//! it computes, for every enabled flow that is not running, `schedule::due(..)` from the flow's
//! `last_window_end` in state and the [`Clock`]'s `now`, and hands the due windows to one task
//! per flow, which runs them in order — so two runs of one flow never overlap — each holding a
//! permit of the global semaphore (`max_concurrent_runs`). After a successful window the flow's
//! schedule advances (`advance_schedule`) and its run history is pruned; after a failed one the
//! flow's remaining windows wait for its next slot (no hot retry loop).
//!
//! Shutdown: [`Shutdown::trigger`] stops new runs from starting, cancels the running ones (they
//! stop at the next page boundary and resume later from their checkpoint), and waits at most
//! `shutdown_grace` for them.
//!
//! What runs a window is a function given by the caller ([`WindowRunner`]): `run_flow` in
//! production ([`engine_runner`]), a recording fake in the tests; time comes from a [`Clock`]
//! trait object (the system clock in production, one tied to tokio's pausable clock in tests).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::{info, warn};
use tributary_spec::FlowBundle;
use tributary_state::{Db, FlowId, FlowScheduleState, LeaseHold};

use futures::FutureExt as _;

use crate::coverage;
use crate::run::{Engine, Progress, RunError, RunRequest, RunStatus, advance_schedule, run_flow};
use crate::schedule::{Due, ScheduleError, Slots, Window, due};

mod cluster;
mod registry;

pub use cluster::ClusterOptions;
pub use registry::FlowRegistry;

/// Where the scheduler gets the time from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// A flow the daemon schedules: its id, bundle and compiled schedule.
#[derive(Debug, Clone)]
pub struct DaemonFlow {
    pub flow_id: FlowId,
    pub bundle: Arc<FlowBundle>,
    pub slots: Slots,
}

/// The scheduler's knobs (from `[scheduler]` and `[limits]` of the config).
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub max_catch_up_windows: u32,
    /// Finished runs kept per flow.
    pub run_history: u32,
    pub max_concurrent_runs: u32,
    pub shutdown_grace: std::time::Duration,
    /// Set on a node of a shared state (the state's `Db` joined a cluster): flows run under
    /// leases (`cluster`). None: this process holds every flow.
    pub cluster: Option<ClusterOptions>,
}

/// One run the scheduler starts: a flow's window (None: the single run of a `once` flow).
#[derive(Debug, Clone)]
pub struct ScheduledRun {
    pub flow_id: FlowId,
    pub bundle: Arc<FlowBundle>,
    pub window: Option<Window>,
    /// The slot the run belongs to (its window's end, or `startTime` for `once`): how late the
    /// run started is `now - slot`.
    pub slot: DateTime<Utc>,
    pub progress: Arc<Progress>,
}

/// Runs one window and says how it ended.
pub type WindowRunner =
    Arc<dyn Fn(ScheduledRun) -> Pin<Box<dyn Future<Output = RunStatus> + Send>> + Send + Sync>;

/// Asks a running scheduler to stop; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

/// What the scheduler did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerReport {
    /// Runs handed to the runner (windows that were due but not started before shutdown are
    /// not counted).
    pub runs_started: u64,
    /// Runs still going when the grace period ended (they were cancelled and left behind).
    pub abandoned: u64,
}

/// A flow that cannot be scheduled.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("flow {flow}: {source}")]
    Schedule { flow: String, source: ScheduleError },
    #[error("state: {0}")]
    State(#[from] tributary_state::StateError),
    #[error("{0}")]
    Internal(String),
}

#[derive(Debug, Default)]
struct ShutdownInner {
    notify: Notify,
    triggered: std::sync::atomic::AtomicBool,
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.inner
            .triggered
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.inner
            .triggered
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn wait(&self) {
        // Register before checking the flag, so a trigger between the two is not missed.
        let notified = self.inner.notify.notified();
        if self.is_triggered() {
            return;
        }
        notified.await;
    }
}

impl DaemonFlow {
    /// A scheduled flow for a bundle; None for a bundle without `scheduleParams` (nothing to
    /// schedule: such flows run only on demand).
    pub fn try_new(flow_id: FlowId, bundle: Arc<FlowBundle>) -> Result<Option<Self>, DaemonError> {
        let Some(schedule) = &bundle.schedule else {
            return Ok(None);
        };
        let slots = Slots::try_new(schedule).map_err(|source| DaemonError::Schedule {
            flow: bundle.name.clone(),
            source,
        })?;
        Ok(Some(Self {
            flow_id,
            bundle,
            slots,
        }))
    }
}

/// The production runner: `run_flow` on the shared engine.
pub fn engine_runner(engine: Engine) -> WindowRunner {
    Arc::new(move |scheduled: ScheduledRun| {
        let engine = engine.clone();
        Box::pin(async move {
            let request = RunRequest {
                flow_id: scheduled.flow_id.clone(),
                bundle: scheduled.bundle.clone(),
                window: scheduled.window,
                progress: scheduled.progress.clone(),
            };
            match run_flow(&engine, request).await {
                Ok(report) => report.status,
                Err(err) => {
                    warn!(flow = %scheduled.bundle.name, flow_id = %scheduled.flow_id, error = %err, "run could not start");
                    RunStatus::Failed
                }
            }
        })
    })
}

/// What one flow's task sends back when its windows are done.
#[derive(Debug)]
struct FlowDone {
    flow_id: FlowId,
    /// Set when a window failed: the flow waits for this instant before trying again.
    retry_at: Option<DateTime<Utc>>,
}

/// Runs the scheduler until `shutdown` is triggered; then cancels running runs and waits for
/// them at most `options.shutdown_grace`. The flows are re-read from `flows` at every wake, and a
/// change to them wakes the loop.
pub async fn run_scheduler(
    db: Db,
    flows: FlowRegistry,
    options: SchedulerOptions,
    clock: Arc<dyn Clock>,
    runner: WindowRunner,
    shutdown: Shutdown,
) -> Result<SchedulerReport, DaemonError> {
    let permits = Arc::new(Semaphore::new(options.max_concurrent_runs.max(1) as usize));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<FlowDone>();
    let mut running: HashSet<FlowId> = HashSet::new();
    let mut retry_at: HashMap<FlowId, DateTime<Utc>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let live: Arc<std::sync::Mutex<HashMap<FlowId, Arc<Progress>>>> = Arc::default();
    let runs_started = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut report = SchedulerReport::default();
    let mut flows_changed = flows.watch();
    let keep_alive = options.cluster.as_ref().map(|cluster| {
        tokio::spawn(cluster::keep_alive(
            db.clone(),
            cluster.listen.clone(),
            cluster.limiters.clone(),
            live.clone(),
            shutdown.clone(),
        ))
    });

    while !shutdown.is_triggered() {
        flows_changed.borrow_and_update();
        let current_flows = flows.snapshot();
        let now = clock.now();
        let mut next_wake: Option<DateTime<Utc>> = None;
        let mut wake_at = |t: DateTime<Utc>| next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
        let states = read_states(&db).await?;
        let mut candidates: Vec<(DaemonFlow, Option<DateTime<Utc>>)> = Vec::new();
        for flow in &current_flows {
            if running.contains(&flow.flow_id) {
                continue;
            }
            let state = states.get(&flow.flow_id);
            if state.is_some_and(|s| !s.enabled) {
                continue;
            }
            if let Some(&at) = retry_at.get(&flow.flow_id) {
                if at > now {
                    wake_at(at);
                    continue;
                }
                retry_at.remove(&flow.flow_id);
            }
            if flow.bundle.schedule.is_none() {
                continue;
            }
            let last_end = state
                .and_then(|s| s.last_window_end_ms)
                .and_then(DateTime::from_timestamp_millis);
            candidates.push((flow.clone(), last_end));
        }
        let free_slots =
            (options.max_concurrent_runs.max(1) as usize).saturating_sub(running.len());
        let (planned, wakes) = {
            let db = db.clone();
            let max_catch_up = options.max_catch_up_windows;
            let cluster = options.cluster.clone();
            tokio::task::spawn_blocking(move || {
                plan_due(
                    &db,
                    cluster.as_ref(),
                    candidates,
                    now,
                    max_catch_up,
                    free_slots,
                )
            })
            .await
            .map_err(|err| {
                DaemonError::Internal(format!("planning the due windows panicked: {err}"))
            })?
        };
        for wake in wakes {
            wake_at(wake);
        }
        if let Some(cluster) = &options.cluster {
            // Other nodes release flows and add work without telling us.
            let poll = chrono::TimeDelta::from_std(cluster.poll_interval)
                .unwrap_or(chrono::TimeDelta::seconds(1));
            wake_at(now + poll);
        }
        for (flow, steps, lease) in planned {
            let steps = match steps {
                Ok(Planned::Idle { next }) => {
                    if let Some(next) = next {
                        wake_at(next);
                    }
                    continue;
                }
                Ok(Planned::Steps(steps)) => steps,
                Err(err) => {
                    warn!(flow = %flow.bundle.name, flow_id = %flow.flow_id, error = %err, "cannot read the flow's windows; trying again later");
                    continue;
                }
            };
            running.insert(flow.flow_id.clone());
            let job = FlowJob {
                db: db.clone(),
                flow,
                steps,
                permits: permits.clone(),
                runner: runner.clone(),
                shutdown: shutdown.clone(),
                clock: clock.clone(),
                run_history: options.run_history,
                live: live.clone(),
                runs_started: runs_started.clone(),
                done: done_tx.clone(),
                lease,
            };
            tasks.spawn(run_flow_windows(job));
        }

        let sleep = match next_wake {
            Some(t) => (t - clock.now()).to_std().unwrap_or_default(),
            // Nothing scheduled: sleep until a run ends or shutdown (a day bounds the wait).
            None => std::time::Duration::from_secs(86_400),
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = shutdown.wait() => break,
            // A flow was added, edited or removed: recompute what is due.
            Ok(()) = flows_changed.changed() => {}
            Some(done) = done_rx.recv() => {
                running.remove(&done.flow_id);
                if let Some(at) = done.retry_at {
                    retry_at.insert(done.flow_id, at);
                }
                // Collect the other flows that ended meanwhile before recomputing.
                while let Ok(done) = done_rx.try_recv() {
                    running.remove(&done.flow_id);
                    if let Some(at) = done.retry_at {
                        retry_at.insert(done.flow_id, at);
                    }
                }
            }
        }
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }

    // Graceful stop: no new runs (flow tasks check the flag), cancel running ones.
    let cancelled: Vec<Arc<Progress>> = live
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .values()
        .cloned()
        .collect();
    if !cancelled.is_empty() {
        info!(
            runs = cancelled.len(),
            "stopping: cancelling running runs at their next page boundary"
        );
    }
    for progress in &cancelled {
        progress.cancel();
    }
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        report.abandoned = tasks.len() as u64;
        warn!(
            runs = tasks.len(),
            grace_secs = options.shutdown_grace.as_secs(),
            "runs did not stop within the grace period"
        );
        tasks.abort_all();
    }
    if let Some(keep_alive) = keep_alive {
        // It stops at the shutdown signal, after which no lease is renewed.
        let _ = keep_alive.await;
    }
    report.runs_started = runs_started.load(std::sync::atomic::Ordering::Relaxed);
    Ok(report)
}

/// Plans the candidates' due steps. On a node, first claims the leases of those that look due
/// (at most `free_slots`, see `cluster`); a planned flow with nothing to do gives its lease back.
/// Also returns instants to wake at. Blocking.
#[allow(clippy::type_complexity)] // One use; a named type would only rename the tuple.
fn plan_due(
    db: &Db,
    cluster: Option<&ClusterOptions>,
    candidates: Vec<(DaemonFlow, Option<DateTime<Utc>>)>,
    now: DateTime<Utc>,
    max_catch_up: u32,
    free_slots: usize,
) -> (
    Vec<(
        DaemonFlow,
        Result<Planned, tributary_state::StateError>,
        Option<LeaseHold>,
    )>,
    Vec<DateTime<Utc>>,
) {
    let mut wakes = Vec::new();
    let Some(cluster) = cluster else {
        let planned = candidates
            .into_iter()
            .map(|(flow, last_end)| {
                let steps = plan_steps(db, &flow, last_end, now, max_catch_up);
                (flow, steps, None)
            })
            .collect();
        return (planned, wakes);
    };
    let claimed = match cluster::claim_due(
        db,
        &cluster.layout,
        candidates,
        now,
        max_catch_up,
        free_slots,
        &mut |at| wakes.push(at),
    ) {
        Ok(claimed) => claimed,
        Err(err) => {
            warn!(error = %err, "cannot read the due flows and their leases; trying again later");
            return (Vec::new(), wakes);
        }
    };
    let mut planned = Vec::new();
    for cluster::Claimed {
        flow,
        last_end,
        lease,
    } in claimed
    {
        let steps = plan_steps(db, &flow, last_end, now, max_catch_up);
        if !matches!(steps, Ok(Planned::Steps(_))) {
            cluster::release(lease, &flow.flow_id);
            planned.push((flow, steps, None));
            continue;
        }
        planned.push((flow, steps, Some(lease)));
    }
    (planned, wakes)
}

struct FlowJob {
    db: Db,
    flow: DaemonFlow,
    steps: Vec<Step>,
    permits: Arc<Semaphore>,
    runner: WindowRunner,
    shutdown: Shutdown,
    clock: Arc<dyn Clock>,
    run_history: u32,
    live: Arc<std::sync::Mutex<HashMap<FlowId, Arc<Progress>>>>,
    runs_started: Arc<std::sync::atomic::AtomicU64>,
    done: mpsc::UnboundedSender<FlowDone>,
    /// The flow's lease on a node (given back when the steps are done).
    lease: Option<LeaseHold>,
}

/// What a flow has to do now.
enum Planned {
    /// Nothing before `next` (None: the schedule has no future slot).
    Idle {
        next: Option<DateTime<Utc>>,
    },
    Steps(Vec<Step>),
}

/// One step of a flow's due work, in order.
#[derive(Debug, Clone)]
enum Step {
    /// Run `window` (None: the unwindowed run of a `once` flow), then move the schedule to the
    /// end of `advance_to`.
    Run {
        window: Option<Window>,
        slot: DateTime<Utc>,
        advance_to: Option<Window>,
    },
    /// Windows in state already cover this due window (a backfill did it): only move the
    /// schedule past it.
    Skip { advance_to: Window },
}

/// A flow's due work: first every window of it that is not complete (interrupted, or cut short
/// by `maximumRequest`), with its own bounds — nothing later runs before it — then the windows
/// the schedule makes due, each cut down to the time no window in state covers yet.
fn plan_steps(
    db: &Db,
    flow: &DaemonFlow,
    last_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_catch_up: u32,
) -> Result<Planned, tributary_state::StateError> {
    let Some(schedule) = &flow.bundle.schedule else {
        return Ok(Planned::Idle { next: None });
    };
    let unfinished = coverage::unfinished(db, &flow.flow_id)?;
    if !unfinished.is_empty() {
        let steps = unfinished
            .into_iter()
            .map(|window| Step::Run {
                window,
                slot: window.map_or(schedule.start_time, |w| w.end),
                advance_to: window,
            })
            .collect();
        return Ok(Planned::Steps(steps));
    }
    let due_windows = match due(schedule, &flow.slots, last_end, now, max_catch_up) {
        Due::Idle { next } => return Ok(Planned::Idle { next }),
        Due::Once => {
            return Ok(Planned::Steps(vec![Step::Run {
                window: None,
                slot: schedule.start_time,
                advance_to: None,
            }]));
        }
        Due::Windows(windows) => windows,
    };
    let mut steps = Vec::new();
    for window in due_windows {
        let pieces = coverage::uncovered(db, &flow.flow_id, window)?;
        let n_pieces = pieces.len();
        if n_pieces == 0 {
            steps.push(Step::Skip { advance_to: window });
        }
        for (idx, piece) in pieces.into_iter().enumerate() {
            let is_last = idx + 1 == n_pieces;
            steps.push(Step::Run {
                window: Some(piece),
                slot: window.end,
                // The last piece moves the schedule to the end of the due window: a covered tail
                // is done already.
                advance_to: Some(if is_last { window } else { piece }),
            });
        }
    }
    Ok(Planned::Steps(steps))
}

/// One flow's due steps, in order, one at a time.
async fn run_flow_windows(job: FlowJob) {
    let flow_id = job.flow.flow_id.clone();
    let mut retry_at = None;
    for step in job.steps {
        if job.lease.as_ref().is_some_and(LeaseHold::is_lost) {
            warn!(flow = %job.flow.bundle.name, flow_id = %flow_id, "the flow's lease was taken by another node: its remaining windows are left to that node");
            break;
        }
        let (window, slot, advance_to) = match step {
            Step::Skip { advance_to } => {
                let db = job.db.clone();
                let advanced = {
                    let flow_id = flow_id.clone();
                    tokio::task::spawn_blocking(move || {
                        advance_schedule(&db, &flow_id, &advance_to)
                    })
                    .await
                };
                if !matches!(advanced, Ok(Ok(()))) {
                    warn!(flow_id = %flow_id, "recording a covered window in the schedule failed");
                    break;
                }
                info!(flow = %job.flow.bundle.name, flow_id = %flow_id, window_end = %advance_to.end,
                      "window already covered by earlier runs (a backfill): schedule moved past it");
                continue;
            }
            Step::Run {
                window,
                slot,
                advance_to,
            } => (window, slot, advance_to),
        };
        let queued = crate::telemetry::queued();
        let Ok(_permit) = job.permits.clone().acquire_owned().await else {
            break;
        };
        drop(queued);
        if job.shutdown.is_triggered() {
            break;
        }
        let progress = Arc::new(Progress::default());
        job.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(flow_id.clone(), progress.clone());
        let scheduled = ScheduledRun {
            flow_id: flow_id.clone(),
            bundle: job.flow.bundle.clone(),
            window,
            slot,
            progress,
        };
        job.runs_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A runner that panics fails its window; the flow goes on being scheduled.
        let status = match std::panic::AssertUnwindSafe((job.runner)(scheduled))
            .catch_unwind()
            .await
        {
            Ok(status) => status,
            Err(panic) => {
                warn!(flow_id = %flow_id, error = %crate::run::panic_message(panic.as_ref()), "a run panicked");
                RunStatus::Failed
            }
        };
        job.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&flow_id);
        if status != RunStatus::Success {
            if status == RunStatus::Failed {
                // Try again at the next slot, not at once: a failing source is not hammered.
                retry_at = job.flow.slots.next_after(job.clock.now());
            }
            break;
        }
        let db = job.db.clone();
        let recorded = {
            let flow_id = flow_id.clone();
            let start_time = job.flow.bundle.schedule.as_ref().map(|s| s.start_time);
            let keep = job.run_history.max(1) as usize;
            tokio::task::spawn_blocking(move || {
                record_success(&db, &flow_id, window, advance_to, start_time, keep)
            })
            .await
        };
        match recorded {
            Ok(Ok(Recorded::Advanced)) => {}
            Ok(Ok(Recorded::LeftOpen)) => {
                // `maximumRequest` cut the run short: the window continues at the next slot,
                // before anything later, so the API's request budget is spread over slots.
                retry_at = job.flow.slots.next_after(job.clock.now());
                break;
            }
            Ok(Err(err)) => {
                warn!(flow_id = %flow_id, error = %err, "recording the finished window failed");
                break;
            }
            Err(err) => {
                warn!(flow_id = %flow_id, error = %err, "recording the finished window panicked");
                break;
            }
        }
    }
    if let Some(lease) = job.lease {
        let flow_id = flow_id.clone();
        let _ = tokio::task::spawn_blocking(move || cluster::release(lease, &flow_id)).await;
    }
    // The loop may have stopped; a closed channel is fine.
    let _ = job.done.send(FlowDone { flow_id, retry_at });
}

/// What [`record_success`] did.
enum Recorded {
    Advanced,
    /// The run was cut short by `maximumRequest`: its window is still open in state.
    LeftOpen,
}

/// Moves the flow's schedule past `advance_to` and applies run retention — unless the run left
/// its window open.
fn record_success(
    db: &Db,
    flow_id: &FlowId,
    window: Option<Window>,
    advance_to: Option<Window>,
    start_time: Option<DateTime<Utc>>,
    keep_runs: usize,
) -> Result<Recorded, RunError> {
    db.prune_runs(flow_id, keep_runs)?;
    let key = crate::run::window_key(flow_id, window.as_ref());
    let is_open = db
        .checkpoint(&key)?
        .is_some_and(|checkpoint| checkpoint.status == tributary_state::CheckpointStatus::Open);
    if is_open {
        return Ok(Recorded::LeftOpen);
    }
    match advance_to {
        Some(window) => advance_schedule(db, flow_id, &window)?,
        None => {
            // A `once` flow: remember that it ran (its window end is its start time).
            let mut state = db.schedule_state(flow_id)?.unwrap_or(FlowScheduleState {
                last_window_end_ms: None,
                next_due_ms: None,
                enabled: true,
            });
            state.last_window_end_ms = Some(start_time.unwrap_or_else(Utc::now).timestamp_millis());
            db.put_schedule_state(flow_id, &state)?;
            db.flush()?;
        }
    }
    Ok(Recorded::Advanced)
}

async fn read_states(db: &Db) -> Result<HashMap<FlowId, FlowScheduleState>, DaemonError> {
    let db = db.clone();
    let states = tokio::task::spawn_blocking(move || db.schedule_states())
        .await
        .map_err(|err| {
            DaemonError::Internal(format!("reading schedule states panicked: {err}"))
        })??;
    Ok(states.into_iter().collect())
}

/// A stable content hash of a bundle file, to register it idempotently: the same text gives
/// the same hash in every process and release (a name-based UUID over the bytes).
pub fn content_hash(text: &[u8]) -> String {
    let namespace = uuid::Uuid::from_u128(0x2b8e_41c7_90aa_4f5d_8c1e_5d3b_7a90_c4e2);
    uuid::Uuid::new_v5(&namespace, text).simple().to_string()
}

#[cfg(test)]
mod tests;
