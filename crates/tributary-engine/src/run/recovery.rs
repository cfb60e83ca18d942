//! Publishing a window's batch, taking a replaced batch away, and putting things right at start
//! after a crash. Every step is idempotent, so a crash in the middle of any of them is repaired
//! by running it again.
//!
//! At start ([`recover`]):
//! 1. A window with published parts was committing when the process stopped: publish the rest
//!    (a rename, or nothing when the rename already happened) and complete it.
//! 2. Batches marked `Replaced` still have files: remove them, then mark them `Removed`.
//! 3. Staging keeps only the parts of in-progress windows (a later run resumes them); everything
//!    else a failed or killed run left there is deleted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tributary_state::{
    BatchStatus, CheckpointStatus, DatasetId, Db, PartEntry, PartState, WindowKey,
};
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

/// Publishes every pending part of a window (in sequence order) and completes the window.
pub fn publish_window(
    db: &Db,
    layout: &DatasetLayout,
    key: &WindowKey,
) -> anyhow::Result<Published> {
    let checkpoint = db
        .checkpoint(key)?
        .with_context(|| format!("no checkpoint for {key}"))?;
    let mut published = Published::default();
    // The schema of each published file, recorded with the batch.
    let mut schemas = serde_json::Map::new();
    for part in &checkpoint.parts {
        if part.state == PartState::Pending {
            tributary_write::publish(Path::new(&part.staged_path), Path::new(&part.final_path))
                .with_context(|| format!("publishing part {} of {key}", part.seq))?;
            db.mark_published(key, part.seq)?;
        }
        if part.final_path.ends_with(".parquet") {
            let file = relative_to(layout.data_dir(), &part.final_path);
            let schema = tributary_write::part_schema(Path::new(&part.final_path))?;
            schemas.insert(file.clone(), serde_json::to_value(schema.as_ref())?);
            published.files.push(file);
            published.bytes += part.bytes;
            published.rows += part.rows;
        }
    }
    if checkpoint.status != CheckpointStatus::Complete {
        let schema_json = serde_json::Value::Object(schemas).to_string();
        db.complete_window(key, Some(schema_json))?;
    }
    Ok(published)
}

/// Throws away a window's staged parts, newest first, so that its next run starts from the first
/// page. Only pending parts exist here: parts are published at commit.
pub fn discard_window(db: &Db, key: &WindowKey) -> anyhow::Result<()> {
    let Some(checkpoint) = db.checkpoint(key)? else {
        return Ok(());
    };
    for part in checkpoint.parts.iter().rev() {
        if part.state != PartState::Pending {
            anyhow::bail!("part {} of {key} is already published", part.seq);
        }
        db.discard_part(key, part.seq)?;
        match std::fs::remove_file(&part.staged_path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("deleting {}", part.staged_path));
            }
        }
    }
    Ok(())
}

/// Removes a replaced batch's files (published and staged) and marks it `Removed`.
pub fn remove_replaced(
    db: &Db,
    layout: &DatasetLayout,
    dataset_id: &DatasetId,
    batch_id: &tributary_state::BatchId,
    parts: &[PartEntry],
) -> Result<(), super::RunError> {
    let dataset = tributary_write::DatasetId::try_new(dataset_id.to_string())?;
    let batch = tributary_write::BatchId::try_new(batch_id.to_string())?;
    tributary_write::remove_batch(layout, &dataset, &batch)?;
    for part in parts {
        if part.state == PartState::Pending {
            match std::fs::remove_file(&part.staged_path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(path = %part.staged_path, error = %err, "could not delete a replaced batch's staged part")
                }
            }
        }
    }
    db.set_batch_status(batch_id, BatchStatus::Removed)?;
    Ok(())
}

/// Repairs what a crash left: see the module header.
pub fn recover(db: &Db, layout: &DatasetLayout) -> anyhow::Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let mut windows: Vec<WindowKey> = Vec::new();
    for (key, _) in db.pending_parts()? {
        if !windows.contains(&key) {
            windows.push(key);
        }
    }
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for key in windows {
        let Some(checkpoint) = db.checkpoint(&key)? else {
            continue;
        };
        let is_committing = checkpoint
            .parts
            .iter()
            .any(|part| part.state == PartState::Published);
        if is_committing {
            publish_window(db, layout, &key)?;
            report.completed_windows += 1;
        } else {
            for part in checkpoint
                .parts
                .iter()
                .filter(|part| part.state == PartState::Pending)
            {
                keep.insert(PathBuf::from(&part.staged_path));
            }
        }
    }
    for batch in db.batches_with_status(BatchStatus::Replaced)? {
        remove_replaced(db, layout, &batch.dataset_id, &batch.id, &[])?;
        report.removed_batches += 1;
    }
    let cleaned = tributary_write::clean_staging(layout, |path| keep.contains(path))?;
    report.removed_staged_files = cleaned.removed_files;
    report.kept_staged_files = cleaned.kept_files;
    Ok(report)
}

fn relative_to(base: &Path, path: &str) -> String {
    Path::new(path)
        .strip_prefix(base)
        .map_or_else(|_| path.to_owned(), |rel| rel.display().to_string())
}
