//! Templates: the placeholders of `urlParams`, `queryParams`, `headerParams`, `bodyParams` and
//! the ADVANCE schedule expressions, compiled once and rendered per request.
//!
//! Recognised pieces (reference §2.5, §2.6; §13 item 9):
//! - `${x}`, `{x}` and `{{x}}`: a param, looked up in the source connection's params first, then
//!   the base connection's auth params. Only `x` matching `[A-Za-z_][A-Za-z0-9_.-]*` makes a
//!   placeholder, so JSON text such as `{"a": 1}` stays literal.
//! - `${env:NAME}`: an environment variable, read through a closure so tests are hermetic.
//! - `{START_TIME}`, `{END_TIME}`, `{SCHEDULE_QUERY}` (in any of the three spellings): reserved,
//!   filled from the schedule window and never looked up as params.
//! - `@{...}`: an Azure Data Factory expression (the Zendesk example). Kept opaque: validation
//!   warns, and rendering fails only when a request really needs it.
//!
//! Rendering never puts a substituted value into an error message: values may be secrets.

use std::fmt;

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::error::SpecError;
use crate::model::ScheduleParams;

/// A compiled template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    /// A param placeholder, with the spelling it was written in (for messages).
    Param {
        name: String,
        written: String,
    },
    /// `${env:NAME}`.
    Env(String),
    Reserved(Reserved),
    /// An `@{...}` expression we cannot execute, kept verbatim.
    Opaque(String),
}

/// The reserved schedule placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reserved {
    StartTime,
    EndTime,
    ScheduleQuery,
}

/// How substituted values are escaped. Literal template text is never changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    /// As is (hosts, bodies, schedule expressions).
    Raw,
    /// Percent-encode each value for one URL path segment (`/` is encoded too).
    UrlPath,
    /// Percent-encode each value for a query component (`&`, `=`, `+`, space are encoded).
    UrlQuery,
    /// As is, but a value containing CR or LF is an error (header injection).
    Header,
}

/// Everything a template may read.
#[derive(Clone, Copy)]
pub struct RenderContext<'a> {
    /// The source connection's params, looked up first.
    pub source_params: &'a Map<String, Value>,
    /// The base connection's auth params, looked up second.
    pub auth_params: &'a Map<String, Value>,
    /// Environment lookup for `${env:NAME}` (`|name| std::env::var(name).ok()` in production).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Values of the reserved placeholders for this request, if it has a schedule window.
    pub schedule: Option<&'a ScheduleValues>,
}

/// Rendered values of the reserved placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleValues {
    /// `{START_TIME}`; `None` on a first backfill run, which has no start.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// `{SCHEDULE_QUERY}`: the ADVANCE expression chosen for this run, already rendered.
    pub schedule_query: Option<String>,
}

/// A schedule window `[start, end)`. `start` is `None` on a first run with backfill, which
/// fetches all history up to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleWindow {
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
}

/// A JSON value (`bodyParams`) whose strings are templates. Keys are literal.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTemplate {
    value: Value,
}

/// Unreserved characters (RFC 3986) stay; everything else in a value is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Template {
    /// Compiles `text`. Never fails: anything that is not a placeholder is literal text.
    pub fn parse(text: &str) -> Template {
        Template {
            text: text.to_owned(),
            pieces: parse_pieces(text),
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// True when there is nothing to substitute.
    pub fn is_literal(&self) -> bool {
        self.pieces
            .iter()
            .all(|piece| matches!(piece, Piece::Literal(_)))
    }

    /// Names of the params the template reads, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Param { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Names of the environment variables the template reads.
    pub fn env_vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Env(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The reserved placeholders the template uses.
    pub fn reserved(&self) -> impl Iterator<Item = Reserved> + '_ {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Reserved(reserved) => Some(*reserved),
            _ => None,
        })
    }

    /// The `@{...}` expressions in the template.
    pub fn opaque_expressions(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Opaque(text) => Some(text.as_str()),
            _ => None,
        })
    }

    /// Renders the template. Errors name the placeholder, never a value.
    pub fn render(&self, ctx: &RenderContext<'_>, mode: RenderMode) -> Result<String, SpecError> {
        let mut out = String::with_capacity(self.text.len() + 16);
        for piece in &self.pieces {
            let (value, label) = match piece {
                Piece::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Param { name, written } => {
                    (lookup_param(ctx, name, written)?, written.as_str())
                }
                Piece::Env(name) => match (ctx.env)(name) {
                    Some(value) => (value, name.as_str()),
                    None => return Err(SpecError::MissingEnv { name: name.clone() }),
                },
                Piece::Reserved(reserved) => {
                    (reserved_value(ctx, *reserved)?, reserved.placeholder())
                }
                Piece::Opaque(expression) => {
                    return Err(SpecError::UnsupportedExpression {
                        expression: expression.clone(),
                    });
                }
            };
            push_encoded(&mut out, &value, label, mode)?;
        }
        Ok(out)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.text)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Reserved {
    /// The canonical spelling, e.g. `{START_TIME}`.
    pub fn placeholder(self) -> &'static str {
        match self {
            Reserved::StartTime => "{START_TIME}",
            Reserved::EndTime => "{END_TIME}",
            Reserved::ScheduleQuery => "{SCHEDULE_QUERY}",
        }
    }

    fn from_name(name: &str) -> Option<Reserved> {
        match name {
            "START_TIME" => Some(Reserved::StartTime),
            "END_TIME" => Some(Reserved::EndTime),
            "SCHEDULE_QUERY" => Some(Reserved::ScheduleQuery),
            _ => None,
        }
    }
}

impl<'a> RenderContext<'a> {
    /// A context without schedule values.
    pub fn new(
        source_params: &'a Map<String, Value>,
        auth_params: &'a Map<String, Value>,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> RenderContext<'a> {
        RenderContext {
            source_params,
            auth_params,
            env,
            schedule: None,
        }
    }

    /// The same context with schedule values.
    pub fn with_schedule(self, schedule: &'a ScheduleValues) -> RenderContext<'a> {
        RenderContext {
            schedule: Some(schedule),
            ..self
        }
    }
}

impl fmt::Debug for RenderContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Params may hold secrets: print only their names.
        f.debug_struct("RenderContext")
            .field(
                "source_params",
                &self.source_params.keys().collect::<Vec<_>>(),
            )
            .field("auth_params", &self.auth_params.keys().collect::<Vec<_>>())
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl ScheduleParams {
    /// The reserved-placeholder values for one window. For ADVANCE, `{SCHEDULE_QUERY}` is the
    /// `incremental` expression, or `backfill` when the window has no start; either is rendered
    /// with `ctx` (params and env) plus `{START_TIME}` / `{END_TIME}`.
    pub fn values(
        &self,
        window: &ScheduleWindow,
        ctx: &RenderContext<'_>,
    ) -> Result<ScheduleValues, SpecError> {
        match self {
            ScheduleParams::Simple {
                start_format,
                end_format,
                ..
            } => Ok(ScheduleValues {
                start_time: window.start.map(|start| start_format.format(start)),
                end_time: Some(end_format.format(window.end)),
                schedule_query: None,
            }),
            ScheduleParams::Advance {
                format,
                incremental,
                backfill,
            } => {
                let times = ScheduleValues {
                    start_time: window.start.map(|start| format.format(start)),
                    end_time: Some(format.format(window.end)),
                    schedule_query: None,
                };
                let expression = if window.start.is_some() {
                    incremental
                } else {
                    backfill
                };
                let query = expression.render(&ctx.with_schedule(&times), RenderMode::Raw)?;
                Ok(ScheduleValues {
                    schedule_query: Some(query),
                    ..times
                })
            }
        }
    }

    /// For the simple form, the query pairs to add to the request: the start (when the window
    /// has one) and the end, formatted. Empty for ADVANCE, which works through `{SCHEDULE_QUERY}`.
    pub fn query_pairs(&self, window: &ScheduleWindow) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let ScheduleParams::Simple {
            start_param,
            end_param,
            start_format,
            end_format,
        } = self
        {
            if let Some(start) = window.start {
                pairs.push((start_param.clone(), start_format.format(start)));
            }
            pairs.push((end_param.clone(), end_format.format(window.end)));
        }
        pairs
    }
}

impl JsonTemplate {
    pub fn new(value: Value) -> JsonTemplate {
        JsonTemplate { value }
    }

    /// The body as written.
    pub fn as_value(&self) -> &Value {
        &self.value
    }

    /// Every string of the body compiled as a template, with its JSON pointer relative to the body.
    pub fn templates(&self) -> Vec<(String, Template)> {
        let mut found = Vec::new();
        collect_templates(&self.value, String::new(), &mut found);
        found
    }

    /// Renders every string (raw mode: JSON serialisation escapes what needs escaping).
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<Value, SpecError> {
        render_json(&self.value, ctx)
    }
}

fn collect_templates(value: &Value, pointer: String, found: &mut Vec<(String, Template)>) {
    match value {
        Value::String(text) => found.push((pointer, Template::parse(text))),
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                collect_templates(item, format!("{pointer}/{idx}"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                collect_templates(
                    item,
                    format!("{pointer}/{}", crate::diag::escape_pointer_token(key)),
                    found,
                );
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn render_json(value: &Value, ctx: &RenderContext<'_>) -> Result<Value, SpecError> {
    Ok(match value {
        Value::String(text) => Value::String(Template::parse(text).render(ctx, RenderMode::Raw)?),
        Value::Array(items) => {
            let mut rendered = Vec::with_capacity(items.len());
            for item in items {
                rendered.push(render_json(item, ctx)?);
            }
            Value::Array(rendered)
        }
        Value::Object(map) => {
            let mut rendered = Map::with_capacity(map.len());
            for (key, item) in map {
                rendered.insert(key.clone(), render_json(item, ctx)?);
            }
            Value::Object(rendered)
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
    })
}

fn lookup_param(ctx: &RenderContext<'_>, name: &str, written: &str) -> Result<String, SpecError> {
    let found = find_param(ctx.source_params, name).or_else(|| find_param(ctx.auth_params, name));
    let Some(value) = found else {
        return Err(SpecError::UnknownPlaceholder {
            placeholder: written.to_owned(),
            name: name.to_owned(),
        });
    };
    match value {
        Value::String(text) => {
            // A param may itself say `${env:NAME}` (bundles keep secrets out of files that way).
            if text.contains("${env:") {
                return resolve_env_in_str(text, ctx.env);
            }
            Ok(text.clone())
        }
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Null => Err(SpecError::UnrenderableValue {
            placeholder: written.to_owned(),
            found: "null",
        }),
        Value::Array(_) | Value::Object(_) => Ok(value.to_string()),
    }
}

/// Looks `name` up as a key, then as a dotted path into nested objects.
fn find_param<'p>(params: &'p Map<String, Value>, name: &str) -> Option<&'p Value> {
    if let Some(value) = params.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut node = params.get(parts.next()?)?;
    for part in parts {
        node = node.as_object()?.get(part)?;
    }
    Some(node)
}

fn reserved_value(ctx: &RenderContext<'_>, reserved: Reserved) -> Result<String, SpecError> {
    let value = ctx.schedule.and_then(|schedule| match reserved {
        Reserved::StartTime => schedule.start_time.clone(),
        Reserved::EndTime => schedule.end_time.clone(),
        Reserved::ScheduleQuery => schedule.schedule_query.clone(),
    });
    value.ok_or_else(|| SpecError::NoScheduleValue {
        placeholder: reserved.placeholder().to_owned(),
    })
}

fn push_encoded(
    out: &mut String,
    value: &str,
    label: &str,
    mode: RenderMode,
) -> Result<(), SpecError> {
    match mode {
        RenderMode::Raw => out.push_str(value),
        RenderMode::UrlPath | RenderMode::UrlQuery => {
            out.extend(utf8_percent_encode(value, COMPONENT))
        }
        RenderMode::Header => {
            if value.contains(['\r', '\n']) {
                return Err(SpecError::HeaderLineBreak {
                    placeholder: label.to_owned(),
                });
            }
            out.push_str(value);
        }
    }
    Ok(())
}

fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_env_name(text: &str) -> bool {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn named_piece(name: &str, written: &str) -> Piece {
    match Reserved::from_name(name) {
        Some(reserved) => Piece::Reserved(reserved),
        None => Piece::Param {
            name: name.to_owned(),
            written: written.to_owned(),
        },
    }
}

/// Splits a template into pieces; see the module header for the grammar.
fn parse_pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        if let Some((piece, consumed)) = placeholder_at(rest) {
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
            pos += consumed;
            continue;
        }
        let ch = rest
            .chars()
            .next()
            .expect("pos < text.len() leaves at least one char");
        literal.push(ch);
        pos += ch.len_utf8();
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    pieces
}

/// The placeholder starting at the beginning of `rest`, with its length in bytes.
fn placeholder_at(rest: &str) -> Option<(Piece, usize)> {
    if let Some(after) = rest.strip_prefix("${") {
        let close = after.find('}')?;
        let inner = &after[..close];
        let consumed = close + 3;
        if let Some(env_name) = inner.strip_prefix("env:") {
            return is_env_name(env_name).then(|| (Piece::Env(env_name.to_owned()), consumed));
        }
        return is_ident(inner).then(|| (named_piece(inner, &rest[..consumed]), consumed));
    }
    if rest.starts_with("@{") {
        let end = opaque_end(rest)?;
        return Some((Piece::Opaque(rest[..end].to_owned()), end));
    }
    if let Some(after) = rest.strip_prefix("{{")
        && let Some(close) = after.find("}}")
        && is_ident(&after[..close])
    {
        let consumed = close + 4;
        return Some((named_piece(&after[..close], &rest[..consumed]), consumed));
    }
    if let Some(after) = rest.strip_prefix('{') {
        let close = after.find('}')?;
        let inner = &after[..close];
        let consumed = close + 2;
        return is_ident(inner).then(|| (named_piece(inner, &rest[..consumed]), consumed));
    }
    None
}

/// End (exclusive) of an `@{...}` expression: braces nest, and `'...'` strings may hold braces.
fn opaque_end(rest: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    for (idx, ch) in rest.char_indices().skip(1) {
        match ch {
            '\'' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(idx + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Renders `${env:NAME}` in every string of `params` (recursively); other text is kept as is,
/// so `{x}`-looking text in a credential is never touched.
pub(crate) fn resolve_env_in_map(
    params: &Map<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Map<String, Value>, SpecError> {
    let mut resolved = Map::with_capacity(params.len());
    for (key, value) in params {
        resolved.insert(key.clone(), resolve_env_in_value(value, env)?);
    }
    Ok(resolved)
}

fn resolve_env_in_value(
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, SpecError> {
    Ok(match value {
        Value::String(text) => Value::String(resolve_env_in_str(text, env)?),
        Value::Array(items) => {
            let mut resolved = Vec::with_capacity(items.len());
            for item in items {
                resolved.push(resolve_env_in_value(item, env)?);
            }
            Value::Array(resolved)
        }
        Value::Object(map) => Value::Object(resolve_env_in_map(map, env)?),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
    })
}

/// Renders only the `${env:NAME}` pieces of `text`; everything else stays as written.
fn resolve_env_in_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    for piece in parse_pieces(text) {
        match piece {
            Piece::Env(name) => match env(&name) {
                Some(found) => out.push_str(&found),
                None => return Err(SpecError::MissingEnv { name }),
            },
            Piece::Literal(literal) => out.push_str(&literal),
            Piece::Param { written, .. } => out.push_str(&written),
            Piece::Reserved(reserved) => out.push_str(reserved.placeholder()),
            Piece::Opaque(expression) => out.push_str(&expression),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
