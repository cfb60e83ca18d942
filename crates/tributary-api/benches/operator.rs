//! The operator's view under a large state (not a test: it measures and prints, it asserts no
//! times). State holds 1,000 flows and 100,000 runs (100 per flow; every tenth flow's newest
//! three runs failed, so its failures in a row are counted); the API listens on loopback with
//! the Prometheus recorder installed, as `serve` runs it. One client, as a browser:
//!
//! - page load: `GET /` and the first page of flows (`/ui/api/flows?limit=50`), then a flow's
//!   runs (`/ui/api/runs?flow=…&limit=20`), a run's detail (`/runs/{id}`) and its rejected rows;
//! - `tributary flows`: every flow, 500 a request;
//! - a `/metrics` scrape.
//!
//! p50 / p99 latency and answer sizes are printed per call.
//!
//! `cargo bench -p tributary-api --bench operator` (set `OPERATOR_FLOWS` / `OPERATOR_RUNS` to
//! change the sizes).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::{FS, call};
const ROUNDS: usize = 30;

fn main() {
    let n_flows = support::size_from_env("OPERATOR_FLOWS", 1_000);
    let n_runs = support::size_from_env("OPERATOR_RUNS", 100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(n_flows, n_runs));
}

async fn bench(n_flows: usize, n_runs: usize) {
    let metrics = tributary_api::metrics::install_recorder().expect("the metrics recorder");
    let support::Bench {
        dir: _dir,
        db,
        registry,
        state,
        app,
    } = support::bench_api();
    let started = Instant::now();
    let (source, target) = support::source_and_target(&app).await;
    let mut flow_ids = Vec::with_capacity(n_flows);
    for idx in 0..n_flows {
        let flow = call(&app, "POST", &format!("{FS}/flows"), Some(json!({
            "name": format!("flow-{idx:04}"), "flowSpec": {"id": tributary_api::FLOW_SPEC_ID},
            "sourceConnectionIds": [source["id"]], "targetConnectionIds": [target["id"]],
            "scheduleParams": {"startTime": 1_700_000_000u64, "frequency": "hour", "interval": 1},
        }))).await;
        flow_ids.push(flow["id"].as_str().expect("an id").to_owned());
    }
    for flow in tributary_api::scheduled_flows(&state) {
        registry.upsert(flow);
    }
    let flows_done = started.elapsed();
    let db_for_runs = db.clone();
    let ids_for_runs = flow_ids.clone();
    tokio::task::spawn_blocking(move || {
        let per_flow = (n_runs / ids_for_runs.len().max(1)).max(1);
        for idx in 0..n_runs {
            let flow_idx = idx % ids_for_runs.len();
            let flow_id = &ids_for_runs[flow_idx];
            let nth_of_flow = idx / ids_for_runs.len();
            // Every tenth flow: its newest three runs failed.
            let failed = flow_idx % 10 == 0 && nth_of_flow + 3 >= per_flow;
            let (status, word) = if failed {
                (tributary_state::RunStatus::Failed, "failed")
            } else {
                (tributary_state::RunStatus::Success, "success")
            };
            let run_id = format!("run-{idx:08}");
            let started_ms = 1_700_000_000_000 + idx as i64 * 1000;
            let errors = if failed {
                json!([{"code": "CONNECTOR-2001-500", "message": "http status 503 from the source"}])
            } else {
                json!([])
            };
            let doc = json!({"id": run_id, "flowId": flow_id, "flowName": format!("flow-{flow_idx:04}"), "etag": format!("\"{run_id}\""), "state": word,
                "params": {"windowStartTime": started_ms - 3_600_000, "windowEndTime": started_ms},
                "metrics": {"statusSummary": {"status": word, "errors": errors}, "recordSummary": {"inputRecordCount": 100, "outputRecordCount": 100, "failedRecordCount": 0},
                            "sizeSummary": {"inputBytes": 20_000, "outputBytes": 8_000},
                            "customSummary": {"pages": 2, "requests": 3, "retries": 0, "throttledMs": 120},
                            "durationSummary": {"startedAtUTC": started_ms, "completedAtUTC": started_ms + 500}},
                "activities": []});
            let record = tributary_state::RunRecord {
                id: tributary_state::RunId::new(run_id),
                flow_id: tributary_state::FlowId::new(flow_id.clone()),
                status,
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
    let health_started = Instant::now();
    tributary_api::metrics::load_flow_health(&state).expect("flow health");
    println!(
        "state: {n_flows} flows in {:.1} s, {n_runs} runs in {:.1} s; flow health for /metrics read at start in {:.0} ms",
        flows_done.as_secs_f64(),
        (started.elapsed() - flows_done - health_started.elapsed()).as_secs_f64(),
        health_started.elapsed().as_secs_f64() * 1000.0,
    );
    tributary_api::metrics::spawn_upkeep(metrics);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().build().expect("a client");
    let get = |path: String| {
        let client = client.clone();
        async move {
            let sent = Instant::now();
            let response = client
                .get(format!("http://{addr}{path}"))
                .header("authorization", "Bearer bench-token")
                .header("x-api-key", "bench-key")
                .header("x-gw-ims-org-id", "BENCH@AdobeOrg")
                .header("x-sandbox-name", "prod")
                .send()
                .await
                .expect("a response");
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            let body = response.bytes().await.expect("a body");
            (sent.elapsed(), body)
        }
    };

    let mut samples: Vec<(&str, Vec<Duration>, usize)> = Vec::new();
    let mut record = |label: &'static str, latency: Duration, n_bytes: usize| match samples
        .iter_mut()
        .find(|(l, _, _)| *l == label)
    {
        Some((_, latencies, bytes)) => {
            latencies.push(latency);
            *bytes = n_bytes;
        }
        None => samples.push((label, vec![latency], n_bytes)),
    };
    for round in 0..ROUNDS {
        // The page's first view: the HTML and the first page of flows.
        let view = Instant::now();
        let (latency, body) = get("/".to_owned()).await;
        record("GET / (the page)", latency, body.len());
        let (latency, body) = get("/ui/api/flows?offset=0&limit=50".to_owned()).await;
        record("GET /ui/api/flows?limit=50", latency, body.len());
        record("page load (the two above)", view.elapsed(), 0);
        // A failing flow's runs, its newest run, its rejected rows.
        let flow_id = &flow_ids[(round * 10) % flow_ids.len()];
        let (latency, body) = get(format!("/ui/api/runs?limit=20&flow={flow_id}")).await;
        record("GET /ui/api/runs?flow=…&limit=20", latency, body.len());
        let runs: Value = serde_json::from_slice(&body).expect("JSON");
        let run_id = runs["items"][0]["id"].as_str().expect("a run").to_owned();
        let (latency, body) = get(format!("{FS}/runs/{run_id}")).await;
        record("GET /runs/{id}", latency, body.len());
        let (latency, body) = get(format!("/ui/api/runs/{run_id}/rejected?limit=10")).await;
        record("GET /ui/api/runs/{id}/rejected", latency, body.len());
        // `tributary flows`: all of them.
        let all = Instant::now();
        let mut bytes = 0;
        for offset in (0..flow_ids.len()).step_by(500) {
            let (_, body) = get(format!("/ui/api/flows?offset={offset}&limit=500")).await;
            bytes += body.len();
        }
        record(
            "tributary flows (every flow, 500 a request)",
            all.elapsed(),
            bytes,
        );
        let (latency, body) = get("/metrics".to_owned()).await;
        record("GET /metrics", latency, body.len());
    }
    for (label, mut latencies, bytes) in samples {
        latencies.sort();
        let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{label}: {} times: p50 {:.1} ms, p99 {:.1} ms{}",
            latencies.len(),
            pick(0.50).as_secs_f64() * 1000.0,
            pick(0.99).as_secs_f64() * 1000.0,
            if bytes > 0 {
                format!(", {:.1} KiB", bytes as f64 / 1024.0)
            } else {
                String::new()
            },
        );
    }
}
