//! Making staged batches visible and taking batches away: `publish_batch` / `publish_errors`
//! (one atomic rename of the batch's staging folder into the dataset, with fsyncs, idempotent for
//! a redo after a crash), `remove_batch` (atomic disappearance of a batch that a rerun replaces)
//! and `clean_staging` (what a failed run left behind).
//!
//! Durability order, as DESIGN.md's write/commit protocol needs it: every staged file was fsynced
//! and sealed (renamed to its final name inside the staging folder) when its part was closed.
//! Publishing first removes from the staging folder anything the caller did not name (leftovers
//! of an attempt whose parts were never recorded), then renames the folder and fsyncs both
//! parents, so after it returns the whole batch survives a power cut, and a crash in the middle
//! leaves either the staged folder or the published one — never both, never half of one.

use std::fs;
use std::io;
use std::path::Path;

use tracing::debug;

use crate::{BatchId, DatasetId, DatasetLayout, WriteError};

/// What publishing one folder of a batch found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The staging folder was renamed into the dataset.
    Published,
    /// The folder was already published (a redo after a crash between rename and bookkeeping).
    AlreadyPublished,
    /// The batch has no files of this kind: nothing to publish.
    Empty,
}

/// What [`publish_batch`] did with the batch's data and rejected-rows folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedBatch {
    pub data: PublishOutcome,
    pub errors: PublishOutcome,
}

/// What [`remove_batch`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemovedBatch {
    /// The batch's data folder existed and is gone.
    pub data: bool,
    /// The batch's rejected-rows folder existed and is gone.
    pub errors: bool,
}

/// What [`clean_staging`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanReport {
    /// Staged files deleted.
    pub removed_files: u64,
    /// Their total size.
    pub removed_bytes: u64,
    /// Staged files kept because the caller said they may still be published.
    pub kept_files: u64,
    /// Batches that a crash left half-way through [`remove_batch`], now deleted.
    pub removed_trash: u64,
}

/// Publishes a whole staged batch: its data folder to [`DatasetLayout::batch_dir`] and its
/// rejected rows to [`DatasetLayout::errors_dir`], each in one rename. `data_files` and
/// `error_files` are the file names (`part-00000.parquet`, ...) the batch consists of; anything
/// else in the staging folders is deleted first, and a named file that is missing is an error
/// (its data would be lost).
///
/// Idempotent: a folder already published (staged folder gone, published folder holding the
/// named files) is [`PublishOutcome::AlreadyPublished`].
pub fn publish_batch(
    layout: &DatasetLayout,
    dataset: &DatasetId,
    batch: &BatchId,
    data_files: &[String],
    error_files: &[String],
) -> Result<PublishedBatch, WriteError> {
    let data = publish_dir(
        &layout.staged_batch_dir(dataset, batch),
        &layout.batch_dir(dataset, batch),
        data_files,
    )?;
    let errors = publish_errors(layout, dataset, batch, error_files)?;
    Ok(PublishedBatch { data, errors })
}

/// Publishes only a staged batch's rejected rows (a run that failed keeps them as diagnostics
/// while its data is discarded): [`publish_batch`] for the errors folder alone.
pub fn publish_errors(
    layout: &DatasetLayout,
    dataset: &DatasetId,
    batch: &BatchId,
    error_files: &[String],
) -> Result<PublishOutcome, WriteError> {
    publish_dir(
        &layout.staged_errors_dir(dataset, batch),
        &layout.errors_dir(dataset, batch),
        error_files,
    )
}

/// Renames `staged_dir` to `final_dir` once it holds exactly `files`; see [`publish_batch`].
fn publish_dir(
    staged_dir: &Path,
    final_dir: &Path,
    files: &[String],
) -> Result<PublishOutcome, WriteError> {
    let staged_exists = exists(staged_dir)?;
    let final_exists = exists(final_dir)?;
    let missing_in = |dir: &Path| -> Result<Option<String>, WriteError> {
        for name in files {
            if !exists(&dir.join(name))? {
                return Ok(Some(name.clone()));
            }
        }
        Ok(None)
    };
    match (staged_exists, final_exists) {
        (true, false) => {
            remove_unnamed(staged_dir, files)?;
            if let Some(name) = missing_in(staged_dir)? {
                return Err(WriteError::StagedMissing {
                    staged_path: staged_dir.join(&name),
                    final_path: final_dir.join(&name),
                });
            }
            if files.is_empty() {
                remove_dir_if_empty(staged_dir)?;
                return Ok(PublishOutcome::Empty);
            }
            let final_parent = parent_of(final_dir)?;
            create_dir_durable(final_parent)?;
            fs::rename(staged_dir, final_dir).map_err(|err| {
                WriteError::io("publishing (rename) staged batch", staged_dir, err)
            })?;
            sync_dir(final_parent)?;
            // Without this a crash could bring the staged folder back beside the published one.
            sync_dir(parent_of(staged_dir)?)?;
            debug!(path = %final_dir.display(), files = files.len(), "published batch folder");
            Ok(PublishOutcome::Published)
        }
        (false, true) => {
            if let Some(name) = missing_in(final_dir)? {
                return Err(WriteError::StagedMissing {
                    staged_path: staged_dir.join(&name),
                    final_path: final_dir.join(&name),
                });
            }
            // The earlier rename may not have been followed by its fsync; do it now.
            sync_dir(parent_of(final_dir)?)?;
            Ok(PublishOutcome::AlreadyPublished)
        }
        (false, false) => match files.first() {
            None => Ok(PublishOutcome::Empty),
            Some(name) => Err(WriteError::StagedMissing {
                staged_path: staged_dir.join(name),
                final_path: final_dir.join(name),
            }),
        },
        (true, true) => Err(WriteError::PublishConflict {
            staged_path: staged_dir.to_owned(),
            final_path: final_dir.to_owned(),
        }),
    }
}

/// Deletes every entry of `dir` whose name is not in `keep` (files of attempts that were never
/// recorded, in-progress leftovers), so the folder holds exactly the batch.
fn remove_unnamed(dir: &Path, keep: &[String]) -> Result<(), WriteError> {
    let mut removed = false;
    for entry in read_dir(dir)? {
        let entry = entry.map_err(|err| WriteError::io("listing", dir, err))?;
        let name = entry.file_name();
        if keep.iter().any(|k| std::ffi::OsStr::new(k) == name) {
            continue;
        }
        remove_any(&entry.path())?;
        removed = true;
        debug!(path = %entry.path().display(), "removed a file the batch does not name");
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes a batch (its data and its rejected rows) so a rerun of the same window can replace it.
/// Each folder is first renamed into the staging trash — one atomic step, so a reader never sees
/// half a batch — and then deleted. Removing a batch that does not exist is not an error.
pub fn remove_batch(
    layout: &DatasetLayout,
    dataset: &DatasetId,
    batch: &BatchId,
) -> Result<RemovedBatch, WriteError> {
    let data = remove_dir_via_trash(layout, &layout.batch_dir(dataset, batch))?;
    let errors = remove_dir_via_trash(layout, &layout.errors_dir(dataset, batch))?;
    Ok(RemovedBatch { data, errors })
}

/// Removes only a batch's rejected rows, in one rename like [`remove_batch`]: the data files of a
/// Delta table's replaced batch stay, for readers of the table's earlier versions. Returns
/// whether the folder existed.
pub fn remove_batch_errors(
    layout: &DatasetLayout,
    dataset: &DatasetId,
    batch: &BatchId,
) -> Result<bool, WriteError> {
    remove_dir_via_trash(layout, &layout.errors_dir(dataset, batch))
}

/// Deletes what failed runs left in staging, except the files for which `keep` returns true (the
/// engine's pending parts, which recovery may still publish). Trash left by an interrupted
/// [`remove_batch`] is always deleted. Empty folders are removed. Never touches `datasets/`.
pub fn clean_staging(
    layout: &DatasetLayout,
    keep: impl Fn(&Path) -> bool,
) -> Result<CleanReport, WriteError> {
    let staging_dir = layout.staging_dir();
    let mut report = CleanReport::default();
    if !exists(&staging_dir)? {
        return Ok(report);
    }
    let trash_dir = layout.trash_dir();
    if exists(&trash_dir)? {
        for entry in read_dir(&trash_dir)? {
            let path = entry
                .map_err(|err| WriteError::io("listing", &trash_dir, err))?
                .path();
            remove_any(&path)?;
            report.removed_trash += 1;
        }
        remove_dir_if_empty(&trash_dir)?;
    }
    clean_dir(&staging_dir, &keep, &mut report)?;
    Ok(report)
}

/// Removes the files under `dir` that `keep` rejects and every folder left empty below `dir`.
/// Returns whether `dir` is empty afterwards.
fn clean_dir(
    dir: &Path,
    keep: &impl Fn(&Path) -> bool,
    report: &mut CleanReport,
) -> Result<bool, WriteError> {
    let mut is_empty = true;
    for entry in read_dir(dir)? {
        let entry = entry.map_err(|err| WriteError::io("listing", dir, err))?;
        let path = entry.path();
        // `symlink_metadata`: a symlink is removed as a link, never followed out of staging.
        let metadata = fs::symlink_metadata(&path)
            .map_err(|err| WriteError::io("reading metadata of", &path, err))?;
        if metadata.is_dir() {
            if clean_dir(&path, keep, report)? {
                remove_dir_if_empty(&path)?;
            } else {
                is_empty = false;
            }
        } else if keep(&path) {
            report.kept_files += 1;
            is_empty = false;
        } else {
            remove_file(&path)?;
            report.removed_files += 1;
            report.removed_bytes += metadata.len();
            debug!(path = %path.display(), "removed leftover staged file");
        }
    }
    Ok(is_empty)
}

/// Renames `dir` into a fresh folder of the trash, fsyncs, then deletes it. Returns whether `dir`
/// existed.
fn remove_dir_via_trash(layout: &DatasetLayout, dir: &Path) -> Result<bool, WriteError> {
    if !exists(dir)? {
        return Ok(false);
    }
    let trash_dir = layout.trash_dir();
    create_dir_durable(&trash_dir)?;
    let target = trash_dir.join(uuid::Uuid::new_v4().simple().to_string());
    fs::rename(dir, &target).map_err(|err| WriteError::io("moving to the trash", dir, err))?;
    sync_dir(parent_of(dir)?)?;
    sync_dir(&trash_dir)?;
    debug!(path = %dir.display(), "removed batch folder");
    fs::remove_dir_all(&target).map_err(|err| WriteError::io("deleting", &target, err))?;
    Ok(true)
}

/// Creates `dir` and its missing ancestors, fsyncing each created folder and the folder that
/// holds the first one, so the whole chain survives a crash.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), WriteError> {
    let mut missing: Vec<&Path> = Vec::new();
    let mut cursor = Some(dir);
    while let Some(path) = cursor {
        if exists(path)? {
            break;
        }
        missing.push(path);
        cursor = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty());
    }
    if missing.is_empty() {
        return Ok(());
    }
    for path in missing.iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => {}
            // Another writer of the same dataset may create it at the same moment.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(WriteError::io("creating folder", *path, err)),
        }
    }
    let topmost = missing.last().expect("missing is not empty: checked above");
    if let Some(parent) = topmost
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        sync_dir(parent)?;
    }
    for path in missing.iter().rev() {
        sync_dir(path)?;
    }
    Ok(())
}

/// Makes the entries of `dir` (creations, renames) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    let handle = fs::File::open(dir).map_err(|err| WriteError::io("opening folder", dir, err))?;
    handle
        .sync_all()
        .map_err(|err| WriteError::io("fsyncing folder", dir, err))
}

/// Whether `path` exists, without following a final symlink; errors other than "not found" are
/// reported rather than read as "missing".
pub(crate) fn exists(path: &Path) -> Result<bool, WriteError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(WriteError::io("reading metadata of", path, err)),
    }
}

/// Removes a file; one that is already gone is fine.
pub(crate) fn remove_file(path: &Path) -> Result<(), WriteError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(WriteError::io("removing", path, err)),
    }
}

pub(crate) fn parent_of(path: &Path) -> Result<&Path, WriteError> {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .ok_or_else(|| {
            WriteError::io(
                "finding the folder of",
                path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "expected a path inside a folder",
                ),
            )
        })
}

fn read_dir(dir: &Path) -> Result<fs::ReadDir, WriteError> {
    fs::read_dir(dir).map_err(|err| WriteError::io("listing", dir, err))
}

fn remove_any(path: &Path) -> Result<(), WriteError> {
    let metadata = fs::symlink_metadata(path)
        .map_err(|err| WriteError::io("reading metadata of", path, err))?;
    if metadata.is_dir() {
        fs::remove_dir_all(path).map_err(|err| WriteError::io("deleting", path, err))
    } else {
        remove_file(path)
    }
}

fn remove_dir_if_empty(dir: &Path) -> Result<(), WriteError> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        // A writer may have staged a new file meanwhile; keeping the folder is right then.
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotFound
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(WriteError::io("removing folder", dir, err)),
    }
}
