//! Unit tests of auth construction (the HTTP side is covered by tests/it/fetch.rs).

use serde_json::json;
use tributary_spec::{ApiKeyPlacement, AuthKind, AuthSpec};

use super::*;

fn spec(kind: AuthKind) -> AuthSpec {
    AuthSpec {
        name: "test".to_owned(),
        type_name: "test".to_owned(),
        kind,
        params_schema: json!({}),
        secret_fields: vec![
            "password".to_owned(),
            "accessToken".to_owned(),
            "refreshToken".to_owned(),
            "clientSecret".to_owned(),
            "authKey1".to_owned(),
        ],
    }
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[test]
fn debug_never_shows_a_secret() {
    let cases = [
        (
            AuthKind::Basic,
            json!({"username": "u", "password": "hunter2-pass"}),
        ),
        (
            AuthKind::KeyBased {
                keys: vec![ApiKeyPlacement {
                    property: "authKey1".to_owned(),
                    header_name: "X-Key".to_owned(),
                }],
            },
            json!({"authKey1": "key-value-123"}),
        ),
        (
            AuthKind::OAuth2RefreshCode,
            json!({"accessToken": "access-abc-1", "refreshToken": "refresh-abc-2", "clientId": "cid", "clientSecret": "client-secret-3", "accessTokenUrl": "http://x/token", "expirationDate": "2030-01-01T00:00:00Z"}),
        ),
    ];
    for (kind, value) in cases {
        let auth = Auth::try_new(&spec(kind), &params(value.clone()), &[], None).unwrap();
        let debug = format!("{auth:?}");
        let own_secrets: Vec<String> = value
            .as_object()
            .unwrap()
            .iter()
            .filter(|(key, _)| {
                !["username", "clientId", "accessTokenUrl", "expirationDate"]
                    .contains(&key.as_str())
            })
            .map(|(_, v)| v.as_str().unwrap().to_owned())
            .chain(std::iter::once("dTpodW50ZXIyLXBhc3M=".to_owned()))
            .collect();
        for secret in &own_secrets {
            assert!(!debug.contains(secret.as_str()), "{debug}");
        }
        for secret in own_secrets
            .iter()
            .filter(|s| value.to_string().contains(s.as_str()))
        {
            let scrubbed = auth.redactor().text(&format!("x {secret} y"));
            assert_eq!(scrubbed, "x *** y");
        }
    }
}

#[test]
fn missing_credentials_are_named() {
    let err = Auth::try_new(
        &spec(AuthKind::Basic),
        &params(json!({"username": "u"})),
        &[],
        None,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "auth param password is missing or empty");
    let err = Auth::try_new(
        &spec(AuthKind::OAuth2RefreshCode),
        &params(json!({"refreshToken": "r"})),
        &[],
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "auth param accessToken is missing or empty"
    );
    let err = Auth::try_new(
        &spec(AuthKind::OAuth2RefreshCode),
        &params(json!({"accessToken": "a", "expirationDate": "next tuesday"})),
        &[],
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("auth param expirationDate is not a date"),
        "{err}"
    );
}

#[test]
fn expiration_dates_in_every_accepted_shape() {
    let cases = [
        json!("2030-01-02T03:04:05Z"),
        json!("2030-01-02"),
        json!(1_893_553_445),
        json!(1_893_553_445_000_i64),
        json!("1893553445"),
    ];
    let parsed: Vec<String> = cases
        .iter()
        .map(|v| parse_expiration(v).unwrap().to_rfc3339())
        .collect();
    assert_eq!(
        parsed,
        [
            "2030-01-02T03:04:05+00:00",
            "2030-01-02T00:00:00+00:00",
            "2030-01-02T03:04:05+00:00",
            "2030-01-02T03:04:05+00:00",
            "2030-01-02T03:04:05+00:00"
        ]
    );
}
