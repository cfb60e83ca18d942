//! The byte-level fast path of the record locator: one validating walk of the page with
//! [`Scanner`] that follows a plain contentPath and hands every record of the array it leads to
//! an [`Emitter`].
//!
//! An emitter either copies each record (or its kept attributes) into an NDJSON buffer
//! ([`Output::Copy`]), or leaves the records where they are and notes the commas between them
//! ([`Output::InPlace`]), so that the caller can turn the array into NDJSON inside the page's
//! own buffer. Either way the whole page is validated before anything is returned.

use std::ops::Range;

use super::{AttrFilter, LocateError, Segment, decode_key, decode_key_lossy};
use crate::scan::{Scanner, kind_of};

/// Where an [`Emitter`] puts the records.
pub(super) enum Output {
    /// Each record copied as one line.
    Copy(Vec<u8>),
    /// Records stay in the page; the byte offsets of the commas that separate them.
    InPlace { separators: Vec<usize> },
}

/// Writes the records of one array and tracks their count.
pub(super) struct Emitter<'p, 'f> {
    pub page: &'p [u8],
    /// Must be the identity filter with [`Output::InPlace`] (records are not rewritten).
    pub filter: &'f AttrFilter,
    pub output: Output,
    pub count: usize,
}

impl Emitter<'_, '_> {
    /// Emits the object at the cursor: as one NDJSON line, or (in place) just counted.
    #[inline]
    fn record(&mut self, scanner: &mut Scanner<'_>) -> Result<(), LocateError> {
        let page = self.page;
        let out = match &mut self.output {
            Output::InPlace { .. } => {
                debug_assert!(
                    self.filter.is_identity(),
                    "in place needs the identity filter"
                );
                scanner.skip_value()?;
                self.count += 1;
                return Ok(());
            }
            Output::Copy(out) => out,
        };
        let line_start = out.len();
        if self.filter.is_identity() {
            let span = scanner.skip_value()?;
            out.extend_from_slice(&page[span]);
        } else {
            scanner.bump(); // the '{' the caller peeked
            out.push(b'{');
            let mut first = true;
            // Consecutive kept pairs are copied as one span (their separating commas included),
            // so a record costs a few copies rather than two per attribute.
            let mut run: Option<Range<usize>> = None;
            if scanner.peek() == Some(b'}') {
                scanner.bump();
            } else {
                loop {
                    if scanner.peek() != Some(b'"') {
                        return Err(scanner.unexpected("an object key").into());
                    }
                    let key_start = scanner.pos();
                    scanner.skip_string()?;
                    let key_end = scanner.pos();
                    scanner.expect(b':', "':' after an object key")?;
                    let value_span = scanner.skip_value()?;
                    let raw_key = &page[key_start + 1..key_end - 1];
                    if self.filter.admits_raw(raw_key) {
                        run = Some(match run {
                            Some(open) => open.start..value_span.end,
                            None => key_start..value_span.end,
                        });
                    } else if let Some(done) = run.take() {
                        flush_run(out, &page[done], &mut first);
                    }
                    match scanner.peek() {
                        Some(b',') => scanner.bump(),
                        Some(b'}') => {
                            scanner.bump();
                            break;
                        }
                        _ => return Err(scanner.unexpected("',' or '}' in an object").into()),
                    }
                }
            }
            if let Some(done) = run.take() {
                flush_run(out, &page[done], &mut first);
            }
            out.push(b'}');
        }
        // A raw newline can only be whitespace between tokens in valid JSON; a space keeps the
        // record on one line without changing its meaning.
        blank_newlines(&mut out[line_start..]);
        out.push(b'\n');
        self.count += 1;
        Ok(())
    }

    /// Emits every element of the array at the cursor; returns the array's span.
    fn array(&mut self, scanner: &mut Scanner<'_>) -> Result<Range<usize>, LocateError> {
        scanner.peek();
        let start = scanner.pos();
        scanner.bump(); // the '[' the caller peeked
        if scanner.peek() == Some(b']') {
            scanner.bump();
            return Ok(start..scanner.pos());
        }
        let mut element_idx = 0;
        loop {
            match scanner.peek() {
                Some(b'{') => self.record(scanner)?,
                Some(other) => {
                    return Err(LocateError::NotObject {
                        element_idx,
                        found: kind_of(other),
                    });
                }
                None => return Err(scanner.unexpected("a record").into()),
            }
            element_idx += 1;
            match scanner.peek() {
                Some(b',') => {
                    if let Output::InPlace { separators } = &mut self.output {
                        separators.push(scanner.pos());
                    }
                    scanner.bump();
                }
                Some(b']') => {
                    scanner.bump();
                    break;
                }
                _ => return Err(scanner.unexpected("',' or ']' after a record").into()),
            }
        }
        Ok(start..scanner.pos())
    }
}

/// Follows `segments[level..]` from the value at the cursor, emits the records of the array it
/// leads to, and consumes the rest of every enclosing value (so the whole page is validated).
pub(super) fn navigate(
    scanner: &mut Scanner<'_>,
    segments: &[Segment],
    level: usize,
    emit: &mut Emitter<'_, '_>,
) -> Result<Range<usize>, LocateError> {
    let Some(first) = scanner.peek() else {
        return Err(scanner.unexpected("a value").into());
    };
    let Some(segment) = segments.get(level) else {
        return if first == b'[' {
            emit.array(scanner)
        } else {
            Err(LocateError::NotArray {
                found: kind_of(first),
                keys: Vec::new(),
            })
        };
    };
    match segment {
        Segment::Key(wanted) => {
            if first != b'{' {
                return Err(LocateError::Missing {
                    level,
                    problem: format!("expects an object here, found {}", kind_of(first)),
                    keys: Vec::new(),
                });
            }
            scanner.bump();
            let mut key_spans: Vec<Range<usize>> = Vec::new();
            let mut found: Option<Range<usize>> = None;
            let mut not_array: Option<&'static str> = None;
            if scanner.peek() == Some(b'}') {
                scanner.bump();
            } else {
                loop {
                    if scanner.peek() != Some(b'"') {
                        return Err(scanner.unexpected("an object key").into());
                    }
                    let key_start = scanner.pos();
                    scanner.skip_string()?;
                    let key_span = key_start..scanner.pos();
                    scanner.expect(b':', "':' after an object key")?;
                    let raw_key = &emit.page[key_span.start + 1..key_span.end - 1];
                    let is_wanted =
                        found.is_none() && not_array.is_none() && key_matches(raw_key, wanted);
                    key_spans.push(key_span);
                    if is_wanted {
                        match navigate(scanner, segments, level + 1, emit) {
                            Ok(span) => found = Some(span),
                            // Finish the object to show all its keys in the error.
                            Err(LocateError::NotArray { found, keys }) if keys.is_empty() => {
                                not_array = Some(found);
                                scanner.skip_value()?;
                            }
                            Err(err) => return Err(err),
                        }
                    } else {
                        scanner.skip_value()?;
                    }
                    match scanner.peek() {
                        Some(b',') => scanner.bump(),
                        Some(b'}') => {
                            scanner.bump();
                            break;
                        }
                        _ => return Err(scanner.unexpected("',' or '}' in an object").into()),
                    }
                }
            }
            let keys = || {
                key_spans
                    .iter()
                    .map(|span| decode_key_lossy(&emit.page[span.start + 1..span.end - 1]))
                    .collect()
            };
            if let Some(found) = not_array {
                return Err(LocateError::NotArray {
                    found,
                    keys: keys(),
                });
            }
            found.ok_or_else(|| LocateError::Missing {
                level,
                problem: "was not found".to_owned(),
                keys: keys(),
            })
        }
        Segment::Index(wanted) => {
            if first != b'[' {
                return Err(LocateError::Missing {
                    level,
                    problem: format!("expects an array here, found {}", kind_of(first)),
                    keys: Vec::new(),
                });
            }
            scanner.bump();
            let mut found = None;
            let mut idx = 0;
            if scanner.peek() == Some(b']') {
                scanner.bump();
            } else {
                loop {
                    if idx == *wanted {
                        found = Some(navigate(scanner, segments, level + 1, emit)?);
                    } else {
                        scanner.skip_value()?;
                    }
                    idx += 1;
                    match scanner.peek() {
                        Some(b',') => scanner.bump(),
                        Some(b']') => {
                            scanner.bump();
                            break;
                        }
                        _ => return Err(scanner.unexpected("',' or ']' in an array").into()),
                    }
                }
            }
            found.ok_or_else(|| LocateError::Missing {
                level,
                problem: format!("was not found: the array has {idx} elements"),
                keys: Vec::new(),
            })
        }
    }
}

#[inline]
fn key_matches(raw: &[u8], wanted: &str) -> bool {
    if memchr::memchr(b'\\', raw).is_some() {
        decode_key(raw).is_some_and(|key| key == wanted)
    } else {
        raw == wanted.as_bytes()
    }
}

/// Copies a run of kept `"key": value` pairs, comma-separated from the previous run.
#[inline]
fn flush_run(out: &mut Vec<u8>, pairs: &[u8], first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.extend_from_slice(pairs);
}

/// Turns every raw newline and carriage return of `bytes` into a space. Only for validated JSON,
/// where they can only be whitespace between tokens (never inside a string).
pub(super) fn blank_newlines(bytes: &mut [u8]) {
    let mut cursor = 0;
    while let Some(hit) = memchr::memchr2(b'\n', b'\r', &bytes[cursor..]) {
        bytes[cursor + hit] = b' ';
        cursor += hit + 1;
    }
}
