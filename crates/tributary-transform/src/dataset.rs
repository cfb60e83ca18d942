//! The rules of a dataset schema: how it grows, which columns are written, and how a batch is
//! made to fit it.
//!
//! - [`grow_schema`]: a field the schema lacks (at any nesting level) is appended as a nullable
//!   column; a `Null` column takes the first real type it meets; `Int64` widens to `Float64`;
//!   nothing else changes a column's type. [`RESCUED_DATA`] stays the last top-level column.
//! - [`without_null_columns`]: `Null`-typed columns (seen only as null so far) are never written;
//!   a struct left with no fields goes too.
//! - [`conform_batch`]: a batch is given exactly a schema that [`grow_schema`] produced from it:
//!   missing columns become nulls, `Int64` is cast to `Float64`, and a value of any other
//!   disagreeing type is written as null with its JSON text kept in [`RESCUED_DATA`] (a JSON
//!   object of field path to original JSON text), merged with what the batch rescued already.
//!
//! Invariants: no IO; no value of the input batch is dropped (all-null columns aside): it is
//! either in its column or in [`RESCUED_DATA`].

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray, StructArray};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use serde_json::Value;

use crate::schema::array_value;

/// The column that keeps values which did not fit their column, as a JSON object of field
/// path (`a.b`, `tags[2]`) to the value's JSON text.
pub const RESCUED_DATA: &str = "_rescued_data";

/// How one column of a grown schema differs from the schema it grew from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// Dotted path; `[]` for the elements of a list.
    pub path: String,
    pub data_type: DataType,
    /// `Int64` became `Float64` (otherwise the column is new or got its first type).
    pub widened: bool,
}

/// A batch made to fit a schema, and how many of its rows had a value rescued.
#[derive(Debug)]
pub struct Conformed {
    pub batch: RecordBatch,
    pub rescued_rows: u64,
}

/// The [`RESCUED_DATA`] field.
pub fn rescued_field() -> Field {
    Field::new(RESCUED_DATA, DataType::Utf8, true)
}

/// `base` grown by `incoming` (see the module header). Field order: `base`'s, then new fields
/// in `incoming`'s order, then [`RESCUED_DATA`] if either has it.
pub fn grow_schema(base: &Schema, incoming: &Schema) -> Schema {
    let has_rescued = base.column_with_name(RESCUED_DATA).is_some()
        || incoming.column_with_name(RESCUED_DATA).is_some();
    let strip = |fields: &Fields| -> Fields {
        fields
            .iter()
            .filter(|f| f.name() != RESCUED_DATA)
            .cloned()
            .collect()
    };
    let mut fields: Vec<FieldRef> = grow_fields(&strip(base.fields()), &strip(incoming.fields()))
        .iter()
        .cloned()
        .collect();
    if has_rescued {
        fields.push(Arc::new(rescued_field()));
    }
    Schema::new_with_metadata(fields, base.metadata().clone())
}

/// `schema` with [`RESCUED_DATA`] as its last column (added if missing).
pub fn with_rescued_column(schema: &Schema) -> Schema {
    grow_schema(schema, &Schema::new(vec![rescued_field()]))
}

/// `schema` without `Null`-typed columns, nested ones included.
pub fn without_null_columns(schema: &Schema) -> Schema {
    Schema::new_with_metadata(drop_null_fields(schema.fields()), schema.metadata().clone())
}

/// The columns of `new` that are not in `old` with the same type, nested ones by path.
pub fn schema_changes(old: &Schema, new: &Schema) -> Vec<SchemaChange> {
    let mut changes = Vec::new();
    diff_fields(old.fields(), new.fields(), "", &mut changes);
    changes
}

/// Gives `batch` exactly `target`'s schema; `target` must hold every non-null column of the
/// batch (as [`grow_schema`] of the batch's schema does). See the module header.
pub fn conform_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<Conformed, ArrowError> {
    if batch.schema() == *target {
        return Ok(Conformed {
            batch: batch.clone(),
            rescued_rows: 0,
        });
    }
    let rows = batch.num_rows();
    let mut rescues: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); rows];
    let source = batch.schema();
    let mut columns: Vec<Option<ArrayRef>> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        if field.name() == RESCUED_DATA {
            // Filled in below, once every column had its say.
            columns.push(None);
            continue;
        }
        let column = match source.column_with_name(field.name()) {
            Some((index, _)) => conform_array(
                batch.column(index),
                field.data_type(),
                field.name(),
                &mut rescues,
                None,
            )?,
            None => arrow_array::new_null_array(field.data_type(), rows),
        };
        columns.push(Some(column));
    }
    // A source column the target lacks: keep its values as rescued text rather than drop them.
    for (index, field) in source.fields().iter().enumerate() {
        if field.name() == RESCUED_DATA || target.column_with_name(field.name()).is_some() {
            continue;
        }
        rescue_all(batch.column(index), field.name(), &mut rescues, None);
    }
    let rescued_rows = rescues.iter().filter(|row| !row.is_empty()).count() as u64;
    let earlier = source
        .column_with_name(RESCUED_DATA)
        .and_then(|(index, _)| batch.column(index).as_any().downcast_ref::<StringArray>())
        .cloned();
    let rescued_index = target.column_with_name(RESCUED_DATA).map(|(i, _)| i);
    let columns: Vec<ArrayRef> = match rescued_index {
        Some(index) => {
            let mut columns = columns;
            columns[index] = Some(rescued_array(&rescues, earlier.as_ref())?);
            columns.into_iter().flatten().collect()
        }
        None if rescued_rows > 0
            || earlier
                .as_ref()
                .is_some_and(|array| array.null_count() < rows) =>
        {
            return Err(ArrowError::SchemaError(format!(
                "values do not fit the dataset schema and it has no `{RESCUED_DATA}` column"
            )));
        }
        None => columns.into_iter().flatten().collect(),
    };
    let batch = RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?;
    Ok(Conformed {
        batch,
        rescued_rows,
    })
}

fn grow_fields(base: &Fields, incoming: &Fields) -> Fields {
    let mut fields: Vec<FieldRef> = Vec::with_capacity(base.len() + incoming.len());
    for field in base {
        let grown = match incoming.find(field.name()) {
            Some((_, other)) => grow_type(field.data_type(), other.data_type()),
            None => field.data_type().clone(),
        };
        fields.push(Arc::new(
            Field::new(field.name(), grown, true).with_metadata(field.metadata().clone()),
        ));
    }
    for field in incoming {
        if base.find(field.name()).is_none() {
            fields.push(Arc::new(
                Field::new(field.name(), field.data_type().clone(), true)
                    .with_metadata(field.metadata().clone()),
            ));
        }
    }
    fields.into()
}

fn grow_type(base: &DataType, incoming: &DataType) -> DataType {
    match (base, incoming) {
        (DataType::Null, other) => other.clone(),
        (DataType::Int64, DataType::Float64) => DataType::Float64,
        (DataType::Struct(a), DataType::Struct(b)) => DataType::Struct(grow_fields(a, b)),
        (DataType::List(a), DataType::List(b)) => DataType::List(Arc::new(Field::new(
            a.name(),
            grow_type(a.data_type(), b.data_type()),
            true,
        ))),
        _ => base.clone(),
    }
}

fn drop_null_fields(fields: &Fields) -> Fields {
    fields
        .iter()
        .filter_map(|field| {
            let data_type = drop_null_type(field.data_type())?;
            Some(Arc::new(
                Field::new(field.name(), data_type, field.is_nullable())
                    .with_metadata(field.metadata().clone()),
            ))
        })
        .collect()
}

/// `None` when nothing typed is left.
fn drop_null_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Null => None,
        DataType::Struct(children) => {
            let kept = drop_null_fields(children);
            (!kept.is_empty()).then_some(DataType::Struct(kept))
        }
        DataType::List(element) => {
            let inner = drop_null_type(element.data_type())?;
            Some(DataType::List(Arc::new(Field::new(
                element.name(),
                inner,
                true,
            ))))
        }
        other => Some(other.clone()),
    }
}

fn diff_fields(old: &Fields, new: &Fields, prefix: &str, changes: &mut Vec<SchemaChange>) {
    for field in new {
        let path = join(prefix, field.name());
        match old.find(field.name()) {
            None => {
                changes.push(SchemaChange {
                    path: path.clone(),
                    data_type: field.data_type().clone(),
                    widened: false,
                });
                // The fields of a new struct are listed too, so each has its origin.
                if let DataType::Struct(children) = field.data_type() {
                    diff_fields(&Fields::empty(), children, &path, changes);
                }
            }
            Some((_, before)) => diff_type(before.data_type(), field.data_type(), path, changes),
        }
    }
}

fn diff_type(old: &DataType, new: &DataType, path: String, changes: &mut Vec<SchemaChange>) {
    if old == new {
        return;
    }
    match (old, new) {
        (DataType::Struct(a), DataType::Struct(b)) => diff_fields(a, b, &path, changes),
        (DataType::List(a), DataType::List(b)) => {
            diff_type(a.data_type(), b.data_type(), format!("{path}[]"), changes);
        }
        _ => changes.push(SchemaChange {
            path,
            data_type: new.clone(),
            widened: matches!((old, new), (DataType::Int64, DataType::Float64)),
        }),
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `array` as `target`. `rows` maps the array's indices to batch rows (`None`: the same).
fn conform_array(
    array: &ArrayRef,
    target: &DataType,
    path: &str,
    rescues: &mut [BTreeMap<String, String>],
    rows: Option<&[usize]>,
) -> Result<ArrayRef, ArrowError> {
    let source = array.data_type();
    if source == target {
        return Ok(array.clone());
    }
    match (source, target) {
        (DataType::Null, _) => Ok(arrow_array::new_null_array(target, array.len())),
        _ if widens(source, target) => arrow_cast::cast(array, target),
        (DataType::Struct(_), DataType::Struct(target_fields)) => {
            let Some(structs) = array.as_any().downcast_ref::<StructArray>() else {
                return Err(ArrowError::SchemaError(format!(
                    "`{path}`: a struct column is not a struct array"
                )));
            };
            let row_of: Vec<usize> = (0..structs.len())
                .map(|i| rows.map_or(i, |rows| rows[i]))
                .collect();
            let mut children = Vec::with_capacity(target_fields.len());
            for field in target_fields {
                let child_path = join(path, field.name());
                let child = match structs.column_by_name(field.name()) {
                    Some(child) => conform_array(
                        child,
                        field.data_type(),
                        &child_path,
                        rescues,
                        Some(&row_of),
                    )?,
                    None => arrow_array::new_null_array(field.data_type(), structs.len()),
                };
                children.push(child);
            }
            for (index, field) in structs.fields().iter().enumerate() {
                if target_fields.find(field.name()).is_none() {
                    let child_path = join(path, field.name());
                    rescue_all(structs.column(index), &child_path, rescues, Some(&row_of));
                }
            }
            Ok(Arc::new(StructArray::try_new(
                target_fields.clone(),
                children,
                structs.nulls().cloned(),
            )?))
        }
        _ => {
            rescue_all(array, path, rescues, rows);
            Ok(arrow_array::new_null_array(target, array.len()))
        }
    }
}

/// Whether `to` is `from` with `Int64`s widened to `Float64` (lists too).
fn widens(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        (DataType::Int64, DataType::Float64) => true,
        (DataType::List(a), DataType::List(b)) => {
            a.data_type() == b.data_type() || widens(a.data_type(), b.data_type())
        }
        _ => false,
    }
}

/// Keeps every non-null value of `array` as JSON text under `path`.
fn rescue_all(
    array: &ArrayRef,
    path: &str,
    rescues: &mut [BTreeMap<String, String>],
    rows: Option<&[usize]>,
) {
    for i in 0..array.len() {
        if array.is_null(i) {
            continue;
        }
        let row = rows.map_or(i, |rows| rows[i]);
        // A value under a null parent struct was not in the source.
        if let Some(slot) = rescues.get_mut(row) {
            slot.insert(
                path.to_owned(),
                array_value(array.as_ref(), i).to_json().to_string(),
            );
        }
    }
}

/// The rescued-data column: each row's earlier rescues merged with the new ones.
fn rescued_array(
    rescues: &[BTreeMap<String, String>],
    earlier: Option<&StringArray>,
) -> Result<ArrayRef, ArrowError> {
    let mut builder = StringBuilder::new();
    for (row, new) in rescues.iter().enumerate() {
        let before = earlier.filter(|a| a.is_valid(row)).map(|a| a.value(row));
        if new.is_empty() {
            builder.append_option(before);
            continue;
        }
        let mut object = match before.map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(object))) => object,
            Some(Ok(_)) | Some(Err(_)) | None => serde_json::Map::new(),
        };
        for (path, text) in new {
            object.insert(path.clone(), Value::String(text.clone()));
        }
        builder.append_value(Value::Object(object).to_string());
    }
    Ok(Arc::new(builder.finish()))
}

#[cfg(test)]
mod tests;
