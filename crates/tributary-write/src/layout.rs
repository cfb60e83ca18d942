//! The fixed on-disk layout of DESIGN.md ("Dataset layout on disk") and the validated ids that
//! become path components in it.
//!
//! ```text
//! {data_dir}/datasets/{dataSetId}/batch={batchId}/part-00000.parquet        committed data
//! {data_dir}/datasets/{dataSetId}/_errors/batch={batchId}/part-00000.jsonl  rejected rows
//! {data_dir}/_staging/{dataSetId}/batch={batchId}/part-00000.parquet             sealed, unpublished
//! {data_dir}/_staging/{dataSetId}/batch={batchId}/part-00001.parquet.inprogress  being written
//! {data_dir}/_staging/{dataSetId}/_errors/batch={batchId}/part-00000.jsonl
//! {data_dir}/_staging/_trash/...                                            batches being removed
//! {data_dir}/datasets/{dataSetId}/_delta_log/00000000000000000000.json     a Delta table's log
//! ```
//!
//! A batch is staged as a whole folder that mirrors its published one, and is published by
//! renaming that folder into `datasets/` — one step, so a reader sees all of a batch or none of
//! it. Staging sits beside `datasets/`, so it is on the same filesystem (a rename is atomic) and
//! a reader globbing `datasets/{id}/**/*.parquet` never sees a staged file. Staged names are
//! deterministic per (dataset, batch, sequence) so that redoing a part after a crash overwrites
//! its own leftovers instead of adding a second copy.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::WriteError;
use crate::object::Mirror;

/// The id of a dataset: a safe, non-hidden path component.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetId(String);

/// The id of a batch (one run's output in a dataset): a safe, non-hidden path component.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BatchId(String);

/// Where a dataset's files live under a data directory. Pure path arithmetic: no IO.
///
/// When the datasets live in an object store, this is the layout of the local spool the batches
/// are written and published in first, and [`DatasetLayout::mirror`] is the store they are then
/// mirrored to (see [`crate::object`]).
#[derive(Debug, Clone)]
pub struct DatasetLayout {
    data_dir: PathBuf,
    mirror: Option<Arc<Mirror>>,
}

impl PartialEq for DatasetLayout {
    fn eq(&self, other: &Self) -> bool {
        self.data_dir == other.data_dir
            && self.mirror.as_ref().map(|mirror| mirror.root.to_string())
                == other.mirror.as_ref().map(|mirror| mirror.root.to_string())
    }
}

impl Eq for DatasetLayout {}

/// The longest id accepted: ids become directory names, and 128 bytes leaves room under the
/// usual 255-byte name limit for the `batch=` prefix and staging suffixes.
pub const MAX_ID_LEN: usize = 128;

const DATASETS_DIR: &str = "datasets";
const STAGING_DIR: &str = "_staging";
const ERRORS_DIR: &str = "_errors";
const TRASH_DIR: &str = "_trash";
const DELTA_LOG_DIR: &str = "_delta_log";
/// Suffix of a staged file: no reader globbing `*.parquet` or `*.jsonl` matches it.
pub(crate) const IN_PROGRESS_SUFFIX: &str = ".inprogress";

impl DatasetId {
    /// Validates `value` as a dataset id.
    pub fn try_new(value: impl Into<String>) -> Result<Self, WriteError> {
        let value = value.into();
        validate_id("dataset id", &value)?;
        Ok(DatasetId(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl BatchId {
    /// Validates `value` as a batch id.
    pub fn try_new(value: impl Into<String>) -> Result<Self, WriteError> {
        let value = value.into();
        validate_id("batch id", &value)?;
        Ok(BatchId(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DatasetLayout {
    /// The layout under `data_dir` (the daemon's `data_dir` setting).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        DatasetLayout {
            data_dir: data_dir.into(),
            mirror: None,
        }
    }

    /// The layout of a local spool under `spool_dir` whose published batches are mirrored to
    /// `mirror`'s object store.
    pub fn mirrored(spool_dir: impl Into<PathBuf>, mirror: Mirror) -> Self {
        DatasetLayout {
            data_dir: spool_dir.into(),
            mirror: Some(Arc::new(mirror)),
        }
    }

    /// Where readers find a published batch: [`Self::batch_dir`], or its folder's URL in the
    /// object store of a mirrored layout.
    pub fn published_batch_dir(&self, dataset: &DatasetId, batch: &BatchId) -> PathBuf {
        match &self.mirror {
            None => self.batch_dir(dataset, batch),
            Some(mirror) => PathBuf::from(format!(
                "{}/{}",
                mirror.root.to_string().trim_end_matches('/'),
                crate::object::ObjectRoot::batch_folder(dataset, batch)
            )),
        }
    }

    /// The object store the datasets live in, when they are not in [`Self::data_dir`].
    pub fn mirror(&self) -> Option<&Mirror> {
        self.mirror.as_deref()
    }

    /// The data directory this layout is rooted at.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `{data_dir}/datasets`: the folder readers point at.
    pub fn datasets_dir(&self) -> PathBuf {
        self.data_dir.join(DATASETS_DIR)
    }

    /// `{data_dir}/datasets/{id}`.
    pub fn dataset_dir(&self, dataset: &DatasetId) -> PathBuf {
        self.datasets_dir().join(dataset.as_str())
    }

    /// `{data_dir}/datasets/{id}/batch={batchId}`.
    pub fn batch_dir(&self, dataset: &DatasetId, batch: &BatchId) -> PathBuf {
        self.dataset_dir(dataset).join(batch_component(batch))
    }

    /// `{data_dir}/datasets/{id}/batch={batchId}/part-00000.parquet` (at least five digits).
    pub fn part_path(&self, dataset: &DatasetId, batch: &BatchId, seq: u32) -> PathBuf {
        self.batch_dir(dataset, batch)
            .join(part_file_name(seq, "parquet"))
    }

    /// `{data_dir}/datasets/{id}/_errors/batch={batchId}`.
    pub fn errors_dir(&self, dataset: &DatasetId, batch: &BatchId) -> PathBuf {
        self.dataset_dir(dataset)
            .join(ERRORS_DIR)
            .join(batch_component(batch))
    }

    /// `{data_dir}/datasets/{id}/_errors/batch={batchId}/part-00000.jsonl`.
    pub fn error_part_path(&self, dataset: &DatasetId, batch: &BatchId, seq: u32) -> PathBuf {
        self.errors_dir(dataset, batch)
            .join(part_file_name(seq, "jsonl"))
    }

    /// `{data_dir}/datasets/{id}/_delta_log`: the log of a dataset that is a Delta table.
    pub fn delta_log_dir(&self, dataset: &DatasetId) -> PathBuf {
        self.dataset_dir(dataset).join(DELTA_LOG_DIR)
    }

    /// `{data_dir}/_staging`: outside `datasets/`, on the same filesystem.
    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join(STAGING_DIR)
    }

    /// `{data_dir}/_staging/{id}/batch={batchId}`: the batch's data before it is published;
    /// publishing renames it to [`DatasetLayout::batch_dir`].
    pub fn staged_batch_dir(&self, dataset: &DatasetId, batch: &BatchId) -> PathBuf {
        self.staging_dir()
            .join(dataset.as_str())
            .join(batch_component(batch))
    }

    /// `{data_dir}/_staging/{id}/_errors/batch={batchId}`: the batch's rejected rows before they
    /// are published to [`DatasetLayout::errors_dir`].
    pub fn staged_errors_dir(&self, dataset: &DatasetId, batch: &BatchId) -> PathBuf {
        self.staging_dir()
            .join(dataset.as_str())
            .join(ERRORS_DIR)
            .join(batch_component(batch))
    }

    /// The sealed staged file of data part `seq` (while it is written, the same name with
    /// `.inprogress`); [`DatasetLayout::part_path`] once published.
    pub fn staged_part_path(&self, dataset: &DatasetId, batch: &BatchId, seq: u32) -> PathBuf {
        self.staged_batch_dir(dataset, batch)
            .join(part_file_name(seq, "parquet"))
    }

    /// The sealed staged file of error part `seq`; [`DatasetLayout::error_part_path`] once
    /// published.
    pub fn staged_error_part_path(
        &self,
        dataset: &DatasetId,
        batch: &BatchId,
        seq: u32,
    ) -> PathBuf {
        self.staged_errors_dir(dataset, batch)
            .join(part_file_name(seq, "jsonl"))
    }

    /// `{data_dir}/_staging/_trash`: where a removed batch goes before it is deleted. Dataset ids
    /// cannot start with `_`, so this never collides with a dataset's staging folder.
    pub fn trash_dir(&self) -> PathBuf {
        self.staging_dir().join(TRASH_DIR)
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DatasetId {
    type Err = WriteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetId::try_new(s)
    }
}

impl FromStr for BatchId {
    type Err = WriteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BatchId::try_new(s)
    }
}

impl TryFrom<String> for DatasetId {
    type Error = WriteError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        DatasetId::try_new(value)
    }
}

impl TryFrom<String> for BatchId {
    type Error = WriteError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        BatchId::try_new(value)
    }
}

impl From<DatasetId> for String {
    fn from(id: DatasetId) -> String {
        id.0
    }
}

impl From<BatchId> for String {
    fn from(id: BatchId) -> String {
        id.0
    }
}

impl AsRef<str> for DatasetId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for BatchId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn batch_component(batch: &BatchId) -> String {
    format!("batch={}", batch.as_str())
}

fn part_file_name(seq: u32, extension: &str) -> String {
    format!("part-{seq:05}.{extension}")
}

/// An id must be usable as one directory name on every platform we write to, and must not be
/// hidden from readers: Spark, Hive and DuckDB's hive partitioning skip names starting with `.`
/// or `_`, which would make a whole dataset or batch silently invisible.
fn validate_id(kind: &'static str, value: &str) -> Result<(), WriteError> {
    let reason = if value.is_empty() {
        Some("expected a non-empty id")
    } else if value.len() > MAX_ID_LEN {
        Some("expected at most 128 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("expected only ASCII letters, digits, '_', '.' and '-'")
    } else if value.contains("..") {
        Some("expected no \"..\"")
    } else if value.starts_with(['.', '_']) {
        Some("expected an id that does not start with '.' or '_' (readers skip such names)")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => {
            // Keep error messages bounded even for a megabyte of garbage.
            let value: String = value.chars().take(MAX_ID_LEN + 8).collect();
            Err(WriteError::InvalidId {
                kind,
                value,
                reason,
            })
        }
    }
}
