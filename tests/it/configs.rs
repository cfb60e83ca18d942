//! Every example under configs/ is valid (`tributary spec validate` exits 0, the daemon config
//! loads), the broken specs of tests/data/spec/broken/ exit 2 with one `FILE: /pointer: message`
//! line per problem, and garbage or truncated files exit 2 without a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};

/// What `tributary spec validate` did.
struct Validation {
    code: i32,
    stdout: String,
    stderr: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validate(files: &[PathBuf]) -> Validation {
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .current_dir(repo_root())
        .arg("spec")
        .arg("validate")
        .args(files)
        .env_remove("MC_PASSWORD")
        .output()
        .unwrap();
    Validation {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Every file under `dir` (recursively) whose name ends with `.ext`, sorted.
fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Validates `file` (relative to the repository root) and checks its exact problem lines.
fn check_broken(file: &str, expected: &[&str]) {
    let validation = validate(&[PathBuf::from(file)]);
    assert_eq!(validation.code, 2, "{file}: {}", validation.stdout);
    let lines: Vec<&str> = validation.stdout.lines().collect();
    for line in &lines {
        assert!(
            line.starts_with(&format!("{file}: /")) || line.starts_with(&format!("{file}: (root)")),
            "not a FILE: /pointer: message line: {line}"
        );
    }
    for want in expected {
        assert!(
            lines.iter().any(|line| line == want),
            "{file}: missing line {want:?} in\n{}",
            validation.stdout
        );
    }
}

/// The JSON examples that are specs, mapping sets or bundles: all but the Grafana dashboards.
fn spec_files() -> Vec<PathBuf> {
    let grafana = repo_root().join("configs/grafana");
    files_under(&repo_root().join("configs"), "json")
        .into_iter()
        .filter(|file| !file.starts_with(&grafana))
        .collect()
}

#[test]
fn every_config_json_validates() {
    let files = spec_files();
    assert!(files.len() >= 10, "configs/ holds the examples: {files:?}");
    let validation = validate(&files);
    assert_eq!(
        validation.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        validation.stdout, validation.stderr
    );
    // Only warnings (unset environment variables) may be printed.
    for line in validation.stdout.lines() {
        assert!(line.contains(": warning: "), "unexpected problem: {line}");
    }
}

#[test]
fn daemon_config_loads() {
    let files = files_under(&repo_root().join("configs"), "toml");
    assert!(!files.is_empty());
    for file in files {
        let config = tributary_engine::DaemonConfig::load(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        // Loopback unless the example is meant to be reached from other machines (the
        // Kubernetes pods, probed on their own address); `serve` refuses such an address without
        // API credentials, so those examples must configure them.
        if config.listen.ip().is_loopback() {
            assert_eq!(config.listen.port(), 8080, "{}", file.display());
        } else {
            assert!(
                !config.api.orgs.is_empty(),
                "{}: listens on {} without [[api.orgs]] credentials",
                file.display(),
                config.listen
            );
        }
    }
}

#[test]
fn broken_specs_report_one_line_per_problem() {
    check_broken(
        "tests/data/spec/broken/minute-interval.json",
        &[
            "tests/data/spec/broken/minute-interval.json: /flow/scheduleParams/interval: expected an integer >= 15 for frequency minute, found 5",
        ],
    );
    check_broken(
        "tests/data/spec/broken/unknown-pagination.json",
        &[
            "tests/data/spec/broken/unknown-pagination.json: /sourceSpec/attributes/paginationParams/type: unknown pagination type \"CURSOR\"; expected one of OFFSET, POINTER, CONTINUATION_TOKEN, PAGE, NONE, LINK",
        ],
    );
    check_broken(
        "tests/data/spec/broken/truncated.json",
        &[
            "tests/data/spec/broken/truncated.json: (root): invalid JSON at line 5 column 0: EOF while parsing a value",
        ],
    );
    check_broken(
        "tests/data/spec/broken/mapping-wrong-types.json",
        &[
            "tests/data/spec/broken/mapping-wrong-types.json: /strictMapping: expected strictMapping (true or false), found the string \"yes\"",
            "tests/data/spec/broken/mapping-wrong-types.json: /mappings/2/sourceAttribute: expected the source (a string), found the number 12",
        ],
    );
    let many = validate(&[PathBuf::from("tests/data/spec/broken/many-problems.json")]);
    assert_eq!(many.code, 2);
    assert_eq!(many.stdout.lines().count(), 10, "{}", many.stdout);
    assert!(many.stdout.contains(
        "tests/data/spec/broken/many-problems.json: /sourceSpec/attributes/urlParams/method: expected the HTTP method GET or POST, found \"DELETE\""
    ));
}

/// Adobe's generic REST template (shape b, its request in each source connection) and a flow on
/// it validate; a flow on it with a broken paginationParams exits 2 naming the field in the
/// bundle's source params.
#[test]
fn the_generic_rest_template_and_flows_on_it() {
    let validation = validate(&[
        PathBuf::from("configs/specs/generic-rest.json"),
        PathBuf::from("configs/flows/generic-rest-members.json"),
    ]);
    assert_eq!(validation.code, 0, "{}", validation.stdout);
    // The template's OAuth2 entry requires a host it does not declare; and MC_PASSWORD is unset.
    for line in validation.stdout.lines() {
        assert!(
            line.contains(": warning: required property host is not declared")
                || line.contains(": warning: environment variable MC_PASSWORD is not set"),
            "unexpected problem: {line}"
        );
    }
    let broken = "tests/data/spec/broken/generic-rest-bad-pagination.json";
    let validation = validate(&[PathBuf::from(broken)]);
    assert_eq!(validation.code, 2, "{}", validation.stdout);
    let errors: Vec<&str> = validation
        .stdout
        .lines()
        .filter(|line| !line.contains(": warning: "))
        .collect();
    assert_eq!(
        errors,
        [
            format!(
                "{broken}: /sourceConnection/params/paginationParams/limitValue: expected limitValue (the page size) as an integer >= 1 and <= 4294967295, found 0"
            ),
            format!(
                "{broken}: /sourceConnection/params/paginationParams/type: unknown pagination type \"SCROLL\"; expected one of OFFSET, POINTER, CONTINUATION_TOKEN, PAGE, NONE, LINK"
            ),
        ],
        "{}",
        validation.stdout
    );
}

#[test]
fn the_whole_broken_folder_exits_2_with_lines_for_every_file() {
    let files = files_under(&repo_root().join("tests/data/spec/broken"), "json");
    let validation = validate(&files);
    assert_eq!(validation.code, 2, "{}", validation.stderr);
    for file in &files {
        let label = file.display().to_string();
        assert!(
            validation
                .stdout
                .lines()
                .any(|line| line.starts_with(&format!("{label}: "))),
            "no problem reported for {label}:\n{}",
            validation.stdout
        );
    }
}

#[test]
fn garbage_and_truncated_files_exit_2_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut files = Vec::new();
    for (idx, source) in spec_files().iter().enumerate() {
        let bytes = std::fs::read(source).unwrap();
        // Cuts at a few places inside the document, never at its full length.
        for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 2] {
            let path = dir.path().join(format!("truncated-{idx}-{cut}.json"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            files.push(path);
        }
        // The same document with random bytes overwritten.
        let mut damaged = bytes.clone();
        for _ in 0..8 {
            let at = rng.random_range(0..damaged.len());
            damaged[at] = rng.random();
        }
        let path = dir.path().join(format!("damaged-{idx}.json"));
        std::fs::write(&path, &damaged).unwrap();
        files.push(path);
    }
    for (name, content) in [
        ("empty.json", &b""[..]),
        ("binary.json", &[0xff, 0x00, 0xfe, 0x7b][..]),
        ("array.json", b"[1, 2, 3]"),
        ("string.json", b"\"spec\""),
        ("deep.json", &b"[".repeat(100_000)[..]),
        ("object.json", b"{\"what\": \"no kind\"}"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        files.push(path);
    }
    for file in files {
        let validation = validate(std::slice::from_ref(&file));
        assert_eq!(
            validation.code,
            2,
            "{}: stdout {} stderr {}",
            file.display(),
            validation.stdout,
            validation.stderr
        );
        assert!(
            !validation.stdout.is_empty(),
            "{}: no problem line",
            file.display()
        );
    }
}

/// Every metric the Grafana dashboards of configs/grafana query is one tributary exports (a
/// histogram's `_bucket`, `_count` and `_sum` series count as the histogram), so a renamed
/// metric cannot leave a dashboard panel empty.
#[test]
fn grafana_dashboards_query_only_metrics_tributary_exports() {
    use tributary_engine::telemetry as t;
    let exported = [
        t::RUNS_STARTED,
        t::RUNS_FINISHED,
        t::RUNS_IN_FLIGHT,
        t::RUNS_QUEUED,
        t::RECORDS_READ,
        t::RECORDS_WRITTEN,
        t::RECORDS_REJECTED,
        t::BYTES_IN,
        t::BYTES_OUT,
        t::SOURCE_RETRIES,
        t::SOURCE_THROTTLED_SECONDS,
        t::SCHEDULER_LAG_SECONDS,
        t::SCHEDULE_INTERVAL_SECONDS,
        t::LAST_SUCCESS_SECONDS,
        t::CONSECUTIVE_FAILURES,
        tributary_api::metrics::API_REQUESTS,
        tributary_api::metrics::API_REQUEST_SECONDS,
        tributary_api::metrics::SOURCE_REQUESTS,
        tributary_api::metrics::SOURCE_REQUEST_SECONDS,
        tributary_api::metrics::SOURCE_RATE_LIMITED,
    ];
    let files = files_under(&repo_root().join("configs/grafana"), "json");
    assert!(!files.is_empty(), "configs/grafana holds a dashboard");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let dashboard: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{}", file.display());
        let mut queried = 0;
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                for name in metric_names(expr) {
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|suffix| name.strip_suffix(suffix))
                        .filter(|base| exported.contains(base))
                        .unwrap_or(&name);
                    assert!(
                        exported.contains(&base),
                        "{}: panel {:?} queries {name}, which tributary does not export",
                        file.display(),
                        panel["title"]
                    );
                    queried += 1;
                }
            }
        }
        assert!(
            queried >= 10,
            "{}: {queried} metrics queried",
            file.display()
        );
    }
}

/// The `tributary_…` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tributary_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}
