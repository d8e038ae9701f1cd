//! Rejected input: messages, positions and the rendered report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_expr::{ParseError, Span, parse, render_error};

fn err(src: &str) -> ParseError {
    match parse(src) {
        Ok(e) => panic!("{src:?} parsed as {e}"),
        Err(err) => err,
    }
}

/// The message and the source text the error's span covers.
fn at(src: &str) -> (String, String) {
    let err = err(src);
    let text = err.span.text(src).unwrap().to_owned();
    (err.message, text)
}

#[test]
fn brief_example_renders_exactly() {
    let src = "ds.tas.sel(lat=45.5,, lon=9)";
    assert_eq!(
        err(src).render(src),
        "error at 1:21: expected an expression, found ','\n  \
         ds.tas.sel(lat=45.5,, lon=9)\n                      ^"
    );
}

#[test]
fn rendering_handles_later_lines_non_ascii_tabs_and_wide_spans() {
    let src = "ds.températures.sel(\n\tlat=1,\n\tlat=2)";
    assert_eq!(
        err(src).render(src),
        "error at 3:2: keyword argument 'lat' repeated\n  \tlat=2)\n  \t^^^"
    );
    let src = "\"été\" + 名前 $";
    assert_eq!(
        err(src).render(src),
        "error at 1:12: unexpected character '$'\n  \"été\" + 名前 $\n             ^"
    );
    let src = "f(\"abc";
    assert_eq!(
        err(src).render(src),
        "error at 1:3: unterminated string literal\n  f(\"abc\n    ^"
    );
    let src = "a +";
    assert_eq!(
        err(src).render(src),
        "error at 1:4: expected an expression, found end of input\n  a +\n     ^"
    );
    let src = "1__000 + x";
    assert_eq!(
        err(src).render(src),
        "error at 1:1: invalid decimal literal\n  1__000 + x\n  ^^^^^^"
    );
}

#[test]
fn render_error_survives_any_span() {
    let src = "é\r\nab";
    for (start, end) in [(0, 0), (1, 1), (0, 100), (50, 60), (3, 2), (4, 6)] {
        let out = render_error(src, Span::new(start, end), "m");
        assert!(out.starts_with("error at "), "{out}");
        assert!(!out.contains('\r'), "{out:?}");
        assert!(out.ends_with('^'), "{out}");
    }
    assert_eq!(
        render_error(src, Span::new(4, 6), "m"),
        "error at 2:1: m\n  ab\n  ^^"
    );
}

#[test]
fn empty_input_is_an_error_at_the_start() {
    for src in ["", "   ", "# nothing", "\n\n"] {
        let err = err(src);
        assert_eq!(
            err.message, "empty input: expected an expression",
            "{src:?}"
        );
        assert_eq!(err.span.start, 0, "{src:?}");
    }
}

#[test]
fn argument_order_and_duplicates() {
    assert_eq!(
        at("f(a=1, b)"),
        (
            "positional argument follows keyword argument".into(),
            "b".into()
        )
    );
    assert_eq!(
        at("ds.sel(lat=1, lon=2, lat=3)"),
        ("keyword argument 'lat' repeated".into(), "lat".into())
    );
    let (message, text) = at("f(x.y=1)");
    assert!(
        message.contains("must be a plain name, not 'x.y'"),
        "{message}"
    );
    assert_eq!(text, "x.y");
}

#[test]
fn brackets() {
    // The innermost unclosed bracket, as CPython reports it.
    let src = "ds.sel(lat=[1, 2, x[0]";
    let e = err(src);
    assert_eq!(e.message, "'[' was never closed");
    assert_eq!(e.span, Span::new(11, 12));
    let e = err("f(\n  [1,\n   2\n");
    assert_eq!(e.message, "'[' was never closed");
    assert_eq!(e.span, Span::new(5, 6));
    assert_eq!(
        at("(a]"),
        ("closing ']' does not match opening '('".into(), "]".into())
    );
    assert_eq!(at("a + b)"), ("unmatched ')'".into(), ")".into()));
}

#[test]
fn strings() {
    assert_eq!(
        at("ds['tas]"),
        ("unterminated string literal".into(), "'".into())
    );
    assert_eq!(
        at("x + '''a\nb"),
        (
            "unterminated triple-quoted string literal".into(),
            "'''".into()
        )
    );
    assert_eq!(
        at("f(f'{x}')"),
        ("f-strings are not supported".into(), "f'{x}'".into())
    );
    assert_eq!(
        at("'ok' '\\xZZ'"),
        (
            "truncated \\x escape: expected 2 hex digits".into(),
            "\\x".into()
        )
    );
    assert_eq!(
        at("b'x'"),
        ("bytes literals are not supported".into(), "b'x'".into())
    );
}

#[test]
fn unexpected_characters_and_trailing_garbage() {
    assert_eq!(
        at("ds.tas $ 2"),
        ("unexpected character '$'".into(), "$".into())
    );
    assert_eq!(
        at("a\u{200b}"),
        // Invisible characters are shown escaped.
        (
            "unexpected character '\\u{200b}' (U+200B)".into(),
            "\u{200b}".into()
        )
    );
    assert_eq!(
        at("ds.tas ds.pr"),
        (
            "unexpected name 'ds' after the expression".into(),
            "ds".into()
        )
    );
    assert_eq!(
        at("ds.tas\nds.pr"),
        (
            "unexpected name 'ds' after the expression \
             (line breaks are only allowed inside brackets)"
                .into(),
            "ds".into()
        )
    );
}

#[test]
fn unsupported_python_is_named() {
    let cases = [
        (
            "x = ds.tas",
            "assignment is not an expression (use '==' to compare)",
            "=",
        ),
        (
            "x += 1",
            "augmented assignment ('+=') is not an expression",
            "+=",
        ),
        (
            "lambda x: x",
            "lambda expressions are not supported",
            "lambda",
        ),
        ("[v for v in ds]", "comprehensions are not supported", "for"),
        (
            "f(*xs)",
            "starred expressions ('*x') are not supported",
            "*",
        ),
        ("f(**kw)", "'**' unpacking is not supported", "**"),
        (
            "(n := 1)",
            "assignment expressions (':=') are not supported",
            ":=",
        ),
        ("a @ b", "matrix multiplication ('@') is not supported", "@"),
        (
            "{'a': 1}",
            "dict and set displays ('{...}') are not supported",
            "{",
        ),
        ("x[..., 0]", "the ellipsis ('...') is not supported", "..."),
        ("2j", "complex number literals are not supported", "2j"),
        (
            "import os",
            "statements are not supported; expected an expression, found keyword 'import'",
            "import",
        ),
        ("a; b", "statements are not supported (found ';')", ";"),
        (
            "for x in ds: x",
            "statements are not supported; expected an expression, found keyword 'for'",
            "for",
        ),
        (
            "if x: y",
            "statements are not supported; expected an expression, found keyword 'if'",
            "if",
        ),
        ("f(if)", "expected an expression, found keyword 'if'", "if"),
        ("f(x)[1:2:3:4]", "expected ',' or ']', found ':'", ":"),
        (
            "[1:2]",
            "slices are only allowed directly inside subscripts",
            ":",
        ),
    ];
    for (src, message, text) in cases {
        assert_eq!(at(src), (message.to_owned(), text.to_owned()), "{src}");
    }
}

#[test]
fn numbers() {
    assert_eq!(
        at("9223372036854775808"),
        (
            "integer literal 9223372036854775808 is too large (the largest is 9223372036854775807)"
                .into(),
            "9223372036854775808".into()
        )
    );
    assert_eq!(
        at("012"),
        (
            "leading zeros in decimal integer literals are not permitted; \
             use an 0o prefix for octal integers"
                .into(),
            "012".into()
        )
    );
    assert_eq!(
        at("1.5e"),
        ("invalid decimal literal".into(), "1.5e".into())
    );
    assert_eq!(
        at("0b102"),
        ("invalid digit '2' in binary literal".into(), "0b102".into())
    );
}

#[test]
fn found_strings_are_quoted_and_shortened() {
    assert_eq!(
        at("ds 'tas'").0,
        "unexpected string 'tas' after the expression"
    );
    assert_eq!(
        at("ds 'a very long string literal indeed'").0,
        "unexpected string 'a very long string lite... after the expression"
    );
}

#[test]
fn conditional_without_else_marks_the_whole_conditional() {
    assert_eq!(
        at("f(a if b)"),
        (
            "expected 'else' after 'if' expression, found ')'".into(),
            "a if b".into()
        )
    );
}

#[test]
fn error_display_names_the_byte_range() {
    let e = err("a b");
    assert_eq!(
        e.to_string(),
        "unexpected name 'b' after the expression (at bytes 2..3)"
    );
}
