//! The spec model: connection specs, flow specs, connections, mapping sets, flows and flow bundles.
//!
//! Parse, then validate. The validators read JSON documents leniently (every documented variant
//! and alias of the Adobe Self-Serve Sources specs) and turn them into the typed specs of
//! [`model`] ([`ConnectionSpec`], [`Pagination`], [`ScheduleParams`], [`FlowSchedule`],
//! [`MappingSet`], [`FlowBundle`], ...), reporting every problem at once as [`Diagnostics`], each
//! with the JSON pointer of the field (for a missing field, the pointer it would have).
//! Also templating ([`Template`]: `${x}`, `{x}`, `{{x}}`, `${env:X}`, the reserved schedule
//! placeholders; [`RequestTemplate::render`]) and the Java / .NET date formats of
//! `scheduleParams` ([`DateFormat`]).
//!
//! Entry points: [`validate_document`] (any document, as `tributary spec validate` needs it),
//! [`load_bundle`] (a flow bundle for running), and `*_from_value` / `*_for_spec` for API bodies.
//!
//! Both shapes of `sourceSpec` (reference §2.8) validate. Shape (a) defines the request in
//! `sourceSpec.attributes`; shape (b), Adobe's generic REST template, only declares it as
//! inputs (`sourceSpec.spec` or `sourceSpec.attributes.spec` with `properties.urlParams`), and
//! [`load_bundle`] builds the [`ConnectionSpec`] of a flow on it from the source connection's
//! params. Such a spec alone has no request, so [`connection_spec_from_value`] refuses it.
//!
//! The raw side is the JSON tree itself, read through a pointer-tracking reader (module `raw`)
//! rather than `#[derive(Deserialize)]` structs: serde stops at the first mismatch and loses the
//! path, while the reader accepts every variant and keeps going, so all problems are reported.
//!
//! Invariants: no IO, no async (callers read files and hand over text; a bundle's `{"path"}` and
//! `{"id"}` references are loaded through a caller-supplied closure). Code downstream never
//! re-checks a validated spec. No secret value is ever put into an error message or Debug output.

mod bundle;
mod connection_spec;
mod connections;
pub mod date_format;
pub mod diag;
pub mod document;
pub mod error;
mod flow;
pub mod json_path;
pub mod mapping;
pub mod model;
mod raw;
pub mod request;
pub mod schema_check;
pub mod secrets;
pub mod template;

pub use connection_spec::{AUTH_TYPES, PAGINATION_TYPES};
pub use date_format::DateFormat;
pub use diag::{Diagnostic, Diagnostics, Severity};
pub use document::{
    DocumentKind, Report, base_connection_for_spec, base_connection_from_value,
    connection_spec_from_value, detect_kind, flow_from_value, flow_schedule_from_value,
    flow_spec_from_value, load_bundle, mapping_set_from_value, parse_connection_spec,
    parse_document, source_connection_for_spec, source_connection_from_value,
    target_connection_from_value, validate_document, validate_document_with_env, validate_value,
};
pub use error::SpecError;
pub use json_path::JsonPath;
pub use model::*;
pub use request::RenderedRequest;
pub use schema_check::validate_params;
pub use secrets::secret_fields;
pub use template::{
    JsonTemplate, Piece, RenderContext, RenderMode, Reserved, ScheduleValues, ScheduleWindow,
    Template,
};
