//! Function tests: the reference's documented examples (exact expected values), then edge
//! cases (null arguments, wrong types) pinned in snapshots. Every case goes through the parser
//! and the evaluator, the same path a calculated field takes.

use chrono::{DateTime, Utc};
use expect_test::{Expect, expect};
use serde_json::json;

use crate::expr::{EvalState, Value, eval, parse};

/// The record that field references in the cases read.
fn record() -> serde_json::Value {
    json!({
        "fieldA": "abc",
        "stateCode": "pa",
        "otherState": "ny",
        "evars": {"evar": {"field1": "x"}},
        "book_details": {"author": "Jane Austen", "title": "Pride and Prejudice", "year": 1813},
        "book_details2": {"year": 2000, "pages": 432},
        "addresses": [{"type": "home", "city": "Paris"}, {"type": "work", "city": "Lyon"}],
        "n": 7,
        "f": 2.5,
        "nothing": null,
        "tags": ["a", "b"]
    })
}

fn fixed_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2021-10-26T10:10:24Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Evaluates `src` against [`record`] and renders the outcome: the value as JSON (date-times
/// tagged), or the error.
fn run(src: &str) -> String {
    let expr = match parse(src) {
        Ok(expr) => expr,
        Err(err) => return format!("parse error: {err}"),
    };
    let row = Value::from_json(&record());
    let mut state = EvalState::new(fixed_now());
    match eval(&expr, &row, &mut state) {
        Ok(Value::DateTime(dt)) => format!("date-time {}", crate::expr::datetime_to_text(&dt)),
        Ok(value) => value.to_json().to_string(),
        Err(err) => format!("error: {}", err.message),
    }
}

/// Exact expectations: every mismatch is listed, not only the first.
fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (src, expected) in cases {
        let got = run(src);
        if got != *expected {
            failures.push(format!("{src}\n   expected {expected}\n   got      {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Snapshot of many cases, one `expr => outcome` line each.
fn check_snapshot(cases: &[&str], expect: Expect) {
    let rendered: Vec<String> = cases
        .iter()
        .map(|src| format!("{src} => {}", run(src)))
        .collect();
    expect.assert_eq(&(rendered.join("\n") + "\n"));
}

#[test]
fn string_functions_documented_examples() {
    check(&[
        (r#"concat("Hi, ", "there", "!")"#, r#""Hi, there!""#),
        (r#"explode("Hi, there!", " ")"#, r#"["Hi,","there!"]"#),
        (r#"explode("Hi, there!")"#, r#"["Hi"," there!"]"#),
        (r#"instr("adobe.com", "com")"#, "6"),
        (
            r#"replacestr("This is a string re test", "re", "replace")"#,
            r#""This is a string replace test""#,
        ),
        (
            r#"substr("This is a substring test", 7, 8)"#,
            r#"" a subst""#,
        ),
        (r#"lower("HeLLo")"#, r#""hello""#),
        (r#"lcase("HeLLo")"#, r#""hello""#),
        (r#"upper("HeLLo")"#, r#""HELLO""#),
        (r#"ucase("HeLLo")"#, r#""HELLO""#),
        (r#"split("Hello world", " ")"#, r#"["Hello","world"]"#),
        (
            r#"join(" ", to_array(true, "Hello", "world"))"#,
            r#""Hello world""#,
        ),
        (r#"lpad("bat", 8, "yz")"#, r#""yzyzybat""#),
        (r#"rpad("bat", 8, "yz")"#, r#""batyzyzy""#),
        (r#"left("abcde", 2)"#, r#""ab""#),
        (r#"right("abcde", 2)"#, r#""de""#),
        (r#"ltrim("    hello")"#, r#""hello""#),
        (r#"rtrim("hello   ")"#, r#""hello""#),
        (r#"trim("  hello   ")"#, r#""hello""#),
        (r#"fieldA.equals("abc")"#, "true"),
        (r#"fieldA.equalsIgnoreCase("aBc")"#, "true"),
        (r#"fieldA.equals("aBc")"#, "false"),
    ]);
}

#[test]
fn string_functions_edge_cases() {
    check_snapshot(
        &[
            "concat(nothing, \"a\", 1, 2.5, true)",
            "concat(nothing, nothing)",
            "concat(tags)",
            "lower(nothing)",
            "lower(123)",
            "upper(\"straße\")",
            "substr(\"abc\", 5, 2)",
            "substr(\"abc\", -1, 2)",
            "substr(\"héllo\", 1)",
            "substr(\"abc\", \"x\", 1)",
            "instr(\"adobe.com\", \"xyz\")",
            "instr(\"a.b.c\", \".\", 0, 2)",
            "instr(\"a.b.c\", \".\", 2)",
            "instr(nothing, \"a\")",
            "split(\"a,b,,\", \",\")",
            "split(\"a\", \"\")",
            "explode(\"a.b\", \"\\\\.\")",
            "explode(\"a(b\", \"(\")",
            "join(\",\", \"a\", nothing, 3)",
            "join(\",\", [\"a\", [1]])",
            "lpad(\"batman\", 3, \"x\")",
            "lpad(\"b\", 3, \"\")",
            "lpad(\"b\", 9999999999, \"x\")",
            "set_date_part(\"week\", 9223372036854775807, now())",
            "format(now(), \"yyyyyyyyyyyyyyyyyyyy\")",
            "left(\"abc\", -1)",
            "right(\"abc\", 10)",
            "nothing.equals(\"a\")",
            "replacestr(\"aaa\", \"\", \"b\")",
            "replacestr(nothing, \"a\", \"b\")",
        ],
        expect![[r#"
            concat(nothing, "a", 1, 2.5, true) => "a12.5true"
            concat(nothing, nothing) => null
            concat(tags) => error: concat: argument 1 (value) must be a string, got array
            lower(nothing) => null
            lower(123) => "123"
            upper("straße") => "STRASSE"
            substr("abc", 5, 2) => ""
            substr("abc", -1, 2) => error: substr: argument 2 (start index) must not be negative, got -1
            substr("héllo", 1) => "éllo"
            substr("abc", "x", 1) => error: substr: argument 2 (start index) must be an integer, got the string "x"
            instr("adobe.com", "xyz") => -1
            instr("a.b.c", ".", 0, 2) => 3
            instr("a.b.c", ".", 2) => 3
            instr(nothing, "a") => null
            split("a,b,,", ",") => ["a","b"]
            split("a", "") => error: split: argument 2 (separator) must not be empty
            explode("a.b", "\\.") => ["a","b"]
            explode("a(b", "(") => error: explode: invalid regex "(": regex parse error:
                (
                ^
            error: unclosed group
            join(",", "a", nothing, 3) => "a,3"
            join(",", ["a", [1]]) => error: join: elements must be scalars, got array
            lpad("batman", 3, "x") => "batman"
            lpad("b", 3, "") => "  b"
            lpad("b", 9999999999, "x") => error: lpad: argument 2 (count) must be at most 1048576, got 9999999999
            set_date_part("week", 9223372036854775807, now()) => error: set_date_part: cannot set week to 9223372036854775807 in 2021-10-26T10:10:24Z
            format(now(), "yyyyyyyyyyyyyyyyyyyy") => error: format: unsupported date format letters `yyyyyyyyyyyyyyyyyyyy` in "yyyyyyyyyyyyyyyyyyyy"
            left("abc", -1) => ""
            right("abc", 10) => "abc"
            nothing.equals("a") => false
            replacestr("aaa", "", "b") => "aaa"
            replacestr(nothing, "a", "b") => null
        "#]],
    );
}

#[test]
fn regex_functions() {
    check(&[
        (
            r#"extract_regex("E259,E259B_009,1_1", "([^,]+),[^,]*,([^,]+)")"#,
            r#"["E259,E259B_009,1_1","E259","1_1"]"#,
        ),
        (
            r#"matches_regex("E259,E259B_009,1_1", "([^,]+),[^,]*,([^,]+)")"#,
            "true",
        ),
        (r#"matches_regex("xE259,E259B_009,1_1,", "E259")"#, "false"),
        (r#"extract_regex("abc", "(x)?b")"#, r#"["b",null]"#),
        (r#"extract_regex("abc", "z")"#, "null"),
        (r#"extract_regex(nothing, "z")"#, "null"),
        (r#""abc" =~ "a.c""#, "true"),
        (r#""abc" !~ "a.c""#, "false"),
    ]);
}

#[test]
fn hashing_functions_match_coreutils_digests() {
    // Expected digests computed with sha1sum/sha256sum/sha512sum/md5sum and zlib's crc32.
    check(&[
        (
            r#"sha1("my text")"#,
            r#""c3599c11e47719df18a2448690840c5dfcce3c80""#,
        ),
        (
            r#"sha1("my text", "UTF-8")"#,
            r#""c3599c11e47719df18a2448690840c5dfcce3c80""#,
        ),
        (
            r#"sha256("my text", "UTF-8")"#,
            r#""7330d2b39ca35eaf4cb95fc846c21ee6a39af698154a83a586ee270a0d372104""#,
        ),
        (
            r#"sha512("my text", "UTF-8")"#,
            r#""a3d7e45a0d9be5fd4e4b9a3b8c9c2163c21ef708bf11b4232bb21d2a8704ada2cdcd7b367dd0788a89a5c908cfe377aceb1072a7b386b7d4fd2ff68a8fd24d16""#,
        ),
        (
            r#"md5("my text", "UTF-8")"#,
            r#""d3b96ce8c9fb4e9bd0198d03ba6852c7""#,
        ),
        (r#"crc32("my text", "UTF-8")"#, r#""802ef98d""#),
        // Java's UTF-16 writes a big-endian byte-order mark first.
        (
            r#"sha256("my text", "UTF-16")"#,
            r#""136874f2acb914216e5f8ff754e285663c3fe7ad2054387cc6508749ed11e14d""#,
        ),
        (
            r#"sha1("my text", "UTF-16LE")"#,
            r#""b0ca3510a2cfba7d6f007cc4da7a7af7cd2e22b6""#,
        ),
        (
            r#"md5("héllo", "ISO-8859-1")"#,
            r#""1a722f7e6c801d9e470a10cb91ba406d""#,
        ),
        (
            r#"md5("héllo", "US-ASCII")"#,
            r#""4c654b1e9f349696be9b84f27a9965aa""#,
        ),
        (r#"md5("héllo")"#, r#""be50e8478cf24ff3595bc7307fb91b50""#),
        (r#"md5(nothing)"#, "null"),
        (
            r#"md5("x", "EBCDIC")"#,
            r#"error: md5: unsupported charset "EBCDIC": expected UTF-8, UTF-16, UTF-16BE, UTF-16LE, ISO-8859-1 or US-ASCII"#,
        ),
    ]);
}

#[test]
fn url_functions() {
    check(&[
        (
            r#"get_url_protocol("https://platform.adobe.com/home")"#,
            r#""https""#,
        ),
        (
            r#"get_url_host("https://platform.adobe.com/home")"#,
            r#""platform.adobe.com""#,
        ),
        (
            r#"get_url_port("sftp://example.com//home/joe/employee.csv")"#,
            "22",
        ),
        (r#"get_url_port("http://example.com:8080/x")"#, "8080"),
        (r#"get_url_port("foo://example.com/x")"#, "null"),
        (
            r#"get_url_path("https://platform.adobe.com/home")"#,
            r#""/home""#,
        ),
        (r#"get_url_path("https://platform.adobe.com")"#, r#""""#),
        (
            r#"get_url_query_str("foo://example.com:8042/over/there?name=ferret#nose", "retain")"#,
            r#"{"name":"ferret#nose"}"#,
        ),
        (
            r#"get_url_query_str("foo://example.com:8042/over/there?name=ferret#nose", "remove")"#,
            r#"{"name":"ferret"}"#,
        ),
        (
            r#"get_url_query_str("foo://example.com:8042/over/there?name=ferret#nose", "append")"#,
            r#"{"name":"ferret","_anchor_":"nose"}"#,
        ),
        (
            r#"get_url_query_str("https://a.com/?x=1&y=2")"#,
            r#"{"x":"1","y":"2"}"#,
        ),
        (r#"get_url_query_str("https://a.com/", "retain")"#, "null"),
        (
            r#"get_url_query_str("https://a.com/?x=1", "keep")"#,
            r#"error: get_url_query_str: argument 2 (anchor) must be retain, remove or append, got "keep""#,
        ),
        (
            r#"get_url_encoded("https://example.com/partneralliance_asia-pacific_2022")"#,
            r#""https%3A%2F%2Fexample.com%2Fpartneralliance_asia-pacific_2022""#,
        ),
        (
            r#"get_url_decoded("https%3A%2F%2Fexample.com%2Fpartneralliance_asia-pacific_2022")"#,
            r#""https://example.com/partneralliance_asia-pacific_2022""#,
        ),
        (r#"get_url_encoded("a b/é")"#, r#""a+b%2F%C3%A9""#),
        (r#"get_url_decoded("a+b%2F%C3%A9")"#, r#""a b/é""#),
        (
            r#"get_url_decoded("100%")"#,
            r#"error: get_url_decoded: invalid percent escape at character 4 of "100%""#,
        ),
        (
            r#"get_url_host("not a url")"#,
            r#"error: get_url_host: invalid url "not a url": expected scheme://host/..."#,
        ),
        (r#"get_url_host(nothing)"#, "null"),
    ]);
}

#[test]
fn date_functions_documented_examples() {
    check(&[
        ("now()", "date-time 2021-10-26T10:10:24Z"),
        ("timestamp()", "1635243024000"),
        (
            r#"dformat(1571829875000, "yyyy-MM-dd'T'HH:mm:ss.SSSX")"#,
            r#""2019-10-23T11:24:35.000Z""#,
        ),
        (
            r#"format(date("2019-10-23T11:24:00+00:00"), "yyyy-MM-dd HH:mm:ss")"#,
            r#""2019-10-23 11:24:00""#,
        ),
        (
            r#"date("2019-10-23 11:24", "yyyy-MM-dd HH:mm", now())"#,
            "date-time 2019-10-23T11:24:00Z",
        ),
        (
            r#"date("2019-10-23 11:24", "yyyy-MM-dd HH:mm")"#,
            "date-time 2019-10-23T11:24:00Z",
        ),
        (
            r#"date("2019-10-23 11:24")"#,
            "date-time 2019-10-23T11:24:00Z",
        ),
        (r#"date_part("MM", date("2020-10-01"))"#, "10"),
        (
            r#"set_date_part("m", 4, date("2016-11-09T11:44:44.797"))"#,
            "date-time 2016-04-09T11:44:44.797Z",
        ),
        (
            r#"make_date_time(2019, 10, 17, 11, 55, 12, 999, "America/Los_Angeles")"#,
            "date-time 2019-10-17T11:55:12.000000999-07:00",
        ),
        (
            r#"zone_date_to_utc(make_date_time(2019, 10, 17, 11, 55, 12, 999, "America/Los_Angeles"))"#,
            "date-time 2019-10-17T18:55:12.000000999Z",
        ),
        (
            r#"zone_date_to_zone(date("2019-10-17T11:55:12Z"), "Europe/Paris")"#,
            "date-time 2019-10-17T13:55:12+02:00",
        ),
    ]);
}

#[test]
fn date_functions_edge_cases() {
    check_snapshot(
        &[
            "date(nothing)",
            "date(nothing, \"yyyy\", now())",
            "date(\"garbage\")",
            "date(\"garbage\", \"yyyy-MM-dd\")",
            "date(\"garbage\", \"yyyy-MM-dd\", now())",
            "date(\"2020-01-01\", \"yyyy-qq\")",
            "date(1571829875000)",
            "date(tags)",
            "format(\"2019-10-23\", \"EEEE d MMMM yyyy, h a\")",
            "format(date(\"10/07/2021 02:05:09 PM\"), \"HH:mm:ss dd/MM/yy\")",
            "format(nothing, \"yyyy\")",
            "format(f, \"yyyy\")",
            "dformat(\"abc\", \"yyyy\")",
            "date_part(\"quarter\", date(\"2020-10-01\"))",
            "date_part(\"weekday\", date(\"2020-10-01\"))",
            "date_part(\"dayofyear\", \"2020-12-31\")",
            "date_part(\"century\", now())",
            "set_date_part(\"day\", 31, date(\"2021-02-01\"))",
            "set_date_part(\"hour\", 5, nothing)",
            "make_date_time(2021, 2, 30, 0, 0, 0, 0, \"UTC\")",
            "make_date_time(2021, 2, 3, 4, 5, 6, 7)",
            "make_date_time(2021, 2, 3, 4, 5, 6, 7, \"Mars/Olympus\")",
            "zone_date_to_zone(now(), \"+05:30\")",
            "zone_date_to_zone(now(), \"Nowhere\")",
        ],
        expect![[r#"
            date(nothing) => null
            date(nothing, "yyyy", now()) => date-time 2021-10-26T10:10:24Z
            date("garbage") => error: date: "garbage" matches no date pattern
            date("garbage", "yyyy-MM-dd") => error: date: "garbage" does not match the date format "yyyy-MM-dd"
            date("garbage", "yyyy-MM-dd", now()) => date-time 2021-10-26T10:10:24Z
            date("2020-01-01", "yyyy-qq") => error: date: unsupported date format letters `qq` in "yyyy-qq"
            date(1571829875000) => date-time 2019-10-23T11:24:35Z
            date(tags) => error: date: argument 1 (date) must be a string, got array
            format("2019-10-23", "EEEE d MMMM yyyy, h a") => "Wednesday 23 October 2019, 12 AM"
            format(date("10/07/2021 02:05:09 PM"), "HH:mm:ss dd/MM/yy") => "14:05:09 07/10/21"
            format(nothing, "yyyy") => null
            format(f, "yyyy") => error: format: argument 1 (date) must be a date-time, got number
            dformat("abc", "yyyy") => error: dformat: argument 1 (epoch milliseconds) must be an integer, got the string "abc"
            date_part("quarter", date("2020-10-01")) => 4
            date_part("weekday", date("2020-10-01")) => 5
            date_part("dayofyear", "2020-12-31") => 366
            date_part("century", now()) => error: date_part: unknown date component "century": expected year, quarter, month, dayofyear, day, week, weekday, hour, minute, second or millisecond
            set_date_part("day", 31, date("2021-02-01")) => error: set_date_part: cannot set day to 31 in 2021-02-01T00:00:00Z
            set_date_part("hour", 5, nothing) => null
            make_date_time(2021, 2, 30, 0, 0, 0, 0, "UTC") => error: make_date_time: no such date-time: [2021, 2, 30, 0, 0, 0, 0]
            make_date_time(2021, 2, 3, 4, 5, 6, 7) => date-time 2021-02-03T04:05:06.000000007Z
            make_date_time(2021, 2, 3, 4, 5, 6, 7, "Mars/Olympus") => error: make_date_time: unknown time zone "Mars/Olympus" (or a local time that does not exist in it)
            zone_date_to_zone(now(), "+05:30") => date-time 2021-10-26T15:40:24+05:30
            zone_date_to_zone(now(), "Nowhere") => error: zone_date_to_zone: unknown time zone "Nowhere": expected an IANA id such as Europe/Paris, UTC or an offset
        "#]],
    );
}

#[test]
fn implicit_datetime_patterns_in_order() {
    // One input per pattern of the reference's list, then the ISO-8601 extension.
    check(&[
        (
            r#"date("2021-03-04 05:06:07+0200")"#,
            "date-time 2021-03-04T05:06:07+02:00",
        ),
        (
            r#"date("2021-03-04 05:06:07.123+0200")"#,
            "date-time 2021-03-04T05:06:07.123+02:00",
        ),
        (
            r#"date("2021-03-04 05:06:07.123")"#,
            "date-time 2021-03-04T05:06:07.123Z",
        ),
        (
            r#"date("2021-03-04T05:06:07.123Z")"#,
            "date-time 2021-03-04T05:06:07.123Z",
        ),
        (
            r#"date("2021-03-04T05:06:07.123-05:00")"#,
            "date-time 2021-03-04T05:06:07.123-05:00",
        ),
        (
            r#"date("2021-03-04T05:06:07Z")"#,
            "date-time 2021-03-04T05:06:07Z",
        ),
        (r#"date("2021-03-04")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("2021/03/04")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("2021.03.04")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("2021-Mar-04")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("20210304")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("03-04-2021")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("03042021")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("3/04/2021")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("04.3.2021")"#, "date-time 2021-03-04T00:00:00Z"),
        (
            r#"date("3/04/2021 01:02:03 pm")"#,
            "date-time 2021-03-04T13:02:03Z",
        ),
        (
            r#"date("04.3.2021 12:02:03 AM")"#,
            "date-time 2021-03-04T00:02:03Z",
        ),
        (r#"date("04.Mar.2021")"#, "date-time 2021-03-04T00:00:00Z"),
        (r#"date("04-Mar-2021")"#, "date-time 2021-03-04T00:00:00Z"),
        (
            r#"date("2021-03-04T05:06:07+02:00")"#,
            "date-time 2021-03-04T05:06:07+02:00",
        ),
        (
            r#"date("2021-03-04T05:06:07.123456Z")"#,
            "date-time 2021-03-04T05:06:07.123456Z",
        ),
        (
            r#"date("2021-02-30")"#,
            r#"error: date: "2021-02-30" matches no date pattern"#,
        ),
    ]);
}

#[test]
fn object_and_map_functions() {
    check(&[
        ("is_empty([1, null, 2, 3])", "false"),
        ("is_empty([])", "true"),
        ("is_empty(nothing)", "true"),
        (r#"is_empty("")"#, "true"),
        (
            r#"arrays_to_objects('sku', explode("id1|id2", '\\|'), 'price', [22.5,14.35])"#,
            r#"[{"sku":"id1","price":22.5},{"sku":"id2","price":14.35}]"#,
        ),
        (
            r#"to_object("firstName", "John", "lastName", "Doe")"#,
            r#"{"firstName":"John","lastName":"Doe"}"#,
        ),
        (
            r#"to_object("firstName", "John", "lastName")"#,
            "error: to_object: expected key/value pairs, got 3 arguments",
        ),
        (
            r#"str_to_object("firstName - John | lastName - | phone - 123 456 7890", "-", "\\|")"#,
            r#"{"firstName":"John","lastName":"","phone":"123 456 7890"}"#,
        ),
        (r#"str_to_object("a:1,b:2")"#, r#"{"a":"1","b":"2"}"#),
        (r#"contains_key("evars.evar.field1")"#, "true"),
        (r#"contains_key("evars.evar.field2")"#, "false"),
        (r#"is_set("evars.evar")"#, "true"),
        ("nullify()", "null"),
        (
            r#"get_keys({"book1": "Pride and Prejudice", "book2": "1984"})"#,
            r#"["book1","book2"]"#,
        ),
        (
            "get_keys(fieldA)",
            "error: get_keys: argument 1 (object) must be an object, got string",
        ),
        (
            r#"get_values("firstName - John , lastName - Cena , phone - 555 420 8692", "firstName", "-", ",")"#,
            r#""John""#,
        ),
        (r#"get_values("a:1,b:2", "c", ":", ",")"#, "null"),
        (r#"book_details.get("author")"#, r#""Jane Austen""#),
        (r#"get(book_details, "missing")"#, "null"),
        (
            r#"map_get_values(book_details, "author")"#,
            r#""Jane Austen""#,
        ),
        (
            r#"map_get_values(book_details, ["author", "year", "nope"])"#,
            r#"{"author":"Jane Austen","year":1813}"#,
        ),
        (r#"map_has_keys(book_details, "author")"#, "true"),
        (r#"map_has_keys(book_details, ["nope", "year"])"#, "true"),
        (r#"map_has_keys(book_details, "nope")"#, "false"),
        (
            "add_to_map(book_details, book_details2)",
            r#"{"author":"Jane Austen","title":"Pride and Prejudice","year":2000,"pages":432}"#,
        ),
        (
            "add_to_map(book_details, fieldA)",
            "error: add_to_map: argument 2 must be a map, got string",
        ),
        (
            r#"object_to_map("firstName", "John", "lastName", "Doe")"#,
            r#"{"firstName":"John","lastName":"Doe"}"#,
        ),
        (
            "object_to_map(book_details2)",
            r#"{"year":2000,"pages":432}"#,
        ),
        (
            r#"object_to_map(addresses, "type")"#,
            r#"{"home":{"type":"home","city":"Paris"},"work":{"type":"work","city":"Lyon"}}"#,
        ),
        (
            r#"array_to_map(addresses, "city")"#,
            r#"{"Paris":{"type":"home","city":"Paris"},"Lyon":{"type":"work","city":"Lyon"}}"#,
        ),
        (r#"to_map("k", 1, "j", nothing)"#, r#"{"k":1,"j":null}"#),
    ]);
}

#[test]
fn array_logical_aggregation_functions() {
    check(&[
        (
            r#"coalesce(null, null, null, "first", null, "second")"#,
            r#""first""#,
        ),
        ("coalesce(nothing, nothing)", "null"),
        ("coalesce([null, 2])", "2"),
        (r#"first("1", "2", "3")"#, r#""1""#),
        (r#"last("1", "2", "3")"#, r#""3""#),
        ("first(tags)", r#""a""#),
        (
            r#"add_to_array(["a", "b"], "c", "d")"#,
            r#"["a","b","c","d"]"#,
        ),
        (r#"add_to_array(nothing, "c")"#, r#"["c"]"#),
        (
            r#"add_to_array("a", "c")"#,
            "error: add_to_array: argument 1 (array) must be an array, got string",
        ),
        (
            r#"join_arrays(["a", "b"], ["c"], ["d", "e"])"#,
            r#"["a","b","c","d","e"]"#,
        ),
        ("to_array(false, 1, null, 2, 3)", "[1,2,3]"),
        ("to_array(true, 1, null)", "[1,null]"),
        (
            r#"to_array("maybe", 1)"#,
            r#"error: to_array: argument 1 (include nulls) must be a boolean, got the string "maybe""#,
        ),
        ("size_of([1, 2, 3, 4])", "4"),
        ("size_of(book_details)", "3"),
        ("size_of(nothing)", "0"),
        (
            "size_of(n)",
            "error: size_of: argument 1 must be an array, a map or a string, got integer",
        ),
        (
            r#"decode(stateCode, "ca", "California", "pa", "Pennsylvania", "N/A")"#,
            r#""Pennsylvania""#,
        ),
        (
            r#"decode(otherState, "ca", "California", "pa", "Pennsylvania", "N/A")"#,
            r#""N/A""#,
        ),
        (
            r#"decode(otherState, "ca", "California", "pa", "Pennsylvania")"#,
            "null",
        ),
        (
            r#"iif("s".equalsIgnoreCase("S"), "True", "False")"#,
            r#""True""#,
        ),
        (r#"iif(nothing, "yes", "no")"#, r#""no""#),
        (r#"iif(n > 5, 1, 1 / 0)"#, "1"),
        (
            r#"iif("maybe", 1, 2)"#,
            r#"error: expected a boolean, got the string "maybe""#,
        ),
        ("min(3, 1, 4)", "1"),
        ("max(3, 1, 4)", "4"),
        ("max(3, 4.5, nothing)", "4.5"),
        (r#"min("b", "a")"#, r#""a""#),
        (
            r#"max(date("2020-01-01"), date("2021-01-01"))"#,
            "date-time 2021-01-01T00:00:00Z",
        ),
        (
            r#"min(1, "x")"#,
            r#"error: min: cannot compare the string "x" with a number"#,
        ),
        ("min(nothing)", "null"),
    ]);
}

#[test]
fn conversion_json_and_uuid_functions() {
    check(&[
        (r#"to_bigint("1000000.34")"#, "1000000"),
        (r#"to_decimal("20.5")"#, "20.5"),
        (r#"to_float("12.3456")"#, "12.3456"),
        (r#"to_integer("12")"#, "12"),
        ("to_integer(2.9)", "2"),
        (
            r#"to_integer("3000000000")"#,
            "error: to_integer: 3000000000 does not fit in a 32-bit integer; use to_bigint",
        ),
        (r#"to_bigint("3000000000")"#, "3000000000"),
        (
            r#"to_bigint("abc")"#,
            r#"error: to_bigint: cannot convert the string "abc" to an integer"#,
        ),
        (
            r#"to_float("NaN")"#,
            r#"error: to_float: cannot convert the string "NaN" to a number"#,
        ),
        ("to_float(nothing)", "null"),
        (
            "to_decimal(tags)",
            "error: to_decimal: cannot convert array to a number",
        ),
        (
            r#"json_to_object("{\"info\":{\"firstName\": \"John\", \"lastName\": \"Doe\"}}")"#,
            r#"{"info":{"firstName":"John","lastName":"Doe"}}"#,
        ),
        (r#"json_to_object("{\"a\": [1, 2.5]}").a[1]"#, "2.5"),
        (
            r#"json_to_object("{oops")"#,
            "error: json_to_object: invalid JSON: key must be a string at line 1 column 2",
        ),
        ("size_of(uuid())", "36"),
        ("uuid() == guid()", "false"),
        (
            r#"matches_regex(uuid(), "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")"#,
            "true",
        ),
    ]);
}

#[test]
fn every_function_of_the_reference_groups_is_known() {
    // The reference's function table (§8.3) for the groups this crate implements.
    let names = "concat explode instr replacestr substr lower lcase upper ucase split join lpad rpad left right \
        ltrim rtrim trim equals equalsIgnoreCase extract_regex matches_regex sha1 sha256 sha512 md5 crc32 \
        get_url_protocol get_url_host get_url_port get_url_path get_url_query_str get_url_encoded \
        get_url_decoded now timestamp format dformat date date_part set_date_part make_date_time \
        make_timestamp zone_date_to_utc zone_date_to_zone is_empty arrays_to_object to_object str_to_object \
        get contains_key is_set nullify get_keys get_values map_get_values map_has_keys add_to_map \
        object_to_map array_to_map to_map coalesce first last add_to_array join_arrays to_array size_of \
        decode iif min max to_bigint to_decimal to_float to_integer json_to_object uuid guid";
    let unknown: Vec<&str> = names
        .split_whitespace()
        .filter(|n| super::Function::lookup(n).is_none())
        .collect();
    assert!(unknown.is_empty(), "unknown functions: {unknown:?}");
    for function in super::Function::all() {
        assert_eq!(
            super::Function::lookup(function.name()),
            Some(function),
            "canonical name of {function:?}"
        );
    }
    for excluded in [
        "upsert_array_append",
        "filterArray",
        "fpid_to_ecid",
        "ua_os_name",
        "aa_get_event_id",
    ] {
        assert_eq!(
            super::Function::lookup(excluded),
            None,
            "{excluded} is out of scope"
        );
    }
}
