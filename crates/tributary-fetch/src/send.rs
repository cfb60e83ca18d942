//! Sending one request: the limiter of its origin, then auth, then retries
//! ([`crate::RetryPolicy`]): 429/503 with `Retry-After` block the whole limiter for that long; 5xx,
//! timeouts and connection errors back off with full jitter; a 401 refreshes the OAuth2 token
//! once and retries; other 4xx fail at once. A body past the size cap fails with
//! [`FetchError::TooLarge`].

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use url::Url;

use crate::drive::Run;
use crate::error::{FetchError, Redactor};
use crate::headers;
use crate::limit::CredentialFingerprint;
use crate::request::origin_of;

/// 429 / 503 answers with `Retry-After` tolerated per request (besides the total-time cap).
const MAX_THROTTLED_ANSWERS: u32 = 1_000;

/// Sends one request with limiter, auth and retries; returns a success answer's status,
/// headers and whole body.
pub(crate) async fn send(
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
        let waited = limiter.acquire().await.map_err(|hint| {
            FetchError::wait_too_long(&shown_url, &hint, settings.max_wait, &plan.redactor)
        })?;
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
                    limiter.observe(hint.remaining, hint.reset.as_ref(), settings.max_wait);
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
                    if let (429 | 503, Some(hint)) = (status, retry_after) {
                        let Some(delay) = hint.delay.filter(|delay| *delay <= settings.max_wait)
                        else {
                            return Err(FetchError::wait_too_long(
                                &shown_url,
                                &hint,
                                settings.max_wait,
                                &plan.redactor,
                            ));
                        };
                        throttled_answers += 1;
                        let err = FetchError::Status {
                            url: shown_url.clone(),
                            status,
                            body_head,
                        };
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
        if attempts >= policy.max_attempts.get() || past_total(started, delay, policy.max_total) {
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
