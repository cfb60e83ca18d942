//! The sled backend: one sled tree per table, transactions as sled multi-tree transactions.
//!
//! Invariants: the only module besides `lib.rs` (which opens the database in its directory and
//! holds the directory lock) that names sled; sled errors leave it boxed in
//! [`StateError::Storage`]. Trees are opened once, at construction, for every table of
//! [`table_names`]; a table name outside that list is a bug reported as an error, not a panic.

use std::cell::RefCell;
use std::collections::HashMap;

use sled::Transactional as _;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

use crate::StateError;
use crate::store::{Backend, KeyRange, Row, Tx, TxAbort, TxResult, table_names};

pub(crate) struct SledBackend {
    db: sled::Db,
    trees: HashMap<&'static str, sled::Tree>,
}

impl SledBackend {
    pub(crate) fn new(db: sled::Db) -> Result<SledBackend, StateError> {
        let mut trees = HashMap::new();
        for name in table_names() {
            let tree = db
                .open_tree(name)
                .map_err(|err| storage("opening a tree", err))?;
            trees.insert(name, tree);
        }
        Ok(SledBackend { db, trees })
    }

    fn tree(&self, table: &str) -> Result<&sled::Tree, StateError> {
        self.trees.get(table).ok_or_else(|| unknown_table(table))
    }
}

fn unknown_table(table: &str) -> StateError {
    StateError::InvalidInput {
        what: "table".to_owned(),
        reason: format!("{table:?} is not a table of the state store"),
    }
}

/// Wraps a sled error without exposing its type; IO errors inside sled are worth a retry.
pub(crate) fn storage(action: &'static str, err: sled::Error) -> StateError {
    let retryable = matches!(err, sled::Error::Io(_));
    StateError::Storage {
        action,
        retryable,
        source: Box::new(err),
    }
}

impl Backend for SledBackend {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let value = self
            .tree(table)?
            .get(key)
            .map_err(|err| storage("reading", err))?;
        Ok(value.map(|bytes| bytes.to_vec()))
    }

    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.tree(table)?
            .insert(key, value)
            .map_err(|err| storage("writing", err))?;
        Ok(())
    }

    fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StateError> {
        let old = self
            .tree(table)?
            .remove(key)
            .map_err(|err| storage("removing", err))?;
        Ok(old.is_some())
    }

    fn scan(
        &self,
        table: &str,
        range: &KeyRange,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Row>, StateError> {
        let tree = self.tree(table)?;
        let iter = match &range.upper {
            Some(upper) => tree.range(range.lower.as_slice()..upper.as_slice()),
            None => tree.range(range.lower.as_slice()..),
        };
        let collect = |iter: &mut dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>| {
            let mut rows = Vec::new();
            for entry in iter.take(limit) {
                let (key, value) = entry.map_err(|err| storage("scanning", err))?;
                rows.push((key.to_vec(), value.to_vec()));
            }
            Ok(rows)
        };
        if reverse {
            collect(&mut iter.rev())
        } else {
            let mut iter = iter;
            collect(&mut iter)
        }
    }

    fn compare_and_swap(
        &self,
        table: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        let swapped = self
            .tree(table)?
            .compare_and_swap(key, old, new)
            .map_err(|err| storage("swapping a value", err))?;
        Ok(swapped.is_ok())
    }

    fn transaction(
        &self,
        tables: &[&'static str],
        body: &mut dyn FnMut(&mut dyn Tx) -> TxResult<()>,
    ) -> Result<(), TxAbort> {
        let mut trees = Vec::with_capacity(tables.len());
        for table in tables {
            trees.push(self.tree(table).map_err(TxAbort::State)?.clone());
        }
        // sled runs the closure again after a conflict, always on this thread.
        let body = RefCell::new(body);
        let res = trees
            .as_slice()
            .transaction(|views: &Vec<TransactionalTree>| {
                let mut tx = SledTx { tables, views };
                let mut body = body.borrow_mut();
                match (*body)(&mut tx) {
                    Ok(()) => Ok(()),
                    Err(TxAbort::Conflict) => Err(ConflictableTransactionError::Conflict),
                    Err(abort) => Err(ConflictableTransactionError::Abort(abort)),
                }
            });
        match res {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(abort)) => Err(abort),
            Err(TransactionError::Storage(err)) => {
                Err(TxAbort::State(storage("running a transaction", err)))
            }
        }
    }

    fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map_err(|err| storage("flushing", err))?;
        Ok(())
    }
}

struct SledTx<'a> {
    tables: &'a [&'static str],
    views: &'a [TransactionalTree],
}

impl SledTx<'_> {
    fn view(&self, table: &str) -> TxResult<&TransactionalTree> {
        self.tables
            .iter()
            .position(|name| *name == table)
            .and_then(|index| self.views.get(index))
            .ok_or_else(|| {
                TxAbort::State(StateError::InvalidInput {
                    what: "transaction".to_owned(),
                    reason: format!("table {table:?} is not part of the transaction"),
                })
            })
    }
}

fn tx_error(err: UnabortableTransactionError) -> TxAbort {
    match err {
        UnabortableTransactionError::Conflict => TxAbort::Conflict,
        UnabortableTransactionError::Storage(err) => {
            TxAbort::State(storage("running a transaction", err))
        }
    }
}

impl Tx for SledTx<'_> {
    fn get(&mut self, table: &str, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        let value = self.view(table)?.get(key).map_err(tx_error)?;
        Ok(value.map(|bytes| bytes.to_vec()))
    }

    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.view(table)?.insert(key, value).map_err(tx_error)?;
        Ok(())
    }

    fn remove(&mut self, table: &str, key: &[u8]) -> TxResult<()> {
        self.view(table)?.remove(key).map_err(tx_error)?;
        Ok(())
    }
}
