//! Datasets on object storage, against real emulators that `scripts/test` installs: moto's S3
//! server (PyPI `moto[server]`) and Azure's Azurite (npm `azurite`), each started here on a free
//! loopback port. The real binary runs flows from the mock API with `data_dir = s3://…` or
//! `az://…` and credentials from the environment or `[storage]`; what it wrote is read back
//! through the stores with pyarrow (every record once), and a Delta table on S3 with DuckDB's
//! delta extension and the `deltalake` package. A process killed between uploading a part and
//! publishing it (`TRIBUTARY_TEST_CRASH_AT=object-staged`) leaves no visible part, and the next
//! start publishes it exactly once and deletes the stray upload.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backfill::{bundle_json, start_mock};
use crate::run::{Ran, Sandbox, ran};

const RECORDS: usize = 2_500;
const S3_KEY: &str = "test-key-id";
const S3_SECRET: &str = "test-secret-key-that-must-not-leak";
/// Azurite's well-known development account and key (public, in Azure's documentation).
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn python() -> String {
    std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TRIBUTARY_TEST_PYTHON is not set: run the tests with scripts/test, which creates the Python venv (moto, pyarrow, duckdb) the object-store tests need"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An emulator process, killed when dropped.
struct Emulator {
    child: Child,
    port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// moto's S3 server with a bucket `lake`.
fn start_s3() -> Emulator {
    let port = free_port();
    let child = Command::new(python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moto's S3 server");
    let emulator = Emulator { child, port };
    wait_listening(port, "moto's S3 server");
    py(&format!(
        "{}\ns3.create_bucket(Bucket='lake')\nprint('{{}}')",
        boto(port)
    ));
    emulator
}

/// Azurite's blob service with a container `lake`.
fn start_azurite(dir: &std::path::Path) -> Emulator {
    let port = free_port();
    let modules = std::env::var("TRIBUTARY_TEST_NODE_MODULES").unwrap_or_else(|_| {
        panic!("TRIBUTARY_TEST_NODE_MODULES is not set: run the tests with scripts/test, which installs azurite")
    });
    let child = Command::new(PathBuf::from(modules).join(".bin/azurite-blob"))
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--silent",
        ])
        .args(["--skipApiVersionCheck", "--loose", "--location"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting azurite-blob");
    let emulator = Emulator { child, port };
    wait_listening(port, "azurite");
    py(&format!(
        "{}\nfs.create_dir('lake')\nprint('{{}}')",
        azure_fs(port)
    ));
    emulator
}

fn boto(port: u16) -> String {
    format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', aws_access_key_id='{S3_KEY}', aws_secret_access_key='{S3_SECRET}', region_name='us-east-1')"
    )
}

fn s3_fs(port: u16) -> String {
    format!(
        "import pyarrow.fs as pafs\nfs = pafs.S3FileSystem(endpoint_override='http://127.0.0.1:{port}', access_key='{S3_KEY}', secret_key='{S3_SECRET}', region='us-east-1', scheme='http')"
    )
}

fn azure_fs(port: u16) -> String {
    format!(
        "import pyarrow.fs as pafs\nfs = pafs.AzureFileSystem(account_name='{AZ_ACCOUNT}', account_key='{AZ_KEY}', blob_storage_authority='127.0.0.1:{port}', blob_storage_scheme='http', dfs_storage_authority='127.0.0.1:{port}', dfs_storage_scheme='http')"
    )
}

/// Runs a Python script and parses the JSON of its last line.
fn py(script: &str) -> Value {
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let ran = ran(output);
    assert_eq!(ran.code, 0, "{ran:?}\n--- script\n{script}");
    serde_json::from_str(ran.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{err}: {ran:?}"))
}

/// What the store holds under `root` (`bucket/prefix`; `fs` is a pyarrow filesystem): every
/// object key, and the ids of the records in the Parquet files of `datasets/{dataset}/` read with
/// pyarrow.
fn read_store_at(fs_setup: &str, root: &str, dataset: &str) -> Value {
    py(&format!(
        r#"{fs_setup}
import json, collections
import pyarrow.dataset as pads
keys = sorted(info.path for info in fs.get_file_info(pafs.FileSelector('{root}', recursive=True, allow_not_found=True)) if info.type == pafs.FileType.File)
files = [key for key in keys if key.startswith('{root}/datasets/{dataset}/batch=') and key.endswith('.parquet')]
ids = pads.dataset(files, filesystem=fs, format='parquet').to_table(columns=['id']).column('id').to_pylist() if files else []
counts = collections.Counter(ids)
print(json.dumps({{"keys": keys, "rows": len(ids), "distinct": len(counts), "max_count": max(counts.values()) if counts else 0}}))
"#
    ))
}

/// [`read_store_at`] the root `lake/raw` of most tests.
fn read_store(fs_setup: &str, dataset: &str) -> Value {
    read_store_at(fs_setup, "lake/raw", dataset)
}

fn s3_env(command: &mut Command, port: u16) {
    command
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .env("AWS_REGION", "us-east-1");
}

/// Runs `tributary run BUNDLE` with `data_dir` set to `url` (a config with `config_lines` when
/// given).
fn run_to(sandbox: &Sandbox, bundle: &str, url: &str, setup: impl FnOnce(&mut Command)) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .args(["run", bundle, "--data-dir", url, "--state-dir"])
        .arg(sandbox.dir.path().join("state"))
        .current_dir(sandbox.dir.path())
        .env_remove("TRIBUTARY_CONFIG");
    setup(&mut command);
    ran(command.output().unwrap())
}

fn members_bundle(sandbox: &Sandbox, mock_url: &str, dataset: &str, delta: bool) -> String {
    let text = bundle_json(dataset, mock_url, dataset, 500, None);
    let mut bundle: Value = serde_json::from_str(&text).unwrap();
    if delta {
        bundle["targetConnection"]["data"] = json!({"format": "delta"});
    }
    sandbox.bundle(dataset, &bundle)
}

fn spooled_batches(sandbox: &Sandbox) -> Vec<PathBuf> {
    crate::backfill::files_under(&sandbox.dir.path().join("state/spool/datasets"))
        .into_iter()
        .filter(|path| path.to_string_lossy().contains("batch="))
        .collect()
}

#[test]
fn a_run_writes_its_batch_to_s3_and_pyarrow_reads_every_record_once() {
    let s3 = start_s3();
    let mock = start_mock(&["--records", &RECORDS.to_string()]);
    let sandbox = Sandbox::new();
    let bundle = members_bundle(&sandbox, &mock.url, "members", false);
    for round in 0..2 {
        // The second run replaces the first one's batch: still every record once.
        let ran = run_to(&sandbox, &bundle, "s3://lake/raw", |c| s3_env(c, s3.port));
        assert_eq!(ran.code, 0, "round {round}: {ran:?}");
        assert!(!ran.stdout.contains(S3_SECRET) && !ran.stderr.contains(S3_SECRET));
        assert!(
            ran.stdout.contains("s3://lake/raw/datasets/members/batch="),
            "the run names its batch in the store: {}",
            ran.stdout
        );
        let store = read_store(&s3_fs(s3.port), "members");
        assert_eq!(store["rows"], json!(RECORDS), "round {round}: {store}");
        assert_eq!(store["distinct"], json!(RECORDS), "round {round}: {store}");
        let keys: Vec<&str> = store["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key.as_str().unwrap())
            .collect();
        assert!(
            keys.iter()
                .all(|key| key.starts_with("lake/raw/datasets/members/batch=")),
            "only the published batch is in the store, no staged upload: {keys:?}"
        );
        assert!(
            spooled_batches(&sandbox).is_empty(),
            "the spool keeps no published batch"
        );
    }
}

/// A part above the multipart threshold (8 MiB) goes up as a multipart upload: the staged
/// object, caught by a kill right after its upload, has a multipart ETag (`"…-N"`); the restart
/// publishes it and it reads back whole.
#[test]
fn a_large_part_is_uploaded_in_parts_and_reads_back_whole() {
    const LARGE: usize = 150_000;
    let s3 = start_s3();
    let mock = start_mock(&["--records", &LARGE.to_string()]);
    let sandbox = Sandbox::new();
    let text = bundle_json("large", &mock.url, "large", 1_000, None);
    let bundle = sandbox.bundle("large", &serde_json::from_str(&text).unwrap());
    let killed = run_to(&sandbox, &bundle, "s3://lake/raw", |c| {
        s3_env(c, s3.port);
        c.env("TRIBUTARY_TEST_CRASH_AT", "object-staged");
    });
    assert_ne!(killed.code, 0, "{killed:?}");
    let staged = py(&format!(
        r#"{}
import json
objects = s3.list_objects_v2(Bucket='lake', Prefix='raw/_staging/')['Contents']
print(json.dumps([[o['Size'], o['ETag']] for o in objects]))
"#,
        boto(s3.port)
    ));
    let objects = staged.as_array().unwrap();
    assert!(
        objects
            .iter()
            .any(|object| object[0].as_u64().unwrap() > 8 * 1024 * 1024
                && object[1].as_str().unwrap().trim_matches('"').contains('-')),
        "a staged part above 8 MiB, uploaded in parts: {staged}"
    );
    let ran = run_to(&sandbox, &bundle, "s3://lake/raw", |c| s3_env(c, s3.port));
    assert_eq!(ran.code, 0, "{ran:?}");
    let store = read_store(&s3_fs(s3.port), "large");
    assert_eq!(store["rows"], json!(LARGE), "{store}");
    assert_eq!(store["distinct"], json!(LARGE), "{store}");
}

#[test]
fn a_delta_table_on_s3_is_committed_through_the_store_and_read_by_duckdb_and_deltalake() {
    let s3 = start_s3();
    let mock = start_mock(&["--records", &RECORDS.to_string()]);
    let sandbox = Sandbox::new();
    let bundle = members_bundle(&sandbox, &mock.url, "members-delta", true);
    for round in 0..2 {
        let ran = run_to(&sandbox, &bundle, "s3://lake/raw", |c| s3_env(c, s3.port));
        assert_eq!(ran.code, 0, "round {round}: {ran:?}");
    }
    let port = s3.port;
    let read = py(&format!(
        r#"import json, os
import deltalake, duckdb, duckdb_ext
table = 's3://lake/raw/datasets/members-delta'
options = {{'AWS_ENDPOINT_URL': 'http://127.0.0.1:{port}', 'AWS_ALLOW_HTTP': 'true', 'AWS_ACCESS_KEY_ID': '{S3_KEY}', 'AWS_SECRET_ACCESS_KEY': '{S3_SECRET}', 'AWS_REGION': 'us-east-1'}}
dt = deltalake.DeltaTable(table, storage_options=options)
ids = dt.to_pyarrow_table(columns=['id']).column('id').to_pylist()
con = duckdb.connect()
con.execute("SET extension_directory = '" + os.path.join(list(duckdb_ext.__path__)[0], 'extensions') + "'")
con.execute("LOAD httpfs")
con.execute("LOAD delta")
con.execute("CREATE SECRET (TYPE s3, KEY_ID '{S3_KEY}', SECRET '{S3_SECRET}', REGION 'us-east-1', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false)")
duck = con.sql(f"SELECT count(*), count(DISTINCT id) FROM delta_scan('{{table}}')").fetchone()
print(json.dumps({{"version": dt.version(), "rows": len(ids), "distinct": len(set(ids)), "duckdb": list(duck)}}))
"#
    ));
    assert_eq!(
        read["version"],
        json!(1),
        "two commits: create, then replace: {read}"
    );
    assert_eq!(read["rows"], json!(RECORDS), "{read}");
    assert_eq!(read["distinct"], json!(RECORDS), "{read}");
    assert_eq!(read["duckdb"], json!([RECORDS, RECORDS]), "{read}");
}

#[test]
fn a_kill_between_upload_and_publish_shows_no_part_and_the_restart_publishes_it_once() {
    let s3 = start_s3();
    let mock = start_mock(&["--records", &RECORDS.to_string()]);
    let sandbox = Sandbox::new();
    let bundle = members_bundle(&sandbox, &mock.url, "members", false);
    let killed = run_to(&sandbox, &bundle, "s3://lake/raw", |c| {
        s3_env(c, s3.port);
        c.env("TRIBUTARY_TEST_CRASH_AT", "object-staged");
    });
    assert_ne!(killed.code, 0, "the crash point aborts the run: {killed:?}");
    let store = read_store(&s3_fs(s3.port), "members");
    let keys = store["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .all(|key| !key.as_str().unwrap().starts_with("lake/raw/datasets/")),
        "nothing is visible in the dataset after the kill: {store}"
    );
    assert!(
        keys.iter().any(|key| key
            .as_str()
            .unwrap()
            .starts_with("lake/raw/_staging/local/")),
        "the upload was staged: {store}"
    );

    // The next start finishes the interrupted publish and cleans the staging folder; its run then
    // replaces that batch with a new one.
    let ran = run_to(&sandbox, &bundle, "s3://lake/raw", |c| s3_env(c, s3.port));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("recovered state"), "{}", ran.stderr);
    let store = read_store(&s3_fs(s3.port), "members");
    assert_eq!(store["rows"], json!(RECORDS), "{store}");
    assert_eq!(store["max_count"], json!(1), "{store}");
    let keys = store["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .all(|key| !key.as_str().unwrap().contains("/_staging/")),
        "the stray upload was deleted: {store}"
    );
}

#[test]
fn a_run_writes_to_azurite_with_credentials_from_the_config() {
    let blobs = tempfile::tempdir().unwrap();
    let azurite = start_azurite(blobs.path());
    let mock = start_mock(&["--records", &RECORDS.to_string()]);
    let sandbox = Sandbox::new();
    let bundle = members_bundle(&sandbox, &mock.url, "members", false);
    let config = sandbox.dir.path().join("azure.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nazure_storage_account_name = \"{AZ_ACCOUNT}\"\nazure_storage_account_key = \"${{env:TEST_AZ_KEY}}\"\n\
             azure_storage_use_emulator = \"true\"\n"
        ),
    )
    .unwrap();
    let ran = run_to(&sandbox, &bundle, "az://lake/raw", |c| {
        c.arg("--config")
            .arg(&config)
            .env("TEST_AZ_KEY", AZ_KEY)
            .env(
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{}", azurite.port),
            );
    });
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(!ran.stdout.contains(AZ_KEY) && !ran.stderr.contains(AZ_KEY));
    let store = read_store(&azure_fs(azurite.port), "members");
    assert_eq!(store["rows"], json!(RECORDS), "{store}");
    assert_eq!(store["distinct"], json!(RECORDS), "{store}");

    // The same options with a local data_dir would be parsed and ignored: refused instead.
    let local = sandbox.dir.path().join("local-data");
    let ran = run_to(&sandbox, &bundle, local.to_str().unwrap(), |c| {
        c.arg("--config").arg(&config).env("TEST_AZ_KEY", AZ_KEY);
    });
    assert_ne!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stderr
            .contains("[storage] options are for an object-store data_dir"),
        "{}",
        ran.stderr
    );
    assert!(!local.exists(), "nothing was written to the local folder");

    // A misspelt option is refused by name, before anything runs.
    std::fs::write(&config, "[storage]\nazure_storage_acount_name = \"x\"\n").unwrap();
    let ran = run_to(&sandbox, &bundle, "az://lake/raw", |c| {
        c.arg("--config").arg(&config);
    });
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr
            .contains("unknown Azure option \"azure_storage_acount_name\""),
        "{}",
        ran.stderr
    );
}

/// A store that refuses the writer (its bucket does not exist yet): the command fails at start,
/// before fetching anything, with a message naming the store, the folder and the store's answer
/// and no secret; once the bucket exists the next run publishes every record exactly once.
#[test]
fn a_missing_bucket_fails_at_start_clearly_and_the_next_run_publishes_once() {
    let s3 = start_s3();
    let mock = start_mock(&["--records", &RECORDS.to_string()]);
    let sandbox = Sandbox::new();
    let bundle = members_bundle(&sandbox, &mock.url, "members", false);
    let failed = run_to(&sandbox, &bundle, "s3://later/raw", |c| s3_env(c, s3.port));
    assert_ne!(failed.code, 0, "{failed:?}");
    let output = format!("{}{}", failed.stdout, failed.stderr);
    assert!(
        output.contains("cleaning the staging folder of s3://later/raw")
            && output.contains("NoSuchBucket"),
        "the error names the store and its answer: {output}"
    );
    let requests: Value = serde_json::from_str(&crate::cluster::get(
        mock.url.strip_prefix("http://").unwrap(),
        "/stats",
    ))
    .unwrap();
    assert_eq!(
        requests["requests"],
        json!(0),
        "nothing was fetched: {requests}"
    );
    assert!(!output.contains(S3_SECRET), "{output}");
    py(&format!(
        "{}\ns3.create_bucket(Bucket='later')\nprint('{{}}')",
        boto(s3.port)
    ));
    let ran = run_to(&sandbox, &bundle, "s3://later/raw", |c| s3_env(c, s3.port));
    assert_eq!(ran.code, 0, "{ran:?}");
    let store = read_store_at(&s3_fs(s3.port), "later/raw", "members");
    assert_eq!(store["rows"], json!(RECORDS), "{store}");
    assert_eq!(store["distinct"], json!(RECORDS), "{store}");
    assert!(
        store["keys"].as_array().unwrap().iter().all(|key| key
            .as_str()
            .unwrap()
            .starts_with("later/raw/datasets/members/batch=")),
        "{store}"
    );
}
