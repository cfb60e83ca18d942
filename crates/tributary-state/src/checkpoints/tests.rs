//! The commit protocol against real sled databases (and Postgres, see `crate::tests`): every transition, the ones it refuses, the
//! swap of a re-run, segments of a truncated window, and kills of a child process in the middle
//! of recording.

use std::io::{BufRead as _, BufReader};

use serde_json::{Value, json};

use crate::tests::{child_role, contains, open, part, spawn_child, stored_at_rest, window};
use crate::*;

fn error_part(seq: u32, rows: u64) -> PartEntry {
    PartEntry {
        seq,
        staged_path: format!("/staging/d/_errors/batch=b/part-{seq:05}.jsonl"),
        final_path: format!("/data/datasets/d/_errors/batch=b/part-{seq:05}.jsonl"),
        rows,
        bytes: rows * 10,
        state: PartState::Pending,
    }
}

fn published(mut entry: PartEntry) -> PartEntry {
    entry.state = PartState::Published;
    entry
}

fn begin(db: &Db, win: &WindowKey, run: &str, batch: &str) -> BeganWindow {
    db.begin_window(
        win,
        &RunId::new(run),
        &BatchId::new(batch),
        &DatasetId::new("ds"),
    )
    .unwrap()
}

fn batch_ref(batch: &str) -> BatchRef {
    BatchRef {
        batch_id: BatchId::new(batch),
        dataset_id: DatasetId::new("ds"),
    }
}

fn status_of(db: &Db, batch: &str) -> BatchStatus {
    db.batch(&BatchId::new(batch)).unwrap().unwrap().status
}

fn commit(db: &Db, win: &WindowKey, truncated: bool) -> BatchRecord {
    db.start_commit(win, truncated).unwrap();
    db.complete_window(win, None).unwrap()
}

#[test]
fn parts_of_a_checkpoint_land_together_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let win = window("flow-1", Some(0), Some(86_400_000));
    let began = begin(&db, &win, "run-1", "b1");
    assert_eq!(began.abandoned, None);
    assert_eq!(
        (began.checkpoint.position.clone(), began.checkpoint.next_seq),
        (Value::Null, 0)
    );

    // A data part and a rejected-rows part of one checkpoint, in one call.
    db.record_parts(
        &win,
        &[part(0, 100), error_part(1, 3)],
        &json!({"offset": 100}),
        100,
    )
    .unwrap();
    let checkpoint = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(
        (
            checkpoint.position.clone(),
            checkpoint.parts.clone(),
            checkpoint.next_seq,
            checkpoint.rows,
            checkpoint.bytes
        ),
        (
            json!({"offset": 100}),
            vec![part(0, 100), error_part(1, 3)],
            2,
            100,
            1030
        )
    );

    // A refused record changes neither the position nor the parts.
    let err = db
        .record_parts(&win, &[part(5, 1)], &json!({"offset": 999}), 999)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "window flow flow-1 [0, 86400000) ms: expected part sequence 2, got 5"
    );
    let err = db
        .record_parts(&win, &[part(2, 1), part(4, 1)], &json!(1), 1)
        .unwrap_err();
    assert!(matches!(err, StateError::Protocol { .. }), "{err}");
    assert!(matches!(
        db.record_parts(&win, &[published(part(2, 1))], &json!(1), 1),
        Err(StateError::InvalidInput { .. })
    ));
    let unknown = window("flow-1", Some(1), Some(2));
    assert!(matches!(
        db.record_parts(&unknown, &[part(0, 1)], &json!(1), 1),
        Err(StateError::NotFound { .. })
    ));
    assert_eq!(db.checkpoint(&win).unwrap().unwrap(), checkpoint);
}

#[test]
fn a_kill_after_recording_keeps_data_and_rejected_parts_together() {
    const NAME: &str =
        "checkpoints::tests::a_kill_after_recording_keeps_data_and_rejected_parts_together";
    let win = window("flow-crash", Some(0), Some(1000));
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "record-then-hang");
        let db = open(&dir);
        begin(&db, &win, "run-1", "b1");
        db.record_parts(&win, &[part(0, 10)], &json!({"page": 1}), 10)
            .unwrap();
        db.record_parts(
            &win,
            &[part(1, 20), error_part(2, 4)],
            &json!({"page": 2}),
            30,
        )
        .unwrap();
        println!("RECORDED");
        // Wait to be killed: nothing after record_parts may be needed for durability.
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(NAME, "record-then-hang", dir.path());
    let stdout = child.stdout.take().unwrap();
    let said_recorded = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.ends_with("RECORDED"));
    child.kill().unwrap(); // SIGKILL: no destructor, no flush on close.
    child.wait().unwrap();
    assert!(said_recorded, "the child did not reach RECORDED");

    let db = open(dir.path());
    let checkpoint = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(checkpoint.position, json!({"page": 2}));
    assert_eq!(
        checkpoint.parts,
        vec![part(0, 10), part(1, 20), error_part(2, 4)]
    );
    assert_eq!(
        db.all_open_windows()
            .unwrap()
            .into_iter()
            .map(|w| (w.window, w.status))
            .collect::<Vec<_>>(),
        vec![(win, CheckpointStatus::InProgress)]
    );
}

#[test]
fn repeated_kills_while_recording_never_split_a_checkpoint() {
    const NAME: &str =
        "checkpoints::tests::repeated_kills_while_recording_never_split_a_checkpoint";
    let win = window("flow-kill", Some(0), Some(1000));
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "record-loop");
        let db = open(&dir);
        if db.checkpoint(&win).unwrap().is_none() {
            begin(&db, &win, "run", "b");
        }
        let start = db.checkpoint(&win).unwrap().unwrap().next_seq;
        println!("READY");
        // Each checkpoint: a data part and a rejected-rows part.
        for seq in (start..start + 200_000).step_by(2) {
            let checkpoints_after = u64::from(seq / 2 + 1);
            db.record_parts(
                &win,
                &[part(seq, 10), error_part(seq + 1, 1)],
                &json!({"offset": checkpoints_after * 10}),
                checkpoints_after * 10,
            )
            .unwrap();
            println!("R {seq}");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut last_reported: Option<u32> = None;
    for cycle in 0..5 {
        let mut child = spawn_child(NAME, "record-loop", dir.path());
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut max_seq = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.ends_with("READY") {
                    let _ = ready_tx.send(());
                }
                if let Some(seq) = line
                    .rsplit_once("R ")
                    .and_then(|(_, seq)| seq.parse::<u32>().ok())
                {
                    max_seq = max_seq.max(Some(seq));
                }
            }
            max_seq
        });
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(
            rand::random::<u64>() % 150,
        ));
        child.kill().unwrap();
        child.wait().unwrap();
        last_reported = last_reported.max(reader.join().unwrap());

        let db = open(dir.path());
        let checkpoint = db.checkpoint(&win).unwrap().unwrap();
        let n_parts = checkpoint.next_seq;
        let context = format!("cycle {cycle}, {n_parts} parts, last reported {last_reported:?}");
        assert_eq!(
            n_parts % 2,
            0,
            "a checkpoint's two parts land together: {context}"
        );
        // Every checkpoint whose record_parts returned is durable.
        assert!(last_reported.is_none_or(|seq| seq < n_parts), "{context}");
        let checkpoints = u64::from(n_parts / 2);
        assert_eq!(
            checkpoint.position,
            if n_parts == 0 {
                Value::Null
            } else {
                json!({"offset": checkpoints * 10})
            },
            "{context}"
        );
        assert_eq!(
            (checkpoint.rows, checkpoint.bytes),
            (checkpoints * 10, checkpoints * 110),
            "{context}"
        );
        let seqs: Vec<u32> = checkpoint.parts.iter().map(|part| part.seq).collect();
        assert_eq!(seqs, (0..n_parts).collect::<Vec<_>>(), "{context}");
    }
    assert!(last_reported.is_some(), "no child ever recorded a part");
}

#[test]
fn a_commit_publishes_the_data_parts_as_the_batch_and_closes_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let win = window("flow-1", Some(0), Some(1000));
    begin(&db, &win, "run-1", "b1");
    db.record_parts(&win, &[part(0, 10), error_part(1, 2)], &json!(1), 10)
        .unwrap();
    db.record_parts(&win, &[part(2, 20)], &json!(2), 30)
        .unwrap();

    let err = db.complete_window(&win, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "window flow flow-1 [0, 1000) ms: the window is not committing; start the commit before completing it"
    );
    let committing = db.start_commit(&win, false).unwrap();
    assert_eq!(committing.status, CheckpointStatus::Committing);
    assert_eq!(
        db.start_commit(&win, true).unwrap(),
        committing,
        "idempotent"
    );
    let err = db
        .record_parts(&win, &[part(3, 1)], &json!(3), 31)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "window flow flow-1 [0, 1000) ms: the window is committing: it cannot be given parts"
    );
    let batch = db
        .complete_window(&win, Some("{\"fields\":[]}".to_owned()))
        .unwrap();
    assert_eq!(batch.status, BatchStatus::Success);
    assert_eq!(
        (batch.rows, batch.bytes),
        (30, 300),
        "rejected rows are no data"
    );
    assert_eq!(
        batch.files,
        vec![
            FileEntry {
                path: part(0, 10).final_path,
                rows: 10,
                bytes: 100
            },
            FileEntry {
                path: part(2, 20).final_path,
                rows: 20,
                bytes: 200
            },
        ]
    );
    let checkpoint = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(checkpoint.status, CheckpointStatus::Complete);
    assert_eq!(checkpoint.segments, vec![batch_ref("b1")]);
    assert!(
        checkpoint
            .parts
            .iter()
            .all(|p| p.state == PartState::Published)
    );
    assert_eq!(db.all_open_windows().unwrap(), vec![]);
    // Completing again is a no-op; a complete window takes no parts and no commit.
    assert_eq!(db.complete_window(&win, None).unwrap(), batch);
    assert!(db.record_parts(&win, &[part(3, 1)], &json!(3), 31).is_err());
    let err = db.start_commit(&win, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "window flow flow-1 [0, 1000) ms: the window is complete; begin it again to re-run it: it cannot be committed"
    );
}

#[test]
fn a_rerun_keeps_the_old_batch_until_its_own_commit_swaps_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let win = window("flow-1", Some(0), Some(1000));
    begin(&db, &win, "run-1", "b1");
    db.record_parts(&win, &[part(0, 10)], &json!(1), 10)
        .unwrap();
    commit(&db, &win, false);

    let err = db
        .begin_window(
            &win,
            &RunId::new("run-2"),
            &BatchId::new("b1"),
            &DatasetId::new("ds"),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "window flow flow-1 [0, 1000) ms: batch b1 is the window's current batch; a new run needs a new batch id"
    );
    let began = begin(&db, &win, "run-2", "b2");
    assert_eq!(
        began.abandoned, None,
        "nothing of a complete window is abandoned"
    );
    assert_eq!(began.checkpoint.replaces, vec![batch_ref("b1")]);
    assert_eq!(began.checkpoint.segments, vec![]);
    // The re-run fails or is interrupted: the old batch is untouched.
    assert_eq!(status_of(&db, "b1"), BatchStatus::Success);
    db.record_parts(&win, &[part(0, 12)], &json!(1), 12)
        .unwrap();
    assert_eq!(status_of(&db, "b1"), BatchStatus::Success);
    // Its commit swaps them.
    let committing = db.start_commit(&win, false).unwrap();
    assert_eq!(committing.replaces, vec![batch_ref("b1")]);
    db.complete_window(&win, None).unwrap();
    assert_eq!(status_of(&db, "b1"), BatchStatus::Removed);
    assert_eq!(status_of(&db, "b2"), BatchStatus::Success);
    let checkpoint = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(
        (checkpoint.segments, checkpoint.replaces),
        (vec![batch_ref("b2")], vec![])
    );
    // A batch id used before cannot come back.
    let err = db
        .begin_window(
            &win,
            &RunId::new("run-3"),
            &BatchId::new("b1"),
            &DatasetId::new("ds"),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "window flow flow-1 [0, 1000) ms: batch id b1 is already used; a new run needs a new batch id"
    );
}

#[test]
fn beginning_over_an_interrupted_attempt_abandons_it_and_keeps_what_it_would_replace() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let win = window("flow-1", None, Some(5000));
    begin(&db, &win, "run-1", "b1");
    db.record_parts(&win, &[part(0, 10)], &json!(1), 10)
        .unwrap();
    commit(&db, &win, false);
    begin(&db, &win, "run-2", "b2");
    db.record_parts(&win, &[part(0, 3)], &json!(1), 3).unwrap();

    let began = begin(&db, &win, "run-3", "b3");
    assert_eq!(
        began.abandoned,
        Some(AbandonedAttempt {
            batch: batch_ref("b2"),
            parts: vec![part(0, 3)]
        })
    );
    assert_eq!(status_of(&db, "b2"), BatchStatus::Failed);
    assert_eq!(
        began.checkpoint.replaces,
        vec![batch_ref("b1")],
        "the first generation is still the one to replace"
    );
    assert_eq!(status_of(&db, "b1"), BatchStatus::Success);
}

#[test]
fn a_truncated_window_stays_open_and_its_next_run_adds_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let win = window("flow-1", Some(0), Some(1000));
    begin(&db, &win, "run-1", "b1");
    db.record_parts(&win, &[part(0, 10)], &json!({"next": 3}), 10)
        .unwrap();
    let first = commit(&db, &win, true);
    assert_eq!(first.status, BatchStatus::Success);
    let open_window = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(open_window.status, CheckpointStatus::Open);
    assert_eq!(
        db.open_windows(&FlowId::new("flow-1"))
            .unwrap()
            .into_iter()
            .map(|w| w.status)
            .collect::<Vec<_>>(),
        vec![CheckpointStatus::Open]
    );
    // An open window is continued, not resumed.
    assert!(matches!(
        db.resume_window(&win, &RunId::new("run-2")),
        Err(StateError::Protocol { .. })
    ));
    let continued = db
        .continue_window(&win, &RunId::new("run-2"), &BatchId::new("b2"))
        .unwrap();
    assert_eq!(
        (
            continued.status,
            continued.batch_id.as_str(),
            continued.position.clone(),
            continued.attempt_start.clone(),
            continued.next_seq,
            continued.parts.len()
        ),
        (
            CheckpointStatus::InProgress,
            "b2",
            json!({"next": 3}),
            json!({"next": 3}),
            0,
            0
        )
    );
    db.record_parts(&win, &[part(0, 7)], &json!({"next": 5}), 7)
        .unwrap();
    commit(&db, &win, false);
    let done = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(done.status, CheckpointStatus::Complete);
    assert_eq!(done.segments, vec![batch_ref("b1"), batch_ref("b2")]);
    assert_eq!(status_of(&db, "b1"), BatchStatus::Success);
    // A re-run replaces every segment at its first commit.
    let began = begin(&db, &win, "run-3", "b3");
    assert_eq!(
        began.checkpoint.replaces,
        vec![batch_ref("b1"), batch_ref("b2")]
    );
    db.record_parts(&win, &[part(0, 17)], &json!({"next": 5}), 17)
        .unwrap();
    commit(&db, &win, false);
    assert_eq!(
        (
            status_of(&db, "b1"),
            status_of(&db, "b2"),
            status_of(&db, "b3")
        ),
        (
            BatchStatus::Removed,
            BatchStatus::Removed,
            BatchStatus::Success
        )
    );
}

#[test]
fn failing_an_attempt_starts_it_again_from_where_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let win = window("flow-1", Some(0), Some(1000));
    begin(&db, &win, "run-1", "b1");
    db.record_parts(&win, &[part(0, 10)], &json!({"next": 3}), 10)
        .unwrap();
    commit(&db, &win, true);
    db.continue_window(&win, &RunId::new("run-2"), &BatchId::new("b2"))
        .unwrap();
    db.record_parts(
        &win,
        &[part(0, 5), error_part(1, 5)],
        &json!({"next": 6}),
        5,
    )
    .unwrap();

    let failed = db.fail_window(&win, &BatchId::new("b3")).unwrap();
    assert_eq!(
        failed,
        AbandonedAttempt {
            batch: batch_ref("b2"),
            parts: vec![part(0, 5), error_part(1, 5)]
        }
    );
    assert_eq!(status_of(&db, "b2"), BatchStatus::Failed);
    assert_eq!(status_of(&db, "b3"), BatchStatus::Loading);
    let checkpoint = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(
        (
            checkpoint.status,
            checkpoint.batch_id.as_str(),
            checkpoint.position,
            checkpoint.next_seq,
            checkpoint.parts,
            checkpoint.segments
        ),
        (
            CheckpointStatus::InProgress,
            "b3",
            json!({"next": 3}),
            0,
            vec![],
            vec![batch_ref("b1")]
        )
    );
    // The next run resumes the fresh attempt.
    let resumed = db.resume_window(&win, &RunId::new("run-3")).unwrap();
    assert_eq!(resumed.batch_id.as_str(), "b3");
}

#[test]
fn overlapping_and_open_windows_are_found_without_scanning_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let day = 86_400_000;
    let windows = [
        window("f", None, Some(-day)),
        window("f", Some(-day), Some(0)),
        window("f", Some(day), Some(2 * day)),
        window("f", Some(2 * day), Some(3 * day)),
        window("f1", Some(0), Some(day)),
    ];
    for (idx, win) in windows.iter().enumerate() {
        begin(&db, win, "r", &format!("b{idx}"));
    }
    db.record_parts(&windows[2], &[part(0, 1)], &json!(1), 1)
        .unwrap();
    commit(&db, &windows[2], false);

    let starts = |found: Vec<WindowSummary>| -> Vec<Option<i64>> {
        found.into_iter().map(|w| w.window.start_ms).collect()
    };
    assert_eq!(
        starts(
            db.windows_overlapping(&window("f", Some(-day / 2), Some(day + 1)))
                .unwrap()
        ),
        vec![Some(-day), Some(day)]
    );
    assert_eq!(
        starts(
            db.windows_overlapping(&window("f", Some(0), Some(day)))
                .unwrap()
        ),
        Vec::<Option<i64>>::new(),
        "half-open: touching windows do not overlap"
    );
    assert_eq!(
        starts(db.windows_overlapping(&window("f", None, None)).unwrap()),
        vec![None, Some(-day), Some(day), Some(2 * day)]
    );
    assert_eq!(
        starts(
            db.windows_overlapping(&window("f", Some(5 * day), None))
                .unwrap()
        ),
        Vec::<Option<i64>>::new()
    );
    assert_eq!(
        starts(db.open_windows(&FlowId::new("f")).unwrap()),
        vec![None, Some(-day), Some(2 * day)]
    );
    assert_eq!(db.all_open_windows().unwrap().len(), 4);
    assert_eq!(db.windows_for_flow(&FlowId::new("f")).unwrap().len(), 4);
    assert!(window("f", None, None).overlaps(&window("f", Some(3), Some(4))));
    assert_eq!(window("f", None, None).to_string(), "flow f (unscheduled)");
    assert_eq!(
        window("f", Some(1), None).to_string(),
        "flow f [1, open) ms"
    );
}

#[test]
fn positions_are_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let token = "next-page-token-with-api_key=s3cr3t-9f2c";
    let win = window("flow-1", Some(0), Some(1000));
    {
        let db = open(dir.path());
        begin(&db, &win, "run-1", "b1");
        db.record_parts(&win, &[part(0, 1)], &json!({"next": {"url": token}}), 1)
            .unwrap();
        db.record_parts(
            &win,
            &[part(1, 1)],
            &json!({"next": {"url": format!("{token}-2")}}),
            2,
        )
        .unwrap();
        db.flush().unwrap();
    }
    let stored = stored_at_rest(dir.path());
    assert!(!stored.is_empty());
    for (file, bytes) in stored {
        assert!(
            !contains(&bytes, token.as_bytes()),
            "{file} holds a position in clear"
        );
    }
    let db = open(dir.path());
    assert_eq!(
        db.checkpoint(&win).unwrap().unwrap().position,
        json!({"next": {"url": format!("{token}-2")}})
    );
}
