//! Helpers on the typed model: token-exchange names, pagination accessors, auth matching.

use serde_json::json;

use super::*;
use crate::document::connection_spec_from_value;

#[test]
fn token_request_names_default_and_follow_request_parameter_override() {
    let defaults = TokenRequestNames::from_params(&Map::new());
    assert_eq!(defaults, TokenRequestNames::default());
    assert_eq!(
        (
            defaults.access_token_field.as_str(),
            defaults.refresh_token_field.as_str(),
            defaults.expire_in_field.as_str(),
            defaults.method
        ),
        (
            "access_token",
            "refresh_token",
            "expires_in",
            HttpMethod::Post
        )
    );
    let params = json!({"requestParameterOverride": {"accessTokenField": "token", "expireInField": "ttl", "authenticationMethod": "get",
                                                     "clientId": "app_id", "clientSecret": "app_secret"}});
    let names = TokenRequestNames::from_params(params.as_object().unwrap());
    assert_eq!(
        names,
        TokenRequestNames {
            access_token_field: "token".to_owned(),
            refresh_token_field: "refresh_token".to_owned(),
            expire_in_field: "ttl".to_owned(),
            method: HttpMethod::Get,
            client_id_param: "app_id".to_owned(),
            client_secret_param: "app_secret".to_owned(),
        }
    );
}

fn pagination(value: Value) -> Pagination {
    let spec = json!({"name": "s", "authSpec": [{"name": "b", "type": "BasicAuthentication", "spec": {"type": "object"}}],
                      "sourceSpec": {"attributes": {"urlParams": {"host": "http://h", "path": "/"}, "contentPath": "$", "paginationParams": value}}});
    connection_spec_from_value("s.json", &spec)
        .unwrap()
        .source
        .pagination
}

#[test]
fn pagination_accessors() {
    let cases = [
        (
            json!({"type": "OFFSET", "limitName": "count", "limitValue": 10, "offsetName": "o", "maximumRequest": 3}),
            "OFFSET",
            Some(("count", 10)),
            3,
        ),
        (
            json!({"type": "PAGE", "pageParamName": "p", "limitName": "size", "limitValue": "5"}),
            "PAGE",
            Some(("size", 5)),
            10_000,
        ),
        (
            json!({"type": "POINTER", "pointerPath": "next"}),
            "POINTER",
            None,
            10_000,
        ),
        (
            json!({"type": "NONE", "maximumRequest": 1}),
            "NONE",
            None,
            1,
        ),
    ];
    for (value, type_name, limit, maximum) in cases {
        let pagination = pagination(value);
        assert_eq!(pagination.type_name(), type_name);
        assert_eq!(
            pagination.limit().map(|(name, limit)| (name, limit.get())),
            limit
        );
        assert_eq!(pagination.common().maximum_requests.get(), maximum);
    }
}

#[test]
fn key_placements_may_be_declared_beside_the_schema() {
    let spec = json!({"name": "s",
        "authSpec": [{"name": "API Key Authentication", "type": "KeyBased",
                      "restAttributes": {"apiToken": {"headerParamName": "Authorization-Token"}},
                      "spec": {"type": "object", "properties": {"apiToken": {"type": "string"}, "host": {"type": "string"}}}}],
        "sourceSpec": {"attributes": {"urlParams": {"path": "/"}, "contentPath": "$", "paginationParams": {"type": "NONE"}}}});
    let spec = connection_spec_from_value("s.json", &spec).unwrap();
    let auth_spec = spec.auth_spec("keybased").unwrap();
    assert_eq!(
        auth_spec.kind,
        AuthKind::KeyBased {
            keys: vec![ApiKeyPlacement {
                property: "apiToken".to_owned(),
                header_name: "Authorization-Token".to_owned()
            }]
        }
    );
    assert!(
        auth_spec
            .secret_fields
            .iter()
            .any(|field| field == "apiToken")
    );
}
