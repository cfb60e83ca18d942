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

/// An OAuth2 auth of client `c1` with `refresh`, persisting as `party` into `log`.
fn oauth(refresh: &str, party: &str, log: &Arc<std::sync::Mutex<Vec<String>>>) -> Auth {
    let log = log.clone();
    let key = party.to_owned();
    let callback = TokenCallback::new(party, move |tokens: &RotatedTokens| {
        let refresh = tokens.refresh_token.as_ref().map_or("", |t| t.expose());
        log.lock().unwrap().push(format!("{key}:{refresh}"));
    });
    let params = params(json!({
        "accessToken": "access-0", "refreshToken": refresh, "clientId": "c1",
        "clientSecret": "client-secret", "accessTokenUrl": "https://auth.test/token"
    }));
    Auth::try_new(
        &spec(AuthKind::OAuth2RefreshCode),
        &params,
        &[],
        Some(callback),
    )
    .unwrap()
}

fn state_of(auth: &Auth) -> Arc<TokenState> {
    match &auth.inner.method {
        AuthMethod::OAuth(oauth) => oauth.state.clone(),
        _ => panic!("not oauth"),
    }
}

fn rotate(auth: &Auth, access: &str, refresh: &str) {
    let rotated = RotatedTokens {
        access_token: Secret::new(access),
        refresh_token: Some(Secret::new(refresh)),
        expires_at: None,
    };
    state_of(auth).rotate(
        Secret::new(access),
        Some(Secret::new(refresh)),
        None,
        &rotated,
    );
}

#[test]
fn the_registry_shares_one_grant_and_keeps_two_accounts_of_one_app_apart() {
    let log = Arc::default();
    let registry = AuthRegistry::new();
    let first = registry.share(&oauth("refresh-alice", "flow-1", &log));
    let second = registry.share(&oauth("refresh-alice", "flow-1", &log));
    assert!(Arc::ptr_eq(&state_of(&first), &state_of(&second)));
    // Same app (client id and secret), another user's grant: its own state.
    let bob = registry.share(&oauth("refresh-bob", "flow-2", &log));
    assert!(!Arc::ptr_eq(&state_of(&first), &state_of(&bob)));
    assert_eq!(registry.len(), 2);
    // Not OAuth2, or not refreshable: nothing to share.
    let keys = Auth::try_new(
        &spec(AuthKind::Basic),
        &params(json!({"username": "u", "password": "password-1"})),
        &[],
        None,
    )
    .unwrap();
    let _ = registry.share(&keys);
    assert_eq!(registry.len(), 2);
    assert!(log.lock().unwrap().is_empty(), "nothing rotated yet");
}

#[test]
fn each_party_persists_a_rotation_once_and_a_late_party_catches_up_once() {
    let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let registry = AuthRegistry::new();
    let a1 = registry.share(&oauth("refresh-0", "flow-a", &log));
    let a2 = registry.share(&oauth("refresh-0", "flow-a", &log));
    rotate(&a1, "access-1", "refresh-1");
    assert_eq!(
        *log.lock().unwrap(),
        ["flow-a:refresh-1"],
        "flow-a once, not per run"
    );
    assert_eq!(
        a2.redactor().text("x access-1 y"),
        "x *** y",
        "every run learns the token"
    );

    // Flow b brings the tokens of before the rotation: it joins the grant (its refresh token is
    // one the grant rotated away from) and persists the current tokens, once.
    let b1 = registry.share(&oauth("refresh-0", "flow-b", &log));
    let b2 = registry.share(&oauth("refresh-0", "flow-b", &log));
    assert!(Arc::ptr_eq(&state_of(&a1), &state_of(&b2)));
    // A run of flow a built from the stored, rotated tokens joins too, persisting nothing.
    let a3 = registry.share(&oauth("refresh-1", "flow-a", &log));
    assert!(Arc::ptr_eq(&state_of(&a1), &state_of(&a3)));
    assert_eq!(
        *log.lock().unwrap(),
        ["flow-a:refresh-1", "flow-b:refresh-1"]
    );

    // Parties leave with their last auth: a rotation after flow b's runs ended calls flow a only.
    drop((b1, b2));
    rotate(&a1, "access-2", "refresh-2");
    assert_eq!(
        *log.lock().unwrap(),
        ["flow-a:refresh-1", "flow-b:refresh-1", "flow-a:refresh-2"]
    );
    assert_eq!(registry.len(), 1);
}
