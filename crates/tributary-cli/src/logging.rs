//! Log setup: tracing to stderr, as text or JSON lines. The format comes from `--log-format`,
//! else the config file's `[log] format`; the filter from `RUST_LOG`, else `[log] level`, else
//! `info`.

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
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
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
