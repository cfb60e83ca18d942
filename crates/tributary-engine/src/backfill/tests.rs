//! Backfill planning against a real state store: complete windows are skipped, interrupted
//! ones resume, bad ranges are refused.

use chrono::{DateTime, Duration, Utc};
use tributary_state::{BatchId, DatasetId, Db, FlowId, RunId, StateOptions};

use super::{WindowState, plan};
use crate::run::window_key;
use crate::schedule::Window;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn open_db(dir: &std::path::Path) -> Db {
    let options = StateOptions {
        secret_key: Some(tributary_state::SecretKey::from_bytes([7; 32])),
        ..Default::default()
    };
    Db::open(dir, options).unwrap()
}

#[test]
fn plan_reads_each_windows_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let flow_id = FlowId::new("flow-a");
    let day = |d: u32| t(&format!("2024-01-{d:02}T00:00:00Z"));
    let begin = |window: &Window, n: u32| {
        db.begin_window(
            &window_key(&flow_id, Some(window)),
            &RunId::new(format!("run-{n}")),
            &BatchId::new(format!("batch-{n}")),
            &DatasetId::new("ds"),
        )
        .unwrap();
    };
    let first = Window {
        start: Some(day(1)),
        end: day(2),
    };
    let second = Window {
        start: Some(day(2)),
        end: day(3),
    };
    begin(&first, 1);
    db.start_commit(&window_key(&flow_id, Some(&first)), false)
        .unwrap();
    db.complete_window(&window_key(&flow_id, Some(&first)), None)
        .unwrap();
    begin(&second, 2);

    let planned = plan(
        &db,
        &flow_id,
        day(1),
        t("2024-01-04T12:00:00Z"),
        Duration::days(1),
    )
    .unwrap();
    let summary: Vec<(String, String, WindowState)> = planned
        .iter()
        .map(|p| {
            (
                p.window.start.unwrap().to_rfc3339(),
                p.window.end.to_rfc3339(),
                p.state,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "2024-01-01T00:00:00+00:00".to_owned(),
                "2024-01-02T00:00:00+00:00".to_owned(),
                WindowState::Complete
            ),
            (
                "2024-01-02T00:00:00+00:00".to_owned(),
                "2024-01-03T00:00:00+00:00".to_owned(),
                WindowState::Interrupted
            ),
            (
                "2024-01-03T00:00:00+00:00".to_owned(),
                "2024-01-04T00:00:00+00:00".to_owned(),
                WindowState::New
            ),
            // The last window is cut at the end of the range.
            (
                "2024-01-04T00:00:00+00:00".to_owned(),
                "2024-01-04T12:00:00+00:00".to_owned(),
                WindowState::New
            ),
        ]
    );
    // Another flow's windows are its own.
    let other = plan(
        &db,
        &FlowId::new("flow-b"),
        day(1),
        day(3),
        Duration::days(1),
    )
    .unwrap();
    assert!(other.iter().all(|p| p.state == WindowState::New));
}

#[test]
fn plan_refuses_empty_ranges_and_bad_steps() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let flow_id = FlowId::new("flow-a");
    let from = t("2024-01-02T00:00:00Z");
    let err = plan(&db, &flow_id, from, from, Duration::days(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--from 2024-01-02T00:00:00+00:00 is not before --to 2024-01-02T00:00:00+00:00"
    );
    assert!(err.is_bad_input());
    let err = plan(
        &db,
        &flow_id,
        from,
        t("2024-01-03T00:00:00Z"),
        Duration::zero(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--step: expected a positive duration"),
        "{err}"
    );
}

#[test]
fn a_second_backfill_with_another_step_plans_only_what_no_window_covers() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let flow_id = FlowId::new("flow-a");
    let day = |d: i64| t("2024-01-01T00:00:00Z") + Duration::days(d - 1);
    // Days 1-4 were backfilled with a 1-day step; day 3 is still in progress; a 36-hour window
    // from day 6 is committed.
    let commit = |window: Window, n: u32, complete: bool| {
        let key = window_key(&flow_id, Some(&window));
        db.begin_window(
            &key,
            &RunId::new(format!("run-{n}")),
            &BatchId::new(format!("batch-{n}")),
            &DatasetId::new("ds"),
        )
        .unwrap();
        if complete {
            db.start_commit(&key, false).unwrap();
            db.complete_window(&key, None).unwrap();
        }
    };
    for d in 1..=4 {
        commit(
            Window {
                start: Some(day(d)),
                end: day(d + 1),
            },
            d as u32,
            d != 3,
        );
    }
    commit(
        Window {
            start: Some(day(6)),
            end: day(7) + Duration::hours(12),
        },
        10,
        true,
    );
    let planned = plan(&db, &flow_id, day(1), day(9), Duration::days(2)).unwrap();
    let summary: Vec<(i64, i64, WindowState)> = planned
        .iter()
        .map(|p| {
            (
                (p.window.start.unwrap() - day(1)).num_hours(),
                (p.window.end - day(1)).num_hours(),
                p.state,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 24, WindowState::Complete),
            (24, 48, WindowState::Complete),
            (48, 72, WindowState::Interrupted),
            (72, 96, WindowState::Complete),
            (96, 120, WindowState::New),
            (120, 156, WindowState::Complete),
            (156, 192, WindowState::New),
        ],
        "new windows fill only the gaps, each at most 2 days"
    );
    // Windows never overlap.
    for pair in planned.windows(2) {
        assert!(
            pair[0].window.end <= pair[1].window.start.unwrap(),
            "{summary:?}"
        );
    }
}

#[test]
fn a_huge_step_or_range_is_refused_or_clamped_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let flow_id = FlowId::new("flow-a");
    let from = t("2024-01-01T00:00:00Z");
    // A step far past the end of representable time: one window up to `to`.
    let planned = plan(
        &db,
        &flow_id,
        from,
        t("2024-01-02T00:00:00Z"),
        Duration::MAX,
    )
    .unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].window.end, t("2024-01-02T00:00:00Z"));
    // A millisecond step over a year would plan billions of windows: refused.
    let err = plan(
        &db,
        &flow_id,
        from,
        t("2025-01-01T00:00:00Z"),
        Duration::milliseconds(1),
    )
    .unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    assert!(
        err.to_string()
            .contains("more than the 1000000 a backfill takes"),
        "{err}"
    );
}
