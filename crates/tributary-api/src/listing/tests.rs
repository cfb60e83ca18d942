use serde_json::json;

use super::*;

fn query(pairs: &[(&str, &str)]) -> Query {
    Query {
        pairs: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// The ids of `docs` a query returns, in order.
fn check(pairs: &[(&str, &str)], expect: &[&str]) {
    let docs = [
        json!({"id": "a", "name": "Alpha", "state": "enabled", "createdAt": 3, "sourceConnectionIds": ["s1"], "params": {"n": 5}, "t": [{"p": {"m": "x"}}]}),
        json!({"id": "b", "name": "beta", "state": "disabled", "createdAt": 1, "sourceConnectionIds": ["s2", "s3"], "params": {"n": 50}, "t": [{"p": {"m": "y"}}]}),
        json!({"id": "c", "name": "Gamma, Inc", "state": "enabled", "createdAt": 2, "params": {"n": "7"}}),
    ];
    let list = ListQuery::parse(&query(pairs)).unwrap();
    let response = list.respond(docs.iter(), "/flows");
    let ids: Vec<&str> = response["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expect, "query {pairs:?}");
}

fn check_err(pairs: &[(&str, &str)], code: &str) {
    let err = ListQuery::parse(&query(pairs)).unwrap_err();
    assert!(
        err.body()["type"].as_str().unwrap().ends_with(code),
        "query {pairs:?}: {}",
        err.body()
    );
}

#[test]
fn filters_compare_nest_walk_arrays_and_and_together() {
    check(&[("property", "state==enabled")], &["a", "c"]);
    check(&[("property", "state==ENABLED")], &["a", "c"]);
    check(&[("property", "state!=enabled")], &["b"]);
    check(&[("property", "id==a,c")], &["a", "c"]);
    check(&[("property", "id!=a,c")], &["b"]);
    check(&[("property", "name==\"Gamma, Inc\"")], &["c"]);
    check(&[("property", "name=='beta'")], &["b"]);
    check(&[("property", "createdAt>1")], &["a", "c"]);
    check(
        &[("property", "createdAt>=2"), ("property", "state==enabled")],
        &["a", "c"],
    );
    check(&[("property", "createdAt<2")], &["b"]);
    check(&[("property", "createdAt<=2")], &["b", "c"]);
    check(&[("property", "params.n>6")], &["b", "c"]);
    check(&[("property", "sourceConnectionIds==s3")], &["b"]);
    check(&[("property", "sourceConnectionIds[]==s1")], &["a"]);
    check(&[("property", "t[].p.m==y")], &["b"]);
    check(&[("property", "missing==x")], &[]);
}

#[test]
fn order_limit_and_tokens_page_through_everything_once() {
    check(&[("orderby", "createdAt")], &["b", "c", "a"]);
    check(&[("orderby", " createdAt")], &["b", "c", "a"]);
    check(&[("orderby", "+createdAt")], &["b", "c", "a"]);
    check(&[("orderby", "-createdAt")], &["a", "c", "b"]);
    let docs: Vec<Value> = (0..5).map(|i| json!({"id": format!("d{i}")})).collect();
    let mut seen = Vec::new();
    let mut next = Some(query(&[("limit", "2")]));
    while let Some(q) = next.take() {
        let response = ListQuery::parse(&q).unwrap().respond(docs.iter(), "/flows");
        for item in response["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        if let Some(href) = response["_links"]["next"]["href"].as_str() {
            assert_eq!(href.matches('=').count(), 1, "{href}");
            let token = href.split_once("continuationToken=").unwrap().1;
            next = Some(query(&[("continuationToken", token)]));
        } else {
            assert_eq!(response["_links"], json!({}));
        }
    }
    assert_eq!(seen, ["d0", "d1", "d2", "d3", "d4"]);
}

/// Paging a filtered list in the default order: every match once, in order, for page sizes
/// that divide the matches and that do not; the last page has no next link; and a first page
/// reads only as many documents as it needs (not the whole collection).
#[test]
fn filtered_pages_stop_reading_once_full_and_see_every_match_once() {
    let docs: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("d{i:02}"), "even": i % 2 == 0}))
        .collect();
    let expected: Vec<String> = (0..40)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("d{i:02}"))
        .collect();
    for limit in ["1", "4", "7", "20", "21", "100"] {
        let mut seen = Vec::new();
        let mut next = Some(query(&[("limit", limit), ("property", "even==true")]));
        while let Some(q) = next.take() {
            let response = ListQuery::parse(&q).unwrap().respond(docs.iter(), "/flows");
            for item in response["items"].as_array().unwrap() {
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            match response["_links"]["next"]["href"].as_str() {
                Some(href) => {
                    let token = href.split_once("continuationToken=").unwrap().1;
                    next = Some(query(&[("continuationToken", token)]));
                }
                None => assert_eq!(response["_links"], json!({}), "limit {limit}"),
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
    }
    let read = std::cell::Cell::new(0);
    let counted = docs.iter().inspect(|_| read.set(read.get() + 1));
    let first = ListQuery::parse(&query(&[("limit", "4"), ("property", "even==true")]))
        .unwrap()
        .respond(counted, "/flows");
    assert_eq!(first["items"].as_array().unwrap().len(), 4);
    assert!(first["_links"]["next"]["href"].is_string());
    // Five matches (four for the page, one to know a next page exists) lie in the first nine.
    assert_eq!(read.get(), 9);
}

#[test]
fn count_and_projection() {
    let docs = [
        json!({"id": "a", "x": 1, "y": 2}),
        json!({"id": "b", "x": 3, "y": 4}),
    ];
    let count = ListQuery::parse(&query(&[("count", "true"), ("property", "x>1")]))
        .unwrap()
        .respond(docs.iter(), "/x");
    assert_eq!(count, json!({"count": 1}));
    let projected = ListQuery::parse(&query(&[("property", "x")]))
        .unwrap()
        .respond(docs.iter(), "/x");
    assert_eq!(
        projected["items"],
        json!([{"id": "a", "x": 1}, {"id": "b", "x": 3}])
    );
}

#[test]
fn bad_combinations_get_their_documented_codes() {
    check_err(&[("count", "true"), ("limit", "5")], "FLOW-1401-400");
    check_err(&[("property", "name~x")], "FLOW-1440-400");
    check_err(&[("property", "createdAt<=1,2")], "FLOW-1443-400");
    check_err(&[("property", "createdAt!>1")], "FLOW-1450-400");
    check_err(&[("property", "name==")], "FLOW-1451-400");
    check_err(&[("orderby", "--name")], "FLOW-1433-400");
    check_err(&[("orderby", "na me")], "FLOW-1432-400");
    check_err(&[("limit", "0")], "FLOW-1452-400");
    check_err(&[("limit", "abc")], "FLOW-1452-400");
    check_err(&[("continuationToken", "not-a-token")], "FLOW-1453-400");
    check_err(&[("count", "maybe")], "FLOW-1454-400");
}
