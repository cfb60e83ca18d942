//! The Flow Service / Data Prep API in process (`app().oneshot(req)`), on real sled in a temp
//! dir and, for test / explore / runs, the mock API on 127.0.0.1:0: tenancy and gateway errors,
//! bad bodies, the provider workflow with validation, listing, etags and PATCH, the scheduler's
//! flow set, runs with metrics and Parquet, Data Prep, and our OpenAPI document against Adobe's
//! list of operations (kept here as data; the project never reads Adobe's files).

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use tributary_api::{ApiAuth, ApiOptions, ApiState, FlowRegistry, OrgCredential};

pub const ORG: &str = "ACME@AdobeOrg";
pub const API_KEY: &str = "test-key";
pub const TOKEN: &str = "test-token";
const OTHER_ORG: &str = "OTHER@AdobeOrg";
const OTHER_TOKEN: &str = "other-token";
const FS: &str = "/data/foundation/flowservice";
const DP: &str = "/data/foundation/conversion";
const FLOW_SPEC: &str = "6499120c-0b15-42dc-936e-847ea3c24d72";
const TARGET_SPEC: &str = "c604ff05-7f1a-43c0-8e18-33bf874cb11c";
const PASSWORD: &str = "s3cr3t-pa55word-never-in-clear";

/// Adobe's operations (flow-service.yaml: 45, data-prep.yaml: 11), method and path.
const ADOBE_FLOW_SERVICE: [(&str, &str); 45] = [
    ("GET", "/connections"),
    ("POST", "/connections"),
    ("GET", "/connections/{BASE_CONNECTION_ID}"),
    ("GET", "/connections/{BASE_CONNECTION_ID}/test"),
    ("GET", "/connections/{BASE_CONNECTION_ID}/explore"),
    ("POST", "/connections/{BASE_CONNECTION_ID}/action"),
    ("DELETE", "/connections/{BASE_CONNECTION_ID}/"),
    ("PATCH", "/connections/{BASE_CONNECTION_ID}/"),
    ("GET", "/connections/{BASE_CONNECTION_ID}/configs"),
    ("POST", "/connections/search"),
    ("GET", "/connectionSpecs"),
    ("POST", "/connectionSpecs"),
    ("GET", "/connectionSpecs/{CONNECTION_SPEC_ID}"),
    ("PUT", "/connectionSpecs/{CONNECTION_SPEC_ID}"),
    ("GET", "/connectionSpecs/{CONNECTION_SPEC_ID}/explore"),
    ("GET", "/connectionSpecs/{CONNECTION_SPEC_ID}/configs"),
    ("GET", "/flows"),
    ("POST", "/flows"),
    ("GET", "/flows/{FLOW_ID}"),
    ("DELETE", "/flows/{FLOW_ID}"),
    ("PATCH", "/flows/{FLOW_ID}"),
    ("POST", "/flows/search"),
    ("POST", "/flows/{FLOW_ID}/action"),
    ("GET", "/flowSpecs"),
    ("POST", "/flowSpecs"),
    ("GET", "/flowSpecs/{FLOW_SPEC_ID}"),
    ("PUT", "/flowSpecs/{FLOW_SPEC_ID}"),
    ("POST", "/flowSpecs/search"),
    ("GET", "/runs"),
    ("POST", "/runs"),
    ("GET", "/runs/{RUN_ID}"),
    ("PUT", "/runs/{RUN_ID}"),
    ("POST", "/runs/{RUN_ID}/action"),
    ("GET", "/sourceConnections"),
    ("POST", "/sourceConnections"),
    ("GET", "/sourceConnections/{SOURCE_CONNECTION_ID}"),
    ("DELETE", "/sourceConnections/{SOURCE_CONNECTION_ID}"),
    ("PATCH", "/sourceConnections/{SOURCE_CONNECTION_ID}"),
    ("POST", "/sourceConnections/{SOURCE_CONNECTION_ID}/action"),
    ("GET", "/targetConnections"),
    ("POST", "/targetConnections"),
    ("POST", "/targetConnections/{TARGET_CONNECTION_ID}/action"),
    ("GET", "/targetConnections/{TARGET_CONNECTION_ID}"),
    ("DELETE", "/targetConnections/{TARGET_CONNECTION_ID}"),
    ("PATCH", "/targetConnections/{TARGET_CONNECTION_ID}"),
];
const ADOBE_DATA_PREP: [(&str, &str); 11] = [
    ("POST", "/languages/el/validate"),
    ("GET", "/languages/el/functions"),
    ("GET", "/languages/el/operators"),
    ("GET", "/mappingSets"),
    ("POST", "/mappingSets"),
    ("POST", "/mappingSets/validate"),
    ("POST", "/mappingSets/preview"),
    ("GET", "/mappingSets/{MAPPING_SET_ID}"),
    ("PUT", "/mappingSets/{MAPPING_SET_ID}"),
    ("GET", "/mappingSets/{MAPPING_SET_ID}/mappings"),
    ("GET", "/mappingSets/{MAPPING_SET_ID}/mappings/{MAPPING_ID}"),
];

struct Api {
    app: axum::Router,
    state: ApiState,
    dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let key =
            tributary_state::SecretKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .unwrap();
        let db = tributary_state::Db::open(
            &dir.path().join("state"),
            tributary_state::StateOptions {
                secret_key: Some(key),
                ..Default::default()
            },
        )
        .unwrap();
        let engine = tributary_engine::run::Engine {
            layout: tributary_write::DatasetLayout::new(dir.path().join("data")),
            db,
            fetch: tributary_fetch::FetchContext::try_new(
                tributary_fetch::Limiters::new(),
                tributary_fetch::FetchSettings::default(),
            )
            .unwrap(),
            options: tributary_engine::run::EngineOptions::default(),
            running: Default::default(),
        };
        let auth = ApiAuth {
            orgs: vec![
                OrgCredential {
                    org_id: ORG.to_owned(),
                    api_key: API_KEY.to_owned(),
                    bearer_token: TOKEN.to_owned(),
                },
                OrgCredential {
                    org_id: OTHER_ORG.to_owned(),
                    api_key: API_KEY.to_owned(),
                    bearer_token: OTHER_TOKEN.to_owned(),
                },
            ],
        };
        let state = ApiState::try_new(
            engine,
            FlowRegistry::default(),
            ApiOptions {
                auth,
                max_concurrent_runs: 2,
                metrics_bearer_token: None,
                shared_state: false,
            },
        )
        .unwrap();
        state.set_scheduler_running(true);
        Api {
            app: tributary_api::app(state.clone()),
            state,
            dir,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn request(method: &str, path: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("x-api-key", API_KEY)
            .header("x-gw-ims-org-id", ORG)
            .header("x-sandbox-name", "prod")
    }

    /// One call with the good credentials; `body` as JSON.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_with(method, path, body, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut builder = Api::request(method, path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }
}

fn code(reply: &Reply) -> String {
    reply.body["type"]
        .as_str()
        .or(reply.body["error_code"].as_str())
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts the status and, for errors, the Flow Service or gateway code.
#[track_caller]
fn expect(reply: &Reply, status: u16, error: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.body);
    if !error.is_empty() {
        assert_eq!(code(reply), error, "body: {}", reply.body);
    }
}

fn connection_spec(host_param: bool) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/specs/mailchimp-members.json"
    ))
    .unwrap();
    let mut spec: Value = serde_json::from_str(&text).unwrap();
    assert!(host_param, "the Mailchimp spec takes host as an auth param");
    // The mock API answers the test URL at /oauth/test.
    spec["authSpec"][0]["spec"]["properties"]["authorizationTestUrl"]["default"] =
        json!("${host}/oauth/test");
    spec
}

/// Creates the provider's entities; returns (spec, base, source, target, flow) ids.
async fn workflow(api: &Api, host: &str, schedule: Value) -> [String; 5] {
    let spec = api
        .call(
            "POST",
            &format!("{FS}/connectionSpecs"),
            Some(connection_spec(true)),
        )
        .await;
    expect(&spec, 201, "");
    let spec_id = spec.body["id"].as_str().unwrap().to_owned();
    let flow_spec = api
        .call("GET", &format!("{FS}/flowSpecs/{FLOW_SPEC}"), None)
        .await;
    let mut flow_spec = flow_spec.body["items"][0].clone();
    flow_spec["sourceConnectionSpecIds"]
        .as_array_mut()
        .unwrap()
        .push(json!(spec_id));
    expect(
        &api.call(
            "PUT",
            &format!("{FS}/flowSpecs/{FLOW_SPEC}"),
            Some(flow_spec),
        )
        .await,
        200,
        "",
    );
    let base = api.call("POST", &format!("{FS}/connections"), Some(json!({
        "name": "mailchimp", "connectionSpec": {"id": spec_id, "version": "1.0"},
        "auth": {"specName": "Basic Authentication", "params": {"host": host, "username": "demo", "password": PASSWORD}},
    }))).await;
    expect(&base, 201, "");
    let base_id = base.body["id"].as_str().unwrap().to_owned();
    let source = api.call("POST", &format!("{FS}/sourceConnections"), Some(json!({
        "name": "members", "baseConnectionId": base_id, "connectionSpec": {"id": spec_id, "version": "1.0"},
        "data": {"format": "json"}, "params": {"listId": "10c097ca71"},
    }))).await;
    expect(&source, 201, "");
    let target = api
        .call(
            "POST",
            &format!("{FS}/targetConnections"),
            Some(json!({
                "name": "lake", "connectionSpec": {"id": TARGET_SPEC, "version": "1.0"},
                "data": {"format": "parquet_xdm"}, "params": {"dataSetId": "members"},
            })),
        )
        .await;
    expect(&target, 201, "");
    let source_id = source.body["id"].as_str().unwrap().to_owned();
    let target_id = target.body["id"].as_str().unwrap().to_owned();
    let flow = api
        .call(
            "POST",
            &format!("{FS}/flows"),
            Some(json!({
                "name": "members flow", "flowSpec": {"id": FLOW_SPEC, "version": "1.0"},
                "sourceConnectionIds": [source_id], "targetConnectionIds": [target_id],
                "scheduleParams": schedule,
            })),
        )
        .await;
    expect(&flow, 201, "");
    [
        spec_id,
        base_id,
        source_id,
        target_id,
        flow.body["id"].as_str().unwrap().to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_checks_tenancy_and_request_ids() {
    let api = Api::new();
    let path = format!("{FS}/flows");
    let without = |skip: &str| {
        let mut builder = Request::builder().uri(&path);
        for (name, value) in [
            ("authorization", format!("Bearer {TOKEN}")),
            ("x-api-key", API_KEY.to_owned()),
            ("x-gw-ims-org-id", ORG.to_owned()),
            ("x-sandbox-name", "prod".to_owned()),
        ] {
            if name != skip {
                builder = builder.header(name, value);
            }
        }
        builder.body(Body::empty()).unwrap()
    };
    expect(&api.send(without("authorization")).await, 403, "403010");
    expect(&api.send(without("x-api-key")).await, 403, "403000");
    expect(&api.send(without("x-gw-ims-org-id")).await, 400, "400003");
    expect(
        &api.send(without("x-sandbox-name")).await,
        400,
        "FLOW-2105-400",
    );
    let wrong_token = api
        .send(
            Request::builder()
                .uri(&path)
                .header("authorization", "Bearer nope")
                .header("x-api-key", API_KEY)
                .header("x-gw-ims-org-id", ORG)
                .header("x-sandbox-name", "prod")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    expect(&wrong_token, 401, "401013");
    let wrong_key = api
        .send(
            Request::builder()
                .uri(&path)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("x-api-key", "nope")
                .header("x-gw-ims-org-id", ORG)
                .header("x-sandbox-name", "prod")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    expect(&wrong_key, 403, "403003");
    let other_org_header = api
        .send(
            Request::builder()
                .uri(&path)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("x-api-key", API_KEY)
                .header("x-gw-ims-org-id", OTHER_ORG)
                .header("x-sandbox-name", "prod")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    expect(&other_org_header, 403, "403025");

    // Request ids: the caller's is echoed, else one is made; errors carry it in the body.
    let reply = api
        .call_with(
            "GET",
            &format!("{FS}/flows/nope"),
            None,
            &[("x-request-id", "req-123")],
        )
        .await;
    expect(&reply, 404, "FLOW-1439-404");
    assert_eq!(reply.headers["x-request-id"], "req-123");
    assert_eq!(reply.body["report"]["request-id"], "req-123");
    assert!(!api.call("GET", &path, None).await.headers["x-request-id"].is_empty());

    // An entity of one org × sandbox is invisible from any other.
    let spec = api
        .call(
            "POST",
            &format!("{FS}/connectionSpecs"),
            Some(connection_spec(true)),
        )
        .await;
    let id = spec.body["id"].as_str().unwrap().to_owned();
    let spec_path = format!("{FS}/connectionSpecs/{id}");
    expect(&api.call("GET", &spec_path, None).await, 200, "");
    let dev = api
        .send(
            Request::builder()
                .uri(&spec_path)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("x-api-key", API_KEY)
                .header("x-gw-ims-org-id", ORG)
                .header("x-sandbox-name", "dev")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    expect(&dev, 404, "FLOW-1439-404");
    let other = api
        .send(
            Request::builder()
                .uri(&spec_path)
                .header("authorization", format!("Bearer {OTHER_TOKEN}"))
                .header("x-api-key", API_KEY)
                .header("x-gw-ims-org-id", OTHER_ORG)
                .header("x-sandbox-name", "prod")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    expect(&other, 404, "FLOW-1439-404");
    // The built-ins exist in every tenant.
    expect(
        &api.send(
            Request::builder()
                .uri(format!("{FS}/flowSpecs/{FLOW_SPEC}"))
                .header("authorization", format!("Bearer {OTHER_TOKEN}"))
                .header("x-api-key", API_KEY)
                .header("x-gw-ims-org-id", OTHER_ORG)
                .header("x-sandbox-name", "prod")
                .body(Body::empty())
                .unwrap(),
        )
        .await,
        200,
        "",
    );
    expect(
        &api.call("GET", &format!("{FS}/connectionSpecs/{TARGET_SPEC}"), None)
            .await,
        200,
        "",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_documented_errors_and_change_nothing() {
    let api = Api::new();
    let path = format!("{FS}/connectionSpecs");
    let malformed = api
        .send(
            Api::request("POST", &path)
                .header("content-type", "application/json")
                .body(Body::from("{\n  \"name\": \"x\",\n  oops\n}"))
                .unwrap(),
        )
        .await;
    expect(&malformed, 400, "FLOW-1405-400");
    assert_eq!(
        (
            malformed.body["report"]["line"].as_u64(),
            malformed.body["report"]["column"].as_u64()
        ),
        (Some(3), Some(3)),
        "{}",
        malformed.body
    );
    let no_type = api
        .send(Api::request("POST", &path).body(Body::from("{}")).unwrap())
        .await;
    expect(&no_type, 400, "");
    assert_eq!(no_type.body["title"], "BadRequestError");
    assert_eq!(
        no_type.body["detail"],
        "A valid content-type must be specified"
    );
    let text_type = api
        .send(
            Api::request("POST", &path)
                .header("content-type", "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(text_type.body["title"], "BadRequestError");
    expect(
        &api.send(
            Api::request("POST", &path)
                .header("content-type", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await,
        400,
        "FLOW-1405-400",
    );
    let huge = format!(
        "{{\"name\": \"{}\"}}",
        "x".repeat(tributary_api::MAX_BODY_BYTES + 10)
    );
    expect(
        &api.send(
            Api::request("POST", &path)
                .header("content-type", "application/json")
                .body(Body::from(huge))
                .unwrap(),
        )
        .await,
        413,
        "FLOW-1406-413",
    );
    let mut unknown = connection_spec(true);
    unknown["colour"] = json!("blue");
    let reply = api.call("POST", &path, Some(unknown)).await;
    expect(&reply, 400, "FLOW-1455-400");
    assert_eq!(reply.body["report"]["errors"][0]["path"], "/colour");
    // The same validation as `spec validate`: every problem with its pointer.
    let mut invalid = connection_spec(true);
    invalid["sourceSpec"]["attributes"]["paginationParams"]["type"] = json!("SIDEWAYS");
    invalid["authSpec"][0]
        .as_object_mut()
        .unwrap()
        .remove("type");
    let reply = api.call("POST", &path, Some(invalid)).await;
    expect(&reply, 400, "FLOW-1455-400");
    let pointers: Vec<&str> = reply.body["report"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/sourceSpec/attributes/paginationParams/type"),
        "{pointers:?}"
    );
    assert!(
        pointers.iter().any(|p| p.starts_with("/authSpec/0")),
        "{pointers:?}"
    );
    let list = api.call("GET", &path, None).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "only the built-in target spec: {}",
        list.body
    );
    for (method, missing) in [
        ("GET", format!("{FS}/flows/nope")),
        ("GET", format!("{FS}/connections/nope")),
        ("DELETE", format!("{FS}/sourceConnections/nope")),
        ("GET", format!("{FS}/runs/nope")),
    ] {
        expect(
            &api.call(method, &missing, None).await,
            404,
            "FLOW-1439-404",
        );
    }
    expect(
        &api.call("GET", "/data/foundation/flowservice/nowhere", None)
            .await,
        404,
        "FLOW-1101-404",
    );
    expect(
        &api.call("PUT", &format!("{FS}/flows"), None).await,
        405,
        "FLOW-1101-405",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_workflow_validation_etags_patches_and_the_scheduler_set() {
    let api = Api::new();
    let schedule = json!({"startTime": 4_102_444_800u64, "frequency": "hour", "interval": 1});
    // A flow for a spec that is not in RestStorageToAEP's sourceConnectionSpecIds is refused.
    let spec = api
        .call(
            "POST",
            &format!("{FS}/connectionSpecs"),
            Some(connection_spec(true)),
        )
        .await;
    let lone_spec = spec.body["id"].as_str().unwrap().to_owned();
    assert!(spec.headers.contains_key("location"));
    assert_eq!(spec.body["authSpec"][0]["name"], "Basic Authentication");
    let base = api.call("POST", &format!("{FS}/connections"), Some(json!({"name": "b", "connectionSpec": {"id": lone_spec, "version": "1.0"}, "auth": {"specName": "basic authentication", "params": {"host": "http://127.0.0.1:9", "username": "u", "password": PASSWORD}}}))).await;
    expect(&base, 201, "");
    let lone_base = base.body["id"].as_str().unwrap().to_owned();
    let source = api
        .call(
            "POST",
            &format!("{FS}/sourceConnections"),
            Some(json!({"baseConnectionId": lone_base, "params": {"listId": "x"}})),
        )
        .await;
    let target = api.call("POST", &format!("{FS}/targetConnections"), Some(json!({"connectionSpec": {"id": TARGET_SPEC, "version": "1.0"}, "params": {"dataSetId": "d"}}))).await;
    let refused = api.call("POST", &format!("{FS}/flows"), Some(json!({"name": "f", "flowSpec": {"id": FLOW_SPEC}, "sourceConnectionIds": [source.body["id"]], "targetConnectionIds": [target.body["id"]]}))).await;
    expect(&refused, 400, "FLOW-1413-400");
    assert!(
        refused.body["report"]["detailed-message"]
            .as_str()
            .unwrap()
            .contains("sourceConnectionSpecIds")
    );

    // Connections are checked against the spec.
    let bad_auth = api.call("POST", &format!("{FS}/connections"), Some(json!({"connectionSpec": {"id": lone_spec}, "auth": {"specName": "Nope", "params": {}}}))).await;
    expect(&bad_auth, 400, "FLOW-1415-400");
    let missing_param = api.call("POST", &format!("{FS}/connections"), Some(json!({"connectionSpec": {"id": lone_spec}, "auth": {"specName": "Basic Authentication", "params": {"host": "h", "username": "u"}}}))).await;
    expect(&missing_param, 400, "FLOW-1455-400");
    assert_eq!(
        missing_param.body["report"]["errors"][0]["path"], "/auth/params/password",
        "{}",
        missing_param.body
    );
    let env_param = api.call("POST", &format!("{FS}/connections"), Some(json!({"connectionSpec": {"id": lone_spec}, "auth": {"specName": "Basic Authentication", "params": {"host": "h", "username": "u", "password": "${env:HOME}"}}}))).await;
    expect(&env_param, 400, "FLOW-1455-400");
    let bad_source = api
        .call(
            "POST",
            &format!("{FS}/sourceConnections"),
            Some(json!({"baseConnectionId": lone_base, "params": {"listId": 7}})),
        )
        .await;
    expect(&bad_source, 400, "FLOW-1455-400");
    assert_eq!(
        bad_source.body["report"]["errors"][0]["path"], "/params/listId",
        "{}",
        bad_source.body
    );

    // Secrets: masked in every response, sealed at rest.
    let shown = api
        .call("GET", &format!("{FS}/connections/{lone_base}"), None)
        .await;
    assert_eq!(shown.body["items"][0]["auth"]["params"]["password"], "***");
    assert_eq!(shown.body["items"][0]["imsOrgId"], ORG);
    assert_eq!(shown.body["items"][0]["sandboxName"], "prod");
    assert_eq!(
        shown.body["items"][0]["version"],
        shown.body["items"][0]["etag"]
    );
    let listed = api.call("GET", &format!("{FS}/connections"), None).await;
    assert!(!listed.body.to_string().contains(PASSWORD));

    let ids = workflow(&api, "http://127.0.0.1:9", schedule.clone()).await;
    let [spec_id, base_id, source_id, target_id, flow_id] = ids.clone();
    assert_eq!(
        api.state.registry().snapshot().len(),
        1,
        "the new flow is scheduled"
    );
    let flow = api
        .call("GET", &format!("{FS}/flows/{flow_id}"), None)
        .await;
    let item = &flow.body["items"][0];
    assert_eq!(item["state"], "enabled");
    assert_eq!(item["runs"], format!("/runs?property=flowId=={flow_id}"));
    assert_eq!(
        item["inheritedAttributes"]["sourceConnections"][0]["baseConnection"]["id"],
        base_id
    );
    assert_eq!(
        item["inheritedAttributes"]["sourceConnections"][0]["connectionSpec"]["id"],
        spec_id
    );
    let with_state = api.call("POST", &format!("{FS}/flows"), Some(json!({"name": "x", "state": "enabled", "flowSpec": {"id": FLOW_SPEC}, "sourceConnectionIds": [source_id], "targetConnectionIds": [target_id]}))).await;
    expect(&with_state, 400, "FLOW-1410-400");

    // Listing.
    let by_spec = api.call("GET", &format!("{FS}/sourceConnections?property=connectionSpec.id=={spec_id}&property=baseConnectionId=={base_id}"), None).await;
    assert_eq!(by_spec.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_spec.body["_links"], json!({}));
    let count = api
        .call("GET", &format!("{FS}/connections?count=true"), None)
        .await;
    assert_eq!(count.body, json!({"count": 2}));
    expect(
        &api.call("GET", &format!("{FS}/connections?count=true&limit=1"), None)
            .await,
        400,
        "FLOW-1401-400",
    );
    let page = api
        .call(
            "GET",
            &format!("{FS}/connections?limit=1&orderby=-createdAt"),
            None,
        )
        .await;
    assert_eq!(page.body["items"][0]["id"], base_id);
    let next = page.body["_links"]["next"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let page2 = api.call("GET", &format!("{FS}{next}"), None).await;
    assert_eq!(page2.body["items"][0]["id"], lone_base);
    let by_name = api.call("GET", &format!("{FS}/flows?property=name==%22members%20flow%22&property=sourceConnectionIds[]=={source_id}"), None).await;
    assert_eq!(by_name.body["items"].as_array().unwrap().len(), 1);
    let search = api
        .call(
            "POST",
            &format!("{FS}/flows/search"),
            Some(json!({"queryString": format!("state==enabled&id=={flow_id}"), "limit": 10})),
        )
        .await;
    assert_eq!(
        search.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        search.body
    );

    // PATCH: If-Match required, stale etag 412, each update a new etag, an invalid result refused.
    let flow_path = format!("{FS}/flows/{flow_id}");
    let etag = item["etag"].as_str().unwrap().to_owned();
    let rename = json!([{"op": "replace", "path": "/name", "value": "renamed"}]);
    expect(
        &api.call("PATCH", &flow_path, Some(rename.clone())).await,
        400,
        "FLOW-1403-400",
    );
    expect(
        &api.call_with(
            "PATCH",
            &flow_path,
            Some(json!([{"op": "move", "from": "/name", "path": "/x"}])),
            &[("if-match", &etag)],
        )
        .await,
        400,
        "FLOW-1434-400",
    );
    let invalid = json!([{"op": "replace", "path": "/scheduleParams/frequency", "value": "minute"}, {"op": "replace", "path": "/scheduleParams/interval", "value": 5}]);
    let refused = api
        .call_with("PATCH", &flow_path, Some(invalid), &[("if-match", &etag)])
        .await;
    expect(&refused, 400, "FLOW-1455-400");
    assert_eq!(
        refused.body["report"]["errors"][0]["path"], "/scheduleParams/interval",
        "{}",
        refused.body
    );
    let unchanged = api.call("GET", &flow_path, None).await;
    assert_eq!(unchanged.body["items"][0]["etag"], etag.as_str());
    // Quoted or not, as a header or the query parameter; concurrent patches: exactly one wins.
    let bare = etag.trim_matches('"').to_owned();
    let headers = [("if-match", etag.as_str())];
    let by_query = format!("{flow_path}?if-match={bare}");
    let (a, b) = tokio::join!(
        api.call_with("PATCH", &flow_path, Some(rename.clone()), &headers),
        api.call(
            "PATCH",
            &by_query,
            Some(json!({"op": "add", "path": "/description", "value": "d"}))
        ),
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412], "{} / {}", a.body, b.body);
    let stale = if a.status == StatusCode::OK { &b } else { &a };
    expect(stale, 412, "FLOW-1404-412");
    let winner = if a.status == StatusCode::OK { &a } else { &b };
    assert_ne!(winner.body["etag"], etag.as_str());

    // Enable / disable reach the schedule state the scheduler reads.
    let disabled = api
        .call("POST", &format!("{flow_path}/action?op=disable"), None)
        .await;
    expect(&disabled, 200, "");
    assert_eq!(
        api.call("GET", &flow_path, None).await.body["items"][0]["state"],
        "disabled"
    );
    let schedule_state = api.state.registry().snapshot();
    assert_eq!(schedule_state.len(), 1);
    expect(
        &api.call(
            "POST",
            &format!("{flow_path}/action?op=ENABLE&subOp=APPLY"),
            None,
        )
        .await,
        200,
        "",
    );
    expect(
        &api.call("POST", &format!("{flow_path}/action?op=explode"), None)
            .await,
        400,
        "FLOW-1455-400",
    );

    // A connection a flow uses cannot be deleted; a connection PATCH that breaks the flow is refused.
    expect(
        &api.call("DELETE", &format!("{FS}/connections/{base_id}/"), None)
            .await,
        400,
        "FLOW-1418-400",
    );
    expect(
        &api.call(
            "DELETE",
            &format!("{FS}/sourceConnections/{source_id}"),
            None,
        )
        .await,
        400,
        "FLOW-1418-400",
    );
    let base_etag = api
        .call("GET", &format!("{FS}/connections/{base_id}"), None)
        .await
        .body["items"][0]["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(
        &api.call_with(
            "PATCH",
            &format!("{FS}/connections/{base_id}/"),
            Some(json!({"op": "replace", "path": "/connectionSpec/id", "value": "x"})),
            &[("if-match", &base_etag)],
        )
        .await,
        400,
        "FLOW-1414-400",
    );
    let renamed = api.call_with("PATCH", &format!("{FS}/connections/{base_id}"), Some(json!([{"op": "replace", "path": "/name", "value": "n2"}, {"op": "replace", "path": "/auth/params/password", "value": "***"}])), &[("if-match", &base_etag)]).await;
    expect(&renamed, 200, "");
    let stored = api.state.registry().snapshot();
    assert_eq!(
        stored[0].bundle.base.params["password"], PASSWORD,
        "a *** sent back keeps the secret"
    );

    expect(&api.call("DELETE", &flow_path, None).await, 204, "");
    assert!(
        api.state.registry().snapshot().is_empty(),
        "the deleted flow left the scheduler"
    );
    expect(
        &api.call("GET", &flow_path, None).await,
        404,
        "FLOW-1439-404",
    );
    expect(
        &api.call(
            "DELETE",
            &format!("{FS}/sourceConnections/{source_id}"),
            None,
        )
        .await,
        204,
        "",
    );
    expect(
        &api.call("DELETE", &format!("{FS}/connections/{base_id}/"), None)
            .await,
        204,
        "",
    );

    // Nothing secret in the state files.
    api.state.db().flush().unwrap();
    for entry in walk(&api.dir.path().join("state")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{} holds the password in clear",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_explore_and_runs_against_the_mock_api() {
    let mock = tributary_mockapi::start(
        tributary_mockapi::MockConfig {
            records: 250,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let api = Api::new();
    let [_, base_id, _, _, flow_id] = workflow(
        &api,
        &mock.base_url(),
        json!({"startTime": 4_102_444_800u64, "frequency": "once"}),
    )
    .await;

    let tested = api
        .call("GET", &format!("{FS}/connections/{base_id}/test"), None)
        .await;
    expect(&tested, 200, "");
    assert_eq!(tested.body["result"], true);
    let root = api
        .call("GET", &format!("{FS}/connections/{base_id}/explore"), None)
        .await;
    assert_eq!(root.body[0]["type"], "rest", "{}", root.body);
    let params = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        br#"{"listId":"10c097ca71"}"#,
    );
    let explored = api.call("GET", &format!("{FS}/connections/{base_id}/explore?objectType=rest&object=json&fileType=json&preview=true&sourceParams={params}"), None).await;
    expect(&explored, 200, "");
    assert_eq!(explored.body["format"], "hierarchical");
    assert!(
        explored.body["data"][0]["members"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        explored.body
    );
    assert!(
        explored.body["schema"]["properties"]
            .get("member")
            .or(explored.body["schema"]["properties"].get("id"))
            .is_some(),
        "{}",
        explored.body["schema"]
    );
    expect(
        &api.call(
            "GET",
            &format!("{FS}/connections/{base_id}/explore?objectType=rest&sourceParams=%%%"),
            None,
        )
        .await,
        400,
        "FLOW-1451-400",
    );

    // An ad hoc run of a window: recorded at once, then success with metrics and a batch.
    let created = api.call("POST", &format!("{FS}/runs"), Some(json!({"flowId": flow_id, "params": {"windowStartTime": "1500000000", "windowEndTime": 4_102_444_800_000u64}}))).await;
    expect(&created, 201, "");
    let run_id = created.body["id"].as_str().unwrap().to_owned();
    assert!(created.body["etag"].is_string());
    let run = wait_for_run(&api, &run_id).await;
    let summary = &run["metrics"]["recordSummary"];
    assert_eq!(summary["inputRecordCount"], 250, "{run}");
    assert_eq!(
        summary["outputRecordCount"].as_u64().unwrap()
            + summary["failedRecordCount"].as_u64().unwrap(),
        250
    );
    assert!(
        run["metrics"]["sizeSummary"]["inputBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        run["metrics"]["durationSummary"]["completedAtUTC"]
            .as_i64()
            .unwrap()
            >= run["metrics"]["durationSummary"]["startedAtUTC"]
                .as_i64()
                .unwrap()
    );
    let promotion = run["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "promotionActivity")
        .unwrap();
    let batch_id = promotion["targetInfo"][0]["reference"]["ids"][0]
        .as_str()
        .unwrap();
    let batch_dir = api
        .data_dir()
        .join("datasets/members")
        .join(format!("batch={batch_id}"));
    assert!(
        std::fs::read_dir(&batch_dir)
            .unwrap()
            .flatten()
            .any(|f| f.path().extension().is_some_and(|e| e == "parquet")),
        "{}",
        batch_dir.display()
    );
    let listed = api
        .call(
            "GET",
            &format!("{FS}/runs?property=flowId=={flow_id}"),
            None,
        )
        .await;
    assert_eq!(listed.body["items"][0]["id"], run_id.as_str());
    assert_eq!(listed.body["items"][0]["imsOrgId"], ORG);
    expect(
        &api.call(
            "POST",
            &format!("{FS}/runs"),
            Some(json!({"flowId": "nope"})),
        )
        .await,
        400,
        "FLOW-1430-400",
    );

    // Re-trigger runs the same window again as a new run.
    let again = api
        .call(
            "POST",
            &format!("{FS}/runs/{run_id}/action?op=re-trigger"),
            None,
        )
        .await;
    expect(&again, 200, "");
    let again_id = again.body["id"].as_str().unwrap().to_owned();
    assert_ne!(again_id, run_id);
    let rerun = wait_for_run(&api, &again_id).await;
    assert_eq!(
        rerun["params"]["windowEndTime"],
        run["params"]["windowEndTime"]
    );

    // PUT /runs/{id}: If-Match required, then the provider's metrics replace ours.
    let etag = rerun["etag"].as_str().unwrap().to_owned();
    expect(
        &api.call(
            "PUT",
            &format!("{FS}/runs/{again_id}"),
            Some(json!({"providerRefId": "p"})),
        )
        .await,
        400,
        "FLOW-1403-400",
    );
    let updated = api
        .call_with(
            "PUT",
            &format!("{FS}/runs/{again_id}"),
            Some(json!({"providerRefId": "p-1"})),
            &[("If-Match", &etag)],
        )
        .await;
    expect(&updated, 200, "");
    assert_eq!(updated.body["providerRefId"], "p-1");
    expect(
        &api.call_with(
            "PUT",
            &format!("{FS}/runs/{again_id}"),
            Some(json!({"providerRefId": "p-2"})),
            &[("If-Match", &etag)],
        )
        .await,
        412,
        "FLOW-1404-412",
    );
}

/// Two runs never work on one window at once: while an ad hoc run of a window is under way, a
/// second request for that window or an overlapping one is refused with 409 and records
/// nothing; an adjacent window runs beside it, and the window runs again once the first ended.
#[tokio::test]
async fn a_window_that_is_running_is_not_started_twice() {
    let mock = tributary_mockapi::start(
        tributary_mockapi::MockConfig {
            records: 300,
            faults: tributary_mockapi::Faults {
                latency: Duration::from_millis(1000),
                ..Default::default()
            },
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let api = Api::new();
    let [.., flow_id] = workflow(
        &api,
        &mock.base_url(),
        json!({"startTime": 4_102_444_800u64, "frequency": "once"}),
    )
    .await;
    let run_of = |start: u64, end: u64| json!({"flowId": flow_id, "params": {"windowStartTime": start, "windowEndTime": end}});
    let first = api
        .call(
            "POST",
            &format!("{FS}/runs"),
            Some(run_of(1_500_000_000_000, 1_600_000_000_000)),
        )
        .await;
    expect(&first, 201, "");
    let first_id = first.body["id"].as_str().unwrap().to_owned();
    for (start, end) in [
        (1_500_000_000_000, 1_600_000_000_000),
        (1_550_000_000_000, 1_650_000_000_000),
    ] {
        let refused = api
            .call("POST", &format!("{FS}/runs"), Some(run_of(start, end)))
            .await;
        expect(&refused, 409, "FLOW-1409-409");
        assert!(
            refused.body.to_string().contains("already running"),
            "{}",
            refused.body
        );
    }
    let beside = api
        .call(
            "POST",
            &format!("{FS}/runs"),
            Some(run_of(1_600_000_000_000, 1_700_000_000_000)),
        )
        .await;
    expect(&beside, 201, "");
    let listed = api
        .call(
            "GET",
            &format!("{FS}/runs?property=flowId=={flow_id}&count=true"),
            None,
        )
        .await;
    assert_eq!(listed.body["count"], 2, "{}", listed.body);

    wait_for_run(&api, &first_id).await;
    wait_for_run(&api, beside.body["id"].as_str().unwrap()).await;
    let again = api
        .call(
            "POST",
            &format!("{FS}/runs"),
            Some(run_of(1_500_000_000_000, 1_600_000_000_000)),
        )
        .await;
    expect(&again, 201, "");
    wait_for_run(&api, again.body["id"].as_str().unwrap()).await;
}

async fn wait_for_run(api: &Api, run_id: &str) -> Value {
    for _ in 0..300 {
        let reply = api.call("GET", &format!("{FS}/runs/{run_id}"), None).await;
        let run = reply.body["items"][0].clone();
        let status = run["metrics"]["statusSummary"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status == "success" {
            return run;
        }
        assert_ne!(status, "failed", "{run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not finish in 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_prep_mapping_sets_versions_preview_and_expressions() {
    let api = Api::new();
    let legacy = json!({"version": 0, "xdmSchema": "https://ns.example/schemas/members", "xdmVersion": "1.0", "id": null,
        "mappings": [{"destinationXdmPath": "person.name.firstName", "sourceAttribute": "merge_fields.FNAME", "identity": false, "version": 0}]});
    let created = api
        .call("POST", &format!("{DP}/mappingSets"), Some(legacy))
        .await;
    expect(&created, 200, "");
    assert_eq!(created.body["version"], 0);
    assert!(created.body["createdDate"].as_i64().unwrap() > 1_600_000_000_000);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let current = json!({"outputSchema": {"schemaRef": {"id": "https://ns.example/schemas/members", "contentType": "application/vnd.adobe.xed-full+json;version=1"}},
        "mappings": [{"sourceType": "EXPRESSION", "source": "upper(merge_fields.FNAME)", "destination": "person.name.firstName"}, {"sourceType": "ATTRIBUTE", "source": "id", "destination": "_id"}]});
    let put = api
        .call(
            "PUT",
            &format!("{DP}/mappingSets/{id}"),
            Some(current.clone()),
        )
        .await;
    expect(&put, 200, "");
    assert_eq!(put.body["version"], 1);
    let v0 = api
        .call("GET", &format!("{DP}/mappingSets/{id}?version=0"), None)
        .await;
    assert_eq!(
        v0.body["mappings"][0]["destinationXdmPath"], "person.name.firstName",
        "{}",
        v0.body
    );
    let latest = api
        .call("GET", &format!("{DP}/mappingSets/{id}"), None)
        .await;
    assert_eq!(latest.body["mappings"].as_array().unwrap().len(), 2);
    expect(
        &api.call("GET", &format!("{DP}/mappingSets/{id}?version=7"), None)
            .await,
        400,
        "FLOW-1412-400",
    );
    let mappings = api
        .call("GET", &format!("{DP}/mappingSets/{id}/mappings"), None)
        .await;
    let mapping_id = mappings.body[1]["id"].as_str().unwrap().to_owned();
    let one = api
        .call(
            "GET",
            &format!("{DP}/mappingSets/{id}/mappings/{mapping_id}"),
            None,
        )
        .await;
    assert_eq!(one.body["destination"], "_id");
    let list = api
        .call("GET", &format!("{DP}/mappingSets?limit=10&start=0"), None)
        .await;
    assert_eq!(list.body["_page"]["count"], 1);
    assert_eq!(list.body["data"][0]["id"], id.as_str());

    let mut broken = current.clone();
    broken["mappings"][0]["source"] = json!("upper(merge_fields.FNAME");
    let validated = api
        .call(
            "POST",
            &format!("{DP}/mappingSets/validate"),
            Some(broken.clone()),
        )
        .await;
    assert_eq!(
        validated.body["validationResponse"][0]["status"], "FAILED",
        "{}",
        validated.body
    );
    assert_eq!(validated.body["validationResponse"][1]["status"], "SUCCESS");
    expect(
        &api.call("POST", &format!("{DP}/mappingSets"), Some(broken))
            .await,
        400,
        "FLOW-1455-400",
    );

    let preview = api.call("POST", &format!("{DP}/mappingSets/preview"), Some(json!({"data": [{"id": "1", "merge_fields": {"FNAME": "jim"}}], "mappingSet": current}))).await;
    expect(&preview, 200, "");
    assert_eq!(
        preview.body[0]["data"]["person"]["name"]["firstName"], "JIM",
        "{}",
        preview.body
    );
    assert_eq!(preview.body[0]["errors"], Value::Null);

    let valid = api.call("POST", &format!("{DP}/languages/el/validate"), Some(json!({"expression": "concat(a, \"-\", lower(b))", "sampleData": "{\"a\": \"x\", \"b\": \"Y\"}"}))).await;
    assert_eq!(valid.body, json!(true));
    let invalid = api
        .call(
            "POST",
            &format!("{DP}/languages/el/validate"),
            Some(json!({"expression": "concat(a, "})),
        )
        .await;
    expect(&invalid, 400, "FLOW-1455-400");
    let functions = api
        .call("GET", &format!("{DP}/languages/el/functions"), None)
        .await;
    assert!(
        functions
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "concat")
    );
    let operators = api
        .call("GET", &format!("{DP}/languages/el/operators"), None)
        .await;
    // Every operator listed is one the parser takes.
    for operator in operators.body.as_array().unwrap() {
        let symbol = operator["operator"].as_str().unwrap();
        let expression = match symbol {
            "?:" => "a ? 1 : 2".to_owned(),
            "!" => "!a".to_owned(),
            other => format!("1 {other} 2"),
        };
        let reply = api
            .call(
                "POST",
                &format!("{DP}/languages/el/validate"),
                Some(json!({"expression": expression})),
            )
            .await;
        assert_eq!(reply.body, json!(true), "{expression}: {}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_adobe_and_matches_the_router() {
    let api = Api::new();
    let doc = api.call("GET", "/openapi.json", None).await.body;
    assert_eq!(doc["openapi"], "3.0.3");
    let normalize = |path: &str| -> String {
        path.split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "{}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let ours: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_ascii_uppercase(), normalize(path)))
        })
        .collect();
    for (prefix, operations) in [(FS, &ADOBE_FLOW_SERVICE[..]), (DP, &ADOBE_DATA_PREP[..])] {
        for (method, path) in operations {
            let wanted = (method.to_string(), normalize(&format!("{prefix}{path}")));
            assert!(
                ours.contains(&wanted),
                "{method} {prefix}{path} is not in /openapi.json"
            );
        }
    }
    // Every $ref resolves; every documented operation is routed (never the no-route 404).
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    for (method, path) in &ours {
        let concrete = path.replace("{}", "x");
        let reply = api.call_with(method, &concrete, None, &[]).await;
        assert_ne!(
            code(&reply),
            "FLOW-1101-404",
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    let health = api.call("GET", "/health", None).await;
    expect(&health, 200, "");
    assert_eq!(health.body["state"]["open"], true);
    api.state.set_scheduler_running(false);
    expect(&api.call("GET", "/health", None).await, 503, "");
}
