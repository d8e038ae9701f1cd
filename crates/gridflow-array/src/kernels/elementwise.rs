//! Elementwise kernels: unary and binary ufuncs and `where`, with NumPy 2 promotion
//! (NEP 50 for Python scalars) and broadcasting between block shapes.
//!
//! Each kernel dispatches on the dtype once per chunk and then runs a monomorphic loop;
//! same-shape contiguous operands are processed as flat slices so the compiler can
//! vectorise. Operands are converted to the common dtype only when their dtype differs.
//!
//! Integer arithmetic wraps on overflow as NumPy's does; integer division and remainder by
//! zero give 0 (NumPy also gives 0, with a warning).

use super::{cast_cow, dtype_err, fmt_shape, from_vec, kernel_err, same_typed, shape_err};
use crate::chunk::{Chunk, Element};
use crate::dtype::{DType, Scalar, promote};
use crate::error::Result;
use crate::map_chunk;
use ndarray::{ArrayD, IxDyn, Zip};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// A one-operand ufunc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `negative` (`-x`); not defined for bool (as NumPy).
    Neg,
    /// `absolute`; bool stays bool, signed integers wrap (`abs(-128i8) == -128`).
    Abs,
    /// `sqrt`.
    Sqrt,
    /// `exp`.
    Exp,
    /// `log` (natural).
    Log,
    /// `log10`.
    Log10,
    /// `log2`.
    Log2,
    /// `log1p`.
    Log1p,
    /// `expm1`.
    Expm1,
    /// `sin`.
    Sin,
    /// `cos`.
    Cos,
    /// `tan`.
    Tan,
    /// `arcsin`.
    Arcsin,
    /// `arccos`.
    Arccos,
    /// `arctan`.
    Arctan,
    /// `sinh`.
    Sinh,
    /// `cosh`.
    Cosh,
    /// `tanh`.
    Tanh,
    /// `floor`; integers and bool are returned unchanged (NumPy 2 keeps integer dtypes).
    Floor,
    /// `ceil`; integers and bool are returned unchanged.
    Ceil,
    /// `round` to the nearest integer, ties to even (NumPy's `rint`/`round`); integers and
    /// bool are returned unchanged.
    Round,
    /// `trunc`; integers and bool are returned unchanged.
    Trunc,
    /// `sign` (-1, 0, 1; NaN stays NaN); bool stays bool (identity).
    Sign,
    /// `square` (`x * x`, wrapping for integers); bool stays bool (identity), where NumPy
    /// would give int8.
    Square,
    /// `reciprocal` (`1 / x`). Differs from NumPy for integer and bool inputs: the result is
    /// the float dtype of [`DType::ufunc_float`] (true reciprocal) instead of NumPy's integer
    /// reciprocal, which truncates to 0 for `|x| > 1`.
    Reciprocal,
    /// `deg2rad`.
    Deg2Rad,
    /// `rad2deg`.
    Rad2Deg,
    /// `isnan` (all false for integers and bool).
    IsNan,
    /// xarray's `isnull` (NaN test; all false for integers and bool).
    IsNull,
    /// xarray's `notnull` (not NaN; all true for integers and bool).
    NotNull,
    /// `isfinite` (all true for integers and bool).
    IsFinite,
    /// `isinf` (all false for integers and bool).
    IsInf,
    /// `logical_not` (`x == 0`; NaN is truthy so gives false).
    LogicalNot,
}

impl UnaryOp {
    /// Every unary op, in declaration order.
    pub const ALL: [UnaryOp; 33] = {
        use UnaryOp::*;
        [
            Neg, Abs, Sqrt, Exp, Log, Log10, Log2, Log1p, Expm1, Sin, Cos, Tan, Arcsin, Arccos,
            Arctan, Sinh, Cosh, Tanh, Floor, Ceil, Round, Trunc, Sign, Square, Reciprocal, Deg2Rad,
            Rad2Deg, IsNan, IsNull, NotNull, IsFinite, IsInf, LogicalNot,
        ]
    };

    /// The NumPy (or xarray) name of the operation.
    pub fn name(&self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "negative",
            Abs => "absolute",
            Sqrt => "sqrt",
            Exp => "exp",
            Log => "log",
            Log10 => "log10",
            Log2 => "log2",
            Log1p => "log1p",
            Expm1 => "expm1",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Arcsin => "arcsin",
            Arccos => "arccos",
            Arctan => "arctan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Trunc => "trunc",
            Sign => "sign",
            Square => "square",
            Reciprocal => "reciprocal",
            Deg2Rad => "deg2rad",
            Rad2Deg => "rad2deg",
            IsNan => "isnan",
            IsNull => "isnull",
            NotNull => "notnull",
            IsFinite => "isfinite",
            IsInf => "isinf",
            LogicalNot => "logical_not",
        }
    }

    /// True for the ops computed in floating point (integer inputs are converted first).
    fn is_float_math(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Sqrt | Exp
                | Log
                | Log10
                | Log2
                | Log1p
                | Expm1
                | Sin
                | Cos
                | Tan
                | Arcsin
                | Arccos
                | Arctan
                | Sinh
                | Cosh
                | Tanh
                | Reciprocal
                | Deg2Rad
                | Rad2Deg
        )
    }

    /// True for the ops returning bool.
    fn is_predicate(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            IsNan | IsNull | NotNull | IsFinite | IsInf | LogicalNot
        )
    }
}

/// A two-operand ufunc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    /// `add` (`+`); on bool it is logical or, as NumPy.
    Add,
    /// `subtract` (`-`); not defined for bool, as NumPy.
    Sub,
    /// `multiply` (`*`); on bool it is logical and.
    Mul,
    /// `divide` (true division `/`): integers give float64, float32 stays float32.
    Div,
    /// `floor_divide` (`//`) with Python semantics; integer division by zero gives 0.
    FloorDiv,
    /// `remainder` (`%`) with Python semantics (sign of the divisor); by zero gives 0 for
    /// integers and NaN for floats.
    Mod,
    /// `power` (`**`); wrapping for integers, negative integer exponents are an error.
    Pow,
    /// `equal` (`==`).
    Eq,
    /// `not_equal` (`!=`).
    Ne,
    /// `less` (`<`).
    Lt,
    /// `less_equal` (`<=`).
    Le,
    /// `greater` (`>`).
    Gt,
    /// `greater_equal` (`>=`).
    Ge,
    /// `bitwise_and` (`&`): logical on bool, bitwise on integers, an error on floats.
    And,
    /// `bitwise_or` (`|`).
    Or,
    /// `bitwise_xor` (`^`).
    Xor,
    /// `minimum`: NaN propagates.
    Minimum,
    /// `maximum`: NaN propagates.
    Maximum,
    /// `fmin`: NaN is ignored unless both are NaN.
    Fmin,
    /// `fmax`: NaN is ignored unless both are NaN.
    Fmax,
    /// `arctan2` (float result).
    Atan2,
    /// `hypot` (float result).
    Hypot,
}

impl BinaryOp {
    /// Every binary op, in declaration order.
    pub const ALL: [BinaryOp; 22] = {
        use BinaryOp::*;
        [
            Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or, Xor, Minimum,
            Maximum, Fmin, Fmax, Atan2, Hypot,
        ]
    };

    /// The NumPy name of the ufunc.
    pub fn name(&self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "subtract",
            Mul => "multiply",
            Div => "divide",
            FloorDiv => "floor_divide",
            Mod => "remainder",
            Pow => "power",
            Eq => "equal",
            Ne => "not_equal",
            Lt => "less",
            Le => "less_equal",
            Gt => "greater",
            Ge => "greater_equal",
            And => "bitwise_and",
            Or => "bitwise_or",
            Xor => "bitwise_xor",
            Minimum => "minimum",
            Maximum => "maximum",
            Fmin => "fmin",
            Fmax => "fmax",
            Atan2 => "arctan2",
            Hypot => "hypot",
        }
    }

    /// True for the six comparisons (bool result).
    pub fn is_comparison(&self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }

    /// The comparison with its operands swapped (`a < b` is `b > a`); other ops unchanged.
    fn swapped_comparison(self) -> BinaryOp {
        use BinaryOp::*;
        match self {
            Lt => Gt,
            Le => Ge,
            Gt => Lt,
            Ge => Le,
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Result dtypes
// ---------------------------------------------------------------------------------------

/// The dtype `op` produces for an input of dtype `x` (see [`UnaryOp`] for the rules).
///
/// ```
/// use gridflow_array::DType;
/// use gridflow_array::kernels::{UnaryOp, unary_result_dtype};
/// assert_eq!(unary_result_dtype(UnaryOp::Sqrt, DType::I16).unwrap(), DType::F32);
/// assert_eq!(unary_result_dtype(UnaryOp::Sqrt, DType::I32).unwrap(), DType::F64);
/// assert_eq!(unary_result_dtype(UnaryOp::Floor, DType::I32).unwrap(), DType::I32);
/// assert_eq!(unary_result_dtype(UnaryOp::IsNan, DType::F32).unwrap(), DType::Bool);
/// assert!(unary_result_dtype(UnaryOp::Neg, DType::Bool).is_err());
/// ```
pub fn unary_result_dtype(op: UnaryOp, x: DType) -> Result<DType> {
    if op.is_float_math() {
        Ok(x.ufunc_float())
    } else if op.is_predicate() {
        Ok(DType::Bool)
    } else if op == UnaryOp::Neg && x == DType::Bool {
        Err(dtype_err(
            op.name(),
            "the numpy boolean negative, the `-` operator, is not supported, use the `~` \
             operator or the logical_not function instead",
        ))
    } else {
        Ok(x)
    }
}

/// How a binary op runs: the dtype both operands are converted to, and the result dtype.
#[derive(Clone, Copy, Debug)]
struct BinaryPlan {
    operand: DType,
    result: DType,
}

/// The plan for `op` once both operands share the dtype `p`.
fn plan_for(op: BinaryOp, p: DType, a: DType, b: DType) -> Result<BinaryPlan> {
    use BinaryOp::*;
    let same = |d: DType| {
        Ok(BinaryPlan {
            operand: d,
            result: d,
        })
    };
    match op {
        Add | Mul | Minimum | Maximum | Fmin | Fmax => same(p),
        Sub => {
            if p == DType::Bool {
                Err(dtype_err(
                    op.name(),
                    "numpy boolean subtract, the `-` operator, is not supported, use the \
                     bitwise_xor, the `^` operator, or the logical_xor function instead",
                ))
            } else {
                same(p)
            }
        }
        FloorDiv | Mod | Pow => same(if p == DType::Bool { DType::I8 } else { p }),
        Div => same(if p.is_float() { p } else { DType::F64 }),
        Atan2 | Hypot => same(p.ufunc_float()),
        Eq | Ne | Lt | Le | Gt | Ge => Ok(BinaryPlan {
            operand: p,
            result: DType::Bool,
        }),
        And | Or | Xor => {
            if p.is_float() {
                Err(dtype_err(
                    op.name(),
                    format!(
                        "ufunc '{}' not supported for the input types {a} and {b} \
                         (only bool and integer types)",
                        op.name()
                    ),
                ))
            } else {
                same(p)
            }
        }
    }
}

/// The dtype of `op(a, b)` for two arrays of dtypes `a` and `b` (NumPy's rules).
///
/// ```
/// use gridflow_array::DType;
/// use gridflow_array::kernels::{BinaryOp, binary_result_dtype};
/// assert_eq!(binary_result_dtype(BinaryOp::Add, DType::U8, DType::I8).unwrap(), DType::I16);
/// assert_eq!(binary_result_dtype(BinaryOp::Div, DType::I32, DType::I32).unwrap(), DType::F64);
/// assert_eq!(binary_result_dtype(BinaryOp::Div, DType::I8, DType::F32).unwrap(), DType::F32);
/// assert_eq!(binary_result_dtype(BinaryOp::Lt, DType::F32, DType::I64).unwrap(), DType::Bool);
/// assert!(binary_result_dtype(BinaryOp::And, DType::F32, DType::I64).is_err());
/// ```
pub fn binary_result_dtype(op: BinaryOp, a: DType, b: DType) -> Result<DType> {
    Ok(plan_for(op, promote(a, b), a, b)?.result)
}

/// The dtype of `op(array, s)` (or `op(s, array)`) for an array of dtype `a` and a Python
/// scalar `s`, with NEP 50 weak promotion ([`Scalar::promote_with`]).
///
/// ```
/// use gridflow_array::{DType, Scalar};
/// use gridflow_array::kernels::{BinaryOp, binary_scalar_result_dtype};
/// let f = Scalar::Float(2.5);
/// assert_eq!(binary_scalar_result_dtype(BinaryOp::Add, DType::F32, f).unwrap(), DType::F32);
/// assert_eq!(binary_scalar_result_dtype(BinaryOp::Add, DType::I16, f).unwrap(), DType::F64);
/// let i = Scalar::Int(2);
/// assert_eq!(binary_scalar_result_dtype(BinaryOp::Mul, DType::U8, i).unwrap(), DType::U8);
/// assert_eq!(binary_scalar_result_dtype(BinaryOp::Div, DType::U8, i).unwrap(), DType::F64);
/// ```
pub fn binary_scalar_result_dtype(op: BinaryOp, a: DType, s: Scalar) -> Result<DType> {
    let p = s.promote_with(a);
    Ok(plan_for(op, p, a, s.natural_dtype())?.result)
}

/// The dtype of `where_(cond, x, y)`: `promote(x, y)`.
pub fn where_result_dtype(x: DType, y: DType) -> DType {
    promote(x, y)
}

// ---------------------------------------------------------------------------------------
// Broadcasting and loops
// ---------------------------------------------------------------------------------------

/// The NumPy broadcast of several shapes (trailing dimensions aligned, length-1 stretches).
///
/// ```
/// use gridflow_array::kernels::broadcast_shapes;
/// assert_eq!(broadcast_shapes("add", &[&[3, 1], &[4]]).unwrap(), vec![3, 4]);
/// let e = broadcast_shapes("add", &[&[2, 3], &[4]]).unwrap_err().to_string();
/// assert!(e.contains("(2,3)") && e.contains("(4,)"));
/// ```
pub fn broadcast_shapes(op: &str, shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let ndim = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; ndim];
    for (k, o) in out.iter_mut().enumerate() {
        // `k` counts output dims from the left; dim `ndim - 1 - k` from the right.
        let from_right = ndim - 1 - k;
        for s in shapes {
            if from_right < s.len() {
                let d = s[s.len() - 1 - from_right];
                if d != 1 {
                    if *o == 1 {
                        *o = d;
                    } else if *o != d {
                        let all: Vec<String> = shapes.iter().map(|s| fmt_shape(s)).collect();
                        return Err(shape_err(
                            op,
                            format!(
                                "operands could not be broadcast together with shapes {}",
                                all.join(" ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A broadcast view of `a` with `shape` (which must be a valid broadcast target).
fn bview<'a, T>(op: &str, a: &'a ArrayD<T>, shape: &[usize]) -> Result<ndarray::ArrayViewD<'a, T>> {
    a.broadcast(IxDyn(shape)).ok_or_else(|| {
        shape_err(
            op,
            format!(
                "cannot broadcast shape {} to {}",
                fmt_shape(a.shape()),
                fmt_shape(shape)
            ),
        )
    })
}

/// Applies `f` elementwise (keeps the memory order of contiguous inputs, vectorisable).
#[inline]
fn map1<T: Copy, U>(a: &ArrayD<T>, f: impl Fn(T) -> U) -> ArrayD<U> {
    a.map(|&v| f(v))
}

/// Applies `f` to pairs of elements of `a` and `b`, broadcasting their shapes.
#[inline]
fn zip2<T: Copy, U>(
    op: &str,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    f: impl Fn(T, T) -> U,
) -> Result<ArrayD<U>> {
    if a.shape() == b.shape() {
        if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
            let v: Vec<U> = x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect();
            return from_vec(op, a.shape(), v);
        }
        return Ok(Zip::from(a).and(b).map_collect(|&p, &q| f(p, q)));
    }
    let shape = broadcast_shapes(op, &[a.shape(), b.shape()])?;
    let (av, bv) = (bview(op, a, &shape)?, bview(op, b, &shape)?);
    Ok(Zip::from(&av).and(&bv).map_collect(|&p, &q| f(p, q)))
}

/// The second operand of a typed binary kernel: an array or a scalar on either side.
enum Rhs<'a, T> {
    Array(&'a ArrayD<T>),
    Scalar { value: T, left: bool },
}

impl<T: Copy> Rhs<'_, T> {
    /// `f(a, rhs)` elementwise (or `f(scalar, a)` for a scalar on the left).
    #[inline]
    fn apply<U>(&self, op: &str, a: &ArrayD<T>, f: impl Fn(T, T) -> U) -> Result<ArrayD<U>> {
        match *self {
            Rhs::Array(b) => zip2(op, a, b, f),
            Rhs::Scalar { value, left: false } => Ok(map1(a, |v| f(v, value))),
            Rhs::Scalar { value, left: true } => Ok(map1(a, |v| f(value, v))),
        }
    }
}

/// Replaces every element `v` of `a` by `f(v)`: one flat slice loop (vectorisable) for a
/// standard-layout array.
#[inline]
fn map1_inplace<T: Copy>(a: &mut ArrayD<T>, f: impl Fn(T) -> T) {
    if let Some(s) = a.as_slice_mut() {
        for v in s {
            *v = f(*v);
        }
    } else {
        a.mapv_inplace(f);
    }
}

/// Replaces every element `p` of `a` by `f(p, q)`, `q` being the matching element of `b`
/// broadcast to `a`'s shape (an error when `b` does not broadcast to exactly that shape).
///
/// Same-shape contiguous operands run as one slice loop; a one-element `b` as a scalar;
/// otherwise a standard-layout `a` runs row by row, each row a slice loop against a
/// contiguous row of `b` or a single repeated element of `b`.
#[inline]
fn zip2_inplace<T: Copy>(
    op: &str,
    a: &mut ArrayD<T>,
    b: &ArrayD<T>,
    f: impl Fn(T, T) -> T,
) -> Result<()> {
    if a.shape() == b.shape() {
        if let (Some(x), Some(y)) = (a.as_slice_mut(), b.as_slice()) {
            for (p, &q) in x.iter_mut().zip(y) {
                *p = f(*p, q);
            }
        } else {
            Zip::from(a).and(b).for_each(|p, &q| *p = f(*p, q));
        }
        return Ok(());
    }
    let shape = a.shape().to_vec();
    let bv = bview(op, b, &shape)?;
    if let (1, Some(&q)) = (b.len(), b.first()) {
        map1_inplace(a, |p| f(p, q));
        return Ok(());
    }
    if a.ndim() == 0 || !a.is_standard_layout() {
        Zip::from(a).and(&bv).for_each(|p, &q| *p = f(*p, q));
        return Ok(());
    }
    Zip::from(a.rows_mut())
        .and(bv.rows())
        .for_each(|mut ra, rb| {
            let repeated = match (rb.strides(), rb.first()) {
                ([0], Some(&q)) => Some(q),
                _ => None,
            };
            if let Some(x) = ra.as_slice_mut() {
                if let Some(y) = rb.as_slice() {
                    for (p, &q) in x.iter_mut().zip(y) {
                        *p = f(*p, q);
                    }
                    return;
                }
                if let Some(q) = repeated {
                    for p in x {
                        *p = f(*p, q);
                    }
                    return;
                }
            }
            Zip::from(&mut ra).and(&rb).for_each(|p, &q| *p = f(*p, q));
        });
    Ok(())
}

impl<T: Copy> Rhs<'_, T> {
    /// `a = f(a, rhs)` elementwise in `a`'s buffer (`f(scalar, a)` for a scalar on the left).
    #[inline]
    fn apply_inplace(&self, op: &str, a: &mut ArrayD<T>, f: impl Fn(T, T) -> T) -> Result<()> {
        match *self {
            Rhs::Array(b) => zip2_inplace(op, a, b, f)?,
            Rhs::Scalar { value, left: false } => map1_inplace(a, |v| f(v, value)),
            Rhs::Scalar { value, left: true } => map1_inplace(a, |v| f(value, v)),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Per-type scalar operations
// ---------------------------------------------------------------------------------------

/// Arithmetic available on every element type (bool versions are only reached where NumPy
/// defines them; the others are harmless fallbacks).
pub(crate) trait Num: Element {
    /// True for signed integers (negative exponents must be rejected).
    const SIGNED_INT: bool;
    fn k_neg(self) -> Self;
    fn k_abs(self) -> Self;
    fn k_square(self) -> Self;
    fn k_sign(self) -> Self;
    fn k_floor(self) -> Self;
    fn k_ceil(self) -> Self;
    fn k_round(self) -> Self;
    fn k_trunc(self) -> Self;
    fn k_is_finite(self) -> bool;
    fn k_is_inf(self) -> bool;
    fn k_is_negative(self) -> bool;
    fn k_add(self, o: Self) -> Self;
    fn k_sub(self, o: Self) -> Self;
    fn k_mul(self, o: Self) -> Self;
    fn k_floordiv(self, o: Self) -> Self;
    fn k_mod(self, o: Self) -> Self;
    fn k_pow(self, o: Self) -> Self;
    fn k_minimum(self, o: Self) -> Self;
    fn k_maximum(self, o: Self) -> Self;
    fn k_fmin(self, o: Self) -> Self;
    fn k_fmax(self, o: Self) -> Self;
}

/// Bitwise operations (bool and integers).
pub(crate) trait Bits: Element {
    fn k_and(self, o: Self) -> Self;
    fn k_or(self, o: Self) -> Self;
    fn k_xor(self, o: Self) -> Self;
}

/// Float-only operations (float32 and float64).
pub(crate) trait FloatK: Num {
    fn k_div(self, o: Self) -> Self;
    fn k_atan2(self, o: Self) -> Self;
    fn k_hypot(self, o: Self) -> Self;
}

macro_rules! impl_int_common {
    () => {
        #[inline(always)]
        fn k_square(self) -> Self {
            self.wrapping_mul(self)
        }
        #[inline(always)]
        fn k_floor(self) -> Self {
            self
        }
        #[inline(always)]
        fn k_ceil(self) -> Self {
            self
        }
        #[inline(always)]
        fn k_round(self) -> Self {
            self
        }
        #[inline(always)]
        fn k_trunc(self) -> Self {
            self
        }
        #[inline(always)]
        fn k_is_finite(self) -> bool {
            true
        }
        #[inline(always)]
        fn k_is_inf(self) -> bool {
            false
        }
        #[inline(always)]
        fn k_add(self, o: Self) -> Self {
            self.wrapping_add(o)
        }
        #[inline(always)]
        fn k_sub(self, o: Self) -> Self {
            self.wrapping_sub(o)
        }
        #[inline(always)]
        fn k_mul(self, o: Self) -> Self {
            self.wrapping_mul(o)
        }
        #[inline(always)]
        fn k_minimum(self, o: Self) -> Self {
            if o < self { o } else { self }
        }
        #[inline(always)]
        fn k_maximum(self, o: Self) -> Self {
            if o > self { o } else { self }
        }
        #[inline(always)]
        fn k_fmin(self, o: Self) -> Self {
            if o < self { o } else { self }
        }
        #[inline(always)]
        fn k_fmax(self, o: Self) -> Self {
            if o > self { o } else { self }
        }
    };
}

/// Wrapping integer power by squaring (exponent as u64).
macro_rules! wrapping_pow_u64 {
    ($base:expr, $exp:expr, $t:ty) => {{
        let mut base: $t = $base;
        let mut e: u64 = $exp;
        let mut acc: $t = 1;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.wrapping_mul(base);
            }
            e >>= 1;
            if e > 0 {
                base = base.wrapping_mul(base);
            }
        }
        acc
    }};
}

macro_rules! impl_signed {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const SIGNED_INT: bool = true;
            impl_int_common!();
            #[inline(always)]
            fn k_neg(self) -> Self { self.wrapping_neg() }
            #[inline(always)]
            fn k_abs(self) -> Self { self.wrapping_abs() }
            #[inline(always)]
            fn k_sign(self) -> Self { self.signum() }
            #[inline(always)]
            fn k_is_negative(self) -> bool { self < 0 }
            #[inline(always)]
            fn k_floordiv(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let q = self.wrapping_div(o);
                if self.wrapping_rem(o) != 0 && ((self < 0) != (o < 0)) { q.wrapping_sub(1) } else { q }
            }
            #[inline(always)]
            fn k_mod(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                if r != 0 && ((r < 0) != (o < 0)) { r.wrapping_add(o) } else { r }
            }
            #[inline(always)]
            fn k_pow(self, o: Self) -> Self {
                // Negative exponents are rejected before the loop runs.
                if o < 0 { 0 } else { wrapping_pow_u64!(self, o as u64, $t) }
            }
        }
        impl Bits for $t {
            #[inline(always)]
            fn k_and(self, o: Self) -> Self { self & o }
            #[inline(always)]
            fn k_or(self, o: Self) -> Self { self | o }
            #[inline(always)]
            fn k_xor(self, o: Self) -> Self { self ^ o }
        }
    )*};
}
impl_signed!(i8, i16, i32, i64);

macro_rules! impl_unsigned {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const SIGNED_INT: bool = false;
            impl_int_common!();
            #[inline(always)]
            fn k_neg(self) -> Self { self.wrapping_neg() }
            #[inline(always)]
            fn k_abs(self) -> Self { self }
            #[inline(always)]
            fn k_sign(self) -> Self { Self::from(self != 0) }
            #[inline(always)]
            fn k_is_negative(self) -> bool { false }
            #[inline(always)]
            fn k_floordiv(self, o: Self) -> Self { if o == 0 { 0 } else { self / o } }
            #[inline(always)]
            fn k_mod(self, o: Self) -> Self { if o == 0 { 0 } else { self % o } }
            #[inline(always)]
            #[allow(clippy::cast_lossless)]
            fn k_pow(self, o: Self) -> Self { wrapping_pow_u64!(self, o as u64, $t) }
        }
        impl Bits for $t {
            #[inline(always)]
            fn k_and(self, o: Self) -> Self { self & o }
            #[inline(always)]
            fn k_or(self, o: Self) -> Self { self | o }
            #[inline(always)]
            fn k_xor(self, o: Self) -> Self { self ^ o }
        }
    )*};
}
impl_unsigned!(u8, u16, u32, u64);

macro_rules! impl_float {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const SIGNED_INT: bool = false;
            #[inline(always)]
            fn k_neg(self) -> Self { -self }
            #[inline(always)]
            fn k_abs(self) -> Self { self.abs() }
            #[inline(always)]
            fn k_square(self) -> Self { self * self }
            #[inline(always)]
            fn k_sign(self) -> Self {
                if self > 0.0 { 1.0 } else if self < 0.0 { -1.0 } else { self }
            }
            #[inline(always)]
            fn k_floor(self) -> Self { self.floor() }
            #[inline(always)]
            fn k_ceil(self) -> Self { self.ceil() }
            #[inline(always)]
            fn k_round(self) -> Self { self.round_ties_even() }
            #[inline(always)]
            fn k_trunc(self) -> Self { self.trunc() }
            #[inline(always)]
            fn k_is_finite(self) -> bool { self.is_finite() }
            #[inline(always)]
            fn k_is_inf(self) -> bool { self.is_infinite() }
            #[inline(always)]
            fn k_is_negative(self) -> bool { false }
            #[inline(always)]
            fn k_add(self, o: Self) -> Self { self + o }
            #[inline(always)]
            fn k_sub(self, o: Self) -> Self { self - o }
            #[inline(always)]
            fn k_mul(self, o: Self) -> Self { self * o }
            /// NumPy's `npy_floor_divide` (via `npy_divmod`).
            #[inline(always)]
            fn k_floordiv(self, o: Self) -> Self {
                let (a, b) = (self, o);
                if b == 0.0 || a.is_nan() || b.is_nan() {
                    return a / b;
                }
                let m = a % b;
                let mut div = (a - m) / b;
                if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
                    div -= 1.0;
                }
                if div != 0.0 {
                    let mut fl = div.floor();
                    if div - fl > 0.5 {
                        fl += 1.0;
                    }
                    fl
                } else {
                    (0.0 as $t).copysign(a / b)
                }
            }
            /// NumPy's `npy_remainder` (Python semantics: the sign of the divisor).
            #[inline(always)]
            fn k_mod(self, o: Self) -> Self {
                let (a, b) = (self, o);
                let m = a % b;
                if b == 0.0 {
                    return m;
                }
                if m != 0.0 {
                    if (b < 0.0) != (m < 0.0) { m + b } else { m }
                } else {
                    (0.0 as $t).copysign(b)
                }
            }
            #[inline(always)]
            fn k_pow(self, o: Self) -> Self { self.powf(o) }
            #[inline(always)]
            fn k_minimum(self, o: Self) -> Self {
                if self.is_nan() { self } else if o.is_nan() || o < self { o } else { self }
            }
            #[inline(always)]
            fn k_maximum(self, o: Self) -> Self {
                if self.is_nan() { self } else if o.is_nan() || o > self { o } else { self }
            }
            #[inline(always)]
            fn k_fmin(self, o: Self) -> Self { self.min(o) }
            #[inline(always)]
            fn k_fmax(self, o: Self) -> Self { self.max(o) }
        }
        impl FloatK for $t {
            #[inline(always)]
            fn k_div(self, o: Self) -> Self { self / o }
            #[inline(always)]
            fn k_atan2(self, o: Self) -> Self { self.atan2(o) }
            #[inline(always)]
            fn k_hypot(self, o: Self) -> Self { self.hypot(o) }
        }
    )*};
}
impl_float!(f32, f64);

impl Num for bool {
    const SIGNED_INT: bool = false;
    fn k_neg(self) -> Self {
        self
    }
    fn k_abs(self) -> Self {
        self
    }
    fn k_square(self) -> Self {
        self
    }
    fn k_sign(self) -> Self {
        self
    }
    fn k_floor(self) -> Self {
        self
    }
    fn k_ceil(self) -> Self {
        self
    }
    fn k_round(self) -> Self {
        self
    }
    fn k_trunc(self) -> Self {
        self
    }
    fn k_is_finite(self) -> bool {
        true
    }
    fn k_is_inf(self) -> bool {
        false
    }
    fn k_is_negative(self) -> bool {
        false
    }
    #[inline(always)]
    fn k_add(self, o: Self) -> Self {
        self | o
    }
    fn k_sub(self, o: Self) -> Self {
        self ^ o
    }
    #[inline(always)]
    fn k_mul(self, o: Self) -> Self {
        self & o
    }
    fn k_floordiv(self, o: Self) -> Self {
        self & o
    }
    fn k_mod(self, _o: Self) -> Self {
        false
    }
    fn k_pow(self, o: Self) -> Self {
        self || !o
    }
    #[inline(always)]
    fn k_minimum(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn k_maximum(self, o: Self) -> Self {
        self | o
    }
    #[inline(always)]
    fn k_fmin(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn k_fmax(self, o: Self) -> Self {
        self | o
    }
}

impl Bits for bool {
    #[inline(always)]
    fn k_and(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn k_or(self, o: Self) -> Self {
        self | o
    }
    #[inline(always)]
    fn k_xor(self, o: Self) -> Self {
        self ^ o
    }
}

// ---------------------------------------------------------------------------------------
// Unary
// ---------------------------------------------------------------------------------------

/// Runs `$apply` with `$f` bound to the float function of the float-math op `$op`.
macro_rules! with_float_fn {
    ($op:expr, $t:ty, $f:ident => $apply:expr, $other:expr) => {{
        use UnaryOp::*;
        match $op {
            Sqrt => {
                let $f = |v: $t| v.sqrt();
                $apply
            }
            Exp => {
                let $f = |v: $t| v.exp();
                $apply
            }
            Log => {
                let $f = |v: $t| v.ln();
                $apply
            }
            Log10 => {
                let $f = |v: $t| v.log10();
                $apply
            }
            Log2 => {
                let $f = |v: $t| v.log2();
                $apply
            }
            Log1p => {
                let $f = |v: $t| v.ln_1p();
                $apply
            }
            Expm1 => {
                let $f = |v: $t| v.exp_m1();
                $apply
            }
            Sin => {
                let $f = |v: $t| v.sin();
                $apply
            }
            Cos => {
                let $f = |v: $t| v.cos();
                $apply
            }
            Tan => {
                let $f = |v: $t| v.tan();
                $apply
            }
            Arcsin => {
                let $f = |v: $t| v.asin();
                $apply
            }
            Arccos => {
                let $f = |v: $t| v.acos();
                $apply
            }
            Arctan => {
                let $f = |v: $t| v.atan();
                $apply
            }
            Sinh => {
                let $f = |v: $t| v.sinh();
                $apply
            }
            Cosh => {
                let $f = |v: $t| v.cosh();
                $apply
            }
            Tanh => {
                let $f = |v: $t| v.tanh();
                $apply
            }
            Reciprocal => {
                let $f = |v: $t| 1.0 / v;
                $apply
            }
            Deg2Rad => {
                let $f = |v: $t| v.to_radians();
                $apply
            }
            Rad2Deg => {
                let $f = |v: $t| v.to_degrees();
                $apply
            }
            _ => $other,
        }
    }};
}

fn float_math(op: UnaryOp, x: &Chunk, out: DType) -> Result<Chunk> {
    let internal = || {
        kernel_err(
            op.name(),
            format!("internal: not a float op for {}", x.dtype()),
        )
    };
    match x {
        Chunk::F32(a) => with_float_fn!(op, f32, f => Ok(Chunk::F32(map1(a, f))), Err(internal())),
        Chunk::F64(a) => with_float_fn!(op, f64, f => Ok(Chunk::F64(map1(a, f))), Err(internal())),
        _ => {
            // Integers and bool: convert once to the float dtype, then map in place.
            let mut c = x.astype(out);
            match &mut c {
                Chunk::F32(a) => {
                    with_float_fn!(op, f32, f => a.mapv_inplace(f), return Err(internal()))
                }
                Chunk::F64(a) => {
                    with_float_fn!(op, f64, f => a.mapv_inplace(f), return Err(internal()))
                }
                _ => return Err(internal()),
            }
            Ok(c)
        }
    }
}

/// `v == 0` (false for NaN).
#[inline(always)]
fn is_zero<T: Element>(v: T) -> bool {
    v == T::default()
}

/// Applies a unary ufunc to a block (see [`unary_result_dtype`] for the result dtype).
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::{UnaryOp, unary};
/// let x = Chunk::from_f64_vec(&[3], vec![0.5, 1.5, 2.5], DType::F32).unwrap();
/// assert_eq!(unary(UnaryOp::Round, &x).unwrap().to_f64_vec(), vec![0.0, 2.0, 2.0]);
/// ```
pub fn unary(op: UnaryOp, x: &Chunk) -> Result<Chunk> {
    use UnaryOp::*;
    let out = unary_result_dtype(op, x.dtype())?;
    if op.is_float_math() {
        return float_math(op, x, out);
    }
    Ok(match op {
        IsNan | IsNull => Chunk::Bool(crate::with_chunk!(x, a => map1(a, |v| v.is_nan()))),
        NotNull => Chunk::Bool(crate::with_chunk!(x, a => map1(a, |v| !v.is_nan()))),
        IsFinite => Chunk::Bool(crate::with_chunk!(x, a => map1(a, Num::k_is_finite))),
        IsInf => Chunk::Bool(crate::with_chunk!(x, a => map1(a, Num::k_is_inf))),
        LogicalNot => Chunk::Bool(crate::with_chunk!(x, a => map1(a, is_zero))),
        Neg => map_chunk!(x, a => map1(a, Num::k_neg)),
        Abs => map_chunk!(x, a => map1(a, Num::k_abs)),
        Square => map_chunk!(x, a => map1(a, Num::k_square)),
        Sign => map_chunk!(x, a => map1(a, Num::k_sign)),
        Floor | Ceil | Round | Trunc if !x.dtype().is_float() => x.clone(),
        Floor => map_chunk!(x, a => map1(a, Num::k_floor)),
        Ceil => map_chunk!(x, a => map1(a, Num::k_ceil)),
        Round => map_chunk!(x, a => map1(a, Num::k_round)),
        Trunc => map_chunk!(x, a => map1(a, Num::k_trunc)),
        _ => return Err(kernel_err(op.name(), "internal: unhandled unary op")),
    })
}

// ---------------------------------------------------------------------------------------
// Binary
// ---------------------------------------------------------------------------------------

/// Rejects negative exponents of a signed integer `power` (NumPy's `ValueError`); the
/// exponents are `rhs` (or `a` when a scalar base is on the left).
fn check_pow_exponents<T: Num>(n: &str, a: &ArrayD<T>, rhs: &Rhs<'_, T>) -> Result<()> {
    if T::SIGNED_INT {
        let negative = match rhs {
            Rhs::Array(b) => b.iter().any(|v| v.k_is_negative()),
            Rhs::Scalar { value, left: false } => value.k_is_negative(),
            Rhs::Scalar { left: true, .. } => a.iter().any(|v| v.k_is_negative()),
        };
        if negative {
            return Err(kernel_err(
                n,
                format!(
                    "integers to negative integer powers are not allowed ({})",
                    T::DTYPE
                ),
            ));
        }
    }
    Ok(())
}

/// Arithmetic and comparison ops on one element type.
fn binary_num<T: Num>(op: BinaryOp, a: &ArrayD<T>, rhs: Rhs<'_, T>) -> Result<Chunk> {
    use BinaryOp::*;
    let n = op.name();
    Ok(match op {
        Add => T::wrap(rhs.apply(n, a, T::k_add)?),
        Sub => T::wrap(rhs.apply(n, a, T::k_sub)?),
        Mul => T::wrap(rhs.apply(n, a, T::k_mul)?),
        FloorDiv => T::wrap(rhs.apply(n, a, T::k_floordiv)?),
        Mod => T::wrap(rhs.apply(n, a, T::k_mod)?),
        Pow => {
            check_pow_exponents(n, a, &rhs)?;
            T::wrap(rhs.apply(n, a, T::k_pow)?)
        }
        Minimum => T::wrap(rhs.apply(n, a, T::k_minimum)?),
        Maximum => T::wrap(rhs.apply(n, a, T::k_maximum)?),
        Fmin => T::wrap(rhs.apply(n, a, T::k_fmin)?),
        Fmax => T::wrap(rhs.apply(n, a, T::k_fmax)?),
        Eq => Chunk::Bool(rhs.apply(n, a, |p, q| p == q)?),
        Ne => Chunk::Bool(rhs.apply(n, a, |p, q| p != q)?),
        Lt => Chunk::Bool(rhs.apply(n, a, |p, q| p < q)?),
        Le => Chunk::Bool(rhs.apply(n, a, |p, q| p <= q)?),
        Gt => Chunk::Bool(rhs.apply(n, a, |p, q| p > q)?),
        Ge => Chunk::Bool(rhs.apply(n, a, |p, q| p >= q)?),
        Div | Atan2 | Hypot | And | Or | Xor => {
            return Err(kernel_err(
                n,
                format!("internal: not an arithmetic op on {}", T::DTYPE),
            ));
        }
    })
}

/// Float-only ops.
fn binary_float<T: FloatK>(op: BinaryOp, a: &ArrayD<T>, rhs: Rhs<'_, T>) -> Result<Chunk> {
    use BinaryOp::*;
    let n = op.name();
    Ok(T::wrap(match op {
        Div => rhs.apply(n, a, T::k_div)?,
        Atan2 => rhs.apply(n, a, T::k_atan2)?,
        Hypot => rhs.apply(n, a, T::k_hypot)?,
        _ => return binary_num(op, a, rhs),
    }))
}

/// Bitwise ops.
fn binary_bits<T: Bits>(op: BinaryOp, a: &ArrayD<T>, rhs: Rhs<'_, T>) -> Result<Chunk> {
    use BinaryOp::*;
    let n = op.name();
    Ok(T::wrap(match op {
        And => rhs.apply(n, a, T::k_and)?,
        Or => rhs.apply(n, a, T::k_or)?,
        Xor => rhs.apply(n, a, T::k_xor)?,
        _ => {
            return Err(kernel_err(
                n,
                format!("internal: not a bitwise op on {}", T::DTYPE),
            ));
        }
    }))
}

/// Matches the bool and integer variants of a chunk (the [`Bits`] types); floats are a
/// dtype error of `$op`.
macro_rules! bits_match {
    ($op:expr, $c:expr, $x:ident => $body:expr) => {
        match $c {
            Chunk::Bool($x) => $body,
            Chunk::I8($x) => $body,
            Chunk::I16($x) => $body,
            Chunk::I32($x) => $body,
            Chunk::I64($x) => $body,
            Chunk::U8($x) => $body,
            Chunk::U16($x) => $body,
            Chunk::U32($x) => $body,
            Chunk::U64($x) => $body,
            other => Err(dtype_err(
                $op.name(),
                format!("not supported for {}", other.dtype()),
            )),
        }
    };
}

/// Runs `op` on two chunks already converted to the operand dtype.
fn run_binary(op: BinaryOp, a: &Chunk, b: &Chunk) -> Result<Chunk> {
    use BinaryOp::*;
    let n = op.name();
    match op {
        Div | Atan2 | Hypot => match (a, b) {
            (Chunk::F32(x), Chunk::F32(y)) => binary_float(op, x, Rhs::Array(y)),
            (Chunk::F64(x), Chunk::F64(y)) => binary_float(op, x, Rhs::Array(y)),
            _ => Err(kernel_err(
                n,
                format!("internal: {} and {} are not floats", a.dtype(), b.dtype()),
            )),
        },
        And | Or | Xor => bits_match!(op, a, x => bits_arrays(op, x, b)),
        _ => same_typed!(n, a, b, x, y => binary_num(op, x, Rhs::Array(y))),
    }
}

/// A bitwise op between a typed array and a chunk of the same dtype.
fn bits_arrays<T: Bits>(op: BinaryOp, a: &ArrayD<T>, b: &Chunk) -> Result<Chunk> {
    let b = T::view(b).ok_or_else(|| {
        kernel_err(
            op.name(),
            format!("internal dtype mismatch: {} vs {}", T::DTYPE, b.dtype()),
        )
    })?;
    binary_bits(op, a, Rhs::Array(b))
}

/// Applies a binary ufunc to two blocks with NumPy broadcasting and promotion.
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::{BinaryOp, binary};
/// let a = Chunk::from_f64_vec(&[2, 1], vec![1.0, 2.0], DType::I32).unwrap();
/// let b = Chunk::from_f64_vec(&[3], vec![10.0, 20.0, 30.0], DType::U8).unwrap();
/// let c = binary(BinaryOp::Add, &a, &b).unwrap();
/// assert_eq!(c.dtype(), DType::I32);
/// assert_eq!(c.shape(), &[2, 3]);
/// assert_eq!(c.to_f64_vec(), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
/// ```
pub fn binary(op: BinaryOp, a: &Chunk, b: &Chunk) -> Result<Chunk> {
    let plan = plan_for(op, promote(a.dtype(), b.dtype()), a.dtype(), b.dtype())?;
    if a.shape() != b.shape() {
        broadcast_shapes(op.name(), &[a.shape(), b.shape()])?;
    }
    let (ca, cb) = (cast_cow(a, plan.operand), cast_cow(b, plan.operand));
    run_binary(op, &ca, &cb)
}

/// True when the integer scalar `s` is representable in the integer (or bool) dtype `d`.
fn scalar_fits(s: Scalar, d: DType) -> bool {
    let v: i128 = match s {
        Scalar::Bool(b) => i128::from(b),
        Scalar::Int(i) => i128::from(i),
        Scalar::UInt(u) => i128::from(u),
        Scalar::Float(_) => return true,
    };
    let (lo, hi): (i128, i128) = match d {
        DType::Bool => (0, 1),
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::I32 => (i32::MIN.into(), i32::MAX.into()),
        DType::I64 => (i64::MIN.into(), i64::MAX.into()),
        DType::U8 => (0, u8::MAX.into()),
        DType::U16 => (0, u16::MAX.into()),
        DType::U32 => (0, u32::MAX.into()),
        DType::U64 => (0, u64::MAX.into()),
        DType::F32 | DType::F64 => return true,
    };
    (lo..=hi).contains(&v)
}

/// The constant result of comparing an integer array with an integer scalar outside its
/// range (`above`: the scalar is larger than every value), scalar on the right.
fn out_of_range_comparison(op: BinaryOp, above: bool) -> bool {
    use BinaryOp::*;
    match op {
        Eq => false,
        Ne => true,
        Lt | Le => above,
        _ => !above,
    }
}

/// Applies a binary ufunc to a block and a Python scalar, with NEP 50 weak promotion
/// (`float32 + 2.5` stays float32). `scalar_on_left` computes `op(s, x)` (e.g. `2 - x`).
///
/// An integer scalar that does not fit the array's integer dtype is an error for arithmetic
/// (NumPy 2's `OverflowError`), while comparisons give the exact constant answer.
///
/// ```
/// use gridflow_array::{Chunk, DType, Scalar};
/// use gridflow_array::kernels::{BinaryOp, binary_scalar};
/// let x = Chunk::from_f64_vec(&[2], vec![1.0, 5.0], DType::F32).unwrap();
/// let y = binary_scalar(BinaryOp::Sub, &x, Scalar::Float(2.5), true).unwrap();
/// assert_eq!(y.dtype(), DType::F32);
/// assert_eq!(y.to_f64_vec(), vec![1.5, -2.5]);
/// ```
pub fn binary_scalar(op: BinaryOp, a: &Chunk, s: Scalar, scalar_on_left: bool) -> Result<Chunk> {
    let p = s.promote_with(a.dtype());
    let plan = plan_for(op, p, a.dtype(), s.natural_dtype())?;
    let n = op.name();
    if !scalar_fits(s, plan.operand) {
        if op.is_comparison() {
            let above = s.as_f64() > 0.0;
            let eff = if scalar_on_left {
                op.swapped_comparison()
            } else {
                op
            };
            let v = out_of_range_comparison(eff, above);
            return Ok(Chunk::Bool(ArrayD::from_elem(IxDyn(a.shape()), v)));
        }
        return Err(dtype_err(
            n,
            format!("Python integer {s} out of bounds for {}", plan.operand),
        ));
    }
    let ca = cast_cow(a, plan.operand);
    let left = scalar_on_left;
    macro_rules! rhs {
        ($t:ty) => {
            Rhs::Scalar {
                value: <$t as Element>::from_scalar(s),
                left,
            }
        };
    }
    use BinaryOp::*;
    match (op, ca.as_ref()) {
        (Div | Atan2 | Hypot, Chunk::F32(x)) => binary_float(op, x, rhs!(f32)),
        (Div | Atan2 | Hypot, Chunk::F64(x)) => binary_float(op, x, rhs!(f64)),
        (Div | Atan2 | Hypot, c) => Err(kernel_err(
            n,
            format!("internal: {} is not a float", c.dtype()),
        )),
        (And | Or | Xor, c) => bits_match!(op, c, x => binary_bits(op, x, Rhs::Scalar {
            value: Element::from_scalar(s), left,
        })),
        (_, c) => crate::with_chunk!(c, x => binary_num(op, x, Rhs::Scalar {
            value: Element::from_scalar(s), left,
        })),
    }
}

// ---------------------------------------------------------------------------------------
// Owned (in-place) variants
// ---------------------------------------------------------------------------------------

/// True when the chunk's array is in standard (C-contiguous) layout.
fn is_standard(x: &Chunk) -> bool {
    crate::with_chunk!(x, a => a.is_standard_layout())
}

/// Maps a bool chunk in place (the predicates on a bool input).
fn bool_map_inplace(op: UnaryOp, x: &mut Chunk, f: impl Fn(bool) -> bool) -> Result<()> {
    match x {
        Chunk::Bool(a) => {
            map1_inplace(a, f);
            Ok(())
        }
        other => Err(kernel_err(
            op.name(),
            format!("internal: in-place predicate on {}", other.dtype()),
        )),
    }
}

/// [`unary`] on an owned block, computed in the block's buffer when the result has the
/// input's dtype and the block is in standard layout (otherwise it is [`unary`]).
///
/// The result (dtype, values, errors) is exactly that of [`unary`]: float math keeps the
/// buffer of a float32/float64 block, `floor`/`ceil`/`round`/`trunc` of an integer block
/// return it unchanged, the predicates keep it only for a bool block.
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::{UnaryOp, unary_owned};
/// let x = Chunk::from_f64_vec(&[3], vec![1.0, 4.0, 9.0], DType::F32).unwrap();
/// assert_eq!(unary_owned(UnaryOp::Sqrt, x).unwrap().to_f64_vec(), vec![1.0, 2.0, 3.0]);
/// ```
pub fn unary_owned(op: UnaryOp, x: Chunk) -> Result<Chunk> {
    use UnaryOp::*;
    let out = unary_result_dtype(op, x.dtype())?;
    if out != x.dtype() || !is_standard(&x) {
        return unary(op, &x);
    }
    let mut x = x;
    let internal = |d: DType| {
        kernel_err(
            op.name(),
            format!("internal: no in-place {} for {d}", op.name()),
        )
    };
    if op.is_float_math() {
        match &mut x {
            Chunk::F32(a) => {
                with_float_fn!(op, f32, f => map1_inplace(a, f), return Err(internal(out)))
            }
            Chunk::F64(a) => {
                with_float_fn!(op, f64, f => map1_inplace(a, f), return Err(internal(out)))
            }
            _ => return Err(internal(out)),
        }
        return Ok(x);
    }
    match op {
        Floor | Ceil | Round | Trunc if !out.is_float() => {}
        IsNan | IsNull => bool_map_inplace(op, &mut x, Element::is_nan)?,
        NotNull => bool_map_inplace(op, &mut x, |v| !v.is_nan())?,
        IsFinite => bool_map_inplace(op, &mut x, Num::k_is_finite)?,
        IsInf => bool_map_inplace(op, &mut x, Num::k_is_inf)?,
        LogicalNot => bool_map_inplace(op, &mut x, is_zero)?,
        Neg => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_neg)),
        Abs => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_abs)),
        Square => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_square)),
        Sign => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_sign)),
        Floor => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_floor)),
        Ceil => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_ceil)),
        Round => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_round)),
        Trunc => crate::with_chunk!(&mut x, a => map1_inplace(a, Num::k_trunc)),
        _ => return Err(internal(out)),
    }
    Ok(x)
}

/// The in-place form of [`binary_num`]: the ops whose result has the operand dtype.
fn binary_num_inplace<T: Num>(op: BinaryOp, a: &mut ArrayD<T>, rhs: &Rhs<'_, T>) -> Result<()> {
    use BinaryOp::*;
    let n = op.name();
    match op {
        Add => rhs.apply_inplace(n, a, T::k_add),
        Sub => rhs.apply_inplace(n, a, T::k_sub),
        Mul => rhs.apply_inplace(n, a, T::k_mul),
        FloorDiv => rhs.apply_inplace(n, a, T::k_floordiv),
        Mod => rhs.apply_inplace(n, a, T::k_mod),
        Pow => {
            check_pow_exponents(n, a, rhs)?;
            rhs.apply_inplace(n, a, T::k_pow)
        }
        Minimum => rhs.apply_inplace(n, a, T::k_minimum),
        Maximum => rhs.apply_inplace(n, a, T::k_maximum),
        Fmin => rhs.apply_inplace(n, a, T::k_fmin),
        Fmax => rhs.apply_inplace(n, a, T::k_fmax),
        Eq | Ne | Lt | Le | Gt | Ge | Div | Atan2 | Hypot | And | Or | Xor => Err(kernel_err(
            n,
            format!("internal: no in-place {n} on {}", T::DTYPE),
        )),
    }
}

/// The in-place form of [`binary_float`].
fn binary_float_inplace<T: FloatK>(
    op: BinaryOp,
    a: &mut ArrayD<T>,
    rhs: &Rhs<'_, T>,
) -> Result<()> {
    use BinaryOp::*;
    let n = op.name();
    match op {
        Div => rhs.apply_inplace(n, a, T::k_div),
        Atan2 => rhs.apply_inplace(n, a, T::k_atan2),
        Hypot => rhs.apply_inplace(n, a, T::k_hypot),
        _ => binary_num_inplace(op, a, rhs),
    }
}

/// The in-place form of [`binary_bits`].
fn binary_bits_inplace<T: Bits>(op: BinaryOp, a: &mut ArrayD<T>, rhs: &Rhs<'_, T>) -> Result<()> {
    use BinaryOp::*;
    let n = op.name();
    match op {
        And => rhs.apply_inplace(n, a, T::k_and),
        Or => rhs.apply_inplace(n, a, T::k_or),
        Xor => rhs.apply_inplace(n, a, T::k_xor),
        _ => Err(kernel_err(
            n,
            format!("internal: not a bitwise op on {}", T::DTYPE),
        )),
    }
}

/// The comparisons of bool operands in place (the only comparisons whose result dtype is
/// the operand dtype).
fn compare_bool_inplace(op: BinaryOp, a: &mut ArrayD<bool>, rhs: &Rhs<'_, bool>) -> Result<()> {
    use BinaryOp::*;
    let n = op.name();
    match op {
        Eq => rhs.apply_inplace(n, a, |p, q| p == q),
        Ne => rhs.apply_inplace(n, a, |p, q| p != q),
        Lt => rhs.apply_inplace(n, a, |p, q| !p & q),
        Le => rhs.apply_inplace(n, a, |p, q| p <= q),
        Gt => rhs.apply_inplace(n, a, |p, q| p & !q),
        Ge => rhs.apply_inplace(n, a, |p, q| p >= q),
        _ => Err(kernel_err(n, "internal: not a comparison")),
    }
}

/// A bitwise op in place between a typed array and a chunk of the same dtype.
fn bits_arrays_inplace<T: Bits>(op: BinaryOp, a: &mut ArrayD<T>, b: &Chunk) -> Result<()> {
    let b = T::view(b).ok_or_else(|| {
        kernel_err(
            op.name(),
            format!("internal dtype mismatch: {} vs {}", T::DTYPE, b.dtype()),
        )
    })?;
    binary_bits_inplace(op, a, &Rhs::Array(b))
}

/// [`binary`] on an owned left operand, computed in `a`'s buffer when the result has `a`'s
/// dtype and shape (`b` broadcasts to `a`), `b` needs no more than a dtype conversion to
/// `a`'s dtype and `a` is in standard layout; otherwise it is [`binary`].
///
/// The result (dtype, values, errors) is exactly that of [`binary`].
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::{BinaryOp, binary_owned};
/// let a = Chunk::from_f64_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0], DType::F64).unwrap();
/// let b = Chunk::from_f64_vec(&[2], vec![10.0, 20.0], DType::I32).unwrap();
/// let c = binary_owned(BinaryOp::Add, a, &b).unwrap();
/// assert_eq!(c.dtype(), DType::F64);
/// assert_eq!(c.to_f64_vec(), vec![11.0, 22.0, 13.0, 24.0]);
/// ```
pub fn binary_owned(op: BinaryOp, a: Chunk, b: &Chunk) -> Result<Chunk> {
    use BinaryOp::*;
    let n = op.name();
    let plan = plan_for(op, promote(a.dtype(), b.dtype()), a.dtype(), b.dtype())?;
    let keeps_shape = a.shape() == b.shape()
        || broadcast_shapes(n, &[a.shape(), b.shape()])?.as_slice() == a.shape();
    if !keeps_shape || plan.operand != a.dtype() || plan.result != a.dtype() || !is_standard(&a) {
        return binary(op, &a, b);
    }
    let cb = cast_cow(b, plan.operand);
    let mut a = a;
    match (op, &mut a, cb.as_ref()) {
        (Div | Atan2 | Hypot, Chunk::F32(x), Chunk::F32(y)) => {
            binary_float_inplace(op, x, &Rhs::Array(y))
        }
        (Div | Atan2 | Hypot, Chunk::F64(x), Chunk::F64(y)) => {
            binary_float_inplace(op, x, &Rhs::Array(y))
        }
        (Div | Atan2 | Hypot, x, y) => Err(kernel_err(
            n,
            format!("internal: {} and {} are not floats", x.dtype(), y.dtype()),
        )),
        (And | Or | Xor, x, y) => bits_match!(op, x, x => bits_arrays_inplace(op, x, y)),
        (Eq | Ne | Lt | Le | Gt | Ge, Chunk::Bool(x), Chunk::Bool(y)) => {
            compare_bool_inplace(op, x, &Rhs::Array(y))
        }
        (Eq | Ne | Lt | Le | Gt | Ge, x, _) => Err(kernel_err(
            n,
            format!("internal: in-place comparison on {}", x.dtype()),
        )),
        (_, x, y) => same_typed!(n, x, y, x, y => binary_num_inplace(op, x, &Rhs::Array(y))),
    }?;
    Ok(a)
}

/// [`binary_scalar`] on an owned block, computed in the block's buffer when the result has
/// the block's dtype (so the scalar is converted to it, NEP 50), the scalar fits that dtype
/// and the block is in standard layout; otherwise it is [`binary_scalar`].
///
/// The result (dtype, values, errors) is exactly that of [`binary_scalar`].
///
/// ```
/// use gridflow_array::{Chunk, DType, Scalar};
/// use gridflow_array::kernels::{BinaryOp, binary_scalar_owned};
/// let x = Chunk::from_f64_vec(&[2], vec![1.0, 5.0], DType::F32).unwrap();
/// let y = binary_scalar_owned(BinaryOp::Mul, x, Scalar::Int(2), false).unwrap();
/// let y = binary_scalar_owned(BinaryOp::Add, y, Scalar::Float(1.0), false).unwrap();
/// assert_eq!(y.dtype(), DType::F32);
/// assert_eq!(y.to_f64_vec(), vec![3.0, 11.0]);
/// ```
pub fn binary_scalar_owned(
    op: BinaryOp,
    a: Chunk,
    s: Scalar,
    scalar_on_left: bool,
) -> Result<Chunk> {
    use BinaryOp::*;
    let n = op.name();
    let plan = plan_for(op, s.promote_with(a.dtype()), a.dtype(), s.natural_dtype())?;
    if !scalar_fits(s, plan.operand)
        || plan.operand != a.dtype()
        || plan.result != a.dtype()
        || !is_standard(&a)
    {
        return binary_scalar(op, &a, s, scalar_on_left);
    }
    let left = scalar_on_left;
    let mut a = a;
    match (op, &mut a) {
        (Div | Atan2 | Hypot, Chunk::F32(x)) => binary_float_inplace(
            op,
            x,
            &Rhs::Scalar {
                value: f32::from_scalar(s),
                left,
            },
        ),
        (Div | Atan2 | Hypot, Chunk::F64(x)) => binary_float_inplace(
            op,
            x,
            &Rhs::Scalar {
                value: f64::from_scalar(s),
                left,
            },
        ),
        (Div | Atan2 | Hypot, x) => Err(kernel_err(
            n,
            format!("internal: {} is not a float", x.dtype()),
        )),
        (And | Or | Xor, x) => bits_match!(op, x, x => binary_bits_inplace(op, x, &Rhs::Scalar {
            value: Element::from_scalar(s), left,
        })),
        (Eq | Ne | Lt | Le | Gt | Ge, Chunk::Bool(x)) => compare_bool_inplace(
            op,
            x,
            &Rhs::Scalar {
                value: bool::from_scalar(s),
                left,
            },
        ),
        (Eq | Ne | Lt | Le | Gt | Ge, x) => Err(kernel_err(
            n,
            format!("internal: in-place comparison on {}", x.dtype()),
        )),
        (_, x) => crate::with_chunk!(x, x => binary_num_inplace(op, x, &Rhs::Scalar {
            value: Element::from_scalar(s), left,
        })),
    }?;
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// where
// ---------------------------------------------------------------------------------------

fn where_typed<T: Element>(
    cond: &ArrayD<bool>,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
    shape: &[usize],
) -> Result<Chunk> {
    const OP: &str = "where";
    if cond.shape() == shape
        && x.shape() == shape
        && y.shape() == shape
        && let (Some(c), Some(a), Some(b)) = (cond.as_slice(), x.as_slice(), y.as_slice())
    {
        let v: Vec<T> = c
            .iter()
            .zip(a)
            .zip(b)
            .map(|((&c, &a), &b)| if c { a } else { b })
            .collect();
        return Ok(T::wrap(from_vec(OP, shape, v)?));
    }
    let (cv, xv, yv) = (
        bview(OP, cond, shape)?,
        bview(OP, x, shape)?,
        bview(OP, y, shape)?,
    );
    Ok(T::wrap(
        Zip::from(&cv)
            .and(&xv)
            .and(&yv)
            .map_collect(|&c, &a, &b| if c { a } else { b }),
    ))
}

/// `numpy.where(cond, x, y)` on blocks: three-way broadcasting, `cond` converted to bool
/// (non-zero and NaN are true) and the result in `promote(x, y)`.
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::where_;
/// let c = Chunk::from_f64_vec(&[3], vec![1.0, 0.0, 1.0], DType::Bool).unwrap();
/// let x = Chunk::from_f64_vec(&[3], vec![1.0, 2.0, 3.0], DType::I8).unwrap();
/// let y = Chunk::from_f64_vec(&[], vec![0.5], DType::F32).unwrap();
/// let r = where_(&c, &x, &y).unwrap();
/// assert_eq!(r.dtype(), DType::F32);
/// assert_eq!(r.to_f64_vec(), vec![1.0, 0.5, 3.0]);
/// ```
pub fn where_(cond: &Chunk, x: &Chunk, y: &Chunk) -> Result<Chunk> {
    let dt = where_result_dtype(x.dtype(), y.dtype());
    let shape = broadcast_shapes("where", &[cond.shape(), x.shape(), y.shape()])?;
    let c = cast_cow(cond, DType::Bool);
    let Chunk::Bool(c) = c.as_ref() else {
        return Err(kernel_err("where", "internal: condition is not bool"));
    };
    let (xc, yc): (Cow<'_, Chunk>, Cow<'_, Chunk>) = (cast_cow(x, dt), cast_cow(y, dt));
    same_typed!("where", xc.as_ref(), yc.as_ref(), a, b => where_typed(c, a, b, &shape))
}

/// The dtype of [`mask_eq`]'s result: a float block keeps its dtype; others become float64
/// (as `where(x == fill, NaN, x)` promotes them).
pub fn mask_eq_result_dtype(x: DType) -> DType {
    if x.is_float() { x } else { DType::F64 }
}

/// `x` with every element equal to `fill` replaced by NaN: xarray's `_FillValue` /
/// `missing_value` masking (`where(x == fill, NaN, x)`), as one single-input operation so
/// that it streams and commutes with selections like any other elementwise step. The
/// comparison runs in the block's dtype (NumPy's rule for a Python scalar), so a float32
/// block equal to `float32(1e20)` is masked by a fill of `1e20`.
///
/// ```
/// use gridflow_array::{Chunk, DType, Scalar};
/// use gridflow_array::kernels::mask_eq;
/// let x = Chunk::from_f64_vec(&[3], vec![1.0, 1e20, 2.0], DType::F32).unwrap();
/// let m = mask_eq(&x, Scalar::Float(1e20)).unwrap();
/// assert!(m.to_f64_vec()[1].is_nan());
/// ```
pub fn mask_eq(x: &Chunk, fill: Scalar) -> Result<Chunk> {
    match x {
        Chunk::F32(a) => {
            let f = <f32 as Element>::from_scalar(fill);
            Ok(Chunk::F32(a.mapv(|v| if v == f { f32::NAN } else { v })))
        }
        Chunk::F64(a) => {
            let f = <f64 as Element>::from_scalar(fill);
            Ok(Chunk::F64(a.mapv(|v| if v == f { f64::NAN } else { v })))
        }
        other => {
            // Integers compare in their own dtype (an out-of-range fill matches nothing).
            let hit = binary_scalar(BinaryOp::Eq, other, fill, false)?;
            let nan = Chunk::full(&[], Scalar::Float(f64::NAN), DType::F64);
            where_(&hit, &nan, other)
        }
    }
}

/// [`mask_eq`] on an owned block, in its buffer when it is a standard-layout float block.
pub fn mask_eq_owned(x: Chunk, fill: Scalar) -> Result<Chunk> {
    match x {
        Chunk::F32(mut a) if a.is_standard_layout() => {
            let f = <f32 as Element>::from_scalar(fill);
            a.mapv_inplace(|v| if v == f { f32::NAN } else { v });
            Ok(Chunk::F32(a))
        }
        Chunk::F64(mut a) if a.is_standard_layout() => {
            let f = <f64 as Element>::from_scalar(fill);
            a.mapv_inplace(|v| if v == f { f64::NAN } else { v });
            Ok(Chunk::F64(a))
        }
        other => mask_eq(&other, fill),
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArrayError;
    use crate::dtype::ALL_DTYPES;
    use BinaryOp::*;

    fn c(shape: &[usize], v: &[f64], dt: DType) -> Chunk {
        Chunk::from_f64_vec(shape, v.to_vec(), dt).unwrap()
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
    }

    #[test]
    fn names() {
        assert_eq!(BinaryOp::Add.name(), "add");
        assert_eq!(UnaryOp::Sqrt.name(), "sqrt");
        assert_eq!(UnaryOp::ALL.len(), 33);
        assert_eq!(BinaryOp::ALL.len(), 22);
        let names: std::collections::HashSet<_> = UnaryOp::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), 33);
    }

    #[test]
    fn unary_dtypes_follow_numpy() {
        use UnaryOp::*;
        assert_eq!(unary_result_dtype(Exp, DType::U8).unwrap(), DType::F32);
        assert_eq!(unary_result_dtype(Exp, DType::Bool).unwrap(), DType::F32);
        assert_eq!(unary_result_dtype(Exp, DType::U32).unwrap(), DType::F64);
        assert_eq!(unary_result_dtype(Log, DType::F32).unwrap(), DType::F32);
        assert_eq!(unary_result_dtype(Abs, DType::Bool).unwrap(), DType::Bool);
        assert_eq!(unary_result_dtype(Neg, DType::U16).unwrap(), DType::U16);
        assert_eq!(unary_result_dtype(Round, DType::I64).unwrap(), DType::I64);
        assert_eq!(
            unary_result_dtype(Reciprocal, DType::I64).unwrap(),
            DType::F64
        );
        assert_eq!(
            unary_result_dtype(NotNull, DType::I64).unwrap(),
            DType::Bool
        );
        let e = unary_result_dtype(Neg, DType::Bool).unwrap_err();
        assert!(
            matches!(e, ArrayError::DType { ref op, .. } if op == "negative"),
            "{e}"
        );
        // Every op on every dtype agrees with its declared result dtype.
        for op in UnaryOp::ALL {
            for dt in ALL_DTYPES {
                let x = c(&[3], &[0.0, 1.0, 2.0], dt);
                match unary_result_dtype(op, dt) {
                    Ok(want) => assert_eq!(unary(op, &x).unwrap().dtype(), want, "{op:?} {dt}"),
                    Err(_) => assert!(unary(op, &x).is_err()),
                }
            }
        }
    }

    #[test]
    fn unary_values() {
        use UnaryOp::*;
        let x = c(&[5], &[-2.5, -0.5, 0.5, 1.5, f64::NAN], DType::F64);
        assert!(same(
            &unary(Round, &x).unwrap().to_f64_vec(),
            &[-2.0, -0.0, 0.0, 2.0, f64::NAN]
        ));
        assert!(same(
            &unary(Floor, &x).unwrap().to_f64_vec(),
            &[-3.0, -1.0, 0.0, 1.0, f64::NAN]
        ));
        assert!(same(
            &unary(Sign, &x).unwrap().to_f64_vec(),
            &[-1.0, -1.0, 1.0, 1.0, f64::NAN]
        ));
        assert_eq!(
            unary(IsNan, &x).unwrap().to_f64_vec(),
            vec![0.0, 0.0, 0.0, 0.0, 1.0]
        );
        assert_eq!(
            unary(NotNull, &x).unwrap().to_f64_vec(),
            vec![1.0, 1.0, 1.0, 1.0, 0.0]
        );
        assert_eq!(unary(LogicalNot, &x).unwrap().to_f64_vec(), vec![0.0; 5]);
        let i = c(&[3], &[-128.0, 4.0, 0.0], DType::I8);
        assert_eq!(unary(Abs, &i).unwrap().to_f64_vec(), vec![-128.0, 4.0, 0.0]);
        assert_eq!(
            unary(Neg, &i).unwrap().to_f64_vec(),
            vec![-128.0, -4.0, 0.0]
        );
        assert_eq!(unary(IsNan, &i).unwrap().to_f64_vec(), vec![0.0; 3]);
        assert_eq!(unary(NotNull, &i).unwrap().to_f64_vec(), vec![1.0; 3]);
        let s = unary(Sqrt, &i).unwrap();
        assert_eq!(s.dtype(), DType::F32);
        assert!(s.to_f64_vec()[0].is_nan());
        assert_eq!(s.to_f64_vec()[1], 2.0);
        let u = c(&[2], &[1.0, 0.0], DType::U8);
        assert_eq!(unary(Neg, &u).unwrap().to_f64_vec(), vec![255.0, 0.0]);
        assert_eq!(
            unary(Reciprocal, &c(&[1], &[4.0], DType::I32))
                .unwrap()
                .to_f64_vec(),
            vec![0.25]
        );
        let inf = c(&[3], &[f64::INFINITY, 1.0, f64::NAN], DType::F32);
        assert_eq!(
            unary(IsInf, &inf).unwrap().to_f64_vec(),
            vec![1.0, 0.0, 0.0]
        );
        assert_eq!(
            unary(IsFinite, &inf).unwrap().to_f64_vec(),
            vec![0.0, 1.0, 0.0]
        );
    }

    #[test]
    fn promotion_results() {
        let cases = [
            (Add, DType::U8, DType::I8, DType::I16),
            (Add, DType::Bool, DType::Bool, DType::Bool),
            (Mul, DType::I32, DType::F32, DType::F64),
            (Div, DType::I8, DType::I8, DType::F64),
            (Div, DType::I8, DType::F32, DType::F32),
            (Div, DType::F32, DType::F32, DType::F32),
            (Div, DType::Bool, DType::Bool, DType::F64),
            (FloorDiv, DType::Bool, DType::Bool, DType::I8),
            (Pow, DType::U16, DType::I8, DType::I32),
            (Eq, DType::U64, DType::I64, DType::Bool),
            (And, DType::Bool, DType::Bool, DType::Bool),
            (Or, DType::Bool, DType::I16, DType::I16),
            (Atan2, DType::I16, DType::I16, DType::F32),
            (Hypot, DType::I32, DType::I32, DType::F64),
            (Minimum, DType::F32, DType::U8, DType::F32),
        ];
        for (op, a, b, want) in cases {
            assert_eq!(
                binary_result_dtype(op, a, b).unwrap(),
                want,
                "{op:?} {a} {b}"
            );
            let x = c(&[2], &[1.0, 2.0], a);
            let y = c(&[2], &[1.0, 1.0], b);
            assert_eq!(binary(op, &x, &y).unwrap().dtype(), want, "{op:?} {a} {b}");
        }
        assert!(binary_result_dtype(Sub, DType::Bool, DType::Bool).is_err());
        assert!(binary_result_dtype(And, DType::F64, DType::I8).is_err());
        let f = c(&[1], &[1.0], DType::F64);
        assert!(matches!(binary(Xor, &f, &f), Err(ArrayError::DType { .. })));

        // Weak scalars.
        let sf = Scalar::Float(2.5);
        assert_eq!(
            binary_scalar_result_dtype(Add, DType::F32, sf).unwrap(),
            DType::F32
        );
        assert_eq!(
            binary_scalar_result_dtype(Add, DType::I8, sf).unwrap(),
            DType::F64
        );
        assert_eq!(
            binary_scalar_result_dtype(Add, DType::Bool, Scalar::Int(1)).unwrap(),
            DType::I64
        );
        assert_eq!(
            binary_scalar_result_dtype(Gt, DType::U8, Scalar::Int(1)).unwrap(),
            DType::Bool
        );
        assert_eq!(
            binary_scalar_result_dtype(Div, DType::I16, Scalar::Int(2)).unwrap(),
            DType::F64
        );
        let x = c(&[2], &[1.0, 2.0], DType::F32);
        let y = binary_scalar(Add, &x, sf, false).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.to_f64_vec(), vec![3.5, 4.5]);
        let y = binary_scalar(Sub, &x, Scalar::Int(2), true).unwrap();
        assert_eq!(y.to_f64_vec(), vec![1.0, 0.0]);
        let u = c(&[2], &[1.0, 200.0], DType::U8);
        let y = binary_scalar(Add, &u, Scalar::Int(100), false).unwrap();
        assert_eq!(y.dtype(), DType::U8);
        assert_eq!(y.to_f64_vec(), vec![101.0, 44.0]); // wraps
        assert!(binary_scalar(Add, &u, Scalar::Int(300), false).is_err());
        assert!(binary_scalar(Add, &u, Scalar::Int(-1), false).is_err());
        let lt = binary_scalar(Lt, &u, Scalar::Int(300), false).unwrap();
        assert_eq!(lt.to_f64_vec(), vec![1.0, 1.0]);
        let lt = binary_scalar(Lt, &u, Scalar::Int(300), true).unwrap(); // 300 < u
        assert_eq!(lt.to_f64_vec(), vec![0.0, 0.0]);
        let ge = binary_scalar(Ge, &u, Scalar::Int(-5), false).unwrap();
        assert_eq!(ge.to_f64_vec(), vec![1.0, 1.0]);
    }

    #[test]
    fn python_floor_div_and_mod_signs() {
        let a = [7.0, -7.0, 7.0, -7.0, 0.0];
        let b = [2.0, 2.0, -2.0, -2.0, 3.0];
        let fd = [3.0, -4.0, -4.0, 3.0, 0.0];
        let md = [1.0, 1.0, -1.0, -1.0, 0.0];
        for dt in [DType::I8, DType::I32, DType::I64, DType::F32, DType::F64] {
            let (x, y) = (c(&[5], &a, dt), c(&[5], &b, dt));
            assert_eq!(binary(FloorDiv, &x, &y).unwrap().to_f64_vec(), fd, "{dt}");
            assert_eq!(binary(Mod, &x, &y).unwrap().to_f64_vec(), md, "{dt}");
        }
        // Float fractions: -7.5 // 2 == -4, -7.5 % 2 == 0.5, 7.5 % -2 == -0.5.
        let x = c(&[2], &[-7.5, 7.5], DType::F64);
        let y = c(&[2], &[2.0, -2.0], DType::F64);
        assert_eq!(
            binary(FloorDiv, &x, &y).unwrap().to_f64_vec(),
            vec![-4.0, -4.0]
        );
        assert_eq!(binary(Mod, &x, &y).unwrap().to_f64_vec(), vec![0.5, -0.5]);
        // Scalar on the left: 7 // x.
        let x = c(&[2], &[2.0, -2.0], DType::I16);
        let r = binary_scalar(FloorDiv, &x, Scalar::Int(7), true).unwrap();
        assert_eq!(r.to_f64_vec(), vec![3.0, -4.0]);
    }

    #[test]
    fn integer_division_by_zero_gives_zero() {
        for dt in [DType::I8, DType::I64, DType::U8, DType::U64] {
            let x = c(&[2], &[5.0, 0.0], dt);
            let z = c(&[2], &[0.0, 0.0], dt);
            assert_eq!(
                binary(FloorDiv, &x, &z).unwrap().to_f64_vec(),
                vec![0.0, 0.0]
            );
            assert_eq!(binary(Mod, &x, &z).unwrap().to_f64_vec(), vec![0.0, 0.0]);
            let d = binary(Div, &x, &z).unwrap();
            assert_eq!(d.dtype(), DType::F64);
            let d = d.to_f64_vec();
            assert!(d[0].is_infinite() && d[1].is_nan());
        }
        // MIN // -1 wraps instead of panicking.
        let x = c(&[1], &[-128.0], DType::I8);
        let m = c(&[1], &[-1.0], DType::I8);
        assert_eq!(binary(FloorDiv, &x, &m).unwrap().to_f64_vec(), vec![-128.0]);
        assert_eq!(binary(Mod, &x, &m).unwrap().to_f64_vec(), vec![0.0]);
        // Float remainder by zero is NaN.
        let f = binary(
            Mod,
            &c(&[1], &[1.0], DType::F64),
            &c(&[1], &[0.0], DType::F64),
        )
        .unwrap();
        assert!(f.to_f64_vec()[0].is_nan());
    }

    #[test]
    fn wrapping_arithmetic_and_power() {
        let x = c(&[2], &[127.0, -128.0], DType::I8);
        let one = c(&[1], &[1.0], DType::I8);
        assert_eq!(
            binary(Add, &x, &one).unwrap().to_f64_vec(),
            vec![-128.0, -127.0]
        );
        assert_eq!(
            binary(Sub, &one, &x).unwrap().to_f64_vec(),
            vec![-126.0, -127.0]
        );
        let b = c(&[3], &[2.0, 3.0, 10.0], DType::I64);
        let e = c(&[3], &[10.0, 0.0, 20.0], DType::I64);
        assert_eq!(
            binary(Pow, &b, &e).unwrap().to_f64_vec(),
            vec![1024.0, 1.0, 7_766_279_631_452_241_920.0]
        );
        let p = binary(
            Pow,
            &c(&[1], &[2.0], DType::U8),
            &c(&[1], &[9.0], DType::U8),
        )
        .unwrap();
        assert_eq!(p.to_f64_vec(), vec![0.0]); // 512 wraps to 0
        let neg = c(&[2], &[1.0, -1.0], DType::I32);
        let err = binary(
            Pow,
            &b.astype(DType::I32).reshape(&[3]).unwrap(),
            &c(&[3], &[1.0, -1.0, 2.0], DType::I32),
        );
        assert!(matches!(err, Err(ArrayError::Kernel { ref op, .. }) if op == "power"));
        assert!(binary_scalar(Pow, &neg, Scalar::Int(-2), false).is_err());
        assert!(binary_scalar(Pow, &neg, Scalar::Int(2), true).is_err());
        assert_eq!(
            binary_scalar(Pow, &neg, Scalar::Int(3), false)
                .unwrap()
                .to_f64_vec(),
            vec![1.0, -1.0]
        );
        let f = binary_scalar(Pow, &neg, Scalar::Float(-1.0), false).unwrap();
        assert_eq!(f.dtype(), DType::F64);
        assert_eq!(f.to_f64_vec(), vec![1.0, -1.0]);
    }

    #[test]
    fn nan_rules_for_minimum_and_fmin() {
        let a = c(&[3], &[1.0, f64::NAN, f64::NAN], DType::F32);
        let b = c(&[3], &[f64::NAN, 2.0, f64::NAN], DType::F32);
        assert!(
            binary(Minimum, &a, &b)
                .unwrap()
                .to_f64_vec()
                .iter()
                .all(|v| v.is_nan())
        );
        assert!(
            binary(Maximum, &a, &b)
                .unwrap()
                .to_f64_vec()
                .iter()
                .all(|v| v.is_nan())
        );
        assert!(same(
            &binary(Fmin, &a, &b).unwrap().to_f64_vec(),
            &[1.0, 2.0, f64::NAN]
        ));
        assert!(same(
            &binary(Fmax, &a, &b).unwrap().to_f64_vec(),
            &[1.0, 2.0, f64::NAN]
        ));
        // Comparisons with NaN are false except !=.
        assert_eq!(binary(Eq, &a, &b).unwrap().to_f64_vec(), vec![0.0; 3]);
        assert_eq!(binary(Ne, &a, &b).unwrap().to_f64_vec(), vec![1.0; 3]);
        assert_eq!(binary(Lt, &a, &b).unwrap().to_f64_vec(), vec![0.0; 3]);
    }

    #[test]
    fn bitwise_and_bool_arithmetic() {
        let t = c(&[4], &[1.0, 1.0, 0.0, 0.0], DType::Bool);
        let u = c(&[4], &[1.0, 0.0, 1.0, 0.0], DType::Bool);
        assert_eq!(
            binary(And, &t, &u).unwrap().to_f64_vec(),
            vec![1.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            binary(Or, &t, &u).unwrap().to_f64_vec(),
            vec![1.0, 1.0, 1.0, 0.0]
        );
        assert_eq!(
            binary(Xor, &t, &u).unwrap().to_f64_vec(),
            vec![0.0, 1.0, 1.0, 0.0]
        );
        assert_eq!(
            binary(Add, &t, &u).unwrap().to_f64_vec(),
            vec![1.0, 1.0, 1.0, 0.0]
        );
        let i = c(&[2], &[12.0, 10.0], DType::U8);
        let r = binary_scalar(And, &i, Scalar::Int(6), false).unwrap();
        assert_eq!((r.dtype(), r.to_f64_vec()), (DType::U8, vec![4.0, 2.0]));
        let r = binary_scalar(Xor, &t, Scalar::Bool(true), true).unwrap();
        assert_eq!(
            (r.dtype(), r.to_f64_vec()),
            (DType::Bool, vec![0.0, 0.0, 1.0, 1.0])
        );
        assert!(binary_scalar(And, &i, Scalar::Float(1.0), false).is_err());
    }

    #[test]
    fn broadcasting_and_errors() {
        let a = c(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], DType::F64);
        let col = c(&[2, 1], &[10.0, 20.0], DType::F64);
        let r = binary(Add, &a, &col).unwrap();
        assert_eq!(r.to_f64_vec(), vec![10.0, 11.0, 12.0, 23.0, 24.0, 25.0]);
        let row = c(&[3], &[1.0, 2.0, 3.0], DType::I64);
        let r = binary(Mul, &row, &a).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(r.to_f64_vec(), vec![0.0, 2.0, 6.0, 3.0, 8.0, 15.0]);
        let bad = c(&[4], &[1.0; 4], DType::F64);
        let e = binary(Add, &a, &bad).unwrap_err();
        assert!(matches!(e, ArrayError::Shape { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("add") && msg.contains("(2,3)") && msg.contains("(4,)"),
            "{msg}"
        );
        let e = where_(&bad, &a, &a).unwrap_err().to_string();
        assert!(
            e.contains("where") && e.contains("(4,)") && e.contains("(2,3)"),
            "{e}"
        );
        // Non-contiguous (transposed) operands.
        let t = Chunk::F64(a.as_array::<f64>().unwrap().t().to_owned());
        let t2 = Chunk::F64(
            a.as_array::<f64>()
                .unwrap()
                .t()
                .as_standard_layout()
                .into_owned(),
        );
        assert_eq!(binary(Sub, &t, &t2).unwrap().to_f64_vec(), vec![0.0; 6]);
        assert_eq!(binary(Add, &t, &t).unwrap(), binary(Add, &t2, &t2).unwrap());
        // Empty and 0-d.
        let e0 = c(&[0, 3], &[], DType::F32);
        assert_eq!(binary(Add, &e0, &row).unwrap().shape(), &[0, 3]);
        let s0 = c(&[], &[2.0], DType::F32);
        assert_eq!(binary(Mul, &s0, &s0).unwrap().to_f64_vec(), vec![4.0]);
    }

    #[test]
    fn where_promotes_and_broadcasts() {
        let cond = c(&[2, 1], &[0.0, 3.0], DType::I32); // cast to bool
        let x = c(&[3], &[1.0, 2.0, 3.0], DType::U8);
        let y = c(&[], &[-1.0], DType::I8);
        let r = where_(&cond, &x, &y).unwrap();
        assert_eq!(r.dtype(), DType::I16);
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(r.to_f64_vec(), vec![-1.0, -1.0, -1.0, 1.0, 2.0, 3.0]);
        assert_eq!(where_result_dtype(DType::F32, DType::I64), DType::F64);
    }

    /// Asserts that an owned-variant result equals the borrowed one: same error (variant
    /// and message), or same dtype, shape and values (floats bit for bit, NaN positions).
    fn assert_same_result(owned: &Result<Chunk>, borrowed: &Result<Chunk>, ctx: &str) {
        match (owned, borrowed) {
            (Ok(o), Ok(b)) => {
                assert_eq!(o.dtype(), b.dtype(), "{ctx}: dtype");
                assert_eq!(o.shape(), b.shape(), "{ctx}: shape");
                if o != b {
                    assert!(
                        same(&o.to_f64_vec(), &b.to_f64_vec()),
                        "{ctx}: {o:?} vs {b:?}"
                    );
                }
                let bits = |c: &Chunk| -> Vec<u64> {
                    match c {
                        Chunk::F32(a) => a.iter().map(|v| u64::from(v.to_bits())).collect(),
                        Chunk::F64(a) => a.iter().map(|v| v.to_bits()).collect(),
                        _ => Vec::new(),
                    }
                };
                assert_eq!(bits(o), bits(b), "{ctx}: float bits");
            }
            (Err(o), Err(b)) => assert_eq!(format!("{o:?}"), format!("{b:?}"), "{ctx}: error"),
            (o, b) => panic!("{ctx}: owned {o:?} vs borrowed {b:?}"),
        }
    }

    /// `len` test values cycling through signs, fractions, zeros, large values and (for
    /// floats) NaN and infinities; `nonneg` keeps them non-negative and small (for powers).
    fn test_values(len: usize, offset: usize, nonneg: bool) -> Vec<f64> {
        const MIXED: [f64; 13] = [
            -3.0,
            1.5,
            0.0,
            7.0,
            -0.0,
            f64::NAN,
            2.0,
            -128.5,
            300.0,
            f64::INFINITY,
            0.5,
            -1.0,
            f64::NEG_INFINITY,
        ];
        const SMALL: [f64; 5] = [0.0, 1.0, 2.0, 3.0, 0.5];
        (0..len)
            .map(|i| {
                if nonneg {
                    SMALL[(i + offset) % SMALL.len()]
                } else {
                    MIXED[(i + offset) % MIXED.len()]
                }
            })
            .collect()
    }

    fn test_chunk(shape: &[usize], dt: DType, offset: usize, nonneg: bool) -> Chunk {
        let n = shape.iter().product();
        c(shape, &test_values(n, offset, nonneg), dt)
    }

    /// A (3,4) block of `dt` in transposed (F-order) memory layout.
    fn transposed(dt: DType, offset: usize) -> Chunk {
        let t = test_chunk(&[4, 3], dt, offset, false);
        crate::map_chunk!(&t, a => a.t().to_owned())
    }

    const OWNED_DTYPES: [DType; 5] = [DType::F32, DType::F64, DType::I32, DType::U8, DType::Bool];

    #[test]
    fn unary_owned_matches_unary() {
        for op in UnaryOp::ALL {
            for dt in ALL_DTYPES {
                let mut inputs: Vec<Chunk> = [&[3, 4][..], &[], &[0, 3], &[13]]
                    .iter()
                    .map(|s| test_chunk(s, dt, 0, false))
                    .collect();
                inputs.push(transposed(dt, 5));
                for x in inputs {
                    let ctx = format!("{op:?} {dt} {:?}", x.shape());
                    assert_same_result(&unary_owned(op, x.clone()), &unary(op, &x), &ctx);
                }
            }
        }
    }

    #[test]
    fn binary_scalar_owned_matches_binary_scalar() {
        let scalars = [
            Scalar::Int(2),
            Scalar::Int(-3),
            Scalar::Int(0),
            Scalar::Int(300),
            Scalar::UInt(u64::MAX),
            Scalar::Float(2.5),
            Scalar::Float(-0.5),
            Scalar::Float(f64::NAN),
            Scalar::Bool(true),
            Scalar::Bool(false),
        ];
        for op in BinaryOp::ALL {
            for dt in OWNED_DTYPES {
                let mut inputs: Vec<Chunk> = vec![
                    test_chunk(&[3, 4], dt, 0, false),
                    test_chunk(&[3, 4], dt, 0, true),
                    test_chunk(&[], dt, 3, false),
                    test_chunk(&[0, 2], dt, 0, false),
                ];
                inputs.push(transposed(dt, 1));
                for x in &inputs {
                    for s in scalars {
                        for left in [false, true] {
                            let ctx = format!("{op:?} {dt} {:?} {s:?} left={left}", x.shape());
                            assert_same_result(
                                &binary_scalar_owned(op, x.clone(), s, left),
                                &binary_scalar(op, x, s, left),
                                &ctx,
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn binary_owned_matches_binary() {
        let shapes: [(&[usize], &[usize]); 14] = [
            (&[3, 4], &[3, 4]),
            (&[3, 4], &[1, 4]),
            (&[3, 4], &[4]),
            (&[3, 4], &[3, 1]),
            (&[3, 4], &[]),
            (&[3, 4], &[1, 1]),
            (&[2, 3, 4], &[3, 1]),
            (&[2, 3, 4], &[2, 1, 4]),
            (&[1, 4], &[3, 4]), // b larger: new shape
            (&[4], &[3, 4]),
            (&[3, 1], &[1, 4]),
            (&[3, 4], &[5]), // does not broadcast
            (&[0, 4], &[1, 4]),
            (&[], &[]),
        ];
        for op in BinaryOp::ALL {
            for da in OWNED_DTYPES {
                for db in OWNED_DTYPES {
                    for (sa, sb) in shapes {
                        for nonneg in [false, true] {
                            let a = test_chunk(sa, da, 0, false);
                            let b = test_chunk(sb, db, 2, nonneg);
                            let ctx = format!("{op:?} {da}{sa:?} {db}{sb:?} nonneg={nonneg}");
                            assert_same_result(
                                &binary_owned(op, a.clone(), &b),
                                &binary(op, &a, &b),
                                &ctx,
                            );
                        }
                    }
                    // Non-standard layouts, on either side.
                    let (t, s) = (transposed(da, 1), test_chunk(&[3, 4], db, 4, false));
                    let ctx = format!("{op:?} {da} transposed, {db}");
                    assert_same_result(&binary_owned(op, t.clone(), &s), &binary(op, &t, &s), &ctx);
                    let (s, t) = (test_chunk(&[3, 4], da, 4, false), transposed(db, 1));
                    let ctx = format!("{op:?} {da}, {db} transposed");
                    assert_same_result(&binary_owned(op, s.clone(), &t), &binary(op, &s, &t), &ctx);
                    let row = crate::map_chunk!(&transposed(db, 2), a => a.slice(ndarray::s![0..1, ..]).to_owned().into_dyn());
                    assert_same_result(
                        &binary_owned(op, s.clone(), &row),
                        &binary(op, &s, &row),
                        &ctx,
                    );
                }
            }
        }
    }

    /// The data pointer of a chunk's buffer.
    fn data_ptr(x: &Chunk) -> usize {
        crate::with_chunk!(x, a => a.as_ptr() as usize)
    }

    #[test]
    fn owned_variants_reuse_the_buffer() {
        // sqrt(2 * x + 1) on float32 runs in one buffer.
        let x = test_chunk(&[3, 4], DType::F32, 0, true);
        let p = data_ptr(&x);
        let y = binary_scalar_owned(Mul, x, Scalar::Int(2), true).unwrap();
        let y = binary_scalar_owned(Add, y, Scalar::Float(1.0), false).unwrap();
        let y = unary_owned(UnaryOp::Sqrt, y).unwrap();
        assert_eq!((data_ptr(&y), y.dtype()), (p, DType::F32));

        for (sb, db) in [
            (&[3, 4][..], DType::F64),
            (&[1, 4], DType::F64),
            (&[3, 1], DType::F64),
            (&[4], DType::I32), // converted, then broadcast
            (&[], DType::F32),
        ] {
            let a = test_chunk(&[3, 4], DType::F64, 0, false);
            let b = test_chunk(sb, db, 1, false);
            let p = data_ptr(&a);
            let r = binary_owned(Hypot, a, &b).unwrap();
            assert_eq!(data_ptr(&r), p, "{sb:?} {db}");
        }
        let t = test_chunk(&[5], DType::Bool, 0, false);
        let p = data_ptr(&t);
        let r = binary_owned(Lt, t, &test_chunk(&[5], DType::Bool, 1, false)).unwrap();
        let r = unary_owned(UnaryOp::LogicalNot, r).unwrap();
        let r = binary_scalar_owned(Xor, r, Scalar::Bool(true), false).unwrap();
        assert_eq!(data_ptr(&r), p);
        let i = test_chunk(&[3, 4], DType::I32, 0, false);
        let p = data_ptr(&i);
        let r = unary_owned(UnaryOp::Floor, i).unwrap();
        let r = binary_scalar_owned(FloorDiv, r, Scalar::Int(-3), true).unwrap();
        assert_eq!(data_ptr(&r), p);
    }

    #[test]
    fn float_math_and_atan2() {
        let x = c(&[2], &[1.0, 4.0], DType::U16);
        let r = unary(UnaryOp::Log2, &x).unwrap();
        assert_eq!((r.dtype(), r.to_f64_vec()), (DType::F32, vec![0.0, 2.0]));
        let y = c(&[2], &[1.0, 0.0], DType::F32);
        let r = binary(Atan2, &y, &c(&[2], &[0.0, -1.0], DType::F32)).unwrap();
        assert_eq!(r.dtype(), DType::F32);
        let v = r.to_f64_vec();
        assert!((v[0] - std::f64::consts::FRAC_PI_2).abs() < 1e-6);
        assert!((v[1] - std::f64::consts::PI).abs() < 1e-6);
        let h = binary_scalar(Hypot, &c(&[1], &[3.0], DType::I64), Scalar::Int(4), false).unwrap();
        assert_eq!((h.dtype(), h.to_f64_vec()), (DType::F64, vec![5.0]));
    }
}
