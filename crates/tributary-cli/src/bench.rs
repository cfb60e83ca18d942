//! `tributary bench`: the full pipeline against the mock API on loopback, with figures.
//!
//! The mock API runs in a child process (`tributary mock-api`), so the peak RSS reported is the
//! pipeline's own. State and data go to a scratch folder that is removed afterwards (unless
//! `--data-dir` / `--state-dir` name one). Prints records/s, MB/s of JSON consumed, peak RSS and
//! the busy time of each stage; `--json` prints the same as one JSON object.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;
use tributary_engine::run::{Progress, RunRequest, RunStatus, bundle_flow_id, run_flow};

use crate::cli::{BenchArgs, BenchPagination, CommonArgs};
use crate::context::{load_config, open_engine};
use crate::{BadInput, RunFailed};

pub fn run(common: &CommonArgs, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let scratch = std::env::temp_dir().join(format!("tributary-bench-{}", std::process::id()));
    let mut config = load_config(common)?;
    if common.data_dir.is_none() {
        config.data_dir = scratch.join("data");
    }
    if common.state_dir.is_none() {
        config.state_dir = scratch.join("state");
    }
    let mock = MockProcess::spawn(args.records)?;
    let bundle_text = bench_bundle(
        args.pagination,
        args.page_size.get(),
        &mock.base_url,
        args.mapped,
    )?;
    let bundle = tributary_spec::load_bundle("bench bundle", &bundle_text, |_, _| {
        Err("the bench bundle is self-contained".to_owned())
    })
    .map_err(|err| BadInput(err.to_string()))?;
    let bundle = Arc::new(bundle);
    let engine = open_engine(&config)?;
    let runtime = crate::run::runtime()?;

    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let report = runtime.block_on(async {
        let ticker = crate::run::spawn_progress(progress.clone(), "bench");
        let request = RunRequest {
            flow_id: bundle_flow_id(&bundle.name),
            bundle: bundle.clone(),
            window: None,
            progress,
        };
        let report = run_flow(&engine, request).await;
        ticker.finish();
        report
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    drop(mock);
    drop(engine);
    if common.data_dir.is_none() && common.state_dir.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if report.status != RunStatus::Success {
        return Err(RunFailed(format!(
            "the bench run failed: {}",
            report.error.as_deref().unwrap_or("unknown cause")
        ))
        .into());
    }

    let m = &report.metrics;
    let peak_rss_mb = peak_rss_bytes().map(|bytes| bytes as f64 / (1024.0 * 1024.0));
    let figures = json!({
        "records": m.records_written,
        "pagination": format!("{:?}", args.pagination).to_lowercase(),
        "pageSize": args.page_size.get(),
        "mapped": args.mapped,
        "seconds": elapsed,
        "recordsPerSecond": m.records_written as f64 / elapsed,
        "jsonMegabytes": m.bytes_in as f64 / 1e6,
        "jsonMegabytesPerSecond": m.bytes_in as f64 / 1e6 / elapsed,
        "parquetMegabytes": m.bytes_out as f64 / 1e6,
        "peakRssMegabytes": peak_rss_mb,
        "pages": m.pages,
        "stageSeconds": {
            "fetchWait": m.fetch_wait.as_secs_f64(),
            "decode": m.decode.as_secs_f64(),
            "map": m.map.as_secs_f64(),
            "encode": m.encode.as_secs_f64(),
            "write": m.write.as_secs_f64(),
        },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("records        {} in {:.2} s", m.records_written, elapsed);
    println!(
        "throughput     {:.0} records/s, {:.1} MB/s of JSON",
        m.records_written as f64 / elapsed,
        m.bytes_in as f64 / 1e6 / elapsed
    );
    println!(
        "sizes          {:.1} MB JSON -> {:.1} MB Parquet in {} pages",
        m.bytes_in as f64 / 1e6,
        m.bytes_out as f64 / 1e6,
        m.pages
    );
    match peak_rss_mb {
        Some(mb) => println!("peak RSS       {mb:.1} MB"),
        None => println!("peak RSS       unknown (no /proc/self/status)"),
    }
    println!(
        "stage busy     fetch wait {:.2} s, decode {:.2} s, map {:.2} s, encode {:.2} s, write {:.2} s",
        m.fetch_wait.as_secs_f64(),
        m.decode.as_secs_f64(),
        m.map.as_secs_f64(),
        m.encode.as_secs_f64(),
        m.write.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The mock API in a child process; killed on drop.
struct MockProcess {
    child: Child,
    base_url: String,
}

impl MockProcess {
    fn spawn(records: u64) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the tributary binary")?;
        let mut child = Command::new(exe)
            .args([
                "mock-api",
                "--port",
                "0",
                "--no-compression",
                "--records",
                &records.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the mock API process")?;
        let stdout = child.stdout.take().context("the mock API's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the mock API's address")?;
        let Some(base_url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            anyhow::bail!("the mock API did not start: {line:?}");
        };
        Ok(Self {
            base_url: base_url.to_owned(),
            child,
        })
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident set size of this process (VmHWM).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A self-contained bundle for the mock API in the requested pagination style.
pub fn bench_bundle(
    pagination: BenchPagination,
    page_size: u32,
    base_url: &str,
    mapped: bool,
) -> anyhow::Result<String> {
    let (path, content, paging) = match pagination {
        BenchPagination::Offset => (
            "/3.0/lists/bench/members",
            "$.members",
            json!({"type": "OFFSET", "limitName": "count", "limitValue": page_size, "offSetName": "offset"}),
        ),
        BenchPagination::Page => (
            "/page/members",
            "$.items",
            json!({"type": "PAGE", "limitName": "pageSize", "limitValue": page_size, "pageParamName": "page",
                   "initialPageIndex": 0, "endPageIndex": "headers.x-pagecount"}),
        ),
        BenchPagination::Cursor => (
            "/cursor/members",
            "$.data",
            json!({"type": "CONTINUATION_TOKEN", "limitName": "limit", "limitValue": page_size,
                   "continuationTokenPath": "$.meta.after_cursor", "parameterType": "QUERYPARAM", "parameterName": "cursor"}),
        ),
        BenchPagination::Pointer => (
            "/pointer/members",
            "$.results",
            json!({"type": "POINTER", "limitName": "limit", "limitValue": page_size, "pointerPath": "$.paging.next"}),
        ),
    };
    let mut bundle = json!({
        "name": "bench",
        "connectionSpec": {
            "name": "bench source",
            "providerId": tributary_spec::GENERIC_REST_PROVIDER_ID,
            "version": "1.0",
            "authSpec": [{"name": "Basic Authentication", "type": "BasicAuthentication", "spec": {
                "type": "object",
                "properties": {"host": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
                "required": ["host", "username", "password"]}}],
            "sourceSpec": {"attributes": {
                "urlParams": {"path": path, "method": "GET"},
                "contentPath": {"path": content},
                "paginationParams": paging,
            }},
        },
        "baseConnection": {"auth": {"specName": "Basic Authentication", "params": {"host": base_url, "username": "bench", "password": "bench"}}},
        "sourceConnection": {"params": {}},
        "targetConnection": {"params": {"dataSetId": "bench"}},
    });
    if mapped {
        let mapping_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs/mappings/mailchimp-members.json");
        let text = std::fs::read_to_string(&mapping_path).with_context(|| {
            format!("reading the example mapping set {}", mapping_path.display())
        })?;
        bundle["mappingSet"] = serde_json::from_str(&text)?;
    }
    Ok(bundle.to_string())
}
