//! Parsing of the response headers the fetcher acts on: `Retry-After` (seconds or HTTP date),
//! `X-RateLimit-Remaining` / `X-RateLimit-Reset`, the IETF `RateLimit` / `RateLimit-Policy`
//! fields, and RFC 8288 `Link` (for `rel="next"` pagination).
//!
//! Every parser is lenient: a header it cannot read is ignored (`None`), never an error, because
//! a malformed advisory header must not fail a run that would otherwise succeed. No parser does
//! unchecked arithmetic on a value: a wait too long for a `Duration` (`Retry-After: 1e30`) is a
//! [`WaitHint`] without a delay, which every maximum wait refuses, never a panic.

use std::num::NonZeroU64;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// A wait an API asked for in a response header, with what it wrote (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct WaitHint {
    /// How long to wait; `None` when that is too long to represent (longer than any maximum).
    pub delay: Option<Duration>,
    /// The same in seconds, for messages: finite, not negative, possibly huge.
    pub seconds: f64,
    /// The header that asked, as messages name it (`Retry-After`, `X-RateLimit-Reset`, ...).
    pub header: &'static str,
    /// The header's value as sent, cut to [`HINT_VALUE_CHARS`] characters.
    pub value: String,
}

/// What the rate-limit headers of one response say about the remaining quota.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaHint {
    /// Requests left in the current window.
    pub remaining: u64,
    /// Time until the window resets (and `remaining` is refilled), when the headers say.
    pub reset: Option<WaitHint>,
}

/// `RateLimit-Policy`: at most `requests` per `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyHint {
    pub requests: NonZeroU64,
    pub window: Duration,
    /// The field's value as sent, cut to [`HINT_VALUE_CHARS`] characters.
    pub value: String,
}

/// One link of an RFC 8288 `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target, as written between `<` and `>` (may be relative).
    pub target: String,
    /// The `rel` values, lowercased.
    pub rels: Vec<String>,
}

/// How many characters of a header value a hint keeps for messages.
pub const HINT_VALUE_CHARS: usize = 64;

/// Reset values above this many seconds are epoch timestamps, not delays.
const YEAR_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP date (a date in the past is 0).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<WaitHint> {
    const NAME: &str = "Retry-After";
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    // Some APIs send fractional seconds; accept them rather than ignoring the hint.
    if let Some(seconds) = non_negative_number(value) {
        return Some(wait_of_seconds(seconds, NAME, value));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let delay = date.duration_since(now).unwrap_or(Duration::ZERO);
    Some(WaitHint {
        delay: Some(delay),
        seconds: delay.as_secs_f64(),
        header: NAME,
        value: shown_value(value),
    })
}

/// The remaining quota from `X-RateLimit-Remaining` + `X-RateLimit-Reset`, or from the IETF
/// `RateLimit` field (`limit=100, remaining=50, reset=30`, or the newer structured
/// `"default";r=50;t=30`) with `RateLimit-Remaining` / `RateLimit-Reset` as separate fields.
///
/// A reset is read as seconds from now when small, or as an epoch timestamp (seconds) when it is
/// larger than a year of seconds, since APIs use both.
pub fn quota_hint(headers: &HeaderMap, now: SystemTime) -> Option<QuotaHint> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let number = |name: &str| text(name).and_then(non_negative_number);
    let reset_of = |name: &str, header: &'static str| {
        let value = text(name)?;
        let reset = non_negative_number(value)?;
        Some(reset_wait(reset, now, header, value))
    };

    if let Some(remaining) = number("x-ratelimit-remaining") {
        return Some(QuotaHint {
            remaining: remaining as u64,
            reset: reset_of("x-ratelimit-reset", "X-RateLimit-Reset"),
        });
    }
    if let Some(remaining) = number("ratelimit-remaining") {
        return Some(QuotaHint {
            remaining: remaining as u64,
            reset: reset_of("ratelimit-reset", "RateLimit-Reset"),
        });
    }
    let field = text("ratelimit")?;
    let mut remaining = None;
    let mut reset = None;
    for part in field.split([',', ';']) {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let value = non_negative_number(value.trim().trim_matches('"'));
        match key.trim().to_ascii_lowercase().as_str() {
            "remaining" | "r" => remaining = remaining.or(value),
            "reset" | "t" => reset = reset.or(value),
            _ => {}
        }
    }
    Some(QuotaHint {
        remaining: remaining? as u64,
        reset: reset.map(|reset| reset_wait(reset, now, "RateLimit", field)),
    })
}

/// The quota of `RateLimit-Policy` (`100;w=60` or `"default";q=100;w=60`): requests per window
/// (1 s when the field names none). A quota or window of 0 is ignored.
pub fn quota_policy(headers: &HeaderMap) -> Option<PolicyHint> {
    let field = headers.get("ratelimit-policy")?.to_str().ok()?.trim();
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
    let window = window.unwrap_or(Duration::from_secs(1));
    if window.is_zero() {
        return None;
    }
    Some(PolicyHint {
        requests: NonZeroU64::new(quota?)?,
        window,
        value: shown_value(field),
    })
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

/// A reset value as a wait: seconds from now, or an epoch timestamp when above a year.
fn reset_wait(reset: f64, now: SystemTime, header: &'static str, value: &str) -> WaitHint {
    if reset <= YEAR_SECONDS {
        return wait_of_seconds(reset, header, value);
    }
    // Float seconds since the epoch: no `SystemTime` arithmetic that could overflow.
    let now_seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    wait_of_seconds((reset - now_seconds).max(0.0), header, value)
}

fn wait_of_seconds(seconds: f64, header: &'static str, value: &str) -> WaitHint {
    WaitHint {
        delay: Duration::try_from_secs_f64(seconds).ok(),
        seconds,
        header,
        value: shown_value(value),
    }
}

/// A finite, non-negative number (`7`, `0.5`, `1e30`).
fn non_negative_number(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

fn shown_value(value: &str) -> String {
    let mut chars = value.chars();
    let mut shown: String = chars.by_ref().take(HINT_VALUE_CHARS).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
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
