//! Reductions as trees: reduce each block to a partial, combine partials `split_every` at a
//! time, then finalize (Dask's `reduction` with `split_every`).

use crate::array::{ChunkedArray, block_indices, check_axis, offsets};
use crate::kernels::{self, ArgContext, ReduceOp, ReduceSpec};
use crate::ops::ArrayOp;
use crate::{ArrayError, DType, Result};
use gridflow_graph::{Key, Task, Tokenizer};
use std::sync::Arc;

/// Options of a reduction.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceOptions {
    /// Axes to reduce (negative counts from the end); `None` reduces all of them.
    pub axes: Option<Vec<isize>>,
    /// Keep reduced axes with length 1.
    pub keepdims: bool,
    /// Skip NaNs (xarray's default for floats is `true`).
    pub skipna: bool,
    /// Delta degrees of freedom for `var`/`std`.
    pub ddof: usize,
    /// How many partials one combine task merges at most (Dask's `split_every`; default 8).
    pub split_every: usize,
}

impl Default for ReduceOptions {
    fn default() -> Self {
        ReduceOptions {
            axes: None,
            keepdims: false,
            skipna: true,
            ddof: 0,
            split_every: 8,
        }
    }
}

impl ReduceOptions {
    /// Options reducing `axes` (`None` for all).
    pub fn axes(axes: Option<&[isize]>) -> ReduceOptions {
        ReduceOptions {
            axes: axes.map(<[isize]>::to_vec),
            ..ReduceOptions::default()
        }
    }
}

fn normalize_axes(op: &str, axes: Option<&[isize]>, ndim: usize) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = match axes {
        None => (0..ndim).collect(),
        Some(a) => a
            .iter()
            .map(|&x| check_axis(op, x, ndim))
            .collect::<Result<_>>()?,
    };
    out.sort_unstable();
    let before = out.len();
    out.dedup();
    if out.len() != before {
        return Err(ArrayError::Shape {
            op: op.to_owned(),
            detail: format!("repeated axis in {axes:?}"),
        });
    }
    Ok(out)
}

macro_rules! reductions {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(&self, axes: Option<&[isize]>) -> Result<ChunkedArray> {
                self.reduce(ReduceOp::$op, &ReduceOptions::axes(axes))
            }
        )*
    };
}

impl ChunkedArray {
    reductions! {
        /// Sum over `axes` (NaNs skipped; float32 accumulates in float64).
        sum => Sum,
        /// Product over `axes`.
        prod => Prod,
        /// Mean over `axes` (NaNs skipped).
        mean => Mean,
        /// Minimum over `axes` (NaNs skipped).
        min => Min,
        /// Maximum over `axes` (NaNs skipped).
        max => Max,
        /// Number of non-NaN values over `axes`.
        count => Count,
        /// True if any value is true.
        any => Any,
        /// True if all values are true.
        all => All,
    }

    /// Variance with `ddof` delta degrees of freedom.
    pub fn var(&self, axes: Option<&[isize]>, ddof: usize) -> Result<ChunkedArray> {
        self.reduce(
            ReduceOp::Var,
            &ReduceOptions {
                ddof,
                ..ReduceOptions::axes(axes)
            },
        )
    }

    /// Standard deviation with `ddof` delta degrees of freedom.
    pub fn std(&self, axes: Option<&[isize]>, ddof: usize) -> Result<ChunkedArray> {
        self.reduce(
            ReduceOp::Std,
            &ReduceOptions {
                ddof,
                ..ReduceOptions::axes(axes)
            },
        )
    }

    /// Index of the minimum along `axis` (or in the flattened array for `None`).
    pub fn argmin(&self, axis: Option<isize>) -> Result<ChunkedArray> {
        let axes = axis.map(|a| vec![a]);
        self.reduce(
            ReduceOp::ArgMin,
            &ReduceOptions {
                axes,
                ..ReduceOptions::default()
            },
        )
    }

    /// Index of the maximum along `axis` (or in the flattened array for `None`).
    pub fn argmax(&self, axis: Option<isize>) -> Result<ChunkedArray> {
        let axes = axis.map(|a| vec![a]);
        self.reduce(
            ReduceOp::ArgMax,
            &ReduceOptions {
                axes,
                ..ReduceOptions::default()
            },
        )
    }

    /// Any reduction, with all options.
    pub fn reduce(&self, op: ReduceOp, opts: &ReduceOptions) -> Result<ChunkedArray> {
        let label = op.name();
        let axes = normalize_axes(label, opts.axes.as_deref(), self.ndim())?;
        let dtype = kernels::reduce_result_dtype(op, self.dtype)?;
        let is_arg = matches!(op, ReduceOp::ArgMin | ReduceOp::ArgMax);
        if is_arg && axes.len() > 1 && axes.len() != self.ndim() {
            return Err(ArrayError::Shape {
                op: label.to_owned(),
                detail: format!(
                    "reduces one axis or all of them, not axes {axes:?} of shape {:?}",
                    self.shape
                ),
            });
        }
        if opts.split_every < 2 {
            return Err(ArrayError::Shape {
                op: label.to_owned(),
                detail: format!("split_every must be at least 2, not {}", opts.split_every),
            });
        }
        let spec = ReduceSpec {
            op,
            axes: axes.clone(),
            skipna: opts.skipna,
            ddof: opts.ddof,
        };
        let layer = self.partials(&spec, opts)?;
        self.finalized(layer, &spec, opts, dtype)
    }

    /// The NaN-skipping sum and the count of valid values over `axes`, from one reduction
    /// (the partials of a mean): the block is read and reduced once for both, where `sum` and
    /// `count` would each need it (xarray's weighted mean needs both). Float arrays only.
    ///
    /// ```
    /// use gridflow_array::{ChunkedArray, DType};
    /// let x = ChunkedArray::ones(&[4, 6], [2, 3], DType::F64)?;
    /// let (sum, count) = x.sum_and_count(Some(&[1]))?;
    /// assert_eq!(sum.compute()?.to_f64_vec(), vec![6.0; 4]);
    /// assert_eq!(count.compute()?.to_f64_vec(), vec![6.0; 4]);
    /// # Ok::<(), gridflow_array::ArrayError>(())
    /// ```
    pub fn sum_and_count(&self, axes: Option<&[isize]>) -> Result<(ChunkedArray, ChunkedArray)> {
        if !self.dtype.is_float() {
            return Err(ArrayError::DType {
                op: "sum_and_count".into(),
                detail: format!("needs a float array, not {}", self.dtype),
            });
        }
        let opts = ReduceOptions::axes(axes);
        let axes = normalize_axes("sum_and_count", opts.axes.as_deref(), self.ndim())?;
        let spec = |op| ReduceSpec {
            op,
            axes: axes.clone(),
            skipna: true,
            ddof: 0,
        };
        let layer = self.partials(&spec(ReduceOp::Mean), &opts)?;
        let sum_dtype = kernels::reduce_result_dtype(ReduceOp::Sum, self.dtype)?;
        let count_dtype = kernels::reduce_result_dtype(ReduceOp::Count, self.dtype)?;
        Ok((
            self.finalized(layer.clone(), &spec(ReduceOp::Sum), &opts, sum_dtype)?,
            self.finalized(layer, &spec(ReduceOp::Count), &opts, count_dtype)?,
        ))
    }

    /// The layer of partials of `spec` over its axes: one per block, then combined until one
    /// remains along every reduced axis.
    fn partials(
        &self,
        spec: &ReduceSpec,
        opts: &ReduceOptions,
    ) -> Result<Arc<crate::array::Layer>> {
        let label = spec.op.name();
        let axes = spec.axes.clone();
        let is_arg = spec.op.is_arg();
        let spec_text = format!("{spec:?}{}{}", opts.keepdims, opts.split_every);

        // Level 0: one partial per block.
        let block_offsets: Vec<Vec<usize>> = self.chunks.iter().map(|c| offsets(c)).collect();
        let name0 = Tokenizer::new(&format!("{label}-chunk"))
            .str(&spec_text)
            .str(&self.name)
            .finish();
        let mut grid = self.numblocks();
        let src = self.clone();
        let shape = self.shape.clone();
        let level0 = ChunkedArray::from_tasks(
            name0,
            shape.clone(),
            self.chunks.clone(),
            self.dtype,
            vec![self.layer.clone()],
            |idx| {
                let ctx = is_arg.then(|| {
                    Box::new(ArgContext {
                        block_offset: idx
                            .iter()
                            .enumerate()
                            .map(|(a, &i)| block_offsets[a][i])
                            .collect(),
                        array_shape: shape.clone(),
                    })
                });
                Ok(Task::new(
                    ArrayOp::ReduceBlock {
                        spec: spec.clone(),
                        ctx,
                    },
                    vec![src.block_key(idx)],
                ))
            },
        )?;
        let mut layer = level0.layer;

        // Combine levels until one partial remains along every reduced axis.
        let multi: Vec<usize> = axes.iter().copied().filter(|&a| grid[a] > 1).collect();
        let fan_in = if multi.is_empty() {
            2
        } else {
            ((opts.split_every as f64)
                .powf(1.0 / multi.len() as f64)
                .round() as usize)
                .max(2)
        };
        let mut depth = 0;
        while axes.iter().any(|&a| grid[a] > 1) {
            depth += 1;
            let new_grid: Vec<usize> = grid
                .iter()
                .enumerate()
                .map(|(a, &n)| {
                    if axes.contains(&a) {
                        n.div_ceil(fan_in)
                    } else {
                        n
                    }
                })
                .collect();
            let name: Arc<str> = Tokenizer::new(&format!("{label}-combine"))
                .str(&spec_text)
                .str(&layer.name)
                .u64(depth)
                .finish()
                .into();
            let mut tasks = Vec::new();
            for j in block_indices(&new_grid) {
                let ranges: Vec<(usize, usize)> = j
                    .iter()
                    .enumerate()
                    .map(|(a, &x)| {
                        if axes.contains(&a) {
                            (x * fan_in, ((x + 1) * fan_in).min(grid[a]))
                        } else {
                            (x, x + 1)
                        }
                    })
                    .collect();
                let sub: Vec<usize> = ranges.iter().map(|(s, e)| e - s).collect();
                let inputs: Vec<Key> = block_indices(&sub)
                    .into_iter()
                    .map(|r| {
                        let i: Vec<u32> = r
                            .iter()
                            .zip(&ranges)
                            .map(|(d, (s, _))| (s + d) as u32)
                            .collect();
                        Key::with_shared_name(&layer.name, &i)
                    })
                    .collect();
                let key = Key::with_shared_name(&name, &crate::array::key_index(&j));
                tasks.push((
                    key,
                    Task::new(ArrayOp::ReduceCombine { spec: spec.clone() }, inputs),
                ));
            }
            layer = Arc::new(crate::array::Layer::new(name, tasks, vec![layer]));
            grid = new_grid;
        }

        Ok(layer)
    }

    /// One output block per block of the kept axes, finalizing the partials of `layer`.
    fn finalized(
        &self,
        layer: Arc<crate::array::Layer>,
        spec: &ReduceSpec,
        opts: &ReduceOptions,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        let label = spec.op.name();
        let axes = spec.axes.clone();
        let spec_text = format!("{spec:?}{}{}", opts.keepdims, opts.split_every);
        let drop_axes = if opts.keepdims { vec![] } else { axes.clone() };
        let mut out_shape = Vec::new();
        let mut out_chunks = Vec::new();
        for a in 0..self.ndim() {
            if axes.contains(&a) {
                if opts.keepdims {
                    out_shape.push(1);
                    out_chunks.push(vec![1]);
                }
            } else {
                out_shape.push(self.shape[a]);
                out_chunks.push(self.chunks[a].clone());
            }
        }
        // The partials' name too: a sum finalized from a mean's partials is another task.
        let name = Tokenizer::new(label)
            .str(&spec_text)
            .str(&self.name)
            .str(&layer.name)
            .finish();
        let partial_name = layer.name.clone();
        let ndim = self.ndim();
        let input_dtype = self.dtype;
        ChunkedArray::from_tasks(name, out_shape, out_chunks, dtype, vec![layer], |idx| {
            // Map the output block index back to the partial grid (reduced axes are 0).
            let mut full = Vec::with_capacity(ndim);
            let mut it = idx.iter();
            for a in 0..ndim {
                if axes.contains(&a) {
                    full.push(0u32);
                    if opts.keepdims {
                        it.next();
                    }
                } else {
                    full.push(it.next().copied().unwrap_or(0) as u32);
                }
            }
            Ok(Task::new(
                ArrayOp::ReduceFinalize {
                    spec: spec.clone(),
                    input_dtype,
                    drop_axes: drop_axes.clone(),
                },
                vec![Key::with_shared_name(&partial_name, &full)],
            ))
        })
    }
}
