//! Tests of the dataset, the query and window parsing, and the server over real loopback HTTP
//! (a small hand-written HTTP/1.1 client, so truncated bodies and raw headers are visible).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::default_start_time;
use crate::dataset::{self, Dataset, Timeline};
use crate::query::{Params, parse_time_ns};
use crate::*;

// ---------------------------------------------------------------------------------------------
// Dataset

#[test]
fn fast_writer_agrees_with_value_builder() {
    // A sub-second step exercises the fraction digits too.
    let timeline = Timeline::try_new(default_start_time(), Duration::from_millis(250)).unwrap();
    for seed in [0, 7, u64::MAX] {
        let dataset = Dataset::new(seed, timeline);
        for index in (0..1_500).chain([u64::from(u32::MAX), 1 << 40]) {
            let mut bytes = Vec::new();
            dataset.write_record_json(index, &mut bytes);
            let parsed: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|error| panic!("record {index} is not JSON: {error}"));
            assert_eq!(parsed, dataset.record(index), "seed {seed} index {index}");
        }
    }
}

#[test]
fn free_functions_use_the_default_timeline() {
    let mut bytes = Vec::new();
    write_record_json(3, 10, &mut bytes);
    let parsed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed, record(3, 10));
    assert_eq!(parsed["last_changed"], "2024-01-01T00:00:10Z");
}

#[test]
fn records_are_unique_realistic_and_ordered_by_last_changed() {
    let start = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let step = Duration::from_millis(1_500);
    let dataset = Dataset::new(11, Timeline::try_new(start, step).unwrap());
    let n = 6_000u64;
    let mut ids = HashSet::new();
    let mut emails = HashSet::new();
    let mut statuses = HashSet::new();
    let mut total_bytes = 0;
    let mut bytes = Vec::new();
    for index in 0..n {
        bytes.clear();
        dataset.write_record_json(index, &mut bytes);
        total_bytes += bytes.len();

        let record: Value = serde_json::from_slice(&bytes).unwrap();
        let id = record["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        ids.insert(id);
        emails.insert(record["email_address"].as_str().unwrap().to_string());
        statuses.insert(record["status"].as_str().unwrap().to_string());
        // last_changed is start + index * step, as chrono formats it.
        let expected = start + step * u32::try_from(index).unwrap();
        assert_eq!(
            record["last_changed"].as_str().unwrap(),
            expected.to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        let opted: DateTime<Utc> = record["timestamp_opt"].as_str().unwrap().parse().unwrap();
        assert!(opted <= expected);
        assert!(record["stats"]["avg_open_rate"].is_f64());
        assert!(record["location"]["latitude"].as_f64().unwrap().abs() <= 90.0);
        assert!(record["vip"].is_boolean());
        assert!(record["member_rating"].is_u64());
        assert!(record["tags"].as_array().unwrap().len() <= 2);
    }
    assert_eq!(ids.len() as u64, n);
    assert_eq!(emails.len() as u64, n);
    assert_eq!(statuses.len(), 4);
    let average = total_bytes as f64 / n as f64;
    assert!(
        (520.0..=680.0).contains(&average),
        "average record size {average}"
    );
}

#[test]
fn longest_records_fit_the_record_buffer_with_room() {
    // The writer relies on RECORD_BUFFER; the longest records (every optional part, long
    // names, 20-digit indexes, 12-digit years) must stay far below it.
    let mut longest = 0;
    let mut bytes = Vec::new();
    for seed in [1, 2, 3] {
        let dataset = Dataset::new(seed, Timeline::default());
        for index in (0..10_000).chain(u64::MAX - 5_000..=u64::MAX) {
            bytes.clear();
            dataset.write_record_json(index, &mut bytes);
            longest = longest.max(bytes.len());
        }
    }
    assert!(
        longest * 5 / 4 < dataset::RECORD_BUFFER,
        "longest record {longest} bytes"
    );
}

#[test]
fn name_tables_need_no_json_escaping() {
    let tables: [&[&str]; 7] = [
        dataset::FIRST_NAMES,
        dataset::LAST_NAMES,
        dataset::DOMAINS,
        dataset::STREETS,
        dataset::LANGUAGES,
        dataset::TAGS,
        &["subscribed", "unsubscribed", "pending", "cleaned"],
    ];
    let locations = dataset::LOCATIONS
        .iter()
        .flat_map(|(c, tz, _, _)| [*c, *tz]);
    let cities = dataset::CITIES
        .iter()
        .flat_map(|(city, state, _)| [*city, *state]);
    for text in tables
        .iter()
        .flat_map(|table| table.iter().copied())
        .chain(locations)
        .chain(cities)
    {
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' '),
            "{text:?} needs escaping"
        );
    }
}

#[test]
fn window_maps_to_index_range() {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let timeline = Timeline::try_new(start, Duration::from_secs(10)).unwrap();
    let ns = |secs: i64| i128::from(start.timestamp() + secs) * 1_000_000_000;
    let check = |lower: Option<i128>, upper: Option<i128>, expect: std::ops::Range<u64>| {
        assert_eq!(
            timeline.index_range(lower, upper, 100),
            expect,
            "{lower:?}..{upper:?}"
        );
    };
    check(None, None, 0..100);
    check(Some(ns(0)), Some(ns(10)), 0..1);
    check(Some(ns(1)), Some(ns(20)), 1..2);
    check(Some(ns(10)), Some(ns(10)), 1..1);
    check(Some(ns(-50)), Some(ns(-1)), 0..0);
    check(Some(ns(995)), None, 100..100);
    check(Some(ns(500)), Some(ns(100)), 50..50);
    check(None, Some(ns(1) + 1), 0..1);
    check(Some(ns(990)), Some(ns(5_000)), 99..100);
}

#[test]
fn timeline_rejects_zero_step_and_year_overflow() {
    let error = Timeline::try_new(default_start_time(), Duration::ZERO).unwrap_err();
    assert!(error.to_string().contains("step"), "{error}");
    let config = MockConfig {
        records: u64::MAX,
        step: Duration::from_secs(3_600),
        ..MockConfig::default()
    };
    let error = config.validate().unwrap_err();
    assert!(error.to_string().contains("start_time"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Query strings and times

#[test]
fn params_decode_and_reencode() {
    let params = Params::parse("a=1&b=x%20y+z&page%5Bafter%5D=t%2B1&bad=%zz&a=2&empty");
    assert_eq!(params.get("a"), Some("1"));
    assert_eq!(params.get("b"), Some("x y z"));
    assert_eq!(params.get("page[after]"), Some("t+1"));
    assert_eq!(params.get("bad"), Some("%zz"));
    assert_eq!(params.get("empty"), Some(""));
    assert_eq!(
        params.encode_with("a", "9"),
        "a=9&b=x%20y%20z&page%5Bafter%5D=t%2B1&bad=%25zz&empty="
    );
    assert_eq!(
        Params::parse("x=1").encode_with("after", "5"),
        "x=1&after=5"
    );
    assert_eq!(
        Params::parse("api_key=s3cr3t&limit=5&access_token=t").redacted(),
        "api_key=%2A%2A%2A&limit=5&access_token=%2A%2A%2A"
    );
}

#[test]
fn times_parse_leniently() {
    let base = 1_704_067_200i128 * 1_000_000_000;
    let check = |text: &str, expect: Option<i128>| {
        assert_eq!(parse_time_ns("t", text).ok(), expect, "{text:?}");
    };
    check("2024-01-01T00:00:00Z", Some(base));
    check("2024-01-01T01:00:00+01:00", Some(base));
    check("2024-01-01T01:00:00 01:00", Some(base));
    check("2024-01-01T00:00:00.5Z", Some(base + 500_000_000));
    check("2024-01-01T00:00:00:5000000Z", Some(base + 500_000_000));
    check("2024-01-01T00:00:00", Some(base));
    check("2024-01-01", Some(base));
    check("1704067200", Some(base));
    check("1704067200.25", Some(base + 250_000_000));
    check("yesterday", None);
    check("2024-13-01T00:00:00Z", None);
    let error = parse_time_ns("since_last_changed", "soon").unwrap_err();
    assert!(
        error.0.contains("since_last_changed") && error.0.contains("\"soon\""),
        "{error:?}"
    );
}

#[test]
fn cli_forms_parse() {
    assert!(matches!(MockAuth::from_cli("none"), Ok(MockAuth::None)));
    let MockAuth::Basic { username, password } = MockAuth::from_cli("basic:u:p").unwrap() else {
        panic!("expected basic");
    };
    assert_eq!((username.as_str(), password.expose()), ("u", "p"));
    assert!(matches!(
        MockAuth::from_cli("apikey:X-Key:v"),
        Ok(MockAuth::ApiKey { .. })
    ));
    assert!(matches!(
        MockAuth::from_cli("bearer:tok"),
        Ok(MockAuth::OAuth2(_))
    ));
    assert!(matches!(
        MockAuth::from_cli("oauth2:id:sec:ref:60"),
        Ok(MockAuth::OAuth2(_))
    ));
    let error = MockAuth::from_cli("basic:onlyuser-secretvalue").unwrap_err();
    assert!(!error.to_string().contains("secretvalue"), "{error}");
    assert!(MockAuth::from_cli("oauth2:id:sec:ref:zero").is_err());
    assert!(MockAuth::from_cli("digest:x").is_err());
    let limit = RateLimit::from_cli("50/10").unwrap();
    assert_eq!((limit.per_second.get(), limit.burst.get()), (50, 10));
    assert_eq!(RateLimit::from_cli("7").unwrap().burst.get(), 7);
    assert!(RateLimit::from_cli("0/1").is_err());
}

#[test]
fn debug_output_hides_secrets() {
    let config = MockConfig {
        auth: MockAuth::OAuth2(OAuth2 {
            client_secret: Secret::new("client-secret-value"),
            access_token: Secret::new("access-token-value"),
            refresh_token: Secret::new("refresh-token-value"),
            ..OAuth2::default()
        }),
        ..MockConfig::default()
    };
    let basic = MockAuth::Basic {
        username: "u".into(),
        password: Secret::new("password-value"),
    };
    let key = MockAuth::ApiKey {
        keys: vec![("X-Key".into(), Secret::new("key-value"))],
    };
    let debug = format!("{config:?} {basic:?} {key:?}");
    for secret in [
        "client-secret-value",
        "access-token-value",
        "refresh-token-value",
        "password-value",
        "key-value",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
    assert!(debug.contains("***"));
}

// ---------------------------------------------------------------------------------------------
// Server: a tiny HTTP/1.1 client

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// False when the connection ended before the announced body did.
    complete: bool,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "{error}: {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }
}

async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65_536];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse_reply(&raw)
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, &[], b"").await
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let (body, complete) = if chunked {
        decode_chunked(rest)
    } else {
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse::<usize>().unwrap());
        (
            rest.to_vec(),
            length.is_none_or(|length| length == rest.len()),
        )
    };
    Reply {
        status,
        headers,
        body,
        complete,
    }
}

fn decode_chunked(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
        else {
            return (body, false);
        };
        rest = &rest[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..rest.len().min(size)]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn server(config: MockConfig) -> MockServer {
    start(config, loopback()).await.unwrap()
}

fn small(records: u64) -> MockConfig {
    MockConfig {
        records,
        compression: false,
        ..MockConfig::default()
    }
}

fn ids_of(records: &Value) -> Vec<String> {
    records
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {records}"))
        .iter()
        .map(|record| record["id"].as_str().unwrap().to_string())
        .collect()
}

/// The target a next link names, relative to the server (absolute links must be ours).
fn target_of(link: &str, base_url: &str) -> String {
    match link.strip_prefix(base_url) {
        Some(target) => target.to_string(),
        None => {
            assert!(link.starts_with('/'), "{link} is neither ours nor relative");
            link.to_string()
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Offset,
    Page { base: u64 },
    CursorQuery,
    CursorHeader,
    PointerAbsolute,
    PointerRelative,
    Link,
    All,
}

/// Walks every page of one style with the extra query `window` and returns the ids in order.
async fn walk(server: &MockServer, style: Style, window: &str) -> Vec<String> {
    let addr = server.addr();
    let base = server.base_url();
    let mut ids = Vec::new();
    let mut requests = 0;
    let mut next: Option<String> = Some(match style {
        Style::Offset => format!("/3.0/lists/L1/members?count=97&offset=0{window}"),
        Style::Page { base } => {
            format!("/page/members?pageSize=97&page={base}&base={base}{window}")
        }
        Style::CursorQuery | Style::CursorHeader => format!("/cursor/members?limit=97{window}"),
        Style::PointerAbsolute => format!("/pointer/members?limit=97{window}"),
        Style::PointerRelative => format!("/pointer/members?limit=97&relative=1{window}"),
        Style::Link => format!("/link/members?per_page=97{window}"),
        Style::All => format!("/all/members?x=1{window}"),
    });
    let mut cursor: Option<String> = None;
    let mut page_count: Option<u64> = None;
    while let Some(target) = next.take() {
        requests += 1;
        assert!(requests < 1_000, "{style:?} does not end");
        let header_cursor;
        let headers: &[(&str, &str)] = match (&style, &cursor) {
            (Style::CursorHeader, Some(token)) => {
                header_cursor = token.clone();
                &[("X-Cursor", header_cursor.as_str())]
            }
            _ => &[],
        };
        let reply = request(addr, "GET", &target, headers, b"").await;
        assert_eq!(
            reply.status,
            200,
            "{target}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let body = reply.json();
        match style {
            Style::Offset => {
                let page = ids_of(&body["members"]);
                let offset = ids.len() + page.len();
                ids.extend(page);
                if body["has_more"] == true {
                    next = Some(format!(
                        "/3.0/lists/L1/members?count=97&offset={offset}{window}"
                    ));
                } else {
                    assert_eq!(body["total_items"].as_u64(), Some(ids.len() as u64));
                    assert_eq!(body["list_id"], "L1");
                }
            }
            Style::Page { base } => {
                let count: u64 = reply.header("x-pagecount").unwrap().parse().unwrap();
                page_count = Some(count);
                let page = body["page"].as_u64().unwrap();
                ids.extend(ids_of(&body["items"]));
                if page + 1 < base + count {
                    next = Some(format!(
                        "/page/members?pageSize=97&page={}&base={base}{window}",
                        page + 1
                    ));
                }
            }
            Style::CursorQuery | Style::CursorHeader => {
                ids.extend(ids_of(&body["data"]));
                assert_eq!(
                    body["meta"]["has_more"],
                    !body["meta"]["after_cursor"].is_null()
                );
                if let Some(token) = body["meta"]["after_cursor"].as_str() {
                    cursor = Some(token.to_string());
                    next = Some(match style {
                        Style::CursorQuery => {
                            format!("/cursor/members?limit=97&cursor={token}{window}")
                        }
                        _ => format!("/cursor/members?limit=97{window}"),
                    });
                }
            }
            Style::PointerAbsolute | Style::PointerRelative => {
                ids.extend(ids_of(&body["results"]));
                if let Some(link) = body["paging"]["next"].as_str() {
                    let is_relative = link.starts_with('/');
                    assert_eq!(
                        is_relative,
                        matches!(style, Style::PointerRelative),
                        "{link}"
                    );
                    next = Some(target_of(link, &base));
                }
            }
            Style::Link => {
                ids.extend(ids_of(&body));
                let links = reply.header("link").unwrap_or_default().to_string();
                assert!(
                    links.contains("rel=\"first\"") && links.contains("rel=\"last\""),
                    "{links}"
                );
                next = links
                    .split(", ")
                    .find(|link| link.ends_with("rel=\"next\""))
                    .map(|link| target_of(&link[1..link.find('>').unwrap()], &base));
            }
            Style::All => ids.extend(ids_of(&body["members"])),
        }
    }
    if let (Style::Page { .. }, Some(count)) = (style, page_count) {
        assert_eq!(count, requests.max(1) as u64, "x-pagecount vs pages walked");
    }
    ids
}

const STYLES: [Style; 9] = [
    Style::Offset,
    Style::Page { base: 0 },
    Style::Page { base: 1 },
    Style::CursorQuery,
    Style::CursorHeader,
    Style::PointerAbsolute,
    Style::PointerRelative,
    Style::Link,
    Style::All,
];

#[tokio::test]
async fn every_style_walks_every_record_once_in_order() {
    let server = server(small(2_500)).await;
    let dataset = server.dataset();
    let expected: Vec<String> = (0..2_500)
        .map(|i| dataset.record(i)["id"].as_str().unwrap().to_string())
        .collect();
    for style in STYLES {
        let ids = walk(&server, style, "").await;
        assert_eq!(ids.len(), expected.len(), "{style:?}");
        assert!(
            ids == expected,
            "{style:?} served other ids or another order"
        );
    }
    // Records are served exactly as the canonical records.
    let reply = get(server.addr(), "/cursor/members?limit=3").await;
    let data = reply.json()["data"].clone();
    assert_eq!(
        data,
        Value::Array((0..3).map(|i| dataset.record(i)).collect())
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn windows_select_last_changed_half_open() {
    // Records change every 10 s from 2024-01-01T00:00:00Z.
    let config = MockConfig {
        step: Duration::from_secs(10),
        ..small(1_000)
    };
    let server = server(config).await;
    let dataset = server.dataset();
    let in_window = |since: &str, before: &str| -> Vec<String> {
        let since: DateTime<Utc> = since.parse().unwrap();
        let before: DateTime<Utc> = before.parse().unwrap();
        (0..1_000)
            .map(|i| dataset.record(i))
            .filter(|record| {
                let changed: DateTime<Utc> =
                    record["last_changed"].as_str().unwrap().parse().unwrap();
                since <= changed && changed < before
            })
            .map(|record| record["id"].as_str().unwrap().to_string())
            .collect()
    };
    let expected = in_window("2024-01-01T00:10:00Z", "2024-01-01T01:00:05Z");
    assert_eq!(expected.len(), 301);
    let windows = [
        "&since_last_changed=2024-01-01T00:10:00Z&before_last_changed=2024-01-01T01:00:05Z".to_string(),
        // Epoch seconds, and +00:00 sent unencoded (it arrives as a space).
        "&since_last_changed=1704067800&before_last_changed=2024-01-01T01:00:05+00:00".to_string(),
        "&query=type%3Auser%20updated%20%3E%3D%202024-01-01T00%3A10%3A00Z%20updated%3C2024-01-01T01%3A00%3A05Z".to_string(),
        // `>` excludes its bound: the record changed at exactly 00:09:50 is left out.
        "&query=updated%3E2024-01-01T00%3A09%3A50Z&before_last_changed=2024-01-01T01%3A00%3A05Z".to_string(),
    ];
    for window in &windows {
        for style in STYLES {
            let ids = walk(&server, style, window).await;
            assert!(ids == expected, "{style:?} {window}: {} ids", ids.len());
        }
    }
    let empty = walk(
        &server,
        Style::Offset,
        "&since_last_changed=2030-01-01T00:00:00Z",
    )
    .await;
    assert!(empty.is_empty());
    let reply = get(server.addr(), "/page/members?since_last_changed=tomorrow").await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("since_last_changed")
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_name_the_parameter() {
    let config = MockConfig {
        all_cap: 100,
        max_page_size: NonZeroU32::new(500).unwrap(),
        ..small(1_000)
    };
    let server = server(config).await;
    let addr = server.addr();
    let check = |target: &'static str, status: u16, needle: &'static str| async move {
        let reply = get(addr, target).await;
        assert_eq!(reply.status, status, "{target}");
        let detail = reply.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(needle), "{target}: {detail}");
    };
    check("/3.0/lists/x/members?count=many", 400, "count=\"many\"").await;
    check("/3.0/lists/x/members?count=501", 400, "count=501").await;
    check("/page/members?pageSize=0", 400, "pageSize=0").await;
    check("/page/members?page=0&base=1", 400, "page=0").await;
    check("/link/members?page=0", 400, "page=0").await;
    check("/cursor/members?cursor=bogus", 400, "cursor \"bogus\"").await;
    check("/all/members", 400, "1000 records").await;
    check("/nowhere", 404, "/nowhere").await;
    let reply = get(
        addr,
        "/all/members?before_last_changed=2024-01-01T00:01:40Z",
    )
    .await;
    assert_eq!(reply.json()["total_items"], 100);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn basic_and_api_key_auth() {
    let basic = server(MockConfig {
        auth: MockAuth::from_cli("basic:alice:wonder land").unwrap(),
        ..small(10)
    })
    .await;
    let addr = basic.addr();
    let reply = get(addr, "/all/members").await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    // base64("alice:wonder land") and base64("alice:wrong").
    let good = [("Authorization", "Basic YWxpY2U6d29uZGVyIGxhbmQ=")];
    let bad = [("Authorization", "Basic YWxpY2U6d3Jvbmc=")];
    assert_eq!(
        request(addr, "GET", "/all/members", &bad, b"").await.status,
        401
    );
    assert_eq!(
        request(addr, "GET", "/all/members", &good, b"")
            .await
            .status,
        200
    );
    assert_eq!(
        request(addr, "GET", "/oauth/test", &good, b"").await.status,
        200
    );
    assert_eq!(get(addr, "/oauth/test").await.status, 401);
    let stats = basic.stats();
    assert_eq!((stats.unauthorized, stats.data_requests), (3, 1));
    basic.shutdown().await.unwrap();

    let keyed = server(MockConfig {
        auth: MockAuth::ApiKey {
            keys: vec![
                ("X-Auth-Key1".into(), "k1".into()),
                ("X-Auth-Key2".into(), "k2".into()),
            ],
        },
        ..small(10)
    })
    .await;
    let addr = keyed.addr();
    let both = [("x-auth-key1", "k1"), ("X-AUTH-KEY2", "k2")];
    assert_eq!(
        request(addr, "GET", "/page/members", &both, b"")
            .await
            .status,
        200
    );
    assert_eq!(
        request(addr, "GET", "/page/members", &both[..1], b"")
            .await
            .status,
        401
    );
    let wrong = [("X-Auth-Key1", "k1"), ("X-Auth-Key2", "nope")];
    assert_eq!(
        request(addr, "GET", "/page/members", &wrong, b"")
            .await
            .status,
        401
    );
    let by_query = get(addr, "/page/members?X-Auth-Key1=k1&X-Auth-Key2=k2").await;
    assert_eq!(by_query.status, 200);
    // The log redacts key-looking query values.
    let logged = keyed.stats().log.last().unwrap().query.clone();
    assert!(!logged.contains("k2"), "{logged}");
    keyed.shutdown().await.unwrap();
}

#[tokio::test]
async fn oauth2_refresh_rotation_and_expiry() {
    let oauth = OAuth2 {
        rotate_refresh_token: true,
        access_ttl: Duration::from_secs(60),
        ..OAuth2::default()
    };
    let server = server(MockConfig {
        auth: MockAuth::OAuth2(oauth),
        ..small(10)
    })
    .await;
    let addr = server.addr();
    let bearer = |token: &str| format!("Bearer {token}");
    let initial = bearer("mock-access");
    assert_eq!(
        request(
            addr,
            "GET",
            "/oauth/test",
            &[("Authorization", &initial)],
            b""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        request(
            addr,
            "GET",
            "/oauth/test",
            &[("Authorization", "Bearer nope")],
            b""
        )
        .await
        .status,
        401
    );

    // Form body.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let body = b"grant_type=refresh_token&refresh_token=mock-refresh&client_id=mock-client&client_secret=mock-secret";
    let reply = request(addr, "POST", "/oauth/token", &form, body).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let grant = reply.json();
    assert_eq!(grant["expires_in"], 60);
    let access = grant["access_token"].as_str().unwrap().to_string();
    let rotated = grant["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rotated, "mock-refresh");
    assert_eq!(
        request(
            addr,
            "GET",
            "/all/members",
            &[("Authorization", &bearer(&access))],
            b""
        )
        .await
        .status,
        200
    );

    // The used refresh token is retired; the rotated one works, as JSON with a Basic client.
    let reply = request(addr, "POST", "/oauth/token", &form, body).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (400, Value::from("invalid_grant"))
    );
    let json_body = format!(r#"{{"grant_type":"refresh_token","refresh_token":"{rotated}"}}"#);
    let client = [
        ("Content-Type", "application/json"),
        ("Authorization", "Basic bW9jay1jbGllbnQ6bW9jay1zZWNyZXQ="),
    ];
    let reply = request(addr, "POST", "/oauth/token", &client, json_body.as_bytes()).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let newest = reply.json()["access_token"].as_str().unwrap().to_string();

    // Wrong client secret, wrong grant type, and query-string fields on GET.
    let wrong_secret = format!(
        "/oauth/token?grant_type=refresh_token&refresh_token={rotated}&client_id=mock-client&client_secret=x"
    );
    let reply = get(addr, &wrong_secret).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (401, Value::from("invalid_client"))
    );
    let reply = get(addr, "/oauth/token?grant_type=password").await;
    assert_eq!(reply.json()["error"], "unsupported_grant_type");

    // Expiry: every token issued so far is now expired.
    server.expire_access_tokens();
    let reply = request(
        addr,
        "GET",
        "/all/members",
        &[("Authorization", &bearer(&newest))],
        b"",
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let stats = server.stats();
    assert_eq!((stats.token_requests, stats.refreshes), (5, 2));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn access_tokens_expire_after_their_ttl_and_custom_field_names() {
    let oauth = OAuth2 {
        access_ttl: Duration::from_millis(150),
        fields: TokenFieldNames {
            access_token: "accessToken".into(),
            refresh_token: "refreshToken".into(),
            expires_in: "expiresIn".into(),
            client_id: "clientId".into(),
            client_secret: "clientSecret".into(),
        },
        ..OAuth2::default()
    };
    let server = server(MockConfig {
        auth: MockAuth::OAuth2(oauth),
        ..small(10)
    })
    .await;
    let addr = server.addr();
    let reply = get(addr, "/oauth/token?grant_type=refresh_token&refreshToken=mock-refresh&clientId=mock-client&clientSecret=mock-secret").await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let token = reply.json()["accessToken"].as_str().unwrap().to_string();
    assert_eq!(reply.json()["refreshToken"], "mock-refresh", "no rotation");
    let auth = [("Authorization", format!("Bearer {token}"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        request(addr, "GET", "/oauth/test", &auth, b"").await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        request(addr, "GET", "/oauth/test", &auth, b"").await.status,
        401
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers() {
    let limit = RateLimit {
        per_second: NonZeroU32::new(10).unwrap(),
        burst: NonZeroU32::new(3).unwrap(),
    };
    let server = server(MockConfig {
        rate_limit: Some(limit),
        ..small(10)
    })
    .await;
    let addr = server.addr();
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let reply = get(addr, "/all/members").await;
        statuses.push(reply.status);
        remaining.push(reply.header("x-ratelimit-remaining").unwrap().to_string());
        assert_eq!(reply.header("x-ratelimit-limit"), Some("10"));
        let reset: f64 = reply.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&reset), "{reset}");
        assert_eq!(reply.header("ratelimit-policy"), Some("10;w=1"));
        assert!(
            reply
                .header("ratelimit")
                .unwrap()
                .starts_with("limit=10, remaining=")
        );
        if reply.status == 429 {
            assert_eq!(reply.header("retry-after"), Some("1"));
        } else {
            assert!(reply.header("retry-after").is_none());
        }
    }
    // Five requests within far less than 100 ms: the burst of 3 passes, then refusals.
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(remaining[..3], ["2", "1", "0"]);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(get(addr, "/all/members").await.status, 200);
    let stats = server.stats();
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.data_requests, 4, "429s do not count as data requests");
    assert_eq!(stats.max_in_window("/all", Duration::from_millis(100)), 5);
    assert_eq!(stats.log.iter().filter(|r| r.status == 429).count(), 2);
    // /stats is not rate limited and reports the same counters.
    let reply = get(addr, "/stats").await;
    assert_eq!(reply.json()["rate_limited"], 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn server_errors_every_nth_and_by_ratio() {
    let errors = ServerErrors {
        rate: ErrorRate::EveryNth(NonZeroU64::new(3).unwrap()),
        status: 503,
        retry_after: Some(Duration::from_millis(1_500)),
    };
    let faults = Faults {
        server_errors: Some(errors),
        ..Faults::default()
    };
    let server = server(MockConfig {
        faults,
        ..small(10)
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let reply = get(server.addr(), "/all/members").await;
        if reply.status == 503 {
            assert_eq!(reply.header("retry-after"), Some("2"));
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503, 200]);
    assert_eq!(server.stats().injected_errors, 2);
    server.shutdown().await.unwrap();

    // A ratio picks the same requests for the same seed, and roughly the ratio of them.
    let ratio = |seed: u64| async move {
        let errors = ServerErrors {
            rate: ErrorRate::Ratio(0.3),
            status: 500,
            retry_after: None,
        };
        let faults = Faults {
            server_errors: Some(errors),
            ..Faults::default()
        };
        let server = start(
            MockConfig {
                seed,
                faults,
                ..small(10)
            },
            loopback(),
        )
        .await
        .unwrap();
        let mut failed = Vec::new();
        for n in 1..=60 {
            if get(server.addr(), "/all/members").await.status == 500 {
                failed.push(n);
            }
        }
        server.shutdown().await.unwrap();
        failed
    };
    let first = ratio(5).await;
    assert_eq!(first, ratio(5).await);
    assert!(
        (8..=30).contains(&first.len()),
        "{} of 60 failed",
        first.len()
    );
}

#[tokio::test]
async fn body_faults_damage_the_targeted_pages() {
    let faults = Faults {
        truncate: Some(Target::Offset(20)),
        malformed: Some(Target::Request(1)),
        not_an_object: Some(Target::Offset(40)),
        missing_content: Some(Target::FromRequest(10)),
        ..Faults::default()
    };
    let server = server(MockConfig {
        faults,
        ..small(100)
    })
    .await;
    let addr = server.addr();
    let page = |offset: u64| format!("/3.0/lists/l/members?count=20&offset={offset}");

    // Request 1: malformed (half the JSON, a complete 200 response).
    let reply = get(addr, &page(0)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.complete);
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    // Request 2: fine.
    assert_eq!(
        ids_of(&get(addr, &page(0)).await.json()["members"]).len(),
        20
    );
    // Offset 20 is truncated on every try: fewer bytes than Content-Length.
    for _ in 0..2 {
        let reply = get(addr, &page(20)).await;
        assert!(!reply.complete, "{} bytes", reply.body.len());
        let announced: usize = reply.header("content-length").unwrap().parse().unwrap();
        assert!(reply.body.len() < announced);
    }
    // Offset 40: the page is the bare records array.
    let body = get(addr, &page(40)).await.json();
    assert_eq!(ids_of(&body).len(), 20);
    // From request 10 on, the records move away from "members".
    for _request_no in 6..10 {
        assert!(get(addr, &page(60)).await.json()["members"].is_array());
    }
    let body = get(addr, &page(60)).await.json();
    assert!(body.get("members").is_none());
    assert_eq!(ids_of(&body["members_moved"]).len(), 20);
    // On /link (a bare array normally) both shape faults give an object.
    let body = get(addr, "/link/members?per_page=5").await.json();
    assert_eq!(ids_of(&body["records"]).len(), 5);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn repeating_cursor_and_foreign_pointer() {
    let foreign = server(small(300)).await;
    let faults = Faults {
        repeating_cursor: true,
        foreign_pointer: Some(ForeignPointer {
            base_url: foreign.base_url(),
            at: Target::Offset(100),
        }),
        ..Faults::default()
    };
    let config = MockConfig {
        auth: MockAuth::from_cli("bearer:tok").unwrap(),
        faults,
        ..small(300)
    };
    let server = server(config).await;
    let addr = server.addr();
    let auth = [("Authorization", "Bearer tok")];
    let first = request(addr, "GET", "/cursor/members?limit=100", &auth, b"")
        .await
        .json();
    let token = first["meta"]["after_cursor"].as_str().unwrap().to_string();
    let second = request(
        addr,
        "GET",
        &format!("/cursor/members?limit=100&cursor={token}"),
        &auth,
        b"",
    )
    .await
    .json();
    assert_eq!(
        second["meta"]["after_cursor"].as_str(),
        Some(token.as_str()),
        "the token repeats"
    );
    assert_ne!(ids_of(&first["data"]), ids_of(&second["data"]));

    let page0 = request(addr, "GET", "/pointer/members?limit=100", &auth, b"")
        .await
        .json();
    let next = page0["paging"]["next"].as_str().unwrap().to_string();
    assert!(next.starts_with(&server.base_url()), "{next}");
    let page1 = request(
        addr,
        "GET",
        &target_of(&next, &server.base_url()),
        &auth,
        b"",
    )
    .await
    .json();
    let next = page1["paging"]["next"].as_str().unwrap().to_string();
    assert!(next.starts_with(&foreign.base_url()), "{next}");
    // A client that drops credentials on leaving the host gets the rest from the other server.
    let page2 = get(foreign.addr(), &target_of(&next, &foreign.base_url()))
        .await
        .json();
    assert_eq!(ids_of(&page2["results"]).len(), 100);
    assert_eq!(page2["paging"]["next"], Value::Null);
    assert_eq!(foreign.stats().requests_with_credentials, 0);
    request(foreign.addr(), "GET", "/pointer/members", &auth, b"").await;
    assert_eq!(foreign.stats().requests_with_credentials, 1);
    server.shutdown().await.unwrap();
    foreign.shutdown().await.unwrap();
}

#[tokio::test]
async fn hang_latency_and_runtime_fault_changes() {
    let faults = Faults {
        hang: Some(Target::Request(1)),
        ..Faults::default()
    };
    let server = server(MockConfig {
        faults,
        ..small(10)
    })
    .await;
    let addr = server.addr();
    let hung = tokio::time::timeout(Duration::from_millis(300), get(addr, "/all/members")).await;
    assert!(hung.is_err(), "the first request must hang");
    assert_eq!(get(addr, "/all/members").await.status, 200);

    server
        .set_faults(Faults {
            latency: Duration::from_millis(150),
            ..Faults::default()
        })
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(get(addr, "/all/members").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let invalid = Faults {
        server_errors: Some(ServerErrors {
            rate: ErrorRate::Ratio(2.0),
            status: 503,
            retry_after: None,
        }),
        ..Faults::default()
    };
    let error = server.set_faults(invalid).unwrap_err();
    assert!(
        error.to_string().contains("faults.server_errors.rate"),
        "{error}"
    );

    // A request hanging at shutdown does not keep the server alive.
    server
        .set_faults(Faults {
            hang: Some(Target::FromRequest(1)),
            ..Faults::default()
        })
        .unwrap();
    let pending = tokio::spawn(get(addr, "/all/members"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(Duration::from_secs(2), server.shutdown())
        .await
        .expect("shutdown ends despite a hanging request")
        .unwrap();
    assert_eq!(pending.await.unwrap().status, 503);
}

#[tokio::test]
async fn compression_follows_accept_encoding_and_the_flag() {
    let compressed = server(MockConfig {
        compression: true,
        ..small(200)
    })
    .await;
    let gzip = [("Accept-Encoding", "gzip")];
    let reply = request(compressed.addr(), "GET", "/all/members", &gzip, b"").await;
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert_eq!(&reply.body[..2], &[0x1f, 0x8b]);
    assert!(reply.body.len() < compressed.stats().bytes_served as usize / 2);
    let plain = get(compressed.addr(), "/all/members").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(ids_of(&plain.json()["members"]).len(), 200);
    compressed.shutdown().await.unwrap();

    let uncompressed = server(small(200)).await;
    let reply = request(uncompressed.addr(), "GET", "/all/members", &gzip, b"").await;
    assert_eq!(reply.header("content-encoding"), None);
    uncompressed.shutdown().await.unwrap();
}

#[tokio::test]
async fn start_rejects_bad_configs_and_non_loopback() {
    let error = start(small(10), "0.0.0.0:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("loopback"), "{error}");
    let config = MockConfig {
        faults: Faults {
            foreign_pointer: Some(ForeignPointer {
                base_url: "127.0.0.2:80/".into(),
                at: Target::Request(1),
            }),
            ..Faults::default()
        },
        ..small(10)
    };
    let error = start(config, loopback()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("faults.foreign_pointer.base_url"),
        "{error}"
    );
    assert!(!error.is_retryable());
    let taken = server(small(10)).await;
    let error = start(small(10), taken.addr()).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    taken.shutdown().await.unwrap();
}

#[tokio::test]
async fn post_bodies_carry_parameters() {
    let server = server(small(100)).await;
    let addr = server.addr();
    let json = [("Content-Type", "application/json")];
    let reply = request(
        addr,
        "POST",
        "/page/members",
        &json,
        br#"{"pageSize":7,"page":2}"#,
    )
    .await;
    let body = reply.json();
    assert_eq!(
        (body["page"].clone(), ids_of(&body["items"]).len()),
        (Value::from(2), 7)
    );
    assert_eq!(body["items"][0], server.dataset().record(14));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let reply = request(addr, "POST", "/pointer/members?after=98", &form, b"limit=5").await;
    assert_eq!(ids_of(&reply.json()["results"]).len(), 2);
    let reply = request(addr, "POST", "/all/members", &json, b"[1,2]").await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("JSON body")
    );
    server.shutdown().await.unwrap();
}

#[test]
fn cli_args_become_a_config() {
    let args = MockCliArgs {
        port: 0,
        records: 50,
        seed: 9,
        start_time: Some("1704067200".into()),
        step: Some(Duration::from_millis(10)),
        auth: Some("apikey:X-Api-Key:v".into()),
        rate_limit: Some("20/5".into()),
        no_compression: true,
        error_every: NonZeroU64::new(4),
        error_status: Some(429),
        latency: Some(Duration::from_millis(3)),
    };
    let (config, addr) = args.clone().into_config().unwrap();
    assert!(addr.ip().is_loopback());
    assert_eq!(
        (config.records, config.seed, config.compression),
        (50, 9, false)
    );
    assert_eq!(config.start_time, default_start_time());
    assert_eq!(config.rate_limit.unwrap().burst.get(), 5);
    assert!(matches!(config.auth, MockAuth::ApiKey { .. }));
    assert_eq!(config.faults.latency, Duration::from_millis(3));
    let errors = config.faults.server_errors.unwrap();
    assert_eq!(
        (errors.status, errors.retry_after),
        (429, Some(Duration::from_secs(1)))
    );
    for bad in [
        MockCliArgs {
            error_status: Some(200),
            ..args.clone()
        },
        MockCliArgs {
            error_every: None,
            ..args.clone()
        },
    ] {
        assert!(bad.into_config().is_err());
    }
    let bad = MockCliArgs {
        start_time: Some("whenever".into()),
        ..args.clone()
    };
    assert!(
        bad.into_config()
            .unwrap_err()
            .to_string()
            .contains("start time")
    );
    let bad = MockCliArgs {
        rate_limit: Some("fast".into()),
        ..args
    };
    assert!(
        bad.into_config()
            .unwrap_err()
            .to_string()
            .contains("rate limit")
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let limit = RateLimit {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(1).unwrap(),
    };
    let config = MockConfig {
        rate_limit: Some(limit),
        retry_after_format: RetryAfterFormat::HttpDate,
        ..small(10)
    };
    let server = server(config).await;
    assert_eq!(get(server.addr(), "/all/members").await.status, 200);
    let before = Utc::now();
    let refused = get(server.addr(), "/all/members").await;
    assert_eq!(refused.status, 429);
    let date = refused.header("retry-after").unwrap();
    let at = DateTime::parse_from_rfc2822(&date.replace("GMT", "+0000")).unwrap();
    let wait = at.with_timezone(&Utc) - before;
    assert!(
        (1..=3).contains(&wait.num_seconds()),
        "{date} is {wait} after the request"
    );
    server.shutdown().await.unwrap();
}
