//! Tests of the record locator: fast path, filters, slow path, errors, envelope values.

use bytes::Bytes;
use expect_test::{Expect, expect};

use super::*;

/// Locates the records of `page` with `selector` and renders the NDJSON or the error; locating
/// in place must find the same records (up to the spaces around them) or the same error.
fn check(selector: &RecordSelector, page: &str, expected: Expect) {
    let actual = match selector.locate(page.as_bytes(), 3, "http://api.test/x") {
        Ok(located) => {
            let text = String::from_utf8(located.ndjson.to_vec()).unwrap();
            assert_eq!(
                text.lines().count(),
                located.record_count,
                "count matches lines"
            );
            format!("{} records\n{text}", located.record_count)
        }
        Err(err) => format!("error: {err}"),
    };
    expected.assert_eq(&actual);
    let in_place = selector.locate_in_place(
        Bytes::copy_from_slice(page.as_bytes()),
        3,
        "http://api.test/x",
    );
    assert_eq!(
        trimmed(in_place.map(|(_, located)| located)),
        trimmed(selector.locate(page.as_bytes(), 3, "http://api.test/x"))
    );
}

/// The records' lines without the spaces around them, or the error's text.
fn trimmed(located: Result<LocatedRecords, FetchError>) -> Result<(usize, Vec<String>), String> {
    let located = located.map_err(|err| err.to_string())?;
    let text = String::from_utf8(located.ndjson.to_vec()).unwrap();
    let lines: Vec<String> = text.lines().map(|line| line.trim().to_owned()).collect();
    assert_eq!(lines.len(), located.record_count, "count matches lines");
    Ok((located.record_count, lines))
}

fn selector(path: &str) -> RecordSelector {
    RecordSelector::new(RecordPath::parse(path).unwrap())
}

fn filtered(path: &str, keep: &[&str], skip: &[&str]) -> RecordSelector {
    let keep = (!keep.is_empty()).then(|| keep.iter().map(|s| s.to_string()).collect());
    selector(path).with_filter(AttrFilter::new(
        keep,
        skip.iter().map(|s| s.to_string()).collect(),
    ))
}

#[test]
fn finds_the_array_at_a_top_level_key() {
    check(
        &selector("$.members"),
        r#"{"total": 2, "members": [{"id": 1, "n": {"a": [1, 2]}}, {"id": 2}], "after": "x"}"#,
        expect![[r#"
            2 records
            {"id": 1, "n": {"a": [1, 2]}}
            {"id": 2}
        "#]],
    );
}

#[test]
fn follows_nested_keys_bare_paths_and_root_arrays() {
    check(
        &selector("data.items"),
        r#"{"data": {"x": 1, "items": [{"id": "a"}]}}"#,
        expect![[r#"
            1 records
            {"id": "a"}
        "#]],
    );
    check(
        &selector("$"),
        r#" [ {"id": 1} , {"id": 2} ] "#,
        expect![[r#"
            2 records
            {"id": 1}
            {"id": 2}
        "#]],
    );
    check(
        &selector("$['data'][1]"),
        r#"{"data": [[{"id": 0}], [{"id": 1}]]}"#,
        expect![[r#"
            1 records
            {"id": 1}
        "#]],
    );
    check(
        &selector("$.members"),
        r#"{"members": []}"#,
        expect![[r#"
        0 records
    "#]],
    );
}

#[test]
fn pretty_printed_records_become_single_lines() {
    check(
        &selector("$.m"),
        "{\"m\": [\n  {\n    \"id\": 1,\r\n    \"s\": \"a\\nb\"\n  }\n]}",
        expect![[r#"
            1 records
            {     "id": 1,      "s": "a\nb"   }
        "#]],
    );
}

#[test]
fn keep_and_skip_attributes_copy_only_kept_pairs() {
    let page = r#"{"members": [{"id": 1, "_links": [{"a": 1}], "email": "x@y", "list_id": "L"}, {"list_id": "M"}]}"#;
    check(
        &filtered("$.members", &[], &["_links", "list_id"]),
        page,
        expect![[r#"
            2 records
            {"id": 1,"email": "x@y"}
            {}
        "#]],
    );
    check(
        &filtered("$.members", &["email", "id"], &[]),
        page,
        expect![[r#"
            2 records
            {"id": 1,"email": "x@y"}
            {}
        "#]],
    );
    check(
        &filtered("$.members", &["i\u{64}"], &[]),
        r#"{"members": [{"\u0069d": 7, "x": 1}]}"#,
        expect![[r#"
            1 records
            {"\u0069d": 7}
        "#]],
    );
}

#[test]
fn missing_or_non_array_content_path_names_the_path_and_keys() {
    check(
        &selector("$.members"),
        r#"{"total_items": 3, "list_id": "a", "_links": []}"#,
        expect![[
            r#"error: page 3: contentPath $.members was not found; keys at $: [total_items, list_id, _links]"#
        ]],
    );
    check(
        &selector("$.members"),
        r#"{"members": {"id": 1}, "total": 1}"#,
        expect![[
            r#"error: page 3: contentPath $.members points at an object, expected an array; keys at $: [members, total]"#
        ]],
    );
    check(
        &selector("$.data.items"),
        r#"{"data": {"rows": []}}"#,
        expect![[
            r#"error: page 3: contentPath $.data.items was not found; keys at $.data: [rows]"#
        ]],
    );
    check(
        &selector("$.members"),
        r#"[{"id": 1}]"#,
        expect![[
            r#"error: page 3: contentPath $.members expects an object here, found an array; keys at $: []"#
        ]],
    );
}

#[test]
fn an_element_that_is_not_an_object_is_an_error_naming_its_index() {
    check(
        &selector("$.members"),
        r#"{"members": [{"id": 1}, {"id": 2}, 17]}"#,
        expect![[
            r#"error: page 3: record 2 of the contentPath array is a number, expected an object"#
        ]],
    );
}

#[test]
fn truncated_and_malformed_pages_are_errors_without_records() {
    check(
        &selector("$.members"),
        r#"{"members": [{"id": 1}, {"id": 2}], "total": 2"#,
        expect![
            "error: page 3 from http://api.test/x: malformed json at byte 46: unexpected end of input (truncated body?), expected ',' or '}' in an object"
        ],
    );
    check(
        &selector("$.members"),
        r#"{"members": [{"id": 1}, {"id": 2, "name": "tru"#,
        expect![
            "error: page 3 from http://api.test/x: malformed json at byte 46: unexpected end of input (truncated body?), expected the end of a string"
        ],
    );
    check(
        &selector("$.members"),
        r#"{"members": [{"id": 1}, {"id": tru}]}"#,
        expect![
            "error: page 3 from http://api.test/x: malformed json at byte 31: invalid literal, expected true"
        ],
    );
    check(
        &selector("$.members"),
        r#"{"members": [{"id": 01}]}"#,
        expect![
            "error: page 3 from http://api.test/x: malformed json at byte 21: expected ',' or '}' in an object, found '1'"
        ],
    );
    check(
        &selector("$.members"),
        r#"{"members": []} {}"#,
        expect![[
            r#"error: page 3 from http://api.test/x: malformed json at byte 16: trailing characters after the json document"#
        ]],
    );
    check(
        &selector("$.members"),
        "{\"members\": [{\"a\": \"x\ty\"}]}",
        expect![[
            r#"error: page 3 from http://api.test/x: malformed json at byte 21: control character inside a string"#
        ]],
    );
}

#[test]
fn explode_emits_one_row_per_sub_array_element_under_the_wrappers() {
    let explode = ExplodeSelector::try_new(
        RecordPath::parse("$.email.activity").unwrap(),
        AttrFilter::new(None, vec!["ip".to_owned()]),
        Some("activity".to_owned()),
    )
    .unwrap();
    let selector = selector("$.emails")
        .with_wrapper(Some("email".to_owned()))
        .with_explode(Some(explode));
    check(
        &selector,
        r#"{"emails": [
            {"email_id": "e1", "activity": [{"action": "open", "ip": "1"}, {"action": "click", "ip": "2"}]},
            {"email_id": "e2", "activity": []}
        ]}"#,
        expect![[r#"
            3 records
            {"email":{"email_id":"e1","activity":{"action":"open"}}}
            {"email":{"email_id":"e1","activity":{"action":"click"}}}
            {"email":{"email_id":"e2"}}
        "#]],
    );
}

#[test]
fn the_wrapper_alone_does_not_wrap() {
    check(
        &selector("$.members").with_wrapper(Some("member".to_owned())),
        r#"{"members": [{"merge_fields": {"FNAME": "A"}}]}"#,
        expect![[r#"
            1 records
            {"merge_fields": {"FNAME": "A"}}
        "#]],
    );
}

#[test]
fn wildcard_paths_take_the_slow_path() {
    check(
        &selector("$.groups[*].items"),
        r#"{"groups": [{"items": [{"id": 1}]}]}"#,
        expect![[r#"
            1 records
            {"id":1}
        "#]],
    );
}

#[test]
fn envelope_values_are_read_without_the_records() {
    let selector = selector("$.members");
    let page = br#"{"members": [{"id": 1}, {"id": 2}], "paging": {"next": "http://x/2"}, "has_more": true}"#;
    let located = selector.locate(page, 0, "u").unwrap();
    let next = RecordPath::parse("paging.next").unwrap();
    let first_id = RecordPath::parse("$.members[1].id").unwrap();
    let envelope = Envelope::parse(page, &located, selector.content_path(), &[&next], 0).unwrap();
    assert_eq!(envelope.get(&next), Some(&serde_json::json!("http://x/2")));
    assert_eq!(
        envelope.get(&first_id),
        None,
        "records are left out of the envelope"
    );
    let envelope = Envelope::parse(
        page,
        &located,
        selector.content_path(),
        &[&next, &first_id],
        0,
    )
    .unwrap();
    assert_eq!(
        envelope.get(&first_id),
        Some(&serde_json::json!(2)),
        "a path into the records parses them"
    );
}

#[test]
fn invalid_utf8_is_malformed() {
    let err = selector("$")
        .locate(b"[{\"a\": \"\xff\"}]", 0, "u")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "page 0 from u: malformed json at byte 8: invalid UTF-8"
    );
}

#[test]
fn fast_path_records_equal_a_full_parse_of_a_realistic_page() {
    let mut page = b"{\"members\": [".to_vec();
    for index in 0..300 {
        if index > 0 {
            page.extend_from_slice(b",\n ");
        }
        tributary_mockapi::write_record_json(5, index, &mut page);
    }
    page.extend_from_slice(b"], \"total_items\": 300}");
    let parsed: Value = serde_json::from_slice(&page).unwrap();
    let skip = ["tags", "location", "merge_fields"];
    let selector = filtered("$.members", &[], &skip);
    let located = selector.locate(&page, 0, "u").unwrap();
    let lines: Vec<Value> = std::str::from_utf8(&located.ndjson)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expected: Vec<Value> = parsed["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| {
            let mut record = record.as_object().unwrap().clone();
            for key in skip {
                record.shift_remove(key);
            }
            Value::Object(record)
        })
        .collect();
    assert_eq!(lines.len(), 300);
    assert_eq!(lines, expected);
}

#[test]
fn in_place_records_are_a_slice_of_the_page_and_the_envelope_stays_readable() {
    let selector = selector("$.members");
    let page = "{\"members\": [\n  {\"id\": 1,\n \"s\": \"a,b\"} ,\r\n  {\"id\": 2}\n], \"paging\": {\"next\": \"http://x/2\"}}";
    let (page, located) = selector
        .locate_in_place(Bytes::copy_from_slice(page.as_bytes()), 0, "u")
        .unwrap();
    let page_bytes = page.as_ptr() as usize..page.as_ptr() as usize + page.len();
    assert!(
        page_bytes.contains(&(located.ndjson.as_ptr() as usize)),
        "the records are not copied"
    );
    expect![[r#"
        {"id": 1,  "s": "a,b"} 
            {"id": 2}"#]]
    .assert_eq(std::str::from_utf8(&located.ndjson).unwrap());
    assert_eq!(located.record_count, 2);
    let next = RecordPath::parse("paging.next").unwrap();
    let envelope = Envelope::parse(&page, &located, selector.content_path(), &[&next], 0).unwrap();
    assert_eq!(envelope.get(&next), Some(&serde_json::json!("http://x/2")));
}

#[test]
fn in_place_falls_back_to_copying_when_attributes_are_dropped() {
    let selector = filtered("$.members", &[], &["_links"]);
    let text = r#"{"members": [{"id": 1, "_links": []}]}"#;
    let (page, located) = selector
        .locate_in_place(Bytes::copy_from_slice(text.as_bytes()), 0, "u")
        .unwrap();
    assert_eq!(&page[..], text.as_bytes(), "the page is left as it came");
    assert_eq!(&located.ndjson[..], b"{\"id\": 1}\n");
}
