//! [`ArrayOp`]: the operations of array tasks, as plain serializable data.

use crate::kernels::{ArgContext, BinaryOp, Partial, ReduceSpec, SliceSpec, UnaryOp};
use crate::registry::SourceRef;
use crate::stream::StreamPlan;
use crate::{ArrayError, Chunk, DType, Result, Scalar};
use gridflow_graph::{Expr, Operation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What an array task produces: a block, or the partial state of a tree reduction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A block of the array.
    Chunk(Chunk),
    /// An intermediate of a reduction (boxed: a partial is larger than a chunk handle).
    Partial(Box<Partial>),
}

impl Value {
    /// Bytes held.
    pub fn nbytes(&self) -> usize {
        match self {
            Value::Chunk(c) => c.nbytes(),
            Value::Partial(p) => p.nbytes(),
        }
    }

    pub(crate) fn chunk(&self, op: &str) -> Result<&Chunk> {
        match self {
            Value::Chunk(c) => Ok(c),
            Value::Partial(_) => Err(ArrayError::Kernel {
                op: op.to_owned(),
                detail: "expected a block but got a partial reduction".into(),
            }),
        }
    }

    pub(crate) fn partial(&self, op: &str) -> Result<&Partial> {
        match self {
            Value::Partial(p) => Ok(p),
            Value::Chunk(_) => Err(ArrayError::Kernel {
                op: op.to_owned(),
                detail: "expected a partial reduction but got a block".into(),
            }),
        }
    }
}

/// One operation of an array task. Every variant is data: a task can be hashed, drawn,
/// serialized and run anywhere.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ArrayOp {
    /// A block filled with one value.
    Full {
        /// Block shape.
        shape: Vec<usize>,
        /// The value.
        value: Scalar,
        /// Element type.
        dtype: DType,
    },
    /// `start + i * step` for `i` in `0..len` (1-d).
    Arange {
        /// First value.
        start: f64,
        /// Increment.
        step: f64,
        /// Number of values.
        len: usize,
        /// Element type.
        dtype: DType,
    },
    /// Uniform random floats in [0, 1), reproducible from `(seed, block)`.
    Random {
        /// The user's seed.
        seed: u64,
        /// The block's linear number (so every block draws a different stream).
        block: u64,
        /// Block shape.
        shape: Vec<usize>,
    },
    /// A block held in the graph itself (from an in-memory array or `persist`).
    Literal(Arc<Chunk>),
    /// Reads a block from a store.
    Read {
        /// The source.
        source: SourceRef,
        /// Block index in the source's grid.
        block: Vec<usize>,
    },
    /// An elementwise function.
    Unary(UnaryOp),
    /// Conversion to another dtype.
    AsType(DType),
    /// An elementwise binary operation between two blocks (broadcasting).
    Binary(BinaryOp),
    /// An elementwise binary operation with a scalar.
    BinaryScalar {
        /// The operation.
        op: BinaryOp,
        /// The scalar operand.
        scalar: Scalar,
        /// True for `scalar op block` (e.g. `2 - x`).
        scalar_on_left: bool,
    },
    /// `where(cond, x, y)`.
    Where,
    /// Elements equal to the scalar become NaN (CF `_FillValue`/`missing_value` masking;
    /// see [`kernels::mask_eq`]).
    MaskEq(Scalar),
    /// First step of a tree reduction: one block to a partial.
    ReduceBlock {
        /// The reduction.
        spec: ReduceSpec,
        /// Global position, for argmin/argmax.
        ctx: Option<Box<ArgContext>>,
    },
    /// Merges partials.
    ReduceCombine {
        /// The reduction.
        spec: ReduceSpec,
    },
    /// Turns a partial into the result block.
    ReduceFinalize {
        /// The reduction.
        spec: ReduceSpec,
        /// The reduced array's dtype.
        input_dtype: DType,
        /// Axes to drop (empty with keepdims).
        drop_axes: Vec<usize>,
    },
    /// Basic slicing of one block.
    Slice(Vec<SliceSpec>),
    /// Integer-list indexing of one block along an axis.
    Take {
        /// The axis.
        axis: usize,
        /// Indices within the block.
        indices: Vec<usize>,
    },
    /// Slices each input block and glues the pieces on a grid (rechunk).
    Gather {
        /// One slice per axis for each input, in input order.
        slices: Vec<Vec<SliceSpec>>,
        /// Number of pieces along each axis (C order).
        grid: Vec<usize>,
    },
    /// Permutes the axes.
    Transpose(Vec<usize>),
    /// Removes length-1 axes.
    DropAxes(Vec<usize>),
    /// Inserts length-1 axes.
    ExpandAxes(Vec<usize>),
    /// A read streamed slab by slab through row-local operations: made by lowering
    /// ([`crate::lower`]), never built directly.
    Stream(Box<StreamPlan>),
    /// A registered user kernel.
    MapBlocks {
        /// Registered name.
        kernel: String,
        /// Parameters passed to the kernel.
        params: serde_json::Value,
        /// Declared output dtype (checked).
        dtype: DType,
    },
}

impl Operation for ArrayOp {
    fn label(&self) -> String {
        match self {
            ArrayOp::Full { value, .. } => format!("full({value})"),
            ArrayOp::Arange { .. } => "arange".into(),
            ArrayOp::Random { .. } => "random".into(),
            ArrayOp::Literal(_) => "array".into(),
            ArrayOp::Read { source, .. } => format!("read-{}", source.0.kind()),
            ArrayOp::Unary(op) => op.name().into(),
            ArrayOp::AsType(d) => format!("astype({d})"),
            ArrayOp::Binary(op) => op.name().into(),
            ArrayOp::BinaryScalar { op, scalar, .. } => {
                format!("{}({})", op.name(), compact(*scalar))
            }
            ArrayOp::Where => "where".into(),
            ArrayOp::MaskEq(fill) => format!("mask({})", compact(*fill)),
            ArrayOp::ReduceBlock { spec, .. } => format!("{}-chunk", spec.op.name()),
            ArrayOp::ReduceCombine { spec } => format!("{}-combine", spec.op.name()),
            ArrayOp::ReduceFinalize { spec, .. } => format!("{}-agg", spec.op.name()),
            ArrayOp::Slice(_) => "getitem".into(),
            ArrayOp::Take { .. } => "take".into(),
            ArrayOp::Gather { .. } => "rechunk".into(),
            ArrayOp::Transpose(_) => "transpose".into(),
            ArrayOp::DropAxes(_) => "squeeze".into(),
            ArrayOp::ExpandAxes(_) => "expand_dims".into(),
            ArrayOp::MapBlocks { kernel, .. } => kernel.clone(),
            ArrayOp::Stream(plan) => plan.label(),
        }
    }

    fn is_blockwise(&self) -> bool {
        matches!(
            self,
            ArrayOp::Unary(_)
                | ArrayOp::AsType(_)
                | ArrayOp::Binary(_)
                | ArrayOp::BinaryScalar { .. }
                | ArrayOp::Where
                | ArrayOp::MaskEq(_)
        )
    }

    fn is_source(&self) -> bool {
        matches!(
            self,
            ArrayOp::Full { .. }
                | ArrayOp::Arange { .. }
                | ArrayOp::Random { .. }
                | ArrayOp::Literal(_)
                | ArrayOp::Read { .. }
                | ArrayOp::Stream(_)
        )
    }

    fn lowers(&self) -> bool {
        match self {
            ArrayOp::ReduceBlock { .. }
            | ArrayOp::MapBlocks { .. }
            | ArrayOp::Slice(_)
            | ArrayOp::Take { .. }
            | ArrayOp::DropAxes(_)
            | ArrayOp::ExpandAxes(_)
            | ArrayOp::Transpose(_) => true,
            op => op.is_pointwise(),
        }
    }

    fn lower(expr: &Expr<ArrayOp>) -> Option<Expr<ArrayOp>> {
        crate::lower::lower(expr)
    }

    fn peak_bytes(expr: &Expr<ArrayOp>) -> Option<u64> {
        match expr {
            Expr::Call {
                op: ArrayOp::Stream(plan),
                ..
            } => plan.peak_bytes,
            _ => None,
        }
    }
}

/// A scalar for labels: at most 4 significant digits (`0.01745`, `273.1`, `1e+06`).
fn compact(s: Scalar) -> String {
    match s {
        Scalar::Float(v) if v != 0.0 && v.is_finite() && (v.abs() >= 1e5 || v.abs() < 1e-3) => {
            format!("{v:.3e}")
        }
        Scalar::Float(v) if v.is_finite() => {
            let t = format!(
                "{:.*}",
                (3 - v.abs().log10().floor().clamp(-4.0, 3.0) as i32).max(0) as usize,
                v
            );
            if t.contains('.') {
                t.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                t
            }
        }
        other => other.to_string(),
    }
}

impl ArrayOp {
    /// True for single-input elementwise operations (ufuncs, scalar arithmetic, `astype`,
    /// masking): they commute with selections and run slab by slab or tile by tile.
    pub fn is_pointwise(&self) -> bool {
        matches!(
            self,
            ArrayOp::Unary(_)
                | ArrayOp::BinaryScalar { .. }
                | ArrayOp::AsType(_)
                | ArrayOp::MaskEq(_)
        )
    }
}
