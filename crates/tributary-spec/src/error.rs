//! `SpecError`, the one error type of the crate.
//!
//! Every variant is the user's fault (a bad document, a missing parameter or environment
//! variable): none is helped by a retry. Messages name the field, placeholder or variable and
//! never contain a param value, because values may be secrets.

use crate::diag::Diagnostics;

/// Errors of parsing, validating and rendering specs.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The text is not JSON.
    #[error("{file}: invalid JSON at line {line} column {column}: {message}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The document is JSON but not a valid spec; every problem is in `diagnostics`.
    #[error("{file}: {}", summarize(.diagnostics))]
    Invalid {
        file: String,
        diagnostics: Diagnostics,
    },
    /// A referenced spec (`{"path"}` or `{"id"}`) could not be loaded.
    #[error("cannot load connection spec {reference}: {message}")]
    Resolve { reference: String, message: String },
    /// A placeholder names neither a source connection param nor an auth param.
    #[error(
        "unknown placeholder {placeholder}: no source connection param or auth param named {name:?}"
    )]
    UnknownPlaceholder { placeholder: String, name: String },
    /// `${env:NAME}` with NAME unset.
    #[error("environment variable {name} is not set (referenced as ${{env:{name}}})")]
    MissingEnv { name: String },
    /// `{START_TIME}`, `{END_TIME}` or `{SCHEDULE_QUERY}` without a value for this request.
    #[error(
        "placeholder {placeholder} has no value: the request has no schedule window, or its window has no start"
    )]
    NoScheduleValue { placeholder: String },
    /// An `@{...}` expression reached rendering.
    #[error(
        "cannot execute expression {expression}: @{{...}} (Azure Data Factory) expressions are not supported"
    )]
    UnsupportedExpression { expression: String },
    /// A substituted header value contains CR or LF.
    #[error("value substituted for {placeholder} in a header contains a line break")]
    HeaderLineBreak { placeholder: String },
    /// Neither `urlParams.host` nor the auth param `host` gives a base URL.
    #[error(
        "no base URL: the connection spec has no urlParams.host and the auth params have no host"
    )]
    MissingHost,
    /// A param value that cannot be put into text.
    #[error("placeholder {placeholder} is {found}, expected a string, number or boolean")]
    UnrenderableValue {
        placeholder: String,
        found: &'static str,
    },
}

impl SpecError {
    /// Always false: every variant is caused by the input, and a retry sees the same input.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// Always true: every variant is the user's fault (a document, a param, the environment).
    pub fn is_user_error(&self) -> bool {
        true
    }
}

fn summarize(diagnostics: &Diagnostics) -> String {
    let errors: Vec<String> = diagnostics
        .errors()
        .map(|diag| format!("{}: {}", diag.display_pointer(), diag.message))
        .collect();
    match errors.as_slice() {
        [] => "no errors".to_owned(),
        [only] => only.clone(),
        [first, rest @ ..] => format!("{first} (and {} more errors)", rest.len()),
    }
}
