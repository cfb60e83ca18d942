//! The Postgres state backend end to end: `tributary run` with `[state] backend = "postgres"`
//! (state in the server of scripts/test, none in `state_dir`), `tributary state migrate` of a
//! sled state with secrets into Postgres and the engine going on from it, and the config errors.
//! Each test works in a schema of its own (`search_path` in the URL), made with Debian's psql.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::run::{
    Ran, Sandbox, basic_auth_spec, basic_mock, basic_params, bundle, check_published, mock,
    offset_attributes, read_parquet,
};

const URL_VAR: &str = "TRIBUTARY_TEST_POSTGRES_URL";
/// The variable the tests' configs read the URL from (`${env:...}`).
const CONFIG_URL_VAR: &str = "IT_STATE_URL";
/// Sent as the password in every URL: the test server trusts loopback, so it is accepted and
/// ignored, and it must never be printed.
const PG_PASSWORD: &str = "it-pg-pass-77";

fn base_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{URL_VAR} is not set: run the tests through scripts/test, which starts a throwaway \
             PostgreSQL server and sets it"
        ),
    }
}

fn psql() -> PathBuf {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's postgresql (scripts/test installs it)")
        .map(|entry| entry.unwrap().path().join("bin/psql"))
        .filter(|path| path.is_file())
        .collect();
    bins.sort();
    bins.pop().expect("psql under /usr/lib/postgresql/*/bin")
}

/// Runs SQL through psql; the rows, unaligned.
fn sql(url: &str, query: &str) -> String {
    let output = Command::new(psql())
        .args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", query])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A new schema and the URL selecting it, with [`PG_PASSWORD`] in it.
pub(crate) fn fresh_schema_url() -> String {
    let base = base_url();
    let schema = format!("it_{}", uuid::Uuid::new_v4().simple());
    sql(&base, &format!("CREATE SCHEMA {schema}"));
    let with_password = base.replacen("://postgres@", &format!("://postgres:{PG_PASSWORD}@"), 1);
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{with_password}{separator}options=-csearch_path%3D{schema}")
}

fn secret_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([5u8; 32])
}

/// Writes a config with `[state]` set to `state` (TOML lines) and returns its path.
fn config(sandbox: &Sandbox, name: &str, state: &str) -> String {
    let path = sandbox.dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("[state]\nsecret_key = \"{}\"\n{state}\n", secret_key()),
    )
    .unwrap();
    path.display().to_string()
}

fn postgres_config(sandbox: &Sandbox) -> String {
    config(
        sandbox,
        "pg",
        &format!("backend = \"postgres\"\nurl = \"${{env:{CONFIG_URL_VAR}}}\""),
    )
}

fn tributary(sandbox: &Sandbox, url: &str, args: &[&str]) -> Ran {
    let ran = crate::run::ran(
        sandbox
            .command(args)
            .env(CONFIG_URL_VAR, url)
            .output()
            .unwrap(),
    );
    for secret in [PG_PASSWORD, "it-password"] {
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "{secret} was printed: {ran:?}"
        );
    }
    ran
}

fn run_json(sandbox: &Sandbox, url: &str, config: &str, bundle_path: &str) -> Value {
    let ran = tributary(
        sandbox,
        url,
        &["run", bundle_path, "--json", "--config", config],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    serde_json::from_str(&ran.stdout).unwrap_or_else(|err| panic!("{err}: {ran:?}"))
}

fn batch_of(run: &Value) -> String {
    run["activities"][1]["targetInfo"][0]["reference"]["ids"][0]
        .as_str()
        .unwrap()
        .to_owned()
}

fn batch_dirs(sandbox: &Sandbox, dataset: &str) -> Vec<String> {
    let mut dirs: Vec<String> = sandbox
        .dataset_files(dataset)
        .iter()
        .map(|file| file.split('/').next().unwrap().to_owned())
        .collect();
    dirs.dedup();
    dirs
}

#[test]
fn a_run_keeps_its_state_in_postgres() {
    let url = fresh_schema_url();
    let mock = mock(basic_mock(3_000));
    let sandbox = Sandbox::new();
    let config = postgres_config(&sandbox);
    let path = sandbox.bundle(
        "pg",
        &bundle(
            "it-pg",
            basic_auth_spec(),
            offset_attributes(500),
            basic_params(&mock),
            "pg",
        ),
    );
    let first = run_json(&sandbox, &url, &config, &path);
    check_published(&sandbox, "pg", &first);
    let rows: usize = read_parquet(&sandbox.data().join("datasets/pg"))
        .iter()
        .map(|batch| batch.num_rows())
        .sum();
    assert_eq!(rows, 3_000);
    // The state is in Postgres: no sled database was made, the run and batch rows are there.
    assert!(!sandbox.dir.path().join("state/db").exists());
    assert_eq!(
        sql(&url, "SELECT count(*) FROM kv WHERE tbl = 'runs'").trim(),
        "1"
    );
    assert_eq!(
        sql(&url, "SELECT max(version) FROM schema_migrations").trim(),
        "1"
    );
    let stored = sql(&url, "SELECT encode(v, 'escape') FROM kv");
    assert!(
        !stored.contains("it-password"),
        "a secret is in clear in Postgres"
    );

    // A second run of the window reads the first one's checkpoint from Postgres and replaces
    // its batch; another process lists both runs from there.
    let second = run_json(&sandbox, &url, &config, &path);
    assert_ne!(batch_of(&first), batch_of(&second));
    assert_eq!(
        batch_dirs(&sandbox, "pg"),
        vec![format!("batch={}", batch_of(&second))]
    );
    let listed = tributary(&sandbox, &url, &["runs", "--json", "--config", &config]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let runs: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(runs.len(), 2, "{listed:?}");
}

#[test]
fn state_migrate_copies_a_sled_state_and_the_engine_goes_on_from_it() {
    let url = fresh_schema_url();
    let mock = mock(basic_mock(2_000));
    let sandbox = Sandbox::new();
    let sled_config = config(&sandbox, "sled", "");
    let path = sandbox.bundle(
        "mig",
        &bundle(
            "it-mig",
            basic_auth_spec(),
            offset_attributes(500),
            basic_params(&mock),
            "mig",
        ),
    );
    let on_sled = run_json(&sandbox, &url, &sled_config, &path);
    check_published(&sandbox, "mig", &on_sled);
    let state_dir = sandbox.dir.path().join("state");
    assert!(state_dir.join("db").is_dir());

    let state_arg = state_dir.display().to_string();
    let target = format!("${{env:{CONFIG_URL_VAR}}}");
    let migrate = |sandbox: &Sandbox| {
        tributary(
            sandbox,
            &url,
            &[
                "state",
                "migrate",
                "--config",
                &sled_config,
                "--from",
                "sled",
                &state_arg,
                "--to",
                "postgres",
                &target,
            ],
        )
    };
    let ran = migrate(&sandbox);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.contains(":***@"),
        "the target is named, masked: {ran:?}"
    );
    let count = |table: &str| -> u64 {
        let line = ran
            .stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("no count for {table}: {ran:?}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(count("runs"), 1);
    assert_eq!(count("checkpoints"), 1);
    assert!(count("batches") >= 1);
    assert!(count("total") > 5);
    assert_eq!(
        sql(&url, "SELECT count(*) FROM kv WHERE tbl = 'runs'").trim(),
        "1"
    );

    // The engine on Postgres sees the sled run and replaces its batch on the next run.
    let pg_config = postgres_config(&sandbox);
    let listed = tributary(&sandbox, &url, &["runs", "--json", "--config", &pg_config]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let runs: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(runs.len(), 1, "{listed:?}");
    assert_eq!(runs[0]["id"], on_sled["id"]);
    let on_pg = run_json(&sandbox, &url, &pg_config, &path);
    check_published(&sandbox, "mig", &on_pg);
    assert_eq!(
        batch_dirs(&sandbox, "mig"),
        vec![format!("batch={}", batch_of(&on_pg))]
    );
    let datasets = tributary(
        &sandbox,
        &url,
        &["dataset", "ls", "--json", "--config", &pg_config],
    );
    assert_eq!(datasets.code, 0, "{datasets:?}");
    assert!(datasets.stdout.contains("\"mig\""), "{datasets:?}");

    // A copy never merges: the target is not empty any more.
    let again = migrate(&sandbox);
    assert_ne!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("not empty"), "{again:?}");
}

#[test]
fn state_config_errors_name_the_key() {
    let sandbox = Sandbox::new();
    let url = fresh_schema_url();
    let bad_backend = config(&sandbox, "bad", "backend = \"mysql\"");
    let ran = tributary(&sandbox, &url, &["runs", "--config", &bad_backend]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("backend") && ran.stderr.contains("mysql"),
        "{ran:?}"
    );

    let unset = config(
        &sandbox,
        "unset",
        "backend = \"postgres\"\nurl = \"${env:IT_NOT_SET_ANYWHERE}\"",
    );
    let ran = tributary(&sandbox, &url, &["runs", "--config", &unset]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .contains("state.url: environment variable IT_NOT_SET_ANYWHERE"),
        "{ran:?}"
    );

    // TLS asked for is never silently dropped.
    let tls_url = format!("{url}&sslmode=require");
    let ran = tributary(
        &sandbox,
        &tls_url,
        &["runs", "--config", &postgres_config(&sandbox)],
    );
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("sslmode=require is not supported"),
        "{ran:?}"
    );
}
