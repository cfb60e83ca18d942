//! Java `DateTimeFormatter` patterns: compile once, then format and parse.
//!
//! Supported letters: `y`/`u` (year), `M`/`L` (month, number or name), `d`, `D` (day of year),
//! `E` (day name), `a` (AM/PM), `H`, `k`, `h`, `K`, `m`, `s`, `S` (fraction), `n` (nano of
//! second), `X`/`x`/`Z`/`O` (offsets), `z` and `VV` (zone names), `'quoted text'` and `''`.
//! Other ASCII letters are reserved by Java and rejected, so a typo is an error rather than
//! literal text. Parsing is case-insensitive for names and needs the whole input to match.
//! Missing fields default to the start of the period (no time → midnight, no offset → UTC).

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike,
};

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    items: Vec<Item>,
    /// Per item: whether the next item is numeric too (adjacent-value parsing), computed once.
    next_is_number: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(String),
    Year(usize),
    Month(usize),
    Day(usize),
    DayOfYear(usize),
    DayName(usize),
    AmPm,
    /// `H` 0-23, `k` 1-24, `h` 1-12, `K` 0-11.
    Hour {
        letter: char,
        width: usize,
    },
    Minute(usize),
    Second(usize),
    Fraction(usize),
    Nano(usize),
    /// `X` (with `Z` for zero) and `x`; `Z`; `O`: the letter and count decide the shape.
    Offset {
        letter: char,
        count: usize,
    },
    ZoneName,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl FromStr for DateFormat {
    type Err = String;

    fn from_str(pattern: &str) -> Result<DateFormat, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut items = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // `''` is a quote; `'text'` is literal text (with `''` inside for a quote).
                if chars.get(i + 1) == Some(&'\'') {
                    push_literal(&mut items, "'");
                    i += 2;
                    continue;
                }
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!("unterminated quote in date format {pattern:?}"));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                push_literal(&mut items, &text);
                continue;
            }
            if !c.is_ascii_alphabetic() {
                push_literal(&mut items, &c.to_string());
                i += 1;
                continue;
            }
            let mut count = 1;
            while chars.get(i + count) == Some(&c) {
                count += 1;
            }
            i += count;
            let item = match c {
                'y' | 'u' if count <= 9 => Item::Year(count),
                'M' | 'L' if count <= 5 => Item::Month(count),
                'd' if count <= 2 => Item::Day(count),
                'D' if count <= 3 => Item::DayOfYear(count),
                'E' | 'e' | 'c' if count <= 5 => Item::DayName(count),
                'a' if count == 1 => Item::AmPm,
                'H' | 'k' | 'h' | 'K' if count <= 2 => Item::Hour {
                    letter: c,
                    width: count,
                },
                'm' if count <= 2 => Item::Minute(count),
                's' if count <= 2 => Item::Second(count),
                'S' if count <= 9 => Item::Fraction(count),
                'n' if count <= 9 => Item::Nano(count),
                'X' | 'x' if count <= 5 => Item::Offset { letter: c, count },
                'Z' if count <= 5 => Item::Offset { letter: 'Z', count },
                'O' if count == 1 || count == 4 => Item::Offset { letter: 'O', count },
                'z' if count <= 4 => Item::ZoneName,
                'V' if count == 2 => Item::ZoneName,
                _ => {
                    let letters: String = std::iter::repeat_n(c, count).collect();
                    return Err(format!(
                        "unsupported date format letters `{letters}` in {pattern:?}"
                    ));
                }
            };
            items.push(item);
        }
        let next_is_number = (0..items.len())
            .map(|idx| {
                matches!(
                    items.get(idx + 1),
                    Some(
                        Item::Year(_)
                            | Item::Month(1..=2)
                            | Item::Day(_)
                            | Item::DayOfYear(_)
                            | Item::Hour { .. }
                            | Item::Minute(_)
                            | Item::Second(_)
                            | Item::Fraction(_)
                            | Item::Nano(_)
                    )
                )
            })
            .collect();
        Ok(DateFormat {
            items,
            next_is_number,
        })
    }
}

fn push_literal(items: &mut Vec<Item>, text: &str) {
    if let Some(Item::Literal(prev)) = items.last_mut() {
        prev.push_str(text);
    } else {
        items.push(Item::Literal(text.to_owned()));
    }
}

impl DateFormat {
    /// Formats a date-time in its own offset.
    pub fn format(&self, dt: &DateTime<FixedOffset>) -> String {
        let mut out = String::with_capacity(32);
        for item in &self.items {
            match item {
                Item::Literal(text) => out.push_str(text),
                Item::Year(2) => pad(&mut out, i64::from(dt.year().rem_euclid(100)), 2),
                Item::Year(n) => pad(&mut out, i64::from(dt.year()), *n),
                Item::Month(n @ 1..=2) => pad(&mut out, i64::from(dt.month()), *n),
                Item::Month(n) => out.push_str(name_of(MONTHS[dt.month0() as usize], *n)),
                Item::Day(n) => pad(&mut out, i64::from(dt.day()), *n),
                Item::DayOfYear(n) => pad(&mut out, i64::from(dt.ordinal()), *n),
                Item::DayName(n) => {
                    out.push_str(name_of(
                        DAYS[dt.weekday().num_days_from_monday() as usize],
                        (*n).max(3),
                    ));
                }
                Item::AmPm => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
                Item::Hour { letter, width } => {
                    let h = dt.hour();
                    let shown = match letter {
                        'k' if h == 0 => 24,
                        'h' if h.is_multiple_of(12) => 12,
                        'h' | 'K' => h % 12,
                        _ => h,
                    };
                    pad(&mut out, i64::from(shown), *width);
                }
                Item::Minute(n) => pad(&mut out, i64::from(dt.minute()), *n),
                Item::Second(n) => pad(&mut out, i64::from(dt.second()), *n),
                Item::Fraction(n) => {
                    let nanos = format!("{:09}", dt.nanosecond() % 1_000_000_000);
                    out.push_str(&nanos[..*n]);
                }
                Item::Nano(n) => pad(&mut out, i64::from(dt.nanosecond() % 1_000_000_000), *n),
                Item::Offset { letter, count } => {
                    format_offset(&mut out, dt.offset().local_minus_utc(), *letter, *count)
                }
                Item::ZoneName => {
                    let seconds = dt.offset().local_minus_utc();
                    if seconds == 0 {
                        out.push_str("UTC");
                    } else {
                        format_offset(&mut out, seconds, 'X', 5);
                    }
                }
            }
        }
        out
    }

    /// Parses `text`; the whole text must match. `None` when it does not.
    pub fn parse(&self, text: &str) -> Option<DateTime<FixedOffset>> {
        let mut fields = Fields::default();
        let mut rest = text;
        for (item, next_is_number) in self.items.iter().zip(&self.next_is_number) {
            rest = parse_item(item, rest, *next_is_number, &mut fields)?;
        }
        if !rest.is_empty() {
            return None;
        }
        fields.resolve()
    }
}

#[derive(Debug, Default)]
struct Fields {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    nano: u32,
    offset: Option<FixedOffset>,
    zone: Option<chrono_tz::Tz>,
}

impl Fields {
    fn resolve(self) -> Option<DateTime<FixedOffset>> {
        let year = self.year.unwrap_or(1970);
        let date = match (self.day_of_year, self.month, self.day) {
            (Some(doy), None, None) => NaiveDate::from_yo_opt(year, doy)?,
            (_, month, day) => NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1))?,
        };
        let hour = match (self.hour, self.hour12, self.pm) {
            (Some(h), _, _) => h,
            (None, Some(h), pm) => h % 12 + if pm == Some(true) { 12 } else { 0 },
            (None, None, Some(true)) => 12,
            (None, None, _) => 0,
        };
        let time = NaiveTime::from_hms_nano_opt(hour, self.minute, self.second, self.nano)?;
        let local = NaiveDateTime::new(date, time);
        match (self.offset, self.zone) {
            (Some(offset), _) => offset.from_local_datetime(&local).single(),
            (None, Some(zone)) => {
                let zoned = zone.from_local_datetime(&local).earliest()?;
                Some(zoned.with_timezone(&zoned.offset().fix()))
            }
            (None, None) => Some(local.and_utc().fixed_offset()),
        }
    }
}

fn pad(out: &mut String, value: i64, width: usize) {
    use std::fmt::Write;
    if value < 0 {
        let _ = write!(out, "-{:0width$}", -value, width = width);
    } else {
        let _ = write!(out, "{value:0width$}");
    }
}

fn name_of(full: &str, count: usize) -> &str {
    match count {
        3 => &full[..3],
        5 => &full[..1],
        _ => full,
    }
}

fn format_offset(out: &mut String, seconds: i32, letter: char, count: usize) {
    use std::fmt::Write;
    if seconds == 0 && (letter == 'X' || (letter == 'Z' && count == 5)) {
        out.push('Z');
        return;
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (hours, minutes) = (abs / 3600, abs / 60 % 60);
    let _ = match (letter, count) {
        ('O', 1) if minutes == 0 => write!(out, "GMT{sign}{hours}"),
        ('O', 1) => write!(out, "GMT{sign}{hours}:{minutes:02}"),
        ('O', _) | ('Z', 4) => write!(out, "GMT{sign}{hours:02}:{minutes:02}"),
        ('X' | 'x', 1) if minutes == 0 => write!(out, "{sign}{hours:02}"),
        ('X' | 'x', 1 | 2 | 4) | ('Z', 1..=3) => write!(out, "{sign}{hours:02}{minutes:02}"),
        _ => write!(out, "{sign}{hours:02}:{minutes:02}"),
    };
}

/// Consumes one item at the start of `text`; returns the rest.
fn parse_item<'t>(
    item: &Item,
    text: &'t str,
    next_is_number: bool,
    fields: &mut Fields,
) -> Option<&'t str> {
    match item {
        Item::Literal(lit) => {
            if text.len() >= lit.len()
                && text.is_char_boundary(lit.len())
                && text[..lit.len()].eq_ignore_ascii_case(lit)
            {
                Some(&text[lit.len()..])
            } else {
                None
            }
        }
        Item::Year(2) => {
            let (value, rest) = digits(text, 2, 2)?;
            fields.year = Some(2000 + value as i32);
            Some(rest)
        }
        Item::Year(n) => {
            let (min, max) = if *n == 1 {
                (1, 9)
            } else {
                (*n, if next_is_number { *n } else { 9 })
            };
            let (negative, body) = match text.strip_prefix('-') {
                Some(body) if *n >= 4 => (true, body),
                _ => (false, text),
            };
            let (value, rest) = digits(body, min, max)?;
            let year = i32::try_from(value).ok()?;
            fields.year = Some(if negative { -year } else { year });
            Some(rest)
        }
        Item::Month(n @ 1..=2) => {
            let (value, rest) = number(text, *n, next_is_number)?;
            fields.month = Some(value);
            Some(rest)
        }
        Item::Month(n) => {
            let (index, rest) = name(text, &MONTHS, *n)?;
            fields.month = Some(index as u32 + 1);
            Some(rest)
        }
        Item::Day(n) => {
            let (value, rest) = number(text, *n, next_is_number)?;
            fields.day = Some(value);
            Some(rest)
        }
        Item::DayOfYear(n) => {
            let (value, rest) = if *n == 1 {
                digits(text, 1, 3)?
            } else {
                digits(text, *n, 3)?
            };
            fields.day_of_year = Some(value as u32);
            Some(rest)
        }
        Item::DayName(n) => {
            // The day name is checked for shape only; the date comes from the other fields.
            let (_, rest) = name(text, &DAYS, (*n).max(3))?;
            Some(rest)
        }
        Item::AmPm => {
            let head = text.get(..2)?;
            let pm = if head.eq_ignore_ascii_case("am") {
                false
            } else if head.eq_ignore_ascii_case("pm") {
                true
            } else {
                return None;
            };
            fields.pm = Some(pm);
            Some(&text[2..])
        }
        Item::Hour { letter, width } => {
            let (value, rest) = number(text, *width, next_is_number)?;
            match letter {
                'H' if value < 24 => fields.hour = Some(value),
                'k' if (1..=24).contains(&value) => fields.hour = Some(value % 24),
                'h' if (1..=12).contains(&value) => fields.hour12 = Some(value % 12),
                'K' if value < 12 => fields.hour12 = Some(value),
                _ => return None,
            }
            Some(rest)
        }
        Item::Minute(n) => {
            let (value, rest) = number(text, *n, next_is_number)?;
            fields.minute = value;
            Some(rest)
        }
        Item::Second(n) => {
            let (value, rest) = number(text, *n, next_is_number)?;
            fields.second = value;
            Some(rest)
        }
        Item::Fraction(n) => {
            let (value, rest) = digits(text, *n, *n)?;
            fields.nano = (value * 10u64.pow(9 - *n as u32)) as u32;
            Some(rest)
        }
        Item::Nano(n) => {
            let (value, rest) = digits(text, *n, 9)?;
            fields.nano = value as u32;
            Some(rest)
        }
        Item::Offset { letter, .. } => {
            let (offset, rest) = parse_offset(text, *letter)?;
            fields.offset = Some(offset);
            Some(rest)
        }
        Item::ZoneName => {
            let end = text
                .find(|c: char| {
                    !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-' | ':'))
                })
                .unwrap_or(text.len());
            let (zone_text, rest) = text.split_at(end);
            match zone_offset_or_name(zone_text)? {
                ZoneParse::Offset(offset) => fields.offset = Some(offset),
                ZoneParse::Zone(zone) => fields.zone = Some(zone),
            }
            Some(rest)
        }
    }
}

/// Exactly `width` digits for a two-letter field; one or two digits for a one-letter field
/// (one only when the next item is also a number, as Java's adjacent-value parsing does).
fn number(text: &str, width: usize, next_is_number: bool) -> Option<(u32, &str)> {
    let (value, rest) = if width >= 2 {
        digits(text, width, width)?
    } else if next_is_number {
        digits(text, 1, 1)?
    } else {
        digits(text, 1, 2)?
    };
    Some((value as u32, rest))
}

fn digits(text: &str, min: usize, max: usize) -> Option<(u64, &str)> {
    let bytes = text.as_bytes();
    let mut n = 0;
    let mut value: u64 = 0;
    while n < max && n < bytes.len() && bytes[n].is_ascii_digit() {
        value = value * 10 + u64::from(bytes[n] - b'0');
        n += 1;
    }
    if n < min {
        None
    } else {
        Some((value, &text[n..]))
    }
}

fn name<'t>(text: &'t str, names: &[&str], count: usize) -> Option<(usize, &'t str)> {
    for (index, full) in names.iter().enumerate() {
        let candidate = name_of(full, count);
        if text.len() >= candidate.len()
            && text.is_char_boundary(candidate.len())
            && text[..candidate.len()].eq_ignore_ascii_case(candidate)
        {
            return Some((index, &text[candidate.len()..]));
        }
    }
    None
}

/// Offsets are parsed leniently: `Z`, `+HH`, `+HHMM`, `+HH:MM`, `GMT+H[:MM]`, whatever the
/// letter, so that one pattern reads the common spellings of the same instant.
fn parse_offset(text: &str, letter: char) -> Option<(FixedOffset, &str)> {
    let utc = FixedOffset::east_opt(0)?;
    if let Some(rest) = text.strip_prefix('Z').or_else(|| text.strip_prefix('z')) {
        return Some((utc, rest));
    }
    let body = if letter == 'O' || text.starts_with("GMT") || text.starts_with("UTC") {
        match text.get(3..) {
            Some(after) if !after.starts_with(['+', '-']) => return Some((utc, after)),
            Some(after) => after,
            None => return None,
        }
    } else {
        text
    };
    let sign = match body.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, mut rest) = digits(&body[1..], 1, 2)?;
    let mut minutes = 0;
    if let Some(after_colon) = rest.strip_prefix(':') {
        let (m, r) = digits(after_colon, 2, 2)?;
        minutes = m;
        rest = r;
    } else if rest.len() >= 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_digit) {
        let (m, r) = digits(rest, 2, 2)?;
        minutes = m;
        rest = r;
    }
    if hours > 18 || minutes > 59 {
        return None;
    }
    let seconds = sign * (hours as i32 * 3600 + minutes as i32 * 60);
    Some((FixedOffset::east_opt(seconds)?, rest))
}

enum ZoneParse {
    Offset(FixedOffset),
    Zone(chrono_tz::Tz),
}

/// A zone name: an IANA id, `UTC`/`GMT`/`Z`, a common North-American abbreviation, or an
/// offset.
fn zone_offset_or_name(text: &str) -> Option<ZoneParse> {
    let hours = |h: i32| FixedOffset::east_opt(h * 3600).map(ZoneParse::Offset);
    match text.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "Z" | "UT" => return hours(0),
        "EST" => return hours(-5),
        "EDT" | "CST" => {
            return hours(if text.eq_ignore_ascii_case("EDT") {
                -4
            } else {
                -6
            });
        }
        "CDT" | "MST" => {
            return hours(if text.eq_ignore_ascii_case("CDT") {
                -5
            } else {
                -7
            });
        }
        "MDT" | "PST" => {
            return hours(if text.eq_ignore_ascii_case("MDT") {
                -6
            } else {
                -8
            });
        }
        "PDT" => return hours(-7),
        _ => {}
    }
    if let Ok(zone) = text.parse::<chrono_tz::Tz>() {
        return Some(ZoneParse::Zone(zone));
    }
    match parse_offset(text, 'X') {
        Some((offset, "")) => Some(ZoneParse::Offset(offset)),
        _ => None,
    }
}

/// Parses a zone argument of `zone_date_to_zone` / `make_date_time`: IANA ids, `UTC`, common
/// abbreviations and offsets. The instant `at` picks the offset of a named zone.
pub(crate) fn zone_offset_at(zone: &str, at: &DateTime<FixedOffset>) -> Option<FixedOffset> {
    match zone_offset_or_name(zone.trim())? {
        ZoneParse::Offset(offset) => Some(offset),
        ZoneParse::Zone(tz) => Some(at.with_timezone(&tz).offset().fix()),
    }
}

/// Interprets a local date-time in a zone given by name or offset.
pub(crate) fn local_in_zone(zone: &str, local: &NaiveDateTime) -> Option<DateTime<FixedOffset>> {
    match zone_offset_or_name(zone.trim())? {
        ZoneParse::Offset(offset) => offset.from_local_datetime(local).single(),
        ZoneParse::Zone(tz) => {
            let zoned = tz.from_local_datetime(local).earliest()?;
            Some(zoned.with_timezone(&zoned.offset().fix()))
        }
    }
}
