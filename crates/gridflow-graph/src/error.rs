//! The error type of the graph layer.

use crate::Key;
use thiserror::Error;

/// Problems with a task graph's structure.
#[derive(Debug, Error)]
pub enum GraphError {
    /// A task names an input that no task produces.
    #[error("task {task} depends on {missing}, which is not in the graph")]
    MissingDependency {
        /// The task with the dangling input.
        task: Key,
        /// The input key that is missing.
        missing: Key,
    },
    /// A requested output is not in the graph.
    #[error("requested output {0} is not in the graph")]
    MissingOutput(Key),
    /// The graph has a cycle through this key.
    #[error("the task graph has a cycle through {0}")]
    Cycle(Key),
    /// Two different tasks were given the same key.
    #[error("two different tasks share the key {0}")]
    Conflict(Key),
    /// A drawing was asked of a graph too large to draw legibly.
    #[error("the graph has {tasks} tasks; drawing is limited to {limit} (cull or select first)")]
    TooLargeToDraw {
        /// Tasks in the graph.
        tasks: usize,
        /// The limit.
        limit: usize,
    },
}

/// The result type of the graph layer.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;
