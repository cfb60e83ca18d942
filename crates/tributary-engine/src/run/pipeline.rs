//! The two blocking stages of a run and the messages between them.
//!
//! The decode stage takes pages from the fetcher's channel, decodes them into Arrow batches,
//! applies the mapping plan when the flow has one, and sends batches, rejected rows and
//! checkpoint marks to the encode stage. The encode stage writes Parquet (and rejected rows as
//! JSON lines), and at each checkpoint mark closes its open parts and records them in state with
//! the position the mark carries. A mark is only sent at a page boundary after every row of the
//! pages before it was sent, so the recorded position never points inside a part's data.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tributary_fetch::{BudgetPermit, FetchError, FetchEvent, FetchRun};
use tributary_spec::FlowBundle;
use tributary_state::{PartEntry, PartState, WindowKey};
use tributary_transform::dataset::{
    conform_batch, grow_schema, with_rescued_column, without_null_columns,
};
use tributary_transform::decode::{DecoderOptions, RecordDecoder, WarningKind};
use tributary_transform::mapping::{self, MappingPlan};
use tributary_write::{BatchId, DatasetId, ErrorWriter, PartWriter, StagedPart, cpu};

use super::decode_pool::{Ahead, Lookahead};
use super::{Engine, Progress, RunMetrics, SavedPosition, Verdict};

/// Everything the two stages need.
pub(crate) struct PipelineJob {
    pub engine: Engine,
    pub bundle: Arc<FlowBundle>,
    pub key: WindowKey,
    pub dataset: DatasetId,
    pub batch_id: BatchId,
    pub run_id: String,
    /// The sequence number of the next part (after the parts of a resumed checkpoint).
    pub next_seq: u32,
    /// Counters and position of the checkpoint the run starts from.
    pub saved: SavedPosition,
    pub progress: Arc<Progress>,
}

pub(crate) struct PipelineOutcome {
    pub metrics: RunMetrics,
    pub verdict: Verdict,
}

/// From the decode stage to the encode stage.
enum ToEncoder {
    /// A batch and the memory budget it holds until it is encoded.
    Batch(RecordBatch, Option<BudgetPermit>),
    Rejected(Value),
    /// Close the open parts and record them with this position.
    Checkpoint(SavedPosition),
}

/// What the decode stage measured.
#[derive(Default)]
struct DecodeTimes {
    fetch_wait: Duration,
    /// Busy time decoding pages: the stage's own and its workers'.
    decode: Duration,
    map: Duration,
    /// CPU time of the decode workers (`None` where the platform does not say).
    worker_cpu: Option<Duration>,
}

/// What the encode stage measured.
struct EncodeTimes {
    encode: Duration,
    write: Duration,
    records_written: u64,
    /// CPU time of the writer's encode threads besides the stage's own (`None`: unknown).
    helper_cpu: Option<Duration>,
}

/// Runs both stages to the end and returns the verdict.
pub(crate) async fn run_pipeline(job: PipelineJob, fetch_run: FetchRun) -> PipelineOutcome {
    let FetchRun { pages, task, .. } = fetch_run;
    let (to_encoder, from_decoder) = sync_channel(job.engine.options.batch_channel_capacity.max(1));
    let job = Arc::new(job);

    let decode_job = job.clone();
    let decoder = tokio::task::spawn_blocking(move || {
        cpu::measured(|| decode_stage(&decode_job, pages, &to_encoder))
    });
    let encode_job = job.clone();
    let encoder = tokio::task::spawn_blocking(move || {
        cpu::measured(|| encode_stage(&encode_job, &from_decoder))
    });

    let mut metrics = RunMetrics::default();
    let decoded = decoder.await.map(|(decoded, cpu)| {
        // The stage's thread and its decode workers.
        metrics.decode_stage_cpu = cpu::sum(cpu, decoded.1.worker_cpu);
        decoded
    });
    let encoded = encoder.await.map(|(encoded, cpu)| {
        // The stage's thread and the writer's encode threads.
        metrics.encode_stage_cpu = cpu::sum(cpu, encoded.1.helper_cpu);
        encoded
    });
    // The fetcher ends by itself when its consumer is gone; make sure it does not linger. Then
    // see how it ended: a fetch task that panicked may have closed its channel early, which the
    // decoder cannot tell from the end of the pages.
    task.abort();
    let fetch_panic = match task.await {
        Err(err) if err.is_panic() => Some(format!(
            "internal error: the fetcher panicked: {}",
            super::panic_message(err.into_panic().as_ref())
        )),
        _ => None,
    };

    let verdict = match (decoded, encoded) {
        (Err(err), _) | (_, Err(err)) => {
            Verdict::Failed(format!("a pipeline thread panicked: {err}"))
        }
        (Ok(decoded), Ok(encoded)) => {
            let (decode_result, times, counters) = decoded;
            metrics.fetch_wait = times.fetch_wait;
            metrics.decode = times.decode;
            metrics.map = times.map;
            metrics.pages = counters.pages;
            metrics.records_read = counters.records_read;
            metrics.records_failed = counters.records_failed;
            // The decoder's warnings (with those of the run resumed) and the mapped batches'.
            metrics.records_warned = counters.records_warned + counters.mapped_warned;
            metrics.records_rescued = counters.records_rescued + counters.mapped_rescued;
            metrics.bytes_in = counters.bytes_in;
            metrics.error_codes = counters.error_codes;
            let (encode_result, encode_times) = encoded;
            metrics.encode = encode_times.encode;
            metrics.write = encode_times.write;
            metrics.records_written = encode_times.records_written;
            match (decode_result, encode_result) {
                // The encoder's failure explains the decoder's (its channel closed).
                (_, Err(message)) => Verdict::Failed(message),
                (Err(message), Ok(())) => Verdict::Failed(message),
                (Ok(verdict), Ok(())) => verdict,
            }
        }
    };
    let verdict = match (verdict, fetch_panic) {
        (_, Some(message)) => Verdict::Failed(message),
        (Verdict::Commit { truncated }, None) => judge_threshold(&job.bundle, &metrics, truncated),
        (other, None) => other,
    };
    PipelineOutcome { metrics, verdict }
}

/// Counters that a checkpoint carries, so a resumed run continues them.
struct Counters {
    pages: u64,
    records_read: u64,
    records_failed: u64,
    records_warned: u64,
    /// This run's records with a value in `_rescued_data` (decoder and mapped batches).
    records_rescued: u64,
    /// Warned and rescued records of the mapped batches (the sender's counts).
    mapped_warned: u64,
    mapped_rescued: u64,
    bytes_in: u64,
    error_codes: std::collections::BTreeMap<String, u64>,
}

/// The warning code of values kept in `_rescued_data`.
pub(crate) const RESCUED_CODE: &str = "DECODE-1003-200";

fn judge_threshold(bundle: &FlowBundle, metrics: &RunMetrics, truncated: bool) -> Verdict {
    let percent = bundle.options.partial_ingestion_percent;
    let rejected = usize::try_from(metrics.records_failed).unwrap_or(usize::MAX);
    let input = usize::try_from(metrics.records_read).unwrap_or(usize::MAX);
    if !mapping::threshold_exceeded(rejected, input, percent) {
        return Verdict::Commit { truncated };
    }
    let share = if input == 0 {
        0.0
    } else {
        rejected as f64 * 100.0 / input as f64
    };
    Verdict::Rejected(match percent {
        None => format!(
            "{rejected} of {input} rows were rejected and the flow has no partialIngestionPercent: nothing was published (rejected rows are in _errors)"
        ),
        Some(percent) => format!(
            "{rejected} of {input} rows ({share:.2}%) were rejected, over the partialIngestionPercent threshold of {percent}%: nothing was published"
        ),
    })
}

fn decode_stage(
    job: &PipelineJob,
    mut pages: mpsc::Receiver<Result<FetchEvent, FetchError>>,
    out: &SyncSender<ToEncoder>,
) -> (Result<Verdict, String>, DecodeTimes, Counters) {
    let mut times = DecodeTimes::default();
    let mut position = job.saved.clone();
    let mut counters = Counters {
        pages: position.pages,
        records_read: position.records_read,
        records_failed: position.records_failed,
        records_warned: position.records_warned,
        records_rescued: 0,
        mapped_warned: 0,
        mapped_rescued: 0,
        bytes_in: position.bytes_in,
        error_codes: Default::default(),
    };
    let workers = job.engine.options.decode_workers;
    let budget = job.engine.fetch.page_budget.clone();
    let mut lookahead = match Lookahead::new(&mut pages, workers, budget) {
        Ok(lookahead) => lookahead,
        Err(err) => {
            let message = format!("starting the decode workers: {err}");
            return (Err(message), times, counters);
        }
    };
    let result = decode_loop(
        job,
        &mut lookahead,
        out,
        &mut times,
        &mut position,
        &mut counters,
    );
    times.decode += lookahead.worker_decode;
    times.worker_cpu = lookahead.finish();
    (result, times, counters)
}

/// The decode stage's loop; returns how the pages ended.
fn decode_loop(
    job: &PipelineJob,
    lookahead: &mut Lookahead<'_>,
    out: &SyncSender<ToEncoder>,
    times: &mut DecodeTimes,
    position: &mut SavedPosition,
    counters: &mut Counters,
) -> Result<Verdict, String> {
    let options = &job.engine.options;
    // Without a mapping set the dataset schema is the records' schema: decoding starts from it
    // and rescues what does not fit. With one, the source is decoded as before and the mapped
    // batches are made to fit the dataset schema.
    let rescue = job.bundle.mapping.is_none();
    let start = Arc::new(super::dataset_schema::start_schema(
        &job.engine.db,
        &job.bundle,
        job.dataset.as_str(),
    )?);
    let known_schema = match known_record_schema(&job.bundle)? {
        Some(known) if rescue => Some(Arc::new(grow_schema(&start, &known))),
        other => other,
    };
    let mut decoder = RecordDecoder::new(DecoderOptions {
        batch_rows: options.batch_rows,
        known_schema,
        rescue,
        base_schema: rescue.then(|| start.clone()),
        ..DecoderOptions::default()
    });
    let mut sender = BatchSender {
        job,
        out,
        plan: None,
        last_schema: None,
        dataset_schema: start,
        counters_failed: 0,
        counters_warned: 0,
        counters_rescued: 0,
        warning_codes: Default::default(),
    };
    let mut rows_since_checkpoint = 0u64;
    let mut json_since_checkpoint = 0u64;
    // The position after the last page whose rows were all handed on.
    let mut last_page_position = position.clone();
    // Set by the fetcher's end marker: `maximumRequest` stopped it with pages left.
    let truncated;

    loop {
        if job.progress.is_cancelled() {
            let rest = decoder.flush().map_err(|err| err.to_string())?;
            sender.send_all(rest.batches, &last_page_position, times)?;
            sync_counters(job, position, counters, &sender);
            send(out, ToEncoder::Checkpoint(position.clone()))?;
            return Ok(Verdict::Cancelled);
        }
        let spec = decoder.page_decoder_spec();
        // `_held`, the budget share of a worker's result, is given back after its batches.
        let (page, predecoded, _held) = match lookahead
            .next(spec.as_ref(), &mut times.fetch_wait)?
        {
            // The fetcher always ends with `End` or an error; a bare close means its task died.
            Ahead::Closed => {
                return Err(
                    "the fetcher stopped before the end of the pages (internal error)".to_owned(),
                );
            }
            Ahead::Failed(err) => return Err(format!("{err}")),
            Ahead::End(end) => {
                truncated = end.truncated;
                break;
            }
            Ahead::Page {
                page,
                predecoded,
                held,
            } => (page, predecoded, held),
        };

        let started = Instant::now();
        let decoded = match predecoded {
            Some(predecoded) => decoder.decode_predecoded(page.page_idx, &page.records, predecoded),
            None => decoder.decode_page(page.page_idx, &page.records),
        }
        .map_err(|err| format!("{err} (url {})", page.url))?;
        times.decode += started.elapsed();
        counters.records_warned += decoded.rescued_records;
        counters.records_rescued += decoded.rescued_records;
        for warning in &decoded.warnings {
            let code = match warning.kind {
                WarningKind::TypeChanged { .. } => continue,
                WarningKind::ValueAsJsonText | WarningKind::DepthCapped { .. } => "DECODE-1001-200",
                WarningKind::NullForKnownSchema { .. } => "DECODE-1002-200",
                WarningKind::Rescued { .. } => RESCUED_CODE,
            };
            *counters.error_codes.entry(code.to_owned()).or_default() += warning.count;
            // Rescued values are counted by record (above), not by value.
            if !matches!(warning.kind, WarningKind::Rescued { .. }) {
                counters.records_warned += warning.count;
            }
            tracing::warn!(page_idx = warning.page_idx, path = %warning.path, kind = ?warning.kind, count = warning.count, "value did not fit its column");
        }
        sender.send_all(decoded.batches, &last_page_position, times)?;

        counters.pages += 1;
        counters.records_read += page.record_count as u64;
        counters.bytes_in += page.body_len;
        job.progress
            .pages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        job.progress.records.fetch_add(
            page.record_count as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        job.progress
            .bytes
            .fetch_add(page.body_len, std::sync::atomic::Ordering::Relaxed);
        rows_since_checkpoint += page.record_count as u64;
        json_since_checkpoint += page.records.len() as u64;
        position.fetch = Some(page.position.clone());
        sync_counters(job, position, counters, &sender);

        let is_checkpoint_due = rows_since_checkpoint >= options.checkpoint_rows
            || json_since_checkpoint >= options.checkpoint_json_bytes;
        if is_checkpoint_due {
            let rest = decoder.flush().map_err(|err| err.to_string())?;
            sender.send_all(rest.batches, position, times)?;
            sync_counters(job, position, counters, &sender);
            send(out, ToEncoder::Checkpoint(position.clone()))?;
            rows_since_checkpoint = 0;
            json_since_checkpoint = 0;
        }
        last_page_position = position.clone();
    }

    let rest = decoder.finish_page().map_err(|err| err.to_string())?;
    sender.send_all(rest.batches, &last_page_position, times)?;
    sync_counters(job, position, counters, &sender);
    for (code, n) in std::mem::take(&mut sender.warning_codes) {
        *counters.error_codes.entry(code).or_default() += n;
    }
    send(out, ToEncoder::Checkpoint(position.clone()))?;
    Ok(Verdict::Commit { truncated })
}

/// Hands batches to the encoder: maps them when the flow has a mapping set, and puts a
/// checkpoint mark before a batch whose schema differs from the previous one's (the writer then
/// starts a new file).
struct BatchSender<'a> {
    job: &'a PipelineJob,
    out: &'a SyncSender<ToEncoder>,
    /// The compiled mapping and the source schema it was compiled for.
    plan: Option<(SchemaRef, MappingPlan)>,
    last_schema: Option<SchemaRef>,
    /// The schema every batch is given: the dataset schema grown by this run's batches so far.
    dataset_schema: SchemaRef,
    counters_failed: u64,
    counters_warned: u64,
    /// Records whose mapped values did not fit the dataset schema (kept in `_rescued_data`).
    counters_rescued: u64,
    /// Mapping warnings per error code.
    warning_codes: std::collections::BTreeMap<String, u64>,
}

impl BatchSender<'_> {
    fn send_all(
        &mut self,
        batches: Vec<RecordBatch>,
        position_before: &SavedPosition,
        times: &mut DecodeTimes,
    ) -> Result<(), String> {
        for batch in batches {
            let started = Instant::now();
            let batch = self.map(batch)?;
            times.map += started.elapsed();
            let Some(batch) = batch else { continue };
            let batch = self.conform(&batch)?;
            let is_new_schema = self
                .last_schema
                .as_ref()
                .is_some_and(|last| *last != batch.schema());
            if is_new_schema {
                // Every row before this batch came from pages up to `position_before`.
                send(self.out, ToEncoder::Checkpoint(position_before.clone()))?;
            }
            self.last_schema = Some(batch.schema());
            // Across concurrent runs, decoded batches wait here when the budget is spent; the
            // encoder gives the bytes back once the batch is written.
            let permit = self
                .job
                .engine
                .options
                .batch_budget
                .as_ref()
                .map(|budget| budget.acquire_blocking(batch.get_array_memory_size() as u64));
            send(self.out, ToEncoder::Batch(batch, permit))?;
        }
        Ok(())
    }

    /// Gives a batch the dataset schema grown by it (new columns added, `Null` columns left
    /// out); values that do not fit go to `_rescued_data`.
    fn conform(&mut self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let grown = Arc::new(grow_schema(
            &self.dataset_schema,
            &without_null_columns(&batch.schema()),
        ));
        let conformed = match conform_batch(batch, &grown) {
            Ok(conformed) => conformed,
            // Values to rescue and no column for them yet: the schema gains it.
            Err(_) => conform_batch(batch, &Arc::new(with_rescued_column(&grown)))
                .map_err(|err| format!("giving a batch the dataset schema: {err}"))?,
        };
        self.counters_warned += conformed.rescued_rows;
        self.counters_rescued += conformed.rescued_rows;
        self.dataset_schema = conformed.batch.schema();
        Ok(conformed.batch)
    }

    /// Applies the mapping set, compiling it for this batch's schema when that changed.
    /// Rejected rows go to the encoder's error file. Returns None when no row is left.
    fn map(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>, String> {
        let Some(mapping_set) = &self.job.bundle.mapping else {
            return Ok(Some(batch));
        };
        let source_schema = batch.schema();
        let is_compiled = self
            .plan
            .as_ref()
            .is_some_and(|(schema, _)| *schema == source_schema);
        if !is_compiled {
            let target = target_schema(&self.job.bundle)?;
            let plan = mapping::compile(mapping_set, &source_schema, target.as_ref()).map_err(
                |errors| {
                    let lines: Vec<String> = errors
                        .iter()
                        .map(|err| {
                            format!(
                                "mapping {} ({}){}: {}",
                                err.mapping_index.map_or("-".to_owned(), |i| i.to_string()),
                                err.destination,
                                err.position
                                    .map_or(String::new(), |p| format!(" at character {p}")),
                                err.message
                            )
                        })
                        .collect();
                    format!("the mapping set does not compile: {}", lines.join("; "))
                },
            )?;
            self.plan = Some((source_schema, plan));
        }
        let (_, plan) = self.plan.as_ref().expect("compiled just above");
        let mapped = mapping::apply(plan, &batch).map_err(|err| err.to_string())?;
        self.counters_warned += mapped.warned_rows as u64;
        for (code, n) in &mapped.warnings {
            *self
                .warning_codes
                .entry(code.as_str().to_owned())
                .or_default() += *n as u64;
        }
        for rejected in mapped.rejected {
            self.counters_failed += 1;
            let mut codes: Vec<&'static str> = rejected
                .errors
                .iter()
                .map(|err| err.code.as_str())
                .collect();
            codes.dedup();
            for code in codes {
                *self.warning_codes.entry(code.to_owned()).or_default() += 1;
            }
            // Without error diagnostics a rejected row is counted, not kept.
            if !self.job.bundle.options.error_diagnostics_enabled {
                continue;
            }
            let errors: Vec<Value> = rejected
                .errors
                .iter()
                .map(|err| json!({"code": err.code.as_str(), "message": err.message, "destination": err.destination}))
                .collect();
            send(
                self.out,
                ToEncoder::Rejected(json!({"record": rejected.original, "errors": errors})),
            )?;
        }
        Ok((mapped.batch.num_rows() > 0).then_some(mapped.batch))
    }
}

/// Moves the counts into the checkpoint position and the run's counters. Counts of the run
/// this one resumes (in `job.saved`) are the base.
fn sync_counters(
    job: &PipelineJob,
    position: &mut SavedPosition,
    counters: &mut Counters,
    sender: &BatchSender<'_>,
) {
    counters.records_failed = job.saved.records_failed + sender.counters_failed;
    position.records_failed = counters.records_failed;
    position.records_read = counters.records_read;
    position.records_warned = counters.records_warned + sender.counters_warned;
    counters.mapped_warned = sender.counters_warned;
    counters.mapped_rescued = sender.counters_rescued;
    position.bytes_in = counters.bytes_in;
    position.pages = counters.pages;
}

fn send(out: &SyncSender<ToEncoder>, message: ToEncoder) -> Result<(), String> {
    // The encoder only hangs up after failing; its own error is the one to report.
    out.send(message)
        .map_err(|_| "the writer stopped".to_owned())
}

/// The schema records are decoded into when the spec declares one (`sourceSpec` custom
/// `schema`); otherwise it is inferred from the first pages.
fn known_record_schema(bundle: &FlowBundle) -> Result<Option<SchemaRef>, String> {
    let Some(schema) = &bundle.connection_spec.source.record_schema else {
        return Ok(None);
    };
    let schema = tributary_transform::decode::json_schema_to_arrow(schema)
        .map_err(|err| format!("sourceSpec schema: {err}"))?;
    Ok(Some(Arc::new(schema)))
}

/// The dataset's target schema when the target connection gives one inline.
fn target_schema(bundle: &FlowBundle) -> Result<Option<arrow_schema::Schema>, String> {
    let Some(schema) = &bundle.target.schema else {
        return Ok(None);
    };
    tributary_transform::schema::json_schema_to_arrow(schema)
        .map(Some)
        .map_err(|err| format!("targetConnection data.schema.jsonSchema: {err}"))
}

fn encode_stage(
    job: &PipelineJob,
    input: &Receiver<ToEncoder>,
) -> (Result<(), String>, EncodeTimes) {
    let mut times = EncodeTimes {
        encode: Duration::ZERO,
        write: Duration::ZERO,
        records_written: 0,
        helper_cpu: Some(Duration::ZERO),
    };
    let mut segment = Segment {
        data: None,
        errors: None,
        next_seq: job.next_seq,
    };
    let result = encode_loop(job, input, &mut times, &mut segment);
    if result.is_err() {
        // Nothing of a failed segment may stay half-written in staging.
        segment.abort();
    }
    (result, times)
}

/// The parts being written since the last checkpoint, created on first use so that every
/// sequence number handed out belongs to a part that gets recorded.
struct Segment {
    data: Option<PartWriter>,
    errors: Option<ErrorWriter>,
    next_seq: u32,
}

impl Segment {
    fn abort(&mut self) {
        if let Some(writer) = self.data.take() {
            writer.abort();
        }
        if let Some(writer) = self.errors.take() {
            writer.abort();
        }
    }
}

fn encode_loop(
    job: &PipelineJob,
    input: &Receiver<ToEncoder>,
    times: &mut EncodeTimes,
    segment: &mut Segment,
) -> Result<(), String> {
    let engine = &job.engine;
    let writer_options = engine
        .options
        .writer
        .clone()
        .with_lineage(job.key.flow_id.as_str(), &job.run_id);
    let mut rows_recorded = job
        .saved
        .records_read
        .saturating_sub(job.saved.records_failed);
    while let Ok(message) = input.recv() {
        match message {
            ToEncoder::Batch(batch, permit) => {
                if segment.data.is_none() {
                    let writer = PartWriter::try_new(
                        &engine.layout,
                        &job.dataset,
                        &job.batch_id,
                        segment.next_seq,
                        writer_options.clone(),
                    )
                    .map_err(|err| err.to_string())?;
                    segment.next_seq += 1;
                    segment.data = Some(writer);
                }
                let started = Instant::now();
                let writer = segment.data.as_mut().expect("created just above");
                let closed = writer.write(&batch).map_err(|err| err.to_string())?;
                times.encode += started.elapsed();
                // The batch is in the writer's row group now (encoded); its bytes go back.
                drop(batch);
                drop(permit);
                if !closed.is_empty() {
                    // Parts roll only at checkpoints (the writer's own limits are off).
                    return Err(format!(
                        "the writer closed part {} between checkpoints",
                        closed[0].seq
                    ));
                }
            }
            ToEncoder::Rejected(row) => {
                if segment.errors.is_none() {
                    let writer = ErrorWriter::try_new(
                        &engine.layout,
                        &job.dataset,
                        &job.batch_id,
                        segment.next_seq,
                        Default::default(),
                    )
                    .map_err(|err| err.to_string())?;
                    segment.next_seq += 1;
                    segment.errors = Some(writer);
                }
                let writer = segment.errors.as_mut().expect("created just above");
                if let Some(part) = writer.write(&row).map_err(|err| err.to_string())? {
                    return Err(format!(
                        "the error writer closed part {} between checkpoints",
                        part.seq
                    ));
                }
            }
            ToEncoder::Checkpoint(position) => {
                let started = Instant::now();
                let mut parts: Vec<StagedPart> = Vec::new();
                if let Some(writer) = segment.data.take() {
                    times.helper_cpu = cpu::sum(times.helper_cpu, writer.helper_cpu());
                    parts.extend(writer.finish().map_err(|err| err.to_string())?);
                }
                if let Some(writer) = segment.errors.take() {
                    parts.extend(writer.finish().map_err(|err| err.to_string())?);
                }
                parts.sort_by_key(|part| part.seq);
                if parts.is_empty() {
                    continue;
                }
                let position_json =
                    serde_json::to_value(&position).map_err(|err| err.to_string())?;
                let mut entries = Vec::with_capacity(parts.len());
                for part in parts {
                    let is_data = matches!(part.kind, tributary_write::PartKind::Parquet { .. });
                    if is_data {
                        rows_recorded += part.rows;
                        times.records_written += part.rows;
                    }
                    entries.push(PartEntry {
                        seq: part.seq,
                        staged_path: part.staged_path.display().to_string(),
                        final_path: part.final_path.display().to_string(),
                        rows: part.rows,
                        bytes: part.bytes,
                        state: PartState::Pending,
                    });
                }
                // Data and rejected rows of one checkpoint land together with its position.
                engine
                    .db
                    .record_parts(&job.key, &entries, &position_json, rows_recorded)
                    .map_err(|err| err.to_string())?;
                times.write += started.elapsed();
            }
        }
    }
    Ok(())
}
