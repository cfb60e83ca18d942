//! The Flow Service and Data Prep compatible HTTP API (axum): [`app`] builds the router of
//! every operation (the table in `openapi`, which also generates `/openapi.json`) over an
//! [`ApiState`] (state, the engine, the scheduler's [`FlowRegistry`], the accepted
//! credentials).
//!
//! Besides the Flow Service and Data Prep operations: `/metrics` ([`metrics`]: the process's
//! Prometheus recorder, open to scrapers or behind its own bearer token) and the operator page
//! at `/` with its paged JSON under `/ui/api/` ([`ui`]).
//!
//! Main items: [`app`], [`ApiState`], [`ApiAuth`] / [`OrgCredential`], [`Tenant`],
//! [`import_bundle`] (a `flows_dir` bundle as API entities), [`scheduled_flows`] (every flow
//! in state, for the scheduler at start) and [`cluster::follow_shared_state`] (the same answers
//! on every node of a shared state).
//!
//! Invariants: the only crate with HTTP-server wire types. It never returns, logs or stores a
//! secret in clear: secrets are sealed by the state crate at the pointers this crate names, and
//! only redacted documents are kept in memory or sent. A flow created over HTTP becomes the same
//! `FlowBundle` a bundle file gives (bundle JSON through `tributary_spec::load_bundle`), so files
//! and HTTP share one validation path.

// The OpenAPI document's schemas are one `json!` literal, deeper than the default limit.
#![recursion_limit = "512"]

pub mod cluster;
mod dataprep;
mod error;
mod explore;
mod flows;
mod flowservice;
mod http;
mod listing;
pub mod metrics;
mod openapi;
mod patch;
mod runs;
mod store;
pub mod ui;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use tokio::sync::Semaphore;
use tributary_engine::run::Engine;

pub use error::{ApiError, ErrorShape};
pub use flows::{import_bundle, remove_imported_flow, scheduled_flows};
pub use http::{ApiAuth, MAX_BODY_BYTES, OrgCredential, Tenant};
pub use openapi::document as openapi_document;
pub use store::{FLOW_SPEC_ID, TARGET_SPEC_ID};
pub use tributary_engine::daemon::FlowRegistry;

/// What every request handler shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) store: store::EntityStore,
    pub(crate) auth: ApiAuth,
    pub(crate) registry: FlowRegistry,
    pub(crate) scheduler_running: Arc<AtomicBool>,
    /// Ad hoc runs (`POST /runs`, re-trigger) at the same time, besides the scheduler's.
    pub(crate) adhoc_permits: Arc<Semaphore>,
    /// `/metrics` wants `Authorization: Bearer <this>` when set.
    pub(crate) metrics_bearer_token: Option<metrics::MetricsToken>,
    /// Other processes write the same entities (see [`ApiOptions::shared_state`]).
    pub(crate) shared_state: bool,
}

/// How to build an [`ApiState`].
#[derive(Clone)]
pub struct ApiOptions {
    pub auth: ApiAuth,
    /// Ad hoc runs at once.
    pub max_concurrent_runs: usize,
    /// `/metrics` wants `Authorization: Bearer <this>` when set (None: open, as scrapes are).
    pub metrics_bearer_token: Option<String>,
    /// Other processes (the nodes of a Postgres state) write the same entities: every API
    /// request first brings this process's view of them up to date.
    pub shared_state: bool,
}

impl std::fmt::Debug for ApiOptions {
    // The metrics token is a secret: only whether one is set is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("auth", &self.auth)
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field(
                "metrics_bearer_token_set",
                &self.metrics_bearer_token.is_some(),
            )
            .field("shared_state", &self.shared_state)
            .finish()
    }
}

impl ApiState {
    /// Loads the view of every entity in the engine's state.
    pub fn try_new(
        engine: Engine,
        registry: FlowRegistry,
        options: ApiOptions,
    ) -> anyhow::Result<ApiState> {
        let store = store::EntityStore::load(engine.db.clone())?;
        Ok(ApiState {
            inner: Arc::new(Inner {
                engine,
                store,
                auth: options.auth,
                registry,
                scheduler_running: Arc::new(AtomicBool::new(false)),
                adhoc_permits: Arc::new(Semaphore::new(options.max_concurrent_runs.max(1))),
                metrics_bearer_token: options
                    .metrics_bearer_token
                    .filter(|token| !token.is_empty())
                    .map(metrics::MetricsToken),
                shared_state: options.shared_state,
            }),
        })
    }

    /// The flag `/health` reports as the scheduler's; the daemon sets it while the loop runs.
    pub fn scheduler_flag(&self) -> Arc<AtomicBool> {
        self.inner.scheduler_running.clone()
    }

    pub fn set_scheduler_running(&self, running: bool) {
        self.inner
            .scheduler_running
            .store(running, Ordering::SeqCst);
    }

    /// Whether a flow with this id exists in the tenant.
    pub fn flow_exists(&self, tenant: &Tenant, flow_id: &tributary_state::FlowId) -> bool {
        self.inner
            .store
            .get(tributary_state::EntityKind::Flow, tenant, flow_id.as_str())
            .is_some()
    }

    /// The state the API writes to.
    pub fn db(&self) -> &tributary_state::Db {
        &self.inner.engine.db
    }

    pub fn registry(&self) -> &FlowRegistry {
        &self.inner.registry
    }

    pub(crate) fn store(&self) -> &store::EntityStore {
        &self.inner.store
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

/// The router of every operation, `/health` and `/openapi.json`.
pub fn app(state: ApiState) -> Router {
    openapi::router(state)
}
