//! `tributary explore BUNDLE`: the first page as the source returned it (like the Flow Service
//! explore response, `{"data": [page]}`) and the record schema inferred from it.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::BadInput;
use crate::cli::{CommonArgs, ExploreArgs};
use crate::context::{fetch_settings, load_bundle, load_config};

pub fn run(common: &CommonArgs, args: &ExploreArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let bundle = load_bundle(&args.bundle)?;
    let runtime = crate::run::runtime()?;
    let page = runtime.block_on(async {
        let fetch = tributary_fetch::FetchContext::try_new(
            tributary_fetch::Limiters::new(),
            fetch_settings(&config),
        )?;
        let env = |name: &str| std::env::var(name).ok();
        let plan = tributary_fetch::FetchPlan::from_bundle(&bundle, None, &env, None)
            .map_err(|err| BadInput(err.to_string()))?
            .with_raw_bodies();
        let mut run = tributary_fetch::fetch_pages(&fetch, plan);
        let first = run.pages.recv().await;
        run.task.abort();
        match first {
            None => anyhow::bail!("the fetcher stopped before the first page (internal error)"),
            Some(Err(err)) => Err(anyhow::Error::new(err).context("fetching the first page")),
            Some(Ok(tributary_fetch::FetchEvent::End(_))) => {
                anyhow::bail!("the source returned no page")
            }
            Some(Ok(tributary_fetch::FetchEvent::Page(page))) => Ok(page),
        }
    })?;

    let raw_body = page.body.clone().unwrap_or_default();
    let body: serde_json::Value =
        serde_json::from_slice(&raw_body).context("the first page is not JSON")?;
    let schema = tributary_transform::decode::infer_schema(&page.records, 1000)
        .map_err(|err| anyhow::anyhow!("inferring the record schema: {err}"))?;
    if args.json {
        let columns: Vec<serde_json::Value> = schema
            .fields()
            .iter()
            .map(|field| serde_json::json!({"name": field.name(), "type": field.data_type().to_string()}))
            .collect();
        let response =
            serde_json::json!({"format": "json", "schema": {"columns": columns}, "data": [body]});
        println!("{}", serde_json::to_string_pretty(&response)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({"data": [body]}))?
    );
    println!();
    println!(
        "{} records on the first page ({} bytes, {})",
        page.record_count, page.body_len, page.url
    );
    let width = schema
        .fields()
        .iter()
        .map(|f| f.name().len())
        .max()
        .unwrap_or(4)
        .max(6);
    println!("{:<width$}  type", "column");
    println!("{:-<width$}  ----", "");
    for field in schema.fields() {
        println!("{:<width$}  {}", field.name(), field.data_type());
    }
    Ok(ExitCode::SUCCESS)
}
