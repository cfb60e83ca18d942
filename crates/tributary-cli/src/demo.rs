//! `tributary demo`: starts the mock API on a free loopback port, runs the example flow
//! `configs/flows/mailchimp-members.json` against it, and prints where the Parquet is.
//!
//! The demo runs the fixed window `[beginning, 2025-01-01)`, which holds every record the mock
//! serves (they changed during 2024): running the demo again replaces that window's batch
//! instead of adding a second copy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{TimeZone, Utc};
use serde_json::Value;
use tributary_engine::run::{Progress, RunRequest, RunStatus, bundle_flow_id, run_flow};
use tributary_engine::schedule::Window;

use crate::RunFailed;
use crate::cli::CommonArgs;
use crate::context::{load_bundle, load_config, open_engine};

/// The example bundle, relative to the repository root.
const EXAMPLE_BUNDLE: &str = "configs/flows/mailchimp-members.json";
/// Records the demo's mock API serves.
const DEMO_RECORDS: u64 = 25_000;
/// The demo's (made-up) credentials, checked by the mock API.
const DEMO_USER: &str = "demo";
const DEMO_PASSWORD: &str = "demo-password";

pub fn run(common: &CommonArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let bundle_path = example_bundle()?;
    let mut bundle = (*load_bundle(&bundle_path)?).clone();
    let engine = open_engine(&config)?;
    let runtime = crate::run::runtime()?;
    let report = runtime.block_on(async {
        let mock = tributary_mockapi::start(
            tributary_mockapi::MockConfig {
                records: DEMO_RECORDS,
                auth: tributary_mockapi::MockAuth::Basic {
                    username: DEMO_USER.to_owned(),
                    password: tributary_mockapi::Secret::new(DEMO_PASSWORD),
                },
                ..Default::default()
            },
            ([127, 0, 0, 1], 0).into(),
        )
        .await
        .context("starting the mock API")?;
        println!(
            "mock API listening on {} ({DEMO_RECORDS} Mailchimp-like members)",
            mock.base_url()
        );
        // Point the example's base connection at the mock API.
        let params = &mut bundle.base.params;
        params.insert("host".to_owned(), Value::String(mock.base_url()));
        params.insert("username".to_owned(), Value::String(DEMO_USER.to_owned()));
        params.insert(
            "password".to_owned(),
            Value::String(DEMO_PASSWORD.to_owned()),
        );
        let bundle = Arc::new(bundle);
        let window = Window {
            start: None,
            end: Utc
                .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                .single()
                .context("demo window end")?,
        };
        let progress = Arc::new(Progress::default());
        let ticker = crate::run::spawn_progress(progress.clone(), &bundle.name);
        let request = RunRequest {
            flow_id: bundle_flow_id(&bundle.name),
            bundle: bundle.clone(),
            window: Some(window),
            progress,
        };
        let report = run_flow(&engine, request).await;
        ticker.finish();
        let _ = mock.shutdown().await;
        Ok::<_, anyhow::Error>(report?)
    })?;

    if report.status != RunStatus::Success {
        return Err(RunFailed(format!(
            "the demo run failed: {}",
            report.error.as_deref().unwrap_or("unknown cause")
        ))
        .into());
    }
    let m = &report.metrics;
    println!(
        "ran flow mailchimp-members: {} records read, {} written in {} file(s), {:.1} MB of JSON -> {:.1} MB of Parquet",
        m.records_read,
        m.records_written,
        m.files_out,
        m.bytes_in as f64 / 1e6,
        m.bytes_out as f64 / 1e6
    );
    println!("parquet: {}", report.batch_dir.display());
    for file in &report.files {
        println!("  {}", config.data_dir.join(file).display());
    }
    let glob = config
        .data_dir
        .join("datasets/mailchimp-members/**/*.parquet");
    println!(
        "read it: duckdb -c \"SELECT status, count(*) FROM '{}' GROUP BY status\"",
        glob.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Finds the example bundle from the working directory, else from the source tree this binary
/// was built from.
fn example_bundle() -> anyhow::Result<PathBuf> {
    let here = Path::new(EXAMPLE_BUNDLE);
    if here.is_file() {
        return Ok(here.to_owned());
    }
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(EXAMPLE_BUNDLE);
    if source_tree.is_file() {
        return Ok(source_tree);
    }
    anyhow::bail!("cannot find {EXAMPLE_BUNDLE}: run the demo from the repository root")
}
