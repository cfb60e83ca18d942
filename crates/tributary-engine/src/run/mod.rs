//! One run of one flow: fetch → decode (→ map) → write → commit.
//!
//! Threads: the fetcher is async (its pages arrive through a bounded channel); decoding and
//! mapping run on one blocking thread, with decode workers running the fast path of the pages
//! that have arrived ahead of it (`decode_pool`, results taken back in page order), Parquet
//! encoding on another thread, joined by a bounded channel of batches. Memory is bounded by the
//! channel capacities, the pages held ahead, the decoder's batch buffer and the writer's row
//! group, whatever the size of the source.
//!
//! Commit (DESIGN.md, "The write/commit protocol", and `tributary_state`'s checkpoints): parts
//! are staged in the batch's staging folder and fsynced, then the data and rejected-row parts of
//! a checkpoint are recorded in state together with the pagination position after them, in one
//! flushed transaction. Parts close only at page boundaries, so a recorded position never points
//! inside the data of a part. Publishing happens once the whole window is fetched and the run is
//! known to succeed: the batch's staging folder is renamed into `batch={id}/` in one step (a
//! reader sees all of it or none), after the batches it replaces were taken away — so a re-run's
//! old batch stays visible until the new one is durable, and a failed or rejected re-run leaves
//! it as it was. For a Delta target (`data.format: "delta"`) the rename only puts the parts into
//! the table's folder, and the Delta commit that adds them (and removes the replaced batch's
//! files) is the publish (`recovery`). A run that fails, for instance past its `partialIngestionPercent` threshold,
//! publishes no data (its rejected rows are kept as diagnostics when they are enabled). An
//! interrupted run resumes from its last recorded position with its staged parts; a run cut short
//! by `maximumRequest` publishes what it fetched and leaves the window open, and the next run of
//! the window continues from the saved position into a further batch.
//!
//! A window is run by one run at a time (`claims`); on a node of a shared state a run also
//! holds its flow's lease, which fences its commit-protocol steps (`tributary_state`'s leases). Windows of one flow never overlap (`crate::coverage`): a run whose window overlaps another
//! window of its flow is refused as bad input. A panic in any of a run's tasks or threads fails
//! the run like any other error.

mod attempt;
mod claims;
mod cores;
mod dataset_schema;
mod decode_pool;
mod pipeline;
pub mod recovery;
pub mod report;
mod tokens;

use crate::coverage;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};
use tributary_fetch::{
    FetchContext, FetchCounters, FetchPlan, FetchStats, Position, RotatedTokens, TokenCallback,
};
use tributary_spec::FlowBundle;
use tributary_state::{
    BatchId, Checkpoint, CheckpointStatus, DatasetId, Db, FlowId, RunId, RunRecord, WindowKey,
};
use tributary_write::{DatasetLayout, WriterOptions};

pub use claims::{RunningWindows, WindowBusy, WindowClaim};
pub use cores::CoreShare;
pub use report::{RunIdentity, RunMetrics, RunOutcome, RunStatus, run_object};

use crate::schedule::Window;
use attempt::{Attempt, new_batch_id, saved_position, start_attempt};
use tokens::{apply_stored_tokens, persist_tokens};

/// What every run of a process shares.
#[derive(Debug, Clone)]
pub struct Engine {
    pub layout: DatasetLayout,
    pub db: Db,
    pub fetch: FetchContext,
    pub options: EngineOptions,
    /// The windows runs of this process are working on (a window runs once at a time).
    pub running: RunningWindows,
}

/// Knobs of the pipeline that are not in the spec.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub writer: WriterOptions,
    /// A part (and a checkpoint) is closed at the first page boundary after this many rows.
    pub checkpoint_rows: u64,
    /// ... or after this many bytes of records JSON.
    pub checkpoint_json_bytes: u64,
    /// Pages buffered between the decoder and the encoder (in batches).
    pub batch_channel_capacity: usize,
    /// Rows per decoded batch.
    pub batch_rows: usize,
    /// Bytes of decoded batches in flight between decoding and encoding, across every run of
    /// the process (clones share it); with the fetcher's page budget, `limits.memory_budget_mb`.
    pub batch_budget: Option<tributary_fetch::MemoryBudget>,
    /// Threads that decode pages ahead of the decode stage ([`CoreShare`]; 0: the stage
    /// decodes every page itself). The writer's `encode_threads` is the encode side's share.
    pub decode_workers: usize,
}

/// Live counters of a run, for progress bars and the daemon's logs.
#[derive(Debug, Default)]
pub struct Progress {
    pub pages: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Set by the caller to stop the run at the next page boundary (graceful shutdown).
    pub cancel: AtomicBool,
    /// The live counters of the run's fetch once it started (requests, concurrency).
    fetch: std::sync::Mutex<Option<Arc<FetchCounters>>>,
}

/// One run to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub flow_id: FlowId,
    pub bundle: Arc<FlowBundle>,
    /// None: an unscheduled run (no schedule params are sent).
    pub window: Option<Window>,
    pub progress: Arc<Progress>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: RunId,
    pub batch_id: BatchId,
    pub status: RunStatus,
    pub metrics: RunMetrics,
    /// The Flow Service run object.
    pub run_object: Value,
    /// Where the batch's files are.
    pub batch_dir: PathBuf,
    /// Published files, relative to the data dir.
    pub files: Vec<String>,
    /// The cause when the run failed.
    pub error: Option<String>,
    /// Whether this run continued an interrupted one.
    pub resumed: bool,
    /// `maximumRequest` stopped the run with pages left: what it fetched is published, and the
    /// window's next run continues from the saved position.
    pub truncated: bool,
    /// Rows that were rejected but not kept, because error diagnostics are off.
    pub diagnostics_dropped: bool,
}

/// A run that could not start (bad input or state trouble); a run that starts and fails
/// returns a [`RunReport`] with status failed instead.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    BadInput(String),
    #[error("state: {0}")]
    State(#[from] tributary_state::StateError),
    #[error("dataset: {0}")]
    Write(#[from] tributary_write::WriteError),
    /// Another run of this process is working on the window (or one overlapping it).
    #[error("{0}")]
    Busy(WindowBusy),
    /// On a node of a shared state: another node holds the flow's lease.
    #[error("{0}")]
    LeasedElsewhere(String),
    #[error("{0}")]
    Internal(String),
}

/// The position kept in a checkpoint: the fetcher's position plus the counters the run's
/// verdict depends on, so a resumed run judges the whole window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SavedPosition {
    pub fetch: Option<Position>,
    pub records_read: u64,
    pub records_failed: u64,
    pub records_warned: u64,
    pub bytes_in: u64,
    pub pages: u64,
}

impl EngineOptions {
    /// The same options with the decode workers and encode threads of [`CoreShare::of`] `cores`.
    pub fn using_cores(mut self, cores: usize) -> Self {
        let share = CoreShare::of(cores);
        self.decode_workers = share.decode_workers;
        self.writer.encode_threads = share.encode_threads;
        self
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            // Parts are rolled by the engine at page boundaries, never inside the writer.
            writer: WriterOptions {
                max_rows_per_file: std::num::NonZeroU64::MAX,
                max_bytes_per_file: std::num::NonZeroU64::MAX,
                ..WriterOptions::default()
            },
            checkpoint_rows: 1_000_000,
            checkpoint_json_bytes: 512 * 1024 * 1024,
            batch_channel_capacity: 4,
            batch_rows: 8192,
            batch_budget: None,
            decode_workers: 0,
        }
        .using_cores(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    }
}

impl RunError {
    /// Whether the user's input is at fault (exit code 2 on the command line).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, RunError::BadInput(_))
    }
}

/// A stable flow id for a bundle: a UUID derived from its name, so the same bundle always maps
/// to the same flow (and its state) whichever file it is loaded from.
pub fn bundle_flow_id(bundle_name: &str) -> FlowId {
    let namespace = uuid::Uuid::from_u128(0x7c1b_5a2e_8d3f_4e61_9a0b_6c2d_1e3f_4a5b);
    FlowId::new(uuid::Uuid::new_v5(&namespace, bundle_name.as_bytes()).to_string())
}

/// The key of a window in state.
pub fn window_key(flow_id: &FlowId, window: Option<&Window>) -> WindowKey {
    match window {
        None => WindowKey::unscheduled(flow_id.clone()),
        Some(window) => WindowKey::new(
            flow_id.clone(),
            window.start.map(|t| t.timestamp_millis()),
            Some(window.end.timestamp_millis()),
        ),
    }
}

/// Runs one window of one flow to the end: fetches every page, writes the batch, and publishes
/// it when the run succeeds. Resumes the window from its checkpoint when an earlier run of it
/// was interrupted.
pub async fn run_flow(engine: &Engine, request: RunRequest) -> Result<RunReport, RunError> {
    run_window(engine, request, None, None).await
}

/// Like [`run_flow`], under a run id the caller chose and with the window already claimed
/// (from [`Engine::running`]): the API claims the window and answers `POST /runs` with the id
/// before the run has started, so a second request for the window is refused at once.
pub async fn run_flow_as(
    engine: &Engine,
    request: RunRequest,
    run_id: RunId,
    claim: WindowClaim,
) -> Result<RunReport, RunError> {
    if !claim.holds(&request.flow_id, request.window.as_ref()) {
        return Err(RunError::Internal(format!(
            "run {run_id} was started with a claim on another window"
        )));
    }
    run_window(engine, request, None, Some((run_id, claim))).await
}

/// Like [`run_flow`], on pages that are already at hand instead of fetched from the source:
/// the pipeline benchmark feeds in-memory pages through the same decode, map, write and commit.
pub async fn run_flow_on_pages(
    engine: &Engine,
    request: RunRequest,
    pages: tributary_fetch::FetchRun,
) -> Result<RunReport, RunError> {
    run_window(engine, request, Some(pages), None).await
}

/// On a node of a shared state, a run holds its flow's lease (joining the scheduler's hold, or
/// claiming it for an ad hoc run) from start to end: its commit-protocol steps are fenced by it.
async fn run_window(
    engine: &Engine,
    request: RunRequest,
    pages: Option<tributary_fetch::FetchRun>,
    claimed: Option<(RunId, WindowClaim)>,
) -> Result<RunReport, RunError> {
    let lease = {
        let db = engine.db.clone();
        let flow_id = request.flow_id.clone();
        blocking(move || db.claim_lease(&flow_id)).await??
    };
    let Some(lease) = lease else {
        return Err(RunError::LeasedElsewhere(format!(
            "flow {} is run by another node of the shared state now (it holds the flow's lease); try again when that run ended",
            request.flow_id
        )));
    };
    let res = run_window_leased(engine, request, pages, claimed).await;
    let released = blocking(move || lease.release()).await;
    if let Err(err) = released
        .map_err(|err| err.to_string())
        .and_then(|res| res.map_err(|err| err.to_string()))
    {
        warn!(error = %err, "releasing a run's lease failed; it expires at its TTL");
    }
    res
}

async fn run_window_leased(
    engine: &Engine,
    request: RunRequest,
    pages: Option<tributary_fetch::FetchRun>,
    claimed: Option<(RunId, WindowClaim)>,
) -> Result<RunReport, RunError> {
    let bundle = request.bundle.clone();
    let started_at = Utc::now();
    // One run per window at a time: the claim is held until this function returns, so the
    // window's checkpoint is never resumed by a second run beside this one.
    let (run_id, _claim) = match claimed {
        Some((run_id, claim)) => (run_id, claim),
        None => (
            RunId::new(uuid::Uuid::new_v4().simple().to_string()),
            engine
                .running
                .claim(&request.flow_id, request.window.as_ref())
                .map_err(RunError::Busy)?,
        ),
    };
    let bundle_dataset = DatasetId::new(bundle.target.dataset_id.clone());
    tributary_write::DatasetId::try_new(bundle.target.dataset_id.clone())
        .map_err(|err| RunError::BadInput(format!("targetConnection.params.dataSetId: {err}")))?;
    let key = window_key(&request.flow_id, request.window.as_ref());

    // A Delta target makes the dataset a Delta table (its `_delta_log/` folder says so, also to
    // recovery); a dataset keeps the format it was created with.
    {
        let layout = engine.layout.clone();
        let dataset = tributary_write::DatasetId::try_new(bundle.target.dataset_id.clone())?;
        let format = bundle.target.format;
        blocking(move || recovery::check_dataset_format(&layout, &dataset, format)).await??;
    }
    // A bundle whose requests cannot be built (a missing environment variable, a template that
    // does not render) is bad input: refuse it before a run is recorded, so `tributary run`
    // exits 2 instead of reporting a failed run.
    {
        let mut preflight = (*bundle).clone();
        if let Ok(Some(tokens)) = engine.db.oauth_tokens(&format!("{}-base", request.flow_id)) {
            apply_stored_tokens(&mut preflight, &tokens);
        }
        let env = |name: &str| std::env::var(name).ok();
        FetchPlan::from_bundle(&preflight, request.window, &env, None)
            .map_err(|err| RunError::BadInput(err.to_string()))?;
    }

    // Windows of one flow never overlap: anything but this window's own bounds is refused.
    {
        let db = engine.db.clone();
        let flow_id = request.flow_id.clone();
        let window = request.window;
        let checked =
            blocking(move || coverage::check_disjoint(&db, &flow_id, window.as_ref())).await??;
        if let Err(overlap) = checked {
            return Err(RunError::BadInput(coverage::describe(&overlap)));
        }
    }

    // Resume an interrupted attempt, continue an open window, or begin one (a re-run replaces
    // the window's batches when it commits).
    let (checkpoint, attempt) = {
        let db = engine.db.clone();
        let layout = engine.layout.clone();
        let key = key.clone();
        let run_id = run_id.clone();
        blocking(move || start_attempt(&db, &layout, &key, &run_id, &bundle_dataset)).await??
    };
    let batch_id = checkpoint.batch_id.clone();
    let write_dataset = tributary_write::DatasetId::try_new(checkpoint.dataset_id.to_string())?;
    let saved = saved_position(&key, &checkpoint)?;
    let identity = RunIdentity {
        run_id: run_id.to_string(),
        flow_id: request.flow_id.to_string(),
        flow_name: bundle.name.clone(),
        source_connection_id: format!("{}-source", request.flow_id),
        target_connection_id: format!("{}-target", request.flow_id),
        dataset_id: checkpoint.dataset_id.to_string(),
        batch_id: batch_id.to_string(),
        window: request.window,
    };
    record_run(
        engine,
        &identity,
        &RunMetrics::default(),
        &in_progress(started_at),
    )
    .await?;
    let resumed = attempt == Attempt::Resumed;
    let _in_flight = crate::telemetry::run_started(&bundle.name, &request.flow_id);
    info!(
        flow = %bundle.name, flow_id = %request.flow_id, run_id = %run_id, batch_id = %batch_id,
        window_start = ?request.window.and_then(|w| w.start), window_end = ?request.window.map(|w| w.end),
        attempt = attempt.as_str(), "run started"
    );

    // A panic anywhere in the run's tasks fails the run; state and datasets stay as a failed run
    // leaves them (the window resumes from its last checkpoint). An interrupted commit needs no
    // fetching: its attempt is all in staging.
    let executed = if attempt == Attempt::FinishingCommit {
        Ok(Ok((
            RunMetrics {
                records_read: saved.records_read,
                records_failed: saved.records_failed,
                records_warned: saved.records_warned,
                bytes_in: saved.bytes_in,
                pages: saved.pages,
                ..RunMetrics::default()
            },
            Verdict::Commit {
                truncated: checkpoint.truncated,
            },
        )))
    } else {
        std::panic::AssertUnwindSafe(execute(
            engine,
            &request,
            &key,
            &checkpoint,
            &saved,
            &write_dataset,
            &batch_id,
            &run_id,
            pages,
        ))
        .catch_unwind()
        .await
    };
    let (mut metrics, verdict) = match executed {
        Ok(Ok((metrics, verdict))) => (metrics, verdict),
        Ok(Err((metrics, message))) => (metrics, Verdict::Failed(message)),
        Err(panic) => (
            RunMetrics::default(),
            Verdict::Failed(format!(
                "internal error: the run panicked: {}",
                panic_message(panic.as_ref())
            )),
        ),
    };
    let finished = finish(engine, &bundle, &key, verdict, &mut metrics).await;
    let mut errors: Vec<(String, String)> = finished
        .error
        .iter()
        .map(|message| ("CONNECTOR-2001-500".to_owned(), message.clone()))
        .collect();
    let diagnostics_dropped =
        metrics.records_failed > saved.records_failed && !bundle.options.error_diagnostics_enabled;
    if diagnostics_dropped {
        errors.push((
            "INGEST-1211-400".to_owned(),
            format!(
                "{} rows were rejected; error diagnostics are disabled (flow options errorDiagnosticsEnabled), so they were not kept",
                metrics.records_failed
            ),
        ));
    }
    let outcome = RunOutcome {
        status: finished.status,
        started_at,
        completed_at: Some(Utc::now()),
        errors,
        files: finished.files.clone(),
        truncated: finished.truncated,
        max_requests: bundle
            .connection_spec
            .source
            .pagination
            .common()
            .maximum_requests
            .get(),
    };
    let run_object = record_run(engine, &identity, &metrics, &outcome).await?;
    let status = finished.status;
    crate::telemetry::run_finished(&bundle.name, &request.flow_id, status, &metrics);
    {
        let db = engine.db.clone();
        let flow_id = request.flow_id.clone();
        match blocking(move || crate::telemetry::flow_health(&db, &flow_id)).await {
            Ok(Ok(health)) => {
                crate::telemetry::set_flow_health(&bundle.name, &request.flow_id, &health);
            }
            Ok(Err(err)) => {
                warn!(flow_id = %request.flow_id, error = %err, "reading the flow's health for metrics failed")
            }
            Err(err) => {
                warn!(flow_id = %request.flow_id, error = %err, "reading the flow's health for metrics failed")
            }
        }
    }
    match status {
        RunStatus::Success => info!(
            flow = %bundle.name, run_id = %run_id, batch_id = %batch_id, status = status.as_str(),
            records_read = metrics.records_read, records_written = metrics.records_written,
            records_failed = metrics.records_failed, files = metrics.files_out,
            truncated = finished.truncated, "run finished"
        ),
        _ => warn!(
            flow = %bundle.name, run_id = %run_id, batch_id = %batch_id, status = status.as_str(),
            records_read = metrics.records_read, error = finished.error.as_deref().unwrap_or(""), "run finished"
        ),
    }
    Ok(RunReport {
        run_id,
        batch_id: batch_id.clone(),
        status,
        metrics,
        run_object,
        batch_dir: engine.layout.published_batch_dir(
            &write_dataset,
            &tributary_write::BatchId::try_new(batch_id.to_string())?,
        ),
        files: finished.files,
        error: finished.error,
        resumed,
        truncated: finished.truncated,
        diagnostics_dropped,
    })
}

/// What the end of a run did to state and the dataset.
struct Finished {
    status: RunStatus,
    error: Option<String>,
    files: Vec<String>,
    truncated: bool,
}

/// Publishes, fails or leaves the window as the verdict says. Never fails itself: trouble while
/// publishing makes the run failed (and recovery finishes a commit that was started).
async fn finish(
    engine: &Engine,
    bundle: &FlowBundle,
    key: &WindowKey,
    verdict: Verdict,
    metrics: &mut RunMetrics,
) -> Finished {
    let failed = |message: String| Finished {
        status: RunStatus::Failed,
        error: Some(message),
        files: Vec::new(),
        truncated: false,
    };
    match verdict {
        Verdict::Cancelled => Finished {
            status: RunStatus::Cancelled,
            error: None,
            files: Vec::new(),
            truncated: false,
        },
        Verdict::Failed(message) => failed(message),
        Verdict::Rejected(message) => {
            // This output must not be resumed: the next run of the window starts the attempt
            // afresh (with the mapping or threshold the user fixes in between).
            let db = engine.db.clone();
            let layout = engine.layout.clone();
            let key = key.clone();
            let keep_errors = bundle.options.error_diagnostics_enabled;
            let rejected =
                blocking(move || recovery::reject_window(&db, &layout, &key, keep_errors)).await;
            match rejected {
                Ok(Ok(Some(errors_dir))) => failed(format!(
                    "{message}; the rejected rows are in {}",
                    errors_dir.display()
                )),
                Ok(Ok(None)) => failed(message),
                Ok(Err(err)) => failed(format!(
                    "{message}; discarding its staged parts failed: {err:#}"
                )),
                Err(err) => failed(format!(
                    "{message}; discarding its staged parts failed: {err}"
                )),
            }
        }
        Verdict::Commit { truncated } => {
            let db = engine.db.clone();
            let layout = engine.layout.clone();
            let key = key.clone();
            let bundle = Arc::new(bundle.clone());
            let writer = engine.options.writer.clone();
            let published = blocking(move || {
                // Every part of the batch gets the batch's final schema before it is published.
                dataset_schema::prepare_commit(&db, &layout, &bundle, &key, &writer)
                    .map_err(|message| anyhow::anyhow!("giving the batch one schema: {message}"))?;
                recovery::publish_window(&db, &layout, &key, truncated)
            });
            match published.await {
                Ok(Ok(published)) => {
                    metrics.files_out = published.files.len() as u64;
                    metrics.bytes_out = published.bytes;
                    // A resumed run's batch also holds the parts of the run it continued.
                    metrics.records_written = published.rows;
                    Finished {
                        status: RunStatus::Success,
                        error: None,
                        files: published.files,
                        truncated,
                    }
                }
                Ok(Err(err)) => failed(format!("publishing the batch: {err:#}")),
                Err(err) => failed(format!("publishing the batch: {err}")),
            }
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// How the pipeline ended.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Every page fetched is in recorded parts and the rejected rows are within the threshold.
    /// `truncated`: `maximumRequest` stopped the fetch with pages left.
    Commit {
        truncated: bool,
    },
    /// Stopped at a page boundary on request; the window resumes later.
    Cancelled,
    Failed(String),
    /// Every page was read but more rows were rejected than the flow allows.
    Rejected(String),
}

#[allow(clippy::too_many_arguments)] // The run's identity, spelled out; a struct would only rename them.
async fn execute(
    engine: &Engine,
    request: &RunRequest,
    key: &WindowKey,
    checkpoint: &Checkpoint,
    saved: &SavedPosition,
    dataset: &tributary_write::DatasetId,
    batch_id: &BatchId,
    run_id: &RunId,
    pages: Option<tributary_fetch::FetchRun>,
) -> Result<(RunMetrics, Verdict), (RunMetrics, String)> {
    let bundle = &request.bundle;
    let fail = |message: String| (RunMetrics::default(), message);
    let fetch_run = match pages {
        Some(pages) => pages,
        None => start_fetch(engine, request, checkpoint, saved).map_err(fail)?,
    };
    let counters = fetch_run.counters.clone();
    request.progress.attach_fetch(counters.clone());

    let job = pipeline::PipelineJob {
        engine: engine.clone(),
        bundle: bundle.clone(),
        key: key.clone(),
        dataset: dataset.clone(),
        batch_id: tributary_write::BatchId::try_new(batch_id.to_string())
            .map_err(|err| fail(err.to_string()))?,
        run_id: run_id.to_string(),
        next_seq: checkpoint.next_seq,
        saved: saved.clone(),
        progress: request.progress.clone(),
    };
    let outcome = pipeline::run_pipeline(job, fetch_run).await;
    let stats = counters.snapshot();
    let mut metrics = outcome.metrics;
    metrics.requests = stats.requests;
    metrics.retries = stats.retries;
    metrics.throttled = stats.throttled;
    metrics.concurrency = Some(stats.concurrency);
    Ok((metrics, outcome.verdict))
}

/// Starts fetching the window's pages from its source, resuming after the checkpoint's position.
fn start_fetch(
    engine: &Engine,
    request: &RunRequest,
    checkpoint: &Checkpoint,
    saved: &SavedPosition,
) -> Result<tributary_fetch::FetchRun, String> {
    let bundle = &request.bundle;
    // Stored (rotated) OAuth2 tokens win over the ones in the bundle.
    let mut bundle_for_plan = (**bundle).clone();
    let token_key = format!("{}-base", request.flow_id);
    if let Ok(Some(tokens)) = engine.db.oauth_tokens(&token_key) {
        apply_stored_tokens(&mut bundle_for_plan, &tokens);
    }
    // Keyed by the flow's token key: parallel runs of one flow persist a rotation once.
    let on_rotate = {
        let db = engine.db.clone();
        let key = token_key.clone();
        TokenCallback::new(token_key, move |rotated: &RotatedTokens| {
            persist_tokens(&db, &key, rotated)
        })
    };
    let env = |name: &str| std::env::var(name).ok();
    let plan = FetchPlan::from_bundle(&bundle_for_plan, request.window, &env, Some(on_rotate))
        .map_err(|err| err.to_string())?;
    let plan = match &saved.fetch {
        Some(position) if checkpoint.status == CheckpointStatus::InProgress => {
            plan.resume_from(position.clone())
        }
        _ => plan,
    };
    Ok(tributary_fetch::fetch_pages(&engine.fetch, plan))
}

fn in_progress(started_at: DateTime<Utc>) -> RunOutcome {
    RunOutcome {
        status: RunStatus::InProgress,
        started_at,
        completed_at: None,
        errors: Vec::new(),
        files: Vec::new(),
        truncated: false,
        max_requests: 0,
    }
}

async fn record_run(
    engine: &Engine,
    identity: &RunIdentity,
    metrics: &RunMetrics,
    outcome: &RunOutcome,
) -> Result<Value, RunError> {
    let mut run_doc = run_object(identity, metrics, outcome);
    if let Some(node) = engine.db.node_id() {
        // Our extension: on a shared state, the node that ran it.
        run_doc["node"] = Value::String(node.to_string());
    }
    let record = RunRecord {
        id: RunId::new(identity.run_id.clone()),
        flow_id: FlowId::new(identity.flow_id.clone()),
        status: match outcome.status {
            RunStatus::Scheduled => tributary_state::RunStatus::Scheduled,
            RunStatus::InProgress => tributary_state::RunStatus::InProgress,
            RunStatus::Success => tributary_state::RunStatus::Success,
            RunStatus::Failed => tributary_state::RunStatus::Failed,
            RunStatus::Cancelled => tributary_state::RunStatus::Cancelled,
        },
        window: identity.window.map(|w| tributary_state::Window {
            // An open start (all history) is recorded as the epoch.
            start_ms: w.start.map_or(0, |t| t.timestamp_millis()),
            end_ms: w.end.timestamp_millis(),
        }),
        batch_id: Some(BatchId::new(identity.batch_id.clone())),
        started_at_ms: outcome.started_at.timestamp_millis(),
        completed_at_ms: outcome.completed_at.map(|t| t.timestamp_millis()),
        run_doc: run_doc.clone(),
    };
    let db = engine.db.clone();
    blocking(move || db.put_run(&record)).await??;
    Ok(run_doc)
}

/// Runs blocking work (sled, the filesystem) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| RunError::Internal(format!("a worker thread panicked: {err}")))
}

impl Progress {
    /// The fetch counters of the run now: requests so far, and the concurrency (limit, requests
    /// in flight, why it stopped growing). `None` before the fetch starts.
    pub fn fetch_stats(&self) -> Option<FetchStats> {
        let fetch = self.fetch.lock().unwrap_or_else(|p| p.into_inner());
        fetch.as_ref().map(|counters| counters.snapshot())
    }

    fn attach_fetch(&self, counters: Arc<FetchCounters>) {
        *self.fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(counters);
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Records that a flow's window `[.., window.end)` ran, so its next scheduled window starts
/// there. Never moves the schedule back (a backfill of an older window leaves it alone).
pub fn advance_schedule(db: &Db, flow_id: &FlowId, window: &Window) -> Result<(), RunError> {
    let mut state = db
        .schedule_state(flow_id)?
        .unwrap_or(tributary_state::FlowScheduleState {
            last_window_end_ms: None,
            next_due_ms: None,
            enabled: true,
        });
    let end_ms = window.end.timestamp_millis();
    if state.last_window_end_ms.is_none_or(|last| last < end_ms) {
        state.last_window_end_ms = Some(end_ms);
        db.put_schedule_state(flow_id, &state)?;
        db.flush()?;
    }
    Ok(())
}
