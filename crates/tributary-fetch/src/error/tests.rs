//! Tests of the redactor and of error classification.

use super::*;

#[test]
fn urls_lose_userinfo_credential_params_and_secret_values() {
    let redactor = Redactor::new(vec![Secret::new("tok-123456")], vec!["sig_v2".to_owned()]);
    let url = url::Url::parse(
        "https://user:pass@api.test/x/tok-123456?api_key=k1&access_token=t&SIG_V2=s&page=2&q=tok-123456",
    )
    .unwrap();
    assert_eq!(
        redactor.url(&url),
        "https://api.test/x/***?api_key=***&access_token=***&SIG_V2=***&page=2&q=***"
    );
    redactor.clone().add_secret(&Secret::new("later-secret"));
    assert_eq!(
        redactor.text("a later-secret b"),
        "a *** b",
        "clones share learned secrets"
    );
    assert_eq!(redactor.text("abc"), "abc");
    let long_body = format!(
        "{{\"error\": \"bad token tok-123456\", \"pad\": \"{}\"}}",
        "x".repeat(400)
    );
    let head = redactor.body_head(long_body.as_bytes());
    assert!(head.starts_with("{\"error\": \"bad token ***\""), "{head}");
    assert!(
        head.ends_with('…') && head.chars().count() <= BODY_HEAD_BYTES + 1,
        "{head}"
    );
}

#[test]
fn causes_and_retryability() {
    let status = |status| FetchError::Status {
        url: "u".into(),
        status,
        body_head: String::new(),
    };
    let cases: Vec<(FetchError, ErrorCause, bool)> = vec![
        (status(500), ErrorCause::RemoteApi, true),
        (status(429), ErrorCause::RemoteApi, true),
        (status(408), ErrorCause::RemoteApi, true),
        (status(404), ErrorCause::RemoteApi, false),
        (
            FetchError::Timeout {
                url: "u".into(),
                timeout: Duration::from_secs(1),
            },
            ErrorCause::Network,
            true,
        ),
        (
            FetchError::Unauthorized {
                url: "u".into(),
                status: 401,
                body_head: String::new(),
            },
            ErrorCause::Auth,
            false,
        ),
        (
            FetchError::Loop {
                page_idx: 1,
                kind: "continuation token",
                value: "t".into(),
            },
            ErrorCause::RemoteApi,
            false,
        ),
        (FetchError::Spec("x".into()), ErrorCause::SpecData, false),
        (
            FetchError::RetriesExhausted {
                attempts: 3,
                elapsed: Duration::from_secs(1),
                last: Box::new(status(503)),
            },
            ErrorCause::RemoteApi,
            true,
        ),
    ];
    for (err, cause, retryable) in cases {
        assert_eq!(
            (err.cause(), err.is_retryable()),
            (cause, retryable),
            "{err}"
        );
    }
}

#[test]
fn excerpts_are_scrubbed_before_they_are_cut_and_secrets_are_found_encoded() {
    let secret = "s3cr3t-value-that-is-long";
    let redactor = Redactor::new(vec![Secret::new(secret)], Vec::new());
    // The secret straddles the cut of both excerpts: scrubbing the cut text would leave its
    // first half in the message.
    let body = format!("{}{secret} and more", "x".repeat(BODY_HEAD_BYTES - 5));
    let head = redactor.body_head(body.as_bytes());
    assert!(!head.contains("s3cr"), "{head}");
    let body = format!("{}{secret}", "y".repeat(NOT_JSON_HEAD_CHARS - 4));
    let head = redactor.text_head(body.as_bytes(), NOT_JSON_HEAD_CHARS);
    assert!(!head.contains("s3cr"), "{head}");

    assert!(redactor.contains_secret(&format!("https://h/?k={secret}")));
    assert!(redactor.contains_secret("https://h/?k=s3cr3t%2Dvalue%2Dthat%2Dis%2Dlong"));
    assert!(!redactor.contains_secret("https://h/?k=other"));
}

#[test]
fn waits_and_bodies_that_are_not_json_are_described_with_what_the_api_sent() {
    let redactor = Redactor::new(vec![Secret::new("key-123456")], Vec::new());
    let hint = crate::headers::WaitHint {
        delay: None,
        seconds: 1e30,
        header: "Retry-After",
        value: "1e30".to_owned(),
    };
    let err = FetchError::wait_too_long("http://h/x", &hint, Duration::from_secs(900), &redactor);
    assert_eq!(
        err.to_string(),
        "http://h/x: the API asked to wait 1e30 s (Retry-After: 1e30), more than the maximum wait of 15m (limits.max_wait_secs)"
    );
    assert_eq!(duration_text(Duration::from_secs(5400)), "1h30m");
    assert_eq!(duration_text(Duration::from_millis(250)), "250ms");

    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let body = "<!DOCTYPE html><html>\n<body>\"key-123456\" expired, see the portal for a new one</body></html>";
    let err = FetchError::not_json(0, "http://h/x", &headers, body.as_bytes(), &redactor);
    assert_eq!(
        err.to_string(),
        r#"page 0 is not JSON (content-type text/html; charset=utf-8): starts with "<!DOCTYPE html><html>\n<body>\"***\" expired, see the portal fo…" (url http://h/x)"#
    );
    let err = FetchError::not_json(3, "http://h/x", &http::HeaderMap::new(), b"", &redactor);
    assert_eq!(
        err.to_string(),
        r#"page 3 is not JSON (no content-type): starts with "" (url http://h/x)"#
    );
}
