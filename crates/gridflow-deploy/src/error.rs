//! The error type of the deployments.

use thiserror::Error;

/// Errors of starting, scaling and stopping clusters on Slurm, SSH and Kubernetes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeployError {
    /// An option is invalid (says which and why).
    #[error("{0}")]
    Invalid(String),
    /// A program could not be started (not installed, not on `PATH`).
    #[error("running {program}: {source} (is it installed and on PATH?)")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A program ran and failed; `stderr` is its own message (Slurm's, ssh's, kubectl's).
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line, shortened.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Workers did not come: jobs pending past their time-out (with the batch system's
    /// reasons), or workers that did not join in time.
    #[error("{0}")]
    Timeout(String),
    /// The distributed runtime failed (scheduler, client).
    #[error(transparent)]
    Dist(#[from] gridflow_distributed::DistError),
}

impl DeployError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> DeployError {
        DeployError::Io {
            what: what.into(),
            source,
        }
    }

    /// As the distributed runtime's error (what the [`gridflow_distributed::Cluster`]
    /// trait returns), the cause kept as its source.
    pub fn into_dist(self, backend: &'static str) -> gridflow_distributed::DistError {
        match self {
            DeployError::Dist(e) => e,
            other => gridflow_distributed::DistError::Deploy {
                backend,
                source: Box::new(other),
            },
        }
    }
}

/// The result type of the deployments.
pub type Result<T, E = DeployError> = std::result::Result<T, E>;
