//! The Parquet encoder of one part: parquet's `ArrowWriter` on the calling thread, or, with
//! more than one encode thread, the columns of every batch encoded on that many threads at once.
//!
//! The parallel encoder does what `ArrowWriter` does, in the same order: each batch's rows go
//! into the open row group (split where a row or byte limit of the row group falls, with the
//! same arithmetic), every leaf column into its own column writer, and a full row group's column
//! chunks are appended to the file in column order. Only the column writers' work is spread
//! over threads (scoped threads, a share of the columns each), so the file is byte for byte the
//! one `ArrowWriter` writes: same row groups, same pages, same footer. That is tested.
//!
//! Invariant: rows keep their order within a part; an error or a panicking thread fails the
//! write (the caller then deletes the part), it never leaves a row group half appended.

use std::fs::File;
use std::io::BufWriter;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::cpu;

type Sink = BufWriter<File>;

/// Encodes one part's batches into its file.
pub(crate) enum PartEncoder {
    Serial(Box<ArrowWriter<Sink>>),
    Parallel(Box<ParallelEncoder>),
}

impl std::fmt::Debug for PartEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartEncoder::Serial(_) => f.write_str("PartEncoder::Serial"),
            PartEncoder::Parallel(encoder) => {
                write!(f, "PartEncoder::Parallel({} threads)", encoder.threads)
            }
        }
    }
}

/// The columns of each batch encoded on `threads` threads.
pub(crate) struct ParallelEncoder {
    file: SerializedFileWriter<Sink>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// The open row group's column writers, one per leaf column; empty when none is open.
    columns: Vec<ArrowColumnWriter>,
    buffered_rows: usize,
    max_rows: Option<usize>,
    max_bytes: Option<usize>,
    threads: usize,
    /// CPU time the encode threads used so far; `None` where the platform does not say.
    helper_cpu: Option<Duration>,
}

impl PartEncoder {
    /// An encoder writing to `sink`; `threads` above 1 encodes columns in parallel.
    pub fn try_new(
        sink: Sink,
        schema: SchemaRef,
        props: WriterProperties,
        threads: usize,
    ) -> Result<Self> {
        let max_rows = props.max_row_group_row_count();
        let max_bytes = props.max_row_group_bytes();
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(props))?;
        if threads <= 1 {
            return Ok(PartEncoder::Serial(Box::new(writer)));
        }
        // The writer set up the file (schema conversion, the Arrow schema in the metadata);
        // nothing is buffered yet, so taking its parts apart flushes nothing.
        let (file, factory) = writer.into_serialized_writer()?;
        Ok(PartEncoder::Parallel(Box::new(ParallelEncoder {
            file,
            factory,
            schema,
            columns: Vec::new(),
            buffered_rows: 0,
            max_rows,
            max_bytes,
            threads,
            helper_cpu: Some(Duration::ZERO),
        })))
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            PartEncoder::Serial(writer) => writer.write(batch),
            PartEncoder::Parallel(encoder) => encoder.write(batch),
        }
    }

    /// Memory held by the open row group's encoders.
    pub fn memory_size(&self) -> usize {
        match self {
            PartEncoder::Serial(writer) => writer.memory_size(),
            PartEncoder::Parallel(encoder) => encoder.columns.iter().map(|c| c.memory_size()).sum(),
        }
    }

    /// CPU time of the threads that encoded columns besides the calling one (zero when there
    /// are none; `None` where the platform does not say).
    pub fn helper_cpu(&self) -> Option<Duration> {
        match self {
            PartEncoder::Serial(_) => Some(Duration::ZERO),
            PartEncoder::Parallel(encoder) => encoder.helper_cpu,
        }
    }

    /// Bytes written to the sink so far.
    pub fn bytes_written(&self) -> usize {
        match self {
            PartEncoder::Serial(writer) => writer.bytes_written(),
            PartEncoder::Parallel(encoder) => encoder.file.bytes_written(),
        }
    }

    /// The open row group's size once encoded, estimated.
    pub fn in_progress_size(&self) -> usize {
        match self {
            PartEncoder::Serial(writer) => writer.in_progress_size(),
            PartEncoder::Parallel(encoder) => encoder.in_progress_size(),
        }
    }

    pub fn flushed_row_groups(&self) -> usize {
        match self {
            PartEncoder::Serial(writer) => writer.flushed_row_groups().len(),
            PartEncoder::Parallel(encoder) => encoder.file.flushed_row_groups().len(),
        }
    }

    /// Flushes the open row group and writes the footer.
    pub fn finish(&mut self) -> Result<()> {
        match self {
            PartEncoder::Serial(writer) => writer.finish().map(drop),
            PartEncoder::Parallel(encoder) => {
                encoder.flush()?;
                encoder.file.finish().map(drop)
            }
        }
    }

    /// The sink, to flush it after [`Self::finish`].
    pub fn sink_mut(&mut self) -> &mut Sink {
        match self {
            PartEncoder::Serial(writer) => writer.inner_mut(),
            PartEncoder::Parallel(encoder) => encoder.file.inner_mut(),
        }
    }
}

impl ParallelEncoder {
    /// `ArrowWriter::write`'s row-group splitting, with the columns encoded in parallel.
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut remaining = batch.clone();
        loop {
            if self.columns.is_empty() {
                let index = self.file.flushed_row_groups().len();
                self.columns = self.factory.create_column_writers(index)?;
            }
            let buffered = self.buffered_rows;
            let mut split_at = match self.max_rows {
                Some(max) if buffered + remaining.num_rows() > max => Some(max - buffered),
                _ => None,
            };
            let candidate_rows = split_at.unwrap_or_else(|| remaining.num_rows());
            if let Some(max_bytes) = self.max_bytes
                && buffered > 0
            {
                let current = self.in_progress_size();
                if current >= max_bytes {
                    self.flush()?;
                    continue;
                }
                let per_row = current / buffered;
                if let Some(fit) = (max_bytes - current).checked_div(per_row)
                    && candidate_rows > fit
                {
                    if fit == 0 {
                        self.flush()?;
                        continue;
                    }
                    split_at = Some(fit);
                }
            }
            let rest = split_at.map(|take| {
                let rest = remaining.slice(take, remaining.num_rows() - take);
                remaining = remaining.slice(0, take);
                rest
            });
            self.encode(&remaining)?;
            self.buffered_rows += remaining.num_rows();
            let is_full = self.max_rows.is_some_and(|max| self.buffered_rows >= max)
                || self
                    .max_bytes
                    .is_some_and(|max| self.in_progress_size() >= max);
            if is_full {
                self.flush()?;
            }
            match rest {
                Some(rest) => remaining = rest,
                None => return Ok(()),
            }
        }
    }

    /// Writes every leaf column of `batch` into its column writer, the columns dealt out
    /// round-robin to the threads.
    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut leaves: Vec<ArrowLeafColumn> = Vec::with_capacity(self.columns.len());
        for (field, array) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, array)?);
        }
        if leaves.len() != self.columns.len() {
            return Err(ParquetError::General(format!(
                "{} leaf columns for {} column writers",
                leaves.len(),
                self.columns.len()
            )));
        }
        let threads = self.threads.min(leaves.len()).max(1);
        let mut shares: Vec<Vec<(&mut ArrowColumnWriter, &ArrowLeafColumn)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (n, pair) in self.columns.iter_mut().zip(&leaves).enumerate() {
            shares[n % threads].push(pair);
        }
        let (outcome, used) = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(move || {
                        cpu::measured(|| {
                            share
                                .into_iter()
                                .try_for_each(|(writer, leaf)| writer.write(leaf))
                        })
                    })
                })
                .collect();
            let mut outcome = Ok(());
            let mut total = Some(Duration::ZERO);
            for handle in handles {
                let (written, used) = handle.join().unwrap_or_else(|_| {
                    let panicked = ParquetError::General("an encode thread panicked".to_owned());
                    (Err(panicked), None)
                });
                total = cpu::sum(total, used);
                if outcome.is_ok() {
                    outcome = written;
                }
            }
            (outcome, total)
        });
        self.helper_cpu = cpu::sum(self.helper_cpu, used);
        outcome
    }

    fn in_progress_size(&self) -> usize {
        self.columns
            .iter()
            .map(|c| c.get_estimated_total_bytes())
            .sum()
    }

    /// Closes the open row group: its column chunks appended in column order.
    fn flush(&mut self) -> Result<()> {
        if self.columns.is_empty() {
            return Ok(());
        }
        let columns = std::mem::take(&mut self.columns);
        self.buffered_rows = 0;
        let mut row_group = self.file.next_row_group()?;
        for column in columns {
            column.close()?.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }
}
