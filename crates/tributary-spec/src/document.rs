//! Entry points: parse a document's text, work out what kind of document it is, validate it
//! (`validate_document`, used by `tributary spec validate`), or load it into a typed value
//! (`parse_connection_spec`, `load_bundle`, `*_from_value`).

use std::fmt;

use serde_json::Value;

use crate::bundle::{BundleMode, read_bundle};
use crate::connection_spec::{ConnectionSpecOutcome, read_connection_spec};
use crate::connections::{self, check_base_against_spec, check_source_against_spec};
use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::error::SpecError;
use crate::flow::{read_flow, read_flow_schedule, read_flow_spec};
use crate::mapping::read_mapping_set;
use crate::model::{
    AuthSpec, BaseConnection, ConnectionSpec, Flow, FlowBundle, FlowSchedule, FlowSpec, MappingSet,
    SourceConnection, SpecRef, TargetConnection,
};
use crate::raw::{Ctx, Node};

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    ConnectionSpec,
    FlowSpec,
    MappingSet,
    FlowBundle,
    Flow,
    BaseConnection,
    SourceConnection,
    TargetConnection,
    /// A JSON schema document (e.g. a dataset's target schema referenced by id).
    JsonSchema,
}

/// The outcome of validating one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The label the caller gave (usually the path as typed).
    pub file: String,
    /// What the document was taken for; `None` when it is not JSON or of no known kind.
    pub kind: Option<DocumentKind>,
    /// Errors and warnings, in the order found; those of referenced files carry their label.
    pub diagnostics: Diagnostics,
}

impl DocumentKind {
    /// A human name: "connection spec", "flow bundle", ...
    pub fn label(self) -> &'static str {
        match self {
            DocumentKind::ConnectionSpec => "connection spec",
            DocumentKind::FlowSpec => "flow spec",
            DocumentKind::MappingSet => "mapping set",
            DocumentKind::FlowBundle => "flow bundle",
            DocumentKind::Flow => "flow",
            DocumentKind::BaseConnection => "base connection",
            DocumentKind::SourceConnection => "source connection",
            DocumentKind::TargetConnection => "target connection",
            DocumentKind::JsonSchema => "JSON schema",
        }
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl Report {
    /// True when there is no error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.has_errors()
    }

    /// One line per diagnostic: `FILE: /json/pointer: message` (`warning: ` before warnings).
    pub fn lines(&self) -> Vec<String> {
        self.diagnostics.iter().map(ToString::to_string).collect()
    }
}

/// Works out the kind of a document from its keys.
pub fn detect_kind(value: &Value) -> Option<DocumentKind> {
    let map = value.as_object()?;
    let has = |key: &str| map.contains_key(key);
    let kind = if has("baseConnection")
        || has("sourceConnection")
        || has("targetConnection")
        || has("mappingSet")
    {
        DocumentKind::FlowBundle
    } else if has("authSpec") || has("sourceSpec") {
        DocumentKind::ConnectionSpec
    } else if has("sourceConnectionSpecIds")
        || has("targetConnectionSpecIds")
        || has("transformationSpecs")
        || has("transformationSpec")
        || has("scheduleSpec")
    {
        DocumentKind::FlowSpec
    } else if has("flowSpec") || has("sourceConnectionIds") || has("targetConnectionIds") {
        DocumentKind::Flow
    } else if has("mappings") {
        DocumentKind::MappingSet
    } else if has("auth") {
        DocumentKind::BaseConnection
    } else if map
        .get("params")
        .and_then(|params| params.get("dataSetId"))
        .is_some()
    {
        DocumentKind::TargetConnection
    } else if has("baseConnectionId") || has("params") {
        DocumentKind::SourceConnection
    } else if has("connectionSpec") {
        DocumentKind::FlowBundle
    } else if has("$schema") || (has("properties") && has("type")) {
        DocumentKind::JsonSchema
    } else {
        return None;
    };
    Some(kind)
}

/// Parses JSON text; a syntax error says line and column.
pub fn parse_document(file_label: &str, text: &str) -> Result<Value, SpecError> {
    serde_json::from_str::<Value>(text).map_err(|err| SpecError::Json {
        file: file_label.to_owned(),
        line: err.line(),
        column: err.column(),
        message: json_error_message(&err),
    })
}

/// Validates any document; `{"path": ...}` references of a bundle are read through
/// `resolve_path` (it receives the path as written, relative to the bundle). `${env:X}` with X
/// unset is a warning here (an error at run time); `{"id": ...}` references are warnings.
pub fn validate_document(
    file_label: &str,
    text: &str,
    resolve_path: impl Fn(&str) -> Result<String, String>,
) -> Report {
    let env = |name: &str| std::env::var(name).ok();
    validate_document_with_env(file_label, text, resolve_path, &env)
}

/// `validate_document` with an explicit environment lookup (hermetic tests).
pub fn validate_document_with_env(
    file_label: &str,
    text: &str,
    resolve_path: impl Fn(&str) -> Result<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Report {
    let value = match parse_json(file_label, text) {
        Ok(value) => value,
        Err(diag) => {
            let mut diagnostics = Diagnostics::new();
            diagnostics.push(diag);
            return Report {
                file: file_label.to_owned(),
                kind: None,
                diagnostics,
            };
        }
    };
    let mut ctx = Ctx::new(file_label);
    let Some(kind) = detect_kind(&value) else {
        let found = match &value {
            Value::Object(map) if map.is_empty() => "an empty object".to_owned(),
            Value::Object(map) => format!(
                "an object with keys {}",
                map.keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => crate::raw::describe(other),
        };
        ctx.err(
            "",
            format!(
                "cannot tell what kind of document this is: expected a connection spec (authSpec, sourceSpec), a flow spec (sourceConnectionSpecIds), a flow (flowSpec), a mapping set (mappings), a connection (auth or params), a JSON schema ($schema) or a flow bundle (connectionSpec, baseConnection, targetConnection); found {found}"
            ),
        );
        return Report {
            file: file_label.to_owned(),
            kind: None,
            diagnostics: ctx.diags,
        };
    };
    let resolve = |_kind: DocumentKind, reference: &SpecRef| match reference {
        SpecRef::Path(path) => resolve_path(path),
        SpecRef::Id(_) => {
            Err("registered documents are looked up by the daemon, not by spec validate".to_owned())
        }
        SpecRef::Inline(_) => Err("inline documents need no loading".to_owned()),
    };
    let mode = BundleMode {
        resolve: &resolve,
        env: Some(env),
        ids_are_optional: true,
    };
    read_kind(&mut ctx, kind, &Node::root(&value), &mode);
    Report {
        file: file_label.to_owned(),
        kind: Some(kind),
        diagnostics: ctx.diags,
    }
}

/// Validates a parsed value as the given kind (e.g. an API request body). Bundles resolve no
/// references here (`{"path"}` / `{"id"}` are reported as not loadable).
pub fn validate_value(file_label: &str, kind: DocumentKind, value: &Value) -> Diagnostics {
    let mut ctx = Ctx::new(file_label);
    let resolve = |_kind: DocumentKind, _reference: &SpecRef| {
        Err("references are not resolved here".to_owned())
    };
    let mode = BundleMode {
        resolve: &resolve,
        env: None,
        ids_are_optional: true,
    };
    read_kind(&mut ctx, kind, &Node::root(value), &mode);
    ctx.diags
}

fn read_kind(ctx: &mut Ctx, kind: DocumentKind, root: &Node<'_>, mode: &BundleMode<'_>) {
    match kind {
        DocumentKind::ConnectionSpec => {
            read_connection_spec(ctx, root);
        }
        DocumentKind::FlowSpec => {
            read_flow_spec(ctx, root);
        }
        DocumentKind::MappingSet => {
            read_mapping_set(ctx, root);
        }
        DocumentKind::FlowBundle => {
            read_bundle(ctx, root, mode);
        }
        DocumentKind::Flow => {
            read_flow(ctx, root);
        }
        DocumentKind::BaseConnection => {
            connections::read_base_connection(ctx, root);
        }
        DocumentKind::SourceConnection => {
            connections::read_source_connection(ctx, root);
        }
        DocumentKind::TargetConnection => {
            connections::read_target_connection(ctx, root);
        }
        DocumentKind::JsonSchema => crate::schema_check::check_schema_document(ctx, root),
    }
}

/// Parses and validates a connection spec. A shape (b) "generic REST" template is an error
/// here, as its request only exists together with a source connection (use a bundle).
pub fn parse_connection_spec(file_label: &str, text: &str) -> Result<ConnectionSpec, SpecError> {
    let value = parse_document(file_label, text)?;
    connection_spec_from_value(file_label, &value)
}

/// Validates a parsed connection spec.
pub fn connection_spec_from_value(
    file_label: &str,
    value: &Value,
) -> Result<ConnectionSpec, SpecError> {
    let mut ctx = Ctx::new(file_label);
    match read_connection_spec(&mut ctx, &Node::root(value)) {
        ConnectionSpecOutcome::Valid(spec) => Ok(*spec),
        ConnectionSpecOutcome::Template(template) => {
            ctx.err(
                &template.declared_at,
                "this is a generic REST template (shape b): its urlParams, contentPath, paginationParams and scheduleParams come from each source connection's params, so it has no request by itself; use it in a flow bundle",
            );
            Err(invalid(ctx))
        }
        ConnectionSpecOutcome::Invalid => Err(invalid(ctx)),
    }
}

pub fn flow_spec_from_value(file_label: &str, value: &Value) -> Result<FlowSpec, SpecError> {
    typed(file_label, value, read_flow_spec)
}

pub fn flow_from_value(file_label: &str, value: &Value) -> Result<Flow, SpecError> {
    typed(file_label, value, read_flow)
}

/// A flow's `scheduleParams` alone (e.g. a PATCH of the schedule).
pub fn flow_schedule_from_value(
    file_label: &str,
    value: &Value,
) -> Result<FlowSchedule, SpecError> {
    typed(file_label, value, read_flow_schedule)
}

pub fn mapping_set_from_value(file_label: &str, value: &Value) -> Result<MappingSet, SpecError> {
    typed(file_label, value, read_mapping_set)
}

pub fn base_connection_from_value(
    file_label: &str,
    value: &Value,
) -> Result<BaseConnection, SpecError> {
    typed(file_label, value, |ctx, node| {
        connections::read_base_connection(ctx, node).map(|read| read.base)
    })
}

pub fn source_connection_from_value(
    file_label: &str,
    value: &Value,
) -> Result<SourceConnection, SpecError> {
    typed(file_label, value, |ctx, node| {
        connections::read_source_connection(ctx, node).map(|read| read.source)
    })
}

pub fn target_connection_from_value(
    file_label: &str,
    value: &Value,
) -> Result<TargetConnection, SpecError> {
    typed(file_label, value, connections::read_target_connection)
}

/// A base connection checked against its connection spec: `auth.specName` must match an
/// authSpec (name or type, case-insensitive) and the params its schema. Returns the matched
/// authSpec too.
pub fn base_connection_for_spec(
    file_label: &str,
    value: &Value,
    spec: &ConnectionSpec,
) -> Result<(BaseConnection, AuthSpec), SpecError> {
    let mut ctx = Ctx::new(file_label);
    let result =
        connections::read_base_connection(&mut ctx, &Node::root(value)).and_then(|mut read| {
            let auth_spec = check_base_against_spec(&mut ctx, &mut read, spec)?;
            Some((read.base, auth_spec))
        });
    finish(ctx, result)
}

/// A source connection checked against `sourceSpec.spec`.
pub fn source_connection_for_spec(
    file_label: &str,
    value: &Value,
    spec: &ConnectionSpec,
) -> Result<SourceConnection, SpecError> {
    let mut ctx = Ctx::new(file_label);
    let result = connections::read_source_connection(&mut ctx, &Node::root(value)).map(|read| {
        check_source_against_spec(&mut ctx, &read, spec);
        read.source
    });
    finish(ctx, result)
}

/// Parses and validates a flow bundle for running it. `resolve` loads a referenced document
/// (`SpecRef::Path` relative to the bundle, or `SpecRef::Id` of a registered one) and returns
/// its JSON text; its error message is reported as is. Unset `${env:X}` are not checked here:
/// rendering reports them when a run needs them.
pub fn load_bundle(
    file_label: &str,
    text: &str,
    resolve: impl Fn(DocumentKind, &SpecRef) -> Result<String, String>,
) -> Result<FlowBundle, SpecError> {
    let value = parse_document(file_label, text)?;
    let mut ctx = Ctx::new(file_label);
    let mode = BundleMode {
        resolve: &resolve,
        env: None,
        ids_are_optional: false,
    };
    let result = read_bundle(&mut ctx, &Node::root(&value), &mode);
    finish(ctx, result)
}

fn typed<T>(
    file_label: &str,
    value: &Value,
    read: impl Fn(&mut Ctx, &Node<'_>) -> Option<T>,
) -> Result<T, SpecError> {
    let mut ctx = Ctx::new(file_label);
    let result = read(&mut ctx, &Node::root(value));
    finish(ctx, result)
}

fn finish<T>(ctx: Ctx, result: Option<T>) -> Result<T, SpecError> {
    match result {
        Some(value) if !ctx.diags.has_errors() => Ok(value),
        _ => Err(invalid(ctx)),
    }
}

fn invalid(mut ctx: Ctx) -> SpecError {
    if !ctx.diags.has_errors() {
        // A reader returned nothing without saying why; never leave the user without a reason.
        ctx.err("", "the document is not valid");
    }
    SpecError::Invalid {
        file: ctx.file,
        diagnostics: ctx.diags,
    }
}

/// Parses JSON, turning a syntax error into a diagnostic with line and column.
pub(crate) fn parse_json(file_label: &str, text: &str) -> Result<Value, Diagnostic> {
    serde_json::from_str::<Value>(text).map_err(|err| Diagnostic {
        file: file_label.to_owned(),
        pointer: String::new(),
        message: format!(
            "invalid JSON at line {} column {}: {}",
            err.line(),
            err.column(),
            json_error_message(&err)
        ),
        severity: Severity::Error,
    })
}

/// serde_json's message without its trailing " at line L column C".
fn json_error_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(idx) => text[..idx].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
