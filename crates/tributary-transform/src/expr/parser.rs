//! Recursive-descent parser: one function per precedence level (see the table in `mod.rs`).
//!
//! Nesting is capped so that a hostile expression (`((((...` 4,000 deep) returns an error
//! instead of overflowing the stack.

use super::lexer::{Spanned, Token};
use super::{BinaryOp, Expr, ExprKind, FieldPath, ParseError, Segment, Span, UnaryOp, Value};
use crate::functions::Function;

const MAX_DEPTH: usize = 64;
const MAX_CHAIN: usize = 256;

pub(crate) fn parse_tokens(src: &str, tokens: Vec<Spanned>) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    if parser.peek() == &Token::Eof {
        return Err(ParseError::new("empty expression", Span::new(0, 0)));
    }
    let expr = parser.expression()?;
    if parser.peek() != &Token::Eof {
        let span = parser.span();
        return Err(ParseError::new(
            format!(
                "unexpected `{}` after a complete expression",
                parser.text(span)
            ),
            span,
        ));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Spanned>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].token
    }

    fn peek_at(&self, offset: usize) -> &Token {
        &self.tokens[(self.pos + offset).min(self.tokens.len() - 1)].token
    }

    fn span(&self) -> Span {
        self.tokens[self.pos.min(self.tokens.len() - 1)].span
    }

    fn text(&self, span: Span) -> &str {
        if span.start == span.end {
            "end of expression"
        } else {
            &self.src[span.start..span.end]
        }
    }

    fn advance(&mut self) -> Spanned {
        let token = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<Span, ParseError> {
        if self.peek() == token {
            return Ok(self.advance().span);
        }
        let span = self.span();
        Err(ParseError::new(
            format!("expected {what}, found `{}`", self.text(span)),
            span,
        ))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                format!("expression nests deeper than {MAX_DEPTH} levels"),
                self.span(),
            ));
        }
        Ok(())
    }

    fn expression(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let res = self.conditional();
        self.depth -= 1;
        res
    }

    fn conditional(&mut self) -> Result<Expr, ParseError> {
        let condition = self.binary(0)?;
        if self.peek() != &Token::Question {
            return Ok(condition);
        }
        self.advance();
        let then = if self.peek() == &Token::Colon {
            None
        } else {
            Some(Box::new(self.expression()?))
        };
        self.expect(&Token::Colon, "`:` of a conditional")?;
        let otherwise = self.expression()?;
        let span = Span::new(condition.span.start, otherwise.span.end);
        Ok(Expr::new(
            ExprKind::Conditional {
                condition: Box::new(condition),
                then,
                otherwise: Box::new(otherwise),
            },
            span,
        ))
    }

    /// Binary operators by precedence climbing; levels: 0 = or ... 5 = multiplicative. One
    /// stack frame per operator instead of one per level keeps deep nesting cheap.
    fn binary(&mut self, min_level: usize) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        let mut chain = 0;
        loop {
            let (op, level) = match self.peek() {
                Token::Or => (BinaryOp::Or, 0),
                Token::And => (BinaryOp::And, 1),
                Token::Eq => (BinaryOp::Eq, 2),
                Token::Ne => (BinaryOp::Ne, 2),
                Token::RegexMatch => (BinaryOp::RegexMatch, 2),
                Token::RegexNotMatch => (BinaryOp::RegexNotMatch, 2),
                Token::Lt => (BinaryOp::Lt, 3),
                Token::Gt => (BinaryOp::Gt, 3),
                Token::Le => (BinaryOp::Le, 3),
                Token::Ge => (BinaryOp::Ge, 3),
                Token::Plus => (BinaryOp::Add, 4),
                Token::Minus => (BinaryOp::Sub, 4),
                Token::Star => (BinaryOp::Mul, 5),
                Token::Slash => (BinaryOp::Div, 5),
                Token::Percent => (BinaryOp::Rem, 5),
                _ => return Ok(lhs),
            };
            if level < min_level {
                return Ok(lhs);
            }
            // A left-deep chain is as deep as it is long; evaluation recurses through it.
            chain += 1;
            if chain > MAX_CHAIN {
                return Err(ParseError::new(
                    format!("more than {MAX_CHAIN} operators in a row: group them"),
                    self.span(),
                ));
            }
            self.advance();
            self.enter()?;
            let rhs = self.binary(level + 1);
            self.depth -= 1;
            let rhs = rhs?;
            let span = Span::new(lhs.span.start, rhs.span.end);
            lhs = Expr::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            );
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Token::Minus => UnaryOp::Neg,
            Token::Not => UnaryOp::Not,
            _ => return self.postfix(),
        };
        let start = self.advance().span.start;
        self.enter()?;
        let operand = self.unary();
        self.depth -= 1;
        let operand = operand?;
        // Fold `-12` into a literal so that `-9223372036854775808`-style edge cases and
        // negative defaults in function arguments stay constants.
        if op == UnaryOp::Neg {
            match operand.kind {
                ExprKind::Literal(Value::Int(i)) => {
                    return Ok(Expr::new(
                        ExprKind::Literal(Value::Int(-i)),
                        Span::new(start, operand.span.end),
                    ));
                }
                ExprKind::Literal(Value::Float(f)) => {
                    return Ok(Expr::new(
                        ExprKind::Literal(Value::Float(-f)),
                        Span::new(start, operand.span.end),
                    ));
                }
                _ => {}
            }
        }
        let span = Span::new(start, operand.span.end);
        Ok(Expr::new(
            ExprKind::Unary {
                op,
                operand: Box::new(operand),
            },
            span,
        ))
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.primary()?;
        loop {
            match self.peek() {
                Token::Dot => {
                    self.advance();
                    let name_span = self.span();
                    let name = self.member_name()?;
                    if self.peek() == &Token::LParen {
                        let function = self.function(&name, name_span)?;
                        let mut args = vec![expr];
                        let end = self.arguments(&mut args)?;
                        let span = Span::new(args[0].span.start, end);
                        expr = Expr::new(ExprKind::Call { function, args }, span);
                    } else {
                        let span = Span::new(expr.span.start, name_span.end);
                        expr = Expr::new(
                            ExprKind::Member {
                                target: Box::new(expr),
                                name,
                            },
                            span,
                        );
                    }
                }
                Token::LBracket => {
                    self.advance();
                    let index = self.expression()?;
                    let end = self.expect(&Token::RBracket, "`]`")?.end;
                    let span = Span::new(expr.span.start, end);
                    expr = Expr::new(
                        ExprKind::Index {
                            target: Box::new(expr),
                            index: Box::new(index),
                        },
                        span,
                    );
                }
                _ => return Ok(expr),
            }
        }
    }

    /// A name after `.`: an identifier, a `${...}` name, or a word operator used as a name.
    fn member_name(&mut self) -> Result<String, ParseError> {
        let spanned = self.advance();
        match spanned.token {
            Token::Ident(name) | Token::Quoted(name) => Ok(name),
            Token::True
            | Token::False
            | Token::Null
            | Token::And
            | Token::Or
            | Token::Not
            | Token::Eq
            | Token::Ne
            | Token::Lt
            | Token::Gt
            | Token::Le
            | Token::Ge => Ok(self.src[spanned.span.start..spanned.span.end].to_owned()),
            Token::Slash | Token::Percent
                if self.src[spanned.span.start..].starts_with(char::is_alphabetic) =>
            {
                Ok(self.src[spanned.span.start..spanned.span.end].to_owned())
            }
            _ => Err(ParseError::new(
                format!(
                    "expected a field or method name after `.`, found `{}`",
                    self.text(spanned.span)
                ),
                spanned.span,
            )),
        }
    }

    fn function(&self, name: &str, span: Span) -> Result<Function, ParseError> {
        Function::lookup(name)
            .ok_or_else(|| ParseError::new(format!("unknown function `{name}`"), span))
    }

    /// Parses `( args )` after the name, appending to `args`; returns the end of `)`.
    fn arguments(&mut self, args: &mut Vec<Expr>) -> Result<usize, ParseError> {
        self.expect(&Token::LParen, "`(`")?;
        if self.peek() == &Token::RParen {
            return Ok(self.advance().span.end);
        }
        loop {
            args.push(self.expression()?);
            match self.peek() {
                Token::Comma => {
                    self.advance();
                }
                Token::RParen => return Ok(self.advance().span.end),
                _ => {
                    let span = self.span();
                    return Err(ParseError::new(
                        format!(
                            "expected `,` or `)` in argument list, found `{}`",
                            self.text(span)
                        ),
                        span,
                    ));
                }
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let spanned = self.advance();
        let span = spanned.span;
        let literal = |value| Ok(Expr::new(ExprKind::Literal(value), span));
        match spanned.token {
            Token::Int(i) => literal(Value::Int(i)),
            Token::Float(f) => literal(Value::Float(f)),
            Token::Str(s) => literal(Value::Str(s)),
            Token::True => literal(Value::Bool(true)),
            Token::False => literal(Value::Bool(false)),
            Token::Null => literal(Value::Null),
            Token::LParen => {
                let inner = self.expression()?;
                let end = self.expect(&Token::RParen, "`)`")?.end;
                Ok(Expr::new(inner.kind, Span::new(span.start, end)))
            }
            Token::LBracket => {
                let mut items = Vec::new();
                if self.peek() != &Token::RBracket {
                    loop {
                        items.push(self.expression()?);
                        if self.peek() == &Token::Comma {
                            self.advance();
                        } else {
                            break;
                        }
                    }
                }
                let end = self
                    .expect(&Token::RBracket, "`,` or `]` in array literal")?
                    .end;
                Ok(Expr::new(
                    ExprKind::Array(items),
                    Span::new(span.start, end),
                ))
            }
            Token::LBrace => {
                let mut entries = Vec::new();
                if self.peek() != &Token::RBrace {
                    loop {
                        let key_span = self.span();
                        let key = match self.advance().token {
                            Token::Str(k) | Token::Ident(k) | Token::Quoted(k) => k,
                            _ => {
                                return Err(ParseError::new(
                                    format!(
                                        "expected an object key, found `{}`",
                                        self.text(key_span)
                                    ),
                                    key_span,
                                ));
                            }
                        };
                        self.expect(&Token::Colon, "`:` after an object key")?;
                        entries.push((key, self.expression()?));
                        if self.peek() == &Token::Comma {
                            self.advance();
                        } else {
                            break;
                        }
                    }
                }
                let end = self
                    .expect(&Token::RBrace, "`,` or `}` in object literal")?
                    .end;
                Ok(Expr::new(
                    ExprKind::Object(entries),
                    Span::new(span.start, end),
                ))
            }
            Token::Ident(name) if self.peek() == &Token::LParen => {
                let function = self.function(&name, span)?;
                let mut args = Vec::new();
                let end = self.arguments(&mut args)?;
                Ok(Expr::new(
                    ExprKind::Call { function, args },
                    Span::new(span.start, end),
                ))
            }
            Token::Ident(name) | Token::Quoted(name) => self.field_path(name, span),
            _ => Err(ParseError::new(
                format!("expected a value, found `{}`", self.text(span)),
                span,
            )),
        }
    }

    /// A field reference: names joined by `.`, with `[n]` and `[*]` steps. Stops before
    /// `.name(` (a method call) and before `[expr]` with a computed index.
    fn field_path(&mut self, first: String, span: Span) -> Result<Expr, ParseError> {
        let mut segments = vec![Segment::Name(first)];
        let mut end = span.end;
        loop {
            match (self.peek(), self.peek_at(1), self.peek_at(2)) {
                (Token::Dot, Token::Ident(_) | Token::Quoted(_), next)
                    if next != &Token::LParen =>
                {
                    self.advance();
                    let name_span = self.span();
                    let name = self.member_name()?;
                    end = name_span.end;
                    segments.push(Segment::Name(name));
                }
                (Token::LBracket, Token::Int(i), Token::RBracket) if *i >= 0 => {
                    let index = *i as usize;
                    self.advance();
                    self.advance();
                    end = self.advance().span.end;
                    segments.push(Segment::Index(index));
                }
                (Token::LBracket, Token::Star, Token::RBracket) => {
                    self.advance();
                    self.advance();
                    end = self.advance().span.end;
                    segments.push(Segment::Each);
                }
                _ => break,
            }
        }
        Ok(Expr::new(
            ExprKind::Field(FieldPath { segments }),
            Span::new(span.start, end),
        ))
    }
}
