//! Throughput limits shared across runs: one limiter per (API origin, credential fingerprint).
//!
//! [`Limiters`] is a cheap, cloneable registry the engine creates once and passes to every run,
//! so two flows that call the same API with the same credentials share one budget. A
//! [`HostLimiter`] combines three brakes, in this order:
//! 1. a "blocked until" instant: a 429/503 with `Retry-After` pauses EVERY request on the
//!    limiter, not only the one that got it;
//! 2. a governor token bucket with the configured [`RateQuota`] (requests per period + burst);
//! 3. pacing from the API's own rate-limit headers: when few requests remain in the window,
//!    requests are spaced so the rest of the window's budget lasts until its reset, and at zero
//!    remaining they wait for the reset, so the API never has to refuse.
//!
//! No wait computed from a header is longer than the caller's maximum wait: a reset beyond it
//! makes every request on the limiter fail with that hint (for at most the maximum wait) instead
//! of sleeping for it, and deadlines are computed with checked arithmetic.
//!
//! The credential part of the key is a keyed hash with a per-process random key: the registry
//! never holds a secret, and the fingerprint cannot be reversed offline.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::headers::WaitHint;
use crate::secret::Secret;

/// The registry of limiters, shared by every run of the process.
#[derive(Clone, Default)]
pub struct Limiters {
    inner: Arc<Mutex<HashMap<LimiterKey, Arc<HostLimiter>>>>,
}

/// A request budget: `requests` per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    pub requests: NonZeroU32,
    pub period: Duration,
    pub burst: NonZeroU32,
}

/// A fingerprint of the credentials a run uses (a keyed hash, never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialFingerprint(u64);

/// The limiter of one (origin, credential) pair.
pub struct HostLimiter {
    origin: String,
    bucket: Option<DefaultDirectRateLimiter>,
    quota: Option<RateQuota>,
    pace: Mutex<Pace>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LimiterKey {
    origin: String,
    credential: CredentialFingerprint,
}

#[derive(Debug)]
struct Pace {
    blocked_until: Option<Instant>,
    /// A reset hint longer than the maximum wait: requests fail with it until the instant.
    refused: Option<(Instant, WaitHint)>,
    interval: Duration,
    next_slot: Option<Instant>,
}

/// Below this many remaining requests the limiter starts spacing requests out.
const LOW_REMAINING: u64 = 10;

impl Limiters {
    pub fn new() -> Self {
        Self::default()
    }

    /// The limiter for `origin` (`scheme://host:port`) and `credential`, created with `quota` on
    /// first use. Later callers share it; the first caller's quota stays in force.
    pub fn limiter(
        &self,
        origin: &str,
        credential: CredentialFingerprint,
        quota: Option<RateQuota>,
    ) -> Arc<HostLimiter> {
        let key = LimiterKey {
            origin: origin.to_owned(),
            credential,
        };
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(key)
            .or_insert_with(|| Arc::new(HostLimiter::new(origin, quota)))
            .clone()
    }

    /// How many limiters exist (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("len", &self.len())
            .finish()
    }
}

impl RateQuota {
    /// `requests` per second, burst equal to `requests`.
    pub fn per_second(requests: NonZeroU32) -> Self {
        Self {
            requests,
            period: Duration::from_secs(1),
            burst: requests,
        }
    }

    /// `requests` per minute, burst equal to `requests`.
    pub fn per_minute(requests: NonZeroU32) -> Self {
        Self {
            requests,
            period: Duration::from_secs(60),
            burst: requests,
        }
    }

    /// The same rate with another burst size.
    pub fn with_burst(self, burst: NonZeroU32) -> Self {
        Self { burst, ..self }
    }

    fn governor_quota(&self) -> Option<Quota> {
        let replenish = self.period / self.requests.get();
        Quota::with_period(replenish).map(|q| q.allow_burst(self.burst))
    }
}

impl CredentialFingerprint {
    /// The fingerprint of no credentials.
    pub const NONE: CredentialFingerprint = CredentialFingerprint(0);

    /// A keyed hash of the secrets, in order.
    pub fn of(secrets: &[&Secret]) -> Self {
        static KEY: OnceLock<RandomState> = OnceLock::new();
        let state = KEY.get_or_init(RandomState::new);
        let values: Vec<&str> = secrets.iter().map(|s| s.expose()).collect();
        Self(state.hash_one(values))
    }
}

impl HostLimiter {
    fn new(origin: &str, quota: Option<RateQuota>) -> Self {
        let bucket = quota
            .and_then(|q| q.governor_quota())
            .map(RateLimiter::direct);
        Self {
            origin: origin.to_owned(),
            bucket,
            quota,
            pace: Mutex::new(Pace {
                blocked_until: None,
                refused: None,
                interval: Duration::ZERO,
                next_slot: None,
            }),
        }
    }

    /// Waits until a request may go out; returns how long it waited (throttled time), or the
    /// hint of the API that asked for a wait longer than the maximum (see [`HostLimiter::observe`]).
    pub async fn acquire(&self) -> Result<Duration, WaitHint> {
        let started = Instant::now();
        loop {
            self.check_refused()?;
            self.wait_unblocked().await;
            if let Some(bucket) = &self.bucket {
                bucket.until_ready().await;
            }
            let slot = {
                let mut pace = self.pace();
                let now = Instant::now();
                if pace.interval.is_zero() {
                    None
                } else {
                    let slot = pace.next_slot.map_or(now, |next| next.max(now));
                    pace.next_slot = Some(deadline(slot, pace.interval));
                    Some(slot)
                }
            };
            if let Some(slot) = slot {
                tokio::time::sleep_until(slot).await;
            }
            // A 429 may have blocked the limiter while this request waited for its slot.
            if !self.is_blocked() {
                return Ok(started.elapsed());
            }
        }
    }

    /// Pauses every request on this limiter until `now + delay` (never shortens a pause).
    pub fn block_for(&self, delay: Duration) {
        let until = deadline(Instant::now(), delay);
        let mut pace = self.pace();
        if pace.blocked_until.is_none_or(|current| current < until) {
            pace.blocked_until = Some(until);
        }
    }

    /// Adapts the pacing to what the API says is left of its window: `remaining` requests until
    /// `reset` (1 s when the API names no reset). At zero remaining every request waits for the
    /// reset; a reset beyond `max_wait` makes requests fail with its hint for `max_wait` instead.
    /// Spacing never assumes a window longer than `max_wait`.
    pub fn observe(&self, remaining: u64, reset: Option<&WaitHint>, max_wait: Duration) {
        let reset_in = match reset {
            None => Some(Duration::from_secs(1)),
            Some(hint) => hint.delay,
        };
        let within_max = reset_in.filter(|reset_in| *reset_in <= max_wait);
        let now = Instant::now();
        let mut pace = self.pace();
        if remaining == 0 {
            pace.interval = Duration::ZERO;
            match (within_max, reset) {
                (Some(reset_in), _) => {
                    let until = deadline(now, reset_in);
                    if pace.blocked_until.is_none_or(|current| current < until) {
                        pace.blocked_until = Some(until);
                    }
                }
                (None, Some(hint)) => pace.refused = Some((deadline(now, max_wait), hint.clone())),
                (None, None) => {}
            }
        } else if remaining <= LOW_REMAINING {
            // Spread what is left over the rest of the window.
            let window = within_max.unwrap_or(max_wait);
            pace.interval = window / u32::try_from(remaining + 1).unwrap_or(u32::MAX);
        } else {
            pace.interval = Duration::ZERO;
            pace.next_slot = None;
        }
    }

    /// The origin this limiter guards.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The configured quota, if any.
    pub fn quota(&self) -> Option<RateQuota> {
        self.quota
    }

    fn check_refused(&self) -> Result<(), WaitHint> {
        let mut pace = self.pace();
        match &pace.refused {
            Some((until, hint)) if *until > Instant::now() => Err(hint.clone()),
            Some(_) => {
                pace.refused = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn is_blocked(&self) -> bool {
        self.pace()
            .blocked_until
            .is_some_and(|until| until > Instant::now())
    }

    async fn wait_unblocked(&self) {
        loop {
            let until = self.pace().blocked_until;
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        // The lock guards plain data with no invariant a panic could break.
        self.pace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for HostLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLimiter")
            .field("origin", &self.origin)
            .field("quota", &self.quota)
            .field("pace", &*self.pace())
            .finish()
    }
}

/// `now + delay`, or the latest instant this clock can hold near it: never an overflow panic.
/// Callers bound `delay` by the maximum wait, so the fallbacks only matter for absurd settings.
fn deadline(now: Instant, delay: Duration) -> Instant {
    const FALLBACKS: [Duration; 3] = [
        Duration::from_secs(365 * 24 * 3600),
        Duration::from_secs(24 * 3600),
        Duration::from_secs(3600),
    ];
    now.checked_add(delay)
        .or_else(|| {
            FALLBACKS
                .iter()
                .find_map(|fallback| now.checked_add(*fallback))
        })
        .unwrap_or(now)
}

#[cfg(test)]
mod tests;
