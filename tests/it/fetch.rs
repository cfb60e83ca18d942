//! The fetcher against the mock API on 127.0.0.1:0: every pagination type over 10,000+
//! records (exact count, every id once), every auth type (OAuth2 refresh under concurrency,
//! rotated tokens handed back), a 429 storm under the quota, retried 5xx and timeouts, loop
//! errors, truncated and malformed pages, schedule windows, resume, and secrets kept out of
//! Debug output and error messages.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use tributary_fetch::{
    Auth, ConnectionCheck, ErrorCause, FetchContext, FetchEnd, FetchError, FetchEvent, FetchPlan,
    FetchSettings, FetchStats, Limiters, NextPage, Page, RateQuota, RenderInputs, RetryPolicy,
    RotatedTokens, fetch_pages, test_connection,
};
use tributary_mockapi::{
    ErrorRate, Faults, ForeignPointer, MockAuth, MockConfig, MockServer, OAuth2, RateLimit,
    ServerErrors, Target, TokenFieldNames,
};
use tributary_spec::{ConnectionSpec, ScheduleWindow};

use crate::hostile::{self, Reply};

pub(crate) const SEED: u64 = 11;

/// What a run produced.
pub(crate) struct Outcome {
    pub(crate) pages: Vec<Page>,
    pub(crate) error: Option<FetchError>,
    /// The `End` the fetcher sent last (None after an error).
    pub(crate) end: Option<FetchEnd>,
    pub(crate) stats: FetchStats,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub(crate) async fn mock(config: MockConfig) -> MockServer {
    tributary_mockapi::start(
        MockConfig {
            seed: SEED,
            ..config
        },
        loopback(),
    )
    .await
    .unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn basic_auth_spec() -> Value {
    json!({"name": "Basic Authentication", "type": "BasicAuthentication",
           "spec": {"type": "object", "properties": {
               "host": {"type": "string"}, "username": {"type": "string"},
               "password": {"type": "string", "format": "password"}}}})
}

fn key_auth_spec() -> Value {
    json!({"name": "API Key Authentication", "type": "KeyBased",
           "spec": {"type": "object", "properties": {
               "host": {"type": "string"},
               "authKey1": {"type": "string", "format": "password", "restAttributes": {"headerParamName": "X-Auth-Key1"}},
               "authKey2": {"type": "string", "format": "password"}}}})
}

fn oauth_spec() -> Value {
    json!({"name": "OAuth2 Refresh Code", "type": "OAuth2RefreshCode",
           "spec": {"type": "object", "properties": {
               "host": {"type": "string"}, "accessToken": {"type": "string", "format": "password"},
               "refreshToken": {"type": "string", "format": "password"},
               "clientId": {"type": "string"}, "clientSecret": {"type": "string", "format": "password"},
               "expirationDate": {"type": "string", "format": "date"},
               "accessTokenUrl": {"type": "string"}, "authorizationTestUrl": {"type": "string"}}}})
}

/// A connection spec with one authSpec and the given `sourceSpec.attributes`.
fn spec(auth_spec: Value, attributes: Value) -> ConnectionSpec {
    let document = json!({
        "name": "fetch-it",
        "authSpec": [auth_spec],
        "sourceSpec": {"attributes": attributes,
                       "spec": {"type": "object", "properties": {"listId": {"type": "string"}}}}
    });
    tributary_spec::connection_spec_from_value("fetch-it", &document).unwrap()
}

pub(crate) fn settings() -> FetchSettings {
    FetchSettings {
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: NonZeroU32::new(5).unwrap(),
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            max_total: Duration::from_secs(30),
        },
        ..FetchSettings::default()
    }
}

pub(crate) fn context(settings: FetchSettings) -> FetchContext {
    FetchContext::try_new(Limiters::new(), settings).unwrap()
}

fn plan_with(
    spec: &ConnectionSpec,
    auth: Auth,
    auth_params: &Map<String, Value>,
    window: Option<ScheduleWindow>,
) -> FetchPlan {
    let source_params = object(json!({"listId": "it"}));
    let env = |_: &str| None;
    let inputs = RenderInputs {
        source_params: &source_params,
        auth_params,
        env: &env,
        window: window.as_ref(),
    };
    FetchPlan::try_new(&spec.source, auth, &inputs).unwrap()
}

/// A plan without credentials against `server`.
pub(crate) fn plan(server: &MockServer, attributes: Value) -> FetchPlan {
    plan_at(&server.base_url(), attributes)
}

/// A plan without credentials against the API at `base_url`.
fn plan_at(base_url: &str, attributes: Value) -> FetchPlan {
    let spec = spec(basic_auth_spec(), attributes);
    plan_with(
        &spec,
        Auth::none(),
        &object(json!({"host": base_url})),
        None,
    )
}

/// OFFSET over `/items`, two records a page, on a hostile server.
fn hostile_attributes() -> Value {
    json!({
        "urlParams": {"path": "/items", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 2, "offSetName": "offset"}
    })
}

/// Page `n` of the hostile OFFSET API: records `r{2n}` and `r{2n+1}`, then an empty page from
/// the fourth page on.
fn hostile_page(n: usize) -> Reply {
    let items: Vec<Value> = if n < 3 {
        vec![
            json!({"id": format!("r{}", 2 * n)}),
            json!({"id": format!("r{}", 2 * n + 1)}),
        ]
    } else {
        Vec::new()
    };
    Reply::json(json!({ "items": items }))
}

pub(crate) async fn run(ctx: &FetchContext, plan: FetchPlan) -> Outcome {
    let mut fetch = fetch_pages(ctx, plan);
    let mut pages = Vec::new();
    let mut error = None;
    let mut end = None;
    while let Some(item) = fetch.pages.recv().await {
        assert!(
            error.is_none() && end.is_none(),
            "nothing follows the End or an error"
        );
        match item {
            Ok(FetchEvent::Page(page)) => pages.push(page),
            Ok(FetchEvent::End(last)) => end = Some(last),
            Err(err) => error = Some(err),
        }
    }
    fetch.task.await.unwrap();
    assert!(
        error.is_some() != end.is_some(),
        "exactly one End or one error ends the stream"
    );
    Outcome {
        pages,
        error,
        end,
        stats: fetch.counters.snapshot(),
    }
}

pub(crate) fn ids(pages: &[Page]) -> Vec<String> {
    let mut out = Vec::new();
    for page in pages {
        let text = std::str::from_utf8(&page.records).unwrap();
        assert_eq!(
            text.lines().count(),
            page.record_count,
            "page {} count",
            page.page_idx
        );
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            out.push(record["id"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// Every id of records `range` exactly once, nothing else.
pub(crate) fn assert_exactly(pages: &[Page], range: std::ops::Range<u64>) {
    let got = ids(pages);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no id twice");
    let expected: HashSet<String> = range
        .clone()
        .map(|i| {
            tributary_mockapi::record(SEED, i)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(got.len() as u64, range.end - range.start, "exact count");
    assert!(
        got.iter().all(|id| expected.contains(id)),
        "only ids of records {range:?}"
    );
    for (idx, page) in pages.iter().enumerate() {
        assert_eq!(page.page_idx, idx as u64, "pages in order");
    }
}

pub(crate) fn complete(outcome: &Outcome) {
    if let Some(err) = &outcome.error {
        panic!("run failed: {err}");
    }
    assert_eq!(outcome.pages.last().unwrap().position.next, NextPage::Done);
    let end = outcome.end.as_ref().unwrap();
    assert!(!end.truncated);
    assert_eq!(end.position, outcome.pages.last().unwrap().position);
}

#[tokio::test]
async fn offset_walks_every_record_and_stops_on_a_short_page() {
    let server = mock(MockConfig {
        records: 10_500,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": {"path": "$.members", "skipAttributes": ["_links", "tags"]},
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": "1000", "offSetName": "offset"}
    });
    let outcome = run(&context(settings()), plan(&server, attributes)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_500);
    assert_eq!(outcome.pages.len(), 11, "ten full pages and a short one");
    // Requests issued before the short page was seen are the only ones after it, and counted.
    let concurrency = outcome.stats.concurrency;
    // (A request cancelled on its way may never arrive.)
    let data_requests = server.stats().data_requests;
    assert!(
        (11..=11 + concurrency.past_end_requests).contains(&data_requests),
        "{data_requests} {concurrency:?}"
    );
    assert!(
        concurrency.past_end_requests < u64::from(concurrency.reached),
        "{concurrency:?}"
    );
    let first: Value = serde_json::from_str(
        std::str::from_utf8(&outcome.pages[0].records)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        first.get("tags").is_none() && first.get("email_address").is_some(),
        "skipAttributes applied: {first}"
    );
    assert_eq!(outcome.stats.pages, 11);
    assert_eq!(outcome.stats.records, 10_500);
    assert!(outcome.stats.bytes_in > 10_500 * 200);
}

#[tokio::test]
async fn offset_end_condition_with_concurrent_requests_emits_pages_in_order() {
    let server = mock(MockConfig {
        records: 12_000,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 1000, "offsetName": "offset",
                             "endConditionName": "$.has_more", "endConditionValue": "Const:false"}
    });
    let plan = plan(&server, attributes).with_max_concurrent_requests(NonZeroU32::new(4).unwrap());
    let outcome = run(&context(settings()), plan).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..12_000);
    assert_eq!(
        outcome.pages.len(),
        12,
        "the last full page says has_more=false"
    );
}

#[tokio::test]
async fn page_numbers_from_one_up_to_the_end_index_in_a_response_header() {
    let server = mock(MockConfig {
        records: 10_001,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/page/members", "method": "GET", "queryParams": {"base": "1"}},
        "contentPath": {"path": "$.items"},
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 700, "pageParamName": "page",
                             "initialPageIndex": 1, "endPageIndex": "headers.x-pagecount"}
    });
    let outcome = run(&context(settings()), plan(&server, attributes)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_001);
    assert_eq!(
        outcome.pages.len(),
        15,
        "pages 1..=15 and no request past the end index"
    );
    assert_eq!(server.stats().data_requests, 15);
}

#[tokio::test]
async fn page_numbers_from_zero_concurrently_stop_on_an_empty_page() {
    let server = mock(MockConfig {
        records: 10_000,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/page/members", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 1000, "pageParamName": "page"}
    });
    let plan = plan(&server, attributes).with_max_concurrent_requests(NonZeroU32::new(3).unwrap());
    let outcome = run(&context(settings()), plan).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);
    assert_eq!(
        outcome.pages.last().unwrap().record_count,
        0,
        "the empty page ends the run"
    );
}

#[tokio::test]
async fn continuation_token_as_query_param_and_as_header() {
    let server = mock(MockConfig {
        records: 10_200,
        ..Default::default()
    })
    .await;
    for (placement, name) in [("QUERYPARAM", "cursor"), ("HEADERPARAM", "X-Cursor")] {
        let attributes = json!({
            "urlParams": {"path": "/cursor/members", "method": "GET"},
            "contentPath": "$.data",
            "paginationParams": {"type": "CONTINUATION_TOKEN", "limitName": "limit", "limitValue": 1000,
                                 "continuationTokenPath": "$.meta.after_cursor", "parameterType": placement, "parameterName": name}
        });
        let outcome = run(&context(settings()), plan(&server, attributes)).await;
        complete(&outcome);
        assert_exactly(&outcome.pages, 0..10_200);
        assert_eq!(outcome.pages.len(), 11, "{placement}");
    }
}

#[tokio::test]
async fn pointer_absolute_and_relative_urls() {
    let server = mock(MockConfig {
        records: 10_000,
        ..Default::default()
    })
    .await;
    for relative in ["0", "1"] {
        let attributes = json!({
            "urlParams": {"path": "/pointer/members", "method": "GET", "queryParams": {"relative": relative}},
            "contentPath": "$.results",
            "paginationParams": {"type": "POINTER", "limitName": "limit", "limitValue": 2500, "pointerPath": "paging.next"}
        });
        let outcome = run(&context(settings()), plan(&server, attributes)).await;
        complete(&outcome);
        assert_exactly(&outcome.pages, 0..10_000);
        let NextPage::Url { url } = &outcome.pages[0].position.next else {
            panic!("pointer position")
        };
        assert!(
            url.starts_with(&server.base_url()),
            "relative={relative}: resolved against the request URL: {url}"
        );
    }
}

#[tokio::test]
async fn link_header_over_a_root_array() {
    let server = mock(MockConfig {
        records: 10_000,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/link/members", "method": "GET", "queryParams": {"page": "1"}},
        "contentPath": "$",
        "paginationParams": {"type": "LINK", "limitName": "per_page", "limitValue": 1000}
    });
    let outcome = run(&context(settings()), plan(&server, attributes)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);
    assert_eq!(outcome.pages.len(), 10);
}

#[tokio::test]
async fn none_is_a_single_request_and_delay_spaces_requests() {
    let server = mock(MockConfig {
        records: 10_000,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/all/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "NONE"}
    });
    let outcome = run(&context(settings()), plan(&server, attributes)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);
    assert_eq!(server.stats().data_requests, 1);

    let delayed = mock(MockConfig {
        records: 400,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/3.0/lists/x/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 100, "offSetName": "offset", "delayRequestMillis": 120}
    });
    let outcome = run(&context(settings()), plan(&delayed, attributes)).await;
    complete(&outcome);
    let arrivals = delayed.stats().arrivals("/3.0");
    // Four full pages and the empty one, and perhaps requests the adaptive concurrency sent
    // past it (a request cancelled on its way may never arrive).
    let past_end = outcome.stats.concurrency.past_end_requests;
    assert!(
        (5..=5 + past_end).contains(&(arrivals.len() as u64)),
        "{arrivals:?} {past_end}"
    );
    // Requests leave exactly 120 ms apart; with two in flight, one may spend a few more
    // milliseconds opening its connection, so single gaps at the server vary a little, and
    // the whole run is never shorter than the delays (less one connection setup, which takes
    // up to a few tens of milliseconds on a loaded machine).
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(100),
            "{arrivals:?}"
        );
    }
    let span = arrivals[arrivals.len() - 1] - arrivals[0];
    let delays = Duration::from_millis(120) * (arrivals.len() as u32 - 1);
    assert!(span + Duration::from_millis(30) >= delays, "{arrivals:?}");
}

#[tokio::test]
async fn maximum_request_caps_a_run_and_its_position_resumes_the_rest() {
    let server = mock(MockConfig {
        records: 10_000,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/cursor/members", "method": "GET"},
        "contentPath": "$.data",
        "paginationParams": {"type": "CONTINUATION_TOKEN", "limitName": "limit", "limitValue": 1000,
                             "continuationTokenPath": "$.meta.after_cursor", "parameterName": "cursor", "maximumRequest": 3}
    });
    let ctx = context(settings());
    let first = run(&ctx, plan(&server, attributes.clone())).await;
    assert!(first.error.is_none());
    assert_eq!(first.pages.len(), 3, "maximumRequest stops the run");
    let position = first.pages.last().unwrap().position.clone();
    assert!(
        matches!(position.next, NextPage::Token { .. }),
        "{position:?}"
    );
    let end = first.end.clone().unwrap();
    assert!(end.truncated, "the End says pages were left");
    assert_eq!(end.position, position);
    // A checkpoint survives a round trip through JSON.
    let position: tributary_fetch::Position =
        serde_json::from_str(&serde_json::to_string(&position).unwrap()).unwrap();

    // A checkpoint of one window does not resume another.
    let other_window = ScheduleWindow {
        start: None,
        end: Utc::now(),
    };
    let wrong = plan_with(
        &spec(basic_auth_spec(), attributes.clone()),
        Auth::none(),
        &object(json!({"host": server.base_url()})),
        Some(other_window),
    )
    .resume_from(position.clone());
    let err = run(&ctx, wrong).await.error.unwrap();
    assert!(
        err.to_string()
            .starts_with("resume position belongs to window None"),
        "{err}"
    );

    // maximumRequest is per run: each resumed run of the same spec gets three more requests.
    let mut all = first.pages;
    let mut position = position;
    for run_idx in 1..=2 {
        let next = run(
            &ctx,
            plan(&server, attributes.clone()).resume_from(position),
        )
        .await;
        assert!(next.error.is_none());
        assert_eq!(next.pages.len(), 3);
        assert_eq!(
            next.pages[0].page_idx,
            3 * run_idx,
            "page numbering continues"
        );
        let end = next.end.clone().unwrap();
        assert!(end.truncated);
        position = end.position;
        all.extend(next.pages);
    }
    assert_eq!(
        position.requests, 9,
        "the position counts every request of the window"
    );
    let rest = run(&ctx, plan(&server, attributes).resume_from(position)).await;
    assert!(rest.error.is_none());
    assert_eq!(rest.pages.len(), 1, "the last of the ten pages");
    assert!(
        !rest.end.clone().unwrap().truncated,
        "the window is complete"
    );
    all.extend(rest.pages);
    assert_exactly(&all, 0..10_000);
}

#[tokio::test]
async fn basic_and_key_auth_and_rejected_credentials_without_leaking_them() {
    let password = "s3cret-basic-password";
    let server = mock(MockConfig {
        records: 10_000,
        auth: MockAuth::Basic {
            username: "ann".into(),
            password: tributary_mockapi::Secret::new(password),
        },
        ..Default::default()
    })
    .await;
    let spec = spec(
        basic_auth_spec(),
        json!({
            "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
            "contentPath": "$.members",
            "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 2000, "offSetName": "offset"}
        }),
    );
    let ctx = context(settings());
    let good = object(json!({"host": server.base_url(), "username": "ann", "password": password}));
    let auth = Auth::try_new(&spec.auth_specs[0], &good, &[], None).unwrap();
    let plan = plan_with(&spec, auth, &good, None);
    let debug = format!("{plan:?}");
    assert!(!debug.contains(password), "{debug}");
    let outcome = run(&ctx, plan).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);

    let wrong_password = "wrong-password-value";
    let bad =
        object(json!({"host": server.base_url(), "username": "ann", "password": wrong_password}));
    let auth = Auth::try_new(&spec.auth_specs[0], &bad, &[], None).unwrap();
    let outcome = run(&ctx, plan_with(&spec, auth, &bad, None)).await;
    let err = outcome.error.expect("401 fails the run");
    assert_eq!(err.cause(), ErrorCause::Auth);
    assert!(!err.is_retryable());
    let message = err.to_string();
    assert!(
        message.contains("401") && message.contains("/3.0/lists/it/members"),
        "{message}"
    );
    assert!(
        !message.contains(wrong_password) && !format!("{err:?}").contains(wrong_password),
        "{message}"
    );
    assert!(outcome.pages.is_empty());

    let keys = mock(MockConfig {
        records: 10_000,
        auth: MockAuth::ApiKey {
            keys: vec![
                (
                    "X-Auth-Key1".into(),
                    tributary_mockapi::Secret::new("key-one-value"),
                ),
                (
                    "authKey2".into(),
                    tributary_mockapi::Secret::new("key-two-value"),
                ),
            ],
        },
        ..Default::default()
    })
    .await;
    let spec = self::spec(
        key_auth_spec(),
        json!({
            "urlParams": {"path": "/page/members", "method": "GET"},
            "contentPath": "$.items",
            "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 2500, "pageParamName": "page"}
        }),
    );
    let params = object(
        json!({"host": keys.base_url(), "authKey1": "key-one-value", "authKey2": "key-two-value"}),
    );
    let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], None).unwrap();
    let outcome = run(&ctx, plan_with(&spec, auth, &params, None)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);
    assert_eq!(keys.stats().unauthorized, 0);
}

fn oauth_mock(rotate: bool, ttl: Duration) -> MockConfig {
    MockConfig {
        records: 10_000,
        auth: MockAuth::OAuth2(OAuth2 {
            client_id: "client-1".into(),
            client_secret: tributary_mockapi::Secret::new("client-secret-value"),
            access_token: tributary_mockapi::Secret::new("initial-access-token"),
            refresh_token: tributary_mockapi::Secret::new("initial-refresh-token"),
            access_ttl: ttl,
            rotate_refresh_token: rotate,
            fields: TokenFieldNames {
                access_token: "access_token".into(),
                refresh_token: "refresh_token".into(),
                expires_in: "expires_in".into(),
                client_id: "client_id".into(),
                client_secret: "client_secret".into(),
            },
        }),
        ..Default::default()
    }
}

fn oauth_params(
    server: &MockServer,
    access_token: &str,
    expiration: DateTime<Utc>,
) -> Map<String, Value> {
    object(json!({
        "host": server.base_url(),
        "accessToken": access_token,
        "refreshToken": "initial-refresh-token",
        "clientId": "client-1",
        "clientSecret": "client-secret-value",
        "expirationDate": expiration.to_rfc3339(),
        "accessTokenUrl": format!("{}/oauth/token", server.base_url()),
        "authorizationTestUrl": "${host}/oauth/test"
    }))
}

#[tokio::test]
async fn oauth_refresh_after_401_under_concurrency_is_single_flight_and_hands_back_rotated_tokens()
{
    let server = mock(oauth_mock(true, Duration::from_secs(600))).await;
    let spec = spec(
        oauth_spec(),
        json!({
            "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
            "contentPath": "$.members",
            "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 500, "offSetName": "offset"}
        }),
    );
    // The server does not know this token although it is not expired by date: every request of
    // the first concurrent wave gets a 401.
    let params = oauth_params(
        &server,
        "revoked-access-token",
        Utc::now() + chrono::Duration::hours(1),
    );
    let rotated: Arc<Mutex<Vec<RotatedTokens>>> = Arc::default();
    let sink = rotated.clone();
    let callback = tributary_fetch::TokenCallback::new("flow-1", move |tokens: &RotatedTokens| {
        sink.lock().unwrap().push(tokens.clone())
    });
    let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], Some(callback)).unwrap();
    // Adaptive concurrency starts each run at one request: four runs of the grant make the
    // concurrent wave of 401s.
    let ctx = context(settings());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let plan = plan_with(&spec, auth.clone(), &params, None)
                .with_max_concurrent_requests(NonZeroU32::new(8).unwrap());
            let ctx = ctx.clone();
            tokio::spawn(async move { run(&ctx, plan).await })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.unwrap();
        complete(&outcome);
        assert_exactly(&outcome.pages, 0..10_000);
    }
    let stats = server.stats();
    assert_eq!(stats.refreshes, 1, "one refresh for the whole wave of 401s");
    assert_eq!(stats.token_requests, 1);
    assert!(
        stats.unauthorized >= 2,
        "several requests were rejected concurrently: {}",
        stats.unauthorized
    );
    let rotated = rotated.lock().unwrap().clone();
    assert_eq!(rotated.len(), 1);
    let new_refresh = rotated[0]
        .refresh_token
        .as_ref()
        .expect("the server rotated the refresh token");
    assert_ne!(new_refresh.expose(), "initial-refresh-token");
    assert!(rotated[0].expires_at.is_some_and(|at| at > Utc::now()));
    let debug = format!("{auth:?} {rotated:?}");
    for secret in [
        "initial-refresh-token",
        "client-secret-value",
        rotated[0].access_token.expose(),
        new_refresh.expose(),
    ] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[tokio::test]
async fn oauth_proactive_refresh_before_expiry_and_test_connection() {
    let server = mock(oauth_mock(false, Duration::from_secs(600))).await;
    let spec = spec(
        oauth_spec(),
        json!({
            "urlParams": {"path": "/cursor/members", "method": "GET"},
            "contentPath": "$.data",
            "paginationParams": {"type": "CONTINUATION_TOKEN", "limitName": "limit", "limitValue": 5000,
                                 "continuationTokenPath": "$.meta.after_cursor", "parameterName": "cursor"}
        }),
    );
    let ctx = context(settings());
    // The initial token is valid at the server, but its expirationDate has passed: refresh first.
    let params = oauth_params(
        &server,
        "initial-access-token",
        Utc::now() - chrono::Duration::minutes(1),
    );
    let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], None).unwrap();
    let outcome = run(&ctx, plan_with(&spec, auth.clone(), &params, None)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);
    assert_eq!(server.stats().refreshes, 1);
    assert_eq!(
        server.stats().unauthorized,
        0,
        "refreshed before the API had to refuse"
    );

    let check = test_connection(&ctx.client, &auth, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(check, ConnectionCheck::Passed { status: 200 });
    server.expire_access_tokens();
    let check = test_connection(&ctx.client, &auth, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        check,
        ConnectionCheck::Passed { status: 200 },
        "401, refresh, retry"
    );
    assert_eq!(server.stats().refreshes, 2);

    let bad = oauth_params(
        &server,
        "unknown-token-value",
        Utc::now() + chrono::Duration::hours(1),
    );
    let mut bad = bad;
    bad.insert("refreshToken".into(), json!("unknown-refresh-value"));
    let auth = Auth::try_new(&spec.auth_specs[0], &bad, &[], None).unwrap();
    let err = test_connection(&ctx.client, &auth, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    let message = format!("{err} {err:?}");
    assert!(
        message.contains("token refresh") && message.contains("400"),
        "{message}"
    );
    for secret in [
        "unknown-token-value",
        "unknown-refresh-value",
        "client-secret-value",
    ] {
        assert!(!message.contains(secret), "{message}");
    }
}

#[tokio::test]
async fn a_pointer_to_another_host_is_followed_without_credentials() {
    let foreign = mock(MockConfig {
        records: 10_000,
        ..Default::default()
    })
    .await;
    let password = "home-host-password";
    let home = mock(MockConfig {
        records: 10_000,
        auth: MockAuth::Basic {
            username: "ann".into(),
            password: tributary_mockapi::Secret::new(password),
        },
        faults: Faults {
            foreign_pointer: Some(ForeignPointer {
                base_url: foreign.base_url(),
                at: Target::Request(2),
            }),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let spec = spec(
        basic_auth_spec(),
        json!({
            "urlParams": {"path": "/pointer/members", "method": "GET"},
            "headerParams": {"X-Api-Password": "${password}", "Accept": "application/json"},
            "contentPath": "$.results",
            "paginationParams": {"type": "POINTER", "limitName": "limit", "limitValue": 1000, "pointerPath": "$.paging.next"}
        }),
    );
    let params = object(json!({"host": home.base_url(), "username": "ann", "password": password}));
    let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], None).unwrap();
    let outcome = run(&context(settings()), plan_with(&spec, auth, &params, None)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);
    assert_eq!(home.stats().data_requests, 2);
    assert_eq!(home.stats().requests_with_credentials, 2);
    assert!(foreign.stats().data_requests >= 8);
    assert_eq!(
        foreign.stats().requests_with_credentials,
        0,
        "auth and credential headers dropped off-origin"
    );
}

#[tokio::test]
async fn a_429_storm_pauses_the_shared_limiter_and_every_record_arrives() {
    let per_second = 40;
    let burst = 10;
    let server = mock(MockConfig {
        records: 10_000,
        rate_limit: Some(RateLimit {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }),
        // On top of the token bucket (whose rate-limit headers our limiter paces itself by), a
        // storm of 429s with Retry-After on every 16th data request.
        faults: Faults {
            server_errors: Some(ServerErrors {
                rate: ErrorRate::EveryNth(NonZeroU64::new(16).unwrap()),
                status: 429,
                retry_after: Some(Duration::from_secs(1)),
            }),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // Our own quota is higher than the API's: the API's headers and answers must hold us back.
    let settings = FetchSettings {
        quota: Some(
            RateQuota::per_second(NonZeroU32::new(200).unwrap())
                .with_burst(NonZeroU32::new(20).unwrap()),
        ),
        ..settings()
    };
    let ctx = context(settings);
    let attributes = json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 500, "offSetName": "offset"}
    });
    // Four runs on the same origin and credentials share one limiter; their first wave of 16
    // requests is larger than the API's burst, so the API refuses some with Retry-After.
    let plans: Vec<FetchPlan> = (0..4)
        .map(|_| {
            plan(&server, attributes.clone())
                .with_max_concurrent_requests(NonZeroU32::new(4).unwrap())
        })
        .collect();
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let ctx = ctx.clone();
            tokio::spawn(async move { run(&ctx, plan).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(ctx.limiters.len(), 1);
    for outcome in &outcomes {
        complete(outcome);
        assert_exactly(&outcome.pages, 0..10_000);
    }
    let stats = server.stats();
    let refusals = stats.rate_limited + stats.injected_errors;
    assert!(stats.injected_errors >= 4, "the storm happened: {stats:?}");
    let busiest_second = stats.max_in_window("/3.0", Duration::from_secs(1));
    assert!(
        busiest_second <= (per_second + burst) as usize,
        "{busiest_second} requests within one second, quota {per_second}/s + burst {burst}"
    );
    // Every run waited through every pause, not only the run whose request got the 429.
    for outcome in &outcomes {
        assert!(
            outcome.stats.throttled >= Duration::from_secs(2),
            "{:?}",
            outcome.stats
        );
    }
    // Every 429 was waited out and retried, except those of requests past the end of the data
    // (concurrent requests beyond the last page), which are no longer needed once it is known.
    let retries: u64 = outcomes.iter().map(|o| o.stats.retries).sum();
    let past_end: u64 = outcomes
        .iter()
        .map(|o| o.stats.concurrency.past_end_requests)
        .sum();
    assert!(
        retries <= refusals && refusals <= retries + past_end,
        "every 429 was waited out and retried: {retries} retries, {refusals} refusals, {past_end} requests past the end"
    );
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_then_succeed() {
    let server = mock(MockConfig {
        records: 10_000,
        faults: Faults {
            server_errors: Some(ServerErrors {
                rate: ErrorRate::EveryNth(NonZeroU64::new(3).unwrap()),
                status: 503,
                retry_after: None,
            }),
            hang: Some(Target::Request(5)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/page/members", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 1000, "pageParamName": "page"}
    });
    let settings = FetchSettings {
        request_timeout: Duration::from_millis(700),
        ..settings()
    };
    let outcome = run(&context(settings), plan(&server, attributes)).await;
    complete(&outcome);
    assert_exactly(&outcome.pages, 0..10_000);
    let stats = server.stats();
    assert!(stats.injected_errors >= 3, "{stats:?}");
    // Every 5xx and the timeout were retried, except answers to requests past the end of the
    // data, which are not needed once the last page is known.
    assert!(
        outcome.stats.retries + outcome.stats.concurrency.past_end_requests > stats.injected_errors,
        "5xx and the timeout were retried: {:?}, {stats:?}",
        outcome.stats
    );
    assert_eq!(
        outcome.stats.requests,
        outcome.stats.pages + outcome.stats.retries + outcome.stats.concurrency.past_end_requests
    );
}

#[tokio::test]
async fn a_4xx_fails_at_once_and_exhausted_retries_say_so() {
    let server = mock(MockConfig {
        records: 1_000,
        faults: Faults {
            server_errors: Some(ServerErrors {
                rate: ErrorRate::EveryNth(NonZeroU64::new(1).unwrap()),
                status: 400,
                retry_after: None,
            }),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/all/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "NONE"}
    });
    let ctx = context(settings());
    let outcome = run(&ctx, plan(&server, attributes.clone())).await;
    let err = outcome.error.unwrap();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.cause(), ErrorCause::RemoteApi);
    assert_eq!(server.stats().data_requests, 1, "no retry of a 400: {err}");

    server.set_faults(Faults::default()).unwrap();
    let small = context(FetchSettings {
        max_response_bytes: 10_000,
        ..settings()
    });
    let outcome = run(&small, plan(&server, attributes.clone())).await;
    let err = outcome.error.unwrap();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 10_000, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("/all/members: response body larger than the cap of 10000 bytes"),
        "{err}"
    );
    assert!(!err.is_retryable() && outcome.pages.is_empty());

    server
        .set_faults(Faults {
            server_errors: Some(ServerErrors {
                rate: ErrorRate::EveryNth(NonZeroU64::new(1).unwrap()),
                status: 502,
                retry_after: None,
            }),
            ..Default::default()
        })
        .unwrap();
    let outcome = run(&ctx, plan(&server, attributes)).await;
    let err = outcome.error.unwrap();
    assert!(
        matches!(err, FetchError::RetriesExhausted { attempts: 5, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("gave up after 5 attempts"),
        "{err}"
    );
    assert!(err.to_string().contains("http status 502"), "{err}");
}

#[tokio::test]
async fn a_repeating_cursor_is_a_loop_error_naming_the_token() {
    let server = mock(MockConfig {
        records: 10_000,
        faults: Faults {
            repeating_cursor: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/cursor/members", "method": "GET"},
        "contentPath": "$.data",
        "paginationParams": {"type": "CONTINUATION_TOKEN", "limitName": "limit", "limitValue": 1000,
                             "continuationTokenPath": "$.meta.after_cursor", "parameterName": "cursor"}
    });
    let outcome = run(&context(settings()), plan(&server, attributes)).await;
    let err = outcome.error.expect("loop detected");
    let FetchError::Loop { kind, value, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*kind, "continuation token");
    assert!(err.to_string().contains(value.as_str()), "{err}");
    assert!(
        outcome.pages.len() <= 3,
        "stopped right away, not after maximumRequest: {}",
        outcome.pages.len()
    );
}

#[tokio::test]
async fn truncated_and_malformed_pages_fail_clearly_without_their_records() {
    let attributes = json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 1000, "offSetName": "offset"}
    });
    let settings = FetchSettings {
        retry: RetryPolicy {
            max_attempts: NonZeroU32::new(2).unwrap(),
            ..settings().retry
        },
        ..settings()
    };
    let cases = [
        (
            Faults {
                truncate: Some(Target::Offset(2000)),
                ..Default::default()
            },
            "reading the response body failed",
        ),
        (
            Faults {
                malformed: Some(Target::Offset(2000)),
                ..Default::default()
            },
            "malformed json",
        ),
        (
            Faults {
                missing_content: Some(Target::Offset(2000)),
                ..Default::default()
            },
            "contentPath $.members was not found; keys at $: [members_moved",
        ),
        (
            Faults {
                not_an_object: Some(Target::Offset(2000)),
                ..Default::default()
            },
            "contentPath $.members expects an object here, found an array",
        ),
    ];
    for (faults, expected) in cases {
        let server = mock(MockConfig {
            records: 5_000,
            faults,
            ..Default::default()
        })
        .await;
        let outcome = run(
            &context(settings.clone()),
            plan(&server, attributes.clone()),
        )
        .await;
        let err = outcome
            .error
            .unwrap_or_else(|| panic!("{expected}: the run must fail"));
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?} in: {err}"
        );
        assert!(
            err.to_string().contains("offset=2000") || !err.to_string().contains("http://"),
            "names the page URL: {err}"
        );
        assert_eq!(
            outcome.pages.len(),
            2,
            "{expected}: pages before the bad one only"
        );
        assert_exactly(&outcome.pages, 0..2000);
    }
}

#[tokio::test]
async fn schedule_windows_fill_start_and_end_params_or_the_advance_query() {
    let start_time = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let server = mock(MockConfig {
        records: 10_000,
        start_time,
        step: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let at = |index: i64| start_time + chrono::Duration::minutes(index);
    let ctx = context(settings());
    let simple = json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 1000, "offSetName": "offset"},
        "scheduleParams": {"scheduleStartParamName": "since_last_changed", "scheduleEndParamName": "before_last_changed",
                           "scheduleStartParamFormat": "yyyy-MM-ddTHH:mm:ssXXX", "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ss.fffK"}
    });
    let advance = json!({
        "urlParams": {"path": "/cursor/members", "method": "GET", "queryParams": {"query": "{SCHEDULE_QUERY}"}},
        "contentPath": "$.data",
        "paginationParams": {"type": "CONTINUATION_TOKEN", "limitName": "limit", "limitValue": 1000,
                             "continuationTokenPath": "$.meta.after_cursor", "parameterName": "cursor"},
        "scheduleParams": {"type": "ADVANCE", "paramFormat": "yyyy-MM-ddTHH:mm:ssXXX",
                           "incremental": "type:user updated >= {START_TIME} updated < {END_TIME}",
                           "backfill": "type:user updated < {END_TIME}"}
    });
    for attributes in [simple, advance] {
        let spec = spec(basic_auth_spec(), attributes);
        let params = object(json!({"host": server.base_url()}));
        // Two consecutive windows cover [1500, 4200) with no overlap and no gap.
        let first = ScheduleWindow {
            start: Some(at(1_500)),
            end: at(3_000),
        };
        let second = ScheduleWindow {
            start: Some(at(3_000)),
            end: at(4_200),
        };
        let a = run(&ctx, plan_with(&spec, Auth::none(), &params, Some(first))).await;
        let b = run(&ctx, plan_with(&spec, Auth::none(), &params, Some(second))).await;
        complete(&a);
        complete(&b);
        assert_exactly(&a.pages, 1_500..3_000);
        assert_exactly(&b.pages, 3_000..4_200);
        // The first backfill run has no start: everything before the end.
        let backfill = ScheduleWindow {
            start: None,
            end: at(2_345),
        };
        let c = run(
            &ctx,
            plan_with(&spec, Auth::none(), &params, Some(backfill)),
        )
        .await;
        complete(&c);
        assert_exactly(&c.pages, 0..2_345);
    }
}

#[tokio::test]
async fn a_wait_beyond_the_maximum_fails_the_request_naming_the_header_instead_of_panicking() {
    let in_two_days = (Utc::now() + chrono::Duration::days(2))
        .timestamp()
        .to_string();
    // (the answer that asks for the wait, the request it answers, what the error says)
    let cases = [
        (
            Reply::status(429).with_header("retry-after", "1e30"),
            2,
            "the API asked to wait 1e30 s (Retry-After: 1e30), more than the maximum wait of 15m (limits.max_wait_secs)".to_owned(),
        ),
        (
            Reply::status(503).with_header("retry-after", "901"),
            2,
            "the API asked to wait 901 s (Retry-After: 901), more than the maximum wait of 15m".to_owned(),
        ),
        // A good page that says the quota is spent until a reset too far away: that page
        // arrives, and the next request fails before it is sent.
        (
            hostile_page(1)
                .with_header("x-ratelimit-remaining", "0")
                .with_header("x-ratelimit-reset", "1e30"),
            1,
            "(X-RateLimit-Reset: 1e30), more than the maximum wait of 15m".to_owned(),
        ),
        (
            hostile_page(1)
                .with_header("ratelimit-remaining", "0")
                .with_header("ratelimit-reset", &in_two_days),
            1,
            format!("s (RateLimit-Reset: {in_two_days}), more than the maximum wait of 15m"),
        ),
    ];
    for (answer, at, expected) in cases {
        let server = hostile::start(move |_, n| {
            if n == at {
                answer.clone()
            } else {
                hostile_page(n)
            }
        })
        .await;
        // `run` awaits the fetch task: a panic in it fails this test. One request at a time,
        // so the requests counted are exactly those up to the refusal.
        let outcome = run(
            &context(settings()),
            plan_at(&server.base_url(), hostile_attributes())
                .with_max_concurrent_requests(NonZeroU32::MIN),
        )
        .await;
        let err = outcome.error.expect("the run fails");
        assert!(
            matches!(err, FetchError::WaitTooLong { .. }) && err.to_string().contains(&expected),
            "expected {expected:?} in: {err}"
        );
        assert_eq!(err.cause(), ErrorCause::RemoteApi);
        assert!(!err.is_retryable());
        let ids: Vec<String> = ids(&outcome.pages);
        assert_eq!(
            ids,
            ["r0", "r1", "r2", "r3"],
            "only pages 1 and 2: {expected}"
        );
        assert_eq!(
            server.requests().len(),
            at + 1,
            "no request after the refusal, no retry of it: {expected}"
        );
    }
}

/// An engine on temp dirs, for runs fed with pages at hand.
fn engine(dir: &std::path::Path) -> tributary_engine::run::Engine {
    tributary_engine::run::Engine {
        layout: tributary_write::DatasetLayout::new(dir.join("data")),
        db: tributary_state::Db::open(&dir.join("state"), Default::default()).unwrap(),
        fetch: context(settings()),
        options: tributary_engine::run::EngineOptions::default(),
        running: Default::default(),
    }
}

#[tokio::test]
async fn a_page_stream_that_closes_without_its_end_fails_the_run_instead_of_committing() {
    use tributary_engine::run::{Progress, RunRequest, RunStatus, bundle_flow_id};
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let bundle = json!({
        "name": "cut-short",
        "connectionSpec": {
            "name": "in-memory",
            "authSpec": [basic_auth_spec()],
            "sourceSpec": {"attributes": {
                "urlParams": {"path": "/members", "method": "GET"},
                "contentPath": "$.members",
                "paginationParams": {"type": "NONE"}
            }}
        },
        "baseConnection": {"auth": {"specName": "Basic Authentication",
                                    "params": {"host": "http://127.0.0.1:9", "username": "u", "password": "p"}}},
        "sourceConnection": {"params": {}},
        "targetConnection": {"params": {"dataSetId": "members"}}
    });
    let bundle = Arc::new(
        tributary_spec::load_bundle("cut-short", &bundle.to_string(), |_, _| {
            Err("inline".to_owned())
        })
        .unwrap(),
    );
    // One page, then the channel closes with neither an End nor an error: what a fetch task
    // that panicked leaves behind.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(async move {
        let page = Page {
            page_idx: 0,
            url: "memory://members".to_owned(),
            status: 200,
            body: None,
            body_len: 11,
            records: b"{\"id\":\"a\"}\n".to_vec().into(),
            record_count: 1,
            position: tributary_fetch::Position {
                next: NextPage::Offset { offset: 1 },
                requests: 1,
                pages: 1,
                window: None,
            },
            budget: None,
        };
        sender.send(Ok(FetchEvent::Page(page))).await.unwrap();
    });
    let pages = tributary_fetch::FetchRun {
        pages: receiver,
        task,
        counters: Arc::default(),
    };
    let request = RunRequest {
        flow_id: bundle_flow_id(&bundle.name),
        bundle: bundle.clone(),
        window: None,
        progress: Arc::new(Progress::default()),
    };
    let report = tributary_engine::run::run_flow_on_pages(&engine, request, pages)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("the fetcher stopped before the end of the pages (internal error)"),
        "{error}"
    );
    assert!(
        report.files.is_empty(),
        "nothing published: {:?}",
        report.files
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_named_by_its_content_type_and_first_bytes() {
    let secret = "html-echoed-api-key";
    let server = hostile::start(move |_, n| match n {
        1 => Reply::status(200).with_body(
            "text/html; charset=utf-8",
            &format!("<!DOCTYPE html><html><head><title>Maintenance</title></head><body>key {secret} is fine, we are not</body></html>"),
        ),
        n => hostile_page(n),
    })
    .await;
    let spec = spec(key_auth_spec(), hostile_attributes());
    let params = object(json!({"host": server.base_url(), "authKey1": secret}));
    let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], None).unwrap();
    let outcome = run(&context(settings()), plan_with(&spec, auth, &params, None)).await;
    let err = outcome.error.expect("an HTML page fails the run");
    let message = err.to_string();
    assert!(
        message.starts_with(
            r#"page 1 is not JSON (content-type text/html; charset=utf-8): starts with "<!DOCTYPE html><html><head><title>Maintenance</title></head>"#
        ),
        "{message}"
    );
    assert!(matches!(err, FetchError::NotJson { .. }) && !err.is_retryable());
    assert!(!message.contains(secret), "{message}");
    assert_eq!(ids(&outcome.pages), ["r0", "r1"], "the page before it only");
}

#[tokio::test]
async fn pages_hold_their_records_once_and_their_bytes_against_the_page_budget() {
    let server = mock(MockConfig {
        records: 5_000,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 500, "offSetName": "offset"}
    });
    let outcome = run(&context(settings()), plan(&server, attributes.clone())).await;
    complete(&outcome);
    let page = &outcome.pages[0];
    assert!(page.body.is_none(), "no raw body unless asked for");
    assert!(page.body_len > page.records.len() as u64 / 2, "{page:?}");
    let raw = run(
        &context(settings()),
        plan(&server, attributes.clone()).with_raw_bodies(),
    )
    .await;
    complete(&raw);
    let body = raw.pages[0].body.as_ref().expect("kept when asked for");
    assert_eq!(body.len() as u64, raw.pages[0].body_len);
    let as_sent: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(as_sent["members"].as_array().unwrap().len(), 500);

    // A budget of one page: the fetcher holds a page's bytes from before it is queued until
    // the consumer drops it, so with a page in the consumer's hand it cannot queue another.
    let one_page = page.records.len() as u64 + 1024;
    let budget = tributary_fetch::MemoryBudget::new(one_page);
    let ctx = context(settings()).with_page_budget(budget.clone());
    let before = server.stats().data_requests;
    // One request at a time, so the requests counted are exactly the pages asked for.
    let mut fetch = fetch_pages(
        &ctx,
        plan(&server, attributes).with_max_concurrent_requests(NonZeroU32::MIN),
    );
    let Some(Ok(FetchEvent::Page(first))) = fetch.pages.recv().await else {
        panic!("a first page")
    };
    assert!(first.budget.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.stats().data_requests - before,
        2,
        "the second page waits for budget, the channel's room notwithstanding"
    );
    assert!(budget.available_bytes() < one_page);
    drop(first);
    let mut pages = 1;
    while let Some(event) = fetch.pages.recv().await {
        match event.unwrap() {
            FetchEvent::Page(_) => pages += 1,
            FetchEvent::End(end) => assert!(!end.truncated),
        }
    }
    assert_eq!(pages, 11, "ten full pages and the empty one after them");
    assert_eq!(
        budget.available_bytes(),
        budget.total_bytes(),
        "all given back"
    );
}

#[tokio::test]
async fn a_redirect_to_another_origin_carries_no_credential_and_one_with_a_secret_is_refused() {
    let (key, header_secret) = ("redirect-key-value-1", "header-secret-value-2");
    // B, another origin (another port), serves the pages and records what it got.
    let foreign = hostile::start(|_, n| hostile_page(n)).await;
    let foreign_url = foreign.base_url();
    // A, the spec's origin: /items redirects within A, /v2/items redirects to B.
    let home = hostile::start(move |request, _| {
        let query = request.target.split_once('?').map_or("", |(_, q)| q);
        if request.target.starts_with("/items") {
            Reply::status(302).with_header("location", &format!("/v2/items?{query}"))
        } else {
            Reply::status(307).with_header("location", &format!("{foreign_url}/items?{query}"))
        }
    })
    .await;
    let mut attributes = hostile_attributes();
    attributes["headerParams"] = json!({
        "X-Echo-Secret": "${authKey2}",
        "X-Session-Token": "written-in-the-spec",
        "Accept": "application/json"
    });
    let spec = spec(key_auth_spec(), attributes);
    let params =
        object(json!({"host": home.base_url(), "authKey1": key, "authKey2": header_secret}));
    let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], None).unwrap();
    // One request at a time, so the hops counted are exactly those of the four pages.
    let plan = plan_with(&spec, auth, &params, None).with_max_concurrent_requests(NonZeroU32::MIN);
    let outcome = run(&context(settings()), plan).await;
    complete(&outcome);
    assert_eq!(ids(&outcome.pages), ["r0", "r1", "r2", "r3", "r4", "r5"]);
    let home_requests = home.requests();
    assert!(
        home_requests
            .iter()
            .all(|r| r.header("x-auth-key1") == Some(key)),
        "a redirect within the origin keeps the credentials: {home_requests:?}"
    );
    assert_eq!(home_requests.len(), 8, "4 pages, 2 hops each");
    let foreign_requests = foreign.requests();
    assert_eq!(foreign_requests.len(), 4);
    for request in &foreign_requests {
        assert_eq!(request.method, "GET");
        for (name, value) in &request.headers {
            assert!(
                !value.contains(key) && !value.contains(header_secret),
                "{name} leaked to another origin"
            );
        }
        for name in [
            "x-auth-key1",
            "authkey2",
            "x-echo-secret",
            "x-session-token",
            "authorization",
        ] {
            assert!(
                request.header(name).is_none(),
                "{name} sent to another origin"
            );
        }
        assert_eq!(request.header("accept"), Some("application/json"));
    }

    // A Location that echoes the key to another origin, and a next pointer that does: refused.
    let foreign = hostile::start(|_, n| hostile_page(n)).await;
    let foreign_url = foreign.base_url();
    let echoing = hostile::start(move |_, _| {
        Reply::status(302).with_header("location", &format!("{foreign_url}/items?api_key={key}"))
    })
    .await;
    let foreign_url = foreign.base_url();
    let pointing = hostile::start(move |_, _| {
        Reply::json(
            json!({"items": [{"id": "p0"}], "next": format!("{foreign_url}/items?page=2&k={key}")}),
        )
    })
    .await;
    let pointer_attributes = json!({
        "urlParams": {"path": "/items", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "POINTER", "pointerPath": "$.next"}
    });
    // The page whose pointer leaks is not emitted either: its position would lead there.
    for (server, attributes, via) in [
        (&echoing, hostile_attributes(), "redirect"),
        (&pointing, pointer_attributes, "next pointer URL"),
    ] {
        let spec = self::spec(key_auth_spec(), attributes);
        let params = object(json!({"host": server.base_url(), "authKey1": key}));
        let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], None).unwrap();
        let outcome = run(&context(settings()), plan_with(&spec, auth, &params, None)).await;
        let err = outcome.error.expect("refused");
        let message = err.to_string();
        assert!(
            matches!(err, FetchError::CredentialOffOrigin { .. })
                && message.contains(&format!(
                    "the {via} leads to another origin ({}/items?",
                    foreign.base_url()
                ))
                && message.contains("=***")
                && message.ends_with("with a credential in its URL; refusing to send it there"),
            "{message}"
        );
        assert!(!message.contains(key), "{message}");
        assert!(!err.is_retryable());
        assert!(outcome.pages.is_empty());
    }
    assert!(
        foreign.requests().is_empty(),
        "nothing reached the other origin"
    );
}

#[tokio::test]
async fn parallel_runs_of_one_spec_share_its_declared_delay_on_one_limiter() {
    let server = mock(MockConfig {
        records: 600,
        ..Default::default()
    })
    .await;
    let attributes = json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": "$.members",
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 100, "offSetName": "offset",
                             "delayRequestMillis": 100}
    });
    let ctx = context(settings());
    // Four windows in parallel, each with two requests in flight: the declared delay holds
    // for all of them together.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let ctx = ctx.clone();
            let plan = plan(&server, attributes.clone())
                .with_max_concurrent_requests(NonZeroU32::new(2).unwrap());
            tokio::spawn(async move { run(&ctx, plan).await })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.unwrap();
        complete(&outcome);
        assert_exactly(&outcome.pages, 0..600);
    }
    assert_eq!(
        ctx.limiters.len(),
        1,
        "one limiter for the origin and credential"
    );
    let stats = server.stats();
    let burst = 1;
    let busiest = stats.max_in_window("/3.0", Duration::from_secs(1));
    assert!(
        busiest <= 10 + burst,
        "{busiest} requests in one second across four runs, declared 1 per 100 ms: {:?}",
        stats.arrivals("/3.0")
    );
    assert!(stats.data_requests >= 28, "{stats:?}");
}

#[tokio::test]
async fn parallel_runs_with_an_expired_token_refresh_once_and_each_party_persists_once() {
    // Rotating refresh tokens: a second refresh with the initial refresh token would fail.
    let server = mock(oauth_mock(true, Duration::from_secs(600))).await;
    let spec = spec(
        oauth_spec(),
        json!({
            "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
            "contentPath": "$.members",
            "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 1000, "offSetName": "offset"}
        }),
    );
    let params = oauth_params(
        &server,
        "initial-access-token",
        Utc::now() - chrono::Duration::hours(1),
    );
    let persisted: Arc<Mutex<Vec<(String, RotatedTokens)>>> = Arc::default();
    // Three windows of one flow and one window of another flow on the same grant, each from
    // its own plan and auth, as the engine builds them; one context.
    let ctx = context(settings());
    let plans: Vec<FetchPlan> = ["flow-a", "flow-a", "flow-a", "flow-b"]
        .into_iter()
        .map(|flow| {
            let sink = persisted.clone();
            let callback =
                tributary_fetch::TokenCallback::new(flow, move |tokens: &RotatedTokens| {
                    sink.lock().unwrap().push((flow.to_owned(), tokens.clone()))
                });
            let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], Some(callback)).unwrap();
            plan_with(&spec, auth, &params, None)
                .with_max_concurrent_requests(NonZeroU32::new(2).unwrap())
        })
        .collect();
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let ctx = ctx.clone();
            tokio::spawn(async move { run(&ctx, plan).await })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.unwrap();
        complete(&outcome);
        assert_exactly(&outcome.pages, 0..10_000);
    }
    let stats = server.stats();
    assert_eq!(
        stats.token_requests, 1,
        "one refresh for all four runs: {stats:?}"
    );
    assert_eq!(stats.unauthorized, 0);
    assert_eq!(ctx.auths.len(), 1, "one grant");
    let persisted = persisted.lock().unwrap();
    let flows: Vec<&str> = persisted.iter().map(|(flow, _)| flow.as_str()).collect();
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert!(
        flows.contains(&"flow-a") && flows.contains(&"flow-b"),
        "{flows:?}"
    );
    let (_, tokens) = &persisted[0];
    assert!(
        tokens.refresh_token.is_some(),
        "the rotated refresh token is handed back"
    );
    assert_eq!(
        persisted[0].1, persisted[1].1,
        "both flows persist the same rotation"
    );
}

#[tokio::test]
async fn a_next_url_that_echoes_a_key_is_checkpointed_without_it_and_resumes_with_it() {
    let key = "echoed-api-key-value-42";
    let server = hostile::start(move |request, _| {
        let page: usize = request
            .target
            .split("page=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let next = if page < 2 {
            json!(format!("/items?page={}&api_key={key}", page + 1))
        } else {
            Value::Null
        };
        Reply::json(json!({
            "items": [{"id": format!("r{}", 2 * page)}, {"id": format!("r{}", 2 * page + 1)}],
            "next": next
        }))
    })
    .await;
    let attributes = |maximum: u32| {
        json!({
            "urlParams": {"path": "/items", "method": "GET"},
            "contentPath": "$.items",
            "paginationParams": {"type": "POINTER", "pointerPath": "$.next", "maximumRequest": maximum}
        })
    };
    let params = object(json!({"host": server.base_url(), "authKey1": key}));
    let plan = |maximum: u32| {
        let spec = spec(key_auth_spec(), attributes(maximum));
        let auth = Auth::try_new(&spec.auth_specs[0], &params, &[], None).unwrap();
        plan_with(&spec, auth, &params, None)
    };
    let first = run(&context(settings()), plan(1)).await;
    let end = first.end.expect("stopped by maximumRequest");
    assert!(end.truncated);
    let stored = serde_json::to_string(&end.position).unwrap();
    assert!(!stored.contains(key), "{stored}");
    assert!(stored.contains("api_key={{secret:authKey1}}"), "{stored}");
    assert_eq!(first.pages[0].position, end.position);

    let position: tributary_fetch::Position = serde_json::from_str(&stored).unwrap();
    let rest = run(&context(settings()), plan(10).resume_from(position)).await;
    complete(&rest);
    let mut all = first.pages;
    all.extend(rest.pages);
    assert_eq!(ids(&all), ["r0", "r1", "r2", "r3", "r4", "r5"]);
    let resumed = &server.requests()[1];
    assert_eq!(
        resumed.target,
        format!("/items?page=1&api_key={key}"),
        "the key is filled back in"
    );
}

/// `tributary run` of a one-page-of-two-records-at-a-time OFFSET bundle with an API key, against
/// `base_url`; returns what the binary did and the sandbox it wrote to.
fn run_binary_against(base_url: &str, key: &str) -> (crate::run::Ran, crate::run::Sandbox) {
    let sandbox = crate::run::Sandbox::new();
    let path = sandbox.bundle(
        "hostile",
        &crate::run::bundle(
            "it-hostile",
            key_auth_spec(),
            hostile_attributes(),
            json!({"host": base_url, "authKey1": key}),
            "hostile",
        ),
    );
    let ran = sandbox.tributary(&["run", &path]);
    (ran, sandbox)
}

#[test]
fn the_binary_fails_a_run_whose_source_asks_to_wait_1e30_seconds_and_publishes_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(hostile::start(|_, n| match n {
        2 => Reply::status(429).with_header("retry-after", "1e30"),
        n => hostile_page(n),
    }));
    let (ran, sandbox) = run_binary_against(&server.base_url(), "binary-key-value-1");
    assert_eq!(
        ran.code, 1,
        "the run fails, it is not a truncated success: {ran:?}"
    );
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        all.contains("the API asked to wait 1e30 s (Retry-After: 1e30), more than the maximum wait of 15m (limits.max_wait_secs)"),
        "{ran:?}"
    );
    assert!(!all.contains("panicked"), "{ran:?}");
    assert!(
        sandbox
            .dataset_files("hostile")
            .iter()
            .all(|file| !file.ends_with(".parquet")),
        "nothing published: {:?}",
        sandbox.dataset_files("hostile")
    );
}

#[test]
fn the_binary_follows_a_redirect_to_another_origin_without_the_api_key() {
    let key = "binary-redirect-key-2";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let foreign = runtime.block_on(hostile::start(|_, n| hostile_page(n)));
    let foreign_url = foreign.base_url();
    let home = runtime.block_on(hostile::start(move |request, _| {
        Reply::status(302).with_header("location", &format!("{foreign_url}{}", request.target))
    }));
    let (ran, _sandbox) = run_binary_against(&home.base_url(), key);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        home.requests()
            .iter()
            .all(|r| r.header("x-auth-key1") == Some(key))
    );
    let foreign_requests = foreign.requests();
    // Four pages, and the requests the adaptive concurrency issued past the empty one.
    assert!(foreign_requests.len() >= 4, "{foreign_requests:?}");
    for request in &foreign_requests {
        assert!(
            request
                .headers
                .iter()
                .all(|(_, value)| !value.contains(key)),
            "the key went to another origin: {request:?}"
        );
    }
}
