//! `sourceSpec` (reference §2): shape (a) with concrete `attributes`, shape (b) whose request
//! comes from the source connection, and the checks of the request's templates.

use serde_json::Value;

use super::content_path::read_content_path;
use super::pagination::read_pagination;
use super::schedule::read_schedule_params;
use super::url_params::{read_pairs, read_url_params};
use super::{SourceOutcome, check_schema_shape, schema_property_names};
use crate::model::{HttpMethod, Pagination, PagingCommon, ScheduleParams, SourceSpec};
use crate::raw::{Ctx, Node, Obj};
use crate::template::{JsonTemplate, Reserved, Template};

/// Keys of `sourceSpec.attributes` (shape a).
const ATTRIBUTE_KEYS: [&str; 10] = [
    "uiAttributes",
    "urlParams",
    "headerParams",
    "bodyParams",
    "contentPath",
    "explodeEntityPath",
    "paginationParams",
    "scheduleParams",
    "schema",
    "spec",
];

/// The request fields of `sourceSpec.attributes` (shape a), which a shape (b) template leaves
/// to the source connection's params.
const REQUEST_KEYS: [&str; 8] = [
    "urlParams",
    "headerParams",
    "bodyParams",
    "contentPath",
    "explodeEntityPath",
    "paginationParams",
    "scheduleParams",
    "schema",
];

/// A JSON schema of the source connection params, and where it is.
struct ParamsSchema {
    value: Value,
    ptr: String,
}

/// `sourceSpec` in either shape (reference §2.8):
///
/// - shape (a): `attributes.urlParams` (and `contentPath`, `paginationParams`, ...) define the
///   request; this is the source of truth whenever `attributes.urlParams` is present;
/// - shape (b), the generic REST template: no `attributes.urlParams`, and the params schema —
///   `sourceSpec.spec` (the connection-spec template) or `sourceSpec.attributes.spec` (the
///   `sourcespec.md` intro) — declares `urlParams`: the user gives the request in the source
///   connection's params.
///
/// Both schema locations describe the source connection's params; when both are present the
/// params are checked against their merge ([`merge_params_schemas`]).
pub(super) fn read_source_spec_document(
    ctx: &mut Ctx,
    node: &Node<'_>,
    auth_param_names: &[String],
) -> SourceOutcome {
    let Some(obj) = ctx.object(node, "the source spec") else {
        return SourceOutcome::Invalid;
    };
    // Problems of the schemas do not stop the attributes' checks: all are reported at once.
    let spec_schema = read_params_schema(ctx, &obj, "sourceSpec.spec");
    let attributes = match obj.get(ctx, &["attributes"]) {
        Some(attributes_node) => match ctx.object(&attributes_node, "sourceSpec.attributes") {
            Some(attributes) => Some(attributes),
            None => return SourceOutcome::Invalid,
        },
        None => None,
    };
    let attributes_schema = attributes
        .as_ref()
        .and_then(|attributes| read_params_schema(ctx, attributes, "sourceSpec.attributes.spec"));
    let declared_at = [&attributes_schema, &spec_schema]
        .into_iter()
        .flatten()
        .find(|schema| schema.value.pointer("/properties/urlParams").is_some())
        .map(|schema| format!("{}/properties/urlParams", schema.ptr));
    let params_schema = match (spec_schema, attributes_schema) {
        (Some(first), Some(second)) => Some(merge_params_schemas(&first.value, &second.value)),
        (Some(only), None) | (None, Some(only)) => Some(only.value),
        (None, None) => None,
    };
    let has_concrete_request = attributes
        .as_ref()
        .is_some_and(|attributes| attributes.has("urlParams"));

    if let (false, Some(declared_at), Some(params_schema)) = (
        has_concrete_request,
        declared_at.clone(),
        params_schema.clone(),
    ) {
        // The generic REST template: the user supplies urlParams etc. in the source connection.
        if let Some(attributes) = &attributes {
            attributes.warn_unknown_keys(ctx, &ATTRIBUTE_KEYS, "sourceSpec.attributes");
            for key in REQUEST_KEYS.iter().filter(|key| attributes.has(key)) {
                ctx.err(
                    &attributes.ptr_of(key),
                    format!(
                        "unexpected {key} in the attributes of a generic REST template: {declared_at} declares urlParams as a source connection param, so the whole request comes from the source connection; add urlParams here as well to define the request in the spec (shape a)"
                    ),
                );
            }
        }
        if obj.has("schema") {
            ctx.err(
                &obj.ptr_of("schema"),
                format!(
                    "unexpected schema in the source spec of a generic REST template: {declared_at} declares urlParams as a source connection param, so the records' custom schema comes with the request, in the source connection's params"
                ),
            );
        }
        return SourceOutcome::Template {
            params_schema,
            declared_at,
        };
    }

    let Some(attributes) = attributes else {
        obj.require(
            ctx,
            &["attributes"],
            "the request definition (an object with urlParams, contentPath, paginationParams), or a sourceSpec.spec that declares urlParams (a generic REST template)",
        );
        return SourceOutcome::Invalid;
    };
    attributes.warn_unknown_keys(ctx, &ATTRIBUTE_KEYS, "sourceSpec.attributes");
    if let Some(schema) = &params_schema {
        warn_request_keys_in_schema(ctx, &attributes, schema);
    }
    let source_param_names = params_schema
        .as_ref()
        .map(schema_property_names)
        .unwrap_or_default();
    let record_schema = match attributes.get(ctx, &["schema"]) {
        Some(_) => read_record_schema(ctx, &attributes),
        None => read_record_schema(ctx, &obj),
    };
    let Some(record_schema) = record_schema else {
        return SourceOutcome::Invalid;
    };
    match read_source_attributes(
        ctx,
        &attributes,
        auth_param_names,
        &source_param_names,
        params_schema.as_ref(),
    ) {
        Some(mut source) => {
            source.params_schema = params_schema;
            source.record_schema = record_schema;
            SourceOutcome::Concrete(Box::new(source))
        }
        None => SourceOutcome::Invalid,
    }
}

/// `schema`, the custom JSON schema of the records (reference §2.7), in `obj`: `Some(None)` when
/// absent, `None` (with an error) when it is not an object.
pub(super) fn read_record_schema(ctx: &mut Ctx, obj: &Obj<'_>) -> Option<Option<Value>> {
    let Some(schema) = obj.get(ctx, &["schema"]) else {
        return Some(None);
    };
    ctx.object(&schema, "the custom record schema")?;
    Some(Some(schema.value.clone()))
}

/// `spec` in `obj`: a JSON schema of the source connection params; `None` when absent or not
/// an object (then with an error).
fn read_params_schema(ctx: &mut Ctx, obj: &Obj<'_>, what: &str) -> Option<ParamsSchema> {
    let node = obj.get(ctx, &["spec"])?;
    let schema = ctx.object(
        &node,
        &format!("the JSON schema of the source connection params ({what})"),
    )?;
    check_schema_shape(ctx, &schema);
    Some(ParamsSchema {
        value: node.value.clone(),
        ptr: node.ptr.clone(),
    })
}

/// One schema of the source connection params out of `sourceSpec.spec` and
/// `sourceSpec.attributes.spec`: the union of their properties (a property both declare must
/// satisfy both, through `allOf`) and of their `required` lists; when either forbids additional
/// properties, so does the merge (anything outside the union is refused).
pub(super) fn merge_params_schemas(first: &Value, second: &Value) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required: Vec<Value> = Vec::new();
    for schema in [first, second] {
        if let Some(declared) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in declared {
                let merged = match properties.remove(name) {
                    Some(earlier) => serde_json::json!({"allOf": [earlier, property]}),
                    None => property.clone(),
                };
                properties.insert(name.clone(), merged);
            }
        }
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !required.contains(name) {
                required.push(name.clone());
            }
        }
    }
    let mut merged = serde_json::Map::new();
    merged.insert("type".to_owned(), Value::from("object"));
    merged.insert("properties".to_owned(), Value::Object(properties));
    if !required.is_empty() {
        merged.insert("required".to_owned(), Value::Array(required));
    }
    let is_closed = [first, second]
        .iter()
        .any(|schema| schema.get("additionalProperties") == Some(&Value::Bool(false)));
    if is_closed {
        merged.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    Value::Object(merged)
}

/// Shape (a) defines its request in the attributes; a params schema that also declares a
/// request field as a source connection param would ask users for a value no run reads.
fn warn_request_keys_in_schema(ctx: &mut Ctx, attributes: &Obj<'_>, schema: &Value) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for key in REQUEST_KEYS
        .iter()
        .filter(|key| properties.contains_key(**key) && attributes.has(key))
    {
        ctx.warn(
            &attributes.ptr_of(key),
            format!(
                "the params schema also declares {key} as a source connection param, but sourceSpec.attributes.{key} defines it here (shape a): runs use this value, not the source connection's"
            ),
        );
    }
}

/// The request definition: `urlParams`, `headerParams`, `bodyParams`, `contentPath`,
/// `explodeEntityPath`, `paginationParams`, `scheduleParams`.
pub(super) fn read_source_attributes(
    ctx: &mut Ctx,
    attributes: &Obj<'_>,
    auth_param_names: &[String],
    source_param_names: &[String],
    params_schema: Option<&Value>,
) -> Option<SourceSpec> {
    let n_errors_before = ctx.n_errors();
    let url_params = attributes
        .require(
            ctx,
            &["urlParams"],
            "the request URL parts (an object with path and method)",
        )
        .and_then(|node| ctx.object(&node, "urlParams"));
    let mut request = url_params
        .as_ref()
        .and_then(|url_params| read_url_params(ctx, url_params));
    // headerParams sits beside urlParams in the docs; some specs put it inside.
    let headers_node = attributes.get(ctx, &["headerParams"]).or_else(|| {
        url_params
            .as_ref()
            .and_then(|url_params| url_params.get(ctx, &["headerParams"]))
    });
    let headers = headers_node
        .map(|node| read_pairs(ctx, &node, "headerParams"))
        .unwrap_or(Some(Vec::new()));
    let body_node = attributes.get(ctx, &["bodyParams"]).or_else(|| {
        url_params
            .as_ref()
            .and_then(|url_params| url_params.get(ctx, &["bodyParams"]))
    });
    let body = body_node.map(|node| {
        let body = match node.value {
            // A body written as JSON text is parsed, so its strings can be templated.
            Value::String(text) => {
                serde_json::from_str::<Value>(text).unwrap_or_else(|_| node.value.clone())
            }
            other => other.clone(),
        };
        (JsonTemplate::new(body), node.ptr.clone())
    });

    let content = attributes
        .require(
            ctx,
            &["contentPath"],
            "the JSONPath of the records (a string such as \"$.items\" or an object with path)",
        )
        .and_then(|node| read_content_path(ctx, &node, "contentPath"));
    let explode = match attributes.get(ctx, &["explodeEntityPath"]) {
        Some(node) => read_content_path(ctx, &node, "explodeEntityPath").map(Some),
        None => Some(None),
    };
    let pagination = match attributes.get(ctx, &["paginationParams"]) {
        Some(node) => read_pagination(ctx, &node),
        None => {
            ctx.warn(
                &attributes.ptr_of("paginationParams"),
                "no paginationParams: every run makes a single request (type NONE)",
            );
            Some(Pagination::None {
                common: PagingCommon::default(),
            })
        }
    };
    let schedule = match attributes.get(ctx, &["scheduleParams"]) {
        Some(node) => read_schedule_params(ctx, &node).map(Some),
        None => Some(None),
    };

    if let (Some(request), Some(headers)) = (request.as_mut(), headers) {
        request.headers = headers;
        if let Some((body, ptr)) = &body {
            if request.method == HttpMethod::Get {
                ctx.warn(
                    ptr,
                    "bodyParams is sent only with POST, and urlParams.method is GET",
                );
            }
            request.body = Some(body.clone());
        }
    }
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    let (request, content, explode, pagination, schedule) =
        (request?, content?, explode?, pagination?, schedule?);
    let source = SourceSpec {
        request,
        content,
        explode,
        pagination,
        schedule,
        params_schema: params_schema.cloned(),
        record_schema: None,
    };
    check_templates(
        ctx,
        attributes,
        &source,
        auth_param_names,
        source_param_names,
        params_schema.is_some(),
    );
    (ctx.n_errors() == n_errors_before).then_some(source)
}

/// Checks the templates of a request: `@{...}` warns; `{SCHEDULE_QUERY}` needs ADVANCE;
/// `{START_TIME}`/`{END_TIME}` need a schedule; params not declared in any schema warn.
fn check_templates(
    ctx: &mut Ctx,
    attributes: &Obj<'_>,
    source: &SourceSpec,
    auth_param_names: &[String],
    source_param_names: &[String],
    has_source_schema: bool,
) {
    let url_ptr = attributes.ptr_of("urlParams");
    let mut templates: Vec<(String, &Template)> = Vec::new();
    if let Some(host) = &source.request.host {
        templates.push((format!("{url_ptr}/host"), host));
    }
    templates.push((format!("{url_ptr}/path"), &source.request.path));
    for (key, template) in &source.request.query {
        templates.push((
            crate::diag::child_pointer(&format!("{url_ptr}/queryParams"), key),
            template,
        ));
    }
    for (key, template) in &source.request.headers {
        templates.push((
            crate::diag::child_pointer(&attributes.ptr_of("headerParams"), key),
            template,
        ));
    }
    let body_templates = source
        .request
        .body
        .as_ref()
        .map(JsonTemplate::templates)
        .unwrap_or_default();
    for (ptr, template) in &body_templates {
        templates.push((
            format!("{}{ptr}", attributes.ptr_of("bodyParams")),
            template,
        ));
    }
    let schedule_ptr = attributes.ptr_of("scheduleParams");
    if let Some(ScheduleParams::Advance {
        incremental,
        backfill,
        ..
    }) = &source.schedule
    {
        templates.push((format!("{schedule_ptr}/incremental"), incremental));
        templates.push((format!("{schedule_ptr}/backfill"), backfill));
    }

    let is_advance = matches!(source.schedule, Some(ScheduleParams::Advance { .. }));
    for (ptr, template) in templates {
        for expression in template.opaque_expressions() {
            ctx.warn(&ptr, format!("{expression} is an Azure Data Factory expression we cannot execute; a run that needs this value fails"));
        }
        for reserved in template.reserved() {
            let is_schedule_field = ptr.starts_with(&schedule_ptr);
            match reserved {
                Reserved::ScheduleQuery if is_schedule_field => {
                    ctx.err(&ptr, "{SCHEDULE_QUERY} cannot be used inside the schedule expressions themselves");
                }
                Reserved::ScheduleQuery if !is_advance => {
                    ctx.err(
                        &ptr,
                        "{SCHEDULE_QUERY} needs scheduleParams with type ADVANCE, found none",
                    );
                }
                Reserved::StartTime | Reserved::EndTime if source.schedule.is_none() => {
                    ctx.err(
                        &ptr,
                        format!(
                            "{} needs scheduleParams, found none",
                            reserved.placeholder()
                        ),
                    );
                }
                _ => {}
            }
        }
        for name in template.params() {
            let root_name = name.split('.').next().unwrap_or(name);
            let declared = [name, root_name].iter().any(|candidate| {
                source_param_names.iter().any(|known| known == candidate)
                    || auth_param_names.iter().any(|known| known == candidate)
            });
            if !declared && (has_source_schema || !auth_param_names.is_empty()) {
                ctx.warn(&ptr, format!("placeholder {name} is not declared in sourceSpec.spec or any authSpec's properties; a run fails unless the source connection or the base connection gives it"));
            }
        }
    }
}
