//! [`ChunkedArray`]: a lazy n-d array split into blocks, and its task graph.

use crate::kernels;
use crate::limits;
use crate::ops::{ArrayOp, Value};
use crate::registry::{ChunkSource, SourceRef};
use crate::{ArrayError, Chunk, DType, Element, Result, Scalar};
use gridflow_graph::{Compiled, DenseTasks, Expr, Graph, Indexed, Key, Task, Tokenizer};
use gridflow_runtime::{Executor, LocalExecutor, Plan, RunReport};
use ndarray::ArrayD;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Makes the task of one block of a lazy layer.
type MakeTask = Box<dyn Fn(&[usize]) -> Task<ArrayOp> + Send + Sync>;

/// Tasks added by one operation, and the layers they read from (Dask's HighLevelGraph):
/// arrays share layers instead of copying whole graphs at every step. Read and
/// elementwise layers are lazy: their tasks are made when a graph is first compiled, so
/// opening a store with millions of chunks costs nothing per chunk.
pub(crate) struct Layer {
    pub(crate) name: Arc<str>,
    pub(crate) deps: Vec<Arc<Layer>>,
    /// Number of tasks, known before they are made.
    ntasks: usize,
    tasks: OnceLock<Vec<(Key, Task<ArrayOp>)>>,
    /// Blocks per axis and the maker of one block's task (lazy layers only).
    make: Option<(Vec<usize>, MakeTask)>,
    /// Keeps this layer's results held by an executor (a cluster's workers) while any array
    /// built on the layer lives ([`ChunkedArray::persist_with`]).
    held: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("name", &self.name)
            .field("ntasks", &self.ntasks)
            .field("made", &self.tasks.get().is_some())
            .field("deps", &self.deps.len())
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl Layer {
    /// A layer of tasks already made.
    pub(crate) fn new(
        name: Arc<str>,
        tasks: Vec<(Key, Task<ArrayOp>)>,
        deps: Vec<Arc<Layer>>,
    ) -> Layer {
        Layer {
            name,
            deps,
            ntasks: tasks.len(),
            tasks: OnceLock::from(tasks),
            make: None,
            held: None,
        }
    }

    /// A layer whose one task per block of `numblocks` is made on first use. The caller
    /// has counted the blocks (`limits::count_blocks`).
    fn lazy(
        name: Arc<str>,
        numblocks: Vec<usize>,
        ntasks: usize,
        deps: Vec<Arc<Layer>>,
        make: MakeTask,
    ) -> Layer {
        Layer {
            name,
            deps,
            ntasks,
            tasks: OnceLock::new(),
            make: Some((numblocks, make)),
            held: None,
        }
    }

    /// Number of tasks (without making them).
    pub(crate) fn ntasks(&self) -> usize {
        self.ntasks
    }

    /// True once the tasks exist in memory.
    pub(crate) fn is_made(&self) -> bool {
        self.tasks.get().is_some()
    }

    /// The tasks in C order of their blocks, made now if the layer is lazy.
    pub(crate) fn tasks(&self) -> &[(Key, Task<ArrayOp>)] {
        self.tasks.get_or_init(|| {
            let Some((numblocks, make)) = &self.make else {
                return Vec::new();
            };
            let mut tasks = Vec::with_capacity(self.ntasks);
            if self.ntasks > 0 {
                let first = Key::with_shared_name(&self.name, &[]);
                let mut idx = vec![0usize; numblocks.len()];
                loop {
                    tasks.push((first.sibling(&key_index(&idx)), make(&idx)));
                    if !next_block(&mut idx, numblocks) {
                        break;
                    }
                }
            }
            tasks
        })
    }
}

/// Distinct layers reachable from `root` (itself included), each once.
fn reachable(root: &Layer) -> Vec<&Layer> {
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let mut layers: Vec<&Layer> = Vec::new();
    let mut stack: Vec<&Layer> = vec![root];
    while let Some(l) = stack.pop() {
        if seen.insert(&l.name) {
            layers.push(l);
            stack.extend(l.deps.iter().map(|d| &**d));
        }
    }
    layers
}

/// Tasks in the graphs of `deps` that already exist in memory, plus `new`, refused if
/// over the graph budget.
fn check_made(op: &str, deps: &[Arc<Layer>], new: usize) -> Result<()> {
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let mut total = new;
    for d in deps {
        for l in reachable(d) {
            if seen.insert(&l.name) && l.is_made() {
                total = total.saturating_add(l.ntasks);
            }
        }
    }
    limits::check_tasks(op, total)
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
            // Count the blocks before making one size per block.
            let numblocks: Vec<usize> = shape
                .iter()
                .zip(sizes)
                .map(|(&n, &c)| if c == 0 || n == 0 { 1 } else { n.div_ceil(c) })
                .collect();
            limits::count_blocks(op, &numblocks)?;
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

/// Moves `idx` to the next block of a grid of `numblocks` in C order; false after the last.
fn next_block(idx: &mut [usize], numblocks: &[usize]) -> bool {
    for axis in (0..idx.len()).rev() {
        idx[axis] += 1;
        if idx[axis] < numblocks[axis] {
            return true;
        }
        idx[axis] = 0;
    }
    false
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
        // Messages name the operation, not its token (`sum-chunk`, not `sum-chunk-<hash>`).
        let op = name.rsplit_once('-').map_or(&*name, |(op, _)| op);
        let total = limits::count_blocks(op, &numblocks)?;
        check_made(op, &deps, total)?;
        let mut tasks = Vec::with_capacity(total);
        if total > 0 {
            // One key hashes the name; its siblings reuse the hash and the shared name.
            let first = Key::with_shared_name(&name, &[]);
            let mut idx = vec![0usize; numblocks.len()];
            let mut kidx = vec![0u32; numblocks.len()];
            loop {
                let t = make(&idx)?;
                for (k, &i) in kidx.iter_mut().zip(&idx) {
                    *k = i as u32;
                }
                tasks.push((first.sibling(&kidx), t));
                if !next_block(&mut idx, &numblocks) {
                    break;
                }
            }
        }
        let mut seen = FxHashSet::default();
        let deps: Vec<Arc<Layer>> = deps
            .into_iter()
            .filter(|l| seen.insert(l.name.clone()))
            .collect();
        Ok(ChunkedArray {
            layer: Arc::new(Layer::new(name.clone(), tasks, deps)),
            name,
            shape,
            chunks,
            dtype,
        })
    }

    /// Like [`ChunkedArray::from_tasks`], but the tasks are made when a graph is first
    /// compiled (and counted against the graph budget then): opening an array of a
    /// hundred million chunks to look at its metadata allocates nothing per chunk.
    pub(crate) fn from_lazy_tasks(
        name: String,
        shape: Vec<usize>,
        chunks: Vec<Vec<usize>>,
        dtype: DType,
        deps: Vec<Arc<Layer>>,
        make: impl Fn(&[usize]) -> Task<ArrayOp> + Send + Sync + 'static,
    ) -> Result<ChunkedArray> {
        let name: Arc<str> = name.into();
        let numblocks: Vec<usize> = chunks.iter().map(Vec::len).collect();
        // Not held against the budget yet: compiling counts every layer first.
        let total = numblocks
            .iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b))
            .ok_or_else(|| limits::too_large(&name, None))?;
        let mut seen = FxHashSet::default();
        let deps: Vec<Arc<Layer>> = deps
            .into_iter()
            .filter(|l| seen.insert(l.name.clone()))
            .collect();
        Ok(ChunkedArray {
            layer: Arc::new(Layer::lazy(
                name.clone(),
                numblocks,
                total,
                deps,
                Box::new(make),
            )),
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
        ChunkedArray::from_lazy_tasks(name, shape.to_vec(), chunks, dtype, vec![], move |idx| {
            Task::new(
                ArrayOp::Read {
                    source: src.clone(),
                    block: idx.to_vec(),
                },
                vec![],
            )
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
        // Saturates: shapes come from metadata and may not fit in memory at all.
        self.shape.iter().fold(1usize, |a, &n| a.saturating_mul(n))
    }

    /// True for an array with no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the whole array would take in memory.
    pub fn nbytes(&self) -> usize {
        self.len().saturating_mul(self.dtype.size())
    }

    /// Number of blocks along each axis.
    pub fn numblocks(&self) -> Vec<usize> {
        self.chunks.iter().map(Vec::len).collect()
    }

    /// Total number of blocks.
    pub fn npartitions(&self) -> usize {
        self.numblocks()
            .iter()
            .fold(1usize, |a, &n| a.saturating_mul(n))
    }

    /// The largest block, in bytes.
    pub fn max_chunk_nbytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.iter().copied().max().unwrap_or(0))
            .fold(self.dtype.size(), usize::saturating_mul)
    }

    /// The key of block `idx`.
    pub fn block_key(&self, idx: &[usize]) -> Key {
        Key::with_shared_name(&self.name, &key_index(idx))
    }

    /// Keys of all blocks, in C order.
    pub fn keys(&self) -> Vec<Key> {
        let numblocks = self.numblocks();
        let total: usize = numblocks.iter().product();
        let mut out = Vec::with_capacity(total);
        if total == 0 {
            return out;
        }
        let first = Key::with_shared_name(&self.name, &[]);
        let mut idx = vec![0usize; numblocks.len()];
        loop {
            out.push(first.sibling(&key_index(&idx)));
            if !next_block(&mut idx, &numblocks) {
                return out;
            }
        }
    }

    /// The layers of the graph, each name once (the first met walking depth-first from
    /// this array's layer wins, as in [`ChunkedArray::graph`]).
    fn layers(&self) -> Vec<&Layer> {
        reachable(&self.layer)
    }

    /// The layers of the graph, refused before any lazy layer is made if all their tasks
    /// together exceed the graph budget.
    fn counted_layers(&self, op: &str) -> Result<Vec<&Layer>> {
        let layers = self.layers();
        let total = layers
            .iter()
            .fold(0usize, |a, l| a.saturating_add(l.ntasks()));
        limits::check_tasks(op, total)?;
        Ok(layers)
    }

    /// Refuses, before any key or task is made, a graph whose tasks would not fit in the
    /// graph budget ([`crate::set_graph_memory_limit`]).
    pub fn check_graph(&self, op: &str) -> Result<()> {
        self.counted_layers(op).map(|_| ())
    }

    /// True when every block is a value already in memory (a computed or persisted array),
    /// decided without making any lazy layer's tasks.
    pub fn is_in_memory(&self) -> bool {
        let layers = self.layers();
        layers.iter().all(|l| l.is_made())
            && layers.iter().all(|l| {
                l.tasks().iter().all(|(_, t)| {
                    t.inputs.is_empty()
                        && matches!(
                            t.expr,
                            gridflow_graph::Expr::Call {
                                op: ArrayOp::Literal(_),
                                ..
                            }
                        )
                })
            })
    }

    /// Number of tasks in the whole graph, counted without making lazy layers' tasks.
    pub fn graph_len(&self) -> usize {
        self.layers()
            .iter()
            .fold(0usize, |a, l| a.saturating_add(l.ntasks()))
    }

    /// The chunk sources this array's read tasks read from, each once: what it depends on
    /// outside memory (a writer refuses to replace one of them with the array's own result).
    pub fn sources(&self) -> Vec<Arc<dyn ChunkSource>> {
        fn walk(
            e: &Expr<ArrayOp>,
            seen: &mut FxHashSet<usize>,
            out: &mut Vec<Arc<dyn ChunkSource>>,
        ) {
            if let Expr::Call { op, args } = e {
                if let ArrayOp::Read { source, .. } = op
                    // tasks of one read layer share their source: keep it once
                    && seen.insert(Arc::as_ptr(&source.0).cast::<()>() as usize)
                {
                    out.push(source.0.clone());
                }
                for a in args {
                    walk(a, seen, out);
                }
            }
        }
        let mut seen = FxHashSet::default();
        let mut out = Vec::new();
        for l in self.layers() {
            match (&l.make, l.is_made()) {
                // every block of a lazy layer runs the same operation on the same source:
                // one block tells, without making millions of tasks
                (Some((numblocks, make)), false) => {
                    if l.ntasks() > 0 {
                        walk(&make(&vec![0; numblocks.len()]).expr, &mut seen, &mut out);
                    }
                }
                _ => {
                    for (_, t) in l.tasks() {
                        walk(&t.expr, &mut seen, &mut out);
                    }
                }
            }
        }
        out
    }

    /// The full task graph that computes this array (all layers merged).
    pub fn graph(&self) -> Graph<ArrayOp> {
        let layers = self.layers();
        let mut g = Graph::with_capacity(layers.iter().map(|l| l.ntasks()).sum());
        for l in layers {
            for (k, t) in l.tasks() {
                g.insert(k.clone(), t.clone());
            }
        }
        g
    }

    /// Culls, optionally fuses, and orders the graph for `outputs`: the same result as
    /// `self.graph().compile(outputs, fuse)`, but numbering the layers' blocks directly
    /// instead of copying every task into a hashed graph first.
    pub(crate) fn compile(&self, outputs: &[Key], fuse: bool) -> Result<Compiled<ArrayOp>> {
        let layers = self.counted_layers("compile")?;
        match LayerIndex::new(layers) {
            Some(mut index) => {
                let n = index.universe;
                Ok(Indexed::from_dense(outputs, &mut index, n)?.compile(fuse)?)
            }
            // Some layer is not a plain grid of its own blocks: hash every key.
            None => Ok(self.graph().compile(outputs, fuse)?),
        }
    }

    /// Compiles the graph for `outputs` and runs it; the report counts compiling as
    /// optimization.
    fn run_graph(
        &self,
        executor: &dyn Executor<ArrayOp>,
        outputs: &[Key],
    ) -> Result<(Vec<Arc<Value>>, RunReport)> {
        let start = Instant::now();
        // An executor holding persisted results cuts the graph where they are: it needs the
        // graph itself, not a plan compiled here.
        if executor.holds_results() {
            self.counted_layers("compute")?;
            return Ok(executor.run_with_report(&self.graph(), outputs)?);
        }
        let Some(mut index) = LayerIndex::new(self.counted_layers("compute")?) else {
            return Ok(executor.run_with_report(&self.graph(), outputs)?);
        };
        let n = index.universe;
        let program = Indexed::from_dense(outputs, &mut index, n)?.program(true)?;
        let optimize = start.elapsed();
        let (values, mut report) = executor.run_plan(Plan::new(&program))?;
        report.optimize_time += optimize;
        report.elapsed += optimize;
        Ok((values, report))
    }

    /// The graph after culling and fusion: what an executor will run.
    pub fn optimized_graph(&self) -> Result<Graph<ArrayOp>> {
        self.check_graph("optimized_graph")?;
        Ok(self.compile(&self.keys(), true)?.to_graph())
    }

    /// Computes every block and assembles the result in memory.
    pub fn compute(&self) -> Result<Chunk> {
        self.compute_with(&LocalExecutor::Default)
    }

    /// Computes on a chosen executor (a local pool, a cluster).
    pub fn compute_with(&self, executor: &dyn Executor<ArrayOp>) -> Result<Chunk> {
        self.compute_with_report(executor).map(|(c, _)| c)
    }

    /// Computes on a chosen executor and returns what the run did.
    pub fn compute_with_report(
        &self,
        executor: &dyn Executor<ArrayOp>,
    ) -> Result<(Chunk, RunReport)> {
        self.check_graph("compute")?;
        let keys = self.keys();
        if keys.is_empty() {
            return Ok((
                Chunk::full(&self.shape, Scalar::Int(0), self.dtype),
                empty_report(),
            ));
        }
        let (values, report) = self.run_graph(executor, &keys)?;
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
        self.persist_with(&LocalExecutor::Default)
    }

    /// [`ChunkedArray::persist`] on a chosen executor. On a cluster the blocks stay on the
    /// workers that computed them: the returned array keeps its graph and holds them, and
    /// later computations on the same client read them by key (once every array built on
    /// it is dropped, the workers drop them).
    pub fn persist_with(&self, executor: &dyn Executor<ArrayOp>) -> Result<ChunkedArray> {
        self.check_graph("persist")?;
        let keys = self.keys();
        let values = if keys.is_empty() {
            Vec::new()
        } else if executor.persists_remotely() {
            self.counted_layers("persist")?;
            match executor.persist_graph(&self.graph(), &keys)? {
                gridflow_runtime::Persisted::Values(v) => v,
                gridflow_runtime::Persisted::Held(keep) => {
                    let layer = Arc::new(Layer {
                        name: self.layer.name.clone(),
                        deps: self.layer.deps.clone(),
                        ntasks: self.layer.ntasks,
                        tasks: OnceLock::from(self.layer.tasks().to_vec()),
                        make: None,
                        held: Some(keep),
                    });
                    return Ok(ChunkedArray {
                        layer,
                        ..self.clone()
                    });
                }
            }
        } else {
            self.run_graph(executor, &keys)?.0
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
        let layer = Arc::new(Layer::new(self.name.clone(), tasks, vec![]));
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

/// The layers of a graph with their blocks numbered densely, so that compiling needs no
/// hash map: layer `l`'s block at C-order position `p` has id `base[l] + p`.
struct LayerIndex<'a> {
    layers: Vec<&'a Layer>,
    base: Vec<u32>,
    /// Blocks per axis of each layer.
    grids: Vec<Vec<usize>>,
    /// Layer of a name, by the address of its shared string, then by its text.
    by_ptr: FxHashMap<usize, usize>,
    by_name: FxHashMap<&'a str, usize>,
    /// The layer found last (inputs of consecutive tasks are mostly in one layer).
    last: usize,
    universe: usize,
}

fn name_addr(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>() as usize
}

impl<'a> LayerIndex<'a> {
    /// Indexes `layers` (distinct names), or `None` if some layer is not the C-order
    /// blocks of a grid, each keyed by the layer's name (not built by this crate today;
    /// the caller then hashes keys instead).
    fn new(layers: Vec<&'a Layer>) -> Option<LayerIndex<'a>> {
        let mut base = Vec::with_capacity(layers.len());
        let mut grids = Vec::with_capacity(layers.len());
        let mut by_ptr = FxHashMap::default();
        let mut by_name = FxHashMap::default();
        let mut universe = 0usize;
        for (l, layer) in layers.iter().enumerate() {
            base.push(u32::try_from(universe).ok()?);
            let made = layer.tasks();
            let grid: Vec<usize> = match made.last() {
                Some((k, _)) => k.index().iter().map(|&i| i as usize + 1).collect(),
                None => Vec::new(),
            };
            let blocks = grid.iter().try_fold(1usize, |a, &b| a.checked_mul(b))?;
            if !made.is_empty() && blocks != made.len() {
                return None;
            }
            for (p, (k, _)) in made.iter().enumerate() {
                let named = Arc::ptr_eq(k.shared_name(), &layer.name) || k.name() == &*layer.name;
                if !named || linear_index(k.index(), &grid) != Some(p) {
                    return None;
                }
            }
            universe += made.len();
            by_ptr.insert(name_addr(&layer.name), l);
            by_name.insert(&*layer.name, l);
            grids.push(grid);
        }
        u32::try_from(universe).ok()?;
        Some(LayerIndex {
            layers,
            base,
            grids,
            by_ptr,
            by_name,
            last: 0,
            universe,
        })
    }
}

/// Position of block `index` in the C-order blocks of `grid`, if it is one of them.
fn linear_index(index: &[u32], grid: &[usize]) -> Option<usize> {
    if index.len() != grid.len() {
        return None;
    }
    let mut p = 0usize;
    for (&i, &n) in index.iter().zip(grid) {
        if i as usize >= n {
            return None;
        }
        p = p * n + i as usize;
    }
    Some(p)
}

impl<'a> DenseTasks<'a, ArrayOp> for LayerIndex<'a> {
    fn universe(&self) -> usize {
        self.universe
    }

    fn id_of(&mut self, key: &Key) -> Option<u32> {
        let name = key.shared_name();
        let l = match self.layers.get(self.last) {
            Some(layer) if Arc::ptr_eq(name, &layer.name) => self.last,
            _ => match self.by_ptr.get(&name_addr(name)) {
                Some(&l) => l,
                None => *self.by_name.get(key.name())?,
            },
        };
        self.last = l;
        let p = linear_index(key.index(), &self.grids[l])?;
        if p >= self.layers[l].tasks().len() {
            return None;
        }
        Some(self.base[l] + p as u32)
    }

    fn task(&self, id: u32) -> (&'a Key, &'a Task<ArrayOp>) {
        // The last layer starting at or before `id` (ids come from `id_of`, so in range).
        let l = self.base.partition_point(|&b| b <= id).saturating_sub(1);
        let (k, t) = &self.layers[l].tasks()[(id - self.base[l]) as usize];
        (k, t)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbering the layers' blocks compiles to exactly what the hashed graph compiles to.
    fn same_as_hashed(x: &ChunkedArray) -> Result<()> {
        let keys = x.keys();
        assert!(
            LayerIndex::new(x.layers()).is_some(),
            "layers of {}",
            x.name()
        );
        for fuse in [false, true] {
            let a = x.compile(&keys, fuse)?;
            let b = x.graph().compile(&keys, fuse)?;
            assert_eq!(a.keys, b.keys);
            assert_eq!(format!("{:?}", a.exprs), format!("{:?}", b.exprs));
            assert_eq!(a.inputs, b.inputs);
            assert_eq!(a.distinct_inputs, b.distinct_inputs);
            assert_eq!(a.dependents, b.dependents);
            assert_eq!(a.outputs, b.outputs);
            assert_eq!(a.tasks_before, b.tasks_before);
        }
        Ok(())
    }

    #[test]
    fn layer_numbering_compiles_like_the_hashed_graph() -> Result<()> {
        let x = ChunkedArray::ones(&[40, 30], [7, 8], DType::F64)?;
        let r = ChunkedArray::random(&[40, 30], [10, 30], 5)?;
        same_as_hashed(&x.sum(None)?)?;
        same_as_hashed(&x.mean(Some(&[0]))?)?;
        same_as_hashed(&x.mul(2.0)?.add(&r)?.sqrt()?.sum(Some(&[1]))?)?;
        // `x + x` reads each block twice; slicing and rechunking gather blocks.
        same_as_hashed(&x.add(&x)?.rechunk([9, 9])?)?;
        same_as_hashed(&x.transpose(None)?.argmax(Some(0))?)?;
        same_as_hashed(&ChunkedArray::concatenate(&[&x, &r], 0)?)?;
        // A persisted layer has the same name as the layer it replaces: the first one met
        // wins in both paths.
        let p = r.persist_with(&LocalExecutor::Synchronous)?;
        same_as_hashed(&p.add(&r)?.max(None)?)?;
        same_as_hashed(&r.add(&p)?.max(None)?)?;
        Ok(())
    }

    #[test]
    fn layers_that_are_not_block_grids_are_compiled_by_hashing() -> Result<()> {
        let x = ChunkedArray::ones(&[4], [1], DType::F64)?;
        // The same tasks in reverse order: not the C-order blocks of a grid.
        let mut tasks: Vec<(Key, Task<ArrayOp>)> = x
            .layer
            .tasks()
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        tasks.reverse();
        let y = ChunkedArray {
            layer: Arc::new(Layer::new(x.name.clone(), tasks, vec![])),
            ..x.clone()
        };
        assert!(LayerIndex::new(y.layers()).is_none());
        let total = y.sum(None)?.compute_with(&LocalExecutor::threads(2))?;
        assert_eq!(total.scalar().map(|s| s.as_f64()), Some(4.0));
        Ok(())
    }

    #[test]
    fn a_key_outside_every_layer_is_a_missing_dependency() -> Result<()> {
        let x = ChunkedArray::ones(&[4], [2], DType::F64)?;
        let y = ChunkedArray::from_tasks(
            "reads-nothing".into(),
            vec![4],
            x.chunks.clone(),
            DType::F64,
            vec![x.layer.clone()],
            |idx| {
                // Block 7 of `x` does not exist.
                let k = x.block_key(&[idx[0] + 7]);
                Ok(Task::new(
                    ArrayOp::Unary(crate::kernels::UnaryOp::Neg),
                    vec![k],
                ))
            },
        )?;
        let err = y.compute_with(&LocalExecutor::Synchronous).map(|_| ());
        let hashed = LocalExecutor::Synchronous
            .run(&y.graph(), &y.keys())
            .map(|_| ());
        match (err, hashed) {
            (Err(a), Err(b)) => assert_eq!(a.to_string(), ArrayError::from(b).to_string()),
            other => panic!("expected two errors, got {other:?}"),
        }
        Ok(())
    }
}
