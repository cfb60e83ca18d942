//! What operators see, against the real `tributary serve` and the mock API child process:
//! `/metrics` scraped during and after runs (one flow throttled by the mock's rate limit and
//! its 429s, one failing) agrees with the runs' own metrics and passes `promtool check
//! metrics`; the alert rules of configs/prometheus pass `promtool check rules`; `tributary
//! flows` and `tributary runs` go through the daemon (it holds the state) and fit 80 columns;
//! the dashboard page, in Debian's headless chromium driven by puppeteer-core, shows each flow's
//! state and the failing run's error, behind a proxy that adds the API headers and with
//! credentials asked once.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backfill::{BIN, MockChild, bundle_json, start_mock};

pub const ORG: &str = "OPS@AdobeOrg";
pub const API_KEY: &str = "ops-key";
pub const TOKEN: &str = "ops-token";
pub const METRICS_TOKEN: &str = "scrape-token";
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A running `tributary serve` with its log; SIGTERM and wait when dropped.
pub struct Serve {
    child: Child,
    pub addr: String,
    pub config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    _mocks: Vec<MockChild>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three flows of the operator tests: `ops-ok` (throttled by the mock's rate limit),
/// `ops-failing` (its path answers 404), `ops-idle` (disabled by a test). One run each at start
/// (backfill of all history), the next an hour later.
pub fn start_serve() -> Serve {
    // 4 requests a second, burst 1: 12 pages take about 3 s, and the limiter waits; every
    // fifth request is answered 429 with `Retry-After: 1` on top, so 429s are counted too.
    let throttled = start_mock(&[
        "--records",
        "60",
        "--rate-limit",
        "4/1",
        "--error-every",
        "5",
        "--error-status",
        "429",
    ]);
    let plain = start_mock(&["--records", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let flows_dir = dir.path().join("flows");
    std::fs::create_dir(&flows_dir).unwrap();
    let start_time = chrono::Utc::now().timestamp() - 1;
    let schedule =
        json!({"startTime": start_time, "frequency": "hour", "interval": 1, "backfill": true});
    std::fs::write(
        flows_dir.join("ops-ok.json"),
        bundle_json(
            "ops-ok",
            &throttled.url,
            "ops_ok",
            5,
            Some(schedule.clone()),
        ),
    )
    .unwrap();
    let mut failing: Value = serde_json::from_str(&bundle_json(
        "ops-failing",
        &plain.url,
        "ops_failing",
        10,
        Some(schedule.clone()),
    ))
    .unwrap();
    failing["connectionSpec"]["sourceSpec"]["attributes"]["urlParams"]["path"] =
        json!("/3.0/no-such-list");
    std::fs::write(flows_dir.join("ops-failing.json"), failing.to_string()).unwrap();
    // Starts in a day: never runs during the test.
    let later = json!({"startTime": start_time + 86_400, "frequency": "hour", "interval": 1, "backfill": true});
    std::fs::write(
        flows_dir.join("ops-idle.json"),
        bundle_json("ops-idle", &plain.url, "ops_idle", 10, Some(later)),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = {:?}\ndata_dir = {:?}\nflows_dir = {:?}\n[scheduler]\nshutdown_grace_secs = 5\n[api]\nmetrics_bearer_token = \"${{env:OPS_METRICS_TOKEN}}\"\n[[api.orgs]]\norg_id = \"{ORG}\"\napi_key = \"{API_KEY}\"\nbearer_token = \"{TOKEN}\"\n",
            dir.path().join("state"),
            dir.path().join("data"),
            flows_dir,
        ),
    )
    .unwrap();
    let (child, log) =
        crate::api_e2e::start_serve(&config, &[("OPS_METRICS_TOKEN", METRICS_TOKEN)]);
    let serve = Serve {
        child,
        addr: format!("127.0.0.1:{port}"),
        config,
        log,
        _dir: dir,
        _mocks: vec![throttled, plain],
    };
    serve.wait_for("HTTP API listening", |l| l.contains("HTTP API listening"));
    serve
}

impl Serve {
    /// SIGTERM, and waits (at most 15 s) for the daemon to exit; the folders stay.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "serve exited with {status}:\n{}",
                    self.log()
                );
                return;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (at most 30 s) for a log line.
    pub fn wait_for(&self, what: &str, predicate: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log.lock().unwrap().iter().any(|l| predicate(l)) {
            assert!(
                Instant::now() < deadline,
                "no log line {what} after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the flow's first run finished.
    pub fn wait_for_run(&self, flow: &str) {
        let flow_field = format!("flow={flow} ");
        self.wait_for(&format!("run finished of {flow}"), |l| {
            l.contains("run finished") && l.contains(&flow_field)
        });
    }

    /// GET with the API's credentials.
    pub fn api_get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(
            &self.addr,
            "GET",
            path,
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("x-api-key", API_KEY),
                ("x-gw-ims-org-id", ORG),
                ("x-sandbox-name", "prod"),
            ],
        );
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|err| panic!("GET {path}: {status} {err}: {body}"));
        (status, value)
    }

    /// The runs of a flow as the API lists them.
    pub fn runs_of(&self, flow: &str) -> Vec<Value> {
        let flow_id = tributary_engine::run::bundle_flow_id(flow);
        let (status, body) = self.api_get(&format!(
            "/data/foundation/flowservice/runs?property=flowId=={flow_id}"
        ));
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    pub fn scrape(&self) -> String {
        let (status, body) = http(
            &self.addr,
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {METRICS_TOKEN}"))],
        );
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// One HTTP/1.0 request over loopback: (status, body).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Samples of a Prometheus text scrape: `name{labels}` → value (labels in their order).
fn samples(scrape: &str) -> BTreeMap<String, f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series named `name` whose labels include every `labels` pair (summed over
/// the matching series); None when no series matches.
fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for (series, value) in samples {
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        if series_name != name {
            continue;
        }
        let matches = labels
            .iter()
            .all(|(key, want)| series_labels.contains(&format!("{key}=\"{want}\"")));
        if matches {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut command = Command::new("promtool");
    command.args(args);
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|err| {
        panic!("promtool (Debian package prometheus) is missing; scripts/test installs it: {err}")
    });
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn sum(runs: &[Value], pointer: &str) -> f64 {
    runs.iter()
        .map(|run| run.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0))
        .sum()
}

#[test]
fn metrics_scraped_during_and_after_runs_agree_with_the_runs_and_pass_promtool() {
    let serve = start_serve();
    // Without the metrics token (and with the API's credentials only): refused.
    let (status, _) = http(&serve.addr, "GET", "/metrics", &[]);
    assert_eq!(status, 401);

    // During the throttled run: it is in flight, and requests to its origin are counted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let during = loop {
        let scrape = serve.scrape();
        let now = samples(&scrape);
        let in_flight = value(&now, "tributary_runs_in_flight", &[]).unwrap_or(0.0);
        let requests = value(&now, "tributary_source_requests_total", &[]).unwrap_or(0.0);
        if in_flight >= 1.0 && requests >= 1.0 {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape saw a run in flight:\n{scrape}\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (ok, out) = promtool(&["check", "metrics"], Some(&during));
    assert!(ok, "promtool check metrics (during runs): {out}\n{during}");

    serve.wait_for_run("ops-ok");
    serve.wait_for_run("ops-failing");
    let after = serve.scrape();
    let (ok, out) = promtool(&["check", "metrics"], Some(&after));
    assert!(ok, "promtool check metrics (after runs): {out}\n{after}");
    let now = samples(&after);

    for flow in ["ops-ok", "ops-failing", "ops-idle"] {
        let runs = serve.runs_of(flow);
        let by = |status: &str| runs.iter().filter(|r| r["state"] == status).count() as f64;
        let labels = [("flow", flow)];
        let counter = |name: &str| {
            value(&now, name, &labels).unwrap_or_else(|| panic!("no {name} of {flow}:\n{after}"))
        };
        assert_eq!(
            counter("tributary_runs_started_total"),
            runs.len() as f64,
            "{flow}"
        );
        for status in ["success", "failed", "cancelled"] {
            let finished = value(
                &now,
                "tributary_runs_finished_total",
                &[("flow", flow), ("status", status)],
            );
            assert_eq!(finished, Some(by(status)), "{flow} {status}:\n{after}");
        }
        assert_eq!(
            counter("tributary_records_read_total"),
            sum(&runs, "/metrics/recordSummary/inputRecordCount"),
            "{flow}"
        );
        assert_eq!(
            counter("tributary_records_written_total"),
            sum(&runs, "/metrics/recordSummary/outputRecordCount"),
            "{flow}"
        );
        assert_eq!(
            counter("tributary_records_rejected_total"),
            sum(&runs, "/metrics/recordSummary/failedRecordCount"),
            "{flow}"
        );
        assert_eq!(
            counter("tributary_bytes_in_total"),
            sum(&runs, "/metrics/sizeSummary/inputBytes"),
            "{flow}"
        );
        assert_eq!(
            counter("tributary_bytes_out_total"),
            sum(&runs, "/metrics/sizeSummary/outputBytes"),
            "{flow}"
        );
        assert_eq!(
            counter("tributary_source_retries_total"),
            sum(&runs, "/metrics/customSummary/retries"),
            "{flow}"
        );
        let throttled_ms = sum(&runs, "/metrics/customSummary/throttledMs");
        assert_eq!(
            counter("tributary_source_throttled_seconds_total"),
            (throttled_ms / 1000.0).floor(),
            "{flow}"
        );
    }
    let ok_runs = serve.runs_of("ops-ok");
    assert_eq!(ok_runs.len(), 1, "{ok_runs:?}");
    assert_eq!(ok_runs[0]["state"], "success");
    assert_eq!(
        ok_runs[0]["metrics"]["recordSummary"]["outputRecordCount"],
        60
    );
    assert!(
        ok_runs[0]["metrics"]["customSummary"]["throttledMs"]
            .as_u64()
            .unwrap()
            > 0,
        "the mock's rate limit throttled the run: {}",
        ok_runs[0]
    );
    let failing_runs = serve.runs_of("ops-failing");
    assert_eq!(failing_runs.len(), 1);
    assert_eq!(failing_runs[0]["state"], "failed");
    assert_eq!(
        value(
            &now,
            "tributary_flow_consecutive_failures",
            &[("flow", "ops-failing")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &now,
            "tributary_flow_consecutive_failures",
            &[("flow", "ops-ok")]
        ),
        Some(0.0)
    );
    let completed_s = ok_runs[0]["metrics"]["durationSummary"]["completedAtUTC"]
        .as_f64()
        .unwrap()
        / 1000.0;
    assert_eq!(
        value(
            &now,
            "tributary_flow_last_success_timestamp_seconds",
            &[("flow", "ops-ok")]
        ),
        Some(completed_s)
    );
    // Source requests by origin and status class: the throttled origin's 2xx are the run's
    // pages' requests, the failing origin answered 4xx.
    let ok_requests = sum(&ok_runs, "/metrics/customSummary/requests");
    let throttled_origin = &serve._mocks[0].url;
    let plain_origin = &serve._mocks[1].url;
    let by_class = |origin: &str, class: &str| {
        value(
            &now,
            "tributary_source_requests_total",
            &[("origin", origin), ("status_class", class)],
        )
        .unwrap_or(0.0)
    };
    let rate_limited = value(
        &now,
        "tributary_source_rate_limited_total",
        &[("origin", throttled_origin)],
    )
    .unwrap_or(0.0);
    assert_eq!(
        by_class(throttled_origin, "2xx") + rate_limited,
        ok_requests,
        "{after}"
    );
    assert_eq!(by_class(throttled_origin, "4xx"), rate_limited);
    assert!(
        rate_limited >= 2.0,
        "the mock answered every fifth request 429: {after}"
    );
    assert!(by_class(plain_origin, "4xx") >= 1.0, "{after}");
    assert!(
        value(
            &now,
            "tributary_source_request_duration_seconds_count",
            &[("origin", throttled_origin)]
        )
        .unwrap_or(0.0)
            >= ok_requests
    );
    // Nothing runs any more; the API requests of this test are counted by route template.
    assert_eq!(value(&now, "tributary_runs_in_flight", &[]), Some(0.0));
    assert_eq!(value(&now, "tributary_runs_queued", &[]), Some(0.0));
    let last = samples(&serve.scrape());
    assert!(
        value(
            &last,
            "tributary_api_requests_total",
            &[
                ("route", "/data/foundation/flowservice/runs"),
                ("status", "200")
            ]
        )
        .unwrap_or(0.0)
            >= 3.0,
        "{after}"
    );
    assert!(!after.contains("no-such-list"), "a URL leaked into a label");
    // The failing flow's first window is still due, so it is late; the others' next slots are
    // an hour (or a day) ahead.
    let lag = |flow: &str| value(&now, "tributary_scheduler_lag_seconds", &[("flow", flow)]);
    assert!(lag("ops-failing").unwrap() > 0.0, "{after}");
    assert_eq!(lag("ops-ok"), Some(0.0));
    assert_eq!(lag("ops-idle"), Some(0.0));
    for flow in ["ops-ok", "ops-failing", "ops-idle"] {
        assert_eq!(
            value(
                &now,
                "tributary_flow_schedule_interval_seconds",
                &[("flow", flow)]
            ),
            Some(3600.0),
            "{flow}"
        );
    }
}

#[test]
fn the_alert_rules_pass_promtool() {
    let rules = Path::new(REPO).join("configs/prometheus/alerts.yml");
    let (ok, out) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 3 rules found"), "{out}");
    let config = Path::new(REPO).join("configs/prometheus/prometheus.yml");
    let (ok, out) = promtool(&["check", "config", config.to_str().unwrap()], None);
    assert!(ok, "{out}");
}

/// `tributary ARGS --config CONFIG` while the daemon runs: (exit code, stdout, stderr).
fn tributary(serve: &Serve, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&serve.config)
        .env("NO_COLOR", "1")
        // Only the commands that read the state directory themselves (no daemon) need it.
        .env(
            "TRIBUTARY_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn flows_and_runs_commands_and_the_dashboard_work_against_a_running_daemon() {
    let mut serve = start_serve();
    serve.wait_for_run("ops-ok");
    serve.wait_for_run("ops-failing");

    // Disabled through the daemon (which holds the state directory).
    let (code, stdout, stderr) = tributary(&serve, &["flows", "disable", "ops-idle"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("ops-idle") && stdout.contains("disabled through the running daemon"),
        "{stdout}"
    );
    let (code, stdout, stderr) = tributary(&serve, &["flows", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let flows: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let by_name: BTreeMap<&str, &Value> = flows
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f))
        .collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        ["ops-failing", "ops-idle", "ops-ok"]
    );
    assert_eq!(by_name["ops-ok"]["state"], "enabled");
    assert_eq!(by_name["ops-ok"]["lastRun"]["status"], "success");
    assert_eq!(by_name["ops-ok"]["lastRun"]["recordsWritten"], 60);
    assert_eq!(by_name["ops-ok"]["consecutiveFailures"], 0);
    assert_eq!(by_name["ops-ok"]["schedule"], "every 1 hour");
    assert!(
        by_name["ops-ok"]["nextRunAt"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis()
    );
    assert_eq!(by_name["ops-failing"]["state"], "enabled");
    assert_eq!(by_name["ops-failing"]["lastRun"]["status"], "failed");
    assert_eq!(by_name["ops-failing"]["consecutiveFailures"], 1);
    assert!(by_name["ops-failing"]["lagSeconds"].as_u64().is_some());
    assert_eq!(by_name["ops-idle"]["state"], "disabled");
    assert_eq!(by_name["ops-idle"]["lastRun"], Value::Null);
    assert_eq!(by_name["ops-idle"]["nextRunAt"], Value::Null);

    let (code, table, stderr) = tributary(&serve, &["flows"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(table.lines().count(), 4, "{table}");
    for line in table.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
    let idle_line = table.lines().find(|l| l.starts_with("ops-idle")).unwrap();
    assert!(idle_line.contains("disabled"), "{table}");
    let failing_line = table
        .lines()
        .find(|l| l.starts_with("ops-failing"))
        .unwrap();
    assert!(
        failing_line.contains("failed") && failing_line.trim_end().ends_with('1'),
        "{table}"
    );

    let (code, runs_json, stderr) = tributary(&serve, &["runs", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let runs: Vec<Value> = serde_json::from_str(&runs_json).unwrap();
    assert_eq!(runs.len(), 2, "{runs_json}");
    let (code, runs_table, stderr) = tributary(&serve, &["runs"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(runs_table.starts_with("RUN "), "{runs_table}");
    assert!(runs_table.contains("THROTL") && runs_table.contains("REJ"));
    for line in runs_table.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
    let ok_line = runs_table.lines().find(|l| l.contains("ops-ok")).unwrap();
    assert!(
        ok_line.contains("success") && ok_line.contains(" 60 "),
        "{runs_table}"
    );
    // The throttled run waited whole seconds for the mock's rate limit.
    let throttled_ms = serve.runs_of("ops-ok")[0]["metrics"]["customSummary"]["throttledMs"]
        .as_u64()
        .unwrap();
    assert!(
        ok_line
            .trim_end()
            .ends_with(&crate_human_secs(throttled_ms / 1000)),
        "{ok_line} vs {throttled_ms} ms"
    );
    let (code, flow_runs, stderr) = tributary(&serve, &["runs", "--json", "--flow", "ops-failing"]);
    assert_eq!(code, 0, "{stderr}");
    let flow_runs: Vec<Value> = serde_json::from_str(&flow_runs).unwrap();
    assert_eq!(flow_runs.len(), 1);
    assert_eq!(flow_runs[0]["state"], "failed");
    let error_text = flow_runs[0]["metrics"]["statusSummary"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();

    // The page in a real headless browser.
    let node_modules = std::env::var("TRIBUTARY_TEST_NODE_MODULES").unwrap_or_else(|_| {
        panic!("TRIBUTARY_TEST_NODE_MODULES is not set: run the tests with scripts/test, which installs puppeteer-core")
    });
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let failing_id = tributary_engine::run::bundle_flow_id("ops-failing");
    let output = Command::new("node")
        .arg(Path::new(REPO).join("tests/data/ops/dashboard.js"))
        .arg(format!("http://{}", serve.addr))
        .args([ORG, API_KEY, TOKEN, failing_id.as_str()])
        .arg(&screenshot)
        .env("NODE_PATH", &node_modules)
        .output()
        .expect("node (scripts/test installs it with puppeteer-core)");
    assert!(
        output.status.success(),
        "the browser script failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        serve.log()
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["proxiedAskedForCredentials"], false, "{seen}");
    let proxied = seen["proxied"].as_str().unwrap();
    assert!(
        proxied.contains("ops-ok") && proxied.contains("3 flows"),
        "{proxied}"
    );
    assert_eq!(seen["askedForCredentials"], true);
    assert_eq!(seen["credentialsInSession"], true);
    assert_eq!(seen["pageErrors"], json!([]), "{seen}");
    let rows: Vec<Vec<String>> = serde_json::from_value(seen["flows"].clone()).unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|cells| cells[0] == name)
            .unwrap_or_else(|| panic!("no row of {name}: {rows:?}"))
    };
    // Columns: flow, state, schedule, next run, lag, last run, duration, read, written,
    // rejected, failures in a row, last error.
    assert_eq!(row("ops-ok")[1], "enabled");
    assert_eq!(row("ops-ok")[5], "success");
    assert_eq!(row("ops-ok")[8], "60");
    assert_eq!(row("ops-failing")[1], "enabled");
    assert_eq!(row("ops-failing")[5], "failed");
    assert_eq!(row("ops-failing")[10], "1");
    assert_eq!(row("ops-failing")[11], error_text);
    assert_eq!(row("ops-idle")[1], "disabled");
    assert_eq!(row("ops-idle")[5], "never ran");
    let page = seen["page"].as_str().unwrap();
    assert!(page.contains("Runs of ops-failing"), "{page}");
    assert!(
        page.contains(&format!("CONNECTOR-2001-500: {error_text}")),
        "{page}"
    );
    assert!(
        page.contains("Run ") && page.contains("none published"),
        "{page}"
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        screenshot.display()
    );
    eprintln!("dashboard screenshot: {}", screenshot.display());

    // Without a daemon the commands read the state directory: the same flows and runs, and a
    // flow enabled there stays enabled.
    serve.stop();
    let (code, stdout, stderr) = tributary(&serve, &["flows", "enable", "ops-idle"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("enabled in the state directory"),
        "{stdout}"
    );
    let (code, stdout, stderr) = tributary(&serve, &["flows", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let offline: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(offline.len(), 3);
    for flow in &offline {
        let name = flow["name"].as_str().unwrap();
        assert_eq!(flow["state"], "enabled", "{name}");
        assert_eq!(flow["lastRun"], by_name[name]["lastRun"], "{name}");
        assert_eq!(
            flow["consecutiveFailures"],
            by_name[name]["consecutiveFailures"]
        );
    }
    let (code, offline_runs, stderr) = tributary(&serve, &["runs", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let offline_runs: Vec<Value> = serde_json::from_str(&offline_runs).unwrap();
    assert_eq!(offline_runs, runs);
}

/// `tributary`'s duration format (`crate::flows::human_secs` of the binary).
fn crate_human_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{:02}h", secs / 86_400, (secs % 86_400) / 3600),
    }
}
