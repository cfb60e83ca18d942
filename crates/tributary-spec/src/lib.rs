//! The spec model: connection specs, flow specs, connections, mapping sets, flows and flow bundles.
//!
//! Parse, then validate. The validators read the JSON documents leniently (every documented
//! variant and alias of the Adobe Self-Serve Sources specs) and turn them into the typed specs of
//! [`model`], reporting every problem at once as [`Diagnostics`], each with a JSON-pointer path.
//! Also templating ([`Template`]: `${x}`, `{x}`, `{{x}}`, `${env:X}`, the reserved schedule
//! placeholders) and the Java / .NET date formats of `scheduleParams` ([`DateFormat`]).
//!
//! Invariants: no IO, no async (callers read files and hand over text; a bundle's `{"path"}`
//! is loaded through a caller-supplied closure). Code downstream never re-checks a validated
//! spec. No secret value is ever put into an error message or Debug output.

pub mod date_format;
pub mod diag;
pub mod error;
pub mod json_path;
pub mod model;
pub mod secrets;
pub mod template;

pub use date_format::DateFormat;
pub use diag::{Diagnostic, Diagnostics, Severity};
pub use error::SpecError;
pub use json_path::JsonPath;
pub use model::*;
pub use secrets::secret_fields;
pub use template::{
    JsonTemplate, Piece, RenderContext, RenderMode, Reserved, ScheduleValues, ScheduleWindow,
    Template,
};
