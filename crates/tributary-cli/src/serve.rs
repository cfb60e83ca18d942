//! `tributary serve`: the daemon — loads the flow bundles of `flows_dir` into state and runs the
//! scheduler (the engine's `daemon` module) until SIGTERM or SIGINT. The HTTP API is a later
//! issue: `listen` is read from the config but nothing listens yet.
//!
//! Bundles are registered idempotently: each file's content hash is recorded with
//! `put_bundle_source`, so loading the same folder twice writes nothing and an edited file is
//! logged as changed (its flow keeps its id and state: the id derives from the bundle name). A
//! file that fails validation is logged with its path and skipped; the others still run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tracing::{info, warn};
use tributary_engine::daemon::{self, DaemonFlow, SchedulerOptions, Shutdown, SystemClock};
use tributary_engine::run::{Engine, bundle_flow_id};
use tributary_state::BundleChange;

use crate::cli::CommonArgs;
use crate::context::{load_bundle, load_config, open_engine};

pub fn run(common: &CommonArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let engine = open_engine(&config)?;
    info!(listen = %config.listen, "the HTTP API is not part of this build: `listen` is ignored");
    let flows = match &config.flows_dir {
        Some(dir) => load_flows(&engine, dir)?,
        None => {
            warn!("no flows_dir in the config: no flows to schedule");
            Vec::new()
        }
    };
    info!(
        flows = flows.len(),
        max_concurrent_runs = config.limits.max_concurrent_runs,
        max_catch_up_windows = config.scheduler.max_catch_up_windows,
        state_dir = %config.state_dir.display(),
        data_dir = %config.data_dir.display(),
        "scheduler started"
    );
    let options = SchedulerOptions {
        max_catch_up_windows: config.scheduler.max_catch_up_windows,
        run_history: config.scheduler.run_history,
        max_concurrent_runs: config.limits.max_concurrent_runs,
        shutdown_grace: std::time::Duration::from_secs(config.scheduler.shutdown_grace_secs),
    };
    let runtime = crate::run::runtime()?;
    let report = runtime.block_on(async {
        let shutdown = Shutdown::default();
        let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
        let runner = daemon::engine_runner(engine.clone());
        let report = daemon::run_scheduler(
            engine.db.clone(),
            flows,
            options,
            Arc::new(SystemClock),
            runner,
            shutdown,
        )
        .await;
        signals.abort();
        report
    })?;
    engine.db.flush().context("flushing state at shutdown")?;
    info!(
        runs_started = report.runs_started,
        abandoned = report.abandoned,
        "scheduler stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads every `*.json` file of `dir` as a flow bundle, registers it, and returns the flows
/// with a schedule.
fn load_flows(engine: &Engine, dir: &Path) -> anyhow::Result<Vec<DaemonFlow>> {
    let entries = std::fs::read_dir(dir).map_err(|err| {
        crate::BadInput(format!("cannot read flows_dir {}: {err}", dir.display()))
    })?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing flows_dir {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut flows: Vec<DaemonFlow> = Vec::new();
    for path in paths {
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) => {
                warn!(path = %path.display(), error = %err, "cannot read flow bundle; skipped");
                continue;
            }
        };
        let bundle = match load_bundle(&path) {
            Ok(bundle) => bundle,
            Err(err) => {
                warn!(path = %path.display(), error = %format!("{err:#}"), "invalid flow bundle; skipped");
                continue;
            }
        };
        let flow_id = bundle_flow_id(&bundle.name);
        if let Some(other) = flows.iter().find(|f| f.flow_id == flow_id) {
            warn!(path = %path.display(), flow = %bundle.name, other = %other.bundle.name,
                  "another bundle already defines a flow of this name; skipped");
            continue;
        }
        let hash = daemon::content_hash(&text);
        match engine.db.put_bundle_source(&path, &hash, &flow_id)? {
            BundleChange::New => {
                info!(path = %path.display(), flow = %bundle.name, flow_id = %flow_id, "flow registered")
            }
            BundleChange::Unchanged => {
                info!(path = %path.display(), flow = %bundle.name, flow_id = %flow_id, "flow unchanged")
            }
            BundleChange::Changed { .. } => {
                info!(path = %path.display(), flow = %bundle.name, flow_id = %flow_id, "flow updated from its edited file");
            }
        }
        match DaemonFlow::try_new(flow_id, bundle.clone()) {
            Ok(Some(flow)) => flows.push(flow),
            Ok(None) => {
                info!(path = %path.display(), flow = %bundle.name, "flow has no scheduleParams: not scheduled")
            }
            Err(err) => {
                warn!(path = %path.display(), error = %err, "flow schedule cannot be evaluated; skipped")
            }
        }
    }
    engine
        .db
        .flush()
        .context("flushing the registered bundles")?;
    Ok(flows)
}

/// Triggers `shutdown` at the first SIGTERM or SIGINT.
async fn wait_for_signal(shutdown: Shutdown) {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(err) => {
                warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the daemon gracefully");
                let _ = tokio::signal::ctrl_c().await;
                info!("SIGINT: stopping");
                shutdown.trigger();
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("SIGINT: stopping");
    }
    shutdown.trigger();
}
