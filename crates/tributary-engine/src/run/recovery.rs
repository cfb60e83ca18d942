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
//! At start ([`recover`]):
//! 1. A window that was committing: finish its commit (steps 2–4 again).
//! 2. Batches marked `Replaced` by an older release: remove their files, mark them `Removed`.
//! 3. Staging keeps only the recorded parts of in-progress windows (a later run resumes them);
//!    everything else a failed or killed run left there is deleted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tributary_state::{BatchRef, BatchStatus, CheckpointStatus, DatasetId, Db, WindowKey};
use tributary_write::DatasetLayout;

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
    for replaced in &checkpoint.replaces {
        let (dataset, batch) = write_ids(replaced)?;
        tributary_write::remove_batch(layout, &dataset, &batch).with_context(|| {
            format!(
                "taking the replaced batch {} out of the dataset",
                replaced.batch_id
            )
        })?;
    }
    let batch_ref = BatchRef {
        batch_id: checkpoint.batch_id.clone(),
        dataset_id: checkpoint.dataset_id.clone(),
    };
    let (dataset, batch) = write_ids(&batch_ref)?;
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
    Ok(published)
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
    Ok(report)
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
