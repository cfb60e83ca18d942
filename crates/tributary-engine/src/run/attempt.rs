//! How a run's attempt at its window starts, from the window's checkpoint: fresh, resumed from
//! its recorded parts, continued into a further batch, re-run, or only finishing an interrupted
//! commit; and the position and counters it starts from.
//!
//! Invariant: an attempt resumes only on parts this node can read; when a recorded part is not
//! in its staging folder the attempt starts again with a new batch, so no record is lost or
//! published twice.

use chrono::Utc;
use serde_json::Value;
use tributary_state::{BatchId, Checkpoint, CheckpointStatus, DatasetId, Db, RunId, WindowKey};
use tributary_write::DatasetLayout;

use super::{RunError, SavedPosition, recovery};

/// How a run's attempt at its window started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// The window's first run.
    Fresh,
    /// An interrupted attempt goes on from its last checkpoint.
    Resumed,
    /// An open window (cut short by `maximumRequest`) goes on into a further batch.
    Continued,
    /// A complete window runs again; its batches are replaced at commit.
    Rerun,
    /// The window's last attempt was complete and its commit was interrupted: this run only
    /// finishes the commit.
    FinishingCommit,
}

impl Attempt {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Attempt::Fresh => "fresh",
            Attempt::Resumed => "resumed",
            Attempt::Continued => "continued",
            Attempt::Rerun => "rerun",
            Attempt::FinishingCommit => "finishing a commit",
        }
    }
}

/// The position and counters an attempt starts from. Counters belong to the parts of this
/// attempt: an attempt without recorded parts (fresh, continued, or started again after a
/// rejection) counts from zero, from wherever its position is. (`maximumRequest` is a budget per
/// run, which the fetcher keeps.)
pub(super) fn saved_position(
    key: &WindowKey,
    checkpoint: &Checkpoint,
) -> Result<SavedPosition, RunError> {
    // `null` until the first part is recorded; anything else must read back, or resuming would
    // start over on top of parts that are already staged.
    let saved: SavedPosition = match &checkpoint.position {
        Value::Null => SavedPosition::default(),
        position => serde_json::from_value(position.clone()).map_err(|err| {
            RunError::Internal(format!("the checkpoint of {key} cannot be read: {err}"))
        })?,
    };
    if !checkpoint.parts.is_empty() {
        return Ok(saved);
    }
    Ok(SavedPosition {
        fetch: saved.fetch,
        ..SavedPosition::default()
    })
}

/// Starts the run's attempt at `key` as its checkpoint says (see [`Attempt`]). A commit that was
/// interrupted is finished first.
pub(super) fn start_attempt(
    db: &Db,
    layout: &DatasetLayout,
    key: &WindowKey,
    run_id: &RunId,
    dataset_id: &DatasetId,
) -> Result<(Checkpoint, Attempt), RunError> {
    {
        let status = db.checkpoint(key)?.map(|checkpoint| checkpoint.status);
        let (began, attempt) = match status {
            Some(CheckpointStatus::InProgress) => {
                restart_if_parts_missing(db, layout, key)?;
                return Ok((db.resume_window(key, run_id)?, Attempt::Resumed));
            }
            Some(CheckpointStatus::Open) => {
                let batch_id = BatchId::new(new_batch_id());
                return Ok((
                    db.continue_window(key, run_id, &batch_id)?,
                    Attempt::Continued,
                ));
            }
            Some(CheckpointStatus::Committing) => {
                let checkpoint = db.checkpoint(key)?.ok_or_else(|| {
                    RunError::Internal(format!("the checkpoint of {key} vanished"))
                })?;
                return Ok((checkpoint, Attempt::FinishingCommit));
            }
            None => (
                db.begin_window(key, run_id, &BatchId::new(new_batch_id()), dataset_id)?,
                Attempt::Fresh,
            ),
            Some(CheckpointStatus::Complete) => (
                db.begin_window(key, run_id, &BatchId::new(new_batch_id()), dataset_id)?,
                Attempt::Rerun,
            ),
        };
        if let Some(abandoned) = &began.abandoned {
            recovery::delete_staged(layout, &abandoned.batch)?;
        }
        Ok((began.checkpoint, attempt))
    }
}

/// An in-progress attempt resumes from its recorded parts, which must be in this process's
/// staging folder. They are not when another node wrote them to its own disk (nodes on several
/// machines sharing a Postgres state, with datasets in an object store) and died, or when the
/// staging folder was lost: the attempt then starts again from where it started, with a new
/// batch — its records are fetched again, none is lost or published twice.
fn restart_if_parts_missing(
    db: &Db,
    layout: &DatasetLayout,
    key: &WindowKey,
) -> Result<(), RunError> {
    let Some(checkpoint) = db.checkpoint(key)? else {
        return Ok(());
    };
    let Some(missing) = checkpoint
        .parts
        .iter()
        .find(|part| !std::path::Path::new(&part.staged_path).exists())
    else {
        return Ok(());
    };
    tracing::warn!(window = %key, staged_path = %missing.staged_path, parts = checkpoint.parts.len(),
        "a recorded part of the window's attempt is not in this node's staging folder; the attempt starts again");
    let failed = db.fail_window(key, &BatchId::new(new_batch_id()))?;
    recovery::delete_staged(layout, &failed.batch)?;
    Ok(())
}

/// Batch ids sort by creation time: `YYYYMMDDTHHMMSS` then random hex.
pub(super) fn new_batch_id() -> String {
    let now = Utc::now();
    format!(
        "{}-{}",
        now.format("%Y%m%dT%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
