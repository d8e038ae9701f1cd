//! The synchronous and thread-pool executors.

use crate::{Execute, Result, RuntimeError};
use gridflow_graph::{Expr, Graph, Key, Runnable};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How to run a graph.
///
/// ```
/// use gridflow_runtime::Scheduler;
/// let s = Scheduler::threads(2).with_memory_limit(512 << 20);
/// assert_eq!(s.thread_count(), 2);
/// ```
#[derive(Clone, Default)]
pub enum Scheduler {
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
    },
    /// A thread per core, no memory limit.
    #[default]
    Default,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduler::Synchronous => f.write_str("Synchronous"),
            Scheduler::Default => write!(f, "Threads({})", default_threads()),
            Scheduler::Threads {
                threads,
                memory_limit,
                ..
            } => {
                write!(f, "Threads({threads}, memory_limit={memory_limit:?})")
            }
        }
    }
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Progress of a run, passed to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Tasks finished.
    pub done: usize,
    /// Tasks in the optimized graph.
    pub total: usize,
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// Tasks in the graph handed to the executor.
    pub tasks_before: usize,
    /// Tasks after culling and fusion (what actually ran).
    pub tasks_after: usize,
    /// Most bytes of task results held in memory at once.
    pub peak_held_bytes: usize,
    /// Threads used.
    pub threads: usize,
    /// Wall time, all included.
    pub elapsed: Duration,
    /// Of which: culling, fusion and ordering.
    pub optimize_time: Duration,
    /// Of which: running the tasks.
    pub execute_time: Duration,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Scheduler {
    /// A pool of `threads` threads (at least one) and no memory limit.
    pub fn threads(threads: usize) -> Scheduler {
        Scheduler::Threads {
            threads: threads.max(1),
            memory_limit: None,
            progress: None,
        }
    }

    /// Sets the memory budget in bytes (turns `Default`/`Synchronous` into a thread pool
    /// of the same size).
    pub fn with_memory_limit(self, bytes: usize) -> Scheduler {
        let (threads, progress) = self.parts();
        Scheduler::Threads {
            threads,
            memory_limit: Some(bytes),
            progress,
        }
    }

    /// Sets a callback called after every finished task.
    pub fn with_progress(self, f: impl Fn(Progress) + Send + Sync + 'static) -> Scheduler {
        let memory_limit = self.memory_limit();
        let (threads, _) = self.parts();
        Scheduler::Threads {
            threads,
            memory_limit,
            progress: Some(Arc::new(f)),
        }
    }

    fn parts(self) -> (usize, Option<ProgressFn>) {
        match self {
            Scheduler::Synchronous => (1, None),
            Scheduler::Default => (default_threads(), None),
            Scheduler::Threads {
                threads, progress, ..
            } => (threads, progress),
        }
    }

    /// Number of threads that run tasks.
    pub fn thread_count(&self) -> usize {
        match self {
            Scheduler::Synchronous => 1,
            Scheduler::Default => default_threads(),
            Scheduler::Threads { threads, .. } => *threads,
        }
    }

    /// The memory budget, if any.
    pub fn memory_limit(&self) -> Option<usize> {
        match self {
            Scheduler::Threads { memory_limit, .. } => *memory_limit,
            _ => None,
        }
    }

    /// Optimizes `graph` for `outputs` (cull + fuse), orders it and runs it, returning the
    /// outputs' values in the order asked.
    pub fn run<O: Execute>(&self, graph: &Graph<O>, outputs: &[Key]) -> Result<Vec<Arc<O::Value>>> {
        self.run_with_report(graph, outputs).map(|(v, _)| v)
    }

    /// Like [`Scheduler::run`], also returning a [`RunReport`].
    pub fn run_with_report<O: Execute>(
        &self,
        graph: &Graph<O>,
        outputs: &[Key],
    ) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
        let start = Instant::now();
        let program = graph.indexed(outputs)?.program(true)?;
        let optimize_time = start.elapsed();
        let (values, mut report) = self.run_compiled_with_report(program)?;
        report.optimize_time += optimize_time;
        report.elapsed += optimize_time;
        Ok((values, report))
    }

    /// Runs a graph compiled beforehand (a [`gridflow_graph::Compiled`] graph, or a
    /// [`gridflow_graph::Program`] from an [`gridflow_graph::Indexed`] graph that needed no
    /// hashing), returning the values of its outputs in their order. The report's
    /// `optimize_time` is zero: compiling happened before.
    pub fn run_compiled_with_report<O: Execute, P: Runnable<O> + Sync>(
        &self,
        compiled: P,
    ) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
        let start = Instant::now();
        let plan = Plan::new(compiled);
        let threads = self.thread_count().max(1).min(plan.len().max(1));
        let progress = match self {
            Scheduler::Threads { progress, .. } => progress.clone(),
            _ => None,
        };
        let state = State::new(&plan, self.memory_limit(), progress);
        if threads == 1 || matches!(self, Scheduler::Synchronous) {
            state.work(&plan);
        } else {
            std::thread::scope(|s| {
                for _ in 1..threads {
                    s.spawn(|| state.work(&plan));
                }
                state.work(&plan);
            });
        }
        let mut inner = state.into_inner();
        if let Some(e) = inner.error.take() {
            return Err(e);
        }
        let mut values = Vec::with_capacity(plan.c.outputs().len());
        for &id in plan.c.outputs() {
            let v = inner
                .results
                .get(id as usize)
                .cloned()
                .flatten()
                .ok_or_else(|| {
                    let key = (plan.len() > id as usize).then(|| plan.c.key(id as usize).clone());
                    gridflow_graph::GraphError::MissingOutput(
                        key.unwrap_or_else(|| Key::new("?", &[])),
                    )
                })?;
            values.push(v);
        }
        let elapsed = start.elapsed();
        let report = RunReport {
            tasks_before: plan.c.tasks_before(),
            tasks_after: plan.len(),
            peak_held_bytes: inner.peak_bytes,
            threads,
            elapsed,
            optimize_time: Duration::ZERO,
            execute_time: elapsed,
        };
        Ok((values, report))
    }
}

/// The compiled graph plus what the scheduler derives from it.
struct Plan<O, P> {
    c: P,
    is_source: Vec<bool>,
    /// Each task's estimated peak bytes from the plan (0: unknown).
    peak: Vec<usize>,
    pinned: Vec<bool>,
    op: PhantomData<fn() -> O>,
}

impl<O: Execute, P: Runnable<O>> Plan<O, P> {
    fn new(c: P) -> Plan<O, P> {
        let is_source = (0..c.len()).map(|i| c.inputs(i).is_empty()).collect();
        let mut pinned = vec![false; c.len()];
        for &o in c.outputs() {
            pinned[o as usize] = true;
        }
        let peak = (0..c.len())
            .map(|i| {
                c.peak_bytes(i)
                    .map_or(0, |b| usize::try_from(b).unwrap_or(usize::MAX))
            })
            .collect();
        Plan {
            c,
            is_source,
            peak,
            pinned,
            op: PhantomData,
        }
    }

    fn len(&self) -> usize {
        self.c.len()
    }
}

struct Inner<V> {
    ready_sources: BinaryHeap<Reverse<u32>>,
    ready_other: BinaryHeap<Reverse<u32>>,
    waiting: Vec<u32>,
    readers_left: Vec<u32>,
    results: Vec<Option<Arc<V>>>,
    bytes: Vec<usize>,
    held_bytes: usize,
    peak_bytes: usize,
    /// Estimated peak bytes of the tasks running now.
    running_bytes: usize,
    running: usize,
    idle: usize,
    done: usize,
    error: Option<RuntimeError>,
}

struct State<V> {
    inner: Mutex<Inner<V>>,
    wake: Condvar,
    memory_limit: Option<usize>,
    progress: Option<ProgressFn>,
    total: usize,
}

impl<V: Send + Sync + 'static> State<V> {
    fn new<O: Execute<Value = V>>(
        plan: &Plan<O, impl Runnable<O>>,
        memory_limit: Option<usize>,
        progress: Option<ProgressFn>,
    ) -> State<V> {
        let n = plan.len();
        let mut ready_sources = BinaryHeap::new();
        let mut ready_other = BinaryHeap::new();
        let waiting: Vec<u32> = (0..n)
            .map(|i| plan.c.distinct_inputs(i).len() as u32)
            .collect();
        for (i, w) in waiting.iter().enumerate() {
            if *w == 0 {
                if plan.is_source[i] {
                    ready_sources.push(Reverse(i as u32));
                } else {
                    ready_other.push(Reverse(i as u32));
                }
            }
        }
        let readers_left = (0..n)
            .map(|i| plan.c.dependents(i).len() as u32 + u32::from(plan.pinned[i]))
            .collect();
        State {
            inner: Mutex::new(Inner {
                ready_sources,
                ready_other,
                waiting,
                readers_left,
                results: (0..n).map(|_| None).collect(),
                bytes: vec![0; n],
                held_bytes: 0,
                peak_bytes: 0,
                running_bytes: 0,
                running: 0,
                idle: 0,
                done: 0,
                error: None,
            }),
            wake: Condvar::new(),
            memory_limit,
            progress,
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

    /// Picks the next task: lowest priority first, but no new source while the results held,
    /// the running tasks' estimated peaks and the source's own estimate exceed the budget
    /// (unless nothing runs: the computation must go on).
    fn pick(&self, g: &mut Inner<V>, peak: &[usize]) -> Option<u32> {
        let fits = |id: u32| {
            self.memory_limit.is_none_or(|l| {
                g.held_bytes
                    .saturating_add(g.running_bytes)
                    .saturating_add(peak[id as usize])
                    <= l
            })
        };
        let s = g.ready_sources.peek().map(|r| r.0);
        let o = g.ready_other.peek().map(|r| r.0);
        let take_source = match (s, o) {
            (None, None) => return None,
            (Some(a), None) => fits(a) || g.running == 0,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => fits(a) && a < b,
        };
        if take_source {
            g.ready_sources.pop().map(|r| r.0)
        } else {
            g.ready_other.pop().map(|r| r.0)
        }
    }

    fn work<O: Execute<Value = V>>(&self, plan: &Plan<O, impl Runnable<O>>) {
        let mut g = self.lock();
        loop {
            if g.error.is_some() || g.done == self.total {
                self.wake.notify_all();
                return;
            }
            let Some(id) = self.pick(&mut g, &plan.peak) else {
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
                .c
                .inputs(idx)
                .iter()
                .filter_map(|&i| g.results[i as usize].clone())
                .collect();
            g.running += 1;
            g.running_bytes += plan.peak[idx];
            drop(g);

            let outcome = if args.len() == plan.c.inputs(idx).len() {
                run_expr(&plan.c.expr(idx), &args, plan.c.key(idx))
            } else {
                Err(RuntimeError::TaskFailed {
                    key: plan.c.key(idx).clone(),
                    op: plan.c.expr(idx).label(),
                    message: "an input was released before use (scheduler bug)".into(),
                })
            };
            drop(args);

            g = self.lock();
            g.running -= 1;
            g.running_bytes -= plan.peak[idx];
            match outcome {
                Err(e) => {
                    if g.error.is_none() {
                        g.error = Some(e);
                    }
                    self.wake.notify_all();
                    return;
                }
                Ok(value) => {
                    let nb = O::nbytes(&value);
                    g.bytes[idx] = nb;
                    g.held_bytes += nb;
                    g.peak_bytes = g.peak_bytes.max(g.held_bytes);
                    if g.readers_left[idx] > 0 {
                        g.results[idx] = Some(value);
                    } else {
                        g.held_bytes -= nb;
                    }
                    for &i in plan.c.distinct_inputs(idx) {
                        let i = i as usize;
                        g.readers_left[i] -= 1;
                        if g.readers_left[i] == 0 {
                            g.results[i] = None;
                            g.held_bytes -= g.bytes[i];
                        }
                    }
                    let mut newly_ready = 0;
                    for &d in plan.c.dependents(idx) {
                        let du = d as usize;
                        g.waiting[du] -= 1;
                        if g.waiting[du] == 0 {
                            newly_ready += 1;
                            if plan.is_source[du] {
                                g.ready_sources.push(Reverse(d));
                            } else {
                                g.ready_other.push(Reverse(d));
                            }
                        }
                    }
                    g.done += 1;
                    if g.idle > 0
                        && (newly_ready > 1 || g.done == self.total || self.memory_limit.is_some())
                    {
                        self.wake.notify_all();
                    } else if g.idle > 0 && newly_ready == 1 {
                        self.wake.notify_one();
                    }
                    if let Some(p) = &self.progress {
                        let done = g.done;
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

fn run_expr<O: Execute>(
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
