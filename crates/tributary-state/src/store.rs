//! The storage seam: named key/value tables over a [`Backend`] (sled or Postgres), typed reads
//! and writes through the codec, ordered scans, and multi-table transactions.
//!
//! Invariants: keys and values are opaque bytes to a backend; both order keys bytewise (sled's
//! order, Postgres' `bytea` order), so the big-endian keys of `codec` scan in logical order on
//! either. A transaction body only reads, decodes, encodes and writes through its [`Tx`]; it
//! may be run more than once (the backend retries conflicts), so it has no other effects.
//! Every file operation and every encryption happens before a transaction starts, and the
//! flush after it ends.

use std::ops::ControlFlow;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entities::EntityKind;
use crate::{StateError, codec};

/// Rows fetched per round of a paged scan.
const SCAN_PAGE: usize = 256;

/// A key range `[lower, upper)`; `upper: None` is unbounded.
#[derive(Debug, Clone)]
pub(crate) struct KeyRange {
    pub(crate) lower: Vec<u8>,
    pub(crate) upper: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub(crate) fn prefix(prefix: &[u8]) -> KeyRange {
        KeyRange {
            lower: prefix.to_vec(),
            upper: prefix_upper_bound(prefix),
        }
    }
}

/// The smallest key above every key that starts with `prefix` (`None`: no such key).
fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < 0xff {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// One row of a scan.
pub(crate) type Row = (Vec<u8>, Vec<u8>);

/// What a storage engine gives the typed API. Implementations never panic on input, and name
/// no engine type outside their module.
pub(crate) trait Backend: Send + Sync {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    /// Whether the key existed.
    fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StateError>;
    /// At most `limit` rows of `range`, ascending or (`reverse`) descending by key.
    fn scan(
        &self,
        table: &str,
        range: &KeyRange,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Row>, StateError>;
    /// Sets `key` to `new` (`None`: removes it) only if its value is `old` (`None`: absent);
    /// whether it did.
    fn compare_and_swap(
        &self,
        table: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError>;
    /// Runs `body` atomically over `tables` (and only those), with read-your-writes and
    /// isolation from concurrent transactions; re-runs it on a conflict, a bounded number of
    /// times. An abort of the body rolls everything back.
    fn transaction(
        &self,
        tables: &[&'static str],
        body: &mut dyn FnMut(&mut dyn Tx) -> TxResult<()>,
    ) -> Result<(), TxAbort>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StateError>;
}

/// The view of a transaction body.
pub(crate) trait Tx {
    fn get(&mut self, table: &str, key: &[u8]) -> TxResult<Option<Vec<u8>>>;
    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> TxResult<()>;
    fn remove(&mut self, table: &str, key: &[u8]) -> TxResult<()>;
}

/// Why a transaction body gave up.
#[derive(Debug)]
pub(crate) enum TxAbort {
    State(StateError),
    /// A record read before the transaction changed meanwhile: read again and retry.
    Retry,
    /// The backend found a conflicting concurrent transaction; it re-runs the body.
    Conflict,
}

pub(crate) type TxResult<T> = Result<T, TxAbort>;

/// A named table of one backend.
#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    backend: Arc<dyn Backend>,
}

/// Every collection of the store.
pub(crate) struct Trees {
    backend: Arc<dyn Backend>,
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
    /// flow id -> lease (which node runs the flow).
    pub(crate) leases: Table,
    /// node id -> heartbeat.
    pub(crate) nodes: Table,
}

/// The name of every table, the meta table first: what a backend creates and a copy copies.
pub(crate) fn table_names() -> Vec<&'static str> {
    let mut names = vec!["meta"];
    names.extend(EntityKind::ALL.iter().map(|kind| kind.tree_name()));
    names.extend([
        "runs",
        "runs_by_flow",
        "runs_by_time",
        "batches",
        "batches_by_dataset",
        "checkpoints",
        "parts",
        "open_windows",
        "schedules",
        "oauth_tokens",
        "bundle_sources",
        "dataset_schemas",
        "leases",
        "nodes",
    ]);
    names
}

impl Trees {
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Trees {
        let open = |name: &'static str| Table {
            name,
            backend: Arc::clone(&backend),
        };
        Trees {
            meta: open("meta"),
            entities: EntityKind::ALL
                .iter()
                .map(|kind| open(kind.tree_name()))
                .collect(),
            runs: open("runs"),
            runs_by_flow: open("runs_by_flow"),
            runs_by_time: open("runs_by_time"),
            batches: open("batches"),
            batches_by_dataset: open("batches_by_dataset"),
            checkpoints: open("checkpoints"),
            parts: open("parts"),
            open_windows: open("open_windows"),
            schedules: open("schedules"),
            oauth_tokens: open("oauth_tokens"),
            bundle_sources: open("bundle_sources"),
            dataset_schemas: open("dataset_schemas"),
            leases: open("leases"),
            nodes: open("nodes"),
            backend,
        }
    }

    pub(crate) fn entity(&self, kind: EntityKind) -> &Table {
        &self.entities[kind.index()]
    }

    /// The table named `name`.
    pub(crate) fn table(&self, name: &str) -> Result<&Table, StateError> {
        let fixed = [
            &self.meta,
            &self.runs,
            &self.runs_by_flow,
            &self.runs_by_time,
            &self.batches,
            &self.batches_by_dataset,
            &self.checkpoints,
            &self.parts,
            &self.open_windows,
            &self.schedules,
            &self.oauth_tokens,
            &self.bundle_sources,
            &self.dataset_schemas,
            &self.leases,
            &self.nodes,
        ];
        fixed
            .into_iter()
            .chain(self.entities.iter())
            .find(|table| table.name == name)
            .ok_or_else(|| StateError::InvalidInput {
                what: "table".to_owned(),
                reason: format!("{name:?} is not a table of the state store"),
            })
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Runs `body` as one transaction over `tables`. `Ok(None)` means the body asked for a
    /// retry from the reads before it ([`retry`]).
    pub(crate) fn transact<T>(
        &self,
        action: &'static str,
        tables: &[&Table],
        mut body: impl FnMut(&mut dyn Tx) -> TxResult<T>,
    ) -> Result<Option<T>, StateError> {
        let names: Vec<&'static str> = tables.iter().map(|table| table.name).collect();
        let mut out = None;
        let res = self.backend.transaction(&names, &mut |tx| {
            out = Some(body(tx)?);
            Ok(())
        });
        match res {
            Ok(()) => Ok(out),
            Err(TxAbort::Retry) => Ok(None),
            Err(TxAbort::State(err)) => Err(err),
            Err(TxAbort::Conflict) => Err(StateError::Storage {
                action,
                retryable: true,
                source: "concurrent transactions kept conflicting".into(),
            }),
        }
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
        self.backend.get(self.name, key)
    }

    pub(crate) fn put<T: Serialize>(
        &self,
        key: &[u8],
        what: &'static str,
        value: &T,
    ) -> Result<(), StateError> {
        let bytes = codec::encode(what, value)?;
        self.put_raw(key, &bytes)
    }

    pub(crate) fn put_raw(&self, key: &[u8], bytes: &[u8]) -> Result<(), StateError> {
        self.backend.put(self.name, key, bytes)
    }

    pub(crate) fn remove(&self, key: &[u8]) -> Result<bool, StateError> {
        self.backend.remove(self.name, key)
    }

    pub(crate) fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        self.backend.compare_and_swap(self.name, key, old, new)
    }

    /// Visits the rows of `range` in key order (descending with `reverse`) page by page until
    /// `visit` breaks.
    pub(crate) fn scan(
        &self,
        range: KeyRange,
        reverse: bool,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, StateError>,
    ) -> Result<(), StateError> {
        let mut range = range;
        loop {
            let rows = self.backend.scan(self.name, &range, reverse, SCAN_PAGE)?;
            let full = rows.len() == SCAN_PAGE;
            for (key, value) in &rows {
                if visit(key, value)?.is_break() {
                    return Ok(());
                }
            }
            let Some((last, _)) = rows.into_iter().last() else {
                return Ok(());
            };
            if !full {
                return Ok(());
            }
            if reverse {
                range.upper = Some(last);
            } else {
                // The next key after `last` in byte order.
                let mut next = last;
                next.push(0);
                range.lower = next;
            }
        }
    }

    /// Every key under `prefix`, in key order.
    pub(crate) fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
        let mut keys = Vec::new();
        self.scan(KeyRange::prefix(prefix), false, |key, _| {
            keys.push(key.to_vec());
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(keys)
    }

    /// Every decoded value under `prefix`, in key order.
    pub(crate) fn values_with_prefix<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StateError> {
        let mut values = Vec::new();
        self.scan(KeyRange::prefix(prefix), false, |key, bytes| {
            values.push((key.to_vec(), codec::decode(self.name, key, bytes)?));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(values)
    }
}

/// Reads and decodes inside a transaction.
pub(crate) fn tx_get<T: DeserializeOwned>(
    tx: &mut dyn Tx,
    table: &Table,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tx.get(table.name, key)? {
        None => Ok(None),
        Some(bytes) => codec::decode(table.name, key, &bytes)
            .map(Some)
            .map_err(abort),
    }
}

/// Encodes and writes inside a transaction.
pub(crate) fn tx_put<T: Serialize>(
    tx: &mut dyn Tx,
    table: &Table,
    key: &[u8],
    what: &'static str,
    value: &T,
) -> TxResult<()> {
    let bytes = codec::encode(what, value).map_err(abort)?;
    tx.insert(table.name, key, &bytes)
}

/// Turns a state error into a transaction abort.
pub(crate) fn abort(err: StateError) -> TxAbort {
    TxAbort::State(err)
}

pub(crate) fn retry() -> TxAbort {
    TxAbort::Retry
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_upper_bounds_skip_trailing_ff() {
        assert_eq!(prefix_upper_bound(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_upper_bound(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_upper_bound(&[0xff, 0xff]), None);
        assert_eq!(prefix_upper_bound(b""), None);
    }
}
