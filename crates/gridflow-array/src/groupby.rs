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
use crate::dtype::DType;
use crate::error::{ArrayError, Result};
pub use crate::kernels::group::{GroupOp, GroupPartial, GroupStat};
use crate::ops::ArrayOp;
use gridflow_graph::{Task, Tokenizer};

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
                    ArrayOp::Group(GroupOp::Partial(GroupPartial::new(
                        axis,
                        ngroups,
                        stat,
                        opts.skipna,
                        codes[s..s + n].to_vec(),
                    ))),
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
                        partial: GroupPartial::new(
                            axis,
                            (hi - lo + 1) as usize,
                            stat,
                            opts.skipna,
                            local,
                        ),
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
    use crate::Chunk;

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
