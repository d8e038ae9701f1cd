//! Recursive-descent parser following CPython's grammar, with precedence climbing for the
//! operators from `or` to `*`.

use crate::ast::{
    BinaryOp, BinaryStep, BoolOpKind, CompareOp, Expr, ExprKind, Keyword, MAX_DEPTH, UnaryOp,
};
use crate::lexer::{Kw, Lexer, Punct, Tok, Token};
use crate::prec::{AND, ARITH, BIT_AND, BIT_OR, BIT_XOR, CMP, NOT, OR, SHIFT, TERM};
use crate::{ParseError, Result, Span};

/// Parses one Python expression into a syntax tree.
///
/// Accepts what Python's `eval()` accepts for the supported subset (see the crate docs),
/// including leading blanks, comments, line breaks inside brackets, and a bare tuple
/// `a, b` at the top level. Never panics.
///
/// ```
/// use gridflow_expr::{parse, ExprKind};
///
/// let e = parse(r#"ds["tas"].mean("time")"#)?;
/// let ExprKind::Call { func, args, kwargs } = &e.kind else { panic!("a call") };
/// assert_eq!(func.to_string(), r#"ds["tas"].mean"#);
/// assert_eq!(args.len(), 1);
/// assert!(kwargs.is_empty());
///
/// let err = parse("ds.tas.sel(lat=1, lat=2)").unwrap_err();
/// assert_eq!(err.message, "keyword argument 'lat' repeated");
/// assert_eq!(err.span.start, 18);
/// # Ok::<(), gridflow_expr::ParseError>(())
/// ```
pub fn parse(src: &str) -> Result<Expr> {
    let mut lexer = Lexer::new(src);
    let ahead = [lexer.next(), lexer.next()];
    let mut parser = Parser {
        src,
        lexer,
        ahead,
        consumed: false,
        prev_end: 0,
        depth: 0,
        open: Vec::new(),
    };
    parser.parse_all().map(|node| node.e)
}

/// A parsed node and the height of its tree (a leaf is 1), checked against [`MAX_DEPTH`].
struct Node {
    e: Expr,
    h: usize,
}

/// Arguments of a call being parsed, and their tallest tree.
struct CallArgs {
    h: usize,
    args: Vec<Expr>,
    kwargs: Vec<Keyword>,
}

/// A bracket the parser is inside, for "never closed" and mismatch errors.
struct Open {
    punct: Punct,
    span: Span,
    subscript: bool,
}

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    /// The current token and the one after it (two are enough for `not in`, `name=`).
    ahead: [Token; 2],
    /// Whether any token has been consumed (to tell empty input apart).
    consumed: bool,
    /// End of the last consumed token: where the node being built ends.
    prev_end: usize,
    /// Recursion depth, bounded so hostile input cannot overflow the stack.
    depth: usize,
    open: Vec<Open>,
}

impl Parser<'_> {
    // ----- token access -----

    /// The current token (`n = 0`) or the next one (`n = 1`).
    fn tok(&self, n: usize) -> &Token {
        let [first, second] = &self.ahead;
        if n == 0 { first } else { second }
    }

    fn at(&self, p: Punct) -> bool {
        self.tok(0).tok == Tok::Punct(p)
    }

    fn at_kw(&self, k: Kw) -> bool {
        self.tok(0).tok == Tok::Kw(k)
    }

    fn start(&self) -> usize {
        self.tok(0).span.start
    }

    fn bump(&mut self) -> Span {
        let span = self.ahead[0].span;
        let next = self.lexer.next();
        self.ahead.rotate_left(1);
        self.ahead[1] = next;
        self.prev_end = span.end;
        self.consumed = true;
        span
    }

    fn open(&mut self, punct: Punct, subscript: bool) {
        let span = self.bump();
        self.open.push(Open {
            punct,
            span,
            subscript,
        });
    }

    /// Consumes the closing bracket `close` of the innermost open bracket.
    fn close(&mut self, close: Punct, expected: &str) -> Result<()> {
        if !self.at(close) {
            return Err(self.unexpected(Some(expected)));
        }
        self.bump();
        self.open.pop();
        Ok(())
    }

    fn node(&self, kind: ExprKind, start: usize, child_height: usize) -> Result<Node> {
        let span = Span::new(start, self.prev_end);
        let h = child_height.saturating_add(1);
        if h > MAX_DEPTH {
            return Err(too_deep(span));
        }
        Ok(Node {
            e: Expr::new(kind, span),
            h,
        })
    }

    /// Counts one level of recursion; hostile input must not overflow the stack.
    fn enter(&mut self) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(too_deep(self.tok(0).span));
        }
        self.depth = self.depth.saturating_add(1);
        Ok(())
    }

    // ----- errors -----

    fn describe(&self, token: &Token) -> String {
        match &token.tok {
            Tok::Name(n) => format!("name '{n}'"),
            Tok::Kw(k) => format!("keyword '{}'", k.text()),
            Tok::Int(_) | Tok::Float(_) => {
                format!("number {}", token.span.text(self.src).unwrap_or("?"))
            }
            Tok::Str(_) => {
                let text = token.span.text(self.src).unwrap_or("");
                match text.char_indices().nth(24) {
                    Some((cut, _)) => format!("string {}...", text.get(..cut).unwrap_or(text)),
                    None => format!("string {text}"),
                }
            }
            Tok::Punct(p) => format!("'{}'", p.text()),
            Tok::Newline => "a line break".to_owned(),
            Tok::Eof => "end of input".to_owned(),
            Tok::Error(e) => e.message.clone(),
        }
    }

    /// Errors that depend only on the current token, whatever was expected.
    fn special_error(&self) -> Option<ParseError> {
        let token = self.tok(0);
        let span = token.span;
        let message = match &token.tok {
            Tok::Error(e) => return Some(e.clone()),
            Tok::Eof => {
                let open = self.open.last()?;
                return Some(ParseError::new(
                    format!("'{}' was never closed", open.punct.text()),
                    open.span,
                ));
            }
            Tok::Punct(p @ (Punct::RParen | Punct::RBracket | Punct::RBrace)) => {
                match self.open.last() {
                    None => format!("unmatched '{}'", p.text()),
                    Some(open) if closer(open.punct) != *p => format!(
                        "closing '{}' does not match opening '{}'",
                        p.text(),
                        open.punct.text()
                    ),
                    Some(_) => return None,
                }
            }
            Tok::Punct(Punct::Assign) => {
                "assignment is not an expression (use '==' to compare)".to_owned()
            }
            Tok::Punct(Punct::AugAssign("@=")) | Tok::Punct(Punct::At) => {
                "matrix multiplication ('@') is not supported".to_owned()
            }
            Tok::Punct(Punct::AugAssign(op)) => {
                format!("augmented assignment ('{op}') is not an expression")
            }
            Tok::Punct(Punct::Walrus) => {
                "assignment expressions (':=') are not supported".to_owned()
            }
            Tok::Punct(Punct::Semicolon) => "statements are not supported (found ';')".to_owned(),
            Tok::Punct(Punct::Ellipsis) => "the ellipsis ('...') is not supported".to_owned(),
            Tok::Punct(Punct::Star) => "starred expressions ('*x') are not supported".to_owned(),
            Tok::Punct(Punct::DoubleStar) => "'**' unpacking is not supported".to_owned(),
            Tok::Punct(Punct::LBrace) => {
                "dict and set displays ('{...}') are not supported".to_owned()
            }
            Tok::Kw(Kw::For | Kw::Async) => "comprehensions are not supported".to_owned(),
            Tok::Kw(Kw::Lambda) => "lambda expressions are not supported".to_owned(),
            Tok::Kw(k @ (Kw::Yield | Kw::Await)) => {
                format!("'{}' expressions are not supported", k.text())
            }
            Tok::Kw(k) if k.is_statement() => format!(
                "statements are not supported; expected an expression, found keyword '{}'",
                k.text()
            ),
            _ => return None,
        };
        Some(ParseError::new(message, span))
    }

    /// The error for the current token when `expected` (or, if `None`, the end) was due.
    fn unexpected(&self, expected: Option<&str>) -> ParseError {
        let token = self.tok(0);
        if token.tok == Tok::Punct(Punct::Colon) && !self.open.last().is_some_and(|o| o.subscript) {
            let message = if self.open.is_empty() {
                "unexpected ':' after the expression (slices are only allowed inside subscripts)"
            } else {
                "slices are only allowed directly inside subscripts"
            };
            return ParseError::new(message, token.span);
        }
        if let Some(err) = self.special_error() {
            return err;
        }
        let found = self.describe(token);
        let message = match expected {
            Some(expected) => format!("expected {expected}, found {found}"),
            None => format!("unexpected {found} after the expression"),
        };
        ParseError::new(with_newline_hint(message, &token.tok), token.span)
    }

    /// The error for the current token where an expression was due.
    fn expected_expression(&self) -> ParseError {
        let token = self.tok(0);
        match token.tok {
            Tok::Eof if !self.consumed => {
                return ParseError::new("empty input: expected an expression", token.span);
            }
            Tok::Kw(k @ (Kw::For | Kw::If)) if !self.consumed => {
                return ParseError::new(
                    format!(
                        "statements are not supported; expected an expression, \
                         found keyword '{}'",
                        k.text()
                    ),
                    token.span,
                );
            }
            _ => {}
        }
        if let Some(err) = self.special_error() {
            return err;
        }
        let message = format!("expected an expression, found {}", self.describe(token));
        ParseError::new(with_newline_hint(message, &token.tok), token.span)
    }

    // ----- grammar -----

    fn parse_all(&mut self) -> Result<Node> {
        let start = self.start();
        let first = self.expression()?;
        let node = if self.at(Punct::Comma) {
            // A bare tuple `a, b` is an expression at the top level, as in eval().
            let mut h = first.h;
            let mut items = vec![first.e];
            while self.at(Punct::Comma) {
                self.bump();
                if matches!(self.tok(0).tok, Tok::Eof | Tok::Newline) {
                    break;
                }
                let item = self.expression()?;
                h = h.max(item.h);
                items.push(item.e);
            }
            self.node(ExprKind::Tuple(items), start, h)?
        } else {
            first
        };
        let mut line_break = false;
        while self.tok(0).tok == Tok::Newline {
            self.bump();
            line_break = true;
        }
        if self.tok(0).tok == Tok::Eof {
            return Ok(node);
        }
        let mut err = self.unexpected(None);
        if line_break && !err.message.contains("line break") {
            err.message
                .push_str(" (line breaks are only allowed inside brackets)");
        }
        Err(err)
    }

    fn expression(&mut self) -> Result<Node> {
        self.enter()?;
        let result = self.conditional();
        self.depth = self.depth.saturating_sub(1);
        result
    }

    // The functions on the recursive path keep their bodies small and hand everything
    // else to helpers: debug builds give every local its own stack slot.
    fn conditional(&mut self) -> Result<Node> {
        let start = self.start();
        let body = self.operators(OR)?;
        if self.at_kw(Kw::If) {
            self.if_else(body, start)
        } else {
            Ok(body)
        }
    }

    fn if_else(&mut self, body: Node, start: usize) -> Result<Node> {
        self.bump();
        let test = self.operators(OR)?;
        if !self.at_kw(Kw::Else) {
            return Err(self.missing_else(start));
        }
        self.bump();
        let orelse = self.expression()?;
        let h = body.h.max(test.h).max(orelse.h);
        let kind = ExprKind::IfElse {
            body: Box::new(body.e),
            test: Box::new(test.e),
            orelse: Box::new(orelse.e),
        };
        self.node(kind, start, h)
    }

    fn missing_else(&self, start: usize) -> ParseError {
        if let Some(err) = self.special_error() {
            return err;
        }
        // Mark the whole `a if b`, as CPython does.
        ParseError::new(
            format!(
                "expected 'else' after 'if' expression, found {}",
                self.describe(self.tok(0))
            ),
            Span::new(start, self.prev_end),
        )
    }

    /// Operators from `or` down to `*` that bind at least as tightly as `min`, by
    /// precedence climbing (one function instead of one per level keeps the stack shallow).
    fn operators(&mut self, min: u8) -> Result<Node> {
        let start = self.start();
        let left = if min <= NOT && self.at_kw(Kw::Not) {
            self.not()
        } else {
            self.factor()
        };
        match self.infix_prec() {
            Some(prec) if prec >= min => self.infix_loop(left?, start, min),
            _ => left,
        }
    }

    fn infix_loop(&mut self, mut left: Node, start: usize, min: u8) -> Result<Node> {
        while let Some(prec) = self.infix_prec().filter(|p| *p >= min) {
            left = match prec {
                OR | AND => self.bool_chain(left, start, prec)?,
                CMP => self.compare_chain(left, start)?,
                _ => self.binary(left, start, prec)?,
            };
        }
        Ok(left)
    }

    /// The binding strength of the operator at the current token, if it is one.
    fn infix_prec(&self) -> Option<u8> {
        if self.compare_op().is_some() {
            return Some(CMP);
        }
        let prec = match self.tok(0).tok {
            Tok::Kw(Kw::Or) => OR,
            Tok::Kw(Kw::And) => AND,
            Tok::Punct(p) => match p {
                Punct::Pipe => BIT_OR,
                Punct::Caret => BIT_XOR,
                Punct::Amp => BIT_AND,
                Punct::LShift | Punct::RShift => SHIFT,
                Punct::Plus | Punct::Minus => ARITH,
                Punct::Star | Punct::Slash | Punct::DoubleSlash | Punct::Percent | Punct::At => {
                    TERM
                }
                _ => return None,
            },
            _ => return None,
        };
        Some(prec)
    }

    fn not(&mut self) -> Result<Node> {
        let start = self.bump().start;
        self.enter()?;
        let operand = self.operators(NOT);
        self.depth = self.depth.saturating_sub(1);
        let operand = operand?;
        let kind = ExprKind::Unary {
            op: UnaryOp::Not,
            operand: Box::new(operand.e),
        };
        self.node(kind, start, operand.h)
    }

    /// `left or ...` / `left and ...`, flattened into one node.
    fn bool_chain(&mut self, left: Node, start: usize, prec: u8) -> Result<Node> {
        let (kw, op, next) = if prec == OR {
            (Kw::Or, BoolOpKind::Or, AND)
        } else {
            (Kw::And, BoolOpKind::And, NOT)
        };
        let mut h = left.h;
        let mut values = vec![left.e];
        while self.at_kw(kw) {
            self.bump();
            let value = self.operators(next)?;
            h = h.max(value.h);
            values.push(value.e);
        }
        self.node(ExprKind::BoolOp { op, values }, start, h)
    }

    fn compare_op(&self) -> Option<(CompareOp, usize)> {
        let op = match &self.tok(0).tok {
            Tok::Punct(Punct::Lt) => CompareOp::Lt,
            Tok::Punct(Punct::Le) => CompareOp::Le,
            Tok::Punct(Punct::Gt) => CompareOp::Gt,
            Tok::Punct(Punct::Ge) => CompareOp::Ge,
            Tok::Punct(Punct::Eq) => CompareOp::Eq,
            Tok::Punct(Punct::NotEq) => CompareOp::NotEq,
            Tok::Kw(Kw::In) => CompareOp::In,
            Tok::Kw(Kw::Not) if self.tok(1).tok == Tok::Kw(Kw::In) => {
                return Some((CompareOp::NotIn, 2));
            }
            Tok::Kw(Kw::Is) if self.tok(1).tok == Tok::Kw(Kw::Not) => {
                return Some((CompareOp::IsNot, 2));
            }
            Tok::Kw(Kw::Is) => CompareOp::Is,
            _ => return None,
        };
        Some((op, 1))
    }

    /// `left < b <= c ...`: one node for the whole chain, as in Python.
    fn compare_chain(&mut self, left: Node, start: usize) -> Result<Node> {
        let mut h = left.h;
        let mut ops = Vec::new();
        while let Some((op, tokens)) = self.compare_op() {
            for _ in 0..tokens {
                self.bump();
            }
            let right = self.operators(BIT_OR)?;
            h = h.max(right.h);
            ops.push((op, right.e));
        }
        let kind = ExprKind::Compare {
            left: Box::new(left.e),
            ops,
        };
        self.node(kind, start, h)
    }

    /// `left op right op right ...` for the left-associative arithmetic or bitwise
    /// operators of level `prec`, collected into one flat node: a long sum costs no depth.
    fn binary(&mut self, left: Node, start: usize, prec: u8) -> Result<Node> {
        let mut h = left.h;
        let mut ops = Vec::new();
        while self.infix_prec() == Some(prec) {
            let Some(op) = self.binary_op() else {
                // '@' (and anything unforeseen) gets its own message.
                return Err(self.unexpected(None));
            };
            self.bump();
            let right = self.operators(prec.saturating_add(1))?;
            h = h.max(right.h);
            ops.push(BinaryStep {
                op,
                right: right.e,
                span: Span::new(start, self.prev_end),
            });
        }
        let kind = ExprKind::Binary {
            left: Box::new(left.e),
            ops,
        };
        self.node(kind, start, h)
    }

    fn binary_op(&self) -> Option<BinaryOp> {
        Some(match self.tok(0).tok {
            Tok::Punct(Punct::Pipe) => BinaryOp::BitOr,
            Tok::Punct(Punct::Caret) => BinaryOp::BitXor,
            Tok::Punct(Punct::Amp) => BinaryOp::BitAnd,
            Tok::Punct(Punct::LShift) => BinaryOp::LShift,
            Tok::Punct(Punct::RShift) => BinaryOp::RShift,
            Tok::Punct(Punct::Plus) => BinaryOp::Add,
            Tok::Punct(Punct::Minus) => BinaryOp::Sub,
            Tok::Punct(Punct::Star) => BinaryOp::Mul,
            Tok::Punct(Punct::Slash) => BinaryOp::Div,
            Tok::Punct(Punct::DoubleSlash) => BinaryOp::FloorDiv,
            Tok::Punct(Punct::Percent) => BinaryOp::Mod,
            _ => return None,
        })
    }

    fn factor(&mut self) -> Result<Node> {
        match self.tok(0).tok {
            Tok::Punct(Punct::Minus) => self.unary(UnaryOp::Neg),
            Tok::Punct(Punct::Plus) => self.unary(UnaryOp::Pos),
            Tok::Punct(Punct::Tilde) => self.unary(UnaryOp::Invert),
            _ => self.power(),
        }
    }

    fn unary(&mut self, op: UnaryOp) -> Result<Node> {
        let start = self.bump().start;
        self.enter()?;
        let operand = self.factor();
        self.depth = self.depth.saturating_sub(1);
        let operand = operand?;
        let kind = ExprKind::Unary {
            op,
            operand: Box::new(operand.e),
        };
        self.node(kind, start, operand.h)
    }

    fn power(&mut self) -> Result<Node> {
        let start = self.start();
        let base = self.primary();
        if self.at(Punct::DoubleStar) {
            self.pow(base?, start)
        } else {
            base
        }
    }

    fn pow(&mut self, base: Node, start: usize) -> Result<Node> {
        self.bump();
        // The exponent is a factor: `2 ** -1` works and `a ** b ** c` nests to the right.
        self.enter()?;
        let exponent = self.factor();
        self.depth = self.depth.saturating_sub(1);
        let exponent = exponent?;
        let h = base.h.max(exponent.h);
        let kind = ExprKind::Binary {
            left: Box::new(base.e),
            ops: vec![BinaryStep {
                op: BinaryOp::Pow,
                right: exponent.e,
                span: Span::new(start, self.prev_end),
            }],
        };
        self.node(kind, start, h)
    }

    fn primary(&mut self) -> Result<Node> {
        let start = self.start();
        let atom = self.atom();
        if self.at(Punct::Dot) || self.at(Punct::LParen) || self.at(Punct::LBracket) {
            self.postfix(atom?, start)
        } else {
            atom
        }
    }

    /// Attribute accesses, calls and subscripts after an atom.
    fn postfix(&mut self, mut node: Node, start: usize) -> Result<Node> {
        loop {
            node = if self.at(Punct::Dot) {
                self.attribute(node, start)?
            } else if self.at(Punct::LParen) {
                self.call(node, start)?
            } else if self.at(Punct::LBracket) {
                self.subscript(node, start)?
            } else {
                return Ok(node);
            };
        }
    }

    fn attribute(&mut self, value: Node, start: usize) -> Result<Node> {
        self.bump();
        let token = self.tok(0);
        let attr = match &token.tok {
            Tok::Name(name) => name.clone(),
            Tok::Kw(k) => {
                return Err(ParseError::new(
                    format!(
                        "expected an attribute name after '.', found keyword '{}'",
                        k.text()
                    ),
                    token.span,
                ));
            }
            _ => return Err(self.unexpected(Some("an attribute name after '.'"))),
        };
        let attr_span = self.bump();
        let kind = ExprKind::Attribute {
            value: Box::new(value.e),
            attr,
            attr_span,
        };
        self.node(kind, start, value.h)
    }

    fn subscript(&mut self, value: Node, start: usize) -> Result<Node> {
        self.open(Punct::LBracket, true);
        let index = self.subscript_index()?;
        self.close(Punct::RBracket, "',' or ']'")?;
        let h = value.h.max(index.h);
        let kind = ExprKind::Subscript {
            value: Box::new(value.e),
            index: Box::new(index.e),
        };
        self.node(kind, start, h)
    }

    fn call(&mut self, func: Node, start: usize) -> Result<Node> {
        self.open(Punct::LParen, false);
        let mut acc = CallArgs {
            h: func.h,
            args: Vec::new(),
            kwargs: Vec::new(),
        };
        while !self.at(Punct::RParen) {
            let keyword = matches!(self.tok(0).tok, Tok::Name(_))
                && self.tok(1).tok == Tok::Punct(Punct::Assign);
            if keyword {
                self.keyword_argument(&mut acc)?;
            } else {
                self.positional_argument(&mut acc)?;
            }
            if self.at(Punct::Comma) {
                self.bump();
            } else if !self.at(Punct::RParen) {
                return Err(self.unexpected(Some("',' or ')'")));
            }
        }
        self.close(Punct::RParen, "')'")?;
        let kind = ExprKind::Call {
            func: Box::new(func.e),
            args: acc.args,
            kwargs: acc.kwargs,
        };
        self.node(kind, start, acc.h)
    }

    fn keyword_argument(&mut self, acc: &mut CallArgs) -> Result<()> {
        let name = match &self.tok(0).tok {
            Tok::Name(name) => name.clone(),
            _ => String::new(),
        };
        let name_span = self.bump();
        self.bump();
        let value = self.expression()?;
        if acc.kwargs.iter().any(|k| k.name == name) {
            return Err(ParseError::new(
                format!("keyword argument '{name}' repeated"),
                name_span,
            ));
        }
        acc.h = acc.h.max(value.h);
        acc.kwargs.push(Keyword {
            name,
            name_span,
            value: value.e,
        });
        Ok(())
    }

    fn positional_argument(&mut self, acc: &mut CallArgs) -> Result<()> {
        let arg = self.expression()?;
        if self.at(Punct::Assign) || !acc.kwargs.is_empty() {
            return Err(self.misplaced_argument(&arg.e));
        }
        acc.h = acc.h.max(arg.h);
        acc.args.push(arg.e);
        Ok(())
    }

    fn misplaced_argument(&self, arg: &Expr) -> ParseError {
        if self.at(Punct::Assign) {
            ParseError::new(
                format!(
                    "a keyword argument name must be a plain name, not '{arg}' \
                     (use '==' to compare)"
                ),
                arg.span,
            )
        } else {
            ParseError::new("positional argument follows keyword argument", arg.span)
        }
    }

    /// What is between `[` and `]` of a subscript: an index, a slice, or a tuple of these.
    fn subscript_index(&mut self) -> Result<Node> {
        let start = self.start();
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            items.push(self.slice_item()?);
            if self.at(Punct::Comma) {
                self.bump();
                comma = true;
                if self.at(Punct::RBracket) {
                    break;
                }
            } else if self.at(Punct::RBracket) {
                break;
            } else {
                return Err(self.unexpected(Some("',' or ']'")));
            }
        }
        if items.len() == 1
            && !comma
            && let Some(item) = items.pop()
        {
            return Ok(item);
        }
        let h = items.iter().map(|n| n.h).max().unwrap_or(0);
        let items = items.into_iter().map(|n| n.e).collect();
        self.node(ExprKind::Tuple(items), start, h)
    }

    fn slice_item(&mut self) -> Result<Node> {
        let start = self.start();
        if self.at(Punct::Colon) {
            return self.slice(None, start);
        }
        let lower = self.expression();
        if self.at(Punct::Colon) {
            self.slice(Some(lower?), start)
        } else {
            lower
        }
    }

    /// The rest of a slice from its first `:` on.
    fn slice(&mut self, lower: Option<Node>, start: usize) -> Result<Node> {
        self.bump();
        let ends = |p: &Self| p.at(Punct::Colon) || p.at(Punct::Comma) || p.at(Punct::RBracket);
        let upper = if ends(self) {
            None
        } else {
            Some(self.expression()?)
        };
        let mut step = None;
        if self.at(Punct::Colon) {
            self.bump();
            if !ends(self) {
                step = Some(self.expression()?);
            }
        }
        let parts = [&lower, &upper, &step];
        let h = parts
            .iter()
            .filter_map(|p| p.as_ref())
            .map(|n| n.h)
            .max()
            .unwrap_or(0);
        let boxed = |n: Option<Node>| n.map(|n| Box::new(n.e));
        let kind = ExprKind::Slice {
            start: boxed(lower),
            stop: boxed(upper),
            step: boxed(step),
        };
        self.node(kind, start, h)
    }

    fn atom(&mut self) -> Result<Node> {
        let token = self.tok(0);
        let span = token.span;
        let kind = match &token.tok {
            Tok::Name(name) => ExprKind::Name(name.clone()),
            Tok::Kw(Kw::True) => ExprKind::Bool(true),
            Tok::Kw(Kw::False) => ExprKind::Bool(false),
            Tok::Kw(Kw::None) => ExprKind::None,
            Tok::Int(i) => ExprKind::Int(*i),
            Tok::Float(f) => ExprKind::Float(*f),
            Tok::Str(_) => return Ok(self.strings()),
            Tok::Punct(Punct::LParen) => return self.parenthesized(),
            Tok::Punct(Punct::LBracket) => return self.list(),
            _ => return Err(self.expected_expression()),
        };
        self.bump();
        Ok(Node {
            e: Expr::new(kind, span),
            h: 1,
        })
    }

    /// Adjacent string literals, joined into one.
    fn strings(&mut self) -> Node {
        let start = self.start();
        let mut value = String::new();
        while let Tok::Str(s) = &self.tok(0).tok {
            value.push_str(s);
            self.bump();
        }
        Node {
            e: Expr::new(ExprKind::Str(value), Span::new(start, self.prev_end)),
            h: 1,
        }
    }

    /// Comma-separated expressions up to the closing `close` (already opened); returns them
    /// and whether any comma was seen.
    fn items(&mut self, close: Punct, expected: &str) -> Result<(Vec<Node>, bool)> {
        let mut items = Vec::new();
        let mut comma = false;
        while !self.at(close) {
            items.push(self.expression()?);
            if self.at(Punct::Comma) {
                self.bump();
                comma = true;
            } else if !self.at(close) {
                return Err(self.unexpected(Some(expected)));
            }
        }
        self.close(close, expected)?;
        Ok((items, comma))
    }

    fn parenthesized(&mut self) -> Result<Node> {
        let start = self.start();
        self.open(Punct::LParen, false);
        let (mut items, comma) = self.items(Punct::RParen, "',' or ')'")?;
        if items.len() == 1
            && !comma
            && let Some(inner) = items.pop()
        {
            // A group keeps the inner node and span, as Python's ast does.
            return Ok(inner);
        }
        let h = items.iter().map(|n| n.h).max().unwrap_or(0);
        let items = items.into_iter().map(|n| n.e).collect();
        self.node(ExprKind::Tuple(items), start, h)
    }

    fn list(&mut self) -> Result<Node> {
        let start = self.start();
        self.open(Punct::LBracket, false);
        let (items, _) = self.items(Punct::RBracket, "',' or ']'")?;
        let h = items.iter().map(|n| n.h).max().unwrap_or(0);
        let items = items.into_iter().map(|n| n.e).collect();
        self.node(ExprKind::List(items), start, h)
    }
}

fn closer(open: Punct) -> Punct {
    match open {
        Punct::LParen => Punct::RParen,
        Punct::LBracket => Punct::RBracket,
        _ => Punct::RBrace,
    }
}

fn too_deep(span: Span) -> ParseError {
    ParseError::new(
        format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
        span,
    )
}

fn with_newline_hint(message: String, tok: &Tok) -> String {
    if *tok == Tok::Newline {
        format!("{message} (line breaks are only allowed inside brackets)")
    } else {
        message
    }
}
