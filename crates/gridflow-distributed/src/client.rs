//! The client: submits compiled graphs to a scheduler and gathers results from workers;
//! keeps results on the workers for later graphs (`persist`, futures, `scatter`).

mod scaling;

use crate::auth::{Security, Stream};
use crate::frame::{encode, read_frame, write_frame};
use crate::futures::{Future, Hold};
use crate::messages::{FromClient, Hello, Location, SubmitTask, ToClient, Welcome, WorkerInfo};
use crate::worker::{connect, fetch};
use crate::{DistError, Result};
use gridflow_graph::{Expr, Graph, Key, Operation, Runnable, Task};
use gridflow_runtime::{
    Execute, Executor, Persisted, Plan, Progress, ProgressFn, RunReport, RuntimeError, WireValue,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::io::{ReadHalf, WriteHalf};

pub(crate) struct Conn {
    r: ReadHalf<Stream>,
    w: BufWriter<WriteHalf<Stream>>,
}

/// What the client knows of a job that has handles (futures, persisted results).
#[derive(Clone, Debug)]
pub(crate) enum JobStatus {
    /// Still running.
    Pending,
    /// Finished: where its outputs are, in the order submitted.
    Done(Vec<Location>),
    /// Failed: the failing task's key when known, the operation, the message, panicked.
    Failed(Option<Key>, String, String, bool),
}

#[derive(Default)]
pub(crate) struct State {
    /// Jobs with handles, and the keys of their tasks by position (to name a failing one).
    pub(crate) jobs: FxHashMap<u64, (JobStatus, Arc<Vec<Key>>)>,
    /// Results held on workers that later graphs read by key: key → (global id, handles).
    pub(crate) held: FxHashMap<Key, (u64, usize)>,
    /// Ids whose last handle was dropped, not yet told to the scheduler.
    pub(crate) to_release: Vec<u64>,
    /// Live handles per job (its status is forgotten when none is left).
    pub(crate) holds: FxHashMap<u64, usize>,
}

pub(crate) struct Inner {
    pub(crate) rt: tokio::runtime::Runtime,
    conn: Mutex<Conn>,
    pub(crate) address: String,
    /// The dashboard's URL, from the scheduler's welcome.
    dashboard: Option<String>,
    progress: Mutex<Option<ProgressFn>>,
    /// Credentials for the scheduler and the workers' data ports.
    pub(crate) sec: Security,
    pub(crate) state: Mutex<State>,
    /// How long a question to the scheduler (workers, activity, retirement, adaptive
    /// target) may take; `None`: no limit.
    timeout: Mutex<Option<Duration>>,
    /// Tests only: called before each gather of a computation's outputs.
    gather_hook: Mutex<Option<GatherHook>>,
}

/// A test's hook between a computation's `Done` and its gather ([`Client::set_gather_hook`]).
pub type GatherHook = Arc<dyn Fn(&[Location]) + Send + Sync>;

/// How many times a client asks again where a computation's outputs are when gathering
/// them fails (their worker left between `Done` and the gather).
const LOCATE_ATTEMPTS: u32 = 6;

/// The pause before gathering again from the same holders the scheduler named last time
/// (it has not noticed yet that the worker left): doubling from 100 ms, at most 1 s.
fn locate_backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(4)).min(1000))
}

/// A connection to a scheduler; an [`Executor`] for any operation type whose values can
/// cross the wire. Computations through one client run one at a time.
///
/// Besides computing (`Executor::run`), a client keeps results on the workers:
/// [`Client::persist`] (later graphs on this client that contain the persisted keys read
/// them instead of recomputing them), [`Client::submit`] (a [`Future`]), and
/// [`Client::scatter`] (local data placed on workers, as futures). Held results are
/// released when the last handle on them is dropped.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.inner.address)
    }
}

/// The task groups of a job's tasks for the dashboard: each key's prefix (`sum` for
/// `sum-9f2c`), as Dask names task groups.
fn task_groups(keys: &[Key]) -> crate::messages::TaskGroups {
    let mut names: Vec<String> = Vec::new();
    let mut index: rustc_hash::FxHashMap<&str, u32> = rustc_hash::FxHashMap::default();
    let of_task = keys
        .iter()
        .map(|k| {
            *index.entry(k.prefix()).or_insert_with(|| {
                names.push(k.prefix().to_owned());
                (names.len() - 1) as u32
            })
        })
        .collect();
    crate::messages::TaskGroups { names, of_task }
}

/// The link to the dashboard listening on `listen` (`ip:port`, as the scheduler sends it)
/// for a client that reached the scheduler at `scheduler`: an unspecified ip becomes the
/// host the client connected to (a host it can reach); through a gateway the link is the
/// gateway's path to the cluster's dashboard. `None` if `listen` is not an address.
pub(crate) fn dashboard_link(scheduler: &str, listen: &str) -> Option<String> {
    let listen: std::net::SocketAddr = listen.parse().ok()?;
    if let Some(route) = crate::auth::parse_gateway_address(scheduler) {
        return Some(format!(
            "http://{}/clusters/{}/dashboard/status",
            route.gateway, route.cluster
        ));
    }
    if !listen.ip().is_unspecified() {
        return Some(crate::dashboard::link_for(listen));
    }
    let (_, hostport) = crate::auth::parse_address(scheduler);
    // `host:port`, `[v6]:port` or a bare host: keep the host as the client wrote it.
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => h,
        _ => hostport,
    };
    let host = host.trim_end_matches('/');
    if host.is_empty() {
        return Some(crate::dashboard::link_for(listen));
    }
    Some(format!("http://{host}:{}/status", listen.port()))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A compiled graph ready to submit: tasks (held results left out), outputs as
/// positions, the held results it reads, and each submitted task's key by position.
struct Prepared {
    tasks: Vec<SubmitTask>,
    outputs: Vec<u32>,
    held: Vec<u64>,
    keys: Vec<Key>,
    /// Each submitted task's operation label (the scheduler does not decode tasks, so
    /// a failure it detects, such as a task that killed its workers, is named here).
    labels: Vec<String>,
}

impl Client {
    /// Connects to the scheduler at `address` (`tcp://host:port` or `host:port`),
    /// checking the protocol version.
    pub fn connect(address: &str) -> Result<Client> {
        Client::connect_with(address, Security::from_env()?)
    }

    /// Connects with these credentials (a shared secret, TLS certificates).
    pub fn connect_with(address: &str, sec: Security) -> Result<Client> {
        Client::connect_inner(address, sec, None)
    }

    /// Connects like [`Client::connect_with`] within `timeout`, and keeps `timeout` as the
    /// limit of each later question to the scheduler ([`Client::workers`],
    /// [`Client::activity`], [`Client::retire_workers`], [`Client::adaptive_target`]): a
    /// monitor that must not hang on a stuck scheduler. A question that times out is an
    /// error; drop the client then (a late answer would confuse the next question).
    pub fn connect_timeout(address: &str, sec: Security, timeout: Duration) -> Result<Client> {
        Client::connect_inner(address, sec, Some(timeout))
    }

    fn connect_inner(address: &str, sec: Security, timeout: Option<Duration>) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DistError::io("starting the client's event loop", e))?;
        let (conn, dashboard) = rt.block_on(timed(timeout, address, "connecting", async {
            let stream = connect(address, &sec).await?;
            let (mut r, w) = tokio::io::split(stream);
            let mut w = BufWriter::new(w);
            write_frame(&mut w, address, &encode(&Hello::Client)?, &[]).await?;
            w.flush()
                .await
                .map_err(|e| DistError::io(format!("{address}: sending"), e))?;
            let welcome: Welcome = match read_frame(&mut r, address).await? {
                Some(f) => f.decode(address)?,
                None => {
                    return Err(DistError::Closed {
                        peer: address.to_owned(),
                        during: "before accepting this client".into(),
                    });
                }
            };
            let dashboard = match welcome {
                Welcome::Refused(why) => {
                    return Err(DistError::Cluster(format!("the scheduler refused: {why}")));
                }
                Welcome::Accepted { dashboard, .. } => dashboard,
            };
            Ok((Conn { r, w }, dashboard))
        }))?;
        let dashboard = dashboard.and_then(|d| dashboard_link(address, &d));
        Ok(Client {
            inner: Arc::new(Inner {
                rt,
                conn: Mutex::new(conn),
                address: address.to_owned(),
                dashboard,
                progress: Mutex::new(None),
                sec,
                state: Mutex::new(State::default()),
                timeout: Mutex::new(timeout),
                gather_hook: Mutex::new(None),
            }),
        })
    }

    /// Calls `f` as tasks finish (the scheduler reports progress in batches; `f` sees every
    /// count).
    pub fn with_progress(self, f: ProgressFn) -> Client {
        self.set_progress(Some(f));
        self
    }

    /// Sets (or removes) the progress callback of later computations.
    pub fn set_progress(&self, f: Option<ProgressFn>) {
        *lock(&self.inner.progress) = f;
    }

    /// For tests: `f` is called with the outputs' locations right before each gather of a
    /// computation's outputs (after the scheduler's `Done`), so that a test can make a
    /// holder leave in that window. Not for other uses.
    #[doc(hidden)]
    pub fn set_gather_hook(&self, f: Option<GatherHook>) {
        *lock(&self.inner.gather_hook) = f;
    }

    /// The scheduler's address.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The scheduler's dashboard (`http://host:port/status`, as Dask's `dashboard_link`),
    /// as the scheduler reported it when this client connected; `None` when it serves
    /// none. A dashboard listening on every interface is given with the host this client
    /// connected to; through a gateway, the gateway's path to it.
    pub fn dashboard_link(&self) -> Option<String> {
        self.inner.dashboard.clone()
    }

    /// The cluster's workers.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.inner.with_conn(|inner, c| {
            inner.block_on_timed("asking for the workers", async {
                send(c, &inner.address, &FromClient::Info).await?;
                loop {
                    if let ToClient::Info(w) = inner.recv(c).await? {
                        return Ok(w);
                    }
                }
            })
        })
    }

    /// How busy the scheduler is (idle time, jobs, pending tasks).
    pub fn activity(&self) -> Result<crate::messages::Activity> {
        self.inner.with_conn(|inner, c| {
            inner.block_on_timed("asking for the activity", async {
                send(c, &inner.address, &FromClient::Activity).await?;
                loop {
                    if let ToClient::Activity(a) = inner.recv(c).await? {
                        return Ok(a);
                    }
                }
            })
        })
    }

    /// Waits until at least `n` workers have joined, or `timeout` passes.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<Vec<WorkerInfo>> {
        let start = Instant::now();
        loop {
            let w = self.workers()?;
            if w.len() >= n {
                return Ok(w);
            }
            if start.elapsed() > timeout {
                return Err(DistError::Cluster(format!(
                    "{} of {n} workers joined within {timeout:?}",
                    w.len()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Keys of results held on the workers for this client (persisted, futures, scattered).
    pub fn held_keys(&self) -> Vec<Key> {
        lock(&self.inner.state).held.keys().cloned().collect()
    }

    /// Computes `outputs` of `graph` and keeps the results on the workers that computed
    /// them, returning once they are all computed. While the returned handle (or a clone)
    /// lives, graphs computed on this client that contain these keys read the held
    /// results instead of recomputing them; dropping it releases them. Chunked arrays and
    /// datasets do this through `persist_with(&client)`.
    pub fn persist<O>(&self, graph: &Graph<O>, outputs: &[Key]) -> Result<Persistent>
    where
        O: Execute,
        O::Value: WireValue,
    {
        let prepared = self.prepare(graph, outputs)?;
        let job = self.inner.submit(
            prepared.tasks,
            prepared.outputs,
            prepared.held,
            &prepared.keys,
        )?;
        let keys = Arc::new(prepared.keys);
        lock(&self.inner.state)
            .jobs
            .insert(job, (JobStatus::Pending, keys));
        let status = self.inner.wait_jobs(&[job], false)?;
        let locations = match status {
            JobStatus::Done(l) => l,
            JobStatus::Failed(key, op, message, panicked) => {
                return Err(DistError::Task {
                    key: key.unwrap_or_else(|| Key::new("persist", &[])),
                    op,
                    message,
                    panicked,
                });
            }
            JobStatus::Pending => {
                return Err(DistError::Cluster("persist: the job never finished".into()));
            }
        };
        let ids: Vec<(Key, u64)> = outputs
            .iter()
            .cloned()
            .zip(locations.iter().map(|l| l.id))
            .collect();
        Ok(Persistent {
            hold: Arc::new(Hold::new(self.inner.clone(), job, ids)),
        })
    }

    /// Submits `graph` for `key` and returns a [`Future`] of its result at once. Inputs
    /// may be keys of held results (futures, scattered or persisted data).
    pub fn submit<V: WireValue>(
        &self,
        graph: &Graph<impl Execute<Value = V>>,
        key: &Key,
    ) -> Result<Future<V>> {
        let mut f = self.submit_many(graph, std::slice::from_ref(key))?;
        f.pop()
            .ok_or_else(|| DistError::Cluster("submit: no future returned".into()))
    }

    /// Like [`Client::submit`], for several keys of one graph (one job; shared inputs are
    /// computed once).
    pub fn submit_many<O>(&self, graph: &Graph<O>, keys: &[Key]) -> Result<Vec<Future<O::Value>>>
    where
        O: Execute,
    {
        let prepared = self.prepare(graph, keys)?;
        let n = prepared.tasks.len() as u64;
        let ids: Vec<u64> = prepared
            .outputs
            .clone()
            .into_iter()
            .map(u64::from)
            .collect();
        let held = prepared.held.clone();
        let job = self.inner.submit(
            prepared.tasks,
            prepared.outputs,
            prepared.held,
            &prepared.keys,
        )?;
        lock(&self.inner.state)
            .jobs
            .insert(job, (JobStatus::Pending, Arc::new(prepared.keys)));
        Ok(keys
            .iter()
            .zip(ids)
            .enumerate()
            .map(|(index, (k, p))| {
                let id = if p < n {
                    job + p
                } else {
                    held[(p - n) as usize]
                };
                let hold = Arc::new(Hold::new(self.inner.clone(), job, vec![(k.clone(), id)]));
                Future::new(hold, index)
            })
            .collect())
    }

    /// Places local values on the workers (spread round-robin, each whole on one worker)
    /// and returns futures of them, already finished; their keys (`scatter-JOB-i`, or
    /// the ones given) can be inputs of later graphs.
    pub fn scatter<V>(&self, values: Vec<V>, keys: Option<Vec<Key>>) -> Result<Vec<Future<V>>>
    where
        V: WireValue + Send + Sync + 'static,
    {
        let workers = self.workers()?;
        if workers.is_empty() {
            return Err(DistError::Cluster(
                "scatter: the cluster has no workers".into(),
            ));
        }
        if let Some(k) = &keys
            && k.len() != values.len()
        {
            return Err(DistError::Cluster(format!(
                "scatter: {} values but {} keys",
                values.len(),
                k.len()
            )));
        }
        let values: Vec<Arc<V>> = values.into_iter().map(Arc::new).collect();
        let parts: Vec<(String, u64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let w = &workers[i % workers.len()];
                (w.address.clone(), v.body().len() as u64)
            })
            .collect();
        let job = self.inner.with_conn(|inner, c| {
            inner.rt.block_on(async {
                send(
                    c,
                    &inner.address,
                    &FromClient::Scatter {
                        parts: parts.clone(),
                    },
                )
                .await?;
                inner.accepted(c).await
            })
        })?;
        let keys = keys.unwrap_or_else(|| {
            (0..values.len())
                .map(|i| Key::new(format!("scatter-{job}"), &[i as u32]))
                .collect()
        });
        let locations: Vec<Location> = parts
            .iter()
            .enumerate()
            .map(|(i, (a, _))| Location {
                id: job + i as u64,
                address: a.clone(),
            })
            .collect();
        lock(&self.inner.state).jobs.insert(
            job,
            (JobStatus::Done(locations.clone()), Arc::new(keys.clone())),
        );
        // Handles first: if sending fails, dropping them releases what was placed.
        let futures: Vec<Future<V>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let hold = Arc::new(Hold::new(
                    self.inner.clone(),
                    job,
                    vec![(k.clone(), job + i as u64)],
                ));
                Future::new(hold, i)
            })
            .collect();
        let mut by_worker: FxHashMap<&str, Vec<(u64, Arc<V>)>> = FxHashMap::default();
        for (l, v) in locations.iter().zip(&values) {
            by_worker
                .entry(l.address.as_str())
                .or_default()
                .push((l.id, v.clone()));
        }
        self.inner.rt.block_on(async {
            for (address, vals) in &by_worker {
                let address = crate::auth::relayed_data_address(&self.inner.address, address);
                crate::worker::put(&address, vals, &self.inner.sec).await?;
            }
            Ok::<(), DistError>(())
        })?;
        Ok(futures)
    }

    /// Waits until every future has finished (or failed, or was cancelled).
    pub fn wait<V>(&self, futures: &[Future<V>]) -> Result<()> {
        let jobs: Vec<u64> = futures.iter().map(Future::job).collect();
        self.inner.wait_jobs(&jobs, true).map(|_| ())
    }

    /// The futures in the order they finish (failed and cancelled ones included: their
    /// `result` says why).
    pub fn as_completed<V>(&self, futures: Vec<Future<V>>) -> AsCompleted<V> {
        AsCompleted {
            inner: self.inner.clone(),
            left: futures,
        }
    }

    /// Compiles `graph` for `outputs`, cutting it at results this client holds: their
    /// tasks are left out, and readers refer to them by global id.
    fn prepare<O: Operation>(&self, graph: &Graph<O>, outputs: &[Key]) -> Result<Prepared> {
        let held = lock(&self.inner.state).held.clone();
        // The tasks the outputs need, stopping at held keys (which need not be in the graph).
        let mut sub: Graph<O> = Graph::new();
        let mut cut: Vec<Key> = Vec::new();
        let mut seen: FxHashSet<&Key> = FxHashSet::default();
        let mut stack: Vec<&Key> = outputs.iter().collect();
        while let Some(k) = stack.pop() {
            if !seen.insert(k) {
                continue;
            }
            if held.contains_key(k) {
                // A placeholder: no inputs, so nothing behind it is needed.
                sub.insert(
                    k.clone(),
                    Task {
                        expr: Expr::Input(0),
                        inputs: Vec::new(),
                    },
                );
                cut.push(k.clone());
                continue;
            }
            if let Some(t) = graph.get(k) {
                sub.insert(k.clone(), t.clone());
                stack.extend(t.inputs.iter());
            }
            // A missing key is reported by compiling, naming its reader.
        }
        // Held keys are compiled as outputs too, so that fusion never inlines them.
        let mut wanted = outputs.to_vec();
        wanted.extend(cut.iter().cloned());
        let program = sub.indexed(&wanted)?.program(true)?;
        let n_all = program.len();
        let is_cut = |id: usize| held.contains_key(program.key(id));
        let n_real = (0..n_all).filter(|&i| !is_cut(i)).count() as u32;
        let mut position = vec![0u32; n_all];
        let mut held_ids: Vec<u64> = Vec::new();
        let mut next = 0u32;
        for (id, p) in position.iter_mut().enumerate() {
            if is_cut(id) {
                *p = n_real + held_ids.len() as u32;
                held_ids.push(held[program.key(id)].0);
            } else {
                *p = next;
                next += 1;
            }
        }
        let mut tasks = Vec::with_capacity(n_real as usize);
        let mut keys = Vec::with_capacity(n_real as usize);
        let mut labels = Vec::with_capacity(n_real as usize);
        for id in 0..n_all {
            if is_cut(id) {
                continue;
            }
            let payload = crate::frame::encode_task(&*program.expr(id)).map_err(|e| {
                DistError::Cluster(format!("encoding task {}: {e}", program.key(id)))
            })?;
            tasks.push(SubmitTask {
                payload,
                inputs: program
                    .inputs(id)
                    .iter()
                    .map(|&i| position[i as usize])
                    .collect(),
            });
            keys.push(program.key(id).clone());
            labels.push(program.expr(id).label());
        }
        let outs = program.outputs()[..outputs.len()]
            .iter()
            .map(|&o| position[o as usize])
            .collect();
        Ok(Prepared {
            tasks,
            outputs: outs,
            held: held_ids,
            keys,
            labels,
        })
    }

    /// Runs a prepared job and gathers its outputs; failures name the task's key.
    fn compute<V: WireValue>(
        &self,
        prepared: Prepared,
    ) -> std::result::Result<Gathered<V>, RuntimeError> {
        let Prepared {
            tasks,
            outputs,
            held,
            keys,
            labels,
        } = prepared;
        let n = tasks.len();
        let progress = lock(&self.inner.progress).clone();
        let outcome = self.inner.with_conn(|inner, c| {
            inner.rt.block_on(async {
                send(
                    c,
                    &inner.address,
                    &FromClient::Submit {
                        tasks,
                        outputs,
                        held,
                        groups: task_groups(&keys),
                    },
                )
                .await?;
                let job = inner.accepted(c).await?;
                let mut reported = 0usize;
                loop {
                    match inner.recv(c).await? {
                        ToClient::Progress { job: j, done } if j == job => {
                            if let Some(p) = &progress {
                                let done = usize::try_from(done).unwrap_or(usize::MAX).min(n);
                                for d in reported + 1..=done {
                                    p(Progress { done: d, total: n });
                                }
                                reported = reported.max(done);
                            }
                        }
                        ToClient::Done {
                            job: j,
                            outputs,
                            peak_bytes,
                        } if j == job => {
                            return Ok(Ok((job, outputs, peak_bytes)));
                        }
                        ToClient::Failed {
                            job: j,
                            task,
                            op,
                            message,
                            panicked,
                        } if j == job => {
                            return Ok(Err((task, op, message, panicked)));
                        }
                        _ => continue,
                    }
                }
            })
        });
        match outcome {
            Err(e) => Err(cluster_error(e)),
            Ok(Ok((job, outputs, peak))) => {
                // Gathered outside the connection's lock: asking again where the outputs
                // are takes it.
                let values = self.inner.gather_job::<V>(job, outputs);
                let released = self.inner.with_conn(|inner, c| {
                    inner
                        .rt
                        .block_on(send(c, &inner.address, &FromClient::Release { job }))
                });
                let values = values.map_err(cluster_error)?;
                released.map_err(cluster_error)?;
                Ok((values, peak))
            }
            Ok(Err((task, op, message, panicked))) => {
                let Some(key) = task.and_then(|t| keys.get(t as usize)).cloned() else {
                    return Err(cluster_error(DistError::Cluster(format!(
                        "{op}: {message}"
                    ))));
                };
                let op = match task.and_then(|t| labels.get(t as usize)) {
                    Some(l) if op.is_empty() => l.clone(),
                    _ => op,
                };
                Err(if panicked {
                    RuntimeError::TaskPanicked { key, op, message }
                } else {
                    RuntimeError::TaskFailed { key, op, message }
                })
            }
        }
    }

    fn run_prepared<V: WireValue>(
        &self,
        prepared: Prepared,
        tasks_before: usize,
        start: Instant,
    ) -> gridflow_runtime::Result<(Vec<Arc<V>>, RunReport)> {
        let tasks_after = prepared.tasks.len();
        let optimize_time = start.elapsed();
        let (values, peak) = self.compute::<V>(prepared)?;
        let elapsed = start.elapsed();
        let threads = self
            .workers()
            .map(|w| w.iter().map(|x| x.nthreads as usize).sum())
            .unwrap_or(0);
        Ok((
            values,
            RunReport {
                tasks_before,
                tasks_after,
                peak_held_bytes: usize::try_from(peak).unwrap_or(usize::MAX),
                threads,
                elapsed,
                optimize_time,
                execute_time: elapsed - optimize_time,
            },
        ))
    }
}

/// Results persisted on a cluster ([`Client::persist`]): held on the workers while this
/// handle or a clone lives.
#[derive(Clone)]
pub struct Persistent {
    hold: Arc<Hold>,
}

impl Persistent {
    /// The persisted keys.
    pub fn keys(&self) -> Vec<Key> {
        self.hold.keys()
    }
}

impl std::fmt::Debug for Persistent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Persistent({} keys)", self.hold.keys().len())
    }
}

/// Futures in the order they finish ([`Client::as_completed`]).
pub struct AsCompleted<V> {
    inner: Arc<Inner>,
    left: Vec<Future<V>>,
}

impl<V> Iterator for AsCompleted<V> {
    type Item = Result<Future<V>>;

    fn next(&mut self) -> Option<Result<Future<V>>> {
        if self.left.is_empty() {
            return None;
        }
        loop {
            let ready = {
                let st = lock(&self.inner.state);
                self.left.iter().position(|f| f.finished_in(&st))
            };
            if let Some(i) = ready {
                return Some(Ok(self.left.remove(i)));
            }
            if let Err(e) = self.inner.pump_one() {
                self.left.clear();
                return Some(Err(e));
            }
        }
    }
}

/// The outputs' values and the job's peak bytes.
type Gathered<V> = (Vec<Arc<V>>, u64);

fn cluster_error(e: DistError) -> RuntimeError {
    RuntimeError::Executor(Box::new(e))
}

async fn send(c: &mut Conn, address: &str, msg: &FromClient) -> Result<()> {
    write_frame(&mut c.w, address, &encode(msg)?, &[]).await?;
    c.w.flush()
        .await
        .map_err(|e| DistError::io(format!("{address}: sending"), e))
}

impl Inner {
    /// Runs a question to the scheduler within the client's time-out, if any.
    pub(crate) fn block_on_timed<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let t = *lock(&self.timeout);
        self.rt.block_on(timed(t, &self.address, what, fut))
    }

    /// Runs `f` with the connection, after telling the scheduler about dropped handles.
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&Inner, &mut Conn) -> Result<T>) -> Result<T> {
        let mut c = lock(&self.conn);
        self.flush_releases(&mut c)?;
        f(self, &mut c)
    }

    fn flush_releases(&self, c: &mut Conn) -> Result<()> {
        let ids = std::mem::take(&mut lock(&self.state).to_release);
        if ids.is_empty() {
            return Ok(());
        }
        self.rt
            .block_on(send(c, &self.address, &FromClient::ReleaseKeys(ids)))
    }

    /// Sends releases now if the connection is free (a handle was dropped); otherwise the
    /// next use of the connection sends them.
    pub(crate) fn release_soon(&self) {
        // Never block on a runtime from inside another one (a drop in async code).
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        if let Ok(mut c) = self.conn.try_lock() {
            let _ = self.flush_releases(&mut c);
        }
    }

    /// Reads one message, recording what it says about jobs that have handles.
    async fn recv(&self, c: &mut Conn) -> Result<ToClient> {
        let msg = match read_frame(&mut c.r, &self.address).await? {
            Some(f) => f.decode(&self.address)?,
            None => {
                return Err(DistError::Closed {
                    peer: self.address.clone(),
                    during: "while waiting for the scheduler".into(),
                });
            }
        };
        let mut st = lock(&self.state);
        match &msg {
            ToClient::Done { job, outputs, .. } => {
                if let Some((s, _)) = st.jobs.get_mut(job) {
                    *s = JobStatus::Done(outputs.clone());
                }
            }
            ToClient::Failed {
                job,
                task,
                op,
                message,
                panicked,
            } => {
                if let Some((s, keys)) = st.jobs.get_mut(job) {
                    let key = task.and_then(|t| keys.get(t as usize)).cloned();
                    *s = JobStatus::Failed(key, op.clone(), message.clone(), *panicked);
                }
            }
            _ => {}
        }
        Ok(msg)
    }

    /// Waits for the answer to a submission.
    async fn accepted(&self, c: &mut Conn) -> Result<u64> {
        loop {
            match self.recv(c).await? {
                ToClient::Accepted { job } => return Ok(job),
                ToClient::Failed {
                    job: u64::MAX,
                    op,
                    message,
                    ..
                } => return Err(DistError::Cluster(format!("{op}: {message}"))),
                _ => continue,
            }
        }
    }

    /// Submits a job (answered at once).
    fn submit(
        &self,
        tasks: Vec<SubmitTask>,
        outputs: Vec<u32>,
        held: Vec<u64>,
        keys: &[Key],
    ) -> Result<u64> {
        let groups = task_groups(keys);
        self.with_conn(|inner, c| {
            inner.rt.block_on(async {
                send(
                    c,
                    &inner.address,
                    &FromClient::Submit {
                        tasks,
                        outputs,
                        held,
                        groups,
                    },
                )
                .await?;
                inner.accepted(c).await
            })
        })
    }

    /// Reads one message from the scheduler (blocking).
    pub(crate) fn pump_one(&self) -> Result<()> {
        self.with_conn(|inner, c| inner.rt.block_on(inner.recv(c)).map(|_| ()))
    }

    /// Waits until the jobs are no longer pending; returns the first one's status. With
    /// `forget_unknown`, jobs the client no longer tracks count as finished.
    pub(crate) fn wait_jobs(&self, jobs: &[u64], forget_unknown: bool) -> Result<JobStatus> {
        loop {
            let first = {
                let st = lock(&self.state);
                let pending = jobs.iter().any(|j| match st.jobs.get(j) {
                    Some((JobStatus::Pending, _)) => true,
                    Some(_) => false,
                    None => !forget_unknown,
                });
                if !pending {
                    return Ok(jobs
                        .first()
                        .and_then(|j| st.jobs.get(j))
                        .map_or(JobStatus::Pending, |(s, _)| s.clone()));
                }
                jobs.first().copied()
            };
            if first.is_none() {
                return Ok(JobStatus::Pending);
            }
            self.pump_one()?;
        }
    }

    /// Where held results are now: the worker a finished job named may have left since (a
    /// retired worker's results moved, a lost worker's were recomputed elsewhere). Asked as
    /// a job of no tasks whose outputs are these results: the scheduler answers with their
    /// current holders (once recomputed, if they were lost), and the job is then released.
    pub(crate) fn locate(&self, ids: &[u64]) -> Result<Vec<Location>> {
        let n = u32::try_from(ids.len())
            .map_err(|_| DistError::Cluster("locate: too many results at once".into()))?;
        self.with_conn(|inner, c| {
            inner.rt.block_on(async {
                send(
                    c,
                    &inner.address,
                    &FromClient::Submit {
                        tasks: Vec::new(),
                        outputs: (0..n).collect(),
                        held: ids.to_vec(),
                        groups: crate::messages::TaskGroups::default(),
                    },
                )
                .await?;
                let job = inner.accepted(c).await?;
                loop {
                    match inner.recv(c).await? {
                        ToClient::Done {
                            job: j, outputs, ..
                        } if j == job => {
                            send(c, &inner.address, &FromClient::Release { job }).await?;
                            return Ok(outputs);
                        }
                        ToClient::Failed {
                            job: j,
                            op,
                            message,
                            ..
                        } if j == job => {
                            return Err(DistError::Cluster(format!(
                                "locating held results: {op}: {message}"
                            )));
                        }
                        _ => continue,
                    }
                }
            })
        })
    }

    /// Gathers a finished computation's outputs from `outputs`. A holder may have left
    /// since the scheduler's `Done` (retired: its results moved; lost: they are recomputed):
    /// then the client asks again where they are (`Locate`, answered by a new `Done` once
    /// they are all in memory) and gathers from there, up to [`LOCATE_ATTEMPTS`] times.
    fn gather_job<V: WireValue>(
        &self,
        job: u64,
        mut outputs: Vec<Location>,
    ) -> Result<Vec<Arc<V>>> {
        let hook = lock(&self.gather_hook).clone();
        if let Some(h) = &hook {
            h(&outputs);
        }
        let first = match self.gather::<V>(&outputs) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let mut last = String::new();
        for attempt in 1..=LOCATE_ATTEMPTS {
            tracing::info!(
                "gridflow client: gathering computation {job} failed ({}); asking the \
                 scheduler where its results are now",
                if last.is_empty() {
                    first.to_string()
                } else {
                    last.clone()
                }
            );
            let now = match self.locate_job(job) {
                Ok(l) => l,
                Err(e) => {
                    return Err(DistError::Gather {
                        job,
                        attempts: attempt,
                        last: format!("locating them again: {e}"),
                        source: Box::new(first),
                    });
                }
            };
            let same = now.len() == outputs.len()
                && now
                    .iter()
                    .zip(&outputs)
                    .all(|(a, b)| a.address == b.address);
            if same {
                // The scheduler has not yet noticed the holder leave (or the failure was
                // passing): give it time before fetching from the same place.
                std::thread::sleep(locate_backoff(attempt - 1));
            }
            outputs = now;
            if let Some(h) = &hook {
                h(&outputs);
            }
            match self.gather::<V>(&outputs) {
                Ok(v) => return Ok(v),
                Err(e) => last = e.to_string(),
            }
        }
        if last == first.to_string() {
            last.clear();
        }
        Err(DistError::Gather {
            job,
            attempts: LOCATE_ATTEMPTS,
            last,
            source: Box::new(first),
        })
    }

    /// Asks the scheduler where `job`'s outputs are now (`Locate`); waits for its `Done`
    /// (after a recomputation, if they were lost) or `Failed`.
    fn locate_job(&self, job: u64) -> Result<Vec<Location>> {
        self.with_conn(|inner, c| {
            inner.rt.block_on(async {
                send(c, &inner.address, &FromClient::Locate { job }).await?;
                loop {
                    match inner.recv(c).await? {
                        ToClient::Done {
                            job: j, outputs, ..
                        } if j == job => return Ok(outputs),
                        ToClient::Failed {
                            job: j,
                            op,
                            message,
                            ..
                        } if j == job => {
                            return Err(DistError::Cluster(format!("{op}: {message}")));
                        }
                        _ => continue,
                    }
                }
            })
        })
    }

    /// Fetches held results from the workers holding them.
    pub(crate) fn gather<V: WireValue>(&self, locations: &[Location]) -> Result<Vec<Arc<V>>> {
        self.rt
            .block_on(gather::<V>(locations, &self.address, &self.sec))
    }
}

/// Fetches the outputs from the workers holding them, one connection per worker (relayed
/// by the scheduler at `scheduler` when it is reached through a gateway).
async fn gather<V: WireValue>(
    outputs: &[Location],
    scheduler: &str,
    sec: &Security,
) -> Result<Vec<Arc<V>>> {
    let mut by_worker: FxHashMap<&str, Vec<u64>> = FxHashMap::default();
    for l in outputs {
        let ids = by_worker.entry(l.address.as_str()).or_default();
        if !ids.contains(&l.id) {
            ids.push(l.id);
        }
    }
    let mut values: FxHashMap<u64, Arc<V>> = FxHashMap::default();
    for (address, ids) in by_worker {
        if address.is_empty() {
            return Err(DistError::Cluster(
                "a result is held by no worker (its worker left)".into(),
            ));
        }
        let address = crate::auth::relayed_data_address(scheduler, address);
        for (id, v) in fetch::<V>(&address, &ids, sec).await? {
            values.insert(id, v);
        }
    }
    outputs
        .iter()
        .map(|l| {
            values.get(&l.id).cloned().ok_or_else(|| {
                DistError::Cluster(format!("the result of task {} was not sent", l.id))
            })
        })
        .collect()
}

impl<O> Executor<O> for Client
where
    O: Execute,
    O::Value: WireValue,
{
    fn run_plan(
        &self,
        plan: Plan<'_, O>,
    ) -> gridflow_runtime::Result<(Vec<Arc<O::Value>>, RunReport)> {
        let start = Instant::now();
        let tasks = plan.tasks;
        let n = tasks.len();
        let mut submit = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        for id in 0..n {
            let payload = crate::frame::encode_task(&*tasks.expr(id)).map_err(|e| {
                cluster_error(DistError::Cluster(format!(
                    "encoding task {}: {e}",
                    tasks.key(id)
                )))
            })?;
            submit.push(SubmitTask {
                payload,
                inputs: tasks.inputs(id).to_vec(),
            });
            keys.push(tasks.key(id).clone());
            labels.push(tasks.expr(id).label());
        }
        let prepared = Prepared {
            tasks: submit,
            outputs: tasks.outputs().to_vec(),
            held: Vec::new(),
            keys,
            labels,
        };
        let (values, mut report) = self.run_prepared(prepared, tasks.tasks_before(), start)?;
        // Encoding is part of running a plan compiled elsewhere.
        report.execute_time = report.elapsed;
        report.optimize_time = Duration::ZERO;
        Ok((values, report))
    }

    fn run_with_report(
        &self,
        graph: &Graph<O>,
        outputs: &[Key],
    ) -> gridflow_runtime::Result<(Vec<Arc<O::Value>>, RunReport)> {
        let start = Instant::now();
        let prepared = self.prepare(graph, outputs).map_err(|e| match e {
            DistError::Graph { source } => RuntimeError::from(source),
            other => cluster_error(other),
        })?;
        self.run_prepared(prepared, graph.len(), start)
    }

    fn thread_count(&self) -> usize {
        self.workers()
            .map(|w| w.iter().map(|x| x.nthreads as usize).sum())
            .unwrap_or(1)
            .max(1)
    }

    fn describe(&self) -> String {
        format!("cluster at {}", self.inner.address)
    }

    fn holds_results(&self) -> bool {
        !lock(&self.inner.state).held.is_empty()
    }

    fn persists_remotely(&self) -> bool {
        true
    }

    fn persist_graph(
        &self,
        graph: &Graph<O>,
        outputs: &[Key],
    ) -> gridflow_runtime::Result<Persisted<O::Value>> {
        let p = self.persist(graph, outputs).map_err(|e| match e {
            DistError::Graph { source } => RuntimeError::from(source),
            DistError::Task {
                key,
                op,
                message,
                panicked,
            } => {
                if panicked {
                    RuntimeError::TaskPanicked { key, op, message }
                } else {
                    RuntimeError::TaskFailed { key, op, message }
                }
            }
            other => cluster_error(other),
        })?;
        Ok(Persisted::Held(Arc::new(p)))
    }
}

/// `fut` within `timeout` (if any); a time-out is an error naming the peer and the step.
async fn timed<T>(
    timeout: Option<Duration>,
    peer: &str,
    what: &str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match timeout {
        None => fut.await,
        Some(t) => tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
            Err(DistError::Cluster(format!(
                "{peer}: {what}: no answer within {t:?}"
            )))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::dashboard_link;

    #[test]
    fn dashboard_links_use_a_host_the_client_can_reach() {
        let l = |s, d| dashboard_link(s, d);
        assert_eq!(
            l("tcp://node7:8786", "0.0.0.0:8787").as_deref(),
            Some("http://node7:8787/status")
        );
        assert_eq!(
            l("tls://[fe80::1]:8786", "[::]:9000").as_deref(),
            Some("http://[fe80::1]:9000/status")
        );
        assert_eq!(
            l("node7:8786", "10.0.0.5:8787").as_deref(),
            Some("http://10.0.0.5:8787/status")
        );
        assert_eq!(
            l("gateway://gw:8000/abc", "127.0.0.1:40000").as_deref(),
            Some("http://gw:8000/clusters/abc/dashboard/status")
        );
        assert_eq!(l("tcp://node7:8786", "nonsense"), None);
    }
}
