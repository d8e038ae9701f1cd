//! Processes on the gateway's machine: every cluster's `gridflow scheduler` (whatever the
//! backend of its workers) and, with the local backend, its `gridflow worker` processes.
//! Each is in its own process group (a signal to the gateway's terminal group does not
//! reach it) and not tied to the gateway's life, so it keeps running across a gateway
//! restart and is found again by process id.

use crate::db::WorkerRecord;
use crate::{GatewayError, Result};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Starts and stops cluster processes on this machine.
pub struct LocalBackend {
    program: PathBuf,
    dir: PathBuf,
    /// Processes this gateway started (reaped here so they do not linger as zombies, and
    /// their exit status kept for the user).
    children: Mutex<HashMap<u32, Child>>,
    /// How reaped processes ended.
    exits: Mutex<HashMap<u32, String>>,
}

/// A started scheduler.
pub struct Started {
    /// Its address (`tcp://127.0.0.1:PORT`).
    pub address: String,
    /// Its process id.
    pub pid: u32,
    /// Its dashboard's `host:port` (on 127.0.0.1: reached through the gateway).
    pub dashboard: Option<String>,
}

impl LocalBackend {
    /// A backend running `program` (the `gridflow` binary), keeping each cluster's token
    /// and logs under `dir/clusters/ID`.
    pub fn new(program: PathBuf, dir: PathBuf) -> LocalBackend {
        LocalBackend {
            program,
            dir,
            children: Mutex::default(),
            exits: Mutex::default(),
        }
    }

    /// A cluster's directory.
    pub fn cluster_dir(&self, id: &str) -> PathBuf {
        self.dir.join("clusters").join(id)
    }

    /// The `gridflow` program started as schedulers (and local workers).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Where cluster `id`'s token is kept (0600).
    pub fn token_file(&self, id: &str) -> PathBuf {
        self.cluster_dir(id).join("token")
    }

    /// Writes the cluster's token to a file only this user may read (the scheduler and
    /// workers read it from there, never from their command line).
    pub fn write_token(&self, id: &str, token: &str) -> Result<()> {
        let dir = self.cluster_dir(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| GatewayError::io(format!("creating {}", dir.display()), e))?;
        let path = self.token_file(id);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| GatewayError::io(format!("writing {}", path.display()), e))?;
        f.write_all(token.as_bytes())
            .map_err(|e| GatewayError::io(format!("writing {}", path.display()), e))
    }

    /// The cluster's token, read back (after a gateway restart).
    pub fn read_token(&self, id: &str) -> Result<String> {
        let path = self.token_file(id);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| GatewayError::io(format!("reading {}", path.display()), e))
    }

    fn command(&self, id: &str, log: &str) -> Result<Command> {
        let path = self.cluster_dir(id).join(log);
        let out = std::fs::File::create(&path)
            .map_err(|e| GatewayError::io(format!("creating {}", path.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| GatewayError::io(format!("opening {}", path.display()), e))?;
        let mut c = Command::new(&self.program);
        for k in [
            "GRIDFLOW_AUTH_TOKEN",
            "GRIDFLOW_AUTH_TOKEN_FILE",
            "GRIDFLOW_TLS_CA",
            "GRIDFLOW_TLS_CERT",
            "GRIDFLOW_TLS_KEY",
        ] {
            c.env_remove(k);
        }
        c.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: outlives the gateway and a Ctrl-C in its terminal.
            .process_group(0);
        Ok(c)
    }

    fn keep(&self, child: Child) -> u32 {
        let pid = child.id();
        // A reused process id: the earlier process's exit no longer applies.
        crate::lock(&self.exits).remove(&pid);
        crate::lock(&self.children).insert(pid, child);
        pid
    }

    /// Starts cluster `id`'s scheduler and waits (up to `timeout`) for its address.
    pub fn start_scheduler(&self, id: &str, host: &str, timeout: Duration) -> Result<Started> {
        let file = self.cluster_dir(id).join("scheduler.json");
        let _ = std::fs::remove_file(&file);
        let mut c = self.command(id, "scheduler.log")?;
        // The dashboard on loopback only, any free port: users reach it through the
        // gateway, which checks who they are.
        c.args(["scheduler", "--host", host, "--port", "0"])
            .args(["--dashboard-address", "127.0.0.1:0"])
            .arg("--scheduler-file")
            .arg(&file)
            .arg("--auth-token-file")
            .arg(self.token_file(id));
        let child = c.spawn().map_err(|e| {
            GatewayError::io(format!("starting {} scheduler", self.program.display()), e)
        })?;
        let pid = self.keep(child);
        let start = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&s)
                && let Some(a) = v.get("address").and_then(serde_json::Value::as_str)
            {
                // The dashboard's line follows the address; a scheduler without one (an
                // older gridflow) is used without a dashboard after a short wait.
                let log = self.cluster_dir(id).join("scheduler.log");
                let dash_wait = Instant::now();
                let dashboard = loop {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let found = text.lines().find_map(|l| {
                        l.strip_prefix("gridflow dashboard at http://")
                            .and_then(|r| r.split('/').next())
                            .map(str::to_owned)
                    });
                    if found.is_some() || dash_wait.elapsed() > Duration::from_secs(2) {
                        break found;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                };
                return Ok(Started {
                    address: a.to_owned(),
                    pid,
                    dashboard,
                });
            }
            self.reap();
            if !self.alive(pid, id) {
                return Err(GatewayError::cluster(
                    id,
                    format!(
                        "the scheduler exited at start-up ({}): {}",
                        self.exit_reason(pid),
                        last_line(&self.cluster_dir(id).join("scheduler.log"))
                    ),
                ));
            }
            if start.elapsed() > timeout {
                self.stop(id, &[pid]);
                return Err(GatewayError::cluster(
                    id,
                    format!("the scheduler gave no address within {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts worker `name` of cluster `id`, joining the scheduler at `address`.
    pub fn start_worker(
        &self,
        id: &str,
        address: &str,
        name: &str,
        threads: usize,
        memory: u64,
    ) -> Result<WorkerRecord> {
        let mut c = self.command(id, &format!("{name}.log"))?;
        c.args(["worker", address, "--nthreads", &threads.to_string()])
            .args(["--name", name])
            .arg("--auth-token-file")
            .arg(self.token_file(id))
            .arg("--local-directory")
            .arg(self.cluster_dir(id).join(format!("{name}-spill")));
        if memory > 0 {
            c.args(["--memory-limit", &memory.to_string()]);
        }
        let child = c.spawn().map_err(|e| {
            GatewayError::io(format!("starting {} worker", self.program.display()), e)
        })?;
        Ok(WorkerRecord {
            name: name.to_owned(),
            pid: self.keep(child),
            failed: None,
            job: None,
            host: None,
            asked: crate::now(),
        })
    }

    /// Reaps children that ended (keeping how), so none lingers as a zombie.
    pub fn reap(&self) {
        let mut ended = Vec::new();
        crate::lock(&self.children).retain(|&pid, c| match c.try_wait() {
            Ok(Some(status)) => {
                ended.push((pid, status.to_string()));
                false
            }
            _ => true,
        });
        let mut exits = crate::lock(&self.exits);
        for (pid, why) in ended {
            exits.insert(pid, why);
        }
    }

    /// Whether process `pid` of cluster `id` is running (its command line names the
    /// cluster, so a reused process id is not mistaken for it).
    pub fn alive(&self, pid: u32, id: &str) -> bool {
        // A child of this gateway not reaped yet is running (its /proc entry may still
        // show the gateway's command line for a moment after the spawn).
        if crate::lock(&self.children).contains_key(&pid) {
            return true;
        }
        if crate::lock(&self.exits).contains_key(&pid) {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next());
        if matches!(state, Some('Z' | 'X') | None) {
            return false;
        }
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(id))
    }

    /// How a process ended, as far as known.
    pub fn exit_reason(&self, pid: u32) -> String {
        crate::lock(&self.exits)
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| "the process is gone".into())
    }

    /// Why worker `w` of cluster `id` failed: how it ended and its log's last line.
    pub fn failure(&self, id: &str, w: &WorkerRecord) -> String {
        let log = last_line(&self.cluster_dir(id).join(format!("{}.log", w.name)));
        if log.is_empty() {
            self.exit_reason(w.pid)
        } else {
            format!("{}; its log ends: {log}", self.exit_reason(w.pid))
        }
    }

    /// Stops these processes of cluster `id`: SIGTERM, then SIGKILL after 3 s; returns
    /// once none is running.
    pub fn stop(&self, id: &str, pids: &[u32]) {
        let signal = |sig| {
            for &pid in pids {
                if self.alive(pid, id)
                    && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
                {
                    let _ = rustix::process::kill_process(p, sig);
                }
            }
        };
        self.reap();
        signal(rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while {
            self.reap();
            pids.iter().any(|&p| self.alive(p, id))
        } {
            if Instant::now() > deadline {
                signal(rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes a stopped cluster's directory (token, logs).
    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.cluster_dir(id));
    }
}

/// The last non-empty line of a log file (empty if none).
pub(crate) fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(500)
        .collect()
}
