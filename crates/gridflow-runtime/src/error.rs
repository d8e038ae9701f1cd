//! The error type of the runtime.

use gridflow_graph::{GraphError, Key};
use thiserror::Error;

/// Errors while executing a task graph.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// A task's operation failed; names the key of the chunk it was computing.
    #[error("task {key} ({op}) failed: {message}")]
    TaskFailed {
        /// The failing task's key.
        key: Key,
        /// The operation's label.
        op: String,
        /// The operation's error message.
        message: String,
    },
    /// A task panicked; the panic was caught so that it does not cross the API.
    #[error("task {key} ({op}) panicked: {message}")]
    TaskPanicked {
        /// The task's key.
        key: Key,
        /// The operation's label.
        op: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The graph is malformed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The executor itself failed (a cluster's connection, a lost worker...), not a task.
    #[error("executor: {0}")]
    Executor(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The thread pool could not be started.
    #[error("could not start worker threads: {0}")]
    Spawn(String),
    /// A memory size that does not parse ([`crate::parse_size`]).
    #[error("memory size {text:?}: {detail}")]
    InvalidSize {
        /// The text given.
        text: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// The result type of the runtime.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
