//! The whole pipeline on in-memory pages: decode, (map,) encode, stage, commit and publish, as
//! `run_flow` does it, without HTTP. 100 pages of 1,000 Mailchimp-like records (the mock API's
//! records, generated once), zstd; unmapped and with the example mapping set.
//!
//! `cargo bench -p tributary-engine --bench pipeline`

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tokio::sync::mpsc;
use tributary_engine::run::{
    Engine, EngineOptions, Progress, RunRequest, RunStatus, bundle_flow_id, run_flow_on_pages,
};
use tributary_fetch::{FetchCounters, FetchEnd, FetchEvent, FetchRun, NextPage, Page, Position};

const PAGES: u64 = 100;
const PAGE_SIZE: u64 = 1_000;

fn pages() -> Vec<Page> {
    let mut pages = Vec::new();
    for page_idx in 0..PAGES {
        let mut records = Vec::with_capacity(700 * PAGE_SIZE as usize);
        for i in 0..PAGE_SIZE {
            tributary_mockapi::write_record_json(42, page_idx * PAGE_SIZE + i, &mut records);
            records.push(b'\n');
        }
        let records = Bytes::from(records);
        pages.push(Page {
            page_idx,
            url: format!("memory://members?page={page_idx}"),
            status: 200,
            body: None,
            body_len: records.len() as u64,
            records,
            record_count: PAGE_SIZE as usize,
            position: Position {
                next: NextPage::Done,
                requests: 0,
                pages: page_idx + 1,
                window: None,
            },
            budget: None,
        });
    }
    pages
}

fn bundle(mapped: bool) -> Arc<tributary_spec::FlowBundle> {
    let mut bundle = json!({
        "name": if mapped { "pipeline-mapped" } else { "pipeline" },
        "connectionSpec": {
            "name": "in-memory members",
            "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {
                "type": "object",
                "properties": {"host": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
                "required": ["host", "username", "password"]}}],
            "sourceSpec": {"attributes": {
                "urlParams": {"path": "/members", "method": "GET"},
                "contentPath": {"path": "$.members"},
                "paginationParams": {"type": "NONE"},
            }},
        },
        "baseConnection": {"auth": {"specName": "Basic Authentication", "params": {"host": "http://127.0.0.1:9", "username": "u", "password": "p"}}},
        "sourceConnection": {"params": {}},
        "targetConnection": {"params": {"dataSetId": "members"}},
    });
    if mapped {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/mappings/mailchimp-members.json"
        );
        bundle["mappingSet"] =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    }
    let bundle =
        tributary_spec::load_bundle(
            "bench",
            &bundle.to_string(),
            |_, _| Err("inline".to_owned()),
        )
        .unwrap();
    Arc::new(bundle)
}

fn bench_pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = tributary_state::Db::open(&dir.path().join("state"), Default::default()).unwrap();
    let engine = Engine {
        layout: tributary_write::DatasetLayout::new(dir.path().join("data")),
        db,
        fetch: tributary_fetch::FetchContext::try_new(
            tributary_fetch::Limiters::new(),
            Default::default(),
        )
        .unwrap(),
        options: EngineOptions::default(),
        running: Default::default(),
    };
    let pages = pages();
    let json_bytes: usize = pages.iter().map(|page| page.records.len()).sum();

    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(PAGES * PAGE_SIZE));
    for mapped in [false, true] {
        let bundle = bundle(mapped);
        let name = if mapped {
            "in_memory_pages_mapped"
        } else {
            "in_memory_pages"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let (sender, receiver) = mpsc::channel(4);
                    let feed = pages.clone();
                    let task = tokio::spawn(async move {
                        let mut position = None;
                        for page in feed {
                            position = Some(page.position.clone());
                            if sender.send(Ok(FetchEvent::Page(page))).await.is_err() {
                                return;
                            }
                        }
                        let Some(position) = position else { return };
                        let end = FetchEnd {
                            position,
                            truncated: false,
                        };
                        let _ = sender.send(Ok(FetchEvent::End(end))).await;
                    });
                    let fetch_run = FetchRun {
                        pages: receiver,
                        task,
                        counters: Arc::new(FetchCounters::default()),
                    };
                    let request = RunRequest {
                        flow_id: bundle_flow_id(&bundle.name),
                        bundle: bundle.clone(),
                        window: None,
                        progress: Arc::new(Progress::default()),
                    };
                    let report = run_flow_on_pages(&engine, request, fetch_run)
                        .await
                        .unwrap();
                    assert_eq!(report.status, RunStatus::Success, "{:?}", report.error);
                    assert_eq!(report.metrics.records_read, PAGES * PAGE_SIZE);
                })
            })
        });
    }
    group.finish();
    eprintln!(
        "pipeline input: {:.1} MB of records JSON per iteration",
        json_bytes as f64 / 1e6
    );
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
