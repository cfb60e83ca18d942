//! The daemon's `flows_dir`: every `*.json` file in it is a flow bundle. Read at start and
//! re-read every few seconds while `serve` runs, so adding, editing or deleting a file changes
//! what the scheduler runs without a restart.
//!
//! Bundles are registered idempotently: each file's content hash is recorded with
//! `put_bundle_source`, so reading the same folder twice writes nothing and an edited file is
//! logged as changed (its flow keeps its id and state: the id derives from the bundle name). A
//! file that does not validate is logged with its path and skipped; when it was valid before, the
//! flow keeps running its last valid version until the file is fixed. A deleted file removes its
//! flow from the scheduler (its state stays).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing::{info, warn};
use tributary_engine::daemon::{self, DaemonFlow, FlowRegistry};
use tributary_engine::run::{Engine, bundle_flow_id};
use tributary_spec::FlowBundle;
use tributary_state::{BundleChange, FlowId};

use crate::context::load_bundle;

/// How often a running daemon looks at `flows_dir` again.
pub const RESCAN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// What happened to a file's flow, for whoever else keeps flows (the HTTP API's entities).
#[derive(Debug)]
pub enum FlowEvent<'a> {
    /// A new or edited file's valid bundle (`change` says which; at start every file is seen for
    /// the first time by this process).
    Loaded {
        path: &'a Path,
        flow_id: &'a FlowId,
        bundle: &'a FlowBundle,
        change: &'a BundleChange,
    },
    /// The file that defined this flow is gone (or now defines another flow).
    Removed { flow_id: &'a FlowId },
}

/// Told about every [`FlowEvent`] before the scheduler's set changes.
pub type FlowHook<'a> = &'a dyn Fn(FlowEvent<'_>) -> anyhow::Result<()>;

/// What the daemon last read from each file of the folder.
#[derive(Debug)]
pub struct FlowsDir {
    dir: PathBuf,
    files: HashMap<PathBuf, LoadedFile>,
}

#[derive(Debug, Clone)]
struct LoadedFile {
    content_hash: String,
    /// The flow the file defines, when it ever validated.
    flow_id: Option<FlowId>,
}

impl FlowsDir {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            files: HashMap::new(),
        }
    }

    /// Reads the folder and brings `registry` in line with it: new and edited files are
    /// (re)registered, deleted files' flows removed. Blocking (filesystem and state): call it from
    /// a blocking thread in async code.
    pub fn sync(
        &mut self,
        engine: &Engine,
        registry: &FlowRegistry,
        hook: FlowHook<'_>,
    ) -> anyhow::Result<()> {
        let entries = std::fs::read_dir(&self.dir).map_err(|err| {
            crate::BadInput(format!(
                "cannot read flows_dir {}: {err}",
                self.dir.display()
            ))
        })?;
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("listing flows_dir {}", self.dir.display()))?
                .path();
            if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();

        // Files that are gone take their flows with them.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|path| !paths.contains(path))
            .cloned()
            .collect();
        for path in gone {
            if let Some(LoadedFile {
                flow_id: Some(flow_id),
                ..
            }) = self.files.remove(&path)
            {
                hook(FlowEvent::Removed { flow_id: &flow_id })?;
                registry.remove(&flow_id);
                info!(path = %path.display(), flow_id = %flow_id, "flow bundle deleted: flow no longer scheduled");
            }
        }

        // Which file defines which flow (the first file in name order wins a name clash).
        let mut owners: BTreeMap<FlowId, PathBuf> = BTreeMap::new();
        for (path, loaded) in &self.files {
            if let Some(flow_id) = &loaded.flow_id {
                owners
                    .entry(flow_id.clone())
                    .and_modify(|owner| {
                        if path < owner {
                            *owner = path.clone();
                        }
                    })
                    .or_insert_with(|| path.clone());
            }
        }
        for path in paths {
            self.sync_file(engine, registry, hook, &path, &mut owners)?;
        }
        engine
            .db
            .flush()
            .context("flushing the registered bundles")?;
        Ok(())
    }

    fn sync_file(
        &mut self,
        engine: &Engine,
        registry: &FlowRegistry,
        hook: FlowHook<'_>,
        path: &Path,
        owners: &mut BTreeMap<FlowId, PathBuf>,
    ) -> anyhow::Result<()> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) => {
                warn!(path = %path.display(), error = %err, "cannot read flow bundle; skipped");
                return Ok(());
            }
        };
        let hash = daemon::content_hash(&text);
        let previous = self.files.get(path).cloned();
        if previous
            .as_ref()
            .is_some_and(|loaded| loaded.content_hash == hash)
        {
            return Ok(());
        }
        let previous_flow = previous.and_then(|loaded| loaded.flow_id);
        let bundle = match load_bundle(path) {
            Ok(bundle) => bundle,
            Err(err) => {
                let keeping = previous_flow.is_some();
                warn!(path = %path.display(), error = %format!("{err:#}"), keeping_last_valid_version = keeping,
                      "invalid flow bundle; skipped");
                self.files.insert(
                    path.to_owned(),
                    LoadedFile {
                        content_hash: hash,
                        flow_id: previous_flow,
                    },
                );
                return Ok(());
            }
        };
        let flow_id = bundle_flow_id(&bundle.name);
        if let Some(owner) = owners.get(&flow_id)
            && owner != path
        {
            warn!(path = %path.display(), flow = %bundle.name, other = %owner.display(),
                  "another bundle already defines a flow of this name; skipped");
            self.files.insert(
                path.to_owned(),
                LoadedFile {
                    content_hash: hash,
                    flow_id: None,
                },
            );
            return Ok(());
        }
        // A renamed bundle (same file, new name) stops its old flow.
        if let Some(old) = &previous_flow
            && *old != flow_id
        {
            hook(FlowEvent::Removed { flow_id: old })?;
            registry.remove(old);
            owners.remove(old);
        }
        let change = engine.db.put_bundle_source(path, &hash, &flow_id)?;
        match &change {
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
        hook(FlowEvent::Loaded {
            path,
            flow_id: &flow_id,
            bundle: &bundle,
            change: &change,
        })?;
        owners.insert(flow_id.clone(), path.to_owned());
        self.files.insert(
            path.to_owned(),
            LoadedFile {
                content_hash: hash,
                flow_id: Some(flow_id.clone()),
            },
        );
        match DaemonFlow::try_new(flow_id.clone(), bundle.clone()) {
            Ok(Some(flow)) => {
                registry.upsert(flow);
            }
            Ok(None) => {
                registry.remove(&flow_id);
                info!(path = %path.display(), flow = %bundle.name, "flow has no scheduleParams: not scheduled")
            }
            Err(err) => {
                registry.remove(&flow_id);
                warn!(path = %path.display(), error = %err, "flow schedule cannot be evaluated; skipped")
            }
        }
        Ok(())
    }
}
