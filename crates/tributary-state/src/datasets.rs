//! Dataset schemas: per dataset, the one schema every committed file of it reads back with, and
//! for each column the batch, run and time it appeared (or widened) in.
//!
//! The store does not know Arrow: the schema is kept as the Arrow schema's JSON text, and the
//! engine computes how it grows. Invariants: a dataset schema only grows, and concurrent growers
//! cannot lose each other's columns — [`Db::grow_dataset_schema`] is a compare-and-swap on the
//! schema's `version`, so a writer that read an older version is told to merge again.

use serde::{Deserialize, Serialize};

use crate::{BatchId, DatasetId, Db, RunId, StateError, now_ms};

/// The schema of one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSchema {
    pub dataset_id: DatasetId,
    /// 1 when created, +1 at every growth.
    pub version: u64,
    /// The Arrow schema, as JSON (arrow-schema's serde form).
    pub arrow_schema_json: String,
    /// Where each column (top-level and nested, by dotted path) came from, in the order they
    /// appeared.
    pub columns: Vec<ColumnOrigin>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// When a column of a dataset schema appeared or last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnOrigin {
    /// Dotted path (`address.city`; `[]` for list elements).
    pub path: String,
    /// The Arrow type as displayed (`Int64`, `Utf8`, ...).
    pub data_type: String,
    pub change: ColumnChange,
    pub batch_id: BatchId,
    pub run_id: RunId,
    pub at_ms: i64,
}

/// How a column entered the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ColumnChange {
    /// Part of the schema the dataset was created with, or a new (nullable) column.
    Added,
    /// An `Int64` column that became `Float64`.
    Widened,
}

/// What [`Db::grow_dataset_schema`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrowOutcome {
    /// The schema is now the given one (at this version).
    Grown(DatasetSchema),
    /// Someone else grew it since `expected_version`: merge into this one and try again.
    Conflict(DatasetSchema),
}

impl Db {
    /// The schema of a dataset, if a batch of it was ever committed.
    pub fn dataset_schema(&self, id: &DatasetId) -> Result<Option<DatasetSchema>, StateError> {
        self.trees().dataset_schemas.get(id.as_str().as_bytes())
    }

    /// Every dataset schema, ordered by dataset id.
    pub fn dataset_schemas(&self) -> Result<Vec<DatasetSchema>, StateError> {
        Ok(self
            .trees()
            .dataset_schemas
            .values_with_prefix::<DatasetSchema>(b"")?
            .into_iter()
            .map(|(_, schema)| schema)
            .collect())
    }

    /// Replaces the dataset schema with `arrow_schema_json`, appending `new_columns` to the
    /// column origins (an origin for a path already listed replaces it, for a widened column),
    /// if the stored version is still `expected_version` (`None`: no schema yet). Flushed.
    /// The caller computes the growth; the store checks only that nobody raced it.
    pub fn grow_dataset_schema(
        &self,
        id: &DatasetId,
        expected_version: Option<u64>,
        arrow_schema_json: String,
        new_columns: Vec<ColumnOrigin>,
    ) -> Result<GrowOutcome, StateError> {
        let table = &self.trees().dataset_schemas;
        let key = id.as_str().as_bytes();
        let old_bytes = table.get_raw(key)?;
        let current = match &old_bytes {
            None => None,
            Some(bytes) => Some(crate::codec::decode::<DatasetSchema>(
                table.name, key, bytes,
            )?),
        };
        if current.as_ref().map(|schema| schema.version) != expected_version {
            return match current {
                Some(current) => Ok(GrowOutcome::Conflict(current)),
                None => Err(StateError::NotFound {
                    what: "dataset schema",
                    id: id.to_string(),
                }),
            };
        }
        let now = now_ms();
        let grown = match current {
            None => DatasetSchema {
                dataset_id: id.clone(),
                version: 1,
                arrow_schema_json,
                columns: new_columns,
                created_at_ms: now,
                updated_at_ms: now,
            },
            Some(mut schema) => {
                for column in new_columns {
                    match schema.columns.iter_mut().find(|c| c.path == column.path) {
                        Some(existing) => *existing = column,
                        None => schema.columns.push(column),
                    }
                }
                schema.version += 1;
                schema.arrow_schema_json = arrow_schema_json;
                schema.updated_at_ms = now;
                schema
            }
        };
        let new_bytes = crate::codec::encode("dataset schema", &grown)?;
        let swapped = table.compare_and_swap(key, old_bytes.as_deref(), Some(&new_bytes))?;
        if !swapped {
            // Changed between our read and the swap: report what is there now.
            return match self.dataset_schema(id)? {
                Some(current) => Ok(GrowOutcome::Conflict(current)),
                None => Err(StateError::NotFound {
                    what: "dataset schema",
                    id: id.to_string(),
                }),
            };
        }
        self.flush()?;
        Ok(GrowOutcome::Grown(grown))
    }
}
