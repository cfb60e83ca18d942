//! Small per-flow and per-connection records: schedule state, the flow-bundle registry of the
//! daemon, and rotated OAuth2 tokens (encrypted as a whole).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::crypto::OpenError;
use crate::{Db, FlowId, StateError, codec, now_ms};

/// The scheduler's memory of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowScheduleState {
    /// The end of the last window that was run (the next window starts here).
    pub last_window_end_ms: Option<i64>,
    pub next_due_ms: Option<i64>,
    pub enabled: bool,
}

/// Which flow a bundle file on disk defines, and the content it was loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleSource {
    pub path: String,
    pub content_hash: String,
    pub flow_id: FlowId,
    pub updated_at_ms: i64,
}

/// What [`Db::put_bundle_source`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleChange {
    /// The file was not registered before.
    New,
    /// Same content and flow: nothing was written.
    Unchanged,
    /// The file was registered with another content hash or flow.
    Changed { previous: BundleSource },
}

/// OAuth2 tokens of a connection, as rotated by the fetcher. `Debug` never shows the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at_ms: Option<i64>,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("access_token", &"***")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl Db {
    pub fn schedule_state(
        &self,
        flow_id: &FlowId,
    ) -> Result<Option<FlowScheduleState>, StateError> {
        self.trees().schedules.get(flow_id.as_str().as_bytes())
    }

    pub fn put_schedule_state(
        &self,
        flow_id: &FlowId,
        state: &FlowScheduleState,
    ) -> Result<(), StateError> {
        self.trees()
            .schedules
            .put(flow_id.as_str().as_bytes(), "schedule state", state)
    }

    /// Every flow's schedule state, ordered by flow id (for the scheduler at start).
    pub fn schedule_states(&self) -> Result<Vec<(FlowId, FlowScheduleState)>, StateError> {
        let table = &self.trees().schedules;
        let mut states = Vec::new();
        for (key, state) in table.values_with_prefix::<FlowScheduleState>(b"")? {
            let flow_id = String::from_utf8(key.clone())
                .map_err(|_| codec::corrupt(table.name, &key, "flow id is not UTF-8".to_owned()))?;
            states.push((FlowId::new(flow_id), state));
        }
        Ok(states)
    }

    pub fn delete_schedule_state(&self, flow_id: &FlowId) -> Result<bool, StateError> {
        self.trees().schedules.remove(flow_id.as_str().as_bytes())
    }

    /// Registers that the bundle file at `path` with content `content_hash` defines `flow_id`.
    /// Writes nothing when the same file with the same content and flow is registered already,
    /// so loading a folder twice changes nothing.
    pub fn put_bundle_source(
        &self,
        path: &Path,
        content_hash: &str,
        flow_id: &FlowId,
    ) -> Result<BundleChange, StateError> {
        let table = &self.trees().bundle_sources;
        let path_text = path.to_string_lossy().into_owned();
        let previous = table.get::<BundleSource>(path_text.as_bytes())?;
        if let Some(previous) = &previous
            && previous.content_hash == content_hash
            && previous.flow_id == *flow_id
        {
            return Ok(BundleChange::Unchanged);
        }
        let source = BundleSource {
            path: path_text,
            content_hash: content_hash.to_owned(),
            flow_id: flow_id.clone(),
            updated_at_ms: now_ms(),
        };
        table.put(source.path.as_bytes(), "bundle source", &source)?;
        Ok(match previous {
            None => BundleChange::New,
            Some(previous) => BundleChange::Changed { previous },
        })
    }

    pub fn bundle_source(&self, path: &Path) -> Result<Option<BundleSource>, StateError> {
        self.trees()
            .bundle_sources
            .get(path.to_string_lossy().as_bytes())
    }

    /// Every registered bundle file, ordered by path.
    pub fn bundle_sources(&self) -> Result<Vec<BundleSource>, StateError> {
        let sources = self
            .trees()
            .bundle_sources
            .values_with_prefix::<BundleSource>(b"")?;
        Ok(sources.into_iter().map(|(_, source)| source).collect())
    }

    pub fn delete_bundle_source(&self, path: &Path) -> Result<bool, StateError> {
        self.trees()
            .bundle_sources
            .remove(path.to_string_lossy().as_bytes())
    }

    /// Stores a connection's tokens, encrypted, and flushes: a rotated refresh token is often
    /// the only valid one, so losing it in a crash would break the connection.
    pub fn put_oauth_tokens(
        &self,
        connection_id: &str,
        tokens: &OAuthTokens,
    ) -> Result<(), StateError> {
        let clear = serde_json::to_vec(tokens).map_err(|source| StateError::Encode {
            what: "oauth tokens",
            source,
        })?;
        let sealed = self.cipher().seal_bytes(&clear, &oauth_aad(connection_id));
        self.trees()
            .oauth_tokens
            .put(connection_id.as_bytes(), "oauth tokens", &sealed)?;
        self.flush()
    }

    pub fn oauth_tokens(&self, connection_id: &str) -> Result<Option<OAuthTokens>, StateError> {
        let table = &self.trees().oauth_tokens;
        let key = connection_id.as_bytes();
        let Some(sealed) = table.get::<String>(key)? else {
            return Ok(None);
        };
        let clear = match self.cipher().open_bytes(&sealed, &oauth_aad(connection_id)) {
            Ok(clear) => clear,
            Err(OpenError::Authentication) => {
                return Err(StateError::Decrypt {
                    tree: table.name.to_owned(),
                    key: connection_id.to_owned(),
                    location: "oauth tokens".to_owned(),
                });
            }
            Err(OpenError::Malformed(reason)) => {
                return Err(codec::corrupt(table.name, key, reason.to_owned()));
            }
        };
        // The reason is left out on purpose: serde's message could quote part of a token.
        let tokens = serde_json::from_slice(&clear).map_err(|_| {
            codec::corrupt(
                table.name,
                key,
                "decrypted oauth tokens are not valid".to_owned(),
            )
        })?;
        Ok(Some(tokens))
    }

    pub fn delete_oauth_tokens(&self, connection_id: &str) -> Result<bool, StateError> {
        self.trees().oauth_tokens.remove(connection_id.as_bytes())
    }
}

fn oauth_aad(connection_id: &str) -> Vec<u8> {
    format!("oauth/{connection_id}").into_bytes()
}
