//! Log setup: tracing to stderr, as text or JSON lines. The format comes from `--log-format`,
//! else the config file's `[log] format`; the filter from `RUST_LOG`, else `[log] level`, else
//! `info`.
//!
//! A plain level (`info`, `debug`, ...) applies to tributary's own crates; the libraries under
//! them (deltalake and its kernel, object storage, HTTP) log at `warn` unless the level asks for
//! less, so a library's chatter never floods an operator's log at the default level. A filter
//! with directives (`info,tributary_fetch=debug`, or anything in `RUST_LOG`) is used exactly as
//! written.

use tracing_subscriber::EnvFilter;

use crate::cli::{CommonArgs, LogFormat};

/// Installs the global subscriber. Called once, before any command runs. A config file that
/// cannot be read is reported later by the command itself; logging then uses the defaults.
pub fn init(common: &CommonArgs) {
    let config = common
        .config
        .as_deref()
        .and_then(|path| tributary_engine::DaemonConfig::load(path).ok());
    let level = config
        .as_ref()
        .map_or("info", |config| config.log.level.as_str());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(filter_for_level(level)).unwrap_or_else(|error| {
            eprintln!("warning: [log] level {level:?} is not a valid log filter ({error}); logging at info");
            EnvFilter::new(filter_for_level("info"))
        })
    });
    let format = common
        .log_format
        .unwrap_or(match config.map(|config| config.log.format) {
            Some(tributary_engine::config::LogFormat::Json) => LogFormat::Json,
            _ => LogFormat::Text,
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

/// The filter directives for `[log] level`: a plain level becomes that level for tributary's
/// crates (every target starting with `tributary`) and at most `warn` for every other target; a
/// directive list is returned as written.
fn filter_for_level(level: &str) -> String {
    let plain = level.trim().to_ascii_lowercase();
    let libraries = match plain.as_str() {
        "off" | "error" => plain.as_str(),
        "warn" | "info" | "debug" | "trace" => "warn",
        _ => return level.to_string(),
    };
    format!("{libraries},tributary={plain}")
}
