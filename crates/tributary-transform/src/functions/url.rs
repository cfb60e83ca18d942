//! URL functions. A small generic-URI splitter (scheme, authority, path, query, fragment) is
//! used instead of a WHATWG URL parser because Data Prep follows `java.net.URI`: no
//! normalisation, any scheme (`sftp`, `foo`), and default ports for well-known schemes.
//! Encoding and decoding follow `URLEncoder`/`URLDecoder` (form encoding, UTF-8).

use super::{Function, text_arg};
use crate::expr::Value;

pub(super) fn call(function: Function, args: &[Value]) -> Result<Value, String> {
    let Some(input) = text_arg(args, 0, "url")? else {
        return Ok(Value::Null);
    };
    match function {
        Function::GetUrlEncoded => Ok(Value::Str(form_encode(&input))),
        Function::GetUrlDecoded => form_decode(&input).map(Value::Str),
        _ => {
            let url = split_url(&input)
                .ok_or_else(|| format!("invalid url {input:?}: expected scheme://host/..."))?;
            match function {
                Function::GetUrlProtocol => Ok(Value::Str(url.scheme.to_owned())),
                Function::GetUrlHost => {
                    Ok(url.host.map_or(Value::Null, |h| Value::Str(h.to_owned())))
                }
                Function::GetUrlPort => Ok(match url.port {
                    Some(port) => Value::Int(i64::from(port)),
                    None => {
                        default_port(url.scheme).map_or(Value::Null, |p| Value::Int(i64::from(p)))
                    }
                }),
                Function::GetUrlPath => Ok(Value::Str(url.path.to_owned())),
                Function::GetUrlQueryStr => {
                    let anchor =
                        text_arg(args, 1, "anchor")?.unwrap_or_else(|| "retain".to_owned());
                    query_object(&url, &anchor)
                }
                _ => Err(format!("{} is not a url function", function.name())),
            }
        }
    }
}

struct Url<'a> {
    scheme: &'a str,
    host: Option<&'a str>,
    port: Option<u16>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn split_url(input: &str) -> Option<Url<'_>> {
    let input = input.trim();
    let colon = input.find(':')?;
    let scheme = &input[..colon];
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let mut rest = &input[colon + 1..];
    let mut fragment = None;
    if let Some(hash) = rest.find('#') {
        fragment = Some(&rest[hash + 1..]);
        rest = &rest[..hash];
    }
    let mut query = None;
    if let Some(q) = rest.find('?') {
        query = Some(&rest[q + 1..]);
        rest = &rest[..q];
    }
    let (mut host, mut port, mut path) = (None, None, rest);
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        path = &after[end..];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (h, p) = match host_port.rfind(':') {
            Some(i)
                if !host_port[i + 1..].is_empty()
                    && host_port[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                (
                    &host_port[..i],
                    Some(host_port[i + 1..].parse::<u16>().ok()?),
                )
            }
            _ => (host_port, None),
        };
        host = (!h.is_empty()).then_some(h);
        port = p;
    }
    Some(Url {
        scheme,
        host,
        port,
        path,
        query,
        fragment,
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        "ftp" => 21,
        "sftp" | "ssh" | "scp" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "ldap" => 389,
        "ldaps" => 636,
        "imap" => 143,
        "pop3" => 110,
        _ => return None,
    })
}

/// The query as an object. `retain` keeps `#fragment` on the last value (as the raw text
/// reads), `remove` drops it, `append` adds it under the key `_anchor_`.
fn query_object(url: &Url<'_>, anchor: &str) -> Result<Value, String> {
    let mode = anchor.trim().to_ascii_lowercase();
    if !matches!(mode.as_str(), "retain" | "remove" | "append") {
        return Err(format!(
            "argument 2 (anchor) must be retain, remove or append, got {anchor:?}"
        ));
    }
    let Some(query) = url.query else {
        return Ok(Value::Null);
    };
    let mut entries = Vec::new();
    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    for (i, pair) in pairs.iter().enumerate() {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let mut value = value.to_owned();
        if i + 1 == pairs.len()
            && mode == "retain"
            && let Some(fragment) = url.fragment
        {
            value.push('#');
            value.push_str(fragment);
        }
        Value::insert(&mut entries, key.to_owned(), Value::Str(value));
    }
    if mode == "append"
        && let Some(fragment) = url.fragment
    {
        entries.push(("_anchor_".to_owned(), Value::Str(fragment.to_owned())));
    }
    Ok(Value::Object(entries))
}

/// `URLEncoder.encode(s, UTF-8)`: letters, digits and `.-*_` kept, space as `+`, the rest as
/// `%XX` of the UTF-8 bytes.
fn form_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3 / 2);
    for b in input.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// `URLDecoder.decode(s, UTF-8)`: `+` as space, `%XX` as bytes; a bad escape is an error.
fn form_decode(input: &str) -> Result<String, String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = input
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(byte) = hex else {
                    return Err(format!(
                        "invalid percent escape at character {} of {input:?}",
                        i + 1
                    ));
                };
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("decoded bytes of {input:?} are not UTF-8"))
}
