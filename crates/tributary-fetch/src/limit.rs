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
//!
//! **Shares across nodes.** Several daemons on one shared state call the same APIs, and a host's
//! limits are the host's, not one process's. Each node takes its share: a limiter's *share* is
//! the number of live nodes calling its origin (this one included), and every rate gate of the
//! limiter (quota, delay, policy, pacing) is stretched by it — `n` nodes each let out `1/n` of the
//! rate, with `1/n` of the burst (at least 1). The engine feeds [`Limiters::set_peers`] with what
//! the other nodes' heartbeats say they call ([`Limiters::active_origins`]), so a node alone on a
//! host gets the whole rate and two nodes on it half each. A limiter counts as calling its origin
//! while it reserved a slot within [`ACTIVE_FOR`] (or twice its slowest gate's interval); when one
//! starts calling after being idle, [`Limiters::activity_changed`] wakes the node to announce it
//! at once. Origins are compared as `scheme://host:port` only: fingerprints are per process, so
//! two nodes using different credentials on one host still split its rate (the safe side).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::headers::{PolicyHint, WaitHint};
use crate::secret::Secret;

/// The registry of limiters, shared by every run of the process.
#[derive(Clone, Default)]
pub struct Limiters {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    limiters: Mutex<HashMap<LimiterKey, Arc<HostLimiter>>>,
    /// How many other live nodes call each origin (from their heartbeats); empty in a process
    /// that is not a node of a shared state.
    peers: Mutex<HashMap<String, u32>>,
    /// Woken when a limiter starts calling its origin after being idle.
    activity: Arc<Notify>,
}

/// What one origin's limiters take of its rate on this node (see the module's shares).
#[derive(Debug, Clone, PartialEq)]
pub struct OriginShare {
    /// `scheme://host:port`.
    pub origin: String,
    /// Live nodes calling the origin, this one included: the rate is divided by this.
    pub nodes: u32,
    /// The configured quota's requests per second on this node after the division, if the
    /// host has a quota.
    pub requests_per_second: Option<f64>,
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
    activity: Arc<Notify>,
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
    /// Live nodes calling this origin, this one included: every gate is stretched by it.
    share: NonZeroU32,
    /// The slot of the last request reserved (whether the limiter is calling its origin).
    last_slot: Option<Instant>,
}

/// A GCRA: one request per `interval` (times the limiter's share), up to `burst` (divided by
/// the share, at least 1) at once.
#[derive(Debug, Clone)]
struct Gate {
    /// The interval of this process alone, before the share.
    interval: Duration,
    burst: NonZeroU32,
    /// The theoretical arrival time of the next request; `None` before the first.
    tat: Option<Instant>,
}

/// Below this many remaining requests the limiter starts spacing requests out.
const LOW_REMAINING: u64 = 10;

/// A limiter that reserved a slot this recently (or within twice its slowest gate's interval)
/// counts as calling its origin, for the shares across nodes.
pub const ACTIVE_FOR: Duration = Duration::from_secs(10);

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
        let share = self.inner.share_of(origin);
        let mut map = lock(&self.inner.limiters);
        map.entry(key)
            .or_insert_with(|| {
                let limiter = HostLimiter::new(origin, quota, self.inner.activity.clone());
                limiter.state().share = share;
                Arc::new(limiter)
            })
            .clone()
    }

    /// How many limiters exist (for tests and metrics).
    pub fn len(&self) -> usize {
        lock(&self.inner.limiters).len()
    }

    /// The origins this process calls now under a rate gate (a quota, a delay or the API's
    /// policy), sorted: what its heartbeat tells the other nodes.
    pub fn active_origins(&self) -> Vec<String> {
        let now = Instant::now();
        let mut origins: Vec<String> = self
            .all()
            .into_iter()
            .filter(|limiter| limiter.state().calls_under_a_gate(now))
            .map(|limiter| limiter.origin.clone())
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    /// Adopts what the other live nodes call: `peers[origin]` nodes besides this one. Every
    /// limiter's share becomes that count plus one (1 for an origin no other node calls), at
    /// once for requests not yet reserved.
    pub fn set_peers(&self, peers: HashMap<String, u32>) {
        *lock(&self.inner.peers) = peers;
        for limiter in self.all() {
            let share = self.inner.share_of(&limiter.origin);
            limiter.state().share = share;
        }
    }

    /// Resolves when a limiter of this registry starts calling its origin after being idle
    /// (one wake-up is kept if nobody waits at that moment).
    pub async fn activity_changed(&self) {
        self.inner.activity.notified().await;
    }

    /// The shares of the origins this process calls now, sorted by origin.
    pub fn shares(&self) -> Vec<OriginShare> {
        let now = Instant::now();
        let mut shares: Vec<OriginShare> = Vec::new();
        for limiter in self.all() {
            let state = limiter.state();
            if !state.calls_under_a_gate(now) || shares.iter().any(|s| s.origin == limiter.origin) {
                continue;
            }
            shares.push(OriginShare {
                origin: limiter.origin.clone(),
                nodes: state.share.get(),
                requests_per_second: limiter.quota.map(|quota| {
                    quota.requests.get() as f64
                        / quota.period.as_secs_f64()
                        / f64::from(state.share.get())
                }),
            });
        }
        shares.sort_by(|a, b| a.origin.cmp(&b.origin));
        shares
    }

    fn all(&self) -> Vec<Arc<HostLimiter>> {
        lock(&self.inner.limiters).values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Registry {
    fn share_of(&self, origin: &str) -> NonZeroU32 {
        let peers = lock(&self.peers).get(origin).copied().unwrap_or(0);
        NonZeroU32::MIN.saturating_add(peers)
    }
}

/// Locks a mutex that guards plain data with no invariant a panic could break.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    fn new(origin: &str, quota: Option<RateQuota>, activity: Arc<Notify>) -> Self {
        Self {
            origin: origin.to_owned(),
            quota,
            activity,
            state: Mutex::new(State {
                blocked_until: None,
                refused: None,
                quota: quota.map(|quota| Gate::new(quota.interval(), quota.burst)),
                delay: None,
                policy: None,
                pacing: None,
                share: NonZeroU32::MIN,
                last_slot: None,
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
            let (slot, started_calling) = {
                let mut state = self.state();
                let was_idle = !state.calls_under_a_gate(now);
                let slot = state.reserve(now)?;
                (slot, was_idle && state.calls_under_a_gate(now))
            };
            if started_calling {
                // A node announces a host it starts calling without waiting for its heartbeat.
                self.activity.notify_one();
            }
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

    /// The configured quota, if any (this process's whole quota, before its share).
    pub fn quota(&self) -> Option<RateQuota> {
        self.quota
    }

    /// Live nodes calling this origin, this one included: every gate is stretched by it.
    #[cfg(test)]
    pub(crate) fn share(&self) -> NonZeroU32 {
        self.state().share
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
        lock(&self.state)
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
        let share = self.share;
        for gate in self.gates() {
            if let Some(earliest) = gate.earliest(share) {
                slot = slot.max(earliest);
            }
        }
        for gate in self.gates() {
            gate.take(slot, share);
        }
        self.last_slot = Some(slot);
        Ok(slot)
    }

    /// Whether this limiter calls its origin under a rate gate now (it reserved a slot within
    /// [`ACTIVE_FOR`] or twice its slowest gate's interval), for the shares across nodes.
    fn calls_under_a_gate(&self, now: Instant) -> bool {
        let gates = [
            self.quota.as_ref(),
            self.delay.as_ref(),
            self.policy.as_ref().map(|(_, gate)| gate),
        ];
        let Some(slowest) = gates
            .into_iter()
            .flatten()
            .map(|gate| gate.interval(self.share))
            .max()
        else {
            return false;
        };
        let window = ACTIVE_FOR.max(slowest.saturating_mul(2));
        self.last_slot
            .is_some_and(|slot| slot.checked_add(window).is_none_or(|until| until > now))
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
            burst,
            tat: None,
        }
    }

    /// The interval with `share` nodes calling: `share` times this process's own.
    fn interval(&self, share: NonZeroU32) -> Duration {
        self.interval.saturating_mul(share.get())
    }

    /// How far ahead of its theoretical time a request may go: the burst divided by `share`
    /// (at least one request, i.e. no tolerance), at the stretched interval.
    fn tolerance(&self, share: NonZeroU32) -> Duration {
        let burst = (self.burst.get() / share.get()).max(1);
        self.interval(share).saturating_mul(burst - 1)
    }

    /// The earliest instant this gate lets the next request out (`None`: at once).
    fn earliest(&self, share: NonZeroU32) -> Option<Instant> {
        self.tat?.checked_sub(self.tolerance(share))
    }

    /// Records a request sent at `slot`.
    fn take(&mut self, slot: Instant, share: NonZeroU32) {
        let base = self.tat.map_or(slot, |tat| tat.max(slot));
        self.tat = Some(deadline(base, self.interval(share)));
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
