//! Parse results: exact tree shapes, literal values, spans, nesting limits and Display.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::sexpr_of;
use gridflow_expr::{
    BinaryOp, BinaryStep, BoolOpKind, CompareOp, Expr, ExprKind, Keyword, MAX_DEPTH, Span, UnaryOp,
    parse,
};

fn e(kind: ExprKind, start: usize, end: usize) -> Expr {
    Expr::new(kind, Span::new(start, end))
}

fn name(n: &str, start: usize) -> Expr {
    e(ExprKind::Name(n.to_owned()), start, start + n.len())
}

fn b(x: Expr) -> Box<Expr> {
    Box::new(x)
}

fn kind(src: &str) -> ExprKind {
    parse(src).unwrap().kind
}

#[test]
fn attribute_access_has_exact_shape_and_spans() {
    let want = e(
        ExprKind::Attribute {
            value: b(name("ds", 0)),
            attr: "tas".to_owned(),
            attr_span: Span::new(3, 6),
        },
        0,
        6,
    );
    assert_eq!(parse("ds.tas").unwrap(), want);
}

#[test]
fn call_with_positional_and_keyword_arguments_has_exact_shape() {
    //          0123456789
    let src = "f(a, b=1)";
    let want = e(
        ExprKind::Call {
            func: b(name("f", 0)),
            args: vec![name("a", 2)],
            kwargs: vec![Keyword {
                name: "b".to_owned(),
                name_span: Span::new(5, 6),
                value: e(ExprKind::Int(1), 7, 8),
            }],
        },
        0,
        9,
    );
    assert_eq!(parse(src).unwrap(), want);
}

#[test]
fn subscript_with_slice_and_tuple_index_has_exact_shape() {
    //          0123456789
    let src = "x[0, ::2]";
    let slice = e(
        ExprKind::Slice {
            start: None,
            stop: None,
            step: Some(b(e(ExprKind::Int(2), 7, 8))),
        },
        5,
        8,
    );
    let index = e(
        ExprKind::Tuple(vec![e(ExprKind::Int(0), 2, 3), slice]),
        2,
        8,
    );
    let want = e(
        ExprKind::Subscript {
            value: b(name("x", 0)),
            index: b(index),
        },
        0,
        9,
    );
    assert_eq!(parse(src).unwrap(), want);
}

#[test]
fn unary_minus_binds_looser_than_power() {
    let two = |at| e(ExprKind::Int(2), at, at + 1);
    let pow = e(
        ExprKind::Binary {
            left: b(two(1)),
            ops: vec![BinaryStep {
                op: BinaryOp::Pow,
                right: two(4),
                span: Span::new(1, 5),
            }],
        },
        1,
        5,
    );
    let want = e(
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand: b(pow),
        },
        0,
        5,
    );
    assert_eq!(parse("-2**2").unwrap(), want);
}

#[test]
fn chained_comparison_is_one_node() {
    let want = e(
        ExprKind::Compare {
            left: b(name("a", 0)),
            ops: vec![(CompareOp::Lt, name("b", 4)), (CompareOp::Lt, name("c", 8))],
        },
        0,
        9,
    );
    assert_eq!(parse("a < b < c").unwrap(), want);
}

#[test]
fn conditional_keeps_body_test_orelse() {
    let want = e(
        ExprKind::IfElse {
            body: b(name("a", 0)),
            test: b(name("c", 5)),
            orelse: b(name("b", 12)),
        },
        0,
        13,
    );
    assert_eq!(parse("a if c else b").unwrap(), want);
}

#[test]
fn boolean_chains_flatten_but_parentheses_nest() {
    let ExprKind::BoolOp { op, values } = kind("a or b or c") else {
        panic!("not a bool op")
    };
    assert_eq!(op, BoolOpKind::Or);
    assert_eq!(values.len(), 3);
    let ExprKind::BoolOp { values, .. } = kind("a or (b or c)") else {
        panic!("not a bool op")
    };
    assert_eq!(values.len(), 2);
    assert!(matches!(
        values[1].kind,
        ExprKind::BoolOp {
            op: BoolOpKind::Or,
            ..
        }
    ));
}

#[test]
fn examples_from_the_eval_docs_parse_to_the_expected_trees() {
    let cases = [
        (
            r#"ds.tas.sel(lat=45.5, lon=9.4, method="nearest").mean("time")"#,
            r#"(call (attr (call (attr (attr (name "ds") "tas") "sel") (kw "lat" (float 45.5)) (kw "lon" (float 9.4)) (kw "method" (str "nearest"))) "mean") (str "time"))"#,
        ),
        (
            r#"ds["tas"].groupby("time.month").mean()"#,
            r#"(call (attr (call (attr (sub (name "ds") (str "tas")) "groupby") (str "time.month")) "mean"))"#,
        ),
        (
            "(ds.tas - 273.15).where(ds.tas > 280)",
            r#"(call (attr (binary - (attr (name "ds") "tas") (float 273.15)) "where") (compare (attr (name "ds") "tas") > (int 280)))"#,
        ),
        (
            r#"ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(["lat", "lon"])"#,
            r#"(call (attr (call (attr (attr (name "ds") "tas") "weighted") (call (attr (name "np") "cos") (call (attr (name "np") "deg2rad") (attr (name "ds") "lat")))) "mean") (list (str "lat") (str "lon")))"#,
        ),
        (
            r#"ds.tas.resample(time="1D").max()"#,
            r#"(call (attr (call (attr (attr (name "ds") "tas") "resample") (kw "time" (str "1D"))) "max"))"#,
        ),
        (
            r#"ds.tas.sel(time=slice("1850-02", "1850-03")).isel(lat=0)"#,
            r#"(call (attr (call (attr (attr (name "ds") "tas") "sel") (kw "time" (call (name "slice") (str "1850-02") (str "1850-03")))) "isel") (kw "lat" (int 0)))"#,
        ),
        (
            "da.ones((20000, 20000), chunks=(200, 200)).sum()",
            r#"(call (attr (call (attr (name "da") "ones") (tuple (int 20000) (int 20000)) (kw "chunks" (tuple (int 200) (int 200)))) "sum"))"#,
        ),
        (
            "da.random.random((100,), chunks=10)",
            r#"(call (attr (attr (name "da") "random") "random") (tuple (int 100)) (kw "chunks" (int 10)))"#,
        ),
        (
            r#"ds.tas.groupby("time.month") - ds.tas.groupby("time.month").mean()"#,
            r#"(binary - (call (attr (attr (name "ds") "tas") "groupby") (str "time.month")) (call (attr (call (attr (attr (name "ds") "tas") "groupby") (str "time.month")) "mean")))"#,
        ),
        (
            "np.where(np.isnan(ds.tas), 0, ds.tas)",
            r#"(call (attr (name "np") "where") (call (attr (name "np") "isnan") (attr (name "ds") "tas")) (int 0) (attr (name "ds") "tas"))"#,
        ),
        (
            "(ds.tas > 280) & ~(ds.tas > 300) | False",
            r#"(binary | (binary & (compare (attr (name "ds") "tas") > (int 280)) (unary ~ (compare (attr (name "ds") "tas") > (int 300)))) False)"#,
        ),
        (
            "ds.tas.isel(time=[0, 5, -1])",
            r#"(call (attr (attr (name "ds") "tas") "isel") (kw "time" (list (int 0) (int 5) (unary - (int 1)))))"#,
        ),
        (
            "ds.tas[0, :, ::2]",
            r#"(sub (attr (name "ds") "tas") (tuple (int 0) (slice _ _ _) (slice _ _ (int 2))))"#,
        ),
    ];
    for (src, want) in cases {
        assert_eq!(sexpr_of(src), want, "{src}");
    }
}

#[test]
fn precedence_and_associativity_follow_python() {
    let cases = [
        (
            "a - b - c",
            r#"(binary - (binary - (name "a") (name "b")) (name "c"))"#,
        ),
        (
            "2 ** 3 ** 2",
            "(binary ** (int 2) (binary ** (int 3) (int 2)))",
        ),
        ("2 ** -1", "(binary ** (int 2) (unary - (int 1)))"),
        (
            "-x ** -y",
            r#"(unary - (binary ** (name "x") (unary - (name "y"))))"#,
        ),
        (
            "a + b * c",
            r#"(binary + (name "a") (binary * (name "b") (name "c")))"#,
        ),
        (
            "a | b ^ c & d",
            r#"(binary | (name "a") (binary ^ (name "b") (binary & (name "c") (name "d"))))"#,
        ),
        (
            "a << b + c",
            r#"(binary << (name "a") (binary + (name "b") (name "c")))"#,
        ),
        (
            "a & b == c",
            r#"(compare (binary & (name "a") (name "b")) == (name "c"))"#,
        ),
        (
            "not a == b",
            r#"(unary not (compare (name "a") == (name "b")))"#,
        ),
        (
            "a or b and c",
            r#"(or (name "a") (and (name "b") (name "c")))"#,
        ),
        ("not a and b", r#"(and (unary not (name "a")) (name "b"))"#),
        (
            "a if b else c if d else e",
            r#"(if (name "a") (name "b") (if (name "c") (name "d") (name "e")))"#,
        ),
        (
            "a not in b is not c",
            r#"(compare (name "a") not-in (name "b") is-not (name "c"))"#,
        ),
        (
            "a // b % c * d / e",
            r#"(binary / (binary * (binary % (binary // (name "a") (name "b")) (name "c")) (name "d")) (name "e"))"#,
        ),
        ("~x ** 2", r#"(unary ~ (binary ** (name "x") (int 2)))"#),
        (
            "-a.b[0]()",
            r#"(unary - (call (sub (attr (name "a") "b") (int 0))))"#,
        ),
    ];
    for (src, want) in cases {
        assert_eq!(sexpr_of(src), want, "{src}");
    }
}

#[test]
fn numbers_are_decoded() {
    let ints = [
        ("0", 0),
        ("1_000", 1000),
        ("0x10", 16),
        ("0XfF", 255),
        ("0o17", 15),
        ("0b1011", 11),
        ("00", 0),
        ("9223372036854775807", i64::MAX),
    ];
    for (src, want) in ints {
        assert_eq!(kind(src), ExprKind::Int(want), "{src}");
    }
    let floats = [
        ("1e-3", 1e-3),
        (".5", 0.5),
        ("5.", 5.0),
        ("1_000.5", 1000.5),
        ("1E+2", 100.0),
        ("1.e2", 100.0),
        ("007.5", 7.5),
        ("1e309", f64::INFINITY),
    ];
    for (src, want) in floats {
        assert_eq!(kind(src), ExprKind::Float(want), "{src}");
    }
}

#[test]
fn strings_are_decoded_and_joined() {
    let cases = [
        (r#""a" 'b'"#, "ab"),
        (r#""\n\t\\\'\"""#, "\n\t\\'\""),
        (r#""\x41\u00e9\U0001F600""#, "Aé😀"),
        (r#""\101\0""#, "A\0"),
        (r#"r"\n\d""#, "\\n\\d"),
        (r#""\d""#, "\\d"),
        ("'''two\nlines'''", "two\nlines"),
        (r#""""has "quotes" in"""  "#, r#"has "quotes" in"#),
        ("'a\\\nb'", "ab"),
        ("u'é☃'", "é☃"),
    ];
    for (src, want) in cases {
        assert_eq!(kind(src), ExprKind::Str(want.to_owned()), "{src}");
    }
}

#[test]
fn constants_and_containers() {
    assert_eq!(kind("True"), ExprKind::Bool(true));
    assert_eq!(kind("False"), ExprKind::Bool(false));
    assert_eq!(kind("None"), ExprKind::None);
    assert_eq!(kind("()"), ExprKind::Tuple(vec![]));
    assert_eq!(kind("[]"), ExprKind::List(vec![]));
    assert_eq!(sexpr_of("(1,)"), "(tuple (int 1))");
    assert_eq!(sexpr_of("[1, 2,]"), "(list (int 1) (int 2))");
    assert_eq!(sexpr_of("(1)"), "(int 1)");
    assert_eq!(sexpr_of("1, 2"), "(tuple (int 1) (int 2))");
}

#[test]
fn parenthesized_group_keeps_inner_span_but_outer_nodes_include_the_bracket() {
    let group = parse("(a)").unwrap();
    assert_eq!(group.span, Span::new(1, 2));
    let attr = parse("(a).b").unwrap();
    assert_eq!(attr.span, Span::new(0, 5));
    let tuple = parse("(a, b)").unwrap();
    assert_eq!(tuple.span, Span::new(0, 6));
}

#[test]
fn whitespace_comments_and_line_breaks_inside_brackets_are_ignored() {
    let src = "  ds.tas.sel(  # where\n    lat=45.5,\n\tlon=9.4,\r\n)\n\n";
    assert_eq!(
        sexpr_of(src),
        r#"(call (attr (attr (name "ds") "tas") "sel") (kw "lat" (float 45.5)) (kw "lon" (float 9.4)))"#
    );
    assert_eq!(
        sexpr_of("a + \\\n b"),
        r#"(binary + (name "a") (name "b"))"#
    );
}

#[test]
fn dotted_name_of_attribute_chains() {
    let dotted = |src: &str| parse(src).unwrap().dotted_name();
    assert_eq!(
        dotted("np.random.random").as_deref(),
        Some("np.random.random")
    );
    assert_eq!(dotted("x").as_deref(), Some("x"));
    assert_eq!(dotted("(np).cos").as_deref(), Some("np.cos"));
    assert_eq!(dotted("np.cos(x)"), None);
    assert_eq!(dotted("ds['a'].b"), None);
    assert_eq!(dotted("1"), None);
}

#[test]
fn nesting_up_to_the_limit_works_and_deeper_is_an_error() {
    let ok = format!(
        "{}a{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(sexpr_of(&ok), r#"(name "a")"#);
    let chain = format!("a{}", ".b".repeat(MAX_DEPTH - 1));
    assert!(parse(&chain).is_ok());
    // The deepest allowed nesting through each kind of bracket fits a test thread's stack
    // in a debug build.
    let n = MAX_DEPTH - 1;
    for (open, close) in [("x[", "]"), ("f(k=", ")"), ("f(", ")"), ("[", "]")] {
        let src = format!("{}0{}", open.repeat(n), close.repeat(n));
        assert!(parse(&src).is_ok(), "{open}...{close}");
        let src = format!("{}0{}", open.repeat(n + 1), close.repeat(n + 1));
        assert!(parse(&src).is_err(), "{open}...{close}");
    }
    // A slice adds a node per level: `x[1:x[1:...]]` is twice as tall as it is nested.
    let half = MAX_DEPTH / 2 - 1;
    assert!(parse(&format!("{}0{}", "x[1:".repeat(half), "]".repeat(half))).is_ok());
    let src = format!("{}0{}", "x[1:".repeat(half + 1), "]".repeat(half + 1));
    assert!(
        parse(&src)
            .unwrap_err()
            .message
            .contains("nested too deeply")
    );

    let deep_inputs = [
        format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}a", "-".repeat(100_000)),
        format!("{}a", "not ".repeat(100_000)),
        format!("a{}", " ** a".repeat(100_000)),
        format!("a{}", ".b".repeat(100_000)),
        format!("a{}", "[0]".repeat(100_000)),
        format!("{}1", "[".repeat(100_000)),
        format!("a{}", " if b else a".repeat(100_000)),
        format!("{}a{}", "(a + ".repeat(50_000), ")".repeat(50_000)),
    ];
    for src in &deep_inputs {
        let err = parse(src).unwrap_err();
        assert!(
            err.message.contains("nested too deeply"),
            "{}: {}",
            &src[..20],
            err.message
        );
    }
}

#[test]
fn long_flat_operator_runs_are_one_shallow_node() {
    // 101 terms used to be 101 levels deep and hit the nesting limit.
    let src = vec!["1"; 101].join(" + ");
    let ExprKind::Binary { ops, .. } = kind(&src) else {
        panic!("not a binary chain")
    };
    assert_eq!(ops.len(), 100);
    // Mixed operators of one level stay in order; other levels nest inside as operands.
    assert_eq!(
        sexpr_of("a - b + c * d - e"),
        sexpr_of("((a - b) + (c * d)) - e")
    );
    for op in ["+", "-", "*", "/", "//", "%", "|", "&", "^", "<<", ">>"] {
        for n in [10_000, 100_000] {
            let src = format!("x{}", format!(" {op} x").repeat(n));
            let parsed = parse(&src).unwrap_or_else(|e| panic!("{op} x{n}: {}", e.message));
            let ExprKind::Binary { ops, .. } = &parsed.kind else {
                panic!("{op}: not a binary chain")
            };
            assert_eq!(ops.len(), n);
            // Printing and dropping a long chain do not recurse along it either.
            assert_eq!(parsed.to_string().len(), src.len());
            drop(parsed);
        }
    }
    // A long sum of products and of parenthesized terms is flat too.
    let src = vec!["(2 * y)"; 50_000].join(" + ");
    assert!(parse(&src).is_ok());
}

#[test]
fn wide_flat_input_is_fine() {
    let src = format!("[{}]", "1, ".repeat(100_000));
    let ExprKind::List(items) = kind(&src) else {
        panic!("not a list")
    };
    assert_eq!(items.len(), 100_000);
}

#[test]
fn display_prints_minimal_parentheses() {
    let cases = [
        ("((a + b)) * c", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("(-2) ** 2", "(-2) ** 2"),
        ("-(2 ** 2)", "-2 ** 2"),
        ("2 ** (3 ** 2)", "2 ** 3 ** 2"),
        ("(2 ** 3) ** 2", "(2 ** 3) ** 2"),
        ("a or (b or c)", "a or (b or c)"),
        ("(a or b) or c", "(a or b) or c"),
        ("a or b or c", "a or b or c"),
        ("(a < b) < c", "(a < b) < c"),
        ("not (a == b)", "not a == b"),
        ("(not a) == b", "(not a) == b"),
        ("(a if b else c) if d else e", "(a if b else c) if d else e"),
        ("a if b else (c if d else e)", "a if b else c if d else e"),
        ("x[(1, 2)]", "x[1, 2]"),
        ("x[1:2, ::3]", "x[1:2, ::3]"),
        ("x[a,]", "x[a,]"),
        ("x[()]", "x[()]"),
        ("x[::]", "x[:]"),
        ("f(a, b=(c, d))", "f(a, b=(c, d))"),
        ("(1,)", "(1,)"),
        ("(1).real", "(1).real"),
        ("1.5 .real", "1.5.real"),
        ("'it''s' \"\\n\"", r#""its\n""#),
        ("'\\x00\\\\\"'", r#""\x00\\\"""#),
        ("1e-5 + 1e16 + 0.1 + 1e309", "1e-5 + 1e16 + 0.1 + 1e309"),
        ("f(\n  a,\n  k = 1,\n)", "f(a, k=1)"),
        ("- -x", "--x"),
        ("-(not x)", "-(not x)"),
        ("(a, b), c", "((a, b), c)"),
    ];
    for (src, want) in cases {
        let expr = parse(src).unwrap();
        let shown = expr.to_string();
        assert_eq!(shown, want, "{src}");
        assert_eq!(sexpr_of(&shown), sexpr_of(src), "{src} -> {shown}");
    }
}

#[test]
fn display_of_hand_built_trees_with_negative_literals_is_valid_source() {
    let neg = e(ExprKind::Int(-5), 0, 0);
    let attr = e(
        ExprKind::Attribute {
            value: b(neg.clone()),
            attr: "real".to_owned(),
            attr_span: Span::default(),
        },
        0,
        0,
    );
    assert_eq!(attr.to_string(), "(-5).real");
    let pow = e(
        ExprKind::Binary {
            left: b(e(ExprKind::Float(-1.5), 0, 0)),
            ops: vec![BinaryStep {
                op: BinaryOp::Pow,
                right: neg,
                span: Span::default(),
            }],
        },
        0,
        0,
    );
    assert_eq!(pow.to_string(), "(-1.5) ** -5");
    assert_eq!(
        e(ExprKind::Float(f64::NAN), 0, 0).to_string(),
        "float(\"nan\")"
    );
}
