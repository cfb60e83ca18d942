//! Checkpoints and the commit protocol: which parts of a window's batch are staged, where
//! pagination resumes, and the swap of a window's batches at commit.
//!
//! A window goes through these states (each change one transaction, flushed):
//!
//! ```text
//!            begin_window                start_commit            complete_window
//!   (none) ──────────────► InProgress ────────────────► Committing ──────────────► Complete
//!                            ▲   │ record_parts (data and rejected-row parts of a    │
//!                            │   │ checkpoint, with the position after them)        │ truncated
//!                            │   └ fail_window (start the attempt afresh)           ▼
//!                            └──────────────────── continue_window ◄──────────── Open
//! ```
//!
//! - `InProgress`: an attempt is writing batch `batch_id`; its recorded parts sit sealed in the
//!   batch's staging folder and an interrupted run resumes them ([`Db::resume_window`]).
//! - `Committing`: the attempt is complete and durable; the engine takes the batches in
//!   `replaces` out of the dataset, renames the staging folder in, then calls
//!   [`Db::complete_window`]. Every step is idempotent, so recovery redoes them after a crash. The
//!   earlier batches stay visible until the new one is durable.
//! - `Open`: the attempt was committed but `maximumRequest` cut it short; the window is not done
//!   and its next run continues from the saved position into a further batch (a segment).
//! - `Complete`: every segment is published. Beginning the window again (a re-run) starts a new
//!   generation whose first commit replaces all segments of this one.
//!
//! Positions are opaque JSON to this crate and are stored sealed (AES-256-GCM): next-page URLs
//! and tokens often carry credentials. Windows that are not `Complete` are indexed in
//! `open_windows`, so the scheduler and recovery find them without scanning history.

mod commit;

use std::fmt;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::KeyBuf;
use crate::crypto::{OpenError, sealed_text};
use crate::store::{KeyRange, Table};
use crate::{BatchId, DatasetId, Db, FlowId, RunId, StateError, codec};

/// Identifies a window of a flow. `start_ms: None` is the backfill-from-the-beginning window;
/// both `None` is the single window of an unscheduled flow. As a time range a missing start is
/// the beginning of time and a missing end is the end of time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    pub flow_id: FlowId,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

/// Where a window stands; see the module header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckpointStatus {
    InProgress,
    Committing,
    Open,
    Complete,
}

/// Whether a part file has been published with its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PartState {
    Pending,
    Published,
}

/// One part file (data or rejected rows) of a window's batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// 0, 1, 2, ... within the window's current batch.
    pub seq: u32,
    pub staged_path: String,
    pub final_path: String,
    pub rows: u64,
    pub bytes: u64,
    pub state: PartState,
}

/// A batch of a dataset, by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchRef {
    pub batch_id: BatchId,
    pub dataset_id: DatasetId,
}

/// The durable progress of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub window: WindowKey,
    pub run_id: RunId,
    /// The batch the current attempt writes.
    pub batch_id: BatchId,
    pub dataset_id: DatasetId,
    /// Opaque pagination position after the last recorded part; `null` before the first.
    pub position: Value,
    /// Where the current attempt started (`null`, or the position an `Open` window continues
    /// from): a failed attempt starts again here.
    pub attempt_start: Value,
    /// The current attempt's parts, in sequence order.
    pub parts: Vec<PartEntry>,
    /// The sequence number the next part must have.
    pub next_seq: u32,
    /// As given by the last [`Db::record_parts`].
    pub rows: u64,
    /// Sum of the recorded parts' bytes.
    pub bytes: u64,
    pub status: CheckpointStatus,
    /// Whether the attempt being committed was cut short by `maximumRequest` (its commit leaves
    /// the window `Open`).
    pub truncated: bool,
    /// The published batches of this generation of the window (segments of an `Open` window;
    /// once complete, every batch that holds the window).
    pub segments: Vec<BatchRef>,
    /// Batches of an earlier generation that the next commit takes out of the dataset.
    pub replaces: Vec<BatchRef>,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A window's standing without its parts or position, for planning (which ranges of a flow are
/// covered, which windows must resume first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSummary {
    pub window: WindowKey,
    pub status: CheckpointStatus,
    pub batch_id: BatchId,
    pub dataset_id: DatasetId,
    pub segments: Vec<BatchRef>,
}

/// What [`Db::begin_window`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct BeganWindow {
    pub checkpoint: Checkpoint,
    /// The window's interrupted attempt that this one supersedes: its staged parts are the
    /// engine's to delete, its batch is now `Failed`.
    pub abandoned: Option<AbandonedAttempt>,
}

/// An attempt whose staged parts will never be published.
#[derive(Debug, Clone, PartialEq)]
pub struct AbandonedAttempt {
    pub batch: BatchRef,
    pub parts: Vec<PartEntry>,
}

impl WindowKey {
    pub fn new(flow_id: FlowId, start_ms: Option<i64>, end_ms: Option<i64>) -> WindowKey {
        WindowKey {
            flow_id,
            start_ms,
            end_ms,
        }
    }

    /// The one window of a flow without a schedule.
    pub fn unscheduled(flow_id: FlowId) -> WindowKey {
        WindowKey {
            flow_id,
            start_ms: None,
            end_ms: None,
        }
    }

    /// Whether the two windows share any instant (half-open ranges; a missing bound is
    /// unbounded).
    pub fn overlaps(&self, other: &WindowKey) -> bool {
        let starts_before_end = |start: Option<i64>, end: Option<i64>| match (start, end) {
            (Some(start), Some(end)) => start < end,
            _ => true,
        };
        starts_before_end(self.start_ms, other.end_ms)
            && starts_before_end(other.start_ms, self.end_ms)
    }

    /// `[flow id][start][end]`: fixed length after the flow id, so no window's key is a prefix
    /// of another's, and a flow's windows iterate in start order (the open start first).
    pub(crate) fn key(&self) -> Vec<u8> {
        KeyBuf::new()
            .str(self.flow_id.as_str())
            .opt_i64(self.start_ms)
            .opt_i64(self.end_ms)
            .finish()
    }

    fn part_key(&self, seq: u32) -> Vec<u8> {
        KeyBuf::new().raw(&self.key()).u32(seq).finish()
    }

    /// The additional data that binds a sealed position to this window.
    fn position_aad(&self) -> Vec<u8> {
        let mut aad = b"checkpoint position ".to_vec();
        aad.extend_from_slice(&self.key());
        aad
    }
}

impl fmt::Display for WindowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.start_ms, self.end_ms) {
            (None, None) => write!(f, "flow {} (unscheduled)", self.flow_id),
            (start, end) => {
                write!(f, "flow {} [", self.flow_id)?;
                match start {
                    Some(start) => write!(f, "{start}")?,
                    None => f.write_str("beginning")?,
                }
                match end {
                    Some(end) => write!(f, ", {end}) ms"),
                    None => f.write_str(", open) ms"),
                }
            }
        }
    }
}

impl CheckpointStatus {
    /// Whether the window still has work or bookkeeping ahead (indexed in `open_windows`).
    pub fn is_open(self) -> bool {
        self != CheckpointStatus::Complete
    }
}

/// The stored checkpoint: everything but the parts, which live in their own tree. Positions are
/// sealed values (`{"$enc": ...}`) or `null`; a clear object is read as written by an older
/// release.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCheckpoint {
    window: WindowKey,
    run_id: RunId,
    batch_id: BatchId,
    dataset_id: DatasetId,
    position: Value,
    #[serde(default)]
    attempt_start: Value,
    next_seq: u32,
    rows: u64,
    bytes: u64,
    status: CheckpointStatus,
    /// Set by `start_commit`: the attempt was cut short by `maximumRequest`, so its commit
    /// leaves the window `Open`.
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    segments: Vec<BatchRef>,
    #[serde(default)]
    replaces: Vec<BatchRef>,
    started_at_ms: i64,
    updated_at_ms: i64,
}

/// A stored part, with what the checkpoint was before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPart {
    entry: PartEntry,
    position_before: Value,
    rows_before: u64,
}

impl Db {
    /// The checkpoint of a window, with its parts and its position in clear.
    pub fn checkpoint(&self, window: &WindowKey) -> Result<Option<Checkpoint>, StateError> {
        let trees = self.trees();
        let Some(header) = trees.checkpoints.get::<StoredCheckpoint>(&window.key())? else {
            return Ok(None);
        };
        let parts = load_parts(&trees.parts, window, Some(header.next_seq))?;
        self.assemble(header, parts).map(Some)
    }

    /// Every window of a flow that has a checkpoint, in start order (the open start first).
    pub fn windows_for_flow(&self, flow_id: &FlowId) -> Result<Vec<WindowSummary>, StateError> {
        let prefix = KeyBuf::new().str(flow_id.as_str()).finish();
        let headers = self
            .trees()
            .checkpoints
            .values_with_prefix::<StoredCheckpoint>(&prefix)?;
        Ok(headers.into_iter().map(|(_, h)| summary(h)).collect())
    }

    /// The windows of `window`'s flow whose range shares an instant with `window`'s, in start
    /// order (the window itself included when it has a checkpoint).
    pub fn windows_overlapping(
        &self,
        window: &WindowKey,
    ) -> Result<Vec<WindowSummary>, StateError> {
        let trees = self.trees();
        let prefix = KeyBuf::new().str(window.flow_id.as_str()).finish();
        // Keys sort by start: every candidate starts before `window` ends.
        let upper = match window.end_ms {
            Some(end) => KeyBuf::new()
                .str(window.flow_id.as_str())
                .opt_i64(Some(end))
                .finish(),
            None => {
                let mut upper = prefix.clone();
                upper.push(0xff);
                upper
            }
        };
        let mut found = Vec::new();
        let range = KeyRange {
            lower: prefix,
            upper: Some(upper),
        };
        trees.checkpoints.scan(range, false, |key, bytes| {
            let header: StoredCheckpoint = codec::decode(trees.checkpoints.name, key, bytes)?;
            if header.window.overlaps(window) {
                found.push(summary(header));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(found)
    }

    /// The windows of a flow that are not complete (in progress, committing or open), in start
    /// order: the ones that must be finished before later windows run.
    pub fn open_windows(&self, flow_id: &FlowId) -> Result<Vec<WindowSummary>, StateError> {
        let prefix = KeyBuf::new().str(flow_id.as_str()).finish();
        self.open_windows_with_prefix(&prefix)
    }

    /// Every window of every flow that is not complete, for recovery at start.
    pub fn all_open_windows(&self) -> Result<Vec<WindowSummary>, StateError> {
        self.open_windows_with_prefix(b"")
    }

    fn open_windows_with_prefix(&self, prefix: &[u8]) -> Result<Vec<WindowSummary>, StateError> {
        let trees = self.trees();
        let mut found = Vec::new();
        for key in trees.open_windows.keys_with_prefix(prefix)? {
            if let Some(header) = trees.checkpoints.get::<StoredCheckpoint>(&key)? {
                found.push(summary(header));
            }
        }
        Ok(found)
    }

    fn assemble(
        &self,
        header: StoredCheckpoint,
        parts: Vec<(Vec<u8>, StoredPart)>,
    ) -> Result<Checkpoint, StateError> {
        let position = self.open_position(&header.window, &header.position)?;
        let attempt_start = self.open_position(&header.window, &header.attempt_start)?;
        Ok(Checkpoint {
            position,
            attempt_start,
            parts: parts.into_iter().map(|(_, part)| part.entry).collect(),
            window: header.window,
            run_id: header.run_id,
            batch_id: header.batch_id,
            dataset_id: header.dataset_id,
            next_seq: header.next_seq,
            rows: header.rows,
            bytes: header.bytes,
            status: header.status,
            truncated: header.truncated,
            segments: header.segments,
            replaces: header.replaces,
            started_at_ms: header.started_at_ms,
            updated_at_ms: header.updated_at_ms,
        })
    }

    /// Seals a position for storage (`null` stays `null`).
    fn seal_position(&self, window: &WindowKey, position: &Value) -> Value {
        if position.is_null() {
            return Value::Null;
        }
        self.cipher().seal_value(position, &window.position_aad())
    }

    fn open_position(&self, window: &WindowKey, stored: &Value) -> Result<Value, StateError> {
        if sealed_text(stored).is_none() {
            // `null`, or a clear position written by an older release.
            return Ok(stored.clone());
        }
        self.cipher()
            .open_value(stored, &window.position_aad())
            .map_err(|err| {
                let reason = match err {
                    OpenError::Malformed(reason) => reason.to_owned(),
                    OpenError::Authentication => {
                        "the sealed position does not open with this key".to_owned()
                    }
                };
                codec::corrupt("checkpoints", &window.key(), reason)
            })
    }
}

fn summary(header: StoredCheckpoint) -> WindowSummary {
    WindowSummary {
        window: header.window,
        status: header.status,
        batch_id: header.batch_id,
        dataset_id: header.dataset_id,
        segments: header.segments,
    }
}

/// The parts of a window in sequence order; with `below`, only those with a smaller sequence
/// (a part recorded after the header was read belongs to a later view).
fn load_parts(
    parts: &Table,
    window: &WindowKey,
    below: Option<u32>,
) -> Result<Vec<(Vec<u8>, StoredPart)>, StateError> {
    let mut loaded = parts.values_with_prefix::<StoredPart>(&window.key())?;
    if let Some(below) = below {
        loaded.retain(|(_, part)| part.entry.seq < below);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests;
