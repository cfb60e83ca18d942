//! Checkpoints and the commit protocol: which parts of a window's batch are staged or published
//! and where pagination resumes.
//!
//! The protocol (DESIGN.md, "The write/commit protocol"): the engine writes a part file to
//! staging and fsyncs it; [`Db::record_part`] records the part as pending together with the
//! pagination position after it, in one transaction, and flushes; the engine renames the file
//! into the batch folder; [`Db::mark_published`] records that. So a position is durable only
//! after the data before it is, and at start [`Db::pending_parts`] lists exactly the parts whose
//! rename may or may not have happened: the engine completes the rename (idempotent, since part
//! names are deterministic) or, when the staged file is gone and nothing was published,
//! [`Db::discard_part`] rolls the position back to before that part.
//!
//! Recovery at start, in full:
//! 1. For each of [`Db::pending_parts`]: staged file present -> rename it to `final_path`
//!    (fsync the folder) and [`Db::mark_published`]; only `final_path` present -> mark it
//!    published; neither -> [`Db::discard_part`] (a window's pending parts from the highest
//!    sequence down, since only the last part can be discarded).
//! 2. For each of `batches_with_status(Replaced)`: remove the batch folder (idempotent), then
//!    `set_batch_status(.., Removed)`.
//! 3. Then an in-progress window resumes with [`Db::resume_window`] (pagination that can resume)
//!    or restarts with [`Db::begin_window`] and a new batch id (which replaces the old batch).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sled::Transactional as _;

use crate::batches::tx_put_batch;
use crate::codec::KeyBuf;
use crate::store::{Table, abort, finish_tx, retry, tx_get, tx_put};
use crate::{
    BatchId, BatchRecord, BatchStatus, DatasetId, Db, FileEntry, FlowId, RunId, StateError, codec,
    now_ms,
};

/// Identifies a window of a flow. `start_ms: None` is the backfill-from-the-beginning window;
/// both `None` is the single window of an unscheduled flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    pub flow_id: FlowId,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

/// Where a window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckpointStatus {
    InProgress,
    Complete,
}

/// Whether a part file has been renamed from staging into the batch folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PartState {
    Pending,
    Published,
}

/// One part file of a window's batch.
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

/// The durable progress of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub window: WindowKey,
    pub run_id: RunId,
    pub batch_id: BatchId,
    pub dataset_id: DatasetId,
    /// Opaque pagination position after the last recorded part; `null` before the first.
    pub position: Value,
    /// In sequence order.
    pub parts: Vec<PartEntry>,
    /// The sequence number the next part must have.
    pub next_seq: u32,
    /// As given by the last [`Db::record_part`].
    pub rows: u64,
    /// Sum of the recorded parts' bytes.
    pub bytes: u64,
    pub status: CheckpointStatus,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What [`Db::begin_window`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct BeganWindow {
    pub checkpoint: Checkpoint,
    /// The window's previous batch, now marked [`BatchStatus::Replaced`]: the engine removes
    /// its folder and the staged files of its parts, then marks it `Removed`.
    pub replaced: Option<ReplacedWindow>,
}

/// The previous state of a window that was begun again.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplacedWindow {
    pub batch_id: BatchId,
    pub dataset_id: DatasetId,
    pub was_complete: bool,
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

/// The stored checkpoint: everything but the parts, which live in their own tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCheckpoint {
    window: WindowKey,
    run_id: RunId,
    batch_id: BatchId,
    dataset_id: DatasetId,
    position: Value,
    next_seq: u32,
    rows: u64,
    bytes: u64,
    status: CheckpointStatus,
    started_at_ms: i64,
    updated_at_ms: i64,
}

/// A stored part, with what the checkpoint was before it so that a discard can roll back.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPart {
    entry: PartEntry,
    position_before: Value,
    rows_before: u64,
}

impl Db {
    /// The checkpoint of a window, with its parts.
    pub fn checkpoint(&self, window: &WindowKey) -> Result<Option<Checkpoint>, StateError> {
        let trees = self.trees();
        let Some(header) = trees.checkpoints.get::<StoredCheckpoint>(&window.key())? else {
            return Ok(None);
        };
        let parts = load_parts(&trees.parts, window, Some(header.next_seq))?;
        Ok(Some(assemble(header, parts)))
    }

    /// Every window of a flow that has a checkpoint, in start order (the open start first): which
    /// windows a backfill may skip (complete) or resume (in progress).
    pub fn windows_for_flow(&self, flow_id: &FlowId) -> Result<Vec<Checkpoint>, StateError> {
        let trees = self.trees();
        let prefix = KeyBuf::new().str(flow_id.as_str()).finish();
        let mut checkpoints = Vec::new();
        for (_, header) in trees
            .checkpoints
            .values_with_prefix::<StoredCheckpoint>(&prefix)?
        {
            let parts = load_parts(&trees.parts, &header.window, Some(header.next_seq))?;
            checkpoints.push(assemble(header, parts));
        }
        Ok(checkpoints)
    }

    /// Starts a window afresh with a new batch (a first run, or a re-run replacing the window's
    /// previous batch, complete or not), creates the batch record as `Loading`, and flushes.
    ///
    /// The previous batch is marked `Replaced` in the same transaction, before any new part is
    /// published, so a reader never sees two copies of the window: the engine removes the
    /// replaced files right after this returns, and again at recovery if it crashed meanwhile.
    /// `batch_id` must be new: reusing an id would let that removal delete the new files.
    pub fn begin_window(
        &self,
        window: &WindowKey,
        run_id: &RunId,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
    ) -> Result<BeganWindow, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        loop {
            let old_header_bytes = trees.checkpoints.get_raw(&window_key)?;
            let old_header: Option<StoredCheckpoint> = match &old_header_bytes {
                None => None,
                Some(bytes) => Some(codec::decode(trees.checkpoints.name, &window_key, bytes)?),
            };
            let old_parts = match &old_header {
                None => Vec::new(),
                Some(_) => load_parts(&trees.parts, window, None)?,
            };
            if let Some(old) = &old_header
                && old.batch_id == *batch_id
            {
                return Err(StateError::Protocol {
                    window: window.to_string(),
                    reason: format!(
                        "batch {batch_id} is the window's current batch; a new run needs a new batch id"
                    ),
                });
            }
            let now = now_ms();
            let header = StoredCheckpoint {
                window: window.clone(),
                run_id: run_id.clone(),
                batch_id: batch_id.clone(),
                dataset_id: dataset_id.clone(),
                position: Value::Null,
                next_seq: 0,
                rows: 0,
                bytes: 0,
                status: CheckpointStatus::InProgress,
                started_at_ms: now,
                updated_at_ms: now,
            };
            let batch = BatchRecord {
                id: batch_id.clone(),
                dataset_id: dataset_id.clone(),
                run_id: run_id.clone(),
                window: window.clone(),
                files: Vec::new(),
                rows: 0,
                bytes: 0,
                schema_json: None,
                status: BatchStatus::Loading,
                created_at_ms: now,
                updated_at_ms: now,
            };
            let res = (
                &trees.checkpoints.tree,
                &trees.parts.tree,
                &trees.pending_parts.tree,
                &trees.batches.tree,
                &trees.batches_by_dataset.tree,
            )
                .transaction(|(checkpoints, parts, pending, batches, by_dataset)| {
                    if checkpoints.get(&window_key)?.as_deref() != old_header_bytes.as_deref() {
                        return Err(retry());
                    }
                    if batches.get(batch_id.as_str().as_bytes())?.is_some() {
                        return Err(abort(StateError::Protocol {
                            window: window.to_string(),
                            reason: format!("batch id {batch_id} is already used; a new run needs a new batch id"),
                        }));
                    }
                    for (part_key, _) in &old_parts {
                        parts.remove(part_key.as_slice())?;
                        pending.remove(part_key.as_slice())?;
                    }
                    if let Some(old) = &old_header {
                        let old_batch_key = old.batch_id.as_str().as_bytes();
                        if let Some(mut old_batch) =
                            tx_get::<BatchRecord>(batches, trees.batches.name, old_batch_key)?
                        {
                            old_batch.status = BatchStatus::Replaced;
                            old_batch.updated_at_ms = now;
                            tx_put_batch(trees, batches, by_dataset, &old_batch)?;
                        }
                    }
                    tx_put(checkpoints, &window_key, "checkpoint", &header)?;
                    tx_put_batch(trees, batches, by_dataset, &batch)?;
                    Ok(())
                });
            if finish_tx("beginning a window", res)?.is_none() {
                continue;
            }
            self.flush()?;
            let replaced = old_header.map(|old| ReplacedWindow {
                batch_id: old.batch_id,
                dataset_id: old.dataset_id,
                was_complete: old.status == CheckpointStatus::Complete,
                parts: old_parts.into_iter().map(|(_, part)| part.entry).collect(),
            });
            return Ok(BeganWindow {
                checkpoint: assemble(header, Vec::new()),
                replaced,
            });
        }
    }

    /// Records a staged (written and fsynced) part as pending together with the pagination
    /// position and row count after it: one transaction, flushed before returning. `part.seq`
    /// must be the checkpoint's `next_seq` and `part.state` must be `Pending`.
    pub fn record_part(
        &self,
        window: &WindowKey,
        part: PartEntry,
        position_after: Value,
        rows_after: u64,
    ) -> Result<(), StateError> {
        if part.state != PartState::Pending {
            return Err(StateError::InvalidInput {
                what: format!("part {} of {window}", part.seq),
                reason: "a part is recorded as pending; publish it afterwards with mark_published"
                    .to_owned(),
            });
        }
        let trees = self.trees();
        let window_key = window.key();
        let part_key = window.part_key(part.seq);
        let res = (
            &trees.checkpoints.tree,
            &trees.parts.tree,
            &trees.pending_parts.tree,
        )
            .transaction(|(checkpoints, parts, pending)| {
                let mut header =
                    in_progress_header(checkpoints, trees.checkpoints.name, window, &window_key)?;
                if part.seq != header.next_seq {
                    return Err(abort(StateError::Protocol {
                        window: window.to_string(),
                        reason: format!(
                            "expected part sequence {}, got {}",
                            header.next_seq, part.seq
                        ),
                    }));
                }
                let stored_part = StoredPart {
                    entry: part.clone(),
                    position_before: header.position.clone(),
                    rows_before: header.rows,
                };
                tx_put(parts, &part_key, "part", &stored_part)?;
                tx_put(pending, &part_key, "pending part", window)?;
                header.position = position_after.clone();
                header.rows = rows_after;
                header.bytes = header.bytes.saturating_add(part.bytes);
                header.next_seq = header.next_seq.saturating_add(1);
                header.updated_at_ms = now_ms();
                tx_put(checkpoints, &window_key, "checkpoint", &header)?;
                Ok(())
            });
        finish_tx("recording a part", res)?;
        self.flush()
    }

    /// Records that a part was renamed into the batch folder, and flushes. Idempotent.
    pub fn mark_published(&self, window: &WindowKey, seq: u32) -> Result<(), StateError> {
        let trees = self.trees();
        let part_key = window.part_key(seq);
        let res = (&trees.parts.tree, &trees.pending_parts.tree).transaction(|(parts, pending)| {
            let Some(mut part) = tx_get::<StoredPart>(parts, trees.parts.name, &part_key)? else {
                return Err(abort(StateError::NotFound {
                    what: "part",
                    id: format!("{seq} of {window}"),
                }));
            };
            if part.entry.state == PartState::Published {
                return Ok(false);
            }
            part.entry.state = PartState::Published;
            tx_put(parts, &part_key, "part", &part)?;
            pending.remove(part_key.as_slice())?;
            Ok(true)
        });
        if finish_tx("publishing a part", res)? == Some(true) {
            self.flush()?;
        }
        Ok(())
    }

    /// Recovery for a pending part whose staged file is gone and which was never published:
    /// removes it and rolls the position, rows and sequence back to before it, then flushes.
    /// Only the last part of the window can be discarded. Returns the discarded part.
    pub fn discard_part(&self, window: &WindowKey, seq: u32) -> Result<PartEntry, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        let part_key = window.part_key(seq);
        let res = (
            &trees.checkpoints.tree,
            &trees.parts.tree,
            &trees.pending_parts.tree,
        )
            .transaction(|(checkpoints, parts, pending)| {
                let mut header =
                    in_progress_header(checkpoints, trees.checkpoints.name, window, &window_key)?;
                let Some(part) = tx_get::<StoredPart>(parts, trees.parts.name, &part_key)? else {
                    return Err(abort(StateError::NotFound {
                        what: "part",
                        id: format!("{seq} of {window}"),
                    }));
                };
                if header.next_seq != seq.saturating_add(1) {
                    return Err(abort(StateError::Protocol {
                        window: window.to_string(),
                        reason: format!(
                            "only the last part ({}) can be discarded, not part {seq}",
                            header.next_seq.saturating_sub(1)
                        ),
                    }));
                }
                if part.entry.state == PartState::Published {
                    return Err(abort(StateError::Protocol {
                        window: window.to_string(),
                        reason: format!(
                            "part {seq} is published; a published part is never discarded"
                        ),
                    }));
                }
                parts.remove(part_key.as_slice())?;
                pending.remove(part_key.as_slice())?;
                header.position = part.position_before.clone();
                header.rows = part.rows_before;
                header.bytes = header.bytes.saturating_sub(part.entry.bytes);
                header.next_seq = seq;
                header.updated_at_ms = now_ms();
                tx_put(checkpoints, &window_key, "checkpoint", &header)?;
                Ok(part.entry)
            });
        let discarded = finish_tx("discarding a part", res)?;
        self.flush()?;
        discarded.ok_or_else(|| StateError::NotFound {
            what: "part",
            id: format!("{seq} of {window}"),
        })
    }

    /// Marks a window complete and its batch `Success` with the published parts as its files,
    /// in one transaction, and flushes. Every part must be published. Completing a complete
    /// window returns its batch unchanged.
    pub fn complete_window(
        &self,
        window: &WindowKey,
        schema_json: Option<String>,
    ) -> Result<BatchRecord, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        loop {
            let Some(header_bytes) = trees.checkpoints.get_raw(&window_key)? else {
                return Err(StateError::NotFound {
                    what: "checkpoint of",
                    id: window.to_string(),
                });
            };
            let header: StoredCheckpoint =
                codec::decode(trees.checkpoints.name, &window_key, &header_bytes)?;
            if header.status == CheckpointStatus::Complete {
                return self
                    .batch(&header.batch_id)?
                    .ok_or_else(|| StateError::NotFound {
                        what: "batch",
                        id: header.batch_id.to_string(),
                    });
            }
            let parts: Vec<PartEntry> = load_parts(&trees.parts, window, Some(header.next_seq))?
                .into_iter()
                .map(|(_, part)| part.entry)
                .collect();
            if let Some(pending) = parts.iter().find(|part| part.state == PartState::Pending) {
                return Err(StateError::Protocol {
                    window: window.to_string(),
                    reason: format!(
                        "part {} is still pending; publish or discard it before completing",
                        pending.seq
                    ),
                });
            }
            let files: Vec<FileEntry> = parts
                .iter()
                .map(|part| FileEntry {
                    path: part.final_path.clone(),
                    rows: part.rows,
                    bytes: part.bytes,
                })
                .collect();
            let now = now_ms();
            let res = (
                &trees.checkpoints.tree,
                &trees.batches.tree,
                &trees.batches_by_dataset.tree,
            )
                .transaction(|(checkpoints, batches, by_dataset)| {
                    if checkpoints.get(&window_key)?.as_deref() != Some(header_bytes.as_slice()) {
                        return Err(retry());
                    }
                    let batch_key = header.batch_id.as_str().as_bytes();
                    let Some(mut batch) =
                        tx_get::<BatchRecord>(batches, trees.batches.name, batch_key)?
                    else {
                        return Err(abort(StateError::NotFound {
                            what: "batch",
                            id: header.batch_id.to_string(),
                        }));
                    };
                    batch.files = files.clone();
                    batch.rows = files.iter().map(|file| file.rows).sum();
                    batch.bytes = files.iter().map(|file| file.bytes).sum();
                    batch.schema_json = schema_json.clone();
                    batch.status = BatchStatus::Success;
                    batch.updated_at_ms = now;
                    tx_put_batch(trees, batches, by_dataset, &batch)?;
                    let mut complete = header.clone();
                    complete.status = CheckpointStatus::Complete;
                    complete.updated_at_ms = now;
                    tx_put(checkpoints, &window_key, "checkpoint", &complete)?;
                    Ok(batch)
                });
            let Some(batch) = finish_tx("completing a window", res)? else {
                continue;
            };
            self.flush()?;
            return Ok(batch);
        }
    }

    /// Continues an interrupted window in a new run: the checkpoint and its batch now name
    /// `run_id` (so the new run's `targetInfo` shows the batch), position and parts unchanged.
    /// Returns the checkpoint to resume from.
    pub fn resume_window(
        &self,
        window: &WindowKey,
        run_id: &RunId,
    ) -> Result<Checkpoint, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        let res = (
            &trees.checkpoints.tree,
            &trees.batches.tree,
            &trees.batches_by_dataset.tree,
        )
            .transaction(|(checkpoints, batches, by_dataset)| {
                let mut header =
                    in_progress_header(checkpoints, trees.checkpoints.name, window, &window_key)?;
                let now = now_ms();
                header.run_id = run_id.clone();
                header.updated_at_ms = now;
                tx_put(checkpoints, &window_key, "checkpoint", &header)?;
                let batch_key = header.batch_id.as_str().as_bytes();
                if let Some(mut batch) =
                    tx_get::<BatchRecord>(batches, trees.batches.name, batch_key)?
                {
                    batch.run_id = run_id.clone();
                    batch.updated_at_ms = now;
                    tx_put_batch(trees, batches, by_dataset, &batch)?;
                }
                Ok(header)
            });
        let Some(header) = finish_tx("resuming a window", res)? else {
            return Err(StateError::NotFound {
                what: "checkpoint of",
                id: window.to_string(),
            });
        };
        let parts = load_parts(&trees.parts, window, Some(header.next_seq))?;
        Ok(assemble(header, parts))
    }

    /// The parts recorded but not yet published, for recovery at start, in key order.
    pub fn pending_parts(&self) -> Result<Vec<(WindowKey, PartEntry)>, StateError> {
        let trees = self.trees();
        let mut pending = Vec::new();
        for (part_key, window) in trees.pending_parts.values_with_prefix::<WindowKey>(b"")? {
            let Some(part) = trees.parts.get::<StoredPart>(&part_key)? else {
                continue;
            };
            if part.entry.state == PartState::Pending {
                pending.push((window, part.entry));
            }
        }
        Ok(pending)
    }
}

/// The header of a window that may take parts, or the abort saying why not.
fn in_progress_header(
    checkpoints: &sled::transaction::TransactionalTree,
    tree_name: &str,
    window: &WindowKey,
    window_key: &[u8],
) -> crate::store::TxResult<StoredCheckpoint> {
    let Some(header) = tx_get::<StoredCheckpoint>(checkpoints, tree_name, window_key)? else {
        return Err(abort(StateError::NotFound {
            what: "checkpoint of",
            id: window.to_string(),
        }));
    };
    if header.status == CheckpointStatus::Complete {
        return Err(abort(StateError::Protocol {
            window: window.to_string(),
            reason: "the window is complete; begin it again to re-run it".to_owned(),
        }));
    }
    Ok(header)
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

fn assemble(header: StoredCheckpoint, parts: Vec<(Vec<u8>, StoredPart)>) -> Checkpoint {
    Checkpoint {
        window: header.window,
        run_id: header.run_id,
        batch_id: header.batch_id,
        dataset_id: header.dataset_id,
        position: header.position,
        parts: parts.into_iter().map(|(_, part)| part.entry).collect(),
        next_seq: header.next_seq,
        rows: header.rows,
        bytes: header.bytes,
        status: header.status,
        started_at_ms: header.started_at_ms,
        updated_at_ms: header.updated_at_ms,
    }
}
