//! Our struct decoder, plugged into arrow-json for every struct (the record itself included):
//! arrow-json's own object-mode struct decoder with a cheaper field lookup.
//!
//! Records of one API come with their keys in one order, so the field of a key is looked for
//! first right after the field of the key before it: one comparison of names per key instead of
//! a hash of the key (16 fields and more) or a scan over the fields (fewer). A miss falls back to
//! that lookup. Nothing else differs from arrow-json's decoder, so the arrays and the errors are
//! the same:
//! - a key names the first field of that name; a key given twice keeps its last value;
//! - an unknown key fails in strict mode ("column '…' missing from schema") and is skipped
//!   otherwise;
//! - `null` is a null struct when the struct is nullable; any other non-object fails, or is a
//!   null struct when type conflicts are ignored;
//! - a non-nullable child must have no null that its struct does not mask.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, StructArray};
use arrow_buffer::NullBufferBuilder;
use arrow_json::StructMode;
use arrow_json::reader::{ArrayDecoder, DecoderContext, Tape, TapeElement};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields};

/// Below this many fields a key is found by a scan, from this many on by a hash map.
const MAP_FROM_FIELDS: usize = 16;

/// Decodes objects into a struct array, one child decoder per field.
pub(super) struct StructDecoder {
    fields: Fields,
    decoders: Vec<Box<dyn ArrayDecoder>>,
    /// Per field: no field before it has its name (only such a field can be a key's field).
    first_of_name: Vec<bool>,
    /// Name to its first field, when there are many fields.
    index: Option<HashMap<String, usize>>,
    strict_mode: bool,
    ignore_type_conflicts: bool,
    is_nullable: bool,
    /// The tape position of each field's value per row, field by field; 0 (the tape's null)
    /// where a row lacks the field.
    positions: Vec<u32>,
}

impl StructDecoder {
    /// The decoder of the struct `field`; its children's decoders come from `ctx` (and so from
    /// our factory). `None` for a field that is not a struct, or when structs are read from
    /// JSON lists (a mode this decoder does not do).
    pub(super) fn for_field(
        ctx: &DecoderContext,
        field: &FieldRef,
        is_nullable: bool,
    ) -> Result<Option<Self>, ArrowError> {
        let DataType::Struct(fields) = field.data_type() else {
            return Ok(None);
        };
        if ctx.struct_mode() != StructMode::ObjectOnly {
            return Ok(None);
        }
        let decoders = fields
            .iter()
            .map(|child| {
                // A nullable struct lets its children hold nulls; `decode` checks that a
                // non-nullable child's nulls are all masked by the struct's.
                ctx.make_decoder(child, child.is_nullable() || is_nullable)
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let mut first_of_name = Vec::with_capacity(fields.len());
        for (idx, child) in fields.iter().enumerate() {
            let seen_before = fields[..idx].iter().any(|f| f.name() == child.name());
            first_of_name.push(!seen_before);
        }
        let index = (fields.len() >= MAP_FROM_FIELDS).then(|| {
            let mut index = HashMap::with_capacity(fields.len());
            for (idx, child) in fields.iter().enumerate() {
                index.entry(child.name().clone()).or_insert(idx);
            }
            index
        });
        Ok(Some(Self {
            fields: fields.clone(),
            decoders,
            first_of_name,
            index,
            strict_mode: ctx.strict_mode(),
            ignore_type_conflicts: ctx.ignore_type_conflicts(),
            is_nullable,
            positions: Vec::new(),
        }))
    }

    /// The first field named `key`, looked up without a guess.
    fn lookup(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.fields.iter().position(|f| f.name() == key),
        }
    }
}

impl ArrayDecoder for StructDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let rows = pos.len();
        let field_count = self.fields.len();
        let cells = field_count.checked_mul(rows).ok_or_else(|| {
            ArrowError::JsonError(format!(
                "too many values for one batch: {rows} rows of {field_count} fields"
            ))
        })?;
        self.positions.clear();
        self.positions.resize(cells, 0);
        let mut nulls = self.is_nullable.then(|| NullBufferBuilder::new(rows));
        // The field after the last key's: where the next key is most likely found.
        let mut guess = 0;
        for (row, &start) in pos.iter().enumerate() {
            let end = match (tape.get(start), nulls.as_mut()) {
                (TapeElement::StartObject(end), None) => end,
                (TapeElement::StartObject(end), Some(nulls)) => {
                    nulls.append_non_null();
                    end
                }
                (TapeElement::Null, Some(nulls)) => {
                    nulls.append_null();
                    continue;
                }
                (_, Some(nulls)) if self.ignore_type_conflicts => {
                    nulls.append_null();
                    continue;
                }
                (_, _) => return Err(tape.error(start, "{")),
            };
            let mut cur = start + 1;
            while cur < end {
                let key = match tape.get(cur) {
                    TapeElement::String(idx) => tape.get_string(idx),
                    _ => return Err(tape.error(cur, "field name")),
                };
                let is_guess = guess < field_count
                    && self.first_of_name[guess]
                    && self.fields[guess].name() == key;
                let field_idx = if is_guess {
                    Some(guess)
                } else {
                    self.lookup(key)
                };
                match field_idx {
                    Some(idx) => {
                        self.positions[idx * rows + row] = cur + 1;
                        guess = idx + 1;
                    }
                    None if self.strict_mode => {
                        return Err(ArrowError::JsonError(format!(
                            "column '{key}' missing from schema",
                        )));
                    }
                    None => {}
                }
                cur = tape.next(cur + 1, "field value")?;
            }
        }

        let mut children = Vec::with_capacity(field_count);
        for (idx, (decoder, field)) in self.decoders.iter_mut().zip(self.fields.iter()).enumerate()
        {
            let positions = &self.positions[idx * rows..(idx + 1) * rows];
            let child = decoder.decode(tape, positions).map_err(|err| match err {
                ArrowError::JsonError(s) => {
                    ArrowError::JsonError(format!("whilst decoding field '{}': {s}", field.name()))
                }
                other => other,
            })?;
            children.push(child);
        }
        let nulls = nulls.as_mut().and_then(NullBufferBuilder::finish);
        for (child, field) in children.iter().zip(self.fields.iter()) {
            if let Some(child_nulls) = child.nulls() {
                let masked =
                    field.is_nullable() || nulls.as_ref().is_some_and(|n| n.contains(child_nulls));
                if !masked {
                    return Err(ArrowError::JsonError(format!(
                        "Encountered unmasked nulls in non-nullable StructArray child: {field}"
                    )));
                }
            }
        }
        let array = StructArray::try_new_with_length(self.fields.clone(), children, nulls, rows)?;
        Ok(Arc::new(array))
    }
}

#[cfg(test)]
mod tests {
    //! Ours against arrow-json's own struct decoder, on the same lines: the same batches, or
    //! the same error.

    use super::*;
    use arrow_array::RecordBatch;
    use arrow_json::reader::DecoderFactory;
    use arrow_schema::{Field, Schema};

    #[derive(Debug)]
    struct Ours;

    impl DecoderFactory for Ours {
        fn make_default_decoder(
            &self,
            ctx: &DecoderContext,
            field: &FieldRef,
            is_nullable: bool,
        ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
            Ok(StructDecoder::for_field(ctx, field, is_nullable)?
                .map(|d| Box::new(d) as Box<dyn ArrayDecoder>))
        }
    }

    fn read(
        schema: &Arc<Schema>,
        lines: &str,
        strict: bool,
        ours: bool,
    ) -> Result<Vec<RecordBatch>, String> {
        let mut builder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(3)
            .with_strict_mode(strict);
        if ours {
            builder = builder.with_decoder_factory(Arc::new(Ours));
        }
        let reader = builder.build(lines.as_bytes()).map_err(|e| e.to_string())?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }

    /// Decodes `lines` both ways and returns ours, after asserting it equals arrow-json's.
    fn same(schema: &Arc<Schema>, lines: &str, strict: bool) -> Result<Vec<RecordBatch>, String> {
        let theirs = read(schema, lines, strict, false);
        let ours = read(schema, lines, strict, true);
        assert_eq!(ours, theirs, "on {lines}");
        ours
    }

    fn address() -> DataType {
        DataType::Struct(Fields::from(vec![
            Field::new("city", DataType::Utf8, true),
            Field::new("zip", DataType::Int64, false),
        ]))
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("address", address(), true),
        ]))
    }

    #[test]
    fn keys_in_any_order_missing_or_given_twice_decode_like_arrow_json() {
        let lines = concat!(
            r#"{"id":1,"name":"a","address":{"city":"x","zip":10}}"#,
            "\n",
            r#"{"address":{"zip":11,"city":"y"},"name":"b","id":2}"#,
            "\n",
            r#"{"id":3}"#,
            "\n",
            r#"{"id":4,"name":"c","name":"d","address":null}"#,
            "\n",
            r#"{"name":"e","id":5,"address":{"zip":12,"zip":13}}"#,
            "\n",
            r#"{"id":6,"name":null,"address":{"city":"z","zip":14}}"#,
            "\n",
            r#"{"id":7,"extra":true,"address":{"zip":15,"other":[1,{"a":2}]}}"#,
            "\n",
        );
        let batches = same(&schema(), lines, false).expect("lines decode");
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 7);
        // The duplicate keeps its last value.
        let second = batches[1].column(1);
        let names = second
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(names.value(0), "d");
    }

    #[test]
    fn an_unknown_key_in_strict_mode_fails_like_arrow_json() {
        let lines = "{\"id\":1,\"address\":{\"zip\":1,\"street\":\"s\"}}\n";
        let err = same(&schema(), lines, true).unwrap_err();
        assert!(err.contains("column 'street' missing from schema"), "{err}");
    }

    #[test]
    fn wrong_kinds_and_unmasked_nulls_fail_like_arrow_json() {
        for lines in [
            "{\"id\":1,\"address\":[1]}\n",
            "{\"id\":1,\"address\":\"x\"}\n",
            "{\"id\":1,\"address\":{\"city\":\"x\"}}\n",
            "{\"name\":\"no id\"}\n",
            "{\"id\":null}\n",
        ] {
            same(&schema(), lines, false).unwrap_err();
        }
    }

    #[test]
    fn a_wide_struct_found_by_its_map_decodes_like_arrow_json() {
        let names: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Int64, true))
                .collect::<Vec<_>>(),
        ));
        let mut lines = String::new();
        for row in 0..10 {
            let mut keys: Vec<&String> = names.iter().collect();
            // Each row its own order, some rows without a few fields.
            keys.rotate_left(row * 7 % 40);
            keys.truncate(40 - row);
            let pairs: Vec<String> = keys.iter().map(|k| format!("\"{k}\":{row}")).collect();
            lines.push_str(&format!("{{{}}}\n", pairs.join(",")));
        }
        let batches = same(&schema, &lines, true).expect("lines decode");
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
    }

    #[test]
    fn two_fields_of_one_name_decode_like_arrow_json() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
            Field::new("a", DataType::Int64, true),
        ]));
        let lines = "{\"a\":1,\"b\":2,\"a\":3}\n{\"b\":4,\"a\":5}\n";
        same(&schema, lines, true).expect("lines decode");
    }
}
