//! The paginating REST fetcher: turns a validated connection spec, its connection params and a
//! schedule window into a bounded stream of pages of records.
//!
//! Covers request building, auth (Basic, KeyBased, OAuth2 refresh), every pagination type,
//! contentPath / explodeEntityPath, rate limits (governor) and retries.
//!
//! Invariants: knows HTTP, not Arrow or sled. Never logs, prints or formats a secret.
