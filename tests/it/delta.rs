//! Delta Lake tables (`data.format: "delta"`) end to end: the real binary writes two windows of
//! a flow into one Delta table, re-runs one (its old batch is replaced in the same commit that
//! adds the new one) with records that gained a field and whose integer `amount` gained a fraction
//! (the table schema grows, `long` widens to `double` with older long files still live), and is killed
//! mid-commit at both dangerous moments — after the parts were renamed into the table folder and
//! after the Delta commit landed, before state recorded it (`TRIBUTARY_TEST_CRASH_AT`, which
//! aborts the process there as `kill -9` would). After each kill the readers see a consistent
//! table, and the next run finishes the commit exactly once.
//!
//! The table is read back with DuckDB's delta extension (`delta_scan`, loaded offline from the
//! `duckdb-ext-delta` wheel) and with the `deltalake` Python package, running the README's
//! snippet: every record once, equal to what the source served last for its window, the replaced
//! rows gone, the grown column there, and the table's first version still readable (the replaced
//! files stay on disk).
//!
//! The source is the fixture server of `hostile.rs`, serving pages the test swaps between runs.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::hostile::{Pages, Serving, serve_pages};
use crate::run::{Ran, Sandbox, basic_auth_spec, bundle};

const DATASET: &str = "orders-delta";
const DAY_1: &str = "2025-01-01T00:00:00Z";
const DAY_2: &str = "2025-01-02T00:00:00Z";
const DAY_3: &str = "2025-01-03T00:00:00Z";

fn serve(pages: &Pages) -> Serving {
    serve_pages(pages)
}

fn delta_bundle(sandbox: &Sandbox, base_url: &str) -> String {
    let attributes = json!({
        "urlParams": {"path": "/orders", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 2, "pageParamName": "page"},
        "scheduleParams": {
            "scheduleStartParamName": "since",
            "scheduleEndParamName": "before",
            "scheduleStartParamFormat": "yyyy-MM-ddTHH:mm:ssZ",
            "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ssZ"
        }
    });
    let params = json!({"host": base_url, "username": "u", "password": "p"});
    let mut flow = bundle(
        "orders-delta",
        basic_auth_spec(),
        attributes,
        params,
        DATASET,
    );
    flow["targetConnection"]["data"] = json!({"format": "delta"});
    sandbox.bundle("orders-delta", &flow)
}

/// Orders `ids` as the source serves them in `version`, two to a page. With `grown`, every odd
/// id has `satisfaction` (a field the first version of the records lacks) and `amount` has a
/// fraction (the dataset schema widens it from Int64 to Float64, the table from long to double).
fn orders(ids: &[i64], version: u32, grown: bool) -> Vec<Value> {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut record =
                json!({"id": id, "name": format!("order-{id}-v{version}"), "amount": id * 10});
            if grown {
                record["amount"] = json!(*id as f64 * 10.0 + 0.25);
                if id % 2 == 1 {
                    record["satisfaction"] = json!(*id as f64 / 2.0);
                }
            }
            record
        })
        .collect();
    records.chunks(2).map(|page| json!(page)).collect()
}

fn run_window(
    sandbox: &Sandbox,
    flow: &str,
    start: &str,
    end: &str,
    crash_at: Option<&str>,
) -> Ran {
    let mut command = sandbox.command(&["run", flow, "--window-start", start, "--window-end", end]);
    if let Some(point) = crash_at {
        command.env("TRIBUTARY_TEST_CRASH_AT", point);
    }
    let ran = crate::run::ran(command.output().unwrap());
    // deltalake's kernel logs a deadlock hint at INFO on every snapshot read; at the default
    // level the libraries under tributary are held at warn, so it must not reach the log.
    assert!(
        !ran.stderr.contains("TokioBackgroundExecutor"),
        "a library's INFO log reached the default log: {}",
        ran.stderr
    );
    ran
}

fn serve_and_run(
    sandbox: &Sandbox,
    flow: &str,
    pages: &Pages,
    served: Vec<Value>,
    window: (&str, &str),
    crash_at: Option<&str>,
) -> Ran {
    *pages.lock().unwrap() = served;
    run_window(sandbox, flow, window.0, window.1, crash_at)
}

fn log_commits(sandbox: &Sandbox) -> usize {
    let log = sandbox
        .data()
        .join("datasets")
        .join(DATASET)
        .join("_delta_log");
    std::fs::read_dir(&log)
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('_')
        })
        .count()
}

/// What the README's Delta snippet reads, run as written there with the sandbox's data folder:
/// DuckDB's rows and rows per batch, the deltalake package's rows and columns, and the row count
/// of the table's first version.
fn read_table(sandbox: &Sandbox) -> Value {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TRIBUTARY_TEST_PYTHON is not set: run the tests with scripts/test, which creates the Python venv (duckdb, duckdb-ext-delta, deltalake) the Delta test needs"
        )
    });
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let snippet = readme
        .split("<!-- delta-readers:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- delta-readers:end -->").next())
        .expect("the README has the Delta readers snippet between its markers");
    let code = snippet
        .lines()
        .filter(|line| !line.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("data/datasets/orders", &format!("data/datasets/{DATASET}"));
    let script = format!(
        r#"{code}
import json as _json
def _rows(rows):
    return sorted(({{k: v for k, v in row.items() if k != "batch" and not (k == "_rescued_data" and v is None)}} for row in rows), key=lambda row: row["id"])
_duck = con.sql(f"SELECT * FROM delta_scan('{{table}}')")
_duck_rows = [dict(zip(_duck.columns, values)) for values in _duck.fetchall()]
print(_json.dumps({{
    "duckdb": _rows(_duck_rows),
    "duckdb_by_batch": sorted(count for _, count in by_batch),
    "deltalake": _rows(delta_rows.to_pylist()),
    "deltalake_columns": delta_rows.column_names,
    "first_version_rows": first_version.num_rows,
}}))
"#
    );
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(&script)
        .current_dir(sandbox.dir.path())
        .output()
        .unwrap();
    let ran = crate::run::ran(output);
    assert_eq!(ran.code, 0, "{ran:?}\n--- script\n{script}");
    serde_json::from_str(ran.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{err}: {ran:?}"))
}

/// The rows a reader should see for these served pages: every field, `satisfaction` null where
/// the record has none, `amount` a double (the widened column), sorted by id.
fn expected_rows(served: &[&[Value]]) -> Vec<Value> {
    let mut rows: Vec<Value> = served
        .iter()
        .flat_map(|pages| pages.iter())
        .flat_map(|page| page.as_array().unwrap().clone())
        .map(|mut record| {
            if record.get("satisfaction").is_none() {
                record["satisfaction"] = Value::Null;
            }
            record["amount"] = json!(record["amount"].as_f64().unwrap());
            record
        })
        .collect();
    rows.sort_by_key(|row| row["id"].as_i64().unwrap());
    rows
}

fn assert_reads(got: &Value, expected: &[Value], context: &str) {
    for reader in ["duckdb", "deltalake"] {
        assert_eq!(
            got[reader].as_array().unwrap(),
            expected,
            "{context}: {reader} reads every record once, as last served: {got:#}"
        );
    }
}

#[test]
fn a_delta_table_takes_windows_a_replacing_rerun_a_grown_schema_and_kills_mid_commit() {
    let pages: Pages = Arc::new(Mutex::new(Vec::new()));
    let source = serve(&pages);
    let sandbox = Sandbox::new();
    let flow = delta_bundle(&sandbox, &source.server.base_url());
    let day_1 = (DAY_1, DAY_2);
    let day_2 = (DAY_2, DAY_3);

    let first_day_1 = orders(&[1, 2, 3], 1, false);
    let ran = serve_and_run(&sandbox, &flow, &pages, first_day_1.clone(), day_1, None);
    assert_eq!(ran.code, 0, "{ran:?}");
    let first_day_2 = orders(&[4, 5, 6], 1, false);
    let ran = serve_and_run(&sandbox, &flow, &pages, first_day_2.clone(), day_2, None);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(log_commits(&sandbox), 2, "one commit per window");

    // A re-run of day 1: new values and a new field; its old batch is removed in the same commit.
    let second_day_1 = orders(&[1, 2, 3, 7], 2, true);
    let ran = serve_and_run(&sandbox, &flow, &pages, second_day_1.clone(), day_1, None);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(log_commits(&sandbox), 3);

    // Killed after the new parts were renamed into the table folder, before the Delta commit:
    // readers still see the old version of day 2.
    let third_day_2 = orders(&[4, 5, 6], 3, false);
    let ran = serve_and_run(
        &sandbox,
        &flow,
        &pages,
        third_day_2.clone(),
        day_2,
        Some("delta-renamed"),
    );
    assert_ne!(ran.code, 0, "the run aborts at the crash point: {ran:?}");
    assert_eq!(log_commits(&sandbox), 3, "nothing committed");
    let got = read_table(&sandbox);
    assert_reads(
        &got,
        &expected_rows(&[&second_day_1, &first_day_2]),
        "killed before the commit",
    );
    // The next `tributary run` first finishes that commit (recovery at start: one commit), then
    // runs the window again as asked (a re-run: a second commit that replaces it).
    let ran = run_window(&sandbox, &flow, day_2.0, day_2.1, None);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(log_commits(&sandbox), 5);
    let got = read_table(&sandbox);
    assert_reads(
        &got,
        &expected_rows(&[&second_day_1, &third_day_2]),
        "after the finished commit",
    );

    // Killed after the Delta commit landed, before state recorded it: the commit is the publish,
    // so readers see the new version, and finishing the run does not commit it again.
    let fourth_day_2 = orders(&[4, 5, 6, 8], 4, false);
    let ran = serve_and_run(
        &sandbox,
        &flow,
        &pages,
        fourth_day_2.clone(),
        day_2,
        Some("delta-committed"),
    );
    assert_ne!(ran.code, 0, "the run aborts at the crash point: {ran:?}");
    assert_eq!(log_commits(&sandbox), 6);
    let got = read_table(&sandbox);
    assert_reads(
        &got,
        &expected_rows(&[&second_day_1, &fourth_day_2]),
        "killed after the commit",
    );
    let ran = run_window(&sandbox, &flow, day_2.0, day_2.1, None);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        log_commits(&sandbox),
        7,
        "recovery's redone commit found itself in the table (no commit); the re-run made one"
    );

    let got = read_table(&sandbox);
    let expected = expected_rows(&[&second_day_1, &fourth_day_2]);
    assert_eq!(expected.len(), 8);
    assert_reads(&got, &expected, "after every run");
    assert_eq!(
        got["duckdb_by_batch"],
        json!([4, 4]),
        "one batch per window: {got:#}"
    );
    let columns = got["deltalake_columns"].as_array().unwrap();
    for column in ["id", "name", "amount", "satisfaction", "batch"] {
        assert!(columns.contains(&json!(column)), "{column} in {got:#}");
    }
    assert_eq!(
        got["first_version_rows"], 3,
        "version 0 (day 1's first batch) is still readable: its files were removed from the table, not deleted"
    );
}
