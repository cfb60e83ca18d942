//! Nothing lost, nothing doubled, nothing leaked (issue 9), through the real binary against
//! servers on loopback: a failed re-run keeps the committed batch; overlapping windows are
//! refused and backfills with another step run only what no window covers; a run cut short by
//! `maximumRequest` says so and the next run continues; rejected rows are kept only with error
//! diagnostics; no secret reaches state files or logs, next-page URLs included.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tributary_mockapi::MockConfig;

use crate::backfill::{assert_each_id_once, bundle_json, files_under, published_id_counts};
use crate::hostile::{Reply, Serving, serve_in_background};
use crate::run::{Sandbox, basic_mock, mock};

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A bundle over the in-process mock with Basic auth (the mock's `ann` / `it-password`).
fn members_bundle(
    sandbox: &Sandbox,
    mock_url: &str,
    name: &str,
    page: u32,
    extra: Value,
) -> String {
    let mut bundle: Value =
        serde_json::from_str(&bundle_json(name, mock_url, name, page, None)).unwrap();
    bundle["baseConnection"]["auth"]["params"] =
        json!({"host": mock_url, "username": "ann", "password": "it-password"});
    merge(&mut bundle, extra);
    sandbox.bundle(name, &bundle)
}

fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(into), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, extra) => *into = extra,
    }
}

fn rows(sandbox: &Sandbox, dataset: &str) -> usize {
    published_id_counts(&sandbox.data(), dataset)
        .values()
        .map(|n| *n as usize)
        .sum()
}

fn batch_dirs(sandbox: &Sandbox, dataset: &str) -> Vec<String> {
    let mut dirs: Vec<String> = sandbox
        .dataset_files(dataset)
        .into_iter()
        .filter(|file| file.starts_with("batch="))
        .filter_map(|file| file.split('/').next().map(str::to_owned))
        .collect();
    dirs.dedup();
    dirs
}

#[test]
fn a_failed_rerun_leaves_the_committed_batch_exactly_as_it_was() {
    let mock = mock(basic_mock(20_000));
    let sandbox = Sandbox::new();
    let bundle = members_bundle(&sandbox, &mock.server.base_url(), "rerun", 1000, json!({}));
    let first = sandbox.tributary(&["run", &bundle]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(rows(&sandbox, "rerun"), 20_000);
    let batches_before = batch_dirs(&sandbox, "rerun");
    let files_before = sandbox.dataset_files("rerun");
    assert_eq!(batches_before.len(), 1);

    // The API goes away; the same command again fails and changes nothing a reader sees.
    mock.stop();
    let second = sandbox.tributary(&["run", &bundle]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(second.stderr.contains("the run failed"), "{second:?}");
    assert_eq!(sandbox.dataset_files("rerun"), files_before, "untouched");
    assert_eq!(rows(&sandbox, "rerun"), 20_000);
    assert_each_id_once(&sandbox.data(), "rerun", 20_000);
}

#[test]
fn a_successful_rerun_replaces_the_batch_at_commit() {
    let mock = mock(basic_mock(3_000));
    let sandbox = Sandbox::new();
    let bundle = members_bundle(&sandbox, &mock.server.base_url(), "swap", 500, json!({}));
    assert_eq!(sandbox.tributary(&["run", &bundle]).code, 0);
    let before = batch_dirs(&sandbox, "swap");
    let again = sandbox.tributary(&["run", &bundle]);
    assert_eq!(again.code, 0, "{again:?}");
    let after = batch_dirs(&sandbox, "swap");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "a new batch replaced the old one");
    assert_each_id_once(&sandbox.data(), "swap", 3_000);
}

/// A mock whose records are one minute apart from 2024-01-01.
fn timed_mock(records: u64) -> crate::run::Mock {
    mock(MockConfig {
        start_time: t("2024-01-01T00:00:00Z"),
        step: std::time::Duration::from_secs(60),
        ..basic_mock(records)
    })
}

#[test]
fn overlapping_windows_are_refused_and_backfills_run_only_uncovered_time() {
    // 7,200 records, one a minute: five days.
    let mock = timed_mock(7_200);
    let sandbox = Sandbox::new();
    let schedule = json!({"flow": {"scheduleParams": {
        "startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "day", "interval": 1, "backfill": true}}});
    let bundle = members_bundle(&sandbox, &mock.server.base_url(), "overlap", 500, schedule);

    let first = sandbox.tributary(&[
        "run",
        &bundle,
        "--window-start",
        "2024-01-01T00:00:00Z",
        "--window-end",
        "2024-01-02T00:00:00Z",
    ]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(rows(&sandbox, "overlap"), 1_440);

    // The same start, a later end: refused, naming the committed window and what to run instead.
    let overlapping =
        sandbox.tributary(&["run", &bundle, "--window-start", "2024-01-01T00:00:00Z"]);
    assert_eq!(overlapping.code, 2, "{overlapping:?}");
    assert!(
        overlapping.stderr.contains(
            "overlaps the committed window [2024-01-01T00:00:00+00:00, 2024-01-02T00:00:00+00:00) (batch "
        ),
        "{overlapping:?}"
    );
    assert!(
        overlapping.stderr.contains(
            "to ingest only what is not covered yet, run --window-start 2024-01-02T00:00:00+00:00"
        ),
        "{overlapping:?}"
    );
    assert_eq!(rows(&sandbox, "overlap"), 1_440, "nothing was fetched");

    // Backfills of the five days with two steps: each record once.
    for step in ["2d", "1d"] {
        let ran = sandbox.tributary(&[
            "backfill",
            &bundle,
            "--from",
            "2024-01-01T00:00:00Z",
            "--to",
            "2024-01-04T00:00:00Z",
            "--step",
            step,
            "--parallel",
            "2",
        ]);
        assert_eq!(ran.code, 0, "{ran:?}");
        assert_each_id_once(&sandbox.data(), "overlap", 3 * 1_440);
    }
    // The second backfill found everything covered.
    let runs = sandbox.tributary(&["runs", "--json", "--limit", "100"]);
    let runs: Vec<Value> = serde_json::from_str(&runs.stdout).unwrap();
    let windows: Vec<(i64, i64)> = runs
        .iter()
        .filter(|run| run["state"] == "success")
        .map(|run| {
            (
                run["params"]["windowStartTime"].as_i64().unwrap(),
                run["params"]["windowEndTime"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = windows.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "committed windows overlap: {sorted:?}"
        );
    }
    assert_eq!(
        windows.len(),
        2,
        "the day of `run` and one 2-day window: {sorted:?}"
    );

    // The schedule composes with the backfill: the next scheduled window starts at its end.
    let next = sandbox.tributary(&["run", &bundle, "--json"]);
    assert_eq!(next.code, 0, "{next:?}");
    let run: Value = serde_json::from_str(&next.stdout).unwrap();
    assert_eq!(
        run["params"]["windowStartTime"],
        t("2024-01-04T00:00:00Z").timestamp_millis(),
        "{run:#}"
    );
    assert_each_id_once(&sandbox.data(), "overlap", 7_200);
}

#[test]
fn maximum_request_truncates_visibly_and_the_next_runs_continue_to_the_end() {
    let mock = mock(basic_mock(20_000));
    let sandbox = Sandbox::new();
    let capped = json!({"connectionSpec": {"sourceSpec": {"attributes": {
        "paginationParams": {"maximumRequest": 3}}}}});
    let bundle = members_bundle(&sandbox, &mock.server.base_url(), "capped", 500, capped);
    let first = sandbox.tributary(&["run", &bundle, "--json"]);
    assert_eq!(first.code, 0, "{first:?}");
    let run: Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(run["state"], "success");
    assert_eq!(run["truncated"], true, "{run:#}");
    assert_eq!(run["metrics"]["recordSummary"]["outputRecordCount"], 1_500);
    let warning = &run["metrics"]["statusSummary"]["warnings"][0];
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("maximumRequest (3) reached with pages left"),
        "{run:#}"
    );
    assert_eq!(
        rows(&sandbox, "capped"),
        1_500,
        "what was fetched is visible"
    );

    // 40 full pages and the empty one after them: 41 requests, 3 a run.
    let mut n_runs = 1;
    loop {
        let ran = sandbox.tributary(&["run", &bundle, "--json"]);
        assert_eq!(ran.code, 0, "{ran:?}");
        n_runs += 1;
        let run: Value = serde_json::from_str(&ran.stdout).unwrap();
        if run["truncated"] == false {
            break;
        }
        assert!(n_runs < 20, "the window never finished");
    }
    assert_eq!(n_runs, 14);
    assert_each_id_once(&sandbox.data(), "capped", 20_000);
    // Once complete, a run replaces every segment at once.
    let rerun = sandbox.tributary(&["run", &bundle]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_eq!(
        rows(&sandbox, "capped"),
        1_500,
        "the first segment of the new generation"
    );
    assert_eq!(batch_dirs(&sandbox, "capped").len(), 1);
}

/// The mapped bundle of the mapping tests with `options` as the flow's options.
fn mapped(sandbox: &Sandbox, mock: &crate::run::Mock, options: Value) -> String {
    let mut bundle = crate::mapping::mapped_bundle(mock, "profiles", None);
    bundle["flow"]["options"] = options;
    sandbox.bundle("mapped", &bundle)
}

#[test]
fn rejected_rows_are_kept_only_with_error_diagnostics() {
    let mock = mock(basic_mock(600));
    // Without a threshold any rejected row fails the run; with diagnostics the rows are kept.
    let sandbox = Sandbox::new();
    let bundle = mapped(&sandbox, &mock, json!({"errorDiagnosticsEnabled": true}));
    let ran = sandbox.tributary(&["run", &bundle]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stderr.contains("the rejected rows are in"), "{ran:?}");
    let files = sandbox.dataset_files("profiles");
    assert!(
        !files.is_empty() && files.iter().all(|f| f.starts_with("_errors/batch=")),
        "{files:?}"
    );

    let sandbox = Sandbox::new();
    let bundle = mapped(&sandbox, &mock, json!({"errorDiagnosticsEnabled": false}));
    let ran = sandbox.tributary(&["run", &bundle, "--json"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let run: Value = serde_json::from_str(&ran.stdout).unwrap();
    let errors = run["metrics"]["statusSummary"]["errors"].to_string();
    assert!(errors.contains("INGEST-1211-400"), "{run:#}");
    assert_eq!(
        sandbox.dataset_files("profiles"),
        Vec::<String>::new(),
        "nothing kept"
    );
}

/// Serves `/items?page=N` with ten records and a `next` URL that echoes the API key, as some
/// APIs do, until page 5.
fn serve_pages_with_keyed_next_urls(key: &'static str) -> Serving {
    let base: Arc<OnceLock<String>> = Arc::default();
    let next_base = base.clone();
    let serving = serve_in_background(move |request, _| {
        let page: u32 = request
            .query_param("page")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let items: Vec<Value> = (0..10)
            .map(|i| json!({"id": format!("p{page}-{i}"), "n": i}))
            .collect();
        let base = next_base.get().expect("set before the first request");
        let next = (page < 5).then(|| format!("{base}/items?page={}&api_key={key}", page + 1));
        Reply::json(json!({"items": items, "next": next}))
    });
    base.set(serving.server.base_url()).unwrap();
    serving
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_reaches_state_files_or_logs_next_page_urls_included() {
    const KEY: &str = "sk-live-4f9a1c77e2b04d1e";
    let source = serve_pages_with_keyed_next_urls(KEY);
    let base = source.server.base_url();
    let sandbox = Sandbox::new();
    let bundle = json!({
        "name": "keyed",
        "connectionSpec": {"name": "keyed pages",
            "authSpec": [{"name": "API Key Authentication", "type": "KeyBased", "spec": {"type": "object",
                "properties": {"host": {"type": "string"},
                               "apiKey": {"type": "string", "format": "password", "restAttributes": {"headerParamName": "X-Api-Key"}}}}}],
            "sourceSpec": {"attributes": {
                "urlParams": {"path": "/items", "method": "GET", "queryParams": {"api_key": "${apiKey}", "page": "1"}},
                "contentPath": {"path": "$.items"},
                "paginationParams": {"type": "POINTER", "pointerPath": "$.next", "limitName": "limit", "limitValue": "10",
                                     "maximumRequest": 2}}}},
        "baseConnection": {"auth": {"specName": "API Key Authentication", "params": {"host": base, "apiKey": KEY}}},
        "sourceConnection": {"params": {}},
        "targetConnection": {"params": {"dataSetId": "keyed"}}
    });
    let path = sandbox.bundle("keyed", &bundle);
    // Cut short by maximumRequest, so the window's position (a next URL with the key in it) is
    // kept in state; then with debug logs, the run that continues it.
    let first = sandbox.tributary(&["run", &path]);
    assert_eq!(first.code, 0, "{first:?}");
    let second = sandbox
        .command(&["run", &path])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let second = crate::run::ran(second);
    assert_eq!(second.code, 0, "{second:?}");
    for ran in [&first, &second] {
        assert!(
            !ran.stdout.contains(KEY) && !ran.stderr.contains(KEY),
            "the key was printed: {ran:?}"
        );
    }
    let state_dir = sandbox.dir.path().join("state");
    let files = files_under(&state_dir);
    assert!(!files.is_empty());
    for relative in files {
        let bytes = std::fs::read(state_dir.join(&relative)).unwrap();
        assert!(
            !contains(&bytes, KEY.as_bytes()),
            "{} holds the key in clear",
            relative.display()
        );
    }
    let ids: HashSet<String> = published_id_counts(&sandbox.data(), "keyed")
        .into_keys()
        .collect();
    assert_eq!(
        ids.len(),
        40,
        "four of five pages in two runs of two requests"
    );
}

#[test]
fn four_runs_under_a_budget_smaller_than_one_page_finish_with_every_record() {
    use std::sync::Arc;
    use tributary_engine::run::{Engine, EngineOptions, Progress, RunRequest, RunStatus};
    use tributary_fetch::{FetchContext, FetchSettings, Limiters, MemoryBudget};

    const RECORDS: u64 = 6_000;
    let mock = mock(basic_mock(RECORDS));
    let sandbox = Sandbox::new();
    // A page of 1,000 mock records is about 600 KiB: both budgets are smaller than one page, so
    // every page and every batch waits for the others across the four runs.
    let page_budget = MemoryBudget::new(256 * 1024);
    let batch_budget = MemoryBudget::new(256 * 1024);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine {
        layout: tributary_write::DatasetLayout::new(sandbox.data()),
        db: tributary_state::Db::open(&sandbox.dir.path().join("state"), Default::default())
            .unwrap(),
        fetch: FetchContext::try_new(Limiters::new(), FetchSettings::default())
            .unwrap()
            .with_page_budget(page_budget.clone()),
        options: EngineOptions {
            batch_budget: Some(batch_budget.clone()),
            batch_rows: 1_000,
            ..EngineOptions::default()
        },
        running: Default::default(),
    };
    let reports = runtime.block_on(async {
        let mut runs = Vec::new();
        for n in 0..4 {
            let name = format!("budget-{n}");
            let path = members_bundle(&sandbox, &mock.server.base_url(), &name, 1000, json!({}));
            let text = std::fs::read_to_string(&path).unwrap();
            let bundle = Arc::new(
                tributary_spec::load_bundle(&name, &text, |_, _| Err("no references".to_owned()))
                    .unwrap(),
            );
            let request = RunRequest {
                flow_id: tributary_engine::run::bundle_flow_id(&name),
                bundle,
                window: None,
                progress: Arc::new(Progress::default()),
            };
            let engine = engine.clone();
            runs.push(tokio::spawn(async move {
                tributary_engine::run::run_flow(&engine, request).await
            }));
        }
        let mut reports = Vec::new();
        for run in runs {
            reports.push(run.await.unwrap().unwrap());
        }
        reports
    });
    for (n, report) in reports.iter().enumerate() {
        assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
        assert_each_id_once(&sandbox.data(), &format!("budget-{n}"), RECORDS as usize);
    }
    assert_eq!(
        page_budget.peak_bytes(),
        page_budget.total_bytes(),
        "pages were held to the budget"
    );
    assert_eq!(
        batch_budget.peak_bytes(),
        batch_budget.total_bytes(),
        "batches were held to the budget"
    );
    assert_eq!(
        page_budget.available_bytes(),
        page_budget.total_bytes(),
        "every page gave its bytes back"
    );
    assert_eq!(
        batch_budget.available_bytes(),
        batch_budget.total_bytes(),
        "every batch gave its bytes back"
    );
}

#[test]
fn a_parallel_backfill_keeps_to_the_rate_its_spec_declares() {
    // Four days, a record a minute, 120 a page: 12 pages (+1 empty) a day, 52 requests.
    let mock = timed_mock(4 * 1_440);
    let sandbox = Sandbox::new();
    let paced = json!({"connectionSpec": {"sourceSpec": {"attributes": {
        "paginationParams": {"delayRequestMillis": 100}}}}});
    let bundle = members_bundle(&sandbox, &mock.server.base_url(), "paced", 120, paced);
    let ran = sandbox.tributary(&[
        "backfill",
        &bundle,
        "--from",
        "2024-01-01T00:00:00Z",
        "--to",
        "2024-01-05T00:00:00Z",
        "--step",
        "1d",
        "--parallel",
        "4",
    ]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_each_id_once(&sandbox.data(), "paced", 4 * 1_440);
    let log = mock.server.stats().log;
    let data_requests: Vec<std::time::Duration> = log
        .iter()
        .filter(|record| record.path.ends_with("/members"))
        .map(|record| record.at)
        .collect();
    assert!(
        data_requests.len() >= 52,
        "{} requests",
        data_requests.len()
    );
    // The busiest one-second span, sliding over every request, as the server saw them (less
    // 10 ms for the jitter of arrival on a loaded machine).
    let mut busiest = 0;
    for (idx, start) in data_requests.iter().enumerate() {
        let within = data_requests[idx..]
            .iter()
            .take_while(|at| **at < *start + std::time::Duration::from_millis(990))
            .count();
        busiest = busiest.max(within);
    }
    eprintln!(
        "parallel backfill: {} requests, busiest second {busiest}",
        data_requests.len()
    );
    assert!(
        busiest <= 10 + 1,
        "{busiest} requests in one second: 100 ms apart allows 10 + a burst of 1"
    );
}

#[test]
fn a_delta_target_on_a_dataset_of_parquet_batches_is_refused_and_changes_nothing() {
    let mock = mock(basic_mock(10));
    let sandbox = Sandbox::new();
    let parquet = members_bundle(&sandbox, &mock.server.base_url(), "mixed", 10, json!({}));
    let ran = sandbox.tributary(&["run", &parquet]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let before = sandbox.dataset_files("mixed");
    assert_eq!(before.len(), 1, "{before:?}");

    let delta = json!({"targetConnection": {"data": {"format": "delta"}}});
    let bundle = members_bundle(&sandbox, &mock.server.base_url(), "mixed", 10, delta);
    let ran = sandbox.tributary(&["run", &bundle]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("already holds Parquet batches"),
        "{ran:?}"
    );
    assert_eq!(sandbox.dataset_files("mixed"), before);
}

#[test]
fn a_run_that_finds_an_interrupted_commit_finishes_it_without_fetching_again() {
    use std::sync::Arc;
    use tributary_engine::run::{Engine, EngineOptions, Progress, RunRequest, RunStatus};
    use tributary_state::{BatchId, DatasetId, PartEntry, PartState, RunId};

    let sandbox = Sandbox::new();
    // The source is gone: a run that fetched would fail.
    let path = members_bundle(&sandbox, "http://127.0.0.1:9", "finish", 10, json!({}));
    let text = std::fs::read_to_string(&path).unwrap();
    let bundle = Arc::new(
        tributary_spec::load_bundle("finish", &text, |_, _| Err("no references".to_owned()))
            .unwrap(),
    );
    let flow_id = tributary_engine::run::bundle_flow_id("finish");
    let engine = Engine {
        layout: tributary_write::DatasetLayout::new(sandbox.data()),
        db: tributary_state::Db::open(&sandbox.dir.path().join("state"), Default::default())
            .unwrap(),
        fetch: tributary_fetch::FetchContext::try_new(
            tributary_fetch::Limiters::new(),
            tributary_fetch::FetchSettings::default(),
        )
        .unwrap(),
        options: EngineOptions::default(),
        running: Default::default(),
    };
    // An attempt whose part is staged and recorded, and whose commit started: what a crash
    // between `start_commit` and the rename leaves.
    let key = tributary_engine::run::window_key(&flow_id, None);
    engine
        .db
        .begin_window(
            &key,
            &RunId::new("r1"),
            &BatchId::new("b1"),
            &DatasetId::new("finish"),
        )
        .unwrap();
    let dataset = tributary_write::DatasetId::try_new("finish").unwrap();
    let batch = tributary_write::BatchId::try_new("b1").unwrap();
    let mut writer = tributary_write::PartWriter::try_new(
        &engine.layout,
        &dataset,
        &batch,
        0,
        tributary_write::WriterOptions::default(),
    )
    .unwrap();
    let ids: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["a", "b", "c"]));
    let record_batch = arrow_array::RecordBatch::try_from_iter([("id", ids)]).unwrap();
    writer.write(&record_batch).unwrap();
    let part = writer.finish().unwrap().unwrap();
    let entry = PartEntry {
        seq: 0,
        staged_path: part.staged_path.display().to_string(),
        final_path: part.final_path.display().to_string(),
        rows: 3,
        bytes: part.bytes,
        state: PartState::Pending,
    };
    let position = json!({"fetch": null, "records_read": 3, "records_failed": 0, "records_warned": 0, "bytes_in": 30, "pages": 1});
    engine
        .db
        .record_parts(&key, &[entry], &position, 3)
        .unwrap();
    engine.db.start_commit(&key, false).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime
        .block_on(tributary_engine::run::run_flow(
            &engine,
            RunRequest {
                flow_id,
                bundle,
                window: None,
                progress: Arc::new(Progress::default()),
            },
        ))
        .unwrap();
    assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
    assert_eq!(report.metrics.requests, 0, "nothing was fetched");
    assert_eq!(report.metrics.records_written, 3);
    assert_eq!(
        sandbox.dataset_files("finish"),
        vec!["batch=b1/part-00000.parquet".to_owned()]
    );
}
