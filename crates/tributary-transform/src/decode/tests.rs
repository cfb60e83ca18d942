//! Tests of the decode module: each case feeds pages to a real `RecordDecoder` and compares what
//! came out (batches as pretty-printed tables, schemas, warnings, errors) with a snapshot.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_cast::pretty::pretty_format_batches;
use arrow_schema::{DataType, Field, Fields, Schema};
use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

/// Decodes `pages` in order with `options`, then finishes; renders every page's outcome. The
/// same pages decoded ahead by a [`PageDecoder`] with the schema of a few pages before (as the
/// engine's decode workers do) must give exactly the same.
fn check(options: DecoderOptions, pages: &[&str], expect: Expect) {
    let out = decode_rendered(options.clone(), pages, None);
    expect.assert_eq(&out);
    for lag in [0, 2] {
        let predecoded = decode_rendered(options.clone(), pages, Some(lag));
        assert_eq!(predecoded, out, "predecoded {lag} pages behind");
    }
}

/// Renders the outcome of each page and of `finish`; with `lag`, each page goes through
/// [`RecordDecoder::decode_predecoded`] after a [`PageDecoder`] on another thread decoded it
/// with the spec the decoder had `lag` pages earlier.
fn decode_rendered(options: DecoderOptions, pages: &[&str], lag: Option<usize>) -> String {
    let mut decoder = RecordDecoder::new(options);
    let mut out = String::new();
    let mut specs = Vec::new();
    let mut worker = Some(PageDecoder::new());
    for (page_idx, page) in pages.iter().enumerate() {
        writeln!(out, "== page {page_idx}").unwrap();
        specs.push(decoder.page_decoder_spec());
        let result = match lag.and_then(|lag| specs[page_idx.saturating_sub(lag)].clone()) {
            Some(spec) => {
                let bytes = page.as_bytes().to_vec();
                let mut moved = worker.take().unwrap();
                let (back, predecoded) = std::thread::spawn(move || {
                    let predecoded = moved.predecode(&spec, &bytes);
                    (moved, predecoded)
                })
                .join()
                .unwrap();
                worker = Some(back);
                decoder.decode_predecoded(page_idx as u64, page.as_bytes(), predecoded)
            }
            None => decoder.decode_page(page_idx as u64, page.as_bytes()),
        };
        match result {
            Ok(decoded) => render_page(&mut out, &decoded),
            Err(error) => writeln!(out, "error: {error}").unwrap(),
        }
    }
    writeln!(out, "== finish").unwrap();
    let schema = decoder.schema();
    match decoder.finish_page() {
        Ok(decoded) => render_page(&mut out, &decoded),
        Err(error) => writeln!(out, "error: {error}").unwrap(),
    }
    writeln!(out, "== schema").unwrap();
    render_schema(&mut out, &schema);
    out
}

fn check_error(options: DecoderOptions, page: &str, expect: Expect) {
    let mut decoder = RecordDecoder::new(options);
    let error = decoder
        .decode_page(7, page.as_bytes())
        .expect_err("the page must be rejected");
    assert_eq!(error.page_idx(), Some(7));
    assert!(!error.is_retryable());
    expect.assert_eq(&error.to_string());
}

fn check_json_schema(schema: serde_json::Value, expect: Expect) {
    let rendered = match json_schema_to_arrow(&schema) {
        Ok(schema) => {
            let mut out = String::new();
            render_schema(&mut out, &schema);
            out
        }
        Err(error) => format!("error: {error}\n"),
    };
    expect.assert_eq(&rendered);
}

fn render_page(out: &mut String, decoded: &DecodedPage) {
    if decoded.schema_changed {
        writeln!(out, "schema changed").unwrap();
    }
    for warning in &decoded.warnings {
        writeln!(out, "warning: {warning}").unwrap();
    }
    for batch in &decoded.batches {
        writeln!(
            out,
            "batch of {} rows: {}",
            batch.num_rows(),
            field_list(batch)
        )
        .unwrap();
        writeln!(
            out,
            "{}",
            pretty_format_batches(std::slice::from_ref(batch)).unwrap()
        )
        .unwrap();
    }
}

fn field_list(batch: &RecordBatch) -> String {
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|field| field.name().as_str())
        .collect();
    names.join(", ")
}

fn render_schema(out: &mut String, schema: &Schema) {
    render_fields(out, schema.fields(), 0);
}

fn render_fields(out: &mut String, fields: &Fields, indent: usize) {
    for field in fields {
        render_type(out, field.name(), field.data_type(), indent);
    }
}

fn render_type(out: &mut String, name: &str, data_type: &DataType, indent: usize) {
    let pad = "  ".repeat(indent);
    match data_type {
        DataType::Struct(children) => {
            writeln!(out, "{pad}{name}: Struct").unwrap();
            render_fields(out, children, indent + 1);
        }
        DataType::List(element) => {
            writeln!(out, "{pad}{name}: List").unwrap();
            render_type(out, element.name(), element.data_type(), indent + 1);
        }
        other => writeln!(out, "{pad}{name}: {other}").unwrap(),
    }
}

fn options() -> DecoderOptions {
    DecoderOptions::default()
}

fn small_batches(batch_rows: usize) -> DecoderOptions {
    DecoderOptions {
        batch_rows,
        ..DecoderOptions::default()
    }
}

#[test]
fn infers_each_scalar_type_and_keeps_iso_strings_as_strings() {
    check(
        options(),
        &[concat!(
            r#"{"id":"a1","count":3,"ratio":0.25,"big":1e3,"vip":true,"gone":null,"at":"2024-05-01T10:00:00Z"}"#,
            "\n",
            r#"{"id":"a2","count":-4,"ratio":1,"big":2,"vip":false,"gone":null,"at":"2024-05-02T10:00:00Z"}"#,
            "\n"
        )],
        expect![[r#"
            == page 0
            == finish
            batch of 2 rows: id, count, ratio, big, vip, gone, at
            +----+-------+-------+--------+-------+------+----------------------+
            | id | count | ratio | big    | vip   | gone | at                   |
            +----+-------+-------+--------+-------+------+----------------------+
            | a1 | 3     | 0.25  | 1000.0 | true  |      | 2024-05-01T10:00:00Z |
            | a2 | -4    | 1.0   | 2.0    | false |      | 2024-05-02T10:00:00Z |
            +----+-------+-------+--------+-------+------+----------------------+
            == schema
            id: Utf8
            count: Int64
            ratio: Float64
            big: Float64
            vip: Boolean
            gone: Null
            at: Utf8
        "#]],
    );
}

#[test]
fn nested_objects_become_structs_and_arrays_lists() {
    check(
        options(),
        &[concat!(
            r#"{"merge_fields":{"FNAME":"Ann","LNAME":"Lee"},"tags":[{"id":1,"name":"vip"}],"scores":[1,2.5],"none":[]}"#,
            "\n",
            r#"{"merge_fields":{"FNAME":"Bo","LNAME":null},"tags":[],"scores":null,"none":[]}"#,
            "\n"
        )],
        expect![[r#"
            == page 0
            == finish
            batch of 2 rows: merge_fields, tags, scores, none
            +--------------------------+----------------------+------------+------+
            | merge_fields             | tags                 | scores     | none |
            +--------------------------+----------------------+------------+------+
            | {FNAME: Ann, LNAME: Lee} | [{id: 1, name: vip}] | [1.0, 2.5] | []   |
            | {FNAME: Bo, LNAME: }     | []                   |            | []   |
            +--------------------------+----------------------+------------+------+
            == schema
            merge_fields: Struct
              FNAME: Utf8
              LNAME: Utf8
            tags: List
              item: Struct
                id: Int64
                name: Utf8
            scores: List
              item: Float64
            none: List
              item: Null
        "#]],
    );
}

#[test]
fn keeps_source_field_order_not_alphabetical() {
    check(
        options(),
        &[concat!(
            r#"{"zeta":1,"alpha":"a","mid":{"y":1,"b":2}}"#,
            "\n",
            r#"{"alpha":"b","zeta":2,"omega":true,"mid":{"b":3,"a":4}}"#,
            "\n"
        )],
        expect![[r#"
            == page 0
            == finish
            batch of 2 rows: zeta, alpha, mid, omega
            +------+-------+-------------------+-------+
            | zeta | alpha | mid               | omega |
            +------+-------+-------------------+-------+
            | 1    | a     | {y: 1, b: 2, a: } |       |
            | 2    | b     | {y: , b: 3, a: 4} | true  |
            +------+-------+-------------------+-------+
            == schema
            zeta: Int64
            alpha: Utf8
            mid: Struct
              y: Int64
              b: Int64
              a: Int64
            omega: Boolean
        "#]],
    );
}

#[test]
fn new_field_on_a_later_page_adds_a_nullable_column_after_flushing_old_rows() {
    check(
        small_batches(3),
        &[
            "{\"id\":1}\n{\"id\":2}\n",
            "{\"id\":3,\"email\":\"c@x.io\"}\n{\"id\":4}\n",
            "{\"id\":5,\"email\":\"e@x.io\"}\n",
        ],
        expect![[r#"
            == page 0
            == page 1
            schema changed
            batch of 2 rows: id
            +----+
            | id |
            +----+
            | 1  |
            | 2  |
            +----+
            == page 2
            batch of 3 rows: id, email
            +----+--------+
            | id | email  |
            +----+--------+
            | 3  | c@x.io |
            | 4  |        |
            | 5  | e@x.io |
            +----+--------+
            == finish
            == schema
            id: Int64
            email: Utf8
        "#]],
    );
}

#[test]
fn new_field_inside_a_struct_grows_the_struct() {
    check(
        options(),
        &[
            "{\"location\":{\"latitude\":1.5}}\n",
            "{\"location\":{\"latitude\":2.5,\"country_code\":\"FR\"}}\n",
        ],
        expect![[r#"
            == page 0
            == page 1
            schema changed
            batch of 1 rows: location
            +-----------------+
            | location        |
            +-----------------+
            | {latitude: 1.5} |
            +-----------------+
            == finish
            batch of 1 rows: location
            +-----------------------------------+
            | location                          |
            +-----------------------------------+
            | {latitude: 2.5, country_code: FR} |
            +-----------------------------------+
            == schema
            location: Struct
              latitude: Float64
              country_code: Utf8
        "#]],
    );
}

#[test]
fn integer_column_widens_to_float_from_the_page_that_needs_it() {
    check(
        options(),
        &[
            "{\"rate\":1}\n{\"rate\":2}\n",
            "{\"rate\":2.5}\n{\"rate\":3}\n",
        ],
        expect![[r#"
            == page 0
            == page 1
            schema changed
            warning: page 1, field `rate`: column type changed from Int64 to Float64
            batch of 2 rows: rate
            +------+
            | rate |
            +------+
            | 1    |
            | 2    |
            +------+
            == finish
            batch of 2 rows: rate
            +------+
            | rate |
            +------+
            | 2.5  |
            | 3.0  |
            +------+
            == schema
            rate: Float64
        "#]],
    );
}

#[test]
fn value_that_fits_no_rule_is_written_as_json_text_with_a_warning() {
    check(
        options(),
        &[
            "{\"name\":\"ann\",\"n\":1}\n",
            // An object and a number where strings were: the text column takes their JSON text.
            "{\"name\":{\"first\":\"bo\",\"tags\":[1,\"x\\\"y\"]},\"n\":2}\n{\"name\":12,\"n\":3}\n",
            // A string where integers were: the column becomes text from this page on.
            "{\"name\":\"cy\",\"n\":\"four\"}\n{\"name\":\"di\",\"n\":5}\n",
        ],
        expect![[r#"
            == page 0
            == page 1
            warning: page 1, field `name`: 2 value(s) of another type written as JSON text
            == page 2
            schema changed
            warning: page 2, field `n`: column type changed from Int64 to Utf8
            warning: page 2, field `n`: 1 value(s) of another type written as JSON text
            batch of 3 rows: name, n
            +----------------------------------+---+
            | name                             | n |
            +----------------------------------+---+
            | ann                              | 1 |
            | {"first":"bo","tags":[1,"x\"y"]} | 2 |
            | 12                               | 3 |
            +----------------------------------+---+
            == finish
            batch of 2 rows: name, n
            +------+------+
            | name | n    |
            +------+------+
            | cy   | four |
            | di   | 5    |
            +------+------+
            == schema
            name: Utf8
            n: Utf8
        "#]],
    );
}

#[test]
fn same_conflict_within_the_first_page_is_settled_by_inference() {
    check(
        options(),
        &["{\"v\":1}\n{\"v\":\"one\"}\n{\"v\":[1]}\n{\"v\":null}\n"],
        expect![[r#"
            == page 0
            warning: page 0, field `v`: 2 value(s) of another type written as JSON text
            == finish
            batch of 4 rows: v
            +-----+
            | v   |
            +-----+
            | 1   |
            | one |
            | [1] |
            |     |
            +-----+
            == schema
            v: Utf8
        "#]],
    );
}

#[test]
fn batches_span_pages_and_finish_returns_the_rest() {
    check(
        small_batches(3),
        &[
            "{\"i\":1}\n{\"i\":2}\n",
            "{\"i\":3}\n{\"i\":4}\n",
            "{\"i\":5}\n{\"i\":6}\n{\"i\":7}\n{\"i\":8}\n",
        ],
        expect![[r#"
            == page 0
            == page 1
            batch of 3 rows: i
            +---+
            | i |
            +---+
            | 1 |
            | 2 |
            | 3 |
            +---+
            == page 2
            batch of 3 rows: i
            +---+
            | i |
            +---+
            | 4 |
            | 5 |
            | 6 |
            +---+
            == finish
            batch of 2 rows: i
            +---+
            | i |
            +---+
            | 7 |
            | 8 |
            +---+
            == schema
            i: Int64
        "#]],
    );
}

#[test]
fn pages_held_back_for_inference_share_one_schema() {
    check(
        DecoderOptions {
            infer_pages: 2,
            ..DecoderOptions::default()
        },
        &[
            "{\"a\":1}\n",
            "{\"a\":2.5,\"b\":\"x\"}\n",
            "{\"a\":3,\"b\":\"y\"}\n",
        ],
        expect![[r#"
            == page 0
            == page 1
            == page 2
            == finish
            batch of 3 rows: a, b
            +-----+---+
            | a   | b |
            +-----+---+
            | 1.0 |   |
            | 2.5 | x |
            | 3.0 | y |
            +-----+---+
            == schema
            a: Float64
            b: Utf8
        "#]],
    );
}

#[test]
fn empty_pages_emit_nothing_and_do_not_fix_the_schema() {
    check(
        options(),
        &["", "\n \n", "{\"a\":1}\n", ""],
        expect![[r#"
            == page 0
            == page 1
            == page 2
            == page 3
            == finish
            batch of 1 rows: a
            +---+
            | a |
            +---+
            | 1 |
            +---+
            == schema
            a: Int64
        "#]],
    );
}

#[test]
fn known_schema_types_timestamps_and_nulls_values_that_do_not_fit() {
    let schema = json_schema_to_arrow(&json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "last_changed": {"type": "string", "format": "date-time"},
            "birthday": {"type": "string", "format": "date"},
            "rating": {"type": "integer"},
            "location": {"type": "object", "properties": {"latitude": {"type": "number"}}},
            "tags": {"type": "array", "items": {"type": "string"}}
        }
    }))
    .unwrap();
    check(
        DecoderOptions {
            known_schema: Some(Arc::new(schema)),
            ..DecoderOptions::default()
        },
        &[concat!(
            r#"{"id":"a","last_changed":"2024-05-01T10:00:00Z","birthday":"1990-02-03","rating":4,"location":{"latitude":1.5},"tags":["x"],"extra":1}"#,
            "\n",
            r#"{"id":7,"last_changed":"2024-05-01T12:00:00+02:00","birthday":"soon","rating":4.5,"location":"here","tags":{"a":1}}"#,
            "\n"
        )],
        expect![[r#"
            == page 0
            warning: page 0, field `id`: 1 value(s) of another type written as JSON text
            warning: page 0, field `birthday`: 1 value(s) that are not Date32 written as null
            warning: page 0, field `rating`: 1 value(s) that are not Int64 written as null
            warning: page 0, field `location`: 1 value(s) that are not Struct("latitude": Float64) written as null
            warning: page 0, field `tags`: 1 value(s) that are not List(Utf8) written as null
            == finish
            batch of 2 rows: id, last_changed, birthday, rating, location, tags
            +----+----------------------+------------+--------+-----------------+------+
            | id | last_changed         | birthday   | rating | location        | tags |
            +----+----------------------+------------+--------+-----------------+------+
            | a  | 2024-05-01T10:00:00Z | 1990-02-03 | 4      | {latitude: 1.5} | [x]  |
            | 7  | 2024-05-01T10:00:00Z |            |        |                 |      |
            +----+----------------------+------------+--------+-----------------+------+
            == schema
            id: Utf8
            last_changed: Timestamp(µs, "+00:00")
            birthday: Date32
            rating: Int64
            location: Struct
              latitude: Float64
            tags: List
              item: Utf8
        "#]],
    );
}

#[test]
fn record_that_is_not_an_object_fails_the_page_naming_the_record() {
    check_error(
        options(),
        "{\"a\":1}\n{\"a\":2}\n[1,2,3]\n",
        expect![
            "page 7, record 2: expected a JSON object, found an array; record starts with `[1,2,3]`"
        ],
    );
}

#[test]
fn record_that_is_not_an_object_fails_a_later_page_too() {
    let mut decoder = RecordDecoder::new(options());
    decoder.decode_page(0, b"{\"a\":1}\n").unwrap();
    let error = decoder
        .decode_page(1, b"{\"a\":2}\n\"text\"\n")
        .unwrap_err();
    expect![[
        r#"page 1, record 1: expected a JSON object, found a string; record starts with `"text"`"#
    ]]
    .assert_eq(&error.to_string());
    // The failed page left nothing behind: the next page decodes, and only good rows come out.
    decoder.decode_page(2, b"{\"a\":3}\n").unwrap();
    let batches = decoder.finish().unwrap();
    expect![[r#"
        +---+
        | a |
        +---+
        | 1 |
        | 3 |
        +---+"#]]
    .assert_eq(&pretty_format_batches(&batches).unwrap().to_string());
}

#[test]
fn invalid_json_fails_the_page_naming_the_record() {
    check_error(
        options(),
        "{\"a\":1}\n{\"a\" 2}\n{\"a\":3}\n",
        expect![[
            r#"page 7, record 1: invalid JSON (Encountered unexpected '2' whilst parsing colon); record starts with `{"a" 2}`"#
        ]],
    );
}

#[test]
fn truncated_page_fails_naming_the_last_record() {
    check_error(
        options(),
        "{\"a\":1}\n{\"a\":\"unterminated",
        expect![[
            r#"page 7, record 1: invalid JSON (Truncated record whilst reading string); record starts with `{"a":"unterminated`"#
        ]],
    );
}

#[test]
fn invalid_json_on_a_later_page_emits_nothing_of_that_page() {
    let mut decoder = RecordDecoder::new(small_batches(1));
    let first = decoder.decode_page(0, b"{\"a\":1}\n").unwrap();
    assert_eq!(first.batches.len(), 1);
    let error = decoder
        .decode_page(1, b"{\"a\":2}\n{\"a\":}\n")
        .unwrap_err();
    expect![[r#"page 1, record 1: invalid JSON (Encountered unexpected '}' whilst parsing value); record starts with `{"a":}`"#]].assert_eq(&error.to_string());
    assert!(decoder.finish().unwrap().is_empty());
}

#[test]
fn deep_nesting_is_cut_at_the_depth_limit_and_kept_as_json_text() {
    let depth = 200;
    let record = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let mut decoder = RecordDecoder::new(options());
    let page = decoder
        .decode_page(0, format!("{record}\n").as_bytes())
        .unwrap();
    let batches = decoder.finish().unwrap();
    let batch = &batches[0];
    // Walk down the struct columns to the text column at the limit.
    let mut column = batch.column(0).clone();
    let mut struct_levels = 0;
    while let DataType::Struct(_) = column.data_type() {
        column = column.as_struct().column(0).clone();
        struct_levels += 1;
    }
    let text = column.as_string::<i32>().value(0);
    let summary = format!(
        "warnings: {:?}\nstruct levels: {struct_levels}\ntext column type: {}\ntext: {}...{} ({} bytes)\n",
        page.warnings
            .iter()
            .map(|warning| format!("{:?} x{}", warning.kind, warning.count))
            .collect::<Vec<_>>(),
        column.data_type(),
        &text[..12],
        &text[text.len() - 4..],
        text.len()
    );
    expect![[r#"
        warnings: ["DepthCapped { max_depth: 64 } x1"]
        struct levels: 63
        text column type: Utf8
        text: {"a":{"a":{"...}}}} (817 bytes)
    "#]]
    .assert_eq(&summary);
    // The JSON text is the rest of the original value, intact: 200 objects minus the record
    // itself and the 63 struct levels.
    let rest = depth - 1 - struct_levels;
    let expected = format!("{}1{}", "{\"a\":".repeat(rest), "}".repeat(rest));
    assert_eq!(text, expected);
}

#[test]
fn five_megabyte_string_field_is_decoded_intact() {
    let big = "x".repeat(5 * 1024 * 1024);
    let page = format!("{{\"id\":1,\"blob\":\"{big}\"}}\n{{\"id\":2,\"blob\":\"small\"}}\n");
    let mut decoder = RecordDecoder::new(options());
    decoder.decode_page(0, page.as_bytes()).unwrap();
    let batches = decoder.finish().unwrap();
    let blobs = batches[0].column(1).as_string::<i32>();
    assert_eq!(blobs.value(0).len(), big.len());
    assert_eq!(blobs.value(0), big);
    assert_eq!(blobs.value(1), "small");
}

#[test]
fn json_schema_to_arrow_maps_types_in_properties_order() {
    check_json_schema(
        json!({
            "type": "object",
            "properties": {
                "zeta": {"type": "string"},
                "when": {"type": "string", "format": "date-time"},
                "day": {"type": "string", "format": "date"},
                "n": {"type": "integer"},
                "x": {"type": ["number", "null"]},
                "ok": {"type": "boolean"},
                "person": {"type": "object", "properties": {
                    "name": {"type": "object", "properties": {"firstName": {"type": "string"}}}
                }},
                "free": {"type": "object"},
                "tags": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}},
                "anything": {},
                "mixed": {"type": ["string", "integer"]}
            }
        }),
        expect![[r#"
            zeta: Utf8
            when: Timestamp(µs, "+00:00")
            day: Date32
            n: Int64
            x: Float64
            ok: Boolean
            person: Struct
              name: Struct
                firstName: Utf8
            free: Utf8
            tags: List
              item: Struct
                id: Int64
            anything: Utf8
            mixed: Utf8
        "#]],
    );
}

#[test]
fn json_schema_to_arrow_errors_name_the_json_pointer() {
    check_json_schema(
        json!({"type": "object", "properties": {"a/b": {"type": "object", "properties": {"c": {"type": "money"}}}}}),
        expect![[r#"
            error: json schema /properties/a~1b/properties/c/type: unsupported type `money`; expected string, integer, number, boolean, object, array or null
        "#]],
    );
    check_json_schema(
        json!({"type": "string"}),
        expect![[r#"
        error: json schema /: expected an object schema with `properties`
    "#]],
    );
    check_json_schema(
        json!({"properties": {"a": {"type": 5}}}),
        expect![[r#"
            error: json schema /properties/a/type: expected a type name or an array of type names
        "#]],
    );
}

#[test]
fn infer_schema_keeps_source_order_and_reads_at_most_max_records() {
    let ndjson = b"{\"b\":1,\"a\":\"x\"}\n{\"c\":true}\n{\"d\":1}\n";
    let mut out = String::new();
    render_schema(&mut out, &infer_schema(ndjson, 2).unwrap());
    writeln!(out, "--").unwrap();
    render_schema(&mut out, &infer_schema(ndjson, 100).unwrap());
    expect![[r#"
        b: Int64
        a: Utf8
        c: Boolean
        --
        b: Int64
        a: Utf8
        c: Boolean
        d: Int64
    "#]]
    .assert_eq(&out);
}

#[test]
fn json_text_escapes_strings_and_keeps_numbers_verbatim() {
    check(
        options(),
        &[
            "{\"s\":\"plain\"}\n",
            "{\"s\":{\"q\":\"say \\\"hi\\\"\\n\\ttab\\u0001\",\"n\":1.50e2,\"l\":[true,false,null,{}],\"e\":[]}}\n",
        ],
        expect![[r#"
            == page 0
            == page 1
            warning: page 1, field `s`: 1 value(s) of another type written as JSON text
            == finish
            batch of 2 rows: s
            +----------------------------------------------------------------------------+
            | s                                                                          |
            +----------------------------------------------------------------------------+
            | plain                                                                      |
            | {"q":"say \"hi\"\n\ttab\u0001","n":1.50e2,"l":[true,false,null,{}],"e":[]} |
            +----------------------------------------------------------------------------+
            == schema
            s: Utf8
        "#]],
    );
}

#[test]
fn a_rejected_first_page_leaves_nothing_in_the_inferred_schema() {
    check(
        options(),
        &["{\"stray\":1}\n[2]\n", "{\"a\":1}\n"],
        expect![[r#"
            == page 0
            error: page 0, record 1: expected a JSON object, found an array; record starts with `[2]`
            == page 1
            == finish
            batch of 1 rows: a
            +---+
            | a |
            +---+
            | 1 |
            +---+
            == schema
            a: Int64
        "#]],
    );
}

#[test]
fn known_schema_still_rejects_records_that_are_not_objects() {
    let schema = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
    check_error(
        DecoderOptions {
            known_schema: Some(Arc::new(schema)),
            ..DecoderOptions::default()
        },
        "{\"a\":1}\nnull\n",
        expect!["page 7, record 1: expected a JSON object, found null; record starts with `null`"],
    );
}

#[test]
fn flush_at_a_checkpoint_emits_buffered_rows_and_decoding_goes_on() {
    let mut decoder = RecordDecoder::new(DecoderOptions {
        infer_pages: 3,
        ..DecoderOptions::default()
    });
    let mut out = String::new();
    decoder.decode_page(0, b"{\"a\":1}\n").unwrap();
    // Held back for inference, yet the schema so far is visible.
    render_schema(&mut out, &decoder.schema());
    let flushed = decoder.flush().unwrap();
    writeln!(out, "--").unwrap();
    render_page(&mut out, &flushed);
    decoder.decode_page(1, b"{\"a\":2,\"b\":true}\n").unwrap();
    let rest = decoder.finish_page().unwrap();
    writeln!(out, "--").unwrap();
    render_page(&mut out, &rest);
    expect![[r#"
        a: Int64
        --
        batch of 1 rows: a
        +---+
        | a |
        +---+
        | 1 |
        +---+
        --
        batch of 1 rows: a, b
        +---+------+
        | a | b    |
        +---+------+
        | 2 | true |
        +---+------+
    "#]]
    .assert_eq(&out);
}

#[test]
fn object_keyed_by_data_with_too_many_fields_is_kept_as_json_text() {
    let wide: Vec<String> = (0..1001).map(|i| format!("\"k{i}\":{i}")).collect();
    let page = format!(
        "{{\"id\":1,\"by_day\":{{{}}}}}\n{{\"id\":2,\"by_day\":{{\"k0\":0}}}}\n",
        wide.join(",")
    );
    let mut decoder = RecordDecoder::new(options());
    let decoded = decoder.decode_page(0, page.as_bytes()).unwrap();
    let batches = decoder.finish().unwrap();
    let by_day = batches[0].column(1).as_string::<i32>();
    let summary = format!(
        "schema: {:?}\nwarnings: {}\nrow 0 starts: {}\nrow 1: {}\n",
        batches[0]
            .schema_ref()
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>(),
        decoded
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        &by_day.value(0)[..20],
        by_day.value(1),
    );
    expect![[r#"
        schema: ["id: Int64", "by_day: Utf8"]
        warnings: page 0, field `by_day`: 2 value(s) of another type written as JSON text
        row 0 starts: {"k0":0,"k1":1,"k2":
        row 1: {"k0":0}
    "#]]
    .assert_eq(&summary);
}

fn rescue_options(base: Option<Schema>) -> DecoderOptions {
    DecoderOptions {
        rescue: true,
        base_schema: base.map(Arc::new),
        ..DecoderOptions::default()
    }
}

fn rescued_texts(batches: &[RecordBatch]) -> Vec<Option<String>> {
    let mut texts = Vec::new();
    for batch in batches {
        match batch
            .schema()
            .column_with_name(crate::dataset::RESCUED_DATA)
        {
            Some((index, _)) => {
                let column = batch
                    .column(index)
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .unwrap();
                for row in 0..column.len() {
                    texts.push(column.is_valid(row).then(|| column.value(row).to_owned()));
                }
            }
            None => texts.extend(std::iter::repeat_n(None, batch.num_rows())),
        }
    }
    texts
}

#[test]
fn rescue_keeps_an_established_type_and_moves_misfits_to_rescued_data() {
    let mut decoder = RecordDecoder::new(rescue_options(None));
    let mut batches = Vec::new();
    let first = decoder
        .decode_page(0, br#"{"id":1,"tags":[1,2],"a":{"b":true}}"#)
        .unwrap();
    batches.extend(first.batches);
    let second = decoder
        .decode_page(
            1,
            concat!(
                r#"{"id":"X-1","tags":[3,"four"],"a":{"b":"no","c":2.5},"score":1}"#,
                "\n",
                r#"{"id":3,"tags":[5],"a":{"b":false},"score":1.5}"#,
                "\n"
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(second.rescued_records, 1);
    assert!(second.schema_changed);
    batches.extend(second.batches);
    batches.extend(decoder.finish().unwrap());
    let schema = batches.last().unwrap().schema();
    let types: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    // id stays Int64 though a string came; a new column takes its page's type (widened).
    assert_eq!(types[0], ("id".to_owned(), "Int64".to_owned()));
    assert_eq!(types[3], ("score".to_owned(), "Float64".to_owned()));
    assert_eq!(types[4].0, crate::dataset::RESCUED_DATA);
    let texts = rescued_texts(&batches);
    assert_eq!(texts[0], None);
    let rescued: serde_json::Value = serde_json::from_str(texts[1].as_deref().unwrap()).unwrap();
    assert_eq!(
        rescued,
        serde_json::json!({"id": "\"X-1\"", "tags[1]": "\"four\"", "a.b": "\"no\""})
    );
    assert_eq!(texts[2], None);
}

#[test]
fn rescue_starts_from_the_base_schema_and_rescues_misfits_of_a_known_schema() {
    let base = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
    let mut decoder = RecordDecoder::new(rescue_options(Some(base)));
    let page = decoder
        .decode_page(0, br#"{"id":"seven","name":"x"}"#)
        .unwrap();
    assert_eq!(page.rescued_records, 1);
    let mut batches = page.batches;
    batches.extend(decoder.finish().unwrap());
    let schema = batches[0].schema();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).name(), "name");
    assert_eq!(
        rescued_texts(&batches),
        vec![Some(r#"{"id":"\"seven\""}"#.to_owned())]
    );

    let known = Schema::new(vec![Field::new("n", DataType::Int64, true)]);
    let mut decoder = RecordDecoder::new(DecoderOptions {
        known_schema: Some(Arc::new(known)),
        ..rescue_options(None)
    });
    let page = decoder
        .decode_page(0, b"{\"n\":true,\"other\":1}\n{\"n\":4}\n")
        .unwrap();
    assert_eq!(page.rescued_records, 1);
    assert!(
        page.warnings
            .iter()
            .all(|w| matches!(w.kind, WarningKind::Rescued { .. })),
        "{:?}",
        page.warnings
    );
    let mut batches = page.batches;
    batches.extend(decoder.finish().unwrap());
    assert_eq!(
        rescued_texts(&batches),
        vec![Some(r#"{"n":"true"}"#.to_owned()), None]
    );
}
