//! Retry policy: exponential backoff with full jitter, capped in attempts and in total time.
//!
//! Which failures are retried is decided by [`crate::FetchError::is_retryable`] (5xx, 408, 429,
//! timeouts, connection and body errors); 4xx other than 401/408/429 fail at once, and 401 goes
//! through the auth refresh instead. Answers that carry `Retry-After` (429, 503) wait that long
//! and count against the total-time cap only, so a long 429 storm is survived while the API is
//! still answering.

use std::num::NonZeroU32;
use std::time::Duration;

use rand::Rng;

/// How often and how long a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (throttled answers with `Retry-After` excluded).
    pub max_attempts: NonZeroU32,
    /// The backoff before the second attempt; it doubles with every further attempt.
    pub base_delay: Duration,
    /// No single backoff is longer than this.
    pub max_delay: Duration,
    /// Give up when this much time has passed since the first attempt of the request.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: NonZeroU32::new(6).expect("6 is not zero"),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(20),
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: NonZeroU32::MIN,
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt + 1` after `attempt` failed attempts (1-based): a random
    /// duration in `[0, min(max_delay, base_delay * 2^(attempt-1))]` (full jitter).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos =
            rand::rng().random_range(0..=ceiling.as_nanos().min(u128::from(u64::MAX)) as u64);
        Duration::from_nanos(nanos)
    }

    /// The upper bound of [`RetryPolicy::backoff`] for `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }
}
