//! JSON records (NDJSON page bytes) to Arrow `RecordBatch`es: schema inference, evolution and widening.
//!
//! Main types: [`RecordDecoder`] (stateful across the pages of one run), [`DecoderOptions`],
//! [`DecodedPage`], [`DecodeWarning`], [`DecodeError`]; free functions [`json_schema_to_arrow`] and
//! [`infer_schema`]. [`PageDecoder`] runs the fast path of one page on any thread, for callers
//! that decode pages in parallel and hand the results back in order (`page`).
//!
//! How it stays fast: records are never turned into an object tree. A page that fits the schema
//! goes in one pass from its bytes into Arrow builders (`direct`). Any other page goes through
//! arrow-json's tape decoder into Arrow arrays, with our own leaf decoders (plugged in through
//! arrow-json's `DecoderFactory`) so that every value that does not fit its column is seen; both
//! give the same batches for the pages the direct decoder takes. With an inferred schema the decoder runs in strict mode: a page that brings anything new (a new
//! field, a float in an integer column, a string in a number column, an object in a list column...)
//! fails the fast path, and only then is that page walked on the tape to infer its shape, merged
//! into the schema, and decoded again with the grown schema. Pages that match the schema cost one
//! tape pass and nothing else.
//!
//! Rules: nested objects become structs and arrays lists, integers `Int64`, other numbers
//! `Float64`, booleans `Boolean`, strings `Utf8` (ISO-8601 strings stay strings unless a known schema
//! says timestamp). A column whose values disagree widens `Int64` to `Float64`; any other
//! disagreement turns the column into `Utf8` holding each non-string value as its JSON text, counted
//! as a [`DecodeWarning`]. Containers nested deeper than [`DecoderOptions::max_depth`] are kept as
//! JSON text too, so hostile nesting cannot exhaust the stack, and so are nested objects with more
//! than 1000 fields (objects keyed by data, such as dates or ids, would add columns on every
//! page). A field seen only as `null` or `{}` so far is a `Null` column (Parquet cannot store a
//! struct without fields).
//!
//! With a known schema nothing is inferred: fields the schema lacks are ignored, and a value that
//! does not fit its column is written as null and counted as a warning (a `Utf8` column takes any
//! value as JSON text instead).
//!
//! Invariants: no IO, no async; a page is decoded completely before any batch of it is returned,
//! so a page that fails emits nothing.

mod direct;
mod leaf;
mod page;
mod rescue;
mod schema;
mod tape;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};

pub use page::{PageDecoder, PageDecoderSpec, PreDecoded};
pub use schema::{UTC_TIMEZONE, infer_schema, json_schema_to_arrow};

use leaf::Mode;
use schema::ObjectShape;

/// Rows per emitted batch when the caller has no opinion.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Nesting depth beyond which containers are kept as JSON text.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// How a [`RecordDecoder`] decodes one run.
#[derive(Debug, Clone)]
pub struct DecoderOptions {
    /// Rows per emitted batch; batches may span pages. Zero is treated as one.
    pub batch_rows: usize,
    /// How many non-empty pages inform the first schema before anything is emitted (their bytes
    /// are held back until then). Later pages still grow the schema when they disagree. Zero is
    /// treated as one.
    pub infer_pages: usize,
    /// The schema to decode into (the spec's custom `schema` or the mapping's target); when given
    /// nothing is inferred and the schema never changes.
    pub known_schema: Option<SchemaRef>,
    /// Containers (objects, arrays) at this nesting depth or deeper are kept as JSON text; the
    /// record's own fields are at depth 1.
    pub max_depth: usize,
    /// Rescue values that do not fit their column instead of re-typing the column (inferred
    /// schema) or writing null (known schema): the field is written as null and its JSON text
    /// kept in the `_rescued_data` column (see [`crate::dataset`]). An inferred schema then
    /// only grows by the dataset schema rules ([`crate::dataset::grow_schema`]).
    pub rescue: bool,
    /// The schema to start from instead of inferring afresh (the dataset schema); pages grow
    /// it. Ignored when `known_schema` is given.
    pub base_schema: Option<SchemaRef>,
    /// Decode a page that fits the schema in one pass over its bytes, without arrow-json's tape
    /// (the same batches, faster). On by default; off only to compare the two.
    pub direct: bool,
}

/// Decodes the NDJSON pages of one run, in order, into Arrow record batches.
pub struct RecordDecoder {
    options: DecoderOptions,
    schema: SchemaRef,
    phase: Phase,
    /// The fast path for `schema`.
    fast: PageDecoder,
    /// Paths whose values were cut at `max_depth`: their JSON text is reported as such.
    capped_paths: Arc<BTreeSet<String>>,
    /// Counts the changes of `schema` and `capped_paths`, so that a page decoded elsewhere
    /// ([`PreDecoded`]) is known to be of the current schema.
    generation: u64,
    /// Decoded rows not yet emitted, all of `schema`.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// The last page given, for errors of `finish`.
    last_page_idx: u64,
}

/// What one page produced.
#[derive(Debug, Default)]
pub struct DecodedPage {
    /// Complete batches, in record order. When `schema_changed`, the batches of the old schema (the
    /// rows buffered before this page) come first, then batches of the new schema: roll the output
    /// file wherever a batch's schema differs from the previous one.
    pub batches: Vec<RecordBatch>,
    /// Values that did not fit their column, per field path, and column type changes.
    pub warnings: Vec<DecodeWarning>,
    /// This page changed an already established schema (new column, widened or re-typed column).
    /// The very first inferred schema does not count as a change.
    pub schema_changed: bool,
    /// Records of this page that had a value moved to `_rescued_data` (with
    /// [`DecoderOptions::rescue`]).
    pub rescued_records: u64,
}

/// Something about a page's values worth telling the user; the data was still written.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeWarning {
    pub page_idx: u64,
    /// Dotted field path; `[]` stands for the elements of a list (`tags[].name`).
    pub path: String,
    pub kind: WarningKind,
    /// How many values of the page this concerns (1 for a column type change).
    pub count: u64,
}

/// Why a [`DecodeWarning`] was raised.
#[derive(Debug, Clone, PartialEq)]
pub enum WarningKind {
    /// Values that fit no rule for the column (an object where strings were, a number in a text
    /// column...) were written as their JSON text.
    ValueAsJsonText,
    /// Values nested at or below the depth limit were written as their JSON text.
    DepthCapped { max_depth: usize },
    /// The column changed type from this page on; earlier batches keep the old type.
    TypeChanged { from: DataType, to: DataType },
    /// Values did not fit the known schema's type and were written as null.
    NullForKnownSchema { expected: DataType },
    /// Values did not fit their column's type: written as null, their JSON text kept in
    /// `_rescued_data` ([`DecoderOptions::rescue`]).
    Rescued { expected: DataType },
}

/// Why a page (or a JSON schema) could not be decoded. Nothing of a failed page is emitted.
/// Page and record numbers are 0-based; `start` is the first bytes of the offending record.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "page {page_idx}, record {record}: invalid JSON ({message}); record starts with `{start}`"
    )]
    InvalidJson {
        page_idx: u64,
        record: u64,
        message: String,
        start: String,
    },
    #[error(
        "page {page_idx}, record {record}: expected a JSON object, found {found}; record starts with `{start}`"
    )]
    NotAnObject {
        page_idx: u64,
        record: u64,
        found: &'static str,
        start: String,
    },
    #[error("page {page_idx}: records do not fit the schema: {message}")]
    SchemaMismatch { page_idx: u64, message: String },
    #[error("json schema {pointer}: {message}")]
    JsonSchema { pointer: String, message: String },
}

/// Where the decoder stands in a run.
enum Phase {
    /// No schema yet: non-empty pages are inferred and held back until `infer_pages` were seen.
    Inferring {
        shape: ObjectShape,
        held: Vec<(u64, Vec<u8>)>,
    },
    Decoding,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            infer_pages: 1,
            known_schema: None,
            max_depth: DEFAULT_MAX_DEPTH,
            rescue: false,
            base_schema: None,
            direct: true,
        }
    }
}

impl RecordDecoder {
    pub fn new(options: DecoderOptions) -> Self {
        let options = DecoderOptions {
            batch_rows: options.batch_rows.max(1),
            infer_pages: options.infer_pages.max(1),
            max_depth: options.max_depth.max(1),
            ..options
        };
        let base = options
            .base_schema
            .clone()
            .filter(|base| !base.fields().is_empty());
        let (schema, phase) = match (&options.known_schema, base) {
            (Some(known), _) => (known.clone(), Phase::Decoding),
            (None, Some(base)) => (base, Phase::Decoding),
            (None, None) => (
                Arc::new(Schema::empty()),
                Phase::Inferring {
                    shape: ObjectShape::default(),
                    held: Vec::new(),
                },
            ),
        };
        Self {
            options,
            schema,
            phase,
            fast: PageDecoder::new(),
            capped_paths: Arc::new(BTreeSet::new()),
            generation: 0,
            pending: Vec::new(),
            pending_rows: 0,
            last_page_idx: 0,
        }
    }

    /// Decodes one page of NDJSON (one object per line; blank lines are ignored). Returns the
    /// batches that are complete after this page; the rest stays buffered for later pages.
    pub fn decode_page(
        &mut self,
        page_idx: u64,
        ndjson: &[u8],
    ) -> Result<DecodedPage, DecodeError> {
        let mut out = DecodedPage::default();
        self.last_page_idx = page_idx;
        if let Phase::Inferring { shape, held } = &mut self.phase {
            // Inferred into a copy: a page that fails half way must not leave its fields behind.
            let mut grown = shape.clone();
            // A page that fixes the schema alone is decoded on the tape inference walks, so it
            // is parsed once, not once to infer and once to decode.
            let fixes_alone = held.is_empty() && self.options.infer_pages <= 1;
            let (found, on_tape) = if fixes_alone {
                let spec = PageDecoderSpec {
                    schema: self.schema.clone(),
                    mode: Mode::Evolving,
                    capped_paths: self.capped_paths.clone(),
                    max_depth: self.options.max_depth,
                    batch_rows: self.options.batch_rows,
                    direct: self.options.direct,
                    generation: self.generation + 1,
                };
                schema::infer_then_decode(&mut grown, page_idx, ndjson, spec)?
            } else {
                let found =
                    schema::infer_into(&mut grown, page_idx, ndjson, self.options.max_depth)?;
                (found, None)
            };
            if found.records == 0 {
                return Ok(out);
            }
            *shape = grown;
            Arc::make_mut(&mut self.capped_paths).extend(found.capped_paths);
            if let Some(Ok((batch, counters))) = on_tape {
                // What `start_decoding` and the fast path would do with this page.
                self.schema = Arc::new(shape.to_schema());
                self.generation += 1;
                self.phase = Phase::Decoding;
                let counts = counters
                    .iter()
                    .filter_map(|counter| {
                        let count = counter.take();
                        (count > 0).then(|| (counter.path.clone(), counter.kind.clone(), count))
                    })
                    .collect();
                push_counts(page_idx, counts, &mut out);
                self.pending_rows += batch.num_rows();
                self.pending.push(batch);
                self.emit_full_batches(&mut out)
                    .map_err(|error| schema_mismatch(page_idx, &error))?;
                return Ok(out);
            }
            held.push((page_idx, ndjson.to_vec()));
            if held.len() < self.options.infer_pages {
                return Ok(out);
            }
            self.start_decoding(&mut out)?;
            return Ok(out);
        }
        self.decode_into(page_idx, ndjson, &mut out)?;
        Ok(out)
    }

    /// What a [`PageDecoder`] on another thread needs to decode the next pages as this decoder
    /// would; `None` while the first schema is still being inferred (pages go through
    /// [`Self::decode_page`] then).
    pub fn page_decoder_spec(&self) -> Option<PageDecoderSpec> {
        match self.phase {
            Phase::Inferring { .. } => None,
            Phase::Decoding => Some(self.spec()),
        }
    }

    /// Like [`Self::decode_page`] for a page whose fast path already ran elsewhere: `predecoded`
    /// is taken when it was made for the current schema and needs nothing more; otherwise the
    /// page is decoded here from `ndjson`. Pages must still come in order.
    pub fn decode_predecoded(
        &mut self,
        page_idx: u64,
        ndjson: &[u8],
        predecoded: PreDecoded,
    ) -> Result<DecodedPage, DecodeError> {
        let is_current =
            matches!(self.phase, Phase::Decoding) && predecoded.generation == self.generation;
        let fast = match predecoded.page {
            Some(fast) if is_current && !(self.options.rescue && fast.nulled_misfits()) => fast,
            _ => return self.decode_page(page_idx, ndjson),
        };
        self.last_page_idx = page_idx;
        let mut out = DecodedPage::default();
        push_counts(page_idx, fast.counts, &mut out);
        for chunk in fast.chunks {
            self.pending_rows += chunk.num_rows();
            self.pending.push(chunk);
        }
        self.emit_full_batches(&mut out)
            .map_err(|error| schema_mismatch(page_idx, &error))?;
        Ok(out)
    }

    /// Decodes what is held back and returns every buffered row. Warnings of pages held back for
    /// inference are dropped here; use [`Self::finish_page`] to keep them.
    pub fn finish(self) -> Result<Vec<RecordBatch>, DecodeError> {
        self.finish_page().map(|page| page.batches)
    }

    /// Like [`Self::finish`], with the warnings of pages that were held back for inference.
    pub fn finish_page(mut self) -> Result<DecodedPage, DecodeError> {
        self.flush()
    }

    /// Emits every buffered row now (and fixes the schema from held-back pages), then goes on
    /// decoding: the engine calls it at a checkpoint, where every row of the pages given so far
    /// must be out of the decoder.
    pub fn flush(&mut self) -> Result<DecodedPage, DecodeError> {
        let mut out = DecodedPage::default();
        if matches!(&self.phase, Phase::Inferring { held, .. } if !held.is_empty()) {
            self.start_decoding(&mut out)?;
        }
        let last_page_idx = self.last_page_idx;
        self.flush_pending(&mut out)
            .map_err(|error| schema_mismatch(last_page_idx, &error))?;
        Ok(out)
    }

    /// The current schema: the known one, or what was inferred so far (empty before the first
    /// non-empty page).
    pub fn schema(&self) -> SchemaRef {
        match &self.phase {
            Phase::Inferring { shape, .. } => Arc::new(shape.to_schema()),
            Phase::Decoding => self.schema.clone(),
        }
    }

    /// Fixes the schema from the held-back pages and decodes them.
    fn start_decoding(&mut self, out: &mut DecodedPage) -> Result<(), DecodeError> {
        let Phase::Inferring { shape, held } = std::mem::replace(&mut self.phase, Phase::Decoding)
        else {
            return Ok(());
        };
        self.schema = Arc::new(shape.to_schema());
        self.generation += 1;
        for (page_idx, bytes) in held {
            self.decode_into(page_idx, &bytes, out)?;
        }
        Ok(())
    }

    fn mode(&self) -> Mode {
        match self.options.known_schema {
            Some(_) => Mode::Fixed,
            None => Mode::Evolving,
        }
    }

    /// Decodes a whole page into `pending`, growing the schema first if the page needs it.
    fn decode_into(
        &mut self,
        page_idx: u64,
        bytes: &[u8],
        out: &mut DecodedPage,
    ) -> Result<(), DecodeError> {
        let chunks = match self.decode_chunks(bytes) {
            Ok(_) if self.options.rescue && self.nulled_misfits() => {
                // A known schema wrote misfits as null: do the page again, rescuing them.
                self.fast.take_counts();
                self.rescue_page(page_idx, bytes, out)?
            }
            Ok(chunks) => chunks,
            Err(fast_path_error) => {
                self.fast.reset();
                let grew = match self.mode() {
                    Mode::Fixed => false,
                    Mode::Evolving => self.evolve(page_idx, bytes, out)?,
                };
                if !grew && !self.options.rescue {
                    return Err(explain(page_idx, bytes, &fast_path_error));
                }
                match self.decode_chunks(bytes) {
                    Ok(chunks) => chunks,
                    Err(error) => {
                        self.fast.reset();
                        if !self.options.rescue {
                            return Err(explain(page_idx, bytes, &error));
                        }
                        // Invalid JSON and non-objects are errors, not something to rescue.
                        tape::check_records(page_idx, bytes)?;
                        self.rescue_page(page_idx, bytes, out)?
                    }
                }
            }
        };
        self.collect_warnings(page_idx, out);
        for chunk in chunks {
            self.pending_rows += chunk.num_rows();
            self.pending.push(chunk);
        }
        self.emit_full_batches(out)
            .map_err(|error| schema_mismatch(page_idx, &error))
    }

    /// The fast path: one tape pass over the page with the current schema. Any value the schema
    /// does not expect makes it fail.
    fn decode_chunks(&mut self, bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
        let spec = self.spec();
        self.fast.decode_chunks(&spec, bytes)
    }

    fn spec(&self) -> PageDecoderSpec {
        PageDecoderSpec {
            schema: self.schema.clone(),
            mode: self.mode(),
            capped_paths: self.capped_paths.clone(),
            max_depth: self.options.max_depth,
            batch_rows: self.options.batch_rows,
            direct: self.options.direct,
            generation: self.generation,
        }
    }

    /// Whether the fast path of a known schema wrote values as null because they did not fit.
    fn nulled_misfits(&self) -> bool {
        self.fast.counters().iter().any(|counter| {
            matches!(counter.kind, WarningKind::NullForKnownSchema { .. }) && counter.peek() > 0
        })
    }

    /// Moves the values of the page that do not fit the schema into `_rescued_data` (adding that
    /// column when the schema lacks it) and decodes the cleaned page.
    fn rescue_page(
        &mut self,
        page_idx: u64,
        bytes: &[u8],
        out: &mut DecodedPage,
    ) -> Result<Vec<RecordBatch>, DecodeError> {
        let cleaned = rescue::clean_page(
            page_idx,
            bytes,
            self.schema.fields(),
            self.mode() == Mode::Fixed,
        )?;
        let has_column = self
            .schema
            .column_with_name(crate::dataset::RESCUED_DATA)
            .is_some();
        if cleaned.rescued_records > 0 && !has_column {
            self.flush_pending(out)
                .map_err(|error| schema_mismatch(page_idx, &error))?;
            self.schema = Arc::new(crate::dataset::with_rescued_column(&self.schema));
            self.generation += 1;
            self.fast.reset();
            out.schema_changed = true;
        }
        for (path, (expected, count)) in cleaned.counts {
            out.warnings.push(DecodeWarning {
                page_idx,
                path,
                kind: WarningKind::Rescued { expected },
                count,
            });
        }
        out.rescued_records += cleaned.rescued_records;
        match self.decode_chunks(&cleaned.ndjson) {
            Ok(chunks) => Ok(chunks),
            Err(error) => {
                self.fast.reset();
                Err(explain(page_idx, bytes, &error))
            }
        }
    }

    /// The slow path: infers the page's shape and merges it into the schema. Returns whether the
    /// schema changed; when it did, buffered rows of the old schema are emitted first.
    fn evolve(
        &mut self,
        page_idx: u64,
        bytes: &[u8],
        out: &mut DecodedPage,
    ) -> Result<bool, DecodeError> {
        let (grown, found) = if self.options.rescue {
            // The page's own shape, merged by the dataset rules: established types stay.
            let mut shape = ObjectShape::default();
            let found = schema::infer_into(&mut shape, page_idx, bytes, self.options.max_depth)?;
            let grown = crate::dataset::grow_schema(&self.schema, &shape.to_schema());
            (Arc::new(grown), found)
        } else {
            let mut shape = ObjectShape::from_fields(self.schema.fields());
            let found = schema::infer_into(&mut shape, page_idx, bytes, self.options.max_depth)?;
            (Arc::new(shape.to_schema()), found)
        };
        if grown == self.schema {
            return Ok(false);
        }
        for (path, from, to) in schema::type_changes(&self.schema, &grown) {
            out.warnings.push(DecodeWarning {
                page_idx,
                path,
                kind: WarningKind::TypeChanged { from, to },
                count: 1,
            });
        }
        self.flush_pending(out)
            .map_err(|error| schema_mismatch(page_idx, &error))?;
        self.schema = grown;
        Arc::make_mut(&mut self.capped_paths).extend(found.capped_paths);
        self.generation += 1;
        out.schema_changed = true;
        Ok(true)
    }

    fn collect_warnings(&mut self, page_idx: u64, out: &mut DecodedPage) {
        let counts = self.fast.take_counts();
        push_counts(page_idx, counts, out);
    }

    /// Emits every complete batch of `batch_rows` rows; the remainder stays pending.
    fn emit_full_batches(&mut self, out: &mut DecodedPage) -> Result<(), ArrowError> {
        let batch_rows = self.options.batch_rows;
        if self.pending_rows < batch_rows {
            return Ok(());
        }
        let all = self.take_pending()?;
        let mut offset = 0;
        while all.num_rows() - offset >= batch_rows {
            out.batches.push(all.slice(offset, batch_rows));
            offset += batch_rows;
        }
        let rest = all.num_rows() - offset;
        if rest > 0 {
            self.pending.push(all.slice(offset, rest));
            self.pending_rows = rest;
        }
        Ok(())
    }

    /// Emits all buffered rows as one batch.
    fn flush_pending(&mut self, out: &mut DecodedPage) -> Result<(), ArrowError> {
        if self.pending_rows > 0 {
            out.batches.push(self.take_pending()?);
        }
        Ok(())
    }

    fn take_pending(&mut self) -> Result<RecordBatch, ArrowError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        if let [only] = pending.as_slice() {
            return Ok(only.clone());
        }
        arrow_select::concat::concat_batches(&self.schema, &pending)
    }
}

impl DecodeError {
    /// Decoding is deterministic: the same bytes fail the same way, so no retry can help.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// The page the error is about, if it is about a page.
    pub fn page_idx(&self) -> Option<u64> {
        match self {
            Self::InvalidJson { page_idx, .. }
            | Self::NotAnObject { page_idx, .. }
            | Self::SchemaMismatch { page_idx, .. } => Some(*page_idx),
            Self::JsonSchema { .. } => None,
        }
    }
}

impl fmt::Debug for RecordDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordDecoder")
            .field("options", &self.options)
            .field("schema", &self.schema)
            .field("pending_rows", &self.pending_rows)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for DecodeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            page_idx,
            path,
            kind,
            count,
        } = self;
        match kind {
            WarningKind::ValueAsJsonText => write!(
                f,
                "page {page_idx}, field `{path}`: {count} value(s) of another type written as JSON text"
            ),
            WarningKind::DepthCapped { max_depth } => write!(
                f,
                "page {page_idx}, field `{path}`: {count} value(s) nested {max_depth} levels deep written as JSON text"
            ),
            WarningKind::TypeChanged { from, to } => write!(
                f,
                "page {page_idx}, field `{path}`: column type changed from {from} to {to}"
            ),
            WarningKind::NullForKnownSchema { expected } => write!(
                f,
                "page {page_idx}, field `{path}`: {count} value(s) that are not {expected} written as null"
            ),
            WarningKind::Rescued { expected } => write!(
                f,
                "page {page_idx}, field `{path}`: {count} value(s) that are not {expected} kept in _rescued_data"
            ),
        }
    }
}

/// Turns a failure of the fast path into the most precise error: invalid JSON or a record that is
/// not an object (with its position), else the decoder's own message.
fn explain(page_idx: u64, bytes: &[u8], error: &ArrowError) -> DecodeError {
    match tape::check_records(page_idx, bytes) {
        Err(precise) => precise,
        Ok(()) => schema_mismatch(page_idx, error),
    }
}

fn push_counts(page_idx: u64, counts: Vec<(String, WarningKind, u64)>, out: &mut DecodedPage) {
    for (path, kind, count) in counts {
        out.warnings.push(DecodeWarning {
            page_idx,
            path,
            kind,
            count,
        });
    }
}

fn schema_mismatch(page_idx: u64, error: &ArrowError) -> DecodeError {
    let message = match error {
        ArrowError::JsonError(message) => message.clone(),
        other => other.to_string(),
    };
    DecodeError::SchemaMismatch { page_idx, message }
}
