//! Adaptive concurrency for pages whose addresses are computable (OFFSET, PAGE): how many
//! requests of one run may be in flight at once, decided by AIMD, like TCP and Vector's adaptive
//! request concurrency.
//!
//! A run starts with one request in flight. Every clean answer (2xx) whose round-trip time stays
//! within the tolerance of a moving baseline (an EWMA of past round trips plus their deviation)
//! adds to the limit: one per answer until the first back-off (slow start: at most doubling per
//! round trip), then one per round trip (congestion avoidance). The limit shrinks by half at once
//! on every 429, 502, 503, 504 or timeout (the API says it is overwhelmed; each such request held
//! a slot for nothing), and on an answer slower than the baseline's tolerance, but that at most
//! once per round trip: latency is a noisy signal, and the answers already in flight carry the
//! same news. It never passes the ceiling (`maxConcurrentRequests`, else
//! [`DEFAULT_CONCURRENCY_CEILING`]) and never grows while the shared rate limiter holds requests
//! back: the limiter, not the concurrency, bounds the rate, and more requests waiting for it
//! would only queue.
//!
//! Invariants: the limit is always in `1..=ceiling`; a ceiling of 1 means adaptation is off and
//! requests go strictly one after another. The reason the limit last stopped growing is kept for
//! the run object and the progress line ([`GrowthStop`]). Counts are live atomics, read by
//! [`crate::FetchCounters::snapshot`] at any time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// The ceiling of the adaptive concurrency when the flow sets no `maxConcurrentRequests`.
pub const DEFAULT_CONCURRENCY_CEILING: u32 = 16;

/// Why the concurrency limit is not (or no longer) growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GrowthStop {
    /// Still growing: nothing has held it back yet.
    #[default]
    Growing,
    /// The limit reached the ceiling.
    Ceiling,
    /// Round trips grew past the tolerance of the baseline.
    Latency,
    /// The API answered 429, 502, 503 or 504.
    Throttled,
    /// Requests timed out.
    Timeouts,
    /// The shared rate limiter (configured quota, `delayRequestMillis`, the API's rate-limit
    /// headers) held requests back: more in flight would only wait for it.
    RateLimit,
    /// The data ended before anything stopped the growth.
    EndOfData,
    /// One request at a time: `maxConcurrentRequests` is 1, or the pagination's next address
    /// is only known from the page before (POINTER, LINK, CONTINUATION_TOKEN, NONE).
    Sequential,
}

/// A snapshot of a run's concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyStats {
    /// The limit now.
    pub limit: u32,
    /// The highest limit the run reached.
    pub reached: u32,
    /// The ceiling of the limit.
    pub ceiling: u32,
    /// HTTP requests in flight now (sent, not yet answered).
    pub in_flight: u64,
    /// The most HTTP requests in flight at once.
    pub max_in_flight: u64,
    /// Why the limit stopped growing.
    pub stop: GrowthStop,
    /// Page requests issued past the last page (OFFSET / PAGE with several in flight), dropped
    /// unread when the end was found; at most the limit at that moment.
    pub past_end_requests: u64,
}

/// The live concurrency of one run.
#[derive(Debug)]
pub(crate) struct Concurrency {
    ceiling: u32,
    state: Mutex<Aimd>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// Page requests that went out (each page's first attempt; retries and redirect hops not
    /// counted).
    page_requests_sent: AtomicU64,
    past_end_requests: AtomicU64,
}

/// A signal to shrink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    /// 429, 502, 503, 504.
    Throttled,
    Timeout,
}

/// Marks one HTTP request in flight until dropped.
#[derive(Debug)]
pub(crate) struct InFlight<'a> {
    concurrency: &'a Concurrency,
}

#[derive(Debug)]
struct Aimd {
    limit: u32,
    reached: u32,
    /// Slow start: +1 per clean answer until the first back-off.
    slow_start: bool,
    /// Clean answers counted towards the next +1 in congestion avoidance.
    credit: u32,
    /// EWMA of the round-trip time of clean answers, in seconds.
    baseline: Option<f64>,
    /// EWMA of the absolute deviation from the baseline, in seconds.
    deviation: f64,
    last_decrease: Option<Instant>,
    stop: GrowthStop,
}

/// Weight of a new sample in the baseline and deviation EWMAs.
const EWMA_WEIGHT: f64 = 0.2;

/// A round trip above `baseline * (1 + LATENCY_TOLERANCE)` (and the deviation band) is "rising".
const LATENCY_TOLERANCE: f64 = 0.5;

/// Deviations above the baseline tolerated before a round trip counts as rising.
const DEVIATION_SCALE: f64 = 3.0;

/// Round trips within this much of the baseline never count as rising (loopback jitter).
const MIN_LATENCY_SLACK: Duration = Duration::from_millis(3);

/// A limiter wait above this means the rate limiter, not the concurrency, set the pace.
const LIMITER_HOLD: Duration = Duration::from_millis(2);

/// The shortest spacing between two decreases (when the baseline round trip is shorter).
const MIN_DECREASE_SPACING: Duration = Duration::from_millis(10);

impl Concurrency {
    /// A run's concurrency: `ceiling` is the most in flight (at least 1); `adaptive` false (or a
    /// ceiling of 1) keeps it at 1.
    pub(crate) fn new(ceiling: u32, adaptive: bool) -> Self {
        let ceiling = if adaptive { ceiling.max(1) } else { 1 };
        let stop = if ceiling == 1 {
            GrowthStop::Sequential
        } else {
            GrowthStop::Growing
        };
        Self {
            ceiling,
            state: Mutex::new(Aimd {
                limit: 1,
                reached: 1,
                slow_start: true,
                credit: 0,
                baseline: None,
                deviation: 0.0,
                last_decrease: None,
                stop,
            }),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            page_requests_sent: AtomicU64::new(0),
            past_end_requests: AtomicU64::new(0),
        }
    }

    /// The number of pages that may be in flight now.
    pub(crate) fn limit(&self) -> usize {
        self.state().limit as usize
    }

    /// Marks a request as sent until the returned guard drops.
    pub(crate) fn start_request(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight { concurrency: self }
    }

    /// A clean (2xx) answer after `rtt`, whose request the rate limiter held for `limiter_wait`.
    pub(crate) fn on_answer(&self, rtt: Duration, limiter_wait: Duration) {
        if self.ceiling == 1 {
            return;
        }
        let mut state = self.state();
        let rtt = rtt.as_secs_f64();
        let Some(baseline) = state.baseline else {
            state.baseline = Some(rtt);
            state.deviation = rtt / 4.0;
            drop(state);
            self.grow_if_free(limiter_wait);
            return;
        };
        let slack = (baseline * LATENCY_TOLERANCE)
            .max(state.deviation * DEVIATION_SCALE)
            .max(MIN_LATENCY_SLACK.as_secs_f64());
        if rtt > baseline + slack {
            // A slow answer still moves the baseline a little, so an API that became slower for
            // good is learned instead of keeping the run at one request forever.
            state.baseline = Some(baseline + EWMA_WEIGHT / 4.0 * (rtt - baseline));
            drop(state);
            self.decrease(GrowthStop::Latency, true);
            return;
        }
        state.baseline = Some(baseline + EWMA_WEIGHT * (rtt - baseline));
        state.deviation += EWMA_WEIGHT * ((rtt - baseline).abs() - state.deviation);
        drop(state);
        self.grow_if_free(limiter_wait);
    }

    /// A signal to shrink (a 429/5xx answer that will be retried, or a timeout).
    pub(crate) fn on_backoff(&self, backoff: Backoff) {
        if self.ceiling == 1 {
            return;
        }
        let reason = match backoff {
            Backoff::Throttled => GrowthStop::Throttled,
            Backoff::Timeout => GrowthStop::Timeouts,
        };
        self.decrease(reason, false);
    }

    /// Counts the first attempt of a page's request going out.
    pub(crate) fn page_request_sent(&self) {
        self.page_requests_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The run emitted its last page after `pages_emitted` pages in all: every page request
    /// sent beyond those was past the end (it is dropped unread).
    pub(crate) fn count_past_end(&self, pages_emitted: u64) {
        let sent = self.page_requests_sent.load(Ordering::Relaxed);
        self.past_end_requests
            .store(sent.saturating_sub(pages_emitted), Ordering::Relaxed);
    }

    /// The run found the end of its pages: a limit still growing was stopped by the data.
    pub(crate) fn end_of_data(&self) {
        let mut state = self.state();
        if state.stop == GrowthStop::Growing {
            state.stop = GrowthStop::EndOfData;
        }
    }

    pub(crate) fn snapshot(&self) -> ConcurrencyStats {
        let state = self.state();
        ConcurrencyStats {
            limit: state.limit,
            reached: state.reached,
            ceiling: self.ceiling,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            stop: state.stop,
            past_end_requests: self.past_end_requests.load(Ordering::Relaxed),
        }
    }

    fn grow_if_free(&self, limiter_wait: Duration) {
        let mut state = self.state();
        if limiter_wait > LIMITER_HOLD {
            state.stop = GrowthStop::RateLimit;
            return;
        }
        if state.limit >= self.ceiling {
            state.stop = GrowthStop::Ceiling;
            return;
        }
        let grow = if state.slow_start {
            true
        } else {
            state.credit += 1;
            state.credit >= state.limit
        };
        if grow {
            state.credit = 0;
            state.limit += 1;
            state.reached = state.reached.max(state.limit);
            state.stop = if state.limit >= self.ceiling {
                GrowthStop::Ceiling
            } else {
                GrowthStop::Growing
            };
        }
    }

    /// Halves the limit; `once_per_round_trip`: unless it was halved less than a baseline
    /// round trip ago.
    fn decrease(&self, reason: GrowthStop, once_per_round_trip: bool) {
        let mut state = self.state();
        let now = Instant::now();
        state.stop = reason;
        state.slow_start = false;
        state.credit = 0;
        let spacing = state
            .baseline
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .unwrap_or_default()
            .max(MIN_DECREASE_SPACING);
        let recent = state
            .last_decrease
            .is_some_and(|last| now.saturating_duration_since(last) < spacing);
        if recent && once_per_round_trip {
            return;
        }
        state.last_decrease = Some(now);
        state.limit = (state.limit / 2).max(1);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Aimd> {
        // Plain numbers: a panic elsewhere cannot leave them inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Concurrency {
    /// One request at a time.
    fn default() -> Self {
        Self::new(1, false)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.concurrency.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
