//! Chunked lazy n-dimensional arrays for gridflow: the equivalent of Dask Array.
//!
//! A [`ChunkedArray`] is a shape, a chunking and a dtype plus the task graph that
//! produces its blocks. Operations add tasks; nothing runs until [`ChunkedArray::compute`].

pub mod chunk;
pub mod dtype;
pub mod error;
pub mod kernels;

pub use chunk::{Chunk, Element};
pub use dtype::{DType, Scalar, promote};
pub use error::{ArrayError, Result};
