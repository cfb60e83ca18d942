//! Run state: a typed API over sled or Postgres for entities, runs, checkpoints and batches.
//!
//! Main types: [`Db`] (one per process, cheap to clone), [`Entity`], [`RunRecord`],
//! [`BatchRecord`], [`DatasetSchema`], [`Checkpoint`] with its [`PartEntry`]s, [`FlowScheduleState`],
//! [`BundleSource`], [`OAuthTokens`], and the one error type [`StateError`].
//!
//! Invariants: the only crate that names sled or a database driver, and no sled or Postgres
//! type appears in its public API; the typed functions are written once, over the key/value
//! tables of `store`, and both backends (`sled_store`, `postgres`) implement that seam. Keys
//! are big-endian; values go through one versioned codec (`codec`); secrets are encrypted at
//! rest with AES-256-GCM, identically on both backends, and never stored, logged or formatted
//! in clear (checkpoint positions, which carry next-page URLs and tokens, are sealed too; a
//! Postgres URL is shown masked). The commit protocol functions ([`Db::record_parts`],
//! [`Db::start_commit`], [`Db::complete_window`], ...) are one backend transaction each and
//! flush before returning, and on a node of a shared state they are fenced by the flow's lease
//! (`leases`: [`Db::join_cluster`], [`Db::claim_lease`]); other sled writes become durable within half a second or at
//! [`Db::flush`], other Postgres writes at once.

mod batches;
mod checkpoints;
mod codec;
mod copy;
mod crypto;
mod datasets;
mod entities;
mod error;
mod ids;
mod leases;
mod misc;
mod postgres;
mod runs;
mod sled_store;
mod store;

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use batches::{BatchRecord, BatchStatus, FileEntry};
pub use checkpoints::{
    AbandonedAttempt, BatchRef, BeganWindow, Checkpoint, CheckpointStatus, PartEntry, PartState,
    WindowKey, WindowSummary,
};
pub use copy::{CopyReport, copy_state};
pub use crypto::{JsonPointer, REDACTED, SecretKey};
pub use datasets::{ColumnChange, ColumnOrigin, DatasetSchema, GrowOutcome};
pub use entities::{Entity, EntityKind, next_entities_epoch};
pub use error::StateError;
pub use ids::{BatchId, DatasetId, FlowId, RunId};
pub use leases::{Lease, LeaseHold, NodeId, NodeRecord, RenewReport};
pub use misc::{BundleChange, BundleSource, FlowScheduleState, OAuthTokens};
pub use postgres::PostgresUrl;
pub use runs::{RunRecord, RunStatus, Window};

use crate::crypto::{Cipher, OpenError};
use crate::store::{Backend, Table, Trees};

/// The state store of one process. Clones share one database; a state directory's lock is held
/// until the last clone is dropped.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// How to open the store.
#[derive(Debug, Clone, Default)]
pub struct StateOptions {
    /// The key for secrets at rest (from the config file). When absent, `TRIBUTARY_SECRET_KEY`
    /// is read; when that is absent too, a sled state uses or generates `{dir}/secret.key` and
    /// a Postgres state is refused.
    pub secret_key: Option<SecretKey>,
    /// sled's page cache budget; default 32 MiB (sled's own default of 1 GiB is far above the
    /// daemon's memory budget, and state is small). A sled setting: a Postgres state refuses it.
    pub cache_capacity_bytes: Option<u64>,
}

/// Where a state lives.
#[derive(Debug, Clone)]
pub enum StateLocation {
    /// A state directory holding a sled database, its lock and (maybe) its key file.
    Sled(PathBuf),
    /// A Postgres database (the schema of the URL's `search_path`).
    Postgres(PostgresUrl),
}

impl std::fmt::Display for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::Sled(dir) => write!(f, "state directory {}", dir.display()),
            StateLocation::Postgres(url) => write!(f, "Postgres state {url}"),
        }
    }
}

/// The lock file inside the state directory.
pub const LOCK_FILE: &str = "tributary.lock";
/// The generated key file inside the state directory.
pub const KEY_FILE: &str = "secret.key";
/// The sled database folder inside the state directory.
pub const DB_FOLDER: &str = "db";

const DEFAULT_CACHE_CAPACITY: u64 = 32 * 1024 * 1024;
const META_FORMAT_VERSION: &[u8] = b"format_version";
const META_KEY_CHECK: &[u8] = b"key_check";
const KEY_CHECK_CLEAR: &[u8] = b"tributary secret key check";

struct Inner {
    location: StateLocation,
    trees: Trees,
    cipher: Cipher,
    secret_key: SecretKey,
    /// Where the key came from (never the key), for messages.
    key_origin: String,
    /// The node this process is in a shared state, and the leases it holds.
    leases: leases::HeldLeases,
    // Declared last so that it is released after sled has closed its files.
    _lock: Option<File>,
}

/// Opens the sled database of a state directory whose lock this process holds. No other
/// process can then be using it, yet sled's own file lock can read as taken for a moment: a
/// child this process is just spawning holds a copy of every open file until it execs, the
/// lock of a handle dropped an instant ago included. That contention is waited out, for at most
/// two seconds; anything else is an error at once.
fn open_sled(config: &sled::Config) -> Result<sled::Db, StateError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match config.open() {
            Err(sled::Error::Io(err))
                if err.kind() == std::io::ErrorKind::WouldBlock
                    || err.to_string().contains("could not acquire lock") =>
            {
                if std::time::Instant::now() >= deadline {
                    return Err(sled_store::storage(
                        "opening the database",
                        sled::Error::Io(err),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => {
                return opened.map_err(|err| sled_store::storage("opening the database", err));
            }
        }
    }
}

impl Db {
    /// Opens (creating if needed) the sled state directory `dir`: takes its lock, opens the
    /// database, checks the format version and the secret key.
    pub fn open(dir: &Path, options: StateOptions) -> Result<Db, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            action: "creating state directory",
            path: dir.to_owned(),
            source,
        })?;
        let lock = acquire_lock(dir)?;
        let env_key = std::env::var_os(SecretKey::ENV_VAR);
        let (secret_key, key_origin) = resolve_secret_key(Some(dir), options.secret_key, env_key)?;

        let config = sled::Config::new()
            .path(dir.join(DB_FOLDER))
            .cache_capacity(
                options
                    .cache_capacity_bytes
                    .unwrap_or(DEFAULT_CACHE_CAPACITY),
            );
        let sled = open_sled(&config)?;
        let backend = sled_store::SledBackend::new(sled)?;
        Db::finish_open(
            StateLocation::Sled(dir.to_owned()),
            Arc::new(backend),
            secret_key,
            &key_origin,
            Some(lock),
        )
    }

    /// Opens (creating or migrating its schema if needed) a Postgres state, and checks the
    /// format version and the secret key. Holds no lock: several processes may open one
    /// database.
    pub fn open_postgres(url: &PostgresUrl, options: StateOptions) -> Result<Db, StateError> {
        let location = StateLocation::Postgres(url.clone());
        if options.cache_capacity_bytes.is_some() {
            return Err(StateError::InvalidInput {
                what: "state options".to_owned(),
                reason: format!(
                    "cache_capacity_bytes sizes sled's page cache; {location} has none"
                ),
            });
        }
        let env_key = std::env::var_os(SecretKey::ENV_VAR);
        let (secret_key, key_origin) = match resolve_secret_key(None, options.secret_key, env_key) {
            Ok(resolved) => resolved,
            Err(StateError::MissingSecretKey { .. }) => {
                return Err(StateError::MissingSecretKey {
                    state: location.to_string(),
                });
            }
            Err(err) => return Err(err),
        };
        let backend = postgres::PgBackend::open(url)?;
        Db::finish_open(location, Arc::new(backend), secret_key, &key_origin, None)
    }

    /// Opens the state at `location` with [`Db::open`] or [`Db::open_postgres`].
    pub fn open_at(location: &StateLocation, options: StateOptions) -> Result<Db, StateError> {
        match location {
            StateLocation::Sled(dir) => Db::open(dir, options),
            StateLocation::Postgres(url) => Db::open_postgres(url, options),
        }
    }

    fn finish_open(
        location: StateLocation,
        backend: Arc<dyn Backend>,
        secret_key: SecretKey,
        key_origin: &str,
        lock: Option<File>,
    ) -> Result<Db, StateError> {
        let trees = Trees::new(backend);
        let cipher = Cipher::new(&secret_key);
        check_format_version(&trees.meta)?;
        check_secret_key(&location, &trees.meta, &cipher, key_origin)?;
        trees.backend().flush()?;
        Ok(Db {
            inner: Arc::new(Inner {
                location,
                trees,
                cipher,
                secret_key,
                key_origin: key_origin.to_owned(),
                leases: leases::HeldLeases::default(),
                _lock: lock,
            }),
        })
    }

    /// Makes every write so far durable (fsync).
    pub fn flush(&self) -> Result<(), StateError> {
        self.inner.trees.backend().flush()
    }

    /// The state directory this store was opened on; `None` for a Postgres state.
    pub fn dir(&self) -> Option<&Path> {
        match &self.inner.location {
            StateLocation::Sled(dir) => Some(dir),
            StateLocation::Postgres(_) => None,
        }
    }

    /// Where this store lives.
    pub fn location(&self) -> &StateLocation {
        &self.inner.location
    }

    pub(crate) fn trees(&self) -> &Trees {
        &self.inner.trees
    }

    pub(crate) fn cipher(&self) -> &Cipher {
        &self.inner.cipher
    }

    pub(crate) fn held_leases(&self) -> &leases::HeldLeases {
        &self.inner.leases
    }

    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.inner.secret_key
    }

    /// Where the secret key came from: the configuration, the environment variable, or the key
    /// file (its path). Never the key.
    pub fn key_origin(&self) -> &str {
        &self.inner.key_origin
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Writes outside the commit protocol are flushed by sled's timer; make them durable at
        // a clean shutdown too.
        if let Err(err) = self.trees.backend().flush() {
            tracing::warn!(state = %self.location, error = %err, "flushing state on close failed");
        }
    }
}

/// Takes an exclusive lock on `{dir}/tributary.lock` and writes our pid into it.
fn acquire_lock(dir: &Path) -> Result<File, StateError> {
    let path = dir.join(LOCK_FILE);
    let io_err = |action, source| StateError::Io {
        action,
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| io_err("opening lock file", source))?;
    if let Err(err) = fs2::FileExt::try_lock_exclusive(&file) {
        let is_contended = err.kind() == std::io::ErrorKind::WouldBlock
            || err.raw_os_error() == fs2::lock_contended_error().raw_os_error();
        if !is_contended {
            return Err(io_err("locking", err));
        }
        let mut text = String::new();
        let pid = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| text.trim().parse::<u32>().ok());
        return Err(StateError::InUse {
            dir: dir.to_owned(),
            pid,
        });
    }
    file.set_len(0)
        .map_err(|source| io_err("truncating lock file", source))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| io_err("writing lock file", source))?;
    writeln!(file, "{}", std::process::id())
        .map_err(|source| io_err("writing lock file", source))?;
    file.sync_all()
        .map_err(|source| io_err("syncing lock file", source))?;
    Ok(file)
}

/// The key and a description of where it came from (for error messages; never the key).
fn resolve_secret_key(
    dir: Option<&Path>,
    configured: Option<SecretKey>,
    env_key: Option<std::ffi::OsString>,
) -> Result<(SecretKey, String), StateError> {
    if let Some(key) = configured {
        return Ok((key, "the configuration".to_owned()));
    }
    if let Some(text) = env_key {
        let origin = format!("environment variable {}", SecretKey::ENV_VAR);
        let Some(text) = text.to_str() else {
            return Err(StateError::InvalidSecretKey {
                origin,
                reason: "the value is not UTF-8".to_owned(),
            });
        };
        return Ok((crypto::parse_key(text, &origin)?, origin));
    }
    let Some(dir) = dir else {
        // The caller names the state.
        return Err(StateError::MissingSecretKey {
            state: String::new(),
        });
    };
    let path = dir.join(KEY_FILE);
    let origin = format!("key file {}", path.display());
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok((crypto::parse_key(&text, &origin)?, origin)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StateError::Io {
                action: "reading secret key file",
                path,
                source,
            });
        }
    }
    let key = SecretKey::generate();
    write_key_file(&path, &key)?;
    tracing::warn!(
        path = %path.display(),
        "no secret key configured (secret_key or TRIBUTARY_SECRET_KEY); generated one into the state directory; \
         back it up, secrets at rest cannot be read without it"
    );
    Ok((key, origin))
}

fn write_key_file(path: &Path, key: &SecretKey) -> Result<(), StateError> {
    let io_err = |action, source| StateError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|source| io_err("creating secret key file", source))?;
    writeln!(file, "{}", key.to_base64())
        .map_err(|source| io_err("writing secret key file", source))?;
    file.sync_all()
        .map_err(|source| io_err("syncing secret key file", source))?;
    Ok(())
}

fn check_format_version(meta: &Table) -> Result<(), StateError> {
    match meta.get::<u8>(META_FORMAT_VERSION)? {
        Some(version) if version > codec::FORMAT_VERSION => Err(StateError::NewerFormat {
            tree: meta.name.to_owned(),
            key: codec::display_key(META_FORMAT_VERSION),
            version,
            supported: codec::FORMAT_VERSION,
        }),
        Some(_) => Ok(()),
        None => meta.put(
            META_FORMAT_VERSION,
            "format version",
            &codec::FORMAT_VERSION,
        ),
    }
}

/// Refuses a key that differs from the one the state was written with, at open rather than
/// at the first secret read.
fn check_secret_key(
    location: &StateLocation,
    meta: &Table,
    cipher: &Cipher,
    origin: &str,
) -> Result<(), StateError> {
    let aad = b"meta/key_check";
    loop {
        match meta.get::<String>(META_KEY_CHECK)? {
            Some(sealed) => {
                return match cipher.open_bytes(&sealed, aad) {
                    Ok(clear) if clear == KEY_CHECK_CLEAR => Ok(()),
                    Ok(_) | Err(OpenError::Authentication) => Err(StateError::WrongSecretKey {
                        state: location.to_string(),
                        origin: origin.to_owned(),
                    }),
                    Err(OpenError::Malformed(reason)) => {
                        Err(codec::corrupt(meta.name, META_KEY_CHECK, reason.to_owned()))
                    }
                };
            }
            None => {
                // Only if still absent: two processes opening a fresh shared database with
                // different keys must not both win.
                let check = codec::encode("key check", &cipher.seal_bytes(KEY_CHECK_CLEAR, aad))?;
                if meta.compare_and_swap(META_KEY_CHECK, None, Some(&check))? {
                    return Ok(());
                }
            }
        }
    }
}

/// Milliseconds since the Unix epoch, for server timestamps.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
