//! The writer: Arrow `RecordBatch`es to Parquet files in a dataset, through a staging folder,
//! fsync and an atomic rename; file and row-group rolling.
//!
//! Main types: [`DatasetLayout`] (the fixed folder layout, pure paths), [`DatasetId`] and
//! [`BatchId`] (validated path components), [`PartWriter`] (staged Parquet parts of one batch,
//! rolled by rows, bytes and schema changes; columns encoded on several threads when asked,
//! `encode`), [`ErrorWriter`] (rejected rows as JSON lines),
//! [`StagedPart`] (a sealed, durable staged file), and the functions [`publish_batch`],
//! [`publish_errors`], [`remove_batch`] and [`clean_staging`].
//!
//! Invariants: a file is visible in the dataset folder only once it is complete and durable
//! (written to `{data_dir}/_staging/...`, fsynced, sealed); a batch becomes visible as a whole,
//! by one rename of its staging folder, so a reader never sees part of it; publishing is
//! idempotent so a redo after a crash never duplicates data; removing a batch is one atomic
//! rename. One staged-file lifecycle (`staged`) serves Parquet parts and rejected-row files.
//! A dataset can also be a Delta Lake table ([`delta`]): the same parts, published by a commit to
//! its `_delta_log/` after the rename, with [`delta::commit_batch`] (the only module that names
//! `deltalake`).
//! A dataset root may also be an object store ([`object`]): batches are written and published in
//! a local spool as above, then mirrored to the store (see the module for what a reader sees).
//! Knows Arrow, Parquet, Delta, object stores and the filesystem; knows neither HTTP nor sled nor the engine's
//! stages.

pub mod cpu;
pub mod delta;
mod encode;
mod error;
mod layout;
pub mod object;
mod options;
mod part;
mod publish;
mod reject;
mod staged;

pub use error::{ErrorCause, WriteError};
pub use layout::{BatchId, DatasetId, DatasetLayout, MAX_ID_LEN};
pub use options::{
    Compression, ErrorWriterOptions, KV_BATCH_ID, KV_DATASET_ID, KV_FLOW_ID, KV_RUN_ID, Statistics,
    WriterOptions,
};
pub use part::{PartKind, PartWriter, StagedPart, part_schema, rewrite_part};
pub use publish::{
    CleanReport, PublishOutcome, PublishedBatch, RemovedBatch, clean_staging, publish_batch,
    publish_errors, remove_batch, remove_batch_errors,
};
pub use reject::ErrorWriter;

/// Aborts the process here when the environment variable `TRIBUTARY_TEST_CRASH_AT` names this
/// point: the crash tests' `kill -9` at an exact moment of a publish (`delta-renamed`,
/// `delta-committed`, `object-staged`).
pub fn crash_point(name: &str) {
    if std::env::var_os("TRIBUTARY_TEST_CRASH_AT").is_some_and(|point| point == name) {
        tracing::warn!(
            point = name,
            "TRIBUTARY_TEST_CRASH_AT: aborting the process"
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests;
