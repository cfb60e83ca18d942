//! `urlParams`, and the `queryParams` / `headerParams` pairs (an object or the legacy
//! `a=b,c=${d}` string).

use serde_json::Value;

use crate::model::{HttpMethod, RequestTemplate};
use crate::raw::{Ctx, Node, Obj, describe};
use crate::template::Template;

pub(super) fn read_url_params(ctx: &mut Ctx, url_params: &Obj<'_>) -> Option<RequestTemplate> {
    url_params.warn_unknown_keys(
        ctx,
        &[
            "host",
            "path",
            "method",
            "queryParams",
            "headerParams",
            "bodyParams",
        ],
        "urlParams",
    );
    let host = url_params
        .opt_string(ctx, &["host"], "the base URL")
        .map(|host| Template::parse(&host));
    let path = url_params.req_string(ctx, &["path"], "the resource path");
    let method = match url_params.get(ctx, &["method"]) {
        Some(node) => match ctx.string(&node, "the HTTP method") {
            Some(method) if method.eq_ignore_ascii_case("get") => Some(HttpMethod::Get),
            Some(method) if method.eq_ignore_ascii_case("post") => Some(HttpMethod::Post),
            Some(method) => {
                ctx.err(
                    &node.ptr,
                    format!("expected the HTTP method GET or POST, found {method:?}"),
                );
                None
            }
            None => None,
        },
        None => Some(HttpMethod::Get),
    };
    let query = match url_params.get(ctx, &["queryParams"]) {
        Some(node) => read_pairs(ctx, &node, "queryParams"),
        None => Some(Vec::new()),
    };
    Some(RequestTemplate {
        host,
        path: Template::parse(&path?),
        method: method?,
        query: query?,
        headers: Vec::new(),
        body: None,
    })
}

/// `queryParams` / `headerParams`: an object `{k: v}` or the legacy string `a=b,c=${d}`.
pub(super) fn read_pairs(
    ctx: &mut Ctx,
    node: &Node<'_>,
    what: &str,
) -> Option<Vec<(String, Template)>> {
    match node.value {
        Value::Object(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            let mut ok = true;
            for (key, value) in map {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    other => {
                        ctx.err(
                            &crate::diag::child_pointer(&node.ptr, key),
                            format!("expected the value of {what} {key} (a string, number or boolean), found {}", describe(other)),
                        );
                        ok = false;
                        continue;
                    }
                };
                pairs.push((key.clone(), Template::parse(&text)));
            }
            ok.then_some(pairs)
        }
        Value::String(text) => {
            let mut pairs = Vec::new();
            for item in text
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
            {
                let Some((key, value)) = item.split_once('=') else {
                    ctx.err(&node.ptr, format!("expected {what} as name=value pairs separated by commas, found {item:?} without '='"));
                    return None;
                };
                let key = key.trim();
                if key.is_empty() {
                    ctx.err(
                        &node.ptr,
                        format!(
                            "expected {what} as name=value pairs, found {item:?} with an empty name"
                        ),
                    );
                    return None;
                }
                pairs.push((key.to_owned(), Template::parse(value.trim())));
            }
            Some(pairs)
        }
        other => {
            ctx.err(&node.ptr, format!("expected {what} as an object or a \"name=value,name2=value2\" string, found {}", describe(other)));
            None
        }
    }
}
