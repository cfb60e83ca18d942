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
//!   is resolved against the URL that answered (after redirects); auth headers (and spec headers
//!   rendered from credentials) go only to the origin of the spec's request and are dropped when
//!   a pointer leaves it, and a pointer that leaves it with a secret value in its URL is refused;
//! - CONTINUATION_TOKEN: the token at `continuationTokenPath`, sent as query or header param;
//! - LINK (our extension, `"type": "LINK"`): the RFC 8288 `Link: <…>; rel="next"` header, with
//!   the same rules as POINTER;
//! - NONE: one request.
//!
//! Every type honours `maximumRequest` (per run) and `delayRequestMillis` (on the limiter of
//! the plan's origin and credential, shared with every run there), and a loop guard: a token or
//! URL seen before in the same run is an error naming it. OFFSET and PAGE addresses are
//! computable, so several pages are in flight at once, as many as the run's adaptive
//! concurrency allows ([`crate::concurrency`]: from 1 up to `maxConcurrentRequests` or the
//! default ceiling, every request within the shared limiter), and are emitted in order. The
//! end of the data is the first short or empty page, the end condition, or the last page index
//! (literal or header); requests already issued past it are dropped unread and counted, and
//! are never more than the limit then, since no more than that many pages are outstanding.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::Instrument;
use tributary_spec::{EndPageIndex, Pagination, TokenPlacement};
use url::Url;

use crate::concurrency::DEFAULT_CONCURRENCY_CEILING;
use crate::error::{FetchError, cut};
use crate::headers;
use crate::page::{
    FetchCounters, FetchEnd, FetchEvent, FetchRun, NextPage, Page, Position, WindowPosition,
};
use crate::plan::{FetchContext, FetchPlan};
use crate::records::{Envelope, LocatedRecords};
use crate::request::origin_of;
use crate::send::{Answer, refuse_secrets_off_origin, send};

/// A page's response before it is emitted.
struct Fetched {
    address: NextPage,
    /// The URL requested for the page.
    url: Url,
    /// The URL that answered, after redirects.
    answered_url: Url,
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    located: LocatedRecords,
}

/// State shared by the driver and the in-flight requests of one run.
pub(crate) struct Run {
    pub(crate) ctx: FetchContext,
    pub(crate) plan: FetchPlan,
    pub(crate) counters: Arc<FetchCounters>,
}

/// Characters of an API-sent token or URL a message quotes.
const SHOWN_VALUE_CHARS: usize = 300;

/// Pages larger than this are located on a blocking thread, so async workers never stall.
const INLINE_LOCATE_BYTES: usize = 64 * 1024;

/// Starts fetching `plan` on a tokio task. Must be called inside a tokio runtime.
pub fn fetch_pages(ctx: &FetchContext, plan: FetchPlan) -> FetchRun {
    // Runs of one OAuth2 grant share its tokens and its refresh gate.
    let plan = ctx.share_auth(plan);
    let (sender, receiver) = mpsc::channel(ctx.settings.channel_capacity.max(1));
    let computable = matches!(
        plan.pagination,
        Pagination::Offset { .. } | Pagination::Page { .. }
    );
    let ceiling = plan
        .max_concurrent_requests
        .map_or(DEFAULT_CONCURRENCY_CEILING, NonZeroU32::get);
    let counters = Arc::new(FetchCounters::with_concurrency(ceiling, computable));
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
            // The last item is exactly one `End` or one `Err`; the consumer may be gone, and
            // then nobody needs either.
            match drive(&run, &sender).await {
                Ok(Some(end)) => {
                    let _ = sender.send(Ok(FetchEvent::End(end))).await;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "fetch failed");
                    let _ = sender.send(Err(err)).await;
                }
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

/// Fetches every page of the run, in order, into `sender`; returns how the pages ended, or
/// `None` when the consumer hung up.
async fn drive(
    run: &Arc<Run>,
    sender: &mpsc::Sender<Result<FetchEvent, FetchError>>,
) -> Result<Option<FetchEnd>, FetchError> {
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
    // `delayRequestMillis` spaces the requests of every run on the plan's limiter (origin and
    // credential), not only this run's: parallel windows of one flow share the declared rate.
    if let Some(delay) = common.delay {
        run.ctx
            .limiter(&plan.request.url, plan.auth.fingerprint())
            .require_interval(delay);
    }
    let max_requests = common.maximum_requests.get();
    let computable = matches!(
        plan.pagination,
        Pagination::Offset { .. } | Pagination::Page { .. }
    );
    let concurrency = &run.counters.concurrency;
    let limit = plan
        .pagination
        .limit()
        .map(|(_, limit)| u64::from(limit.get()));

    // `maximumRequest` caps the requests of this run; a run resumed from a position has a fresh
    // budget, so a window stopped by the cap continues where it stopped.
    let mut requests_issued = 0u32;
    let mut requests_done = 0u32;
    let mut page_idx = start.pages;
    let mut issue_next: Option<NextPage> =
        Some(start.next.clone()).filter(|next| *next != NextPage::Done);
    let mut known_end: Option<u64> = match &start.next {
        NextPage::Page { end, .. } => *end,
        _ => None,
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut in_flight = FuturesOrdered::new();
    let mut position = start.clone();

    loop {
        while in_flight.len() < concurrency.limit() && requests_issued < max_requests {
            let Some(address) = issue_next.take() else {
                break;
            };
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
        // The position may be stored: a next URL names its secrets instead of holding them.
        let stored_next = match &next {
            NextPage::Url { url } => NextPage::Url {
                url: plan.stored_url(url),
            },
            other => other.clone(),
        };
        position = Position {
            next: stored_next,
            requests: start.requests.saturating_add(requests_done),
            pages: page_idx + 1,
            window: plan.window.map(WindowPosition::from),
        };
        let body_len = fetched.body.len() as u64;
        let body = plan.keep_raw_bodies.then_some(fetched.body);
        let records = fetched.located.ndjson;
        // Records located in place hold the whole body's buffer; copied ones hold their own.
        let held_bytes = if plan.locates_in_place() {
            body_len
        } else {
            records.len() as u64 + body.as_ref().map_or(0, |b| b.len() as u64)
        };
        let budget = match &run.ctx.page_budget {
            Some(page_budget) => Some(Arc::new(page_budget.acquire(held_bytes).await)),
            None => None,
        };
        let page = Page {
            page_idx,
            url: plan.redactor.url(&fetched.url),
            status: fetched.status,
            record_count: fetched.located.record_count,
            records,
            body,
            body_len,
            position: position.clone(),
            budget,
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
        if sender.send(Ok(FetchEvent::Page(page))).await.is_err() {
            tracing::debug!("page consumer dropped, stopping the fetch");
            return Ok(None);
        }
        page_idx += 1;
        if next == NextPage::Done {
            // Pages requested past the end are dropped unread (a request not yet answered is
            // cancelled, one not yet sent never goes): count those that went out, they are what
            // concurrency cost at the end, and fewer than the pages that were outstanding.
            drop(in_flight);
            concurrency.count_past_end(page_idx - start.pages);
            concurrency.end_of_data();
            break;
        }
        if capped {
            break;
        }
        if !computable {
            issue_next = Some(next);
        }
    }
    // Pages are left exactly when the last position names a next page: `maximumRequest`
    // stopped the run (or a resumed run had nothing left to request under it).
    let truncated = position.next != NextPage::Done;
    Ok(Some(FetchEnd {
        position,
        truncated,
    }))
}

/// The address after `address` for OFFSET / PAGE, issued before its page is seen.
fn advance(address: &NextPage, limit: Option<u64>, known_end: Option<u64>) -> Option<NextPage> {
    match address {
        // An address past u64 is never issued; the page before it ends the run (next_page).
        NextPage::Offset { offset } => Some(NextPage::Offset {
            offset: offset.checked_add(limit.unwrap_or(1))?,
        }),
        NextPage::Page { index, end } => {
            let end = end.or(known_end);
            let next = index.checked_add(1)?;
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
        let paths = plan.envelope_paths();
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
            let Some(offset) = offset.checked_add(limit.unwrap_or(record_count)) else {
                return Err(address_overflow(page_idx));
            };
            Ok(NextPage::Offset { offset })
        }
        (Pagination::Page { .. }, NextPage::Page { index, end }) => {
            let end = end.or(known_end);
            if record_count == 0 || end.is_some_and(|end| *index >= end) {
                return Ok(NextPage::Done);
            }
            let Some(index) = index.checked_add(1) else {
                return Err(address_overflow(page_idx));
            };
            Ok(NextPage::Page { index, end })
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
            let url = fetched
                .answered_url
                .join(&pointer)
                .map_err(|err| FetchError::Data {
                    page_idx,
                    detail: format!(
                        "next pointer {:?} is not a URL: {err}",
                        cut(&plan.redactor.url_str(&pointer), SHOWN_VALUE_CHARS)
                    ),
                })?;
            check_next_url(plan, &url, "next pointer URL", page_idx)?;
            guard(seen, "next pointer URL", url.as_str(), plan, page_idx)?;
            Ok(NextPage::Url { url: url.into() })
        }
        (Pagination::Link { .. }, _) => {
            let Some(target) = headers::next_link(&fetched.headers) else {
                return Ok(NextPage::Done);
            };
            let url = fetched
                .answered_url
                .join(&target)
                .map_err(|err| FetchError::Data {
                    page_idx,
                    detail: format!(
                        "Link rel=\"next\" target {:?} is not a URL: {err}",
                        cut(&plan.redactor.url_str(&target), SHOWN_VALUE_CHARS)
                    ),
                })?;
            check_next_url(plan, &url, "Link next URL", page_idx)?;
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

fn address_overflow(page_idx: u64) -> FetchError {
    FetchError::Data {
        page_idx,
        detail: "the next page's offset or index would not fit in 64 bits".to_owned(),
    }
}

/// A next-page URL the API sent: http(s) only, and never to another origin with a secret in it.
fn check_next_url(
    plan: &FetchPlan,
    url: &Url,
    kind: &'static str,
    page_idx: u64,
) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Data {
            page_idx,
            detail: format!(
                "the {kind} {:?} is not an http or https URL",
                plan.redactor.url(url)
            ),
        });
    }
    if origin_of(url) != plan.request.origin {
        refuse_secrets_off_origin(url, None, &plan.redactor, page_idx, kind)?;
    }
    Ok(())
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
        // Tokens and URLs come from the API: a message quotes a bounded part of them.
        let value = cut(&value, SHOWN_VALUE_CHARS);
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

/// Whether the body starts like a JSON object or array (after whitespace and a UTF-8 BOM): a
/// page of records is always one of them, and anything else (an HTML error page, a plain-text
/// message, an empty body) is reported as what it is rather than as a contentPath mismatch.
fn looks_like_json(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    matches!(
        body.iter().find(|byte| !byte.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
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
            // A resumed position names its secrets; a URL of this run holds them already.
            url = Url::parse(&plan.resolved_url(next)?)
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
    let Answer {
        status,
        headers,
        body,
        url: answered_url,
    } = send(&run, &url, &extra_headers, page_idx).await?;
    let shown_url = plan.redactor.url(&url);
    if !looks_like_json(&body) {
        return Err(FetchError::not_json(
            page_idx,
            &shown_url,
            &headers,
            &body,
            &plan.redactor,
        ));
    }
    let in_place = plan.locates_in_place();
    let locate = move |run: &Run, body: Bytes| {
        if in_place {
            run.plan
                .selector
                .locate_in_place(body, page_idx, &shown_url)
        } else {
            let located = run.plan.selector.locate(&body, page_idx, &shown_url)?;
            Ok((body, located))
        }
    };
    let located = if body.len() > INLINE_LOCATE_BYTES {
        let run = run.clone();
        tokio::task::spawn_blocking(move || locate(&run, body))
            .await
            .map_err(|err| FetchError::Data {
                page_idx,
                detail: format!("record locator task failed: {err}"),
            })?
    } else {
        locate(&run, body)
    };
    // Messages about the page quote its keys: scrub them like every other text from the API.
    let (body, located) = located.map_err(|err| err.redacted(&plan.redactor))?;
    Ok(Fetched {
        address,
        url,
        answered_url,
        status,
        headers,
        body,
        located,
    })
}
