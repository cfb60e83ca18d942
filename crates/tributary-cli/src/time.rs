//! Instants on the command line: RFC 3339 or epoch seconds.

use chrono::{DateTime, Utc};

/// A point in time given on the command line.
pub type Instant = DateTime<Utc>;

/// Parses `2024-05-01T00:00:00Z` (any RFC 3339 offset) or `1714521600` (epoch seconds).
pub fn parse_instant(text: &str) -> Result<Instant, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| format!("epoch seconds {secs} are out of range"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|err| {
            format!(
                "expected RFC 3339 (2024-05-01T00:00:00Z) or epoch seconds, found {text:?}: {err}"
            )
        })
}
