//! Versioned migrations of the Postgres schema, run at open.
//!
//! Invariants: `schema_migrations` holds one row per applied migration; migrations are applied
//! in version order, each with its row, in one transaction under a transaction-scoped advisory
//! lock (two processes opening a fresh database at once do not both create it; the lock ends
//! with the transaction). A database whose newest version is above [`LATEST`] was written by a
//! newer build and is refused before anything is read or written.

use tokio_postgres::Client;

use super::pg_error;
use crate::StateError;

/// The migrations this build knows: version and SQL, in order.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    // Every table of the store: `tbl` names it, `k` and `v` are the codec's bytes. `bytea`
    // compares bytewise, which is the order the keys are built for.
    "CREATE TABLE kv (
        tbl text NOT NULL,
        k bytea NOT NULL,
        v bytea NOT NULL,
        PRIMARY KEY (tbl, k)
    )",
)];

/// The schema version this build writes and the highest it reads.
pub(crate) const LATEST: i32 = 1;

/// Brings the schema of the connection's `search_path` up to [`LATEST`].
pub(crate) async fn migrate(client: &Client, masked_url: String) -> Result<(), StateError> {
    let err = |action| move |err| pg_error(action, err);
    client
        .batch_execute(
            "BEGIN;
             SELECT pg_advisory_xact_lock(7243016119385821044);
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .map_err(err("creating the migrations table"))?;
    let res = apply(client, masked_url).await;
    let end = if res.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client.batch_execute(end).await;
    res?;
    ended.map_err(err("committing the migrations"))
}

async fn apply(client: &Client, masked_url: String) -> Result<(), StateError> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(|err| pg_error("reading the schema version", err))?;
    let current: i32 = row
        .try_get(0)
        .map_err(|err| pg_error("reading the schema version", err))?;
    if current > LATEST {
        return Err(StateError::NewerSchema {
            state: masked_url,
            version: i64::from(current),
            supported: i64::from(LATEST),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        client
            .batch_execute(sql)
            .await
            .map_err(|err| pg_error("applying a schema migration", err))?;
        client
            .execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(|err| pg_error("recording a schema migration", err))?;
        tracing::info!(version, "applied a Postgres state schema migration");
    }
    Ok(())
}
