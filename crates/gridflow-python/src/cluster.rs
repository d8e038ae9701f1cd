//! `Client` and `LocalCluster` from `gridflow-distributed`, the default executor that
//! `compute()` runs on, and the worker entry point for worker processes started from
//! Python.

use crate::error::{PyResultExt, err};
use gridflow_array::{ArrayOp, Executor, LocalExecutor};
use gridflow_distributed::{Client, Cluster, LocalCluster, LocalClusterOptions, WorkerOptions};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// The client that `compute()` uses (the last one created and not closed), as Dask's
/// default client.
static DEFAULT: Mutex<Option<Arc<Client>>> = Mutex::new(None);

fn default() -> Option<Arc<Client>> {
    DEFAULT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Runs `f` with the default client, or the local thread pool when there is none;
/// `progress(done, total)` (a Python callable) is called as tasks finish.
pub fn with_executor<R>(
    progress: Option<Py<PyAny>>,
    f: impl FnOnce(&(dyn Executor<ArrayOp> + Sync)) -> PyResult<R>,
) -> PyResult<R> {
    let callback = progress.map(|cb| {
        // The highest count delivered: reports from several executor threads can reach
        // the GIL out of order, and a progress bar must not step back.
        let last = std::sync::atomic::AtomicUsize::new(0);
        Arc::new(move |p: gridflow_runtime::Progress| {
            // Called from the executor's threads while the caller has released the GIL;
            // an error raised by the callback must not stop the computation.
            Python::attach(|py| {
                // Under the GIL: one report at a time, so the check and the call agree.
                let done = p.done;
                if done < last.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                last.store(done, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = cb.call1(py, (p.done, p.total)) {
                    e.write_unraisable(py, None);
                }
            });
        }) as gridflow_runtime::ProgressFn
    });
    match default() {
        Some(c) => {
            c.set_progress(callback);
            let out = f(&*c);
            c.set_progress(None);
            out
        }
        None => match callback {
            Some(cb) => f(&LocalExecutor::default().with_progress(move |p| cb(p))),
            None => f(&LocalExecutor::default()),
        },
    }
}

/// A connection to a scheduler, and the local cluster it owns (if it started one).
#[pyclass(name = "Client", module = "gridflow._gridflow", frozen)]
pub struct PyClient {
    client: Arc<Client>,
    cluster: Mutex<Option<LocalCluster>>,
    cluster_address: Option<String>,
    dashboard_link: Option<String>,
}

#[pymethods]
impl PyClient {
    /// Connects to the scheduler at `address` (a `gateway://` address too) with the
    /// environment's credentials, or with `token` (a gateway cluster's own token);
    /// `gateway_ca`: the PEM file a TLS gateway's certificate is checked against.
    #[staticmethod]
    #[pyo3(signature = (address, token=None, gateway_ca=None))]
    fn connect(
        py: Python<'_>,
        address: &str,
        token: Option<&str>,
        gateway_ca: Option<&str>,
    ) -> PyResult<PyClient> {
        let a = address.to_owned();
        let t = token.map(str::to_owned);
        let ca = gateway_ca.map(std::path::PathBuf::from);
        let client = py
            .detach(|| {
                let sec = match t {
                    Some(t) => gridflow_distributed::Security::none().with_token(t)?,
                    None => gridflow_distributed::Security::from_env()?,
                };
                let sec = match &ca {
                    Some(ca) => sec.with_gateway_ca(ca)?,
                    None => sec,
                };
                Client::connect_with(&a, sec)
            })
            .py()?;
        Ok(PyClient {
            dashboard_link: client.dashboard_link(),
            client: Arc::new(client),
            cluster: Mutex::new(None),
            cluster_address: None,
        })
    }

    /// Starts a scheduler and worker processes on this machine (sizes left `None` come
    /// from `LocalClusterOptions::for_machine`); workers run `program ARGS... ADDRESS
    /// --nthreads N --memory-limit BYTES --name NAME`. The scheduler serves its dashboard
    /// on `dashboard_address` (`HOST:PORT`, `:0`, or `None`/`"none"` for none).
    #[staticmethod]
    #[pyo3(signature = (program, args, n_workers=None, threads_per_worker=None, memory_limit=None, dashboard_address=Some(":8787".to_owned())))]
    fn start_local(
        py: Python<'_>,
        program: PathBuf,
        args: Vec<String>,
        n_workers: Option<usize>,
        threads_per_worker: Option<usize>,
        memory_limit: Option<u64>,
        dashboard_address: Option<String>,
    ) -> PyResult<PyClient> {
        let mut o = LocalClusterOptions::for_machine();
        o.dashboard_address = dashboard_address;
        if let Some(n) = n_workers {
            if n == 0 {
                return Err(err("LocalCluster: n_workers must be at least 1"));
            }
            // The machine's memory is split between the workers asked for.
            o.memory_limit = o.memory_limit * o.n_workers.max(1) as u64 / n as u64;
            o.n_workers = n;
        }
        if let Some(t) = threads_per_worker {
            if t == 0 {
                return Err(err("LocalCluster: threads_per_worker must be at least 1"));
            }
            o.threads_per_worker = t;
        }
        if let Some(m) = memory_limit {
            o.memory_limit = m;
        }
        o.program = Some(program);
        o.args = args;
        let (cluster, client) = py
            .detach(|| {
                let cluster = LocalCluster::with_options(o)?;
                let client = cluster.client()?;
                Ok::<_, gridflow_distributed::DistError>((cluster, client))
            })
            .py()?;
        Ok(PyClient {
            dashboard_link: cluster.dashboard_link(),
            cluster_address: Some(cluster.address()),
            client: Arc::new(client),
            cluster: Mutex::new(Some(cluster)),
        })
    }

    /// The scheduler's address.
    #[getter]
    fn address(&self) -> String {
        self.cluster_address
            .clone()
            .unwrap_or_else(|| self.client.address().to_owned())
    }

    /// The dashboard's URL (`http://host:port/status`), when the scheduler serves one: the
    /// cluster's for a cluster this client started, else as the scheduler reported it.
    #[getter]
    fn dashboard_link(&self) -> Option<String> {
        self.dashboard_link.clone()
    }

    /// Whether this client started its own local cluster.
    #[getter]
    fn owns_cluster(&self) -> bool {
        self.cluster_address.is_some()
    }

    /// The workers: `(name, address, nthreads, memory_limit)` each.
    fn workers(&self, py: Python<'_>) -> PyResult<Vec<(String, String, u32, u64)>> {
        let c = self.client.clone();
        let w = py.detach(|| c.workers()).py()?;
        Ok(w.into_iter()
            .map(|w| (w.name, w.address, w.nthreads, w.memory_limit))
            .collect())
    }

    /// Retires the workers named `names` gracefully (their results moved to the workers
    /// that stay) and returns the names retired once they have exited.
    fn retire_workers(&self, py: Python<'_>, names: Vec<String>) -> PyResult<Vec<String>> {
        let c = self.client.clone();
        py.detach(|| c.retire_workers(&names)).py()
    }

    /// The scheduler's adaptive target and the figures behind it, as JSON.
    fn adaptive_target(&self, py: Python<'_>) -> PyResult<String> {
        let c = self.client.clone();
        let t = py.detach(|| c.adaptive_target()).py()?;
        serde_json::to_string(&t).map_err(|e| err(format!("adaptive_target: {e}")))
    }

    /// Scales the cluster this client started to `n` workers (workers taken away retire
    /// first), stopping adaptive scaling.
    fn scale(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        self.with_cluster(py, "scale", |c| c.scale(n))
    }

    /// Scales the cluster this client started between `minimum` and `maximum` workers by
    /// the scheduler's adaptive target, until `scale` or `close`.
    fn adapt(&self, py: Python<'_>, minimum: usize, maximum: usize) -> PyResult<()> {
        if minimum > maximum {
            return Err(err(format!(
                "adapt: minimum ({minimum}) is above maximum ({maximum})"
            )));
        }
        self.with_cluster(py, "adapt", |c| c.adapt(minimum, maximum))
    }

    /// Every worker of the cluster this client started and its state, as JSON (the
    /// shape a gateway's cluster report uses: `{"name", "id", "state": {"state", ...}}`).
    fn worker_status(&self, py: Python<'_>) -> PyResult<String> {
        let s = self.with_cluster(py, "worker_status", |c| c.worker_status())?;
        serde_json::to_string(&s).map_err(|e| err(format!("worker_status: {e}")))
    }

    /// Makes this client the one `compute()` uses.
    fn make_default(&self) {
        *DEFAULT.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.client.clone());
    }

    /// Stops using this client (and stops its local cluster, if it started one).
    fn close(&self, py: Python<'_>) {
        {
            let mut d = DEFAULT.lock().unwrap_or_else(PoisonError::into_inner);
            if d.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.client)) {
                *d = None;
            }
        }
        let cluster = self
            .cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(c) = cluster {
            py.detach(|| c.close());
        }
    }

    /// Whether `close()` was called on a client that started its own cluster.
    #[getter]
    fn closed(&self) -> bool {
        self.cluster_address.is_some()
            && self
                .cluster
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none()
    }
}

impl PyClient {
    /// Runs `f` on the local cluster this client started, with the GIL released; an error
    /// naming `what` when it started none or it was closed.
    fn with_cluster<T: Send>(
        &self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&LocalCluster) -> gridflow_distributed::Result<T> + Send,
    ) -> PyResult<T> {
        let guard = self.cluster.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(c) = guard.as_ref() else {
            return Err(err(if self.cluster_address.is_some() {
                format!("{what}: the cluster is closed")
            } else {
                format!(
                    "{what}: this client did not start its cluster (use the cluster's own \
                     handle, or retire_workers)"
                )
            }));
        };
        py.detach(|| f(c)).py()
    }
}

/// Sets (or with `None` clears) the default client.
#[pyfunction]
#[pyo3(signature = (client=None))]
pub fn set_default_client(client: Option<&PyClient>) {
    *DEFAULT.lock().unwrap_or_else(PoisonError::into_inner) = client.map(|c| c.client.clone());
}

/// The default client's scheduler address, if there is one.
#[pyfunction]
pub fn default_client() -> Option<String> {
    default().map(|c| c.address().to_owned())
}

/// Runs a worker process of the distributed runtime until the scheduler stops it (the
/// body of `python -m gridflow._worker`).
#[pyfunction]
pub fn run_worker(
    py: Python<'_>,
    address: &str,
    nthreads: usize,
    memory_limit: u64,
    name: String,
) -> PyResult<()> {
    // Workers run read tasks: the store's source kinds must be known here.
    gridflow_store::register();
    let o = WorkerOptions {
        nthreads: nthreads.max(1),
        memory_limit,
        name,
        ..WorkerOptions::default()
    };
    let a = address.to_owned();
    py.detach(|| gridflow_distributed::worker::run::<ArrayOp>(&a, o))
        .py()
}

/// Parses a memory size (`"4GB"`, `"512MiB"`, bytes) as `gridflow worker
/// --memory-limit` does.
#[pyfunction]
pub fn parse_size(text: &str) -> PyResult<usize> {
    gridflow_runtime::parse_size(text).py()
}
