//! The one path from entities to a runnable flow: a flow's entities (flow, flow spec, source,
//! base and target connections, connection spec, mapping set) assembled into the JSON of a flow
//! bundle and loaded with `tributary_spec::load_bundle`, as a bundle file is; with entities
//! replaced ([`Override`]) to check what a change would do before it is written.

use serde_json::{Value, json};
use tributary_spec::{DocumentKind, FlowBundle, SpecRef};
use tributary_state::EntityKind;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::http::Tenant;

pub(super) const FLOW_FIELDS: &[&str] = &[
    "name",
    "description",
    "flowSpec",
    "sourceConnectionIds",
    "targetConnectionIds",
    "transformations",
    "scheduleParams",
    "options",
    "providerRefId",
];

/// Server-kept fields of a stored flow (not part of what is validated).
const FLOW_SERVER_FIELDS: &[&str] = &[
    "state",
    "inheritedAttributes",
    "runs",
    "lastOperation",
    "lastRunDetails",
    "createdBy",
    "createdClient",
    "updatedBy",
    "updatedClient",
];

/// One entity replaced while checking what a change would do.
#[derive(Debug, Clone, Copy)]
pub struct Override<'a> {
    pub kind: EntityKind,
    pub id: &'a str,
    pub doc: &'a Value,
}

/// A flow assembled from its entities.
#[derive(Debug)]
pub struct Assembled {
    pub bundle: FlowBundle,
    pub inherited: Value,
}

fn fetch(
    state: &ApiState,
    tenant: &Tenant,
    kind: EntityKind,
    id: &str,
    overrides: &[Override<'_>],
) -> ApiResult<Option<Value>> {
    if let Some(found) = overrides.iter().find(|o| o.kind == kind && o.id == id) {
        return Ok(Some(found.doc.clone()));
    }
    state.store().clear(kind, tenant, id)
}

pub(super) fn str_at<'v>(doc: &'v Value, pointer: &str) -> Option<&'v str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

pub(super) fn id_list(doc: &Value, field: &str) -> Vec<String> {
    doc.get(field)
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The flow document with only the fields a client sends (for validation and the bundle).
pub(super) fn client_fields(doc: &Value) -> Value {
    let mut map = doc.as_object().cloned().unwrap_or_default();
    for field in FLOW_SERVER_FIELDS {
        map.shift_remove(*field);
    }
    for field in crate::store::SERVER_FIELDS {
        map.shift_remove(field);
    }
    Value::Object(map)
}

/// Checks a flow against its flow spec and assembles its bundle (400 with pointers of the flow
/// document or, for problems inside the connections, of the bundle the flow makes).
pub fn assemble(
    state: &ApiState,
    tenant: &Tenant,
    flow: &Value,
    overrides: &[Override<'_>],
) -> ApiResult<Assembled> {
    let flow_spec_id = str_at(flow, "/flowSpec/id").unwrap_or_default();
    let Some(flow_spec) = fetch(state, tenant, EntityKind::FlowSpec, flow_spec_id, overrides)?
    else {
        return Err(ApiError::field(
            1413,
            "/flowSpec/id",
            format!("no flow spec with id {flow_spec_id:?} in this org and sandbox"),
        ));
    };
    let source_ids = id_list(flow, "sourceConnectionIds");
    let target_ids = id_list(flow, "targetConnectionIds");
    if source_ids.len() != 1 {
        return Err(ApiError::field(
            1455,
            "/sourceConnectionIds",
            format!(
                "expected exactly one source connection id, found {}",
                source_ids.len()
            ),
        ));
    }
    if target_ids.len() != 1 {
        return Err(ApiError::field(
            1455,
            "/targetConnectionIds",
            format!(
                "expected exactly one target connection id, found {}",
                target_ids.len()
            ),
        ));
    }
    let Some(source) = fetch(
        state,
        tenant,
        EntityKind::SourceConnection,
        &source_ids[0],
        overrides,
    )?
    else {
        return Err(ApiError::field(
            1455,
            "/sourceConnectionIds/0",
            format!(
                "no source connection with id {:?} in this org and sandbox",
                source_ids[0]
            ),
        ));
    };
    let Some(target) = fetch(
        state,
        tenant,
        EntityKind::TargetConnection,
        &target_ids[0],
        overrides,
    )?
    else {
        return Err(ApiError::field(
            1455,
            "/targetConnectionIds/0",
            format!(
                "no target connection with id {:?} in this org and sandbox",
                target_ids[0]
            ),
        ));
    };
    let base_id = str_at(&source, "/baseConnectionId")
        .unwrap_or_default()
        .to_owned();
    let Some(base) = fetch(state, tenant, EntityKind::Connection, &base_id, overrides)? else {
        return Err(ApiError::field(
            1455,
            "/sourceConnectionIds/0",
            format!("the source connection's base connection {base_id:?} does not exist"),
        ));
    };
    let spec_id = str_at(&base, "/connectionSpec/id")
        .unwrap_or_default()
        .to_owned();
    let Some(spec) = fetch(
        state,
        tenant,
        EntityKind::ConnectionSpec,
        &spec_id,
        overrides,
    )?
    else {
        return Err(ApiError::field(
            1413,
            "/sourceConnectionIds/0",
            format!("the connection spec {spec_id:?} of the source connection does not exist"),
        ));
    };
    let allowed_sources = id_list(&flow_spec, "sourceConnectionSpecIds");
    if !allowed_sources.contains(&spec_id) {
        return Err(ApiError::field(
            1413,
            "/sourceConnectionIds/0",
            format!(
                "the source connection's connection spec {spec_id} is not in the sourceConnectionSpecIds of flow spec {flow_spec_id}; append it with PUT /flowSpecs/{flow_spec_id}"
            ),
        ));
    }
    let target_spec_id = str_at(&target, "/connectionSpec/id")
        .unwrap_or_default()
        .to_owned();
    if !id_list(&flow_spec, "targetConnectionSpecIds").contains(&target_spec_id) {
        return Err(ApiError::field(
            1413,
            "/targetConnectionIds/0",
            format!(
                "the target connection's connection spec {target_spec_id} is not in the targetConnectionSpecIds of flow spec {flow_spec_id}"
            ),
        ));
    }
    let transformation_names: Vec<String> = flow_spec
        .get("transformationSpecs")
        .or_else(|| flow_spec.get("transformationSpec"))
        .and_then(Value::as_array)
        .map(|specs| {
            specs
                .iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut mapping: Option<Value> = None;
    if let Some(transformations) = flow.get("transformations").and_then(Value::as_array) {
        for (idx, transformation) in transformations.iter().enumerate() {
            let name = transformation
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !transformation_names
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
            {
                return Err(ApiError::field(
                    1455,
                    &format!("/transformations/{idx}/name"),
                    format!(
                        "transformation {name:?} is not one of flow spec {flow_spec_id}'s ({})",
                        transformation_names.join(", ")
                    ),
                ));
            }
            let Some(mapping_id) = transformation
                .pointer("/params/mappingId")
                .and_then(Value::as_str)
            else {
                continue;
            };
            let version = match transformation.pointer("/params/mappingVersion") {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) => n.as_u64().unwrap_or(u64::MAX),
                Some(Value::String(text)) => text.trim().parse::<u64>().unwrap_or(u64::MAX),
                Some(_) => u64::MAX,
            };
            let Some(mapping_doc) =
                fetch(state, tenant, EntityKind::MappingSet, mapping_id, overrides)?
            else {
                return Err(ApiError::field(
                    1455,
                    &format!("/transformations/{idx}/params/mappingId"),
                    format!("no mapping set with id {mapping_id:?} in this org and sandbox"),
                ));
            };
            let Some(version_doc) = crate::dataprep::version_of(&mapping_doc, version) else {
                return Err(ApiError::field(
                    1412,
                    &format!("/transformations/{idx}/params/mappingVersion"),
                    format!("mapping set {mapping_id} has no version {version}"),
                ));
            };
            mapping = Some(crate::dataprep::for_bundle(&version_doc));
        }
    }
    let mut spec_for_bundle = spec.clone();
    if let Value::Object(map) = &mut spec_for_bundle {
        map.insert("id".to_owned(), Value::String(spec_id.clone()));
        for field in ["createdBy", "createdClient", "updatedBy", "updatedClient"] {
            map.shift_remove(field);
        }
    }
    let mut bundle = json!({
        "name": flow.get("name").cloned().unwrap_or(Value::Null),
        "connectionSpec": spec_for_bundle,
        "baseConnection": {"name": base.get("name").cloned().unwrap_or(Value::Null), "auth": base.get("auth").cloned().unwrap_or(Value::Null)},
        "sourceConnection": {"params": source.get("params").cloned().unwrap_or_else(|| json!({}))},
        "targetConnection": {"params": target.get("params").cloned().unwrap_or(Value::Null)},
        "flow": {},
    });
    if bundle["baseConnection"]["name"].is_null() {
        bundle["baseConnection"]
            .as_object_mut()
            .map(|m| m.shift_remove("name"));
    }
    if let Some(data) = target.get("data").filter(|d| d.is_object()) {
        bundle["targetConnection"]["data"] = data.clone();
    }
    if let Some(schedule) = flow.get("scheduleParams") {
        bundle["flow"]["scheduleParams"] = schedule.clone();
    }
    if let Some(options) = flow.get("options") {
        bundle["flow"]["options"] = options.clone();
    }
    if let Some(mapping) = mapping {
        bundle["mappingSet"] = mapping;
    }
    let text = bundle.to_string();
    let loaded =
        tributary_spec::load_bundle("flow", &text, |kind: DocumentKind, reference: &SpecRef| {
            Err(format!(
                "{kind} {reference:?} cannot be referenced from an API flow"
            ))
        });
    let bundle = match loaded {
        Ok(bundle) => bundle,
        Err(tributary_spec::SpecError::Invalid { diagnostics, .. }) => {
            return Err(ApiError::invalid(
                1455,
                "the flow (as the bundle its entities make)",
                &diagnostics,
            ));
        }
        Err(err) => {
            return Err(ApiError::bad_request(
                1455,
                format!("the flow is not valid: {err}"),
            ));
        }
    };
    let spec_ref =
        json!({"id": spec_id, "version": spec.get("version").cloned().unwrap_or(json!("1.0"))});
    let inherited = json!({
        "sourceConnections": [{
            "id": source_ids[0],
            "connectionSpec": spec_ref,
            "baseConnection": {"id": base_id, "connectionSpec": spec_ref},
        }],
        "targetConnections": [{"id": target_ids[0], "connectionSpec": {"id": target_spec_id, "version": "1.0"}}],
        "properties": {"isSourceFlow": true},
    });
    Ok(Assembled { bundle, inherited })
}
