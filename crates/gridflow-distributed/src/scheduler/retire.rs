//! Graceful retirement of workers and the adaptive target, on the scheduler's side.
//!
//! A retiring worker is paused (it gets no new tasks) and finishes what it has; then the
//! results it alone holds are copied to workers that stay (each recipient fetches them
//! from it through the ordinary peer data path, [`ToWorker::Replicate`]); then it is told
//! to exit and removed without anything being recomputed. With no worker left to take its
//! results, or when copying takes longer than [`MOVE_TIMEOUT`], it retires anyway: what it
//! alone held is recomputed when needed, as for a lost worker.

use super::{ConnId, State};
use crate::core::{AdaptiveConfig, TaskId, WorkerId};
use crate::messages::{AdaptiveTarget, Location, ToClient, ToWorker};
use rustc_hash::{FxHashMap, FxHashSet};
use std::time::{Duration, Instant};

/// How long the results of a retiring worker may take to move before it retires anyway.
pub(super) const MOVE_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker being retired.
struct Moving {
    name: String,
    /// Results being copied away, and the worker fetching each.
    in_flight: FxHashMap<TaskId, WorkerId>,
    /// When the first results were sent away (the move's time-out runs from there).
    since: Option<Instant>,
    moved: usize,
}

/// A client waiting for workers to retire.
struct Request {
    conn: ConnId,
    workers: Vec<WorkerId>,
    retired: Vec<String>,
    unknown: Vec<String>,
}

/// Retirements under way.
#[derive(Default)]
pub(super) struct Retirements {
    workers: FxHashMap<WorkerId, Moving>,
    requests: Vec<Request>,
}

impl Retirements {
    /// True while worker `w` is retiring (it must stay paused).
    pub(super) fn contains(&self, w: WorkerId) -> bool {
        self.workers.contains_key(&w)
    }
}

impl State {
    /// A client asked to retire the workers `names`.
    pub(super) fn retire_workers(&mut self, conn: ConnId, names: Vec<String>) {
        let mut req = Request {
            conn,
            workers: Vec::new(),
            retired: Vec::new(),
            unknown: Vec::new(),
        };
        for name in names {
            let found = self.worker_info.iter().enumerate().position(|(i, x)| {
                x.name == name && self.worker_conn.get(i).is_some_and(Option::is_some)
            });
            match found {
                Some(w) => {
                    let w = w as WorkerId;
                    req.workers.push(w);
                    if !self.retiring.contains(w) {
                        self.info(format!("retiring worker {name}"));
                        self.core.set_paused(w, true, &[]);
                        // Listed as retiring (clients' `Info`, the dashboard) until it exits.
                        if let Some(i) = self.worker_info.get_mut(w as usize) {
                            i.retiring = true;
                        }
                        self.retiring.workers.insert(
                            w,
                            Moving {
                                name,
                                in_flight: FxHashMap::default(),
                                since: None,
                                moved: 0,
                            },
                        );
                    }
                }
                None => req.unknown.push(name),
            }
        }
        self.retiring.requests.push(req);
        self.advance_retirements();
    }

    /// Moves retirements on: workers done with their tasks send their results away, those
    /// with nothing left to move exit; clients whose workers all retired are answered.
    /// Cheap when nothing retires (called after every batch of events).
    pub(super) fn advance_retirements(&mut self) {
        if self.retiring.workers.is_empty() && self.retiring.requests.is_empty() {
            return;
        }
        let mut ids: Vec<WorkerId> = self.retiring.workers.keys().copied().collect();
        ids.sort_unstable();
        let mut done: Vec<WorkerId> = Vec::new();
        for w in ids {
            if !self.core.is_alive(w) {
                done.push(w);
                continue;
            }
            if self.core.processing(w) > 0 {
                continue;
            }
            let Some(m) = self.retiring.workers.get(&w) else {
                continue;
            };
            let timed_out = m.since.is_some_and(|t| t.elapsed() > MOVE_TIMEOUT);
            let in_flight: FxHashSet<TaskId> = m.in_flight.keys().copied().collect();
            let left: Vec<(TaskId, u64)> = self
                .core
                .held_only_by(w)
                .into_iter()
                .filter(|(id, _)| !in_flight.contains(id))
                .collect();
            let recipients: Vec<WorkerId> = (0..self.worker_info.len() as WorkerId)
                .filter(|&r| {
                    r != w
                        && self.core.takes_tasks(r)
                        && !self.retiring.contains(r)
                        && self
                            .worker_conn
                            .get(r as usize)
                            .is_some_and(Option::is_some)
                })
                .collect();
            if !timed_out && !left.is_empty() && !recipients.is_empty() {
                self.send_away(w, &left, &recipients);
                continue;
            }
            if !timed_out && !in_flight.is_empty() {
                continue;
            }
            let lost = left.len() + in_flight.len();
            let why = if lost == 0 {
                String::new()
            } else if timed_out {
                format!(
                    "; {lost} result(s) not moved within {MOVE_TIMEOUT:?} are recomputed if \
                     needed"
                )
            } else {
                format!(
                    "; no other worker to take its {lost} result(s): they are recomputed if \
                     needed"
                )
            };
            let moved = self.retiring.workers.get(&w).map_or(0, |m| m.moved);
            let name = self.worker_name(w);
            self.note(format!(
                "retired worker {name}: {moved} result(s) moved to other workers{why}"
            ));
            self.send_worker(w, &ToWorker::Shutdown);
            if let Some(Some(conn)) = self.worker_conn.get(w as usize).copied() {
                self.workers.remove(&conn);
                self.life.last_seen.remove(&conn);
            }
            if let Some(c) = self.worker_conn.get_mut(w as usize) {
                *c = None;
            }
            self.core
                .remove_worker_because(w, &format!("worker {name} retired"));
            done.push(w);
        }
        for w in done {
            if let Some(m) = self.retiring.workers.remove(&w) {
                for r in &mut self.retiring.requests {
                    if r.workers.contains(&w) {
                        r.retired.push(m.name.clone());
                    }
                }
            }
        }
        let (answered, waiting): (Vec<Request>, Vec<Request>) =
            std::mem::take(&mut self.retiring.requests)
                .into_iter()
                .partition(|r| r.workers.iter().all(|w| !self.retiring.contains(*w)));
        self.retiring.requests = waiting;
        for r in answered {
            self.send_client(
                r.conn,
                &ToClient::Retired {
                    retired: r.retired,
                    unknown: r.unknown,
                },
            );
        }
    }

    /// Asks `recipients` to copy `results` (held only by `w`), spreading the bytes: each
    /// result goes to the recipient given the fewest bytes so far (counting what it holds).
    fn send_away(&mut self, w: WorkerId, results: &[(TaskId, u64)], recipients: &[WorkerId]) {
        let address = self
            .worker_info
            .get(w as usize)
            .map(|i| i.address.clone())
            .unwrap_or_default();
        let mut load: Vec<(WorkerId, u64)> = recipients
            .iter()
            .map(|&r| {
                let held = self
                    .worker_info
                    .get(r as usize)
                    .map_or(0, |i| i.managed_bytes);
                (r, held)
            })
            .collect();
        let mut batches: FxHashMap<WorkerId, Vec<Location>> = FxHashMap::default();
        let Some(m) = self.retiring.workers.get_mut(&w) else {
            return;
        };
        m.since.get_or_insert_with(Instant::now);
        for &(id, nbytes) in results {
            let Some(slot) = load.iter_mut().min_by_key(|(r, b)| (*b, *r)) else {
                return;
            };
            slot.1 += nbytes;
            m.in_flight.insert(id, slot.0);
            batches.entry(slot.0).or_default().push(Location {
                id,
                address: address.clone(),
            });
        }
        for (r, locations) in batches {
            self.send_worker(r, &ToWorker::Replicate(locations));
        }
    }

    /// Worker `w` fetched copies of `ids` (and could not fetch `failed`).
    pub(super) fn replicated(&mut self, w: WorkerId, ids: &[u64], failed: &[u64]) {
        let mut unwanted = Vec::new();
        for &id in ids {
            if self.core.add_replica(id, w) {
                for m in self.retiring.workers.values_mut() {
                    if m.in_flight.remove(&id).is_some() {
                        m.moved += 1;
                    }
                }
            } else {
                // Released meanwhile: the copy would never be dropped otherwise.
                unwanted.push(id);
                for m in self.retiring.workers.values_mut() {
                    m.in_flight.remove(&id);
                }
            }
        }
        for id in failed {
            for m in self.retiring.workers.values_mut() {
                m.in_flight.remove(id);
            }
        }
        if !unwanted.is_empty() {
            self.send_worker(w, &ToWorker::Release(unwanted));
        }
    }

    /// How many workers the pending work wants (see `Core::adaptive_target`), with the
    /// threads and memory limit of the workers connected (or last seen).
    pub(super) fn adaptive_target(&self) -> AdaptiveTarget {
        let live: Vec<&crate::messages::WorkerInfo> = self
            .worker_info
            .iter()
            .zip(&self.worker_conn)
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| i)
            .collect();
        let pick = if live.is_empty() {
            self.worker_info.last()
        } else {
            live.first().copied()
        };
        let threads = pick.map_or(1, |i| i.nthreads);
        let limit = pick.map_or(0, |i| i.memory_limit);
        let held: u64 = live.iter().map(|i| i.managed_bytes).sum();
        self.core
            .adaptive_target(&AdaptiveConfig::default(), threads, limit, held)
    }
}
