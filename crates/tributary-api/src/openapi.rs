//! The operation table: every operation of the API — method, path, handler, parameters, body
//! and responses — in one list. [`router`] mounts the handlers from it and [`document`] writes
//! `/openapi.json` from it, so the served document and the served routes cannot drift apart.
//!
//! Where Adobe's OpenAPI documents and their docs disagree on a response that can only match
//! one of them, we follow the docs and say so in the operation's description (explore's object
//! responses, Data Prep's epoch-ms dates, the list of mappings as an array, preview as an array).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::http::{MAX_BODY_BYTES, authenticate, no_method, no_route, request_context};
use crate::{ApiState, dataprep, explore, flows, flowservice as fs, runs};

const FS: &str = "/data/foundation/flowservice";

/// One operation of the API.
pub struct Operation {
    pub method: &'static str,
    /// The full path with `{param}` segments (the same syntax axum and OpenAPI use).
    pub path: String,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub query: Vec<(&'static str, Value, &'static str)>,
    pub if_match: IfMatch,
    /// Request body schema name and whether it is required.
    pub body: Option<(&'static str, bool)>,
    pub ok: (u16, Option<&'static str>),
    pub description: &'static str,
    handler: MethodRouter<ApiState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    No,
    Optional,
    Required,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

fn op(
    method: &'static str,
    path: &str,
    operation_id: &'static str,
    summary: &'static str,
    handler: MethodRouter<ApiState>,
) -> Operation {
    let tag = if path.starts_with(FS) {
        path[FS.len() + 1..]
            .split('/')
            .next()
            .unwrap_or("flowservice")
    } else {
        "dataPrep"
    };
    let tag: &'static str = match tag {
        "connectionSpecs" => "Connection specs",
        "flowSpecs" => "Flow specs",
        "connections" => "Connections",
        "sourceConnections" => "Source connections",
        "targetConnections" => "Target connections",
        "flows" => "Flows",
        "runs" => "Runs",
        _ => "Data Prep",
    };
    Operation {
        method,
        path: path.to_owned(),
        operation_id,
        summary,
        tag,
        query: Vec::new(),
        if_match: IfMatch::No,
        body: None,
        ok: (200, None),
        description: "",
        handler,
    }
}

impl Operation {
    fn ok(mut self, status: u16, schema: &'static str) -> Self {
        self.ok = (
            status,
            if schema.is_empty() {
                None
            } else {
                Some(schema)
            },
        );
        self
    }
    fn body(mut self, schema: &'static str) -> Self {
        self.body = Some((schema, true));
        self
    }
    fn optional_body(mut self, schema: &'static str) -> Self {
        self.body = Some((schema, false));
        self
    }
    fn if_match(mut self, if_match: IfMatch) -> Self {
        self.if_match = if_match;
        self
    }
    fn query(mut self, name: &'static str, schema: Value, description: &'static str) -> Self {
        self.query.push((name, schema, description));
        self
    }
    fn listing(self) -> Self {
        self.query("property", json!({"type": "string"}), "a filter `path op value` (==, !=, >, <, >=, <=; comma = IN; repeat to AND; `a.b`, `a[]`), or a comma list of fields to return")
            .query("orderby", json!({"type": "string"}), "field, +field or -field")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "page size (default 100)")
            .query("continuationToken", json!({"type": "string"}), "from _links.next.href")
            .query("count", json!({"type": "boolean"}), "true: only {\"count\": N}; not with limit")
    }
    fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }
    fn tagged(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }
}

/// Every operation, in the order of the document.
pub fn operations() -> Vec<Operation> {
    let fs = |rest: &str| format!("{FS}{rest}");
    let dp = |rest: &str| format!("/data/foundation/conversion{rest}");
    let action = |o: Operation, ops: &'static str| {
        o.query("op", json!({"type": "string"}), ops)
            .query(
                "subOp",
                json!({"type": "string"}),
                "APPLY, ROLLBACK or PROGRESS (optional)",
            )
            .optional_body("StateAction")
    };
    vec![
        // Connection specs.
        op("get", &fs("/connectionSpecs"), "listConnectionSpecs", "List connection specs", get(fs::list_connection_specs)).listing().ok(200, "EntityList"),
        op("post", &fs("/connectionSpecs"), "createConnectionSpec", "Create a connection spec", post(fs::create_connection_spec)).body("ConnectionSpecBody").ok(201, "Entity"),
        op("get", &fs("/connectionSpecs/{CONNECTION_SPEC_ID}"), "retrieveConnectionSpec", "Get a connection spec", get(fs::get_connection_spec)).ok(200, "Items"),
        op("put", &fs("/connectionSpecs/{CONNECTION_SPEC_ID}"), "updateConnectionSpec", "Replace a connection spec", put(fs::put_connection_spec)).body("ConnectionSpecBody").if_match(IfMatch::Optional).ok(200, "Entity"),
        op("get", &fs("/connectionSpecs/{CONNECTION_SPEC_ID}/explore"), "exploreByConnectionSpecId", "Objects a connection of this spec can explore", get(fs::explore_connection_spec)).ok(200, "ObjectList"),
        op("get", &fs("/connectionSpecs/{CONNECTION_SPEC_ID}/configs"), "configByConnectionSpecId", "Inputs of a connection of this spec (authSpecs, sourceSpec.spec)", get(fs::configs_connection_spec)).ok(200, "ObjectList"),
        // Flow specs.
        op("get", &fs("/flowSpecs"), "listFlowSpecs", "List flow specs (RestStorageToAEP is built in)", get(fs::list_flow_specs)).listing().ok(200, "EntityList"),
        op("post", &fs("/flowSpecs"), "createFlowSpec", "Create a flow spec", post(fs::create_flow_spec)).body("FlowSpecBody").ok(201, "Entity"),
        op("get", &fs("/flowSpecs/{FLOW_SPEC_ID}"), "retrieveFlowSpec", "Get a flow spec", get(fs::get_flow_spec)).ok(200, "Items"),
        op("put", &fs("/flowSpecs/{FLOW_SPEC_ID}"), "updateFlowSpec", "Replace a flow spec (e.g. append a connection spec id to sourceConnectionSpecIds)", put(fs::put_flow_spec)).body("FlowSpecBody").if_match(IfMatch::Optional).ok(200, "Entity"),
        op("post", &fs("/flowSpecs/search"), "searchFlowSpecs", "Search flow specs", post(fs::search_flow_specs)).body("Search").ok(200, "EntityList")
            .describe("queryString holds property filters joined by & (the syntax of the property parameter)"),
        // Base connections.
        op("get", &fs("/connections"), "listConnections", "List base connections", get(fs::list_connections)).listing().ok(200, "EntityList"),
        op("post", &fs("/connections"), "createConnection", "Create a base connection", post(fs::create_connection)).body("ConnectionBody").ok(201, "IdEtag"),
        op("post", &fs("/connections/search"), "getConnectionsByFilters", "Search base connections", post(fs::search_connections)).body("Search").query("continuationToken", json!({"type": "string"}), "from _links.next.href").ok(200, "EntityList")
            .describe("queryString holds property filters joined by & (the syntax of the property parameter)"),
        op("get", &fs("/connections/{BASE_CONNECTION_ID}"), "retrieveConnection", "Get a base connection (secrets masked)", get(fs::get_connection)).ok(200, "Items"),
        op("patch", &fs("/connections/{BASE_CONNECTION_ID}"), "patchConnectionNoSlash", "Patch a base connection", patch(fs::patch_connection)).body("Patch").if_match(IfMatch::Required).ok(200, "IdEtag"),
        op("delete", &fs("/connections/{BASE_CONNECTION_ID}"), "deleteConnectionNoSlash", "Delete a base connection (refused while a flow uses it)", delete(fs::delete_connection)).ok(204, ""),
        op("patch", &fs("/connections/{BASE_CONNECTION_ID}/"), "patchConnection", "Patch a base connection", patch(fs::patch_connection)).body("Patch").if_match(IfMatch::Required).ok(200, "IdEtag"),
        op("delete", &fs("/connections/{BASE_CONNECTION_ID}/"), "deleteConnection", "Delete a base connection (refused while a flow uses it)", delete(fs::delete_connection)).ok(204, ""),
        op("get", &fs("/connections/{BASE_CONNECTION_ID}/test"), "testConnection", "Call the connection's authorizationTestUrl with its credentials", get(explore::test_connection)).ok(200, "TestResult"),
        op("get", &fs("/connections/{BASE_CONNECTION_ID}/explore"), "getByConnectionId", "Explore: the object list, or the first page and its schema", get(explore::explore_connection))
            .query("objectType", json!({"type": "string", "enum": ["root", "rest", "ROOT", "REST"]}), "root (default): the object list; rest: the first page")
            .query("object", json!({"type": "string"}), "json for REST sources")
            .query("fileType", json!({"type": "string", "enum": ["json", "JSON"]}), "json")
            .query("preview", json!({"type": "boolean"}), "true: include the first page in data")
            .query("sourceParams", json!({"type": "string"}), "base64 of a JSON object of source params")
            .ok(200, "Explore")
            .describe("objectType=rest answers the documented object {format, schema, data}, not the array of the OpenAPI document; objectType=root answers the array"),
        op("get", &fs("/connections/{BASE_CONNECTION_ID}/configs"), "exploreConfigByConnectionId", "Inputs of the connection's spec, with the authSpec in use marked", get(fs::connection_configs)).ok(200, "ObjectList"),
        action(op("post", &fs("/connections/{BASE_CONNECTION_ID}/action"), "performAction", "Record a life-cycle step (FINALIZE_UPDATE, FINALIZE, PUBLISH)", post(fs::connection_action)), "FINALIZE_UPDATE, FINALIZE or PUBLISH").ok(200, "IdEtag"),
        // Source connections.
        op("get", &fs("/sourceConnections"), "getSourceConnections", "List source connections", get(fs::list_source_connections)).listing().ok(200, "EntityList"),
        op("post", &fs("/sourceConnections"), "createSourceConnection", "Create a source connection (params checked against sourceSpec.spec)", post(fs::create_source_connection)).body("SourceConnectionBody").ok(201, "IdEtag"),
        op("get", &fs("/sourceConnections/{SOURCE_CONNECTION_ID}"), "retrieveSourceConnection", "Get a source connection", get(fs::get_source_connection)).ok(200, "Items"),
        op("patch", &fs("/sourceConnections/{SOURCE_CONNECTION_ID}"), "patchSourceConnection", "Patch a source connection", patch(fs::patch_source_connection)).body("Patch").if_match(IfMatch::Required).ok(200, "IdEtagItems")
            .describe("answers {id, etag} (the docs) and items (the OpenAPI document) together"),
        op("delete", &fs("/sourceConnections/{SOURCE_CONNECTION_ID}"), "deleteSourceConnection", "Delete a source connection (refused while a flow uses it)", delete(fs::delete_source_connection)).ok(204, ""),
        action(op("post", &fs("/sourceConnections/{SOURCE_CONNECTION_ID}/action"), "performAction_1", "Record a life-cycle step (PUBLISH)", post(fs::source_connection_action)), "PUBLISH").ok(200, "IdEtag"),
        // Target connections.
        op("get", &fs("/targetConnections"), "getTargetConnections", "List target connections", get(fs::list_target_connections)).listing().ok(200, "EntityList"),
        op("post", &fs("/targetConnections"), "createTargetConnection", "Create a target connection (Data Lake, params.dataSetId)", post(fs::create_target_connection)).body("TargetConnectionBody").ok(201, "IdEtag"),
        op("get", &fs("/targetConnections/{TARGET_CONNECTION_ID}"), "retrieveTargetConnection", "Get a target connection", get(fs::get_target_connection)).ok(200, "Items"),
        op("patch", &fs("/targetConnections/{TARGET_CONNECTION_ID}"), "patchTargetConnection", "Patch a target connection", patch(fs::patch_target_connection)).body("Patch").if_match(IfMatch::Required).ok(200, "IdEtagItems")
            .describe("answers {id, etag} (the docs) and items (the OpenAPI document) together"),
        op("delete", &fs("/targetConnections/{TARGET_CONNECTION_ID}"), "deleteTargetConnection", "Delete a target connection (refused while a flow uses it)", delete(fs::delete_target_connection)).ok(204, ""),
        action(op("post", &fs("/targetConnections/{TARGET_CONNECTION_ID}/action"), "performAction_2", "Record a life-cycle step (PUBLISH)", post(fs::target_connection_action)), "PUBLISH").ok(200, "IdEtag"),
        // Flows.
        op("get", &fs("/flows"), "listFlows", "List flows", get(flows::list_flows)).listing().ok(200, "EntityList"),
        op("post", &fs("/flows"), "createFlow", "Create a flow: it is scheduled at once", post(flows::create_flow)).body("FlowBody").ok(201, "IdEtag"),
        op("post", &fs("/flows/search"), "getFlowsByFilters", "Search flows", post(fs::search_flows)).body("Search").query("continuationToken", json!({"type": "string"}), "from _links.next.href").ok(200, "EntityList")
            .describe("queryString holds property filters joined by & (the syntax of the property parameter)"),
        op("get", &fs("/flows/{FLOW_ID}"), "retrieveFlow", "Get a flow (with lastRunDetails)", get(flows::get_flow)).ok(200, "Items"),
        op("patch", &fs("/flows/{FLOW_ID}"), "patchFlow", "Patch a flow (refused, with nothing changed, when the result is not valid)", patch(flows::patch_flow)).body("Patch").if_match(IfMatch::Required).ok(200, "IdEtag"),
        op("delete", &fs("/flows/{FLOW_ID}"), "deleteByFlow", "Delete a flow: the scheduler drops it", delete(flows::delete_flow)).ok(204, ""),
        action(op("post", &fs("/flows/{FLOW_ID}/action"), "postStateTransition", "Enable or disable a flow (or record FINALIZE_UPDATE, FINALIZE, PUBLISH)", post(flows::flow_action)), "enable, disable, FINALIZE_UPDATE, FINALIZE or PUBLISH (any case)").if_match(IfMatch::Optional).ok(200, "IdEtag"),
        // Runs.
        op("get", "/ui/api/flows", "operatorFlows", "Flows with state, schedule, next run, lag, last run and consecutive failures (the dashboard's and `tributary flows`' view)", get(crate::ui::list_flows)).tagged("Operator")
            .query("offset", json!({"type": "integer", "minimum": 0}), "flows to skip (by name)")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 500}), "flows to return (default 50)").ok(200, "Object"),
        op("get", "/ui/api/runs", "operatorRuns", "The newest run objects of the tenant or of one flow", get(crate::ui::list_runs)).tagged("Operator")
            .query("flow", json!({"type": "string"}), "a flow id or name")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 500}), "runs to return (default 50)").ok(200, "Object"),
        op("get", "/ui/api/runs/{RUN_ID}/rejected", "operatorRejectedRows", "The first rejected rows a run kept (record and reasons)", get(crate::ui::rejected_rows)).tagged("Operator")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 50}), "rows to return (default 10)").ok(200, "Object"),
        op("get", &fs("/runs"), "listFlowRuns", "List runs (property=flowId==…)", get(runs::list_runs)).listing().ok(200, "RunList"),
        op("post", &fs("/runs"), "createFlowRun", "Start an ad hoc run of a window", post(runs::create_run)).body("RunBody").ok(201, "Run")
            .describe("answers the whole run (the docs), which holds the {id, etag} of the OpenAPI document"),
        op("get", &fs("/runs/{RUN_ID}"), "retrieveFlowRun", "Get a run with its metrics and activities", get(runs::get_run)).ok(200, "RunList"),
        op("put", &fs("/runs/{RUN_ID}"), "updateRun", "Provider-side update of a finished run's metrics and activities", put(runs::put_run)).body("RunUpdate").if_match(IfMatch::Required).ok(200, "Run"),
        op("post", &fs("/runs/{RUN_ID}/action"), "postAction", "Re-trigger: run the run's window again", post(runs::run_action)).query("op", json!({"type": "string"}), "re-trigger (or RE_TRIGGER)").if_match(IfMatch::Optional).optional_body("StateAction").ok(200, "Run"),
        // Data Prep.
        op("post", &dp("/languages/el/validate"), "validateExpression", "Validate an expression (and evaluate it on sampleData)", post(dataprep::validate_expression)).body("ExpressionBody").ok(200, "Boolean"),
        op("get", &dp("/languages/el/functions"), "listMappingSetFunctions", "The function library", get(dataprep::list_functions)).ok(200, "ObjectList"),
        op("get", &dp("/languages/el/operators"), "listMappingSetOperators", "The operators", get(dataprep::list_operators)).ok(200, "ObjectList"),
        op("get", &dp("/mappingSets"), "listMappingSets", "List mapping sets", get(dataprep::list_mapping_sets))
            .query("limit", json!({"type": "integer", "minimum": 0, "maximum": 1000}), "page size (default 10)")
            .query("start", json!({"type": "integer", "minimum": 0}), "offset (default 0)")
            .query("name", json!({"type": "string"}), "part of the name")
            .query("orderBy", json!({"type": "string"}), "+createdDate, -createdDate, +updatedDate, -updatedDate (default -lastUpdateDate)")
            .query("expandSchema", json!({"type": "boolean"}), "accepted; schemas are not expanded")
            .query("property", json!({"type": "string"}), "a filter such as status==DRAFT")
            .ok(200, "MappingSetPage").describe("dates are epoch milliseconds (the docs), not date-time strings"),
        op("post", &dp("/mappingSets"), "createMappingSet", "Create a mapping set (version 0)", post(dataprep::create_mapping_set)).body("MappingSetBody").ok(200, "MappingSetSimple")
            .query("validate", json!({"type": "boolean"}), "true: validate only")
            .describe("answers 200 as Data Prep does; dates are epoch milliseconds"),
        op("post", &dp("/mappingSets/validate"), "validateMappingSet", "Validate a mapping set, mapping by mapping", post(dataprep::validate_mapping_set)).body("MappingSetBody").ok(200, "MappingValidation"),
        op("post", &dp("/mappingSets/preview"), "previewMappingSet", "Map sample records", post(dataprep::preview_mapping_set)).body("PreviewBody").ok(200, "Preview")
            .describe("answers one {data, errors} per record, an array (the docs)"),
        op("get", &dp("/mappingSets/{MAPPING_SET_ID}"), "retrieveMappingSet", "Get a mapping set (a version with ?version=)", get(dataprep::get_mapping_set))
            .query("version", json!({"type": "integer", "minimum": 0}), "the version (default: the newest)")
            .query("expandSchema", json!({"type": "boolean"}), "accepted; schemas are not expanded")
            .ok(200, "MappingSet"),
        op("put", &dp("/mappingSets/{MAPPING_SET_ID}"), "putMappingSet", "Store a new version of a mapping set", put(dataprep::put_mapping_set)).body("MappingSetBody").ok(200, "MappingSet"),
        op("get", &dp("/mappingSets/{MAPPING_SET_ID}/mappings"), "listMappings", "The mappings of a mapping set", get(dataprep::list_mappings)).ok(200, "ObjectList")
            .describe("answers an array of mappings (the docs), not the single object of the OpenAPI document"),
        op("get", &dp("/mappingSets/{MAPPING_SET_ID}/mappings/{MAPPING_ID}"), "retrieveMapping", "One mapping", get(dataprep::get_mapping)).ok(200, "Object"),
    ]
}

/// The router: every operation behind the gateway checks, plus `/health` and `/openapi.json`.
pub fn router(state: ApiState) -> axum::Router {
    let mut api = axum::Router::new();
    for operation in operations() {
        api = api.route(&operation.path, operation.handler);
    }
    // Route layers run last-added first: credentials, then the view of a shared state.
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cluster::sync_before_request,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    axum::Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/", get(crate::ui::index))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(request_context))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}

fn panicked(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handling a request", "a handler panicked").into_response()
}

/// Liveness and readiness: 200 when state answers and the scheduler runs, 503 otherwise.
async fn health(State(state): State<ApiState>) -> Response {
    let state_open = state
        .engine()
        .db
        .schedule_state(&tributary_state::FlowId::new(""))
        .is_ok();
    let scheduler_running = state
        .inner
        .scheduler_running
        .load(std::sync::atomic::Ordering::SeqCst);
    let ready = state_open && scheduler_running;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": if ready { "ok" } else { "unavailable" },
        "live": true,
        "ready": ready,
        "state": {"open": state_open},
        "scheduler": {"running": scheduler_running, "flows": state.registry().snapshot().len()},
    });
    if let Some(node) = node_health(&state).await {
        body["node"] = node;
    }
    (status, Json(body)).into_response()
}

/// On a node of a shared state: its id, the flows it holds leases of (with the windows its
/// runs work on now), the live nodes and its shares of the hosts' rate limits. None for a
/// single process.
async fn node_health(state: &ApiState) -> Option<Value> {
    let engine = state.engine().clone();
    let node_id = engine.db.node_id()?.to_string();
    let held = engine.db.held_leases_snapshot();
    let leases: Vec<Value> = held
        .iter()
        .map(|(flow_id, token)| {
            let windows: Vec<Value> = engine
                .running
                .windows_of(flow_id)
                .into_iter()
                .map(|window| match window {
                    Some((start, end)) => json!({"startMs": start, "endMs": end}),
                    None => Value::Null,
                })
                .collect();
            json!({"flowId": flow_id.as_str(), "token": token, "windows": windows})
        })
        .collect();
    let db = engine.db.clone();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let live = tokio::task::spawn_blocking(move || db.live_nodes(now_ms)).await;
    let live_nodes = match live {
        Ok(Ok(nodes)) => Value::Array(
            nodes
                .into_iter()
                .map(|node| {
                    json!({"id": node.node_id.as_str(), "listen": node.listen, "pid": node.pid,
                           "heartbeatAtMs": node.heartbeat_at_ms, "leasesHeld": node.leases_held})
                })
                .collect(),
        ),
        _ => Value::Null,
    };
    // Each node's share of the rate limits of the hosts it calls now.
    let host_shares: Vec<Value> = engine
        .fetch
        .limiters
        .shares()
        .into_iter()
        .map(|share| {
            json!({"origin": share.origin, "nodes": share.nodes,
                   "requestsPerSecond": share.requests_per_second})
        })
        .collect();
    Some(json!({
        "id": node_id,
        "leaseTtlSecs": engine.db.lease_ttl().map(|ttl| ttl.as_secs_f64()),
        "leases": leases,
        "liveNodes": live_nodes,
        "hostShares": host_shares,
    }))
}

async fn live() -> Json<Value> {
    Json(json!({"status": "ok", "live": true}))
}

async fn openapi_json() -> Json<Value> {
    Json(document())
}

/// Our OpenAPI document, written from the operation table.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for operation in operations() {
        let mut parameters: Vec<Value> = Vec::new();
        for segment in operation.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                parameters.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for (name, schema, description) in &operation.query {
            parameters.push(json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description}));
        }
        parameters.push(json!({"name": "x-gw-ims-org-id", "in": "header", "required": true, "schema": {"type": "string"}, "description": "the IMS org"}));
        parameters.push(json!({"name": "x-sandbox-name", "in": "header", "required": true, "schema": {"type": "string"}, "description": "the sandbox, lower case (e.g. prod)"}));
        match operation.if_match {
            IfMatch::No => {}
            IfMatch::Optional | IfMatch::Required => parameters.push(json!({
                "name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"},
                "description": if operation.if_match == IfMatch::Required { "the etag; required (or as the if-match query parameter)" } else { "the etag (optional)" },
            })),
        }
        let mut responses = Map::new();
        let ok = match operation.ok.1 {
            Some(schema) => {
                json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
            }
            None => json!({"description": "success, no body"}),
        };
        responses.insert(operation.ok.0.to_string(), ok);
        for (status, what) in [
            ("400", "bad request: every problem with its JSON pointer"),
            ("401", "missing or invalid token"),
            ("403", "missing or invalid API key, or another org"),
            ("404", "no such resource in this org and sandbox"),
            ("409", "a run of the flow's window is already under way"),
            ("412", "If-Match does not match the current etag"),
            ("413", "body too large"),
        ] {
            responses.insert(status.to_owned(), json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        }
        responses.insert("default".to_owned(), json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        let mut entry = json!({
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "parameters": parameters,
            "responses": responses,
            "security": [{"bearer": [], "apiKey": []}],
        });
        if !operation.description.is_empty() {
            entry["description"] = json!(operation.description);
        }
        if let Some((schema, required)) = operation.body {
            entry["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        let path_item = paths
            .entry(operation.path.clone())
            .or_insert_with(|| json!({}));
        path_item[operation.method] = entry;
    }
    paths.insert("/health".to_owned(), json!({"get": {
        "operationId": "health", "summary": "Liveness and readiness (state open, scheduler running)", "tags": ["Service"],
        "responses": {"200": {"description": "ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                      "503": {"description": "not ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}}));
    paths.insert("/health/live".to_owned(), json!({"get": {
        "operationId": "live", "summary": "Liveness", "tags": ["Service"],
        "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": {"type": "object"}}}}}}}));
    paths.insert("/metrics".to_owned(), json!({"get": {
        "operationId": "metrics", "summary": "Operator metrics in the Prometheus text format (no org headers; a bearer token when api.metrics_bearer_token is set)", "tags": ["Service"],
        "responses": {"200": {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": {"description": "the metrics token is missing or wrong"}}}}));
    paths.insert("/openapi.json".to_owned(), json!({"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["Service"],
        "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}}}));
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tributary: Flow Service and Data Prep compatible API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Flow Service (/data/foundation/flowservice) and Data Prep (/data/foundation/conversion) operations tributary serves, generated from its operation table. Errors are the Flow Service body {type: .../FLOW-nnnn-status, title, status, report: {detailed-message, request-id, errors: [{path, message}]}} or the gateway body {error_code, message}.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        }},
    })
}

fn schemas() -> Value {
    let object = json!({"type": "object"});
    let entity =
        json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}});
    json!({
        "Error": {"type": "object", "description": "Flow Service error {type, title, status, report} or gateway error {error_code, message}",
                  "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "report": {"type": "object"}, "error_code": {"type": "string"}, "message": {"type": "string"}}},
        "Object": object,
        "ObjectList": {"type": "array", "items": {"type": "object"}},
        "Boolean": {"type": "boolean"},
        "Entity": entity,
        "Items": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": entity}}},
        "EntityList": {"type": "object", "properties": {"items": {"type": "array", "items": entity}, "_links": {"type": "object"}, "count": {"type": "integer"}}},
        "IdEtag": {"type": "object", "required": ["id", "etag"], "properties": {"id": {"type": "string"}, "etag": {"type": "string"}}},
        "IdEtagItems": {"type": "object", "required": ["id", "etag", "items"], "properties": {"id": {"type": "string"}, "etag": {"type": "string"}, "items": {"type": "array", "items": entity}}},
        "Run": {"type": "object", "required": ["id", "flowId", "etag"], "properties": {
            "id": {"type": "string"}, "flowId": {"type": "string"}, "etag": {"type": "string"},
            "metrics": {"type": "object"}, "activities": {"type": "array", "items": {"type": "object"}}}},
        "RunList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}, "_links": {"type": "object"}, "count": {"type": "integer"}}},
        "TestResult": {"type": "object", "required": ["result"], "properties": {"result": {"type": "boolean"}}},
        "Explore": {"oneOf": [
            {"type": "array", "items": {"type": "object"}},
            {"type": "object", "required": ["format", "schema"], "properties": {"format": {"type": "string"}, "schema": {"type": "object"}, "data": {"type": "array"}}},
        ]},
        "Health": {"type": "object", "required": ["status", "ready"], "properties": {"status": {"type": "string"}, "ready": {"type": "boolean"},
            "node": {"type": "object", "description": "only on a node of a shared (Postgres) state: {id, leaseTtlSecs, leases: [{flowId, token, windows: [{startMs, endMs}]}], liveNodes: [{id, listen, pid, heartbeatAtMs, leasesHeld}], hostShares: [{origin, nodes, requestsPerSecond}]}"}}},
        "ConnectionSpecBody": {"type": "object", "description": "a Self-Serve Sources connection spec (name, authSpec, sourceSpec, exploreSpec, ...)"},
        "FlowSpecBody": {"type": "object", "description": "a flow spec (name, sourceConnectionSpecIds, targetConnectionSpecIds, ...)"},
        "ConnectionBody": {"type": "object", "description": "{name, description, auth: {specName, params}, connectionSpec: {id, version}}"},
        "SourceConnectionBody": {"type": "object", "description": "{name, baseConnectionId, connectionSpec, data: {format}, params}"},
        "TargetConnectionBody": {"type": "object", "description": "{name, connectionSpec: {id: c604ff05-7f1a-43c0-8e18-33bf874cb11c}, data, params: {dataSetId}}"},
        "FlowBody": {"type": "object", "description": "{name, flowSpec, sourceConnectionIds, targetConnectionIds, transformations, scheduleParams, options}"},
        "RunBody": {"type": "object", "description": "{flowId, params: {windowStartTime, windowEndTime}} (epoch seconds or milliseconds)"},
        "RunUpdate": {"type": "object", "description": "{metrics, activities, providerRefId}"},
        "StateAction": {"type": "object"},
        "Search": {"type": "object", "properties": {"queryString": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000}, "orderby": {"type": "string"}, "count": {"type": "boolean"}}},
        "PatchOperation": {"type": "object", "required": ["op", "path"], "properties": {"op": {"type": "string", "enum": ["add", "replace", "remove", "ADD", "REPLACE", "REMOVE"]}, "path": {"type": "string"}, "value": {}}},
        "Patch": {"oneOf": [{"type": "array", "items": {"$ref": "#/components/schemas/PatchOperation"}}, {"$ref": "#/components/schemas/PatchOperation"}]},
        "MappingSetBody": {"type": "object", "description": "a mapping set, current ({outputSchema, mappings: [{sourceType, source, destination}]}) or legacy ({xdmSchema, mappings: [{sourceAttribute, destinationXdmPath}]}) dialect"},
        "MappingSetSimple": {"type": "object", "required": ["id", "version"], "properties": {"id": {"type": "string"}, "version": {"type": "integer"}, "createdDate": {"type": "integer"}, "modifiedDate": {"type": "integer"}}},
        "MappingSet": {"type": "object", "required": ["id", "mappings"], "properties": {"id": {"type": "string"}, "version": {"type": "integer"}, "mappings": {"type": "array", "items": {"type": "object"}}}},
        "MappingSetPage": {"type": "object", "required": ["data", "_page"], "properties": {"data": {"type": "array", "items": {"type": "object"}}, "_page": {"type": "object"}, "_links": {"type": "object"}}},
        "MappingValidation": {"type": "object", "required": ["validationResponse"], "properties": {"validationResponse": {"type": "array", "items": {"type": "object", "properties": {"status": {"type": "string", "enum": ["SUCCESS", "FAILED"]}}}}}},
        "PreviewBody": {"type": "object", "description": "{data: [records], mappingSet: {...}}"},
        "Preview": {"type": "array", "items": {"type": "object", "properties": {"data": {"type": "object"}}}},
        "ExpressionBody": {"type": "object", "description": "{expression, sampleData?}"},
    })
}
