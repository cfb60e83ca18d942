//! The record locator: finds the records array of a page in the raw bytes and emits the records
//! as NDJSON (one object per line) without building a tree of every record.
//!
//! Fast path (a contentPath of plain keys and indexes, like `$.members`, `$.data.items`, `$`):
//! one validating pass over the page with [`crate::scan::Scanner`] (`fast`). The fetcher's path,
//! [`RecordSelector::locate_in_place`], copies nothing: it turns the records array into NDJSON
//! inside the page's own buffer (the commas between records become newlines, raw newlines in the
//! array become spaces) and the records are a slice of the page, so a page costs one copy of its
//! body. [`RecordSelector::locate`] copies each record as a byte span instead; with
//! `keepAttributes` / `skipAttributes` only the kept top-level key/value spans are copied (also
//! on the fetcher's path). Newlines outside strings are turned into spaces (a raw newline cannot
//! occur inside a valid JSON string), so every record is exactly one line. The whole page is
//! validated, so a truncated or malformed page is an error and none of its records are emitted.
//!
//! Why the validating pass stays although arrow-json's tape parses the records again: the tape
//! skips commas freely (`[1 2]`, `{"a":1,,"b":2}` pass) and keeps number text unchecked (`01`,
//! `1-2`), so only this pass can reject such a page with its byte offset, as a malformed page
//! must be. It builds nothing and copies nothing; the tape is the only parse that builds.
//!
//! Slow path (only when configured): `explodeEntityPath`, or a contentPath with wildcards or
//! filters, parses the page into a `serde_json::Value`.
//!
//! Wrapper semantics (reference §2.3, marked [conflict]): `overrideWrapperAttribute` of the
//! contentPath is applied ONLY when `explodeEntityPath` is present. The Mailchimp-members mapping
//! reads `merge_fields.FNAME` although its contentPath sets the wrapper `member`, while the
//! email-activity example maps `email.activity.action` with both a wrapper and an explode path;
//! applying the wrapper only together with an explode path satisfies both examples.
//!
//! Explode semantics: one output row per element of the sub-array, the parent's attributes kept,
//! the sub-array key removed and the element placed under the explode wrapper name (or the
//! sub-array's own key). A record whose sub-array is empty or missing is emitted once without it
//! (an outer explode: the parent is data too and must not vanish silently).
//!
//! Small values (next pointer, continuation token, end condition, totals) are read by JSONPath
//! from the page with the records array replaced by `[]`, so only the envelope is parsed.

mod fast;

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::error::FetchError;
use crate::scan::{ScanError, Scanner};
use fast::{Emitter, Output, navigate};

/// A JSONPath as written in a spec, compiled, plus its plain segments when it has only keys
/// and indexes (the form the byte-level fast path understands).
#[derive(Debug, Clone)]
pub struct RecordPath {
    source: String,
    compiled: JsonPath,
    segments: Option<Vec<Segment>>,
}

/// Which top-level attributes of a record are kept.
#[derive(Debug, Clone, Default)]
pub struct AttrFilter {
    keep: Option<Vec<String>>,
    skip: Vec<String>,
}

/// How the records of a page are found and shaped.
#[derive(Debug, Clone)]
pub struct RecordSelector {
    content: RecordPath,
    filter: AttrFilter,
    wrapper: Option<String>,
    explode: Option<ExplodeSelector>,
}

/// `explodeEntityPath`: the sub-array of each record to emit one row per element of.
#[derive(Debug, Clone)]
pub struct ExplodeSelector {
    path: RecordPath,
    filter: AttrFilter,
    wrapper: Option<String>,
}

/// The records of one page.
#[derive(Debug, Default)]
pub struct LocatedRecords {
    /// One JSON object per line. Copied records end each in `\n`; records located in place
    /// ([`RecordSelector::locate_in_place`]) are a slice of the page, where a line may start or
    /// end with spaces and the last line has no `\n`.
    pub ndjson: Bytes,
    /// How many lines `ndjson` holds.
    pub record_count: usize,
    /// The byte span of the records array in the page (fast path), used to parse the envelope
    /// without the records.
    pub array_span: Option<Range<usize>>,
}

/// The small values of a page's envelope, parsed once.
#[derive(Debug)]
pub struct Envelope {
    doc: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Why the fast path stopped.
#[derive(Debug)]
enum LocateError {
    Scan(ScanError),
    /// The path could not be followed at `level` (the segment at that index).
    Missing {
        level: usize,
        problem: String,
        keys: Vec<String>,
    },
    /// The path led to a value that is not an array; `keys` are the keys of its parent object.
    NotArray {
        found: &'static str,
        keys: Vec<String>,
    },
    NotObject {
        element_idx: usize,
        found: &'static str,
    },
}

impl From<ScanError> for LocateError {
    fn from(err: ScanError) -> Self {
        LocateError::Scan(err)
    }
}

impl RecordPath {
    /// Parses a JSONPath as specs write it: `$.members`, `members`, `$['data'].items`, `$`.
    pub fn parse(path: &str) -> Result<Self, FetchError> {
        let trimmed = path.trim();
        let normalized = if trimmed.is_empty() {
            "$".to_owned()
        } else if trimmed.starts_with('$') {
            trimmed.to_owned()
        } else if trimmed.starts_with('[') {
            format!("${trimmed}")
        } else {
            format!("$.{trimmed}")
        };
        let compiled = JsonPath::parse(&normalized)
            .map_err(|err| FetchError::Spec(format!("invalid JSONPath {path:?}: {err}")))?;
        let segments = plain_segments(&normalized);
        Ok(Self {
            source: normalized,
            compiled,
            segments,
        })
    }

    /// The path as normalised (always starting with `$`).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether reading this path needs the records array (it starts inside it, or is not plain).
    pub(crate) fn reaches_into(&self, content: &RecordPath) -> bool {
        match (&self.segments, &content.segments) {
            (Some(value), Some(content)) => value.starts_with(content),
            _ => true,
        }
    }

    /// The first value at this path in `doc`.
    pub fn first<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        match &self.segments {
            Some(segments) => {
                let mut node = doc;
                for segment in segments {
                    node = match segment {
                        Segment::Key(key) => node.get(key)?,
                        Segment::Index(idx) => node.get(*idx)?,
                    };
                }
                Some(node)
            }
            None => self.compiled.query(doc).first(),
        }
    }
}

impl AttrFilter {
    /// Keeps only `keep` (when given), then drops `skip`.
    pub fn new(keep: Option<Vec<String>>, skip: Vec<String>) -> Self {
        let keep = keep.filter(|k| !k.is_empty());
        Self { keep, skip }
    }

    fn is_identity(&self) -> bool {
        self.keep.is_none() && self.skip.is_empty()
    }

    fn admits(&self, key: &str) -> bool {
        let kept = self
            .keep
            .as_ref()
            .is_none_or(|keep| keep.iter().any(|k| k == key));
        kept && !self.skip.iter().any(|s| s == key)
    }

    /// `admits` on the raw bytes of a key (between the quotes), decoding escapes only if present.
    #[inline]
    fn admits_raw(&self, raw: &[u8]) -> bool {
        if memchr::memchr(b'\\', raw).is_some() {
            return match decode_key(raw) {
                Some(key) => self.admits(&key),
                None => true,
            };
        }
        let kept = self
            .keep
            .as_ref()
            .is_none_or(|keep| keep.iter().any(|k| k.as_bytes() == raw));
        kept && !self.skip.iter().any(|s| s.as_bytes() == raw)
    }

    fn apply(&self, record: Map<String, Value>) -> Map<String, Value> {
        if self.is_identity() {
            return record;
        }
        record
            .into_iter()
            .filter(|(key, _)| self.admits(key))
            .collect()
    }
}

impl RecordSelector {
    /// Records are the elements of the array at `content_path`, unchanged.
    pub fn new(content_path: RecordPath) -> Self {
        Self {
            content: content_path,
            filter: AttrFilter::default(),
            wrapper: None,
            explode: None,
        }
    }

    /// Applies `keepAttributes` / `skipAttributes`.
    pub fn with_filter(mut self, filter: AttrFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets `overrideWrapperAttribute` (applied only together with an explode path).
    pub fn with_wrapper(mut self, wrapper: Option<String>) -> Self {
        self.wrapper = wrapper.filter(|w| !w.is_empty());
        self
    }

    /// Sets `explodeEntityPath`.
    pub fn with_explode(mut self, explode: Option<ExplodeSelector>) -> Self {
        self.explode = explode;
        self
    }

    /// The contentPath.
    pub fn content_path(&self) -> &RecordPath {
        &self.content
    }

    /// Finds the records of `page` and writes them as NDJSON.
    pub fn locate(
        &self,
        page: &[u8],
        page_idx: u64,
        url: &str,
    ) -> Result<LocatedRecords, FetchError> {
        check_utf8(page, page_idx, url)?;
        match (&self.content.segments, &self.explode) {
            (Some(segments), None) => self.locate_fast(segments, page, page_idx, url),
            _ => self.locate_slow(page, page_idx, url),
        }
    }

    /// Finds the records of `page` and turns their array into NDJSON inside the page's own
    /// buffer: the commas between records become newlines and raw newlines elsewhere in the
    /// array become spaces, so the records are one slice of the page, without a copy. Returns
    /// the page (the records array no longer JSON; everything around it unchanged) and the
    /// records. The page is validated exactly as [`Self::locate`] does; a selector that drops
    /// attributes, explodes or needs a JSONPath query copies as [`Self::locate`] does, and the
    /// page is returned as it came.
    pub fn locate_in_place(
        &self,
        page: Bytes,
        page_idx: u64,
        url: &str,
    ) -> Result<(Bytes, LocatedRecords), FetchError> {
        let segments = match (&self.content.segments, &self.explode) {
            (Some(segments), None) if self.filter.is_identity() => segments,
            _ => {
                let located = self.locate(&page, page_idx, url)?;
                return Ok((page, located));
            }
        };
        check_utf8(&page, page_idx, url)?;
        let (span, separators, count) = {
            let mut emit = Emitter {
                page: &page,
                filter: &self.filter,
                output: Output::InPlace {
                    separators: Vec::new(),
                },
                count: 0,
            };
            let span = self
                .walk(segments, &mut emit)
                .map_err(|err| self.locate_error(err, segments, page_idx, url))?;
            let Output::InPlace { separators } = emit.output else {
                unreachable!("the emitter was made in place just above")
            };
            (span, separators, emit.count)
        };
        // The only copy is when someone else still holds the body (never on the fetcher's path).
        let mut buffer = page
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        // Inside the brackets: what was `{..}, {..}` becomes `{..}\n {..}`.
        let inner = span.start + 1..span.end - 1;
        fast::blank_newlines(&mut buffer[inner.clone()]);
        for comma in separators {
            buffer[comma] = b'\n';
        }
        // Without the whitespace around the records, an empty array is an empty slice.
        let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n');
        let first = buffer[inner.clone()].iter().position(|b| !is_space(b));
        let records = match first {
            Some(first) => {
                let last = buffer[inner.clone()]
                    .iter()
                    .rposition(|b| !is_space(b))
                    .unwrap_or(first);
                inner.start + first..inner.start + last + 1
            }
            None => inner.start..inner.start,
        };
        let page = buffer.freeze();
        let ndjson = page.slice(records);
        Ok((
            page,
            LocatedRecords {
                ndjson,
                record_count: count,
                array_span: Some(span),
            },
        ))
    }

    fn locate_fast(
        &self,
        segments: &[Segment],
        page: &[u8],
        page_idx: u64,
        url: &str,
    ) -> Result<LocatedRecords, FetchError> {
        // Records take about the page's size; reserving once avoids regrowth on the hot path.
        let mut emit = Emitter {
            page,
            filter: &self.filter,
            output: Output::Copy(Vec::with_capacity(page.len())),
            count: 0,
        };
        match self.walk(segments, &mut emit) {
            Ok(span) => {
                let Output::Copy(ndjson) = emit.output else {
                    unreachable!("the emitter was made to copy just above")
                };
                Ok(LocatedRecords {
                    ndjson: Bytes::from(ndjson),
                    record_count: emit.count,
                    array_span: Some(span),
                })
            }
            Err(err) => Err(self.locate_error(err, segments, page_idx, url)),
        }
    }

    /// Walks the whole page, handing the records to `emit`; returns the records array's span.
    fn walk(
        &self,
        segments: &[Segment],
        emit: &mut Emitter<'_, '_>,
    ) -> Result<Range<usize>, LocateError> {
        let mut scanner = Scanner::new(emit.page);
        let span = navigate(&mut scanner, segments, 0, emit)?;
        if scanner.at_end() {
            Ok(span)
        } else {
            Err(LocateError::Scan(
                scanner.error("trailing characters after the json document"),
            ))
        }
    }

    fn locate_error(
        &self,
        err: LocateError,
        segments: &[Segment],
        page_idx: u64,
        url: &str,
    ) -> FetchError {
        let path = self.content.source.clone();
        match err {
            LocateError::Scan(scan) => FetchError::Malformed {
                page_idx,
                url: url.to_owned(),
                offset: scan.offset,
                detail: scan.detail,
            },
            LocateError::Missing {
                level,
                problem,
                keys,
            } => FetchError::ContentPath {
                page_idx,
                path,
                problem,
                at: render_segments(&segments[..level]),
                keys: shown_keys(keys),
            },
            LocateError::NotArray { found, keys } => FetchError::ContentPath {
                page_idx,
                path,
                problem: format!("points at {found}, expected an array"),
                at: render_segments(&segments[..segments.len().saturating_sub(1)]),
                keys: shown_keys(keys),
            },
            LocateError::NotObject { element_idx, found } => FetchError::RecordNotObject {
                page_idx,
                element_idx,
                found,
            },
        }
    }

    fn locate_slow(
        &self,
        page: &[u8],
        page_idx: u64,
        url: &str,
    ) -> Result<LocatedRecords, FetchError> {
        // Validate with the scanner first so a bad page gets the same byte-offset message as on
        // the fast path.
        let mut scanner = Scanner::new(page);
        let validated = scanner.skip_value().and_then(|_| {
            if scanner.at_end() {
                Ok(())
            } else {
                Err(scanner.error("trailing characters after the json document"))
            }
        });
        if let Err(scan) = validated {
            return Err(FetchError::Malformed {
                page_idx,
                url: url.to_owned(),
                offset: scan.offset,
                detail: scan.detail,
            });
        }
        let doc: Value = serde_json::from_slice(page).map_err(|err| FetchError::Malformed {
            page_idx,
            url: url.to_owned(),
            offset: 0,
            detail: err.to_string(),
        })?;
        let top_keys = || match &doc {
            Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let Some(found) = self.content.first(&doc) else {
            return Err(FetchError::ContentPath {
                page_idx,
                path: self.content.source.clone(),
                problem: "was not found".to_owned(),
                at: "$".to_owned(),
                keys: top_keys(),
            });
        };
        let Value::Array(elements) = found else {
            return Err(FetchError::ContentPath {
                page_idx,
                path: self.content.source.clone(),
                problem: format!("points at {}, expected an array", value_kind(found)),
                at: "$".to_owned(),
                keys: top_keys(),
            });
        };
        let mut out = Vec::with_capacity(page.len());
        let mut count = 0;
        for (element_idx, element) in elements.iter().enumerate() {
            let Value::Object(map) = element else {
                return Err(FetchError::RecordNotObject {
                    page_idx,
                    element_idx,
                    found: value_kind(element),
                });
            };
            let record = self.filter.apply(map.clone());
            match &self.explode {
                None => {
                    write_line(&mut out, &Value::Object(record));
                    count += 1;
                }
                Some(explode) => {
                    let record = match &self.wrapper {
                        Some(wrapper) => {
                            let mut wrapped = Map::new();
                            wrapped.insert(wrapper.clone(), Value::Object(record));
                            wrapped
                        }
                        None => record,
                    };
                    count += explode.emit_rows(record, page_idx, element_idx, &mut out)?;
                }
            }
        }
        Ok(LocatedRecords {
            ndjson: Bytes::from(out),
            record_count: count,
            array_span: None,
        })
    }
}

impl ExplodeSelector {
    /// `explodeEntityPath`: `path` must be plain keys (`$.email.activity`), relative to the
    /// wrapped record.
    pub fn try_new(
        path: RecordPath,
        filter: AttrFilter,
        wrapper: Option<String>,
    ) -> Result<Self, FetchError> {
        match &path.segments {
            Some(segments) if matches!(segments.last(), Some(Segment::Key(_))) => {}
            _ => {
                return Err(FetchError::Spec(format!(
                    "explodeEntityPath {:?} must be a path of plain keys ending in a key, like $.email.activity",
                    path.source
                )));
            }
        }
        Ok(Self {
            path,
            filter,
            wrapper: wrapper.filter(|w| !w.is_empty()),
        })
    }

    fn emit_rows(
        &self,
        record: Map<String, Value>,
        page_idx: u64,
        element_idx: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, FetchError> {
        let segments = self.path.segments.as_deref().unwrap_or_default();
        let Some((Segment::Key(array_key), parents)) = segments.split_last() else {
            return Ok(0);
        };
        let mut parent_record = Value::Object(record);
        // Take the sub-array out of its parent object; what remains is the parent row.
        let sub_array = match container_mut(&mut parent_record, parents) {
            Some(Value::Object(container)) => container.shift_remove(array_key),
            _ => None,
        };
        let elements = match sub_array {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(elements)) => elements,
            Some(other) => {
                return Err(FetchError::Data {
                    page_idx,
                    detail: format!(
                        "record {element_idx}: explodeEntityPath {} points at {}, expected an array",
                        self.path.source,
                        value_kind(&other)
                    ),
                });
            }
        };
        if elements.is_empty() {
            write_line(out, &parent_record);
            return Ok(1);
        }
        let slot = self.wrapper.clone().unwrap_or_else(|| array_key.clone());
        let n_rows = elements.len();
        for element in elements {
            let element = match element {
                Value::Object(map) => Value::Object(self.filter.apply(map)),
                other => other,
            };
            let mut row = parent_record.clone();
            if let Some(Value::Object(container)) = container_mut(&mut row, parents) {
                container.insert(slot.clone(), element);
            }
            write_line(out, &row);
        }
        Ok(n_rows)
    }
}

impl Envelope {
    /// Parses the page without its records array (`array_span` replaced by `[]`), or the whole
    /// page when a path reaches into the records or the locator took the slow path.
    pub fn parse(
        page: &[u8],
        located: &LocatedRecords,
        content: &RecordPath,
        paths: &[&RecordPath],
        page_idx: u64,
    ) -> Result<Self, FetchError> {
        let needs_records = paths.iter().any(|p| p.reaches_into(content));
        let parsed = match (&located.array_span, needs_records) {
            (Some(span), false) => {
                let mut reduced = Vec::with_capacity(page.len() - span.len() + 2);
                reduced.extend_from_slice(&page[..span.start]);
                reduced.extend_from_slice(b"[]");
                reduced.extend_from_slice(&page[span.end..]);
                serde_json::from_slice(&reduced)
            }
            _ => serde_json::from_slice(page),
        };
        let doc = parsed.map_err(|err| FetchError::Data {
            page_idx,
            detail: format!("cannot read the page envelope: {err}"),
        })?;
        Ok(Self { doc })
    }

    /// The first value at `path`, if any.
    pub fn get(&self, path: &RecordPath) -> Option<&Value> {
        self.path_value(path)
    }

    fn path_value(&self, path: &RecordPath) -> Option<&Value> {
        path.first(&self.doc)
    }
}

fn check_utf8(page: &[u8], page_idx: u64, url: &str) -> Result<(), FetchError> {
    match std::str::from_utf8(page) {
        Ok(_) => Ok(()),
        Err(err) => Err(FetchError::Malformed {
            page_idx,
            url: url.to_owned(),
            offset: err.valid_up_to(),
            detail: "invalid UTF-8".to_owned(),
        }),
    }
}

/// The keys an error message lists: the first [`SHOWN_KEYS`], each cut to [`SHOWN_KEY_CHARS`],
/// so an object with thousands of keys (or one huge key) cannot flood a message.
fn shown_keys(keys: Vec<String>) -> Vec<String> {
    let n_keys = keys.len();
    let mut shown: Vec<String> = keys
        .into_iter()
        .take(SHOWN_KEYS)
        .map(|key| crate::error::cut(&key, SHOWN_KEY_CHARS))
        .collect();
    if n_keys > SHOWN_KEYS {
        shown.push(format!("… {} more", n_keys - SHOWN_KEYS));
    }
    shown
}

const SHOWN_KEYS: usize = 20;
const SHOWN_KEY_CHARS: usize = 64;

/// Plain segments of a normalised path, or `None` when it uses wildcards, slices, filters or
/// recursive descent.
fn plain_segments(path: &str) -> Option<Vec<Segment>> {
    let mut rest = path.strip_prefix('$')?;
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let name = &after_dot[..end];
            if name.is_empty() || name == "*" {
                return None;
            }
            segments.push(Segment::Key(name.to_owned()));
            rest = &after_dot[end..];
        } else if let Some(inside) = rest.strip_prefix('[') {
            let close = inside.find(']')?;
            let selector = inside[..close].trim();
            let quoted = selector
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| selector.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            if let Some(name) = quoted {
                if name.contains(['\\', '\'', '"']) {
                    return None;
                }
                segments.push(Segment::Key(name.to_owned()));
            } else {
                segments.push(Segment::Index(selector.parse().ok()?));
            }
            rest = &inside[close + 1..];
        } else {
            return None;
        }
    }
    Some(segments)
}

fn render_segments(segments: &[Segment]) -> String {
    let mut out = String::from("$");
    for segment in segments {
        match segment {
            Segment::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Index(idx) => out.push_str(&format!("[{idx}]")),
        }
    }
    out
}

/// Decodes the raw bytes of a key (between its quotes), escapes included.
fn decode_key(raw: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

fn decode_key_lossy(raw: &[u8]) -> String {
    decode_key(raw).unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
}

fn container_mut<'v>(value: &'v mut Value, parents: &[Segment]) -> Option<&'v mut Value> {
    let mut node = value;
    for segment in parents {
        node = match segment {
            Segment::Key(key) => node.get_mut(key)?,
            Segment::Index(idx) => node.get_mut(*idx)?,
        };
    }
    Some(node)
}

fn write_line(out: &mut Vec<u8>, value: &Value) {
    // Serialising a Value into a Vec cannot fail: keys are strings and the writer is infallible.
    if serde_json::to_writer(&mut *out, value).is_ok() {
        out.push(b'\n');
    }
}

pub(crate) fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
