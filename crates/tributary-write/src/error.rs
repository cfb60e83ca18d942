//! `WriteError`: the one error type of the writer, classified by cause (bad input from the caller,
//! the filesystem, the Parquet encoder, the Delta log, or a publish state that contradicts the
//! protocol).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while staging, publishing or removing files.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A dataset or batch id that is not a safe path component.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        /// `"dataset id"` or `"batch id"`.
        kind: &'static str,
        /// The rejected value (ids are not secrets; long values are cut).
        value: String,
        /// What was expected.
        reason: &'static str,
    },

    /// A writer option out of range.
    #[error("invalid writer option {option} = {value}: expected {expected}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// The rejected value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },

    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing, e.g. `"renaming staged part to"`.
        op: &'static str,
        /// The path the operation was about.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The Parquet encoder refused a batch or failed to finish a file.
    #[error("encoding parquet file {path}: {source}")]
    Parquet {
        /// The staged file being written.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// A rejected row could not be serialised as JSON.
    #[error("serialising a rejected row for {path}: {source}")]
    Json {
        /// The staged error file being written.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },

    /// A part would be written where a published file already is: published data is never
    /// written twice, so the caller must pick the next sequence number or remove the batch first.
    #[error(
        "part {path} is already published: expected a sequence number after the published parts"
    )]
    AlreadyPublished {
        /// The published file.
        path: PathBuf,
    },

    /// Both the staged and the published file exist: the protocol never produces this, so the
    /// writer refuses to guess which one is right.
    #[error(
        "both staged file {staged_path} and published file {final_path} exist: expected exactly one"
    )]
    PublishConflict {
        /// The staged file.
        staged_path: PathBuf,
        /// The published file.
        final_path: PathBuf,
    },

    /// An object-store operation failed (the store's message; the location is shown without
    /// credentials or query).
    #[error("{op} {location}: {message}")]
    ObjectStore {
        /// What we were doing, e.g. `"uploading to"`.
        op: &'static str,
        /// The object or folder, as `scheme://bucket/key`.
        location: String,
        /// The store's error.
        message: String,
    },

    /// A writer was used again after one of its writes failed.
    #[error(
        "the writer of batch {batch} of dataset {dataset} failed earlier and lost its open part: expected a new writer for a new attempt"
    )]
    WriterFailed {
        /// The dataset id.
        dataset: String,
        /// The batch id.
        batch: String,
    },

    /// Neither the staged nor the published file exists: the staged data was lost.
    #[error("staged file {staged_path} is missing and {final_path} was never published")]
    StagedMissing {
        /// The staged file.
        staged_path: PathBuf,
        /// The published file.
        final_path: PathBuf,
    },

    /// The Delta log could not be read or written (storage trouble, a conflicting commit).
    #[error("{op} Delta table {table}: {message}")]
    Delta {
        /// What we were doing, e.g. `"committing to"`.
        op: &'static str,
        /// The table's folder (or its object-store URL, without credentials or query).
        table: PathBuf,
        /// delta-rs's message; for a table in an object store with URL queries and the store's
        /// secrets cut out, like every object-store message.
        message: String,
        /// Another writer committed the same table version first (the next attempt rebases).
        version_conflict: bool,
    },

    /// A batch's schema cannot become (part of) its Delta table's schema.
    #[error("Delta schema of {path}: {message}")]
    DeltaSchema {
        /// The part file or table folder concerned.
        path: PathBuf,
        /// Which column and why.
        message: String,
    },

    /// The table records a later app-transaction version than the commit being made, yet not the
    /// batch's files: the version went backwards (a clock set back?), and committing would break
    /// the idempotence of redone commits.
    #[error(
        "Delta table {table} records version {recorded} of app transaction {app_id} but not batch {batch}, whose commit has version {version}: expected a version above {recorded}"
    )]
    DeltaVersionAhead {
        table: PathBuf,
        app_id: String,
        recorded: i64,
        version: i64,
        batch: String,
    },

    /// A staged part could not be given the batch's final schema while it was rewritten.
    #[error("rewriting staged part {path} to the batch schema: {message}")]
    Conform {
        /// The staged part.
        path: PathBuf,
        /// What the conversion said.
        message: String,
    },
}

/// Whose fault an error is, for logs and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCause {
    /// The caller passed a bad id or option.
    Input,
    /// The filesystem failed (full disk, permissions, IO error).
    Environment,
    /// The data could not be encoded (e.g. a schema Parquet cannot represent).
    Data,
    /// The files on disk contradict the write protocol (a bug or outside interference).
    Protocol,
}

impl WriteError {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            WriteError::Io { source, .. } => is_transient(source),
            // Another writer committed the same table version first; the next attempt rebases.
            WriteError::Delta {
                version_conflict, ..
            } => *version_conflict,
            // object_store retries transient failures itself; what reaches us is final.
            WriteError::ObjectStore { .. }
            | WriteError::InvalidId { .. }
            | WriteError::InvalidOption { .. }
            | WriteError::Parquet { .. }
            | WriteError::Json { .. }
            | WriteError::AlreadyPublished { .. }
            | WriteError::PublishConflict { .. }
            | WriteError::WriterFailed { .. }
            | WriteError::StagedMissing { .. }
            | WriteError::Conform { .. }
            | WriteError::DeltaSchema { .. }
            | WriteError::DeltaVersionAhead { .. } => false,
        }
    }

    /// Whose fault the error is.
    pub fn cause(&self) -> ErrorCause {
        match self {
            WriteError::InvalidId { .. } | WriteError::InvalidOption { .. } => ErrorCause::Input,
            WriteError::Io { .. } | WriteError::Delta { .. } | WriteError::ObjectStore { .. } => {
                ErrorCause::Environment
            }
            WriteError::Parquet { .. }
            | WriteError::Json { .. }
            | WriteError::Conform { .. }
            | WriteError::DeltaSchema { .. } => ErrorCause::Data,
            WriteError::AlreadyPublished { .. }
            | WriteError::PublishConflict { .. }
            | WriteError::WriterFailed { .. }
            | WriteError::StagedMissing { .. }
            | WriteError::DeltaVersionAhead { .. } => ErrorCause::Protocol,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WriteError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Errors that say "try again" rather than "this cannot work". A full disk is not one of them:
/// retrying at once fills it again, so the run fails and says why.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ResourceBusy
    )
}
