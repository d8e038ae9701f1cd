//! Lowering: the last compile pass over an array task's (fused) expression.
//!
//! Two rewrites, both visible in `--graph` and both exact:
//!
//! * **Selections first.** In a chain of single-input operations, selections (slices,
//!   integer lists, squeezes, new axes, transposes) are moved below the elementwise steps
//!   (CF masking, scale and offset, `astype`, arithmetic with scalars, ufuncs): those commute
//!   with any selection, so a selection never decodes, masks or scales what it drops.
//! * **Streaming.** A chain over a read whose operations are row-local (axis 0 of the block
//!   stays one axis of every intermediate) and that shrinks the block (a selection, a
//!   reduction, a group-by partial) becomes one [`ArrayOp::Stream`] task: the block is read
//!   slab by slab, only the rows a range selection keeps, and every slab runs through the
//!   chain. The plan records the task's estimated peak bytes for admission.

use crate::ArrayOp;
use crate::kernels::ReduceSpec;
use crate::kernels::group::GroupOp;
use crate::ops::{StreamPlan, StreamTail};
use crate::registry::SourceRef;
use crate::stream::row_axis_of;
use gridflow_graph::{Expr, Operation};
use std::ops::Range;

/// Bytes an estimated element of an intermediate takes (results are at most float64).
const ELEM: u64 = 8;

/// The lowered form of `expr`, or `None` when it runs best as it is.
pub(crate) fn lower(expr: &Expr<ArrayOp>) -> Option<Expr<ArrayOp>> {
    // The single-input operations from the top down, and the node below them.
    let mut ops: Vec<&ArrayOp> = Vec::new();
    let mut node = expr;
    while let Expr::Call { op, args } = node {
        if args.len() != 1 || op.is_source() {
            break;
        }
        ops.push(op);
        node = &args[0];
    }
    ops.reverse();
    let (top, body) = match ops.split_last() {
        Some((last, below)) if !is_selection(last) && !last.is_pointwise() => (Some(*last), below),
        _ => (None, &ops[..]),
    };
    if body
        .iter()
        .any(|op| !is_selection(op) && !op.is_pointwise())
    {
        return None;
    }
    // Selections first, each group in its own order: pointwise steps commute with them.
    let reordered: Vec<&ArrayOp> = body
        .iter()
        .copied()
        .filter(|op| is_selection(op))
        .chain(body.iter().copied().filter(|op| op.is_pointwise()))
        .collect();
    if let Expr::Call {
        op: ArrayOp::Read { source, block },
        args,
    } = node
        && args.is_empty()
        && let Some(plan) = stream_plan(source, block, &reordered, top)
    {
        return Some(Expr::Call {
            op: ArrayOp::Stream(Box::new(plan)),
            args: vec![],
        });
    }
    let moved = reordered
        .iter()
        .zip(body)
        .any(|(a, b)| !std::ptr::eq(*a, *b));
    if !moved {
        return None;
    }
    let mut out = node.clone();
    for op in reordered.into_iter().chain(top) {
        out = Expr::Call {
            op: op.clone(),
            args: vec![out],
        };
    }
    Some(out)
}

/// Operations that select or rearrange elements without computing new values.
fn is_selection(op: &ArrayOp) -> bool {
    matches!(
        op,
        ArrayOp::Slice(_)
            | ArrayOp::Take { .. }
            | ArrayOp::DropAxes(_)
            | ArrayOp::ExpandAxes(_)
            | ArrayOp::Transpose(_)
    )
}

/// The streamed form of `top(steps(read))`, if it streams: every step row-local, and the
/// task shrinks the block (else its result is as big as the block and streaming saves
/// nothing).
fn stream_plan(
    source: &SourceRef,
    block: &[usize],
    steps: &[&ArrayOp],
    top: Option<&ArrayOp>,
) -> Option<StreamPlan> {
    let row = row_axis_of(steps)?;
    let tail = match top {
        None => StreamTail::Rows,
        Some(ArrayOp::ReduceBlock { spec, ctx: None }) if !spec.op.is_arg() => {
            StreamTail::Reduce(spec.clone())
        }
        Some(ArrayOp::Group(GroupOp::Partial(p))) => {
            // Only a group partial along the rows accumulates slab by slab.
            crate::kernels::group::group_partial_stream(p, row)?;
            StreamTail::Group(p.clone())
        }
        Some(_) => return None,
    };
    let shrinks = !matches!(tail, StreamTail::Rows)
        || steps.iter().any(|op| {
            matches!(
                op,
                ArrayOp::Slice(_) | ArrayOp::Take { .. } | ArrayOp::DropAxes(_)
            )
        });
    if !shrinks {
        return None;
    }
    let rows = row_range(steps);
    let mut plan = StreamPlan {
        source: source.clone(),
        block: block.to_vec(),
        rows,
        steps: steps.iter().map(|op| (*op).clone()).collect(),
        tail,
        peak_bytes: None,
    };
    plan.peak_bytes = estimate_peak(&plan);
    Some(plan)
}

/// The rows of the block the first slice along the row axis keeps (the source then reads
/// only those): `None` when no slice restricts the rows.
fn row_range(steps: &[&ArrayOp]) -> Option<Range<usize>> {
    for (i, op) in steps.iter().enumerate() {
        if let ArrayOp::Slice(specs) = op {
            let axis = row_axis_of(&steps[..i])?;
            let s = specs.get(axis)?;
            let stop = usize::try_from(s.stop).ok()?;
            // An empty range still reads one slab: the result's shape comes from it.
            return (s.step == 1 && stop > s.start).then_some(s.start..stop);
        }
    }
    None
}

/// Slab buffers plus the result: the shapes follow the selections from the block's shape;
/// a reduction keeps one value per slot of its reduced shape. `None` when the source does
/// not know its block's shape.
fn estimate_peak(plan: &StreamPlan) -> Option<u64> {
    let mut shape = plan.source.0.block_shape(&plan.block)?;
    let block_elems: u64 = shape.iter().map(|&n| n as u64).product();
    let row_bytes = shape.iter().skip(1).map(|&n| n as u64).product::<u64>() * ELEM;
    // Decoded bytes of one slab (whole rows), held twice while a step converts it.
    let slab = plan
        .source
        .0
        .slab_bytes()
        .map_or(block_elems * ELEM, |b| (b as u64).max(row_bytes))
        .min(block_elems * ELEM);
    for op in &plan.steps {
        shape = match op {
            ArrayOp::Slice(specs) => shape
                .iter()
                .zip(specs)
                .map(|(&n, s)| s.len().min(n))
                .collect(),
            ArrayOp::Take { axis, indices } => {
                let mut s = shape.clone();
                *s.get_mut(*axis)? = indices.len();
                s
            }
            ArrayOp::DropAxes(axes) => shape
                .iter()
                .enumerate()
                .filter(|(a, _)| !axes.contains(a))
                .map(|(_, &n)| n)
                .collect(),
            ArrayOp::ExpandAxes(axes) => {
                let mut s = shape.clone();
                let mut sorted = axes.clone();
                sorted.sort_unstable();
                for a in sorted {
                    s.insert(a.min(s.len()), 1);
                }
                s
            }
            _ => shape,
        };
    }
    let mut out: u64 = shape.iter().map(|&n| n as u64).product::<u64>() * ELEM;
    if let StreamTail::Reduce(ReduceSpec { axes, .. }) = &plan.tail {
        let reduced: u64 = axes
            .iter()
            .filter_map(|&a| shape.get(a))
            .map(|&n| n.max(1) as u64)
            .product();
        // partials keep a count beside the sum
        out = out / reduced.max(1) * 2;
    }
    Some(2 * slab + out)
}
