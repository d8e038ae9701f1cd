//! The in-process executor: the calling thread or a local thread pool, driving a
//! [`SchedulingState`].

use crate::executor::{Plan, Progress, ProgressFn, RunReport, TaskObserverFn, TaskRun};
use crate::state::{Admission, SchedulingState};
use crate::{Execute, Executor, Result, RuntimeError};
use gridflow_graph::{Expr, Graph, Key, Runnable};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Runs graphs in this process.
///
/// ```
/// use gridflow_runtime::LocalExecutor;
/// let s = LocalExecutor::threads(2).with_memory_limit(512 << 20);
/// assert_eq!(s.thread_count(), 2);
/// ```
#[derive(Clone, Default)]
pub enum LocalExecutor {
    /// One task at a time on the calling thread, in priority order (for debugging).
    Synchronous,
    /// A local thread pool.
    Threads {
        /// Worker threads (Dask's `num_workers`).
        threads: usize,
        /// Bytes of held results above which no new source task starts.
        memory_limit: Option<usize>,
        /// Called after each finished task.
        progress: Option<ProgressFn>,
        /// Told of every task run (for a dashboard).
        observer: Option<TaskObserverFn>,
    },
    /// A thread per core, no memory limit.
    #[default]
    Default,
}

impl std::fmt::Debug for LocalExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalExecutor::Synchronous => f.write_str("Synchronous"),
            LocalExecutor::Default => write!(f, "Threads({})", default_threads()),
            LocalExecutor::Threads {
                threads,
                memory_limit,
                ..
            } => {
                write!(f, "Threads({threads}, memory_limit={memory_limit:?})")
            }
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl LocalExecutor {
    /// A pool of `threads` threads (at least one) and no memory limit.
    pub fn threads(threads: usize) -> LocalExecutor {
        LocalExecutor::Threads {
            threads: threads.max(1),
            memory_limit: None,
            progress: None,
            observer: None,
        }
    }

    /// Sets the memory budget in bytes (turns `Default`/`Synchronous` into a thread pool
    /// of the same size).
    pub fn with_memory_limit(self, bytes: usize) -> LocalExecutor {
        let observer = self.observer();
        let (threads, progress) = self.parts();
        LocalExecutor::Threads {
            threads,
            memory_limit: Some(bytes),
            progress,
            observer,
        }
    }

    /// Sets a callback called after every finished task.
    pub fn with_progress(self, f: impl Fn(Progress) + Send + Sync + 'static) -> LocalExecutor {
        let memory_limit = self.memory_limit();
        let observer = self.observer();
        let (threads, _) = self.parts();
        LocalExecutor::Threads {
            threads,
            memory_limit,
            progress: Some(Arc::new(f)),
            observer,
        }
    }

    /// Tells `observer` of every task run (when it ran, on which thread), as a dashboard
    /// needs; without one, nothing is timed.
    pub fn with_observer(self, observer: TaskObserverFn) -> LocalExecutor {
        let memory_limit = self.memory_limit();
        let (threads, progress) = self.parts();
        LocalExecutor::Threads {
            threads,
            memory_limit,
            progress,
            observer: Some(observer),
        }
    }

    fn observer(&self) -> Option<TaskObserverFn> {
        match self {
            LocalExecutor::Threads { observer, .. } => observer.clone(),
            _ => None,
        }
    }

    fn parts(self) -> (usize, Option<ProgressFn>) {
        match self {
            LocalExecutor::Synchronous => (1, None),
            LocalExecutor::Default => (default_threads(), None),
            LocalExecutor::Threads {
                threads, progress, ..
            } => (threads, progress),
        }
    }

    /// Number of threads that run tasks.
    pub fn thread_count(&self) -> usize {
        match self {
            LocalExecutor::Synchronous => 1,
            LocalExecutor::Default => default_threads(),
            LocalExecutor::Threads { threads, .. } => *threads,
        }
    }

    /// The memory budget, if any.
    pub fn memory_limit(&self) -> Option<usize> {
        match self {
            LocalExecutor::Threads { memory_limit, .. } => *memory_limit,
            _ => None,
        }
    }

    /// Optimizes `graph` for `outputs` (cull + fuse), orders it and runs it, returning the
    /// outputs' values in the order asked.
    pub fn run<O: Execute>(&self, graph: &Graph<O>, outputs: &[Key]) -> Result<Vec<Arc<O::Value>>> {
        Executor::run(self, graph, outputs)
    }

    /// Like [`LocalExecutor::run`], also returning a [`RunReport`].
    pub fn run_with_report<O: Execute>(
        &self,
        graph: &Graph<O>,
        outputs: &[Key],
    ) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
        Executor::run_with_report(self, graph, outputs)
    }

    /// Runs a graph compiled beforehand (a [`gridflow_graph::Compiled`] graph, or a
    /// [`gridflow_graph::Program`] from an [`gridflow_graph::Indexed`] graph that needed no
    /// hashing), returning the values of its outputs in their order. The report's
    /// `optimize_time` is zero: compiling happened before.
    pub fn run_compiled_with_report<O: Execute, P: Runnable<O> + Sync>(
        &self,
        compiled: P,
    ) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
        self.run_plan(Plan::new(&compiled))
    }

    fn progress(&self) -> Option<ProgressFn> {
        match self {
            LocalExecutor::Threads { progress, .. } => progress.clone(),
            _ => None,
        }
    }
}

impl<O: Execute> Executor<O> for LocalExecutor {
    fn run_plan(&self, plan: Plan<'_, O>) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
        let start = Instant::now();
        let tasks = plan.tasks;
        let threads = self.thread_count().max(1).min(tasks.len().max(1));
        // estimates given with the plan, else those the compiled plan records (lowering)
        let peak_bytes = plan.peak_bytes.map(<[u64]>::to_vec).or_else(|| {
            let p: Vec<u64> = (0..tasks.len())
                .map(|i| tasks.peak_bytes(i).unwrap_or(0))
                .collect();
            p.iter().any(|&b| b > 0).then_some(p)
        });
        let admission = Admission {
            limit: self.memory_limit(),
            peak_bytes,
        };
        let mut pool = Pool::new(tasks, admission, self.progress());
        pool.observer = self.observer();
        if let Some(o) = &pool.observer {
            let n = tasks.len();
            o.begin(&mut (0..n).map(|i| tasks.key(i)), threads);
        }
        if threads == 1 || matches!(self, LocalExecutor::Synchronous) {
            pool.work(tasks, 0);
        } else {
            std::thread::scope(|s| {
                for t in 1..threads {
                    let pool = &pool;
                    s.spawn(move || pool.work(tasks, t));
                }
                pool.work(tasks, 0);
            });
        }
        if let Some(o) = &pool.observer {
            o.end();
        }
        let mut inner = pool.into_inner();
        if let Some(e) = inner.error.take() {
            return Err(e);
        }
        let mut values = Vec::with_capacity(tasks.outputs().len());
        for &id in tasks.outputs() {
            let v = inner
                .results
                .get(id as usize)
                .cloned()
                .flatten()
                .ok_or_else(|| {
                    let key = (tasks.len() > id as usize).then(|| tasks.key(id as usize).clone());
                    gridflow_graph::GraphError::MissingOutput(
                        key.unwrap_or_else(|| Key::new("?", &[])),
                    )
                })?;
            values.push(v);
        }
        let elapsed = start.elapsed();
        let report = RunReport {
            tasks_before: tasks.tasks_before(),
            tasks_after: tasks.len(),
            peak_held_bytes: inner.state.peak_bytes(),
            threads,
            elapsed,
            optimize_time: Duration::ZERO,
            execute_time: elapsed,
        };
        Ok((values, report))
    }

    fn thread_count(&self) -> usize {
        LocalExecutor::thread_count(self)
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

/// What the pool's threads share under one lock: the scheduling state and the values.
struct Inner<V> {
    state: SchedulingState,
    results: Vec<Option<Arc<V>>>,
    idle: usize,
    error: Option<RuntimeError>,
}

/// The thread pool's shared state: the policy lives in [`SchedulingState`]; this adds the
/// values, the lock and the wake-ups.
struct Pool<V> {
    inner: Mutex<Inner<V>>,
    wake: Condvar,
    progress: Option<ProgressFn>,
    observer: Option<TaskObserverFn>,
    total: usize,
}

impl<V: Send + Sync + 'static> Pool<V> {
    fn new<O: Execute<Value = V>>(
        plan: &(dyn Runnable<O> + Sync),
        admission: Admission,
        progress: Option<ProgressFn>,
    ) -> Pool<V> {
        let n = plan.len();
        Pool {
            inner: Mutex::new(Inner {
                state: SchedulingState::new(plan, admission),
                results: (0..n).map(|_| None).collect(),
                idle: 0,
                error: None,
            }),
            wake: Condvar::new(),
            progress,
            observer: None,
            total: n,
        }
    }

    fn into_inner(self) -> Inner<V> {
        match self.inner.into_inner() {
            Ok(i) => i,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // Kernels run outside the lock and panics are caught, so poisoning cannot happen;
        // recover the guard anyway rather than panic.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn work<O: Execute<Value = V>>(&self, plan: &(dyn Runnable<O> + Sync), thread: usize) {
        let mut g = self.lock();
        loop {
            if g.error.is_some() || g.state.is_complete() {
                self.wake.notify_all();
                return;
            }
            let Some(id) = g.state.next_task() else {
                g.idle += 1;
                g = self
                    .wake
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                g.idle -= 1;
                continue;
            };
            let idx = id as usize;
            let args: Vec<Arc<V>> = plan
                .inputs(idx)
                .iter()
                .filter_map(|&i| g.results[i as usize].clone())
                .collect();
            drop(g);

            let began = self.observer.as_ref().map(|_| Instant::now());
            let outcome = if args.len() == plan.inputs(idx).len() {
                run_expr(&plan.expr(idx), &args, plan.key(idx))
            } else {
                Err(RuntimeError::TaskFailed {
                    key: plan.key(idx).clone(),
                    op: plan.expr(idx).label(),
                    message: "an input was released before use (scheduler bug)".into(),
                })
            };
            drop(args);
            if let (Some(o), Some(start), Ok(value)) = (&self.observer, began, &outcome) {
                o.finished(&TaskRun {
                    thread,
                    key: plan.key(idx),
                    start,
                    stop: Instant::now(),
                    nbytes: O::nbytes(value),
                });
            }

            g = self.lock();
            match outcome {
                Err(e) => {
                    g.state.abandoned(id);
                    if g.error.is_none() {
                        g.error = Some(e);
                    }
                    self.wake.notify_all();
                    return;
                }
                Ok(value) => {
                    let inner = &mut *g;
                    let results = &mut inner.results;
                    let f = inner.state.finished(plan, id, O::nbytes(&value), |i| {
                        results[i as usize] = None;
                    });
                    if f.keep {
                        results[idx] = Some(value);
                    }
                    let complete = inner.state.is_complete();
                    if g.idle > 0 && (f.newly_ready > 1 || complete || g.state.has_memory_limit()) {
                        self.wake.notify_all();
                    } else if g.idle > 0 && f.newly_ready == 1 {
                        self.wake.notify_one();
                    }
                    if let Some(p) = &self.progress {
                        let done = g.state.done();
                        drop(g);
                        p(Progress {
                            done,
                            total: self.total,
                        });
                        g = self.lock();
                    }
                }
            }
        }
    }
}

pub(crate) fn run_expr<O: Execute>(
    expr: &Expr<O>,
    args: &[Arc<O::Value>],
    key: &Key,
) -> Result<Arc<O::Value>> {
    match expr {
        Expr::Input(i) => args
            .get(*i)
            .cloned()
            .ok_or_else(|| RuntimeError::TaskFailed {
                key: key.clone(),
                op: "alias".into(),
                message: format!("input {i} missing"),
            }),
        Expr::Call { op, args: sub } => {
            if let Some(r) = O::execute_fused(expr, args) {
                return r.map(Arc::new).map_err(|e| RuntimeError::TaskFailed {
                    key: key.clone(),
                    op: expr.label(),
                    message: e.to_string(),
                });
            }
            let vals: Vec<Arc<O::Value>> = sub
                .iter()
                .map(|e| run_expr(e, args, key))
                .collect::<Result<_>>()?;
            match catch_unwind(AssertUnwindSafe(move || op.execute_owned(vals))) {
                Ok(Ok(v)) => Ok(Arc::new(v)),
                Ok(Err(e)) => Err(RuntimeError::TaskFailed {
                    key: key.clone(),
                    op: op.label(),
                    message: e.to_string(),
                }),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(RuntimeError::TaskPanicked {
                        key: key.clone(),
                        op: op.label(),
                        message,
                    })
                }
            }
        }
    }
}
