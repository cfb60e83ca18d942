//! The lifecycle every staged file shares, whatever its format: created as
//! `{staged_path}.inprogress`, written, then sealed — flushed, fsynced, renamed to `staged_path`
//! inside the batch's staging folder, folder fsynced. Dropped unsealed, the in-progress file is
//! deleted (a file without its end is never useful).
//!
//! Invariant: a file in a staging batch folder without the `.inprogress` suffix is complete and
//! durable, so publishing the folder (one rename, see `publish`) publishes only whole files.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::layout::IN_PROGRESS_SUFFIX;
use crate::publish::{create_dir_durable, exists, parent_of, remove_file, sync_dir};
use crate::{PartKind, StagedPart, WriteError};

/// A staged file being written; see the module header.
#[derive(Debug)]
pub(crate) struct StagedFile {
    pub seq: u32,
    /// Where the file is while it is written.
    pub in_progress_path: PathBuf,
    /// Where sealing puts it (inside the staging batch folder).
    pub staged_path: PathBuf,
    /// Where it is once the batch is published.
    pub final_path: PathBuf,
    sealed: bool,
}

impl StagedFile {
    /// Creates (truncating the leftover of an interrupted attempt at the same part) the
    /// in-progress file of part `seq`. Refuses when the part is already published: published
    /// data is never written twice.
    pub fn create(
        seq: u32,
        staged_path: PathBuf,
        final_path: PathBuf,
    ) -> Result<(StagedFile, File), WriteError> {
        if exists(&final_path)? {
            return Err(WriteError::AlreadyPublished { path: final_path });
        }
        let mut in_progress = staged_path.clone().into_os_string();
        in_progress.push(IN_PROGRESS_SUFFIX);
        let in_progress_path = PathBuf::from(in_progress);
        create_dir_durable(parent_of(&in_progress_path)?)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&in_progress_path)
            .map_err(|err| WriteError::io("creating staged file", &in_progress_path, err))?;
        debug!(path = %in_progress_path.display(), seq, "opened staged file");
        Ok((
            StagedFile {
                seq,
                in_progress_path,
                staged_path,
                final_path,
                sealed: false,
            },
            file,
        ))
    }

    /// Makes the written `file` durable and gives it its staged name. `file` must be this staged
    /// file's handle with every byte written (format writers flushed).
    pub fn seal(
        mut self,
        file: &File,
        rows: u64,
        bytes: u64,
        kind: PartKind,
    ) -> Result<StagedPart, WriteError> {
        file.sync_all()
            .map_err(|err| WriteError::io("fsyncing staged file", &self.in_progress_path, err))?;
        std::fs::rename(&self.in_progress_path, &self.staged_path)
            .map_err(|err| WriteError::io("sealing staged file", &self.in_progress_path, err))?;
        // From here the in-progress name is gone: nothing is left for Drop to delete.
        self.sealed = true;
        sync_dir(parent_of(&self.staged_path)?)?;
        debug!(path = %self.staged_path.display(), rows, bytes, "sealed staged file");
        Ok(StagedPart {
            seq: self.seq,
            staged_path: self.staged_path.clone(),
            final_path: self.final_path.clone(),
            rows,
            bytes,
            kind,
        })
    }

    /// The in-progress path, for error messages.
    pub fn path(&self) -> &Path {
        &self.in_progress_path
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.sealed
            && let Err(err) = remove_file(&self.in_progress_path)
        {
            debug!(error = %err, "could not delete an unsealed staged file; clean_staging will");
        }
    }
}
