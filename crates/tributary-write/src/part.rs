//! `PartWriter`: encodes one batch's `RecordBatch`es into staged Parquet part files, rolling to
//! the next file by rows, by size and when the schema changes; `StagedPart` describes a sealed,
//! fsynced part in the batch's staging folder, published with the whole batch by
//! [`crate::publish_batch`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowSchemaConverter;
use parquet::file::properties::WriterProperties;

use crate::encode::PartEncoder;
use crate::staged::StagedFile;
use crate::{BatchId, DatasetId, DatasetLayout, WriteError, WriterOptions};

/// A sealed part file in its batch's staging folder: complete, fsynced, its directory entry
/// durable. Nothing is visible in the dataset until [`crate::publish_batch`] renames the folder,
/// which puts the file at `final_path`.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedPart {
    /// Sequence number within the batch; the `NNNNN` of `part-NNNNN.*`.
    pub seq: u32,
    /// Where the file is now (inside the staging batch folder).
    pub staged_path: PathBuf,
    /// Where publishing the batch puts it.
    pub final_path: PathBuf,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// What the file holds.
    pub kind: PartKind,
}

/// The format of a part, with what a batch record needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub enum PartKind {
    /// A Parquet data file with this Arrow schema (`serde_json::to_string(&*schema)` gives its
    /// JSON form for the batch record).
    Parquet {
        /// The schema of every row group in the file.
        schema: SchemaRef,
    },
    /// A JSON-lines file of rejected rows.
    JsonLines,
}

/// Writes the data of ONE batch as staged Parquet parts `first_seq`, `first_seq + 1`, ...
///
/// Parts end on batch boundaries, which is what makes checkpoints possible: a part is closed
/// (and returned by [`PartWriter::write`]) when the incoming batch would take it past
/// `max_rows_per_file` rows or past `max_bytes_per_file` (estimated from the part's bytes per
/// row so far), or when the batch has a different schema (a Parquet file has one schema). So
/// the parts that `write(batch)` returns hold whole earlier batches and never a row of `batch`
/// itself, which goes entirely into the open part: with one batch per page, a checkpoint can
/// record those parts with the position after the previous page. A batch is never split; one
/// that alone exceeds a limit makes a part of its own, larger than the limit.
///
/// Dropping the writer without [`PartWriter::finish`] deletes the open part, like
/// [`PartWriter::abort`]: a part without its footer is never useful.
#[derive(Debug)]
pub struct PartWriter {
    layout: DatasetLayout,
    dataset: DatasetId,
    batch: BatchId,
    options: WriterOptions,
    props: WriterProperties,
    next_seq: u32,
    open: Option<OpenPart>,
    /// A write failed: the open part was deleted, so the batch is incomplete.
    has_failed: bool,
    /// CPU time of the encode threads of the parts closed so far (`None`: unknown).
    closed_helper_cpu: Option<std::time::Duration>,
}

/// Footer bytes per column chunk, for the size estimate: chunk metadata, min/max statistics
/// (truncated to 64 bytes each), and the column and offset index entries. Measured at 150-250
/// bytes on string-heavy schemas; the larger figure keeps files under the limit.
const FOOTER_BYTES_PER_COLUMN_CHUNK: u64 = 256;

/// Write buffer in front of the file. Parquet writes column chunks page by page; a large buffer
/// turns those into few big writes.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
struct OpenPart {
    staged: StagedFile,
    schema: SchemaRef,
    /// Leaf (Parquet) columns: the footer grows by one chunk entry per leaf and row group.
    n_leaf_columns: u64,
    rows: u64,
    writer: PartEncoder,
}

impl StagedPart {
    /// The Arrow schema of a Parquet part (`None` for rejected rows). The batch record stores
    /// it as JSON: `serde_json::to_string(schema.as_ref())`.
    pub fn schema(&self) -> Option<&SchemaRef> {
        match &self.kind {
            PartKind::Parquet { schema } => Some(schema),
            PartKind::JsonLines => None,
        }
    }
}

impl PartWriter {
    /// A writer for `batch` of `dataset` whose first part is `first_seq`. Validates the options;
    /// no file is created until the first non-empty write.
    pub fn try_new(
        layout: &DatasetLayout,
        dataset: &DatasetId,
        batch: &BatchId,
        first_seq: u32,
        options: WriterOptions,
    ) -> Result<Self, WriteError> {
        let props = options.writer_properties(dataset.as_str(), batch.as_str())?;
        Ok(PartWriter {
            layout: layout.clone(),
            dataset: dataset.clone(),
            batch: batch.clone(),
            options,
            props,
            next_seq: first_seq,
            open: None,
            has_failed: false,
            closed_helper_cpu: Some(std::time::Duration::ZERO),
        })
    }

    /// The sequence number the next new part will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Rows in the open part so far (0 when no part is open).
    pub fn open_rows(&self) -> u64 {
        self.open.as_ref().map_or(0, |open| open.rows)
    }

    /// Memory held by the open part's encoder (buffered row group, dictionaries), for memory
    /// budgets and metrics. Bounded by `row_group_rows`/`row_group_bytes`.
    pub fn buffered_bytes(&self) -> u64 {
        self.open
            .as_ref()
            .map_or(0, |open| open.writer.memory_size() as u64)
    }

    /// CPU time of the threads that encoded columns besides the caller's, over every part of
    /// this writer so far (zero with one encode thread; `None` where the platform does not say).
    pub fn helper_cpu(&self) -> Option<std::time::Duration> {
        let open = self
            .open
            .as_ref()
            .map_or(Some(std::time::Duration::ZERO), |open| {
                open.writer.helper_cpu()
            });
        crate::cpu::sum(self.closed_helper_cpu, open)
    }

    /// Encodes `batch` into the open part, first closing that part if `batch` would take it past
    /// a limit or changes the schema. Returns the parts this call closed (usually none; never
    /// one holding rows of `batch`). Empty batches are ignored.
    ///
    /// After an error the open part is deleted and the writer refuses further work
    /// ([`WriteError::WriterFailed`]): the rows of that part are gone, and carrying on would
    /// publish a batch with a hole in it.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Vec<StagedPart>, WriteError> {
        self.check_usable()?;
        let res = self.write_whole(batch);
        if res.is_err() {
            self.has_failed = true;
            self.discard_open();
        }
        res
    }

    /// Closes the open part, if any: writes the footer, fsyncs the file and its folder.
    pub fn finish(mut self) -> Result<Option<StagedPart>, WriteError> {
        self.check_usable()?;
        self.close_open()
    }

    /// Deletes the open part's staged file. Parts already returned are the caller's to keep or
    /// delete.
    pub fn abort(mut self) {
        self.discard_open();
    }

    fn check_usable(&self) -> Result<(), WriteError> {
        if self.has_failed {
            return Err(WriteError::WriterFailed {
                dataset: self.dataset.to_string(),
                batch: self.batch.to_string(),
            });
        }
        Ok(())
    }

    fn write_whole(&mut self, batch: &RecordBatch) -> Result<Vec<StagedPart>, WriteError> {
        let mut closed = Vec::new();
        let n_rows = batch.num_rows();
        if n_rows == 0 {
            return Ok(closed);
        }
        let schema = batch.schema();
        if let Some(open) = &self.open {
            let is_schema_change = *open.schema != *schema;
            if is_schema_change || self.would_overflow(open, n_rows as u64) {
                closed.extend(self.close_open()?);
            }
        }
        if self.open.is_none() {
            self.open = Some(self.open_part(&schema)?);
        }
        let open = self.open.as_mut().expect("a part was opened just above");
        open.writer
            .write(batch)
            .map_err(|source| WriteError::Parquet {
                path: open.staged.path().to_owned(),
                source,
            })?;
        open.rows += n_rows as u64;
        Ok(closed)
    }

    /// Whether `n_rows` more rows would take `open` past a file limit. An empty part never
    /// overflows: the batch has to go somewhere.
    fn would_overflow(&self, open: &OpenPart, n_rows: u64) -> bool {
        if open.rows == 0 {
            return false;
        }
        let rows_after = open.rows.saturating_add(n_rows);
        if rows_after > self.options.max_rows_per_file.get() {
            return true;
        }
        let estimated_bytes = open.estimated_bytes();
        let bytes_per_row = estimated_bytes / open.rows;
        let bytes_after = estimated_bytes.saturating_add(bytes_per_row.saturating_mul(n_rows));
        bytes_after > self.options.max_bytes_per_file.get()
    }

    fn open_part(&mut self, schema: &SchemaRef) -> Result<OpenPart, WriteError> {
        let seq = self.next_seq;
        let next_seq = seq
            .checked_add(1)
            .ok_or_else(|| WriteError::InvalidOption {
                option: "first_seq",
                value: seq.to_string(),
                expected: "fewer than 2^32 parts in a batch",
            })?;
        let (staged, file) = StagedFile::create(
            seq,
            self.layout
                .staged_part_path(&self.dataset, &self.batch, seq),
            self.layout.part_path(&self.dataset, &self.batch, seq),
        )?;
        let parquet_error = |source| WriteError::Parquet {
            path: staged.path().to_owned(),
            source,
        };
        let buffered = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let writer = PartEncoder::try_new(
            buffered,
            schema.clone(),
            self.props.clone(),
            self.options.encode_threads.get(),
        )
        .map_err(parquet_error)?;
        let n_leaf_columns = ArrowSchemaConverter::new()
            .with_coerce_types(self.props.coerce_types())
            .convert(schema)
            .map_err(parquet_error)?
            .num_columns() as u64;
        self.next_seq = next_seq;
        Ok(OpenPart {
            staged,
            schema: schema.clone(),
            n_leaf_columns,
            rows: 0,
            writer,
        })
    }

    fn close_open(&mut self) -> Result<Option<StagedPart>, WriteError> {
        // A part that fails to close is unusable (no footer or not durable): dropping its
        // staged file deletes it.
        let open = self.open.take();
        if let Some(open) = &open {
            self.closed_helper_cpu =
                crate::cpu::sum(self.closed_helper_cpu, open.writer.helper_cpu());
        }
        open.map(close_part).transpose()
    }

    fn discard_open(&mut self) {
        // Dropping the open part deletes its in-progress file.
        self.open = None;
    }
}

impl OpenPart {
    /// The file's size if it were closed now: bytes already written, the buffered row group, and
    /// the footer, which for small files with many columns is a good share of the total.
    fn estimated_bytes(&self) -> u64 {
        let n_row_groups = self.writer.flushed_row_groups() as u64 + 1;
        let footer = n_row_groups * self.n_leaf_columns * FOOTER_BYTES_PER_COLUMN_CHUNK;
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64 + footer
    }
}

fn close_part(open: OpenPart) -> Result<StagedPart, WriteError> {
    let OpenPart {
        staged,
        schema,
        rows,
        mut writer,
        ..
    } = open;
    writer.finish().map_err(|source| WriteError::Parquet {
        path: staged.path().to_owned(),
        source,
    })?;
    let bytes = writer.bytes_written() as u64;
    let buffered = writer.sink_mut();
    buffered
        .flush()
        .map_err(|err| WriteError::io("writing staged file", staged.path(), err))?;
    let file: &File = buffered.get_ref();
    staged.seal(file, rows, bytes, PartKind::Parquet { schema })
}

/// Rewrites the sealed, not yet published staged part `seq` of `batch` so that it carries the
/// batch's final schema: its row batches go through `conform` into a new in-progress file,
/// which is sealed over the old one (fsync, one rename, folder fsync). A crash at any moment
/// leaves the staged name holding a complete part, old or new, and the rewrite can simply be
/// done again. Returns the new part (same rows; its size changes).
pub fn rewrite_part(
    layout: &DatasetLayout,
    dataset: &DatasetId,
    batch: &BatchId,
    seq: u32,
    options: WriterOptions,
    conform: &mut dyn FnMut(&RecordBatch) -> Result<RecordBatch, String>,
) -> Result<StagedPart, WriteError> {
    let staged_path = layout.staged_part_path(dataset, batch, seq);
    let file =
        File::open(&staged_path).map_err(|err| WriteError::io("opening", &staged_path, err))?;
    let parquet_error = |source| WriteError::Parquet {
        path: staged_path.clone(),
        source,
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error)?
        .build()
        .map_err(parquet_error)?;
    // One part in, one part out: the writer must not roll by its own limits.
    let options = options.without_file_limits();
    let mut writer = PartWriter::try_new(layout, dataset, batch, seq, options)?;
    let mut rows = 0_u64;
    for read in reader {
        let read = read.map_err(|source| WriteError::Parquet {
            path: staged_path.clone(),
            source: source.into(),
        })?;
        rows += read.num_rows() as u64;
        let conformed = conform(&read).map_err(|message| WriteError::Conform {
            path: staged_path.clone(),
            message,
        })?;
        if !writer.write(&conformed)?.is_empty() {
            return Err(WriteError::Conform {
                path: staged_path.clone(),
                message: "the conformed rows did not fit one part".to_owned(),
            });
        }
    }
    match writer.finish()? {
        Some(part) if part.rows == rows => Ok(part),
        Some(part) => Err(WriteError::Conform {
            path: staged_path,
            message: format!("{rows} rows read but {} written", part.rows),
        }),
        None => Err(WriteError::Conform {
            path: staged_path,
            message: "the part has no rows".to_owned(),
        }),
    }
}

/// The Arrow schema stored in a written part file's footer (what the batch record keeps for each
/// published file).
pub fn part_schema(path: &std::path::Path) -> Result<SchemaRef, WriteError> {
    let file = File::open(path).map_err(|err| WriteError::io("opening", path, err))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|source| WriteError::Parquet {
            path: path.to_owned(),
            source,
        })?;
    Ok(builder.schema().clone())
}
