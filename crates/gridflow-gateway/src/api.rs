//! The REST API's JSON bodies, shared by the server and its clients.

use crate::config::ClusterSpec;
use gridflow_distributed::WorkerStatus;
use serde::{Deserialize, Serialize};

/// A cluster as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterReport {
    /// The cluster's id.
    pub id: String,
    /// The user who made it.
    pub owner: String,
    /// The address clients connect to (`gateway://HOST:PORT/ID`: through the gateway).
    pub address: String,
    /// The cluster's auth token: only in answers to its owner's creation and `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Workers, threads, memory and backend options.
    pub spec: ClusterSpec,
    /// Adaptive bounds, when adapting.
    pub adapt: Option<(usize, usize)>,
    /// Every worker asked for and what became of it (pending and failed ones included).
    pub workers: Vec<WorkerStatus>,
    /// Unix time of creation.
    pub created: f64,
    /// Seconds since the cluster last computed.
    pub idle_seconds: f64,
    /// The dashboard's URL through the gateway, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
}

/// `POST /api/clusters/ID/scale`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// Workers wanted.
    pub workers: usize,
}

/// `POST /api/clusters/ID/adapt`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptRequest {
    /// Fewest workers.
    pub minimum: usize,
    /// Most workers.
    pub maximum: usize,
}

/// An error answer: `{"error": "..."}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// `GET /api/whoami`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The user's name.
    pub name: String,
    /// Whether the user is an administrator.
    pub admin: bool,
}
