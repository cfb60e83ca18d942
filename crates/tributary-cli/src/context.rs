//! What every command that runs flows needs: the config (file, then flags), the engine (state,
//! dataset layout, HTTP client and limiters), and flow bundles loaded from files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tributary_engine::config::StateBackend;
use tributary_engine::run::{Engine, EngineOptions};
use tributary_engine::{DaemonConfig, run::recovery};
use tributary_spec::{DocumentKind, FlowBundle, SpecRef};
use tributary_state::StateLocation;

use crate::BadInput;
use crate::cli::CommonArgs;

/// The config file named by `--config` (or defaults), with `--data-dir` / `--state-dir` applied.
pub fn load_config(common: &CommonArgs) -> anyhow::Result<DaemonConfig> {
    let mut config = match &common.config {
        Some(path) => DaemonConfig::load(path).map_err(|err| BadInput(err.to_string()))?,
        None => DaemonConfig::default(),
    };
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(dir) = &common.state_dir {
        config.state_dir = dir.clone();
    }
    Ok(config)
}

/// How the config asks for state to be opened (its secret key, when set).
pub fn state_options(config: &DaemonConfig) -> anyhow::Result<tributary_state::StateOptions> {
    let secret_key = match config.state.secret_key.trim() {
        "" => None,
        key => {
            let key = resolve_env(key, "state.secret_key")?;
            Some(
                tributary_state::SecretKey::from_base64(&key)
                    .map_err(|err| BadInput(format!("config state.secret_key: {err}")))?,
            )
        }
    };
    Ok(tributary_state::StateOptions {
        secret_key,
        ..Default::default()
    })
}

/// Where the config keeps state: `state_dir` with `[state] backend = "sled"`, `[state] url`
/// (`${env:NAME}` resolved) with `backend = "postgres"`.
pub fn state_location(config: &DaemonConfig) -> anyhow::Result<StateLocation> {
    match config.state.backend {
        StateBackend::Sled => Ok(StateLocation::Sled(config.state_dir.clone())),
        StateBackend::Postgres => {
            let url = resolve_env(config.state.url.trim(), "state.url")?;
            let url = tributary_state::PostgresUrl::parse(&url)
                .map_err(|err| BadInput(format!("config state.url: {err}")))?;
            Ok(StateLocation::Postgres(url))
        }
    }
}

/// Opens the state the config names (taking a state directory's lock).
pub fn open_state(config: &DaemonConfig) -> anyhow::Result<tributary_state::Db> {
    let location = state_location(config)?;
    let options = state_options(config)?;
    tributary_state::Db::open_at(&location, options).with_context(|| format!("opening {location}"))
}

/// A config value as given, or the environment variable it names as `${env:NAME}`.
pub fn resolve_env(value: &str, key: &str) -> anyhow::Result<String> {
    match value
        .strip_prefix("${env:")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(name) => std::env::var(name)
            .map_err(|_| BadInput(format!("{key}: environment variable {name} is not set")).into()),
        None => Ok(value.to_owned()),
    }
}

/// Opens state (taking its lock), repairs what a crash left, and builds the engine.
pub fn open_engine(config: &DaemonConfig) -> anyhow::Result<Engine> {
    let db = open_state(config)?;
    let layout = dataset_layout(config, "local")?;
    recover(&db, &layout)?;
    build_engine(config, db, layout)
}

/// Where datasets are written: `data_dir` itself when it is a folder; for an object-store URL,
/// a spool in `{state_dir}/spool` mirrored to the store, whose staging folder there is named
/// `stage` (the writer: `local`, or a node's configured id or host name).
pub fn dataset_layout(
    config: &DaemonConfig,
    stage: &str,
) -> anyhow::Result<tributary_write::DatasetLayout> {
    if !config.data_in_object_store() {
        if !config.storage.0.is_empty() {
            // Checked here, after `--data-dir`, which may point a config's data_dir elsewhere.
            return Err(BadInput(format!(
                "[storage] options are for an object-store data_dir (s3://, az://, abfss://, gs://), and data_dir is the local folder {}",
                config.data_dir.display()
            ))
            .into());
        }
        return Ok(tributary_write::DatasetLayout::new(config.data_dir.clone()));
    }
    let url = config.data_dir.to_string_lossy();
    let mut options = std::collections::BTreeMap::new();
    for (key, value) in &config.storage.0 {
        options.insert(key.clone(), resolve_env(value, &format!("storage.{key}"))?);
    }
    let root = tributary_write::object::ObjectRoot::open(&url, &options)
        .map_err(|err| BadInput(format!("data_dir: {err}")))?;
    Ok(tributary_write::DatasetLayout::mirrored(
        config.state_dir.join("spool"),
        tributary_write::object::Mirror::new(root, stage),
    ))
}

/// Opens a state that other daemons share and builds the engine, without the start-up repair
/// of the whole state: other nodes are working in it (their staged parts and commits are
/// theirs). A node repairs a flow's windows when it claims the flow's lease instead.
///
/// With datasets in an object store, the node's own stray uploads (`stage`) are deleted.
pub fn open_node_engine(config: &DaemonConfig, stage: &str) -> anyhow::Result<Engine> {
    let db = open_state(config)?;
    let layout = dataset_layout(config, stage)?;
    if let Some(mirror) = layout.mirror() {
        let removed = mirror
            .root
            .clean_staging(&mirror.stage)
            .with_context(|| format!("cleaning the staging folder of {}", mirror.root))?;
        if removed > 0 {
            tracing::info!(removed, root = %mirror.root, "deleted stray uploads of an earlier process");
        }
    }
    build_engine(config, db, layout)
}

fn recover(
    db: &tributary_state::Db,
    layout: &tributary_write::DatasetLayout,
) -> anyhow::Result<()> {
    let report = recovery::recover(db, layout).context("recovering from the previous run")?;
    if report != recovery::RecoveryReport::default() {
        tracing::info!(
            completed_windows = report.completed_windows,
            removed_batches = report.removed_batches,
            removed_staged_files = report.removed_staged_files,
            kept_staged_files = report.kept_staged_files,
            "recovered state left by an earlier process"
        );
    }
    Ok(())
}

fn build_engine(
    config: &DaemonConfig,
    db: tributary_state::Db,
    layout: tributary_write::DatasetLayout,
) -> anyhow::Result<Engine> {
    // `limits.memory_budget_mb` bounds what every run of the process holds in flight: half for
    // fetched pages waiting to be decoded, half for decoded batches waiting to be encoded.
    let budget_bytes = config.limits.memory_budget_mb.saturating_mul(1024 * 1024);
    let fetch = tributary_fetch::FetchContext::try_new(
        tributary_fetch::Limiters::new(),
        fetch_settings(config),
    )?
    .with_page_budget(tributary_fetch::MemoryBudget::new(budget_bytes / 2));
    let mut options = EngineOptions {
        batch_budget: Some(tributary_fetch::MemoryBudget::new(budget_bytes / 2)),
        ..EngineOptions::default()
    };
    if let Some(rows) = checkpoint_rows_override()? {
        options.checkpoint_rows = rows;
    }
    Ok(Engine {
        layout,
        db,
        fetch,
        options,
        running: Default::default(),
    })
}

/// The fetcher's settings from the config's `[limits]`.
pub fn fetch_settings(config: &DaemonConfig) -> tributary_fetch::FetchSettings {
    tributary_fetch::FetchSettings {
        max_wait: std::time::Duration::from_secs(config.limits.max_wait_secs),
        host_quotas: config.limits.host_quotas(),
        ..tributary_fetch::FetchSettings::default()
    }
}

/// Tuning knob: `TRIBUTARY_CHECKPOINT_ROWS` closes a part (and records a checkpoint) after this
/// many rows instead of the default 1,000,000. Smaller values make an interrupted run lose less
/// work at the cost of more, smaller files; the crash test uses it to have many commits.
pub const CHECKPOINT_ROWS_ENV: &str = "TRIBUTARY_CHECKPOINT_ROWS";

fn checkpoint_rows_override() -> anyhow::Result<Option<u64>> {
    let Ok(text) = std::env::var(CHECKPOINT_ROWS_ENV) else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(rows) if rows > 0 => Ok(Some(rows)),
        _ => Err(BadInput(format!(
            "{CHECKPOINT_ROWS_ENV}: expected a positive number of rows, found {text:?}"
        ))
        .into()),
    }
}

/// Reads and validates a flow bundle; referenced files are read relative to it. Problems are
/// bad input (exit code 2), each line naming the file and the JSON pointer.
pub fn load_bundle(path: &Path) -> anyhow::Result<Arc<FlowBundle>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| BadInput(format!("cannot read flow bundle {}: {err}", path.display())))?;
    let label = path.display().to_string();
    let base_dir: PathBuf = path.parent().unwrap_or(Path::new(".")).to_owned();
    let bundle = tributary_spec::load_bundle(&label, &text, |kind: DocumentKind, spec_ref: &SpecRef| {
        match spec_ref {
            SpecRef::Path(relative) => crate::validate::read_relative(&base_dir, relative),
            SpecRef::Id(id) => Err(format!(
                "{kind:?} {id:?} is referenced by id; a bundle run from the command line needs it inline or as {{\"path\": ...}}"
            )),
            SpecRef::Inline(_) => Err("inline documents need no resolving".to_owned()),
        }
    })
    .map_err(|err| BadInput(format!("{err}")))?;
    let mut bundle = bundle;
    if bundle.target.schema.is_none() {
        if let Some(schema_id) = bundle.target.schema_id.clone() {
            bundle.target.schema = Some(find_schema(&base_dir, &schema_id)?);
        }
    }
    Ok(Arc::new(bundle))
}

/// The target schema a bundle names by id (`targetConnection.data.schema.id`): the JSON schema
/// file whose `$id` is that id, in a `schemas/` folder beside the bundle or beside its folder
/// (`configs/schemas/` for `configs/flows/*.json`).
fn find_schema(base_dir: &Path, schema_id: &str) -> anyhow::Result<serde_json::Value> {
    let folders = [base_dir.join("schemas"), base_dir.join("../schemas")];
    for folder in &folders {
        let Ok(entries) = std::fs::read_dir(folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(schema) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if schema.get("$id").and_then(|id| id.as_str()) == Some(schema_id) {
                return Ok(schema);
            }
        }
    }
    Err(BadInput(format!(
        "targetConnection.data.schema.id {schema_id:?}: no JSON schema with that $id in {} or {}",
        folders[0].display(),
        folders[1].display()
    ))
    .into())
}
