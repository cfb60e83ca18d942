//! `tributary spec validate FILE...`: one line per problem, `FILE: /json/pointer: message`.
//!
//! The kind of each file (connection spec, flow spec, connection, mapping set, flow, bundle,
//! JSON schema) is worked out from its content by `tributary_spec::validate_document`. A bundle's
//! `{"path": ...}` references are read relative to the bundle and validated too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Validates every file; exit 0 when all are valid (warnings allowed), 2 when any has an error.
pub fn run(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut all_valid = true;
    for file in files {
        let label = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(err) => {
                println!("{label}: (root): cannot read file: {err}");
                all_valid = false;
                continue;
            }
        };
        let base_dir = file.parent().unwrap_or(Path::new(".")).to_owned();
        let report = tributary_spec::validate_document(&label, &text, |relative: &str| {
            read_relative(&base_dir, relative)
        });
        for line in report.lines() {
            println!("{line}");
        }
        all_valid &= report.is_valid();
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Reads a file a bundle refers to, relative to the bundle's folder.
pub fn read_relative(base_dir: &Path, relative: &str) -> Result<String, String> {
    let path = base_dir.join(relative);
    std::fs::read_to_string(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}
