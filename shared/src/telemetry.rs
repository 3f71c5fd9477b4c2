//! Tracing set-up: one filter from config (`log.filter`, default `info`),
//! text or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. A bad filter falls back to `info` with a
/// warning rather than failing start-up.
pub fn init(log: &LogConfig) {
    let (filter, bad) = match EnvFilter::try_new(&log.filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if result.is_ok()
        && let Some(e) = bad
    {
        tracing::warn!(cause = %e, filter = %log.filter, "log.filter is not a valid filter; using `info`");
    }
}
