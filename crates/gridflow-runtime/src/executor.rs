//! The executor trait: what arrays, datasets and the CLI hand a compiled graph to.

use crate::{Execute, Result};
use gridflow_graph::{Graph, Key, Runnable};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A compiled graph to run, with what the compiler estimated about it.
pub struct Plan<'a, O> {
    /// The tasks, in priority order (id = position).
    pub tasks: &'a (dyn Runnable<O> + Sync),
    /// Estimated peak bytes of each task while it runs, by id (for memory admission).
    /// `None`: executors admit source tasks on the bytes of held results alone.
    pub peak_bytes: Option<&'a [u64]>,
}

impl<'a, O> Plan<'a, O> {
    /// A plan without estimates.
    pub fn new(tasks: &'a (dyn Runnable<O> + Sync)) -> Plan<'a, O> {
        Plan {
            tasks,
            peak_bytes: None,
        }
    }

    /// Adds per-task peak-byte estimates.
    pub fn with_peak_bytes(self, peak_bytes: &'a [u64]) -> Plan<'a, O> {
        Plan {
            peak_bytes: Some(peak_bytes),
            ..self
        }
    }
}

/// Something that runs compiled graphs of `O` operations and returns their outputs: the
/// local thread pool ([`crate::LocalExecutor`]) or a client of a distributed cluster.
/// Callers take `&dyn Executor<O>` and do not care which.
pub trait Executor<O: Execute>: Send + Sync {
    /// Runs a compiled plan, returning the values of its outputs in the order of
    /// `plan.tasks.outputs()`, and what the run did.
    fn run_plan(&self, plan: Plan<'_, O>) -> Result<(Vec<Arc<O::Value>>, RunReport)>;

    /// Threads that run tasks, over all processes (for sizing batches).
    fn thread_count(&self) -> usize;

    /// A short description for logs and errors (`threads(4)`, `tcp://127.0.0.1:8786`).
    fn describe(&self) -> String;

    /// Compiles `graph` for `outputs` (cull, fuse, order) and runs it; the report counts
    /// compiling as optimization.
    fn run_with_report(
        &self,
        graph: &Graph<O>,
        outputs: &[Key],
    ) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
        let start = Instant::now();
        let program = graph.indexed(outputs)?.program(true)?;
        let optimize_time = start.elapsed();
        let (values, mut report) = self.run_plan(Plan::new(&program))?;
        report.optimize_time += optimize_time;
        report.elapsed += optimize_time;
        Ok((values, report))
    }

    /// [`Executor::run_with_report`] without the report.
    fn run(&self, graph: &Graph<O>, outputs: &[Key]) -> Result<Vec<Arc<O::Value>>> {
        self.run_with_report(graph, outputs).map(|(v, _)| v)
    }

    /// True when this executor holds persisted results that later graphs may read by key
    /// (see [`Executor::persist_graph`]): callers then hand it whole graphs
    /// ([`Executor::run_with_report`]) rather than plans they compiled themselves, so that
    /// it can cut the graph where a held result is.
    fn holds_results(&self) -> bool {
        false
    }

    /// True when [`Executor::persist_graph`] keeps results where they were computed (a
    /// cluster) instead of returning them: callers then persist through it.
    fn persists_remotely(&self) -> bool {
        false
    }

    /// Computes `outputs` and keeps them: the local executor returns the values (the caller
    /// keeps them in its graph); a cluster keeps them on its workers and returns a handle,
    /// and while the handle lives, graphs run on it that contain those keys read the held
    /// results instead of recomputing them (Dask's `persist`).
    fn persist_graph(&self, graph: &Graph<O>, outputs: &[Key]) -> Result<Persisted<O::Value>> {
        Ok(Persisted::Values(self.run(graph, outputs)?))
    }
}

/// What [`Executor::persist_graph`] kept.
pub enum Persisted<V> {
    /// The values, in the order of the outputs: the caller keeps them.
    Values(Vec<Arc<V>>),
    /// The results stay where they were computed while this handle (or a clone) lives.
    Held(Arc<dyn std::any::Any + Send + Sync>),
}

impl<V> std::fmt::Debug for Persisted<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Persisted::Values(v) => write!(f, "Persisted::Values({} values)", v.len()),
            Persisted::Held(_) => f.write_str("Persisted::Held"),
        }
    }
}

/// A reference or smart pointer to an executor is that executor: every method, the
/// optional ones included, goes through to it.
macro_rules! forward_executor {
    ($($ptr:ty),*) => {$(
        impl<O: Execute, E: Executor<O> + ?Sized> Executor<O> for $ptr {
            fn run_plan(&self, plan: Plan<'_, O>) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
                (**self).run_plan(plan)
            }
            fn thread_count(&self) -> usize {
                (**self).thread_count()
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
            fn run_with_report(
                &self,
                graph: &Graph<O>,
                outputs: &[Key],
            ) -> Result<(Vec<Arc<O::Value>>, RunReport)> {
                (**self).run_with_report(graph, outputs)
            }
            fn holds_results(&self) -> bool {
                (**self).holds_results()
            }
            fn persists_remotely(&self) -> bool {
                (**self).persists_remotely()
            }
            fn persist_graph(
                &self,
                graph: &Graph<O>,
                outputs: &[Key],
            ) -> Result<Persisted<O::Value>> {
                (**self).persist_graph(graph, outputs)
            }
        }
    )*};
}

forward_executor!(&E, Box<E>, Arc<E>);

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// One task the local executor ran, as a [`TaskObserver`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct TaskRun<'a> {
    /// The pool thread that ran it (0-based).
    pub thread: usize,
    /// Its key.
    pub key: &'a Key,
    /// When it started.
    pub start: std::time::Instant,
    /// When it finished.
    pub stop: std::time::Instant,
    /// Bytes of its result.
    pub nbytes: usize,
}

/// Watches the local executor's runs task by task (a dashboard does). Called on the pool's
/// threads, outside its lock; keep the calls cheap.
pub trait TaskObserver: Send + Sync {
    /// A run of these tasks (after optimization) begins.
    fn begin(&self, keys: &mut dyn Iterator<Item = &Key>, threads: usize);
    /// A task finished.
    fn finished(&self, run: &TaskRun<'_>);
    /// The run ended (finished or failed).
    fn end(&self);
}

/// A shared [`TaskObserver`].
pub type TaskObserverFn = Arc<dyn TaskObserver>;

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
    /// Most bytes of task results held in memory at once (over all workers of a cluster,
    /// each counted at its own peak).
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
