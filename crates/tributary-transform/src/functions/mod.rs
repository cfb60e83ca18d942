//! The Data Prep function library used by calculated fields.
//!
//! Groups (as the reference lists them): String, Regex, Hashing, URL, Date/time, Objects, Maps,
//! Arrays, Logical, Aggregation, Type conversion, JSON and `uuid`/`guid`. Not here: the
//! Profile-only `upsert_array_*`, the destination-only lambda functions (`filterArray`, ...),
//! `fpid_to_ecid`, and the user-agent and Analytics groups.
//!
//! Conventions, the same for every function: a null for a required argument gives null (not an
//! error); a value of the wrong type is converted when the reference's implicit conversions
//! allow it (numbers ↔ strings, string → boolean word lists, string → date-time pattern list)
//! and is an error otherwise; errors name the argument and what was expected. A function error
//! nullifies the destination column of that row and counts a warning.
//!
//! Choices where the reference is silent (each pinned by a test): `concat` skips null
//! arguments and is null only when all are; `instr` returns a 0-based index or -1 (its example
//! `instr("adobe.com", "com")` is 6); separators of `explode`/`split`/`str_to_object` are
//! regexes (Java's `String.split`); `date(text)` falls back to ISO-8601 forms after the
//! reference's pattern list; `date(text, fmt)` that does not match is an error unless a
//! default is given; `a.equals(b)` with a null side is false; `to_integer` checks the 32-bit
//! range, `to_bigint` the 64-bit one; `to_decimal` returns a float (Arrow `Float64`); regexes
//! use Rust's `regex` syntax (no look-around).

mod collections;
pub mod datefmt;
mod datetime;
mod hash;
mod string;
mod url;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};

use crate::expr::{BinaryOp, EvalState, Value};

pub use datefmt::DateFormat;
pub use datetime::{IMPLICIT_DATETIME_PATTERNS, parse_implicit_datetime};

/// Everything a function may need besides its arguments.
#[derive(Debug)]
pub struct CallContext<'a> {
    /// The source record (for `contains_key`).
    pub row: &'a Value,
    pub state: &'a mut EvalState,
}

/// Every function of the library. Names (and aliases) are in [`Function::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    // String
    Concat,
    Explode,
    Instr,
    ReplaceStr,
    Substr,
    Lower,
    Upper,
    Split,
    Join,
    Lpad,
    Rpad,
    Left,
    Right,
    Ltrim,
    Rtrim,
    Trim,
    Equals,
    EqualsIgnoreCase,
    // Regex
    ExtractRegex,
    MatchesRegex,
    // Hashing
    Sha1,
    Sha256,
    Sha512,
    Md5,
    Crc32,
    // URL
    GetUrlProtocol,
    GetUrlHost,
    GetUrlPort,
    GetUrlPath,
    GetUrlQueryStr,
    GetUrlEncoded,
    GetUrlDecoded,
    // Date/time
    Now,
    Timestamp,
    Format,
    Dformat,
    Date,
    DatePart,
    SetDatePart,
    MakeDateTime,
    ZoneDateToUtc,
    ZoneDateToZone,
    // Objects
    IsEmpty,
    ArraysToObject,
    ToObject,
    StrToObject,
    Get,
    ContainsKey,
    IsSet,
    Nullify,
    GetKeys,
    GetValues,
    // Maps
    MapGetValues,
    MapHasKeys,
    AddToMap,
    ObjectToMap,
    ArrayToMap,
    ToMap,
    // Arrays
    Coalesce,
    First,
    Last,
    AddToArray,
    JoinArrays,
    ToArray,
    SizeOf,
    // Logical
    Decode,
    Iif,
    // Aggregation
    Min,
    Max,
    // Type conversion
    ToBigint,
    ToDecimal,
    ToFloat,
    ToInteger,
    // JSON
    JsonToObject,
    // Special
    Uuid,
}

/// What a function returns, for deriving a destination type when there is no target schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnKind {
    Bool,
    Int,
    Float,
    Str,
    DateTime,
    StrArray,
    /// The common type of the value arguments (`coalesce`, `iif`, `min`, ...).
    SameAsArgs,
    /// Known only at run time (objects, maps, JSON).
    Dynamic,
}

/// (name, function) for every accepted spelling, the canonical name first.
const NAMES: &[(&str, Function)] = &[
    ("concat", Function::Concat),
    ("explode", Function::Explode),
    ("instr", Function::Instr),
    ("replacestr", Function::ReplaceStr),
    ("substr", Function::Substr),
    ("lower", Function::Lower),
    ("lcase", Function::Lower),
    ("upper", Function::Upper),
    ("ucase", Function::Upper),
    ("split", Function::Split),
    ("join", Function::Join),
    ("lpad", Function::Lpad),
    ("rpad", Function::Rpad),
    ("left", Function::Left),
    ("right", Function::Right),
    ("ltrim", Function::Ltrim),
    ("rtrim", Function::Rtrim),
    ("trim", Function::Trim),
    ("equals", Function::Equals),
    ("equalsIgnoreCase", Function::EqualsIgnoreCase),
    ("extract_regex", Function::ExtractRegex),
    ("matches_regex", Function::MatchesRegex),
    ("sha1", Function::Sha1),
    ("sha256", Function::Sha256),
    ("sha512", Function::Sha512),
    ("md5", Function::Md5),
    ("crc32", Function::Crc32),
    ("get_url_protocol", Function::GetUrlProtocol),
    ("get_url_host", Function::GetUrlHost),
    ("get_url_port", Function::GetUrlPort),
    ("get_url_path", Function::GetUrlPath),
    ("get_url_query_str", Function::GetUrlQueryStr),
    ("get_url_encoded", Function::GetUrlEncoded),
    ("get_url_decoded", Function::GetUrlDecoded),
    ("now", Function::Now),
    ("timestamp", Function::Timestamp),
    ("format", Function::Format),
    ("dformat", Function::Dformat),
    ("date", Function::Date),
    ("date_part", Function::DatePart),
    ("set_date_part", Function::SetDatePart),
    ("make_date_time", Function::MakeDateTime),
    ("make_timestamp", Function::MakeDateTime),
    ("zone_date_to_utc", Function::ZoneDateToUtc),
    ("zone_date_to_zone", Function::ZoneDateToZone),
    ("is_empty", Function::IsEmpty),
    ("empty", Function::IsEmpty),
    ("arrays_to_object", Function::ArraysToObject),
    ("arrays_to_objects", Function::ArraysToObject),
    ("to_object", Function::ToObject),
    ("str_to_object", Function::StrToObject),
    ("get", Function::Get),
    ("contains_key", Function::ContainsKey),
    ("is_set", Function::IsSet),
    ("nullify", Function::Nullify),
    ("get_keys", Function::GetKeys),
    ("get_values", Function::GetValues),
    ("map_get_values", Function::MapGetValues),
    ("map_has_keys", Function::MapHasKeys),
    ("add_to_map", Function::AddToMap),
    ("object_to_map", Function::ObjectToMap),
    ("array_to_map", Function::ArrayToMap),
    ("to_map", Function::ToMap),
    ("coalesce", Function::Coalesce),
    ("first", Function::First),
    ("last", Function::Last),
    ("add_to_array", Function::AddToArray),
    ("join_arrays", Function::JoinArrays),
    ("to_array", Function::ToArray),
    ("size_of", Function::SizeOf),
    ("size", Function::SizeOf),
    ("decode", Function::Decode),
    ("iif", Function::Iif),
    ("min", Function::Min),
    ("max", Function::Max),
    ("to_bigint", Function::ToBigint),
    ("to_decimal", Function::ToDecimal),
    ("to_float", Function::ToFloat),
    ("to_integer", Function::ToInteger),
    ("json_to_object", Function::JsonToObject),
    ("uuid", Function::Uuid),
    ("guid", Function::Uuid),
];

impl Function {
    /// The function of a name as written in an expression (names are case-sensitive, as in
    /// Data Prep).
    pub fn lookup(name: &str) -> Option<Function> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    /// Every canonical function name, for the function catalogue.
    pub fn all() -> impl Iterator<Item = Function> {
        let mut seen = Vec::new();
        NAMES.iter().filter_map(move |(_, f)| {
            if seen.contains(f) {
                None
            } else {
                seen.push(*f);
                Some(*f)
            }
        })
    }

    /// The accepted number of arguments: (min, max); `None` for variadic.
    pub fn arity(self) -> (usize, Option<usize>) {
        use Function::*;
        match self {
            Now | Timestamp | Nullify | Uuid => (0, Some(0)),
            Lower | Upper | Ltrim | Rtrim | Trim | GetUrlProtocol | GetUrlHost | GetUrlPort
            | GetUrlPath | GetUrlEncoded | GetUrlDecoded | ZoneDateToUtc | GetKeys
            | ContainsKey | IsSet | IsEmpty | SizeOf | ToBigint | ToDecimal | ToFloat
            | ToInteger | JsonToObject => (1, Some(1)),
            Sha1 | Sha256 | Sha512 | Md5 | Crc32 | GetUrlQueryStr | Explode => (1, Some(2)),
            Equals | EqualsIgnoreCase | ExtractRegex | MatchesRegex | Split | Left | Right
            | Dformat | DatePart | ZoneDateToZone | Get | MapGetValues | ArrayToMap => (2, Some(2)),
            Format => (2, Some(3)),
            Substr => (2, Some(3)),
            Instr => (2, Some(4)),
            ReplaceStr | Lpad | Rpad | SetDatePart | Iif => (3, Some(3)),
            Date => (1, Some(3)),
            StrToObject => (1, Some(3)),
            GetValues => (2, Some(4)),
            MakeDateTime => (7, Some(8)),
            Join | AddToArray => (1, None),
            Decode => (3, None),
            ToArray => (1, None),
            MapHasKeys => (2, None),
            ArraysToObject | ToObject | ToMap => (2, None),
            Concat | Coalesce | First | Last | JoinArrays | Min | Max | AddToMap | ObjectToMap => {
                (1, None)
            }
        }
    }

    /// What the function returns, for deriving destination types.
    pub fn return_kind(self) -> ReturnKind {
        use Function::*;
        match self {
            Instr | GetUrlPort | Timestamp | DatePart | SizeOf | ToBigint | ToInteger => {
                ReturnKind::Int
            }
            ToDecimal | ToFloat => ReturnKind::Float,
            Equals | EqualsIgnoreCase | MatchesRegex | IsEmpty | ContainsKey | IsSet
            | MapHasKeys => ReturnKind::Bool,
            Now | Date | SetDatePart | MakeDateTime | ZoneDateToUtc | ZoneDateToZone => {
                ReturnKind::DateTime
            }
            Explode | Split | ExtractRegex | GetKeys => ReturnKind::StrArray,
            Coalesce | First | Last | Iif | Decode | Min | Max => ReturnKind::SameAsArgs,
            Nullify | ArraysToObject | ToObject | StrToObject | Get | MapGetValues | AddToMap
            | ObjectToMap | ArrayToMap | ToMap | AddToArray | JoinArrays | ToArray
            | JsonToObject | GetUrlQueryStr => ReturnKind::Dynamic,
            _ => ReturnKind::Str,
        }
    }
}

/// Calls `function` with evaluated arguments. The arity was checked when the expression was
/// compiled; it is checked again here because expressions can also be built by hand.
pub fn call(
    function: Function,
    ctx: &mut CallContext<'_>,
    args: Vec<Value>,
) -> Result<Value, String> {
    let (min, max) = function.arity();
    if args.len() < min || max.is_some_and(|max| args.len() > max) {
        return Err(arity_message(function, args.len()));
    }
    use Function::*;
    match function {
        Concat | Explode | Instr | ReplaceStr | Substr | Lower | Upper | Split | Join | Lpad
        | Rpad | Left | Right | Ltrim | Rtrim | Trim | Equals | EqualsIgnoreCase | ExtractRegex
        | MatchesRegex => string::call(function, ctx, &args),
        Sha1 | Sha256 | Sha512 | Md5 | Crc32 => hash::call(function, &args),
        GetUrlProtocol | GetUrlHost | GetUrlPort | GetUrlPath | GetUrlQueryStr | GetUrlEncoded
        | GetUrlDecoded => url::call(function, &args),
        Now | Timestamp | Format | Dformat | Date | DatePart | SetDatePart | MakeDateTime
        | ZoneDateToUtc | ZoneDateToZone => datetime::call(function, ctx, &args),
        _ => collections::call(function, ctx, args),
    }
}

/// The message for a wrong number of arguments (also used at compile time).
pub fn arity_message(function: Function, given: usize) -> String {
    let (min, max) = function.arity();
    let expected = match max {
        Some(max) if max == min => format!("{min}"),
        Some(max) => format!("{min} to {max}"),
        None => format!("at least {min}"),
    };
    format!(
        "{} takes {expected} argument(s), got {given}",
        function.name()
    )
}

/// Implicit string → boolean conversion (the reference's word lists).
pub fn string_to_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "y" | "yes" | "Y" | "YES" | "on" | "ON" | "true" | "TRUE" | "Yes" | "True" | "On" => {
            Some(true)
        }
        "n" | "N" | "no" | "NO" | "off" | "OFF" | "false" | "FALSE" | "No" | "False" | "Off" => {
            Some(false)
        }
        _ => None,
    }
}

/// Implicit conversion to a number: integers and floats as they are, numeric strings parsed.
/// `Ok(None)` for null; an error for anything else.
pub fn to_number(value: &Value) -> Result<Option<Value>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Int(_) | Value::Float(_) => Ok(Some(value.clone())),
        Value::Str(s) => parse_number(s)
            .map(Some)
            .ok_or_else(|| format!("expected a number, got the string {s:?}")),
        other => Err(format!("expected a number, got {}", other.type_name())),
    }
}

/// Parses a numeric string: an integer when it has no fraction or exponent, a float otherwise.
pub fn parse_number(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::Int(i));
    }
    // Rust accepts "inf" and "NaN"; Data Prep's Java parsing accepts "Infinity" and "NaN" only,
    // so reject the words and keep digits.
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::Float)
}

/// `==` of the language: null equals only null; numbers compare by value across integer and
/// float; a string and a number compare as numbers when the string is numeric; a string and a
/// boolean through the word lists.
pub fn values_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            as_f64(left) == as_f64(right)
        }
        (Value::Str(s), Value::Int(_) | Value::Float(_))
        | (Value::Int(_) | Value::Float(_), Value::Str(s)) => {
            let other = if matches!(left, Value::Str(_)) {
                right
            } else {
                left
            };
            parse_number(s).is_some_and(|n| values_equal(&n, other))
        }
        (Value::Str(s), Value::Bool(b)) | (Value::Bool(b), Value::Str(s)) => {
            string_to_bool(s) == Some(*b)
        }
        (Value::DateTime(a), Value::DateTime(b)) => a == b,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_equal(x, y))
        }
        _ => left == right,
    }
}

/// Ordering for `<`, `min`, `max`: numbers by value, strings lexically, date-times by instant;
/// a string against a number or a date-time is converted first.
pub fn compare(left: &Value, right: &Value) -> Result<Ordering, String> {
    match (left, right) {
        (Value::Int(a), Value::Int(b)) => Ok(a.cmp(b)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => as_f64(left)
            .partial_cmp(&as_f64(right))
            .ok_or_else(|| "cannot compare NaN".to_owned()),
        (Value::Str(a), Value::Str(b)) => Ok(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Ok(a.cmp(b)),
        (Value::DateTime(a), Value::DateTime(b)) => Ok(a.cmp(b)),
        (Value::Str(s), Value::Int(_) | Value::Float(_)) => match parse_number(s) {
            Some(n) => compare(&n, right),
            None => Err(format!("cannot compare the string {s:?} with a number")),
        },
        (Value::Int(_) | Value::Float(_), Value::Str(_)) => {
            compare(right, left).map(Ordering::reverse)
        }
        (Value::Str(s), Value::DateTime(_)) => match parse_implicit_datetime(s) {
            Some(dt) => compare(&Value::DateTime(dt), right),
            None => Err(format!("cannot compare the string {s:?} with a date-time")),
        },
        (Value::DateTime(_), Value::Str(_)) => compare(right, left).map(Ordering::reverse),
        _ => Err(format!(
            "cannot compare {} with {}",
            left.type_name(),
            right.type_name()
        )),
    }
}

/// `+ - * / %` on two numbers: integers stay integers (with overflow and division-by-zero
/// errors), any float makes the result a float.
pub fn arithmetic(op: BinaryOp, left: &Value, right: &Value) -> Result<Value, String> {
    if let (Value::Int(a), Value::Int(b)) = (left, right) {
        let (a, b) = (*a, *b);
        let res = match op {
            BinaryOp::Add => a.checked_add(b),
            BinaryOp::Sub => a.checked_sub(b),
            BinaryOp::Mul => a.checked_mul(b),
            BinaryOp::Div | BinaryOp::Rem if b == 0 => return Err("division by zero".to_owned()),
            BinaryOp::Div => a.checked_div(b),
            BinaryOp::Rem => a.checked_rem(b),
            _ => return Err("not an arithmetic operator".to_owned()),
        };
        return res
            .map(Value::Int)
            .ok_or_else(|| "integer overflow".to_owned());
    }
    let (a, b) = (as_f64(left), as_f64(right));
    let res = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div | BinaryOp::Rem if b == 0.0 => return Err("division by zero".to_owned()),
        BinaryOp::Div => a / b,
        BinaryOp::Rem => a % b,
        _ => return Err("not an arithmetic operator".to_owned()),
    };
    Ok(Value::Float(res))
}

fn as_f64(value: &Value) -> f64 {
    match value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

/// Argument `index` as text (implicit conversion of scalars); `None` for null or a missing
/// optional argument.
pub(crate) fn text_arg(args: &[Value], index: usize, what: &str) -> Result<Option<String>, String> {
    match args.get(index) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(_) | Value::Object(_)) => Err(format!(
            "argument {} ({what}) must be a string, got {}",
            index + 1,
            args[index].type_name()
        )),
        Some(other) => Ok(other.to_text()),
    }
}

/// Argument `index` as an integer (whole floats and numeric strings accepted).
pub(crate) fn int_arg(args: &[Value], index: usize, what: &str) -> Result<Option<i64>, String> {
    let describe = |v: &Value| {
        format!(
            "argument {} ({what}) must be an integer, got {}",
            index + 1,
            describe_value(v)
        )
    };
    match args.get(index) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(v @ Value::Float(f)) => {
            if f.fract() == 0.0 && f.abs() < 9.2e18 {
                Ok(Some(*f as i64))
            } else {
                Err(describe(v))
            }
        }
        Some(v @ Value::Str(s)) => match parse_number(s) {
            Some(Value::Int(i)) => Ok(Some(i)),
            _ => Err(describe(v)),
        },
        Some(v) => Err(describe(v)),
    }
}

/// Argument `index` as a boolean (booleans, the word lists, numbers).
pub(crate) fn bool_arg(args: &[Value], index: usize, what: &str) -> Result<Option<bool>, String> {
    match args.get(index) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Str(s)) if string_to_bool(s).is_some() => Ok(string_to_bool(s)),
        Some(v) => Err(format!(
            "argument {} ({what}) must be a boolean, got {}",
            index + 1,
            describe_value(v)
        )),
    }
}

/// Argument `index` as a date-time: date-times as they are, strings through the implicit
/// pattern list, integers as epoch milliseconds.
pub(crate) fn datetime_arg(
    args: &[Value],
    index: usize,
    what: &str,
) -> Result<Option<DateTime<FixedOffset>>, String> {
    match args.get(index) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::DateTime(dt)) => Ok(Some(*dt)),
        Some(Value::Str(s)) => parse_implicit_datetime(s).map(Some).ok_or_else(|| {
            format!("argument {} ({what}) must be a date-time, got the string {s:?} that matches no date pattern", index + 1)
        }),
        Some(Value::Int(ms)) => DateTime::from_timestamp_millis(*ms)
            .map(|dt| Some(dt.fixed_offset()))
            .ok_or_else(|| format!("argument {} ({what}): epoch milliseconds {ms} out of range", index + 1)),
        Some(v) => Err(format!("argument {} ({what}) must be a date-time, got {}", index + 1, v.type_name())),
    }
}

/// A short description of a value for messages: its type, and its text when short.
pub(crate) fn describe_value(value: &Value) -> String {
    match value {
        Value::Str(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            format!(
                "{} {}",
                value.type_name(),
                value.to_text().unwrap_or_default()
            )
        }
        other => other.type_name().to_owned(),
    }
}
