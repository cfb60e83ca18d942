//! Coverage against a real state store: what overlaps, what is left uncovered, what must be
//! finished first, and how a refusal reads.

use chrono::{DateTime, Utc};
use tributary_state::{BatchId, DatasetId, Db, FlowId, RunId, StateOptions};

use super::*;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Midnight of the `d`th day from 2024-01-01 (day 1), past the end of January too.
fn day(d: u32) -> DateTime<Utc> {
    t("2024-01-01T00:00:00Z") + chrono::Duration::days(i64::from(d) - 1)
}

fn w(start: Option<u32>, end: u32) -> Window {
    Window {
        start: start.map(day),
        end: day(end),
    }
}

fn open_db(dir: &std::path::Path) -> Db {
    let options = StateOptions {
        secret_key: Some(tributary_state::SecretKey::from_bytes([5; 32])),
        ..Default::default()
    };
    Db::open(dir, options).unwrap()
}

/// A window in state: begun, and committed unless `complete` is false.
fn put(db: &Db, flow: &FlowId, window: Window, n: u32, complete: bool) {
    let key = window_key(flow, Some(&window));
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
}

#[test]
fn uncovered_is_the_window_minus_every_window_in_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let flow = FlowId::new("f");
    put(&db, &flow, w(Some(3), 5), 1, true);
    put(&db, &flow, w(Some(7), 8), 2, false);
    assert_eq!(
        uncovered(&db, &flow, w(Some(1), 10)).unwrap(),
        vec![w(Some(1), 3), w(Some(5), 7), w(Some(8), 10)]
    );
    assert_eq!(uncovered(&db, &flow, w(Some(3), 5)).unwrap(), vec![]);
    assert_eq!(
        uncovered(&db, &flow, w(None, 4)).unwrap(),
        vec![w(None, 3)],
        "an open start stays open"
    );
    assert_eq!(
        uncovered(&db, &FlowId::new("other"), w(Some(1), 10)).unwrap(),
        vec![w(Some(1), 10)],
        "another flow's windows cover nothing here"
    );
    assert_eq!(unfinished(&db, &flow).unwrap(), vec![Some(w(Some(7), 8))]);
}

#[test]
fn a_window_overlapping_another_is_refused_naming_it_and_the_uncovered_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let flow = FlowId::new("f");
    put(&db, &flow, w(Some(1), 31), 1, true);
    // Its own bounds again: a re-run, fine.
    assert_eq!(
        check_disjoint(&db, &flow, Some(&w(Some(1), 31))).unwrap(),
        Ok(())
    );
    assert_eq!(
        check_disjoint(&db, &flow, Some(&w(Some(31), 32))).unwrap(),
        Ok(())
    );
    let refused = check_disjoint(&db, &flow, Some(&w(Some(1), 32)))
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.uncovered, vec![w(Some(31), 32)]);
    assert_eq!(
        describe(&refused),
        "window [2024-01-01T00:00:00+00:00, 2024-02-01T00:00:00+00:00) overlaps the committed window \
         [2024-01-01T00:00:00+00:00, 2024-01-31T00:00:00+00:00) (batch batch-1); a window runs again only \
         with exactly its own bounds; to ingest only what is not covered yet, run \
         --window-start 2024-01-31T00:00:00+00:00 --window-end 2024-02-01T00:00:00+00:00"
    );
    // An interrupted window must be finished first, with its own bounds.
    let late = Window {
        start: Some(day(31)),
        end: t("2024-02-02T00:00:00Z"),
    };
    put(&db, &flow, late, 2, false);
    let refused = check_disjoint(
        &db,
        &flow,
        Some(&Window {
            start: Some(t("2024-02-01T00:00:00Z")),
            end: t("2024-02-03T00:00:00Z"),
        }),
    )
    .unwrap()
    .unwrap_err();
    assert_eq!(
        describe(&refused),
        "window [2024-02-01T00:00:00+00:00, 2024-02-03T00:00:00+00:00) overlaps the interrupted window \
         [2024-01-31T00:00:00+00:00, 2024-02-02T00:00:00+00:00) (batch batch-2); a window runs again only \
         with exactly its own bounds, and that window must be finished first (run it with \
         --window-start 2024-01-31T00:00:00+00:00 --window-end 2024-02-02T00:00:00+00:00)"
    );
    // The unwindowed run of a flow without a schedule covers all of time.
    let unscheduled = FlowId::new("u");
    db.begin_window(
        &window_key(&unscheduled, None),
        &RunId::new("r"),
        &BatchId::new("u-1"),
        &DatasetId::new("ds"),
    )
    .unwrap();
    let refused = check_disjoint(&db, &unscheduled, Some(&w(Some(1), 2)))
        .unwrap()
        .unwrap_err();
    assert!(
        describe(&refused).contains("(unwindowed: all of the source)"),
        "{}",
        describe(&refused)
    );
    assert_eq!(check_disjoint(&db, &unscheduled, None).unwrap(), Ok(()));
}
