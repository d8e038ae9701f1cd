//! Chunk specifications as users write them for Dask (`chunks=` of `dask.array.ones` and
//! friends), checked the way Dask's `normalize_chunks` checks them before anything is
//! built: the right number of axes, positive integer sizes, `-1`/`None` for a whole axis,
//! explicit blocks that add up to the axis length.

use crate::array::Chunking;
use crate::{ArrayError, Result};

/// A number in a chunk specification: a Python `int` or `float` (an integral float such as
/// `4.0` is accepted, as Dask accepts it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChunkNumber {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

/// One axis of a chunk specification.
#[derive(Clone, Debug, PartialEq)]
pub enum AxisChunks {
    /// `"auto"`: blocks of up to [`AUTO_BLOCK`] elements along the axis.
    Auto,
    /// `None` (or the size `-1`): one block over the whole axis.
    Whole,
    /// A block length; the last block may be shorter.
    Size(ChunkNumber),
    /// Explicit block lengths, which must add up to the axis length.
    Blocks(Vec<ChunkNumber>),
}

/// A chunk specification for a whole array.
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkSpec {
    /// The same for every axis: `chunks=5`, `chunks=-1`, `chunks="auto"`.
    Uniform(AxisChunks),
    /// One entry per axis: `chunks=(5, None)`, `chunks=((3, 7), 5)`. For a 1-d shape a
    /// tuple of several sizes is that axis's blocks (`chunks=(3, 7)`), as in Dask.
    PerAxis(Vec<AxisChunks>),
}

/// Block length along an axis for [`AxisChunks::Auto`].
pub const AUTO_BLOCK: usize = 4096;

fn error(op: &str, detail: String) -> ArrayError {
    ArrayError::Chunks {
        op: op.to_owned(),
        detail,
    }
}

/// The integer value of `n`, refusing non-integral floats as Dask does.
fn integer(op: &str, n: ChunkNumber) -> Result<i64> {
    match n {
        ChunkNumber::Int(i) => Ok(i),
        ChunkNumber::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 => {
            // Integral and well inside i64: the conversion is exact.
            Ok(x as i64)
        }
        ChunkNumber::Float(x) => Err(error(
            op,
            format!("chunks can only contain integers, got {x}"),
        )),
    }
}

fn show(n: &ChunkNumber) -> String {
    match n {
        ChunkNumber::Int(i) => i.to_string(),
        ChunkNumber::Float(x) => format!("{x:?}"),
    }
}

impl ChunkSpec {
    /// Checks the specification against `shape` and turns it into a [`Chunking`]; `op`
    /// names the operation in errors.
    ///
    /// ```
    /// use gridflow_array::chunkspec::{AxisChunks, ChunkNumber, ChunkSpec};
    /// use gridflow_array::{Chunking, normalize_chunks};
    ///
    /// let spec = ChunkSpec::PerAxis(vec![AxisChunks::Whole, AxisChunks::Size(ChunkNumber::Int(3))]);
    /// let chunking = spec.resolve("ones", &[10, 10])?;
    /// assert_eq!(normalize_chunks("ones", &[10, 10], &chunking)?, vec![vec![10], vec![3, 3, 3, 1]]);
    ///
    /// let wrong = ChunkSpec::PerAxis(vec![AxisChunks::Size(ChunkNumber::Int(5))]);
    /// assert!(wrong.resolve("ones", &[10, 10]).is_err());
    /// assert!(ChunkSpec::Uniform(AxisChunks::Size(ChunkNumber::Int(0))).resolve("ones", &[10]).is_err());
    /// # Ok::<(), gridflow_array::ArrayError>(())
    /// ```
    pub fn resolve(&self, op: &str, shape: &[usize]) -> Result<Chunking> {
        let axes: Vec<AxisChunks> = match self {
            ChunkSpec::Uniform(a) => vec![a.clone(); shape.len()],
            ChunkSpec::PerAxis(axes)
                if shape.len() == 1
                    && axes.len() > 1
                    && axes.iter().all(|a| matches!(a, AxisChunks::Size(_))) =>
            {
                let sizes = axes
                    .iter()
                    .filter_map(|a| match a {
                        AxisChunks::Size(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                vec![AxisChunks::Blocks(sizes)]
            }
            ChunkSpec::PerAxis(axes) => axes.clone(),
        };
        if axes.len() != shape.len() {
            return Err(error(
                op,
                format!(
                    "chunks and shape must have the same number of dimensions: got chunks \
                     for {} axes and shape {shape:?}",
                    axes.len()
                ),
            ));
        }
        let mut sizes = Vec::with_capacity(axes.len());
        let mut explicit: Vec<Option<Vec<usize>>> = Vec::with_capacity(axes.len());
        for (axis, (a, &n)) in axes.iter().zip(shape).enumerate() {
            match a {
                AxisChunks::Auto => {
                    sizes.push(n.clamp(1, AUTO_BLOCK));
                    explicit.push(None);
                }
                AxisChunks::Whole => {
                    sizes.push(0);
                    explicit.push(None);
                }
                AxisChunks::Size(c) => {
                    let c = integer(op, *c)?;
                    let size = match c {
                        -1 => 0,
                        c if c > 0 => usize::try_from(c).unwrap_or(usize::MAX),
                        c => {
                            return Err(error(
                                op,
                                format!(
                                    "chunk sizes must be positive (or -1/None for the whole \
                                     axis), got {c} along axis {axis}"
                                ),
                            ));
                        }
                    };
                    sizes.push(size);
                    explicit.push(None);
                }
                AxisChunks::Blocks(blocks) => {
                    sizes.push(0);
                    explicit.push(Some(Self::blocks(op, axis, blocks, n)?));
                }
            }
        }
        if explicit.iter().all(Option::is_none) {
            return Ok(Chunking::Sizes(sizes));
        }
        let regular = normalize_chunks_sizes(op, shape, &sizes)?;
        Ok(Chunking::Explicit(
            explicit
                .into_iter()
                .zip(regular)
                .map(|(e, r)| e.unwrap_or(r))
                .collect(),
        ))
    }

    /// Explicit blocks of one axis: non-negative integers adding up to `n`.
    fn blocks(op: &str, axis: usize, blocks: &[ChunkNumber], n: usize) -> Result<Vec<usize>> {
        let listed = || blocks.iter().map(show).collect::<Vec<_>>().join(", ");
        if blocks.is_empty() {
            return Err(error(
                op,
                format!("empty tuples are not allowed in chunks (axis {axis})"),
            ));
        }
        let mut out = Vec::with_capacity(blocks.len());
        let mut total: usize = 0;
        for b in blocks {
            let b = integer(op, *b)?;
            let Ok(b) = usize::try_from(b) else {
                return Err(error(
                    op,
                    format!(
                        "block sizes must not be negative: ({}) along axis {axis}",
                        listed()
                    ),
                ));
            };
            total = total.saturating_add(b);
            out.push(b);
        }
        if total != n {
            return Err(error(
                op,
                format!(
                    "chunks ({}) along axis {axis} do not add up to the shape: {total} != {n}",
                    listed()
                ),
            ));
        }
        Ok(out)
    }
}

fn normalize_chunks_sizes(op: &str, shape: &[usize], sizes: &[usize]) -> Result<Vec<Vec<usize>>> {
    crate::array::normalize_chunks(op, shape, &Chunking::Sizes(sizes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize_chunks;
    use AxisChunks::{Auto, Blocks, Size, Whole};
    use ChunkNumber::{Float, Int};

    fn blocks(spec: ChunkSpec, shape: &[usize]) -> Result<Vec<Vec<usize>>> {
        normalize_chunks("ones", shape, &spec.resolve("ones", shape)?)
    }

    fn message(spec: ChunkSpec, shape: &[usize]) -> String {
        match spec.resolve("ones", shape) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    // The expected chunks are what `dask.array.ones(shape, chunks=...).chunks` gives.
    #[test]
    fn valid_specifications_give_dasks_blocks() {
        let per = ChunkSpec::PerAxis;
        let uni = ChunkSpec::Uniform;
        let cases: Vec<(ChunkSpec, Vec<usize>, Vec<Vec<usize>>)> = vec![
            (
                uni(Size(Int(5))),
                vec![10, 10],
                vec![vec![5, 5], vec![5, 5]],
            ),
            (uni(Size(Int(-1))), vec![10], vec![vec![10]]),
            (uni(Size(Float(2.0))), vec![10], vec![vec![2; 5]]),
            (uni(Size(Int(20))), vec![10], vec![vec![10]]),
            (uni(Size(Int(5))), vec![0], vec![vec![0]]),
            (uni(Auto), vec![10], vec![vec![10]]),
            (
                per(vec![Whole, Size(Int(3))]),
                vec![10, 10],
                vec![vec![10], vec![3, 3, 3, 1]],
            ),
            (
                per(vec![Size(Int(3)), Size(Int(7))]),
                vec![10],
                vec![vec![3, 7]],
            ),
            (per(vec![Whole]), vec![10], vec![vec![10]]),
            (
                per(vec![Blocks(vec![Int(5), Int(5)]), Size(Int(-1))]),
                vec![10, 10],
                vec![vec![5, 5], vec![10]],
            ),
            (
                per(vec![Blocks(vec![Float(3.0), Int(7)])]),
                vec![10],
                vec![vec![3, 7]],
            ),
        ];
        for (spec, shape, want) in cases {
            assert_eq!(blocks(spec.clone(), &shape).unwrap(), want, "{spec:?}");
        }
    }

    #[test]
    fn invalid_specifications_are_refused_naming_the_problem() {
        let m = message(ChunkSpec::PerAxis(vec![Size(Int(5))]), &[10, 10]);
        assert!(
            m.contains("chunks and shape must have the same number of dimensions"),
            "{m}"
        );
        for bad in [0, -2, i64::MIN] {
            let m = message(ChunkSpec::Uniform(Size(Int(bad))), &[10]);
            assert!(
                m.contains("must be positive") && m.contains(&bad.to_string()),
                "{m}"
            );
        }
        for bad in [2.5, f64::NAN, f64::INFINITY, 1e300] {
            let m = message(ChunkSpec::Uniform(Size(Float(bad))), &[10]);
            assert!(m.contains("chunks can only contain integers"), "{m}");
        }
        let m = message(
            ChunkSpec::PerAxis(vec![Blocks(vec![Int(3), Int(3)])]),
            &[10],
        );
        assert!(
            m.contains("(3, 3) along axis 0 do not add up to the shape: 6 != 10"),
            "{m}"
        );
        let m = message(
            ChunkSpec::PerAxis(vec![Blocks(vec![Int(13), Int(-3)])]),
            &[10],
        );
        assert!(m.contains("must not be negative"), "{m}");
        let m = message(ChunkSpec::PerAxis(vec![Blocks(vec![])]), &[10]);
        assert!(m.contains("empty tuples"), "{m}");
        let huge = ChunkSpec::PerAxis(vec![Blocks(vec![
            Int(i64::MAX),
            Int(i64::MAX),
            Int(i64::MAX),
        ])]);
        assert!(message(huge, &[10]).contains("do not add up"));
    }
}
