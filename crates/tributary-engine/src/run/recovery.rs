//! Publishing a window's batch (the swap at commit), rejecting a window's attempt, and putting
//! things right at start after a crash. Every step is idempotent, so a crash in the middle of
//! any of them is repaired by running it again.
//!
//! Publishing ([`publish_window`]), after the attempt's parts are all recorded:
//! 1. `start_commit` in state: from here the swap is finished whatever happens;
//! 2. the batches the window's new generation replaces are taken out of the dataset (one rename
//!    each into the trash) — the old batch stayed visible until the new one was durable;
//! 3. the new batch's staging folder is renamed into the dataset (one rename: a reader sees all of
//!    it or none of it);
//! 4. `complete_window` in state.
//!
//! Between 2 and 3 a reader sees neither the old nor the new batch of the window for a moment
//! (or, after a crash right there, until the next start) — never both, never part of one.
//!
//! A dataset that is a Delta table (its folder holds `_delta_log/`, created before its first
//! commit by [`check_dataset_format`]) publishes differently, with no moment where the window is
//! missing:
//! 2. the new batch's staging folder is renamed into the table folder — not yet part of the table;
//! 3. one Delta commit adds its parts and removes the live files of the replaced batches
//!    (`tributary_write::delta::commit_batch`), with the app transaction `{appId: the window,
//!    version: the millisecond the commit started, kept in state by step 1}`, so a redone commit
//!    finds itself in the table and is not made twice;
//! 4. the replaced batches' rejected rows are deleted; their data files stay, for readers of the
//!    table's earlier versions (a `VACUUM` may delete them; tributary runs none);
//! 5. `complete_window` in state.
//!
//! A crash before 3 leaves the old table version (plus unreferenced files); after 3 the new one.
//!
//! Datasets in an object store (`layout.mirror()`): the steps above run in the local spool, and
//! right after step 3 the batch is uploaded (`tributary_write::object`: plain Parquet through the
//! store's staging folder and a copy; a Delta table's parts straight to their keys, then its
//! commit goes to the store's `_delta_log/`); replaced batches are deleted from the store too.
//! After `complete_window` the spool's copy is deleted. Every upload is idempotent, so a redo
//! after a crash is the same path. A node that finds a `_delta_log/` in the store for a dataset
//! it has no marker for takes the dataset as a Delta table.
//!
//! At start ([`recover`]):
//! 1. A window that was committing: finish its commit (steps 2–4 again).
//! 2. Batches marked `Replaced` by an older release: remove their files, mark them `Removed`.
//! 3. Staging keeps only the recorded parts of in-progress windows (a later run resumes them);
//!    everything else a failed or killed run left there is deleted.
//! 4. With an object store: this writer's stray uploads in its staging folder, and the spool's
//!    published batches, are deleted ([`clean_mirror`]).
//!
//! Tests simulate a kill at an exact point of a Delta publish with the environment variable
//! `TRIBUTARY_TEST_CRASH_AT` = `delta-renamed` (after step 2) or `delta-committed` (after step 3):
//! the process aborts there, as `kill -9` would stop it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tributary_spec::TargetFormat;
use tributary_state::{
    BatchRef, BatchStatus, Checkpoint, CheckpointStatus, DatasetId, Db, WindowKey,
};
use tributary_write::DatasetLayout;
use tributary_write::delta::{DeltaCommit, DeltaFile};
use tributary_write::object::{Mirror, ObjectRoot};

/// What publishing a window made visible.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Published {
    /// Data files, relative to the data dir.
    pub files: Vec<String>,
    /// Their total size.
    pub bytes: u64,
    /// Rows in the data files.
    pub rows: u64,
}

/// What [`recover`] repaired.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryReport {
    /// Windows whose interrupted commit was completed.
    pub completed_windows: usize,
    /// Replaced batches whose files were removed.
    pub removed_batches: usize,
    /// Files deleted from staging.
    pub removed_staged_files: u64,
    /// Staged parts kept for in-progress windows.
    pub kept_staged_files: u64,
}

/// Commits a window's current attempt: see the module header. `truncated`: `maximumRequest` cut
/// it short, so the window stays open (ignored when the commit was already started).
pub fn publish_window(
    db: &Db,
    layout: &DatasetLayout,
    key: &WindowKey,
    truncated: bool,
) -> anyhow::Result<Published> {
    let checkpoint = db.start_commit(key, truncated)?;
    let batch_ref = BatchRef {
        batch_id: checkpoint.batch_id.clone(),
        dataset_id: checkpoint.dataset_id.clone(),
    };
    let (dataset, batch) = write_ids(&batch_ref)?;
    let is_delta = is_delta_dataset(layout, &dataset)?;
    // Replaced batches that are in Delta tables, by table: their commit removes them.
    let mut delta_replaced: BTreeMap<String, Vec<tributary_write::BatchId>> = BTreeMap::new();
    for replaced in &checkpoint.replaces {
        let (replaced_dataset, replaced_batch) = write_ids(replaced)?;
        if is_delta_dataset(layout, &replaced_dataset)? {
            delta_replaced
                .entry(replaced_dataset.to_string())
                .or_default()
                .push(replaced_batch);
            continue;
        }
        tributary_write::remove_batch(layout, &replaced_dataset, &replaced_batch).with_context(
            || {
                format!(
                    "taking the replaced batch {} out of the dataset",
                    replaced.batch_id
                )
            },
        )?;
        if let Some(mirror) = layout.mirror() {
            mirror
                .root
                .remove_batch(&replaced_dataset, &replaced_batch)
                .with_context(|| {
                    format!(
                        "taking the replaced batch {} out of the dataset in {}",
                        replaced.batch_id, mirror.root
                    )
                })?;
        }
    }
    let mut data_names = Vec::new();
    let mut error_names = Vec::new();
    for part in &checkpoint.parts {
        let name = file_name(&part.final_path)?;
        if part.final_path.ends_with(".parquet") {
            data_names.push(name);
        } else {
            error_names.push(name);
        }
    }
    tributary_write::publish_batch(layout, &dataset, &batch, &data_names, &error_names)
        .with_context(|| format!("publishing batch {} of {key}", checkpoint.batch_id))?;
    if let Some(mirror) = layout.mirror() {
        mirror_batch(
            layout,
            mirror,
            &dataset,
            &batch,
            &data_names,
            &error_names,
            is_delta,
        )
        .with_context(|| {
            format!(
                "publishing batch {} of {key} to {}",
                checkpoint.batch_id, mirror.root
            )
        })?;
    }
    if is_delta || !delta_replaced.is_empty() {
        tributary_write::crash_point("delta-renamed");
        commit_delta(layout, key, &checkpoint, is_delta, &delta_replaced)?;
        tributary_write::crash_point("delta-committed");
    }

    let mut published = Published::default();
    // The schema of each published file, recorded with the batch.
    let mut schemas = serde_json::Map::new();
    for part in checkpoint
        .parts
        .iter()
        .filter(|part| part.final_path.ends_with(".parquet"))
    {
        let file = relative_to(layout.data_dir(), &part.final_path);
        let schema = tributary_write::part_schema(Path::new(&part.final_path))?;
        schemas.insert(file.clone(), serde_json::to_value(schema.as_ref())?);
        published.files.push(file);
        published.bytes += part.bytes;
        published.rows += part.rows;
    }
    let schema_json = serde_json::Value::Object(schemas).to_string();
    db.complete_window(key, Some(schema_json))?;
    if layout.mirror().is_some() {
        // The object store has the batch now; the spool's copy was only needed for a redo.
        remove_spooled(layout, &dataset, &batch);
    }
    Ok(published)
}

/// Step 3 for a dataset in an object store: the batch just published in the spool is uploaded
/// (a Delta table's parts straight to their keys, which the commit then adds; plain Parquet
/// through the store's staging folder, see `tributary_write::object`). Idempotent.
fn mirror_batch(
    layout: &DatasetLayout,
    mirror: &Mirror,
    dataset: &tributary_write::DatasetId,
    batch: &tributary_write::BatchId,
    data_names: &[String],
    error_names: &[String],
    is_delta: bool,
) -> anyhow::Result<()> {
    mirror.root.publish_folder(
        &layout.batch_dir(dataset, batch),
        data_names,
        &ObjectRoot::batch_folder(dataset, batch),
        &mirror.stage,
        is_delta,
    )?;
    mirror.root.publish_folder(
        &layout.errors_dir(dataset, batch),
        error_names,
        &ObjectRoot::errors_folder(dataset, batch),
        &mirror.stage,
        false,
    )?;
    Ok(())
}

/// Deletes a batch's published folders from the spool of a mirrored layout; a failure only
/// leaves disk used (recovery's sweep deletes it at the next start).
fn remove_spooled(
    layout: &DatasetLayout,
    dataset: &tributary_write::DatasetId,
    batch: &tributary_write::BatchId,
) {
    for dir in [
        layout.batch_dir(dataset, batch),
        layout.errors_dir(dataset, batch),
    ] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(path = %dir.display(), error = %err, "could not delete a mirrored batch from the spool");
            }
        }
    }
}

/// Refuses a target whose format contradicts its dataset's, and marks a dataset that is to be a
/// Delta table as one (its `_delta_log/` folder) before anything of it is published.
pub fn check_dataset_format(
    layout: &DatasetLayout,
    dataset: &tributary_write::DatasetId,
    format: TargetFormat,
) -> Result<(), super::RunError> {
    let is_delta = is_delta_dataset(layout, dataset)?;
    let mirror = layout.mirror();
    match format {
        TargetFormat::Delta if !is_delta => {
            let dataset_dir = layout.dataset_dir(dataset);
            let in_store = match mirror {
                Some(mirror) => mirror.root.has_batches(dataset)?,
                None => false,
            };
            let has_batches = in_store
                || match std::fs::read_dir(&dataset_dir) {
                    Ok(entries) => entries
                        .flatten()
                        .any(|entry| entry.file_name().to_string_lossy().starts_with("batch=")),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
                    Err(err) => {
                        return Err(super::RunError::Internal(format!(
                            "listing {}: {err}",
                            dataset_dir.display()
                        )));
                    }
                };
            if has_batches {
                return Err(super::RunError::BadInput(format!(
                    "targetConnection.data.format \"delta\": dataset {dataset} already holds Parquet batches, which a Delta table would not list; write the Delta table to a new dataSetId"
                )));
            }
            tributary_write::delta::mark_delta_table(layout, dataset)?;
            Ok(())
        }
        TargetFormat::Parquet if is_delta => Err(super::RunError::BadInput(format!(
            "targetConnection.data.format: dataset {dataset} is a Delta table; set \"format\": \"delta\" to add to it, or use a new dataSetId for Parquet batches"
        ))),
        TargetFormat::Delta | TargetFormat::Parquet => Ok(()),
    }
}

/// Whether `dataset` is a Delta table: its `_delta_log/` marker in the layout, or, for datasets in
/// an object store, a `_delta_log/` there (another node, or an earlier spool, made it one; the
/// marker is then made here too).
fn is_delta_dataset(
    layout: &DatasetLayout,
    dataset: &tributary_write::DatasetId,
) -> Result<bool, tributary_write::WriteError> {
    if tributary_write::delta::is_delta_table(layout, dataset)? {
        return Ok(true);
    }
    let Some(mirror) = layout.mirror() else {
        return Ok(false);
    };
    let log = format!("datasets/{}/_delta_log", dataset.as_str());
    if !mirror.root.folder_exists(&log)? {
        return Ok(false);
    }
    tributary_write::delta::mark_delta_table(layout, dataset)?;
    Ok(true)
}

/// The Delta commit(s) of a window's publish (see the module header): the new batch's files,
/// with the removal of the replaced batches of the same table, and a removal-only commit for
/// each other Delta table that held a replaced batch (the window's dataset id changed).
fn commit_delta(
    layout: &DatasetLayout,
    key: &WindowKey,
    checkpoint: &Checkpoint,
    is_delta: bool,
    delta_replaced: &BTreeMap<String, Vec<tributary_write::BatchId>>,
) -> anyhow::Result<()> {
    let app_id = delta_app_id(key);
    // Set once by `start_commit` and kept in state, so a redo carries the same version; later
    // commits of the window start later.
    let version = checkpoint.updated_at_ms;
    let batch_ref = BatchRef {
        batch_id: checkpoint.batch_id.clone(),
        dataset_id: checkpoint.dataset_id.clone(),
    };
    let (dataset, batch) = write_ids(&batch_ref)?;
    let no_batches = Vec::new();
    for (table, replaced) in delta_replaced {
        if is_delta && *table == dataset.to_string() {
            continue;
        }
        let table = tributary_write::DatasetId::try_new(table.clone())?;
        tributary_write::delta::commit_batch(
            layout,
            layout.mirror().map(|mirror| &mirror.root),
            &table,
            &DeltaCommit {
                batch: &batch,
                files: &[],
                replaces: replaced,
                app_id: &app_id,
                version,
            },
        )
        .with_context(|| {
            format!("removing the replaced batches of {key} from Delta table {table}")
        })?;
    }
    if is_delta {
        let files: Vec<DeltaFile> = checkpoint
            .parts
            .iter()
            .filter(|part| part.final_path.ends_with(".parquet"))
            .map(|part| {
                Ok(DeltaFile {
                    name: file_name(&part.final_path)?,
                    rows: part.rows,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let replaces = delta_replaced.get(dataset.as_str()).unwrap_or(&no_batches);
        let outcome = tributary_write::delta::commit_batch(
            layout,
            layout.mirror().map(|mirror| &mirror.root),
            &dataset,
            &DeltaCommit {
                batch: &batch,
                files: &files,
                replaces,
                app_id: &app_id,
                version,
            },
        )
        .with_context(|| {
            format!(
                "committing batch {} of {key} to Delta table {dataset}",
                checkpoint.batch_id
            )
        })?;
        tracing::info!(batch_id = %checkpoint.batch_id, dataset = %dataset, ?outcome, "Delta commit");
    }
    for (table, replaced) in delta_replaced {
        let table = tributary_write::DatasetId::try_new(table.clone())?;
        for replaced_batch in replaced {
            tributary_write::remove_batch_errors(layout, &table, replaced_batch)?;
            if let Some(mirror) = layout.mirror() {
                mirror
                    .root
                    .delete_folder(&ObjectRoot::errors_folder(&table, replaced_batch))?;
            }
        }
    }
    Ok(())
}

/// The app-transaction id of a window's Delta commits: commits of one window are serial.
fn delta_app_id(key: &WindowKey) -> String {
    let bound = |ms: Option<i64>| ms.map_or_else(|| "open".to_owned(), |ms| ms.to_string());
    format!(
        "tributary-window-{}-{}-{}",
        key.flow_id,
        bound(key.start_ms),
        bound(key.end_ms)
    )
}

/// Ends an attempt whose rows were rejected over the threshold: its batch fails, the window
/// starts the attempt again at its next run, and its staged data is deleted. With `keep_errors`
/// (error diagnostics on) its rejected rows are published to `_errors/batch={id}/` first;
/// returns that folder when there were any.
pub fn reject_window(
    db: &Db,
    layout: &DatasetLayout,
    key: &WindowKey,
    keep_errors: bool,
) -> anyhow::Result<Option<PathBuf>> {
    let next_batch = tributary_state::BatchId::new(super::new_batch_id());
    let failed = db.fail_window(key, &next_batch)?;
    let (dataset, batch) = write_ids(&failed.batch)?;
    let error_names: Vec<String> = failed
        .parts
        .iter()
        .filter(|part| part.final_path.ends_with(".jsonl"))
        .map(|part| file_name(&part.final_path))
        .collect::<anyhow::Result<_>>()?;
    let mut kept = None;
    if keep_errors && !error_names.is_empty() {
        tributary_write::publish_errors(layout, &dataset, &batch, &error_names).with_context(
            || {
                format!(
                    "keeping the rejected rows of batch {}",
                    failed.batch.batch_id
                )
            },
        )?;
        kept = Some(layout.errors_dir(&dataset, &batch));
        if let Some(mirror) = layout.mirror() {
            let folder = ObjectRoot::errors_folder(&dataset, &batch);
            mirror
                .root
                .publish_folder(
                    &layout.errors_dir(&dataset, &batch),
                    &error_names,
                    &folder,
                    &mirror.stage,
                    false,
                )
                .with_context(|| {
                    format!(
                        "keeping the rejected rows of batch {} in {}",
                        failed.batch.batch_id, mirror.root
                    )
                })?;
            remove_spooled(layout, &dataset, &batch);
            kept = Some(PathBuf::from(format!("{}/{folder}", mirror.root)));
        }
    }
    delete_staged(layout, &failed.batch)?;
    Ok(kept)
}

/// Deletes what a batch has in staging (an attempt that will never be published).
pub fn delete_staged(layout: &DatasetLayout, batch_ref: &BatchRef) -> Result<(), super::RunError> {
    let (dataset, batch) =
        write_ids(batch_ref).map_err(|err| super::RunError::Internal(format!("{err:#}")))?;
    for dir in [
        layout.staged_batch_dir(&dataset, &batch),
        layout.staged_errors_dir(&dataset, &batch),
    ] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                // Recovery's staging clean-up deletes it at the next start.
                tracing::warn!(path = %dir.display(), error = %err, "could not delete an abandoned attempt's staged files");
            }
        }
    }
    Ok(())
}

/// Repairs what a crash left: see the module header.
pub fn recover(db: &Db, layout: &DatasetLayout) -> anyhow::Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for open in db.all_open_windows()? {
        match open.status {
            CheckpointStatus::Committing => {
                publish_window(db, layout, &open.window, false)?;
                report.completed_windows += 1;
            }
            CheckpointStatus::InProgress => {
                if let Some(checkpoint) = db.checkpoint(&open.window)? {
                    keep.extend(
                        checkpoint
                            .parts
                            .iter()
                            .map(|part| PathBuf::from(&part.staged_path)),
                    );
                }
            }
            CheckpointStatus::Open | CheckpointStatus::Complete => {}
        }
    }
    for batch in db.batches_with_status(BatchStatus::Replaced)? {
        remove_batch_files(db, layout, &batch.dataset_id, &batch.id)?;
        report.removed_batches += 1;
    }
    let cleaned = tributary_write::clean_staging(layout, |path| keep.contains(path))?;
    report.removed_staged_files = cleaned.removed_files;
    report.kept_staged_files = cleaned.kept_files;
    if let Some(mirror) = layout.mirror() {
        report.removed_staged_files += clean_mirror(layout, mirror)?;
    }
    Ok(report)
}

/// At start, for datasets in an object store: deletes this writer's stray uploads in the store's
/// staging folder, and the spool's published batches (every commit was finished above, so the
/// store has them all). Returns the objects deleted.
pub fn clean_mirror(layout: &DatasetLayout, mirror: &Mirror) -> anyhow::Result<u64> {
    let removed = mirror
        .root
        .clean_staging(&mirror.stage)
        .with_context(|| format!("cleaning the staging folder of {}", mirror.root))?;
    let datasets = match std::fs::read_dir(layout.datasets_dir()) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(err) => return Err(err).context("listing the spool's datasets"),
    };
    for dataset in datasets.flatten() {
        let dir = dataset.path();
        for folder in [dir.clone(), dir.join("_errors")] {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("batch=") {
                    std::fs::remove_dir_all(entry.path()).with_context(|| {
                        format!("deleting mirrored batch {}", entry.path().display())
                    })?;
                }
            }
        }
    }
    Ok(removed)
}

/// Removes a batch's files from the dataset and marks it `Removed`.
fn remove_batch_files(
    db: &Db,
    layout: &DatasetLayout,
    dataset_id: &DatasetId,
    batch_id: &tributary_state::BatchId,
) -> anyhow::Result<()> {
    let (dataset, batch) = write_ids(&BatchRef {
        batch_id: batch_id.clone(),
        dataset_id: dataset_id.clone(),
    })?;
    tributary_write::remove_batch(layout, &dataset, &batch)?;
    if let Some(mirror) = layout.mirror() {
        mirror.root.remove_batch(&dataset, &batch)?;
    }
    db.set_batch_status(batch_id, BatchStatus::Removed)?;
    Ok(())
}

fn write_ids(
    batch_ref: &BatchRef,
) -> anyhow::Result<(tributary_write::DatasetId, tributary_write::BatchId)> {
    Ok((
        tributary_write::DatasetId::try_new(batch_ref.dataset_id.to_string())?,
        tributary_write::BatchId::try_new(batch_ref.batch_id.to_string())?,
    ))
}

fn file_name(path: &str) -> anyhow::Result<String> {
    Path::new(path)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .with_context(|| format!("part path {path} has no file name"))
}

fn relative_to(base: &Path, path: &str) -> String {
    Path::new(path)
        .strip_prefix(base)
        .map_or_else(|_| path.to_owned(), |rel| rel.display().to_string())
}
