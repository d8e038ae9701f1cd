//! Streamed reads: a task lowered to [`ArrayOp::Stream`] reads its block slab by slab and
//! runs its row-local operations on each slab.

use crate::exec::apply_owned;
use crate::kernels::group::{GroupPartialStream, group_partial_stream};
use crate::kernels::{self, Partial, SliceSpec};
use crate::ops::{StreamPlan, StreamTail};
use crate::{ArrayError, ArrayOp, Chunk, Result, Value};

impl StreamPlan {
    /// A short label: the read, its row range, and the streamed operations.
    pub(crate) fn label(&self) -> String {
        let mut parts = vec![match &self.rows {
            Some(r) => format!("read-{}[{}:{}]", self.source.0.kind(), r.start, r.end),
            None => format!("read-{}", self.source.0.kind()),
        }];
        parts.extend(self.steps.iter().map(gridflow_graph::Operation::label));
        match &self.tail {
            StreamTail::Rows => {}
            StreamTail::Reduce(spec) => parts.push(format!("{}-chunk", spec.op.name())),
            StreamTail::Group(p) => parts.push(p.label()),
        }
        format!("stream({})", parts.join("+"))
    }

    /// Reads the block slab by slab and runs the task.
    pub(crate) fn run(&self) -> Result<Value> {
        let rowwise: Vec<&ArrayOp> = self.steps.iter().collect();
        let internal = |detail: &str| ArrayError::Kernel {
            op: self.label(),
            detail: format!("internal: {detail}"),
        };
        let reduce = match &self.tail {
            StreamTail::Reduce(spec) => Some(spec),
            _ => None,
        };
        let row = row_axis_of(&rowwise).ok_or_else(|| internal("not row-local"))?;
        let mut group: Option<GroupPartialStream> = match &self.tail {
            StreamTail::Group(p) => Some(
                group_partial_stream(p, row)
                    .ok_or_else(|| internal("not a group partial along the rows"))?,
            ),
            _ => None,
        };
        // The read block's axis 0 (the rows the slabs split) as each op sees it.
        let mut axis_at = Vec::with_capacity(rowwise.len());
        for i in 0..rowwise.len() {
            axis_at.push(row_axis_of(&rowwise[..i]).ok_or_else(|| internal("not row-local"))?);
        }
        let mut acc: Option<Value> = None;
        let mut parts: Vec<Value> = Vec::new();
        // When no row is kept: where the rows ran out (op index) and the empty block there.
        let mut empty_at: Option<(usize, Chunk)> = None;
        let mut offset = self.rows.as_ref().map_or(0, |r| r.start);
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
                                empty_at =
                                    Some((i, kernels::slice(value.chunk("getitem")?, &none)?));
                            }
                            return Ok(());
                        };
                        (rows, pos) = (kept, next);
                        ArrayOp::Slice(local)
                    }
                    other if other.is_pointwise() => {
                        let Value::Chunk(c) = value else {
                            return Err(internal("a partial in a slab"));
                        };
                        value = Value::Chunk(apply_owned(other, c)?);
                        continue;
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
        match &self.rows {
            Some(r) => self
                .source
                .0
                .read_rows_slabs(&self.block, r.clone(), &mut visit)?,
            None => self.source.0.read_block_slabs(&self.block, &mut visit)?,
        }
        if let Some(v) = acc {
            return Ok(v);
        }
        if let Some(g) = group.filter(|g| !g.is_empty()) {
            return g.finish().map(Value::Chunk);
        }
        if parts.is_empty() {
            // No row was kept: run the rest on the empty block, for the result's shape.
            let (at, empty) = empty_at.ok_or_else(|| internal("no slab was read"))?;
            let mut value = Value::Chunk(empty);
            for op in &rowwise[at + 1..] {
                value = op.run(&[&value])?;
            }
            return match &self.tail {
                StreamTail::Rows => Ok(value),
                StreamTail::Reduce(spec) => Ok(Value::Partial(Box::new(kernels::reduce_block(
                    spec,
                    value.chunk("reduce")?,
                    None,
                )?))),
                StreamTail::Group(p) => Ok(Value::Chunk(p.run(value.chunk("group partial")?)?)),
            };
        }
        glue_rows(parts, row)
    }
}

/// Where axis 0 of a read block is after `ops` (which insert and drop other axes around
/// it), or `None` if some op cannot run slab by slab along it: anything but elementwise
/// ops, unit-step slices of it, lists of positions along other axes, and inserting or
/// dropping other axes.
pub(crate) fn row_axis_of(ops: &[&ArrayOp]) -> Option<usize> {
    let mut row = 0usize;
    for op in ops {
        match op {
            op if op.is_pointwise() => {}
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
            // a list of positions along another axis applies to every slab alike
            ArrayOp::Take { axis, .. } if *axis != row => {}
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
