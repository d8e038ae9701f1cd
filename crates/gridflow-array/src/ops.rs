//! [`ArrayOp`]: the operations of array tasks, as plain serializable data.

use crate::kernels::fused::{self, ChainOp};
use crate::kernels::{self, ArgContext, BinaryOp, Partial, ReduceSpec, SliceSpec, UnaryOp};
use crate::registry::{self, SourceRef};
use crate::{ArrayError, Chunk, DType, Element, Result, Scalar};
use gridflow_graph::{Expr, Operation};
use gridflow_runtime::Execute;
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

    fn chunk(&self, op: &str) -> Result<&Chunk> {
        match self {
            Value::Chunk(c) => Ok(c),
            Value::Partial(_) => Err(ArrayError::Kernel {
                op: op.to_owned(),
                detail: "expected a block but got a partial reduction".into(),
            }),
        }
    }

    fn partial(&self, op: &str) -> Result<&Partial> {
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
        )
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

/// SplitMix64: a tiny, well-mixed generator; seeded per block so results do not depend on
/// which thread or worker computes which block.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        // 53 random mantissa bits -> [0, 1).
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

fn arity(op: &str, inputs: &[&Value], n: usize) -> Result<()> {
    if inputs.len() == n {
        Ok(())
    } else {
        Err(ArrayError::Kernel {
            op: op.to_owned(),
            detail: format!("expected {n} input(s), got {}", inputs.len()),
        })
    }
}

impl ArrayOp {
    /// Runs the operation on input values.
    pub fn run(&self, inputs: &[&Value]) -> Result<Value> {
        let label = self.label();
        let chunk = |i: usize| inputs[i].chunk(&label);
        Ok(Value::Chunk(match self {
            ArrayOp::Full {
                shape,
                value,
                dtype,
            } => Chunk::full(shape, *value, *dtype),
            ArrayOp::Arange {
                start,
                step,
                len,
                dtype,
            } => {
                let v: Vec<f64> = (0..*len).map(|i| start + i as f64 * step).collect();
                Chunk::from_f64_vec(&[*len], v, *dtype)?
            }
            ArrayOp::Random { seed, block, shape } => {
                let mut rng = SplitMix64(
                    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
                        ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let n: usize = shape.iter().product();
                let v: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
                Chunk::from_f64_vec(shape, v, DType::F64)?
            }
            ArrayOp::Literal(c) => (**c).clone(),
            ArrayOp::Read { source, block } => source.0.read_block(block)?,
            ArrayOp::Unary(op) => {
                arity(&label, inputs, 1)?;
                kernels::unary(*op, chunk(0)?)?
            }
            ArrayOp::AsType(d) => {
                arity(&label, inputs, 1)?;
                chunk(0)?.astype(*d)
            }
            ArrayOp::Binary(op) => {
                arity(&label, inputs, 2)?;
                kernels::binary(*op, chunk(0)?, chunk(1)?)?
            }
            ArrayOp::BinaryScalar {
                op,
                scalar,
                scalar_on_left,
            } => {
                arity(&label, inputs, 1)?;
                kernels::binary_scalar(*op, chunk(0)?, *scalar, *scalar_on_left)?
            }
            ArrayOp::Where => {
                arity(&label, inputs, 3)?;
                kernels::where_(chunk(0)?, chunk(1)?, chunk(2)?)?
            }
            ArrayOp::ReduceBlock { spec, ctx } => {
                arity(&label, inputs, 1)?;
                let p = kernels::reduce_block(spec, chunk(0)?, ctx.as_deref())?;
                return Ok(Value::Partial(Box::new(p)));
            }
            ArrayOp::ReduceCombine { spec } => {
                let parts: Vec<&Partial> = inputs
                    .iter()
                    .map(|v| v.partial(&label))
                    .collect::<Result<_>>()?;
                return Ok(Value::Partial(Box::new(kernels::combine_partials(
                    spec, &parts,
                )?)));
            }
            ArrayOp::ReduceFinalize {
                spec,
                input_dtype,
                drop_axes,
            } => {
                arity(&label, inputs, 1)?;
                let c = kernels::finalize(spec, inputs[0].partial(&label)?, *input_dtype)?;
                if drop_axes.is_empty() {
                    c
                } else {
                    kernels::drop_axes(&c, drop_axes)?
                }
            }
            ArrayOp::Slice(specs) => {
                arity(&label, inputs, 1)?;
                kernels::slice(chunk(0)?, specs)?
            }
            ArrayOp::Take { axis, indices } => {
                arity(&label, inputs, 1)?;
                kernels::take(chunk(0)?, *axis, indices)?
            }
            ArrayOp::Gather { slices, grid } => {
                arity(&label, inputs, slices.len())?;
                let pieces: Vec<Chunk> = slices
                    .iter()
                    .enumerate()
                    .map(|(i, s)| kernels::slice(chunk(i)?, s))
                    .collect::<Result<_>>()?;
                let refs: Vec<&Chunk> = pieces.iter().collect();
                kernels::assemble(&refs, grid)?
            }
            ArrayOp::Transpose(perm) => {
                arity(&label, inputs, 1)?;
                kernels::transpose(chunk(0)?, perm)?
            }
            ArrayOp::DropAxes(axes) => {
                arity(&label, inputs, 1)?;
                kernels::drop_axes(chunk(0)?, axes)?
            }
            ArrayOp::ExpandAxes(axes) => {
                arity(&label, inputs, 1)?;
                kernels::expand_axes(chunk(0)?, axes)?
            }
            ArrayOp::MapBlocks {
                kernel,
                params,
                dtype,
            } => {
                let f = registry::kernel(kernel)?;
                let blocks: Vec<&Chunk> = inputs
                    .iter()
                    .map(|v| v.chunk(&label))
                    .collect::<Result<_>>()?;
                let out = f(&blocks, params)?;
                if out.dtype() != *dtype {
                    return Err(ArrayError::DType {
                        op: format!("map_blocks({kernel})"),
                        detail: format!(
                            "kernel returned {} but {} was declared",
                            out.dtype(),
                            dtype
                        ),
                    });
                }
                out
            }
        }))
    }
}

/// Elements per tile when streaming a fused elementwise chain that the float fast path
/// ([`kernels::fused`]) does not handle (512 KiB of float64: the tile stays in L2 while every
/// operation of the chain runs over it).
const TILE: usize = 65_536;

/// Streams a chain of two or more single-input elementwise operations (`sqrt(2 * x + 1)`),
/// or any such chain under a reduction over every axis, without block-sized temporaries.
/// Float chains that keep their dtype run through [`kernels::fused`] (one read of the input,
/// L1-sized sub-tiles, the sum folded into the last step); other chains stream through
/// `TILE`-sized tiles op by op. Returns `None` for anything else (evaluated node by node).
fn fused_elementwise(expr: &Expr<ArrayOp>, inputs: &[Arc<Value>]) -> Option<Result<Value>> {
    if let Some(out) = stream_read(expr) {
        return Some(out);
    }
    // A reduction over every axis of a chain: reduce each tile as it leaves the chain.
    if let Expr::Call {
        op: ArrayOp::ReduceBlock { spec, ctx: None },
        args,
    } = expr
    {
        if args.len() != 1 || spec.op.is_arg() {
            return None;
        }
        let (chain, leaf_node) = chain_of(&args[0]);
        if let Expr::Call {
            op:
                ArrayOp::Full {
                    shape,
                    value,
                    dtype,
                },
            ..
        } = leaf_node
            && let Some(p) = constant_reduce(&chain, spec, shape, *value, *dtype)
        {
            return Some(p.map(|p| Value::Partial(Box::new(p))));
        }
        if chain.is_empty() {
            return None;
        }
        return with_leaf(leaf_node, inputs, |leaf| {
            if spec.axes.len() != leaf.ndim() {
                return None;
            }
            if let Some(p) = fast_reduce(&chain, spec, leaf) {
                return Some(Ok(Value::Partial(Box::new(p))));
            }
            if leaf.len() <= TILE {
                return None;
            }
            let tiles = tiles_of(leaf, true)?;
            let run = |tile: Chunk| -> Result<kernels::Partial> {
                // Tiles are (1, ..., 1, n) blocks, so their partials have the block's keepdims
                // shape and combine like the partials of blocks do.
                let out = chain.iter().try_fold(tile, |c, op| apply_owned(op, c))?;
                kernels::reduce_block(spec, &out, None)
            };
            let mut acc: Option<kernels::Partial> = None;
            for tile in tiles {
                let p = match run(tile) {
                    Ok(p) => p,
                    Err(e) => return Some(Err(e)),
                };
                acc = Some(match acc {
                    None => p,
                    Some(a) => match kernels::combine_partials(spec, &[&a, &p]) {
                        Ok(c) => c,
                        Err(e) => return Some(Err(e)),
                    },
                });
            }
            acc.map(|p| Ok(Value::Partial(Box::new(p))))
        });
    }
    let (chain, leaf_node) = chain_of(expr);
    if chain.len() < 2 {
        return None;
    }
    with_leaf(leaf_node, inputs, |leaf| Some(stream_chain(&chain, leaf)))
}

/// A read whose block is sliced or reduced by the rest of the task (`read → getitem →
/// squeeze`, `read → mean over time`, `read → sum over lon`) runs over slabs of whole rows
/// of the block, as the source decodes them ([`crate::ChunkSource::read_block_slabs`]):
/// the task then holds a slab (a few MiB) and its result instead of the decoded block. Every
/// operation on the way keeps axis 0 as the row axis; slices along it are cut per slab, a
/// reduction over it combines the slabs' partials, and anything else is glued along axis 0.
/// `None` for other tasks (and for plain elementwise chains, whose result is as big as the
/// block).
fn stream_read(expr: &Expr<ArrayOp>) -> Option<Result<Value>> {
    // The ops from the top down to the read.
    let mut ops: Vec<&ArrayOp> = Vec::new();
    let mut node = expr;
    let (source, block) = loop {
        let Expr::Call { op, args } = node else {
            return None;
        };
        if let ArrayOp::Read { source, block } = op {
            if !args.is_empty() {
                return None;
            }
            break (source, block);
        }
        if args.len() != 1 {
            return None;
        }
        ops.push(op);
        node = &args[0];
    };
    ops.reverse();
    let (last, below) = ops.split_last()?;
    let reduce = match last {
        ArrayOp::ReduceBlock { spec, ctx: None } if !spec.op.is_arg() => Some(spec),
        _ => None,
    };
    // A group-by partial along the rows accumulates slab by slab.
    let mut group = match last {
        ArrayOp::MapBlocks { kernel, params, .. } => {
            match crate::groupby::group_partial_stream(kernel, params, row_axis_of(below)?) {
                Some(Ok(g)) => Some(g),
                Some(Err(e)) => return Some(Err(e)),
                None => None,
            }
        }
        _ => None,
    };
    let top = reduce.is_some() || group.is_some();
    let rowwise = if top { below } else { &ops[..] };
    let shrinks = top || rowwise.iter().any(|op| matches!(op, ArrayOp::Slice(_)));
    if !shrinks {
        return None;
    }
    // The read block's axis 0 (the rows the slabs split) as each op sees it, and after all.
    let mut axis_at = Vec::with_capacity(rowwise.len());
    for i in 0..rowwise.len() {
        axis_at.push(row_axis_of(&rowwise[..i])?);
    }
    let row = row_axis_of(rowwise)?;
    let mut acc: Option<Value> = None;
    let mut parts: Vec<Value> = Vec::new();
    // When no row is kept: where the rows ran out (op index) and the empty block there.
    let mut empty_at: Option<(usize, Chunk)> = None;
    let mut offset = 0usize;
    let mut visit = |slab: Chunk| -> Result<()> {
        let mut rows = slab.shape().first().copied().unwrap_or(0);
        // The slab's first row in the coordinates of the block as each op sees it.
        let mut pos = offset;
        offset += rows;
        let mut value = Value::Chunk(slab);
        for (i, op) in rowwise.iter().enumerate() {
            let op = match op {
                ArrayOp::Slice(specs) => {
                    let axis = axis_at[i];
                    let Some((local, kept, next)) = per_slab(specs, axis, pos, rows) else {
                        if empty_at.is_none() {
                            let mut none = specs.clone();
                            none[axis] = SliceSpec::range(0, 0);
                            empty_at = Some((i, kernels::slice(value.chunk("getitem")?, &none)?));
                        }
                        return Ok(());
                    };
                    (rows, pos) = (kept, next);
                    ArrayOp::Slice(local)
                }
                other => (*other).clone(),
            };
            value = op.run(&[&value])?;
        }
        if let Some(g) = group.as_mut() {
            return g.feed(value.chunk("group partial")?);
        }
        match reduce {
            None => parts.push(value),
            Some(spec) => {
                let p = kernels::reduce_block(spec, value.chunk("reduce")?, None)?;
                if spec.axes.contains(&row) {
                    acc = Some(Value::Partial(Box::new(match acc.take() {
                        Some(Value::Partial(a)) => kernels::combine_partials(spec, &[&a, &p])?,
                        _ => p,
                    })));
                } else {
                    parts.push(Value::Partial(Box::new(p)));
                }
            }
        }
        Ok(())
    };
    if let Err(e) = source.0.read_block_slabs(block, &mut visit) {
        return Some(Err(e));
    }
    if let Some(v) = acc {
        return Some(Ok(v));
    }
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        return Some(g.finish().map(Value::Chunk));
    }
    if parts.is_empty() {
        // No row was kept: run the rest on the empty block, for the result's shape.
        let (at, empty) = empty_at?;
        let mut value = Value::Chunk(empty);
        for op in &rowwise[at + 1..] {
            value = match op.run(&[&value]) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
        }
        if top {
            return Some(last.run(&[&value]));
        }
        return Some(Ok(value));
    }
    Some(glue_rows(parts, row))
}

/// Where axis 0 of a read block is after `ops` (which insert and drop other axes around
/// it), or `None` if some op cannot run slab by slab along it: anything but elementwise
/// ops, unit-step slices of it, and inserting or dropping other axes.
fn row_axis_of(ops: &[&ArrayOp]) -> Option<usize> {
    let mut row = 0usize;
    for op in ops {
        match op {
            ArrayOp::Unary(_) | ArrayOp::BinaryScalar { .. } | ArrayOp::AsType(_) => {}
            ArrayOp::Slice(specs) => {
                if specs.get(row)?.step != 1 {
                    return None;
                }
            }
            ArrayOp::DropAxes(axes) => {
                if axes.contains(&row) {
                    return None;
                }
                row -= axes.iter().filter(|&&a| a < row).count();
            }
            // `axes` are positions in the output (`numpy.expand_dims`).
            ArrayOp::ExpandAxes(axes) => {
                let mut sorted = axes.clone();
                sorted.sort_unstable();
                for a in sorted {
                    if a <= row {
                        row += 1;
                    }
                }
            }
            _ => return None,
        }
    }
    Some(row)
}

/// Slice `specs` (on the row `axis`, a unit-step range over the whole block) as it applies
/// to the rows `pos..pos + rows` of one slab: the slab-local slice, the rows it keeps and
/// the first kept row's position after the slice; `None` when it keeps none of them.
fn per_slab(
    specs: &[SliceSpec],
    axis: usize,
    pos: usize,
    rows: usize,
) -> Option<(Vec<SliceSpec>, usize, usize)> {
    let first = specs.get(axis)?;
    let stop = usize::try_from(first.stop).unwrap_or(0);
    let lo = first.start.max(pos);
    let hi = stop.min(pos + rows);
    if lo >= hi {
        return None;
    }
    let mut local = specs.to_vec();
    local[axis] = SliceSpec::range(lo - pos, hi - pos);
    Some((local, hi - lo, lo - first.start))
}

/// The slabs' results joined along the row `axis`: blocks, or partials of reductions that
/// keep it.
fn glue_rows(parts: Vec<Value>, axis: usize) -> Result<Value> {
    use ndarray::{Axis, concatenate};
    let err = |detail: String| ArrayError::Kernel {
        op: "read slabs".into(),
        detail,
    };
    if parts.len() == 1 {
        return parts
            .into_iter()
            .next()
            .ok_or_else(|| err("no slab".into()));
    }
    if let Some(Value::Chunk(_)) = parts.first() {
        let chunks: Vec<&Chunk> = parts
            .iter()
            .map(|v| v.chunk("read slabs"))
            .collect::<Result<_>>()?;
        return kernels::concatenate(&chunks, axis).map(Value::Chunk);
    }
    let ps: Vec<&Partial> = parts
        .iter()
        .map(|v| v.partial("read slabs"))
        .collect::<Result<_>>()?;
    fn cat<T: Clone>(
        axis: usize,
        a: Vec<ndarray::ArrayViewD<'_, T>>,
    ) -> Result<ndarray::ArrayD<T>> {
        concatenate(Axis(axis), &a).map_err(|e| ArrayError::Kernel {
            op: "read slabs".into(),
            detail: e.to_string(),
        })
    }
    macro_rules! field {
        ($pat:pat => $f:expr) => {
            ps.iter()
                .map(|p| match p {
                    $pat => Ok($f.view()),
                    other => Err(err(format!("mixed partials ({})", other.kind()))),
                })
                .collect::<Result<Vec<_>>>()?
        };
    }
    let chunks_of = |get: fn(&Partial) -> Option<&Chunk>| -> Result<Chunk> {
        let cs: Vec<&Chunk> = ps
            .iter()
            .map(|p| get(p).ok_or_else(|| err(format!("mixed partials ({})", p.kind()))))
            .collect::<Result<_>>()?;
        kernels::concatenate(&cs, axis)
    };
    let out = match ps[0] {
        Partial::Sum(_) => Partial::Sum(chunks_of(|p| match p {
            Partial::Sum(c) => Some(c),
            _ => None,
        })?),
        Partial::Prod(_) => Partial::Prod(chunks_of(|p| match p {
            Partial::Prod(c) => Some(c),
            _ => None,
        })?),
        Partial::Extreme(_) => Partial::Extreme(chunks_of(|p| match p {
            Partial::Extreme(c) => Some(c),
            _ => None,
        })?),
        Partial::Mean { .. } => Partial::Mean {
            sum: cat(axis, field!(Partial::Mean { sum, .. } => sum))?,
            count: cat(axis, field!(Partial::Mean { count, .. } => count))?,
        },
        Partial::Moments { .. } => Partial::Moments {
            count: cat(axis, field!(Partial::Moments { count, .. } => count))?,
            mean: cat(axis, field!(Partial::Moments { mean, .. } => mean))?,
            m2: cat(axis, field!(Partial::Moments { m2, .. } => m2))?,
        },
        Partial::Count(_) => Partial::Count(cat(axis, field!(Partial::Count(c) => c))?),
        Partial::Logical(_) => Partial::Logical(cat(axis, field!(Partial::Logical(c) => c))?),
        Partial::Arg { .. } => return Err(err("arg reductions are not streamed".into())),
    };
    Ok(Value::Partial(Box::new(out)))
}

/// The partial of `spec` over `chain(full(shape, value))` without filling the block: every
/// element is the same, so the reduction of a block whose reduced axes have length 1 (the
/// partial's own shape) scaled by the number of reduced elements is the answer. Like Dask's
/// zero-stride `ones` blocks, `ones((20000, 20000)).sum()` then costs nothing per element.
/// Sums come out as `value × n`, the correctly rounded sum (cascade summation of `n` equal
/// values may differ in the last bit). `None` (evaluate normally) for products, arg
/// reductions and empty blocks.
fn constant_reduce(
    chain: &[&ArrayOp],
    spec: &ReduceSpec,
    shape: &[usize],
    value: Scalar,
    dtype: DType,
) -> Option<Result<Partial>> {
    use kernels::ReduceOp;
    if matches!(
        spec.op,
        ReduceOp::Prod | ReduceOp::ArgMin | ReduceOp::ArgMax
    ) {
        return None;
    }
    let mut small = shape.to_vec();
    let mut n: usize = 1;
    for &a in &spec.axes {
        let len = small.get_mut(a)?;
        n = n.checked_mul(*len)?;
        *len = 1;
    }
    if n == 0 {
        return None;
    }
    let run = || -> Result<Partial> {
        let block = chain
            .iter()
            .try_fold(Chunk::full(&small, value, dtype), |c, op| {
                apply_owned(op, c)
            })?;
        Ok(scale_partial(kernels::reduce_block(spec, &block, None)?, n))
    };
    Some(run())
}

/// A partial over one element per slot turned into the partial over `n` copies of it.
fn scale_partial(p: Partial, n: usize) -> Partial {
    // Integer sums wrap like `n` wrapping additions would; counts fit (n is a block size).
    let n_i64 = i64::try_from(n).unwrap_or(i64::MAX);
    let scale_sum = |c: Chunk| match c {
        Chunk::F64(a) => Chunk::F64(a.mapv(|v| v * n as f64)),
        Chunk::I64(a) => Chunk::I64(a.mapv(|v| v.wrapping_mul(n_i64))),
        Chunk::U64(a) => Chunk::U64(a.mapv(|v| v.wrapping_mul(n as u64))),
        other => other,
    };
    match p {
        Partial::Sum(c) => Partial::Sum(scale_sum(c)),
        Partial::Mean { sum, count } => Partial::Mean {
            sum: sum.mapv(|v| v * n as f64),
            count: count.mapv(|c| c.saturating_mul(n_i64)),
        },
        Partial::Moments { count, mean, m2 } => Partial::Moments {
            count: count.mapv(|c| c.saturating_mul(n_i64)),
            mean,
            m2,
        },
        Partial::Count(c) => Partial::Count(c.mapv(|c| c.saturating_mul(n_i64))),
        // min/max/any/all of equal values are the value itself.
        other => other,
    }
}

/// The single-input elementwise operations from the top of `expr` down, returned in the
/// order they apply, and the node below them.
fn chain_of(expr: &Expr<ArrayOp>) -> (Vec<&ArrayOp>, &Expr<ArrayOp>) {
    let mut chain: Vec<&ArrayOp> = Vec::new();
    let mut node = expr;
    while let Expr::Call { op, args } = node {
        let streamable = matches!(
            op,
            ArrayOp::Unary(_) | ArrayOp::BinaryScalar { .. } | ArrayOp::AsType(_)
        );
        if !streamable || args.len() != 1 {
            break;
        }
        chain.push(op);
        node = &args[0];
    }
    chain.reverse();
    (chain, node)
}

/// The chain compiled for the float fast path, if it is a float chain that keeps the
/// block's dtype.
fn compile_chain(chain: &[&ArrayOp], input: DType) -> Option<fused::Program> {
    let ops: Vec<ChainOp> = chain
        .iter()
        .map(|op| match op {
            ArrayOp::Unary(u) => Some(ChainOp::Unary(*u)),
            ArrayOp::BinaryScalar {
                op,
                scalar,
                scalar_on_left,
            } => Some(ChainOp::Scalar {
                op: *op,
                scalar: *scalar,
                left: *scalar_on_left,
            }),
            ArrayOp::AsType(d) => Some(ChainOp::AsType(*d)),
            _ => None,
        })
        .collect::<Option<_>>()?;
    fused::Program::compile(&ops, input)
}

/// The partial of a sum or mean over every axis of `chain(leaf)`, computed in one pass by
/// the float fast path; `None` when it does not apply.
fn fast_reduce(chain: &[&ArrayOp], spec: &kernels::ReduceSpec, leaf: &Chunk) -> Option<Partial> {
    let count = match spec.op {
        kernels::ReduceOp::Sum => false,
        kernels::ReduceOp::Mean => true,
        _ => return None,
    };
    // Exactly the axes `reduce_block` would accept as "all of them".
    if !spec.axes.iter().copied().eq(0..leaf.ndim()) {
        return None;
    }
    let r = compile_chain(chain, leaf.dtype())?.sum(leaf, spec.skipna, count)?;
    let keepdims = ndarray::IxDyn(&vec![1; leaf.ndim()]);
    Some(if count {
        Partial::Mean {
            sum: ndarray::ArrayD::from_elem(keepdims.clone(), r.sum),
            count: ndarray::ArrayD::from_elem(keepdims, i64::try_from(r.count).ok()?),
        }
    } else {
        Partial::Sum(Chunk::F64(ndarray::ArrayD::from_elem(keepdims, r.sum)))
    })
}

/// Calls `f` with the chain's input block: a task input, a literal (borrowed, not copied), or
/// an operation whose arguments are all task inputs.
fn with_leaf(
    node: &Expr<ArrayOp>,
    inputs: &[Arc<Value>],
    f: impl FnOnce(&Chunk) -> Option<Result<Value>>,
) -> Option<Result<Value>> {
    match node {
        Expr::Input(i) => match inputs.get(*i).map(|v| &**v) {
            Some(Value::Chunk(c)) => f(c),
            _ => None,
        },
        Expr::Call {
            op: ArrayOp::Literal(c),
            ..
        } => f(c),
        Expr::Call { op, args } => {
            let mut refs = Vec::with_capacity(args.len());
            for a in args {
                match a {
                    Expr::Input(i) => refs.push(&**inputs.get(*i)?),
                    Expr::Call { .. } => return None,
                }
            }
            match op.run(&refs) {
                Ok(Value::Chunk(c)) => f(&c),
                Ok(Value::Partial(_)) => None,
                Err(e) => Some(Err(e)),
            }
        }
    }
}

/// The block's elements cut into 1-d tiles of at most `TILE`, copied lazily one tile at a
/// time, if its data is contiguous. With `keep_ndim`, each tile has shape `(1, ..., 1, n)` of
/// the block's rank, else `(n,)`.
fn tiles_of(input: &Chunk, keep_ndim: bool) -> Option<Box<dyn Iterator<Item = Chunk> + '_>> {
    let ndim = if keep_ndim { input.ndim().max(1) } else { 1 };
    let shape_of = move |n: usize| {
        let mut s = vec![1; ndim];
        if let Some(last) = s.last_mut() {
            *last = n;
        }
        s
    };
    crate::with_chunk!(input, a => a.as_slice().map(|s| {
        Box::new(s.chunks(TILE).map(move |t| {
            Element::wrap(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape_of(t.len())), t.to_vec()).unwrap_or_default())
        })) as Box<dyn Iterator<Item = Chunk> + '_>
    }))
}

fn apply_owned(op: &ArrayOp, c: Chunk) -> Result<Chunk> {
    match op {
        ArrayOp::Unary(u) => kernels::unary_owned(*u, c),
        ArrayOp::BinaryScalar {
            op,
            scalar,
            scalar_on_left,
        } => kernels::binary_scalar_owned(*op, c, *scalar, *scalar_on_left),
        ArrayOp::AsType(d) => Ok(c.into_dtype(*d)),
        other => Err(ArrayError::Kernel {
            op: other.label(),
            detail: "internal: not a streamable operation".into(),
        }),
    }
}

fn stream_chain(chain: &[&ArrayOp], input: &Chunk) -> Result<Value> {
    if let Some(out) = compile_chain(chain, input.dtype()).and_then(|p| p.map(input)) {
        return out.map(Value::Chunk);
    }
    let run = |tile: Chunk| chain.iter().try_fold(tile, |c, op| apply_owned(op, c));
    let n = input.len();
    // Tiles are copied out of the input's contiguous data; other layouts take the plain path.
    let tiles = tiles_of(input, false);
    let Some(mut tiles) = tiles.filter(|_| n > TILE) else {
        return run(input.clone()).map(Value::Chunk);
    };
    let Some(first) = tiles.next() else {
        return run(input.clone()).map(Value::Chunk);
    };
    let first = run(first)?;
    let out = crate::dispatch_dtype!(first.dtype(), T => {
        let mut out: Vec<T> = Vec::with_capacity(n);
        for tile in std::iter::once(Ok(first)).chain(tiles.map(run)) {
            let typed = T::take(tile?).map_err(|c| ArrayError::Kernel {
                op: "elementwise chain".into(),
                detail: format!("a tile came out as {} instead of {}", c.dtype(), T::DTYPE),
            })?;
            match typed.as_slice() {
                Some(sl) => out.extend_from_slice(sl),
                None => out.extend(typed.iter().copied()),
            }
        }
        T::wrap(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(input.shape()), out).map_err(|e| ArrayError::Shape {
            op: "elementwise chain".into(),
            detail: e.to_string(),
        })?)
    });
    Ok(Value::Chunk(out))
}

impl Execute for ArrayOp {
    type Value = Value;
    type Error = ArrayError;

    fn execute(&self, inputs: &[&Value]) -> Result<Value> {
        self.run(inputs)
    }

    fn execute_owned(&self, mut inputs: Vec<Arc<Value>>) -> Result<Value> {
        // Reuse the first input's buffer when this call is its only holder (inside a fused
        // task): `sqrt(2 * x + 1)` then runs in one block-sized buffer.
        let owned_first = match self {
            ArrayOp::Unary(_) | ArrayOp::BinaryScalar { .. } if inputs.len() == 1 => inputs.pop(),
            ArrayOp::Binary(_) if inputs.len() == 2 => Some(inputs.remove(0)),
            _ => None,
        };
        let Some(first) = owned_first else {
            let refs: Vec<&Value> = inputs.iter().map(|v| &**v).collect();
            return self.run(&refs);
        };
        let first = match Arc::try_unwrap(first) {
            Ok(Value::Chunk(c)) => c,
            Ok(other) => {
                let mut refs: Vec<&Value> = vec![&other];
                refs.extend(inputs.iter().map(|v| &**v));
                return self.run(&refs);
            }
            Err(shared) => {
                let mut refs: Vec<&Value> = vec![&*shared];
                refs.extend(inputs.iter().map(|v| &**v));
                return self.run(&refs);
            }
        };
        let label = self.label();
        Ok(Value::Chunk(match self {
            ArrayOp::Unary(op) => kernels::unary_owned(*op, first)?,
            ArrayOp::BinaryScalar {
                op,
                scalar,
                scalar_on_left,
            } => kernels::binary_scalar_owned(*op, first, *scalar, *scalar_on_left)?,
            ArrayOp::Binary(op) => kernels::binary_owned(*op, first, inputs[0].chunk(&label)?)?,
            _ => {
                return Err(ArrayError::Kernel {
                    op: label,
                    detail: "internal: no owned path".into(),
                });
            }
        }))
    }

    fn execute_fused(expr: &Expr<ArrayOp>, inputs: &[Arc<Value>]) -> Option<Result<Value>> {
        fused_elementwise(expr, inputs)
    }

    fn nbytes(value: &Value) -> usize {
        value.nbytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groupby::GroupStat;
    use crate::kernels::{ReduceOp, finalize};

    fn literal(shape: &[usize], dt: DType) -> Expr<ArrayOp> {
        let n: usize = shape.iter().product();
        // Some negative values (NaN after sqrt), a NaN and an infinity.
        let v: Vec<f64> = (0..n)
            .map(|i| match i % 1013 {
                5 => f64::NAN,
                17 => f64::INFINITY,
                k => (k as f64 - 40.0) / 7.0,
            })
            .collect();
        let c = Chunk::from_f64_vec(shape, v, dt).unwrap();
        Expr::Call {
            op: ArrayOp::Literal(Arc::new(c)),
            args: vec![],
        }
    }

    fn call(op: ArrayOp, arg: Expr<ArrayOp>) -> Expr<ArrayOp> {
        Expr::Call {
            op,
            args: vec![arg],
        }
    }

    fn scalar(op: BinaryOp, v: f64) -> ArrayOp {
        ArrayOp::BinaryScalar {
            op,
            scalar: Scalar::Float(v),
            scalar_on_left: false,
        }
    }

    /// `sqrt(2x + 1)`, optionally with a dtype change in the middle.
    fn chain(leaf: Expr<ArrayOp>, cast: Option<DType>) -> Expr<ArrayOp> {
        let mut e = call(scalar(BinaryOp::Mul, 2.0), leaf);
        if let Some(d) = cast {
            e = call(ArrayOp::AsType(d), e);
        }
        e = call(scalar(BinaryOp::Add, 1.0), e);
        call(ArrayOp::Unary(UnaryOp::Sqrt), e)
    }

    /// Evaluates `expr` node by node, without the fused paths.
    fn plain(expr: &Expr<ArrayOp>) -> Value {
        match expr {
            Expr::Input(_) => unreachable!("no inputs in these tests"),
            Expr::Call { op, args } => {
                let vals: Vec<Value> = args.iter().map(plain).collect();
                let refs: Vec<&Value> = vals.iter().collect();
                op.run(&refs).unwrap()
            }
        }
    }

    #[test]
    fn fused_reductions_equal_node_by_node() {
        for shape in [vec![3, 37], vec![300, 250]] {
            for dt in [DType::F64, DType::F32] {
                for cast in [None, Some(DType::F64), Some(DType::F32)] {
                    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
                        for skipna in [true, false] {
                            let mut spec = ReduceSpec::new(op, vec![0, 1]);
                            spec.skipna = skipna;
                            let expr = call(
                                ArrayOp::ReduceBlock {
                                    spec: spec.clone(),
                                    ctx: None,
                                },
                                chain(literal(&shape, dt), cast),
                            );
                            let want = plain(&expr);
                            let got = match fused_elementwise(&expr, &[]) {
                                Some(r) => r.unwrap(),
                                None => {
                                    // Only small blocks off the fast path are left alone.
                                    assert!(
                                        shape[0] < 10 && (cast.is_some() || op == ReduceOp::Max)
                                    );
                                    continue;
                                }
                            };
                            let out_dtype = cast.unwrap_or(dt);
                            let (Value::Partial(g), Value::Partial(w)) = (&got, &want) else {
                                panic!("expected partials");
                            };
                            let g = finalize(&spec, g, out_dtype).unwrap().to_f64_vec()[0];
                            let w = finalize(&spec, w, out_dtype).unwrap().to_f64_vec()[0];
                            let case = format!("{shape:?} {dt} {cast:?} {op:?} skipna={skipna}");
                            assert!(
                                g.to_bits() == w.to_bits()
                                    || (g.is_nan() && w.is_nan())
                                    || (g - w).abs() <= 1e-12 * w.abs(),
                                "{case}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fused_chains_equal_node_by_node_bit_for_bit() {
        for shape in [vec![5, 7], vec![300, 250]] {
            for dt in [DType::F64, DType::F32] {
                for cast in [None, Some(DType::F32)] {
                    let expr = chain(literal(&shape, dt), cast);
                    let Some(got) = fused_elementwise(&expr, &[]) else {
                        panic!("a chain of three is streamed");
                    };
                    let (Value::Chunk(g), Value::Chunk(w)) = (got.unwrap(), plain(&expr)) else {
                        panic!("expected blocks");
                    };
                    assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()));
                    let same = g
                        .to_f64_vec()
                        .iter()
                        .zip(w.to_f64_vec())
                        .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                    assert!(same, "{shape:?} {dt} {cast:?}");
                }
            }
        }
    }

    #[test]
    fn constant_blocks_reduce_without_filling_like_filled_blocks() {
        let shape = [6usize, 5, 4];
        let values = [
            Scalar::Float(1.0),
            Scalar::Float(0.1),
            Scalar::Float(-2.5),
            Scalar::Float(f64::NAN),
            Scalar::Float(0.0),
        ];
        let ops = [
            ReduceOp::Sum,
            ReduceOp::Mean,
            ReduceOp::Min,
            ReduceOp::Max,
            ReduceOp::Var,
            ReduceOp::Std,
            ReduceOp::Count,
            ReduceOp::Any,
            ReduceOp::All,
        ];
        let mut checked = 0;
        for dt in [DType::F64, DType::F32, DType::I32, DType::U8, DType::Bool] {
            for value in values {
                for axes in [vec![0, 1, 2], vec![1], vec![0, 2], vec![]] {
                    for op in ops {
                        for skipna in [true, false] {
                            for with_chain in [false, true] {
                                let mut spec = ReduceSpec::new(op, axes.clone());
                                spec.skipna = skipna;
                                let leaf = Expr::Call {
                                    op: ArrayOp::Full {
                                        shape: shape.to_vec(),
                                        value,
                                        dtype: dt,
                                    },
                                    args: vec![],
                                };
                                let arg = if with_chain {
                                    call(scalar(BinaryOp::Add, 3.0), leaf)
                                } else {
                                    leaf
                                };
                                let expr = call(
                                    ArrayOp::ReduceBlock {
                                        spec: spec.clone(),
                                        ctx: None,
                                    },
                                    arg,
                                );
                                let case = format!(
                                    "{dt} {value:?} {axes:?} {op:?} skipna={skipna} chain={with_chain}"
                                );
                                let want = op.run_plain(&expr);
                                let got = fused_elementwise(&expr, &[]);
                                let (got, want) = match (got, want) {
                                    (Some(Ok(g)), Ok(w)) => (g, w),
                                    // Both refuse (e.g. var of bools): the same error.
                                    (Some(Err(g)), Err(w)) => {
                                        assert_eq!(g.to_string(), w.to_string(), "{case}");
                                        continue;
                                    }
                                    (None, _) => panic!("{case}: a constant block was filled"),
                                    (g, w) => panic!("{case}: {g:?} vs {w:?}"),
                                };
                                let (Value::Partial(g), Value::Partial(w)) = (&got, &want) else {
                                    panic!("{case}: expected partials");
                                };
                                let Expr::Call { args, .. } = &expr else {
                                    unreachable!()
                                };
                                let Ok(Value::Chunk(block)) = op.run_plain(&args[0]) else {
                                    panic!("{case}: the block itself fails");
                                };
                                let out = block.dtype();
                                let g = finalize(&spec, g, out).unwrap();
                                let w = finalize(&spec, w, out).unwrap();
                                assert_eq!(
                                    (g.dtype(), g.shape()),
                                    (w.dtype(), w.shape()),
                                    "{case}"
                                );
                                for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
                                    assert!(
                                        a.to_bits() == b.to_bits()
                                            || (a.is_nan() && b.is_nan())
                                            // Exact 0 variance vs rounding noise.
                                            || (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                                        "{case}: {a} vs {b}"
                                    );
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} cases compared");
    }

    trait RunPlain {
        fn run_plain(&self, expr: &Expr<ArrayOp>) -> Result<Value>;
    }

    impl RunPlain for ReduceOp {
        /// Node by node, with errors kept (the constant path must fail the same way).
        fn run_plain(&self, expr: &Expr<ArrayOp>) -> Result<Value> {
            fn go(e: &Expr<ArrayOp>) -> Result<Value> {
                match e {
                    Expr::Input(_) => unreachable!("no inputs in these tests"),
                    Expr::Call { op, args } => {
                        let vals = args.iter().map(go).collect::<Result<Vec<_>>>()?;
                        let refs: Vec<&Value> = vals.iter().collect();
                        op.run(&refs)
                    }
                }
            }
            go(expr)
        }
    }

    /// A source that hands out its block in slabs of `rows` rows.
    #[derive(Debug)]
    struct Slabbed {
        block: Chunk,
        rows: usize,
    }

    impl crate::ChunkSource for Slabbed {
        fn kind(&self) -> &str {
            "test-slabs"
        }
        fn spec(&self) -> String {
            String::new()
        }
        fn read_block(&self, _block: &[usize]) -> Result<Chunk> {
            Ok(self.block.clone())
        }
        fn read_block_slabs(
            &self,
            _block: &[usize],
            visit: &mut dyn FnMut(Chunk) -> Result<()>,
        ) -> Result<()> {
            let n = self.block.shape()[0];
            let mut start = 0;
            while start < n {
                let end = (start + self.rows).min(n);
                let mut specs: Vec<SliceSpec> = self
                    .block
                    .shape()
                    .iter()
                    .map(|&k| SliceSpec::full(k))
                    .collect();
                specs[0] = SliceSpec::range(start, end);
                visit(kernels::slice(&self.block, &specs)?)?;
                start = end;
            }
            Ok(())
        }
    }

    #[test]
    fn reads_streamed_in_slabs_equal_whole_block_reads() {
        let shape = [23usize, 6, 5];
        let Expr::Call {
            op: ArrayOp::Literal(block),
            ..
        } = literal(&shape, DType::F32)
        else {
            unreachable!()
        };
        let full = |n: usize| SliceSpec::full(n);
        let slice =
            |rows: SliceSpec, lat: SliceSpec, lon: SliceSpec| ArrayOp::Slice(vec![rows, lat, lon]);
        let reduce = |op: ReduceOp, axes: Vec<usize>| ArrayOp::ReduceBlock {
            spec: ReduceSpec::new(op, axes),
            ctx: None,
        };
        // A group-by partial along the rows: 4 groups, rows 3, 10, 11 in none.
        let group_on = |axis: usize, stat: GroupStat, rows: Vec<usize>| ArrayOp::MapBlocks {
            kernel: "gridflow.group_partial".into(),
            params: serde_json::json!({
                "axis": axis,
                "ngroups": 4,
                "stat": stat,
                "skipna": true,
                "codes": rows
                    .iter()
                    .map(|r| if [3, 10, 11].contains(r) { -1 } else { (r / 2 % 4) as i64 })
                    .collect::<Vec<_>>(),
            }),
            dtype: DType::F64,
        };
        let group = |stat: GroupStat, rows: Vec<usize>| group_on(0, stat, rows);
        let full5 = |dims: [usize; 5]| dims.map(SliceSpec::full).to_vec();
        // Each case: the ops above the read, bottom first.
        let cases: Vec<(&str, Vec<ArrayOp>)> = vec![
            (
                "point",
                vec![
                    slice(full(23), SliceSpec::range(2, 3), full(5)),
                    ArrayOp::DropAxes(vec![1]),
                    ArrayOp::Slice(vec![full(23), SliceSpec::range(4, 5)]),
                    ArrayOp::DropAxes(vec![1]),
                ],
            ),
            (
                "time range then point",
                vec![
                    slice(SliceSpec::range(5, 19), full(6), full(5)),
                    slice(SliceSpec::range(3, 11), SliceSpec::range(1, 4), full(5)),
                    ArrayOp::Unary(UnaryOp::Sqrt),
                ],
            ),
            (
                "no row kept",
                vec![slice(SliceSpec::range(7, 7), full(6), full(5))],
            ),
            ("mean over time", vec![reduce(ReduceOp::Mean, vec![0])]),
            (
                "sum over time of a chain",
                vec![
                    scalar(BinaryOp::Mul, 2.0),
                    ArrayOp::Unary(UnaryOp::Abs),
                    reduce(ReduceOp::Sum, vec![0]),
                ],
            ),
            (
                "var over time and lat",
                vec![reduce(ReduceOp::Var, vec![0, 1])],
            ),
            (
                "mean over lon keeps time",
                vec![reduce(ReduceOp::Mean, vec![2])],
            ),
            ("max over lat, lon", vec![reduce(ReduceOp::Max, vec![1, 2])]),
            ("count over lon", vec![reduce(ReduceOp::Count, vec![2])]),
            (
                "any over lat",
                vec![
                    ArrayOp::Unary(UnaryOp::IsNan),
                    reduce(ReduceOp::Any, vec![1]),
                ],
            ),
            (
                "std of a window",
                vec![
                    slice(SliceSpec::range(4, 21), full(6), SliceSpec::range(1, 3)),
                    reduce(ReduceOp::Std, vec![0]),
                ],
            ),
            (
                "monthly means",
                vec![group(GroupStat::Mean, (0..23).collect())],
            ),
            // intake-esm datasets put length-1 dims (member_id, ...) before the rows.
            (
                "catalog point",
                vec![
                    ArrayOp::ExpandAxes(vec![0]),
                    ArrayOp::ExpandAxes(vec![0]),
                    ArrayOp::DropAxes(vec![0, 1]),
                    slice(full(23), SliceSpec::range(2, 3), full(5)),
                    ArrayOp::DropAxes(vec![1]),
                ],
            ),
            (
                "expanded mean over time",
                vec![
                    ArrayOp::ExpandAxes(vec![0]),
                    reduce(ReduceOp::Mean, vec![1]),
                ],
            ),
            (
                "expanded mean over lon keeps time",
                vec![
                    ArrayOp::ExpandAxes(vec![0, 2]),
                    reduce(ReduceOp::Mean, vec![4]),
                ],
            ),
            (
                "expanded window",
                vec![
                    ArrayOp::ExpandAxes(vec![0, 2]),
                    ArrayOp::Slice({
                        let mut s = full5([1, 23, 1, 6, 5]);
                        s[1] = SliceSpec::range(5, 19);
                        s[4] = SliceSpec::range(1, 3);
                        s
                    }),
                    ArrayOp::Unary(UnaryOp::Sqrt),
                ],
            ),
            (
                "expanded monthly stds",
                vec![
                    ArrayOp::ExpandAxes(vec![0, 1]),
                    group_on(2, GroupStat::Std(0), (0..23).collect()),
                ],
            ),
            (
                "std by group of a window, some rows in no group",
                vec![
                    slice(SliceSpec::range(5, 19), full(6), full(5)),
                    group(GroupStat::Std(1), (5..19).collect()),
                ],
            ),
            (
                "max by group",
                vec![group(GroupStat::Max, (0..23).collect())],
            ),
            (
                "group partial of no rows",
                vec![
                    slice(SliceSpec::range(9, 9), full(6), full(5)),
                    group(GroupStat::Sum, vec![]),
                ],
            ),
            (
                "sum of no rows",
                vec![
                    slice(SliceSpec::range(30, 30), full(6), full(5)),
                    reduce(ReduceOp::Sum, vec![0]),
                ],
            ),
        ];
        for rows in [1, 4, 7, 23, 50] {
            let source = SourceRef(Arc::new(Slabbed {
                block: (*block).clone(),
                rows,
            }));
            for (name, ops) in &cases {
                let mut expr = Expr::Call {
                    op: ArrayOp::Read {
                        source: source.clone(),
                        block: vec![0, 0, 0],
                    },
                    args: vec![],
                };
                for op in ops {
                    expr = call(op.clone(), expr);
                }
                let case = format!("{name}, slabs of {rows}");
                let got = stream_read(&expr).unwrap_or_else(|| panic!("{case}: not streamed"));
                let got = got.unwrap_or_else(|e| panic!("{case}: {e}"));
                let want = plain(&expr);
                let (g, w) = match (&got, &want) {
                    (Value::Chunk(g), Value::Chunk(w)) => (g.clone(), w.clone()),
                    (Value::Partial(g), Value::Partial(w)) => {
                        let ArrayOp::ReduceBlock { spec, .. } = ops.last().unwrap() else {
                            unreachable!()
                        };
                        (
                            finalize(spec, g, DType::F32).unwrap(),
                            finalize(spec, w, DType::F32).unwrap(),
                        )
                    }
                    _ => panic!("{case}: {got:?} vs {want:?}"),
                };
                assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()), "{case}");
                for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
                    assert!(
                        a.to_bits() == b.to_bits()
                            || (a.is_nan() && b.is_nan())
                            || (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        "{case}: {a} vs {b}"
                    );
                }
            }
        }
        // Plain elementwise chains on a read are not streamed (their result is block-sized).
        let source = SourceRef(Arc::new(Slabbed {
            block: (*block).clone(),
            rows: 4,
        }));
        let read = Expr::Call {
            op: ArrayOp::Read {
                source,
                block: vec![0, 0, 0],
            },
            args: vec![],
        };
        assert!(stream_read(&chain(read.clone(), None)).is_none());
        // Nor is anything that moves the rows (a transpose).
        let moved = call(
            ArrayOp::ReduceBlock {
                spec: ReduceSpec::new(ReduceOp::Sum, vec![0]),
                ctx: None,
            },
            call(ArrayOp::Transpose(vec![1, 0, 2]), read),
        );
        assert!(stream_read(&moved).is_none());
    }
}
