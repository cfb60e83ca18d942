//! Whole documents: kind detection, JSON syntax errors with line and column, flow bundles with
//! referenced files and cross-checks, typed loading, secrets, and bad input that must never
//! panic.

use std::collections::HashMap;

use expect_test::{Expect, expect};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn spec_json() -> Value {
    json!({
        "name": "MailChimp Members source",
        "authSpec": [
            {"name": "Basic Authentication", "type": "BasicAuthentication",
             "spec": {"type": "object", "properties": {"host": {"type": "string", "format": "uri"}, "username": {"type": "string"},
                                                       "password": {"type": "string", "format": "password"}},
                      "required": ["host", "username", "password"]}},
            {"name": "OAuth2 Refresh Code", "type": "OAuth2RefreshCode",
             "spec": {"type": "object", "properties": {"host": {"type": "string"}, "accessToken": {"type": "string", "format": "password"}},
                      "required": ["accessToken"]}}
        ],
        "sourceSpec": {
            "attributes": {
                "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET", "queryParams": {"status": "{status}"}},
                "contentPath": {"path": "$.members"},
                "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": "100", "offSetName": "offset"},
                "scheduleParams": {"scheduleStartParamName": "since_last_changed", "scheduleEndParamName": "before_last_changed"}
            },
            "spec": {"type": "object", "properties": {"listId": {"type": "string", "minLength": 3}, "status": {"type": "string", "enum": ["subscribed", "pending"]}},
                     "required": ["listId"]}
        }
    })
}

fn bundle_json(patch: Value) -> Value {
    let mut bundle = json!({
        "name": "mailchimp-members",
        "connectionSpec": {"path": "../specs/mailchimp.json"},
        "baseConnection": {"auth": {"specName": "basic authentication",
                                    "params": {"username": "u", "password": "${env:MC_PASSWORD}", "host": "http://127.0.0.1:18080"}}},
        "sourceConnection": {"params": {"listId": "bench", "status": "subscribed"}},
        "targetConnection": {"params": {"dataSetId": "members"}, "data": {"schema": {"jsonSchema": {"type": "object"}}}},
        "mappingSet": {"path": "../mappings/members.json"},
        "flow": {"scheduleParams": {"startTime": 1764400000, "frequency": "hour", "interval": 1, "backfill": true},
                 "options": {"partialIngestionPercent": 5}}
    });
    for (key, value) in patch.as_object().unwrap() {
        if value.is_null() {
            bundle.as_object_mut().unwrap().remove(key);
        } else {
            bundle[key] = value.clone();
        }
    }
    bundle
}

/// Files the resolver can load, by the path as written in the bundle.
fn files() -> HashMap<&'static str, String> {
    HashMap::from([
        ("../specs/mailchimp.json", spec_json().to_string()),
        ("../mappings/members.json", json!({"mappings": [{"sourceType": "ATTRIBUTE", "source": "email_address", "destination": "email"}]}).to_string()),
        ("../specs/broken.json", "{\"name\": \"x\",\n  \"authSpec\": [".to_owned()),
        ("../specs/invalid.json", json!({"name": "x", "authSpec": [], "sourceSpec": {}}).to_string()),
    ])
}

fn env(name: &str) -> Option<String> {
    (name == "MC_PASSWORD").then(|| "pw-from-env".to_owned())
}

/// Validates `text` as `flows/bundle.json` and shows the kind and every line.
fn check_text(text: &str, expect: Expect) {
    let files = files();
    let resolve = |path: &str| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no such file: {path}"))
    };
    let report = validate_document_with_env("flows/bundle.json", text, resolve, &env);
    let mut shown = format!("kind={:?} valid={}\n", report.kind, report.is_valid());
    for line in report.lines() {
        shown.push_str(&line);
        shown.push('\n');
    }
    expect.assert_eq(&shown);
}

fn check_bundle(patch: Value, expect: Expect) {
    check_text(&bundle_json(patch).to_string(), expect);
}

#[test]
fn a_valid_bundle_with_referenced_spec_and_mapping_set() {
    check_bundle(
        json!({}),
        expect![[r#"
        kind=Some(FlowBundle) valid=true
    "#]],
    );
}

#[test]
fn unset_env_vars_are_warnings_at_validate_time() {
    check_bundle(
        json!({"baseConnection": {"auth": {"specName": "Basic Authentication", "params": {"username": "u", "password": "${env:UNSET_PASSWORD_VAR}", "host": "http://h.example"}}}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=true
            flows/bundle.json: /baseConnection/auth/params/password: warning: environment variable UNSET_PASSWORD_VAR is not set; a run fails unless it is set
        "#]],
    );
}

#[test]
fn an_unknown_auth_spec_name_lists_the_available_ones() {
    check_bundle(
        json!({"baseConnection": {"auth": {"specName": "API Key", "params": {"apiKey": "k"}}}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /baseConnection/auth/specName: auth spec "API Key" could not be found for connection spec "MailChimp Members source"; expected one of "Basic Authentication" (type BasicAuthentication), "OAuth2 Refresh Code" (type OAuth2RefreshCode)
        "#]],
    );
}

#[test]
fn auth_params_are_checked_against_the_matched_auth_spec_by_type() {
    check_bundle(
        json!({"baseConnection": {"auth": {"specName": "BASICAUTHENTICATION", "params": {"username": 7, "host": "not a url", "extra": "x"}}}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /baseConnection/auth/params/password: missing required property password: expected a string
            flows/bundle.json: /baseConnection/auth/params/username: expected a string, found the number 7
            flows/bundle.json: /baseConnection/auth/params/host: expected an absolute URI such as https://api.example.com, found a string
            flows/bundle.json: /baseConnection/auth/params/extra: warning: param extra is not declared in the authSpec's properties
        "#]],
    );
}

#[test]
fn source_params_that_break_the_source_spec_schema() {
    check_bundle(
        json!({"sourceConnection": {"params": {"listId": "ab", "status": "archived"}}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /sourceConnection/params/listId: expected a string of at least 3 characters, found 2
            flows/bundle.json: /sourceConnection/params/status: expected one of "subscribed", "pending", found the string "archived"
        "#]],
    );
    check_bundle(
        json!({"sourceConnection": null}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /sourceConnection/params/listId: missing required property listId: expected a string
            flows/bundle.json: /sourceConnection/params/listId: missing param listId: the connection spec's request uses it in "/3.0/lists/${listId}/members"; give it in sourceConnection.params or baseConnection.auth.params
            flows/bundle.json: /sourceConnection/params/status: missing param status: the connection spec's request uses it in "{status}"; give it in sourceConnection.params or baseConnection.auth.params
        "#]],
    );
}

#[test]
fn a_missing_host_is_reported_where_it_must_be_given() {
    check_bundle(
        json!({"baseConnection": {"auth": {"specName": "OAuth2 Refresh Code", "params": {"accessToken": "t"}}}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /baseConnection/auth/params/host: missing auth param host: the connection spec has no urlParams.host, so the base URL must come from the auth params
        "#]],
    );
}

#[test]
fn referenced_files_report_their_own_problems_with_their_own_label() {
    check_bundle(
        json!({"connectionSpec": {"path": "../specs/broken.json"}, "mappingSet": {"path": "../mappings/missing.json"}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            specs/broken.json: (root): invalid JSON at line 2 column 15: EOF while parsing a list
            flows/bundle.json: /connectionSpec/path: specs/broken.json is not valid JSON
            flows/bundle.json: /mappingSet/path: cannot load mappings/missing.json: no such file: ../mappings/missing.json
        "#]],
    );
    check_bundle(
        json!({"connectionSpec": {"path": "../specs/invalid.json"}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            specs/invalid.json: /authSpec: expected at least one auth spec in authSpec, found an empty array
            specs/invalid.json: /sourceSpec/attributes: missing required field attributes: expected the request definition (an object with urlParams, contentPath, paginationParams), or a sourceSpec.spec that declares urlParams (a generic REST template), found nothing
            flows/bundle.json: /connectionSpec/path: specs/invalid.json has errors (reported above)
        "#]],
    );
}

#[test]
fn inline_specs_and_id_references() {
    check_bundle(
        json!({"connectionSpec": spec_json(), "mappingSet": {"mappings": []}}),
        expect![[r#"
        kind=Some(FlowBundle) valid=true
    "#]],
    );
    check_bundle(
        json!({"connectionSpec": {"id": "2e8580db-6489-4726-96de-e33f5f60295f"}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=true
            flows/bundle.json: /connectionSpec/id: warning: connection spec 2e8580db-6489-4726-96de-e33f5f60295f is not checked here: registered documents are looked up by the daemon, not by spec validate
        "#]],
    );
    check_bundle(
        json!({"connectionSpec": {"file": "x.json"}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /connectionSpec: expected the connection spec: inline (with authSpec, sourceSpec), {"path": ...} or {"id": ...}, found an object with keys file
        "#]],
    );
}

#[test]
fn a_bundle_with_many_problems_reports_all_of_them() {
    check_bundle(
        json!({"name": 5, "targetConnection": {"params": {}}, "baseConnection": null,
               "flow": {"scheduleParams": {"startTime": 1, "frequency": "minute", "interval": 5}, "options": {"partialIngestionPercent": 150}}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /name: expected the flow name (a string), found the number 5
            flows/bundle.json: /baseConnection: missing required field baseConnection: expected the base connection {auth: {specName, params}}, found nothing
            flows/bundle.json: /targetConnection/params/dataSetId: missing required field dataSetId: expected the dataset id (a string), found nothing
            flows/bundle.json: /flow/scheduleParams/interval: expected an integer >= 15 for frequency minute, found 5
            flows/bundle.json: /flow/options/partialIngestionPercent: expected partialIngestionPercent as a number > 0 and <= 100, found 150
        "#]],
    );
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    check_text(
        "{\n  \"name\": \"x\",\n  \"authSpec\": [,]\n}",
        expect![[r#"
        kind=None valid=false
        flows/bundle.json: (root): invalid JSON at line 3 column 16: expected value
    "#]],
    );
    check_text(
        "",
        expect![[r#"
        kind=None valid=false
        flows/bundle.json: (root): invalid JSON at line 1 column 0: EOF while parsing a value
    "#]],
    );
    let err = parse_document("a.json", "{\"a\": tru}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "a.json: invalid JSON at line 1 column 10: expected ident"
    );
}

#[test]
fn unknown_documents_say_what_was_expected_and_found() {
    check_text(
        "[1, 2]",
        expect![[r#"
        kind=None valid=false
        flows/bundle.json: (root): cannot tell what kind of document this is: expected a connection spec (authSpec, sourceSpec), a flow spec (sourceConnectionSpecIds), a flow (flowSpec), a mapping set (mappings), a connection (auth or params), a JSON schema ($schema) or a flow bundle (connectionSpec, baseConnection, targetConnection); found an array of 2 elements
    "#]],
    );
    check_text(
        "{\"hello\": 1}",
        expect![[r#"
        kind=None valid=false
        flows/bundle.json: (root): cannot tell what kind of document this is: expected a connection spec (authSpec, sourceSpec), a flow spec (sourceConnectionSpecIds), a flow (flowSpec), a mapping set (mappings), a connection (auth or params), a JSON schema ($schema) or a flow bundle (connectionSpec, baseConnection, targetConnection); found an object with keys hello
    "#]],
    );
}

#[test]
fn detect_kind_of_each_document() {
    let cases = [
        (spec_json(), Some(DocumentKind::ConnectionSpec)),
        (bundle_json(json!({})), Some(DocumentKind::FlowBundle)),
        (
            json!({"name": "RestStorageToAEP", "sourceConnectionSpecIds": []}),
            Some(DocumentKind::FlowSpec),
        ),
        (
            json!({"name": "f", "flowSpec": {"id": "x"}}),
            Some(DocumentKind::Flow),
        ),
        (json!({"mappings": []}), Some(DocumentKind::MappingSet)),
        (
            json!({"auth": {"specName": "x"}}),
            Some(DocumentKind::BaseConnection),
        ),
        (
            json!({"baseConnectionId": "b", "params": {"listId": "x"}}),
            Some(DocumentKind::SourceConnection),
        ),
        (
            json!({"params": {"dataSetId": "d"}}),
            Some(DocumentKind::TargetConnection),
        ),
        (
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}),
            Some(DocumentKind::JsonSchema),
        ),
        (json!({"x": 1}), None),
        (json!("text"), None),
    ];
    for (value, kind) in cases {
        assert_eq!(detect_kind(&value), kind, "{value}");
    }
}

#[test]
fn standalone_connections_and_schemas_validate() {
    check_text(
        &json!({"auth": {"specName": "Basic Authentication"}}).to_string(),
        expect![[r#"
        kind=Some(BaseConnection) valid=false
        flows/bundle.json: /auth/params: missing required field params: expected the auth params (an object), found nothing
    "#]],
    );
    check_text(
        &json!({"name": "t", "params": {"dataSetId": 5}}).to_string(),
        expect![[r#"
        kind=Some(TargetConnection) valid=false
        flows/bundle.json: /params/dataSetId: expected the dataset id (a string), found the number 5
    "#]],
    );
    check_text(&json!({"$schema": "x", "type": "object", "properties": {"a": {"type": "text"}}, "required": "a"}).to_string(), expect![[r#"
        kind=Some(JsonSchema) valid=false
        flows/bundle.json: /properties/a/type: expected a JSON-schema type (string, number, integer, boolean, object, array, null), found the string "text"
        flows/bundle.json: /required: expected the required properties (an array of strings), found the string "a"
    "#]]);
}

/// A concrete spec (shape a) whose params schema sits in `sourceSpec.attributes.spec` checks the
/// source params against it as it would `sourceSpec.spec` (it used to be skipped).
#[test]
fn a_params_schema_in_source_spec_attributes_spec_is_checked() {
    let mut spec = spec_json();
    let schema = spec["sourceSpec"]
        .as_object_mut()
        .unwrap()
        .remove("spec")
        .unwrap();
    spec["sourceSpec"]["attributes"]["spec"] = schema;
    check_bundle(
        json!({"connectionSpec": spec, "sourceConnection": {"params": {"listId": "ab", "status": "gone"}}}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /sourceConnection/params/listId: expected a string of at least 3 characters, found 2
            flows/bundle.json: /sourceConnection/params/status: expected one of "subscribed", "pending", found the string "gone"
        "#]],
    );
}

/// `data.format`: Adobe's documented values mean Parquet batches here, `delta` a Delta table,
/// anything else is an error (it used to be dropped without a word).
#[test]
fn target_data_formats_are_read_and_checked() {
    let mut shown = String::new();
    for format in [
        json!("parquet_xdm"),
        json!("JSON"),
        json!("delimited"),
        json!("tabular"),
        json!("parquet"),
        json!("delta"),
        json!("csv"),
        json!(3),
    ] {
        let target = json!({"params": {"dataSetId": "d"}, "data": {"format": format}});
        let line = match target_connection_from_value("t.json", &target) {
            Ok(target) => format!("{format}: {:?}\n", target.format),
            Err(err) => format!("{format}: {err}\n"),
        };
        shown.push_str(&line);
    }
    let absent =
        target_connection_from_value("t.json", &json!({"params": {"dataSetId": "d"}})).unwrap();
    shown.push_str(&format!("absent: {:?}\n", absent.format));
    expect![[r#"
        "parquet_xdm": Parquet
        "JSON": Parquet
        "delimited": Parquet
        "tabular": Parquet
        "parquet": Parquet
        "delta": Delta
        "csv": t.json: /data/format: unknown data format "csv"; expected one of parquet_xdm, parquet, json, delimited, tabular (Parquet batches) or delta (a Delta Lake table)
        3: t.json: /data/format: expected the data format (a string), found the number 3
        absent: Parquet
    "#]]
    .assert_eq(&shown);
}

/// The mapping set's output schema must be the dataset's schema (Flow Service 1425).
#[test]
fn a_mapping_set_must_map_into_the_datasets_schema() {
    let mapping = |schema: &str| json!({"xdmSchema": schema, "mappings": [{"sourceAttribute": "id", "destinationXdmPath": "id"}]});
    let target = |schema: &str| json!({"params": {"dataSetId": "members"}, "data": {"schema": {"id": schema}}});
    let members = "https://ns.adobe.com/tenant/schemas/members";
    check_bundle(
        json!({"mappingSet": mapping(members), "targetConnection": target(members)}),
        expect![[r#"
            kind=Some(FlowBundle) valid=true
        "#]],
    );
    check_bundle(
        json!({"mappingSet": mapping("https://ns.adobe.com/tenant/schemas/leads"), "targetConnection": target(members)}),
        expect![[r#"
            kind=Some(FlowBundle) valid=false
            flows/bundle.json: /targetConnection/data/schema/id: the dataset's schema "https://ns.adobe.com/tenant/schemas/members" is not the mapping set's output schema "https://ns.adobe.com/tenant/schemas/leads": a mapping set maps into the dataset's schema, so both must name the same schema (Flow Service error 1425)
        "#]],
    );
    // A meta:altId cannot be compared with a $id here.
    check_bundle(
        json!({"mappingSet": mapping("_tenant.schemas.members"), "targetConnection": target(members)}),
        expect![[r#"
            kind=Some(FlowBundle) valid=true
        "#]],
    );
}

fn load(bundle: &Value) -> Result<FlowBundle, SpecError> {
    let files = files();
    load_bundle(
        "flows/bundle.json",
        &bundle.to_string(),
        |kind, reference| match reference {
            SpecRef::Path(path) => files
                .get(path.as_str())
                .cloned()
                .ok_or_else(|| format!("no such file: {path}")),
            SpecRef::Id(id) if kind == DocumentKind::ConnectionSpec && id == "registered" => {
                Ok(spec_json().to_string())
            }
            other => Err(format!("cannot resolve {other:?}")),
        },
    )
}

#[test]
fn load_bundle_gives_the_typed_flow_with_everything_resolved() {
    let bundle = load(&bundle_json(json!({}))).unwrap();
    assert_eq!(
        bundle.connection_spec_ref,
        SpecRef::Path("../specs/mailchimp.json".to_owned())
    );
    assert_eq!(bundle.auth_spec.name, "Basic Authentication");
    assert_eq!(bundle.target.dataset_id, "members");
    assert_eq!(bundle.target.schema, Some(json!({"type": "object"})));
    assert_eq!(
        bundle.mapping.as_ref().map(|set| set.mappings.len()),
        Some(1)
    );
    assert_eq!(
        bundle.schedule.as_ref().map(|schedule| schedule.interval),
        Some(1)
    );
    assert_eq!(bundle.options.partial_ingestion_percent, Some(5.0));
    // The auth params still hold the env reference; it is resolved when a run needs it.
    let resolved = bundle.base.resolved_params(&env).unwrap();
    assert_eq!(resolved["password"], json!("pw-from-env"));
    let missing = bundle.base.resolved_params(&|_: &str| None).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "environment variable MC_PASSWORD is not set (referenced as ${env:MC_PASSWORD})"
    );

    let by_id = load(&bundle_json(
        json!({"connectionSpec": {"id": "registered"}}),
    ))
    .unwrap();
    assert_eq!(by_id.connection_spec.name, "MailChimp Members source");
    let unresolved = load(&bundle_json(json!({"connectionSpec": {"id": "unknown"}}))).unwrap_err();
    expect![[r#"flows/bundle.json: /connectionSpec/id: cannot load connection spec unknown: cannot resolve Id("unknown")"#]]
        .assert_eq(&unresolved.to_string());
}

#[test]
fn debug_of_a_bundle_never_prints_secret_values() {
    let bundle = load(&bundle_json(json!({"baseConnection": {"auth": {"specName": "Basic Authentication",
        "params": {"username": "visible-user", "password": "hunter2-secret", "host": "http://h.example",
                   "requestParameterOverride": {"clientSecret": "nested-secret"}, "myApiToken": "tok-secret"}}}})))
    .unwrap();
    let debug = format!("{bundle:?}");
    for secret in ["hunter2-secret", "nested-secret", "tok-secret"] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
    assert!(
        debug.contains("visible-user"),
        "non-secret params stay visible: {debug}"
    );
}

#[test]
fn typed_loaders_return_every_diagnostic_in_the_error() {
    let err = parse_connection_spec("s.json", &json!({"authSpec": "x"}).to_string()).unwrap_err();
    expect![[r#"s.json: /name: missing required field name: expected the spec name (a string), found nothing (and 2 more errors)"#]]
        .assert_eq(&err.to_string());
    let SpecError::Invalid { diagnostics, .. } = err else {
        panic!("expected Invalid, got {err:?}")
    };
    assert_eq!(diagnostics.errors().count(), 3);
    assert!(!err_is_retryable(&diagnostics));
}

fn err_is_retryable(diagnostics: &Diagnostics) -> bool {
    SpecError::Invalid {
        file: String::new(),
        diagnostics: diagnostics.clone(),
    }
    .is_retryable()
}

#[test]
fn connections_checked_against_a_spec() {
    let spec = connection_spec_from_value("s.json", &spec_json()).unwrap();
    let (base, auth_spec) = base_connection_for_spec(
        "b.json",
        &json!({"auth": {"specName": "oAuth2RefreshCode", "params": {"accessToken": "t0k", "host": "https://x"}}}),
        &spec,
    )
    .unwrap();
    assert_eq!(auth_spec.name, "OAuth2 Refresh Code");
    assert!(
        base.secret_fields
            .iter()
            .any(|field| field == "accessToken")
    );
    let err = source_connection_for_spec("s.json", &json!({"params": {"listId": 12}}), &spec)
        .unwrap_err();
    expect![[r#"s.json: /params/listId: expected a string, found the number 12"#]]
        .assert_eq(&err.to_string());
}

/// Truncations of every valid document at every byte, and garbage.
#[test]
fn truncated_documents_never_panic() {
    let documents = [
        bundle_json(json!({})).to_string(),
        spec_json().to_string(),
        files()["../mappings/members.json"].clone(),
    ];
    let files = files();
    for document in &documents {
        for cut in 0..document.len() {
            if !document.is_char_boundary(cut) {
                continue;
            }
            let report = validate_document_with_env(
                "t.json",
                &document[..cut],
                |path| files.get(path).cloned().ok_or_default(),
                &env,
            );
            assert!(
                !report.is_valid(),
                "a truncated document at {cut} cannot be valid"
            );
        }
    }
}

trait OkOrDefault {
    fn ok_or_default(self) -> Result<String, String>;
}

impl OkOrDefault for Option<String> {
    fn ok_or_default(self) -> Result<String, String> {
        self.ok_or_else(|| "not found".to_owned())
    }
}

/// Arbitrary JSON values in the places of a bundle's fields.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("${env:X}"),
            Just("{START_TIME}"),
            Just("@{x}"),
            Just("Const:false"),
            Just("headers.x"),
            Just("$.a")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("path".to_owned()),
                        Just("params".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let report = validate_document_with_env("p.json", &text, |_| Err("no files".to_owned()), &env);
        prop_assert!(report.kind.is_some() || !report.is_valid());
    }

    #[test]
    fn arbitrary_values_in_every_field_never_panic(
        field in prop::sample::select(vec!["name", "connectionSpec", "baseConnection", "sourceConnection", "targetConnection", "mappingSet", "flow"]),
        value in arbitrary_json(),
        spec_field in prop::sample::select(vec!["urlParams", "contentPath", "paginationParams", "scheduleParams", "headerParams", "bodyParams", "explodeEntityPath"]),
        spec_value in arbitrary_json(),
    ) {
        let files = files();
        let bundle = bundle_json(json!({field: value})).to_string();
        let report = validate_document_with_env("p.json", &bundle, |path| files.get(path).cloned().ok_or_default(), &env);
        prop_assert_eq!(report.kind, Some(DocumentKind::FlowBundle));
        let mut spec = spec_json();
        spec["sourceSpec"]["attributes"][spec_field] = spec_value;
        let report = validate_document_with_env("s.json", &spec.to_string(), |_| Err("no files".to_owned()), &env);
        prop_assert_eq!(report.kind, Some(DocumentKind::ConnectionSpec));
    }
}

/// The flow on Adobe's generic REST template in configs/, loaded with the template it references.
fn generic_rest_flow() -> Value {
    serde_json::from_str(include_str!(
        "../../../../configs/flows/generic-rest-members.json"
    ))
    .unwrap()
}

fn generic_rest_template_text() -> &'static str {
    include_str!("../../../../configs/specs/generic-rest.json")
}

/// Loads a bundle on the generic REST template (referenced as `../specs/generic-rest.json`).
fn load_generic(bundle: &Value) -> Result<FlowBundle, SpecError> {
    load_bundle(
        "flows/generic.json",
        &bundle.to_string(),
        |_, reference| match reference {
            SpecRef::Path(path) if path == "../specs/generic-rest.json" => {
                Ok(generic_rest_template_text().to_owned())
            }
            other => Err(format!("cannot resolve {other:?}")),
        },
    )
}

/// The generic REST flow with `params` patched into its source connection's params (a `null`
/// value removes the key), validated; shows every line.
fn check_generic_params(params: Value, expect: Expect) {
    let mut bundle = generic_rest_flow();
    let source_params = bundle["sourceConnection"]["params"]
        .as_object_mut()
        .unwrap();
    for (key, value) in params.as_object().unwrap() {
        if value.is_null() {
            source_params.remove(key);
        } else {
            source_params.insert(key.clone(), value.clone());
        }
    }
    let report = validate_document_with_env(
        "flows/generic.json",
        &bundle.to_string(),
        |path| match path {
            "../specs/generic-rest.json" => Ok(generic_rest_template_text().to_owned()),
            other => Err(format!("no such file: {other}")),
        },
        &env,
    );
    let mut shown = format!("valid={}\n", report.is_valid());
    for line in report.lines() {
        shown.push_str(&line);
        shown.push('\n');
    }
    expect.assert_eq(&shown);
}

#[test]
fn a_flow_on_the_generic_rest_template_takes_its_request_from_the_source_params() {
    let loaded = load_generic(&generic_rest_flow()).unwrap();
    let source = &loaded.connection_spec.source;
    expect![[r#"
        path Template("/3.0/lists/10c097ca71/members") method Get headers [("Accept", Template("application/json"))]
        content ContentPath { path: JsonPath("$.members"), keep: [], skip: ["_links", "total_items", "list_id"], wrapper: None }
        pagination Offset { limit_name: "count", limit: 1000, offset_name: "offset", end_condition: None, common: PagingCommon { maximum_requests: 10000, delay: None } }
        schedule since_last_changed before_last_changed
        params schema required [String("urlParams"), String("contentPath"), String("paginationParams"), String("scheduleParams")]
        spec "generic-rest-extension", auth "Basic Authentication"
    "#]]
    .assert_eq(&format!(
        "path {:?} method {:?} headers {:?}\ncontent {:?}\npagination {:?}\nschedule {}\nparams schema required {:?}\nspec {:?}, auth {:?}\n",
        source.request.path,
        source.request.method,
        source.request.headers,
        source.content,
        source.pagination,
        match &source.schedule {
            Some(crate::model::ScheduleParams::Simple { start_param, end_param, .. }) => format!("{start_param} {end_param}"),
            other => format!("{other:?}"),
        },
        source.params_schema.as_ref().and_then(|schema| schema["required"].as_array()).unwrap(),
        loaded.connection_spec.name,
        loaded.auth_spec.name,
    ));
    // The same template with its schema under sourceSpec.attributes.spec gives the same flow.
    let mut moved: Value = serde_json::from_str(generic_rest_template_text()).unwrap();
    let schema = moved["sourceSpec"]
        .as_object_mut()
        .unwrap()
        .remove("spec")
        .unwrap();
    moved["sourceSpec"]["attributes"]["spec"] = schema;
    let mut inline = generic_rest_flow();
    inline["connectionSpec"] = moved;
    let from_inline = load_generic(&inline).unwrap();
    assert_eq!(from_inline.connection_spec.source.request, source.request);
    assert_eq!(
        from_inline.connection_spec.source.pagination,
        source.pagination
    );
    assert_eq!(from_inline.connection_spec.source.schedule, source.schedule);
}

#[test]
fn problems_of_a_generic_rest_flow_point_into_its_source_params() {
    check_generic_params(
        json!({}),
        expect![[r#"
            valid=true
            specs/generic-rest.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
        "#]],
    );
    // Read with the same rules as sourceSpec.attributes; a schema complaint about a value the
    // reader already refused is not repeated.
    check_generic_params(
        json!({"paginationParams": {"type": "SCROLL", "limitName": "count", "limitValue": 100}}),
        expect![[r#"
            valid=false
            specs/generic-rest.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
            flows/generic.json: /sourceConnection/params/paginationParams/type: unknown pagination type "SCROLL"; expected one of OFFSET, POINTER, CONTINUATION_TOKEN, PAGE, NONE, LINK
        "#]],
    );
    // The template's schema is checked too: it wants an integer page size and scheduleParams.
    check_generic_params(
        json!({"paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": "100", "offSetName": "offset"},
               "scheduleParams": null, "urlParams": {"path": "/x/${listId}", "method": "GET"}}),
        expect![[r#"
            valid=false
            specs/generic-rest.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
            flows/generic.json: /sourceConnection/params/urlParams/path: warning: placeholder listId is not declared in sourceSpec.spec or any authSpec's properties; a run fails unless the source connection or the base connection gives it
            flows/generic.json: /sourceConnection/params/scheduleParams: missing required property scheduleParams: expected an object
            flows/generic.json: /sourceConnection/params/paginationParams/limitValue: expected an integer, found the string "100"
            flows/generic.json: /sourceConnection/params/listId: missing param listId: the connection spec's request uses it in "/x/${listId}"; give it in sourceConnection.params or baseConnection.auth.params
            flows/generic.json: /flow/scheduleParams: warning: the flow is scheduled but the connection spec has no scheduleParams: every run fetches everything
        "#]],
    );
    // Every part of the request at once.
    check_generic_params(
        json!({"urlParams": {"method": "DELETE"}, "contentPath": {"path": "members"}, "paginationParams": null,
               "scheduleParams": {"type": "ADVANCE"}, "schema": "records"}),
        expect![[r#"
            valid=false
            specs/generic-rest.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
            flows/generic.json: /sourceConnection/params/schema: expected the custom record schema (an object), found the string "records"
            flows/generic.json: /sourceConnection/params/urlParams/path: missing required field path: expected the resource path (a string), found nothing
            flows/generic.json: /sourceConnection/params/urlParams/method: expected the HTTP method GET or POST, found "DELETE"
            flows/generic.json: /sourceConnection/params/paginationParams: warning: no paginationParams: every run makes a single request (type NONE)
            flows/generic.json: /sourceConnection/params/scheduleParams/paramFormat: missing required field paramFormat: expected a date pattern such as "yyyy-MM-dd'T'HH:mm:ssZ", found nothing
            flows/generic.json: /sourceConnection/params/scheduleParams/incremental: missing required field incremental: expected the incremental query expression (a string), found nothing
            flows/generic.json: /sourceConnection/params/scheduleParams/backfill: missing required field backfill: expected the backfill query expression (a string), found nothing
            flows/generic.json: /sourceConnection/params/paginationParams: missing required property paginationParams: expected an object
            flows/generic.json: /sourceConnection/params/scheduleParams/scheduleStartParamName: missing required property scheduleStartParamName: expected a string
            flows/generic.json: /sourceConnection/params/scheduleParams/scheduleEndParamName: missing required property scheduleEndParamName: expected a string
        "#]],
    );
    check_generic_params(
        json!({"urlParams": null, "contentPath": null}),
        expect![[r#"
            valid=false
            specs/generic-rest.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
            flows/generic.json: /sourceConnection/params/urlParams: missing required field urlParams: expected the request URL parts (an object with path and method), found nothing
            flows/generic.json: /sourceConnection/params/contentPath: missing required field contentPath: expected the JSONPath of the records (a string such as "$.items" or an object with path), found nothing
        "#]],
    );
}

#[test]
fn a_generic_rest_flow_without_source_params() {
    let mut bundle = generic_rest_flow();
    bundle.as_object_mut().unwrap().remove("sourceConnection");
    let err = load_generic(&bundle).unwrap_err();
    expect!["flows/generic.json: /sourceConnection/params/urlParams: missing required field urlParams: expected the request URL parts (an object with path and method), found nothing (and 3 more errors)"]
    .assert_eq(&err.to_string());
    bundle["sourceConnection"] = json!({"params": ["urlParams"]});
    let err = load_generic(&bundle).unwrap_err();
    expect!["flows/generic.json: /sourceConnection/params: expected params (an object), found an array of 1 elements"]
    .assert_eq(&err.to_string());
}

#[test]
fn misplaced_credentials_are_never_echoed() {
    check_text(
        &json!({"auth": {"specName": "Basic Authentication", "params": "user:hunter2"}})
            .to_string(),
        expect![[r#"
        kind=Some(BaseConnection) valid=false
        flows/bundle.json: /auth/params: expected params (an object), found a string
    "#]],
    );
    let source = source_connection_from_value(
        "s.json",
        &json!({"params": {"listId": "L1", "api_key": "k-secret"}}),
    )
    .unwrap();
    let debug = format!("{source:?}");
    assert!(
        debug.contains("L1") && !debug.contains("k-secret"),
        "{debug}"
    );
}

/// The broken fixtures of tests/data/spec/broken (also used by `tributary spec validate`
/// tests): every one is invalid, with one line per problem.
#[test]
fn broken_fixture_files_report_every_problem() {
    let fixtures = [
        (
            "truncated.json",
            include_str!("../../../../tests/data/spec/broken/truncated.json"),
        ),
        (
            "unknown-pagination.json",
            include_str!("../../../../tests/data/spec/broken/unknown-pagination.json"),
        ),
        (
            "many-problems.json",
            include_str!("../../../../tests/data/spec/broken/many-problems.json"),
        ),
        (
            "minute-interval.json",
            include_str!("../../../../tests/data/spec/broken/minute-interval.json"),
        ),
        (
            "unknown-auth-spec.json",
            include_str!("../../../../tests/data/spec/broken/unknown-auth-spec.json"),
        ),
        (
            "bad-source-params.json",
            include_str!("../../../../tests/data/spec/broken/bad-source-params.json"),
        ),
        (
            "mapping-wrong-types.json",
            include_str!("../../../../tests/data/spec/broken/mapping-wrong-types.json"),
        ),
    ];
    let mut shown = String::new();
    for (name, text) in fixtures {
        let report = validate_document_with_env(
            name,
            text,
            |path| Err(format!("no files here: {path}")),
            &env,
        );
        assert!(!report.is_valid(), "{name} must be invalid");
        for line in report.lines() {
            shown.push_str(&line);
            shown.push('\n');
        }
    }
    expect![[r#"
        truncated.json: (root): invalid JSON at line 5 column 0: EOF while parsing a value
        unknown-pagination.json: /sourceSpec/attributes/paginationParams/type: unknown pagination type "CURSOR"; expected one of OFFSET, POINTER, CONTINUATION_TOKEN, PAGE, NONE, LINK
        many-problems.json: /name: missing required field name: expected the spec name (a string), found nothing
        many-problems.json: /authSpec/0/spec/properties: expected at least one API key property (authKey1, ... or a property with restAttributes.headerParamName) for auth type KeyBased, found none
        many-problems.json: /authSpec/1/type: unknown auth type "Bearer"; expected one of BasicAuthentication, OAuth2RefreshCode, KeyBased
        many-problems.json: /sourceSpec/attributes/urlParams/method: expected the HTTP method GET or POST, found "DELETE"
        many-problems.json: /sourceSpec/attributes/urlParams/queryParams: expected queryParams as name=value pairs separated by commas, found "broken" without '='
        many-problems.json: /sourceSpec/attributes/contentPath/path: missing required field path: expected the JSONPath of contentPath (a string), found nothing
        many-problems.json: /sourceSpec/attributes/paginationParams/limitValue: expected limitValue (the page size) as an integer >= 1 and <= 4294967295, found 0
        many-problems.json: /sourceSpec/attributes/paginationParams/offSetName: missing required field offSetName (or offsetName): expected the name of the offset parameter (a string), found nothing
        many-problems.json: /sourceSpec/attributes/scheduleParams/paramFormat: unknown date pattern letter "Q" in "yyyy-MM-ddTHH:mm:ssQ"; known: y M d H h m s S f F a tt E Z X x z K D T, quote literal text with '...'
        many-problems.json: /sourceSpec/attributes/scheduleParams/backfill: missing required field backfill: expected the backfill query expression (a string), found nothing
        minute-interval.json: /flow/scheduleParams/interval: expected an integer >= 15 for frequency minute, found 5
        unknown-auth-spec.json: /baseConnection/auth/specName: auth spec "API Key Authentication" could not be found for connection spec "Inline source"; expected one of "Basic Authentication" (type BasicAuthentication), "OAuth2 Refresh Code" (type OAuth2RefreshCode)
        bad-source-params.json: /sourceConnection/params/region: missing required property region: expected a string
        bad-source-params.json: /sourceConnection/params/listId: expected a string matching /^[0-9a-f]{10}$/, found the string "not-hex"
        bad-source-params.json: /sourceConnection/params/limit: expected an integer, found the string "many"
        mapping-wrong-types.json: /strictMapping: expected strictMapping (true or false), found the string "yes"
        mapping-wrong-types.json: /mappings/1/sourceType: unknown sourceType "FORMULA"; expected one of ATTRIBUTE, EXPRESSION, STATIC (or text/x.schema-path, text/x.aep-xl, text/plain)
        mapping-wrong-types.json: /mappings/2/sourceAttribute: expected the source (a string), found the number 12
        mapping-wrong-types.json: /mappings/2/destinationXdmPath: destination "personalEmail.address" is already mapped by /mappings/0; each destination takes one mapping
    "#]].assert_eq(&shown);
}
