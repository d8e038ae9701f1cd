//! Elementwise operations on chunked arrays, with NumPy broadcasting and chunk alignment.

use crate::array::{ChunkedArray, Chunking, offsets};
use crate::kernels::{self, BinaryOp, UnaryOp};
use crate::ops::ArrayOp;
use crate::{ArrayError, DType, Result, Scalar};
use gridflow_graph::{Key, Task, Tokenizer};
use std::sync::Arc;

/// The right-hand side of a binary operation: another array or a Python-like scalar.
#[derive(Clone, Debug)]
pub enum Operand {
    /// A chunked array.
    Array(ChunkedArray),
    /// A scalar ("weak" in type promotion, as in NumPy 2).
    Scalar(Scalar),
}

impl From<&ChunkedArray> for Operand {
    fn from(a: &ChunkedArray) -> Self {
        Operand::Array(a.clone())
    }
}
impl From<ChunkedArray> for Operand {
    fn from(a: ChunkedArray) -> Self {
        Operand::Array(a)
    }
}
impl From<Scalar> for Operand {
    fn from(s: Scalar) -> Self {
        Operand::Scalar(s)
    }
}
impl From<f64> for Operand {
    fn from(v: f64) -> Self {
        Operand::Scalar(Scalar::Float(v))
    }
}
impl From<i64> for Operand {
    fn from(v: i64) -> Self {
        Operand::Scalar(Scalar::Int(v))
    }
}
impl From<i32> for Operand {
    fn from(v: i32) -> Self {
        Operand::Scalar(Scalar::Int(i64::from(v)))
    }
}
impl From<bool> for Operand {
    fn from(v: bool) -> Self {
        Operand::Scalar(Scalar::Bool(v))
    }
}

/// The common refinement of two chunkings of the same axis (all boundaries of both).
pub(crate) fn refine(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut bounds: Vec<usize> = offsets(a).into_iter().chain(offsets(b)).collect();
    let total: usize = a.iter().sum();
    bounds.push(total);
    bounds.sort_unstable();
    bounds.dedup();
    let out: Vec<usize> = bounds.windows(2).map(|w| w[1] - w[0]).collect();
    if out.is_empty() { vec![total] } else { out }
}

/// Arrays broadcast against each other and rechunked to common blocks.
pub(crate) struct Aligned {
    /// The broadcast shape.
    pub(crate) shape: Vec<usize>,
    /// Its blocks.
    pub(crate) chunks: Vec<Vec<usize>>,
    /// The inputs, rechunked where needed.
    pub(crate) arrays: Vec<ChunkedArray>,
}

/// Broadcasts arrays against each other (NumPy rules) and rechunks them to common blocks.
pub(crate) fn align(op: &str, arrays: &[&ChunkedArray]) -> Result<Aligned> {
    let ndim = arrays.iter().map(|a| a.ndim()).max().unwrap_or(0);
    let mut shape = vec![1usize; ndim];
    for a in arrays {
        let off = ndim - a.ndim();
        for (i, &n) in a.shape().iter().enumerate() {
            let s = &mut shape[off + i];
            if *s == 1 {
                *s = n;
            } else if n != 1 && n != *s {
                let shapes: Vec<String> =
                    arrays.iter().map(|a| format!("{:?}", a.shape())).collect();
                return Err(ArrayError::Shape {
                    op: op.to_owned(),
                    detail: format!(
                        "shapes {} cannot be broadcast together (axis {} of the result)",
                        shapes.join(" and "),
                        off + i
                    ),
                });
            }
        }
    }
    let mut chunks: Vec<Option<Vec<usize>>> = vec![None; ndim];
    for a in arrays {
        let off = ndim - a.ndim();
        for (i, c) in a.chunks().iter().enumerate() {
            if a.shape()[i] == shape[off + i] {
                chunks[off + i] = Some(match chunks[off + i].take() {
                    None => c.clone(),
                    Some(prev) if prev == *c => prev,
                    Some(prev) => refine(&prev, c),
                });
            }
        }
    }
    let chunks: Vec<Vec<usize>> = chunks
        .into_iter()
        .zip(&shape)
        .map(|(c, &n)| c.unwrap_or_else(|| vec![n]))
        .collect();
    let mut aligned = Vec::with_capacity(arrays.len());
    for a in arrays {
        let off = ndim - a.ndim();
        let want: Vec<Vec<usize>> = a
            .chunks()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if a.shape()[i] == shape[off + i] {
                    chunks[off + i].clone()
                } else {
                    c.clone()
                }
            })
            .collect();
        aligned.push(if want == a.chunks() {
            (*a).clone()
        } else {
            a.rechunk(Chunking::Explicit(want))?
        });
    }
    Ok(Aligned {
        shape,
        chunks,
        arrays: aligned,
    })
}

/// One task per output block applying `op` to the matching (broadcast) blocks of `inputs`.
pub(crate) fn blockwise(
    prefix: &str,
    op: ArrayOp,
    inputs: &[&ChunkedArray],
    dtype: DType,
) -> Result<ChunkedArray> {
    let Aligned {
        shape,
        chunks,
        arrays: aligned,
    } = align(prefix, inputs)?;
    let ndim = shape.len();
    let mut tok = Tokenizer::new(prefix).str(&serde_json::to_string(&op).unwrap_or_default());
    for a in &aligned {
        tok = tok.str(a.name());
    }
    let name = tok.finish();
    let deps = aligned.iter().map(|a| a.layer.clone()).collect();
    // Lazy: the inputs' names and shapes are all a block's task needs.
    let inputs: Vec<(Arc<str>, Vec<usize>)> = aligned
        .iter()
        .map(|a| (a.name.clone(), a.shape().to_vec()))
        .collect();
    let out_shape = shape.clone();
    ChunkedArray::from_lazy_tasks(name, shape, chunks, dtype, deps, move |idx| {
        let keys = inputs
            .iter()
            .map(|(name, in_shape)| {
                let off = ndim - in_shape.len();
                let bi: Vec<u32> = in_shape
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| {
                        if n == out_shape[off + i] {
                            idx[off + i] as u32
                        } else {
                            0
                        }
                    })
                    .collect();
                Key::with_shared_name(name, &bi)
            })
            .collect();
        Task::new(op.clone(), keys)
    })
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Result<ChunkedArray> {
                self.unary(UnaryOp::$op)
            }
        )*
    };
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(&self, other: impl Into<Operand>) -> Result<ChunkedArray> {
                self.binary(BinaryOp::$op, other)
            }
        )*
    };
}

impl ChunkedArray {
    /// Applies an elementwise function.
    pub fn unary(&self, op: UnaryOp) -> Result<ChunkedArray> {
        let dtype = kernels::unary_result_dtype(op, self.dtype)?;
        blockwise(op.name(), ArrayOp::Unary(op), &[self], dtype)
    }

    /// Converts to another dtype (NumPy's `astype`).
    pub fn astype(&self, dtype: DType) -> Result<ChunkedArray> {
        if dtype == self.dtype {
            return Ok(self.clone());
        }
        blockwise("astype", ArrayOp::AsType(dtype), &[self], dtype)
    }

    /// Elements equal to `fill` become NaN (CF `_FillValue`/`missing_value` decoding, as
    /// xarray's `where(x != fill, x)`); non-float arrays become float64. See
    /// [`kernels::mask_eq`].
    ///
    /// ```
    /// use gridflow_array::{ChunkedArray, DType, Scalar};
    /// let x = ChunkedArray::full(&[4], Scalar::Float(1e20), [2], DType::F32).unwrap();
    /// let n = x.mask_eq(Scalar::Float(1e20)).unwrap().count(None).unwrap();
    /// assert_eq!(n.compute_scalar().unwrap().as_f64(), 0.0);
    /// ```
    pub fn mask_eq(&self, fill: Scalar) -> Result<ChunkedArray> {
        let dtype = kernels::mask_eq_result_dtype(self.dtype);
        blockwise("mask", ArrayOp::MaskEq(fill), &[self], dtype)
    }

    unary_methods! {
        /// `-x`
        neg => Neg,
        /// `abs(x)`
        abs => Abs,
        /// `sqrt(x)`
        sqrt => Sqrt,
        /// `exp(x)`
        exp => Exp,
        /// Natural logarithm.
        log => Log,
        /// Base-10 logarithm.
        log10 => Log10,
        /// `sin(x)` (radians)
        sin => Sin,
        /// `cos(x)` (radians)
        cos => Cos,
        /// `tan(x)` (radians)
        tan => Tan,
        /// `arcsin(x)`
        arcsin => Arcsin,
        /// `arccos(x)`
        arccos => Arccos,
        /// `arctan(x)`
        arctan => Arctan,
        /// Degrees to radians.
        deg2rad => Deg2Rad,
        /// Radians to degrees.
        rad2deg => Rad2Deg,
        /// Rounds down.
        floor => Floor,
        /// Rounds up.
        ceil => Ceil,
        /// Rounds half to even, like NumPy.
        round => Round,
        /// True where NaN.
        isnan => IsNan,
        /// True where missing (NaN), as xarray's `isnull`.
        isnull => IsNull,
        /// True where not missing, as xarray's `notnull`.
        notnull => NotNull,
        /// Logical not.
        logical_not => LogicalNot,
    }

    /// Applies a binary operation with another array (broadcast, chunks aligned) or a scalar.
    pub fn binary(&self, op: BinaryOp, other: impl Into<Operand>) -> Result<ChunkedArray> {
        match other.into() {
            Operand::Array(b) => {
                let dtype = kernels::binary_result_dtype(op, self.dtype, b.dtype())?;
                blockwise(op.name(), ArrayOp::Binary(op), &[self, &b], dtype)
            }
            Operand::Scalar(s) => self.binary_scalar(op, s, false),
        }
    }

    /// `x op s` (or `s op x` with `scalar_on_left`), with the scalar weakly typed.
    pub fn binary_scalar(
        &self,
        op: BinaryOp,
        s: Scalar,
        scalar_on_left: bool,
    ) -> Result<ChunkedArray> {
        let dtype = kernels::binary_scalar_result_dtype(op, self.dtype, s)?;
        blockwise(
            op.name(),
            ArrayOp::BinaryScalar {
                op,
                scalar: s,
                scalar_on_left,
            },
            &[self],
            dtype,
        )
    }

    /// `s - x`, `s / x` and the like: the scalar on the left.
    pub fn rbinary(&self, op: BinaryOp, s: impl Into<Scalar>) -> Result<ChunkedArray> {
        self.binary_scalar(op, s.into(), true)
    }

    binary_methods! {
        /// `x + y`
        add => Add,
        /// `x - y`
        sub => Sub,
        /// `x * y`
        mul => Mul,
        /// `x / y` (true division)
        div => Div,
        /// `x // y`
        floor_div => FloorDiv,
        /// `x % y` (Python sign rules)
        rem => Mod,
        /// `x ** y`
        pow => Pow,
        /// `x == y`
        eq => Eq,
        /// `x != y`
        ne => Ne,
        /// `x < y`
        lt => Lt,
        /// `x <= y`
        le => Le,
        /// `x > y`
        gt => Gt,
        /// `x >= y`
        ge => Ge,
        /// `x & y`
        and => And,
        /// `x | y`
        or => Or,
        /// `x ^ y`
        xor => Xor,
        /// Elementwise minimum (NaN propagates).
        minimum => Minimum,
        /// Elementwise maximum (NaN propagates).
        maximum => Maximum,
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}

/// `where(cond, x, y)`: `x` where `cond` is true, else `y` (NumPy/xarray's `where`).
///
/// ```
/// use gridflow_array::{ChunkedArray, where_};
/// let x = ChunkedArray::arange(0.0, 6.0, 1.0, 4, gridflow_array::DType::F64).unwrap();
/// let y = where_(&x.gt(2.0).unwrap(), &x, f64::NAN).unwrap();
/// assert_eq!(y.count(None).unwrap().compute_scalar().unwrap().as_f64(), 3.0);
/// ```
pub fn where_(
    cond: &ChunkedArray,
    x: impl Into<Operand>,
    y: impl Into<Operand>,
) -> Result<ChunkedArray> {
    let (x, y) = (x.into(), y.into());
    let dtype = match (&x, &y) {
        (Operand::Array(a), Operand::Array(b)) => kernels::where_result_dtype(a.dtype(), b.dtype()),
        (Operand::Array(a), Operand::Scalar(s)) | (Operand::Scalar(s), Operand::Array(a)) => {
            s.promote_with(a.dtype())
        }
        (Operand::Scalar(a), Operand::Scalar(b)) => {
            crate::promote(a.natural_dtype(), b.natural_dtype())
        }
    };
    let materialize = |o: Operand| -> Result<ChunkedArray> {
        match o {
            Operand::Array(a) => Ok(a),
            Operand::Scalar(s) => ChunkedArray::full(&[], s, Chunking::Sizes(vec![]), dtype),
        }
    };
    let (xa, ya) = (materialize(x)?, materialize(y)?);
    blockwise("where", ArrayOp::Where, &[cond, &xa, &ya], dtype)
}
