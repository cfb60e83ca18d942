//! The crate's one error type, [`StateError`], classified by cause.
//!
//! No sled or Postgres type appears here: storage failures are carried as boxed sources, so the
//! storage engine stays this crate's business. No variant carries a password: a Postgres state
//! is named by its masked URL.

use std::path::PathBuf;

/// Everything that can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another `Db` (in this or another process) holds the state directory's lock.
    #[error("state directory {} is already in use by another tributary process ({})", dir.display(), pid_text(*pid))]
    InUse { dir: PathBuf, pid: Option<u32> },

    /// A file next to the database (lock file, secret key file, the directory itself) failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The storage engine failed (disk full, IO error, corruption detected by the engine).
    #[error("state storage failed while {action}: {source}")]
    Storage {
        action: &'static str,
        retryable: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A stored value cannot be decoded.
    #[error("corrupt state in tree {tree} at key {key}: {reason}")]
    Corrupt {
        tree: String,
        key: String,
        reason: String,
    },

    /// A stored value was written by a newer release with an encoding this build cannot read.
    #[error(
        "state written by a newer tributary: tree {tree}, key {key} has format version {version}, this build reads up to {supported}"
    )]
    NewerFormat {
        tree: String,
        key: String,
        version: u8,
        supported: u8,
    },

    /// The secret key given by configuration or environment is malformed. Never contains the key.
    #[error("invalid secret key from {origin}: {reason}")]
    InvalidSecretKey { origin: String, reason: String },

    /// The secret key does not decrypt what this state holds.
    #[error(
        "the secret key from {origin} does not match the key {state} was written with; configure the original key (TRIBUTARY_SECRET_KEY or secret_key)"
    )]
    WrongSecretKey { state: String, origin: String },

    /// A state without a directory (Postgres) has nowhere to keep a generated key.
    #[error(
        "{state} needs a secret key: set [state] secret_key in the config or TRIBUTARY_SECRET_KEY (there is no state directory to generate a key file in)"
    )]
    MissingSecretKey { state: String },

    /// The database schema was migrated by a newer release than this build.
    #[error(
        "{state} has schema version {version}, written by a newer tributary; this build knows versions up to {supported}"
    )]
    NewerSchema {
        state: String,
        version: i64,
        supported: i64,
    },

    /// A stored secret failed authenticated decryption (tampered, or moved between records).
    #[error(
        "cannot decrypt secret in tree {tree} at key {key}, location {location}: authentication failed"
    )]
    Decrypt {
        tree: String,
        key: String,
        location: String,
    },

    /// A JSON pointer naming a secret location is malformed.
    #[error("invalid json pointer {pointer:?}: {reason}")]
    InvalidPointer { pointer: String, reason: String },

    /// Optimistic concurrency: the caller's etag is not the current one.
    #[error("{kind} {id} was modified concurrently: expected etag {expected}, current etag {}", actual.as_deref().unwrap_or("none (it does not exist)"))]
    EtagMismatch {
        kind: String,
        id: String,
        expected: String,
        actual: Option<String>,
    },

    /// An argument the caller passed is unusable (an empty id, a part out of sequence).
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: String, reason: String },

    /// A record the operation needs does not exist.
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },

    /// The commit protocol was used out of order (a caller bug, not a storage problem).
    #[error("window {window}: {reason}")]
    Protocol { window: String, reason: String },

    /// On a node of a shared state: the flow's lease is not (or no longer) this node's, so the
    /// commit-protocol step was refused; another node may be running the flow.
    #[error(
        "flow {flow}: node {node} does not hold the flow's lease ({reason}); the run stops without recording or publishing more, another node may run the flow now"
    )]
    LeaseLost {
        flow: String,
        node: String,
        reason: String,
    },

    /// One of our own values failed to serialize (a bug: our types always serialize).
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    /// Whether retrying the same call can succeed without anybody changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            // The other process may exit; a supervisor restarting us later is the retry.
            StateError::InUse { .. } => true,
            StateError::Storage { retryable, .. } => *retryable,
            StateError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
            ),
            StateError::Corrupt { .. }
            | StateError::NewerFormat { .. }
            | StateError::InvalidSecretKey { .. }
            | StateError::WrongSecretKey { .. }
            | StateError::MissingSecretKey { .. }
            | StateError::NewerSchema { .. }
            | StateError::Decrypt { .. }
            | StateError::InvalidPointer { .. }
            | StateError::EtagMismatch { .. }
            | StateError::InvalidInput { .. }
            | StateError::NotFound { .. }
            | StateError::Protocol { .. }
            | StateError::LeaseLost { .. }
            | StateError::Encode { .. } => false,
        }
    }

    /// Whether the caller (user input, API client) caused the error rather than the store.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            StateError::InvalidSecretKey { .. }
                | StateError::WrongSecretKey { .. }
                | StateError::MissingSecretKey { .. }
                | StateError::InvalidPointer { .. }
                | StateError::EtagMismatch { .. }
                | StateError::InvalidInput { .. }
                | StateError::NotFound { .. }
                | StateError::Protocol { .. }
        )
    }
}

fn pid_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}
