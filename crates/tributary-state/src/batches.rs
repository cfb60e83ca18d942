//! Batches: the files one run of one window wrote to a dataset, indexed by dataset.

use crate::codec::KeyBuf;
use crate::store::{Trees, Tx, TxResult, abort, tx_get, tx_put};
use crate::{BatchId, DatasetId, Db, FlowId, RunId, StateError, WindowKey, codec, now_ms};
use serde::{Deserialize, Serialize};

/// One published file of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The life cycle of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchStatus {
    /// Its window is being written; published parts are already visible in the dataset.
    Loading,
    Success,
    Failed,
    /// Superseded by a new run of the same window: its files must be removed from the dataset
    /// (the engine does so, idempotently, also at recovery) and then marks it `Removed`.
    Replaced,
    /// Superseded, and its files are gone.
    Removed,
}

/// One batch of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub id: BatchId,
    pub dataset_id: DatasetId,
    pub run_id: RunId,
    /// The window (and so the flow) that produced it.
    pub window: WindowKey,
    pub files: Vec<FileEntry>,
    pub rows: u64,
    pub bytes: u64,
    /// The Arrow schema of the files, as JSON.
    pub schema_json: Option<String>,
    pub status: BatchStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl BatchRecord {
    /// The flow whose window produced this batch.
    pub fn flow_id(&self) -> &FlowId {
        &self.window.flow_id
    }
}

impl Db {
    /// Creates or replaces a batch record (by id).
    pub fn put_batch(&self, batch: &BatchRecord) -> Result<(), StateError> {
        let trees = self.trees();
        trees.transact(
            "writing a batch",
            &[&trees.batches, &trees.batches_by_dataset],
            |tx| tx_put_batch(trees, tx, batch),
        )?;
        Ok(())
    }

    pub fn batch(&self, id: &BatchId) -> Result<Option<BatchRecord>, StateError> {
        self.trees().batches.get(id.as_str().as_bytes())
    }

    /// The batches of a dataset, oldest first.
    pub fn batches_for_dataset(
        &self,
        dataset_id: &DatasetId,
    ) -> Result<Vec<BatchRecord>, StateError> {
        let trees = self.trees();
        let prefix = KeyBuf::new().str(dataset_id.as_str()).finish();
        let mut batches = Vec::new();
        for index_key in trees.batches_by_dataset.keys_with_prefix(&prefix)? {
            let Some(id_bytes) = index_key.get(prefix.len() + 8..) else {
                return Err(codec::corrupt(
                    trees.batches_by_dataset.name,
                    &index_key,
                    "index key shorter than its fixed part".to_owned(),
                ));
            };
            if let Some(batch) = trees.batches.get::<BatchRecord>(id_bytes)? {
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    /// Changes a batch's status (e.g. `Replaced` to `Removed` once its files are gone, or
    /// `Loading` to `Failed`) and returns the updated record.
    pub fn set_batch_status(
        &self,
        id: &BatchId,
        status: BatchStatus,
    ) -> Result<BatchRecord, StateError> {
        let trees = self.trees();
        let batch_key = id.as_str().as_bytes();
        let res = trees.transact(
            "updating a batch",
            &[&trees.batches, &trees.batches_by_dataset],
            |tx| {
                let Some(mut batch) = tx_get::<BatchRecord>(tx, &trees.batches, batch_key)? else {
                    return Err(abort(StateError::NotFound {
                        what: "batch",
                        id: id.to_string(),
                    }));
                };
                batch.status = status;
                batch.updated_at_ms = now_ms();
                tx_put_batch(trees, tx, &batch)?;
                Ok(batch)
            },
        );
        res?.ok_or_else(|| StateError::NotFound {
            what: "batch",
            id: id.to_string(),
        })
    }

    /// Every batch in a status, e.g. the `Replaced` ones whose files recovery must remove.
    pub fn batches_with_status(&self, status: BatchStatus) -> Result<Vec<BatchRecord>, StateError> {
        let mut batches = Vec::new();
        for (_, batch) in self
            .trees()
            .batches
            .values_with_prefix::<BatchRecord>(b"")?
        {
            if batch.status == status {
                batches.push(batch);
            }
        }
        Ok(batches)
    }
}

/// Writes a batch and its dataset index entry inside a transaction over both trees.
pub(crate) fn tx_put_batch(trees: &Trees, tx: &mut dyn Tx, batch: &BatchRecord) -> TxResult<()> {
    let batch_key = batch.id.as_str().as_bytes();
    let by_dataset = trees.batches_by_dataset.name;
    if let Some(old) = tx_get::<BatchRecord>(tx, &trees.batches, batch_key)? {
        tx.remove(by_dataset, &dataset_index_key(&old))?;
    }
    tx_put(tx, &trees.batches, batch_key, "batch", batch)?;
    tx.insert(by_dataset, &dataset_index_key(batch), &[])
}

fn dataset_index_key(batch: &BatchRecord) -> Vec<u8> {
    KeyBuf::new()
        .str(batch.dataset_id.as_str())
        .i64(batch.created_at_ms)
        .raw(batch.id.as_str().as_bytes())
        .finish()
}
