//! Validation of flow bundles (DESIGN.md): one file = one dataflow. The connection spec and the
//! mapping set may be inline, `{"path": ...}` (relative to the bundle) or `{"id": ...}`; the
//! caller loads referenced documents through a closure, since this crate does no IO.
//!
//! Cross-checks: the base connection's `specName` against the spec's authSpecs, auth params
//! against that authSpec's schema, source params against `sourceSpec.spec`, every placeholder
//! of the request against the params that will be there at run time, and the schedule against
//! the spec's `scheduleParams`.
//!
//! A spec that is Adobe's generic REST template (shape b) has no request: the bundle's
//! source params hold it (`urlParams`, `contentPath`, `paginationParams`, `scheduleParams`, ...),
//! read with the same rules as a shape (a) spec's attributes, each problem pointing into
//! `/sourceConnection/params`.

use serde_json::Value;

use crate::connection_spec::{ConnectionSpecOutcome, GenericRestTemplate, read_connection_spec};
use crate::connections::{self, check_base_against_spec, check_source_against_spec};
use crate::document::DocumentKind;
use crate::flow::{read_flow_options, read_flow_schedule};
use crate::mapping::read_mapping_set;
use crate::model::{
    ConnectionSpec, FlowBundle, FlowOptions, MappingSet, ScheduleParams, SpecRef, TargetConnection,
};
use crate::raw::{Ctx, Node};
use crate::template::{Reserved, Template};

/// How references are handled: at validate time an `{"id"}` nobody can load is only a warning
/// and unset `${env:X}` variables are warnings; at load time both are the caller's business.
/// An environment lookup (`${env:NAME}`).
pub(crate) type EnvLookup<'r> = &'r dyn Fn(&str) -> Option<String>;

pub(crate) struct BundleMode<'r> {
    pub(crate) resolve: &'r dyn Fn(DocumentKind, &SpecRef) -> Result<String, String>,
    pub(crate) env: Option<EnvLookup<'r>>,
    pub(crate) ids_are_optional: bool,
}

pub(crate) fn read_bundle(
    ctx: &mut Ctx,
    root: &Node<'_>,
    mode: &BundleMode<'_>,
) -> Option<FlowBundle> {
    let obj = ctx.object(root, "a flow bundle")?;
    obj.warn_unknown_keys(
        ctx,
        &[
            "name",
            "description",
            "connectionSpec",
            "baseConnection",
            "sourceConnection",
            "targetConnection",
            "mappingSet",
            "flow",
        ],
        "a flow bundle",
    );
    let n_errors_before = ctx.n_errors();
    let name = obj.req_string(ctx, &["name"], "the flow name");

    let spec_node = obj.require(
        ctx,
        &["connectionSpec"],
        "the connection spec: inline, {\"path\": ...} or {\"id\": ...}",
    );
    let (spec_ref, spec_outcome) = match &spec_node {
        Some(spec_node) => load_connection_spec(ctx, spec_node, mode),
        None => (None, None),
    };
    let mut base = obj
        .require(
            ctx,
            &["baseConnection"],
            "the base connection {auth: {specName, params}}",
        )
        .and_then(|node| connections::read_base_connection(ctx, &node));
    let source = match obj.get(ctx, &["sourceConnection"]) {
        Some(node) => connections::read_source_connection(ctx, &node),
        None => Some(connections::SourceRead {
            source: crate::model::SourceConnection {
                name: None,
                params: serde_json::Map::new(),
            },
            params_ptr: obj.ptr_of("sourceConnection") + "/params",
        }),
    };
    let target = obj
        .require(
            ctx,
            &["targetConnection"],
            "the target connection {params: {dataSetId}}",
        )
        .and_then(|node| connections::read_target_connection(ctx, &node));
    let mapping = match obj.get(ctx, &["mappingSet"]) {
        Some(node) => load_mapping_set(ctx, &node, mode).map(Some),
        None => Some(None),
    };
    let (schedule, options) = match obj
        .get(ctx, &["flow"])
        .and_then(|node| ctx.object(&node, "the flow settings"))
    {
        Some(flow) => {
            flow.warn_unknown_keys(
                ctx,
                &["name", "description", "scheduleParams", "options"],
                "the flow settings",
            );
            let schedule = match flow.get(ctx, &["scheduleParams"]) {
                Some(node) => read_flow_schedule(ctx, &node).map(Some),
                None => Some(None),
            };
            let options = match flow.get(ctx, &["options"]) {
                Some(node) => read_flow_options(ctx, &node),
                None => Some(FlowOptions::default()),
            };
            (schedule, options)
        }
        None => (Some(None), Some(FlowOptions::default())),
    };

    if let (Some(target), Some(Some(mapping_set))) = (&target, &mapping) {
        check_mapping_output_schema(ctx, &obj.ptr_of("targetConnection"), target, mapping_set);
    }
    if let Some(env) = mode.env {
        warn_unset_env(ctx, root.value, &root.ptr, env);
    }

    // Cross-checks need the spec. A generic REST template (shape b) becomes one with the
    // request its source connection's params define.
    let is_template = matches!(spec_outcome, Some(ConnectionSpecOutcome::Template(_)));
    let connection_spec = match (spec_outcome, &source) {
        (Some(ConnectionSpecOutcome::Valid(spec)), _) => Some(*spec),
        (Some(ConnectionSpecOutcome::Template(template)), Some(source)) => {
            spec_from_template(ctx, &template, source)
        }
        _ => None,
    };
    let mut auth_spec = None;
    if let Some(spec) = &connection_spec {
        if let Some(base) = base.as_mut() {
            auth_spec = check_base_against_spec(ctx, base, spec);
        }
        // A template's params were checked against its schema while building the spec.
        if let Some(source) = &source
            && !is_template
        {
            check_source_against_spec(ctx, source, spec);
        }
        if let (Some(base), Some(source), Some(_)) = (&base, &source, &auth_spec) {
            check_placeholders(ctx, spec, base, source);
        }
        if let Some(Some(flow_schedule)) = &schedule
            && flow_schedule.frequency != crate::model::Frequency::Once
            && spec.source.schedule.is_none()
        {
            ctx.warn(&format!("{}/scheduleParams", obj.ptr_of("flow")), "the flow is scheduled but the connection spec has no scheduleParams: every run fetches everything");
        }
        let uses_schedule_query = request_templates(spec)
            .iter()
            .any(|template| template.reserved().any(|r| r == Reserved::ScheduleQuery));
        if uses_schedule_query && matches!(schedule, Some(None)) {
            ctx.warn(&obj.ptr_of("flow"), "the connection spec uses {SCHEDULE_QUERY} but the flow has no scheduleParams: a run needs an explicit window");
        }
    }

    if ctx.n_errors() > n_errors_before {
        return None;
    }
    Some(FlowBundle {
        name: name?,
        connection_spec_ref: spec_ref?,
        connection_spec: connection_spec?,
        auth_spec: auth_spec?,
        base: base?.base,
        source: source?.source,
        target: target?,
        mapping: mapping?,
        schedule: schedule?,
        options: options?,
    })
}

/// The connection spec of a flow on a generic REST template: the request read from the source
/// params, which are also checked against the template's schema. A schema problem at a field
/// whose value the request reader already refused (or inside it) is left out: the reader's
/// message says the same, with what we accept.
fn spec_from_template(
    ctx: &mut Ctx,
    template: &GenericRestTemplate,
    source: &connections::SourceRead,
) -> Option<ConnectionSpec> {
    let params = Value::Object(source.source.params.clone());
    let n_before = ctx.diags.len();
    let spec = template.with_source(
        ctx,
        &Node {
            value: &params,
            ptr: source.params_ptr.clone(),
        },
    );
    let refused: Vec<String> = ctx
        .diags
        .iter()
        .skip(n_before)
        .filter(|diag| diag.severity == crate::diag::Severity::Error)
        .map(|diag| diag.pointer.clone())
        .collect();
    let mut schema_ctx = Ctx::new(&ctx.file);
    connections::check_source_params(
        &mut schema_ctx,
        source,
        template.params_schema(),
        "the generic REST template",
    );
    for diag in schema_ctx.diags {
        let is_repeat = refused.iter().any(|ptr| {
            diag.pointer == *ptr
                || diag
                    .pointer
                    .strip_prefix(ptr.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if !is_repeat {
            ctx.diags.push(diag);
        }
    }
    spec
}

/// A mapping set maps into the dataset's schema: its output schema (`outputSchema.schemaRef.id`
/// or legacy `xdmSchema`) must be the target's `data.schema.id` (reference §9, Flow Service
/// error 1425). Compared when both are `$id` URLs: a `meta:altId` names the same schema in
/// another form, which only the schema registry can translate.
fn check_mapping_output_schema(
    ctx: &mut Ctx,
    target_ptr: &str,
    target: &TargetConnection,
    mapping_set: &MappingSet,
) {
    let (Some(dataset_schema), Some(output_schema)) =
        (&target.schema_id, &mapping_set.output_schema_id)
    else {
        return;
    };
    let is_url = |id: &str| id.contains("://");
    if is_url(dataset_schema) && is_url(output_schema) && dataset_schema != output_schema {
        ctx.err(
            &format!("{target_ptr}/data/schema/id"),
            format!(
                "the dataset's schema {dataset_schema:?} is not the mapping set's output schema {output_schema:?}: a mapping set maps into the dataset's schema, so both must name the same schema (Flow Service error 1425)"
            ),
        );
    }
}

/// `{"path"}` / `{"id"}` / inline, as a `SpecRef`; `None` (with an error) for a bad reference.
fn spec_ref_of(
    ctx: &mut Ctx,
    node: &Node<'_>,
    what: &str,
    inline_keys: &[&str],
) -> Option<SpecRef> {
    let obj = ctx.object(node, what)?;
    let is_inline = inline_keys.iter().any(|key| obj.has(key));
    if is_inline {
        return Some(SpecRef::Inline(node.value.clone()));
    }
    if let Some(path) = obj.get(ctx, &["path"]) {
        return ctx
            .non_empty_string(&path, "the path of the referenced file")
            .map(SpecRef::Path);
    }
    if let Some(id) = obj.get(ctx, &["id"]) {
        return ctx
            .non_empty_string(&id, "the id of the registered document")
            .map(SpecRef::Id);
    }
    ctx.err(&node.ptr, format!("expected {what}: inline (with {}), {{\"path\": ...}} or {{\"id\": ...}}, found an object with keys {}", inline_keys.join(", "), key_list(obj.map)));
    None
}

fn key_list(map: &serde_json::Map<String, Value>) -> String {
    if map.is_empty() {
        return "(none)".to_owned();
    }
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_connection_spec(
    ctx: &mut Ctx,
    node: &Node<'_>,
    mode: &BundleMode<'_>,
) -> (Option<SpecRef>, Option<ConnectionSpecOutcome>) {
    let Some(spec_ref) = spec_ref_of(
        ctx,
        node,
        "the connection spec",
        &["authSpec", "sourceSpec"],
    ) else {
        return (None, None);
    };
    let outcome = match &spec_ref {
        SpecRef::Inline(_) => Some(read_connection_spec(ctx, node)),
        reference => with_referenced(
            ctx,
            node,
            reference,
            DocumentKind::ConnectionSpec,
            mode,
            read_connection_spec,
        ),
    };
    (Some(spec_ref), outcome)
}

fn load_mapping_set(ctx: &mut Ctx, node: &Node<'_>, mode: &BundleMode<'_>) -> Option<MappingSet> {
    let spec_ref = spec_ref_of(ctx, node, "the mapping set", &["mappings"])?;
    match &spec_ref {
        SpecRef::Inline(_) => read_mapping_set(ctx, node),
        reference => with_referenced(
            ctx,
            node,
            reference,
            DocumentKind::MappingSet,
            mode,
            read_mapping_set,
        )?,
    }
}

/// Loads a referenced document through the resolver and reads it in its own file context;
/// its diagnostics carry its own file label. `None` when it could not be loaded.
fn with_referenced<T>(
    ctx: &mut Ctx,
    node: &Node<'_>,
    reference: &SpecRef,
    kind: DocumentKind,
    mode: &BundleMode<'_>,
    read: impl Fn(&mut Ctx, &Node<'_>) -> T,
) -> Option<T> {
    let (label, ref_ptr) = match reference {
        SpecRef::Path(path) => (
            referenced_label(&ctx.file, path),
            format!("{}/path", node.ptr),
        ),
        SpecRef::Id(id) => (format!("{} {id}", kind.label()), format!("{}/id", node.ptr)),
        SpecRef::Inline(_) => (ctx.file.clone(), node.ptr.clone()),
    };
    let text = match (mode.resolve)(kind, reference) {
        Ok(text) => text,
        Err(message) if matches!(reference, SpecRef::Id(_)) && mode.ids_are_optional => {
            ctx.warn(&ref_ptr, format!("{label} is not checked here: {message}"));
            return None;
        }
        Err(message) => {
            ctx.err(&ref_ptr, format!("cannot load {label}: {message}"));
            return None;
        }
    };
    let mut inner = Ctx::new(&label);
    let value = match crate::document::parse_json(&label, &text) {
        Ok(value) => value,
        Err(diag) => {
            ctx.diags.push(diag);
            // The bundle's reference is what the user must look at too.
            ctx.err(&ref_ptr, format!("{label} is not valid JSON"));
            return None;
        }
    };
    let result = read(&mut inner, &Node::root(&value));
    let failed = inner.diags.has_errors();
    ctx.diags.extend(std::mem::take(&mut inner.diags));
    if failed {
        ctx.err(&ref_ptr, format!("{label} has errors (reported above)"));
        return None;
    }
    Some(result)
}

/// `dir(bundle)/path`, textually (no IO); `./` and `../` are folded where possible.
fn referenced_label(bundle_label: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    let mut parts: Vec<&str> = bundle_label.split('/').collect();
    parts.pop();
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." if parts
                .last()
                .is_some_and(|last| *last != ".." && !last.is_empty()) =>
            {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Every template of the spec's request (and ADVANCE expressions).
fn request_templates(spec: &ConnectionSpec) -> Vec<Template> {
    let request = &spec.source.request;
    let mut templates: Vec<Template> = Vec::new();
    templates.extend(request.host.iter().cloned());
    templates.push(request.path.clone());
    templates.extend(request.query.iter().map(|(_, template)| template.clone()));
    templates.extend(request.headers.iter().map(|(_, template)| template.clone()));
    if let Some(body) = &request.body {
        templates.extend(body.templates().into_iter().map(|(_, template)| template));
    }
    if let Some(ScheduleParams::Advance {
        incremental,
        backfill,
        ..
    }) = &spec.source.schedule
    {
        templates.push(incremental.clone());
        templates.push(backfill.clone());
    }
    templates
}

/// Every param placeholder of the request must be given by the source or the base connection.
fn check_placeholders(
    ctx: &mut Ctx,
    spec: &ConnectionSpec,
    base: &connections::BaseRead,
    source: &connections::SourceRead,
) {
    let mut reported: Vec<String> = Vec::new();
    for template in request_templates(spec) {
        for name in template.params() {
            let root_name = name.split('.').next().unwrap_or(name);
            let is_given = [name, root_name].iter().any(|candidate| {
                source.source.params.contains_key(*candidate)
                    || base.base.params.contains_key(*candidate)
            });
            if is_given || reported.iter().any(|seen| seen == name) {
                continue;
            }
            reported.push(name.to_owned());
            ctx.err(
                &crate::diag::child_pointer(&source.params_ptr, name),
                format!(
                    "missing param {name}: the connection spec's request uses it in {:?}; give it in sourceConnection.params or baseConnection.auth.params",
                    template.as_str()
                ),
            );
        }
    }
    if spec.source.request.host.is_none() && !base.base.params.contains_key("host") {
        ctx.err(
            &crate::diag::child_pointer(&base.params_ptr, "host"),
            "missing auth param host: the connection spec has no urlParams.host, so the base URL must come from the auth params",
        );
    }
}

/// Warns about `${env:X}` references whose variable is not set now (an error at run time).
fn warn_unset_env(ctx: &mut Ctx, value: &Value, ptr: &str, env: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(text) => {
            for name in Template::parse(text).env_vars() {
                if env(name).is_none() {
                    ctx.warn(
                        ptr,
                        format!(
                            "environment variable {name} is not set; a run fails unless it is set"
                        ),
                    );
                }
            }
        }
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                warn_unset_env(ctx, item, &format!("{ptr}/{idx}"), env);
            }
        }
        Value::Object(map) => {
            // An inline connection spec's templates are not credentials; still worth a warning.
            for (key, item) in map {
                warn_unset_env(ctx, item, &crate::diag::child_pointer(ptr, key), env);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
