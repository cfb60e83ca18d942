//! The page stream's types: [`Page`] (one page of records), [`Position`] (where a run is, for
//! checkpoints and resume), and the handle of a running fetch, [`FetchRun`], with its live
//! [`FetchCounters`].
//!
//! A page holds its records once (as NDJSON, usually a slice of the body's own buffer, which the
//! locator turned into NDJSON in place); the raw body only when the plan asks for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tributary_spec::ScheduleWindow;

use crate::budget::BudgetPermit;
use crate::concurrency::{Concurrency, ConcurrencyStats};
use crate::error::FetchError;

/// Where a run is: what to request next, how many requests and pages it made. Serialisable so
/// the engine can checkpoint it and resume from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub next: NextPage,
    /// Page requests made so far in the run (counted against `maximumRequest`).
    pub requests: u32,
    /// Pages emitted so far in the run (the next page's `page_idx`).
    pub pages: u64,
    /// The window the run fetches, to check a resume is for the same window.
    pub window: Option<WindowPosition>,
}

/// The next page to request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NextPage {
    /// The first request of the run.
    Start,
    /// OFFSET.
    Offset { offset: u64 },
    /// PAGE; `end` is the last page index once known.
    Page { index: u64, end: Option<u64> },
    /// CONTINUATION_TOKEN.
    Token { token: String },
    /// POINTER or LINK: an absolute URL.
    Url { url: String },
    /// Nothing left to fetch.
    Done,
}

/// A schedule window in a [`Position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPosition {
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
}

/// One page of records.
#[derive(Clone)]
pub struct Page {
    /// 0-based index of the page in the run.
    pub page_idx: u64,
    /// The request URL, redacted.
    pub url: String,
    pub status: u16,
    /// The body as the source sent it (decompressed), only when the plan asks for raw bodies
    /// ([`crate::FetchPlan::with_raw_bodies`]); otherwise a page holds its records only.
    pub body: Option<Bytes>,
    /// The length of the body in bytes, kept or not (for byte counters).
    pub body_len: u64,
    /// The records, one JSON object per line (see [`crate::LocatedRecords::ndjson`]: lines may
    /// carry spaces around the record).
    pub records: Bytes,
    pub record_count: usize,
    /// Where the run continues after this page.
    pub position: Position,
    /// This page's share of the context's page budget ([`crate::FetchContext::page_budget`]),
    /// given back when the page and all its clones are dropped.
    pub budget: Option<Arc<BudgetPermit>>,
}

/// An item of the page stream.
#[derive(Debug)]
pub enum FetchEvent {
    /// The next page, in order.
    Page(Page),
    /// The last item of a fetch that did not fail.
    End(FetchEnd),
}

/// How a fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchEnd {
    /// Where the run stopped: `next` is [`NextPage::Done`] when every page was fetched.
    pub position: Position,
    /// `maximumRequest` stopped the run while pages were left; `position` says where the next
    /// run of the window continues.
    pub truncated: bool,
}

/// A running fetch: the pages, the task, and live counters.
#[derive(Debug)]
pub struct FetchRun {
    /// Pages in order, then exactly one [`FetchEvent::End`] or one `Err` as the last item. A
    /// channel that closes without either means the fetch task died (a panic): the consumer
    /// must treat that as an internal failure, never as the end of the pages.
    pub pages: mpsc::Receiver<Result<FetchEvent, FetchError>>,
    pub task: JoinHandle<()>,
    pub counters: Arc<FetchCounters>,
}

/// Per-run counters, updated live.
#[derive(Debug, Default)]
pub struct FetchCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    throttled_nanos: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) pages: AtomicU64,
    pub(crate) records: AtomicU64,
    /// How many requests may be in flight, and how many are.
    pub(crate) concurrency: Concurrency,
}

/// A snapshot of [`FetchCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FetchStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    pub retries: u64,
    /// Time spent waiting for the limiter or a `Retry-After`.
    pub throttled: Duration,
    /// Body bytes received (after decompression).
    pub bytes_in: u64,
    pub pages: u64,
    pub records: u64,
    pub concurrency: ConcurrencyStats,
}

impl From<ScheduleWindow> for WindowPosition {
    fn from(window: ScheduleWindow) -> Self {
        Self {
            start: window.start,
            end: window.end,
        }
    }
}

impl FetchCounters {
    pub fn snapshot(&self) -> FetchStats {
        FetchStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: Duration::from_nanos(self.throttled_nanos.load(Ordering::Relaxed)),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            pages: self.pages.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            concurrency: self.concurrency.snapshot(),
        }
    }

    /// Counters of a run whose concurrency starts at 1 and may grow to `ceiling` (see
    /// [`crate::DEFAULT_CONCURRENCY_CEILING`]); `adaptive` false keeps it at one request.
    pub(crate) fn with_concurrency(ceiling: u32, adaptive: bool) -> Self {
        Self {
            concurrency: Concurrency::new(ceiling, adaptive),
            ..Self::default()
        }
    }

    pub(crate) fn add_throttled(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.throttled_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("page_idx", &self.page_idx)
            .field("url", &self.url)
            .field("status", &self.status)
            .field("body_len", &self.body_len)
            .field("body_kept", &self.body.is_some())
            .field("record_count", &self.record_count)
            .field("position", &self.position)
            .field("budget", &self.budget)
            .finish()
    }
}
