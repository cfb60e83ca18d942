//! The README's HTTP API session, run as written by bash and curl against the real
//! `tributary serve` and the mock API child process: spec, flow spec append, connections, test,
//! explore, mapping set, flow on a two-second schedule; its first scheduled run publishes
//! Parquet; disable and delete stop it (no run follows).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backfill::{BIN, start_mock};

pub(crate) const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub(crate) fn readme_session() -> String {
    let readme = std::fs::read_to_string(format!("{REPO}/README.md")).unwrap();
    let start = readme
        .find("<!-- api-session -->\n```sh\n")
        .expect("the README has the API session")
        + "<!-- api-session -->\n```sh\n".len();
    let end = start + readme[start..].find("\n```").unwrap();
    readme[start..end].to_owned()
}

/// Starts `tributary serve --config CONFIG` (with the test secret key, `DEMO_TOKEN` and `env`)
/// and waits until its API listens; its log lines are collected in the returned vector.
pub fn start_serve(
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, Arc<Mutex<Vec<String>>>) {
    let mut serve = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env(
            "TRIBUTARY_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env("DEMO_TOKEN", "demo-token")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = serve.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("HTTP API listening"))
    {
        assert!(
            Instant::now() < deadline,
            "serve did not start: {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (serve, log)
}

fn serve_config(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("tributary.toml");
    std::fs::write(&config, format!(
        "listen = \"127.0.0.1:{port}\"\nstate_dir = {:?}\ndata_dir = {:?}\n[scheduler]\nshutdown_grace_secs = 5\n[[api.orgs]]\norg_id = \"DEMO@AdobeOrg\"\napi_key = \"demo-key\"\nbearer_token = \"${{env:DEMO_TOKEN}}\"\n",
        dir.join("state"), dir.join("data"),
    )).unwrap();
    (config, format!("http://127.0.0.1:{port}"))
}

/// `curl ARGS` with the README's credentials and a JSON body type: the body, a newline and the
/// status code.
pub(crate) fn curl_api(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Authorization: Bearer demo-token",
            "-H",
            "x-api-key: demo-key",
            "-H",
            "x-gw-ims-org-id: DEMO@AdobeOrg",
            "-H",
            "x-sandbox-name: prod",
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .expect("running curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the API answered 201 to is in state: `serve` killed with SIGKILL right after the answer
/// (well inside sled's own flush interval) and started again still has every entity and the
/// flow's disabled state.
#[test]
fn an_answered_write_survives_a_kill_9_right_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (config, base) = serve_config(dir.path());
    for round in 0..3 {
        let (mut serve, _log) = start_serve(&config, &[]);
        let created = curl_api(&[
            "-X",
            "POST",
            &format!("{base}/data/foundation/flowservice/targetConnections"),
            "-d",
            &format!(
                r#"{{"name": "t{round}", "connectionSpec": {{"id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c", "version": "1.0"}}, "data": {{"format": "parquet_xdm"}}, "params": {{"dataSetId": "d{round}"}}}}"#
            ),
        ]);
        let _ = Command::new("kill")
            .args(["-KILL", &serve.id().to_string()])
            .status();
        let _ = serve.wait();
        assert!(
            created.ends_with("\n201") || created.ends_with("\n200"),
            "round {round}: {created}"
        );
        let id = serde_json::from_str::<serde_json::Value>(created.lines().next().unwrap())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let (mut serve, _log) = start_serve(&config, &[]);
        let got = curl_api(&[&format!(
            "{base}/data/foundation/flowservice/targetConnections/{id}"
        )]);
        let _ = Command::new("kill")
            .args(["-KILL", &serve.id().to_string()])
            .status();
        let _ = serve.wait();
        assert!(
            got.ends_with("\n200"),
            "round {round}: the answered target connection {id} is gone after kill -9: {got}"
        );
    }
}

#[test]
fn readme_api_session_runs_against_serve_and_the_first_scheduled_run_publishes_parquet() {
    let mock = start_mock(&["--records", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let (config, base) = serve_config(dir.path());
    let (mut serve, log) = start_serve(&config, &[]);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &readme_session()])
        .current_dir(REPO)
        .env("API", &base)
        .env("DP", &base)
        .env("MOCK", &mock.url)
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the README session failed:\n{stdout}\n{}\nserve log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        log.lock().unwrap().join("\n")
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("\"result\":true"), "{stdout}");
    assert_eq!(lines[1], "hierarchical", "{stdout}");
    let batch_id = lines[2];
    assert_eq!(lines.last(), Some(&"204"), "{stdout}");
    let batch_dir = dir
        .path()
        .join("data/datasets/members")
        .join(format!("batch={batch_id}"));
    let parts: Vec<_> = std::fs::read_dir(&batch_dir)
        .unwrap_or_else(|err| panic!("{}: {err}", batch_dir.display()))
        .flatten()
        .collect();
    assert!(
        parts
            .iter()
            .any(|p| p.path().extension().is_some_and(|e| e == "parquet")),
        "{}",
        batch_dir.display()
    );

    // Disabled, then deleted: no run of the flow starts afterwards.
    let finished = |log: &Mutex<Vec<String>>| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("run started") && l.contains("flow=members"))
            .count()
    };
    std::thread::sleep(Duration::from_secs(1));
    let before = finished(&log);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        finished(&log),
        before,
        "a run started after the flow was disabled and deleted:\n{}",
        log.lock().unwrap().join("\n")
    );
    assert!(before >= 1);

    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = serve.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
