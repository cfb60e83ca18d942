//! Sending one request: the limiter of its origin, then auth, then retries
//! ([`crate::RetryPolicy`]): 429/503 with `Retry-After` block the whole limiter for that long; 5xx,
//! timeouts and connection errors back off with full jitter; a 401 refreshes the OAuth2 token
//! once and retries; other 4xx fail at once. A body past the size cap fails with
//! [`FetchError::TooLarge`].
//!
//! Redirects are followed here, not by the HTTP client (whose policy would carry an `x-api-key`
//! header rendered from a secret to any host): at most [`MAX_REDIRECTS`] hops of 301, 302, 303,
//! 307 and 308. A 303 turns the request into a GET without body (HEAD stays HEAD), a 301 or 302
//! turns a POST into a GET without body, a 307 or 308 keeps method and body. Every hop waits for
//! the limiter of its own origin and counts as a request. A hop to the plan's origin is sent as
//! the first one was; a hop to another origin carries no auth header and no spec header that
//! was rendered from a secret or whose name looks like a credential, and is refused when its URL
//! (or the body it would resend) holds a secret value, since the redirect itself would leak it.
//!
//! Every answer (or request that got none) is counted through the `metrics` facade by origin
//! and status class, with its latency and 429s (`observe_response`); labels never hold a URL.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::concurrency::Backoff;
use crate::drive::Run;
use crate::error::{FetchError, Redactor};
use crate::headers;
use crate::limit::{CredentialFingerprint, HostLimiter};
use crate::request::origin_of;

/// A success answer.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL that answered (after redirects): relative next-page URLs resolve against it.
    pub url: Url,
}

/// Redirect hops followed per request.
pub const MAX_REDIRECTS: usize = 10;

/// 429 / 503 answers with `Retry-After` tolerated per request (besides the total-time cap).
const MAX_THROTTLED_ANSWERS: u32 = 1_000;

/// Bytes of an error or redirect body read (to quote it and to reuse the connection).
const ERROR_BODY_BYTES: u64 = 64 * 1024;

/// The most a body buffer reserves up front, whatever `Content-Length` announces.
const MAX_RESERVE_BYTES: u64 = 4 * 1024 * 1024;

/// Words in a header name that mark it as a credential, dropped off-origin even when the spec
/// wrote its value literally.
const CREDENTIAL_HEADER_WORDS: [&str; 8] = [
    "auth",
    "key",
    "token",
    "secret",
    "password",
    "cookie",
    "session",
    "signature",
];

/// How one attempt ended, short of a success.
enum Failure {
    /// 429/503 with a `Retry-After` within the maximum wait, from this limiter's origin.
    Throttled {
        limiter: Arc<HostLimiter>,
        delay: Duration,
        err: FetchError,
    },
    /// A 401 from the plan's origin to a token of `generation`.
    Rejected { generation: u64, err: FetchError },
    /// The retry policy decides, by [`FetchError::is_retryable`].
    Failed(FetchError),
    /// No retry can help.
    Fatal(FetchError),
}

impl Failure {
    /// Whether this failure asks the run's concurrency to shrink: the API throttles or is
    /// overloaded (429, 502, 503, 504), or a request timed out.
    fn backoff(&self) -> Option<Backoff> {
        let err = match self {
            Failure::Throttled { .. } => return Some(Backoff::Throttled),
            Failure::Rejected { .. } => return None,
            Failure::Failed(err) | Failure::Fatal(err) => err,
        };
        match err {
            FetchError::Status {
                status: 429 | 502 | 503 | 504,
                ..
            } => Some(Backoff::Throttled),
            FetchError::Timeout { .. } => Some(Backoff::Timeout),
            _ => None,
        }
    }
}

/// Sends one request with limiter, auth, redirects and retries; returns a success answer.
pub(crate) async fn send(
    run: &Run,
    url: &Url,
    extra_headers: &[(HeaderName, HeaderValue)],
    page_idx: u64,
) -> Result<Answer, FetchError> {
    let plan = &run.plan;
    let settings = &run.ctx.settings;
    let policy = settings.retry;
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut throttled_answers = 0u32;
    let mut refreshed = false;
    let mut first_send = true;
    loop {
        attempts += 1;
        let result = attempt(run, url, extra_headers, page_idx, &mut first_send).await;
        if let Some(backoff) = result.as_ref().err().and_then(Failure::backoff) {
            run.counters.concurrency.on_backoff(backoff);
        }
        let failure = match result {
            Ok(answer) => return Ok(answer),
            Err(Failure::Fatal(err)) => return Err(err),
            Err(Failure::Throttled {
                limiter,
                delay,
                err,
            }) => {
                throttled_answers += 1;
                if throttled_answers > MAX_THROTTLED_ANSWERS
                    || past_total(started, delay, policy.max_total)
                {
                    return Err(FetchError::RetriesExhausted {
                        attempts,
                        elapsed: started.elapsed(),
                        last: Box::new(err),
                    });
                }
                tracing::warn!(
                    page_idx,
                    origin = limiter.origin(),
                    retry_after_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "rate limited, pausing every request on this limiter"
                );
                limiter.block_for(delay);
                run.counters.retries.fetch_add(1, Ordering::Relaxed);
                // This answer does not count as a failed attempt: the API asked us to wait.
                attempts -= 1;
                continue;
            }
            Err(Failure::Rejected { generation, err }) => {
                if refreshed || !plan.auth.can_refresh() {
                    return Err(err);
                }
                refreshed = true;
                plan.auth
                    .refresh_rejected(&run.ctx.client, settings.request_timeout, generation)
                    .await?;
                run.counters.retries.fetch_add(1, Ordering::Relaxed);
                attempts -= 1;
                continue;
            }
            Err(Failure::Failed(err)) => err,
        };
        if !failure.is_retryable() {
            return Err(failure);
        }
        let delay = policy.backoff(attempts);
        if attempts >= policy.max_attempts.get() || past_total(started, delay, policy.max_total) {
            return Err(FetchError::RetriesExhausted {
                attempts,
                elapsed: started.elapsed(),
                last: Box::new(failure),
            });
        }
        tracing::warn!(page_idx, attempt = attempts, backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %failure, "request failed, retrying");
        run.counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }
}

/// One attempt: the request and the redirects it leads to, each hop through its limiter.
async fn attempt(
    run: &Run,
    url: &Url,
    extra_headers: &[(HeaderName, HeaderValue)],
    page_idx: u64,
    first_send: &mut bool,
) -> Result<Answer, Failure> {
    let plan = &run.plan;
    let settings = &run.ctx.settings;
    let redactor = &plan.redactor;
    let mut current = url.clone();
    let mut method = plan.request.method.clone();
    let mut body = plan.request.body.clone();
    let mut hops = 0usize;
    let mut in_flight = None;
    loop {
        // A redirect hop is the same request in flight, counted once.
        drop(in_flight.take());
        let same_origin = origin_of(&current) == plan.request.origin;
        let shown_url = redactor.url(&current);
        if !same_origin {
            refuse_secrets_off_origin(&current, body.as_ref(), redactor, page_idx, "request")
                .map_err(Failure::Fatal)?;
        }
        let credential = if same_origin {
            plan.auth.fingerprint()
        } else {
            CredentialFingerprint::NONE
        };
        let limiter = run.ctx.limiter(&current, credential);
        let (waited, held) = limiter.acquire_held().await.map_err(|hint| {
            Failure::Fatal(FetchError::wait_too_long(
                &shown_url,
                &hint,
                settings.max_wait,
                redactor,
            ))
        })?;
        run.counters.add_throttled(waited);
        in_flight = Some(run.counters.concurrency.start_request());
        let sent = Instant::now();
        let signed = if same_origin {
            Some(
                plan.auth
                    .sign(&run.ctx.client, settings.request_timeout)
                    .await
                    .map_err(Failure::Fatal)?,
            )
        } else {
            None
        };
        let mut request = run
            .ctx
            .client
            .request(method.clone(), current.clone())
            .timeout(settings.request_timeout);
        for (name, value, sensitive) in &plan.request.headers {
            let is_credential = *sensitive || looks_like_credential(name);
            // A body that is not resent takes its content headers with it.
            let is_orphan = body.is_none() && is_body_header(name);
            if (same_origin || !is_credential) && !is_orphan {
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
        if let Some(body) = &body {
            request = request.body(body.clone());
        }
        run.counters.requests.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(first_send) {
            run.counters.concurrency.page_request_sent();
        }
        let sent_at = Instant::now();
        let response = request.send().await;
        observe_response(
            limiter.origin(),
            response.as_ref().ok().map(reqwest::Response::status),
            sent_at.elapsed(),
        );
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                return Err(Failure::Failed(network_error(
                    &err,
                    &shown_url,
                    settings.request_timeout,
                    redactor,
                )));
            }
        };
        let status = response.status();
        let now = SystemTime::now();
        if let Some(hint) = headers::quota_hint(response.headers(), now) {
            limiter.observe_from(sent, hint.remaining, hint.reset.as_ref(), settings.max_wait);
        }
        if let Some(policy) = headers::quota_policy(response.headers()) {
            limiter.learn_policy(&policy, settings.max_wait);
        }
        let location = status
            .is_redirection()
            .then(|| response.headers().get(http::header::LOCATION).cloned())
            .flatten();
        if let Some(location) = location {
            hops += 1;
            let next = redirect_target(&current, &location, status, hops, &shown_url, redactor)
                .map_err(Failure::Fatal)?;
            // Read what little the redirect says, so its connection can be reused.
            let drained = read_body(
                response,
                ERROR_BODY_BYTES,
                &shown_url,
                settings.request_timeout,
                redactor,
            )
            .await
            .unwrap_or_default();
            run.counters
                .bytes_in
                .fetch_add(drained.len() as u64, Ordering::Relaxed);
            match status {
                StatusCode::SEE_OTHER => {
                    if method != reqwest::Method::HEAD {
                        method = reqwest::Method::GET;
                    }
                    body = None;
                }
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND
                    if method == reqwest::Method::POST =>
                {
                    method = reqwest::Method::GET;
                    body = None;
                }
                _ => {}
            }
            if origin_of(&next) != plan.request.origin {
                refuse_secrets_off_origin(&next, body.as_ref(), redactor, page_idx, "redirect")
                    .map_err(Failure::Fatal)?;
            }
            tracing::debug!(
                page_idx,
                status = status.as_u16(),
                from = %shown_url,
                to = %redactor.url(&next),
                "following a redirect"
            );
            current = next;
            continue;
        }
        if status.is_success() {
            let headers = response.headers().clone();
            let body = read_body(
                response,
                settings.max_response_bytes,
                &shown_url,
                settings.request_timeout,
                redactor,
            )
            .await
            .map_err(Failure::Failed)?;
            run.counters
                .bytes_in
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            run.counters.concurrency.on_answer(sent.elapsed(), held);
            return Ok(Answer {
                status: status.as_u16(),
                headers,
                body,
                url: current,
            });
        }
        let retry_after = headers::retry_after(response.headers(), now);
        let error_body = read_body(
            response,
            ERROR_BODY_BYTES,
            &shown_url,
            settings.request_timeout,
            redactor,
        )
        .await
        .unwrap_or_default();
        run.counters
            .bytes_in
            .fetch_add(error_body.len() as u64, Ordering::Relaxed);
        let status = status.as_u16();
        let body_head = redactor.body_head(&error_body);
        if let (429 | 503, Some(hint)) = (status, retry_after) {
            let Some(delay) = hint.delay.filter(|delay| *delay <= settings.max_wait) else {
                return Err(Failure::Fatal(FetchError::wait_too_long(
                    &shown_url,
                    &hint,
                    settings.max_wait,
                    redactor,
                )));
            };
            return Err(Failure::Throttled {
                limiter,
                delay,
                err: FetchError::Status {
                    url: shown_url,
                    status,
                    body_head,
                },
            });
        }
        // Only the plan's origin saw our credentials; elsewhere a 401 is a plain status.
        let rejected = FetchError::Unauthorized {
            url: shown_url.clone(),
            status,
            body_head: body_head.clone(),
        };
        return Err(match (status, &signed) {
            (401, Some(signed)) => Failure::Rejected {
                generation: signed.generation,
                err: rejected,
            },
            (403, Some(_)) => Failure::Fatal(rejected),
            _ => Failure::Failed(FetchError::Status {
                url: shown_url,
                status,
                body_head,
            }),
        });
    }
}

/// The URL a redirect leads to, or why it cannot be followed.
/// Operator metrics of one answer (or a request that got none): requests by origin and status
/// class, the time to the answer's headers, and 429s. Labels are the origin (scheme, host and
/// port) and the class, never the URL.
fn observe_response(origin: &str, status: Option<StatusCode>, elapsed: Duration) {
    let status_class = match status.map(|status| status.as_u16() / 100) {
        Some(1) => "1xx",
        Some(2) => "2xx",
        Some(3) => "3xx",
        Some(4) => "4xx",
        Some(5) => "5xx",
        Some(_) => "other",
        None => "error",
    };
    let origin = origin.to_owned();
    metrics::counter!("tributary_source_requests_total", "origin" => origin.clone(), "status_class" => status_class).increment(1);
    metrics::histogram!("tributary_source_request_duration_seconds", "origin" => origin.clone())
        .record(elapsed.as_secs_f64());
    if status == Some(StatusCode::TOO_MANY_REQUESTS) {
        metrics::counter!("tributary_source_rate_limited_total", "origin" => origin).increment(1);
    }
}

fn redirect_target(
    current: &Url,
    location: &HeaderValue,
    status: StatusCode,
    hops: usize,
    shown_url: &str,
    redactor: &Redactor,
) -> Result<Url, FetchError> {
    let redirect_error = |detail: String| FetchError::Redirect {
        url: shown_url.to_owned(),
        status: status.as_u16(),
        detail,
    };
    if hops > MAX_REDIRECTS {
        return Err(redirect_error(format!(
            "more than {MAX_REDIRECTS} redirects in a row"
        )));
    }
    let location = String::from_utf8_lossy(location.as_bytes());
    let next = current.join(location.trim()).map_err(|err| {
        redirect_error(format!(
            "its Location {:?} is not a URL: {err}",
            redactor.url_str(&crate::error::cut(&location, 200))
        ))
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(redirect_error(format!(
            "its Location {:?} is not an http or https URL",
            redactor.url(&next)
        )));
    }
    Ok(next)
}

/// Refuses a request to another origin whose URL (or body) holds a secret value: dropping the
/// auth headers does not help when the credential is in the URL itself.
pub(crate) fn refuse_secrets_off_origin(
    url: &Url,
    body: Option<&Bytes>,
    redactor: &Redactor,
    page_idx: u64,
    via: &'static str,
) -> Result<(), FetchError> {
    let carrier = if redactor.contains_secret(url.as_str()) {
        "in its URL"
    } else if body.is_some_and(|body| redactor.contains_secret(&String::from_utf8_lossy(body))) {
        "in the request body it would send"
    } else {
        return Ok(());
    };
    Err(FetchError::CredentialOffOrigin {
        page_idx,
        via,
        url: redactor.url(url),
        carrier,
    })
}

fn looks_like_credential(name: &HeaderName) -> bool {
    let name = name.as_str();
    CREDENTIAL_HEADER_WORDS
        .iter()
        .any(|word| name.contains(word))
}

fn is_body_header(name: &HeaderName) -> bool {
    name == http::header::CONTENT_TYPE
        || name == http::header::CONTENT_LENGTH
        || name == http::header::CONTENT_ENCODING
}

/// Whether waiting `delay` more would take the request past the total-time cap.
fn past_total(started: Instant, delay: Duration, max_total: Duration) -> bool {
    started
        .elapsed()
        .checked_add(delay)
        .is_none_or(|total| total > max_total)
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
    // The declared length only sizes the first allocation, and never past a few MiB: a server
    // that announces 256 MiB and sends a byte must not make us reserve 256 MiB.
    let reserve = response
        .content_length()
        .unwrap_or(16 * 1024)
        .min(cap)
        .min(MAX_RESERVE_BYTES);
    let mut body = BytesMut::with_capacity(usize::try_from(reserve).unwrap_or(16 * 1024));
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
