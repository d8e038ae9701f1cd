//! Bounds on what metadata and user input may make the array layer allocate: the task
//! graph is counted before it is built, against a memory budget that can be raised.

use crate::{ArrayError, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Estimated bytes one task costs from building the graph to running it (the task, its
/// key, its entries in the compiled program and the scheduler's tables). Measured: the
/// CLI's `da.ones((1000000,), chunks=1).sum()` (about two million tasks) peaks at 1.1 GB,
/// so this errs on the safe side by about two.
pub const TASK_BYTES: usize = 1024;

/// Default graph budget: 4 GiB, about four million tasks.
pub const DEFAULT_GRAPH_MEMORY_LIMIT: usize = 4 << 30;

static GRAPH_MEMORY_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_GRAPH_MEMORY_LIMIT);

/// Sets the process-wide memory budget for task graphs, in bytes (the CLI sets it from
/// `--memory-limit`). Building or compiling a graph whose tasks would need more is refused
/// with [`ArrayError::GraphTooLarge`] before anything is allocated.
pub fn set_graph_memory_limit(bytes: usize) {
    GRAPH_MEMORY_LIMIT.store(bytes, Ordering::Relaxed);
}

/// The current graph budget in bytes (see [`set_graph_memory_limit`]).
pub fn graph_memory_limit() -> usize {
    GRAPH_MEMORY_LIMIT.load(Ordering::Relaxed)
}

/// The most tasks the current budget allows.
pub fn max_tasks() -> usize {
    graph_memory_limit() / TASK_BYTES
}

/// Refuses `tasks` tasks if they exceed the budget.
pub(crate) fn check_tasks(op: &str, tasks: usize) -> Result<()> {
    if tasks > max_tasks() {
        return Err(too_large(op, Some(tasks)));
    }
    Ok(())
}

/// The error for a graph of `tasks` tasks (`None`: more than `usize` can count).
pub(crate) fn too_large(op: &str, tasks: Option<usize>) -> ArrayError {
    ArrayError::GraphTooLarge {
        op: op.to_owned(),
        tasks: tasks.map_or_else(|| "more than 2^64".to_owned(), |t| t.to_string()),
        limit: graph_memory_limit(),
        max_tasks: max_tasks(),
    }
}

/// The product of block counts per axis, refused when it overflows or exceeds the budget.
pub(crate) fn count_blocks(op: &str, numblocks: &[usize]) -> Result<usize> {
    let total = numblocks
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| too_large(op, None))?;
    check_tasks(op, total)?;
    Ok(total)
}
