//! `tributary serve`: the daemon — the Flow Service / Data Prep HTTP API on `listen` and the
//! scheduler, side by side, until SIGTERM or SIGINT.
//!
//! Every bundle of `flows_dir` is registered (see `flows_dir`: read at start and every few
//! seconds after, so added, edited and deleted files apply without a restart) and stored as API
//! entities of the first configured org, sandbox `prod` (`tributary_api::import_bundle`), so a
//! file flow is visible and editable over HTTP; a deleted file takes its flow out of both. Every
//! flow in state — from files or created over HTTP — is assembled from its entities and handed to
//! the scheduler's `FlowRegistry`; flows created, patched or deleted over HTTP change it without
//! a restart.
//!
//! With `[state] backend = "postgres"` the process is one node of several sharing the state
//! (`tributary_state`'s leases): it skips the start-up repair of the whole state (each flow is
//! repaired by the node that claims it), joins the state under its node id, follows the
//! entities other nodes write (`tributary_api::cluster`) and schedules under leases.
//!
//! Secure by default: without `[api]` credentials, `serve` refuses a non-loopback `listen`, and
//! on loopback generates a local credential into `{state_dir}/api-credentials.json` (mode 0600)
//! and logs where it is. Stopping: the API stops accepting, in-flight requests finish, the
//! scheduler cancels running runs at their next page boundary (they resume at the next start).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tracing::{info, warn};
use tributary_api::{ApiAuth, ApiOptions, ApiState, FlowRegistry, OrgCredential, Tenant};
use tributary_engine::DaemonConfig;
use tributary_engine::config::StateBackend;
use tributary_engine::daemon::{self, ClusterOptions, SchedulerOptions, Shutdown, SystemClock};
use tributary_engine::run::Engine;
use tributary_state::BundleChange;

use crate::cli::CommonArgs;
use crate::context::{load_config, open_engine, open_node_engine, resolve_env};
use crate::flows_dir::{FlowEvent, FlowsDir, RESCAN_INTERVAL};

/// The file a generated local credential is written to, inside the state directory.
pub const LOCAL_CREDENTIALS_FILE: &str = "api-credentials.json";
/// The sandbox that `flows_dir` bundles belong to.
pub const BUNDLE_SANDBOX: &str = "prod";
/// On a shared state: how often a node looks for entities other nodes wrote and for flows they
/// let go of or made due.
const SHARED_STATE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// This node's id: `scheduler.node_id` (maybe `${env:NAME}`), else host name and pid.
fn node_id(config: &DaemonConfig) -> anyhow::Result<tributary_state::NodeId> {
    let text = match &config.scheduler.node_id {
        Some(id) => resolve_env(id, "scheduler.node_id")?,
        None => format!("{}-{}", host_name(), std::process::id()),
    };
    tributary_state::NodeId::try_new(text)
        .map_err(|err| crate::BadInput(format!("scheduler.node_id: {err}")).into())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "tributary".to_owned())
}

pub fn run(common: &CommonArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let auth = api_auth(&config)?;
    let metrics_bearer_token = match config.api.metrics_bearer_token.trim() {
        "" => None,
        token => Some(resolve_env(token, "api.metrics_bearer_token")?),
    };
    // Before anything counts: every counter then starts at 0 in this process.
    let metrics_handle = tributary_api::metrics::install_recorder()?;
    let is_shared = config.state.backend == StateBackend::Postgres;
    let engine = if is_shared {
        // Uploads are staged under the configured node id, or the host name: stable across
        // restarts (unlike the default node id's pid), so a restart cleans what it left.
        let stage = match &config.scheduler.node_id {
            Some(id) => resolve_env(id, "scheduler.node_id")?,
            None => host_name(),
        };
        open_node_engine(&config, &stage)?
    } else {
        open_engine(&config)?
    };
    if is_shared {
        let node_id = node_id(&config)?;
        engine
            .db
            .join_cluster(node_id.clone(), config.scheduler.lease_ttl())
            .context("joining the shared state as a node")?;
        info!(node = %node_id, lease_ttl_secs = config.scheduler.lease_ttl().as_secs(),
              "a node of a shared state: flows run under leases");
    }
    let registry = FlowRegistry::default();
    let state = ApiState::try_new(
        engine.clone(),
        registry.clone(),
        ApiOptions {
            auth: auth.clone(),
            max_concurrent_runs: config.limits.max_concurrent_runs as usize,
            metrics_bearer_token,
            shared_state: is_shared,
        },
    )
    .context("loading the API's entities from state")?;
    let bundle_tenant = Tenant {
        org: auth.orgs[0].org_id.clone(),
        sandbox: BUNDLE_SANDBOX.to_owned(),
    };
    let flows_dir = match &config.flows_dir {
        Some(dir) => {
            let mut flows_dir = FlowsDir::new(dir);
            flows_dir.sync(&engine, &registry, &|event| {
                import_into_api(&state, &bundle_tenant, event)
            })?;
            Some(flows_dir)
        }
        None => {
            info!("no flows_dir in the config: only flows created over the API are scheduled");
            None
        }
    };
    // The entities are what runs: a file flow edited over the API runs as edited.
    for flow in tributary_api::scheduled_flows(&state) {
        registry.upsert(flow);
    }
    engine
        .db
        .flush()
        .context("flushing the registered bundles")?;
    tributary_api::metrics::load_flow_health(&state)
        .context("reading the flows' health for /metrics")?;
    let runtime = crate::run::runtime()?;
    let report = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|err| crate::BadInput(format!("cannot listen on {}: {err}", config.listen)))?;
        let local = listener.local_addr().context("reading the bound address")?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let signals = tokio::spawn(wait_for_signal(stop_tx));
        let watcher = flows_dir.map(|flows_dir| {
            tokio::spawn(watch_flows_dir(
                flows_dir,
                engine.clone(),
                registry.clone(),
                state.clone(),
                bundle_tenant.clone(),
            ))
        });
        tributary_api::metrics::spawn_upkeep(metrics_handle);
        // Other nodes write entities too: follow them.
        let follower = is_shared.then(|| {
            tokio::spawn(tributary_api::cluster::follow_shared_state(
                state.clone(),
                SHARED_STATE_POLL,
            ))
        });
        let options = SchedulerOptions {
            max_catch_up_windows: config.scheduler.max_catch_up_windows,
            run_history: config.scheduler.run_history,
            max_concurrent_runs: config.limits.max_concurrent_runs,
            shutdown_grace: std::time::Duration::from_secs(config.scheduler.shutdown_grace_secs),
            cluster: is_shared.then(|| ClusterOptions {
                layout: engine.layout.clone(),
                poll_interval: SHARED_STATE_POLL,
                listen: local.to_string(),
                limiters: engine.fetch.limiters.clone(),
            }),
        };
        let app = tributary_api::app(state.clone());
        let mut http_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|stop| *stop).await;
                })
                .await
        });
        info!(listen = %local, url = %format!("http://{local}"), "HTTP API listening");
        info!(
            flows = registry.snapshot().len(),
            max_concurrent_runs = config.limits.max_concurrent_runs,
            max_catch_up_windows = config.scheduler.max_catch_up_windows,
            state_dir = %config.state_dir.display(),
            node = %engine.db.node_id().map_or_else(String::new, ToString::to_string),
            data_dir = %tributary_write::object::redacted_location(&config.data_dir.to_string_lossy()),
            "scheduler started"
        );
        state.set_scheduler_running(true);
        let shutdown = Shutdown::default();
        let stopper = {
            let shutdown = shutdown.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let _ = stop.wait_for(|stop| *stop).await;
                shutdown.trigger();
            })
        };
        let report = daemon::run_scheduler(
            engine.db.clone(),
            registry.clone(),
            options,
            Arc::new(SystemClock),
            daemon::engine_runner(engine.clone()),
            shutdown,
        )
        .await;
        stopper.abort();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if let Some(follower) = follower {
            follower.abort();
        }
        state.set_scheduler_running(false);
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "the HTTP server stopped with an error"),
            Err(err) => warn!(error = %err, "the HTTP server task failed"),
        }
        signals.abort();
        anyhow::Ok(report?)
    })?;
    engine.db.flush().context("flushing state at shutdown")?;
    info!(
        runs_started = report.runs_started,
        abandoned = report.abandoned,
        "scheduler stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// The credentials the API accepts: `[api.orgs]` (values may be `${env:NAME}`), or — only for a
/// loopback `listen` — a generated local credential.
pub(crate) fn api_auth(config: &DaemonConfig) -> anyhow::Result<ApiAuth> {
    let mut orgs = Vec::new();
    for (idx, org) in config.api.orgs.iter().enumerate() {
        let resolve = |value: &str, key: &str| -> anyhow::Result<String> {
            let value = value.trim();
            match value
                .strip_prefix("${env:")
                .and_then(|rest| rest.strip_suffix('}'))
            {
                Some(name) => std::env::var(name).map_err(|_| {
                    crate::BadInput(format!(
                        "api.orgs[{idx}].{key}: environment variable {name} is not set"
                    ))
                    .into()
                }),
                None => Ok(value.to_owned()),
            }
        };
        let credential = OrgCredential {
            org_id: org.org_id.clone(),
            api_key: resolve(&org.api_key, "api_key")?,
            bearer_token: resolve(&org.bearer_token, "bearer_token")?,
        };
        if credential.api_key.is_empty() || credential.bearer_token.is_empty() {
            return Err(crate::BadInput(format!(
                "api.orgs[{idx}]: api_key and bearer_token must not be empty"
            ))
            .into());
        }
        orgs.push(credential);
    }
    if !orgs.is_empty() {
        return Ok(ApiAuth { orgs });
    }
    if !config.listen.ip().is_loopback() {
        return Err(crate::BadInput(format!(
            "listen = {} is not a loopback address and [api] has no credentials: add [[api.orgs]] with org_id, api_key and bearer_token, or listen on 127.0.0.1",
            config.listen
        ))
        .into());
    }
    let path = config.state_dir.join(LOCAL_CREDENTIALS_FILE);
    let credential = local_credential(&path)?;
    warn!(
        path = %path.display(),
        org_id = %credential.org_id,
        "no [api] credentials configured: generated a local credential (loopback only); send its bearer_token, api_key and org_id as Authorization: Bearer, x-api-key and x-gw-ims-org-id"
    );
    Ok(ApiAuth {
        orgs: vec![credential],
    })
}

/// Reads `{state_dir}/api-credentials.json`, or creates it (mode 0600) with random values.
fn local_credential(path: &Path) -> anyhow::Result<OrgCredential> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|err| {
            crate::BadInput(format!("{} is not valid JSON: {err}", path.display()))
        })?;
        let field = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        if let (Some(org_id), Some(api_key), Some(bearer_token)) =
            (field("org_id"), field("api_key"), field("bearer_token"))
        {
            return Ok(OrgCredential {
                org_id,
                api_key,
                bearer_token,
            });
        }
        return Err(crate::BadInput(format!(
            "{}: expected org_id, api_key and bearer_token",
            path.display()
        ))
        .into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let credential = OrgCredential {
        org_id: "local@AdobeOrg".to_owned(),
        api_key: format!("local-{}", uuid::Uuid::new_v4().simple()),
        bearer_token: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
    };
    let text = serde_json::json!({
        "org_id": credential.org_id, "api_key": credential.api_key, "bearer_token": credential.bearer_token,
    });
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{text:#}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(credential)
}

/// Keeps the API's entities in line with `flows_dir`: a new or edited file's bundle is stored as
/// entities (an unchanged file keeps entities edited over the API as they are), a deleted file's
/// flow is taken out.
fn import_into_api(state: &ApiState, tenant: &Tenant, event: FlowEvent<'_>) -> anyhow::Result<()> {
    match event {
        FlowEvent::Loaded {
            path,
            flow_id,
            bundle,
            change,
        } => {
            if *change == BundleChange::Unchanged && state.flow_exists(tenant, flow_id) {
                return Ok(());
            }
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let json: serde_json::Value =
                serde_json::from_slice(&text).context("re-reading a validated bundle")?;
            let base_dir = path.parent().unwrap_or(Path::new(".")).to_owned();
            let resolve = |relative: &str| -> Option<serde_json::Value> {
                let text = crate::validate::read_relative(&base_dir, relative).ok()?;
                serde_json::from_str(&text).ok()
            };
            tributary_api::import_bundle(state, tenant, flow_id, bundle, &json, &resolve)
                .with_context(|| format!("storing flow bundle {} as API entities", path.display()))
        }
        FlowEvent::Removed { flow_id } => {
            tributary_api::remove_imported_flow(state, tenant, flow_id)
        }
    }
}

/// Re-reads `flows_dir` every [`RESCAN_INTERVAL`] until aborted.
async fn watch_flows_dir(
    flows_dir: FlowsDir,
    engine: Engine,
    registry: FlowRegistry,
    state: ApiState,
    tenant: Tenant,
) {
    let mut flows_dir = flows_dir;
    loop {
        tokio::time::sleep(RESCAN_INTERVAL).await;
        let engine = engine.clone();
        let registry = registry.clone();
        let state = state.clone();
        let tenant = tenant.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let res = flows_dir.sync(&engine, &registry, &|event| {
                import_into_api(&state, &tenant, event)
            });
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

/// Sets `stop` at the first SIGTERM or SIGINT.
async fn wait_for_signal(stop: tokio::sync::watch::Sender<bool>) {
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
                let _ = stop.send(true);
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
    let _ = stop.send(true);
}
