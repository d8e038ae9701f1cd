//! Structural block kernels: slicing, integer indexing, concatenation, assembling a grid of
//! blocks (rechunk), transposition, broadcasting and adding/removing length-1 axes.
//!
//! Results are always in standard (C-contiguous) layout.

use super::{axis_err, cast_cow, check_axes, fmt_shape, from_vec, kernel_err, shape_err};
use crate::chunk::{Chunk, Element};
use crate::dispatch_dtype;
use crate::dtype::{DType, promote};
use crate::error::{ArrayError, Result};
use crate::with_chunk;
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

fn index_err(op: &str, detail: impl Into<String>) -> ArrayError {
    ArrayError::Index {
        op: op.to_string(),
        detail: detail.into(),
    }
}

/// A normalized slice of one axis, exactly as Python's `slice.indices(n)` returns it: the
/// positions taken are `range(start, stop, step)`, i.e. `start, start + step, ...` while
/// below `stop` (for `step > 0`) or above `stop` (for `step < 0`).
///
/// `stop` is an `isize` so that a reversed slice reaching index 0 can be written with
/// `stop == -1` (`x[3::-1]` on a length-5 axis is `SliceSpec { start: 3, stop: -1, step: -1 }`,
/// positions 3, 2, 1, 0). `step` must be non-zero and every position taken must be inside
/// the axis; an empty slice (`len() == 0`) is always valid.
///
/// ```
/// use gridflow_array::kernels::SliceSpec;
/// assert_eq!(SliceSpec::range(2, 5).len(), 3);
/// assert_eq!(SliceSpec::new(4, -1, -2).len(), 3); // 4, 2, 0
/// assert_eq!(SliceSpec::stepped(4, 3, -2), SliceSpec::new(4, -2, -2));
/// assert_eq!(SliceSpec::from_python(None, None, Some(-1), 5).unwrap(), SliceSpec::new(4, -1, -1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SliceSpec {
    /// The first position taken (when the slice is not empty).
    pub start: usize,
    /// The exclusive end, `-1` allowed for reversed slices reaching position 0.
    pub stop: isize,
    /// The step, non-zero; negative walks the axis backwards.
    pub step: isize,
}

impl SliceSpec {
    /// `range(start, stop, step)`.
    pub fn new(start: usize, stop: isize, step: isize) -> SliceSpec {
        SliceSpec { start, stop, step }
    }

    /// `start..stop` with step 1 (empty when `stop <= start`).
    pub fn range(start: usize, stop: usize) -> SliceSpec {
        SliceSpec {
            start,
            stop: as_isize(stop),
            step: 1,
        }
    }

    /// `len` positions from `start` with `step` (`start`, `start + step`, ...).
    pub fn stepped(start: usize, len: usize, step: isize) -> SliceSpec {
        let stop = as_isize(start).saturating_add(as_isize(len).saturating_mul(step));
        SliceSpec { start, stop, step }
    }

    /// The whole axis of length `n`.
    pub fn full(n: usize) -> SliceSpec {
        SliceSpec::range(0, n)
    }

    /// Normalizes a Python slice `start:stop:step` for an axis of length `n` (negative
    /// indices count from the end and out-of-range bounds are clipped, as Python does).
    pub fn from_python(
        start: Option<isize>,
        stop: Option<isize>,
        step: Option<isize>,
        n: usize,
    ) -> Result<SliceSpec> {
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(index_err("slice", "slice step cannot be zero"));
        }
        let n = as_isize(n);
        let (lower, upper) = if step > 0 { (0, n) } else { (-1, n - 1) };
        let clip = |v: Option<isize>, default: isize| match v {
            None => default,
            Some(v) => {
                let v = if v < 0 { v + n } else { v };
                v.clamp(lower, upper)
            }
        };
        let b = clip(start, if step < 0 { upper } else { lower });
        let e = clip(stop, if step < 0 { lower } else { upper });
        let spec = match usize::try_from(b) {
            Ok(b) => SliceSpec {
                start: b,
                stop: e,
                step,
            },
            Err(_) => SliceSpec {
                start: 0,
                stop: 0,
                step,
            },
        };
        Ok(if spec.is_empty() {
            SliceSpec {
                start: 0,
                stop: 0,
                step,
            }
        } else {
            spec
        })
    }

    /// Number of positions taken.
    pub fn len(&self) -> usize {
        // i128 arithmetic: no overflow whatever the fields hold.
        let (b, e, s) = (self.start as i128, self.stop as i128, self.step as i128);
        let n = if s > 0 && e > b {
            (e - b - 1) / s + 1
        } else if s < 0 && b > e {
            (b - e - 1) / (-s) + 1
        } else {
            0
        };
        usize::try_from(n).unwrap_or(0)
    }

    /// True when the slice takes a whole axis of length `n` in order (a no-op slice).
    pub fn is_full(&self, n: usize) -> bool {
        self.len() == n && (n == 0 || (self.start == 0 && (n == 1 || self.step == 1)))
    }

    /// True when no position is taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The positions taken, in order (positions below 0 or beyond `usize` are skipped).
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        let (b, s) = (self.start as i128, self.step as i128);
        (0..self.len() as i128).filter_map(move |i| usize::try_from(b + i * s).ok())
    }

    /// The equivalent `ndarray` slice, checked against an axis of length `n`.
    fn to_ndarray(self, n: usize) -> std::result::Result<Slice, String> {
        if self.step == 0 {
            return Err("step cannot be zero".into());
        }
        let len = self.len();
        if len == 0 {
            return Ok(Slice::new(0, Some(0), 1));
        }
        let (b, s) = (self.start as i128, self.step as i128);
        let last = b + (len as i128 - 1) * s;
        let (lo, hi) = if s > 0 { (b, last) } else { (last, b) };
        if lo < 0 || hi >= n as i128 {
            return Err(format!("positions {lo}..={hi} are outside 0..{n}"));
        }
        // In range of the axis, so these fit in isize; with two or more positions |step| is
        // below the axis length too.
        let step = if len == 1 { 1 } else { self.step };
        Ok(Slice::new(lo as isize, Some(hi as isize + 1), step))
    }
}

fn as_isize(v: usize) -> isize {
    isize::try_from(v).unwrap_or(isize::MAX)
}

fn standard<T: Clone>(v: ArrayViewD<'_, T>) -> ArrayD<T> {
    if v.is_standard_layout() {
        v.to_owned()
    } else {
        v.as_standard_layout().into_owned()
    }
}

/// Rows `rows` of `x` along axis 0 (clipped to its length): a slab's part of a row range.
pub fn slice_rows(x: &Chunk, rows: std::ops::Range<usize>) -> Result<Chunk> {
    let n = x.shape().first().copied().unwrap_or(0);
    let mut specs: Vec<SliceSpec> = x.shape().iter().map(|&l| SliceSpec::full(l)).collect();
    if let Some(first) = specs.first_mut() {
        *first = SliceSpec::range(rows.start.min(n), rows.end.min(n));
    }
    slice(x, &specs)
}

/// Basic slicing of a block, one [`SliceSpec`] per axis.
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::{SliceSpec, slice};
/// let x = Chunk::from_f64_vec(&[5], vec![0.0, 1.0, 2.0, 3.0, 4.0], DType::I32).unwrap();
/// let y = slice(&x, &[SliceSpec::new(4, -1, -2)]).unwrap();
/// assert_eq!(y.to_f64_vec(), vec![4.0, 2.0, 0.0]);
/// ```
pub fn slice(x: &Chunk, specs: &[SliceSpec]) -> Result<Chunk> {
    const OP: &str = "slice";
    let shape = x.shape();
    if specs.len() != shape.len() {
        return Err(index_err(
            OP,
            format!(
                "{} slice(s) given for a block of shape {}",
                specs.len(),
                fmt_shape(shape)
            ),
        ));
    }
    let mut nd = Vec::with_capacity(specs.len());
    for (a, (s, &n)) in specs.iter().zip(shape).enumerate() {
        nd.push(s.to_ndarray(n).map_err(|e| {
            index_err(
                OP,
                format!(
                    "{s:?} on axis {a} of a block of shape {}: {e}",
                    fmt_shape(shape)
                ),
            )
        })?);
    }
    Ok(crate::map_chunk!(x, a => standard(a.slice_each_axis(|d| nd[d.axis.index()]))))
}

fn take_typed<T: Element>(a: &ArrayD<T>, axis: usize, indices: &[usize]) -> Result<Chunk> {
    let std = a.as_standard_layout();
    let data = std
        .as_slice()
        .ok_or_else(|| kernel_err("take", "internal: layout"))?;
    let shape = a.shape();
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let n = shape[axis];
    let mut out = Vec::with_capacity(outer * indices.len() * inner);
    for o in 0..outer {
        for &i in indices {
            let s = (o * n + i) * inner;
            out.extend_from_slice(&data[s..s + inner]);
        }
    }
    let mut oshape = shape.to_vec();
    oshape[axis] = indices.len();
    Ok(T::wrap(from_vec("take", &oshape, out)?))
}

/// Integer-list indexing along `axis` (`numpy.take`), bounds-checked.
pub fn take(x: &Chunk, axis: usize, indices: &[usize]) -> Result<Chunk> {
    const OP: &str = "take";
    let shape = x.shape();
    if axis >= shape.len() {
        return Err(axis_err(OP, axis, shape.len()));
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= shape[axis]) {
        return Err(index_err(
            OP,
            format!(
                "index {bad} is out of bounds for axis {axis} with size {} (block shape {})",
                shape[axis],
                fmt_shape(shape)
            ),
        ));
    }
    with_chunk!(x, a => take_typed(a, axis, indices))
}

/// The common dtype of several blocks.
fn common_dtype(blocks: &[&Chunk]) -> DType {
    blocks
        .iter()
        .map(|b| b.dtype())
        .reduce(promote)
        .unwrap_or(DType::F64)
}

fn views<'a, T: Element>(op: &str, blocks: &'a [Cow<'a, Chunk>]) -> Result<Vec<ArrayViewD<'a, T>>> {
    blocks
        .iter()
        .map(|b| {
            T::view(b)
                .map(|a| a.view())
                .ok_or_else(|| kernel_err(op, "internal: dtype"))
        })
        .collect()
}

fn concat_typed<T: Element>(blocks: &[Cow<'_, Chunk>], axis: usize) -> Result<Chunk> {
    let vs = views::<T>("concatenate", blocks)?;
    let out = ndarray::concatenate(Axis(axis), &vs)
        .map_err(|e| shape_err("concatenate", e.to_string()))?;
    Ok(T::wrap(if out.is_standard_layout() {
        out
    } else {
        out.as_standard_layout().into_owned()
    }))
}

/// Joins blocks along an existing axis; dtypes are promoted if they differ.
pub fn concatenate(blocks: &[&Chunk], axis: usize) -> Result<Chunk> {
    const OP: &str = "concatenate";
    let Some(first) = blocks.first() else {
        return Err(shape_err(OP, "need at least one block"));
    };
    let nd = first.ndim();
    if axis >= nd {
        return Err(axis_err(OP, axis, nd));
    }
    for b in blocks {
        let ok = b.ndim() == nd && (0..nd).all(|a| a == axis || b.shape()[a] == first.shape()[a]);
        if !ok {
            let all: Vec<String> = blocks.iter().map(|b| fmt_shape(b.shape())).collect();
            return Err(shape_err(
                OP,
                format!(
                    "block shapes {} do not match except along axis {axis}",
                    all.join(" ")
                ),
            ));
        }
    }
    let dt = common_dtype(blocks);
    let cast: Vec<Cow<'_, Chunk>> = blocks.iter().map(|b| cast_cow(b, dt)).collect();
    dispatch_dtype!(dt, T => concat_typed::<T>(&cast, axis))
}

fn assemble_typed<T: Element>(
    blocks: &[Cow<'_, Chunk>],
    positions: &[Vec<usize>],
    offsets: &[Vec<usize>],
    shape: &[usize],
) -> Result<Chunk> {
    let vs = views::<T>("assemble", blocks)?;
    let mut out = ArrayD::from_elem(IxDyn(shape), T::default());
    for (v, pos) in vs.iter().zip(positions) {
        let mut dst = out.slice_each_axis_mut(|d| {
            let a = d.axis.index();
            let start = offsets[a][pos[a]];
            Slice::from(start..start + v.shape()[a])
        });
        dst.assign(v);
    }
    Ok(T::wrap(out))
}

/// Glues blocks laid out in C order on an n-d grid (`grid[a]` blocks along axis `a`) into
/// one block, as rechunking does. Blocks in the same grid row/column must agree on their
/// lengths; dtypes are promoted if they differ.
///
/// ```
/// use gridflow_array::{Chunk, DType};
/// use gridflow_array::kernels::assemble;
/// let a = Chunk::from_f64_vec(&[1, 2], vec![1.0, 2.0], DType::F64).unwrap();
/// let b = Chunk::from_f64_vec(&[1, 1], vec![3.0], DType::F64).unwrap();
/// let y = assemble(&[&a, &b], &[1, 2]).unwrap();
/// assert_eq!(y.shape(), &[1, 3]);
/// assert_eq!(y.to_f64_vec(), vec![1.0, 2.0, 3.0]);
/// ```
pub fn assemble(blocks: &[&Chunk], grid: &[usize]) -> Result<Chunk> {
    const OP: &str = "assemble";
    let nd = grid.len();
    let count: usize = grid.iter().product();
    if blocks.is_empty() || blocks.len() != count {
        return Err(shape_err(
            OP,
            format!(
                "{} block(s) given for a grid of {} ({count} blocks)",
                blocks.len(),
                fmt_shape(grid)
            ),
        ));
    }
    if let Some(b) = blocks.iter().find(|b| b.ndim() != nd) {
        return Err(shape_err(
            OP,
            format!(
                "block of shape {} does not fit a {nd}-d grid {}",
                fmt_shape(b.shape()),
                fmt_shape(grid)
            ),
        ));
    }
    // Grid position of every block (C order).
    let positions: Vec<Vec<usize>> = (0..count)
        .map(|mut i| {
            let mut pos = vec![0; nd];
            for a in (0..nd).rev() {
                pos[a] = i % grid[a];
                i /= grid[a];
            }
            pos
        })
        .collect();
    // Lengths along each axis from the blocks on the grid's edges (and which block set it).
    let mut sizes: Vec<Vec<usize>> = grid.iter().map(|&g| vec![0; g]).collect();
    let mut source: Vec<Vec<usize>> = grid.iter().map(|&g| vec![0; g]).collect();
    for (i, (b, pos)) in blocks.iter().zip(&positions).enumerate() {
        for a in 0..nd {
            if (0..nd).all(|o| o == a || pos[o] == 0) {
                sizes[a][pos[a]] = b.shape()[a];
                source[a][pos[a]] = i;
            }
        }
    }
    for (i, (b, pos)) in blocks.iter().zip(&positions).enumerate() {
        for a in 0..nd {
            if b.shape()[a] != sizes[a][pos[a]] {
                let j = source[a][pos[a]];
                return Err(shape_err(
                    OP,
                    format!(
                        "block {i} at grid position {pos:?} has shape {} but block {j} at {:?} \
                         has shape {}: they differ along axis {a}",
                        fmt_shape(b.shape()),
                        positions[j],
                        fmt_shape(blocks[j].shape())
                    ),
                ));
            }
        }
    }
    let offsets: Vec<Vec<usize>> = sizes
        .iter()
        .map(|s| {
            let mut acc = 0;
            s.iter()
                .map(|&n| {
                    let o = acc;
                    acc += n;
                    o
                })
                .collect()
        })
        .collect();
    let shape: Vec<usize> = sizes.iter().map(|s| s.iter().sum()).collect();
    let dt = common_dtype(blocks);
    let cast: Vec<Cow<'_, Chunk>> = blocks.iter().map(|b| cast_cow(b, dt)).collect();
    dispatch_dtype!(dt, T => assemble_typed::<T>(&cast, &positions, &offsets, &shape))
}

/// An odometer over `dims` that tracks two linear offsets with the given strides.
struct Odometer<'a> {
    dims: &'a [(usize, usize, usize)],
    idx: Vec<usize>,
    src: usize,
    dst: usize,
    done: bool,
}

impl<'a> Odometer<'a> {
    /// `dims`: (length, source stride, destination stride) per axis, outermost first.
    fn new(dims: &'a [(usize, usize, usize)]) -> Self {
        let done = dims.iter().any(|d| d.0 == 0);
        Odometer {
            dims,
            idx: vec![0; dims.len()],
            src: 0,
            dst: 0,
            done,
        }
    }
}

impl Iterator for Odometer<'_> {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let out = (self.src, self.dst);
        let mut j = self.dims.len();
        loop {
            if j == 0 {
                self.done = true;
                break;
            }
            j -= 1;
            let (n, ss, ds) = self.dims[j];
            self.idx[j] += 1;
            self.src += ss;
            self.dst += ds;
            if self.idx[j] < n {
                break;
            }
            self.idx[j] = 0;
            self.src -= ss * n;
            self.dst -= ds * n;
        }
        Some(out)
    }
}

/// Copies the C-order array `src` of shape `shape` into C order of its transpose by `perm`
/// (a valid permutation), tiling the two innermost axes involved so that both sides stay
/// in cache.
fn permute<T: Copy + Default>(src: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let total: usize = shape.iter().product();
    let mut out = vec![T::default(); total];
    if total == 0 {
        return out;
    }
    let nd = shape.len();
    let mut istride = vec![1usize; nd];
    for a in (0..nd.saturating_sub(1)).rev() {
        istride[a] = istride[a + 1] * shape[a + 1];
    }
    // Output axes as (length, source stride), length-1 axes dropped, and neighbours that
    // are contiguous in the source too merged.
    let mut axes: Vec<(usize, usize)> = Vec::with_capacity(nd);
    for &p in perm {
        let (n, ss) = (shape[p], istride[p]);
        if n == 1 {
            continue;
        }
        match axes.last_mut() {
            Some(last) if last.1 == ss * n => *last = (last.0 * n, ss),
            _ => axes.push((n, ss)),
        }
    }
    if axes.is_empty() {
        out.copy_from_slice(src);
        return out;
    }
    let m = axes.len();
    let mut dstride = vec![1usize; m];
    for j in (0..m - 1).rev() {
        dstride[j] = dstride[j + 1] * axes[j + 1].0;
    }
    let (ln, lss) = axes[m - 1];
    if lss == 1 {
        // Contiguous output rows: plain row copies.
        let outer: Vec<(usize, usize, usize)> = (0..m - 1)
            .map(|j| (axes[j].0, axes[j].1, dstride[j]))
            .collect();
        for (s, d) in Odometer::new(&outer) {
            out[d..d + ln].copy_from_slice(&src[s..s + ln]);
        }
        return out;
    }
    // The output axis with the smallest source stride is tiled against the last one.
    let q = (0..m - 1).min_by_key(|&j| axes[j].1).unwrap_or(0);
    let (qn, qss, qds) = (axes[q].0, axes[q].1, dstride[q]);
    let outer: Vec<(usize, usize, usize)> = (0..m - 1)
        .filter(|&j| j != q)
        .map(|j| (axes[j].0, axes[j].1, dstride[j]))
        .collect();
    const B: usize = 32;
    for (s, d) in Odometer::new(&outer) {
        for q0 in (0..qn).step_by(B) {
            let q1 = (q0 + B).min(qn);
            for l0 in (0..ln).step_by(B) {
                let l1 = (l0 + B).min(ln);
                for qi in q0..q1 {
                    let (sb, db) = (s + qi * qss, d + qi * qds);
                    let dst = &mut out[db + l0..db + l1];
                    for (k, o) in dst.iter_mut().enumerate() {
                        *o = src[sb + (l0 + k) * lss];
                    }
                }
            }
        }
    }
    out
}

fn transpose_typed<T: Element>(a: &ArrayD<T>, perm: &[usize]) -> Result<Chunk> {
    let std = a.as_standard_layout();
    let data = std
        .as_slice()
        .ok_or_else(|| kernel_err("transpose", "internal: layout"))?;
    let oshape: Vec<usize> = perm.iter().map(|&p| a.shape()[p]).collect();
    Ok(T::wrap(from_vec(
        "transpose",
        &oshape,
        permute(data, a.shape(), perm),
    )?))
}

/// Permutes the axes (`numpy.transpose(x, perm)`); the result is in standard layout.
pub fn transpose(x: &Chunk, perm: &[usize]) -> Result<Chunk> {
    const OP: &str = "transpose";
    let nd = x.ndim();
    if perm.len() != nd {
        return Err(shape_err(
            OP,
            format!(
                "axes {perm:?} don't match a block of shape {}",
                fmt_shape(x.shape())
            ),
        ));
    }
    check_axes(OP, perm, nd)?;
    with_chunk!(x, a => transpose_typed(a, perm))
}

/// Broadcasts a block to `shape` (`numpy.broadcast_to`), materialized in standard layout.
pub fn broadcast_to(x: &Chunk, shape: &[usize]) -> Result<Chunk> {
    const OP: &str = "broadcast_to";
    let err = || {
        shape_err(
            OP,
            format!(
                "cannot broadcast a block of shape {} to shape {}",
                fmt_shape(x.shape()),
                fmt_shape(shape)
            ),
        )
    };
    with_chunk!(x, a => {
        let v = a.broadcast(IxDyn(shape)).ok_or_else(err)?;
        Ok(Element::wrap(standard(v)))
    })
}

/// Removes length-1 axes (`numpy.squeeze(x, axes)`).
pub fn drop_axes(x: &Chunk, axes: &[usize]) -> Result<Chunk> {
    const OP: &str = "drop_axes";
    let shape = x.shape();
    check_axes(OP, axes, shape.len())?;
    if let Some(&a) = axes.iter().find(|&&a| shape[a] != 1) {
        return Err(shape_err(
            OP,
            format!(
                "cannot drop axis {a} of length {} (block shape {})",
                shape[a],
                fmt_shape(shape)
            ),
        ));
    }
    let new: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|(a, _)| !axes.contains(a))
        .map(|(_, &n)| n)
        .collect();
    x.reshape(&new)
}

/// Inserts length-1 axes at `axes`, positions in the output (`numpy.expand_dims`).
pub fn expand_axes(x: &Chunk, axes: &[usize]) -> Result<Chunk> {
    const OP: &str = "expand_axes";
    let shape = x.shape();
    let nd = shape.len() + axes.len();
    check_axes(OP, axes, nd)?;
    let mut it = shape.iter();
    let new: Vec<usize> = (0..nd)
        .map(|a| {
            if axes.contains(&a) {
                1
            } else {
                it.next().copied().unwrap_or(1)
            }
        })
        .collect();
    x.reshape(&new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(shape: &[usize], dt: DType) -> Chunk {
        let n: usize = shape.iter().product();
        Chunk::from_f64_vec(shape, (0..n).map(|i| i as f64).collect(), dt).unwrap()
    }

    #[test]
    fn slice_spec_lengths_and_python_normalization() {
        assert_eq!(SliceSpec::range(3, 3).len(), 0);
        assert!(SliceSpec::full(4).is_full(4) && !SliceSpec::full(4).is_full(5));
        assert!(SliceSpec::stepped(0, 1, 7).is_full(1) && SliceSpec::range(2, 2).is_full(0));
        assert!(!SliceSpec::new(3, -1, -1).is_full(4) && !SliceSpec::range(1, 4).is_full(3));
        assert_eq!(SliceSpec::range(5, 3).len(), 0);
        assert_eq!(SliceSpec::new(0, 10, 3).len(), 4);
        assert_eq!(
            SliceSpec::new(9, -1, -3).indices().collect::<Vec<_>>(),
            vec![9, 6, 3, 0]
        );
        assert_eq!(
            SliceSpec::stepped(2, 3, 2).indices().collect::<Vec<_>>(),
            vec![2, 4, 6]
        );
        let py = |a, b, c| SliceSpec::from_python(a, b, c, 5).unwrap();
        assert_eq!(py(None, None, None), SliceSpec::full(5));
        assert_eq!(py(Some(-2), None, None), SliceSpec::range(3, 5));
        assert_eq!(
            py(Some(3), None, Some(-1)).indices().collect::<Vec<_>>(),
            vec![3, 2, 1, 0]
        );
        assert_eq!(
            py(None, Some(1), Some(-2)).indices().collect::<Vec<_>>(),
            vec![4, 2]
        );
        assert_eq!(py(Some(-100), None, Some(-1)).len(), 0);
        assert_eq!(py(Some(100), Some(200), None).len(), 0);
        assert!(SliceSpec::from_python(None, None, Some(0), 5).is_err());
        // Extreme fields never overflow.
        let x = iota(&[4], DType::U8);
        for sp in [
            SliceSpec::new(usize::MAX, isize::MIN, isize::MIN),
            SliceSpec::new(3, isize::MIN, -1),
            SliceSpec::new(0, isize::MAX, isize::MAX),
            SliceSpec::new(usize::MAX, -1, -1),
            SliceSpec::new(3, -1, isize::MIN),
        ] {
            let _ = sp.len();
            let _ = slice(&x, &[sp]);
        }
        assert!(slice(&x, &[SliceSpec::new(3, isize::MIN, -1)]).is_err());
        assert_eq!(
            slice(&x, &[SliceSpec::new(3, -1, isize::MIN)])
                .unwrap()
                .to_f64_vec(),
            vec![3.0]
        );
        assert_eq!(
            slice(&x, &[SliceSpec::new(0, isize::MAX, isize::MAX)])
                .unwrap()
                .to_f64_vec(),
            vec![0.0]
        );
    }

    #[test]
    fn slicing_with_negative_step() {
        let x = iota(&[3, 5], DType::F32);
        let y = slice(&x, &[SliceSpec::new(2, -1, -1), SliceSpec::new(4, 0, -2)]).unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        assert_eq!(y.to_f64_vec(), vec![14.0, 12.0, 9.0, 7.0, 4.0, 2.0]);
        assert_eq!(
            y.as_array::<f32>().map(|a| a.is_standard_layout()),
            Some(true)
        );
        let e = slice(&x, &[SliceSpec::full(3), SliceSpec::new(5, -1, -1)]).unwrap_err();
        assert!(matches!(e, ArrayError::Index { .. }), "{e}");
        assert!(slice(&x, &[SliceSpec::full(3)]).is_err());
        assert!(slice(&x, &[SliceSpec::full(3), SliceSpec::new(0, 5, 0)]).is_err());
        let empty = slice(&x, &[SliceSpec::range(1, 1), SliceSpec::full(5)]).unwrap();
        assert_eq!(empty.shape(), &[0, 5]);
        // Every from_python slice agrees with a direct index computation.
        let v = iota(&[7], DType::I64);
        for a in [None, Some(-9), Some(-3), Some(0), Some(2), Some(6), Some(9)] {
            for b in [None, Some(-9), Some(-1), Some(0), Some(3), Some(9)] {
                for s in [Some(-3), Some(-1), Some(1), Some(2)] {
                    let sp = SliceSpec::from_python(a, b, s, 7).unwrap();
                    let want: Vec<f64> = sp.indices().map(|i| i as f64).collect();
                    assert_eq!(
                        slice(&v, &[sp]).unwrap().to_f64_vec(),
                        want,
                        "{a:?} {b:?} {s:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn take_is_bounds_checked() {
        let x = iota(&[2, 3, 2], DType::U16);
        let y = take(&x, 1, &[2, 0, 2]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2]);
        assert_eq!(
            y.to_f64_vec(),
            vec![
                4.0, 5.0, 0.0, 1.0, 4.0, 5.0, 10.0, 11.0, 6.0, 7.0, 10.0, 11.0
            ]
        );
        assert_eq!(take(&x, 0, &[]).unwrap().shape(), &[0, 3, 2]);
        assert!(matches!(take(&x, 1, &[3]), Err(ArrayError::Index { .. })));
        assert!(matches!(take(&x, 3, &[0]), Err(ArrayError::Axis { .. })));
    }

    #[test]
    fn concatenate_promotes_and_checks() {
        let a = iota(&[2, 2], DType::I8);
        let b = iota(&[1, 2], DType::F32);
        let y = concatenate(&[&a, &b], 0).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.to_f64_vec(), vec![0.0, 1.0, 2.0, 3.0, 0.0, 1.0]);
        let e = concatenate(&[&a, &b], 1).unwrap_err().to_string();
        assert!(e.contains("(2,2)") && e.contains("(1,2)"), "{e}");
        assert!(concatenate(&[], 0).is_err());
        assert!(concatenate(&[&a], 2).is_err());
    }

    #[test]
    fn assemble_two_by_three_grid() {
        // A 5x7 array cut in rows [2, 3] and columns [3, 1, 3].
        let full = iota(&[5, 7], DType::I32);
        let rows = [(0, 2), (2, 5)];
        let cols = [(0, 3), (3, 4), (4, 7)];
        let mut blocks = vec![];
        for &(r0, r1) in &rows {
            for &(c0, c1) in &cols {
                blocks.push(
                    slice(&full, &[SliceSpec::range(r0, r1), SliceSpec::range(c0, c1)]).unwrap(),
                );
            }
        }
        let refs: Vec<&Chunk> = blocks.iter().collect();
        let y = assemble(&refs, &[2, 3]).unwrap();
        assert_eq!(y, full);
        // Mismatched neighbours and wrong counts are errors.
        let mut bad = refs.clone();
        let odd = iota(&[2, 2], DType::I32);
        bad[1] = &odd;
        let e = assemble(&bad, &[2, 3]).unwrap_err().to_string();
        assert!(e.contains("assemble") && e.contains("(2,2)"), "{e}");
        assert!(assemble(&refs[..5], &[2, 3]).is_err());
        // Mixed dtypes are promoted.
        let f = blocks[5].astype(DType::F64);
        let mut mixed = refs.clone();
        mixed[5] = &f;
        let y = assemble(&mixed, &[2, 3]).unwrap();
        assert_eq!((y.dtype(), y.to_f64_vec()), (DType::F64, full.to_f64_vec()));
    }

    #[test]
    fn permute_matches_ndarray() {
        let shapes: [&[usize]; 6] = [
            &[3, 1, 70, 2],
            &[40, 33],
            &[2, 3, 4, 5],
            &[1, 1],
            &[0, 3],
            &[65, 1, 37],
        ];
        for shape in shapes {
            let x = iota(shape, DType::I32);
            let a = x.as_array::<i32>().unwrap();
            // Every permutation of the axes.
            let nd = shape.len();
            let mut perms = vec![vec![]];
            for _ in 0..nd {
                perms = perms
                    .into_iter()
                    .flat_map(|p: Vec<usize>| {
                        let free: Vec<usize> = (0..nd).filter(|i| !p.contains(i)).collect();
                        free.into_iter()
                            .map(|i| [p.clone(), vec![i]].concat())
                            .collect::<Vec<_>>()
                    })
                    .collect();
            }
            for perm in perms {
                let want = a
                    .view()
                    .permuted_axes(IxDyn(&perm))
                    .as_standard_layout()
                    .into_owned();
                let got = transpose(&x, &perm).unwrap();
                assert_eq!(got.as_array::<i32>().unwrap(), &want, "{shape:?} {perm:?}");
            }
        }
    }

    #[test]
    fn transpose_broadcast_and_axes() {
        let x = iota(&[2, 3, 4], DType::F64);
        let t = transpose(&x, &[2, 0, 1]).unwrap();
        assert_eq!(t.shape(), &[4, 2, 3]);
        let ta = t.as_array::<f64>().unwrap();
        assert!(ta.is_standard_layout());
        assert_eq!(ta[[3, 1, 2]], 1.0 * 12.0 + 2.0 * 4.0 + 3.0);
        assert!(transpose(&x, &[0, 1]).is_err());
        assert!(transpose(&x, &[0, 1, 1]).is_err());

        let r = iota(&[3], DType::U8);
        let b = broadcast_to(&r, &[2, 3]).unwrap();
        assert_eq!(b.to_f64_vec(), vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        let e = broadcast_to(&r, &[4]).unwrap_err().to_string();
        assert!(e.contains("(3,)") && e.contains("(4,)"), "{e}");

        let k = iota(&[2, 1, 3, 1], DType::Bool);
        let d = drop_axes(&k, &[1, 3]).unwrap();
        assert_eq!(d.shape(), &[2, 3]);
        assert!(drop_axes(&k, &[0]).is_err());
        assert!(drop_axes(&k, &[4]).is_err());
        let e = expand_axes(&d, &[0, 3]).unwrap();
        assert_eq!(e.shape(), &[1, 2, 3, 1]);
        assert_eq!(e.to_f64_vec(), d.to_f64_vec());
        assert!(expand_axes(&d, &[4]).is_err());
    }
}
