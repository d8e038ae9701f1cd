//! [`ArrayOp`]: the operations of array tasks, as plain serializable data.

use crate::kernels::group::{GroupOp, GroupPartial};
use crate::kernels::{ArgContext, BinaryOp, Partial, ReduceSpec, SliceSpec, UnaryOp};
use crate::registry::SourceRef;
use crate::{ArrayError, Chunk, DType, Result, Scalar};
use serde::{Deserialize, Serialize};
use std::ops::Range;
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
    /// A group-by step (partial, combine, finalize, median).
    Group(GroupOp),
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

/// A task lowered to stream its read (see [`ArrayOp::Stream`]): the block of
/// `source` is read slab by slab of whole rows (axis 0), only the rows in `rows` when the
/// task selects a range of them, and each slab runs through `steps`, row-local operations
/// with the selections first (a selection never decodes or masks what it drops). The
/// task then holds a slab (a few MiB) and its result instead of the decoded block.
///
/// Plain data like every operation: a plan lowered here can be drawn, hashed and sent to
/// another process, which rebuilds the source from its kind and spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamPlan {
    pub(crate) source: SourceRef,
    pub(crate) block: Vec<usize>,
    /// The rows of the block the task reads (all of them when `None`).
    pub(crate) rows: Option<Range<usize>>,
    /// Row-local operations applied to each slab, in order.
    pub(crate) steps: Vec<ArrayOp>,
    /// What becomes of the slabs' results.
    pub(crate) tail: StreamTail,
    /// The estimated peak bytes of the task (slab buffers and result).
    pub(crate) peak_bytes: Option<u64>,
}

/// How a streamed task combines the results of its slabs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum StreamTail {
    /// Glued back together along the row axis.
    Rows,
    /// Reduced: partials over the row axis are combined, others glued.
    Reduce(ReduceSpec),
    /// A group-by partial along the rows, fed slab by slab.
    Group(GroupPartial),
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
