//! Date patterns in both dialects against outputs computed by hand for fixed instants.
//!
//! The main instant is 2024-03-05T07:08:09.123456789Z: a Tuesday, day 65 of the leap year 2024
//! (31 + 29 + 5), in the morning.

use chrono::{DateTime, Utc};

use super::*;

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Formats `instant` with each pattern and compares with the hand-computed outputs.
fn check(instant_text: &str, cases: &[(&str, &str)]) {
    let time = instant(instant_text);
    for (pattern, expected) in cases {
        let format = DateFormat::parse(pattern).unwrap_or_else(|err| panic!("{pattern}: {err}"));
        assert_eq!(format.format(time), *expected, "pattern {pattern}");
    }
}

#[test]
fn java_patterns() {
    check(
        "2024-03-05T07:08:09.123456789Z",
        &[
            ("yyyy-MM-dd'T'HH:mm:ssZ", "2024-03-05T07:08:09+0000"),
            ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2024-03-05T07:08:09.123Z"),
            (
                "yyyy-MM-dd'T'HH:mm:ss.SSSxxx",
                "2024-03-05T07:08:09.123+00:00",
            ),
            (
                "yyyyMMdd'T'HHmmss.SSSSSSSSSxx",
                "20240305T070809.123456789+0000",
            ),
            ("yyyy-MM-dd HH:mm:ss z", "2024-03-05 07:08:09 UTC"),
            (
                "EEE, d MMM yyyy HH:mm:ss 'GMT'",
                "Tue, 5 Mar 2024 07:08:09 GMT",
            ),
            ("EEEE d MMMM yy", "Tuesday 5 March 24"),
            ("dd/MM/yy h:mm a", "05/03/24 7:08 AM"),
            ("yyyy-D", "2024-65"),
            ("'It''s' yyyy", "It's 2024"),
            ("yyyy-MM-dd", "2024-03-05"),
        ],
    );
}

#[test]
fn the_reference_unquoted_t_pattern() {
    check(
        "2024-03-05T07:08:09.123456789Z",
        &[("yyyy-MM-ddTHH:mm:ssZ", "2024-03-05T07:08:09+0000")],
    );
}

#[test]
fn dotnet_patterns() {
    check(
        "2024-03-05T07:08:09.123456789Z",
        &[
            (
                "yyyy-MM-ddTHH:mm:ss:fffffffK",
                "2024-03-05T07:08:09:1234567Z",
            ),
            ("yyyy-MM-dd'T'HH:mm:ss.fffK", "2024-03-05T07:08:09.123Z"),
            (
                "yyyy-MM-dd HH:mm:ss.fff zzz",
                "2024-03-05 07:08:09.123 +00:00",
            ),
            (
                "yyyy-MM-ddTHH:mm:ss.FFFFFFFK",
                "2024-03-05T07:08:09.1234567Z",
            ),
            ("ddd dd MMM yyyy hh:mm tt K", "Tue 05 Mar 2024 07:08 AM Z"),
        ],
    );
}

#[test]
fn dotnet_trimmed_fraction_drops_trailing_zeros_and_an_empty_fraction_with_its_point() {
    check(
        "2024-03-05T19:08:09.120Z",
        &[("HH:mm:ss.FFFFFFFK", "19:08:09.12Z"), ("hh tt", "07 PM")],
    );
    check(
        "2024-03-05T00:08:09Z",
        &[
            ("yyyy-MM-ddTHH:mm:ss.FFFFFFFK", "2024-03-05T00:08:09Z"),
            ("h a", "12 AM"),
        ],
    );
}

#[test]
fn bad_patterns_are_errors_naming_the_problem() {
    let errors: Vec<String> = ["", "yyyy-MM-dd'T", "yyyy-QQ-dd", "HHH"]
        .iter()
        .map(|pattern| DateFormat::parse(pattern).unwrap_err())
        .collect();
    expect_test::expect![[r#"
        [
            "expected a date pattern such as \"yyyy-MM-dd'T'HH:mm:ssZ\", found an empty string",
            "unterminated quoted literal in date pattern \"yyyy-MM-dd'T\"",
            "unknown date pattern letter \"QQ\" in \"yyyy-QQ-dd\"; known: y M d H h m s S f F a tt E Z X x z K D T, quote literal text with '...'",
            "unknown date pattern letter \"HHH\" in \"HHH\"; known: y M d H h m s S f F a tt E Z X x z K D T, quote literal text with '...'",
        ]
    "#]]
    .assert_debug_eq(&errors);
}
