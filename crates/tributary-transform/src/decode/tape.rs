//! Direct access to arrow-json's tape (its flat, already parsed form of the JSON) without a schema:
//! used to infer a page's shape, to find the record that breaks a page, and to write any value
//! back as JSON text. Everything here walks the tape iteratively, so depth costs no stack.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::{ArrayRef, NullArray};
use arrow_json::ReaderBuilder;
use arrow_json::reader::{ArrayDecoder, DecoderContext, DecoderFactory, Tape, TapeElement};
use arrow_schema::{ArrowError, DataType, Field, FieldRef};

use super::DecodeError;

/// Visits the records of a page, chunk by chunk, as they sit on the tape.
pub(super) trait TapeVisitor: Send + 'static {
    /// `rows` holds the tape index of each record; `first_record` is the page-level number of
    /// the first. Returning an error stops the walk.
    fn visit(&mut self, tape: &Tape<'_>, rows: &[u32], first_record: u64)
    -> Result<(), ArrowError>;
}

/// Records per tape chunk while probing; large enough that a normal page is one chunk.
const PROBE_CHUNK_ROWS: usize = 16 * 1024;
/// How many bytes of an offending record an error quotes.
const START_BYTES: usize = 80;

/// Parses `bytes` as a sequence of JSON values and hands the tape to `visitor`. Returns the
/// visitor (whatever happened) and the outcome: a parse error, or the visitor's own error.
pub(super) fn probe<V: TapeVisitor>(bytes: &[u8], visitor: V) -> (V, Result<u64, ArrowError>) {
    let shared = Arc::new(Mutex::new(ProbeState {
        visitor: Some(visitor),
        records: 0,
    }));
    let result = run_probe(bytes, &shared);
    let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let visitor = state
        .visitor
        .take()
        .expect("the visitor is only taken here, once");
    (visitor, result.map(|()| state.records))
}

/// Checks that every record of the page is valid JSON and an object; names the first that is not.
pub(super) fn check_records(page_idx: u64, bytes: &[u8]) -> Result<(), DecodeError> {
    let (visitor, result) = probe(bytes, ObjectCheck::default());
    if let Some((record, found)) = visitor.not_an_object {
        return Err(not_an_object(page_idx, bytes, record, found));
    }
    match result {
        Ok(_) => Ok(()),
        Err(error) => Err(invalid_json(page_idx, bytes, &error)),
    }
}

/// The error for a page whose tape could not be built: finds the first record (line) that does
/// not parse on its own.
pub(super) fn invalid_json(page_idx: u64, bytes: &[u8], page_error: &ArrowError) -> DecodeError {
    for (record, line) in record_lines(bytes).enumerate() {
        let (_, result) = probe(line, ObjectCheck::default());
        if let Err(error) = result {
            return DecodeError::InvalidJson {
                page_idx,
                record: record as u64,
                message: arrow_message(&error),
                start: quote_start(line),
            };
        }
    }
    // Every line parses alone, so a record spans lines (not NDJSON) and broke across them.
    DecodeError::InvalidJson {
        page_idx,
        record: record_lines(bytes).count().saturating_sub(1) as u64,
        message: arrow_message(page_error),
        start: quote_start(bytes),
    }
}

pub(super) fn not_an_object(
    page_idx: u64,
    bytes: &[u8],
    record: u64,
    found: &'static str,
) -> DecodeError {
    let line = usize::try_from(record)
        .ok()
        .and_then(|n| record_lines(bytes).nth(n))
        .unwrap_or(bytes);
    DecodeError::NotAnObject {
        page_idx,
        record,
        found,
        start: quote_start(line),
    }
}

/// The JSON kind of a tape element, for messages.
pub(super) fn kind_name(element: TapeElement) -> &'static str {
    match element {
        TapeElement::StartObject(_) | TapeElement::EndObject(_) => "an object",
        TapeElement::StartList(_) | TapeElement::EndList(_) => "an array",
        TapeElement::String(_) => "a string",
        TapeElement::True | TapeElement::False => "a boolean",
        TapeElement::Null => "null",
        _ => "a number",
    }
}

/// Appends the value at `idx` as compact JSON text. Iterative: nesting costs heap, not stack.
pub(super) fn write_json_text(
    tape: &Tape<'_>,
    idx: u32,
    out: &mut String,
) -> Result<(), ArrowError> {
    let end = tape.next(idx, "value")?;
    // One entry per open container: (is an object, no member written yet, a key comes next).
    let mut open: Vec<(bool, bool, bool)> = Vec::new();
    let mut cur = idx;
    while cur < end {
        let element = tape.get(cur);
        if let TapeElement::EndObject(_) | TapeElement::EndList(_) = element {
            out.push(if matches!(element, TapeElement::EndObject(_)) {
                '}'
            } else {
                ']'
            });
            open.pop();
            value_done(&mut open);
            cur += 1;
            continue;
        }
        let mut is_key = false;
        if let Some((is_object, first, key_next)) = open.last_mut() {
            if !*is_object || *key_next {
                if !*first {
                    out.push(',');
                }
                *first = false;
            }
            if *is_object {
                if *key_next {
                    is_key = true;
                    *key_next = false;
                } else {
                    out.push(':');
                }
            }
        }
        let mut step = 1;
        match element {
            TapeElement::StartObject(_) => {
                out.push('{');
                open.push((true, true, true));
            }
            TapeElement::StartList(_) => {
                out.push('[');
                open.push((false, true, false));
            }
            TapeElement::String(s) => push_json_string(out, tape.get_string(s)),
            TapeElement::Number(s) => out.push_str(tape.get_string(s)),
            TapeElement::True => out.push_str("true"),
            TapeElement::False => out.push_str("false"),
            TapeElement::Null => out.push_str("null"),
            TapeElement::I32(value) => {
                let _ = write!(out, "{value}");
            }
            TapeElement::I64(high) => {
                let low = match tape.get(cur + 1) {
                    TapeElement::I32(low) => low,
                    _ => return Err(tape.error(cur + 1, "low bits of an i64")),
                };
                let _ = write!(out, "{}", (i64::from(high) << 32) | i64::from(low as u32));
                step = 2;
            }
            TapeElement::F32(bits) => {
                let _ = write!(out, "{}", f32::from_bits(bits));
            }
            TapeElement::F64(high) => {
                let low = match tape.get(cur + 1) {
                    TapeElement::F32(low) => low,
                    _ => return Err(tape.error(cur + 1, "low bits of an f64")),
                };
                let value = f64::from_bits((u64::from(high) << 32) | u64::from(low));
                let _ = write!(out, "{value}");
                step = 2;
            }
            _ => return Err(tape.error(cur, "a JSON value")),
        }
        let is_container = matches!(
            element,
            TapeElement::StartObject(_) | TapeElement::StartList(_)
        );
        if !is_key && !is_container {
            value_done(&mut open);
        }
        cur += step;
    }
    Ok(())
}

/// The records of a page as lines, blank lines skipped (the tape decoder skips them too).
pub(super) fn record_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.trim_ascii().is_empty())
}

struct ProbeState<V> {
    visitor: Option<V>,
    records: u64,
}

struct ProbeDecoder<V> {
    shared: Arc<Mutex<ProbeState<V>>>,
}

struct ProbeFactory<V> {
    shared: Arc<Mutex<ProbeState<V>>>,
}

/// Checks that each record is an object, remembering the first that is not.
#[derive(Default)]
struct ObjectCheck {
    not_an_object: Option<(u64, &'static str)>,
}

impl<V: TapeVisitor> ArrayDecoder for ProbeDecoder<V> {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut state = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let first_record = state.records;
        state.records += pos.len() as u64;
        if let Some(visitor) = state.visitor.as_mut() {
            visitor.visit(tape, pos, first_record)?;
        }
        Ok(Arc::new(NullArray::new(pos.len())))
    }
}

impl<V: TapeVisitor> DecoderFactory for ProbeFactory<V> {
    fn make_default_decoder(
        &self,
        _ctx: &DecoderContext,
        _field: &FieldRef,
        _is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        Ok(Some(Box::new(ProbeDecoder {
            shared: self.shared.clone(),
        })))
    }
}

impl<V> std::fmt::Debug for ProbeFactory<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeFactory")
    }
}

impl TapeVisitor for ObjectCheck {
    fn visit(
        &mut self,
        tape: &Tape<'_>,
        rows: &[u32],
        first_record: u64,
    ) -> Result<(), ArrowError> {
        for (i, &row) in rows.iter().enumerate() {
            let element = tape.get(row);
            if !matches!(element, TapeElement::StartObject(_)) {
                self.not_an_object = Some((first_record + i as u64, kind_name(element)));
                return Err(ArrowError::JsonError(
                    "a record is not an object".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

fn run_probe<V: TapeVisitor>(
    bytes: &[u8],
    shared: &Arc<Mutex<ProbeState<V>>>,
) -> Result<(), ArrowError> {
    // A nullable root of any JSON kind: the factory hands the whole tape to the visitor.
    let root = Field::new("record", DataType::Null, true);
    let mut decoder = ReaderBuilder::new_with_field(root)
        .with_batch_size(PROBE_CHUNK_ROWS)
        .with_decoder_factory(Arc::new(ProbeFactory {
            shared: shared.clone(),
        }))
        .build_decoder()?;
    let mut rest = bytes;
    while !rest.is_empty() {
        let consumed = decoder.decode(rest)?;
        rest = &rest[consumed..];
        if !rest.is_empty() && decoder.flush()?.is_none() && consumed == 0 {
            return Err(ArrowError::JsonError(
                "the JSON decoder made no progress".to_owned(),
            ));
        }
    }
    decoder.flush()?;
    Ok(())
}

/// After a value inside an object, the next element is a key again.
fn value_done(open: &mut [(bool, bool, bool)]) {
    if let Some((true, _, key_next)) = open.last_mut() {
        *key_next = true;
    }
}

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    let mut clean_from = 0;
    for (i, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[clean_from..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        clean_from = i + 1;
    }
    out.push_str(&value[clean_from..]);
    out.push('"');
}

/// The first bytes of a record, for error messages, cut on a character boundary.
fn quote_start(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(START_BYTES)]);
    // The cut may split a character; drop the replacement character it leaves at the end.
    let mut start = text.trim().trim_end_matches('\u{fffd}').to_owned();
    if bytes.len() > START_BYTES {
        start.push_str("...");
    }
    start
}

fn arrow_message(error: &ArrowError) -> String {
    match error {
        ArrowError::JsonError(message) => message.clone(),
        other => other.to_string(),
    }
}
