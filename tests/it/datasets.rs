//! Datasets whose records change shape: fields that appear on later pages and in later runs,
//! and a field whose type changes (number, then string). Every committed file reads back with
//! the dataset schema (`tributary dataset schema --json`), the parts of a batch share one
//! schema, the values that fit no column are in `_rescued_data`, and no value is lost (the
//! records rebuilt from the files equal, one by one, what the source served). Then the
//! README's reader snippets (DuckDB, pyarrow.dataset, polars) run as written against it.
//!
//! The source is the fixture server of `hostile.rs`, serving pages the test swaps between runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};

use crate::hostile::{Pages, Serving, serve_pages};
use crate::run::{Sandbox, basic_auth_spec, bundle, files_under};

const DATASET: &str = "shapes";

fn serve(pages: &Pages) -> Serving {
    serve_pages(pages)
}

fn flow_bundle(sandbox: &Sandbox, name: &str, base_url: &str) -> String {
    let attributes = json!({
        "urlParams": {"path": "/shapes", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 2, "pageParamName": "page"}
    });
    let params = json!({"host": base_url, "username": "u", "password": "p"});
    sandbox.bundle(
        name,
        &bundle(name, basic_auth_spec(), attributes, params, DATASET),
    )
}

/// Run 1: `address` appears on page 1 and grows `zip` on page 2, `score` widens from integer to
/// float on page 1, `id` is a number on pages 0–1 and a string on page 2, `score` a string once.
fn first_run_pages() -> Vec<Value> {
    vec![
        json!([
            {"id": 1, "name": "a", "score": 1},
            {"id": 2, "name": "b", "score": 2}
        ]),
        json!([
            {"id": 3, "name": "c", "score": 2.5, "address": {"city": "Lima"}},
            {"id": 4, "name": "d", "score": 3, "address": null}
        ]),
        json!([
            {"id": "A-5", "name": "e", "score": 4, "address": {"city": "Kyiv", "zip": "01001"}},
            {"id": 6, "name": "f", "score": "high", "tags": ["x", "y"]}
        ]),
    ]
}

/// Run 2 (another flow into the same dataset): a new column, and values that do not fit the
/// columns the first run established (a string id, a string where a list is, a string where a
/// struct is).
fn second_run_pages() -> Vec<Value> {
    vec![
        json!([
            {"id": 7, "name": "g", "score": 5, "satisfaction": 0.9, "address": {"city": "Oslo"}},
            {"id": "B-8", "name": "h", "score": 6.5, "tags": "solo"}
        ]),
        json!([
            {"id": 9, "name": "i", "score": 7, "address": "unknown", "satisfaction": 1}
        ]),
    ]
}

fn run_flow(sandbox: &Sandbox, path: &str) -> Value {
    let ran = sandbox.tributary(&["run", path, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    serde_json::from_str(&ran.stdout).unwrap_or_else(|err| panic!("{err}: {ran:?}"))
}

fn dataset_schema(sandbox: &Sandbox) -> Value {
    let ran = sandbox.tributary(&["dataset", "schema", DATASET, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    serde_json::from_str(&ran.stdout).unwrap_or_else(|err| panic!("{err}: {ran:?}"))
}

/// Every committed Parquet file of the dataset, by batch folder.
fn files_by_batch(sandbox: &Sandbox) -> BTreeMap<String, Vec<PathBuf>> {
    let root = sandbox.data().join("datasets").join(DATASET);
    let mut by_batch: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files_under(&root) {
        if file.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let batch = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(batch.starts_with("batch="), "{}", file.display());
        by_batch.entry(batch).or_default().push(file);
    }
    by_batch
}

fn read_file(path: &Path) -> (Value, Vec<RecordBatch>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let schema = serde_json::to_value(builder.schema().as_ref()).unwrap();
    let batches = builder.build().unwrap().map(Result::unwrap).collect();
    (schema, batches)
}

/// The `fields` of an Arrow schema in JSON form, without metadata, by name.
fn fields_by_name(schema: &Value) -> BTreeMap<String, Value> {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(key, _)| key.as_str() != "metadata" && key.as_str() != "dict_id")
                    .map(|(key, value)| (key.clone(), strip(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| (field["name"].as_str().unwrap().to_owned(), strip(field)))
        .collect()
}

/// The records of `batches` as JSON, each with its `_rescued_data` put back where it came from.
fn rebuilt_records(batches: &[RecordBatch]) -> Vec<Value> {
    let mut records = Vec::new();
    for batch in batches {
        let mut writer = arrow_json::ArrayWriter::new(Vec::new());
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        let rows: Vec<Value> = serde_json::from_slice(&writer.into_inner()).unwrap();
        for mut row in rows {
            let object = row.as_object_mut().unwrap();
            if let Some(Value::String(rescued)) = object.remove("_rescued_data") {
                let rescued: Map<String, Value> = serde_json::from_str(&rescued).unwrap();
                for (path, text) in rescued {
                    let value: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
                    put_at(object, &path, value);
                }
            }
            records.push(normalized(&row));
        }
    }
    records
}

/// Puts `value` at a rescued path (`a.b`, `tags[1]`).
fn put_at(object: &mut Map<String, Value>, path: &str, value: Value) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let (name, index) = match head.split_once('[') {
        Some((name, index)) => (
            name,
            Some(index.trim_end_matches(']').parse::<usize>().unwrap()),
        ),
        None => (head, None),
    };
    let slot = object.entry(name.to_owned()).or_insert(Value::Null);
    let slot = match index {
        None => slot,
        Some(index) => {
            let items = slot
                .as_array_mut()
                .expect("a rescued list element has its list");
            &mut items[index]
        }
    };
    match rest {
        None => *slot = value,
        Some(rest) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            put_at(slot.as_object_mut().unwrap(), rest, value);
        }
    }
}

/// Nulls dropped from objects (a missing field and a null field are the same record) and
/// numbers compared as floats (a widened column holds 1 as 1.0).
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key.clone(), normalized(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Number(number) => json!(number.as_f64().unwrap()),
        other => other.clone(),
    }
}

fn sorted_by_name(mut records: Vec<Value>) -> Vec<Value> {
    records.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    records
}

/// Checks the dataset against everything the source served so far; returns the records rebuilt.
fn check_dataset(sandbox: &Sandbox, served: &[Value]) {
    let schema = dataset_schema(sandbox);
    let dataset_fields = fields_by_name(&schema["arrowSchema"]);
    let by_batch = files_by_batch(sandbox);
    let newest_batch = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["batchId"].as_str().unwrap().to_owned())
        .next_back()
        .unwrap();
    let mut rebuilt = Vec::new();
    for (batch, files) in &by_batch {
        let mut batch_schema: Option<BTreeMap<String, Value>> = None;
        for file in files {
            let (file_schema, batches) = read_file(file);
            let fields = fields_by_name(&file_schema);
            // Every column of every file is a column of the dataset schema, with its type.
            for (name, field) in &fields {
                assert_eq!(
                    dataset_fields.get(name),
                    Some(field),
                    "{}: column {name} is not the dataset schema's",
                    file.display()
                );
            }
            // All parts of a batch carry the batch's one schema.
            match &batch_schema {
                None => batch_schema = Some(fields.clone()),
                Some(first) => assert_eq!(first, &fields, "{batch}: parts differ in schema"),
            }
            rebuilt.extend(rebuilt_records(&batches));
        }
        if batch.ends_with(&newest_batch) {
            assert_eq!(
                batch_schema.as_ref(),
                Some(&dataset_fields),
                "the newest batch has the whole dataset schema"
            );
        }
    }
    let served: Vec<Value> = served.iter().map(normalized).collect();
    assert_eq!(
        sorted_by_name(rebuilt),
        sorted_by_name(served),
        "no value lost"
    );
}

fn column_type<'a>(schema: &'a Value, path: &str) -> Option<&'a str> {
    schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .and_then(|c| c["type"].as_str())
}

fn rescued_values(sandbox: &Sandbox) -> Vec<Value> {
    let mut out = Vec::new();
    for files in files_by_batch(sandbox).values() {
        for file in files {
            for batch in read_file(file).1 {
                let Some(column) = batch.column_by_name("_rescued_data") else {
                    continue;
                };
                let column = column.as_string::<i32>();
                for row in 0..column.len() {
                    if column.is_valid(row) {
                        out.push(serde_json::from_str(column.value(row)).unwrap());
                    }
                }
            }
        }
    }
    out.sort_by_key(Value::to_string);
    out
}

#[test]
fn records_that_gain_fields_and_change_type_read_back_with_the_dataset_schema() {
    let pages: Pages = Arc::new(Mutex::new(first_run_pages()));
    let source = serve(&pages);
    let base_url = source.server.base_url();
    let sandbox = Sandbox::new();

    let first = flow_bundle(&sandbox, "shapes-a", &base_url);
    let run = run_flow(&sandbox, &first);
    let summary = &run["metrics"]["recordSummary"];
    assert_eq!(summary["inputRecordCount"], 6, "{run:#}");
    assert_eq!(summary["outputRecordCount"], 6, "{run:#}");
    assert_eq!(
        summary["warningRecordCount"], 2,
        "id A-5 and score high: {run:#}"
    );
    assert_eq!(run["metrics"]["customSummary"]["rescuedRecordCount"], 2);
    let schema = dataset_schema(&sandbox);
    assert_eq!(column_type(&schema, "id"), Some("Int64"), "{schema:#}");
    assert_eq!(column_type(&schema, "score"), Some("Float64"));
    assert_eq!(column_type(&schema, "address.zip"), Some("Utf8"));
    let mut served = first_run_pages()
        .into_iter()
        .flat_map(|page| page.as_array().unwrap().clone())
        .collect::<Vec<_>>();
    check_dataset(&sandbox, &served);

    *pages.lock().unwrap() = second_run_pages();
    let second = flow_bundle(&sandbox, "shapes-b", &base_url);
    let ran = sandbox.tributary(&["run", &second]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout
            .contains("2 records had values that did not fit their column"),
        "the run summary shows the rescued records: {ran:?}"
    );
    let schema = dataset_schema(&sandbox);
    assert_eq!(column_type(&schema, "satisfaction"), Some("Float64"));
    assert_eq!(column_type(&schema, "id"), Some("Int64"), "never re-typed");
    served.extend(
        second_run_pages()
            .into_iter()
            .flat_map(|page| page.as_array().unwrap().clone()),
    );
    check_dataset(&sandbox, &served);
    assert_eq!(
        rescued_values(&sandbox),
        vec![
            json!({"address": "\"unknown\""}),
            json!({"id": "\"A-5\""}),
            json!({"id": "\"B-8\"", "tags": "\"solo\""}),
            json!({"score": "\"high\""}),
        ]
    );
    // Both flows' batches are listed under the dataset.
    let ran = sandbox.tributary(&["dataset", "ls"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let line = ran
        .stdout
        .lines()
        .find(|line| line.starts_with(DATASET))
        .unwrap_or_else(|| panic!("{ran:?}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cells[1..3], &["2", "9"], "2 batches, 9 rows: {ran:?}");
    assert!(ran.stdout.lines().all(|line| line.len() <= 80), "{ran:?}");

    readers_read_the_dataset_as_one_table(&sandbox, 9);
}

/// The README's snippets, as written there, with the sandbox's data folder.
fn readers_read_the_dataset_as_one_table(sandbox: &Sandbox, rows: usize) {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TRIBUTARY_TEST_PYTHON is not set: run the tests with scripts/test, which creates the Python venv (pyarrow, duckdb, polars) the reader test needs"
        )
    });
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let snippet = readme
        .split("<!-- readers:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- readers:end -->").next())
        .expect("the README has the readers snippet between its markers");
    let code = snippet
        .lines()
        .filter(|line| !line.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let script = format!(
        "{code}\nimport json as _json\nprint(_json.dumps({{'duckdb': duck_rows, 'duckdb_satisfaction': duck_satisfaction, 'pyarrow': table.num_rows, 'pyarrow_columns': table.column_names, 'polars': frame.height, 'polars_columns': frame.columns}}))\n"
    );
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(&script)
        .current_dir(sandbox.dir.path())
        .output()
        .unwrap();
    let ran = crate::run::ran(output);
    assert_eq!(ran.code, 0, "{ran:?}\n--- script\n{script}");
    let got: Value = serde_json::from_str(ran.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{err}: {ran:?}"));
    assert_eq!(got["duckdb"], rows, "{got}");
    assert_eq!(got["duckdb_satisfaction"], 2, "{got}");
    assert_eq!(got["pyarrow"], rows, "{got}");
    assert_eq!(got["polars"], rows, "{got}");
    for reader in ["pyarrow_columns", "polars_columns"] {
        let columns = got[reader].as_array().unwrap();
        for column in ["id", "satisfaction", "address", "_rescued_data"] {
            assert!(
                columns.contains(&json!(column)),
                "{reader} lacks {column}: {got}"
            );
        }
    }
}
