//! Parsing of the response headers the fetcher acts on: `Retry-After` (seconds or HTTP date),
//! `X-RateLimit-Remaining` / `X-RateLimit-Reset`, the IETF `RateLimit` / `RateLimit-Policy`
//! fields, and RFC 8288 `Link` (for `rel="next"` pagination).
//!
//! Every parser is lenient: a header it cannot read is ignored (`None`), never an error, because
//! a malformed advisory header must not fail a run that would otherwise succeed.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// What the rate-limit headers of one response say about the remaining quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaHint {
    /// Requests left in the current window.
    pub remaining: u64,
    /// Time until the window resets (and `remaining` is refilled).
    pub reset_in: Duration,
}

/// One link of an RFC 8288 `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target, as written between `<` and `>` (may be relative).
    pub target: String,
    /// The `rel` values, lowercased.
    pub rels: Vec<String>,
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP date (a date in the past is 0).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // Some APIs send fractional seconds; accept them rather than ignoring the hint.
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The remaining quota from `X-RateLimit-Remaining` + `X-RateLimit-Reset`, or from the IETF
/// `RateLimit` field (`limit=100, remaining=50, reset=30`, or the newer structured
/// `"default";r=50;t=30`) with `RateLimit-Remaining` / `RateLimit-Reset` as separate fields.
///
/// `X-RateLimit-Reset` is read as seconds from now when small, or as an epoch timestamp
/// (seconds) when it is larger than a year of seconds, since APIs use both.
pub fn quota_hint(headers: &HeaderMap, now: SystemTime) -> Option<QuotaHint> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let number = |name: &str| {
        text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };

    if let Some(remaining) = number("x-ratelimit-remaining") {
        let reset_in = number("x-ratelimit-reset")
            .map(|reset| reset_delay(reset, now))
            .unwrap_or(Duration::from_secs(1));
        return Some(QuotaHint {
            remaining: remaining as u64,
            reset_in,
        });
    }
    if let Some(remaining) = number("ratelimit-remaining") {
        let reset_in = number("ratelimit-reset")
            .map(|reset| reset_delay(reset, now))
            .unwrap_or(Duration::from_secs(1));
        return Some(QuotaHint {
            remaining: remaining as u64,
            reset_in,
        });
    }
    let field = text("ratelimit")?;
    let mut remaining = None;
    let mut reset = None;
    for part in field.split([',', ';']) {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches('"')
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0);
        match key.trim().to_ascii_lowercase().as_str() {
            "remaining" | "r" => remaining = remaining.or(value),
            "reset" | "t" => reset = reset.or(value),
            _ => {}
        }
    }
    Some(QuotaHint {
        remaining: remaining? as u64,
        reset_in: reset
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(1)),
    })
}

/// The quota of `RateLimit-Policy` (`100;w=60` or `"default";q=100;w=60`): requests per window.
pub fn quota_policy(headers: &HeaderMap) -> Option<(u64, Duration)> {
    let field = headers.get("ratelimit-policy")?.to_str().ok()?;
    let first = field.split(',').next()?.trim();
    let mut quota = None;
    let mut window = None;
    for (idx, part) in first.split(';').enumerate() {
        let part = part.trim();
        match part.split_once('=') {
            Some((key, value)) => {
                let value = value.trim().trim_matches('"').parse::<u64>().ok();
                match key.trim() {
                    "q" => quota = value,
                    "w" => window = value.map(Duration::from_secs),
                    _ => {}
                }
            }
            None if idx == 0 => quota = part.parse::<u64>().ok(),
            None => {}
        }
    }
    Some((quota?, window.unwrap_or(Duration::from_secs(1))))
}

/// Every link of every `Link` header, in order.
pub fn links(headers: &HeaderMap) -> Vec<Link> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        parse_link_value(value, &mut out);
    }
    out
}

/// The target of the first link with `rel="next"`.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    links(headers)
        .into_iter()
        .find(|link| link.rels.iter().any(|rel| rel == "next"))
        .map(|link| link.target)
}

fn reset_delay(reset: f64, now: SystemTime) -> Duration {
    const YEAR_SECONDS: f64 = 365.0 * 24.0 * 3600.0;
    if reset > YEAR_SECONDS {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(reset);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    } else {
        Duration::from_secs_f64(reset)
    }
}

/// Parses `<a>; rel="next", <b>; rel=prev; title="x, y"` (commas may appear inside quotes).
fn parse_link_value(value: &str, out: &mut Vec<Link>) {
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some(after_open) = rest.strip_prefix('<') else {
            return;
        };
        let Some(close) = after_open.find('>') else {
            return;
        };
        let target = after_open[..close].trim().to_owned();
        rest = &after_open[close + 1..];
        let mut rels = Vec::new();
        // Parameters until the next top-level comma.
        loop {
            rest = rest.trim_start();
            let Some(after_semi) = rest.strip_prefix(';') else {
                break;
            };
            let after_semi = after_semi.trim_start();
            let name_end = after_semi.find(['=', ';', ',']).unwrap_or(after_semi.len());
            let name = after_semi[..name_end].trim().to_ascii_lowercase();
            rest = &after_semi[name_end..];
            let mut param_value = String::new();
            if let Some(after_eq) = rest.strip_prefix('=') {
                let after_eq = after_eq.trim_start();
                if let Some(quoted) = after_eq.strip_prefix('"') {
                    let mut chars = quoted.char_indices();
                    let mut end = quoted.len();
                    while let Some((idx, ch)) = chars.next() {
                        match ch {
                            '\\' => {
                                if let Some((_, escaped)) = chars.next() {
                                    param_value.push(escaped);
                                }
                            }
                            '"' => {
                                end = idx + 1;
                                break;
                            }
                            other => param_value.push(other),
                        }
                    }
                    rest = &quoted[end.min(quoted.len())..];
                } else {
                    let end = after_eq.find([';', ',']).unwrap_or(after_eq.len());
                    param_value = after_eq[..end].trim().to_owned();
                    rest = &after_eq[end..];
                }
            }
            if name == "rel" {
                rels.extend(param_value.split_whitespace().map(str::to_ascii_lowercase));
            }
        }
        out.push(Link { target, rels });
    }
}

#[cfg(test)]
mod tests;
