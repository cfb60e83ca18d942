//! Row-by-row evaluation of a parsed expression against one source record.
//!
//! The record is a [`Value::Object`] holding the record's top-level fields (the mapping stage
//! fills only the fields an expression references). Evaluation errors carry the span of the
//! node that failed so that preview can point at it.

use std::collections::HashMap;
use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};
use regex::Regex;

use super::{BinaryOp, Expr, ExprKind, FieldPath, Segment, Span, UnaryOp, Value};
use crate::functions::{self, CallContext, Function};

/// State shared by the evaluations of one batch: a fixed "now" (so that every row of a batch
/// sees the same `now()`), and compiled regexes keyed by pattern.
#[derive(Debug)]
pub struct EvalState {
    now: DateTime<Utc>,
    regexes: HashMap<String, Regex>,
}

/// A failed evaluation: the message and the node it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub message: String,
    pub span: Span,
}

/// Evaluates `expr` against `row` (an object of the record's fields).
pub fn eval(expr: &Expr, row: &Value, state: &mut EvalState) -> Result<Value, EvalError> {
    let fail = |message: String| EvalError {
        message,
        span: expr.span,
    };
    match &expr.kind {
        ExprKind::Literal(value) => Ok(value.clone()),
        ExprKind::Field(path) => Ok(lookup_path(row, path)),
        ExprKind::Call {
            function: Function::Iif,
            args,
        } if args.len() == 3 => {
            let condition = eval(&args[0], row, state)?;
            let branch = if truthy(&condition).map_err(fail)? {
                &args[1]
            } else {
                &args[2]
            };
            eval(branch, row, state)
        }
        ExprKind::Call { function, args } => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(eval(arg, row, state)?);
            }
            let mut ctx = CallContext { row, state };
            functions::call(*function, &mut ctx, values).map_err(|message| EvalError {
                message: format!("{}: {message}", function.name()),
                span: expr.span,
            })
        }
        ExprKind::Unary { op, operand } => {
            let value = eval(operand, row, state)?;
            match op {
                UnaryOp::Not => Ok(Value::Bool(!truthy(&value).map_err(fail)?)),
                UnaryOp::Neg => match functions::to_number(&value).map_err(fail)? {
                    None => Ok(Value::Null),
                    Some(Value::Int(i)) => i
                        .checked_neg()
                        .map(Value::Int)
                        .ok_or_else(|| fail("integer overflow".into())),
                    Some(Value::Float(f)) => Ok(Value::Float(-f)),
                    Some(other) => Ok(other),
                },
            }
        }
        ExprKind::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            let left = eval(lhs, row, state)?;
            if !truthy(&left).map_err(fail)? {
                return Ok(Value::Bool(false));
            }
            Ok(Value::Bool(truthy(&eval(rhs, row, state)?).map_err(fail)?))
        }
        ExprKind::Binary {
            op: BinaryOp::Or,
            lhs,
            rhs,
        } => {
            let left = eval(lhs, row, state)?;
            if truthy(&left).map_err(fail)? {
                return Ok(Value::Bool(true));
            }
            Ok(Value::Bool(truthy(&eval(rhs, row, state)?).map_err(fail)?))
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let left = eval(lhs, row, state)?;
            let right = eval(rhs, row, state)?;
            binary(*op, left, right, state).map_err(fail)
        }
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => {
            let value = eval(condition, row, state)?;
            match then {
                // `a ?: b`: `a` unless it is null, false or empty.
                None => {
                    let keep = match &value {
                        Value::Null => false,
                        Value::Str(s) => !s.is_empty(),
                        Value::Bool(b) => *b,
                        _ => true,
                    };
                    if keep {
                        Ok(value)
                    } else {
                        eval(otherwise, row, state)
                    }
                }
                Some(then) => {
                    if truthy(&value).map_err(fail)? {
                        eval(then, row, state)
                    } else {
                        eval(otherwise, row, state)
                    }
                }
            }
        }
        ExprKind::Array(items) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                values.push(eval(item, row, state)?);
            }
            Ok(Value::Array(values))
        }
        ExprKind::Object(entries) => {
            let mut values = Vec::with_capacity(entries.len());
            for (key, item) in entries {
                Value::insert(&mut values, key.clone(), eval(item, row, state)?);
            }
            Ok(Value::Object(values))
        }
        ExprKind::Member { target, name } => {
            let value = eval(target, row, state)?;
            Ok(value.get(name).cloned().unwrap_or(Value::Null))
        }
        ExprKind::Index { target, index } => {
            let value = eval(target, row, state)?;
            let index = eval(index, row, state)?;
            match (&value, &index) {
                (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
                (Value::Array(items), Value::Int(i)) => Ok(usize::try_from(*i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .unwrap_or(Value::Null)),
                (Value::Object(_), Value::Str(key)) => {
                    Ok(value.get(key).cloned().unwrap_or(Value::Null))
                }
                _ => Err(fail(format!(
                    "cannot index {} with {}",
                    value.type_name(),
                    index.type_name()
                ))),
            }
        }
    }
}

/// The top-level field names an expression reads, or `None` when it may read any field
/// (`contains_key` with a computed path).
pub fn referenced_roots(expr: &Expr) -> Option<HashSet<String>> {
    let mut roots = HashSet::new();
    collect_roots(expr, &mut roots).then_some(roots)
}

fn collect_roots(expr: &Expr, roots: &mut HashSet<String>) -> bool {
    match &expr.kind {
        ExprKind::Literal(_) => true,
        ExprKind::Field(path) => {
            if let Some(root) = path.root() {
                roots.insert(root.to_owned());
            }
            true
        }
        ExprKind::Call {
            function: Function::ContainsKey | Function::IsSet,
            args,
        } => match args.first() {
            Some(Expr {
                kind: ExprKind::Literal(Value::Str(path)),
                ..
            }) => {
                if let Ok(path) = FieldPath::parse(path)
                    && let Some(root) = path.root()
                {
                    roots.insert(root.to_owned());
                }
                args.iter().all(|a| collect_roots(a, roots))
            }
            _ => false,
        },
        ExprKind::Call { args, .. } | ExprKind::Array(args) => {
            args.iter().all(|a| collect_roots(a, roots))
        }
        ExprKind::Unary { operand, .. } => collect_roots(operand, roots),
        ExprKind::Binary { lhs, rhs, .. } => collect_roots(lhs, roots) && collect_roots(rhs, roots),
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => {
            collect_roots(condition, roots)
                && then.as_ref().is_none_or(|t| collect_roots(t, roots))
                && collect_roots(otherwise, roots)
        }
        ExprKind::Object(entries) => entries.iter().all(|(_, e)| collect_roots(e, roots)),
        ExprKind::Member { target, .. } => collect_roots(target, roots),
        ExprKind::Index { target, index } => {
            collect_roots(target, roots) && collect_roots(index, roots)
        }
    }
}

/// Reads a path in a record; a missing field, an index past the end or a step through a
/// non-object gives null. `[*]` maps the rest of the path over the array's elements.
pub(crate) fn lookup_path(row: &Value, path: &FieldPath) -> Value {
    lookup_segments(row, &path.segments)
}

pub(crate) fn lookup_segments(value: &Value, segments: &[Segment]) -> Value {
    let mut current = value;
    for (i, segment) in segments.iter().enumerate() {
        match (segment, current) {
            (Segment::Name(name), Value::Object(_)) => match current.get(name) {
                Some(next) => current = next,
                None => return Value::Null,
            },
            (Segment::Index(n), Value::Array(items)) => match items.get(*n) {
                Some(next) => current = next,
                None => return Value::Null,
            },
            (Segment::Each, Value::Array(items)) => {
                let rest = &segments[i + 1..];
                return Value::Array(
                    items
                        .iter()
                        .map(|item| lookup_segments(item, rest))
                        .collect(),
                );
            }
            _ => return Value::Null,
        }
    }
    current.clone()
}

/// The truth of a condition: booleans, the implicit string → boolean word lists, numbers
/// (non-zero is true) and null (false).
pub(crate) fn truthy(value: &Value) -> Result<bool, String> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::Int(i) => Ok(*i != 0),
        Value::Float(f) => Ok(*f != 0.0),
        Value::Str(s) => functions::string_to_bool(s)
            .ok_or_else(|| format!("expected a boolean, got the string {s:?}")),
        other => Err(format!("expected a boolean, got {}", other.type_name())),
    }
}

fn binary(op: BinaryOp, left: Value, right: Value, state: &mut EvalState) -> Result<Value, String> {
    match op {
        BinaryOp::Eq => Ok(Value::Bool(functions::values_equal(&left, &right))),
        BinaryOp::Ne => Ok(Value::Bool(!functions::values_equal(&left, &right))),
        BinaryOp::Lt | BinaryOp::Gt | BinaryOp::Le | BinaryOp::Ge => {
            if left.is_null() || right.is_null() {
                return Ok(Value::Null);
            }
            let ordering = functions::compare(&left, &right)?;
            Ok(Value::Bool(match op {
                BinaryOp::Lt => ordering.is_lt(),
                BinaryOp::Gt => ordering.is_gt(),
                BinaryOp::Le => ordering.is_le(),
                _ => ordering.is_ge(),
            }))
        }
        BinaryOp::RegexMatch | BinaryOp::RegexNotMatch => {
            let (Some(text), Some(pattern)) = (left.to_text(), right.to_text()) else {
                return Ok(Value::Null);
            };
            let regex = state.regex(&format!("^(?:{pattern})$"))?;
            let is_match = regex.is_match(&text);
            Ok(Value::Bool(if op == BinaryOp::RegexMatch {
                is_match
            } else {
                !is_match
            }))
        }
        BinaryOp::Add if matches!(left, Value::Str(_)) || matches!(right, Value::Str(_)) => {
            match (left.to_text(), right.to_text()) {
                (Some(l), Some(r)) => Ok(Value::Str(l + &r)),
                _ => Ok(Value::Null),
            }
        }
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
            let (Some(l), Some(r)) = (functions::to_number(&left)?, functions::to_number(&right)?)
            else {
                return Ok(Value::Null);
            };
            functions::arithmetic(op, &l, &r)
        }
        BinaryOp::And | BinaryOp::Or => Ok(Value::Bool(truthy(&left)? && truthy(&right)?)),
    }
}

impl EvalState {
    pub fn new(now: DateTime<Utc>) -> EvalState {
        EvalState {
            now,
            regexes: HashMap::new(),
        }
    }

    /// The instant `now()` and `timestamp()` return during this batch.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// A compiled regex, cached by pattern (patterns are usually literals, so a batch compiles
    /// each once).
    pub fn regex(&mut self, pattern: &str) -> Result<&Regex, String> {
        if !self.regexes.contains_key(pattern) {
            // Keep the cache bounded when patterns come from data.
            if self.regexes.len() >= 256 {
                self.regexes.clear();
            }
            let regex =
                Regex::new(pattern).map_err(|err| format!("invalid regex {pattern:?}: {err}"))?;
            self.regexes.insert(pattern.to_owned(), regex);
        }
        Ok(&self.regexes[pattern])
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}
