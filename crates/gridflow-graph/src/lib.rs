//! Task graphs for gridflow.
//!
//! A task is data: an operation value (any serializable type implementing [`Operation`])
//! applied to the outputs of other tasks named by their [`Key`]s. A [`Graph`] maps keys to
//! tasks; it can be merged, culled to the outputs a computation needs ([`Graph::cull`]),
//! fused ([`Graph::fuse`]), ordered for low memory use ([`Graph::order`]) and drawn
//! ([`Graph::to_dot`], [`Graph::to_svg`]).

pub mod compile;
pub mod draw;
pub mod error;
pub mod graph;
pub mod key;
pub mod order;
pub mod task;

pub use compile::{Compiled, DenseTasks, Indexed, Program, Runnable};
pub use error::{GraphError, Result};
pub use graph::{Graph, GraphStats};
pub use key::{Key, Tokenizer, tokenize};
pub use task::{Expr, Operation, Task};
