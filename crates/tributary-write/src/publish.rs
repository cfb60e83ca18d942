//! Making staged files visible and taking batches away: `publish`/`publish_part` (atomic rename
//! with fsyncs, idempotent for a redo after a crash), `remove_batch` (atomic disappearance of a
//! batch that a rerun replaces) and `clean_staging` (what a failed run left behind).
//!
//! Durability order, as DESIGN.md's write/commit protocol needs it: the staged file was fsynced
//! when its part was closed; its directory entry too. Publishing renames it into the batch folder
//! and fsyncs both folders, so after `publish` returns the file survives a power cut, and a crash
//! in the middle leaves either the staged file or the published one — never both, never neither.

use std::fs;
use std::io;
use std::path::Path;

use tracing::debug;

use crate::{BatchId, DatasetId, DatasetLayout, StagedPart, WriteError};

/// What [`publish`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The staged file was renamed into the dataset.
    Published,
    /// The file was already published (a redo after a crash between rename and bookkeeping).
    AlreadyPublished,
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

/// Publishes a staged part: see [`publish`].
pub fn publish_part(part: &StagedPart) -> Result<PublishOutcome, WriteError> {
    publish(&part.staged_path, &part.final_path)
}

/// Renames `staged_path` to `final_path` durably: creates the batch folder (fsyncing each folder
/// it creates and its parent), renames, then fsyncs the destination and source folders.
///
/// Idempotent: when `final_path` exists and `staged_path` does not, the file was published by an
/// earlier call (perhaps before a crash) and this returns [`PublishOutcome::AlreadyPublished`].
/// Both present or both missing contradicts the protocol and is an error.
pub fn publish(staged_path: &Path, final_path: &Path) -> Result<PublishOutcome, WriteError> {
    let staged_exists = exists(staged_path)?;
    let final_exists = exists(final_path)?;
    let final_dir = parent_of(final_path)?;
    match (staged_exists, final_exists) {
        (true, false) => {
            create_dir_durable(final_dir)?;
            fs::rename(staged_path, final_path).map_err(|err| {
                WriteError::io("publishing (rename) staged file", staged_path, err)
            })?;
            sync_dir(final_dir)?;
            // Without this a crash could bring the staged entry back beside the published one.
            sync_dir(parent_of(staged_path)?)?;
            debug!(path = %final_path.display(), "published part");
            Ok(PublishOutcome::Published)
        }
        (false, true) => {
            // The earlier rename may not have been followed by its fsync; do it now.
            sync_dir(final_dir)?;
            Ok(PublishOutcome::AlreadyPublished)
        }
        (true, true) => Err(WriteError::PublishConflict {
            staged_path: staged_path.to_owned(),
            final_path: final_path.to_owned(),
        }),
        (false, false) => Err(WriteError::StagedMissing {
            staged_path: staged_path.to_owned(),
            final_path: final_path.to_owned(),
        }),
    }
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
