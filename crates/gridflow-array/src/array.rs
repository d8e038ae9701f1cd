//! [`ChunkedArray`]: a lazy n-d array split into blocks, and its task graph.

use crate::kernels;
use crate::ops::{ArrayOp, Value};
use crate::registry::{ChunkSource, SourceRef};
use crate::{ArrayError, Chunk, DType, Element, Result, Scalar};
use gridflow_graph::{Graph, Key, Task, Tokenizer};
use gridflow_runtime::{RunReport, Scheduler};
use ndarray::ArrayD;
use rustc_hash::FxHashSet;
use std::sync::Arc;

/// Tasks added by one operation, and the layers they read from (Dask's HighLevelGraph):
/// arrays share layers instead of copying whole graphs at every step.
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) name: Arc<str>,
    pub(crate) tasks: Vec<(Key, Task<ArrayOp>)>,
    pub(crate) deps: Vec<Arc<Layer>>,
}

/// How to chunk an array when creating it.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunking {
    /// The same block size along each axis (the last block may be smaller); `0` or a
    /// size at least the axis length means one block along that axis.
    Sizes(Vec<usize>),
    /// Explicit block sizes per axis (irregular allowed); they must add up to the shape.
    Explicit(Vec<Vec<usize>>),
}

impl From<&[usize]> for Chunking {
    fn from(s: &[usize]) -> Self {
        Chunking::Sizes(s.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Chunking {
    fn from(s: [usize; N]) -> Self {
        Chunking::Sizes(s.to_vec())
    }
}

impl From<Vec<usize>> for Chunking {
    fn from(s: Vec<usize>) -> Self {
        Chunking::Sizes(s)
    }
}

impl From<Vec<Vec<usize>>> for Chunking {
    fn from(s: Vec<Vec<usize>>) -> Self {
        Chunking::Explicit(s)
    }
}

/// Turns a [`Chunking`] into block sizes per axis, checking it against `shape`.
pub fn normalize_chunks(op: &str, shape: &[usize], chunking: &Chunking) -> Result<Vec<Vec<usize>>> {
    let err = |detail: String| ArrayError::Chunks {
        op: op.to_owned(),
        detail,
    };
    match chunking {
        Chunking::Sizes(sizes) => {
            if sizes.len() != shape.len() {
                return Err(err(format!(
                    "{} chunk sizes given for shape {shape:?}",
                    sizes.len()
                )));
            }
            Ok(shape
                .iter()
                .zip(sizes)
                .map(|(&n, &c)| {
                    if n == 0 {
                        vec![0]
                    } else if c == 0 || c >= n {
                        vec![n]
                    } else {
                        let mut v = vec![c; n / c];
                        if n % c != 0 {
                            v.push(n % c);
                        }
                        v
                    }
                })
                .collect())
        }
        Chunking::Explicit(chunks) => {
            if chunks.len() != shape.len() {
                return Err(err(format!(
                    "chunks for {} axes given for shape {shape:?}",
                    chunks.len()
                )));
            }
            for (axis, (c, &n)) in chunks.iter().zip(shape).enumerate() {
                let total: usize = c.iter().sum();
                if total != n || c.is_empty() {
                    return Err(err(format!(
                        "chunks {c:?} along axis {axis} add up to {total}, not the length {n}"
                    )));
                }
                if n > 0 && c.contains(&0) {
                    return Err(err(format!(
                        "chunks {c:?} along axis {axis} contain an empty block"
                    )));
                }
            }
            Ok(chunks.clone())
        }
    }
}

/// A lazy, chunked n-d array: shape, block sizes per axis, dtype, and the task graph that
/// computes its blocks. The equivalent of `dask.array.Array`.
///
/// ```
/// use gridflow_array::{ChunkedArray, DType};
/// let x = ChunkedArray::ones(&[1000, 1000], [100, 250], DType::F32).unwrap();
/// let total = x.sum(None).unwrap().compute_scalar().unwrap();
/// assert_eq!(total.as_f64(), 1e6);
/// ```
#[derive(Clone, Debug)]
pub struct ChunkedArray {
    pub(crate) name: Arc<str>,
    pub(crate) shape: Vec<usize>,
    pub(crate) chunks: Vec<Vec<usize>>,
    pub(crate) dtype: DType,
    pub(crate) layer: Arc<Layer>,
}

/// Every block index of a grid with `numblocks` blocks per axis, in C order.
pub(crate) fn block_indices(numblocks: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = numblocks.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let mut idx = vec![0usize; numblocks.len()];
    loop {
        out.push(idx.clone());
        let mut axis = numblocks.len();
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < numblocks[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// Start offsets of the blocks along one axis.
pub(crate) fn offsets(chunks: &[usize]) -> Vec<usize> {
    let mut acc = 0;
    chunks
        .iter()
        .map(|c| {
            let o = acc;
            acc += c;
            o
        })
        .collect()
}

pub(crate) fn key_index(idx: &[usize]) -> Vec<u32> {
    idx.iter().map(|&i| i as u32).collect()
}

impl ChunkedArray {
    /// Builds an array from a layer of tasks, one per block (`make(block index)`).
    pub(crate) fn from_tasks(
        name: String,
        shape: Vec<usize>,
        chunks: Vec<Vec<usize>>,
        dtype: DType,
        deps: Vec<Arc<Layer>>,
        mut make: impl FnMut(&[usize]) -> Result<Task<ArrayOp>>,
    ) -> Result<ChunkedArray> {
        let name: Arc<str> = name.into();
        let numblocks: Vec<usize> = chunks.iter().map(Vec::len).collect();
        let mut tasks = Vec::with_capacity(numblocks.iter().product());
        for idx in block_indices(&numblocks) {
            let t = make(&idx)?;
            tasks.push((Key::with_shared_name(&name, &key_index(&idx)), t));
        }
        let mut seen = FxHashSet::default();
        let deps: Vec<Arc<Layer>> = deps
            .into_iter()
            .filter(|l| seen.insert(l.name.clone()))
            .collect();
        Ok(ChunkedArray {
            layer: Arc::new(Layer {
                name: name.clone(),
                tasks,
                deps,
            }),
            name,
            shape,
            chunks,
            dtype,
        })
    }

    /// A constant array.
    pub fn full(
        shape: &[usize],
        value: Scalar,
        chunks: impl Into<Chunking>,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        let chunks = normalize_chunks("full", shape, &chunks.into())?;
        let name = Tokenizer::new("full")
            .str(&format!("{shape:?}{chunks:?}{value:?}{dtype}"))
            .finish();
        let c2 = chunks.clone();
        ChunkedArray::from_tasks(name, shape.to_vec(), chunks, dtype, vec![], |idx| {
            let bshape: Vec<usize> = idx.iter().enumerate().map(|(a, &i)| c2[a][i]).collect();
            Ok(Task::new(
                ArrayOp::Full {
                    shape: bshape,
                    value,
                    dtype,
                },
                vec![],
            ))
        })
    }

    /// An array of zeros.
    pub fn zeros(
        shape: &[usize],
        chunks: impl Into<Chunking>,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        ChunkedArray::full(shape, Scalar::Int(0), chunks, dtype)
    }

    /// An array of ones.
    pub fn ones(
        shape: &[usize],
        chunks: impl Into<Chunking>,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        ChunkedArray::full(shape, Scalar::Int(1), chunks, dtype)
    }

    /// Evenly spaced values in `[start, stop)` with `step` (NumPy's `arange`).
    pub fn arange(
        start: f64,
        stop: f64,
        step: f64,
        chunks: usize,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
            return Err(ArrayError::Index {
                op: "arange".into(),
                detail: format!("invalid start {start}, stop {stop}, step {step}"),
            });
        }
        let n = ((stop - start) / step).ceil().max(0.0) as usize;
        ChunkedArray::spaced("arange", start, step, n, chunks, dtype)
    }

    /// `num` evenly spaced values from `start` to `stop` inclusive (NumPy's `linspace`).
    pub fn linspace(start: f64, stop: f64, num: usize, chunks: usize) -> Result<ChunkedArray> {
        let step = if num > 1 {
            (stop - start) / (num - 1) as f64
        } else {
            0.0
        };
        ChunkedArray::spaced("linspace", start, step, num, chunks, DType::F64)
    }

    fn spaced(
        op: &str,
        start: f64,
        step: f64,
        n: usize,
        chunks: usize,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        let chunks = normalize_chunks(op, &[n], &Chunking::Sizes(vec![chunks]))?;
        let offs = offsets(&chunks[0]);
        let c0 = chunks[0].clone();
        let name = Tokenizer::new(op)
            .str(&format!("{start:?}{step:?}{n}{chunks:?}{dtype}"))
            .finish();
        ChunkedArray::from_tasks(name, vec![n], chunks, dtype, vec![], |idx| {
            let i = idx[0];
            Ok(Task::new(
                ArrayOp::Arange {
                    start: start + offs[i] as f64 * step,
                    step,
                    len: c0[i],
                    dtype,
                },
                vec![],
            ))
        })
    }

    /// Uniform random float64 values in [0, 1), reproducible for a given `seed` and chunking
    /// (like `dask.array.random.random`).
    pub fn random(shape: &[usize], chunks: impl Into<Chunking>, seed: u64) -> Result<ChunkedArray> {
        let chunks = normalize_chunks("random", shape, &chunks.into())?;
        let numblocks: Vec<usize> = chunks.iter().map(Vec::len).collect();
        let name = Tokenizer::new("random")
            .str(&format!("{shape:?}{chunks:?}{seed}"))
            .finish();
        let c2 = chunks.clone();
        ChunkedArray::from_tasks(name, shape.to_vec(), chunks, DType::F64, vec![], |idx| {
            let bshape: Vec<usize> = idx.iter().enumerate().map(|(a, &i)| c2[a][i]).collect();
            let mut linear = 0u64;
            for (a, &i) in idx.iter().enumerate() {
                linear = linear * numblocks[a] as u64 + i as u64;
            }
            Ok(Task::new(
                ArrayOp::Random {
                    seed,
                    block: linear,
                    shape: bshape,
                },
                vec![],
            ))
        })
    }

    /// A chunked array holding an in-memory block, split into `chunks`.
    pub fn from_chunk(data: Chunk, chunks: impl Into<Chunking>) -> Result<ChunkedArray> {
        let shape = data.shape().to_vec();
        let chunks = normalize_chunks("from_array", &shape, &chunks.into())?;
        // Hash the exact values (through Scalar, so no 64-bit integer loses precision).
        let mut bytes: Vec<u8> = Vec::with_capacity(data.len() * 9);
        crate::with_chunk!(&data, a => {
            for v in a.iter() {
                match v.to_scalar() {
                    Scalar::Bool(b) => bytes.push(u8::from(b)),
                    Scalar::Int(i) => bytes.extend_from_slice(&i.to_le_bytes()),
                    Scalar::UInt(u) => { bytes.push(0xff); bytes.extend_from_slice(&u.to_le_bytes()) }
                    Scalar::Float(f) => bytes.extend_from_slice(&f.to_bits().to_le_bytes()),
                }
            }
        });
        let name = Tokenizer::new("array")
            .str(&format!("{shape:?}{chunks:?}{}", data.dtype()))
            .bytes(&bytes)
            .finish();
        let offs: Vec<Vec<usize>> = chunks.iter().map(|c| offsets(c)).collect();
        let dtype = data.dtype();
        let c2 = chunks.clone();
        ChunkedArray::from_tasks(name, shape, chunks, dtype, vec![], |idx| {
            let specs: Vec<kernels::SliceSpec> = idx
                .iter()
                .enumerate()
                .map(|(a, &i)| kernels::SliceSpec::range(offs[a][i], offs[a][i] + c2[a][i]))
                .collect();
            let block = kernels::slice(&data, &specs)?;
            Ok(Task::new(ArrayOp::Literal(Arc::new(block)), vec![]))
        })
    }

    /// A chunked array from an `ndarray` array of a supported element type.
    pub fn from_ndarray<T: crate::Element>(
        data: ArrayD<T>,
        chunks: impl Into<Chunking>,
    ) -> Result<ChunkedArray> {
        ChunkedArray::from_chunk(T::wrap(data), chunks)
    }

    /// A lazily read array: one read task per block of `source` (supplied by the store layer).
    pub fn from_source(
        source: Arc<dyn ChunkSource>,
        shape: &[usize],
        chunks: Vec<Vec<usize>>,
        dtype: DType,
    ) -> Result<ChunkedArray> {
        let chunks = normalize_chunks("from_source", shape, &Chunking::Explicit(chunks))?;
        let name = Tokenizer::new(&format!("read-{}", source.kind()))
            .str(&source.spec())
            .str(&format!("{chunks:?}"))
            .finish();
        let src = SourceRef(source);
        ChunkedArray::from_tasks(name, shape.to_vec(), chunks, dtype, vec![], |idx| {
            Ok(Task::new(
                ArrayOp::Read {
                    source: src.clone(),
                    block: idx.to_vec(),
                },
                vec![],
            ))
        })
    }

    /// The layer name (the first part of every block key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Block sizes along each axis.
    pub fn chunks(&self) -> &[Vec<usize>] {
        &self.chunks
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for an array with no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the whole array would take in memory.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// Number of blocks along each axis.
    pub fn numblocks(&self) -> Vec<usize> {
        self.chunks.iter().map(Vec::len).collect()
    }

    /// Total number of blocks.
    pub fn npartitions(&self) -> usize {
        self.numblocks().iter().product()
    }

    /// The largest block, in bytes.
    pub fn max_chunk_nbytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.iter().copied().max().unwrap_or(0))
            .product::<usize>()
            * self.dtype.size()
    }

    /// The key of block `idx`.
    pub fn block_key(&self, idx: &[usize]) -> Key {
        Key::with_shared_name(&self.name, &key_index(idx))
    }

    /// Keys of all blocks, in C order.
    pub fn keys(&self) -> Vec<Key> {
        block_indices(&self.numblocks())
            .iter()
            .map(|i| self.block_key(i))
            .collect()
    }

    /// The full task graph that computes this array (all layers merged).
    pub fn graph(&self) -> Graph<ArrayOp> {
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        let mut layers: Vec<&Arc<Layer>> = Vec::new();
        let mut stack: Vec<&Arc<Layer>> = vec![&self.layer];
        while let Some(l) = stack.pop() {
            if seen.insert(&l.name) {
                layers.push(l);
                stack.extend(l.deps.iter());
            }
        }
        let mut g = Graph::with_capacity(layers.iter().map(|l| l.tasks.len()).sum());
        for l in layers {
            for (k, t) in &l.tasks {
                g.insert(k.clone(), t.clone());
            }
        }
        g
    }

    /// The graph after culling and fusion: what an executor will run.
    pub fn optimized_graph(&self) -> Result<Graph<ArrayOp>> {
        Ok(self.graph().optimize(&self.keys())?)
    }

    /// Computes every block and assembles the result in memory.
    pub fn compute(&self) -> Result<Chunk> {
        self.compute_with(&Scheduler::Default)
    }

    /// Computes with a chosen scheduler.
    pub fn compute_with(&self, scheduler: &Scheduler) -> Result<Chunk> {
        self.compute_with_report(scheduler).map(|(c, _)| c)
    }

    /// Computes with a chosen scheduler and returns what the run did.
    pub fn compute_with_report(&self, scheduler: &Scheduler) -> Result<(Chunk, RunReport)> {
        let keys = self.keys();
        if keys.is_empty() {
            return Ok((
                Chunk::full(&self.shape, Scalar::Int(0), self.dtype),
                empty_report(),
            ));
        }
        let (values, report) = scheduler.run_with_report(&self.graph(), &keys)?;
        let blocks: Vec<&Chunk> = values
            .iter()
            .map(|v| match &**v {
                Value::Chunk(c) => Ok(c),
                Value::Partial(_) => Err(ArrayError::Kernel {
                    op: "compute".into(),
                    detail: "a block computed to a partial reduction".into(),
                }),
            })
            .collect::<Result<_>>()?;
        let out = if blocks.len() == 1 {
            blocks[0].clone()
        } else {
            kernels::assemble(&blocks, &self.numblocks())?
        };
        if out.shape() != self.shape.as_slice() {
            return Err(ArrayError::Shape {
                op: "compute".into(),
                detail: format!(
                    "blocks assembled to shape {:?}, expected {:?}",
                    out.shape(),
                    self.shape
                ),
            });
        }
        Ok((out.into_dtype(self.dtype), report))
    }

    /// Computes a one-element array (e.g. a full reduction) to a scalar.
    pub fn compute_scalar(&self) -> Result<Scalar> {
        let c = self.compute()?;
        c.scalar().ok_or_else(|| ArrayError::Shape {
            op: "compute_scalar".into(),
            detail: format!("array of shape {:?} is not a single value", self.shape),
        })
    }

    /// Computes and returns an `ndarray` array of f64 values.
    pub fn to_f64_ndarray(&self) -> Result<ArrayD<f64>> {
        let c = self.compute()?.astype(DType::F64);
        match c {
            Chunk::F64(a) => Ok(a),
            _ => Err(ArrayError::DType {
                op: "to_f64_ndarray".into(),
                detail: "conversion failed".into(),
            }),
        }
    }

    /// Computes every block and keeps them in memory: the returned array has the same keys
    /// but its graph holds the blocks, so later computations reuse them (Dask's `persist`).
    pub fn persist(&self) -> Result<ChunkedArray> {
        self.persist_with(&Scheduler::Default)
    }

    /// [`ChunkedArray::persist`] with a chosen scheduler.
    pub fn persist_with(&self, scheduler: &Scheduler) -> Result<ChunkedArray> {
        let keys = self.keys();
        let values = if keys.is_empty() {
            Vec::new()
        } else {
            scheduler.run(&self.graph(), &keys)?
        };
        let mut tasks = Vec::with_capacity(keys.len());
        for (k, v) in keys.into_iter().zip(values) {
            let c = match Arc::try_unwrap(v) {
                Ok(Value::Chunk(c)) => c,
                Ok(Value::Partial(_)) => {
                    return Err(ArrayError::Kernel {
                        op: "persist".into(),
                        detail: "a block computed to a partial reduction".into(),
                    });
                }
                Err(shared) => match &*shared {
                    Value::Chunk(c) => c.clone(),
                    Value::Partial(_) => {
                        return Err(ArrayError::Kernel {
                            op: "persist".into(),
                            detail: "a block computed to a partial reduction".into(),
                        });
                    }
                },
            };
            tasks.push((k, Task::new(ArrayOp::Literal(Arc::new(c)), vec![])));
        }
        let layer = Arc::new(Layer {
            name: self.name.clone(),
            tasks,
            deps: vec![],
        });
        Ok(ChunkedArray {
            layer,
            ..self.clone()
        })
    }

    /// Graphviz DOT text of the optimized graph.
    pub fn to_dot(&self) -> Result<String> {
        Ok(self.optimized_graph()?.to_dot())
    }

    /// A self-contained SVG drawing of the optimized graph.
    pub fn to_svg(&self) -> Result<String> {
        Ok(self.optimized_graph()?.to_svg()?)
    }
}

fn empty_report() -> RunReport {
    RunReport {
        tasks_before: 0,
        tasks_after: 0,
        peak_held_bytes: 0,
        threads: 0,
        elapsed: std::time::Duration::ZERO,
        optimize_time: std::time::Duration::ZERO,
        execute_time: std::time::Duration::ZERO,
    }
}

/// Checks an axis argument (negative counts from the end) and returns it as an index.
pub(crate) fn check_axis(op: &str, axis: isize, ndim: usize) -> Result<usize> {
    let a = if axis < 0 { axis + ndim as isize } else { axis };
    if a < 0 || a >= ndim as isize {
        return Err(ArrayError::Axis {
            op: op.to_owned(),
            axis,
            ndim,
        });
    }
    Ok(a as usize)
}

/// Builds a block of `shape` from values (for tests and small inputs).
pub fn chunk_from_f64(shape: &[usize], values: Vec<f64>, dtype: DType) -> Result<Chunk> {
    Chunk::from_f64_vec(shape, values, dtype)
}
