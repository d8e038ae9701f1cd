//! The distributed runtime of gridflow: a scheduler, worker processes and a client, over
//! TCP.
//!
//! A [`Client`] is an [`gridflow_runtime::Executor`]: it ships a graph compiled on the
//! client (tasks in priority order, payloads serialized once) to the scheduler, which
//! places tasks on workers ([`core::Core`], a state machine without I/O) without decoding
//! them; workers run the tasks with the same [`gridflow_runtime::Execute`] operations as
//! the local executor, fetch missing inputs from the peers holding them, and the client
//! gathers the outputs straight from the workers. [`LocalCluster`] starts a scheduler and
//! worker processes on this machine. The wire protocol is described in `docs/protocol.md`.
//!
//! ```no_run
//! use gridflow_distributed::LocalCluster;
//! let cluster = LocalCluster::new(2, 1, 0)?;
//! let client = cluster.client()?;
//! assert_eq!(client.workers()?.len(), 2);
//! # Ok::<(), gridflow_distributed::DistError>(())
//! ```

pub mod adaptive;
pub mod auth;
mod client;
mod cluster;
pub mod core;
pub mod dashboard;
mod deploy;
pub mod error;
pub mod frame;
pub mod futures;
pub mod logging;
pub mod machine;
pub mod memory;
pub mod messages;
pub mod node;
pub mod scheduler;
pub mod testing;
pub mod worker;

pub use adaptive::{Adaptive, AdaptiveOptions};
pub use auth::{Security, TlsFiles};
pub use client::{AsCompleted, Client, GatherHook, Persistent};
pub use cluster::{LocalCluster, LocalClusterOptions};
pub use deploy::{Cluster, WorkerState, WorkerStatus};
pub use error::{DistError, Result};
pub use futures::{Future, FutureStatus};
pub use worker::WorkerOptions;
