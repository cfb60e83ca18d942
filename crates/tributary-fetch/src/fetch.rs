//! The page stream: [`fetch_pages`] runs a [`FetchPlan`] on a tokio task and sends each page
//! through a bounded channel, so a slow consumer slows the fetcher down (backpressure) and memory
//! stays bounded by the channel capacity times the page size.
//!
//! Pagination follows reference §2.4:
//! - OFFSET: `offset` from 0 grows by `limit`; stops on the end condition, an empty page or a
//!   short page;
//! - PAGE: `page` from `initialPageIndex`; stops past `endPageIndex` (a literal or a response
//!   header), or on an empty page;
//! - POINTER: the next URL at `pointerPath`; an absolute URL is requested as is, a relative one
//!   is resolved against the URL of the request that returned it; auth headers (and spec headers
//!   rendered from credentials) go only to the origin of the spec's request and are dropped when
//!   a pointer leaves it;
//! - CONTINUATION_TOKEN: the token at `continuationTokenPath`, sent as query or header param;
//! - LINK (our extension, `"type": "LINK"`): the RFC 8288 `Link: <…>; rel="next"` header;
//! - NONE: one request.
//!
//! Every type honours `maximumRequest` and `delayRequestMillis`, and a loop guard: a token or
//! URL seen before in the same run is an error naming it. OFFSET and PAGE addresses are
//! computable, so with `max_concurrent_requests > 1` several pages are in flight at once (all
//! within the shared limiter) and are emitted in order; requests issued past the last page are
//! dropped.
//!
//! Each request goes through the limiter of its origin, then auth, then retries
//! ([`crate::RetryPolicy`]): 429/503 with `Retry-After` block the whole limiter for that long; 5xx,
//! timeouts and connection errors back off with full jitter; a 401 refreshes the OAuth2 token
//! once and retries; other 4xx fail at once. A page is emitted only whole: a body that is
//! truncated, malformed or past the size cap fails the run with no records from that page.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;
use tributary_spec::{
    EndPageIndex, FlowBundle, Pagination, ScheduleWindow, SourceSpec, TokenPlacement,
};
use url::Url;

use crate::auth::{Auth, TokenCallback};
use crate::error::{FetchError, Redactor};
use crate::headers;
use crate::limit::{CredentialFingerprint, Limiters, RateQuota};
use crate::records::{
    AttrFilter, Envelope, ExplodeSelector, LocatedRecords, RecordPath, RecordSelector,
};
use crate::request::{BaseRequest, RenderInputs, origin_of, render_base_request};
use crate::retry::RetryPolicy;

/// Settings of the fetcher that are not in the spec.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Per-request timeout, from connecting to the end of the body.
    pub request_timeout: Duration,
    /// A body larger than this fails with [`FetchError::TooLarge`].
    pub max_response_bytes: u64,
    pub retry: RetryPolicy,
    /// Pages buffered between the fetcher and its consumer.
    pub channel_capacity: usize,
    /// The quota of a limiter created by this context (the first run on an origin sets it).
    pub quota: Option<RateQuota>,
}

/// What runs share: the HTTP client (connection pool) and the limiter registry.
#[derive(Debug, Clone)]
pub struct FetchContext {
    pub client: reqwest::Client,
    pub limiters: Limiters,
    pub settings: FetchSettings,
}

/// One run's fetch: the rendered request, pagination, records, auth, window and resume point.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    pub request: BaseRequest,
    pub pagination: Pagination,
    pub selector: RecordSelector,
    pub auth: Auth,
    pub window: Option<ScheduleWindow>,
    /// Resume after this position instead of starting at the first page.
    pub start: Option<Position>,
    /// Pages of OFFSET / PAGE fetched at once (default 1).
    pub max_concurrent_requests: NonZeroU32,
    paths: PagingPaths,
    redactor: Redactor,
}

/// Where a run is: what to request next, how many requests and pages it made. Serialisable so
/// the engine can checkpoint it and resume from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub next: NextPage,
    /// Page requests made so far in the run (counted against `maximumRequest`).
    pub requests: u32,
    /// Pages emitted so far in the run (the next page's `page_idx`).
    pub pages: u64,
    /// The window the run fetches, to check a resume is for the same window.
    pub window: Option<WindowPosition>,
}

/// The next page to request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NextPage {
    /// The first request of the run.
    Start,
    /// OFFSET.
    Offset { offset: u64 },
    /// PAGE; `end` is the last page index once known.
    Page { index: u64, end: Option<u64> },
    /// CONTINUATION_TOKEN.
    Token { token: String },
    /// POINTER or LINK: an absolute URL.
    Url { url: String },
    /// Nothing left to fetch.
    Done,
}

/// A schedule window in a [`Position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPosition {
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
}

/// One page of records.
#[derive(Clone)]
pub struct Page {
    /// 0-based index of the page in the run.
    pub page_idx: u64,
    /// The request URL, redacted.
    pub url: String,
    pub status: u16,
    /// The raw (decompressed) body.
    pub body: Bytes,
    /// The records, one JSON object per line.
    pub records: Bytes,
    pub record_count: usize,
    /// Where the run continues after this page.
    pub position: Position,
}

/// A running fetch: the pages, the task, and live counters.
#[derive(Debug)]
pub struct FetchRun {
    /// Pages in order; after an `Err` nothing follows. The channel closes at the end.
    pub pages: mpsc::Receiver<Result<Page, FetchError>>,
    pub task: JoinHandle<()>,
    pub counters: Arc<FetchCounters>,
}

/// Per-run counters, updated live.
#[derive(Debug, Default)]
pub struct FetchCounters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled_nanos: AtomicU64,
    bytes_in: AtomicU64,
    pages: AtomicU64,
    records: AtomicU64,
}

/// A snapshot of [`FetchCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FetchStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    pub retries: u64,
    /// Time spent waiting for the limiter or a `Retry-After`.
    pub throttled: Duration,
    /// Body bytes received (after decompression).
    pub bytes_in: u64,
    pub pages: u64,
    pub records: u64,
}

/// The JSONPaths pagination reads from each page.
#[derive(Debug, Clone, Default)]
struct PagingPaths {
    pointer: Option<RecordPath>,
    token: Option<RecordPath>,
    end_condition: Option<(RecordPath, Value)>,
}

/// A page's response before it is emitted.
struct Fetched {
    address: NextPage,
    url: Url,
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    located: LocatedRecords,
}

/// State shared by the driver and the in-flight requests of one run.
struct Run {
    ctx: FetchContext,
    plan: FetchPlan,
    counters: Arc<FetchCounters>,
}

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("tributary/", env!("CARGO_PKG_VERSION"));

/// Pages larger than this are located on a blocking thread, so async workers never stall.
const INLINE_LOCATE_BYTES: usize = 64 * 1024;

/// 429 / 503 answers with `Retry-After` tolerated per request (besides the total-time cap).
const MAX_THROTTLED_ANSWERS: u32 = 1_000;

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            max_response_bytes: 256 * 1024 * 1024,
            retry: RetryPolicy::default(),
            channel_capacity: 4,
            quota: None,
        }
    }
}

impl FetchContext {
    /// A context with a new HTTP client and the given limiter registry.
    pub fn try_new(limiters: Limiters, settings: FetchSettings) -> Result<Self, FetchError> {
        Ok(Self {
            client: http_client()?,
            limiters,
            settings,
        })
    }
}

/// The HTTP client of the fetcher: rustls with the ring provider, gzip/deflate/brotli,
/// `User-Agent: tributary/<version>`.
pub fn http_client() -> Result<reqwest::Client, FetchError> {
    // Installing twice fails harmlessly: another part of the process installed it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .gzip(true)
        .deflate(true)
        .brotli(true)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| {
            FetchError::Spec(format!(
                "cannot build the http client: {}",
                err.without_url()
            ))
        })
}

impl FetchPlan {
    /// The plan of a run of `source` with `auth`; templates are rendered now.
    pub fn try_new(
        source: &SourceSpec,
        auth: Auth,
        inputs: &RenderInputs<'_>,
    ) -> Result<Self, FetchError> {
        let mut redactor = auth.redactor().clone();
        let request = render_base_request(source, inputs, &mut redactor)?;
        let selector = selector_of(source)?;
        let paths = PagingPaths::of(&source.pagination)?;
        Ok(Self {
            request,
            pagination: source.pagination.clone(),
            selector,
            auth,
            window: inputs.window.copied(),
            start: None,
            max_concurrent_requests: NonZeroU32::MIN,
            paths,
            redactor,
        })
    }

    /// The plan of a flow bundle's run: auth params with `${env:X}` resolved through `env`,
    /// OAuth2 rotations reported to `on_rotate`, the flow's `maxConcurrentRequests`.
    pub fn from_bundle(
        bundle: &FlowBundle,
        window: Option<ScheduleWindow>,
        env: &dyn Fn(&str) -> Option<String>,
        on_rotate: Option<TokenCallback>,
    ) -> Result<Self, FetchError> {
        let auth_params = bundle
            .base
            .resolved_params(env)
            .map_err(|err| FetchError::Spec(err.to_string()))?;
        let auth = Auth::try_new(
            &bundle.auth_spec,
            &auth_params,
            &bundle.base.secret_fields,
            on_rotate,
        )?;
        let inputs = RenderInputs {
            source_params: &bundle.source.params,
            auth_params: &auth_params,
            env,
            window: window.as_ref(),
        };
        Ok(
            Self::try_new(&bundle.connection_spec.source, auth, &inputs)?
                .with_max_concurrent_requests(bundle.options.max_concurrent_requests),
        )
    }

    /// Continue after `position` (a checkpoint of an earlier, interrupted run of this window).
    pub fn resume_from(mut self, position: Position) -> Self {
        self.start = Some(position);
        self
    }

    pub fn with_max_concurrent_requests(mut self, n: NonZeroU32) -> Self {
        self.max_concurrent_requests = n;
        self
    }

    /// Scrubs secrets of this plan out of text.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The first position of a run of this plan.
    pub fn start_position(&self) -> Position {
        let next = match &self.pagination {
            Pagination::Offset { .. } => NextPage::Offset { offset: 0 },
            Pagination::Page {
                initial_index,
                end_index,
                ..
            } => NextPage::Page {
                index: *initial_index,
                end: match end_index {
                    Some(EndPageIndex::Literal(end)) => Some(*end),
                    _ => None,
                },
            },
            _ => NextPage::Start,
        };
        Position {
            next,
            requests: 0,
            pages: 0,
            window: self.window.map(WindowPosition::from),
        }
    }
}

impl From<ScheduleWindow> for WindowPosition {
    fn from(window: ScheduleWindow) -> Self {
        Self {
            start: window.start,
            end: window.end,
        }
    }
}

impl FetchCounters {
    pub fn snapshot(&self) -> FetchStats {
        FetchStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: Duration::from_nanos(self.throttled_nanos.load(Ordering::Relaxed)),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            pages: self.pages.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
        }
    }

    fn add_throttled(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.throttled_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("page_idx", &self.page_idx)
            .field("url", &self.url)
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .field("record_count", &self.record_count)
            .field("position", &self.position)
            .finish()
    }
}

/// Starts fetching `plan` on a tokio task. Must be called inside a tokio runtime.
pub fn fetch_pages(ctx: &FetchContext, plan: FetchPlan) -> FetchRun {
    let (sender, receiver) = mpsc::channel(ctx.settings.channel_capacity.max(1));
    let counters = Arc::new(FetchCounters::default());
    let run = Arc::new(Run {
        ctx: ctx.clone(),
        plan,
        counters: counters.clone(),
    });
    let span = tracing::info_span!(
        "fetch",
        pagination = run.plan.pagination.type_name(),
        origin = %run.plan.request.origin,
    );
    let task = tokio::spawn(
        async move {
            if let Err(err) = drive(&run, &sender).await {
                tracing::warn!(error = %err, "fetch failed");
                // The consumer may be gone; then nobody needs the error.
                let _ = sender.send(Err(err)).await;
            }
        }
        .instrument(span),
    );
    FetchRun {
        pages: receiver,
        task,
        counters,
    }
}

/// Fetches every page of the run, in order, into `sender`.
async fn drive(
    run: &Arc<Run>,
    sender: &mpsc::Sender<Result<Page, FetchError>>,
) -> Result<(), FetchError> {
    let plan = &run.plan;
    let start = plan.start.clone().unwrap_or_else(|| plan.start_position());
    let window = plan.window.map(WindowPosition::from);
    if start.window != window {
        return Err(FetchError::Spec(format!(
            "resume position belongs to window {:?}, but this run fetches window {window:?}",
            start.window
        )));
    }
    let common = plan.pagination.common();
    let max_requests = common.maximum_requests.get();
    let computable = matches!(
        plan.pagination,
        Pagination::Offset { .. } | Pagination::Page { .. }
    );
    let concurrency = if computable {
        plan.max_concurrent_requests.get() as usize
    } else {
        1
    };
    let limit = plan
        .pagination
        .limit()
        .map(|(_, limit)| u64::from(limit.get()));

    let mut requests_issued = start.requests;
    let mut requests_done = start.requests;
    let mut page_idx = start.pages;
    let mut issue_next: Option<NextPage> =
        Some(start.next.clone()).filter(|next| *next != NextPage::Done);
    let mut known_end: Option<u64> = match &start.next {
        NextPage::Page { end, .. } => *end,
        _ => None,
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut last_issue: Option<Instant> = None;
    let mut in_flight = FuturesOrdered::new();

    loop {
        while in_flight.len() < concurrency && requests_issued < max_requests {
            let Some(address) = issue_next.take() else {
                break;
            };
            if let (Some(delay), Some(last)) = (common.delay, last_issue) {
                tokio::time::sleep_until(last + delay).await;
            }
            last_issue = Some(Instant::now());
            requests_issued += 1;
            if computable {
                issue_next = advance(&address, limit, known_end);
            }
            in_flight.push_back(fetch_page(
                run.clone(),
                address,
                page_idx + in_flight.len() as u64,
            ));
        }
        let Some(result) = in_flight.next().await else {
            break;
        };
        let fetched = result?;
        requests_done += 1;
        if let (Some(EndPageIndex::Header(name)), None) =
            (page_end_index(&plan.pagination), known_end)
        {
            known_end = header_u64(&fetched.headers, name);
            // Drop speculative addresses past the end learned from this page.
            if let (Some(NextPage::Page { index, .. }), Some(end)) = (&issue_next, known_end)
                && *index > end
            {
                issue_next = None;
            }
        }
        let next = next_page(plan, &fetched, known_end, limit, &mut seen, page_idx)?;
        let capped = next != NextPage::Done && requests_done >= max_requests;
        if capped {
            tracing::warn!(
                max_requests,
                page_idx,
                "maximumRequest reached, stopping this run"
            );
        }
        let page = Page {
            page_idx,
            url: plan.redactor.url(&fetched.url),
            status: fetched.status,
            record_count: fetched.located.record_count,
            records: Bytes::from(fetched.located.ndjson),
            body: fetched.body,
            position: Position {
                next: next.clone(),
                requests: requests_done,
                pages: page_idx + 1,
                window: plan.window.map(WindowPosition::from),
            },
        };
        run.counters.pages.fetch_add(1, Ordering::Relaxed);
        run.counters
            .records
            .fetch_add(page.record_count as u64, Ordering::Relaxed);
        tracing::debug!(
            page_idx,
            status = page.status,
            records = page.record_count,
            "page fetched"
        );
        if sender.send(Ok(page)).await.is_err() {
            tracing::debug!("page consumer dropped, stopping the fetch");
            return Ok(());
        }
        page_idx += 1;
        if next == NextPage::Done || capped {
            return Ok(());
        }
        if !computable {
            issue_next = Some(next);
        }
    }
    Ok(())
}

/// The address after `address` for OFFSET / PAGE, issued before its page is seen.
fn advance(address: &NextPage, limit: Option<u64>, known_end: Option<u64>) -> Option<NextPage> {
    match address {
        NextPage::Offset { offset } => Some(NextPage::Offset {
            offset: offset + limit.unwrap_or(1),
        }),
        NextPage::Page { index, end } => {
            let end = end.or(known_end);
            let next = index + 1;
            if end.is_some_and(|end| next > end) {
                None
            } else {
                Some(NextPage::Page { index: next, end })
            }
        }
        _ => None,
    }
}

fn page_end_index(pagination: &Pagination) -> Option<&EndPageIndex> {
    match pagination {
        Pagination::Page { end_index, .. } => end_index.as_ref(),
        _ => None,
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Decides what follows a fetched page.
fn next_page(
    plan: &FetchPlan,
    fetched: &Fetched,
    known_end: Option<u64>,
    limit: Option<u64>,
    seen: &mut HashSet<String>,
    page_idx: u64,
) -> Result<NextPage, FetchError> {
    let record_count = fetched.located.record_count as u64;
    let envelope = || {
        let paths: Vec<&RecordPath> = [
            plan.paths.pointer.as_ref(),
            plan.paths.token.as_ref(),
            plan.paths.end_condition.as_ref().map(|(path, _)| path),
        ]
        .into_iter()
        .flatten()
        .collect();
        Envelope::parse(
            &fetched.body,
            &fetched.located,
            plan.selector.content_path(),
            &paths,
            page_idx,
        )
    };
    match (&plan.pagination, &fetched.address) {
        (Pagination::None { .. }, _) => Ok(NextPage::Done),
        (Pagination::Offset { .. }, NextPage::Offset { offset }) => {
            if record_count == 0 || limit.is_some_and(|limit| record_count < limit) {
                return Ok(NextPage::Done);
            }
            if let Some((path, wanted)) = &plan.paths.end_condition {
                let envelope = envelope()?;
                if envelope
                    .get(path)
                    .is_some_and(|found| loosely_equal(found, wanted))
                {
                    return Ok(NextPage::Done);
                }
            }
            Ok(NextPage::Offset {
                offset: offset + limit.unwrap_or(record_count),
            })
        }
        (Pagination::Page { .. }, NextPage::Page { index, end }) => {
            let end = end.or(known_end);
            if record_count == 0 || end.is_some_and(|end| *index >= end) {
                return Ok(NextPage::Done);
            }
            Ok(NextPage::Page {
                index: index + 1,
                end,
            })
        }
        (Pagination::Pointer { .. }, _) => {
            let envelope = envelope()?;
            let pointer = plan
                .paths
                .pointer
                .as_ref()
                .and_then(|path| envelope.get(path));
            let Some(pointer) = pointer.and_then(non_empty_text) else {
                return Ok(NextPage::Done);
            };
            let url = fetched.url.join(&pointer).map_err(|err| FetchError::Data {
                page_idx,
                detail: format!(
                    "next pointer {:?} is not a URL: {err}",
                    plan.redactor.url_str(&pointer)
                ),
            })?;
            guard(seen, "next pointer URL", url.as_str(), plan, page_idx)?;
            Ok(NextPage::Url { url: url.into() })
        }
        (Pagination::Link { .. }, _) => {
            let Some(target) = headers::next_link(&fetched.headers) else {
                return Ok(NextPage::Done);
            };
            let url = fetched.url.join(&target).map_err(|err| FetchError::Data {
                page_idx,
                detail: format!(
                    "Link rel=\"next\" target {:?} is not a URL: {err}",
                    plan.redactor.url_str(&target)
                ),
            })?;
            guard(seen, "Link next URL", url.as_str(), plan, page_idx)?;
            Ok(NextPage::Url { url: url.into() })
        }
        (Pagination::ContinuationToken { .. }, _) => {
            let envelope = envelope()?;
            let token = plan
                .paths
                .token
                .as_ref()
                .and_then(|path| envelope.get(path));
            let Some(token) = token.and_then(non_empty_text) else {
                return Ok(NextPage::Done);
            };
            guard(seen, "continuation token", &token, plan, page_idx)?;
            Ok(NextPage::Token { token })
        }
        // An OFFSET or PAGE plan always issues its own address kind; anything else means the
        // resume position belongs to another spec.
        (pagination, address) => Err(FetchError::Spec(format!(
            "resume position {address:?} does not fit pagination type {}",
            pagination.type_name()
        ))),
    }
}

fn guard(
    seen: &mut HashSet<String>,
    kind: &'static str,
    value: &str,
    plan: &FetchPlan,
    page_idx: u64,
) -> Result<(), FetchError> {
    if seen.insert(value.to_owned()) {
        Ok(())
    } else {
        let value = if kind.ends_with("URL") {
            plan.redactor.url_str(value)
        } else {
            plan.redactor.text(value)
        };
        Err(FetchError::Loop {
            page_idx,
            kind,
            value,
        })
    }
}

fn non_empty_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// `endConditionValue` against the page's value: equal JSON, or equal text (`"false"` vs `false`).
fn loosely_equal(found: &Value, wanted: &Value) -> bool {
    if found == wanted {
        return true;
    }
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text(found) == text(wanted)
}

/// Fetches and locates one page.
async fn fetch_page(
    run: Arc<Run>,
    address: NextPage,
    page_idx: u64,
) -> Result<Fetched, FetchError> {
    let plan = &run.plan;
    let mut url = plan.request.url.clone();
    let mut extra_headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let limit_pair = plan
        .pagination
        .limit()
        .map(|(name, limit)| (name.to_owned(), limit.to_string()));
    match (&address, &plan.pagination) {
        (NextPage::Url { url: next }, _) => {
            url = Url::parse(next)
                .map_err(|err| FetchError::Spec(format!("resume URL is not a URL: {err}")))?;
        }
        (NextPage::Offset { offset }, Pagination::Offset { offset_name, .. }) => {
            let mut pairs = url.query_pairs_mut();
            if let Some((name, value)) = &limit_pair {
                pairs.append_pair(name, value);
            }
            pairs.append_pair(offset_name, &offset.to_string());
        }
        (NextPage::Page { index, .. }, Pagination::Page { page_param, .. }) => {
            let mut pairs = url.query_pairs_mut();
            if let Some((name, value)) = &limit_pair {
                pairs.append_pair(name, value);
            }
            pairs.append_pair(page_param, &index.to_string());
        }
        (
            NextPage::Token { token },
            Pagination::ContinuationToken {
                placement,
                parameter_name,
                ..
            },
        ) => {
            if let Some((name, value)) = &limit_pair {
                url.query_pairs_mut().append_pair(name, value);
            }
            match placement {
                TokenPlacement::Query => {
                    url.query_pairs_mut().append_pair(parameter_name, token);
                }
                TokenPlacement::Header => {
                    let name = HeaderName::from_bytes(parameter_name.as_bytes()).map_err(|_| {
                        FetchError::Spec(format!(
                            "parameterName {parameter_name:?} is not a valid header name"
                        ))
                    })?;
                    let value = HeaderValue::from_str(token).map_err(|_| FetchError::Data {
                        page_idx,
                        detail:
                            "the continuation token cannot be sent in a header (control characters)"
                                .to_owned(),
                    })?;
                    extra_headers.push((name, value));
                }
            }
        }
        (NextPage::Start, _) => {
            if let Some((name, value)) = &limit_pair {
                url.query_pairs_mut().append_pair(name, value);
            }
        }
        (address, pagination) => {
            return Err(FetchError::Spec(format!(
                "resume position {address:?} does not fit pagination type {}",
                pagination.type_name()
            )));
        }
    }
    let (status, headers, body) = send(&run, &url, &extra_headers, page_idx).await?;
    let shown_url = plan.redactor.url(&url);
    let located = if body.len() > INLINE_LOCATE_BYTES {
        let run = run.clone();
        let body = body.clone();
        tokio::task::spawn_blocking(move || run.plan.selector.locate(&body, page_idx, &shown_url))
            .await
            .map_err(|err| FetchError::Data {
                page_idx,
                detail: format!("record locator task failed: {err}"),
            })??
    } else {
        plan.selector.locate(&body, page_idx, &shown_url)?
    };
    Ok(Fetched {
        address,
        url,
        status,
        headers,
        body,
        located,
    })
}

/// Sends one request with limiter, auth and retries; returns a success answer's status,
/// headers and whole body.
async fn send(
    run: &Run,
    url: &Url,
    extra_headers: &[(HeaderName, HeaderValue)],
    page_idx: u64,
) -> Result<(u16, HeaderMap, Bytes), FetchError> {
    let plan = &run.plan;
    let settings = &run.ctx.settings;
    let policy = settings.retry;
    let origin = origin_of(url);
    let same_origin = origin == plan.request.origin;
    let fingerprint = if same_origin {
        plan.auth.fingerprint()
    } else {
        CredentialFingerprint::NONE
    };
    let limiter = run
        .ctx
        .limiters
        .limiter(&origin, fingerprint, settings.quota);
    let shown_url = plan.redactor.url(url);
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut throttled_answers = 0u32;
    let mut refreshed = false;
    loop {
        let waited = limiter.acquire().await;
        run.counters.add_throttled(waited);
        let signed = if same_origin {
            Some(
                plan.auth
                    .sign(&run.ctx.client, settings.request_timeout)
                    .await?,
            )
        } else {
            None
        };
        let mut request = run
            .ctx
            .client
            .request(plan.request.method.clone(), url.clone())
            .timeout(settings.request_timeout);
        for (name, value, sensitive) in &plan.request.headers {
            if same_origin || !sensitive {
                request = request.header(name, value);
            }
        }
        for (name, value) in extra_headers {
            request = request.header(name, value);
        }
        if let Some(signed) = &signed {
            for (name, value) in &signed.headers {
                request = request.header(name, value);
            }
        }
        if let Some(body) = &plan.request.body {
            request = request.body(body.clone());
        }
        attempts += 1;
        run.counters.requests.fetch_add(1, Ordering::Relaxed);
        let failure = match request.send().await {
            Err(err) => network_error(&err, &shown_url, settings.request_timeout, &plan.redactor),
            Ok(response) => {
                let status = response.status().as_u16();
                let now = SystemTime::now();
                if let Some(hint) = headers::quota_hint(response.headers(), now) {
                    limiter.observe(hint);
                }
                let retry_after = headers::retry_after(response.headers(), now);
                if response.status().is_success() {
                    let headers = response.headers().clone();
                    match read_body(
                        response,
                        settings.max_response_bytes,
                        &shown_url,
                        settings.request_timeout,
                        &plan.redactor,
                    )
                    .await
                    {
                        Ok(body) => {
                            run.counters
                                .bytes_in
                                .fetch_add(body.len() as u64, Ordering::Relaxed);
                            return Ok((status, headers, body));
                        }
                        Err(err) => err,
                    }
                } else {
                    let body = read_body(
                        response,
                        64 * 1024,
                        &shown_url,
                        settings.request_timeout,
                        &plan.redactor,
                    )
                    .await
                    .unwrap_or_default();
                    run.counters
                        .bytes_in
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    let body_head = plan.redactor.body_head(&body);
                    if let (429 | 503, Some(delay)) = (status, retry_after) {
                        throttled_answers += 1;
                        let err = FetchError::Status {
                            url: shown_url.clone(),
                            status,
                            body_head,
                        };
                        if throttled_answers > MAX_THROTTLED_ANSWERS
                            || started.elapsed() + delay > policy.max_total
                        {
                            return Err(FetchError::RetriesExhausted {
                                attempts,
                                elapsed: started.elapsed(),
                                last: Box::new(err),
                            });
                        }
                        tracing::warn!(
                            page_idx,
                            status,
                            retry_after_ms = delay.as_millis() as u64,
                            "rate limited, pausing every request on this limiter"
                        );
                        limiter.block_for(delay);
                        run.counters.retries.fetch_add(1, Ordering::Relaxed);
                        // This answer does not count as a failed attempt: the API asked us to wait.
                        attempts -= 1;
                        continue;
                    }
                    if status == 401 && same_origin && !refreshed && plan.auth.can_refresh() {
                        refreshed = true;
                        if let Some(signed) = &signed {
                            plan.auth
                                .refresh_rejected(
                                    &run.ctx.client,
                                    settings.request_timeout,
                                    signed.generation,
                                )
                                .await?;
                        }
                        run.counters.retries.fetch_add(1, Ordering::Relaxed);
                        attempts -= 1;
                        continue;
                    }
                    if status == 401 || status == 403 {
                        return Err(FetchError::Unauthorized {
                            url: shown_url,
                            status,
                            body_head,
                        });
                    }
                    FetchError::Status {
                        url: shown_url.clone(),
                        status,
                        body_head,
                    }
                }
            }
        };
        if !failure.is_retryable() {
            return Err(failure);
        }
        let delay = policy.backoff(attempts);
        if attempts >= policy.max_attempts.get() || started.elapsed() + delay > policy.max_total {
            return Err(FetchError::RetriesExhausted {
                attempts,
                elapsed: started.elapsed(),
                last: Box::new(failure),
            });
        }
        tracing::warn!(page_idx, attempt = attempts, backoff_ms = delay.as_millis() as u64, error = %failure, "request failed, retrying");
        run.counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }
}

fn network_error(
    err: &reqwest::Error,
    shown_url: &str,
    timeout: Duration,
    redactor: &Redactor,
) -> FetchError {
    if err.is_timeout() {
        return FetchError::Timeout {
            url: shown_url.to_owned(),
            timeout,
        };
    }
    // reqwest's message names the URL; print our redacted one instead.
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(current) = source {
        if !detail.is_empty() {
            detail.push_str(": ");
        }
        detail.push_str(&current.to_string());
        source = current.source();
    }
    let detail =
        redactor.text(&detail.replace(err.url().map(Url::as_str).unwrap_or("\u{0}"), "<url>"));
    if err.is_body() || err.is_decode() {
        FetchError::Body {
            url: shown_url.to_owned(),
            detail,
        }
    } else {
        FetchError::Connect {
            url: shown_url.to_owned(),
            detail,
        }
    }
}

/// Reads the whole body, stopping with [`FetchError::TooLarge`] past `cap` bytes.
async fn read_body(
    mut response: reqwest::Response,
    cap: u64,
    shown_url: &str,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Bytes, FetchError> {
    if response.content_length().is_some_and(|length| length > cap) {
        return Err(FetchError::TooLarge {
            url: shown_url.to_owned(),
            limit: cap,
        });
    }
    let mut body =
        BytesMut::with_capacity(response.content_length().unwrap_or(16 * 1024).min(cap) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > cap {
                    return Err(FetchError::TooLarge {
                        url: shown_url.to_owned(),
                        limit: cap,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(err) => {
                return Err(match network_error(&err, shown_url, timeout, redactor) {
                    FetchError::Connect { url, detail } => FetchError::Body { url, detail },
                    other => other,
                });
            }
        }
    }
}

fn selector_of(source: &SourceSpec) -> Result<RecordSelector, FetchError> {
    let content = &source.content;
    let filter = |keep: &Vec<String>, skip: &Vec<String>| {
        AttrFilter::new((!keep.is_empty()).then(|| keep.clone()), skip.clone())
    };
    let explode = match &source.explode {
        Some(explode) => Some(ExplodeSelector::try_new(
            RecordPath::parse(explode.path.as_str())?,
            filter(&explode.keep, &explode.skip),
            explode.wrapper.clone(),
        )?),
        None => None,
    };
    Ok(
        RecordSelector::new(RecordPath::parse(content.path.as_str())?)
            .with_filter(filter(&content.keep, &content.skip))
            .with_wrapper(content.wrapper.clone())
            .with_explode(explode),
    )
}

impl PagingPaths {
    fn of(pagination: &Pagination) -> Result<Self, FetchError> {
        Ok(match pagination {
            Pagination::Pointer { pointer_path, .. } => Self {
                pointer: Some(RecordPath::parse(pointer_path.as_str())?),
                ..Self::default()
            },
            Pagination::ContinuationToken { token_path, .. } => Self {
                token: Some(RecordPath::parse(token_path.as_str())?),
                ..Self::default()
            },
            Pagination::Offset {
                end_condition: Some(end),
                ..
            } => Self {
                end_condition: Some((RecordPath::parse(end.path.as_str())?, end.value.clone())),
                ..Self::default()
            },
            _ => Self::default(),
        })
    }
}
