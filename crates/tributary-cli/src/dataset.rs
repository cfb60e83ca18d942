//! `tributary dataset ls` and `tributary dataset schema ID [--json]`: the datasets in state
//! with their published batches, rows and bytes (a table that fits 80 columns), and one
//! dataset's schema with the batch, run and time each column appeared in.
//!
//! Read-only: opens the state store and nothing else (no recovery, no HTTP client). Counts only
//! `Success` batches, the ones a reader of the dataset sees.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::DateTime;
use serde_json::{Value, json};
use tributary_state::{BatchStatus, ColumnChange, DatasetId, DatasetSchema, Db};

use crate::cli::{CommonArgs, DatasetCommand};
use crate::context::load_config;

pub fn run(common: &CommonArgs, command: &DatasetCommand) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let db = crate::context::open_state(&config)?;
    match command {
        DatasetCommand::Ls { json } => list(&db, *json),
        DatasetCommand::Schema { id, json } => schema(&db, id, *json),
    }
}

/// What `dataset ls` shows of one dataset.
#[derive(Default)]
struct Totals {
    batches: u64,
    rows: u64,
    bytes: u64,
    columns: Option<usize>,
}

fn list(db: &Db, json: bool) -> anyhow::Result<ExitCode> {
    let mut datasets: BTreeMap<String, Totals> = BTreeMap::new();
    for batch in db.batches_with_status(BatchStatus::Success)? {
        let totals = datasets
            .entry(batch.dataset_id.as_str().to_owned())
            .or_default();
        totals.batches += 1;
        totals.rows += batch.rows;
        totals.bytes += batch.bytes;
    }
    for schema in db.dataset_schemas()? {
        let totals = datasets
            .entry(schema.dataset_id.as_str().to_owned())
            .or_default();
        totals.columns = Some(top_level_columns(&schema)?);
    }
    if json {
        let docs: Vec<Value> = datasets
            .iter()
            .map(|(id, t)| {
                json!({"dataSetId": id, "batches": t.batches, "rows": t.rows, "bytes": t.bytes,
                       "columns": t.columns})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if datasets.is_empty() {
        println!("no datasets yet: a successful run creates one");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32} {:>8} {:>12} {:>10} {:>7}",
        "DATASET", "BATCHES", "ROWS", "BYTES", "COLUMNS"
    );
    for (id, t) in &datasets {
        println!(
            "{:<32} {:>8} {:>12} {:>10} {:>7}",
            shorten(id, 32),
            t.batches,
            t.rows,
            human_bytes(t.bytes),
            t.columns.map_or("-".to_owned(), |n| n.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn schema(db: &Db, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let Some(schema) = db.dataset_schema(&DatasetId::new(id))? else {
        return Err(crate::BadInput(format!(
            "dataset {id} has no schema yet (no batch of it was committed); `tributary dataset ls` lists the datasets"
        ))
        .into());
    };
    let arrow: Value = serde_json::from_str(&schema.arrow_schema_json)
        .with_context(|| format!("the stored schema of dataset {id} is unreadable"))?;
    if json {
        let columns: Vec<Value> = schema
            .columns
            .iter()
            .map(|c| {
                json!({"path": c.path, "type": c.data_type, "change": c.change,
                       "batchId": c.batch_id.as_str(), "runId": c.run_id.as_str(),
                       "at": time_text(c.at_ms)})
            })
            .collect();
        let doc = json!({"dataSetId": id, "version": schema.version, "arrowSchema": arrow,
                         "columns": columns});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("dataset {id}, schema version {}", schema.version);
    println!("{:<30} {:<12} {:<20} BATCH", "COLUMN", "TYPE", "SINCE");
    for column in &schema.columns {
        let since = match column.change {
            ColumnChange::Added => time_text(column.at_ms),
            ColumnChange::Widened => format!("{} (widened)", time_text(column.at_ms)),
        };
        println!(
            "{:<30} {:<12} {:<20} {}",
            shorten(&column.path, 30),
            shorten(&column.data_type, 12),
            since,
            column.batch_id.as_str()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn top_level_columns(schema: &DatasetSchema) -> anyhow::Result<usize> {
    let arrow: Value = serde_json::from_str(&schema.arrow_schema_json).with_context(|| {
        format!(
            "the stored schema of dataset {} is unreadable",
            schema.dataset_id.as_str()
        )
    })?;
    Ok(arrow["fields"].as_array().map_or(0, Vec::len))
}

fn time_text(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}~")
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
