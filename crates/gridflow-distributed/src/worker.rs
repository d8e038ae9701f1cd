//! A worker process: runs tasks on a thread pool with the same [`Execute`] operations as
//! the local executor, holds results in memory, serves them to peers and clients on its
//! data port, and fetches missing inputs directly from the peers holding them.

use crate::auth::{Security, Stream};
use crate::frame::{encode, read_frame, write_frame};
use crate::messages::{
    ComputeTask, DataReply, DataRequest, FromWorker, Hello, Location, TaskDone, ToWorker, Welcome,
};
use crate::{DistError, Result};
use gridflow_graph::{Expr, Key};
use gridflow_runtime::{Execute, WireValue, run_task};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::{Arc, Condvar, Mutex};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Threads running tasks (at least one).
    pub nthreads: usize,
    /// Memory limit in bytes (0: none); reported to the scheduler.
    pub memory_limit: u64,
    /// Name shown in cluster information.
    pub name: String,
    /// Host to bind the data port on (peers must reach it).
    pub host: String,
    /// The credentials this worker proves to the scheduler and demands on its data port;
    /// `None`: from the environment ([`Security::from_env`]).
    pub security: Option<Security>,
    /// How often to tell the scheduler this worker is alive.
    pub heartbeat_interval: std::time::Duration,
    /// Hearing nothing from the scheduler for this long, the worker exits.
    pub heartbeat_timeout: std::time::Duration,
    /// A file where each thread writes the id of the task it is running (8 bytes per
    /// thread, id + 1, 0 when idle), for a nanny to read if the process dies: a task that
    /// kills its worker at once is then blamed for sure. Written without syncing (the page
    /// cache outlives the process), so it costs one small write per task.
    pub running_file: Option<std::path::PathBuf>,
    /// Where results are spilled when memory runs short (with a memory limit); `None`: a
    /// directory of its own under the system's temporary directory.
    pub local_directory: Option<std::path::PathBuf>,
    /// Retire gracefully after this long (results moved to other workers first), before a
    /// batch system's walltime kills the process; `None`: run until told to stop.
    pub lifetime: Option<std::time::Duration>,
    /// Up to this much is added to `lifetime` (a fraction taken from the process id), so
    /// that workers started together do not all retire at once (Dask's
    /// `--lifetime-stagger`).
    pub lifetime_stagger: std::time::Duration,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        WorkerOptions {
            nthreads: 1,
            memory_limit: 0,
            name: format!("worker-{}", std::process::id()),
            host: "127.0.0.1".into(),
            security: None,
            heartbeat_interval: std::time::Duration::from_millis(500),
            heartbeat_timeout: std::time::Duration::from_secs(30),
            running_file: None,
            local_directory: None,
            lifetime: None,
            lifetime_stagger: std::time::Duration::ZERO,
        }
    }
}

impl WorkerOptions {
    /// When this worker retires: `lifetime` plus its share of the stagger.
    pub fn retire_after(&self) -> Option<std::time::Duration> {
        let l = self.lifetime?;
        // A spread fraction in [0, 1) from the process id (Knuth's multiplicative hash).
        let frac = f64::from(std::process::id().wrapping_mul(2_654_435_761) % 1000) / 1000.0;
        Some(l + self.lifetime_stagger.mul_f64(frac))
    }
}

/// Retires worker `name` through the scheduler after `after` (its `--lifetime`): the
/// scheduler moves its results away and then tells it to exit.
fn retire_later(
    scheduler: &str,
    options: &WorkerOptions,
    after: std::time::Duration,
) -> Result<()> {
    let (address, name) = (scheduler.to_owned(), options.name.clone());
    let sec = options.security.clone();
    std::thread::Builder::new()
        .name("gridflow-lifetime".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::info!("gridflow worker {name}: its lifetime ({after:?}) is over: retiring");
            let retired = sec
                .map_or_else(Security::from_env, Ok)
                .and_then(|sec| crate::Client::connect_with(&address, sec))
                .and_then(|c| c.retire_workers(std::slice::from_ref(&name)));
            if let Err(e) = retired {
                tracing::warn!("gridflow worker {name}: retiring at the end of its lifetime: {e}");
            }
        })
        .map(|_| ())
        .map_err(|e| DistError::io("starting the lifetime thread", e))
}

type Store<V> = Arc<crate::memory::DataStore<V>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Strips a `tcp://` or `tls://` prefix.
pub fn host_port(address: &str) -> &str {
    crate::auth::parse_address(address).1
}

/// Opens a connection to a gridflow peer: handshake and authentication.
pub(crate) async fn connect(address: &str, sec: &Security) -> Result<Stream> {
    crate::auth::connect(address, sec).await
}

enum Event<V> {
    Scheduler(ToWorker),
    SchedulerClosed(Option<DistError>),
    Fetched(Vec<(u64, Arc<V>)>),
    /// Inputs that could not be fetched, from where, and why.
    FetchFailed(Vec<u64>, String, String),
    /// Results copied here from a retiring peer (to keep), and those that could not be.
    Replicated(Vec<(u64, Arc<V>)>, Vec<u64>),
    /// Time to send a heartbeat and check the scheduler's.
    Tick,
    /// A thread started a task.
    Started(u64),
    Done {
        id: u64,
        nbytes: u64,
        micros: u64,
    },
    Failed(FromWorker, u64),
}

/// A task whose inputs are all here, for a pool thread (which decodes the payload: the
/// event loop only routes).
struct Ready {
    id: u64,
    payload: Vec<u8>,
    inputs: Vec<u64>,
}

struct Pool {
    /// Ready tasks by id (= priority: the lowest runs first), and whether to stop.
    queue: Mutex<(std::collections::BTreeMap<u64, Ready>, bool)>,
    wake: Condvar,
}

/// Runs a worker until the scheduler tells it to stop or goes away.
pub fn run<O>(scheduler: &str, options: WorkerOptions) -> Result<()>
where
    O: Execute,
    O::Value: WireValue,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DistError::io("starting the worker's event loop", e))?;
    if let Some(after) = options.retire_after() {
        retire_later(scheduler, &options, after)?;
    }
    rt.block_on(serve::<O>(scheduler.to_owned(), options))
}

async fn serve<O>(scheduler: String, options: WorkerOptions) -> Result<()>
where
    O: Execute,
    O::Value: WireValue,
{
    let sec = match options.security.clone() {
        Some(s) => s,
        None => Security::from_env()?,
    };
    sec.check_listen(&options.host)?;
    let dir = options.local_directory.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gridflow-worker-{}", std::process::id()))
    });
    let store: Store<O::Value> = crate::memory::DataStore::new(
        options.memory_limit,
        (options.memory_limit > 0).then(|| dir.clone()),
        O::nbytes,
        crate::memory::Thresholds::default(),
    )
    .map_err(|e| DistError::io(format!("creating the local directory {}", dir.display()), e))?;
    let spiller = {
        let store = store.clone();
        std::thread::Builder::new()
            .name("gridflow-spill".into())
            .spawn(move || store.spill_loop())
            .map_err(|e| DistError::io("starting the spill thread", e))?
    };
    let listener = TcpListener::bind((options.host.as_str(), 0))
        .await
        .map_err(|e| DistError::io(format!("binding the data port on {}", options.host), e))?;
    let data_address = listener
        .local_addr()
        .map_err(|e| DistError::io("reading the data port's address", e))?;
    // Plain `host:port` for TCP (as before), `tls://host:port` for TLS.
    let data_address = if sec.has_tls() {
        format!("tls://{data_address}")
    } else {
        data_address.to_string()
    };
    tokio::spawn(data_server::<O::Value>(
        listener,
        store.clone(),
        sec.clone(),
    ));

    let stream = connect(&scheduler, &sec).await?;
    let (mut r, w) = tokio::io::split(stream);
    let mut w = BufWriter::new(w);
    let hello = Hello::Worker {
        name: options.name.clone(),
        nthreads: options.nthreads.max(1) as u32,
        memory_limit: options.memory_limit,
        data_address,
    };
    write_frame(&mut w, &scheduler, &encode(&hello)?, &[]).await?;
    w.flush()
        .await
        .map_err(|e| DistError::io(format!("{scheduler}: sending"), e))?;
    let welcome: Welcome = match read_frame(&mut r, &scheduler).await? {
        Some(f) => f.decode(&scheduler)?,
        None => {
            return Err(DistError::Closed {
                peer: scheduler,
                during: "before accepting this worker".into(),
            });
        }
    };
    if let Welcome::Refused(why) = welcome {
        return Err(DistError::Cluster(format!(
            "the scheduler refused this worker: {why}"
        )));
    }

    let (tx, mut rx) = unbounded_channel::<Event<O::Value>>();
    {
        let tx = tx.clone();
        let peer = scheduler.clone();
        tokio::spawn(async move {
            loop {
                match read_frame(&mut r, &peer).await {
                    Ok(Some(f)) => match f.decode::<ToWorker>(&peer) {
                        Ok(m) => {
                            let _ = tx.send(Event::Scheduler(m));
                        }
                        Err(e) => {
                            let _ = tx.send(Event::SchedulerClosed(Some(e)));
                            return;
                        }
                    },
                    Ok(None) => {
                        let _ = tx.send(Event::SchedulerClosed(None));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Event::SchedulerClosed(Some(e)));
                        return;
                    }
                }
            }
        });
    }

    let pool = Arc::new(Pool {
        queue: Mutex::new((std::collections::BTreeMap::new(), false)),
        wake: Condvar::new(),
    });
    let running = match &options.running_file {
        Some(p) => Some(Arc::new(std::fs::File::create(p).map_err(|e| {
            DistError::io(format!("creating the running-task file {}", p.display()), e)
        })?)),
        None => None,
    };
    let mut threads = Vec::new();
    for i in 0..options.nthreads.max(1) {
        let pool = pool.clone();
        let store = store.clone();
        let tx = tx.clone();
        let running = running.clone().map(|f| (f, i as u64 * 8));
        let t = std::thread::Builder::new()
            .name(format!("gridflow-worker-{i}"))
            .spawn(move || compute_thread::<O>(&pool, &store, &tx, running.as_ref()))
            .map_err(|e| DistError::io("starting worker threads", e))?;
        threads.push(t);
    }

    let mut st = WorkerState::<O> {
        store: store.clone(),
        waiting: FxHashMap::default(),
        waiters: FxHashMap::default(),
        fetching: FxHashSet::default(),
        borrowed: FxHashMap::default(),
        uses: FxHashMap::default(),
        tx: tx.clone(),
        pool: pool.clone(),
        sec: sec.clone(),
        peers: Arc::default(),
    };
    let (mut fetched_bytes, mut reported_fetched) = (0u64, 0u64);
    let mut cpu_meter = crate::machine::CpuMeter::default();
    {
        let tx = tx.clone();
        let every = options
            .heartbeat_interval
            .max(std::time::Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if tx.send(Event::Tick).is_err() {
                    return;
                }
            }
        });
    }
    let mut last_heard = std::time::Instant::now();
    let mut paused = false;
    let outcome = loop {
        let Some(ev) = rx.recv().await else {
            break Ok(());
        };
        let mut finished = Vec::new();
        let mut failures = Vec::new();
        let mut steals = Vec::new();
        let mut stop = None;
        let mut heartbeat = false;
        let mut pause_msg = None;
        let mut started = Vec::new();
        let mut next = Some(ev);
        while let Some(ev) = next.take() {
            if matches!(ev, Event::Scheduler(_)) {
                last_heard = std::time::Instant::now();
            }
            match ev {
                Event::Scheduler(ToWorker::Compute(tasks)) => st.compute(tasks),
                Event::Scheduler(ToWorker::Release(ids)) => {
                    for id in ids {
                        if !st.borrowed.contains_key(&id) {
                            st.store.remove(&id);
                        }
                    }
                }
                Event::Scheduler(ToWorker::Steal(ids)) => {
                    let answers = ids.into_iter().map(|id| (id, st.give_back(id))).collect();
                    steals.push(FromWorker::StealResponse(answers));
                }
                Event::Scheduler(ToWorker::Shutdown) => stop = Some(Ok(())),
                Event::Scheduler(ToWorker::Replicate(locations)) => {
                    st.replicate(locations);
                }
                Event::Replicated(values, failed) => {
                    fetched_bytes += values.iter().map(|(_, v)| O::nbytes(v) as u64).sum::<u64>();
                    let ids: Vec<u64> = values.iter().map(|(id, _)| *id).collect();
                    st.fetched(values);
                    for id in &ids {
                        // Kept for good: no local task's end drops it.
                        st.borrowed.remove(id);
                    }
                    steals.push(FromWorker::Replicated { ids, failed });
                }
                Event::Scheduler(ToWorker::Heartbeat) => {}
                Event::Started(id) => started.push(id),
                Event::Tick => {
                    if last_heard.elapsed() > options.heartbeat_timeout {
                        stop = Some(Err(DistError::Cluster(format!(
                            "worker {}: no word from the scheduler at {scheduler} for {:?} \
                             (its heartbeat time-out); exiting",
                            options.name, options.heartbeat_timeout
                        ))));
                    }
                    heartbeat = true;
                    // Short of memory: start nothing new, and hand queued tasks back.
                    let p = st.store.should_pause();
                    if p != paused {
                        paused = p;
                        let returned: Vec<u64> = if p {
                            st.hand_back_unstarted()
                        } else {
                            Vec::new()
                        };
                        pause_msg = Some(FromWorker::Paused {
                            paused: p,
                            returned,
                        });
                    }
                }
                Event::SchedulerClosed(e) => {
                    stop = Some(Err(e.unwrap_or_else(|| DistError::Closed {
                        peer: scheduler.clone(),
                        during: "by the scheduler without a shutdown: it went away; this \
                                 worker exits"
                            .into(),
                    })));
                }
                Event::Fetched(values) => {
                    fetched_bytes += values.iter().map(|(_, v)| O::nbytes(v) as u64).sum::<u64>();
                    st.fetched_inputs(values);
                }
                Event::FetchFailed(ids, holder, why) => {
                    // The tasks waiting for these inputs go back to the scheduler, which
                    // finds (or recomputes) the inputs elsewhere; the worker carries on.
                    for id in st.fetch_failed(&ids) {
                        st.task_ended(id);
                        failures.push(FromWorker::Missing {
                            id,
                            inputs: ids.clone(),
                            holder: holder.clone(),
                            message: why.clone(),
                        });
                    }
                }
                Event::Done { id, nbytes, micros } => {
                    st.task_ended(id);
                    finished.push(TaskDone { id, nbytes, micros });
                }
                Event::Failed(msg, id) => {
                    st.task_ended(id);
                    failures.push(msg);
                }
            }
            if stop.is_some() {
                break;
            }
            next = rx.try_recv().ok();
        }
        // One frame of finished tasks per wake-up: the batch the scheduler handles at once.
        // Metrics when bytes moved, and with every heartbeat (memory changes all the time).
        if fetched_bytes != reported_fetched || heartbeat {
            reported_fetched = fetched_bytes;
            let u = store.usage();
            let m = FromWorker::Metrics {
                bytes_fetched: fetched_bytes,
                managed: u.managed,
                spilled: u.spilled,
                rss: u.rss,
                // Measured over heartbeat intervals, not the bursts between transfers.
                cpu: if heartbeat {
                    cpu_meter.sample()
                } else {
                    cpu_meter.last()
                },
            };
            write_frame(&mut w, &scheduler, &encode(&m)?, &[]).await?;
        }
        if !finished.is_empty() && !started.is_empty() {
            // A task that also finished in this batch needs no `Started`: `Finished` says
            // more (tiny tasks would otherwise cost two reports each).
            let done: FxHashSet<u64> = finished.iter().map(|d| d.id).collect();
            started.retain(|id| !done.contains(id));
        }
        if !started.is_empty() {
            let m = encode(&FromWorker::Started(started))?;
            write_frame(&mut w, &scheduler, &m, &[]).await?;
        }
        if !finished.is_empty() {
            write_frame(
                &mut w,
                &scheduler,
                &encode(&FromWorker::Finished(finished))?,
                &[],
            )
            .await?;
        }
        for f in failures.into_iter().chain(steals) {
            write_frame(&mut w, &scheduler, &encode(&f)?, &[]).await?;
        }
        if heartbeat {
            write_frame(&mut w, &scheduler, &encode(&FromWorker::Heartbeat)?, &[]).await?;
        }
        if let Some(m) = pause_msg {
            write_frame(&mut w, &scheduler, &encode(&m)?, &[]).await?;
        }
        w.flush()
            .await
            .map_err(|e| DistError::io(format!("{scheduler}: sending"), e))?;
        if let Some(s) = stop {
            break s;
        }
    };
    {
        let mut q = lock(&pool.queue);
        q.1 = true;
    }
    pool.wake.notify_all();
    store.stop();
    let _ = spiller.join();
    if let Some(e) = store.take_spill_error() {
        tracing::error!(worker = %options.name, "gridflow worker {}: {e}", options.name);
    }
    outcome
}

struct WorkerState<O: Execute> {
    store: Store<O::Value>,
    /// Tasks waiting for fetched inputs: id → (task, inputs still missing).
    waiting: FxHashMap<u64, (Ready, usize)>,
    /// Missing input → tasks waiting for it.
    waiters: FxHashMap<u64, Vec<u64>>,
    fetching: FxHashSet<u64>,
    /// Inputs fetched from peers, with the number of local tasks still to read them.
    borrowed: FxHashMap<u64, u32>,
    /// Inputs of each queued or running task that were fetched (to drop after use).
    uses: FxHashMap<u64, Vec<u64>>,
    tx: UnboundedSender<Event<O::Value>>,
    pool: Arc<Pool>,
    sec: Security,
    /// Kept data connections to peers.
    peers: Arc<Connections>,
}

impl<O> WorkerState<O>
where
    O: Execute,
    O::Value: WireValue,
{
    fn compute(&mut self, tasks: Vec<ComputeTask>) {
        let mut wanted: FxHashMap<String, Vec<u64>> = FxHashMap::default();
        for t in tasks {
            let mut missing = 0;
            let mut fetched_inputs = Vec::new();
            {
                let store = &self.store;
                let mut seen = FxHashSet::default();
                for &i in &t.inputs {
                    if !seen.insert(i) {
                        continue;
                    }
                    let remote = t.who_has.iter().find(|l| l.id == i);
                    if let Some(loc) = remote {
                        fetched_inputs.push(i);
                        *self.borrowed.entry(i).or_default() += 1;
                        if !store.contains_key(&i) {
                            missing += 1;
                            self.waiters.entry(i).or_default().push(t.id);
                            if self.fetching.insert(i) {
                                wanted.entry(loc.address.clone()).or_default().push(i);
                            }
                        }
                    }
                }
            }
            self.uses.insert(t.id, fetched_inputs);
            let ready = Ready {
                id: t.id,
                payload: t.payload,
                inputs: t.inputs,
            };
            if missing == 0 {
                self.run(ready);
            } else {
                self.waiting.insert(t.id, (ready, missing));
            }
        }
        for (address, ids) in wanted {
            let tx = self.tx.clone();
            let sec = self.sec.clone();
            let peers = self.peers.clone();
            tokio::spawn(async move {
                match fetch_pooled::<O::Value>(&peers, &address, &ids, &sec).await {
                    Ok(values) => {
                        let _ = tx.send(Event::Fetched(values));
                    }
                    Err(e) => {
                        let _ = tx.send(Event::FetchFailed(
                            ids,
                            address.clone(),
                            format!("fetching inputs from {address}: {e}"),
                        ));
                    }
                }
            });
        }
    }

    fn run(&self, ready: Ready) {
        // Spilled inputs are read back by the spill thread, not by the task thread.
        self.store.prefetch(&ready.inputs);
        let mut q = lock(&self.pool.queue);
        q.0.insert(ready.id, ready);
        drop(q);
        self.pool.wake.notify_one();
    }

    fn fetched(&mut self, values: Vec<(u64, Arc<O::Value>)>) {
        let mut now_ready = Vec::new();
        {
            let store = &self.store;
            for (id, v) in values {
                self.fetching.remove(&id);
                store.insert(id, v);
                for t in self.waiters.remove(&id).unwrap_or_default() {
                    if let Some((_, missing)) = self.waiting.get_mut(&t) {
                        *missing -= 1;
                        if *missing == 0 {
                            now_ready.push(t);
                        }
                    }
                }
            }
        }
        for t in now_ready {
            if let Some((ready, _)) = self.waiting.remove(&t) {
                self.run(ready);
            }
        }
    }

    /// Inputs fetched for local tasks arrived. One that no local task wants any more (its
    /// tasks were handed back or stolen while it was on its way) is dropped, not kept
    /// where nothing would ever release it.
    fn fetched_inputs(&mut self, values: Vec<(u64, Arc<O::Value>)>) {
        let (wanted, unwanted): (Vec<_>, Vec<_>) = values
            .into_iter()
            .partition(|(id, _)| self.borrowed.contains_key(id));
        for (id, _) in unwanted {
            self.fetching.remove(&id);
            self.waiters.remove(&id);
        }
        self.fetched(wanted);
    }

    /// The worker pauses (short of memory): every task that has not started goes back to
    /// the scheduler, those queued for a thread and those still fetching their inputs
    /// (which would otherwise start here as soon as the inputs came, or sit in the queue
    /// of a paused worker). Returns their ids.
    fn hand_back_unstarted(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = {
            let mut q = lock(&self.pool.queue);
            std::mem::take(&mut q.0).into_keys().collect()
        };
        ids.extend(self.waiting.drain().map(|(id, _)| id));
        ids.sort_unstable();
        for &id in &ids {
            self.task_ended(id);
        }
        ids
    }

    /// Copies results from the peers holding them (a retiring worker's), to keep.
    fn replicate(&self, locations: Vec<Location>) {
        let mut by_holder: FxHashMap<String, Vec<u64>> = FxHashMap::default();
        for l in locations {
            by_holder.entry(l.address).or_default().push(l.id);
        }
        for (address, ids) in by_holder {
            let tx = self.tx.clone();
            let sec = self.sec.clone();
            tokio::spawn(async move {
                let ev = match fetch::<O::Value>(&address, &ids, &sec).await {
                    Ok(values) => Event::Replicated(values, Vec::new()),
                    Err(e) => {
                        tracing::warn!("gridflow worker: copying results from {address}: {e}");
                        Event::Replicated(Vec::new(), ids)
                    }
                };
                let _ = tx.send(ev);
            });
        }
    }

    /// Inputs that could not be fetched: the tasks waiting for them are dropped and
    /// returned.
    fn fetch_failed(&mut self, ids: &[u64]) -> Vec<u64> {
        let mut failed = Vec::new();
        for id in ids {
            self.fetching.remove(id);
            for t in self.waiters.remove(id).unwrap_or_default() {
                if self.waiting.remove(&t).is_some() {
                    failed.push(t);
                }
            }
        }
        failed
    }

    /// Work stealing: drops task `id` if it has not started (queued for a thread or
    /// waiting for inputs) and says whether it did.
    fn give_back(&mut self, id: u64) -> bool {
        let queued = lock(&self.pool.queue).0.remove(&id).is_some();
        let waiting = !queued && self.waiting.remove(&id).is_some();
        if queued || waiting {
            self.task_ended(id);
        }
        queued || waiting
    }

    /// A task ended: drop the fetched copies of inputs no local task still needs.
    fn task_ended(&mut self, id: u64) {
        let Some(inputs) = self.uses.remove(&id) else {
            return;
        };
        for i in inputs {
            if let Some(n) = self.borrowed.get_mut(&i) {
                *n -= 1;
                if *n == 0 {
                    self.borrowed.remove(&i);
                    self.store.remove(&i);
                }
            }
        }
    }
}

/// Records the task a thread runs (id + 1; 0: idle) at its offset of the running file.
fn mark_running(running: Option<&(Arc<std::fs::File>, u64)>, id: Option<u64>) {
    use std::os::unix::fs::FileExt;
    if let Some((f, offset)) = running {
        let v = id.map_or(0, |i| i.wrapping_add(1));
        let _ = f.write_at(&v.to_le_bytes(), *offset);
    }
}

fn compute_thread<O>(
    pool: &Pool,
    store: &Store<O::Value>,
    tx: &UnboundedSender<Event<O::Value>>,
    running: Option<&(Arc<std::fs::File>, u64)>,
) where
    O: Execute,
    O::Value: WireValue,
{
    // Whether the running file names a task (cleared only before this thread waits, not
    // between back-to-back tasks: one write per task instead of two).
    let mut marked = false;
    loop {
        // Paused (memory above the pause threshold): no new task starts until spilling
        // catches up.
        store.wait_while_paused();
        let task = {
            let mut q = lock(&pool.queue);
            loop {
                if q.1 {
                    return;
                }
                if let Some((_, t)) = q.0.pop_first() {
                    mark_running(running, Some(t.id));
                    marked = true;
                    let _ = tx.send(Event::Started(t.id));
                    break t;
                }
                if std::mem::take(&mut marked) {
                    mark_running(running, None);
                }
                q = pool
                    .wake
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        let expr: Expr<O> = match crate::frame::decode_task(&task.payload) {
            Ok(e) => e,
            Err(e) => {
                let msg = FromWorker::Failed {
                    id: task.id,
                    op: "decode".into(),
                    message: format!(
                        "undecodable task payload ({e}); are the client and worker the same gridflow version?"
                    ),
                    panicked: false,
                };
                if tx.send(Event::Failed(msg, task.id)).is_err() {
                    return;
                }
                continue;
            }
        };
        // Spilled inputs are read back here (rarely: the least recently used are spilled).
        let args: Result<Option<Vec<Arc<O::Value>>>, String> = task
            .inputs
            .iter()
            .map(|i| store.get(i))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.into_iter().collect::<Option<Vec<_>>>());
        let key = Key::new("task", &[]);
        let started = std::time::Instant::now();
        let outcome = match args {
            Ok(Some(args)) => run_task(&expr, &args, &key),
            Ok(None) => Err(gridflow_runtime::RuntimeError::TaskFailed {
                key,
                op: expr.label(),
                message: "an input is missing on the worker (released too early)".into(),
            }),
            Err(message) => Err(gridflow_runtime::RuntimeError::TaskFailed {
                key,
                op: expr.label(),
                message,
            }),
        };
        let ev = match outcome {
            Ok(v) => {
                let nbytes = O::nbytes(&v) as u64;
                store.insert(task.id, v);
                Event::Done {
                    id: task.id,
                    nbytes,
                    micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                }
            }
            Err(e) => {
                let (op, message, panicked) = match e {
                    gridflow_runtime::RuntimeError::TaskFailed { op, message, .. } => {
                        (op, message, false)
                    }
                    gridflow_runtime::RuntimeError::TaskPanicked { op, message, .. } => {
                        (op, message, true)
                    }
                    other => (expr.label(), other.to_string(), false),
                };
                Event::Failed(
                    FromWorker::Failed {
                        id: task.id,
                        op,
                        message,
                        panicked,
                    },
                    task.id,
                )
            }
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// Serves held values to peers and clients.
async fn data_server<V: WireValue + Send + Sync + 'static>(
    listener: TcpListener,
    store: Store<V>,
    sec: Security,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let store = store.clone();
        let sec = sec.clone();
        tokio::spawn(async move {
            let peer = peer.to_string();
            let served = async {
                let s = crate::auth::accept(stream, &peer, &sec).await?;
                serve_data(s, &peer, &store).await
            };
            match served.await {
                // A peer that exits drops the connections it kept for later fetches: not
                // worth a warning.
                Err(DistError::Io { source, .. })
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    tracing::debug!(%peer, "data connection from {peer} reset: {source}");
                }
                Err(e) => {
                    tracing::warn!(%peer, "gridflow worker: data connection from {peer}: {e}");
                }
                Ok(()) => {}
            }
        });
    }
}

async fn serve_data<V: WireValue + Send + Sync + 'static>(
    stream: Stream,
    peer: &str,
    store: &Store<V>,
) -> Result<()> {
    let (mut r, w) = tokio::io::split(stream);
    let mut w = BufWriter::new(w);
    while let Some(f) = read_frame(&mut r, peer).await? {
        let ids = match f.decode(peer)? {
            DataRequest::Get(ids) => ids,
            DataRequest::Put { id, header } => {
                let reply = match V::from_parts(&header, f.payload) {
                    Ok(v) => {
                        store.insert(id, Arc::new(v));
                        DataReply::Stored { id }
                    }
                    Err(message) => DataReply::Refused { id, message },
                };
                write_frame(&mut w, peer, &encode(&reply)?, &[]).await?;
                w.flush()
                    .await
                    .map_err(|e| DistError::io(format!("{peer}: sending data"), e))?;
                continue;
            }
        };
        for id in ids {
            // A spilled value is read back on the blocking pool, off the connection handlers.
            let st = store.clone();
            let v = tokio::task::spawn_blocking(move || st.get(&id))
                .await
                .map_err(|e| DistError::Cluster(format!("serving task {id}: {e}")))?
                .map_err(|e| DistError::Cluster(format!("serving task {id}: {e}")))?;
            match v {
                Some(v) => {
                    let mut header = Vec::new();
                    v.write_header(&mut header);
                    let msg = encode(&DataReply::Value { id, header })?;
                    write_frame(&mut w, peer, &msg, &v.body()).await?;
                }
                None => {
                    write_frame(&mut w, peer, &encode(&DataReply::Missing { id })?, &[]).await?;
                }
            }
        }
        w.flush()
            .await
            .map_err(|e| DistError::io(format!("{peer}: sending data"), e))?;
    }
    Ok(())
}

/// Sends values to a worker's data port to be stored under their global ids (scatter).
pub(crate) async fn put<V: WireValue>(
    address: &str,
    values: &[(u64, Arc<V>)],
    sec: &Security,
) -> Result<()> {
    let stream = connect(address, sec).await?;
    let (mut r, w) = tokio::io::split(stream);
    let mut w = BufWriter::new(w);
    for (id, v) in values {
        let mut header = Vec::new();
        v.write_header(&mut header);
        let msg = encode(&DataRequest::Put { id: *id, header })?;
        write_frame(&mut w, address, &msg, &v.body()).await?;
    }
    w.flush()
        .await
        .map_err(|e| DistError::io(format!("{address}: sending"), e))?;
    for (want, _) in values {
        let Some(f) = read_frame(&mut r, address).await? else {
            return Err(DistError::Closed {
                peer: address.to_owned(),
                during: "while storing scattered data".into(),
            });
        };
        match f.decode::<DataReply>(address)? {
            DataReply::Stored { id } if id == *want => {}
            DataReply::Refused { id, message } => {
                return Err(DistError::Cluster(format!(
                    "worker {address} refused scattered value {id}: {message}"
                )));
            }
            other => {
                return Err(DistError::protocol(
                    address,
                    format!("unexpected answer to storing {want}: {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Open data connections to peers, kept for the next fetch from the same peer: a new
/// connection (and its authentication handshake) per fetch made a reduction over tiny tasks
/// pay for both on every step.
#[derive(Default)]
pub(crate) struct Connections(Mutex<FxHashMap<String, Vec<Stream>>>);

impl Connections {
    /// Idle connections kept per peer.
    const KEEP: usize = 4;

    fn take(&self, address: &str) -> Option<Stream> {
        lock(&self.0).get_mut(address).and_then(Vec::pop)
    }

    fn give(&self, address: &str, s: Stream) {
        let mut m = lock(&self.0);
        let idle = m.entry(address.to_owned()).or_default();
        if idle.len() < Self::KEEP {
            idle.push(s);
        }
    }
}

/// Fetches values by id from a worker's data port on a kept connection (one that fails is
/// dropped, and the fetch tried once on a new one: the peer may have closed it).
pub(crate) async fn fetch_pooled<V: WireValue>(
    pool: &Connections,
    address: &str,
    ids: &[u64],
    sec: &Security,
) -> Result<Vec<(u64, Arc<V>)>> {
    if let Some(s) = pool.take(address)
        && let Ok((values, s)) = fetch_on(s, address, ids).await
    {
        pool.give(address, s);
        return Ok(values);
    }
    let s = connect(address, sec).await?;
    let (values, s) = fetch_on(s, address, ids).await?;
    pool.give(address, s);
    Ok(values)
}

/// Fetches values by id from a worker's data port.
pub(crate) async fn fetch<V: WireValue>(
    address: &str,
    ids: &[u64],
    sec: &Security,
) -> Result<Vec<(u64, Arc<V>)>> {
    let stream = connect(address, sec).await?;
    Ok(fetch_on(stream, address, ids).await?.0)
}

/// Asks for `ids` on an open data connection; returns the values and the connection.
async fn fetch_on<V: WireValue>(
    stream: Stream,
    address: &str,
    ids: &[u64],
) -> Result<(Vec<(u64, Arc<V>)>, Stream)> {
    let (mut r, w) = tokio::io::split(stream);
    let mut w = BufWriter::new(w);
    write_frame(
        &mut w,
        address,
        &encode(&DataRequest::Get(ids.to_vec()))?,
        &[],
    )
    .await?;
    w.flush()
        .await
        .map_err(|e| DistError::io(format!("{address}: sending"), e))?;
    let mut out = Vec::with_capacity(ids.len());
    for &want in ids {
        let Some(f) = read_frame(&mut r, address).await? else {
            return Err(DistError::Closed {
                peer: address.to_owned(),
                during: "while sending data".into(),
            });
        };
        match f.decode::<DataReply>(address)? {
            DataReply::Value { id, header } if id == want => {
                let v = V::from_parts(&header, f.payload).map_err(|e| {
                    DistError::protocol(address, format!("value of task {id}: {e}"))
                })?;
                out.push((id, Arc::new(v)));
            }
            DataReply::Value { id, .. } => {
                return Err(DistError::protocol(
                    address,
                    format!("sent task {id} when asked for {want}"),
                ));
            }
            DataReply::Missing { id } => {
                return Err(DistError::Cluster(format!(
                    "worker {address} does not hold the result of task {id}"
                )));
            }
            other => {
                return Err(DistError::protocol(
                    address,
                    format!("unexpected answer to fetching {want}: {other:?}"),
                ));
            }
        }
    }
    Ok((out, r.unsplit(w.into_inner())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gridflow_runtime::conformance::{TestOp, buf};

    fn state() -> WorkerState<TestOp> {
        let (tx, _rx) = unbounded_channel();
        WorkerState {
            store: crate::memory::DataStore::new(
                0,
                None,
                |v: &Vec<u8>| v.len(),
                crate::memory::Thresholds::default(),
            )
            .unwrap(),
            waiting: FxHashMap::default(),
            waiters: FxHashMap::default(),
            fetching: FxHashSet::default(),
            borrowed: FxHashMap::default(),
            uses: FxHashMap::default(),
            tx,
            pool: Arc::new(Pool {
                queue: Mutex::new((std::collections::BTreeMap::new(), false)),
                wake: Condvar::new(),
            }),
            sec: Security::none(),
            peers: Arc::default(),
        }
    }

    fn task(id: u64, inputs: &[u64]) -> ComputeTask {
        ComputeTask {
            id,
            payload: Vec::new(),
            inputs: inputs.to_vec(),
            // Every input is on a peer that never answers in time.
            who_has: inputs
                .iter()
                .map(|&i| Location {
                    id: i,
                    address: "127.0.0.1:1".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn pausing_hands_back_tasks_still_fetching_and_drops_their_late_inputs() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let mut st = state();
        // 1 is ready (queued for a thread); 2 and 3 wait for input 10, 3 also for 11.
        st.compute(vec![task(1, &[]), task(2, &[10]), task(3, &[10, 11])]);
        assert_eq!(lock(&st.pool.queue).0.len(), 1);
        assert_eq!(st.waiting.len(), 2);

        assert_eq!(st.hand_back_unstarted(), vec![1, 2, 3]);
        assert!(lock(&st.pool.queue).0.is_empty());
        assert!(st.waiting.is_empty());
        assert!(st.borrowed.is_empty(), "{:?}", st.borrowed);

        // The inputs arrive after all: nothing here wants them, so they are not kept, and
        // no handed-back task starts.
        st.fetched_inputs(vec![(10, Arc::new(buf(5, 8))), (11, Arc::new(buf(6, 8)))]);
        assert!(!st.store.contains_key(&10) && !st.store.contains_key(&11));
        assert!(lock(&st.pool.queue).0.is_empty());
        assert!(st.fetching.is_empty() && st.waiters.is_empty());

        // A task still wanting an input keeps it and runs once it arrives.
        st.compute(vec![task(4, &[12])]);
        st.fetched_inputs(vec![(12, Arc::new(buf(7, 8)))]);
        assert!(st.store.contains_key(&12));
        assert_eq!(
            lock(&st.pool.queue).0.keys().copied().collect::<Vec<_>>(),
            vec![4]
        );
    }
}
