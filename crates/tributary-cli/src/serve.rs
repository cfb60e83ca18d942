//! `tributary serve`: the daemon — loads the flow bundles of `flows_dir` into state (and keeps
//! watching the folder, see `flows_dir`) and runs the scheduler (the engine's `daemon` module)
//! until SIGTERM or SIGINT. The HTTP API is a later issue: `listen` is read from the config but
//! nothing listens yet.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tracing::{info, warn};
use tributary_engine::daemon::{self, FlowRegistry, SchedulerOptions, Shutdown, SystemClock};
use tributary_engine::run::Engine;

use crate::cli::CommonArgs;
use crate::context::{load_config, open_engine};
use crate::flows_dir::{FlowsDir, RESCAN_INTERVAL};

pub fn run(common: &CommonArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let engine = open_engine(&config)?;
    info!(listen = %config.listen, "the HTTP API is not part of this build: `listen` is ignored");
    let registry = FlowRegistry::new();
    let flows_dir = match &config.flows_dir {
        Some(dir) => {
            let mut flows_dir = FlowsDir::new(dir);
            flows_dir.sync(&engine, &registry)?;
            Some(flows_dir)
        }
        None => {
            warn!("no flows_dir in the config: no flows to schedule");
            None
        }
    };
    info!(
        flows = registry.len(),
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
        let watcher = flows_dir.map(|flows_dir| {
            tokio::spawn(watch_flows_dir(flows_dir, engine.clone(), registry.clone()))
        });
        let runner = daemon::engine_runner(engine.clone());
        let report = daemon::run_scheduler(
            engine.db.clone(),
            registry,
            options,
            Arc::new(SystemClock),
            runner,
            shutdown,
        )
        .await;
        signals.abort();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
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

/// Re-reads `flows_dir` every [`RESCAN_INTERVAL`] until aborted.
async fn watch_flows_dir(flows_dir: FlowsDir, engine: Engine, registry: FlowRegistry) {
    let mut flows_dir = flows_dir;
    loop {
        tokio::time::sleep(RESCAN_INTERVAL).await;
        let engine = engine.clone();
        let registry = registry.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let res = flows_dir.sync(&engine, &registry);
            (flows_dir, res)
        })
        .await;
        match synced {
            Ok((returned, res)) => {
                flows_dir = returned;
                if let Err(err) = res {
                    warn!(error = %format!("{err:#}"), "re-reading flows_dir failed; trying again later");
                }
            }
            Err(err) => {
                warn!(error = %err, "re-reading flows_dir panicked; no longer watching it");
                return;
            }
        }
    }
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
