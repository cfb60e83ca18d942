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

use crate::model::{AuthSpec, ConnectionSpec, SourceSpec};
use crate::raw::{Ctx, Node, Obj};

/// What a connection spec document turned out to be.
pub(crate) enum ConnectionSpecOutcome {
    /// Shape (a): the spec defines its request.
    Valid(Box<ConnectionSpec>),
    /// Shape (b), a generic REST template: valid, but its request comes from the params of each
    /// source connection, so it only becomes a [`ConnectionSpec`] through
    /// [`GenericRestTemplate::with_source`].
    Template(Box<GenericRestTemplate>),
    Invalid,
}

/// A validated shape (b) connection spec: everything but the request.
pub(crate) struct GenericRestTemplate {
    header: SpecHeader,
    /// The JSON schema of the source connection params; it declares `urlParams`, ...
    params_schema: Value,
    /// The pointer of the schema's `properties/urlParams`, for messages.
    pub(crate) declared_at: String,
}

/// The parts of a connection spec that do not depend on its shape.
#[derive(Clone)]
struct SpecHeader {
    id: Option<String>,
    name: String,
    kind: Option<String>,
    description: Option<String>,
    provider_id: Option<String>,
    version: String,
    auth_specs: Vec<AuthSpec>,
    explore: Option<Value>,
    raw: Value,
}

/// What a `sourceSpec` turned out to be.
pub(super) enum SourceOutcome {
    Concrete(Box<SourceSpec>),
    /// Shape (b): `params_schema` (`sourceSpec.spec` and/or `sourceSpec.attributes.spec`)
    /// declares `urlParams` at `declared_at`, and the attributes hold no request.
    Template {
        params_schema: Value,
        declared_at: String,
    },
    Invalid,
}

/// Reads a connection spec document. Returns `Invalid` when it has errors (all recorded in `ctx`).
/// A shape (b) "generic REST" template has no request of its own; it is checked and then
/// reported as a `Template`, from which a bundle builds the request out of source params.
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
    let header = SpecHeader {
        id,
        name,
        kind,
        description,
        provider_id,
        version,
        auth_specs,
        explore,
        raw: root.value.clone(),
    };
    match source {
        SourceOutcome::Concrete(source) => {
            ConnectionSpecOutcome::Valid(Box::new(header.with_source(*source)))
        }
        SourceOutcome::Template {
            params_schema,
            declared_at,
        } => ConnectionSpecOutcome::Template(Box::new(GenericRestTemplate {
            header,
            params_schema,
            declared_at,
        })),
        SourceOutcome::Invalid => ConnectionSpecOutcome::Invalid,
    }
}

impl GenericRestTemplate {
    /// The spec with the request read from a source connection's params, which hold
    /// `urlParams`, `headerParams`, `bodyParams`, `contentPath`, `explodeEntityPath`,
    /// `paginationParams`, `scheduleParams` and `schema` exactly as shape (a) holds them in
    /// `sourceSpec.attributes`, read by the same code: every problem is reported under `params`.
    pub(crate) fn with_source(&self, ctx: &mut Ctx, params: &Node<'_>) -> Option<ConnectionSpec> {
        let auth_param_names: Vec<String> = self
            .header
            .auth_specs
            .iter()
            .flat_map(|auth_spec| schema_property_names(&auth_spec.params_schema))
            .collect();
        let source_param_names = schema_property_names(&self.params_schema);
        let obj = ctx.object(
            params,
            "the source connection params of a generic REST source (an object with urlParams, contentPath, paginationParams, scheduleParams)",
        )?;
        let n_errors_before = ctx.n_errors();
        let record_schema = source::read_record_schema(ctx, &obj);
        let source = source::read_source_attributes(
            ctx,
            &obj,
            &auth_param_names,
            &source_param_names,
            Some(&self.params_schema),
        );
        if ctx.n_errors() > n_errors_before {
            return None;
        }
        let mut source = source?;
        source.record_schema = record_schema?;
        Some(self.header.clone().with_source(source))
    }

    /// The JSON schema the source connection's params must satisfy.
    pub(crate) fn params_schema(&self) -> &Value {
        &self.params_schema
    }
}

impl SpecHeader {
    fn with_source(self, source: SourceSpec) -> ConnectionSpec {
        ConnectionSpec {
            id: self.id,
            name: self.name,
            kind: self.kind,
            description: self.description,
            provider_id: self.provider_id,
            version: self.version,
            auth_specs: self.auth_specs,
            source,
            explore: self.explore,
            raw: self.raw,
        }
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
