use std::time::Duration;

use super::{Backoff, Concurrency, GrowthStop};

const RTT: Duration = Duration::from_millis(200);

fn answers(concurrency: &Concurrency, n: usize, rtt: Duration) {
    for _ in 0..n {
        concurrency.on_answer(rtt, Duration::ZERO);
    }
}

#[test]
fn slow_start_grows_one_per_clean_answer_up_to_the_ceiling() {
    let concurrency = Concurrency::new(16, true);
    assert_eq!(concurrency.limit(), 1);
    answers(&concurrency, 3, RTT);
    assert_eq!(concurrency.limit(), 4);
    assert_eq!(concurrency.snapshot().stop, GrowthStop::Growing);
    answers(&concurrency, 40, RTT);
    let stats = concurrency.snapshot();
    assert_eq!((stats.limit, stats.reached), (16, 16));
    assert_eq!(stats.stop, GrowthStop::Ceiling);
}

#[tokio::test(start_paused = true)]
async fn throttling_halves_at_once_and_growth_turns_additive() {
    let concurrency = Concurrency::new(16, true);
    answers(&concurrency, 7, RTT);
    assert_eq!(concurrency.limit(), 8);
    concurrency.on_backoff(Backoff::Throttled);
    assert_eq!(concurrency.limit(), 4);
    // Every 429 halves, even within one round trip.
    concurrency.on_backoff(Backoff::Throttled);
    assert_eq!(concurrency.limit(), 2);
    assert_eq!(concurrency.snapshot().stop, GrowthStop::Throttled);
    // Congestion avoidance: one more per `limit` clean answers.
    answers(&concurrency, 1, RTT);
    assert_eq!(concurrency.limit(), 2);
    answers(&concurrency, 1, RTT);
    assert_eq!(concurrency.limit(), 3);
    assert_eq!(concurrency.snapshot().reached, 8);
}

#[tokio::test(start_paused = true)]
async fn rising_latency_halves_once_per_round_trip() {
    let concurrency = Concurrency::new(16, true);
    answers(&concurrency, 7, RTT);
    concurrency.on_answer(RTT * 3, Duration::ZERO);
    concurrency.on_answer(RTT * 3, Duration::ZERO);
    assert_eq!(concurrency.limit(), 4);
    tokio::time::advance(RTT * 2).await;
    concurrency.on_answer(RTT * 3, Duration::ZERO);
    assert_eq!(concurrency.limit(), 2);
    assert_eq!(concurrency.snapshot().stop, GrowthStop::Latency);
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_429_or_timeouts_converges_to_one() {
    for backoff in [Backoff::Throttled, Backoff::Timeout] {
        let concurrency = Concurrency::new(16, true);
        answers(&concurrency, 15, RTT);
        assert_eq!(concurrency.limit(), 16);
        for _ in 0..10 {
            concurrency.on_backoff(backoff);
            tokio::time::advance(RTT * 2).await;
        }
        assert_eq!(concurrency.limit(), 1);
        let expected = match backoff {
            Backoff::Throttled => GrowthStop::Throttled,
            Backoff::Timeout => GrowthStop::Timeouts,
        };
        assert_eq!(concurrency.snapshot().stop, expected);
    }
}

#[test]
fn rising_latency_shrinks_and_flat_latency_does_not() {
    let concurrency = Concurrency::new(16, true);
    answers(&concurrency, 7, RTT);
    assert_eq!(concurrency.limit(), 8);
    // 10% jitter is flat.
    answers(&concurrency, 1, RTT * 11 / 10);
    assert_eq!(concurrency.limit(), 9);
    concurrency.on_answer(RTT * 3, Duration::ZERO);
    assert_eq!(concurrency.limit(), 4);
    assert_eq!(concurrency.snapshot().stop, GrowthStop::Latency);
}

#[test]
fn the_rate_limiter_holding_requests_stops_growth() {
    let concurrency = Concurrency::new(16, true);
    answers(&concurrency, 2, RTT);
    assert_eq!(concurrency.limit(), 3);
    for _ in 0..5 {
        concurrency.on_answer(RTT, Duration::from_millis(90));
    }
    assert_eq!(concurrency.limit(), 3);
    assert_eq!(concurrency.snapshot().stop, GrowthStop::RateLimit);
}

#[test]
fn a_ceiling_of_one_or_no_adaptation_stays_sequential() {
    for concurrency in [Concurrency::new(1, true), Concurrency::new(16, false)] {
        answers(&concurrency, 10, RTT);
        concurrency.on_backoff(Backoff::Throttled);
        let stats = concurrency.snapshot();
        assert_eq!((stats.limit, stats.reached, stats.ceiling), (1, 1, 1));
        assert_eq!(stats.stop, GrowthStop::Sequential);
        concurrency.end_of_data();
        assert_eq!(concurrency.snapshot().stop, GrowthStop::Sequential);
    }
}

#[test]
fn end_of_data_names_a_limit_that_was_still_growing() {
    let concurrency = Concurrency::new(16, true);
    answers(&concurrency, 2, RTT);
    concurrency.end_of_data();
    assert_eq!(concurrency.snapshot().stop, GrowthStop::EndOfData);
    let capped = Concurrency::new(2, true);
    answers(&capped, 3, RTT);
    capped.end_of_data();
    assert_eq!(capped.snapshot().stop, GrowthStop::Ceiling);
}

#[test]
fn in_flight_counts_requests_until_their_guard_drops() {
    let concurrency = Concurrency::new(4, true);
    let first = concurrency.start_request();
    let second = concurrency.start_request();
    assert_eq!(concurrency.snapshot().in_flight, 2);
    drop(first);
    drop(second);
    let _third = concurrency.start_request();
    let stats = concurrency.snapshot();
    assert_eq!((stats.in_flight, stats.max_in_flight), (1, 2));
}
