//! Flow schedules (the RestStorageToAEP rules), flow options, flows and flow specs.

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use crate::document::{flow_from_value, flow_schedule_from_value, flow_spec_from_value};
use crate::{FlowOptions, SpecError};

fn shown<T: std::fmt::Debug>(result: Result<T, SpecError>) -> String {
    match result {
        Ok(value) => format!("{value:?}\n"),
        Err(SpecError::Invalid { diagnostics, .. }) => diagnostics.to_string(),
        Err(other) => format!("unexpected {other}\n"),
    }
}

fn check_schedule(schedule: Value, expect: Expect) {
    expect.assert_eq(&shown(flow_schedule_from_value("flow.json", &schedule)));
}

#[test]
fn once_forbids_interval_and_backfill() {
    check_schedule(
        json!({"startTime": 1764400000, "frequency": "once"}),
        expect![[r#"
            FlowSchedule { start_time: 2025-11-29T07:06:40Z, frequency: Once, interval: 0, backfill: false, cron: None }
        "#]],
    );
    check_schedule(
        json!({"startTime": 1764400000, "frequency": "once", "interval": 1, "backfill": true}),
        expect![[r#"
            flow.json: /interval: interval is not allowed with frequency once, found the number 1
            flow.json: /backfill: backfill is not allowed with frequency once, found the boolean true
        "#]],
    );
}

#[test]
fn minute_needs_an_interval_of_at_least_15() {
    check_schedule(
        json!({"startTime": "1632809759", "frequency": "minute", "interval": 5}),
        expect![[r#"
            flow.json: /interval: expected an integer >= 15 for frequency minute, found 5
        "#]],
    );
    check_schedule(
        json!({"startTime": "1632809759", "frequency": "minute", "interval": "15", "backfill": false}),
        expect![[r#"
            FlowSchedule { start_time: 2021-09-28T06:15:59Z, frequency: Minute, interval: 15, backfill: false, cron: None }
        "#]],
    );
}

#[test]
fn other_frequencies_need_an_interval_of_at_least_1_and_backfill_defaults_to_true() {
    check_schedule(
        json!({"startTime": 0, "frequency": "hour", "interval": 1}),
        expect![[r#"
            FlowSchedule { start_time: 1970-01-01T00:00:00Z, frequency: Hour, interval: 1, backfill: true, cron: None }
        "#]],
    );
    check_schedule(
        json!({"startTime": 0, "frequency": "day", "interval": 0}),
        expect![[r#"
            flow.json: /interval: expected an integer >= 1 for frequency day, found 0
        "#]],
    );
    check_schedule(
        json!({"startTime": 0, "frequency": "week"}),
        expect![[r#"
            flow.json: /interval: missing required field interval: expected an integer >= 1 for frequency week
        "#]],
    );
    check_schedule(
        json!({"startTime": 0, "frequency": "hour", "interval": 1.5}),
        expect![[r#"
            flow.json: /interval: expected an integer >= 1 for frequency hour, found the number 1.5
        "#]],
    );
}

#[test]
fn start_time_and_frequency_problems() {
    check_schedule(
        json!({"frequency": "fortnight"}),
        expect![[r#"
            flow.json: /startTime: missing required field startTime: expected the start time in epoch seconds (an integer or a numeric string), found nothing
            flow.json: /frequency: unknown frequency "fortnight"; expected one of once, minute, hour, day, week
        "#]],
    );
    check_schedule(
        json!({"startTime": "yesterday", "frequency": "HOUR", "interval": 2, "backfill": "maybe"}),
        expect![[r#"
            flow.json: /startTime: expected startTime as epoch seconds >= 0 (an integer or a numeric string), found the string "yesterday"
            flow.json: /backfill: expected backfill (true or false), found the string "maybe"
        "#]],
    );
}

#[test]
fn cron_extension_keeps_the_expression_and_zone() {
    check_schedule(
        json!({"startTime": 1764400000, "cron": "0 0 6 * * *", "timeZone": "Europe/Paris"}),
        expect![[r#"
            FlowSchedule { start_time: 2025-11-29T07:06:40Z, frequency: Once, interval: 0, backfill: true, cron: Some(CronSchedule { expression: "0 0 6 * * *", time_zone: Some("Europe/Paris") }) }
        "#]],
    );
    check_schedule(
        json!({"startTime": 1764400000, "cron": "0 6 * * *"}),
        expect![[r#"
            flow.json: /cron: expected a cron expression of 6 or 7 fields (seconds first, e.g. "0 0 * * * *"), found 5 fields
        "#]],
    );
}

#[test]
fn period_follows_frequency_and_interval() {
    let schedule = flow_schedule_from_value(
        "f",
        &json!({"startTime": 0, "frequency": "minute", "interval": 30}),
    )
    .unwrap();
    assert_eq!(schedule.period(), Some(chrono::Duration::minutes(30)));
    let once =
        flow_schedule_from_value("f", &json!({"startTime": 0, "frequency": "once"})).unwrap();
    assert_eq!(once.period(), None);
}

fn flow_body(patch: Value) -> Value {
    let mut body = json!({
        "name": "MailChimp Members dataflow",
        "flowSpec": {"id": "6499120c-0b15-42dc-936e-847ea3c24d72", "version": "1.0"},
        "sourceConnectionIds": ["src-1"],
        "targetConnectionIds": ["tgt-1"],
        "transformations": [{"name": "Mapping", "params": {"mappingId": "m-1", "mappingVersion": "2"}}],
        "scheduleParams": {"startTime": "1632809759", "frequency": "minute", "interval": 15, "backfill": true},
        "options": {"partialIngestionPercent": 10, "errorDiagnosticsEnabled": false}
    });
    for (key, value) in patch.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

#[test]
fn a_flow_body_with_string_numbers() {
    let flow = flow_from_value("flow.json", &flow_body(json!({}))).unwrap();
    expect![[r#"
        Flow { name: "MailChimp Members dataflow", description: None, flow_spec_id: "6499120c-0b15-42dc-936e-847ea3c24d72", flow_spec_version: "1.0", source_connection_ids: ["src-1"], target_connection_ids: ["tgt-1"], transformations: [Transformation { name: "Mapping", mapping_id: Some("m-1"), mapping_version: 2 }], schedule: Some(FlowSchedule { start_time: 2021-09-28T06:15:59Z, frequency: Minute, interval: 15, backfill: true, cron: None }), options: FlowOptions { partial_ingestion_percent: Some(10.0), error_diagnostics_enabled: true, max_concurrent_requests: None } }
    "#]]
    .assert_eq(&format!("{flow:?}\n"));
}

#[test]
fn a_flow_body_with_state_and_other_problems() {
    expect![[r#"
        flow.json: /state: state must not be sent when creating a flow: a new flow is enabled; use the enable/disable actions
        flow.json: /sourceConnectionIds: expected at least one id in sourceConnectionIds, found an empty array
        flow.json: /transformations/0/params/mappingVersion: expected mappingVersion (a non-negative integer, as a number or a numeric string), found the string "v2"
        flow.json: /scheduleParams/interval: expected an integer >= 15 for frequency minute, found 5
        flow.json: /options/partialIngestionPercent: expected partialIngestionPercent as a number > 0 and <= 100, found 0
    "#]]
    .assert_eq(&shown(flow_from_value(
        "flow.json",
        &flow_body(json!({
            "state": "enabled",
            "sourceConnectionIds": [],
            "transformations": [{"name": "Mapping", "params": {"mappingId": "m", "mappingVersion": "v2"}}],
            "scheduleParams": {"startTime": 1, "frequency": "minute", "interval": 5},
            "options": {"partialIngestionPercent": 0}
        })),
    )));
}

#[test]
fn options_defaults_and_extension() {
    let flow = flow_from_value(
        "f",
        &flow_body(json!({"options": {"maxConcurrentRequests": "4"}})),
    )
    .unwrap();
    assert_eq!(
        flow.options.max_concurrent_requests.map(|n| n.get()),
        Some(4)
    );
    assert_eq!(flow.options.partial_ingestion_percent, None);
    assert!(!flow.options.error_diagnostics_enabled);
    let without = flow_from_value("f", &json!({"name": "n", "flowSpec": {"id": "x"}, "sourceConnectionIds": ["s"], "targetConnectionIds": ["t"]})).unwrap();
    assert_eq!(without.options, FlowOptions::default());
    assert_eq!(without.schedule, None);
}

#[test]
fn flow_spec_with_either_transformation_key() {
    let spec = json!({
        "name": "RestStorageToAEP", "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a", "version": "1.0",
        "sourceConnectionSpecIds": ["2e8580db-6489-4726-96de-e33f5f60295f"],
        "targetConnectionSpecIds": ["c604ff05-7f1a-43c0-8e18-33bf874cb11c"],
        "transformationSpec": [{"name": "Mapping", "spec": {"properties": {"mappingId": {"type": "string"}}}}],
        "scheduleSpec": {"name": "PeriodicSchedule", "type": "Periodic", "spec": {}}
    });
    expect![[r#"
        RestStorageToAEP ["2e8580db-6489-4726-96de-e33f5f60295f"] ["c604ff05-7f1a-43c0-8e18-33bf874cb11c"] ["Mapping"]
    "#]]
    .assert_eq(&match flow_spec_from_value("fs.json", &spec) {
        Ok(spec) => format!("{} {:?} {:?} {:?}\n", spec.name, spec.source_connection_spec_ids, spec.target_connection_spec_ids, spec.transformation_names),
        Err(err) => err.to_string(),
    });
    expect![[r#"
        fs.json: /name: missing required field name: expected the flow spec name (a string), found nothing
        fs.json: /sourceConnectionSpecIds/1: expected a string in sourceConnectionSpecIds, found the number 5
        fs.json: /targetConnectionSpecIds: missing required field targetConnectionSpecIds: expected an array of connection spec ids, found nothing
    "#]]
    .assert_eq(&shown(flow_spec_from_value("fs.json", &json!({"sourceConnectionSpecIds": ["a", 5], "transformationSpecs": []}))));
}
