//! Printing an expression back as source with as few parentheses as Python needs.

use crate::ast::{BinaryOp, BoolOpKind, CompareOp, Expr, ExprKind, UnaryOp};
use std::fmt::{self, Display, Formatter, Write};

use crate::prec::{
    AND, ARITH, ATOM, BIT_AND, BIT_OR, BIT_XOR, CMP, FACTOR, NOT, OR, POWER, SHIFT, TERM, TEST,
};

fn binary_prec(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::BitOr => BIT_OR,
        BinaryOp::BitXor => BIT_XOR,
        BinaryOp::BitAnd => BIT_AND,
        BinaryOp::LShift | BinaryOp::RShift => SHIFT,
        BinaryOp::Add | BinaryOp::Sub => ARITH,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::FloorDiv | BinaryOp::Mod => TERM,
        BinaryOp::Pow => POWER,
    }
}

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::IfElse { .. } | ExprKind::Slice { .. } => TEST,
        ExprKind::BoolOp {
            op: BoolOpKind::Or, ..
        } => OR,
        ExprKind::BoolOp {
            op: BoolOpKind::And,
            ..
        } => AND,
        ExprKind::Unary {
            op: UnaryOp::Not, ..
        } => NOT,
        ExprKind::Unary { .. } => FACTOR,
        ExprKind::Compare { .. } => CMP,
        ExprKind::Binary { ops, .. } => ops.first().map_or(ATOM, |s| binary_prec(s.op)),
        // Only hand-built trees hold negative literals; they print with a unary minus.
        ExprKind::Int(i) if *i < 0 => FACTOR,
        ExprKind::Float(f) if f.is_sign_negative() && !f.is_nan() => FACTOR,
        _ => ATOM,
    }
}

/// Canonical Python source with minimal parentheses; parsing it gives back the same tree
/// (spans aside; a hand-built left-nested `(a + b) + c` comes back as one flat chain, the
/// same expression). Tuples are always parenthesized, except directly inside a subscript.
///
/// ```
/// let e = gridflow_expr::parse("((ds.tas - 273.15)) * (2 ** (-1))")?;
/// assert_eq!(e.to_string(), "(ds.tas - 273.15) * 2 ** -1");
/// # Ok::<(), gridflow_expr::ParseError>(())
/// ```
impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_expr(f, self, TEST)
    }
}

fn write_expr(f: &mut Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if prec(e) < min {
        f.write_char('(')?;
        write_bare(f, e)?;
        f.write_char(')')
    } else {
        write_bare(f, e)
    }
}

fn write_list(f: &mut Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_expr(f, item, TEST)?;
    }
    Ok(())
}

fn write_bare(f: &mut Formatter<'_>, e: &Expr) -> fmt::Result {
    match &e.kind {
        ExprKind::Name(name) => f.write_str(name),
        ExprKind::Int(i) => write!(f, "{i}"),
        ExprKind::Float(x) => write_float(f, *x),
        ExprKind::Str(s) => write_str(f, s),
        ExprKind::Bool(true) => f.write_str("True"),
        ExprKind::Bool(false) => f.write_str("False"),
        ExprKind::None => f.write_str("None"),
        ExprKind::List(items) => {
            f.write_char('[')?;
            write_list(f, items)?;
            f.write_char(']')
        }
        ExprKind::Tuple(items) => {
            f.write_char('(')?;
            write_list(f, items)?;
            if items.len() == 1 {
                f.write_char(',')?;
            }
            f.write_char(')')
        }
        ExprKind::Attribute { value, attr, .. } => {
            if matches!(value.kind, ExprKind::Int(_)) {
                // `1.real` would lex as the float `1.` followed by a name.
                write!(f, "({value})")?;
            } else {
                write_expr(f, value, ATOM)?;
            }
            write!(f, ".{attr}")
        }
        ExprKind::Subscript { value, index } => {
            write_expr(f, value, ATOM)?;
            f.write_char('[')?;
            match &index.kind {
                ExprKind::Tuple(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write_index_item(f, item)?;
                    }
                    if items.len() == 1 {
                        f.write_char(',')?;
                    }
                }
                _ => write_index_item(f, index)?,
            }
            f.write_char(']')
        }
        ExprKind::Slice { start, stop, step } => {
            if let Some(start) = start {
                write_expr(f, start, TEST)?;
            }
            f.write_char(':')?;
            if let Some(stop) = stop {
                write_expr(f, stop, TEST)?;
            }
            if let Some(step) = step {
                f.write_char(':')?;
                write_expr(f, step, TEST)?;
            }
            Ok(())
        }
        ExprKind::Call { func, args, kwargs } => {
            write_expr(f, func, ATOM)?;
            f.write_char('(')?;
            write_list(f, args)?;
            for (i, kw) in kwargs.iter().enumerate() {
                if i > 0 || !args.is_empty() {
                    f.write_str(", ")?;
                }
                write!(f, "{}=", kw.name)?;
                write_expr(f, &kw.value, TEST)?;
            }
            f.write_char(')')
        }
        ExprKind::Unary { op, operand } => {
            if *op == UnaryOp::Not {
                f.write_str("not ")?;
                write_expr(f, operand, NOT)
            } else {
                f.write_str(op.symbol())?;
                write_expr(f, operand, FACTOR)
            }
        }
        ExprKind::Binary { left, ops } => {
            let pow = ops.first().is_some_and(|s| s.op == BinaryOp::Pow);
            // `**` binds to the right, and its left side must be a primary: `(-2) ** 2`.
            let (lmin, rmin) = match ops.first() {
                Some(_) if pow => (ATOM, FACTOR),
                Some(s) => (binary_prec(s.op), binary_prec(s.op).saturating_add(1)),
                None => (TEST, TEST),
            };
            write_expr(f, left, lmin)?;
            for step in ops {
                write!(f, " {} ", step.op.symbol())?;
                write_expr(f, &step.right, rmin)?;
            }
            Ok(())
        }
        ExprKind::Compare { left, ops } => {
            write_expr(f, left, BIT_OR)?;
            for (op, right) in ops {
                write!(f, " {} ", op.symbol())?;
                write_expr(f, right, BIT_OR)?;
            }
            Ok(())
        }
        ExprKind::BoolOp { op, values } => {
            // A nested chain of the same operator keeps its parentheses.
            let min = if *op == BoolOpKind::Or { AND } else { NOT };
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    write!(f, " {} ", op.symbol())?;
                }
                write_expr(f, value, min)?;
            }
            Ok(())
        }
        ExprKind::IfElse { body, test, orelse } => {
            write_expr(f, body, OR)?;
            f.write_str(" if ")?;
            write_expr(f, test, OR)?;
            f.write_str(" else ")?;
            write_expr(f, orelse, TEST)
        }
    }
}

fn write_index_item(f: &mut Formatter<'_>, e: &Expr) -> fmt::Result {
    // A slice is printed bare here; anywhere else it has no source form.
    write_expr(f, e, TEST)
}

fn write_float(f: &mut Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("float(\"nan\")")
    } else if x.is_infinite() {
        // The smallest literal that overflows to infinity, as Python's ast.unparse does.
        f.write_str(if x > 0.0 { "1e309" } else { "-1e309" })
    } else {
        // Debug is the shortest round-tripping form and always has a '.' or an exponent.
        write!(f, "{x:?}")
    }
}

fn write_str(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            // Control characters are all below U+0100.
            c if c.is_control() => write!(f, "\\x{:02x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl Display for UnaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for BoolOpKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}
