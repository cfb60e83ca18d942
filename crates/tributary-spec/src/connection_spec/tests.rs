//! Connection specs: every pagination type with each alias, both contentPath shapes, query and
//! header params as objects or legacy strings, both schedule forms, auth types, Adobe's generic
//! REST template (shape b) with its schema in either place, and documents with many problems
//! reported at once.

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::{ConnectionSpecOutcome, read_connection_spec};
use crate::document::{connection_spec_from_value, validate_value};
use crate::raw::{Ctx, Node};
use crate::{DocumentKind, SpecError};

/// A valid Mailchimp-like spec; `patch` entries replace keys of `sourceSpec.attributes`
/// (a `null` value removes the key).
fn spec_with(patch: Value) -> Value {
    let mut spec = json!({
        "name": "MailChimp Members source",
        "type": "generic-rest",
        "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a",
        "version": "1.0",
        "authSpec": [{
            "name": "Basic Authentication",
            "type": "BasicAuthentication",
            "spec": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                     "properties": {"host": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
                     "required": ["username", "password"]}
        }],
        "sourceSpec": {
            "attributes": {
                "urlParams": {"host": "https://${domain}.api.mailchimp.com", "path": "/3.0/lists/${listId}/members", "method": "GET"},
                "contentPath": {"path": "$.members", "skipAttributes": ["_links"], "overrideWrapperAttribute": "member"},
                "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": "100", "offSetName": "offset"}
            },
            "spec": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                     "properties": {"listId": {"type": "string"}, "domain": {"type": "string"}}, "required": ["listId"]}
        }
    });
    let attributes = spec
        .pointer_mut("/sourceSpec/attributes")
        .and_then(Value::as_object_mut)
        .unwrap();
    for (key, value) in patch.as_object().unwrap() {
        if value.is_null() {
            attributes.remove(key);
        } else {
            attributes.insert(key.clone(), value.clone());
        }
    }
    spec
}

/// Validates `spec` and shows `select` of the typed spec, or every diagnostic.
fn check_spec(spec: Value, select: impl Fn(&crate::ConnectionSpec) -> String, expect: Expect) {
    let shown = match connection_spec_from_value("spec.json", &spec) {
        Ok(spec) => {
            let warnings =
                validate_value("spec.json", DocumentKind::ConnectionSpec, &spec.raw).to_string();
            format!("{}{warnings}", select(&spec))
        }
        Err(SpecError::Invalid { diagnostics, .. }) => diagnostics.to_string(),
        Err(other) => format!("unexpected error {other}"),
    };
    expect.assert_eq(&shown);
}

/// Validates a spec whose `paginationParams` is `pagination` and shows the typed pagination.
fn check_pagination(pagination: Value, expect: Expect) {
    check_spec(
        spec_with(json!({"paginationParams": pagination})),
        |spec| format!("{:?}\n", spec.source.pagination),
        expect,
    );
}

#[test]
fn offset_with_off_set_name_and_string_limit() {
    check_pagination(
        json!({"type": "OFFSET", "limitName": "count", "limitValue": "100", "offSetName": "offset"}),
        expect![[r#"
            Offset { limit_name: "count", limit: 100, offset_name: "offset", end_condition: None, common: PagingCommon { maximum_requests: 10000, delay: None } }
        "#]],
    );
}

#[test]
fn offset_with_offset_name_number_limit_end_condition_and_common_settings() {
    check_pagination(
        json!({"type": "offset", "limitName": "limit", "limitValue": 50, "offsetName": "start",
               "endConditionName": "$.hasMore", "endConditionValue": "Const:false", "maximumRequest": "20", "delayRequestMillis": 250}),
        expect![[r#"
            Offset { limit_name: "limit", limit: 50, offset_name: "start", end_condition: Some(EndCondition { path: JsonPath("$.hasMore"), value: Bool(false) }), common: PagingCommon { maximum_requests: 20, delay: Some(250ms) } }
        "#]],
    );
}

#[test]
fn offset_end_condition_literals_are_typed() {
    let literals: Vec<String> = ["Const:0", "Const:done", "Const:null", "const:true"]
        .iter()
        .map(|literal| {
            let spec = spec_with(json!({"paginationParams": {"type": "OFFSET", "limitName": "n", "limitValue": 1, "offsetName": "o",
                                                              "endConditionName": "status", "endConditionValue": literal}}));
            match connection_spec_from_value("spec.json", &spec).unwrap().source.pagination {
                crate::Pagination::Offset { end_condition: Some(condition), .. } => format!("{} {:?}", condition.path, condition.value),
                other => format!("unexpected {other:?}"),
            }
        })
        .collect();
    assert_eq!(
        literals,
        [
            "$.status Number(0)",
            "$.status String(\"done\")",
            "$.status Null",
            "$.status Bool(true)"
        ]
    );
}

#[test]
fn offset_problems_are_all_reported() {
    check_pagination(
        json!({"type": "OFFSET", "limitValue": 0, "endConditionName": "$.hasMore"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/limitValue: expected limitValue (the page size) as an integer >= 1 and <= 4294967295, found 0
            spec.json: /sourceSpec/attributes/paginationParams/limitName: missing limitName: limitValue is given, so the name of the page-size parameter is needed
            spec.json: /sourceSpec/attributes/paginationParams/offSetName: missing required field offSetName (or offsetName): expected the name of the offset parameter (a string), found nothing
            spec.json: /sourceSpec/attributes/paginationParams/endConditionValue: missing endConditionValue: endConditionName is given, so the value that ends paging (e.g. "Const:false") is needed
        "#]],
    );
    check_pagination(
        json!({"type": "OFFSET", "limitName": "count", "limitValue": "lots", "maximumRequest": 0}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/maximumRequest: expected maximumRequest (an integer >= 1 and <= 4294967295), found 0
            spec.json: /sourceSpec/attributes/paginationParams/limitValue: expected limitValue (the page size) (a non-negative integer, as a number or a numeric string), found the string "lots"
            spec.json: /sourceSpec/attributes/paginationParams/offSetName: missing required field offSetName (or offsetName): expected the name of the offset parameter (a string), found nothing
        "#]],
    );
    check_pagination(
        json!({"type": "OFFSET", "limitName": "count", "limitValue": 10, "endConditionValue": "Const:false"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/offSetName: missing required field offSetName (or offsetName): expected the name of the offset parameter (a string), found nothing
            spec.json: /sourceSpec/attributes/paginationParams/endConditionName: missing endConditionName: endConditionValue is given, so the JSONPath to compare (e.g. "$.hasMore") is needed
        "#]],
    );
}

#[test]
fn both_offset_aliases_warn_and_the_first_wins() {
    check_pagination(
        json!({"type": "OFFSET", "limitName": "count", "limitValue": 10, "offSetName": "a", "offsetName": "b"}),
        expect![[r#"
            Offset { limit_name: "count", limit: 10, offset_name: "a", end_condition: None, common: PagingCommon { maximum_requests: 10000, delay: None } }
            spec.json: /sourceSpec/attributes/paginationParams/offsetName: warning: both offSetName and offsetName are given; using offSetName
        "#]],
    );
}

#[test]
fn pointer_with_pointer_path_and_with_pointer_name() {
    check_pagination(
        json!({"type": "POINTER", "limitName": "limit", "limitValue": "25", "pointerPath": "$.paging.next"}),
        expect![[r#"
            Pointer { limit_name: Some("limit"), limit: Some(25), pointer_path: JsonPath("$.paging.next"), common: PagingCommon { maximum_requests: 10000, delay: None } }
        "#]],
    );
    check_pagination(
        json!({"type": "pointer", "pointerName": "paging.next"}),
        expect![[r#"
            Pointer { limit_name: None, limit: None, pointer_path: JsonPath("$.paging.next"), common: PagingCommon { maximum_requests: 10000, delay: None } }
        "#]],
    );
    check_pagination(
        json!({"type": "POINTER"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/pointerPath: missing required field pointerPath (or pointerName): expected the JSONPath of the next-page pointer (a string), found nothing
        "#]],
    );
}

#[test]
fn continuation_token_with_each_placement_and_delay() {
    check_pagination(
        json!({"type": "CONTINUATION_TOKEN", "continuationTokenPath": "$.meta.after_cursor", "parameterType": "QUERYPARAM",
               "parameterName": "page[after]", "delayRequestMillis": "850"}),
        expect![[r#"
            ContinuationToken { limit_name: None, limit: None, token_path: JsonPath("$.meta.after_cursor"), placement: Query, parameter_name: "page[after]", common: PagingCommon { maximum_requests: 10000, delay: Some(850ms) } }
        "#]],
    );
    check_pagination(
        json!({"type": "continuation_token", "continuationTokenPath": "next_token", "parameterType": "HEADERPARAM", "parameterName": "X-Next"}),
        expect![[r#"
            ContinuationToken { limit_name: None, limit: None, token_path: JsonPath("$.next_token"), placement: Header, parameter_name: "X-Next", common: PagingCommon { maximum_requests: 10000, delay: None } }
        "#]],
    );
    check_pagination(
        json!({"type": "CONTINUATION_TOKEN", "continuationTokenPath": "$.t", "parameterType": "BODY"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/parameterType: expected parameterType QUERYPARAM or HEADERPARAM, found "BODY"
            spec.json: /sourceSpec/attributes/paginationParams/parameterName: missing required field parameterName: expected the name the token is sent under (a string), found nothing
        "#]],
    );
}

#[test]
fn page_with_literal_and_header_end_index() {
    check_pagination(
        json!({"type": "PAGE", "limitName": "pageSize", "limitValue": 100, "pageParamName": "pageNumber", "initialPageIndex": 1,
               "endPageIndex": "headers.x-pagecount", "maximumRequest": 500}),
        expect![[r#"
            Page { limit_name: Some("pageSize"), limit: Some(100), page_param: "pageNumber", initial_index: 1, end_index: Some(Header("x-pagecount")), common: PagingCommon { maximum_requests: 500, delay: None } }
        "#]],
    );
    check_pagination(
        json!({"type": "PAGE", "pageParamName": "page", "endPageIndex": "7"}),
        expect![[r#"
            Page { limit_name: None, limit: None, page_param: "page", initial_index: 0, end_index: Some(Literal(7)), common: PagingCommon { maximum_requests: 10000, delay: None } }
        "#]],
    );
    check_pagination(
        json!({"type": "PAGE", "pageParamName": "page", "initialPageIndex": 3, "endPageIndex": 2}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/endPageIndex: expected endPageIndex >= initialPageIndex (3), found 2
        "#]],
    );
    check_pagination(
        json!({"type": "PAGE", "pageParamName": "page", "endPageIndex": "body.pages"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/endPageIndex: expected endPageIndex as a page number or "headers.<header-name>", found the string "body.pages"
        "#]],
    );
}

#[test]
fn none_link_and_unknown_types() {
    check_pagination(
        json!({"type": "NONE", "delayRequestMillis": 0}),
        expect![[r#"
            None { common: PagingCommon { maximum_requests: 10000, delay: None } }
        "#]],
    );
    check_pagination(
        json!({"type": "LINK", "limitName": "per_page", "limitValue": 100}),
        expect![[r#"
            Link { limit_name: Some("per_page"), limit: Some(100), common: PagingCommon { maximum_requests: 10000, delay: None } }
        "#]],
    );
    check_pagination(
        json!({"type": "CURSOR"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/type: unknown pagination type "CURSOR"; expected one of OFFSET, POINTER, CONTINUATION_TOKEN, PAGE, NONE, LINK
        "#]],
    );
    check_pagination(
        json!({"limitName": "n"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/type: missing required field type: expected the pagination type, one of OFFSET, POINTER, CONTINUATION_TOKEN, PAGE, NONE, LINK, found nothing
        "#]],
    );
}

#[test]
fn missing_pagination_means_one_request_with_a_warning() {
    check_spec(
        spec_with(json!({"paginationParams": null})),
        |spec| format!("{:?}\n", spec.source.pagination),
        expect![[r#"
            None { common: PagingCommon { maximum_requests: 10000, delay: None } }
            spec.json: /sourceSpec/attributes/paginationParams: warning: no paginationParams: every run makes a single request (type NONE)
        "#]],
    );
}

#[test]
fn content_path_as_string_and_as_object_and_explode() {
    let show = |spec: &crate::ConnectionSpec| {
        format!("{:?}\n{:?}\n", spec.source.content, spec.source.explode)
    };
    check_spec(
        spec_with(
            json!({"contentPath": "$.emails", "explodeEntityPath": {"path": "$.email.activity", "keepAttributes": ["action", "type", "timestamp"], "overrideWrapperAttribute": "activity"}}),
        ),
        show,
        expect![[r#"
            ContentPath { path: JsonPath("$.emails"), keep: [], skip: [], wrapper: None }
            Some(ContentPath { path: JsonPath("$.email.activity"), keep: ["action", "type", "timestamp"], skip: [], wrapper: Some("activity") })
        "#]],
    );
    check_spec(
        spec_with(
            json!({"contentPath": {"path": "$.members", "skipAttributes": ["_links", "total_items"], "overrideWrapperAttribute": "member"}}),
        ),
        show,
        expect![[r#"
            ContentPath { path: JsonPath("$.members"), keep: [], skip: ["_links", "total_items"], wrapper: Some("member") }
            None
        "#]],
    );
    check_spec(
        spec_with(
            json!({"contentPath": {"skipAttributes": "_links", "overrideWrapperAttribute": ""}, "explodeEntityPath": 5}),
        ),
        show,
        expect![[r#"
            spec.json: /sourceSpec/attributes/contentPath/path: missing required field path: expected the JSONPath of contentPath (a string), found nothing
            spec.json: /sourceSpec/attributes/contentPath/skipAttributes: expected skipAttributes (an array of strings), found the string "_links"
            spec.json: /sourceSpec/attributes/contentPath/overrideWrapperAttribute: expected the wrapper attribute name (a non-empty string), found an empty string
            spec.json: /sourceSpec/attributes/explodeEntityPath: expected explodeEntityPath as a JSONPath string or an object with path, found the number 5
        "#]],
    );
}

#[test]
fn query_and_header_params_as_objects_or_legacy_strings() {
    let show = |spec: &crate::ConnectionSpec| {
        let request = &spec.source.request;
        format!(
            "{:?} {:?}\nquery {:?}\nheaders {:?}\n",
            request.method, request.host, request.query, request.headers
        )
    };
    check_spec(
        spec_with(json!({
            "urlParams": {"path": "/v1/items", "method": "post", "queryParams": {"a": "b", "limit": 10, "c": "${listId}"}},
            "headerParams": {"Content-Type": "application/json", "x-api-key": "{{domain}}"},
            "bodyParams": {"filter": {"list": "${listId}"}}
        })),
        show,
        expect![[r#"
            Post None
            query [("a", Template("b")), ("limit", Template("10")), ("c", Template("${listId}"))]
            headers [("Content-Type", Template("application/json")), ("x-api-key", Template("{{domain}}"))]
        "#]],
    );
    check_spec(
        spec_with(json!({
            "urlParams": {"host": "https://api.example.com", "path": "/v1/items", "queryParams": "a=b, c=${listId},empty="},
            "headerParams": "Accept=application/json,X-Key={{domain}}"
        })),
        show,
        expect![[r#"
            Get Some(Template("https://api.example.com"))
            query [("a", Template("b")), ("c", Template("${listId}")), ("empty", Template(""))]
            headers [("Accept", Template("application/json")), ("X-Key", Template("{{domain}}"))]
        "#]],
    );
    check_spec(
        spec_with(json!({
            "urlParams": {"path": "/v1", "method": "PUT", "queryParams": "a=b,broken"},
            "headerParams": ["x"],
            "bodyParams": {"x": 1}
        })),
        show,
        expect![[r#"
            spec.json: /sourceSpec/attributes/urlParams/method: expected the HTTP method GET or POST, found "PUT"
            spec.json: /sourceSpec/attributes/urlParams/queryParams: expected queryParams as name=value pairs separated by commas, found "broken" without '='
            spec.json: /sourceSpec/attributes/headerParams: expected headerParams as an object or a "name=value,name2=value2" string, found an array of 1 elements
        "#]],
    );
}

#[test]
fn get_with_a_body_warns() {
    check_spec(
        spec_with(json!({"bodyParams": {"q": 1}})),
        |spec| format!("{:?}\n", spec.source.request.body),
        expect![[r#"
            Some(JsonTemplate { value: Object {"q": Number(1)} })
            spec.json: /sourceSpec/attributes/bodyParams: warning: bodyParams is sent only with POST, and urlParams.method is GET
        "#]],
    );
}

#[test]
fn schedule_params_simple_and_advance() {
    let show = |spec: &crate::ConnectionSpec| format!("{:?}\n", spec.source.schedule);
    check_spec(
        spec_with(
            json!({"scheduleParams": {"scheduleStartParamName": "since_last_changed", "scheduleEndParamName": "before_last_changed",
                                            "scheduleStartParamFormat": "yyyy-MM-ddTHH:mm:ssZ", "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ss:fffffffK"}}),
        ),
        show,
        expect![[r#"
            Some(Simple { start_param: "since_last_changed", end_param: "before_last_changed", start_format: DateFormat("yyyy-MM-ddTHH:mm:ssZ"), end_format: DateFormat("yyyy-MM-ddTHH:mm:ss:fffffffK") })
        "#]],
    );
    check_spec(
        spec_with(json!({
            "urlParams": {"host": "https://x.example.com", "path": "/api/v2/search", "queryParams": {"query": "{SCHEDULE_QUERY}"}},
            "scheduleParams": {"type": "ADVANCE", "paramFormat": "yyyy-MM-ddTHH:mm:ssZ",
                               "incremental": "type:user updated > {START_TIME} updated < {END_TIME}", "backfill": "type:user updated < {END_TIME}"}})),
        show,
        expect![[r#"
            Some(Advance { format: DateFormat("yyyy-MM-ddTHH:mm:ssZ"), incremental: Template("type:user updated > {START_TIME} updated < {END_TIME}"), backfill: Template("type:user updated < {END_TIME}") })
        "#]],
    );
    check_spec(
        spec_with(json!({
            "urlParams": {"path": "/s", "queryParams": {"query": "{SCHEDULE_QUERY}", "from": "{START_TIME}"}},
            "scheduleParams": {"type": "ADVANCED", "paramFormat": "yyyy-QQ"}})),
        show,
        expect![[r#"
            spec.json: /sourceSpec/attributes/scheduleParams/type: unknown schedule type "ADVANCED"; expected ADVANCE, or no type for the simple form
        "#]],
    );
    check_spec(
        spec_with(json!({
            "urlParams": {"path": "/s", "queryParams": {"query": "{SCHEDULE_QUERY}", "from": "{START_TIME}"}}})),
        show,
        expect![[r#"
            spec.json: /sourceSpec/attributes/urlParams/queryParams/query: {SCHEDULE_QUERY} needs scheduleParams with type ADVANCE, found none
            spec.json: /sourceSpec/attributes/urlParams/queryParams/from: {START_TIME} needs scheduleParams, found none
        "#]],
    );
    check_spec(
        spec_with(
            json!({"scheduleParams": {"type": "ADVANCE", "paramFormat": "yyyy-QQ", "backfill": "updated > {START_TIME}"}}),
        ),
        show,
        expect![[r#"
            spec.json: /sourceSpec/attributes/scheduleParams/paramFormat: unknown date pattern letter "QQ" in "yyyy-QQ"; known: y M d H h m s S f F a tt E Z X x z K D T, quote literal text with '...'
            spec.json: /sourceSpec/attributes/scheduleParams/incremental: missing required field incremental: expected the incremental query expression (a string), found nothing
        "#]],
    );
}

#[test]
fn adf_expressions_validate_with_a_warning() {
    check_spec(
        spec_with(
            json!({"urlParams": {"host": "https://${domain}.zendesk.com",
            "path": "/api/v2/incremental/tickets?start_time=@{if(empty(coalesce(pipeline()?.parameters?.ingestionStart,'')),'0',pipeline()?.parameters?.ingestionStart)}"}}),
        ),
        |spec| {
            format!(
                "{:?}\n",
                spec.source
                    .request
                    .path
                    .opaque_expressions()
                    .collect::<Vec<_>>()
            )
        },
        expect![[r#"
            ["@{if(empty(coalesce(pipeline()?.parameters?.ingestionStart,'')),'0',pipeline()?.parameters?.ingestionStart)}"]
            spec.json: /sourceSpec/attributes/urlParams/path: warning: @{if(empty(coalesce(pipeline()?.parameters?.ingestionStart,'')),'0',pipeline()?.parameters?.ingestionStart)} is an Azure Data Factory expression we cannot execute; a run that needs this value fails
        "#]],
    );
}

#[test]
fn undeclared_placeholders_warn() {
    check_spec(
        spec_with(json!({"urlParams": {"path": "/3.0/lists/${listId}/members/{memberId}"}})),
        |spec| {
            format!(
                "{:?}\n",
                spec.source.request.path.params().collect::<Vec<_>>()
            )
        },
        expect![[r#"
            ["listId", "memberId"]
            spec.json: /sourceSpec/attributes/urlParams/path: warning: placeholder memberId is not declared in sourceSpec.spec or any authSpec's properties; a run fails unless the source connection or the base connection gives it
        "#]],
    );
}

fn auth_spec_doc(auth: Value) -> Value {
    let mut spec = spec_with(json!({}));
    spec["authSpec"] = auth;
    spec
}

#[test]
fn auth_types_and_key_placements() {
    let show = |spec: &crate::ConnectionSpec| {
        spec.auth_specs
            .iter()
            .map(|auth| {
                format!(
                    "{} {:?} secrets={:?}\n",
                    auth.name, auth.kind, auth.secret_fields
                )
            })
            .collect::<String>()
    };
    check_spec(
        auth_spec_doc(json!([
            {"name": "OAuth2 Refresh Code", "type": "OAuth2RefreshCode",
             "spec": {"type": "object", "properties": {"host": {"type": "string"}, "accessToken": {"type": "string", "format": "password"},
                      "refreshToken": {"type": "string", "format": "password"}, "clientId": {"type": "string"}, "clientSecret": {"type": "string", "format": "password"}},
                      "required": ["host", "accessToken"]}},
            {"name": "API Key Authentication", "type": "KeyBased",
             "spec": {"type": "object", "properties": {"host": {"type": "string"},
                      "authKey1": {"type": "string", "format": "password", "restAttributes": {"headerParamName": "X-Auth-Key1"}},
                      "authKey2": {"type": "string", "format": "password"},
                      "tenantKey": {"type": "string", "restAttributes": {"headerParamName": "X-Tenant"}}},
                      "required": ["authKey1"]}},
            {"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {"type": "object", "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}}
        ])),
        show,
        expect![[r#"
            OAuth2 Refresh Code OAuth2RefreshCode secrets=["accessToken", "refreshToken", "clientSecret", "password"]
            API Key Authentication KeyBased { keys: [ApiKeyPlacement { property: "authKey1", header_name: "X-Auth-Key1" }, ApiKeyPlacement { property: "authKey2", header_name: "authKey2" }, ApiKeyPlacement { property: "tenantKey", header_name: "X-Tenant" }] } secrets=["authKey1", "authKey2", "password", "accessToken", "refreshToken", "clientSecret", "tenantKey"]
            Basic Authentication Basic secrets=["password", "accessToken", "refreshToken", "clientSecret"]
        "#]],
    );
    check_spec(
        auth_spec_doc(json!([
            {"name": "Token", "type": "BearerToken", "spec": {"type": "object"}},
            {"name": "Keys", "type": "KeyBased", "spec": {"type": "object", "properties": {"host": {"type": "string"}}}},
            {"type": "BasicAuthentication", "spec": "none"}
        ])),
        show,
        expect![[r#"
            spec.json: /authSpec/0/type: unknown auth type "BearerToken"; expected one of BasicAuthentication, OAuth2RefreshCode, KeyBased
            spec.json: /authSpec/1/spec/properties: expected at least one API key property (authKey1, ... or a property with restAttributes.headerParamName) for auth type KeyBased, found none
            spec.json: /authSpec/2/name: missing required field name: expected the auth spec name (a string), found nothing
            spec.json: /authSpec/2/spec: expected the JSON schema of the auth params (an object), found the string "none"
        "#]],
    );
}

#[test]
fn auth_spec_matches_name_or_type_case_insensitively() {
    let spec = connection_spec_from_value("spec.json", &spec_with(json!({}))).unwrap();
    let found: Vec<Option<&str>> = [
        "basic authentication",
        "BASICAUTHENTICATION",
        "OAuth generic-rest-connector",
    ]
    .iter()
    .map(|name| spec.auth_spec(name).map(|auth| auth.name.as_str()))
    .collect();
    assert_eq!(
        found,
        [
            Some("Basic Authentication"),
            Some("Basic Authentication"),
            None
        ]
    );
}

#[test]
fn explore_spec_with_the_documented_schema_typo_is_accepted() {
    let mut spec = spec_with(json!({}));
    spec["exploreSpec"] = json!({"name": "Resource", "type": "Resource",
        "requestSpec": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        "responseSpec": {"$schema": "http: //json-schema.org/draft-07/schema#", "type": "object", "properties": {"data": {"type": "array"}}}});
    check_spec(
        spec,
        |spec| format!("explore kept: {}\n", spec.explore.is_some()),
        expect![[r#"
        explore kept: true
    "#]],
    );
}

/// Adobe's generic REST connection-spec template, shape (b): `configs/specs/generic-rest.json`.
fn generic_rest_template() -> Value {
    serde_json::from_str(include_str!("../../../../configs/specs/generic-rest.json")).unwrap()
}

/// The property names and `required` list of a params schema, as one line.
fn schema_outline(schema: &Value) -> String {
    let properties: Vec<&str> = schema["properties"]
        .as_object()
        .map(|props| props.keys().map(String::as_str).collect())
        .unwrap_or_default();
    format!(
        "properties {} required {}",
        properties.join(","),
        schema.get("required").unwrap_or(&Value::Null)
    )
}

/// Reads a connection spec and shows its shape (where its request comes from and its params
/// schema), then every diagnostic.
fn check_shape(spec: Value, expect: Expect) {
    let mut ctx = Ctx::new("spec.json");
    let mut shown = match read_connection_spec(&mut ctx, &Node::root(&spec)) {
        ConnectionSpecOutcome::Valid(spec) => format!(
            "shape (a): request {:?} from the spec; params schema: {}\n",
            spec.source.request.path.as_str(),
            spec.source
                .params_schema
                .as_ref()
                .map_or("none".to_owned(), schema_outline)
        ),
        ConnectionSpecOutcome::Template(template) => format!(
            "shape (b): urlParams declared at {}; params schema: {}\n",
            template.declared_at,
            schema_outline(template.params_schema())
        ),
        ConnectionSpecOutcome::Invalid => "invalid\n".to_owned(),
    };
    shown.push_str(&ctx.diags.to_string());
    expect.assert_eq(&shown);
}

#[test]
fn adobe_generic_rest_template_validates_as_shape_b() {
    check_shape(
        generic_rest_template(),
        expect![[r#"
            shape (b): urlParams declared at /sourceSpec/spec/properties/urlParams; params schema: properties urlParams,headerParams,contentPath,explodeEntityPath,paginationParams,scheduleParams required ["urlParams","contentPath","paginationParams","scheduleParams"]
            spec.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
        "#]],
    );
    // Alone it has no request, so the typed loader says where the request comes from.
    let err = connection_spec_from_value("generic.json", &generic_rest_template()).unwrap_err();
    expect![[r#"
        generic.json: /sourceSpec/spec/properties/urlParams: this is a generic REST template (shape b): its urlParams, contentPath, paginationParams and scheduleParams come from each source connection's params, so it has no request by itself; use it in a flow bundle"#]]
    .assert_eq(&err.to_string());
}

#[test]
fn the_template_schema_may_sit_in_source_spec_attributes_spec() {
    // The `sourcespec.md` intro puts the same schema under `sourceSpec.attributes.spec`.
    let mut spec = generic_rest_template();
    let schema = spec["sourceSpec"]
        .as_object_mut()
        .unwrap()
        .remove("spec")
        .unwrap();
    spec["sourceSpec"]["attributes"]["spec"] = schema.clone();
    check_shape(
        spec,
        expect![[r#"
            shape (b): urlParams declared at /sourceSpec/attributes/spec/properties/urlParams; params schema: properties urlParams,headerParams,contentPath,explodeEntityPath,paginationParams,scheduleParams required ["urlParams","contentPath","paginationParams","scheduleParams"]
            spec.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
        "#]],
    );
    // Without any attributes the schema alone makes the template.
    let mut spec = generic_rest_template();
    spec["sourceSpec"]
        .as_object_mut()
        .unwrap()
        .remove("attributes");
    check_shape(
        spec,
        expect![[r#"
            shape (b): urlParams declared at /sourceSpec/spec/properties/urlParams; params schema: properties urlParams,headerParams,contentPath,explodeEntityPath,paginationParams,scheduleParams required ["urlParams","contentPath","paginationParams","scheduleParams"]
            spec.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
        "#]],
    );
}

#[test]
fn both_params_schemas_are_merged() {
    // A template whose author also asks for a param of their own in `sourceSpec.spec`.
    let mut spec = generic_rest_template();
    let schema = spec["sourceSpec"]
        .as_object_mut()
        .unwrap()
        .remove("spec")
        .unwrap();
    spec["sourceSpec"]["attributes"]["spec"] = schema;
    spec["sourceSpec"]["spec"] = json!({"type": "object", "properties": {"listId": {"type": "string"}}, "required": ["listId"]});
    check_shape(
        spec,
        expect![[r#"
            shape (b): urlParams declared at /sourceSpec/attributes/spec/properties/urlParams; params schema: properties listId,urlParams,headerParams,contentPath,explodeEntityPath,paginationParams,scheduleParams required ["listId","urlParams","contentPath","paginationParams","scheduleParams"]
            spec.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
        "#]],
    );
    // A property both declare must satisfy both; one closed schema closes the merge.
    let merged = super::source::merge_params_schemas(
        &json!({"properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}),
        &json!({"properties": {"a": {"maxLength": 3}, "b": {"type": "integer"}}, "required": ["b", "a"]}),
    );
    expect![[r#"{"type":"object","properties":{"a":{"allOf":[{"type":"string"},{"maxLength":3}]},"b":{"type":"integer"}},"required":["a","b"],"additionalProperties":false}"#]]
        .assert_eq(&merged.to_string());
}

#[test]
fn concrete_attributes_stay_the_source_of_truth() {
    // A spec filled in from the template but still carrying its schema: shape (a).
    let mut spec = generic_rest_template();
    spec["sourceSpec"]["attributes"]["urlParams"] = json!({"path": "/v1/items", "method": "GET"});
    spec["sourceSpec"]["attributes"]["contentPath"] = json!("$.items");
    spec["sourceSpec"]["attributes"]["paginationParams"] = json!({"type": "NONE"});
    check_shape(
        spec,
        expect![[r#"
            shape (a): request "/v1/items" from the spec; params schema: properties urlParams,headerParams,contentPath,explodeEntityPath,paginationParams,scheduleParams required ["urlParams","contentPath","paginationParams","scheduleParams"]
            spec.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
            spec.json: /sourceSpec/attributes/urlParams: warning: the params schema also declares urlParams as a source connection param, but sourceSpec.attributes.urlParams defines it here (shape a): runs use this value, not the source connection's
            spec.json: /sourceSpec/attributes/contentPath: warning: the params schema also declares contentPath as a source connection param, but sourceSpec.attributes.contentPath defines it here (shape a): runs use this value, not the source connection's
            spec.json: /sourceSpec/attributes/paginationParams: warning: the params schema also declares paginationParams as a source connection param, but sourceSpec.attributes.paginationParams defines it here (shape a): runs use this value, not the source connection's
        "#]],
    );
}

#[test]
fn a_template_with_part_of_a_request_is_refused() {
    let mut spec = generic_rest_template();
    spec["sourceSpec"]["attributes"]["paginationParams"] = json!({"type": "NONE"});
    spec["sourceSpec"]["attributes"]["contentPth"] = json!("$.items");
    spec["sourceSpec"]["schema"] = json!({"type": "object"});
    check_shape(
        spec,
        expect![[r#"
            invalid
            spec.json: /authSpec/0/spec/required/0: warning: required property host is not declared in properties
            spec.json: /sourceSpec/attributes/contentPth: warning: unknown field contentPth in sourceSpec.attributes (did you mean contentPath?); it is ignored
            spec.json: /sourceSpec/attributes/paginationParams: unexpected paginationParams in the attributes of a generic REST template: /sourceSpec/spec/properties/urlParams declares urlParams as a source connection param, so the whole request comes from the source connection; add urlParams here as well to define the request in the spec (shape a)
            spec.json: /sourceSpec/schema: unexpected schema in the source spec of a generic REST template: /sourceSpec/spec/properties/urlParams declares urlParams as a source connection param, so the records' custom schema comes with the request, in the source connection's params
        "#]],
    );
}

#[test]
fn a_source_spec_with_neither_request_nor_template_schema() {
    check_shape(
        json!({"name": "x", "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {"type": "object"}}],
               "sourceSpec": {"spec": {"type": "object", "properties": {"listId": {"type": "string"}}, "required": ["listId", "region"]}}}),
        expect![[r#"
            invalid
            spec.json: /sourceSpec/spec/required/1: warning: required property region is not declared in properties
            spec.json: /sourceSpec/attributes: missing required field attributes: expected the request definition (an object with urlParams, contentPath, paginationParams), or a sourceSpec.spec that declares urlParams (a generic REST template), found nothing
        "#]],
    );
    check_shape(
        json!({"name": "x", "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {"type": "object"}}],
               "sourceSpec": {"spec": "urlParams", "attributes": {"spec": [], "uiAttributes": {}}}}),
        expect![[r#"
            invalid
            spec.json: /sourceSpec/spec: expected the JSON schema of the source connection params (sourceSpec.spec) (an object), found the string "urlParams"
            spec.json: /sourceSpec/attributes/spec: expected the JSON schema of the source connection params (sourceSpec.attributes.spec) (an object), found an array of 0 elements
            spec.json: /sourceSpec/attributes/urlParams: missing required field urlParams: expected the request URL parts (an object with path and method), found nothing
            spec.json: /sourceSpec/attributes/contentPath: missing required field contentPath: expected the JSONPath of the records (a string such as "$.items" or an object with path), found nothing
            spec.json: /sourceSpec/attributes/paginationParams: warning: no paginationParams: every run makes a single request (type NONE)
        "#]],
    );
}

#[test]
fn every_problem_of_a_broken_spec_is_reported_at_once() {
    let spec = json!({
        "authSpec": [],
        "sourceSpec": {"attributes": {
            "urlParams": {"method": 7},
            "contentPath": 3,
            "paginationParams": {"type": "PAGE", "limitValue": "x"},
            "scheduleParams": {"scheduleStartParamName": "a"}
        }, "spec": []},
        "exploreSpec": "none"
    });
    check_spec(
        spec,
        |_| String::new(),
        expect![[r#"
            spec.json: /name: missing required field name: expected the spec name (a string), found nothing
            spec.json: /authSpec: expected at least one auth spec in authSpec, found an empty array
            spec.json: /exploreSpec: expected the explore spec (an object), found the string "none"
            spec.json: /sourceSpec/spec: expected the JSON schema of the source connection params (sourceSpec.spec) (an object), found an array of 0 elements
            spec.json: /sourceSpec/attributes/urlParams/path: missing required field path: expected the resource path (a string), found nothing
            spec.json: /sourceSpec/attributes/urlParams/method: expected the HTTP method (a string), found the number 7
            spec.json: /sourceSpec/attributes/contentPath: expected contentPath as a JSONPath string or an object with path, found the number 3
            spec.json: /sourceSpec/attributes/paginationParams/limitValue: expected limitValue (the page size) (a non-negative integer, as a number or a numeric string), found the string "x"
            spec.json: /sourceSpec/attributes/paginationParams/limitName: missing limitName: limitValue is given, so the name of the page-size parameter is needed
            spec.json: /sourceSpec/attributes/paginationParams/pageParamName: missing required field pageParamName: expected the name of the page-number parameter (a string), found nothing
            spec.json: /sourceSpec/attributes/scheduleParams/scheduleEndParamName: missing required field scheduleEndParamName: expected the query parameter of the window end (a string), found nothing
        "#]],
    );
}

#[test]
fn offset_without_any_limit_reports_both_fields_once() {
    check_pagination(
        json!({"type": "OFFSET", "offsetName": "offset"}),
        expect![[r#"
            spec.json: /sourceSpec/attributes/paginationParams/limitName: missing required field limitName: expected the name of the page-size parameter (a string), found nothing
            spec.json: /sourceSpec/attributes/paginationParams/limitValue: missing required field limitValue: expected the page size (an integer >= 1) for OFFSET pagination, found nothing
        "#]],
    );
}

#[test]
fn misspelt_fields_warn_with_a_suggestion() {
    check_spec(
        spec_with(json!({
            "paginationParam": {"type": "NONE"},
            "urlParams": {"host": "https://x", "path": "/v1", "querryParams": {"a": "b"}},
            "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 10, "offsetName": "o", "maximumRequets": 5}
        })),
        |spec| format!("{}\n", spec.source.pagination.common().maximum_requests),
        expect![[r#"
            10000
            spec.json: /sourceSpec/attributes/paginationParam: warning: unknown field paginationParam in sourceSpec.attributes (did you mean paginationParams?); it is ignored
            spec.json: /sourceSpec/attributes/urlParams/querryParams: warning: unknown field querryParams in urlParams (did you mean queryParams?); it is ignored
            spec.json: /sourceSpec/attributes/paginationParams/maximumRequets: warning: unknown field maximumRequets in paginationParams (did you mean maximumRequests?); it is ignored
        "#]],
    );
}
