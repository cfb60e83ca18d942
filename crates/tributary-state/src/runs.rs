//! Runs: the reference's run object (metrics, activities) plus the fields the engine and the
//! scheduler query by, indexed by (flow, start time) and by start time.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sled::Transactional as _;

use crate::codec::KeyBuf;
use crate::store::{finish_tx, tx_get};
use crate::{BatchId, Db, FlowId, RunId, StateError, codec, error};

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
        let res = (
            &trees.runs.tree,
            &trees.runs_by_flow.tree,
            &trees.runs_by_time.tree,
        )
            .transaction(|(runs, by_flow, by_time)| {
                if let Some(old) = tx_get::<RunRecord>(runs, trees.runs.name, run_key)? {
                    by_flow.remove(flow_index_key(&old.flow_id, old.started_at_ms, &old.id))?;
                    by_time.remove(time_index_key(old.started_at_ms, &old.id))?;
                }
                runs.insert(run_key, run_bytes.as_slice())?;
                by_flow.insert(flow_key.as_slice(), &[])?;
                by_time.insert(time_key.as_slice(), &[])?;
                Ok(())
            });
        finish_tx("writing a run", res)?;
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
        let mut runs = Vec::new();
        for entry in self.trees().runs_by_flow.tree.scan_prefix(&prefix).rev() {
            if runs.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(|err| error::storage("scanning runs", err))?;
            let run_id =
                self.index_run_id(self.trees().runs_by_flow.name, &key, prefix.len() + 8)?;
            if let Some(run) = self.trees().runs.get::<RunRecord>(run_id.as_bytes())? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// The newest `limit` runs of every flow, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let mut runs = Vec::new();
        for entry in self.trees().runs_by_time.tree.iter().rev() {
            if runs.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(|err| error::storage("scanning runs", err))?;
            let run_id = self.index_run_id(self.trees().runs_by_time.name, &key, 8)?;
            if let Some(run) = self.trees().runs.get::<RunRecord>(run_id.as_bytes())? {
                runs.push(run);
            }
        }
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
            let res = (
                &trees.runs.tree,
                &trees.runs_by_flow.tree,
                &trees.runs_by_time.tree,
            )
                .transaction(|(runs, by_flow, by_time)| {
                    let Some(run) = tx_get::<RunRecord>(runs, trees.runs.name, run_key)? else {
                        // A dangling index entry (the run vanished): drop it.
                        by_flow.remove(index_key.as_slice())?;
                        return Ok(false);
                    };
                    if !run.status.is_finished() {
                        return Ok(false);
                    }
                    runs.remove(run_key)?;
                    by_flow.remove(flow_index_key(&run.flow_id, run.started_at_ms, &run.id))?;
                    by_time.remove(time_index_key(run.started_at_ms, &run.id))?;
                    Ok(true)
                });
            if finish_tx("pruning runs", res)? == Some(true) {
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
