//! The transitions of the commit protocol (see the module header of `checkpoints`): one backend
//! transaction each over every table they touch, flushed before they return. Positions are sealed
//! before a transaction starts, never inside it.

use serde_json::Value;

use super::{
    AbandonedAttempt, BatchRef, BeganWindow, Checkpoint, CheckpointStatus, PartEntry, PartState,
    StoredCheckpoint, StoredPart, WindowKey, load_parts,
};
use crate::batches::tx_put_batch;
use crate::store::{Trees, Tx, TxResult, abort, retry, tx_get, tx_put};
use crate::{BatchId, BatchRecord, BatchStatus, DatasetId, Db, FileEntry, RunId, StateError};
use crate::{codec, now_ms};

impl Db {
    /// Starts a window's first attempt, or a new generation of a window that is complete or
    /// open (a re-run): a new batch `batch_id`, created `Loading`, position `null`. The batches
    /// the window holds now stay visible; they are listed in `replaces` and swapped out by the
    /// first commit of the new generation. An interrupted attempt is abandoned: its batch is
    /// marked `Failed` and its parts are returned for the engine to delete.
    ///
    /// `batch_id` must be new. A window that is committing must be recovered first.
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
            let old_bytes = trees.checkpoints.get_raw(&window_key)?;
            let old: Option<StoredCheckpoint> = match &old_bytes {
                None => None,
                Some(bytes) => Some(codec::decode(trees.checkpoints.name, &window_key, bytes)?),
            };
            if let Some(old) = &old {
                if old.status == CheckpointStatus::Committing {
                    return Err(protocol(
                        window,
                        "the window's commit was interrupted; recover it before beginning again",
                    ));
                }
                if old.batch_id == *batch_id {
                    return Err(protocol(
                        window,
                        &format!(
                            "batch {batch_id} is the window's current batch; a new run needs a new batch id"
                        ),
                    ));
                }
            }
            let old_parts = match &old {
                None => Vec::new(),
                Some(_) => load_parts(&trees.parts, window, None)?,
            };
            let now = now_ms();
            let mut replaces = Vec::new();
            let mut abandoned = None;
            if let Some(old) = &old {
                replaces.extend(old.replaces.iter().cloned());
                replaces.extend(old.segments.iter().cloned());
                if old.status == CheckpointStatus::InProgress {
                    abandoned = Some(AbandonedAttempt {
                        batch: BatchRef {
                            batch_id: old.batch_id.clone(),
                            dataset_id: old.dataset_id.clone(),
                        },
                        parts: old_parts.iter().map(|(_, p)| p.entry.clone()).collect(),
                    });
                }
            }
            let header = StoredCheckpoint {
                window: window.clone(),
                run_id: run_id.clone(),
                batch_id: batch_id.clone(),
                dataset_id: dataset_id.clone(),
                position: Value::Null,
                attempt_start: Value::Null,
                next_seq: 0,
                rows: 0,
                bytes: 0,
                status: CheckpointStatus::InProgress,
                truncated: false,
                segments: Vec::new(),
                replaces,
                started_at_ms: now,
                updated_at_ms: now,
            };
            let batch = loading_batch(batch_id, dataset_id, run_id, window, now);
            let res = trees.transact(
                "beginning a window",
                &[
                    &trees.checkpoints,
                    &trees.parts,
                    &trees.open_windows,
                    &trees.batches,
                    &trees.batches_by_dataset,
                    &trees.leases,
                ],
                |tx| {
                    self.tx_check_fence(tx, &window.flow_id)?;
                    if tx.get(trees.checkpoints.name, &window_key)?.as_deref() != old_bytes.as_deref() {
                        return Err(retry());
                    }
                    if tx.get(trees.batches.name, batch_id.as_str().as_bytes())?.is_some() {
                        return Err(abort(protocol(
                            window,
                            &format!("batch id {batch_id} is already used; a new run needs a new batch id"),
                        )));
                    }
                    for (part_key, _) in &old_parts {
                        tx.remove(trees.parts.name, part_key)?;
                    }
                    if let Some(abandoned) = &abandoned {
                        tx_set_batch_status(trees, tx, &abandoned.batch.batch_id, BatchStatus::Failed, now)?;
                    }
                    tx_put_header(trees, tx, &window_key, &header)?;
                    tx_put_batch(trees, tx, &batch)?;
                    Ok(())
                },
            );
            if res?.is_none() {
                continue;
            }
            self.flush()?;
            return Ok(BeganWindow {
                checkpoint: self.assemble(header, Vec::new())?,
                abandoned,
            });
        }
    }

    /// Continues an interrupted attempt in a new run: the checkpoint and its batch now name
    /// `run_id` (so the new run's `targetInfo` shows the batch), position and parts unchanged.
    pub fn resume_window(
        &self,
        window: &WindowKey,
        run_id: &RunId,
    ) -> Result<Checkpoint, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        let res = trees.transact(
            "resuming a window",
            &[
                &trees.checkpoints,
                &trees.batches,
                &trees.batches_by_dataset,
                &trees.leases,
            ],
            |tx| {
                self.tx_check_fence(tx, &window.flow_id)?;
                let mut header = tx_header(tx, trees, window, &window_key)?;
                expect_status(window, &header, CheckpointStatus::InProgress, "resumed")?;
                let now = now_ms();
                header.run_id = run_id.clone();
                header.updated_at_ms = now;
                tx_put(tx, &trees.checkpoints, &window_key, "checkpoint", &header)?;
                let batch_key = header.batch_id.as_str().as_bytes();
                if let Some(mut batch) = tx_get::<BatchRecord>(tx, &trees.batches, batch_key)? {
                    batch.run_id = run_id.clone();
                    batch.updated_at_ms = now;
                    tx_put_batch(trees, tx, &batch)?;
                }
                Ok(header)
            },
        );
        let header = res?.ok_or_else(|| not_found(window))?;
        self.flush()?;
        let parts = load_parts(&trees.parts, window, Some(header.next_seq))?;
        self.assemble(header, parts)
    }

    /// Starts the next segment of an `Open` window (its last run was cut short by
    /// `maximumRequest`): a new batch `batch_id` from the saved position, the published segments
    /// kept.
    pub fn continue_window(
        &self,
        window: &WindowKey,
        run_id: &RunId,
        batch_id: &BatchId,
    ) -> Result<Checkpoint, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        let now = now_ms();
        let res = trees.transact(
            "continuing a window",
            &[
                &trees.checkpoints,
                &trees.open_windows,
                &trees.batches,
                &trees.batches_by_dataset,
                &trees.leases,
            ],
            |tx| {
                self.tx_check_fence(tx, &window.flow_id)?;
                let mut header = tx_header(tx, trees, window, &window_key)?;
                expect_status(window, &header, CheckpointStatus::Open, "continued")?;
                if tx
                    .get(trees.batches.name, batch_id.as_str().as_bytes())?
                    .is_some()
                {
                    return Err(abort(protocol(
                        window,
                        &format!(
                            "batch id {batch_id} is already used; a new run needs a new batch id"
                        ),
                    )));
                }
                header.run_id = run_id.clone();
                header.batch_id = batch_id.clone();
                header.attempt_start = header.position.clone();
                header.next_seq = 0;
                header.rows = 0;
                header.bytes = 0;
                header.status = CheckpointStatus::InProgress;
                header.updated_at_ms = now;
                tx_put_header(trees, tx, &window_key, &header)?;
                let batch = loading_batch(batch_id, &header.dataset_id, run_id, window, now);
                tx_put_batch(trees, tx, &batch)?;
                Ok(header)
            },
        );
        let header = res?.ok_or_else(|| not_found(window))?;
        self.flush()?;
        self.assemble(header, Vec::new())
    }

    /// Records the staged (sealed and fsynced) parts of one checkpoint — data parts and
    /// rejected-row parts alike — together with the pagination position and row count after
    /// them: one transaction, flushed before returning. The parts must be `Pending` and numbered
    /// from the checkpoint's `next_seq` on.
    pub fn record_parts(
        &self,
        window: &WindowKey,
        new_parts: &[PartEntry],
        position_after: &Value,
        rows_after: u64,
    ) -> Result<(), StateError> {
        if let Some(part) = new_parts.iter().find(|p| p.state != PartState::Pending) {
            return Err(StateError::InvalidInput {
                what: format!("part {} of {window}", part.seq),
                reason: "a part is recorded as pending; it is published with its batch".to_owned(),
            });
        }
        let sealed_after = self.seal_position(window, position_after);
        let trees = self.trees();
        let window_key = window.key();
        let res = trees.transact(
            "recording parts",
            &[&trees.checkpoints, &trees.parts, &trees.leases],
            |tx| {
                self.tx_check_fence(tx, &window.flow_id)?;
                let mut header = tx_header(tx, trees, window, &window_key)?;
                expect_status(window, &header, CheckpointStatus::InProgress, "given parts")?;
                for part in new_parts {
                    if part.seq != header.next_seq {
                        return Err(abort(protocol(
                            window,
                            &format!(
                                "expected part sequence {}, got {}",
                                header.next_seq, part.seq
                            ),
                        )));
                    }
                    let stored = StoredPart {
                        entry: part.clone(),
                        position_before: header.position.clone(),
                        rows_before: header.rows,
                    };
                    tx_put(
                        tx,
                        &trees.parts,
                        &window.part_key(part.seq),
                        "part",
                        &stored,
                    )?;
                    header.bytes = header.bytes.saturating_add(part.bytes);
                    header.next_seq = header.next_seq.saturating_add(1);
                }
                header.position = sealed_after.clone();
                header.rows = rows_after;
                header.updated_at_ms = now_ms();
                tx_put(tx, &trees.checkpoints, &window_key, "checkpoint", &header)?;
                Ok(())
            },
        );
        res?;
        self.flush()
    }

    /// Ends the current attempt of an in-progress window without publishing it (its rows were
    /// rejected over the threshold): its batch becomes `Failed`, its parts are forgotten, and
    /// the window starts again from where the attempt started with the new batch `next_batch_id`.
    /// Returns the failed attempt, whose staged files are the engine's to publish as diagnostics
    /// or delete.
    pub fn fail_window(
        &self,
        window: &WindowKey,
        next_batch_id: &BatchId,
    ) -> Result<AbandonedAttempt, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        loop {
            let Some(header_bytes) = trees.checkpoints.get_raw(&window_key)? else {
                return Err(not_found(window));
            };
            let header: StoredCheckpoint =
                codec::decode(trees.checkpoints.name, &window_key, &header_bytes)?;
            check_status(window, &header, CheckpointStatus::InProgress, "failed")?;
            let old_parts = load_parts(&trees.parts, window, None)?;
            let failed = AbandonedAttempt {
                batch: BatchRef {
                    batch_id: header.batch_id.clone(),
                    dataset_id: header.dataset_id.clone(),
                },
                parts: old_parts.iter().map(|(_, p)| p.entry.clone()).collect(),
            };
            let now = now_ms();
            let mut next = header.clone();
            next.batch_id = next_batch_id.clone();
            next.position = header.attempt_start.clone();
            next.next_seq = 0;
            next.rows = 0;
            next.bytes = 0;
            next.updated_at_ms = now;
            let batch = loading_batch(
                next_batch_id,
                &header.dataset_id,
                &header.run_id,
                window,
                now,
            );
            let res = trees.transact(
                "failing a window's attempt",
                &[
                    &trees.checkpoints,
                    &trees.parts,
                    &trees.batches,
                    &trees.batches_by_dataset,
                    &trees.leases,
                ],
                |tx| {
                    self.tx_check_fence(tx, &window.flow_id)?;
                    if tx.get(trees.checkpoints.name, &window_key)?.as_deref() != Some(header_bytes.as_slice()) {
                        return Err(retry());
                    }
                    if tx.get(trees.batches.name, next_batch_id.as_str().as_bytes())?.is_some() {
                        return Err(abort(protocol(
                            window,
                            &format!("batch id {next_batch_id} is already used; a new attempt needs a new batch id"),
                        )));
                    }
                    for (part_key, _) in &old_parts {
                        tx.remove(trees.parts.name, part_key)?;
                    }
                    tx_set_batch_status(trees, tx, &header.batch_id, BatchStatus::Failed, now)?;
                    tx_put_batch(trees, tx, &batch)?;
                    tx_put(tx, &trees.checkpoints, &window_key, "checkpoint", &next)?;
                    Ok(())
                },
            );
            if res?.is_none() {
                continue;
            }
            self.flush()?;
            return Ok(failed);
        }
    }

    /// Marks an in-progress window's attempt complete and durable: from here recovery finishes
    /// the swap whatever happens. `truncated`: `maximumRequest` cut the attempt short, so the
    /// commit will leave the window `Open`. Returns the checkpoint, whose `replaces` the engine
    /// takes out of the dataset before it publishes the batch. Idempotent on a committing window
    /// (the flag of the first call stays).
    pub fn start_commit(
        &self,
        window: &WindowKey,
        truncated: bool,
    ) -> Result<Checkpoint, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        let res = trees.transact(
            "starting a commit",
            &[&trees.checkpoints, &trees.open_windows, &trees.leases],
            |tx| {
                self.tx_check_fence(tx, &window.flow_id)?;
                let mut header = tx_header(tx, trees, window, &window_key)?;
                if header.status == CheckpointStatus::Committing {
                    return Ok((header, false));
                }
                expect_status(window, &header, CheckpointStatus::InProgress, "committed")?;
                header.status = CheckpointStatus::Committing;
                header.truncated = truncated;
                header.updated_at_ms = now_ms();
                tx_put_header(trees, tx, &window_key, &header)?;
                Ok((header, true))
            },
        );
        let (header, changed) = res?.ok_or_else(|| not_found(window))?;
        if changed {
            self.flush()?;
        }
        let parts = load_parts(&trees.parts, window, Some(header.next_seq))?;
        self.assemble(header, parts)
    }

    /// Ends a commit once the batch is published and the replaced batches are gone: the batch
    /// becomes `Success` with its data files, the replaced batches `Removed`, and the window
    /// `Complete` — or `Open` when the commit was started as truncated (more pages are left; the
    /// next run continues from the saved position). One transaction, flushed. Completing a
    /// window that is already complete or open returns its batch unchanged.
    pub fn complete_window(
        &self,
        window: &WindowKey,
        schema_json: Option<String>,
    ) -> Result<BatchRecord, StateError> {
        let trees = self.trees();
        let window_key = window.key();
        loop {
            let Some(header_bytes) = trees.checkpoints.get_raw(&window_key)? else {
                return Err(not_found(window));
            };
            let header: StoredCheckpoint =
                codec::decode(trees.checkpoints.name, &window_key, &header_bytes)?;
            if matches!(
                header.status,
                CheckpointStatus::Complete | CheckpointStatus::Open
            ) {
                return self
                    .batch(&header.batch_id)?
                    .ok_or_else(|| StateError::NotFound {
                        what: "batch",
                        id: header.batch_id.to_string(),
                    });
            }
            if header.status != CheckpointStatus::Committing {
                return Err(protocol(
                    window,
                    "the window is not committing; start the commit before completing it",
                ));
            }
            let parts = load_parts(&trees.parts, window, Some(header.next_seq))?;
            let data_files: Vec<FileEntry> = parts
                .iter()
                .map(|(_, part)| &part.entry)
                .filter(|entry| entry.final_path.ends_with(".parquet"))
                .map(|entry| FileEntry {
                    path: entry.final_path.clone(),
                    rows: entry.rows,
                    bytes: entry.bytes,
                })
                .collect();
            let now = now_ms();
            let mut complete = header.clone();
            complete.status = if header.truncated {
                CheckpointStatus::Open
            } else {
                CheckpointStatus::Complete
            };
            complete.segments.push(BatchRef {
                batch_id: header.batch_id.clone(),
                dataset_id: header.dataset_id.clone(),
            });
            complete.replaces.clear();
            complete.truncated = false;
            complete.updated_at_ms = now;
            let res = trees.transact(
                "completing a window",
                &[
                    &trees.checkpoints,
                    &trees.parts,
                    &trees.open_windows,
                    &trees.batches,
                    &trees.batches_by_dataset,
                    &trees.leases,
                ],
                |tx| {
                    self.tx_check_fence(tx, &window.flow_id)?;
                    if tx.get(trees.checkpoints.name, &window_key)?.as_deref()
                        != Some(header_bytes.as_slice())
                    {
                        return Err(retry());
                    }
                    let batch_key = header.batch_id.as_str().as_bytes();
                    let Some(mut batch) = tx_get::<BatchRecord>(tx, &trees.batches, batch_key)?
                    else {
                        return Err(abort(StateError::NotFound {
                            what: "batch",
                            id: header.batch_id.to_string(),
                        }));
                    };
                    batch.files = data_files.clone();
                    batch.rows = data_files.iter().map(|file| file.rows).sum();
                    batch.bytes = data_files.iter().map(|file| file.bytes).sum();
                    batch.schema_json = schema_json.clone();
                    batch.status = BatchStatus::Success;
                    batch.updated_at_ms = now;
                    tx_put_batch(trees, tx, &batch)?;
                    for replaced in &header.replaces {
                        tx_set_batch_status(
                            trees,
                            tx,
                            &replaced.batch_id,
                            BatchStatus::Removed,
                            now,
                        )?;
                    }
                    for (part_key, part) in &parts {
                        let mut published = part.clone();
                        published.entry.state = PartState::Published;
                        tx_put(tx, &trees.parts, part_key, "part", &published)?;
                    }
                    tx_put_header(trees, tx, &window_key, &complete)?;
                    Ok(batch)
                },
            );
            let Some(batch) = res? else {
                continue;
            };
            self.flush()?;
            return Ok(batch);
        }
    }
}

/// Writes a checkpoint header and keeps the `open_windows` index in line with its status.
fn tx_put_header(
    trees: &Trees,
    tx: &mut dyn Tx,
    window_key: &[u8],
    header: &StoredCheckpoint,
) -> TxResult<()> {
    tx_put(tx, &trees.checkpoints, window_key, "checkpoint", header)?;
    if header.status.is_open() {
        tx.insert(trees.open_windows.name, window_key, &[])
    } else {
        tx.remove(trees.open_windows.name, window_key)
    }
}

/// Changes the status of a batch that may not exist (an old state may have lost it).
fn tx_set_batch_status(
    trees: &Trees,
    tx: &mut dyn Tx,
    batch_id: &BatchId,
    status: BatchStatus,
    now: i64,
) -> TxResult<()> {
    if let Some(mut batch) =
        tx_get::<BatchRecord>(tx, &trees.batches, batch_id.as_str().as_bytes())?
    {
        batch.status = status;
        batch.updated_at_ms = now;
        tx_put_batch(trees, tx, &batch)?;
    }
    Ok(())
}

fn tx_header(
    tx: &mut dyn Tx,
    trees: &Trees,
    window: &WindowKey,
    window_key: &[u8],
) -> TxResult<StoredCheckpoint> {
    tx_get::<StoredCheckpoint>(tx, &trees.checkpoints, window_key)?
        .ok_or_else(|| abort(not_found(window)))
}

fn expect_status(
    window: &WindowKey,
    header: &StoredCheckpoint,
    expected: CheckpointStatus,
    action: &str,
) -> TxResult<()> {
    check_status(window, header, expected, action).map_err(abort)
}

/// Refuses a transition from any status but `expected`, naming the status it found.
fn check_status(
    window: &WindowKey,
    header: &StoredCheckpoint,
    expected: CheckpointStatus,
    action: &str,
) -> Result<(), StateError> {
    if header.status == expected {
        return Ok(());
    }
    let status = match header.status {
        CheckpointStatus::InProgress => "in progress",
        CheckpointStatus::Committing => "committing",
        CheckpointStatus::Open => "open (cut short by maximumRequest)",
        CheckpointStatus::Complete => "complete; begin it again to re-run it",
    };
    Err(protocol(
        window,
        &format!("the window is {status}: it cannot be {action}"),
    ))
}

fn loading_batch(
    batch_id: &BatchId,
    dataset_id: &DatasetId,
    run_id: &RunId,
    window: &WindowKey,
    now: i64,
) -> BatchRecord {
    BatchRecord {
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
    }
}

fn protocol(window: &WindowKey, reason: &str) -> StateError {
    StateError::Protocol {
        window: window.to_string(),
        reason: reason.to_owned(),
    }
}

fn not_found(window: &WindowKey) -> StateError {
    StateError::NotFound {
        what: "checkpoint of",
        id: window.to_string(),
    }
}

impl Db {
    /// Records the new size of an in-progress window's part after the engine rewrote its staged
    /// file in place (same rows, the batch's final schema). One transaction over the part and
    /// the checkpoint header's byte total, flushed.
    pub fn set_part_bytes(
        &self,
        window: &WindowKey,
        seq: u32,
        bytes: u64,
    ) -> Result<(), StateError> {
        let trees = self.trees();
        let window_key = window.key();
        let part_key = window.part_key(seq);
        let res = trees.transact(
            "resizing a part",
            &[&trees.checkpoints, &trees.parts, &trees.leases],
            |tx| {
                self.tx_check_fence(tx, &window.flow_id)?;
                let mut header = tx_header(tx, trees, window, &window_key)?;
                expect_status(window, &header, CheckpointStatus::InProgress, "resized")?;
                let Some(mut stored) = tx_get::<StoredPart>(tx, &trees.parts, &part_key)? else {
                    return Err(abort(StateError::NotFound {
                        what: "part",
                        id: format!("{seq} of {window}"),
                    }));
                };
                header.bytes = header
                    .bytes
                    .saturating_sub(stored.entry.bytes)
                    .saturating_add(bytes);
                stored.entry.bytes = bytes;
                header.updated_at_ms = now_ms();
                tx_put(tx, &trees.parts, &part_key, "part", &stored)?;
                tx_put(tx, &trees.checkpoints, &window_key, "checkpoint", &header)?;
                Ok(())
            },
        );
        res?;
        self.flush()
    }
}
