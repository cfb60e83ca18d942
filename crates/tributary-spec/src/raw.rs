//! The lenient reader of raw documents: typed access to a `serde_json::Value` that records every
//! problem with its JSON pointer instead of stopping at the first.
//!
//! Why not `#[derive(Deserialize)]` raw structs: serde stops at the first mismatch and loses
//! the path, and the specs need per-field leniency (`limitValue` as a number or a numeric
//! string, `offSetName` / `offsetName`, objects or legacy comma strings). Reading the JSON tree
//! through these helpers accepts every documented variant and reports all problems at once.
//! `null` counts as absent for optional fields, as Adobe's documents write `"id": null`.

use serde_json::{Map, Value};

use crate::diag::{Diagnostics, child_pointer};

/// Collects the diagnostics of one file.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) file: String,
    pub(crate) diags: Diagnostics,
}

/// A value and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Node<'v> {
    pub(crate) value: &'v Value,
    pub(crate) ptr: String,
}

/// An object and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Obj<'v> {
    pub(crate) map: &'v Map<String, Value>,
    pub(crate) ptr: String,
}

impl Ctx {
    pub(crate) fn new(file: &str) -> Ctx {
        Ctx {
            file: file.to_owned(),
            diags: Diagnostics::new(),
        }
    }

    pub(crate) fn err(&mut self, ptr: &str, message: impl Into<String>) {
        self.diags.error(&self.file.clone(), ptr, message);
    }

    pub(crate) fn warn(&mut self, ptr: &str, message: impl Into<String>) {
        self.diags.warning(&self.file.clone(), ptr, message);
    }

    /// The number of errors so far; compare before and after a step to see if it failed.
    pub(crate) fn n_errors(&self) -> usize {
        self.diags.errors().count()
    }

    /// `node` as an object, or an error saying what was expected.
    pub(crate) fn object<'v>(&mut self, node: &Node<'v>, what: &str) -> Option<Obj<'v>> {
        match node.value {
            Value::Object(map) => Some(Obj {
                map,
                ptr: node.ptr.clone(),
            }),
            other => {
                self.err(
                    &node.ptr,
                    format!("expected {what} (an object), found {}", describe(other)),
                );
                None
            }
        }
    }

    /// `node` as a string.
    pub(crate) fn string(&mut self, node: &Node<'_>, what: &str) -> Option<String> {
        match node.value {
            Value::String(text) => Some(text.clone()),
            other => {
                self.err(
                    &node.ptr,
                    format!("expected {what} (a string), found {}", describe(other)),
                );
                None
            }
        }
    }

    /// `node` as a non-empty string.
    pub(crate) fn non_empty_string(&mut self, node: &Node<'_>, what: &str) -> Option<String> {
        let text = self.string(node, what)?;
        if text.trim().is_empty() {
            self.err(
                &node.ptr,
                format!("expected {what} (a non-empty string), found an empty string"),
            );
            return None;
        }
        Some(text)
    }

    /// `node` as a string, or a number / boolean written as text (`"version": 1.0`).
    pub(crate) fn text_like(&mut self, node: &Node<'_>, what: &str) -> Option<String> {
        match node.value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            other => {
                self.err(
                    &node.ptr,
                    format!("expected {what} (a string), found {}", describe(other)),
                );
                None
            }
        }
    }

    /// `node` as a non-negative integer, given as a number or a numeric string.
    pub(crate) fn uint(&mut self, node: &Node<'_>, what: &str) -> Option<u64> {
        let parsed = match node.value {
            Value::Number(number) => number.as_u64().or_else(|| {
                // 100.0 is an integer too; 1.5 and negatives are not.
                number
                    .as_f64()
                    .filter(|float| float.fract() == 0.0 && *float >= 0.0 && *float < 1.8e19)
                    .map(|float| float as u64)
            }),
            Value::String(text) => text.trim().parse::<u64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.err(
                &node.ptr,
                format!("expected {what} (a non-negative integer, as a number or a numeric string), found {}", describe(node.value)),
            );
        }
        parsed
    }

    /// `node` as an integer >= `minimum` that fits in u32.
    pub(crate) fn uint_at_least(
        &mut self,
        node: &Node<'_>,
        what: &str,
        minimum: u64,
    ) -> Option<u32> {
        let value = self.uint(node, what)?;
        if value < minimum || value > u64::from(u32::MAX) {
            self.err(
                &node.ptr,
                format!(
                    "expected {what} (an integer >= {minimum} and <= {}), found {value}",
                    u32::MAX
                ),
            );
            return None;
        }
        u32::try_from(value).ok()
    }

    /// `node` as a number (or a numeric string).
    pub(crate) fn number(&mut self, node: &Node<'_>, what: &str) -> Option<f64> {
        let parsed = match node.value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|float| float.is_finite()),
            _ => None,
        };
        if parsed.is_none() {
            self.err(
                &node.ptr,
                format!("expected {what} (a number), found {}", describe(node.value)),
            );
        }
        parsed
    }

    /// `node` as a boolean (or the strings `"true"` / `"false"`).
    pub(crate) fn boolean(&mut self, node: &Node<'_>, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(flag) => Some(*flag),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
            other => {
                self.err(
                    &node.ptr,
                    format!("expected {what} (true or false), found {}", describe(other)),
                );
                None
            }
        }
    }

    /// `node` as an array of strings; every bad element gets its own error.
    pub(crate) fn string_list(&mut self, node: &Node<'_>, what: &str) -> Option<Vec<String>> {
        let Value::Array(items) = node.value else {
            self.err(
                &node.ptr,
                format!(
                    "expected {what} (an array of strings), found {}",
                    describe(node.value)
                ),
            );
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        let mut ok = true;
        for (idx, item) in items.iter().enumerate() {
            match item {
                Value::String(text) => strings.push(text.clone()),
                other => {
                    ok = false;
                    self.err(
                        &format!("{}/{idx}", node.ptr),
                        format!("expected a string in {what}, found {}", describe(other)),
                    );
                }
            }
        }
        ok.then_some(strings)
    }

    /// `node` as an array.
    pub(crate) fn array<'v>(&mut self, node: &Node<'v>, what: &str) -> Option<Vec<Node<'v>>> {
        let Value::Array(items) = node.value else {
            self.err(
                &node.ptr,
                format!("expected {what} (an array), found {}", describe(node.value)),
            );
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .map(|(idx, value)| Node {
                    value,
                    ptr: format!("{}/{idx}", node.ptr),
                })
                .collect(),
        )
    }
}

impl<'v> Node<'v> {
    pub(crate) fn root(value: &'v Value) -> Node<'v> {
        Node {
            value,
            ptr: String::new(),
        }
    }
}

impl<'v> Obj<'v> {
    /// The pointer of field `name` of this object.
    pub(crate) fn ptr_of(&self, name: &str) -> String {
        child_pointer(&self.ptr, name)
    }

    /// The first present, non-null field among `names` (aliases). When several aliases are
    /// given, the first wins and a warning names the others.
    pub(crate) fn get(&self, ctx: &mut Ctx, names: &[&str]) -> Option<Node<'v>> {
        let mut found: Option<Node<'v>> = None;
        for name in names {
            let Some(value) = self.map.get(*name) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            match &found {
                None => {
                    found = Some(Node {
                        value,
                        ptr: self.ptr_of(name),
                    })
                }
                Some(first) => {
                    let first_name = first.ptr.rsplit('/').next().unwrap_or_default().to_owned();
                    ctx.warn(
                        &self.ptr_of(name),
                        format!("both {first_name} and {name} are given; using {first_name}"),
                    );
                }
            }
        }
        found
    }

    /// Like `get`, but a missing field is an error at the pointer the field would have.
    pub(crate) fn require(
        &self,
        ctx: &mut Ctx,
        names: &[&str],
        expected: &str,
    ) -> Option<Node<'v>> {
        let found = self.get(ctx, names);
        if found.is_none() {
            let aliases = if names.len() > 1 {
                format!(" (or {})", names[1..].join(", "))
            } else {
                String::new()
            };
            let is_null = names
                .iter()
                .any(|name| self.map.get(*name).is_some_and(Value::is_null));
            let found_text = if is_null { "null" } else { "nothing" };
            ctx.err(
                &self.ptr_of(names[0]),
                format!(
                    "missing required field {}{aliases}: expected {expected}, found {found_text}",
                    names[0]
                ),
            );
        }
        found
    }

    /// Warns about keys not in `known`: a typo such as `paginationParam` would otherwise be
    /// silently ignored. Suggests the closest known key.
    pub(crate) fn warn_unknown_keys(&self, ctx: &mut Ctx, known: &[&str], what: &str) {
        for key in self.map.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let suggestion = closest(key, known)
                .map(|close| format!(" (did you mean {close}?)"))
                .unwrap_or_default();
            ctx.warn(
                &self.ptr_of(key),
                format!("unknown field {key} in {what}{suggestion}; it is ignored"),
            );
        }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|value| !value.is_null())
    }

    pub(crate) fn opt_string(&self, ctx: &mut Ctx, names: &[&str], what: &str) -> Option<String> {
        let node = self.get(ctx, names)?;
        ctx.string(&node, what)
    }

    pub(crate) fn req_string(&self, ctx: &mut Ctx, names: &[&str], what: &str) -> Option<String> {
        let node = self.require(ctx, names, &format!("{what} (a string)"))?;
        ctx.non_empty_string(&node, what)
    }

    pub(crate) fn opt_bool(&self, ctx: &mut Ctx, names: &[&str], what: &str) -> Option<bool> {
        let node = self.get(ctx, names)?;
        ctx.boolean(&node, what)
    }
}

/// A short description of a value for "found ..." messages. Strings are shown up to 40 chars.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) if text.is_empty() => "an empty string".to_owned(),
        Value::String(text) => {
            let shown: String = text.chars().take(40).collect();
            let ellipsis = if text.chars().count() > 40 { "…" } else { "" };
            format!("the string {:?}{ellipsis}", shown)
        }
        Value::Array(items) => format!("an array of {} elements", items.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Like `describe` but never shows string content (for values that may be secrets).
pub(crate) fn describe_redacted(value: &Value) -> String {
    match value {
        Value::String(_) => "a string".to_owned(),
        other => describe(other),
    }
}

/// The JSON type name of a value, as JSON schema spells it.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The known name closest to `key` (case-insensitive edit distance <= 2), if any.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|candidate| {
            (
                edit_distance(&key, &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (i, left_char) in left.chars().enumerate() {
        let mut current = vec![i + 1; right.len() + 1];
        for (j, right_char) in right.iter().enumerate() {
            let substitution = previous[j] + usize::from(left_char != *right_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}
