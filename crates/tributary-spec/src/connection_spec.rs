//! Validation of connection specs (reference §1–§3): top level, `authSpec[]`, `sourceSpec`
//! (both shapes), pagination with every alias, schedule params, `exploreSpec`.

use std::num::NonZeroU32;
use std::time::Duration;

use serde_json::Value;

use crate::date_format::DateFormat;
use crate::json_path::JsonPath;
use crate::model::{
    ApiKeyPlacement, AuthKind, AuthSpec, ConnectionSpec, ContentPath, EndCondition, EndPageIndex,
    HttpMethod, Pagination, PagingCommon, RequestTemplate, ScheduleParams, SourceSpec,
    TokenPlacement,
};
use crate::raw::{Ctx, Node, Obj, describe};
use crate::secrets;
use crate::template::{JsonTemplate, Reserved, Template};

/// Pagination types we know, as the spec spells them.
pub const PAGINATION_TYPES: [&str; 6] = [
    "OFFSET",
    "POINTER",
    "CONTINUATION_TOKEN",
    "PAGE",
    "NONE",
    "LINK",
];
/// Auth types we know.
pub const AUTH_TYPES: [&str; 3] = ["BasicAuthentication", "OAuth2RefreshCode", "KeyBased"];

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
/// Keys of `scheduleParams`, simple and ADVANCE.
const SCHEDULE_KEYS: [&str; 8] = [
    "type",
    "scheduleStartParamName",
    "scheduleEndParamName",
    "scheduleStartParamFormat",
    "scheduleEndParamFormat",
    "paramFormat",
    "incremental",
    "backfill",
];

/// Default date pattern of the simple schedule form when a format is absent.
const DEFAULT_SCHEDULE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";

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
enum SourceOutcome {
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
        Some(node) => read_auth_specs(ctx, &node),
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
        Some(node) => read_source_spec_document(ctx, &node, &auth_param_names),
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
        let mut source = read_source_attributes(ctx, &obj, &auth_param_names, &[], None)?;
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

fn read_auth_specs(ctx: &mut Ctx, node: &Node<'_>) -> Option<Vec<AuthSpec>> {
    let entries = ctx.array(node, "authSpec")?;
    if entries.is_empty() {
        ctx.err(
            &node.ptr,
            "expected at least one auth spec in authSpec, found an empty array",
        );
        return None;
    }
    let mut auth_specs = Vec::with_capacity(entries.len());
    let mut ok = true;
    for entry in &entries {
        match read_auth_spec(ctx, entry) {
            Some(auth_spec) => {
                if auth_specs
                    .iter()
                    .any(|seen: &AuthSpec| seen.name.eq_ignore_ascii_case(&auth_spec.name))
                {
                    ctx.err(
                        &format!("{}/name", entry.ptr),
                        format!("duplicate auth spec name {:?}", auth_spec.name),
                    );
                    ok = false;
                }
                auth_specs.push(auth_spec);
            }
            None => ok = false,
        }
    }
    ok.then_some(auth_specs)
}

fn read_auth_spec(ctx: &mut Ctx, node: &Node<'_>) -> Option<AuthSpec> {
    let obj = ctx.object(node, "an auth spec")?;
    let name = obj.req_string(ctx, &["name"], "the auth spec name");
    let type_name = obj.req_string(ctx, &["type"], "the auth type");
    let schema = obj.require(
        ctx,
        &["spec"],
        "the JSON schema of the auth params (an object)",
    );
    let schema = schema.and_then(|schema| {
        let schema_obj = ctx.object(&schema, "the JSON schema of the auth params")?;
        check_schema_shape(ctx, &schema_obj);
        Some(schema)
    });
    let kind = type_name.as_deref().and_then(|type_name| {
        let normalised = type_name.to_ascii_lowercase().replace(['_', '-', ' '], "");
        match normalised.as_str() {
            "basicauthentication" | "basic" => Some(AuthKind::Basic),
            "oauth2refreshcode" | "oauth2" => Some(AuthKind::OAuth2RefreshCode),
            "keybased" | "apikey" | "apikeyauthentication" => {
                Some(AuthKind::KeyBased { keys: Vec::new() })
            }
            _ => {
                ctx.err(
                    &obj.ptr_of("type"),
                    format!(
                        "unknown auth type {type_name:?}; expected one of {}",
                        AUTH_TYPES.join(", ")
                    ),
                );
                None
            }
        }
    });
    let (name, type_name, kind, schema) = (name?, type_name?, kind?, schema?);
    let kind = match kind {
        AuthKind::KeyBased { .. } => AuthKind::KeyBased {
            keys: api_keys(ctx, &obj, &schema)?,
        },
        other => other,
    };
    let mut auth_spec = AuthSpec {
        name,
        type_name,
        kind,
        params_schema: schema.value.clone(),
        secret_fields: Vec::new(),
    };
    auth_spec.secret_fields = secrets::secret_fields(&auth_spec);
    Some(auth_spec)
}

/// The key properties of a KeyBased spec: those with `restAttributes.headerParamName` and those
/// named `authKeyN`; the header defaults to the property name.
fn api_keys(ctx: &mut Ctx, auth: &Obj<'_>, schema: &Node<'_>) -> Option<Vec<ApiKeyPlacement>> {
    let properties = schema.value.get("properties").and_then(Value::as_object);
    let spec_level = auth.map.get("restAttributes").and_then(Value::as_object);
    let mut keys = Vec::new();
    for (property, definition) in properties.into_iter().flatten() {
        let header = definition
            .get("restAttributes")
            .and_then(|attributes| attributes.get("headerParamName"))
            .or_else(|| {
                spec_level
                    .and_then(|attrs| attrs.get(property))
                    .and_then(|attrs| attrs.get("headerParamName"))
            });
        let is_key_name = property
            .strip_prefix("authKey")
            .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()));
        match header {
            Some(Value::String(header_name)) if !header_name.trim().is_empty() => {
                keys.push(ApiKeyPlacement {
                    property: property.clone(),
                    header_name: header_name.clone(),
                });
            }
            Some(other) => {
                let ptr = format!(
                    "{}/properties/{}/restAttributes/headerParamName",
                    schema.ptr, property
                );
                ctx.err(
                    &ptr,
                    format!(
                        "expected the header name of key {property} (a non-empty string), found {}",
                        describe(other)
                    ),
                );
                return None;
            }
            None if is_key_name => {
                keys.push(ApiKeyPlacement {
                    property: property.clone(),
                    header_name: property.clone(),
                });
            }
            None => {}
        }
    }
    if keys.is_empty() {
        ctx.err(
            &format!("{}/properties", schema.ptr),
            "expected at least one API key property (authKey1, ... or a property with restAttributes.headerParamName) for auth type KeyBased, found none",
        );
        return None;
    }
    Some(keys)
}

/// Light checks of a JSON schema used for params: `properties` an object, `required` names
/// that exist.
fn check_schema_shape(ctx: &mut Ctx, schema: &Obj<'_>) {
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

/// `sourceSpec`: shape (a) (`attributes.urlParams`, ...) or shape (b) (a schema description
/// under `attributes.spec.properties`).
fn read_source_spec_document(
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
fn read_source_attributes(
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

fn read_url_params(ctx: &mut Ctx, url_params: &Obj<'_>) -> Option<RequestTemplate> {
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
fn read_pairs(ctx: &mut Ctx, node: &Node<'_>, what: &str) -> Option<Vec<(String, Template)>> {
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

/// `contentPath` / `explodeEntityPath`: a JSONPath string or `{path, skipAttributes,
/// keepAttributes, overrideWrapperAttribute}`.
fn read_content_path(ctx: &mut Ctx, node: &Node<'_>, what: &str) -> Option<ContentPath> {
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

fn read_json_path(ctx: &mut Ctx, node: &Node<'_>, what: &str) -> Option<JsonPath> {
    let text = ctx.non_empty_string(node, what)?;
    JsonPath::parse(&text)
        .map_err(|message| ctx.err(&node.ptr, message))
        .ok()
}

fn read_pagination(ctx: &mut Ctx, node: &Node<'_>) -> Option<Pagination> {
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

fn read_schedule_params(ctx: &mut Ctx, node: &Node<'_>) -> Option<ScheduleParams> {
    let obj = ctx.object(node, "scheduleParams")?;
    obj.warn_unknown_keys(ctx, &SCHEDULE_KEYS, "scheduleParams");
    let is_advance = match obj.get(ctx, &["type"]) {
        Some(type_node) => match ctx.string(&type_node, "the schedule type")? {
            text if text.eq_ignore_ascii_case("advance") => true,
            text if text.eq_ignore_ascii_case("simple") || text.is_empty() => false,
            text => {
                ctx.err(&type_node.ptr, format!("unknown schedule type {text:?}; expected ADVANCE, or no type for the simple form"));
                return None;
            }
        },
        None => false,
    };
    let format = |ctx: &mut Ctx, names: &[&str], required: bool| -> Option<DateFormat> {
        let node = if required {
            obj.require(
                ctx,
                names,
                "a date pattern such as \"yyyy-MM-dd'T'HH:mm:ssZ\"",
            )?
        } else {
            match obj.get(ctx, names) {
                Some(node) => node,
                None => return DateFormat::parse(DEFAULT_SCHEDULE_FORMAT).ok(),
            }
        };
        let pattern = ctx.non_empty_string(&node, "a date pattern")?;
        DateFormat::parse(&pattern)
            .map_err(|message| ctx.err(&node.ptr, message))
            .ok()
    };
    if is_advance {
        let param_format = format(ctx, &["paramFormat"], true);
        let incremental = obj.req_string(ctx, &["incremental"], "the incremental query expression");
        let backfill = obj.req_string(ctx, &["backfill"], "the backfill query expression");
        let (param_format, incremental, backfill) = (param_format?, incremental?, backfill?);
        let backfill = Template::parse(&backfill);
        if backfill
            .reserved()
            .any(|reserved| reserved == Reserved::StartTime)
        {
            ctx.err(
                &obj.ptr_of("backfill"),
                "the backfill expression uses {START_TIME}, but a backfill run has no window start",
            );
            return None;
        }
        return Some(ScheduleParams::Advance {
            format: param_format,
            incremental: Template::parse(&incremental),
            backfill,
        });
    }
    let start_param = obj.req_string(
        ctx,
        &["scheduleStartParamName"],
        "the query parameter of the window start",
    );
    let end_param = obj.req_string(
        ctx,
        &["scheduleEndParamName"],
        "the query parameter of the window end",
    );
    let start_format = format(ctx, &["scheduleStartParamFormat"], false);
    let end_format = format(ctx, &["scheduleEndParamFormat"], false);
    Some(ScheduleParams::Simple {
        start_param: start_param?,
        end_param: end_param?,
        start_format: start_format?,
        end_format: end_format?,
    })
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

#[cfg(test)]
mod tests;
