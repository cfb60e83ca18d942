//! `tributary serve` (the real binary) with two bundles on a two-second cron schedule against
//! the mock API: runs happen on schedule, an invalid bundle is logged and skipped, SIGTERM stops
//! the daemon with exit 0, and a restart continues from state — every window runs once and the
//! windows of each flow are contiguous.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backfill::{BIN, assert_each_id_once, bundle_json, start_mock};

const FLOWS: [&str; 2] = ["daemon-a", "daemon-b"];

/// A `tributary serve` child process and the lines it logged (stderr).
pub(crate) struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub(crate) seen: Vec<String>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// Starts `serve --config CONFIG` with the tests' secret key and `env` set.
    pub(crate) fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .env(
                "TRIBUTARY_SECRET_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until `n` successful runs of every flow were logged (or panics after 30 s).
    fn wait_for_runs(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let counts: Vec<usize> = FLOWS
                .iter()
                .map(|flow| {
                    self.seen
                        .iter()
                        .filter(|l| {
                            l.contains("run finished") && l.contains(flow) && l.contains("success")
                        })
                        .count()
                })
                .collect();
            if counts.iter().all(|&c| c >= n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "runs per flow {counts:?} after 30 s; log:\n{}",
                self.seen.join("\n")
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line);
            }
        }
    }

    /// Waits until a line logged from now on satisfies `predicate` (or panics after 30 s);
    /// returns its index in `seen`.
    pub(crate) fn wait_for_line(&mut self, what: &str, predicate: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut checked = self.seen.len();
        loop {
            if let Some(found) = self.seen[checked..].iter().position(|l| predicate(l)) {
                return checked + found;
            }
            checked = self.seen.len();
            assert!(
                Instant::now() < deadline,
                "no log line {what} after 30 s; log:\n{}",
                self.seen.join("\n")
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line);
            }
        }
    }

    /// SIGKILL (no chance to clean up), then what it logged.
    pub(crate) fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.seen.push(line);
        }
        self.seen
    }

    /// SIGTERM, then the exit status (within 15 s).
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(line);
                }
                return (status, self.seen);
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn serve_runs_two_flows_on_schedule_stops_on_sigterm_and_resumes_from_state() {
    let mock = start_mock(&["--records", "300", "--start-time", "2024-01-01T00:00:00Z"]);
    let dir = tempfile::tempdir().unwrap();
    let flows_dir = dir.path().join("flows");
    std::fs::create_dir(&flows_dir).unwrap();
    let start_time = chrono::Utc::now().timestamp() - 1;
    // Cron with seconds (our extension): a slot every two seconds. The first window (backfill)
    // takes all history; the next ones are two seconds each.
    let schedule = json!({"startTime": start_time, "frequency": "hour", "interval": 1, "backfill": true,
                          "cron": "*/2 * * * * *"});
    for flow in FLOWS {
        let text = bundle_json(flow, &mock.url, flow, 50, Some(schedule.clone()));
        std::fs::write(flows_dir.join(format!("{flow}.json")), text).unwrap();
    }
    std::fs::write(
        flows_dir.join("broken.json"),
        r#"{"name": "broken", "connectionSpec": {}}"#,
    )
    .unwrap();
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            // Port 0: serve also runs the HTTP API, and tests run in parallel.
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\ndata_dir = {:?}\nflows_dir = {:?}\n[scheduler]\nshutdown_grace_secs = 10\nrun_history = 1000\n",
            dir.path().join("state"),
            dir.path().join("data"),
            flows_dir
        ),
    )
    .unwrap();

    let mut daemon = Daemon::start(&config);
    daemon.wait_for_runs(3);
    let (status, log) = daemon.terminate();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("invalid flow bundle; skipped") && log.contains("broken.json"),
        "{log}"
    );
    assert!(log.contains("flow registered"), "{log}");
    assert!(log.contains("SIGTERM: stopping"), "{log}");

    // Restarted: an unchanged file writes nothing, an edited one (smaller pages) updates its
    // flow, and both flows go on from their last window.
    let edited = bundle_json(
        "daemon-b",
        &mock.url,
        "daemon-b",
        20,
        Some(schedule.clone()),
    );
    std::fs::write(flows_dir.join("daemon-b.json"), edited).unwrap();
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_runs(2);
    let (status, log) = daemon.terminate();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("flow unchanged") && !log.contains("flow registered"),
        "{log}"
    );
    let updated: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("flow updated from its edited file"))
        .collect();
    assert!(
        updated.len() == 1 && updated[0].contains("daemon-b.json"),
        "{log}"
    );

    let output = Command::new(BIN)
        .args(["runs", "--json", "--limit", "1000", "--state-dir"])
        .arg(dir.path().join("state"))
        .env(
            "TRIBUTARY_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let mut windows: HashMap<String, Vec<(Option<i64>, i64)>> = HashMap::new();
    for run in &runs {
        if run["state"] != "success" {
            continue;
        }
        let params = &run["params"];
        windows
            .entry(run["flowName"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                params["windowStartTime"].as_i64(),
                params["windowEndTime"].as_i64().unwrap(),
            ));
    }
    // `--flow` takes a bundle name: only that flow's runs, newest first.
    let output = Command::new(BIN)
        .args([
            "runs",
            "--json",
            "--flow",
            "daemon-a",
            "--limit",
            "3",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .env(
            "TRIBUTARY_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs_a: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(runs_a.len(), 3);
    assert!(
        runs_a.iter().all(|run| run["flowName"] == "daemon-a"),
        "{runs_a:?}"
    );
    let starts: Vec<i64> = runs_a
        .iter()
        .map(|run| run["params"]["startTime"].as_i64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {starts:?}"
    );

    for flow in FLOWS {
        let mut flow_windows = windows.remove(flow).unwrap_or_default();
        flow_windows.sort_by_key(|w| w.1);
        assert!(flow_windows.len() >= 5, "{flow}: {flow_windows:?}");
        assert_eq!(
            flow_windows[0].0, None,
            "{flow}: the first window covers all history"
        );
        for pair in flow_windows.windows(2) {
            assert_eq!(
                pair[1].0,
                Some(pair[0].1),
                "{flow}: windows are contiguous and none ran twice: {flow_windows:?}"
            );
        }
        assert_each_id_once(&dir.path().join("data"), flow, 300);
    }
}

#[test]
fn bundles_added_edited_and_deleted_in_flows_dir_apply_while_serve_runs() {
    let mock = start_mock(&["--records", "100", "--start-time", "2024-01-01T00:00:00Z"]);
    let dir = tempfile::tempdir().unwrap();
    let flows_dir = dir.path().join("flows");
    std::fs::create_dir(&flows_dir).unwrap();
    let start_time = chrono::Utc::now().timestamp() - 1;
    let schedule = json!({"startTime": start_time, "frequency": "hour", "interval": 1, "backfill": true,
                          "cron": "*/2 * * * * *"});
    std::fs::write(
        flows_dir.join("daemon-a.json"),
        bundle_json(
            "daemon-a",
            &mock.url,
            "daemon-a",
            50,
            Some(schedule.clone()),
        ),
    )
    .unwrap();
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\ndata_dir = {:?}\nflows_dir = {:?}\n[scheduler]\nshutdown_grace_secs = 10\n",
            dir.path().join("state"),
            dir.path().join("data"),
            flows_dir
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_line("a first run of daemon-a", |l| {
        l.contains("run finished") && l.contains("daemon-a")
    });

    // Added while running: registered and run without a restart.
    let late = flows_dir.join("daemon-late.json");
    std::fs::write(
        &late,
        bundle_json(
            "daemon-late",
            &mock.url,
            "daemon-late",
            50,
            Some(schedule.clone()),
        ),
    )
    .unwrap();
    daemon.wait_for_line("registering daemon-late", |l| {
        l.contains("flow registered") && l.contains("daemon-late")
    });
    daemon.wait_for_line("a run of daemon-late", |l| {
        l.contains("run finished") && l.contains("daemon-late") && l.contains("success")
    });

    // Broken by an edit: logged, and the last valid version keeps running.
    std::fs::write(&late, r#"{"name": "daemon-late", "connectionSpec": {}}"#).unwrap();
    let broken_at = daemon.wait_for_line("the broken edit", |l| {
        l.contains("invalid flow bundle") && l.contains("daemon-late.json")
    });
    assert!(
        daemon.seen[broken_at].contains("keeping_last_valid_version=true"),
        "{}",
        daemon.seen[broken_at]
    );
    daemon.wait_for_line("another run of daemon-late", |l| {
        l.contains("run finished") && l.contains("daemon-late") && l.contains("success")
    });

    // Deleted: no longer scheduled.
    std::fs::remove_file(&late).unwrap();
    let deleted_at = daemon.wait_for_line("the deletion", |l| {
        l.contains("flow no longer scheduled") && l.contains("daemon-late.json")
    });
    // A run that had started may finish; give the scheduler time for two more slots.
    std::thread::sleep(Duration::from_secs(5));
    let (status, log) = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{}", log.join("\n"));
    let starts_after: Vec<&String> = log[deleted_at..]
        .iter()
        .filter(|l| l.contains("run started") && l.contains("daemon-late"))
        .collect();
    assert!(
        starts_after.len() <= 1,
        "at most the run already due starts after the deletion: {starts_after:?}"
    );
    assert!(
        log[deleted_at..]
            .iter()
            .any(|l| l.contains("run finished") && l.contains("daemon-a")),
        "the other flow goes on"
    );
}
