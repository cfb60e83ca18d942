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

/// `sourceSpec`: shape (a) (`attributes.urlParams`, ...) or shape (b) (a schema description
/// under `attributes.spec.properties`).
pub(super) fn read_source_spec_document(
    ctx: &mut Ctx,
    node: &Node<'_>,
    auth_param_names: &[String],
) -> SourceOutcome {
    let Some(obj) = ctx.object(node, "the source spec") else {
        return SourceOutcome::Invalid;
    };
    let params_schema = match obj.get(ctx, &["spec"]) {
        Some(spec) => match ctx.object(
            &spec,
            "the JSON schema of the source connection params (sourceSpec.spec)",
        ) {
            Some(spec_obj) => {
                check_schema_shape(ctx, &spec_obj);
                Some(spec.value.clone())
            }
            // Keep going: the attributes' problems are reported in the same pass.
            None => None,
        },
        None => None,
    };
    let Some(attributes_node) = obj.require(
        ctx,
        &["attributes"],
        "the request definition (an object with urlParams, contentPath, paginationParams)",
    ) else {
        return SourceOutcome::Invalid;
    };
    let Some(attributes) = ctx.object(&attributes_node, "sourceSpec.attributes") else {
        return SourceOutcome::Invalid;
    };
    let is_shape_b = !attributes.has("urlParams")
        && attributes
            .map
            .get("spec")
            .and_then(|spec| spec.get("properties"))
            .and_then(|props| props.get("urlParams"))
            .is_some();
    if is_shape_b {
        // The generic REST template: the user supplies urlParams etc. in the source connection.
        return SourceOutcome::ShapeB { params_schema };
    }
    attributes.warn_unknown_keys(ctx, &ATTRIBUTE_KEYS, "sourceSpec.attributes");
    let source_param_names = params_schema
        .as_ref()
        .map(schema_property_names)
        .unwrap_or_default();
    let record_schema_node = attributes
        .get(ctx, &["schema"])
        .or_else(|| obj.get(ctx, &["schema"]));
    let record_schema = match record_schema_node {
        Some(schema) => match ctx.object(&schema, "the custom record schema") {
            Some(_) => Some(schema.value.clone()),
            None => return SourceOutcome::Invalid,
        },
        None => None,
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
