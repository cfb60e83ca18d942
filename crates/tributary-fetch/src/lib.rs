//! The paginating REST fetcher: turns a validated connection spec, its connection params and a
//! schedule window into a bounded stream of pages of records.
//!
//! Main items: [`fetch_pages`] runs a [`FetchPlan`] (rendered request, pagination, record
//! selector, [`Auth`], window, resume [`Position`]) in a [`FetchContext`] (HTTP client,
//! [`Limiters`], [`AuthRegistry`], [`FetchSettings`], an optional [`MemoryBudget`] for pages)
//! and yields [`FetchEvent`]s through a bounded channel: the [`Page`]s in order, then exactly
//! one [`FetchEnd`] (or one error). The pieces are public for the engine, the API and benches:
//! [`RecordSelector`] (byte-level record locator), [`headers`] (Retry-After, rate-limit
//! fields, Link), [`RetryPolicy`], [`test_connection`].
//!
//! Invariants: knows HTTP, not Arrow or sled. Never logs, prints or formats a secret: every
//! credential is a [`Secret`], every message goes through a [`Redactor`], and no credential is
//! sent to an origin other than the spec's (redirects and next-page URLs included). No
//! arithmetic on a value from the API is unchecked, and no wait it asks for is longer than
//! [`FetchSettings::max_wait`]. A context's limiters and OAuth2 grants are shared by every run
//! that uses it, so the rate and the refreshes hold for the process, not per run.

mod auth;
mod budget;
mod concurrency;
mod drive;
mod error;
pub mod headers;
mod limit;
mod page;
mod plan;
mod records;
mod request;
mod retry;
mod scan;
mod secret;
mod send;

pub use auth::{
    Auth, AuthRegistry, ConnectionCheck, RotatedTokens, TokenCallback, test_connection,
};
pub use budget::{BudgetPermit, MemoryBudget};
pub use concurrency::{ConcurrencyStats, DEFAULT_CONCURRENCY_CEILING, GrowthStop};
pub use drive::fetch_pages;
pub use error::{BODY_HEAD_BYTES, ErrorCause, FetchError, NOT_JSON_HEAD_CHARS, Redactor};
pub use limit::{ACTIVE_FOR, CredentialFingerprint, HostLimiter, Limiters, OriginShare, RateQuota};
pub use page::{
    FetchCounters, FetchEnd, FetchEvent, FetchRun, FetchStats, NextPage, Page, Position,
    WindowPosition,
};
pub use plan::{DEFAULT_MAX_WAIT, FetchContext, FetchPlan, FetchSettings, USER_AGENT, http_client};
pub use records::{
    AttrFilter, Envelope, ExplodeSelector, LocatedRecords, RecordPath, RecordSelector,
};
pub use request::{BaseRequest, RenderInputs, origin_of, render_base_request};
pub use retry::RetryPolicy;
pub use secret::Secret;
