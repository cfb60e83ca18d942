//! Flow Service documents (connection specs, flow specs, connections, source and target
//! connections, mapping sets, flows) stored as JSON with server fields and optimistic
//! concurrency by etag.
//!
//! Values at the secret pointers are sealed before they reach sled and opened on read;
//! [`Db::entity_redacted`] is what an API response or a log line may show.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::{JsonPointer, OpenError, REDACTED, sealed_text};
use crate::store::Table;
use crate::{Db, StateError, codec, now_ms};

/// The collections of Flow Service and Data Prep documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntityKind {
    ConnectionSpec,
    FlowSpec,
    Connection,
    SourceConnection,
    TargetConnection,
    MappingSet,
    Flow,
}

/// One stored document with its server fields. `doc` holds secrets in clear when read with
/// [`Db::entity`]; `Debug` always shows them redacted.
#[derive(Clone, PartialEq)]
pub struct Entity {
    pub id: String,
    pub kind: EntityKind,
    pub doc: Value,
    /// A new opaque value on every write (no quotes; add them for an HTTP `ETag` header).
    pub etag: String,
    /// 1 on creation, incremented on every write.
    pub version: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Where `doc` holds secrets.
    pub secret_pointers: Vec<JsonPointer>,
}

impl EntityKind {
    pub const ALL: [EntityKind; 7] = [
        EntityKind::ConnectionSpec,
        EntityKind::FlowSpec,
        EntityKind::Connection,
        EntityKind::SourceConnection,
        EntityKind::TargetConnection,
        EntityKind::MappingSet,
        EntityKind::Flow,
    ];

    /// The singular camelCase name, as in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::ConnectionSpec => "connectionSpec",
            EntityKind::FlowSpec => "flowSpec",
            EntityKind::Connection => "connection",
            EntityKind::SourceConnection => "sourceConnection",
            EntityKind::TargetConnection => "targetConnection",
            EntityKind::MappingSet => "mappingSet",
            EntityKind::Flow => "flow",
        }
    }

    pub(crate) fn tree_name(self) -> &'static str {
        match self {
            EntityKind::ConnectionSpec => "entity.connectionSpecs",
            EntityKind::FlowSpec => "entity.flowSpecs",
            EntityKind::Connection => "entity.connections",
            EntityKind::SourceConnection => "entity.sourceConnections",
            EntityKind::TargetConnection => "entity.targetConnections",
            EntityKind::MappingSet => "entity.mappingSets",
            EntityKind::Flow => "entity.flows",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            EntityKind::ConnectionSpec => 0,
            EntityKind::FlowSpec => 1,
            EntityKind::Connection => 2,
            EntityKind::SourceConnection => 3,
            EntityKind::TargetConnection => 4,
            EntityKind::MappingSet => 5,
            EntityKind::Flow => 6,
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Entity {
    /// The document with every secret replaced by `"***"`.
    pub fn redacted_doc(&self) -> Value {
        let mut doc = self.doc.clone();
        redact(&mut doc, &self.secret_pointers);
        doc
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entity")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("doc", &self.redacted_doc())
            .field("etag", &self.etag)
            .field("version", &self.version)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .field("secret_pointers", &self.secret_pointers)
            .finish()
    }
}

/// The stored form: `doc` holds sealed secrets.
#[derive(Serialize, Deserialize)]
struct StoredEntity {
    doc: Value,
    secrets: Vec<JsonPointer>,
    etag: String,
    version: u64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

const META_ENTITIES_EPOCH: &[u8] = b"entities_epoch";

/// The entities epoch after one more write than at `epoch` (see [`Db::entities_epoch`]).
pub fn next_entities_epoch(epoch: Option<u64>) -> u64 {
    epoch.map_or(1, |epoch| epoch.wrapping_add(1))
}

impl Db {
    /// Creates or replaces a document. With `expected_etag`, the write happens only if the
    /// stored document has that etag (and exists); without, it is unconditional. The values at
    /// `secrets` (those present and not null) are encrypted at rest.
    pub fn put_entity(
        &self,
        kind: EntityKind,
        id: &str,
        doc: Value,
        secrets: &[JsonPointer],
        expected_etag: Option<&str>,
    ) -> Result<Entity, StateError> {
        if id.is_empty() {
            return Err(StateError::InvalidInput {
                what: format!("{kind} id"),
                reason: "expected a non-empty id".to_owned(),
            });
        }
        let table = self.trees().entity(kind);
        let key = id.as_bytes();
        let mut sealed_doc = doc.clone();
        for pointer in secrets {
            if let Some(value) = sealed_doc.pointer_mut(pointer.as_str())
                && !value.is_null()
            {
                *value = self
                    .cipher()
                    .seal_value(value, &secret_aad(kind, id, pointer));
            }
        }
        let expected_etag = expected_etag.map(normalize_etag);
        // Compare-and-swap on the stored bytes: a concurrent writer makes us re-read and re-check.
        loop {
            let current_bytes = table.get_raw(key)?;
            let current: Option<StoredEntity> = match &current_bytes {
                None => None,
                Some(bytes) => Some(codec::decode(table.name, key, bytes)?),
            };
            if let Some(expected) = expected_etag
                && current.as_ref().map(|stored| stored.etag.as_str()) != Some(expected)
            {
                return Err(StateError::EtagMismatch {
                    kind: kind.as_str().to_owned(),
                    id: id.to_owned(),
                    expected: expected.to_owned(),
                    actual: current.map(|stored| stored.etag),
                });
            }
            let now = now_ms();
            let stored = StoredEntity {
                doc: sealed_doc.clone(),
                secrets: secrets.to_vec(),
                etag: uuid::Uuid::new_v4().to_string(),
                version: current.as_ref().map_or(1, |stored| stored.version + 1),
                created_at_ms: current.as_ref().map_or(now, |stored| stored.created_at_ms),
                updated_at_ms: now,
            };
            let new_bytes = codec::encode("entity", &stored)?;
            let swapped =
                table.compare_and_swap(key, current_bytes.as_deref(), Some(&new_bytes))?;
            if swapped {
                self.mark_entities_changed()?;
                return Ok(Entity {
                    id: id.to_owned(),
                    kind,
                    doc,
                    etag: stored.etag,
                    version: stored.version,
                    created_at_ms: stored.created_at_ms,
                    updated_at_ms: stored.updated_at_ms,
                    secret_pointers: stored.secrets,
                });
            }
        }
    }

    /// One document with its secrets decrypted.
    pub fn entity(&self, kind: EntityKind, id: &str) -> Result<Option<Entity>, StateError> {
        let table = self.trees().entity(kind);
        let Some(stored) = table.get::<StoredEntity>(id.as_bytes())? else {
            return Ok(None);
        };
        self.open_entity(table, kind, id, stored).map(Some)
    }

    /// One document with its secrets replaced by `"***"`: what the API and logs may show.
    pub fn entity_redacted(
        &self,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<Entity>, StateError> {
        let table = self.trees().entity(kind);
        let Some(stored) = table.get::<StoredEntity>(id.as_bytes())? else {
            return Ok(None);
        };
        Ok(Some(redacted_entity(kind, id, stored)))
    }

    /// Every document of a kind, ordered by id, secrets decrypted.
    pub fn list_entities(&self, kind: EntityKind) -> Result<Vec<Entity>, StateError> {
        let table = self.trees().entity(kind);
        let mut entities = Vec::new();
        for (key, stored) in table.values_with_prefix::<StoredEntity>(b"")? {
            let id = entity_id(table, &key)?;
            entities.push(self.open_entity(table, kind, &id, stored)?);
        }
        Ok(entities)
    }

    /// Every document of a kind, ordered by id, secrets redacted.
    pub fn list_entities_redacted(&self, kind: EntityKind) -> Result<Vec<Entity>, StateError> {
        let table = self.trees().entity(kind);
        let mut entities = Vec::new();
        for (key, stored) in table.values_with_prefix::<StoredEntity>(b"")? {
            let id = entity_id(table, &key)?;
            entities.push(redacted_entity(kind, &id, stored));
        }
        Ok(entities)
    }

    /// Deletes a document; `Ok(false)` if it did not exist (and no etag was expected).
    pub fn delete_entity(
        &self,
        kind: EntityKind,
        id: &str,
        expected_etag: Option<&str>,
    ) -> Result<bool, StateError> {
        let table = self.trees().entity(kind);
        let key = id.as_bytes();
        let expected_etag = expected_etag.map(normalize_etag);
        loop {
            let Some(current_bytes) = table.get_raw(key)? else {
                return match expected_etag {
                    None => Ok(false),
                    Some(expected) => Err(StateError::EtagMismatch {
                        kind: kind.as_str().to_owned(),
                        id: id.to_owned(),
                        expected: expected.to_owned(),
                        actual: None,
                    }),
                };
            };
            if let Some(expected) = expected_etag {
                let current: StoredEntity = codec::decode(table.name, key, &current_bytes)?;
                if current.etag != expected {
                    return Err(StateError::EtagMismatch {
                        kind: kind.as_str().to_owned(),
                        id: id.to_owned(),
                        expected: expected.to_owned(),
                        actual: Some(current.etag),
                    });
                }
            }
            let swapped = table.compare_and_swap(key, Some(current_bytes.as_slice()), None)?;
            if swapped {
                self.mark_entities_changed()?;
                return Ok(true);
            }
        }
    }

    /// A counter that moves by one at every entity write or delete (after it), in this process
    /// or any other sharing the state; `None` before the first write. A process that keeps a
    /// view of the entities re-reads them when it moved by more than its own writes: a write
    /// whose epoch read right after it is the view's epoch plus one was the only write since.
    pub fn entities_epoch(&self) -> Result<Option<u64>, StateError> {
        self.trees().meta.get::<u64>(META_ENTITIES_EPOCH)
    }

    fn mark_entities_changed(&self) -> Result<(), StateError> {
        let meta = &self.trees().meta;
        // Compare-and-swap: concurrent writers (of any process) each move the counter once.
        loop {
            let current = meta.get_raw(META_ENTITIES_EPOCH)?;
            let epoch: Option<u64> = match &current {
                None => None,
                Some(bytes) => Some(codec::decode(meta.name, META_ENTITIES_EPOCH, bytes)?),
            };
            let next = codec::encode("entities epoch", &next_entities_epoch(epoch))?;
            if meta.compare_and_swap(META_ENTITIES_EPOCH, current.as_deref(), Some(&next))? {
                return Ok(());
            }
        }
    }

    fn open_entity(
        &self,
        table: &Table,
        kind: EntityKind,
        id: &str,
        stored: StoredEntity,
    ) -> Result<Entity, StateError> {
        let mut doc = stored.doc;
        for pointer in &stored.secrets {
            let Some(value) = doc.pointer_mut(pointer.as_str()) else {
                continue;
            };
            if sealed_text(value).is_none() {
                continue;
            }
            match self
                .cipher()
                .open_value(value, &secret_aad(kind, id, pointer))
            {
                Ok(clear) => *value = clear,
                Err(OpenError::Authentication) => {
                    return Err(StateError::Decrypt {
                        tree: table.name.to_owned(),
                        key: id.to_owned(),
                        location: pointer.to_string(),
                    });
                }
                Err(OpenError::Malformed(reason)) => {
                    return Err(codec::corrupt(
                        table.name,
                        id.as_bytes(),
                        format!("secret at {pointer}: {reason}"),
                    ));
                }
            }
        }
        Ok(Entity {
            id: id.to_owned(),
            kind,
            doc,
            etag: stored.etag,
            version: stored.version,
            created_at_ms: stored.created_at_ms,
            updated_at_ms: stored.updated_at_ms,
            secret_pointers: stored.secrets,
        })
    }
}

fn redacted_entity(kind: EntityKind, id: &str, stored: StoredEntity) -> Entity {
    let mut doc = stored.doc;
    redact(&mut doc, &stored.secrets);
    Entity {
        id: id.to_owned(),
        kind,
        doc,
        etag: stored.etag,
        version: stored.version,
        created_at_ms: stored.created_at_ms,
        updated_at_ms: stored.updated_at_ms,
        secret_pointers: stored.secrets,
    }
}

fn redact(doc: &mut Value, secrets: &[JsonPointer]) {
    for pointer in secrets {
        if let Some(value) = doc.pointer_mut(pointer.as_str())
            && !value.is_null()
        {
            *value = Value::String(REDACTED.to_owned());
        }
    }
}

fn entity_id(table: &Table, key: &[u8]) -> Result<String, StateError> {
    String::from_utf8(key.to_vec())
        .map_err(|_| codec::corrupt(table.name, key, "the entity id is not UTF-8".to_owned()))
}

/// Binds a ciphertext to its entity and location.
fn secret_aad(kind: EntityKind, id: &str, pointer: &JsonPointer) -> Vec<u8> {
    format!("entity/{}/{id}{pointer}", kind.as_str()).into_bytes()
}

/// Accepts an etag as sent in `If-Match`: optionally weak (`W/`) and quoted.
fn normalize_etag(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(etag)
}
