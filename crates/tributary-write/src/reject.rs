//! `ErrorWriter`: rejected rows of one batch as JSON lines, staged and published exactly like data
//! parts, into `datasets/{id}/_errors/batch={batchId}/part-NNNNN.jsonl`.
//!
//! The writer does not decide what a rejected row looks like: the caller passes any `Serialize`
//! value (typically the record, the reason and the page it came from) and gets one line per row.

use std::fs::File;
use std::io::{BufWriter, Write};

use serde::Serialize;

use crate::part::{PartKind, StagedPart};
use crate::staged::StagedFile;
use crate::{BatchId, DatasetId, DatasetLayout, ErrorWriterOptions, WriteError};

/// Writes the rejected rows of ONE batch as staged JSON-lines parts `first_seq`, `first_seq + 1`,
/// ..., rolling by rows and bytes between calls (never inside one call's rows). Error parts are
/// numbered apart from data parts: they live in another folder. Dropping the writer without
/// [`ErrorWriter::finish`] deletes the open part, like [`ErrorWriter::abort`].
#[derive(Debug)]
pub struct ErrorWriter {
    layout: DatasetLayout,
    dataset: DatasetId,
    batch: BatchId,
    options: ErrorWriterOptions,
    next_seq: u32,
    /// Reused serialisation buffer.
    lines: Vec<u8>,
    open: Option<OpenErrorPart>,
    /// A write failed: the open part was deleted, so the batch's rejected rows are incomplete.
    has_failed: bool,
}

const WRITE_BUFFER_BYTES: usize = 256 * 1024;

#[derive(Debug)]
struct OpenErrorPart {
    staged: StagedFile,
    rows: u64,
    bytes: u64,
    writer: BufWriter<File>,
}

impl ErrorWriter {
    /// A writer for the rejected rows of `batch` whose first part is `first_seq`. No file is
    /// created until the first row.
    pub fn try_new(
        layout: &DatasetLayout,
        dataset: &DatasetId,
        batch: &BatchId,
        first_seq: u32,
        options: ErrorWriterOptions,
    ) -> Result<Self, WriteError> {
        Ok(ErrorWriter {
            layout: layout.clone(),
            dataset: dataset.clone(),
            batch: batch.clone(),
            options,
            next_seq: first_seq,
            lines: Vec::new(),
            open: None,
            has_failed: false,
        })
    }

    /// The sequence number the next new part will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Appends one rejected row: [`ErrorWriter::write_rows`] with one row.
    pub fn write<T: Serialize + ?Sized>(
        &mut self,
        row: &T,
    ) -> Result<Option<StagedPart>, WriteError> {
        self.write_rows(std::iter::once(row))
    }

    /// Appends rejected rows (typically all of one page's) as lines of compact JSON, all into
    /// the same part. As with [`crate::PartWriter`], the open part is closed first when these
    /// rows would take it past a limit, so the part returned never holds any of `rows` and a
    /// checkpoint can pair it with the position before them.
    ///
    /// A row that cannot be serialised is an error that writes nothing. After a failed write to
    /// disk the open part is deleted and the writer refuses further work.
    pub fn write_rows<'a, T: Serialize + ?Sized + 'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a T>,
    ) -> Result<Option<StagedPart>, WriteError> {
        self.check_usable()?;
        self.lines.clear();
        let mut n_rows = 0u64;
        // Serialise before touching a file, so a row that cannot be serialised leaves neither
        // an empty part nor half a page behind. Compact JSON escapes control characters: a row
        // is exactly one line.
        for row in rows {
            if let Err(source) = serde_json::to_writer(&mut self.lines, row) {
                let path = match &self.open {
                    Some(open) => open.staged.path().to_owned(),
                    None => self.layout.staged_error_part_path(
                        &self.dataset,
                        &self.batch,
                        self.next_seq,
                    ),
                };
                return Err(WriteError::Json { path, source });
            }
            self.lines.push(b'\n');
            n_rows += 1;
        }
        if n_rows == 0 {
            return Ok(None);
        }
        let res = self.append_lines(n_rows);
        if res.is_err() {
            self.has_failed = true;
            self.discard_open();
        }
        res
    }

    /// Closes the open part, if any, and fsyncs it and its folder.
    pub fn finish(mut self) -> Result<Option<StagedPart>, WriteError> {
        self.check_usable()?;
        self.close_open()
    }

    /// Deletes the open part's staged file.
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

    /// Writes the serialised `lines` (`n_rows` of them) into the open part, closing it first if
    /// they would take it past a limit.
    fn append_lines(&mut self, n_rows: u64) -> Result<Option<StagedPart>, WriteError> {
        let n_bytes = self.lines.len() as u64;
        let mut closed = None;
        if let Some(open) = &self.open {
            let would_overflow = open.rows > 0
                && (open.rows + n_rows > self.options.max_rows_per_file.get()
                    || open.bytes + n_bytes > self.options.max_bytes_per_file.get());
            if would_overflow {
                closed = self.close_open()?;
            }
        }
        if self.open.is_none() {
            self.open = Some(self.open_part()?);
        }
        let open = self.open.as_mut().expect("a part was opened just above");
        open.writer
            .write_all(&self.lines)
            .map_err(|err| WriteError::io("writing staged file", open.staged.path(), err))?;
        open.rows += n_rows;
        open.bytes += n_bytes;
        Ok(closed)
    }

    fn open_part(&mut self) -> Result<OpenErrorPart, WriteError> {
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
                .staged_error_part_path(&self.dataset, &self.batch, seq),
            self.layout.error_part_path(&self.dataset, &self.batch, seq),
        )?;
        self.next_seq = next_seq;
        Ok(OpenErrorPart {
            staged,
            rows: 0,
            bytes: 0,
            writer: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
        })
    }

    fn close_open(&mut self) -> Result<Option<StagedPart>, WriteError> {
        // A part that fails to close is not durable: dropping its staged file deletes it.
        self.open.take().map(close_error_part).transpose()
    }

    fn discard_open(&mut self) {
        // Dropping the open part deletes its in-progress file.
        self.open = None;
    }
}

fn close_error_part(open: OpenErrorPart) -> Result<StagedPart, WriteError> {
    let OpenErrorPart {
        staged,
        rows,
        bytes,
        mut writer,
    } = open;
    writer
        .flush()
        .map_err(|err| WriteError::io("writing staged file", staged.path(), err))?;
    let file: &File = writer.get_ref();
    staged.seal(file, rows, bytes, PartKind::JsonLines)
}
