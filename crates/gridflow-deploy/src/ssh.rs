//! Clusters over SSH: the scheduler on the first host, workers on the others, started
//! through the user's own `ssh` (its configuration, keys and host-key policy; extra `-F` /
//! `-o` options are passed as given). Each remote process runs under a small shell wrapper
//! that reads the cluster's secret from standard input (never a command line) and kills the
//! process when its standard input closes: when the cluster closes, or when this process
//! dies and its `ssh` connections drop, nothing is left running on the hosts.

use crate::command::shell_quote;
use crate::{DeployError, Result, signals};
use gridflow_distributed::{
    Adaptive, AdaptiveOptions, Client, Cluster, Security, WorkerState, WorkerStatus,
};
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to start a cluster over SSH.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// The hosts as `ssh` takes them (`host`, `user@host`, an alias of the ssh
    /// configuration): the scheduler runs on the first, workers on the others (on the
    /// first too when it is the only one).
    pub hosts: Vec<String>,
    /// The `ssh` program.
    pub ssh: String,
    /// Options given to every `ssh` call before the host (`-F FILE`, `-o KEY=VALUE`,
    /// `-i KEY`).
    pub ssh_options: Vec<String>,
    /// The remote program and arguments before `scheduler` / `worker` (default
    /// `gridflow`, found on the remote `PATH`).
    pub remote_command: Vec<String>,
    /// The address the scheduler listens on and workers connect to; `None`: the first
    /// host's name (without `user@`), which must resolve on the hosts.
    pub scheduler_host: Option<String>,
    /// The scheduler's port (0: any free one).
    pub scheduler_port: u16,
    /// Workers started at first, spread over the worker hosts.
    pub n_workers: usize,
    /// Threads per worker.
    pub nthreads: usize,
    /// Memory limit per worker in bytes (0: none).
    pub memory_limit: u64,
    /// A name for this cluster, part of the workers' names and of the scheduler file's
    /// (so its processes can be told apart on shared hosts).
    pub name: String,
    /// Credentials; none and a non-loopback scheduler: a fresh token is made.
    pub security: Security,
    /// How long the scheduler may take to start, and workers to join.
    pub timeout: Duration,
}

impl Default for SshOptions {
    fn default() -> SshOptions {
        SshOptions {
            hosts: Vec::new(),
            ssh: "ssh".into(),
            ssh_options: Vec::new(),
            remote_command: vec!["gridflow".into()],
            scheduler_host: None,
            scheduler_port: 0,
            n_workers: 1,
            nthreads: 1,
            memory_limit: 0,
            name: format!("ssh{}", std::process::id()),
            security: Security::none(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A process started on a host through `ssh`.
struct Remote {
    host: String,
    name: String,
    child: Child,
    /// Closing it makes the remote wrapper stop the process.
    stdin: Option<ChildStdin>,
}

impl Remote {
    /// Stops the remote process (its wrapper sees standard input close) and waits up to
    /// `grace` for `ssh` to end before killing it (the connection dropping stops the
    /// process too).
    fn stop(&mut self, grace: Duration) {
        self.stdin.take();
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// The host part of `user@host`.
pub fn bare_host(h: &str) -> &str {
    h.rsplit('@').next().unwrap_or(h)
}

/// The remote shell line running `cmd` under the wrapper: the first line of standard input
/// is the secret (empty: none); standard input closing stops the process.
fn wrapped(cmd: &[String]) -> String {
    let cmd: Vec<String> = cmd.iter().map(|a| shell_quote(a)).collect();
    // A non-interactive shell gives background commands /dev/null as standard input:
    // the watcher reads the real one through descriptor 3.
    format!(
        "exec 3<&0; read -r t <&3; if [ -n \"$t\" ]; then GRIDFLOW_AUTH_TOKEN=\"$t\"; \
         export GRIDFLOW_AUTH_TOKEN; fi; unset t; {} </dev/null 3<&- & p=$!; \
         (cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null) >/dev/null 2>&1 & w=$!; \
         exec 3<&-; wait $p; s=$?; kill $w 2>/dev/null; exit $s",
        cmd.join(" ")
    )
}

struct Inner {
    options: SshOptions,
    address: String,
    /// The dashboard's link, as the scheduler printed it.
    dashboard: Arc<Mutex<Option<String>>>,
    security: Security,
    workers: Mutex<Vec<Remote>>,
    scheduler: Mutex<Option<Remote>>,
    next: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    /// Starts `cmd` on `host` under the wrapper, its output piped (`stdout`) or passed on.
    fn start(&self, host: &str, name: &str, cmd: &[String], pipe_stdout: bool) -> Result<Remote> {
        let mut c = Command::new(&self.options.ssh);
        c.args(&self.options.ssh_options)
            .arg(host)
            .arg(wrapped(cmd))
            .stdin(Stdio::piped())
            .stdout(if pipe_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit());
        let mut child = c.spawn().map_err(|source| DeployError::Spawn {
            program: self.options.ssh.clone(),
            source,
        })?;
        let mut stdin = child.stdin.take();
        let token = self
            .security
            .token()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_default();
        if let Some(s) = stdin.as_mut() {
            s.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| s.flush())
                .map_err(|e| DeployError::io(format!("ssh {host}: sending the secret"), e))?;
        }
        Ok(Remote {
            host: host.to_owned(),
            name: name.to_owned(),
            child,
            stdin,
        })
    }

    fn worker_hosts(&self) -> Vec<String> {
        let h = &self.options.hosts;
        if h.len() == 1 {
            h.clone()
        } else {
            h[1..].to_vec()
        }
    }

    fn start_worker(&self) -> Result<()> {
        let hosts = self.worker_hosts();
        // The host running the fewest workers.
        let host = {
            let w = lock(&self.workers);
            hosts
                .iter()
                .min_by_key(|h| w.iter().filter(|r| &r.host == *h).count())
                .cloned()
                .ok_or_else(|| DeployError::Invalid("ssh: no worker host".into()))?
        };
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{}-{k}", self.options.name, bare_host(&host));
        let mut cmd = self.options.remote_command.clone();
        cmd.extend([
            "worker".into(),
            self.address.clone(),
            "--nthreads".into(),
            self.options.nthreads.max(1).to_string(),
            "--name".into(),
            name.clone(),
            "--host".into(),
            bare_host(&host).to_owned(),
        ]);
        if self.options.memory_limit > 0 {
            cmd.extend([
                "--memory-limit".into(),
                self.options.memory_limit.to_string(),
            ]);
        }
        let r = self.start(&host, &name, &cmd, false)?;
        lock(&self.workers).push(r);
        Ok(())
    }

    fn client(&self) -> Result<Client> {
        Ok(Client::connect_with(&self.address, self.security.clone())?)
    }

    /// Starts or retires workers until there are `n` (the newest retire first).
    fn scale_to(&self, n: usize) -> Result<()> {
        let have = lock(&self.workers).len();
        for _ in have..n {
            self.start_worker()?;
        }
        if n >= have {
            return Ok(());
        }
        let mut leaving = {
            let mut w = lock(&self.workers);
            let keep = n.min(w.len());
            w.split_off(keep)
        };
        let client = self.client()?;
        let joined: Vec<String> = client.workers()?.into_iter().map(|w| w.name).collect();
        let names: Vec<String> = leaving
            .iter()
            .map(|r| r.name.clone())
            .filter(|n| joined.contains(n))
            .collect();
        let retired = if names.is_empty() {
            Ok(Vec::new())
        } else {
            client.retire_workers(&names)
        };
        for r in &mut leaving {
            r.stop(Duration::from_secs(5));
        }
        retired.map(|_| ()).map_err(DeployError::from)
    }

    fn stop_all(&self) {
        let mut workers = std::mem::take(&mut *lock(&self.workers));
        for w in &mut workers {
            w.stdin.take();
        }
        for w in &mut workers {
            w.stop(Duration::from_secs(5));
        }
        if let Some(mut s) = lock(&self.scheduler).take() {
            s.stop(Duration::from_secs(5));
            // The scheduler file outlives a stopped scheduler: remove it (best effort).
            let _ = Command::new(&self.options.ssh)
                .args(&self.options.ssh_options)
                .arg(&s.host)
                .arg(format!("rm -f {}", shell_quote(&self.scheduler_file())))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Where the scheduler writes its address on its host.
    fn scheduler_file(&self) -> String {
        format!("/tmp/gridflow-scheduler-{}.json", self.options.name)
    }
}

/// A scheduler and workers started over SSH; every remote process is stopped on close, on
/// drop and (with [`crate::cancel_on_signals`]) on Ctrl-C / SIGTERM.
pub struct SshCluster {
    inner: Arc<Inner>,
    adaptive: Mutex<Option<Adaptive>>,
    _cleanup: signals::Registration,
}

impl SshCluster {
    /// Starts the scheduler on the first host, then `n_workers` workers, and waits for
    /// them to join.
    pub fn new(options: SshOptions) -> Result<SshCluster> {
        let Some(first) = options.hosts.first().cloned() else {
            return Err(DeployError::Invalid("ssh: no host given".into()));
        };
        if options.remote_command.is_empty() {
            return Err(DeployError::Invalid(
                "ssh: the remote command is empty".into(),
            ));
        }
        let listen = options
            .scheduler_host
            .clone()
            .unwrap_or_else(|| bare_host(&first).to_owned());
        let mut security = options.security.clone();
        let loopback = listen == "localhost"
            || listen
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && !security.has_token() && !security.has_tls() {
            security = security.with_token(gridflow_distributed::auth::generate_token()?)?;
        }
        let inner = Arc::new(Inner {
            options: options.clone(),
            address: String::new(),
            dashboard: Arc::default(),
            security,
            workers: Mutex::new(Vec::new()),
            scheduler: Mutex::new(None),
            next: AtomicUsize::new(0),
        });
        let mut cmd = options.remote_command.clone();
        cmd.extend([
            "scheduler".into(),
            "--host".into(),
            listen.clone(),
            "--port".into(),
            options.scheduler_port.to_string(),
            "--scheduler-file".into(),
            inner.scheduler_file(),
            "--dashboard-address".into(),
            format!("{listen}:{}", gridflow_distributed::dashboard::DEFAULT_PORT),
        ]);
        let mut sched = inner.start(&first, "scheduler", &cmd, true)?;
        let dashboard: Arc<Mutex<Option<String>>> = Arc::default();
        let address = read_address(&mut sched, options.timeout, dashboard.clone())?;
        let inner = Arc::new(Inner {
            address,
            dashboard,
            workers: Mutex::new(Vec::new()),
            scheduler: Mutex::new(Some(sched)),
            next: AtomicUsize::new(0),
            options: inner.options.clone(),
            security: inner.security.clone(),
        });
        let weak = Arc::downgrade(&inner);
        let cleanup = signals::register(move || {
            if let Some(i) = weak.upgrade() {
                i.stop_all();
            }
        });
        let cluster = SshCluster {
            inner,
            adaptive: Mutex::new(None),
            _cleanup: cleanup,
        };
        for _ in 0..options.n_workers {
            cluster.inner.start_worker()?;
        }
        cluster.wait_for_workers(options.n_workers, options.timeout)?;
        Ok(cluster)
    }

    /// Waits until `n` workers have joined; a worker whose `ssh` ended is reported.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<()> {
        let client = self.inner.client()?;
        let start = Instant::now();
        loop {
            let joined = client.workers()?.len();
            if joined >= n {
                return Ok(());
            }
            for w in lock(&self.inner.workers).iter_mut() {
                if let Ok(Some(status)) = w.child.try_wait() {
                    return Err(DeployError::Timeout(format!(
                        "ssh: worker {} on {} ended before joining ({status}); see its messages above",
                        w.name, w.host
                    )));
                }
            }
            if start.elapsed() > timeout {
                return Err(DeployError::Timeout(format!(
                    "ssh: {joined} of {n} workers joined within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
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
        let (b, c) = (self.inner.clone(), self.inner.clone());
        let client = self.inner.client()?;
        let a = Adaptive::start(
            options,
            move || Ok(usize::try_from(client.adaptive_target()?.target).unwrap_or(usize::MAX)),
            move || lock(&b.workers).len(),
            move |n| c.scale_to(n).map_err(|e| e.into_dist("ssh")),
        )?;
        *lock(&self.adaptive) = Some(a);
        Ok(())
    }
}

/// Reads the scheduler's "gridflow scheduler at ADDRESS" line (within `timeout`), then
/// keeps draining its output, noting the dashboard's link in `dashboard` when it is printed.
fn read_address(
    sched: &mut Remote,
    timeout: Duration,
    dashboard: Arc<Mutex<Option<String>>>,
) -> Result<String> {
    let out =
        sched.child.stdout.take().ok_or_else(|| {
            DeployError::Invalid("ssh: the scheduler's output is not piped".into())
        })?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("gridflow-ssh-scheduler".into())
        .spawn(move || {
            let mut lines = std::io::BufReader::new(out).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(a) = line.trim().strip_prefix("gridflow scheduler at ") {
                    let _ = tx.send(a.to_owned());
                    break;
                }
            }
            // Whatever else it prints is dropped; reading keeps its pipe from filling.
            for line in lines.map_while(std::result::Result::ok) {
                if let Some(link) = line.trim().strip_prefix("gridflow dashboard at ") {
                    *lock(&dashboard) = Some(link.to_owned());
                }
            }
        })
        .map_err(|e| DeployError::io("starting the scheduler's reader", e))?;
    let start = Instant::now();
    loop {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(50)) {
            return Ok(a);
        }
        if let Ok(Some(status)) = sched.child.try_wait() {
            return Err(DeployError::Command {
                command: format!("ssh {} ... scheduler", sched.host),
                status: status.to_string(),
                stderr: "the scheduler did not start; see its messages above".into(),
            });
        }
        if start.elapsed() > timeout {
            sched.stop(Duration::from_secs(1));
            return Err(DeployError::Timeout(format!(
                "ssh: the scheduler on {} did not say its address within {timeout:?}",
                sched.host
            )));
        }
    }
}

impl Cluster for SshCluster {
    fn scheduler_address(&self) -> String {
        self.inner.address.clone()
    }

    fn security(&self) -> Security {
        self.inner.security.clone()
    }

    fn dashboard_link(&self) -> Option<String> {
        lock(&self.inner.dashboard).clone()
    }

    fn scale(&self, n: usize) -> gridflow_distributed::Result<()> {
        self.stop_adapting();
        self.inner.scale_to(n).map_err(|e| e.into_dist("ssh"))
    }

    fn adapt(&self, minimum: usize, maximum: usize) -> gridflow_distributed::Result<()> {
        self.adapt_with(AdaptiveOptions::new(minimum, maximum))
            .map_err(|e| e.into_dist("ssh"))
    }

    fn worker_status(&self) -> gridflow_distributed::Result<Vec<WorkerStatus>> {
        let joined: Vec<String> = self
            .inner
            .client()
            .map_err(|e| e.into_dist("ssh"))?
            .workers()?
            .into_iter()
            .map(|w| w.name)
            .collect();
        Ok(lock(&self.inner.workers)
            .iter_mut()
            .map(|w| WorkerStatus {
                name: w.name.clone(),
                id: format!("{} (ssh pid {})", w.host, w.child.id()),
                state: match w.child.try_wait() {
                    Ok(Some(s)) if s.success() => WorkerState::Stopped,
                    Ok(Some(s)) => WorkerState::Failed {
                        reason: format!("ssh {}: {s}", w.host),
                    },
                    _ if joined.contains(&w.name) => WorkerState::Running,
                    _ => WorkerState::Starting,
                },
            })
            .collect())
    }

    fn close(&self) -> gridflow_distributed::Result<()> {
        self.stop_adapting();
        self.inner.stop_all();
        Ok(())
    }
}

impl Drop for SshCluster {
    fn drop(&mut self) {
        self.stop_adapting();
        self.inner.stop_all();
    }
}
