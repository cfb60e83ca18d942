//! Validation of Data Prep mapping sets in both dialects (reference §8.2): legacy
//! (`destinationXdmPath` / `sourceAttribute`) and current (`sourceType` / `source` /
//! `destination`, with the stored aliases `text/x.schema-path`, `text/x.aep-xl`, `text/plain`).
//! Dialects may even be mixed per mapping.

use std::collections::HashMap;

use serde_json::Value;

use crate::model::{Mapping, MappingSet, MappingSourceType};
use crate::raw::{Ctx, Node, describe};

/// A calculated field is at most this long (reference §8.3).
pub const MAX_EXPRESSION_CHARS: usize = 4096;

const SOURCE_TYPES: &str =
    "ATTRIBUTE, EXPRESSION, STATIC (or text/x.schema-path, text/x.aep-xl, text/plain)";

pub(crate) fn read_mapping_set(ctx: &mut Ctx, root: &Node<'_>) -> Option<MappingSet> {
    let obj = ctx.object(root, "a mapping set")?;
    let n_errors_before = ctx.n_errors();
    let strict = obj
        .opt_bool(ctx, &["strictMapping"], "strictMapping")
        .unwrap_or(false);
    let allow_null_values = obj
        .opt_bool(ctx, &["allowNullValues"], "allowNullValues")
        .unwrap_or(false);
    let output_schema_id = root
        .value
        .pointer("/outputSchema/schemaRef/id")
        .and_then(Value::as_str)
        .or_else(|| root.value.get("xdmSchema").and_then(Value::as_str))
        .map(str::to_owned);
    let entries = obj
        .require(ctx, &["mappings"], "an array of mappings")
        .and_then(|node| ctx.array(&node, "mappings"))
        .unwrap_or_default();
    let mut mappings = Vec::with_capacity(entries.len());
    let mut destinations: HashMap<String, String> = HashMap::new();
    for entry in &entries {
        let mapping = read_mapping(ctx, entry);
        // Duplicates are checked on the raw text so that a mapping with other problems still
        // counts as taking its destination.
        let destination = ["destination", "destinationXdmPath"]
            .iter()
            .find_map(|key| entry.value.get(*key).and_then(Value::as_str));
        if let Some(destination) = destination
            .map(str::trim)
            .filter(|destination| !destination.is_empty())
        {
            if let Some(first_ptr) = destinations.get(destination) {
                let key = if entry.value.get("destination").is_some() {
                    "destination"
                } else {
                    "destinationXdmPath"
                };
                ctx.err(
                    &format!("{}/{key}", entry.ptr),
                    format!("destination {destination:?} is already mapped by {first_ptr}; each destination takes one mapping"),
                );
            } else {
                destinations.insert(destination.to_owned(), entry.ptr.clone());
            }
        }
        mappings.extend(mapping);
    }
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    Some(MappingSet {
        mappings,
        strict,
        allow_null_values,
        output_schema_id,
    })
}

fn read_mapping(ctx: &mut Ctx, node: &Node<'_>) -> Option<Mapping> {
    let obj = ctx.object(node, "a mapping")?;
    let n_errors_before = ctx.n_errors();
    let is_legacy = obj.has("destinationXdmPath") || obj.has("sourceAttribute");
    let source_type = if is_legacy && !obj.has("sourceType") {
        Some(MappingSourceType::Attribute)
    } else {
        match obj.get(ctx, &["sourceType"]) {
            Some(type_node) => match ctx.string(&type_node, "sourceType") {
                Some(text) => match source_type_of(&text) {
                    Some(source_type) => Some(source_type),
                    None => {
                        ctx.err(
                            &type_node.ptr,
                            format!("unknown sourceType {text:?}; expected one of {SOURCE_TYPES}"),
                        );
                        None
                    }
                },
                None => None,
            },
            None => Some(MappingSourceType::Attribute),
        }
    };
    let destination = obj.req_string(
        ctx,
        &["destination", "destinationXdmPath"],
        "the destination path (e.g. person.name.firstName)",
    );
    // STATIC sources may be written as JSON scalars; they are kept as their text.
    let source = match obj.require(
        ctx,
        &["source", "sourceAttribute"],
        "the source field path, expression or literal",
    ) {
        Some(source_node) => match (source_node.value, source_type) {
            (Value::String(text), _) => Some(text.clone()),
            (Value::Number(_) | Value::Bool(_), Some(MappingSourceType::Static)) => {
                Some(source_node.value.to_string())
            }
            (other, _) => {
                ctx.err(
                    &source_node.ptr,
                    format!("expected the source (a string), found {}", describe(other)),
                );
                None
            }
        },
        None => None,
    };
    if let (Some(source), Some(source_type)) = (&source, source_type) {
        let source_ptr = obj.ptr_of(if obj.has("source") {
            "source"
        } else {
            "sourceAttribute"
        });
        if source.trim().is_empty() && source_type != MappingSourceType::Static {
            ctx.err(
                &source_ptr,
                "expected a source field path or expression, found an empty string",
            );
        }
        let n_chars = source.chars().count();
        if source_type == MappingSourceType::Expression && n_chars > MAX_EXPRESSION_CHARS {
            ctx.err(&source_ptr, format!("expected a calculated field of at most {MAX_EXPRESSION_CHARS} characters, found {n_chars}"));
        }
    }
    let identity = obj
        .opt_bool(ctx, &["identity"], "identity")
        .unwrap_or(false);
    let primary_identity = obj
        .opt_bool(ctx, &["primaryIdentity"], "primaryIdentity")
        .unwrap_or(false);
    let namespace_code = obj.opt_string(ctx, &["namespaceCode"], "namespaceCode");
    let name = obj.opt_string(ctx, &["name"], "the mapping name");
    let description = obj.opt_string(ctx, &["description"], "the description");
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    Some(Mapping {
        source_type: source_type?,
        source: source?,
        destination: destination?,
        identity,
        primary_identity,
        namespace_code,
        name,
        description,
    })
}

/// `ATTRIBUTE` / `EXPRESSION` / `STATIC` in any case, and the stored MIME-like aliases.
pub fn source_type_of(text: &str) -> Option<MappingSourceType> {
    match text.trim().to_ascii_lowercase().as_str() {
        "attribute" | "text/x.schema-path" => Some(MappingSourceType::Attribute),
        "expression" | "text/x.aep-xl" => Some(MappingSourceType::Expression),
        "static" | "text/plain" => Some(MappingSourceType::Static),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
