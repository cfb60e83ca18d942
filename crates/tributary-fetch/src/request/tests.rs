//! Tests of request rendering: templates, host fallback, schedule params, body, sensitivity.

use chrono::{TimeZone, Utc};
use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

fn source(attributes: Value) -> SourceSpec {
    let document = json!({
        "name": "t",
        "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication",
                      "spec": {"type": "object", "properties": {"host": {"type": "string"}, "password": {"type": "string", "format": "password"}}}}],
        "sourceSpec": {"attributes": attributes, "spec": {"type": "object", "properties": {"listId": {"type": "string"}}}}
    });
    tributary_spec::connection_spec_from_value("t", &document)
        .unwrap()
        .source
}

/// Renders `attributes` with fixed params and renders the request (or the error) as text.
fn check(attributes: Value, window: Option<ScheduleWindow>, expected: Expect) {
    let source_params = json!({"listId": "a b/c"}).as_object().unwrap().clone();
    let auth_params =
        json!({"host": "https://api.test:8443/", "password": "pw-secret-1", "region": "eu"})
            .as_object()
            .unwrap()
            .clone();
    let env = |name: &str| (name == "TOKEN").then(|| "env-token".to_owned());
    let inputs = RenderInputs {
        source_params: &source_params,
        auth_params: &auth_params,
        env: &env,
        window: window.as_ref(),
    };
    let mut redactor = Redactor::new(vec![crate::Secret::new("pw-secret-1")], Vec::new());
    let actual = match render_base_request(&source(attributes), &inputs, &mut redactor) {
        Ok(request) => {
            let headers: Vec<String> = request
                .headers
                .iter()
                .map(|(name, value, sensitive)| {
                    format!(
                        "{name}: {}{}",
                        value.to_str().unwrap(),
                        if *sensitive { " (sensitive)" } else { "" }
                    )
                })
                .collect();
            let body = request
                .body
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .unwrap_or_default();
            format!(
                "{} {}\norigin {}\nredacted {}\n{}\n{body}",
                request.method,
                request.url,
                request.origin,
                redactor.url(&request.url),
                headers.join("\n")
            )
        }
        Err(err) => format!("error: {err}"),
    };
    expected.assert_eq(&actual);
}

#[test]
fn templates_fill_path_query_headers_and_host_falls_back_to_the_auth_param() {
    check(
        json!({
            "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET",
                          "queryParams": {"region": "{region}", "key": "${password}", "fields": "a,b"}},
            "headerParams": {"Accept": "application/json", "X-Token": "${env:TOKEN}"},
            "contentPath": "$.members",
            "paginationParams": {"type": "NONE"}
        }),
        None,
        expect![[r#"
            GET https://api.test:8443/3.0/lists/a%20b%2Fc/members?region=eu&key=pw-secret-1&fields=a%2Cb
            origin https://api.test:8443
            redacted https://api.test:8443/3.0/lists/a%20b%2Fc/members?region=***&key=***&fields=a%2Cb
            accept: application/json
            x-token: env-token (sensitive)
        "#]],
    );
}

#[test]
fn post_bodies_are_rendered_json() {
    check(
        json!({
            "urlParams": {"host": "http://h.test", "path": "/search", "method": "POST"},
            "bodyParams": {"list": "${listId}", "size": 10},
            "contentPath": "$.hits",
            "paginationParams": {"type": "NONE"}
        }),
        None,
        expect![[r#"
            POST http://h.test/search
            origin http://h.test:80
            redacted http://h.test/search
            content-type: application/json
            {"list":"a b/c","size":10}"#]],
    );
}

#[test]
fn schedule_windows_as_params_or_advance_query() {
    let window = ScheduleWindow {
        start: Some(Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap()),
        end: Utc.with_ymd_and_hms(2025, 3, 1, 11, 0, 0).unwrap(),
    };
    let backfill = ScheduleWindow {
        start: None,
        ..window
    };
    let simple = json!({
        "urlParams": {"path": "/m", "method": "GET"},
        "contentPath": "$.m",
        "paginationParams": {"type": "NONE"},
        "scheduleParams": {"scheduleStartParamName": "since", "scheduleEndParamName": "before",
                           "scheduleStartParamFormat": "yyyy-MM-ddTHH:mm:ssZ", "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ss:fffffffK"}
    });
    check(
        simple.clone(),
        Some(window),
        expect![[r#"
        GET https://api.test:8443/m?since=2025-03-01T10%3A00%3A00%2B0000&before=2025-03-01T11%3A00%3A00%3A0000000Z
        origin https://api.test:8443
        redacted https://api.test:8443/m?since=2025-03-01T10%3A00%3A00%2B0000&before=2025-03-01T11%3A00%3A00%3A0000000Z

    "#]],
    );
    check(
        simple.clone(),
        Some(backfill),
        expect![[r#"
        GET https://api.test:8443/m?before=2025-03-01T11%3A00%3A00%3A0000000Z
        origin https://api.test:8443
        redacted https://api.test:8443/m?before=2025-03-01T11%3A00%3A00%3A0000000Z

    "#]],
    );
    check(
        simple,
        None,
        expect![[r#"
        GET https://api.test:8443/m
        origin https://api.test:8443
        redacted https://api.test:8443/m

    "#]],
    );
    let advance = json!({
        "urlParams": {"path": "/users", "method": "GET", "queryParams": {"query": "{SCHEDULE_QUERY}"}},
        "contentPath": "$.users",
        "paginationParams": {"type": "NONE"},
        "scheduleParams": {"type": "ADVANCE", "paramFormat": "yyyy-MM-ddTHH:mm:ssXXX",
                           "incremental": "type:user updated > {START_TIME} updated < {END_TIME}",
                           "backfill": "type:user updated < {END_TIME}"}
    });
    check(
        advance.clone(),
        Some(window),
        expect![[r#"
        GET https://api.test:8443/users?query=type%3Auser+updated+%3E+2025-03-01T10%3A00%3A00Z+updated+%3C+2025-03-01T11%3A00%3A00Z
        origin https://api.test:8443
        redacted https://api.test:8443/users?query=type%3Auser+updated+%3E+2025-03-01T10%3A00%3A00Z+updated+%3C+2025-03-01T11%3A00%3A00Z

    "#]],
    );
    check(
        advance.clone(),
        Some(backfill),
        expect![[r#"
        GET https://api.test:8443/users?query=type%3Auser+updated+%3C+2025-03-01T11%3A00%3A00Z
        origin https://api.test:8443
        redacted https://api.test:8443/users?query=type%3Auser+updated+%3C+2025-03-01T11%3A00%3A00Z

    "#]],
    );
    check(
        advance,
        None,
        expect![[r#"
        GET https://api.test:8443/users
        origin https://api.test:8443
        redacted https://api.test:8443/users

    "#]],
    );
}

#[test]
fn errors_name_the_problem_without_values() {
    check(
        json!({"urlParams": {"path": "/x/${nope}", "method": "GET"}, "contentPath": "$.m", "paginationParams": {"type": "NONE"}}),
        None,
        expect![[
            r#"error: unknown placeholder ${nope}: no source connection param or auth param named "nope""#
        ]],
    );
    check(
        json!({"urlParams": {"host": "ftp://${password}.test", "path": "/x", "method": "GET"}, "contentPath": "$.m", "paginationParams": {"type": "NONE"}}),
        None,
        expect![[r#"error: request URL "ftp://***.test/x" must use http or https, found ftp"#]],
    );
}
