//! Tree-reduction building blocks.
//!
//! A reduction runs in three steps: [`reduce_block`] turns each block into a [`Partial`]
//! (the reduction's state, with the block's keepdims shape: reduced axes have length 1),
//! [`combine_partials`] merges partials of neighbouring blocks elementwise (any number of
//! levels), and [`finalize`] turns the last partial into the result block in
//! [`reduce_result_dtype`].
//!
//! Accumulators: float sums and products are accumulated in f64 (float32 input included;
//! contiguous runs use NumPy's pairwise summation), integer sums and products wrap in
//! int64/uint64. Means carry `(sum, count)`; variances carry `(count, mean, M2)` computed
//! per block in two passes and merged with Chan et al.'s parallel formula.
//!
//! NaN rules with `skipna = true` (xarray's default for floats): NaNs are ignored; the sum
//! of nothing is 0, the product 1, mean/var/std/min/max of nothing NaN; `count` counts
//! non-NaN values; argmin/argmax of an all-NaN slice is an error. With `skipna = false`,
//! NaN propagates and argmin/argmax report the first NaN. `skipna` has no effect on
//! integer and bool inputs, nor on `count`, `any` and `all` (NaN is truthy).
//!
//! Every kernel walks the input once in C order, row by row along the last axis, without
//! full-size temporaries.

use super::{check_axes, dtype_err, fmt_shape, from_vec, kernel_err, shape_err};
use crate::chunk::{Chunk, Element};
use crate::dtype::DType;
use crate::error::Result;
use crate::with_chunk;
use ndarray::{ArrayD, IxDyn, Zip};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReduceOp {
    /// `sum` (`nansum` with skipna).
    Sum,
    /// `prod` (`nanprod` with skipna).
    Prod,
    /// `mean` (`nanmean` with skipna).
    Mean,
    /// `min` (`nanmin` with skipna).
    Min,
    /// `max` (`nanmax` with skipna).
    Max,
    /// `var` with `ddof` (`nanvar` with skipna).
    Var,
    /// `std` with `ddof` (`nanstd` with skipna).
    Std,
    /// `count`: the number of non-NaN values.
    Count,
    /// `any`: some value is non-zero.
    Any,
    /// `all`: every value is non-zero.
    All,
    /// `argmin`: the global index of the first minimum (`nanargmin` with skipna).
    ArgMin,
    /// `argmax`: the global index of the first maximum (`nanargmax` with skipna).
    ArgMax,
}

impl ReduceOp {
    /// Every reduction, in declaration order.
    pub const ALL: [ReduceOp; 12] = {
        use ReduceOp::*;
        [
            Sum, Prod, Mean, Min, Max, Var, Std, Count, Any, All, ArgMin, ArgMax,
        ]
    };

    /// The NumPy/xarray name (`"sum"`, `"argmin"`...; the nan-variants share the name).
    pub fn name(&self) -> &'static str {
        use ReduceOp::*;
        match self {
            Sum => "sum",
            Prod => "prod",
            Mean => "mean",
            Min => "min",
            Max => "max",
            Var => "var",
            Std => "std",
            Count => "count",
            Any => "any",
            All => "all",
            ArgMin => "argmin",
            ArgMax => "argmax",
        }
    }

    /// True for `argmin` and `argmax`.
    pub fn is_arg(&self) -> bool {
        matches!(self, ReduceOp::ArgMin | ReduceOp::ArgMax)
    }
}

/// The dtype of a reduction's result for an input of dtype `x`: `sum_dtype` for sum/prod,
/// `mean_dtype` for mean/var/std, `x` for min/max, int64 for count/argmin/argmax, bool for
/// any/all.
///
/// ```
/// use gridflow_array::DType;
/// use gridflow_array::kernels::{ReduceOp, reduce_result_dtype};
/// assert_eq!(reduce_result_dtype(ReduceOp::Sum, DType::U8).unwrap(), DType::U64);
/// assert_eq!(reduce_result_dtype(ReduceOp::Mean, DType::F32).unwrap(), DType::F32);
/// assert_eq!(reduce_result_dtype(ReduceOp::Var, DType::I16).unwrap(), DType::F64);
/// assert_eq!(reduce_result_dtype(ReduceOp::ArgMax, DType::F32).unwrap(), DType::I64);
/// ```
pub fn reduce_result_dtype(op: ReduceOp, x: DType) -> Result<DType> {
    use ReduceOp::*;
    Ok(match op {
        Sum | Prod => x.sum_dtype(),
        Mean | Var | Std => x.mean_dtype(),
        Min | Max => x,
        Count | ArgMin | ArgMax => DType::I64,
        Any | All => DType::Bool,
    })
}

/// What to reduce and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceSpec {
    /// The reduction.
    pub op: ReduceOp,
    /// The reduced axes of the block: sorted, unique, in range.
    pub axes: Vec<usize>,
    /// Skip NaNs (xarray's default `true`; no effect on integers).
    pub skipna: bool,
    /// Delta degrees of freedom for var/std (divisor `n - ddof`).
    pub ddof: usize,
}

impl ReduceSpec {
    /// A spec with xarray's defaults: `skipna = true`, `ddof = 0`.
    pub fn new(op: ReduceOp, axes: Vec<usize>) -> ReduceSpec {
        ReduceSpec {
            op,
            axes,
            skipna: true,
            ddof: 0,
        }
    }

    fn check(&self, ndim: usize) -> Result<()> {
        let op = self.op.name();
        check_axes(op, &self.axes, ndim)?;
        if self.axes.windows(2).any(|w| w[0] > w[1]) {
            return Err(shape_err(
                op,
                format!("reduced axes {:?} must be sorted", self.axes),
            ));
        }
        if self.op.is_arg() && self.axes.len() != ndim && self.axes.len() != 1 {
            return Err(shape_err(
                op,
                format!(
                    "reduces one axis or all of them, not axes {:?} of a {ndim}-d block",
                    self.axes
                ),
            ));
        }
        Ok(())
    }
}

/// Where a block sits in the whole array, for the global indices of argmin/argmax.
///
/// With one reduced axis `a` the index reported is `block_offset[a] + local`; with all axes
/// reduced it is the flat C-order index in an array of shape `array_shape`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArgContext {
    /// The block's first element's position in the array, per axis.
    pub block_offset: Vec<usize>,
    /// The whole array's shape.
    pub array_shape: Vec<usize>,
}

/// The state of a reduction over one block or a group of blocks, with the keepdims shape
/// (reduced axes have length 1). Every array in a variant has that shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Partial {
    /// Running sums: float64 for float inputs (float32 included), int64 (wrapping) for
    /// signed integers and bool, uint64 (wrapping) for unsigned integers. NaNs were skipped
    /// (counted as 0) with skipna.
    Sum(Chunk),
    /// Running products, with the accumulator dtypes of [`Partial::Sum`].
    Prod(Chunk),
    /// A mean's state: the float64 sum and the number of values summed.
    Mean {
        /// Sum of the values (NaNs skipped with skipna).
        sum: ArrayD<f64>,
        /// Number of values summed.
        count: ArrayD<i64>,
    },
    /// A variance's state (var and std): count, mean and sum of squared deviations.
    Moments {
        /// Number of values.
        count: ArrayD<i64>,
        /// Their mean (NaN when `count` is 0).
        mean: ArrayD<f64>,
        /// Σ (x − mean)² (0 when `count` is 0).
        m2: ArrayD<f64>,
    },
    /// Running minimum or maximum in the input dtype (NaN for float slots that have seen
    /// only NaNs, with skipna).
    Extreme(Chunk),
    /// Running counts of non-NaN values.
    Count(ArrayD<i64>),
    /// Running any (or) / all (and).
    Logical(ArrayD<bool>),
    /// ArgMin/ArgMax state: the best value so far (input dtype) and its global index
    /// (-1 when there is no candidate yet: an empty or all-NaN slice).
    Arg {
        /// The best value.
        value: Chunk,
        /// Its global index (see [`ArgContext`]).
        index: ArrayD<i64>,
    },
}

impl Partial {
    /// The keepdims shape of the partial.
    pub fn shape(&self) -> &[usize] {
        match self {
            Partial::Sum(c) | Partial::Prod(c) | Partial::Extreme(c) => c.shape(),
            Partial::Mean { count, .. } | Partial::Moments { count, .. } => count.shape(),
            Partial::Count(c) => c.shape(),
            Partial::Logical(b) => b.shape(),
            Partial::Arg { index, .. } => index.shape(),
        }
    }

    /// Bytes held by the partial's arrays.
    pub fn nbytes(&self) -> usize {
        match self {
            Partial::Sum(c) | Partial::Prod(c) | Partial::Extreme(c) => c.nbytes(),
            Partial::Mean { sum, count } => sum.len() * 8 + count.len() * 8,
            Partial::Moments { count, mean, m2 } => (count.len() + mean.len() + m2.len()) * 8,
            Partial::Count(c) => c.len() * 8,
            Partial::Logical(b) => b.len(),
            Partial::Arg { value, index } => value.nbytes() + index.len() * 8,
        }
    }

    /// Checks that every array of the partial has the same shape (a deserialized partial
    /// could be inconsistent).
    fn validate(&self, op: &str) -> Result<()> {
        let shape = self.shape();
        let shapes: Vec<&[usize]> = match self {
            Partial::Mean { sum, count } => vec![sum.shape(), count.shape()],
            Partial::Moments { count, mean, m2 } => vec![count.shape(), mean.shape(), m2.shape()],
            Partial::Arg { value, index } => vec![value.shape(), index.shape()],
            _ => vec![],
        };
        if shapes.iter().all(|s| *s == shape) {
            Ok(())
        } else {
            let all: Vec<String> = shapes.iter().map(|s| fmt_shape(s)).collect();
            Err(shape_err(
                op,
                format!(
                    "inconsistent {} partial with shapes {}",
                    self.kind(),
                    all.join(" ")
                ),
            ))
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Partial::Sum(_) => "Sum",
            Partial::Prod(_) => "Prod",
            Partial::Mean { .. } => "Mean",
            Partial::Moments { .. } => "Moments",
            Partial::Extreme(_) => "Extreme",
            Partial::Count(_) => "Count",
            Partial::Logical(_) => "Logical",
            Partial::Arg { .. } => "Arg",
        }
    }

    /// True when this variant holds the state of `op`.
    fn matches(&self, op: ReduceOp) -> bool {
        use ReduceOp::*;
        matches!(
            (op, self),
            (Sum, Partial::Sum(_))
                | (Prod, Partial::Prod(_))
                | (Mean, Partial::Mean { .. })
                | (Var | Std, Partial::Moments { .. })
                | (Min | Max, Partial::Extreme(_))
                | (Count, Partial::Count(_))
                | (Any | All, Partial::Logical(_))
                | (ArgMin | ArgMax, Partial::Arg { .. })
        )
    }
}

/// The accumulator dtype of sums and products.
fn acc_dtype(x: DType) -> DType {
    if x.is_float() {
        DType::F64
    } else {
        x.sum_dtype()
    }
}

// ---------------------------------------------------------------------------------------
// The walk: rows of the last axis, with their output offsets
// ---------------------------------------------------------------------------------------

/// The block's shape simplified for the walk: length-1 axes dropped and neighbouring axes
/// that are both reduced (or both kept) merged, which never changes C-order offsets.
struct Plan {
    /// Merged dimensions (never empty).
    dims: Vec<usize>,
    /// Output stride of each merged dimension (0 for reduced ones).
    ostride: Vec<usize>,
    /// Stride of the leading reduced dimensions in the "row number along the reduced
    /// axes" `k` (0 for kept ones and for the last dimension).
    kstride: Vec<usize>,
    /// Whether the last merged dimension is reduced.
    last_reduced: bool,
    /// The keepdims shape.
    out_shape: Vec<usize>,
    /// Number of output slots.
    out_len: usize,
    /// Number of input values reduced into each slot.
    extent: usize,
    /// Number of input values.
    total: usize,
}

impl Plan {
    fn new(shape: &[usize], axes: &[usize]) -> Plan {
        let mut dims: Vec<usize> = Vec::new();
        let mut red: Vec<bool> = Vec::new();
        let mut out_shape = shape.to_vec();
        let mut extent = 1usize;
        for (a, &d) in shape.iter().enumerate() {
            let r = axes.contains(&a);
            if r {
                out_shape[a] = 1;
                extent *= d;
            }
            if d == 1 {
                continue;
            }
            match (dims.last_mut(), red.last()) {
                (Some(last), Some(&lr)) if lr == r => *last *= d,
                _ => {
                    dims.push(d);
                    red.push(r);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            red.push(false);
        }
        let n = dims.len();
        let mut ostride = vec![0; n];
        let mut kstride = vec![0; n];
        let (mut oacc, mut kacc) = (1usize, 1usize);
        for j in (0..n).rev() {
            if red[j] {
                if j + 1 < n {
                    kstride[j] = kacc;
                    kacc *= dims[j];
                }
            } else {
                ostride[j] = oacc;
                oacc *= dims[j];
            }
        }
        Plan {
            last_reduced: red[n - 1],
            out_len: out_shape.iter().product(),
            total: shape.iter().product(),
            dims,
            ostride,
            kstride,
            out_shape,
            extent,
        }
    }

    fn row_len(&self) -> usize {
        self.dims[self.dims.len() - 1]
    }

    /// Calls `f(base, k, row)` for every row of the last merged axis, in C order: `base` is
    /// the output offset of the row's first element and `k` the row's position along the
    /// leading reduced axes. `data` holds the block in C order.
    #[inline]
    fn walk<T>(&self, data: &[T], mut f: impl FnMut(usize, usize, &[T])) {
        if self.total == 0 || data.len() != self.total {
            return;
        }
        let n = self.dims.len();
        let row = self.row_len();
        let mut idx = vec![0usize; n - 1];
        let (mut base, mut k) = (0usize, 0usize);
        for r in data.chunks_exact(row) {
            f(base, k, r);
            let mut j = n - 1;
            while j > 0 {
                j -= 1;
                idx[j] += 1;
                base += self.ostride[j];
                k += self.kstride[j];
                if idx[j] < self.dims[j] {
                    break;
                }
                base -= self.ostride[j] * self.dims[j];
                k -= self.kstride[j] * self.dims[j];
                idx[j] = 0;
            }
        }
    }
}

impl Plan {
    /// For a plan whose last axis is kept: calls `f(base, slab)` for every run of
    /// consecutive rows that share their output offset `base` (the rows along the innermost
    /// reduced axis, which precedes the last axis), in C order.
    #[inline]
    fn walk_slabs<T>(&self, data: &[T], mut f: impl FnMut(usize, &[T])) {
        if self.total == 0 || data.len() != self.total {
            return;
        }
        let n = self.dims.len();
        if n == 1 {
            f(0, data);
            return;
        }
        let lead = n - 2;
        let mut idx = vec![0usize; lead];
        let mut base = 0usize;
        for s in data.chunks_exact(self.dims[n - 2] * self.dims[n - 1]) {
            f(base, s);
            let mut j = lead;
            while j > 0 {
                j -= 1;
                idx[j] += 1;
                base += self.ostride[j];
                if idx[j] < self.dims[j] {
                    break;
                }
                base -= self.ostride[j] * self.dims[j];
                idx[j] = 0;
            }
        }
    }
}

/// Folds the rows of `slab` (each `out.len()` long) into `out`. Long rows go four at a
/// time (`f4(slot, a, b, c, d)`, then `f1(slot, v)` for the remaining rows), which cuts the
/// read-modify-write traffic on `out` once it no longer fits in L1; short rows one by one.
#[inline(always)]
fn fold_slab<T: Copy, A>(
    out: &mut [A],
    slab: &[T],
    f4: impl Fn(&mut A, T, T, T, T),
    f1: impl Fn(&mut A, T),
) {
    let len = out.len();
    if len == 0 {
        return;
    }
    // Short rows: the slots stay in L1 and one sequential stream is fastest.
    let quad_rows = if len >= 1024 { 4 * len } else { usize::MAX / 2 };
    let quads = slab.chunks_exact(quad_rows.min(slab.len() + 1));
    let rest = quads.remainder();
    for q in quads {
        let (r0, q) = q.split_at(len);
        let (r1, q) = q.split_at(len);
        let (r2, r3) = q.split_at(len);
        let (r0, r1, r2, r3) = (&r0[..len], &r1[..len], &r2[..len], &r3[..len]);
        let out = &mut out[..len];
        for i in 0..len {
            f4(&mut out[i], r0[i], r1[i], r2[i], r3[i]);
        }
    }
    for r in rest.chunks_exact(len) {
        let (r, out) = (&r[..len], &mut out[..len]);
        for i in 0..len {
            f1(&mut out[i], r[i]);
        }
    }
}

/// [`fold_slab`] for `slot = comb(slot, map(v))` with an associative, commutative `comb`.
#[inline(always)]
fn fold_slab_mc<T: Copy, A: Copy>(
    out: &mut [A],
    slab: &[T],
    map: impl Fn(T) -> A + Copy,
    comb: impl Fn(A, A) -> A + Copy,
) {
    fold_slab(
        out,
        slab,
        |o, a, b, c, d| *o = comb(*o, comb(comb(map(a), map(b)), comb(map(c), map(d)))),
        |o, v| *o = comb(*o, map(v)),
    );
}

/// NumPy's pairwise summation of `f(x)` (8 accumulators below 128 values, halving above).
#[inline]
fn pairwise<T: Copy>(x: &[T], f: &impl Fn(T) -> f64) -> f64 {
    if x.len() <= 128 {
        let mut acc = [0.0f64; 8];
        let chunks = x.chunks_exact(8);
        let rem = chunks.remainder();
        for c in chunks {
            for j in 0..8 {
                acc[j] += f(c[j]);
            }
        }
        let mut s =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for &v in rem {
            s += f(v);
        }
        s
    } else {
        let mid = x.len() / 2 / 8 * 8;
        pairwise(&x[..mid], f) + pairwise(&x[mid..], f)
    }
}

/// Folds `f` over `x` with 8 independent lanes (for associative, commutative `f`).
#[inline]
fn fold_lanes<T: Copy>(x: &[T], init: T, f: impl Fn(T, T) -> T) -> T {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] = f(acc[j], c[j]);
        }
    }
    let mut s = init;
    for a in acc {
        s = f(s, a);
    }
    for &v in rem {
        s = f(s, v);
    }
    s
}

// ---------------------------------------------------------------------------------------
// Per-type behaviour
// ---------------------------------------------------------------------------------------

/// Element types the reductions handle.
trait RElem: Element {
    const IS_FLOAT: bool;
    /// The largest value (min's identity): +inf for floats.
    const HIGHEST: Self;
    /// The smallest value (max's identity): -inf for floats.
    const LOWEST: Self;
    /// min ignoring NaN (float `fmin`).
    fn min_skip(self, o: Self) -> Self;
    /// max ignoring NaN.
    fn max_skip(self, o: Self) -> Self;
    /// min propagating NaN.
    fn min_prop(self, o: Self) -> Self;
    /// max propagating NaN.
    fn max_prop(self, o: Self) -> Self;
    /// The sum accumulator of a block.
    fn sum_block(p: &Plan, data: &[Self], skipna: bool) -> Chunk;
    /// The product accumulator of a block.
    fn prod_block(p: &Plan, data: &[Self], skipna: bool) -> Chunk;
}

/// Float sums in f64 (pairwise along contiguous rows).
fn sum_f64<T: Element>(p: &Plan, data: &[T], skipna: bool) -> Vec<f64> {
    let mut out = vec![0.0f64; p.out_len];
    let conv = |v: T| v.to_f64();
    let skip = |v: T| if v.is_nan() { T::default() } else { v }.to_f64();
    if p.last_reduced {
        p.walk(data, |b, _, r| {
            let mut s = pairwise(r, &conv);
            if skipna && s.is_nan() {
                s = pairwise(r, &skip);
            }
            out[b] += s;
        });
    } else {
        let l = p.row_len();
        if skipna {
            p.walk_slabs(data, |b, s| {
                fold_slab_mc(&mut out[b..b + l], s, skip, |x, y| x + y)
            });
        } else {
            p.walk_slabs(data, |b, s| {
                fold_slab_mc(&mut out[b..b + l], s, conv, |x, y| x + y)
            });
        }
    }
    out
}

/// Float products in f64.
fn prod_f64<T: Element>(p: &Plan, data: &[T], skipna: bool) -> Vec<f64> {
    let mut out = vec![1.0f64; p.out_len];
    let conv = move |v: T| {
        if skipna && v.is_nan() {
            1.0
        } else {
            v.to_f64()
        }
    };
    if p.last_reduced {
        p.walk(data, |b, _, r| {
            out[b] *= r.iter().fold(1.0, |a, &v| a * conv(v))
        });
    } else {
        let l = p.row_len();
        p.walk_slabs(data, |b, s| {
            fold_slab_mc(&mut out[b..b + l], s, conv, |x, y| x * y)
        });
    }
    out
}

/// Integer sums or products with a wrapping accumulator `A`.
fn fold_int<T: Copy, A: Copy>(
    p: &Plan,
    data: &[T],
    init: A,
    conv: impl Fn(T) -> A + Copy,
    f: impl Fn(A, A) -> A + Copy,
) -> Vec<A> {
    let mut out = vec![init; p.out_len];
    if p.last_reduced {
        p.walk(data, |b, _, r| {
            out[b] = f(out[b], r.iter().fold(init, |a, &v| f(a, conv(v))))
        });
    } else {
        let l = p.row_len();
        p.walk_slabs(data, |b, s| fold_slab_mc(&mut out[b..b + l], s, conv, f));
    }
    out
}

fn wrap_vec<T: Element>(p: &Plan, v: Vec<T>) -> Chunk {
    match ArrayD::from_shape_vec(IxDyn(&p.out_shape), v) {
        Ok(a) => T::wrap(a),
        // Unreachable: the vector always has `out_len` elements.
        Err(_) => T::wrap(ArrayD::from_elem(IxDyn(&p.out_shape), T::default())),
    }
}

macro_rules! impl_relem_float {
    ($($t:ty),*) => {$(
        impl RElem for $t {
            const IS_FLOAT: bool = true;
            const HIGHEST: Self = <$t>::INFINITY;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            #[inline(always)]
            fn min_skip(self, o: Self) -> Self { self.min(o) }
            #[inline(always)]
            fn max_skip(self, o: Self) -> Self { self.max(o) }
            #[inline(always)]
            fn min_prop(self, o: Self) -> Self { if o.is_nan() || o < self { o } else { self } }
            #[inline(always)]
            fn max_prop(self, o: Self) -> Self { if o.is_nan() || o > self { o } else { self } }
            fn sum_block(p: &Plan, data: &[Self], skipna: bool) -> Chunk {
                wrap_vec(p, sum_f64(p, data, skipna))
            }
            fn prod_block(p: &Plan, data: &[Self], skipna: bool) -> Chunk {
                wrap_vec(p, prod_f64(p, data, skipna))
            }
        }
    )*};
}
impl_relem_float!(f32, f64);

macro_rules! impl_relem_int {
    ($acc:ty; $($t:ty),*) => {$(
        impl RElem for $t {
            const IS_FLOAT: bool = false;
            const HIGHEST: Self = <$t>::MAX;
            const LOWEST: Self = <$t>::MIN;
            #[inline(always)]
            fn min_skip(self, o: Self) -> Self { if o < self { o } else { self } }
            #[inline(always)]
            fn max_skip(self, o: Self) -> Self { if o > self { o } else { self } }
            #[inline(always)]
            fn min_prop(self, o: Self) -> Self { if o < self { o } else { self } }
            #[inline(always)]
            fn max_prop(self, o: Self) -> Self { if o > self { o } else { self } }
            #[allow(clippy::cast_lossless)]
            fn sum_block(p: &Plan, data: &[Self], _skipna: bool) -> Chunk {
                wrap_vec(p, fold_int(p, data, 0 as $acc, |v| v as $acc, <$acc>::wrapping_add))
            }
            #[allow(clippy::cast_lossless)]
            fn prod_block(p: &Plan, data: &[Self], _skipna: bool) -> Chunk {
                wrap_vec(p, fold_int(p, data, 1 as $acc, |v| v as $acc, <$acc>::wrapping_mul))
            }
        }
    )*};
}
impl_relem_int!(i64; i8, i16, i32, i64);
impl_relem_int!(u64; u8, u16, u32, u64);

impl RElem for bool {
    const IS_FLOAT: bool = false;
    const HIGHEST: Self = true;
    const LOWEST: Self = false;
    #[inline(always)]
    fn min_skip(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn max_skip(self, o: Self) -> Self {
        self | o
    }
    #[inline(always)]
    fn min_prop(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn max_prop(self, o: Self) -> Self {
        self | o
    }
    fn sum_block(p: &Plan, data: &[Self], _skipna: bool) -> Chunk {
        wrap_vec(p, fold_int(p, data, 0i64, i64::from, i64::wrapping_add))
    }
    fn prod_block(p: &Plan, data: &[Self], _skipna: bool) -> Chunk {
        wrap_vec(p, fold_int(p, data, 1i64, i64::from, i64::wrapping_mul))
    }
}

// ---------------------------------------------------------------------------------------
// Block kernels
// ---------------------------------------------------------------------------------------

/// Sums and counts for means and variances (counts skip NaN for floats with skipna).
fn sum_count<T: RElem>(p: &Plan, data: &[T], skipna: bool) -> (Vec<f64>, Vec<i64>) {
    if !(T::IS_FLOAT && skipna) {
        let extent = i64::try_from(p.extent).unwrap_or(i64::MAX);
        return (sum_f64(p, data, false), vec![extent; p.out_len]);
    }
    let mut sum = vec![0.0f64; p.out_len];
    let mut count = vec![0i64; p.out_len];
    let conv = |v: T| v.to_f64();
    let skip = |v: T| if v.is_nan() { T::default() } else { v }.to_f64();
    if p.last_reduced {
        p.walk(data, |b, _, r| {
            let mut s = pairwise(r, &conv);
            let mut n = r.len();
            if s.is_nan() {
                s = pairwise(r, &skip);
                n -= r.iter().filter(|v| v.is_nan()).count();
            }
            sum[b] += s;
            count[b] += i64::try_from(n).unwrap_or(i64::MAX);
        });
    } else {
        // (sum, count) pairs; counts in f64 (exact below 2^53) so the pair vectorises.
        let l = p.row_len();
        let mut acc = vec![(0.0f64, 0.0f64); p.out_len];
        let map = |v: T| {
            if v.is_nan() {
                (0.0, 0.0)
            } else {
                (v.to_f64(), 1.0)
            }
        };
        p.walk_slabs(data, |b, s| {
            fold_slab_mc(&mut acc[b..b + l], s, map, |x, y| (x.0 + y.0, x.1 + y.1));
        });
        for ((s, c), (x, n)) in sum.iter_mut().zip(count.iter_mut()).zip(acc) {
            *s = x;
            *c = n as i64;
        }
    }
    (sum, count)
}

/// Per-block moments: two passes (mean, then Σ(x − mean)²).
fn moments<T: RElem>(p: &Plan, data: &[T], skipna: bool) -> (Vec<i64>, Vec<f64>, Vec<f64>) {
    let (sum, count) = sum_count(p, data, skipna);
    let mean: Vec<f64> = sum
        .iter()
        .zip(&count)
        .map(|(&s, &n)| s / n as f64)
        .collect();
    let mut m2 = vec![0.0f64; p.out_len];
    let skip = skipna && T::IS_FLOAT;
    if p.last_reduced {
        p.walk(data, |b, _, r| {
            let m = mean[b];
            m2[b] += if skip {
                pairwise(r, &|v: T| {
                    let d = v.to_f64() - m;
                    if v.is_nan() { 0.0 } else { d * d }
                })
            } else {
                pairwise(r, &|v: T| {
                    let d = v.to_f64() - m;
                    d * d
                })
            };
        });
    } else {
        // (mean, m2) pairs.
        let l = p.row_len();
        let mut acc: Vec<(f64, f64)> = mean.iter().map(|&m| (m, 0.0)).collect();
        fn go<T: Element>(acc: &mut [(f64, f64)], s: &[T], sq: impl Fn(T, f64) -> f64 + Copy) {
            fold_slab(
                acc,
                s,
                |o, a, b, c, d| o.1 += (sq(a, o.0) + sq(b, o.0)) + (sq(c, o.0) + sq(d, o.0)),
                |o, v| o.1 += sq(v, o.0),
            );
        }
        if skip {
            let sq = |v: T, m: f64| {
                let d = v.to_f64() - m;
                if v.is_nan() { 0.0 } else { d * d }
            };
            p.walk_slabs(data, |b, s| go(&mut acc[b..b + l], s, sq));
        } else {
            let sq = |v: T, m: f64| {
                let d = v.to_f64() - m;
                d * d
            };
            p.walk_slabs(data, |b, s| go(&mut acc[b..b + l], s, sq));
        }
        for (o, (_, q)) in m2.iter_mut().zip(acc) {
            *o = q;
        }
    }
    (count, mean, m2)
}

/// Running min/max of a block.
fn extreme<T: RElem>(p: &Plan, data: &[T], is_min: bool, skipna: bool) -> Vec<T> {
    fn go<T: Copy>(p: &Plan, data: &[T], init: T, f: impl Fn(T, T) -> T + Copy) -> Vec<T> {
        let mut out = vec![init; p.out_len];
        if p.last_reduced {
            p.walk(data, |b, _, r| out[b] = f(out[b], fold_lanes(r, init, f)));
        } else {
            let l = p.row_len();
            p.walk_slabs(data, |b, s| fold_slab_mc(&mut out[b..b + l], s, |v| v, f));
        }
        out
    }
    let nan = T::from_f64(f64::NAN);
    match (is_min, T::IS_FLOAT && skipna) {
        (true, true) => go(p, data, nan, T::min_skip),
        (false, true) => go(p, data, nan, T::max_skip),
        (true, false) => go(p, data, T::HIGHEST, T::min_prop),
        (false, false) => go(p, data, T::LOWEST, T::max_prop),
    }
}

/// True when `v` should replace the current candidate `cur` (`has`: there is one).
#[inline(always)]
fn arg_better<T: RElem>(v: T, cur: T, has: bool, is_min: bool, skipna: bool) -> bool {
    if v.is_nan() {
        // skipna: never a candidate; otherwise the first NaN wins.
        return !(skipna || (has && cur.is_nan()));
    }
    if !has {
        return true;
    }
    if cur.is_nan() {
        return false;
    }
    if is_min { v < cur } else { v > cur }
}

/// ArgMin/ArgMax of a block with local indices (along the axis, or flat in the block).
fn arg_local<T: RElem>(p: &Plan, data: &[T], is_min: bool, skipna: bool) -> (Vec<T>, Vec<i64>) {
    let mut best = vec![T::default(); p.out_len];
    let mut idx = vec![-1i64; p.out_len];
    if p.last_reduced {
        p.walk(data, |b, _, r| {
            let (mut cur, mut ci) = (best[b], idx[b]);
            for (i, &v) in r.iter().enumerate() {
                if arg_better(v, cur, ci >= 0, is_min, skipna) {
                    cur = v;
                    ci = i64::try_from(i).unwrap_or(i64::MAX);
                }
            }
            best[b] = cur;
            idx[b] = ci;
        });
    } else {
        p.walk(data, |b, k, r| {
            let k = i64::try_from(k).unwrap_or(i64::MAX);
            let (bs, is) = (&mut best[b..b + r.len()], &mut idx[b..b + r.len()]);
            for ((c, ci), &v) in bs.iter_mut().zip(is.iter_mut()).zip(r) {
                if arg_better(v, *c, *ci >= 0, is_min, skipna) {
                    *c = v;
                    *ci = k;
                }
            }
        });
    }
    (best, idx)
}

/// Converts local arg indices to global ones.
fn globalize(
    op: &str,
    idx: &mut [i64],
    shape: &[usize],
    axes: &[usize],
    ctx: Option<&ArgContext>,
) -> Result<()> {
    let Some(ctx) = ctx else { return Ok(()) };
    let nd = shape.len();
    if ctx.block_offset.len() != nd || ctx.array_shape.len() != nd {
        return Err(shape_err(
            op,
            format!(
                "arg context (offset {:?}, array shape {}) does not match a block of shape {}",
                ctx.block_offset,
                fmt_shape(&ctx.array_shape),
                fmt_shape(shape)
            ),
        ));
    }
    if (0..nd).any(|a| ctx.block_offset[a] + shape[a] > ctx.array_shape[a]) {
        return Err(shape_err(
            op,
            format!(
                "block of shape {} at offset {:?} does not fit in array of shape {}",
                fmt_shape(shape),
                ctx.block_offset,
                fmt_shape(&ctx.array_shape)
            ),
        ));
    }
    let to_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    if axes.len() == nd {
        // Flat C-order index in the whole array.
        for i in idx.iter_mut().filter(|i| **i >= 0) {
            let mut local = usize::try_from(*i).unwrap_or(0);
            let mut coords = vec![0usize; nd];
            for a in (0..nd).rev() {
                coords[a] = local % shape[a].max(1);
                local /= shape[a].max(1);
            }
            let mut flat = 0usize;
            for ((&n, &off), &c) in ctx.array_shape.iter().zip(&ctx.block_offset).zip(&coords) {
                flat = flat * n + off + c;
            }
            *i = to_i64(flat);
        }
    } else if let [a] = axes {
        let off = to_i64(ctx.block_offset[*a]);
        for i in idx.iter_mut().filter(|i| **i >= 0) {
            *i += off;
        }
    }
    Ok(())
}

fn block_typed<T: RElem>(
    spec: &ReduceSpec,
    a: &ArrayD<T>,
    ctx: Option<&ArgContext>,
) -> Result<Partial> {
    use ReduceOp::*;
    let op = spec.op.name();
    let std = a.as_standard_layout();
    let data = std
        .as_slice()
        .ok_or_else(|| kernel_err(op, "internal: standard-layout block is not contiguous"))?;
    let p = Plan::new(a.shape(), &spec.axes);
    let skipna = spec.skipna;
    let arr = |v| from_vec(op, &p.out_shape, v);
    Ok(match spec.op {
        Sum => Partial::Sum(T::sum_block(&p, data, skipna)),
        Prod => Partial::Prod(T::prod_block(&p, data, skipna)),
        Mean => {
            let (sum, count) = sum_count(&p, data, skipna);
            Partial::Mean {
                sum: arr(sum)?,
                count: from_vec(op, &p.out_shape, count)?,
            }
        }
        Var | Std => {
            let (count, mean, m2) = moments(&p, data, skipna);
            Partial::Moments {
                count: from_vec(op, &p.out_shape, count)?,
                mean: arr(mean)?,
                m2: arr(m2)?,
            }
        }
        Min | Max => {
            if p.extent == 0 && p.out_len > 0 && !(T::IS_FLOAT && skipna) {
                return Err(kernel_err(
                    op,
                    format!(
                        "zero-size array to reduction operation {} which has no identity \
                         (block of shape {}, dtype {}, axes {:?})",
                        if spec.op == Min { "minimum" } else { "maximum" },
                        fmt_shape(a.shape()),
                        T::DTYPE,
                        spec.axes
                    ),
                ));
            }
            Partial::Extreme(wrap_vec(&p, extreme(&p, data, spec.op == Min, skipna)))
        }
        Count => {
            let v = if T::IS_FLOAT {
                let mut c = vec![0i64; p.out_len];
                if p.last_reduced {
                    p.walk(data, |b, _, r| {
                        c[b] +=
                            i64::try_from(r.iter().filter(|v| !v.is_nan()).count()).unwrap_or(0);
                    });
                } else {
                    let l = p.row_len();
                    let map = |v: T| i64::from(!v.is_nan());
                    p.walk_slabs(data, |b, s| {
                        fold_slab_mc(&mut c[b..b + l], s, map, |x, y| x + y)
                    });
                }
                c
            } else {
                vec![i64::try_from(p.extent).unwrap_or(i64::MAX); p.out_len]
            };
            Partial::Count(from_vec(op, &p.out_shape, v)?)
        }
        Any | All => {
            let any = spec.op == Any;
            let zero = T::default();
            let mut out = vec![!any; p.out_len];
            if p.last_reduced {
                p.walk(data, |b, _, r| {
                    out[b] = if any {
                        out[b] | r.iter().any(|&v| v != zero)
                    } else {
                        out[b] & r.iter().all(|&v| v != zero)
                    };
                });
            } else {
                let l = p.row_len();
                let map = |v: T| v != zero;
                if any {
                    p.walk_slabs(data, |b, s| {
                        fold_slab_mc(&mut out[b..b + l], s, map, |x, y| x | y)
                    });
                } else {
                    p.walk_slabs(data, |b, s| {
                        fold_slab_mc(&mut out[b..b + l], s, map, |x, y| x & y)
                    });
                }
            }
            Partial::Logical(from_vec(op, &p.out_shape, out)?)
        }
        ArgMin | ArgMax => {
            let (best, mut idx) = arg_local(&p, data, spec.op == ArgMin, skipna);
            globalize(op, &mut idx, a.shape(), &spec.axes, ctx)?;
            Partial::Arg {
                value: wrap_vec(&p, best),
                index: from_vec(op, &p.out_shape, idx)?,
            }
        }
    })
}

/// Reduces one block to its [`Partial`] (keepdims shape). `ctx` places the block in the
/// whole array for argmin/argmax (without it indices are local to the block).
///
/// Errors: axes out of range, repeated or unsorted; argmin/argmax over several but not all
/// axes; min/max over a zero-length axis of a non-float (or non-skipna) block.
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::{ReduceOp, ReduceSpec, finalize, reduce_block};
/// let x = Chunk::from_f64_vec(&[2, 3], vec![1.0, f64::NAN, 3.0, 4.0, 5.0, 6.0], DType::F32).unwrap();
/// let spec = ReduceSpec::new(ReduceOp::Mean, vec![1]);
/// let p = reduce_block(&spec, &x, None).unwrap();
/// let m = finalize(&spec, &p, DType::F32).unwrap();
/// assert_eq!(m.shape(), &[2, 1]);
/// assert_eq!(m.to_f64_vec(), vec![2.0, 5.0]);
/// ```
pub fn reduce_block(spec: &ReduceSpec, x: &Chunk, ctx: Option<&ArgContext>) -> Result<Partial> {
    spec.check(x.ndim())?;
    with_chunk!(x, a => block_typed(spec, a, ctx))
}

// ---------------------------------------------------------------------------------------
// Combining
// ---------------------------------------------------------------------------------------

/// Folds the typed arrays of several chunks of one dtype elementwise with `f`.
fn fold_chunks<T: Element>(
    op: &str,
    first: &ArrayD<T>,
    rest: &[&Chunk],
    f: impl Fn(T, T) -> T,
) -> Result<Chunk> {
    let mut acc = first.clone();
    for c in rest {
        let b = T::view(c).ok_or_else(|| {
            dtype_err(
                op,
                format!(
                    "cannot combine partials of dtypes {} and {}",
                    T::DTYPE,
                    c.dtype()
                ),
            )
        })?;
        Zip::from(&mut acc).and(b).for_each(|a, &v| *a = f(*a, v));
    }
    Ok(T::wrap(acc))
}

fn combine_acc(op: &str, chunks: &[&Chunk], prod: bool) -> Result<Chunk> {
    let (first, rest) = (chunks[0], &chunks[1..]);
    match first {
        Chunk::F64(a) => fold_chunks(
            op,
            a,
            rest,
            if prod {
                |x: f64, y| x * y
            } else {
                |x: f64, y| x + y
            },
        ),
        Chunk::I64(a) => fold_chunks(
            op,
            a,
            rest,
            if prod {
                i64::wrapping_mul
            } else {
                i64::wrapping_add
            },
        ),
        Chunk::U64(a) => fold_chunks(
            op,
            a,
            rest,
            if prod {
                u64::wrapping_mul
            } else {
                u64::wrapping_add
            },
        ),
        other => Err(dtype_err(
            op,
            format!("unexpected accumulator dtype {}", other.dtype()),
        )),
    }
}

fn combine_extreme<T: RElem>(
    op: &str,
    first: &ArrayD<T>,
    rest: &[&Chunk],
    is_min: bool,
    skipna: bool,
) -> Result<Chunk> {
    match (is_min, skipna) {
        (true, true) => fold_chunks(op, first, rest, T::min_skip),
        (false, true) => fold_chunks(op, first, rest, T::max_skip),
        (true, false) => fold_chunks(op, first, rest, T::min_prop),
        (false, false) => fold_chunks(op, first, rest, T::max_prop),
    }
}

fn combine_arg<T: RElem>(
    op: &str,
    first: &ArrayD<T>,
    parts: &[(&Chunk, &ArrayD<i64>)],
    is_min: bool,
    skipna: bool,
) -> Result<Partial> {
    let mut value = first.clone();
    let mut index = parts[0].1.clone();
    for (c, ix) in &parts[1..] {
        let v = T::view(c).ok_or_else(|| {
            dtype_err(
                op,
                format!(
                    "cannot combine partials of dtypes {} and {}",
                    T::DTYPE,
                    c.dtype()
                ),
            )
        })?;
        Zip::from(&mut value)
            .and(&mut index)
            .and(v)
            .and(*ix)
            .for_each(|bv, bi, &nv, &ni| {
                if ni < 0 {
                    return;
                }
                let has = *bi >= 0;
                // Equal values (or two NaNs) keep the smaller index: the first occurrence.
                let tie = has && (nv == *bv || (nv.is_nan() && bv.is_nan()));
                let take = arg_better(nv, *bv, has, is_min, skipna) || (tie && ni < *bi);
                if take {
                    *bv = nv;
                    *bi = ni;
                }
            });
    }
    Ok(Partial::Arg {
        value: T::wrap(value),
        index,
    })
}

/// Merges partials of the same reduction (same keepdims shape) elementwise. Parts come in
/// increasing position order; argmin/argmax ties keep the smallest global index (the first
/// occurrence, as NumPy).
pub fn combine_partials(spec: &ReduceSpec, parts: &[&Partial]) -> Result<Partial> {
    let op = spec.op.name();
    let Some(first) = parts.first() else {
        return Err(kernel_err(op, "no partials to combine"));
    };
    for p in parts {
        if !p.matches(spec.op) {
            return Err(kernel_err(
                op,
                format!("a {} partial cannot be combined by {op}", p.kind()),
            ));
        }
        p.validate(op)?;
        if p.shape() != first.shape() {
            return Err(shape_err(
                op,
                format!(
                    "partials of shapes {} and {} cannot be combined",
                    fmt_shape(first.shape()),
                    fmt_shape(p.shape())
                ),
            ));
        }
    }
    if parts.len() == 1 {
        return Ok((*first).clone());
    }
    let chunks = |f: fn(&Partial) -> Option<&Chunk>| -> Vec<&Chunk> {
        parts.iter().filter_map(|p| f(p)).collect()
    };
    Ok(match first {
        Partial::Sum(_) => Partial::Sum(combine_acc(
            op,
            &chunks(|p| {
                if let Partial::Sum(c) = p {
                    Some(c)
                } else {
                    None
                }
            }),
            false,
        )?),
        Partial::Prod(_) => Partial::Prod(combine_acc(
            op,
            &chunks(|p| {
                if let Partial::Prod(c) = p {
                    Some(c)
                } else {
                    None
                }
            }),
            true,
        )?),
        Partial::Mean { .. } => {
            let mut sum: Option<ArrayD<f64>> = None;
            let mut count: Option<ArrayD<i64>> = None;
            for p in parts {
                if let Partial::Mean { sum: s, count: c } = p {
                    match (&mut sum, &mut count) {
                        (Some(sa), Some(ca)) => {
                            *sa += s;
                            Zip::from(ca)
                                .and(c)
                                .for_each(|a, &b| *a = a.wrapping_add(b));
                        }
                        _ => {
                            sum = Some(s.clone());
                            count = Some(c.clone());
                        }
                    }
                }
            }
            match (sum, count) {
                (Some(sum), Some(count)) => Partial::Mean { sum, count },
                _ => return Err(kernel_err(op, "internal: no mean partials")),
            }
        }
        Partial::Moments { count, mean, m2 } => {
            let (mut n, mut m, mut q) = (count.clone(), mean.clone(), m2.clone());
            for p in &parts[1..] {
                if let Partial::Moments {
                    count: nb,
                    mean: mb,
                    m2: qb,
                } = p
                {
                    Zip::from(&mut n)
                        .and(&mut m)
                        .and(&mut q)
                        .and(nb)
                        .and(mb)
                        .and(qb)
                        .for_each(|na, ma, qa, &nb, &mb, &qb| {
                            if nb == 0 {
                                return;
                            }
                            if *na == 0 {
                                (*na, *ma, *qa) = (nb, mb, qb);
                                return;
                            }
                            let (fa, fb) = (*na as f64, nb as f64);
                            let nt = *na + nb;
                            let f = nt as f64;
                            let d = mb - *ma;
                            *ma += d * (fb / f);
                            *qa += qb + d * d * (fa * fb / f);
                            *na = nt;
                        });
                }
            }
            Partial::Moments {
                count: n,
                mean: m,
                m2: q,
            }
        }
        Partial::Extreme(c0) => {
            let cs = chunks(|p| {
                if let Partial::Extreme(c) = p {
                    Some(c)
                } else {
                    None
                }
            });
            let is_min = spec.op == ReduceOp::Min;
            let skipna = spec.skipna;
            Partial::Extreme(
                with_chunk!(c0, a => combine_extreme(op, a, &cs[1..], is_min, skipna))?,
            )
        }
        Partial::Count(c0) => {
            let mut acc = c0.clone();
            for p in &parts[1..] {
                if let Partial::Count(c) = p {
                    acc += c;
                }
            }
            Partial::Count(acc)
        }
        Partial::Logical(b0) => {
            let any = spec.op == ReduceOp::Any;
            let mut acc = b0.clone();
            for p in &parts[1..] {
                if let Partial::Logical(b) = p {
                    Zip::from(&mut acc)
                        .and(b)
                        .for_each(|a, &v| *a = if any { *a | v } else { *a & v });
                }
            }
            Partial::Logical(acc)
        }
        Partial::Arg { value: v0, .. } => {
            let ps: Vec<(&Chunk, &ArrayD<i64>)> = parts
                .iter()
                .filter_map(|p| {
                    if let Partial::Arg { value, index } = p {
                        Some((value, index))
                    } else {
                        None
                    }
                })
                .collect();
            let is_min = spec.op == ReduceOp::ArgMin;
            with_chunk!(v0, a => combine_arg(op, a, &ps, is_min, spec.skipna))?
        }
    })
}

// ---------------------------------------------------------------------------------------
// Finalizing
// ---------------------------------------------------------------------------------------

/// Turns a partial into the result block: dtype [`reduce_result_dtype`]`(op, input_dtype)`,
/// keepdims shape (the caller drops the reduced axes).
///
/// Errors: a partial of another reduction; argmin/argmax of an all-NaN (skipna) or empty
/// slice.
pub fn finalize(spec: &ReduceSpec, p: &Partial, input_dtype: DType) -> Result<Chunk> {
    use ReduceOp::*;
    let op = spec.op.name();
    // A mean's state also finalizes as its float sum or its count (`sum_and_count`).
    let from_mean =
        matches!((spec.op, p), (Sum | Count, Partial::Mean { .. })) && input_dtype.is_float();
    if !p.matches(spec.op) && !from_mean {
        return Err(kernel_err(
            op,
            format!("a {} partial cannot be finalized by {op}", p.kind()),
        ));
    }
    p.validate(op)?;
    let out = reduce_result_dtype(spec.op, input_dtype)?;
    let check_dtype = |c: &Chunk, want: DType| {
        if c.dtype() == want {
            Ok(())
        } else {
            Err(dtype_err(
                op,
                format!(
                    "partial holds {} where {want} was expected for input {input_dtype}",
                    c.dtype()
                ),
            ))
        }
    };
    Ok(match (spec.op, p) {
        (Sum, Partial::Sum(c)) | (Prod, Partial::Prod(c)) => {
            check_dtype(c, acc_dtype(input_dtype))?;
            c.astype(out)
        }
        (Mean, Partial::Mean { sum, count }) => {
            let m = Zip::from(sum).and(count).map_collect(|&s, &n| s / n as f64);
            Chunk::F64(m).into_dtype(out)
        }
        (Var | Std, Partial::Moments { count, m2, .. }) => {
            let ddof = spec.ddof as f64;
            let std = spec.op == Std;
            let v = Zip::from(count).and(m2).map_collect(|&n, &q| {
                let dof = n as f64 - ddof;
                let var = if dof <= 0.0 { f64::NAN } else { q / dof };
                if std { var.sqrt() } else { var }
            });
            Chunk::F64(v).into_dtype(out)
        }
        (Min | Max, Partial::Extreme(c)) => {
            check_dtype(c, input_dtype)?;
            c.clone()
        }
        (Count, Partial::Count(c)) => Chunk::I64(c.clone()),
        (Sum, Partial::Mean { sum, .. }) if from_mean => Chunk::F64(sum.clone()).into_dtype(out),
        (Count, Partial::Mean { count, .. }) if from_mean => Chunk::I64(count.clone()),
        (Any | All, Partial::Logical(b)) => Chunk::Bool(b.clone()),
        (ArgMin | ArgMax, Partial::Arg { value, index }) => {
            check_dtype(value, input_dtype)?;
            if index.iter().any(|&i| i < 0) {
                let detail = if input_dtype.is_float() && spec.skipna {
                    "All-NaN slice encountered".to_string()
                } else {
                    format!("attempt to get {op} of an empty sequence")
                };
                return Err(kernel_err(op, detail));
            }
            Chunk::I64(index.clone())
        }
        _ => {
            return Err(kernel_err(
                op,
                format!("a {} partial cannot be finalized by {op}", p.kind()),
            ));
        }
    })
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArrayError;
    use crate::dtype::ALL_DTYPES;
    use ReduceOp::*;

    /// A small deterministic generator (xorshift64*), values in [0, 1).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn vec(&mut self, n: usize) -> Vec<f64> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    fn c(shape: &[usize], v: &[f64], dt: DType) -> Chunk {
        Chunk::from_f64_vec(shape, v.to_vec(), dt).unwrap()
    }

    fn spec(op: ReduceOp, axes: &[usize], skipna: bool) -> ReduceSpec {
        ReduceSpec {
            op,
            axes: axes.to_vec(),
            skipna,
            ddof: 0,
        }
    }

    /// Reduce, then finalize (single block).
    fn run(s: &ReduceSpec, x: &Chunk) -> Result<Chunk> {
        finalize(s, &reduce_block(s, x, None)?, x.dtype())
    }

    /// Splits `x` along `axis` into pieces of the given lengths.
    fn split(x: &Chunk, axis: usize, lens: &[usize]) -> Vec<Chunk> {
        let a = x.as_array::<f64>().unwrap();
        let mut out = vec![];
        let mut start = 0;
        for &n in lens {
            let v = a.slice_axis(ndarray::Axis(axis), ndarray::Slice::from(start..start + n));
            out.push(Chunk::F64(v.to_owned()));
            start += n;
        }
        out
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
    }

    #[test]
    fn result_dtypes_and_names() {
        assert_eq!(reduce_result_dtype(Sum, DType::Bool).unwrap(), DType::I64);
        assert_eq!(reduce_result_dtype(Sum, DType::F32).unwrap(), DType::F32);
        assert_eq!(reduce_result_dtype(Prod, DType::U16).unwrap(), DType::U64);
        assert_eq!(reduce_result_dtype(Std, DType::F32).unwrap(), DType::F32);
        assert_eq!(reduce_result_dtype(Min, DType::I8).unwrap(), DType::I8);
        assert_eq!(reduce_result_dtype(Count, DType::F64).unwrap(), DType::I64);
        assert_eq!(reduce_result_dtype(All, DType::F64).unwrap(), DType::Bool);
        assert_eq!(ArgMin.name(), "argmin");
        // Every op on every dtype produces its declared dtype and keepdims shape.
        for op in ReduceOp::ALL {
            for dt in ALL_DTYPES {
                let x = c(&[2, 3], &[1.0, 0.0, 1.0, 1.0, 1.0, 0.0], dt);
                for axes in [vec![0], vec![1], vec![0, 1]] {
                    let s = spec(op, &axes, true);
                    let r = run(&s, &x).unwrap();
                    assert_eq!(
                        r.dtype(),
                        reduce_result_dtype(op, dt).unwrap(),
                        "{op:?} {dt}"
                    );
                    let want: Vec<usize> = (0..2)
                        .map(|a| if axes.contains(&a) { 1 } else { x.shape()[a] })
                        .collect();
                    assert_eq!(r.shape(), &want[..]);
                }
            }
        }
    }

    #[test]
    fn bad_specs_are_errors() {
        let x = c(&[2, 3, 4], &[0.0; 24], DType::F64);
        assert!(matches!(
            reduce_block(&spec(Sum, &[3], true), &x, None),
            Err(ArrayError::Axis { .. })
        ));
        assert!(reduce_block(&spec(Sum, &[1, 1], true), &x, None).is_err());
        assert!(reduce_block(&spec(Sum, &[2, 0], true), &x, None).is_err());
        let e = reduce_block(&spec(ArgMin, &[0, 1], true), &x, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("argmin"), "{e}");
        // Mismatched partials.
        let p = reduce_block(&spec(Sum, &[0], true), &x, None).unwrap();
        assert!(finalize(&spec(Mean, &[0], true), &p, DType::F64).is_err());
        let q = reduce_block(&spec(Sum, &[1], true), &x, None).unwrap();
        assert!(matches!(
            combine_partials(&spec(Sum, &[0], true), &[&p, &q]),
            Err(ArrayError::Shape { .. })
        ));
        assert!(combine_partials(&spec(Sum, &[0], true), &[]).is_err());
    }

    #[test]
    fn axis0_vs_axes12_vs_all_against_naive() {
        let shape = [5, 7, 130];
        let mut rng = Rng(7);
        let mut v = rng.vec(5 * 7 * 130);
        v[17] = f64::NAN;
        v[900] = f64::NAN;
        let n = v.len();
        let get = |i: usize, j: usize, k: usize| v[(i * 7 + j) * 130 + k];
        for dt in [DType::F64, DType::F32] {
            let x = c(&shape, &v, dt);
            let vals: Vec<f64> = x.to_f64_vec();
            let at = |i: usize, j: usize, k: usize| vals[(i * 7 + j) * 130 + k];
            let _ = get;
            for op in [Sum, Mean, Min, Max, Var, Count, ArgMax] {
                for axes in [vec![0], vec![1, 2], vec![0, 1, 2], vec![1], vec![0, 2]] {
                    if op == ArgMax && axes.len() == 2 {
                        continue;
                    }
                    let s = ReduceSpec {
                        op,
                        axes: axes.clone(),
                        skipna: true,
                        ddof: 1,
                    };
                    let got = run(&s, &x).unwrap().to_f64_vec();
                    // Naive reference.
                    let oshape: Vec<usize> = (0..3)
                        .map(|a| if axes.contains(&a) { 1 } else { shape[a] })
                        .collect();
                    let mut want = vec![];
                    for oi in 0..oshape[0] {
                        for oj in 0..oshape[1] {
                            for ok in 0..oshape[2] {
                                let mut xs = vec![];
                                for i in 0..shape[0] {
                                    for j in 0..shape[1] {
                                        for k in 0..shape[2] {
                                            let o = [i, j, k];
                                            let want_o = [oi, oj, ok];
                                            if (0..3)
                                                .all(|a| axes.contains(&a) || o[a] == want_o[a])
                                            {
                                                let pos = if axes.len() == 3 {
                                                    (i * 7 + j) * 130 + k
                                                } else {
                                                    o[axes[0]]
                                                };
                                                xs.push((at(i, j, k), pos));
                                            }
                                        }
                                    }
                                }
                                let ok_vals: Vec<f64> =
                                    xs.iter().map(|p| p.0).filter(|v| !v.is_nan()).collect();
                                let m = ok_vals.iter().sum::<f64>() / ok_vals.len() as f64;
                                want.push(match op {
                                    Sum => ok_vals.iter().sum(),
                                    Mean => m,
                                    Min => ok_vals.iter().cloned().fold(f64::INFINITY, f64::min),
                                    Max => {
                                        ok_vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                                    }
                                    Var => {
                                        ok_vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>()
                                            / (ok_vals.len() - 1) as f64
                                    }
                                    Count => ok_vals.len() as f64,
                                    ArgMax => {
                                        let mut best = (f64::NEG_INFINITY, 0);
                                        for &(x, pos) in &xs {
                                            if x > best.0 {
                                                best = (x, pos);
                                            }
                                        }
                                        best.1 as f64
                                    }
                                    _ => unreachable!(),
                                });
                            }
                        }
                    }
                    let tol = if dt == DType::F32 { 1e-6 } else { 1e-12 };
                    assert_eq!(got.len(), want.len());
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= tol * w.abs().max(1.0),
                            "{op:?} {axes:?} {dt}: {g} vs {w}"
                        );
                    }
                }
            }
        }
        assert_eq!(n, 4550);
    }

    #[test]
    fn non_standard_layout_input() {
        let mut rng = Rng(3);
        let v = rng.vec(24);
        let x = c(&[4, 6], &v, DType::F64);
        let t = Chunk::F64(x.as_array::<f64>().unwrap().t().to_owned()); // (6, 4), F-order
        let ts = Chunk::F64(
            x.as_array::<f64>()
                .unwrap()
                .t()
                .as_standard_layout()
                .into_owned(),
        );
        for op in [Sum, Max, Var, ArgMin] {
            let s = spec(op, &[1], true);
            assert_eq!(run(&s, &t).unwrap(), run(&s, &ts).unwrap());
        }
    }

    #[test]
    fn chan_merge_equals_two_pass_var() {
        // (offset, tolerance): with a large offset the merge stays accurate (the naive
        // Σx² − n·mean² formula would lose every digit), within what the f64 block means allow.
        for (offset, tol) in [(0.0, 1e-12), (-3.0, 1e-12), (1e6, 1e-9)] {
            let mut rng = Rng(42);
            let v: Vec<f64> = rng.vec(60 * 4).iter().map(|x| offset + x).collect();
            let x = c(&[60, 4], &v, DType::F64);
            for ddof in [0, 1] {
                let s = ReduceSpec {
                    op: Var,
                    axes: vec![0],
                    skipna: true,
                    ddof,
                };
                let blocks = split(&x, 0, &[17, 20, 23]);
                let parts: Vec<Partial> = blocks
                    .iter()
                    .map(|b| reduce_block(&s, b, None).unwrap())
                    .collect();
                let refs: Vec<&Partial> = parts.iter().collect();
                let merged = combine_partials(&s, &refs).unwrap();
                // Merging in two levels gives the same.
                let left = combine_partials(&s, &refs[..2]).unwrap();
                let two = combine_partials(&s, &[&left, refs[2]]).unwrap();
                let got = finalize(&s, &merged, DType::F64).unwrap().to_f64_vec();
                let got2 = finalize(&s, &two, DType::F64).unwrap().to_f64_vec();
                for col in 0..4 {
                    let xs: Vec<f64> = (0..60).map(|r| v[r * 4 + col]).collect();
                    let m = xs.iter().sum::<f64>() / 60.0;
                    let want =
                        xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (60 - ddof) as f64;
                    for g in [got[col], got2[col]] {
                        assert!(
                            (g - want).abs() <= tol * want,
                            "offset {offset}: {g} vs {want}"
                        );
                    }
                }
                // Std is the root.
                let ss = ReduceSpec {
                    op: Std,
                    ..s.clone()
                };
                let sd = finalize(&ss, &merged, DType::F64).unwrap().to_f64_vec();
                assert!((sd[0] - got[0].sqrt()).abs() < 1e-15);
            }
        }
        // Splitting along the reduced last axis merges the same way.
        let mut rng = Rng(9);
        let v = rng.vec(3 * 50);
        let x = c(&[3, 50], &v, DType::F64);
        let s = ReduceSpec {
            op: Var,
            axes: vec![1],
            skipna: true,
            ddof: 1,
        };
        let parts: Vec<Partial> = split(&x, 1, &[10, 25, 15])
            .iter()
            .map(|b| reduce_block(&s, b, None).unwrap())
            .collect();
        let refs: Vec<&Partial> = parts.iter().collect();
        let got = finalize(&s, &combine_partials(&s, &refs).unwrap(), DType::F64)
            .unwrap()
            .to_f64_vec();
        let direct = finalize(&s, &reduce_block(&s, &x, None).unwrap(), DType::F64)
            .unwrap()
            .to_f64_vec();
        for (g, d) in got.iter().zip(&direct) {
            assert!((g - d).abs() <= 1e-12 * d);
        }
    }

    #[test]
    fn var_nan_rules() {
        let x = c(
            &[2, 3],
            &[1.0, f64::NAN, 3.0, f64::NAN, f64::NAN, 5.0],
            DType::F32,
        );
        let s = ReduceSpec {
            op: Var,
            axes: vec![1],
            skipna: true,
            ddof: 1,
        };
        let r = run(&s, &x).unwrap();
        assert_eq!(r.dtype(), DType::F32);
        // Row 0: [1, 3] -> var 2; row 1: [5] with ddof 1 -> NaN.
        assert!(same(&r.to_f64_vec(), &[2.0, f64::NAN]));
        let s = ReduceSpec {
            op: Var,
            axes: vec![1],
            skipna: false,
            ddof: 0,
        };
        assert!(run(&s, &x).unwrap().to_f64_vec().iter().all(|v| v.is_nan()));
        let ints = c(&[4], &[1.0, 2.0, 3.0, 4.0], DType::I32);
        let r = run(
            &ReduceSpec {
                op: Std,
                axes: vec![0],
                skipna: true,
                ddof: 0,
            },
            &ints,
        )
        .unwrap();
        assert_eq!(r.dtype(), DType::F64);
        assert!((r.to_f64_vec()[0] - 1.25f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn nan_rules_skipna() {
        let nan = f64::NAN;
        // Row 0 all NaN, row 1 mixed.
        let x = c(&[2, 3], &[nan, nan, nan, 1.0, nan, 3.0], DType::F64);
        let r = |op| run(&spec(op, &[1], true), &x).unwrap().to_f64_vec();
        assert_eq!(r(Sum), vec![0.0, 4.0]);
        assert_eq!(r(Prod), vec![1.0, 3.0]);
        assert!(same(&r(Mean), &[nan, 2.0]));
        assert!(same(&r(Min), &[nan, 1.0]));
        assert!(same(&r(Max), &[nan, 3.0]));
        assert!(same(&r(Var), &[nan, 1.0]));
        assert_eq!(r(Count), vec![0.0, 2.0]);
        assert_eq!(r(Any), vec![1.0, 1.0]); // NaN is truthy
        let e = run(&spec(ArgMin, &[1], true), &x).unwrap_err();
        assert!(
            matches!(&e, ArrayError::Kernel { detail, .. } if detail.contains("All-NaN slice encountered")),
            "{e}"
        );
        // The non-contiguous path gives the same (axis 0 of the transpose).
        let xt = Chunk::F64(
            x.as_array::<f64>()
                .unwrap()
                .t()
                .as_standard_layout()
                .into_owned(),
        );
        let rt = |op| run(&spec(op, &[0], true), &xt).unwrap().to_f64_vec();
        assert_eq!(rt(Sum), vec![0.0, 4.0]);
        assert!(same(&rt(Mean), &[nan, 2.0]));
        assert!(same(&rt(Min), &[nan, 1.0]));
        assert_eq!(rt(Count), vec![0.0, 2.0]);
        // Empty: sum 0, mean NaN, min NaN for floats; int min is an error.
        let e0 = c(&[0, 3], &[], DType::F32);
        let r0 = |op| run(&spec(op, &[0], true), &e0).unwrap().to_f64_vec();
        assert_eq!(r0(Sum), vec![0.0; 3]);
        assert!(r0(Mean).iter().all(|v| v.is_nan()));
        assert!(r0(Min).iter().all(|v| v.is_nan()));
        assert!(r0(Std).iter().all(|v| v.is_nan()));
        let ei = c(&[0, 3], &[], DType::I32);
        assert!(matches!(
            reduce_block(&spec(Max, &[0], true), &ei, None),
            Err(ArrayError::Kernel { .. })
        ));
        assert!(run(&spec(ArgMax, &[0], true), &ei).is_err());
        assert_eq!(
            run(&spec(Sum, &[0], true), &ei).unwrap().to_f64_vec(),
            vec![0.0; 3]
        );
        // Reducing the non-empty axis of an empty block is fine.
        assert_eq!(run(&spec(Min, &[1], true), &ei).unwrap().shape(), &[0, 1]);
    }

    #[test]
    fn nan_propagates_without_skipna() {
        let nan = f64::NAN;
        let x = c(&[6], &[2.0, nan, 1.0, nan, 0.5, 3.0], DType::F32);
        let r = |op| run(&spec(op, &[0], false), &x).unwrap().to_f64_vec();
        for op in [Sum, Prod, Mean, Min, Max, Var, Std] {
            assert!(r(op)[0].is_nan(), "{op:?}");
        }
        assert_eq!(r(Count), vec![4.0]);
        assert_eq!(r(ArgMin), vec![1.0]); // first NaN
        assert_eq!(r(ArgMax), vec![1.0]);
        let skip = |op| run(&spec(op, &[0], true), &x).unwrap().to_f64_vec();
        assert_eq!(skip(ArgMin), vec![4.0]);
        assert_eq!(skip(ArgMax), vec![5.0]);
        // Across blocks: the first NaN wins even when a later block has a smaller value.
        let s = spec(ArgMin, &[0], false);
        let a = c(&[2], &[5.0, nan], DType::F64);
        let b = c(&[2], &[nan, -1.0], DType::F64);
        let ctx = |o| ArgContext {
            block_offset: vec![o],
            array_shape: vec![4],
        };
        let pa = reduce_block(&s, &a, Some(&ctx(0))).unwrap();
        let pb = reduce_block(&s, &b, Some(&ctx(2))).unwrap();
        let m = combine_partials(&s, &[&pa, &pb]).unwrap();
        assert_eq!(
            finalize(&s, &m, DType::F64).unwrap().to_f64_vec(),
            vec![1.0]
        );
        // Min across blocks propagates NaN.
        let s = spec(Min, &[0], false);
        let pa = reduce_block(&s, &c(&[1], &[1.0], DType::F64), None).unwrap();
        let pb = reduce_block(&s, &c(&[1], &[nan], DType::F64), None).unwrap();
        let m = combine_partials(&s, &[&pa, &pb]).unwrap();
        assert!(finalize(&s, &m, DType::F64).unwrap().to_f64_vec()[0].is_nan());
    }

    #[test]
    fn argmin_ties_and_global_indices() {
        // 1-d: ties keep the first occurrence, within and across blocks.
        let s = spec(ArgMin, &[0], true);
        let a = c(&[3], &[3.0, 1.0, 1.0], DType::I32);
        let b = c(&[3], &[1.0, 0.0, 0.0], DType::I32);
        let ctx = |o| ArgContext {
            block_offset: vec![o],
            array_shape: vec![9],
        };
        assert_eq!(run(&s, &a).unwrap().to_f64_vec(), vec![1.0]);
        let pa = reduce_block(&s, &a, Some(&ctx(0))).unwrap();
        let pb = reduce_block(&s, &b, Some(&ctx(3))).unwrap();
        let pc = reduce_block(&s, &c(&[3], &[0.0, 5.0, 0.0], DType::I32), Some(&ctx(6))).unwrap();
        let m = combine_partials(&s, &[&pa, &pb, &pc]).unwrap();
        assert_eq!(
            finalize(&s, &m, DType::I32).unwrap().to_f64_vec(),
            vec![4.0]
        );
        let m2 = combine_partials(&s, &[&pa, &pb]).unwrap();
        assert_eq!(
            finalize(&s, &m2, DType::I32).unwrap().to_f64_vec(),
            vec![4.0]
        );

        // 2-d 4x4 array of zeros with ties, split in 2x2 blocks; all axes -> flat index.
        // Minimum value 0 appears at (0,3) [flat 3] and (1,1) [flat 5]: NumPy says 3.
        let mut full = [1.0; 16];
        full[3] = 0.0;
        full[5] = 0.0;
        full[14] = 0.0;
        let s = spec(ArgMin, &[0, 1], true);
        let mut parts = vec![];
        for bi in 0..2 {
            for bj in 0..2 {
                let v: Vec<f64> = (0..2)
                    .flat_map(|i| (0..2).map(move |j| (2 * bi + i) * 4 + 2 * bj + j))
                    .map(|f| full[f])
                    .collect();
                let blk = c(&[2, 2], &v, DType::F32);
                let ctx = ArgContext {
                    block_offset: vec![2 * bi, 2 * bj],
                    array_shape: vec![4, 4],
                };
                parts.push(reduce_block(&s, &blk, Some(&ctx)).unwrap());
            }
        }
        let refs: Vec<&Partial> = parts.iter().collect();
        let m = combine_partials(&s, &refs).unwrap();
        assert_eq!(
            finalize(&s, &m, DType::F32).unwrap().to_f64_vec(),
            vec![3.0]
        );

        // One axis of a 2-d array: index along that axis.
        let s = spec(ArgMax, &[0], true);
        let top = c(&[2, 3], &[1.0, 9.0, 2.0, 4.0, 9.0, 2.0], DType::F64);
        let bottom = c(&[2, 3], &[7.0, 9.0, 2.0, 0.0, 1.0, 8.0], DType::F64);
        let ctx = |o| ArgContext {
            block_offset: vec![o, 3],
            array_shape: vec![4, 6],
        };
        let pt = reduce_block(&s, &top, Some(&ctx(0))).unwrap();
        let pb = reduce_block(&s, &bottom, Some(&ctx(2))).unwrap();
        let m = combine_partials(&s, &[&pt, &pb]).unwrap();
        let r = finalize(&s, &m, DType::F64).unwrap();
        assert_eq!(r.shape(), &[1, 3]);
        assert_eq!(r.to_f64_vec(), vec![2.0, 0.0, 3.0]);
        // Along the last axis.
        let s = spec(ArgMax, &[1], true);
        let ctx = ArgContext {
            block_offset: vec![0, 3],
            array_shape: vec![4, 6],
        };
        let r = finalize(&s, &reduce_block(&s, &top, Some(&ctx)).unwrap(), DType::F64).unwrap();
        assert_eq!(r.to_f64_vec(), vec![4.0, 4.0]);
        // A context that does not fit is an error.
        let bad = ArgContext {
            block_offset: vec![3, 3],
            array_shape: vec![4, 6],
        };
        assert!(reduce_block(&s, &top, Some(&bad)).is_err());
    }

    #[test]
    fn f32_sum_of_ten_million_tenths_is_accurate() {
        let n = 10_000_000usize;
        let x = Chunk::F32(ArrayD::from_elem(IxDyn(&[n]), 0.1f32));
        let exact = f64::from(0.1f32) * n as f64; // exact: fits in 53 bits
        for s in [
            spec(Sum, &[0], true),
            spec(Sum, &[0], false),
            spec(Mean, &[0], true),
        ] {
            let p = reduce_block(&s, &x, None).unwrap();
            let sum = match &p {
                Partial::Sum(Chunk::F64(a)) => a.iter().sum::<f64>(),
                Partial::Mean { sum, .. } => sum.iter().sum::<f64>(),
                other => panic!("{other:?}"),
            };
            assert!(((sum - exact) / exact).abs() < 1e-9, "{sum} vs {exact}");
            let r = finalize(&s, &p, DType::F32).unwrap();
            assert_eq!(r.dtype(), DType::F32);
            let want = if s.op == Sum {
                exact as f32
            } else {
                (exact / n as f64) as f32
            };
            assert_eq!(
                r.as_array::<f32>().unwrap().iter().next().copied(),
                Some(want)
            );
        }
        // Same over a leading axis (the elementwise accumulation path).
        let x2 = Chunk::F32(ArrayD::from_elem(IxDyn(&[100_000, 4]), 0.1f32));
        let p = reduce_block(&spec(Sum, &[0], true), &x2, None).unwrap();
        let Partial::Sum(Chunk::F64(a)) = &p else {
            panic!()
        };
        let exact = f64::from(0.1f32) * 100_000.0;
        assert!(a.iter().all(|s| ((s - exact) / exact).abs() < 1e-12));
    }

    #[test]
    fn integer_and_bool_accumulators() {
        let x = c(&[3], &[100.0, 100.0, 100.0], DType::I8);
        let r = run(&spec(Sum, &[0], true), &x).unwrap();
        assert_eq!((r.dtype(), r.to_f64_vec()), (DType::I64, vec![300.0]));
        let u = c(&[2], &[200.0, 200.0], DType::U8);
        let r = run(&spec(Prod, &[0], true), &u).unwrap();
        assert_eq!((r.dtype(), r.to_f64_vec()), (DType::U64, vec![40000.0]));
        let b = c(&[4], &[1.0, 0.0, 1.0, 1.0], DType::Bool);
        assert_eq!(
            run(&spec(Sum, &[0], true), &b).unwrap().to_f64_vec(),
            vec![3.0]
        );
        assert_eq!(
            run(&spec(Mean, &[0], true), &b).unwrap().to_f64_vec(),
            vec![0.75]
        );
        assert_eq!(
            run(&spec(Min, &[0], true), &b).unwrap().to_f64_vec(),
            vec![0.0]
        );
        assert_eq!(
            run(&spec(All, &[0], true), &b).unwrap().to_f64_vec(),
            vec![0.0]
        );
        assert_eq!(
            run(&spec(ArgMin, &[0], true), &b).unwrap().to_f64_vec(),
            vec![1.0]
        );
        let big = Chunk::I64(ArrayD::from_elem(IxDyn(&[2]), i64::MAX));
        assert_eq!(
            run(&spec(Sum, &[0], true), &big).unwrap().to_f64_vec(),
            vec![-2.0]
        ); // wraps
        // Combining integer partials.
        let s = spec(Max, &[0], true);
        let p1 = reduce_block(&s, &c(&[2], &[-5.0, 3.0], DType::I16), None).unwrap();
        let p2 = reduce_block(&s, &c(&[2], &[7.0, -9.0], DType::I16), None).unwrap();
        let m = combine_partials(&s, &[&p1, &p2]).unwrap();
        assert_eq!(
            finalize(&s, &m, DType::I16).unwrap().to_f64_vec(),
            vec![7.0]
        );
        assert!(m.nbytes() > 0);
        // Any/All/Count combine.
        for (op, want) in [
            (Any, 1.0),
            (All, 0.0),
            (Count, 4.0),
            (Sum, 1.0),
            (Mean, 0.25),
        ] {
            let s = spec(op, &[0], true);
            let p1 = reduce_block(&s, &c(&[2], &[0.0, 1.0], DType::F64), None).unwrap();
            let p2 = reduce_block(&s, &c(&[2], &[0.0, 0.0], DType::F64), None).unwrap();
            let m = combine_partials(&s, &[&p1, &p2]).unwrap();
            assert_eq!(
                finalize(&s, &m, DType::F64).unwrap().to_f64_vec(),
                vec![want],
                "{op:?}"
            );
        }
    }

    #[test]
    fn zero_d_and_no_axes() {
        let x = c(&[], &[4.0], DType::F64);
        assert_eq!(
            run(&spec(Sum, &[], true), &x).unwrap().to_f64_vec(),
            vec![4.0]
        );
        assert_eq!(
            run(&spec(ArgMax, &[], true), &x).unwrap().to_f64_vec(),
            vec![0.0]
        );
        let y = c(&[2], &[1.0, 2.0], DType::I8);
        let r = run(&spec(Sum, &[], true), &y).unwrap();
        assert_eq!((r.dtype(), r.to_f64_vec()), (DType::I64, vec![1.0, 2.0]));
    }

    #[test]
    fn inconsistent_partials_are_errors() {
        let s = spec(Mean, &[0], true);
        let bad = Partial::Mean {
            sum: ArrayD::zeros(IxDyn(&[1, 2])),
            count: ArrayD::zeros(IxDyn(&[1, 3])),
        };
        assert!(matches!(
            finalize(&s, &bad, DType::F64),
            Err(ArrayError::Shape { .. })
        ));
        assert!(combine_partials(&s, &[&bad, &bad]).is_err());
        let s = spec(Sum, &[0], true);
        let wrong = Partial::Sum(Chunk::F32(ArrayD::zeros(IxDyn(&[1]))));
        assert!(finalize(&s, &wrong, DType::F32).is_err());
        assert!(combine_partials(&s, &[&wrong, &wrong]).is_err());
    }

    #[test]
    fn partials_serialize() {
        let s = spec(Var, &[0], true);
        let p = reduce_block(
            &s,
            &c(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], DType::F32),
            None,
        )
        .unwrap();
        let txt = serde_json::to_string(&p).unwrap();
        let back: Partial = serde_json::from_str(&txt).unwrap();
        assert_eq!(back, p);
        assert_eq!(p.shape(), &[1, 2]);
        assert_eq!(p.nbytes(), 2 * 24);
    }
}
