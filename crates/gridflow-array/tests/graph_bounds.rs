//! Graph sizes come from user input and metadata: they are counted before anything is
//! allocated and refused over the graph budget (issue 12). One test function: the budget
//! is process-wide.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use gridflow_array::{ArrayError, Chunk, ChunkSource, ChunkedArray, DType, LocalExecutor, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A source that counts the blocks it is asked for.
#[derive(Debug, Default)]
struct Counting {
    reads: AtomicUsize,
}

impl ChunkSource for Counting {
    fn kind(&self) -> &str {
        "counting"
    }
    fn spec(&self) -> String {
        "counting".into()
    }
    fn read_block(&self, block: &[usize]) -> Result<Chunk> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(Chunk::full(
            &vec![10; block.len()],
            gridflow_array::Scalar::Int(1),
            DType::F32,
        ))
    }
}

fn too_large(r: Result<ChunkedArray>) -> (String, String) {
    match r {
        Err(ArrayError::GraphTooLarge { op, tasks, .. }) => (op, tasks),
        other => panic!("expected GraphTooLarge, got {other:?}"),
    }
}

#[test]
fn graph_sizes_are_bounded_before_allocation() -> Result<()> {
    // The default budget (4 GiB, about four million tasks).
    assert_eq!(gridflow_array::graph_memory_limit(), 4 << 30);

    // `da.ones((10**12,), chunks=1)`: refused by counting, not by a failed allocation.
    let (_, tasks) = too_large(ChunkedArray::ones(&[1_000_000_000_000], [1], DType::F64));
    assert_eq!(tasks, "1000000000000");
    // A block count beyond usize: refused, no overflow.
    let (_, tasks) = too_large(ChunkedArray::ones(&[1 << 40, 1 << 40], [1, 1], DType::F64));
    assert_eq!(tasks, "more than 2^64");

    // A hundred million store chunks opened lazily: no task is made, and only
    // computing (which would need them all) is refused, naming the count.
    let src = Arc::new(Counting::default());
    let big = ChunkedArray::from_source(
        src.clone(),
        &[100_000, 100_000],
        vec![vec![10; 10_000], vec![10; 10_000]],
        DType::F32,
    )?;
    assert_eq!(big.npartitions(), 100_000_000);
    assert_eq!(big.graph_len(), 100_000_000);
    // Elementwise layers over it stay lazy too (CF decoding adds them on open).
    let masked = big.astype(DType::F64)?.mul(2.0)?;
    assert_eq!(masked.graph_len(), 300_000_000);
    match masked.sum(None) {
        // The first eager layer (the per-block reductions) is counted when built.
        Err(ArrayError::GraphTooLarge { tasks, .. }) => assert_eq!(tasks, "100000000"),
        other => panic!("expected GraphTooLarge, got {other:?}"),
    }
    match masked.compute_with(&LocalExecutor::Synchronous) {
        Err(ArrayError::GraphTooLarge { op, tasks, .. }) => {
            assert_eq!(op, "compute");
            assert_eq!(tasks, "300000000");
        }
        other => panic!("expected GraphTooLarge, got {other:?}"),
    }
    assert_eq!(src.reads.load(Ordering::Relaxed), 0);

    // `--memory-limit 1GB` with `da.ones((3000000,), chunks=1).sum()`: 3 million tasks do
    // not fit in 1 GB at 1 KiB each.
    gridflow_array::set_graph_memory_limit(1_000_000_000);
    let (_, tasks) = too_large(ChunkedArray::ones(&[3_000_000], [1], DType::F64));
    assert_eq!(tasks, "3000000");
    // Under a 100 MB limit (97,656 tasks), 90,000 blocks build; their reduction layer
    // then pushes the graph over it.
    gridflow_array::set_graph_memory_limit(100_000_000);
    let x = ChunkedArray::ones(&[90_000], [1], DType::F64)?;
    match x.sum(None) {
        Err(ArrayError::GraphTooLarge { tasks, .. }) => {
            assert_eq!(tasks, "180000");
        }
        other => panic!("expected GraphTooLarge, got {other:?}"),
    }
    // A graph that fits still computes the right number.
    let ok = ChunkedArray::ones(&[1000], [10], DType::F64)?.sum(None)?;
    assert_eq!(ok.compute_scalar()?.as_f64(), 1000.0);

    // A raised limit lets the big graph through its build-time count.
    gridflow_array::set_graph_memory_limit(usize::MAX);
    let x = ChunkedArray::ones(&[3_000], [1], DType::F64)?;
    assert_eq!(x.npartitions(), 3_000);
    Ok(())
}
