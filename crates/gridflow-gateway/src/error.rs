//! The error type of the gateway.

use thiserror::Error;

/// Errors of the gateway server, its backends and its clients.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration file is unreadable or invalid.
    #[error("gateway configuration {path}: {detail}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// No credentials, or credentials nobody knows (HTTP 401).
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The authenticator the token must be checked with (JupyterHub) did not answer, or
    /// answered with an error of its own (HTTP 503: the token may be good; try again).
    #[error("cannot check the token: {0}")]
    AuthUnavailable(String),
    /// The request names a cluster the caller may not see or that does not exist
    /// (HTTP 404: another user's cluster is not revealed).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Options outside the administrator's bounds, or a malformed request (HTTP 400).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The gateway (server) reported an error, as a client sees it.
    #[error("gateway at {address} answered {status}: {message}")]
    Remote {
        /// The gateway's address.
        address: String,
        /// The HTTP status.
        status: u16,
        /// The gateway's message.
        message: String,
    },
    /// A process, file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error("gateway state database {what}: {source}")]
    Db {
        /// What was being done.
        what: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The HTTP layer failed.
    #[error("HTTP {what}: {detail}")]
    Http {
        /// What was being done.
        what: String,
        /// The cause.
        detail: String,
    },
    /// A cluster could not be started, reached or stopped.
    #[error("cluster {id}: {detail}")]
    Cluster {
        /// The cluster's id.
        id: String,
        /// What went wrong.
        detail: String,
    },
    /// The worker backend (Slurm, SSH, Kubernetes) refused or failed, in its own words.
    #[error("{backend} backend: {source}")]
    Backend {
        /// The backend.
        backend: &'static str,
        /// What its command said.
        source: Box<gridflow_deploy::DeployError>,
    },
    /// The distributed runtime failed (connecting to a cluster's scheduler).
    #[error(transparent)]
    Dist(#[from] gridflow_distributed::DistError),
    /// JSON could not be encoded or decoded.
    #[error("{what}: {source}")]
    Json {
        /// What was being encoded or decoded.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
}

impl GatewayError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> GatewayError {
        GatewayError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn db(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> GatewayError {
        let what = what.into();
        move |source| GatewayError::Db { what, source }
    }

    pub(crate) fn cluster(id: &str, detail: impl Into<String>) -> GatewayError {
        GatewayError::Cluster {
            id: id.to_owned(),
            detail: detail.into(),
        }
    }

    /// The HTTP status the server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::Unauthenticated(_) => 401,
            GatewayError::Forbidden(_) => 403,
            GatewayError::AuthUnavailable(_) => 503,
            GatewayError::NotFound(_) => 404,
            GatewayError::Invalid(_) | GatewayError::Json { .. } => 400,
            GatewayError::Remote { status, .. } => *status,
            _ => 500,
        }
    }
}

/// The result type of the gateway.
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;
