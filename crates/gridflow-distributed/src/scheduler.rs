//! The scheduler process: a tokio event loop around [`Core`].
//!
//! Each connection has a reader task (frames → events) and a writer task (messages →
//! frames). One loop owns the core: it handles every event already waiting, then sends
//! the resulting actions grouped per peer (one `Compute` batch and one `Release` batch
//! per worker, the last progress per job), so tiny tasks are not one round trip each.

mod retire;
mod scaling_http;

use crate::auth::{Security, Stream};
use crate::core::{Action, Config, Core, TaskId, WorkerId};
use crate::dashboard::publish::Recorder;
use crate::dashboard::{Dashboard, Hub};
use crate::frame::{self, encode, read_frame, write_frame};
use crate::messages::{
    Activity, ComputeTask, FromClient, FromWorker, Hello, Location, ToClient, ToWorker, Welcome,
    WorkerInfo,
};
use crate::{DistError, Result};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;
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
    /// A client asks to have its bytes relayed to this data address: is it a worker's?
    RelayCheck(String, tokio::sync::oneshot::Sender<bool>),
    /// Heartbeats to send and time-outs to check.
    Tick,
    /// The nanny saw a worker process end: its name and how.
    WorkerExited {
        name: String,
        reason: String,
        /// The tasks its threads were running when it died.
        running: Vec<u64>,
    },
    Shutdown,
}

/// The scheduler's log of cluster events (workers lost, tasks blamed), also printed.
pub type EventLog = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Tells a scheduler on a thread of this process how its workers' processes ended (the
/// nanny's side).
#[derive(Clone)]
pub(crate) struct ExitReporter(UnboundedSender<Event>);

impl ExitReporter {
    pub(crate) fn exited(&self, name: &str, reason: String, running: Vec<u64>) {
        let _ = self.0.send(Event::WorkerExited {
            name: name.to_owned(),
            reason,
            running,
        });
    }
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
    /// Keep jobs waiting when every worker has left (a nanny restarts them) instead of
    /// failing them.
    pub wait_for_workers: bool,
    /// Where to serve the dashboard (`HOST:PORT`, `:0` for any free port; a taken port
    /// falls back to a free one); `None` or `"none"`: no dashboard.
    pub dashboard_address: Option<String>,
    /// Routes added to the dashboard's own (JSON endpoints of other modules).
    pub dashboard_routes: crate::dashboard::Router,
}

impl Default for SchedulerOptions {
    fn default() -> SchedulerOptions {
        SchedulerOptions {
            security: Security::none(),
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(30),
            allowed_failures: 3,
            nanny_grace: Duration::ZERO,
            wait_for_workers: false,
            dashboard_address: None,
            dashboard_routes: crate::dashboard::Router::new(),
        }
    }
}

/// A scheduler running on a thread of this process (what [`crate::LocalCluster`] uses).
pub struct SchedulerHandle {
    address: SocketAddr,
    events: UnboundedSender<Event>,
    log: EventLog,
    thread: Option<std::thread::JoinHandle<()>>,
    dashboard: Option<Dashboard>,
}

impl SchedulerHandle {
    /// The address workers and clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The cluster events logged so far (workers lost and why, tasks blamed).
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The dashboard's URL (`http://host:port/status`), when it serves one.
    pub fn dashboard_link(&self) -> Option<String> {
        self.dashboard.as_ref().map(Dashboard::link)
    }

    pub(crate) fn exit_reporter(&self) -> ExitReporter {
        ExitReporter(self.events.clone())
    }

    /// Stops the scheduler: workers are told to shut down, then the loop ends.
    pub fn shutdown(&mut self) {
        let _ = self.events.send(Event::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.dashboard = None;
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
    let log = EventLog::default();
    let log2 = log.clone();
    let dashboard = start_dashboard(&options, &address.to_string())?;
    let hub = dashboard.as_ref().map(|d| d.hub().clone());
    let dashboard_address = dashboard.as_ref().map(|d| d.address().to_string());
    let thread = std::thread::Builder::new()
        .name("gridflow-scheduler".into())
        .spawn(move || {
            if let Err(e) = serve(listener, options, tx, rx, log2, hub, dashboard_address) {
                tracing::error!("gridflow scheduler: {e}");
            }
        })
        .map_err(|e| DistError::io("starting the scheduler thread", e))?;
    Ok(SchedulerHandle {
        address,
        events,
        log,
        thread: Some(thread),
        dashboard,
    })
}

/// Starts the dashboard `options` ask for (none when `dashboard_address` is `None` or
/// `"none"`), for the scheduler at `address`.
pub fn start_dashboard(options: &SchedulerOptions, address: &str) -> Result<Option<Dashboard>> {
    let Some(spec) = &options.dashboard_address else {
        return Ok(None);
    };
    let Some((host, port)) = crate::dashboard::parse_address(spec)? else {
        return Ok(None);
    };
    let hub = Arc::new(Hub::new());
    hub.log(format!(
        "scheduler at {}{address}",
        options.security.scheme()
    ));
    // The scaling endpoints (`/api/v1/adaptive_target`, `/api/v1/retire_workers`) on every
    // scheduler's dashboard.
    let routes = options
        .dashboard_routes
        .clone()
        .merge(scaling_http::routes(address, &options.security));
    Dashboard::start(&host, port, true, hub, routes).map(Some)
}

/// Runs a scheduler on the calling thread until it is shut down; `on_dashboard` is
/// called with the dashboard's link once it serves (if it does).
pub fn run(
    listener: std::net::TcpListener,
    options: SchedulerOptions,
    on_dashboard: impl FnOnce(&str),
) -> Result<()> {
    let address = listener
        .local_addr()
        .map_err(|e| DistError::io("reading the scheduler's address", e))?;
    let dashboard = start_dashboard(&options, &address.to_string())?;
    if let Some(d) = &dashboard {
        on_dashboard(&d.link());
    }
    let hub = dashboard.as_ref().map(|d| d.hub().clone());
    let dashboard_address = dashboard.as_ref().map(|d| d.address().to_string());
    let (tx, rx) = unbounded_channel();
    let r = serve(
        listener,
        options,
        tx,
        rx,
        EventLog::default(),
        hub,
        dashboard_address,
    );
    drop(dashboard);
    r
}

fn serve(
    listener: std::net::TcpListener,
    options: SchedulerOptions,
    tx: UnboundedSender<Event>,
    rx: UnboundedReceiver<Event>,
    log: EventLog,
    hub: Option<Arc<Hub>>,
    dashboard: Option<String>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DistError::io("starting the scheduler's event loop", e))?;
    let listener_address = format!(
        "{}{}",
        options.security.scheme(),
        listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string())
    );
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener)
            .map_err(|e| DistError::io("listening for connections", e))?;
        // Held by every connection's writer: shutting down waits until they are done.
        let writers = Arc::new(());
        tokio::spawn(accept(
            listener,
            tx.clone(),
            options.security.clone(),
            Arc::downgrade(&writers),
            dashboard.map(Arc::from),
        ));
        let every = options.heartbeat_interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if tx.send(Event::Tick).is_err() {
                    return;
                }
            }
        });
        let address = listener_address.clone();
        event_loop(
            rx,
            options,
            log,
            hub.map(|h| Recorder::new(h, address)),
            writers,
        )
        .await;
        Ok(())
    })
}

async fn accept(
    listener: TcpListener,
    tx: UnboundedSender<Event>,
    sec: Security,
    writers: std::sync::Weak<()>,
    dashboard: Option<Arc<str>>,
) {
    let mut next: ConnId = 0;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        next += 1;
        let conn = next;
        let tx = tx.clone();
        let sec = sec.clone();
        let dashboard = dashboard.clone();
        // Gone once the scheduler stops: no new connection is served.
        let Some(writers) = writers.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let served = async {
                let peer = peer.to_string();
                let s = crate::auth::accept(stream, &peer, &sec).await?;
                connection(s, peer, conn, tx.clone(), writers, dashboard).await
            };
            if let Err(e) = served.await {
                // A bad peer is reported and dropped; the scheduler keeps running.
                tracing::warn!(%peer, "gridflow scheduler: connection from {peer}: {e}");
            }
            let _ = tx.send(Event::Closed(conn));
        });
    }
}

async fn connection(
    mut stream: Stream,
    peer: String,
    conn: ConnId,
    tx: UnboundedSender<Event>,
    writers: Arc<()>,
    dashboard: Option<Arc<str>>,
) -> Result<()> {
    let Some(f) = read_frame(&mut stream, &peer).await? else {
        return Ok(());
    };
    let hello: Hello = f.decode(&peer)?;
    if let Hello::Relay { address } = hello {
        return relay(stream, &peer, &address, &tx).await;
    }
    let (mut r, w) = tokio::io::split(stream);
    let (out_tx, out_rx) = unbounded_channel::<Vec<u8>>();
    // Clients learn where the dashboard is (their `dashboard_link`); workers need not.
    let dashboard = match hello {
        Hello::Client => dashboard.map(|d| d.to_string()),
        _ => None,
    };
    out_tx
        .send(encode(&Welcome::Accepted { id: 0, dashboard })?)
        .map_err(|_| DistError::protocol(&peer, "scheduler stopping"))?;
    tokio::spawn(writer(w, peer.clone(), out_rx, writers));
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
                managed_bytes: 0,
                unmanaged_bytes: 0,
                spilled_bytes: 0,
                retiring: false,
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
        Hello::Relay { .. } => {}
    }
    Ok(())
}

/// Relays an authenticated client's bytes to one of this cluster's workers' data ports
/// (and back): the client reaches workers through a gateway that only routes to the
/// scheduler. Only data addresses of current workers are relayed, so the scheduler is no
/// open proxy; the client and the worker run their own handshake over the relayed bytes.
async fn relay(
    mut stream: Stream,
    peer: &str,
    address: &str,
    tx: &UnboundedSender<Event>,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let (ok_tx, ok_rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(Event::RelayCheck(address.to_owned(), ok_tx));
    let known = ok_rx.await.unwrap_or(false);
    let (tls, hostport) = crate::auth::parse_address(address);
    let target = if !known {
        Err(format!(
            "{address} is not the data address of a worker of this cluster"
        ))
    } else if tls {
        Err("relaying to tls:// data ports is not supported".to_owned())
    } else {
        tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| format!("connecting to {address}: {e}"))
    };
    let reply = match &target {
        Ok(_) => Welcome::Accepted {
            id: 0,
            dashboard: None,
        },
        Err(why) => Welcome::Refused(why.clone()),
    };
    write_frame(&mut stream, peer, &encode(&reply)?, &[]).await?;
    stream
        .flush()
        .await
        .map_err(|e| DistError::io(format!("{peer}: answering a relay request"), e))?;
    let mut worker = match target {
        Ok(w) => w,
        Err(why) => return Err(DistError::protocol(peer, format!("relay refused: {why}"))),
    };
    let _ = worker.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut stream, &mut worker)
        .await
        .map_err(|e| DistError::io(format!("{peer}: relaying to {address}"), e))?;
    Ok(())
}

/// Writes queued messages as frames, flushing once the queue is empty.
async fn writer(
    w: WriteHalf<Stream>,
    peer: String,
    mut rx: UnboundedReceiver<Vec<u8>>,
    _alive: Arc<()>,
) {
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
    /// When a client last submitted or scattered, or a task last finished (idle time).
    last_activity: std::time::Instant,
    life: Liveness,
    /// Workers retiring and clients waiting for them (`retire.rs`).
    retiring: retire::Retirements,
    /// What the dashboard shows, when it runs.
    dash: Option<Recorder>,
}

/// What the scheduler knows of its workers' health.
struct Liveness {
    options: SchedulerOptions,
    /// When each worker connection was last heard from.
    last_seen: FxHashMap<ConnId, std::time::Instant>,
    /// Workers whose connection closed, waiting (until the deadline) for the nanny to say
    /// how they died.
    pending: Vec<(WorkerId, std::time::Instant)>,
    /// How workers died, by name, as the nanny reported before their connection closed.
    exits: FxHashMap<String, (String, Vec<u64>)>,
    log: EventLog,
}

async fn event_loop(
    mut rx: UnboundedReceiver<Event>,
    options: SchedulerOptions,
    log: EventLog,
    dash: Option<Recorder>,
    writers: Arc<()>,
) {
    let mut s = State {
        core: Core::new(Config {
            allowed_failures: options.allowed_failures,
            wait_for_workers: options.wait_for_workers,
            ..Config::default()
        }),
        life: Liveness {
            options,
            last_seen: FxHashMap::default(),
            pending: Vec::new(),
            exits: FxHashMap::default(),
            log,
        },
        workers: FxHashMap::default(),
        worker_conn: Vec::new(),
        worker_info: Vec::new(),
        clients: FxHashMap::default(),
        jobs: FxHashMap::default(),
        last_activity: std::time::Instant::now(),
        retiring: retire::Retirements::default(),
        dash,
    };
    while let Some(ev) = rx.recv().await {
        let began = std::time::Instant::now();
        let mut stop = s.handle(ev);
        while !stop {
            match rx.try_recv() {
                Ok(ev) => stop = s.handle(ev),
                Err(_) => break,
            }
        }
        s.advance_retirements();
        s.core.balance();
        s.dispatch();
        if s.dash.is_some() {
            s.record_iteration(began);
        }
        if stop {
            for (_, out) in s.workers.values() {
                if let Ok(m) = encode(&ToWorker::Shutdown) {
                    let _ = out.send(m);
                }
            }
            // Let the writers send the shutdown before the runtime stops: each ends once
            // its queue is written and every sender is gone (at most 50 ms, for senders
            // held elsewhere).
            s.workers.clear();
            s.clients.clear();
            let deadline = std::time::Instant::now() + Duration::from_millis(50);
            while Arc::strong_count(&writers) > 1 && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
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
                self.life.last_seen.insert(conn, std::time::Instant::now());
                if self.worker_conn.len() <= id as usize {
                    self.worker_conn.resize(id as usize + 1, None);
                    self.worker_info.resize(id as usize + 1, info.clone());
                }
                self.worker_conn[id as usize] = Some(conn);
                self.info(format!(
                    "worker {} joined: {} thread(s), data at {}",
                    info.name, info.nthreads, info.address
                ));
                if let Some(d) = &mut self.dash {
                    d.joined(id, &info);
                }
                self.worker_info[id as usize] = info;
            }
            Event::Client { conn, out } => {
                self.clients.insert(conn, out);
            }
            Event::RelayCheck(address, reply) => {
                let known = self
                    .worker_info
                    .iter()
                    .zip(&self.worker_conn)
                    .any(|(i, c)| c.is_some() && i.address == address);
                let _ = reply.send(known);
            }
            Event::FromWorker(conn, msg) => {
                if matches!(msg, FromWorker::Finished(_)) {
                    self.last_activity = std::time::Instant::now();
                }
                let Some(&(w, _)) = self.workers.get(&conn) else {
                    return false;
                };
                self.life.last_seen.insert(conn, std::time::Instant::now());
                match msg {
                    FromWorker::Heartbeat => {}
                    FromWorker::Replicated { ids, failed } => self.replicated(w, &ids, &failed),
                    FromWorker::Paused { paused, returned } => {
                        self.note(format!(
                            "worker {} {}",
                            self.worker_name(w),
                            if paused {
                                format!(
                                    "paused: its memory is above its pause threshold; {} \
                                     queued task(s) handed back",
                                    returned.len()
                                )
                            } else {
                                "resumed".into()
                            }
                        ));
                        self.core.set_paused(w, paused, &returned);
                        if self.retiring.contains(w) {
                            // Retiring: it stays out of the placement even with memory free.
                            self.core.set_paused(w, true, &[]);
                        }
                    }
                    FromWorker::Started(ids) => {
                        for id in ids {
                            self.core.started(w, id);
                        }
                    }
                    FromWorker::Missing {
                        id,
                        inputs,
                        holder,
                        message,
                    } => {
                        let h = self.worker_by_address(&holder);
                        self.note(format!(
                            "worker {} could not fetch inputs of task {id}: {message}; \
                             rescheduling it",
                            self.worker_name(w)
                        ));
                        self.core.missing(w, id, &inputs, h);
                    }
                    FromWorker::Finished(done) => {
                        if let Some(r) = &mut self.dash {
                            r.finished(&self.core, w, self.worker_info.get(w as usize), &done);
                        }
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
                    } => {
                        if let Some(r) = &mut self.dash {
                            r.failed();
                        }
                        self.core.failed(w, id, op, message, panicked);
                    }
                    FromWorker::Metrics {
                        bytes_fetched,
                        managed,
                        spilled,
                        rss,
                        cpu,
                    } => {
                        if let Some(i) = self.worker_info.get_mut(w as usize) {
                            i.bytes_fetched = bytes_fetched;
                            i.managed_bytes = managed;
                            i.spilled_bytes = spilled;
                            i.unmanaged_bytes = rss.saturating_sub(managed);
                            if let Some(r) = &mut self.dash {
                                r.metrics(w, i, cpu);
                            }
                        }
                    }
                }
            }
            Event::FromClient(conn, msg) => {
                if matches!(msg, FromClient::Submit { .. } | FromClient::Scatter { .. }) {
                    self.last_activity = std::time::Instant::now();
                }
                self.client_message(conn, msg);
            }
            Event::Tick => self.tick(),
            Event::WorkerExited {
                name,
                reason,
                running,
            } => {
                let pending = self
                    .life
                    .pending
                    .iter()
                    .position(|&(w, _)| self.worker_name(w) == name);
                match pending {
                    Some(i) => {
                        let (w, _) = self.life.pending.swap_remove(i);
                        for id in running {
                            self.core.started(w, id);
                        }
                        self.lose_worker(w, &reason);
                    }
                    None => {
                        self.life.exits.insert(name, (reason, running));
                    }
                }
            }
            Event::Closed(conn) => {
                self.life.last_seen.remove(&conn);
                if let Some((w, _)) = self.workers.remove(&conn) {
                    self.worker_conn[w as usize] = None;
                    let name = self.worker_name(w);
                    if let Some((reason, running)) = self.life.exits.remove(&name) {
                        for id in running {
                            self.core.started(w, id);
                        }
                        self.lose_worker(w, &reason);
                    } else if self.life.options.nanny_grace.is_zero() {
                        self.lose_worker(w, "its connection closed");
                    } else {
                        // Its nanny will say how it died; wait a little for that.
                        let deadline = std::time::Instant::now() + self.life.options.nanny_grace;
                        self.life.pending.push((w, deadline));
                    }
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

    fn worker_name(&self, w: WorkerId) -> String {
        self.worker_info
            .get(w as usize)
            .map_or_else(|| format!("{w}"), |i| i.name.clone())
    }

    fn worker_by_address(&self, address: &str) -> Option<WorkerId> {
        self.worker_info
            .iter()
            .position(|i| i.address == address)
            .map(|w| w as WorkerId)
    }

    /// Measures one loop iteration and publishes the dashboard's snapshot when due.
    fn record_iteration(&mut self, began: std::time::Instant) {
        let Some(r) = &mut self.dash else { return };
        r.iteration(began.elapsed().as_secs_f64());
        if !r.due() {
            return;
        }
        let live = self
            .worker_conn
            .iter()
            .enumerate()
            .filter_map(|(w, c)| Some((w as WorkerId, (*c)?)))
            .map(|(w, c)| {
                let info = self.worker_info[w as usize].clone();
                (w, info, self.life.last_seen.get(&c).copied())
            });
        r.publish(&self.core, live);
    }

    /// Logs a routine event (at info level, and on the dashboard's logs page).
    fn info(&self, line: String) {
        tracing::info!("gridflow scheduler: {line}");
        if let Some(r) = &self.dash {
            r.hub().log(line);
        }
    }

    /// Logs a cluster event (printed, and kept for [`SchedulerHandle::log`]).
    fn note(&self, line: String) {
        tracing::warn!("gridflow scheduler: {line}");
        if let Some(r) = &self.dash {
            r.hub().log(line.clone());
        }
        let mut log = self
            .life
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() < 10_000 {
            log.push(line);
        }
    }

    /// A worker is gone for `reason`: its tasks are rescheduled and its results recomputed.
    fn lose_worker(&mut self, w: WorkerId, reason: &str) {
        let (name, address) = self
            .worker_info
            .get(w as usize)
            .map_or_else(Default::default, |i| (i.name.clone(), i.address.clone()));
        let running = self.core.processing(w);
        if let Some(r) = &mut self.dash {
            r.left(w);
        }
        self.note(format!(
            "lost worker {name} ({address}): {reason}; {running} task(s) it was running and \
             results only it held are computed again elsewhere"
        ));
        self.core
            .remove_worker_because(w, &format!("worker {name} ({address}) {reason}"));
    }

    /// Heartbeats out; workers silent past the time-out, and closed ones whose nanny did not
    /// report in time, are removed.
    fn tick(&mut self) {
        let now = std::time::Instant::now();
        let timeout = self.life.options.heartbeat_timeout;
        let silent: Vec<ConnId> = self
            .life
            .last_seen
            .iter()
            .filter(|(_, t)| now.duration_since(**t) > timeout)
            .map(|(c, _)| *c)
            .collect();
        for conn in silent {
            self.life.last_seen.remove(&conn);
            if let Some((w, out)) = self.workers.remove(&conn) {
                if let Ok(m) = encode(&ToWorker::Shutdown) {
                    let _ = out.send(m);
                }
                self.worker_conn[w as usize] = None;
                self.lose_worker(
                    w,
                    &format!("sent no heartbeat for {timeout:?} (its heartbeat time-out)"),
                );
            }
        }
        let (due, wait): (Vec<_>, Vec<_>) = self
            .life
            .pending
            .drain(..)
            .partition(|&(_, deadline)| deadline <= now);
        self.life.pending = wait;
        for (w, _) in due {
            self.lose_worker(w, "its connection closed");
        }
        if let Ok(m) = encode(&ToWorker::Heartbeat) {
            for (_, out) in self.workers.values() {
                let _ = out.send(m.clone());
            }
        }
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
                groups,
            } => {
                let tasks = tasks.into_iter().map(|t| (t.payload, t.inputs)).collect();
                let submitted =
                    self.core
                        .submit_grouped(tasks, outputs, &held, &groups.names, &groups.of_task);
                match submitted {
                    Ok(job) => {
                        self.info(format!(
                            "computation {job} submitted: {} task(s) in {} group(s)",
                            groups.of_task.len(),
                            groups.names.len()
                        ));
                        if let Some(r) = &mut self.dash {
                            r.job();
                        }
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
            FromClient::Activity => {
                let pending = self.core.queued()
                    + (0..self.worker_conn.len())
                        .map(|w| self.core.processing(w as WorkerId))
                        .sum::<usize>();
                let busy = pending > 0;
                let a = Activity {
                    idle_ms: if busy {
                        0
                    } else {
                        u64::try_from(self.last_activity.elapsed().as_millis()).unwrap_or(u64::MAX)
                    },
                    jobs: self.jobs.len() as u64,
                    pending_tasks: pending as u64,
                };
                self.send_client(conn, &ToClient::Activity(a));
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
            FromClient::RetireWorkers { names } => self.retire_workers(conn, names),
            FromClient::AdaptiveTarget => {
                let t = self.adaptive_target();
                self.send_client(conn, &ToClient::AdaptiveTarget(t));
            }
            FromClient::Locate { job } => {
                let known = self.jobs.get(&job) == Some(&conn) && self.core.locate(job);
                if !known {
                    self.send_client(
                        conn,
                        &ToClient::Failed {
                            job,
                            task: None,
                            op: "locate".into(),
                            message: format!(
                                "computation {job} is not known to the scheduler (released, \
                                 cancelled or failed)"
                            ),
                            panicked: false,
                        },
                    );
                } else {
                    self.info(format!(
                        "a client asks again where the outputs of computation {job} are"
                    ));
                }
            }
        }
    }

    /// Where a client fetches result `id`: a holder that is not retiring when there is one
    /// (a retiring worker is about to leave).
    fn location(&self, id: TaskId) -> Location {
        let holders = self.core.who_has(id);
        let address = holders
            .iter()
            .find(|&&w| !self.retiring.contains(w))
            .or_else(|| holders.first())
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
                    self.info(format!("computation {job} finished"));
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
            if let Some(r) = &mut self.dash {
                r.released(w, ids.len());
            }
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
