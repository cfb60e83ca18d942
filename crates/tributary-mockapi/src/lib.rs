//! A configurable third-party REST API on loopback: every pagination style, every auth type,
//! rate limits (429 + Retry-After) and injected faults, over a deterministic seeded dataset.
//!
//! Used by tests, `tributary demo`, `tributary mock-api` and `tributary bench`. Main items:
//! [`MockConfig`] (records, seed, timeline, [`MockAuth`], [`RateLimit`], [`Faults`]),
//! [`start`] returning a [`MockServer`] (`base_url`, `stats`, `set_faults`, `shutdown`),
//! [`serve_forever`] and [`run_cli`] ([`MockCliArgs`]) for `tributary mock-api`, and [`record`] / [`write_record_json`] for the canonical
//! records. Invariants: binds loopback only; the same seed, count and timeline always serve
//! the same records; it knows nothing of the other tributary crates (it fakes someone else's
//! API).
//!
//! # Dataset
//!
//! Record `i` (of `0..records`) is Mailchimp-member-like, about 620 bytes of JSON: `id` (32
//! hex, unique), `email_address` (unique), `unique_email_id`, `status`
//! (subscribed/unsubscribed/pending/cleaned), `merge_fields` {`FNAME`, `LNAME`, `ADDRESS`
//! (an object, on one record in five), `PHONE`, `BIRTHDAY`}, `stats` {`avg_open_rate`,
//! `avg_click_rate`} (floats), `ip_signup`, `timestamp_opt`, `member_rating` (1..=5),
//! `last_changed` (`start_time + i * step`, strictly increasing), `language`, `vip`,
//! `location` {`latitude`, `longitude`, `country_code`, `timezone`}, `tags` (0..=2 of
//! {`id`, `name`}) and `list_id`. Times are `YYYY-MM-DDTHH:MM:SS[.fff]Z`. Pages are written
//! straight to bytes, one buffer per page (see `benches/generate.rs`: about 3.4 M records per
//! CPU-second on the development machine).
//!
//! # Endpoints (stable)
//!
//! All data endpoints answer JSON, accept the schedule window parameters below, are governed by
//! the rate limit and the auth mode, and are subject to faults.
//!
//! | endpoint | style | body |
//! |---|---|---|
//! | `GET /3.0/lists/{listId}/members?count=N&offset=K` | OFFSET (Mailchimp); count default 10 | `{"members":[..],"list_id","total_items","has_more","_links"}` |
//! | `GET /page/members?page=I&pageSize=N[&base=0\|1]` | PAGE; base (first page index) default 0, pageSize default 100 | `{"items":[..],"page","pageSize","total"}`, header `x-pagecount` = number of pages |
//! | `GET /cursor/members?limit=N[&cursor=T]` | CONTINUATION_TOKEN; the token also as header `X-Cursor` | `{"data":[..],"meta":{"has_more","after_cursor": T or null}}` |
//! | `GET /pointer/members?limit=N[&after=K][&relative=1]` | POINTER; `next` absolute, or relative with `relative=1` | `{"results":[..],"paging":{"next": URL or null}}` |
//! | `GET /link/members?per_page=N&page=I` | RFC 8288 `Link` (`next`, `prev`, `first`, `last`); pages from 1, per_page default 30 | a bare array `[..]` |
//! | `GET /all/members` | NONE; at most `all_cap` records, else 400 | `{"members":[..],"total_items"}` |
//! | `POST` or `GET /oauth/token` | OAuth2 refresh (form, JSON or query fields) | `{"access_token","refresh_token","expires_in","token_type"}` |
//! | `GET /oauth/test` | authorization test URL: 200 with valid credentials, else 401 | `{"ok":true}` |
//! | `GET /stats` | [`Stats`] as JSON (arrival times in ms), never rate limited or logged | |
//!
//! Paged endpoints also send `x-total-count`. Page sizes run up to `max_page_size`; offsets,
//! pages and cursors past the end give an empty page.
//!
//! **Schedule windows**: `since_last_changed` (inclusive) and `before_last_changed`
//! (exclusive), RFC 3339 or epoch seconds, select records by `last_changed`; so does an
//! ADVANCE-style `query=type:user updated > T updated < T` (`>`, `>=`, `<`, `<=`, field
//! `updated` or `last_changed`; other words ignored). `last_changed` of record `i` is
//! `start_time + i * step`, so a window is an index range computed in O(1); totals, offsets,
//! pages and cursors are relative to the window.
//!
//! **Auth** ([`MockAuth`]): Basic, API keys (header, or a query parameter of the same name),
//! Bearer tokens minted by `/oauth/token` with `grant_type=refresh_token`, the refresh token
//! and the client credentials (fields named as in [`TokenFieldNames`], or a Basic header);
//! access tokens expire after `access_ttl` (then 401); optional refresh-token rotation.
//!
//! **Rate limit** ([`RateLimit`]): a token bucket; every governed response carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until full) and
//! `RateLimit: limit=, remaining=, reset=`; a refusal is a 429 with `Retry-After` (delay
//! seconds, or an HTTP date with [`RetryAfterFormat::HttpDate`]).
//!
//! **Faults** ([`Faults`]): targeted by data-request number or by record offset within the
//! window ([`Target`]); see [`Faults`] for the order they apply in.
//!
//! Responses are compressed (gzip, deflate, brotli) when the client sends Accept-Encoding and
//! [`MockConfig::compression`] is on.

mod auth;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod error;
pub mod query;
mod ratelimit;
mod server;
pub mod stats;

#[cfg(test)]
mod tests;

pub use cli::{MockCliArgs, run_cli};
pub use config::{
    ErrorRate, Faults, ForeignPointer, MockAuth, MockConfig, OAuth2, RateLimit, RetryAfterFormat,
    Secret, ServerErrors, Target, TokenFieldNames,
};
pub use dataset::{Dataset, Timeline, record, write_record_json};
pub use error::MockError;
pub use server::{MockServer, serve_forever, start};
pub use stats::{RequestRecord, Stats};
