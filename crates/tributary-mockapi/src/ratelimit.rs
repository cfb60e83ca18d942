//! The server's token bucket: `per_second` tokens a second, at most `burst`, one per request.
//!
//! Every governed response carries `X-RateLimit-Limit` (the per-second quota),
//! `X-RateLimit-Remaining` (whole tokens left), `X-RateLimit-Reset` (seconds until the bucket is
//! full again, to the millisecond, as APIs with sub-second buckets send it), the draft IETF
//! `RateLimit: limit=L, remaining=R, reset=S` (whole seconds, rounded up) and
//! `RateLimit-Policy: L;w=1` (the quota per one-second window); a refused request also gets
//! `Retry-After` (whole seconds until one token is back, at least 1).

use std::sync::Mutex;

use tokio::time::Instant;

use crate::config::RateLimit;

/// The bucket's state behind a lock (held for a few arithmetic operations).
#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    state: Mutex<BucketState>,
}

/// The outcome of taking a token, with the values of the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    /// Time until the bucket is full again, to the millisecond (rounded up).
    pub reset_millis: u64,
    /// Set when refused.
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Bucket {
        Bucket {
            limit,
            state: Mutex::new(BucketState {
                tokens: f64::from(limit.burst.get()),
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&self) -> Decision {
        let rate = f64::from(self.limit.per_second.get());
        let burst = f64::from(self.limit.burst.get());
        let now = Instant::now();
        // A poisoned lock only means another request panicked mid-update; the numbers are still
        // usable.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(burst);
        state.refilled_at = now;
        let admitted = state.tokens >= 1.0;
        if admitted {
            state.tokens -= 1.0;
        }
        let tokens = state.tokens;
        drop(state);
        let reset_secs = ((burst - tokens) / rate).ceil() as u64;
        let reset_millis = ((burst - tokens) * 1000.0 / rate).ceil() as u64;
        let retry_after_secs = (!admitted).then(|| (((1.0 - tokens) / rate).ceil() as u64).max(1));
        Decision {
            admitted,
            limit: self.limit.per_second.get(),
            remaining: tokens.floor() as u32,
            reset_secs,
            reset_millis,
            retry_after_secs,
        }
    }
}
