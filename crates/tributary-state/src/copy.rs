//! Copying a whole state from one backend to another (`tributary state migrate`).
//!
//! Invariants: every table is copied as stored bytes, so sealed secrets and positions stay
//! sealed and open only with the source's key, which the target is opened with (and which the
//! target's key check then holds). The target must be empty (no row outside `meta`): a copy
//! never merges two states. All rows land in one target transaction, so an interrupted copy
//! leaves the target as empty as it was and can simply be run again.

use std::ops::ControlFlow;

use crate::store::{KeyRange, Row, table_names};
use crate::{Db, StateError, StateLocation, StateOptions};

/// What a copy did: rows per table, in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(String, u64)>,
    /// Where the source's secret key came from (never the key); the target needs the same key
    /// configured to be opened later.
    pub key_origin: String,
}

/// Copies the state at `from` into the empty state at `to` (created if needed). `options` open
/// the source; the target is opened with the source's secret key.
pub fn copy_state(
    from: &StateLocation,
    to: &StateLocation,
    options: StateOptions,
) -> Result<CopyReport, StateError> {
    if let StateLocation::Sled(dir) = from
        && !dir.join(crate::DB_FOLDER).is_dir()
    {
        // Opening would create an empty state (and a key) where the user made a typo.
        return Err(StateError::InvalidInput {
            what: format!("copy source {from}"),
            reason: format!("it holds no sled database (no {} folder)", crate::DB_FOLDER),
        });
    }
    let source = Db::open_at(from, options.clone())?;
    let key_origin = source.key_origin().to_owned();
    let target_options = StateOptions {
        secret_key: Some(source.secret_key().clone()),
        cache_capacity_bytes: match to {
            StateLocation::Sled(_) => options.cache_capacity_bytes,
            StateLocation::Postgres(_) => None,
        },
    };
    let target = Db::open_at(to, target_options)?;
    let tables = source.copy_into(&target)?;
    Ok(CopyReport { tables, key_origin })
}

impl Db {
    /// Copies every table of this store into `target`, which must hold no row outside `meta`.
    fn copy_into(&self, target: &Db) -> Result<Vec<(String, u64)>, StateError> {
        let names = table_names();
        for name in &names {
            if *name == "meta" {
                continue;
            }
            let rows = target
                .trees()
                .backend()
                .scan(name, &KeyRange::prefix(b""), false, 1)?;
            if !rows.is_empty() {
                return Err(StateError::InvalidInput {
                    what: format!("copy target {}", target.location()),
                    reason: format!(
                        "it is not empty (table {name} has rows); a copy never merges two states, \
                         so copy into a new database or schema"
                    ),
                });
            }
        }
        let mut copied: Vec<(&'static str, Vec<Row>)> = Vec::with_capacity(names.len());
        for name in &names {
            let table = self.trees().table(name)?;
            let mut rows = Vec::new();
            table.scan(KeyRange::prefix(b""), false, |key, value| {
                rows.push((key.to_vec(), value.to_vec()));
                Ok(ControlFlow::Continue(()))
            })?;
            copied.push((name, rows));
        }
        let target_tables: Vec<_> = names
            .iter()
            .map(|name| target.trees().table(name))
            .collect::<Result<_, _>>()?;
        let table_refs: Vec<&crate::store::Table> = target_tables.to_vec();
        target
            .trees()
            .transact("copying a state", &table_refs, |tx| {
                for (name, rows) in &copied {
                    for (key, value) in rows {
                        tx.insert(name, key, value)?;
                    }
                }
                Ok(())
            })?;
        target.flush()?;
        Ok(copied
            .into_iter()
            .map(|(name, rows)| (name.to_owned(), rows.len() as u64))
            .collect())
    }
}
