//! The scheduler's state machine: task states on dense ids, root-task queuing, placement
//! and release, with no I/O. The server feeds it events (a worker joined, a task finished,
//! a job arrived) and sends the [`Action`]s it returns; tests and simulations drive it
//! directly.

mod scaling;

use rustc_hash::FxHashMap;
pub use scaling::AdaptiveConfig;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A worker's id in the scheduler (dense, never reused).
pub type WorkerId = u32;

/// A task's global id: its job's id plus its position in the job.
pub type TaskId = u64;

/// Dask's task states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Known, not yet needed.
    Released,
    /// Waiting for inputs to be computed.
    Waiting,
    /// A ready root task waiting on the scheduler for a worker with a free thread.
    Queued,
    /// Assigned to a worker.
    Processing,
    /// Computed; held by one or more workers.
    Memory,
    /// Failed.
    Erred,
    /// Done with: nobody needs it; its data was released.
    Forgotten,
}

/// What the server must do after an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send task `task` to `worker` to run.
    Compute {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// Ask `worker` to give back `task` if it has not started it (work stealing); the
    /// worker answers through [`Core::steal_response`].
    Steal {
        /// The worker holding the task (the victim).
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// Tell `worker` to drop the result of `task`.
    Release {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskId,
    },
    /// Tasks finished in a job so far.
    Progress {
        /// The job.
        job: u64,
        /// Tasks done.
        done: u64,
    },
    /// Every task of a job finished; its outputs are in memory.
    Done {
        /// The job.
        job: u64,
    },
    /// A job cannot finish; it has been forgotten.
    Failed {
        /// The job.
        job: u64,
        /// The failing task, if a task failed.
        task: Option<TaskId>,
        /// The operation's label.
        op: String,
        /// What went wrong.
        message: String,
        /// True when the operation panicked.
        panicked: bool,
    },
}

/// A task as the scheduler sees it: its payload is opaque.
#[derive(Debug)]
struct Task {
    state: TaskState,
    job: u64,
    root: bool,
    payload: Vec<u8>,
    /// Inputs by position (global ids, may repeat).
    inputs: Vec<TaskId>,
    /// Distinct tasks reading this one.
    dependents: Vec<TaskId>,
    /// Distinct inputs not yet in memory.
    waiting: u32,
    /// Distinct readers not yet finished, plus one when the client will gather it.
    readers_left: u32,
    nbytes: u64,
    who_has: Vec<WorkerId>,
    processing_on: Option<WorkerId>,
    /// False for scattered data (no task to run again if it is lost).
    recomputable: bool,
    /// Times the task was placed again after failing to fetch an input.
    retries: u8,
    /// Its task group ([`NO_GROUP`] for scattered data and gaps).
    group: u32,
}

/// The group of tasks that belong to none (scattered data, gaps between jobs).
const NO_GROUP: u32 = u32::MAX;

/// Tasks of one task group by state, kept up to date on every transition (O(1) each) so
/// that the dashboard reads them without walking the tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// The group's name (a key prefix such as `sum-chunk`).
    pub name: std::sync::Arc<str>,
    /// Tasks submitted since the group last had none unfinished.
    pub total: u64,
    /// Released or waiting for inputs.
    pub waiting: u64,
    /// Ready roots waiting for a thread.
    pub queued: u64,
    /// On a worker.
    pub processing: u64,
    /// In memory.
    pub memory: u64,
    /// Failed.
    pub erred: u64,
    /// Finished (in memory or since released).
    pub done: u64,
}

impl GroupCounts {
    fn slot(&mut self, s: TaskState) -> Option<&mut u64> {
        match s {
            TaskState::Released | TaskState::Waiting => Some(&mut self.waiting),
            TaskState::Queued => Some(&mut self.queued),
            TaskState::Processing => Some(&mut self.processing),
            TaskState::Memory => Some(&mut self.memory),
            TaskState::Erred => Some(&mut self.erred),
            TaskState::Forgotten => None,
        }
    }

    /// Tasks not yet finished, failed or forgotten.
    fn unfinished(&self) -> u64 {
        self.waiting + self.queued + self.processing
    }

    fn moved(&mut self, from: TaskState, to: TaskState) {
        if let Some(c) = self.slot(from) {
            *c = c.saturating_sub(1);
        }
        if let Some(c) = self.slot(to) {
            *c += 1;
        }
        match (from, to) {
            (_, TaskState::Memory) => self.done += 1,
            // Lost and computed again.
            (TaskState::Memory, TaskState::Waiting | TaskState::Queued) => {
                self.done = self.done.saturating_sub(1);
            }
            // Cancelled before it finished: no longer part of the run.
            (
                TaskState::Released
                | TaskState::Waiting
                | TaskState::Queued
                | TaskState::Processing,
                TaskState::Forgotten,
            ) => self.total = self.total.saturating_sub(1),
            _ => {}
        }
    }
}

/// Task groups: counts by state, and which groups read which.
#[derive(Debug, Default)]
struct Groups {
    counts: Vec<GroupCounts>,
    by_name: FxHashMap<std::sync::Arc<str>, u32>,
    edges: rustc_hash::FxHashSet<(u32, u32)>,
}

impl Groups {
    fn moved(&mut self, g: u32, from: TaskState, to: TaskState) {
        if let Some(c) = self.counts.get_mut(g as usize) {
            c.moved(from, to);
        }
    }

    /// The id of group `name`, created if new; a group with nothing unfinished starts a
    /// new run (its totals restart) when tasks are added to it.
    fn intern(&mut self, name: &str) -> u32 {
        let id = match self.by_name.get(name) {
            Some(&g) => g,
            None => {
                let g = self.counts.len() as u32;
                let name: std::sync::Arc<str> = name.into();
                self.by_name.insert(name.clone(), g);
                self.counts.push(GroupCounts {
                    name,
                    ..GroupCounts::default()
                });
                g
            }
        };
        if let Some(c) = self.counts.get_mut(id as usize)
            && c.unfinished() == 0
        {
            c.total = 0;
            c.done = 0;
            c.erred = 0;
        }
        id
    }
}

#[derive(Debug)]
struct Worker {
    nthreads: u32,
    alive: bool,
    /// Short of memory: gets no new tasks until it says otherwise.
    paused: bool,
    /// It has reported a task started, finished or failed: it really runs tasks (a peer
    /// that registers and leaves at once is no evidence against the tasks it was sent).
    reported: bool,
    /// Tasks assigned and not yet reported finished.
    processing: rustc_hash::FxHashSet<TaskId>,
    /// Tasks being stolen for this worker (asked of their victim, not yet answered).
    incoming: u32,
}

#[derive(Debug)]
struct Job {
    len: u64,
    /// Outputs as global ids (results of this job, or results held from earlier jobs).
    outputs: Vec<TaskId>,
    /// Distinct outputs still pinned for the client (each counts one in `readers_left`).
    pinned: Vec<TaskId>,
    done: u64,
    held: u64,
    peak: u64,
}

/// How to schedule.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Tasks a worker may hold at once, per thread, before it gets more root tasks (Dask's
    /// `worker-saturation`).
    pub worker_saturation: f64,
    /// Bytes of root results per thread a worker may have in flight: when roots turn out
    /// small (tiny tasks), a worker gets up to this many bytes' worth of them at once
    /// (never more than `max_roots_per_thread`), so that tiny tasks are not bound by one
    /// scheduler round trip each; large roots stay at the saturation limit. 0: off.
    pub root_bytes_per_thread: u64,
    /// The most roots per thread a worker gets at once.
    pub max_roots_per_thread: u32,
    /// Work stealing: an idle worker takes unstarted tasks from a saturated one when
    /// moving the task's inputs costs at most this many times the task's expected compute
    /// time (Dask's compute-to-transfer ratio). 0: no stealing.
    pub steal_ratio: f64,
    /// Bytes per second assumed for moving inputs between workers (for stealing).
    pub bandwidth: f64,
    /// Workers a task may be running on when they die before it fails its job instead of
    /// being tried again (Dask's `allowed-failures`).
    pub allowed_failures: u32,
    /// When every worker has left, keep jobs waiting for workers to join (a nanny restarts
    /// them) instead of failing them.
    pub wait_for_workers: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            worker_saturation: 1.1,
            root_bytes_per_thread: 16 << 20,
            max_roots_per_thread: 64,
            steal_ratio: 2.0,
            bandwidth: 100e6,
            allowed_failures: 3,
            wait_for_workers: false,
        }
    }
}

/// The scheduler's state.
#[derive(Debug)]
pub struct Core {
    config: Config,
    /// Tasks by global id minus `first`; tasks of forgotten jobs at the front are dropped.
    tasks: VecDeque<Task>,
    first: TaskId,
    next_id: TaskId,
    workers: Vec<Worker>,
    /// Ready root tasks, lowest id (highest priority) first.
    queue: BinaryHeap<Reverse<TaskId>>,
    jobs: FxHashMap<u64, Job>,
    /// Jobs waiting for a held result they output (all their own tasks done).
    output_waiters: FxHashMap<TaskId, Vec<u64>>,
    actions: Vec<Action>,
    /// Root tasks finished, and a moving average of their results' bytes (for the root
    /// limit).
    roots_done: u64,
    root_bytes: u64,
    /// Workers with more tasks than threads (unstarted ones wait there), and workers with
    /// free threads: stealing looks only at these.
    saturated: rustc_hash::FxHashSet<WorkerId>,
    idle: rustc_hash::FxHashSet<WorkerId>,
    /// Steals asked and not answered: task → the worker it is for.
    stealing: FxHashMap<TaskId, WorkerId>,
    /// A moving average of task run times reported by workers, in µs (0: none yet).
    task_micros: f64,
    steals: u64,
    /// Tasks that were running on workers that died, with how each died.
    suspects: FxHashMap<TaskId, Vec<String>>,
    /// Tasks a worker said it started and has not finished.
    executing: FxHashMap<TaskId, WorkerId>,
    groups: Groups,
}

impl Core {
    /// An empty scheduler.
    pub fn new(config: Config) -> Core {
        Core {
            config,
            tasks: VecDeque::new(),
            first: 0,
            next_id: 0,
            workers: Vec::new(),
            queue: BinaryHeap::new(),
            jobs: FxHashMap::default(),
            output_waiters: FxHashMap::default(),
            actions: Vec::new(),
            roots_done: 0,
            root_bytes: 0,
            saturated: Default::default(),
            idle: Default::default(),
            stealing: FxHashMap::default(),
            task_micros: 0.0,
            steals: 0,
            suspects: FxHashMap::default(),
            executing: FxHashMap::default(),
            groups: Groups::default(),
        }
    }

    /// Moves task `id` to state `to` (keeping the group counts right) and returns it.
    fn enter(&mut self, id: TaskId, to: TaskState) -> Option<&mut Task> {
        let i = usize::try_from(id.checked_sub(self.first)?).ok()?;
        let t = self.tasks.get_mut(i)?;
        if t.state != to {
            self.groups.moved(t.group, t.state, to);
            t.state = to;
        }
        Some(t)
    }

    /// The task groups, in the order first seen, with their counts by state.
    pub fn groups(&self) -> &[GroupCounts] {
        &self.groups.counts
    }

    /// Pairs `(a, b)` of groups where some task of `b` reads a task of `a`.
    pub fn group_edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.groups.edges.iter().copied()
    }

    /// The name of task `id`'s group, if it has one.
    pub fn group_name(&self, id: TaskId) -> Option<&std::sync::Arc<str>> {
        let g = self.task(id)?.group;
        self.groups.counts.get(g as usize).map(|c| &c.name)
    }

    /// Tasks moved between workers by stealing so far.
    pub fn steals(&self) -> u64 {
        self.steals
    }

    /// Updates whether worker `w` is saturated or idle (after its load changed).
    fn touch(&mut self, w: WorkerId) {
        let Some(x) = self.workers.get(w as usize) else {
            return;
        };
        let load = x.processing.len() + x.incoming as usize;
        // A paused worker steals nothing; what it holds it hands back itself.
        let (sat, idle) = if x.takes_tasks() {
            (
                x.processing.len() > x.nthreads as usize,
                load < x.nthreads as usize,
            )
        } else {
            (false, false)
        };
        if sat {
            self.saturated.insert(w);
        } else {
            self.saturated.remove(&w);
        }
        if idle {
            self.idle.insert(w);
        } else {
            self.idle.remove(&w);
        }
    }

    /// Work stealing: while some worker has free threads and another has tasks waiting
    /// beyond its threads, ask the latter for its lowest-priority tasks (the ones it would
    /// start last) whose inputs are cheap to move compared with running them. Call once per
    /// batch of events; cheap when nobody is idle or nobody is saturated.
    pub fn balance(&mut self) {
        if self.config.steal_ratio <= 0.0 || self.saturated.is_empty() || self.idle.is_empty() {
            return;
        }
        // Only roots are waiting on the scheduler: idle workers get those first (`fill`).
        if !self.queue.is_empty() {
            return;
        }
        let mut thieves: Vec<WorkerId> = self.idle.iter().copied().collect();
        thieves.sort_unstable();
        let mut victims: Vec<WorkerId> = self.saturated.iter().copied().collect();
        // Most waiting tasks per thread first.
        victims.sort_by(|&a, &b| {
            let ex = |w: WorkerId| {
                let x = &self.workers[w as usize];
                (x.processing.len() as f64 - f64::from(x.nthreads)) / f64::from(x.nthreads)
            };
            ex(b).total_cmp(&ex(a)).then(a.cmp(&b))
        });
        let compute_s = if self.task_micros > 0.0 {
            self.task_micros / 1e6
        } else {
            // Unknown run time: steal only what needs no transfer.
            0.0
        };
        for v in victims {
            let (nthreads, mut waiting) = {
                let x = &self.workers[v as usize];
                let mut ids: Vec<TaskId> = x
                    .processing
                    .iter()
                    .copied()
                    .filter(|t| !self.stealing.contains_key(t))
                    .collect();
                // Workers start the lowest ids first: the highest are the least likely started.
                ids.sort_unstable_by(|a, b| b.cmp(a));
                (x.nthreads as usize, ids)
            };
            let mut spare = waiting.len().saturating_sub(nthreads);
            waiting.truncate(spare);
            for t in waiting {
                if spare == 0 {
                    break;
                }
                let Some(&thief) = thieves.iter().find(|&&w| {
                    let x = &self.workers[w as usize];
                    x.takes_tasks()
                        && x.processing.len() + (x.incoming as usize) < x.nthreads as usize
                }) else {
                    return;
                };
                let missing: u64 = {
                    let mut ins = self.inputs(t).to_vec();
                    ins.sort_unstable();
                    ins.dedup();
                    ins.iter()
                        .filter(|&&i| !self.who_has(i).contains(&thief))
                        .map(|&i| self.nbytes(i))
                        .sum()
                };
                let transfer_s = missing as f64 / self.config.bandwidth;
                if missing > 0 && transfer_s > self.config.steal_ratio * compute_s {
                    continue;
                }
                self.stealing.insert(t, thief);
                self.workers[thief as usize].incoming += 1;
                self.touch(thief);
                spare -= 1;
                self.actions.push(Action::Steal { worker: v, task: t });
            }
        }
    }

    /// The victim's answer to [`Action::Steal`]: `stolen` when it had not started the task
    /// and dropped it; the task then goes to the worker it was stolen for. A task that
    /// started stays where it is.
    pub fn steal_response(&mut self, victim: WorkerId, id: TaskId, stolen: bool) {
        let Some(thief) = self.stealing.remove(&id) else {
            return;
        };
        if let Some(x) = self.workers.get_mut(thief as usize) {
            x.incoming = x.incoming.saturating_sub(1);
        }
        self.touch(thief);
        let live = self
            .task(id)
            .is_some_and(|t| t.state == TaskState::Processing && t.processing_on == Some(victim));
        if !stolen || !live {
            return;
        }
        if let Some(x) = self.workers.get_mut(victim as usize) {
            x.processing.remove(&id);
        }
        self.touch(victim);
        self.steals += 1;
        if self.workers.get(thief as usize).is_some_and(|x| x.alive) {
            self.assign(id, thief);
        } else {
            if let Some(t) = self.enter(id, TaskState::Waiting) {
                t.processing_on = None;
            }
            self.make_ready(id);
        }
        self.fill(victim);
    }

    /// Takes the actions produced since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn task(&self, id: TaskId) -> Option<&Task> {
        let i = id.checked_sub(self.first)?;
        self.tasks.get(usize::try_from(i).ok()?)
    }

    fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        let i = id.checked_sub(self.first)?;
        self.tasks.get_mut(usize::try_from(i).ok()?)
    }

    /// A task's state (`Forgotten` for ids no longer or never known).
    pub fn state(&self, id: TaskId) -> TaskState {
        self.task(id).map_or(TaskState::Forgotten, |t| t.state)
    }

    /// A task's opaque payload.
    pub fn payload(&self, id: TaskId) -> &[u8] {
        self.task(id).map_or(&[], |t| &t.payload)
    }

    /// A task's inputs by position (global ids).
    pub fn inputs(&self, id: TaskId) -> &[TaskId] {
        self.task(id).map_or(&[], |t| &t.inputs)
    }

    /// The workers holding a task's result.
    pub fn who_has(&self, id: TaskId) -> &[WorkerId] {
        self.task(id).map_or(&[], |t| &t.who_has)
    }

    /// Bytes of a task's result (0 before it is computed).
    pub fn nbytes(&self, id: TaskId) -> u64 {
        self.task(id).map_or(0, |t| t.nbytes)
    }

    /// The global ids of a job's outputs, in the order submitted.
    pub fn outputs(&self, job: u64) -> Vec<TaskId> {
        self.jobs
            .get(&job)
            .map_or_else(Vec::new, |j| j.outputs.clone())
    }

    /// True while the job is known (not yet finished and released, failed or cancelled).
    pub fn has_job(&self, job: u64) -> bool {
        self.jobs.contains_key(&job)
    }

    /// Most bytes a job's results held at once.
    pub fn job_peak_bytes(&self, job: u64) -> u64 {
        self.jobs.get(&job).map_or(0, |j| j.peak)
    }

    /// Tasks known (not yet dropped), for memory accounting.
    pub fn tasks_held(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks processing on a worker.
    pub fn processing(&self, w: WorkerId) -> usize {
        self.workers
            .get(w as usize)
            .map_or(0, |x| x.processing.len())
    }

    /// Root tasks queued on the scheduler.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Workers alive.
    pub fn alive_workers(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }

    /// Tasks worker `w` may hold before it gets more roots: the saturation limit, raised
    /// for small roots (see [`Config::root_bytes_per_thread`]) once a few have finished.
    fn limit(&self, w: &Worker) -> usize {
        let base = ((f64::from(w.nthreads) * self.config.worker_saturation).ceil() as usize).max(1);
        let c = &self.config;
        if c.root_bytes_per_thread == 0 || self.roots_done < u64::from(w.nthreads) * 4 {
            return base;
        }
        let avg = self.root_bytes.max(1);
        let per_thread = (c.root_bytes_per_thread / avg).min(u64::from(c.max_roots_per_thread));
        base.max((per_thread * u64::from(w.nthreads)) as usize)
    }

    /// A worker joined with `nthreads` threads; it is given queued root tasks at once.
    pub fn add_worker(&mut self, nthreads: u32) -> WorkerId {
        let id = self.workers.len() as WorkerId;
        self.workers.push(Worker {
            nthreads: nthreads.max(1),
            alive: true,
            paused: false,
            reported: false,
            processing: Default::default(),
            incoming: 0,
        });
        self.touch(id);
        self.fill(id);
        id
    }

    /// A job arrived: `tasks` as (payload, inputs by position within the job), in priority
    /// order; inputs must come before their readers. Returns the job's id, or an error
    /// naming the malformed task.
    pub fn submit(
        &mut self,
        tasks: Vec<(Vec<u8>, Vec<u32>)>,
        outputs: Vec<u32>,
    ) -> Result<u64, String> {
        self.submit_with_held(tasks, outputs, &[])
    }

    /// Like [`Core::submit`], but the job may also read results held from earlier jobs
    /// (persisted results, futures, scattered data): an input or output position `n + k`
    /// (`n` = the job's task count) is `held[k]`, a global id. Held results must still be
    /// known (in memory or on their way); each reader keeps them alive until it finished.
    pub fn submit_with_held(
        &mut self,
        tasks: Vec<(Vec<u8>, Vec<u32>)>,
        outputs: Vec<u32>,
        held: &[TaskId],
    ) -> Result<u64, String> {
        self.submit_grouped(tasks, outputs, held, &[], &[])
    }

    /// Like [`Core::submit_with_held`], with task groups for the dashboard: task `i` is in
    /// group `names[task_groups[i]]` (all in group `task` when `task_groups` is empty).
    pub fn submit_grouped(
        &mut self,
        tasks: Vec<(Vec<u8>, Vec<u32>)>,
        outputs: Vec<u32>,
        held: &[TaskId],
        names: &[String],
        task_groups: &[u32],
    ) -> Result<u64, String> {
        let n = tasks.len() as u64;
        if !task_groups.is_empty() && task_groups.len() != tasks.len() {
            return Err(format!(
                "{} task group(s) given for {n} task(s)",
                task_groups.len()
            ));
        }
        if let Some(bad) = task_groups.iter().find(|&&g| g as usize >= names.len()) {
            return Err(format!(
                "task group {bad} is not one of the {} group name(s) given",
                names.len()
            ));
        }
        for (i, (_, ins)) in tasks.iter().enumerate() {
            if let Some(bad) = ins.iter().find(|&&x| {
                (x as usize >= i && u64::from(x) < n) || u64::from(x) >= n + held.len() as u64
            }) {
                return Err(format!(
                    "task {i} reads task {bad}, which does not come before it"
                ));
            }
        }
        if let Some(bad) = outputs
            .iter()
            .find(|&&o| u64::from(o) >= n + held.len() as u64)
        {
            return Err(format!("output {bad} is not a task of the job ({n} tasks)"));
        }
        for &h in held {
            match self.state(h) {
                TaskState::Forgotten | TaskState::Erred => {
                    return Err(format!(
                        "held result {h} is gone (released, cancelled or failed)"
                    ));
                }
                _ => {}
            }
        }
        if n > 0
            && !self.workers.is_empty()
            && self.alive_workers() == 0
            && !self.config.wait_for_workers
        {
            return Err(format!(
                "no workers: all {} worker(s) of the cluster have left",
                self.workers.len()
            ));
        }
        let job = self.next_id;
        self.next_id += n.max(1);
        let global = |p: u32| -> TaskId {
            let p = u64::from(p);
            if p < n {
                job + p
            } else {
                held[(p - n) as usize]
            }
        };
        let outputs: Vec<TaskId> = outputs.into_iter().map(global).collect();
        let mut pinned = outputs.clone();
        pinned.sort_unstable();
        pinned.dedup();
        // Tasks of an empty job: none; its id still advances so that ids stay unique.
        if n == 0 {
            for &o in &pinned {
                if let Some(t) = self.task_mut(o) {
                    t.readers_left += 1;
                }
            }
            self.jobs.insert(
                job,
                Job {
                    len: 0,
                    outputs,
                    pinned,
                    done: 0,
                    held: 0,
                    peak: 0,
                },
            );
            self.check_done(job);
            return Ok(job);
        }
        // Fill the gap left by earlier empty jobs so that ids index `tasks`.
        while self.first + (self.tasks.len() as u64) < job {
            self.tasks.push_back(Task::forgotten(u64::MAX));
        }
        let base = self.tasks.len();
        let ids: Vec<u32> = if names.is_empty() {
            vec![self.groups.intern("task")]
        } else {
            names.iter().map(|x| self.groups.intern(x)).collect()
        };
        let mut last_edge = (NO_GROUP, NO_GROUP);
        for (k, (payload, ins)) in tasks.into_iter().enumerate() {
            let group = ids[task_groups.get(k).map_or(0, |&g| g as usize)];
            if let Some(c) = self.groups.counts.get_mut(group as usize) {
                c.total += 1;
                c.waiting += 1;
            }
            let inputs: Vec<TaskId> = ins.iter().map(|&i| global(i)).collect();
            let mut distinct = inputs.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let id = self.first + self.tasks.len() as u64;
            let mut waiting = 0u32;
            for &i in &distinct {
                let Some(t) = self.task_mut(i) else { continue };
                t.readers_left += 1;
                let from = t.group;
                if from != group && from != NO_GROUP && (from, group) != last_edge {
                    last_edge = (from, group);
                    self.groups.edges.insert(last_edge);
                }
                let Some(t) = self.task_mut(i) else { continue };
                // A held result already in memory is not waited for (and needs no list of
                // readers: they are only used to wake tasks up).
                if t.state != TaskState::Memory {
                    t.dependents.push(id);
                    waiting += 1;
                }
            }
            self.tasks.push_back(Task {
                state: TaskState::Released,
                job,
                root: distinct.is_empty(),
                payload,
                waiting,
                inputs,
                dependents: Vec::new(),
                readers_left: 0,
                nbytes: 0,
                who_has: Vec::new(),
                processing_on: None,
                recomputable: true,
                retries: 0,
                group,
            });
        }
        for &o in &pinned {
            if let Some(t) = self.task_mut(o) {
                t.readers_left += 1;
            }
        }
        self.jobs.insert(
            job,
            Job {
                len: n,
                outputs,
                pinned,
                done: 0,
                held: 0,
                peak: 0,
            },
        );
        for i in 0..n {
            let t = &self.tasks[base + i as usize];
            if t.waiting == 0 {
                if t.root {
                    self.enter(job + i, TaskState::Queued);
                    self.queue.push(Reverse(job + i));
                } else {
                    self.enter(job + i, TaskState::Waiting);
                    self.make_ready(job + i);
                }
            } else {
                self.enter(job + i, TaskState::Waiting);
            }
        }
        for w in 0..self.workers.len() {
            self.fill(w as WorkerId);
        }
        Ok(job)
    }

    /// Data a client placed on workers itself (`scatter`): a job of results already in
    /// memory, `(worker, bytes)` each, pinned for the client. Returns the job's id (the
    /// results' ids are `job..job + parts.len()`).
    pub fn scatter(&mut self, parts: &[(WorkerId, u64)]) -> Result<u64, String> {
        if let Some((w, _)) = parts
            .iter()
            .find(|(w, _)| !self.workers.get(*w as usize).is_some_and(|x| x.alive))
        {
            return Err(format!("scatter: worker {w} is not in the cluster"));
        }
        let n = parts.len() as u64;
        let job = self.next_id;
        self.next_id += n.max(1);
        while self.first + (self.tasks.len() as u64) < job {
            self.tasks.push_back(Task::forgotten(u64::MAX));
        }
        let mut held = 0;
        for &(w, nbytes) in parts {
            let mut t = Task::forgotten(job);
            t.state = TaskState::Memory;
            t.root = true;
            t.nbytes = nbytes;
            t.who_has = vec![w];
            t.readers_left = 1;
            t.recomputable = false;
            held += nbytes;
            self.tasks.push_back(t);
        }
        let outputs: Vec<TaskId> = (job..job + n).collect();
        self.jobs.insert(
            job,
            Job {
                len: n,
                pinned: outputs.clone(),
                outputs,
                done: n,
                held,
                peak: held,
            },
        );
        Ok(job)
    }

    /// The client dropped its handles on these results: each loses one pin, and a job none
    /// of whose outputs are pinned any more is forgotten (cancelled, if it was running).
    pub fn release_keys(&mut self, ids: &[TaskId]) {
        for &id in ids {
            let Some(job) = self.task(id).map(|t| t.job) else {
                continue;
            };
            let Some(j) = self.jobs.get_mut(&job) else {
                continue;
            };
            let Some(at) = j.pinned.iter().position(|&p| p == id) else {
                continue;
            };
            j.pinned.swap_remove(at);
            let empty = j.pinned.is_empty();
            self.drop_reader(id);
            if empty {
                self.forget_job(job);
            }
        }
    }

    /// One reader (or pin) of `id` is gone; its result is dropped when none is left.
    fn drop_reader(&mut self, id: TaskId) {
        let Some(t) = self.task_mut(id) else { return };
        t.readers_left = t.readers_left.saturating_sub(1);
        if t.readers_left == 0 && t.state == TaskState::Memory {
            self.release_data(id);
        }
    }

    /// A client asks again where `job`'s outputs are: `Done` is emitted now if they are all
    /// in memory, or once the lost ones are recomputed. False when the job is unknown
    /// (released, failed or cancelled).
    pub fn locate(&mut self, job: u64) -> bool {
        if !self.jobs.contains_key(&job) {
            return false;
        }
        let already = self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Done { job: j } if *j == job));
        if !already {
            self.check_done(job);
        }
        true
    }

    /// Emits `Done` for a job whose tasks all finished and whose outputs are in memory.
    fn check_done(&mut self, job: u64) {
        let Some(j) = self.jobs.get(&job) else { return };
        if j.done != j.len {
            return;
        }
        let pending: Vec<TaskId> = j
            .outputs
            .iter()
            .copied()
            .filter(|&o| self.state(o) != TaskState::Memory)
            .collect();
        match pending.first() {
            None => self.actions.push(Action::Done { job }),
            Some(&o) => {
                // Once per job, however often a client asks again (`locate`).
                let waiting = self.output_waiters.entry(o).or_default();
                if !waiting.contains(&job) {
                    waiting.push(job);
                }
            }
        }
    }

    /// Gives worker `w` queued root tasks up to its saturation limit: consecutive roots
    /// (neighbours in the graph) go to the same worker.
    fn fill(&mut self, w: WorkerId) {
        self.touch(w);
        let Some(worker) = self.workers.get(w as usize) else {
            return;
        };
        if !worker.takes_tasks() {
            return;
        }
        let limit = self.limit(worker);
        while self.workers[w as usize].processing.len() < limit {
            let Some(Reverse(id)) = self.queue.pop() else {
                return;
            };
            if self.state(id) != TaskState::Queued {
                continue; // its job was forgotten while it waited
            }
            self.assign(id, w);
        }
    }

    fn assign(&mut self, id: TaskId, w: WorkerId) {
        if let Some(t) = self.enter(id, TaskState::Processing) {
            t.processing_on = Some(w);
        }
        self.workers[w as usize].processing.insert(id);
        self.touch(w);
        self.actions.push(Action::Compute {
            worker: w,
            task: id,
        });
    }

    /// The worker for a ready non-root task: the one holding the most bytes of its inputs,
    /// ties to the least occupied (then the lowest id).
    fn place(&self, id: TaskId) -> Option<WorkerId> {
        let mut held: FxHashMap<WorkerId, u64> = FxHashMap::default();
        for &i in self.inputs(id) {
            let nb = self.nbytes(i).max(1);
            for &w in self.who_has(i) {
                *held.entry(w).or_default() += nb;
            }
        }
        let occupancy = |w: WorkerId| {
            let x = &self.workers[w as usize];
            x.processing.len() as f64 / f64::from(x.nthreads)
        };
        let best_holder = held
            .iter()
            .filter(|(w, _)| self.workers[**w as usize].takes_tasks())
            .max_by(|(wa, ba), (wb, bb)| {
                ba.cmp(bb)
                    .then_with(|| occupancy(**wb).total_cmp(&occupancy(**wa)))
                    .then_with(|| wb.cmp(wa))
            })
            .map(|(w, _)| *w);
        best_holder.or_else(|| {
            (0..self.workers.len() as WorkerId)
                .filter(|&w| self.workers[w as usize].takes_tasks())
                .min_by(|&a, &b| occupancy(a).total_cmp(&occupancy(b)).then(a.cmp(&b)))
        })
    }

    fn make_ready(&mut self, id: TaskId) {
        let root = self.task(id).is_some_and(|t| t.root);
        if root {
            self.enter(id, TaskState::Queued);
            self.queue.push(Reverse(id));
            return;
        }
        match self.place(id) {
            Some(w) => self.assign(id, w),
            None => {
                // No worker alive: wait (as a queued task) for one to join.
                self.enter(id, TaskState::Queued);
                self.queue.push(Reverse(id));
            }
        }
    }

    /// Drops a result nobody needs: every holder is told to release it.
    fn release_data(&mut self, id: TaskId) {
        let Some(t) = self.enter(id, TaskState::Forgotten) else {
            return;
        };
        let holders = std::mem::take(&mut t.who_has);
        let (job, nbytes) = (t.job, t.nbytes);
        // The payload stays while the job lives: a reader may need this result again if its
        // own is lost with a worker.
        for w in holders {
            self.actions.push(Action::Release {
                worker: w,
                task: id,
            });
        }
        if let Some(j) = self.jobs.get_mut(&job) {
            j.held = j.held.saturating_sub(nbytes);
        }
    }

    /// [`Core::finished`], with the task's run time on the worker (µs; for stealing).
    pub fn finished_timed(&mut self, w: WorkerId, id: TaskId, nbytes: u64, micros: u64) {
        let m = micros as f64;
        self.task_micros = if self.task_micros == 0.0 {
            m
        } else {
            0.9 * self.task_micros + 0.1 * m
        };
        self.finished(w, id, nbytes);
    }

    /// Worker `w` started running task `id` (only tasks started on a worker are blamed for
    /// its death).
    pub fn started(&mut self, w: WorkerId, id: TaskId) {
        self.mark_reported(w);
        if self
            .task(id)
            .is_some_and(|t| t.state == TaskState::Processing && t.processing_on == Some(w))
        {
            self.executing.insert(id, w);
        }
    }

    /// Worker `w` finished task `id` with a result of `nbytes` bytes.
    pub fn finished(&mut self, w: WorkerId, id: TaskId, nbytes: u64) {
        self.executing.remove(&id);
        self.mark_reported(w);
        if let Some(x) = self.workers.get_mut(w as usize) {
            x.processing.remove(&id);
        }
        let live = self
            .task(id)
            .is_some_and(|t| t.state == TaskState::Processing && t.processing_on == Some(w));
        if !live {
            // Its job was forgotten meanwhile (or the report is stale): drop the result,
            // unless this worker's copy is the one the scheduler counts on (a task run twice
            // after a worker loss).
            let counted = self
                .task(id)
                .is_some_and(|t| t.state == TaskState::Memory && t.who_has.contains(&w));
            if !counted {
                self.actions.push(Action::Release {
                    worker: w,
                    task: id,
                });
            }
            self.fill(w);
            return;
        }
        let Some(t) = self.enter(id, TaskState::Memory) else {
            return;
        };
        t.processing_on = None;
        t.nbytes = nbytes;
        t.who_has.push(w);
        let job = t.job;
        let root = t.root;
        let inputs = t.inputs.clone();
        let dependents = std::mem::take(&mut t.dependents);
        let nobody_reads = t.readers_left == 0;
        if root {
            // A moving average, so that large roots after small ones shrink the limit at once.
            self.roots_done += 1;
            self.root_bytes = if self.roots_done == 1 {
                nbytes
            } else {
                self.root_bytes - self.root_bytes / 4 + nbytes / 4
            };
        }
        let mut done_now = false;
        if let Some(j) = self.jobs.get_mut(&job) {
            j.done += 1;
            j.held += nbytes;
            j.peak = j.peak.max(j.held);
            self.actions.push(Action::Progress { job, done: j.done });
            done_now = j.done == j.len;
        }
        let mut seen: Vec<TaskId> = Vec::with_capacity(inputs.len());
        for i in inputs {
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            self.drop_reader(i);
        }
        if nobody_reads {
            self.release_data(id);
        }
        for &d in &dependents {
            let ready = match self.task_mut(d) {
                Some(td) if td.state == TaskState::Waiting => {
                    td.waiting = td.waiting.saturating_sub(1);
                    td.waiting == 0
                }
                _ => false,
            };
            if ready {
                self.make_ready(d);
            }
        }
        if let Some(t) = self.task_mut(id) {
            t.dependents = dependents;
        }
        if done_now {
            self.check_done(job);
        }
        // Jobs whose own tasks are done but which output this (held) result.
        if let Some(jobs) = self.output_waiters.remove(&id) {
            for j in jobs {
                self.check_done(j);
            }
        }
        self.fill(w);
    }

    /// Task `id` failed on worker `w`: its job fails and is forgotten.
    pub fn failed(&mut self, w: WorkerId, id: TaskId, op: String, message: String, panicked: bool) {
        self.executing.remove(&id);
        self.mark_reported(w);
        if let Some(x) = self.workers.get_mut(w as usize) {
            x.processing.remove(&id);
        }
        let (job, retries) = match self.task(id) {
            Some(t) if t.state == TaskState::Processing && t.processing_on == Some(w) => {
                (t.job, t.retries)
            }
            _ => {
                self.fill(w);
                return;
            }
        };
        // An input that could not be fetched (its holder went away or no longer had it):
        // the task is placed again, from the scheduler's current view, a few times before
        // its job fails.
        if op == "fetch" && retries < 3 {
            if let Some(t) = self.task_mut(id) {
                t.retries += 1;
                t.processing_on = Some(w);
            }
            self.requeue(id);
            self.fill(w);
            return;
        }
        if let Some(t) = self.enter(id, TaskState::Erred) {
            t.processing_on = None;
        }
        self.actions.push(Action::Failed {
            job,
            task: Some(id),
            op,
            message,
            panicked,
        });
        self.forget_job(job);
        self.fill(w);
    }

    /// The client is done with a job (gathered or gave up): everything it holds is
    /// released.
    pub fn release_job(&mut self, job: u64) {
        self.forget_job(job);
    }

    fn forget_job(&mut self, job: u64) {
        let mut orphans: Vec<u64> = Vec::new();
        self.forget_one(job, &mut orphans);
        // Jobs reading results of a forgotten job that were never computed can never
        // finish: they fail, naming the job they depended on.
        while let Some(o) = orphans.pop() {
            if self.jobs.contains_key(&o) {
                self.actions.push(Action::Failed {
                    job: o,
                    task: None,
                    op: "input".into(),
                    message: format!(
                        "it reads results of job {job}, which was cancelled or failed first"
                    ),
                    panicked: false,
                });
                self.forget_one(o, &mut orphans);
            }
        }
    }

    fn forget_one(&mut self, job: u64, orphans: &mut Vec<u64>) {
        let Some(j) = self.jobs.remove(&job) else {
            return;
        };
        for id in j.pinned {
            self.drop_reader(id);
        }
        for id in job..job + j.len {
            self.suspects.remove(&id);
            self.executing.remove(&id);
            let Some(t) = self.task(id) else { continue };
            match t.state {
                // Results are dropped when their last reader or pin goes.
                TaskState::Memory | TaskState::Forgotten => {
                    if let Some(t) = self.task_mut(id) {
                        t.payload = Vec::new();
                    }
                }
                // Unfinished: its reads are given back; queued ones are skipped when popped,
                // a running one's result is released when it reports.
                _ => {
                    let mut ins = t.inputs.clone();
                    ins.sort_unstable();
                    ins.dedup();
                    for &d in &t.dependents {
                        if let Some(dj) = self.task(d).map(|x| x.job)
                            && dj != job
                            && !orphans.contains(&dj)
                        {
                            orphans.push(dj);
                        }
                    }
                    if let Some(js) = self.output_waiters.remove(&id) {
                        orphans.extend(js.into_iter().filter(|&x| x != job));
                    }
                    if let Some(t) = self.enter(id, TaskState::Forgotten) {
                        t.payload = Vec::new();
                        t.dependents = Vec::new();
                    }
                    for i in ins {
                        self.drop_reader(i);
                    }
                }
            }
        }
        // Drop forgotten tasks at the front: ids stay dense without growing forever.
        while self
            .tasks
            .front()
            .is_some_and(|t| t.state == TaskState::Forgotten && !self.jobs.contains_key(&t.job))
        {
            self.tasks.pop_front();
            self.first += 1;
        }
    }

    /// A finished task whose result is gone (lost with a worker, or released) but needed
    /// again: it becomes unfinished, reads its inputs again (reviving released ones in
    /// turn), and is queued once they are all in memory (`requeue` collects what to place).
    fn revive(&mut self, id: TaskId, requeue: &mut Vec<TaskId>) {
        let mut stack = vec![id];
        while let Some(t) = stack.pop() {
            let Some(task) = self.task(t) else { continue };
            let finished = match task.state {
                TaskState::Memory => task.who_has.is_empty(),
                TaskState::Forgotten => self.jobs.contains_key(&task.job) && task.recomputable,
                _ => false,
            };
            if !finished {
                continue;
            }
            let job = task.job;
            let mut ins = task.inputs.clone();
            ins.sort_unstable();
            ins.dedup();
            if let Some(j) = self.jobs.get_mut(&job) {
                j.done = j.done.saturating_sub(1);
            }
            if let Some(x) = self.enter(t, TaskState::Waiting) {
                x.who_has.clear();
            }
            for i in ins {
                let available = self.state(i) == TaskState::Memory && !self.who_has(i).is_empty();
                if let Some(ti) = self.task_mut(i) {
                    // This task reads it again.
                    ti.readers_left += 1;
                    if !ti.dependents.contains(&t) {
                        ti.dependents.push(t);
                    }
                }
                if !available {
                    stack.push(i);
                }
            }
            requeue.push(t);
        }
    }

    /// An unfinished task whose inputs changed (lost, or its worker left): it waits for the
    /// inputs not in memory, and is placed when none is missing.
    fn requeue(&mut self, id: TaskId) {
        let Some(t) = self.task(id) else { return };
        if !matches!(
            t.state,
            TaskState::Waiting | TaskState::Queued | TaskState::Processing
        ) {
            return;
        }
        let (mut ins, state, on) = (t.inputs.clone(), t.state, t.processing_on);
        if let Some(w) = on {
            // Running elsewhere on an input that is gone: it will fail to fetch it (a stale
            // report) or finish (ignored); it runs again once its inputs are back.
            if let Some(x) = self.workers.get_mut(w as usize) {
                x.processing.remove(&id);
            }
            self.touch(w);
        }
        ins.sort_unstable();
        ins.dedup();
        let waiting = ins
            .iter()
            .filter(|&&i| self.state(i) != TaskState::Memory || self.who_has(i).is_empty())
            .count() as u32;
        let queued = state == TaskState::Queued;
        if let Some(x) = self.enter(id, TaskState::Waiting) {
            x.processing_on = None;
            x.waiting = waiting;
        }
        if queued {
            // Already in the queue: popping skips it unless it is queued again below.
            if waiting == 0 {
                self.enter(id, TaskState::Queued);
            }
            return;
        }
        if waiting == 0 {
            self.make_ready(id);
        }
    }

    /// A worker left (its connection closed): see [`Core::remove_worker_because`].
    pub fn remove_worker(&mut self, w: WorkerId) {
        self.remove_worker_because(w, &format!("worker {w}: its connection closed"));
    }

    /// A worker left, for `reason` (how it died, for error messages). Its running tasks go
    /// back to be scheduled elsewhere, and results held only there that are still needed
    /// are recomputed from their lineage, as Dask does (scattered data, which has no
    /// lineage, fails its job). A task that was running on `allowed_failures` workers that
    /// died fails its job with every death's reason; other jobs go on.
    pub fn remove_worker_because(&mut self, w: WorkerId, reason: &str) {
        let Some(worker) = self.workers.get_mut(w as usize) else {
            return;
        };
        if !worker.alive {
            return;
        }
        worker.alive = false;
        worker.incoming = 0;
        let mut running: Vec<TaskId> = worker.processing.drain().collect();
        running.sort_unstable();
        self.touch(w);
        for &t in &running {
            self.cancel_steal(t);
        }
        running.retain(|&id| {
            self.task(id)
                .is_some_and(|t| t.state == TaskState::Processing && t.processing_on == Some(w))
        });
        // Blame the tasks it said it was running; if it died before saying (a task that
        // kills its worker at once), the highest-priority ones it had, as its threads take
        // them in that order — but only if it ever reported running anything: a peer that
        // registers and leaves without a word blames nothing.
        let mut blamed: Vec<TaskId> = running
            .iter()
            .copied()
            .filter(|id| self.executing.get(id) == Some(&w))
            .collect();
        let (nthreads, reported) = self
            .workers
            .get(w as usize)
            .map_or((1, false), |x| (x.nthreads as usize, x.reported));
        if blamed.is_empty() && reported {
            blamed = running.iter().copied().take(nthreads).collect();
        }
        let mut killed: Vec<(u64, TaskId, String)> = Vec::new();
        for &id in &running {
            self.executing.remove(&id);
            if !blamed.contains(&id) {
                continue;
            }
            let Some(job) = self.task(id).map(|t| t.job) else {
                continue;
            };
            let deaths = self.suspects.entry(id).or_default();
            deaths.push(reason.to_owned());
            if deaths.len() as u32 >= self.config.allowed_failures.max(1) {
                let message = format!(
                    "it was running on {} workers that died (allowed failures: {}): {}",
                    deaths.len(),
                    self.config.allowed_failures,
                    deaths.join("; ")
                );
                killed.push((job, id, message));
            }
        }
        for (job, id, message) in killed {
            if self.jobs.contains_key(&job) {
                self.actions.push(Action::Failed {
                    job,
                    task: Some(id),
                    // The scheduler does not decode payloads: the client names the operation.
                    op: String::new(),
                    message,
                    panicked: false,
                });
                self.forget_job(job);
            }
        }
        // Results only this worker held are lost: those still needed are recomputed from
        // their lineage (inputs released meanwhile are recomputed too).
        let mut lost: Vec<TaskId> = Vec::new();
        for id in self.first..self.first + self.tasks.len() as u64 {
            let Some(t) = self.task_mut(id) else { continue };
            if t.who_has.contains(&w) {
                t.who_has.retain(|&x| x != w);
                if t.who_has.is_empty() && t.state == TaskState::Memory {
                    lost.push(id);
                }
            }
        }
        self.recover(lost, running, &format!("worker {w} left"));
        // The last worker left: nothing would ever run; fail the jobs instead of hanging
        // (unless a nanny is bringing workers back).
        if self.alive_workers() == 0 && !self.config.wait_for_workers {
            let mut jobs: Vec<u64> = self.jobs.keys().copied().collect();
            jobs.sort_unstable();
            for job in jobs {
                let unfinished = self.jobs.get(&job).is_some_and(|j| j.done < j.len);
                if unfinished {
                    self.actions.push(Action::Failed {
                        job,
                        task: None,
                        op: "cluster".into(),
                        message: format!(
                            "no workers: the last worker ({w}) left before the job finished"
                        ),
                        panicked: false,
                    });
                    self.forget_job(job);
                }
            }
        }
    }

    /// Worker `w` could not fetch `inputs` of task `id` from `holder`: the holder no longer
    /// counts as holding them (they are recomputed if nobody else does) and the task is
    /// scheduled again.
    pub fn missing(
        &mut self,
        w: WorkerId,
        id: TaskId,
        inputs: &[TaskId],
        holder: Option<WorkerId>,
    ) {
        self.executing.remove(&id);
        let live = self
            .task(id)
            .is_some_and(|t| t.state == TaskState::Processing && t.processing_on == Some(w));
        if !live {
            if let Some(x) = self.workers.get_mut(w as usize) {
                x.processing.remove(&id);
            }
            self.fill(w);
            return;
        }
        self.cancel_steal(id);
        let mut lost = Vec::new();
        if let Some(h) = holder {
            for &i in inputs {
                if let Some(t) = self.task_mut(i)
                    && t.who_has.contains(&h)
                {
                    t.who_has.retain(|&x| x != h);
                    if t.who_has.is_empty() && t.state == TaskState::Memory {
                        lost.push(i);
                    }
                }
            }
        }
        self.recover(lost, vec![id], &format!("worker {w} could not fetch it"));
    }

    /// Worker `w` is short of memory (`paused`) or no longer: a paused worker gets no new
    /// tasks, and the tasks it hands back (queued there, not started) are scheduled again,
    /// on other workers or, if every worker is paused, on the scheduler's queue.
    pub fn set_paused(&mut self, w: WorkerId, paused: bool, returned: &[TaskId]) {
        let Some(x) = self.workers.get_mut(w as usize) else {
            return;
        };
        x.paused = paused;
        let mut back = Vec::new();
        for &id in returned {
            let live = self
                .task(id)
                .is_some_and(|t| t.state == TaskState::Processing && t.processing_on == Some(w));
            if live {
                self.cancel_steal(id);
                self.executing.remove(&id);
                back.push(id);
            }
        }
        self.recover(Vec::new(), back, &format!("worker {w} paused"));
    }

    fn mark_reported(&mut self, w: WorkerId) {
        if let Some(x) = self.workers.get_mut(w as usize) {
            x.reported = true;
        }
    }

    /// A steal asked for task `t` will not be answered (its victim left or gave it back).
    fn cancel_steal(&mut self, t: TaskId) {
        if let Some(thief) = self.stealing.remove(&t)
            && let Some(x) = self.workers.get_mut(thief as usize)
        {
            x.incoming = x.incoming.saturating_sub(1);
            self.touch(thief);
        }
    }

    /// Results `lost` (in memory, now held by nobody) are recomputed if still needed, with
    /// whatever of their lineage was released, and their unfinished readers wait for them
    /// again; tasks in `requeue` (taken back from a worker) are scheduled again. A lost
    /// result that cannot be recomputed (scattered data) fails its job, saying `why`.
    fn recover(&mut self, lost: Vec<TaskId>, mut requeue: Vec<TaskId>, why: &str) {
        let mut unrecoverable: Vec<(u64, TaskId)> = Vec::new();
        for &id in &lost {
            let Some(t) = self.task(id) else { continue };
            let (job, needed, recomputable, nbytes) =
                (t.job, t.readers_left > 0, t.recomputable, t.nbytes);
            if let Some(j) = self.jobs.get_mut(&job) {
                j.held = j.held.saturating_sub(nbytes);
            }
            if !needed || !self.jobs.contains_key(&job) {
                self.enter(id, TaskState::Forgotten);
                continue;
            }
            if !recomputable {
                unrecoverable.push((job, id));
                continue;
            }
            // Readers that counted on this result wait for it again.
            let dependents = self
                .task(id)
                .map(|t| t.dependents.clone())
                .unwrap_or_default();
            self.revive(id, &mut requeue);
            for d in dependents {
                match self.state(d) {
                    TaskState::Waiting | TaskState::Queued | TaskState::Processing => {
                        requeue.push(d);
                    }
                    _ => {}
                }
            }
        }
        requeue.sort_unstable();
        requeue.dedup();
        for id in requeue {
            self.requeue(id);
        }
        unrecoverable.sort_unstable();
        unrecoverable.dedup_by_key(|(j, _)| *j);
        for (job, id) in unrecoverable {
            if self.jobs.contains_key(&job) {
                self.actions.push(Action::Failed {
                    job,
                    task: Some(id),
                    op: "worker".into(),
                    message: format!(
                        "{why} while it alone held this result, which was scattered (not \
                         computed): it cannot be recomputed"
                    ),
                    panicked: false,
                });
                self.forget_job(job);
            }
        }
        for x in 0..self.workers.len() {
            self.fill(x as WorkerId);
        }
    }
}

impl Worker {
    /// Alive and not paused: may be given tasks.
    fn takes_tasks(&self) -> bool {
        self.alive && !self.paused
    }
}

impl Task {
    fn forgotten(job: u64) -> Task {
        Task {
            state: TaskState::Forgotten,
            job,
            root: false,
            payload: Vec::new(),
            inputs: Vec::new(),
            dependents: Vec::new(),
            waiting: 0,
            readers_left: 0,
            nbytes: 0,
            who_has: Vec::new(),
            processing_on: None,
            recomputable: true,
            retries: 0,
            group: NO_GROUP,
        }
    }
}
