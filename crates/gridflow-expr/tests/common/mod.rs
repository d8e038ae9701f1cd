//! The neutral s-expression form shared with tests/fixtures/generate.py.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
// Test helpers fail loudly on purpose.
#![allow(clippy::panic)]

use gridflow_expr::{BoolOpKind, CompareOp, Expr, ExprKind};

/// The s-expression of `e`, spans left out; the same text generate.py writes for CPython.
pub fn sexpr(e: &Expr) -> String {
    let mut spans = Vec::new();
    sx(e, &mut spans)
}

/// The spans of `e`'s nodes in the pre-order generate.py lists them.
pub fn spans(e: &Expr) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    sx(e, &mut spans);
    spans
}

/// Parses `src` and returns the s-expression, panicking with the rendered error.
pub fn sexpr_of(src: &str) -> String {
    match gridflow_expr::parse(src) {
        Ok(e) => sexpr(&e),
        Err(err) => panic!("{src:?} failed to parse:\n{}", err.render(src)),
    }
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn opt(e: &Option<Box<Expr>>, spans: &mut Vec<(usize, usize)>) -> String {
    e.as_ref().map_or_else(|| "_".to_owned(), |e| sx(e, spans))
}

fn sx(e: &Expr, spans: &mut Vec<(usize, usize)>) -> String {
    spans.push((e.span.start, e.span.end));
    match &e.kind {
        ExprKind::Name(n) => format!("(name {})", q(n)),
        ExprKind::Int(i) => format!("(int {i})"),
        ExprKind::Float(f) => format!("(float {})", python_float_repr(*f)),
        ExprKind::Str(s) => format!("(str {})", q(s)),
        ExprKind::Bool(true) => "True".to_owned(),
        ExprKind::Bool(false) => "False".to_owned(),
        ExprKind::None => "None".to_owned(),
        ExprKind::List(items) | ExprKind::Tuple(items) => {
            let head = if matches!(e.kind, ExprKind::List(_)) {
                "list"
            } else {
                "tuple"
            };
            let mut parts = vec![head.to_owned()];
            parts.extend(items.iter().map(|i| sx(i, spans)));
            format!("({})", parts.join(" "))
        }
        ExprKind::Attribute { value, attr, .. } => {
            format!("(attr {} {})", sx(value, spans), q(attr))
        }
        ExprKind::Subscript { value, index } => {
            let value = sx(value, spans);
            format!("(sub {value} {})", sx(index, spans))
        }
        ExprKind::Slice { start, stop, step } => {
            let start = opt(start, spans);
            let stop = opt(stop, spans);
            format!("(slice {start} {stop} {})", opt(step, spans))
        }
        ExprKind::Call { func, args, kwargs } => {
            let mut parts = vec!["call".to_owned(), sx(func, spans)];
            parts.extend(args.iter().map(|a| sx(a, spans)));
            for k in kwargs {
                parts.push(format!("(kw {} {})", q(&k.name), sx(&k.value, spans)));
            }
            format!("({})", parts.join(" "))
        }
        ExprKind::Unary { op, operand } => format!("(unary {op} {})", sx(operand, spans)),
        ExprKind::Binary { left, ops } => {
            // CPython nests a chain to the left: the outer BinOp nodes come first.
            if let Some((_, inner)) = ops.split_last() {
                spans.extend(inner.iter().rev().map(|s| (s.span.start, s.span.end)));
            }
            let mut acc = sx(left, spans);
            for step in ops {
                acc = format!("(binary {} {acc} {})", step.op, sx(&step.right, spans));
            }
            acc
        }
        ExprKind::Compare { left, ops } => {
            let mut parts = vec!["compare".to_owned(), sx(left, spans)];
            for (op, right) in ops {
                let op = match op {
                    CompareOp::NotIn => "not-in",
                    CompareOp::IsNot => "is-not",
                    other => other.symbol(),
                };
                parts.push(op.to_owned());
                parts.push(sx(right, spans));
            }
            format!("({})", parts.join(" "))
        }
        ExprKind::BoolOp { op, values } => {
            let head = match op {
                BoolOpKind::And => "and",
                BoolOpKind::Or => "or",
            };
            let mut parts = vec![head.to_owned()];
            parts.extend(values.iter().map(|v| sx(v, spans)));
            format!("({})", parts.join(" "))
        }
        ExprKind::IfElse { body, test, orelse } => {
            let body = sx(body, spans);
            let test = sx(test, spans);
            format!("(if {body} {test} {})", sx(orelse, spans))
        }
    }
}

/// `repr()` of a Python float: the shortest round-trip digits, positional when the decimal
/// exponent is in -4..16, else `d.ddde+XX`.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    // "{:e}" gives the shortest round-trip digits: "1.5e-5".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1; // value = 0.DIGITS * 10^decpt
    if -4 < decpt && decpt <= 16 {
        let n = digits.len() as i32;
        let body = if decpt <= 0 {
            format!("0.{}{digits}", "0".repeat((-decpt) as usize))
        } else if decpt >= n {
            format!("{digits}{}.0", "0".repeat((decpt - n) as usize))
        } else {
            let (int, frac) = digits.split_at(decpt as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}
