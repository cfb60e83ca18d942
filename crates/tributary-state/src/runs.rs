//! Runs: the reference's run object (metrics, activities) plus the fields the engine and the
//! scheduler query by, indexed by (flow, start time) and by start time.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::ControlFlow;

use crate::codec::KeyBuf;
use crate::store::{KeyRange, tx_get};
use crate::{BatchId, Db, FlowId, RunId, StateError, codec};

/// The life cycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunStatus {
    Scheduled,
    InProgress,
    Success,
    Failed,
    Cancelled,
}

/// A half-open time window `[start_ms, end_ms)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One run of one flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub flow_id: FlowId,
    pub status: RunStatus,
    pub window: Option<Window>,
    pub batch_id: Option<BatchId>,
    pub started_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    /// The full run object as the API returns it, with metrics and activities.
    pub run_doc: Value,
}

impl RunStatus {
    /// Whether the run has ended (and so may be pruned by retention).
    pub fn is_finished(self) -> bool {
        match self {
            RunStatus::Success | RunStatus::Failed | RunStatus::Cancelled => true,
            RunStatus::Scheduled | RunStatus::InProgress => false,
        }
    }
}

impl Db {
    /// Creates or replaces a run (by id), keeping the indexes in step in one transaction.
    pub fn put_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let trees = self.trees();
        let run_key = run.id.as_str().as_bytes();
        let run_bytes = codec::encode("run", run)?;
        let flow_key = flow_index_key(&run.flow_id, run.started_at_ms, &run.id);
        let time_key = time_index_key(run.started_at_ms, &run.id);
        let (by_flow, by_time) = (trees.runs_by_flow.name, trees.runs_by_time.name);
        trees.transact(
            "writing a run",
            &[&trees.runs, &trees.runs_by_flow, &trees.runs_by_time],
            |tx| {
                if let Some(old) = tx_get::<RunRecord>(tx, &trees.runs, run_key)? {
                    tx.remove(
                        by_flow,
                        &flow_index_key(&old.flow_id, old.started_at_ms, &old.id),
                    )?;
                    tx.remove(by_time, &time_index_key(old.started_at_ms, &old.id))?;
                }
                tx.insert(trees.runs.name, run_key, &run_bytes)?;
                tx.insert(by_flow, &flow_key, &[])?;
                tx.insert(by_time, &time_key, &[])?;
                Ok(())
            },
        )?;
        Ok(())
    }

    pub fn run(&self, id: &RunId) -> Result<Option<RunRecord>, StateError> {
        self.trees().runs.get(id.as_str().as_bytes())
    }

    /// The newest `limit` runs of a flow, newest first (by `started_at_ms`).
    pub fn runs_for_flow(
        &self,
        flow_id: &FlowId,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        let prefix = KeyBuf::new().str(flow_id.as_str()).finish();
        let trees = self.trees();
        let mut runs = Vec::new();
        if limit == 0 {
            return Ok(runs);
        }
        trees
            .runs_by_flow
            .scan(KeyRange::prefix(&prefix), true, |key, _| {
                let run_id = self.index_run_id(trees.runs_by_flow.name, key, prefix.len() + 8)?;
                if let Some(run) = trees.runs.get::<RunRecord>(run_id.as_bytes())? {
                    runs.push(run);
                }
                Ok(if runs.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
        Ok(runs)
    }

    /// The newest `limit` runs of every flow, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let trees = self.trees();
        let mut runs = Vec::new();
        if limit == 0 {
            return Ok(runs);
        }
        trees
            .runs_by_time
            .scan(KeyRange::prefix(b""), true, |key, _| {
                let run_id = self.index_run_id(trees.runs_by_time.name, key, 8)?;
                if let Some(run) = trees.runs.get::<RunRecord>(run_id.as_bytes())? {
                    runs.push(run);
                }
                Ok(if runs.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
        Ok(runs)
    }

    /// Retention: deletes the finished runs of a flow beyond the newest `keep_last` runs. Runs
    /// still scheduled or in progress are never deleted (but count towards `keep_last`).
    /// Returns how many runs were deleted.
    pub fn prune_runs(&self, flow_id: &FlowId, keep_last: usize) -> Result<usize, StateError> {
        let prefix = KeyBuf::new().str(flow_id.as_str()).finish();
        let trees = self.trees();
        let index_keys = trees.runs_by_flow.keys_with_prefix(&prefix)?;
        let n_prunable = index_keys.len().saturating_sub(keep_last);
        let mut n_deleted = 0;
        for index_key in &index_keys[..n_prunable] {
            let run_id = self.index_run_id(trees.runs_by_flow.name, index_key, prefix.len() + 8)?;
            let run_key = run_id.as_bytes();
            let (by_flow, by_time) = (trees.runs_by_flow.name, trees.runs_by_time.name);
            let res = trees.transact(
                "pruning runs",
                &[&trees.runs, &trees.runs_by_flow, &trees.runs_by_time],
                |tx| {
                    let Some(run) = tx_get::<RunRecord>(tx, &trees.runs, run_key)? else {
                        // A dangling index entry (the run vanished): drop it.
                        tx.remove(by_flow, index_key)?;
                        return Ok(false);
                    };
                    if !run.status.is_finished() {
                        return Ok(false);
                    }
                    tx.remove(trees.runs.name, run_key)?;
                    tx.remove(
                        by_flow,
                        &flow_index_key(&run.flow_id, run.started_at_ms, &run.id),
                    )?;
                    tx.remove(by_time, &time_index_key(run.started_at_ms, &run.id))?;
                    Ok(true)
                },
            );
            if res? == Some(true) {
                n_deleted += 1;
            }
        }
        Ok(n_deleted)
    }

    /// The run id at the end of an index key, after `offset` bytes of flow id and time.
    fn index_run_id(&self, tree: &str, key: &[u8], offset: usize) -> Result<String, StateError> {
        let Some(id_bytes) = key.get(offset..) else {
            return Err(codec::corrupt(
                tree,
                key,
                "index key shorter than its fixed part".to_owned(),
            ));
        };
        String::from_utf8(id_bytes.to_vec())
            .map_err(|_| codec::corrupt(tree, key, "run id in index key is not UTF-8".to_owned()))
    }
}

fn flow_index_key(flow_id: &FlowId, started_at_ms: i64, run_id: &RunId) -> Vec<u8> {
    KeyBuf::new()
        .str(flow_id.as_str())
        .i64(started_at_ms)
        .raw(run_id.as_str().as_bytes())
        .finish()
}

fn time_index_key(started_at_ms: i64, run_id: &RunId) -> Vec<u8> {
    KeyBuf::new()
        .i64(started_at_ms)
        .raw(run_id.as_str().as_bytes())
        .finish()
}
