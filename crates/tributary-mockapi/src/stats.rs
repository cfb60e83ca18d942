//! What the server observed: counters and a bounded log of the last requests.
//!
//! Counters are atomics (no lock on the hot path); the request log is a ring behind a mutex
//! holding the last `log_capacity` requests with their arrival time since server start, so
//! tests can check the observed request rate ([`Stats::max_in_window`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// A snapshot of the server's observations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Every request received (except `/stats` itself).
    pub requests: u64,
    /// Data requests that passed the rate limit and auth (the numbering faults use).
    pub data_requests: u64,
    pub records_served: u64,
    /// Page body bytes before compression.
    pub bytes_served: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Injected error statuses.
    pub injected_errors: u64,
    /// Calls to `/oauth/token`, successful or not.
    pub token_requests: u64,
    /// Successful refresh grants.
    pub refreshes: u64,
    /// Requests carrying an `Authorization` header or a header whose name contains `key`,
    /// `token`, `secret`, `password` or `auth`: shows whether a client leaked credentials to a
    /// host it should not trust.
    pub requests_with_credentials: u64,
    /// The last requests (at most `log_capacity`), in arrival order.
    pub log: Vec<RequestRecord>,
}

/// One request as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Arrival time since the server started.
    #[serde(serialize_with = "serialize_millis")]
    pub at: Duration,
    pub method: String,
    pub path: String,
    /// The query with credential-looking values replaced by `***`.
    pub query: String,
    /// The status answered (0 while the answer is still pending).
    pub status: u16,
}

/// The live counters behind [`Stats`].
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    capacity: usize,
    pub requests: AtomicU64,
    pub data_requests: AtomicU64,
    pub records_served: AtomicU64,
    pub bytes_served: AtomicU64,
    pub unauthorized: AtomicU64,
    pub rate_limited: AtomicU64,
    pub injected_errors: AtomicU64,
    pub token_requests: AtomicU64,
    pub refreshes: AtomicU64,
    pub requests_with_credentials: AtomicU64,
    log: Mutex<VecDeque<(u64, RequestRecord)>>,
    next_log_id: AtomicU64,
}

impl Stats {
    /// Arrival times of the logged requests whose path starts with `path_prefix`.
    pub fn arrivals(&self, path_prefix: &str) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|record| record.path.starts_with(path_prefix))
            .map(|record| record.at)
            .collect()
    }

    /// The largest number of logged requests to paths starting with `path_prefix` that arrived
    /// within any span of `window` (a sliding window over the arrival times).
    pub fn max_in_window(&self, path_prefix: &str, window: Duration) -> usize {
        let arrivals = self.arrivals(path_prefix);
        let mut best = 0;
        let mut start = 0;
        for end in 0..arrivals.len() {
            while arrivals[end] - arrivals[start] >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }
}

impl Recorder {
    pub fn new(capacity: usize) -> Recorder {
        Recorder {
            started: Instant::now(),
            capacity,
            requests: AtomicU64::new(0),
            data_requests: AtomicU64::new(0),
            records_served: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            injected_errors: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            requests_with_credentials: AtomicU64::new(0),
            log: Mutex::new(VecDeque::with_capacity(capacity.min(4_096))),
            next_log_id: AtomicU64::new(0),
        }
    }

    /// Logs an arrival; returns the id to complete it with.
    pub fn arrive(&self, method: String, path: String, query: String) -> u64 {
        let mut log = self.lock();
        // Taken under the lock so ids increase along the ring (complete() relies on it).
        let id = self.next_log_id.fetch_add(1, Ordering::Relaxed);
        let record = RequestRecord {
            at: self.started.elapsed(),
            method,
            path,
            query,
            status: 0,
        };
        if log.len() == self.capacity {
            log.pop_front();
        }
        log.push_back((id, record));
        id
    }

    /// Records the status answered to the arrival `id` (if it is still in the ring).
    pub fn complete(&self, id: u64, status: u16) {
        let mut log = self.lock();
        // Ids increase along the ring, so the entry is found by its distance from the front.
        let Some(front_id) = log.front().map(|(front_id, _)| *front_id) else {
            return;
        };
        let Some(pos) = id
            .checked_sub(front_id)
            .and_then(|pos| usize::try_from(pos).ok())
        else {
            return;
        };
        if let Some((entry_id, record)) = log.get_mut(pos)
            && *entry_id == id
        {
            record.status = status;
        }
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            requests: load(&self.requests),
            data_requests: load(&self.data_requests),
            records_served: load(&self.records_served),
            bytes_served: load(&self.bytes_served),
            unauthorized: load(&self.unauthorized),
            rate_limited: load(&self.rate_limited),
            injected_errors: load(&self.injected_errors),
            token_requests: load(&self.token_requests),
            refreshes: load(&self.refreshes),
            requests_with_credentials: load(&self.requests_with_credentials),
            log: self
                .lock()
                .iter()
                .map(|(_, record)| record.clone())
                .collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, RequestRecord)>> {
        // A poisoned log only means a handler panicked while pushing; the ring is still valid.
        self.log.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

fn serialize_millis<S: serde::Serializer>(at: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(at.as_secs_f64() * 1_000.0)
}
