//! The gateway server: the REST API and the routing of cluster connections on one port,
//! the clusters' records (in memory for fast answers, in SQLite to survive restarts), and
//! a monitor that stops idle clusters, scales adaptive ones and notices dead processes.

use crate::api::{AdaptRequest, ClusterReport, ErrorBody, ScaleRequest, WhoAmI};
use crate::auth::{Authenticator, User};
use crate::backends::{Ctx, Workers};
use crate::config::{ClusterOptions, Config};
use crate::db::{ClusterRecord, Db};
use crate::local::LocalBackend;
use crate::{GatewayError, Result, lock};
use bytes::Bytes;
use gridflow_distributed::auth::{MAX_ROUTE_ID, ROUTE_MAGIC};
use gridflow_distributed::{Client, Security};
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a cluster's scheduler may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// Failed workers kept in a cluster's record for the user to see.
const KEEP_FAILED: usize = 16;
/// How long the gateway waits for a scheduler's answer (its monitor never hangs on a
/// stuck one; a retirement gets [`RETIRE_TIMEOUT`]).
const SCHEDULER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful retirement (results copied away) may take before the workers are
/// stopped anyway.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(60);

struct Shared {
    config: Config,
    auth: Authenticator,
    db: Mutex<Db>,
    clusters: RwLock<HashMap<String, ClusterRecord>>,
    /// Clusters being created, per user (for the per-user bound).
    creating: Mutex<HashMap<String, usize>>,
    /// Names of the workers joined to each scheduler, as last seen.
    joined: Mutex<HashMap<String, Vec<String>>>,
    /// Names of the joined workers being retired, as last seen.
    retiring: Mutex<HashMap<String, Vec<String>>>,
    /// The last activity written to the database, per cluster.
    saved: Mutex<HashMap<String, f64>>,
    /// Connections to the schedulers (the monitor's).
    schedulers: Mutex<HashMap<String, Client>>,
    backend: LocalBackend,
    /// Where workers run.
    workers: Workers,
    /// Clusters whose check is running.
    checking: Mutex<std::collections::HashSet<String>>,
    /// When each cluster's workers were last asked about for a user's request.
    polled: Mutex<HashMap<String, std::time::Instant>>,
    /// One lock per cluster, held while its record changes (a user's scale or stop, the
    /// monitor's check), so that no change overwrites another and no started process is
    /// lost. Per cluster: one user's slow retirement or `sbatch` never holds up another's.
    ops: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// `host:port` given to clients.
    public: String,
    /// TLS on the gateway's port, when configured.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Where schedulers listen (`scheduler_host`, resolved).
    scheduler_host: String,
    stop: AtomicBool,
}

/// A running gateway: stopping it (or its process) leaves its clusters running, and the
/// next gateway on the same state directory takes them over.
pub struct GatewayServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
    monitor: Option<std::thread::JoinHandle<()>>,
}

use crate::now;

impl GatewayServer {
    /// Binds the configured address, takes over the clusters recorded in the state
    /// directory whose scheduler still runs, and serves.
    pub fn start(config: Config) -> Result<GatewayServer> {
        config.check()?;
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| GatewayError::io(format!("creating {}", config.state_dir.display()), e))?;
        // Logs and the database are the gateway's business only (tokens are 0600 too).
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| {
                    GatewayError::io(format!("restricting {}", config.state_dir.display()), e)
                })?;
        }
        let program = match &config.program {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| GatewayError::io("finding this program to start clusters", e))?,
        };
        let db = Db::open(&config.state_dir.join("gateway.sqlite3"))?;
        let listener = std::net::TcpListener::bind(&config.address).map_err(|e| {
            GatewayError::io(format!("binding the gateway to {}", config.address), e)
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| GatewayError::io("configuring the gateway's socket", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| GatewayError::io("reading the gateway's address", e))?;
        let public = config
            .public_address
            .clone()
            .unwrap_or_else(|| address.to_string());
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
            _ => None,
        };
        let shared = Arc::new(Shared {
            tls,
            scheduler_host: config.scheduler_host()?,
            auth: Authenticator::new(&config)?,
            backend: LocalBackend::new(program, config.state_dir.clone()),
            workers: Workers::new(&config.backend),
            polled: Mutex::default(),
            checking: Mutex::default(),
            config,
            db: Mutex::new(db),
            clusters: RwLock::default(),
            creating: Mutex::default(),
            joined: Mutex::default(),
            retiring: Mutex::default(),
            schedulers: Mutex::default(),
            saved: Mutex::default(),
            public,
            ops: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        shared.reattach()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(64)
            .thread_name("gridflow-gateway")
            .enable_all()
            .build()
            .map_err(|e| GatewayError::io("starting the gateway's event loop", e))?;
        let sh = shared.clone();
        rt.spawn(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => accept(l, sh).await,
                Err(e) => eprintln!("gridflow gateway: listening: {e}"),
            }
        });
        let sh = shared.clone();
        let monitor = std::thread::Builder::new()
            .name("gridflow-gateway-monitor".into())
            .spawn(move || sh.monitor())
            .map_err(|e| GatewayError::io("starting the gateway's monitor", e))?;
        Ok(GatewayServer {
            address,
            shared,
            rt: Some(rt),
            monitor: Some(monitor),
        })
    }

    /// The address the gateway listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The gateway's URL (`https://` when its port speaks TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.shared.http_scheme(), self.address)
    }

    /// Serves until the process is stopped.
    pub fn wait(mut self) {
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
    }

    /// Stops serving; the clusters keep running.
    pub fn shutdown(mut self) {
        self.stop_serving();
    }

    fn stop_serving(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
    }
}

impl Drop for GatewayServer {
    fn drop(&mut self) {
        self.stop_serving();
    }
}

impl Shared {
    /// Takes over the clusters of an earlier gateway whose scheduler still runs; the
    /// others' leftover workers are stopped and their records removed.
    fn reattach(&self) -> Result<()> {
        let records = lock(&self.db).all()?;
        for rec in records {
            if rec.backend != self.workers.kind() {
                // Its workers are another backend's: left alone (and in the database)
                // for a gateway configured with that backend.
                eprintln!(
                    "gridflow gateway: cluster {} of {} runs its workers on the {} backend, \
                     this gateway on {}: not taken over",
                    rec.id,
                    rec.owner,
                    rec.backend,
                    self.workers.kind()
                );
                continue;
            }
            if self.backend.alive(rec.scheduler_pid, &rec.id) {
                eprintln!(
                    "gridflow gateway: re-attached cluster {} of {}",
                    rec.id, rec.owner
                );
                self.clusters
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(rec.id.clone(), rec);
            } else {
                eprintln!(
                    "gridflow gateway: cluster {} of {}: its scheduler is gone; removing it",
                    rec.id, rec.owner
                );
                self.destroy(&rec);
            }
        }
        Ok(())
    }

    fn http_scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, ClusterRecord>> {
        self.clusters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, ClusterRecord>> {
        self.clusters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn save(&self, rec: &ClusterRecord) -> Result<()> {
        lock(&self.db).put(rec)
    }

    /// The cluster `id` if `user` may see it; another user's cluster is "not found", so
    /// that ids of others' clusters are not revealed.
    fn visible(&self, user: &User, id: &str) -> Result<ClusterRecord> {
        match self.read().get(id) {
            Some(c) if c.owner == user.name || user.admin => Ok(c.clone()),
            _ => Err(GatewayError::NotFound(format!(
                "no cluster {id} among the clusters of user {}",
                user.name
            ))),
        }
    }

    /// A cluster's report (the caller reaps ended children first: [`LocalBackend::reap`]).
    fn report(&self, rec: &ClusterRecord, token: Option<String>) -> ClusterReport {
        let joined = lock(&self.joined).get(&rec.id).cloned().unwrap_or_default();
        let retiring = lock(&self.retiring)
            .get(&rec.id)
            .cloned()
            .unwrap_or_default();
        ClusterReport {
            id: rec.id.clone(),
            owner: rec.owner.clone(),
            address: format!(
                "{}://{}/{}",
                if self.tls.is_some() {
                    "gateway+tls"
                } else {
                    "gateway"
                },
                self.public,
                rec.id
            ),
            token,
            spec: rec.spec.clone(),
            adapt: rec.adapt,
            workers: rec
                .workers
                .iter()
                .map(|w| {
                    self.workers
                        .status(&self.backend, &rec.id, w, &joined, &retiring)
                })
                .collect(),
            created: rec.created,
            idle_seconds: (now() - rec.last_activity).max(0.0),
            dashboard: rec.dashboard.as_ref().map(|_| {
                format!(
                    "{}://{}/clusters/{}/dashboard/status",
                    self.http_scheme(),
                    self.public,
                    rec.id
                )
            }),
        }
    }

    fn token_of(&self, rec: &ClusterRecord) -> Result<String> {
        self.backend.read_token(&rec.id)
    }

    /// Creates a cluster for `user`.
    fn create(&self, user: &User, options: &ClusterOptions) -> Result<ClusterReport> {
        let spec = self.config.bounds.resolve(options)?;
        self.workers.check(&spec)?;
        {
            let mut creating = lock(&self.creating);
            let mine = self
                .read()
                .values()
                .filter(|c| c.owner == user.name)
                .count()
                + creating.get(&user.name).copied().unwrap_or(0);
            let max = self.config.bounds.max_clusters_per_user;
            if mine >= max {
                return Err(GatewayError::Forbidden(format!(
                    "user {} already has {mine} clusters, the gateway's bound \
                     (max_clusters_per_user = {max}); stop one first",
                    user.name
                )));
            }
            *creating.entry(user.name.clone()).or_default() += 1;
        }
        let made = self.start_cluster(user, spec);
        self.backend.reap();
        if let Some(n) = lock(&self.creating).get_mut(&user.name) {
            *n = n.saturating_sub(1);
        }
        let rec = made?;
        let token = self.token_of(&rec)?;
        Ok(self.report(&rec, Some(token)))
    }

    fn start_cluster(
        &self,
        user: &User,
        spec: crate::config::ClusterSpec,
    ) -> Result<ClusterRecord> {
        let id = crate::auth::generate_token()?[..16].to_owned();
        let token = crate::auth::generate_token()?;
        self.backend.write_token(&id, &token)?;
        let started = match self
            .backend
            .start_scheduler(&id, &self.scheduler_host, START_TIMEOUT)
        {
            Ok(s) => s,
            Err(e) => {
                self.backend.remove(&id);
                return Err(e);
            }
        };
        let t = now();
        let mut rec = ClusterRecord {
            id: id.clone(),
            owner: user.name.clone(),
            spec: spec.clone(),
            scheduler_address: started.address,
            scheduler_pid: started.pid,
            dashboard: started.dashboard,
            workers: Vec::new(),
            adapt: None,
            token_sha256: crate::auth::hex(&crate::auth::sha256(token.as_bytes())),
            created: t,
            last_activity: t,
            started: 0,
            backend: self.workers.kind().into(),
        };
        if let Err(e) = self.add_workers(&mut rec, spec.workers) {
            self.destroy(&rec);
            return Err(e);
        }
        if let Err(e) = self.save(&rec) {
            self.destroy(&rec);
            return Err(e);
        }
        self.write().insert(id, rec.clone());
        Ok(rec)
    }

    fn add_workers(&self, rec: &mut ClusterRecord, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let token = self.token_of(rec)?;
        for _ in 0..n {
            let name = format!("{}-w{}", rec.id, rec.started);
            rec.started += 1;
            let ctx = Ctx {
                id: &rec.id,
                address: &rec.scheduler_address,
                spec: &rec.spec,
                token: &token,
                local: &self.backend,
            };
            let w = self.workers.start(&ctx, &name)?;
            rec.workers.push(w);
        }
        Ok(())
    }

    /// Marks the workers that ended by themselves as failed, with the backend's reason;
    /// returns how long each of them had been asked for (seconds).
    fn mark_ended(&self, rec: &mut ClusterRecord) -> Vec<f64> {
        let mut ages = Vec::new();
        for w in &mut rec.workers {
            if w.failed.is_none()
                && let Some(why) = self.workers.ended(&self.backend, &rec.id, w)
            {
                w.failed = Some(why);
                ages.push(now() - w.asked);
            }
        }
        ages
    }

    /// Retires these workers through the scheduler (their results copied to the workers
    /// that stay, as Dask's `retire_workers`), then stops them: a worker that is not
    /// joined, or a retirement that fails or takes too long, is stopped all the same.
    fn retire_and_stop(&self, rec: &ClusterRecord, leaving: &[crate::db::WorkerRecord]) {
        if leaving.is_empty() {
            return;
        }
        let joined = lock(&self.joined).get(&rec.id).cloned().unwrap_or_default();
        let names: Vec<String> = leaving
            .iter()
            .map(|w| w.name.clone())
            .filter(|n| joined.contains(n))
            .collect();
        if !names.is_empty() {
            let retired = self.token_of(rec).and_then(|t| {
                let sec = Security::none().with_token(t)?;
                let c = Client::connect_timeout(&rec.scheduler_address, sec, RETIRE_TIMEOUT)?;
                Ok(c.retire_workers(&names)?)
            });
            if let Err(e) = retired {
                eprintln!(
                    "gridflow gateway: cluster {}: retiring {}: {e}; stopping them",
                    rec.id,
                    names.join(", ")
                );
            }
        }
        self.workers.stop(&self.backend, &rec.id, leaving);
    }

    /// Sets the number of running workers of a cluster to `n`: starts more, or stops the
    /// newest.
    fn scale_to(&self, rec: &mut ClusterRecord, n: usize) -> Result<()> {
        self.config.bounds.check_workers(n)?;
        // Workers that died are kept (failed, with their reason) for the user to see.
        self.mark_ended(rec);
        let live: Vec<usize> = (0..rec.workers.len())
            .filter(|&i| rec.workers[i].failed.is_none())
            .collect();
        if n > live.len() {
            self.add_workers(rec, n - live.len())?;
        } else {
            // Those not joined yet go first (a queued job or a starting pod holds no
            // results), then the newest.
            let joined = lock(&self.joined).get(&rec.id).cloned().unwrap_or_default();
            let mut order = live.clone();
            order.sort_by_key(|&i| (joined.contains(&rec.workers[i].name), std::cmp::Reverse(i)));
            let gone: Vec<usize> = order[..live.len() - n].to_vec();
            let leaving: Vec<crate::db::WorkerRecord> =
                gone.iter().map(|&i| rec.workers[i].clone()).collect();
            self.retire_and_stop(rec, &leaving);
            let mut i = 0;
            rec.workers.retain(|_| {
                i += 1;
                !gone.contains(&(i - 1))
            });
        }
        let failed = rec.workers.iter().filter(|w| w.failed.is_some()).count();
        if failed > KEEP_FAILED {
            let mut drop = failed - KEEP_FAILED;
            rec.workers.retain(|w| {
                if w.failed.is_some() && drop > 0 {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
        rec.spec.workers = n;
        Ok(())
    }

    fn update<T>(
        &self,
        user: &User,
        id: &str,
        f: impl FnOnce(&Shared, &mut ClusterRecord) -> Result<T>,
    ) -> Result<T> {
        let op = self.op_lock(id);
        let _ops = lock(&op);
        let mut rec = self.visible(user, id)?;
        // Kept even when `f` fails part-way: workers it started are in the record, so
        // none is left unaccounted for.
        let out = f(self, &mut rec);
        self.save(&rec)?;
        if let Some(r) = self.write().get_mut(id) {
            *r = rec;
        }
        out
    }

    /// Cluster `id`'s lock on changes to its record.
    fn op_lock(&self, id: &str) -> Arc<Mutex<()>> {
        lock(&self.ops).entry(id.to_owned()).or_default().clone()
    }

    /// Stops a cluster's processes and forgets it.
    fn destroy(&self, rec: &ClusterRecord) {
        lock(&self.ops).remove(&rec.id);
        lock(&self.schedulers).remove(&rec.id);
        lock(&self.joined).remove(&rec.id);
        lock(&self.retiring).remove(&rec.id);
        lock(&self.saved).remove(&rec.id);
        lock(&self.polled).remove(&rec.id);
        let live: Vec<crate::db::WorkerRecord> = rec
            .workers
            .iter()
            .filter(|w| w.failed.is_none())
            .cloned()
            .collect();
        self.workers.stop(&self.backend, &rec.id, &live);
        self.backend.stop(&rec.id, &[rec.scheduler_pid]);
        self.workers.remove(rec);
        self.backend.remove(&rec.id);
        if let Err(e) = lock(&self.db).delete(&rec.id) {
            eprintln!("gridflow gateway: {e}");
        }
        self.write().remove(&rec.id);
    }

    fn stop_cluster(&self, user: &User, id: &str) -> Result<()> {
        let op = self.op_lock(id);
        let _ops = lock(&op);
        let rec = self.visible(user, id)?;
        self.write().remove(id);
        self.destroy(&rec);
        Ok(())
    }

    fn scheduler(&self, rec: &ClusterRecord) -> Result<Client> {
        if let Some(c) = lock(&self.schedulers).get(&rec.id) {
            return Ok(c.clone());
        }
        let sec = Security::none().with_token(self.token_of(rec)?)?;
        let c = Client::connect_timeout(&rec.scheduler_address, sec, SCHEDULER_TIMEOUT)?;
        lock(&self.schedulers).insert(rec.id.clone(), c.clone());
        Ok(c)
    }

    /// Refreshes the names of the workers joined to a cluster's scheduler.
    fn refresh_joined(&self, rec: &ClusterRecord) -> Result<()> {
        let c = self.scheduler(rec)?;
        match c.workers() {
            Ok(w) => {
                let retiring = w
                    .iter()
                    .filter(|w| w.retiring)
                    .map(|w| w.name.clone())
                    .collect();
                lock(&self.retiring).insert(rec.id.clone(), retiring);
                lock(&self.joined).insert(rec.id.clone(), w.into_iter().map(|w| w.name).collect());
                Ok(())
            }
            Err(e) => {
                lock(&self.schedulers).remove(&rec.id);
                Err(e.into())
            }
        }
    }

    /// Every check interval: dead schedulers, idle clusters, adaptive scaling, workers
    /// that died.
    fn monitor(self: &Arc<Self>) {
        let every = Duration::from_secs_f64(self.config.check_interval);
        while !self.stop.load(Ordering::Relaxed) {
            let mut slept = Duration::ZERO;
            while slept < every && !self.stop.load(Ordering::Relaxed) {
                let step = Duration::from_millis(50).min(every);
                std::thread::sleep(step);
                slept += step;
            }
            self.backend.reap();
            let all: Vec<ClusterRecord> = self.read().values().cloned().collect();
            let joined = lock(&self.joined).clone();
            self.workers.poll(&all, &joined, true);
            let ids: Vec<String> = all.into_iter().map(|c| c.id).collect();
            for id in ids {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                // Each cluster is checked on its own thread, one check at a time: a slow
                // scheduler, retirement or batch system holds up only its own cluster.
                if !lock(&self.checking).insert(id.clone()) {
                    continue;
                }
                let sh = self.clone();
                let mine = id.clone();
                let spawned = std::thread::Builder::new()
                    .name("gridflow-gateway-check".into())
                    .spawn(move || {
                        if let Err(e) = sh.check(&id) {
                            eprintln!("gridflow gateway: checking cluster {id}: {e}");
                        }
                        lock(&sh.checking).remove(&id);
                    });
                if let Err(e) = spawned {
                    eprintln!("gridflow gateway: starting a check of cluster {mine}: {e}");
                    lock(&self.checking).remove(&mine);
                }
            }
        }
    }

    fn check(&self, id: &str) -> Result<()> {
        self.backend.reap();
        let Some(rec) = self.read().get(id).cloned() else {
            return Ok(());
        };
        if !self.backend.alive(rec.scheduler_pid, id) {
            let op = self.op_lock(id);
            let _ops = lock(&op);
            eprintln!(
                "gridflow gateway: cluster {id} of {}: its scheduler ended ({}); stopping it",
                rec.owner,
                self.backend.exit_reason(rec.scheduler_pid)
            );
            self.destroy(&rec);
            return Ok(());
        }
        // The scheduler is asked without holding the lock on changes: users' scale and
        // stop requests never wait for a slow scheduler.
        let c = self.scheduler(&rec)?;
        let activity = match c.activity() {
            Ok(a) => a,
            Err(e) => {
                lock(&self.schedulers).remove(id);
                return Err(e.into());
            }
        };
        let _ = self.refresh_joined(&rec);
        let op = self.op_lock(id);
        let _ops = lock(&op);
        // Read again: the user may have scaled or stopped the cluster meanwhile.
        let Some(mut rec) = self.read().get(id).cloned() else {
            return Ok(());
        };
        let t = now();
        let old = rec.last_activity;
        rec.last_activity = rec.last_activity.max(t - activity.idle_ms as f64 / 1000.0);
        let idle = self.config.idle_timeout;
        if idle > 0.0 && t - rec.last_activity > idle {
            eprintln!(
                "gridflow gateway: cluster {id} of {} idle for {:.0} s (idle_timeout {idle} s); \
                 stopping it",
                rec.owner,
                t - rec.last_activity
            );
            self.destroy(&rec);
            return Ok(());
        }
        let ended = self.mark_ended(&mut rec);
        let mut changed = !ended.is_empty();
        let mut scaled = Ok(());
        if rec.adapt.is_none() {
            // Workers that ran a while and ended (a walltime's retirement, a lost node)
            // are replaced to keep the size asked for; younger ones are left failed, so
            // a worker that cannot start is reported instead of restarted for ever.
            let after = self.config.replace_workers_after;
            let replace = ended.iter().filter(|&&age| age >= after).count();
            let live = rec.workers.iter().filter(|w| w.failed.is_none()).count();
            let n = replace.min(rec.spec.workers.saturating_sub(live));
            if n > 0 {
                eprintln!(
                    "gridflow gateway: cluster {id} of {}: replacing {n} ended worker(s)",
                    rec.owner
                );
                scaled = self.add_workers(&mut rec, n);
            }
        } else if let Some((lo, hi)) = rec.adapt {
            let per = rec.spec.threads.max(1) as u64;
            let want = (activity.pending_tasks.div_ceil(per) as usize).clamp(lo, hi);
            let live = rec.workers.iter().filter(|w| w.failed.is_none()).count();
            if want != live {
                scaled = self.scale_to(&mut rec, want);
                changed = true;
            }
        }
        // Activity alone is written at most every 10 s: the monitor checks every cluster
        // often, and the database need not follow each check.
        let saved = lock(&self.saved).get(id).copied().unwrap_or(0.0);
        if changed || (rec.last_activity > old && rec.last_activity - saved >= 10.0) {
            self.save(&rec)?;
            lock(&self.saved).insert(id.to_owned(), rec.last_activity);
        }
        if let Some(r) = self.write().get_mut(id) {
            *r = rec;
        }
        scaled
    }
}

type Response = hyper::Response<Full<Bytes>>;

fn json_response<T: serde::Serialize>(status: u16, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = hyper::Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &GatewayError) -> Response {
    json_response(
        e.status(),
        &ErrorBody {
            error: e.to_string(),
        },
    )
}

/// Accepts connections: a routing preamble is a client for a cluster's scheduler,
/// anything else is HTTP.
async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                eprintln!("gridflow gateway: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let sh = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, sh).await {
                eprintln!("gridflow gateway: connection from {peer}: {e}");
            }
        });
    }
}

async fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) -> Result<()> {
    let _ = stream.set_nodelay(true);
    match shared.tls.clone() {
        None => serve_stream(stream, shared).await,
        Some(acceptor) => {
            // A client that never finishes its TLS handshake is dropped, not waited for.
            let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
                .map_err(|_| GatewayError::Http {
                    what: "a TLS handshake".into(),
                    detail: "not finished within 10 s".into(),
                })?
                .map_err(|e| GatewayError::io("a TLS handshake (is the client using TLS?)", e))?;
            serve_stream(tls, shared).await
        }
    }
}

/// Serves one connection (plain or TLS): a routing preamble is a client for a cluster's
/// scheduler, anything else is HTTP.
async fn serve_stream<S>(mut stream: S, shared: Arc<Shared>) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut head = [0u8; 4];
    // The first 4 bytes (a routing preamble or an HTTP method), 10 s at most.
    match tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return Ok(()),
    }
    if &head == ROUTE_MAGIC {
        return route(stream, &shared).await;
    }
    let stream = Rewind {
        head,
        done: 0,
        inner: stream,
    };
    let sh = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let sh = sh.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(sh, req).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
        .await
        .map_err(|e| GatewayError::Http {
            what: "serving a connection".into(),
            detail: e.to_string(),
        })
}

/// A stream whose first bytes, already read to tell HTTP from a routed connection, are
/// given back before the rest.
struct Rewind<S> {
    head: [u8; 4],
    done: usize,
    inner: S,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.done < self.head.len() {
            let n = (self.head.len() - self.done).min(buf.remaining());
            let start = self.done;
            buf.put_slice(&self.head[start..start + n]);
            self.done += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The TLS acceptor of the gateway's port from PEM files; errors name the file.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |p: &std::path::Path, e: String| GatewayError::Config {
        path: p.display().to_string(),
        detail: e,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| bad(cert, format!("reading the TLS certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad(cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, format!("reading the TLS private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                cert,
                format!("the certificate and key do not go together: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Routes a client to its cluster's scheduler and relays bytes both ways. The gateway
/// does not authenticate here: the scheduler does, with the cluster's own token.
async fn route<S>(mut stream: S, shared: &Shared) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // The magic bytes are read already.
    let io = |e| GatewayError::io("reading a routing preamble", e);
    let n = usize::from(stream.read_u16_le().await.map_err(io)?);
    if n > MAX_ROUTE_ID {
        return refuse(&mut stream, "cluster id too long").await;
    }
    let mut id = vec![0u8; n];
    stream.read_exact(&mut id).await.map_err(io)?;
    let id = String::from_utf8_lossy(&id).into_owned();
    let target = shared.read().get(&id).map(|c| c.scheduler_address.clone());
    let Some(target) = target else {
        return refuse(
            &mut stream,
            &format!("no cluster {id} on this gateway (stopped?)"),
        )
        .await;
    };
    let (_, hostport) = gridflow_distributed::auth::parse_address(&target);
    let mut up = match tokio::net::TcpStream::connect(hostport).await {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                &mut stream,
                &format!("cluster {id}: its scheduler cannot be reached: {e}"),
            )
            .await;
        }
    };
    let _ = up.set_nodelay(true);
    stream
        .write_all(&[0])
        .await
        .map_err(|e| GatewayError::io("answering a routing preamble", e))?;
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut up).await;
    Ok(())
}

async fn refuse<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, why: &str) -> Result<()> {
    let msg = why.as_bytes();
    let n = msg.len().min(u16::MAX as usize);
    let mut out = vec![1u8];
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&msg[..n]);
    stream
        .write_all(&out)
        .await
        .map_err(|e| GatewayError::io("refusing a route", e))
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<hyper::body::Incoming>) -> Response {
    match serve(shared, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// The cookie a browser keeps the API token in for a cluster's dashboard pages.
const COOKIE: &str = "gridflow_gateway_token";

/// The bearer token of a request: `Authorization: token T` or `Bearer T`; for dashboard
/// pages (a browser sends no header) also `?token=T` or the cookie set from it.
fn bearer(req: &hyper::Request<hyper::body::Incoming>, dashboard: bool) -> String {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("token ")
                .or_else(|| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned())
        });
    if header.is_some() || !dashboard {
        return header.unwrap_or_default();
    }
    if let Some(t) = query_token(req) {
        return t;
    }
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(COOKIE)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn query_token(req: &hyper::Request<hyper::body::Incoming>) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token=").map(str::to_owned))
}

/// Forwards a dashboard request to the cluster's dashboard (on loopback) and its answer
/// back; a `?token=` sets the cookie the page's own requests then carry.
async fn dashboard(
    shared: &Shared,
    user: &User,
    id: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response> {
    let rec = shared.visible(user, id)?;
    let Some(target) = rec.dashboard else {
        return Err(GatewayError::NotFound(format!(
            "cluster {id} has no dashboard"
        )));
    };
    let prefix = format!("/clusters/{id}/dashboard");
    let rest = req.uri().path().strip_prefix(&prefix).unwrap_or("/");
    let rest = if rest.is_empty() { "/" } else { rest };
    let query: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
        .collect();
    let path = if query.is_empty() {
        rest.to_owned()
    } else {
        format!("{rest}?{}", query.join("&"))
    };
    let set_cookie = query_token(&req)
        .map(|t| format!("{COOKIE}={t}; Path={prefix}/; HttpOnly; SameSite=Strict"));
    let method = req.method().as_str().to_owned();
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| GatewayError::Invalid(format!("reading the request body: {e}")))?
        .to_bytes()
        .to_vec();
    let (status, content_type, bytes) =
        crate::http::request_full(&method, &format!("http://{target}{path}"), body).await?;
    let mut r = hyper::Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    if let Some(ct) = content_type.and_then(|c| hyper::header::HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    if let Some(c) = set_cookie.and_then(|c| hyper::header::HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(hyper::header::SET_COOKIE, c);
    }
    Ok(r)
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|source| GatewayError::Json {
        what: format!("the {what} request body"),
        source,
    })
}

/// Runs blocking work (processes, SQLite, scheduler connections) off the event loop.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GatewayError::Http {
            what: "running a request".into(),
            detail: e.to_string(),
        })?
}

async fn serve(
    shared: Arc<Shared>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    if path == "/api/health" {
        return Ok(json_response(200, &serde_json::json!({"status": "ok"})));
    }
    let dash_id = path
        .strip_prefix("/clusters/")
        .and_then(|r| r.split_once('/'))
        .filter(|(_, rest)| *rest == "dashboard" || rest.starts_with("dashboard/"))
        .map(|(id, _)| id.to_owned());
    let token = bearer(&req, dash_id.is_some());
    let user = shared.auth.authenticate(&token).await?;
    if let Some(id) = dash_id {
        return dashboard(&shared, &user, &id, req).await;
    }
    // Bodies are small JSON objects: a larger one is refused, not buffered.
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            GatewayError::Invalid(format!(
                "reading the request body (at most {MAX_BODY} bytes): {e}"
            ))
        })?
        .to_bytes();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let sh = shared.clone();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["api", "whoami"]) => Ok(json_response(
            200,
            &WhoAmI {
                name: user.name,
                admin: user.admin,
            },
        )),
        ("GET", ["api", "clusters"]) => {
            shared.backend.reap();
            let mut list: Vec<ClusterReport> = shared
                .read()
                .values()
                .filter(|c| c.owner == user.name || user.admin)
                .map(|c| shared.report(c, None))
                .collect();
            list.sort_by(|a, b| a.created.total_cmp(&b.created));
            Ok(json_response(200, &list))
        }
        ("POST", ["api", "clusters"]) => {
            let options: ClusterOptions = decode(&body, "create")?;
            let r = blocking(move || sh.create(&user, &options)).await?;
            Ok(json_response(201, &r))
        }
        ("GET", ["api", "clusters", id]) => {
            let id = (*id).to_owned();
            let r = blocking(move || {
                let rec = sh.visible(&user, &id)?;
                let _ = sh.refresh_joined(&rec);
                sh.backend.reap();
                // A client waiting for its workers asks often: the backend (squeue,
                // kubectl, ssh) is asked at most once a second per cluster.
                let due = {
                    let mut polled = lock(&sh.polled);
                    let due = polled
                        .get(&rec.id)
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                    if due {
                        polled.insert(rec.id.clone(), std::time::Instant::now());
                    }
                    due
                };
                if due {
                    let joined = lock(&sh.joined).clone();
                    sh.workers.poll(std::slice::from_ref(&rec), &joined, false);
                }
                let token = if rec.owner == user.name {
                    Some(sh.token_of(&rec)?)
                } else {
                    None
                };
                Ok(sh.report(&rec, token))
            })
            .await?;
            Ok(json_response(200, &r))
        }
        ("POST", ["api", "clusters", id, "scale"]) => {
            let r: ScaleRequest = decode(&body, "scale")?;
            let id = (*id).to_owned();
            let rep = blocking(move || {
                sh.update(&user, &id, |s, rec| {
                    rec.adapt = None;
                    s.scale_to(rec, r.workers)
                })?;
                sh.backend.reap();
                Ok(sh.report(&sh.visible(&user, &id)?, None))
            })
            .await?;
            Ok(json_response(200, &rep))
        }
        ("POST", ["api", "clusters", id, "adapt"]) => {
            let r: AdaptRequest = decode(&body, "adapt")?;
            if r.minimum > r.maximum {
                return Err(GatewayError::Invalid(format!(
                    "adapt: minimum {} is above maximum {}",
                    r.minimum, r.maximum
                )));
            }
            shared.config.bounds.check_workers(r.maximum)?;
            let id = (*id).to_owned();
            let rep = blocking(move || {
                sh.update(&user, &id, |s, rec| {
                    rec.adapt = Some((r.minimum, r.maximum));
                    let live = rec.workers.iter().filter(|w| w.failed.is_none()).count();
                    s.scale_to(rec, live.clamp(r.minimum, r.maximum))?;
                    rec.adapt = Some((r.minimum, r.maximum));
                    Ok(())
                })?;
                sh.backend.reap();
                Ok(sh.report(&sh.visible(&user, &id)?, None))
            })
            .await?;
            Ok(json_response(200, &rep))
        }
        ("DELETE", ["api", "clusters", id]) => {
            let id = (*id).to_owned();
            blocking(move || sh.stop_cluster(&user, &id)).await?;
            Ok(json_response(200, &serde_json::json!({"stopped": true})))
        }
        (m, _) => Err(GatewayError::NotFound(format!("no API route {m} {path}"))),
    }
}
