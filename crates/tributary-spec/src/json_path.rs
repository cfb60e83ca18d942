//! `JsonPath`: a validated JSONPath (RFC 9535) as used by `contentPath`, `pointerPath`,
//! `continuationTokenPath` and `endConditionName`.
//!
//! Specs write both `$.paging.next` and the bare `paging.next`; both are normalised to the
//! `$.`-rooted form. Besides the compiled query, a path made only of member names exposes them as
//! `simple_keys()`, so a byte-level scanner can follow it without a JSONPath engine.

use std::fmt;

use serde_json::Value;

/// A parsed JSONPath together with its normalised text.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    query: serde_json_path::JsonPath,
    simple_keys: Option<Vec<String>>,
}

impl JsonPath {
    /// Parses `text`, prefixing `$.` when it does not start with `$` (`paging.next`).
    /// The error is a lowercase message naming the path.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(
                "expected a JSONPath such as \"$.items\", found an empty string".to_owned(),
            );
        }
        let normalised = if trimmed.starts_with('$') {
            trimmed.to_owned()
        } else if trimmed.starts_with('[') {
            format!("${trimmed}")
        } else {
            format!("$.{trimmed}")
        };
        match serde_json_path::JsonPath::parse(&normalised) {
            Ok(query) => Ok(JsonPath {
                simple_keys: simple_keys_of(&normalised),
                text: normalised,
                query,
            }),
            Err(err) => Err(format!("invalid JSONPath {trimmed:?}: {err}")),
        }
    }

    /// The normalised text, always starting with `$`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The member names of a path like `$.data.items` (`["data", "items"]`; `$` gives `[]`), or
    /// `None` when the path uses wildcards, indexes, filters or recursion.
    pub fn simple_keys(&self) -> Option<&[String]> {
        self.simple_keys.as_deref()
    }

    /// The first node the path selects in `value`, if any.
    pub fn first<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        if let Some(keys) = &self.simple_keys {
            let mut node = value;
            for key in keys {
                node = node.as_object()?.get(key)?;
            }
            return Some(node);
        }
        self.query.query(value).first()
    }

    /// Every node the path selects in `value`.
    pub fn all<'v>(&self, value: &'v Value) -> Vec<&'v Value> {
        self.query.query(value).all()
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPath({:?})", self.text)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits `$.a.b` / `$['a'].b` style paths into member names; `None` for anything else.
fn simple_keys_of(normalised: &str) -> Option<Vec<String>> {
    let mut rest = normalised.strip_prefix('$')?;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let key = &after_dot[..end];
            let is_plain = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                && key != "*";
            if !is_plain {
                return None;
            }
            keys.push(key.to_owned());
            rest = &after_dot[end..];
        } else if let Some(after_bracket) = rest.strip_prefix("['") {
            let end = after_bracket.find("']")?;
            let key = &after_bracket[..end];
            if key.contains(['\'', '\\']) {
                return None;
            }
            keys.push(key.to_owned());
            rest = &after_bracket[end + 2..];
        } else {
            return None;
        }
    }
    Some(keys)
}

#[cfg(test)]
mod tests;
