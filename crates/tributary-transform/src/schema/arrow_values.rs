//! Arrow arrays ↔ expression values, and coercion of values and arrays to destination types.
//!
//! Arrays built here have nullable fields all the way down; the mapping stage rejects rows
//! that break a `required` rule and only then conforms the arrays to the target schema's
//! nullability ([`conform_array`]), because Arrow refuses a null in a non-nullable child.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, ListArray, NullArray, RecordBatch, StructArray, new_null_array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use chrono::{DateTime, FixedOffset, NaiveDate};

use crate::expr::Value;
use crate::functions::{parse_implicit_datetime, parse_number, string_to_bool};

/// A value that does not fit its destination type; `row` is the row of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoerceError {
    pub row: usize,
    /// Dotted path below the destination column (empty for the column itself).
    pub path: String,
    pub message: String,
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The value at `row` of an array (null-aware, recursive for structs and lists).
pub fn array_value(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::Int(i64::from(array.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => Value::Int(i64::from(array.as_primitive::<Int16Type>().value(row))),
        DataType::Int32 => Value::Int(i64::from(array.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::Int(i64::from(array.as_primitive::<UInt8Type>().value(row))),
        DataType::UInt16 => Value::Int(i64::from(array.as_primitive::<UInt16Type>().value(row))),
        DataType::UInt32 => Value::Int(i64::from(array.as_primitive::<UInt32Type>().value(row))),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
        }
        DataType::Float32 => {
            Value::Float(f64::from(array.as_primitive::<Float32Type>().value(row)))
        }
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::Str(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::Str(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::Str(array.as_string_view().value(row).to_owned()),
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1000),
                TimeUnit::Microsecond => {
                    Some(array.as_primitive::<TimestampMicrosecondType>().value(row))
                }
                TimeUnit::Nanosecond => {
                    Some(array.as_primitive::<TimestampNanosecondType>().value(row) / 1000)
                }
            };
            micros
                .and_then(DateTime::from_timestamp_micros)
                .map_or(Value::Null, |dt| Value::DateTime(dt.fixed_offset()))
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            days.checked_add(EPOCH_DAYS_FROM_CE)
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .map_or(Value::Null, |d| {
                    Value::DateTime(
                        d.and_hms_opt(0, 0, 0)
                            .map_or_else(Default::default, |n| n.and_utc().fixed_offset()),
                    )
                })
        }
        DataType::Date64 => {
            DateTime::from_timestamp_millis(array.as_primitive::<Date64Type>().value(row))
                .map_or(Value::Null, |dt| Value::DateTime(dt.fixed_offset()))
        }
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(structs.columns())
                    .map(|(field, column)| {
                        (field.name().clone(), array_value(column.as_ref(), row))
                    })
                    .collect(),
            )
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let items = list.value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| array_value(items.as_ref(), i))
                    .collect(),
            )
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let items = list.value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| array_value(items.as_ref(), i))
                    .collect(),
            )
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let entries = map.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Object(
                (0..entries.len())
                    .map(|i| {
                        (
                            array_value(keys.as_ref(), i).to_text().unwrap_or_default(),
                            array_value(values.as_ref(), i),
                        )
                    })
                    .collect(),
            )
        }
        _ => {
            // Decimals, binaries, durations...: their display text is the most useful value.
            let options = arrow_cast::display::FormatOptions::default();
            match arrow_cast::display::ArrayFormatter::try_new(array, &options) {
                Ok(formatter) => {
                    let text = formatter.value(row).to_string();
                    parse_number(&text).unwrap_or(Value::Str(text))
                }
                Err(_) => Value::Null,
            }
        }
    }
}

/// One row of a batch as a JSON object (for rejected-row diagnostics and previews).
pub fn row_to_json(batch: &RecordBatch, row: usize) -> serde_json::Value {
    let schema = batch.schema();
    let mut object = serde_json::Map::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        object.insert(
            field.name().clone(),
            array_value(column.as_ref(), row).to_json(),
        );
    }
    serde_json::Value::Object(object)
}

/// Converts a value to the canonical value of a destination type (the implicit conversions
/// of the reference). Nested structs drop keys their type does not have.
pub fn coerce_value(value: Value, data_type: &DataType) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = |value: &Value, expected: &str| {
        Err(format!(
            "cannot convert {} to {expected}",
            crate::functions::describe_value(value)
        ))
    };
    match data_type {
        DataType::Null => Ok(Value::Null),
        DataType::Boolean => match &value {
            Value::Bool(_) => Ok(value),
            Value::Str(s) => string_to_bool(s)
                .map(Value::Bool)
                .map_or_else(|| mismatch(&value, "a boolean"), Ok),
            _ => mismatch(&value, "a boolean"),
        },
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => match &value {
            Value::Int(_) => Ok(value),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Value::Int(*f as i64)),
            Value::Str(s) => match parse_number(s) {
                Some(Value::Int(i)) => Ok(Value::Int(i)),
                Some(Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                    Ok(Value::Int(f as i64))
                }
                _ => mismatch(&value, "an integer"),
            },
            _ => mismatch(&value, "an integer"),
        },
        DataType::Float16 | DataType::Float32 | DataType::Float64 => match &value {
            Value::Float(_) => Ok(value),
            Value::Int(i) => Ok(Value::Float(*i as f64)),
            Value::Str(s) => match parse_number(s) {
                Some(Value::Int(i)) => Ok(Value::Float(i as f64)),
                Some(n) => Ok(n),
                None => mismatch(&value, "a number"),
            },
            _ => mismatch(&value, "a number"),
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Ok(value.to_text().map_or(Value::Null, Value::Str))
        }
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => match &value {
            Value::DateTime(_) => Ok(value),
            Value::Str(s) => parse_implicit_datetime(s).map(Value::DateTime).map_or_else(
                || {
                    Err(format!(
                        "cannot convert {} to a date-time: it matches no date pattern",
                        crate::functions::describe_value(&value)
                    ))
                },
                Ok,
            ),
            Value::Int(ms) => DateTime::from_timestamp_millis(*ms)
                .map(|dt| Value::DateTime(dt.fixed_offset()))
                .map_or_else(|| mismatch(&value, "a date-time"), Ok),
            _ => mismatch(&value, "a date-time"),
        },
        DataType::Struct(fields) => match value {
            Value::Object(entries) => {
                let mut out = Vec::with_capacity(fields.len());
                for field in fields {
                    let child = entries
                        .iter()
                        .find(|(k, _)| k == field.name())
                        .map_or(Value::Null, |(_, v)| v.clone());
                    let child = coerce_value(child, field.data_type())
                        .map_err(|err| format!("{}: {err}", field.name()))?;
                    out.push((field.name().clone(), child));
                }
                Ok(Value::Object(out))
            }
            Value::Str(ref s) if s.trim_start().starts_with('{') => {
                match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(json) => coerce_value(Value::from_json(&json), data_type),
                    Err(_) => mismatch(&value, "an object"),
                }
            }
            other => mismatch(&other, "an object"),
        },
        DataType::List(field) | DataType::LargeList(field) => match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    out.push(
                        coerce_value(item, field.data_type())
                            .map_err(|err| format!("[{i}]: {err}"))?,
                    );
                }
                Ok(Value::Array(out))
            }
            other => mismatch(&other, "an array"),
        },
        _ => Ok(value),
    }
}

/// Builds an array of `data_type` from values, coercing each; a value that cannot be coerced
/// becomes null and is reported with its row.
pub fn values_to_array(values: &[Value], data_type: &DataType) -> (ArrayRef, Vec<CoerceError>) {
    let mut errors = Vec::new();
    let refs: Vec<Option<&Value>> = values.iter().map(Some).collect();
    let array = build(&refs, data_type, &mut errors, &|i| i, "");
    (array, errors)
}

/// Converts an array to `target` (names matched for structs). Same type: no copy.
pub fn coerce_array(array: &ArrayRef, target: &DataType) -> (ArrayRef, Vec<CoerceError>) {
    if array.data_type() == target || matches!(target, DataType::Null) {
        return (Arc::clone(array), Vec::new());
    }
    match (array.data_type(), target) {
        (DataType::Struct(_), DataType::Struct(target_fields)) => {
            let structs = array.as_struct();
            let mut errors = Vec::new();
            let mut children = Vec::with_capacity(target_fields.len());
            for field in target_fields {
                let child = match structs.column_by_name(field.name()) {
                    Some(child) => {
                        let (child, child_errors) = coerce_array(child, field.data_type());
                        errors.extend(child_errors.into_iter().map(|e| prefix(e, field.name())));
                        child
                    }
                    None => new_null_array(field.data_type(), array.len()),
                };
                children.push(child);
            }
            let fields = nullable_fields(target_fields);
            match StructArray::try_new(fields, children, structs.nulls().cloned()) {
                Ok(out) => (Arc::new(out) as ArrayRef, errors),
                Err(err) => fallback(array, target, Some(err.to_string())),
            }
        }
        (
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32,
            DataType::Int64,
        )
        | (DataType::Float32 | DataType::Int64, DataType::Float64)
        // Integers and booleans print the same through arrow-cast as through `to_text`.
        | (
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Boolean,
            DataType::Utf8,
        ) => {
            match arrow_cast::cast(array, target) {
                Ok(out) => (out, Vec::new()),
                Err(err) => fallback(array, target, Some(err.to_string())),
            }
        }
        _ => fallback(array, target, None),
    }
}

/// Value-by-value coercion for conversions without a kernel.
fn fallback(
    array: &ArrayRef,
    target: &DataType,
    _reason: Option<String>,
) -> (ArrayRef, Vec<CoerceError>) {
    let values: Vec<Value> = (0..array.len())
        .map(|row| array_value(array.as_ref(), row))
        .collect();
    values_to_array(&values, target)
}

fn prefix(mut error: CoerceError, name: &str) -> CoerceError {
    error.path = if error.path.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{}", error.path)
    };
    error
}

/// Fields with every level nullable (see the module header).
pub(crate) fn nullable_fields(fields: &Fields) -> Fields {
    fields.iter().map(|f| Arc::new(nullable_field(f))).collect()
}

pub(crate) fn nullable_field(field: &Field) -> Field {
    Field::new(field.name(), nullable_type(field.data_type()), true)
}

pub(crate) fn nullable_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Struct(fields) => DataType::Struct(nullable_fields(fields)),
        DataType::List(item) => DataType::List(Arc::new(nullable_field(item))),
        other => other.clone(),
    }
}

/// Rebuilds an array built with nullable fields so that its type is exactly `target`
/// (nullability included). Callers have already removed rows that break `required`.
pub(crate) fn conform_array(
    array: &ArrayRef,
    target: &DataType,
) -> Result<ArrayRef, arrow_schema::ArrowError> {
    if array.data_type() == target {
        return Ok(Arc::clone(array));
    }
    match target {
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let mut children = Vec::with_capacity(fields.len());
            for (field, child) in fields.iter().zip(structs.columns()) {
                children.push(conform_array(child, field.data_type())?);
            }
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                structs.nulls().cloned(),
            )?))
        }
        DataType::List(field) => {
            let list = array.as_list::<i32>();
            let values = conform_array(list.values(), field.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(field),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        _ => arrow_cast::cast(array, target),
    }
}

/// Recursive builder over rows of optional values (`None` = the parent is null). `row_of`
/// maps an element index to the batch row, for error reports inside lists.
fn build(
    values: &[Option<&Value>],
    data_type: &DataType,
    errors: &mut Vec<CoerceError>,
    row_of: &dyn Fn(usize) -> usize,
    path: &str,
) -> ArrayRef {
    let len = values.len();
    // Values that already have the column's type are appended as they are (borrowed); only the
    // others go through `coerce_value`.
    macro_rules! leaf {
        ($builder:expr, $fits:expr, $push:expr) => {{
            let mut builder = $builder;
            for (i, value) in values.iter().copied().enumerate() {
                #[allow(
                    clippy::redundant_closure_call,
                    reason = "the macro takes the type test and the push as closures"
                )]
                match value {
                    None | Some(Value::Null) => $push(&mut builder, None),
                    Some(v) if $fits(v) => $push(&mut builder, Some(v)),
                    Some(v) => match coerce_value(v.clone(), data_type) {
                        Ok(Value::Null) => $push(&mut builder, None),
                        Ok(coerced) => $push(&mut builder, Some(&coerced)),
                        Err(message) => {
                            errors.push(CoerceError {
                                row: row_of(i),
                                path: path.to_owned(),
                                message,
                            });
                            $push(&mut builder, None)
                        }
                    },
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    match data_type {
        DataType::Null => Arc::new(NullArray::new(len)),
        DataType::Boolean => leaf!(
            BooleanBuilder::with_capacity(len),
            |v: &Value| matches!(v, Value::Bool(_)),
            |b: &mut BooleanBuilder, v: Option<&Value>| {
                b.append_option(match v {
                    Some(Value::Bool(x)) => Some(*x),
                    _ => None,
                })
            }
        ),
        DataType::Int64 => leaf!(
            Int64Builder::with_capacity(len),
            |v: &Value| matches!(v, Value::Int(_)),
            |b: &mut Int64Builder, v: Option<&Value>| {
                b.append_option(match v {
                    Some(Value::Int(x)) => Some(*x),
                    _ => None,
                })
            }
        ),
        DataType::Float64 => leaf!(
            Float64Builder::with_capacity(len),
            |v: &Value| matches!(v, Value::Float(_) | Value::Int(_)),
            |b: &mut Float64Builder, v: Option<&Value>| {
                b.append_option(match v {
                    Some(Value::Float(x)) => Some(*x),
                    Some(Value::Int(x)) => Some(*x as f64),
                    _ => None,
                })
            }
        ),
        DataType::Utf8 => leaf!(
            StringBuilder::with_capacity(len, len * 16),
            |v: &Value| matches!(v, Value::Str(_)),
            |b: &mut StringBuilder, v: Option<&Value>| {
                b.append_option(match v {
                    Some(Value::Str(x)) => Some(x.as_str()),
                    _ => None,
                })
            }
        ),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            leaf!(
                TimestampMicrosecondBuilder::with_capacity(len).with_timezone_opt(tz.clone()),
                |v: &Value| matches!(v, Value::DateTime(_)),
                |b: &mut TimestampMicrosecondBuilder, v: Option<&Value>| {
                    b.append_option(match v {
                        Some(Value::DateTime(dt)) => Some(dt.timestamp_micros()),
                        _ => None,
                    })
                }
            )
        }
        DataType::Date32 => leaf!(
            Date32Builder::with_capacity(len),
            |v: &Value| matches!(v, Value::DateTime(_)),
            |b: &mut Date32Builder, v: Option<&Value>| {
                b.append_option(match v {
                    Some(Value::DateTime(dt)) => Some(date32(dt)),
                    _ => None,
                })
            }
        ),
        DataType::Struct(fields) => {
            let rows = values;
            let mut validity = Vec::with_capacity(len);
            for (i, value) in rows.iter().enumerate() {
                let valid = match value {
                    None | Some(Value::Null) => false,
                    Some(Value::Object(_)) => true,
                    Some(other) => {
                        errors.push(CoerceError {
                            row: row_of(i),
                            path: path.to_owned(),
                            message: format!(
                                "cannot convert {} to an object",
                                crate::functions::describe_value(other)
                            ),
                        });
                        false
                    }
                };
                validity.push(valid);
            }
            let mut children = Vec::with_capacity(fields.len());
            for field in fields {
                let child_path = if path.is_empty() {
                    field.name().clone()
                } else {
                    format!("{path}.{}", field.name())
                };
                let child_values: Vec<Option<&Value>> = rows
                    .iter()
                    .zip(&validity)
                    .map(|(value, valid)| match value {
                        Some(object) if *valid => {
                            Some(object.get(field.name()).unwrap_or(&Value::Null))
                        }
                        _ => None,
                    })
                    .collect();
                children.push(build(
                    &child_values,
                    field.data_type(),
                    errors,
                    row_of,
                    &child_path,
                ));
            }
            let nulls = NullBuffer::from(validity);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            match StructArray::try_new(nullable_fields(fields), children, nulls) {
                Ok(array) => Arc::new(array),
                Err(_) => new_null_array(&nullable_type(data_type), len),
            }
        }
        DataType::List(item) => {
            let rows = values;
            let mut lengths = Vec::with_capacity(len);
            let mut validity = Vec::with_capacity(len);
            let mut flat: Vec<&Value> = Vec::new();
            let mut flat_rows: Vec<usize> = Vec::new();
            for (i, value) in rows.iter().enumerate() {
                match value {
                    Some(Value::Array(items)) => {
                        lengths.push(items.len());
                        validity.push(true);
                        flat.extend(items.iter());
                        flat_rows.extend(std::iter::repeat_n(row_of(i), items.len()));
                    }
                    None | Some(Value::Null) => {
                        lengths.push(0);
                        validity.push(false);
                    }
                    Some(other) => {
                        errors.push(CoerceError {
                            row: row_of(i),
                            path: path.to_owned(),
                            message: format!(
                                "cannot convert {} to an array",
                                crate::functions::describe_value(other)
                            ),
                        });
                        lengths.push(0);
                        validity.push(false);
                    }
                }
            }
            let item_path = format!("{path}[]");
            let flat: Vec<Option<&Value>> = flat.into_iter().map(Some).collect();
            let child = build(
                &flat,
                item.data_type(),
                errors,
                &|i| flat_rows[i],
                &item_path,
            );
            let nulls = NullBuffer::from(validity);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            match ListArray::try_new(
                Arc::new(nullable_field(item)),
                OffsetBuffer::from_lengths(lengths),
                child,
                nulls,
            ) {
                Ok(array) => Arc::new(array),
                Err(_) => new_null_array(&nullable_type(data_type), len),
            }
        }
        other => {
            // Types a target schema never produces (a source-derived Int32, a Decimal...):
            // build text and let arrow-cast convert it.
            let text = build(values, &DataType::Utf8, errors, row_of, path);
            arrow_cast::cast(&text, other).unwrap_or_else(|_| new_null_array(other, len))
        }
    }
}

fn date32(dt: &DateTime<FixedOffset>) -> i32 {
    use chrono::Datelike;
    dt.date_naive().num_days_from_ce() - EPOCH_DAYS_FROM_CE
}
