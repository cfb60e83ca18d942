//! The entities of the API over the state crate's entity tables: tenancy, server fields,
//! built-in documents and an in-memory view for listing.
//!
//! Each document is stored under `{org}\0{sandbox}\0{id}`, so the same id (the built-in flow spec
//! that every provider appends to) can exist once per tenant and nothing is visible across
//! tenants. Secrets are sealed by the state crate at the pointers given with each write; the
//! view kept here holds only redacted documents, rendered with their server fields, so a list
//! of ten thousand flows is filtered without touching sled. Every write of this process goes
//! through this store, which keeps the view exact for a state the process holds alone. On a
//! shared state other nodes write too: the view carries the state's entities epoch it reflects,
//! a write of ours advances it only when ours was the one write since (the epoch read after it
//! is one more), and [`EntityStore::sync_with_state`] (before every API request, and the
//! daemon's poll in `crate::cluster`) reloads the view when the epoch moved otherwise. Writes
//! are serialised by
//! [`EntityStore::write_lock`] so cross-entity checks (a connection still used by a flow) and
//! the write they guard happen atomically.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use tributary_state::{Db, Entity, EntityKind, JsonPointer, StateError, next_entities_epoch};

use crate::error::{ApiError, ApiResult};
use crate::http::{Tenant, quoted_etag};

/// The built-in flow spec every batch SSS source is appended to.
pub const FLOW_SPEC_ID: &str = tributary_spec::REST_STORAGE_TO_AEP_FLOW_SPEC_ID;
/// The built-in "Data Lake" target connection spec.
pub const TARGET_SPEC_ID: &str = tributary_spec::DATA_LAKE_TARGET_SPEC_ID;
pub const PROVIDER_ID: &str = tributary_spec::GENERIC_REST_PROVIDER_ID;

/// Fields the server sets on every Flow Service entity; in a request body they are ignored.
pub const SERVER_FIELDS: [&str; 13] = [
    "id",
    "createdAt",
    "updatedAt",
    "createdBy",
    "updatedBy",
    "createdClient",
    "updatedClient",
    "sandboxId",
    "sandboxName",
    "imsOrgId",
    "etag",
    "eTag",
    "version",
];

/// One document as the API shows it, with what a conditional write needs.
#[derive(Debug, Clone)]
pub struct Cached {
    pub view: Arc<Value>,
    /// Unquoted.
    pub etag: String,
    pub created_at_ms: i64,
    pub is_builtin: bool,
}

/// Who writes: the API, or the daemon loading `flows_dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Api,
    Bundle,
}

#[derive(Debug)]
pub struct EntityStore {
    db: Db,
    view: RwLock<View>,
    /// The state's entities epoch that `view` reflects (every write up to it is in the view).
    /// Held while the view changes, so that the view and its epoch always go together.
    epoch: Mutex<Option<u64>>,
    /// Held by the one reload at a time.
    reloading: Mutex<()>,
    write_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct View {
    collections: HashMap<(EntityKind, Tenant), Collection>,
    /// Which tenant owns an id (flows, for runs).
    owners: HashMap<(EntityKind, String), Tenant>,
}

#[derive(Debug, Default)]
struct Collection {
    by_id: HashMap<String, Cached>,
    /// (createdAt, id) → view: the default order (newest first when reversed).
    ordered: BTreeMap<(i64, String), Arc<Value>>,
}

impl EntityStore {
    /// Opens the view over everything in state.
    pub fn load(db: Db) -> Result<EntityStore, StateError> {
        // The epoch first: a write landing while the view is read moves it again.
        let epoch = db.entities_epoch()?;
        let view = read_view_from(&db)?;
        Ok(EntityStore {
            db,
            view: RwLock::new(view),
            epoch: Mutex::new(epoch),
            reloading: Mutex::new(()),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Brings the view up to date with a state other processes write too (the nodes of a
    /// shared state): when the state's entities epoch is not the view's, the view is read
    /// again, so what any node created, changed or deleted before this call is visible after
    /// it. One read of the epoch when nothing changed. Blocking.
    pub fn sync_with_state(&self) -> Result<(), StateError> {
        let current = self.db.entities_epoch()?;
        if *self.lock_epoch() == current {
            return Ok(());
        }
        let _one_reload = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The epoch first: a write landing while the view is read moves it again.
        let epoch = self.db.entities_epoch()?;
        if *self.lock_epoch() == epoch {
            // Another request's reload got there while this one waited.
            return Ok(());
        }
        let view = read_view_from(&self.db)?;
        let mut seen = self.lock_epoch();
        *self.write_view() = view;
        *seen = epoch;
        Ok(())
    }

    /// Serialises writes that check other entities first.
    pub async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    /// One document (redacted) of a tenant, built-ins included.
    pub fn get(&self, kind: EntityKind, tenant: &Tenant, id: &str) -> Option<Cached> {
        let view = self.read_view();
        if let Some(cached) = view
            .collections
            .get(&(kind, tenant.clone()))
            .and_then(|collection| collection.by_id.get(id))
        {
            return Some(cached.clone());
        }
        builtin(kind, id).map(|doc| builtin_cached(kind, tenant, doc))
    }

    /// Every document of a tenant's collection, newest first, built-ins last.
    pub fn list(&self, kind: EntityKind, tenant: &Tenant) -> Vec<Arc<Value>> {
        let view = self.read_view();
        let mut docs: Vec<Arc<Value>> = Vec::new();
        let collection = view.collections.get(&(kind, tenant.clone()));
        if let Some(collection) = collection {
            docs.extend(collection.ordered.values().rev().cloned());
        }
        for (id, doc) in builtins(kind) {
            let is_overridden = collection.is_some_and(|c| c.by_id.contains_key(id));
            if !is_overridden {
                docs.push(builtin_cached(kind, tenant, doc).view);
            }
        }
        docs
    }

    /// Calls `read` with the documents of [`EntityStore::list`] in the same order, read in place
    /// under the view's lock instead of copied out: a page of a large collection costs the
    /// documents it reads, not one handle per document of the collection.
    pub fn read_list<R>(
        &self,
        kind: EntityKind,
        tenant: &Tenant,
        read: impl FnOnce(&mut dyn Iterator<Item = &Value>) -> R,
    ) -> R {
        let view = self.read_view();
        let collection = view.collections.get(&(kind, tenant.clone()));
        let builtins: Vec<Arc<Value>> = builtins(kind)
            .into_iter()
            .filter(|(id, _)| !collection.is_some_and(|c| c.by_id.contains_key(*id)))
            .map(|(_, doc)| builtin_cached(kind, tenant, doc).view)
            .collect();
        let mut docs = collection
            .into_iter()
            .flat_map(|collection| collection.ordered.values().rev())
            .map(|doc| &**doc)
            .chain(builtins.iter().map(|doc| &**doc));
        read(&mut docs)
    }

    /// Every (tenant, id) of a kind, across tenants.
    pub fn all_ids(&self, kind: EntityKind) -> Vec<(Tenant, String)> {
        let view = self.read_view();
        let mut ids = Vec::new();
        for ((collection_kind, tenant), collection) in &view.collections {
            if *collection_kind == kind {
                ids.extend(
                    collection
                        .by_id
                        .keys()
                        .map(|id| (tenant.clone(), id.clone())),
                );
            }
        }
        ids.sort();
        ids
    }

    /// The tenant that owns an id of a kind (flows, for runs).
    pub fn owner(&self, kind: EntityKind, id: &str) -> Option<Tenant> {
        self.read_view().owners.get(&(kind, id.to_owned())).cloned()
    }

    /// One document with its secrets in clear (for building a flow's bundle; never sent).
    pub fn clear(&self, kind: EntityKind, tenant: &Tenant, id: &str) -> ApiResult<Option<Value>> {
        match self.db.entity(kind, &key(tenant, id))? {
            Some(entity) => Ok(Some(entity.doc)),
            None => Ok(builtin(kind, id)),
        }
    }

    /// Creates or replaces a document; with `expected_etag` only if it still has that etag
    /// (412 `FLOW-1404-412` otherwise). Durable when it returns: the write and a flush of state
    /// run on a blocking thread, so the answer that follows never names a write a crash could
    /// lose, and the async caller is never blocked on the disk.
    pub async fn put(
        &self,
        kind: EntityKind,
        tenant: &Tenant,
        id: &str,
        doc: Value,
        secrets: &[JsonPointer],
        expected_etag: Option<&str>,
    ) -> ApiResult<Cached> {
        let db = self.db.clone();
        let stored_key = key(tenant, id);
        let secrets = secrets.to_vec();
        let expected_etag = expected_etag.map(str::to_owned);
        let (written, epoch) = tokio::task::spawn_blocking(move || {
            let entity = db.put_entity(kind, &stored_key, doc, &secrets, expected_etag.as_deref());
            if entity.is_ok() {
                db.flush()?;
                return Ok((entity, db.entities_epoch()));
            }
            Ok::<_, StateError>((entity, Ok(None)))
        })
        .await
        .map_err(|err| ApiError::internal("writing an entity", err))??;
        self.cache_written(kind, tenant, id, written, epoch)
    }

    /// Like [`EntityStore::put`] on the calling thread and without the flush: for the import of
    /// a flow bundle, which writes several documents and then calls [`EntityStore::flush`].
    pub fn put_unflushed(
        &self,
        kind: EntityKind,
        tenant: &Tenant,
        id: &str,
        doc: Value,
        secrets: &[JsonPointer],
        expected_etag: Option<&str>,
    ) -> ApiResult<Cached> {
        let written = self
            .db
            .put_entity(kind, &key(tenant, id), doc, secrets, expected_etag);
        let epoch = match written {
            Ok(_) => self.db.entities_epoch(),
            Err(_) => Ok(None),
        };
        self.cache_written(kind, tenant, id, written, epoch)
    }

    /// Deletes a document, durably (as [`EntityStore::put`]); false when it did not exist.
    pub async fn delete(&self, kind: EntityKind, tenant: &Tenant, id: &str) -> ApiResult<bool> {
        let db = self.db.clone();
        let stored_key = key(tenant, id);
        let (existed, epoch) = tokio::task::spawn_blocking(move || {
            let existed = db.delete_entity(kind, &stored_key, None)?;
            db.flush()?;
            Ok::<_, StateError>((existed, db.entities_epoch()))
        })
        .await
        .map_err(|err| ApiError::internal("deleting an entity", err))??;
        self.change_view(existed, epoch, |view| view.remove(kind, tenant, id));
        Ok(existed)
    }

    /// Like [`EntityStore::delete`] on the calling thread and without the flush.
    pub fn delete_unflushed(&self, kind: EntityKind, tenant: &Tenant, id: &str) -> ApiResult<bool> {
        let existed = self.db.delete_entity(kind, &key(tenant, id), None)?;
        let epoch = self.db.entities_epoch();
        self.change_view(existed, epoch, |view| view.remove(kind, tenant, id));
        Ok(existed)
    }

    /// Makes the unflushed writes durable.
    pub fn flush(&self) -> ApiResult<()> {
        self.db.flush()?;
        Ok(())
    }

    fn cache_written(
        &self,
        kind: EntityKind,
        tenant: &Tenant,
        id: &str,
        written: Result<Entity, StateError>,
        epoch: Result<Option<u64>, StateError>,
    ) -> ApiResult<Cached> {
        let entity = match written {
            Ok(entity) => entity,
            Err(StateError::EtagMismatch { .. }) => {
                return Err(ApiError::flow(
                    StatusCode::PRECONDITION_FAILED,
                    1404,
                    "Precondition failed",
                    format!(
                        "the supplied version does not match the current version of {kind} {id}"
                    ),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        let redacted = Entity {
            doc: entity.redacted_doc(),
            ..entity
        };
        let cached = render(kind, tenant, id, &redacted);
        self.change_view(true, epoch, |view| {
            view.insert(kind, tenant.clone(), id.to_owned(), cached.clone());
        });
        Ok(cached)
    }

    /// Applies this process's own write to the view. `epoch` is the state's entities epoch read
    /// after the write (if it `moved` the epoch): one more than the view's means no other write
    /// came between, so the view with this one applied reflects the new epoch; anything else
    /// leaves the view's epoch behind for [`EntityStore::sync_with_state`] to reload.
    fn change_view(
        &self,
        moved: bool,
        epoch: Result<Option<u64>, StateError>,
        change: impl FnOnce(&mut View),
    ) {
        let mut seen = self.lock_epoch();
        change(&mut self.write_view());
        if let Ok(Some(epoch)) = epoch
            && moved
            && epoch == next_entities_epoch(*seen)
        {
            *seen = Some(epoch);
        }
    }

    fn lock_epoch(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        // A panic while holding it leaves a consistent pair: the epoch only moves forward
        // after the change is applied.
        self.epoch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        // A panic while holding the lock leaves the maps consistent (inserts are single calls).
        self.view
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_view(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Every entity in state, rendered.
fn read_view_from(db: &Db) -> Result<View, StateError> {
    let mut view = View::default();
    for kind in EntityKind::ALL {
        for entity in db.list_entities_redacted(kind)? {
            let Some((tenant, id)) = split_key(&entity.id) else {
                // Written by something else than the API (no tenant): not visible here.
                continue;
            };
            let cached = render(kind, &tenant, &id, &entity);
            view.insert(kind, tenant, id, cached);
        }
    }
    Ok(view)
}

impl View {
    fn insert(&mut self, kind: EntityKind, tenant: Tenant, id: String, cached: Cached) {
        self.owners.insert((kind, id.clone()), tenant.clone());
        let collection = self.collections.entry((kind, tenant)).or_default();
        if let Some(old) = collection.by_id.remove(&id) {
            collection.ordered.remove(&(old.created_at_ms, id.clone()));
        }
        collection
            .ordered
            .insert((cached.created_at_ms, id.clone()), cached.view.clone());
        collection.by_id.insert(id, cached);
    }

    fn remove(&mut self, kind: EntityKind, tenant: &Tenant, id: &str) {
        self.owners.remove(&(kind, id.to_owned()));
        if let Some(collection) = self.collections.get_mut(&(kind, tenant.clone()))
            && let Some(old) = collection.by_id.remove(id)
        {
            collection
                .ordered
                .remove(&(old.created_at_ms, id.to_owned()));
        }
    }
}

/// The storage key of a tenant's document.
pub fn key(tenant: &Tenant, id: &str) -> String {
    format!("{}\0{}\0{id}", tenant.org, tenant.sandbox)
}

fn split_key(stored: &str) -> Option<(Tenant, String)> {
    let mut parts = stored.splitn(3, '\0');
    let org = parts.next()?;
    let sandbox = parts.next()?;
    let id = parts.next()?;
    Some((
        Tenant {
            org: org.to_owned(),
            sandbox: sandbox.to_owned(),
        },
        id.to_owned(),
    ))
}

/// A stable id for a sandbox (the reference shows a `sandboxId` next to `sandboxName`).
pub fn sandbox_id(tenant: &Tenant) -> String {
    let namespace = uuid::Uuid::from_u128(0x5d1f_0b7a_3c2e_4d9f_8a61_7e4b_2c90_1f3d);
    uuid::Uuid::new_v5(
        &namespace,
        format!("{}\0{}", tenant.org, tenant.sandbox).as_bytes(),
    )
    .to_string()
}

/// Whether a kind's `version` is the entity's etag (Flow Service entities) rather than a
/// version of the document's own (specs: `"1.0"`; mapping sets: 0, 1, ...).
pub fn version_is_etag(kind: EntityKind) -> bool {
    matches!(
        kind,
        EntityKind::Connection
            | EntityKind::SourceConnection
            | EntityKind::TargetConnection
            | EntityKind::Flow
    )
}

/// The document as the API shows it: `id` first, the stored fields, then the server fields.
fn render(kind: EntityKind, tenant: &Tenant, id: &str, entity: &Entity) -> Cached {
    let mut view = Map::new();
    view.insert("id".to_owned(), Value::String(id.to_owned()));
    if let Value::Object(doc) = &entity.doc {
        for (field, value) in doc {
            if field == "id" || field.starts_with('_') {
                continue;
            }
            view.insert(field.clone(), value.clone());
        }
    }
    let etag = quoted_etag(&entity.etag);
    if kind == EntityKind::MappingSet {
        view.insert("createdDate".to_owned(), Value::from(entity.created_at_ms));
        view.insert("modifiedDate".to_owned(), Value::from(entity.updated_at_ms));
    } else {
        view.insert("createdAt".to_owned(), Value::from(entity.created_at_ms));
        view.insert("updatedAt".to_owned(), Value::from(entity.updated_at_ms));
        view.insert("sandboxId".to_owned(), Value::String(sandbox_id(tenant)));
        view.insert(
            "sandboxName".to_owned(),
            Value::String(tenant.sandbox.clone()),
        );
        view.insert("imsOrgId".to_owned(), Value::String(tenant.org.clone()));
        if version_is_etag(kind) {
            view.insert("version".to_owned(), Value::String(etag.clone()));
        }
        view.insert("etag".to_owned(), Value::String(etag));
    }
    Cached {
        view: Arc::new(Value::Object(view)),
        etag: entity.etag.clone(),
        created_at_ms: entity.created_at_ms,
        is_builtin: false,
    }
}

/// `createdBy` / `createdClient` of a new document.
pub fn audit_fields(doc: &mut Map<String, Value>, writer: Writer, is_create: bool) {
    let (user, client) = match writer {
        Writer::Api => ("tributary-api@AdobeID", "tributary-api"),
        Writer::Bundle => ("flows_dir@tributary", "tributary-bundle"),
    };
    if is_create || !doc.contains_key("createdBy") {
        doc.insert("createdBy".to_owned(), Value::String(user.to_owned()));
        doc.insert("createdClient".to_owned(), Value::String(client.to_owned()));
    }
    doc.insert("updatedBy".to_owned(), Value::String(user.to_owned()));
    doc.insert("updatedClient".to_owned(), Value::String(client.to_owned()));
}

/// The built-in documents of a kind.
fn builtins(kind: EntityKind) -> Vec<(&'static str, Value)> {
    match kind {
        EntityKind::FlowSpec => vec![(FLOW_SPEC_ID, rest_storage_to_aep())],
        EntityKind::ConnectionSpec => vec![(TARGET_SPEC_ID, data_lake_spec())],
        _ => Vec::new(),
    }
}

pub fn builtin(kind: EntityKind, id: &str) -> Option<Value> {
    builtins(kind)
        .into_iter()
        .find(|(builtin_id, _)| *builtin_id == id)
        .map(|(_, doc)| doc)
}

fn builtin_cached(kind: EntityKind, tenant: &Tenant, doc: Value) -> Cached {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let entity = Entity {
        id: id.clone(),
        kind,
        doc,
        etag: format!("builtin-{id}"),
        version: 0,
        created_at_ms: 0,
        updated_at_ms: 0,
        secret_pointers: Vec::new(),
    };
    Cached {
        is_builtin: true,
        ..render(kind, tenant, &id, &entity)
    }
}

fn permissions_info() -> Value {
    json!({
        "manage": [{"@type": "lowLevel", "name": "EnterpriseSource", "permissions": ["write"]}],
        "view": [{"@type": "lowLevel", "name": "EnterpriseSource", "permissions": ["read"]}],
    })
}

/// The flow spec `RestStorageToAEP` as the reference (§4) describes it.
pub fn rest_storage_to_aep() -> Value {
    json!({
        "id": FLOW_SPEC_ID,
        "name": "RestStorageToAEP",
        "providerId": PROVIDER_ID,
        "version": "1.0",
        "attributes": {"notification": {"category": "sources", "flowRun": {"enabled": true}}},
        "permissionsInfo": permissions_info(),
        "sourceConnectionSpecIds": [],
        "targetConnectionSpecIds": [TARGET_SPEC_ID],
        "optionSpec": {
            "name": "OptionSpec",
            "spec": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "errorDiagnosticsEnabled": {"type": "boolean", "default": false},
                    "partialIngestionPercent": {"type": "number", "exclusiveMinimum": 0}
                }
            }
        },
        "transformationSpecs": [{
            "name": "Mapping",
            "spec": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "mappingId": {"type": "string"},
                    "mappingVersion": {"type": "string"}
                }
            }
        }],
        "scheduleSpec": {
            "name": "PeriodicSchedule",
            "type": "Periodic",
            "spec": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "startTime": {"type": "integer", "description": "epoch seconds"},
                    "frequency": {"type": "string", "enum": ["once", "minute", "hour", "day", "week"]},
                    "interval": {"type": "integer"},
                    "backfill": {"type": "boolean", "default": true}
                },
                "required": ["startTime", "frequency"],
                "if": {"properties": {"frequency": {"const": "once"}}},
                "then": {"allOf": [{"not": {"required": ["interval"]}}, {"not": {"required": ["backfill"]}}]},
                "else": {
                    "required": ["interval"],
                    "if": {"properties": {"frequency": {"const": "minute"}}},
                    "then": {"properties": {"interval": {"minimum": 15}}},
                    "else": {"properties": {"interval": {"minimum": 1}}}
                }
            }
        }
    })
}

/// The target connection spec "Data Lake": a dataset folder of Parquet batches.
pub fn data_lake_spec() -> Value {
    json!({
        "id": TARGET_SPEC_ID,
        "name": "Data Lake",
        "type": "dataLake",
        "providerId": "521eee4d-8cbe-4906-bb48-fb6bd4450033",
        "version": "1.0",
        "description": "The data lake: each run writes one batch of Parquet files into the dataset params.dataSetId",
        "attributes": {"isSource": false, "isDestination": true, "category": "database"},
        "permissionsInfo": permissions_info(),
        "targetSpec": {
            "name": "Data Lake",
            "type": "Dataset",
            "spec": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"dataSetId": {"type": "string"}},
                "required": ["dataSetId"]
            }
        }
    })
}
