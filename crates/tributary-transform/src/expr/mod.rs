//! The Data Prep expression language: lexer, parser and evaluator of calculated fields.
//!
//! The language is JEXL-like, as Adobe's: literals (`"text"`, `'text'`, `12`, `1.5`, `true`,
//! `null`, `[a, b]`, `{"k": v}`), field references (`a.b`, `${Odd Name}`, `arr[0].x`,
//! `arr[*].x`), nested function calls, method calls (`a.equals(b)`, `m.get("k")`), and operators
//! with this precedence, loosest first:
//!
//! | level | operators |
//! |---|---|
//! | conditional | `c ? a : b`, `a ?: b` |
//! | or | `\|\|`, `or` |
//! | and | `&&`, `and` |
//! | equality | `==` `eq`, `!=` `ne`, `=~` (regex match), `!~` |
//! | relational | `<` `lt`, `>` `gt`, `<=` `le`, `>=` `ge` |
//! | additive | `+` (numbers, or text when either side is text), `-` |
//! | multiplicative | `*`, `/` `div`, `%` `mod` |
//! | unary | `-`, `!`, `not` |
//! | postfix | `.name`, `[index]`, `.method(args)` |
//!
//! Null propagates through arithmetic (`null + 1` is null); `&&`/`||` short-circuit; integer
//! division of integers truncates (as in JEXL). A calculated field is at most 4,096 characters.
//!
//! Main items: [`parse`] → [`Expr`], [`eval`] against a row ([`Value::Object`]) → [`Value`].

mod eval;
mod lexer;
mod parser;
mod path;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;

pub use eval::{EvalError, EvalState, eval, referenced_roots};
pub(crate) use eval::{lookup_path, lookup_segments, truthy};
pub use path::{FieldPath, Segment};
pub use value::Value;
pub(crate) use value::datetime_to_text;

use crate::functions::Function;

/// The longest calculated field Data Prep accepts, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 4096;

/// A byte range in the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A syntax error with the place it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub span: Span,
}

/// A parsed expression node.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Value),
    Field(FieldPath),
    Call {
        function: Function,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `condition ? then : otherwise`; `a ?: b` has `then: None` (the condition's own value).
    Conditional {
        condition: Box<Expr>,
        then: Option<Box<Expr>>,
        otherwise: Box<Expr>,
    },
    Array(Vec<Expr>),
    Object(Vec<(String, Expr)>),
    /// `expr.name` on a computed value (`json_to_object(s).name`).
    Member {
        target: Box<Expr>,
        name: String,
    },
    /// `expr[index]` with a computed index or target.
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    And,
    Or,
    RegexMatch,
    RegexNotMatch,
}

/// Parses a calculated field. Rejects texts over [`MAX_EXPRESSION_CHARS`] characters.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let n_chars = src.chars().count();
    if n_chars > MAX_EXPRESSION_CHARS {
        return Err(ParseError::new(
            format!("expression is {n_chars} characters long; the limit is {MAX_EXPRESSION_CHARS}"),
            Span::new(0, src.len()),
        ));
    }
    parser::parse_tokens(src, lexer::tokenize(src)?)
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The 1-based character column of the start in `src` (what users count in an editor).
    pub fn column(&self, src: &str) -> usize {
        src.get(..self.start)
            .map_or(self.start, |prefix| prefix.chars().count())
            + 1
    }
}

impl ParseError {
    pub fn new(message: impl Into<String>, span: Span) -> ParseError {
        ParseError {
            message: message.into(),
            span,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.span.start)
    }
}

impl std::error::Error for ParseError {}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
