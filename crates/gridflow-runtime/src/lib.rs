//! Executors for gridflow task graphs.
//!
//! An [`Executor`] runs a compiled graph of [`Execute`] operations and returns its outputs;
//! arrays, datasets and the CLI take `&dyn Executor<O>` and do not care where tasks run.
//! [`LocalExecutor::Synchronous`] runs tasks one by one on the calling thread (for
//! debugging); [`LocalExecutor::Threads`] runs them on a local thread pool in memory-aware
//! priority order, holding back new source tasks while the results held in memory exceed
//! the budget. The policy (what starts next, what is released, what is admitted) is a
//! state machine without I/O, [`SchedulingState`], that the pool drives.
//! [`conformance`] is the behaviour every executor must show, as a test suite.

pub mod conformance;
pub mod error;
mod executor;
mod local;
mod size;
pub mod state;
mod wire;

pub use error::{Result, RuntimeError};
pub use executor::{
    Executor, Persisted, Plan, Progress, ProgressFn, RunReport, TaskObserver, TaskObserverFn,
    TaskRun,
};
pub use local::LocalExecutor;
pub use size::parse_size;
pub use state::{Admission, SchedulingState};
pub use wire::WireValue;

use gridflow_graph::Operation;

/// An operation that can run: given the values of its inputs, produce its output.
pub trait Execute: Operation {
    /// What tasks produce and consume (a chunk, a partial reduction...).
    type Value: Send + Sync + 'static;
    /// The error an operation can fail with.
    type Error: std::fmt::Display;

    /// Computes the output from the inputs, in the task's input order.
    fn execute(&self, inputs: &[&Self::Value]) -> std::result::Result<Self::Value, Self::Error>;

    /// Like [`Execute::execute`], but owning the inputs: inside a fused task, intermediate
    /// values are held only by this call, so an operation may reuse their buffers instead of
    /// allocating (`Arc::try_unwrap` succeeds exactly then). The default borrows.
    fn execute_owned(
        &self,
        inputs: Vec<std::sync::Arc<Self::Value>>,
    ) -> std::result::Result<Self::Value, Self::Error> {
        let refs: Vec<&Self::Value> = inputs.iter().map(|v| &**v).collect();
        self.execute(&refs)
    }

    /// Optionally evaluates a whole (fused) expression at once, given the task's input
    /// values, e.g. to stream a chain of elementwise operations through a cache-sized
    /// buffer instead of one full pass per operation. `None` means: evaluate it node by node.
    fn execute_fused(
        _expr: &gridflow_graph::Expr<Self>,
        _inputs: &[std::sync::Arc<Self::Value>],
    ) -> Option<std::result::Result<Self::Value, Self::Error>> {
        None
    }

    /// Bytes a value holds in memory (for the memory budget and reports).
    fn nbytes(value: &Self::Value) -> usize;
}

/// Runs one (possibly fused) task expression on the calling thread: what a local pool
/// thread and a distributed worker both do with a task and its input values. A panic in an
/// operation is caught and returned as [`RuntimeError::TaskPanicked`].
pub fn run_task<O: Execute>(
    expr: &gridflow_graph::Expr<O>,
    inputs: &[std::sync::Arc<O::Value>],
    key: &gridflow_graph::Key,
) -> Result<std::sync::Arc<O::Value>> {
    local::run_expr(expr, inputs, key)
}
