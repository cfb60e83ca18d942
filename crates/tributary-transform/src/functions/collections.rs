//! Objects, maps, arrays, logical, aggregation, type conversion, JSON and `uuid`.
//!
//! Maps and objects are the same value here ([`Value::Object`]); the map functions differ from
//! the object ones only in their argument shapes, as in the reference.

use super::string::java_split;
use super::{
    CallContext, Function, bool_arg, compare, describe_value, parse_number, text_arg, values_equal,
};
use crate::expr::{FieldPath, Value};

pub(super) fn call(
    function: Function,
    ctx: &mut CallContext<'_>,
    args: Vec<Value>,
) -> Result<Value, String> {
    use Function::*;
    match function {
        IsEmpty => Ok(Value::Bool(match &args[0] {
            Value::Null => true,
            Value::Str(s) => s.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::Object(entries) => entries.is_empty(),
            _ => false,
        })),
        ArraysToObject => arrays_to_object(args),
        ToObject | ToMap => pairs_to_object(args),
        StrToObject => {
            let Some(input) = text_arg(&args, 0, "string")? else {
                return Ok(Value::Null);
            };
            let value_delim =
                text_arg(&args, 1, "value delimiter")?.unwrap_or_else(|| ":".to_owned());
            let field_delim =
                text_arg(&args, 2, "field delimiter")?.unwrap_or_else(|| ",".to_owned());
            let pairs = split_pairs(ctx, &input, &value_delim, &field_delim)?;
            Ok(Value::Object(
                pairs.into_iter().map(|(k, v)| (k, Value::Str(v))).collect(),
            ))
        }
        Get => {
            let Some(key) = text_arg(&args, 1, "key")? else {
                return Ok(Value::Null);
            };
            match &args[0] {
                Value::Null => Ok(Value::Null),
                object @ Value::Object(_) => Ok(object.get(&key).cloned().unwrap_or(Value::Null)),
                other => Err(format!(
                    "argument 1 (object) must be an object, got {}",
                    other.type_name()
                )),
            }
        }
        ContainsKey | IsSet => {
            let Some(path) = text_arg(&args, 0, "path")? else {
                return Ok(Value::Bool(false));
            };
            let path = FieldPath::parse(&path)
                .map_err(|err| format!("invalid path {path:?}: {}", err.message))?;
            Ok(Value::Bool(
                !crate::expr::lookup_path(ctx.row, &path).is_null(),
            ))
        }
        Nullify => Ok(Value::Null),
        GetKeys => match &args[0] {
            Value::Null => Ok(Value::Null),
            Value::Object(entries) => Ok(Value::Array(
                entries.iter().map(|(k, _)| Value::Str(k.clone())).collect(),
            )),
            other => Err(format!(
                "argument 1 (object) must be an object, got {}",
                other.type_name()
            )),
        },
        GetValues => {
            let (Some(input), Some(key)) =
                (text_arg(&args, 0, "string")?, text_arg(&args, 1, "key")?)
            else {
                return Ok(Value::Null);
            };
            let value_delim =
                text_arg(&args, 2, "value delimiter")?.unwrap_or_else(|| ":".to_owned());
            let field_delim =
                text_arg(&args, 3, "field delimiter")?.unwrap_or_else(|| ",".to_owned());
            let pairs = split_pairs(ctx, &input, &value_delim, &field_delim)?;
            Ok(pairs
                .into_iter()
                .find(|(k, _)| *k == key)
                .map_or(Value::Null, |(_, v)| Value::Str(v)))
        }
        MapGetValues => match (&args[0], &args[1]) {
            (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
            (map @ Value::Object(_), Value::Array(keys)) => {
                let mut out = Vec::new();
                for key in keys {
                    if let Some(key) = key.to_text()
                        && let Some(value) = map.get(&key)
                    {
                        out.push((key, value.clone()));
                    }
                }
                Ok(Value::Object(out))
            }
            (map @ Value::Object(_), key) => {
                let key = key.to_text().unwrap_or_default();
                Ok(map.get(&key).cloned().unwrap_or(Value::Null))
            }
            (other, _) => Err(format!(
                "argument 1 (map) must be a map, got {}",
                other.type_name()
            )),
        },
        MapHasKeys => {
            let map = match &args[0] {
                Value::Null => return Ok(Value::Bool(false)),
                map @ Value::Object(_) => map,
                other => {
                    return Err(format!(
                        "argument 1 (map) must be a map, got {}",
                        other.type_name()
                    ));
                }
            };
            let keys = flatten(&args[1..]);
            Ok(Value::Bool(keys.iter().any(|k| {
                k.to_text().is_some_and(|k| map.get(&k).is_some())
            })))
        }
        AddToMap => {
            let mut out = Vec::new();
            for (i, arg) in args.into_iter().enumerate() {
                match arg {
                    Value::Null => {}
                    Value::Object(entries) => {
                        for (k, v) in entries {
                            Value::insert(&mut out, k, v);
                        }
                    }
                    other => {
                        return Err(format!(
                            "argument {} must be a map, got {}",
                            i + 1,
                            other.type_name()
                        ));
                    }
                }
            }
            Ok(Value::Object(out))
        }
        ObjectToMap => match args.as_slice() {
            [Value::Null] => Ok(Value::Null),
            [Value::Object(_)] => Ok(args.into_iter().next().unwrap_or(Value::Null)),
            [Value::Array(_), _] => array_to_map(args),
            [_] => Err(format!(
                "object_to_map with one argument takes an object, got {}",
                args[0].type_name()
            )),
            _ => pairs_to_object(args),
        },
        ArrayToMap => array_to_map(args),
        Coalesce => Ok(flatten_single(args)
            .into_iter()
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null)),
        First => Ok(flatten_single(args)
            .into_iter()
            .next()
            .unwrap_or(Value::Null)),
        Last => Ok(flatten_single(args).pop().unwrap_or(Value::Null)),
        AddToArray => {
            let mut iter = args.into_iter();
            let mut out = match iter.next() {
                Some(Value::Array(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(other) => {
                    return Err(format!(
                        "argument 1 (array) must be an array, got {}",
                        other.type_name()
                    ));
                }
            };
            out.extend(iter);
            Ok(Value::Array(out))
        }
        JoinArrays => {
            let mut out = Vec::new();
            for arg in args {
                match arg {
                    Value::Array(items) => out.extend(items),
                    Value::Null => {}
                    other => out.push(other),
                }
            }
            Ok(Value::Array(out))
        }
        ToArray => {
            let include_nulls = bool_arg(&args, 0, "include nulls")?.unwrap_or(false);
            Ok(Value::Array(
                args.into_iter()
                    .skip(1)
                    .filter(|v| include_nulls || !v.is_null())
                    .collect(),
            ))
        }
        SizeOf => Ok(Value::Int(match &args[0] {
            Value::Null => 0,
            Value::Array(items) => items.len() as i64,
            Value::Object(entries) => entries.len() as i64,
            Value::Str(s) => s.chars().count() as i64,
            other => {
                return Err(format!(
                    "argument 1 must be an array, a map or a string, got {}",
                    other.type_name()
                ));
            }
        })),
        Decode => {
            let key = &args[0];
            let options = &args[1..];
            for pair in options.chunks_exact(2) {
                if values_equal(key, &pair[0]) {
                    return Ok(pair[1].clone());
                }
            }
            Ok(if options.len() % 2 == 1 {
                options[options.len() - 1].clone()
            } else {
                Value::Null
            })
        }
        Iif => {
            let condition = match &args[0] {
                Value::Null => false,
                other => crate::expr::truthy(other)?,
            };
            Ok(args
                .into_iter()
                .nth(if condition { 1 } else { 2 })
                .unwrap_or(Value::Null))
        }
        Min | Max => {
            let mut best: Option<Value> = None;
            for value in flatten_single(args) {
                if value.is_null() {
                    continue;
                }
                best = Some(match best {
                    None => value,
                    Some(current) => {
                        let ordering = compare(&value, &current)?;
                        let better = if function == Min {
                            ordering.is_lt()
                        } else {
                            ordering.is_gt()
                        };
                        if better { value } else { current }
                    }
                });
            }
            Ok(best.unwrap_or(Value::Null))
        }
        ToBigint | ToInteger => {
            let value = match &args[0] {
                Value::Null => return Ok(Value::Null),
                Value::Int(i) => *i,
                Value::Float(f) => float_to_int(*f)?,
                Value::Bool(b) => i64::from(*b),
                Value::Str(s) => match parse_number(s) {
                    Some(Value::Int(i)) => i,
                    Some(Value::Float(f)) => float_to_int(f)?,
                    _ => {
                        return Err(format!(
                            "cannot convert {} to an integer",
                            describe_value(&args[0])
                        ));
                    }
                },
                other => {
                    return Err(format!(
                        "cannot convert {} to an integer",
                        other.type_name()
                    ));
                }
            };
            if function == ToInteger && i32::try_from(value).is_err() {
                return Err(format!(
                    "{value} does not fit in a 32-bit integer; use to_bigint"
                ));
            }
            Ok(Value::Int(value))
        }
        ToDecimal | ToFloat => match &args[0] {
            Value::Null => Ok(Value::Null),
            Value::Int(i) => Ok(Value::Float(*i as f64)),
            Value::Float(f) => Ok(Value::Float(*f)),
            Value::Str(s) => match parse_number(s) {
                Some(Value::Int(i)) => Ok(Value::Float(i as f64)),
                Some(Value::Float(f)) => Ok(Value::Float(f)),
                _ => Err(format!(
                    "cannot convert {} to a number",
                    describe_value(&args[0])
                )),
            },
            other => Err(format!("cannot convert {} to a number", other.type_name())),
        },
        JsonToObject => match &args[0] {
            Value::Null => Ok(Value::Null),
            Value::Str(s) => serde_json::from_str::<serde_json::Value>(s)
                .map(|json| Value::from_json(&json))
                .map_err(|err| format!("invalid JSON: {err}")),
            value @ (Value::Object(_) | Value::Array(_)) => Ok(value.clone()),
            other => Err(format!(
                "argument 1 must be a JSON string, got {}",
                other.type_name()
            )),
        },
        Uuid => Ok(Value::Str(uuid::Uuid::new_v4().to_string())),
        _ => Err(format!("{} is not handled here", function.name())),
    }
}

fn float_to_int(f: f64) -> Result<i64, String> {
    let truncated = f.trunc();
    if truncated.is_finite() && truncated.abs() < 9.2e18 {
        Ok(truncated as i64)
    } else {
        Err(format!("{f} does not fit in a 64-bit integer"))
    }
}

/// With one array argument, its elements; otherwise the arguments themselves.
fn flatten_single(args: Vec<Value>) -> Vec<Value> {
    match <[Value; 1]>::try_from(args) {
        Ok([Value::Array(items)]) => items,
        Ok([single]) => vec![single],
        Err(args) => args,
    }
}

/// Arguments with arrays spread.
fn flatten(args: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for arg in args {
        match arg {
            Value::Array(items) => out.extend(items.iter().cloned()),
            other => out.push(other.clone()),
        }
    }
    out
}

/// `to_object("k1", v1, "k2", v2, ...)`.
fn pairs_to_object(args: Vec<Value>) -> Result<Value, String> {
    if !args.len().is_multiple_of(2) {
        return Err(format!(
            "expected key/value pairs, got {} arguments",
            args.len()
        ));
    }
    let mut out = Vec::with_capacity(args.len() / 2);
    let mut iter = args.into_iter().enumerate();
    while let (Some((i, key)), Some((_, value))) = (iter.next(), iter.next()) {
        let key = match key {
            Value::Str(s) => s,
            Value::Null => return Err(format!("argument {} (key) is null", i + 1)),
            other => other
                .to_text()
                .ok_or_else(|| format!("argument {} (key) must be a string", i + 1))?,
        };
        Value::insert(&mut out, key, value);
    }
    Ok(Value::Object(out))
}

/// `arrays_to_object("k1", [..], "k2", [..])` → `[{k1: .., k2: ..}, ...]`, zipped by index;
/// shorter arrays give null.
fn arrays_to_object(args: Vec<Value>) -> Result<Value, String> {
    if !args.len().is_multiple_of(2) {
        return Err(format!(
            "expected key/array pairs, got {} arguments",
            args.len()
        ));
    }
    let mut columns = Vec::new();
    for (i, pair) in args.chunks_exact(2).enumerate() {
        let key = pair[0]
            .to_text()
            .ok_or_else(|| format!("argument {} (key) is null", 2 * i + 1))?;
        let items = match &pair[1] {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            other => {
                return Err(format!(
                    "argument {} must be an array, got {}",
                    2 * i + 2,
                    other.type_name()
                ));
            }
        };
        columns.push((key, items));
    }
    let n_rows = columns
        .iter()
        .map(|(_, items)| items.len())
        .max()
        .unwrap_or(0);
    let mut rows = Vec::with_capacity(n_rows);
    for row in 0..n_rows {
        let mut object = Vec::with_capacity(columns.len());
        for (key, items) in &columns {
            Value::insert(
                &mut object,
                key.clone(),
                items.get(row).cloned().unwrap_or(Value::Null),
            );
        }
        rows.push(Value::Object(object));
    }
    Ok(Value::Array(rows))
}

/// `array_to_map(objects, "id")`: a map from each object's `id` (as text) to the object.
fn array_to_map(args: Vec<Value>) -> Result<Value, String> {
    let Some(key) = text_arg(&args, 1, "key")? else {
        return Ok(Value::Null);
    };
    let items = match &args[0] {
        Value::Null => return Ok(Value::Null),
        Value::Array(items) => items,
        other => {
            return Err(format!(
                "argument 1 must be an array of objects, got {}",
                other.type_name()
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(_) => {
                if let Some(id) = item.get(&key).and_then(Value::to_text) {
                    Value::insert(&mut out, id, item.clone());
                }
            }
            Value::Null => {}
            other => {
                return Err(format!(
                    "array elements must be objects, got {}",
                    other.type_name()
                ));
            }
        }
    }
    Ok(Value::Object(out))
}

/// Splits `k1<vd>v1<fd>k2<vd>v2` into trimmed pairs; delimiters are regexes.
fn split_pairs(
    ctx: &mut CallContext<'_>,
    input: &str,
    value_delim: &str,
    field_delim: &str,
) -> Result<Vec<(String, String)>, String> {
    let fields = java_split(ctx.state.regex(field_delim)?, input);
    let value_regex = ctx.state.regex(value_delim)?;
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        if field.trim().is_empty() {
            continue;
        }
        let mut parts = value_regex.splitn(&field, 2);
        let key = parts.next().unwrap_or("").trim().to_owned();
        let value = parts.next().unwrap_or("").trim().to_owned();
        out.push((key, value));
    }
    Ok(out)
}
