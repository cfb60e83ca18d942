//! Datasets on object storage: an [`ObjectRoot`] is a `data_dir` that is an `s3://`, `az://` /
//! `abfss://` / `azure://` or `gs://` URL, reached through the `object_store` crate.
//!
//! The writer itself stays a filesystem writer. With an object-store root, the engine writes
//! and publishes each batch in a local spool (a [`DatasetLayout`] of its own, with every
//! invariant of a local dataset), and then mirrors the published batch to the store with the
//! same layout under the root's prefix:
//!
//! ```text
//! {root}/_staging/{stage}/{dataSetId}/batch={batchId}/part-00000.parquet   uploaded, unpublished
//! {root}/datasets/{dataSetId}/batch={batchId}/part-00000.parquet           committed data
//! {root}/datasets/{dataSetId}/_errors/batch={batchId}/part-00000.jsonl     rejected rows
//! {root}/datasets/{dataSetId}/_delta_log/00000000000000000000.json         a Delta table's log
//! ```
//!
//! Invariants:
//! - An object under `datasets/` is complete: it is uploaded whole to `_staging/{stage}/`
//!   (one PUT up to [`MULTIPART_THRESHOLD`], a multipart upload above it, which no reader sees
//!   until it completes) and then copied to its final key, a server-side copy that is all or
//!   nothing per object. A kill at any moment leaves at most a staged object or an unfinished
//!   multipart upload, never a partial part under `datasets/`.
//! - Object stores have no rename of a folder, so a plain-Parquet batch appears object by
//!   object: a reader listing `datasets/{id}/` while a batch is being copied may see some of its
//!   parts. A Delta table has no such moment: its parts are uploaded straight to their final
//!   keys (a part is not in the table until a commit adds it) and the commit — a put-if-absent
//!   of `_delta_log/NNNN.json` — publishes the batch atomically. Delta is therefore the
//!   documented format for datasets on object storage.
//! - Every step is idempotent (uploads and copies overwrite with the same bytes; deletes of a
//!   missing object succeed), so the engine's redo of an interrupted publish repairs it.
//! - `{stage}` names the writer (a node id), so a node cleaning its stray staged objects at start
//!   never touches another node's upload in progress.
//! - Credentials come from the environment (`AWS_*`, `AZURE_*`, `GOOGLE_*`, as each store's SDK
//!   reads them) or from the options given (the config's `[storage]`); neither is ever shown:
//!   [`ObjectRoot`]'s `Display` and `Debug` print the URL without user info or query.
//!
//! Calls are blocking (callers are on blocking threads, like the rest of this crate); they run on
//! a small IO runtime that the root owns, so the store's connection pool outlives each call.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::Path as FsPath;
use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};
use tracing::debug;
use url::Url;

use crate::{BatchId, DatasetId, WriteError};

/// Files up to this size are uploaded in one PUT; larger ones as a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
/// The size of each part of a multipart upload (S3 needs at least 5 MiB but for the last).
const MULTIPART_CHUNK: usize = 8 * 1024 * 1024;
/// Parts of one multipart upload in flight at once: bounds the memory of an upload to
/// `(MULTIPART_IN_FLIGHT + 1) × MULTIPART_CHUNK`.
const MULTIPART_IN_FLIGHT: usize = 2;

/// The URL schemes an object-store `data_dir` may have.
pub const OBJECT_SCHEMES: [&str; 5] = ["s3", "az", "azure", "abfss", "gs"];

/// Whether `data_dir` names an object store (`s3://…` and the other [`OBJECT_SCHEMES`]) rather
/// than a local folder.
pub fn is_object_url(data_dir: &str) -> bool {
    data_dir.split_once("://").is_some_and(|(scheme, _)| {
        OBJECT_SCHEMES
            .iter()
            .any(|known| scheme.eq_ignore_ascii_case(known))
    })
}

/// An object store that a local spool's published batches are mirrored to: the root, and the
/// name of this writer's staging folder in it.
#[derive(Debug)]
pub struct Mirror {
    pub root: ObjectRoot,
    /// A path component naming the writer (a node id); see the module header.
    pub stage: String,
}

impl Mirror {
    /// The mirror of `root` for the writer `stage` (made a safe path component).
    pub fn new(root: ObjectRoot, stage: &str) -> Self {
        let stage: String = stage
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stage = if stage.is_empty() || stage.starts_with('.') {
            format!("writer{stage}")
        } else {
            stage
        };
        Self { root, stage }
    }
}

/// A dataset root in an object store; see the module header.
pub struct ObjectRoot {
    store: Arc<dyn ObjectStore>,
    /// The URL as given, for Delta's table URLs (no secret: credentials never go in the URL).
    url: Url,
    /// The key prefix of the root inside its bucket or container.
    prefix: Path,
    runtime: tokio::runtime::Runtime,
    /// Values that must not appear in a message: the options given and the secret variables of
    /// the environment (a store's error may quote a request).
    secrets: Vec<String>,
}

/// Environment variables whose values are secrets of a store.
const SECRET_VARIABLES: [&str; 8] = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

impl ObjectRoot {
    /// Opens the root at `url` with the store's options from the environment, overridden by
    /// `options` (object_store's option names: `aws_endpoint`, `aws_allow_http`,
    /// `azure_storage_account_name`, ...). An unknown option is an error that names it.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self, WriteError> {
        let shown = redacted(url);
        let secrets: Vec<String> = options
            .iter()
            .filter(|(key, _)| is_secret_option(key))
            .map(|(_, value)| value.clone())
            .chain(
                SECRET_VARIABLES
                    .iter()
                    .filter_map(|name| std::env::var(name).ok()),
            )
            // A SAS token is a query string: its signature alone is the secret part a message
            // may quote, in any order of the parameters.
            .flat_map(|value| {
                let signatures: Vec<String> = value
                    .trim_start_matches('?')
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .filter(|(key, _)| matches!(*key, "sig" | "signature"))
                    .map(|(_, signature)| signature.to_owned())
                    .collect();
                std::iter::once(value).chain(signatures)
            })
            .filter(|value| value.len() >= 4)
            .collect();
        let invalid = |message: String| WriteError::ObjectStore {
            op: "opening",
            location: shown.clone(),
            message: scrubbed(&message, &secrets),
        };
        let parsed = Url::parse(url).map_err(|err| invalid(format!("not a URL: {err}")))?;
        if !parsed.username().is_empty() && parsed.scheme() != "abfss"
            || parsed.password().is_some()
        {
            return Err(invalid(
                "credentials in the URL are refused; give them in the environment or [storage]"
                    .to_owned(),
            ));
        }
        let scheme = parsed.scheme().to_ascii_lowercase();
        let store: Arc<dyn ObjectStore> = match scheme.as_str() {
            "s3" => {
                let builder = AmazonS3Builder::from_env().with_url(url);
                let builder = configured(builder, options, "S3", |b, k, v| b.with_config(k, v))
                    .map_err(invalid)?;
                Arc::new(builder.build().map_err(|err| invalid(err.to_string()))?)
            }
            "az" | "azure" | "abfss" => {
                let builder = MicrosoftAzureBuilder::from_env().with_url(url);
                let builder = configured(builder, options, "Azure", |b, k, v| b.with_config(k, v))
                    .map_err(invalid)?;
                Arc::new(builder.build().map_err(|err| invalid(err.to_string()))?)
            }
            "gs" => {
                let builder = GoogleCloudStorageBuilder::from_env().with_url(url);
                let builder = configured(builder, options, "GCS", |b, k, v| b.with_config(k, v))
                    .map_err(invalid)?;
                Arc::new(builder.build().map_err(|err| invalid(err.to_string()))?)
            }
            other => {
                return Err(invalid(format!(
                    "unsupported scheme {other:?}: expected one of {}",
                    OBJECT_SCHEMES.join(", ")
                )));
            }
        };
        // Never a silent fallback to the bucket's root: a path that does not parse is an error.
        let (_, prefix) = object_store::ObjectStoreScheme::parse(&parsed)
            .map_err(|err| invalid(format!("the path after the bucket or container: {err}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tributary-object-io")
            .enable_all()
            .build()
            .map_err(|err| invalid(format!("starting its IO runtime: {err}")))?;
        crate::delta::register_object_scheme(&scheme);
        Ok(Self {
            store,
            url: parsed,
            prefix,
            runtime,
            secrets,
        })
    }

    /// The store, rooted at its bucket or container (keys include [`Self::key`]'s prefix).
    pub(crate) fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The URL of a dataset's folder (a Delta table's location).
    pub(crate) fn dataset_url(&self, dataset: &DatasetId) -> Url {
        let mut url = self.url.clone();
        url.set_query(None);
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/datasets/{}", dataset.as_str()));
        url
    }

    /// Runs `future` on the root's IO runtime, blocking the calling thread.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The key of `relative` (a `/`-separated path under the root).
    fn key(&self, relative: &str) -> Path {
        let mut key = self.prefix.clone();
        for part in relative.split('/').filter(|part| !part.is_empty()) {
            key = key.join(part);
        }
        key
    }

    /// `message` with URL queries and this store's secrets cut out, fit to show.
    pub(crate) fn scrubbed(&self, message: &str) -> String {
        scrubbed(message, &self.secrets)
    }

    fn error(&self, op: &'static str, key: &Path, err: impl fmt::Display) -> WriteError {
        WriteError::ObjectStore {
            op,
            location: format!("{}/{}", self.shown_base(), key),
            message: self.scrubbed(&err.to_string()),
        }
    }

    fn shown_base(&self) -> String {
        format!(
            "{}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or_default()
        )
    }

    /// Uploads the local file `local` to `relative`, whole: one PUT when it is small, a multipart
    /// upload (aborted on failure) otherwise. Returns the bytes uploaded.
    pub fn upload(&self, local: &FsPath, relative: &str) -> Result<u64, WriteError> {
        let key = self.key(relative);
        let mut file = std::fs::File::open(local)
            .map_err(|err| WriteError::io("opening for upload", local, err))?;
        let size = file
            .metadata()
            .map_err(|err| WriteError::io("reading metadata of", local, err))?
            .len();
        if size <= MULTIPART_THRESHOLD as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)
                .map_err(|err| WriteError::io("reading for upload", local, err))?;
            self.block_on(self.store.put(&key, PutPayload::from(bytes)))
                .map_err(|err| self.error("uploading to", &key, err))?;
            return Ok(size);
        }
        self.block_on(async {
            let upload = self
                .store
                .put_multipart(&key)
                .await
                .map_err(|err| self.error("starting a multipart upload of", &key, err))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
            let mut chunk = vec![0u8; MULTIPART_CHUNK];
            loop {
                let read = match file.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(err) => {
                        let _ = writer.abort().await;
                        return Err(WriteError::io("reading for upload", local, err));
                    }
                };
                if let Err(err) = writer.wait_for_capacity(MULTIPART_IN_FLIGHT).await {
                    let _ = writer.abort().await;
                    return Err(self.error("uploading a part of", &key, err));
                }
                writer.write(&chunk[..read]);
            }
            writer
                .finish()
                .await
                .map_err(|err| self.error("completing the multipart upload of", &key, err))?;
            Ok(size)
        })
    }

    /// Copies `from` to `to` inside the store (server side).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), WriteError> {
        let (from, to) = (self.key(from), self.key(to));
        self.block_on(self.store.copy(&from, &to))
            .map_err(|err| self.error("copying to", &to, err))
    }

    /// Deletes `relative`; a missing object is not an error.
    pub fn delete(&self, relative: &str) -> Result<(), WriteError> {
        let key = self.key(relative);
        match self.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(self.error("deleting", &key, err)),
        }
    }

    /// The keys under the folder `relative`, relative to the root, in key order.
    pub fn list(&self, relative: &str) -> Result<Vec<String>, WriteError> {
        let prefix = self.key(relative);
        let listed: Vec<_> = self
            .block_on(self.store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .map_err(|err| self.error("listing", &prefix, err))?;
        let base = self.prefix.as_ref().len();
        let mut keys: Vec<String> = listed
            .into_iter()
            .map(|meta| {
                let key = meta.location.as_ref();
                key[base..].trim_start_matches('/').to_owned()
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Deletes every object under the folder `relative`; returns how many.
    pub fn delete_folder(&self, relative: &str) -> Result<u64, WriteError> {
        let keys = self.list(relative)?;
        for key in &keys {
            self.delete(key)?;
        }
        Ok(keys.len() as u64)
    }

    /// Whether anything is stored under the folder `relative`.
    pub fn folder_exists(&self, relative: &str) -> Result<bool, WriteError> {
        let prefix = self.key(relative);
        let first = self.block_on(async {
            let mut listing = self.store.list(Some(&prefix));
            listing.try_next().await
        });
        first
            .map(|meta| meta.is_some())
            .map_err(|err| self.error("listing", &prefix, err))
    }

    /// The `batch=…` folders directly under a dataset's folder.
    pub fn has_batches(&self, dataset: &DatasetId) -> Result<bool, WriteError> {
        let prefix = self.key(&format!("datasets/{}", dataset.as_str()));
        let listed = self
            .block_on(self.store.list_with_delimiter(Some(&prefix)))
            .map_err(|err| self.error("listing", &prefix, err))?;
        Ok(listed.common_prefixes.iter().any(|folder| {
            folder
                .filename()
                .is_some_and(|name| name.starts_with("batch="))
        }))
    }

    /// Publishes the files of one published local folder (`local_dir`, holding `names`) to the
    /// folder `relative` of the store: each is uploaded to `_staging/{stage}/…`, copied to its
    /// final key and its staged copy deleted. With `direct` (a Delta table's parts, which no
    /// reader sees before the commit), each is uploaded straight to its final key. Returns the
    /// bytes uploaded.
    pub fn publish_folder(
        &self,
        local_dir: &FsPath,
        names: &[String],
        relative: &str,
        stage: &str,
        direct: bool,
    ) -> Result<u64, WriteError> {
        let mut bytes = 0;
        for name in names {
            let local = local_dir.join(name);
            let target = format!("{relative}/{name}");
            if direct {
                bytes += self.upload(&local, &target)?;
                continue;
            }
            let staged = format!("_staging/{stage}/{target}");
            bytes += self.upload(&local, &staged)?;
            crate::crash_point("object-staged");
            self.copy(&staged, &target)?;
            self.delete(&staged)?;
        }
        debug!(root = %self, folder = relative, files = names.len(), bytes, "published to the object store");
        Ok(bytes)
    }

    /// The folder of a batch's data, relative to the root.
    pub fn batch_folder(dataset: &DatasetId, batch: &BatchId) -> String {
        format!("datasets/{}/batch={}", dataset.as_str(), batch.as_str())
    }

    /// The folder of a batch's rejected rows, relative to the root.
    pub fn errors_folder(dataset: &DatasetId, batch: &BatchId) -> String {
        format!(
            "datasets/{}/_errors/batch={}",
            dataset.as_str(),
            batch.as_str()
        )
    }

    /// Deletes a batch's data and rejected rows (a rerun replaced it): object by object, so a
    /// reader may see part of it go; see the module header.
    pub fn remove_batch(&self, dataset: &DatasetId, batch: &BatchId) -> Result<u64, WriteError> {
        Ok(self.delete_folder(&Self::batch_folder(dataset, batch))?
            + self.delete_folder(&Self::errors_folder(dataset, batch))?)
    }

    /// Deletes what `stage` left in `_staging/` (uploads of a process that was killed between
    /// upload and copy); returns how many objects.
    pub fn clean_staging(&self, stage: &str) -> Result<u64, WriteError> {
        self.delete_folder(&format!("_staging/{stage}"))
    }
}

/// Applies `options` to a store's builder, each key parsed as that store's config key (`K`); an
/// unknown key is an error naming it and the store.
fn configured<B, K: std::str::FromStr>(
    mut builder: B,
    options: &BTreeMap<String, String>,
    store: &str,
    with: impl Fn(B, K, &str) -> B,
) -> Result<B, String> {
    for (key, value) in options {
        let parsed = key
            .parse()
            .map_err(|_| format!("unknown {store} option {key:?}"))?;
        builder = with(builder, parsed, value);
    }
    Ok(builder)
}

impl fmt::Display for ObjectRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redacted(self.url.as_str()))
    }
}

impl fmt::Debug for ObjectRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRoot")
            .field("url", &redacted(self.url.as_str()))
            .finish_non_exhaustive()
    }
}

/// Whether an option's value is a secret (keys, tokens, passwords, SAS, service-account JSON).
fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "key",
        "secret",
        "token",
        "sas",
        "password",
        "credential",
        "service_account",
    ]
    .iter()
    .any(|word| key.contains(word))
        && !key.ends_with("_key_id")
        && key != "aws_access_key_id"
}

/// `message` with the query of every URL in it cut (a SAS token travels there) and every one of
/// `secrets` replaced by `***`.
fn scrubbed(message: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("http://").or_else(|| rest.find("https://")) {
        let url_len = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ','))
            .unwrap_or(rest.len() - start);
        let url = &rest[start..start + url_len];
        out.push_str(&rest[..start]);
        match url.find('?') {
            Some(query) => {
                out.push_str(&url[..query]);
                out.push_str("?<query hidden>");
            }
            None => out.push_str(url),
        }
        rest = &rest[start + url_len..];
    }
    out.push_str(rest);
    for secret in secrets {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// A `data_dir` as it may be shown: a local path as is, an object-store URL [`redacted`].
pub fn redacted_location(data_dir: &str) -> String {
    if is_object_url(data_dir) {
        redacted(data_dir)
    } else {
        data_dir.to_owned()
    }
}

/// `url` without user info and query (where a SAS token or key could be).
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            if parsed.scheme() != "abfss" {
                let _ = parsed.set_username("");
            }
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "<an unparsable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_urls_are_told_from_local_paths() {
        for url in [
            "s3://b/p",
            "S3://b",
            "az://c/p",
            "abfss://c@a.dfs.core.windows.net/p",
            "gs://b",
        ] {
            assert!(is_object_url(url), "{url}");
        }
        for path in [
            "./data",
            "/var/data",
            "data/s3://x",
            "file:///tmp/x",
            "http://h/p",
        ] {
            assert!(!is_object_url(path), "{path}");
        }
    }

    #[test]
    fn a_shown_url_has_no_secret() {
        assert_eq!(
            redacted("az://container/prefix?sig=SECRET&se=2030"),
            "az://container/prefix"
        );
        assert!(!redacted("s3://user:SECRET@bucket/p").contains("SECRET"));
    }

    #[test]
    fn a_store_message_loses_url_queries_and_secrets() {
        let message =
            "Error performing PUT http://127.0.0.1:1/acct/c/k?sv=1&sig=SAS (key KEY123): 403";
        let shown = scrubbed(message, &["KEY123".to_owned()]);
        assert_eq!(
            shown,
            "Error performing PUT http://127.0.0.1:1/acct/c/k?<query hidden> (key ***): 403"
        );
    }

    #[test]
    fn an_unknown_option_is_named() {
        let options = BTreeMap::from([("aws_endpoit".to_owned(), "http://h".to_owned())]);
        let err = ObjectRoot::open("s3://bucket/prefix", &options).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown S3 option \"aws_endpoit\""),
            "{err}"
        );
        let err = ObjectRoot::open("s3://user:pw@bucket/prefix", &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("credentials in the URL are refused"),
            "{err}"
        );
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn keys_and_table_urls_keep_the_prefix() {
        let options = BTreeMap::from([("aws_region".to_owned(), "us-east-1".to_owned())]);
        let root = ObjectRoot::open("s3://bucket/lake/raw", &options).unwrap();
        assert_eq!(
            root.key("datasets/d/batch=b/part-00000.parquet").as_ref(),
            "lake/raw/datasets/d/batch=b/part-00000.parquet"
        );
        let dataset = DatasetId::try_new("d").unwrap();
        assert_eq!(
            root.dataset_url(&dataset).as_str(),
            "s3://bucket/lake/raw/datasets/d"
        );
    }
}
