//! JSON Patch (RFC 6902), the subset the Flow Service takes: `add`, `replace` and `remove` in
//! any case, as an array of operations or (as the OpenAPI document has it for connections) a
//! single operation object. Other operations are refused with `FLOW-1434-400`.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    /// RFC 6901 pointer.
    pub path: String,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// Reads the operations of a PATCH body.
pub fn parse(body: &Value) -> ApiResult<Vec<PatchOp>> {
    let items: Vec<&Value> = match body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![body],
        _ => {
            return Err(ApiError::field(
                1455,
                "",
                "expected an array of patch operations {op, path, value}",
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::field(
            1455,
            "",
            "expected at least one patch operation",
        ));
    }
    let mut ops = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        let at = |field: &str| {
            if matches!(body, Value::Array(_)) {
                format!("/{idx}/{field}")
            } else {
                format!("/{field}")
            }
        };
        let Some(map) = item.as_object() else {
            return Err(ApiError::field(
                1455,
                &at("").trim_end_matches('/').to_owned(),
                "expected a patch operation object",
            ));
        };
        let Some(op_text) = map.get("op").and_then(Value::as_str) else {
            return Err(ApiError::field(
                1455,
                &at("op"),
                "missing required field op: expected add, replace or remove",
            ));
        };
        let op = match op_text.to_ascii_lowercase().as_str() {
            "add" => OpKind::Add,
            "replace" => OpKind::Replace,
            "remove" => OpKind::Remove,
            _ => {
                return Err(ApiError::bad_request(
                    1434,
                    format!(
                        "patch operation {op_text:?} is not supported; expected add, replace or remove"
                    ),
                ));
            }
        };
        let Some(path) = map.get("path").and_then(Value::as_str) else {
            return Err(ApiError::field(
                1455,
                &at("path"),
                "missing required field path: expected a JSON pointer",
            ));
        };
        if !path.starts_with('/') {
            return Err(ApiError::field(
                1455,
                &at("path"),
                format!("expected a JSON pointer starting with /, found {path:?}"),
            ));
        }
        let value = map.get("value").cloned();
        if op != OpKind::Remove && value.is_none() {
            return Err(ApiError::field(
                1455,
                &at("value"),
                "missing required field value",
            ));
        }
        ops.push(PatchOp {
            op,
            path: path.to_owned(),
            value,
        });
    }
    Ok(ops)
}

/// Applies the operations to a copy of `doc`; the first one that cannot apply is an error and
/// nothing is changed.
pub fn apply(doc: &Value, ops: &[PatchOp]) -> ApiResult<Value> {
    let mut patched = doc.clone();
    for op in ops {
        apply_one(&mut patched, op)?;
    }
    Ok(patched)
}

fn apply_one(doc: &mut Value, op: &PatchOp) -> ApiResult<()> {
    let tokens: Vec<String> = op
        .path
        .split('/')
        .skip(1)
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return Err(ApiError::field(
            1455,
            &op.path,
            "the whole document cannot be patched",
        ));
    };
    let mut target = &mut *doc;
    for (depth, token) in parents.iter().enumerate() {
        let next = match target {
            Value::Object(map) => {
                if !map.contains_key(token) && op.op == OpKind::Add && depth + 1 == parents.len() {
                    // `add` of /options/x on a document without options creates the parent.
                    map.insert(token.clone(), Value::Object(serde_json::Map::new()));
                }
                map.get_mut(token)
            }
            Value::Array(items) => token
                .parse::<usize>()
                .ok()
                .and_then(|idx| items.get_mut(idx)),
            _ => None,
        };
        let Some(next) = next else {
            return Err(ApiError::field(1455, &op.path, "the path does not exist"));
        };
        target = next;
    }
    match (target, op.op) {
        (Value::Object(map), OpKind::Add) => {
            map.insert(last.clone(), op.value.clone().unwrap_or(Value::Null));
        }
        (Value::Object(map), OpKind::Replace) => {
            let Some(slot) = map.get_mut(last) else {
                return Err(ApiError::field(
                    1455,
                    &op.path,
                    "replace of a field that does not exist",
                ));
            };
            *slot = op.value.clone().unwrap_or(Value::Null);
        }
        (Value::Object(map), OpKind::Remove) => {
            if map.shift_remove(last).is_none() {
                return Err(ApiError::field(
                    1455,
                    &op.path,
                    "remove of a field that does not exist",
                ));
            }
        }
        (Value::Array(items), kind) => {
            let value = op.value.clone().unwrap_or(Value::Null);
            if kind == OpKind::Add && last == "-" {
                items.push(value);
                return Ok(());
            }
            let Some(idx) = last.parse::<usize>().ok() else {
                return Err(ApiError::field(1455, &op.path, "expected an array index"));
            };
            match kind {
                OpKind::Add if idx <= items.len() => items.insert(idx, value),
                OpKind::Replace if idx < items.len() => items[idx] = value,
                OpKind::Remove if idx < items.len() => {
                    items.remove(idx);
                }
                _ => {
                    return Err(ApiError::field(
                        1455,
                        &op.path,
                        "the array index is out of range",
                    ));
                }
            }
        }
        _ => return Err(ApiError::field(1455, &op.path, "the path does not exist")),
    }
    Ok(())
}
