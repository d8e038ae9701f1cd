//! One interface for every cluster, wherever its workers run: [`crate::LocalCluster`] on
//! this machine, and the Slurm, SSH and Kubernetes deployments and the gateway built on it.
//! Code that takes a `&dyn Cluster` (the CLI's `--cluster`, the gateway's backends) works
//! the same on each.

use crate::{Client, Result, Security};

/// What became of one worker (or batch job of workers) a cluster asked for. Pending
/// workers are shown, not hidden: a job that never starts is reported with the batch
/// system's reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WorkerState {
    /// Asked for, waiting for resources (`reason`: what the backend says, such as Slurm's
    /// `(Resources)`).
    Queued {
        /// The backend's reason, possibly empty.
        reason: String,
    },
    /// Started, not yet joined the scheduler.
    Starting,
    /// Joined the scheduler and running tasks.
    Running,
    /// Moving its results to other workers before it stops.
    Retiring,
    /// Failed to start or died (`reason`: exit status, the batch system's message).
    Failed {
        /// Why, in the backend's words.
        reason: String,
    },
    /// Stopped on request.
    Stopped,
}

/// One worker or job of a cluster and its state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerStatus {
    /// The worker's (or job's) name, as the scheduler lists it once joined.
    pub name: String,
    /// A backend-specific id: a process id, a Slurm job id, a pod name.
    pub id: String,
    /// What became of it.
    pub state: WorkerState,
}

/// A running cluster: a scheduler and the workers its backend starts. Methods take `&self`
/// so that an adaptive loop and the user may drive the same cluster from two threads.
pub trait Cluster: Send + Sync {
    /// The address clients connect to (`tcp://host:port` or `tls://host:port`).
    fn scheduler_address(&self) -> String;

    /// The credentials clients need to connect.
    fn security(&self) -> Security;

    /// The dashboard's URL, when the scheduler serves one.
    fn dashboard_link(&self) -> Option<String> {
        None
    }

    /// A client connected with the cluster's credentials.
    fn client(&self) -> Result<Client> {
        Client::connect_with(&self.scheduler_address(), self.security())
    }

    /// Asks for exactly `n` workers (rounded up to whole jobs on batch systems) and stops
    /// any adaptive scaling. Returns once asked; workers join as they start. Workers taken
    /// away retire first: their results are moved to the workers that stay.
    fn scale(&self, n: usize) -> Result<()>;

    /// Scales between `minimum` and `maximum` workers by the work pending on the scheduler,
    /// until [`Cluster::scale`] or [`Cluster::close`] is called.
    fn adapt(&self, minimum: usize, maximum: usize) -> Result<()>;

    /// Every worker asked for and what became of it, pending ones included.
    fn worker_status(&self) -> Result<Vec<WorkerStatus>>;

    /// Stops the workers and the scheduler; calling it again does nothing.
    fn close(&self) -> Result<()>;
}
