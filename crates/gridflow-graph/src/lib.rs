//! Task graphs for gridflow.
//!
//! A task is data: an operation value (any serializable type implementing [`Operation`])
//! applied to the outputs of other tasks named by their [`Key`]s. A [`Graph`] maps keys to
//! tasks; it can be merged, culled to the outputs a computation needs, fused, ordered for
//! low memory use and drawn (DOT or a self-contained SVG).

pub mod error;
pub mod key;

pub use error::{GraphError, Result};
pub use key::{Key, Tokenizer, tokenize};
