//! What the API benchmarks share: sizes from the environment, in-process calls, an API over a
//! fresh state directory, and the spec, connections and flow-spec append that flows need.

// Each benchmark binary compiles this module and uses a part of it.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use tributary_api::{ApiAuth, ApiOptions, ApiState, FlowRegistry, OrgCredential};

pub const FS: &str = "/data/foundation/flowservice";

/// An API over a temporary state directory (kept alive by `dir`), with one org.
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub db: tributary_state::Db,
    pub registry: FlowRegistry,
    pub state: ApiState,
    pub app: axum::Router,
}

/// `var` as a number, or `default` when unset or not a number.
pub fn size_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A request with the bench org's headers.
pub fn request(method: &str, path: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "Bearer bench-token")
        .header("x-api-key", "bench-key")
        .header("x-gw-ims-org-id", "BENCH@AdobeOrg")
        .header("x-sandbox-name", "prod");
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("a request"),
        None => builder.body(Body::empty()).expect("a request"),
    }
}

/// One in-process call that must succeed; its JSON answer.
pub async fn call(app: &axum::Router, method: &str, path: &str, body: Option<Value>) -> Value {
    let response = app
        .clone()
        .oneshot(request(method, path, body))
        .await
        .expect("a response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

/// A fresh state directory with the API over it.
pub fn bench_api() -> Bench {
    let dir = tempfile::tempdir().expect("a temp dir");
    let key =
        tributary_state::SecretKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .expect("a key");
    let db = tributary_state::Db::open(
        &dir.path().join("state"),
        tributary_state::StateOptions {
            secret_key: Some(key),
            ..Default::default()
        },
    )
    .expect("state");
    let engine = tributary_engine::run::Engine {
        layout: tributary_write::DatasetLayout::new(dir.path().join("data")),
        db: db.clone(),
        fetch: tributary_fetch::FetchContext::try_new(
            tributary_fetch::Limiters::new(),
            tributary_fetch::FetchSettings::default(),
        )
        .expect("a fetch context"),
        options: tributary_engine::run::EngineOptions::default(),
        running: Default::default(),
    };
    let auth = ApiAuth {
        orgs: vec![OrgCredential {
            org_id: "BENCH@AdobeOrg".to_owned(),
            api_key: "bench-key".to_owned(),
            bearer_token: "bench-token".to_owned(),
        }],
    };
    let registry = FlowRegistry::default();
    let state = ApiState::try_new(
        engine,
        registry.clone(),
        ApiOptions {
            auth,
            max_concurrent_runs: 4,
            metrics_bearer_token: None,
            shared_state: false,
        },
    )
    .expect("api state");
    let app = tributary_api::app(state.clone());
    Bench {
        dir,
        db,
        registry,
        state,
        app,
    }
}

/// Registers the example Mailchimp spec, appends it to RestStorageToAEP and creates a base,
/// source and target connection; the source and target connections, as answered.
pub async fn source_and_target(app: &axum::Router) -> (Value, Value) {
    let spec_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/specs/mailchimp-members.json"
    ))
    .expect("the example spec");
    let spec: Value = serde_json::from_str(&spec_text).expect("JSON");
    let spec_id = call(app, "POST", &format!("{FS}/connectionSpecs"), Some(spec)).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let flow_spec_path = format!("{FS}/flowSpecs/{}", tributary_api::FLOW_SPEC_ID);
    let mut flow_spec = call(app, "GET", &flow_spec_path, None).await["items"][0].clone();
    flow_spec["sourceConnectionSpecIds"] = json!([spec_id]);
    call(app, "PUT", &flow_spec_path, Some(flow_spec)).await;
    let base = call(app, "POST", &format!("{FS}/connections"), Some(json!({"name": "b", "connectionSpec": {"id": spec_id}, "auth": {"specName": "Basic Authentication", "params": {"host": "http://127.0.0.1:9", "username": "u", "password": "p"}}}))).await;
    let source = call(
        app,
        "POST",
        &format!("{FS}/sourceConnections"),
        Some(json!({"baseConnectionId": base["id"], "params": {"listId": "l"}})),
    )
    .await;
    let target = call(app, "POST", &format!("{FS}/targetConnections"), Some(json!({"connectionSpec": {"id": tributary_api::TARGET_SPEC_ID}, "params": {"dataSetId": "d"}}))).await;
    (source, target)
}
