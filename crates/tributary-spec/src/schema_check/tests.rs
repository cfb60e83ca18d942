//! The params schema checker: each keyword, pointers at the offending value, and redaction.

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;

fn check_params(schema: Value, params: Value, redact: bool, expect: Expect) {
    let diags = validate_params("f.json", &schema, &params, "/params", redact);
    expect.assert_eq(&diags.to_string());
}

#[test]
fn required_type_and_enum_point_at_the_field() {
    check_params(
        json!({"type": "object", "required": ["listId", "region"],
               "properties": {"listId": {"type": "string"}, "region": {"type": "string", "enum": ["us", "eu"]},
                              "count": {"type": "integer", "minimum": 1, "maximum": 1000}}}),
        json!({"region": "asia", "count": 5000}),
        false,
        expect![[r#"
            f.json: /params/listId: missing required property listId: expected a string
            f.json: /params/region: expected one of "us", "eu", found the string "asia"
            f.json: /params/count: expected a number <= 1000, found 5000
        "#]],
    );
}

#[test]
fn wrong_types_stop_further_checks_of_that_value() {
    check_params(
        json!({"type": "object", "properties": {"count": {"type": "integer", "minimum": 1}, "tags": {"type": "array", "items": {"type": "string"}}}}),
        json!({"count": "ten", "tags": ["a", 2]}),
        false,
        expect![[r#"
            f.json: /params/count: expected an integer, found the string "ten"
            f.json: /params/tags/1: expected a string, found the number 2
        "#]],
    );
}

#[test]
fn pattern_format_lengths_and_additional_properties() {
    check_params(
        json!({"type": "object", "additionalProperties": false,
               "properties": {"id": {"type": "string", "pattern": "^[0-9a-f]{10}$"}, "since": {"type": "string", "format": "date-time"},
                              "name": {"type": "string", "minLength": 2, "maxLength": 3}}}),
        json!({"id": "10c097ca7Z", "since": "yesterday", "name": "abcd", "extra": 1}),
        false,
        expect![[r#"
            f.json: /params/id: expected a string matching /^[0-9a-f]{10}$/, found the string "10c097ca7Z"
            f.json: /params/since: expected an RFC 3339 date-time such as 2024-03-05T07:08:09Z, found the string "yesterday"
            f.json: /params/name: expected a string of at most 3 characters, found 4
            f.json: /params/extra: unexpected property extra; the schema allows: id, since, name
        "#]],
    );
}

#[test]
fn redacted_checks_never_show_string_values() {
    let diags = validate_params(
        "f.json",
        &json!({"type": "object", "properties": {"password": {"type": "integer"}, "key": {"type": "string", "pattern": "^x"}}}),
        &json!({"password": "hunter2", "key": "topsecret"}),
        "/auth/params",
        true,
    );
    let text = diags.to_string();
    assert_eq!(diags.errors().count(), 2, "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("topsecret"),
        "{text}"
    );
}

#[test]
fn env_references_pass_every_check() {
    check_params(
        json!({"type": "object", "properties": {"port": {"type": "integer"}, "key": {"type": "string", "pattern": "^x"}}}),
        json!({"port": "${env:PORT}", "key": "${env:KEY}"}),
        false,
        expect![""],
    );
}
