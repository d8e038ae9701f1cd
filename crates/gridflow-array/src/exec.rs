//! Running array operations: one op on its inputs, fused elementwise chains over tiles,
//! and the [`Execute`] implementation executors call.

use crate::kernels::fused::{self, ChainOp};
use crate::kernels::{self, Partial, ReduceSpec};
use crate::ops::{ArrayOp, Value};
use crate::registry;
use crate::{ArrayError, Chunk, DType, Element, Result, Scalar};
use gridflow_graph::{Expr, Operation};
use gridflow_runtime::Execute;
use std::sync::Arc;

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
            ArrayOp::MaskEq(fill) => {
                arity(&label, inputs, 1)?;
                kernels::mask_eq(chunk(0)?, *fill)?
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
            ArrayOp::Stream(plan) => return plan.run(),
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
        if !op.is_pointwise() || args.len() != 1 {
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
            ArrayOp::MaskEq(fill) => Some(ChainOp::Mask(*fill)),
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

pub(crate) fn apply_owned(op: &ArrayOp, c: Chunk) -> Result<Chunk> {
    match op {
        ArrayOp::Unary(u) => kernels::unary_owned(*u, c),
        ArrayOp::BinaryScalar {
            op,
            scalar,
            scalar_on_left,
        } => kernels::binary_scalar_owned(*op, c, *scalar, *scalar_on_left),
        ArrayOp::AsType(d) => Ok(c.into_dtype(*d)),
        ArrayOp::MaskEq(fill) => kernels::mask_eq_owned(c, *fill),
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
            ArrayOp::Unary(_) | ArrayOp::BinaryScalar { .. } | ArrayOp::MaskEq(_)
                if inputs.len() == 1 =>
            {
                inputs.pop()
            }
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
            ArrayOp::MaskEq(fill) => kernels::mask_eq_owned(first, *fill)?,
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
    use crate::kernels::{BinaryOp, SliceSpec, UnaryOp};
    use crate::kernels::{ReduceOp, finalize};
    use crate::registry::SourceRef;

    /// The task lowered and run, if lowering streams it.
    fn stream_read(expr: &Expr<ArrayOp>) -> Option<Result<Value>> {
        match crate::lower::lower(expr)? {
            Expr::Call {
                op: ArrayOp::Stream(plan),
                ..
            } => Some(plan.run()),
            _ => None,
        }
    }

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
    fn try_plain(expr: &Expr<ArrayOp>) -> Result<Value> {
        match expr {
            Expr::Input(_) => unreachable!("no inputs in these tests"),
            Expr::Call { op, args } => {
                let vals: Vec<Value> = args.iter().map(try_plain).collect::<Result<_>>()?;
                let refs: Vec<&Value> = vals.iter().collect();
                op.run(&refs)
            }
        }
    }

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

    /// A small deterministic generator for the randomized plan test.
    struct Rng(SplitMix64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.0.next() % n as u64) as usize
            }
        }
        fn coin(&mut self, p: f64) -> bool {
            self.0.next_f64() < p
        }
    }

    /// A random selection, elementwise or CF decoding step valid for `x`.
    fn random_step(rng: &mut Rng, x: &Chunk) -> ArrayOp {
        let shape = x.shape().to_vec();
        loop {
            match rng.below(9) {
                0 => {
                    return ArrayOp::MaskEq(Scalar::Float(if x.dtype().is_float() {
                        1e20
                    } else {
                        -999.0
                    }));
                }
                1 => {
                    let op = [BinaryOp::Mul, BinaryOp::Add, BinaryOp::Sub][rng.below(3)];
                    let scalar = if rng.coin(0.5) {
                        Scalar::Float(0.25 + rng.below(9) as f64)
                    } else {
                        Scalar::Int(rng.below(7) as i64 - 3)
                    };
                    return ArrayOp::BinaryScalar {
                        op,
                        scalar,
                        scalar_on_left: rng.coin(0.3),
                    };
                }
                2 => {
                    return ArrayOp::Unary(
                        [UnaryOp::Abs, UnaryOp::Neg, UnaryOp::Sqrt][rng.below(3)],
                    );
                }
                3 => return ArrayOp::AsType([DType::F64, DType::F32, DType::I32][rng.below(3)]),
                4 | 5 => {
                    // time ranges, points, strides, whole axes
                    let specs = shape
                        .iter()
                        .map(|&n| match rng.below(4) {
                            0 => SliceSpec::full(n),
                            1 => {
                                let a = rng.below(n + 1);
                                SliceSpec::range(a, a + rng.below(n - a + 1))
                            }
                            2 if n > 0 => {
                                let i = rng.below(n);
                                SliceSpec::range(i, i + 1)
                            }
                            _ => {
                                let a = rng.below(n + 1);
                                let step = 1 + rng.below(3);
                                let most = (n - a).div_ceil(step);
                                SliceSpec::stepped(a, rng.below(most + 1), step as isize)
                            }
                        })
                        .collect();
                    return ArrayOp::Slice(specs);
                }
                6 if !shape.is_empty() => {
                    let axis = rng.below(shape.len());
                    if shape[axis] == 0 {
                        continue;
                    }
                    let indices = (0..rng.below(5)).map(|_| rng.below(shape[axis])).collect();
                    return ArrayOp::Take { axis, indices };
                }
                7 => {
                    let ones: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] == 1).collect();
                    if ones.is_empty() {
                        continue;
                    }
                    return ArrayOp::DropAxes(vec![ones[rng.below(ones.len())]]);
                }
                8 if shape.len() < 5 => {
                    return ArrayOp::ExpandAxes(vec![rng.below(shape.len() + 1)]);
                }
                _ => {}
            }
        }
    }

    /// Random chains of CF decoding steps, elementwise ops and selections over random
    /// blocks and slab sizes: the lowered plan (selections moved first, streamed over slabs
    /// of the read, only the rows a range keeps read) equals node-by-node evaluation of the
    /// whole block, bit for bit for integers and within 1e-12 for floats.
    #[test]
    fn lowered_plans_equal_whole_block_evaluation() {
        let mut rng = Rng(SplitMix64(0x5eed));
        let (mut streamed, mut reordered, mut row_ranges) = (0, 0, 0);
        let cases = 1500;
        for case in 0..cases {
            let ndim = 1 + rng.below(3);
            let shape: Vec<usize> = (0..ndim)
                .map(|a| {
                    if a == 0 {
                        1 + rng.below(30)
                    } else {
                        1 + rng.below(5)
                    }
                })
                .collect();
            let dt = [DType::F32, DType::F64, DType::I16, DType::I32][rng.below(4)];
            let n: usize = shape.iter().product();
            let fill = if dt.is_float() { 1e20 } else { -999.0 };
            let v: Vec<f64> = (0..n)
                .map(|i| match rng.below(12) {
                    0 => fill,
                    1 if dt.is_float() => f64::NAN,
                    _ => (i as f64 * 0.37).sin() * 50.0 + rng.below(7) as f64,
                })
                .collect();
            let block = Chunk::from_f64_vec(&shape, v, dt).unwrap();
            let source = SourceRef(Arc::new(Slabbed {
                block: block.clone(),
                rows: 1 + rng.below(shape[0] + 3),
            }));
            let mut expr = Expr::Call {
                op: ArrayOp::Read {
                    source,
                    block: vec![0; ndim],
                },
                args: vec![],
            };
            let mut value = block;
            for _ in 0..rng.below(7) {
                let op = random_step(&mut rng, &value);
                let Ok(next) = op.run(&[&Value::Chunk(value.clone())]) else {
                    continue;
                };
                let Value::Chunk(next) = next else {
                    unreachable!()
                };
                value = next;
                expr = call(op, expr);
            }
            // a reduction (sum, mean, max, count over some axes) on top, or none
            let mut spec = None;
            if value.ndim() > 0 && rng.coin(0.6) {
                let op = [
                    ReduceOp::Sum,
                    ReduceOp::Mean,
                    ReduceOp::Max,
                    ReduceOp::Count,
                ][rng.below(4)];
                let mut axes: Vec<usize> = (0..value.ndim()).filter(|_| rng.coin(0.6)).collect();
                if axes.is_empty() {
                    axes.push(0);
                }
                let sp = ReduceSpec::new(op, axes);
                expr = call(
                    ArrayOp::ReduceBlock {
                        spec: sp.clone(),
                        ctx: None,
                    },
                    expr,
                );
                spec = Some(sp);
            }
            let want = try_plain(&expr);
            let lowered = crate::lower::lower(&expr);
            let case = format!("case {case}: {} on {dt} {shape:?}", expr.label());
            let got = match &lowered {
                Some(l) => {
                    if let Expr::Call {
                        op: ArrayOp::Stream(plan),
                        ..
                    } = l
                    {
                        streamed += 1;
                        row_ranges += usize::from(plan.rows.is_some());
                    } else {
                        reordered += 1;
                    }
                    try_plain(l)
                }
                None => continue,
            };
            // (an empty max has no value: both must refuse it)
            let (got, want) = match (got, want) {
                (Ok(g), Ok(w)) => (g, w),
                (Err(_), Err(_)) => continue,
                (g, w) => panic!("{case}: {g:?} vs {w:?}"),
            };
            let (g, w) = match (&got, &want) {
                (Value::Chunk(g), Value::Chunk(w)) => (g.clone(), w.clone()),
                (Value::Partial(g), Value::Partial(w)) => {
                    let sp = spec.as_ref().unwrap();
                    (
                        finalize(sp, g, value.dtype()).unwrap(),
                        finalize(sp, w, value.dtype()).unwrap(),
                    )
                }
                _ => panic!("{case}: {got:?} vs {want:?}"),
            };
            assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()), "{case}");
            let exact = !g.dtype().is_float();
            for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
                let ok = if exact {
                    a.to_bits() == b.to_bits()
                } else {
                    (a.is_nan() && b.is_nan())
                        || a == &b
                        || (a - b).abs() <= 1e-12 * b.abs().max(1.0)
                };
                assert!(ok, "{case}: {a} vs {b}");
            }
        }
        // the generator reaches every kind of lowering
        assert!(streamed > cases / 5, "only {streamed} of {cases} streamed");
        assert!(
            row_ranges > cases / 20,
            "only {row_ranges} read a row range"
        );
        assert!(
            reordered > cases / 50,
            "only {reordered} reordered without streaming"
        );
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
