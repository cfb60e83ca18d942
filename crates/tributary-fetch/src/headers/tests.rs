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
    let wait = |hint: &WaitHint| match hint.delay {
        Some(delay) => format!("{delay:?}"),
        None => format!(
            "too long ({:e} s, {}: {})",
            hint.seconds, hint.header, hint.value
        ),
    };
    let quota = quota_hint(&map, now()).map(|hint| {
        format!(
            "{} until {}",
            hint.remaining,
            hint.reset.as_ref().map_or("?".to_owned(), wait)
        )
    });
    let policy =
        quota_policy(&map).map(|policy| format!("{}/{:?}", policy.requests, policy.window));
    let shown = |text: Option<String>| text.unwrap_or_else(|| "None".to_owned());
    let (quota, policy) = (shown(quota), shown(policy));
    let actual = format!(
        "retry_after={} quota={quota} policy={policy} links={:?} next={:?}",
        shown(retry_after(&map, now()).as_ref().map(wait)),
        links(&map),
        next_link(&map),
    );
    expected.assert_eq(&actual);
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    check(
        &[("retry-after", "7")],
        expect![[r#"retry_after=7s quota=None policy=None links=[] next=None"#]],
    );
    check(
        &[("retry-after", "Thu, 01 Jan 2026 00:00:30 GMT")],
        expect![[r#"retry_after=30s quota=None policy=None links=[] next=None"#]],
    );
    check(
        &[("retry-after", "Wed, 31 Dec 2025 23:00:00 GMT")],
        expect![[r#"retry_after=0ns quota=None policy=None links=[] next=None"#]],
    );
    check(
        &[("retry-after", "0.25")],
        expect!["retry_after=250ms quota=None policy=None links=[] next=None"],
    );
    check(
        &[("retry-after", "soon")],
        expect![[r#"retry_after=None quota=None policy=None links=[] next=None"#]],
    );
}

#[test]
fn waits_too_long_for_a_duration_are_hints_without_a_delay_not_panics() {
    check(
        &[("retry-after", "1e30")],
        expect![
            "retry_after=too long (1e30 s, Retry-After: 1e30) quota=None policy=None links=[] next=None"
        ],
    );
    check(
        &[("retry-after", "18446744073709551616")],
        expect![
            "retry_after=too long (1.8446744073709552e19 s, Retry-After: 18446744073709551616) quota=None policy=None links=[] next=None"
        ],
    );
    check(
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1e300"),
        ],
        expect![
            "retry_after=None quota=0 until too long (1e300 s, X-RateLimit-Reset: 1e300) policy=None links=[] next=None"
        ],
    );
    check(
        &[("ratelimit-remaining", "0"), ("ratelimit-reset", "3e19")],
        expect![
            "retry_after=None quota=0 until too long (2.9999999998232773e19 s, RateLimit-Reset: 3e19) policy=None links=[] next=None"
        ],
    );
    check(
        &[("ratelimit", "remaining=0, reset=1e25")],
        expect![
            "retry_after=None quota=0 until too long (9.999999999999999e24 s, RateLimit: remaining=0, reset=1e25) policy=None links=[] next=None"
        ],
    );
    check(
        &[("ratelimit-policy", "0;w=60")],
        expect!["retry_after=None quota=None policy=None links=[] next=None"],
    );
    check(
        &[("ratelimit-policy", "10;w=0")],
        expect!["retry_after=None quota=None policy=None links=[] next=None"],
    );
    check(
        &[("retry-after", "-5"), ("x-ratelimit-remaining", "NaN")],
        expect!["retry_after=None quota=None policy=None links=[] next=None"],
    );
}

#[test]
fn rate_limit_headers_in_every_dialect() {
    check(
        &[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "12")],
        expect![[r#"retry_after=None quota=3 until 12s policy=None links=[] next=None"#]],
    );
    check(
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1767225660"),
        ],
        expect![[r#"retry_after=None quota=0 until 60s policy=None links=[] next=None"#]],
    );
    check(
        &[
            ("ratelimit", "limit=100, remaining=50, reset=30"),
            ("ratelimit-policy", "100;w=60"),
        ],
        expect![[r#"retry_after=None quota=50 until 30s policy=100/60s links=[] next=None"#]],
    );
    check(
        &[
            ("ratelimit", "\"default\";r=5;t=2"),
            ("ratelimit-policy", "\"default\";q=10;w=1"),
        ],
        expect![[r#"retry_after=None quota=5 until 2s policy=10/1s links=[] next=None"#]],
    );
    check(
        &[("ratelimit-remaining", "9"), ("ratelimit-reset", "4")],
        expect![[r#"retry_after=None quota=9 until 4s policy=None links=[] next=None"#]],
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
