//! `tributary run` end to end: the real binary against the mock API on 127.0.0.1:0, for every
//! pagination style and auth type; the published Parquet read back (exact row count, every id
//! once, nested fields); schema widening across pages; reruns replacing the batch; a run killed
//! mid-way; bad input (exit 2) and a broken page (exit 1); `explore` and `demo`.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use tributary_mockapi::{Faults, MockAuth, MockConfig, MockServer, OAuth2, Secret, Target};

pub(crate) const SEED: u64 = 23;
/// The credentials the tests' bundles carry; none may ever be printed.
const SECRETS: [&str; 3] = ["it-password", "key-one-value", "it-access-token"];

/// A mock API running on its own runtime for the length of a test.
pub(crate) struct Mock {
    pub server: MockServer,
    _runtime: tokio::runtime::Runtime,
}

/// A data dir and a state dir in a tempdir, and the bundles written there.
pub(crate) struct Sandbox {
    pub dir: tempfile::TempDir,
}

/// What one invocation of the binary did.
pub(crate) struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn mock(config: MockConfig) -> Mock {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(tributary_mockapi::start(
            MockConfig {
                seed: SEED,
                ..config
            },
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    Mock {
        server,
        _runtime: runtime,
    }
}

impl Mock {
    /// Shuts the server down: the API "goes away" (connections are refused from here on).
    pub fn stop(self) {
        let Mock { server, _runtime } = self;
        _runtime.block_on(server.shutdown()).unwrap();
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .current_dir(self.dir.path())
            .env_remove("TRIBUTARY_CONFIG");
        command
    }

    pub fn tributary(&self, args: &[&str]) -> Ran {
        ran(self.command(args).output().unwrap())
    }

    /// Writes `bundle` as `{name}.json` and returns its path as a string.
    pub fn bundle(&self, name: &str, bundle: &Value) -> String {
        let path = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
        path.display().to_string()
    }

    /// Every file under `datasets/{dataset}`, relative to that folder, sorted.
    pub fn dataset_files(&self, dataset: &str) -> Vec<String> {
        let root = self.data().join("datasets").join(dataset);
        let mut files = files_under(&root)
            .into_iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect::<Vec<_>>();
        files.sort();
        files
    }
}

pub(crate) fn ran(output: Output) -> Ran {
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A bundle with an inline connection spec of one auth spec and these source attributes.
pub(crate) fn bundle(
    name: &str,
    auth_spec: Value,
    attributes: Value,
    auth_params: Value,
    dataset: &str,
) -> Value {
    json!({
        "name": name,
        "connectionSpec": {"name": format!("{name} source"),
            "authSpec": [auth_spec],
            "sourceSpec": {"attributes": attributes,
                           "spec": {"type": "object", "properties": {"listId": {"type": "string"}}}}},
        "baseConnection": {"auth": {"specName": auth_spec_name(&auth_params), "params": auth_params}},
        "sourceConnection": {"params": {"listId": "it"}},
        "targetConnection": {"params": {"dataSetId": dataset}}
    })
}

fn auth_spec_name(params: &Value) -> &'static str {
    if params.get("password").is_some() {
        "Basic Authentication"
    } else if params.get("authKey1").is_some() {
        "API Key Authentication"
    } else {
        "OAuth2 Refresh Code"
    }
}

pub(crate) fn basic_auth_spec() -> Value {
    json!({"name": "Basic Authentication", "type": "BasicAuthentication",
           "spec": {"type": "object", "properties": {
               "host": {"type": "string"}, "username": {"type": "string"},
               "password": {"type": "string", "format": "password"}}}})
}

fn key_auth_spec() -> Value {
    json!({"name": "API Key Authentication", "type": "KeyBased",
           "spec": {"type": "object", "properties": {
               "host": {"type": "string"},
               "authKey1": {"type": "string", "format": "password", "restAttributes": {"headerParamName": "X-Auth-Key1"}}}}})
}

fn oauth_spec() -> Value {
    json!({"name": "OAuth2 Refresh Code", "type": "OAuth2RefreshCode",
           "spec": {"type": "object", "properties": {
               "host": {"type": "string"}, "accessToken": {"type": "string", "format": "password"}}}})
}

pub(crate) fn offset_attributes(page_size: u32) -> Value {
    json!({
        "urlParams": {"path": "/3.0/lists/${listId}/members", "method": "GET"},
        "contentPath": {"path": "$.members", "skipAttributes": ["_links"]},
        "paginationParams": {"type": "OFFSET", "limitName": "count", "limitValue": page_size.to_string(), "offSetName": "offset"}
    })
}

pub(crate) fn basic_mock(records: u64) -> MockConfig {
    MockConfig {
        records,
        auth: MockAuth::Basic {
            username: "ann".into(),
            password: Secret::new("it-password"),
        },
        ..Default::default()
    }
}

pub(crate) fn basic_params(mock: &Mock) -> Value {
    json!({"host": mock.server.base_url(), "username": "ann", "password": "it-password"})
}

/// The ids of records `0..n` of the mock's dataset.
pub(crate) fn expected_ids(n: u64) -> HashSet<String> {
    (0..n)
        .map(|i| {
            tributary_mockapi::record(SEED, i)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Every batch of every `part-*.parquet` under `dir`.
pub(crate) fn read_parquet(dir: &Path) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let mut files = files_under(dir);
    files.sort();
    for file in files {
        if file.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            batches.push(batch.unwrap());
        }
    }
    batches
}

/// The values of a string column across batches (nulls as None).
pub(crate) fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column} in {:?}", batch.schema()));
        if let Some(array) = array.as_string_opt::<i32>() {
            for idx in 0..array.len() {
                out.push(array.is_valid(idx).then(|| array.value(idx).to_owned()));
            }
        } else {
            let array = array.as_string_view();
            for idx in 0..array.len() {
                out.push(array.is_valid(idx).then(|| array.value(idx).to_owned()));
            }
        }
    }
    out
}

/// A column's Arrow type as Debug text (`Struct(..)`, `List(..)`, `Timestamp(Microsecond, ..)`),
/// so tests need not name arrow-schema.
pub(crate) fn type_of(batch: &RecordBatch, column: &str) -> String {
    let schema = batch.schema();
    let field = schema
        .field_with_name(column)
        .unwrap_or_else(|_| panic!("no column {column} in {schema:?}"));
    format!("{:?}", field.data_type())
}

/// The one batch folder of `dataset` after a successful run, checked against the run object.
pub(crate) fn check_published(sandbox: &Sandbox, dataset: &str, run: &Value) -> PathBuf {
    assert_eq!(run["state"], "success", "{run:#}");
    let summary = &run["metrics"]["recordSummary"];
    let input = summary["inputRecordCount"].as_u64().unwrap();
    let output = summary["outputRecordCount"].as_u64().unwrap();
    let failed = summary["failedRecordCount"].as_u64().unwrap();
    assert_eq!(input, output + failed, "{summary}");
    let target = &run["activities"][1]["targetInfo"][0];
    assert_eq!(target["dataSetId"], dataset);
    let batch_id = target["reference"]["ids"][0].as_str().unwrap().to_owned();
    let datasets = sandbox.data().join("datasets").join(dataset);
    let batch_dir = datasets.join(format!("batch={batch_id}"));
    assert!(batch_dir.is_dir(), "{} missing", batch_dir.display());
    for file in sandbox.dataset_files(dataset) {
        assert!(
            file.starts_with("batch=") && file.contains("/part-") && file.ends_with(".parquet")
                || file.starts_with("_errors/"),
            "unexpected file {file} in datasets/{dataset}"
        );
    }
    batch_dir
}

/// Runs `bundle` with `--json` against a mock of `n` records and checks the dataset: exit 0,
/// consistent counts, exactly one batch, every id once, the nested fields present.
pub(crate) fn check_run(sandbox: &Sandbox, bundle_path: &str, dataset: &str, n: u64) -> Value {
    let ran = sandbox.tributary(&["run", bundle_path, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    for secret in SECRETS {
        let shown = ran.stdout.contains(secret) || ran.stderr.contains(secret);
        assert!(!shown, "a secret was printed: {ran:?}");
    }
    // Nor is one kept in clear in state (rotated tokens and positions are sealed) or the data.
    for root in [sandbox.dir.path().join("state"), sandbox.data()] {
        for file in files_under(&root) {
            let bytes = std::fs::read(&file).unwrap();
            for secret in SECRETS {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds a secret in clear",
                    file.display()
                );
            }
        }
    }
    let run: Value =
        serde_json::from_str(&ran.stdout).unwrap_or_else(|err| panic!("{err}: {ran:?}"));
    assert_eq!(
        run["metrics"]["recordSummary"]["inputRecordCount"], n,
        "{ran:?}"
    );
    assert_eq!(run["metrics"]["recordSummary"]["outputRecordCount"], n);
    check_published(sandbox, dataset, &run);
    let batches: Vec<RecordBatch> = read_parquet(&sandbox.data().join("datasets").join(dataset));
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, n, "exact row count");
    let ids: Vec<String> = strings(&batches, "id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "every id once");
    assert_eq!(unique, expected_ids(n), "the ids of the mock's records");
    let merge_fields = type_of(&batches[0], "merge_fields");
    assert!(
        merge_fields.starts_with("Struct(") && merge_fields.contains("\"FNAME\""),
        "merge_fields is a struct: {merge_fields}"
    );
    let tags = type_of(&batches[0], "tags");
    assert!(tags.contains("List("), "tags is a list: {tags}");
    run
}

#[test]
fn offset_pagination_with_basic_auth() {
    let mock = mock(basic_mock(12_000));
    let sandbox = Sandbox::new();
    let path = sandbox.bundle(
        "offset",
        &bundle(
            "it-offset",
            basic_auth_spec(),
            offset_attributes(1000),
            basic_params(&mock),
            "offset",
        ),
    );
    check_run(&sandbox, &path, "offset", 12_000);
    assert_eq!(mock.server.stats().unauthorized, 0);
}

#[test]
fn page_pagination_with_api_keys() {
    let mock = mock(MockConfig {
        records: 10_500,
        auth: MockAuth::ApiKey {
            keys: vec![("X-Auth-Key1".into(), Secret::new("key-one-value"))],
        },
        ..Default::default()
    });
    let sandbox = Sandbox::new();
    let attributes = json!({
        "urlParams": {"path": "/page/members", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 1000, "pageParamName": "page"}
    });
    let params = json!({"host": mock.server.base_url(), "authKey1": "key-one-value"});
    let path = sandbox.bundle(
        "page",
        &bundle("it-page", key_auth_spec(), attributes, params, "page"),
    );
    check_run(&sandbox, &path, "page", 10_500);
    assert_eq!(mock.server.stats().unauthorized, 0);
}

#[test]
fn continuation_token_pagination_with_oauth2_bearer() {
    let mock = mock(MockConfig {
        records: 10_200,
        auth: MockAuth::OAuth2(OAuth2 {
            access_token: Secret::new("it-access-token"),
            access_ttl: Duration::from_secs(3600),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sandbox = Sandbox::new();
    let attributes = json!({
        "urlParams": {"path": "/cursor/members", "method": "GET"},
        "contentPath": "$.data",
        "paginationParams": {"type": "CONTINUATION_TOKEN", "limitName": "limit", "limitValue": 1000,
                             "continuationTokenPath": "$.meta.after_cursor", "parameterType": "QUERYPARAM", "parameterName": "cursor"}
    });
    let params = json!({"host": mock.server.base_url(), "accessToken": "it-access-token"});
    let path = sandbox.bundle(
        "cursor",
        &bundle("it-cursor", oauth_spec(), attributes, params, "cursor"),
    );
    check_run(&sandbox, &path, "cursor", 10_200);
    assert_eq!(mock.server.stats().unauthorized, 0);
}

#[test]
fn pointer_pagination() {
    let mock = mock(MockConfig {
        records: 10_000,
        ..Default::default()
    });
    let sandbox = Sandbox::new();
    let attributes = json!({
        "urlParams": {"path": "/pointer/members", "method": "GET"},
        "contentPath": "$.results",
        "paginationParams": {"type": "POINTER", "limitName": "limit", "limitValue": 2500, "pointerPath": "$.paging.next"}
    });
    let params = json!({"host": mock.server.base_url(), "accessToken": "unused"});
    let path = sandbox.bundle(
        "pointer",
        &bundle("it-pointer", oauth_spec(), attributes, params, "pointer"),
    );
    check_run(&sandbox, &path, "pointer", 10_000);
}

/// A flow on Adobe's generic REST template (shape b: the spec has no request, the source
/// connection's params hold urlParams, contentPath, paginationParams and scheduleParams): the
/// example flow of configs/ pointed at the mock, its first (backfill) window sends the schedule's
/// end param, and every record is published once.
#[test]
fn a_flow_on_the_generic_rest_template_publishes_every_record() {
    let mock = mock(basic_mock(2_345));
    let sandbox = Sandbox::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut flow: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("configs/flows/generic-rest-members.json")).unwrap(),
    )
    .unwrap();
    let template = root.join("configs/specs/generic-rest.json");
    flow["connectionSpec"] =
        json!({"path": template.canonicalize().unwrap().display().to_string()});
    flow["baseConnection"]["auth"]["params"] = basic_params(&mock);
    let path = sandbox.bundle("generic-rest", &flow);
    let run = check_run(&sandbox, &path, "generic-rest-members", 2_345);
    let stats = mock.server.stats();
    assert_eq!(stats.unauthorized, 0);
    // The request came from the source params: their path, page size and schedule end param,
    // and no start param in a backfill window.
    let queries: Vec<&str> = stats
        .log
        .iter()
        .filter(|request| request.path == "/3.0/lists/10c097ca71/members")
        .map(|request| request.query.as_str())
        .collect();
    // Three pages hold the records; pages requested concurrently past the short third one are
    // what adaptive concurrency costs at the end: the run counts every one of them, and there are
    // fewer than the requests it had in flight.
    let concurrency = &run["metrics"]["customSummary"]["concurrency"];
    let past_end = concurrency["requestsPastEnd"].as_u64().unwrap();
    let max_in_flight = concurrency["maxInFlight"].as_u64().unwrap();
    assert_eq!(queries.len() as u64, 3 + past_end, "{:?}", stats.log);
    assert!(past_end < max_in_flight.max(1), "{concurrency}");
    for query in queries {
        assert!(
            query.contains("count=1000")
                && query.contains("before_last_changed=")
                && !query.contains("since_last_changed="),
            "{query}"
        );
    }
}

#[test]
fn rerunning_a_window_replaces_its_batch() {
    let mock = mock(basic_mock(10_000));
    let sandbox = Sandbox::new();
    let path = sandbox.bundle(
        "rerun",
        &bundle(
            "it-rerun",
            basic_auth_spec(),
            offset_attributes(1000),
            basic_params(&mock),
            "rerun",
        ),
    );
    let first = check_run(&sandbox, &path, "rerun", 10_000);
    let second = check_run(&sandbox, &path, "rerun", 10_000);
    let batch = |run: &Value| run["activities"][1]["targetInfo"][0]["reference"]["ids"][0].clone();
    assert_ne!(batch(&first), batch(&second), "a rerun writes a new batch");
    let batch_dirs: HashSet<String> = sandbox
        .dataset_files("rerun")
        .iter()
        .map(|f| f.split('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        batch_dirs.len(),
        1,
        "only the new batch is left: {batch_dirs:?}"
    );
}

#[test]
fn a_killed_run_leaves_no_partial_file_and_the_next_run_completes() {
    let mock = mock(MockConfig {
        faults: Faults {
            latency: Duration::from_millis(150),
            ..Default::default()
        },
        ..basic_mock(20_000)
    });
    let sandbox = Sandbox::new();
    let path = sandbox.bundle(
        "killed",
        &bundle(
            "it-killed",
            basic_auth_spec(),
            offset_attributes(500),
            basic_params(&mock),
            "killed",
        ),
    );
    let mut child = sandbox
        .command(&["run", &path, "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while mock.server.stats().data_requests < 8 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run never got going"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        sandbox.dataset_files("killed").is_empty(),
        "nothing is visible after the kill: {:?}",
        sandbox.dataset_files("killed")
    );

    // The killed run buffered its rows in memory (the first part was not flushed yet), so also
    // leave what a process killed during an encode would: a half-written staged part of a batch
    // that no checkpoint names. The next run must remove it.
    let leftover = sandbox
        .data()
        .join("_staging/killed/batch=20260101T000000-0123456789ab/part-00000.parquet.inprogress");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, b"PAR1 half a file").unwrap();

    mock.server.set_faults(Faults::default()).unwrap();
    check_run(&sandbox, &path, "killed", 20_000);
    let staged: Vec<PathBuf> = files_under(&sandbox.data().join("_staging"));
    assert!(
        staged.is_empty(),
        "staging is clean after the run: {staged:?}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let mock = mock(basic_mock(100));
    let sandbox = Sandbox::new();
    let check = |name: &str, bundle_text: &str, expected: &str| {
        let path = sandbox.dir.path().join(format!("{name}.json"));
        std::fs::write(&path, bundle_text).unwrap();
        let ran = sandbox.tributary(&["run", &path.display().to_string()]);
        assert_eq!(ran.code, 2, "{name}: {ran:?}");
        assert!(
            ran.stderr.contains(expected),
            "{name}: expected {expected:?} in {ran:?}"
        );
        assert!(sandbox.dataset_files("bad").is_empty());
    };
    let mut params = basic_params(&mock);
    params["password"] = json!("${env:TRIBUTARY_IT_NEVER_SET}");
    let missing_env = bundle(
        "it-bad",
        basic_auth_spec(),
        offset_attributes(100),
        params,
        "bad",
    );
    check(
        "missing-env",
        &missing_env.to_string(),
        "TRIBUTARY_IT_NEVER_SET",
    );
    let valid = bundle(
        "it-bad",
        basic_auth_spec(),
        offset_attributes(100),
        basic_params(&mock),
        "bad",
    );
    let text = valid.to_string();
    check("truncated", &text[..text.len() / 2], "invalid JSON");
    let mut no_dataset = valid.clone();
    no_dataset["targetConnection"]["params"] = json!({});
    check(
        "no-dataset",
        &no_dataset.to_string(),
        "/targetConnection/params/dataSetId",
    );
    let mut bad_pagination = valid.clone();
    bad_pagination["connectionSpec"]["sourceSpec"]["attributes"]["paginationParams"]["type"] =
        json!("SIDEWAYS");
    check("bad-pagination", &bad_pagination.to_string(), "SIDEWAYS");
    let valid_path = sandbox.bundle("valid", &valid);
    for (window, expected) in [
        (
            ["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"],
            "is not before --window-end",
        ),
        (["yesterday", "2024-01-01T00:00:00Z"], "yesterday"),
    ] {
        let ran = sandbox.tributary(&[
            "run",
            &valid_path,
            "--window-start",
            window[0],
            "--window-end",
            window[1],
        ]);
        assert_eq!(ran.code, 2, "{ran:?}");
        assert!(
            ran.stderr.contains(expected),
            "expected {expected:?} in {ran:?}"
        );
    }
    let ran = sandbox.tributary(&["run", "does-not-exist.json"]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("does-not-exist.json"), "{ran:?}");
}

#[test]
fn a_page_that_is_not_json_fails_the_run_and_publishes_nothing() {
    let mock = mock(MockConfig {
        faults: Faults {
            malformed: Some(Target::Offset(3000)),
            ..Default::default()
        },
        ..basic_mock(10_000)
    });
    let sandbox = Sandbox::new();
    let path = sandbox.bundle(
        "broken-page",
        &bundle(
            "it-broken-page",
            basic_auth_spec(),
            offset_attributes(1000),
            basic_params(&mock),
            "broken",
        ),
    );
    let ran = sandbox.tributary(&["run", &path]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        all.contains("page 3"),
        "the message names the page: {ran:?}"
    );
    assert!(
        all.contains("offset=3000"),
        "the message names the page's URL: {ran:?}"
    );
    assert!(
        all.to_lowercase().contains("json"),
        "the message names the problem: {ran:?}"
    );
    assert!(
        sandbox.dataset_files("broken").is_empty(),
        "nothing published: {:?}",
        sandbox.dataset_files("broken")
    );
}

#[test]
fn explore_prints_the_first_page_and_a_schema_table() {
    let mock = mock(basic_mock(3_000));
    let sandbox = Sandbox::new();
    let path = sandbox.bundle(
        "explore",
        &bundle(
            "it-explore",
            basic_auth_spec(),
            offset_attributes(50),
            basic_params(&mock),
            "explore",
        ),
    );
    let ran = sandbox.tributary(&["explore", &path]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let first_id = tributary_mockapi::record(SEED, 0)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fifty_first = tributary_mockapi::record(SEED, 50)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ran.stdout.contains(&first_id), "{ran:?}");
    assert!(
        !ran.stdout.contains(&fifty_first),
        "only the first page: {ran:?}"
    );
    assert!(
        ran.stdout.contains("50 records on the first page"),
        "{ran:?}"
    );
    let table: Vec<&str> = ran
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("column"))
        .collect();
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("id ") && l.contains("Utf8")),
        "{table:?}"
    );
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("member_rating ") && l.contains("Int64")),
        "{table:?}"
    );
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("merge_fields ") && l.contains("Struct")),
        "{table:?}"
    );
    assert!(!ran.stdout.contains("it-password"), "no secret printed");

    let ran = sandbox.tributary(&["explore", &path, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let response: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(response["format"], "json");
    let page = &response["data"][0];
    assert_eq!(
        page["members"].as_array().unwrap().len(),
        50,
        "the page as returned"
    );
    assert_eq!(page["members"][0]["id"], first_id.as_str());
    let columns = response["schema"]["columns"].as_array().unwrap();
    assert!(
        columns.contains(&json!({"name": "member_rating", "type": "Int64"})),
        "{columns:?}"
    );
}

#[test]
fn demo_runs_from_a_fresh_directory_and_prints_a_parquet_path() {
    let sandbox = Sandbox::new();
    let ran = sandbox.tributary(&["demo"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let batch_dir = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("parquet: "))
        .unwrap_or_else(|| panic!("no parquet path: {ran:?}"));
    let batch_dir = PathBuf::from(batch_dir);
    assert!(batch_dir.is_dir(), "{ran:?}");
    let batches = read_parquet(&batch_dir);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 0, "{ran:?}");
    let ids: HashSet<String> = strings(&batches, "id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(ids.len(), rows, "every id once");
    assert!(
        ran.stdout
            .contains(&format!("{rows} records read, {rows} written")),
        "the summary counts the rows read back: {ran:?}"
    );
    assert!(ran.stdout.contains("read it: duckdb"), "{ran:?}");
}

/// Serves `{dir}/{prefix}-page-{N}.json` for `GET /widen?page=N` (an empty page past the last
/// file) on 127.0.0.1:0, until dropped.
fn serve_fixture_pages(fixtures: PathBuf, prefix: &'static str) -> crate::hostile::Serving {
    crate::hostile::serve_in_background(move |request, _| {
        let page = request
            .query_param("page")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        let body = std::fs::read_to_string(fixtures.join(format!("{prefix}-page-{page}.json")))
            .unwrap_or_else(|_| "{\"items\": []}".to_owned());
        crate::hostile::Reply::status(200).with_body("application/json", &body)
    })
}

/// The values of a numeric column as f64, whether the file holds it as Int64 or Float64.
fn numbers(batch: &RecordBatch, column: &str) -> Vec<Option<f64>> {
    use arrow_array::types::{Float64Type, Int64Type};
    let array = batch.column_by_name(column).unwrap();
    if let Some(floats) = array.as_primitive_opt::<Float64Type>() {
        return floats.iter().collect();
    }
    let ints = array.as_primitive::<Int64Type>();
    ints.iter().map(|v| v.map(|v| v as f64)).collect()
}

#[test]
fn later_pages_widen_the_schema_without_losing_values() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/run");
    let source = serve_fixture_pages(fixtures, "widen");
    let base_url = source.server.base_url();
    let sandbox = Sandbox::new();
    let attributes = json!({
        "urlParams": {"path": "/widen", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 2, "pageParamName": "page"}
    });
    let params = json!({"host": base_url, "username": "u", "password": "p"});
    let path = sandbox.bundle(
        "widen",
        &bundle("it-widen", basic_auth_spec(), attributes, params, "widen"),
    );
    let ran = sandbox.tributary(&["run", &path, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let run: Value = serde_json::from_str(&ran.stdout).unwrap();
    check_published(&sandbox, "widen", &run);
    assert_eq!(run["metrics"]["recordSummary"]["inputRecordCount"], 5);

    let mut seen = Vec::new();
    for batch in read_parquet(&sandbox.data().join("datasets/widen")) {
        let ids = strings(std::slice::from_ref(&batch), "id");
        let scores = numbers(&batch, "score");
        let has_nickname = batch.column_by_name("nickname").is_some();
        let nicknames = if has_nickname {
            strings(std::slice::from_ref(&batch), "nickname")
        } else {
            vec![None; batch.num_rows()]
        };
        for row in 0..batch.num_rows() {
            let id = ids[row].clone().unwrap();
            if id == "w-2" {
                assert!(
                    type_of(&batch, "score").contains("Float64"),
                    "int then float widens to float"
                );
                assert!(
                    type_of(&batch, "profile").contains("\"zip\""),
                    "a new nested field is a new column"
                );
            }
            seen.push((id, scores[row], nicknames[row].clone()));
        }
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = vec![
        ("w-0".to_owned(), Some(1.0), None),
        ("w-1".to_owned(), Some(2.0), None),
        ("w-2".to_owned(), Some(2.5), Some("Ray".to_owned())),
        ("w-3".to_owned(), Some(4.0), None),
        ("w-4".to_owned(), Some(0.5), Some("Ann".to_owned())),
    ];
    assert_eq!(seen, expected);
}

#[test]
fn rerunning_the_same_window_replaces_only_that_windows_batch() {
    let mock = mock(basic_mock(10_000));
    let sandbox = Sandbox::new();
    let mut attributes = offset_attributes(1000);
    attributes["scheduleParams"] = json!({
        "scheduleStartParamName": "since_last_changed",
        "scheduleEndParamName": "before_last_changed",
        "scheduleStartParamFormat": "yyyy-MM-ddTHH:mm:ssZ",
        "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ssZ"
    });
    let path = sandbox.bundle(
        "windows",
        &bundle(
            "it-windows",
            basic_auth_spec(),
            attributes,
            basic_params(&mock),
            "windows",
        ),
    );
    // The mock's record i changed at 2024-01-01T00:00:00Z + i seconds.
    let run_window = |start: &str, end: &str| {
        let ran = sandbox.tributary(&[
            "run",
            &path,
            "--json",
            "--window-start",
            start,
            "--window-end",
            end,
        ]);
        assert_eq!(ran.code, 0, "{ran:?}");
        let run: Value = serde_json::from_str(&ran.stdout).unwrap();
        assert_eq!(
            run["metrics"]["recordSummary"]["inputRecordCount"], 3600,
            "{ran:?}"
        );
        check_published(&sandbox, "windows", &run);
    };
    run_window("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z");
    run_window("2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z");
    run_window("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z");

    let batch_dirs: HashSet<String> = sandbox
        .dataset_files("windows")
        .iter()
        .map(|f| f.split('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(batch_dirs.len(), 2, "one batch per window: {batch_dirs:?}");
    let batches = read_parquet(&sandbox.data().join("datasets/windows"));
    let ids: Vec<String> = strings(&batches, "id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), 7200, "both windows, each once");
    assert_eq!(unique, expected_ids(7200));
}

/// Runs an OFFSET bundle against a mock of `records` with `faults`; checks the exit code, that
/// each of `expected` is in the output, and that a failed run published nothing.
fn check_source_problem(records: u64, faults: Faults, code: i32, expected: &[&str]) -> Sandbox {
    let mock = mock(MockConfig {
        faults,
        ..basic_mock(records)
    });
    let sandbox = Sandbox::new();
    let path = sandbox.bundle(
        "problem",
        &bundle(
            "it-problem",
            basic_auth_spec(),
            offset_attributes(1000),
            basic_params(&mock),
            "problem",
        ),
    );
    let ran = sandbox.tributary(&["run", &path]);
    assert_eq!(ran.code, code, "{ran:?}");
    let all = format!("{}{}", ran.stdout, ran.stderr);
    for want in expected {
        assert!(all.contains(want), "expected {want:?} in {ran:?}");
    }
    if code != 0 {
        let files = sandbox.dataset_files("problem");
        assert!(files.is_empty(), "nothing published: {files:?}");
    }
    sandbox
}

#[test]
fn source_problems_fail_the_run_naming_the_page() {
    check_source_problem(
        5_000,
        Faults {
            missing_content: Some(Target::Offset(2000)),
            ..Default::default()
        },
        1,
        &["page 2: contentPath $.members was not found"],
    );
    check_source_problem(
        5_000,
        Faults {
            not_an_object: Some(Target::Offset(1000)),
            ..Default::default()
        },
        1,
        &["page 1"],
    );
    check_source_problem(
        5_000,
        Faults {
            truncate: Some(Target::Offset(4000)),
            ..Default::default()
        },
        1,
        &["offset=4000: reading the response body failed"],
    );
}

#[test]
fn a_source_without_records_succeeds_with_an_empty_run() {
    let sandbox = check_source_problem(0, Faults::default(), 0, &["0 read, 0 written"]);
    let rows: usize = read_parquet(&sandbox.data().join("datasets/problem"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 0);
}

/// Serves one page of `records` (a JSON array literal) and runs a bundle against it: the run
/// either works or fails naming the page, and never publishes a partial batch.
fn check_odd_page(records: &str) -> (Ran, Sandbox) {
    let sandbox = Sandbox::new();
    let pages = sandbox.dir.path().join("pages");
    std::fs::create_dir_all(&pages).unwrap();
    std::fs::write(
        pages.join("odd-page-0.json"),
        format!("{{\"items\": {records}}}"),
    )
    .unwrap();
    let source = serve_fixture_pages(pages, "odd");
    let base_url = source.server.base_url();
    let attributes = json!({
        "urlParams": {"path": "/widen", "method": "GET"},
        "contentPath": "$.items",
        "paginationParams": {"type": "PAGE", "limitName": "pageSize", "limitValue": 1000, "pageParamName": "page"}
    });
    let params = json!({"host": base_url, "username": "u", "password": "p"});
    let path = sandbox.bundle(
        "odd",
        &bundle("it-odd", basic_auth_spec(), attributes, params, "odd"),
    );
    let ran = sandbox.tributary(&["run", &path, "--json"]);
    assert!(
        ran.code == 0 || ran.code == 1,
        "works or fails, never panics: {ran:?}"
    );
    if ran.code == 1 {
        assert!(ran.stderr.contains("page 0"), "names the page: {ran:?}");
        assert!(sandbox.dataset_files("odd").is_empty(), "nothing published");
    }
    (ran, sandbox)
}

#[test]
fn odd_records_work_or_fail_naming_the_page() {
    let (ran, _) = check_odd_page(r#"[{"id": "a"}, 5, "text", {"id": "b"}]"#);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr
            .contains("page 0: record 1 of the contentPath array is a number, expected an object"),
        "{ran:?}"
    );

    let big = "x".repeat(5 * 1024 * 1024);
    let (ran, sandbox) = check_odd_page(&format!(
        r#"[{{"id": "a", "blob": "{big}"}}, {{"id": "b", "blob": "y"}}]"#
    ));
    assert_eq!(ran.code, 0, "a 5 MB string field works: {}", ran.stderr);
    let batches = read_parquet(&sandbox.data().join("datasets/odd"));
    let mut blobs = strings(&batches, "blob");
    blobs.sort();
    assert_eq!(blobs.len(), 2);
    assert!(
        blobs[0].as_deref() == Some(big.as_str()),
        "the 5 MB string is kept whole"
    );
    assert_eq!(blobs[1].as_deref(), Some("y"));

    let deep = format!("{}1{}", "{\"d\": ".repeat(5000), "}".repeat(5000));
    let (ran, _) = check_odd_page(&format!(r#"[{{"id": "a", "nest": {deep}}}]"#));
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains("nesting deeper than 256 levels"),
        "{}",
        ran.stderr
    );
}

#[test]
fn run_against_the_mock_api_child_process() {
    use std::io::BufRead;
    let sandbox = Sandbox::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["mock-api", "--port", "0", "--records", "3000", "--seed"])
        .arg(SEED.to_string())
        .args(["--auth", "basic:ann:it-password"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let base_url = first_line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
        .to_owned();
    let params = json!({"host": base_url, "username": "ann", "password": "it-password"});
    let path = sandbox.bundle(
        "child",
        &bundle(
            "it-child",
            basic_auth_spec(),
            offset_attributes(1000),
            params,
            "child",
        ),
    );
    let child = KillOnDrop(child);
    check_run(&sandbox, &path, "child", 3000);
    drop(child);
}

/// Stops the mock-api child even when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
