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
