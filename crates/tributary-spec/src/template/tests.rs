//! Template parsing and rendering: every placeholder spelling, env lookups, reserved schedule
//! tokens, encoding modes, and the errors that name what is missing.

use chrono::{DateTime, Utc};
use expect_test::{Expect, expect};
use serde_json::{Map, Value, json};

use super::*;
use crate::date_format::DateFormat;

fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("test fixture must be an object, got {other}"),
    }
}

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cr3t".to_owned()),
        "HOST" => Some("api.example.com".to_owned()),
        _ => None,
    }
}

/// Renders `text` with fixed params (source: listId, page size, a value with spaces; auth:
/// host, domain, listId — shadowed by the source one), and prints the pieces and the result.
fn check(text: &str, mode: RenderMode, schedule: Option<&ScheduleValues>, expect: Expect) {
    let source = map(
        json!({"listId": "abc 1/2", "limit": 100, "flag": true, "nested": {"id": "n1"}, "nothing": null}),
    );
    let auth = map(
        json!({"host": "https://api.example.com", "domain": "us6", "listId": "auth-list", "crlf": "a\r\nInjected: 1"}),
    );
    let mut ctx = RenderContext::new(&source, &auth, &env);
    if let Some(schedule) = schedule {
        ctx = ctx.with_schedule(schedule);
    }
    let template = Template::parse(text);
    let rendered = match template.render(&ctx, mode) {
        Ok(text) => format!("ok {text}"),
        Err(err) => format!("err {err}"),
    };
    expect.assert_eq(&format!("{:?}\n{rendered}", template.pieces()));
}

#[test]
fn dollar_brace_placeholders_read_source_params_before_auth_params() {
    check(
        "/3.0/lists/${listId}/members",
        RenderMode::Raw,
        None,
        expect![[r#"
            [Literal("/3.0/lists/"), Param { name: "listId", written: "${listId}" }, Literal("/members")]
            ok /3.0/lists/abc 1/2/members"#]],
    );
}

#[test]
fn bare_and_double_brace_placeholders_are_params_too() {
    check(
        "https://{domain}.api.mailchimp.com?key={{limit}}",
        RenderMode::Raw,
        None,
        expect![[r#"
            [Literal("https://"), Param { name: "domain", written: "{domain}" }, Literal(".api.mailchimp.com?key="), Param { name: "limit", written: "{{limit}}" }]
            ok https://us6.api.mailchimp.com?key=100"#]],
    );
}

#[test]
fn url_path_mode_encodes_each_value_for_one_segment() {
    check(
        "/lists/${listId}/members",
        RenderMode::UrlPath,
        None,
        expect![[r#"
            [Literal("/lists/"), Param { name: "listId", written: "${listId}" }, Literal("/members")]
            ok /lists/abc%201%2F2/members"#]],
    );
}

#[test]
fn url_query_mode_encodes_reserved_characters_of_values_only() {
    check(
        "a=b&c=${listId}",
        RenderMode::UrlQuery,
        None,
        expect![[r#"
            [Literal("a=b&c="), Param { name: "listId", written: "${listId}" }]
            ok a=b&c=abc%201%2F2"#]],
    );
}

#[test]
fn header_mode_rejects_line_breaks_without_showing_the_value() {
    check(
        "Bearer ${crlf}",
        RenderMode::Header,
        None,
        expect![[r#"
            [Literal("Bearer "), Param { name: "crlf", written: "${crlf}" }]
            err value substituted for ${crlf} in a header contains a line break"#]],
    );
}

#[test]
fn env_placeholders_read_the_env_closure() {
    check(
        "Bearer ${env:TOKEN}",
        RenderMode::Header,
        None,
        expect![[r#"
            [Literal("Bearer "), Env("TOKEN")]
            ok Bearer s3cr3t"#]],
    );
}

#[test]
fn a_missing_env_var_is_an_error_naming_it() {
    check(
        "${env:NOT_SET_ANYWHERE}",
        RenderMode::Raw,
        None,
        expect![[r#"
            [Env("NOT_SET_ANYWHERE")]
            err environment variable NOT_SET_ANYWHERE is not set (referenced as ${env:NOT_SET_ANYWHERE})"#]],
    );
}

#[test]
fn an_unknown_placeholder_is_an_error_naming_it() {
    check(
        "/v1/{accountId}/items",
        RenderMode::UrlPath,
        None,
        expect![[r#"
            [Literal("/v1/"), Param { name: "accountId", written: "{accountId}" }, Literal("/items")]
            err unknown placeholder {accountId}: no source connection param or auth param named "accountId""#]],
    );
}

#[test]
fn numbers_booleans_and_dotted_paths_render_as_text() {
    check(
        "${limit}-${flag}-{nested.id}",
        RenderMode::Raw,
        None,
        expect![[r#"
            [Param { name: "limit", written: "${limit}" }, Literal("-"), Param { name: "flag", written: "${flag}" }, Literal("-"), Param { name: "nested.id", written: "{nested.id}" }]
            ok 100-true-n1"#]],
    );
}

#[test]
fn a_null_param_cannot_be_rendered() {
    check(
        "${nothing}",
        RenderMode::Raw,
        None,
        expect![[r#"
            [Param { name: "nothing", written: "${nothing}" }]
            err placeholder ${nothing} is null, expected a string, number or boolean"#]],
    );
}

#[test]
fn json_braces_and_non_identifiers_stay_literal() {
    check(
        r#"{"query": {"match": "x"}, "n": ${limit}, "s": "${Field Name}", "e": "{}"}"#,
        RenderMode::Raw,
        None,
        expect![[r#"
            [Literal("{\"query\": {\"match\": \"x\"}, \"n\": "), Param { name: "limit", written: "${limit}" }, Literal(", \"s\": \"${Field Name}\", \"e\": \"{}\"}")]
            ok {"query": {"match": "x"}, "n": 100, "s": "${Field Name}", "e": "{}"}"#]],
    );
}

#[test]
fn unterminated_placeholders_are_literal_text() {
    check(
        "a ${b {c {{d",
        RenderMode::Raw,
        None,
        expect![[r#"
            [Literal("a ${b {c {{d")]
            ok a ${b {c {{d"#]],
    );
}

#[test]
fn azure_data_factory_expressions_are_opaque_and_fail_only_when_rendered() {
    check(
        "/api/v2/incremental/tickets?start_time=@{if(empty(coalesce(pipeline()?.parameters?.ingestionStart,'')),'0','{x}')}&x=1",
        RenderMode::UrlPath,
        None,
        expect![[r#"
            [Literal("/api/v2/incremental/tickets?start_time="), Opaque("@{if(empty(coalesce(pipeline()?.parameters?.ingestionStart,'')),'0','{x}')}"), Literal("&x=1")]
            err cannot execute expression @{if(empty(coalesce(pipeline()?.parameters?.ingestionStart,'')),'0','{x}')}: @{...} (Azure Data Factory) expressions are not supported"#]],
    );
}

#[test]
fn reserved_placeholders_need_a_schedule() {
    check(
        "{START_TIME}",
        RenderMode::Raw,
        None,
        expect![[r#"
            [Reserved(StartTime)]
            err placeholder {START_TIME} has no value: the request has no schedule window, or its window has no start"#]],
    );
}

#[test]
fn reserved_placeholders_are_filled_from_the_schedule_in_any_spelling() {
    let schedule = ScheduleValues {
        start_time: Some("2024-03-05T00:00:00Z".to_owned()),
        end_time: Some("2024-03-06T00:00:00Z".to_owned()),
        schedule_query: Some("type:user updated>1".to_owned()),
    };
    check(
        "q={SCHEDULE_QUERY}&from=${START_TIME}&to={{END_TIME}}",
        RenderMode::UrlQuery,
        Some(&schedule),
        expect![[r#"
            [Literal("q="), Reserved(ScheduleQuery), Literal("&from="), Reserved(StartTime), Literal("&to="), Reserved(EndTime)]
            ok q=type%3Auser%20updated%3E1&from=2024-03-05T00%3A00%3A00Z&to=2024-03-06T00%3A00%3A00Z"#]],
    );
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn advance_schedule_uses_incremental_with_a_start_and_backfill_without() {
    let params = ScheduleParams::Advance {
        format: DateFormat::parse("yyyy-MM-ddTHH:mm:ssZ").unwrap(),
        incremental: Template::parse(
            "type:user updated>{START_TIME} updated<{END_TIME} org:${domain}",
        ),
        backfill: Template::parse("type:user updated<{END_TIME}"),
    };
    let source = Map::new();
    let auth = map(json!({"domain": "acme"}));
    let ctx = RenderContext::new(&source, &auth, &env);
    let end = instant("2024-03-05T07:08:09Z");
    let incremental = params
        .values(
            &ScheduleWindow {
                start: Some(instant("2024-03-04T07:08:09Z")),
                end,
            },
            &ctx,
        )
        .unwrap();
    let backfill = params
        .values(&ScheduleWindow { start: None, end }, &ctx)
        .unwrap();
    assert_eq!(
        incremental.schedule_query.as_deref(),
        Some(
            "type:user updated>2024-03-04T07:08:09+0000 updated<2024-03-05T07:08:09+0000 org:acme"
        )
    );
    assert_eq!(
        backfill.schedule_query.as_deref(),
        Some("type:user updated<2024-03-05T07:08:09+0000")
    );
    assert_eq!(backfill.start_time, None);
    // ADVANCE adds no query pairs of its own; it works through {SCHEDULE_QUERY}.
    assert!(
        params
            .query_pairs(&ScheduleWindow { start: None, end })
            .is_empty()
    );
}

#[test]
fn simple_schedule_gives_query_pairs_in_their_formats() {
    let params = ScheduleParams::Simple {
        start_param: "since_last_changed".to_owned(),
        end_param: "before_last_changed".to_owned(),
        start_format: DateFormat::parse("yyyy-MM-dd'T'HH:mm:ssXXX").unwrap(),
        end_format: DateFormat::parse("yyyy-MM-ddTHH:mm:ss:fffffffK").unwrap(),
    };
    let window = ScheduleWindow {
        start: Some(instant("2024-03-04T00:00:00Z")),
        end: instant("2024-03-05T07:08:09.5Z"),
    };
    expect![[r#"
        [
            (
                "since_last_changed",
                "2024-03-04T00:00:00Z",
            ),
            (
                "before_last_changed",
                "2024-03-05T07:08:09:5000000Z",
            ),
        ]
    "#]]
    .assert_debug_eq(&params.query_pairs(&window));
    // A first backfill run has no start: only the end is sent.
    let first = params.query_pairs(&ScheduleWindow {
        start: None,
        end: window.end,
    });
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "before_last_changed");
}

#[test]
fn json_bodies_render_every_string_and_keep_other_values() {
    let body = JsonTemplate::new(
        json!({"list": "${listId}", "size": 10, "filter": ["{domain}", {"token": "${env:TOKEN}"}], "raw": "{\"a\":1}"}),
    );
    let source = map(json!({"listId": "L1"}));
    let auth = map(json!({"domain": "us6"}));
    let ctx = RenderContext::new(&source, &auth, &env);
    expect![[r#"{"list":"L1","size":10,"filter":["us6",{"token":"s3cr3t"}],"raw":"{\"a\":1}"}"#]]
        .assert_eq(&body.render(&ctx).unwrap().to_string());
    let pointers: Vec<String> = body.templates().into_iter().map(|(ptr, _)| ptr).collect();
    assert_eq!(pointers, ["/list", "/filter/0", "/filter/1/token", "/raw"]);
}

#[test]
fn a_param_holding_an_env_reference_is_resolved_through_the_env() {
    let source = Map::new();
    let auth = map(json!({"apiKey": "${env:TOKEN}", "missing": "${env:NOPE_NOT_SET}"}));
    let ctx = RenderContext::new(&source, &auth, &env);
    assert_eq!(
        Template::parse("key=${apiKey}")
            .render(&ctx, RenderMode::Raw)
            .unwrap(),
        "key=s3cr3t"
    );
    let err = Template::parse("${missing}")
        .render(&ctx, RenderMode::Raw)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable NOPE_NOT_SET is not set (referenced as ${env:NOPE_NOT_SET})"
    );
}

#[test]
fn resolve_env_in_map_renders_env_only_and_keeps_other_braces() {
    let params = map(
        json!({"password": "${env:TOKEN}", "note": "{notAParamHere} ${x}", "nested": {"k": "${env:HOST}"}, "n": 1}),
    );
    let resolved = resolve_env_in_map(&params, &env).unwrap();
    expect![[r#"{"password":"s3cr3t","note":"{notAParamHere} ${x}","nested":{"k":"api.example.com"},"n":1}"#]]
        .assert_eq(&Value::Object(resolved).to_string());
    let missing = map(json!({"a": "${env:NOPE_NOT_SET}"}));
    assert!(
        matches!(resolve_env_in_map(&missing, &env), Err(SpecError::MissingEnv { name }) if name == "NOPE_NOT_SET")
    );
}

#[test]
fn render_context_debug_shows_param_names_not_values() {
    let source = map(json!({"listId": "visible-name-only"}));
    let auth = map(json!({"password": "hunter2"}));
    let ctx = RenderContext::new(&source, &auth, &env);
    let debug = format!("{ctx:?}");
    assert!(debug.contains("password"), "{debug}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("visible-name-only"),
        "{debug}"
    );
}
