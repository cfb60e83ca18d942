//! Mapping preview, the shape of Data Prep's `POST /mappingSets/preview`: each input record
//! mapped, with the errors of each failing mapping (`destination`, `source`, `exception`).
//!
//! Preview runs the same compiled plan as ingestion: the records are turned into one Arrow
//! batch (types inferred from the records), so a preview shows exactly what a run would write,
//! including coercion to the target schema. Unlike a run, rejected rows are shown too, with
//! their mapped data, the reasons they would be rejected and `rejected: true`; the mapping
//! set's `strictMapping` and `allowNullValues` decide which problems reject a row, as in a run.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use chrono::Utc;
use serde::Serialize;

use super::apply::run;
use super::{CompileError, MappingSet, compile};
use crate::decode::{DecoderOptions, RecordDecoder};
use crate::schema::row_to_json;

/// One previewed record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewRow {
    /// The mapped record (destination paths as nested objects).
    pub data: serde_json::Value,
    /// Empty when every mapping succeeded (Data Prep returns `null` then).
    pub errors: Vec<PreviewRowError>,
    /// Whether a run would reject the record (write it to the error diagnostics instead of the
    /// dataset); false when its errors are only warnings.
    pub rejected: bool,
}

/// One failing mapping of one record (Data Prep's `TransformErrorInfo` subset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewRowError {
    pub destination: String,
    pub source: String,
    pub exception: String,
}

/// Why a preview could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the mapping set does not compile: {}", join(.0))]
    Compile(Vec<CompileError>),
    #[error("record {index} is not a JSON object")]
    NotAnObject { index: usize },
    #[error("the records cannot be decoded: {0}")]
    Decode(String),
    #[error("the records cannot be read as one table: {0}")]
    Records(#[from] arrow_schema::ArrowError),
}

/// Previews a mapping set on sample records, without a target schema.
pub fn preview(
    mapping_set: &MappingSet,
    records: &[serde_json::Value],
) -> Result<Vec<PreviewRow>, PreviewError> {
    preview_with_schema(mapping_set, records, None)
}

/// Previews a mapping set on sample records against an optional target schema.
pub fn preview_with_schema(
    mapping_set: &MappingSet,
    records: &[serde_json::Value],
    target: Option<&Schema>,
) -> Result<Vec<PreviewRow>, PreviewError> {
    if let Some(index) = records.iter().position(|r| !r.is_object()) {
        return Err(PreviewError::NotAnObject { index });
    }
    let batch = records_to_batch(records)?;
    let plan =
        compile(mapping_set, batch.schema().as_ref(), target).map_err(PreviewError::Compile)?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let outcome = run(&plan, &batch, Utc::now()).map_err(|err| match err {
        super::MappingError::Arrow(err) => PreviewError::Records(err),
    })?;
    let mapped = RecordBatch::try_new(
        Arc::new(Schema::new(
            plan.output_schema
                .fields()
                .iter()
                .map(|f| crate::schema::nullable_field(f))
                .collect::<Vec<_>>(),
        )),
        outcome.columns,
    )?;
    let mut rows: Vec<PreviewRow> = (0..mapped.num_rows())
        .map(|row| PreviewRow {
            data: row_to_json(&mapped, row),
            errors: Vec::new(),
            rejected: false,
        })
        .collect();
    for problem in outcome.problems {
        let source = problem
            .mapping
            .map(|m| plan.mappings[m].source_text.clone())
            .unwrap_or_default();
        rows[problem.row].rejected |= plan.policy.rejects(problem.error.code);
        rows[problem.row].errors.push(PreviewRowError {
            destination: problem.error.destination,
            source,
            exception: format!("{}: {}", problem.error.code, problem.error.message),
        });
    }
    Ok(rows)
}

/// Decodes the records the way a run decodes a page (same inference: source field order kept,
/// disagreeing values as JSON text), as one batch.
fn records_to_batch(records: &[serde_json::Value]) -> Result<RecordBatch, PreviewError> {
    if records.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    }
    let mut ndjson = Vec::new();
    for record in records {
        ndjson.extend_from_slice(record.to_string().as_bytes());
        ndjson.push(b'\n');
    }
    let options = DecoderOptions {
        batch_rows: records.len(),
        ..DecoderOptions::default()
    };
    let mut decoder = RecordDecoder::new(options);
    let decode_error = |err: crate::decode::DecodeError| PreviewError::Decode(err.to_string());
    let mut batches = decoder
        .decode_page(0, &ndjson)
        .map_err(decode_error)?
        .batches;
    batches.extend(decoder.finish().map_err(decode_error)?);
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    };
    Ok(arrow_select::concat::concat_batches(
        &first.schema(),
        &batches,
    )?)
}

fn join(errors: &[CompileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
