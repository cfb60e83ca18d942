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
