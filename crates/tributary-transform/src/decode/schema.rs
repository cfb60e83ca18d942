//! Schemas for decoding: a JSON schema (XDM-like) to Arrow, inference of the shape of records
//! (source field order kept, unlike arrow-json's own inference which sorts by name), and the
//! merge rules that let the schema grow page after page.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::reader::{Tape, TapeElement};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value;

use super::leaf::PathCounter;
use super::page::PageDecoderSpec;
use super::tape::{self, TapeVisitor};
use super::{DEFAULT_MAX_DEPTH, DecodeError};

/// The time zone of timestamp columns, as an offset: arrow (without its `chrono-tz` feature,
/// which this workspace does not enable) can only display and cast offset time zones, and Parquet
/// stores either spelling the same way (adjusted to UTC).
pub const UTC_TIMEZONE: &str = "+00:00";

/// Converts a JSON schema to an Arrow schema: `string` is `Utf8` (format `date-time` is
/// `Timestamp(µs, UTC)`, spelled [`UTC_TIMEZONE`], format `date` is `Date32`), `integer` `Int64`, `number` `Float64`,
/// `boolean` `Boolean`, `null` `Null`, `object` a struct in `properties` order, `array` a list of
/// `items`. Every field is nullable: `required` is a validation matter, and a missing value must
/// not fail a whole page. A schema that accepts anything (no `type`, an object without
/// `properties`, a union of several types) becomes `Utf8` holding JSON text.
pub fn json_schema_to_arrow(schema: &Value) -> Result<Schema, DecodeError> {
    let fields = object_fields(schema, "", 0)?;
    Ok(Schema::new(fields))
}

/// Infers the schema of the first `max_records` records of `ndjson` (all if fewer), keeping the
/// order in which fields first appear. Errors name page 0.
pub fn infer_schema(ndjson: &[u8], max_records: usize) -> Result<Schema, DecodeError> {
    let end = match tape::record_lines(ndjson).nth(max_records) {
        Some(line) => line.as_ptr() as usize - ndjson.as_ptr() as usize,
        None => ndjson.len(),
    };
    let mut shape = ObjectShape::default();
    infer_into(&mut shape, 0, &ndjson[..end], DEFAULT_MAX_DEPTH)?;
    Ok(shape.to_schema())
}

/// The most fields a nested object may have before it is kept as JSON text.
const MAX_NESTED_FIELDS: usize = 1000;

/// The fields of an object as inferred so far, in first-seen order.
#[derive(Debug, Default, Clone)]
pub(super) struct ObjectShape {
    names: Vec<String>,
    shapes: Vec<Shape>,
    index: HashMap<String, usize>,
}

/// What a page's inference found besides the shape.
#[derive(Debug)]
pub(super) struct Inference {
    pub records: u64,
    /// Paths whose containers were cut at the depth limit.
    pub capped_paths: BTreeSet<String>,
}

/// The inferred kind of one field.
#[derive(Debug, Clone)]
enum Shape {
    /// Only nulls (or empty objects) so far.
    Null,
    Bool,
    Int,
    Float,
    /// Strings, or values of disagreeing kinds kept as JSON text.
    Text,
    Object(ObjectShape),
    List(Box<Shape>),
    /// A type inference never produces (from a schema given by someone else); any value merged
    /// into it turns it into text.
    Other(DataType),
}

/// A field path as a chain on the stack, rendered only when needed (rarely).
struct PathNode<'a> {
    name: &'a str,
    parent: Option<&'a PathNode<'a>>,
}

struct InferVisitor {
    shape: ObjectShape,
    max_depth: usize,
    capped_paths: BTreeSet<String>,
    not_an_object: Option<(u64, &'static str)>,
    /// Decode the records on the same tape once their shape is known (see [`infer_then_decode`]).
    then_decode: Option<ThenDecode>,
}

/// The records of a page decoded on the tape inference walked: one batch and the counters of
/// its decoders, or why the decoders refused the page.
pub(super) type OnTape = Result<(RecordBatch, Vec<Arc<PathCounter>>), ArrowError>;

/// What [`infer_then_decode`] needs to decode, and what came of it.
struct ThenDecode {
    spec: PageDecoderSpec,
    /// Tape chunks seen: decoding on the tape is only right when the page was one chunk (its
    /// whole shape known before decoding).
    chunks: usize,
    decoded: Option<OnTape>,
}

/// Walks the records of `bytes` and merges their shape into `shape`.
pub(super) fn infer_into(
    shape: &mut ObjectShape,
    page_idx: u64,
    bytes: &[u8],
    max_depth: usize,
) -> Result<Inference, DecodeError> {
    infer_with(shape, page_idx, bytes, max_depth, None).map(|(inference, _)| inference)
}

/// Like [`infer_into`], then decodes the page's records on the tape inference walked, with the
/// schema inferred (`shape` as it ends up) and `spec`'s other settings (its capped paths joined
/// by those found here). The decoding is `None` when the page was not one tape chunk, and an
/// error when the decoders refused the page; the inference stands either way.
pub(super) fn infer_then_decode(
    shape: &mut ObjectShape,
    page_idx: u64,
    bytes: &[u8],
    spec: PageDecoderSpec,
) -> Result<(Inference, Option<OnTape>), DecodeError> {
    let then = ThenDecode {
        spec: spec.clone(),
        chunks: 0,
        decoded: None,
    };
    infer_with(shape, page_idx, bytes, spec.max_depth, Some(then))
}

fn infer_with(
    shape: &mut ObjectShape,
    page_idx: u64,
    bytes: &[u8],
    max_depth: usize,
    then_decode: Option<ThenDecode>,
) -> Result<(Inference, Option<OnTape>), DecodeError> {
    let visitor = InferVisitor {
        shape: std::mem::take(shape),
        max_depth,
        capped_paths: BTreeSet::new(),
        not_an_object: None,
        then_decode,
    };
    let (visitor, result) = tape::probe(bytes, visitor);
    *shape = visitor.shape;
    if let Some((record, found)) = visitor.not_an_object {
        return Err(tape::not_an_object(page_idx, bytes, record, found));
    }
    let records = result.map_err(|error| tape::invalid_json(page_idx, bytes, &error))?;
    let decoded = visitor
        .then_decode
        .filter(|then| then.chunks == 1)
        .and_then(|then| then.decoded);
    Ok((
        Inference {
            records,
            capped_paths: visitor.capped_paths,
        },
        decoded,
    ))
}

/// Columns whose type differs between `old` and `new` (a column seen only as null getting a type
/// is not a change): `(path, from, to)`.
pub(super) fn type_changes(old: &Schema, new: &Schema) -> Vec<(String, DataType, DataType)> {
    let mut changes = Vec::new();
    diff_fields(old.fields(), new.fields(), "", &mut changes);
    changes
}

impl ObjectShape {
    pub(super) fn from_fields(fields: &Fields) -> Self {
        let mut shape = Self::default();
        for field in fields {
            let slot = shape.slot(field.name(), shape.names.len());
            shape.shapes[slot] = Shape::from_data_type(field.data_type());
        }
        shape
    }

    pub(super) fn to_schema(&self) -> Schema {
        Schema::new(self.to_fields())
    }

    fn to_fields(&self) -> Fields {
        self.names
            .iter()
            .zip(&self.shapes)
            .map(|(name, shape)| Field::new(name, shape.to_data_type(), true))
            .collect()
    }

    /// The slot of field `name`, added at the end if new. Records usually repeat one field order,
    /// so the slot after the previous field is tried before the hash map.
    fn slot(&mut self, name: &str, hint: usize) -> usize {
        if self.names.get(hint).is_some_and(|known| known == name) {
            return hint;
        }
        if let Some(&slot) = self.index.get(name) {
            return slot;
        }
        let slot = self.names.len();
        self.names.push(name.to_owned());
        self.shapes.push(Shape::Null);
        self.index.insert(name.to_owned(), slot);
        slot
    }
}

impl Shape {
    fn from_data_type(data_type: &DataType) -> Self {
        match data_type {
            DataType::Null => Self::Null,
            DataType::Boolean => Self::Bool,
            DataType::Int64 => Self::Int,
            DataType::Float64 => Self::Float,
            DataType::Utf8 => Self::Text,
            DataType::Struct(fields) => Self::Object(ObjectShape::from_fields(fields)),
            DataType::List(element) => {
                Self::List(Box::new(Self::from_data_type(element.data_type())))
            }
            other => Self::Other(other.clone()),
        }
    }

    fn to_data_type(&self) -> DataType {
        match self {
            Self::Null => DataType::Null,
            Self::Bool => DataType::Boolean,
            Self::Int => DataType::Int64,
            Self::Float => DataType::Float64,
            Self::Text => DataType::Utf8,
            // Parquet cannot store a struct without fields; `{}` alone says nothing yet.
            Self::Object(object) if object.names.is_empty() => DataType::Null,
            Self::Object(object) => DataType::Struct(object.to_fields()),
            Self::List(element) => DataType::List(Arc::new(Field::new_list_field(
                element.to_data_type(),
                true,
            ))),
            Self::Other(data_type) => data_type.clone(),
        }
    }

    /// Merges a scalar kind in: null takes anything, integers widen to floats, anything else
    /// that disagrees becomes text.
    fn join_scalar(&mut self, incoming: Shape) {
        match (&*self, &incoming) {
            (Self::Null, _) | (Self::Int, Self::Float) => *self = incoming,
            (Self::Float, Self::Int)
            | (Self::Text, _)
            | (Self::Bool, Self::Bool)
            | (Self::Int, Self::Int)
            | (Self::Float, Self::Float) => {}
            _ => *self = Self::Text,
        }
    }
}

impl PathNode<'_> {
    fn render(&self) -> String {
        let mut names = vec![self.name];
        let mut node = self.parent;
        while let Some(parent) = node {
            names.push(parent.name);
            node = parent.parent;
        }
        let mut path = String::new();
        for name in names.iter().rev() {
            if !path.is_empty() && *name != "[]" {
                path.push('.');
            }
            path.push_str(name);
        }
        path
    }
}

impl TapeVisitor for InferVisitor {
    fn visit(
        &mut self,
        tape: &Tape<'_>,
        rows: &[u32],
        first_record: u64,
    ) -> Result<(), ArrowError> {
        // The shape is taken out so that the walk can borrow the rest of `self` mutably.
        let mut shape = std::mem::take(&mut self.shape);
        let result = self.absorb_records(&mut shape, tape, rows, first_record);
        self.shape = shape;
        result?;
        if let Some(then) = &mut self.then_decode {
            then.chunks += 1;
            if then.chunks == 1 {
                let mut capped_paths = (*then.spec.capped_paths).clone();
                capped_paths.extend(self.capped_paths.iter().cloned());
                let spec = PageDecoderSpec {
                    schema: Arc::new(self.shape.to_schema()),
                    capped_paths: Arc::new(capped_paths),
                    ..then.spec.clone()
                };
                then.decoded = Some(super::page::decode_tape(&spec, tape, rows));
            }
        }
        Ok(())
    }
}

impl InferVisitor {
    fn absorb_records(
        &mut self,
        shape: &mut ObjectShape,
        tape: &Tape<'_>,
        rows: &[u32],
        first_record: u64,
    ) -> Result<(), ArrowError> {
        for (i, &row) in rows.iter().enumerate() {
            let TapeElement::StartObject(end) = tape.get(row) else {
                self.not_an_object =
                    Some((first_record + i as u64, tape::kind_name(tape.get(row))));
                return Err(ArrowError::JsonError(
                    "a record is not an object".to_owned(),
                ));
            };
            self.absorb_object(shape, tape, row, end, 1, None)?;
        }
        Ok(())
    }

    /// Merges the members of the object at `start..end` into `object`. Recursion is bounded by
    /// `max_depth`: deeper containers are not entered.
    fn absorb_object(
        &mut self,
        object: &mut ObjectShape,
        tape: &Tape<'_>,
        start: u32,
        end: u32,
        depth: usize,
        parent: Option<&PathNode<'_>>,
    ) -> Result<(), ArrowError> {
        let mut cur = start + 1;
        let mut hint = 0;
        while cur < end {
            let TapeElement::String(key) = tape.get(cur) else {
                return Err(tape.error(cur, "field name"));
            };
            let name = tape.get_string(key);
            let slot = object.slot(name, hint);
            hint = slot + 1;
            let path = PathNode { name, parent };
            self.absorb_value(&mut object.shapes[slot], tape, cur + 1, depth, &path)?;
            cur = tape.next(cur + 1, "field value")?;
        }
        Ok(())
    }

    fn absorb_value(
        &mut self,
        shape: &mut Shape,
        tape: &Tape<'_>,
        idx: u32,
        depth: usize,
        path: &PathNode<'_>,
    ) -> Result<(), ArrowError> {
        match tape.get(idx) {
            TapeElement::Null => {}
            TapeElement::True | TapeElement::False => shape.join_scalar(Shape::Bool),
            TapeElement::Number(text) => shape.join_scalar(number_shape(tape.get_string(text))),
            TapeElement::I32(_) | TapeElement::I64(_) => shape.join_scalar(Shape::Int),
            TapeElement::F32(_) | TapeElement::F64(_) => shape.join_scalar(Shape::Float),
            TapeElement::String(_) => shape.join_scalar(Shape::Text),
            TapeElement::StartObject(end) => {
                if depth >= self.max_depth {
                    self.capped_paths.insert(path.render());
                    shape.join_scalar(Shape::Text);
                    return Ok(());
                }
                match shape {
                    Shape::Null => *shape = Shape::Object(ObjectShape::default()),
                    Shape::Object(_) | Shape::Text => {}
                    _ => *shape = Shape::Text,
                }
                if let Shape::Object(object) = shape {
                    self.absorb_object(object, tape, idx, end, depth + 1, Some(path))?;
                    // Objects keyed by data (ids, dates) would add columns on every page; past
                    // this many fields the column keeps JSON text instead.
                    if object.names.len() > MAX_NESTED_FIELDS {
                        *shape = Shape::Text;
                    }
                }
            }
            TapeElement::StartList(end) => {
                if depth >= self.max_depth {
                    self.capped_paths.insert(path.render());
                    shape.join_scalar(Shape::Text);
                    return Ok(());
                }
                match shape {
                    Shape::Null => *shape = Shape::List(Box::new(Shape::Null)),
                    Shape::List(_) | Shape::Text => {}
                    _ => *shape = Shape::Text,
                }
                if let Shape::List(element) = shape {
                    let element_path = PathNode {
                        name: "[]",
                        parent: Some(path),
                    };
                    let mut cur = idx + 1;
                    while cur < end {
                        self.absorb_value(element, tape, cur, depth + 1, &element_path)?;
                        cur = tape.next(cur, "list element")?;
                    }
                }
            }
            _ => return Err(tape.error(idx, "a JSON value")),
        }
        Ok(())
    }
}

/// Integers that fit `i64` are `Int`; decimals, exponents and huge integers are `Float`.
fn number_shape(text: &str) -> Shape {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let is_integer = !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit());
    if is_integer && text.parse::<i64>().is_ok() {
        Shape::Int
    } else {
        Shape::Float
    }
}

fn diff_fields(
    old: &Fields,
    new: &Fields,
    prefix: &str,
    changes: &mut Vec<(String, DataType, DataType)>,
) {
    for old_field in old {
        if let Some((_, new_field)) = new.find(old_field.name()) {
            let path = if prefix.is_empty() {
                old_field.name().clone()
            } else {
                format!("{prefix}.{}", old_field.name())
            };
            diff_types(old_field.data_type(), new_field.data_type(), path, changes);
        }
    }
}

fn diff_types(
    old: &DataType,
    new: &DataType,
    path: String,
    changes: &mut Vec<(String, DataType, DataType)>,
) {
    if old == new {
        return;
    }
    match (old, new) {
        (DataType::Null, _) => {}
        (DataType::Struct(old_fields), DataType::Struct(new_fields)) => {
            diff_fields(old_fields, new_fields, &path, changes);
        }
        (DataType::List(old_element), DataType::List(new_element)) => diff_types(
            old_element.data_type(),
            new_element.data_type(),
            format!("{path}[]"),
            changes,
        ),
        _ => changes.push((path, old.clone(), new.clone())),
    }
}

fn object_fields(node: &Value, pointer: &str, depth: usize) -> Result<Vec<Field>, DecodeError> {
    let Some(properties) = node.get("properties") else {
        return Err(schema_error(
            pointer,
            "expected an object schema with `properties`",
        ));
    };
    let Some(properties) = properties.as_object() else {
        return Err(schema_error(
            &format!("{pointer}/properties"),
            "expected an object mapping field names to schemas",
        ));
    };
    let mut fields = Vec::with_capacity(properties.len());
    for (name, property) in properties {
        let property_pointer = format!("{pointer}/properties/{}", escape_pointer(name));
        let data_type = property_type(property, &property_pointer, depth + 1)?;
        fields.push(Field::new(name, data_type, true));
    }
    Ok(fields)
}

fn property_type(node: &Value, pointer: &str, depth: usize) -> Result<DataType, DecodeError> {
    if depth >= DEFAULT_MAX_DEPTH {
        return Err(schema_error(
            pointer,
            &format!("nested deeper than {DEFAULT_MAX_DEPTH} levels"),
        ));
    }
    let Some(object) = node.as_object() else {
        return Err(schema_error(pointer, "expected a schema object"));
    };
    let has_properties = object
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|properties| !properties.is_empty());
    let type_name = match object.get("type") {
        Some(Value::String(name)) => name.as_str(),
        Some(Value::Array(names)) => {
            let mut non_null = names.iter().filter(|name| name.as_str() != Some("null"));
            match (non_null.next(), non_null.next()) {
                (None, _) => "null",
                (Some(Value::String(name)), None) => name.as_str(),
                (Some(Value::String(_)), Some(_)) => return Ok(DataType::Utf8),
                _ => {
                    return Err(schema_error(
                        &format!("{pointer}/type"),
                        "expected type names (strings)",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(schema_error(
                &format!("{pointer}/type"),
                "expected a type name or an array of type names",
            ));
        }
        None if has_properties => "object",
        None if object.contains_key("items") => "array",
        None => return Ok(DataType::Utf8),
    };
    let data_type = match type_name {
        "string" => match object.get("format").and_then(Value::as_str) {
            Some("date-time") => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_TIMEZONE.into()))
            }
            Some("date") => DataType::Date32,
            _ => DataType::Utf8,
        },
        "integer" => DataType::Int64,
        "number" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "null" => DataType::Null,
        "object" if has_properties => DataType::Struct(object_fields(node, pointer, depth)?.into()),
        "object" => DataType::Utf8,
        "array" => {
            let element = match object.get("items") {
                Some(items @ Value::Object(_)) => {
                    property_type(items, &format!("{pointer}/items"), depth + 1)?
                }
                _ => DataType::Utf8,
            };
            DataType::List(Arc::new(Field::new_list_field(element, true)))
        }
        other => {
            return Err(schema_error(
                &format!("{pointer}/type"),
                &format!(
                    "unsupported type `{other}`; expected string, integer, number, boolean, object, array or null"
                ),
            ));
        }
    };
    Ok(data_type)
}

fn schema_error(pointer: &str, message: &str) -> DecodeError {
    DecodeError::JsonSchema {
        pointer: if pointer.is_empty() {
            "/".to_owned()
        } else {
            pointer.to_owned()
        },
        message: message.to_owned(),
    }
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}
