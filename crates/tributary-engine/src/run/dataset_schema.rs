//! The dataset schema in a run: where a run's schema starts, and the step before publishing
//! that grows the dataset schema and gives every part of the batch the batch's final schema.
//!
//! A run starts from the dataset schema in state; a dataset without one starts from the target
//! schema (`targetConnection.data.schema.jsonSchema`), else the spec's custom `schema`, else
//! nothing (inference). Before the commit ([`prepare_commit`]) the batch's final schema is the
//! dataset schema grown by every part's schema; it is recorded in state (compare-and-swap, so
//! concurrent runs of one dataset merge rather than overwrite), and each staged part whose
//! schema differs is rewritten in place (`tributary_write::rewrite_part`: sealed over the old
//! file, so a crash leaves a complete part either way and the step is simply redone). Parts are
//! not visible before the publish, so the rewrite costs nothing in safety.
//!
//! Invariants: runs only while the window's attempt is `InProgress` (before `start_commit`);
//! a dataset schema only grows; after it, every data part of the batch has the final schema.

use std::path::Path;
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use tributary_spec::FlowBundle;
use tributary_state::{
    CheckpointStatus, ColumnChange, ColumnOrigin, DatasetId, Db, GrowOutcome, WindowKey,
};
use tributary_transform::dataset::{
    conform_batch, grow_schema, schema_changes, with_rescued_column, without_null_columns,
};
use tributary_write::{DatasetLayout, WriterOptions};

/// How often a commit merges again when other runs keep growing the same dataset schema.
const MAX_GROW_ATTEMPTS: usize = 16;

/// The dataset schema in state, as Arrow, if the dataset has one.
pub(crate) fn stored_schema(db: &Db, dataset: &str) -> Result<Option<Schema>, String> {
    let id = DatasetId::new(dataset);
    let stored = db
        .dataset_schema(&id)
        .map_err(|err| format!("reading the schema of dataset {dataset}: {err}"))?;
    stored
        .map(|stored| parse_schema(dataset, &stored.arrow_schema_json))
        .transpose()
}

/// The schema a run of `bundle` into `dataset` starts from (see the module header), without
/// `Null` columns; empty when everything is to be inferred.
pub(crate) fn start_schema(db: &Db, bundle: &FlowBundle, dataset: &str) -> Result<Schema, String> {
    if let Some(schema) = stored_schema(db, dataset)? {
        return Ok(schema);
    }
    Ok(without_null_columns(
        &initial_schema(bundle)?.unwrap_or_else(Schema::empty),
    ))
}

/// The schema a new dataset is created with: the target schema, else the spec's custom one.
fn initial_schema(bundle: &FlowBundle) -> Result<Option<Schema>, String> {
    if let Some(schema) = &bundle.target.schema {
        return tributary_transform::schema::json_schema_to_arrow(schema)
            .map(Some)
            .map_err(|err| format!("targetConnection data.schema.jsonSchema: {err}"));
    }
    if let Some(schema) = &bundle.connection_spec.source.record_schema {
        return tributary_transform::decode::json_schema_to_arrow(schema)
            .map(Some)
            .map_err(|err| format!("sourceSpec schema: {err}"));
    }
    Ok(None)
}

fn parse_schema(dataset: &str, json: &str) -> Result<Schema, String> {
    serde_json::from_str(json)
        .map_err(|err| format!("the stored schema of dataset {dataset} is unreadable: {err}"))
}

/// Grows the dataset schema by the batch's parts and rewrites the parts that lack the final
/// schema; see the module header. Does nothing for a window that is not `InProgress`.
pub(crate) fn prepare_commit(
    db: &Db,
    layout: &DatasetLayout,
    bundle: &FlowBundle,
    key: &WindowKey,
    writer: &WriterOptions,
) -> Result<(), String> {
    let Some(checkpoint) = db.checkpoint(key).map_err(|err| err.to_string())? else {
        return Ok(());
    };
    if checkpoint.status != CheckpointStatus::InProgress {
        return Ok(());
    }
    let dataset = checkpoint.dataset_id.as_str();
    let mut parts = Vec::new();
    for part in &checkpoint.parts {
        if !part.final_path.ends_with(".parquet") {
            continue;
        }
        let schema = tributary_write::part_schema(Path::new(&part.staged_path))
            .map_err(|err| err.to_string())?;
        parts.push((part.seq, schema));
    }
    if parts.is_empty() {
        return Ok(());
    }
    let final_schema = grow_in_state(db, bundle, &checkpoint, &parts)?;
    let write_dataset =
        tributary_write::DatasetId::try_new(dataset).map_err(|err| err.to_string())?;
    let write_batch = tributary_write::BatchId::try_new(checkpoint.batch_id.as_str())
        .map_err(|err| err.to_string())?;
    let options = writer
        .clone()
        .with_lineage(key.flow_id.as_str(), checkpoint.run_id.as_str());
    for (seq, schema) in &parts {
        if strip_metadata(schema) == strip_metadata(&final_schema) {
            continue;
        }
        let target = final_schema.clone();
        let mut conform = |batch: &arrow_array::RecordBatch| {
            conform_batch(batch, &target)
                .map(|conformed| conformed.batch)
                .map_err(|err| err.to_string())
        };
        let part = tributary_write::rewrite_part(
            layout,
            &write_dataset,
            &write_batch,
            *seq,
            options.clone(),
            &mut conform,
        )
        .map_err(|err| err.to_string())?;
        db.set_part_bytes(key, *seq, part.bytes)
            .map_err(|err| err.to_string())?;
        tracing::debug!(dataset, seq, "staged part rewritten to the batch schema");
    }
    Ok(())
}

/// Merges the parts' schemas into the dataset schema in state, again while others race it;
/// returns the final schema.
fn grow_in_state(
    db: &Db,
    bundle: &FlowBundle,
    checkpoint: &tributary_state::Checkpoint,
    parts: &[(u32, SchemaRef)],
) -> Result<SchemaRef, String> {
    let dataset = checkpoint.dataset_id.as_str();
    let id = DatasetId::new(dataset);
    for _ in 0..MAX_GROW_ATTEMPTS {
        let stored = db
            .dataset_schema(&id)
            .map_err(|err| format!("reading the schema of dataset {dataset}: {err}"))?;
        let (version, base) = match &stored {
            Some(stored) => (
                Some(stored.version),
                parse_schema(dataset, &stored.arrow_schema_json)?,
            ),
            None => (None, Schema::empty()),
        };
        let mut grown = match &stored {
            Some(_) => base.clone(),
            None => without_null_columns(&initial_schema(bundle)?.unwrap_or_else(Schema::empty)),
        };
        let mut needs_rescue_column = false;
        for (_, schema) in parts {
            grown = grow_schema(&grown, &without_null_columns(schema));
            needs_rescue_column |= schema
                .column_with_name(tributary_transform::dataset::RESCUED_DATA)
                .is_some();
        }
        // A part whose value the final schema cannot take keeps it in `_rescued_data`.
        let would_rescue = parts.iter().any(|(_, schema)| {
            !fields_fit(
                &without_null_columns(schema).fields().clone(),
                grown.fields(),
            )
        });
        if needs_rescue_column || would_rescue {
            grown = with_rescued_column(&grown);
        }
        let grown = Schema::new(grown.fields().clone());
        let changes = schema_changes(&base, &grown);
        if stored.is_some() && changes.is_empty() {
            return Ok(Arc::new(grown));
        }
        let now = chrono::Utc::now().timestamp_millis();
        let origins = changes
            .into_iter()
            .map(|change| ColumnOrigin {
                path: change.path,
                data_type: change.data_type.to_string(),
                change: if change.widened {
                    ColumnChange::Widened
                } else {
                    ColumnChange::Added
                },
                batch_id: checkpoint.batch_id.clone(),
                run_id: checkpoint.run_id.clone(),
                at_ms: now,
            })
            .collect();
        let json = serde_json::to_string(&grown).map_err(|err| err.to_string())?;
        match db
            .grow_dataset_schema(&id, version, json, origins)
            .map_err(|err| format!("recording the schema of dataset {dataset}: {err}"))?
        {
            GrowOutcome::Grown(_) => return Ok(Arc::new(grown)),
            GrowOutcome::Conflict(_) => continue,
        }
    }
    Err(format!(
        "the schema of dataset {dataset} kept changing under this commit ({MAX_GROW_ATTEMPTS} attempts)"
    ))
}

/// Whether every column of `part` converts to `target`'s without rescuing a value (the same
/// type, a widening, or a struct whose fields all do).
fn fields_fit(part: &arrow_schema::Fields, target: &arrow_schema::Fields) -> bool {
    use arrow_schema::DataType;
    fn type_fits(from: &DataType, to: &DataType) -> bool {
        match (from, to) {
            _ if from == to => true,
            (DataType::Null, _) | (DataType::Int64, DataType::Float64) => true,
            (DataType::Struct(a), DataType::Struct(b)) => fields_fit(a, b),
            (DataType::List(a), DataType::List(b)) => {
                matches!(
                    (a.data_type(), b.data_type()),
                    (DataType::Int64, DataType::Float64)
                )
            }
            _ => false,
        }
    }
    part.iter().all(|field| match target.find(field.name()) {
        Some((_, to)) => type_fits(field.data_type(), to.data_type()),
        None => false,
    })
}

fn strip_metadata(schema: &SchemaRef) -> Schema {
    Schema::new(schema.fields().clone())
}
