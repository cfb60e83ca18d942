//! Differential tests of the direct decoder: for every page it takes, its batches must equal the
//! tape path's for the same page and schema, with nothing for the tape path to count; pages the
//! tape path refuses, counts or would read by leniency it must decline, and leave no trace.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_cast::pretty::pretty_format_batches;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use proptest::prelude::*;

use super::{Column, DirectDecoder};
use crate::decode::leaf::Mode;
use crate::decode::page::{PageDecoder, PageDecoderSpec};

fn spec(schema: &SchemaRef, mode: Mode, batch_rows: usize) -> PageDecoderSpec {
    PageDecoderSpec {
        schema: schema.clone(),
        mode,
        capped_paths: Arc::default(),
        max_depth: crate::decode::DEFAULT_MAX_DEPTH,
        batch_rows,
        direct: false,
        generation: 1,
    }
}

/// The tape path's batches for the page, when it decodes it with nothing to count.
fn tape_path(
    schema: &SchemaRef,
    mode: Mode,
    batch_rows: usize,
    page: &[u8],
) -> Option<Vec<RecordBatch>> {
    let mut decoder = PageDecoder::new();
    let chunks = decoder
        .decode_chunks(&spec(schema, mode, batch_rows), page)
        .ok()?;
    decoder.take_counts().is_empty().then_some(chunks)
}

fn direct(
    schema: &SchemaRef,
    mode: Mode,
    batch_rows: usize,
    page: &[u8],
) -> Option<Vec<RecordBatch>> {
    DirectDecoder::new(schema, mode, batch_rows)
        .expect("the schema has a direct decoder")
        .decode(page)
}

/// When the direct decoder takes the page, the tape path takes it too, with equal batches.
/// Returns whether it took it.
fn agrees(schema: &SchemaRef, mode: Mode, batch_rows: usize, page: &[u8]) -> bool {
    let Some(ours) = direct(schema, mode, batch_rows, page) else {
        return false;
    };
    let Some(theirs) = tape_path(schema, mode, batch_rows, page) else {
        panic!(
            "the direct decoder took a page the tape path refuses or counts: {}",
            String::from_utf8_lossy(page)
        );
    };
    assert_eq!(
        ours.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
        theirs.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
        "chunking of {}",
        String::from_utf8_lossy(page)
    );
    assert_eq!(ours, theirs, "batches of {}", String::from_utf8_lossy(page));
    // Equal arrays, and equal as a reader of the batches sees them (arrow's printer knows no
    // named time zones).
    if let (Ok(ours), Ok(theirs)) = (pretty_format_batches(&ours), pretty_format_batches(&theirs)) {
        assert_eq!(ours.to_string(), theirs.to_string());
    }
    true
}

fn takes(schema: &SchemaRef, mode: Mode, page: &str) {
    assert!(
        agrees(schema, mode, 8192, page.as_bytes()),
        "the direct decoder declined {page}"
    );
}

fn declines(schema: &SchemaRef, mode: Mode, page: &[u8]) {
    assert!(
        direct(schema, mode, 8192, page).is_none(),
        "the direct decoder took {}",
        String::from_utf8_lossy(page)
    );
}

fn nullable(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true)
}

/// A member of a mailing list, as the bench's records: flat fields, a struct, lists.
fn member_schema() -> SchemaRef {
    let location = Fields::from(vec![
        nullable("latitude", DataType::Float64),
        nullable("longitude", DataType::Float64),
        nullable("country_code", DataType::Utf8),
    ]);
    let tag = Fields::from(vec![
        nullable("id", DataType::Int64),
        nullable("name", DataType::Utf8),
    ]);
    Arc::new(Schema::new(vec![
        nullable("id", DataType::Utf8),
        nullable("email_address", DataType::Utf8),
        nullable("member_rating", DataType::Int64),
        nullable("vip", DataType::Boolean),
        nullable("location", DataType::Struct(location)),
        nullable(
            "tags",
            DataType::List(Arc::new(nullable("item", DataType::Struct(tag)))),
        ),
        nullable(
            "scores",
            DataType::List(Arc::new(nullable("item", DataType::Float64))),
        ),
        nullable("last_note", DataType::Null),
    ]))
}

const MEMBER: &str = r#"{"id":"a1","email_address":"ann@example.com","member_rating":4,"vip":true,"location":{"latitude":48.85,"longitude":2.35,"country_code":"FR"},"tags":[{"id":1,"name":"new"},{"id":2,"name":"vip"}],"scores":[1.5,2,-3e2],"last_note":null}"#;

#[test]
fn a_page_of_plain_records_decodes_as_on_the_tape() {
    let schema = member_schema();
    for mode in [Mode::Evolving, Mode::Fixed] {
        let page = [MEMBER; 5].join("\n");
        takes(&schema, mode, &page);
    }
}

#[test]
fn missing_fields_nulls_and_empty_containers_decode_as_on_the_tape() {
    let schema = member_schema();
    let page = [
        r#"{}"#,
        r#"{"id":null,"location":null,"tags":null,"scores":null,"last_note":{}}"#,
        r#"{"location":{},"tags":[],"scores":[null,1]}"#,
        r#"{"tags":[null,{"name":null},{}],"location":{"country_code":"JP"}}"#,
        r#"{"vip":false,"member_rating":-9223372036854775808,"scores":[0.1,1e-320,1.7976931348623157e308]}"#,
    ]
    .join("\n");
    takes(&schema, Mode::Evolving, &page);
}

#[test]
fn key_order_whitespace_and_escapes_decode_as_on_the_tape() {
    let schema = member_schema();
    let page = concat!(
        " \t{ \"vip\" : true , \"id\" :\"x\\\"y\\\\z\\/\\b\\f\\n\\r\\t\", \"location\": { \"country_code\" : \"\\u00e9\\u4e2d\\ud83d\\ude00\" } }\r\n",
        "\n\n{\"email_address\":\"caf\u{e9} \u{1f600}\",\"id\":\"\\u0000\"}\n",
        "{\"\\u0069\\u0064\":\"escaped key\"}",
    );
    takes(&schema, Mode::Evolving, page);
}

#[test]
fn pages_are_cut_into_batches_as_on_the_tape() {
    let schema = member_schema();
    let page = [MEMBER; 7].join("\n");
    for batch_rows in [1, 3, 7, 8] {
        assert!(agrees(&schema, Mode::Evolving, batch_rows, page.as_bytes()));
    }
    assert!(agrees(&schema, Mode::Evolving, 3, b""));
}

#[test]
fn a_known_schema_skips_the_fields_it_lacks() {
    let schema = member_schema();
    let page = r#"{"id":"a","extra":{"deep":[1,[2,{"x":"\u00e9"}],{}],"t":true,"n":null},"more":-1.5e3,"vip":false}"#;
    takes(&schema, Mode::Fixed, page);
    // The same field is new to an inferred schema: the tape path grows it.
    declines(&schema, Mode::Evolving, page.as_bytes());
}

#[test]
fn timestamps_and_dates_of_a_known_schema_decode_as_on_the_tape() {
    let schema = Arc::new(Schema::new(vec![
        nullable(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        nullable(
            "local",
            DataType::Timestamp(TimeUnit::Millisecond, Some("Europe/Paris".into())),
        ),
        nullable("naive", DataType::Timestamp(TimeUnit::Second, None)),
        nullable("day", DataType::Date32),
    ]));
    let page = [
        r#"{"at":"2026-12-04T21:37:12Z","local":"2026-07-01T12:00:00","naive":"2026-12-04 21:37:12","day":"2026-12-04"}"#,
        r#"{"at":1733348232000000,"local":null,"naive":0,"day":20000}"#,
        r#"{"at":"2026-12-04T21:37:12.123456+05:30"}"#,
    ]
    .join("\n");
    takes(&schema, Mode::Fixed, &page);
    declines(&schema, Mode::Fixed, br#"{"at":"yesterday"}"#);
    declines(&schema, Mode::Fixed, br#"{"day":true}"#);
}

#[test]
fn values_the_tape_path_would_count_rescue_or_grow_on_are_declined() {
    let schema = member_schema();
    for page in [
        r#"{"member_rating":4.5}"#,
        r#"{"member_rating":"4"}"#,
        r#"{"member_rating":99999999999999999999}"#,
        r#"{"id":17}"#,
        r#"{"id":{"nested":true}}"#,
        r#"{"vip":"yes"}"#,
        r#"{"location":[1]}"#,
        r#"{"tags":{"id":1}}"#,
        r#"{"tags":[1]}"#,
        r#"{"scores":["1"]}"#,
        r#"{"last_note":"now a string"}"#,
        r#"{"last_note":{"a":1}}"#,
        r#"{"location":{"altitude":3}}"#,
    ] {
        for mode in [Mode::Evolving, Mode::Fixed] {
            if mode == Mode::Fixed && page.contains("altitude") {
                continue;
            }
            declines(&schema, mode, page.as_bytes());
            // And the tape path does not take it silently either.
            assert!(
                tape_path(&schema, mode, 8192, page.as_bytes()).is_none(),
                "{page}"
            );
        }
    }
}

#[test]
fn malformed_or_leniently_read_json_is_declined() {
    let schema = member_schema();
    let cases: &[&[u8]] = &[
        br#"{"id":"a" "vip":true}"#,
        br#"{"id":"a",,"vip":true}"#,
        br#"{"id":"a",}"#,
        br#"{"id":"a""#,
        br#"{"id":"a"} x"#,
        br#"[{"id":"a"}]"#,
        br#""a string record""#,
        br#"null"#,
        br#"{"id":"a","id":"b"}"#,
        br#"{"id":"\x"}"#,
        br#"{"id":"\ud800"}"#,
        br#"{"id":"\ud800\u0041"}"#,
        br#"{"id":"\udc00\ud800"}"#,
        br#"{"id":"\u12"}"#,
        b"{\"id\":\"\xff\xfe\"}",
        b"{\"id\":\"ok\\n\xc3\"}",
        b"{\"\xff\":1}",
        b"{\"extra\":[\"\xe2\x82\"]}",
        b"{\"extra\":{\"\xc0\xaf\":null}}",
        b"{\"at\":\"2026\xff\"}",
        br#"{"vip":tru}"#,
        br#"{"vip":nul}"#,
        br#"{"member_rating":1-2}"#,
        br#"{"member_rating":-}"#,
        br#"{"scores":[1,]}"#,
        br#"{"scores":[1 2]}"#,
        br#"{id:"a"}"#,
    ];
    for page in cases {
        declines(&schema, Mode::Evolving, page);
        declines(&schema, Mode::Fixed, page);
    }
}

#[test]
fn a_skipped_value_nested_past_the_limit_is_declined_not_recursed_into() {
    let schema = member_schema();
    let deep = format!(
        r#"{{"extra":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    declines(&schema, Mode::Fixed, deep.as_bytes());
    let shallow = format!(
        r#"{{"extra":{}1{},"id":"a"}}"#,
        "[".repeat(60),
        "]".repeat(60)
    );
    takes(&schema, Mode::Fixed, &shallow);
}

#[test]
fn a_declined_page_leaves_nothing_behind() {
    let schema = member_schema();
    let mut decoder = DirectDecoder::new(&schema, Mode::Evolving, 8192).unwrap();
    let half_bad = format!("{MEMBER}\n{MEMBER}\n{{\"member_rating\":1.5}}");
    assert!(decoder.decode(half_bad.as_bytes()).is_none());
    let good = [MEMBER; 2].join("\n");
    let after = decoder.decode(good.as_bytes()).unwrap();
    assert_eq!(
        after,
        tape_path(&schema, Mode::Evolving, 8192, good.as_bytes()).unwrap()
    );
}

#[test]
fn schemas_it_does_not_build_get_no_direct_decoder() {
    for field in [
        Field::new("required", DataType::Int64, false),
        nullable(
            "wide",
            DataType::LargeList(Arc::new(nullable("item", DataType::Int64))),
        ),
        nullable("money", DataType::Decimal128(10, 2)),
        nullable("empty", DataType::Struct(Fields::empty())),
        nullable(
            "strict_items",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, false))),
        ),
    ] {
        let schema = Arc::new(Schema::new(vec![field.clone()]));
        assert!(
            DirectDecoder::new(&schema, Mode::Evolving, 8192).is_none(),
            "{field}"
        );
    }
    let twice = Arc::new(Schema::new(vec![nullable(
        "a",
        DataType::Struct(Fields::from(vec![
            nullable("x", DataType::Int64),
            nullable("x", DataType::Utf8),
        ])),
    )]));
    assert!(DirectDecoder::new(&twice, Mode::Evolving, 8192).is_none());
    assert!(DirectDecoder::new(&Arc::new(Schema::empty()), Mode::Evolving, 8192).is_none());
}

#[test]
fn a_wide_struct_finds_its_keys_in_any_order() {
    let fields: Vec<Field> = (0..40)
        .map(|n| nullable(&format!("f{n}"), DataType::Int64))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let forward: Vec<String> = (0..40).map(|n| format!("\"f{n}\":{n}")).collect();
    let backward: Vec<String> = (0..40)
        .rev()
        .step_by(3)
        .map(|n| format!("\"f{n}\":{n}"))
        .collect();
    let page = format!("{{{}}}\n{{{}}}", forward.join(","), backward.join(","));
    takes(&schema, Mode::Evolving, &page);
}

/// One JSON value for a field of `member_schema`, mostly fitting, sometimes not.
fn value_for(name: &'static str) -> BoxedStrategy<String> {
    let text = prop_oneof![
        "[a-z@. ]{0,12}".prop_map(|s| format!("{s:?}")),
        Just(r#""\u00e9\n\"q\"""#.to_owned()),
    ];
    let int = any::<i64>().prop_map(|n| n.to_string());
    let float = prop_oneof![
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        (-1000_i32..1000).prop_map(|n| n.to_string()),
    ];
    let fitting: BoxedStrategy<String> = match name {
        "id" | "email_address" => text.boxed(),
        "member_rating" => int.boxed(),
        "vip" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        "location" => (float.clone(), float.clone(), text)
            .prop_map(|(a, b, c)| {
                format!(r#"{{"country_code":{c},"latitude":{a},"longitude":{b}}}"#)
            })
            .boxed(),
        "tags" => proptest::collection::vec((any::<i64>(), "[a-z]{0,5}"), 0..4)
            .prop_map(|tags| {
                let items: Vec<String> = tags
                    .iter()
                    .map(|(id, name)| format!(r#"{{"id":{id},"name":"{name}"}}"#))
                    .collect();
                format!("[{}]", items.join(","))
            })
            .boxed(),
        "scores" => proptest::collection::vec(float, 0..4)
            .prop_map(|scores| format!("[{}]", scores.join(",")))
            .boxed(),
        _ => Just("null".to_owned()).boxed(),
    };
    let misfit = prop_oneof![
        Just("1.5".to_owned()),
        Just(r#""text""#.to_owned()),
        Just("[1,2]".to_owned()),
        Just(r#"{"k":1}"#.to_owned()),
        Just("true".to_owned()),
        Just("{}".to_owned()),
    ];
    prop_oneof![8 => fitting, 1 => Just("null".to_owned()), 1 => misfit].boxed()
}

fn record() -> impl Strategy<Value = String> {
    const NAMES: [&str; 8] = [
        "id",
        "email_address",
        "member_rating",
        "vip",
        "location",
        "tags",
        "scores",
        "last_note",
    ];
    let fields: Vec<_> = NAMES
        .iter()
        .map(|name| proptest::option::weighted(0.8, value_for(name)).prop_map(move |v| (*name, v)))
        .collect();
    (
        fields,
        any::<bool>(),
        proptest::option::weighted(0.1, "[a-z]{1,4}"),
    )
        .prop_map(|(fields, reverse, extra)| {
            let mut parts: Vec<String> = fields
                .into_iter()
                .filter_map(|(name, value)| value.map(|value| format!("\"{name}\":{value}")))
                .collect();
            if let Some(extra) = extra {
                parts.push(format!("\"x_{extra}\":[1,{{\"y\":null}}]"));
            }
            if reverse {
                parts.reverse();
            }
            format!("{{{}}}", parts.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random pages, mostly fitting: whatever the direct decoder takes, the tape path takes
    /// with equal batches; whatever the tape path refuses or counts, the direct one declines.
    #[test]
    fn random_pages_decode_as_on_the_tape(
        records in proptest::collection::vec(record(), 0..12),
        fixed in any::<bool>(),
        batch_rows in 1_usize..6,
    ) {
        let schema = member_schema();
        let mode = if fixed { Mode::Fixed } else { Mode::Evolving };
        let page = records.join("\n");
        let took = agrees(&schema, mode, batch_rows, page.as_bytes());
        if tape_path(&schema, mode, batch_rows, page.as_bytes()).is_none() {
            prop_assert!(!took);
        }
    }
}

#[test]
fn a_huge_page_does_not_keep_its_memory_reserved() {
    let schema = member_schema();
    let mut decoder = DirectDecoder::new(&schema, Mode::Evolving, 8192).unwrap();
    let huge = format!(
        r#"{{"id":"{}","tags":[{}]}}"#,
        "x".repeat(8 << 20),
        "{},".repeat(400_000) + "{}"
    );
    let declined = format!("{huge}\n{{\"vip\":1}}");
    for page in [huge.as_str(), declined.as_str()] {
        decoder.decode(page.as_bytes());
        let Column::Utf8 { data, offsets, .. } = &decoder.root.children[0] else {
            panic!("`id` is a text column");
        };
        assert!(
            data.capacity() <= super::RETAINED_BYTES,
            "{}",
            data.capacity()
        );
        assert!(offsets.capacity() <= super::RETAINED_BYTES / 4);
        let Column::List { offsets, items, .. } = &decoder.root.children[5] else {
            panic!("`tags` is a list column");
        };
        assert!(offsets.capacity() <= super::RETAINED_BYTES / 4);
        let Column::Struct(tag) = &**items else {
            panic!("tags are structs")
        };
        let Column::Int64 { values, .. } = &tag.children[0] else {
            panic!("a tag's id is an integer")
        };
        assert!(
            values.capacity() <= super::RETAINED_BYTES / 8,
            "{}",
            values.capacity()
        );
    }
}
