//! The dynamic value of the expression language: what a field reference reads and what a
//! function returns when a calculated field is evaluated row by row.
//!
//! Objects keep their key order (a `Vec` of pairs, not a hash map) because the order of the
//! source record is the order users expect to see in previews and in derived schemas.

use chrono::{DateTime, FixedOffset, SecondsFormat};

/// One value of the expression language.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A date-time with its offset (Data Prep's `ZonedDateTime`).
    DateTime(DateTime<FixedOffset>),
    Array(Vec<Value>),
    /// An object or a map: keys in insertion order, unique.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The name used in error messages ("expected a string, got an array").
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::DateTime(_) => "date-time",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value of `key` in an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Inserts or replaces `key` in an object (keeps the position of an existing key).
    pub fn insert(entries: &mut Vec<(String, Value)>, key: String, value: Value) {
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => entries.push((key, value)),
        }
    }

    /// The implicit conversion to text used by string functions and `+` with a string:
    /// numbers and booleans print as themselves, date-times as ISO-8601, arrays and objects
    /// as JSON text. `None` for null.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(float_to_text(*f)),
            Value::DateTime(dt) => Some(datetime_to_text(dt)),
            Value::Array(_) | Value::Object(_) => Some(self.to_json().to_string()),
        }
    }

    /// The JSON form: date-times become ISO-8601 strings, non-finite floats null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::DateTime(dt) => serde_json::Value::String(datetime_to_text(dt)),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// From JSON: integers that fit i64 stay integers, other numbers become floats.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => n.as_f64().map_or(Value::Null, Value::Float),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Value::Array(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// Floats print without a trailing `.0` for whole numbers only when they are whole, the way
/// JSON writers do (`2.5`, `3`), so that `to_text(to_float("3"))` reads naturally.
pub(crate) fn float_to_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// ISO-8601 with the shortest exact fraction and `Z` for UTC, as Java's `ZonedDateTime` prints.
pub(crate) fn datetime_to_text(dt: &DateTime<FixedOffset>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
