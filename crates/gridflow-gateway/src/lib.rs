//! The gridflow gateway: clusters on demand for many users behind one authenticated
//! address (`docs/gateway.md`).
//!
//! [`GatewayServer`] serves a REST API to create, list, scale, adapt and stop clusters,
//! authenticates users by API token (only hashes kept) or through JupyterHub, runs each
//! cluster's scheduler as a local process ([`local`]) and its workers on a backend (local
//! processes, Slurm jobs, SSH hosts or Kubernetes pods), records them in SQLite ([`db`])
//! so they outlive a gateway restart, stops idle clusters, and routes every cluster's
//! clients through its one port, optionally TLS (a routing preamble, then bytes relayed
//! to the scheduler). [`Gateway`] is the client: its clusters implement
//! [`gridflow_distributed::Cluster`].

pub mod api;
pub mod auth;
mod backends;
mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod local;
mod server;

pub use client::{ADDRESS_ENV, Gateway, GatewayCluster, JUPYTERHUB_TOKEN_ENV, TOKEN_ENV};
pub use config::{
    BackendConfig, Bounds, ClusterOptions, ClusterSpec, Config, KubernetesConfig, SlurmConfig,
    SshConfig,
};
pub use error::{GatewayError, Result};
pub use server::GatewayServer;

/// Unix time in seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
