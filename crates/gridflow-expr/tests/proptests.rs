//! Property tests: no input makes the parser panic, spans stay sane, Display round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

mod common;

use common::sexpr;
use gridflow_expr::{
    BinaryOp, BinaryStep, BoolOpKind, CompareOp, Expr, ExprKind, Keyword, Span, UnaryOp,
    is_keyword, parse, render_error,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// Every node's span lies inside its parent's and on char boundaries of `src`.
fn check_spans(src: &str, e: &Expr, outer: Span) {
    let s = e.span;
    assert!(s.start <= s.end && s.end <= src.len(), "{s:?} in {src:?}");
    assert!(src.is_char_boundary(s.start) && src.is_char_boundary(s.end));
    assert!(
        outer.start <= s.start && s.end <= outer.end,
        "{s:?} outside {outer:?}"
    );
    let mut children: Vec<&Expr> = Vec::new();
    match &e.kind {
        ExprKind::List(items) | ExprKind::Tuple(items) => children.extend(items),
        ExprKind::Attribute {
            value, attr_span, ..
        } => {
            children.push(value);
            assert!(s.start <= attr_span.start && attr_span.end <= s.end);
        }
        ExprKind::Subscript { value, index } => children.extend([&**value, &**index]),
        ExprKind::Slice { start, stop, step } => {
            children.extend([start, stop, step].into_iter().flatten().map(|b| &**b));
        }
        ExprKind::Call { func, args, kwargs } => {
            children.push(func);
            children.extend(args);
            for k in kwargs {
                assert!(s.start <= k.name_span.start && k.name_span.end <= s.end);
                children.push(&k.value);
            }
        }
        ExprKind::Unary { operand, .. } => children.push(operand),
        ExprKind::Binary { left, ops } => {
            children.push(left);
            for step in ops {
                assert!(s.start <= step.span.start && step.span.end <= s.end);
                assert!(step.right.span.end <= step.span.end);
                children.push(&step.right);
            }
        }
        ExprKind::Compare { left, ops } => {
            children.push(left);
            children.extend(ops.iter().map(|(_, e)| e));
        }
        ExprKind::BoolOp { values, .. } => children.extend(values),
        ExprKind::IfElse { body, test, orelse } => {
            children.extend([&**body, &**test, &**orelse]);
        }
        _ => {}
    }
    for child in children {
        check_spans(src, child, s);
    }
}

/// Whatever `src` is: an error must point inside it and render; a tree must have sane
/// spans and print to source that parses back to the same tree.
fn check(src: &str) {
    match parse(src) {
        Err(err) => {
            let s = err.span;
            assert!(
                s.start <= s.end && s.end <= src.len(),
                "{err:?} for {src:?}"
            );
            assert!(src.is_char_boundary(s.start) && src.is_char_boundary(s.end));
            assert!(!err.message.is_empty());
            let rendered = err.render(src);
            assert!(rendered.starts_with("error at ") && rendered.ends_with('^'));
        }
        Ok(e) => {
            check_spans(src, &e, Span::new(0, src.len()));
            let shown = e.to_string();
            let again = parse(&shown)
                .unwrap_or_else(|err| panic!("{src:?} -> {shown:?}:\n{}", err.render(&shown)));
            assert_eq!(sexpr(&again), sexpr(&e), "{src:?} -> {shown:?}");
        }
    }
}

const TOKENS: &[&str] = &[
    "a", "ds", "tas", "é", "_x", "名", "not", "and", "or", "in", "is", "if", "else", "lambda",
    "for", "True", "None", "import", "0", "1", "2.5", ".5", "1e3", "0x1f", "1_0", "7j", "'a'",
    "\"b\"", "r'\\n'", "'\\x41'", "'''t'''", "f'x'", "b'y'", "'", "\"", "(", ")", "[", "]", "{",
    "}", ",", ":", ".", "+", "-", "*", "**", "/", "//", "%", "@", "~", "&", "|", "^", "<<", ">>",
    "<", "<=", ">", ">=", "==", "!=", "=", ":=", "+=", ";", "...", "\n", "#", "\\", "\\\n", "$",
    "!", "\t", "\r\n", "\u{a0}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_unicode_never_panics(src in "\\PC{0,40}") {
        check(&src);
    }

    #[test]
    fn arbitrary_chars_including_controls_never_panic(chars in vec(any::<char>(), 0..30)) {
        check(&chars.into_iter().collect::<String>());
    }

    #[test]
    fn ascii_soup_never_panics(src in "[ -~\\n\\t]{0,60}") {
        check(&src);
    }

    #[test]
    fn token_soup_never_panics(tokens in vec(select(TOKENS), 0..24), glue in any::<bool>()) {
        check(&tokens.join(if glue { "" } else { " " }));
    }

    #[test]
    fn render_error_never_panics(src in "\\PC{0,20}", start in 0usize..30, end in 0usize..30) {
        let out = render_error(&src, Span::new(start, end), "m");
        prop_assert!(out.starts_with("error at "));
    }

    #[test]
    fn display_of_any_tree_parses_back_to_it(e in expr()) {
        let shown = e.to_string();
        let again = match parse(&shown) {
            Ok(again) => again,
            Err(err) => panic!("{e:?} -> {shown:?}:\n{}", err.render(&shown)),
        };
        prop_assert_eq!(sexpr(&again), sexpr(&e), "{}", shown);
        check(&shown);
    }

    #[test]
    fn valid_source_with_one_edit_never_panics(
        e in expr(),
        at in any::<proptest::sample::Index>(),
        insert in proptest::option::of(select(TOKENS)),
    ) {
        let mut src = e.to_string();
        let mut cut = at.index(src.len() + 1);
        while !src.is_char_boundary(cut) {
            cut -= 1;
        }
        match insert {
            Some(token) => src.insert_str(cut, token),
            None => {
                if let Some(c) = src[cut..].chars().next() {
                    src.replace_range(cut..cut + c.len_utf8(), "");
                }
            }
        }
        check(&src);
    }
}

fn at(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::default())
}

fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z_é][a-zA-Z0-9_é]{0,5}".prop_filter("keywords are not names", |s| !is_keyword(s))
}

fn leaf() -> BoxedStrategy<Expr> {
    prop_oneof![
        ident().prop_map(ExprKind::Name),
        (0..=i64::MAX).prop_map(ExprKind::Int),
        any::<f64>()
            .prop_filter("NaN has no literal", |f| !f.is_nan())
            .prop_map(|f| ExprKind::Float(f.abs())),
        (0.0f64..1e4).prop_map(ExprKind::Float),
        vec(any::<char>(), 0..8).prop_map(|c| ExprKind::Str(c.into_iter().collect())),
        any::<bool>().prop_map(ExprKind::Bool),
        Just(ExprKind::None),
    ]
    .prop_map(at)
    .boxed()
}

fn slice(inner: BoxedStrategy<Expr>) -> BoxedStrategy<Expr> {
    let part = proptest::option::of(inner.prop_map(Box::new));
    (part.clone(), part.clone(), part)
        .prop_map(|(start, stop, step)| at(ExprKind::Slice { start, stop, step }))
        .boxed()
}

fn expr() -> impl Strategy<Value = Expr> {
    use BinaryOp::*;
    use CompareOp::*;
    let unary = select(vec![
        UnaryOp::Neg,
        UnaryOp::Pos,
        UnaryOp::Invert,
        UnaryOp::Not,
    ]);
    let binary = select(vec![
        Add, Sub, Mul, Div, FloorDiv, Mod, Pow, LShift, RShift, BitAnd, BitOr, BitXor,
    ]);
    let compare = select(vec![Eq, NotEq, Lt, Le, Gt, Ge, In, NotIn, Is, IsNot]);
    let boolop = select(vec![BoolOpKind::And, BoolOpKind::Or]);
    leaf().prop_recursive(5, 40, 4, move |inner| {
        let item = prop_oneof![inner.clone(), slice(inner.clone())];
        let index = prop_oneof![
            item.clone(),
            vec(item, 0..3).prop_map(|items| at(ExprKind::Tuple(items))),
        ];
        let b = |e: Expr| Box::new(e);
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|v| at(ExprKind::List(v))),
            vec(inner.clone(), 0..3).prop_map(|v| at(ExprKind::Tuple(v))),
            (inner.clone(), ident()).prop_map(move |(v, attr)| at(ExprKind::Attribute {
                value: b(v),
                attr,
                attr_span: Span::default(),
            })),
            (inner.clone(), index).prop_map(move |(v, i)| at(ExprKind::Subscript {
                value: b(v),
                index: b(i),
            })),
            (
                inner.clone(),
                vec(inner.clone(), 0..3),
                vec((ident(), inner.clone()), 0..3)
            )
                .prop_map(move |(f, args, kws)| {
                    let mut kwargs: Vec<Keyword> = Vec::new();
                    for (name, value) in kws {
                        if kwargs.iter().all(|k| k.name != name) {
                            kwargs.push(Keyword {
                                name,
                                name_span: Span::default(),
                                value,
                            });
                        }
                    }
                    at(ExprKind::Call {
                        func: b(f),
                        args,
                        kwargs,
                    })
                }),
            (unary.clone(), inner.clone())
                .prop_map(move |(op, e)| at(ExprKind::Unary { op, operand: b(e) })),
            (binary.clone(), inner.clone(), vec(inner.clone(), 1..4)).prop_map(
                move |(op, l, rights)| {
                    // One level per chain, as the parser builds them; `**` one step each.
                    let rights = if op == Pow {
                        rights.into_iter().take(1).collect()
                    } else {
                        rights
                    };
                    at(ExprKind::Binary {
                        left: b(l),
                        ops: rights
                            .into_iter()
                            .map(|right| BinaryStep {
                                op,
                                right,
                                span: Span::default(),
                            })
                            .collect(),
                    })
                }
            ),
            (inner.clone(), vec((compare.clone(), inner.clone()), 1..3))
                .prop_map(move |(l, ops)| at(ExprKind::Compare { left: b(l), ops })),
            (boolop.clone(), vec(inner.clone(), 2..4))
                .prop_map(|(op, values)| at(ExprKind::BoolOp { op, values })),
            (inner.clone(), inner.clone(), inner).prop_map(move |(body, test, orelse)| {
                at(ExprKind::IfElse {
                    body: b(body),
                    test: b(test),
                    orelse: b(orelse),
                })
            }),
        ]
    })
}
