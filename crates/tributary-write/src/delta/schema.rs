//! Arrow → Delta schema mapping of the types the writer produces, and the growth of a Delta
//! table's schema as the dataset schema grows.
//!
//! The mapping is a closed list (see [`delta_type`]): strings, 64/32-bit integers, doubles and
//! floats, booleans, binary, dates, UTC timestamps, decimals, structs and lists — nested ones too,
//! which covers `_rescued_data` (a string). Anything else (the `Null` type the writer never
//! writes, unsigned integers, time-zone-less timestamps that would need a newer Delta protocol)
//! is an error naming the column, never a silent approximation.
//!
//! Growth ([`merged_schema`]) follows the dataset schema's rule: columns keep their order and
//! type, new columns (top-level or nested in a struct, or in a list's struct) are appended as
//! nullable, and `long` widens to `double`. Every other type change is an error. The partition
//! column [`BATCH_COLUMN`] is the table's last column and cannot also be a data column.

use arrow_schema::{DataType as ArrowType, Field, Schema, TimeUnit};
use deltalake::kernel::{ArrayType, DataType, DecimalType, StructField, StructType};

/// The partition column that names each file's batch: `partitionValues: {"batch": id}`, so a
/// reader selects a batch with `WHERE batch = '…'` and a file's folder is `batch={id}/`.
pub const BATCH_COLUMN: &str = "batch";

/// The Delta schema of a table whose files have the Arrow schema `schema`: its columns, then the
/// partition column [`BATCH_COLUMN`]. Errors name the column (dotted path) and its Arrow type.
pub fn table_schema(schema: &Schema) -> Result<StructType, String> {
    let mut fields = Vec::with_capacity(schema.fields().len() + 1);
    for field in schema.fields() {
        if field.name() == BATCH_COLUMN {
            return Err(format!(
                "column `{BATCH_COLUMN}`: the name is taken by the Delta table's partition column (the batch id); rename the field with a mapping set"
            ));
        }
        fields.push(delta_field(field, field.name())?);
    }
    fields.push(StructField::new(BATCH_COLUMN, DataType::STRING, true));
    StructType::try_new(fields).map_err(|err| format!("building the Delta schema: {err}"))
}

/// The Delta type of one Arrow type; `path` names the column in errors.
pub fn delta_type(data_type: &ArrowType, path: &str) -> Result<DataType, String> {
    Ok(match data_type {
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::STRING,
        ArrowType::Int64 => DataType::LONG,
        ArrowType::Int32 => DataType::INTEGER,
        ArrowType::Int16 => DataType::SHORT,
        ArrowType::Int8 => DataType::BYTE,
        ArrowType::Float64 => DataType::DOUBLE,
        ArrowType::Float32 => DataType::FLOAT,
        ArrowType::Boolean => DataType::BOOLEAN,
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => DataType::BINARY,
        ArrowType::Date32 => DataType::DATE,
        // Delta's `timestamp` is an instant (UTC-adjusted); Parquet keeps the unit, and readers
        // convert seconds and milliseconds to its microseconds.
        ArrowType::Timestamp(
            TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond,
            Some(_),
        ) => DataType::TIMESTAMP,
        ArrowType::Decimal128(precision, scale) => {
            let scale = u8::try_from(*scale).map_err(|_| {
                format!(
                    "column `{path}`: decimal scale {scale} is negative, which Delta cannot store"
                )
            })?;
            DecimalType::try_new(*precision, scale)
                .map(|decimal| DataType::Primitive(decimal.into()))
                .map_err(|err| format!("column `{path}`: {err}"))?
        }
        ArrowType::Struct(fields) => {
            let mut delta_fields = Vec::with_capacity(fields.len());
            for field in fields {
                delta_fields.push(delta_field(field, &format!("{path}.{}", field.name()))?);
            }
            DataType::Struct(Box::new(
                StructType::try_new(delta_fields)
                    .map_err(|err| format!("column `{path}`: {err}"))?,
            ))
        }
        ArrowType::List(item) | ArrowType::LargeList(item) => {
            DataType::Array(Box::new(ArrayType::new(
                delta_type(item.data_type(), &format!("{path}[]"))?,
                item.is_nullable(),
            )))
        }
        other => {
            return Err(format!(
                "column `{path}` has Arrow type {other}, which a Delta table of tributary does not store: expected a string, integer, floating-point, boolean, binary, date, UTC timestamp, decimal, struct or list column"
            ));
        }
    })
}

/// The table schema after a batch whose schema is `batch` (from [`table_schema`]): `None` when
/// `current` already holds every column of the batch with its type, else the grown schema.
pub fn merged_schema(
    current: &StructType,
    batch: &StructType,
) -> Result<Option<StructType>, String> {
    let merged = merge_struct(current, batch, "")?;
    if merged == *current {
        return Ok(None);
    }
    // The partition column stays last, where `table_schema` puts it.
    let (partition, data): (Vec<StructField>, Vec<StructField>) = merged
        .into_fields()
        .partition(|field| field.name() == BATCH_COLUMN);
    let merged = StructType::try_new(data.into_iter().chain(partition))
        .map_err(|err| format!("building the grown Delta schema: {err}"))?;
    Ok(Some(merged))
}

fn delta_field(field: &Field, path: &str) -> Result<StructField, String> {
    Ok(StructField::new(
        field.name(),
        delta_type(field.data_type(), path)?,
        field.is_nullable(),
    ))
}

fn merge_struct(
    current: &StructType,
    batch: &StructType,
    prefix: &str,
) -> Result<StructType, String> {
    let mut fields = Vec::with_capacity(current.fields().len());
    for field in current.fields() {
        let path = format!("{prefix}{}", field.name());
        let merged = match batch.field(field.name()) {
            None => field.clone(),
            Some(incoming) => StructField::new(
                field.name(),
                merge_type(field.data_type(), incoming.data_type(), &path)?,
                field.is_nullable() || incoming.is_nullable(),
            ),
        };
        fields.push(merged);
    }
    for incoming in batch.fields() {
        if current.field(incoming.name()).is_none() {
            // A column that earlier files lack reads as null in them.
            fields.push(StructField::new(
                incoming.name(),
                incoming.data_type().clone(),
                true,
            ));
        }
    }
    StructType::try_new(fields).map_err(|err| format!("column `{prefix}`: {err}"))
}

fn merge_type(current: &DataType, incoming: &DataType, path: &str) -> Result<DataType, String> {
    match (current, incoming) {
        (current, incoming) if current == incoming => Ok(current.clone()),
        // The dataset schema's one widening. Delta's type-widening feature does not list it, but
        // its readers (delta-kernel, DuckDB's delta_scan) read the earlier long files as double.
        (current, incoming) if *current == DataType::LONG && *incoming == DataType::DOUBLE => {
            Ok(DataType::DOUBLE)
        }
        (DataType::Struct(current), DataType::Struct(incoming)) => Ok(DataType::Struct(Box::new(
            merge_struct(current, incoming, &format!("{path}."))?,
        ))),
        (DataType::Array(current), DataType::Array(incoming)) => {
            Ok(DataType::Array(Box::new(ArrayType::new(
                merge_type(
                    current.element_type(),
                    incoming.element_type(),
                    &format!("{path}[]"),
                )?,
                current.contains_null() || incoming.contains_null(),
            ))))
        }
        (current, incoming) => Err(format!(
            "column `{path}` is {current} in the Delta table and {incoming} in the batch: expected the same type, a new column, or long widened to double"
        )),
    }
}
