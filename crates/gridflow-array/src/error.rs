//! The error type of the array layer.

use thiserror::Error;

/// Everything that can go wrong while building or computing a chunked array.
#[derive(Debug, Error)]
pub enum ArrayError {
    /// Shapes that do not fit together (broadcasting, concatenation, reshape...).
    #[error("{op}: {detail}")]
    Shape {
        /// The operation, e.g. `add` or `concatenate`.
        op: String,
        /// What did not fit, with the shapes involved.
        detail: String,
    },
    /// An axis outside the array's dimensions, or repeated.
    #[error("{op}: axis {axis} is out of range for an array with {ndim} dimension(s)")]
    Axis {
        /// The operation.
        op: String,
        /// The axis as given.
        axis: isize,
        /// The array's number of dimensions.
        ndim: usize,
    },
    /// A dtype the operation does not accept.
    #[error("{op}: {detail}")]
    DType {
        /// The operation.
        op: String,
        /// Which dtype and why.
        detail: String,
    },
    /// An index or slice outside the array.
    #[error("{op}: {detail}")]
    Index {
        /// The operation.
        op: String,
        /// Which index and the bounds.
        detail: String,
    },
    /// Invalid chunk sizes.
    #[error("{op}: {detail}")]
    Chunks {
        /// The operation.
        op: String,
        /// What is wrong with the chunks.
        detail: String,
    },
    /// A `map_blocks` kernel or a read source name that nobody registered.
    #[error("{what} {name:?} is not registered{hint}")]
    NotRegistered {
        /// "kernel" or "source kind".
        what: &'static str,
        /// The name looked up.
        name: String,
        /// The registered names, for the message.
        hint: String,
    },
    /// A kernel failed while computing one chunk.
    #[error("{op} failed: {detail}")]
    Kernel {
        /// The operation.
        op: String,
        /// What went wrong.
        detail: String,
    },
    /// The task graph would need more memory than the graph budget allows (too many blocks).
    #[error(
        "{op}: the task graph would hold {tasks} tasks, more than the {max_tasks} that fit in the graph memory limit of {limit} bytes (about 1 KiB per task); choose bigger chunks, select or reduce less at once, or raise the limit (gridflow: --memory-limit; library: gridflow_array::set_graph_memory_limit)"
    )]
    GraphTooLarge {
        /// The operation that would build or compile the graph.
        op: String,
        /// How many tasks it would hold (as text: it may exceed `usize`).
        tasks: String,
        /// The graph memory limit in bytes.
        limit: usize,
        /// The most tasks that limit allows.
        max_tasks: usize,
    },
    /// A store read failed (the store layer fills in the store, array and chunk key).
    #[error("read failed: {0}")]
    Read(String),
    /// The task graph could not be built or scheduled.
    #[error(transparent)]
    Graph(#[from] gridflow_graph::GraphError),
    /// Computing the graph failed (the message names the chunk's key).
    #[error(transparent)]
    Runtime(#[from] gridflow_runtime::RuntimeError),
}

/// The result type of the array layer.
pub type Result<T, E = ArrayError> = std::result::Result<T, E>;
