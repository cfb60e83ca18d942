use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};

use serde_json::json;

use super::*;

fn schema(fields: Vec<Field>) -> Schema {
    Schema::new(fields)
}

#[test]
fn grows_by_new_nested_fields_and_widening_and_never_retypes() {
    let base = schema(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("score", DataType::Int64, true),
        Field::new(
            "address",
            DataType::Struct(Fields::from(vec![Field::new("city", DataType::Utf8, true)])),
            true,
        ),
        Field::new("later", DataType::Null, true),
        rescued_field(),
    ]);
    let incoming = schema(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new(
            "address",
            DataType::Struct(Fields::from(vec![
                Field::new("city", DataType::Int64, true),
                Field::new("zip", DataType::Utf8, true),
            ])),
            true,
        ),
        Field::new("later", DataType::Boolean, true),
        Field::new("extra", DataType::Utf8, true),
    ]);
    let grown = grow_schema(&base, &incoming);
    let expected = schema(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
        Field::new(
            "address",
            DataType::Struct(Fields::from(vec![
                Field::new("city", DataType::Utf8, true),
                Field::new("zip", DataType::Utf8, true),
            ])),
            true,
        ),
        Field::new("later", DataType::Boolean, true),
        Field::new("extra", DataType::Utf8, true),
        rescued_field(),
    ]);
    assert_eq!(grown, expected);
    let changes = schema_changes(&base, &grown);
    let paths: Vec<(&str, bool)> = changes
        .iter()
        .map(|c| (c.path.as_str(), c.widened))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("score", true),
            ("address.zip", false),
            ("later", false),
            ("extra", false)
        ]
    );
}

#[test]
fn null_columns_are_dropped_also_nested() {
    let with_nulls = schema(vec![
        Field::new("a", DataType::Null, true),
        Field::new(
            "s",
            DataType::Struct(Fields::from(vec![Field::new("x", DataType::Null, true)])),
            true,
        ),
        Field::new("b", DataType::Int64, true),
    ]);
    assert_eq!(
        without_null_columns(&with_nulls),
        schema(vec![Field::new("b", DataType::Int64, true)])
    );
}

#[test]
fn conform_rescues_misfits_widens_and_fills_missing_columns() {
    let city = Arc::new(Field::new("city", DataType::Int64, true));
    let address = StructArray::try_new(
        Fields::from(vec![city.clone()]),
        vec![Arc::new(Int64Array::from(vec![Some(7), None]))],
        None,
    )
    .unwrap();
    let batch = RecordBatch::try_new(
        Arc::new(schema(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("score", DataType::Int64, true),
            Field::new("address", address.data_type().clone(), true),
        ])),
        vec![
            Arc::new(StringArray::from(vec![Some("A-1"), None])),
            Arc::new(Int64Array::from(vec![Some(3), Some(4)])),
            Arc::new(address),
        ],
    )
    .unwrap();
    let target = Arc::new(schema(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
        Field::new(
            "address",
            DataType::Struct(Fields::from(vec![Field::new("city", DataType::Utf8, true)])),
            true,
        ),
        Field::new("new", DataType::Boolean, true),
        rescued_field(),
    ]));
    let conformed = conform_batch(&batch, &target).unwrap();
    assert_eq!(conformed.rescued_rows, 1);
    assert_eq!(conformed.batch.schema(), target);
    let rescued = conformed
        .batch
        .column(4)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let row0: Value = serde_json::from_str(rescued.value(0)).unwrap();
    assert_eq!(row0, json!({"id": "\"A-1\"", "address.city": "7"}));
    assert!(rescued.is_null(1));
    let scores = conformed
        .batch
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(scores.values().to_vec(), vec![3.0, 4.0]);
    assert_eq!(conformed.batch.column(0).null_count(), 2);
    assert_eq!(conformed.batch.column(3).null_count(), 2);
}

#[test]
fn conform_without_a_rescue_column_refuses_to_drop_values() {
    let batch = RecordBatch::try_new(
        Arc::new(schema(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let target = Arc::new(schema(vec![Field::new("id", DataType::Int64, true)]));
    let err = conform_batch(&batch, &target).unwrap_err();
    assert!(err.to_string().contains(RESCUED_DATA), "{err}");
}
