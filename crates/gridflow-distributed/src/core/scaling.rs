//! What scaling needs of the scheduler's state: the results a retiring worker alone holds
//! (to move before it stops), recording the copies, and how much work is pending (for the
//! adaptive target). Kept apart from the scheduling logic in `core.rs`.

use super::{Core, TaskId, TaskState, WorkerId};
use crate::messages::AdaptiveTarget;

/// How [`Core::adaptive_target`] turns pending work into a number of workers.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveConfig {
    /// How long the pending work should take on the cluster (Dask's `target-duration`).
    pub target_duration_s: f64,
    /// Run time assumed per task before any has finished (Dask's
    /// `unknown-task-duration`).
    pub unknown_task_s: f64,
    /// Fraction of a worker's memory limit its results may fill before the target asks
    /// for more workers to hold them.
    pub memory_fraction: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> AdaptiveConfig {
        AdaptiveConfig {
            target_duration_s: 5.0,
            unknown_task_s: 0.5,
            memory_fraction: 0.6,
        }
    }
}

impl Core {
    /// Results in memory held by worker `w` and by no other worker, with their sizes: what
    /// must move before `w` retires.
    pub fn held_only_by(&self, w: WorkerId) -> Vec<(TaskId, u64)> {
        (self.first..self.first + self.tasks.len() as u64)
            .filter_map(|id| {
                let t = self.task(id)?;
                (t.state == TaskState::Memory && t.who_has == [w]).then_some((id, t.nbytes))
            })
            .collect()
    }

    /// Worker `w` now holds a copy of result `id` too (it fetched it from a peer). False
    /// when the result is no longer wanted: the caller tells `w` to drop the copy.
    pub fn add_replica(&mut self, id: TaskId, w: WorkerId) -> bool {
        let alive = self.workers.get(w as usize).is_some_and(|x| x.alive);
        match self.task_mut(id) {
            Some(t) if alive && t.state == TaskState::Memory => {
                if !t.who_has.contains(&w) {
                    t.who_has.push(w);
                }
                true
            }
            _ => false,
        }
    }

    /// True while worker `w` is alive.
    pub fn is_alive(&self, w: WorkerId) -> bool {
        self.workers.get(w as usize).is_some_and(|x| x.alive)
    }

    /// True while worker `w` is alive and gets tasks (not paused or retiring).
    pub fn takes_tasks(&self, w: WorkerId) -> bool {
        self.workers
            .get(w as usize)
            .is_some_and(|x| x.takes_tasks())
    }

    /// How many workers of `threads_per_worker` threads (and `memory_limit` bytes each,
    /// 0: none) the pending work wants, by Dask's rule kept simple:
    ///
    /// - *cpu*: the expected run time of every unfinished task (the running average of
    ///   reported run times, or `unknown_task_s` before any) over `target_duration_s`,
    ///   in workers — but no more workers than there are tasks ready to run now (queued on
    ///   the scheduler or processing), as more could not be kept busy;
    /// - *memory*: enough workers for the results held to fill at most `memory_fraction`
    ///   of each one's limit;
    /// - at least one while any task is unfinished.
    ///
    /// The target is the larger of the two; a cluster bounds it by its minimum and
    /// maximum.
    pub fn adaptive_target(
        &self,
        config: &AdaptiveConfig,
        threads_per_worker: u32,
        memory_limit: u64,
        held_bytes: u64,
    ) -> AdaptiveTarget {
        let threads = f64::from(threads_per_worker.max(1));
        let mut unfinished = 0u64;
        for t in &self.tasks {
            if matches!(
                t.state,
                TaskState::Waiting | TaskState::Queued | TaskState::Processing
            ) {
                unfinished += 1;
            }
        }
        let ready = self.queue.len() as u64
            + self
                .workers
                .iter()
                .map(|w| w.processing.len() as u64)
                .sum::<u64>();
        let task_s = if self.task_micros > 0.0 {
            self.task_micros / 1e6
        } else {
            config.unknown_task_s
        };
        let work_s = unfinished as f64 * task_s;
        let by_time = (work_s / config.target_duration_s.max(1e-3) / threads).ceil() as u64;
        let by_ready = (ready as f64 / threads).ceil() as u64;
        let mut cpu = by_time.min(by_ready);
        if unfinished > 0 {
            cpu = cpu.max(1);
        }
        let memory = if memory_limit == 0 {
            0
        } else {
            (held_bytes as f64 / (memory_limit as f64 * config.memory_fraction.max(1e-3))).ceil()
                as u64
        };
        AdaptiveTarget {
            target: cpu.max(memory),
            cpu,
            memory,
            unfinished_tasks: unfinished,
            ready_tasks: ready,
            expected_seconds: work_s,
            workers: self.alive_workers() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::core::{Action, Config};

    /// `n` independent root tasks on a core with one worker of `threads` threads.
    fn roots(n: u32, threads: u32) -> (Core, u64) {
        let mut core = Core::new(Config::default());
        core.add_worker(threads);
        let tasks = (0..n).map(|_| (vec![1u8], vec![])).collect();
        let job = core.submit(tasks, (0..n).collect()).unwrap();
        (core, job)
    }

    #[test]
    fn the_target_follows_the_documented_rule() {
        let c = AdaptiveConfig::default();
        let (core, _) = roots(100, 2);
        let t = core.adaptive_target(&c, 2, 0, 0);
        assert_eq!(t.unfinished_tasks, 100);
        assert_eq!(t.ready_tasks, 100, "queued plus processing");
        let by_time = (100.0 * c.unknown_task_s / c.target_duration_s / 2.0).ceil() as u64;
        assert_eq!(t.cpu, by_time.min(50));
        assert_eq!(t.target, t.cpu);
        assert_eq!(t.memory, 0);
        // Held bytes past the fraction of the limits ask for more workers.
        let m = core.adaptive_target(&c, 2, 1000, 10_000);
        assert_eq!(
            m.memory,
            (10_000.0 / (1000.0 * c.memory_fraction)).ceil() as u64
        );
        assert_eq!(m.target, m.cpu.max(m.memory));
        // Nothing pending: no worker wanted.
        let idle = Core::new(Config::default()).adaptive_target(&c, 1, 0, 0);
        assert_eq!((idle.target, idle.unfinished_tasks), (0, 0));
    }

    #[test]
    fn results_held_by_one_worker_alone_are_found_and_replicas_recorded() {
        let (mut core, _) = roots(4, 1);
        let w1 = core.add_worker(1);
        let mut done = Vec::new();
        for _ in 0..4 {
            for a in core.take_actions() {
                if let Action::Compute { worker, task } = a {
                    core.finished(worker, task, 10);
                    done.push((worker, task));
                }
            }
        }
        assert_eq!(done.len(), 4);
        let on0: Vec<TaskId> = done
            .iter()
            .filter(|(w, _)| *w == 0)
            .map(|(_, t)| *t)
            .collect();
        let mut only0: Vec<TaskId> = core.held_only_by(0).into_iter().map(|(t, _)| t).collect();
        only0.sort_unstable();
        assert_eq!(only0, on0);
        let first = on0[0];
        assert!(core.add_replica(first, w1));
        assert!(!core.held_only_by(0).iter().any(|(t, _)| *t == first));
        assert!(core.who_has(first).contains(&w1));
        // A result no longer known is not recorded.
        assert!(!core.add_replica(10_000, w1));
    }
}
