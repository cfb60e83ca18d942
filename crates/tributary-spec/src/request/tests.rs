//! Whole-request rendering: host fallback, URL joining, modes per part, and Debug hygiene.

use expect_test::expect;
use serde_json::{Map, Value, json};

use crate::SpecError;
use crate::document::connection_spec_from_value;
use crate::template::{RenderContext, ScheduleValues};

fn map(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn env(name: &str) -> Option<String> {
    (name == "API_HOST").then(|| "https://env.example.com/".to_owned())
}

fn spec(url_params: Value, extra: Value) -> crate::ConnectionSpec {
    let mut attributes = json!({"urlParams": url_params, "contentPath": "$.items", "paginationParams": {"type": "NONE"}});
    for (key, value) in extra.as_object().unwrap() {
        attributes[key] = value.clone();
    }
    connection_spec_from_value(
        "s.json",
        &json!({"name": "s", "authSpec": [{"name": "k", "type": "KeyBased", "spec": {"type": "object", "properties": {"authKey1": {"type": "string"}}}}],
                "sourceSpec": {"attributes": attributes}}),
    )
    .unwrap()
}

#[test]
fn renders_every_part_in_its_mode() {
    let spec = spec(
        json!({"host": "https://{domain}.api.example.com/", "path": "/3.0/lists/${listId}/members", "method": "POST",
               "queryParams": {"q": "{SCHEDULE_QUERY}", "fields": "a,b"}}),
        json!({"headerParams": {"X-Key": "${authKey1}", "Accept": "application/json"}, "bodyParams": {"list": "${listId}"},
               "scheduleParams": {"type": "ADVANCE", "paramFormat": "yyyy", "incremental": "u>{START_TIME}", "backfill": "all"}}),
    );
    let source = map(json!({"listId": "a b/c"}));
    let auth = map(json!({"domain": "us6", "authKey1": "k-secret"}));
    let schedule = ScheduleValues {
        schedule_query: Some("updated>1 & x".to_owned()),
        ..ScheduleValues::default()
    };
    let ctx = RenderContext::new(&source, &auth, &env).with_schedule(&schedule);
    let request = spec.source.request.render(&ctx).unwrap();
    assert_eq!(
        request.url,
        "https://us6.api.example.com/3.0/lists/a%20b%2Fc/members"
    );
    assert_eq!(
        request.query,
        [
            ("q".to_owned(), "updated>1 & x".to_owned()),
            ("fields".to_owned(), "a,b".to_owned())
        ]
    );
    assert_eq!(
        request.headers[0],
        ("X-Key".to_owned(), "k-secret".to_owned())
    );
    assert_eq!(request.body, Some(json!({"list": "a b/c"})));
    let debug = format!("{request:?}");
    expect![[r#"RenderedRequest { method: Post, url: "https://us6.api.example.com/3.0/lists/a%20b%2Fc/members", query_names: ["q", "fields"], header_names: ["X-Key", "Accept"], has_body: true }"#]]
        .assert_eq(&debug);
}

#[test]
fn host_falls_back_to_the_auth_param_which_may_read_the_env() {
    let spec = spec(json!({"path": "api/v2/users?sort=id"}), json!({}));
    let source = Map::new();
    let auth = map(json!({"host": "${env:API_HOST}"}));
    let request = spec
        .source
        .request
        .render(&RenderContext::new(&source, &auth, &env))
        .unwrap();
    assert_eq!(request.url, "https://env.example.com/api/v2/users?sort=id");
    assert_eq!(request.body, None);

    let no_host = Map::new();
    let err = spec
        .source
        .request
        .render(&RenderContext::new(&source, &no_host, &env))
        .unwrap_err();
    assert!(matches!(err, SpecError::MissingHost), "{err}");
    assert_eq!(
        err.to_string(),
        "no base URL: the connection spec has no urlParams.host and the auth params have no host"
    );
}

#[test]
fn a_get_request_never_carries_a_body() {
    let spec = spec(
        json!({"host": "http://h", "path": "/x"}),
        json!({"bodyParams": {"a": 1}}),
    );
    let empty = Map::new();
    let request = spec
        .source
        .request
        .render(&RenderContext::new(&empty, &empty, &env))
        .unwrap();
    assert_eq!(request.body, None);
    assert_eq!(request.url, "http://h/x");
}
