//! The daemon configuration (TOML). DESIGN.md fixes the keys: `listen`, `state_dir`, `data_dir`,
//! `flows_dir`, `[api]`, `[limits]`, `[log]`; we add `[scheduler]`, `[state]` and `[storage]`
//! (the options of an object-store `data_dir`, which the object store needs and DESIGN.md's list
//! has no place for). Every key has a
//! default and an unknown key is an error, so a typo never goes unnoticed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tributary_fetch::RateQuota;

/// Everything `tributary serve` (and the one-shot commands, for paths) reads from the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Run state with the sled backend (and the daemon's local files, e.g. its API credential).
    pub state_dir: PathBuf,
    /// Datasets: a local folder, or an object store URL (`s3://bucket/prefix`, `az://container/
    /// prefix`, `abfss://container@account.dfs.core.windows.net/prefix`, `gs://bucket/prefix`).
    pub data_dir: PathBuf,
    /// Flow bundles loaded at start and when they change.
    pub flows_dir: Option<PathBuf>,
    pub api: ApiConfig,
    pub limits: LimitsConfig,
    pub scheduler: SchedulerConfig,
    pub state: StateConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
}

/// `[storage]`: options of an object-store `data_dir`, by object_store's names (`aws_endpoint`,
/// `aws_access_key_id`, `azure_storage_account_key`, `google_service_account`, ...), each may be
/// `${env:NAME}`; they override the store's own environment variables (`AWS_*`, `AZURE_*`,
/// `GOOGLE_*`). Only with an object-store `data_dir`.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct StorageConfig(pub BTreeMap<String, String>);

impl std::fmt::Debug for StorageConfig {
    // Values may be keys and secrets: only the option names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Credentials the HTTP API accepts.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub orgs: Vec<OrgCredentials>,
    /// When not empty, `/metrics` answers only requests with `Authorization: Bearer <this>`
    /// (may be `${env:NAME}`); empty (the default): `/metrics` needs no credentials.
    pub metrics_bearer_token: String,
}

/// One IMS org's API key and bearer token. Values may be `${env:NAME}`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgCredentials {
    pub org_id: String,
    pub api_key: String,
    pub bearer_token: String,
}

impl std::fmt::Debug for ApiConfig {
    // The metrics token is a secret: only whether one is set is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("orgs", &self.orgs)
            .field(
                "metrics_bearer_token_set",
                &!self.metrics_bearer_token.is_empty(),
            )
            .finish()
    }
}

impl std::fmt::Debug for OrgCredentials {
    // The key and token are secrets: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgCredentials")
            .field("org_id", &self.org_id)
            .field("api_key", &"***")
            .field("bearer_token", &"***")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Runs executing at the same time across all flows.
    pub max_concurrent_runs: u32,
    /// Upper bound for buffered pages and batches across running flows, in MiB.
    pub memory_budget_mb: u64,
    /// The longest wait a source's `Retry-After` or rate-limit reset may ask for, in seconds; a
    /// longer one fails the request (and the run) with a message naming the header.
    pub max_wait_secs: u64,
    /// `[limits.hosts."HOST"]`: the request rate of an API host, keyed by host (`api.test`) or
    /// host and port (`127.0.0.1:8080`, which wins over the bare host).
    pub hosts: BTreeMap<String, HostLimit>,
}

/// The request rate one API host gets: every (origin, credential) limiter of the host, shared
/// by all runs of the process, lets at most this many requests out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostLimit {
    /// Requests per second; a fraction is allowed (`0.5`: one request every 2 s).
    pub requests_per_second: f64,
    /// Requests that may go out at once after a quiet spell (default 1).
    #[serde(default = "default_burst")]
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// After downtime, at most this many missed windows per flow are caught up.
    pub max_catch_up_windows: u32,
    /// Finished runs kept per flow.
    pub run_history: u32,
    /// How long a graceful stop waits for running flows, in seconds.
    pub shutdown_grace_secs: u64,
    /// With `state.backend = "postgres"` only: how long a node's lease of a flow lasts without
    /// renewal, in seconds (default [`DEFAULT_LEASE_TTL_SECS`]); a node that died gives its
    /// flows up after this long. Renewed every third of it.
    pub lease_ttl_secs: Option<u64>,
    /// With `state.backend = "postgres"` only: this node's id among the daemons sharing the
    /// state (may be `${env:NAME}`); default: host name and pid.
    pub node_id: Option<String>,
}

/// The lease TTL of a node when `scheduler.lease_ttl_secs` is not set.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 30;

#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Where state lives: `sled` (the default, in `state_dir`) or `postgres` (at `url`).
    pub backend: StateBackend,
    /// The Postgres connection URL (`postgres://user:password@host:port/db`), may be
    /// `${env:NAME}`; only with `backend = "postgres"`, where it is required.
    pub url: String,
    /// Base64 of 32 bytes (may be `${env:NAME}`); empty means TRIBUTARY_SECRET_KEY or, with
    /// sled only, a generated key file in `state_dir`.
    pub secret_key: String,
}

/// The storage engine of the run state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    #[default]
    Sled,
    Postgres,
}

impl std::fmt::Debug for StateConfig {
    // The URL may carry a password and the key is a secret: only whether each is set is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateConfig")
            .field("backend", &self.backend)
            .field("url_set", &!self.url.is_empty())
            .field("secret_key_set", &!self.secret_key.is_empty())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A config file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn default_burst() -> u32 {
    1
}

impl SchedulerConfig {
    /// The lease TTL of a node of a shared state.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_ttl_secs.unwrap_or(DEFAULT_LEASE_TTL_SECS))
    }
}

impl LimitsConfig {
    /// The per-host quotas for the fetcher's settings (every entry was checked at load).
    pub fn host_quotas(&self) -> BTreeMap<String, RateQuota> {
        self.hosts
            .iter()
            .filter_map(|(host, limit)| Some((host.clone(), limit.quota()?)))
            .collect()
    }
}

impl HostLimit {
    /// The quota, or `None` when the rate or burst is out of range.
    pub fn quota(&self) -> Option<RateQuota> {
        RateQuota::from_rate(self.requests_per_second, NonZeroU32::new(self.burst)?)
    }
}

/// The largest `limits.max_wait_secs`: a year. Longer waits are a typo, not a policy.
const MAX_WAIT_SECS_LIMIT: u64 = 365 * 24 * 3600;

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            state_dir: PathBuf::from("./state"),
            data_dir: PathBuf::from("./data"),
            flows_dir: None,
            api: ApiConfig::default(),
            limits: LimitsConfig::default(),
            scheduler: SchedulerConfig::default(),
            state: StateConfig::default(),
            storage: StorageConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 4,
            memory_budget_mb: 256,
            max_wait_secs: 900,
            hosts: BTreeMap::new(),
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_catch_up_windows: 24,
            run_history: 100,
            shutdown_grace_secs: 30,
            lease_ttl_secs: None,
            node_id: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl DaemonConfig {
    /// Parses a config file's text; `path` only labels the messages.
    pub fn from_toml_str(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|err| ConfigError::Invalid {
            path: path.to_owned(),
            // toml's message names the key and the line; keep it on one line.
            message: err.to_string().trim().replace('\n', " "),
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(path, &text)
    }

    /// Whether `data_dir` is an object store URL rather than a local folder.
    pub fn data_in_object_store(&self) -> bool {
        self.data_dir
            .to_str()
            .is_some_and(tributary_write::object::is_object_url)
    }

    fn check(&self) -> Result<(), String> {
        if self.limits.max_concurrent_runs == 0 {
            return Err("limits.max_concurrent_runs: expected at least 1, found 0".to_owned());
        }
        if self.limits.memory_budget_mb < 16 {
            return Err(format!(
                "limits.memory_budget_mb: expected at least 16, found {}",
                self.limits.memory_budget_mb
            ));
        }
        if !(1..=MAX_WAIT_SECS_LIMIT).contains(&self.limits.max_wait_secs) {
            return Err(format!(
                "limits.max_wait_secs: expected 1 to {MAX_WAIT_SECS_LIMIT} seconds (a year), found {}",
                self.limits.max_wait_secs
            ));
        }
        for (host, limit) in &self.limits.hosts {
            let host_is_plain = !host.trim().is_empty()
                && !host.contains("://")
                && !host.contains('/')
                && host.trim() == host;
            if !host_is_plain {
                return Err(format!(
                    "limits.hosts.{host:?}: expected a host (api.example.com) or host:port, without scheme or path"
                ));
            }
            if limit.burst == 0 {
                return Err(format!(
                    "limits.hosts.{host:?}.burst: expected at least 1, found 0"
                ));
            }
            if limit.quota().is_none() {
                return Err(format!(
                    "limits.hosts.{host:?}.requests_per_second: expected a number above 0 (at most 1e9), found {}",
                    limit.requests_per_second
                ));
            }
        }
        match (self.state.backend, self.state.url.trim().is_empty()) {
            (StateBackend::Postgres, true) => {
                return Err(
                    "state.url: required with state.backend = \"postgres\" (postgres://user@host:port/db, or ${env:NAME})"
                        .to_owned(),
                );
            }
            (StateBackend::Sled, false) => {
                return Err(
                    "state.url: only used with state.backend = \"postgres\"; the sled state lives in state_dir"
                        .to_owned(),
                );
            }
            _ => {}
        }
        let is_shared = self.state.backend == StateBackend::Postgres;
        if let Some(ttl) = self.scheduler.lease_ttl_secs {
            if !is_shared {
                return Err("scheduler.lease_ttl_secs: only used with state.backend = \"postgres\" (daemons sharing one state); a sled state has one daemon".to_owned());
            }
            if !(2..=3600).contains(&ttl) {
                return Err(format!(
                    "scheduler.lease_ttl_secs: expected 2 to 3600 seconds, found {ttl}"
                ));
            }
        }
        if let Some(node_id) = &self.scheduler.node_id {
            if !is_shared {
                return Err("scheduler.node_id: only used with state.backend = \"postgres\" (daemons sharing one state); a sled state has one daemon".to_owned());
            }
            if node_id.trim().is_empty() {
                return Err("scheduler.node_id: expected a non-empty id (or leave it out: host name and pid)".to_owned());
            }
        }
        for (idx, org) in self.api.orgs.iter().enumerate() {
            if org.org_id.trim().is_empty() {
                return Err(format!(
                    "api.orgs[{idx}].org_id: expected a non-empty org id"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
