//! The dashboard for the local (threads) executor: a [`TaskObserver`] that turns the
//! executor's task runs into the same [`Snapshot`]s and task-stream events the scheduler
//! publishes, so `gridflow eval --dashboard` serves the same pages for a single process.
//! gridflow-runtime stays free of HTTP: it only calls the observer.

use super::{
    Counters, EventKind, GroupSnapshot, Hub, PUBLISH_EVERY, Snapshot, TaskEvent, WorkerSnapshot,
};
use gridflow_graph::Key;
use gridflow_runtime::{TaskObserver, TaskRun};
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

struct State {
    threads: usize,
    groups: Vec<GroupSnapshot>,
    by_name: FxHashMap<String, usize>,
    edges: Vec<[u32; 2]>,
    events: Vec<TaskEvent>,
    counters: Counters,
    last_publish: Instant,
}

/// Feeds a [`Hub`] from the local executor (see the module's documentation).
pub struct LocalObserver {
    hub: Arc<Hub>,
    name: Arc<str>,
    state: Mutex<State>,
}

impl LocalObserver {
    /// An observer publishing into `hub`.
    pub fn new(hub: Arc<Hub>) -> LocalObserver {
        LocalObserver {
            hub,
            name: "local".into(),
            state: Mutex::new(State {
                threads: 1,
                groups: Vec::new(),
                by_name: FxHashMap::default(),
                edges: Vec::new(),
                events: Vec::new(),
                counters: Counters::default(),
                last_publish: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, s: &mut State) {
        s.last_publish = Instant::now();
        let rss = crate::machine::process_rss(std::process::id()).unwrap_or(0);
        let running = s.groups.iter().map(|g| g.processing).sum();
        let snapshot = Snapshot {
            source: "local".into(),
            address: format!("this process (pid {})", std::process::id()),
            time: 0.0,
            workers: vec![WorkerSnapshot {
                name: self.name.to_string(),
                address: "in-process".into(),
                nthreads: s.threads as u32,
                // The executor does not say what it holds: the process's memory is shown
                // whole, as unmanaged.
                unmanaged_bytes: rss,
                running,
                ..WorkerSnapshot::default()
            }],
            groups: s.groups.clone(),
            group_edges: s.edges.clone(),
            counters: s.counters.clone(),
        };
        self.hub.publish(snapshot, s.events.drain(..));
    }

    /// Publishes the current state now (for a page opened before any run).
    pub fn publish_now(&self) {
        let mut s = self.lock();
        self.publish(&mut s);
    }
}

impl TaskObserver for LocalObserver {
    fn begin(&self, keys: &mut dyn Iterator<Item = &Key>, threads: usize) {
        let mut s = self.lock();
        s.threads = threads.max(1);
        s.counters.jobs_total += 1;
        // A group with nothing left to run starts a new run.
        for g in &mut s.groups {
            if g.waiting == 0 && g.processing == 0 {
                g.total = 0;
                g.done = 0;
                g.memory = 0;
            }
        }
        let mut last: Option<(usize, String)> = None;
        for k in keys {
            let p = k.prefix();
            let g = match &last {
                Some((g, name)) if name == p => *g,
                _ => {
                    let g = match s.by_name.get(p) {
                        Some(&g) => g,
                        None => {
                            let g = s.groups.len();
                            s.groups.push(GroupSnapshot {
                                name: p.to_owned(),
                                ..GroupSnapshot::default()
                            });
                            s.by_name.insert(p.to_owned(), g);
                            g
                        }
                    };
                    // Consecutive groups in priority order feed each other (the local
                    // executor's plan does not say which task reads which here).
                    if let Some((prev, _)) = &last {
                        let e = [*prev as u32, g as u32];
                        if *prev != g && !s.edges.contains(&e) && !s.edges.contains(&[e[1], e[0]]) {
                            s.edges.push(e);
                        }
                    }
                    last = Some((g, p.to_owned()));
                    g
                }
            };
            if let Some(x) = s.groups.get_mut(g) {
                x.total += 1;
                x.waiting += 1;
            }
        }
        self.publish(&mut s);
    }

    fn finished(&self, run: &TaskRun<'_>) {
        let start = self.hub.seconds(run.start);
        let stop = self.hub.seconds(run.stop);
        let mut s = self.lock();
        let p = run.key.prefix();
        let group: Arc<str> = match s.by_name.get(p).copied() {
            Some(g) => {
                if let Some(x) = s.groups.get_mut(g) {
                    x.waiting = x.waiting.saturating_sub(1);
                    x.done += 1;
                    x.memory += 1;
                }
                p.into()
            }
            None => p.into(),
        };
        s.counters.tasks_completed_total += 1;
        if s.events.len() < super::STREAM_CAPACITY {
            s.events.push(TaskEvent {
                seq: 0,
                worker: self.name.clone(),
                thread: run.thread as u32,
                group,
                start,
                stop,
                kind: EventKind::Compute,
                nbytes: run.nbytes as u64,
            });
        }
        if s.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish(&mut s);
        }
    }

    fn end(&self) {
        let mut s = self.lock();
        // Results of a finished run are handed back: nothing is held by the executor.
        for g in &mut s.groups {
            g.memory = 0;
        }
        self.publish(&mut s);
    }
}
