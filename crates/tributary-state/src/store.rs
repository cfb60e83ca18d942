//! The sled plumbing: one named tree per collection, typed reads and writes through the codec,
//! and helpers for multi-tree transactions.
//!
//! Transaction closures only read, decode, encode and write in memory; every file operation and
//! every encryption happens before the transaction starts, and the flush after it ends.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::entities::EntityKind;
use crate::{StateError, codec, error};

/// A sled tree and its name, which error messages show.
#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) tree: sled::Tree,
}

/// Every collection of the store.
pub(crate) struct Trees {
    pub(crate) meta: Table,
    /// One tree per entity kind, indexed by `EntityKind::index`.
    pub(crate) entities: Vec<Table>,
    pub(crate) runs: Table,
    /// `[flow id][started_at][run id]` -> empty.
    pub(crate) runs_by_flow: Table,
    /// `[started_at][run id]` -> empty.
    pub(crate) runs_by_time: Table,
    pub(crate) batches: Table,
    /// `[dataset id][created_at][batch id]` -> empty.
    pub(crate) batches_by_dataset: Table,
    /// window key -> checkpoint header.
    pub(crate) checkpoints: Table,
    /// `[window key][seq]` -> part.
    pub(crate) parts: Table,
    /// window key -> empty, for every window that is not complete.
    pub(crate) open_windows: Table,
    pub(crate) schedules: Table,
    pub(crate) oauth_tokens: Table,
    pub(crate) bundle_sources: Table,
    /// dataset id -> dataset schema.
    pub(crate) dataset_schemas: Table,
}

/// Why a transaction closure gave up.
#[derive(Debug)]
pub(crate) enum TxAbort {
    State(StateError),
    /// A record read before the transaction changed meanwhile: read again and retry.
    Retry,
}

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<TxAbort>>;

impl Trees {
    pub(crate) fn open(sled: &sled::Db) -> Result<Trees, StateError> {
        let open = |name: &'static str| -> Result<Table, StateError> {
            let tree = sled
                .open_tree(name)
                .map_err(|err| error::storage("opening a tree", err))?;
            Ok(Table { name, tree })
        };
        let mut entities = Vec::with_capacity(EntityKind::ALL.len());
        for kind in EntityKind::ALL {
            entities.push(open(kind.tree_name())?);
        }
        Ok(Trees {
            meta: open("meta")?,
            entities,
            runs: open("runs")?,
            runs_by_flow: open("runs_by_flow")?,
            runs_by_time: open("runs_by_time")?,
            batches: open("batches")?,
            batches_by_dataset: open("batches_by_dataset")?,
            checkpoints: open("checkpoints")?,
            parts: open("parts")?,
            open_windows: open("open_windows")?,
            schedules: open("schedules")?,
            oauth_tokens: open("oauth_tokens")?,
            bundle_sources: open("bundle_sources")?,
            dataset_schemas: open("dataset_schemas")?,
        })
    }

    pub(crate) fn entity(&self, kind: EntityKind) -> &Table {
        &self.entities[kind.index()]
    }
}

impl Table {
    pub(crate) fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(self.name, key, &bytes).map(Some),
        }
    }

    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let value = self
            .tree
            .get(key)
            .map_err(|err| error::storage("reading", err))?;
        Ok(value.map(|bytes| bytes.to_vec()))
    }

    pub(crate) fn put<T: Serialize>(
        &self,
        key: &[u8],
        what: &'static str,
        value: &T,
    ) -> Result<(), StateError> {
        let bytes = codec::encode(what, value)?;
        self.tree
            .insert(key, bytes)
            .map_err(|err| error::storage("writing", err))?;
        Ok(())
    }

    pub(crate) fn remove(&self, key: &[u8]) -> Result<bool, StateError> {
        let old = self
            .tree
            .remove(key)
            .map_err(|err| error::storage("removing", err))?;
        Ok(old.is_some())
    }

    /// Every key under `prefix`, in key order.
    pub(crate) fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
        let mut keys = Vec::new();
        for entry in self.tree.scan_prefix(prefix) {
            let (key, _) = entry.map_err(|err| error::storage("scanning", err))?;
            keys.push(key.to_vec());
        }
        Ok(keys)
    }

    /// Every decoded value under `prefix`, in key order.
    pub(crate) fn values_with_prefix<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StateError> {
        let mut values = Vec::new();
        for entry in self.tree.scan_prefix(prefix) {
            let (key, bytes) = entry.map_err(|err| error::storage("scanning", err))?;
            let value = codec::decode(self.name, &key, &bytes)?;
            values.push((key.to_vec(), value));
        }
        Ok(values)
    }
}

/// Reads and decodes inside a transaction.
pub(crate) fn tx_get<T: DeserializeOwned>(
    tx: &TransactionalTree,
    name: &str,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tx.get(key)? {
        None => Ok(None),
        Some(bytes) => codec::decode(name, key, &bytes).map(Some).map_err(abort),
    }
}

/// Encodes and writes inside a transaction.
pub(crate) fn tx_put<T: Serialize>(
    tx: &TransactionalTree,
    key: &[u8],
    what: &'static str,
    value: &T,
) -> TxResult<()> {
    let bytes = codec::encode(what, value).map_err(abort)?;
    tx.insert(key, bytes)?;
    Ok(())
}

/// Turns a state error into a transaction abort.
pub(crate) fn abort(err: StateError) -> ConflictableTransactionError<TxAbort> {
    ConflictableTransactionError::Abort(TxAbort::State(err))
}

pub(crate) fn retry() -> ConflictableTransactionError<TxAbort> {
    ConflictableTransactionError::Abort(TxAbort::Retry)
}

/// The outcome of a transaction: `Ok(None)` means "retry from the reads before it".
pub(crate) fn finish_tx<T>(
    action: &'static str,
    res: Result<T, TransactionError<TxAbort>>,
) -> Result<Option<T>, StateError> {
    match res {
        Ok(value) => Ok(Some(value)),
        Err(TransactionError::Abort(TxAbort::Retry)) => Ok(None),
        Err(TransactionError::Abort(TxAbort::State(err))) => Err(err),
        Err(TransactionError::Storage(err)) => Err(error::storage(action, err)),
    }
}
