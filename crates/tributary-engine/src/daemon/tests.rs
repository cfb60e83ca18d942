//! The scheduler loop with a controllable clock: tokio's paused clock drives both the loop's
//! sleeps and the [`Clock`] it reads, so hours of schedule pass in milliseconds. The runner is
//! a recording fake; state is a real sled store in a temp dir.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tributary_state::{Db, FlowId, FlowScheduleState, StateOptions};

use super::*;

/// `now` is `base` plus the time tokio's (paused) clock has advanced since the clock was made.
#[derive(Debug)]
struct TokioClock {
    base: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + Duration::from_std(self.origin.elapsed()).expect("test durations are small")
    }
}

/// One call of the fake runner.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    flow: String,
    window: Option<(Option<DateTime<Utc>>, DateTime<Utc>)>,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn open_db(dir: &std::path::Path) -> Db {
    let options = StateOptions {
        secret_key: Some(tributary_state::SecretKey::from_bytes([3; 32])),
        ..Default::default()
    };
    Db::open(dir, options).unwrap()
}

fn flow(name: &str, schedule: serde_json::Value) -> DaemonFlow {
    let bundle = json!({
        "name": name,
        "connectionSpec": {
            "name": "test source",
            "providerId": tributary_spec::GENERIC_REST_PROVIDER_ID,
            "version": "1.0",
            "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {
                "type": "object",
                "properties": {"host": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
                "required": ["host", "username", "password"]}}],
            "sourceSpec": {"attributes": {
                "urlParams": {"path": "/3.0/lists/x/members", "method": "GET"},
                "contentPath": {"path": "$.members"},
                "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": 10, "offSetName": "offset"},
                "scheduleParams": {"scheduleStartParamName": "since", "scheduleEndParamName": "before"},
            }},
        },
        "baseConnection": {"auth": {"specName": "Basic Authentication", "params": {"host": "http://127.0.0.1:9", "username": "u", "password": "p"}}},
        "sourceConnection": {"params": {}},
        "targetConnection": {"params": {"dataSetId": "ds"}},
        "flow": {"scheduleParams": schedule},
    });
    let bundle = tributary_spec::load_bundle(name, &bundle.to_string(), |_, _| {
        Err("no references".to_owned())
    })
    .unwrap_or_else(|err| panic!("test bundle {name}: {err}"));
    DaemonFlow::try_new(FlowId::new(name), Arc::new(bundle))
        .unwrap()
        .unwrap()
}

/// A runner that records its calls, takes `duration` of (paused) time per run, and ends with
/// `status` — or Cancelled as soon as the run is cancelled.
fn recording_runner(
    recorder: Arc<Recorder>,
    clock: Arc<dyn Clock>,
    duration: StdDuration,
    status: RunStatus,
) -> WindowRunner {
    Arc::new(move |scheduled: ScheduledRun| {
        let recorder = recorder.clone();
        let clock = clock.clone();
        Box::pin(async move {
            let started = clock.now();
            let n = recorder.running.fetch_add(1, Ordering::SeqCst) + 1;
            recorder.max_running.fetch_max(n, Ordering::SeqCst);
            let deadline = tokio::time::Instant::now() + duration;
            let mut result = status;
            while tokio::time::Instant::now() < deadline {
                if scheduled.progress.is_cancelled() {
                    result = RunStatus::Cancelled;
                    break;
                }
                tokio::time::sleep(StdDuration::from_millis(100).min(duration)).await;
            }
            recorder.running.fetch_sub(1, Ordering::SeqCst);
            recorder.calls.lock().unwrap().push(Call {
                flow: scheduled.bundle.name.clone(),
                window: scheduled.window.map(|w| (w.start, w.end)),
                started,
                ended: clock.now(),
            });
            result
        })
    })
}

fn options(max_catch_up_windows: u32, max_concurrent_runs: u32) -> SchedulerOptions {
    SchedulerOptions {
        max_catch_up_windows,
        run_history: 10,
        max_concurrent_runs,
        shutdown_grace: StdDuration::from_secs(30),
        cluster: None,
    }
}

/// Runs the scheduler for `run_for` of paused time, then shuts it down.
async fn check(
    db: &Db,
    flows: Vec<DaemonFlow>,
    options: SchedulerOptions,
    now: &str,
    run_for: StdDuration,
    run_duration: StdDuration,
    status: RunStatus,
) -> (Vec<Call>, Arc<Recorder>, SchedulerReport) {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock {
        base: t(now),
        origin: tokio::time::Instant::now(),
    });
    let recorder = Arc::new(Recorder::default());
    let runner = recording_runner(recorder.clone(), clock.clone(), run_duration, status);
    let shutdown = Shutdown::default();
    let scheduler = tokio::spawn(run_scheduler(
        db.clone(),
        FlowRegistry::from_flows(flows),
        options,
        clock,
        runner,
        shutdown.clone(),
    ));
    tokio::time::sleep(run_for).await;
    shutdown.trigger();
    let report = scheduler.await.unwrap().unwrap();
    let calls = recorder.calls.lock().unwrap().clone();
    (calls, recorder, report)
}

fn windows_of(calls: &[Call], flow: &str) -> Vec<(Option<DateTime<Utc>>, DateTime<Utc>)> {
    calls
        .iter()
        .filter(|c| c.flow == flow)
        .filter_map(|c| c.window)
        .collect()
}

fn set_last_end(db: &Db, flow: &str, last_end: &str, enabled: bool) {
    let state = FlowScheduleState {
        last_window_end_ms: Some(t(last_end).timestamp_millis()),
        next_due_ms: None,
        enabled,
    };
    db.put_schedule_state(&FlowId::new(flow), &state).unwrap();
}

#[tokio::test(start_paused = true)]
async fn catches_up_missed_slots_one_window_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let hourly = json!({"startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "hour", "interval": 1});
    set_last_end(&db, "hourly", "2024-01-01T01:00:00Z", true);
    let (calls, _, report) = check(
        &db,
        vec![flow("hourly", hourly)],
        options(24, 4),
        "2024-01-01T05:30:00Z",
        StdDuration::from_secs(60),
        StdDuration::from_secs(1),
        RunStatus::Success,
    )
    .await;
    let h = |n: u32| t(&format!("2024-01-01T{n:02}:00:00Z"));
    assert_eq!(
        windows_of(&calls, "hourly"),
        vec![
            (Some(h(1)), h(2)),
            (Some(h(2)), h(3)),
            (Some(h(3)), h(4)),
            (Some(h(4)), h(5))
        ]
    );
    assert_eq!(
        report,
        SchedulerReport {
            runs_started: 4,
            abandoned: 0
        }
    );
    // The schedule moved to the last slot that passed.
    let state = db.schedule_state(&FlowId::new("hourly")).unwrap().unwrap();
    assert_eq!(state.last_window_end_ms, Some(h(5).timestamp_millis()));
}

#[tokio::test(start_paused = true)]
async fn bounded_catch_up_merges_the_oldest_slots_then_follows_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let hourly = json!({"startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "hour", "interval": 1});
    set_last_end(&db, "hourly", "2024-01-01T01:00:00Z", true);
    // Two hours of daemon time: the catch-up at once, then the 06:00 and 07:00 slots live.
    let (calls, _, _) = check(
        &db,
        vec![flow("hourly", hourly)],
        options(2, 4),
        "2024-01-01T05:30:00Z",
        StdDuration::from_secs(2 * 3600),
        StdDuration::from_secs(1),
        RunStatus::Success,
    )
    .await;
    let h = |n: u32| t(&format!("2024-01-01T{n:02}:00:00Z"));
    assert_eq!(
        windows_of(&calls, "hourly"),
        vec![
            (Some(h(1)), h(4)),
            (Some(h(4)), h(5)),
            (Some(h(5)), h(6)),
            (Some(h(6)), h(7))
        ]
    );
    // Live slots start on time (the paused clock makes lateness exactly measurable).
    let late: Vec<i64> = calls
        .iter()
        .skip(2)
        .map(|c| (c.started - c.window.unwrap().1).num_milliseconds())
        .collect();
    assert_eq!(late, vec![0, 0]);
}

#[tokio::test(start_paused = true)]
async fn runs_of_one_flow_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    // Every 15 minutes, but each run takes 40 minutes.
    let quarter = json!({"startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "minute", "interval": 15, "backfill": false});
    let (calls, recorder, _) = check(
        &db,
        vec![flow("slow", quarter)],
        options(24, 4),
        "2024-01-01T00:20:00Z",
        StdDuration::from_secs(3 * 3600),
        StdDuration::from_secs(40 * 60),
        RunStatus::Success,
    )
    .await;
    assert_eq!(recorder.max_running.load(Ordering::SeqCst), 1);
    for pair in calls.windows(2) {
        assert!(pair[1].started >= pair[0].ended, "overlap: {pair:?}");
    }
    // The windows stay contiguous although runs fell behind the slots.
    let windows = windows_of(&calls, "slow");
    assert!(windows.len() >= 4, "{windows:?}");
    assert_eq!(
        windows[0],
        (Some(t("2024-01-01T00:00:00Z")), t("2024-01-01T00:15:00Z"))
    );
    for pair in windows.windows(2) {
        assert_eq!(pair[1].0, Some(pair[0].1));
    }
}

#[tokio::test(start_paused = true)]
async fn disabled_flows_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let hourly = json!({"startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "hour", "interval": 1});
    set_last_end(&db, "off", "2024-01-01T01:00:00Z", false);
    set_last_end(&db, "on", "2024-01-01T01:00:00Z", true);
    let (calls, _, _) = check(
        &db,
        vec![flow("off", hourly.clone()), flow("on", hourly)],
        options(24, 4),
        "2024-01-01T03:30:00Z",
        StdDuration::from_secs(3 * 3600),
        StdDuration::from_secs(1),
        RunStatus::Success,
    )
    .await;
    assert_eq!(windows_of(&calls, "off"), vec![]);
    assert_eq!(windows_of(&calls, "on").len(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_global_cap_bounds_concurrent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let daily = json!({"startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "day", "interval": 1, "backfill": false});
    let flows: Vec<DaemonFlow> = (0..5)
        .map(|i| flow(&format!("f{i}"), daily.clone()))
        .collect();
    let (calls, recorder, _) = check(
        &db,
        flows,
        options(24, 2),
        "2024-01-02T00:00:01Z",
        StdDuration::from_secs(600),
        StdDuration::from_secs(60),
        RunStatus::Success,
    )
    .await;
    assert_eq!(recorder.max_running.load(Ordering::SeqCst), 2);
    let mut flows_run: Vec<String> = calls.iter().map(|c| c.flow.clone()).collect();
    flows_run.sort();
    assert_eq!(flows_run, vec!["f0", "f1", "f2", "f3", "f4"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_window_waits_for_the_next_slot_and_keeps_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let hourly = json!({"startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "hour", "interval": 1});
    set_last_end(&db, "failing", "2024-01-01T01:00:00Z", true);
    let (calls, _, _) = check(
        &db,
        vec![flow("failing", hourly)],
        options(24, 4),
        "2024-01-01T03:30:00Z",
        StdDuration::from_secs(3600),
        StdDuration::from_secs(1),
        RunStatus::Failed,
    )
    .await;
    // Tried at once, then again at the 04:00 slot: not in a loop.
    let starts: Vec<DateTime<Utc>> = calls.iter().map(|c| c.started).collect();
    assert_eq!(
        starts,
        vec![t("2024-01-01T03:30:00Z"), t("2024-01-01T04:00:00Z")]
    );
    let state = db.schedule_state(&FlowId::new("failing")).unwrap().unwrap();
    assert_eq!(
        state.last_window_end_ms,
        Some(t("2024-01-01T01:00:00Z").timestamp_millis())
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_running_runs_and_keeps_their_window_due() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let hourly = json!({"startTime": t("2024-01-01T00:00:00Z").timestamp(), "frequency": "hour", "interval": 1});
    set_last_end(&db, "long", "2024-01-01T01:00:00Z", true);
    let (calls, _, report) = check(
        &db,
        vec![flow("long", hourly)],
        options(24, 4),
        "2024-01-01T02:30:00Z",
        StdDuration::from_secs(10),
        StdDuration::from_secs(3600),
        RunStatus::Success,
    )
    .await;
    assert_eq!(calls.len(), 1);
    // Stopped at once (the fake checks for cancellation every 100 ms), not after the hour.
    assert!(
        calls[0].ended - calls[0].started < Duration::seconds(11),
        "{calls:?}"
    );
    assert_eq!(
        report,
        SchedulerReport {
            runs_started: 1,
            abandoned: 0
        }
    );
    let state = db.schedule_state(&FlowId::new("long")).unwrap().unwrap();
    assert_eq!(
        state.last_window_end_ms,
        Some(t("2024-01-01T01:00:00Z").timestamp_millis())
    );
}

#[test]
fn content_hash_is_stable_and_tells_texts_apart() {
    assert_eq!(content_hash(b"{}"), content_hash(b"{}"));
    assert_ne!(content_hash(b"{}"), content_hash(b"{ }"));
    assert_eq!(content_hash(b"{}").len(), 32);
}

#[tokio::test(start_paused = true)]
async fn flows_added_and_removed_while_running_take_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let hourly = |start: &str| json!({"startTime": t(start).timestamp(), "frequency": "hour", "interval": 1, "backfill": false});
    let clock: Arc<dyn Clock> = Arc::new(TokioClock {
        base: t("2024-01-01T00:30:00Z"),
        origin: tokio::time::Instant::now(),
    });
    let recorder = Arc::new(Recorder::default());
    let runner = recording_runner(
        recorder.clone(),
        clock.clone(),
        StdDuration::from_secs(1),
        RunStatus::Success,
    );
    let registry = FlowRegistry::from_flows([flow("kept", hourly("2024-01-01T00:00:00Z"))]);
    let shutdown = Shutdown::default();
    let scheduler = tokio::spawn(run_scheduler(
        db.clone(),
        registry.clone(),
        options(24, 4),
        clock,
        runner,
        shutdown.clone(),
    ));
    // 01:00 and 02:00 run "kept" only.
    tokio::time::sleep(StdDuration::from_secs(2 * 3600)).await;
    // Added at 02:30 (the scheduler sleeps until 03:00): its 00:00-start windows are due at once.
    registry.upsert(flow("added", hourly("2024-01-01T00:00:00Z")));
    tokio::time::sleep(StdDuration::from_secs(60)).await;
    let added_early = windows_of(&recorder.calls.lock().unwrap(), "added");
    // Removed at 02:31: no run of "removed" follows.
    assert!(registry.remove(&FlowId::new("added")).is_some());
    tokio::time::sleep(StdDuration::from_secs(3 * 3600)).await;
    shutdown.trigger();
    scheduler.await.unwrap().unwrap();
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(
        added_early,
        vec![
            (Some(t("2024-01-01T00:00:00Z")), t("2024-01-01T01:00:00Z")),
            (Some(t("2024-01-01T01:00:00Z")), t("2024-01-01T02:00:00Z")),
        ],
        "a flow added while the scheduler sleeps runs without waiting for the next slot"
    );
    assert_eq!(
        windows_of(&calls, "added"),
        added_early,
        "a removed flow starts nothing more"
    );
    assert_eq!(windows_of(&calls, "kept").len(), 5, "{calls:?}");
}

/// A runner that does in state what a run of its window does: begins or resumes it and
/// commits it (no files), so the scheduler sees windows complete.
fn committing_runner(db: Db, recorder: Arc<Recorder>, clock: Arc<dyn Clock>) -> WindowRunner {
    Arc::new(move |scheduled: ScheduledRun| {
        let db = db.clone();
        let recorder = recorder.clone();
        let clock = clock.clone();
        Box::pin(async move {
            let started = clock.now();
            let key = crate::run::window_key(&scheduled.flow_id, scheduled.window.as_ref());
            let status = db.checkpoint(&key).unwrap().map(|c| c.status);
            if status != Some(tributary_state::CheckpointStatus::InProgress) {
                let n = recorder.calls.lock().unwrap().len();
                db.begin_window(
                    &key,
                    &tributary_state::RunId::new(format!("run-{n}")),
                    &tributary_state::BatchId::new(format!("batch-{n}")),
                    &tributary_state::DatasetId::new("ds"),
                )
                .unwrap();
            }
            db.start_commit(&key, false).unwrap();
            db.complete_window(&key, None).unwrap();
            tokio::time::sleep(StdDuration::from_secs(1)).await;
            recorder.calls.lock().unwrap().push(Call {
                flow: scheduled.bundle.name.clone(),
                window: scheduled.window.map(|w| (w.start, w.end)),
                started,
                ended: clock.now(),
            });
            RunStatus::Success
        })
    })
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_window_resumes_with_its_own_bounds_and_covered_time_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let h = |n: u32| t(&format!("2024-01-01T{n:02}:00:00Z"));
    let hourly = json!({"startTime": h(0).timestamp(), "frequency": "hour", "interval": 1, "backfill": false});
    let flow_id = FlowId::new("hourly");
    set_last_end(&db, "hourly", "2024-01-01T01:00:00Z", true);
    // A run of [01:00, 02:00) was interrupted; a backfill committed [05:00, 07:00).
    let interrupted = Window {
        start: Some(h(1)),
        end: h(2),
    };
    db.begin_window(
        &crate::run::window_key(&flow_id, Some(&interrupted)),
        &tributary_state::RunId::new("old"),
        &tributary_state::BatchId::new("old-batch"),
        &tributary_state::DatasetId::new("ds"),
    )
    .unwrap();
    let backfilled = crate::run::window_key(
        &flow_id,
        Some(&Window {
            start: Some(h(5)),
            end: h(7),
        }),
    );
    db.begin_window(
        &backfilled,
        &tributary_state::RunId::new("bf"),
        &tributary_state::BatchId::new("bf-batch"),
        &tributary_state::DatasetId::new("ds"),
    )
    .unwrap();
    db.start_commit(&backfilled, false).unwrap();
    db.complete_window(&backfilled, None).unwrap();

    // Down until 09:30 with a catch-up bound of 2: without care, [01:00, 08:00) would be merged
    // into one window over the interrupted one and the backfilled hours.
    let clock: Arc<dyn Clock> = Arc::new(TokioClock {
        base: t("2024-01-01T09:30:00Z"),
        origin: tokio::time::Instant::now(),
    });
    let recorder = Arc::new(Recorder::default());
    let runner = committing_runner(db.clone(), recorder.clone(), clock.clone());
    let shutdown = Shutdown::default();
    let scheduler = tokio::spawn(run_scheduler(
        db.clone(),
        FlowRegistry::from_flows([flow("hourly", hourly)]),
        options(2, 4),
        clock,
        runner,
        shutdown.clone(),
    ));
    tokio::time::sleep(StdDuration::from_secs(600)).await;
    shutdown.trigger();
    scheduler.await.unwrap().unwrap();
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(
        windows_of(&calls, "hourly"),
        vec![
            // First the interrupted window, with its own bounds.
            (Some(h(1)), h(2)),
            // Then the catch-up from its end, merged to two windows, less the backfilled hours.
            (Some(h(2)), h(5)),
            (Some(h(7)), h(8)),
            (Some(h(8)), h(9)),
        ]
    );
    let state = db.schedule_state(&flow_id).unwrap().unwrap();
    assert_eq!(state.last_window_end_ms, Some(h(9).timestamp_millis()));
}
