//! The expression language of `gridflow eval`: a parser for a subset of Python expressions.
//!
//! [`parse`] turns source text into an [`Expr`] tree whose nodes carry byte [`Span`]s, with
//! Python 3's grammar, precedence and associativity for what is supported:
//!
//! - names, attribute access `ds.tas`, calls `f(a, b=1)`, subscripts `x["tas"]`, `x[0]`,
//!   slices `x[1:3]`, `x[::2]` and tuple indexes `x[0, :, ::2]`;
//! - literals: integers (`1_000`, `0x10`, `0o7`, `0b1`), floats (`.5`, `5.`, `1e-3`),
//!   strings (single, double and triple quotes, escapes, raw `r"..."`, adjacent literals
//!   joined), `True`, `False`, `None`, lists `[a, b]` and tuples `(a, b)`, `(a,)`, `()`;
//! - operators `not`/`-`/`+`/`~`, `**`, `* / // %`, `+ -`, `<< >>`, `&`, `^`, `|`,
//!   comparisons (chained as in Python), `and`, `or` and `a if c else b`; runs of one
//!   left-associative level (`a + b - c + ...`) are one flat node of any length.
//!
//! No evaluation happens here; a later stage binds names to datasets. Everything else Python
//! allows (lambdas, comprehensions, f-strings, `*args`, `:=`, dicts, `@`, statements...) is
//! rejected with a [`ParseError`] that says so and points at it; see [`ParseError::render`].
//!
//! ```
//! use gridflow_expr::{parse, BinaryOp, ExprKind};
//!
//! let e = parse("(ds.tas - 273.15).where(ds.tas > 280)")?;
//! let ExprKind::Call { func, args, .. } = &e.kind else { panic!("a call") };
//! assert_eq!(func.to_string(), "(ds.tas - 273.15).where");
//! assert_eq!(args[0].to_string(), "ds.tas > 280");
//!
//! let e = parse("-2 ** 2")?; // -(2 ** 2), as in Python
//! let ExprKind::Unary { operand, .. } = &e.kind else { panic!("a unary minus") };
//! let ExprKind::Binary { ops, .. } = &operand.kind else { panic!("a power") };
//! assert_eq!(ops[0].op, BinaryOp::Pow);
//!
//! // A run of one level is one flat node, however long.
//! let e = parse("1 + 2 - 3 + 4")?;
//! let ExprKind::Binary { ops, .. } = &e.kind else { panic!("a sum") };
//! assert_eq!(ops.len(), 3);
//! # Ok::<(), gridflow_expr::ParseError>(())
//! ```

// Input reaches every line of this crate: no unchecked indexing, slicing or arithmetic.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::arithmetic_side_effects
    )
)]

mod ast;
mod display;
mod error;
mod lexer;
mod parser;
mod prec;
mod span;

pub use ast::{
    BinaryOp, BinaryStep, BoolOpKind, CompareOp, Expr, ExprKind, Keyword, MAX_DEPTH, UnaryOp,
};
pub use error::{ParseError, Result, render_error};
pub use lexer::is_keyword;
pub use parser::parse;
pub use span::Span;
