//! JSONPath normalisation, simple-key extraction and lookups.

use serde_json::json;

use super::*;

#[test]
fn bare_paths_are_rooted_and_simple_paths_expose_their_keys() {
    let cases = [
        ("$.members", "$.members", Some(vec!["members"])),
        ("paging.next", "$.paging.next", Some(vec!["paging", "next"])),
        ("$", "$", Some(vec![])),
        (
            "$['meta']['after_cursor']",
            "$['meta']['after_cursor']",
            Some(vec!["meta", "after_cursor"]),
        ),
        ("$.data[*].items", "$.data[*].items", None),
        ("$..id", "$..id", None),
    ];
    for (input, normalised, keys) in cases {
        let path = JsonPath::parse(input).unwrap();
        assert_eq!(path.as_str(), normalised, "{input}");
        let expected: Option<Vec<String>> =
            keys.map(|keys| keys.into_iter().map(str::to_owned).collect());
        assert_eq!(
            path.simple_keys().map(<[String]>::to_vec),
            expected,
            "{input}"
        );
    }
}

#[test]
fn first_and_all_select_nodes() {
    let page = json!({"paging": {"next": "https://x/2"}, "data": [{"id": 1}, {"id": 2}]});
    assert_eq!(
        JsonPath::parse("paging.next").unwrap().first(&page),
        Some(&json!("https://x/2"))
    );
    assert_eq!(
        JsonPath::parse("$.missing.deeper").unwrap().first(&page),
        None
    );
    let ids: Vec<_> = JsonPath::parse("$.data[*].id")
        .unwrap()
        .all(&page)
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(ids, [json!(1), json!(2)]);
}

#[test]
fn invalid_paths_are_errors_naming_the_path() {
    assert_eq!(
        JsonPath::parse("  ").unwrap_err(),
        "expected a JSONPath such as \"$.items\", found an empty string"
    );
    let err = JsonPath::parse("$.a[").unwrap_err();
    assert!(err.starts_with("invalid JSONPath \"$.a[\""), "{err}");
}
