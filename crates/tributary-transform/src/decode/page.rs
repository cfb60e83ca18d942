//! The fast path of decoding one page, on any thread: [`PageDecoder`] runs the direct decoder
//! (`direct`: one pass over the bytes into Arrow builders) and, for a page that one declines,
//! arrow-json's tape decoder with our leaf decoders, for a snapshot of a run's schema
//! ([`PageDecoderSpec`]). Both give the same batches for a page the direct decoder takes.
//!
//! A [`RecordDecoder`](super::RecordDecoder) uses one for its own pages; a caller that wants
//! pages decoded in parallel gives each worker thread its own `PageDecoder` and the current
//! [`RecordDecoder::page_decoder_spec`](super::RecordDecoder::page_decoder_spec), and hands the
//! [`PreDecoded`] results back to the run's `RecordDecoder` in page order
//! ([`RecordDecoder::decode_predecoded`](super::RecordDecoder::decode_predecoded)). That one
//! accepts a result only if it was made for the schema it holds now and needs none of the slow
//! paths (schema growth, rescue); otherwise it decodes the page itself, so the batches, warnings
//! and errors are exactly those of decoding every page in order on one thread.
//!
//! [`decode_tape`] runs the same decoders on a tape that is already built (the one schema
//! inference walked), so that the first page of a run is parsed once for inference and
//! decoding together.
//!
//! Invariant: a `PreDecoded` is the fast path's full outcome for one page (every chunk, every
//! count), never part of it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_json::reader::{ArrayDecoder, Decoder, DecoderContext, DecoderFactory, Tape};
use arrow_schema::{ArrowError, FieldRef, SchemaRef};

use super::WarningKind;
use super::direct::DirectDecoder;
use super::leaf::{LeafFactory, Mode, PathCounter};

/// After the direct decoder declined a page, this many pages of the same schema go straight to
/// the tape path, so that a run whose pages never fit pays the wasted pass on few of them.
const DIRECT_BACKOFF_PAGES: u32 = 32;

/// What a [`PageDecoder`] needs to decode pages like the run's decoder would right now.
#[derive(Debug, Clone)]
pub struct PageDecoderSpec {
    pub(super) schema: SchemaRef,
    pub(super) mode: Mode,
    pub(super) capped_paths: Arc<BTreeSet<String>>,
    pub(super) max_depth: usize,
    pub(super) batch_rows: usize,
    /// Try the direct decoder first ([`super::DecoderOptions::direct`]).
    pub(super) direct: bool,
    /// Changes whenever the run's schema (or its capped paths) changes.
    pub(super) generation: u64,
}

/// A reusable fast-path decoder; rebuilt when it is given a spec of another generation.
#[derive(Default)]
pub struct PageDecoder {
    /// The arrow-json decoder and the generation it was built for; `None` until built and after
    /// any failure, because a failed flush leaves its tape half consumed.
    built: Option<(u64, Decoder)>,
    /// Per-column counters of the built decoder (values written as JSON text or as null).
    counters: Vec<Arc<PathCounter>>,
    /// The direct decoder and the generation it was built for; inside, `None` when that schema
    /// has no direct decoder.
    direct: Option<(u64, Option<DirectDecoder>)>,
    /// Pages still to leave to the tape path after the direct decoder declined one.
    direct_backoff: u32,
}

/// The fast path's outcome for one page, made by [`PageDecoder::predecode`].
pub struct PreDecoded {
    pub(super) generation: u64,
    /// `None`: the fast path failed, the run's decoder must decode the page itself.
    pub(super) page: Option<FastPage>,
}

/// A page the fast path decoded.
pub(super) struct FastPage {
    pub chunks: Vec<RecordBatch>,
    /// Per counter of the decoder, in its order: the values written differently, when any.
    pub counts: Vec<(String, WarningKind, u64)>,
}

impl PageDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `bytes` (NDJSON) with `spec` on the calling thread.
    pub fn predecode(&mut self, spec: &PageDecoderSpec, bytes: &[u8]) -> PreDecoded {
        let page = match self.decode_chunks(spec, bytes) {
            Ok(chunks) => Some(FastPage {
                chunks,
                counts: self.take_counts(),
            }),
            Err(_) => {
                self.reset();
                None
            }
        };
        PreDecoded {
            generation: spec.generation,
            page,
        }
    }

    /// Forgets the built decoder (after a failure, or to start afresh).
    pub(super) fn reset(&mut self) {
        self.built = None;
    }

    pub(super) fn counters(&self) -> &[Arc<PathCounter>] {
        &self.counters
    }

    /// The counts since the last call, per counter with a non-zero count.
    pub(super) fn take_counts(&self) -> Vec<(String, WarningKind, u64)> {
        let mut counts = Vec::new();
        for counter in &self.counters {
            let count = counter.take();
            if count > 0 {
                counts.push((counter.path.clone(), counter.kind.clone(), count));
            }
        }
        counts
    }

    /// One pass over the page with the spec's schema: the direct decoder's, else the tape's. Any
    /// value the schema does not expect makes it fail (with an inferred schema).
    pub(super) fn decode_chunks(
        &mut self,
        spec: &PageDecoderSpec,
        bytes: &[u8],
    ) -> Result<Vec<RecordBatch>, ArrowError> {
        if let Some(chunks) = self.decode_direct(spec, bytes) {
            return Ok(chunks);
        }
        self.decode_tape_chunks(spec, bytes)
    }

    /// The direct decoder's batches of the page, or `None`: the tape path decodes it.
    fn decode_direct(&mut self, spec: &PageDecoderSpec, bytes: &[u8]) -> Option<Vec<RecordBatch>> {
        if !spec.direct {
            return None;
        }
        if !matches!(&self.direct, Some((generation, _)) if *generation == spec.generation) {
            let direct = DirectDecoder::new(&spec.schema, spec.mode, spec.batch_rows);
            self.direct = Some((spec.generation, direct));
            self.direct_backoff = 0;
        }
        if self.direct_backoff > 0 {
            self.direct_backoff -= 1;
            return None;
        }
        let direct = self.direct.as_mut()?.1.as_mut()?;
        let chunks = direct.decode(bytes);
        if chunks.is_none() {
            self.direct_backoff = DIRECT_BACKOFF_PAGES;
        }
        chunks
    }

    /// The tape path: arrow-json's tape decoder with our leaf decoders.
    fn decode_tape_chunks(
        &mut self,
        spec: &PageDecoderSpec,
        bytes: &[u8],
    ) -> Result<Vec<RecordBatch>, ArrowError> {
        let is_current =
            matches!(&self.built, Some((generation, _)) if *generation == spec.generation);
        if !is_current {
            let factory = Arc::new(LeafFactory::new(
                &spec.schema,
                spec.mode,
                &spec.capped_paths,
                spec.max_depth,
            ));
            let decoder = arrow_json::ReaderBuilder::new(spec.schema.clone())
                .with_batch_size(spec.batch_rows)
                .with_strict_mode(spec.mode == Mode::Evolving)
                .with_ignore_type_conflicts(spec.mode == Mode::Fixed)
                .with_decoder_factory(factory.clone())
                .build_decoder()?;
            self.counters = factory.take_counters();
            self.built = Some((spec.generation, decoder));
        }
        let (_, decoder) = self
            .built
            .as_mut()
            .expect("the decoder was built just above");
        let mut chunks = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let consumed = decoder.decode(rest)?;
            rest = &rest[consumed..];
            // The decoder stops early once it holds a full batch.
            if !rest.is_empty() {
                match decoder.flush()? {
                    Some(chunk) => chunks.push(chunk),
                    None if consumed == 0 => {
                        return Err(ArrowError::JsonError(
                            "the JSON decoder made no progress".to_owned(),
                        ));
                    }
                    None => {}
                }
            }
        }
        if let Some(chunk) = decoder.flush()? {
            chunks.push(chunk);
        }
        Ok(chunks)
    }
}

/// Decodes the records at `rows` of an already built `tape` with `spec`'s decoders, exactly as
/// [`PageDecoder`] would decode the page's bytes: one batch, and the decoders' counters.
pub(super) fn decode_tape(
    spec: &PageDecoderSpec,
    tape: &Tape<'_>,
    rows: &[u32],
) -> Result<(RecordBatch, Vec<Arc<PathCounter>>), ArrowError> {
    let leaves = Arc::new(LeafFactory::new(
        &spec.schema,
        spec.mode,
        &spec.capped_paths,
        spec.max_depth,
    ));
    let capture = Arc::new(CaptureRoot {
        leaves: leaves.clone(),
        started: AtomicBool::new(false),
        root: Mutex::new(None),
    });
    // arrow-json builds decoders only inside `build_decoder`; the reader it builds is not used.
    arrow_json::ReaderBuilder::new(spec.schema.clone())
        .with_batch_size(spec.batch_rows)
        .with_strict_mode(spec.mode == Mode::Evolving)
        .with_ignore_type_conflicts(spec.mode == Mode::Fixed)
        .with_decoder_factory(capture.clone())
        .build_decoder()?;
    let root = capture
        .root
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some(mut root) = root else {
        return Err(ArrowError::JsonError(
            "the root decoder was not built".to_owned(),
        ));
    };
    let decoded = root.decode(tape, rows)?;
    let batch = RecordBatch::from(decoded.as_struct().clone()).with_schema(spec.schema.clone())?;
    Ok((batch, leaves.take_counters()))
}

/// Keeps the reader's root decoder (built the way the reader builds it, with our leaves below)
/// for use on another tape; the reader gets a placeholder that is never run.
struct CaptureRoot {
    leaves: Arc<LeafFactory>,
    started: AtomicBool,
    root: Mutex<Option<Box<dyn ArrayDecoder>>>,
}

/// Stands in for the captured root inside the throw-away reader.
struct NeverRun;

impl DecoderFactory for CaptureRoot {
    fn make_default_decoder(
        &self,
        ctx: &DecoderContext,
        field: &FieldRef,
        is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        // The reader asks for its (synthesized) root first; everything after is below it.
        if !self.started.swap(true, Ordering::Relaxed) {
            let root = ctx.make_builtin_decoder(field, is_nullable)?;
            *self.root.lock().unwrap_or_else(PoisonError::into_inner) = Some(root);
            return Ok(Some(Box::new(NeverRun)));
        }
        self.leaves.make_default_decoder(ctx, field, is_nullable)
    }
}

impl ArrayDecoder for NeverRun {
    fn decode(&mut self, _tape: &Tape<'_>, _pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        Err(ArrowError::JsonError(
            "internal error: a placeholder decoder was run".to_owned(),
        ))
    }
}

impl FastPage {
    /// Whether a known schema's fast path wrote values as null because they did not fit.
    pub(super) fn nulled_misfits(&self) -> bool {
        self.counts
            .iter()
            .any(|(_, kind, _)| matches!(kind, WarningKind::NullForKnownSchema { .. }))
    }
}

impl std::fmt::Debug for PageDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageDecoder")
            .field(
                "generation",
                &self.built.as_ref().map(|(generation, _)| generation),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CaptureRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaptureRoot")
    }
}

impl std::fmt::Debug for PreDecoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreDecoded")
            .field("generation", &self.generation)
            .field("decoded", &self.page.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn spec(generation: u64) -> PageDecoderSpec {
        PageDecoderSpec {
            schema: Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)])),
            mode: Mode::Fixed,
            capped_paths: Arc::default(),
            max_depth: super::super::DEFAULT_MAX_DEPTH,
            batch_rows: 8192,
            direct: true,
            generation,
        }
    }

    /// After a declined page the next pages of that schema skip the direct decoder, then it is
    /// tried again; a new schema tries it at once. Every page still decodes to the same rows.
    #[test]
    fn a_declined_page_sends_the_next_pages_of_its_schema_to_the_tape_path() {
        let mut decoder = PageDecoder::new();
        let good = br#"{"n":1}"#;
        let misfit = br#"{"n":"one"}"#;
        assert!(decoder.decode_direct(&spec(1), good).is_some());
        assert!(decoder.decode_direct(&spec(1), misfit).is_none());
        // A page of the pause still decodes, on the tape path.
        let chunks = decoder.decode_chunks(&spec(1), good).unwrap();
        assert_eq!(chunks.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
        for _ in 1..DIRECT_BACKOFF_PAGES {
            assert!(decoder.decode_direct(&spec(1), good).is_none());
        }
        assert!(decoder.decode_direct(&spec(1), good).is_some());
        assert!(decoder.decode_direct(&spec(1), misfit).is_none());
        assert!(decoder.decode_direct(&spec(2), good).is_some());
    }
}
