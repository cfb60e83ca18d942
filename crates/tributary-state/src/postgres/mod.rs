//! The Postgres backend: every table in one key/value table `kv (tbl, k, v)`, transactions as
//! SERIALIZABLE Postgres transactions retried on serialization failures.
//!
//! Invariants:
//! - The API is synchronous and callable from any thread, inside a tokio runtime or not: the
//!   tokio-postgres clients and their connection tasks live on a private current-thread runtime
//!   on a dedicated thread; a call spawns its future there and waits on a std channel (never
//!   `block_on`, which panics inside a runtime). Dropping the backend stops that thread, and the
//!   runtime is dropped on it, not on the caller's.
//! - A transaction holds one pooled connection from `BEGIN` to `COMMIT`; a body that fails with a
//!   serialization failure or a deadlock is rolled back and run again, at most
//!   [`MAX_TX_ATTEMPTS`] times. Nothing is held between calls: no lock outlives a transaction,
//!   so several processes may share one database.
//! - The schema is created and upgraded by versioned migrations at open (`schema`); the
//!   connection's `search_path` decides the schema, so one database can hold several states.
//! - Messages name the database by its masked URL only.

mod schema;
mod url;

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

pub use url::PostgresUrl;

use crate::StateError;
use crate::store::{Backend, KeyRange, Row, Tx, TxAbort, TxResult};

/// Connections one backend opens at most.
const MAX_CONNECTIONS: usize = 8;
/// Runs of a transaction body before a conflict is reported as an error.
const MAX_TX_ATTEMPTS: u32 = 30;
/// How long a call waits for a free connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct PgBackend {
    url: PostgresUrl,
    runtime: Runtime,
    pool: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Arc<PgConn>>,
    open: usize,
}

/// One connection and its prepared statements.
struct PgConn {
    client: Client,
    get: Statement,
    put: Statement,
    remove: Statement,
    scan_asc: Statement,
    scan_asc_bounded: Statement,
    scan_desc: Statement,
    scan_desc_bounded: Statement,
    insert_new: Statement,
    update_if: Statement,
    remove_if: Statement,
}

/// The private runtime: a handle to spawn on, and the sender whose drop stops its thread.
struct Runtime {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Runtime {
    fn start() -> Result<Runtime, StateError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|err| storage_err("starting the Postgres client runtime", false, err))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tributary-state-pg".to_owned())
            .spawn(move || {
                // Drives the connection tasks until the backend is dropped (the sender with it).
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|err| storage_err("starting the Postgres client thread", false, err))?;
        Ok(Runtime {
            handle,
            _stop: stop,
        })
    }

    /// Runs `fut` on the private runtime and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StateError> {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = done.send(fut.await);
        });
        wait.recv().map_err(|_| StateError::Storage {
            action: "talking to Postgres",
            retryable: false,
            source: "the Postgres client runtime has stopped".into(),
        })
    }
}

fn storage_err(
    action: &'static str,
    retryable: bool,
    err: impl std::error::Error + Send + Sync + 'static,
) -> StateError {
    StateError::Storage {
        action,
        retryable,
        source: Box::new(err),
    }
}

/// Whether a Postgres error asks for the transaction to be run again.
fn is_conflict(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A Postgres error as a state error; lost connections and overload are worth a retry.
fn pg_error(action: &'static str, err: tokio_postgres::Error) -> StateError {
    let retryable = err.is_closed()
        || is_conflict(&err)
        || err.code().is_some_and(|code| {
            code.code().starts_with("08")
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        })
        || err.code().is_none() && err.as_db_error().is_none();
    storage_err(action, retryable, err)
}

impl PgBackend {
    /// Connects, runs the migrations, and keeps the connection for the pool.
    pub(crate) fn open(url: &PostgresUrl) -> Result<PgBackend, StateError> {
        let runtime = Runtime::start()?;
        let backend = PgBackend {
            url: url.clone(),
            runtime,
            pool: Mutex::new(PoolState::default()),
            returned: Condvar::new(),
        };
        let config = url.config().clone();
        let masked = url.masked();
        let client = backend.runtime.run(async move {
            let client = connect(&config).await?;
            schema::migrate(&client, masked).await?;
            Ok::<_, StateError>(client)
        })??;
        let conn = backend.runtime.run(prepare(client))??;
        let mut pool = backend.lock_pool();
        pool.open = 1;
        pool.idle.push(Arc::new(conn));
        drop(pool);
        Ok(backend)
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding the lock leaves the pool's counters intact.
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection for one call or one transaction; it goes back to the pool when dropped.
    fn checkout(&self) -> Result<Checkout<'_>, StateError> {
        let deadline = std::time::Instant::now() + CHECKOUT_TIMEOUT;
        let mut pool = self.lock_pool();
        loop {
            while let Some(conn) = pool.idle.pop() {
                if conn.client.is_closed() {
                    pool.open -= 1;
                    continue;
                }
                return Ok(Checkout {
                    backend: self,
                    conn: Some(conn),
                });
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                let config = self.url.config().clone();
                let opened = self
                    .runtime
                    .run(async move { prepare(connect(&config).await?).await })
                    .and_then(|res| res);
                return match opened {
                    Ok(conn) => Ok(Checkout {
                        backend: self,
                        conn: Some(Arc::new(conn)),
                    }),
                    Err(err) => {
                        self.lock_pool().open -= 1;
                        self.returned.notify_one();
                        Err(err)
                    }
                };
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(StateError::Storage {
                    action: "waiting for a Postgres connection",
                    retryable: true,
                    source: format!(
                        "all {MAX_CONNECTIONS} connections stayed busy for {}s",
                        CHECKOUT_TIMEOUT.as_secs()
                    )
                    .into(),
                });
            }
            pool = self
                .returned
                .wait_timeout(pool, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Runs one statement-level call on a pooled connection.
    fn call<T: Send + 'static, F>(
        &self,
        action: &'static str,
        query: impl FnOnce(Arc<PgConn>) -> F,
    ) -> Result<T, StateError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let conn = self.checkout()?;
        let fut = query(conn.arc());
        self.runtime.run(fut)?.map_err(|err| pg_error(action, err))
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, StateError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|err| pg_error("connecting to Postgres", err))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "a Postgres state connection ended with an error");
        }
    });
    Ok(client)
}

async fn prepare(client: Client) -> Result<PgConn, StateError> {
    let prep = async |sql: &str| {
        client
            .prepare(sql)
            .await
            .map_err(|err| pg_error("preparing statements", err))
    };
    let scan = "SELECT k, v FROM kv WHERE tbl = $1 AND k >= $2";
    Ok(PgConn {
        get: prep("SELECT v FROM kv WHERE tbl = $1 AND k = $2").await?,
        put: prep(
            "INSERT INTO kv (tbl, k, v) VALUES ($1, $2, $3) \
             ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v",
        )
        .await?,
        remove: prep("DELETE FROM kv WHERE tbl = $1 AND k = $2").await?,
        scan_asc: prep(&format!("{scan} ORDER BY k LIMIT $3")).await?,
        scan_asc_bounded: prep(&format!("{scan} AND k < $4 ORDER BY k LIMIT $3")).await?,
        scan_desc: prep(&format!("{scan} ORDER BY k DESC LIMIT $3")).await?,
        scan_desc_bounded: prep(&format!("{scan} AND k < $4 ORDER BY k DESC LIMIT $3")).await?,
        insert_new: prep("INSERT INTO kv (tbl, k, v) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .await?,
        update_if: prep("UPDATE kv SET v = $4 WHERE tbl = $1 AND k = $2 AND v = $3").await?,
        remove_if: prep("DELETE FROM kv WHERE tbl = $1 AND k = $2 AND v = $3").await?,
        client,
    })
}

/// A pooled connection, given back on drop (or forgotten when it broke).
struct Checkout<'a> {
    backend: &'a PgBackend,
    conn: Option<Arc<PgConn>>,
}

impl Checkout<'_> {
    fn arc(&self) -> Arc<PgConn> {
        // Set from construction until drop.
        self.conn.clone().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut pool = self.backend.lock_pool();
        if conn.client.is_closed() {
            pool.open -= 1;
        } else {
            pool.idle.push(conn);
        }
        drop(pool);
        self.backend.returned.notify_one();
    }
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

async fn scan_rows(
    conn: Arc<PgConn>,
    table: String,
    range: KeyRange,
    reverse: bool,
    limit: i64,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let rows = match (&range.upper, reverse) {
        (None, false) => {
            conn.client
                .query(&conn.scan_asc, &[&table, &range.lower, &limit])
                .await?
        }
        (None, true) => {
            conn.client
                .query(&conn.scan_desc, &[&table, &range.lower, &limit])
                .await?
        }
        (Some(upper), false) => {
            conn.client
                .query(
                    &conn.scan_asc_bounded,
                    &[&table, &range.lower, &limit, upper],
                )
                .await?
        }
        (Some(upper), true) => {
            conn.client
                .query(
                    &conn.scan_desc_bounded,
                    &[&table, &range.lower, &limit, upper],
                )
                .await?
        }
    };
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

impl Backend for PgBackend {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let (table, key) = (table.to_owned(), key.to_vec());
        self.call("reading", move |conn| async move {
            let row = conn.client.query_opt(&conn.get, &[&table, &key]).await?;
            row.map(|row| row.try_get(0)).transpose()
        })
    }

    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let (table, key, value) = (table.to_owned(), key.to_vec(), value.to_vec());
        self.call("writing", move |conn| async move {
            conn.client
                .execute(&conn.put, &[&table, &key, &value])
                .await
                .map(drop)
        })
    }

    fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StateError> {
        let (table, key) = (table.to_owned(), key.to_vec());
        self.call("removing", move |conn| async move {
            let n = conn.client.execute(&conn.remove, &[&table, &key]).await?;
            Ok(n > 0)
        })
    }

    fn scan(
        &self,
        table: &str,
        range: &KeyRange,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Row>, StateError> {
        let (table, range, limit) = (table.to_owned(), range.clone(), limit_param(limit));
        self.call("scanning", move |conn| {
            scan_rows(conn, table, range, reverse, limit)
        })
    }

    fn compare_and_swap(
        &self,
        table: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        let (table, key) = (table.to_owned(), key.to_vec());
        let (old, new) = (old.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        self.call("swapping a value", move |conn| async move {
            // Each form is one statement: Postgres re-checks the condition on the row it locks.
            let changed = match (old, new) {
                (None, Some(new)) => {
                    conn.client
                        .execute(&conn.insert_new, &[&table, &key, &new])
                        .await?
                }
                (Some(old), Some(new)) => {
                    conn.client
                        .execute(&conn.update_if, &[&table, &key, &old, &new])
                        .await?
                }
                (Some(old), None) => {
                    conn.client
                        .execute(&conn.remove_if, &[&table, &key, &old])
                        .await?
                }
                (None, None) => {
                    let row = conn.client.query_opt(&conn.get, &[&table, &key]).await?;
                    u64::from(row.is_none())
                }
            };
            Ok(changed > 0)
        })
    }

    fn transaction(
        &self,
        tables: &[&'static str],
        body: &mut dyn FnMut(&mut dyn Tx) -> TxResult<()>,
    ) -> Result<(), TxAbort> {
        let checkout = self.checkout().map_err(TxAbort::State)?;
        let conn = checkout.arc();
        let exec = |sql: &'static str| {
            let conn = Arc::clone(&conn);
            self.runtime
                .run(async move { conn.client.batch_execute(sql).await })
                .map_err(TxAbort::State)
        };
        for attempt in 0..MAX_TX_ATTEMPTS {
            if attempt > 0 {
                // Let the transaction we collided with finish; spread the retries.
                let jitter = rand::random::<u64>() % 5;
                std::thread::sleep(Duration::from_millis(
                    u64::from(attempt.min(10)) * 2 + jitter,
                ));
            }
            exec("BEGIN ISOLATION LEVEL SERIALIZABLE")?
                .map_err(|err| TxAbort::State(pg_error("beginning a transaction", err)))?;
            let mut tx = PgTx {
                backend: self,
                conn: Arc::clone(&conn),
                tables,
            };
            let outcome = body(&mut tx);
            let failure = match outcome {
                Ok(()) => match exec("COMMIT")? {
                    Ok(()) => return Ok(()),
                    Err(err) if is_conflict(&err) => TxAbort::Conflict,
                    Err(err) => return Err(TxAbort::State(pg_error("committing", err))),
                },
                Err(abort) => {
                    // After a failed statement only ROLLBACK is accepted; its own failure (a
                    // lost connection) leaves the connection closed, and the pool drops it.
                    let _ = exec("ROLLBACK")?;
                    abort
                }
            };
            if !matches!(failure, TxAbort::Conflict) {
                return Err(failure);
            }
        }
        Err(TxAbort::Conflict)
    }

    fn flush(&self) -> Result<(), StateError> {
        // A committed statement is durable (the server's fsync and synchronous_commit settings
        // decide how); there is no client-side buffer to flush.
        Ok(())
    }
}

/// The view of one Postgres transaction: statements on its one connection.
struct PgTx<'a> {
    backend: &'a PgBackend,
    conn: Arc<PgConn>,
    tables: &'a [&'static str],
}

impl PgTx<'_> {
    fn check_table(&self, table: &str) -> TxResult<String> {
        if self.tables.contains(&table) {
            Ok(table.to_owned())
        } else {
            Err(TxAbort::State(StateError::InvalidInput {
                what: "transaction".to_owned(),
                reason: format!("table {table:?} is not part of the transaction"),
            }))
        }
    }

    fn run<T: Send + 'static, F>(
        &self,
        action: &'static str,
        query: impl FnOnce(Arc<PgConn>) -> F,
    ) -> TxResult<T>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let fut = query(Arc::clone(&self.conn));
        match self.backend.runtime.run(fut).map_err(TxAbort::State)? {
            Ok(value) => Ok(value),
            Err(err) if is_conflict(&err) => Err(TxAbort::Conflict),
            Err(err) => Err(TxAbort::State(pg_error(action, err))),
        }
    }
}

impl Tx for PgTx<'_> {
    fn get(&mut self, table: &str, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        let (table, key) = (self.check_table(table)?, key.to_vec());
        self.run("reading in a transaction", move |conn| async move {
            let row = conn.client.query_opt(&conn.get, &[&table, &key]).await?;
            row.map(|row| row.try_get(0)).transpose()
        })
    }

    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> TxResult<()> {
        let (table, key, value) = (self.check_table(table)?, key.to_vec(), value.to_vec());
        self.run("writing in a transaction", move |conn| async move {
            conn.client
                .execute(&conn.put, &[&table, &key, &value])
                .await
                .map(drop)
        })
    }

    fn remove(&mut self, table: &str, key: &[u8]) -> TxResult<()> {
        let (table, key) = (self.check_table(table)?, key.to_vec());
        self.run("removing in a transaction", move |conn| async move {
            conn.client
                .execute(&conn.remove, &[&table, &key])
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests;
