//! Throughput limits shared across runs: one limiter per (API origin, credential fingerprint).
//!
//! [`Limiters`] is a cheap, cloneable registry the engine creates once and passes to every run,
//! so every run, backfill window and daemon slot that calls the same API with the same
//! credentials shares one budget. A [`HostLimiter`] lets a request out at the latest of:
//! 1. a "blocked until" instant: a 429/503 with `Retry-After` pauses EVERY request on the
//!    limiter, not only the one that got it;
//! 2. rate gates, the strictest of them deciding: the configured [`RateQuota`] (a host's
//!    `[limits.hosts]` entry, with its burst), the spec's `delayRequestMillis` (one request per
//!    delay, burst 1; the longest delay of any plan on the limiter), and the API's own
//!    `RateLimit-Policy` (its quota spread evenly over its window, replaced when it changes);
//! 3. pacing from the API's rate-limit headers: when few requests remain in the window,
//!    requests are spaced so the rest of the window's budget lasts until its reset, and at zero
//!    remaining they wait for the reset, so the API never has to refuse.
//!
//! Each gate is a GCRA (a virtual scheduling token bucket). A request reserves its slot in every
//! gate at once, under one lock, so concurrent runs get distinct, evenly spaced slots and the
//! rate holds at the moment requests are sent, not at some earlier check; a request whose slot
//! falls inside a pause that began while it waited reserves a new slot after the pause, so a
//! pause never ends in a burst. (This replaces a governor bucket: quotas here change at
//! runtime, and all brakes must be decided at one instant.)
//!
//! No wait computed from a header is longer than the caller's maximum wait: a reset or policy
//! beyond it makes every request on the limiter fail with that hint (for the maximum wait)
//! instead of sleeping, and deadlines are computed with checked arithmetic.
//!
//! The credential part of the key is a keyed hash with a per-process random key: the registry
//! never holds a secret, and the fingerprint cannot be reversed offline.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::headers::{PolicyHint, WaitHint};
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
    quota: Option<RateQuota>,
    state: Mutex<State>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LimiterKey {
    origin: String,
    credential: CredentialFingerprint,
}

#[derive(Debug)]
struct State {
    blocked_until: Option<Instant>,
    /// A wait beyond the maximum that the API asked for: requests fail with it until then.
    refused: Option<(Instant, WaitHint)>,
    /// The configured quota.
    quota: Option<Gate>,
    /// `delayRequestMillis`: the longest delay any plan declared for this limiter.
    delay: Option<Gate>,
    /// `RateLimit-Policy` as last sent: (requests, window) and its gate.
    policy: Option<((NonZeroU64, Duration), Gate)>,
    /// Spacing while few requests remain in the API's window.
    pacing: Option<Gate>,
}

/// A GCRA: one request per `interval`, up to `tolerance / interval + 1` at once.
#[derive(Debug, Clone)]
struct Gate {
    interval: Duration,
    tolerance: Duration,
    /// The theoretical arrival time of the next request; `None` before the first.
    tat: Option<Instant>,
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

    /// `requests_per_second` (a float, so `0.5` is one request every 2 s) with `burst`; `None`
    /// unless it is finite, above 0 and at most a billion a second.
    pub fn from_rate(requests_per_second: f64, burst: NonZeroU32) -> Option<Self> {
        if !(requests_per_second.is_finite()
            && requests_per_second > 0.0
            && requests_per_second <= 1e9)
        {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / requests_per_second).ok()?;
        if period.is_zero() {
            return None;
        }
        Some(Self {
            requests: NonZeroU32::MIN,
            period,
            burst,
        })
    }

    /// The time between two requests at this rate.
    pub fn interval(&self) -> Duration {
        self.period / self.requests.get()
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
        Self {
            origin: origin.to_owned(),
            quota,
            state: Mutex::new(State {
                blocked_until: None,
                refused: None,
                quota: quota.map(|quota| Gate::new(quota.interval(), quota.burst)),
                delay: None,
                policy: None,
                pacing: None,
            }),
        }
    }

    /// Waits until a request may go out; returns how long it waited (throttled time), or the
    /// hint of the API that asked for a wait longer than the maximum (see [`HostLimiter::observe`]).
    pub async fn acquire(&self) -> Result<Duration, WaitHint> {
        self.acquire_held().await.map(|(waited, _)| waited)
    }

    /// [`HostLimiter::acquire`], and how long the limiter's gates and pauses held the request
    /// (its slots' distance from the moment each was reserved), which unlike the time waited
    /// holds no scheduling delay of the runtime.
    pub(crate) async fn acquire_held(&self) -> Result<(Duration, Duration), WaitHint> {
        let started = Instant::now();
        let mut held = Duration::ZERO;
        loop {
            let now = Instant::now();
            let slot = self.state().reserve(now)?;
            held += slot.saturating_duration_since(now);
            tokio::time::sleep_until(slot).await;
            // A 429 may have paused the limiter while this request waited for its slot; then it
            // reserves a slot after the pause.
            if !self.is_blocked() {
                return Ok((started.elapsed(), held));
            }
        }
    }

    /// Pauses every request on this limiter until `now + delay` (never shortens a pause).
    pub fn block_for(&self, delay: Duration) {
        let until = deadline(Instant::now(), delay);
        self.state().block_until(until);
    }

    /// At most one request per `delay` on this limiter (`delayRequestMillis`). The longest delay
    /// any caller asked for stays in force.
    pub fn require_interval(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let mut state = self.state();
        match &mut state.delay {
            Some(gate) if gate.interval >= delay => {}
            Some(gate) => gate.interval = delay,
            None => state.delay = Some(Gate::new(delay, NonZeroU32::MIN)),
        }
    }

    /// Adopts the API's `RateLimit-Policy`: its quota spread evenly over its window (burst 1,
    /// so no window ever holds more than the quota), replacing an earlier, different policy. A
    /// policy slower than one request per `max_wait` makes requests fail with it instead.
    pub fn learn_policy(&self, policy: &PolicyHint, max_wait: Duration) {
        let key = (policy.requests, policy.window);
        let nanos = policy.window.as_nanos() / u128::from(policy.requests.get());
        let interval = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        let mut state = self.state();
        if state
            .policy
            .as_ref()
            .is_some_and(|(known, _)| *known == key)
        {
            return;
        }
        if interval > max_wait {
            let hint = WaitHint {
                delay: Some(interval),
                seconds: interval.as_secs_f64(),
                header: "RateLimit-Policy",
                value: policy.value.clone(),
            };
            state.refused = Some((deadline(Instant::now(), max_wait), hint));
            state.policy = None;
            return;
        }
        let tat = state.policy.as_ref().and_then(|(_, gate)| gate.tat);
        let mut gate = Gate::new(interval, NonZeroU32::MIN);
        gate.tat = tat;
        state.policy = Some((key, gate));
    }

    /// Adapts the pacing to what the API says is left of its window: `remaining` requests until
    /// `reset` (1 s when the API names no reset). At zero remaining every request waits for the
    /// reset; a reset beyond `max_wait` makes requests fail with its hint for `max_wait` instead.
    /// Spacing never assumes a window longer than `max_wait`.
    pub fn observe(&self, remaining: u64, reset: Option<&WaitHint>, max_wait: Duration) {
        self.observe_from(Instant::now(), remaining, reset, max_wait);
    }

    /// [`HostLimiter::observe`] for an answer to a request sent at `sent`: the API counted the
    /// request when it admitted it, after `sent` and usually well before its answer arrived
    /// (the time it took to build the page), so a reset at zero remaining counts from `sent`;
    /// counting from the answer's arrival would wait a whole page's latency too long, every
    /// time the quota runs out.
    pub(crate) fn observe_from(
        &self,
        sent: Instant,
        remaining: u64,
        reset: Option<&WaitHint>,
        max_wait: Duration,
    ) {
        let reset_in = match reset {
            None => Some(Duration::from_secs(1)),
            Some(hint) => hint.delay,
        };
        let within_max = reset_in.filter(|reset_in| *reset_in <= max_wait);
        let now = Instant::now();
        let mut state = self.state();
        if remaining == 0 {
            state.pacing = None;
            match (within_max, reset) {
                (Some(reset_in), _) => {
                    let until = deadline(sent.min(now), reset_in);
                    if until > now {
                        state.block_until(until);
                    }
                }
                (None, Some(hint)) => {
                    state.refused = Some((deadline(now, max_wait), hint.clone()));
                }
                (None, None) => {}
            }
        } else if remaining <= LOW_REMAINING {
            // Spread what is left over the rest of the window.
            let window = within_max.unwrap_or(max_wait);
            let interval = window / u32::try_from(remaining + 1).unwrap_or(u32::MAX);
            match &mut state.pacing {
                Some(gate) => gate.interval = interval,
                None => state.pacing = Some(Gate::new(interval, NonZeroU32::MIN)),
            }
        } else {
            state.pacing = None;
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

    /// The spacing `delayRequestMillis` imposes, if any plan declared one.
    pub fn min_interval(&self) -> Option<Duration> {
        self.state().delay.as_ref().map(|gate| gate.interval)
    }

    fn is_blocked(&self) -> bool {
        self.state()
            .blocked_until
            .is_some_and(|until| until > Instant::now())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock guards plain data with no invariant a panic could break.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// The slot of the next request: no earlier than `now`, the end of a pause, or what any
    /// gate allows; reserved in every gate.
    fn reserve(&mut self, now: Instant) -> Result<Instant, WaitHint> {
        match &self.refused {
            Some((until, hint)) if *until > now => return Err(hint.clone()),
            Some(_) => self.refused = None,
            None => {}
        }
        let mut slot = now;
        if let Some(until) = self.blocked_until {
            slot = slot.max(until);
        }
        for gate in self.gates() {
            if let Some(earliest) = gate.earliest() {
                slot = slot.max(earliest);
            }
        }
        for gate in self.gates() {
            gate.take(slot);
        }
        Ok(slot)
    }

    fn block_until(&mut self, until: Instant) {
        if self.blocked_until.is_none_or(|current| current < until) {
            self.blocked_until = Some(until);
        }
    }

    fn gates(&mut self) -> impl Iterator<Item = &mut Gate> {
        [
            self.quota.as_mut(),
            self.delay.as_mut(),
            self.policy.as_mut().map(|(_, gate)| gate),
            self.pacing.as_mut(),
        ]
        .into_iter()
        .flatten()
    }
}

impl Gate {
    fn new(interval: Duration, burst: NonZeroU32) -> Self {
        Self {
            interval,
            tolerance: interval.saturating_mul(burst.get() - 1),
            tat: None,
        }
    }

    /// The earliest instant this gate lets the next request out (`None`: at once).
    fn earliest(&self) -> Option<Instant> {
        self.tat?.checked_sub(self.tolerance)
    }

    /// Records a request sent at `slot`.
    fn take(&mut self, slot: Instant) {
        let base = self.tat.map_or(slot, |tat| tat.max(slot));
        self.tat = Some(deadline(base, self.interval));
    }
}

impl std::fmt::Debug for HostLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLimiter")
            .field("origin", &self.origin)
            .field("quota", &self.quota)
            .field("state", &*self.state())
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
