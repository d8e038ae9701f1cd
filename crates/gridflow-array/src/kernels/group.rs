//! Group-by kernels on blocks: per-group partial states of a block (also fed slab by
//! slab), merging them, finalizing them into statistics, and the median of a block. The
//! operations are plain data ([`GroupOp`]); [`crate::groupby`] builds graphs of them.

use crate::chunk::{Chunk, Element};
use crate::dtype::DType;
use crate::error::{ArrayError, Result};
use crate::with_chunk;
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
    pub(crate) fn fields(self) -> usize {
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

impl GroupPartial {
    /// Label for drawings and errors (`groupby-mean-chunk`).
    pub fn label(&self) -> String {
        format!("groupby-{}-chunk", self.stat.name())
    }

    /// The partial states of one whole block.
    pub(crate) fn run(&self, x: &Chunk) -> Result<Chunk> {
        partial_block(x, self)
    }
}

impl GroupOp {
    /// Label for drawings and errors (`groupby-mean-chunk`, `median`).
    pub fn label(&self) -> String {
        match self {
            GroupOp::Partial(p) => p.label(),
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
            GroupOp::Partial(p) => p.run(one()?),
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
