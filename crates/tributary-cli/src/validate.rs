//! `tributary spec validate FILE...`: one line per problem, `FILE: /json/pointer: message`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Validates every file; exit 0 when all are valid, 2 when any has an error.
pub fn run(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut n_errors = 0usize;
    for file in files {
        let label = file.display().to_string();
        match std::fs::read_to_string(file) {
            Err(err) => {
                println!("{label}: : cannot read file: {err}");
                n_errors += 1;
            }
            Ok(text) => {
                if let Err(err) = serde_json::from_str::<serde_json::Value>(&text) {
                    println!("{label}: : invalid JSON at line {} column {}: {err}", err.line(), err.column());
                    n_errors += 1;
                }
            }
        }
    }
    Ok(if n_errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
