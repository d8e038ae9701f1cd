//! Fused elementwise chains over float blocks, optionally ending in a sum or mean over every
//! axis (`sum(sqrt(2 * x + 1))`).
//!
//! A chain of single-input ops that keep a float32 or float64 block in its dtype is
//! compiled into a short list of [`Step`]s. The block is then walked once in sub-tiles of
//! [`SUB`] elements: the first step reads the sub-tile straight from the (borrowed) block
//! into an L1-resident buffer, every further step is a tight, vectorisable loop over that
//! buffer, and the last step of a reduction is fused with the accumulation. Nothing is
//! allocated per sub-tile or per block (except the output of a plain chain).
//!
//! Every step computes exactly what the matching kernel of [`super::elementwise`] computes
//! (same scalar functions, same roundings; checked by the tests below), so results equal the
//! op-by-op evaluation bit for bit, except for the order in which a reduction adds values.
//! Sums skip NaN with `skipna` and accumulate in f64 (float32 included), with 8 independent
//! accumulators per sub-tile and a cascade over sub-tiles (error O(log n), like NumPy's
//! pairwise summation).

use super::elementwise::{
    BinaryOp, FloatK, Num, UnaryOp, binary_scalar_result_dtype, unary_result_dtype,
};
use super::from_vec;
use crate::chunk::{Chunk, Element};
use crate::dtype::{DType, Scalar};
use crate::error::Result;

/// Elements per sub-tile: 4 KiB of float64, so each step of the chain reads and writes L1.
pub(crate) const SUB: usize = 512;

/// One operation of a chain, as an array task describes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ChainOp {
    /// A unary ufunc.
    Unary(UnaryOp),
    /// A binary ufunc with a Python scalar (`scalar op x` when `left`).
    Scalar {
        /// The ufunc.
        op: BinaryOp,
        /// The scalar.
        scalar: Scalar,
        /// True for `scalar op x`.
        left: bool,
    },
    /// Conversion to a dtype.
    AsType(DType),
    /// Elements equal to the fill value become NaN (CF masking).
    Mask(Scalar),
}

/// The unary ufuncs that map a float block to a float block of the same dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum FUnary {
    Neg,
    Abs,
    Square,
    Sign,
    Floor,
    Ceil,
    Round,
    Trunc,
    Sqrt,
    Exp,
    Log,
    Log10,
    Log2,
    Log1p,
    Expm1,
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    Tanh,
    Reciprocal,
    Deg2Rad,
    Rad2Deg,
}

fn funary(op: UnaryOp) -> Option<FUnary> {
    use UnaryOp as U;
    Some(match op {
        U::Neg => FUnary::Neg,
        U::Abs => FUnary::Abs,
        U::Square => FUnary::Square,
        U::Sign => FUnary::Sign,
        U::Floor => FUnary::Floor,
        U::Ceil => FUnary::Ceil,
        U::Round => FUnary::Round,
        U::Trunc => FUnary::Trunc,
        U::Sqrt => FUnary::Sqrt,
        U::Exp => FUnary::Exp,
        U::Log => FUnary::Log,
        U::Log10 => FUnary::Log10,
        U::Log2 => FUnary::Log2,
        U::Log1p => FUnary::Log1p,
        U::Expm1 => FUnary::Expm1,
        U::Sin => FUnary::Sin,
        U::Cos => FUnary::Cos,
        U::Tan => FUnary::Tan,
        U::Arcsin => FUnary::Arcsin,
        U::Arccos => FUnary::Arccos,
        U::Arctan => FUnary::Arctan,
        U::Sinh => FUnary::Sinh,
        U::Cosh => FUnary::Cosh,
        U::Tanh => FUnary::Tanh,
        U::Reciprocal => FUnary::Reciprocal,
        U::Deg2Rad => FUnary::Deg2Rad,
        U::Rad2Deg => FUnary::Rad2Deg,
        U::IsNan | U::IsNull | U::NotNull | U::IsFinite | U::IsInf | U::LogicalNot => {
            return None;
        }
    })
}

/// The binary ufuncs that map float operands to the same float dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum FBinary {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Minimum,
    Maximum,
    Fmin,
    Fmax,
    Atan2,
    Hypot,
}

fn fbinary(op: BinaryOp) -> Option<FBinary> {
    use BinaryOp as B;
    Some(match op {
        B::Add => FBinary::Add,
        B::Sub => FBinary::Sub,
        B::Mul => FBinary::Mul,
        B::Div => FBinary::Div,
        B::FloorDiv => FBinary::FloorDiv,
        B::Mod => FBinary::Mod,
        B::Pow => FBinary::Pow,
        B::Minimum => FBinary::Minimum,
        B::Maximum => FBinary::Maximum,
        B::Fmin => FBinary::Fmin,
        B::Fmax => FBinary::Fmax,
        B::Atan2 => FBinary::Atan2,
        B::Hypot => FBinary::Hypot,
        B::Eq | B::Ne | B::Lt | B::Le | B::Gt | B::Ge | B::And | B::Or | B::Xor => return None,
    })
}

/// One compiled step on values of type `T`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Step<T> {
    Unary(FUnary),
    /// `x op s`.
    Right(FBinary, T),
    /// `s op x`.
    Left(FBinary, T),
    /// `x * m + a`: a scalar multiply followed by a scalar add or subtract, in one pass.
    /// Exact: the same two roundings as the two ops (`x - b` is `x + (-b)` in IEEE 754, and
    /// `b - x * m` is `x * (-m) + b`).
    MulAdd(T, T),
    /// `NaN` where `x == fill`, else `x`.
    Mask(T),
}

/// Binds `$f` to the closure of a unary step on `$t` and evaluates `$body`.
macro_rules! with_unary {
    ($u:expr, $t:ty, $f:ident => $body:expr) => {
        match $u {
            FUnary::Neg => {
                let $f = <$t as Num>::k_neg;
                $body
            }
            FUnary::Abs => {
                let $f = <$t as Num>::k_abs;
                $body
            }
            FUnary::Square => {
                let $f = <$t as Num>::k_square;
                $body
            }
            FUnary::Sign => {
                let $f = <$t as Num>::k_sign;
                $body
            }
            FUnary::Floor => {
                let $f = <$t as Num>::k_floor;
                $body
            }
            FUnary::Ceil => {
                let $f = <$t as Num>::k_ceil;
                $body
            }
            FUnary::Round => {
                let $f = <$t as Num>::k_round;
                $body
            }
            FUnary::Trunc => {
                let $f = <$t as Num>::k_trunc;
                $body
            }
            // The float math below is spelled as in `elementwise::with_float_fn`.
            FUnary::Sqrt => {
                let $f = |v: $t| v.sqrt();
                $body
            }
            FUnary::Exp => {
                let $f = |v: $t| v.exp();
                $body
            }
            FUnary::Log => {
                let $f = |v: $t| v.ln();
                $body
            }
            FUnary::Log10 => {
                let $f = |v: $t| v.log10();
                $body
            }
            FUnary::Log2 => {
                let $f = |v: $t| v.log2();
                $body
            }
            FUnary::Log1p => {
                let $f = |v: $t| v.ln_1p();
                $body
            }
            FUnary::Expm1 => {
                let $f = |v: $t| v.exp_m1();
                $body
            }
            FUnary::Sin => {
                let $f = |v: $t| v.sin();
                $body
            }
            FUnary::Cos => {
                let $f = |v: $t| v.cos();
                $body
            }
            FUnary::Tan => {
                let $f = |v: $t| v.tan();
                $body
            }
            FUnary::Arcsin => {
                let $f = |v: $t| v.asin();
                $body
            }
            FUnary::Arccos => {
                let $f = |v: $t| v.acos();
                $body
            }
            FUnary::Arctan => {
                let $f = |v: $t| v.atan();
                $body
            }
            FUnary::Sinh => {
                let $f = |v: $t| v.sinh();
                $body
            }
            FUnary::Cosh => {
                let $f = |v: $t| v.cosh();
                $body
            }
            FUnary::Tanh => {
                let $f = |v: $t| v.tanh();
                $body
            }
            FUnary::Reciprocal => {
                let $f = |v: $t| 1.0 / v;
                $body
            }
            FUnary::Deg2Rad => {
                let $f = |v: $t| v.to_radians();
                $body
            }
            FUnary::Rad2Deg => {
                let $f = |v: $t| v.to_degrees();
                $body
            }
        }
    };
}

/// Binds `$f` to `|x| g(x, s)` (or `g(s, x)` when `$left`) for the binary ufunc `$b` on
/// `$t` and evaluates `$body`.
macro_rules! with_binary {
    ($b:expr, $s:expr, $left:literal, $t:ty, $f:ident => $body:expr) => {{
        let s: $t = $s;
        macro_rules! arm {
            ($g:ident) => {{
                let $f = move |v: $t| if $left { s.$g(v) } else { v.$g(s) };
                $body
            }};
        }
        match $b {
            FBinary::Add => arm!(k_add),
            FBinary::Sub => arm!(k_sub),
            FBinary::Mul => arm!(k_mul),
            FBinary::Div => arm!(k_div),
            FBinary::FloorDiv => arm!(k_floordiv),
            FBinary::Mod => arm!(k_mod),
            FBinary::Pow => arm!(k_pow),
            FBinary::Minimum => arm!(k_minimum),
            FBinary::Maximum => arm!(k_maximum),
            FBinary::Fmin => arm!(k_fmin),
            FBinary::Fmax => arm!(k_fmax),
            FBinary::Atan2 => arm!(k_atan2),
            FBinary::Hypot => arm!(k_hypot),
        }
    }};
}

/// Binds `$f` to the closure of `$step` on `$t` and evaluates `$body`: one match per
/// sub-tile, then a monomorphic loop.
macro_rules! with_step {
    ($step:expr, $t:ty, $f:ident => $body:expr) => {
        match *$step {
            Step::Unary(u) => with_unary!(u, $t, $f => $body),
            Step::Right(b, s) => with_binary!(b, s, false, $t, $f => $body),
            Step::Left(b, s) => with_binary!(b, s, true, $t, $f => $body),
            Step::MulAdd(m, a) => {
                let $f = move |v: $t| v * m + a;
                $body
            }
            Step::Mask(m) => {
                let $f = move |v: $t| if v == m { <$t>::NAN } else { v };
                $body
            }
        }
    };
}

/// `dst = f(src)`, or `dst = f(dst)` in place without `src`.
#[inline(always)]
fn map_into<T: Copy>(src: Option<&[T]>, dst: &mut [T], f: impl Fn(T) -> T) {
    match src {
        Some(s) => {
            for (d, &v) in dst.iter_mut().zip(s) {
                *d = f(v);
            }
        }
        None => {
            for d in dst.iter_mut() {
                *d = f(*d);
            }
        }
    }
}

/// Σ g(x) with 8 independent f64 accumulators (the loop is bound by the ops, not by the
/// latency of one running sum).
#[inline(always)]
fn lanes<T: Copy>(x: &[T], g: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut blocks = x.chunks_exact(8);
    for b in &mut blocks {
        for (a, &v) in acc.iter_mut().zip(b) {
            *a += g(v);
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for &v in blocks.remainder() {
        s += g(v);
    }
    s
}

/// Σ f(x) in f64, NaNs counted as 0 with `skipna`.
#[inline(always)]
fn sum_map<T: Element>(x: &[T], f: impl Fn(T) -> T, skipna: bool) -> f64 {
    if skipna {
        lanes(x, |v| {
            let y = f(v).to_f64();
            if y.is_nan() { 0.0 } else { y }
        })
    } else {
        lanes(x, |v| f(v).to_f64())
    }
}

/// The f64 sum of `x` and the number of values summed (non-NaN ones with `skipna`).
fn sum_count<T: Element>(x: &[T], skipna: bool) -> (f64, usize) {
    if !skipna {
        return (lanes(x, Element::to_f64), x.len());
    }
    let nan = lanes(x, |v| if v.is_nan() { 1.0 } else { 0.0 });
    // Counts below 2^53 are exact in f64.
    (sum_map(x, |v| v, true), x.len() - nan as usize)
}

/// The float element types a chain can be compiled for.
trait Lane: FloatK {
    /// Runs one step: `dst = step(src)`, or in place in `dst` without `src`.
    fn map_step(step: &Step<Self>, src: Option<&[Self]>, dst: &mut [Self]);
    /// Σ step(x) in f64 (Σ x without a step), NaNs skipped with `skipna`.
    fn sum_step(step: Option<&Step<Self>>, x: &[Self], skipna: bool) -> f64;
}

macro_rules! impl_lane {
    ($($t:ty),*) => {$(
        impl Lane for $t {
            fn map_step(step: &Step<Self>, src: Option<&[Self]>, dst: &mut [Self]) {
                with_step!(step, $t, f => map_into(src, dst, f))
            }
            fn sum_step(step: Option<&Step<Self>>, x: &[Self], skipna: bool) -> f64 {
                match step {
                    Some(step) => with_step!(step, $t, f => sum_map(x, f, skipna)),
                    None => sum_map(x, |v: $t| v, skipna),
                }
            }
        }
    )*};
}
impl_lane!(f32, f64);

/// Cascade (binary-counter) summation of the sub-tile sums: each level holds the sum of
/// 2^level sub-tiles, so the rounding error grows with the logarithm of the count.
struct Cascade {
    levels: [f64; 64],
    n: u64,
}

impl Cascade {
    fn new() -> Cascade {
        Cascade {
            levels: [0.0; 64],
            n: 0,
        }
    }

    fn push(&mut self, mut v: f64) {
        let mut carry = self.n;
        let mut i = 0;
        while carry & 1 == 1 {
            v += self.levels[i];
            carry >>= 1;
            i += 1;
        }
        self.levels[i] = v;
        self.n += 1;
    }

    fn total(&self) -> f64 {
        // Smallest partial sums first.
        (0..64)
            .filter(|i| (self.n >> i) & 1 == 1)
            .map(|i| self.levels[i])
            .sum()
    }
}

/// A chain compiled for one float dtype.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Program {
    /// On float32 blocks.
    F32(Vec<Step<f32>>),
    /// On float64 blocks.
    F64(Vec<Step<f64>>),
}

/// What a fused reduction returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SumCount {
    /// The f64 sum of the chain's values (NaNs skipped with skipna).
    pub sum: f64,
    /// How many values were summed (non-NaN ones with skipna); only with `count`.
    pub count: usize,
}

impl Program {
    /// Compiles `chain` for blocks of dtype `input`; `None` unless `input` is float32 or
    /// float64 and every op keeps that dtype (others take the general path).
    pub(crate) fn compile(chain: &[ChainOp], input: DType) -> Option<Program> {
        match input {
            DType::F32 => compile_typed::<f32>(chain).map(Program::F32),
            DType::F64 => compile_typed::<f64>(chain).map(Program::F64),
            _ => None,
        }
    }

    /// The chain applied to every element of `x`, in a new block of `x`'s shape; `None`
    /// when `x` is not a contiguous block of the program's dtype.
    pub(crate) fn map(&self, x: &Chunk) -> Option<Result<Chunk>> {
        match (self, x) {
            (Program::F32(steps), Chunk::F32(a)) => {
                let out = map_typed(steps, a.as_slice()?);
                Some(from_vec("elementwise chain", x.shape(), out).map(Chunk::F32))
            }
            (Program::F64(steps), Chunk::F64(a)) => {
                let out = map_typed(steps, a.as_slice()?);
                Some(from_vec("elementwise chain", x.shape(), out).map(Chunk::F64))
            }
            _ => None,
        }
    }

    /// The f64 sum of the chain over every element of `x` (and, with `count`, how many
    /// values were summed); `None` when `x` is not a contiguous block of the program's dtype.
    pub(crate) fn sum(&self, x: &Chunk, skipna: bool, count: bool) -> Option<SumCount> {
        match (self, x) {
            (Program::F32(steps), Chunk::F32(a)) => {
                Some(sum_typed(steps, a.as_slice()?, skipna, count))
            }
            (Program::F64(steps), Chunk::F64(a)) => {
                Some(sum_typed(steps, a.as_slice()?, skipna, count))
            }
            _ => None,
        }
    }
}

fn compile_typed<T: Lane>(chain: &[ChainOp]) -> Option<Vec<Step<T>>> {
    let mut steps: Vec<Step<T>> = Vec::with_capacity(chain.len());
    for op in chain {
        match *op {
            ChainOp::AsType(d) if d == T::DTYPE => {}
            ChainOp::AsType(_) => return None,
            ChainOp::Mask(fill) => steps.push(Step::Mask(T::from_scalar(fill))),
            ChainOp::Unary(u) => {
                if unary_result_dtype(u, T::DTYPE).ok()? != T::DTYPE {
                    return None;
                }
                steps.push(Step::Unary(funary(u)?));
            }
            ChainOp::Scalar { op, scalar, left } => {
                // NEP 50: the op runs in the block's dtype exactly when the scalar promotes
                // to it and the result keeps it (always true for float ops on floats).
                if scalar.promote_with(T::DTYPE) != T::DTYPE
                    || binary_scalar_result_dtype(op, T::DTYPE, scalar).ok()? != T::DTYPE
                {
                    return None;
                }
                let b = fbinary(op)?;
                let s = T::from_scalar(scalar);
                let mul = match steps.last() {
                    Some(Step::Right(FBinary::Mul, m) | Step::Left(FBinary::Mul, m)) => Some(*m),
                    _ => None,
                };
                let step = match (mul, b, left) {
                    (Some(m), FBinary::Add, _) => Step::MulAdd(m, s),
                    (Some(m), FBinary::Sub, false) => Step::MulAdd(m, s.k_neg()),
                    (Some(m), FBinary::Sub, true) => Step::MulAdd(m.k_neg(), s),
                    (_, b, false) => Step::Right(b, s),
                    (_, b, true) => Step::Left(b, s),
                };
                if matches!(step, Step::MulAdd(..)) {
                    steps.pop();
                }
                steps.push(step);
            }
        }
    }
    Some(steps)
}

/// Runs `steps` (at least one) on a sub-tile: the first reads `src`, the others work in
/// `dst`, which stays in L1.
#[inline]
fn run_steps<T: Lane>(steps: &[Step<T>], src: &[T], dst: &mut [T]) {
    let Some((first, rest)) = steps.split_first() else {
        dst.copy_from_slice(src);
        return;
    };
    T::map_step(first, Some(src), dst);
    for step in rest {
        T::map_step(step, None, dst);
    }
}

fn map_typed<T: Lane>(steps: &[Step<T>], src: &[T]) -> Vec<T> {
    // Zeroed memory comes from the allocator as untouched pages: no extra pass.
    let mut out = vec![T::default(); src.len()];
    for (s, d) in src.chunks(SUB).zip(out.chunks_mut(SUB)) {
        run_steps(steps, s, d);
    }
    out
}

fn sum_typed<T: Lane>(steps: &[Step<T>], src: &[T], skipna: bool, count: bool) -> SumCount {
    let mut buf = [T::default(); SUB];
    let mut total = Cascade::new();
    let mut summed = 0usize;
    // A plain sum folds the last step into the accumulation loop; a mean counts the
    // chain's output values, so it runs every step into the buffer first.
    let (head, last) = match steps.split_last() {
        Some((last, head)) if !count => (head, Some(last)),
        _ => (steps, None),
    };
    for s in src.chunks(SUB) {
        let data: &[T] = if head.is_empty() {
            s
        } else {
            let b = &mut buf[..s.len()];
            run_steps(head, s, b);
            b
        };
        if count {
            let (v, c) = sum_count(data, skipna);
            total.push(v);
            summed += c;
        } else {
            total.push(T::sum_step(last, data, skipna));
        }
    }
    SumCount {
        sum: total.total(),
        count: summed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{binary_scalar, unary};

    fn values(n: usize) -> Vec<f64> {
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -2.5,
            1e300,
            -1e-300,
        ];
        (0..n)
            .map(|i| {
                specials
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| ((i * 7919) % 2003) as f64 / 97.0 - 10.0)
            })
            .collect()
    }

    fn block(dt: DType, n: usize) -> Chunk {
        Chunk::from_f64_vec(&[n], values(n), dt).unwrap()
    }

    /// The chain evaluated op by op with the public kernels.
    fn reference(chain: &[ChainOp], x: &Chunk) -> Chunk {
        chain.iter().fold(x.clone(), |c, op| match *op {
            ChainOp::Unary(u) => unary(u, &c).unwrap(),
            ChainOp::Scalar { op, scalar, left } => binary_scalar(op, &c, scalar, left).unwrap(),
            ChainOp::AsType(d) => c.astype(d),
            // the composite CF decoding used before the mask was one op
            ChainOp::Mask(fill) => {
                let hit = binary_scalar(BinaryOp::Eq, &c, fill, false).unwrap();
                let nan_dt = Scalar::Float(f64::NAN).promote_with(c.dtype());
                let nan = Chunk::full(&[], Scalar::Float(f64::NAN), nan_dt);
                crate::kernels::where_(&hit, &nan, &c).unwrap()
            }
        })
    }

    fn same_bits(a: &Chunk, b: &Chunk) -> bool {
        a.dtype() == b.dtype()
            && a.shape() == b.shape()
            && a.to_f64_vec()
                .iter()
                .zip(b.to_f64_vec())
                .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
    }

    #[test]
    fn every_step_equals_its_kernel() {
        let n = 3 * SUB + 5;
        for dt in [DType::F32, DType::F64] {
            let x = block(dt, n);
            for u in UnaryOp::ALL {
                let chain = [ChainOp::Unary(u)];
                match Program::compile(&chain, dt) {
                    Some(p) => {
                        let got = p.map(&x).unwrap().unwrap();
                        assert!(same_bits(&got, &reference(&chain, &x)), "{u:?} on {dt}");
                    }
                    None => assert_ne!(unary_result_dtype(u, dt).ok(), Some(dt), "{u:?}"),
                }
            }
            for op in BinaryOp::ALL {
                for scalar in [Scalar::Float(2.5), Scalar::Int(-3), Scalar::Bool(true)] {
                    for left in [false, true] {
                        let chain = [ChainOp::Scalar { op, scalar, left }];
                        let Some(p) = Program::compile(&chain, dt) else {
                            assert!(
                                fbinary(op).is_none()
                                    || binary_scalar_result_dtype(op, dt, scalar).ok() != Some(dt),
                                "{op:?} {scalar} on {dt} should compile"
                            );
                            continue;
                        };
                        let got = p.map(&x).unwrap().unwrap();
                        let want = reference(&chain, &x);
                        assert!(
                            same_bits(&got, &want),
                            "{op:?} {scalar} left={left} on {dt}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn masking_equals_where_of_equal() {
        // fill values as CF stores write them: 1e20 (not exact in float32), 0, the data's own
        // values, NaN (masks nothing) and infinity
        for dt in [DType::F32, DType::F64] {
            let mut v = values(2 * SUB + 7);
            v[3] = 1e20;
            v[SUB + 1] = f64::from(1e20f32);
            let x = Chunk::from_f64_vec(&[v.len()], v, dt).unwrap();
            for fill in [1e20, 0.0, 0.5, f64::NAN, f64::INFINITY] {
                let chain = [
                    ChainOp::Mask(Scalar::Float(fill)),
                    ChainOp::Scalar {
                        op: BinaryOp::Mul,
                        scalar: Scalar::Float(2.0),
                        left: false,
                    },
                ];
                let p = Program::compile(&chain, dt).unwrap();
                let got = p.map(&x).unwrap().unwrap();
                let want = reference(&chain, &x);
                assert!(same_bits(&got, &want), "mask {fill} on {dt}");
                let sum = p.sum(&x, true, true).unwrap();
                let w = want.to_f64_vec();
                let kept: Vec<f64> = w.into_iter().filter(|v| !v.is_nan()).collect();
                assert_eq!(sum.count, kept.len(), "mask {fill} on {dt}");
            }
            // 1e20 masks the float32 rounding of 1e20 too
            let p = Program::compile(&[ChainOp::Mask(Scalar::Float(1e20))], dt).unwrap();
            let nan = p.map(&x).unwrap().unwrap().to_f64_vec();
            let masked = nan.iter().filter(|v| v.is_nan()).count()
                - x.to_f64_vec().iter().filter(|v| v.is_nan()).count();
            assert_eq!(masked, if dt == DType::F32 { 2 } else { 1 }, "{dt}");
        }
    }

    #[test]
    fn multiply_then_add_fuses_exactly() {
        let mul = |left| ChainOp::Scalar {
            op: BinaryOp::Mul,
            scalar: Scalar::Float(0.1),
            left,
        };
        let add = |op, left| ChainOp::Scalar {
            op,
            scalar: Scalar::Float(273.15),
            left,
        };
        for dt in [DType::F32, DType::F64] {
            let x = block(dt, 2 * SUB + 3);
            for (m, a) in [
                (mul(false), add(BinaryOp::Add, false)),
                (mul(true), add(BinaryOp::Add, true)),
                (mul(false), add(BinaryOp::Sub, false)),
                (mul(true), add(BinaryOp::Sub, true)),
            ] {
                let chain = [m, a, ChainOp::Unary(UnaryOp::Sqrt)];
                let p = Program::compile(&chain, dt).unwrap();
                let steps = match &p {
                    Program::F32(s) => s.len(),
                    Program::F64(s) => s.len(),
                };
                assert_eq!(steps, 2, "{chain:?}");
                let got = p.map(&x).unwrap().unwrap();
                assert!(same_bits(&got, &reference(&chain, &x)), "{chain:?} on {dt}");
            }
        }
    }

    #[test]
    fn dtype_changes_and_integers_are_not_compiled() {
        let sqrt = [ChainOp::Unary(UnaryOp::Sqrt)];
        assert!(Program::compile(&sqrt, DType::I32).is_none());
        assert!(Program::compile(&[ChainOp::AsType(DType::F32)], DType::F64).is_none());
        assert!(Program::compile(&[ChainOp::Unary(UnaryOp::IsNan)], DType::F64).is_none());
        let cmp = ChainOp::Scalar {
            op: BinaryOp::Lt,
            scalar: Scalar::Float(1.0),
            left: false,
        };
        assert!(Program::compile(&[cmp], DType::F64).is_none());
        // A same-dtype astype is a no-op.
        let p = Program::compile(&[ChainOp::AsType(DType::F64)], DType::F64).unwrap();
        assert_eq!(p, Program::F64(vec![]));
        // Wrong dtype or a non-contiguous block: not handled here.
        let x = block(DType::F32, 10);
        assert!(p.map(&x).is_none() && p.sum(&x, true, false).is_none());
    }

    #[test]
    fn sums_and_counts_skip_nan() {
        let chain = [
            ChainOp::Scalar {
                op: BinaryOp::Mul,
                scalar: Scalar::Float(2.0),
                left: false,
            },
            ChainOp::Scalar {
                op: BinaryOp::Add,
                scalar: Scalar::Float(1.0),
                left: false,
            },
            ChainOp::Unary(UnaryOp::Sqrt),
        ];
        for n in [0, 1, 7, SUB, 5 * SUB + 13] {
            for dt in [DType::F32, DType::F64] {
                let x = block(dt, n);
                let want = reference(&chain, &x).to_f64_vec();
                let finite: Vec<f64> = want.iter().copied().filter(|v| !v.is_nan()).collect();
                let p = Program::compile(&chain, dt).unwrap();
                for count in [false, true] {
                    let got = p.sum(&x, true, count).unwrap();
                    let expect: f64 = finite.iter().sum();
                    // inf (from the +inf input) survives, NaNs are skipped.
                    assert!(
                        got.sum == expect
                            || (got.sum - expect).abs() <= 1e-12 * expect.abs().max(1.0),
                        "{n} {dt}: {} vs {expect}",
                        got.sum
                    );
                    assert_eq!(got.count, if count { finite.len() } else { 0 });
                    let raw = p.sum(&x, false, count).unwrap();
                    assert_eq!(raw.sum.is_nan(), want.iter().any(|v| v.is_nan()));
                    assert_eq!(raw.count, if count { n } else { 0 });
                }
            }
        }
    }

    #[test]
    fn cascade_is_accurate() {
        let mut c = Cascade::new();
        for _ in 0..1_000_000 {
            c.push(0.1);
        }
        assert!((c.total() - 100_000.0).abs() < 1e-8, "{}", c.total());
        assert_eq!(Cascade::new().total(), 0.0);
    }
}
