//! Workers started over SSH with the gateway's own `ssh` (its keys, configuration and
//! host-key policy), detached from the `ssh` call (`setsid`, output to a log) so that
//! they outlive it and a gateway restart. The token goes over standard input into a file
//! only the remote user can read, never onto a command line. Workers are told apart by
//! their `--name` (which holds the cluster's id): a reused process id is never signalled.

use super::{Ctx, Seen};
use crate::config::SshConfig;
use crate::db::{ClusterRecord, WorkerRecord};
use crate::{GatewayError, Result, lock};
use gridflow_deploy::ssh::bare_host;
use gridflow_deploy::{run_command, shell_quote};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

pub(crate) struct SshWorkers {
    config: SshConfig,
    /// What the last check found of each (host, pid) not joined to its scheduler.
    seen: Mutex<HashMap<(String, u32), Seen>>,
    /// Live workers per host (of every cluster), recounted at each check.
    load: Mutex<HashMap<String, usize>>,
}

fn err(source: gridflow_deploy::DeployError) -> GatewayError {
    GatewayError::Backend {
        backend: "ssh",
        source: Box::new(source),
    }
}

/// The host running the fewest workers (of every cluster); the first listed on a tie.
fn pick_host(hosts: &[String], load: &HashMap<String, usize>) -> Option<String> {
    hosts
        .iter()
        .min_by_key(|h| load.get(*h).copied().unwrap_or(0))
        .cloned()
}

/// A shell function `mine PID NAME`: whether process PID is the worker named NAME.
const MINE: &str =
    "mine() { tr '\\0' ' ' </proc/$1/cmdline 2>/dev/null | grep -qF -- \"--name $2 \"; }; ";

impl SshWorkers {
    pub fn new(config: SshConfig) -> SshWorkers {
        SshWorkers {
            config,
            seen: Mutex::default(),
            load: Mutex::default(),
        }
    }

    fn ssh(&self, host: &str, script: &str, input: Option<&str>) -> Result<String> {
        let mut args = self.config.ssh_options.clone();
        args.push(host.to_owned());
        args.push(script.to_owned());
        run_command(&self.config.ssh, &args, input).map_err(err)
    }

    fn dir(&self, id: &str) -> String {
        format!("{}/{id}", self.config.remote_dir.trim_end_matches('/'))
    }

    pub fn start(&self, ctx: &Ctx<'_>, name: &str) -> Result<WorkerRecord> {
        let host = {
            let mut load = lock(&self.load);
            let host = pick_host(&self.config.hosts, &load)
                .ok_or_else(|| GatewayError::Invalid("ssh backend: no hosts".into()))?;
            *load.entry(host.clone()).or_default() += 1;
            host
        };
        let mut cmd: Vec<String> = self.config.remote_command.clone();
        cmd.extend([
            "worker".into(),
            ctx.address.to_owned(),
            "--nthreads".into(),
            ctx.spec.threads.max(1).to_string(),
            "--name".into(),
            name.to_owned(),
            "--host".into(),
            bare_host(&host).to_owned(),
            "--auth-token-file".into(),
            "token".into(),
            "--local-directory".into(),
            format!("{name}-spill"),
        ]);
        if ctx.spec.memory > 0 {
            cmd.extend(["--memory-limit".into(), ctx.spec.memory.to_string()]);
        }
        let cmd: Vec<String> = cmd.iter().map(|a| shell_quote(a)).collect();
        let dir = shell_quote(&self.dir(ctx.id));
        // The relative token path resolves in the cluster's directory, where it starts.
        let script = format!(
            "umask 077 && mkdir -p {dir} && cd {dir} && cat > token && \
             {{ setsid {} </dev/null >{} 2>&1 & echo $!; }}",
            cmd.join(" "),
            shell_quote(&format!("{name}.log"))
        );
        let out = self.ssh(&host, &script, Some(ctx.token))?;
        let pid = out
            .lines()
            .last()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .ok_or_else(|| {
                GatewayError::cluster(
                    ctx.id,
                    format!("ssh {host}: starting worker {name} printed no process id: {out:?}"),
                )
            })?;
        Ok(WorkerRecord {
            name: name.to_owned(),
            pid,
            failed: None,
            job: None,
            host: Some(host),
            asked: crate::now(),
        })
    }

    /// One `ssh` per host for the workers not joined: alive, or gone and their log's
    /// last line.
    pub fn poll(
        &self,
        clusters: &[ClusterRecord],
        joined: &HashMap<String, Vec<String>>,
        all: bool,
    ) -> Result<()> {
        let mut load: HashMap<String, usize> = HashMap::new();
        for w in clusters.iter().flat_map(|c| &c.workers) {
            if let (None, Some(h)) = (&w.failed, &w.host) {
                *load.entry(h.clone()).or_default() += 1;
            }
        }
        // Only a check of every cluster (the monitor's) knows every host's load.
        if all {
            *lock(&self.load) = load;
        }
        let mut by_host: BTreeMap<String, Vec<(String, &WorkerRecord)>> = BTreeMap::new();
        for c in clusters {
            let j = joined.get(&c.id);
            for w in c.workers.iter().filter(|w| w.failed.is_none()) {
                if j.is_some_and(|j| j.contains(&w.name)) {
                    continue;
                }
                if let Some(h) = &w.host {
                    by_host
                        .entry(h.clone())
                        .or_default()
                        .push((c.id.clone(), w));
                }
            }
        }
        let mut found = HashMap::new();
        let mut first_error = None;
        for (host, workers) in by_host {
            let mut script = String::from(MINE);
            for (id, w) in &workers {
                let log = shell_quote(&format!("{}/{}.log", self.dir(id), w.name));
                script.push_str(&format!(
                    "if mine {} {}; then echo \"{} alive\"; else echo \"{} gone $(tail -n 1 {log} 2>/dev/null)\"; fi; ",
                    w.pid,
                    shell_quote(&w.name),
                    w.pid,
                    w.pid
                ));
            }
            match self.ssh(&host, &script, None) {
                Ok(out) => {
                    for line in out.lines() {
                        let mut p = line.splitn(3, ' ');
                        let (Some(pid), Some(state)) = (p.next(), p.next()) else {
                            continue;
                        };
                        let Ok(pid) = pid.parse::<u32>() else {
                            continue;
                        };
                        let seen = if state == "alive" {
                            Seen::Running
                        } else {
                            let tail = p.next().unwrap_or("").trim();
                            Seen::Ended(if tail.is_empty() {
                                format!("the process on {host} is gone")
                            } else {
                                format!("the process on {host} is gone; its log ends: {tail}")
                            })
                        };
                        found.insert((host.clone(), pid), seen);
                    }
                }
                // The host is unreachable: its workers' states stay as last known.
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        lock(&self.seen).extend(found);
        first_error.map_or(Ok(()), Err)
    }

    pub fn seen(&self, w: &WorkerRecord) -> Seen {
        let Some(h) = &w.host else {
            return Seen::Ended("no host recorded".into());
        };
        lock(&self.seen)
            .get(&(h.clone(), w.pid))
            .cloned()
            .unwrap_or(Seen::Running)
    }

    /// SIGTERM, up to 3 s, then SIGKILL, each only to the process still named as the
    /// worker.
    pub fn stop(&self, id: &str, workers: &[WorkerRecord]) -> Result<()> {
        let mut by_host: BTreeMap<&str, Vec<&WorkerRecord>> = BTreeMap::new();
        for w in workers {
            if let Some(h) = &w.host {
                by_host.entry(h).or_default().push(w);
            }
        }
        let mut first_error = None;
        for (host, ws) in by_host {
            let each = |action: &str| {
                ws.iter()
                    .map(|w| {
                        format!(
                            "if mine {p} {n}; then {action}; fi; ",
                            p = w.pid,
                            n = shell_quote(&w.name),
                            action = action.replace("PID", &w.pid.to_string())
                        )
                    })
                    .collect::<String>()
            };
            let script = format!(
                "{MINE}{} for i in $(seq 30); do left=0; {} [ $left = 0 ] && break; sleep 0.1; done; {}",
                each("kill PID"),
                each("left=1"),
                each("kill -9 PID")
            );
            if let Err(e) = self.ssh(host, &script, None) {
                eprintln!("gridflow gateway: cluster {id}: stopping workers on {host}: {e}");
                first_error.get_or_insert(e);
            }
            let mut seen = lock(&self.seen);
            let mut load = lock(&self.load);
            for w in ws {
                seen.remove(&(host.to_owned(), w.pid));
                if let Some(n) = load.get_mut(host) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes the cluster's directory (token, logs, spill) from every host.
    pub fn remove(&self, rec: &ClusterRecord) -> Result<()> {
        let mut first_error = None;
        for host in &self.config.hosts {
            if let Err(e) = self.ssh(
                host,
                &format!("rm -rf {}", shell_quote(&self.dir(&rec.id))),
                None,
            ) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn workers_go_to_the_least_loaded_host() {
        let hosts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut load = HashMap::new();
        assert_eq!(pick_host(&hosts, &load).unwrap(), "a");
        load.insert("a".to_owned(), 2);
        load.insert("b".to_owned(), 1);
        assert_eq!(pick_host(&hosts, &load).unwrap(), "c");
        load.insert("c".to_owned(), 3);
        assert_eq!(pick_host(&hosts, &load).unwrap(), "b");
        assert!(pick_host(&[], &load).is_none());
    }
}
