//! Expression language tests: precedence (shown as the parenthesised tree), operators,
//! field paths, literals, errors with positions, and the limits (4,096 characters, nesting).

use chrono::{DateTime, Utc};
use expect_test::{Expect, expect};
use serde_json::json;

use super::{EvalState, Expr, ExprKind, FieldPath, MAX_EXPRESSION_CHARS, Value, eval, parse};

/// Renders a parse tree with explicit parentheses so precedence is visible.
fn tree(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Literal(value) => value.to_json().to_string(),
        ExprKind::Field(path) => format!("${path}"),
        ExprKind::Call { function, args } => {
            format!(
                "{}({})",
                function.name(),
                args.iter().map(tree).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Unary { op, operand } => format!("({op:?} {})", tree(operand)),
        ExprKind::Binary { op, lhs, rhs } => format!("({} {op:?} {})", tree(lhs), tree(rhs)),
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => match then {
            Some(then) => format!(
                "({} ? {} : {})",
                tree(condition),
                tree(then),
                tree(otherwise)
            ),
            None => format!("({} ?: {})", tree(condition), tree(otherwise)),
        },
        ExprKind::Array(items) => format!(
            "[{}]",
            items.iter().map(tree).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", tree(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Member { target, name } => format!("{}.{name}", tree(target)),
        ExprKind::Index { target, index } => format!("{}[{}]", tree(target), tree(index)),
    }
}

fn check_parse(cases: &[&str], expect: Expect) {
    let mut out = String::new();
    for src in cases {
        let rendered = match parse(src) {
            Ok(expr) => tree(&expr),
            Err(err) => format!("error at column {}: {}", err.span.column(src), err.message),
        };
        out.push_str(&format!("{src} => {rendered}\n"));
    }
    expect.assert_eq(&out);
}

fn check_eval(cases: &[&str], expect: Expect) {
    let record = Value::from_json(&json!({
        "a": 7, "b": 2, "f": 1.5, "s": "10", "t": "text", "yes": "yes", "nothing": null,
        "person": {"name": {"first": "Ada", "last.name": "Lovelace"}, "tags": [{"x": 1}, {"x": 2}]},
        "Field Name": "odd", "new": "reserved"
    }));
    let now = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut out = String::new();
    for src in cases {
        let rendered = match parse(src) {
            Err(err) => format!("parse error: {}", err.message),
            Ok(expr) => match eval(&expr, &record, &mut EvalState::new(now)) {
                Ok(value) => value.to_json().to_string(),
                Err(err) => format!("error at column {}: {}", err.span.column(src), err.message),
            },
        };
        out.push_str(&format!("{src} => {rendered}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn precedence_follows_the_reference_table() {
    check_parse(
        &[
            "1 + 2 * 3",
            "(1 + 2) * 3",
            "1 - 2 - 3",
            "a || b && c",
            "a and b or not c",
            "a == 1 && b != 2",
            "a < b == c > d",
            "-a * b",
            "!a == b",
            "a ? b : c ? d : e",
            "a ?: b",
            "a + b ? 1 : 2",
            "x div 2 mod 3",
            "a eq b or c ne d",
            "a lt b and c ge d",
            "lower(upper(a.b))",
            "a.b.equals(\"x\")",
            "trim(x).equalsIgnoreCase(y)",
            "arr[0].x + arr[*].y",
            "split(s, \",\")[1]",
            "json_to_object(s).k.m",
            "${Field Name} + ${new}",
            "a\\.b.c",
            "[1, \"two\", null]",
            "{\"k\": 1, v: [true]}",
            "-5",
            "3.25e2",
            "10L + 1.5d",
            "'single \\'quoted\\''",
            "\"tab\\there \\u00e9\"",
            "\"\\d+\"",
        ],
        expect![[r#"
            1 + 2 * 3 => (1 Add (2 Mul 3))
            (1 + 2) * 3 => ((1 Add 2) Mul 3)
            1 - 2 - 3 => ((1 Sub 2) Sub 3)
            a || b && c => ($a Or ($b And $c))
            a and b or not c => (($a And $b) Or (Not $c))
            a == 1 && b != 2 => (($a Eq 1) And ($b Ne 2))
            a < b == c > d => (($a Lt $b) Eq ($c Gt $d))
            -a * b => ((Neg $a) Mul $b)
            !a == b => ((Not $a) Eq $b)
            a ? b : c ? d : e => ($a ? $b : ($c ? $d : $e))
            a ?: b => ($a ?: $b)
            a + b ? 1 : 2 => (($a Add $b) ? 1 : 2)
            x div 2 mod 3 => (($x Div 2) Rem 3)
            a eq b or c ne d => (($a Eq $b) Or ($c Ne $d))
            a lt b and c ge d => (($a Lt $b) And ($c Ge $d))
            lower(upper(a.b)) => lower(upper($a.b))
            a.b.equals("x") => equals($a.b, "x")
            trim(x).equalsIgnoreCase(y) => equalsIgnoreCase(trim($x), $y)
            arr[0].x + arr[*].y => ($arr[0].x Add $arr[*].y)
            split(s, ",")[1] => split($s, ",")[1]
            json_to_object(s).k.m => json_to_object($s).k.m
            ${Field Name} + ${new} => ($${Field Name} Add $new)
            a\.b.c => $a\.b.c
            [1, "two", null] => [1, "two", null]
            {"k": 1, v: [true]} => {k: 1, v: [true]}
            -5 => -5
            3.25e2 => 325.0
            10L + 1.5d => (10 Add 1.5)
            'single \'quoted\'' => "single 'quoted'"
            "tab\there \u00e9" => "tab\there é"
            "\d+" => "\\d+"
        "#]],
    );
}

#[test]
fn syntax_errors_point_at_the_problem() {
    check_parse(
        &[
            "",
            "1 +",
            "lower(a",
            "lowr(a)",
            "a b",
            "\"unterminated",
            "a = b",
            "lower(,)",
            "#",
            "${unclosed",
            "99999999999999999999",
            "a.(b)",
            "{1: 2}",
            "x.nosuchmethod()",
        ],
        expect![[r#"
             => error at column 1: empty expression
            1 + => error at column 4: expected a value, found `end of expression`
            lower(a => error at column 8: expected `,` or `)` in argument list, found `end of expression`
            lowr(a) => error at column 1: unknown function `lowr`
            a b => error at column 3: unexpected `b` after a complete expression
            "unterminated => error at column 1: unterminated string: expected a closing "
            a = b => error at column 3: expected `==` or `=~` after `=`
            lower(,) => error at column 7: expected a value, found `,`
            # => error at column 1: unexpected character `#`
            ${unclosed => error at column 1: unterminated `${` field name: expected `}`
            99999999999999999999 => error at column 1: integer `99999999999999999999` does not fit in 64 bits
            a.(b) => error at column 3: expected a field or method name after `.`, found `(`
            {1: 2} => error at column 2: expected an object key, found `1`
            x.nosuchmethod() => error at column 3: unknown function `nosuchmethod`
        "#]],
    );
}

#[test]
fn nesting_depth_and_operator_chains_are_capped_instead_of_overflowing() {
    let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
    assert_eq!(
        parse(&deep).unwrap_err().message,
        "expression nests deeper than 64 levels"
    );
    let shallow = format!("{}1{}", "(".repeat(60), ")".repeat(60));
    assert!(parse(&shallow).is_ok());
    let long_chain = vec!["1"; 1000].join("+");
    assert_eq!(
        parse(&long_chain).unwrap_err().message,
        "more than 256 operators in a row: group them"
    );
    let chain = vec!["1"; 200].join("+");
    let total = eval(
        &parse(&chain).unwrap(),
        &Value::Object(Vec::new()),
        &mut EvalState::new(Utc::now()),
    )
    .unwrap();
    assert_eq!(total, Value::Int(200));
}

#[test]
fn calculated_field_limit_is_4096_characters() {
    let at_limit = format!("\"{}\"", "é".repeat(MAX_EXPRESSION_CHARS - 2));
    assert!(
        parse(&at_limit).is_ok(),
        "4,096 characters (multi-byte) are accepted"
    );
    let over = format!("\"{}\"", "a".repeat(MAX_EXPRESSION_CHARS - 1));
    assert_eq!(
        parse(&over).unwrap_err().message,
        "expression is 4097 characters long; the limit is 4096"
    );
}

#[test]
fn operators_and_implicit_conversions() {
    check_eval(
        &[
            "a + b",
            "a - b * 2",
            "a / b",
            "a % b",
            "f * 2",
            "a / 0",
            "f / 0",
            "s + 1",
            "s - 1",
            "t - 1",
            "\"x\" + a",
            "a + nothing",
            "-a",
            "-t",
            "9223372036854775807 + 1",
            "a == 7.0",
            "s == 10",
            "s == \"10\"",
            "yes == true",
            "nothing == null",
            "a != nothing",
            "a > b && b > 1",
            "t > 1",
            "nothing > 1",
            "!yes",
            "!t",
            "not nothing",
            "a > 100 || s",
            "nothing ?: \"fallback\"",
            "\"\" ?: \"fallback\"",
            "a > b ? \"big\" : \"small\"",
            "[a, b][1]",
            "[a][5]",
            "{\"k\": a}[\"k\"]",
            "a[0]",
        ],
        expect![[r#"
            a + b => 9
            a - b * 2 => 3
            a / b => 3
            a % b => 1
            f * 2 => 3.0
            a / 0 => error at column 1: division by zero
            f / 0 => error at column 1: division by zero
            s + 1 => "101"
            s - 1 => 9
            t - 1 => error at column 1: expected a number, got the string "text"
            "x" + a => "x7"
            a + nothing => null
            -a => -7
            -t => error at column 1: expected a number, got the string "text"
            9223372036854775807 + 1 => error at column 1: integer overflow
            a == 7.0 => true
            s == 10 => true
            s == "10" => true
            yes == true => true
            nothing == null => true
            a != nothing => true
            a > b && b > 1 => true
            t > 1 => error at column 1: cannot compare the string "text" with a number
            nothing > 1 => null
            !yes => false
            !t => error at column 1: expected a boolean, got the string "text"
            not nothing => true
            a > 100 || s => error at column 1: expected a boolean, got the string "10"
            nothing ?: "fallback" => "fallback"
            "" ?: "fallback" => "fallback"
            a > b ? "big" : "small" => "big"
            [a, b][1] => 2
            [a][5] => null
            {"k": a}["k"] => 7
            a[0] => null
        "#]],
    );
}

#[test]
fn field_paths_read_nested_values_and_missing_fields_are_null() {
    check_eval(
        &[
            "person.name.first",
            "person.name.${last.name}",
            "person.name.last\\.name",
            "person.tags[1].x",
            "person.tags[5].x",
            "person.tags[*].x",
            "person.missing.deeper",
            "missing",
            "${Field Name}",
            "${new}",
            "a.b",
        ],
        expect![[r#"
            person.name.first => "Ada"
            person.name.${last.name} => "Lovelace"
            person.name.last\.name => "Lovelace"
            person.tags[1].x => 2
            person.tags[5].x => null
            person.tags[*].x => [1,2]
            person.missing.deeper => null
            missing => null
            ${Field Name} => "odd"
            ${new} => "reserved"
            a.b => null
        "#]],
    );
}

#[test]
fn path_syntax_of_sources_and_destinations() {
    let mut out = String::new();
    for text in [
        "person.name.firstName",
        "a\\.b.c",
        "${Field Name}.x",
        "arr[0].x",
        "arr[*].x",
        "_tenant.field",
        "a..b",
        "a.",
        "[0]",
        "a[x]",
        "a[1",
        "",
    ] {
        let rendered = match FieldPath::parse(text) {
            Ok(path) => format!("{:?} (displays as {path})", path.segments),
            Err(err) => format!("error: {}", err.message),
        };
        out.push_str(&format!("{text:?} => {rendered}\n"));
    }
    expect![[r#"
        "person.name.firstName" => [Name("person"), Name("name"), Name("firstName")] (displays as person.name.firstName)
        "a\\.b.c" => [Name("a.b"), Name("c")] (displays as a\.b.c)
        "${Field Name}.x" => [Name("Field Name"), Name("x")] (displays as ${Field Name}.x)
        "arr[0].x" => [Name("arr"), Index(0), Name("x")] (displays as arr[0].x)
        "arr[*].x" => [Name("arr"), Each, Name("x")] (displays as arr[*].x)
        "_tenant.field" => [Name("_tenant"), Name("field")] (displays as _tenant.field)
        "a..b" => error: empty name in path
        "a." => error: path ends with `.`
        "[0]" => error: a path cannot start with `[`
        "a[x]" => error: invalid array index `x`: expected a number or `*`
        "a[1" => error: unterminated `[`: expected `]`
        "" => error: empty path
    "#]]
    .assert_eq(&out);
}
