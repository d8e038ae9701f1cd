//! The scheduler's side of the dashboard: a [`Recorder`] the event loop feeds in O(1) per
//! task (a bar pushed to a local buffer, counters bumped) and that publishes an aggregated
//! [`Snapshot`] into the [`Hub`] at most every [`PUBLISH_EVERY`].

use super::{
    Counters, EventKind, GroupSnapshot, Hub, Lanes, PUBLISH_EVERY, Snapshot, TaskEvent,
    WorkerSnapshot,
};
use crate::core::{Core, WorkerId};
use crate::messages::{TaskDone, WorkerInfo};
use std::sync::Arc;
use std::time::Instant;

/// Bars buffered between publications at most (a flood beyond this keeps the newest).
const BUFFER: usize = super::STREAM_CAPACITY;

/// Per-worker figures the scheduler does not otherwise keep.
#[derive(Debug, Default, Clone)]
struct PerWorker {
    name: Arc<str>,
    stored: u64,
    fetched: u64,
    spilled: u64,
    last_metrics: Option<Instant>,
    cpu: Option<f64>,
}

/// What the scheduler records for its dashboard.
pub struct Recorder {
    hub: Arc<Hub>,
    address: String,
    last_publish: Instant,
    events: Vec<TaskEvent>,
    lanes: Lanes,
    workers: Vec<PerWorker>,
    counters: Counters,
    /// Publish at the next iteration whatever the time (workers joined or left).
    force: bool,
}

impl Recorder {
    /// A recorder publishing into `hub` for the scheduler at `address`.
    pub fn new(hub: Arc<Hub>, address: String) -> Recorder {
        Recorder {
            hub,
            address,
            last_publish: Instant::now(),
            events: Vec::new(),
            lanes: Lanes::default(),
            workers: Vec::new(),
            counters: Counters::default(),
            force: true,
        }
    }

    /// The hub (for log lines).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn worker(&mut self, w: WorkerId, info: Option<&WorkerInfo>) -> &mut PerWorker {
        let i = w as usize;
        if self.workers.len() <= i {
            self.workers.resize(i + 1, PerWorker::default());
        }
        let p = &mut self.workers[i];
        if p.name.is_empty()
            && let Some(info) = info
        {
            p.name = info.name.as_str().into();
        }
        p
    }

    /// A worker joined (or rejoined under the same id).
    pub fn joined(&mut self, w: WorkerId, info: &WorkerInfo) {
        let p = self.worker(w, Some(info));
        *p = PerWorker {
            name: info.name.as_str().into(),
            ..PerWorker::default()
        };
        self.force = true;
    }

    /// A worker is gone: it stores nothing any more.
    pub fn left(&mut self, w: WorkerId) {
        if let Some(p) = self.workers.get_mut(w as usize) {
            p.stored = 0;
        }
        self.force = true;
    }

    /// Tasks finished on worker `w` (before the core forgets them).
    pub fn finished(
        &mut self,
        core: &Core,
        w: WorkerId,
        info: Option<&WorkerInfo>,
        done: &[TaskDone],
    ) {
        let now = self.hub.now();
        let nthreads = info.map_or(1, |i| i.nthreads);
        let name = self.worker(w, info).name.clone();
        self.worker(w, info).stored += done.len() as u64;
        self.counters.tasks_completed_total += done.len() as u64;
        for d in done {
            let start = (now - d.micros as f64 / 1e6).max(0.0);
            let thread = self.lanes.place(w as usize, nthreads, start, now);
            if self.events.len() >= BUFFER {
                // A flood between two publications: the page shows a recent window only.
                self.events.clear();
            }
            self.events.push(TaskEvent {
                seq: 0,
                worker: name.clone(),
                thread,
                group: core
                    .group_name(d.id)
                    .cloned()
                    .unwrap_or_else(|| "task".into()),
                start,
                stop: now,
                kind: EventKind::Compute,
                nbytes: d.nbytes,
            });
        }
    }

    /// A task failed.
    pub fn failed(&mut self) {
        self.counters.tasks_erred_total += 1;
    }

    /// A job was accepted.
    pub fn job(&mut self) {
        self.counters.jobs_total += 1;
    }

    /// Worker `w` was told to drop `n` results.
    pub fn released(&mut self, w: WorkerId, n: usize) {
        if let Some(p) = self.workers.get_mut(w as usize) {
            p.stored = p.stored.saturating_sub(n as u64);
        }
    }

    /// Worker `w` reported its memory and transfer totals: growth since the last report
    /// is drawn as a transfer or spill bar on the worker's extra lane.
    pub fn metrics(&mut self, w: WorkerId, info: &WorkerInfo, cpu: f32) {
        let now_i = Instant::now();
        let now = self.hub.seconds(now_i);
        let lane = info.nthreads.max(1);
        let last = self.worker(w, Some(info)).last_metrics;
        let since = last.map_or(now, |t| self.hub.seconds(t).min(now));
        let p = self.worker(w, Some(info));
        let fetched = info.bytes_fetched.saturating_sub(p.fetched);
        let spilled = info.spilled_bytes.saturating_sub(p.spilled);
        p.fetched = p.fetched.max(info.bytes_fetched);
        p.spilled = info.spilled_bytes;
        p.last_metrics = Some(now_i);
        p.cpu = Some(f64::from(cpu));
        let name = p.name.clone();
        self.counters.bytes_transferred_total += fetched;
        for (kind, nbytes, what) in [
            (EventKind::Transfer, fetched, "transfer"),
            (EventKind::Spill, spilled, "spill"),
        ] {
            if nbytes > 0 {
                self.events.push(TaskEvent {
                    seq: 0,
                    worker: name.clone(),
                    thread: lane,
                    group: what.into(),
                    start: since,
                    stop: now,
                    kind,
                    nbytes,
                });
            }
        }
    }

    /// One iteration of the event loop took `seconds`.
    pub fn iteration(&mut self, seconds: f64) {
        let c = &mut self.counters;
        c.loop_iterations_total += 1;
        c.loop_seconds_total += seconds;
        c.loop_seconds_max = c.loop_seconds_max.max(seconds);
    }

    /// True when a publication is due.
    pub fn due(&self) -> bool {
        self.force || self.last_publish.elapsed() >= PUBLISH_EVERY
    }

    /// Publishes a snapshot of the scheduler's state. `workers` are the live workers with
    /// their id, information, tasks running and when last heard from.
    pub fn publish(
        &mut self,
        core: &Core,
        workers: impl Iterator<Item = (WorkerId, WorkerInfo, Option<Instant>)>,
    ) {
        self.last_publish = Instant::now();
        self.force = false;
        let workers = workers
            .map(|(w, info, seen)| {
                let (stored, cpu) = self
                    .workers
                    .get(w as usize)
                    .map_or((0, None), |p| (p.stored, p.cpu));
                WorkerSnapshot {
                    running: core.processing(w) as u64,
                    stored,
                    last_seen: seen.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                    cpu,
                    name: info.name,
                    address: info.address,
                    nthreads: info.nthreads,
                    memory_limit: info.memory_limit,
                    managed_bytes: info.managed_bytes,
                    unmanaged_bytes: info.unmanaged_bytes,
                    spilled_bytes: info.spilled_bytes,
                    bytes_fetched: info.bytes_fetched,
                    retiring: info.retiring,
                }
            })
            .collect();
        let groups = core
            .groups()
            .iter()
            .map(|g| GroupSnapshot {
                name: g.name.to_string(),
                total: g.total,
                waiting: g.waiting,
                queued: g.queued,
                processing: g.processing,
                memory: g.memory,
                erred: g.erred,
                done: g.done,
            })
            .collect();
        let mut group_edges: Vec<[u32; 2]> = core.group_edges().map(|(a, b)| [a, b]).collect();
        group_edges.sort_unstable();
        let snapshot = Snapshot {
            source: "scheduler".into(),
            address: self.address.clone(),
            time: 0.0,
            workers,
            groups,
            group_edges,
            counters: self.counters.clone(),
        };
        self.counters.loop_seconds_max = 0.0;
        self.hub.publish(snapshot, self.events.drain(..));
    }
}
