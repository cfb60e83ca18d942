//! Mapping tests, table-driven: a mapping set (JSON, either dialect) and source records in,
//! the mapped batch as a pretty-printed table, rejected rows and warnings out. `check` is the
//! only caller of `compile` + `apply` for these cases.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_cast::pretty::pretty_format_batches;
use arrow_json::ReaderBuilder;
use arrow_json::reader::infer_json_schema_from_iterator;
use arrow_schema::{DataType, Field, Fields, Schema};
use chrono::DateTime;
use expect_test::{Expect, expect};
use serde_json::{Value as Json, json};

use super::apply::run;
use super::compile::Source;
use super::{
    MappingSet, apply, compile, compile_with_json_schema, preview, preview_with_schema,
    threshold_exceeded,
};
use crate::schema::json_schema_to_arrow;

fn mapping_set(json: &Json) -> MappingSet {
    tributary_spec::mapping_set_from_value("test.json", json)
        .unwrap_or_else(|err| panic!("invalid test mapping set: {err:#?}"))
}

/// Source records → one batch, types inferred from the records.
fn batch_from(records: &Json) -> RecordBatch {
    let records = records.as_array().expect("records are an array");
    let schema = infer_json_schema_from_iterator(records.iter().map(|r| Ok(r.clone()))).unwrap();
    let mut decoder = ReaderBuilder::new(Arc::new(schema))
        .build_decoder()
        .unwrap();
    decoder.serialize(records).unwrap();
    decoder.flush().unwrap().unwrap()
}

fn target_schema(json: Option<&Json>) -> Option<Schema> {
    json.map(|j| json_schema_to_arrow(j).unwrap())
}

/// Compiles and applies; renders compile errors, or the output schema, the accepted rows,
/// the rejected rows with their reasons and the warning counts.
fn render(mapping: &Json, records: &Json, target: Option<&Json>) -> String {
    let set = mapping_set(mapping);
    let batch = batch_from(records);
    let target = target_schema(target);
    let plan = match compile(&set, batch.schema().as_ref(), target.as_ref()) {
        Ok(plan) => plan,
        Err(errors) => {
            return errors
                .iter()
                .map(|e| format!("compile error: {e}\n"))
                .collect();
        }
    };
    let mapped = apply(&plan, &batch).expect("apply");
    render_mapped(&mapped)
}

fn render_mapped(mapped: &super::MappedBatch) -> String {
    let mut out = String::new();
    for field in mapped.batch.schema().fields() {
        out.push_str(&format!(
            "{}: {}{}\n",
            field.name(),
            field.data_type(),
            if field.is_nullable() {
                ""
            } else {
                " (required)"
            }
        ));
    }
    out.push_str(&pretty_table(&mapped.batch));
    out.push('\n');
    for rejected in &mapped.rejected {
        out.push_str(&format!(
            "rejected row {}: {}\n",
            rejected.row_index, rejected.original
        ));
        for error in &rejected.errors {
            out.push_str(&format!(
                "  {} {}: {}\n",
                error.code, error.destination, error.message
            ));
        }
    }
    for (code, rows) in &mapped.warnings {
        out.push_str(&format!("warnings {code}: {rows} row(s)\n"));
    }
    if mapped.warned_rows > 0 {
        out.push_str(&format!(
            "accepted rows with warnings: {}\n",
            mapped.warned_rows
        ));
    }
    for sample in &mapped.warning_samples {
        out.push_str(&format!(
            "  row {} {}: {}\n",
            sample.row_index, sample.error.destination, sample.error.message
        ));
    }
    out
}

/// Pretty-prints a batch. arrow's display needs the `chrono-tz` feature to print a
/// `Timestamp(µs, "UTC")`, so the test casts timestamps to the equal "+00:00" zone first.
fn pretty_table(batch: &RecordBatch) -> String {
    fn displayable(data_type: &DataType) -> DataType {
        match data_type {
            DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, Some("+00:00".into())),
            DataType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|f| Field::new(f.name(), displayable(f.data_type()), f.is_nullable()))
                    .collect::<Fields>(),
            ),
            DataType::List(item) => DataType::List(Arc::new(Field::new(
                item.name(),
                displayable(item.data_type()),
                item.is_nullable(),
            ))),
            other => other.clone(),
        }
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let data_type = displayable(field.data_type());
        columns.push(arrow_cast::cast(column, &data_type).unwrap());
        fields.push(Field::new(field.name(), data_type, true));
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let display =
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)
            .unwrap();
    pretty_format_batches(&[display]).unwrap().to_string()
}

fn check(mapping: Json, records: Json, target: Option<Json>, expect: Expect) {
    expect.assert_eq(&render(&mapping, &records, target.as_ref()));
}

fn current(mappings: &[(&str, &str, &str)]) -> Json {
    let mappings: Vec<Json> = mappings
        .iter()
        .map(|(source_type, source, destination)| json!({"sourceType": source_type, "source": source, "destination": destination}))
        .collect();
    json!({"mappings": mappings})
}

fn members() -> Json {
    json!([
        {"id": "m1", "email_address": "ada@example.com", "status": "SUBSCRIBED",
         "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace", "PHONE": "+44 20"},
         "location": {"country_code": "GB"}, "member_rating": 4, "last_changed": "2024-05-01T10:00:00+00:00"},
        {"id": "m2", "email_address": "alan@example.com", "status": "Unsubscribed",
         "merge_fields": {"FNAME": "Alan", "LNAME": null, "PHONE": null},
         "location": {"country_code": "GB"}, "member_rating": 2, "last_changed": "yesterday"},
        {"email_address": "grace@example.com", "status": "cleaned",
         "merge_fields": {"FNAME": "Grace", "LNAME": "Hopper"},
         "location": null, "member_rating": 5, "last_changed": "2024-05-03T08:30:00-05:00"}
    ])
}

fn mailchimp_files() -> (Json, Json) {
    let mapping = serde_json::from_str(include_str!(
        "../../../../configs/mappings/mailchimp-members.json"
    ))
    .unwrap();
    let schema = serde_json::from_str(include_str!(
        "../../../../configs/schemas/mailchimp-members.schema.json"
    ))
    .unwrap();
    (mapping, schema)
}

#[test]
fn mailchimp_members_mapping_with_its_target_schema() {
    let (mapping, schema) = mailchimp_files();
    check(
        mapping,
        members(),
        Some(schema),
        expect![[r#"
            personID: Utf8 (required)
            personalEmail: Struct("address": Utf8)
            person: Struct("name": Struct("firstName": Utf8, "lastName": Utf8, "fullName": Utf8))
            mobilePhone: Struct("number": Utf8)
            homeAddress: Struct("countryCode": Utf8)
            consents: Struct("status": Utf8)
            lastChanged: Timestamp(µs, "+00:00") (required)
            rating: Int64
            +----------+----------------------------+----------------------------------------------------------------------+------------------+-------------------+----------------------+----------------------+--------+
            | personID | personalEmail              | person                                                               | mobilePhone      | homeAddress       | consents             | lastChanged          | rating |
            +----------+----------------------------+----------------------------------------------------------------------+------------------+-------------------+----------------------+----------------------+--------+
            | m1       | {address: ada@example.com} | {name: {firstName: Ada, lastName: Lovelace, fullName: Ada Lovelace}} | {number: +44 20} | {countryCode: GB} | {status: subscribed} | 2024-05-01T10:00:00Z | 4      |
            +----------+----------------------------+----------------------------------------------------------------------+------------------+-------------------+----------------------+----------------------+--------+
            rejected row 1: {"id":"m2","email_address":"alan@example.com","status":"Unsubscribed","merge_fields":{"FNAME":"Alan","LNAME":null,"PHONE":null},"location":{"country_code":"GB"},"member_rating":2,"last_changed":"yesterday"}
              MAPPER-3700-400 lastChanged: date: "yesterday" does not match the date format "yyyy-MM-dd'T'HH:mm:ssXXX"
              INGEST-1555-400 lastChanged: required field `lastChanged` is missing or null
            rejected row 2: {"id":null,"email_address":"grace@example.com","status":"cleaned","merge_fields":{"FNAME":"Grace","LNAME":"Hopper","PHONE":null},"location":null,"member_rating":5,"last_changed":"2024-05-03T08:30:00-05:00"}
              INGEST-1555-400 personID: required field `personID` is missing or null
            warnings MAPPER-3700-400: 1 row(s)
              row 1 lastChanged: date: "yesterday" does not match the date format "yyyy-MM-dd'T'HH:mm:ssXXX"
        "#]],
    );
}

#[test]
fn mailchimp_members_mapping_without_a_target_schema_derives_types() {
    let (mapping, _) = mailchimp_files();
    check(
        mapping,
        members(),
        None,
        expect![[r#"
            personID: Utf8
            personalEmail: Struct("address": Utf8)
            person: Struct("name": Struct("firstName": Utf8, "lastName": Utf8, "fullName": Utf8))
            mobilePhone: Struct("number": Utf8)
            homeAddress: Struct("countryCode": Utf8)
            consents: Struct("status": Utf8)
            lastChanged: Timestamp(µs, "+00:00")
            rating: Int64
            +----------+------------------------------+----------------------------------------------------------------------+------------------+-------------------+------------------------+----------------------+--------+
            | personID | personalEmail                | person                                                               | mobilePhone      | homeAddress       | consents               | lastChanged          | rating |
            +----------+------------------------------+----------------------------------------------------------------------+------------------+-------------------+------------------------+----------------------+--------+
            | m1       | {address: ada@example.com}   | {name: {firstName: Ada, lastName: Lovelace, fullName: Ada Lovelace}} | {number: +44 20} | {countryCode: GB} | {status: subscribed}   | 2024-05-01T10:00:00Z | 4      |
            | m2       | {address: alan@example.com}  | {name: {firstName: Alan, lastName: , fullName: Alan }}               |                  | {countryCode: GB} | {status: unsubscribed} |                      | 2      |
            |          | {address: grace@example.com} | {name: {firstName: Grace, lastName: Hopper, fullName: Grace Hopper}} |                  |                   | {status: cleaned}      | 2024-05-03T13:30:00Z | 5      |
            +----------+------------------------------+----------------------------------------------------------------------+------------------+-------------------+------------------------+----------------------+--------+
            warnings MAPPER-3700-400: 1 row(s)
            accepted rows with warnings: 1
              row 1 lastChanged: date: "yesterday" does not match the date format "yyyy-MM-dd'T'HH:mm:ssXXX"
        "#]],
    );
}

#[test]
fn both_dialects_give_the_same_result() {
    let legacy = json!({"xdmSchema": "x", "mappings": [
        {"destinationXdmPath": "person.name.firstName", "sourceAttribute": "merge_fields.FNAME"},
        {"destinationXdmPath": "person.email", "sourceAttribute": "email_address"},
        {"destinationXdmPath": "status", "sourceAttribute": "upper(status)"}
    ]});
    let modern = json!({"outputSchema": {"schemaRef": {"id": "x"}}, "mappings": [
        {"sourceType": "ATTRIBUTE", "source": "merge_fields.FNAME", "destination": "person.name.firstName"},
        {"sourceType": "text/x.schema-path", "source": "email_address", "destination": "person.email"},
        {"sourceType": "EXPRESSION", "source": "upper(status)", "destination": "status"}
    ]});
    let stored_aliases = json!({"mappings": [
        {"sourceType": "text/x.schema-path", "source": "merge_fields.FNAME", "destination": "person.name.firstName"},
        {"sourceType": "text/x.schema-path", "source": "email_address", "destination": "person.email"},
        {"sourceType": "text/x.aep-xl", "source": "upper(status)", "destination": "status"}
    ]});
    let from_legacy = render(&legacy, &members(), None);
    assert_eq!(from_legacy, render(&modern, &members(), None));
    assert_eq!(from_legacy, render(&stored_aliases, &members(), None));
    expect![[r#"
        person: Struct("name": Struct("firstName": Utf8), "email": Utf8)
        status: Utf8
        +------------------------------------------------------+--------------+
        | person                                               | status       |
        +------------------------------------------------------+--------------+
        | {name: {firstName: Ada}, email: ada@example.com}     | SUBSCRIBED   |
        | {name: {firstName: Alan}, email: alan@example.com}   | UNSUBSCRIBED |
        | {name: {firstName: Grace}, email: grace@example.com} | CLEANED      |
        +------------------------------------------------------+--------------+
    "#]]
    .assert_eq(&from_legacy);
}

#[test]
fn paths_escapes_names_indexes_and_missing_fields() {
    check(
        current(&[
            ("ATTRIBUTE", "a\\.b", "escaped"),
            ("ATTRIBUTE", "${Field Name}", "spaced"),
            ("ATTRIBUTE", "${new}", "reserved"),
            ("ATTRIBUTE", "tags[0].name", "firstTag"),
            ("ATTRIBUTE", "tags[5].name", "noSuchTag"),
            ("ATTRIBUTE", "no.such.field", "missing"),
            ("ATTRIBUTE", "nested.inner.value", "deep.copy.value"),
        ]),
        json!([
            {"a.b": 1, "Field Name": "x", "new": true, "tags": [{"name": "t1"}, {"name": "t2"}], "nested": {"inner": {"value": 1.5}}},
            {"a.b": 2, "Field Name": null, "new": false, "tags": [], "nested": {"inner": null}},
            {"a.b": null, "nested": null}
        ]),
        None,
        expect![[r#"
            escaped: Int64
            spaced: Utf8
            reserved: Boolean
            firstTag: Utf8
            noSuchTag: Utf8
            missing: Utf8
            deep: Struct("copy": Struct("value": Float64))
            +---------+--------+----------+----------+-----------+---------+----------------------+
            | escaped | spaced | reserved | firstTag | noSuchTag | missing | deep                 |
            +---------+--------+----------+----------+-----------+---------+----------------------+
            | 1       | x      | true     | t1       |           |         | {copy: {value: 1.5}} |
            | 2       |        | false    |          |           |         |                      |
            |         |        |          |          |           |         |                      |
            +---------+--------+----------+----------+-----------+---------+----------------------+
        "#]],
    );
}

#[test]
fn array_iteration_zips_element_mappings() {
    check(
        current(&[
            ("ATTRIBUTE", "tags[*].id", "segments[*].segmentID"),
            ("ATTRIBUTE", "tags[*].name", "segments[*].label.text"),
            ("ATTRIBUTE", "tags[*].name", "tagNames[*]"),
        ]),
        json!([
            {"tags": [{"id": 1, "name": "vip"}, {"id": 2, "name": "new"}]},
            {"tags": []},
            {"tags": null},
            {"tags": [{"id": 3}]}
        ]),
        None,
        expect![[r#"
            segments: List(Struct("segmentID": Int64, "label": Struct("text": Utf8)))
            tagNames: List(Utf8)
            +--------------------------------------------------------------------------+------------+
            | segments                                                                 | tagNames   |
            +--------------------------------------------------------------------------+------------+
            | [{segmentID: 1, label: {text: vip}}, {segmentID: 2, label: {text: new}}] | [vip, new] |
            | []                                                                       | []         |
            |                                                                          |            |
            | [{segmentID: 3, label: {text: }}]                                        | []         |
            +--------------------------------------------------------------------------+------------+
        "#]],
    );
}

#[test]
fn object_to_object_copy_keeps_or_matches_the_subtree() {
    let records = json!([
        {"address": {"city": "Paris", "zip": "75001", "extra": {"floor": 3}}},
        {"address": null}
    ]);
    let mapping = current(&[("ATTRIBUTE", "address", "homeAddress")]);
    check(
        mapping.clone(),
        records.clone(),
        None,
        expect![[r#"
        homeAddress: Struct("city": Utf8, "zip": Utf8, "extra": Struct("floor": Int64))
        +----------------------------------------------+
        | homeAddress                                  |
        +----------------------------------------------+
        | {city: Paris, zip: 75001, extra: {floor: 3}} |
        |                                              |
        +----------------------------------------------+
    "#]],
    );
    let target = json!({"type": "object", "properties": {"homeAddress": {"type": "object", "properties": {
        "city": {"type": "string"}, "zip": {"type": "integer"}, "country": {"type": "string"}}}}});
    check(
        mapping,
        records,
        Some(target),
        expect![[r#"
        homeAddress: Struct("city": Utf8, "zip": Int64, "country": Utf8)
        +--------------------------------------+
        | homeAddress                          |
        +--------------------------------------+
        | {city: Paris, zip: 75001, country: } |
        |                                      |
        +--------------------------------------+
    "#]],
    );
}

#[test]
fn static_values_and_coercion_to_target_types() {
    let target = json!({"type": "object", "required": ["count"], "properties": {
        "source": {"type": "string"},
        "flag": {"type": "boolean"},
        "count": {"type": "integer"},
        "when": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "ratio": {"type": "number"},
        "unmapped": {"type": "string"}
    }});
    check(
        current(&[
            ("STATIC", "mailchimp", "source"),
            ("ATTRIBUTE", "flag", "flag"),
            ("ATTRIBUTE", "count", "count"),
            ("ATTRIBUTE", "when", "when"),
            ("ATTRIBUTE", "when", "day"),
            ("ATTRIBUTE", "ratio", "ratio"),
        ]),
        json!([
            {"flag": "yes", "count": "12", "when": "2024-01-02", "ratio": "1"},
            {"flag": "off", "count": "12.5", "when": "03/04/2021", "ratio": "2.5"},
            {"flag": "maybe", "count": "7", "when": "not a date", "ratio": "x"},
            {"flag": null, "count": null, "when": null, "ratio": null}
        ]),
        Some(target),
        expect![[r#"
            source: Utf8
            flag: Boolean
            count: Int64 (required)
            when: Timestamp(µs, "+00:00")
            day: Date32
            ratio: Float64
            unmapped: Utf8
            +-----------+------+-------+----------------------+------------+-------+----------+
            | source    | flag | count | when                 | day        | ratio | unmapped |
            +-----------+------+-------+----------------------+------------+-------+----------+
            | mailchimp | true | 12    | 2024-01-02T00:00:00Z | 2024-01-02 | 1.0   |          |
            +-----------+------+-------+----------------------+------------+-------+----------+
            rejected row 1: {"flag":"off","count":"12.5","when":"03/04/2021","ratio":"2.5"}
              INGEST-1401-400 count: cannot convert the string "12.5" to an integer
              INGEST-1555-400 count: required field `count` is missing or null
            rejected row 2: {"flag":"maybe","count":"7","when":"not a date","ratio":"x"}
              INGEST-1401-400 flag: cannot convert the string "maybe" to a boolean
              INGEST-1401-400 when: cannot convert the string "not a date" to a date-time: it matches no date pattern
              INGEST-1401-400 day: cannot convert the string "not a date" to a date-time: it matches no date pattern
              INGEST-1401-400 ratio: cannot convert the string "x" to a number
            rejected row 3: {"flag":null,"count":null,"when":null,"ratio":null}
              INGEST-1555-400 count: required field `count` is missing or null
        "#]],
    );
}

#[test]
fn calculated_fields_nullify_their_column_and_warn() {
    check(
        current(&[
            ("ATTRIBUTE", "id", "id"),
            ("EXPRESSION", "to_integer(qty) * price", "total"),
            ("EXPRESSION", "iif(qty > 1, \"bulk\", \"single\")", "kind"),
            ("EXPRESSION", "date(day, \"dd/MM/yyyy\")", "day"),
        ]),
        json!([
            {"id": 1, "qty": "3", "price": 2.5, "day": "01/02/2024"},
            {"id": 2, "qty": "three", "price": 2.5, "day": "2024-02-01"},
            {"id": 3, "qty": null, "price": null, "day": null}
        ]),
        None,
        expect![[r#"
            id: Int64
            total: Float64
            kind: Utf8
            day: Timestamp(µs, "+00:00")
            +----+-------+--------+----------------------+
            | id | total | kind   | day                  |
            +----+-------+--------+----------------------+
            | 1  | 7.5   | bulk   | 2024-02-01T00:00:00Z |
            | 2  |       |        |                      |
            | 3  |       | single |                      |
            +----+-------+--------+----------------------+
            warnings MAPPER-3700-400: 1 row(s)
            accepted rows with warnings: 1
              row 1 total: to_integer: cannot convert the string "three" to an integer
              row 1 kind: cannot compare the string "three" with a number
              row 1 day: date: "2024-02-01" does not match the date format "dd/MM/yyyy"
        "#]],
    );
}

#[test]
fn required_fields_reject_rows_even_inside_objects() {
    let target = json!({"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"},
        "person": {"type": "object", "required": ["email"], "properties": {
            "email": {"type": "string"}, "name": {"type": "string"}}},
        "items": {"type": "array", "items": {"type": "object", "required": ["sku"], "properties": {
            "sku": {"type": "string"}, "qty": {"type": "integer"}}}}
    }});
    check(
        current(&[
            ("ATTRIBUTE", "id", "id"),
            ("ATTRIBUTE", "email", "person.email"),
            ("ATTRIBUTE", "name", "person.name"),
            ("ATTRIBUTE", "lines[*].sku", "items[*].sku"),
            ("ATTRIBUTE", "lines[*].qty", "items[*].qty"),
        ]),
        json!([
            {"id": "a", "email": "a@x", "name": "A", "lines": [{"sku": "s1", "qty": "1"}]},
            {"id": "b", "email": null, "name": "B", "lines": []},
            {"id": "c", "email": null, "name": null, "lines": [{"sku": null, "qty": "2"}]},
            {"id": null, "email": "d@x", "name": "D", "lines": [{"sku": "s4", "qty": "many"}]}
        ]),
        Some(target),
        expect![[r#"
            id: Utf8 (required)
            person: Struct("email": non-null Utf8, "name": Utf8)
            items: List(Struct("sku": non-null Utf8, "qty": Int64))
            +----+-----------------------+---------------------+
            | id | person                | items               |
            +----+-----------------------+---------------------+
            | a  | {email: a@x, name: A} | [{sku: s1, qty: 1}] |
            +----+-----------------------+---------------------+
            rejected row 1: {"id":"b","email":null,"name":"B","lines":[]}
              INGEST-1555-400 person.email: required field `person.email` is missing or null
            rejected row 2: {"id":"c","email":null,"name":null,"lines":[{"sku":null,"qty":"2"}]}
              INGEST-1555-400 items[].sku: required field `items[].sku` is missing or null
            rejected row 3: {"id":null,"email":"d@x","name":"D","lines":[{"sku":"s4","qty":"many"}]}
              INGEST-1401-400 items[].qty: cannot convert the string "many" to an integer
              INGEST-1555-400 id: required field `id` is missing or null
        "#]],
    );
}

/// `strictMapping` × `allowNullValues` × target schema or none, on the same records: row 0 is
/// clean, row 1 has a failing calculated field, row 2 leaves required fields null (`id`, and
/// `person.email` inside a present object), row 3 has both.
#[test]
fn strict_mapping_and_allow_null_values_decide_which_problems_reject_a_row() {
    let records = json!([
        {"id": "a", "qty": "1", "email": "a@x", "name": "A"},
        {"id": "b", "qty": "three", "email": "b@x", "name": "B"},
        {"id": null, "qty": "3", "email": null, "name": "C"},
        {"id": "d", "qty": "four", "email": null, "name": "D"}
    ]);
    let target = json!({"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"},
        "qty": {"type": "integer"},
        "person": {"type": "object", "required": ["email"], "properties": {
            "email": {"type": "string"}, "name": {"type": "string"}}}
    }});
    let mut shown = String::new();
    for target in [None, Some(&target)] {
        for strict in [false, true] {
            for allow_null_values in [false, true] {
                let mut mapping = current(&[
                    ("ATTRIBUTE", "id", "id"),
                    ("EXPRESSION", "to_integer(qty)", "qty"),
                    ("ATTRIBUTE", "email", "person.email"),
                    ("ATTRIBUTE", "name", "person.name"),
                ]);
                mapping["strictMapping"] = json!(strict);
                mapping["allowNullValues"] = json!(allow_null_values);
                shown.push_str(&format!(
                    "== strictMapping {strict}, allowNullValues {allow_null_values}, {}\n",
                    if target.is_some() {
                        "target schema"
                    } else {
                        "no target schema"
                    }
                ));
                shown.push_str(&render(&mapping, &records, target));
            }
        }
    }
    expect![[r#"
        == strictMapping false, allowNullValues false, no target schema
        id: Utf8
        qty: Int64
        person: Struct("email": Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        | b  |     | {email: b@x, name: B} |
        |    | 3   | {email: , name: C}    |
        | d  |     | {email: , name: D}    |
        +----+-----+-----------------------+
        warnings MAPPER-3700-400: 2 row(s)
        accepted rows with warnings: 2
          row 1 qty: to_integer: cannot convert the string "three" to an integer
          row 3 qty: to_integer: cannot convert the string "four" to an integer
        == strictMapping false, allowNullValues true, no target schema
        id: Utf8
        qty: Int64
        person: Struct("email": Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        | b  |     | {email: b@x, name: B} |
        |    | 3   | {email: , name: C}    |
        | d  |     | {email: , name: D}    |
        +----+-----+-----------------------+
        warnings MAPPER-3700-400: 2 row(s)
        accepted rows with warnings: 2
          row 1 qty: to_integer: cannot convert the string "three" to an integer
          row 3 qty: to_integer: cannot convert the string "four" to an integer
        == strictMapping true, allowNullValues false, no target schema
        id: Utf8
        qty: Int64
        person: Struct("email": Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        |    | 3   | {email: , name: C}    |
        +----+-----+-----------------------+
        rejected row 1: {"id":"b","qty":"three","email":"b@x","name":"B"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "three" to an integer
        rejected row 3: {"id":"d","qty":"four","email":null,"name":"D"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "four" to an integer
        == strictMapping true, allowNullValues true, no target schema
        id: Utf8
        qty: Int64
        person: Struct("email": Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        |    | 3   | {email: , name: C}    |
        +----+-----+-----------------------+
        rejected row 1: {"id":"b","qty":"three","email":"b@x","name":"B"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "three" to an integer
        rejected row 3: {"id":"d","qty":"four","email":null,"name":"D"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "four" to an integer
        == strictMapping false, allowNullValues false, target schema
        id: Utf8 (required)
        qty: Int64
        person: Struct("email": non-null Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        | b  |     | {email: b@x, name: B} |
        +----+-----+-----------------------+
        rejected row 2: {"id":null,"qty":"3","email":null,"name":"C"}
          INGEST-1555-400 id: required field `id` is missing or null
          INGEST-1555-400 person.email: required field `person.email` is missing or null
        rejected row 3: {"id":"d","qty":"four","email":null,"name":"D"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "four" to an integer
          INGEST-1555-400 person.email: required field `person.email` is missing or null
        warnings MAPPER-3700-400: 2 row(s)
        accepted rows with warnings: 1
          row 1 qty: to_integer: cannot convert the string "three" to an integer
          row 3 qty: to_integer: cannot convert the string "four" to an integer
        == strictMapping false, allowNullValues true, target schema
        id: Utf8
        qty: Int64
        person: Struct("email": Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        | b  |     | {email: b@x, name: B} |
        |    | 3   | {email: , name: C}    |
        | d  |     | {email: , name: D}    |
        +----+-----+-----------------------+
        warnings MAPPER-3700-400: 2 row(s)
        warnings INGEST-1555-400: 2 row(s)
        accepted rows with warnings: 3
          row 1 qty: to_integer: cannot convert the string "three" to an integer
          row 2 id: required field `id` is missing or null
          row 2 person.email: required field `person.email` is missing or null
          row 3 qty: to_integer: cannot convert the string "four" to an integer
          row 3 person.email: required field `person.email` is missing or null
        == strictMapping true, allowNullValues false, target schema
        id: Utf8 (required)
        qty: Int64
        person: Struct("email": non-null Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        +----+-----+-----------------------+
        rejected row 1: {"id":"b","qty":"three","email":"b@x","name":"B"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "three" to an integer
        rejected row 2: {"id":null,"qty":"3","email":null,"name":"C"}
          INGEST-1555-400 id: required field `id` is missing or null
          INGEST-1555-400 person.email: required field `person.email` is missing or null
        rejected row 3: {"id":"d","qty":"four","email":null,"name":"D"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "four" to an integer
          INGEST-1555-400 person.email: required field `person.email` is missing or null
        == strictMapping true, allowNullValues true, target schema
        id: Utf8
        qty: Int64
        person: Struct("email": Utf8, "name": Utf8)
        +----+-----+-----------------------+
        | id | qty | person                |
        +----+-----+-----------------------+
        | a  | 1   | {email: a@x, name: A} |
        |    | 3   | {email: , name: C}    |
        +----+-----+-----------------------+
        rejected row 1: {"id":"b","qty":"three","email":"b@x","name":"B"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "three" to an integer
        rejected row 3: {"id":"d","qty":"four","email":null,"name":"D"}
          MAPPER-3700-400 qty: to_integer: cannot convert the string "four" to an integer
          INGEST-1555-400 person.email: required field `person.email` is missing or null
        warnings INGEST-1555-400: 2 row(s)
        accepted rows with warnings: 1
          row 2 id: required field `id` is missing or null
          row 2 person.email: required field `person.email` is missing or null
          row 3 person.email: required field `person.email` is missing or null
    "#]]
    .assert_eq(&shown);
}

#[test]
fn compile_errors_name_the_mapping_and_the_position() {
    let target = json!({"type": "object", "properties": {"a": {"type": "string"}, "n": {"type": "integer"},
        "obj": {"type": "string"}}});
    check(
        current(&[
            ("EXPRESSION", "lower(name", "a"),
            ("EXPRESSION", "concat(a, lowr(b))", "b"),
            ("EXPRESSION", "substr(\"x\")", "c"),
            ("ATTRIBUTE", "x", "nowhere"),
            ("STATIC", "abc", "n"),
            ("ATTRIBUTE", "y", "obj.inner"),
            ("ATTRIBUTE", "z", "list[0].x"),
            ("ATTRIBUTE", "a..b", "d"),
            ("EXPRESSION", "date(x, \"yyyy-qq\")", "e"),
            ("EXPRESSION", "matches_regex(x, \"(\")", "f"),
        ]),
        json!([{"x": 1}]),
        Some(target),
        expect![[r#"
            compile error: mapping 0 (destination "a") at position 11: expected `,` or `)` in argument list, found `end of expression`
            compile error: mapping 1 (destination "b") at position 11: unknown function `lowr`
            compile error: mapping 2 (destination "c") at position 1: substr takes 2 to 3 argument(s), got 1
            compile error: mapping 3 (destination "nowhere"): `nowhere` is not a field of the target schema
            compile error: mapping 4 (destination "n"): static value does not fit the destination: cannot convert the string "abc" to an integer
            compile error: mapping 5 (destination "obj.inner"): target field `obj` is not an object
            compile error: mapping 6 (destination "list[0].x"): destinations cannot index arrays; use `[*]` to iterate
            compile error: mapping 7 (destination "d") at position 3: invalid source path: empty name in path
            compile error: mapping 8 (destination "e") at position 9: date: unsupported date format letters `qq` in "yyyy-qq"
            compile error: mapping 9 (destination "f") at position 18: matches_regex: invalid regex "(": regex parse error:
                (
                ^
            error: unclosed group
        "#]],
    );
    check(
        current(&[("ATTRIBUTE", "x", "a"), ("ATTRIBUTE", "y", "a.b")]),
        json!([{"x": 1}]),
        None,
        expect![[r#"
        compile error: mapping 1 (destination "a.b"): `a` is written whole by another mapping, so nothing can be written inside it
    "#]],
    );
    check(
        json!({"mappings": []}),
        json!([{"x": 1}]),
        None,
        expect![[r#"
        compile error: mapping set: the mapping set has no mappings
    "#]],
    );
}

#[test]
fn kernels_and_row_by_row_evaluation_agree() {
    let expressions = [
        "lower(name)",
        "upper(name)",
        "trim(name)",
        "ltrim(name)",
        "rtrim(name)",
        "concat(name, \" - \", city, 7)",
        "concat(city)",
        "date(when)",
        "date(when, \"yyyy-MM-dd HH:mm\")",
        "lower(missing)",
        "lower(n)",
    ];
    let records = json!([
        {"name": "  Ada LOVELACE ", "city": "London", "when": "2024-01-02 03:04", "n": 1},
        {"name": "ÉCOLE", "city": null, "when": "2024-01-02T03:04:05Z", "n": 2},
        {"name": null, "city": null, "when": "garbage", "n": null}
    ]);
    // The second set is all ASCII, which takes the whole-buffer path of `lower`/`upper`.
    let ascii_records = json!([
        {"name": "Ada LOVELACE", "city": "London", "when": "2024-01-02 03:04", "n": 1},
        {"name": null, "city": "Paris", "when": null, "n": 2},
        {"name": "  x ", "city": null, "when": "2024-13-01 00:00", "n": 3}
    ]);
    let batch = batch_from(&records);
    for (expression, batch) in expressions
        .iter()
        .flat_map(|e| [(*e, batch.clone()), (*e, batch_from(&ascii_records))])
    {
        let set = mapping_set(&current(&[("EXPRESSION", expression, "out")]));
        let with_kernel = compile(&set, batch.schema().as_ref(), None).unwrap();
        let mut row_by_row = with_kernel.clone();
        for mapping in &mut row_by_row.mappings {
            if let Source::Expression { kernel, .. } = &mut mapping.source {
                *kernel = None;
            }
        }
        let fast = render_mapped(&apply(&with_kernel, &batch).unwrap());
        let slow = render_mapped(&apply(&row_by_row, &batch).unwrap());
        assert_eq!(fast, slow, "kernel and row-by-row differ for {expression}");
    }
    let uses_kernel: Vec<bool> = expressions
        .iter()
        .map(|e| {
            let plan = compile(
                &mapping_set(&current(&[("EXPRESSION", e, "out")])),
                batch.schema().as_ref(),
                None,
            )
            .unwrap();
            matches!(
                &plan.mappings[0].source,
                Source::Expression {
                    kernel: Some(_),
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        uses_kernel,
        [
            true, true, true, true, true, true, true, true, true, true, true
        ]
    );
}

#[test]
fn derived_types_follow_the_functions() {
    check(
        current(&[
            ("EXPRESSION", "to_integer(s)", "i"),
            ("EXPRESSION", "to_float(s)", "f"),
            ("EXPRESSION", "s == \"1\"", "b"),
            ("EXPRESSION", "date(d)", "t"),
            ("EXPRESSION", "split(csv, \",\")", "parts"),
            ("EXPRESSION", "coalesce(missing, n)", "c"),
            ("EXPRESSION", "iif(true, n, 0) + 1", "sum"),
            ("EXPRESSION", "json_to_object(js)", "obj"),
            ("EXPRESSION", "n + 0.5", "half"),
            ("EXPRESSION", "\"#\" + n", "label"),
        ]),
        json!([{"s": "1", "d": "2024-01-01", "csv": "a,b", "n": 2, "js": "{\"k\": 1}"}]),
        None,
        expect![[r#"
            i: Int64
            f: Float64
            b: Boolean
            t: Timestamp(µs, "+00:00")
            parts: List(Utf8)
            c: Int64
            sum: Int64
            obj: Utf8
            half: Float64
            label: Utf8
            +---+-----+------+----------------------+--------+---+-----+---------+------+-------+
            | i | f   | b    | t                    | parts  | c | sum | obj     | half | label |
            +---+-----+------+----------------------+--------+---+-----+---------+------+-------+
            | 1 | 1.0 | true | 2024-01-01T00:00:00Z | [a, b] | 2 | 3   | {"k":1} | 2.5  | #2    |
            +---+-----+------+----------------------+--------+---+-----+---------+------+-------+
        "#]],
    );
}

#[test]
fn preview_returns_mapped_rows_and_errors_per_mapping() {
    let set = mapping_set(&current(&[
        ("ATTRIBUTE", "first", "person.name.firstName"),
        ("EXPRESSION", "to_integer(age)", "person.age"),
    ]));
    // `age` is a number in one record and a string in the other: decoding keeps both as text.
    let records = vec![
        json!({"first": "Ada", "age": 36}),
        json!({"first": "Alan", "age": "forty"}),
    ];
    let rows = preview(&set, &records).unwrap();
    expect![[r#"
        [
          {
            "data": {
              "person": {
                "name": {
                  "firstName": "Ada"
                },
                "age": 36
              }
            },
            "errors": [],
            "rejected": false
          },
          {
            "data": {
              "person": {
                "name": {
                  "firstName": "Alan"
                },
                "age": null
              }
            },
            "errors": [
              {
                "destination": "person.age",
                "source": "to_integer(age)",
                "exception": "MAPPER-3700-400: to_integer: cannot convert the string \"forty\" to an integer"
              }
            ],
            "rejected": false
          }
        ]
    "#]]
    .assert_eq(&(serde_json::to_string_pretty(&rows).unwrap() + "\n"));

    let target = json_schema_to_arrow(&json!({"type": "object", "required": ["person"], "properties": {
        "person": {"type": "object", "properties": {"name": {"type": "object", "properties": {"firstName": {"type": "string"}}},
        "age": {"type": "integer"}}}}}))
    .unwrap();
    let rows = preview_with_schema(&set, &[json!({"age": "x"})], Some(&target)).unwrap();
    expect![[r#"
        [
          {
            "data": {
              "person": null
            },
            "errors": [
              {
                "destination": "person.age",
                "source": "to_integer(age)",
                "exception": "MAPPER-3700-400: to_integer: cannot convert the string \"x\" to an integer"
              },
              {
                "destination": "person",
                "source": "",
                "exception": "INGEST-1555-400: required field `person` is missing or null"
              }
            ],
            "rejected": true
          }
        ]
    "#]]
    .assert_eq(&(serde_json::to_string_pretty(&rows).unwrap() + "\n"));

    let not_object = preview(&set, &[json!([1])]).unwrap_err();
    assert_eq!(not_object.to_string(), "record 0 is not a JSON object");
    let bad = mapping_set(&current(&[("EXPRESSION", "nope(", "x")]));
    let compile_error = preview(&bad, &records).unwrap_err();
    expect![[r#"the mapping set does not compile: mapping 0 (destination "x") at position 1: unknown function `nope`"#]]
    .assert_eq(&compile_error.to_string());
}

/// Preview marks the records a run would reject, by the same rules as a run.
#[test]
fn preview_shows_which_records_strict_mapping_and_allow_null_values_reject() {
    let target = json_schema_to_arrow(
        &json!({"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "qty": {"type": "integer"}}}),
    )
    .unwrap();
    let records = [
        json!({"id": "a", "qty": "three"}),
        json!({"id": null, "qty": "2"}),
    ];
    let mut shown = String::new();
    for (strict, allow_null_values) in [(false, false), (true, false), (false, true), (true, true)]
    {
        let mut mapping = current(&[
            ("ATTRIBUTE", "id", "id"),
            ("EXPRESSION", "to_integer(qty)", "qty"),
        ]);
        mapping["strictMapping"] = json!(strict);
        mapping["allowNullValues"] = json!(allow_null_values);
        let rows = preview_with_schema(&mapping_set(&mapping), &records, Some(&target)).unwrap();
        shown.push_str(&format!(
            "strictMapping {strict}, allowNullValues {allow_null_values}:\n"
        ));
        for row in rows {
            let exceptions: Vec<&str> = row.errors.iter().map(|e| e.exception.as_str()).collect();
            shown.push_str(&format!(
                "  {} rejected={} {exceptions:?}\n",
                row.data, row.rejected
            ));
        }
    }
    expect![[r#"
        strictMapping false, allowNullValues false:
          {"id":"a","qty":null} rejected=false ["MAPPER-3700-400: to_integer: cannot convert the string \"three\" to an integer"]
          {"id":null,"qty":2} rejected=true ["INGEST-1555-400: required field `id` is missing or null"]
        strictMapping true, allowNullValues false:
          {"id":"a","qty":null} rejected=true ["MAPPER-3700-400: to_integer: cannot convert the string \"three\" to an integer"]
          {"id":null,"qty":2} rejected=true ["INGEST-1555-400: required field `id` is missing or null"]
        strictMapping false, allowNullValues true:
          {"id":"a","qty":null} rejected=false ["MAPPER-3700-400: to_integer: cannot convert the string \"three\" to an integer"]
          {"id":null,"qty":2} rejected=false ["INGEST-1555-400: required field `id` is missing or null"]
        strictMapping true, allowNullValues true:
          {"id":"a","qty":null} rejected=true ["MAPPER-3700-400: to_integer: cannot convert the string \"three\" to an integer"]
          {"id":null,"qty":2} rejected=false ["INGEST-1555-400: required field `id` is missing or null"]
    "#]]
    .assert_eq(&shown);
}

#[test]
fn an_empty_batch_maps_to_an_empty_batch() {
    let set = mapping_set(&current(&[
        ("ATTRIBUTE", "a", "x.y"),
        ("EXPRESSION", "lower(b)", "z"),
    ]));
    let batch = batch_from(&json!([{"a": 1, "b": "B"}])).slice(0, 0);
    let plan = compile(&set, batch.schema().as_ref(), None).unwrap();
    let mapped = apply(&plan, &batch).unwrap();
    expect![[r#"
        x: Struct("y": Int64)
        z: Utf8
        +---+---+
        | x | z |
        +---+---+
        +---+---+
    "#]]
    .assert_eq(&render_mapped(&mapped));
}

#[test]
fn null_only_source_columns_map_as_text_and_later_batches_may_differ() {
    // Compiled against a batch where `a` was only ever null, applied to one where it is a number.
    let set = mapping_set(&current(&[
        ("ATTRIBUTE", "a", "out"),
        ("ATTRIBUTE", "gone", "missing"),
    ]));
    let first = batch_from(&json!([{"a": null, "gone": "x"}]));
    let plan = compile(&set, first.schema().as_ref(), None).unwrap();
    let later = batch_from(&json!([{"a": 5}, {"a": null}]));
    expect![[r#"
        out: Utf8
        missing: Utf8
        +-----+---------+
        | out | missing |
        +-----+---------+
        | 5   |         |
        |     |         |
        +-----+---------+
    "#]]
    .assert_eq(&render_mapped(&apply(&plan, &later).unwrap()));
}

#[test]
fn batches_from_the_run_decoder_map_like_any_batch() {
    // The pipeline's path: NDJSON page → `decode::RecordDecoder` → `apply`, with the target schema.
    let (mapping, schema) = mailchimp_files();
    let mut ndjson = Vec::new();
    for record in members().as_array().unwrap() {
        ndjson.extend_from_slice(record.to_string().as_bytes());
        ndjson.push(b'\n');
    }
    let mut decoder = crate::decode::RecordDecoder::new(crate::decode::DecoderOptions::default());
    let mut batches = decoder.decode_page(0, &ndjson).unwrap().batches;
    batches.extend(decoder.finish().unwrap());
    let target = target_schema(Some(&schema)).unwrap();
    let plan = compile(
        &mapping_set(&mapping),
        batches[0].schema().as_ref(),
        Some(&target),
    )
    .unwrap();
    let mut out = String::new();
    for batch in &batches {
        out.push_str(&render_mapped(&apply(&plan, batch).unwrap()));
    }
    assert_eq!(
        out,
        render(&mapping, &members(), Some(&schema)),
        "decoder batches and test batches map alike"
    );
}

#[test]
fn json_target_schemas_compile_directly_and_error_counts_cover_every_code() {
    let (mapping, schema) = mailchimp_files();
    let batch = batch_from(&members());
    let set = mapping_set(&mapping);
    let plan = compile_with_json_schema(&set, batch.schema().as_ref(), Some(&schema)).unwrap();
    let counts: Vec<String> = apply(&plan, &batch)
        .unwrap()
        .error_counts()
        .iter()
        .map(|(code, rows)| format!("{code}: {rows}"))
        .collect();
    assert_eq!(counts, ["MAPPER-3700-400: 1", "INGEST-1555-400: 2"]);
    let broken = json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}});
    let errors =
        compile_with_json_schema(&set, batch.schema().as_ref(), Some(&broken)).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "mapping set: target schema: /properties/a/$ref: `$ref` is not resolved here: give the expanded schema (xed-full)"
    );
}

#[test]
fn plans_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<super::MappingPlan>();
    assert_send_sync::<super::MappedBatch>();
}

#[test]
fn partial_ingestion_threshold() {
    let cases = [
        (0, 100, None, false),
        (1, 100, None, true),
        (5, 100, Some(5.0), false),
        (6, 100, Some(5.0), true),
        (1, 3, Some(33.4), false),
        (1, 3, Some(33.3), true),
        (0, 0, Some(0.0), false),
        (0, 10, Some(0.0), false),
        (1, 10, Some(0.0), true),
    ];
    for (rejected, input, percent, expected) in cases {
        assert_eq!(
            threshold_exceeded(rejected, input, percent),
            expected,
            "rejected {rejected} of {input} with threshold {percent:?}"
        );
    }
}

#[test]
fn now_is_the_same_for_every_row_of_a_batch() {
    let set = mapping_set(&current(&[("EXPRESSION", "timestamp()", "t")]));
    let batch = batch_from(&json!([{"x": 1}, {"x": 2}, {"x": 3}]));
    let plan = compile(&set, batch.schema().as_ref(), None).unwrap();
    let now = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let outcome = run(&plan, &batch, now).unwrap();
    let column = outcome.columns[0]
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    assert_eq!(column.values().to_vec(), vec![1_704_067_200_000; 3]);
}
