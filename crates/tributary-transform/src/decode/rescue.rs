//! The rescue path of a page whose values do not all fit the schema: each record is parsed,
//! every value that its column cannot take is moved out (the field becomes null) into the
//! record's `_rescued_data` (a JSON object of field path to the value's JSON text), and the
//! cleaned records are decoded again on the fast path.
//!
//! Only pages that fail the fast path come here, so its cost (a parse into `serde_json`
//! values) is paid for misfits only. The rules of what fits mirror the leaf decoders (`leaf`):
//! a text column takes any value (as JSON text), an integer column only integers that fit
//! `i64`, a float column any number, timestamps and dates parseable strings or integers.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Fields};
use serde_json::{Map, Value};

use super::leaf::{text_fits_date, text_fits_timestamp};
use super::{DecodeError, tape};
use crate::dataset::RESCUED_DATA;

/// A page with its misfits moved into `_rescued_data`.
pub(super) struct Cleaned {
    pub ndjson: Vec<u8>,
    /// Records that had at least one value rescued.
    pub rescued_records: u64,
    /// Rescued values per field path (`[]` for list elements) and the type they did not fit.
    pub counts: BTreeMap<String, (DataType, u64)>,
}

/// Cleans every record of `bytes` against `fields`. `ignore_unknown`: fields the schema lacks
/// stay in the record (a known schema ignores them); otherwise they are rescued too.
pub(super) fn clean_page(
    page_idx: u64,
    bytes: &[u8],
    fields: &Fields,
    ignore_unknown: bool,
) -> Result<Cleaned, DecodeError> {
    let mut cleaned = Cleaned {
        ndjson: Vec::with_capacity(bytes.len() + bytes.len() / 8),
        rescued_records: 0,
        counts: BTreeMap::new(),
    };
    for line in tape::record_lines(bytes) {
        let mut record: Value = match serde_json::from_slice(line) {
            Ok(record) => record,
            // The tape found the page valid, so this cannot happen; say where if it does.
            Err(err) => {
                return Err(DecodeError::SchemaMismatch {
                    page_idx,
                    message: format!("a record could not be parsed for rescue: {err}"),
                });
            }
        };
        let Value::Object(object) = &mut record else {
            return Err(DecodeError::SchemaMismatch {
                page_idx,
                message: "a record is not a JSON object".to_owned(),
            });
        };
        let mut rescued = Map::new();
        let mut walk = Walk {
            rescued: &mut rescued,
            counts: &mut cleaned.counts,
            ignore_unknown,
        };
        walk.object(object, fields, "");
        if !rescued.is_empty() {
            cleaned.rescued_records += 1;
            object.insert(
                RESCUED_DATA.to_owned(),
                Value::String(Value::Object(rescued).to_string()),
            );
        }
        // Serializing a parsed value cannot fail.
        serde_json::to_writer(&mut cleaned.ndjson, &record).map_err(|err| {
            DecodeError::SchemaMismatch {
                page_idx,
                message: format!("a rescued record could not be written: {err}"),
            }
        })?;
        cleaned.ndjson.push(b'\n');
    }
    Ok(cleaned)
}

struct Walk<'a> {
    rescued: &'a mut Map<String, Value>,
    counts: &'a mut BTreeMap<String, (DataType, u64)>,
    ignore_unknown: bool,
}

impl Walk<'_> {
    fn object(&mut self, object: &mut Map<String, Value>, fields: &Fields, prefix: &str) {
        let mut unknown = Vec::new();
        for (name, value) in object.iter_mut() {
            let path = join(prefix, name);
            match fields.find(name) {
                Some((_, field)) => self.value(value, field.data_type(), &path),
                None if self.ignore_unknown || (prefix.is_empty() && name == RESCUED_DATA) => {}
                None => unknown.push(name.clone()),
            }
        }
        for name in unknown {
            if let Some(value) = object.remove(&name) {
                let path = join(prefix, &name);
                self.rescue(value, &DataType::Null, path);
            }
        }
    }

    fn value(&mut self, value: &mut Value, data_type: &DataType, path: &str) {
        if value.is_null() {
            return;
        }
        let fits = match (data_type, &mut *value) {
            (DataType::Utf8 | DataType::LargeUtf8, _) => true,
            (DataType::Null, Value::Object(object)) => object.is_empty(),
            (DataType::Boolean, Value::Bool(_)) => true,
            (DataType::Int64, Value::Number(number)) => number.as_i64().is_some(),
            (DataType::Float64, Value::Number(_)) => true,
            (DataType::Timestamp(_, zone), Value::String(text)) => {
                text_fits_timestamp(text, zone.as_deref())
            }
            (DataType::Timestamp(..), Value::Number(number)) => number.as_i64().is_some(),
            (DataType::Date32, Value::String(text)) => text_fits_date(text),
            (DataType::Date32, Value::Number(number)) => {
                number.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
            }
            (DataType::Struct(children), Value::Object(object)) => {
                self.object(object, children, path);
                true
            }
            (DataType::List(element) | DataType::LargeList(element), Value::Array(items)) => {
                for (index, item) in items.iter_mut().enumerate() {
                    self.value(item, element.data_type(), &format!("{path}[{index}]"));
                }
                true
            }
            (
                DataType::Null
                | DataType::Boolean
                | DataType::Int64
                | DataType::Float64
                | DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Struct(_)
                | DataType::List(_)
                | DataType::LargeList(_),
                _,
            ) => false,
            // Types the decoder never builds columns of: leave them to arrow-json.
            _ => true,
        };
        if !fits {
            let taken = std::mem::take(value);
            self.rescue(taken, data_type, path.to_owned());
        }
    }

    fn rescue(&mut self, value: Value, expected: &DataType, path: String) {
        let entry = self
            .counts
            .entry(warning_path(&path))
            .or_insert_with(|| (expected.clone(), 0));
        entry.1 += 1;
        self.rescued.insert(path, Value::String(value.to_string()));
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `tags[3].name` -> `tags[].name`, the path form of warnings.
fn warning_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}
