//! `gridflow eval`: xarray-style expressions evaluated lazily against a dataset.
//!
//! The parser (`gridflow-expr`) gives an AST with spans; this module binds names (`ds`,
//! `np`, `da`) and maps attributes, methods and operators onto gridflow's dataset API.
//! Nothing is computed here: the result is a lazy value the caller computes, writes, draws
//! or plots.

use crate::pyscalar::{self, Num};
use gridflow_array::kernels::{BinaryOp as Op, UnaryOp as Un};
use gridflow_array::{AxisChunks, ChunkNumber, ChunkSpec, ChunkedArray, Chunking, DType, Scalar};
use gridflow_dataset::{
    DataArray, Dataset, GroupBy, IndexSel, Label, Method, Reduction, Rolling, SelOptions, Selector,
    Tolerance, Variable, Weighted,
};
use gridflow_expr::{BinaryOp, BoolOpKind, CompareOp, Expr, ExprKind, Span, UnaryOp};

/// An evaluation error at a place in the expression.
#[derive(Debug)]
pub struct EvalError {
    /// What went wrong, naming the method and argument.
    pub message: String,
    /// Where.
    pub span: Span,
}

impl EvalError {
    /// The message with the source line and a caret under the place.
    pub fn render(&self, src: &str) -> String {
        gridflow_expr::render_error(src, self.span, &self.message)
    }
}

type R<T> = std::result::Result<T, EvalError>;

fn err<T>(span: Span, message: impl Into<String>) -> R<T> {
    Err(EvalError {
        message: message.into(),
        span,
    })
}

trait At<T> {
    fn at(self, span: Span) -> R<T>;
}

impl<T, E: std::fmt::Display> At<T> for std::result::Result<T, E> {
    fn at(self, span: Span) -> R<T> {
        self.map_err(|e| EvalError {
            message: e.to_string(),
            span,
        })
    }
}

/// A value during evaluation.
#[derive(Clone)]
pub enum Val {
    /// A dataset (`ds`).
    Dataset(Dataset),
    /// A labeled array.
    Array(DataArray),
    /// `x.groupby(...)` / `x.resample(...)`.
    Groups(GroupBy),
    /// `ds.groupby(...)` on a dataset: one grouping per data variable.
    DatasetGroups(Dataset, String, Option<String>),
    /// `x.weighted(w)`.
    Weighted(Weighted),
    /// `x.rolling(dim=n)`.
    Rolling(Rolling),
    /// A namespace: `np`, `da`, `da.random`.
    Module(&'static str),
    /// A function of a namespace (`np.cos`).
    Func(&'static str, String),
    /// A method bound to its receiver.
    Method(Box<Val>, String),
    /// A number.
    Num(f64),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// `None`.
    None,
    /// A list.
    List(Vec<Val>),
    /// A tuple.
    Tuple(Vec<Val>),
    /// `slice(a, b, c)` or `a:b:c`.
    Slice(Box<Val>, Box<Val>, Box<Val>),
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::Dataset(_) => "a Dataset",
            Val::Array(_) => "a DataArray",
            Val::Groups(_) | Val::DatasetGroups(..) => "a GroupBy",
            Val::Weighted(_) => "a Weighted",
            Val::Rolling(_) => "a Rolling",
            Val::Module(_) => "a module",
            Val::Func(..) | Val::Method(..) => "a function",
            Val::Num(_) => "a float",
            Val::Int(_) => "an int",
            Val::Str(_) => "a string",
            Val::Bool(_) => "a bool",
            Val::None => "None",
            Val::List(_) => "a list",
            Val::Tuple(_) => "a tuple",
            Val::Slice(..) => "a slice",
        }
    }
}

/// The bindings an expression sees.
pub struct Env {
    /// The dataset bound to `ds`, if any.
    pub ds: Option<Dataset>,
}

const NP_UNARY: &[(&str, Un)] = &[
    ("cos", Un::Cos),
    ("sin", Un::Sin),
    ("tan", Un::Tan),
    ("arccos", Un::Arccos),
    ("arcsin", Un::Arcsin),
    ("arctan", Un::Arctan),
    ("cosh", Un::Cosh),
    ("sinh", Un::Sinh),
    ("tanh", Un::Tanh),
    ("deg2rad", Un::Deg2Rad),
    ("radians", Un::Deg2Rad),
    ("rad2deg", Un::Rad2Deg),
    ("degrees", Un::Rad2Deg),
    ("sqrt", Un::Sqrt),
    ("abs", Un::Abs),
    ("absolute", Un::Abs),
    ("log", Un::Log),
    ("log10", Un::Log10),
    ("log2", Un::Log2),
    ("log1p", Un::Log1p),
    ("exp", Un::Exp),
    ("expm1", Un::Expm1),
    ("floor", Un::Floor),
    ("ceil", Un::Ceil),
    ("round", Un::Round),
    ("trunc", Un::Trunc),
    ("sign", Un::Sign),
    ("isnan", Un::IsNan),
    ("isfinite", Un::IsFinite),
    ("isinf", Un::IsInf),
    ("logical_not", Un::LogicalNot),
];

const NP_BINARY: &[(&str, Op)] = &[
    ("maximum", Op::Maximum),
    ("minimum", Op::Minimum),
    ("fmax", Op::Fmax),
    ("fmin", Op::Fmin),
    ("arctan2", Op::Atan2),
    ("hypot", Op::Hypot),
    ("power", Op::Pow),
    ("add", Op::Add),
    ("subtract", Op::Sub),
    ("multiply", Op::Mul),
    ("divide", Op::Div),
];

/// Reductions of arrays and datasets.
const REDUCTIONS: &[&str] = &[
    "mean", "sum", "min", "max", "std", "var", "count", "median", "any", "all", "prod",
];

/// Reductions of groups: all but `prod`.
const GROUP_REDUCTIONS: &[&str] = &[
    "mean", "sum", "min", "max", "std", "var", "count", "median", "any", "all",
];

/// Evaluates `expr` in `env`.
pub fn eval(expr: &Expr, env: &Env) -> R<Val> {
    let sp = expr.span;
    match &expr.kind {
        ExprKind::Name(n) => match n.as_str() {
            "ds" => env.ds.clone().map(Val::Dataset).ok_or(()).or_else(|_| {
                err(
                    sp,
                    "`ds` is not bound: give a dataset with --store or --catalog",
                )
            }),
            "np" | "numpy" => Ok(Val::Module("np")),
            "da" => Ok(Val::Module("da")),
            "slice" => Ok(Val::Func("builtins", "slice".into())),
            other => err(
                sp,
                format!("name {other:?} is not defined (known: ds, np, da, slice)"),
            ),
        },
        ExprKind::Int(i) => Ok(Val::Int(*i)),
        ExprKind::Float(f) => Ok(Val::Num(*f)),
        ExprKind::Str(s) => Ok(Val::Str(s.clone())),
        ExprKind::Bool(b) => Ok(Val::Bool(*b)),
        ExprKind::None => Ok(Val::None),
        ExprKind::List(items) => Ok(Val::List(
            items.iter().map(|e| eval(e, env)).collect::<R<_>>()?,
        )),
        ExprKind::Tuple(items) => Ok(Val::Tuple(
            items.iter().map(|e| eval(e, env)).collect::<R<_>>()?,
        )),
        ExprKind::Slice { start, stop, step } => {
            let f = |x: &Option<Box<Expr>>| -> R<Box<Val>> {
                Ok(Box::new(match x {
                    Some(e) => eval(e, env)?,
                    None => Val::None,
                }))
            };
            Ok(Val::Slice(f(start)?, f(stop)?, f(step)?))
        }
        ExprKind::Attribute {
            value,
            attr,
            attr_span,
        } => {
            let v = eval(value, env)?;
            attribute(v, attr, *attr_span)
        }
        ExprKind::Subscript { value, index } => {
            let v = eval(value, env)?;
            let i = eval(index, env)?;
            subscript(v, i, sp)
        }
        ExprKind::Call { func, args, kwargs } => {
            let f = eval(func, env)?;
            let a: Vec<(Val, Span)> = args
                .iter()
                .map(|e| Ok((eval(e, env)?, e.span)))
                .collect::<R<_>>()?;
            let k: Vec<(String, Val, Span)> = kwargs
                .iter()
                .map(|kw| Ok((kw.name.clone(), eval(&kw.value, env)?, kw.name_span)))
                .collect::<R<_>>()?;
            call(
                f,
                Args {
                    pos: a,
                    kw: k,
                    span: sp,
                },
            )
        }
        ExprKind::Unary { op, operand } => {
            let v = eval(operand, env)?;
            unary(*op, v, sp)
        }
        ExprKind::Binary { left, ops } => {
            // A chain is flat (`a + b - c + ...`): fold it left to right in a loop.
            let mut acc = eval(left, env)?;
            for step in ops {
                let r = eval(&step.right, env)?;
                acc = binary_op(step.op, acc, r, step.span)?;
            }
            Ok(acc)
        }
        ExprKind::Compare { left, ops } => compare_chain(left, ops, env, sp),
        ExprKind::BoolOp { op, .. } => err(
            sp,
            format!(
                "`{}` needs single truth values; use `&` / `|` for elementwise logic",
                match op {
                    BoolOpKind::And => "and",
                    BoolOpKind::Or => "or",
                }
            ),
        ),
        ExprKind::IfElse { .. } => err(
            sp,
            "conditional expressions are not supported; use np.where(cond, a, b)",
        ),
    }
}

fn attribute(v: Val, attr: &str, sp: Span) -> R<Val> {
    match &v {
        Val::Module("np") => {
            if NP_UNARY.iter().any(|(n, _)| *n == attr)
                || NP_BINARY.iter().any(|(n, _)| *n == attr)
                || matches!(attr, "where" | "isnull" | "notnull")
            {
                return Ok(Val::Func("np", attr.to_owned()));
            }
            if attr == "pi" {
                return Ok(Val::Num(std::f64::consts::PI));
            }
            if attr == "nan" {
                return Ok(Val::Num(f64::NAN));
            }
            if attr == "inf" {
                return Ok(Val::Num(f64::INFINITY));
            }
            return err(sp, format!("np.{attr} is not available"));
        }
        Val::Module("da") => {
            if attr == "random" {
                return Ok(Val::Module("da.random"));
            }
            if matches!(attr, "ones" | "zeros" | "full" | "arange" | "linspace") {
                return Ok(Val::Func("da", attr.to_owned()));
            }
            return err(
                sp,
                format!(
                    "da.{attr} is not available (ones, zeros, full, arange, linspace, random.random)"
                ),
            );
        }
        Val::Module("da.random") => {
            if matches!(attr, "random" | "uniform") {
                return Ok(Val::Func("da.random", attr.to_owned()));
            }
            return err(sp, format!("da.random.{attr} is not available (random)"));
        }
        _ => {}
    }
    match (&v, attr) {
        (Val::Dataset(ds), _)
            if ds.data_vars().contains_key(attr) || ds.coords().contains_key(attr) =>
        {
            return ds.get(attr).map(Val::Array).at(sp);
        }
        (Val::Array(a), _) if a.coords().contains_key(attr) => {
            return a.coord(attr).map(Val::Array).at(sp);
        }
        (Val::Array(a), "dims") => {
            return Ok(Val::Tuple(
                a.dims().iter().map(|d| Val::Str(d.clone())).collect(),
            ));
        }
        (Val::Array(a), "shape") => {
            return Ok(Val::Tuple(
                a.shape().iter().map(|&n| Val::Int(n as i64)).collect(),
            ));
        }
        (Val::Array(a), "size") => {
            let size = a
                .shape()
                .iter()
                .try_fold(1i64, |acc, &n| acc.checked_mul(i64::try_from(n).ok()?));
            return size.map(Val::Int).ok_or(()).or_else(|_| {
                err(
                    sp,
                    "size: the element count does not fit in a 64-bit integer",
                )
            });
        }
        (Val::Array(a), "ndim") => return Ok(Val::Int(a.dims().len() as i64)),
        (Val::Array(a), "name") => {
            return Ok(a.name().map_or(Val::None, |n| Val::Str(n.to_owned())));
        }
        (Val::Array(a), "T") => {
            let rev: Vec<&str> = a.dims().iter().rev().map(String::as_str).collect();
            return a.transpose(&rev).map(Val::Array).at(sp);
        }
        _ => {}
    }
    // (reductions, other methods) of each receiver
    let (reductions, others): (&[&str], &[&str]) = match &v {
        Val::Dataset(_) => (
            REDUCTIONS,
            &[
                "sel",
                "isel",
                "groupby",
                "resample",
                "rename",
                "chunk",
                "compute",
                "persist",
                "squeeze",
                "set_coords",
                "assign_coords",
                "get",
            ],
        ),
        Val::Array(_) => (
            REDUCTIONS,
            &[
                "sel",
                "isel",
                "groupby",
                "resample",
                "weighted",
                "rolling",
                "where",
                "isnull",
                "notnull",
                "astype",
                "rename",
                "transpose",
                "squeeze",
                "expand_dims",
                "chunk",
                "compute",
                "persist",
                "assign_coords",
                "to_dataset",
                "fillna",
                "clip",
                "round",
            ],
        ),
        Val::Groups(_) | Val::DatasetGroups(..) => (GROUP_REDUCTIONS, &[]),
        Val::Weighted(_) => (&[], &["mean", "sum", "sum_of_weights"]),
        Val::Rolling(_) => (&[], &["mean", "sum", "min", "max"]),
        _ => (&[], &[]),
    };
    if reductions.contains(&attr) || others.contains(&attr) {
        return Ok(Val::Method(Box::new(v), attr.to_owned()));
    }
    let extra = match &v {
        Val::Dataset(ds) => format!(
            " (variables: {})",
            ds.data_vars()
                .keys()
                .chain(ds.coords().keys())
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Val::Array(a) => format!(
            " (coordinates: {})",
            a.coords().keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        _ => String::new(),
    };
    err(
        sp,
        format!("{} has no attribute or method {attr:?}{extra}", v.kind()),
    )
}

fn subscript(v: Val, i: Val, sp: Span) -> R<Val> {
    match (v, i) {
        (Val::Dataset(ds), Val::Str(name)) => ds.get(&name).map(Val::Array).at(sp),
        (Val::Array(a), Val::Str(name)) => a.coord(&name).map(Val::Array).at(sp),
        (Val::Array(a), idx) => {
            let items = match idx {
                Val::Tuple(t) => t,
                other => vec![other],
            };
            if items.len() > a.dims().len() {
                return err(
                    sp,
                    format!("{} indices for {} dimensions", items.len(), a.dims().len()),
                );
            }
            let dims: Vec<String> = a.dims().to_vec();
            let mut sel = Vec::new();
            for (d, it) in dims.iter().zip(items) {
                sel.push((d.as_str(), to_isel(it, sp, d)?));
            }
            a.isel(&sel).map(Val::Array).at(sp)
        }
        (Val::Tuple(t) | Val::List(t), Val::Int(i)) => {
            let n = t.len() as i64;
            let j = if i < 0 { i.checked_add(n) } else { Some(i) };
            j.and_then(|j| usize::try_from(j).ok())
                .and_then(|j| t.get(j))
                .cloned()
                .ok_or(())
                .or_else(|_| err(sp, format!("index {i} out of range")))
        }
        (v, i) => err(sp, format!("cannot index {} with {}", v.kind(), i.kind())),
    }
}

struct Args {
    pos: Vec<(Val, Span)>,
    kw: Vec<(String, Val, Span)>,
    span: Span,
}

impl Args {
    fn take_kw(&mut self, name: &str) -> Option<(Val, Span)> {
        let i = self.kw.iter().position(|(k, _, _)| k == name)?;
        let (_, v, s) = self.kw.remove(i);
        Some((v, s))
    }

    fn pos_or_kw(&mut self, i: usize, name: &str) -> Option<(Val, Span)> {
        if let Some(x) = self.take_kw(name) {
            return Some(x);
        }
        self.pos.get(i).cloned()
    }

    fn no_more(&self, what: &str, allowed_pos: usize) -> R<()> {
        if let Some((_, s)) = self.pos.get(allowed_pos) {
            return err(
                *s,
                format!("{what}: too many positional arguments (takes {allowed_pos})"),
            );
        }
        if let Some((k, _, s)) = self.kw.first() {
            return err(*s, format!("{what}: unexpected keyword argument {k:?}"));
        }
        Ok(())
    }
}

fn as_f64(v: &Val, sp: Span, what: &str) -> R<f64> {
    match v {
        Val::Num(x) => Ok(*x),
        Val::Int(i) => Ok(*i as f64),
        Val::Bool(b) => Ok(f64::from(u8::from(*b))),
        other => err(
            sp,
            format!("{what}: expected a number, got {}", other.kind()),
        ),
    }
}

fn as_usize(v: &Val, sp: Span, what: &str) -> R<usize> {
    match v {
        Val::Int(i) if *i >= 0 => Ok(*i as usize),
        other => err(
            sp,
            format!(
                "{what}: expected a non-negative integer, got {}",
                other.kind()
            ),
        ),
    }
}

fn as_str<'a>(v: &'a Val, sp: Span, what: &str) -> R<&'a str> {
    match v {
        Val::Str(s) => Ok(s),
        other => err(
            sp,
            format!("{what}: expected a string, got {}", other.kind()),
        ),
    }
}

fn as_usizes(v: &Val, sp: Span, what: &str) -> R<Vec<usize>> {
    match v {
        Val::Tuple(t) | Val::List(t) => t.iter().map(|x| as_usize(x, sp, what)).collect(),
        other => Ok(vec![as_usize(other, sp, what)?]),
    }
}

/// Dimension names: a string, a list/tuple of strings, or None (all).
fn dims_arg(v: Option<&(Val, Span)>, what: &str) -> R<Option<Vec<String>>> {
    match v {
        None | Some((Val::None, _)) => Ok(None),
        Some((Val::Str(s), _)) => Ok(Some(vec![s.clone()])),
        Some((Val::List(l) | Val::Tuple(l), sp)) => Ok(Some(
            l.iter()
                .map(|x| as_str(x, *sp, what).map(str::to_owned))
                .collect::<R<_>>()?,
        )),
        Some((other, sp)) => err(
            *sp,
            format!(
                "{what}: dim must be a name or a list of names, got {}",
                other.kind()
            ),
        ),
    }
}

fn label_of(v: &Val, sp: Span, what: &str) -> R<Label> {
    match v {
        Val::Num(x) => Ok(Label::Float(*x)),
        Val::Int(i) => Ok(Label::Int(*i)),
        Val::Str(s) => Ok(Label::Str(s.clone())),
        other => err(
            sp,
            format!(
                "{what}: a label must be a number or a string, got {}",
                other.kind()
            ),
        ),
    }
}

fn to_selector(v: Val, sp: Span, dim: &str) -> R<Selector> {
    let what = format!("sel({dim}=...)");
    match v {
        Val::Slice(a, b, c) => {
            let opt = |x: &Val| -> R<Option<Label>> {
                match x {
                    Val::None => Ok(None),
                    other => label_of(other, sp, &what).map(Some),
                }
            };
            let step = match *c {
                Val::None => None,
                Val::Int(i) => Some(i as isize),
                other => {
                    return err(
                        sp,
                        format!(
                            "{what}: the slice step must be an integer, got {}",
                            other.kind()
                        ),
                    );
                }
            };
            Ok(Selector::Slice {
                start: opt(&a)?,
                stop: opt(&b)?,
                step,
            })
        }
        Val::List(l) | Val::Tuple(l) => Ok(Selector::List(
            l.iter().map(|x| label_of(x, sp, &what)).collect::<R<_>>()?,
        )),
        other => Ok(Selector::Label(label_of(&other, sp, &what)?)),
    }
}

fn to_isel(v: Val, sp: Span, dim: &str) -> R<IndexSel> {
    let what = format!("isel({dim}=...)");
    let int = |x: &Val| -> R<Option<isize>> {
        match x {
            Val::None => Ok(None),
            Val::Int(i) => Ok(Some(*i as isize)),
            other => err(
                sp,
                format!("{what}: positions must be integers, got {}", other.kind()),
            ),
        }
    };
    match v {
        Val::Int(i) => Ok(IndexSel::Int(i as isize)),
        Val::Slice(a, b, c) => Ok(IndexSel::Slice {
            start: int(&a)?,
            stop: int(&b)?,
            step: int(&c)?,
        }),
        Val::List(l) | Val::Tuple(l) => Ok(IndexSel::List(
            l.iter()
                .map(|x| int(x).map(|o| o.unwrap_or(0)))
                .collect::<R<_>>()?,
        )),
        other => err(
            sp,
            format!(
                "{what}: expected an integer, a slice or a list, got {}",
                other.kind()
            ),
        ),
    }
}

fn sel_options(args: &mut Args, what: &str) -> R<SelOptions> {
    let method = match args.take_kw("method") {
        None | Some((Val::None, _)) => Method::Exact,
        Some((Val::Str(m), sp)) => m.parse().at(sp)?,
        Some((other, sp)) => {
            return err(
                sp,
                format!("{what}: method must be a string, got {}", other.kind()),
            );
        }
    };
    let tolerance = match args.take_kw("tolerance") {
        None | Some((Val::None, _)) => None,
        Some((Val::Str(s), _)) => Some(Tolerance::Duration(s)),
        Some((v, sp)) => Some(Tolerance::Value(as_f64(&v, sp, what)?)),
    };
    Ok(SelOptions { method, tolerance })
}

fn reduction_of(name: &str, args: &mut Args) -> R<(Reduction, Option<Vec<String>>, Option<bool>)> {
    let mut r = Reduction::parse(name)
        .ok_or(())
        .or_else(|_| err(args.span, format!("unknown reduction {name}")))?;
    let dims = dims_arg(args.pos_or_kw(0, "dim").as_ref(), name)?;
    let skipna = match args.take_kw("skipna") {
        None | Some((Val::None, _)) => None,
        Some((Val::Bool(b), _)) => Some(b),
        Some((other, sp)) => {
            return err(
                sp,
                format!("{name}: skipna must be True or False, got {}", other.kind()),
            );
        }
    };
    if let Some((v, sp)) = args.take_kw("ddof") {
        let d = as_usize(&v, sp, name)?;
        r = match r {
            Reduction::Std(_) => Reduction::Std(d),
            Reduction::Var(_) => Reduction::Var(d),
            _ => return err(sp, format!("{name}: unexpected keyword argument \"ddof\"")),
        };
    }
    let _ = args.take_kw("keep_attrs");
    args.no_more(name, 1)?;
    Ok((r, dims, skipna))
}

fn dim_refs(d: &Option<Vec<String>>) -> Option<Vec<&str>> {
    d.as_ref().map(|v| v.iter().map(String::as_str).collect())
}

fn to_array(v: &Val, sp: Span, what: &str) -> R<DataArray> {
    match v {
        Val::Array(a) => Ok(a.clone()),
        other => err(
            sp,
            format!("{what}: expected a DataArray, got {}", other.kind()),
        ),
    }
}

fn scalar_of(v: &Val) -> Option<Scalar> {
    match v {
        Val::Num(x) => Some(Scalar::Float(*x)),
        Val::Int(i) => Some(Scalar::Int(*i)),
        Val::Bool(b) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

fn call(f: Val, args: Args) -> R<Val> {
    let sp = args.span;
    match f {
        Val::Func("builtins", _) => {
            let get = |i: usize| args.pos.get(i).map_or(Val::None, |(v, _)| v.clone());
            match args.pos.len() {
                1 => Ok(Val::Slice(
                    Box::new(Val::None),
                    Box::new(get(0)),
                    Box::new(Val::None),
                )),
                2 | 3 => Ok(Val::Slice(
                    Box::new(get(0)),
                    Box::new(get(1)),
                    Box::new(get(2)),
                )),
                n => err(sp, format!("slice takes 1 to 3 arguments, got {n}")),
            }
        }
        Val::Func("np", name) => call_np(&name, args),
        Val::Func(m @ ("da" | "da.random"), name) => call_da(m, &name, args),
        Val::Method(recv, name) => call_method(*recv, &name, args),
        other => err(sp, format!("{} is not callable", other.kind())),
    }
}

fn call_np(name: &str, args: Args) -> R<Val> {
    let sp = args.span;
    let what = format!("np.{name}");
    if let Some((_, op)) = NP_UNARY.iter().find(|(n, _)| *n == name) {
        args.no_more(&what, 1)?;
        let (v, vs) = args
            .pos
            .first()
            .cloned()
            .ok_or(())
            .or_else(|_| err(sp, format!("{what} takes one argument")))?;
        return match v {
            Val::Array(a) => a.unary(*op).map(Val::Array).at(vs),
            other => {
                let x = as_f64(&other, vs, &what)?;
                let c = ChunkedArray::full(&[], Scalar::Float(x), Vec::<usize>::new(), DType::F64)
                    .and_then(|c| c.unary(*op))
                    .and_then(|c| c.compute())
                    .at(vs)?;
                Ok(Val::Num(
                    c.to_f64_vec().first().copied().unwrap_or(f64::NAN),
                ))
            }
        };
    }
    if let Some((_, op)) = NP_BINARY.iter().find(|(n, _)| *n == name) {
        args.no_more(&what, 2)?;
        let [(a, _), (b, _)] = args.pos.as_slice() else {
            return err(sp, format!("{what} takes two arguments"));
        };
        return binary(*op, a.clone(), b.clone(), sp);
    }
    match name {
        "isnull" | "notnull" => {
            args.no_more(&what, 1)?;
            let a = to_array(
                &args.pos.first().map_or(Val::None, |x| x.0.clone()),
                sp,
                &what,
            )?;
            let r = if name == "isnull" {
                a.isnull()
            } else {
                a.notnull()
            };
            r.map(Val::Array).at(sp)
        }
        "where" => {
            args.no_more(&what, 3)?;
            let [(c, cs), (x, xs), (y, ys)] = args.pos.as_slice() else {
                return err(sp, "np.where takes three arguments: np.where(cond, x, y)");
            };
            let (cs, xs, ys) = (*cs, *xs, *ys);
            let cond = to_array(c, cs, "np.where condition")?;
            let (x, y) = (x.clone(), y.clone());
            // where(c, x, y) = x where c, else y: as x.where(c, y) or y.where(~c, x)
            match (x, y) {
                (Val::Array(xa), yv) => {
                    if let Some(s) = scalar_of(&yv) {
                        return xa.where_(&cond, Some(s)).map(Val::Array).at(xs);
                    }
                    let ya = to_array(&yv, ys, "np.where")?;
                    let keep = xa.where_(&cond, Some(Scalar::Float(0.0))).at(xs)?;
                    let other = ya
                        .where_(
                            &cond.unary(Un::LogicalNot).at(cs)?,
                            Some(Scalar::Float(0.0)),
                        )
                        .at(ys)?;
                    keep.binary(Op::Add, &other).map(Val::Array).at(sp)
                }
                (xv, Val::Array(ya)) => {
                    let s = scalar_of(&xv)
                        .ok_or(())
                        .or_else(|_| err(xs, "np.where: x must be a DataArray or a number"))?;
                    ya.where_(&cond.unary(Un::LogicalNot).at(cs)?, Some(s))
                        .map(Val::Array)
                        .at(ys)
                }
                (xv, yv) => {
                    let (Some(a), Some(b)) = (scalar_of(&xv), scalar_of(&yv)) else {
                        return err(sp, "np.where: x and y must be DataArrays or numbers");
                    };
                    let ones = cond
                        .astype(DType::F64)
                        .at(cs)?
                        .binary_scalar(Op::Mul, Scalar::Float(0.0), false)
                        .at(cs)?;
                    let base = ones.binary_scalar(Op::Add, b, false).at(sp)?;
                    base.where_(&cond.unary(Un::LogicalNot).at(cs)?, Some(a))
                        .map(Val::Array)
                        .at(sp)
                }
            }
        }
        _ => err(sp, format!("{what} is not available")),
    }
}

/// The `chunks=` argument for an array of `shape`, checked by the array library as Dask
/// checks it (omitted or `None`: automatic sizes).
fn chunks_arg(args: &mut Args, shape: &[usize], what: &str) -> R<Chunking> {
    let (v, s) = match args.take_kw("chunks") {
        None | Some((Val::None, _)) => return Ok(Chunking::Sizes(auto_sizes(shape))),
        Some(x) => x,
    };
    let spec = match &v {
        Val::Tuple(items) | Val::List(items) => ChunkSpec::PerAxis(
            items
                .iter()
                .map(|x| axis_chunks(x, s, what))
                .collect::<R<_>>()?,
        ),
        other => ChunkSpec::Uniform(axis_chunks(other, s, what)?),
    };
    spec.resolve(what, shape).at(s)
}

fn auto_sizes(shape: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .map(|&n| n.clamp(1, gridflow_array::chunkspec::AUTO_BLOCK))
        .collect()
}

fn chunk_number(v: &Val, sp: Span, what: &str) -> R<ChunkNumber> {
    match v {
        Val::Int(i) => Ok(ChunkNumber::Int(*i)),
        Val::Bool(b) => Ok(ChunkNumber::Int(i64::from(*b))),
        Val::Num(x) => Ok(ChunkNumber::Float(*x)),
        other => err(
            sp,
            format!(
                "{what}: chunks can only contain integers, got {}",
                other.kind()
            ),
        ),
    }
}

fn axis_chunks(v: &Val, sp: Span, what: &str) -> R<AxisChunks> {
    match v {
        Val::None => Ok(AxisChunks::Whole),
        Val::Str(s) if s == "auto" => Ok(AxisChunks::Auto),
        Val::Tuple(items) | Val::List(items) => Ok(AxisChunks::Blocks(
            items
                .iter()
                .map(|x| chunk_number(x, sp, what))
                .collect::<R<_>>()?,
        )),
        Val::Str(s) => err(
            sp,
            format!(
                "{what}: chunks must be integers, -1, None, \"auto\" or tuples of them, got {s:?}"
            ),
        ),
        other => chunk_number(other, sp, what).map(AxisChunks::Size),
    }
}

/// One dimension's block length for `.chunk(dim=n)`, checked as Dask checks `chunks=`
/// (`-1`/`None`: the whole axis, given as 0).
fn chunk_size(v: &Val, sp: Span) -> R<usize> {
    let axis = axis_chunks(v, sp, "chunk")?;
    if matches!(axis, AxisChunks::Blocks(_)) {
        return err(sp, "chunk: give one block size per dimension");
    }
    // The length only matters for explicit blocks, refused above.
    let c = ChunkSpec::Uniform(axis)
        .resolve("chunk", &[usize::MAX])
        .at(sp)?;
    one_axis_size(&c, sp, "chunk")
}

/// The block length of a 1-d chunking (`arange`, `linspace` take one); 0 is one block.
fn one_axis_size(c: &Chunking, sp: Span, what: &str) -> R<usize> {
    match c {
        Chunking::Sizes(v) => Ok(v.first().copied().unwrap_or(0)),
        Chunking::Explicit(_) => err(
            sp,
            format!("{what}: explicit block sizes are not supported here; give one size"),
        ),
    }
}

fn unnamed(a: ChunkedArray, sp: Span) -> R<Val> {
    let dims: Vec<String> = (0..a.ndim()).map(|i| format!("dim_{i}")).collect();
    let v = Variable::new(dims, a).at(sp)?;
    DataArray::new(v, Default::default(), None)
        .map(Val::Array)
        .at(sp)
}

fn call_da(module: &str, name: &str, mut args: Args) -> R<Val> {
    let sp = args.span;
    let what = format!("{module}.{name}");
    let dtype_kw = args.take_kw("dtype");
    let dtype_given = dtype_kw.is_some();
    let dtype = match dtype_kw {
        None => DType::F64,
        Some((v, s)) => {
            let n = as_str(&v, s, &what)?;
            DType::parse(n)
                .ok_or(())
                .or_else(|_| err(s, format!("{what}: unknown dtype {n:?}")))?
        }
    };
    match (module, name) {
        ("da", "ones" | "zeros" | "full") | ("da.random", "random" | "uniform") => {
            let (sv, ss) = args
                .pos_or_kw(
                    0,
                    if module == "da.random" {
                        "size"
                    } else {
                        "shape"
                    },
                )
                .ok_or(())
                .or_else(|_| err(sp, format!("{what}: missing the shape")))?;
            let shape = as_usizes(&sv, ss, &what)?;
            let chunks = chunks_arg(&mut args, &shape, &what)?;
            let a = match name {
                "ones" => ChunkedArray::ones(&shape, chunks, dtype),
                "zeros" => ChunkedArray::zeros(&shape, chunks, dtype),
                "full" => {
                    let (fv, fs) = args
                        .pos_or_kw(1, "fill_value")
                        .ok_or(())
                        .or_else(|_| err(sp, "da.full: missing fill_value"))?;
                    ChunkedArray::full(
                        &shape,
                        Scalar::Float(as_f64(&fv, fs, &what)?),
                        chunks,
                        dtype,
                    )
                }
                _ => {
                    let seed = match args.take_kw("seed") {
                        Some((v, s)) => as_usize(&v, s, &what)? as u64,
                        None => 0,
                    };
                    ChunkedArray::random(&shape, chunks, seed)
                }
            }
            .at(sp)?;
            args.no_more(&what, if name == "full" { 2 } else { 1 })?;
            unnamed(a, sp)
        }
        ("da", "arange") => {
            let nums: Vec<f64> = args
                .pos
                .iter()
                .map(|(v, s)| as_f64(v, *s, &what))
                .collect::<R<_>>()?;
            let (start, stop, step) = match nums.as_slice() {
                [b] => (0.0, *b, 1.0),
                [a, b] => (*a, *b, 1.0),
                [a, b, c] => (*a, *b, *c),
                _ => return err(sp, "da.arange takes 1 to 3 numbers"),
            };
            let n = ((stop - start) / step).ceil().max(0.0) as usize;
            let chunks = chunks_arg(&mut args, &[n], &what)?;
            let size = one_axis_size(&chunks, sp, &what)?;
            // NumPy: integers only give int64, any float gives float64
            let dtype = if !dtype_given && args.pos.iter().all(|(v, _)| matches!(v, Val::Int(_))) {
                DType::I64
            } else {
                dtype
            };
            let a = ChunkedArray::arange(start, stop, step, size, dtype).at(sp)?;
            args.no_more(&what, 3)?;
            unnamed(a, sp)
        }
        ("da", "linspace") => {
            let nums: Vec<f64> = args
                .pos
                .iter()
                .take(2)
                .map(|(v, s)| as_f64(v, *s, &what))
                .collect::<R<_>>()?;
            let (nv, ns) = args
                .pos_or_kw(2, "num")
                .ok_or(())
                .or_else(|_| err(sp, "da.linspace: missing num"))?;
            let n = as_usize(&nv, ns, &what)?;
            let &[start, stop] = nums.as_slice() else {
                return err(sp, "da.linspace(start, stop, num, chunks=...)");
            };
            let chunks = chunks_arg(&mut args, &[n], &what)?;
            let size = one_axis_size(&chunks, sp, &what)?;
            let a = ChunkedArray::linspace(start, stop, n, size).at(sp)?;
            args.no_more(&what, 3)?;
            unnamed(a, sp)
        }
        _ => err(sp, format!("{what} is not available")),
    }
}

fn call_method(recv: Val, name: &str, mut args: Args) -> R<Val> {
    let sp = args.span;
    let what = format!(".{name}()");
    match (recv, name) {
        (Val::Dataset(ds), "get") => {
            let (v, s) = args
                .pos_or_kw(0, "name")
                .ok_or(())
                .or_else(|_| err(sp, ".get(name)"))?;
            ds.get(as_str(&v, s, &what)?).map(Val::Array).at(s)
        }
        (recv @ (Val::Dataset(_) | Val::Array(_)), "sel") => {
            let opts = sel_options(&mut args, "sel")?;
            let mut sels = Vec::new();
            for (k, v, s) in std::mem::take(&mut args.kw) {
                sels.push((k.clone(), to_selector(v, s, &k)?, s));
            }
            if let Some((_, s)) = args.pos.first() {
                return err(
                    *s,
                    "sel takes dimension=label keyword arguments (and method=, tolerance=)",
                );
            }
            let dims: Vec<String> = match &recv {
                Val::Dataset(ds) => ds.dims().keys().cloned().collect(),
                Val::Array(a) => a.dims().to_vec(),
                _ => Vec::new(),
            };
            if let Some((k, _, ks)) = sels.iter().find(|(k, _, _)| !dims.contains(k)) {
                return err(
                    *ks,
                    format!(
                        "sel: no dimension {k:?} (dimensions: {}; options: method, tolerance)",
                        dims.join(", ")
                    ),
                );
            }
            // one dimension at a time, so that an error points at its argument
            let mut cur = recv;
            for (k, sel, ks) in sels {
                let one = [(k.as_str(), sel)];
                cur = match cur {
                    Val::Dataset(ds) => Val::Dataset(ds.sel(&one, &opts).at(ks)?),
                    Val::Array(a) => Val::Array(a.sel(&one, &opts).at(ks)?),
                    other => other,
                };
            }
            Ok(cur)
        }
        (recv @ (Val::Dataset(_) | Val::Array(_)), "isel") => {
            if let Some((_, s)) = args.pos.first() {
                return err(*s, "isel takes dimension=position keyword arguments");
            }
            let mut sels = Vec::new();
            for (k, v, s) in std::mem::take(&mut args.kw) {
                sels.push((k.clone(), to_isel(v, s, &k)?));
            }
            let refs: Vec<(&str, IndexSel)> =
                sels.iter().map(|(k, s)| (k.as_str(), s.clone())).collect();
            match recv {
                Val::Dataset(ds) => ds.isel(&refs).map(Val::Dataset).at(sp),
                Val::Array(a) => a.isel(&refs).map(Val::Array).at(sp),
                _ => err(sp, "isel"),
            }
        }
        (Val::Array(a), r) if REDUCTIONS.contains(&r) => {
            let (red, dims, skipna) = reduction_of(r, &mut args)?;
            a.reduce(red, dim_refs(&dims).as_deref(), skipna)
                .map(Val::Array)
                .at(sp)
        }
        (Val::Dataset(ds), r) if REDUCTIONS.contains(&r) => {
            let (red, dims, skipna) = reduction_of(r, &mut args)?;
            ds.reduce(red, dim_refs(&dims).as_deref(), skipna)
                .map(Val::Dataset)
                .at(sp)
        }
        (Val::Groups(g), r) if REDUCTIONS.contains(&r) => {
            let (red, dims, skipna) = reduction_of(r, &mut args)?;
            if let Some(d) = dims.filter(|d| d.iter().any(|x| x != g.dim())) {
                return err(
                    sp,
                    format!("{what}: groups reduce over {:?} only, not {d:?}", g.dim()),
                );
            }
            g.reduce(red, skipna).map(Val::Array).at(sp)
        }
        (Val::DatasetGroups(ds, key, freq), r) if REDUCTIONS.contains(&r) => {
            let (red, _, skipna) = reduction_of(r, &mut args)?;
            let dim = freq.as_ref().map(|_| key.clone());
            ds.map_over(dim.as_deref(), |da| {
                let g = match &freq {
                    Some(f) => da.resample(&key, f)?,
                    None => da.groupby(&key)?,
                };
                g.reduce(red, skipna)
            })
            .map(Val::Dataset)
            .at(sp)
        }
        (Val::Array(a), "groupby") => {
            let (k, ks) = args.pos_or_kw(0, "group").ok_or(()).or_else(|_| {
                err(
                    sp,
                    "groupby: which coordinate? e.g. groupby(\"time.month\")",
                )
            })?;
            let _ = args.take_kw("squeeze");
            args.no_more("groupby", 1)?;
            a.groupby(as_str(&k, ks, "groupby")?)
                .map(Val::Groups)
                .at(ks)
        }
        (Val::Dataset(ds), "groupby") => {
            let (k, ks) = args
                .pos_or_kw(0, "group")
                .ok_or(())
                .or_else(|_| err(sp, "groupby: which coordinate?"))?;
            args.no_more("groupby", 1)?;
            Ok(Val::DatasetGroups(
                ds,
                as_str(&k, ks, "groupby")?.to_owned(),
                None,
            ))
        }
        (recv @ (Val::Array(_) | Val::Dataset(_)), "resample") => {
            let _ = args.take_kw("closed");
            let _ = args.take_kw("label");
            if args.kw.len() > 1 {
                return err(
                    args.kw.get(1).map_or(sp, |k| k.2),
                    "resample takes one dim=frequency argument, e.g. resample(time=\"1D\")",
                );
            }
            let Some((dim, v, s)) = args.kw.pop() else {
                return err(
                    sp,
                    "resample needs dim=frequency, e.g. resample(time=\"1D\")",
                );
            };
            args.no_more("resample", 0)?;
            let freq = as_str(&v, s, "resample")?.to_owned();
            match recv {
                Val::Array(a) => a.resample(&dim, &freq).map(Val::Groups).at(s),
                Val::Dataset(ds) => Ok(Val::DatasetGroups(ds, dim, Some(freq))),
                _ => err(sp, "resample"),
            }
        }
        (Val::Array(a), "weighted") => {
            let (w, ws) = args
                .pos_or_kw(0, "weights")
                .ok_or(())
                .or_else(|_| err(sp, "weighted(weights)"))?;
            args.no_more("weighted", 1)?;
            a.weighted(&to_array(&w, ws, "weighted")?)
                .map(Val::Weighted)
                .at(ws)
        }
        (Val::Weighted(w), m @ ("mean" | "sum" | "sum_of_weights")) => {
            let dims = dims_arg(args.pos_or_kw(0, "dim").as_ref(), m)?;
            let _ = args.take_kw("skipna");
            args.no_more(m, 1)?;
            let d = dim_refs(&dims);
            match m {
                "mean" => w.mean(d.as_deref()),
                "sum" => w.sum(d.as_deref()),
                _ => w.sum_of_weights(d.as_deref()),
            }
            .map(Val::Array)
            .at(sp)
        }
        (Val::Array(a), "rolling") => {
            let center = args.take_kw("center");
            if let Some((Val::Bool(true), s)) = center {
                return err(s, "rolling: center=True is not supported yet");
            }
            let min_periods = match args.take_kw("min_periods") {
                None | Some((Val::None, _)) => None,
                Some((v, s)) => Some(as_usize(&v, s, "rolling")?),
            };
            if args.kw.len() > 1 {
                return err(
                    args.kw.get(1).map_or(sp, |k| k.2),
                    "rolling takes one dim=window argument, e.g. rolling(time=24)",
                );
            }
            let Some((dim, v, s)) = args.kw.pop() else {
                return err(sp, "rolling needs dim=window, e.g. rolling(time=24)");
            };
            args.no_more("rolling", 0)?;
            let mut r = a.rolling(&dim, as_usize(&v, s, "rolling")?).at(s)?;
            if let Some(m) = min_periods {
                r = r.min_periods(m);
            }
            Ok(Val::Rolling(r))
        }
        (Val::Rolling(r), m) => {
            args.no_more(m, 0)?;
            match m {
                "mean" => r.mean(),
                "sum" => r.sum(),
                "min" => r.min(),
                _ => r.max(),
            }
            .map(Val::Array)
            .at(sp)
        }
        (Val::Array(a), "where") => {
            let (c, cs) = args
                .pos_or_kw(0, "cond")
                .ok_or(())
                .or_else(|_| err(sp, "where(cond[, other])"))?;
            let cond = to_array(&c, cs, "where")?;
            let other = match args.pos_or_kw(1, "other") {
                None | Some((Val::None, _)) => None,
                Some((v, s)) => Some(
                    scalar_of(&v)
                        .ok_or(())
                        .or_else(|_| err(s, "where: other must be a number"))?,
                ),
            };
            args.no_more("where", 2)?;
            a.where_(&cond, other).map(Val::Array).at(sp)
        }
        (Val::Array(a), "fillna") => {
            let (v, vs) = args
                .pos_or_kw(0, "value")
                .ok_or(())
                .or_else(|_| err(sp, "fillna(value)"))?;
            let s = scalar_of(&v)
                .ok_or(())
                .or_else(|_| err(vs, "fillna: value must be a number"))?;
            args.no_more("fillna", 1)?;
            a.where_(&a.notnull().at(sp)?, Some(s))
                .map(Val::Array)
                .at(sp)
        }
        (Val::Array(a), "clip") => {
            let lo = args.pos_or_kw(0, "min");
            let hi = args.pos_or_kw(1, "max");
            args.no_more("clip", 2)?;
            let mut out = a;
            if let Some((v, s)) = lo.filter(|(v, _)| !matches!(v, Val::None)) {
                out = out
                    .binary_scalar(Op::Fmax, Scalar::Float(as_f64(&v, s, "clip")?), false)
                    .at(s)?;
            }
            if let Some((v, s)) = hi.filter(|(v, _)| !matches!(v, Val::None)) {
                out = out
                    .binary_scalar(Op::Fmin, Scalar::Float(as_f64(&v, s, "clip")?), false)
                    .at(s)?;
            }
            Ok(Val::Array(out))
        }
        (Val::Array(a), "round") => {
            args.no_more("round", 0)?;
            a.unary(Un::Round).map(Val::Array).at(sp)
        }
        (Val::Array(a), m @ ("isnull" | "notnull")) => {
            args.no_more(m, 0)?;
            if m == "isnull" {
                a.isnull()
            } else {
                a.notnull()
            }
            .map(Val::Array)
            .at(sp)
        }
        (Val::Array(a), "astype") => {
            let (v, s) = args
                .pos_or_kw(0, "dtype")
                .ok_or(())
                .or_else(|_| err(sp, "astype(dtype)"))?;
            args.no_more("astype", 1)?;
            let n = as_str(&v, s, "astype")?;
            let dt = DType::parse(n)
                .ok_or(())
                .or_else(|_| err(s, format!("astype: unknown dtype {n:?}")))?;
            a.astype(dt).map(Val::Array).at(sp)
        }
        (Val::Array(a), "rename") => {
            if let Some((v, s)) = args.pos.first().cloned() {
                args.no_more("rename", 1)?;
                return Ok(Val::Array(a.rename(as_str(&v, s, "rename")?)));
            }
            let pairs: Vec<(String, String)> = std::mem::take(&mut args.kw)
                .into_iter()
                .map(|(k, v, s)| Ok((k, as_str(&v, s, "rename")?.to_owned())))
                .collect::<R<_>>()?;
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            a.rename_dims(&refs).map(Val::Array).at(sp)
        }
        (Val::Dataset(ds), "rename") => {
            let pairs: Vec<(String, String)> = std::mem::take(&mut args.kw)
                .into_iter()
                .map(|(k, v, s)| Ok((k, as_str(&v, s, "rename")?.to_owned())))
                .collect::<R<_>>()?;
            args.no_more("rename", 0)?;
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            ds.rename(&refs).map(Val::Dataset).at(sp)
        }
        (Val::Array(a), "transpose") => {
            let dims: Vec<String> = args
                .pos
                .iter()
                .map(|(v, s)| as_str(v, *s, "transpose").map(str::to_owned))
                .collect::<R<_>>()?;
            args.no_more("transpose", dims.len())?;
            let d: Vec<&str> = if dims.is_empty() {
                a.dims().iter().rev().map(String::as_str).collect()
            } else {
                dims.iter().map(String::as_str).collect()
            };
            a.transpose(&d).map(Val::Array).at(sp)
        }
        (recv @ (Val::Array(_) | Val::Dataset(_)), "squeeze") => {
            let d = dims_arg(args.pos_or_kw(0, "dim").as_ref(), "squeeze")?;
            args.no_more("squeeze", 1)?;
            match recv {
                Val::Array(a) => match d {
                    None => a.squeeze(None),
                    Some(ds) => ds.iter().try_fold(a, |acc, x| acc.squeeze(Some(x))),
                }
                .map(Val::Array)
                .at(sp),
                Val::Dataset(ds) => {
                    let sizes = ds.dims();
                    let targets: Vec<String> = match d {
                        Some(v) => v,
                        None => sizes
                            .iter()
                            .filter(|(_, n)| **n == 1)
                            .map(|(k, _)| k.clone())
                            .collect(),
                    };
                    let sel: Vec<(&str, IndexSel)> = targets
                        .iter()
                        .map(|t| (t.as_str(), IndexSel::Int(0)))
                        .collect();
                    ds.isel(&sel).map(Val::Dataset).at(sp)
                }
                _ => err(sp, "squeeze"),
            }
        }
        (Val::Array(a), "expand_dims") => {
            let (v, s) = args
                .pos_or_kw(0, "dim")
                .ok_or(())
                .or_else(|_| err(sp, "expand_dims(dim)"))?;
            args.no_more("expand_dims", 1)?;
            a.expand_dims(as_str(&v, s, "expand_dims")?)
                .map(Val::Array)
                .at(sp)
        }
        (recv @ (Val::Array(_) | Val::Dataset(_)), "chunk") => {
            let pairs: Vec<(String, usize)> = std::mem::take(&mut args.kw)
                .into_iter()
                .map(|(k, v, s)| Ok((k, chunk_size(&v, s)?)))
                .collect::<R<_>>()?;
            args.no_more("chunk", 0)?;
            let refs: Vec<(&str, usize)> = pairs.iter().map(|(k, n)| (k.as_str(), *n)).collect();
            match recv {
                Val::Array(a) => a.chunk(&refs).map(Val::Array).at(sp),
                Val::Dataset(ds) => ds.chunk(&refs).map(Val::Dataset).at(sp),
                _ => err(sp, "chunk"),
            }
        }
        (recv @ (Val::Array(_) | Val::Dataset(_)), "compute" | "persist") => {
            // computing happens once, at the end; inside an expression these are no-ops
            args.no_more(name, 0)?;
            Ok(recv)
        }
        (Val::Array(a), "to_dataset") => {
            args.no_more("to_dataset", 0)?;
            Dataset::from_dataarray(&a).map(Val::Dataset).at(sp)
        }
        (Val::Dataset(ds), "set_coords") => {
            let names =
                dims_arg(args.pos_or_kw(0, "names").as_ref(), "set_coords")?.unwrap_or_default();
            args.no_more("set_coords", 1)?;
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            ds.set_coords(&refs).map(Val::Dataset).at(sp)
        }
        (recv @ (Val::Array(_) | Val::Dataset(_)), "assign_coords") => {
            let mut new = Vec::new();
            for (k, v, s) in std::mem::take(&mut args.kw) {
                let a = to_array(&v, s, "assign_coords")?;
                new.push((k, a.variable().clone()));
            }
            args.no_more("assign_coords", 0)?;
            let refs: Vec<(&str, Variable)> =
                new.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            match recv {
                Val::Array(a) => a.assign_coords(&refs).map(Val::Array).at(sp),
                Val::Dataset(ds) => ds.assign_coords(&refs).map(Val::Dataset).at(sp),
                _ => err(sp, "assign_coords"),
            }
        }
        (recv, m) => err(sp, format!("{} has no method {m:?}", recv.kind())),
    }
}

/// `left op right` for an operator of the expression language.
fn binary_op(op: BinaryOp, l: Val, r: Val, sp: Span) -> R<Val> {
    let op = match op {
        BinaryOp::Add => Op::Add,
        BinaryOp::Sub => Op::Sub,
        BinaryOp::Mul => Op::Mul,
        BinaryOp::Div => Op::Div,
        BinaryOp::FloorDiv => Op::FloorDiv,
        BinaryOp::Mod => Op::Mod,
        BinaryOp::Pow => Op::Pow,
        BinaryOp::BitAnd => Op::And,
        BinaryOp::BitOr => Op::Or,
        BinaryOp::BitXor => Op::Xor,
        other => return err(sp, format!("operator {} is not supported", other.symbol())),
    };
    binary(op, l, r, sp)
}

/// `a < b <= c ...` as Python evaluates it: `a < b and b <= c`, each operand once, stopping
/// at the first false scalar comparison. Array comparisons combine elementwise (`&`).
fn compare_chain(left: &Expr, ops: &[(CompareOp, Expr)], env: &Env, sp: Span) -> R<Val> {
    let mut l = eval(left, env)?;
    let mut acc: Option<Val> = None;
    for (cop, right) in ops {
        let r = eval(right, env)?;
        let op = match cop {
            CompareOp::Eq => Op::Eq,
            CompareOp::NotEq => Op::Ne,
            CompareOp::Lt => Op::Lt,
            CompareOp::Le => Op::Le,
            CompareOp::Gt => Op::Gt,
            CompareOp::Ge => Op::Ge,
            other => {
                return err(
                    sp,
                    format!("comparison `{}` is not supported", other.symbol()),
                );
            }
        };
        let c = binary(op, l, r.clone(), sp)?;
        acc = match (acc, c) {
            (_, f @ Val::Bool(false)) => return Ok(f),
            (None | Some(Val::Bool(true)), c) => Some(c),
            (Some(a), Val::Bool(true)) => Some(a),
            (Some(a), c) => Some(binary(Op::And, a, c, sp)?),
        };
        l = r;
    }
    acc.ok_or(()).or_else(|_| err(sp, "empty comparison"))
}

fn py_num(v: &Val) -> Option<Num> {
    match v {
        Val::Num(x) => Some(Num::Float(*x)),
        Val::Int(i) => Some(Num::Int(*i)),
        Val::Bool(b) => Some(Num::Bool(*b)),
        _ => None,
    }
}

fn from_py(n: Num) -> Val {
    match n {
        Num::Bool(b) => Val::Bool(b),
        Num::Int(i) => Val::Int(i),
        Num::Float(x) => Val::Num(x),
    }
}

fn unary(op: UnaryOp, v: Val, sp: Span) -> R<Val> {
    if let Some(n) = py_num(&v) {
        return match op {
            UnaryOp::Neg => pyscalar::neg(n).map(from_py).at(sp),
            UnaryOp::Pos => Ok(from_py(match n {
                Num::Bool(b) => Num::Int(i64::from(b)),
                other => other,
            })),
            UnaryOp::Invert => pyscalar::invert(n).map(from_py).at(sp),
            UnaryOp::Not => Ok(Val::Bool(!pyscalar::truthy(n))),
        };
    }
    match (op, v) {
        (UnaryOp::Pos, v @ Val::Array(_)) => Ok(v),
        (UnaryOp::Neg, Val::Array(a)) => a.unary(Un::Neg).map(Val::Array).at(sp),
        (UnaryOp::Invert, Val::Array(a)) => {
            if a.dtype() == DType::Bool {
                a.unary(Un::LogicalNot).map(Val::Array).at(sp)
            } else {
                err(sp, "`~` works on boolean arrays (comparisons, isnull)")
            }
        }
        (UnaryOp::Not, Val::Array(_)) => err(
            sp,
            "`not` needs a single truth value; use `~` for an elementwise not",
        ),
        (op, v) => err(
            sp,
            format!("unary `{}` does not apply to {}", op.symbol(), v.kind()),
        ),
    }
}

fn binary(op: Op, l: Val, r: Val, sp: Span) -> R<Val> {
    match (l, r) {
        (Val::Array(a), Val::Array(b)) => a.binary(op, &b).map(Val::Array).at(sp),
        (Val::Array(a), s) if scalar_of(&s).is_some() => a
            .binary_scalar(op, scalar_of(&s).unwrap_or(Scalar::Float(f64::NAN)), false)
            .map(Val::Array)
            .at(sp),
        (s, Val::Array(a)) if scalar_of(&s).is_some() => a
            .binary_scalar(op, scalar_of(&s).unwrap_or(Scalar::Float(f64::NAN)), true)
            .map(Val::Array)
            .at(sp),
        (Val::Groups(g), Val::Array(b)) => g.binary(op, &b).map(Val::Array).at(sp),
        (Val::Dataset(ds), s) if scalar_of(&s).is_some() => {
            let sc = scalar_of(&s).unwrap_or(Scalar::Float(f64::NAN));
            ds.map_over(None, |da| da.binary_scalar(op, sc, false))
                .map(Val::Dataset)
                .at(sp)
        }
        (l, r) if py_num(&l).is_some() && py_num(&r).is_some() => {
            let (Some(x), Some(y)) = (py_num(&l), py_num(&r)) else {
                return err(sp, "internal: not numbers");
            };
            // Python scalars: exact ints, errors where Python raises.
            pyscalar::binary(op, x, y).map(from_py).at(sp)
        }
        (Val::Str(a), Val::Str(b))
            if matches!(op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) =>
        {
            let o = a.cmp(&b);
            Ok(Val::Bool(match op {
                Op::Eq => o.is_eq(),
                Op::Ne => o.is_ne(),
                Op::Lt => o.is_lt(),
                Op::Le => o.is_le(),
                Op::Gt => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        (l, r) => err(
            sp,
            format!(
                "cannot apply {} to {} and {}",
                op.name(),
                l.kind(),
                r.kind()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> Val {
        let expr = gridflow_expr::parse(src).unwrap_or_else(|e| panic!("{}", e.render(src)));
        eval(&expr, &Env { ds: None }).unwrap_or_else(|e| panic!("{}", e.render(src)))
    }

    #[test]
    fn a_flat_chain_of_100_000_terms_evaluates_without_deep_recursion() {
        // Runs on a test thread's 2 MiB stack: evaluating (and dropping) the chain must
        // loop, not recurse once per term.
        let src = vec!["1"; 100_000].join(" + ");
        assert!(matches!(run(&src), Val::Int(100_000)));
        let src = format!("2{}", " * 1 - 1 + 1".repeat(30_000));
        assert!(matches!(run(&src), Val::Int(2)));
    }
}
