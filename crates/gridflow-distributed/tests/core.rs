//! The scheduler's state machine driven by hand and by simulated workers (no network).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::core::{Action, Config, Core, TaskId, TaskState, WorkerId};
use std::collections::VecDeque;

/// A task as `Core::submit` takes it: (payload, inputs).
type Spec = (Vec<u8>, Vec<u32>);

/// A job of `n` roots summed by fan-in-4 reductions, as (payload, inputs) in priority
/// order (a post-order: each sum right after its inputs). Returns the tasks and the root.
fn tree_job(n: u32) -> (Vec<Spec>, u32) {
    let mut tasks: Vec<Spec> = Vec::new();
    fn build(lo: u32, hi: u32, tasks: &mut Vec<Spec>) -> u32 {
        if hi - lo == 1 {
            tasks.push((vec![1], vec![]));
            return tasks.len() as u32 - 1;
        }
        let step = (hi - lo).div_ceil(4);
        let mut ins = Vec::new();
        let mut a = lo;
        while a < hi {
            ins.push(build(a, (a + step).min(hi), tasks));
            a += step;
        }
        tasks.push((vec![2], ins));
        tasks.len() as u32 - 1
    }
    let root = build(0, n, &mut tasks);
    (tasks, root)
}

fn computes(actions: &[Action]) -> Vec<(WorkerId, TaskId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Compute { worker, task } => Some((*worker, *task)),
            _ => None,
        })
        .collect()
}

#[test]
fn root_tasks_are_queued_by_worker_saturation_and_neighbours_stay_together() {
    let mut core = Core::new(Config::default());
    let w0 = core.add_worker(2);
    let w1 = core.add_worker(2);
    let tasks: Vec<Spec> = (0..100).map(|_| (vec![0], vec![])).collect();
    let job = core.submit(tasks, (0..100).collect()).unwrap();
    let c = computes(&core.take_actions());
    // ceil(1.1 × 2) = 3 roots per worker; the rest wait on the scheduler.
    assert_eq!(c.len(), 6);
    assert_eq!(core.queued(), 94);
    let on = |w| {
        c.iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, t)| *t - job)
            .collect::<Vec<_>>()
    };
    assert_eq!(on(w0), vec![0, 1, 2]);
    assert_eq!(on(w1), vec![3, 4, 5]);
    assert_eq!(core.state(job + 50), TaskState::Queued);
    // A finished root frees a slot: the worker gets the next root at once.
    core.finished(w1, job + 3, 8);
    let c = computes(&core.take_actions());
    assert_eq!(c, vec![(w1, job + 6)]);
    assert_eq!(core.state(job + 3), TaskState::Memory);
}

#[test]
fn a_task_goes_where_most_of_its_input_bytes_are() {
    // One root per thread, so that each worker gets one of the two roots.
    let mut core = Core::new(Config {
        worker_saturation: 1.0,
        ..Config::default()
    });
    let w0 = core.add_worker(1);
    let w1 = core.add_worker(1);
    // a, b roots; c reads both.
    let job = core
        .submit(
            vec![(vec![], vec![]), (vec![], vec![]), (vec![], vec![0, 1])],
            vec![2],
        )
        .unwrap();
    let c = computes(&core.take_actions());
    assert_eq!(c, vec![(w0, job), (w1, job + 1)]);
    core.finished(w0, job, 10);
    core.finished(w1, job + 1, 1_000_000);
    let actions = core.take_actions();
    assert_eq!(computes(&actions), vec![(w1, job + 2)]);
    core.finished(w1, job + 2, 8);
    let actions = core.take_actions();
    // Both inputs are released on their holders; the output is kept until gathered.
    assert!(actions.contains(&Action::Release {
        worker: w0,
        task: job
    }));
    assert!(actions.contains(&Action::Release {
        worker: w1,
        task: job + 1
    }));
    assert!(actions.contains(&Action::Done { job }));
    assert_eq!(core.state(job + 2), TaskState::Memory);
    assert_eq!(core.state(job), TaskState::Forgotten);
    core.release_job(job);
    let actions = core.take_actions();
    assert_eq!(
        actions,
        vec![Action::Release {
            worker: w1,
            task: job + 2
        }]
    );
    // Everything was forgotten: the dense table is empty again.
    assert_eq!(core.tasks_held(), 0);
}

#[test]
fn a_failure_fails_the_job_and_late_results_are_released() {
    let mut core = Core::new(Config::default());
    let w = core.add_worker(2);
    let job = core
        .submit(
            vec![(vec![], vec![]), (vec![], vec![]), (vec![], vec![0, 1])],
            vec![2],
        )
        .unwrap();
    core.take_actions();
    core.failed(w, job, "make".into(), "boom".into(), false);
    let actions = core.take_actions();
    assert!(matches!(
        &actions[..],
        [Action::Failed { job: j, task: Some(t), .. }] if *j == job && *t == job
    ));
    // The other root was running; its result arrives after the job is gone.
    core.finished(w, job + 1, 8);
    assert_eq!(
        core.take_actions(),
        vec![Action::Release {
            worker: w,
            task: job + 1
        }]
    );
    assert_eq!(core.tasks_held(), 0);
}

#[test]
fn a_lost_worker_s_running_tasks_move_and_lost_results_are_recomputed() {
    let mut core = Core::new(Config::default());
    let w0 = core.add_worker(1);
    let w1 = core.add_worker(1);
    let (tasks, root) = tree_job(16);
    let job = core.submit(tasks, vec![root]).unwrap();
    let c = computes(&core.take_actions());
    let on_w0: Vec<TaskId> = c
        .iter()
        .filter(|(w, _)| *w == w0)
        .map(|(_, t)| *t)
        .collect();
    assert!(!on_w0.is_empty());
    let on_w1: Vec<TaskId> = c
        .iter()
        .filter(|(w, _)| *w == w1)
        .map(|(_, t)| *t)
        .collect();
    core.remove_worker(w0);
    // w1 is saturated: w0's roots go back to the scheduler's queue...
    assert!(computes(&core.take_actions()).is_empty());
    for t in &on_w0 {
        assert_eq!(core.state(*t), TaskState::Queued, "task {t}");
    }
    assert_eq!(core.alive_workers(), 1);
    // ...and run on w1 as it frees threads, highest priority first.
    core.finished(w1, on_w1[0], 8);
    let c = computes(&core.take_actions());
    assert_eq!(c, vec![(w1, on_w0[0])]);
    // A result held only by a worker that leaves is computed again: the job goes on.
    let w2 = core.add_worker(1);
    let c = computes(&core.take_actions());
    let (_, first) = c[0];
    core.finished(w2, first, 8);
    core.take_actions();
    assert_eq!(core.state(first), TaskState::Memory);
    core.remove_worker(w2);
    let actions = core.take_actions();
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Failed { .. })),
        "{actions:?}"
    );
    assert_ne!(core.state(first), TaskState::Memory);
    // Run everything to the end on w1 (the only worker left): the job finishes.
    let mut queue: VecDeque<TaskId> = on_w1[1..].iter().copied().collect();
    queue.push_back(on_w0[0]);
    queue.extend(
        computes(&actions)
            .iter()
            .filter(|(w, _)| *w == w1)
            .map(|(_, t)| *t),
    );
    let mut done = false;
    while let Some(t) = queue.pop_front() {
        core.finished(w1, t, 8);
        let a = core.take_actions();
        done |= a.contains(&Action::Done { job });
        queue.extend(computes(&a).iter().map(|(_, t)| *t));
    }
    assert!(done, "the job never finished");
    assert_eq!(core.state(job + root as u64), TaskState::Memory);
}

#[test]
fn malformed_jobs_are_refused() {
    let mut core = Core::new(Config::default());
    let e = core
        .submit(vec![(vec![], vec![1]), (vec![], vec![])], vec![0])
        .unwrap_err();
    assert!(e.contains("task 0 reads task 1"), "{e}");
    let e = core.submit(vec![(vec![], vec![])], vec![5]).unwrap_err();
    assert!(e.contains("output 5"), "{e}");
    let job = core.submit(vec![], vec![]).unwrap();
    assert_eq!(core.take_actions(), vec![Action::Done { job }]);
}

/// Drives the core with simulated workers (each finishes its tasks in FIFO order, one per
/// step), returning the number of steps, the most tasks any worker held at once, and
/// whether every job finished.
fn simulate(core: &mut Core, workers: &[WorkerId], jobs: usize, nbytes: u64) -> (usize, usize) {
    let mut running: Vec<VecDeque<TaskId>> = vec![VecDeque::new(); workers.len()];
    let mut done_jobs = 0;
    let mut steps = 0;
    let mut most = 0;
    loop {
        for a in core.take_actions() {
            match a {
                Action::Compute { worker, task } => running[worker as usize].push_back(task),
                Action::Done { job } => {
                    done_jobs += 1;
                    core.release_job(job);
                }
                Action::Failed { message, .. } => panic!("{message}"),
                _ => {}
            }
        }
        most = most.max(running.iter().map(VecDeque::len).max().unwrap_or(0));
        if done_jobs == jobs {
            return (steps, most);
        }
        let mut any = false;
        for &w in workers {
            if let Some(t) = running[w as usize].pop_front() {
                core.finished(w, t, nbytes);
                any = true;
            }
        }
        assert!(any, "stalled with {} jobs done", done_jobs);
        steps += 1;
    }
}

#[test]
fn simulated_workers_run_several_jobs_to_completion_with_bounded_queues() {
    // Results of 64 MiB: far above the root byte budget, so the saturation limit holds.
    let mut core = Core::new(Config::default());
    let workers: Vec<WorkerId> = (0..8).map(|_| core.add_worker(2)).collect();
    for _ in 0..3 {
        let (tasks, root) = tree_job(2000);
        core.submit(tasks, vec![root]).unwrap();
    }
    let (steps, most) = simulate(&mut core, &workers, 3, 64 << 20);
    // 3 × 2,667 tasks over 8 workers: a balanced run takes ~1,000 steps.
    assert!(steps < 1500, "{steps} steps");
    // Root queuing: a worker never holds more than its saturation limit of roots plus the
    // reductions its own results made ready.
    assert!(most <= 8, "a worker held {most} tasks");
    assert_eq!(core.tasks_held(), 0, "every job forgotten");
}

#[test]
fn tiny_roots_are_sent_deeper_but_never_past_the_cap() {
    // 8-byte roots: once a few finished, each worker gets up to 64 roots per thread.
    let mut core = Core::new(Config::default());
    let workers: Vec<WorkerId> = (0..4).map(|_| core.add_worker(2)).collect();
    let (tasks, root) = tree_job(20_000);
    core.submit(tasks, vec![root]).unwrap();
    let (_, most) = simulate(&mut core, &workers, 1, 8);
    assert!(
        most > 8,
        "small roots queue deeper on workers (held {most})"
    );
    assert!(most <= 2 * 64 + 2 * 4, "never past the cap (held {most})");
}

#[test]
fn large_roots_after_small_ones_shrink_the_limit_at_once() {
    let mut core = Core::new(Config::default());
    let w = core.add_worker(1);
    let n = 400u32;
    core.submit((0..n).map(|_| (vec![], vec![])).collect(), (0..n).collect())
        .unwrap();
    let mut running: Vec<TaskId> = computes(&core.take_actions()).iter().map(|c| c.1).collect();
    // Small results: the worker is given more and more roots.
    for _ in 0..8 {
        let t = running.remove(0);
        core.finished(w, t, 8);
        running.extend(computes(&core.take_actions()).iter().map(|c| c.1));
    }
    assert!(core.processing(w) > 2, "deep queue for tiny roots");
    // Two 64 MiB results: no new root until the worker is back under the saturation limit.
    for _ in 0..2 {
        let t = running.remove(0);
        core.finished(w, t, 64 << 20);
        assert!(computes(&core.take_actions()).is_empty());
    }
}

#[test]
fn losing_the_last_worker_fails_unfinished_jobs_and_refuses_new_ones() {
    let mut core = Core::new(Config::default());
    let w = core.add_worker(1);
    let (tasks, root) = tree_job(8);
    let job = core.submit(tasks, vec![root]).unwrap();
    core.take_actions();
    core.remove_worker(w);
    let actions = core.take_actions();
    assert!(actions.iter().any(|a| matches!(a,
        Action::Failed { job: j, message, .. } if *j == job && message.contains("no workers"))));
    let e = core.submit(vec![(vec![], vec![])], vec![0]).unwrap_err();
    assert!(e.contains("no workers"), "{e}");
}

#[test]
fn machine_sizing_reads_cgroup_meminfo_and_slurm_limits() {
    use gridflow_distributed::machine::{
        default_layout, parse_cgroup_max, parse_meminfo_total, slurm_memory,
    };
    assert_eq!(parse_cgroup_max("max\n"), None);
    assert_eq!(parse_cgroup_max("4294967296\n"), Some(4 << 30));
    assert_eq!(parse_cgroup_max("garbage"), None);
    let meminfo = "MemTotal:       24576000 kB\nMemFree:  100 kB\n";
    assert_eq!(parse_meminfo_total(meminfo), Some(24_576_000 * 1024));
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        slurm_memory(env(&[("SLURM_MEM_PER_NODE", "4000")])),
        Some(4000 << 20)
    );
    assert_eq!(
        slurm_memory(env(&[
            ("SLURM_MEM_PER_CPU", "1000"),
            ("SLURM_CPUS_ON_NODE", "3")
        ])),
        Some(3000 << 20)
    );
    assert_eq!(slurm_memory(env(&[])), None);
    assert_eq!(default_layout(2), (2, 1));
    assert_eq!(default_layout(4), (4, 1));
    assert_eq!(default_layout(16), (4, 4));
    assert_eq!(default_layout(12), (3, 4));
    let (w, t) = default_layout(7);
    assert_eq!(w * t, 7);
    assert!(gridflow_distributed::machine::available_memory() > 0);
}

fn steals(actions: &[Action]) -> Vec<(WorkerId, TaskId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Steal { worker, task } => Some((*worker, *task)),
            _ => None,
        })
        .collect()
}

/// One small root on w0 read by 10 tasks: placement by bytes puts all 10 on w0 (1 thread);
/// w1 (1 thread) is idle.
fn piled_up(core: &mut Core) -> (WorkerId, WorkerId, u64) {
    let w0 = core.add_worker(1);
    let w1 = core.add_worker(1);
    let mut tasks: Vec<Spec> = vec![(vec![], vec![])];
    tasks.extend((0..10).map(|_| (vec![], vec![0])));
    let job = core.submit(tasks, (1..11).collect()).unwrap();
    let c = computes(&core.take_actions());
    let root_on = c[0].0;
    // Report the root on whichever worker got it.
    core.finished_timed(root_on, job, 8, 50_000);
    let c = computes(&core.take_actions());
    assert_eq!(c.len(), 10);
    assert!(c.iter().all(|(w, _)| *w == root_on), "{c:?}");
    let other = if root_on == w0 { w1 } else { w0 };
    (root_on, other, job)
}

#[test]
fn an_idle_worker_steals_unstarted_tasks_the_victim_gives_back() {
    let mut core = Core::new(Config::default());
    let (victim, thief, job) = piled_up(&mut core);
    core.balance();
    let s = steals(&core.take_actions());
    // One thread free on the thief: one steal at a time, of the lowest-priority task.
    assert_eq!(s, vec![(victim, job + 10)]);
    // Asked again before the answer: nothing more (the thief's thread is spoken for).
    core.balance();
    assert!(steals(&core.take_actions()).is_empty());
    core.steal_response(victim, job + 10, true);
    let c = computes(&core.take_actions());
    assert_eq!(c, vec![(thief, job + 10)]);
    assert_eq!(core.processing(victim), 9);
    assert_eq!(core.processing(thief), 1);
    assert_eq!(core.steals(), 1);
    // The thief finishes; it is idle again and steals the next one.
    core.finished_timed(thief, job + 10, 8, 50_000);
    core.take_actions();
    core.balance();
    assert_eq!(steals(&core.take_actions()), vec![(victim, job + 9)]);
    // A task that already started stays: the victim says no.
    core.steal_response(victim, job + 9, false);
    assert!(computes(&core.take_actions()).is_empty());
    assert_eq!(core.processing(victim), 9);
    assert_eq!(core.state(job + 9), TaskState::Processing);
}

#[test]
fn stealing_skips_tasks_whose_inputs_cost_more_to_move_than_to_compute() {
    let mut core = Core::new(Config::default());
    let w0 = core.add_worker(1);
    let _w1 = core.add_worker(1);
    let mut tasks: Vec<Spec> = vec![(vec![], vec![])];
    tasks.extend((0..10).map(|_| (vec![], vec![0])));
    let job = core.submit(tasks, (1..11).collect()).unwrap();
    let c = computes(&core.take_actions());
    // A 1 GB input and tasks of 1 ms: moving it (10 s at 100 MB/s) is not worth it.
    core.finished_timed(c[0].0, job, 1 << 30, 1_000);
    core.take_actions();
    core.balance();
    assert!(steals(&core.take_actions()).is_empty());
    let _ = w0;
}

#[test]
fn a_victim_that_leaves_before_answering_does_not_block_the_thief() {
    let mut core = Core::new(Config::default());
    let (victim, thief, job) = piled_up(&mut core);
    core.balance();
    assert_eq!(steals(&core.take_actions()).len(), 1);
    core.remove_worker(victim);
    let actions = core.take_actions();
    // The root's only copy was on the victim: it is computed again on the thief, then its
    // ten readers follow; nothing fails.
    assert_eq!(computes(&actions), vec![(thief, job)]);
    assert!(!actions.iter().any(|a| matches!(a, Action::Failed { .. })));
    // The late answer of the gone victim changes nothing.
    core.steal_response(victim, job + 10, true);
    assert!(computes(&core.take_actions()).is_empty());
    assert_eq!(core.steals(), 0);
    core.finished(thief, job, 8);
    let c = computes(&core.take_actions());
    assert_eq!(c.len(), 10);
    assert!(c.iter().all(|(w, _)| *w == thief));
    for (_, t) in c {
        core.finished(thief, t, 8);
    }
    assert!(core.take_actions().contains(&Action::Done { job }));
}

#[test]
fn held_results_are_read_by_later_jobs_and_released_with_their_last_pin() {
    let mut core = Core::new(Config::default());
    let w = core.add_worker(2);
    // A "persist" job: two roots, both outputs.
    let p = core
        .submit(vec![(vec![], vec![]), (vec![], vec![])], vec![0, 1])
        .unwrap();
    core.take_actions();
    core.finished(w, p, 100);
    core.finished(w, p + 1, 100);
    assert!(core.take_actions().contains(&Action::Done { job: p }));
    // A job reading both held results (positions 1 and 2 = held[0], held[1]).
    let j = core
        .submit_with_held(vec![(vec![], vec![1, 2])], vec![0], &[p, p + 1])
        .unwrap();
    assert_eq!(computes(&core.take_actions()), vec![(w, j)]);
    core.finished(w, j, 8);
    let a = core.take_actions();
    assert!(a.contains(&Action::Done { job: j }));
    // Read, but still pinned: not released.
    assert!(!a.iter().any(|x| matches!(x, Action::Release { .. })));
    assert_eq!(core.state(p), TaskState::Memory);
    core.release_job(j);
    core.take_actions();
    // A job whose output is a held result itself finishes at once.
    let k = core.submit_with_held(vec![], vec![0], &[p + 1]).unwrap();
    assert!(core.take_actions().contains(&Action::Done { job: k }));
    assert_eq!(core.outputs(k), vec![p + 1]);
    core.release_job(k);
    // Dropping the pins releases the data, then forgets the job.
    core.release_keys(&[p]);
    assert_eq!(
        core.take_actions(),
        vec![Action::Release { worker: w, task: p }]
    );
    assert!(core.has_job(p));
    core.release_keys(&[p + 1, p + 1]);
    assert_eq!(
        core.take_actions(),
        vec![Action::Release {
            worker: w,
            task: p + 1
        }]
    );
    assert!(!core.has_job(p));
    assert_eq!(core.tasks_held(), 0);
    // A released result can no longer be read.
    let e = core
        .submit_with_held(vec![(vec![], vec![1])], vec![0], &[p])
        .unwrap_err();
    assert!(e.contains("gone"), "{e}");
}

#[test]
fn cancelling_a_running_job_fails_the_jobs_waiting_on_it() {
    let mut core = Core::new(Config::default());
    let w = core.add_worker(1);
    let a = core.submit(vec![(vec![], vec![])], vec![0]).unwrap();
    core.take_actions();
    // b reads a's (unfinished) result.
    let b = core
        .submit_with_held(vec![(vec![], vec![1])], vec![0], &[a])
        .unwrap();
    core.take_actions();
    core.release_keys(&[a]);
    let actions = core.take_actions();
    assert!(
        actions
            .iter()
            .any(|x| matches!(x, Action::Failed { job, .. } if *job == b)),
        "{actions:?}"
    );
    // a's result, arriving late, is dropped.
    core.finished(w, a, 8);
    assert_eq!(
        core.take_actions(),
        vec![Action::Release { worker: w, task: a }]
    );
    assert_eq!(core.tasks_held(), 0);
}

#[test]
fn scattered_data_is_in_memory_where_it_was_put() {
    let mut core = Core::new(Config::default());
    let w0 = core.add_worker(1);
    let w1 = core.add_worker(1);
    let s = core.scatter(&[(w0, 10), (w1, 1_000_000)]).unwrap();
    assert_eq!(core.state(s), TaskState::Memory);
    assert_eq!(core.who_has(s + 1), &[w1]);
    let j = core
        .submit_with_held(vec![(vec![], vec![1, 2])], vec![0], &[s, s + 1])
        .unwrap();
    // Runs where the most input bytes are.
    assert_eq!(computes(&core.take_actions()), vec![(w1, j)]);
    assert!(core.scatter(&[(7, 1)]).is_err());
}

/// A peer that registers as a worker, is sent tasks and leaves without reporting anything
/// (a port scanner, a fuzzer, a worker killed before it started) blames none of them: the
/// job goes on however often it happens. A worker that did report work and dies with tasks
/// it never said it started blames the first of them (a task that kills its worker at once),
/// and the third such death fails the job naming the task.
#[test]
fn only_workers_that_ran_something_blame_their_tasks_when_they_die() {
    let mut core = Core::new(Config::default());
    let real = core.add_worker(1);
    let (tasks, root) = tree_job(16);
    let job = core.submit(tasks, vec![root]).unwrap();
    core.take_actions();
    for _ in 0..5 {
        let ghost = core.add_worker(1);
        let sent = computes(&core.take_actions());
        assert!(sent.iter().any(|(w, _)| *w == ghost), "{sent:?}");
        core.remove_worker(ghost);
        let a = core.take_actions();
        assert!(
            !a.iter().any(|x| matches!(x, Action::Failed { .. })),
            "a silent peer failed the job: {a:?}"
        );
    }
    assert!(core.has_job(job));
    // Workers that report a finished task, then die holding the same first task.
    let mut failed = None;
    for round in 0..3 {
        let w = core.add_worker(1);
        let sent = computes(&core.take_actions());
        let mine: Vec<TaskId> = sent
            .iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, t)| *t)
            .collect();
        assert!(
            !mine.is_empty(),
            "round {round}: nothing sent to the new worker"
        );
        // It reports its own last task done, so it is known to run tasks.
        core.finished(w, *mine.last().unwrap(), 8);
        core.take_actions();
        core.remove_worker(w);
        for a in core.take_actions() {
            if let Action::Failed {
                job: j,
                task,
                message,
                ..
            } = a
            {
                failed = Some((j, task, message));
            }
        }
    }
    let (j, task, message) = failed.expect("the third death did not fail the job");
    assert_eq!(j, job);
    assert!(task.is_some());
    assert!(message.contains("3 workers that died"), "{message}");
    let _ = real;
}

/// The per-group counts the dashboard reads, kept on every transition, equal a scan of the
/// tasks' states at every step of a run, through a lost worker.
#[test]
fn group_counts_match_a_scan_of_task_states_throughout() {
    let mut core = Core::new(Config::default());
    core.add_worker(2);
    let w1 = core.add_worker(1);
    let (tasks, root) = tree_job(64);
    let n = tasks.len();
    // Leaves are group 0 ("leaf"), sums group 1 ("sum").
    let of_task: Vec<u32> = tasks
        .iter()
        .map(|(_, ins)| u32::from(!ins.is_empty()))
        .collect();
    let names = vec!["leaf".to_owned(), "sum".to_owned()];
    let job = core
        .submit_grouped(tasks, vec![root], &[], &names, &of_task)
        .unwrap();
    let check = |core: &Core, finished: &[u64; 2]| {
        let mut want = [[0u64; 5]; 2];
        for (i, &g) in of_task.iter().enumerate() {
            let slot = match core.state(job + i as u64) {
                TaskState::Released | TaskState::Waiting => 0,
                TaskState::Queued => 1,
                TaskState::Processing => 2,
                TaskState::Memory => 3,
                TaskState::Erred => 4,
                TaskState::Forgotten => continue,
            };
            want[g as usize][slot] += 1;
        }
        let groups = core.groups();
        assert_eq!(groups.len(), 2);
        for (g, c) in groups.iter().enumerate() {
            let got = [c.waiting, c.queued, c.processing, c.memory, c.erred];
            assert_eq!(got, want[g], "group {}", c.name);
            assert_eq!(c.done, finished[g], "group {}", c.name);
        }
    };
    assert_eq!(core.groups()[0].total + core.groups()[1].total, n as u64);
    // Sums read leaves (and sums: no edge within a group).
    assert_eq!(core.group_edges().collect::<Vec<_>>(), vec![(0, 1)]);
    let mut finished = [0u64; 2];
    let mut steps = 0;
    let mut pending: VecDeque<(WorkerId, TaskId)> = computes(&core.take_actions()).into();
    check(&core, &finished);
    while let Some((w, t)) = pending.pop_front() {
        steps += 1;
        if steps == 20 {
            // A worker dies: its results are recomputed, its tasks placed again; results
            // lost with it no longer count as done.
            let before = finished[0] + finished[1];
            core.remove_worker(w1);
            let c = core.groups();
            finished = [c[0].done, c[1].done];
            assert!(finished[0] + finished[1] < before, "w1 held results");
            pending.retain(|&(x, _)| x != w1);
            pending.extend(computes(&core.take_actions()));
            check(&core, &finished);
            continue;
        }
        if core.state(t) != TaskState::Processing {
            continue;
        }
        core.finished(w, t, 8);
        finished[of_task[(t - job) as usize] as usize] += 1;
        pending.extend(computes(&core.take_actions()));
        check(&core, &finished);
    }
    let c = core.groups();
    assert_eq!((c[0].done, c[0].total), (c[0].total, 64));
    assert_eq!(c[1].done, c[1].total);
    assert_eq!(core.state(job + u64::from(root)), TaskState::Memory);
}
