//! Group reductions along one axis (the engine under xarray-style `groupby` and `resample`)
//! and the median.
//!
//! Groups are given as one integer code per position along the axis (`-1`: in no group).
//! Three strategies keep tasks and memory bounded, after flox:
//! - *slices*: contiguous groups at least half a block long (yearly means of daily data) are
//!   reduced one slice at a time with the ordinary tree reduction;
//! - *blockwise*: smaller contiguous groups (daily means of 3-hourly data) are reduced inside
//!   blocks rechunked so that no group straddles two blocks;
//! - *map-reduce*: interleaved groups (monthly climatologies) are reduced to per-group partial
//!   statistics inside every block, combined in a tree, and finalized.
//!
//! The block work is done by built-in named kernels, so the tasks stay plain data.

use crate::array::{ChunkedArray, offsets};
use crate::chunk::{Chunk, Element};
use crate::dtype::DType;
use crate::error::{ArrayError, Result};
use crate::ops::ArrayOp;
use crate::with_chunk;
use gridflow_graph::{Task, Tokenizer};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// The statistic a group reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupStat {
    /// Sum (0 for an empty group).
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Number of valid (non-NaN) values.
    Count,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Variance with `ddof` delta degrees of freedom.
    Var(usize),
    /// Standard deviation with `ddof` delta degrees of freedom.
    Std(usize),
    /// True where any value is non-zero.
    Any,
    /// True where every value is non-zero.
    All,
}

impl GroupStat {
    /// The statistic's name, as in xarray (`mean`, `std`...).
    pub fn name(self) -> &'static str {
        match self {
            GroupStat::Sum => "sum",
            GroupStat::Mean => "mean",
            GroupStat::Count => "count",
            GroupStat::Min => "min",
            GroupStat::Max => "max",
            GroupStat::Var(_) => "var",
            GroupStat::Std(_) => "std",
            GroupStat::Any => "any",
            GroupStat::All => "all",
        }
    }

    /// Partial-statistic fields kept per group.
    fn fields(self) -> usize {
        match self {
            GroupStat::Sum | GroupStat::Count | GroupStat::Any | GroupStat::All => 1,
            GroupStat::Mean | GroupStat::Min | GroupStat::Max => 2,
            GroupStat::Var(_) | GroupStat::Std(_) => 3,
        }
    }

    /// The result dtype for input `dtype`, following xarray (float32 stays float32).
    pub fn out_dtype(self, dtype: DType) -> DType {
        match self {
            GroupStat::Sum => dtype.sum_dtype(),
            GroupStat::Mean | GroupStat::Var(_) | GroupStat::Std(_) => dtype.mean_dtype(),
            GroupStat::Count => DType::I64,
            GroupStat::Min | GroupStat::Max => {
                if dtype == DType::Bool {
                    DType::Bool
                } else {
                    dtype
                }
            }
            GroupStat::Any | GroupStat::All => DType::Bool,
        }
    }
}

/// How the groups are laid out along the axis, which decides the strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStrategy {
    /// Each contiguous group reduced as its own slice.
    Slices,
    /// Blocks rechunked on group boundaries, each reduced in one task.
    Blockwise,
    /// Per-block partials for every group, combined in a tree.
    MapReduce,
}

/// Options of [`ChunkedArray::group_reduce`].
#[derive(Clone, Copy, Debug)]
pub struct GroupOptions {
    /// Skip NaN values (the default for floats, as in xarray).
    pub skipna: bool,
    /// Fan-in of the map-reduce combine tree.
    pub split_every: usize,
    /// Force a strategy (chosen from the group layout when `None`).
    pub strategy: Option<GroupStrategy>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            skipna: true,
            split_every: 8,
            strategy: None,
        }
    }
}

/// The partial group-by reduction of one block along `axis`: for every group, the
/// statistic's running state over the block's rows whose code is that group's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupPartial {
    axis: usize,
    ngroups: usize,
    stat: GroupStat,
    skipna: bool,
    /// The group of each row of the block (-1: in no group).
    codes: Vec<i64>,
}

/// A group-by step of a task, as plain data (no parameters parsed per task).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GroupOp {
    /// One block to per-group partial states (see [`GroupPartial`]).
    Partial(GroupPartial),
    /// Merges the partial states of several blocks.
    Combine {
        /// The grouped axis.
        axis: usize,
        /// Number of groups.
        ngroups: usize,
        /// The statistic.
        stat: GroupStat,
    },
    /// Partial states to the statistic's values.
    Finalize {
        /// The grouped axis.
        axis: usize,
        /// Number of groups.
        ngroups: usize,
        /// The statistic.
        stat: GroupStat,
        /// The result's dtype.
        dtype: DType,
    },
    /// A block of whole groups, reduced and finalized in one task.
    Blockwise {
        /// The partial reduction of the block.
        partial: GroupPartial,
        /// The result's dtype.
        dtype: DType,
    },
    /// The median over `axes` of one block holding them whole.
    Median {
        /// The reduced axes.
        axes: Vec<usize>,
        /// Skip NaN values.
        skipna: bool,
        /// The result's dtype.
        dtype: DType,
    },
}

impl GroupPartial {
    /// The partial of `stat` along `axis` into `ngroups` groups, row `i` of a block in group
    /// `codes[i]` (-1: none).
    pub fn new(
        axis: usize,
        ngroups: usize,
        stat: GroupStat,
        skipna: bool,
        codes: Vec<i64>,
    ) -> GroupPartial {
        GroupPartial {
            axis,
            ngroups,
            stat,
            skipna,
            codes,
        }
    }
}

impl GroupOp {
    /// Label for drawings and errors (`groupby-mean-chunk`, `median`).
    pub fn label(&self) -> String {
        match self {
            GroupOp::Partial(p) => format!("groupby-{}-chunk", p.stat.name()),
            GroupOp::Combine { stat, .. } => format!("groupby-{}-combine", stat.name()),
            GroupOp::Finalize { stat, .. } => format!("groupby-{}-agg", stat.name()),
            GroupOp::Blockwise { partial, .. } => format!("groupby-{}", partial.stat.name()),
            GroupOp::Median { .. } => "median".into(),
        }
    }

    /// Runs the step on its input blocks.
    pub(crate) fn run(&self, blocks: &[&Chunk]) -> Result<Chunk> {
        let one = || match blocks {
            [x] => Ok(*x),
            _ => Err(ArrayError::Shape {
                op: self.label(),
                detail: format!("expected one input block, got {}", blocks.len()),
            }),
        };
        match self {
            GroupOp::Partial(p) => partial_block(one()?, p),
            GroupOp::Combine {
                axis,
                ngroups,
                stat,
            } => combine_blocks(blocks, *axis, *ngroups, *stat),
            GroupOp::Finalize {
                axis,
                ngroups,
                stat,
                dtype,
            } => finalize_block(one()?, *axis, *ngroups, *stat, *dtype),
            GroupOp::Blockwise { partial, dtype } => {
                let part = partial_block(one()?, partial)?;
                finalize_block(&part, partial.axis, partial.ngroups, partial.stat, *dtype)
            }
            GroupOp::Median {
                axes,
                skipna,
                dtype,
            } => median_block(one()?, axes, *skipna, *dtype),
        }
    }
}

const PARTIAL: &str = "groupby-chunk";
const COMBINE: &str = "groupby-combine";
const FINALIZE: &str = "groupby-agg";

fn split3(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

fn with_axis(shape: &[usize], axis: usize, n: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s[axis] = n;
    s
}

/// Per-group partial statistics of one block, laid out as `fields * ngroups` along the
/// axis (field-major), in float64.
fn partial_block(x: &Chunk, p: &GroupPartial) -> Result<Chunk> {
    let shape = x.shape().to_vec();
    if p.axis >= shape.len() || p.codes.len() != shape[p.axis] {
        return Err(ArrayError::Shape {
            op: PARTIAL.into(),
            detail: format!(
                "block of shape {shape:?} does not match {} group codes along axis {}",
                p.codes.len(),
                p.axis
            ),
        });
    }
    let (outer, n, inner) = split3(&shape, p.axis);
    let g = p.ngroups;
    let nf = p.stat.fields();
    let mut acc = empty_partial(p.stat, g, outer, inner);
    with_chunk!(x, a => accumulate(a, p, (outer, n, inner), &mut acc))?;
    let out =
        ArrayD::from_shape_vec(IxDyn(&with_axis(&shape, p.axis, nf * g)), acc).map_err(|e| {
            ArrayError::Shape {
                op: PARTIAL.into(),
                detail: e.to_string(),
            }
        })?;
    Ok(Chunk::F64(out))
}

/// A partial with no values yet: zeros, and ±infinity for the extreme of min/max.
fn empty_partial(stat: GroupStat, g: usize, outer: usize, inner: usize) -> Vec<f64> {
    let nf = stat.fields();
    let mut acc = vec![0.0f64; outer * nf * g * inner];
    if matches!(stat, GroupStat::Min | GroupStat::Max) {
        let init = if stat == GroupStat::Min {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
        for o in 0..outer {
            let base = o * nf * g * inner;
            acc[base..base + g * inner].fill(init);
        }
    }
    acc
}

/// A group partial fed one slab of rows (along its group axis) at a time, as a
/// block is streamed from its source: the per-group accumulator lives across the slabs, so
/// the block is never held whole. The result equals the kernel's on the whole block.
pub(crate) struct GroupPartialStream {
    p: GroupPartial,
    acc: Vec<f64>,
    /// The slab shape around the group axis (`outer` axes, `inner` axes), from the first slab.
    around: Option<(Vec<usize>, Vec<usize>)>,
    /// Rows fed so far.
    pos: usize,
}

/// A stream for a group partial along `row_axis` (the axis the slabs split), if it is
/// along that axis.
pub(crate) fn group_partial_stream(
    p: &GroupPartial,
    row_axis: usize,
) -> Option<GroupPartialStream> {
    (p.axis == row_axis).then(|| GroupPartialStream {
        p: p.clone(),
        acc: Vec::new(),
        around: None,
        pos: 0,
    })
}

impl GroupPartialStream {
    /// True until a slab was fed.
    pub(crate) fn is_empty(&self) -> bool {
        self.around.is_none()
    }

    /// Adds the rows of the next slab.
    pub(crate) fn feed(&mut self, slab: &Chunk) -> Result<()> {
        let shape = slab.shape();
        let axis = self.p.axis;
        let err = |detail: String| ArrayError::Shape {
            op: PARTIAL.into(),
            detail,
        };
        if axis >= shape.len() {
            return Err(err(format!("a slab of shape {shape:?} has no axis {axis}")));
        }
        let (outer, rows, inner) = split3(shape, axis);
        let around = (shape[..axis].to_vec(), shape[axis + 1..].to_vec());
        match &self.around {
            None => {
                self.acc = empty_partial(self.p.stat, self.p.ngroups, outer, inner);
                self.around = Some(around);
            }
            Some(a) if *a == around => {}
            Some(a) => return Err(err(format!("a slab of shape {shape:?} after {a:?}"))),
        }
        let codes = self.p.codes.get(self.pos..self.pos + rows).ok_or_else(|| {
            err(format!(
                "the block has more than the {} rows of its group codes",
                self.p.codes.len()
            ))
        })?;
        let sub = GroupPartial {
            codes: codes.to_vec(),
            ..self.p.clone()
        };
        with_chunk!(slab, a => accumulate(a, &sub, (outer, rows, inner), &mut self.acc))?;
        self.pos += rows;
        Ok(())
    }

    /// The partial block of everything fed.
    pub(crate) fn finish(self) -> Result<Chunk> {
        let err = |detail: String| ArrayError::Shape {
            op: PARTIAL.into(),
            detail,
        };
        if self.pos != self.p.codes.len() {
            return Err(err(format!(
                "the block had {} rows for {} group codes",
                self.pos,
                self.p.codes.len()
            )));
        }
        let (mut shape, inner) = self.around.ok_or_else(|| err("no rows were read".into()))?;
        shape.push(self.p.stat.fields() * self.p.ngroups);
        shape.extend(inner);
        ArrayD::from_shape_vec(IxDyn(&shape), self.acc)
            .map(Chunk::F64)
            .map_err(|e| err(e.to_string()))
    }
}

fn accumulate<T: Element>(
    a: &ArrayD<T>,
    p: &GroupPartial,
    (outer, n, inner): (usize, usize, usize),
    acc: &mut [f64],
) -> Result<()> {
    let std = a.as_standard_layout();
    let data = std.as_slice().ok_or_else(|| ArrayError::Shape {
        op: PARTIAL.into(),
        detail: "block is not contiguous".into(),
    })?;
    let g = p.ngroups;
    let plane = g * inner;
    for o in 0..outer {
        let dst = &mut acc[o * p.stat.fields() * plane..(o + 1) * p.stat.fields() * plane];
        for (i, &code) in p.codes.iter().enumerate().take(n) {
            if code < 0 {
                continue;
            }
            let code = code as usize;
            if code >= g {
                return Err(ArrayError::Index {
                    op: PARTIAL.into(),
                    detail: format!("group code {code} is not below the group count {g}"),
                });
            }
            let src = &data[(o * n + i) * inner..(o * n + i + 1) * inner];
            let off = code * inner;
            accumulate_row(p.stat, p.skipna, src, dst, off, plane, inner);
        }
    }
    Ok(())
}

/// Adds one row of values to the group's fields; `dst[f * plane + off ..]` is field `f`.
fn accumulate_row<T: Element>(
    stat: GroupStat,
    skipna: bool,
    src: &[T],
    dst: &mut [f64],
    off: usize,
    plane: usize,
    inner: usize,
) {
    let (f0, rest) = dst.split_at_mut(plane);
    let f0 = &mut f0[off..off + inner];
    match stat {
        GroupStat::Sum => {
            for (s, &v) in f0.iter_mut().zip(src) {
                let v = v.to_f64();
                if !(skipna && v.is_nan()) {
                    *s += v;
                }
            }
        }
        GroupStat::Count => {
            for (s, &v) in f0.iter_mut().zip(src) {
                if !v.is_nan() {
                    *s += 1.0;
                }
            }
        }
        GroupStat::Any => {
            for (s, &v) in f0.iter_mut().zip(src) {
                let v = v.to_f64();
                if v != 0.0 && !v.is_nan() {
                    *s += 1.0;
                }
            }
        }
        GroupStat::All => {
            for (s, &v) in f0.iter_mut().zip(src) {
                if v.to_f64() == 0.0 {
                    *s += 1.0;
                }
            }
        }
        GroupStat::Mean => {
            let f1 = &mut rest[off..off + inner];
            for ((s, c), &v) in f0.iter_mut().zip(f1.iter_mut()).zip(src) {
                let v = v.to_f64();
                if !(skipna && v.is_nan()) {
                    *s += v;
                    *c += 1.0;
                }
            }
        }
        GroupStat::Min | GroupStat::Max => {
            let f1 = &mut rest[off..off + inner];
            let is_min = stat == GroupStat::Min;
            for ((m, c), &v) in f0.iter_mut().zip(f1.iter_mut()).zip(src) {
                let v = v.to_f64();
                if v.is_nan() {
                    if !skipna {
                        *m = f64::NAN;
                        *c += 1.0;
                    }
                    continue;
                }
                // once NaN (skipna=false), comparisons are false and it stays NaN
                if (is_min && v < *m) || (!is_min && v > *m) {
                    *m = v;
                }
                *c += 1.0;
            }
        }
        GroupStat::Var(_) | GroupStat::Std(_) => {
            // f0 = count, f1 = mean, f2 = sum of squared deviations (Welford)
            let (f1, f2) = rest.split_at_mut(plane);
            let f1 = &mut f1[off..off + inner];
            let f2 = &mut f2[off..off + inner];
            for (((c, m), m2), &v) in f0.iter_mut().zip(f1.iter_mut()).zip(f2.iter_mut()).zip(src) {
                let v = v.to_f64();
                if skipna && v.is_nan() {
                    continue;
                }
                *c += 1.0;
                let d = v - *m;
                *m += d / *c;
                *m2 += d * (v - *m);
            }
        }
    }
}

/// Merges partial blocks (all of the same shape) field by field.
fn combine_blocks(
    blocks: &[&Chunk],
    axis: usize,
    ngroups: usize,
    stat: GroupStat,
) -> Result<Chunk> {
    let first = blocks.first().ok_or_else(|| ArrayError::Shape {
        op: COMBINE.into(),
        detail: "no blocks to combine".into(),
    })?;
    let shape = first.shape().to_vec();
    let nf = stat.fields();
    if axis >= shape.len() || shape[axis] != nf * ngroups {
        return Err(ArrayError::Shape {
            op: COMBINE.into(),
            detail: format!("partial block of shape {shape:?} does not match the groups"),
        });
    }
    let (outer, _, inner) = split3(&shape, axis);
    let plane = ngroups * inner;
    let mut acc: Vec<f64> = f64_data(first, COMBINE)?.to_vec();
    for b in &blocks[1..] {
        if b.shape() != shape.as_slice() {
            return Err(ArrayError::Shape {
                op: COMBINE.into(),
                detail: format!("partial blocks of shapes {shape:?} and {:?}", b.shape()),
            });
        }
        let src = f64_data(b, COMBINE)?;
        for o in 0..outer {
            let base = o * nf * plane;
            let dst = &mut acc[base..base + nf * plane];
            let src = &src[base..base + nf * plane];
            merge_partials(stat, dst, src, plane);
        }
    }
    let out = ArrayD::from_shape_vec(IxDyn(&shape), acc).map_err(|e| ArrayError::Shape {
        op: COMBINE.into(),
        detail: e.to_string(),
    })?;
    Ok(Chunk::F64(out))
}

fn f64_data<'a>(c: &'a Chunk, op: &str) -> Result<&'a [f64]> {
    match c {
        Chunk::F64(a) => a.as_slice().ok_or_else(|| ArrayError::Shape {
            op: op.into(),
            detail: "partial block is not contiguous".into(),
        }),
        other => Err(ArrayError::DType {
            op: op.into(),
            detail: format!("partial blocks are float64, got {}", other.dtype()),
        }),
    }
}

fn merge_partials(stat: GroupStat, dst: &mut [f64], src: &[f64], plane: usize) {
    match stat {
        GroupStat::Sum | GroupStat::Count | GroupStat::Any | GroupStat::All | GroupStat::Mean => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
        GroupStat::Min | GroupStat::Max => {
            let is_min = stat == GroupStat::Min;
            let (dm, dc) = dst.split_at_mut(plane);
            let (sm, sc) = src.split_at(plane);
            for (d, &s) in dm.iter_mut().zip(sm) {
                if s.is_nan() || (is_min && s < *d) || (!is_min && s > *d) {
                    *d = s;
                }
            }
            for (d, s) in dc.iter_mut().zip(sc) {
                *d += s;
            }
        }
        GroupStat::Var(_) | GroupStat::Std(_) => {
            // Chan et al.'s pairwise update of (count, mean, M2)
            let (dc, dr) = dst.split_at_mut(plane);
            let (dm, dm2) = dr.split_at_mut(plane);
            let (sc, sr) = src.split_at(plane);
            let (sm, sm2) = sr.split_at(plane);
            for i in 0..plane {
                let (na, nb) = (dc[i], sc[i]);
                if nb == 0.0 {
                    continue;
                }
                if na == 0.0 {
                    dc[i] = nb;
                    dm[i] = sm[i];
                    dm2[i] = sm2[i];
                    continue;
                }
                let n = na + nb;
                let delta = sm[i] - dm[i];
                dm[i] += delta * nb / n;
                dm2[i] += sm2[i] + delta * delta * na * nb / n;
                dc[i] = n;
            }
        }
    }
}

/// Turns partial fields into the statistic, cast to the result dtype.
fn finalize_block(
    x: &Chunk,
    axis: usize,
    ngroups: usize,
    stat: GroupStat,
    dtype: DType,
) -> Result<Chunk> {
    let shape = x.shape().to_vec();
    let nf = stat.fields();
    if axis >= shape.len() || shape[axis] != nf * ngroups {
        return Err(ArrayError::Shape {
            op: FINALIZE.into(),
            detail: format!("partial block of shape {shape:?} does not match the groups"),
        });
    }
    let data = f64_data(x, FINALIZE)?;
    let (outer, _, inner) = split3(&shape, axis);
    let plane = ngroups * inner;
    let mut out = Vec::with_capacity(outer * plane);
    for o in 0..outer {
        let f = &data[o * nf * plane..(o + 1) * nf * plane];
        finalize_fields(stat, f, plane, &mut out);
    }
    Chunk::from_f64_vec(&with_axis(&shape, axis, ngroups), out, dtype)
}

fn finalize_fields(stat: GroupStat, f: &[f64], plane: usize, out: &mut Vec<f64>) {
    match stat {
        GroupStat::Sum | GroupStat::Count => out.extend_from_slice(&f[..plane]),
        GroupStat::Any => out.extend(f[..plane].iter().map(|&c| f64::from(c > 0.0))),
        GroupStat::All => out.extend(f[..plane].iter().map(|&c| f64::from(c == 0.0))),
        GroupStat::Mean => out.extend(
            f[..plane]
                .iter()
                .zip(&f[plane..2 * plane])
                .map(|(&s, &c)| if c > 0.0 { s / c } else { f64::NAN }),
        ),
        GroupStat::Min | GroupStat::Max => out.extend(
            f[..plane]
                .iter()
                .zip(&f[plane..2 * plane])
                .map(|(&m, &c)| if c > 0.0 { m } else { f64::NAN }),
        ),
        GroupStat::Var(ddof) | GroupStat::Std(ddof) => {
            let is_std = matches!(stat, GroupStat::Std(_));
            out.extend(
                f[..plane]
                    .iter()
                    .zip(&f[2 * plane..3 * plane])
                    .map(|(&c, &m2)| {
                        let dof = c - ddof as f64;
                        if dof <= 0.0 {
                            f64::NAN
                        } else if is_std {
                            (m2 / dof).sqrt()
                        } else {
                            m2 / dof
                        }
                    }),
            );
        }
    }
}

/// The median of one block over `axes` (which hold whole array extents).
fn median_block(x: &Chunk, axes: &[usize], skipna: bool, dtype: DType) -> Result<Chunk> {
    let shape = x.shape().to_vec();
    let ndim = shape.len();
    if axes.iter().any(|&a| a >= ndim) {
        return Err(ArrayError::Axis {
            op: "median".into(),
            axis: axes.iter().copied().max().unwrap_or(0) as isize,
            ndim,
        });
    }
    // move reduced axes last, then each output element is a contiguous run
    let keep: Vec<usize> = (0..ndim).filter(|a| !axes.contains(a)).collect();
    let mut perm = keep.clone();
    perm.extend(axes);
    let out_shape: Vec<usize> = keep.iter().map(|&a| shape[a]).collect();
    let run: usize = axes.iter().map(|&a| shape[a]).product();
    let values: Vec<f64> = with_chunk!(x, a => {
        let t = a.view().permuted_axes(IxDyn(&perm));
        t.iter().map(|v| v.to_f64()).collect()
    });
    let mut out = Vec::with_capacity(values.len() / run.max(1));
    let mut buf = Vec::with_capacity(run);
    for r in values.chunks(run.max(1)) {
        buf.clear();
        let mut has_nan = false;
        for &v in r {
            if v.is_nan() {
                has_nan = true;
            } else {
                buf.push(v);
            }
        }
        out.push(if (has_nan && !skipna) || buf.is_empty() {
            f64::NAN
        } else {
            median_of(&mut buf)
        });
    }
    if run == 0 {
        out = vec![f64::NAN; out_shape.iter().product()];
    }
    Chunk::from_f64_vec(&out_shape, out, dtype)
}

fn median_of(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (_, hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// Decides the strategy from the codes and the block size along the axis.
fn choose_strategy(codes: &[i64], block: usize) -> GroupStrategy {
    let contiguous =
        codes.windows(2).all(|w| w[1] >= w[0]) && codes.first().is_none_or(|&c| c >= 0);
    if !contiguous {
        return GroupStrategy::MapReduce;
    }
    let distinct = 1 + codes.windows(2).filter(|w| w[1] != w[0]).count();
    let avg = codes.len() as f64 / distinct.max(1) as f64;
    if avg * 2.0 >= block as f64 {
        GroupStrategy::Slices
    } else {
        GroupStrategy::Blockwise
    }
}

impl ChunkedArray {
    /// Reduces along `axis` by group: `codes[i]` is the group (`0..ngroups`, or `-1` for
    /// none) of position `i`. The result has `ngroups` positions along `axis`, one per group
    /// (NaN, or 0 for sums and counts, where a group is empty).
    ///
    /// ```
    /// use gridflow_array::{ChunkedArray, DType};
    /// use gridflow_array::groupby::{GroupOptions, GroupStat};
    /// let x = ChunkedArray::arange(0.0, 6.0, 1.0, 2, DType::F64).unwrap();
    /// let by_parity = x
    ///     .group_reduce(0, &[0, 1, 0, 1, 0, 1], 2, GroupStat::Sum, GroupOptions::default())
    ///     .unwrap();
    /// assert_eq!(by_parity.compute().unwrap().to_f64_vec(), vec![6.0, 9.0]);
    /// ```
    pub fn group_reduce(
        &self,
        axis: isize,
        codes: &[i64],
        ngroups: usize,
        stat: GroupStat,
        opts: GroupOptions,
    ) -> Result<ChunkedArray> {
        let op = format!("groupby.{}", stat.name());
        let axis = crate::array::check_axis(&op, axis, self.ndim())?;
        if codes.len() != self.shape[axis] {
            return Err(ArrayError::Shape {
                op,
                detail: format!(
                    "{} group codes for an axis of length {}",
                    codes.len(),
                    self.shape[axis]
                ),
            });
        }
        if let Some(&bad) = codes.iter().find(|&&c| c < -1 || c >= ngroups as i64) {
            return Err(ArrayError::Index {
                op,
                detail: format!("group code {bad} outside -1..{ngroups}"),
            });
        }
        if ngroups == 0 {
            return Err(ArrayError::Shape {
                op,
                detail: "no groups to reduce into".into(),
            });
        }
        let block = self.chunks[axis].iter().copied().max().unwrap_or(1).max(1);
        let strategy = opts
            .strategy
            .unwrap_or_else(|| choose_strategy(codes, block));
        let out_dtype = stat.out_dtype(self.dtype);
        match strategy {
            GroupStrategy::MapReduce => {
                self.group_map_reduce(axis, codes, ngroups, stat, opts, out_dtype)
            }
            GroupStrategy::Blockwise | GroupStrategy::Slices
                if codes.windows(2).any(|w| w[1] < w[0])
                    || codes.first().is_some_and(|&c| c < 0) =>
            {
                Err(ArrayError::Shape {
                    op,
                    detail: format!(
                        "the {strategy:?} strategy needs sorted, contiguous group codes"
                    ),
                })
            }
            GroupStrategy::Blockwise => {
                self.group_blockwise(axis, codes, ngroups, stat, opts, out_dtype)
            }
            GroupStrategy::Slices => self.group_slices(axis, codes, ngroups, stat, opts, out_dtype),
        }
    }

    fn group_map_reduce(
        &self,
        axis: usize,
        codes: &[i64],
        ngroups: usize,
        stat: GroupStat,
        opts: GroupOptions,
        out_dtype: DType,
    ) -> Result<ChunkedArray> {
        let nf = stat.fields();
        let offs = offsets(&self.chunks[axis]);
        let nblocks_axis = self.chunks[axis].len();
        let base = Tokenizer::new("group-partial")
            .str(&serde_json::to_string(&(axis, ngroups, stat, opts.skipna)).unwrap_or_default())
            .bytes(
                &codes
                    .iter()
                    .flat_map(|c| c.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
            .str(&self.name)
            .finish();
        // partials: one block per input block, the axis replaced by nf * ngroups
        let mut chunks = self.chunks.clone();
        chunks[axis] = vec![nf * ngroups; nblocks_axis];
        let mut shape = self.shape.clone();
        shape[axis] = nf * ngroups * nblocks_axis;
        let src = self.clone();
        let mut level = ChunkedArray::from_tasks(
            base,
            shape,
            chunks,
            DType::F64,
            vec![self.layer.clone()],
            |idx| {
                let (s, n) = (offs[idx[axis]], src.chunks[axis][idx[axis]]);
                Ok(Task::new(
                    ArrayOp::Group(GroupOp::Partial(GroupPartial {
                        axis,
                        ngroups,
                        stat,
                        skipna: opts.skipna,
                        codes: codes[s..s + n].to_vec(),
                    })),
                    vec![src.block_key(idx)],
                ))
            },
        )?;
        // combine in a tree until one block remains along the axis
        let fan = opts.split_every.max(2);
        let combine = ArrayOp::Group(GroupOp::Combine {
            axis,
            ngroups,
            stat,
        });
        while level.chunks[axis].len() > 1 {
            let n = level.chunks[axis].len();
            let m = n.div_ceil(fan);
            let name = Tokenizer::new("group-combine")
                .str(&level.name)
                .u64(fan as u64)
                .finish();
            let mut chunks = level.chunks.clone();
            chunks[axis] = vec![nf * ngroups; m];
            let mut shape = level.shape.clone();
            shape[axis] = nf * ngroups * m;
            let prev = level.clone();
            let cp = combine.clone();
            level = ChunkedArray::from_tasks(
                name,
                shape,
                chunks,
                DType::F64,
                vec![level.layer.clone()],
                |idx| {
                    let keys = (idx[axis] * fan..((idx[axis] + 1) * fan).min(n))
                        .map(|j| {
                            let mut b = idx.to_vec();
                            b[axis] = j;
                            prev.block_key(&b)
                        })
                        .collect();
                    Ok(Task::new(cp.clone(), keys))
                },
            )?;
        }
        let name = Tokenizer::new("group-finalize")
            .str(&level.name)
            .str(stat.name())
            .finish();
        let mut chunks = level.chunks.clone();
        chunks[axis] = vec![ngroups];
        let mut shape = level.shape.clone();
        shape[axis] = ngroups;
        let finalize = ArrayOp::Group(GroupOp::Finalize {
            axis,
            ngroups,
            stat,
            dtype: out_dtype,
        });
        let prev = level.clone();
        ChunkedArray::from_tasks(
            name,
            shape,
            chunks,
            out_dtype,
            vec![level.layer.clone()],
            |idx| Ok(Task::new(finalize.clone(), vec![prev.block_key(idx)])),
        )
    }

    fn group_blockwise(
        &self,
        axis: usize,
        codes: &[i64],
        ngroups: usize,
        stat: GroupStat,
        opts: GroupOptions,
        out_dtype: DType,
    ) -> Result<ChunkedArray> {
        // new blocks: whole groups, cut at the first group boundary past the old block size
        let target = self.chunks[axis].iter().copied().max().unwrap_or(1).max(1);
        let mut sizes = Vec::new();
        let mut start = 0usize;
        for i in 1..=codes.len() {
            let boundary = i == codes.len() || codes[i] != codes[i - 1];
            if boundary && (i - start >= target || i == codes.len()) {
                sizes.push(i - start);
                start = i;
            }
        }
        let mut chunks = self.chunks.clone();
        chunks[axis] = sizes.clone();
        let x = self.rechunk(chunks)?;
        let offs = offsets(&sizes);
        // each block's groups: from the previous block's last group + 1 (absorbing empty
        // groups) to its own last group; the last block runs to the final group
        let mut ranges = Vec::with_capacity(sizes.len());
        let mut next = 0i64;
        for (b, (&o, &n)) in offs.iter().zip(&sizes).enumerate() {
            let last = if b + 1 == sizes.len() {
                ngroups as i64 - 1
            } else {
                codes[o + n - 1]
            };
            ranges.push((next, last));
            next = last + 1;
        }
        let mut out_chunks = x.chunks.clone();
        out_chunks[axis] = ranges
            .iter()
            .map(|&(lo, hi)| (hi - lo + 1).max(0) as usize)
            .collect();
        if out_chunks[axis].contains(&0) {
            return Err(ArrayError::Shape {
                op: format!("groupby.{}", stat.name()),
                detail: "group codes past the group count".into(),
            });
        }
        let mut shape = x.shape.clone();
        shape[axis] = ngroups;
        let name = Tokenizer::new("group-blockwise")
            .str(&serde_json::to_string(&(axis, ngroups, stat, opts.skipna)).unwrap_or_default())
            .bytes(
                &codes
                    .iter()
                    .flat_map(|c| c.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
            .str(&x.name)
            .finish();
        let src = x.clone();
        ChunkedArray::from_tasks(
            name,
            shape,
            out_chunks,
            out_dtype,
            vec![x.layer.clone()],
            |idx| {
                let b = idx[axis];
                let (lo, hi) = ranges[b];
                let local: Vec<i64> = codes[offs[b]..offs[b] + sizes[b]]
                    .iter()
                    .map(|c| c - lo)
                    .collect();
                Ok(Task::new(
                    ArrayOp::Group(GroupOp::Blockwise {
                        partial: GroupPartial {
                            axis,
                            ngroups: (hi - lo + 1) as usize,
                            stat,
                            skipna: opts.skipna,
                            codes: local,
                        },
                        dtype: out_dtype,
                    }),
                    vec![src.block_key(idx)],
                ))
            },
        )
    }

    fn group_slices(
        &self,
        axis: usize,
        codes: &[i64],
        ngroups: usize,
        stat: GroupStat,
        opts: GroupOptions,
        out_dtype: DType,
    ) -> Result<ChunkedArray> {
        let mut parts = Vec::with_capacity(ngroups);
        let mut pos = 0usize;
        for g in 0..ngroups as i64 {
            let start = pos;
            while pos < codes.len() && codes[pos] == g {
                pos += 1;
            }
            if start == pos {
                // an empty group: NaN (0 for sums and counts), one position long
                let mut shape = self.shape.clone();
                shape[axis] = 1;
                let fill = match stat {
                    GroupStat::Sum | GroupStat::Count | GroupStat::Any => 0.0,
                    GroupStat::All => 1.0,
                    _ => f64::NAN,
                };
                let chunks: Vec<Vec<usize>> = self
                    .chunks
                    .iter()
                    .enumerate()
                    .map(|(a, c)| if a == axis { vec![1] } else { c.clone() })
                    .collect();
                parts.push(ChunkedArray::full(
                    &shape,
                    crate::Scalar::Float(fill),
                    chunks,
                    out_dtype,
                )?);
                continue;
            }
            let mut idx: Vec<crate::Indexer> = vec![crate::Indexer::Full; self.ndim()];
            idx[axis] = crate::Indexer::range(start as isize, pos as isize);
            let slice = self.index(&idx)?;
            let ax = [axis as isize];
            let mut ro = crate::ReduceOptions::axes(Some(&ax));
            ro.keepdims = true;
            ro.skipna = opts.skipna;
            ro.split_every = opts.split_every;
            let r = match stat {
                GroupStat::Sum => slice.reduce(crate::kernels::ReduceOp::Sum, &ro)?,
                GroupStat::Mean => slice.reduce(crate::kernels::ReduceOp::Mean, &ro)?,
                GroupStat::Count => slice.reduce(crate::kernels::ReduceOp::Count, &ro)?,
                GroupStat::Min => slice.reduce(crate::kernels::ReduceOp::Min, &ro)?,
                GroupStat::Max => slice.reduce(crate::kernels::ReduceOp::Max, &ro)?,
                GroupStat::Any => slice.reduce(crate::kernels::ReduceOp::Any, &ro)?,
                GroupStat::All => slice.reduce(crate::kernels::ReduceOp::All, &ro)?,
                GroupStat::Var(d) => {
                    ro.ddof = d;
                    slice.reduce(crate::kernels::ReduceOp::Var, &ro)?
                }
                GroupStat::Std(d) => {
                    ro.ddof = d;
                    slice.reduce(crate::kernels::ReduceOp::Std, &ro)?
                }
            };
            parts.push(if r.dtype() == out_dtype {
                r
            } else {
                r.astype(out_dtype)?
            });
        }
        let refs: Vec<&ChunkedArray> = parts.iter().collect();
        ChunkedArray::concatenate(&refs, axis as isize)
    }

    /// The median over `axes` (all axes when `None`), NaN-skipping when `skipna`. Each
    /// reduced axis is first rechunked into one block, as in Dask.
    pub fn median(&self, axes: Option<&[isize]>, skipna: bool) -> Result<ChunkedArray> {
        let ndim = self.ndim();
        let mut ax: Vec<usize> = match axes {
            None => (0..ndim).collect(),
            Some(a) => a
                .iter()
                .map(|&x| crate::array::check_axis("median", x, ndim))
                .collect::<Result<_>>()?,
        };
        ax.sort_unstable();
        ax.dedup();
        let dtype = self.dtype.mean_dtype();
        let mut rc = self.chunks.clone();
        for &a in &ax {
            rc[a] = vec![self.shape[a]];
        }
        // whole reduced axes make bigger blocks: split the kept axes until a block is no
        // bigger than the largest input block (at least 64 MiB), so memory stays bounded
        let limit = self.max_chunk_nbytes().max(64 << 20);
        let item = self.dtype.size().max(1);
        loop {
            let block: usize = rc
                .iter()
                .map(|c| c.iter().copied().max().unwrap_or(1))
                .product::<usize>()
                * item;
            let widest = (0..ndim)
                .filter(|a| !ax.contains(a))
                .max_by_key(|&a| rc[a].iter().copied().max().unwrap_or(1));
            match widest {
                Some(a) if block > limit && rc[a].iter().copied().max().unwrap_or(1) > 1 => {
                    let cur = rc[a].iter().copied().max().unwrap_or(1);
                    let size = cur.div_ceil(2);
                    let len = self.shape[a];
                    rc[a] = (0..len).step_by(size).map(|s| size.min(len - s)).collect();
                }
                _ => break,
            }
        }
        let x = self.rechunk(rc)?;
        let keep: Vec<usize> = (0..ndim).filter(|a| !ax.contains(a)).collect();
        let shape: Vec<usize> = keep.iter().map(|&a| x.shape[a]).collect();
        let chunks: Vec<Vec<usize>> = keep.iter().map(|&a| x.chunks[a].clone()).collect();
        let median = ArrayOp::Group(GroupOp::Median {
            axes: ax.clone(),
            skipna,
            dtype,
        });
        let name = Tokenizer::new("median")
            .str(&format!("{ax:?}{skipna}"))
            .str(&x.name)
            .finish();
        let src = x.clone();
        ChunkedArray::from_tasks(name, shape, chunks, dtype, vec![x.layer.clone()], |idx| {
            let mut full = vec![0usize; ndim];
            for (k, &a) in keep.iter().enumerate() {
                full[a] = idx[k];
            }
            Ok(Task::new(median.clone(), vec![src.block_key(&full)]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(
        x: &[f64],
        shape: (usize, usize),
        codes: &[i64],
        g: usize,
        stat: GroupStat,
    ) -> Vec<f64> {
        // x is (n, m) row-major, groups along axis 0
        let (n, m) = shape;
        let mut out = vec![f64::NAN; g * m];
        for gi in 0..g {
            for j in 0..m {
                let v: Vec<f64> = (0..n)
                    .filter(|&i| codes[i] == gi as i64)
                    .map(|i| x[i * m + j])
                    .filter(|v| !v.is_nan())
                    .collect();
                let c = v.len() as f64;
                let mean = v.iter().sum::<f64>() / c;
                out[gi * m + j] = match stat {
                    GroupStat::Sum => v.iter().sum(),
                    GroupStat::Count => c,
                    GroupStat::Mean => mean,
                    GroupStat::Min => v.iter().copied().fold(f64::NAN, f64::min),
                    GroupStat::Max => v.iter().copied().fold(f64::NAN, f64::max),
                    GroupStat::Var(d) | GroupStat::Std(d) => {
                        let var =
                            v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (c - d as f64);
                        let var = if c - d as f64 <= 0.0 { f64::NAN } else { var };
                        if matches!(stat, GroupStat::Std(_)) {
                            var.sqrt()
                        } else {
                            var
                        }
                    }
                    GroupStat::Any => f64::from(v.iter().any(|&a| a != 0.0)),
                    GroupStat::All => f64::from(v.iter().all(|&a| a != 0.0)),
                };
            }
        }
        out
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-12 * (1.0 + x.abs().max(y.abs()))
            })
    }

    #[test]
    fn strategies_agree_with_a_naive_loop() {
        let (n, m) = (37usize, 5usize);
        let mut vals: Vec<f64> = (0..n * m)
            .map(|i| ((i * 7919) % 101) as f64 / 7.0 - 3.0)
            .collect();
        vals[3] = f64::NAN;
        vals[40] = f64::NAN;
        let x = ChunkedArray::from_chunk(
            Chunk::from_f64_vec(&[n, m], vals.clone(), DType::F64).unwrap(),
            [6, 2],
        )
        .unwrap();
        let sorted: Vec<i64> = (0..n as i64).map(|i| i / 5).collect(); // 8 groups, contiguous
        let interleaved: Vec<i64> = (0..n as i64)
            .map(|i| if i % 9 == 4 { -1 } else { i % 4 })
            .collect();
        let stats = [
            GroupStat::Sum,
            GroupStat::Mean,
            GroupStat::Count,
            GroupStat::Min,
            GroupStat::Max,
            GroupStat::Var(0),
            GroupStat::Std(1),
            GroupStat::Any,
            GroupStat::All,
        ];
        for stat in stats {
            for (codes, g, strategies) in [
                (
                    &sorted,
                    8usize,
                    vec![
                        GroupStrategy::Slices,
                        GroupStrategy::Blockwise,
                        GroupStrategy::MapReduce,
                    ],
                ),
                (&interleaved, 4usize, vec![GroupStrategy::MapReduce]),
            ] {
                let want = naive(&vals, (n, m), codes, g, stat);
                for s in strategies {
                    let opts = GroupOptions {
                        strategy: Some(s),
                        split_every: 2,
                        ..GroupOptions::default()
                    };
                    let r = x.group_reduce(0, codes, g, stat, opts).unwrap();
                    assert_eq!(r.shape(), &[g, m]);
                    let got = r.compute().unwrap().to_f64_vec();
                    assert!(close(&got, &want), "{stat:?} {s:?}: {got:?} != {want:?}");
                }
            }
        }
    }

    #[test]
    fn bad_codes_are_reported() {
        let x = ChunkedArray::zeros(&[4], [2], DType::F64).unwrap();
        let e = x
            .group_reduce(0, &[0, 1, 5, 0], 2, GroupStat::Sum, GroupOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("group code 5"), "{e}");
        let e = x
            .group_reduce(0, &[0, 1], 2, GroupStat::Sum, GroupOptions::default())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("2 group codes for an axis of length 4"),
            "{e}"
        );
    }

    #[test]
    fn median_keeps_blocks_small() {
        // 40 x 4 MiB blocks along axis 0 would make one 160 MiB block: the kept axis splits
        let x = ChunkedArray::zeros(&[40, 1 << 19], [1, 1 << 19], DType::F64).unwrap();
        let m = x.median(Some(&[0]), true).unwrap();
        assert_eq!(m.shape(), &[1 << 19]);
        assert!(m.chunks()[0].len() >= 2, "{:?}", m.chunks()[0].len());
        assert!(m.chunks()[0].iter().all(|&c| c * 40 * 8 <= 64 << 20));
    }

    #[test]
    fn median_matches_sorting() {
        let vals: Vec<f64> = vec![5.0, 1.0, f64::NAN, 3.0, 9.0, 2.0, 8.0, 4.0];
        let x = ChunkedArray::from_chunk(
            Chunk::from_f64_vec(&[4, 2], vals, DType::F64).unwrap(),
            [1, 1],
        )
        .unwrap();
        let m = x
            .median(Some(&[0]), true)
            .unwrap()
            .compute()
            .unwrap()
            .to_f64_vec();
        // column 0: 5, NaN, 9, 8 -> 8 ; column 1: 1, 3, 2, 4 -> 2.5
        assert_eq!(m, vec![8.0, 2.5]);
        let m = x
            .median(Some(&[0]), false)
            .unwrap()
            .compute()
            .unwrap()
            .to_f64_vec();
        assert!(m[0].is_nan() && m[1] == 2.5);
        let all = x
            .median(None, true)
            .unwrap()
            .compute()
            .unwrap()
            .to_f64_vec();
        assert_eq!(all, vec![4.0]);
    }
}
