//! Clusters on Slurm: a scheduler where this runs, workers in batch jobs submitted with
//! `sbatch` (dask-jobqueue's `SLURMCluster`). Each job runs `processes` workers; scaling is
//! in whole jobs; job states come from `squeue`, so a job that never starts is reported
//! with Slurm's reason instead of being waited on forever; every job is `scancel`led on
//! close, on drop, and on Ctrl-C / SIGTERM ([`crate::cancel_on_signals`]).

use crate::command::{run, shell_quote};
use crate::{DeployError, Result, signals};
use gridflow_distributed::scheduler::{self, SchedulerHandle, SchedulerOptions};
use gridflow_distributed::{
    Adaptive, AdaptiveOptions, Client, Cluster, DistError, Security, WorkerState, WorkerStatus,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How worker jobs look (the job script's `#SBATCH` lines and what it runs).
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// CPU cores per job (`--cpus-per-task`), shared by its workers' threads.
    pub cores: u32,
    /// Memory per job in bytes (`--mem`), shared by its workers as their memory limits;
    /// 0: Slurm's default and no limit.
    pub memory: u64,
    /// The job's walltime (`--time`); `None`: the partition's default.
    pub walltime: Option<Duration>,
    /// Partition (queue), `--partition`.
    pub partition: Option<String>,
    /// Account charged, `--account`.
    pub account: Option<String>,
    /// The job's name, `--job-name`.
    pub job_name: String,
    /// Extra directives, each given to `#SBATCH` as written (`--qos=debug`,
    /// `--constraint=haswell`).
    pub job_extra_directives: Vec<String>,
    /// Shell lines run before the workers start (`module load ...`, `source venv/...`).
    pub job_script_prologue: Vec<String>,
    /// Workers per job.
    pub processes: u32,
    /// Network interface whose IPv4 address the scheduler listens on and the workers'
    /// data ports use (`ib0`, `eth0`); `None`: this host's address (127.0.0.1 in tests).
    pub interface: Option<String>,
    /// Host the scheduler listens on when `interface` is not given; `None`: 127.0.0.1 if
    /// the jobs run on this machine only, else pass `interface`.
    pub host: Option<String>,
    /// The worker command before the scheduler's address: `[program, args...]`; empty:
    /// this program's path with `worker` (as `gridflow worker`).
    pub worker_command: Vec<String>,
    /// Where the jobs write their output (`%j` is the job id); `None`: the working
    /// directory.
    pub log_directory: Option<PathBuf>,
    /// Workers retire (results moved away) after this long, before the walltime kills
    /// them; `None`: derived from the walltime (it minus a tenth, at least a minute when
    /// the walltime allows).
    pub lifetime: Option<Duration>,
    /// Up to this much is added to each worker's lifetime; `None`: half the margin left
    /// before the walltime.
    pub lifetime_stagger: Option<Duration>,
    /// A job pending longer than this is reported (with Slurm's reason) instead of waited
    /// for.
    pub pending_timeout: Duration,
    /// `sbatch`, `squeue` and `scancel` (their paths or wrappers).
    pub commands: SlurmCommands,
    /// Credentials of the scheduler and workers; none and a non-loopback host: a fresh
    /// token is made (workers read it from a file only the user can read).
    pub security: Security,
}

/// The Slurm commands used.
#[derive(Clone, Debug)]
pub struct SlurmCommands {
    /// Submits a job script given on standard input.
    pub sbatch: String,
    /// Lists jobs.
    pub squeue: String,
    /// Cancels jobs.
    pub scancel: String,
}

impl Default for SlurmCommands {
    fn default() -> SlurmCommands {
        SlurmCommands {
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            scancel: "scancel".into(),
        }
    }
}

impl Default for SlurmOptions {
    fn default() -> SlurmOptions {
        SlurmOptions {
            cores: 1,
            memory: 0,
            walltime: None,
            partition: None,
            account: None,
            job_name: "gridflow-worker".into(),
            job_extra_directives: Vec::new(),
            job_script_prologue: Vec::new(),
            processes: 1,
            interface: None,
            host: None,
            worker_command: Vec::new(),
            log_directory: None,
            lifetime: None,
            lifetime_stagger: None,
            pending_timeout: Duration::from_secs(300),
            commands: SlurmCommands::default(),
            security: Security::none(),
        }
    }
}

/// `HH:MM:SS` (hours may pass 24), as `--time` takes it; at least a minute.
pub fn format_walltime(d: Duration) -> String {
    let s = d.as_secs().max(60);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Parses Slurm's time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
/// `D-HH:MM:SS`.
pub fn parse_walltime(s: &str) -> Result<Duration> {
    let bad = || {
        DeployError::Invalid(format!(
            "walltime {s:?}: expected MM, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]"
        ))
    };
    let num = |p: &str| p.trim().parse::<u64>().map_err(|_| bad());
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (num(d)?, Some(r)),
        None => (0, None),
    };
    let secs = match rest {
        Some(r) => {
            let p: Vec<&str> = r.split(':').collect();
            match p.as_slice() {
                [h] => num(h)? * 3600,
                [h, m] => num(h)? * 3600 + num(m)? * 60,
                [h, m, sec] => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
                _ => return Err(bad()),
            }
        }
        None => {
            let p: Vec<&str> = s.split(':').collect();
            match p.as_slice() {
                [m] => num(m)? * 60,
                [m, sec] => num(m)? * 60 + num(sec)?,
                [h, m, sec] => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
                _ => return Err(bad()),
            }
        }
    };
    Ok(Duration::from_secs(days * 86_400 + secs))
}

impl SlurmOptions {
    /// Refuses options that cannot make a valid job, naming the option.
    pub fn check(&self) -> Result<()> {
        if self.cores == 0 {
            return Err(DeployError::Invalid(
                "slurm: cores must be at least 1".into(),
            ));
        }
        if self.processes == 0 {
            return Err(DeployError::Invalid(
                "slurm: processes (workers per job) must be at least 1".into(),
            ));
        }
        if self.processes > self.cores {
            return Err(DeployError::Invalid(format!(
                "slurm: {} workers per job need at least as many cores (cores: {})",
                self.processes, self.cores
            )));
        }
        for d in &self.job_extra_directives {
            if d.contains('\n') {
                return Err(DeployError::Invalid(format!(
                    "slurm: the extra directive {d:?} spans several lines"
                )));
            }
        }
        Ok(())
    }

    /// When workers retire and how much that is staggered (see [`SlurmOptions::lifetime`]).
    pub fn lifetimes(&self) -> Option<(Duration, Duration)> {
        let margin = |w: Duration| (w / 10).max(Duration::from_secs(60).min(w / 2));
        let lifetime = self
            .lifetime
            .or_else(|| self.walltime.map(|w| w.saturating_sub(margin(w))))?;
        let stagger = self.lifetime_stagger.unwrap_or_else(|| {
            self.walltime
                .map_or(Duration::ZERO, |w| w.saturating_sub(lifetime) / 2)
        });
        Some((lifetime, stagger))
    }

    fn worker_command(&self) -> Result<Vec<String>> {
        if !self.worker_command.is_empty() {
            return Ok(self.worker_command.clone());
        }
        let exe = std::env::current_exe()
            .map_err(|e| DeployError::io("finding this program for the worker command", e))?;
        Ok(vec![exe.display().to_string(), "worker".into()])
    }

    /// The job script for workers joining `address` (`token_file`: where they read the
    /// shared secret). Printed by `gridflow cluster slurm --job-script` for review.
    pub fn job_script(
        &self,
        address: &str,
        token_file: Option<&std::path::Path>,
    ) -> Result<String> {
        self.check()?;
        let mut s = String::from("#!/usr/bin/env bash\n");
        let mut d = |line: String| {
            s.push_str("#SBATCH ");
            s.push_str(&line);
            s.push('\n');
        };
        d(format!("--job-name={}", self.job_name));
        if let Some(p) = &self.partition {
            d(format!("--partition={p}"));
        }
        if let Some(a) = &self.account {
            d(format!("--account={a}"));
        }
        d("--nodes=1".into());
        d("--ntasks=1".into());
        d(format!("--cpus-per-task={}", self.cores));
        if self.memory > 0 {
            d(format!("--mem={}M", self.memory.div_ceil(1 << 20)));
        }
        if let Some(w) = self.walltime {
            d(format!("--time={}", format_walltime(w)));
        }
        let log = self.log_directory.as_ref().map_or_else(
            || "gridflow-worker-%j.out".into(),
            |dir| dir.join("gridflow-worker-%j.out").display().to_string(),
        );
        d(format!("--output={log}"));
        for x in &self.job_extra_directives {
            d(x.trim().to_owned());
        }
        for line in &self.job_script_prologue {
            s.push_str(line);
            s.push('\n');
        }
        let threads = (self.cores / self.processes).max(1);
        let mut args: Vec<String> = self
            .worker_command()?
            .iter()
            .map(|a| shell_quote(a))
            .collect();
        args.push(shell_quote(address));
        args.push(format!("--nthreads {threads}"));
        if self.memory > 0 {
            args.push(format!(
                "--memory-limit {}",
                self.memory / u64::from(self.processes)
            ));
        }
        if let Some(f) = token_file {
            args.push(format!(
                "--auth-token-file {}",
                shell_quote(&f.display().to_string())
            ));
        }
        if let Some(iface) = &self.interface {
            s.push_str(&format!(
                "host=\"$(ip -4 -o addr show dev {} | awk '{{print $4}}' | cut -d/ -f1 | head -n1)\"\n\
                 if [ -z \"$host\" ]; then echo \"no IPv4 address on interface {}\" >&2; exit 1; fi\n",
                shell_quote(iface),
                iface.replace(['"', '$', '`', '\\'], "")
            ));
            args.push("--host \"$host\"".into());
        }
        if let Some((lifetime, stagger)) = self.lifetimes() {
            args.push(format!("--lifetime {}", lifetime.as_secs().max(1)));
            args.push(format!("--lifetime-stagger {}", stagger.as_secs()));
        }
        // Workers are named after their job, so that the job of each is known.
        args.push("--name \"slurm-${SLURM_JOB_ID}-$i\"".into());
        s.push_str(&format!(
            "for i in $(seq 0 {}); do\n  {} &\ndone\nwait\n",
            self.processes - 1,
            args.join(" ")
        ));
        Ok(s)
    }
}

/// A job's state as `squeue` gives it (`PENDING`, `RUNNING`, `FAILED`, ...) and Slurm's
/// reason (`Resources`, `BeginTime`, `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    /// The state's name.
    pub state: String,
    /// Why it is in that state, in Slurm's words.
    pub reason: String,
}

/// Whether a job in `state` has ended (it will never run workers again).
pub fn job_ended(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
    )
}

/// Submits `script` with `sbatch --parsable`; returns the job id. A refusal carries
/// Slurm's own message.
pub fn submit(commands: &SlurmCommands, script: &str) -> Result<String> {
    let out = run(&commands.sbatch, &["--parsable".into()], Some(script))?;
    // `--parsable`: "ID" or "ID;CLUSTER".
    out.trim()
        .split(';')
        .next()
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .ok_or_else(|| DeployError::Invalid(format!("sbatch printed no job id: {:?}", out.trim())))
}

/// The states of these jobs from one `squeue` call; jobs Slurm has forgotten (ended a
/// while ago) are absent.
pub fn job_states(
    commands: &SlurmCommands,
    ids: &[String],
) -> Result<std::collections::HashMap<String, JobState>> {
    let mut seen = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(seen);
    }
    let out = run(
        &commands.squeue,
        &[
            "--noheader".into(),
            "--states=all".into(),
            "--format=%i|%T|%r".into(),
            format!("--jobs={}", ids.join(",")),
        ],
        None,
    );
    // squeue fails for a list holding only jobs it has already forgotten.
    let out = match out {
        Ok(o) => o,
        Err(DeployError::Command { stderr, .. }) if stderr.contains("Invalid job id") => {
            String::new()
        }
        Err(e) => return Err(e),
    };
    for line in out.lines() {
        let mut p = line.splitn(3, '|');
        if let (Some(id), Some(state), Some(reason)) = (p.next(), p.next(), p.next()) {
            seen.insert(
                id.trim().to_owned(),
                JobState {
                    state: state.trim().to_owned(),
                    reason: reason.trim().to_owned(),
                },
            );
        }
    }
    Ok(seen)
}

/// `scancel` these jobs (none: nothing is run).
pub fn cancel(commands: &SlurmCommands, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    run(&commands.scancel, ids, None).map(|_| ())
}

/// A Slurm job of workers and what is known of it.
#[derive(Clone, Debug)]
struct Job {
    id: String,
    submitted: Instant,
    /// The last state `squeue` gave (`PENDING`, `RUNNING`, ...) and its reason.
    state: String,
    reason: String,
    /// Cancelled by this cluster (not failed).
    cancelled: bool,
    /// No longer in `squeue`.
    gone: bool,
}

/// What [`SlurmCluster`]'s threads share.
struct Inner {
    options: SlurmOptions,
    address: String,
    security: Security,
    script: String,
    jobs: Mutex<Vec<Job>>,
    token_file: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A scheduler on this machine and workers in Slurm jobs; every job is cancelled on close
/// and on drop.
pub struct SlurmCluster {
    inner: Arc<Inner>,
    scheduler: Mutex<Option<SchedulerHandle>>,
    adaptive: Mutex<Option<Adaptive>>,
    _cleanup: signals::Registration,
}

/// The IPv4 address of network interface `iface` (through iproute2's `ip`).
fn interface_address(iface: &str) -> Result<String> {
    let out = run(
        "ip",
        &[
            "-4".into(),
            "-o".into(),
            "addr".into(),
            "show".into(),
            "dev".into(),
            iface.into(),
        ],
        None,
    )?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
        .ok_or_else(|| DeployError::Invalid(format!("interface {iface} has no IPv4 address")))
}

impl Inner {
    fn cmd(&self) -> &SlurmCommands {
        &self.options.commands
    }

    fn client(&self) -> Result<Client> {
        Ok(Client::connect_with(&self.address, self.security.clone())?)
    }

    /// Submits one job; returns its id. A refusal carries Slurm's message.
    fn submit(&self) -> Result<String> {
        let id = submit(self.cmd(), &self.script)?;
        lock(&self.jobs).push(Job {
            id: id.clone(),
            submitted: Instant::now(),
            state: "PENDING".into(),
            reason: String::new(),
            cancelled: false,
            gone: false,
        });
        Ok(id)
    }

    /// Updates the jobs' states from `squeue`.
    fn poll(&self) -> Result<()> {
        let ids: Vec<String> = lock(&self.jobs)
            .iter()
            .filter(|j| !j.gone)
            .map(|j| j.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut seen = job_states(self.cmd(), &ids)?;
        for j in lock(&self.jobs).iter_mut().filter(|j| !j.gone) {
            match seen.remove(&j.id) {
                Some(JobState { state, reason }) => {
                    j.gone = job_ended(&state);
                    j.state = state;
                    j.reason = reason;
                }
                None => {
                    j.gone = true;
                    if j.state == "PENDING" || j.state == "RUNNING" {
                        j.state = "ENDED".into();
                    }
                }
            }
        }
        Ok(())
    }

    /// Jobs not ended, oldest first.
    fn live(&self) -> Vec<Job> {
        lock(&self.jobs)
            .iter()
            .filter(|j| !j.gone)
            .cloned()
            .collect()
    }

    /// `scancel` these jobs.
    fn cancel(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        for j in lock(&self.jobs).iter_mut() {
            if ids.contains(&j.id) {
                j.cancelled = true;
            }
        }
        cancel(self.cmd(), ids)?;
        for j in lock(&self.jobs).iter_mut() {
            if ids.contains(&j.id) {
                j.gone = true;
                j.state = "CANCELLED".into();
            }
        }
        Ok(())
    }

    fn cancel_all(&self) -> Result<()> {
        let ids: Vec<String> = self.live().into_iter().map(|j| j.id).collect();
        self.cancel(&ids)
    }

    /// Jobs wanted for `n` workers.
    fn jobs_for(&self, n: usize) -> usize {
        n.div_ceil(self.options.processes.max(1) as usize)
    }

    /// Submits or cancels jobs until `jobs_for(n)` are live. Pending jobs are cancelled
    /// first (they hold no results), then the newest running ones, whose workers retire
    /// first (their results moved to the workers that stay).
    fn scale_to(&self, n: usize) -> Result<()> {
        self.poll()?;
        let want = self.jobs_for(n);
        let live = self.live();
        for _ in live.len()..want {
            self.submit()?;
        }
        if live.len() <= want {
            return Ok(());
        }
        let mut order: Vec<Job> = live;
        // Pending first, then newest running.
        order.sort_by_key(|j| (j.state != "PENDING", std::cmp::Reverse(j.submitted)));
        let drop: Vec<Job> = order.into_iter().take(self.live().len() - want).collect();
        let prefixes: Vec<String> = drop.iter().map(|j| format!("slurm-{}-", j.id)).collect();
        let client = self.client()?;
        let names: Vec<String> = client
            .workers()?
            .into_iter()
            .map(|w| w.name)
            .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
            .collect();
        if !names.is_empty() {
            client.retire_workers(&names)?;
        }
        let ids: Vec<String> = drop.into_iter().map(|j| j.id).collect();
        self.cancel(&ids)
    }

    fn workers_asked(&self) -> usize {
        self.live().len() * self.options.processes.max(1) as usize
    }

    /// Jobs pending longer than the time-out, described with Slurm's reasons.
    fn overdue(&self) -> Vec<String> {
        let t = self.options.pending_timeout;
        self.live()
            .into_iter()
            .filter(|j| j.state == "PENDING" && j.submitted.elapsed() > t)
            .map(|j| {
                format!(
                    "job {} pending for {}s (past the {}s time-out), reason: {}",
                    j.id,
                    j.submitted.elapsed().as_secs(),
                    t.as_secs(),
                    if j.reason.is_empty() {
                        "none given"
                    } else {
                        &j.reason
                    }
                )
            })
            .collect()
    }
}

impl SlurmCluster {
    /// Starts a scheduler on this machine (nothing is submitted until [`Cluster::scale`]
    /// or [`Cluster::adapt`]).
    pub fn new(options: SlurmOptions) -> Result<SlurmCluster> {
        options.check()?;
        let host = match (&options.interface, &options.host) {
            (Some(i), _) => interface_address(i)?,
            (None, Some(h)) => h.clone(),
            (None, None) => "127.0.0.1".into(),
        };
        let mut security = options.security.clone();
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && !security.has_token() && !security.has_tls() {
            security = security.with_token(gridflow_distributed::auth::generate_token()?)?;
        }
        // Workers read the secret from a file only this user can read (not the job script,
        // which `scontrol show job` may print).
        let token_file = match security.token() {
            Some(t) => {
                let dir = options
                    .log_directory
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("."));
                let path = dir.join(format!(".gridflow-token-{}", std::process::id()));
                write_private(&path, t)?;
                Some(std::fs::canonicalize(&path).unwrap_or(path))
            }
            None => None,
        };
        let listener = scheduler::bind(&host, 0)?;
        let handle = scheduler::spawn_with(
            listener,
            SchedulerOptions {
                security: security.clone(),
                // On the scheduler's host, Dask's port (any free one when taken).
                dashboard_address: Some(format!(
                    "{host}:{}",
                    gridflow_distributed::dashboard::DEFAULT_PORT
                )),
                ..SchedulerOptions::default()
            },
        )?;
        let address = format!("{}{}:{}", security.scheme(), host, handle.address().port());
        let script = options.job_script(&address, token_file.as_deref())?;
        let inner = Arc::new(Inner {
            options,
            address,
            security,
            script,
            jobs: Mutex::new(Vec::new()),
            token_file,
        });
        let weak = Arc::downgrade(&inner);
        let cleanup = signals::register(move || {
            if let Some(i) = weak.upgrade() {
                let _ = i.cancel_all();
            }
        });
        Ok(SlurmCluster {
            inner,
            scheduler: Mutex::new(Some(handle)),
            adaptive: Mutex::new(None),
            _cleanup: cleanup,
        })
    }

    /// The job script submitted for each job.
    pub fn job_script(&self) -> &str {
        &self.inner.script
    }

    /// Slurm job ids of the jobs not ended.
    pub fn job_ids(&self) -> Result<Vec<String>> {
        self.inner.poll()?;
        Ok(self.inner.live().into_iter().map(|j| j.id).collect())
    }

    /// Waits until `n` workers have joined; fails early, naming the jobs and Slurm's
    /// reasons, when a job stays pending past [`SlurmOptions::pending_timeout`] or ends
    /// without its workers, and after `timeout` in any case.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let client = self.inner.client()?;
        loop {
            let joined = client.workers()?.len();
            if joined >= n {
                return Ok(());
            }
            self.inner.poll()?;
            let overdue = self.inner.overdue();
            if !overdue.is_empty() {
                return Err(DeployError::Timeout(format!(
                    "slurm: {joined} of {n} workers joined; {}",
                    overdue.join("; ")
                )));
            }
            let failed: Vec<String> = lock(&self.inner.jobs)
                .iter()
                .filter(|j| j.gone && !j.cancelled)
                .map(|j| format!("job {} ended ({})", j.id, j.state))
                .collect();
            if !failed.is_empty() && self.inner.live().len() < self.inner.jobs_for(n) {
                return Err(DeployError::Timeout(format!(
                    "slurm: {joined} of {n} workers joined; {} (see the job output{})",
                    failed.join("; "),
                    self.inner
                        .options
                        .log_directory
                        .as_ref()
                        .map_or_else(String::new, |d| format!(" in {}", d.display()))
                )));
            }
            if start.elapsed() > timeout {
                return Err(DeployError::Timeout(format!(
                    "slurm: {joined} of {n} workers joined within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop_adapting(&self) {
        if let Some(mut a) = lock(&self.adaptive).take() {
            a.stop();
        }
    }

    /// Like [`Cluster::adapt`], with every setting of the loop.
    pub fn adapt_with(&self, options: AdaptiveOptions) -> Result<()> {
        self.stop_adapting();
        let (a, b, c) = (self.inner.clone(), self.inner.clone(), self.inner.clone());
        let client = self.inner.client()?;
        let adaptive = Adaptive::start(
            options,
            move || {
                let _ = a.poll();
                for o in a.overdue() {
                    eprintln!("gridflow slurm: {o}");
                }
                Ok(usize::try_from(client.adaptive_target()?.target).unwrap_or(usize::MAX))
            },
            move || b.workers_asked(),
            move |n| c.scale_to(n).map_err(|e| e.into_dist("slurm")),
        )
        .map_err(DeployError::from)?;
        *lock(&self.adaptive) = Some(adaptive);
        Ok(())
    }

    fn shutdown(&self) -> Result<()> {
        self.stop_adapting();
        let cancelled = self.inner.cancel_all();
        if let Some(mut h) = lock(&self.scheduler).take() {
            h.shutdown();
        }
        if let Some(f) = &self.inner.token_file {
            let _ = std::fs::remove_file(f);
        }
        cancelled
    }
}

/// Writes `data` to a new file only its owner can read.
fn write_private(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| DeployError::io(format!("writing the token file {}", path.display()), e))
}

impl Cluster for SlurmCluster {
    fn scheduler_address(&self) -> String {
        self.inner.address.clone()
    }

    fn security(&self) -> Security {
        self.inner.security.clone()
    }

    fn dashboard_link(&self) -> Option<String> {
        lock(&self.scheduler)
            .as_ref()
            .and_then(SchedulerHandle::dashboard_link)
    }

    fn scale(&self, n: usize) -> gridflow_distributed::Result<()> {
        self.stop_adapting();
        self.inner.scale_to(n).map_err(|e| e.into_dist("slurm"))
    }

    fn adapt(&self, minimum: usize, maximum: usize) -> gridflow_distributed::Result<()> {
        self.adapt_with(AdaptiveOptions::new(minimum, maximum))
            .map_err(|e| e.into_dist("slurm"))
    }

    fn worker_status(&self) -> gridflow_distributed::Result<Vec<WorkerStatus>> {
        self.inner.poll().map_err(|e| e.into_dist("slurm"))?;
        let joined: Vec<String> = self
            .inner
            .client()
            .map_err(|e| e.into_dist("slurm"))?
            .workers()?
            .into_iter()
            .map(|w| w.name)
            .collect();
        let t = self.inner.options.pending_timeout;
        let per_job = self.inner.options.processes.max(1);
        let mut out = Vec::new();
        for j in lock(&self.inner.jobs).iter() {
            for i in 0..per_job {
                let name = format!("slurm-{}-{i}", j.id);
                let state = match j.state.as_str() {
                    "PENDING" => {
                        let mut reason = j.reason.clone();
                        if j.submitted.elapsed() > t {
                            reason = format!(
                                "{reason} (pending for {}s, past the {}s time-out)",
                                j.submitted.elapsed().as_secs(),
                                t.as_secs()
                            );
                        }
                        WorkerState::Queued { reason }
                    }
                    _ if j.cancelled => WorkerState::Stopped,
                    "RUNNING" | "COMPLETING" | "CONFIGURING" if joined.contains(&name) => {
                        WorkerState::Running
                    }
                    "RUNNING" | "CONFIGURING" => WorkerState::Starting,
                    "COMPLETED" | "ENDED" => WorkerState::Stopped,
                    other => WorkerState::Failed {
                        reason: format!("job {other} {}", j.reason).trim().to_owned(),
                    },
                };
                out.push(WorkerStatus {
                    name,
                    id: j.id.clone(),
                    state,
                });
            }
        }
        Ok(out)
    }

    fn close(&self) -> gridflow_distributed::Result<()> {
        self.shutdown().map_err(|e| e.into_dist("slurm"))
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("gridflow slurm: cancelling the jobs: {e}");
        }
    }
}

/// `DistError` for the trait's callers that want the deployment's error back.
pub fn dist(e: DeployError) -> DistError {
    e.into_dist("slurm")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn walltimes_parse_and_print_in_slurms_formats() {
        for (s, secs) in [
            ("30", 1800),
            ("10:30", 630),
            ("01:30:00", 5400),
            ("2-00", 172_800),
            ("1-02:03", 93_780),
            ("1-02:03:04", 93_784),
        ] {
            assert_eq!(parse_walltime(s).unwrap().as_secs(), secs, "{s}");
        }
        assert_eq!(format_walltime(Duration::from_secs(93_784)), "26:03:04");
        assert!(
            parse_walltime("1:2:3:4")
                .unwrap_err()
                .to_string()
                .contains("1:2:3:4")
        );
        assert!(parse_walltime("soon").is_err());
    }

    #[test]
    fn the_job_script_carries_every_option_and_is_valid_shell() {
        let o = SlurmOptions {
            cores: 8,
            memory: 16 << 30,
            walltime: Some(Duration::from_secs(3600)),
            partition: Some("compute".into()),
            account: Some("proj42".into()),
            job_extra_directives: vec!["--qos=debug".into(), "--constraint=haswell".into()],
            job_script_prologue: vec!["module load gridflow".into()],
            processes: 2,
            interface: Some("ib0".into()),
            worker_command: vec!["/opt/gridflow bin/gridflow".into(), "worker".into()],
            log_directory: Some("/scratch/logs".into()),
            ..SlurmOptions::default()
        };
        let s = o
            .job_script(
                "tcp://10.0.0.1:8786",
                Some(std::path::Path::new("/home/u/.tok")),
            )
            .unwrap();
        for want in [
            "#SBATCH --job-name=gridflow-worker",
            "#SBATCH --partition=compute",
            "#SBATCH --account=proj42",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --mem=16384M",
            "#SBATCH --time=01:00:00",
            "#SBATCH --output=/scratch/logs/gridflow-worker-%j.out",
            "#SBATCH --qos=debug",
            "#SBATCH --constraint=haswell",
            "module load gridflow",
            "'/opt/gridflow bin/gridflow' worker tcp://10.0.0.1:8786 --nthreads 4",
            &format!("--memory-limit {}", 8u64 << 30),
            "--auth-token-file /home/u/.tok",
            "dev ib0",
            "--host \"$host\"",
            // 1 h walltime: retire from 54 min, staggered over 3 min.
            "--lifetime 3240 --lifetime-stagger 180",
            "--name \"slurm-${SLURM_JOB_ID}-$i\"",
            "seq 0 1",
        ] {
            assert!(s.contains(want), "{want:?} missing from:\n{s}");
        }
        // Directives come before the first command, as sbatch reads them.
        let first_cmd = s.lines().position(|l| l.starts_with("module")).unwrap();
        assert!(s.lines().skip(first_cmd).all(|l| !l.starts_with("#SBATCH")));
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn an_interfaces_address_is_found_and_a_missing_one_named() {
        if std::process::Command::new("ip").arg("-V").output().is_err() {
            eprintln!("skipped: no ip (iproute2)");
            return;
        }
        assert_eq!(interface_address("lo").unwrap(), "127.0.0.1");
        let e = interface_address("gridflow-none0").unwrap_err().to_string();
        assert!(e.contains("gridflow-none0"), "{e}");
    }

    #[test]
    fn options_that_make_no_job_are_refused_by_name() {
        let e = SlurmOptions {
            cores: 1,
            processes: 2,
            ..SlurmOptions::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("2 workers per job") && e.contains("cores: 1"),
            "{e}"
        );
        let e = SlurmOptions {
            job_extra_directives: vec!["--qos=a\nrm -rf /".into()],
            ..SlurmOptions::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("several lines"), "{e}");
    }
}
