//! Validation of flow specs (RestStorageToAEP, reference §4), flows (`POST /flows` bodies,
//! §6), flow schedules with their rules, and flow options.

use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::{
    CronSchedule, Flow, FlowOptions, FlowSchedule, FlowSpec, Frequency, Transformation,
};
use crate::raw::{Ctx, Node, Obj, describe};

const FREQUENCIES: &str = "once, minute, hour, day, week";

pub(crate) fn read_flow_spec(ctx: &mut Ctx, root: &Node<'_>) -> Option<FlowSpec> {
    let obj = ctx.object(root, "a flow spec")?;
    let n_errors_before = ctx.n_errors();
    let id = obj.opt_string(ctx, &["id"], "the flow spec id");
    let name = obj.req_string(ctx, &["name"], "the flow spec name");
    let provider_id = obj.opt_string(ctx, &["providerId"], "the provider id");
    let version = match obj.get(ctx, &["version"]) {
        Some(node) => ctx.text_like(&node, "the flow spec version"),
        None => Some("1.0".to_owned()),
    };
    let id_list = |ctx: &mut Ctx, key: &str| {
        obj.require(ctx, &[key], "an array of connection spec ids")
            .and_then(|node| ctx.string_list(&node, key))
    };
    let sources = id_list(ctx, "sourceConnectionSpecIds");
    let targets = id_list(ctx, "targetConnectionSpecIds");
    let mut transformation_names = Vec::new();
    if let Some(node) = obj.get(ctx, &["transformationSpecs", "transformationSpec"])
        && let Some(entries) = ctx.array(&node, "transformationSpecs")
    {
        for entry in &entries {
            if let Some(entry_obj) = ctx.object(entry, "a transformation spec")
                && let Some(name) = entry_obj.req_string(ctx, &["name"], "the transformation name")
            {
                transformation_names.push(name);
            }
        }
    }
    for key in [
        "scheduleSpec",
        "optionSpec",
        "attributes",
        "permissionsInfo",
    ] {
        if let Some(node) = obj.get(ctx, &[key]) {
            ctx.object(&node, key);
        }
    }
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    Some(FlowSpec {
        id,
        name: name?,
        provider_id,
        version: version?,
        source_connection_spec_ids: sources?,
        target_connection_spec_ids: targets?,
        transformation_names,
        raw: root.value.clone(),
    })
}

pub(crate) fn read_flow(ctx: &mut Ctx, root: &Node<'_>) -> Option<Flow> {
    let obj = ctx.object(root, "a flow")?;
    let n_errors_before = ctx.n_errors();
    if obj.has("state") {
        ctx.err(&obj.ptr_of("state"), "state must not be sent when creating a flow: a new flow is enabled; use the enable/disable actions");
    }
    let name = obj.req_string(ctx, &["name"], "the flow name");
    let description = obj.opt_string(ctx, &["description"], "the description");
    let (flow_spec_id, flow_spec_version) =
        match obj.require(ctx, &["flowSpec"], "the flow spec reference {id, version}") {
            Some(node) => match ctx.object(&node, "the flow spec reference") {
                Some(spec) => {
                    let id = spec.req_string(ctx, &["id"], "the flow spec id");
                    let version = match spec.get(ctx, &["version"]) {
                        Some(version_node) => ctx.text_like(&version_node, "the flow spec version"),
                        None => Some("1.0".to_owned()),
                    };
                    (id, version)
                }
                None => (None, None),
            },
            None => (None, None),
        };
    let id_list = |ctx: &mut Ctx, key: &str| {
        let node = obj.require(ctx, &[key], "an array with one connection id")?;
        let ids = ctx.string_list(&node, key)?;
        if ids.is_empty() {
            ctx.err(
                &node.ptr,
                format!("expected at least one id in {key}, found an empty array"),
            );
            return None;
        }
        Some(ids)
    };
    let sources = id_list(ctx, "sourceConnectionIds");
    let targets = id_list(ctx, "targetConnectionIds");
    let transformations = match obj.get(ctx, &["transformations"]) {
        Some(node) => read_transformations(ctx, &node),
        None => Some(Vec::new()),
    };
    let schedule = match obj.get(ctx, &["scheduleParams"]) {
        Some(node) => read_flow_schedule(ctx, &node).map(Some),
        None => Some(None),
    };
    let options = match obj.get(ctx, &["options"]) {
        Some(node) => read_flow_options(ctx, &node),
        None => Some(FlowOptions::default()),
    };
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    Some(Flow {
        name: name?,
        description,
        flow_spec_id: flow_spec_id?,
        flow_spec_version: flow_spec_version?,
        source_connection_ids: sources?,
        target_connection_ids: targets?,
        transformations: transformations?,
        schedule: schedule?,
        options: options?,
    })
}

fn read_transformations(ctx: &mut Ctx, node: &Node<'_>) -> Option<Vec<Transformation>> {
    let entries = ctx.array(node, "transformations")?;
    let mut transformations = Vec::with_capacity(entries.len());
    let n_errors_before = ctx.n_errors();
    for entry in &entries {
        let Some(obj) = ctx.object(entry, "a transformation") else {
            continue;
        };
        let name = obj.req_string(ctx, &["name"], "the transformation name (e.g. Mapping)");
        let (mapping_id, mapping_version) = match obj.get(ctx, &["params"]) {
            Some(params) => match ctx.object(&params, "the transformation params") {
                Some(params) => {
                    let id = params.opt_string(ctx, &["mappingId"], "the mapping set id");
                    let version = match params.get(ctx, &["mappingVersion"]) {
                        Some(version_node) => ctx.uint(&version_node, "mappingVersion"),
                        None => Some(0),
                    };
                    (id, version)
                }
                None => (None, None),
            },
            None => (None, Some(0)),
        };
        if let (Some(name), Some(mapping_version)) = (name, mapping_version) {
            transformations.push(Transformation {
                name,
                mapping_id,
                mapping_version,
            });
        }
    }
    (ctx.n_errors() == n_errors_before).then_some(transformations)
}

/// `scheduleParams` of a flow with the RestStorageToAEP rules: `once` forbids `interval` and
/// `backfill`; `minute` needs `interval >= 15`; other frequencies `>= 1`.
pub(crate) fn read_flow_schedule(ctx: &mut Ctx, node: &Node<'_>) -> Option<FlowSchedule> {
    let obj = ctx.object(node, "scheduleParams")?;
    obj.warn_unknown_keys(
        ctx,
        &[
            "startTime",
            "frequency",
            "interval",
            "backfill",
            "cron",
            "timeZone",
        ],
        "scheduleParams",
    );
    let n_errors_before = ctx.n_errors();
    let start_time = obj
        .require(
            ctx,
            &["startTime"],
            "the start time in epoch seconds (an integer or a numeric string)",
        )
        .and_then(|start_node| read_start_time(ctx, &start_node));
    let cron = read_cron(ctx, &obj);
    // An invalid cron is reported by itself; frequency is still optional next to it.
    let has_cron = obj.has("cron");
    let frequency_node = if has_cron {
        obj.get(ctx, &["frequency"])
    } else {
        obj.require(
            ctx,
            &["frequency"],
            &format!("the frequency, one of {FREQUENCIES}"),
        )
    };
    let frequency = match &frequency_node {
        Some(frequency_node) => match ctx.string(
            frequency_node,
            &format!("the frequency, one of {FREQUENCIES}"),
        ) {
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "once" => Some(Frequency::Once),
                "minute" => Some(Frequency::Minute),
                "hour" => Some(Frequency::Hour),
                "day" => Some(Frequency::Day),
                "week" => Some(Frequency::Week),
                _ => {
                    ctx.err(
                        &frequency_node.ptr,
                        format!("unknown frequency {text:?}; expected one of {FREQUENCIES}"),
                    );
                    None
                }
            },
            None => None,
        },
        // With cron, frequency/interval are informative only.
        None => Some(Frequency::Once),
    };
    let interval_node = obj.get(ctx, &["interval"]);
    let backfill_node = obj.get(ctx, &["backfill"]);
    let mut interval = Some(0);
    let mut backfill = Some(true);
    match frequency {
        Some(Frequency::Once) if frequency_node.is_some() => {
            if let Some(interval_node) = &interval_node {
                ctx.err(
                    &interval_node.ptr,
                    format!(
                        "interval is not allowed with frequency once, found {}",
                        describe(interval_node.value)
                    ),
                );
            }
            if let Some(backfill_node) = &backfill_node {
                ctx.err(
                    &backfill_node.ptr,
                    format!(
                        "backfill is not allowed with frequency once, found {}",
                        describe(backfill_node.value)
                    ),
                );
            }
            backfill = Some(false);
        }
        Some(frequency) if frequency != Frequency::Once => {
            let minimum: u64 = if frequency == Frequency::Minute {
                15
            } else {
                1
            };
            let what = format!(
                "an integer >= {minimum} for frequency {}",
                frequency.as_str()
            );
            interval = match &interval_node {
                Some(interval_node) => {
                    let parsed = match interval_node.value {
                        Value::Number(number) => number.as_u64(),
                        Value::String(text) => text.trim().parse::<u64>().ok(),
                        _ => None,
                    };
                    match parsed {
                        Some(value) if value >= minimum && value <= u64::from(u32::MAX) => {
                            u32::try_from(value).ok()
                        }
                        _ => {
                            let found = match parsed {
                                Some(value) => value.to_string(),
                                None => describe(interval_node.value),
                            };
                            ctx.err(
                                &interval_node.ptr,
                                format!("expected {what}, found {found}"),
                            );
                            None
                        }
                    }
                }
                None if has_cron => Some(0),
                None => {
                    ctx.err(
                        &obj.ptr_of("interval"),
                        format!("missing required field interval: expected {what}"),
                    );
                    None
                }
            };
            if let Some(backfill_node) = &backfill_node {
                backfill = ctx.boolean(backfill_node, "backfill");
            }
        }
        _ => {
            if let Some(backfill_node) = &backfill_node {
                backfill = ctx.boolean(backfill_node, "backfill");
            }
        }
    }
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    Some(FlowSchedule {
        start_time: start_time?,
        frequency: frequency?,
        interval: interval?,
        backfill: backfill?,
        cron: cron?,
    })
}

/// Epoch seconds as an integer or numeric string; an RFC 3339 text is accepted too.
fn read_start_time(ctx: &mut Ctx, node: &Node<'_>) -> Option<DateTime<Utc>> {
    let seconds = match node.value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => match text.trim().parse::<i64>() {
            Ok(seconds) => Some(seconds),
            Err(_) => {
                if let Ok(time) = DateTime::parse_from_rfc3339(text.trim()) {
                    return Some(time.with_timezone(&Utc));
                }
                None
            }
        },
        _ => None,
    };
    let time = seconds
        .filter(|seconds| *seconds >= 0)
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0));
    if time.is_none() {
        ctx.err(
            &node.ptr,
            format!("expected startTime as epoch seconds >= 0 (an integer or a numeric string), found {}", describe(node.value)),
        );
    }
    time
}

/// Our extension: `cron` (6 or 7 fields, seconds first) and `timeZone`.
fn read_cron(ctx: &mut Ctx, obj: &Obj<'_>) -> Option<Option<CronSchedule>> {
    let Some(node) = obj.get(ctx, &["cron"]) else {
        if obj.has("timeZone") {
            ctx.warn(
                &obj.ptr_of("timeZone"),
                "timeZone only applies to a cron schedule; ignored",
            );
        }
        return Some(None);
    };
    let expression = ctx.non_empty_string(&node, "a cron expression")?;
    let n_fields = expression.split_whitespace().count();
    if !(6..=7).contains(&n_fields) {
        ctx.err(&node.ptr, format!("expected a cron expression of 6 or 7 fields (seconds first, e.g. \"0 0 * * * *\"), found {n_fields} fields"));
        return None;
    }
    let time_zone = match obj.get(ctx, &["timeZone"]) {
        Some(zone_node) => Some(ctx.non_empty_string(&zone_node, "an IANA time-zone name")?),
        None => None,
    };
    Some(Some(CronSchedule {
        expression,
        time_zone,
    }))
}

pub(crate) fn read_flow_options(ctx: &mut Ctx, node: &Node<'_>) -> Option<FlowOptions> {
    let obj = ctx.object(node, "options")?;
    obj.warn_unknown_keys(
        ctx,
        &[
            "partialIngestionPercent",
            "errorDiagnosticsEnabled",
            "maxConcurrentRequests",
        ],
        "options",
    );
    let n_errors_before = ctx.n_errors();
    let percent = match obj.get(ctx, &["partialIngestionPercent"]) {
        Some(percent_node) => match ctx.number(&percent_node, "partialIngestionPercent") {
            Some(percent) if percent > 0.0 && percent <= 100.0 => Some(Some(percent)),
            Some(percent) => {
                ctx.err(&percent_node.ptr, format!("expected partialIngestionPercent as a number > 0 and <= 100, found {percent}"));
                None
            }
            None => None,
        },
        None => Some(None),
    };
    let diagnostics = obj.opt_bool(ctx, &["errorDiagnosticsEnabled"], "errorDiagnosticsEnabled");
    let concurrency = match obj.get(ctx, &["maxConcurrentRequests"]) {
        Some(concurrency_node) => ctx
            .uint_at_least(&concurrency_node, "maxConcurrentRequests", 1)
            .and_then(NonZeroU32::new)
            .map(Some),
        None => Some(None),
    };
    if ctx.n_errors() > n_errors_before {
        return None;
    }
    let percent = percent?;
    // Partial ingestion forces error diagnostics on (reference §6).
    let error_diagnostics_enabled = percent.is_some() || diagnostics.unwrap_or(false);
    Some(FlowOptions {
        partial_ingestion_percent: percent,
        error_diagnostics_enabled,
        max_concurrent_requests: concurrency?,
    })
}

#[cfg(test)]
mod tests;
