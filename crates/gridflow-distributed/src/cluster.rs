//! A cluster on this machine: a scheduler on a thread of this process and worker
//! processes started from a program (by default the running binary).

use crate::auth::{Security, TLS_ENV, TOKEN_ENV, TOKEN_FILE_ENV};
use crate::scheduler::{self, SchedulerHandle, SchedulerOptions};
use crate::{Client, DistError, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A scheduler and worker processes on this machine; stopped on drop (or
/// [`LocalCluster::close`]).
pub struct LocalCluster {
    scheduler: SchedulerHandle,
    security: Security,
    workers: Vec<Child>,
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
                ..SchedulerOptions::default()
            },
        )?;
        let address = format!("{}{}", sec.scheme(), handle.address());
        let program = match &options.program {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| DistError::io("finding this program to start workers", e))?,
        };
        let mut cluster = LocalCluster {
            scheduler: handle,
            security: sec.clone(),
            workers: Vec::new(),
        };
        for i in 0..options.n_workers.max(1) {
            let mut cmd = Command::new(&program);
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
            let child = cmd
                .args(&options.args)
                .arg(&address)
                .args(["--nthreads", &options.threads_per_worker.max(1).to_string()])
                .args(["--memory-limit", &options.memory_limit.to_string()])
                .args(["--name", &format!("local-{i}")])
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| {
                    DistError::io(format!("starting worker {i} ({})", program.display()), e)
                })?;
            cluster.workers.push(child);
        }
        let client = Client::connect_with(&address, sec.clone())?;
        let n = cluster.workers.len();
        let start = std::time::Instant::now();
        loop {
            // A worker that exits early is reported with its status, not waited for.
            for (i, c) in cluster.workers.iter_mut().enumerate() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(DistError::Cluster(format!(
                        "worker {i} ({}) exited at start-up: {status}",
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
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(cluster)
    }

    /// The scheduler's address (`tcp://127.0.0.1:PORT`, or `tls://` with TLS).
    pub fn address(&self) -> String {
        format!("{}{}", self.security.scheme(), self.scheduler.address())
    }

    /// A client connected to this cluster, with the cluster's credentials.
    pub fn client(&self) -> Result<Client> {
        Client::connect_with(&self.address(), self.security.clone())
    }

    /// Process ids of the workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().map(Child::id).collect()
    }

    /// Stops the workers and the scheduler.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // The scheduler tells workers to shut down; any still running after a grace
        // period are killed.
        self.scheduler.shutdown();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for c in &mut self.workers {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(None) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        self.workers.clear();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
