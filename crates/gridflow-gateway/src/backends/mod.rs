//! Where a cluster's workers run. Schedulers always run beside the gateway (as local
//! processes, [`crate::local`]); workers run as local processes, Slurm jobs, processes on
//! SSH hosts or Kubernetes pods. Every backend answers the same questions: start a worker,
//! what became of it (queued with the backend's reason, starting, running, failed and why),
//! stop some, and clean up after a cluster. States are polled in one batch per check
//! (one `squeue`, one `kubectl get`, one `ssh` per host) and kept for the API's answers.

mod kubernetes;
mod slurm;
mod ssh;

use crate::Result;
use crate::config::{BackendConfig, ClusterSpec};
use crate::db::{ClusterRecord, WorkerRecord};
use crate::local::LocalBackend;
use gridflow_distributed::{WorkerState, WorkerStatus};
use std::collections::HashMap;

/// What a backend needs to start a cluster's worker.
pub(crate) struct Ctx<'a> {
    /// The cluster's id.
    pub id: &'a str,
    /// The scheduler's address (`tcp://host:port`).
    pub address: &'a str,
    /// The cluster's options.
    pub spec: &'a ClusterSpec,
    /// The cluster's token.
    pub token: &'a str,
    /// The local backend: the program, the cluster's directory and token file.
    pub local: &'a LocalBackend,
}

/// What the backend last said of a worker that is not (or no longer) joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Waiting for resources, with the backend's reason.
    Queued(String),
    /// Running (a process, a job or a pod), not necessarily joined yet.
    Running,
    /// Ended, and why.
    Ended(String),
}

/// A gateway's worker backend.
pub(crate) enum Workers {
    Local,
    Slurm(slurm::SlurmWorkers),
    Ssh(ssh::SshWorkers),
    Kubernetes(kubernetes::KubernetesWorkers),
}

impl Workers {
    pub fn new(config: &BackendConfig) -> Workers {
        match config {
            BackendConfig::Local => Workers::Local,
            BackendConfig::Slurm(c) => Workers::Slurm(slurm::SlurmWorkers::new(c.clone())),
            BackendConfig::Ssh(c) => Workers::Ssh(ssh::SshWorkers::new(c.clone())),
            BackendConfig::Kubernetes(c) => {
                Workers::Kubernetes(kubernetes::KubernetesWorkers::new(c.clone()))
            }
        }
    }

    /// The backend's name, as recorded with each cluster.
    pub fn kind(&self) -> &'static str {
        match self {
            Workers::Local => "local",
            Workers::Slurm(_) => "slurm",
            Workers::Ssh(_) => "ssh",
            Workers::Kubernetes(_) => "kubernetes",
        }
    }

    /// Checks the backend options of a new cluster (values the backend cannot use are
    /// refused before anything starts).
    pub fn check(&self, spec: &ClusterSpec) -> Result<()> {
        match self {
            Workers::Slurm(s) => s.check(spec),
            _ => Ok(()),
        }
    }

    /// Starts worker `name`.
    pub fn start(&self, ctx: &Ctx<'_>, name: &str) -> Result<WorkerRecord> {
        match self {
            Workers::Local => {
                ctx.local
                    .start_worker(ctx.id, ctx.address, name, ctx.spec.threads, ctx.spec.memory)
            }
            Workers::Slurm(s) => s.start(ctx, name),
            Workers::Ssh(s) => s.start(ctx, name),
            Workers::Kubernetes(k) => k.start(ctx, name),
        }
    }

    /// Asks the backend about every live worker of these clusters (`joined`: the workers
    /// each scheduler lists, which need no asking on SSH; `all`: these are every cluster
    /// of the gateway).
    pub fn poll(
        &self,
        clusters: &[ClusterRecord],
        joined: &HashMap<String, Vec<String>>,
        all: bool,
    ) {
        let result = match self {
            Workers::Local => Ok(()),
            Workers::Slurm(s) => s.poll(clusters),
            Workers::Ssh(s) => s.poll(clusters, joined, all),
            Workers::Kubernetes(k) => k.poll(clusters),
        };
        if let Err(e) = result {
            eprintln!("gridflow gateway: asking the {} backend: {e}", self.kind());
        }
    }

    fn seen(&self, local: &LocalBackend, id: &str, w: &WorkerRecord) -> Seen {
        match self {
            Workers::Local => {
                if local.alive(w.pid, id) {
                    Seen::Running
                } else {
                    Seen::Ended(local.failure(id, w))
                }
            }
            Workers::Slurm(s) => s.seen(local, id, w),
            Workers::Ssh(s) => s.seen(w),
            Workers::Kubernetes(k) => k.seen(w),
        }
    }

    /// Why worker `w` of cluster `id` has ended, if it has.
    pub fn ended(&self, local: &LocalBackend, id: &str, w: &WorkerRecord) -> Option<String> {
        match self.seen(local, id, w) {
            Seen::Ended(why) => Some(why),
            _ => None,
        }
    }

    /// What became of worker `w`, given the workers joined to its scheduler and those of
    /// them being retired.
    pub fn status(
        &self,
        local: &LocalBackend,
        id: &str,
        w: &WorkerRecord,
        joined: &[String],
        retiring: &[String],
    ) -> WorkerStatus {
        let state = if let Some(why) = &w.failed {
            WorkerState::Failed {
                reason: why.clone(),
            }
        } else if retiring.contains(&w.name) {
            WorkerState::Retiring
        } else if joined.contains(&w.name) {
            WorkerState::Running
        } else {
            match self.seen(local, id, w) {
                Seen::Queued(reason) => WorkerState::Queued { reason },
                Seen::Running => WorkerState::Starting,
                Seen::Ended(reason) => WorkerState::Failed { reason },
            }
        };
        let handle = match (&w.job, &w.host) {
            (Some(j), _) => j.clone(),
            (None, Some(h)) => format!("{h}:{}", w.pid),
            (None, None) => w.pid.to_string(),
        };
        WorkerStatus {
            name: w.name.clone(),
            id: handle,
            state,
        }
    }

    /// Stops these workers of cluster `id` (already retired, or not joined); returns when
    /// the backend has been told (a Slurm job or a pod may take a moment to go).
    pub fn stop(&self, local: &LocalBackend, id: &str, workers: &[WorkerRecord]) {
        if workers.is_empty() {
            return;
        }
        let result = match self {
            Workers::Local => {
                let pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
                local.stop(id, &pids);
                Ok(())
            }
            Workers::Slurm(s) => s.stop(workers),
            Workers::Ssh(s) => s.stop(id, workers),
            Workers::Kubernetes(k) => k.stop(workers),
        };
        if let Err(e) = result {
            eprintln!("gridflow gateway: cluster {id}: stopping workers: {e}");
        }
    }

    /// Removes what the backend keeps for cluster `id` once its workers are stopped
    /// (remote directories, secrets).
    pub fn remove(&self, rec: &ClusterRecord) {
        let result = match self {
            Workers::Local | Workers::Slurm(_) => Ok(()),
            Workers::Ssh(s) => s.remove(rec),
            Workers::Kubernetes(k) => k.remove(&rec.id),
        };
        if let Err(e) = result {
            eprintln!("gridflow gateway: cluster {}: cleaning up: {e}", rec.id);
        }
    }
}
