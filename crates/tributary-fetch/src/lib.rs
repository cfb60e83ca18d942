//! The paginating REST fetcher: turns a validated connection spec, its connection params and a
//! schedule window into a bounded stream of pages of records.
//!
//! Covers request building, auth (Basic, KeyBased, OAuth2 refresh), every pagination type,
//! contentPath / explodeEntityPath, rate limits (governor) and retries.
//!
//! Invariants: knows HTTP, not Arrow or sled. Never logs, prints or formats a secret.

mod error;
pub mod headers;
mod limit;
mod records;
mod retry;
mod scan;
mod secret;

pub use error::{BODY_HEAD_BYTES, ErrorCause, FetchError, Redactor};
pub use limit::{CredentialFingerprint, HostLimiter, Limiters, RateQuota};
pub use records::{
    AttrFilter, Envelope, ExplodeSelector, LocatedRecords, RecordPath, RecordSelector,
};
pub use retry::RetryPolicy;
pub use secret::Secret;
