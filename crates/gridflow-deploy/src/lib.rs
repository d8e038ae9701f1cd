//! Deploys gridflow's scheduler and workers onto the machines users already have: a Slurm
//! batch system ([`slurm::SlurmCluster`]), hosts reached over SSH, and Kubernetes. Each
//! cluster implements [`gridflow_distributed::Cluster`] (scale, adapt, worker status,
//! close), like the local one, so code driving a `&dyn Cluster` works on each. Heavy
//! dependencies stay here, out of the runtime.

mod command;
mod error;
pub mod kubernetes;
mod signals;
pub mod slurm;
pub mod ssh;

pub use command::{COMMAND_TIMEOUT, run as run_command, shell_quote};
pub use error::{DeployError, Result};
pub use kubernetes::{KubernetesCluster, KubernetesOptions};
pub use signals::{cancel_on_signals, retire_on_sigterm, run_cleanups};
pub use slurm::{SlurmCluster, SlurmCommands, SlurmOptions};
pub use ssh::{SshCluster, SshOptions};
