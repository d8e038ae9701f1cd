//! Indexing and reshaping: basic slicing, integer-list indexing, rechunk, concatenate,
//! stack, transpose, squeeze, expand_dims and `map_blocks`.

use crate::array::{ChunkedArray, Chunking, block_indices, check_axis, normalize_chunks, offsets};
use crate::elementwise::{blockwise, refine};
use crate::kernels::SliceSpec;
use crate::ops::ArrayOp;
use crate::{ArrayError, DType, Result};
use gridflow_graph::{Task, Tokenizer};

/// One axis of a basic-indexing expression, as in `x[3, 10:20, ::-1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexer {
    /// `:` — the whole axis.
    Full,
    /// An integer: selects one position and drops the axis (negative counts from the end).
    Index(isize),
    /// `start:stop:step`, with Python's defaults and negative-index rules.
    Slice {
        /// First position (default: start or end, depending on the step's sign).
        start: Option<isize>,
        /// End, exclusive.
        stop: Option<isize>,
        /// Step (not 0; default 1).
        step: Option<isize>,
    },
}

impl Indexer {
    /// `start:stop` with step 1.
    pub fn range(start: isize, stop: isize) -> Indexer {
        Indexer::Slice {
            start: Some(start),
            stop: Some(stop),
            step: None,
        }
    }
}

/// The positions a Python slice selects on an axis of length `n`.
fn slice_positions(
    op: &str,
    axis: usize,
    n: usize,
    start: Option<isize>,
    stop: Option<isize>,
    step: Option<isize>,
) -> Result<Vec<usize>> {
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(ArrayError::Index {
            op: op.to_owned(),
            detail: format!("slice step cannot be zero (axis {axis})"),
        });
    }
    let n = n as isize;
    let norm = |v: isize| if v < 0 { v + n } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let s = start.map_or(0, norm).clamp(0, n);
        let e = stop.map_or(n, norm).clamp(0, n);
        let mut i = s;
        while i < e {
            out.push(i as usize);
            i += step;
        }
    } else {
        let s = start.map_or(n - 1, norm).clamp(-1, n - 1);
        let e = stop.map_or(-1, norm).clamp(-1, n - 1);
        let mut i = s;
        while i > e {
            out.push(i as usize);
            i += step;
        }
    }
    Ok(out)
}

/// A run of selected positions that lie in one input block.
struct Run {
    block: usize,
    /// Positions within the block.
    local: Vec<usize>,
}

/// Splits selected positions into runs, each inside one input block (a new run starts
/// whenever the block changes), so every output block reads exactly one input block.
fn runs(sel: &[usize], chunks: &[usize]) -> Vec<Run> {
    let offs = offsets(chunks);
    let block_of = |p: usize| match offs.binary_search(&p) {
        Ok(mut b) => {
            // Skip empty blocks that share the offset.
            while b + 1 < chunks.len() && chunks[b] == 0 {
                b += 1;
            }
            b
        }
        Err(b) => b - 1,
    };
    let mut out: Vec<Run> = Vec::new();
    for &p in sel {
        let b = block_of(p);
        match out.last_mut() {
            Some(r) if r.block == b => r.local.push(p - offs[b]),
            _ => out.push(Run {
                block: b,
                local: vec![p - offs[b]],
            }),
        }
    }
    if out.is_empty() {
        out.push(Run {
            block: 0,
            local: vec![],
        });
    }
    out
}

/// The slice spec for positions that form an arithmetic progression.
fn as_slice_spec(local: &[usize]) -> Option<SliceSpec> {
    match local {
        [] => Some(SliceSpec::range(0, 0)),
        [a] => Some(SliceSpec::range(*a, a + 1)),
        [a, b, ..] => {
            let step = *b as isize - *a as isize;
            if step == 0
                || local
                    .windows(2)
                    .any(|w| w[1] as isize - w[0] as isize != step)
            {
                return None;
            }
            Some(SliceSpec::stepped(*a, local.len(), step))
        }
    }
}

impl ChunkedArray {
    /// Basic indexing, like `x[idx...]` in NumPy: integers drop their axis, slices keep it.
    /// Missing trailing indexers mean `:`. Output blocks follow the input blocks.
    pub fn index(&self, idx: &[Indexer]) -> Result<ChunkedArray> {
        let op = "getitem";
        if idx.len() > self.ndim() {
            return Err(ArrayError::Index {
                op: op.into(),
                detail: format!(
                    "{} indices given for an array of shape {:?}",
                    idx.len(),
                    self.shape
                ),
            });
        }
        let mut per_axis: Vec<Vec<Run>> = Vec::with_capacity(self.ndim());
        let mut drop = Vec::new();
        for a in 0..self.ndim() {
            let n = self.shape[a];
            let sel = match idx.get(a).copied().unwrap_or(Indexer::Full) {
                Indexer::Full => (0..n).collect(),
                Indexer::Index(i) => {
                    let p = if i < 0 { i + n as isize } else { i };
                    if p < 0 || p >= n as isize {
                        return Err(ArrayError::Index {
                            op: op.into(),
                            detail: format!(
                                "index {i} is out of bounds for axis {a} with size {n}"
                            ),
                        });
                    }
                    drop.push(a);
                    vec![p as usize]
                }
                Indexer::Slice { start, stop, step } => {
                    slice_positions(op, a, n, start, stop, step)?
                }
            };
            per_axis.push(runs(&sel, &self.chunks[a]));
        }
        let sliced = self.select_runs(op, &per_axis, &format!("{idx:?}"))?;
        if drop.is_empty() {
            Ok(sliced)
        } else {
            sliced.drop_axes_unchecked(&drop)
        }
    }

    /// Integer-list indexing along one axis (NumPy's `take`; negative indices count from
    /// the end). Consecutive indices in the same input block form one output block.
    pub fn take(&self, indices: &[isize], axis: isize) -> Result<ChunkedArray> {
        let op = "take";
        let axis = check_axis(op, axis, self.ndim())?;
        let n = self.shape[axis];
        let sel: Vec<usize> = indices
            .iter()
            .map(|&i| {
                let p = if i < 0 { i + n as isize } else { i };
                if p < 0 || p >= n as isize {
                    Err(ArrayError::Index {
                        op: op.into(),
                        detail: format!("index {i} is out of bounds for axis {axis} with size {n}"),
                    })
                } else {
                    Ok(p as usize)
                }
            })
            .collect::<Result<_>>()?;
        let per_axis: Vec<Vec<Run>> = (0..self.ndim())
            .map(|a| {
                if a == axis {
                    runs(&sel, &self.chunks[a])
                } else {
                    runs(&(0..self.shape[a]).collect::<Vec<_>>(), &self.chunks[a])
                }
            })
            .collect();
        self.select_runs(op, &per_axis, &format!("{axis}{indices:?}"))
    }

    /// One task per combination of runs: a slice of one input block (or a take along the
    /// axis whose positions are not evenly spaced).
    fn select_runs(&self, op: &str, per_axis: &[Vec<Run>], token: &str) -> Result<ChunkedArray> {
        let shape: Vec<usize> = per_axis
            .iter()
            .map(|rs| rs.iter().map(|r| r.local.len()).sum())
            .collect();
        let chunks: Vec<Vec<usize>> = per_axis
            .iter()
            .map(|rs| rs.iter().map(|r| r.local.len()).collect())
            .collect();
        let name = Tokenizer::new(op).str(token).str(&self.name).finish();
        let src = self.clone();
        ChunkedArray::from_tasks(
            name,
            shape,
            chunks,
            self.dtype,
            vec![self.layer.clone()],
            |idx| {
                let mut specs = Vec::with_capacity(idx.len());
                let mut takes: Vec<(usize, Vec<usize>)> = Vec::new();
                let mut block = Vec::with_capacity(idx.len());
                for (a, &r) in idx.iter().enumerate() {
                    let run = &per_axis[a][r];
                    block.push(run.block);
                    match as_slice_spec(&run.local) {
                        Some(s) => specs.push(s),
                        None => {
                            specs.push(SliceSpec::range(0, src.chunks[a][run.block]));
                            takes.push((a, run.local.clone()));
                        }
                    }
                }
                let input = src.block_key(&block);
                let full = specs
                    .iter()
                    .enumerate()
                    .all(|(a, s)| s.is_full(src.chunks[a][block[a]]));
                let mut expr_task = if full && takes.is_empty() {
                    Task::alias(input)
                } else if full {
                    let (axis, indices) = takes.remove(0);
                    Task::new(ArrayOp::Take { axis, indices }, vec![input])
                } else {
                    Task::new(ArrayOp::Slice(specs), vec![input])
                };
                for (axis, indices) in takes {
                    expr_task = nest(ArrayOp::Take { axis, indices }, expr_task);
                }
                Ok(expr_task)
            },
        )
    }

    /// Changes the block sizes (Dask's `rechunk`); e.g. `[0, 50, 50]`-style sizes where `0`
    /// means one block along that axis. Each output block is assembled from the pieces of
    /// the input blocks it overlaps, in one task.
    pub fn rechunk(&self, chunks: impl Into<Chunking>) -> Result<ChunkedArray> {
        let new = normalize_chunks("rechunk", &self.shape, &chunks.into())?;
        if new == self.chunks {
            return Ok(self.clone());
        }
        let name = Tokenizer::new("rechunk")
            .str(&format!("{new:?}"))
            .str(&self.name)
            .finish();
        let old_offs: Vec<Vec<usize>> = self.chunks.iter().map(|c| offsets(c)).collect();
        let new_offs: Vec<Vec<usize>> = new.iter().map(|c| offsets(c)).collect();
        let src = self.clone();
        let new2 = new.clone();
        ChunkedArray::from_tasks(
            name,
            self.shape.clone(),
            new,
            self.dtype,
            vec![self.layer.clone()],
            |idx| {
                // Per axis: the input blocks overlapping this output block and the local ranges.
                let mut pieces: Vec<Vec<(usize, SliceSpec)>> = Vec::with_capacity(idx.len());
                for (a, &i) in idx.iter().enumerate() {
                    let (s, e) = (new_offs[a][i], new_offs[a][i] + new2[a][i]);
                    let mut v = Vec::new();
                    for (b, &o) in old_offs[a].iter().enumerate() {
                        let (bs, be) = (o, o + src.chunks[a][b]);
                        let (lo, hi) = (s.max(bs), e.min(be));
                        if lo < hi || (s == e && b == 0) {
                            v.push((b, SliceSpec::range(lo.saturating_sub(bs), hi.max(lo) - bs)));
                        }
                    }
                    pieces.push(v);
                }
                let grid: Vec<usize> = pieces.iter().map(Vec::len).collect();
                let mut inputs = Vec::new();
                let mut slices = Vec::new();
                for combo in block_indices(&grid) {
                    let block: Vec<usize> = combo
                        .iter()
                        .enumerate()
                        .map(|(a, &j)| pieces[a][j].0)
                        .collect();
                    slices.push(
                        combo
                            .iter()
                            .enumerate()
                            .map(|(a, &j)| pieces[a][j].1)
                            .collect::<Vec<_>>(),
                    );
                    inputs.push(src.block_key(&block));
                }
                if inputs.len() == 1 {
                    let block: Vec<usize> = pieces.iter().map(|p| p[0].0).collect();
                    let full = slices[0]
                        .iter()
                        .enumerate()
                        .all(|(a, s)| s.is_full(src.chunks[a][block[a]]));
                    if full {
                        return Ok(Task::alias(inputs.remove(0)));
                    }
                    return Ok(Task::new(ArrayOp::Slice(slices.remove(0)), inputs));
                }
                Ok(Task::new(ArrayOp::Gather { slices, grid }, inputs))
            },
        )
    }

    /// Joins arrays along an existing axis; blocks are reused, other axes are aligned.
    pub fn concatenate(arrays: &[&ChunkedArray], axis: isize) -> Result<ChunkedArray> {
        let op = "concatenate";
        let first = arrays.first().ok_or_else(|| ArrayError::Shape {
            op: op.into(),
            detail: "needs at least one array".into(),
        })?;
        let ndim = first.ndim();
        let axis = check_axis(op, axis, ndim)?;
        for a in arrays {
            let same = a.ndim() == ndim
                && (0..ndim).all(|d| d == axis || a.shape()[d] == first.shape()[d]);
            if !same {
                let shapes: Vec<String> =
                    arrays.iter().map(|a| format!("{:?}", a.shape())).collect();
                return Err(ArrayError::Shape {
                    op: op.into(),
                    detail: format!("shapes {} differ outside axis {axis}", shapes.join(", ")),
                });
            }
        }
        let dtype = arrays
            .iter()
            .skip(1)
            .fold(first.dtype(), |d, a| crate::promote(d, a.dtype()));
        // Align every axis but `axis` by broadcasting each array against a 1-length stand-in.
        let mut aligned: Vec<ChunkedArray> = Vec::with_capacity(arrays.len());
        let mut other_chunks: Vec<Vec<usize>> = first.chunks().to_vec();
        for a in arrays {
            for (d, c) in other_chunks.iter_mut().enumerate() {
                if d != axis && a.chunks()[d] != *c {
                    *c = refine(c, &a.chunks()[d]);
                }
            }
        }
        for a in arrays {
            let mut want = other_chunks.clone();
            want[axis] = a.chunks()[axis].clone();
            let r = if want == a.chunks() {
                (*a).clone()
            } else {
                a.rechunk(Chunking::Explicit(want))?
            };
            aligned.push(r.astype(dtype)?);
        }
        let mut shape = first.shape().to_vec();
        shape[axis] = aligned.iter().map(|a| a.shape()[axis]).sum();
        let mut chunks = other_chunks;
        chunks[axis] = aligned
            .iter()
            .flat_map(|a| a.chunks()[axis].clone())
            .collect();
        let mut owner = Vec::new();
        for (n, a) in aligned.iter().enumerate() {
            for j in 0..a.numblocks()[axis] {
                owner.push((n, j));
            }
        }
        let mut tok = Tokenizer::new(op).u64(axis as u64);
        for a in &aligned {
            tok = tok.str(a.name());
        }
        let deps = aligned.iter().map(|a| a.layer.clone()).collect();
        ChunkedArray::from_tasks(tok.finish(), shape, chunks, dtype, deps, |idx| {
            let (n, j) = owner[idx[axis]];
            let mut b = idx.to_vec();
            b[axis] = j;
            Ok(Task::alias(aligned[n].block_key(&b)))
        })
    }

    /// Joins arrays of the same shape along a new axis.
    pub fn stack(arrays: &[&ChunkedArray], axis: isize) -> Result<ChunkedArray> {
        let first = arrays.first().ok_or_else(|| ArrayError::Shape {
            op: "stack".into(),
            detail: "needs at least one array".into(),
        })?;
        let axis = check_axis("stack", axis, first.ndim() + 1)?;
        let expanded: Vec<ChunkedArray> = arrays
            .iter()
            .map(|a| a.expand_dims(axis as isize))
            .collect::<Result<_>>()?;
        let refs: Vec<&ChunkedArray> = expanded.iter().collect();
        ChunkedArray::concatenate(&refs, axis as isize)
    }

    /// Permutes the axes (`None` reverses them).
    pub fn transpose(&self, axes: Option<&[isize]>) -> Result<ChunkedArray> {
        let op = "transpose";
        let perm: Vec<usize> = match axes {
            None => (0..self.ndim()).rev().collect(),
            Some(p) => {
                if p.len() != self.ndim() {
                    return Err(ArrayError::Shape {
                        op: op.into(),
                        detail: format!("axes {p:?} do not match shape {:?}", self.shape),
                    });
                }
                let v: Vec<usize> = p
                    .iter()
                    .map(|&a| check_axis(op, a, self.ndim()))
                    .collect::<Result<_>>()?;
                let mut sorted = v.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != v.len() {
                    return Err(ArrayError::Shape {
                        op: op.into(),
                        detail: format!("repeated axis in {p:?}"),
                    });
                }
                v
            }
        };
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let shape = perm.iter().map(|&p| self.shape[p]).collect();
        let chunks = perm.iter().map(|&p| self.chunks[p].clone()).collect();
        let name = Tokenizer::new(op)
            .str(&format!("{perm:?}"))
            .str(&self.name)
            .finish();
        let src = self.clone();
        ChunkedArray::from_tasks(
            name,
            shape,
            chunks,
            self.dtype,
            vec![self.layer.clone()],
            |idx| {
                let mut b = vec![0; idx.len()];
                for (o, &p) in perm.iter().enumerate() {
                    b[p] = idx[o];
                }
                Ok(Task::new(
                    ArrayOp::Transpose(perm.clone()),
                    vec![src.block_key(&b)],
                ))
            },
        )
    }

    /// Removes length-1 axes (`None`: all of them).
    pub fn squeeze(&self, axes: Option<&[isize]>) -> Result<ChunkedArray> {
        let op = "squeeze";
        let axes: Vec<usize> = match axes {
            None => (0..self.ndim()).filter(|&a| self.shape[a] == 1).collect(),
            Some(v) => v
                .iter()
                .map(|&a| check_axis(op, a, self.ndim()))
                .collect::<Result<_>>()?,
        };
        for &a in &axes {
            if self.shape[a] != 1 {
                return Err(ArrayError::Shape {
                    op: op.into(),
                    detail: format!(
                        "cannot remove axis {a} of length {} from shape {:?}",
                        self.shape[a], self.shape
                    ),
                });
            }
        }
        if axes.is_empty() {
            return Ok(self.clone());
        }
        self.drop_axes_unchecked(&axes)
    }

    fn drop_axes_unchecked(&self, axes: &[usize]) -> Result<ChunkedArray> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        let keep: Vec<usize> = (0..self.ndim()).filter(|a| !axes.contains(a)).collect();
        let shape = keep.iter().map(|&a| self.shape[a]).collect();
        let chunks = keep.iter().map(|&a| self.chunks[a].clone()).collect();
        let name = Tokenizer::new("squeeze")
            .str(&format!("{axes:?}"))
            .str(&self.name)
            .finish();
        let src = self.clone();
        let ndim = self.ndim();
        ChunkedArray::from_tasks(
            name,
            shape,
            chunks,
            self.dtype,
            vec![self.layer.clone()],
            |idx| {
                let mut b = vec![0; ndim];
                for (o, &a) in keep.iter().enumerate() {
                    b[a] = idx[o];
                }
                Ok(Task::new(
                    ArrayOp::DropAxes(axes.clone()),
                    vec![src.block_key(&b)],
                ))
            },
        )
    }

    /// Inserts a length-1 axis at `axis` (of the result; negative counts from the end).
    pub fn expand_dims(&self, axis: isize) -> Result<ChunkedArray> {
        let axis = check_axis("expand_dims", axis, self.ndim() + 1)?;
        let mut shape = self.shape.clone();
        shape.insert(axis, 1);
        let mut chunks = self.chunks.clone();
        chunks.insert(axis, vec![1]);
        let name = Tokenizer::new("expand_dims")
            .u64(axis as u64)
            .str(&self.name)
            .finish();
        let src = self.clone();
        ChunkedArray::from_tasks(
            name,
            shape,
            chunks,
            self.dtype,
            vec![self.layer.clone()],
            |idx| {
                let mut b = idx.to_vec();
                b.remove(axis);
                Ok(Task::new(
                    ArrayOp::ExpandAxes(vec![axis]),
                    vec![src.block_key(&b)],
                ))
            },
        )
    }

    /// Applies a registered kernel (see [`crate::register_kernel`]) block by block to this
    /// array and `others` (broadcast and aligned), producing blocks of `dtype` with the
    /// aligned inputs' chunking. Kernels are looked up by name when the task runs, so they
    /// must be registered in every process that runs tasks.
    pub fn map_blocks(
        &self,
        kernel: &str,
        others: &[&ChunkedArray],
        params: serde_json::Value,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        crate::registry::kernel(kernel)?;
        let mut inputs: Vec<&ChunkedArray> = vec![self];
        inputs.extend_from_slice(others);
        blockwise(
            kernel,
            ArrayOp::MapBlocks {
                kernel: kernel.to_owned(),
                params,
                dtype,
            },
            &inputs,
            dtype,
        )
    }
}

/// Wraps a task's expression in one more single-input operation.
fn nest(op: ArrayOp, inner: Task<ArrayOp>) -> Task<ArrayOp> {
    Task {
        expr: gridflow_graph::Expr::Call {
            op,
            args: vec![inner.expr],
        },
        inputs: inner.inputs,
    }
}
