//! The live dashboard: an HTTP server (default port 8787) with pages for the task stream,
//! progress per task group, worker memory, the workers table, the task graph by group and
//! the cluster's information and logs; a JSON API behind them (`docs/dashboard.md`); a
//! Prometheus `/metrics` endpoint; and `/individual-plots.json`, the index of single-pane
//! pages that dask-labextension reads.
//!
//! The scheduler (or the local executor, through [`local`]) *publishes* into a [`Hub`]:
//! an aggregated [`Snapshot`] at most every [`PUBLISH_EVERY`], and task-stream events into
//! a bounded ring. The server only reads the hub, on its own thread, so an open page costs
//! the scheduling loop nothing but the publication, and a browser never receives every task
//! of a large graph: the task stream is a bounded window of recent events and the graph is
//! drawn by task group.
//!
//! Other modules add JSON routes with [`Dashboard::start`]'s `extra` [`Router`] (for
//! example deployment's `/api/v1/adaptive_target` and `/api/v1/retire_workers`).

pub mod http;
pub mod local;
mod metrics;
pub mod publish;
mod routes;

pub use http::{Request, Response, Router};

use crate::{DistError, Result};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The default dashboard port (Dask's).
pub const DEFAULT_PORT: u16 = 8787;

/// How often publishers refresh the snapshot (at most).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Task-stream events kept (older ones are dropped).
pub const STREAM_CAPACITY: usize = 20_000;

/// Log lines kept for the logs page.
pub const LOG_CAPACITY: usize = 2_000;

/// What a task-stream bar shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A task ran.
    Compute,
    /// A worker fetched inputs from peers.
    Transfer,
    /// A worker spilled results to disk.
    Spill,
}

/// One bar of the task stream.
#[derive(Clone, Debug, Serialize)]
pub struct TaskEvent {
    /// Its sequence number (increasing; the API's `since` cursor).
    pub seq: u64,
    /// The worker's name.
    pub worker: Arc<str>,
    /// The lane (thread) within the worker.
    pub thread: u32,
    /// The task group (the key's prefix, as Dask names groups), or what moved for
    /// transfers and spills.
    pub group: Arc<str>,
    /// Start, in seconds since the dashboard started.
    pub start: f64,
    /// Stop, in seconds since the dashboard started.
    pub stop: f64,
    /// Compute, transfer or spill.
    pub kind: EventKind,
    /// Bytes moved (transfers and spills; results' bytes for computes).
    pub nbytes: u64,
}

/// One worker, as the dashboard shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerSnapshot {
    /// Its name.
    pub name: String,
    /// Its data address.
    pub address: String,
    /// Threads running tasks.
    pub nthreads: u32,
    /// Memory limit in bytes (0: none).
    pub memory_limit: u64,
    /// Bytes of results in memory.
    pub managed_bytes: u64,
    /// Process memory that is not results.
    pub unmanaged_bytes: u64,
    /// Bytes of results spilled to disk.
    pub spilled_bytes: u64,
    /// CPU use of its process in percent of one core, when known.
    pub cpu: Option<f64>,
    /// Tasks assigned to it and not finished.
    pub running: u64,
    /// Results it holds.
    pub stored: u64,
    /// Seconds since it was last heard from.
    pub last_seen: f64,
    /// Bytes it fetched from peers so far.
    pub bytes_fetched: u64,
    /// Being retired (its results moving to other workers before it exits).
    pub retiring: bool,
}

/// Tasks of one task group by state (Dask's progress bars).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// The group's name (a key prefix such as `sum-chunk`).
    pub name: String,
    /// Tasks of the group submitted (since its last completed run).
    pub total: u64,
    /// Waiting for inputs (or released).
    pub waiting: u64,
    /// Ready roots waiting for a free thread.
    pub queued: u64,
    /// On a worker.
    pub processing: u64,
    /// Results in memory.
    pub memory: u64,
    /// Failed.
    pub erred: u64,
    /// Finished (in memory or already released).
    pub done: u64,
}

/// Running totals (counters only grow).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Tasks finished.
    pub tasks_completed_total: u64,
    /// Tasks that failed.
    pub tasks_erred_total: u64,
    /// Bytes workers fetched from each other.
    pub bytes_transferred_total: u64,
    /// Jobs (graphs) submitted.
    pub jobs_total: u64,
    /// Scheduler loop iterations measured.
    pub loop_iterations_total: u64,
    /// Seconds spent in them.
    pub loop_seconds_total: f64,
    /// The longest iteration since the last snapshot, in seconds.
    pub loop_seconds_max: f64,
}

/// The aggregated state the pages show, refreshed by the publisher.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// `scheduler` or `local` (the threads executor).
    pub source: String,
    /// The scheduler's address (or a description of the local executor).
    pub address: String,
    /// Seconds since the dashboard started when this was taken.
    pub time: f64,
    /// The workers (one per process; the local executor is one).
    pub workers: Vec<WorkerSnapshot>,
    /// Task groups, in the order first seen.
    pub groups: Vec<GroupSnapshot>,
    /// Edges between groups: `[from, to]` indices into `groups` (some task of `to`
    /// reads a task of `from`).
    pub group_edges: Vec<[u32; 2]>,
    /// Running totals.
    pub counters: Counters,
}

struct HubState {
    snapshot: Arc<Snapshot>,
    stream: VecDeque<TaskEvent>,
    next_seq: u64,
    logs: VecDeque<(f64, String)>,
}

/// Where publishers put the dashboard's state and the server reads it.
pub struct Hub {
    epoch: Instant,
    started_unix: f64,
    state: Mutex<HubState>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    /// An empty hub; times are counted from now.
    pub fn new() -> Hub {
        Hub {
            epoch: Instant::now(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            state: Mutex::new(HubState {
                snapshot: Arc::default(),
                stream: VecDeque::new(),
                next_seq: 0,
                logs: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seconds since the hub started at `t`.
    pub fn seconds(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.epoch).as_secs_f64()
    }

    /// Seconds since the hub started.
    pub fn now(&self) -> f64 {
        self.seconds(Instant::now())
    }

    /// When the hub started, in seconds since the Unix epoch.
    pub fn started_unix(&self) -> f64 {
        self.started_unix
    }

    /// Replaces the snapshot and appends task-stream events (their `seq` is assigned
    /// here); the ring keeps the last [`STREAM_CAPACITY`].
    pub fn publish(&self, mut snapshot: Snapshot, events: impl IntoIterator<Item = TaskEvent>) {
        snapshot.time = self.now();
        let mut s = self.lock();
        for mut e in events {
            e.seq = s.next_seq;
            s.next_seq += 1;
            if s.stream.len() >= STREAM_CAPACITY {
                s.stream.pop_front();
            }
            s.stream.push_back(e);
        }
        s.snapshot = Arc::new(snapshot);
    }

    /// Adds a log line (the oldest go past [`LOG_CAPACITY`]).
    pub fn log(&self, line: impl Into<String>) {
        let t = self.now();
        let mut s = self.lock();
        if s.logs.len() >= LOG_CAPACITY {
            s.logs.pop_front();
        }
        s.logs.push_back((t, line.into()));
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// Task-stream events with `seq >= since`, at most `limit` (the most recent ones when
    /// there are more), and the cursor to ask with next time.
    pub fn events_since(&self, since: u64, limit: usize) -> (Vec<TaskEvent>, u64) {
        let s = self.lock();
        let first = s.stream.front().map_or(s.next_seq, |e| e.seq);
        let skip = since.saturating_sub(first) as usize;
        let avail = s.stream.len().saturating_sub(skip);
        let skip = skip + avail.saturating_sub(limit);
        (s.stream.iter().skip(skip).cloned().collect(), s.next_seq)
    }

    /// The last `limit` log lines, oldest first, as (seconds since start, line).
    pub fn logs(&self, limit: usize) -> Vec<(f64, String)> {
        let s = self.lock();
        let skip = s.logs.len().saturating_sub(limit);
        s.logs.iter().skip(skip).cloned().collect()
    }
}

/// Assigns task-stream lanes: a bar goes on the first lane of its worker that is free at
/// its start (workers do not say which thread ran a task), else on the lane free soonest.
#[derive(Debug, Default)]
pub struct Lanes {
    ends: Vec<Vec<f64>>,
}

impl Lanes {
    /// The lane for a bar of worker `w` (with `nthreads` lanes) from `start` to `stop`.
    pub fn place(&mut self, w: usize, nthreads: u32, start: f64, stop: f64) -> u32 {
        if self.ends.len() <= w {
            self.ends.resize(w + 1, Vec::new());
        }
        let ends = &mut self.ends[w];
        ends.resize(nthreads.max(1) as usize, f64::NEG_INFINITY);
        let lane = ends
            .iter()
            .position(|&e| e <= start + 1e-6)
            .unwrap_or_else(|| {
                let mut best = 0;
                for (i, &e) in ends.iter().enumerate() {
                    if e < ends[best] {
                        best = i;
                    }
                }
                best
            });
        ends[lane] = stop;
        lane as u32
    }
}

/// Where to serve: `None` for off, else `host:port` (`:0` for a free port).
pub fn parse_address(spec: &str) -> Result<Option<(String, u16)>> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("none") || spec.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let spec = spec.strip_prefix("http://").unwrap_or(spec);
    let (host, port) = match spec.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None if spec.chars().all(|c| c.is_ascii_digit()) => ("", spec),
        None => (spec, ""),
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        port.parse().map_err(|_| {
            DistError::Option(format!(
                "dashboard address {spec:?}: port {port:?} is not a number from 0 to 65535 \
                 (use HOST:PORT, :0 for any free port, or none)"
            ))
        })?
    };
    Ok(Some((host.trim_matches(['[', ']']).to_owned(), port)))
}

/// A running dashboard server (stopped on drop).
pub struct Dashboard {
    address: std::net::SocketAddr,
    hub: Arc<Hub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dashboard {
    /// Serves `hub` on `host:port` on a thread of its own, with the built-in routes and
    /// then `extra`'s. When `port` is taken and `fallback` is set, any free port is used
    /// instead (as Dask does when 8787 is busy).
    pub fn start(
        host: &str,
        port: u16,
        fallback: bool,
        hub: Arc<Hub>,
        extra: Router,
    ) -> Result<Dashboard> {
        let listener = match std::net::TcpListener::bind((host, port)) {
            Ok(l) => l,
            Err(e) if fallback && port != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                let l = std::net::TcpListener::bind((host, 0))
                    .map_err(|e| DistError::io(format!("binding the dashboard to {host}:0"), e))?;
                if let Ok(a) = l.local_addr() {
                    tracing::warn!(
                        "port {port} is already in use; the dashboard is at {} instead",
                        link_for(a)
                    );
                }
                l
            }
            Err(e) => {
                return Err(DistError::io(
                    format!("binding the dashboard to {host}:{port}"),
                    e,
                ));
            }
        };
        listener
            .set_nonblocking(true)
            .map_err(|e| DistError::io("configuring the dashboard's socket", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| DistError::io("reading the dashboard's address", e))?;
        let router = Arc::new(routes::router(hub.clone()).merge(extra));
        let blocking = router.blocking_threads();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("gridflow-dashboard".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(blocking)
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    // The server runs until the stop signal (or the handle's drop) ends
                    // `block_on`, which drops the runtime and every connection with it.
                    tokio::spawn(http::serve(listener, router));
                    let _ = rx.await;
                });
            })
            .map_err(|e| DistError::io("starting the dashboard thread", e))?;
        Ok(Dashboard {
            address,
            hub,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// The link to give users (`http://host:port/status`, as Dask's `dashboard_link`).
    pub fn link(&self) -> String {
        link_for(self.address)
    }

    /// The hub it serves.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// `http://host:port/status` for a dashboard listening on `address` (an unspecified host
/// becomes this machine's loopback, which a browser can open).
pub fn link_for(address: std::net::SocketAddr) -> String {
    let ip = address.ip();
    let host = if ip.is_unspecified() {
        "127.0.0.1".to_owned()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("http://{host}:{}/status", address.port())
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_address("none").unwrap(), None);
        assert_eq!(parse_address(":0").unwrap(), Some(("127.0.0.1".into(), 0)));
        assert_eq!(
            parse_address("0.0.0.0:9000").unwrap(),
            Some(("0.0.0.0".into(), 9000))
        );
        assert_eq!(
            parse_address("localhost").unwrap(),
            Some(("localhost".into(), DEFAULT_PORT))
        );
        let e = parse_address("host:xx").unwrap_err().to_string();
        assert!(e.contains("\"xx\"") && e.contains("host:xx"), "{e}");
    }

    #[test]
    fn ring_keeps_the_most_recent_events() {
        let hub = Hub::new();
        let ev = |i: u64| TaskEvent {
            seq: 0,
            worker: "w".into(),
            thread: 0,
            group: "g".into(),
            start: i as f64,
            stop: i as f64 + 1.0,
            kind: EventKind::Compute,
            nbytes: 0,
        };
        hub.publish(
            Snapshot::default(),
            (0..STREAM_CAPACITY as u64 + 10).map(ev),
        );
        let (all, next) = hub.events_since(0, usize::MAX);
        assert_eq!(all.len(), STREAM_CAPACITY);
        assert_eq!(all[0].seq, 10);
        assert_eq!(next, STREAM_CAPACITY as u64 + 10);
        let (recent, _) = hub.events_since(0, 5);
        assert_eq!(
            recent.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (next - 5..next).collect::<Vec<_>>()
        );
        let (none, _) = hub.events_since(next, 5);
        assert!(none.is_empty());
    }

    #[test]
    fn lanes_do_not_overlap() {
        let mut l = Lanes::default();
        assert_eq!(l.place(0, 2, 0.0, 1.0), 0);
        assert_eq!(l.place(0, 2, 0.5, 1.5), 1);
        assert_eq!(l.place(0, 2, 1.0, 2.0), 0);
        assert_eq!(l.place(1, 1, 0.0, 1.0), 0);
    }
}
