//! Tests of the limiter registry and its brakes, on tokio's paused clock (time advances only
//! when every task waits, so slots are exact).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

const MAX_WAIT: Duration = Duration::from_secs(900);

fn reset(seconds: f64) -> WaitHint {
    WaitHint {
        delay: Duration::try_from_secs_f64(seconds).ok(),
        seconds,
        header: "X-RateLimit-Reset",
        value: seconds.to_string(),
    }
}

#[test]
fn limiters_are_shared_per_origin_and_credential() {
    let limiters = Limiters::new();
    let alice = CredentialFingerprint::of(&[&Secret::new("alice-password")]);
    let bob = CredentialFingerprint::of(&[&Secret::new("bob-password")]);
    assert_eq!(
        alice,
        CredentialFingerprint::of(&[&Secret::new("alice-password")])
    );
    let a1 = limiters.limiter("http://127.0.0.1:1", alice, None);
    let a2 = limiters.clone().limiter("http://127.0.0.1:1", alice, None);
    let b = limiters.limiter("http://127.0.0.1:1", bob, None);
    let other_host = limiters.limiter("http://127.0.0.1:2", alice, None);
    assert!(
        Arc::ptr_eq(&a1, &a2),
        "same origin and credential share one limiter"
    );
    assert!(!Arc::ptr_eq(&a1, &b));
    assert!(!Arc::ptr_eq(&a1, &other_host));
    assert_eq!(limiters.len(), 3);
    let debug = format!("{limiters:?} {a1:?}");
    assert!(!debug.contains("alice-password"), "{debug}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_blocks_every_waiter_on_the_limiter() {
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, None);
    let start = Instant::now();
    limiter.block_for(Duration::from_secs(5));
    limiter.block_for(Duration::from_secs(2)); // a shorter pause never shortens the longer one
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await.unwrap() })
        })
        .collect();
    for waiter in waiters {
        let waited = waiter.await.unwrap();
        assert!(waited >= Duration::from_secs(5), "{waited:?}");
    }
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert!(
        limiter.acquire().await.unwrap() < Duration::from_millis(1),
        "the pause is over"
    );
}

#[tokio::test(start_paused = true)]
async fn low_remaining_quota_spaces_requests_and_zero_waits_for_the_reset() {
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, None);
    limiter.observe(3, Some(&reset(4.0)), MAX_WAIT);
    let start = Instant::now();
    for _ in 0..3 {
        limiter.acquire().await.unwrap();
    }
    // Slots at 0, 1 s and 2 s: a quarter of the window each.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    limiter.observe(0, Some(&reset(10.0)), MAX_WAIT);
    let waited = limiter.acquire().await.unwrap();
    assert_eq!(waited, Duration::from_secs(10));
    limiter.observe(500, Some(&reset(10.0)), MAX_WAIT);
    assert_eq!(
        limiter.acquire().await.unwrap(),
        Duration::ZERO,
        "plenty remaining: no pacing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reset_at_zero_remaining_counts_from_when_the_request_was_sent() {
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, None);
    let sent = Instant::now();
    // The answer took 200 ms; the API's bucket refilled 100 ms after it admitted the request.
    tokio::time::advance(Duration::from_millis(200)).await;
    limiter.observe_from(sent, 0, Some(&reset(0.1)), MAX_WAIT);
    assert_eq!(limiter.acquire().await.unwrap(), Duration::ZERO);
    // Sent 50 ms ago: 50 ms of the reset are left.
    let sent = Instant::now();
    tokio::time::advance(Duration::from_millis(50)).await;
    limiter.observe_from(sent, 0, Some(&reset(0.1)), MAX_WAIT);
    assert_eq!(limiter.acquire().await.unwrap(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn a_reset_beyond_the_maximum_wait_fails_requests_for_that_long_instead_of_sleeping() {
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, None);
    // Too long for a `Duration` at all, and merely longer than the maximum: both refused.
    for seconds in [1e30, 901.0] {
        limiter.observe(0, Some(&reset(seconds)), MAX_WAIT);
        let start = Instant::now();
        let refused = limiter.acquire().await.unwrap_err();
        assert_eq!(refused.seconds, seconds);
        assert_eq!(start.elapsed(), Duration::ZERO, "no sleep");
        tokio::time::advance(MAX_WAIT).await;
        assert!(limiter.acquire().await.is_ok(), "the refusal lapses");
    }
    // With requests left, spacing assumes a window of at most the maximum wait.
    limiter.observe(2, Some(&reset(1e30)), MAX_WAIT);
    limiter.acquire().await.unwrap();
    assert_eq!(limiter.acquire().await.unwrap(), MAX_WAIT / 3);
}

#[tokio::test]
async fn the_quota_bounds_the_request_rate() {
    let quota = RateQuota::per_second(NonZeroU32::new(100).unwrap())
        .with_burst(NonZeroU32::new(5).unwrap());
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, Some(quota));
    let start = std::time::Instant::now();
    for _ in 0..25 {
        limiter.acquire().await.unwrap();
    }
    // 5 from the burst, then 20 at 10 ms each.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn backoff_is_full_jitter_under_an_exponential_ceiling() {
    let policy = crate::retry::RetryPolicy {
        max_attempts: NonZeroU32::new(5).unwrap(),
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_total: Duration::from_secs(10),
    };
    let ceilings: Vec<_> = (1..=6)
        .map(|attempt| policy.ceiling(attempt).as_millis())
        .collect();
    assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
    let samples: Vec<_> = (0..200).map(|_| policy.backoff(3)).collect();
    assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
    assert!(
        samples.iter().any(|d| *d < Duration::from_millis(200)),
        "jitter spreads delays down to zero"
    );
    assert!(samples.iter().any(|d| *d > Duration::from_millis(200)));
}

/// Acquires `n` slots from `n` concurrent tasks and returns when each got its slot, from now.
async fn concurrent_slots(limiter: &Arc<HostLimiter>, n: usize) -> Vec<Duration> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await.unwrap();
                Instant::now()
            })
        })
        .collect();
    let mut slots = Vec::new();
    for task in tasks {
        slots.push(task.await.unwrap() - start);
    }
    slots.sort();
    slots
}

fn ms(values: &[u64]) -> Vec<Duration> {
    values.iter().map(|v| Duration::from_millis(*v)).collect()
}

#[tokio::test(start_paused = true)]
async fn the_longest_declared_delay_spaces_every_request_on_the_limiter() {
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, None);
    limiter.require_interval(Duration::from_millis(100));
    limiter.require_interval(Duration::from_millis(50)); // a shorter delay never loosens it
    assert_eq!(limiter.min_interval(), Some(Duration::from_millis(100)));
    assert_eq!(
        concurrent_slots(&limiter, 5).await,
        ms(&[0, 100, 200, 300, 400])
    );
}

#[tokio::test(start_paused = true)]
async fn the_strictest_of_quota_delay_and_policy_decides() {
    // 20/s with a burst of 5 would let five out at once; a 100 ms delay does not.
    let quota =
        RateQuota::per_second(NonZeroU32::new(20).unwrap()).with_burst(NonZeroU32::new(5).unwrap());
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, Some(quota));
    assert_eq!(
        concurrent_slots(&limiter, 5).await[..2],
        ms(&[0, 0]),
        "the burst"
    );
    limiter.require_interval(Duration::from_millis(100));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(concurrent_slots(&limiter, 3).await, ms(&[0, 100, 200]));

    // The API's policy, 4 per second: 250 ms apart, replaced when it changes.
    let policy = |requests: u64, window: u64| PolicyHint {
        requests: NonZeroU64::new(requests).unwrap(),
        window: Duration::from_secs(window),
        value: format!("{requests};w={window}"),
    };
    tokio::time::advance(Duration::from_secs(1)).await;
    limiter.learn_policy(&policy(4, 1), MAX_WAIT);
    assert_eq!(concurrent_slots(&limiter, 3).await, ms(&[0, 250, 500]));
    tokio::time::advance(Duration::from_secs(1)).await;
    limiter.learn_policy(&policy(2, 1), MAX_WAIT);
    assert_eq!(concurrent_slots(&limiter, 3).await, ms(&[0, 500, 1000]));

    // A policy slower than one request per maximum wait refuses instead of sleeping a day.
    limiter.learn_policy(&policy(1, 86_400), MAX_WAIT);
    let refused = limiter.acquire().await.unwrap_err();
    assert_eq!(
        (refused.header, refused.value.as_str()),
        ("RateLimit-Policy", "1;w=86400")
    );
}

#[tokio::test(start_paused = true)]
async fn requests_waiting_through_a_pause_do_not_burst_when_it_ends() {
    let quota = RateQuota::per_second(NonZeroU32::new(10).unwrap()).with_burst(NonZeroU32::MIN);
    let limiter = Limiters::new().limiter("http://h", CredentialFingerprint::NONE, Some(quota));
    let waiters = {
        let limiter = limiter.clone();
        tokio::spawn(async move { concurrent_slots(&limiter, 4).await })
    };
    // The first request is out; the others hold slots at 100, 200 and 300 ms.
    tokio::time::sleep(Duration::from_millis(50)).await;
    limiter.block_for(Duration::from_secs(1));
    let slots = waiters.await.unwrap();
    assert_eq!(slots[0], Duration::ZERO);
    for pair in slots[1..].windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{slots:?}");
    }
    assert!(slots[1] >= Duration::from_millis(1050), "{slots:?}");
}

#[test]
fn rates_from_the_config_are_checked() {
    let quota = RateQuota::from_rate(0.5, NonZeroU32::new(3).unwrap()).unwrap();
    assert_eq!(quota.interval(), Duration::from_secs(2));
    assert_eq!(quota.burst.get(), 3);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12, 1e-300] {
        assert!(
            RateQuota::from_rate(bad, NonZeroU32::MIN).is_none(),
            "{bad}"
        );
    }
}

/// The offsets from `start` at which `n` requests, one after another, got out of `limiter`.
async fn slots(limiter: &HostLimiter, start: Instant, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        limiter.acquire().await.unwrap();
        out.push(Instant::now() - start);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_share_divides_the_rate_and_the_burst_among_the_nodes_calling_the_origin() {
    let origin = "http://api.test:80";
    let quota =
        RateQuota::per_second(NonZeroU32::new(10).unwrap()).with_burst(NonZeroU32::new(4).unwrap());
    let alone = Limiters::new().limiter(origin, CredentialFingerprint::NONE, Some(quota));
    let start = Instant::now();
    assert_eq!(
        slots(&alone, start, 7).await,
        ms(&[0, 0, 0, 0, 100, 200, 300]),
        "one node: the whole burst, then 10/s"
    );

    let limiters = Limiters::new();
    limiters.set_peers(HashMap::from([(origin.to_owned(), 1)]));
    let shared = limiters.limiter(origin, CredentialFingerprint::NONE, Some(quota));
    assert_eq!(shared.share().get(), 2);
    let start = Instant::now();
    assert_eq!(
        slots(&shared, start, 5).await,
        ms(&[0, 0, 200, 400, 600]),
        "two nodes: half the burst, then 5/s"
    );
    // The other node went away: the whole rate again, from the next request on.
    limiters.set_peers(HashMap::new());
    assert_eq!(shared.share().get(), 1);
    let start = Instant::now();
    let after = slots(&shared, start, 3).await;
    assert!(
        after
            .windows(2)
            .all(|pair| pair[1] - pair[0] <= Duration::from_millis(100)),
        "{after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_share_stretches_the_declared_delay_and_the_apis_policy_too() {
    let origin = "http://api.test:80";
    let limiters = Limiters::new();
    limiters.set_peers(HashMap::from([
        (origin.to_owned(), 2),
        ("http://other:80".to_owned(), 5),
    ]));
    let limiter = limiters.limiter(origin, CredentialFingerprint::NONE, None);
    limiter.require_interval(Duration::from_millis(100));
    let start = Instant::now();
    assert_eq!(slots(&limiter, start, 3).await, ms(&[0, 300, 600]));
}

#[tokio::test(start_paused = true)]
async fn an_origin_is_active_while_it_is_called_under_a_gate_and_its_start_wakes_the_node() {
    let limiters = Limiters::new();
    let quota = RateQuota::per_second(NonZeroU32::new(2).unwrap());
    let gated = limiters.limiter("http://gated:80", CredentialFingerprint::NONE, Some(quota));
    let free = limiters.limiter("http://free:80", CredentialFingerprint::NONE, None);
    assert!(limiters.active_origins().is_empty());
    free.acquire().await.unwrap();
    assert!(
        limiters.active_origins().is_empty(),
        "an origin without any rate gate has nothing to share"
    );
    gated.acquire().await.unwrap();
    assert_eq!(
        limiters.active_origins(),
        vec!["http://gated:80".to_owned()]
    );
    tokio::time::timeout(Duration::from_millis(1), limiters.activity_changed())
        .await
        .expect("the first request after idling wakes the node");
    gated.acquire().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1), limiters.activity_changed())
            .await
            .is_err(),
        "a limiter already calling does not wake it again"
    );
    let shares = limiters.shares();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].nodes, 1);
    assert_eq!(shares[0].requests_per_second, Some(2.0));
    limiters.set_peers(HashMap::from([("http://gated:80".to_owned(), 3)]));
    assert_eq!(limiters.shares()[0].requests_per_second, Some(0.5));
    tokio::time::advance(ACTIVE_FOR * 2 + Duration::from_secs(1)).await;
    assert!(
        limiters.active_origins().is_empty(),
        "an origin not called for a while is no longer active"
    );
}
