//! The chunked array's public behaviour: constructors, values, errors, persist, graphs.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use gridflow_array::kernels::BinaryOp;
use gridflow_array::{
    ArrayError, ArrayOp, Chunk, ChunkSource, ChunkedArray, Chunking, DType, Indexer, LocalExecutor,
    Scalar, register_kernel, register_source_kind, where_,
};
use gridflow_graph::Graph;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn values(a: &ChunkedArray) -> Vec<f64> {
    a.compute_with(&LocalExecutor::threads(2))
        .unwrap()
        .to_f64_vec()
}

#[test]
fn constructors_give_numpy_values() {
    let a = ChunkedArray::arange(0.0, 10.0, 3.0, 2, DType::I64).unwrap();
    assert_eq!(values(&a), vec![0.0, 3.0, 6.0, 9.0]);
    assert_eq!(a.chunks(), &[vec![2, 2]]);
    let l = ChunkedArray::linspace(0.0, 1.0, 5, 2).unwrap();
    assert_eq!(values(&l), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    let f = ChunkedArray::full(&[2, 3], Scalar::Float(2.5), [1, 2], DType::F32).unwrap();
    assert_eq!(f.chunks(), &[vec![1, 1], vec![2, 1]]);
    assert_eq!(values(&f), vec![2.5; 6]);
    let z = ChunkedArray::zeros(&[0, 4], [2, 2], DType::U8).unwrap();
    assert_eq!(z.compute().unwrap().shape(), &[0, 4]);
}

#[test]
fn random_is_reproducible_and_uniform() {
    let a = values(&ChunkedArray::random(&[100, 100], [30, 40], 7).unwrap());
    let b = values(&ChunkedArray::random(&[100, 100], [30, 40], 7).unwrap());
    let c = values(&ChunkedArray::random(&[100, 100], [30, 40], 8).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
    let mean = a.iter().sum::<f64>() / a.len() as f64;
    assert!((mean - 0.5).abs() < 0.02, "{mean}");
}

#[test]
fn irregular_chunks_are_accepted_and_checked() {
    let data = Chunk::from_f64_vec(&[6], (0..6).map(f64::from).collect(), DType::F64).unwrap();
    let a =
        ChunkedArray::from_chunk(data.clone(), Chunking::Explicit(vec![vec![1, 4, 1]])).unwrap();
    assert_eq!(a.numblocks(), vec![3]);
    assert_eq!(
        a.sum(None).unwrap().compute_scalar().unwrap(),
        Scalar::Float(15.0)
    );
    let e = ChunkedArray::from_chunk(data, Chunking::Explicit(vec![vec![2, 2]]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("add up to 4, not the length 6"), "{e}");
}

#[test]
fn float32_sums_accumulate_in_float64_and_stay_float32() {
    let x = ChunkedArray::full(&[4_000_000], Scalar::Float(0.1), [250_000], DType::F32).unwrap();
    let s = x.sum(None).unwrap();
    assert_eq!(s.dtype(), DType::F32);
    let got = s.compute_scalar().unwrap().as_f64();
    let exact = f64::from(0.1f32) * 4e6;
    assert!(((got - exact) / exact).abs() < 1e-7, "{got} vs {exact}");
    let m = x.mean(None).unwrap().compute_scalar().unwrap().as_f64();
    assert!((m - f64::from(0.1f32)).abs() < 1e-8);
}

#[test]
fn nan_skipping_reductions_like_xarray() {
    let data = Chunk::from_f64_vec(
        &[2, 3],
        vec![1.0, f64::NAN, 3.0, f64::NAN, f64::NAN, f64::NAN],
        DType::F64,
    )
    .unwrap();
    let x = ChunkedArray::from_chunk(data, [1, 2]).unwrap();
    assert_eq!(values(&x.sum(Some(&[1])).unwrap()), vec![4.0, 0.0]);
    let m = values(&x.mean(Some(&[1])).unwrap());
    assert_eq!(m[0], 2.0);
    assert!(m[1].is_nan());
    assert_eq!(values(&x.count(Some(&[1])).unwrap()), vec![2.0, 0.0]);
    assert_eq!(values(&x.max(None).unwrap()), vec![3.0]);
    assert_eq!(
        values(
            &x.argmax(Some(1))
                .unwrap()
                .index(&[Indexer::Index(0)])
                .unwrap()
        ),
        vec![2.0]
    );
}

#[test]
fn var_std_and_arg_reductions() {
    let v: Vec<f64> = (0..24).map(|i| f64::from((i * 7) % 11)).collect();
    let x = ChunkedArray::from_chunk(
        Chunk::from_f64_vec(&[4, 6], v.clone(), DType::F64).unwrap(),
        [3, 4],
    )
    .unwrap();
    let mean = v.iter().sum::<f64>() / 24.0;
    let var1 = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 23.0;
    let got = x.var(None, 1).unwrap().compute_scalar().unwrap().as_f64();
    assert!((got - var1).abs() < 1e-12, "{got} vs {var1}");
    let std0 = x.std(None, 0).unwrap().compute_scalar().unwrap().as_f64();
    assert!((std0 - (var1 * 23.0 / 24.0).sqrt()).abs() < 1e-12);
    // argmin over all axes: flat index of the first minimum (value 0 at i = 0, 11, 22).
    assert_eq!(
        x.argmin(None).unwrap().compute_scalar().unwrap(),
        Scalar::Int(0)
    );
    let x2 = x.add(1.0).unwrap().rem(11.0).unwrap();
    let first_zero = v.iter().position(|a| (a + 1.0) % 11.0 == 0.0).unwrap() as i64;
    assert_eq!(
        x2.argmin(None).unwrap().compute_scalar().unwrap(),
        Scalar::Int(first_zero)
    );
}

#[test]
fn broadcasting_aligns_chunks() {
    let a = ChunkedArray::ones(&[6, 4], [4, 3], DType::F64).unwrap();
    let b = ChunkedArray::arange(0.0, 4.0, 1.0, 1, DType::F64).unwrap();
    let c = a.add(&b).unwrap();
    assert_eq!(c.shape(), &[6, 4]);
    assert_eq!(c.chunks()[1], vec![1, 1, 1, 1]);
    assert_eq!(
        values(&c.sum(Some(&[0])).unwrap()),
        vec![6.0, 12.0, 18.0, 24.0]
    );
    let col = ChunkedArray::ones(&[6, 1], [2, 1], DType::F64).unwrap();
    let d = a.mul(&col).unwrap();
    assert_eq!(d.chunks()[0], vec![2, 2, 2]);
}

#[test]
fn shape_and_dtype_mistakes_fail_at_build_time_with_names() {
    let a = ChunkedArray::ones(&[3, 4], [2, 2], DType::F64).unwrap();
    let b = ChunkedArray::ones(&[5], [2], DType::F64).unwrap();
    let e = a.add(&b).unwrap_err();
    assert!(matches!(e, ArrayError::Shape { .. }));
    let m = e.to_string();
    assert!(
        m.contains("add") && m.contains("[3, 4]") && m.contains("[5]"),
        "{m}"
    );
    let e = a.sum(Some(&[2])).unwrap_err().to_string();
    assert!(
        e.contains("sum") && e.contains("axis 2") && e.contains("2 dimension"),
        "{e}"
    );
    let e = a.binary(BinaryOp::And, &a).unwrap_err().to_string();
    assert!(e.contains("and") || e.contains("bitwise"), "{e}");
    let e = a.index(&[Indexer::Index(3)]).unwrap_err().to_string();
    assert!(
        e.contains("index 3 is out of bounds for axis 0 with size 3"),
        "{e}"
    );
    let e = a.transpose(Some(&[0, 0])).unwrap_err().to_string();
    assert!(e.contains("transpose"), "{e}");
    let e = ChunkedArray::concatenate(&[&a, &b], 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("concatenate"), "{e}");
}

#[test]
fn failing_kernels_name_the_chunk_key() {
    register_kernel("fails-on-block-1", |blocks: &[&Chunk], _| {
        if blocks[0].to_f64_vec().first() == Some(&4.0) {
            Err(ArrayError::Kernel {
                op: "fails-on-block-1".into(),
                detail: "bad block".into(),
            })
        } else {
            Ok(blocks[0].clone())
        }
    });
    let x = ChunkedArray::arange(0.0, 12.0, 1.0, 4, DType::F64).unwrap();
    let y = x
        .map_blocks("fails-on-block-1", &[], serde_json::Value::Null, DType::F64)
        .unwrap();
    let e = y
        .compute_with(&LocalExecutor::threads(2))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("('{}', 1)", y.name())), "{e}");
    assert!(e.contains("bad block"), "{e}");
    // Unknown kernels are refused when the graph is built.
    let e = x
        .map_blocks("nope", &[], serde_json::Value::Null, DType::F64)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"nope\" is not registered"), "{e}");
}

#[test]
fn map_blocks_runs_registered_kernels_with_params() {
    register_kernel("scale-by", |blocks: &[&Chunk], p: &serde_json::Value| {
        let k = p
            .get("k")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(1.0);
        gridflow_array::kernels::binary_scalar(BinaryOp::Mul, blocks[0], Scalar::Float(k), false)
    });
    let x = ChunkedArray::arange(0.0, 6.0, 1.0, 4, DType::F64).unwrap();
    let y = x
        .map_blocks("scale-by", &[], serde_json::json!({"k": 3.0}), DType::F64)
        .unwrap();
    assert_eq!(values(&y), vec![0.0, 3.0, 6.0, 9.0, 12.0, 15.0]);
}

#[test]
fn slicing_take_and_reshaping() {
    let v: Vec<f64> = (0..20).map(f64::from).collect();
    let x = ChunkedArray::from_chunk(Chunk::from_f64_vec(&[4, 5], v, DType::F64).unwrap(), [3, 2])
        .unwrap();
    let s = x
        .index(&[
            Indexer::Slice {
                start: None,
                stop: None,
                step: Some(-2),
            },
            Indexer::Index(-1),
        ])
        .unwrap();
    assert_eq!(s.shape(), &[2]);
    assert_eq!(values(&s), vec![19.0, 9.0]);
    let t = x.take(&[4, 0, 1, -1], 1).unwrap();
    assert_eq!(
        values(&t.index(&[Indexer::Index(1)]).unwrap()),
        vec![9.0, 5.0, 6.0, 9.0]
    );
    let tr = x.transpose(None).unwrap();
    assert_eq!(tr.shape(), &[5, 4]);
    assert_eq!(
        values(&tr.index(&[Indexer::Index(1)]).unwrap()),
        vec![1.0, 6.0, 11.0, 16.0]
    );
    let e = x.expand_dims(1).unwrap();
    assert_eq!(e.shape(), &[4, 1, 5]);
    assert_eq!(e.squeeze(None).unwrap().shape(), &[4, 5]);
    let one = x.rechunk(Chunking::Sizes(vec![0, 0])).unwrap();
    assert_eq!(one.npartitions(), 1);
    assert_eq!(values(&one), values(&x));
    let st = ChunkedArray::stack(&[&x, &x], 0).unwrap();
    assert_eq!(st.shape(), &[2, 4, 5]);
}

#[test]
fn where_keeps_dtype_with_a_nan_fill() {
    let x = ChunkedArray::arange(0.0, 6.0, 1.0, 4, DType::F32).unwrap();
    let y = where_(&x.gt(2.0).unwrap(), &x, f64::NAN).unwrap();
    assert_eq!(y.dtype(), DType::F32);
    let v = values(&y);
    assert!(v[..3].iter().all(|a| a.is_nan()));
    assert_eq!(&v[3..], &[3.0, 4.0, 5.0]);
}

#[test]
fn same_computation_gets_the_same_key_and_is_shared() {
    let x = ChunkedArray::random(&[100], [10], 1).unwrap();
    let a = x.mul(2.0).unwrap();
    let b = x.mul(2.0).unwrap();
    assert_eq!(a.name(), b.name());
    let c = a.add(&b).unwrap();
    // x: 10 blocks, 2*x: 10 blocks (shared), add: 10 blocks.
    assert_eq!(c.graph().len(), 30);
    // random -> mul fuses into one task per block; add reads that result twice, so it stays
    // a task of its own rather than computing 2*x twice.
    let g = c.optimized_graph().unwrap();
    assert_eq!(g.len(), 20);
    let add = g.get(&c.block_key(&[0])).unwrap();
    assert_eq!(add.inputs, vec![a.block_key(&[0])]);
    let values = c.compute().unwrap().to_f64_vec();
    let xs = x.compute().unwrap().to_f64_vec();
    assert!(values.iter().zip(&xs).all(|(v, x)| *v == 4.0 * x));
}

#[test]
fn task_counts_and_drawings() {
    let x = ChunkedArray::ones(&[1000, 1000], [100, 100], DType::F64).unwrap();
    let s = x.add(1.0).unwrap().sum(None).unwrap();
    let before = s.graph().len();
    let after = s.optimized_graph().unwrap().len();
    // ones, add and sum-chunk per block; combines with fan-in 3 per axis (split_every 8
    // over 2 axes): 4x4, 2x2, 1x1; then the final aggregate.
    assert_eq!(before, 100 * 3 + 16 + 4 + 1 + 1);
    assert!(after < before, "{after} < {before}");
    let svg = s.to_svg().unwrap();
    assert!(
        svg.contains("full(1)+add(1)+sum-chunk"),
        "fused labels are drawn"
    );
    assert!(s.to_dot().unwrap().contains("sum-combine"));
}

#[test]
fn persist_keeps_blocks_in_memory() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    register_kernel("count-calls", |blocks: &[&Chunk], _| {
        CALLS.fetch_add(1, Ordering::SeqCst);
        Ok(blocks[0].clone())
    });
    let x = ChunkedArray::arange(0.0, 100.0, 1.0, 10, DType::F64).unwrap();
    let y = x
        .map_blocks("count-calls", &[], serde_json::Value::Null, DType::F64)
        .unwrap();
    let p = y.persist_with(&LocalExecutor::threads(2)).unwrap();
    assert_eq!(CALLS.load(Ordering::SeqCst), 10);
    assert_eq!(p.name(), y.name());
    let total = p.sum(None).unwrap().compute_scalar().unwrap();
    let mean = p.mean(None).unwrap().compute_scalar().unwrap();
    assert_eq!(total, Scalar::Float(4950.0));
    assert_eq!(mean, Scalar::Float(49.5));
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        10,
        "persisted blocks are not recomputed"
    );
}

#[test]
fn memory_budget_bounds_held_results() {
    // 64 blocks of 1 MiB each, summed under a 4 MiB budget.
    let x = ChunkedArray::ones(&[64 * 131_072], [131_072], DType::F64).unwrap();
    let s = x.mul(2.0).unwrap().sum(None).unwrap();
    let (c, report) = s
        .compute_with_report(&LocalExecutor::threads(2).with_memory_limit(4 << 20))
        .unwrap();
    assert_eq!(c.scalar(), Some(Scalar::Float(2.0 * 64.0 * 131_072.0)));
    // Partials are tiny; blocks are reduced as soon as they are made (fused).
    assert!(
        report.peak_held_bytes < 1 << 20,
        "peak {}",
        report.peak_held_bytes
    );
}

/// A source that makes blocks from their index, standing in for a store.
#[derive(Debug)]
struct CountingSource {
    reads: AtomicUsize,
}

impl ChunkSource for CountingSource {
    fn kind(&self) -> &str {
        "test-counting"
    }
    fn spec(&self) -> String {
        "blocks-of-4".into()
    }
    fn read_block(&self, block: &[usize]) -> gridflow_array::Result<Chunk> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let start = block[0] as f64 * 4.0;
        Chunk::from_f64_vec(
            &[4],
            (0..4).map(|i| start + f64::from(i)).collect(),
            DType::F32,
        )
    }
}

#[test]
fn lazy_reads_from_a_source_and_graphs_serialize() {
    let src = Arc::new(CountingSource {
        reads: AtomicUsize::new(0),
    });
    let x = ChunkedArray::from_source(src.clone(), &[16], vec![vec![4; 4]], DType::F32).unwrap();
    let part = x.index(&[Indexer::range(4, 8)]).unwrap().sum(None).unwrap();
    assert_eq!(part.compute_scalar().unwrap(), Scalar::Float(22.0));
    assert_eq!(
        src.reads.load(Ordering::SeqCst),
        1,
        "culling reads only the block needed"
    );

    // Read tasks serialize as (kind, spec) and are rebuilt through the registry.
    register_source_kind("test-counting", |_spec| {
        Ok(Arc::new(CountingSource {
            reads: AtomicUsize::new(0),
        }) as Arc<dyn ChunkSource>)
    });
    let g = part.optimized_graph().unwrap();
    let json = serde_json::to_string(&g).unwrap();
    assert!(json.contains("test-counting"));
    let back: Graph<ArrayOp> = serde_json::from_str(&json).unwrap();
    let v = LocalExecutor::Synchronous.run(&back, &part.keys()).unwrap();
    match &*v[0] {
        gridflow_array::Value::Chunk(c) => assert_eq!(c.scalar(), Some(Scalar::Float(22.0))),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn long_elementwise_chains_stream_through_tiles_exactly() {
    // Blocks larger than the streaming tile, with a dtype change inside the chain.
    let x = ChunkedArray::random(&[50_000, 3], [20_000, 3], 5).unwrap();
    let y = x
        .mul(2.0)
        .unwrap()
        .add(1.0)
        .unwrap()
        .sqrt()
        .unwrap()
        .astype(DType::F32)
        .unwrap()
        .neg()
        .unwrap();
    let got = y.compute_with(&LocalExecutor::threads(2)).unwrap();
    assert_eq!(got.dtype(), DType::F32);
    assert_eq!(got.shape(), &[50_000, 3]);
    let xs = x.compute().unwrap().to_f64_vec();
    for (g, v) in got.to_f64_vec().iter().zip(&xs) {
        assert_eq!(*g, f64::from(-((2.0 * v + 1.0).sqrt() as f32)));
    }
    // The same chain over a persisted (literal) array, feeding a reduction.
    let p = x.persist().unwrap();
    let s = p
        .mul(2.0)
        .unwrap()
        .add(1.0)
        .unwrap()
        .sqrt()
        .unwrap()
        .sum(None)
        .unwrap()
        .compute_scalar()
        .unwrap()
        .as_f64();
    let want: f64 = xs.iter().map(|v| (2.0 * v + 1.0).sqrt()).sum();
    assert!((s - want).abs() < 1e-9 * want, "{s} vs {want}");
    // Reductions over every axis are streamed tile by tile too; compare var and max with
    // the same chain computed block by block (no fusion possible through a persisted block).
    let chain = p.mul(2.0).unwrap().add(1.0).unwrap().sqrt().unwrap();
    let direct = chain.persist().unwrap();
    for (a, b) in [
        (chain.var(None, 1).unwrap(), direct.var(None, 1).unwrap()),
        (chain.max(None).unwrap(), direct.max(None).unwrap()),
        (chain.mean(None).unwrap(), direct.mean(None).unwrap()),
    ] {
        let (a, b) = (
            a.compute_scalar().unwrap().as_f64(),
            b.compute_scalar().unwrap().as_f64(),
        );
        assert!((a - b).abs() <= 1e-12 * b.abs(), "{a} vs {b}");
    }
}

#[test]
fn sum_and_count_share_one_reduction_and_equal_sum_and_count() {
    // NaNs scattered over a (7, 9, 10) float32 array in blocks of (3, 4, 10).
    let v: Vec<f64> = (0..630)
        .map(|i| {
            if i % 13 == 4 {
                f64::NAN
            } else {
                (i % 37) as f64 - 11.5
            }
        })
        .collect();
    let data = Chunk::from_f64_vec(&[7, 9, 10], v, DType::F32).unwrap();
    let x = ChunkedArray::from_chunk(data, [3, 4, 10]).unwrap();
    for axes in [vec![2isize], vec![1, 2], vec![0], vec![0, 1, 2]] {
        let (sum, count) = x.sum_and_count(Some(&axes)).unwrap();
        let want_sum = x.sum(Some(&axes)).unwrap();
        let want_count = x.count(Some(&axes)).unwrap();
        assert_eq!(sum.shape(), want_sum.shape(), "{axes:?}");
        assert_eq!(sum.dtype(), want_sum.dtype(), "{axes:?}");
        assert_eq!(count.dtype(), want_count.dtype(), "{axes:?}");
        let (s, ws) = (values(&sum), values(&want_sum));
        assert!(
            s.iter()
                .zip(&ws)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)),
            "{axes:?}: {s:?} vs {ws:?}"
        );
        assert_eq!(values(&count), values(&want_count), "{axes:?}");
        assert!(values(&count).iter().any(|&c| c > 0.0));
        // Both come from the same partials: the graph of the pair reads every block once.
        // Both come from the same partials: merged, their graphs differ by the count's
        // finalize tasks only (one per output block).
        let mut both = sum.graph();
        both.merge(&count.graph());
        let out_blocks: usize = count.chunks().iter().map(Vec::len).product();
        assert_eq!(both.len(), sum.graph().len() + out_blocks, "{axes:?}");
    }
    let ints = ChunkedArray::ones(&[4], [2], DType::I32).unwrap();
    assert!(ints.sum_and_count(None).is_err());
}
