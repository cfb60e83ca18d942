//! `tributary backfill` (the real binary) against the mock API as a child process: 30 daily
//! windows over records spaced one hour apart (so records sit exactly on every window
//! boundary), run partly, killed mid-way, and re-invoked; every id is published exactly once.
//!
//! Also the helpers the daemon and crash tests share: the mock child process, bundle files and
//! reading the published dataset back.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow_array::{Array as _, LargeStringArray, StringArray, StringViewArray};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_tributary");

/// The mock API as a child process; killed when dropped.
pub struct MockChild {
    child: Child,
    pub url: String,
}

impl Drop for MockChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tributary mock-api --port 0 ARGS...` and waits for its `listening on URL` line.
pub fn start_mock(args: &[&str]) -> MockChild {
    let mut child = Command::new(BIN)
        .args(["mock-api", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the mock API");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the mock's first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected mock output {line:?}"))
        .to_owned();
    MockChild { child, url }
}

/// A self-contained flow bundle over the mock's `/3.0/lists/x/members` (OFFSET pagination,
/// `page_size` records a page) with schedule parameters, writing to dataset `dataset`.
pub fn bundle_json(
    name: &str,
    url: &str,
    dataset: &str,
    page_size: u32,
    schedule: Option<Value>,
) -> String {
    let mut bundle = json!({
        "name": name,
        "connectionSpec": {
            "name": "mock members",
            "providerId": tributary_spec::GENERIC_REST_PROVIDER_ID,
            "version": "1.0",
            "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {
                "type": "object",
                "properties": {"host": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
                "required": ["host", "username", "password"]}}],
            "sourceSpec": {"attributes": {
                "urlParams": {"path": "/3.0/lists/x/members", "method": "GET"},
                "contentPath": {"path": "$.members"},
                "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": page_size, "offSetName": "offset"},
                "scheduleParams": {
                    "scheduleStartParamName": "since_last_changed",
                    "scheduleEndParamName": "before_last_changed",
                    "scheduleStartParamFormat": "yyyy-MM-ddTHH:mm:ssZ",
                    "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ssZ"
                },
            }},
        },
        "baseConnection": {"auth": {"specName": "Basic Authentication", "params": {"host": url, "username": "u", "password": "p"}}},
        "sourceConnection": {"params": {}},
        "targetConnection": {"params": {"dataSetId": dataset}},
    });
    if let Some(schedule) = schedule {
        bundle["flow"] = json!({"scheduleParams": schedule});
    }
    bundle.to_string()
}

/// Every file under `dir`, relative to it.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    files.sort();
    files
}

/// How many times each `id` occurs in the published Parquet files of a dataset (the `_errors`
/// folder aside).
pub fn published_id_counts(data_dir: &Path, dataset: &str) -> HashMap<String, u32> {
    let dataset_dir = data_dir.join("datasets").join(dataset);
    let mut counts = HashMap::new();
    for relative in files_under(&dataset_dir) {
        let is_data = relative.extension().is_some_and(|e| e == "parquet")
            && !relative.starts_with("_errors");
        if !is_data {
            continue;
        }
        let file = std::fs::File::open(dataset_dir.join(&relative)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch
                .column_by_name("id")
                .unwrap_or_else(|| panic!("{} has no id column", relative.display()));
            for row in 0..column.len() {
                let any = column.as_any();
                let id = if let Some(a) = any.downcast_ref::<StringArray>() {
                    a.value(row).to_owned()
                } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
                    a.value(row).to_owned()
                } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
                    a.value(row).to_owned()
                } else {
                    panic!(
                        "id column of {} is {:?}",
                        relative.display(),
                        column.data_type()
                    )
                };
                *counts.entry(id).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Asserts that the dataset holds `expected` distinct ids, each exactly once.
pub fn assert_each_id_once(data_dir: &Path, dataset: &str, expected: usize) {
    let counts = published_id_counts(data_dir, dataset);
    let duplicates: Vec<(&String, &u32)> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        duplicates.is_empty(),
        "ids published more than once: {duplicates:?}"
    );
    assert_eq!(counts.len(), expected, "distinct ids published");
}

fn backfill(dir: &Path, bundle: &Path, from: &str, to: &str, parallel: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["backfill"])
        .arg(bundle)
        .args([
            "--from",
            from,
            "--to",
            to,
            "--step",
            "1d",
            "--parallel",
            parallel,
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env(
            "TRIBUTARY_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
    command
}

#[test]
fn thirty_daily_windows_interrupted_and_resumed_publish_each_record_once() {
    // 30 days of records one hour apart: 720 records, 24 per day, one at each midnight.
    let mock = start_mock(&[
        "--records",
        "720",
        "--step",
        "1h",
        "--start-time",
        "2024-01-01T00:00:00Z",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("members.json");
    std::fs::write(
        &bundle,
        bundle_json("backfill-members", &mock.url, "members", 10, None),
    )
    .unwrap();
    let (from, to) = ("2024-01-01T00:00:00Z", "2024-01-31T00:00:00Z");

    // First a narrower range: the first week.
    let output = backfill(dir.path(), &bundle, from, "2024-01-08T00:00:00Z", "3")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("done: 24 records written").count(),
        7,
        "{stderr}"
    );
    assert_each_id_once(&dir.path().join("data"), "members", 7 * 24);

    // Then the whole range, killed after three more windows are done.
    let mut child = backfill(dir.path(), &bundle, from, to, "2")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n_done = 0;
    let mut n_skipped = 0;
    while n_done < 3 && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        n_done += usize::from(line.contains("done: 24 records written"));
        n_skipped += usize::from(line.contains("skipped (complete)"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(n_skipped, 7, "the first week is skipped");
    assert_eq!(n_done, 3);

    // Re-invoked: the rest is ingested, nothing twice.
    let output = backfill(dir.path(), &bundle, from, to, "4")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.matches("skipped (complete)").count() >= 10,
        "{stderr}"
    );
    assert!(stderr.contains("30 windows:"), "{stderr}");
    assert_each_id_once(&dir.path().join("data"), "members", 720);

    // A fourth invocation has nothing left to do.
    let output = backfill(dir.path(), &bundle, from, to, "4")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr.matches("skipped (complete)").count(), 30, "{stderr}");
    assert_each_id_once(&dir.path().join("data"), "members", 720);
}

#[test]
fn a_record_on_a_window_boundary_lands_in_exactly_one_window() {
    // Records at 00:00, 12:00, 24:00 (= the next day's boundary), 36:00: two windows of a day.
    let mock = start_mock(&[
        "--records",
        "4",
        "--step",
        "12h",
        "--start-time",
        "2024-01-01T00:00:00Z",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("members.json");
    std::fs::write(
        &bundle,
        bundle_json("boundary-members", &mock.url, "boundary", 10, None),
    )
    .unwrap();
    let output = backfill(
        dir.path(),
        &bundle,
        "2024-01-01T00:00:00Z",
        "2024-01-03T00:00:00Z",
        "2",
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Each day holds its midnight record and its noon record: 2 and 2, not 3 and 1 or 3 and 2.
    assert_eq!(
        stderr.matches("done: 2 records written").count(),
        2,
        "{stderr}"
    );
    assert_each_id_once(&dir.path().join("data"), "boundary", 4);
}
