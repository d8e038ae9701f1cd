//! Property tests: random shapes, chunkings and chains of operations computed on chunked
//! arrays equal the same chain computed on the whole array as a single block.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use gridflow_array::kernels::{BinaryOp, ReduceOp, SliceSpec, UnaryOp, slice};
use gridflow_array::{
    Chunk, ChunkedArray, Chunking, DType, Indexer, LocalExecutor, ReduceOptions, Scalar, where_,
};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A store-like source over an in-memory array: blocks of `chunks`, read in slabs of `slab`
/// rows, so that the chunked side's chains over reads are lowered to streamed tasks (and
/// row ranges are read through `read_rows_slabs`).
#[derive(Debug)]
struct MemSource {
    whole: Chunk,
    chunks: Vec<Vec<usize>>,
    slab: usize,
}

impl gridflow_array::ChunkSource for MemSource {
    fn kind(&self) -> &str {
        "test-mem"
    }
    fn spec(&self) -> String {
        format!("{:?}/{}", self.chunks, self.slab)
    }
    fn read_block(&self, block: &[usize]) -> gridflow_array::Result<Chunk> {
        let specs: Vec<SliceSpec> = block
            .iter()
            .zip(&self.chunks)
            .map(|(&b, c)| {
                let start: usize = c[..b].iter().sum();
                SliceSpec::range(start, start + c[b])
            })
            .collect();
        slice(&self.whole, &specs)
    }
    fn read_block_slabs(
        &self,
        block: &[usize],
        visit: &mut dyn FnMut(Chunk) -> gridflow_array::Result<()>,
    ) -> gridflow_array::Result<()> {
        let b = self.read_block(block)?;
        let n = b.shape()[0];
        let mut start = 0;
        while start < n {
            let end = (start + self.slab).min(n);
            let mut specs: Vec<SliceSpec> = b.shape().iter().map(|&l| SliceSpec::full(l)).collect();
            specs[0] = SliceSpec::range(start, end);
            visit(slice(&b, &specs)?)?;
            start = end;
        }
        Ok(())
    }
    fn block_shape(&self, block: &[usize]) -> Option<Vec<usize>> {
        Some(block.iter().zip(&self.chunks).map(|(&b, c)| c[b]).collect())
    }
    fn slab_bytes(&self) -> Option<usize> {
        Some(self.slab)
    }
}

#[derive(Clone, Debug)]
enum Step {
    Unary(UnaryOp),
    Scalar(BinaryOp, f64, bool),
    /// Binary op with a second random array of the same shape but other chunks.
    WithOther(BinaryOp, u64, usize),
    Reduce(ReduceOp, Vec<bool>, bool, usize),
    Slice(Vec<(i8, i8, i8)>),
    Take(usize, Vec<i8>),
    Rechunk(usize),
    Transpose(u64),
    WhereGt(f64),
    ConcatSelf(usize),
    StackSquare,
    Astype(DType),
    /// CF masking: values equal to 3 become NaN.
    Mask,
}

fn step() -> impl Strategy<Value = Step> {
    let unary = prop_oneof![
        Just(UnaryOp::Neg),
        Just(UnaryOp::Abs),
        Just(UnaryOp::Sqrt),
        Just(UnaryOp::Exp),
        Just(UnaryOp::Sin),
        Just(UnaryOp::Floor),
        Just(UnaryOp::Round),
        Just(UnaryOp::IsNan),
        Just(UnaryOp::NotNull),
    ];
    let binop = prop_oneof![
        Just(BinaryOp::Add),
        Just(BinaryOp::Sub),
        Just(BinaryOp::Mul),
        Just(BinaryOp::Div),
        Just(BinaryOp::Maximum),
        Just(BinaryOp::Lt),
        Just(BinaryOp::FloorDiv),
    ];
    let red = prop_oneof![
        Just(ReduceOp::Sum),
        Just(ReduceOp::Mean),
        Just(ReduceOp::Min),
        Just(ReduceOp::Max),
        Just(ReduceOp::Var),
        Just(ReduceOp::Std),
        Just(ReduceOp::Count),
        Just(ReduceOp::Prod),
        Just(ReduceOp::Any),
        Just(ReduceOp::All),
        Just(ReduceOp::ArgMin),
        Just(ReduceOp::ArgMax),
    ];
    prop_oneof![
        unary.prop_map(Step::Unary),
        (binop.clone(), -3.0f64..3.0, any::<bool>()).prop_map(|(o, v, l)| Step::Scalar(
            o,
            (v * 4.0).round() / 4.0,
            l
        )),
        (binop, any::<u64>(), 1usize..4).prop_map(|(o, s, c)| Step::WithOther(o, s, c)),
        (
            red,
            proptest::collection::vec(any::<bool>(), 3),
            any::<bool>(),
            2usize..5
        )
            .prop_map(|(o, a, k, s)| Step::Reduce(o, a, k, s)),
        proptest::collection::vec(
            (
                -8i8..8,
                -8i8..8,
                prop_oneof![Just(1i8), Just(2), Just(-1), Just(-3)]
            ),
            3
        )
        .prop_map(Step::Slice),
        (0usize..3, proptest::collection::vec(-6i8..6, 0..6)).prop_map(|(a, i)| Step::Take(a, i)),
        (1usize..5).prop_map(Step::Rechunk),
        any::<u64>().prop_map(Step::Transpose),
        (-1.0f64..1.0).prop_map(Step::WhereGt),
        (0usize..3).prop_map(Step::ConcatSelf),
        Just(Step::StackSquare),
        prop_oneof![Just(DType::F32), Just(DType::I32), Just(DType::F64)].prop_map(Step::Astype),
        Just(Step::Mask),
    ]
}

/// Applies a step; `chunk` picks the chunk size used for new arrays and rechunks
/// (`None`: one block, the reference).
fn apply(x: &ChunkedArray, s: &Step, chunk: Option<usize>) -> gridflow_array::Result<ChunkedArray> {
    let chunks_of = |shape: &[usize], c: usize| -> Chunking {
        match chunk {
            None => Chunking::Sizes(vec![0; shape.len()]),
            Some(_) => Chunking::Sizes(vec![c; shape.len()]),
        }
    };
    match s {
        Step::Unary(op) => x.unary(*op),
        Step::Scalar(op, v, left) => x.binary_scalar(*op, Scalar::Float(*v), *left),
        Step::WithOther(op, seed, c) => {
            let other = ChunkedArray::random(x.shape(), chunks_of(x.shape(), *c), *seed)?;
            // Bring it to the same deterministic values whatever its chunks: random values
            // depend on chunking, so make `other` from a fixed-chunk array and rechunk it.
            let fixed = ChunkedArray::random(x.shape(), Chunking::Sizes(vec![0; x.ndim()]), *seed)?;
            let other = if chunk.is_some() {
                fixed.rechunk(Chunking::Explicit(other.chunks().to_vec()))?
            } else {
                fixed
            };
            x.binary(*op, &other.mul(4.0)?.sub(2.0)?)
        }
        Step::Reduce(op, which, keepdims, split) => {
            let mut axes: Vec<isize> = (0..x.ndim())
                .filter(|&a| which[a % 3])
                .map(|a| a as isize)
                .collect();
            if matches!(op, ReduceOp::ArgMin | ReduceOp::ArgMax)
                && axes.len() > 1
                && axes.len() < x.ndim()
            {
                axes.truncate(1);
            }
            let keepdims = *keepdims && !matches!(op, ReduceOp::ArgMin | ReduceOp::ArgMax);
            x.reduce(
                *op,
                &ReduceOptions {
                    axes: Some(axes),
                    keepdims,
                    split_every: *split,
                    ..ReduceOptions::default()
                },
            )
        }
        Step::Slice(specs) => {
            let idx: Vec<Indexer> = (0..x.ndim())
                .map(|a| {
                    let (s, e, st) = specs[a % 3];
                    Indexer::Slice {
                        start: Some(s as isize),
                        stop: Some(e as isize),
                        step: Some(st as isize),
                    }
                })
                .collect();
            x.index(&idx)
        }
        Step::Take(axis, idx) => {
            if x.ndim() == 0 {
                return Ok(x.clone());
            }
            let axis = axis % x.ndim();
            let n = x.shape()[axis] as isize;
            if n == 0 {
                return Ok(x.clone());
            }
            let idx: Vec<isize> = idx.iter().map(|&i| (i as isize).rem_euclid(n)).collect();
            x.take(&idx, axis as isize)
        }
        Step::Rechunk(c) => x.rechunk(chunks_of(x.shape(), *c)),
        Step::Transpose(seed) => {
            let mut perm: Vec<isize> = (0..x.ndim() as isize).collect();
            let mut s = *seed;
            for i in (1..perm.len()).rev() {
                let j = (s % (i as u64 + 1)) as usize;
                s /= i as u64 + 1;
                perm.swap(i, j);
            }
            x.transpose(Some(&perm))
        }
        Step::WhereGt(v) => where_(&x.astype(DType::F64)?.gt(*v)?, x, f64::NAN),
        Step::ConcatSelf(axis) => {
            if x.ndim() == 0 {
                return Ok(x.clone());
            }
            let twice = x.mul(2.0)?;
            ChunkedArray::concatenate(&[x, &twice], (axis % x.ndim()) as isize)
        }
        Step::StackSquare => {
            if x.ndim() >= 3 {
                return Ok(x.clone());
            }
            let st = ChunkedArray::stack(&[x, &x.neg()?], 0)?;
            st.index(&[Indexer::range(1, 2)])?.squeeze(Some(&[0]))
        }
        Step::Astype(d) => x.astype(*d),
        Step::Mask => x.mask_eq(Scalar::Float(3.0)),
    }
}

fn close(a: &Chunk, b: &Chunk) -> Result<(), String> {
    if a.shape() != b.shape() {
        return Err(format!("shape {:?} vs {:?}", a.shape(), b.shape()));
    }
    if a.dtype() != b.dtype() {
        return Err(format!("dtype {} vs {}", a.dtype(), b.dtype()));
    }
    let exact = !a.dtype().is_float();
    let tol = if a.dtype() == DType::F32 { 1e-6 } else { 1e-12 };
    for (i, (x, y)) in a.to_f64_vec().into_iter().zip(b.to_f64_vec()).enumerate() {
        let ok = if exact {
            x == y
        } else {
            (x.is_nan() && y.is_nan())
                || x == y
                || (x - y).abs() <= tol * x.abs().max(y.abs()) + 1e-9
        };
        if !ok {
            return Err(format!("element {i}: {x} vs {y}"));
        }
    }
    Ok(())
}

fn data() -> impl Strategy<Value = (Vec<usize>, Vec<f64>, bool, Vec<usize>)> {
    (proptest::collection::vec(prop_oneof![9 => 1usize..8, 1 => Just(0usize)], 0..4), any::<bool>(), proptest::collection::vec(1usize..5, 3)).prop_flat_map(|(shape, ints, chunks)| {
        let n: usize = shape.iter().product();
        let vals = proptest::collection::vec(
            prop_oneof![8 => (-20i32..20).prop_map(f64::from), 1 => Just(f64::NAN), 2 => -5.0f64..5.0],
            n,
        );
        (Just(shape), vals, Just(ints), Just(chunks))
    })
}

/// Cases the property runs; at least [`MIN_COMPARED`] of them must get as far as comparing
/// computed values (the others stop where both sides refuse the same operation, which
/// proves less).
const CASES: u32 = 512;
const MIN_COMPARED: usize = 450;

#[test]
fn chunked_chains_equal_whole_array() {
    let compared = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let failed_compute = AtomicUsize::new(0);
    let from_source = AtomicUsize::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    });
    let strategy = (data(), proptest::collection::vec(step(), 1..4));
    let result = runner.run(&strategy, |((shape, vals, ints, chunks), steps)| {
        let dtype = if ints { DType::I64 } else { DType::F64 };
        let vals: Vec<f64> = if ints {
            vals.iter()
                .map(|v| if v.is_nan() { 3.0 } else { v.trunc() })
                .collect()
        } else {
            vals
        };
        let whole = Chunk::from_f64_vec(&shape, vals, dtype).unwrap();
        let sizes: Vec<usize> = (0..shape.len()).map(|a| chunks[a % 3]).collect();
        let mut chunked = ChunkedArray::from_chunk(whole.clone(), Chunking::Sizes(sizes)).unwrap();
        // half the cases read the chunked side from a source in slabs of 1-4 rows
        if !shape.is_empty() && !shape.contains(&0) && chunks[2] % 2 == 1 {
            let source = MemSource {
                whole: whole.clone(),
                chunks: chunked.chunks().to_vec(),
                slab: chunks[1],
            };
            chunked = ChunkedArray::from_source(
                Arc::new(source),
                &shape,
                chunked.chunks().to_vec(),
                dtype,
            )
            .unwrap();
            from_source.fetch_add(1, Ordering::Relaxed);
        }
        let mut reference =
            ChunkedArray::from_chunk(whole, Chunking::Sizes(vec![0; shape.len()])).unwrap();
        for (i, s) in steps.iter().enumerate() {
            let c = apply(&chunked, s, Some(chunks[i % 3]));
            let r = apply(&reference, s, None);
            match (c, r) {
                (Ok(c), Ok(r)) => {
                    prop_assert_eq!(c.shape(), r.shape(), "after {:?}", s);
                    prop_assert_eq!(c.dtype(), r.dtype(), "after {:?}", s);
                    chunked = c;
                    reference = r;
                }
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a.to_string(), b.to_string());
                    refused.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                (c, r) => prop_assert!(
                    false,
                    "build outcome differs after {:?}: {:?} vs {:?}",
                    s,
                    c.err(),
                    r.err()
                ),
            }
        }
        let got = chunked.compute_with(&LocalExecutor::threads(2));
        let want = reference.compute_with(&LocalExecutor::Synchronous);
        match (got, want) {
            (Ok(g), Ok(w)) => {
                if let Err(e) = close(&g, &w) {
                    prop_assert!(false, "{e} after {:?}", steps);
                }
                compared.fetch_add(1, Ordering::Relaxed);
            }
            (Err(_), Err(_)) => {
                failed_compute.fetch_add(1, Ordering::Relaxed);
            }
            (g, w) => prop_assert!(
                false,
                "compute outcome differs: {:?} vs {:?}",
                g.err(),
                w.err()
            ),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (c, r, f) = (
        compared.into_inner(),
        refused.into_inner(),
        failed_compute.into_inner(),
    );
    let sourced = from_source.into_inner();
    println!(
        "{CASES} cases: {c} computed and compared, {r} refused by both while building, \
         {f} failed by both while computing; {sourced} read from a slabbed source"
    );
    assert!(
        sourced > CASES as usize / 5,
        "only {sourced} cases read from a source"
    );
    assert_eq!(c + r + f, CASES as usize, "every case is counted once");
    assert!(
        c >= MIN_COMPARED,
        "only {c} of {CASES} cases computed and compared values"
    );
}
