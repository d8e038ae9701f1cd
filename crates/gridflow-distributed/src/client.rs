//! The client: submits compiled graphs to a scheduler and gathers results from workers.

use crate::auth::{Security, Stream};
use crate::frame::{encode, read_frame, write_frame};
use crate::messages::{FromClient, Hello, Location, SubmitTask, ToClient, Welcome, WorkerInfo};
use crate::worker::{connect, fetch};
use crate::{DistError, Result};
use gridflow_runtime::{
    Execute, Executor, Plan, Progress, ProgressFn, RunReport, RuntimeError, WireValue,
};
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::io::{ReadHalf, WriteHalf};

struct Conn {
    r: ReadHalf<Stream>,
    w: BufWriter<WriteHalf<Stream>>,
}

/// A connection to a scheduler; an [`Executor`] for any operation type whose values can
/// cross the wire. One computation runs at a time per client.
pub struct Client {
    rt: tokio::runtime::Runtime,
    conn: Mutex<Conn>,
    address: String,
    progress: Mutex<Option<ProgressFn>>,
    sec: Security,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.address)
    }
}

impl Client {
    /// Connects to the scheduler at `address` (`tcp://host:port`, `tls://host:port` or
    /// `host:port`), checking the protocol version, with the credentials of the environment
    /// ([`Security::from_env`]).
    pub fn connect(address: &str) -> Result<Client> {
        Client::connect_with(address, Security::from_env()?)
    }

    /// Connects with these credentials.
    pub fn connect_with(address: &str, sec: Security) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DistError::io("starting the client's event loop", e))?;
        let conn = rt.block_on(async {
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
            if let Welcome::Refused(why) = welcome {
                return Err(DistError::Cluster(format!("the scheduler refused: {why}")));
            }
            Ok(Conn { r, w })
        })?;
        Ok(Client {
            rt,
            conn: Mutex::new(conn),
            address: address.to_owned(),
            progress: Mutex::new(None),
            sec,
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
        *self
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = f;
    }

    /// The scheduler's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cluster's workers.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut c = self.lock();
        let address = self.address.clone();
        self.rt.block_on(async {
            send(&mut c, &address, &FromClient::Info).await?;
            loop {
                match recv(&mut c, &address).await? {
                    ToClient::Info(w) => return Ok(w),
                    _ => continue,
                }
            }
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

    /// Runs a plan on the cluster; task failures come back as [`RuntimeError`]s naming the
    /// task's key.
    fn compute<O>(
        &self,
        plan: &Plan<'_, O>,
    ) -> std::result::Result<Gathered<O::Value>, RuntimeError>
    where
        O: Execute,
        O::Value: WireValue,
    {
        let tasks = plan.tasks;
        let n = tasks.len();
        let mut submit = Vec::with_capacity(n);
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
        }
        let outputs = tasks.outputs().to_vec();
        let address = self.address.clone();
        let progress = self
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut c = self.lock();
        let outcome = self.rt.block_on(async {
            send(
                &mut c,
                &address,
                &FromClient::Submit {
                    tasks: submit,
                    outputs,
                },
            )
            .await?;
            let mut job = None;
            let mut reported = 0usize;
            loop {
                match recv(&mut c, &address).await? {
                    ToClient::Accepted { job: j } => job = Some(j),
                    ToClient::Progress { job: j, done } if Some(j) == job => {
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
                    } if Some(j) == job => {
                        let values = gather::<O::Value>(&outputs, &self.sec).await;
                        send(&mut c, &address, &FromClient::Release { job: j }).await?;
                        return Ok(Ok((values?, peak_bytes)));
                    }
                    ToClient::Failed {
                        job: j,
                        task,
                        op,
                        message,
                        panicked,
                    } if Some(j) == job || j == u64::MAX => {
                        return Ok(Err((task, op, message, panicked)));
                    }
                    _ => continue,
                }
            }
        });
        match outcome {
            Err(e) => Err(cluster_error(e)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err((task, op, message, panicked))) => {
                let Some(t) = task.map(|t| t as usize).filter(|&t| t < n) else {
                    return Err(cluster_error(DistError::Cluster(format!(
                        "{op}: {message}"
                    ))));
                };
                let key = tasks.key(t).clone();
                // The scheduler does not decode tasks: it leaves the operation to us.
                let op = if op.is_empty() {
                    tasks.expr(t).label()
                } else {
                    op
                };
                Err(if panicked {
                    RuntimeError::TaskPanicked { key, op, message }
                } else {
                    RuntimeError::TaskFailed { key, op, message }
                })
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

async fn recv(c: &mut Conn, address: &str) -> Result<ToClient> {
    match read_frame(&mut c.r, address).await? {
        Some(f) => f.decode(address),
        None => Err(DistError::Closed {
            peer: address.to_owned(),
            during: "while waiting for the scheduler".into(),
        }),
    }
}

/// Fetches the outputs from the workers holding them, one connection per worker.
async fn gather<V: WireValue>(outputs: &[Location], sec: &Security) -> Result<Vec<Arc<V>>> {
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
        for (id, v) in fetch::<V>(address, &ids, sec).await? {
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
        let (values, peak) = self.compute(&plan)?;
        let elapsed = start.elapsed();
        let threads = self
            .workers()
            .map(|w| w.iter().map(|x| x.nthreads as usize).sum())
            .unwrap_or(0);
        Ok((
            values,
            RunReport {
                tasks_before: plan.tasks.tasks_before(),
                tasks_after: plan.tasks.len(),
                peak_held_bytes: usize::try_from(peak).unwrap_or(usize::MAX),
                threads,
                elapsed,
                optimize_time: Duration::ZERO,
                execute_time: elapsed,
            },
        ))
    }

    fn thread_count(&self) -> usize {
        self.workers()
            .map(|w| w.iter().map(|x| x.nthreads as usize).sum())
            .unwrap_or(1)
            .max(1)
    }

    fn describe(&self) -> String {
        format!("cluster at {}", self.address)
    }
}
