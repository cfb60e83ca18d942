//! `paginationParams` (reference §2.4): every type with each alias, the shared
//! `maximumRequest` / `delayRequestMillis`, end conditions and end page indexes.

use std::num::NonZeroU32;
use std::time::Duration;

use serde_json::Value;

use super::content_path::read_json_path;
use crate::model::{EndCondition, EndPageIndex, Pagination, PagingCommon, TokenPlacement};
use crate::raw::{Ctx, Node, Obj, describe};

/// Pagination types we know, as the spec spells them.
pub const PAGINATION_TYPES: [&str; 6] = [
    "OFFSET",
    "POINTER",
    "CONTINUATION_TOKEN",
    "PAGE",
    "NONE",
    "LINK",
];
/// Keys of `paginationParams`, over all types and aliases.
const PAGINATION_KEYS: [&str; 18] = [
    "type",
    "limitName",
    "limitValue",
    "offSetName",
    "offsetName",
    "endConditionName",
    "endConditionValue",
    "pointerPath",
    "pointerName",
    "continuationTokenPath",
    "parameterType",
    "parameterName",
    "pageParamName",
    "initialPageIndex",
    "endPageIndex",
    "maximumRequest",
    "maximumRequests",
    "delayRequestMillis",
];

pub(super) fn read_pagination(ctx: &mut Ctx, node: &Node<'_>) -> Option<Pagination> {
    let obj = ctx.object(node, "paginationParams")?;
    obj.warn_unknown_keys(ctx, &PAGINATION_KEYS, "paginationParams");
    let known = PAGINATION_TYPES.join(", ");
    let type_node = obj.require(
        ctx,
        &["type"],
        &format!("the pagination type, one of {known}"),
    )?;
    let type_text = ctx.string(&type_node, &format!("the pagination type, one of {known}"))?;
    let normalised = type_text.to_ascii_uppercase().replace(['_', '-', ' '], "");

    let n_errors_before = ctx.n_errors();
    let maximum_requests = match obj.get(ctx, &["maximumRequest", "maximumRequests"]) {
        Some(max_node) => ctx
            .uint_at_least(&max_node, "maximumRequest", 1)
            .and_then(NonZeroU32::new),
        None => Some(PagingCommon::default().maximum_requests),
    };
    let delay = match obj.get(ctx, &["delayRequestMillis"]) {
        Some(delay_node) => ctx
            .uint(&delay_node, "delayRequestMillis")
            .map(|millis| (millis > 0).then(|| Duration::from_millis(millis))),
        None => Some(None),
    };
    let limit_name = obj
        .get(ctx, &["limitName"])
        .and_then(|name_node| ctx.non_empty_string(&name_node, "limitName"));
    let limit_node = obj.get(ctx, &["limitValue"]);
    let limit = limit_node.as_ref().and_then(|limit_node| {
        let value = ctx.uint(limit_node, "limitValue (the page size)")?;
        match u32::try_from(value).ok().and_then(NonZeroU32::new) {
            Some(limit) => Some(limit),
            None => {
                ctx.err(&limit_node.ptr, format!("expected limitValue (the page size) as an integer >= 1 and <= {}, found {value}", u32::MAX));
                None
            }
        }
    });
    if limit_node.is_some() && limit_name.is_none() && !obj.has("limitName") {
        ctx.err(&obj.ptr_of("limitName"), "missing limitName: limitValue is given, so the name of the page-size parameter is needed");
    }
    if obj.has("limitName") && limit_node.is_none() {
        ctx.err(
            &obj.ptr_of("limitValue"),
            "missing limitValue: limitName is given, so the page size is needed",
        );
    }
    // Problems of the shared settings do not stop the type-specific checks: all are reported.
    let is_common_ok = ctx.n_errors() == n_errors_before;
    let common = PagingCommon {
        maximum_requests: maximum_requests.unwrap_or(PagingCommon::default().maximum_requests),
        delay: delay.flatten(),
    };

    let pagination = match normalised.as_str() {
        "OFFSET" => {
            let offset_name = obj.req_string(
                ctx,
                &["offSetName", "offsetName"],
                "the name of the offset parameter",
            );
            // When only one of limitName / limitValue is given, the shared check above has
            // already reported the other; report here only when both are missing.
            let is_limit_absent = limit_node.is_none() && !obj.has("limitName");
            let limit_name = match limit_name {
                Some(name) => Some(name),
                None if is_limit_absent => {
                    obj.req_string(ctx, &["limitName"], "the name of the page-size parameter")
                }
                None => None,
            };
            if is_limit_absent {
                obj.require(
                    ctx,
                    &["limitValue"],
                    "the page size (an integer >= 1) for OFFSET pagination",
                );
            }
            let end_condition = read_end_condition(ctx, &obj);
            Some(Pagination::Offset {
                limit_name: limit_name?,
                limit: limit?,
                offset_name: offset_name?,
                end_condition: end_condition?,
                common,
            })
        }
        "POINTER" => {
            let pointer_path = obj
                .require(
                    ctx,
                    &["pointerPath", "pointerName"],
                    "the JSONPath of the next-page pointer (a string)",
                )
                .and_then(|path_node| {
                    read_json_path(ctx, &path_node, "the JSONPath of the next-page pointer")
                });
            Some(Pagination::Pointer {
                limit_name,
                limit,
                pointer_path: pointer_path?,
                common,
            })
        }
        "CONTINUATIONTOKEN" => {
            let token_path = obj
                .require(
                    ctx,
                    &["continuationTokenPath"],
                    "the JSONPath of the continuation token (a string)",
                )
                .and_then(|path_node| {
                    read_json_path(ctx, &path_node, "the JSONPath of the continuation token")
                });
            let placement = match obj.get(ctx, &["parameterType"]) {
                Some(type_node) => {
                    match ctx
                        .string(&type_node, "parameterType")
                        .map(|text| text.to_ascii_uppercase())
                    {
                        Some(text) if text == "QUERYPARAM" || text == "QUERY" => {
                            Some(TokenPlacement::Query)
                        }
                        Some(text) if text == "HEADERPARAM" || text == "HEADER" => {
                            Some(TokenPlacement::Header)
                        }
                        Some(text) => {
                            ctx.err(&type_node.ptr, format!("expected parameterType QUERYPARAM or HEADERPARAM, found {text:?}"));
                            None
                        }
                        None => None,
                    }
                }
                None => Some(TokenPlacement::Query),
            };
            let parameter_name =
                obj.req_string(ctx, &["parameterName"], "the name the token is sent under");
            Some(Pagination::ContinuationToken {
                limit_name,
                limit,
                token_path: token_path?,
                placement: placement?,
                parameter_name: parameter_name?,
                common,
            })
        }
        "PAGE" => {
            let page_param = obj.req_string(
                ctx,
                &["pageParamName"],
                "the name of the page-number parameter",
            );
            let initial_index = match obj.get(ctx, &["initialPageIndex"]) {
                Some(index_node) => ctx.uint(&index_node, "initialPageIndex"),
                None => Some(0),
            };
            let end_index = match obj.get(ctx, &["endPageIndex"]) {
                Some(end_node) => read_end_page_index(ctx, &end_node).map(Some),
                None => Some(None),
            };
            if let (Some(initial), Some(Some(EndPageIndex::Literal(end)))) =
                (initial_index, &end_index)
                && *end < initial
            {
                ctx.err(
                    &obj.ptr_of("endPageIndex"),
                    format!("expected endPageIndex >= initialPageIndex ({initial}), found {end}"),
                );
                return None;
            }
            Some(Pagination::Page {
                limit_name,
                limit,
                page_param: page_param?,
                initial_index: initial_index?,
                end_index: end_index?,
                common,
            })
        }
        "LINK" => Some(Pagination::Link {
            limit_name,
            limit,
            common,
        }),
        "NONE" => Some(Pagination::None { common }),
        _ => {
            ctx.err(
                &type_node.ptr,
                format!("unknown pagination type {type_text:?}; expected one of {known}"),
            );
            None
        }
    };
    pagination.filter(|_| is_common_ok)
}

/// `endConditionName` + `endConditionValue`: both or neither.
fn read_end_condition(ctx: &mut Ctx, obj: &Obj<'_>) -> Option<Option<EndCondition>> {
    let name_node = obj.get(ctx, &["endConditionName"]);
    let value_node = obj.get(ctx, &["endConditionValue"]);
    match (name_node, value_node) {
        (None, None) => Some(None),
        (Some(_), None) => {
            ctx.err(&obj.ptr_of("endConditionValue"), "missing endConditionValue: endConditionName is given, so the value that ends paging (e.g. \"Const:false\") is needed");
            None
        }
        (None, Some(_)) => {
            ctx.err(&obj.ptr_of("endConditionName"), "missing endConditionName: endConditionValue is given, so the JSONPath to compare (e.g. \"$.hasMore\") is needed");
            None
        }
        (Some(name_node), Some(value_node)) => {
            let path = read_json_path(ctx, &name_node, "endConditionName (a JSONPath)");
            let value = match value_node.value {
                Value::String(text) => match strip_prefix_ignore_case(text, "Const:") {
                    Some(literal) => Some(parse_literal(literal)),
                    None => {
                        ctx.warn(&value_node.ptr, format!("endConditionValue {text:?} has no \"Const:\" prefix; compared as the literal {}", parse_literal(text)));
                        Some(parse_literal(text))
                    }
                },
                Value::Array(_) | Value::Object(_) => {
                    ctx.err(
                        &value_node.ptr,
                        format!(
                            "expected endConditionValue as \"Const:<value>\" or a scalar, found {}",
                            describe(value_node.value)
                        ),
                    );
                    None
                }
                scalar => Some(scalar.clone()),
            };
            Some(Some(EndCondition {
                path: path?,
                value: value?,
            }))
        }
    }
}

fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `false` -> false, `0` -> 0, `null` -> null, anything else -> the string.
fn parse_literal(text: &str) -> Value {
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(value @ (Value::Bool(_) | Value::Number(_) | Value::Null)) => value,
        _ => Value::String(text.to_owned()),
    }
}

fn read_end_page_index(ctx: &mut Ctx, node: &Node<'_>) -> Option<EndPageIndex> {
    if let Value::String(text) = node.value {
        let trimmed = text.trim();
        if let Some(header) = strip_prefix_ignore_case(trimmed, "headers.")
            .or_else(|| strip_prefix_ignore_case(trimmed, "header."))
        {
            if header.is_empty() {
                ctx.err(
                    &node.ptr,
                    "expected endPageIndex as headers.<header-name>, found an empty header name",
                );
                return None;
            }
            return Some(EndPageIndex::Header(header.to_ascii_lowercase()));
        }
        if let Ok(literal) = trimmed.parse::<u64>() {
            return Some(EndPageIndex::Literal(literal));
        }
        ctx.err(
            &node.ptr,
            format!(
                "expected endPageIndex as a page number or \"headers.<header-name>\", found {}",
                describe(node.value)
            ),
        );
        return None;
    }
    ctx.uint(
        node,
        "endPageIndex (a page number or \"headers.<header-name>\")",
    )
    .map(EndPageIndex::Literal)
}
