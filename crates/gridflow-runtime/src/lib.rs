//! Executors for gridflow task graphs.

pub mod error;
pub use error::{Result, RuntimeError};
