//! Mapping sets end to end: a bundle with a mapping set and an inline target schema
//! (`targetConnection.data.schema.jsonSchema`) run against the mock API; the Parquet read back
//! with the schema's Arrow types; rejected rows in `_errors` with the original record and the
//! error code; `partialIngestionPercent` both ways; `tributary mapping preview`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use serde_json::{Value, json};

use crate::run::{
    SEED, Sandbox, basic_auth_spec, basic_mock, basic_params, bundle, check_published, files_under,
    mock, offset_attributes, read_parquet, strings, type_of,
};

const RECORDS: u64 = 10_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/mapping")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The example mapping set plus `street` from `merge_fields.ADDRESS.addr1`, which the schema
/// requires and which only one record in five has: the others are rejected.
pub(crate) fn mapped_bundle(
    mock: &crate::run::Mock,
    dataset: &str,
    partial_percent: Option<u32>,
) -> Value {
    let mut bundle = bundle(
        &format!("it-mapped-{dataset}"),
        basic_auth_spec(),
        offset_attributes(1000),
        basic_params(mock),
        dataset,
    );
    bundle["mappingSet"] = read_json(&fixture("members-with-street.json"));
    bundle["targetConnection"]["data"] = json!({
        "format": "parquet",
        "schema": {"jsonSchema": read_json(&fixture("members-with-street.schema.json"))}
    });
    let mut options = json!({"errorDiagnosticsEnabled": true});
    if let Some(percent) = partial_percent {
        options["partialIngestionPercent"] = json!(percent);
    }
    bundle["flow"] = json!({"options": options});
    bundle
}

/// Indexes of the mock's records without an address: the rows the mapping rejects.
fn without_address(n: u64) -> HashSet<u64> {
    (0..n)
        .filter(|&i| tributary_mockapi::record(SEED, i)["merge_fields"]["ADDRESS"].is_null())
        .collect()
}

/// Runs the mapped bundle with `partialIngestionPercent` = `percent` and checks the verdict.
fn check_threshold(percent: Option<u32>, expect_success: bool) -> (Sandbox, Value) {
    let mock = mock(basic_mock(RECORDS));
    let sandbox = Sandbox::new();
    let dataset = "profiles";
    let path = sandbox.bundle("mapped", &mapped_bundle(&mock, dataset, percent));
    let ran = sandbox.tributary(&["run", &path, "--json"]);
    let rejected = without_address(RECORDS).len() as u64;
    assert!(
        rejected > RECORDS / 2 && rejected < RECORDS,
        "{rejected} rejected rows"
    );
    if expect_success {
        assert_eq!(ran.code, 0, "{ran:?}");
        let run: Value = serde_json::from_str(&ran.stdout).unwrap();
        check_published(&sandbox, dataset, &run);
        let summary = &run["metrics"]["recordSummary"];
        assert_eq!(summary["inputRecordCount"], RECORDS, "{summary}");
        assert_eq!(summary["failedRecordCount"], rejected, "{summary}");
        assert_eq!(
            summary["outputRecordCount"],
            RECORDS - rejected,
            "{summary}"
        );
        (sandbox, run)
    } else {
        assert_eq!(ran.code, 1, "{ran:?}");
        assert!(
            ran.stderr.contains("partialIngestionPercent"),
            "the message names the threshold: {ran:?}"
        );
        let published: Vec<String> = sandbox
            .dataset_files(dataset)
            .into_iter()
            .filter(|f| f.starts_with("batch="))
            .collect();
        assert!(published.is_empty(), "nothing published: {published:?}");
        (sandbox, Value::Null)
    }
}

#[test]
fn mapped_run_writes_the_schema_types_and_rejected_rows() {
    let (sandbox, run) = check_threshold(Some(90), true);
    let datasets = sandbox.data().join("datasets/profiles");
    let batch_id = run["activities"][1]["targetInfo"][0]["reference"]["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let batches: Vec<RecordBatch> = read_parquet(&datasets.join(format!("batch={batch_id}")));
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let rejected = without_address(RECORDS);
    assert_eq!(rows as u64, RECORDS - rejected.len() as u64);

    // The schema's types: timestamps as microsecond timestamps, nested structs, integers.
    let first = &batches[0];
    let last_changed = type_of(first, "lastChanged");
    assert!(
        last_changed.starts_with("Timestamp(Microsecond"),
        "{last_changed}"
    );
    let person = type_of(first, "person");
    assert!(
        person.starts_with("Struct(")
            && person.contains("\"name\"")
            && person.contains("\"firstName\""),
        "{person}"
    );
    let rating = type_of(first, "rating");
    assert!(rating.starts_with("Int"), "{rating}");

    // Exactly the records with an address, each once, with their mapped values.
    let expected: HashSet<String> = (0..RECORDS)
        .filter(|i| !rejected.contains(i))
        .map(|i| {
            tributary_mockapi::record(SEED, i)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let ids: Vec<String> = strings(&batches, "personID")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(ids.len(), expected.len());
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), expected);
    let record =
        tributary_mockapi::record(SEED, (0..RECORDS).find(|i| !rejected.contains(i)).unwrap());
    let row = ids
        .iter()
        .position(|id| id == record["id"].as_str().unwrap())
        .unwrap();
    let (batch, offset) = locate(&batches, row);
    let person = batch.column_by_name("person").unwrap().as_struct();
    let name = person.column_by_name("name").unwrap().as_struct();
    let first_name = name.column_by_name("firstName").unwrap().as_string::<i32>();
    assert_eq!(
        first_name.value(offset),
        record["merge_fields"]["FNAME"].as_str().unwrap()
    );
    let rating =
        arrow_cast::display::array_value_to_string(batch.column_by_name("rating").unwrap(), offset)
            .unwrap();
    assert_eq!(rating, record["member_rating"].to_string());
    let micros = batch
        .column_by_name("lastChanged")
        .unwrap()
        .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
        .value(offset);
    let source = record["last_changed"].as_str().unwrap();
    let source = chrono::DateTime::parse_from_rfc3339(source).unwrap();
    assert_eq!(micros, source.timestamp_micros(), "lastChanged of {record}");

    // Rejected rows: datasets/{id}/_errors/batch={batchId}/*.jsonl, the record and the code.
    let errors_dir = datasets.join(format!("_errors/batch={batch_id}"));
    let error_files = files_under(&errors_dir);
    assert!(
        !error_files.is_empty(),
        "no error files in {}",
        errors_dir.display()
    );
    let mut rejected_ids = HashSet::new();
    for file in error_files {
        assert!(
            file.extension().is_some_and(|e| e == "jsonl"),
            "{}",
            file.display()
        );
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            let errors = row["errors"].as_array().unwrap();
            assert_eq!(errors.len(), 1, "{row}");
            assert_eq!(errors[0]["code"], "INGEST-1555-400", "{row}");
            assert_eq!(errors[0]["destination"], "street", "{row}");
            let original = &row["record"];
            assert!(original["merge_fields"]["ADDRESS"].is_null(), "{row}");
            rejected_ids.insert(original["id"].as_str().unwrap().to_owned());
        }
    }
    let expected_rejected: HashSet<String> = rejected
        .iter()
        .map(|&i| {
            tributary_mockapi::record(SEED, i)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        rejected_ids, expected_rejected,
        "every rejected row once in _errors"
    );
}

/// The batch and row offset of global row `row`.
fn locate(batches: &[RecordBatch], mut row: usize) -> (&RecordBatch, usize) {
    for batch in batches {
        if row < batch.num_rows() {
            return (batch, row);
        }
        row -= batch.num_rows();
    }
    panic!("row out of range")
}

#[test]
fn over_the_threshold_the_run_fails_and_publishes_nothing() {
    check_threshold(Some(50), false);
}

#[test]
fn without_a_threshold_any_rejected_row_fails_the_run() {
    check_threshold(None, false);
}

#[test]
fn mapping_preview_prints_rows_and_errors_per_mapping() {
    let sandbox = Sandbox::new();
    let mapping = fixture("members-with-street.json").display().to_string();
    let input = fixture("records.json").display().to_string();
    let ran = sandbox.tributary(&["mapping", "preview", &mapping, "--input", &input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let rows: Value = serde_json::from_str(&ran.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["data"]["person"]["name"]["fullName"], "Ann Lee");
    assert_eq!(rows[0]["data"]["consents"]["status"], "subscribed");
    assert_eq!(rows[0]["data"]["lastChanged"], "2024-01-02T03:04:05Z");
    assert_eq!(rows[0]["data"]["street"], "1 Main St");
    assert_eq!(rows[0]["errors"], Value::Null);
    assert_eq!(rows[1]["data"]["personID"], "b2");
    assert_eq!(rows[1]["data"]["street"], Value::Null);
    let errors = rows[1]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["destination"], "lastChanged");
    let exception = errors[0]["exception"].as_str().unwrap();
    assert!(
        exception.starts_with("MAPPER-3700-400") && exception.contains("not a date"),
        "{exception}"
    );

    let broken = sandbox.dir.path().join("broken.json");
    std::fs::write(&broken, "[{\"id\": ").unwrap();
    let ran = sandbox.tributary(&[
        "mapping",
        "preview",
        &mapping,
        "--input",
        &broken.display().to_string(),
    ]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("broken.json"), "{ran:?}");
}

/// `mapping preview` decides rejection as a run does: by `strictMapping`, `allowNullValues` and
/// the target schema given with `--schema`. Record b2 has a date that does not parse (a
/// transformation error in the required `lastChanged`) and no street (required too).
#[test]
fn mapping_preview_follows_strict_mapping_and_allow_null_values() {
    let sandbox = Sandbox::new();
    let input = fixture("records.json").display().to_string();
    let schema = fixture("members-with-street.schema.json")
        .display()
        .to_string();
    let cases = [
        // (strictMapping, allowNullValues, with the schema) -> rejected per record
        ((false, false, false), [false, false]),
        ((true, false, false), [false, true]),
        ((false, true, false), [false, false]),
        ((true, true, false), [false, true]),
        ((false, false, true), [false, true]),
        ((true, false, true), [false, true]),
        ((false, true, true), [false, false]),
        ((true, true, true), [false, true]),
    ];
    for ((strict, allow_null_values, with_schema), expected) in cases {
        let mut mapping_set = read_json(&fixture("members-with-street.json"));
        mapping_set["strictMapping"] = json!(strict);
        mapping_set["allowNullValues"] = json!(allow_null_values);
        let mapping = sandbox.bundle(
            &format!("mapping-{strict}-{allow_null_values}-{with_schema}"),
            &mapping_set,
        );
        let mut args = vec!["mapping", "preview", &mapping, "--input", &input];
        if with_schema {
            args.extend(["--schema", &schema]);
        }
        let ran = sandbox.tributary(&args);
        assert_eq!(ran.code, 0, "{ran:?}");
        let rows: Value = serde_json::from_str(&ran.stdout).unwrap();
        let rejected: Vec<bool> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["rejected"].as_bool().unwrap())
            .collect();
        assert_eq!(
            rejected, expected,
            "strictMapping {strict}, allowNullValues {allow_null_values}, schema {with_schema}: {}",
            ran.stdout
        );
        // Whatever the verdict, b2's problems are all listed.
        let errors = rows[1]["errors"].as_array().unwrap();
        assert_eq!(errors.len(), if with_schema { 3 } else { 1 }, "{errors:?}");
    }
}

/// With `allowNullValues` a record without the required street is kept (its street null, the
/// column nullable): no partial-ingestion threshold is needed and every record is published.
#[test]
fn allow_null_values_publishes_records_whose_required_field_is_null() {
    let mock = mock(basic_mock(RECORDS));
    let sandbox = Sandbox::new();
    let dataset = "profiles";
    let mut bundle = mapped_bundle(&mock, dataset, None);
    bundle["mappingSet"]["allowNullValues"] = json!(true);
    let path = sandbox.bundle("mapped", &bundle);
    let ran = sandbox.tributary(&["run", &path, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let run: Value = serde_json::from_str(&ran.stdout).unwrap();
    check_published(&sandbox, dataset, &run);
    let summary = &run["metrics"]["recordSummary"];
    assert_eq!(summary["outputRecordCount"], RECORDS, "{summary}");
    assert_eq!(summary["failedRecordCount"], 0, "{summary}");
    let batches = read_parquet(&sandbox.data().join("datasets").join(dataset));
    let streets = strings(&batches, "street");
    let n_null = streets.iter().filter(|street| street.is_none()).count();
    assert_eq!(n_null, without_address(RECORDS).len());
    let schema = batches[0].schema();
    let street = schema.field_with_name("street").unwrap();
    assert!(street.is_nullable(), "{street:?}");
}

#[test]
fn a_window_rejected_over_the_threshold_is_fetched_afresh_by_the_next_run() {
    let mock = mock(basic_mock(RECORDS));
    let sandbox = Sandbox::new();
    let dataset = "profiles";
    let path = sandbox.bundle("mapped", &mapped_bundle(&mock, dataset, Some(50)));
    let failed = sandbox.tributary(&["run", &path, "--json"]);
    assert_eq!(failed.code, 1, "{failed:?}");

    // The user drops the mapping that rejected most rows. Had the window resumed the failed
    // run's staged output, its rejected rows would fail this run too.
    let mut fixed = mapped_bundle(&mock, dataset, Some(50));
    let object = fixed.as_object_mut().unwrap();
    object.remove("mappingSet");
    object["targetConnection"]
        .as_object_mut()
        .unwrap()
        .remove("data");
    let path = sandbox.bundle("mapped", &fixed);
    let ran = sandbox.tributary(&["run", &path, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let run: Value = serde_json::from_str(&ran.stdout).unwrap();
    check_published(&sandbox, dataset, &run);
    let summary = &run["metrics"]["recordSummary"];
    assert_eq!(summary["inputRecordCount"], RECORDS, "{summary}");
    assert_eq!(summary["outputRecordCount"], RECORDS, "{summary}");
    assert_eq!(summary["failedRecordCount"], 0, "{summary}");
}
