//! String and regex functions. Positions and lengths count characters, not bytes.
//! Separators of `explode`, `split`, `str_to_object` and `get_values` are regexes, as Java's
//! `String.split` (whose trailing empty parts are dropped too).

use regex::Regex;

use super::{CallContext, Function, int_arg, text_arg};
use crate::expr::Value;

/// The longest string `lpad`/`rpad` build: a typo in a count must not exhaust memory.
const MAX_PADDED_CHARS: usize = 1 << 20;

pub(super) fn call(
    function: Function,
    ctx: &mut CallContext<'_>,
    args: &[Value],
) -> Result<Value, String> {
    use Function::*;
    match function {
        Concat => {
            // Null arguments contribute nothing; the result is null only when all are null.
            let mut out = String::new();
            let mut any = false;
            for index in 0..args.len() {
                if let Some(text) = text_arg(args, index, "value")? {
                    out.push_str(&text);
                    any = true;
                }
            }
            Ok(if any { Value::Str(out) } else { Value::Null })
        }
        Explode => {
            let Some(input) = text_arg(args, 0, "string")? else {
                return Ok(Value::Null);
            };
            let pattern = text_arg(args, 1, "regex")?.unwrap_or_else(|| ",".to_owned());
            let regex = ctx.state.regex(&pattern)?;
            Ok(strings(java_split(regex, &input)))
        }
        Instr => {
            // Positions are 0-based character indexes, -1 when absent (Java's `indexOf`, as
            // the reference's example `instr("adobe.com", "com")` = 6 shows).
            let (Some(input), Some(needle)) =
                (text_arg(args, 0, "input")?, text_arg(args, 1, "substring")?)
            else {
                return Ok(Value::Null);
            };
            let start = int_arg(args, 2, "start position")?.unwrap_or(0).max(0) as usize;
            let occurrence = int_arg(args, 3, "occurrence")?.unwrap_or(1);
            if occurrence < 1 {
                return Err(format!(
                    "argument 4 (occurrence) must be at least 1, got {occurrence}"
                ));
            }
            Ok(Value::Int(instr(
                &input,
                &needle,
                start,
                occurrence as usize,
            )))
        }
        ReplaceStr => {
            let (Some(input), Some(find)) = (
                text_arg(args, 0, "input")?,
                text_arg(args, 1, "string to find")?,
            ) else {
                return Ok(Value::Null);
            };
            let replacement = text_arg(args, 2, "replacement")?.unwrap_or_default();
            if find.is_empty() {
                return Ok(Value::Str(input));
            }
            Ok(Value::Str(input.replace(&find, &replacement)))
        }
        Substr => {
            let Some(input) = text_arg(args, 0, "input")? else {
                return Ok(Value::Null);
            };
            let Some(start) = int_arg(args, 1, "start index")? else {
                return Ok(Value::Null);
            };
            let length = int_arg(args, 2, "length")?;
            if start < 0 {
                return Err(format!(
                    "argument 2 (start index) must not be negative, got {start}"
                ));
            }
            if let Some(length) = length
                && length < 0
            {
                return Err(format!(
                    "argument 3 (length) must not be negative, got {length}"
                ));
            }
            let chars = input.chars().skip(start as usize);
            Ok(Value::Str(match length {
                Some(length) => chars.take(length as usize).collect(),
                None => chars.collect(),
            }))
        }
        Lower => Ok(map_text(args, |s| s.to_lowercase())?),
        Upper => Ok(map_text(args, |s| s.to_uppercase())?),
        Ltrim => Ok(map_text(args, |s| s.trim_start().to_owned())?),
        Rtrim => Ok(map_text(args, |s| s.trim_end().to_owned())?),
        Trim => Ok(map_text(args, |s| s.trim().to_owned())?),
        Split => {
            let Some(input) = text_arg(args, 0, "input")? else {
                return Ok(Value::Null);
            };
            let Some(separator) = text_arg(args, 1, "separator")? else {
                return Ok(Value::Null);
            };
            if separator.is_empty() {
                return Err("argument 2 (separator) must not be empty".to_owned());
            }
            let regex = ctx.state.regex(&separator)?;
            Ok(strings(java_split(regex, &input)))
        }
        Join => {
            let Some(separator) = text_arg(args, 0, "separator")? else {
                return Ok(Value::Null);
            };
            let items: Vec<&Value> = match &args[1..] {
                [Value::Array(items)] => items.iter().collect(),
                rest => rest.iter().collect(),
            };
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Null => {}
                    Value::Array(_) | Value::Object(_) => {
                        return Err(format!(
                            "elements must be scalars, got {}",
                            item.type_name()
                        ));
                    }
                    other => parts.extend(other.to_text()),
                }
            }
            Ok(Value::Str(parts.join(&separator)))
        }
        Lpad | Rpad => {
            let Some(input) = text_arg(args, 0, "input")? else {
                return Ok(Value::Null);
            };
            let Some(count) = int_arg(args, 1, "count")? else {
                return Ok(Value::Null);
            };
            let padding = text_arg(args, 2, "padding")?
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| " ".to_owned());
            let have = input.chars().count();
            let want = usize::try_from(count).unwrap_or(0);
            if want > MAX_PADDED_CHARS {
                return Err(format!(
                    "argument 2 (count) must be at most {MAX_PADDED_CHARS}, got {count}"
                ));
            }
            if want <= have {
                return Ok(Value::Str(input));
            }
            let fill: String = padding.chars().cycle().take(want - have).collect();
            Ok(Value::Str(if function == Lpad {
                fill + &input
            } else {
                input + &fill
            }))
        }
        Left | Right => {
            let Some(input) = text_arg(args, 0, "string")? else {
                return Ok(Value::Null);
            };
            let Some(count) = int_arg(args, 1, "count")? else {
                return Ok(Value::Null);
            };
            let count = usize::try_from(count).unwrap_or(0);
            let n_chars = input.chars().count();
            Ok(Value::Str(if function == Left {
                input.chars().take(count).collect()
            } else {
                input.chars().skip(n_chars.saturating_sub(count)).collect()
            }))
        }
        Equals | EqualsIgnoreCase => {
            let (Some(a), Some(b)) = (
                text_arg(args, 0, "string")?,
                text_arg(args, 1, "other string")?,
            ) else {
                // Java's `a.equals(null)` is false; a null receiver is treated the same way
                // instead of failing the row.
                return Ok(Value::Bool(false));
            };
            Ok(Value::Bool(if function == Equals {
                a == b
            } else {
                a.to_lowercase() == b.to_lowercase()
            }))
        }
        ExtractRegex => {
            let (Some(input), Some(pattern)) =
                (text_arg(args, 0, "string")?, text_arg(args, 1, "regex")?)
            else {
                return Ok(Value::Null);
            };
            let regex = ctx.state.regex(&pattern)?;
            match regex.captures(&input) {
                None => Ok(Value::Null),
                Some(captures) => Ok(Value::Array(
                    captures
                        .iter()
                        .map(|m| m.map_or(Value::Null, |m| Value::Str(m.as_str().to_owned())))
                        .collect(),
                )),
            }
        }
        MatchesRegex => {
            let (Some(input), Some(pattern)) =
                (text_arg(args, 0, "string")?, text_arg(args, 1, "regex")?)
            else {
                return Ok(Value::Null);
            };
            // Java's `matches` needs the whole input to match.
            let regex = ctx.state.regex(&format!("^(?:{pattern})$"))?;
            Ok(Value::Bool(regex.is_match(&input)))
        }
        _ => Err(format!("{} is not a string function", function.name())),
    }
}

fn map_text(args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, String> {
    Ok(match text_arg(args, 0, "string")? {
        Some(text) => Value::Str(f(&text)),
        None => Value::Null,
    })
}

fn strings(parts: Vec<String>) -> Value {
    Value::Array(parts.into_iter().map(Value::Str).collect())
}

/// `String.split(regex)`: trailing empty strings removed; a leading empty string produced by a
/// zero-width match at the start is removed too.
pub(super) fn java_split(regex: &Regex, input: &str) -> Vec<String> {
    if input.is_empty() {
        return vec![String::new()];
    }
    let mut parts: Vec<String> = regex.split(input).map(str::to_owned).collect();
    while parts.len() > 1 && parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    parts
}

/// 0-based character index of the `occurrence`-th `needle` at or after character `start`;
/// -1 if none.
fn instr(input: &str, needle: &str, start: usize, occurrence: usize) -> i64 {
    let n_chars = input.chars().count();
    if start > n_chars {
        return -1;
    }
    let byte_start = input
        .char_indices()
        .nth(start)
        .map_or(input.len(), |(b, _)| b);
    if needle.is_empty() {
        return start as i64;
    }
    let mut found = 0;
    let mut search_from = byte_start;
    while let Some(pos) = input[search_from..].find(needle) {
        let at = search_from + pos;
        found += 1;
        if found == occurrence {
            return input[..at].chars().count() as i64;
        }
        search_from = at + needle.len();
    }
    -1
}
