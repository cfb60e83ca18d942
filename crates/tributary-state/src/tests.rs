//! Tests against real sled databases in temporary directories; the lock and crash tests run a
//! second process (this test binary again, in a child role chosen by an environment variable).
//!
//! The same suite runs against Postgres: [`the_suite_passes_on_postgres`] runs this test binary
//! again with `TRIBUTARY_STATE_TEST_BACKEND=postgres`, where [`open`] maps each test's
//! temporary directory to a schema of its own on the server of `TRIBUTARY_TEST_POSTGRES_URL`
//! (reopening the same directory reopens the same schema). Only the tests of sled's own
//! mechanisms (directory lock, key file) are left out there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::*;
use crate::codec::{FORMAT_VERSION, KeyBuf, decode, encode, sortable_i64};

const TEST_KEY: [u8; 32] = [7; 32];
/// Set in a child process: which role it plays.
const CHILD_ROLE_VAR: &str = "TRIBUTARY_STATE_TEST_CHILD_ROLE";
/// Set in a child process: the state directory to use.
const CHILD_DIR_VAR: &str = "TRIBUTARY_STATE_TEST_CHILD_DIR";

pub(crate) fn options() -> StateOptions {
    StateOptions {
        secret_key: Some(SecretKey::from_bytes(TEST_KEY)),
        cache_capacity_bytes: None,
    }
}

/// Set in the run of this suite against Postgres.
pub(crate) const BACKEND_VAR: &str = "TRIBUTARY_STATE_TEST_BACKEND";
/// The server the Postgres tests use (scripts/test starts one and sets it).
pub(crate) const POSTGRES_URL_VAR: &str = "TRIBUTARY_TEST_POSTGRES_URL";

/// Tests of sled's own mechanisms: not run against Postgres.
const SLED_ONLY_TESTS: &[&str] = &[
    "tests::second_open_in_same_process_is_in_use_until_the_first_is_dropped",
    "tests::second_open_from_another_process_is_in_use",
    "tests::missing_key_is_generated_into_a_private_key_file_and_reused",
];

pub(crate) fn on_postgres() -> bool {
    std::env::var(BACKEND_VAR).is_ok_and(|value| value == "postgres")
}

/// The test server's URL; a missing one fails the test, naming how to get one.
pub(crate) fn postgres_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{POSTGRES_URL_VAR} is not set: run the tests through scripts/test, which starts a \
             throwaway PostgreSQL server and sets it"
        ),
    }
}

/// A fresh schema on the test server, created now, and the URL that selects it.
pub(crate) fn postgres_schema_url(schema: &str) -> PostgresUrl {
    let base = postgres_url();
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
    let admin = PostgresUrl::parse(&base).unwrap();
    // On a thread of its own: a test may run inside a tokio runtime.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = admin.config().connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute(&sql).await.unwrap();
        });
    })
    .join()
    .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    PostgresUrl::parse(&format!(
        "{base}{separator}options=-csearch_path%3D{schema}"
    ))
    .unwrap()
}

/// Where the suite keeps the state of `dir`: the directory itself, or on Postgres a schema
/// named after it.
pub(crate) fn location(dir: &Path) -> StateLocation {
    if !on_postgres() {
        return StateLocation::Sled(dir.to_owned());
    }
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    dir.hash(&mut hasher);
    StateLocation::Postgres(postgres_schema_url(&format!("t_{:016x}", hasher.finish())))
}

/// Opens `dir`, waiting a little while another test of this binary spawns a child process: a
/// forked child holds a copy of every open lock file until it execs, so a lock that a test has
/// just released can still read as taken for a moment.
pub(crate) fn open(dir: &Path) -> Db {
    let location = location(dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Db::open_at(&location, options()) {
            Err(StateError::InUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened.unwrap(),
        }
    }
}

/// What the state of `dir` holds at rest, as (label, bytes): sled's files, or every table's
/// rows on Postgres.
pub(crate) fn stored_at_rest(dir: &Path) -> Vec<(String, Vec<u8>)> {
    if !on_postgres() {
        return files_under(dir)
            .into_iter()
            .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
            .collect();
    }
    let db = open(dir);
    store::table_names()
        .into_iter()
        .map(|name| {
            let mut bytes = Vec::new();
            let table = db.trees().table(name).unwrap();
            table
                .scan(store::KeyRange::prefix(b""), false, |key, value| {
                    bytes.extend_from_slice(key);
                    bytes.extend_from_slice(value);
                    Ok(std::ops::ControlFlow::Continue(()))
                })
                .unwrap();
            (format!("table {name}"), bytes)
        })
        .collect()
}

/// The whole suite again, against Postgres (see the module header).
#[test]
fn the_suite_passes_on_postgres() {
    postgres_url();
    if on_postgres() {
        return;
    }
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(BACKEND_VAR, "postgres")
        .args([
            "--test-threads=2",
            "--skip",
            "tests::the_suite_passes_on_postgres",
        ])
        .args(["--skip", "postgres::"]);
    for name in SLED_ONLY_TESTS {
        command.args(["--skip", name]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("test result:"))
        .unwrap_or("no summary");
    println!("suite on Postgres: {summary}");
    assert!(
        output.status.success(),
        "the suite failed on Postgres:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The run did run the suite (and not, say, a filter that matched nothing).
    let passed: usize = summary
        .split_whitespace()
        .skip_while(|word| *word != "ok.")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= 25,
        "only {passed} tests ran on Postgres: {summary}"
    );
}

fn pointer(text: &str) -> JsonPointer {
    JsonPointer::parse(text).unwrap()
}

pub(crate) fn window(flow: &str, start_ms: Option<i64>, end_ms: Option<i64>) -> WindowKey {
    WindowKey::new(FlowId::new(flow), start_ms, end_ms)
}

pub(crate) fn part(seq: u32, rows: u64) -> PartEntry {
    PartEntry {
        seq,
        staged_path: format!("/staging/b/part-{seq:05}.parquet"),
        final_path: format!("/data/datasets/d/batch=b/part-{seq:05}.parquet"),
        rows,
        bytes: rows * 10,
        state: PartState::Pending,
    }
}

fn run_record(id: &str, flow: &str, started_at_ms: i64, status: RunStatus) -> RunRecord {
    RunRecord {
        id: RunId::new(id),
        flow_id: FlowId::new(flow),
        status,
        window: Some(Window {
            start_ms: started_at_ms - 3_600_000,
            end_ms: started_at_ms,
        }),
        batch_id: None,
        started_at_ms,
        completed_at_ms: None,
        run_doc: json!({"id": id, "flowId": flow, "metrics": {"recordSummary": {"outputRecordCount": 3}}}),
    }
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Runs this test binary again, only the test `test_name`, in `role` on `dir`.
pub(crate) fn spawn_child(test_name: &str, role: &str, dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE_VAR, role)
        .env(CHILD_DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub(crate) fn child_role() -> Option<(String, PathBuf)> {
    let role = std::env::var(CHILD_ROLE_VAR).ok()?;
    let dir = std::env::var_os(CHILD_DIR_VAR)?;
    Some((role, dir.into()))
}

// ---------------------------------------------------------------------------------------------
// Opening, locking, keys.

#[test]
fn reopen_after_drop_sees_everything() {
    let dir = tempfile::tempdir().unwrap();
    let flow = FlowId::new("flow-1");
    let win = window("flow-1", Some(0), Some(1000));
    {
        let db = open(dir.path());
        db.put_entity(EntityKind::Flow, "flow-1", json!({"name": "f"}), &[], None)
            .unwrap();
        db.put_run(&run_record("run-1", "flow-1", 5000, RunStatus::Success))
            .unwrap();
        db.begin_window(
            &win,
            &RunId::new("run-1"),
            &BatchId::new("batch-1"),
            &DatasetId::new("ds"),
        )
        .unwrap();
        db.record_parts(&win, &[part(0, 10)], &json!({"offset": 10}), 10)
            .unwrap();
        let schedule = FlowScheduleState {
            last_window_end_ms: Some(1000),
            next_due_ms: Some(2000),
            enabled: true,
        };
        db.put_schedule_state(&flow, &schedule).unwrap();
        db.put_bundle_source(Path::new("/flows/a.json"), "hash-a", &flow)
            .unwrap();
        let tokens = OAuthTokens {
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            expires_at_ms: Some(9),
        };
        db.put_oauth_tokens("conn-1", &tokens).unwrap();
        // Dropped without an explicit flush: a clean close must keep everything.
    }
    let db = open(dir.path());
    assert_eq!(
        db.entity(EntityKind::Flow, "flow-1").unwrap().unwrap().doc,
        json!({"name": "f"})
    );
    assert_eq!(
        db.run(&RunId::new("run-1")).unwrap().unwrap().status,
        RunStatus::Success
    );
    let checkpoint = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(checkpoint.position, json!({"offset": 10}));
    assert_eq!(checkpoint.parts, vec![part(0, 10)]);
    assert_eq!(
        db.batch(&BatchId::new("batch-1")).unwrap().unwrap().status,
        BatchStatus::Loading
    );
    assert_eq!(
        db.schedule_state(&flow).unwrap().unwrap().next_due_ms,
        Some(2000)
    );
    assert_eq!(
        db.bundle_source(Path::new("/flows/a.json"))
            .unwrap()
            .unwrap()
            .content_hash,
        "hash-a"
    );
    assert_eq!(
        db.oauth_tokens("conn-1")
            .unwrap()
            .unwrap()
            .refresh_token
            .as_deref(),
        Some("rt")
    );
}

/// The entities epoch moves by exactly one per write or delete, however many writers race
/// (the API's view relies on "one more than mine: no other write came between").
#[test]
fn the_entities_epoch_counts_every_write_of_concurrent_writers_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    assert_eq!(db.entities_epoch().unwrap(), None);
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let db = db.clone();
            scope.spawn(move || {
                for n in 0..10 {
                    let id = format!("flow-{writer}-{n}");
                    db.put_entity(EntityKind::Flow, &id, json!({"n": n}), &[], None)
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(db.entities_epoch().unwrap(), Some(40));
    assert!(
        db.delete_entity(EntityKind::Flow, "flow-0-0", None)
            .unwrap()
    );
    // Deleting what is not there changes nothing, so it does not count.
    assert!(
        !db.delete_entity(EntityKind::Flow, "flow-0-0", None)
            .unwrap()
    );
    assert_eq!(db.entities_epoch().unwrap(), Some(41));
    assert_eq!(next_entities_epoch(Some(u64::MAX)), 0);
}

#[test]
fn db_can_be_shared_across_threads_and_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    fn assert_clone<T: Clone>() {}
    assert_send_sync::<Db>();
    assert_clone::<Db>();
    assert_send_sync::<StateError>();
}

#[test]
fn second_open_in_same_process_is_in_use_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let clone = first.clone();
    let err = Db::open(dir.path(), options()).unwrap_err();
    let StateError::InUse { pid, .. } = &err else {
        panic!("expected InUse, got {err:?}")
    };
    assert_eq!(*pid, Some(std::process::id()));
    assert_eq!(
        err.to_string(),
        format!(
            "state directory {} is already in use by another tributary process (pid {})",
            dir.path().display(),
            std::process::id()
        )
    );
    assert!(err.is_retryable());
    // The lock is held until the last clone is gone.
    drop(first);
    assert!(matches!(
        Db::open(dir.path(), options()),
        Err(StateError::InUse { .. })
    ));
    drop(clone);
    open(dir.path());
}

#[test]
fn second_open_from_another_process_is_in_use() {
    const NAME: &str = "tests::second_open_from_another_process_is_in_use";
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "probe-open");
        match Db::open(&dir, options()) {
            Err(StateError::InUse { pid, .. }) => println!("IN_USE {}", pid.unwrap_or(0)),
            Err(err) => println!("OTHER {err}"),
            Ok(_) => println!("OPENED"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let output = spawn_child(NAME, "probe-open", dir.path())
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("IN_USE {}", std::process::id())),
        "child said: {stdout}"
    );
    drop(db);
    let output = spawn_child(NAME, "probe-open", dir.path())
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("OPENED"), "child said: {stdout}");
}

#[test]
fn a_different_secret_key_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let other = StateOptions {
        secret_key: Some(SecretKey::from_bytes([8; 32])),
        cache_capacity_bytes: None,
    };
    let err = Db::open_at(&location(dir.path()), other).unwrap_err();
    assert!(matches!(err, StateError::WrongSecretKey { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the secret key from the configuration does not match the key {} was written with; \
             configure the original key (TRIBUTARY_SECRET_KEY or secret_key)",
            location(dir.path())
        )
    );
    // The original key still works.
    open(dir.path());
}

#[test]
fn missing_key_is_generated_into_a_private_key_file_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (generated, origin) = resolve_secret_key(Some(dir.path()), None, None).unwrap();
    let key_path = dir.path().join(KEY_FILE);
    assert_eq!(origin, format!("key file {}", key_path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (again, _) = resolve_secret_key(Some(dir.path()), None, None).unwrap();
    assert_eq!(again, generated);
    // The environment wins over the file, the configuration over both.
    let env_key = SecretKey::from_bytes([1; 32]);
    let (from_env, origin) =
        resolve_secret_key(Some(dir.path()), None, Some(env_key.to_base64().into())).unwrap();
    assert_eq!(
        (from_env, origin.as_str()),
        (env_key.clone(), "environment variable TRIBUTARY_SECRET_KEY")
    );
    let configured = SecretKey::from_bytes([2; 32]);
    let (chosen, _) = resolve_secret_key(
        Some(dir.path()),
        Some(configured.clone()),
        Some(env_key.to_base64().into()),
    )
    .unwrap();
    assert_eq!(chosen, configured);
}

#[test]
fn secret_key_parsing() {
    fn check(text: &str, expect: Result<[u8; 32], &str>) {
        let res = SecretKey::from_base64(text).map_err(|err| err.to_string());
        assert_eq!(
            res,
            expect.map(SecretKey::from_bytes).map_err(str::to_owned),
            "input {text:?}"
        );
    }
    let key = [0xAB; 32];
    let standard = SecretKey::from_bytes(key).to_base64();
    check(&standard, Ok(key));
    check(&format!("  {standard}\n"), Ok(key));
    check(standard.trim_end_matches('='), Ok(key));
    check(&standard.replace('+', "-").replace('/', "_"), Ok(key));
    check(
        "c2hvcnQ=",
        Err("invalid secret key from the given value: expected base64 of 32 bytes, found 5 bytes"),
    );
    check(
        "not base64 at all!",
        Err(
            "invalid secret key from the given value: expected base64 of 32 bytes, found text that is not base64",
        ),
    );
    assert_eq!(
        format!("{:?}", SecretKey::from_bytes(key)),
        "SecretKey(***)"
    );
}

#[test]
fn newer_database_format_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        db.trees()
            .meta
            .put(META_FORMAT_VERSION, "format version", &(FORMAT_VERSION + 1))
            .unwrap();
    }
    let err = Db::open_at(&location(dir.path()), options()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "state written by a newer tributary: tree meta, key format_version has format version 2, this build reads up to 1"
    );
}

// ---------------------------------------------------------------------------------------------
// The codec and keys.

#[test]
fn codec_checks_the_version_byte() {
    fn check(bytes: &[u8], expect: Result<Value, &str>) {
        let res = decode::<Value>("runs", b"run\x00\x01", bytes).map_err(|err| err.to_string());
        assert_eq!(res, expect.map_err(str::to_owned), "input {bytes:?}");
    }
    check(
        &encode("test", &json!({"a": 1})).unwrap(),
        Ok(json!({"a": 1})),
    );
    check(b"\x01[1,2]", Ok(json!([1, 2])));
    check(
        b"",
        Err(
            "corrupt state in tree runs at key run\\x00\\x01: empty value (expected a format version byte)",
        ),
    );
    check(
        b"\x00{}",
        Err(
            "corrupt state in tree runs at key run\\x00\\x01: format version 0 is not a valid version",
        ),
    );
    check(
        b"\x02{}",
        Err(
            "state written by a newer tributary: tree runs, key run\\x00\\x01 has format version 2, this build reads up to 1",
        ),
    );
    check(
        b"\x01{\"a\":",
        Err(
            "corrupt state in tree runs at key run\\x00\\x01: undecodable value: EOF while parsing a value at line 1 column 5",
        ),
    );
    assert_eq!(encode("test", &json!(null)).unwrap()[0], FORMAT_VERSION);
}

#[test]
fn corrupted_values_give_corrupt_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put_run(&run_record("run-1", "flow-1", 1, RunStatus::Success))
        .unwrap();
    db.trees()
        .runs
        .put_raw(b"run-1", b"\x01{\"id\": 12")
        .unwrap();
    let err = db.run(&RunId::new("run-1")).unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { tree, key, .. } if tree == "runs" && key == "run-1"),
        "{err:?}"
    );
    // Listings that meet the value fail the same way.
    assert!(matches!(
        db.runs_for_flow(&FlowId::new("flow-1"), 10),
        Err(StateError::Corrupt { .. })
    ));

    // A value of the wrong shape, and a checkpoint written by a future release.
    db.put_entity(EntityKind::Flow, "f", json!({}), &[], None)
        .unwrap();
    db.trees()
        .entity(EntityKind::Flow)
        .put_raw(b"f", b"\x01[]")
        .unwrap();
    assert!(matches!(
        db.entity(EntityKind::Flow, "f"),
        Err(StateError::Corrupt { .. })
    ));
    let win = window("flow-1", None, None);
    db.begin_window(
        &win,
        &RunId::new("r"),
        &BatchId::new("b"),
        &DatasetId::new("d"),
    )
    .unwrap();
    db.trees()
        .checkpoints
        .put_raw(&win.key(), b"\x09{}")
        .unwrap();
    let err = db.checkpoint(&win).unwrap_err();
    assert!(
        matches!(err, StateError::NewerFormat { version: 9, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[test]
fn keys_sort_like_the_values() {
    let values = [i64::MIN, -86_400_000, -1, 0, 1, 1_764_400_000_000, i64::MAX];
    for pair in values.windows(2) {
        assert!(
            sortable_i64(pair[0]) < sortable_i64(pair[1]),
            "{} vs {}",
            pair[0],
            pair[1]
        );
    }
    // Length prefixes keep "f" from being a prefix of "f1" at the same position.
    let short = KeyBuf::new().str("f").i64(i64::MAX).finish();
    let long = KeyBuf::new().str("f1").i64(i64::MIN).finish();
    assert!(!long.starts_with(&KeyBuf::new().str("f").finish()));
    assert!(short < long);
}

// ---------------------------------------------------------------------------------------------
// Entities and secrets.

#[test]
fn entity_etag_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let kind = EntityKind::SourceConnection;
    let created = db
        .put_entity(kind, "sc-1", json!({"params": {"listId": "a"}}), &[], None)
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.created_at_ms, created.updated_at_ms);

    let updated = db
        .put_entity(
            kind,
            "sc-1",
            json!({"params": {"listId": "b"}}),
            &[],
            Some(&created.etag),
        )
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_ne!(updated.etag, created.etag);
    assert_eq!(updated.created_at_ms, created.created_at_ms);

    let stale = db
        .put_entity(kind, "sc-1", json!({}), &[], Some(&created.etag))
        .unwrap_err();
    assert_eq!(
        stale.to_string(),
        format!(
            "sourceConnection sc-1 was modified concurrently: expected etag {}, current etag {}",
            created.etag, updated.etag
        )
    );
    assert!(stale.is_caller_error() && !stale.is_retryable());
    assert_eq!(
        db.entity(kind, "sc-1").unwrap().unwrap().doc,
        json!({"params": {"listId": "b"}})
    );

    // An If-Match header value (quoted, maybe weak) is accepted.
    let quoted = format!("W/\"{}\"", updated.etag);
    let third = db
        .put_entity(kind, "sc-1", json!({"v": 3}), &[], Some(&quoted))
        .unwrap();
    assert_eq!(third.version, 3);

    let missing = db
        .put_entity(kind, "nope", json!({}), &[], Some("x"))
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "sourceConnection nope was modified concurrently: expected etag x, current etag none (it does not exist)"
    );
    assert!(matches!(
        db.delete_entity(kind, "sc-1", Some(&created.etag)),
        Err(StateError::EtagMismatch { .. })
    ));
    assert!(db.delete_entity(kind, "sc-1", Some(&third.etag)).unwrap());
    assert!(!db.delete_entity(kind, "sc-1", None).unwrap());
    assert_eq!(db.entity(kind, "sc-1").unwrap(), None);
    assert!(matches!(
        db.put_entity(kind, "", json!({}), &[], None),
        Err(StateError::InvalidInput { .. })
    ));
}

#[test]
fn concurrent_unconditional_writes_each_get_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let threads: Vec<_> = (0..4)
        .map(|thread_idx| {
            let db = db.clone();
            std::thread::spawn(move || {
                for write_idx in 0..25 {
                    db.put_entity(
                        EntityKind::Flow,
                        "f",
                        json!({"t": thread_idx, "w": write_idx}),
                        &[],
                        None,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        db.entity(EntityKind::Flow, "f").unwrap().unwrap().version,
        100
    );
}

#[test]
fn entities_are_listed_by_kind_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for id in ["b", "a", "c"] {
        db.put_entity(EntityKind::MappingSet, id, json!({"id": id}), &[], None)
            .unwrap();
    }
    db.put_entity(EntityKind::Flow, "z", json!({}), &[], None)
        .unwrap();
    let ids: Vec<String> = db
        .list_entities(EntityKind::MappingSet)
        .unwrap()
        .into_iter()
        .map(|entity| entity.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(
        db.list_entities(EntityKind::ConnectionSpec).unwrap(),
        vec![]
    );
}

#[test]
fn secrets_are_never_stored_in_clear() {
    const PASSWORD: &str = "hunter2-Very-Secret-9f8e7d";
    const ACCESS_TOKEN: &str = "access-TOKEN-5a4b3c2d1e";
    const REFRESH_TOKEN: &str = "refresh-TOKEN-0f9e8d7c6b";
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({
        "name": "mailchimp",
        "auth": {"specName": "Basic Authentication", "params": {"username": "u", "password": PASSWORD, "apiKey": null}}
    });
    let secrets = [
        pointer("/auth/params/password"),
        pointer("/auth/params/apiKey"),
        pointer("/auth/params/absent"),
    ];
    {
        let db = open(dir.path());
        let written = db
            .put_entity(
                EntityKind::Connection,
                "conn-1",
                doc.clone(),
                &secrets,
                None,
            )
            .unwrap();
        assert_eq!(written.doc, doc);
        assert!(!format!("{written:?}").contains(PASSWORD));
        let tokens = OAuthTokens {
            access_token: ACCESS_TOKEN.into(),
            refresh_token: Some(REFRESH_TOKEN.into()),
            expires_at_ms: Some(1),
        };
        db.put_oauth_tokens("conn-1", &tokens).unwrap();
        let debug = format!("{tokens:?}");
        assert!(
            !debug.contains(ACCESS_TOKEN) && !debug.contains(REFRESH_TOKEN),
            "{debug}"
        );
        db.flush().unwrap();
    }
    let mut n_files = 0;
    for (path, bytes) in stored_at_rest(dir.path()) {
        n_files += 1;
        for secret in [PASSWORD, ACCESS_TOKEN, REFRESH_TOKEN] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret} found in clear in {path}"
            );
        }
        // The non-secret fields are stored as they are, which shows the scan reads the data.
        if contains(&bytes, b"Basic Authentication") {
            n_files += 1000;
        }
    }
    assert!(n_files > 1000, "the document was not found on disk at all");

    let db = open(dir.path());
    assert_eq!(
        db.entity(EntityKind::Connection, "conn-1")
            .unwrap()
            .unwrap()
            .doc,
        doc
    );
    let redacted = db
        .entity_redacted(EntityKind::Connection, "conn-1")
        .unwrap()
        .unwrap();
    assert_eq!(
        redacted.doc["auth"]["params"],
        json!({"username": "u", "password": "***", "apiKey": null})
    );
    assert_eq!(
        db.list_entities_redacted(EntityKind::Connection).unwrap()[0].doc,
        redacted.doc
    );
    assert_eq!(
        db.oauth_tokens("conn-1").unwrap().unwrap().access_token,
        ACCESS_TOKEN
    );
}

#[test]
fn sealed_secrets_are_bound_to_their_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let secrets = [pointer("/password")];
    db.put_entity(
        EntityKind::Connection,
        "a",
        json!({"password": "pa"}),
        &secrets,
        None,
    )
    .unwrap();
    db.put_entity(
        EntityKind::Connection,
        "b",
        json!({"password": "pb"}),
        &secrets,
        None,
    )
    .unwrap();
    // Copy a's stored value over b's: the ciphertext must not open as b's secret.
    let table = db.trees().entity(EntityKind::Connection);
    let stored_a = table.get_raw(b"a").unwrap().unwrap();
    table.put_raw(b"b", &stored_a).unwrap();
    let err = db.entity(EntityKind::Connection, "b").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decrypt secret in tree entity.connections at key b, location /password: authentication failed"
    );
}

#[test]
fn json_pointer_parsing() {
    fn check(text: &str, expect: Result<(), &str>) {
        let res = JsonPointer::parse(text)
            .map(|_| ())
            .map_err(|err| err.to_string());
        assert_eq!(res, expect.map_err(str::to_owned), "input {text:?}");
    }
    check("/auth/params/password", Ok(()));
    check("/a~1b/c~0d/0", Ok(()));
    check(
        "",
        Err(
            "invalid json pointer \"\": the whole document cannot be a secret; expected a pointer such as /auth/params/password",
        ),
    );
    check(
        "auth/password",
        Err("invalid json pointer \"auth/password\": expected a leading '/'"),
    );
    check(
        "/a~2",
        Err("invalid json pointer \"/a~2\": '~' must be followed by 0 or 1"),
    );
    check(
        "/a~",
        Err("invalid json pointer \"/a~\": '~' must be followed by 0 or 1"),
    );
}

// ---------------------------------------------------------------------------------------------
// Runs.

#[test]
fn runs_are_listed_newest_first_and_pruned_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    // Flow ids where one is a prefix of the other must not mix.
    for (id, flow, started, status) in [
        ("r1", "f", 100, RunStatus::Success),
        ("r2", "f", 300, RunStatus::Failed),
        ("r3", "f", 200, RunStatus::InProgress),
        ("r4", "f", 400, RunStatus::Success),
        ("r5", "f1", 250, RunStatus::Success),
        ("r0", "f", -50, RunStatus::Cancelled),
    ] {
        db.put_run(&run_record(id, flow, started, status)).unwrap();
    }
    let ids = |runs: Vec<RunRecord>| {
        runs.into_iter()
            .map(|run| run.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(db.runs_for_flow(&FlowId::new("f"), 10).unwrap()),
        ["r4", "r2", "r3", "r1", "r0"]
    );
    assert_eq!(
        ids(db.runs_for_flow(&FlowId::new("f"), 2).unwrap()),
        ["r4", "r2"]
    );
    assert_eq!(
        ids(db.runs_for_flow(&FlowId::new("f1"), 10).unwrap()),
        ["r5"]
    );
    assert_eq!(ids(db.recent_runs(3).unwrap()), ["r4", "r2", "r5"]);

    // Rewriting a run with a new start time moves it in the indexes (no duplicate).
    let mut moved = run_record("r1", "f", 500, RunStatus::Success);
    moved.completed_at_ms = Some(600);
    db.put_run(&moved).unwrap();
    assert_eq!(
        ids(db.runs_for_flow(&FlowId::new("f"), 10).unwrap()),
        ["r1", "r4", "r2", "r3", "r0"]
    );
    assert_eq!(
        ids(db.recent_runs(10).unwrap()),
        ["r1", "r4", "r2", "r5", "r3", "r0"]
    );

    // Keep the newest 2; r3 is older but still in progress, so it stays.
    assert_eq!(db.prune_runs(&FlowId::new("f"), 2).unwrap(), 2);
    assert_eq!(
        ids(db.runs_for_flow(&FlowId::new("f"), 10).unwrap()),
        ["r1", "r4", "r3"]
    );
    assert_eq!(ids(db.recent_runs(10).unwrap()), ["r1", "r4", "r5", "r3"]);
    assert_eq!(db.run(&RunId::new("r2")).unwrap(), None);
    assert_eq!(db.prune_runs(&FlowId::new("f"), 2).unwrap(), 0);
    assert_eq!(
        ids(db.runs_for_flow(&FlowId::new("f1"), 10).unwrap()),
        ["r5"]
    );
}

// ---------------------------------------------------------------------------------------------
// Schedules and bundles.

#[test]
fn schedule_states_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let state = FlowScheduleState {
        last_window_end_ms: None,
        next_due_ms: Some(10),
        enabled: false,
    };
    db.put_schedule_state(&FlowId::new("b"), &state).unwrap();
    db.put_schedule_state(
        &FlowId::new("a"),
        &FlowScheduleState {
            enabled: true,
            ..state
        },
    )
    .unwrap();
    let flows: Vec<(String, bool)> = db
        .schedule_states()
        .unwrap()
        .into_iter()
        .map(|(flow, state)| (flow.to_string(), state.enabled))
        .collect();
    assert_eq!(flows, [("a".to_owned(), true), ("b".to_owned(), false)]);
    assert!(db.delete_schedule_state(&FlowId::new("a")).unwrap());
    assert_eq!(db.schedule_state(&FlowId::new("a")).unwrap(), None);
}

#[test]
fn loading_the_same_bundle_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let path = Path::new("/flows/members.json");
    let flow = FlowId::new("flow-1");
    assert_eq!(
        db.put_bundle_source(path, "h1", &flow).unwrap(),
        BundleChange::New
    );
    let first = db.bundle_source(path).unwrap().unwrap();
    assert_eq!(
        db.put_bundle_source(path, "h1", &flow).unwrap(),
        BundleChange::Unchanged
    );
    assert_eq!(db.bundle_source(path).unwrap().unwrap(), first);
    assert_eq!(
        db.put_bundle_source(path, "h2", &flow).unwrap(),
        BundleChange::Changed { previous: first }
    );
    assert_eq!(db.bundle_sources().unwrap().len(), 1);
    assert!(db.delete_bundle_source(path).unwrap());
    assert_eq!(db.bundle_sources().unwrap(), vec![]);
}

fn origin(path: &str, data_type: &str, batch: &str) -> ColumnOrigin {
    ColumnOrigin {
        path: path.to_owned(),
        data_type: data_type.to_owned(),
        change: ColumnChange::Added,
        batch_id: BatchId::new(batch),
        run_id: RunId::new("run-1"),
        at_ms: 1,
    }
}

#[test]
fn dataset_schema_grows_by_compare_and_swap_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = DatasetId::new("members");
    {
        let db = open(dir.path());
        assert_eq!(db.dataset_schema(&dataset).unwrap(), None);
        let GrowOutcome::Grown(first) = db
            .grow_dataset_schema(
                &dataset,
                None,
                "{\"v\":1}".into(),
                vec![origin("id", "Int64", "b1")],
            )
            .unwrap()
        else {
            panic!("expected the first schema to be created");
        };
        assert_eq!(first.version, 1);
        // A writer that read no schema (or an older version) is told to merge again.
        let stale = db
            .grow_dataset_schema(&dataset, None, "{\"v\":9}".into(), vec![])
            .unwrap();
        assert_eq!(stale, GrowOutcome::Conflict(first.clone()));
        let mut widened = origin("id", "Float64", "b2");
        widened.change = ColumnChange::Widened;
        let GrowOutcome::Grown(second) = db
            .grow_dataset_schema(
                &dataset,
                Some(1),
                "{\"v\":2}".into(),
                vec![widened.clone(), origin("name", "Utf8", "b2")],
            )
            .unwrap()
        else {
            panic!("expected growth at version 1");
        };
        assert_eq!(second.version, 2);
        assert_eq!(second.columns, vec![widened, origin("name", "Utf8", "b2")]);
        // Growing a schema nobody created, from a version, is refused.
        let missing =
            db.grow_dataset_schema(&DatasetId::new("other"), Some(3), "{}".into(), vec![]);
        assert!(
            matches!(missing, Err(StateError::NotFound { .. })),
            "{missing:?}"
        );
    }
    let db = open(dir.path());
    let schema = db.dataset_schema(&dataset).unwrap().unwrap();
    assert_eq!(schema.arrow_schema_json, "{\"v\":2}");
    assert_eq!(db.dataset_schemas().unwrap(), vec![schema]);
}
