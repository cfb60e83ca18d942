//! Date/time functions and the implicit string → date-time conversion.
//!
//! Date-times are `DateTime<FixedOffset>` (Data Prep's `ZonedDateTime`): they keep the offset
//! they were parsed or built with; the mapping stage stores them as UTC microseconds.

use std::sync::LazyLock;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc,
};

use super::datefmt::{self, DateFormat};
use super::{CallContext, Function, datetime_arg, int_arg, text_arg};
use crate::expr::Value;

/// The reference's ordered pattern list for a string mapped to a date-time without a format;
/// the first pattern that matches the whole string wins.
pub const IMPLICIT_DATETIME_PATTERNS: [&str; 18] = [
    "yyyy-MM-dd HH:mm:ssZ",
    "yyyy-MM-dd HH:mm:ss.SSSZ",
    "yyyy-MM-dd HH:mm:ss.SSS",
    "yyyy-MM-dd'T'HH:mm:ss.SSSX",
    "yyyy-MM-dd'T'HH:mm:ss'Z'",
    "yyyy-MM-dd",
    "yyyy/MM/dd",
    "yyyy.MM.dd",
    "yyyy-MMM-dd",
    "yyyyMMdd",
    "MM-dd-yyyy",
    "MMddyyyy",
    "M/dd/yyyy",
    "dd.M.yyyy",
    "M/dd/yyyy hh:mm:ss a",
    "dd.M.yyyy hh:mm:ss a",
    "dd.MMM.yyyy",
    "dd-MMM-yyyy",
];

static IMPLICIT_FORMATS: LazyLock<Vec<DateFormat>> = LazyLock::new(|| {
    IMPLICIT_DATETIME_PATTERNS
        .iter()
        .map(|p| {
            p.parse()
                .expect("the implicit date patterns are valid Java patterns")
        })
        .collect()
});

/// Implicit conversion of a string to a date-time: the reference's pattern list in order, then
/// (our extension, documented in the crate) ISO-8601/RFC 3339 forms that the list misses —
/// any offset, any fraction, with or without seconds — since REST APIs send those most.
pub fn parse_implicit_datetime(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    for format in IMPLICIT_FORMATS.iter() {
        if let Some(dt) = format.parse(text) {
            return Some(dt);
        }
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt);
    }
    let normalized = text.replacen(' ', "T", 1);
    if let Ok(dt) = DateTime::parse_from_rfc3339(&normalized) {
        return Some(dt);
    }
    for local in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(&normalized, local) {
            return Some(naive.and_utc().fixed_offset());
        }
    }
    for offset in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(&normalized, offset) {
            return Some(dt);
        }
    }
    None
}

pub(super) fn call(
    function: Function,
    ctx: &mut CallContext<'_>,
    args: &[Value],
) -> Result<Value, String> {
    match function {
        Function::Now => Ok(Value::DateTime(ctx.state.now().fixed_offset())),
        Function::Timestamp => Ok(Value::Int(ctx.state.now().timestamp_millis())),
        Function::Format => {
            let Some(dt) = datetime_arg(args, 0, "date")? else {
                return Ok(Value::Null);
            };
            let Some(pattern) = text_arg(args, 1, "format")? else {
                return Ok(Value::Null);
            };
            Ok(Value::Str(compile(&pattern)?.format(&dt)))
        }
        Function::Dformat => {
            let Some(ms) = int_arg(args, 0, "epoch milliseconds")? else {
                return Ok(Value::Null);
            };
            let Some(pattern) = text_arg(args, 1, "format")? else {
                return Ok(Value::Null);
            };
            let dt = DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| format!("epoch milliseconds {ms} out of range"))?;
            Ok(Value::Str(compile(&pattern)?.format(&dt.fixed_offset())))
        }
        Function::Date => date(args),
        Function::DatePart => {
            let Some(component) = text_arg(args, 0, "component")? else {
                return Ok(Value::Null);
            };
            let Some(dt) = datetime_arg(args, 1, "date")? else {
                return Ok(Value::Null);
            };
            date_part(&component, &dt).map(Value::Int)
        }
        Function::SetDatePart => {
            let Some(component) = text_arg(args, 0, "component")? else {
                return Ok(Value::Null);
            };
            let Some(value) = int_arg(args, 1, "value")? else {
                return Ok(Value::Null);
            };
            let Some(dt) = datetime_arg(args, 2, "date")? else {
                return Ok(Value::Null);
            };
            set_date_part(&component, value, &dt).map(Value::DateTime)
        }
        Function::MakeDateTime => make_date_time(args),
        Function::ZoneDateToUtc => {
            let Some(dt) = datetime_arg(args, 0, "date")? else {
                return Ok(Value::Null);
            };
            Ok(Value::DateTime(dt.with_timezone(&Utc).fixed_offset()))
        }
        Function::ZoneDateToZone => {
            let Some(dt) = datetime_arg(args, 0, "date")? else {
                return Ok(Value::Null);
            };
            let Some(zone) = text_arg(args, 1, "zone")? else {
                return Ok(Value::Null);
            };
            let offset = datefmt::zone_offset_at(&zone, &dt)
                .ok_or_else(|| format!("unknown time zone {zone:?}: expected an IANA id such as Europe/Paris, UTC or an offset"))?;
            Ok(Value::DateTime(dt.with_timezone(&offset)))
        }
        _ => Err(format!("{} is not a date function", function.name())),
    }
}

fn compile(pattern: &str) -> Result<DateFormat, String> {
    pattern.parse::<DateFormat>()
}

/// `date(text)`, `date(text, format)`, `date(text, format, default)`: a null text gives the
/// default (or null); a text that does not match gives the default when one is given and an
/// error otherwise.
fn date(args: &[Value]) -> Result<Value, String> {
    let default = args.get(2).cloned().unwrap_or(Value::Null);
    let input = match args.first() {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::DateTime(dt)) => return Ok(Value::DateTime(*dt)),
        Some(Value::Int(ms)) => {
            return DateTime::from_timestamp_millis(*ms)
                .map(|dt| Value::DateTime(dt.fixed_offset()))
                .ok_or_else(|| format!("epoch milliseconds {ms} out of range"));
        }
        Some(Value::Str(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "argument 1 (date) must be a string, got {}",
                other.type_name()
            ));
        }
    };
    let parsed = match text_arg(args, 1, "format")? {
        Some(pattern) => compile(&pattern)?.parse(input.trim()),
        None => parse_implicit_datetime(&input),
    };
    match parsed {
        Some(dt) => Ok(Value::DateTime(dt)),
        None if args.len() == 3 => Ok(default),
        None => Err(match text_arg(args, 1, "format")? {
            Some(pattern) => format!("{input:?} does not match the date format {pattern:?}"),
            None => format!("{input:?} matches no date pattern"),
        }),
    }
}

enum Component {
    Year,
    Quarter,
    Month,
    DayOfYear,
    Day,
    Week,
    Weekday,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// Component names as Data Prep accepts them (case-insensitive except `M`/`m`-style clashes,
/// which Data Prep resolves to month for `mm`/`m`/`MM`/`M` and minute for `mi`/`n`).
fn component(name: &str) -> Result<Component, String> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "year" | "yyyy" | "yy" => Component::Year,
        "quarter" | "qq" | "q" => Component::Quarter,
        "month" | "mm" | "m" => Component::Month,
        "dayofyear" | "dy" | "y" => Component::DayOfYear,
        "day" | "dd" | "d" => Component::Day,
        "week" | "ww" | "w" => Component::Week,
        "weekday" | "dw" => Component::Weekday,
        "hour" | "hh" | "hh24" | "hh12" => Component::Hour,
        "minute" | "mi" | "n" => Component::Minute,
        "second" | "ss" | "s" => Component::Second,
        "millisecond" | "sss" | "ms" => Component::Millisecond,
        _ => {
            return Err(format!(
                "unknown date component {name:?}: expected year, quarter, month, dayofyear, day, week, weekday, hour, minute, second or millisecond"
            ));
        }
    })
}

fn date_part(name: &str, dt: &DateTime<FixedOffset>) -> Result<i64, String> {
    Ok(i64::from(match component(name)? {
        Component::Year => dt.year(),
        Component::Quarter => dt.month0() as i32 / 3 + 1,
        Component::Month => dt.month() as i32,
        Component::DayOfYear => dt.ordinal() as i32,
        Component::Day => dt.day() as i32,
        Component::Week => dt.iso_week().week() as i32,
        // Sunday = 1 ... Saturday = 7, as SQL's DATEPART(weekday).
        Component::Weekday => dt.weekday().num_days_from_sunday() as i32 + 1,
        Component::Hour => dt.hour() as i32,
        Component::Minute => dt.minute() as i32,
        Component::Second => dt.second() as i32,
        Component::Millisecond => (dt.nanosecond() / 1_000_000) as i32,
    }))
}

fn set_date_part(
    name: &str,
    value: i64,
    dt: &DateTime<FixedOffset>,
) -> Result<DateTime<FixedOffset>, String> {
    let bad = || {
        format!(
            "cannot set {name} to {value} in {}",
            crate::expr::datetime_to_text(dt)
        )
    };
    let v32 = u32::try_from(value).map_err(|_| bad())?;
    let res = match component(name)? {
        Component::Year => dt.with_year(i32::try_from(value).map_err(|_| bad())?),
        Component::Month => dt.with_month(v32),
        Component::Day => dt.with_day(v32),
        Component::DayOfYear => dt.with_ordinal(v32),
        Component::Hour => dt.with_hour(v32),
        Component::Minute => dt.with_minute(v32),
        Component::Second => dt.with_second(v32),
        Component::Millisecond if v32 < 1000 => dt.with_nanosecond(v32 * 1_000_000),
        Component::Quarter if (1..=4).contains(&v32) => {
            dt.with_month((v32 - 1) * 3 + dt.month0() % 3 + 1)
        }
        Component::Week | Component::Weekday => {
            let current = date_part(name, dt)?;
            let days = if matches!(component(name)?, Component::Week) {
                (value - current) * 7
            } else {
                value - current
            };
            Duration::try_days(days).and_then(|d| dt.checked_add_signed(d))
        }
        _ => None,
    };
    res.ok_or_else(bad)
}

/// `make_date_time(year, month, day, hour, minute, second, nanosecond[, zone])`.
fn make_date_time(args: &[Value]) -> Result<Value, String> {
    let names = [
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "nanosecond",
    ];
    let mut parts = [0i64; 7];
    for (i, name) in names.iter().enumerate() {
        match int_arg(args, i, name)? {
            Some(v) => parts[i] = v,
            None => return Ok(Value::Null),
        }
    }
    let zone = text_arg(args, 7, "zone")?.unwrap_or_else(|| "UTC".to_owned());
    let out_of_range = || format!("no such date-time: {parts:?}");
    let to_u32 = |v: i64| u32::try_from(v).map_err(|_| out_of_range());
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(parts[0]).map_err(|_| out_of_range())?,
        to_u32(parts[1])?,
        to_u32(parts[2])?,
    )
    .ok_or_else(out_of_range)?;
    let time = NaiveTime::from_hms_nano_opt(
        to_u32(parts[3])?,
        to_u32(parts[4])?,
        to_u32(parts[5])?,
        to_u32(parts[6])?,
    )
    .ok_or_else(out_of_range)?;
    datefmt::local_in_zone(&zone, &NaiveDateTime::new(date, time))
        .map(Value::DateTime)
        .ok_or_else(|| {
            format!("unknown time zone {zone:?} (or a local time that does not exist in it)")
        })
}
