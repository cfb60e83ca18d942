//! Column-wise kernels for the calculated fields that dominate real mapping sets: `lower`,
//! `upper`, `trim`/`ltrim`/`rtrim` of a field, `concat` of fields and literals, and
//! `date(field)` / `date(field, "format")`.
//!
//! arrow-string has no case-mapping kernel and its `concat` nulls the result when any input is
//! null (Data Prep skips nulls), so these loops work on the string buffers directly. Each
//! kernel gives exactly the values and error messages of the row-by-row evaluator; the tests
//! run both on the same data. A kernel declines (returns `None`) when a column is not Utf8,
//! and the row-by-row path takes over.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_buffer::Buffer;
use arrow_schema::DataType;

use super::apply::resolve_plain;
use crate::expr::{Expr, ExprKind, FieldPath, Value};
use crate::functions::{DateFormat, Function, parse_implicit_datetime};

#[derive(Debug, Clone)]
pub(super) enum Kernel {
    /// `lower`, `upper`, `trim`, `ltrim`, `rtrim` of one field.
    Text {
        function: Function,
        path: FieldPath,
    },
    Concat(Vec<Part>),
    Date {
        path: FieldPath,
        format: Option<(String, DateFormat)>,
    },
}

#[derive(Debug, Clone)]
pub(super) enum Part {
    Column(FieldPath),
    Literal(String),
}

/// The output of a kernel: the column and the rows whose evaluation failed (nullified).
pub(super) struct KernelOutput {
    pub array: ArrayRef,
    pub errors: Vec<(usize, String)>,
}

/// Picks a kernel for an expression, if one applies.
pub(super) fn select(expr: &Expr) -> Option<Kernel> {
    let ExprKind::Call { function, args } = &expr.kind else {
        return None;
    };
    let plain_field = |e: &Expr| match &e.kind {
        ExprKind::Field(path) if path.is_plain() => Some(path.clone()),
        _ => None,
    };
    match (function, args.as_slice()) {
        (
            Function::Lower | Function::Upper | Function::Trim | Function::Ltrim | Function::Rtrim,
            [arg],
        ) => Some(Kernel::Text {
            function: *function,
            path: plain_field(arg)?,
        }),
        (Function::Concat, args) => {
            let mut parts = Vec::with_capacity(args.len());
            for arg in args {
                match &arg.kind {
                    ExprKind::Field(path) if path.is_plain() => {
                        parts.push(Part::Column(path.clone()))
                    }
                    ExprKind::Literal(Value::Null) => {}
                    ExprKind::Literal(
                        value @ (Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_)),
                    ) => {
                        parts.push(Part::Literal(value.to_text().unwrap_or_default()));
                    }
                    _ => return None,
                }
            }
            Some(Kernel::Concat(parts))
        }
        (Function::Date, [arg]) => Some(Kernel::Date {
            path: plain_field(arg)?,
            format: None,
        }),
        (
            Function::Date,
            [
                arg,
                Expr {
                    kind: ExprKind::Literal(Value::Str(pattern)),
                    ..
                },
            ],
        ) => {
            let format = pattern.parse::<DateFormat>().ok()?;
            Some(Kernel::Date {
                path: plain_field(arg)?,
                format: Some((pattern.clone(), format)),
            })
        }
        _ => None,
    }
}

/// Runs a kernel on a batch; `None` when a column has a type the kernel does not handle.
pub(super) fn run(kernel: &Kernel, batch: &RecordBatch) -> Option<KernelOutput> {
    let n_rows = batch.num_rows();
    match kernel {
        Kernel::Text { function, path } => {
            let column = string_column(batch, path)?;
            if let (Function::Lower | Function::Upper, Some(strings)) = (function, &column)
                && strings.value_data().is_ascii()
            {
                // All-ASCII text: case-map the whole value buffer at once and keep the offsets
                // and nulls, which is as fast as a copy.
                let mut bytes = strings.value_data().to_vec();
                if *function == Function::Lower {
                    bytes.make_ascii_lowercase();
                } else {
                    bytes.make_ascii_uppercase();
                }
                let array = StringArray::try_new(
                    strings.offsets().clone(),
                    Buffer::from_vec(bytes),
                    strings.nulls().cloned(),
                )
                .ok()?;
                return Some(KernelOutput {
                    array: Arc::new(array),
                    errors: Vec::new(),
                });
            }
            let mut builder = StringBuilder::with_capacity(
                n_rows,
                column.as_ref().map_or(0, |c| c.value_data().len()),
            );
            let mut buf = String::new();
            for row in 0..n_rows {
                let Some(text) = column
                    .as_ref()
                    .filter(|c| c.is_valid(row))
                    .map(|c| c.value(row))
                else {
                    builder.append_null();
                    continue;
                };
                match function {
                    Function::Lower | Function::Upper => {
                        buf.clear();
                        if text.is_ascii() {
                            buf.push_str(text);
                            if *function == Function::Lower {
                                buf.make_ascii_lowercase();
                            } else {
                                buf.make_ascii_uppercase();
                            }
                        } else if *function == Function::Lower {
                            buf.push_str(&text.to_lowercase());
                        } else {
                            buf.push_str(&text.to_uppercase());
                        }
                        builder.append_value(&buf);
                    }
                    Function::Trim => builder.append_value(text.trim()),
                    Function::Ltrim => builder.append_value(text.trim_start()),
                    _ => builder.append_value(text.trim_end()),
                }
            }
            Some(KernelOutput {
                array: Arc::new(builder.finish()),
                errors: Vec::new(),
            })
        }
        Kernel::Concat(parts) => {
            enum Resolved {
                Column(Option<StringArray>),
                Literal(String),
            }
            let mut resolved = Vec::with_capacity(parts.len());
            let mut capacity = 0;
            for part in parts {
                match part {
                    Part::Column(path) => {
                        let column = string_column(batch, path)?;
                        capacity += column.as_ref().map_or(0, |c| c.value_data().len());
                        resolved.push(Resolved::Column(column));
                    }
                    Part::Literal(text) => {
                        capacity += text.len() * n_rows;
                        resolved.push(Resolved::Literal(text.clone()));
                    }
                }
            }
            let mut builder = StringBuilder::with_capacity(n_rows, capacity);
            let mut buf = String::new();
            for row in 0..n_rows {
                buf.clear();
                let mut any = false;
                for part in &resolved {
                    match part {
                        Resolved::Literal(text) => {
                            buf.push_str(text);
                            any = true;
                        }
                        Resolved::Column(Some(column)) if column.is_valid(row) => {
                            buf.push_str(column.value(row));
                            any = true;
                        }
                        Resolved::Column(_) => {}
                    }
                }
                if any {
                    builder.append_value(&buf);
                } else {
                    builder.append_null();
                }
            }
            Some(KernelOutput {
                array: Arc::new(builder.finish()),
                errors: Vec::new(),
            })
        }
        Kernel::Date { path, format } => {
            let column = string_column(batch, path)?;
            let mut builder =
                TimestampMicrosecondBuilder::with_capacity(n_rows).with_timezone("UTC");
            let mut errors = Vec::new();
            for row in 0..n_rows {
                let Some(text) = column
                    .as_ref()
                    .filter(|c| c.is_valid(row))
                    .map(|c| c.value(row))
                else {
                    builder.append_null();
                    continue;
                };
                let parsed = match format {
                    Some((_, format)) => format.parse(text.trim()),
                    None => parse_implicit_datetime(text),
                };
                match parsed {
                    Some(dt) => builder.append_value(dt.timestamp_micros()),
                    None => {
                        // The same message as the row-by-row `date` function.
                        let message = match format {
                            Some((pattern, _)) => {
                                format!("date: {text:?} does not match the date format {pattern:?}")
                            }
                            None => format!("date: {text:?} matches no date pattern"),
                        };
                        errors.push((row, message));
                        builder.append_null();
                    }
                }
            }
            Some(KernelOutput {
                array: Arc::new(builder.finish()),
                errors,
            })
        }
    }
}

/// A plain-path column as strings: `Some(None)` when the field is absent (all null),
/// `None` when it exists with another type.
fn string_column(batch: &RecordBatch, path: &FieldPath) -> Option<Option<StringArray>> {
    match resolve_plain(batch, path) {
        None => Some(None),
        Some(array) if array.data_type() == &DataType::Utf8 => {
            Some(Some(array.as_string::<i32>().clone()))
        }
        Some(array) if array.data_type() == &DataType::Null => Some(None),
        Some(_) => None,
    }
}
