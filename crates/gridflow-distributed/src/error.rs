//! The error type of the distributed runtime.

use thiserror::Error;

/// Errors of the scheduler, workers, client and local cluster.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DistError {
    /// A socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (`connecting to tcp://127.0.0.1:8786`).
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The peer did not open with gridflow's preamble: not a gridflow node.
    #[error("{peer}: not a gridflow peer (bad preamble {got:02x?}); is the address right?")]
    BadMagic {
        /// The peer's address.
        peer: String,
        /// The bytes received instead.
        got: Vec<u8>,
    },
    /// The peer speaks another version of the protocol.
    #[error(
        "{peer}: protocol version mismatch: the peer speaks version {theirs}, this build \
         speaks version {ours}; run the same gridflow version everywhere"
    )]
    VersionMismatch {
        /// The peer's address.
        peer: String,
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// A frame or message broke the protocol (too large, truncated, undecodable, unexpected).
    #[error("{peer}: protocol error: {detail}")]
    Protocol {
        /// The peer's address.
        peer: String,
        /// What was wrong.
        detail: String,
    },
    /// A connection closed while a reply was still expected.
    #[error("{peer}: connection closed {during}")]
    Closed {
        /// The peer's address.
        peer: String,
        /// What was under way.
        during: String,
    },
    /// Authentication or TLS failed: a wrong or missing credential, on either side.
    #[error("{peer}: authentication failed: {detail}")]
    Auth {
        /// The peer's address.
        peer: String,
        /// What was wrong and what to do.
        detail: String,
    },
    /// A value could not be encoded or decoded.
    #[error("{what}: {source}")]
    Codec {
        /// What was being encoded or decoded.
        what: String,
        /// The cause.
        source: postcard::Error,
    },
    /// An option is malformed (a log filter, a dashboard address): the message names it
    /// and what it may be.
    #[error("{0}")]
    Option(String),
    /// The cluster cannot run the request (no workers, lost data...).
    #[error("cluster: {0}")]
    Cluster(String),
    /// A task of a future's graph failed on a worker.
    #[error("task {key} failed in {op}{}: {message}", if *.panicked { " (panicked)" } else { "" })]
    Task {
        /// The failing task's key (or the future's, when the failing task is unknown).
        key: gridflow_graph::Key,
        /// The operation's label.
        op: String,
        /// What went wrong.
        message: String,
        /// True when the operation panicked.
        panicked: bool,
    },
    /// The future was cancelled before its result was fetched.
    #[error("the future of {key} was cancelled")]
    Cancelled {
        /// The future's key.
        key: gridflow_graph::Key,
    },
    /// A submitted graph is malformed (a missing input, a cycle).
    #[error("graph: {source}")]
    Graph {
        /// The cause.
        #[from]
        source: gridflow_graph::GraphError,
    },
    /// A finished computation's outputs could not be gathered, even after asking the
    /// scheduler again where they are (their worker left and they did not reappear).
    #[error(
        "gathering the results of computation {job}: {source}; asked the scheduler {attempts} \
         time(s) where they are now{}",
        if last.is_empty() { String::new() } else { format!(", the last gather: {last}") }
    )]
    Gather {
        /// The computation (job id).
        job: u64,
        /// How many times the client asked again.
        attempts: u32,
        /// The last failure, when it differs from the first.
        last: String,
        /// The first failure.
        source: Box<DistError>,
    },
    /// A deployment backend (Slurm, SSH, Kubernetes) failed; the cause keeps its own type.
    #[error("{backend}: {source}")]
    Deploy {
        /// The backend (`slurm`, `ssh`, `kubernetes`).
        backend: &'static str,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DistError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> DistError {
        DistError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn protocol(peer: &str, detail: impl Into<String>) -> DistError {
        DistError::Protocol {
            peer: peer.to_owned(),
            detail: detail.into(),
        }
    }
}

/// The result type of the distributed runtime.
pub type Result<T, E = DistError> = std::result::Result<T, E>;
