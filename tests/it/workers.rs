//! Decode workers and encode threads: pages decoded ahead on a pool of threads, and columns
//! encoded on several, give exactly the dataset, counters and warnings of one decode thread and
//! one encode thread, whatever the pages bring.

use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use serde_json::{Value, json};
use tributary_engine::run::{
    Engine, EngineOptions, Progress, RunReport, RunRequest, RunStatus, bundle_flow_id, run_flow,
};
use tributary_fetch::{FetchContext, FetchSettings, Limiters};

use crate::hostile::{Pages, serve_pages};
use crate::run::{Sandbox, basic_auth_spec, bundle, read_parquet};

const PAGES: u64 = 60;
const PER_PAGE: u64 = 40;

/// Pages whose records change shape on the way: a new top-level field from page 10, an integer
/// column that turns float on page 20, a string in that number column on page 27 (rescued),
/// a nested object that gains a field on page 33, a list that turns into an object on page 41
/// (rescued), and records missing fields on page 50.
fn shifting_pages() -> Vec<Value> {
    (0..PAGES)
        .map(|page| {
            let records: Vec<Value> = (0..PER_PAGE)
                .map(|i| {
                    let n = page * PER_PAGE + i;
                    let mut record = json!({
                        "id": format!("r-{n:05}"),
                        "count": n,
                        "tags": ["a", format!("t{}", n % 7)],
                        "profile": {"city": format!("c{}", n % 11)},
                    });
                    if page >= 10 && n.is_multiple_of(3) {
                        record["nickname"] = json!(format!("nick {n}"));
                    }
                    if page == 20 && i == 5 {
                        record["count"] = json!(n as f64 + 0.5);
                    }
                    if page == 27 && i == 1 {
                        record["count"] = json!("many");
                    }
                    if page >= 33 {
                        record["profile"]["zip"] = json!(format!("{:05}", n % 99_999));
                    }
                    if page == 41 && i == 0 {
                        record["tags"] = json!({"not": "a list"});
                    }
                    if page == 50 && i % 2 == 1 {
                        record = json!({"id": format!("r-{n:05}")});
                    }
                    record
                })
                .collect();
            Value::Array(records)
        })
        .collect()
}

/// One run of the pages with `workers` decode workers and as many encode threads, into a
/// sandbox of its own.
fn run_with_workers(base_url: &str, workers: usize) -> (Sandbox, RunReport) {
    let sandbox = Sandbox::new();
    let attributes = json!({
        "urlParams": {"path": "/shifting", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": PER_PAGE, "pageParamName": "page"}
    });
    let params = json!({"host": base_url, "username": "u", "password": "p"});
    let flow = bundle(
        "it-workers",
        basic_auth_spec(),
        attributes,
        params,
        "shifting",
    );
    let bundle = Arc::new(
        tributary_spec::load_bundle("workers", &flow.to_string(), |_, _| {
            Err("no references".to_owned())
        })
        .unwrap(),
    );
    let mut options = EngineOptions {
        decode_workers: workers,
        // Small batches, so that pages are split and joined across batch boundaries.
        batch_rows: 100,
        ..EngineOptions::default()
    };
    options.writer.encode_threads = std::num::NonZeroUsize::new(workers.max(1)).unwrap();
    let engine = Engine {
        layout: tributary_write::DatasetLayout::new(sandbox.data()),
        db: tributary_state::Db::open(&sandbox.dir.path().join("state"), Default::default())
            .unwrap(),
        fetch: FetchContext::try_new(Limiters::new(), FetchSettings::default()).unwrap(),
        options,
        running: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(run_flow(
            &engine,
            RunRequest {
                flow_id: bundle_flow_id(&bundle.name),
                bundle: bundle.clone(),
                window: None,
                progress: Arc::new(Progress::default()),
            },
        ))
        .unwrap();
    (sandbox, report)
}

/// The dataset as JSON lines, file by file in order, with each file's schema.
fn dataset_text(sandbox: &Sandbox) -> Vec<String> {
    let batches: Vec<RecordBatch> = read_parquet(&sandbox.data().join("datasets/shifting"));
    let mut lines = Vec::new();
    for batch in &batches {
        lines.push(format!("schema {}", batch.schema()));
        let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        let text = String::from_utf8(writer.into_inner()).unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

#[test]
fn decode_workers_give_the_dataset_and_counts_of_one_thread() {
    let pages: Pages = Arc::new(Mutex::new(shifting_pages()));
    let source = serve_pages(&pages);
    let base_url = source.server.base_url();

    let (alone, one_thread) = run_with_workers(&base_url, 0);
    assert_eq!(
        one_thread.status,
        RunStatus::Success,
        "{:?}",
        one_thread.error
    );
    assert_eq!(one_thread.metrics.records_read, PAGES * PER_PAGE);
    assert_eq!(one_thread.metrics.records_written, PAGES * PER_PAGE);
    // The string in the number column and the object in the list column were rescued.
    assert!(
        one_thread.metrics.records_rescued >= 2,
        "{:?}",
        one_thread.metrics
    );
    let expected = dataset_text(&alone);
    assert!(
        expected.iter().any(|line| line.contains("_rescued_data")),
        "the misfits are in _rescued_data"
    );

    for workers in [1, 3] {
        let (sandbox, report) = run_with_workers(&base_url, workers);
        assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
        let m = &report.metrics;
        let o = &one_thread.metrics;
        assert_eq!(
            (
                m.records_read,
                m.records_written,
                m.records_warned,
                m.records_rescued
            ),
            (
                o.records_read,
                o.records_written,
                o.records_warned,
                o.records_rescued
            ),
            "{workers} workers"
        );
        assert_eq!(m.error_codes, o.error_codes, "{workers} workers");
        let got = dataset_text(&sandbox);
        assert_eq!(got.len(), expected.len(), "{workers} workers");
        for (n, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(got, expected, "{workers} workers, line {n}");
        }
    }
}

#[test]
fn a_bad_page_fails_the_run_with_workers_as_with_one_thread_and_publishes_nothing() {
    // Page 17 holds a record that is not an object: the pages after it, already decoded ahead
    // by the workers, are dropped, and the run fails on page 17 as one thread would.
    let mut bad = shifting_pages();
    bad[17] = json!([{"id": "r-x"}, 7, {"id": "r-y"}]);
    let pages: Pages = Arc::new(Mutex::new(bad));
    let source = serve_pages(&pages);
    let base_url = source.server.base_url();
    let (alone, one_thread) = run_with_workers(&base_url, 0);
    let (pooled, with_workers) = run_with_workers(&base_url, 3);
    for (sandbox, report) in [(&alone, &one_thread), (&pooled, &with_workers)] {
        assert_eq!(report.status, RunStatus::Failed, "{report:?}");
        assert!(
            !sandbox.data().join("datasets/shifting").exists()
                || sandbox.dataset_files("shifting").is_empty(),
            "nothing published: {:?}",
            sandbox.dataset_files("shifting")
        );
    }
    assert_eq!(one_thread.error, with_workers.error);
    let error = one_thread.error.clone().unwrap();
    assert!(
        error.contains("page 17") && error.contains("expected an object"),
        "{error}"
    );
}
