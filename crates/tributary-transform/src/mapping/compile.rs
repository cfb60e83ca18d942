//! Compilation: parse every mapping, build the destination tree, fix every destination type
//! (from the target schema, or inferred from the source schema and the expressions), and pick
//! a kernel for calculated fields that have one. Reports every problem, not only the first.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};

use super::kernels::{self, Kernel};
use super::{CompileError, ErrorCode, MappingPlan, MappingSet, MappingSourceType, RowPolicy};
use crate::expr::{self, BinaryOp, Expr, ExprKind, FieldPath, Segment, UnaryOp, Value};
use crate::functions::{Function, ReturnKind, arity_message};
use crate::schema::{coerce_value, nullable_field, nullable_type, timestamp_type};

#[derive(Debug, Clone)]
pub(super) struct CompiledMapping {
    pub index: usize,
    pub source_text: String,
    pub destination: String,
    pub source: Source,
    /// The (nullable) type this mapping's values are coerced to: the destination column's type,
    /// or for `dest[*].y` the type of `y`.
    pub data_type: DataType,
}

#[derive(Debug, Clone)]
pub(super) enum Source {
    Attribute(FieldPath),
    /// A STATIC value, already coerced to the destination type.
    Static(Value),
    Expression {
        expr: Expr,
        kernel: Option<Kernel>,
        roots: Option<Vec<String>>,
    },
}

/// A top-level output column.
#[derive(Debug, Clone)]
pub(super) struct OutputField {
    /// With the target's nullability, which the required checks read (the written schema is
    /// [`MappingPlan::output_schema`]).
    pub field: Arc<Field>,
    pub node: Node,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    /// Written by one mapping.
    Column(usize),
    /// A struct assembled from children (same order as the struct's fields).
    Struct(Vec<Node>),
    /// A list written by `[*]` mappings: (mapping, path inside the element).
    Iterated(Vec<(usize, Vec<String>)>),
    /// A target field no mapping writes.
    Empty,
}

/// The destinations, as a tree, before types are known.
#[derive(Debug, Default)]
struct DestTree {
    children: Vec<(String, DestEntry)>,
}

#[derive(Debug)]
enum DestEntry {
    Leaf(usize),
    Branch(DestTree),
    Iter(Vec<(usize, Vec<String>)>),
}

/// Compiles a mapping set against the source schema (for types and kernels) and an optional
/// target schema. Every problem is reported, each naming its mapping.
pub fn compile(
    mapping_set: &MappingSet,
    source_schema: &Schema,
    target: Option<&Schema>,
) -> Result<MappingPlan, Vec<CompileError>> {
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(mapping_set.mappings.len());
    let mut tree = DestTree::default();
    for (index, mapping) in mapping_set.mappings.iter().enumerate() {
        let error = |position: Option<usize>, message: String| CompileError {
            mapping_index: Some(index),
            destination: mapping.destination.clone(),
            position,
            message,
        };
        let destination = match FieldPath::parse(&mapping.destination) {
            Ok(path) => path,
            Err(err) => {
                let position = err.span.column(mapping.destination.trim());
                errors.push(error(
                    Some(position),
                    format!("invalid destination path: {}", err.message),
                ));
                parsed.push(placeholder(index, mapping));
                continue;
            }
        };
        let source = match mapping.source_type {
            // The legacy dialect has no source type: its `sourceAttribute` holds paths and,
            // in real mapping sets, calculated fields too (`lower(status)`), so a source that
            // cannot be a path is compiled as an expression.
            MappingSourceType::Attribute if looks_like_expression(&mapping.source) => {
                match compile_expression(&mapping.source) {
                    Ok(source) => source,
                    Err(problems) => {
                        errors.extend(
                            problems
                                .into_iter()
                                .map(|(position, message)| error(Some(position), message)),
                        );
                        parsed.push(placeholder(index, mapping));
                        continue;
                    }
                }
            }
            MappingSourceType::Attribute => match FieldPath::parse(&mapping.source) {
                Ok(path) => Source::Attribute(path),
                Err(err) => {
                    let position = err.span.column(mapping.source.trim());
                    errors.push(error(
                        Some(position),
                        format!("invalid source path: {}", err.message),
                    ));
                    parsed.push(placeholder(index, mapping));
                    continue;
                }
            },
            MappingSourceType::Static => Source::Static(Value::Str(mapping.source.clone())),
            MappingSourceType::Expression => match compile_expression(&mapping.source) {
                Ok(source) => source,
                Err(problems) => {
                    errors.extend(
                        problems
                            .into_iter()
                            .map(|(position, message)| error(Some(position), message)),
                    );
                    parsed.push(placeholder(index, mapping));
                    continue;
                }
            },
        };
        if let Err(message) = tree.insert(&destination, index) {
            errors.push(error(None, message));
            parsed.push(placeholder(index, mapping));
            continue;
        }
        parsed.push(CompiledMapping {
            index,
            source_text: mapping.source.clone(),
            destination: mapping.destination.clone(),
            source,
            data_type: DataType::Null,
        });
    }
    if mapping_set.mappings.is_empty() {
        errors.push(CompileError {
            mapping_index: None,
            destination: String::new(),
            position: None,
            message: "the mapping set has no mappings".to_owned(),
        });
    }
    // Mappings that failed to parse hold a placeholder and are not in the tree, so positions in
    // `parsed` are mapping indexes and the checks below still report every other problem.
    let mut types: Vec<Option<DataType>> = vec![None; parsed.len()];
    let fields = match target {
        Some(target) => {
            let mut fields = Vec::with_capacity(target.fields().len());
            for field in target.fields() {
                let entry = tree.take(field.name());
                let node = target_node(
                    field,
                    entry.as_ref(),
                    field.name(),
                    &mut types,
                    &parsed,
                    &mut errors,
                );
                fields.push(OutputField {
                    field: Arc::clone(field),
                    node,
                });
            }
            for (name, entry) in &tree.children {
                for index in entry.mappings() {
                    errors.push(not_in_target(&parsed[index], name));
                }
            }
            fields
        }
        None => {
            let mut fields = Vec::with_capacity(tree.children.len());
            for (name, entry) in &tree.children {
                let (data_type, node) = derived_node(entry, &mut types, &parsed, source_schema);
                fields.push(OutputField {
                    field: Arc::new(Field::new(name, data_type, true)),
                    node,
                });
            }
            fields
        }
    };
    for (mapping, data_type) in parsed.iter_mut().zip(types) {
        mapping.data_type = nullable_type(&data_type.unwrap_or(DataType::Utf8));
        if let Source::Static(value) = &mapping.source {
            match coerce_value(value.clone(), &mapping.data_type) {
                Ok(coerced) => mapping.source = Source::Static(coerced),
                Err(message) => errors.push(CompileError {
                    mapping_index: Some(mapping.index),
                    destination: mapping.destination.clone(),
                    position: None,
                    message: format!("static value does not fit the destination: {message}"),
                }),
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.mapping_index);
        return Err(errors);
    }
    let policy = RowPolicy::of(mapping_set);
    // With `allowNullValues` a required destination may be written null, so its column must be
    // nullable; the fields keep the target's nullability for the required checks.
    let output_fields: Vec<Arc<Field>> = fields
        .iter()
        .map(|f| {
            if policy.rejects(ErrorCode::RequiredFieldNull) {
                Arc::clone(&f.field)
            } else {
                Arc::new(nullable_field(&f.field))
            }
        })
        .collect();
    Ok(MappingPlan {
        output_schema: Arc::new(Schema::new(output_fields)),
        mappings: parsed,
        fields,
        policy,
    })
}

/// Stands in for a mapping that failed to parse (never reached: compilation fails).
fn placeholder(index: usize, mapping: &super::Mapping) -> CompiledMapping {
    CompiledMapping {
        index,
        source_text: mapping.source.clone(),
        destination: mapping.destination.clone(),
        source: Source::Static(Value::Null),
        data_type: DataType::Null,
    }
}

/// Parses and checks a calculated field; problems come with their 1-based column.
fn compile_expression(text: &str) -> Result<Source, Vec<(usize, String)>> {
    let parsed_expr =
        expr::parse(text).map_err(|err| vec![(err.span.column(text), err.message)])?;
    let mut arity_errors = Vec::new();
    check_arity(&parsed_expr, &mut arity_errors);
    if !arity_errors.is_empty() {
        return Err(arity_errors
            .into_iter()
            .map(|(span, message)| (span.column(text), message))
            .collect());
    }
    let roots = expr::referenced_roots(&parsed_expr).map(|set| {
        let mut roots: Vec<String> = set.into_iter().collect();
        roots.sort();
        roots
    });
    let kernel = kernels::select(&parsed_expr);
    Ok(Source::Expression {
        expr: parsed_expr,
        kernel,
        roots,
    })
}

/// True when an ATTRIBUTE source cannot be a path: outside `${...}` names it has a call,
/// a quote, an operator or a space.
pub(super) fn looks_like_expression(text: &str) -> bool {
    let mut rest = text.trim();
    let mut outside = String::new();
    while let Some(start) = rest.find("${") {
        outside.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = "";
                break;
            }
        }
    }
    outside.push_str(rest);
    outside.chars().any(|c| {
        matches!(
            c,
            '(' | ')'
                | '"'
                | '\''
                | '+'
                | '*'
                | '/'
                | '<'
                | '>'
                | '='
                | '!'
                | '&'
                | '|'
                | '?'
                | ','
                | ' '
        )
    })
}

/// [`compile`] with the target given as a JSON schema (`targetConnection.data.schema.jsonSchema`
/// or a schema file); a schema that cannot be converted is reported as a set-level error naming
/// its JSON pointer.
pub fn compile_with_json_schema(
    mapping_set: &MappingSet,
    source_schema: &Schema,
    target: Option<&serde_json::Value>,
) -> Result<MappingPlan, Vec<CompileError>> {
    let target = match target.map(crate::schema::json_schema_to_arrow).transpose() {
        Ok(target) => target,
        Err(err) => {
            return Err(vec![CompileError {
                mapping_index: None,
                destination: String::new(),
                position: None,
                message: format!("target schema: {err}"),
            }]);
        }
    };
    compile(mapping_set, source_schema, target.as_ref())
}

fn not_in_target(mapping: &CompiledMapping, prefix: &str) -> CompileError {
    CompileError {
        mapping_index: Some(mapping.index),
        destination: mapping.destination.clone(),
        position: None,
        message: format!("`{prefix}` is not a field of the target schema"),
    }
}

/// Checks the number of arguments of every call (the parser knows names, not arities).
fn check_arity(expr: &Expr, errors: &mut Vec<(expr::Span, String)>) {
    match &expr.kind {
        ExprKind::Call { function, args } => {
            let (min, max) = function.arity();
            if args.len() < min || max.is_some_and(|max| args.len() > max) {
                errors.push((expr.span, arity_message(*function, args.len())));
            }
            // Literal date formats and regexes are checked once here rather than failing every row.
            let literal_at = |i: usize| match args.get(i).map(|a| &a.kind) {
                Some(ExprKind::Literal(Value::Str(text))) => Some((text, args[i].span)),
                _ => None,
            };
            match function {
                Function::Date | Function::Format | Function::Dformat => {
                    if let Some((pattern, span)) = literal_at(1)
                        && let Err(message) = pattern.parse::<crate::functions::DateFormat>()
                    {
                        errors.push((span, format!("{}: {message}", function.name())));
                    }
                }
                Function::ExtractRegex
                | Function::MatchesRegex
                | Function::Explode
                | Function::Split => {
                    if let Some((pattern, span)) = literal_at(1)
                        && let Err(err) = regex::Regex::new(pattern)
                    {
                        errors.push((
                            span,
                            format!("{}: invalid regex {pattern:?}: {err}", function.name()),
                        ));
                    }
                }
                _ => {}
            }
            for arg in args {
                check_arity(arg, errors);
            }
        }
        ExprKind::Unary { operand, .. } => check_arity(operand, errors),
        ExprKind::Binary { lhs, rhs, .. } => {
            check_arity(lhs, errors);
            check_arity(rhs, errors);
        }
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => {
            check_arity(condition, errors);
            if let Some(then) = then {
                check_arity(then, errors);
            }
            check_arity(otherwise, errors);
        }
        ExprKind::Array(items) => items.iter().for_each(|i| check_arity(i, errors)),
        ExprKind::Object(entries) => entries.iter().for_each(|(_, e)| check_arity(e, errors)),
        ExprKind::Member { target, .. } => check_arity(target, errors),
        ExprKind::Index { target, index } => {
            check_arity(target, errors);
            check_arity(index, errors);
        }
        ExprKind::Literal(_) | ExprKind::Field(_) => {}
    }
}

impl DestTree {
    fn insert(&mut self, destination: &FieldPath, index: usize) -> Result<(), String> {
        let each = destination.each_position();
        let (prefix, element) = match each {
            Some(at) => (
                &destination.segments[..at],
                Some(&destination.segments[at + 1..]),
            ),
            None => (&destination.segments[..], None),
        };
        let mut names = Vec::with_capacity(prefix.len());
        for segment in prefix {
            match segment {
                Segment::Name(name) => names.push(name.clone()),
                Segment::Index(_) => {
                    return Err("destinations cannot index arrays; use `[*]` to iterate".to_owned());
                }
                Segment::Each => return Err("a destination may contain one `[*]`".to_owned()),
            }
        }
        let element_path = match element {
            None => None,
            Some(rest) => {
                let mut path = Vec::with_capacity(rest.len());
                for segment in rest {
                    match segment {
                        Segment::Name(name) => path.push(name.clone()),
                        _ => {
                            return Err(
                                "a destination may contain one `[*]` and no index".to_owned()
                            );
                        }
                    }
                }
                Some(path)
            }
        };
        let Some((last, parents)) = names.split_last() else {
            return Err("empty destination".to_owned());
        };
        let mut tree = self;
        for (depth, name) in parents.iter().enumerate() {
            let position = match tree.children.iter().position(|(n, _)| n == name) {
                Some(position) => position,
                None => {
                    tree.children
                        .push((name.clone(), DestEntry::Branch(DestTree::default())));
                    tree.children.len() - 1
                }
            };
            tree = match &mut tree.children[position].1 {
                DestEntry::Branch(child) => child,
                _ => {
                    return Err(format!(
                        "`{}` is written whole by another mapping, so nothing can be written inside it",
                        names[..=depth].join(".")
                    ));
                }
            };
        }
        let existing = tree.children.iter_mut().find(|(n, _)| n == last);
        match (existing, element_path) {
            (None, None) => tree.children.push((last.clone(), DestEntry::Leaf(index))),
            (None, Some(path)) => tree
                .children
                .push((last.clone(), DestEntry::Iter(vec![(index, path)]))),
            (Some((_, DestEntry::Iter(list))), Some(path)) => {
                if list
                    .iter()
                    .any(|(_, p)| *p == path || p.is_empty() || path.is_empty())
                {
                    return Err(format!(
                        "destination `{destination}` is written by another mapping too"
                    ));
                }
                list.push((index, path));
            }
            (Some(_), _) => {
                return Err(format!(
                    "destination `{destination}` overlaps another mapping's destination"
                ));
            }
        }
        Ok(())
    }

    fn take(&mut self, name: &str) -> Option<DestEntry> {
        let position = self.children.iter().position(|(n, _)| n == name)?;
        Some(self.children.remove(position).1)
    }
}

impl DestEntry {
    fn mappings(&self) -> Vec<usize> {
        match self {
            DestEntry::Leaf(index) => vec![*index],
            DestEntry::Branch(tree) => tree
                .children
                .iter()
                .flat_map(|(_, e)| e.mappings())
                .collect(),
            DestEntry::Iter(list) => list.iter().map(|(i, _)| *i).collect(),
        }
    }
}

fn target_node(
    field: &Field,
    entry: Option<&DestEntry>,
    path: &str,
    types: &mut [Option<DataType>],
    parsed: &[CompiledMapping],
    errors: &mut Vec<CompileError>,
) -> Node {
    match entry {
        None => Node::Empty,
        Some(DestEntry::Leaf(index)) => {
            types[*index] = Some(field.data_type().clone());
            Node::Column(*index)
        }
        Some(DestEntry::Branch(tree)) => {
            let DataType::Struct(children) = field.data_type() else {
                for index in tree_mappings(tree) {
                    errors.push(CompileError {
                        mapping_index: Some(parsed[index].index),
                        destination: parsed[index].destination.clone(),
                        position: None,
                        message: format!("target field `{path}` is not an object"),
                    });
                }
                return Node::Empty;
            };
            let mut remaining: Vec<(String, &DestEntry)> =
                tree.children.iter().map(|(n, e)| (n.clone(), e)).collect();
            let mut nodes = Vec::with_capacity(children.len());
            for child in children {
                let position = remaining.iter().position(|(n, _)| n == child.name());
                let child_entry = position.map(|p| remaining.remove(p).1);
                let child_path = format!("{path}.{}", child.name());
                nodes.push(target_node(
                    child,
                    child_entry,
                    &child_path,
                    types,
                    parsed,
                    errors,
                ));
            }
            for (name, entry) in remaining {
                for index in entry.mappings() {
                    errors.push(not_in_target(&parsed[index], &format!("{path}.{name}")));
                }
            }
            Node::Struct(nodes)
        }
        Some(DestEntry::Iter(list)) => {
            let DataType::List(item) = field.data_type() else {
                for (index, _) in list {
                    errors.push(CompileError {
                        mapping_index: Some(parsed[*index].index),
                        destination: parsed[*index].destination.clone(),
                        position: None,
                        message: format!(
                            "target field `{path}` is not an array, so `[*]` cannot write it"
                        ),
                    });
                }
                return Node::Empty;
            };
            for (index, element_path) in list {
                match type_at(item.data_type(), element_path) {
                    Some(data_type) => types[*index] = Some(data_type),
                    None => errors.push(not_in_target(
                        &parsed[*index],
                        &format!("{path}[*].{}", element_path.join(".")),
                    )),
                }
            }
            Node::Iterated(list.clone())
        }
    }
}

fn tree_mappings(tree: &DestTree) -> Vec<usize> {
    tree.children
        .iter()
        .flat_map(|(_, e)| e.mappings())
        .collect()
}

/// The type at a path of names inside a type (the type itself for an empty path).
fn type_at(data_type: &DataType, path: &[String]) -> Option<DataType> {
    let mut current = data_type.clone();
    for name in path {
        let DataType::Struct(fields) = &current else {
            return None;
        };
        current = fields
            .iter()
            .find(|f| f.name() == name)?
            .data_type()
            .clone();
    }
    Some(current)
}

fn derived_node(
    entry: &DestEntry,
    types: &mut [Option<DataType>],
    parsed: &[CompiledMapping],
    source: &Schema,
) -> (DataType, Node) {
    match entry {
        DestEntry::Leaf(index) => {
            let data_type = infer_mapping_type(&parsed[*index], source);
            types[*index] = Some(data_type.clone());
            (data_type, Node::Column(*index))
        }
        DestEntry::Branch(tree) => {
            let mut fields = Vec::with_capacity(tree.children.len());
            let mut nodes = Vec::with_capacity(tree.children.len());
            for (name, child) in &tree.children {
                let (data_type, node) = derived_node(child, types, parsed, source);
                fields.push(Field::new(name, data_type, true));
                nodes.push(node);
            }
            (DataType::Struct(Fields::from(fields)), Node::Struct(nodes))
        }
        DestEntry::Iter(list) => {
            // The element type: a struct of the element paths, or the value itself for `dest[*]`.
            let mut element = DestTree::default();
            let mut scalar = None;
            for (index, element_path) in list {
                let data_type = match infer_mapping_type(&parsed[*index], source) {
                    DataType::List(item) => item.data_type().clone(),
                    other => other,
                };
                types[*index] = Some(data_type.clone());
                if element_path.is_empty() {
                    scalar = Some(data_type);
                } else {
                    insert_typed(&mut element, element_path, *index);
                }
            }
            let item_type = match scalar {
                Some(data_type) => data_type,
                None => struct_of(&element, types),
            };
            (
                DataType::List(Arc::new(Field::new("item", item_type, true))),
                Node::Iterated(list.clone()),
            )
        }
    }
}

fn insert_typed(tree: &mut DestTree, path: &[String], index: usize) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = tree;
    for name in parents {
        let position = match current.children.iter().position(|(n, _)| n == name) {
            Some(p) => p,
            None => {
                current
                    .children
                    .push((name.clone(), DestEntry::Branch(DestTree::default())));
                current.children.len() - 1
            }
        };
        current = match &mut current.children[position].1 {
            DestEntry::Branch(child) => child,
            _ => return,
        };
    }
    current
        .children
        .push((last.clone(), DestEntry::Leaf(index)));
}

fn struct_of(tree: &DestTree, types: &[Option<DataType>]) -> DataType {
    let fields: Vec<Field> = tree
        .children
        .iter()
        .map(|(name, entry)| {
            let data_type = match entry {
                DestEntry::Leaf(index) => types[*index].clone().unwrap_or(DataType::Utf8),
                DestEntry::Branch(child) => struct_of(child, types),
                DestEntry::Iter(_) => DataType::Utf8,
            };
            Field::new(name, data_type, true)
        })
        .collect();
    DataType::Struct(Fields::from(fields))
}

/// The destination type of a mapping without a target schema.
fn infer_mapping_type(mapping: &CompiledMapping, source: &Schema) -> DataType {
    match &mapping.source {
        // A field seen only as null so far (a `Null` column) is text until a target says otherwise.
        Source::Attribute(path) => match source_path_type(source, path) {
            None | Some(DataType::Null) => DataType::Utf8,
            Some(data_type) => data_type,
        },
        Source::Static(_) => DataType::Utf8,
        Source::Expression { expr, .. } => {
            normalize(&infer_expr_type(expr, source).unwrap_or(DataType::Utf8))
        }
    }
}

/// The type a path reads in the source schema; `[*]` gives a list of what follows.
pub(super) fn source_path_type(schema: &Schema, path: &FieldPath) -> Option<DataType> {
    let root = path.root()?;
    let field = schema.fields().iter().find(|f| f.name() == root)?;
    path_type(field.data_type(), &path.segments[1..])
}

fn path_type(data_type: &DataType, segments: &[Segment]) -> Option<DataType> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(data_type.clone());
    };
    match (first, data_type) {
        (Segment::Name(name), DataType::Struct(fields)) => {
            path_type(fields.iter().find(|f| f.name() == name)?.data_type(), rest)
        }
        (Segment::Index(_), DataType::List(item) | DataType::LargeList(item)) => {
            path_type(item.data_type(), rest)
        }
        (Segment::Each, DataType::List(item) | DataType::LargeList(item)) => {
            let inner = path_type(item.data_type(), rest)?;
            Some(DataType::List(Arc::new(Field::new("item", inner, true))))
        }
        _ => None,
    }
}

/// The static type of an expression, `None` when unknown (the caller falls back to text).
fn infer_expr_type(expr: &Expr, source: &Schema) -> Option<DataType> {
    match &expr.kind {
        ExprKind::Literal(value) => match value {
            Value::Null => None,
            Value::Bool(_) => Some(DataType::Boolean),
            Value::Int(_) => Some(DataType::Int64),
            Value::Float(_) => Some(DataType::Float64),
            Value::Str(_) => Some(DataType::Utf8),
            Value::DateTime(_) => Some(timestamp_type()),
            Value::Array(_) | Value::Object(_) => None,
        },
        ExprKind::Field(path) => source_path_type(source, path).map(|t| normalize(&t)),
        ExprKind::Call { function, args } => match function.return_kind() {
            ReturnKind::Bool => Some(DataType::Boolean),
            ReturnKind::Int => Some(DataType::Int64),
            ReturnKind::Float => Some(DataType::Float64),
            ReturnKind::Str => Some(DataType::Utf8),
            ReturnKind::DateTime => Some(timestamp_type()),
            ReturnKind::StrArray => Some(DataType::List(Arc::new(Field::new(
                "item",
                DataType::Utf8,
                true,
            )))),
            ReturnKind::Dynamic => None,
            ReturnKind::SameAsArgs => {
                let candidates: Vec<&Expr> = match function {
                    Function::Iif => args.iter().skip(1).collect(),
                    Function::Decode => {
                        let options = &args[1.min(args.len())..];
                        let mut values: Vec<&Expr> = options.iter().skip(1).step_by(2).collect();
                        if options.len() % 2 == 1 {
                            values.extend(options.last());
                        }
                        values
                    }
                    _ => args.iter().collect(),
                };
                let single_array = candidates.len() == 1;
                for candidate in candidates {
                    match infer_expr_type(candidate, source) {
                        Some(DataType::List(item)) if single_array => {
                            return Some(item.data_type().clone());
                        }
                        Some(data_type) => return Some(data_type),
                        None => {}
                    }
                }
                None
            }
        },
        ExprKind::Unary {
            op: UnaryOp::Not, ..
        } => Some(DataType::Boolean),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => infer_expr_type(operand, source),
        ExprKind::Binary { op, lhs, rhs } => match op {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                let (l, r) = (infer_expr_type(lhs, source), infer_expr_type(rhs, source));
                match (l, r) {
                    (Some(DataType::Utf8), _) | (_, Some(DataType::Utf8))
                        if *op == BinaryOp::Add =>
                    {
                        Some(DataType::Utf8)
                    }
                    (Some(DataType::Int64), Some(DataType::Int64)) => Some(DataType::Int64),
                    (
                        Some(DataType::Int64 | DataType::Float64),
                        Some(DataType::Int64 | DataType::Float64),
                    ) => Some(DataType::Float64),
                    _ => None,
                }
            }
            _ => Some(DataType::Boolean),
        },
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => match then {
            Some(then) => {
                infer_expr_type(then, source).or_else(|| infer_expr_type(otherwise, source))
            }
            None => {
                infer_expr_type(condition, source).or_else(|| infer_expr_type(otherwise, source))
            }
        },
        ExprKind::Array(items) => {
            let item = items
                .iter()
                .find_map(|i| infer_expr_type(i, source))
                .unwrap_or(DataType::Utf8);
            Some(DataType::List(Arc::new(Field::new("item", item, true))))
        }
        ExprKind::Object(_) | ExprKind::Member { .. } | ExprKind::Index { .. } => None,
    }
}

/// Maps any Arrow type to the set the writer and the target schemas use.
fn normalize(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => DataType::Int64,
        DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _) => DataType::Float64,
        DataType::Boolean => DataType::Boolean,
        DataType::Timestamp(_, _) | DataType::Date64 => timestamp_type(),
        DataType::Date32 => DataType::Date32,
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Field::new(f.name(), normalize(f.data_type()), true))
                .collect::<Fields>(),
        ),
        DataType::List(item) | DataType::LargeList(item) => DataType::List(Arc::new(Field::new(
            "item",
            normalize(item.data_type()),
            true,
        ))),
        _ => DataType::Utf8,
    }
}
