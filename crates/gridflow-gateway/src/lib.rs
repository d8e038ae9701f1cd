//! The gridflow gateway: clusters on demand for many users behind one authenticated
//! address (`docs/gateway.md`).
//!
//! [`GatewayServer`] serves a REST API to create, list, scale, adapt and stop clusters,
//! authenticates users by API token (only hashes kept) or through JupyterHub, runs each
//! cluster as local processes ([`local`]) recorded in SQLite ([`db`]) so they outlive a
//! gateway restart, stops idle clusters, and routes every cluster's clients through its
//! one port (a routing preamble, then bytes relayed to the scheduler). [`Gateway`] is the
//! client: its clusters implement [`gridflow_distributed::Cluster`].

pub mod api;
pub mod auth;
mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod local;
mod server;

pub use client::{ADDRESS_ENV, Gateway, GatewayCluster, JUPYTERHUB_TOKEN_ENV, TOKEN_ENV};
pub use config::{Bounds, ClusterOptions, ClusterSpec, Config};
pub use error::{GatewayError, Result};
pub use server::GatewayServer;

pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
