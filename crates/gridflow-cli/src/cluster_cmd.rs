//! `gridflow cluster slurm|ssh|kubernetes`: starts a cluster on the machines the user has
//! (gridflow-deploy), prints where clients connect, and keeps it up, reporting workers as
//! they join or stay pending, until Ctrl-C or SIGTERM, which stop every job and process it
//! started.

use crate::AuthArgs;
use crate::out::outln;
use anyhow::{Context, Result, bail};
use gridflow_deploy::kubernetes::KubernetesCluster;
use gridflow_deploy::{KubernetesOptions, SlurmCluster, SlurmOptions, SshCluster, SshOptions};
use gridflow_distributed::{Cluster, WorkerState};
use std::path::PathBuf;
use std::time::Duration;

/// Where the cluster runs.
#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// A scheduler here and workers in Slurm batch jobs (one job script, `--processes`
    /// workers per job).
    ///
    /// Examples:
    ///   gridflow cluster slurm --cores 8 --memory 16GiB --walltime 01:00:00 --partition compute --job-script
    ///   gridflow cluster slurm --cores 8 --memory 16GiB --walltime 01:00:00 --jobs 4 --interface ib0
    ///   gridflow cluster slurm --cores 4 --memory 8GiB --adapt 0:20 --account proj42
    #[command(verbatim_doc_comment)]
    Slurm(Box<SlurmArgs>),
    /// The scheduler on the first host, workers on the others, over your own ssh.
    ///
    /// Examples:
    ///   gridflow cluster ssh node1 node2 node3 --workers 4 --nthreads 8
    ///   gridflow cluster ssh -F ~/.ssh/lab_config head gpu1 gpu2 -o ConnectTimeout=5
    #[command(verbatim_doc_comment)]
    Ssh(Box<SshArgs>),
    /// A scheduler and workers as Kubernetes Deployments (applied with kubectl).
    ///
    /// Examples:
    ///   gridflow cluster kubernetes --workers 4 --worker-cpu 2 --worker-memory 8Gi --dry-run
    ///   gridflow cluster kubernetes --name climate --namespace science --image REGISTRY/gridflow:0.1.0
    ///   gridflow cluster kubernetes --name climate --namespace science --delete
    #[command(verbatim_doc_comment)]
    Kubernetes(Box<KubernetesArgs>),
}

/// `gridflow cluster slurm`.
#[derive(clap::Args)]
pub struct SlurmArgs {
    /// CPU cores per job.
    #[arg(long, default_value_t = 1)]
    cores: u32,
    /// Memory per job (e.g. 16GiB), shared by its workers as their memory limits.
    #[arg(long)]
    memory: Option<String>,
    /// Walltime per job (HH:MM:SS, D-HH:MM, ...); workers retire a little before it.
    #[arg(long)]
    walltime: Option<String>,
    /// Partition (queue).
    #[arg(long, alias = "queue")]
    partition: Option<String>,
    /// Account charged for the jobs.
    #[arg(long)]
    account: Option<String>,
    /// The jobs' name.
    #[arg(long, default_value = "gridflow-worker")]
    job_name: String,
    /// An extra #SBATCH directive, as written (repeatable): --job-extra-directive=--qos=debug.
    #[arg(
        long = "job-extra-directive",
        value_name = "DIRECTIVE",
        allow_hyphen_values = true
    )]
    job_extra_directives: Vec<String>,
    /// A shell line run before the workers start (repeatable): "module load gridflow".
    #[arg(long = "prologue", value_name = "LINE", allow_hyphen_values = true)]
    prologue: Vec<String>,
    /// Workers per job (they share its cores and memory).
    #[arg(long, default_value_t = 1)]
    processes: u32,
    /// Network interface the scheduler listens on and workers use (ib0, eth0).
    #[arg(long)]
    interface: Option<String>,
    /// Host (address) for the scheduler when no --interface is given (default 127.0.0.1:
    /// jobs on this machine only).
    #[arg(long)]
    host: Option<String>,
    /// Directory of the jobs' output files.
    #[arg(long)]
    log_directory: Option<PathBuf>,
    /// Seconds after which workers retire (default: from the walltime).
    #[arg(long)]
    lifetime: Option<u64>,
    /// Up to this many seconds added to each worker's lifetime (default: from the walltime).
    #[arg(long)]
    lifetime_stagger: Option<u64>,
    /// Report jobs pending longer than this many seconds.
    #[arg(long, default_value_t = 300)]
    pending_timeout: u64,
    /// Worker jobs to submit at once.
    #[arg(long, conflicts_with = "adapt")]
    jobs: Option<usize>,
    /// Scale between MIN and MAX workers by the pending work, e.g. 0:20.
    #[arg(long, value_name = "MIN:MAX")]
    adapt: Option<String>,
    /// Print the job script and exit without submitting anything.
    #[arg(long)]
    job_script: bool,
    /// Write the scheduler's address to this file (JSON) for clients.
    #[arg(long)]
    scheduler_file: Option<PathBuf>,
    #[command(flatten)]
    auth: AuthArgs,
}

/// `gridflow cluster ssh`.
#[derive(clap::Args)]
pub struct SshArgs {
    /// Hosts as ssh takes them: the scheduler on the first, workers on the others.
    #[arg(required = true)]
    hosts: Vec<String>,
    /// An ssh configuration file (ssh -F).
    #[arg(short = 'F', long = "ssh-config")]
    ssh_config: Option<PathBuf>,
    /// An ssh option (ssh -o KEY=VALUE), repeatable.
    #[arg(short = 'o', long = "ssh-option", value_name = "KEY=VALUE")]
    ssh_options: Vec<String>,
    /// The gridflow program on the hosts (with arguments before `worker`).
    #[arg(long, default_value = "gridflow")]
    remote_command: String,
    /// Address the scheduler listens on and workers connect to (default: the first host).
    #[arg(long)]
    scheduler_host: Option<String>,
    /// The scheduler's port (0: any free one).
    #[arg(long, default_value_t = 0)]
    scheduler_port: u16,
    /// Workers, spread over the worker hosts.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Threads per worker.
    #[arg(long, default_value_t = 1)]
    nthreads: usize,
    /// Memory limit per worker (e.g. 4GiB).
    #[arg(long)]
    memory_limit: Option<String>,
    /// Scale between MIN and MAX workers by the pending work, e.g. 1:8.
    #[arg(long, value_name = "MIN:MAX")]
    adapt: Option<String>,
    #[command(flatten)]
    auth: AuthArgs,
}

/// `gridflow cluster kubernetes`.
#[derive(clap::Args)]
pub struct KubernetesArgs {
    /// The cluster's name (prefix of its objects' names).
    #[arg(long, default_value = "gridflow")]
    name: String,
    /// The namespace (default: the kubeconfig context's).
    #[arg(long)]
    namespace: Option<String>,
    /// The image with the gridflow binary (see the Dockerfile).
    #[arg(long)]
    image: Option<String>,
    /// imagePullPolicy of the pods.
    #[arg(long, default_value = "IfNotPresent")]
    image_pull_policy: String,
    /// Worker pods.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// CPU of each worker pod (request and limit), a Kubernetes quantity.
    #[arg(long, default_value = "1")]
    worker_cpu: String,
    /// Memory of each worker pod (request and limit), e.g. 4Gi.
    #[arg(long, default_value = "2Gi")]
    worker_memory: String,
    /// Threads per worker (default: the CPU rounded up).
    #[arg(long, default_value_t = 0)]
    worker_threads: usize,
    /// CPU of the scheduler pod.
    #[arg(long, default_value = "1")]
    scheduler_cpu: String,
    /// Memory of the scheduler pod.
    #[arg(long, default_value = "1Gi")]
    scheduler_memory: String,
    /// The Service's type: ClusterIP, LoadBalancer or NodePort.
    #[arg(long, default_value = "ClusterIP")]
    service_type: String,
    /// The kubeconfig context.
    #[arg(long)]
    context: Option<String>,
    /// The kubeconfig file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Print the manifests and exit without applying anything.
    #[arg(long)]
    dry_run: bool,
    /// Delete the cluster named --name instead of creating one.
    #[arg(long, conflicts_with = "dry_run")]
    delete: bool,
}

/// `MIN:MAX` as two numbers.
fn parse_adapt(s: &str) -> Result<(usize, usize)> {
    let (a, b) = s
        .split_once(':')
        .with_context(|| format!("--adapt {s:?}: expected MIN:MAX, e.g. 0:20"))?;
    let n = |x: &str| {
        x.trim()
            .parse::<usize>()
            .with_context(|| format!("--adapt {s:?}: {x:?} is not a whole number"))
    };
    let (lo, hi) = (n(a)?, n(b)?);
    if lo > hi {
        bail!("--adapt {s:?}: the minimum is above the maximum");
    }
    Ok((lo, hi))
}

fn bytes(s: &Option<String>) -> Result<u64> {
    Ok(match s {
        Some(m) => gridflow_runtime::parse_size(m)? as u64,
        None => 0,
    })
}

/// Runs `gridflow cluster ...`.
pub fn run(cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Slurm(a) => slurm(*a),
        ClusterCommand::Ssh(a) => ssh(*a),
        ClusterCommand::Kubernetes(a) => kubernetes(&a),
    }
}

fn slurm(a: SlurmArgs) -> Result<()> {
    let options = SlurmOptions {
        cores: a.cores,
        memory: bytes(&a.memory)?,
        walltime: a
            .walltime
            .as_deref()
            .map(gridflow_deploy::slurm::parse_walltime)
            .transpose()?,
        partition: a.partition.clone(),
        account: a.account.clone(),
        job_name: a.job_name.clone(),
        job_extra_directives: a.job_extra_directives.clone(),
        job_script_prologue: a.prologue.clone(),
        processes: a.processes,
        interface: a.interface.clone(),
        host: a.host.clone(),
        log_directory: a.log_directory.clone(),
        lifetime: a.lifetime.map(Duration::from_secs),
        lifetime_stagger: a.lifetime_stagger.map(Duration::from_secs),
        pending_timeout: Duration::from_secs(a.pending_timeout),
        security: a.auth.security()?,
        ..SlurmOptions::default()
    };
    if a.job_script {
        let token = options
            .security
            .has_token()
            .then(|| PathBuf::from("TOKEN_FILE"));
        outln!(
            "{}",
            options
                .job_script("tcp://SCHEDULER_ADDRESS", token.as_deref())?
                .trim_end()
        )?;
        return Ok(());
    }
    let adapt = a.adapt.as_deref().map(parse_adapt).transpose()?;
    gridflow_deploy::cancel_on_signals()?;
    let cluster = SlurmCluster::new(options)?;
    announce(&cluster, a.scheduler_file.as_deref())?;
    match adapt {
        Some((lo, hi)) => {
            cluster.adapt(lo, hi)?;
            outln!("adapting between {lo} and {hi} workers")?;
        }
        None => {
            let jobs = a.jobs.unwrap_or(1);
            let workers = jobs
                .checked_mul(a.processes.max(1) as usize)
                .context("--jobs times --processes is too many workers")?;
            cluster.scale(workers)?;
            outln!("submitted {jobs} job(s): {}", cluster.job_ids()?.join(", "))?;
        }
    }
    watch(&cluster)
}

fn ssh(a: SshArgs) -> Result<()> {
    let mut ssh_options = Vec::new();
    if let Some(f) = &a.ssh_config {
        ssh_options.extend(["-F".to_owned(), f.display().to_string()]);
    }
    for o in &a.ssh_options {
        ssh_options.extend(["-o".to_owned(), o.clone()]);
    }
    let options = SshOptions {
        hosts: a.hosts.clone(),
        ssh_options,
        remote_command: a
            .remote_command
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        scheduler_host: a.scheduler_host.clone(),
        scheduler_port: a.scheduler_port,
        n_workers: a.workers,
        nthreads: a.nthreads,
        memory_limit: bytes(&a.memory_limit)?,
        security: a.auth.security()?,
        ..SshOptions::default()
    };
    let adapt = a.adapt.as_deref().map(parse_adapt).transpose()?;
    gridflow_deploy::cancel_on_signals()?;
    let cluster = SshCluster::new(options)?;
    announce(&cluster, None)?;
    if let Some((lo, hi)) = adapt {
        cluster.adapt(lo, hi)?;
    }
    watch(&cluster)
}

fn kubernetes(a: &KubernetesArgs) -> Result<()> {
    let mut kubectl_options = Vec::new();
    if let Some(c) = &a.context {
        kubectl_options.extend(["--context".to_owned(), c.clone()]);
    }
    if let Some(k) = &a.kubeconfig {
        kubectl_options.extend(["--kubeconfig".to_owned(), k.display().to_string()]);
    }
    let defaults = KubernetesOptions::default();
    let options = KubernetesOptions {
        name: a.name.clone(),
        namespace: a.namespace.clone(),
        image: a.image.clone().unwrap_or(defaults.image),
        image_pull_policy: a.image_pull_policy.clone(),
        n_workers: a.workers,
        worker_cpu: a.worker_cpu.clone(),
        worker_memory: a.worker_memory.clone(),
        worker_threads: a.worker_threads,
        scheduler_cpu: a.scheduler_cpu.clone(),
        scheduler_memory: a.scheduler_memory.clone(),
        service_type: a.service_type.clone(),
        kubectl_options,
        ..KubernetesOptions::default()
    };
    if a.delete {
        options.delete()?;
        outln!("deleted the objects of cluster {}", a.name)?;
        return Ok(());
    }
    if a.dry_run {
        let token = gridflow_distributed::auth::generate_token()?;
        outln!("{}", options.render(&token)?.trim_end())?;
        return Ok(());
    }
    let cluster = KubernetesCluster::new(options.clone())?;
    outln!(
        "applied cluster {} ({} worker pod(s)); inside Kubernetes the scheduler is at {}",
        a.name,
        a.workers,
        options.in_cluster_address()
    )?;
    outln!(
        "from here: kubectl port-forward service/{}-scheduler 8786 8787, then connect to \
         tcp://127.0.0.1:8786 with the token of secret {}-auth",
        a.name,
        a.name
    )?;
    outln!(
        "delete it with: gridflow cluster kubernetes --name {} --delete",
        a.name
    )?;
    cluster.keep();
    Ok(())
}

/// Starts the cluster of `gridflow eval --cluster slurm:...|ssh:...` and waits for its
/// workers; returns it with a client.
pub fn start_for_run(spec: &str) -> Result<(Box<dyn Cluster>, gridflow_distributed::Client)> {
    let timeout = Duration::from_secs(600);
    let cluster: Box<dyn Cluster> = if let Some(rest) = spec.strip_prefix("slurm:") {
        let mut parts = rest.split(',');
        let jobs: usize =
            parts.next().unwrap_or_default().parse().with_context(|| {
                format!("--cluster {spec:?}: expected slurm:N_JOBS[,key=value...]")
            })?;
        let mut o = SlurmOptions {
            security: gridflow_distributed::Security::from_env()?,
            ..SlurmOptions::default()
        };
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--cluster {spec:?}: {kv:?} is not key=value"))?;
            let n = || {
                v.parse::<u32>()
                    .with_context(|| format!("--cluster {spec:?}: {k}={v:?} is not a whole number"))
            };
            match k {
                "partition" | "queue" => o.partition = Some(v.into()),
                "account" => o.account = Some(v.into()),
                "cores" => o.cores = n()?,
                "processes" => o.processes = n()?,
                "memory" => o.memory = gridflow_runtime::parse_size(v)? as u64,
                "walltime" => o.walltime = Some(gridflow_deploy::slurm::parse_walltime(v)?),
                "interface" => o.interface = Some(v.into()),
                other => bail!(
                    "--cluster {spec:?}: unknown key {other:?} (partition, account, cores,                      memory, walltime, processes, interface)"
                ),
            }
        }
        let workers = jobs
            .max(1)
            .checked_mul(o.processes.max(1) as usize)
            .context("too many workers")?;
        gridflow_deploy::cancel_on_signals()?;
        let c = SlurmCluster::new(o)?;
        c.scale(workers)?;
        crate::out::note!(
            "cluster {}: {jobs} Slurm job(s): {}",
            c.scheduler_address(),
            c.job_ids()?.join(", ")
        );
        c.wait_for_workers(workers, timeout)?;
        Box::new(c)
    } else if let Some(rest) = spec.strip_prefix("ssh:") {
        let hosts: Vec<String> = rest
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if hosts.is_empty() {
            bail!("--cluster {spec:?}: expected ssh:HOST,HOST,...");
        }
        gridflow_deploy::cancel_on_signals()?;
        let c = SshCluster::new(SshOptions {
            n_workers: hosts.len().saturating_sub(1).max(1),
            hosts,
            security: gridflow_distributed::Security::from_env()?,
            timeout,
            ..SshOptions::default()
        })?;
        crate::out::note!("cluster {} over ssh", c.scheduler_address());
        Box::new(c)
    } else {
        bail!("--cluster {spec:?}: expected local[:NxT], slurm:N_JOBS[,...] or ssh:HOST,...");
    };
    let client = gridflow_distributed::Client::connect_with(
        &cluster.scheduler_address(),
        cluster.security(),
    )?;
    Ok((cluster, client))
}

/// Prints where clients connect (and writes the scheduler file).
fn announce(cluster: &dyn Cluster, scheduler_file: Option<&std::path::Path>) -> Result<()> {
    let address = cluster.scheduler_address();
    outln!("scheduler at {address}")?;
    if let Some(d) = cluster.dashboard_link() {
        outln!("dashboard at {d}")?;
    }
    if cluster.security().has_token() {
        outln!("clients need the cluster's token (--auth-token-file or GRIDFLOW_AUTH_TOKEN)")?;
    }
    if let Some(f) = scheduler_file {
        gridflow_distributed::scheduler::write_scheduler_file(f, &address)?;
    }
    Ok(())
}

/// Reports changes in the workers' states until the process is interrupted (the signal
/// handler stops the cluster's jobs and processes).
fn watch(cluster: &dyn Cluster) -> Result<()> {
    let mut last: Vec<(String, WorkerState)> = Vec::new();
    loop {
        let now: Vec<(String, WorkerState)> = cluster
            .worker_status()?
            .into_iter()
            .map(|w| (format!("{} ({})", w.name, w.id), w.state))
            .collect();
        for (name, state) in &now {
            if !last.iter().any(|(n, s)| n == name && s == state) {
                let what = match state {
                    WorkerState::Queued { reason } => format!("queued: {reason}"),
                    WorkerState::Starting => "starting".into(),
                    WorkerState::Running => "running".into(),
                    WorkerState::Retiring => "retiring".into(),
                    WorkerState::Failed { reason } => format!("failed: {reason}"),
                    WorkerState::Stopped => "stopped".into(),
                };
                outln!("worker {name}: {what}")?;
            }
        }
        last = now;
        std::thread::sleep(Duration::from_secs(1));
    }
}
