//! A cluster on this machine: a scheduler on a thread of this process and worker
//! processes started from a program (by default the running binary).

use crate::auth::{Security, TLS_ENV, TOKEN_ENV, TOKEN_FILE_ENV};
use crate::scheduler::{self, ExitReporter, SchedulerHandle, SchedulerOptions};
use crate::{Client, DistError, Result};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod scaling;

/// How to start a local cluster.
#[derive(Clone, Debug)]
pub struct LocalClusterOptions {
    /// Worker processes.
    pub n_workers: usize,
    /// Threads per worker.
    pub threads_per_worker: usize,
    /// Memory limit per worker in bytes (0: none).
    pub memory_limit: u64,
    /// The program run as each worker, given `ARGS... ADDRESS --nthreads N
    /// --memory-limit BYTES --name NAME`; `None`: this process's binary.
    pub program: Option<PathBuf>,
    /// Arguments before the address (default `["worker"]`, as `gridflow worker`).
    pub args: Vec<String>,
    /// How long to wait for every worker to join.
    pub timeout: Duration,
    /// Credentials of the scheduler, the workers (given the secret through their
    /// environment, never their command line) and [`LocalCluster::client`].
    pub security: Security,
    /// Workers a task may take down with it before it fails its computation.
    pub allowed_failures: u32,
    /// A worker not heard from for this long is removed (and one that hears nothing from
    /// the scheduler for this long exits).
    pub heartbeat_timeout: Duration,
    /// Restart workers that die (the nanny); off, a dead worker stays dead.
    pub restart_workers: bool,
    /// Where workers spill results (a directory per worker inside); `None`: the system's
    /// temporary directory.
    pub local_directory: Option<PathBuf>,
    /// Where the scheduler serves its dashboard (`HOST:PORT`; `:0` for any free port; a
    /// taken port falls back to a free one, as Dask's does); `None` or `"none"`: no
    /// dashboard. Default `:8787` on 127.0.0.1.
    pub dashboard_address: Option<String>,
}

impl Default for LocalClusterOptions {
    fn default() -> LocalClusterOptions {
        LocalClusterOptions {
            n_workers: 1,
            threads_per_worker: 1,
            memory_limit: 0,
            program: None,
            args: vec!["worker".into()],
            timeout: Duration::from_secs(30),
            security: Security::none(),
            allowed_failures: 3,
            heartbeat_timeout: Duration::from_secs(30),
            restart_workers: true,
            local_directory: None,
            dashboard_address: Some(format!(":{}", crate::dashboard::DEFAULT_PORT)),
        }
    }
}

impl LocalClusterOptions {
    /// Sized like Dask's `Client()`: workers × threads from the cores this process may use
    /// ([`crate::machine::default_layout`]), the memory it may use
    /// ([`crate::machine::available_memory`]) split between the workers.
    pub fn for_machine() -> LocalClusterOptions {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let (n_workers, threads_per_worker) = crate::machine::default_layout(cores);
        LocalClusterOptions {
            n_workers,
            threads_per_worker,
            memory_limit: crate::machine::available_memory() / n_workers.max(1) as u64,
            ..LocalClusterOptions::default()
        }
    }
}

/// A worker process and its name.
struct Slot {
    name: String,
    child: Child,
}

/// Starts worker processes (again, when the nanny restarts one).
#[derive(Clone)]
struct Spawner {
    program: PathBuf,
    address: String,
    options: LocalClusterOptions,
}

impl Spawner {
    /// Where worker `name` records the tasks it runs (see
    /// [`crate::WorkerOptions::running_file`]).
    fn running_file(&self, name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "gridflow-{}-{}-{name}.running",
            std::process::id(),
            self.address.rsplit(':').next().unwrap_or("0")
        ))
    }

    /// The tasks worker `name` was running when it died (the file is removed).
    fn was_running(&self, name: &str) -> Vec<u64> {
        let p = self.running_file(name);
        let ids = std::fs::read(&p)
            .unwrap_or_default()
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .filter(|&v| v != 0)
            .map(|v| v - 1)
            .collect();
        let _ = std::fs::remove_file(&p);
        ids
    }

    fn spawn(&self, name: &str) -> Result<Child> {
        let (options, sec) = (&self.options, &self.options.security);
        let mut cmd = Command::new(&self.program);
        // The workers' credentials are exactly the cluster's, whatever this process's
        // environment says.
        for k in [TOKEN_ENV, TOKEN_FILE_ENV].iter().chain(&TLS_ENV) {
            cmd.env_remove(k);
        }
        if let Some(t) = sec.token() {
            cmd.env(TOKEN_ENV, String::from_utf8_lossy(t).as_ref());
        }
        if let Some(f) = sec.tls_files() {
            cmd.env(TLS_ENV[0], &f.ca)
                .env(TLS_ENV[1], &f.cert)
                .env(TLS_ENV[2], &f.key);
        }
        cmd.args(&options.args)
            .arg(&self.address)
            .args(["--nthreads", &options.threads_per_worker.max(1).to_string()])
            .args(["--memory-limit", &options.memory_limit.to_string()])
            .args(["--name", name])
            .arg("--running-file")
            .arg(self.running_file(name))
            .stdin(Stdio::null());
        if let Some(d) = &options.local_directory {
            cmd.arg("--local-directory").arg(d.join(name));
        }
        cmd.args([
            "--heartbeat-timeout",
            &options.heartbeat_timeout.as_millis().to_string(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| {
            DistError::io(
                format!("starting worker {name} ({})", self.program.display()),
                e,
            )
        })
    }
}

/// How a worker process ended, for error messages: the signal (with what usually sends
/// it), or the exit code.
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let what = match sig {
            9 => "SIGKILL: killed by another process or by the kernel's out-of-memory killer",
            6 => "SIGABRT: the process aborted",
            11 => "SIGSEGV: invalid memory access",
            7 => "SIGBUS: bus error",
            15 => "SIGTERM: asked to terminate",
            2 => "SIGINT: interrupted",
            _ => "a signal",
        };
        return format!("was killed by signal {sig} ({what})");
    }
    match status.code() {
        Some(c) => format!("exited with code {c}"),
        None => format!("ended ({status})"),
    }
}

/// The nanny: restarts workers that die, telling the scheduler how they died, and
/// restarts a worker whose memory passes 95% of its limit.
fn nanny(slots: &Mutex<Vec<Slot>>, spawner: &Spawner, report: &ExitReporter, stop: &AtomicBool) {
    let limit = spawner.options.memory_limit;
    while !stop.load(Ordering::Relaxed) {
        // Parked, not slept: `stop` unparks it, so closing does not wait out a poll.
        std::thread::park_timeout(Duration::from_millis(50));
        let mut slots = slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // Workers that left cleanly (retired: `retire_workers`, `--lifetime`, SIGTERM)
        // are not restarted, as Dask's nanny does not restart a worker that closed.
        let mut left = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            let (reason, running) = match slot.child.try_wait() {
                Ok(Some(status)) => {
                    let running = spawner.was_running(&slot.name);
                    if status.success() && running.is_empty() {
                        report.exited(&slot.name, "retired and exited".into(), running);
                        left.push(i);
                        continue;
                    }
                    (describe_exit(status), running)
                }
                Ok(None) => {
                    let rss = crate::machine::process_rss(slot.child.id()).unwrap_or(0);
                    if limit == 0 || (rss as f64) < 0.95 * limit as f64 {
                        continue;
                    }
                    let _ = slot.child.kill();
                    let _ = slot.child.wait();
                    (
                        format!(
                            "was restarted by the nanny: its memory ({} MiB) passed 95% of its \
                             limit ({} MiB)",
                            rss >> 20,
                            limit >> 20
                        ),
                        spawner.was_running(&slot.name),
                    )
                }
                Err(_) => continue,
            };
            report.exited(&slot.name, reason.clone(), running);
            if !spawner.options.restart_workers {
                continue;
            }
            match spawner.spawn(&slot.name) {
                Ok(c) => slot.child = c,
                Err(e) => {
                    tracing::error!(
                        "gridflow nanny: worker {} {reason}; restarting it failed: {e}",
                        slot.name
                    );
                }
            }
        }
        for i in left.into_iter().rev() {
            slots.remove(i);
        }
    }
}

/// A scheduler and worker processes on this machine, with a nanny restarting workers that
/// die; stopped on drop (or [`LocalCluster::close`]). It implements [`crate::Cluster`]
/// (`scaling.rs`): `scale` starts or retires worker processes, `adapt` follows the
/// scheduler's adaptive target.
pub struct LocalCluster {
    scheduler: Mutex<SchedulerHandle>,
    address: String,
    security: Security,
    workers: Arc<Mutex<Vec<Slot>>>,
    spawner: Spawner,
    /// The number of the next worker started (names are never reused).
    next: Arc<std::sync::atomic::AtomicUsize>,
    stop_nanny: Arc<AtomicBool>,
    nanny: Mutex<Option<std::thread::JoinHandle<()>>>,
    running_files: Arc<Mutex<Vec<PathBuf>>>,
    adaptive: Mutex<Option<crate::Adaptive>>,
    /// Workers taken out of `workers` by a scale-down and not yet exited (name, process
    /// id): `worker_status` lists them as retiring until they are gone.
    leaving: Arc<Mutex<Vec<(String, u32)>>>,
}

impl LocalCluster {
    /// `n_workers` worker processes of `threads_per_worker` threads and `memory_limit`
    /// bytes each (0: none), started from this process's binary as `gridflow worker`.
    pub fn new(
        n_workers: usize,
        threads_per_worker: usize,
        memory_limit: u64,
    ) -> Result<LocalCluster> {
        LocalCluster::with_options(LocalClusterOptions {
            n_workers,
            threads_per_worker,
            memory_limit,
            ..LocalClusterOptions::default()
        })
    }

    /// A cluster as `options` say; returns once every worker has joined.
    pub fn with_options(options: LocalClusterOptions) -> Result<LocalCluster> {
        let listener = scheduler::bind("127.0.0.1", 0)?;
        let sec = options.security.clone();
        let handle = scheduler::spawn_with(
            listener,
            SchedulerOptions {
                security: sec.clone(),
                allowed_failures: options.allowed_failures,
                heartbeat_timeout: options.heartbeat_timeout,
                // The nanny polls every 50 ms: a worker's death is explained well within this.
                nanny_grace: Duration::from_secs(2),
                wait_for_workers: options.restart_workers,
                dashboard_address: options.dashboard_address.clone(),
                ..SchedulerOptions::default()
            },
        )?;
        let address = format!("{}{}", sec.scheme(), handle.address());
        let program = match &options.program {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| DistError::io("finding this program to start workers", e))?,
        };
        let spawner = Spawner {
            program: program.clone(),
            address: address.clone(),
            options: options.clone(),
        };
        let cluster = LocalCluster {
            scheduler: Mutex::new(handle),
            address: address.clone(),
            security: sec.clone(),
            workers: Arc::default(),
            spawner: spawner.clone(),
            next: Arc::default(),
            stop_nanny: Arc::default(),
            nanny: Mutex::new(None),
            running_files: Arc::default(),
            adaptive: Mutex::new(None),
            leaving: Arc::default(),
        };
        for _ in 0..options.n_workers.max(1) {
            cluster.start_worker()?;
        }
        let client = Client::connect_with(&address, sec.clone())?;
        let n = cluster.lock().len();
        let start = std::time::Instant::now();
        loop {
            // A worker that exits early is reported with its status, not waited for.
            for s in cluster.lock().iter_mut() {
                if let Ok(Some(status)) = s.child.try_wait() {
                    return Err(DistError::Cluster(format!(
                        "worker {} ({}) exited at start-up: {status}",
                        s.name,
                        program.display()
                    )));
                }
            }
            if client.workers()?.len() >= n {
                break;
            }
            if start.elapsed() > options.timeout {
                return Err(DistError::Cluster(format!(
                    "workers did not all join within {:?}",
                    options.timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (slots, stop) = (cluster.workers.clone(), cluster.stop_nanny.clone());
        let report = crate::client::lock(&cluster.scheduler).exit_reporter();
        *crate::client::lock(&cluster.nanny) = Some(
            std::thread::Builder::new()
                .name("gridflow-nanny".into())
                .spawn(move || nanny(&slots, &spawner, &report, &stop))
                .map_err(|e| DistError::io("starting the nanny thread", e))?,
        );
        Ok(cluster)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The scheduler's address (`tcp://127.0.0.1:PORT`, or `tls://` with TLS).
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// The dashboard's URL (`http://127.0.0.1:PORT/status`), when it serves one.
    pub fn dashboard_link(&self) -> Option<String> {
        crate::client::lock(&self.scheduler).dashboard_link()
    }

    /// A client connected to this cluster, with the cluster's credentials.
    pub fn client(&self) -> Result<Client> {
        Client::connect_with(&self.address(), self.security.clone())
    }

    /// Process ids of the workers (a restarted worker has a new one).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.lock().iter().map(|s| s.child.id()).collect()
    }

    /// The scheduler's log of cluster events: workers lost and how they died, tasks
    /// rescheduled.
    pub fn log(&self) -> Vec<String> {
        crate::client::lock(&self.scheduler).log()
    }

    /// Stops the workers and the scheduler.
    pub fn close(self) {
        self.stop();
    }

    fn stop(&self) {
        if let Some(mut a) = crate::client::lock(&self.adaptive).take() {
            a.stop();
        }
        // The nanny first, so that workers told to shut down are not restarted.
        self.stop_nanny.store(true, Ordering::Relaxed);
        if let Some(t) = crate::client::lock(&self.nanny).take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // The scheduler tells workers to shut down; any still running after a grace
        // period are killed.
        crate::client::lock(&self.scheduler).shutdown();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut slots = self.lock();
        for s in slots.iter_mut() {
            let c = &mut s.child;
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Ok(None) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        slots.clear();
        drop(slots);
        for p in crate::client::lock(&self.running_files).iter() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
