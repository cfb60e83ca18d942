//! Listing of Flow Service collections: `property` filters, `orderby`, `limit` with an opaque
//! `continuationToken` and `_links.next.href`, and `count=true`.
//!
//! Filters (reference §5.4): `path op value` with `==`, `!=`, `>`, `<`, `>=`, `<=`; a comma in
//! the value means IN (`==`) or NOT IN (`!=`); repeated `property` parameters are ANDed; dots
//! walk nested objects and `[]` the elements of an array (an array met without `[]` is walked
//! too, so `sourceConnectionIds==x` matches an element); values may be quoted; equality of text
//! ignores case (`Failed` finds `failed`); numbers compare as numbers (epoch ms). A `property`
//! without an operator is a projection (`property=name,id`: only those top-level fields).
//!
//! The continuation token carries the whole query (filters, order, limit, position), so the
//! `next` link has exactly one parameter and a client that follows it — or re-sends it with its
//! original parameters — gets the next page.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::http::Query;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// A parsed listing request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    /// The `property` texts, as given, for the continuation token.
    properties: Vec<String>,
    pub projection: Option<Vec<String>>,
    pub order: Option<Order>,
    order_text: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub count: bool,
}

/// One `property` filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub path: Vec<Segment>,
    pub op: Op,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    /// `[]`: every element of an array.
    Each,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

/// `orderby`: a field path, ascending or descending.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub path: Vec<Segment>,
    pub descending: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    p: Vec<String>,
    o: Option<String>,
    l: usize,
    s: usize,
}

impl ListQuery {
    /// Parses `property`, `orderby`, `limit`, `continuationToken` and `count`. With a token,
    /// the token's query is used (the other parameters, if re-sent, are the same by contract).
    pub fn parse(query: &Query) -> ApiResult<ListQuery> {
        if let Some(token) = query.get("continuationToken").filter(|t| !t.is_empty()) {
            let token = decode_token(token)?;
            let mut list =
                ListQuery::from_parts(&token.p, token.o.as_deref(), Some(token.l), false)?;
            list.offset = token.s;
            return Ok(list);
        }
        let properties: Vec<String> = query.all("property").map(str::to_owned).collect();
        let count = match query.get("count") {
            None => false,
            Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" | "" => false,
                _ => {
                    return Err(ApiError::bad_request(
                        1454,
                        format!("count: expected true or false, found {text:?}"),
                    ));
                }
            },
        };
        let limit = match query.get("limit") {
            None => None,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Some(limit),
                _ => {
                    return Err(ApiError::bad_request(
                        1452,
                        format!("limit: expected an integer from 1 to {MAX_LIMIT}, found {text:?}"),
                    ));
                }
            },
        };
        if count && limit.is_some() {
            return Err(ApiError::bad_request(
                1401,
                "limit and count cannot be used together",
            ));
        }
        ListQuery::from_parts(&properties, query.get("orderby"), limit, count)
    }

    fn from_parts(
        properties: &[String],
        orderby: Option<&str>,
        limit: Option<usize>,
        count: bool,
    ) -> ApiResult<ListQuery> {
        let mut filters = Vec::new();
        let mut projection: Option<Vec<String>> = None;
        for property in properties {
            match parse_property(property)? {
                Parsed::Filter(filter) => filters.push(filter),
                Parsed::Projection(fields) => {
                    projection.get_or_insert_with(Vec::new).extend(fields)
                }
            }
        }
        let order = match orderby {
            Some(text) if !text.trim().is_empty() => Some(parse_order(text)?),
            _ => None,
        };
        Ok(ListQuery {
            filters,
            properties: properties.to_vec(),
            projection,
            order,
            order_text: orderby.map(str::to_owned),
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            offset: 0,
            count,
        })
    }

    /// Whether a document passes every filter.
    pub fn matches(&self, doc: &Value) -> bool {
        self.filters.iter().all(|filter| filter.matches(doc))
    }

    /// Whether any filter or the order reads a top-level field of that name.
    pub fn mentions(&self, field: &str) -> bool {
        let first_is =
            |path: &[Segment]| matches!(path.first(), Some(Segment::Key(key)) if key == field);
        self.filters.iter().any(|filter| first_is(&filter.path))
            || self
                .order
                .as_ref()
                .is_some_and(|order| first_is(&order.path))
    }

    /// The value of a filter `field==value` with one value (e.g. `flowId==…`), when present.
    pub fn equality_values(&self, field: &str) -> Option<Vec<String>> {
        self.filters.iter().find_map(|filter| {
            let is_field = filter.path == [Segment::Key(field.to_owned())];
            (is_field && filter.op == Op::Eq).then(|| filter.values.clone())
        })
    }

    /// The response of a collection: `{count}` or `{items, _links}` for the matching documents
    /// (already in the default order). `collection` is the path below the service root
    /// (`/flows`), for the next link.
    pub fn respond<'d>(&self, docs: impl Iterator<Item = &'d Value>, collection: &str) -> Value {
        let mut matching: Vec<&Value> = if self.count || self.order.is_some() {
            docs.filter(|doc| self.matches(doc)).collect()
        } else {
            // In the default order a page needs only the matches up to its end, plus one to
            // know whether a next page exists: a page of 100 out of 10,000 flows reads as many
            // documents as it takes to find 101 matches, not all of them.
            let wanted = self.offset.saturating_add(self.limit).saturating_add(1);
            docs.filter(|doc| self.matches(doc)).take(wanted).collect()
        };
        if self.count {
            return json!({"count": matching.len()});
        }
        if let Some(order) = &self.order {
            matching.sort_by(|a, b| {
                let ordering =
                    compare_for_order(first_value(a, &order.path), first_value(b, &order.path));
                if order.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        let total = matching.len();
        let end = self.offset.saturating_add(self.limit).min(total);
        let start = self.offset.min(end);
        let items: Vec<Value> = matching[start..end]
            .iter()
            .map(|doc| self.project(doc))
            .collect();
        let mut links = Map::new();
        if end < total {
            let token = encode_token(&Token {
                p: self.properties.clone(),
                o: self.order_text.clone(),
                l: self.limit,
                s: end,
            });
            links.insert(
                "next".to_owned(),
                json!({"href": format!("{collection}?continuationToken={token}")}),
            );
        }
        json!({"items": items, "_links": links})
    }

    fn project(&self, doc: &Value) -> Value {
        let Some(fields) = &self.projection else {
            return doc.clone();
        };
        let Some(map) = doc.as_object() else {
            return doc.clone();
        };
        let mut projected = Map::new();
        for (key, value) in map {
            if key == "id" || fields.iter().any(|field| field == key) {
                projected.insert(key.clone(), value.clone());
            }
        }
        Value::Object(projected)
    }
}

enum Parsed {
    Filter(Filter),
    Projection(Vec<String>),
}

fn parse_property(text: &str) -> ApiResult<Parsed> {
    let text = text.trim();
    let Some(op_start) = text.find(['=', '!', '<', '>', '~']) else {
        let fields: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|field| !field.is_empty())
            .map(str::to_owned)
            .collect();
        if fields.is_empty() {
            return Err(ApiError::bad_request(
                1448,
                "property: expected a filter such as name==x",
            ));
        }
        return Ok(Parsed::Projection(fields));
    };
    let field = &text[..op_start];
    let rest = &text[op_start..];
    let (op, op_len) = if rest.starts_with("==") {
        (Op::Eq, 2)
    } else if rest.starts_with("!=") {
        (Op::Ne, 2)
    } else if rest.starts_with(">=") {
        (Op::Ge, 2)
    } else if rest.starts_with("<=") {
        (Op::Le, 2)
    } else if rest.starts_with('~') {
        return Err(ApiError::bad_request(
            1440,
            format!("property {text:?}: the operator ~ is not implemented"),
        ));
    } else if rest.starts_with("!>") || rest.starts_with("!<") {
        return Err(ApiError::bad_request(
            1450,
            format!(
                "property {text:?}: the operator {} is not supported",
                &rest[..2]
            ),
        ));
    } else if rest.starts_with('>') {
        (Op::Gt, 1)
    } else if rest.starts_with('<') {
        (Op::Lt, 1)
    } else {
        return Err(ApiError::bad_request(
            1449,
            format!("property {text:?}: unknown operator; expected ==, !=, >, <, >= or <="),
        ));
    };
    let path = parse_path(field).ok_or_else(|| {
        ApiError::bad_request(
            1448,
            format!("property {text:?}: {field:?} is not a field path"),
        )
    })?;
    let values = split_values(&rest[op_len..]);
    if values.is_empty() || values.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(
            1451,
            format!("property {text:?}: expected a value after the operator"),
        ));
    }
    if values.len() > 1 && !matches!(op, Op::Eq | Op::Ne) {
        return Err(ApiError::bad_request(
            1443,
            format!("property {text:?}: several values are only allowed with == and !="),
        ));
    }
    Ok(Parsed::Filter(Filter { path, op, values }))
}

/// `a.b[].c` → `[Key a, Key b, Each, Key c]`; `None` for an empty or malformed path.
fn parse_path(text: &str) -> Option<Vec<Segment>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut path = Vec::new();
    for part in text.split('.') {
        let (name, n_each) = match part.find("[]") {
            Some(idx) => {
                let suffix = &part[idx..];
                if suffix.len() % 2 != 0 || !suffix.as_bytes().chunks(2).all(|c| c == b"[]") {
                    return None;
                }
                (&part[..idx], suffix.len() / 2)
            }
            None => (part, 0),
        };
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || "_-@$:".contains(c));
        if !is_name {
            return None;
        }
        path.push(Segment::Key(name.to_owned()));
        path.extend(std::iter::repeat_n(Segment::Each, n_each));
    }
    Some(path)
}

/// Comma-separated values, each optionally quoted; commas inside quotes belong to the value.
fn split_values(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ',') => values.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    values.push(current);
    values
        .into_iter()
        .map(|value| unquote(value.trim()).to_owned())
        .collect()
}

fn unquote(text: &str) -> &str {
    for quote in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            return &text[1..text.len() - 1];
        }
    }
    text
}

fn parse_order(text: &str) -> ApiResult<Order> {
    // A `+` in a query string decodes to a space: `orderby=+name` arrives as " name".
    let trimmed = text.trim_end();
    let (descending, field) = match trimmed.chars().next() {
        Some('-') => (true, &trimmed[1..]),
        Some('+') | Some(' ') => (false, trimmed[1..].trim_start()),
        _ => (false, trimmed),
    };
    if field.starts_with(['+', '-']) {
        return Err(ApiError::bad_request(
            1433,
            format!("orderby {text:?}: expected one + or - before the field"),
        ));
    }
    let path = parse_path(field).ok_or_else(|| {
        ApiError::bad_request(
            1432,
            format!("orderby {text:?}: expected a field, +field or -field"),
        )
    })?;
    Ok(Order { path, descending })
}

fn encode_token(token: &Token) -> String {
    let json = serde_json::to_vec(token).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token(text: &str) -> ApiResult<Token> {
    let bad = || ApiError::bad_request(1453, "continuationToken is not a token this server issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| bad())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if token.l == 0 || token.l > MAX_LIMIT {
        return Err(bad());
    }
    Ok(token)
}

impl Filter {
    pub fn matches(&self, doc: &Value) -> bool {
        let mut found = Vec::new();
        collect(doc, &self.path, &mut found);
        match self.op {
            Op::Eq => found
                .iter()
                .any(|value| self.values.iter().any(|wanted| equals(value, wanted))),
            Op::Ne => !found
                .iter()
                .any(|value| self.values.iter().any(|wanted| equals(value, wanted))),
            op => found.iter().any(|value| {
                let Some(ordering) = compare_to(value, &self.values[0]) else {
                    return false;
                };
                match op {
                    Op::Gt => ordering.is_gt(),
                    Op::Lt => ordering.is_lt(),
                    Op::Ge => ordering.is_ge(),
                    Op::Le => ordering.is_le(),
                    Op::Eq | Op::Ne => false,
                }
            }),
        }
    }
}

/// Every scalar at `path` (arrays are walked, with or without `[]`).
fn collect<'v>(value: &'v Value, path: &[Segment], out: &mut Vec<&'v Value>) {
    match (path.first(), value) {
        (None, Value::Array(items)) => {
            for item in items {
                collect(item, path, out);
            }
        }
        (None, value) => out.push(value),
        (Some(Segment::Each), Value::Array(items)) => {
            for item in items {
                collect(item, &path[1..], out);
            }
        }
        (Some(Segment::Each), _) => {}
        (Some(Segment::Key(_)), Value::Array(items)) => {
            for item in items {
                collect(item, path, out);
            }
        }
        (Some(Segment::Key(key)), Value::Object(map)) => {
            if let Some(child) = map.get(key) {
                collect(child, &path[1..], out);
            }
        }
        (Some(Segment::Key(_)), _) => {}
    }
}

fn first_value<'v>(doc: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    let mut found = Vec::new();
    collect(doc, path, &mut found);
    found.into_iter().find(|value| !value.is_null())
}

fn equals(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(text) => text.eq_ignore_ascii_case(wanted),
        Value::Number(number) => match (number.as_f64(), wanted.trim().parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Bool(flag) => wanted.eq_ignore_ascii_case(if *flag { "true" } else { "false" }),
        Value::Null => wanted == "null",
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn compare_to(value: &Value, wanted: &str) -> Option<std::cmp::Ordering> {
    match value {
        Value::Number(number) => {
            let wanted = wanted.trim().parse::<f64>().ok()?;
            number.as_f64()?.partial_cmp(&wanted)
        }
        Value::String(text) => match (text.trim().parse::<f64>(), wanted.trim().parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ => Some(text.as_str().cmp(wanted)),
        },
        _ => None,
    }
}

/// Order of two sort keys: numbers, then text, then booleans; absent or null last.
fn compare_for_order(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(value: &Value) -> u8 {
        match value {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => match (a, b) {
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Value::String(x), Value::String(y)) => x.cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

#[cfg(test)]
mod tests;
