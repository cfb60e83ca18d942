//! Adaptive concurrency of OFFSET / PAGE fetches against the mock API on 127.0.0.1:0: it grows
//! against a clean slow API, shrinks to one request against an API that answers 429 to
//! everything or hangs (and the run fails as before), stays within the limiter's rate, never
//! loses the last page whatever the record count, bounds the requests past the end, and
//! `maxConcurrentRequests: 1` keeps exactly one request in flight.

use std::num::NonZeroU32;
use std::time::Duration;

use serde_json::{Value, json};
use tributary_fetch::{
    FetchError, FetchEvent, FetchSettings, GrowthStop, RateQuota, RetryPolicy, fetch_pages,
};
use tributary_mockapi::{ErrorRate, Faults, MockConfig, RateLimit, ServerErrors, Target};

use crate::fetch::{assert_exactly, complete, context, mock, plan, run, settings};

fn offset_attributes(page_size: u32) -> Value {
    json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": page_size, "offSetName": "offset"}
    })
}

fn page_attributes(page_size: u32, end_header: bool) -> Value {
    let mut paging = json!({"type": "PAGE", "limitName": "pageSize", "limitValue": page_size,
                            "pageParamName": "page", "initialPageIndex": 0});
    if end_header {
        paging["endPageIndex"] = json!("headers.x-pagecount");
    }
    json!({
        "urlParams": {"path": "/page/members", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": paging
    })
}

fn slow(records: u64, latency: Duration) -> MockConfig {
    MockConfig {
        records,
        faults: Faults {
            latency,
            ..Faults::default()
        },
        ..MockConfig::default()
    }
}

#[tokio::test]
async fn concurrency_grows_against_a_clean_slow_api_and_pages_stay_in_order() {
    let server = mock(slow(20_000, Duration::from_millis(50))).await;
    let ctx = context(settings());
    let outcome = run(&ctx, plan(&server, offset_attributes(100))).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..20_000);
    let concurrency = outcome.stats.concurrency;
    assert_eq!(concurrency.ceiling, 16, "{concurrency:?}");
    assert!(concurrency.reached >= 8, "{concurrency:?}");
    assert!(concurrency.max_in_flight >= 8, "{concurrency:?}");
    assert!(
        concurrency.max_in_flight <= u64::from(concurrency.ceiling),
        "{concurrency:?}"
    );
    assert_ne!(concurrency.stop, GrowthStop::Sequential);
}

/// Lets a run grow against a clean slow API, then turns `faults` on; returns the run's error
/// and its concurrency when it ended.
async fn grow_then_fault(
    faults: impl FnOnce(u64) -> Faults,
    settings: FetchSettings,
) -> (FetchError, tributary_fetch::ConcurrencyStats) {
    let latency = Duration::from_millis(30);
    let server = mock(slow(50_000, latency)).await;
    let ctx = context(settings);
    let mut fetch = fetch_pages(&ctx, plan(&server, offset_attributes(50)));
    let mut faults = Some(faults);
    let mut faulted = false;
    let mut error = None;
    while let Some(item) = fetch.pages.recv().await {
        match item {
            Ok(FetchEvent::Page(_)) => {
                let stats = fetch.counters.snapshot();
                if let Some(faults) = faults.take_if(|_| stats.concurrency.limit >= 8) {
                    faulted = true;
                    server.set_faults(faults(stats.requests)).unwrap();
                }
            }
            Ok(FetchEvent::End(end)) => panic!("the run should fail, it ended: {end:?}"),
            Err(err) => error = Some(err),
        }
    }
    fetch.task.await.unwrap();
    assert!(faulted, "the concurrency never reached 8 before the fault");
    (error.unwrap(), fetch.counters.snapshot().concurrency)
}

#[tokio::test]
async fn an_api_answering_429_to_everything_shrinks_it_to_one_and_the_run_fails() {
    let (error, concurrency) = grow_then_fault(
        |_| Faults {
            latency: Duration::from_millis(30),
            server_errors: Some(ServerErrors {
                rate: ErrorRate::EveryNth(std::num::NonZeroU64::MIN),
                status: 429,
                retry_after: None,
            }),
            ..Faults::default()
        },
        settings(),
    )
    .await;
    assert!(
        matches!(error, FetchError::RetriesExhausted { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("429"), "{error}");
    assert_eq!(concurrency.limit, 1, "{concurrency:?}");
    assert!(concurrency.reached >= 8, "{concurrency:?}");
    assert_eq!(concurrency.stop, GrowthStop::Throttled);
}

#[tokio::test]
async fn an_api_that_hangs_shrinks_it_to_one_and_the_run_fails_on_timeouts() {
    let settings = FetchSettings {
        request_timeout: Duration::from_millis(400),
        retry: RetryPolicy {
            max_attempts: NonZeroU32::new(3).unwrap(),
            ..settings().retry
        },
        ..settings()
    };
    let (error, concurrency) = grow_then_fault(
        |requests| Faults {
            latency: Duration::from_millis(30),
            hang: Some(Target::FromRequest(requests + 1)),
            ..Faults::default()
        },
        settings,
    )
    .await;
    assert!(
        matches!(error, FetchError::RetriesExhausted { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("no response within"), "{error}");
    assert_eq!(concurrency.limit, 1, "{concurrency:?}");
    assert_eq!(concurrency.stop, GrowthStop::Timeouts);
}

#[tokio::test]
async fn the_limiter_rate_holds_and_growth_stops_at_it() {
    let per_second = 10;
    let burst = 2;
    // The API allows a little more than our quota: our limiter must be what holds.
    let server = mock(MockConfig {
        rate_limit: Some(RateLimit {
            per_second: NonZeroU32::new(40).unwrap(),
            burst: NonZeroU32::new(20).unwrap(),
        }),
        ..slow(2_500, Duration::from_millis(20))
    })
    .await;
    let ctx = context(FetchSettings {
        quota: Some(
            RateQuota::per_second(NonZeroU32::new(per_second).unwrap())
                .with_burst(NonZeroU32::new(burst).unwrap()),
        ),
        ..settings()
    });
    let outcome = run(&ctx, plan(&server, offset_attributes(100))).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..2_500);
    let stats = server.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    let busiest_second = stats.max_in_window("/3.0", Duration::from_secs(1));
    assert!(
        busiest_second <= (per_second + burst) as usize,
        "{busiest_second} requests within one second, quota {per_second}/s + burst {burst}"
    );
    let concurrency = outcome.stats.concurrency;
    assert_eq!(concurrency.stop, GrowthStop::RateLimit, "{concurrency:?}");
    assert!(concurrency.reached < 16, "{concurrency:?}");
}

/// Runs OFFSET or PAGE over `records` records at `page_size` a page with the default
/// concurrency; checks every record arrives once and the requests past the end are bounded.
async fn check_end(records: u64, page_size: u32, attributes: Value) {
    let server = mock(slow(records, Duration::from_millis(5))).await;
    let ctx = context(settings());
    let outcome = run(&ctx, plan(&server, attributes)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..records);
    let concurrency = outcome.stats.concurrency;
    let past_end = outcome.stats.requests - outcome.pages.len() as u64;
    assert_eq!(
        past_end, concurrency.past_end_requests,
        "{records} records: every request past the last page is counted: {concurrency:?}"
    );
    assert!(
        concurrency.past_end_requests < u64::from(concurrency.reached),
        "{records} records: at most the concurrency minus the last page: {concurrency:?}"
    );
    let full_pages = records / u64::from(page_size);
    assert!(outcome.pages.len() as u64 >= full_pages);
}

#[tokio::test]
async fn offset_never_loses_the_last_page_and_bounds_requests_past_the_end() {
    // A multiple of the page size (an empty page ends it), one more, one less, and fewer
    // records than a page.
    for records in [3_000, 3_001, 2_999, 37] {
        check_end(records, 100, offset_attributes(100)).await;
    }
}

#[tokio::test]
async fn page_never_loses_the_last_page_with_or_without_the_page_count_header() {
    for records in [3_000, 3_001, 2_999] {
        check_end(records, 100, page_attributes(100, false)).await;
        check_end(records, 100, page_attributes(100, true)).await;
    }
}

#[tokio::test]
async fn max_concurrent_requests_1_keeps_exactly_one_request_in_flight() {
    let latency = Duration::from_millis(20);
    let server = mock(slow(2_000, latency)).await;
    let ctx = context(settings());
    let plan = plan(&server, offset_attributes(100)).with_max_concurrent_requests(NonZeroU32::MIN);
    let outcome = run(&ctx, plan).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..2_000);
    let concurrency = outcome.stats.concurrency;
    assert_eq!(
        (
            concurrency.limit,
            concurrency.reached,
            concurrency.max_in_flight
        ),
        (1, 1, 1),
        "{concurrency:?}"
    );
    assert_eq!(concurrency.stop, GrowthStop::Sequential);
    assert_eq!(concurrency.past_end_requests, 0);
    // The server saw each request only after the one before was answered.
    let arrivals = server.stats().arrivals("/3.0");
    assert_eq!(arrivals.len(), 21);
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= latency,
            "two requests overlapped: {arrivals:?}"
        );
    }
}

#[tokio::test]
async fn a_ceiling_below_the_default_is_never_passed() {
    let server = mock(slow(6_000, Duration::from_millis(20))).await;
    let ctx = context(settings());
    let plan = plan(&server, offset_attributes(100))
        .with_max_concurrent_requests(NonZeroU32::new(3).unwrap());
    let outcome = run(&ctx, plan).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..6_000);
    let concurrency = outcome.stats.concurrency;
    assert_eq!(
        (concurrency.ceiling, concurrency.reached),
        (3, 3),
        "{concurrency:?}"
    );
    assert!(concurrency.max_in_flight <= 3, "{concurrency:?}");
    assert!(concurrency.past_end_requests <= 3, "{concurrency:?}");
}
