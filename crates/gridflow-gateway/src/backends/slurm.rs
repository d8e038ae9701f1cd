//! Workers as Slurm batch jobs, one worker per job (`cores` = the cluster's threads,
//! `--mem` = its memory limit), from the same job script as `gridflow cluster slurm`. The
//! job ids are kept in the cluster's record, so a restarted gateway finds its jobs again;
//! their states come from one `squeue` per check; a job that ends without being asked to
//! is reported with Slurm's state and the last line of its output.

use super::{Ctx, Seen};
use crate::config::{ClusterSpec, SlurmConfig};
use crate::db::{ClusterRecord, WorkerRecord};
use crate::local::LocalBackend;
use crate::{GatewayError, Result, lock};
use gridflow_deploy::slurm::{self, JobState};
use gridflow_deploy::{SlurmCommands, SlurmOptions};
use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) struct SlurmWorkers {
    config: SlurmConfig,
    commands: SlurmCommands,
    /// Each job's state, from the last `squeue` (or its submission).
    states: Mutex<HashMap<String, JobState>>,
}

fn err(source: gridflow_deploy::DeployError) -> GatewayError {
    GatewayError::Backend {
        backend: "slurm",
        source: Box::new(source),
    }
}

impl SlurmWorkers {
    pub fn new(config: SlurmConfig) -> SlurmWorkers {
        SlurmWorkers {
            commands: SlurmCommands {
                sbatch: config.sbatch.clone(),
                squeue: config.squeue.clone(),
                scancel: config.scancel.clone(),
            },
            config,
            states: Mutex::default(),
        }
    }

    /// The job options of a cluster: the gateway's defaults, then what its user chose.
    fn options(&self, spec: &ClusterSpec) -> Result<SlurmOptions> {
        let pick = |k: &str, default: &Option<String>| {
            spec.backend.get(k).cloned().or_else(|| default.clone())
        };
        let walltime = pick("walltime", &self.config.walltime)
            .map(|w| slurm::parse_walltime(&w))
            .transpose()
            .map_err(err)?;
        let mut extra = self.config.job_extra_directives.clone();
        if let Some(q) = spec.backend.get("qos") {
            extra.push(format!("--qos={q}"));
        }
        let threads = u32::try_from(spec.threads).unwrap_or(u32::MAX);
        let o = SlurmOptions {
            cores: threads,
            memory: spec.memory,
            walltime,
            partition: pick("partition", &self.config.partition),
            account: pick("account", &self.config.account),
            job_name: self.config.job_name.clone(),
            job_extra_directives: extra,
            job_script_prologue: self.config.job_script_prologue.clone(),
            processes: 1,
            commands: self.commands.clone(),
            ..SlurmOptions::default()
        };
        o.check().map_err(err)?;
        // Values go into `#SBATCH` lines: one line each.
        for (k, v) in &spec.backend {
            if v.contains(['\n', '\r']) {
                return Err(GatewayError::Invalid(format!(
                    "backend option {k}: a value spans several lines"
                )));
            }
        }
        Ok(o)
    }

    pub fn check(&self, spec: &ClusterSpec) -> Result<()> {
        self.options(spec).map(|_| ())
    }

    pub fn start(&self, ctx: &Ctx<'_>, _name: &str) -> Result<WorkerRecord> {
        let mut o = self.options(ctx.spec)?;
        let dir = ctx.local.cluster_dir(ctx.id);
        o.log_directory = Some(dir.clone());
        o.worker_command = if self.config.worker_command.is_empty() {
            vec![ctx.local.program().display().to_string(), "worker".into()]
        } else {
            self.config.worker_command.clone()
        };
        let script = o
            .job_script(ctx.address, Some(&ctx.local.token_file(ctx.id)))
            .map_err(err)?;
        // Kept for the administrator (what was submitted); it holds no secret.
        let _ = std::fs::write(dir.join("job.sh"), &script);
        let job = slurm::submit(&self.commands, &script).map_err(err)?;
        lock(&self.states).insert(
            job.clone(),
            JobState {
                state: "PENDING".into(),
                reason: String::new(),
            },
        );
        Ok(WorkerRecord {
            // As the job script names its (only) worker.
            name: format!("slurm-{job}-0"),
            pid: 0,
            failed: None,
            job: Some(job),
            host: None,
            asked: crate::now(),
        })
    }

    pub fn poll(&self, clusters: &[ClusterRecord]) -> Result<()> {
        let ids: Vec<String> = clusters
            .iter()
            .flat_map(|c| &c.workers)
            .filter(|w| w.failed.is_none())
            .filter_map(|w| w.job.clone())
            .collect();
        let mut found = slurm::job_states(&self.commands, &ids).map_err(err)?;
        let mut states = lock(&self.states);
        states.retain(|id, _| ids.contains(id));
        for id in ids {
            // A job squeue no longer lists ended a while ago.
            let s = found.remove(&id).unwrap_or_else(|| JobState {
                state: "ENDED".into(),
                reason: String::new(),
            });
            states.insert(id, s);
        }
        Ok(())
    }

    pub fn seen(&self, local: &LocalBackend, id: &str, w: &WorkerRecord) -> Seen {
        let Some(job) = &w.job else {
            return Seen::Ended("no Slurm job recorded".into());
        };
        let Some(s) = lock(&self.states).get(job).cloned() else {
            // Re-attached and not polled yet.
            return Seen::Queued(String::new());
        };
        if s.state == "PENDING" {
            return Seen::Queued(s.reason);
        }
        if !slurm::job_ended(&s.state) {
            return Seen::Running;
        }
        let out = local
            .cluster_dir(id)
            .join(format!("gridflow-worker-{job}.out"));
        let tail = crate::local::last_line(&out);
        let reason = match s.reason.as_str() {
            "" | "None" => String::new(),
            r => format!(" ({r})"),
        };
        Seen::Ended(if tail.is_empty() {
            format!("Slurm job {job} {}{reason}", s.state)
        } else {
            format!(
                "Slurm job {job} {}{reason}; its output ends: {tail}",
                s.state
            )
        })
    }

    pub fn stop(&self, workers: &[WorkerRecord]) -> Result<()> {
        let ids: Vec<String> = workers.iter().filter_map(|w| w.job.clone()).collect();
        match slurm::cancel(&self.commands, &ids) {
            Ok(()) => {}
            // Jobs that ended meanwhile (a retired worker exits by itself).
            Err(gridflow_deploy::DeployError::Command { stderr, .. })
                if stderr
                    .lines()
                    .all(|l| l.contains("already completing") || l.contains("Invalid job id")) => {}
            Err(e) => return Err(err(e)),
        }
        let mut states = lock(&self.states);
        for id in ids {
            states.remove(&id);
        }
        Ok(())
    }
}
