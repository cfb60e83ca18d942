//! Target schema tests: JSON schema → Arrow (types, order, required, allOf, errors with JSON
//! pointers) and coercion of values and arrays to destination types.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_cast::pretty::pretty_format_batches;
use arrow_schema::{DataType, Field, Fields, Schema};
use expect_test::{Expect, expect};
use serde_json::json;

use super::{coerce_array, coerce_value, json_schema_to_arrow, timestamp_type, values_to_array};
use crate::expr::Value;

fn check_schema(schema: serde_json::Value, expect: Expect) {
    let rendered = match json_schema_to_arrow(&schema) {
        Ok(schema) => schema
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "{}: {} {}",
                    f.name(),
                    f.data_type(),
                    if f.is_nullable() {
                        "nullable"
                    } else {
                        "required"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => format!("error: {err}"),
    };
    expect.assert_eq(&(rendered + "\n"));
}

fn table(columns: Vec<(&str, ArrayRef)>) -> String {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    pretty_format_batches(&[batch]).unwrap().to_string()
}

#[test]
fn json_schema_types_map_to_arrow_in_properties_order() {
    check_schema(
        json!({
            "type": "object",
            "required": ["id", "person"],
            "properties": {
                "id": {"type": "string"},
                "createdAt": {"type": "string", "format": "date-time"},
                "birthDate": {"type": "string", "format": "date"},
                "count": {"type": "integer"},
                "score": {"type": "number"},
                "vip": {"type": "boolean"},
                "person": {"type": "object", "required": ["email"], "properties": {
                    "email": {"type": "string"},
                    "name": {"type": "object", "properties": {"firstName": {"type": "string"}}}
                }},
                "tags": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
                "nullable": {"type": ["integer", "null"]},
                "xdmDate": {"type": "string", "meta:xdmType": "date-time"}
            }
        }),
        expect![[r#"
            id: Utf8 required
            createdAt: Timestamp(µs, "+00:00") nullable
            birthDate: Date32 nullable
            count: Int64 nullable
            score: Float64 nullable
            vip: Boolean nullable
            person: Struct("email": non-null Utf8, "name": Struct("firstName": Utf8)) required
            tags: List(Struct("name": Utf8)) nullable
            attributes: Utf8 nullable
            nullable: Int64 nullable
            xdmDate: Timestamp(µs, "+00:00") nullable
        "#]],
    );
}

#[test]
fn all_of_parts_are_merged() {
    check_schema(
        json!({"allOf": [
            {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "boolean"}}}
        ]}),
        expect![[r#"
            a: Int64 required
            b: Boolean nullable
        "#]],
    );
}

#[test]
fn schema_errors_name_the_json_pointer() {
    check_schema(
        json!({"type": "string"}),
        expect![[r#"
        error: /: the root of a target schema must be an object with `properties`
    "#]],
    );
    check_schema(
        json!({"properties": {"a": {"$ref": "#/definitions/x"}}}),
        expect![[r#"
        error: /properties/a/$ref: `$ref` is not resolved here: give the expanded schema (xed-full)
    "#]],
    );
    check_schema(
        json!({"properties": {"a/b": {"type": "decimal"}}}),
        expect![[r#"
        error: /properties/a~1b/type: unknown type "decimal": expected string, integer, number, boolean, object or array
    "#]],
    );
    check_schema(
        json!({"properties": {"a": {"type": ["string", "integer"]}}}),
        expect![[r#"
        error: /properties/a/type: a union of several non-null types is not supported: use one type
    "#]],
    );
    check_schema(
        json!({"properties": {"a": {"type": "object", "required": [1], "properties": {"x": {}}}}}),
        expect![[r#"
        error: /properties/a/required/0: expected a property name, got a number
    "#]],
    );
    check_schema(
        json!({"properties": {"a": 5}}),
        expect![[r#"
        error: /properties/a: expected a schema object, got a number
    "#]],
    );
}

#[test]
fn coerce_value_applies_implicit_conversions() {
    let cases: Vec<(Value, DataType)> = vec![
        (Value::Str("yes".into()), DataType::Boolean),
        (Value::Str("OFF".into()), DataType::Boolean),
        (Value::Str("maybe".into()), DataType::Boolean),
        (Value::Int(1), DataType::Boolean),
        (Value::Str(" 42 ".into()), DataType::Int64),
        (Value::Str("4.0".into()), DataType::Int64),
        (Value::Str("4.5".into()), DataType::Int64),
        (Value::Float(3.0), DataType::Int64),
        (Value::Str("2.5".into()), DataType::Float64),
        (Value::Int(2), DataType::Float64),
        (Value::Int(2), DataType::Utf8),
        (Value::Float(2.5), DataType::Utf8),
        (Value::Bool(true), DataType::Utf8),
        (
            Value::Object(vec![("k".into(), Value::Int(1))]),
            DataType::Utf8,
        ),
        (Value::Str("2021-03-04".into()), timestamp_type()),
        (Value::Str("03/04/2021".into()), timestamp_type()),
        (Value::Str("not a date".into()), timestamp_type()),
        (Value::Int(1_571_829_875_000), timestamp_type()),
        (
            Value::Str("2021-03-04T23:30:00-05:00".into()),
            DataType::Date32,
        ),
        (
            Value::Object(vec![
                ("a".into(), Value::Str("1".into())),
                ("extra".into(), Value::Null),
            ]),
            DataType::Struct(Fields::from(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ])),
        ),
        (
            Value::Str("{\"a\": 2}".into()),
            DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int64, true)])),
        ),
        (
            Value::Str("x".into()),
            DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int64, true)])),
        ),
        (
            Value::Array(vec![Value::Str("1".into()), Value::Str("x".into())]),
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
        ),
        (Value::Null, DataType::Int64),
    ];
    let mut out = String::new();
    for (value, data_type) in cases {
        let rendered = match coerce_value(value.clone(), &data_type) {
            Ok(v) => v.to_json().to_string(),
            Err(err) => format!("error: {err}"),
        };
        out.push_str(&format!(
            "{} as {data_type} => {rendered}\n",
            value.to_json()
        ));
    }
    expect![[r#"
        "yes" as Boolean => true
        "OFF" as Boolean => false
        "maybe" as Boolean => error: cannot convert the string "maybe" to a boolean
        1 as Boolean => error: cannot convert integer 1 to a boolean
        " 42 " as Int64 => 42
        "4.0" as Int64 => 4
        "4.5" as Int64 => error: cannot convert the string "4.5" to an integer
        3.0 as Int64 => 3
        "2.5" as Float64 => 2.5
        2 as Float64 => 2.0
        2 as Utf8 => "2"
        2.5 as Utf8 => "2.5"
        true as Utf8 => "true"
        {"k":1} as Utf8 => "{\"k\":1}"
        "2021-03-04" as Timestamp(µs, "+00:00") => "2021-03-04T00:00:00Z"
        "03/04/2021" as Timestamp(µs, "+00:00") => "2021-03-04T00:00:00Z"
        "not a date" as Timestamp(µs, "+00:00") => error: cannot convert the string "not a date" to a date-time: it matches no date pattern
        1571829875000 as Timestamp(µs, "+00:00") => "2019-10-23T11:24:35Z"
        "2021-03-04T23:30:00-05:00" as Date32 => "2021-03-04T23:30:00-05:00"
        {"a":"1","extra":null} as Struct("a": Int64, "b": Utf8) => {"a":1,"b":null}
        "{\"a\": 2}" as Struct("a": Int64) => {"a":2}
        "x" as Struct("a": Int64) => error: cannot convert the string "x" to an object
        ["1","x"] as List(Int64) => error: [1]: cannot convert the string "x" to an integer
        null as Int64 => null
    "#]]
    .assert_eq(&out);
}

#[test]
fn values_to_array_reports_rows_that_do_not_fit() {
    let values = vec![
        Value::Object(vec![
            ("n".into(), Value::Str("1".into())),
            ("tags".into(), Value::Array(vec![Value::Int(1)])),
        ]),
        Value::Null,
        Value::Object(vec![("n".into(), Value::Str("x".into()))]),
        Value::Object(vec![(
            "tags".into(),
            Value::Array(vec![Value::Int(2), Value::Str("y".into())]),
        )]),
        Value::Int(5),
    ];
    let data_type = DataType::Struct(Fields::from(vec![
        Field::new("n", DataType::Int64, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
    ]));
    let (array, errors) = values_to_array(&values, &data_type);
    let errors: Vec<String> = errors
        .iter()
        .map(|e| format!("row {} at {:?}: {}", e.row, e.path, e.message))
        .collect();
    expect![[r#"
        +--------------------+
        | s                  |
        +--------------------+
        | {n: 1, tags: [1]}  |
        |                    |
        | {n: , tags: }      |
        | {n: , tags: [2, ]} |
        |                    |
        +--------------------+
        row 4 at "": cannot convert integer 5 to an object
        row 2 at "n": cannot convert the string "x" to an integer
        row 3 at "tags[]": cannot convert the string "y" to an integer
    "#]]
    .assert_eq(&format!(
        "{}\n{}\n",
        table(vec![("s", array)]),
        errors.join("\n")
    ));
}

#[test]
fn coerce_array_matches_struct_fields_by_name() {
    let source: ArrayRef = Arc::new(StructArray::from(vec![
        (
            Arc::new(Field::new("b", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![Some("7"), Some("x")])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("a", DataType::Int64, true)),
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        ),
    ]));
    let target = DataType::Struct(Fields::from(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Int64, true),
        Field::new("c", DataType::Utf8, true),
    ]));
    let (array, errors) = coerce_array(&source, &target);
    let errors: Vec<String> = errors
        .iter()
        .map(|e| format!("row {} at {:?}: {}", e.row, e.path, e.message))
        .collect();
    expect![[r#"
        +---------------------+
        | s                   |
        +---------------------+
        | {a: 1.0, b: 7, c: } |
        | {a: 2.0, b: , c: }  |
        +---------------------+
        row 1 at "b": cannot convert the string "x" to an integer
    "#]]
    .assert_eq(&format!(
        "{}\n{}\n",
        table(vec![("s", array)]),
        errors.join("\n")
    ));
    // The arrow-cast fast path for integers and booleans → text matches the value path.
    let numbers: ArrayRef = Arc::new(Int64Array::from(vec![Some(-12), None, Some(i64::MAX)]));
    let flags: ArrayRef = Arc::new(arrow_array::BooleanArray::from(vec![
        Some(true),
        None,
        Some(false),
    ]));
    for array in [numbers, flags] {
        let (fast, errors) = coerce_array(&array, &DataType::Utf8);
        let values: Vec<Value> = (0..array.len())
            .map(|i| super::array_value(array.as_ref(), i))
            .collect();
        let (slow, _) = values_to_array(&values, &DataType::Utf8);
        assert_eq!(fast.as_ref(), slow.as_ref());
        assert!(errors.is_empty());
    }
    let same: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let (unchanged, none) = coerce_array(&same, &DataType::Int64);
    assert!(
        Arc::ptr_eq(&same, &unchanged),
        "the same type is not copied"
    );
    assert!(none.is_empty());
}
