//! Listing under load (not a test: it measures and prints, it asserts no times). State holds
//! 10,000 flows and 100,000 runs; 64 concurrent clients over loopback HTTP send
//! `GET /flows?limit=100&property=…` and `GET /runs?property=flowId==…`; p50 / p99 latency and
//! throughput are printed per query.
//!
//! `cargo bench -p tributary-api --bench listing` (set `LISTING_FLOWS` / `LISTING_RUNS` to
//! change the sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

mod support;
use support::{FS, call};

const CLIENTS: usize = 64;
const REQUESTS_PER_CLIENT: usize = 40;

fn main() {
    let n_flows = support::size_from_env("LISTING_FLOWS", 10_000);
    let n_runs = support::size_from_env("LISTING_RUNS", 100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(n_flows, n_runs));
}

async fn bench(n_flows: usize, n_runs: usize) {
    let support::Bench {
        dir: _dir,
        db,
        state: _state,
        app,
        ..
    } = support::bench_api();
    let started = Instant::now();
    let (source, target) = support::source_and_target(&app).await;
    let mut flow_ids = Vec::with_capacity(n_flows);
    for idx in 0..n_flows {
        let frequency = if idx % 2 == 0 { "hour" } else { "day" };
        let flow = call(&app, "POST", &format!("{FS}/flows"), Some(json!({
            "name": format!("flow-{idx}"), "flowSpec": {"id": tributary_api::FLOW_SPEC_ID},
            "sourceConnectionIds": [source["id"]], "targetConnectionIds": [target["id"]],
            "scheduleParams": {"startTime": 4_102_444_800u64, "frequency": frequency, "interval": 1},
        }))).await;
        flow_ids.push(flow["id"].as_str().expect("an id").to_owned());
    }
    let flows_done = started.elapsed();
    let db_for_runs = db.clone();
    let ids_for_runs = flow_ids.clone();
    tokio::task::spawn_blocking(move || {
        for idx in 0..n_runs {
            let flow_id = &ids_for_runs[idx % ids_for_runs.len()];
            let run_id = format!("run-{idx:08}");
            let started_ms = 1_700_000_000_000 + idx as i64 * 1000;
            let doc = json!({"id": run_id, "flowId": flow_id, "etag": format!("\"{run_id}\""), "state": "success",
                "metrics": {"statusSummary": {"status": "success"}, "recordSummary": {"inputRecordCount": 100, "outputRecordCount": 100, "failedRecordCount": 0},
                            "durationSummary": {"startedAtUTC": started_ms, "completedAtUTC": started_ms + 500}},
                "activities": []});
            let record = tributary_state::RunRecord {
                id: tributary_state::RunId::new(run_id),
                flow_id: tributary_state::FlowId::new(flow_id.clone()),
                status: tributary_state::RunStatus::Success,
                window: None,
                batch_id: None,
                started_at_ms: started_ms,
                completed_at_ms: Some(started_ms + 500),
                run_doc: doc,
            };
            db_for_runs.put_run(&record).expect("a run");
        }
        db_for_runs.flush().expect("flush");
    })
    .await
    .expect("the runs writer");
    println!(
        "state: {n_flows} flows in {:.1} s, {n_runs} runs in {:.1} s",
        flows_done.as_secs_f64(),
        (started.elapsed() - flows_done).as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("a client");
    let flow_ids = Arc::new(flow_ids);

    let queries: [(&str, Box<dyn Fn(usize) -> String + Send + Sync>); 2] = [
        (
            "GET /flows?limit=100&property=scheduleParams.frequency==hour",
            Box::new(|_| format!("{FS}/flows?limit=100&property=scheduleParams.frequency==hour")),
        ),
        ("GET /runs?property=flowId==…", {
            let flow_ids = flow_ids.clone();
            Box::new(move |i| {
                format!(
                    "{FS}/runs?property=flowId=={}",
                    flow_ids[(i * 7919) % flow_ids.len()]
                )
            })
        }),
    ];
    for (label, make_path) in queries {
        let make_path = Arc::new(make_path);
        let wall = Instant::now();
        let mut tasks = Vec::new();
        for client_idx in 0..CLIENTS {
            let client = client.clone();
            let make_path = make_path.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
                for request_idx in 0..REQUESTS_PER_CLIENT {
                    let url = format!(
                        "http://{addr}{}",
                        make_path(client_idx * REQUESTS_PER_CLIENT + request_idx)
                    );
                    let sent = Instant::now();
                    let response = client
                        .get(&url)
                        .header("authorization", "Bearer bench-token")
                        .header("x-api-key", "bench-key")
                        .header("x-gw-ims-org-id", "BENCH@AdobeOrg")
                        .header("x-sandbox-name", "prod")
                        .send()
                        .await
                        .expect("a response");
                    assert!(
                        response.status().is_success(),
                        "{url}: {}",
                        response.status()
                    );
                    let body = response.bytes().await.expect("a body");
                    latencies.push((sent.elapsed(), body.len()));
                }
                latencies
            }));
        }
        let mut latencies: Vec<Duration> = Vec::new();
        let mut bytes = 0usize;
        for task in tasks {
            for (latency, n_bytes) in task.await.expect("a client task") {
                latencies.push(latency);
                bytes += n_bytes;
            }
        }
        let elapsed = wall.elapsed();
        latencies.sort();
        let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{label}: {} requests from {CLIENTS} clients: p50 {:.1} ms, p99 {:.1} ms, {:.0} requests/s, {:.1} KiB per answer",
            latencies.len(),
            pick(0.50).as_secs_f64() * 1000.0,
            pick(0.99).as_secs_f64() * 1000.0,
            latencies.len() as f64 / elapsed.as_secs_f64(),
            bytes as f64 / latencies.len() as f64 / 1024.0,
        );
    }
}
