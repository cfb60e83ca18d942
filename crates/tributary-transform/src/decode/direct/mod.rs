//! The direct decoder: a page's NDJSON bytes straight into Arrow builders in one pass, without
//! arrow-json's tape, for pages that fit the schema as it is.
//!
//! It accelerates the tape path and has no rules of its own. For a page it either returns
//! exactly the batches that the tape path (arrow-json's decoder with our leaf decoders, see
//! `leaf`) returns for it, or it declines and the page takes the tape path, which then decides
//! every error, warning, schema growth and rescue as before. It declines on anything but the
//! plain case:
//! - a value whose kind does not fit its column (the tape path fails, counts or rescues it);
//! - a field the schema lacks while the schema is inferred (it grows);
//! - a key given twice in one object, a non-object record, invalid UTF-8 anywhere;
//! - a string escape or surrogate that arrow-json refuses, a number the column cannot read;
//! - JSON that is malformed or that arrow-json only takes by leniency (a missing comma);
//! - a skipped value nested deeper than [`cursor::MAX_SKIP_DEPTH`].
//!
//! A schema with a type it does not build, a non-nullable field, duplicate field names or a
//! struct (or record) without fields gets no direct decoder at all ([`DirectDecoder::new`] is `None`).
//!
//! Invariants:
//! - what it accepts, the tape path accepts too, with equal batches (the differential tests in
//!   `direct::tests` hold it to that);
//! - a declined page leaves nothing behind: every builder is cleared;
//! - no panic on any input; recursion follows the schema's depth, plus at most
//!   [`cursor::MAX_SKIP_DEPTH`] for values it skips.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::Date32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, ListArray, NullArray,
    RecordBatch, RecordBatchOptions, StringArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_buffer::{BooleanBufferBuilder, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_cast::parse::Parser;
use arrow_schema::{DataType, FieldRef, Fields, SchemaRef, TimeUnit};

use super::leaf::{Mode, Zone, timestamp_from_text};

mod cursor;
#[cfg(test)]
mod tests;

use cursor::Cursor;

/// Structs with at least this many fields look keys up in a map rather than by a scan.
const FIELD_INDEX_THRESHOLD: usize = 16;

/// The direct decoder gave the page back; the tape path says what, if anything, is wrong.
#[derive(Debug)]
struct Decline;

type Step<T = ()> = Result<T, Decline>;

/// Decodes pages that fit one schema; built per schema generation.
pub(super) struct DirectDecoder {
    schema: SchemaRef,
    mode: Mode,
    batch_rows: usize,
    root: StructColumn,
}

impl DirectDecoder {
    /// A decoder for `schema`, or `None` when the schema has anything it does not decode.
    pub(super) fn new(schema: &SchemaRef, mode: Mode, batch_rows: usize) -> Option<Self> {
        if batch_rows == 0 {
            return None;
        }
        Some(Self {
            schema: schema.clone(),
            mode,
            batch_rows,
            root: StructColumn::new(schema.fields())?,
        })
    }

    /// The page's batches (`batch_rows` rows each, the last one shorter), or `None`: declined.
    pub(super) fn decode(&mut self, bytes: &[u8]) -> Option<Vec<RecordBatch>> {
        let decoded = self.decode_page(bytes);
        if decoded.is_err() {
            self.root.clear();
        }
        decoded.ok()
    }

    fn decode_page(&mut self, bytes: &[u8]) -> Step<Vec<RecordBatch>> {
        // UTF-8 is checked where bytes outside ASCII can be: text columns when their array is
        // built, timestamp and date text when parsed, keys and skipped strings when passed over.
        // Bytes outside strings must be ASCII JSON to be taken at all.
        let mut cursor = Cursor { bytes, pos: 0 };
        let mut chunks = Vec::new();
        loop {
            cursor.skip_whitespace();
            match cursor.next_byte() {
                None => break,
                Some(b'{') => self.root.parse_object(&mut cursor, self.mode)?,
                Some(_) => return Err(Decline),
            }
            if self.root.len == self.batch_rows {
                chunks.push(self.finish_batch()?);
            }
        }
        if self.root.len > 0 {
            chunks.push(self.finish_batch()?);
        }
        Ok(chunks)
    }

    fn finish_batch(&mut self) -> Step<RecordBatch> {
        let rows = self.root.len;
        let columns = self.root.finish_children()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|_| Decline)
    }
}

/// The builder of one column, by its Arrow type.
enum Column {
    /// A column seen only as `null` (or `{}`) so far: a count.
    Null(usize),
    Boolean {
        values: BooleanBufferBuilder,
        nulls: NullBufferBuilder,
    },
    Int64 {
        values: Vec<i64>,
        nulls: NullBufferBuilder,
    },
    Float64 {
        values: Vec<f64>,
        nulls: NullBufferBuilder,
    },
    Utf8 {
        offsets: Vec<i32>,
        data: Vec<u8>,
        nulls: NullBufferBuilder,
    },
    Timestamp {
        unit: TimeUnit,
        timezone: Option<Arc<str>>,
        zone: Zone,
        values: Vec<i64>,
        nulls: NullBufferBuilder,
    },
    Date32 {
        values: Vec<i32>,
        nulls: NullBufferBuilder,
    },
    Struct(Box<StructColumn>),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        items: Box<Column>,
        nulls: NullBufferBuilder,
    },
}

/// The builder of a struct column (or of the record itself).
struct StructColumn {
    fields: Fields,
    names: Vec<Box<[u8]>>,
    /// By name, for wide structs.
    index: Option<HashMap<Box<[u8]>, usize>>,
    children: Vec<Column>,
    nulls: NullBufferBuilder,
    len: usize,
}

impl Column {
    fn new(data_type: &DataType) -> Option<Self> {
        let nulls = || NullBufferBuilder::new(0);
        Some(match data_type {
            DataType::Null => Self::Null(0),
            DataType::Boolean => Self::Boolean {
                values: BooleanBufferBuilder::new(0),
                nulls: nulls(),
            },
            DataType::Int64 => Self::Int64 {
                values: Vec::new(),
                nulls: nulls(),
            },
            DataType::Float64 => Self::Float64 {
                values: Vec::new(),
                nulls: nulls(),
            },
            DataType::Utf8 => Self::Utf8 {
                offsets: vec![0],
                data: Vec::new(),
                nulls: nulls(),
            },
            DataType::Timestamp(unit, timezone) => Self::Timestamp {
                unit: *unit,
                timezone: timezone.clone(),
                zone: Zone::parse(timezone.as_deref()).ok()?,
                values: Vec::new(),
                nulls: nulls(),
            },
            DataType::Date32 => Self::Date32 {
                values: Vec::new(),
                nulls: nulls(),
            },
            DataType::Struct(fields) => Self::Struct(Box::new(StructColumn::new(fields)?)),
            DataType::List(field) if field.is_nullable() => Self::List {
                field: field.clone(),
                offsets: vec![0],
                items: Box::new(Self::new(field.data_type())?),
                nulls: nulls(),
            },
            _ => return None,
        })
    }

    fn len(&self) -> usize {
        match self {
            Self::Null(len) => *len,
            Self::Struct(column) => column.len,
            Self::Boolean { nulls, .. }
            | Self::Int64 { nulls, .. }
            | Self::Float64 { nulls, .. }
            | Self::Utf8 { nulls, .. }
            | Self::Timestamp { nulls, .. }
            | Self::Date32 { nulls, .. }
            | Self::List { nulls, .. } => nulls.len(),
        }
    }

    fn push_null(&mut self) {
        match self {
            Self::Null(len) => *len += 1,
            Self::Boolean { values, nulls } => {
                values.append(false);
                nulls.append_null();
            }
            Self::Int64 { values, nulls } | Self::Timestamp { values, nulls, .. } => {
                values.push(0);
                nulls.append_null();
            }
            Self::Float64 { values, nulls } => {
                values.push(0.0);
                nulls.append_null();
            }
            Self::Date32 { values, nulls } => {
                values.push(0);
                nulls.append_null();
            }
            Self::Utf8 {
                offsets,
                data,
                nulls,
            } => {
                // `data` never passes i32::MAX (checked on every append).
                offsets.push(data.len() as i32);
                nulls.append_null();
            }
            Self::Struct(column) => column.push_null(),
            Self::List { offsets, nulls, .. } => {
                let end = offsets.last().copied().unwrap_or(0);
                offsets.push(end);
                nulls.append_null();
            }
        }
    }

    /// Reads one value (after optional whitespace) into the column.
    fn parse_value(&mut self, cursor: &mut Cursor<'_>, mode: Mode) -> Step {
        cursor.skip_whitespace();
        let first = cursor.peek().ok_or(Decline)?;
        if first == b'n' {
            cursor.literal(b"null")?;
            self.push_null();
            return Ok(());
        }
        match self {
            // An empty object carries nothing, as the tape path's Null decoder takes it.
            Self::Null(len) => {
                cursor.expect(b'{')?;
                cursor.skip_whitespace();
                cursor.expect(b'}')?;
                *len += 1;
            }
            Self::Boolean { values, nulls } => {
                match first {
                    b't' => cursor.literal(b"true")?,
                    b'f' => cursor.literal(b"false")?,
                    _ => return Err(Decline),
                }
                values.append(first == b't');
                nulls.append_non_null();
            }
            Self::Int64 { values, nulls } => {
                values.push(cursor.number()?.parse().map_err(|_| Decline)?);
                nulls.append_non_null();
            }
            Self::Float64 { values, nulls } => {
                values.push(cursor.number()?.parse().map_err(|_| Decline)?);
                nulls.append_non_null();
            }
            Self::Utf8 {
                offsets,
                data,
                nulls,
            } => {
                cursor.expect(b'"')?;
                cursor.string_into(data)?;
                // 32-bit offsets: the tape path fails such a batch, so it is its to report.
                let end = i32::try_from(data.len()).map_err(|_| Decline)?;
                offsets.push(end);
                nulls.append_non_null();
            }
            Self::Timestamp {
                unit,
                zone,
                values,
                nulls,
                ..
            } => {
                let value = if first == b'"' {
                    cursor.pos += 1;
                    let text = cursor.string()?;
                    let text = std::str::from_utf8(&text).map_err(|_| Decline)?;
                    timestamp_from_text(zone, *unit, text)
                } else {
                    // Numbers are counts of the column's unit since the epoch.
                    cursor.number()?.parse().ok()
                };
                values.push(value.ok_or(Decline)?);
                nulls.append_non_null();
            }
            Self::Date32 { values, nulls } => {
                let value = if first == b'"' {
                    cursor.pos += 1;
                    let text = cursor.string()?;
                    Date32Type::parse(std::str::from_utf8(&text).map_err(|_| Decline)?)
                } else {
                    // Numbers are days since the epoch.
                    cursor.number()?.parse().ok()
                };
                values.push(value.ok_or(Decline)?);
                nulls.append_non_null();
            }
            Self::Struct(column) => {
                cursor.expect(b'{')?;
                column.parse_object(cursor, mode)?;
            }
            Self::List {
                offsets,
                items,
                nulls,
                ..
            } => {
                cursor.expect(b'[')?;
                cursor.skip_whitespace();
                if cursor.peek() == Some(b']') {
                    cursor.pos += 1;
                } else {
                    loop {
                        items.parse_value(cursor, mode)?;
                        cursor.skip_whitespace();
                        match cursor.next_byte() {
                            Some(b',') => {}
                            Some(b']') => break,
                            _ => return Err(Decline),
                        }
                    }
                }
                offsets.push(i32::try_from(items.len()).map_err(|_| Decline)?);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Step<ArrayRef> {
        Ok(match self {
            Self::Null(len) => Arc::new(NullArray::new(std::mem::take(len))),
            Self::Boolean { values, nulls } => {
                Arc::new(BooleanArray::new(values.finish(), nulls.finish()))
            }
            Self::Int64 { values, nulls } => {
                Arc::new(Int64Array::new(take_values(values), nulls.finish()))
            }
            Self::Float64 { values, nulls } => {
                Arc::new(Float64Array::new(take_values(values), nulls.finish()))
            }
            Self::Utf8 {
                offsets,
                data,
                nulls,
            } => {
                let offsets = OffsetBuffer::new(take_offsets(offsets));
                let data = std::mem::replace(data, Vec::with_capacity(next_capacity(data)));
                Arc::new(
                    StringArray::try_new(offsets, data.into(), nulls.finish())
                        .map_err(|_| Decline)?,
                )
            }
            Self::Timestamp {
                unit,
                timezone,
                values,
                nulls,
                ..
            } => {
                let values = take_values(values);
                let nulls = nulls.finish();
                let timezone = timezone.clone();
                match unit {
                    TimeUnit::Second => Arc::new(
                        TimestampSecondArray::new(values, nulls).with_timezone_opt(timezone),
                    ),
                    TimeUnit::Millisecond => Arc::new(
                        TimestampMillisecondArray::new(values, nulls).with_timezone_opt(timezone),
                    ),
                    TimeUnit::Microsecond => Arc::new(
                        TimestampMicrosecondArray::new(values, nulls).with_timezone_opt(timezone),
                    ),
                    TimeUnit::Nanosecond => Arc::new(
                        TimestampNanosecondArray::new(values, nulls).with_timezone_opt(timezone),
                    ),
                }
            }
            Self::Date32 { values, nulls } => {
                Arc::new(Date32Array::new(take_values(values), nulls.finish()))
            }
            Self::Struct(column) => Arc::new(column.finish()?),
            Self::List {
                field,
                offsets,
                items,
                nulls,
            } => {
                let offsets = OffsetBuffer::new(take_offsets(offsets));
                let items = items.finish()?;
                Arc::new(
                    ListArray::try_new(field.clone(), offsets, items, nulls.finish())
                        .map_err(|_| Decline)?,
                )
            }
        })
    }

    /// Forgets every value (of a declined page).
    fn clear(&mut self) {
        match self {
            Self::Null(len) => *len = 0,
            Self::Boolean { values, nulls } => {
                values.truncate(0);
                nulls.truncate(0);
            }
            Self::Int64 { values, nulls } | Self::Timestamp { values, nulls, .. } => {
                clear_values(values);
                nulls.truncate(0);
            }
            Self::Float64 { values, nulls } => {
                clear_values(values);
                nulls.truncate(0);
            }
            Self::Date32 { values, nulls } => {
                clear_values(values);
                nulls.truncate(0);
            }
            Self::Utf8 {
                offsets,
                data,
                nulls,
            } => {
                offsets.truncate(1);
                offsets.shrink_to(RETAINED_BYTES / 4);
                clear_values(data);
                nulls.truncate(0);
            }
            Self::Struct(column) => column.clear(),
            Self::List {
                offsets,
                items,
                nulls,
                ..
            } => {
                offsets.truncate(1);
                offsets.shrink_to(RETAINED_BYTES / 4);
                items.clear();
                nulls.truncate(0);
            }
        }
    }
}

impl StructColumn {
    /// `None` when a field cannot be decoded directly (see the module header).
    fn new(fields: &Fields) -> Option<Self> {
        if fields.is_empty() {
            return None;
        }
        let mut names: Vec<Box<[u8]>> = Vec::with_capacity(fields.len());
        let mut children = Vec::with_capacity(fields.len());
        for field in fields {
            let name: Box<[u8]> = field.name().as_bytes().into();
            if !field.is_nullable() || names.contains(&name) {
                return None;
            }
            names.push(name);
            children.push(Column::new(field.data_type())?);
        }
        let index = (names.len() >= FIELD_INDEX_THRESHOLD).then(|| {
            names
                .iter()
                .enumerate()
                .map(|(idx, name)| (name.clone(), idx))
                .collect()
        });
        Some(Self {
            fields: fields.clone(),
            names,
            index,
            children,
            nulls: NullBufferBuilder::new(0),
            len: 0,
        })
    }

    /// Reads one object whose `{` the cursor has just passed.
    fn parse_object(&mut self, cursor: &mut Cursor<'_>, mode: Mode) -> Step {
        let row = self.len;
        cursor.skip_whitespace();
        if cursor.peek() == Some(b'}') {
            cursor.pos += 1;
        } else {
            // Records mostly list their keys in the schema's order: try the next field first.
            let mut guess = 0;
            loop {
                cursor.skip_whitespace();
                cursor.expect(b'"')?;
                let key = cursor.string()?;
                cursor.skip_whitespace();
                cursor.expect(b':')?;
                match self.find(&key, guess) {
                    Some(idx) => {
                        let child = &mut self.children[idx];
                        if child.len() != row {
                            // The key came twice.
                            return Err(Decline);
                        }
                        child.parse_value(cursor, mode)?;
                        guess = idx + 1;
                    }
                    // A known schema ignores fields it lacks.
                    None if mode == Mode::Fixed => {
                        std::str::from_utf8(&key).map_err(|_| Decline)?;
                        cursor.skip_value(0)?;
                    }
                    None => return Err(Decline),
                }
                cursor.skip_whitespace();
                match cursor.next_byte() {
                    Some(b',') => {}
                    Some(b'}') => break,
                    _ => return Err(Decline),
                }
            }
        }
        for child in &mut self.children {
            if child.len() == row {
                child.push_null();
            }
        }
        self.nulls.append_non_null();
        self.len += 1;
        Ok(())
    }

    fn find(&self, key: &[u8], guess: usize) -> Option<usize> {
        if self.names.get(guess).is_some_and(|name| **name == *key) {
            return Some(guess);
        }
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.names.iter().position(|name| **name == *key),
        }
    }

    fn push_null(&mut self) {
        for child in &mut self.children {
            child.push_null();
        }
        self.nulls.append_null();
        self.len += 1;
    }

    fn finish_children(&mut self) -> Step<Vec<ArrayRef>> {
        self.len = 0;
        self.nulls.truncate(0);
        self.children.iter_mut().map(Column::finish).collect()
    }

    fn finish(&mut self) -> Step<StructArray> {
        let nulls = self.nulls.finish();
        let children = self.finish_children()?;
        StructArray::try_new(self.fields.clone(), children, nulls).map_err(|_| Decline)
    }

    fn clear(&mut self) {
        for child in &mut self.children {
            child.clear();
        }
        self.nulls.truncate(0);
        self.len = 0;
    }
}

/// A buffer keeps at most this many bytes of room between batches and pages, so that one huge
/// page does not keep its memory reserved for the rest of the run.
const RETAINED_BYTES: usize = 1 << 20;

/// Room for the next batch: as much as this one used, up to [`RETAINED_BYTES`].
fn next_capacity<T>(used: &[T]) -> usize {
    used.len().min(RETAINED_BYTES / size_of::<T>().max(1))
}

/// Empties `values`, keeping at most [`RETAINED_BYTES`] of room.
fn clear_values<T>(values: &mut Vec<T>) {
    values.clear();
    values.shrink_to(RETAINED_BYTES / size_of::<T>().max(1));
}

/// The values so far as a buffer; the next batch starts with room for as many (see
/// [`next_capacity`]).
fn take_values<T: arrow_buffer::ArrowNativeType>(values: &mut Vec<T>) -> ScalarBuffer<T> {
    std::mem::replace(values, Vec::with_capacity(next_capacity(values))).into()
}

/// The offsets so far as a buffer; the next batch starts at offset 0 again.
fn take_offsets(offsets: &mut Vec<i32>) -> ScalarBuffer<i32> {
    let mut next = Vec::with_capacity(next_capacity(offsets));
    next.push(0);
    std::mem::replace(offsets, next).into()
}
