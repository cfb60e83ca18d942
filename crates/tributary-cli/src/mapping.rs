//! `tributary mapping preview MAPPING.json --input RECORDS.json [--schema SCHEMA.json]`: maps
//! sample records and prints one `{data, errors, rejected}` object per record — the shape of
//! Data Prep's preview, plus whether a run would reject the record under the mapping set's
//! `strictMapping` and `allowNullValues` — as JSON.

use std::path::Path;
use std::process::ExitCode;

use crate::BadInput;

pub fn preview(
    mapping_path: &Path,
    input_path: &Path,
    schema_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let label = mapping_path.display().to_string();
    let text = std::fs::read_to_string(mapping_path)
        .map_err(|err| BadInput(format!("cannot read mapping set {label}: {err}")))?;
    let value =
        tributary_spec::parse_document(&label, &text).map_err(|err| BadInput(err.to_string()))?;
    let mapping_set = tributary_spec::mapping_set_from_value(&label, &value)
        .map_err(|err| BadInput(err.to_string()))?;
    let records = read_records(input_path)?;
    // Converted here as a run converts `targetConnection.data.schema.jsonSchema`.
    let target = match schema_path {
        Some(path) => {
            let schema_label = path.display().to_string();
            let schema = read_target_schema(path)?;
            let arrow_schema = tributary_transform::schema::json_schema_to_arrow(&schema)
                .map_err(|err| BadInput(format!("{schema_label}: {err}")))?;
            Some(arrow_schema)
        }
        None => None,
    };
    let rows =
        tributary_transform::mapping::preview_with_schema(&mapping_set, &records, target.as_ref())
            .map_err(|err| BadInput(format!("{label}: {err}")))?;
    let output: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let errors = if row.errors.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::to_value(&row.errors).unwrap_or_default()
            };
            serde_json::json!({"data": row.data, "errors": errors, "rejected": row.rejected})
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}

/// A target schema file as JSON.
fn read_target_schema(path: &Path) -> anyhow::Result<serde_json::Value> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|err| BadInput(format!("cannot read target schema {label}: {err}")))?;
    Ok(tributary_spec::parse_document(&label, &text).map_err(|err| BadInput(err.to_string()))?)
}

/// A JSON array of objects, or one object per line.
fn read_records(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|err| BadInput(format!("cannot read records {label}: {err}")))?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(|err| {
            BadInput(format!(
                "{label}: invalid JSON at line {} column {}: {err}",
                err.line(),
                err.column()
            ))
            .into()
        });
    }
    let mut records = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(line)
            .map_err(|err| BadInput(format!("{label}: line {}: invalid JSON: {err}", idx + 1)))?;
        records.push(record);
    }
    Ok(records)
}
