//! The scheduler process: a tokio event loop around [`Core`].
//!
//! Each connection has a reader task (frames → events) and a writer task (messages →
//! frames). One loop owns the core: it handles every event already waiting, then sends
//! the resulting actions grouped per peer (one `Compute` batch and one `Release` batch
//! per worker, the last progress per job), so tiny tasks are not one round trip each.

use crate::auth::{Security, Stream};
use crate::core::{Action, Config, Core, TaskId, WorkerId};
use crate::frame::{self, encode, read_frame, write_frame};
use crate::messages::{
    ComputeTask, FromClient, FromWorker, Hello, Location, ToClient, ToWorker, Welcome, WorkerInfo,
};
use crate::{DistError, Result};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{BufWriter, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

type ConnId = u64;

enum Event {
    Worker {
        conn: ConnId,
        info: WorkerInfo,
        out: UnboundedSender<Vec<u8>>,
    },
    Client {
        conn: ConnId,
        out: UnboundedSender<Vec<u8>>,
    },
    FromWorker(ConnId, FromWorker),
    FromClient(ConnId, FromClient),
    Closed(ConnId),
    Shutdown,
}

/// How a scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Credentials demanded of workers and clients (and proven to them).
    pub security: Security,
    /// How often workers send heartbeats, and the scheduler sends its own to workers.
    pub heartbeat_interval: Duration,
    /// A worker not heard from for this long is removed (and its tasks rescheduled).
    pub heartbeat_timeout: Duration,
    /// Workers a task may take down with it before it fails its computation (Dask's
    /// `allowed-failures`).
    pub allowed_failures: u32,
    /// How long to wait, after a worker's connection closes, for its nanny to report how
    /// it died (0: no nanny; the worker is removed at once).
    pub nanny_grace: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> SchedulerOptions {
        SchedulerOptions {
            security: Security::none(),
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(30),
            allowed_failures: 3,
            nanny_grace: Duration::ZERO,
        }
    }
}

/// A scheduler running on a thread of this process (what [`crate::LocalCluster`] uses).
pub struct SchedulerHandle {
    address: SocketAddr,
    events: UnboundedSender<Event>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SchedulerHandle {
    /// The address workers and clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the scheduler: workers are told to shut down, then the loop ends.
    pub fn shutdown(&mut self) {
        let _ = self.events.send(Event::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds `host:port` (port 0: any free port) for a scheduler.
pub fn bind(host: &str, port: u16) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind((host, port))
        .map_err(|e| DistError::io(format!("binding the scheduler to {host}:{port}"), e))?;
    l.set_nonblocking(true)
        .map_err(|e| DistError::io("configuring the scheduler's socket", e))?;
    Ok(l)
}

/// Starts a scheduler on a thread of this process, listening on `listener`, without
/// credentials (for 127.0.0.1).
pub fn spawn(listener: std::net::TcpListener) -> Result<SchedulerHandle> {
    spawn_with(listener, SchedulerOptions::default())
}

/// Starts a scheduler on a thread of this process, as `options` say.
pub fn spawn_with(
    listener: std::net::TcpListener,
    options: SchedulerOptions,
) -> Result<SchedulerHandle> {
    let address = listener
        .local_addr()
        .map_err(|e| DistError::io("reading the scheduler's address", e))?;
    let (tx, rx) = unbounded_channel();
    let events = tx.clone();
    let thread = std::thread::Builder::new()
        .name("gridflow-scheduler".into())
        .spawn(move || {
            if let Err(e) = serve(listener, options, tx, rx) {
                eprintln!("gridflow scheduler: {e}");
            }
        })
        .map_err(|e| DistError::io("starting the scheduler thread", e))?;
    Ok(SchedulerHandle {
        address,
        events,
        thread: Some(thread),
    })
}

/// Runs a scheduler on the calling thread until it is shut down.
pub fn run(listener: std::net::TcpListener, options: SchedulerOptions) -> Result<()> {
    let (tx, rx) = unbounded_channel();
    serve(listener, options, tx, rx)
}

fn serve(
    listener: std::net::TcpListener,
    options: SchedulerOptions,
    tx: UnboundedSender<Event>,
    rx: UnboundedReceiver<Event>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DistError::io("starting the scheduler's event loop", e))?;
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener)
            .map_err(|e| DistError::io("listening for connections", e))?;
        tokio::spawn(accept(listener, tx, options.security.clone()));
        event_loop(rx, options).await;
        Ok(())
    })
}

async fn accept(listener: TcpListener, tx: UnboundedSender<Event>, sec: Security) {
    let mut next: ConnId = 0;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        next += 1;
        let conn = next;
        let tx = tx.clone();
        let sec = sec.clone();
        tokio::spawn(async move {
            let served = async {
                let peer = peer.to_string();
                let s = crate::auth::accept(stream, &peer, &sec).await?;
                connection(s, peer, conn, tx.clone()).await
            };
            if let Err(e) = served.await {
                // A bad peer is reported and dropped; the scheduler keeps running.
                eprintln!("gridflow scheduler: connection from {peer}: {e}");
            }
            let _ = tx.send(Event::Closed(conn));
        });
    }
}

async fn connection(
    stream: Stream,
    peer: String,
    conn: ConnId,
    tx: UnboundedSender<Event>,
) -> Result<()> {
    let (mut r, w) = tokio::io::split(stream);
    let Some(f) = read_frame(&mut r, &peer).await? else {
        return Ok(());
    };
    let hello: Hello = f.decode(&peer)?;
    let (out_tx, out_rx) = unbounded_channel::<Vec<u8>>();
    out_tx
        .send(encode(&Welcome::Accepted { id: 0 })?)
        .map_err(|_| DistError::protocol(&peer, "scheduler stopping"))?;
    tokio::spawn(writer(w, peer.clone(), out_rx));
    match hello {
        Hello::Worker {
            name,
            nthreads,
            memory_limit,
            data_address,
        } => {
            let info = WorkerInfo {
                name,
                address: data_address,
                nthreads,
                memory_limit,
                bytes_fetched: 0,
            };
            let _ = tx.send(Event::Worker {
                conn,
                info,
                out: out_tx,
            });
            while let Some(f) = read_frame(&mut r, &peer).await? {
                let _ = tx.send(Event::FromWorker(conn, f.decode(&peer)?));
            }
        }
        Hello::Client => {
            let _ = tx.send(Event::Client { conn, out: out_tx });
            while let Some(f) = read_frame(&mut r, &peer).await? {
                let _ = tx.send(Event::FromClient(conn, f.decode(&peer)?));
            }
        }
    }
    Ok(())
}

/// Writes queued messages as frames, flushing once the queue is empty.
async fn writer(w: WriteHalf<Stream>, peer: String, mut rx: UnboundedReceiver<Vec<u8>>) {
    use tokio::io::AsyncWriteExt;
    let mut w = BufWriter::with_capacity(1 << 16, w);
    while let Some(m) = rx.recv().await {
        if write_frame(&mut w, &peer, &m, &[]).await.is_err() {
            return;
        }
        while let Ok(m) = rx.try_recv() {
            if write_frame(&mut w, &peer, &m, &[]).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}

struct State {
    core: Core,
    workers: FxHashMap<ConnId, (WorkerId, UnboundedSender<Vec<u8>>)>,
    worker_conn: Vec<Option<ConnId>>,
    worker_info: Vec<WorkerInfo>,
    clients: FxHashMap<ConnId, UnboundedSender<Vec<u8>>>,
    /// The client of each job.
    jobs: FxHashMap<u64, ConnId>,
}

async fn event_loop(mut rx: UnboundedReceiver<Event>, _options: SchedulerOptions) {
    let mut s = State {
        core: Core::new(Config::default()),
        workers: FxHashMap::default(),
        worker_conn: Vec::new(),
        worker_info: Vec::new(),
        clients: FxHashMap::default(),
        jobs: FxHashMap::default(),
    };
    while let Some(ev) = rx.recv().await {
        let mut stop = s.handle(ev);
        while !stop {
            match rx.try_recv() {
                Ok(ev) => stop = s.handle(ev),
                Err(_) => break,
            }
        }
        s.core.balance();
        s.dispatch();
        if stop {
            for (_, out) in s.workers.values() {
                if let Ok(m) = encode(&ToWorker::Shutdown) {
                    let _ = out.send(m);
                }
            }
            // Let the writers send the shutdown before the runtime stops.
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            return;
        }
    }
}

impl State {
    /// Handles one event; true to stop.
    fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Shutdown => return true,
            Event::Worker { conn, info, out } => {
                let id = self.core.add_worker(info.nthreads);
                self.workers.insert(conn, (id, out));
                if self.worker_conn.len() <= id as usize {
                    self.worker_conn.resize(id as usize + 1, None);
                    self.worker_info.resize(id as usize + 1, info.clone());
                }
                self.worker_conn[id as usize] = Some(conn);
                self.worker_info[id as usize] = info;
            }
            Event::Client { conn, out } => {
                self.clients.insert(conn, out);
            }
            Event::FromWorker(conn, msg) => {
                let Some(&(w, _)) = self.workers.get(&conn) else {
                    return false;
                };
                match msg {
                    FromWorker::Finished(done) => {
                        for d in done {
                            self.core.finished_timed(w, d.id, d.nbytes, d.micros);
                        }
                    }
                    FromWorker::StealResponse(answers) => {
                        for (id, stolen) in answers {
                            self.core.steal_response(w, id, stolen);
                        }
                    }
                    FromWorker::Failed {
                        id,
                        op,
                        message,
                        panicked,
                    } => self.core.failed(w, id, op, message, panicked),
                    FromWorker::Metrics { bytes_fetched } => {
                        if let Some(i) = self.worker_info.get_mut(w as usize) {
                            i.bytes_fetched = bytes_fetched;
                        }
                    }
                }
            }
            Event::FromClient(conn, msg) => self.client_message(conn, msg),
            Event::Closed(conn) => {
                if let Some((w, _)) = self.workers.remove(&conn) {
                    self.worker_conn[w as usize] = None;
                    self.core.remove_worker(w);
                }
                if self.clients.remove(&conn).is_some() {
                    let jobs: Vec<u64> = self
                        .jobs
                        .iter()
                        .filter(|(_, c)| **c == conn)
                        .map(|(j, _)| *j)
                        .collect();
                    for j in jobs {
                        self.jobs.remove(&j);
                        self.core.release_job(j);
                    }
                }
            }
        }
        false
    }

    fn send_client(&self, conn: ConnId, msg: &ToClient) {
        if let (Some(out), Ok(m)) = (self.clients.get(&conn), encode(msg)) {
            let _ = out.send(m);
        }
    }

    fn client_message(&mut self, conn: ConnId, msg: FromClient) {
        match msg {
            FromClient::ReleaseKeys(ids) => {
                self.core.release_keys(&ids);
                let core = &self.core;
                self.jobs.retain(|&j, _| core.has_job(j));
            }
            FromClient::Scatter { parts } => {
                let mut placed = Vec::with_capacity(parts.len());
                let mut missing = None;
                for (address, nbytes) in &parts {
                    let w =
                        self.worker_info.iter().enumerate().position(|(i, x)| {
                            x.address == *address && self.worker_conn[i].is_some()
                        });
                    match w {
                        Some(w) => placed.push((w as WorkerId, *nbytes)),
                        None => missing = Some(address.clone()),
                    }
                }
                let outcome = match missing {
                    Some(a) => Err(format!("scatter: no worker at {a}")),
                    None => self.core.scatter(&placed),
                };
                match outcome {
                    Ok(job) => {
                        self.jobs.insert(job, conn);
                        self.send_client(conn, &ToClient::Accepted { job });
                    }
                    Err(message) => self.send_client(
                        conn,
                        &ToClient::Failed {
                            job: u64::MAX,
                            task: None,
                            op: "scatter".into(),
                            message,
                            panicked: false,
                        },
                    ),
                }
            }
            FromClient::Submit {
                tasks,
                outputs,
                held,
            } => {
                let tasks = tasks.into_iter().map(|t| (t.payload, t.inputs)).collect();
                match self.core.submit_with_held(tasks, outputs, &held) {
                    Ok(job) => {
                        self.jobs.insert(job, conn);
                        self.send_client(conn, &ToClient::Accepted { job });
                    }
                    Err(message) => self.send_client(
                        conn,
                        &ToClient::Failed {
                            job: u64::MAX,
                            task: None,
                            op: "submit".into(),
                            message,
                            panicked: false,
                        },
                    ),
                }
            }
            FromClient::Release { job } => {
                if self.jobs.get(&job) == Some(&conn) {
                    self.jobs.remove(&job);
                    self.core.release_job(job);
                }
            }
            FromClient::Info => {
                let infos = self
                    .worker_conn
                    .iter()
                    .zip(&self.worker_info)
                    .filter(|(c, _)| c.is_some())
                    .map(|(_, i)| i.clone())
                    .collect();
                self.send_client(conn, &ToClient::Info(infos));
            }
        }
    }

    fn location(&self, id: TaskId) -> Location {
        let address = self
            .core
            .who_has(id)
            .first()
            .and_then(|&w| self.worker_info.get(w as usize))
            .map(|i| i.address.clone())
            .unwrap_or_default();
        Location { id, address }
    }

    /// Sends the core's actions, grouped per peer.
    fn dispatch(&mut self) {
        let actions = self.core.take_actions();
        if actions.is_empty() {
            return;
        }
        let mut compute: FxHashMap<WorkerId, Vec<ComputeTask>> = FxHashMap::default();
        let mut release: FxHashMap<WorkerId, Vec<u64>> = FxHashMap::default();
        let mut steal: FxHashMap<WorkerId, Vec<u64>> = FxHashMap::default();
        let mut progress: FxHashMap<u64, u64> = FxHashMap::default();
        for a in actions {
            match a {
                Action::Compute { worker, task } => {
                    let inputs = self.core.inputs(task).to_vec();
                    let mut who_has = Vec::new();
                    for &i in &inputs {
                        let holders = self.core.who_has(i);
                        if !holders.contains(&worker)
                            && !who_has.iter().any(|l: &Location| l.id == i)
                        {
                            who_has.push(self.location(i));
                        }
                    }
                    compute.entry(worker).or_default().push(ComputeTask {
                        id: task,
                        payload: self.core.payload(task).to_vec(),
                        inputs,
                        who_has,
                    });
                }
                Action::Release { worker, task } => {
                    release.entry(worker).or_default().push(task);
                }
                Action::Steal { worker, task } => {
                    steal.entry(worker).or_default().push(task);
                }
                Action::Progress { job, done } => {
                    progress.insert(job, done);
                }
                Action::Done { job } => {
                    if let Some(&conn) = self.jobs.get(&job) {
                        if let Some(done) = progress.remove(&job) {
                            self.send_client(conn, &ToClient::Progress { job, done });
                        }
                        let outputs = self
                            .core
                            .outputs(job)
                            .into_iter()
                            .map(|id| self.location(id))
                            .collect();
                        let peak_bytes = self.core.job_peak_bytes(job);
                        self.send_client(
                            conn,
                            &ToClient::Done {
                                job,
                                outputs,
                                peak_bytes,
                            },
                        );
                    }
                }
                Action::Failed {
                    job,
                    task,
                    op,
                    message,
                    panicked,
                } => {
                    progress.remove(&job);
                    if let Some(conn) = self.jobs.remove(&job) {
                        let task = task.and_then(|t| u32::try_from(t - job).ok());
                        self.send_client(
                            conn,
                            &ToClient::Failed {
                                job,
                                task,
                                op,
                                message,
                                panicked,
                            },
                        );
                    }
                }
            }
        }
        for (job, done) in progress {
            if let Some(&conn) = self.jobs.get(&job) {
                self.send_client(conn, &ToClient::Progress { job, done });
            }
        }
        for (w, tasks) in compute {
            self.send_worker(w, &ToWorker::Compute(tasks));
        }
        for (w, ids) in release {
            self.send_worker(w, &ToWorker::Release(ids));
        }
        for (w, ids) in steal {
            self.send_worker(w, &ToWorker::Steal(ids));
        }
    }

    fn send_worker(&self, w: WorkerId, msg: &ToWorker) {
        let Some(Some(conn)) = self.worker_conn.get(w as usize) else {
            return;
        };
        if let (Some((_, out)), Ok(m)) = (self.workers.get(conn), encode(msg)) {
            let _ = out.send(m);
        }
    }
}

/// Writes `address` to `path` (the scheduler file), whole, through a temporary file.
pub fn write_scheduler_file(path: &std::path::Path, address: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let body = format!(
        "{{\"address\": \"{address}\", \"protocol_version\": {}}}\n",
        frame::PROTOCOL_VERSION
    );
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| DistError::io(format!("writing the scheduler file {}", path.display()), e))
}
