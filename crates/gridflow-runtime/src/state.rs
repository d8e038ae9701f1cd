//! The local scheduling policy as a state machine: no threads, no locks, no I/O.
//!
//! [`SchedulingState`] decides which task starts next and which results may be dropped;
//! a driver (the local thread pool, a test, a simulation) tells it when a task started and
//! finished and holds the values itself. Keeping the policy here means it can be tested
//! step by step and reused by any driver without touching the pool's synchronisation.

use gridflow_graph::{Operation, Runnable};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// When a new source task (a task without inputs: a read, `ones`...) may start.
///
/// Sources are where memory comes from: a reduction frees memory, a read adds it. Other
/// tasks always start when ready; sources wait while the budget is used up, unless nothing
/// at all is running (so that a run never stalls).
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// Bytes of held results (plus, with estimates, running tasks' estimated peaks) above
    /// which no new source starts. `None`: no limit.
    pub limit: Option<usize>,
    /// Estimated peak bytes of each task while it runs (its inputs, temporaries and
    /// output), by task id. `None`: admit on held bytes alone.
    pub peak_bytes: Option<Vec<u64>>,
}

/// What [`SchedulingState::finished`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// True when the finished task's value must be kept (a dependent or the caller still
    /// needs it); false: drop it now.
    pub keep: bool,
    /// Tasks that became ready because of this one.
    pub newly_ready: u32,
}

/// The scheduling state of one run over a compiled graph whose ids are priorities (lower
/// runs first).
#[derive(Debug)]
pub struct SchedulingState {
    ready_sources: BinaryHeap<Reverse<u32>>,
    ready_other: BinaryHeap<Reverse<u32>>,
    /// Inputs not yet computed, per task.
    waiting: Vec<u32>,
    /// Readers (plus one for a requested output) that still need each result.
    readers_left: Vec<u32>,
    is_source: Vec<bool>,
    /// Bytes of each held result.
    bytes: Vec<usize>,
    admission: Admission,
    /// Sum of the estimated peaks of running tasks (with estimates only).
    reserved: u64,
    held_bytes: usize,
    peak_bytes: usize,
    running: usize,
    done: usize,
}

impl SchedulingState {
    /// The initial state of a run of `plan`: tasks without pending inputs are ready.
    pub fn new<O: Operation, R: Runnable<O> + ?Sized>(
        plan: &R,
        admission: Admission,
    ) -> SchedulingState {
        let n = plan.len();
        let mut ready_sources = Vec::new();
        let mut ready_other = Vec::new();
        let mut waiting = Vec::with_capacity(n);
        let mut is_source = Vec::with_capacity(n);
        let mut readers_left = Vec::with_capacity(n);
        for i in 0..n {
            let w = plan.distinct_inputs(i).len() as u32;
            let source = plan.inputs(i).is_empty();
            waiting.push(w);
            is_source.push(source);
            readers_left.push(plan.dependents(i).len() as u32);
            if w == 0 {
                if source {
                    ready_sources.push(Reverse(i as u32));
                } else {
                    ready_other.push(Reverse(i as u32));
                }
            }
        }
        for &o in plan.outputs() {
            if let Some(r) = readers_left.get_mut(o as usize) {
                *r += 1;
            }
        }
        let admission = Admission {
            // Estimates of the wrong length are not estimates of this plan: ignore them.
            peak_bytes: admission.peak_bytes.filter(|p| p.len() == n),
            ..admission
        };
        SchedulingState {
            ready_sources: BinaryHeap::from(ready_sources),
            ready_other: BinaryHeap::from(ready_other),
            waiting,
            readers_left,
            is_source,
            bytes: vec![0; n],
            admission,
            reserved: 0,
            held_bytes: 0,
            peak_bytes: 0,
            running: 0,
            done: 0,
        }
    }

    /// Number of tasks in the run.
    pub fn total(&self) -> usize {
        self.waiting.len()
    }

    /// Tasks finished so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// True when every task has finished.
    pub fn is_complete(&self) -> bool {
        self.done == self.total()
    }

    /// Tasks started and not yet finished.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Bytes of results held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Most bytes of results held at once so far.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// Ready tasks (sources held back by admission included).
    pub fn ready(&self) -> usize {
        self.ready_sources.len() + self.ready_other.len()
    }

    /// True when the source `id` fits in the memory budget now.
    fn within_budget(&self, id: u32) -> bool {
        let Some(limit) = self.admission.limit else {
            return true;
        };
        match &self.admission.peak_bytes {
            None => self.held_bytes <= limit,
            Some(peaks) => {
                let need = peaks.get(id as usize).copied().unwrap_or(0);
                (self.held_bytes as u64)
                    .saturating_add(self.reserved)
                    .saturating_add(need)
                    <= limit as u64
            }
        }
    }

    /// Picks the next task to start and marks it running: the lowest id (highest priority)
    /// among ready tasks, except that a source starts only when admitted. `None`: nothing
    /// can start now (wait for a running task to finish).
    pub fn next_task(&mut self) -> Option<u32> {
        let s = self.ready_sources.peek().map(|r| r.0);
        let o = self.ready_other.peek().map(|r| r.0);
        let take_source = match (s, o) {
            (None, None) => return None,
            // With nothing running, nothing would ever free memory: start it anyway.
            (Some(a), None) => self.running == 0 || self.within_budget(a),
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a < b && self.within_budget(a),
        };
        let id = if take_source {
            self.ready_sources.pop()
        } else {
            self.ready_other.pop()
        }?
        .0;
        self.running += 1;
        if let Some(p) = &self.admission.peak_bytes {
            self.reserved += p.get(id as usize).copied().unwrap_or(0);
        }
        Some(id)
    }

    fn unreserve(&mut self, id: u32) {
        if let Some(p) = &self.admission.peak_bytes {
            self.reserved = self
                .reserved
                .saturating_sub(p.get(id as usize).copied().unwrap_or(0));
        }
    }

    /// Records that task `id` (returned by [`SchedulingState::next_task`]) finished with a
    /// value of `nbytes` bytes. `release` is called with every input whose value nobody
    /// needs any more (the driver drops it); the returned [`Finished::keep`] says whether
    /// `id`'s own value must be kept.
    pub fn finished<O: Operation, R: Runnable<O> + ?Sized>(
        &mut self,
        plan: &R,
        id: u32,
        nbytes: usize,
        mut release: impl FnMut(u32),
    ) -> Finished {
        let idx = id as usize;
        self.running = self.running.saturating_sub(1);
        self.unreserve(id);
        self.held_bytes += nbytes;
        self.peak_bytes = self.peak_bytes.max(self.held_bytes);
        let keep = self.readers_left[idx] > 0;
        if keep {
            self.bytes[idx] = nbytes;
        } else {
            self.held_bytes -= nbytes;
        }
        for &i in plan.distinct_inputs(idx) {
            let iu = i as usize;
            self.readers_left[iu] = self.readers_left[iu].saturating_sub(1);
            if self.readers_left[iu] == 0 {
                self.held_bytes = self.held_bytes.saturating_sub(self.bytes[iu]);
                self.bytes[iu] = 0;
                release(i);
            }
        }
        let mut newly_ready = 0;
        for &d in plan.dependents(idx) {
            let du = d as usize;
            self.waiting[du] -= 1;
            if self.waiting[du] == 0 {
                newly_ready += 1;
                if self.is_source[du] {
                    self.ready_sources.push(Reverse(d));
                } else {
                    self.ready_other.push(Reverse(d));
                }
            }
        }
        self.done += 1;
        Finished { keep, newly_ready }
    }

    /// Records that task `id` stopped without a value (it failed): it no longer counts as
    /// running. The run is expected to stop.
    pub fn abandoned(&mut self, id: u32) {
        self.running = self.running.saturating_sub(1);
        self.unreserve(id);
    }

    /// True when admission is in force (sources can be held back), so that a finished task
    /// may make a held-back source startable even when it readied nothing.
    pub fn has_memory_limit(&self) -> bool {
        self.admission.limit.is_some()
    }
}
