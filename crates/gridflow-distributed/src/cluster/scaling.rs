//! [`LocalCluster`] as a [`Cluster`]: `scale` starts worker processes or retires them
//! (gracefully, their results moved first), `adapt` runs the shared adaptive loop.

use super::{LocalCluster, Slot, Spawner};
use crate::client::lock;
use crate::{Adaptive, AdaptiveOptions, Client, Cluster, Result, Security};
use crate::{WorkerState, WorkerStatus};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What starting and stopping workers needs, cloned out of the cluster for the adaptive
/// thread.
#[derive(Clone)]
struct Pool {
    workers: Arc<Mutex<Vec<Slot>>>,
    spawner: Spawner,
    next: Arc<AtomicUsize>,
    running_files: Arc<Mutex<Vec<PathBuf>>>,
    address: String,
    security: Security,
    leaving: Arc<Mutex<Vec<(String, u32)>>>,
}

impl Pool {
    fn start_worker(&self) -> Result<()> {
        let name = format!("local-{}", self.next.fetch_add(1, Ordering::Relaxed));
        lock(&self.running_files).push(self.spawner.running_file(&name));
        let child = self.spawner.spawn(&name)?;
        lock(&self.workers).push(Slot { name, child });
        Ok(())
    }

    fn len(&self) -> usize {
        lock(&self.workers).len()
    }

    /// Starts or retires workers until there are `n`. The newest go first (the oldest
    /// hold the most results, the newest least); they leave the nanny's care before they
    /// are retired, so that it does not restart them.
    fn scale_to(&self, n: usize) -> Result<()> {
        let have = self.len();
        for _ in have..n {
            self.start_worker()?;
        }
        if n >= have {
            return Ok(());
        }
        let mut leaving: Vec<Slot> = {
            let mut w = lock(&self.workers);
            let keep = n.min(w.len());
            let leaving = w.split_off(keep);
            // Shown as retiring until they have exited (taken out of `workers` so that the
            // nanny does not restart them and a concurrent scale does not count them).
            lock(&self.leaving).extend(leaving.iter().map(|s| (s.name.clone(), s.child.id())));
            leaving
        };
        let client = Client::connect_with(&self.address, self.security.clone())?;
        let joined: Vec<String> = client.workers()?.into_iter().map(|w| w.name).collect();
        let names: Vec<String> = leaving
            .iter()
            .filter(|s| joined.contains(&s.name))
            .map(|s| s.name.clone())
            .collect();
        let retired = if names.is_empty() {
            Ok(Vec::new())
        } else {
            client.retire_workers(&names)
        };
        // Retired workers exit on their own; one that has not joined yet (or does not
        // exit) is killed after a grace period.
        let deadline = Instant::now() + Duration::from_secs(5);
        for s in &mut leaving {
            let told = names.contains(&s.name);
            loop {
                match s.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if told && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(None) => {
                        let _ = s.child.kill();
                        let _ = s.child.wait();
                        break;
                    }
                }
            }
            let _ = std::fs::remove_file(self.spawner.running_file(&s.name));
            lock(&self.leaving).retain(|(name, _)| *name != s.name);
        }
        retired.map(|_| ())
    }
}

impl LocalCluster {
    fn pool(&self) -> Pool {
        Pool {
            workers: self.workers.clone(),
            spawner: self.spawner.clone(),
            next: self.next.clone(),
            running_files: self.running_files.clone(),
            address: self.address.clone(),
            security: self.security.clone(),
            leaving: self.leaving.clone(),
        }
    }

    /// Starts one more worker process (it joins the scheduler when ready).
    pub(super) fn start_worker(&self) -> Result<()> {
        self.pool().start_worker()
    }

    fn stop_adapting(&self) {
        if let Some(mut a) = lock(&self.adaptive).take() {
            a.stop();
        }
    }

    /// Like [`Cluster::adapt`], with every setting of the loop.
    pub fn adapt_with(&self, options: AdaptiveOptions) -> Result<()> {
        self.stop_adapting();
        let (p2, p3) = (self.pool(), self.pool());
        let client = Client::connect_with(&self.address, self.security.clone())?;
        let a = Adaptive::start(
            options,
            move || Ok(usize::try_from(client.adaptive_target()?.target).unwrap_or(usize::MAX)),
            move || p2.len(),
            move |n| p3.scale_to(n),
        )?;
        *lock(&self.adaptive) = Some(a);
        Ok(())
    }
}

impl Cluster for LocalCluster {
    fn scheduler_address(&self) -> String {
        self.address.clone()
    }

    fn security(&self) -> Security {
        self.security.clone()
    }

    fn scale(&self, n: usize) -> Result<()> {
        self.stop_adapting();
        self.pool().scale_to(n)
    }

    fn adapt(&self, minimum: usize, maximum: usize) -> Result<()> {
        self.adapt_with(AdaptiveOptions::new(minimum, maximum))
    }

    fn worker_status(&self) -> Result<Vec<WorkerStatus>> {
        let client = Client::connect_with(&self.address, self.security.clone())?;
        // Joined workers by name: retiring or not.
        let joined: std::collections::HashMap<String, bool> = client
            .workers()?
            .into_iter()
            .map(|w| (w.name, w.retiring))
            .collect();
        let mut out: Vec<WorkerStatus> = lock(&self.workers)
            .iter_mut()
            .map(|s| {
                let state = match (s.child.try_wait(), joined.get(&s.name)) {
                    (Ok(Some(status)), _) => WorkerState::Failed {
                        reason: super::describe_exit(status),
                    },
                    (_, Some(true)) => WorkerState::Retiring,
                    (_, Some(false)) => WorkerState::Running,
                    (_, None) => WorkerState::Starting,
                };
                WorkerStatus {
                    name: s.name.clone(),
                    id: s.child.id().to_string(),
                    state,
                }
            })
            .collect();
        out.extend(lock(&self.leaving).iter().map(|(name, pid)| WorkerStatus {
            name: name.clone(),
            id: pid.to_string(),
            state: WorkerState::Retiring,
        }));
        Ok(out)
    }

    fn close(&self) -> Result<()> {
        self.stop();
        Ok(())
    }
}
