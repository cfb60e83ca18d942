//! Query strings and schedule windows: form-urlencoded parsing and encoding, lenient time
//! parsing, and the window of a request (`since_last_changed`, `before_last_changed`, and the
//! ADVANCE-style `query=updated>T updated<T`).
//!
//! Errors are [`BadRequest`]s naming the parameter, its value and what was expected; the server
//! answers them with a 400.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// The decoded pairs of a query string or form body, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// A client mistake: the server answers 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

/// Bounds on `last_changed`, in nanoseconds since the epoch: `[lower, upper)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub lower_ns: Option<i128>,
    pub upper_ns: Option<i128>,
}

impl Params {
    /// Decodes `a=1&b=x%20y&c+d=e`; `+` is a space; a malformed escape is kept literally.
    pub fn parse(text: &str) -> Params {
        let pairs = text
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_component(name), decode_component(value))
            })
            .collect();
        Params { pairs }
    }

    /// These pairs followed by `other`'s (a first value in `self` wins in [`Params::get`]).
    pub fn merged(mut self, other: Params) -> Params {
        self.pairs.extend(other.pairs);
        self
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name` as an integer, `default` when absent; a value that is not a
    /// non-negative integer is an error naming the parameter.
    pub fn u64_or(&self, name: &str, default: u64) -> Result<u64, BadRequest> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| {
                BadRequest(format!(
                    "query parameter {name}={value:?} is not a non-negative integer"
                ))
            }),
        }
    }

    /// Whether `name` is present with a true-ish value (`1`, `true`, `yes`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("1" | "true" | "yes"))
    }

    /// These params re-encoded with `name` set to `value` (replacing, or appended).
    pub fn encode_with(&self, name: &str, value: &str) -> String {
        let mut out = String::new();
        let mut replaced = false;
        for (key, current) in &self.pairs {
            let current = if key == name {
                if replaced {
                    continue;
                }
                replaced = true;
                value
            } else {
                current.as_str()
            };
            push_pair(&mut out, key, current);
        }
        if !replaced {
            push_pair(&mut out, name, value);
        }
        out
    }

    /// The query with the values of credential-looking names (key, token, secret, password,
    /// auth) replaced by `***`, for the request log.
    pub fn redacted(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.pairs {
            let value = if looks_secret(key) {
                "***"
            } else {
                value.as_str()
            };
            push_pair(&mut out, key, value);
        }
        out
    }

    /// The schedule window of a list request: `since_last_changed` (inclusive),
    /// `before_last_changed` (exclusive) and the `query` expression, intersected.
    pub fn window(&self) -> Result<Window, BadRequest> {
        let mut window = Window::default();
        if let Some(value) = self.get("since_last_changed") {
            window.raise_lower(parse_time_ns("since_last_changed", value)?);
        }
        if let Some(value) = self.get("before_last_changed") {
            window.lower_upper(parse_time_ns("before_last_changed", value)?);
        }
        if let Some(expression) = self.get("query") {
            apply_query_expression(expression, &mut window)?;
        }
        Ok(window)
    }
}

impl Window {
    fn raise_lower(&mut self, bound_ns: i128) {
        self.lower_ns = Some(self.lower_ns.map_or(bound_ns, |lower| lower.max(bound_ns)));
    }

    fn lower_upper(&mut self, bound_ns: i128) {
        self.upper_ns = Some(self.upper_ns.map_or(bound_ns, |upper| upper.min(bound_ns)));
    }
}

/// Parses a time as RFC 3339 (also with a space for the `+` a query string turned into one,
/// and the .NET `HH:mm:ss:fffffff` colon before the fraction), a naive date-time or date (UTC),
/// or epoch seconds (integer or decimal).
pub fn parse_time_ns(param: &str, value: &str) -> Result<i128, BadRequest> {
    let text = value.trim();
    let to_ns = |time: DateTime<Utc>| {
        i128::from(time.timestamp()) * 1_000_000_000 + i128::from(time.timestamp_subsec_nanos())
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(to_ns(time.with_timezone(&Utc)));
    }
    // "2024-01-01T00:00:00 00:00": the + of the offset was sent unencoded.
    let plus_restored = restore_offset_plus(text);
    if let Ok(time) = DateTime::parse_from_rfc3339(&plus_restored) {
        return Ok(to_ns(time.with_timezone(&Utc)));
    }
    // .NET "yyyy-MM-ddTHH:mm:ss:fffffffK": a colon before the fraction.
    if let (Some(head), Some(b':'), Some(tail)) = (
        plus_restored.get(..19),
        plus_restored.as_bytes().get(19),
        plus_restored.get(20..),
    ) {
        let dotted = format!("{head}.{tail}");
        if let Ok(time) = DateTime::parse_from_rfc3339(&dotted) {
            return Ok(to_ns(time.with_timezone(&Utc)));
        }
    }
    // ISO 8601 with a basic offset, as Java's `Z` pattern letter writes it: "...T00:00:00+0000".
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(time) = DateTime::parse_from_str(&plus_restored, format) {
            return Ok(to_ns(time.with_timezone(&Utc)));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(to_ns(time.and_utc()));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(to_ns(
            date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        ));
    }
    if let Some(ns) = parse_epoch_seconds(text) {
        return Ok(ns);
    }
    Err(BadRequest(format!(
        "query parameter {param}={value:?} is not a time, expected RFC 3339 (2024-01-01T00:00:00Z) or epoch seconds"
    )))
}

/// Percent-encodes a query component (everything but unreserved characters).
pub fn encode_component(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(byte & 0xf)]));
        }
    }
}

/// Whether a parameter or header name looks like it carries a credential.
pub fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "token", "secret", "password", "auth"]
        .iter()
        .any(|word| name.contains(word))
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    encode_component(key, out);
    out.push('=');
    encode_component(value, out);
}

fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let escape = bytes
                    .get(i + 1..i + 3)
                    .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit));
                if let Some(pair) = escape {
                    out.push(hex_value(pair[0]) << 4 | hex_value(pair[1]));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

fn restore_offset_plus(text: &str) -> String {
    match text.rfind(' ') {
        Some(pos) if pos >= 19 => format!("{}+{}", &text[..pos], &text[pos + 1..]),
        _ => text.to_string(),
    }
}

fn parse_epoch_seconds(text: &str) -> Option<i128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let mut nanos: i128 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        nanos += i128::from(digit - b'0') * 10i128.pow(8 - i as u32);
    }
    let sign = if secs < 0 || whole.starts_with('-') {
        -1
    } else {
        1
    };
    Some(i128::from(secs) * 1_000_000_000 + sign * nanos)
}

/// Applies `updated > T`, `updated>=T`, `last_changed < T`, ... found in an ADVANCE-style
/// expression; other words (`type:user`) are ignored. `>` and `<=` are turned into the
/// half-open form by one nanosecond.
fn apply_query_expression(expression: &str, window: &mut Window) -> Result<(), BadRequest> {
    let mut rest = expression;
    while let Some(pos) = find_field(rest) {
        let (field_len, after) = pos;
        let tail = rest[after + field_len..].trim_start();
        let (operator, tail) = if let Some(tail) = tail.strip_prefix(">=") {
            (">=", tail)
        } else if let Some(tail) = tail.strip_prefix("<=") {
            ("<=", tail)
        } else if let Some(tail) = tail.strip_prefix('>') {
            (">", tail)
        } else if let Some(tail) = tail.strip_prefix('<') {
            ("<", tail)
        } else {
            rest = tail;
            continue;
        };
        let tail = tail.trim_start();
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let value = &tail[..end];
        let ns = parse_time_ns("query", value)?;
        match operator {
            ">=" => window.raise_lower(ns),
            ">" => window.raise_lower(ns + 1),
            "<" => window.lower_upper(ns),
            _ => window.lower_upper(ns + 1),
        }
        rest = &tail[end..];
    }
    Ok(())
}

/// Finds the next `updated` or `last_changed` word: (its length, its position).
fn find_field(text: &str) -> Option<(usize, usize)> {
    ["updated", "last_changed"]
        .iter()
        .filter_map(|field| text.find(field).map(|pos| (field.len(), pos)))
        .min_by_key(|(_, pos)| *pos)
}
