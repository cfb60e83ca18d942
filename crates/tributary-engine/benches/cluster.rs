//! Cluster benchmark (prints figures, asserts nothing): 3,000 flows on one Postgres state,
//! scheduled by 1, 2 and 3 nodes — each a real scheduler loop on its own `Db` joined under its
//! own node id, all in this process — with a runner that only sleeps 10 ms, so the figures are
//! the cost of leasing and scheduling, not of fetching.
//!
//! Every flow has one cron slot (seconds precision) spread over 20 s starting 10 s after the
//! flows are registered, `backfill: false`. Figures per node count: flows claimed per second
//! (runs started over the span from the first start to the last), the lateness of each start
//! after its slot (p50 / p99 / max; the wait for a free run slot included), and how the runs
//! spread over the nodes. Each node count runs in a fresh schema.
//!
//! Run: `TRIBUTARY_TEST_POSTGRES_URL=postgres://… cargo bench -p tributary-engine --bench cluster`
//! (scripts/test prints how it starts its throwaway server; add `--profile dev` for a quick look).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/mod.rs"]
mod support;

use chrono::{DateTime, Timelike as _, Utc};
use tributary_engine::daemon::{
    self, Clock, ClusterOptions, DaemonFlow, ScheduledRun, SchedulerOptions, Shutdown, SystemClock,
};
use tributary_engine::run::{RunStatus, bundle_flow_id};
use tributary_state::{Db, NodeId, PostgresUrl, SecretKey, StateOptions};

const FLOWS: usize = 3000;
const SPREAD_SECS: usize = 20;
const MAX_CONCURRENT_RUNS: u32 = 16;

fn main() {
    let base = std::env::var("TRIBUTARY_TEST_POSTGRES_URL")
        .expect("TRIBUTARY_TEST_POSTGRES_URL: the Postgres server to run on");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "cluster bench: {FLOWS} flows, slots spread over {SPREAD_SECS} s, max_concurrent_runs {MAX_CONCURRENT_RUNS} per node, runner sleeps 10 ms"
    );
    for nodes in 1..=3 {
        runtime.block_on(bench(&base, nodes));
    }
}

/// The base URL with a new schema as its search path.
fn fresh_schema(base: &str) -> PostgresUrl {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let psql = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's postgresql")
        .filter_map(|entry| {
            let path = entry.ok()?.path().join("bin/psql");
            path.is_file().then_some(path)
        })
        .max()
        .expect("psql");
    let status = std::process::Command::new(psql)
        .args([base, "-q", "-c", &format!("CREATE SCHEMA {schema}")])
        .status()
        .expect("psql");
    assert!(status.success(), "creating the schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    PostgresUrl::parse(&format!(
        "{base}{separator}options=-csearch_path%3D{schema}"
    ))
    .expect("url")
}

async fn bench(base: &str, n_nodes: usize) {
    let url = fresh_schema(base);
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Utc::now();
    let first_slot = (started + chrono::Duration::seconds(10))
        .with_nanosecond(0)
        .expect("valid time");
    let mut flows = Vec::with_capacity(FLOWS);
    for i in 0..FLOWS {
        let slot = first_slot + chrono::Duration::seconds((i * SPREAD_SECS / FLOWS) as i64);
        let name = format!("bench-flow-{i:04}");
        let bundle = support::scheduled_bundle(&name, "http://127.0.0.1:9", started, slot);
        let bundle =
            tributary_spec::load_bundle(&name, &bundle, |_, _| Err("no references".to_owned()))
                .expect("bundle");
        let flow = DaemonFlow::try_new(bundle_flow_id(&name), Arc::new(bundle))
            .expect("schedule")
            .expect("scheduled");
        flows.push(flow);
    }

    // (node, lateness in s, start instant)
    let starts: Arc<Mutex<Vec<(usize, f64, DateTime<Utc>)>>> = Arc::default();
    let shutdown = Shutdown::default();
    let mut schedulers = Vec::new();
    for node in 0..n_nodes {
        let db = Db::open_postgres(
            &url,
            StateOptions {
                secret_key: Some(SecretKey::from_bytes([9; 32])),
                ..Default::default()
            },
        )
        .expect("state");
        db.join_cluster(
            NodeId::try_new(format!("node-{node}")).expect("node id"),
            Duration::from_secs(30),
        )
        .expect("join");
        let runner = {
            let starts = starts.clone();
            Arc::new(move |scheduled: ScheduledRun| {
                let now = Utc::now();
                let late = (now - scheduled.slot)
                    .num_microseconds()
                    .unwrap_or(i64::MAX) as f64
                    / 1e6;
                starts.lock().expect("lock").push((node, late, now));
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    RunStatus::Success
                }) as std::pin::Pin<Box<dyn Future<Output = RunStatus> + Send>>
            })
        };
        let options = SchedulerOptions {
            max_catch_up_windows: 24,
            run_history: 100,
            max_concurrent_runs: MAX_CONCURRENT_RUNS,
            shutdown_grace: Duration::from_secs(30),
            cluster: Some(ClusterOptions {
                layout: tributary_write::DatasetLayout::new(dir.path().join("data")),
                poll_interval: Duration::from_secs(1),
                listen: format!("bench-{node}"),
                limiters: tributary_fetch::Limiters::new(),
            }),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        schedulers.push(tokio::spawn(daemon::run_scheduler(
            db,
            daemon::FlowRegistry::from_flows(flows.clone()),
            options,
            clock,
            runner,
            shutdown.clone(),
        )));
    }
    let last_slot = first_slot + chrono::Duration::seconds(SPREAD_SECS as i64);
    tokio::time::sleep((last_slot - Utc::now()).to_std().unwrap_or_default()).await;
    while starts.lock().expect("lock").len() < FLOWS {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if Utc::now() - last_slot > chrono::Duration::seconds(120) {
            break;
        }
    }
    shutdown.trigger();
    for scheduler in schedulers {
        scheduler.await.expect("scheduler task").expect("scheduler");
    }

    let starts = starts.lock().expect("lock").clone();
    let mut late: Vec<f64> = starts.iter().map(|(_, late, _)| *late).collect();
    late.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        late.get(((late.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let first = starts.iter().map(|s| s.2).min();
    let last = starts.iter().map(|s| s.2).max();
    let span_secs = match (first, last) {
        (Some(first), Some(last)) => (last - first).num_milliseconds() as f64 / 1e3,
        _ => f64::NAN,
    };
    let mut per_node: HashMap<usize, usize> = HashMap::new();
    for (node, _, _) in &starts {
        *per_node.entry(*node).or_default() += 1;
    }
    let spread: Vec<String> = (0..n_nodes)
        .map(|node| per_node.get(&node).copied().unwrap_or(0).to_string())
        .collect();
    println!(
        "  {n_nodes} node(s): {} runs started ({} per node), {:.0} flows claimed/s over {span_secs:.1} s; lateness p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        starts.len(),
        spread.join(" / "),
        starts.len() as f64 / span_secs.max(f64::EPSILON),
        pct(0.5),
        pct(0.99),
        late.last().copied().unwrap_or(f64::NAN)
    );
}
