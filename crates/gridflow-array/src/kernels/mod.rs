//! Chunk kernels: the per-block computations behind every array operation.
//!
//! * [`elementwise`]: unary and binary ufuncs with NumPy promotion and broadcasting, `where`.
//! * [`reduce`]: tree-reduction building blocks (per-block partials, merging, finalizing).
//! * [`shape`]: structural kernels (slice, take, concatenate, assemble, transpose...).
//!
//! Every kernel takes borrowed [`Chunk`](crate::Chunk)s and returns a new chunk or an
//! [`ArrayError`](crate::ArrayError) naming the operation and the offending
//! shapes, axes or dtypes; kernels never panic on bad input. The `*_owned` elementwise
//! variants take their first operand by value and compute in its buffer when they can.

pub mod elementwise;
pub(crate) mod fused;
pub mod group;
pub mod reduce;
pub mod shape;

pub use elementwise::{
    BinaryOp, UnaryOp, binary, binary_owned, binary_result_dtype, binary_scalar,
    binary_scalar_owned, binary_scalar_result_dtype, broadcast_shapes, mask_eq, mask_eq_owned,
    mask_eq_result_dtype, unary, unary_owned, unary_result_dtype, where_, where_result_dtype,
};
pub use reduce::{
    ArgContext, Partial, ReduceOp, ReduceSpec, combine_partials, finalize, reduce_block,
    reduce_result_dtype,
};
pub use shape::{
    SliceSpec, assemble, broadcast_to, concatenate, drop_axes, expand_axes, slice, slice_rows,
    take, transpose,
};

use crate::chunk::Chunk;
use crate::dtype::DType;
use crate::error::{ArrayError, Result};
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;

/// Formats a shape the way NumPy prints it: `(2,3)`, `(4,)`, `()`.
pub(crate) fn fmt_shape(s: &[usize]) -> String {
    match s {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = s.iter().map(ToString::to_string).collect();
            format!("({})", parts.join(","))
        }
    }
}

/// A [`ArrayError::Shape`] for `op`.
pub(crate) fn shape_err(op: &str, detail: impl Into<String>) -> ArrayError {
    ArrayError::Shape {
        op: op.to_string(),
        detail: detail.into(),
    }
}

/// A [`ArrayError::DType`] for `op`.
pub(crate) fn dtype_err(op: &str, detail: impl Into<String>) -> ArrayError {
    ArrayError::DType {
        op: op.to_string(),
        detail: detail.into(),
    }
}

/// A [`ArrayError::Kernel`] for `op`.
pub(crate) fn kernel_err(op: &str, detail: impl Into<String>) -> ArrayError {
    ArrayError::Kernel {
        op: op.to_string(),
        detail: detail.into(),
    }
}

/// A [`ArrayError::Axis`] for `op`.
pub(crate) fn axis_err(op: &str, axis: usize, ndim: usize) -> ArrayError {
    ArrayError::Axis {
        op: op.to_string(),
        axis: isize::try_from(axis).unwrap_or(isize::MAX),
        ndim,
    }
}

/// Checks that `axes` are in range for `ndim` dimensions and pairwise distinct.
pub(crate) fn check_axes(op: &str, axes: &[usize], ndim: usize) -> Result<()> {
    let mut seen = vec![false; ndim];
    for &ax in axes {
        if ax >= ndim {
            return Err(axis_err(op, ax, ndim));
        }
        if seen[ax] {
            return Err(shape_err(op, format!("axis {ax} is repeated in {axes:?}")));
        }
        seen[ax] = true;
    }
    Ok(())
}

/// Builds an array from a C-order vector (an error instead of a panic on a size mismatch).
pub(crate) fn from_vec<T>(op: &str, shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| kernel_err(op, e.to_string()))
}

/// The chunk converted to `dtype`, borrowed when it already has it.
pub(crate) fn cast_cow(x: &Chunk, dtype: DType) -> Cow<'_, Chunk> {
    if x.dtype() == dtype {
        Cow::Borrowed(x)
    } else {
        Cow::Owned(x.astype(dtype))
    }
}

/// Matches two chunks of the same dtype, binding both typed arrays; a dtype mismatch is an
/// internal error of the kernel `$op`.
macro_rules! same_typed {
    ($op:expr, $a:expr, $b:expr, $x:ident, $y:ident => $body:expr) => {
        match ($a, $b) {
            ($crate::Chunk::Bool($x), $crate::Chunk::Bool($y)) => $body,
            ($crate::Chunk::I8($x), $crate::Chunk::I8($y)) => $body,
            ($crate::Chunk::I16($x), $crate::Chunk::I16($y)) => $body,
            ($crate::Chunk::I32($x), $crate::Chunk::I32($y)) => $body,
            ($crate::Chunk::I64($x), $crate::Chunk::I64($y)) => $body,
            ($crate::Chunk::U8($x), $crate::Chunk::U8($y)) => $body,
            ($crate::Chunk::U16($x), $crate::Chunk::U16($y)) => $body,
            ($crate::Chunk::U32($x), $crate::Chunk::U32($y)) => $body,
            ($crate::Chunk::U64($x), $crate::Chunk::U64($y)) => $body,
            ($crate::Chunk::F32($x), $crate::Chunk::F32($y)) => $body,
            ($crate::Chunk::F64($x), $crate::Chunk::F64($y)) => $body,
            (p, q) => Err($crate::kernels::kernel_err(
                $op,
                format!("internal dtype mismatch: {} vs {}", p.dtype(), q.dtype()),
            )),
        }
    };
}
pub(crate) use same_typed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_print_like_numpy() {
        assert_eq!(fmt_shape(&[]), "()");
        assert_eq!(fmt_shape(&[4]), "(4,)");
        assert_eq!(fmt_shape(&[2, 3]), "(2,3)");
    }

    #[test]
    fn axes_are_checked() {
        assert!(check_axes("t", &[0, 2], 3).is_ok());
        assert!(matches!(
            check_axes("t", &[3], 3),
            Err(ArrayError::Axis {
                axis: 3,
                ndim: 3,
                ..
            })
        ));
        let e = check_axes("t", &[1, 1], 3).unwrap_err().to_string();
        assert!(e.contains("repeated"), "{e}");
    }
}
