//! Three `tributary serve` nodes on one Postgres state (the server of scripts/test) share 30
//! flows against the mock API; only node-1 reads them from `flows_dir`, the others find them in
//! state. node-1 is killed with SIGKILL while it runs windows. Then: every window of every flow
//! ran (contiguous windows from the first slot on, all complete but the ones the final stop
//! interrupted), every record is published exactly once (Parquet read back), and no window
//! ran on two nodes — from the runs in state (a window's runs on two nodes only as node-1's
//! run cut by the kill and a later resume elsewhere) and from the mock's request log (a page is
//! requested twice only in a window node-1 was running when it died).

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_state::{CheckpointStatus, Db, RunStatus, StateOptions};

use crate::backfill::{assert_each_id_once, bundle_json, published_id_counts, start_mock};
use crate::daemon::Daemon;
use crate::postgres::fresh_schema_url;

const FLOWS: usize = 30;
const RECORDS: usize = 120;
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn flow_name(idx: usize) -> String {
    format!("cluster-{idx:02}")
}

/// `GET path` on a node's API (no credentials: `/health` and `/metrics` need none here).
pub(crate) fn get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        // HTTP/1.0: the answer has no chunked encoding and ends with the connection.
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    body.to_owned()
}

/// Writes the bundle of flow `name` into `flows_dir`: the mock's members of list `name` (a list
/// per flow, so the mock's log tells the flows apart), 10 to a page, one page at a time (so a
/// resumed window re-requests only what was in flight at a kill), on `schedule`.
fn write_list_flow(flows_dir: &std::path::Path, name: &str, mock_url: &str, schedule: &Value) {
    let text = bundle_json(name, mock_url, name, 10, Some(schedule.clone()));
    let mut bundle: Value = serde_json::from_str(&text).unwrap();
    bundle["connectionSpec"]["sourceSpec"]["attributes"]["urlParams"]["path"] =
        json!(format!("/3.0/lists/{name}/members"));
    bundle["flow"]["options"] = json!({"maxConcurrentRequests": 1});
    std::fs::write(flows_dir.join(format!("{name}.json")), bundle.to_string()).unwrap();
}

/// The address of a node's API from its `HTTP API listening` line.
fn listen_addr(node: &mut Daemon) -> String {
    let idx = node.wait_for_line("the API address", |l| l.contains("HTTP API listening"));
    let line = &node.seen[idx];
    let start = line.find("http://").unwrap() + "http://".len();
    line[start..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn three_nodes_share_thirty_flows_and_a_killed_nodes_windows_resume_elsewhere() {
    let state_url = fresh_schema_url();
    // 12 pages of 10 records a flow's first window, 30 ms each: a run lasts about half a second.
    let mock = start_mock(&[
        "--records",
        &RECORDS.to_string(),
        "--start-time",
        "2024-01-01T00:00:00Z",
        "--latency",
        "30ms",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let flows_dir = dir.path().join("flows");
    std::fs::create_dir(&flows_dir).unwrap();
    let start_time = chrono::Utc::now().timestamp() - 1;
    // A slot every two seconds: the first window takes all history, the later ones are empty.
    let schedule = json!({"startTime": start_time, "frequency": "hour", "interval": 1, "backfill": true,
                          "cron": "*/2 * * * * *"});
    for idx in 0..FLOWS {
        write_list_flow(&flows_dir, &flow_name(idx), &mock.url, &schedule);
    }
    let data_dir = dir.path().join("data");
    let config = |node: usize| {
        let path = dir.path().join(format!("node-{node}.toml"));
        let flows_line = if node == 1 {
            format!("flows_dir = {flows_dir:?}\n")
        } else {
            String::new()
        };
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\ndata_dir = {data_dir:?}\n{flows_line}\
                 [limits]\nmax_concurrent_runs = 3\n\
                 [scheduler]\nlease_ttl_secs = 2\nnode_id = \"node-{node}\"\nshutdown_grace_secs = 5\nrun_history = 1000\n\
                 [state]\nbackend = \"postgres\"\nurl = {state_url:?}\n",
                dir.path().join(format!("state-{node}")),
            ),
        )
        .unwrap();
        path
    };
    let env = [("TRIBUTARY_CHECKPOINT_ROWS", "10")];
    let mut node_1 = Daemon::start_with_env(&config(1), &env);
    node_1.wait_for_line("node-1's scheduler", |l| l.contains("scheduler started"));
    let mut node_2 = Daemon::start_with_env(&config(2), &env);
    let mut node_3 = Daemon::start_with_env(&config(3), &env);
    let api_2 = listen_addr(&mut node_2);
    listen_addr(&mut node_3);

    // Kill node-1 in the middle of a run.
    node_1.wait_for_line("a run on node-1", |l| l.contains("run started"));
    std::thread::sleep(Duration::from_millis(150));
    let killed_at_ms = chrono::Utc::now().timestamp_millis();
    let log_1 = node_1.kill();
    // The nodes without flows_dir found the flows in state.
    node_2.wait_for_line("a run on node-2", |l| l.contains("run started"));

    // Everything gets published, node-1's interrupted windows included (after its 2 s TTL).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let incomplete: Vec<String> = (0..FLOWS)
            .map(flow_name)
            .filter(|name| published_id_counts(&data_dir, name).len() < RECORDS)
            .collect();
        if incomplete.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flows not fully published after 40 s: {incomplete:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Node-2 knows the live nodes and what it holds, and says so.
    let health: Value = serde_json::from_str(&get(&api_2, "/health")).unwrap();
    assert_eq!(health["node"]["id"], "node-2", "{health}");
    let live: HashSet<&str> = health["node"]["liveNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap())
        .collect();
    assert_eq!(live, HashSet::from(["node-2", "node-3"]), "{health}");
    let metrics = get(&api_2, "/metrics");
    assert!(
        metrics.contains("tributary_node_leases_held{node=\"node-2\"}")
            && metrics.contains("tributary_cluster_nodes_live{node=\"node-2\"} 2"),
        "{metrics}"
    );
    // A few more slots, then a graceful stop of the survivors.
    std::thread::sleep(Duration::from_secs(3));
    let (status_2, log_2) = node_2.terminate();
    let (status_3, log_3) = node_3.terminate();
    assert_eq!(status_2.code(), Some(0), "{}", log_2.join("\n"));
    assert_eq!(status_3.code(), Some(0), "{}", log_3.join("\n"));

    for idx in 0..FLOWS {
        assert_each_id_once(&data_dir, &flow_name(idx), RECORDS);
    }

    // The runs in state.
    let db = Db::open_postgres(
        &tributary_state::PostgresUrl::parse(&state_url).unwrap(),
        StateOptions {
            secret_key: Some(tributary_state::SecretKey::from_base64(SECRET_KEY).unwrap()),
            ..StateOptions::default()
        },
    )
    .unwrap();
    let mut resumed_elsewhere = 0;
    let mut flows_cut_by_the_kill: HashSet<String> = HashSet::new();
    let mut flows_handed_over: HashSet<String> = HashSet::new();
    let mut nodes_that_ran: HashSet<String> = HashSet::new();
    // Per flow, its runs as (node, status, started at, window end): what a failure shows.
    let mut runs_of: HashMap<String, Vec<String>> = HashMap::new();
    for idx in 0..FLOWS {
        let name = flow_name(idx);
        let flow_id = tributary_engine::run::bundle_flow_id(&name);
        let windows = db.windows_for_flow(&flow_id).unwrap();
        assert!(windows.len() >= 2, "{name}: {windows:?}");
        assert_eq!(
            windows[0].window.start_ms, None,
            "{name}: the first window takes all history"
        );
        for pair in windows.windows(2) {
            assert_eq!(
                pair[1].window.start_ms, pair[0].window.end_ms,
                "{name}: windows are contiguous: {windows:?}"
            );
        }
        // Only the windows the graceful stop interrupted may be unfinished.
        let unfinished = windows
            .iter()
            .filter(|w| w.status != CheckpointStatus::Complete)
            .count();
        assert!(unfinished <= 1, "{name}: {windows:?}");
        if let Some(last_incomplete) = windows
            .iter()
            .position(|w| w.status != CheckpointStatus::Complete)
        {
            assert_eq!(last_incomplete, windows.len() - 1, "{name}: {windows:?}");
        }

        let runs = db.runs_for_flow(&flow_id, 10_000).unwrap();
        for run in &runs {
            let end = run.window.unwrap().end_ms;
            nodes_that_ran.insert(run.run_doc["node"].as_str().unwrap().to_owned());
            runs_of.entry(name.clone()).or_default().push(format!(
                "{} {:?} started {} window end {end}",
                run.run_doc["node"], run.status, run.started_at_ms
            ));
        }
        for summary in windows
            .iter()
            .filter(|w| w.status == CheckpointStatus::Complete)
        {
            let end = summary.window.end_ms.unwrap();
            // The runs of this window: those whose window ends inside it. A run cut by the kill
            // may end before it: a node resuming an open window continues it up to the slot
            // that is due by then.
            let window_runs: Vec<&tributary_state::RunRecord> = runs
                .iter()
                .filter(|run| {
                    let run_end = run.window.unwrap().end_ms;
                    summary.window.start_ms.is_none_or(|start| run_end > start) && run_end <= end
                })
                .collect();
            let successes: Vec<_> = window_runs
                .iter()
                .filter(|run| run.status == RunStatus::Success)
                .collect();
            // One success; none only when node-1 died after completing the window and before
            // recording its run as finished (its run then stays in progress).
            let cut_after_commit = successes.is_empty()
                && window_runs.len() == 1
                && window_runs[0].run_doc["node"] == "node-1"
                && window_runs[0].status == RunStatus::InProgress;
            assert!(
                successes.len() == 1 || cut_after_commit,
                "{name}: window ending {end}: {window_runs:?}"
            );
            let nodes: HashSet<&str> = window_runs
                .iter()
                .map(|run| run.run_doc["node"].as_str().unwrap())
                .collect();
            if nodes.len() > 1 {
                // Only node-1's run, cut by the kill, and one run elsewhere that started after.
                let cut: Vec<_> = window_runs
                    .iter()
                    .filter(|run| run.run_doc["node"] == "node-1")
                    .collect();
                assert!(
                    cut.len() == 1
                        && cut[0].status == RunStatus::InProgress
                        && cut[0].started_at_ms < killed_at_ms,
                    "{name}: window ending {end} ran on {nodes:?}: {window_runs:?}"
                );
                assert!(
                    successes[0].started_at_ms > killed_at_ms,
                    "{name}: the resume started after the kill: {window_runs:?}"
                );
            }
        }
        // A flow node-1 was running when it died: its run stays in progress, and every window
        // of the flow was completed (checked above) by the other nodes, after the kill.
        let cut_runs: Vec<_> = runs
            .iter()
            .filter(|run| run.run_doc["node"] == "node-1" && run.status == RunStatus::InProgress)
            .collect();
        // A run the graceful stop of node-2 cancelled may be resumed by node-3 before node-3
        // stops too: its window's pages after the last checkpoint are asked for again.
        if runs.iter().any(|run| run.status == RunStatus::Cancelled) {
            flows_handed_over.insert(name.clone());
        }
        if !cut_runs.is_empty() {
            assert!(
                cut_runs.len() == 1 && cut_runs[0].started_at_ms < killed_at_ms,
                "{name}: {:?}",
                runs_of.get(&name)
            );
            let cut_end = cut_runs[0].window.unwrap().end_ms;
            let resumed = runs.iter().any(|run| {
                run.run_doc["node"] != "node-1"
                    && run.status == RunStatus::Success
                    && run.started_at_ms > killed_at_ms
                    && run.window.unwrap().end_ms >= cut_end
            });
            assert!(
                resumed,
                "{name}: the cut window was not finished elsewhere: {:?}",
                runs_of.get(&name)
            );
            resumed_elsewhere += 1;
            flows_cut_by_the_kill.insert(name.clone());
        }
    }
    assert!(
        resumed_elsewhere >= 1,
        "no window of node-1 was resumed by another node (killed at {killed_at_ms}); runs of the flows node-1 ran: {:#?}; node-1's log:\n{}",
        runs_of
            .iter()
            .filter(|(_, runs)| runs.iter().any(|run| run.contains("node-1")))
            .collect::<HashMap<_, _>>(),
        log_1.join("\n")
    );
    assert_eq!(
        nodes_that_ran,
        HashSet::from([
            "node-1".to_owned(),
            "node-2".to_owned(),
            "node-3".to_owned()
        ]),
        "every node ran windows"
    );

    // The mock's request log: each page of each window was asked for once, except the pages a
    // resumed window asked for again (those after its last checkpoint).
    let stats: Value =
        serde_json::from_str(&get(mock.url.strip_prefix("http://").unwrap(), "/stats")).unwrap();
    let mut requested: HashMap<(String, String), u32> = HashMap::new();
    for record in stats["log"].as_array().unwrap() {
        let path = record["path"].as_str().unwrap();
        if path.starts_with("/3.0/lists/cluster-") {
            *requested
                .entry((
                    path.to_owned(),
                    record["query"].as_str().unwrap().to_owned(),
                ))
                .or_default() += 1;
        }
    }
    assert!(
        requested.len() >= FLOWS * (RECORDS / 10),
        "{}",
        requested.len()
    );
    let mut again_per_flow: HashMap<String, u32> = HashMap::new();
    for ((path, query), n) in &requested {
        if *n > 1 {
            let flow = path.split('/').nth(3).unwrap().to_owned();
            assert_eq!(*n, 2, "{path}?{query} asked for {n} times");
            assert!(
                flows_cut_by_the_kill.contains(&flow) || flows_handed_over.contains(&flow),
                "{path}?{query} asked for twice, but no run of {flow} was cut by the kill (at {killed_at_ms}) or handed over at a graceful stop; its runs: {:?}",
                runs_of.get(&flow)
            );
            *again_per_flow.entry(flow).or_default() += 1;
        }
    }
    // The pages fetched ahead of the last checkpoint are asked for again, never the whole
    // window (12 pages of records and the empty end page): the resume started from a checkpoint.
    let pages_per_window = (RECORDS / 10 + 1) as u32;
    for (flow, again) in &again_per_flow {
        assert!(
            *again < pages_per_window,
            "{flow}: {again} of the window's {pages_per_window} pages asked for again after the resume"
        );
    }
}

/// Two nodes on one Postgres run flows against one host limited to 10 requests a second: each
/// takes its share, so the host sees about 10 a second in all, not 10 from each node.
#[test]
fn two_nodes_share_a_hosts_rate_limit() {
    const RATE: f64 = 10.0;
    const LIMITED_FLOWS: usize = 4;
    const LIMITED_RECORDS: usize = 250;
    let state_url = fresh_schema_url();
    let mock = start_mock(&[
        "--records",
        &LIMITED_RECORDS.to_string(),
        "--start-time",
        "2024-01-01T00:00:00Z",
    ]);
    let host = mock.url.strip_prefix("http://").unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let flows_dir = dir.path().join("flows");
    std::fs::create_dir(&flows_dir).unwrap();
    let start_time = chrono::Utc::now().timestamp() - 1;
    let schedule = json!({"startTime": start_time, "frequency": "hour", "interval": 1, "backfill": true,
                          "cron": "*/5 * * * * *"});
    for idx in 0..LIMITED_FLOWS {
        write_list_flow(&flows_dir, &format!("limited-{idx}"), &mock.url, &schedule);
    }
    let data_dir = dir.path().join("data");
    let config = |node: usize| {
        let path = dir.path().join(format!("node-{node}.toml"));
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\ndata_dir = {data_dir:?}\nflows_dir = {flows_dir:?}\n\
                 [limits]\nmax_concurrent_runs = 2\n\
                 [limits.hosts.{host:?}]\nrequests_per_second = {RATE}\nburst = 2\n\
                 [scheduler]\nlease_ttl_secs = 3\nnode_id = \"node-{node}\"\n\
                 [state]\nbackend = \"postgres\"\nurl = {state_url:?}\n",
                dir.path().join(format!("state-{node}")),
            ),
        )
        .unwrap();
        path
    };
    let mut node_1 = Daemon::start_with_env(&config(1), &[]);
    let mut node_2 = Daemon::start_with_env(&config(2), &[]);
    let api_1 = listen_addr(&mut node_1);
    let api_2 = listen_addr(&mut node_2);

    // While both run flows, each says the host is shared by two nodes, at half the rate.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = [false, false];
    let mut last = [Value::Null, Value::Null];
    while seen != [true, true] {
        for (idx, api) in [&api_1, &api_2].into_iter().enumerate() {
            let health: Value = serde_json::from_str(&get(api, "/health")).unwrap();
            let shares = &health["node"]["hostShares"];
            last[idx] = health["node"].clone();
            if shares
                .as_array()
                .is_some_and(|shares| shares.iter().any(|s| s["nodes"] == 2))
            {
                assert_eq!(shares[0]["origin"], json!(mock.url), "{health}");
                assert_eq!(
                    shares[0]["requestsPerSecond"],
                    json!(RATE / 2.0),
                    "{health}"
                );
                seen[idx] = true;
            }
        }
        if Instant::now() > deadline {
            let (_, log_1) = node_1.terminate();
            let (_, log_2) = node_2.terminate();
            panic!(
                "the nodes never shared the host: {seen:?}; last said {last:?}\n{}\n{}",
                log_1.join("\n"),
                log_2.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..LIMITED_FLOWS).any(|idx| {
        published_id_counts(&data_dir, &format!("limited-{idx}")).len() < LIMITED_RECORDS
    }) {
        assert!(Instant::now() < deadline, "flows not published after 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status_1, log_1) = node_1.terminate();
    let (status_2, log_2) = node_2.terminate();
    assert_eq!(status_1.code(), Some(0), "{}", log_1.join("\n"));
    assert_eq!(status_2.code(), Some(0), "{}", log_2.join("\n"));
    for idx in 0..LIMITED_FLOWS {
        assert_each_id_once(&data_dir, &format!("limited-{idx}"), LIMITED_RECORDS);
    }
    let ran_on = |log: &[String]| log.iter().any(|line| line.contains("run started"));
    assert!(ran_on(&log_1) && ran_on(&log_2), "both nodes ran flows");

    // The host's view: the most requests in any 4 s, against 4 s at the configured rate. Each
    // node alone at the full rate would give twice that; the margin covers the bursts and the
    // second in which a node that just started calling is not yet seen by the other.
    let stats: Value = serde_json::from_str(&get(&host, "/stats")).unwrap();
    let mut at_ms: Vec<f64> = stats["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| {
            record["path"]
                .as_str()
                .is_some_and(|path| path.starts_with("/3.0/lists/limited-"))
        })
        .map(|record| record["at"].as_f64().unwrap())
        .collect();
    at_ms.sort_by(f64::total_cmp);
    let pages = LIMITED_FLOWS * (LIMITED_RECORDS / 10 + 1);
    assert!(at_ms.len() >= pages, "{} requests", at_ms.len());
    let window_ms = 4_000.0;
    let busiest = at_ms
        .iter()
        .enumerate()
        .map(|(first, start)| {
            at_ms[first..]
                .iter()
                .take_while(|at| **at < start + window_ms)
                .count()
        })
        .max()
        .unwrap();
    let allowed = (RATE * 4.0 * 1.3) as usize;
    assert!(
        busiest <= allowed,
        "{busiest} requests in the busiest 4 s (the host allows {RATE}/s, so at most {allowed}); \
         the nodes did not share its rate"
    );
}

/// `GET url` with the README's credentials: the status and the body, with the node's own
/// address (in `_links`) replaced by `NODE`.
fn api_get(base: &str, url: &str) -> (u16, String) {
    api_call("GET", base, url)
}

/// [`api_get`] with another method.
fn api_call(method: &str, base: &str, url: &str) -> (u16, String) {
    let text =
        crate::api_e2e::curl_api(&["-X", method, &format!("{base}{url}")]).replace(base, "NODE");
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// The API answers the same on every node: the README's session (up to its step 6) runs with
/// its Flow Service calls on node-1 and its Data Prep calls on node-2 (node-1's flow names
/// node-2's mapping set), its flow's scheduled runs run on either node; the flow is disabled
/// through node-2; then every listing and every entity in them reads the same on both nodes,
/// byte for byte, and a delete answered by node-1 is a 404 on node-2 at once.
#[test]
fn the_api_answers_the_same_on_either_node() {
    let state_url = fresh_schema_url();
    let mock = start_mock(&["--records", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = |node: usize| {
        let path = dir.path().join(format!("node-{node}.toml"));
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\ndata_dir = {data_dir:?}\n\
                 [scheduler]\nlease_ttl_secs = 3\nnode_id = \"node-{node}\"\nshutdown_grace_secs = 5\n\
                 [state]\nbackend = \"postgres\"\nurl = {state_url:?}\n\
                 [[api.orgs]]\norg_id = \"DEMO@AdobeOrg\"\napi_key = \"demo-key\"\n\
                 bearer_token = \"${{env:DEMO_TOKEN}}\"\n",
                dir.path().join(format!("state-{node}")),
            ),
        )
        .unwrap();
        path
    };
    let env = [("DEMO_TOKEN", "demo-token")];
    let mut node_1 = Daemon::start_with_env(&config(1), &env);
    let mut node_2 = Daemon::start_with_env(&config(2), &env);
    let base_1 = format!("http://{}", listen_addr(&mut node_1));
    let base_2 = format!("http://{}", listen_addr(&mut node_2));

    let session = crate::api_e2e::readme_session();
    let session = &session[..session.find("# 6.").expect("the session's step 6")];
    let output = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", session])
        .current_dir(crate::api_e2e::REPO)
        .env("API", &base_1)
        .env("DP", &base_2)
        .env("MOCK", &mock.url)
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let (_, log_1) = node_1.terminate();
        let (_, log_2) = node_2.terminate();
        panic!(
            "the README session across two nodes failed:\n{stdout}\n{}\nnode-1:\n{}\nnode-2:\n{}",
            String::from_utf8_lossy(&output.stderr),
            log_1.join("\n"),
            log_2.join("\n")
        );
    }

    let flows = "/data/foundation/flowservice";
    let (_, listed) = api_get(&base_2, &format!("{flows}/flows"));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let flow_id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let (code, body) = api_call(
        "POST",
        &base_2,
        &format!("{flows}/flows/{flow_id}/action?op=disable"),
    );
    assert_eq!(code, 200, "disabling on node-2: {body}");
    // The runs of the flow settle once none is running any more.
    let runs_url = format!("{flows}/runs?property=flowId=={flow_id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = api_get(&base_1, &runs_url).1;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = api_get(&base_1, &runs_url).1;
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the runs never settled: {now}");
        last = now;
    }

    let mut urls: Vec<String> = [
        "connectionSpecs",
        "flowSpecs",
        "connections",
        "sourceConnections",
        "targetConnections",
        "flows",
        "runs",
    ]
    .iter()
    .map(|kind| format!("{flows}/{kind}"))
    .collect();
    urls.push("/data/foundation/conversion/mappingSets".to_owned());
    let mut compared = HashMap::new();
    for list_url in &urls {
        let (code_1, list_1) = api_get(&base_1, list_url);
        let (code_2, list_2) = api_get(&base_2, list_url);
        assert_eq!(
            (code_1, code_2),
            (200, 200),
            "{list_url}: {list_1} / {list_2}"
        );
        assert_eq!(list_1, list_2, "{list_url} differs between the nodes");
        let list: Value = serde_json::from_str(&list_1).unwrap();
        let items = list["items"].as_array().or(list["data"].as_array());
        let items = items.unwrap_or_else(|| panic!("{list_url}: no items in {list_1}"));
        for item in items {
            let id = item["id"].as_str().unwrap();
            let url = format!("{list_url}/{id}");
            let (code_1, body_1) = api_get(&base_1, &url);
            let (code_2, body_2) = api_get(&base_2, &url);
            assert_eq!(code_1, 200, "{url}: {body_1}");
            assert_eq!(
                (code_2, body_2),
                (code_1, body_1),
                "{url} differs between the nodes"
            );
            *compared
                .entry(list_url.rsplit('/').next().unwrap())
                .or_insert(0) += 1;
        }
    }
    // Everything the session made, and the flow's runs, were there to compare.
    for kind in [
        "connections",
        "sourceConnections",
        "targetConnections",
        "flows",
        "runs",
        "mappingSets",
    ] {
        assert!(
            compared.get(kind).copied().unwrap_or(0) >= 1,
            "no {kind} compared: {compared:?}"
        );
    }
    let (_, flow) = api_get(&base_1, &format!("{flows}/flows/{flow_id}"));
    assert!(
        flow.contains(r#""state":"disabled""#),
        "node-2's disable on node-1: {flow}"
    );

    let (code, body) = api_call("DELETE", &base_1, &format!("{flows}/flows/{flow_id}"));
    assert_eq!(code, 204, "deleting on node-1: {body}");
    let (code, body) = api_get(&base_2, &format!("{flows}/flows/{flow_id}"));
    assert_eq!(code, 404, "node-1's delete on node-2: {body}");
    let (status_1, log_1) = node_1.terminate();
    let (status_2, log_2) = node_2.terminate();
    assert_eq!(status_1.code(), Some(0), "{}", log_1.join("\n"));
    assert_eq!(status_2.code(), Some(0), "{}", log_2.join("\n"));
}
