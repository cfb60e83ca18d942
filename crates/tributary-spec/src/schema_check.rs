//! A small JSON-schema (draft-07 subset) checker for connection params: `sourceSpec.spec` and
//! `authSpec[].spec`.
//!
//! Supported keywords: `type`, `enum`, `const`, `required`, `properties`,
//! `additionalProperties`, `items`, `minimum`, `maximum`, `exclusiveMinimum`,
//! `exclusiveMaximum`, `minLength`, `maxLength`, `pattern`, `format` (date-time, date, email,
//! uri), `minItems`, `maxItems`, `allOf`, `anyOf`, `oneOf`. Other keywords are ignored. Written
//! here rather than through a general validator so that each error carries the pointer of the
//! offending value (for a missing property, the pointer it would have) and an
//! "expected ..., found ..." message, and so that auth values are never echoed.
//!
//! A string holding `${env:NAME}` is only known at run time, so it passes every check.

use serde_json::Value;

use crate::diag::{Diagnostics, child_pointer};
use crate::raw::{Ctx, describe, describe_redacted, json_type};
use crate::template::Template;

/// Checks `instance` against `schema`; problems are reported under `pointer` in `file`.
/// With `redact`, messages never show string values (auth params may be secrets).
pub fn validate_params(
    file: &str,
    schema: &Value,
    instance: &Value,
    pointer: &str,
    redact: bool,
) -> Diagnostics {
    let mut ctx = Ctx::new(file);
    check(&mut ctx, schema, instance, pointer, redact);
    ctx.diags
}

pub(crate) fn check(ctx: &mut Ctx, schema: &Value, instance: &Value, ptr: &str, redact: bool) {
    let Value::Object(schema) = schema else {
        return;
    };
    if let Value::String(text) = instance
        && Template::parse(text).env_vars().next().is_some()
    {
        return;
    }
    let found = |value: &Value| {
        if redact {
            describe_redacted(value)
        } else {
            describe(value)
        }
    };

    if let Some(expected) = schema.get("type")
        && !type_matches(expected, instance)
    {
        ctx.err(
            ptr,
            format!(
                "expected {}, found {}",
                type_text(expected),
                found(instance)
            ),
        );
        // The other keywords assume the type; checking them would only repeat the problem.
        return;
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed
            .iter()
            .any(|candidate| json_equal(candidate, instance))
    {
        let shown: Vec<String> = allowed.iter().map(Value::to_string).collect();
        ctx.err(
            ptr,
            format!(
                "expected one of {}, found {}",
                shown.join(", "),
                found(instance)
            ),
        );
    }
    if let Some(constant) = schema.get("const")
        && !json_equal(constant, instance)
    {
        ctx.err(
            ptr,
            format!("expected {constant}, found {}", found(instance)),
        );
    }
    match instance {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(required)) = schema.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        let expected = properties
                            .and_then(|props| props.get(name))
                            .and_then(|prop| prop.get("type"))
                            .map(type_text)
                            .unwrap_or_else(|| "a value".to_owned());
                        ctx.err(
                            &child_pointer(ptr, name),
                            format!("missing required property {name}: expected {expected}"),
                        );
                    }
                }
            }
            for (name, value) in map {
                let child = child_pointer(ptr, name);
                if let Some(property) = properties.and_then(|props| props.get(name)) {
                    check(ctx, property, value, &child, redact);
                    continue;
                }
                match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = properties
                            .map(|props| props.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        ctx.err(
                            &child,
                            format!(
                                "unexpected property {name}; the schema allows: {}",
                                known.join(", ")
                            ),
                        );
                    }
                    Some(additional @ Value::Object(_)) => {
                        check(ctx, additional, value, &child, redact)
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (idx, item) in items.iter().enumerate() {
                    check(ctx, item_schema, item, &format!("{ptr}/{idx}"), redact);
                }
            }
            if let Some(minimum) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < minimum
            {
                ctx.err(
                    ptr,
                    format!(
                        "expected at least {minimum} elements, found {}",
                        items.len()
                    ),
                );
            }
            if let Some(maximum) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > maximum
            {
                ctx.err(
                    ptr,
                    format!("expected at most {maximum} elements, found {}", items.len()),
                );
            }
        }
        Value::Number(number) => {
            if let Some(value) = number.as_f64() {
                check_bounds(ctx, schema, value, ptr);
            }
        }
        Value::String(text) => check_string(ctx, schema, text, ptr, redact),
        Value::Null | Value::Bool(_) => {}
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        let Some(Value::Array(branches)) = schema.get(keyword) else {
            continue;
        };
        if keyword == "allOf" {
            for branch in branches {
                check(ctx, branch, instance, ptr, redact);
            }
            continue;
        }
        let n_passing = branches
            .iter()
            .filter(|branch| {
                let mut probe = Ctx::new(&ctx.file);
                check(&mut probe, branch, instance, ptr, redact);
                !probe.diags.has_errors()
            })
            .count();
        let ok = if keyword == "anyOf" {
            n_passing >= 1
        } else {
            n_passing == 1
        };
        if !ok {
            ctx.err(ptr, format!("expected a value matching {keyword} ({n_passing} of {} alternatives match), found {}", branches.len(), found(instance)));
        }
    }
}

fn check_bounds(ctx: &mut Ctx, schema: &serde_json::Map<String, Value>, value: f64, ptr: &str) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(minimum) = bound("minimum")
        && value < minimum
    {
        ctx.err(
            ptr,
            format!("expected a number >= {minimum}, found {value}"),
        );
    }
    if let Some(maximum) = bound("maximum")
        && value > maximum
    {
        ctx.err(
            ptr,
            format!("expected a number <= {maximum}, found {value}"),
        );
    }
    if let Some(minimum) = bound("exclusiveMinimum")
        && value <= minimum
    {
        ctx.err(ptr, format!("expected a number > {minimum}, found {value}"));
    }
    if let Some(maximum) = bound("exclusiveMaximum")
        && value >= maximum
    {
        ctx.err(ptr, format!("expected a number < {maximum}, found {value}"));
    }
}

fn check_string(
    ctx: &mut Ctx,
    schema: &serde_json::Map<String, Value>,
    text: &str,
    ptr: &str,
    redact: bool,
) {
    let n_chars = text.chars().count() as u64;
    if let Some(minimum) = schema.get("minLength").and_then(Value::as_u64)
        && n_chars < minimum
    {
        ctx.err(
            ptr,
            format!("expected a string of at least {minimum} characters, found {n_chars}"),
        );
    }
    if let Some(maximum) = schema.get("maxLength").and_then(Value::as_u64)
        && n_chars > maximum
    {
        ctx.err(
            ptr,
            format!("expected a string of at most {maximum} characters, found {n_chars}"),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(regex) if !regex.is_match(text) => {
                let shown = if redact { "a string".to_owned() } else { describe(&Value::String(text.to_owned())) };
                ctx.err(ptr, format!("expected a string matching /{pattern}/, found {shown}"));
            }
            Ok(_) => {}
            Err(_) => ctx.warn(ptr, format!("the schema's pattern /{pattern}/ is not a valid regular expression; not checked")),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && let Some(problem) = format_problem(format, text)
    {
        ctx.err(
            ptr,
            format!(
                "expected {problem}, found {}",
                if redact {
                    "a string".to_owned()
                } else {
                    describe(&Value::String(text.to_owned()))
                }
            ),
        );
    }
}

/// What a string of `format` must look like, when `text` does not.
fn format_problem(format: &str, text: &str) -> Option<&'static str> {
    let ok = match format {
        "date-time" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        "email" => text
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.')),
        "uri" | "url" => text
            .split_once("://")
            .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty()),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match format {
        "date-time" => "an RFC 3339 date-time such as 2024-03-05T07:08:09Z",
        "date" => "a date such as 2024-03-05",
        "email" => "an email address",
        _ => "an absolute URI such as https://api.example.com",
    })
}

fn type_matches(expected: &Value, instance: &Value) -> bool {
    match expected {
        Value::String(name) => one_type_matches(name, instance),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| one_type_matches(name, instance)),
        _ => true,
    }
}

fn one_type_matches(name: &str, instance: &Value) -> bool {
    match name {
        "integer" => match instance {
            Value::Number(number) => {
                number.is_i64()
                    || number.is_u64()
                    || number.as_f64().is_some_and(|float| float.fract() == 0.0)
            }
            _ => false,
        },
        "number" => instance.is_number(),
        other => json_type(instance) == other || (other == "number" && instance.is_number()),
    }
}

fn type_text(expected: &Value) -> String {
    let one = |name: &str| match name {
        "array" | "object" | "integer" => format!("an {name}"),
        "null" => "null".to_owned(),
        other => format!("a {other}"),
    };
    match expected {
        Value::String(name) => one(name),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(one)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.to_string(),
    }
}

/// JSON equality where 1 and 1.0 are equal.
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => left == right,
    }
}

/// JSON-schema type names.
const TYPE_NAMES: [&str; 7] = [
    "string", "number", "integer", "boolean", "object", "array", "null",
];

/// Checks that a document is a plausible JSON schema: `type` names, `properties` objects of
/// schemas, `required` strings, `items` a schema; recursively.
pub(crate) fn check_schema_document(ctx: &mut Ctx, node: &crate::raw::Node<'_>) {
    let Some(obj) = ctx.object(node, "a JSON schema") else {
        return;
    };
    if let Some(type_node) = obj.get(ctx, &["type"]) {
        let names: Vec<&Value> = match type_node.value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for name in names {
            let known = name.as_str().is_some_and(|name| TYPE_NAMES.contains(&name));
            if !known {
                ctx.err(
                    &type_node.ptr,
                    format!(
                        "expected a JSON-schema type ({}), found {}",
                        TYPE_NAMES.join(", "),
                        describe(name)
                    ),
                );
            }
        }
    }
    if let Some(properties) = obj.get(ctx, &["properties"])
        && let Some(properties) = ctx.object(&properties, "the schema properties")
    {
        for (name, value) in properties.map {
            check_schema_document(
                ctx,
                &crate::raw::Node {
                    value,
                    ptr: child_pointer(&properties.ptr, name),
                },
            );
        }
    }
    if let Some(required) = obj.get(ctx, &["required"]) {
        ctx.string_list(&required, "the required properties");
    }
    if let Some(items) = obj.get(ctx, &["items"])
        && items.value.is_object()
    {
        check_schema_document(ctx, &items);
    }
}

#[cfg(test)]
mod tests;
