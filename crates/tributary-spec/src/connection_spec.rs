//! Validation of connection specs (reference §1–§3): the top level and `exploreSpec` here;
//! `authSpec[]` in `auth`, `sourceSpec` (both shapes) in `source`, its request parts in
//! `url_params` and `content_path`, `paginationParams` in `pagination`, `scheduleParams` in
//! `schedule`.

mod auth;
mod content_path;
mod pagination;
mod schedule;
mod source;
mod url_params;

use serde_json::Value;

pub use auth::AUTH_TYPES;
pub use pagination::PAGINATION_TYPES;

use crate::json_path::JsonPath;
use crate::model::{
    ConnectionSpec, ContentPath, HttpMethod, Pagination, PagingCommon, RequestTemplate, SourceSpec,
};
use crate::raw::{Ctx, Node, Obj};
use crate::template::Template;

/// What a connection spec document turned out to be.
pub(crate) enum ConnectionSpecOutcome {
    Valid(Box<ConnectionSpec>),
    /// A generic-REST template: valid, but its request comes from the source connection.
    ShapeB(Box<ShapeBSpec>),
    Invalid,
}

/// A shape (b) spec; `template.source` is a placeholder replaced by `with_source`.
pub(crate) struct ShapeBSpec {
    pub(crate) template: ConnectionSpec,
}

/// What a `sourceSpec` turned out to be.
pub(super) enum SourceOutcome {
    Concrete(Box<SourceSpec>),
    ShapeB { params_schema: Option<Value> },
    Invalid,
}

/// Reads a connection spec document. Returns `Invalid` when it has errors (all recorded in `ctx`).
/// A shape (b) "generic REST" template has no request of its own; it is checked and then
/// reported through `ShapeB` so that a bundle can build the request from source params.
pub(crate) fn read_connection_spec(ctx: &mut Ctx, root: &Node<'_>) -> ConnectionSpecOutcome {
    let Some(obj) = ctx.object(root, "a connection spec") else {
        return ConnectionSpecOutcome::Invalid;
    };
    let n_errors_before = ctx.n_errors();
    let id = obj.opt_string(ctx, &["id"], "the spec id");
    let name = obj.req_string(ctx, &["name"], "the spec name");
    let kind = obj.opt_string(ctx, &["type"], "the spec type");
    let description = obj.opt_string(ctx, &["description"], "the description");
    let provider_id = obj.opt_string(ctx, &["providerId"], "the provider id");
    let version = match obj.get(ctx, &["version"]) {
        Some(node) => ctx.text_like(&node, "the spec version"),
        None => Some("1.0".to_owned()),
    };
    let auth_specs = match obj.require(ctx, &["authSpec"], "an array of auth specs") {
        Some(node) => auth::read_auth_specs(ctx, &node),
        None => None,
    };
    let explore = obj
        .get(ctx, &["exploreSpec"])
        .and_then(|node| read_explore_spec(ctx, &node));

    let auth_param_names: Vec<String> = auth_specs
        .iter()
        .flatten()
        .flat_map(|auth_spec| schema_property_names(&auth_spec.params_schema))
        .collect();
    let source = match obj.require(ctx, &["sourceSpec"], "the source spec (an object)") {
        Some(node) => source::read_source_spec_document(ctx, &node, &auth_param_names),
        None => SourceOutcome::Invalid,
    };
    if ctx.n_errors() > n_errors_before {
        return ConnectionSpecOutcome::Invalid;
    }
    let (Some(name), Some(version), Some(auth_specs)) = (name, version, auth_specs) else {
        return ConnectionSpecOutcome::Invalid;
    };
    let build = |source: SourceSpec| ConnectionSpec {
        id: id.clone(),
        name: name.clone(),
        kind: kind.clone(),
        description: description.clone(),
        provider_id: provider_id.clone(),
        version: version.clone(),
        auth_specs: auth_specs.clone(),
        source,
        explore: explore.clone(),
        raw: root.value.clone(),
    };
    match source {
        SourceOutcome::Concrete(source) => ConnectionSpecOutcome::Valid(Box::new(build(*source))),
        SourceOutcome::ShapeB { params_schema } => {
            ConnectionSpecOutcome::ShapeB(Box::new(ShapeBSpec {
                template: build(placeholder_source(params_schema)),
            }))
        }
        SourceOutcome::Invalid => ConnectionSpecOutcome::Invalid,
    }
}

impl ShapeBSpec {
    /// The spec with the request read from a source connection's params (which hold
    /// `urlParams`, `contentPath`, `paginationParams`, ... as the generic REST source defines).
    pub(crate) fn with_source(&self, ctx: &mut Ctx, params: &Node<'_>) -> Option<ConnectionSpec> {
        let auth_param_names: Vec<String> = self
            .template
            .auth_specs
            .iter()
            .flat_map(|auth_spec| schema_property_names(&auth_spec.params_schema))
            .collect();
        let obj = ctx.object(
            params,
            "the source connection params of a generic REST source",
        )?;
        let mut source = source::read_source_attributes(ctx, &obj, &auth_param_names, &[], None)?;
        source.params_schema = self.template.source.params_schema.clone();
        Some(ConnectionSpec {
            source,
            ..self.template.clone()
        })
    }
}

/// A request that is never used: shape (b) specs get their real one from `with_source`.
fn placeholder_source(params_schema: Option<Value>) -> SourceSpec {
    SourceSpec {
        request: RequestTemplate {
            host: None,
            path: Template::parse("/"),
            method: HttpMethod::Get,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        },
        content: ContentPath {
            path: JsonPath::parse("$").expect("\"$\" is a valid JSONPath"),
            keep: Vec::new(),
            skip: Vec::new(),
            wrapper: None,
        },
        explode: None,
        pagination: Pagination::None {
            common: PagingCommon::default(),
        },
        schedule: None,
        params_schema,
        record_schema: None,
    }
}

/// Property names declared by a JSON schema's `properties`.
pub(crate) fn schema_property_names(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

/// Light checks of a JSON schema used for params: `properties` an object, `required` names
/// that exist.
pub(super) fn check_schema_shape(ctx: &mut Ctx, schema: &Obj<'_>) {
    let properties = match schema.get(ctx, &["properties"]) {
        Some(node) => ctx
            .object(&node, "the schema properties")
            .map(|obj| obj.map),
        None => None,
    };
    if let Some(node) = schema.get(ctx, &["required"])
        && let Some(required) = ctx.string_list(&node, "the required properties")
    {
        for (idx, name) in required.iter().enumerate() {
            if properties.is_some_and(|props| !props.contains_key(name)) {
                ctx.warn(
                    &format!("{}/{idx}", node.ptr),
                    format!("required property {name} is not declared in properties"),
                );
            }
        }
    }
}

fn read_explore_spec(ctx: &mut Ctx, node: &Node<'_>) -> Option<Value> {
    let obj = ctx.object(node, "the explore spec")?;
    // The docs' responseSpec.$schema has a stray space ("http: //json-schema..."): tolerated, as
    // is any $schema text; only the shapes are checked.
    for key in ["requestSpec", "responseSpec"] {
        if let Some(child) = obj.get(ctx, &[key]) {
            ctx.object(&child, key)?;
        }
    }
    Some(node.value.clone())
}

#[cfg(test)]
mod tests;
