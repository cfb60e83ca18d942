//! The Postgres backend's own behaviour against the real server of scripts/test: migrations,
//! the commit protocol under concurrency from two stores on one database, calls from inside a
//! tokio runtime, and copying a sled state with secrets. (The rest of the crate's suite runs
//! against Postgres through `crate::tests::the_suite_passes_on_postgres`.)

use serde_json::json;

use crate::tests::{options, part, postgres_schema_url, window};
use crate::*;

fn schedule() -> FlowScheduleState {
    FlowScheduleState {
        last_window_end_ms: None,
        next_due_ms: Some(1),
        enabled: true,
    }
}

fn fresh_url() -> PostgresUrl {
    postgres_schema_url(&format!("p_{}", uuid::Uuid::new_v4().simple()))
}

fn open_pg(url: &PostgresUrl) -> Db {
    Db::open_postgres(url, options()).unwrap()
}

/// Runs SQL on the schema of `url` and returns the first column of each row as text.
fn sql(url: &PostgresUrl, query: &str) -> Vec<String> {
    let config = url.config().clone();
    let query = query.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let messages = client.simple_query(&query).await.unwrap();
            messages
                .into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).unwrap_or("NULL").to_owned())
                    }
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .unwrap()
}

#[test]
fn migrations_run_once_and_a_newer_schema_is_refused() {
    let url = fresh_url();
    drop(open_pg(&url));
    assert_eq!(
        sql(
            &url,
            "SELECT version FROM schema_migrations ORDER BY version"
        ),
        vec!["1"]
    );
    // Opened again: nothing applied twice, the data is still there.
    let db = open_pg(&url);
    db.put_schedule_state(&FlowId::new("f"), &schedule())
        .unwrap();
    drop(db);
    let db = open_pg(&url);
    assert!(db.schedule_state(&FlowId::new("f")).unwrap().is_some());
    drop(db);
    assert_eq!(
        sql(&url, "SELECT count(*) FROM schema_migrations"),
        vec!["1"]
    );

    sql(&url, "INSERT INTO schema_migrations (version) VALUES (7)");
    let err = Db::open_postgres(&url, options()).unwrap_err();
    assert!(
        matches!(err, StateError::NewerSchema { version: 7, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("schema version 7") && text.contains("versions up to 1"),
        "{text}"
    );
}

#[test]
fn a_postgres_state_needs_a_configured_key_and_refuses_sled_settings() {
    let url = fresh_url();
    // SAFETY of the assertion: the test binary never sets TRIBUTARY_SECRET_KEY itself.
    if std::env::var_os(SecretKey::ENV_VAR).is_none() {
        let err = Db::open_postgres(&url, StateOptions::default()).unwrap_err();
        assert!(
            matches!(err, StateError::MissingSecretKey { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("secret_key"), "{err}");
    }
    let err = Db::open_postgres(
        &url,
        StateOptions {
            cache_capacity_bytes: Some(1 << 20),
            ..options()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("cache_capacity_bytes"), "{err}");
    drop(open_pg(&url));
    let other = StateOptions {
        secret_key: Some(SecretKey::from_bytes([9; 32])),
        cache_capacity_bytes: None,
    };
    let err = Db::open_postgres(&url, other).unwrap_err();
    assert!(matches!(err, StateError::WrongSecretKey { .. }), "{err:?}");
}

#[test]
fn a_bad_server_gives_a_clear_error_without_the_password() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = PostgresUrl::parse(&format!(
        "postgres://app:pw-s3cret@127.0.0.1:{port}/x?connect_timeout=2"
    ))
    .unwrap();
    let err = Db::open_postgres(&url, options()).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("connecting to Postgres"), "{text}");
    assert!(!text.contains("pw-s3cret"), "{text}");
    assert!(err.is_retryable());
}

/// Several threads on two stores over one database (two daemons' worth) record checkpoints of
/// one window at once: every part lands with the position after it, in one sequence with no
/// gap, whoever wins each race.
#[test]
fn the_commit_protocol_holds_under_concurrent_writers() {
    let url = fresh_url();
    let first = open_pg(&url);
    let second = open_pg(&url);
    let win = window("flow-race", Some(0), Some(1000));
    first
        .begin_window(
            &win,
            &RunId::new("run-1"),
            &BatchId::new("b1"),
            &DatasetId::new("d"),
        )
        .unwrap();
    const PER_THREAD: u32 = 15;
    let threads: Vec<_> = (0..4)
        .map(|idx| {
            let db = if idx % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let win = win.clone();
            std::thread::spawn(move || {
                let mut recorded = 0;
                let mut lost_races = 0;
                while recorded < PER_THREAD {
                    let seq = db.checkpoint(&win).unwrap().unwrap().next_seq;
                    let after = u64::from(seq) + 2;
                    match db.record_parts(
                        &win,
                        &[part(seq, 1), part(seq + 1, 1)],
                        &json!({"offset": after}),
                        after,
                    ) {
                        Ok(()) => recorded += 1,
                        // Another writer took this sequence number first.
                        Err(StateError::Protocol { .. }) => lost_races += 1,
                        Err(err) => panic!("{err}"),
                    }
                }
                lost_races
            })
        })
        .collect();
    let lost: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let checkpoint = second.checkpoint(&win).unwrap().unwrap();
    let n = 4 * PER_THREAD * 2;
    assert_eq!(checkpoint.next_seq, n);
    assert_eq!(
        checkpoint.parts.iter().map(|p| p.seq).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    assert_eq!(checkpoint.position, json!({"offset": n}));
    assert_eq!(checkpoint.rows, u64::from(n));
    assert_eq!(checkpoint.bytes, u64::from(n) * 10);
    println!("{n} parts recorded by 4 writers, {lost} lost races retried");

    // The commit swaps in one transaction, seen alike from both stores.
    second.start_commit(&win, false).unwrap();
    let batch = first.complete_window(&win, None).unwrap();
    assert_eq!(batch.status, BatchStatus::Success);
    assert_eq!(batch.files.len(), n as usize);
    assert_eq!(
        second.checkpoint(&win).unwrap().unwrap().status,
        CheckpointStatus::Complete
    );
    assert!(first.all_open_windows().unwrap().is_empty());
}

/// Concurrent unconditional and conditional entity writes from two stores: every write gets its
/// own version, and an etag race has exactly one winner.
#[test]
fn entity_writes_race_safely_across_stores() {
    let url = fresh_url();
    let stores = [open_pg(&url), open_pg(&url)];
    let first = stores[0]
        .put_entity(EntityKind::Flow, "f", json!({"n": 0}), &[], None)
        .unwrap();
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|idx| {
                let db = &stores[idx % 2];
                let etag = first.etag.clone();
                scope.spawn(move || {
                    db.put_entity(EntityKind::Flow, "f", json!({"n": idx}), &[], Some(&etag))
                        .is_ok()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(winners, 1);
    assert_eq!(
        stores[1]
            .entity(EntityKind::Flow, "f")
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

#[test]
fn the_store_is_usable_and_droppable_inside_a_tokio_runtime() {
    let url = fresh_url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let db = open_pg(&url);
        db.put_schedule_state(&FlowId::new("a"), &schedule())
            .unwrap();
        let clone = db.clone();
        let read = tokio::spawn(async move { clone.schedule_states().unwrap().len() })
            .await
            .unwrap();
        assert_eq!(read, 1);
        // Dropped on a runtime thread: the private runtime stops on its own thread.
        drop(db);
    });
    // And from a current-thread runtime, the flavour of #[tokio::test].
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = fresh_url();
    runtime.block_on(async move {
        let db = open_pg(&url);
        assert!(db.schedule_states().unwrap().is_empty());
    });
}

#[test]
fn a_sled_state_is_copied_with_its_secrets_and_opens_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [JsonPointer::parse("/auth/password").unwrap()];
    let win = window("flow-1", Some(0), Some(1000));
    {
        let db = Db::open(dir.path(), options()).unwrap();
        db.put_entity(
            EntityKind::Connection,
            "conn",
            json!({"auth": {"user": "u", "password": "pw-clear-123"}}),
            &secrets,
            None,
        )
        .unwrap();
        db.put_oauth_tokens(
            "conn",
            &OAuthTokens {
                access_token: "at-123".into(),
                refresh_token: None,
                expires_at_ms: None,
            },
        )
        .unwrap();
        db.begin_window(
            &win,
            &RunId::new("r"),
            &BatchId::new("b"),
            &DatasetId::new("d"),
        )
        .unwrap();
        db.record_parts(&win, &[part(0, 5)], &json!({"next": "tok"}), 5)
            .unwrap();
    }
    let url = fresh_url();
    let report = copy_state(
        &StateLocation::Sled(dir.path().to_owned()),
        &StateLocation::Postgres(url.clone()),
        options(),
    )
    .unwrap();
    let count = |name: &str| {
        report
            .tables
            .iter()
            .find(|(table, _)| table == name)
            .map(|(_, n)| *n)
    };
    assert_eq!(count("entity.connections"), Some(1));
    assert_eq!(count("oauth_tokens"), Some(1));
    assert_eq!(count("checkpoints"), Some(1));
    assert_eq!(count("parts"), Some(1));
    assert_eq!(count("batches"), Some(1));
    assert_eq!(report.key_origin, "the configuration");
    // Sealed as in sled: the password is not in the database in clear.
    let stored = sql(&url, "SELECT encode(v, 'escape') FROM kv").join("\n");
    assert!(stored.contains("\"user\":\"u\""), "{stored}");
    assert!(
        !stored.contains("pw-clear-123") && !stored.contains("at-123") && !stored.contains("tok\""),
        "{stored}"
    );

    let db = open_pg(&url);
    let conn = db.entity(EntityKind::Connection, "conn").unwrap().unwrap();
    assert_eq!(conn.doc["auth"]["password"], "pw-clear-123");
    assert_eq!(
        db.oauth_tokens("conn").unwrap().unwrap().access_token,
        "at-123"
    );
    let checkpoint = db.checkpoint(&win).unwrap().unwrap();
    assert_eq!(checkpoint.position, json!({"next": "tok"}));
    assert_eq!(db.all_open_windows().unwrap().len(), 1);
    drop(db);

    // A second copy into the now non-empty target is refused, naming it without a password.
    let err = copy_state(
        &StateLocation::Sled(dir.path().to_owned()),
        &StateLocation::Postgres(url.clone()),
        options(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}
