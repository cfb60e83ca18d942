//! Daemon benchmark (prints figures, asserts nothing): 1,000 flows registered against the mock
//! API on loopback, scheduled by the real scheduler loop with the real engine runner.
//!
//! Every flow has one cron slot (seconds precision) between 25 and 55 s after start, spread
//! evenly, with `backfill: false`, so its one run covers `[start, slot)` — a few dozen records of
//! the mock's timeline, which runs through "now". The figures:
//! - idle CPU: utime+stime of this process (/proc/self/stat) over 15 s before the first slot,
//!   and over 10 s after the last run, as % of one core;
//! - peak RSS (VmHWM from /proc/self/status);
//! - lateness of each run's start after its slot, p50 / p99 / max (queueing behind the global
//!   cap of `max_concurrent_runs` included).
//!
//! Run: `cargo bench -p tributary-engine --bench daemon` (add `--profile dev` for a quick look).

use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/mod.rs"]
mod support;

use chrono::{Timelike as _, Utc};
use tributary_engine::daemon::{
    self, Clock, DaemonFlow, ScheduledRun, SchedulerOptions, Shutdown, SystemClock,
};
use tributary_engine::run::{Engine, EngineOptions, RunStatus, bundle_flow_id};

const FLOWS: usize = 1000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let started = Utc::now();
    let mock = tributary_mockapi::start(
        tributary_mockapi::MockConfig {
            records: 200_000,
            // One record a second from an hour ago: each window holds the records of its span.
            start_time: started - chrono::Duration::hours(1),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("address"),
    )
    .await
    .expect("starting the mock API");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = tributary_state::Db::open(
        &dir.path().join("state"),
        tributary_state::StateOptions {
            secret_key: Some(tributary_state::SecretKey::from_bytes([9; 32])),
            ..Default::default()
        },
    )
    .expect("state");
    let engine = Engine {
        layout: tributary_write::DatasetLayout::new(dir.path().join("data")),
        db: db.clone(),
        fetch: tributary_fetch::FetchContext::try_new(
            tributary_fetch::Limiters::new(),
            tributary_fetch::FetchSettings::default(),
        )
        .expect("http client"),
        options: EngineOptions::default(),
        running: Default::default(),
    };

    let first_slot = (started + chrono::Duration::seconds(25))
        .with_nanosecond(0)
        .expect("valid time");
    let mut flows = Vec::with_capacity(FLOWS);
    let mut slots = Vec::with_capacity(FLOWS);
    for i in 0..FLOWS {
        let slot = first_slot + chrono::Duration::seconds((i * 30 / FLOWS) as i64);
        slots.push(slot);
        let name = format!("bench-flow-{i:04}");
        let bundle = support::scheduled_bundle(&name, &mock.base_url(), started, slot);
        let bundle =
            tributary_spec::load_bundle(&name, &bundle, |_, _| Err("no references".to_owned()))
                .expect("bundle");
        let flow = DaemonFlow::try_new(bundle_flow_id(&name), Arc::new(bundle))
            .expect("schedule")
            .expect("scheduled");
        flows.push(flow);
    }
    let registered_rss = peak_rss_kb();

    let lateness: Arc<Mutex<Vec<f64>>> = Arc::default();
    let statuses: Arc<Mutex<Vec<RunStatus>>> = Arc::default();
    let runner = {
        let inner = daemon::engine_runner(engine.clone());
        let lateness = lateness.clone();
        let statuses = statuses.clone();
        Arc::new(move |scheduled: ScheduledRun| {
            let late = (Utc::now() - scheduled.slot)
                .num_microseconds()
                .unwrap_or(i64::MAX) as f64
                / 1e6;
            lateness.lock().expect("lock").push(late);
            let run = inner(scheduled);
            let statuses = statuses.clone();
            Box::pin(async move {
                let status = run.await;
                statuses.lock().expect("lock").push(status);
                status
            }) as std::pin::Pin<Box<dyn Future<Output = RunStatus> + Send>>
        })
    };
    let options = SchedulerOptions {
        max_catch_up_windows: 24,
        run_history: 100,
        max_concurrent_runs: 4,
        shutdown_grace: Duration::from_secs(30),
        cluster: None,
    };
    let shutdown = Shutdown::default();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let scheduler = tokio::spawn(daemon::run_scheduler(
        db.clone(),
        daemon::FlowRegistry::from_flows(flows),
        options,
        clock,
        runner,
        shutdown.clone(),
    ));

    // Idle before the first slot.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_before = cpu_percent(Duration::from_secs(15)).await;
    // The runs.
    let last_slot = *slots.iter().max().expect("flows");
    let wait_runs = (last_slot - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait_runs).await;
    while statuses.lock().expect("lock").len() < FLOWS {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if Utc::now() - last_slot > chrono::Duration::seconds(120) {
            break;
        }
    }
    let runs_done_at = Utc::now();
    // Idle after the runs.
    let idle_after = cpu_percent(Duration::from_secs(10)).await;
    shutdown.trigger();
    let report = scheduler.await.expect("scheduler task").expect("scheduler");

    let mut late = lateness.lock().expect("lock").clone();
    late.sort_by(f64::total_cmp);
    let statuses = statuses.lock().expect("lock").clone();
    let n_success = statuses
        .iter()
        .filter(|s| **s == RunStatus::Success)
        .count();
    let pct = |p: f64| {
        late.get(((late.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!("daemon bench: {FLOWS} flows, slots spread over 30 s, max_concurrent_runs 4");
    println!(
        "  runs            {} started, {} finished, {} success",
        report.runs_started,
        statuses.len(),
        n_success
    );
    println!(
        "  runs took       {:.1} s from the first slot to the last run's end",
        (runs_done_at - first_slot).num_milliseconds() as f64 / 1e3
    );
    println!(
        "  lateness        p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        pct(0.5),
        pct(0.99),
        late.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  idle CPU        {idle_before:.2}% of a core before the slots (15 s), {idle_after:.2}% after the runs (10 s)"
    );
    println!(
        "  peak RSS        {:.1} MB after registering, {:.1} MB at the end",
        registered_rss as f64 / 1024.0,
        peak_rss_kb() as f64 / 1024.0
    );
}

/// CPU time of this process (user + system) over `span`, as % of one core.
async fn cpu_percent(span: Duration) -> f64 {
    let before = cpu_ticks();
    tokio::time::sleep(span).await;
    let ticks = cpu_ticks().saturating_sub(before);
    // /proc reports clock ticks; 100 per second on Linux.
    ticks as f64 / 100.0 / span.as_secs_f64() * 100.0
}

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
