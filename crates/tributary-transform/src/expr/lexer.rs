//! Tokens of the expression language.
//!
//! Field names are lexed as identifier segments: `\.` inside a name is an escaped dot and
//! `${Any Name}` is one segment whatever it contains. Word operators (`and`, `eq`, `div`, ...)
//! are the JEXL reserved words the reference lists; they are recognised here so that the
//! parser never has to guess whether `or` is a field.

use super::{ParseError, Span};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    Int(i64),
    Float(f64),
    Str(String),
    /// A plain identifier segment (with `\.` already unescaped).
    Ident(String),
    /// A `${...}` segment: never a keyword or a function name.
    Quoted(String),
    True,
    False,
    Null,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    Colon,
    Question,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Not,
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
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub token: Token,
    pub span: Span,
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Spanned>, ParseError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let c = bytes[pos];
        if c.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        let start = pos;
        let token = match c {
            b'(' => single(&mut pos, Token::LParen),
            b')' => single(&mut pos, Token::RParen),
            b'[' => single(&mut pos, Token::LBracket),
            b']' => single(&mut pos, Token::RBracket),
            b'{' => single(&mut pos, Token::LBrace),
            b'}' => single(&mut pos, Token::RBrace),
            b',' => single(&mut pos, Token::Comma),
            b'.' if !bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) => {
                single(&mut pos, Token::Dot)
            }
            b':' => single(&mut pos, Token::Colon),
            b'?' => single(&mut pos, Token::Question),
            b'+' => single(&mut pos, Token::Plus),
            b'-' => single(&mut pos, Token::Minus),
            b'*' => single(&mut pos, Token::Star),
            b'/' => single(&mut pos, Token::Slash),
            b'%' => single(&mut pos, Token::Percent),
            b'!' => match bytes.get(pos + 1) {
                Some(b'=') => double(&mut pos, Token::Ne),
                Some(b'~') => double(&mut pos, Token::RegexNotMatch),
                _ => single(&mut pos, Token::Not),
            },
            b'=' => match bytes.get(pos + 1) {
                Some(b'=') => double(&mut pos, Token::Eq),
                Some(b'~') => double(&mut pos, Token::RegexMatch),
                _ => {
                    return Err(ParseError::new(
                        "expected `==` or `=~` after `=`",
                        Span::new(start, start + 1),
                    ));
                }
            },
            b'<' => match bytes.get(pos + 1) {
                Some(b'=') => double(&mut pos, Token::Le),
                _ => single(&mut pos, Token::Lt),
            },
            b'>' => match bytes.get(pos + 1) {
                Some(b'=') => double(&mut pos, Token::Ge),
                _ => single(&mut pos, Token::Gt),
            },
            b'&' if bytes.get(pos + 1) == Some(&b'&') => double(&mut pos, Token::And),
            b'|' if bytes.get(pos + 1) == Some(&b'|') => double(&mut pos, Token::Or),
            b'"' | b'\'' => lex_string(src, &mut pos)?,
            b'0'..=b'9' | b'.' => lex_number(src, &mut pos)?,
            b'$' if bytes.get(pos + 1) == Some(&b'{') => {
                let close = src[pos + 2..].find('}').ok_or_else(|| {
                    ParseError::new(
                        "unterminated `${` field name: expected `}`",
                        Span::new(start, src.len()),
                    )
                })?;
                let name = src[pos + 2..pos + 2 + close].to_owned();
                pos += close + 3;
                Token::Quoted(name)
            }
            _ if is_ident_start(src, pos) => lex_ident(src, &mut pos),
            _ => {
                let ch = src[pos..].chars().next().unwrap_or('?');
                return Err(ParseError::new(
                    format!("unexpected character `{ch}`"),
                    Span::new(start, start + ch.len_utf8()),
                ));
            }
        };
        tokens.push(Spanned {
            token,
            span: Span::new(start, pos),
        });
    }
    tokens.push(Spanned {
        token: Token::Eof,
        span: Span::new(src.len(), src.len()),
    });
    Ok(tokens)
}

fn single(pos: &mut usize, token: Token) -> Token {
    *pos += 1;
    token
}

fn double(pos: &mut usize, token: Token) -> Token {
    *pos += 2;
    token
}

fn is_ident_start(src: &str, pos: usize) -> bool {
    let bytes = src.as_bytes();
    match bytes[pos] {
        b'\\' => bytes.get(pos + 1) == Some(&b'.'),
        b'_' | b'@' | b'$' => true,
        c if c.is_ascii_alphabetic() => true,
        c if c >= 0x80 => src[pos..].chars().next().is_some_and(char::is_alphabetic),
        _ => false,
    }
}

fn lex_ident(src: &str, pos: &mut usize) -> Token {
    let bytes = src.as_bytes();
    let mut name = String::new();
    while *pos < bytes.len() {
        let c = bytes[*pos];
        if c == b'\\' && bytes.get(*pos + 1) == Some(&b'.') {
            name.push('.');
            *pos += 2;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'@' || c == b'$' {
            name.push(c as char);
            *pos += 1;
        } else if c >= 0x80 {
            let ch = src[*pos..].chars().next().unwrap_or(' ');
            if !ch.is_alphanumeric() {
                break;
            }
            name.push(ch);
            *pos += ch.len_utf8();
        } else {
            break;
        }
    }
    match name.as_str() {
        "true" => Token::True,
        "false" => Token::False,
        "null" => Token::Null,
        "and" => Token::And,
        "or" => Token::Or,
        "not" => Token::Not,
        "eq" => Token::Eq,
        "ne" => Token::Ne,
        "lt" => Token::Lt,
        "gt" => Token::Gt,
        "le" => Token::Le,
        "ge" => Token::Ge,
        "div" => Token::Slash,
        "mod" => Token::Percent,
        _ => Token::Ident(name),
    }
}

fn lex_string(src: &str, pos: &mut usize) -> Result<Token, ParseError> {
    let start = *pos;
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((offset, ch)) = chars.next() {
        if ch == quote {
            *pos = start + 1 + offset + 1;
            return Ok(Token::Str(out));
        }
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let Some((esc_offset, esc)) = chars.next() else {
            break;
        };
        let escaped = match esc {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            '0' => '\0',
            'u' => {
                let hex_start = start + 1 + esc_offset + 1;
                let hex = src.get(hex_start..hex_start + 4).unwrap_or("");
                let code = u32::from_str_radix(hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        ParseError::new(
                            "invalid `\\u` escape: expected four hex digits",
                            Span::new(hex_start - 2, (hex_start + 4).min(src.len())),
                        )
                    })?;
                for _ in 0..4 {
                    chars.next();
                }
                code
            }
            // `\\`, `\"`, `\'` and, as in Java string literals used for regexes, any other
            // character keep the character itself; an unknown escape keeps its backslash so
            // that regexes such as "\\d" and "\d" both work.
            '\\' | '"' | '\'' | '/' => esc,
            other => {
                out.push('\\');
                other
            }
        };
        out.push(escaped);
    }
    Err(ParseError::new(
        format!("unterminated string: expected a closing {quote}"),
        Span::new(start, src.len()),
    ))
}

fn lex_number(src: &str, pos: &mut usize) -> Result<Token, ParseError> {
    let bytes = src.as_bytes();
    let start = *pos;
    let mut is_float = false;
    while *pos < bytes.len() && bytes[*pos].is_ascii_digit() {
        *pos += 1;
    }
    if *pos < bytes.len()
        && bytes[*pos] == b'.'
        && bytes.get(*pos + 1).is_some_and(u8::is_ascii_digit)
    {
        is_float = true;
        *pos += 1;
        while *pos < bytes.len() && bytes[*pos].is_ascii_digit() {
            *pos += 1;
        }
    }
    if *pos < bytes.len() && (bytes[*pos] == b'e' || bytes[*pos] == b'E') {
        let mut look = *pos + 1;
        if look < bytes.len() && (bytes[look] == b'+' || bytes[look] == b'-') {
            look += 1;
        }
        if look < bytes.len() && bytes[look].is_ascii_digit() {
            is_float = true;
            *pos = look;
            while *pos < bytes.len() && bytes[*pos].is_ascii_digit() {
                *pos += 1;
            }
        }
    }
    let text = &src[start..*pos];
    // Java-style type suffixes (`10L`, `1.5d`, `2f`) are accepted and ignored.
    if *pos < bytes.len() && matches!(bytes[*pos], b'L' | b'l' | b'd' | b'D' | b'f' | b'F') {
        if matches!(bytes[*pos], b'd' | b'D' | b'f' | b'F') {
            is_float = true;
        }
        *pos += 1;
    }
    let span = Span::new(start, *pos);
    if is_float {
        text.parse::<f64>()
            .map(Token::Float)
            .map_err(|_| ParseError::new(format!("invalid number `{text}`"), span))
    } else {
        text.parse::<i64>()
            .map(Token::Int)
            .map_err(|_| ParseError::new(format!("integer `{text}` does not fit in 64 bits"), span))
    }
}
