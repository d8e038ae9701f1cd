//! The syntax tree.
//!
//! Spans follow Python's `ast` module: a node built from several tokens spans from its
//! first token to its last, including any brackets it starts or ends with (`(a + b).c`
//! starts at the `(`), while a parenthesized expression on its own keeps the span of what
//! is inside the parentheses.

use crate::Span;

/// Deepest syntax tree [`parse`](crate::parse) returns, counted in nodes from the root to a
/// leaf; deeper input is rejected, so recursive walkers over a parsed tree are stack-safe.
pub const MAX_DEPTH: usize = 100;

/// An expression node and the source it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Where it is in the source.
    pub span: Span,
}

/// The kinds of expression nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A name such as `ds` or `np`.
    Name(String),
    /// An integer literal (decimal, `0x`, `0o` or `0b`); literals beyond `i64` are rejected.
    /// Parsing never yields a negative value: `-1` is a [`UnaryOp::Neg`] of `1`.
    Int(i64),
    /// A float literal such as `1.5`, `.5`, `5.` or `1e-3` (`1e999` is infinity).
    Float(f64),
    /// A string literal, escapes decoded; adjacent literals are joined into one.
    Str(String),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A list display `[a, b]`.
    List(Vec<Expr>),
    /// A tuple `(a, b)`, `(a,)`, `()`, `a, b` at the top level, or `x[a, b]`'s index.
    Tuple(Vec<Expr>),
    /// Attribute access `value.attr`.
    Attribute {
        /// The object.
        value: Box<Expr>,
        /// The attribute name.
        attr: String,
        /// Where the attribute name is.
        attr_span: Span,
    },
    /// Subscription `value[index]`; `x[a, b]` has a [`ExprKind::Tuple`] index.
    Subscript {
        /// The subscripted object.
        value: Box<Expr>,
        /// The index: an expression, a [`ExprKind::Slice`], or a tuple of these.
        index: Box<Expr>,
    },
    /// A slice `start:stop:step`, any part optional. Only appears as a subscript's index or
    /// as an element of a subscript's tuple index.
    Slice {
        /// The part before the first `:`.
        start: Option<Box<Expr>>,
        /// The part after the first `:`.
        stop: Option<Box<Expr>>,
        /// The part after the second `:`.
        step: Option<Box<Expr>>,
    },
    /// A call `func(args..., name=value...)`; keyword arguments always follow positional ones.
    Call {
        /// The called object.
        func: Box<Expr>,
        /// Positional arguments, in order.
        args: Vec<Expr>,
        /// Keyword arguments, in order, names distinct.
        kwargs: Vec<Keyword>,
    },
    /// A prefix operator: `-x`, `+x`, `~x`, `not x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Its operand.
        operand: Box<Expr>,
    },
    /// Binary operators such as `a + b` or `a ** b`. A run of left-associative operators of
    /// one precedence level is one flat node: `a - b + c` is `left = a, ops = [(-, b), (+, c)]`
    /// and means `(a - b) + c`, so a sum of 100,000 terms is as shallow as one of two. `**`
    /// binds to the right and has one step per node: `a ** b ** c` is `a ** (b ** c)`.
    Binary {
        /// The first operand.
        left: Box<Expr>,
        /// Each operator with the operand on its right, applied left to right; never empty,
        /// and all of one precedence level in trees from [`parse`](crate::parse).
        ops: Vec<BinaryStep>,
    },
    /// A comparison chain: `a < b <= c` is `left = a, ops = [(<, b), (<=, c)]` and means
    /// `a < b and b <= c` with `b` evaluated once, as in Python.
    Compare {
        /// The first operand.
        left: Box<Expr>,
        /// Each operator with the operand on its right; never empty.
        ops: Vec<(CompareOp, Expr)>,
    },
    /// `a and b and c` or `a or b or c` (at least two values; mixed chains nest).
    BoolOp {
        /// `and` or `or`.
        op: BoolOpKind,
        /// The operands, in order.
        values: Vec<Expr>,
    },
    /// The conditional `body if test else orelse`.
    IfElse {
        /// Value when `test` is true.
        body: Box<Expr>,
        /// The condition.
        test: Box<Expr>,
        /// Value when `test` is false.
        orelse: Box<Expr>,
    },
}

/// One `op right` step of an [`ExprKind::Binary`] chain.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryStep {
    /// The operator.
    pub op: BinaryOp,
    /// The operand on its right.
    pub right: Expr,
    /// The chain from its first operand up to and including this step: where Python's `ast`
    /// puts the nested `BinOp` this step ends (errors of this step point here).
    pub span: Span,
}

/// A keyword argument `name=value` of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyword {
    /// The parameter name.
    pub name: String,
    /// Where the name is.
    pub name_span: Span,
    /// The argument.
    pub value: Expr,
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x`
    Pos,
    /// `~x` (bitwise inversion; on boolean arrays, logical not)
    Invert,
    /// `not x`
    Not,
}

/// Binary operators (`@` is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `//`
    FloorDiv,
    /// `%`
    Mod,
    /// `**` (right-associative)
    Pow,
    /// `<<`
    LShift,
    /// `>>`
    RShift,
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `is`
    Is,
    /// `is not`
    IsNot,
}

/// The two short-circuit boolean operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoolOpKind {
    /// `and`
    And,
    /// `or`
    Or,
}

impl UnaryOp {
    /// The operator as written in source (`"not"` for [`UnaryOp::Not`]).
    pub const fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Pos => "+",
            UnaryOp::Invert => "~",
            UnaryOp::Not => "not",
        }
    }
}

impl BinaryOp {
    /// The operator as written in source.
    pub const fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::FloorDiv => "//",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "**",
            BinaryOp::LShift => "<<",
            BinaryOp::RShift => ">>",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
        }
    }
}

impl CompareOp {
    /// The operator as written in source (`"not in"`, `"is not"` with one space).
    pub const fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::NotEq => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::In => "in",
            CompareOp::NotIn => "not in",
            CompareOp::Is => "is",
            CompareOp::IsNot => "is not",
        }
    }
}

impl BoolOpKind {
    /// The operator as written in source.
    pub const fn symbol(self) -> &'static str {
        match self {
            BoolOpKind::And => "and",
            BoolOpKind::Or => "or",
        }
    }
}

impl Expr {
    /// A node of `kind` at `span`.
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Expr { kind, span }
    }

    /// The dotted path of a chain of attribute accesses on a name, e.g. `"np.random.random"`
    /// for `np.random.random`; `None` for anything else (calls, subscripts, literals...).
    ///
    /// ```
    /// use gridflow_expr::parse;
    ///
    /// assert_eq!(parse("np.random.random")?.dotted_name().as_deref(), Some("np.random.random"));
    /// assert_eq!(parse("ds")?.dotted_name().as_deref(), Some("ds"));
    /// assert_eq!(parse("ds.tas.mean().x")?.dotted_name(), None);
    /// # Ok::<(), gridflow_expr::ParseError>(())
    /// ```
    pub fn dotted_name(&self) -> Option<String> {
        let mut attrs = Vec::new();
        let mut node = self;
        loop {
            match &node.kind {
                ExprKind::Attribute { value, attr, .. } => {
                    attrs.push(attr.as_str());
                    node = value;
                }
                ExprKind::Name(name) => {
                    attrs.push(name.as_str());
                    attrs.reverse();
                    return Some(attrs.join("."));
                }
                _ => return None,
            }
        }
    }
}
