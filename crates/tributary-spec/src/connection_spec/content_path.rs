//! `contentPath` and `explodeEntityPath` (reference §2.3), and the JSONPath fields of
//! pagination.

use serde_json::Value;

use crate::json_path::JsonPath;
use crate::model::ContentPath;
use crate::raw::{Ctx, Node, Obj, describe};

/// `contentPath` / `explodeEntityPath`: a JSONPath string or `{path, skipAttributes,
/// keepAttributes, overrideWrapperAttribute}`.
pub(super) fn read_content_path(ctx: &mut Ctx, node: &Node<'_>, what: &str) -> Option<ContentPath> {
    match node.value {
        Value::String(text) => match JsonPath::parse(text) {
            Ok(path) => Some(ContentPath {
                path,
                keep: Vec::new(),
                skip: Vec::new(),
                wrapper: None,
            }),
            Err(message) => {
                ctx.err(&node.ptr, message);
                None
            }
        },
        Value::Object(map) => {
            let obj = Obj {
                map,
                ptr: node.ptr.clone(),
            };
            obj.warn_unknown_keys(
                ctx,
                &[
                    "path",
                    "skipAttributes",
                    "keepAttributes",
                    "overrideWrapperAttribute",
                ],
                what,
            );
            let path = obj
                .require(
                    ctx,
                    &["path"],
                    &format!("the JSONPath of {what} (a string)"),
                )
                .and_then(|path_node| {
                    let text = ctx.string(&path_node, &format!("the JSONPath of {what}"))?;
                    JsonPath::parse(&text)
                        .map_err(|message| ctx.err(&path_node.ptr, message))
                        .ok()
                });
            let list = |ctx: &mut Ctx, key: &str| match obj.get(ctx, &[key]) {
                Some(list_node) => ctx.string_list(&list_node, key),
                None => Some(Vec::new()),
            };
            let skip = list(ctx, "skipAttributes");
            let keep = list(ctx, "keepAttributes");
            let wrapper = match obj.get(ctx, &["overrideWrapperAttribute"]) {
                Some(wrapper_node) => ctx
                    .non_empty_string(&wrapper_node, "the wrapper attribute name")
                    .map(Some),
                None => Some(None),
            };
            Some(ContentPath {
                path: path?,
                keep: keep?,
                skip: skip?,
                wrapper: wrapper?,
            })
        }
        other => {
            ctx.err(
                &node.ptr,
                format!(
                    "expected {what} as a JSONPath string or an object with path, found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

pub(super) fn read_json_path(ctx: &mut Ctx, node: &Node<'_>, what: &str) -> Option<JsonPath> {
    let text = ctx.non_empty_string(node, what)?;
    JsonPath::parse(&text)
        .map_err(|message| ctx.err(&node.ptr, message))
        .ok()
}
