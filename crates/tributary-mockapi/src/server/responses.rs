//! Responses of the server: JSON bodies, problem details, OAuth errors, a body cut half way,
//! and the rate-limit headers every answer carries.

use std::io;

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use crate::config::RetryAfterFormat;
use crate::ratelimit::Decision;

/// Announces the whole body, sends half, then fails the stream so the connection is cut.
pub(super) fn truncated_response(body: Vec<u8>, rate: Option<&Decision>) -> Response {
    let full_len = body.len();
    let half = Bytes::from(body).slice(..full_len / 2);
    // The pause lets the server flush the head and the first half before the stream fails;
    // the failure then cuts the connection mid-body.
    let cut = futures::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "body truncated by fault injection",
        ))
    });
    let chunks = futures::stream::once(async move { Ok::<Bytes, io::Error>(half) }).chain(cut);
    let mut response = Response::new(Body::from_stream(chunks));
    let response_headers = response.headers_mut();
    response_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response_headers.insert(CONTENT_LENGTH, HeaderValue::from(full_len));
    if let Some(decision) = rate {
        apply_rate_headers(response_headers, decision);
    }
    response
}

pub(super) fn json_response(
    status: StatusCode,
    body: Vec<u8>,
    rate: Option<&Decision>,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(decision) = rate {
        apply_rate_headers(headers, decision);
    }
    response
}

/// An RFC 9457 problem document, the error shape Mailchimp uses.
pub(super) fn problem(
    status: StatusCode,
    title: &str,
    detail: &str,
    rate: Option<&Decision>,
) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = json_response(status, body.to_string().into_bytes(), rate);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

pub(super) fn token_error(status: u16, error: &str, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"error": error, "error_description": description});
    json_response(status, body.to_string().into_bytes(), None)
}

pub(super) fn apply_rate_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    let reset = format!(
        "{}.{:03}",
        decision.reset_millis / 1000,
        decision.reset_millis % 1000
    );
    if let Ok(value) = HeaderValue::from_str(&reset) {
        headers.insert("x-ratelimit-reset", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("{};w=1", decision.limit)) {
        headers.insert("ratelimit-policy", value);
    }
    let draft = format!(
        "limit={}, remaining={}, reset={}",
        decision.limit, decision.remaining, decision.reset_secs
    );
    if let Ok(value) = HeaderValue::from_str(&draft) {
        headers.insert("ratelimit", value);
    }
}

/// `Retry-After` as delay seconds, or as the HTTP date that many seconds (rounded up to the
/// next whole second, so a client never retries early) from now.
pub(super) fn retry_after_value(format: RetryAfterFormat, secs: u64) -> HeaderValue {
    match format {
        RetryAfterFormat::Seconds => HeaderValue::from(secs),
        RetryAfterFormat::HttpDate => {
            let now = chrono::Utc::now();
            let whole = now.timestamp() + 1 + i64::try_from(secs).unwrap_or(i64::MAX / 2);
            let at = chrono::DateTime::from_timestamp(whole, 0).unwrap_or(now);
            let text = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from(secs))
        }
    }
}

pub(super) fn total_count_header(total: u64) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(total),
    )
}
