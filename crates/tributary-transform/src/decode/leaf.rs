//! Our column decoders, plugged into arrow-json through its `DecoderFactory`. arrow-json's own
//! leaf decoders coerce quietly (the string "12" into an integer column) or fail without saying
//! where; ours know their field path and either fail (an evolving schema: the page then grows the
//! schema) or write null and count (a known schema). Text columns take any value as JSON text.
//! Structs and lists stay arrow-json's; with a known schema they are guarded so that a value of
//! the wrong kind is counted before arrow-json turns it into null.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::builder::StringBuilder;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, NullArray, PrimitiveArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_buffer::{NullBufferBuilder, ScalarBuffer};
use arrow_cast::parse::{Parser, string_to_datetime};
use arrow_json::reader::{ArrayDecoder, DecoderContext, DecoderFactory, Tape, TapeElement};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeZone, Utc};

use super::WarningKind;
use super::tape::{kind_name, write_json_text};

/// How values that do not fit their column are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// The schema was inferred and may grow: a misfit fails the fast path.
    Evolving,
    /// The schema is given: a misfit is written as null and counted.
    Fixed,
}

/// Counts values of one column that were written differently from how they came.
#[derive(Debug)]
pub(super) struct PathCounter {
    pub path: String,
    pub kind: WarningKind,
    count: AtomicU64,
}

/// Builds our decoders for the fields of one schema.
#[derive(Debug)]
pub(super) struct LeafFactory {
    mode: Mode,
    /// Field path by the address of its `Field`: arrow-json passes the schema's own `FieldRef`s
    /// down when it builds child decoders, and a name alone is ambiguous (`id` vs `tags[].id`).
    paths: HashMap<usize, String>,
    capped_paths: BTreeSet<String>,
    max_depth: usize,
    counters: Mutex<Vec<Arc<PathCounter>>>,
}

/// What a column does with a value of the wrong kind.
struct Misfits {
    mode: Mode,
    path: String,
    expected: DataType,
    counter: Option<Arc<PathCounter>>,
    count: u64,
}

struct NullDecoder {
    misfits: Misfits,
}

struct BooleanDecoder {
    misfits: Misfits,
}

struct Int64Decoder {
    misfits: Misfits,
}

struct Float64Decoder {
    misfits: Misfits,
}

struct TextDecoder {
    path: String,
    counter: Arc<PathCounter>,
    scratch: String,
}

struct TimestampDecoder {
    unit: TimeUnit,
    timezone: Option<Arc<str>>,
    zone: Zone,
    misfits: Misfits,
}

struct Date32Decoder {
    misfits: Misfits,
}

/// A struct or list decoder of arrow-json behind a check of each value's kind.
struct KindGuard {
    inner: Box<dyn ArrayDecoder>,
    wants_object: bool,
    misfits: Misfits,
}

/// The time zone naive timestamps are read in.
pub(super) enum Zone {
    Named(chrono_tz::Tz),
    Offset(arrow_array::timezone::Tz),
}

impl PathCounter {
    fn add(&self, n: u64) {
        if n > 0 {
            self.count.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The count so far, without resetting it.
    pub(super) fn peek(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The count since the last call.
    pub(super) fn take(&self) -> u64 {
        self.count.swap(0, Ordering::Relaxed)
    }
}

impl LeafFactory {
    pub(super) fn new(
        schema: &SchemaRef,
        mode: Mode,
        capped_paths: &BTreeSet<String>,
        max_depth: usize,
    ) -> Self {
        let mut paths = HashMap::new();
        register_paths(schema.fields(), "", &mut paths);
        Self {
            mode,
            paths,
            capped_paths: capped_paths.clone(),
            max_depth,
            counters: Mutex::new(Vec::new()),
        }
    }

    /// The counters of every decoder built so far.
    pub(super) fn take_counters(&self) -> Vec<Arc<PathCounter>> {
        std::mem::take(&mut *self.counters.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn counter(&self, path: &str, kind: WarningKind) -> Arc<PathCounter> {
        let counter = Arc::new(PathCounter {
            path: path.to_owned(),
            kind,
            count: AtomicU64::new(0),
        });
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(counter.clone());
        counter
    }

    fn misfits(&self, path: &str, expected: &DataType) -> Misfits {
        let counter = match self.mode {
            Mode::Evolving => None,
            Mode::Fixed => Some(self.counter(
                path,
                WarningKind::NullForKnownSchema {
                    expected: expected.clone(),
                },
            )),
        };
        Misfits {
            mode: self.mode,
            path: path.to_owned(),
            expected: expected.clone(),
            counter,
            count: 0,
        }
    }
}

impl DecoderFactory for LeafFactory {
    fn make_default_decoder(
        &self,
        ctx: &DecoderContext,
        field: &FieldRef,
        is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        // The root (a struct arrow-json makes up) and anything we did not register stay arrow-json's.
        let Some(path) = self.paths.get(&field_key(field)) else {
            return Ok(None);
        };
        let data_type = field.data_type();
        let decoder: Box<dyn ArrayDecoder> = match data_type {
            DataType::Null => Box::new(NullDecoder {
                misfits: self.misfits(path, data_type),
            }),
            DataType::Boolean => Box::new(BooleanDecoder {
                misfits: self.misfits(path, data_type),
            }),
            DataType::Int64 => Box::new(Int64Decoder {
                misfits: self.misfits(path, data_type),
            }),
            DataType::Float64 => Box::new(Float64Decoder {
                misfits: self.misfits(path, data_type),
            }),
            DataType::Utf8 => {
                let kind = if self.capped_paths.contains(path) {
                    WarningKind::DepthCapped {
                        max_depth: self.max_depth,
                    }
                } else {
                    WarningKind::ValueAsJsonText
                };
                Box::new(TextDecoder {
                    path: path.clone(),
                    counter: self.counter(path, kind),
                    scratch: String::new(),
                })
            }
            DataType::Timestamp(unit, timezone) => Box::new(TimestampDecoder {
                unit: *unit,
                timezone: timezone.clone(),
                zone: Zone::parse(timezone.as_deref())?,
                misfits: self.misfits(path, data_type),
            }),
            DataType::Date32 => Box::new(Date32Decoder {
                misfits: self.misfits(path, data_type),
            }),
            DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_)
                if self.mode == Mode::Fixed =>
            {
                Box::new(KindGuard {
                    inner: ctx.make_builtin_decoder(field, is_nullable)?,
                    wants_object: matches!(data_type, DataType::Struct(_)),
                    misfits: self.misfits(path, data_type),
                })
            }
            _ => return Ok(None),
        };
        Ok(Some(decoder))
    }
}

impl Misfits {
    /// A value at `idx` does not fit: fails (evolving) or is counted to be written as null.
    fn hit(&mut self, tape: &Tape<'_>, idx: u32) -> Result<(), ArrowError> {
        match self.mode {
            Mode::Evolving => Err(ArrowError::JsonError(format!(
                "field `{}`: expected {}, found {}",
                self.path,
                self.expected,
                kind_name(tape.get(idx))
            ))),
            Mode::Fixed => {
                self.count += 1;
                Ok(())
            }
        }
    }

    fn publish(&mut self) {
        if let Some(counter) = &self.counter {
            counter.add(self.count);
        }
        self.count = 0;
    }
}

impl ArrayDecoder for NullDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        for &p in pos {
            match tape.get(p) {
                TapeElement::Null => {}
                // An empty object carries nothing; see `Shape::to_data_type`.
                TapeElement::StartObject(end) if end == p + 1 => {}
                _ => self.misfits.hit(tape, p)?,
            }
        }
        self.misfits.publish();
        Ok(Arc::new(NullArray::new(pos.len())))
    }
}

impl ArrayDecoder for BooleanDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut values = Vec::with_capacity(pos.len());
        for &p in pos {
            let value = match tape.get(p) {
                TapeElement::True => Some(true),
                TapeElement::False => Some(false),
                TapeElement::Null => None,
                _ => {
                    self.misfits.hit(tape, p)?;
                    None
                }
            };
            values.push(value);
        }
        self.misfits.publish();
        Ok(Arc::new(BooleanArray::from(values)))
    }
}

impl ArrayDecoder for Int64Decoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut values = Vec::with_capacity(pos.len());
        let mut nulls = NullBufferBuilder::new(pos.len());
        for &p in pos {
            let value = match tape.get(p) {
                TapeElement::Null => {
                    values.push(0);
                    nulls.append_null();
                    continue;
                }
                TapeElement::Number(text) => tape.get_string(text).parse::<i64>().ok(),
                TapeElement::I32(value) => Some(i64::from(value)),
                TapeElement::I64(high) => match tape.get(p + 1) {
                    TapeElement::I32(low) => Some((i64::from(high) << 32) | i64::from(low as u32)),
                    _ => None,
                },
                _ => None,
            };
            match value {
                Some(value) => {
                    values.push(value);
                    nulls.append_non_null();
                }
                None => {
                    self.misfits.hit(tape, p)?;
                    values.push(0);
                    nulls.append_null();
                }
            }
        }
        self.misfits.publish();
        Ok(Arc::new(PrimitiveArray::<Int64Type>::new(
            values.into(),
            nulls.finish(),
        )))
    }
}

impl ArrayDecoder for Float64Decoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut values = Vec::with_capacity(pos.len());
        let mut nulls = NullBufferBuilder::new(pos.len());
        for &p in pos {
            let value = match tape.get(p) {
                TapeElement::Null => {
                    values.push(0.0);
                    nulls.append_null();
                    continue;
                }
                TapeElement::Number(text) => tape.get_string(text).parse::<f64>().ok(),
                TapeElement::I32(value) => Some(f64::from(value)),
                TapeElement::F32(bits) => Some(f64::from(f32::from_bits(bits))),
                TapeElement::I64(high) => match tape.get(p + 1) {
                    TapeElement::I32(low) => {
                        Some(((i64::from(high) << 32) | i64::from(low as u32)) as f64)
                    }
                    _ => None,
                },
                TapeElement::F64(high) => match tape.get(p + 1) {
                    TapeElement::F32(low) => {
                        Some(f64::from_bits((u64::from(high) << 32) | u64::from(low)))
                    }
                    _ => None,
                },
                _ => None,
            };
            match value {
                Some(value) => {
                    values.push(value);
                    nulls.append_non_null();
                }
                None => {
                    self.misfits.hit(tape, p)?;
                    values.push(0.0);
                    nulls.append_null();
                }
            }
        }
        self.misfits.publish();
        Ok(Arc::new(PrimitiveArray::<Float64Type>::new(
            values.into(),
            nulls.finish(),
        )))
    }
}

impl ArrayDecoder for TextDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut capacity = 0;
        for &p in pos {
            if let TapeElement::String(text) = tape.get(p) {
                capacity += tape.get_string(text).len();
            }
        }
        let mut builder = StringBuilder::with_capacity(pos.len(), capacity);
        let mut total = 0_usize;
        let mut as_json_text = 0;
        for &p in pos {
            let text = match tape.get(p) {
                TapeElement::String(text) => tape.get_string(text),
                TapeElement::Null => {
                    builder.append_null();
                    continue;
                }
                _ => {
                    self.scratch.clear();
                    write_json_text(tape, p, &mut self.scratch)?;
                    as_json_text += 1;
                    self.scratch.as_str()
                }
            };
            // The builder's 32-bit offsets would overflow (and panic) past 2 GiB.
            total += text.len();
            if total > i32::MAX as usize {
                return Err(ArrowError::JsonError(format!(
                    "field `{}`: more than 2 GiB of text in one batch",
                    self.path
                )));
            }
            builder.append_value(text);
        }
        self.counter.add(as_json_text);
        Ok(Arc::new(builder.finish()))
    }
}

impl ArrayDecoder for TimestampDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut values = Vec::with_capacity(pos.len());
        let mut nulls = NullBufferBuilder::new(pos.len());
        for &p in pos {
            let value = match tape.get(p) {
                TapeElement::Null => {
                    values.push(0);
                    nulls.append_null();
                    continue;
                }
                TapeElement::String(text) => self.parse(tape.get_string(text)),
                // Numbers are taken as counts of the column's unit since the epoch.
                TapeElement::Number(text) => tape.get_string(text).parse::<i64>().ok(),
                _ => None,
            };
            match value {
                Some(value) => {
                    values.push(value);
                    nulls.append_non_null();
                }
                None => {
                    self.misfits.hit(tape, p)?;
                    values.push(0);
                    nulls.append_null();
                }
            }
        }
        self.misfits.publish();
        let values = ScalarBuffer::from(values);
        let nulls = nulls.finish();
        let timezone = self.timezone.clone();
        Ok(match self.unit {
            TimeUnit::Second => {
                Arc::new(TimestampSecondArray::new(values, nulls).with_timezone_opt(timezone))
            }
            TimeUnit::Millisecond => {
                Arc::new(TimestampMillisecondArray::new(values, nulls).with_timezone_opt(timezone))
            }
            TimeUnit::Microsecond => {
                Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone_opt(timezone))
            }
            TimeUnit::Nanosecond => {
                Arc::new(TimestampNanosecondArray::new(values, nulls).with_timezone_opt(timezone))
            }
        })
    }
}

impl TimestampDecoder {
    fn parse(&self, text: &str) -> Option<i64> {
        timestamp_from_text(&self.zone, self.unit, text)
    }
}

/// `text` as a count of `unit` since the epoch, naive times read in `zone`; `None` when it is
/// not a timestamp (or out of range for nanoseconds).
pub(super) fn timestamp_from_text(zone: &Zone, unit: TimeUnit, text: &str) -> Option<i64> {
    let utc = match zone {
        Zone::Named(zone) => to_utc(string_to_datetime(zone, text).ok()?),
        Zone::Offset(zone) => to_utc(string_to_datetime(zone, text).ok()?),
    };
    match unit {
        TimeUnit::Second => Some(utc.timestamp()),
        TimeUnit::Millisecond => Some(utc.timestamp_millis()),
        TimeUnit::Microsecond => Some(utc.timestamp_micros()),
        TimeUnit::Nanosecond => utc.timestamp_nanos_opt(),
    }
}

impl ArrayDecoder for Date32Decoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut values = Vec::with_capacity(pos.len());
        let mut nulls = NullBufferBuilder::new(pos.len());
        for &p in pos {
            let value = match tape.get(p) {
                TapeElement::Null => {
                    values.push(0);
                    nulls.append_null();
                    continue;
                }
                TapeElement::String(text) => Date32Type::parse(tape.get_string(text)),
                // Numbers are taken as days since the epoch.
                TapeElement::Number(text) => tape.get_string(text).parse::<i32>().ok(),
                _ => None,
            };
            match value {
                Some(value) => {
                    values.push(value);
                    nulls.append_non_null();
                }
                None => {
                    self.misfits.hit(tape, p)?;
                    values.push(0);
                    nulls.append_null();
                }
            }
        }
        self.misfits.publish();
        Ok(Arc::new(Date32Array::new(values.into(), nulls.finish())))
    }
}

impl ArrayDecoder for KindGuard {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let wants_object = self.wants_object;
        let fits = |element: TapeElement| match element {
            TapeElement::Null => true,
            TapeElement::StartObject(_) => wants_object,
            TapeElement::StartList(_) => !wants_object,
            _ => false,
        };
        if pos.iter().all(|&p| fits(tape.get(p))) {
            return self.inner.decode(tape, pos);
        }
        let mut cleaned = Vec::with_capacity(pos.len());
        for &p in pos {
            if fits(tape.get(p)) {
                cleaned.push(p);
            } else {
                self.misfits.hit(tape, p)?;
                // Tape index 0 is always a null.
                cleaned.push(0);
            }
        }
        self.misfits.publish();
        self.inner.decode(tape, &cleaned)
    }
}

impl Zone {
    pub(super) fn parse(timezone: Option<&str>) -> Result<Self, ArrowError> {
        let Some(timezone) = timezone else {
            return Ok(Self::Named(chrono_tz::Tz::UTC));
        };
        if let Ok(zone) = timezone.parse::<chrono_tz::Tz>() {
            return Ok(Self::Named(zone));
        }
        timezone.parse().map(Self::Offset)
    }
}

impl std::fmt::Debug for KindGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindGuard")
            .field("path", &self.misfits.path)
            .finish_non_exhaustive()
    }
}

fn to_utc<Z: TimeZone>(datetime: DateTime<Z>) -> DateTime<Utc> {
    datetime.with_timezone(&Utc)
}

fn field_key(field: &FieldRef) -> usize {
    Arc::as_ptr(field) as usize
}

fn register_paths(fields: &Fields, prefix: &str, paths: &mut HashMap<usize, String>) {
    for field in fields {
        let path = if prefix.is_empty() {
            field.name().clone()
        } else {
            format!("{prefix}.{}", field.name())
        };
        register_field(field, path, paths);
    }
}

fn register_field(field: &FieldRef, path: String, paths: &mut HashMap<usize, String>) {
    match field.data_type() {
        DataType::Struct(children) => register_paths(children, &path, paths),
        DataType::List(element) | DataType::LargeList(element) => {
            register_field(element, format!("{path}[]"), paths);
        }
        _ => {}
    }
    paths.insert(field_key(field), path);
}

/// Whether a timestamp column of zone `timezone` reads `text` (as [`TimestampDecoder`] does).
pub(super) fn text_fits_timestamp(text: &str, timezone: Option<&str>) -> bool {
    match Zone::parse(timezone) {
        Ok(Zone::Named(zone)) => string_to_datetime(&zone, text).is_ok(),
        Ok(Zone::Offset(zone)) => string_to_datetime(&zone, text).is_ok(),
        Err(_) => false,
    }
}

/// Whether a date column reads `text` (as [`Date32Decoder`] does).
pub(super) fn text_fits_date(text: &str) -> bool {
    Date32Type::parse(text).is_some()
}
