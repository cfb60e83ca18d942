//! Benches of the fetcher: record location (contentPath + keep/skip) on a 1,000-record page of
//! Mailchimp-like records, request building, and whole-run fetching from the mock API over
//! loopback (pages/s and MB/s are printed once, then measured by criterion in bytes/s).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tributary_fetch::{
    AttrFilter, Auth, Envelope, FetchContext, FetchPlan, FetchSettings, Limiters, RecordPath,
    RecordSelector, Redactor, RenderInputs, fetch_pages, render_base_request,
};

const SEED: u64 = 7;

/// `{"members": [1,000 records], "list_id": .., "total_items": ..}`, as the mock API serves it.
fn mailchimp_page(records: u64) -> Vec<u8> {
    let mut page = b"{\"members\":[".to_vec();
    for index in 0..records {
        if index > 0 {
            page.push(b',');
        }
        tributary_mockapi::write_record_json(SEED, index, &mut page);
    }
    page.extend_from_slice(
        b"],\"list_id\":\"bench\",\"total_items\":1000,\"_links\":[{\"rel\":\"self\"}]}",
    );
    page
}

fn spec_json(path: &str, pagination: Value) -> Value {
    json!({
        "name": "bench",
        "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication",
            "spec": {"type": "object", "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}, "host": {"type": "string"}}}}],
        "sourceSpec": {
            "attributes": {
                "urlParams": {"host": "${host}", "path": path, "method": "GET",
                              "queryParams": {"fields": "${fields}", "status": "subscribed"}},
                "headerParams": {"Accept": "application/json", "X-Request-Source": "${listId}"},
                "contentPath": {"path": "$.members", "skipAttributes": ["_links"]},
                "paginationParams": pagination
            },
            "spec": {"type": "object", "properties": {"listId": {"type": "string"}, "fields": {"type": "string"}}}
        }
    })
}

fn locate(c: &mut Criterion) {
    let page = mailchimp_page(1_000);
    eprintln!(
        "page: {} bytes, {:.0} bytes per record",
        page.len(),
        page.len() as f64 / 1_000.0
    );
    let path = RecordPath::parse("$.members").unwrap();
    let plain = RecordSelector::new(path.clone());
    let skip = RecordSelector::new(path.clone()).with_filter(AttrFilter::new(
        None,
        vec!["_links".into(), "tags".into(), "location".into()],
    ));
    let keep = RecordSelector::new(path).with_filter(AttrFilter::new(
        Some(vec![
            "id".into(),
            "email_address".into(),
            "status".into(),
            "merge_fields".into(),
            "last_changed".into(),
        ]),
        Vec::new(),
    ));
    let mut group = c.benchmark_group("locate_1000_records");
    group.throughput(Throughput::Bytes(page.len() as u64));
    for (name, selector) in [
        ("plain", &plain),
        ("skip_attributes", &skip),
        ("keep_attributes", &keep),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                selector
                    .locate(black_box(&page), 0, "u")
                    .unwrap()
                    .record_count
            })
        });
    }
    // The fetcher's path: the array turned into NDJSON inside the page's buffer (the copy of
    // the page here stands for the body the HTTP client hands over).
    let body = bytes::Bytes::from(page.clone());
    group.bench_function("plain_in_place", |b| {
        b.iter(|| {
            plain
                .locate_in_place(black_box(body.clone()), 0, "u")
                .unwrap()
                .1
                .record_count
        })
    });
    group.finish();

    // Reading the small values (next pointer, token, end condition) from the envelope: the page
    // with its records array replaced by `[]` is parsed, not the records.
    let located = plain.locate(&page, 0, "u").unwrap();
    let has_more = RecordPath::parse("$.total_items").unwrap();
    c.bench_function("envelope_values_of_a_1000_record_page", |b| {
        b.iter(|| {
            let envelope = Envelope::parse(
                black_box(&page),
                &located,
                plain.content_path(),
                &[&has_more],
                0,
            )
            .unwrap();
            envelope.get(&has_more).is_some()
        })
    });
}

fn request_building(c: &mut Criterion) {
    let spec = tributary_spec::connection_spec_from_value(
        "bench",
        &spec_json("/3.0/lists/${listId}/members", json!({"type": "OFFSET", "limitName": "count", "limitValue": 1000, "offSetName": "offset"})),
    )
    .unwrap();
    let source_params: Map<String, Value> =
        json!({"listId": "abc123", "fields": "members.id,members.email"})
            .as_object()
            .unwrap()
            .clone();
    let auth_params: Map<String, Value> =
        json!({"host": "https://us6.api.example.test", "username": "u", "password": "p4ssw0rd"})
            .as_object()
            .unwrap()
            .clone();
    let env = |_: &str| None;
    let inputs = RenderInputs {
        source_params: &source_params,
        auth_params: &auth_params,
        env: &env,
        window: None,
    };
    c.bench_function("render_base_request", |b| {
        b.iter(|| {
            let mut redactor = Redactor::default();
            render_base_request(black_box(&spec.source), &inputs, &mut redactor)
                .unwrap()
                .url
                .as_str()
                .len()
        })
    });
}

fn loopback(c: &mut Criterion) {
    let records: u64 = 50_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(async {
        let config = tributary_mockapi::MockConfig {
            records,
            seed: SEED,
            compression: false,
            ..Default::default()
        };
        tributary_mockapi::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap()
    });
    let spec = tributary_spec::connection_spec_from_value(
        "bench",
        &spec_json("/3.0/lists/${listId}/members", json!({"type": "OFFSET", "limitName": "count", "limitValue": 1000, "offSetName": "offset"})),
    )
    .unwrap();
    let source_params: Map<String, Value> = json!({"listId": "bench", "fields": "all"})
        .as_object()
        .unwrap()
        .clone();
    let auth_params: Map<String, Value> = json!({"host": server.base_url()})
        .as_object()
        .unwrap()
        .clone();
    let env = |_: &str| None;
    let ctx = runtime.block_on(async {
        FetchContext::try_new(Limiters::new(), FetchSettings::default()).unwrap()
    });
    let run_once = |concurrency: u32| {
        let inputs = RenderInputs {
            source_params: &source_params,
            auth_params: &auth_params,
            env: &env,
            window: None,
        };
        let plan = FetchPlan::try_new(&spec.source, Auth::none(), &inputs)
            .unwrap()
            .with_max_concurrent_requests(std::num::NonZeroU32::new(concurrency).unwrap());
        runtime.block_on(async {
            let mut run = fetch_pages(&ctx, plan);
            let (mut pages, mut bytes, mut n_records) = (0u64, 0u64, 0u64);
            while let Some(event) = run.pages.recv().await {
                let tributary_fetch::FetchEvent::Page(page) = event.unwrap() else {
                    break;
                };
                pages += 1;
                bytes += page.body_len;
                n_records += page.record_count as u64;
            }
            assert_eq!(n_records, records);
            (pages, bytes)
        })
    };
    for concurrency in [1, 4] {
        let started = Instant::now();
        let (pages, bytes) = run_once(concurrency);
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!(
            "loopback concurrency {concurrency}: {pages} pages, {:.1} MB in {elapsed:.3} s = {:.0} pages/s, {:.1} MB/s, {:.0} records/s",
            bytes as f64 / 1e6,
            pages as f64 / elapsed,
            bytes as f64 / 1e6 / elapsed,
            records as f64 / elapsed
        );
    }
    let (_, bytes) = run_once(1);
    let mut group = c.benchmark_group("loopback_offset_50k_records");
    group.throughput(Throughput::Bytes(bytes));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for concurrency in [1, 4] {
        group.bench_function(format!("concurrency_{concurrency}"), |b| {
            b.iter(|| run_once(concurrency))
        });
    }
    group.finish();
}

criterion_group!(benches, locate, request_building, loopback);
criterion_main!(benches);
