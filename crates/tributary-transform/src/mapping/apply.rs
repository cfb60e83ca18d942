//! Running a plan on a batch: build every destination column, find the row problems, drop
//! the rejected rows and conform the rest to the output schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StructArray, make_array,
    new_null_array,
};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, Field};
use chrono::{DateTime, Utc};

use super::compile::{CompiledMapping, Node, Source};
use super::kernels;
use super::{
    ErrorCode, MAX_WARNING_SAMPLES, MappedBatch, MappingError, MappingPlan, RejectedRow, RowError,
    RowWarning,
};
use crate::expr::{self, EvalState, FieldPath, Segment, Value};
use crate::schema::{
    CoerceError, array_value, coerce_array, conform_array, nullable_type, row_to_json,
    values_to_array,
};

/// A problem of one row, with the mapping it came from.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    pub row: usize,
    /// Position of the mapping in the plan, when one mapping is at fault.
    pub mapping: Option<usize>,
    pub error: RowError,
}

/// Every destination column for every input row (nullable types), and the row problems.
pub(super) struct Outcome {
    pub columns: Vec<ArrayRef>,
    pub problems: Vec<Problem>,
}

/// Applies a compiled plan to a batch of source records.
pub fn apply(plan: &MappingPlan, batch: &RecordBatch) -> Result<MappedBatch, MappingError> {
    let outcome = run(plan, batch, Utc::now())?;
    let n_rows = batch.num_rows();

    let mut rejected_flags = vec![false; n_rows];
    let mut warned_rows: BTreeMap<ErrorCode, Vec<bool>> = BTreeMap::new();
    let mut warning_samples = Vec::new();
    let mut errors_by_row: BTreeMap<usize, Vec<RowError>> = BTreeMap::new();
    for problem in outcome.problems {
        if plan.policy.rejects(problem.error.code) {
            rejected_flags[problem.row] = true;
        } else {
            warned_rows
                .entry(problem.error.code)
                .or_insert_with(|| vec![false; n_rows])[problem.row] = true;
            if warning_samples.len() < MAX_WARNING_SAMPLES {
                warning_samples.push(RowWarning {
                    row_index: problem.row,
                    error: problem.error.clone(),
                });
            }
        }
        errors_by_row
            .entry(problem.row)
            .or_default()
            .push(problem.error);
    }
    // Accepted rows with at least one warning, whatever its codes.
    let mut any_warning = vec![false; n_rows];
    for rows in warned_rows.values() {
        for (row, warned) in rows.iter().enumerate() {
            any_warning[row] |= *warned;
        }
    }
    let warned_accepted_rows = any_warning
        .iter()
        .zip(&rejected_flags)
        .filter(|(warned, rejected)| **warned && !**rejected)
        .count();
    let warnings = warned_rows
        .into_iter()
        .map(|(code, rows)| (code, rows.iter().filter(|w| **w).count()))
        .collect();
    let mut rows_per_code: BTreeMap<ErrorCode, usize> = BTreeMap::new();
    for errors in errors_by_row.values() {
        let mut codes: Vec<ErrorCode> = errors.iter().map(|error| error.code).collect();
        codes.sort();
        codes.dedup();
        for code in codes {
            *rows_per_code.entry(code).or_default() += 1;
        }
    }

    let mut rejected = Vec::new();
    for (row, errors) in errors_by_row {
        if rejected_flags[row] {
            rejected.push(RejectedRow {
                row_index: row,
                original: row_to_json(batch, row),
                errors,
            });
        }
    }

    let columns = if rejected.is_empty() {
        outcome.columns
    } else {
        let keep = BooleanArray::from(rejected_flags.iter().map(|r| !r).collect::<Vec<_>>());
        let mut kept = Vec::with_capacity(outcome.columns.len());
        for column in &outcome.columns {
            kept.push(arrow_select::filter::filter(column.as_ref(), &keep)?);
        }
        kept
    };
    let n_kept = n_rows - rejected.len();
    let mut conformed = Vec::with_capacity(columns.len());
    for (column, field) in columns.iter().zip(plan.output_schema.fields()) {
        conformed.push(conform_array(column, field.data_type())?);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(n_kept));
    let batch =
        RecordBatch::try_new_with_options(Arc::clone(&plan.output_schema), conformed, &options)?;
    Ok(MappedBatch {
        batch,
        rejected,
        warnings,
        warned_rows: warned_accepted_rows,
        warning_samples,
        rows_per_code,
    })
}

/// Builds every output column for every row and collects row problems (no filtering).
pub(super) fn run(
    plan: &MappingPlan,
    batch: &RecordBatch,
    now: DateTime<Utc>,
) -> Result<Outcome, MappingError> {
    let mut ctx = Ctx {
        plan,
        batch,
        state: EvalState::new(now),
        problems: Vec::new(),
    };
    let mut columns = Vec::with_capacity(plan.fields.len());
    for output in &plan.fields {
        let data_type = nullable_type(output.field.data_type());
        let column = ctx.node(&output.node, &data_type)?;
        columns.push(column);
    }
    for (output, column) in plan.fields.iter().zip(&columns) {
        if !has_required(&output.field) {
            continue;
        }
        let all_rows: Vec<usize> = (0..column.len()).collect();
        let mut violations = Vec::new();
        required_violations(
            column.as_ref(),
            &output.field,
            output.field.name(),
            &all_rows,
            &|i| i,
            &mut violations,
        );
        for (row, path) in violations {
            ctx.problems.push(Problem {
                row,
                mapping: None,
                error: RowError {
                    code: ErrorCode::RequiredFieldNull,
                    message: format!("required field `{path}` is missing or null"),
                    destination: path,
                },
            });
        }
    }
    let mut problems = ctx.problems;
    problems.sort_by_key(|p| p.row);
    Ok(Outcome { columns, problems })
}

struct Ctx<'a> {
    plan: &'a MappingPlan,
    batch: &'a RecordBatch,
    state: EvalState,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    fn node(&mut self, node: &Node, data_type: &DataType) -> Result<ArrayRef, MappingError> {
        let n_rows = self.batch.num_rows();
        match node {
            Node::Empty => Ok(new_null_array(data_type, n_rows)),
            Node::Column(index) => Ok(self.mapping_column(*index)),
            Node::Struct(children) => {
                let DataType::Struct(fields) = data_type else {
                    return Ok(new_null_array(data_type, n_rows));
                };
                let mut arrays = Vec::with_capacity(children.len());
                for (child, field) in children.iter().zip(fields) {
                    arrays.push(self.node(child, field.data_type())?);
                }
                // An object is present when any of its fields is (XDM omits empty objects):
                // OR of the children's validity bitmaps, no per-row work.
                let mut all_valid = false;
                let mut any_valid: Option<BooleanBuffer> = None;
                for array in &arrays {
                    if array.data_type() == &DataType::Null {
                        continue;
                    }
                    match array.logical_nulls() {
                        None => {
                            all_valid = true;
                            break;
                        }
                        Some(nulls) => {
                            any_valid = Some(match any_valid {
                                None => nulls.inner().clone(),
                                Some(acc) => &acc | nulls.inner(),
                            });
                        }
                    }
                }
                let nulls = match (all_valid, any_valid) {
                    (true, _) => None,
                    (false, None) => Some(NullBuffer::new_null(n_rows)),
                    (false, Some(valid)) => {
                        Some(NullBuffer::new(valid)).filter(|n| n.null_count() > 0)
                    }
                };
                Ok(Arc::new(StructArray::try_new(
                    fields.clone(),
                    arrays,
                    nulls,
                )?))
            }
            Node::Iterated(list) => {
                let element_is_scalar = list.iter().any(|(_, path)| path.is_empty());
                let mut per_mapping = Vec::with_capacity(list.len());
                for (index, path) in list {
                    per_mapping.push((*index, path, self.row_values(*index)));
                }
                let mut rows = Vec::with_capacity(n_rows);
                for row in 0..n_rows {
                    let mut elements: Vec<Value> = Vec::new();
                    let mut any = false;
                    for (index, path, values) in &per_mapping {
                        let items = match &values[row] {
                            Value::Null => continue,
                            Value::Array(items) => items,
                            other => {
                                let mapping = &self.plan.mappings[*index];
                                self.problems.push(Problem {
                                    row,
                                    mapping: Some(*index),
                                    error: RowError {
                                        code: ErrorCode::TransformError,
                                        message: format!(
                                            "`[*]` needs an array source, got {}",
                                            other.type_name()
                                        ),
                                        destination: mapping.destination.clone(),
                                    },
                                });
                                continue;
                            }
                        };
                        any = true;
                        if elements.len() < items.len() {
                            let filler = if element_is_scalar {
                                Value::Null
                            } else {
                                Value::Object(Vec::new())
                            };
                            elements.resize(items.len(), filler);
                        }
                        for (element, item) in elements.iter_mut().zip(items) {
                            if element_is_scalar {
                                *element = item.clone();
                            } else {
                                set_path(element, path, item.clone());
                            }
                        }
                    }
                    rows.push(if any {
                        Value::Array(elements)
                    } else {
                        Value::Null
                    });
                }
                let (array, errors) = values_to_array(&rows, data_type);
                // Errors inside elements are reported under the array's own path (`items[].qty`).
                let destination = list
                    .first()
                    .map(|(i, _)| {
                        let text = &self.plan.mappings[*i].destination;
                        text.split("[*]").next().unwrap_or(text).trim().to_owned()
                    })
                    .unwrap_or_default();
                let mapping = list.first().map(|(i, _)| *i);
                self.coerce_problems(errors, mapping, &destination);
                Ok(array)
            }
        }
    }

    /// The column a single mapping writes, coerced to its destination type.
    fn mapping_column(&mut self, index: usize) -> ArrayRef {
        let plan = self.plan;
        let mapping: &CompiledMapping = &plan.mappings[index];
        let n_rows = self.batch.num_rows();
        let data_type = &mapping.data_type;
        match &mapping.source {
            Source::Attribute(path) if path.is_plain() => match resolve_plain(self.batch, path) {
                Some(array) => {
                    let (array, errors) = coerce_array(&array, data_type);
                    self.coerce_problems(errors, Some(index), &mapping.destination);
                    array
                }
                None => new_null_array(data_type, n_rows),
            },
            Source::Static(value) => {
                let values = vec![value.clone(); n_rows];
                values_to_array(&values, data_type).0
            }
            Source::Expression {
                kernel: Some(kernel),
                ..
            } => match kernels::run(kernel, self.batch) {
                Some(output) => {
                    for (row, message) in output.errors {
                        self.transform_problem(row, index, message);
                    }
                    let (array, errors) = coerce_array(&output.array, data_type);
                    self.coerce_problems(errors, Some(index), &mapping.destination);
                    array
                }
                None => self.row_by_row(index),
            },
            _ => self.row_by_row(index),
        }
    }

    fn row_by_row(&mut self, index: usize) -> ArrayRef {
        let values = self.row_values(index);
        let mapping = &self.plan.mappings[index];
        let (array, errors) = values_to_array(&values, &mapping.data_type);
        self.coerce_problems(errors, Some(index), &mapping.destination.clone());
        array
    }

    /// The value of a mapping's source for every row (errors become null + a warning).
    fn row_values(&mut self, index: usize) -> Vec<Value> {
        let plan = self.plan;
        let mapping = &plan.mappings[index];
        let batch = self.batch;
        let n_rows = batch.num_rows();
        match &mapping.source {
            Source::Static(value) => vec![value.clone(); n_rows],
            Source::Attribute(path) => {
                let Some(root) = path.root() else {
                    return vec![Value::Null; n_rows];
                };
                let Some(column) = batch.column_by_name(root) else {
                    return vec![Value::Null; n_rows];
                };
                let rest = FieldPath {
                    segments: path.segments[1..].to_vec(),
                };
                (0..n_rows)
                    .map(|row| {
                        let value = array_value(column.as_ref(), row);
                        if rest.segments.is_empty() {
                            value
                        } else {
                            lookup(&value, &rest)
                        }
                    })
                    .collect()
            }
            Source::Expression { expr, roots, .. } => {
                let columns: Vec<(String, ArrayRef)> = match roots {
                    Some(roots) => roots
                        .iter()
                        .filter_map(|root| {
                            batch
                                .column_by_name(root)
                                .map(|c| (root.clone(), Arc::clone(c)))
                        })
                        .collect(),
                    None => batch
                        .schema()
                        .fields()
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, c)| (f.name().clone(), Arc::clone(c)))
                        .collect(),
                };
                let mut values = Vec::with_capacity(n_rows);
                // One record object reused for every row: only its values change.
                let mut record = Value::Object(
                    columns
                        .iter()
                        .map(|(name, _)| (name.clone(), Value::Null))
                        .collect(),
                );
                for row in 0..n_rows {
                    if let Value::Object(entries) = &mut record {
                        for ((_, slot), (_, column)) in entries.iter_mut().zip(&columns) {
                            *slot = array_value(column.as_ref(), row);
                        }
                    }
                    match expr::eval(expr, &record, &mut self.state) {
                        Ok(value) => values.push(value),
                        Err(err) => {
                            values.push(Value::Null);
                            self.transform_problem(row, index, err.message);
                        }
                    }
                }
                values
            }
        }
    }

    fn transform_problem(&mut self, row: usize, index: usize, message: String) {
        let destination = self.plan.mappings[index].destination.clone();
        self.problems.push(Problem {
            row,
            mapping: Some(index),
            error: RowError {
                code: ErrorCode::TransformError,
                message,
                destination,
            },
        });
    }

    fn coerce_problems(
        &mut self,
        errors: Vec<CoerceError>,
        mapping: Option<usize>,
        destination: &str,
    ) {
        for error in errors {
            let destination = if error.path.is_empty() {
                destination.to_owned()
            } else if error.path.starts_with('[') {
                format!("{destination}{}", error.path)
            } else {
                format!("{destination}.{}", error.path)
            };
            self.problems.push(Problem {
                row: error.row,
                mapping,
                error: RowError {
                    code: ErrorCode::Unparsable,
                    message: error.message,
                    destination,
                },
            });
        }
    }
}

/// The array at a path of names through structs, with the nulls of every parent merged in;
/// `None` when a step is missing.
pub(super) fn resolve_plain(batch: &RecordBatch, path: &FieldPath) -> Option<ArrayRef> {
    let mut segments = path.segments.iter();
    let Some(Segment::Name(root)) = segments.next() else {
        return None;
    };
    let mut current = Arc::clone(batch.column_by_name(root)?);
    for segment in segments {
        let Segment::Name(name) = segment else {
            return None;
        };
        let DataType::Struct(_) = current.data_type() else {
            return None;
        };
        let structs = current.as_struct();
        let child = Arc::clone(structs.column_by_name(name)?);
        current = match NullBuffer::union(structs.nulls(), child.nulls()) {
            merged if merged.as_ref() == child.nulls() => child,
            merged => make_array(child.to_data().into_builder().nulls(merged).build().ok()?),
        };
    }
    Some(current)
}

fn lookup(value: &Value, path: &FieldPath) -> Value {
    expr::lookup_segments(value, &path.segments)
}

/// Sets `value` at a path of names inside an object, creating objects on the way.
fn set_path(target: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *target = value;
        return;
    };
    if !matches!(target, Value::Object(_)) {
        *target = Value::Object(Vec::new());
    }
    let Value::Object(entries) = target else {
        return;
    };
    let position = match entries.iter().position(|(k, _)| k == first) {
        Some(p) => p,
        None => {
            entries.push((
                first.clone(),
                if rest.is_empty() {
                    Value::Null
                } else {
                    Value::Object(Vec::new())
                },
            ));
            entries.len() - 1
        }
    };
    set_path(&mut entries[position].1, rest, value);
}

/// Whether a field or anything inside it is required (non-nullable).
fn has_required(field: &Field) -> bool {
    !field.is_nullable()
        || match field.data_type() {
            DataType::Struct(fields) => fields.iter().any(|f| has_required(f)),
            DataType::List(item) => has_required(item),
            _ => false,
        }
}

/// Rows where a non-nullable field is null (inside present parents only).
fn required_violations(
    array: &dyn Array,
    field: &Field,
    path: &str,
    indices: &[usize],
    row_of: &dyn Fn(usize) -> usize,
    out: &mut Vec<(usize, String)>,
) {
    if !field.is_nullable() {
        for &i in indices {
            if array.is_null(i) {
                out.push((row_of(i), path.to_owned()));
            }
        }
    }
    match field.data_type() {
        DataType::Struct(fields) => {
            let present: Vec<usize> = indices
                .iter()
                .copied()
                .filter(|&i| array.is_valid(i))
                .collect();
            if present.is_empty() {
                return;
            }
            let structs = array.as_struct();
            for (child_field, child) in fields.iter().zip(structs.columns()) {
                let child_path = format!("{path}.{}", child_field.name());
                required_violations(
                    child.as_ref(),
                    child_field,
                    &child_path,
                    &present,
                    row_of,
                    out,
                );
            }
        }
        DataType::List(item) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let mut child_indices = Vec::new();
            let mut child_rows = Vec::new();
            for &i in indices {
                if list.is_valid(i) {
                    for child in offsets[i] as usize..offsets[i + 1] as usize {
                        child_indices.push(child);
                        child_rows.push(row_of(i));
                    }
                }
            }
            if child_indices.is_empty() {
                return;
            }
            // Map child positions back to batch rows through a dense lookup.
            let max = child_indices.iter().copied().max().unwrap_or(0);
            let mut to_row = vec![0usize; max + 1];
            for (child, row) in child_indices.iter().zip(&child_rows) {
                to_row[*child] = *row;
            }
            let child_path = format!("{path}[]");
            required_violations(
                list.values().as_ref(),
                item,
                &child_path,
                &child_indices,
                &|i| to_row[i],
                out,
            );
        }
        _ => {}
    }
}
