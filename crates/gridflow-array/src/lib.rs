//! Chunked lazy n-dimensional arrays for gridflow: the equivalent of Dask Array.
//!
//! A [`ChunkedArray`] is a shape, a chunking and a dtype plus the task graph that
//! produces its blocks. Operations add tasks; nothing runs until [`ChunkedArray::compute`].
//! Blocks are dtype-dynamic [`Chunk`]s backed by `ndarray`; the per-block work lives in
//! [`kernels`], and every task's operation is an [`ArrayOp`] value, so graphs can be
//! inspected, drawn, serialized and run on any executor.
//!
//! ```
//! use gridflow_array::{ChunkedArray, DType};
//! use gridflow_runtime::LocalExecutor;
//! let x = ChunkedArray::random(&[400, 300], [100, 100], 42).unwrap();
//! let anomaly = x.sub(&x.mean(Some(&[0])).unwrap()).unwrap();
//! let std = anomaly.std(Some(&[0]), 0).unwrap();
//! let values = std.compute_with(&LocalExecutor::threads(2)).unwrap();
//! assert_eq!(values.shape(), &[300]);
//! ```

pub mod array;
pub mod chunk;
pub mod chunkspec;
pub mod dtype;
pub mod elementwise;
pub mod error;
mod exec;
pub mod groupby;
pub mod indexing;
pub mod kernels;
pub mod limits;
mod lower;
pub mod ops;
mod plan;
pub mod reduction;
pub mod registry;
mod stream;
mod wire;

pub use array::{ChunkedArray, Chunking, normalize_chunks};
pub use chunk::{Chunk, Element};
pub use chunkspec::{AxisChunks, ChunkNumber, ChunkSpec};
pub use dtype::{DType, Scalar, promote};
pub use elementwise::{Operand, where_};
pub use error::{ArrayError, Result};
pub use gridflow_runtime::{Executor, LocalExecutor};
/// The former name of [`LocalExecutor`], kept while the remaining callers move to
/// [`Executor`]; the name belongs to the distributed scheduler.
pub type Scheduler = LocalExecutor;
pub use indexing::Indexer;
pub use limits::{graph_memory_limit, set_graph_memory_limit};
pub use ops::{ArrayOp, StreamPlan, Value};
pub use reduction::ReduceOptions;
pub use registry::{ChunkSource, register_kernel, register_source_kind};
