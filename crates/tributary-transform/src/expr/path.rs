//! Attribute paths: `a.b.c`, `a\.b` (a dot inside a name), `${Field Name}`, `arr[0].x`,
//! `arr[*].x`. Shared by ATTRIBUTE sources, destinations and field references in expressions.

use std::fmt;

use super::{ParseError, Span};

/// A parsed attribute path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    pub segments: Vec<Segment>,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A field of an object.
    Name(String),
    /// `[n]`: one element of an array.
    Index(usize),
    /// `[*]`: every element of an array.
    Each,
}

impl FieldPath {
    /// Parses a path as written in a mapping's `source` or `destination`.
    pub fn parse(text: &str) -> Result<FieldPath, ParseError> {
        let text = text.trim();
        let bytes = text.as_bytes();
        let mut segments = Vec::new();
        let mut pos = 0;
        let mut expect_name = true;
        if text.is_empty() {
            return Err(ParseError::new("empty path", Span::new(0, 0)));
        }
        while pos < bytes.len() {
            match bytes[pos] {
                b'[' => {
                    let close = text[pos..].find(']').map(|c| pos + c).ok_or_else(|| {
                        ParseError::new(
                            "unterminated `[`: expected `]`",
                            Span::new(pos, text.len()),
                        )
                    })?;
                    let inner = text[pos + 1..close].trim();
                    let segment = if inner == "*" {
                        Segment::Each
                    } else {
                        inner.parse::<usize>().map(Segment::Index).map_err(|_| {
                            ParseError::new(
                                format!("invalid array index `{inner}`: expected a number or `*`"),
                                Span::new(pos, close + 1),
                            )
                        })?
                    };
                    if segments.is_empty() {
                        return Err(ParseError::new(
                            "a path cannot start with `[`",
                            Span::new(pos, close + 1),
                        ));
                    }
                    segments.push(segment);
                    pos = close + 1;
                    expect_name = false;
                }
                b'.' => {
                    if expect_name {
                        return Err(ParseError::new(
                            "empty name in path",
                            Span::new(pos, pos + 1),
                        ));
                    }
                    pos += 1;
                    expect_name = true;
                    if pos == bytes.len() {
                        return Err(ParseError::new(
                            "path ends with `.`",
                            Span::new(pos - 1, pos),
                        ));
                    }
                }
                _ if !expect_name => {
                    return Err(ParseError::new(
                        "expected `.` or `[` after a name",
                        Span::new(pos, pos + 1),
                    ));
                }
                b'$' if bytes.get(pos + 1) == Some(&b'{') => {
                    let close = text[pos..].find('}').map(|c| pos + c).ok_or_else(|| {
                        ParseError::new(
                            "unterminated `${`: expected `}`",
                            Span::new(pos, text.len()),
                        )
                    })?;
                    segments.push(Segment::Name(text[pos + 2..close].to_owned()));
                    pos = close + 1;
                    expect_name = false;
                }
                _ => {
                    let mut name = String::new();
                    while pos < bytes.len() {
                        match bytes[pos] {
                            b'\\' if bytes.get(pos + 1) == Some(&b'.') => {
                                name.push('.');
                                pos += 2;
                            }
                            b'.' | b'[' => break,
                            _ => {
                                let ch = text[pos..].chars().next().unwrap_or(' ');
                                name.push(ch);
                                pos += ch.len_utf8();
                            }
                        }
                    }
                    segments.push(Segment::Name(name));
                    expect_name = false;
                }
            }
        }
        Ok(FieldPath { segments })
    }

    /// The first name of the path (the top-level column).
    pub fn root(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Name(name)) => Some(name),
            _ => None,
        }
    }

    /// True when every segment is a name (the path walks structs only).
    pub fn is_plain(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Name(_)))
    }

    /// Position of the first `[*]`, if any.
    pub fn each_position(&self) -> Option<usize> {
        self.segments
            .iter()
            .position(|s| matches!(s, Segment::Each))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Name(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let is_plain = !name.is_empty()
                        && name.chars().all(|c| {
                            c.is_alphanumeric() || matches!(c, '_' | '@' | '$' | '.' | '-')
                        });
                    if is_plain {
                        f.write_str(&name.replace('.', "\\."))?;
                    } else {
                        write!(f, "${{{name}}}")?;
                    }
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Each => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}
