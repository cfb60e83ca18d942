//! Tests of header parsing.

use std::time::{Duration, SystemTime};

use expect_test::{Expect, expect};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// 2026-01-01T00:00:00Z, a fixed "now".
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn check(pairs: &[(&str, &str)], expected: Expect) {
    let map = headers(pairs);
    let actual = format!(
        "retry_after={:?} quota={:?} policy={:?} links={:?} next={:?}",
        retry_after(&map, now()),
        quota_hint(&map, now()),
        quota_policy(&map),
        links(&map),
        next_link(&map),
    );
    expected.assert_eq(&actual);
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    check(
        &[("retry-after", "7")],
        expect![[r#"retry_after=Some(7s) quota=None policy=None links=[] next=None"#]],
    );
    check(
        &[("retry-after", "Thu, 01 Jan 2026 00:00:30 GMT")],
        expect![[r#"retry_after=Some(30s) quota=None policy=None links=[] next=None"#]],
    );
    check(
        &[("retry-after", "Wed, 31 Dec 2025 23:00:00 GMT")],
        expect![[r#"retry_after=Some(0ns) quota=None policy=None links=[] next=None"#]],
    );
    check(
        &[("retry-after", "soon")],
        expect![[r#"retry_after=None quota=None policy=None links=[] next=None"#]],
    );
}

#[test]
fn rate_limit_headers_in_every_dialect() {
    check(
        &[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "12")],
        expect![[
            r#"retry_after=None quota=Some(QuotaHint { remaining: 3, reset_in: 12s }) policy=None links=[] next=None"#
        ]],
    );
    check(
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1767225660"),
        ],
        expect![[
            r#"retry_after=None quota=Some(QuotaHint { remaining: 0, reset_in: 60s }) policy=None links=[] next=None"#
        ]],
    );
    check(
        &[
            ("ratelimit", "limit=100, remaining=50, reset=30"),
            ("ratelimit-policy", "100;w=60"),
        ],
        expect![[
            r#"retry_after=None quota=Some(QuotaHint { remaining: 50, reset_in: 30s }) policy=Some((100, 60s)) links=[] next=None"#
        ]],
    );
    check(
        &[
            ("ratelimit", "\"default\";r=5;t=2"),
            ("ratelimit-policy", "\"default\";q=10;w=1"),
        ],
        expect![[
            r#"retry_after=None quota=Some(QuotaHint { remaining: 5, reset_in: 2s }) policy=Some((10, 1s)) links=[] next=None"#
        ]],
    );
    check(
        &[("ratelimit-remaining", "9"), ("ratelimit-reset", "4")],
        expect![[
            r#"retry_after=None quota=Some(QuotaHint { remaining: 9, reset_in: 4s }) policy=None links=[] next=None"#
        ]],
    );
}

#[test]
fn link_headers_with_several_links_params_and_quoted_commas() {
    check(
        &[(
            "link",
            r#"<https://api.test/m?page=1>; rel="prev", <https://api.test/m?page=3>; rel="next"; title="a, b""#,
        )],
        expect![[
            r#"retry_after=None quota=None policy=None links=[Link { target: "https://api.test/m?page=1", rels: ["prev"] }, Link { target: "https://api.test/m?page=3", rels: ["next"] }] next=Some("https://api.test/m?page=3")"#
        ]],
    );
    check(
        &[
            ("link", "</m?page=2>; rel=\"next last\""),
            ("link", "<x>;rel=first"),
        ],
        expect![[
            r#"retry_after=None quota=None policy=None links=[Link { target: "/m?page=2", rels: ["next", "last"] }, Link { target: "x", rels: ["first"] }] next=Some("/m?page=2")"#
        ]],
    );
    check(
        &[("link", "garbage")],
        expect![[r#"retry_after=None quota=None policy=None links=[] next=None"#]],
    );
}
