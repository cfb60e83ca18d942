//! `tributary bench`: the full pipeline against the mock API on loopback, with figures.
//!
//! The mock API runs in a child process (`tributary mock-api`, with `--latency` and
//! `--rate-limit` passed on), so the peak RSS and CPU time reported are the pipeline's own.
//! State and data go to a scratch folder that is removed afterwards (unless `--data-dir` /
//! `--state-dir` name one). Prints records/s, MB/s of JSON consumed, peak RSS, the busy time of
//! each stage, the CPU time per record of each stage, the concurrency reached and why it stopped
//! growing, how many cores were busy on average (this process and the mock API), the requests in
//! flight over time (sampled every 10 ms while pages were being fetched: min / p50 / max), and what
//! the mock API saw (requests, 429 answers, share of its quota used); `--json` prints the same as
//! one JSON object.
//!
//! CPU time: the decode stage's threads (with its decode workers) and the encode stage's are
//! measured by the engine; the rest of the process's CPU time (from `/proc/self/stat`) is the fetch
//! side: HTTP, record location and the async runtime. Figures the platform cannot give are reported
//! as unknown.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tributary_engine::run::{Progress, RunRequest, RunStatus, bundle_flow_id, run_flow};

use crate::cli::{BenchArgs, BenchConcurrency, BenchPagination, CommonArgs};
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
    let mock = MockProcess::spawn(args)?;
    let mut bundle_text = bench_bundle(
        args.pagination,
        args.page_size.get(),
        &mock.base_url,
        args.mapped,
    )?;
    if let BenchConcurrency::Fixed(n) = args.concurrency {
        let mut bundle: serde_json::Value = serde_json::from_str(&bundle_text)?;
        bundle["flow"] = json!({"options": {"maxConcurrentRequests": n.get()}});
        bundle_text = bundle.to_string();
    }
    let bundle = tributary_spec::load_bundle("bench bundle", &bundle_text, |_, _| {
        Err("the bench bundle is self-contained".to_owned())
    })
    .map_err(|err| BadInput(err.to_string()))?;
    let bundle = Arc::new(bundle);
    let mut engine = open_engine(&config)?;
    engine.options = engine.options.clone().using_cores(args.threads.get());
    let decode_workers = engine.options.decode_workers;
    let encode_threads = engine.options.writer.encode_threads.get();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.get())
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let cpu_before = process_cpu();
    let mock_cpu_before = mock.cpu();
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let report = runtime.block_on(async {
        let ticker = crate::run::spawn_progress(progress.clone(), "bench");
        let sampler = spawn_in_flight_sampler(progress.clone(), samples.clone());
        let request = RunRequest {
            flow_id: bundle_flow_id(&bundle.name),
            bundle: bundle.clone(),
            window: None,
            progress,
        };
        let report = run_flow(&engine, request).await;
        sampler.abort();
        ticker.finish();
        report
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let process_cpu_used = match (cpu_before, process_cpu()) {
        (Some(before), Some(after)) => after.checked_sub(before),
        _ => None,
    };
    let mock_stats = mock.stats();
    let mock_cpu_used = match (mock_cpu_before, mock.cpu()) {
        (Some(before), Some(after)) => after.checked_sub(before),
        _ => None,
    };
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
    let in_flight = in_flight_summary(&samples.lock().unwrap_or_else(|p| p.into_inner()), m.pages);
    let records = m.records_written.max(1) as f64;
    let micros_per_record =
        |cpu: Option<Duration>| cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / records);
    let fetch_cpu = match (process_cpu_used, m.decode_stage_cpu, m.encode_stage_cpu) {
        (Some(total), Some(decode), Some(encode)) => {
            Some(total.saturating_sub(decode).saturating_sub(encode))
        }
        _ => None,
    };
    let cpu_per_record = json!({
        "fetch": micros_per_record(fetch_cpu),
        "decodeAndMap": micros_per_record(m.decode_stage_cpu),
        "encodeAndWrite": micros_per_record(m.encode_stage_cpu),
        "process": micros_per_record(process_cpu_used),
    });
    let concurrency = m.concurrency;
    // How many cores were busy on average: this process and the mock API it reads from.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let cores_busy = match (process_cpu_used, mock_cpu_used) {
        (Some(ours), Some(mock)) => Some((ours + mock).as_secs_f64() / elapsed),
        _ => None,
    };
    let quota = quota_figures(args.rate_limit.as_deref(), mock_stats.as_ref(), elapsed);
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
        "cpuMicrosPerRecord": cpu_per_record,
        "cores": cores,
        "coresBusy": cores_busy,
        "mockApiCpuSeconds": mock_cpu_used.map(|cpu| cpu.as_secs_f64()),
        "threads": args.threads.get(),
        "decodeWorkers": decode_workers,
        "encodeThreads": encode_threads,
        "latencyMs": args.latency.map(|latency| latency.as_secs_f64() * 1e3),
        "requests": m.requests,
        "retries": m.retries,
        "concurrency": concurrency.map(|c| json!({
            "setting": match args.concurrency {
                BenchConcurrency::Auto => json!("auto"),
                BenchConcurrency::Fixed(n) => json!(n.get()),
            },
            "reached": c.reached,
            "final": c.limit,
            "ceiling": c.ceiling,
            "maxInFlight": c.max_in_flight,
            "stoppedBy": crate::run::growth_stop_name(c.stop),
            "requestsPastEnd": c.past_end_requests,
        })),
        "inFlight": in_flight.map(|(min, p50, max, n)| json!({"min": min, "p50": p50, "max": max, "samples": n})),
        "mockApi": quota,
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
    let shown_micros = |cpu: Option<Duration>| match micros_per_record(cpu) {
        Some(micros) => format!("{micros:.2} µs"),
        None => "unknown".to_owned(),
    };
    println!(
        "threads        {} async workers, {decode_workers} decode workers, {encode_threads} encode threads",
        args.threads.get()
    );
    println!(
        "cpu/record     fetch {}, decode+map {}, encode+write {}, whole process {}",
        shown_micros(fetch_cpu),
        shown_micros(m.decode_stage_cpu),
        shown_micros(m.encode_stage_cpu),
        shown_micros(process_cpu_used)
    );
    match cores_busy {
        Some(busy) => println!(
            "cores busy     {busy:.2} of {cores} on average (this process and the mock API, which used {:.2} s)",
            mock_cpu_used.unwrap_or_default().as_secs_f64()
        ),
        None => println!("cores busy     unknown (no /proc)"),
    }
    if let Some(c) = concurrency {
        println!(
            "concurrency    reached {} of {} ({}), stopped by {}, at most {} requests in flight, {} requests past the end",
            c.reached,
            c.ceiling,
            match args.concurrency {
                BenchConcurrency::Auto => "auto".to_owned(),
                BenchConcurrency::Fixed(n) => format!("maxConcurrentRequests {n}"),
            },
            crate::run::growth_stop_name(c.stop),
            c.max_in_flight,
            c.past_end_requests
        );
    }
    match in_flight {
        Some((min, p50, max, n)) => println!(
            "in flight      min {min}, p50 {p50}, max {max} ({n} samples every 10 ms while fetching)"
        ),
        None => println!("in flight      no samples (the fetch ended within 10 ms)"),
    }
    println!("requests       {} sent, {} retried", m.requests, m.retries);
    if let Some(stats) = &mock_stats {
        let share = if stats.requests == 0 {
            0.0
        } else {
            stats.rate_limited as f64 * 100.0 / stats.requests as f64
        };
        print!(
            "mock API       {} requests, {} answered 429 ({share:.1}%)",
            stats.requests, stats.rate_limited
        );
        match quota["quotaUsedPercent"].as_f64() {
            Some(used) => println!(", {used:.1}% of its quota used"),
            None => println!(),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the mock API counted, from its `/stats`.
#[derive(Debug, Clone, Copy)]
struct MockStats {
    requests: u64,
    data_requests: u64,
    rate_limited: u64,
}

/// 429 share and quota use: admitted data requests over what the mock's rate allows in the
/// run's wall time (its burst included).
fn quota_figures(
    rate_limit: Option<&str>,
    stats: Option<&MockStats>,
    seconds: f64,
) -> serde_json::Value {
    let Some(stats) = stats else {
        return serde_json::Value::Null;
    };
    let rate_limited_percent = if stats.requests == 0 {
        0.0
    } else {
        stats.rate_limited as f64 * 100.0 / stats.requests as f64
    };
    let quota = rate_limit.and_then(|text| {
        let (rate, burst) = match text.split_once('/') {
            Some((rate, burst)) => (
                rate.trim().parse::<f64>().ok()?,
                burst.trim().parse::<f64>().ok()?,
            ),
            None => {
                let rate = text.trim().parse::<f64>().ok()?;
                (rate, rate)
            }
        };
        Some(rate * seconds + burst)
    });
    json!({
        "requests": stats.requests,
        "dataRequests": stats.data_requests,
        "rateLimited": stats.rate_limited,
        "rateLimitedPercent": rate_limited_percent,
        "quotaUsedPercent": quota.map(|quota| stats.data_requests as f64 * 100.0 / quota),
    })
}

/// Samples the requests in flight every 10 ms, with the pages fetched so far, into `samples`.
fn spawn_in_flight_sampler(
    progress: Arc<Progress>,
    samples: Arc<Mutex<Vec<(u64, u64, u64)>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
            if let Some(stats) = progress.fetch_stats() {
                samples.lock().unwrap_or_else(|p| p.into_inner()).push((
                    stats.requests,
                    stats.pages,
                    stats.concurrency.in_flight,
                ));
            }
        }
    })
}

/// min / p50 / max of the requests in flight over the samples taken while pages were being
/// fetched (after the first request, before the last page), and how many samples that is.
fn in_flight_summary(samples: &[(u64, u64, u64)], pages: u64) -> Option<(u64, u64, u64, usize)> {
    let mut in_flight: Vec<u64> = samples
        .iter()
        .filter(|(requests, fetched, _)| *requests > 0 && *fetched < pages)
        .map(|(_, _, in_flight)| *in_flight)
        .collect();
    if in_flight.is_empty() {
        return None;
    }
    in_flight.sort_unstable();
    let n = in_flight.len();
    Some((in_flight[0], in_flight[n / 2], in_flight[n - 1], n))
}

/// CPU time (user and system) of this process so far, from `/proc/self/stat` (clock ticks at
/// Linux's fixed 100 per second).
fn process_cpu() -> Option<Duration> {
    cpu_from_stat("/proc/self/stat")
}

/// [`process_cpu`] of the process whose `stat` file is at `path`.
fn cpu_from_stat(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// The mock API in a child process; killed on drop.
struct MockProcess {
    child: Child,
    base_url: String,
}

impl MockProcess {
    fn spawn(args: &BenchArgs) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the tributary binary")?;
        let mut command = Command::new(exe);
        command.args([
            "mock-api",
            "--port",
            "0",
            "--no-compression",
            "--records",
            &args.records.to_string(),
        ]);
        if let Some(latency) = args.latency {
            command.args([
                "--latency",
                &humantime::format_duration(latency).to_string(),
            ]);
        }
        if let Some(rate_limit) = &args.rate_limit {
            command.args(["--rate-limit", rate_limit]);
        }
        let mut child = command
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

impl MockProcess {
    /// The CPU time the mock API has used so far.
    fn cpu(&self) -> Option<Duration> {
        cpu_from_stat(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The mock's `/stats` counters (a plain HTTP/1.0 GET on loopback); `None` if it does not
    /// answer.
    fn stats(&self) -> Option<MockStats> {
        let address = self.base_url.strip_prefix("http://")?.trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET /stats HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let body = answer.split_once("\r\n\r\n")?.1;
        let stats: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(MockStats {
            requests: stats["requests"].as_u64()?,
            data_requests: stats["data_requests"].as_u64()?,
            rate_limited: stats["rate_limited"].as_u64()?,
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
