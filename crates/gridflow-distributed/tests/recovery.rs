//! Lost workers in the scheduler's state machine, with simulated workers that hold real
//! values: results lost with a worker are recomputed from their lineage (released inputs
//! included), and a task that was running on `allowed_failures` workers that died fails its
//! job, naming each death, while other jobs go on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::core::{Action, Config, Core, TaskId, WorkerId};
use std::collections::{HashMap, VecDeque};

/// A task as `Core::submit` takes it: (payload, inputs).
type Spec = (Vec<u8>, Vec<u32>);

/// Roots worth 1 each, summed by fan-in-3 reductions; (payload, inputs) in priority order.
fn tree_job(n: u32) -> (Vec<Spec>, u32) {
    fn build(lo: u32, hi: u32, tasks: &mut Vec<Spec>) -> u32 {
        if hi - lo == 1 {
            tasks.push((vec![1], vec![]));
            return tasks.len() as u32 - 1;
        }
        let step = (hi - lo).div_ceil(3);
        let mut ins = Vec::new();
        let mut a = lo;
        while a < hi {
            ins.push(build(a, (a + step).min(hi), tasks));
            a += step;
        }
        tasks.push((vec![2], ins));
        tasks.len() as u32 - 1
    }
    let mut tasks = Vec::new();
    let root = build(0, n, &mut tasks);
    (tasks, root)
}

/// Workers that run one task per step each and hold values; a dead worker's values are gone.
#[derive(Default)]
struct Sim {
    held: HashMap<WorkerId, HashMap<TaskId, u64>>,
    queue: HashMap<WorkerId, VecDeque<TaskId>>,
    alive: Vec<WorkerId>,
    done: Vec<u64>,
    failed: Vec<(u64, Option<TaskId>, String)>,
}

impl Sim {
    fn absorb(&mut self, core: &mut Core) {
        let mut actions = core.take_actions();
        while !actions.is_empty() {
            self.absorb_some(core, actions);
            actions = core.take_actions();
        }
    }

    fn absorb_some(&mut self, core: &mut Core, actions: Vec<Action>) {
        for a in actions {
            match a {
                // A steal succeeds when the victim has not started the task.
                Action::Steal { worker, task } => {
                    let q = self.queue.entry(worker).or_default();
                    let stolen = match q.iter().position(|&t| t == task) {
                        Some(p) => q.remove(p).is_some(),
                        None => false,
                    };
                    core.steal_response(worker, task, stolen);
                }
                Action::Compute { worker, task } => {
                    self.queue.entry(worker).or_default().push_back(task);
                }
                Action::Release { worker, task } => {
                    if let Some(h) = self.held.get_mut(&worker) {
                        h.remove(&task);
                    }
                }
                Action::Done { job } => self.done.push(job),
                Action::Failed {
                    job, task, message, ..
                } => self.failed.push((job, task, message)),
                Action::Progress { .. } => {}
            }
        }
    }

    fn value(&self, id: TaskId) -> Option<u64> {
        self.alive
            .iter()
            .find_map(|w| self.held.get(w).and_then(|h| h.get(&id)).copied())
    }

    /// Each live worker runs its next task; false when nothing ran.
    fn step(&mut self, core: &mut Core) -> bool {
        let mut ran = false;
        for w in self.alive.clone() {
            // A task with payload [9] kills its worker: the worker stalls on it until the
            // test kills it.
            if self
                .queue
                .get(&w)
                .and_then(|q| q.front())
                .is_some_and(|&t| core.payload(t) == [9])
            {
                continue;
            }
            let Some(t) = self.queue.get_mut(&w).and_then(VecDeque::pop_front) else {
                continue;
            };
            let inputs = core.inputs(t).to_vec();
            let payload = core.payload(t).to_vec();
            if payload.is_empty() {
                continue; // a task of a forgotten job
            }
            // An input that is nowhere (the task was sent before a loss) is reported as a
            // real worker does after a failed fetch, naming the holder it was told of.
            if let Some(&i) = inputs.iter().find(|&&i| self.value(i).is_none()) {
                let holder = core.who_has(i).first().copied();
                core.missing(w, t, &[i], holder);
                self.absorb(core);
                ran = true;
                continue;
            }
            let v = if inputs.is_empty() {
                1
            } else {
                inputs.iter().map(|&i| self.value(i).unwrap_or(0)).sum()
            };
            self.held.entry(w).or_default().insert(t, v);
            core.finished(w, t, 8);
            self.absorb(core);
            ran = true;
        }
        ran
    }

    fn kill(&mut self, core: &mut Core, w: WorkerId, reason: &str) {
        self.alive.retain(|&x| x != w);
        self.held.remove(&w);
        self.queue.remove(&w);
        core.remove_worker_because(w, reason);
        self.absorb(core);
    }
}

#[test]
fn results_lost_with_a_worker_are_recomputed_from_lineage_at_any_point() {
    let n = 60u32;
    let (tasks, root) = tree_job(n);
    let total_steps = {
        // A run without losses, for the number of steps it takes.
        let mut core = Core::new(Config::default());
        let mut sim = Sim::default();
        for _ in 0..3 {
            sim.alive.push(core.add_worker(1));
        }
        core.submit(tasks.clone(), vec![root]).unwrap();
        sim.absorb(&mut core);
        let mut steps = 0;
        while sim.done.is_empty() {
            assert!(sim.step(&mut core));
            steps += 1;
        }
        steps
    };
    for kill_at in 0..total_steps {
        let mut core = Core::new(Config::default());
        let mut sim = Sim::default();
        for _ in 0..3 {
            sim.alive.push(core.add_worker(1));
        }
        let job = core.submit(tasks.clone(), vec![root]).unwrap();
        sim.absorb(&mut core);
        let mut steps = 0;
        while sim.done.is_empty() {
            if steps == kill_at {
                // The worker holding the most results dies.
                let w = *sim
                    .alive
                    .iter()
                    .max_by_key(|w| sim.held.get(w).map_or(0, HashMap::len))
                    .unwrap();
                sim.kill(&mut core, w, "killed by signal 9");
                let fresh = core.add_worker(1);
                sim.alive.push(fresh);
                sim.absorb(&mut core);
            }
            assert!(
                sim.step(&mut core) || steps < kill_at,
                "stuck after a loss at step {kill_at}"
            );
            steps += 1;
            assert!(
                steps < 10 * total_steps,
                "no end after a loss at step {kill_at}"
            );
            assert!(sim.failed.is_empty(), "{:?}", sim.failed);
        }
        assert_eq!(sim.done, vec![job]);
        let out = core.outputs(job)[0];
        assert_eq!(sim.value(out), Some(u64::from(n)), "loss at step {kill_at}");
        core.release_job(job);
        assert_eq!(core.tasks_held(), 0);
    }
}

#[test]
fn a_task_that_kills_three_workers_fails_its_job_naming_each_death() {
    let mut core = Core::new(Config::default());
    let mut sim = Sim::default();
    sim.alive.push(core.add_worker(1));
    // A job of one deadly task, then an ordinary job.
    let deadly = core.submit(vec![(vec![9], vec![])], vec![0]).unwrap();
    sim.absorb(&mut core);
    let victim = sim.alive[0];
    assert_eq!(sim.queue[&victim].front(), Some(&deadly));
    let (tasks, root) = tree_job(10);
    let other = core.submit(tasks, vec![root]).unwrap();
    sim.absorb(&mut core);
    let reasons = [
        "worker a was killed by signal 6 (SIGABRT)",
        "worker b exited with code 3",
        "worker c was killed by signal 9 (SIGKILL)",
    ];
    for (i, reason) in reasons.iter().enumerate() {
        // The worker running the deadly task dies; a new one joins and gets it again.
        let mut steps = 0;
        let w = loop {
            let front = sim
                .alive
                .iter()
                .find(|w| sim.queue.get(w).and_then(|q| q.front()) == Some(&deadly));
            if let Some(&w) = front {
                // Its thread says it started it, except before the second death: then the
                // scheduler blames the highest-priority task the worker had.
                if i != 1 {
                    core.started(w, deadly);
                }
                break w;
            }
            sim.step(&mut core);
            steps += 1;
            assert!(steps < 1000, "the deadly task was not sent again ({i})");
        };
        sim.alive.push(core.add_worker(1));
        sim.absorb(&mut core);
        sim.kill(&mut core, w, reason);
        if i < 2 {
            assert!(sim.failed.is_empty(), "failed after {} deaths", i + 1);
        }
    }
    let (job, task, message) = sim.failed[0].clone();
    assert_eq!((job, task), (deadly, Some(deadly)));
    for r in reasons {
        assert!(message.contains(r), "{message}");
    }
    assert!(message.contains("3 workers"), "{message}");
    // The other job still finishes, with the right sum.
    while sim.done.is_empty() {
        if !sim.step(&mut core) {
            let states: Vec<_> = (other..other + 15)
                .map(|t| (t, core.state(t), core.who_has(t).to_vec()))
                .collect();
            panic!(
                "the other job is stuck: {states:?} alive {:?} queues {:?} processing {:?} failed {:?}",
                sim.alive,
                sim.queue,
                sim.alive
                    .iter()
                    .map(|&w| core.processing(w))
                    .collect::<Vec<_>>(),
                sim.failed
            );
        }
    }
    assert_eq!(sim.done, vec![other]);
    assert_eq!(sim.value(core.outputs(other)[0]), Some(10));
}

#[test]
fn a_paused_worker_gets_no_new_tasks_and_its_queued_ones_move() {
    let mut core = Core::new(Config::default());
    let mut sim = Sim::default();
    let w0 = core.add_worker(1);
    let w1 = core.add_worker(1);
    sim.alive = vec![w0, w1];
    let (tasks, root) = tree_job(30);
    let job = core.submit(tasks, vec![root]).unwrap();
    sim.absorb(&mut core);
    // w0 pauses and hands back everything queued there.
    let returned: Vec<TaskId> = sim.queue.remove(&w0).unwrap_or_default().into();
    assert!(!returned.is_empty());
    core.set_paused(w0, true, &returned);
    sim.absorb(&mut core);
    for _ in 0..5 {
        sim.step(&mut core);
    }
    assert!(
        sim.queue.get(&w0).is_none_or(VecDeque::is_empty),
        "a paused worker was given tasks"
    );
    assert_eq!(core.processing(w0), 0);
    // Resumed, it takes work again, and the job completes with the right sum.
    core.set_paused(w0, false, &[]);
    sim.absorb(&mut core);
    let mut steps = 0;
    while sim.done.is_empty() {
        assert!(sim.step(&mut core), "stuck");
        steps += 1;
        assert!(steps < 1000);
    }
    assert_eq!(sim.done, vec![job]);
    assert_eq!(sim.value(core.outputs(job)[0]), Some(30));
}
