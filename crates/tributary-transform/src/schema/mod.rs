//! Target schemas: JSON schema (XDM-like) to Arrow types, and coercion to destination types.
//!
//! Type mapping: `string` → Utf8 (`format: date-time` → Timestamp(µs, "UTC"), `format: date`
//! → Date32), `integer` → Int64, `number` → Float64, `boolean` → Boolean, `object` with
//! `properties` → Struct, `object` without properties (a free-form map) → Utf8 holding JSON
//! text, `array` → List of its `items`. A name listed in `required` becomes a non-nullable
//! field. `allOf` of inline schemas is merged; `$ref` must already be expanded (Adobe's
//! `xed-full` content type), so a `$ref` is an error that says so.
//!
//! Coercion ([`coerce_value`], [`values_to_array`], [`coerce_array`]) applies the implicit
//! conversions of the reference: numbers ↔ strings, string → boolean word lists, string →
//! date-time through the ordered pattern list, epoch milliseconds → date-time.

mod arrow_values;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value as Json;

pub use arrow_values::{
    CoerceError, array_value, coerce_array, coerce_value, row_to_json, values_to_array,
};
pub(crate) use arrow_values::{conform_array, nullable_field, nullable_type};

/// A JSON schema that cannot be turned into Arrow types; `pointer` is the JSON pointer of the
/// offending node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub pointer: String,
    pub message: String,
}

/// The Arrow type of a UTC timestamp column. The zone is spelled as an offset
/// ([`crate::decode::UTC_TIMEZONE`]) so that arrow-json and arrow-cast handle it without the
/// time-zone database; Parquet stores it as UTC-adjusted either way.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(
        TimeUnit::Microsecond,
        Some(crate::decode::UTC_TIMEZONE.into()),
    )
}

/// Converts a JSON schema whose root is an object into an Arrow schema; field order is the
/// order of `properties`.
pub fn json_schema_to_arrow(schema: &Json) -> Result<Schema, SchemaError> {
    let root = merged_object(schema, "")?;
    match root.properties {
        Some(properties) => Ok(Schema::new(object_fields(&properties, &root.required, "")?)),
        None => Err(SchemaError::new(
            "",
            "the root of a target schema must be an object with `properties`",
        )),
    }
}

/// An object schema with `allOf` parts merged.
struct ObjectSchema {
    properties: Option<serde_json::Map<String, Json>>,
    required: Vec<String>,
}

fn merged_object(schema: &Json, pointer: &str) -> Result<ObjectSchema, SchemaError> {
    let Json::Object(map) = schema else {
        return Err(SchemaError::new(
            pointer,
            format!("expected a schema object, got {}", json_type(schema)),
        ));
    };
    if map.contains_key("$ref") {
        return Err(SchemaError::new(
            &format!("{pointer}/$ref"),
            "`$ref` is not resolved here: give the expanded schema (xed-full)",
        ));
    }
    let mut properties: Option<serde_json::Map<String, Json>> = None;
    let mut required = Vec::new();
    if let Some(all_of) = map.get("allOf") {
        let Json::Array(parts) = all_of else {
            return Err(SchemaError::new(
                &format!("{pointer}/allOf"),
                "`allOf` must be an array",
            ));
        };
        for (i, part) in parts.iter().enumerate() {
            let merged = merged_object(part, &format!("{pointer}/allOf/{i}"))?;
            if let Some(props) = merged.properties {
                properties
                    .get_or_insert_with(serde_json::Map::new)
                    .extend(props);
            }
            required.extend(merged.required);
        }
    }
    match map.get("properties") {
        Some(Json::Object(props)) => properties
            .get_or_insert_with(serde_json::Map::new)
            .extend(props.clone()),
        Some(other) => {
            return Err(SchemaError::new(
                &format!("{pointer}/properties"),
                format!("`properties` must be an object, got {}", json_type(other)),
            ));
        }
        None => {}
    }
    match map.get("required") {
        Some(Json::Array(names)) => {
            for (i, name) in names.iter().enumerate() {
                match name {
                    Json::String(name) => required.push(name.clone()),
                    other => {
                        return Err(SchemaError::new(
                            &format!("{pointer}/required/{i}"),
                            format!("expected a property name, got {}", json_type(other)),
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(SchemaError::new(
                &format!("{pointer}/required"),
                format!(
                    "`required` must be an array of names, got {}",
                    json_type(other)
                ),
            ));
        }
        None => {}
    }
    Ok(ObjectSchema {
        properties,
        required,
    })
}

fn object_fields(
    properties: &serde_json::Map<String, Json>,
    required: &[String],
    pointer: &str,
) -> Result<Vec<Field>, SchemaError> {
    let mut fields = Vec::with_capacity(properties.len());
    for (name, schema) in properties {
        let child_pointer = format!("{pointer}/properties/{}", escape_pointer(name));
        let data_type = schema_type(schema, &child_pointer)?;
        let is_required = required.iter().any(|r| r == name);
        fields.push(Field::new(name, data_type, !is_required));
    }
    Ok(fields)
}

fn schema_type(schema: &Json, pointer: &str) -> Result<DataType, SchemaError> {
    let Json::Object(map) = schema else {
        return Err(SchemaError::new(
            pointer,
            format!("expected a schema object, got {}", json_type(schema)),
        ));
    };
    if map.contains_key("$ref") {
        return Err(SchemaError::new(
            &format!("{pointer}/$ref"),
            "`$ref` is not resolved here: give the expanded schema (xed-full)",
        ));
    }
    let declared = match map.get("type") {
        Some(Json::String(t)) => Some(t.as_str()),
        // `["string", "null"]`: nullability is decided by `required`, so take the non-null type.
        Some(Json::Array(types)) => {
            let non_null: Vec<&str> = types
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect();
            match non_null.as_slice() {
                [one] => Some(*one),
                _ => {
                    return Err(SchemaError::new(
                        &format!("{pointer}/type"),
                        "a union of several non-null types is not supported: use one type",
                    ));
                }
            }
        }
        Some(other) => {
            return Err(SchemaError::new(
                &format!("{pointer}/type"),
                format!("`type` must be a string, got {}", json_type(other)),
            ));
        }
        None if map.contains_key("properties") || map.contains_key("allOf") => Some("object"),
        None if map.contains_key("items") => Some("array"),
        None => None,
    };
    let format = map
        .get("format")
        .and_then(Json::as_str)
        .or_else(|| map.get("meta:xdmType").and_then(Json::as_str));
    Ok(match declared {
        Some("string") | None => match format {
            Some("date-time") => timestamp_type(),
            Some("date") => DataType::Date32,
            _ => DataType::Utf8,
        },
        Some("integer") => DataType::Int64,
        Some("number") => DataType::Float64,
        Some("boolean") => DataType::Boolean,
        Some("object") => {
            let object = merged_object(schema, pointer)?;
            match object.properties {
                Some(props) if !props.is_empty() => DataType::Struct(Fields::from(object_fields(
                    &props,
                    &object.required,
                    pointer,
                )?)),
                _ => DataType::Utf8,
            }
        }
        Some("array") => {
            let item_type = match map.get("items") {
                Some(items) => schema_type(items, &format!("{pointer}/items"))?,
                None => DataType::Utf8,
            };
            DataType::List(Arc::new(Field::new("item", item_type, true)))
        }
        Some(other) => {
            return Err(SchemaError::new(
                &format!("{pointer}/type"),
                format!(
                    "unknown type {other:?}: expected string, integer, number, boolean, object or array"
                ),
            ));
        }
    })
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

impl SchemaError {
    fn new(pointer: &str, message: impl Into<String>) -> SchemaError {
        SchemaError {
            pointer: pointer.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{pointer}: {}", self.message)
    }
}

impl std::error::Error for SchemaError {}
