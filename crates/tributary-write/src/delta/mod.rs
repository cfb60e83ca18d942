//! Delta Lake tables: one window's batch committed to `{data_dir}/datasets/{id}/_delta_log/` with
//! the `deltalake` crate (delta-rs) — the publish step of a dataset whose target connection says
//! `data.format: "delta"`.
//!
//! Main items: [`commit_batch`] (one Delta commit per window: `add` actions for the new batch's
//! part files, `remove` actions for every live file of the batches it replaces, a `metaData`
//! action when the batch's schema grows the table's, and an app-transaction `txn`), [`DeltaFile`],
//! [`DeltaCommit`], [`DeltaOutcome`], [`mark_delta_table`] / [`is_delta_table`] and the schema
//! mapping in `schema`.
//!
//! Invariants:
//! - The files of a Delta table are the dataset's ordinary Parquet parts at
//!   `batch={batchId}/part-NNNNN.parquet` (paths in the log are relative to the table root), each
//!   with `partitionValues: {"batch": batchId}`; the partition column `batch` is the table's last
//!   column. A part file in the table folder is not part of the table until the commit that adds
//!   it has landed; the caller renames the parts in first.
//! - A commit is all or nothing (delta-rs writes `_delta_log/NNNN.json` with a put-if-absent), and
//!   it is idempotent: it carries `txn {appId, version}`, and a commit whose app already records
//!   `version` or later is not made again ([`DeltaOutcome::AlreadyCommitted`]) — after checking
//!   that the batch's files are indeed in the table, so a version that went backwards (a clock
//!   set back) is an error, never a lost batch.
//! - `remove` leaves the files on disk: readers of older versions (time travel, a reader that
//!   loaded the previous snapshot) still find them. Deleting them is a `VACUUM`'s business, which
//!   tributary does not run.
//! - A folder `_delta_log/` in the dataset folder marks the dataset as a Delta table, also before
//!   its first commit ([`mark_delta_table`]), so recovery knows how to publish.
//!
//! A table in an object store ([`crate::object`]) is committed the same way: the part files are
//! read for their statistics in the local spool, and delta-rs writes the log through the root's
//! store (its default log store: the commit is a put-if-absent, which S3, Azure and GCS do
//! natively), registered for the store's URL scheme by [`register_object_scheme`].
//!
//! The deltalake API is async; this crate is not. Each call runs on a current-thread Tokio
//! runtime of its own (callers are on blocking threads), which also gives delta-rs's local file
//! store the blocking pool it uses.

mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, Add, MetadataExt as _, StructType, Transaction};
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaResult, DeltaTableBuilder, DeltaTableError};
use tracing::debug;
use url::Url;

pub use schema::{BATCH_COLUMN, delta_type, merged_schema, table_schema};

use crate::object::ObjectRoot;
use crate::publish::{create_dir_durable, exists};
use crate::{BatchId, DatasetId, DatasetLayout, WriteError};

/// One part file of the batch being committed, already in the batch's folder of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaFile {
    /// The file name in `batch={batchId}/`, e.g. `part-00000.parquet`.
    pub name: String,
    /// Rows in the file (the `numRecords` statistic of its `add` action).
    pub rows: u64,
}

/// What one window's commit consists of.
#[derive(Debug, Clone, Copy)]
pub struct DeltaCommit<'a> {
    /// The batch whose files are added.
    pub batch: &'a BatchId,
    pub files: &'a [DeltaFile],
    /// Batches whose live files the commit removes (the window's earlier batches).
    pub replaces: &'a [BatchId],
    /// The app-transaction id (one per window: commits of one app are serial).
    pub app_id: &'a str,
    /// Larger than every earlier version committed under `app_id`, and the same when a commit is
    /// redone.
    pub version: i64,
}

/// What [`commit_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The commit landed as table version `table_version`.
    Committed {
        table_version: u64,
        /// The commit carried a `metaData` action: the table schema grew (or was created).
        schema_changed: bool,
    },
    /// The table already records the commit (a redo after a crash); nothing was written.
    AlreadyCommitted { recorded_version: i64 },
    /// Nothing to add or remove and no table yet: no commit was made.
    Empty,
}

/// Marks `dataset` as a Delta table before its first commit: creates `_delta_log/` durably.
pub fn mark_delta_table(layout: &DatasetLayout, dataset: &DatasetId) -> Result<(), WriteError> {
    create_dir_durable(&layout.delta_log_dir(dataset))
}

/// Whether `dataset` is a Delta table (its folder holds `_delta_log/`).
pub fn is_delta_table(layout: &DatasetLayout, dataset: &DatasetId) -> Result<bool, WriteError> {
    exists(&layout.delta_log_dir(dataset))
}

/// Commits one window's batch to the dataset's Delta table, creating the table on the first
/// commit; see the module header. The files must already be in `batch={batchId}/` of `layout`;
/// with `remote`, the table is the dataset's folder in that object store, where the files were
/// uploaded to the same keys.
pub fn commit_batch(
    layout: &DatasetLayout,
    remote: Option<&ObjectRoot>,
    dataset: &DatasetId,
    commit: &DeltaCommit<'_>,
) -> Result<DeltaOutcome, WriteError> {
    let table_dir = layout.dataset_dir(dataset);
    let batch_dir = layout.batch_dir(dataset, commit.batch);
    let mut adds = Vec::with_capacity(commit.files.len());
    let mut batch_schema: Option<StructType> = None;
    for file in commit.files {
        let path = batch_dir.join(&file.name);
        let metadata = std::fs::metadata(&path)
            .map_err(|err| WriteError::io("reading metadata of", &path, err))?;
        let modification_time = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let file_schema = table_schema(crate::part_schema(&path)?.as_ref())
            .map_err(|message| schema_error(&path, message))?;
        batch_schema = Some(match batch_schema {
            None => file_schema,
            Some(so_far) => merged_schema(&so_far, &file_schema)
                .map_err(|message| schema_error(&path, message))?
                .unwrap_or(so_far),
        });
        adds.push(Add {
            path: format!("{}={}/{}", BATCH_COLUMN, commit.batch.as_str(), file.name),
            partition_values: HashMap::from([(
                BATCH_COLUMN.to_owned(),
                Some(commit.batch.as_str().to_owned()),
            )]),
            size: i64::try_from(metadata.len()).unwrap_or(i64::MAX),
            modification_time,
            data_change: true,
            stats: Some(serde_json::json!({ "numRecords": file.rows }).to_string()),
            ..Add::default()
        });
    }
    if let Some(root) = remote {
        let url = root.dataset_url(dataset);
        // Errors name the table by its URL (no credentials are ever in it).
        let shown = PathBuf::from(crate::object::redacted(url.as_str()));
        return root.block_on(commit_async(
            &shown,
            Some((root.store(), url)),
            &|message| root.scrubbed(message),
            commit,
            adds,
            batch_schema,
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| WriteError::io("starting the Delta log runtime for", &table_dir, err))?;
    runtime.block_on(commit_async(
        &table_dir,
        None,
        &str::to_owned,
        commit,
        adds,
        batch_schema,
    ))
}

/// Lets delta-rs open tables under `scheme://` through a store given to it (the root's), with its
/// default log store; idempotent.
pub(crate) fn register_object_scheme(scheme: &str) {
    let Ok(url) = Url::parse(&format!("{scheme}://")) else {
        return;
    };
    logstore_factories()
        .entry(url)
        .or_insert_with(|| std::sync::Arc::new(GivenStoreLogStores));
}

/// The log store of a table whose object store the caller built: delta-rs's default one.
struct GivenStoreLogStores;

impl LogStoreFactory for GivenStoreLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<std::sync::Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// `table_dir` labels messages; `remote` is the store and URL of a table in an object store;
/// `shown` makes delta-rs's messages fit to show (the store's secrets cut out).
async fn commit_async(
    table_dir: &Path,
    remote: Option<(ObjectStoreRef, Url)>,
    shown: &dyn Fn(&str) -> String,
    commit: &DeltaCommit<'_>,
    adds: Vec<Add>,
    batch_schema: Option<StructType>,
) -> Result<DeltaOutcome, WriteError> {
    let delta_err = |op: &'static str| {
        move |source: DeltaTableError| WriteError::Delta {
            op,
            table: table_dir.to_owned(),
            message: shown(&source.to_string()),
            version_conflict: matches!(source, DeltaTableError::VersionAlreadyExists(_)),
        }
    };
    let url = match &remote {
        Some((_, url)) => url.clone(),
        None => {
            let table_text = table_dir.to_str().ok_or_else(|| {
                schema_error(
                    table_dir,
                    "the table path is not UTF-8, which a Delta table URL needs".to_owned(),
                )
            })?;
            deltalake::ensure_table_uri(table_text).map_err(delta_err("locating"))?
        }
    };
    let properties = CommitProperties::default()
        .with_application_transaction(Transaction::new(commit.app_id, commit.version))
        .with_metadata([(
            "tributary.batchId".to_owned(),
            serde_json::Value::String(commit.batch.as_str().to_owned()),
        )]);
    let mut table = DeltaTableBuilder::from_url(url.clone())
        .map(|builder| match remote {
            Some((store, url)) => builder.with_storage_backend(store, url),
            None => builder,
        })
        .and_then(DeltaTableBuilder::build)
        .map_err(delta_err("opening"))?;
    let has_log = table
        .log_store()
        .is_delta_table_location()
        .await
        .map_err(delta_err("reading the log of"))?;
    if !has_log {
        let Some(batch_schema) = batch_schema else {
            // No files and no table: an empty first batch replaces nothing.
            return Ok(DeltaOutcome::Empty);
        };
        let created = CreateBuilder::new()
            .with_log_store(table.log_store())
            .with_columns(batch_schema.fields().cloned())
            .with_partition_columns([BATCH_COLUMN])
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_actions(adds.into_iter().map(Action::Add))
            .with_commit_properties(properties)
            .await
            .map_err(delta_err("creating"))?;
        debug!(table = %table_dir.display(), batch = %commit.batch, "created the Delta table");
        return Ok(DeltaOutcome::Committed {
            table_version: created.version().unwrap_or(0),
            schema_changed: true,
        });
    }
    table.load().await.map_err(delta_err("loading"))?;
    let state = table
        .snapshot()
        .map_err(delta_err("reading the snapshot of"))?;
    let log_store = table.log_store();
    let recorded = state
        .transaction_version(log_store.as_ref(), commit.app_id)
        .await
        .map_err(delta_err("reading the app transactions of"))?;
    let live: Vec<_> = state.log_data().iter().collect();
    if let Some(recorded) = recorded.filter(|recorded| *recorded >= commit.version) {
        let first_add = adds.first().map(|add| add.path.as_str());
        let is_recorded = first_add.is_none_or(|path| live.iter().any(|file| file.path() == path));
        if !is_recorded {
            return Err(WriteError::DeltaVersionAhead {
                table: table_dir.to_owned(),
                app_id: commit.app_id.to_owned(),
                recorded,
                version: commit.version,
                batch: commit.batch.to_string(),
            });
        }
        debug!(table = %table_dir.display(), batch = %commit.batch, recorded, "the Delta commit had landed already");
        return Ok(DeltaOutcome::AlreadyCommitted {
            recorded_version: recorded,
        });
    }
    let mut actions: Vec<Action> = Vec::with_capacity(adds.len() + 1);
    let current_schema = state.schema();
    let grown = match &batch_schema {
        None => None,
        Some(batch_schema) => merged_schema(&current_schema, batch_schema)
            .map_err(|message| schema_error(table_dir, message))?,
    };
    let schema_changed = grown.is_some();
    if let Some(grown) = grown {
        let metadata = state
            .metadata()
            .clone()
            .with_schema(&grown)
            .map_err(|source| delta_err("growing the schema of")(source.into()))?;
        actions.push(Action::Metadata(metadata));
    }
    let replaced_prefixes: Vec<String> = commit
        .replaces
        .iter()
        .map(|batch| format!("{}={}/", BATCH_COLUMN, batch.as_str()))
        .collect();
    for file in &live {
        let path = file.path();
        if replaced_prefixes
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
        {
            actions.push(Action::Remove(file.remove_action(true)));
        }
    }
    actions.extend(adds.into_iter().map(Action::Add));
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: Some(vec![BATCH_COLUMN.to_owned()]),
        predicate: None,
    };
    let finalized = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(state as &dyn TableReference), log_store, operation)
        .await
        .map_err(delta_err("committing to"))?;
    debug!(table = %table_dir.display(), batch = %commit.batch, version = finalized.version(), "committed to the Delta table");
    Ok(DeltaOutcome::Committed {
        table_version: finalized.version(),
        schema_changed,
    })
}

fn schema_error(path: &Path, message: String) -> WriteError {
    WriteError::DeltaSchema {
        path: PathBuf::from(path),
        message,
    }
}

#[cfg(test)]
mod tests;
