//! Data Prep mapping sets compiled into an executable plan over Arrow batches, and row errors.
//!
//! [`compile`] turns a validated [`MappingSet`] (either dialect; the spec crate has already
//! unified them) into a [`MappingPlan`] once per flow; [`apply`] runs the plan on each decoded
//! batch. The plan is a tree of destination columns:
//!
//! - an ATTRIBUTE mapping whose path walks structs only is a column projection: the child
//!   array is taken as it is (its nulls merged with its parents'), with no per-row work unless
//!   its type differs from the destination type;
//! - calculated fields that match a kernel (`lower`, `upper`, `trim`, `concat` of fields and
//!   literals, `date(field[, "fmt"])`) run column-wise over the string buffers; any other
//!   expression is evaluated row by row on the fields it references;
//! - `arr[*].x` → `dest[*].y` mappings that share `dest` are zipped element by element;
//! - destinations such as `person.name.firstName` become nested struct columns, null when all
//!   their children are null.
//!
//! Row errors follow Data Prep (reference §8.4) by default: a failing calculated field
//! nullifies its column and counts a warning (`MAPPER-3700-400`); a value that cannot be
//! coerced to its destination type (`INGEST-1401-400`) or a required field that ends up null
//! (`INGEST-1555-400`) rejects the row. Rejected rows come back with the source row rebuilt as
//! JSON and every problem of the row. Two settings of the mapping set change this:
//!
//! - `strictMapping: true`: a transformation error of any mapping (a calculated field that
//!   fails, a `[*]` source that is not an array) rejects the row with its `MAPPER-3700-400`
//!   error, as a required-field violation does, instead of nullifying the column and keeping
//!   the row. Default false. Coercion errors reject the row either way.
//! - `allowNullValues: true`: with a target schema, a `required` destination that ends up null
//!   no longer rejects the row; the row is kept, the problem counted as an `INGEST-1555-400`
//!   warning, and the output schema is the target schema with every field nullable (so the
//!   null can be written). Default false: such a row is rejected and required fields are
//!   non-nullable columns. Without a target schema no destination is required, so the setting
//!   changes nothing observable.
//!
//! Without a target schema the output types are fixed at compile time from the source schema
//! (and the functions' result types); when the decoder reports a schema change, compile again.
//! With a target schema, the output schema is the target schema, every field of it present
//! (unmapped ones null) and `required` fields non-nullable (unless `allowNullValues`).

mod apply;
mod compile;
mod kernels;
mod preview;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::Serialize;

pub use apply::apply;
pub use compile::{compile, compile_with_json_schema};
pub use preview::{PreviewError, PreviewRow, PreviewRowError, preview, preview_with_schema};

#[doc(no_inline)]
pub use tributary_spec::{Mapping, MappingSet, MappingSourceType};

/// A compiled mapping set. Cheap to share between threads (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct MappingPlan {
    /// The schema of [`MappedBatch::batch`]: the target schema when one was given, otherwise
    /// derived from the destinations and the source types.
    pub output_schema: SchemaRef,
    mappings: Vec<compile::CompiledMapping>,
    fields: Vec<compile::OutputField>,
    policy: RowPolicy,
}

/// Which row problems reject their row; the others are warnings and the row is kept. From the
/// mapping set's `strictMapping` and `allowNullValues` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowPolicy {
    /// `strictMapping`: transformation errors reject.
    strict: bool,
    /// `allowNullValues`: null required fields do not reject.
    allow_null_values: bool,
}

/// A mapping that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Index of the mapping in the set (`None` for a problem of the set as a whole).
    pub mapping_index: Option<usize>,
    pub destination: String,
    /// 1-based character position in the source expression, when the problem has one.
    pub position: Option<usize>,
    pub message: String,
}

/// The result of applying a plan to one batch.
#[derive(Debug, Clone)]
pub struct MappedBatch {
    /// Accepted rows, in input order, with [`MappingPlan::output_schema`].
    pub batch: RecordBatch,
    pub rejected: Vec<RejectedRow>,
    /// Rows with at least one warning, per error code (`MAPPER-3700-400` by default;
    /// `INGEST-1555-400` with `allowNullValues`), rejected rows included.
    pub warnings: BTreeMap<ErrorCode, usize>,
    /// Accepted rows with at least one warning, counted once whatever their codes (a run's
    /// `warningRecordCount`).
    pub warned_rows: usize,
    /// The first warnings in detail (at most [`MAX_WARNING_SAMPLES`]), for diagnostics.
    pub warning_samples: Vec<RowWarning>,
    /// Rows per error code, over every row with a problem (see [`MappedBatch::error_counts`]).
    rows_per_code: BTreeMap<ErrorCode, usize>,
}

/// How many warnings [`MappedBatch::warning_samples`] keeps.
pub const MAX_WARNING_SAMPLES: usize = 100;

/// A row that was not written, with the source record and every problem it had (the reasons
/// it was rejected, and its warnings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedRow {
    /// Index of the row in the input batch.
    pub row_index: usize,
    /// The source row rebuilt as JSON.
    pub original: serde_json::Value,
    pub errors: Vec<RowError>,
}

/// A warning of an accepted or rejected row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowWarning {
    pub row_index: usize,
    pub error: RowError,
}

/// One problem of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub code: ErrorCode,
    pub message: String,
    /// The destination path concerned.
    pub destination: String,
}

/// Data Prep / ingestion error codes of row problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    /// `MAPPER-3700-400`: a calculated field failed; its column is nullified (a warning), or
    /// with `strictMapping` the row is rejected.
    TransformError,
    /// `INGEST-1555-400`: a required field is missing or null; the row is rejected, or with
    /// `allowNullValues` kept with a warning.
    RequiredFieldNull,
    /// `INGEST-1401-400`: a value does not fit its destination type; the row is rejected.
    Unparsable,
}

/// Errors of [`apply`]: only a batch that the plan cannot be applied to at all.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("building the mapped batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl MappingError {
    /// Whether retrying the same input can help: never, the input or the plan is at fault.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The partial-ingestion rule: without a threshold any rejected row fails the run; with one,
/// the run fails when rejected rows exceed that percent of the input rows.
pub fn threshold_exceeded(rejected: usize, input: usize, percent: Option<f64>) -> bool {
    match percent {
        None => rejected > 0,
        Some(_) if input == 0 => false,
        Some(percent) => rejected as f64 * 100.0 / input as f64 > percent,
    }
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::TransformError => "MAPPER-3700-400",
            ErrorCode::RequiredFieldNull => "INGEST-1555-400",
            ErrorCode::Unparsable => "INGEST-1401-400",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mapping_index {
            Some(index) => write!(f, "mapping {index} (destination {:?})", self.destination)?,
            None => f.write_str("mapping set")?,
        }
        if let Some(position) = self.position {
            write!(f, " at position {position}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CompileError {}

impl MappedBatch {
    /// Rows per error code over rejected rows and warnings (a row counts once per code), the
    /// `recordCount` of each code in run metrics.
    pub fn error_counts(&self) -> BTreeMap<ErrorCode, usize> {
        self.rows_per_code.clone()
    }
}

impl RowPolicy {
    pub(crate) fn of(mapping_set: &MappingSet) -> RowPolicy {
        RowPolicy {
            strict: mapping_set.strict,
            allow_null_values: mapping_set.allow_null_values,
        }
    }

    /// Whether a problem with this code rejects its row.
    pub(crate) fn rejects(self, code: ErrorCode) -> bool {
        match code {
            ErrorCode::TransformError => self.strict,
            ErrorCode::RequiredFieldNull => !self.allow_null_values,
            ErrorCode::Unparsable => true,
        }
    }
}

impl MappingPlan {
    /// The number of mappings in the plan.
    pub fn len(&self) -> usize {
        self.mappings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }
}
